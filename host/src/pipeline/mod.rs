//! The pipeline: plan, column mapping, type conversion, the transform chain
//! and the executor that streams batches between source and sink.

mod batch;
mod check;
pub mod convert;
mod mapping;
mod order;
mod plan;
mod preview;
mod progress;
mod retry;
mod run;
mod transforms;

pub use batch::{Output, Processed, process};
pub use check::{CheckResult, check};
pub use mapping::{MapError, MappedColumn, Mapping};
pub use plan::{PlanError, TablePlan, plan};
pub use preview::{PreviewRow, TablePreview, preview};
pub use progress::{Naming, row_name};
pub use retry::{RetryCounts, RetryError, RetryRequest, RetrySummary, TableRetry, retry_flagged};
pub use run::{
    Observer, RowFailure, RunError, RunEvent, RunOptions, RunSummary, flagged as flagged_row,
    record_interrupted, record_validation, run_migration, run_named,
};
pub use transforms::{Chain, ChainError, ChainOutcome, PluginStats, TransformStep};
