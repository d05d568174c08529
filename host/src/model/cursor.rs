//! What an incremental sync reads of a table.

/// The rows an incremental sync reads: `from <= column <= to`, in the
/// column's own type (values in text form). `from` is inclusive so rows that
/// share the last synced value are read again rather than lost; `to` is the
/// source's bound when the sync began (no row at or below it can still
/// be committed later), so later rows wait for the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Since {
    /// The cursor column.
    pub column: String,
    /// The last value synced, if any.
    pub from: Option<String>,
    /// The upper bound.
    pub to: String,
}
