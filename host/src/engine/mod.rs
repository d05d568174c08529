//! The engine: a job's plan (built once), column mapping, type conversion,
//! the transform chain and the processing of one batch through them.

pub mod batch;
pub mod mapping;
pub mod order;
pub mod plan;
pub mod transforms;

pub use batch::{Output, Processed, RowFailure, process};
pub use mapping::{MapError, MappedColumn, Mapping};
pub use plan::{PlanError, TablePlan, plan};
pub use transforms::{Chain, ChainError, ChainOutcome, PluginStats, TransformStep, not_callable};
