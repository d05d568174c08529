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

/// Loads a password from `password_env` or `password_file` (relative to
/// `base_dir`); `Ok(None)` when neither is set. Errors name the variable or
/// file, never the value.
pub fn load_password(
    env: Option<&str>,
    file: Option<&Path>,
    base_dir: &Path,
) -> Result<Option<Secret>, String> {
    if let Some(var) = env {
        return match std::env::var(var) {
            Ok(value) => Ok(Some(Secret::new(value))),
            Err(_) => Err(format!(
                "password_env names the environment variable `{var}`, which is not set; export it before running"
            )),
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
            Err(e) => Err(format!("cannot read password_file {}: {e}", path.display())),
        };
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err =
            load_password(Some("CREDVAULT_SURELY_UNSET_VAR"), None, Path::new(".")).unwrap_err();
        assert!(
            err.contains("`CREDVAULT_SURELY_UNSET_VAR`, which is not set"),
            "{err}"
        );
    }
}
