//! Preview: the first rows of each table as they will arrive at the
//! destination, after mapping and transforms, and the type mapping.

use tokio::sync::mpsc;

use super::plan::{TablePlan, plan};
use super::run::{RowFailure, RunError};
use super::transforms::{Chain, ChainOutcome};
use crate::config::Migration;
use crate::connectors::{ReadRequest, open_source};
use crate::runtime::Runtime;
use crate::value::Row;

/// One previewed row.
#[derive(Debug, Clone)]
pub enum PreviewRow {
    /// The row as the destination will get it.
    Row(Row),
    /// A transform filters it out.
    Dropped(u64),
    /// It fails; the table's policy will apply.
    Failed(RowFailure),
}

/// A table's preview.
pub struct TablePreview {
    /// The plan (mapping, output schema).
    pub plan: TablePlan,
    /// Rows in the source table.
    pub total: u64,
    /// The first rows.
    pub rows: Vec<PreviewRow>,
}

/// Previews the first `limit` rows of every table.
pub async fn preview(
    m: &Migration,
    runtime: &Runtime,
    limit: u64,
) -> Result<Vec<TablePreview>, RunError> {
    let source = open_source(m).await?;
    let started = chrono::Utc::now().timestamp_micros();
    let plans = plan(m, source.as_ref(), runtime, started)
        .await
        .map_err(RunError::Plan)?;
    let mut previews = Vec::new();
    for plan in plans {
        let total = source.count(&plan.source).await?;
        let (tx, mut rx) = mpsc::channel(1);
        let request = ReadRequest {
            table: plan.source.clone(),
            batch_size: limit.max(1) as usize,
            limit: Some(limit),
            after: None,
        };
        let reader = source.read(request, tx);
        let (_, batch) = tokio::join!(reader, rx.recv());
        let rows = match batch {
            Some(batch) => batch?.rows,
            None => Vec::new(),
        };
        let rows = preview_rows(&plan, m.settings.max_plugin_traps, rows).await?;
        previews.push(TablePreview { plan, total, rows });
    }
    Ok(previews)
}

async fn preview_rows(
    plan: &TablePlan,
    max_traps: u32,
    rows: Vec<Row>,
) -> Result<Vec<PreviewRow>, RunError> {
    let mut out: Vec<Option<PreviewRow>> = vec![None; rows.len()];
    let mut mapped = Vec::new();
    let mut index = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        match plan.mapping.apply(row) {
            Ok(m) => {
                mapped.push(m);
                index.push(i);
            }
            Err(e) => {
                out[i] = Some(PreviewRow::Failed(plan.failure(
                    row,
                    i as u64 + 1,
                    "mapping".into(),
                    Some(e.column),
                    e.value,
                    e.message,
                )))
            }
        }
    }
    let mut chain = Chain::new(plan.ctx.clone(), plan.steps.clone(), max_traps);
    let outcomes = chain
        .run(mapped, 1)
        .await
        .map_err(|source| RunError::Plugin {
            table: plan.spec.destination().to_string(),
            source,
        })?;
    for (i, outcome) in index.into_iter().zip(outcomes) {
        let position = i as u64 + 1;
        out[i] = Some(match outcome {
            ChainOutcome::Row(row) => PreviewRow::Row(row),
            ChainOutcome::Dropped => PreviewRow::Dropped(position),
            ChainOutcome::Failed {
                plugin,
                column,
                message,
            } => {
                let value = column.as_ref().and_then(|c| plan.source_value(&rows[i], c));
                PreviewRow::Failed(plan.failure(
                    &rows[i],
                    position,
                    format!("transform `{plugin}`"),
                    column,
                    value,
                    message,
                ))
            }
        });
    }
    Ok(out.into_iter().flatten().collect())
}
