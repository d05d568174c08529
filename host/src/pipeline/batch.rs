//! The middle stage of a table's pipeline: one source batch through the
//! column mapping and the transform chain. Pure work, no side effects: the
//! error policy is applied by the writer, so this stage can run on its own
//! task while the previous batch is being written.

use super::plan::TablePlan;
use super::run::{RowFailure, RunError};
use super::transforms::{Chain, ChainOutcome};
use std::collections::HashMap;

use crate::connectors::{SourceBatch, SourceFault};
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

/// Maps and transforms one batch.
pub async fn process(
    plan: &TablePlan,
    chain: &mut Chain,
    source: SourceBatch,
) -> Result<Processed, RunError> {
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
        .map_err(|source| RunError::Plugin {
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
