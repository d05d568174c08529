//! Preview: the first rows of each table as they will arrive at the
//! destination, after mapping and transforms, and the type mapping.

use tokio::sync::mpsc;

use super::run::RunError;
use crate::config::Migration;
use crate::drivers::{ReadRequest, SourceBatch, open_source};
use crate::engine::RowFailure;
use crate::engine::batch::{Output, process};
use crate::engine::plan::{TablePlan, plan};
use crate::engine::transforms::Chain;
use crate::model::value::Row;
use crate::runtime::Runtime;

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
    /// Why no row is shown: a transform of the table may change something
    /// beyond its output (a database it writes, say), which previewing
    /// would do again.
    pub not_run: Option<String>,
}

/// Previews the first `limit` rows of every table.
pub async fn preview(
    m: &Migration,
    runtime: &Runtime,
    limit: u64,
) -> Result<Vec<TablePreview>, RunError> {
    let m = &m.without_transform_effects();
    let source = open_source(m).await?;
    let started = chrono::Utc::now().timestamp_micros();
    let plans = plan(m, source.as_ref(), runtime, started)
        .await
        .map_err(RunError::Plan)?;
    let mut previews = Vec::new();
    for plan in plans {
        let total = source.count(&plan.source).await?;
        if let Some(why) = crate::engine::not_callable(&plan) {
            let not_run = Some(format!(
                "rows not previewed: {why}; only `credvault run` calls it on rows"
            ));
            let rows = Vec::new();
            previews.push(TablePreview {
                plan,
                total,
                rows,
                not_run,
            });
            continue;
        }
        let (tx, mut rx) = mpsc::channel(1);
        let request = ReadRequest {
            table: plan.source.clone(),
            batch_size: limit.max(1) as usize,
            limit: Some(limit),
            after: None,
            range: None,
            any_order: false,
            since: None,
        };
        let reader = source.read(request, tx);
        let (_, batch) = tokio::join!(reader, rx.recv());
        let rows = match batch {
            Some(batch) => preview_rows(&plan, m.settings.max_plugin_traps, batch?).await?,
            None => Vec::new(),
        };
        previews.push(TablePreview {
            plan,
            total,
            rows,
            not_run: None,
        });
    }
    Ok(previews)
}

/// The batch's rows in source order: written, failed or dropped.
async fn preview_rows(
    plan: &TablePlan,
    max_traps: u32,
    batch: SourceBatch,
) -> Result<Vec<PreviewRow>, RunError> {
    let first = batch.first;
    let count = batch.rows.len();
    let mut chain = Chain::new(plan.ctx.clone(), plan.steps.clone(), max_traps);
    let processed = process(plan, &mut chain, batch).await?;
    let mut out: Vec<Option<PreviewRow>> = vec![None; count];
    let rows = match processed.output {
        Output::Source => processed.source.rows.into_iter().enumerate().collect(),
        Output::Rows(rows) => rows,
    };
    for (i, row) in rows {
        out[i] = Some(PreviewRow::Row(row));
    }
    for failure in processed.failures {
        let i = (failure.position - first) as usize;
        out[i] = Some(PreviewRow::Failed(failure));
    }
    Ok(out
        .into_iter()
        .enumerate()
        .map(|(i, row)| row.unwrap_or(PreviewRow::Dropped(first + i as u64)))
        .collect())
}
