//! The limits every plugin call runs under, as resolved from the file.

/// Limits applied to every call into a plugin. Each one stops a kind of abuse:
/// fuel stops runaway computation, the memory cap stops a guest from eating
/// the host's memory, the timeout stops a guest that blocks (or loops between
/// fuel checks) from stalling the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Instructions (wasmtime fuel units) one call may spend.
    pub fuel: u64,
    /// Linear memory a plugin instance may hold, in MiB.
    pub memory_mb: u32,
    /// Wall-clock time one call may take, in milliseconds.
    pub timeout_ms: u64,
    /// Wall-clock time reading one table from a source plugin may take, in
    /// seconds; `None`: no budget beyond the per-call limits.
    pub table_seconds: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 2_000_000_000,
            memory_mb: 128,
            timeout_ms: 10_000,
            table_seconds: None,
        }
    }
}

impl Limits {
    /// The memory cap in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.memory_mb as usize * 1024 * 1024
    }
}
