//! Logging from a plugin: the host tags each line with the plugin and table,
//! rate-limits and truncates it. Natively (tests) lines go to stderr.
//!
//! ```
//! credvault_sdk::log::info!("skipped {} rows", 3);
//! credvault_sdk::log::warn("odd value");
//! ```

/// How important a log line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something odd that did not stop the work.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one log line at `level`.
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::credvault::migrate::log as wit;
        let level = match level {
            Level::Trace => wit::Level::Trace,
            Level::Debug => wit::Level::Debug,
            Level::Info => wit::Level::Info,
            Level::Warn => wit::Level::Warn,
            Level::Error => wit::Level::Error,
        };
        wit::log(level, message);
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        // The import shims only exist inside a component; print instead.
        eprintln!("[{level:?}] {message}");
    }
}

/// Writes a trace line.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Writes a debug line.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Writes an info line.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Writes a warning line.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Writes an error line.
pub fn error(message: &str) {
    log(Level::Error, message);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __log_trace {
    ($($arg:tt)*) => { $crate::log::trace(&::std::format!($($arg)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_debug {
    ($($arg:tt)*) => { $crate::log::debug(&::std::format!($($arg)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_info {
    ($($arg:tt)*) => { $crate::log::info(&::std::format!($($arg)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_warn {
    ($($arg:tt)*) => { $crate::log::warn(&::std::format!($($arg)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __log_error {
    ($($arg:tt)*) => { $crate::log::error(&::std::format!($($arg)*)) };
}

/// `debug!("fmt", args…)`: formats and writes a debug line.
pub use crate::__log_debug as debug;
/// `error!("fmt", args…)`: formats and writes an error line.
pub use crate::__log_error as error;
/// `info!("fmt", args…)`: formats and writes an info line.
pub use crate::__log_info as info;
/// `trace!("fmt", args…)`: formats and writes a trace line.
pub use crate::__log_trace as trace;
/// `warn!("fmt", args…)`: formats and writes a warning line.
pub use crate::__log_warn as warn;
