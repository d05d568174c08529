//! The middle stage of a table's pipeline: one source batch through the
//! column mapping and the transform chain. Pure work, no side effects: the
//! error policy is applied by the writer, so this stage can run on its own
//! task while the previous batch is being written.

use std::fmt;

use serde::Serialize;

use super::plan::TablePlan;
use super::transforms::{Chain, ChainError, ChainOutcome};
use crate::model::text::untrusted;
use std::collections::HashMap;

use crate::drivers::{SourceBatch, SourceFault};
use crate::model::value::Row;

/// A batch after mapping and transforms.
pub struct Processed {
    /// The source rows, for failures found later (at the destination).
    pub source: SourceBatch,
    /// What to write.
    pub output: Output,
    /// Rows that failed at the source, in mapping or in a transform.
    pub failures: Vec<RowFailure>,
    /// Rows a transform filtered out.
    pub dropped: u64,
}

/// What a batch writes.
pub enum Output {
    /// The source rows themselves: the mapping changes no value, no
    /// transform runs, and every value already has its column's type, so
    /// nothing is copied.
    Source,
    /// Rows to write, with their index in the source batch.
    Rows(Vec<(usize, Row)>),
}

/// A row that failed, with everything needed to find and fix it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RowFailure {
    /// The destination table.
    pub table: String,
    /// The row's 1-based position in its source table.
    pub position: u64,
    /// The row's key, e.g. `id=42`.
    pub key: Option<String>,
    /// `source`, `mapping`, `transform <plugin>` or `destination`.
    pub stage: String,
    /// The column at fault, when known.
    pub column: Option<String>,
    /// The offending value, when known.
    pub value: Option<String>,
    /// What went wrong and what was expected.
    pub message: String,
    /// The source row as a JSON object.
    pub row: serde_json::Value,
}

/// Every part but the position may come from the data or a plugin, so each
/// is shown escaped and cut ([`untrusted`]).
impl fmt::Display for RowFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "table `{}`, row {}",
            untrusted(&self.table),
            self.position
        )?;
        if let Some(key) = &self.key {
            write!(f, " ({})", untrusted(key))?;
        }
        write!(f, ", {}", untrusted(&self.stage))?;
        if let Some(column) = &self.column {
            write!(f, ", column `{}`", untrusted(column))?;
        }
        write!(f, ": {}", untrusted(&self.message))
    }
}

/// A plugin failed beyond what a row policy covers: the table stops.
#[derive(Debug, thiserror::Error)]
#[error("table `{table}`: {source}")]
pub struct TableFailure {
    /// The table.
    pub table: String,
    /// What failed.
    #[source]
    pub source: ChainError,
}

/// Maps and transforms one batch.
pub async fn process(
    plan: &TablePlan,
    chain: &mut Chain,
    source: SourceBatch,
) -> Result<Processed, TableFailure> {
    let passes = |row: &Row| plan.mapping.conforms(row);
    let clean = source.faults.is_empty();
    if clean
        && plan.steps.is_empty()
        && plan.mapping.is_identity()
        && source.rows.iter().all(passes)
    {
        return Ok(Processed {
            source,
            output: Output::Source,
            failures: Vec::new(),
            dropped: 0,
        });
    }
    let first = source.first;
    let mut failures = Vec::new();
    let mut mapped = Vec::with_capacity(source.rows.len());
    let mut index = Vec::with_capacity(source.rows.len());
    let faults: HashMap<usize, &SourceFault> = source.faults.iter().map(|f| (f.index, f)).collect();
    for (i, row) in source.rows.iter().enumerate() {
        if let Some(fault) = faults.get(&i) {
            failures.push(source_failure(plan, row, first + i as u64, fault));
            continue;
        }
        match plan.mapping.apply(row) {
            Ok(out) => {
                mapped.push(out);
                index.push(i);
            }
            Err(e) => {
                let position = first + i as u64;
                failures.push(plan.failure(
                    row,
                    position,
                    "mapping".into(),
                    Some(e.column),
                    e.value,
                    e.message,
                ));
            }
        }
    }
    let outcomes = chain
        .run(mapped, first)
        .await
        .map_err(|source| TableFailure {
            table: plan.spec.destination().to_string(),
            source,
        })?;
    let mut rows = Vec::with_capacity(outcomes.len());
    let mut dropped = 0;
    for (i, outcome) in index.into_iter().zip(outcomes) {
        match outcome {
            ChainOutcome::Row(row) => rows.push((i, row)),
            ChainOutcome::Dropped => dropped += 1,
            ChainOutcome::Failed {
                plugin,
                column,
                message,
            } => {
                let row = &source.rows[i];
                let value = column.as_ref().and_then(|c| plan.source_value(row, c));
                let stage = format!("transform `{plugin}`");
                failures.push(plan.failure(row, first + i as u64, stage, column, value, message));
            }
        }
    }
    failures.sort_by_key(|f| f.position);
    Ok(Processed {
        source,
        output: Output::Rows(rows),
        failures,
        dropped,
    })
}

/// The failure of a row the source could not read. Its stand-in row is
/// kept without the columns that could not be read, so a retry of it asks
/// for them (through a fixed export) instead of writing NULL.
fn source_failure(plan: &TablePlan, row: &Row, position: u64, fault: &SourceFault) -> RowFailure {
    let column = fault.column.map(|c| plan.source.columns[c].name.clone());
    let mut failure = plan.failure(
        row,
        position,
        "source".into(),
        column,
        fault.value.clone(),
        fault.message.clone(),
    );
    if let Some(object) = failure.row.as_object_mut() {
        for &c in &fault.unread {
            object.remove(&plan.source.columns[c].name);
        }
    }
    failure
}
