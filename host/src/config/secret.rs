//! Passwords: read from an environment variable or a file at connect time,
//! never stored in a migration file, and never printed.

use std::fmt;
use std::path::Path;

/// A secret value. Its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for handing to a driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the secret replaced by `***`, for
    /// messages that might echo it (a driver error, say).
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_string();
        }
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A TOML parser error as shown to the user. The parser quotes the line it
/// stopped at; in a file with a `password` key (which validation refuses
/// anyway) that quote could show the password, so there the quoted lines
/// are left out and the position and the reason remain.
pub(super) fn syntax_message(text: &str, error: &toml::de::Error) -> String {
    let full = error.to_string();
    if !has_password_key(text) {
        return full;
    }
    let quoted = |line: &str| {
        let gutter = line
            .trim_start()
            .trim_start_matches(|c: char| c.is_ascii_digit());
        gutter.trim_start().starts_with('|')
    };
    let kept: Vec<&str> = full.lines().filter(|line| !quoted(line)).collect();
    kept.join("\n")
}

/// Whether `text` sets a key named `password` (bare, quoted or dotted), as
/// opposed to `password_env` or `password_file`.
fn has_password_key(text: &str) -> bool {
    text.match_indices("password").any(|(at, word)| {
        let rest = text[at + word.len()..].trim_start_matches(['"', '\'', ' ', '\t']);
        rest.starts_with(['=', '.'])
    })
}

/// Loads a password from `password_env` or `password_file` (relative to
/// `base_dir`); `Ok(None)` when neither is set. Errors name the variable or
/// file, never the value.
pub fn load_password(
    env: Option<&str>,
    file: Option<&Path>,
    base_dir: &Path,
) -> Result<Option<Secret>, PasswordError> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(_) => Err(PasswordError::Unset {
                var: var.to_string(),
            }),
        };
    }
    if let Some(file) = file {
        let path = if file.is_absolute() {
            file.to_path_buf()
        } else {
            base_dir.join(file)
        };
        return match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(Secret::new(text.trim_end_matches(['\r', '\n'])))),
            Err(source) => Err(PasswordError::Unreadable { path, source }),
        };
    }
    Ok(None)
}

/// Why a password could not be loaded: names the variable or the file,
/// never the value.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// `password_env` names a variable that is not set. (std's `VarError`
    /// is not kept: for a value that is not Unicode it holds the value.)
    #[error(
        "password_env names the environment variable `{var}`, which is not set; export it before running"
    )]
    Unset {
        /// The variable.
        var: String,
    },
    /// `password_file` could not be read.
    #[error("cannot read password_file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by fuzz/fuzz_targets/migration_file.rs: a syntax error on the
    /// line of a `password` key quoted the password. Minimized input.
    #[test]
    fn a_syntax_error_does_not_quote_a_password() {
        let text = "name = \"leak\"\n[source]\ntype = \"csv\"\npath = \"data\"\npassword = \"hunter2-secret\"$\n";
        let err = super::super::Migration::parse(text, Path::new("m.toml"), "/".into())
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("line 5, column 28"), "{err}");
        assert!(err.contains("expected newline"), "{err}");
    }

    #[test]
    fn other_syntax_errors_keep_the_quoted_line() {
        let text = "name = \"x\"\n[source]\ntype = \"csv\"\npassword_env = \"PW\"$\n";
        let err = super::super::Migration::parse(text, Path::new("m.toml"), "/".into())
            .unwrap_err()
            .to_string();
        assert!(err.contains("password_env = \"PW\"$"), "{err}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
        assert_eq!(
            s.redact("auth failed for hunter2@db"),
            "auth failed for ***@db"
        );
    }

    #[test]
    fn a_missing_variable_is_named_without_a_value() {
        let err = load_password(Some("CREDVAULT_SURELY_UNSET_VAR"), None, Path::new("."))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`CREDVAULT_SURELY_UNSET_VAR`, which is not set"),
            "{err}"
        );
    }
}
