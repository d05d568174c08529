//! The cause a [`ConnectorError`](super::ConnectorError) keeps: a redacted
//! copy of the driver error it came from.

use std::error::Error;
use std::fmt;

use crate::config::Secret;

/// The error a connector failure came from, kept as its text with the
/// password taken out, level by level down its own chain of sources.
///
/// It is a copy, not the error itself: a driver's error may quote the
/// password, and anything that prints an error chain (`{:#}`, `{:?}`, a
/// loop over `source()`) would then print it. Its text is already told in
/// the message of the `ConnectorError` that holds it.
#[derive(Clone, PartialEq, Eq)]
pub struct Cause(Box<Level>);

/// One error of a [`Cause`]'s chain.
#[derive(Clone, PartialEq, Eq)]
struct Level {
    /// The error's type, e.g. `sqlx_core::error::Error`.
    type_name: &'static str,
    /// Its `Display`, redacted.
    text: String,
    /// Its `Debug`, redacted.
    debug: String,
    /// Its own source, likewise.
    next: Option<Cause>,
}

impl Cause {
    /// A copy of `err` and its sources, with `secret` (if any) replaced by
    /// `***` in every text.
    pub fn of<E: Error + 'static>(err: &E, secret: Option<&Secret>) -> Self {
        Self::level(err, std::any::type_name::<E>(), secret)
    }

    fn level(
        err: &(dyn Error + 'static),
        type_name: &'static str,
        secret: Option<&Secret>,
    ) -> Self {
        let redact = |text: String| match secret {
            Some(secret) => secret.redact(&text),
            None => text,
        };
        // `Debug` escapes quotes and backslashes inside strings, so a
        // password holding them appears there escaped.
        let escaped = secret.map(|s| Secret::new(s.expose().escape_debug().to_string()));
        let debug = match &escaped {
            Some(escaped) => escaped.redact(&redact(format!("{err:?}"))),
            None => format!("{err:?}"),
        };
        Self(Box::new(Level {
            type_name,
            text: redact(err.to_string()),
            debug,
            // A source's concrete type is not known here, only its text.
            next: err
                .source()
                .map(|next| Self::level(next, "dyn std::error::Error", secret)),
        }))
    }

    /// The type of the error copied, e.g. `sqlx_core::error::Error`.
    pub fn type_name(&self) -> &'static str {
        self.0.type_name
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.text)
    }
}

impl fmt::Debug for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.debug)
    }
}

impl Error for Cause {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.0
            .next
            .as_ref()
            .map(|next| next as &(dyn Error + 'static))
    }
}
