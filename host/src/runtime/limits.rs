//! Resource limits for one plugin and the failures they produce.

use std::fmt;

pub use crate::config::Limits;

/// Why a call into a plugin failed. A failure ends the instance: the host
/// starts a fresh one for the next call.
#[derive(Debug, Clone, PartialEq)]
pub enum FailureKind {
    /// The call spent all its fuel.
    OutOfFuel {
        /// The fuel limit per call.
        limit: u64,
    },
    /// The call ran past its wall-clock deadline.
    Deadline {
        /// The deadline per call.
        timeout_ms: u64,
    },
    /// The plugin asked for more memory than its cap.
    MemoryCap {
        /// The cap, in MiB.
        limit_mb: u32,
        /// The memory size it asked to grow to, in bytes.
        requested: usize,
    },
    /// The plugin recursed past the wasm stack limit.
    StackOverflow,
    /// The plugin panicked.
    Panic {
        /// The panic message the plugin printed.
        message: String,
    },
    /// Any other trap.
    Trap {
        /// The trap's description.
        message: String,
    },
    /// The plugin answered, but broke the WIT contract (wrong row count,
    /// values that do not match its declared schema).
    Contract {
        /// What was wrong.
        message: String,
    },
    /// The plugin returned an error (it could not read, write, reach
    /// something).
    Refused {
        /// The plugin's message.
        message: String,
    },
    /// The plugin rejected its configuration.
    Config {
        /// The plugin's message.
        message: String,
    },
}

impl FailureKind {
    /// Whether the failure is tied to the input (so bisecting a batch can
    /// isolate the row that causes it) rather than to the plugin's setup.
    pub fn is_trap(&self) -> bool {
        !matches!(
            self,
            FailureKind::Config { .. } | FailureKind::Refused { .. }
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FailureKind::OutOfFuel { limit } => write!(
                f,
                "ran out of fuel (limit {limit} instructions per call); raise `fuel` in the plugin's limits if the work is legitimate"
            ),
            FailureKind::Deadline { timeout_ms } => write!(
                f,
                "exceeded its wall-clock deadline ({timeout_ms} ms per call); raise `timeout_ms` in the plugin's limits if the work is legitimate"
            ),
            FailureKind::MemoryCap {
                limit_mb,
                requested,
            } => write!(
                f,
                "hit its memory cap ({limit_mb} MiB; it asked for {} MiB); raise `memory_mb` in the plugin's limits if the work is legitimate",
                requested.div_ceil(1024 * 1024)
            ),
            FailureKind::StackOverflow => {
                write!(f, "overflowed its stack (runaway recursion)")
            }
            FailureKind::Panic { message } => write!(f, "panicked: {message}"),
            FailureKind::Trap { message } => write!(f, "trapped: {message}"),
            FailureKind::Contract { message } => {
                write!(f, "broke the plugin contract: {message}")
            }
            FailureKind::Config { message } => write!(f, "rejected its configuration: {message}"),
            FailureKind::Refused { message } => write!(f, "failed: {message}"),
        }
    }
}

/// A failed call into a named plugin.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("plugin `{plugin}` {kind}")]
pub struct PluginFailure {
    /// The plugin's name in the migration file.
    pub plugin: String,
    /// What happened.
    pub kind: FailureKind,
}
