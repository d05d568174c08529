//! Jobs: what a person asks of a migration, each run through one
//! lifecycle (state records, audit events, restore point, validation): a
//! run, a dry run, a retry of flagged rows, syncs, consolidation,
//! validation, preflight checks, previews and rollbacks.

pub mod check;
pub mod consolidate;
mod policy;
pub mod preview;
pub mod progress;
pub mod restore;
pub mod retry;
pub mod run;
pub mod sync;
pub mod validate;

pub use check::{CheckResult, check, check_and_plan};
pub use preview::{PreviewRow, TablePreview, preview};
pub use progress::{Naming, row_name};
pub use retry::{RetryCounts, RetryError, RetryRequest, RetrySummary, TableRetry, retry_flagged};
pub use run::{
    Observer, Planned, RunError, RunEvent, RunOptions, RunSummary, flagged as flagged_row,
    record_interrupted, record_validation, run_migration, run_named, run_planned,
};
