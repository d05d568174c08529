//! Retrying flagged rows: each row kept under the `flag` policy goes through
//! the migration's current mapping and transforms again (as it was read, or
//! as a person fixed it in an export) and into the destination table. A row
//! that fails again stays flagged with its new error.
//!
//! Nothing is written twice: a row whose key the destination already holds
//! is not overwritten, and the ids of each committed batch are committed
//! with it, so a retry cut short is finished by the next one.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use super::run::{RunError, flagged};
use crate::config::{IfExists, Migration};
use crate::drivers::Shape;
use crate::drivers::{
    Checkpoint, ConnectorError, Prepare, Prepared, Sink, SourceBatch, SqlDestination, Step,
    WriteBatch, open_sink, open_source, owner,
};
use crate::engine::RowFailure;
use crate::engine::batch::{Output, process};
use crate::engine::plan::{TablePlan, plan};
use crate::engine::transforms::Chain;
use crate::model::convert::from_json;
use crate::model::value::{Column, ColumnType, Row};
use crate::runtime::Runtime;
use crate::state::{FlaggedRow, Hold, StateError, StateStore};

/// Rows written per destination transaction. Small, because a refused row
/// rolls its batch back and the rest is written again without it.
const CHUNK: usize = 200;
/// The scratch column that tells staged rows apart in the key check.
const TAG: &str = "credvault_retry_row";

/// Which flagged rows to retry, and the fixed versions of some.
#[derive(Debug, Clone, Default)]
pub struct RetryRequest {
    /// Only rows of this destination table.
    pub table: Option<String>,
    /// Only these flagged rows (when empty: those in `fixed`, or with no
    /// fixed rows every open one).
    pub ids: Vec<i64>,
    /// Fixed source rows by flagged-row id, as a person edited them in a
    /// JSON-lines export; other rows are retried as they were read.
    pub fixed: HashMap<i64, serde_json::Value>,
}

/// What a retry did with the rows of one table, or of all.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct RetryCounts {
    /// Rows retried.
    pub retried: u64,
    /// Rows now written to the destination.
    pub written: u64,
    /// Rows not written because the destination already holds their key.
    pub present: u64,
    /// Rows a transform now filters out on purpose.
    pub dropped: u64,
    /// Rows that failed again and stay flagged.
    pub failed: u64,
    /// Rows of a table without a key that a full sync has rebuilt since
    /// they were flagged (it read them again), closed unwritten.
    pub superseded: u64,
}

impl RetryCounts {
    fn add(&mut self, other: &RetryCounts) {
        self.retried += other.retried;
        self.written += other.written;
        self.present += other.present;
        self.dropped += other.dropped;
        self.failed += other.failed;
        self.superseded += other.superseded;
    }
}

/// One table's retry.
#[derive(Debug, Clone, Serialize)]
pub struct TableRetry {
    /// The destination table.
    pub table: String,
    /// What happened to its rows.
    pub counts: RetryCounts,
}

/// What a retry did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetrySummary {
    /// Per table.
    pub tables: Vec<TableRetry>,
    /// Over all tables.
    pub total: RetryCounts,
    /// Open flagged rows left alone: those of syncs and of runs older than
    /// the last fresh run.
    pub not_retryable: u64,
    /// Lines of the fixed file for rows no longer open (retried since the
    /// export, or flagged again by a later run), left alone.
    pub stale_fixes: u64,
}

/// Why a retry could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RetryError {
    /// The request does not fit the open flagged rows or the migration.
    #[error("{0}")]
    Refused(String),
    /// Planning, a connector, a plugin or the state store failed.
    #[error(transparent)]
    Run(#[from] RunError),
}

impl From<crate::engine::batch::TableFailure> for RetryError {
    fn from(e: crate::engine::batch::TableFailure) -> Self {
        RetryError::Run(e.into())
    }
}

impl From<StateError> for RetryError {
    fn from(e: StateError) -> Self {
        RetryError::Run(e.into())
    }
}

impl From<crate::drivers::ConnectorError> for RetryError {
    fn from(e: crate::drivers::ConnectorError) -> Self {
        RetryError::Run(e.into())
    }
}

/// Retries the open flagged rows of `m`'s own runs that `request` selects,
/// while `hold` keeps other writers of `m` out.
pub async fn retry_flagged(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    hold: &Hold,
    request: &RetryRequest,
) -> Result<RetrySummary, RetryError> {
    debug_assert_eq!(hold.migration(), m.name);
    if m.is_multi_source() {
        return Err(RetryError::Refused(format!(
            "`{}` consolidates several sources, and its flagged rows belong to each source's part; fix their cause and run the migration again",
            m.name
        )));
    }
    state.supersede_flagged(&m.name).await?;
    let filter = crate::state::FlaggedFilter {
        migration: Some(m.name.clone()),
        ..Default::default()
    };
    let open = state.flagged(&filter).await?;
    let retryable = state.retryable(&m.name).await?;
    let chosen = choose(&m.name, &open, retryable, request)?;
    let mut summary = RetrySummary {
        not_retryable: chosen.others,
        stale_fixes: chosen.stale_fixes,
        ..RetrySummary::default()
    };
    if chosen.rows.is_empty() {
        return Ok(summary);
    }
    let source = open_source(m).await?;
    let clock = chrono::Utc::now().timestamp_micros();
    let plans = plan(m, source.as_ref(), runtime, clock)
        .await
        .map_err(RunError::Plan)?;
    let mut work = Vec::new();
    for (table, rows) in chosen.rows {
        let Some(plan) = plans.iter().find(|p| p.spec.destination() == table) else {
            return Err(RetryError::Refused(format!(
                "table `{table}` is no longer in the migration; put it back to retry its {} flagged row(s)",
                rows.len()
            )));
        };
        let all = chosen.by_table.get(&table).cloned().unwrap_or_default();
        work.push((plan, rows, all));
    }
    let synced = state.last_synced(&m.name).await?;
    let mut outcome = Ok(());
    for (plan, rows, all) in work {
        let mut retrying = Retrying::new(m, plan, state, synced.as_deref());
        outcome = retrying.run(rows, &all, &request.fixed).await;
        summary.total.add(&retrying.counts);
        summary.tables.push(TableRetry {
            table: plan.spec.destination().to_string(),
            counts: retrying.counts,
        });
        if outcome.is_err() {
            break;
        }
    }
    let mut detail = serde_json::to_value(&summary).expect("summaries serialize");
    if let Err(e) = &outcome {
        detail["error"] = e.to_string().into();
    }
    state
        .event(&m.name, None, "flagged_retried", &detail)
        .await?;
    outcome.map(|()| summary)
}

/// Rounds of [`settle_cycle`] at most: a chain of refused rows that needs
/// more is left to `credvault flagged retry`.
const SETTLE_ROUNDS: usize = 100;

/// Writes again the rows of a foreign-key cycle's tables that the
/// destination refused because a row they refer to was not there yet: once
/// every table of the cycle is in, most parents are. Newest first, since a
/// row was refused because its parent came later (so a chain within a table
/// lands in one round), and round after round while a round writes
/// something, at most [`SETTLE_ROUNDS`]; what is still refused stays
/// skipped or flagged with its new error. The destination's constraints
/// stay on throughout (nothing lands that they refuse), which no database's
/// deferral offers across batches. Returns what each table's rows did.
pub(super) async fn settle_cycle(
    m: &Migration,
    cycle: &[&TablePlan],
    state: &StateStore,
) -> Result<Vec<TableRetry>, RunError> {
    let mut settled: Vec<TableRetry> = cycle
        .iter()
        .map(|p| TableRetry {
            table: p.spec.destination().to_string(),
            counts: RetryCounts::default(),
        })
        .collect();
    for _ in 0..SETTLE_ROUNDS {
        let mut wrote = 0;
        for (plan, done) in cycle.iter().zip(&mut settled) {
            let mut rows = state.orphans(&m.name, &done.table).await?;
            rows.reverse();
            if rows.is_empty() {
                continue;
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            let mut retrying = Retrying::new(m, plan, state, None);
            retrying
                .run(rows, &ids, &HashMap::new())
                .await
                .map_err(|e| match e {
                    RetryError::Run(e) => e,
                    RetryError::Refused(why) => ConnectorError::new("destination", why).into(),
                })?;
            wrote += retrying.counts.written;
            done.counts.add(&retrying.counts);
        }
        if wrote == 0 {
            break;
        }
    }
    Ok(settled)
}

/// The rows a request selects, by table.
struct Chosen {
    rows: BTreeMap<String, Vec<FlaggedRow>>,
    /// The ids of every retryable row, by table, selected or not.
    by_table: HashMap<String, Vec<i64>>,
    /// Open flagged rows of the migration's syncs and parts, left alone.
    others: u64,
    /// Lines of the fixed file for rows no longer open.
    stale_fixes: u64,
}

fn choose(
    migration: &str,
    open: &[FlaggedRow],
    retryable: Vec<FlaggedRow>,
    request: &RetryRequest,
) -> Result<Chosen, RetryError> {
    let known: HashMap<i64, &FlaggedRow> = retryable.iter().map(|r| (r.id, r)).collect();
    let others: HashSet<i64> = open
        .iter()
        .map(|r| r.id)
        .filter(|id| !known.contains_key(id))
        .collect();
    if let Some(id) = request.ids.iter().find(|id| !known.contains_key(id)) {
        return Err(RetryError::Refused(format!(
            "flagged row #{id} is not an open flagged row of a run of `{migration}` since its last fresh run (see `credvault flagged list --migration {migration}`)"
        )));
    }
    // A fixed file names the rows to retry when no ids are given; its
    // lines for rows no longer open (retried since the export, or flagged
    // again by a later run) and for the syncs' rows are left alone.
    let only_fixed = request.ids.is_empty() && !request.fixed.is_empty();
    let asked: HashSet<i64> = match only_fixed {
        true => request
            .fixed
            .keys()
            .filter(|id| known.contains_key(id))
            .copied()
            .collect(),
        false => request.ids.iter().copied().collect(),
    };
    let stale_fixes = request
        .fixed
        .keys()
        .filter(|id| !known.contains_key(id) && !others.contains(id))
        .count() as u64;
    if let Some(table) = &request.table
        && let Some(id) = asked.iter().find(|id| known[id].table != *table)
    {
        return Err(RetryError::Refused(format!(
            "flagged row #{id} belongs to table `{}`, not `{table}`",
            known[id].table
        )));
    }
    let mut rows: BTreeMap<String, Vec<FlaggedRow>> = BTreeMap::new();
    let mut by_table: HashMap<String, Vec<i64>> = HashMap::new();
    for row in retryable {
        by_table.entry(row.table.clone()).or_default().push(row.id);
        let by_id = asked.contains(&row.id) || (asked.is_empty() && !only_fixed);
        let by_table = request.table.as_ref().is_none_or(|t| *t == row.table);
        if by_id && by_table {
            rows.entry(row.table.clone()).or_default().push(row);
        }
    }
    Ok(Chosen {
        rows,
        by_table,
        others: others.len() as u64,
        stale_fixes,
    })
}

/// A flagged row read back into a source row.
struct Item {
    flagged: FlaggedRow,
    source: Row,
}

/// One table's flagged rows on their way to the destination.
struct Retrying<'a> {
    m: &'a Migration,
    plan: &'a TablePlan,
    state: &'a StateStore,
    /// When the migration's last successful sync started.
    synced: Option<&'a str>,
    counts: RetryCounts,
}

impl<'a> Retrying<'a> {
    fn new(
        m: &'a Migration,
        plan: &'a TablePlan,
        state: &'a StateStore,
        synced: Option<&'a str>,
    ) -> Self {
        Self {
            m,
            plan,
            state,
            synced,
            counts: RetryCounts::default(),
        }
    }

    fn table(&self) -> &str {
        self.plan.spec.destination()
    }

    /// Where the ids of the last committed batch are kept in the destination.
    fn checkpoint_name(&self) -> String {
        format!("{}#retry", self.table())
    }

    async fn run(
        &mut self,
        rows: Vec<FlaggedRow>,
        all: &[i64],
        fixed: &HashMap<i64, serde_json::Value>,
    ) -> Result<(), RetryError> {
        let mut opened = open_sink(self.m).await?;
        let Some(sink) = opened.sql_mut() else {
            return Err(RetryError::Refused(format!(
                "{}: a retry adds single rows to the existing table, which needs a database destination ({}); fix the cause and run the migration again",
                opened.describe(),
                crate::drivers::registry::sql_destinations()
            )));
        };
        let rows = self.finish_cut_short(sink, rows, all).await?;
        let rows = self.drop_rebuilt(rows).await?;
        let prepared = sink
            .prepare(
                &self.m.name,
                self.table(),
                self.plan.shape(),
                Prepare::Resume,
            )
            .await?;
        let mut chain = Chain::new(
            self.plan.ctx.clone(),
            self.plan.steps.clone(),
            self.m.settings.max_plugin_traps,
        );
        let mut rows = rows.into_iter().peekable();
        while rows.peek().is_some() {
            let chunk: Vec<FlaggedRow> = rows.by_ref().take(CHUNK).collect();
            self.counts.retried += chunk.len() as u64;
            let items = self.read_back(chunk, fixed).await?;
            let out = self.transform(&mut chain, items).await?;
            let out = self.skip_present(sink, out).await?;
            self.write(sink, &prepared, out).await?;
        }
        Ok(())
    }

    /// Closes the rows a retry wrote but could not record as written
    /// before it was cut short: their ids were committed with them. All
    /// open rows of the table (`all`) are settled, not only those asked
    /// for, since the next batch's ids replace these.
    async fn finish_cut_short(
        &mut self,
        sink: &dyn Sink,
        rows: Vec<FlaggedRow>,
        all: &[i64],
    ) -> Result<Vec<FlaggedRow>, RetryError> {
        let committed = sink
            .committed(&self.m.name, &self.checkpoint_name())
            .await?
            .and_then(|c| c.cursor)
            .unwrap_or_default();
        let written: Vec<i64> = committed
            .split(',')
            .filter_map(|id| id.parse().ok())
            .collect();
        let ids: Vec<i64> = written.into_iter().filter(|id| all.contains(id)).collect();
        self.state.resolve(&ids, "written").await?;
        self.counts.written += ids.len() as u64;
        self.counts.retried += ids.len() as u64;
        Ok(rows.into_iter().filter(|r| !ids.contains(&r.id)).collect())
    }

    /// Closes, unwritten, the rows of a table without a key that a full
    /// sync has rebuilt since they were flagged: it read them again, and
    /// without a key nothing tells whether it wrote them.
    async fn drop_rebuilt(&mut self, rows: Vec<FlaggedRow>) -> Result<Vec<FlaggedRow>, RetryError> {
        let Some(synced) = self.synced else {
            return Ok(rows);
        };
        if !self.plan.output_key().is_empty() {
            return Ok(rows);
        }
        let (gone, rest): (Vec<FlaggedRow>, Vec<FlaggedRow>) = rows
            .into_iter()
            .partition(|r| r.flagged_at.as_str() < synced);
        let ids: Vec<i64> = gone.iter().map(|r| r.id).collect();
        self.state.resolve(&ids, "superseded").await?;
        self.counts.superseded += ids.len() as u64;
        self.counts.retried += ids.len() as u64;
        Ok(rest)
    }

    /// Turns each flagged row (or its fixed version) back into a source row
    /// of the table as it is now; a row that does not fit stays flagged.
    async fn read_back(
        &mut self,
        chunk: Vec<FlaggedRow>,
        fixed: &HashMap<i64, serde_json::Value>,
    ) -> Result<Vec<Item>, RetryError> {
        let mut items = Vec::with_capacity(chunk.len());
        for flagged_row in chunk {
            let json = fixed.get(&flagged_row.id).unwrap_or(&flagged_row.row);
            match self.source_row(json) {
                Ok(source) => items.push(Item {
                    flagged: flagged_row,
                    source,
                }),
                Err((column, value, message)) => {
                    let again = FlaggedRow {
                        stage: "retry".into(),
                        column,
                        value,
                        error: message,
                        // A fix that cannot be read replaces nothing.
                        ..flagged_row.clone()
                    };
                    self.failed_again(&flagged_row, &again).await?;
                }
            }
        }
        Ok(items)
    }

    fn source_row(
        &self,
        json: &serde_json::Value,
    ) -> Result<Row, (Option<String>, Option<String>, String)> {
        let columns = &self.plan.source.columns;
        let Some(object) = json.as_object() else {
            return Err((
                None,
                None,
                format!("the row must be a JSON object, not {json}"),
            ));
        };
        if let Some(extra) = object
            .keys()
            .find(|k| !columns.iter().any(|c| &c.name == *k))
        {
            return Err((
                Some(extra.clone()),
                None,
                format!(
                    "source table `{}` has no column `{extra}`",
                    self.plan.source.name
                ),
            ));
        }
        columns
            .iter()
            .map(|c| {
                let Some(value) = object.get(&c.name) else {
                    let message = format!(
                        "the row has no value for column `{}` (write null for none)",
                        c.name
                    );
                    return Err((Some(c.name.clone()), None, message));
                };
                from_json(value, c.type_)
                    .map_err(|e| (Some(c.name.clone()), Some(value.to_string()), e.to_string()))
            })
            .collect()
    }

    /// Maps and transforms the rows; returns those to write, with theirs.
    async fn transform(
        &mut self,
        chain: &mut Chain,
        items: Vec<Item>,
    ) -> Result<Vec<(Item, Row)>, RetryError> {
        let rows = items.iter().map(|i| i.source.clone()).collect();
        let batch = SourceBatch {
            rows,
            first: 1,
            position: None,
            faults: Vec::new(),
        };
        let processed = process(self.plan, chain, batch).await?;
        let mut slots: Vec<Option<Item>> = items.into_iter().map(Some).collect();
        for failure in &processed.failures {
            let item = slots[failure.position as usize - 1]
                .take()
                .expect("one failure per row");
            self.failed_again_with(&item, failure).await?;
        }
        let output: Vec<(usize, Row)> = match processed.output {
            Output::Source => processed.source.rows.into_iter().enumerate().collect(),
            Output::Rows(rows) => rows,
        };
        let mut out = Vec::with_capacity(output.len());
        for (i, row) in output {
            out.push((slots[i].take().expect("one output per row"), row));
        }
        let dropped: Vec<i64> = slots.into_iter().flatten().map(|i| i.flagged.id).collect();
        self.state.resolve(&dropped, "dropped").await?;
        self.counts.dropped += dropped.len() as u64;
        Ok(out)
    }

    /// Leaves out the rows whose key the destination already holds (a sync
    /// or a person wrote it since): a retry never overwrites a row.
    async fn skip_present(
        &mut self,
        sink: &mut dyn SqlDestination,
        out: Vec<(Item, Row)>,
    ) -> Result<Vec<(Item, Row)>, RetryError> {
        let key = self.plan.output_key_names();
        if key.is_empty() || out.is_empty() {
            return Ok(out);
        }
        let present = self.find_present(sink, &out, &key).await?;
        let (gone, rest): (Vec<_>, Vec<_>) =
            out.into_iter().enumerate().partition(|(i, _)| present[*i]);
        let ids: Vec<i64> = gone.iter().map(|(_, (item, _))| item.flagged.id).collect();
        self.state.resolve(&ids, "present").await?;
        self.counts.present += ids.len() as u64;
        Ok(rest.into_iter().map(|(_, o)| o).collect())
    }

    /// Stages the rows in a scratch table tagged by index and takes out in
    /// SQL those whose key the destination holds: no value is ever spliced
    /// into a statement. The destination gets an index on the key (kept, as
    /// a sync keeps it) so each row is a lookup, not a scan.
    async fn find_present(
        &self,
        sink: &mut dyn SqlDestination,
        out: &[(Item, Row)],
        key: &[String],
    ) -> Result<Vec<bool>, RetryError> {
        let dialect = sink.dialect();
        let owner = format!("{}#retry", self.m.name);
        let scratch = format!("credvault_retry_{}", self.table());
        let mut columns = self.plan.output.clone();
        columns.push(Column {
            name: TAG.into(),
            type_: ColumnType::Int,
            nullable: false,
        });
        let rows: Vec<Row> = out
            .iter()
            .enumerate()
            .map(|(i, (_, row))| {
                let mut row = row.clone();
                row.push(crate::model::value::Value::Int(i as i64));
                row
            })
            .collect();
        let prepared = sink
            .prepare(
                &owner,
                &scratch,
                Shape::plain(&columns),
                Prepare::Fresh(IfExists::Replace),
            )
            .await?;
        let batch = WriteBatch {
            migration: &owner,
            prepared: &prepared,
            checkpoint_name: &scratch,
            columns: &columns,
            rows: &rows,
            all_or_nothing: false,
            checkpoint: &Checkpoint::default(),
        };
        if let Some((at, why)) = sink.write(batch).await?.into_iter().next() {
            sink.drop_table(&scratch).await?;
            return Err(RetryError::Refused(format!(
                "table `{}`: staging flagged row #{} to compare its key failed: {why}",
                self.table(),
                out[at].0.flagged.id
            )));
        }
        let (table, staged) = (sink.sql_name(self.table()), sink.sql_name(&scratch));
        // The key index a sync makes too: one lookup per row, not a scan.
        // A table the user made keeps its own indexes, and nothing more.
        if owner::owns(sink, &self.m.name, self.table()).await? {
            sink.execute(&dialect.key_index(self.table(), &table, key))
                .await?;
        }
        // One statement takes the staged rows whose key the table holds out;
        // only when there were some does a count per row tell which.
        let mut steps = vec![Step::Exec(dialect.delete_keys(&staged, &table, key))];
        let no_checkpoint = Checkpoint::default();
        let taken = sink
            .run_script(&owner, &scratch, &steps, &no_checkpoint)
            .await?;
        let present = match taken[0] {
            0 => vec![false; rows.len()],
            _ => {
                steps = (0..rows.len())
                    .map(|i| Step::Count(dialect.count_tagged(&staged, TAG, i)))
                    .collect();
                let left = sink
                    .run_script(&owner, &scratch, &steps, &no_checkpoint)
                    .await?;
                left.into_iter().map(|n| n == 0).collect()
            }
        };
        sink.drop_table(&scratch).await?;
        sink.reset(&owner).await?;
        Ok(present)
    }

    /// Writes the rows, each batch with the ids it holds; a refused row is
    /// taken out of its batch and stays flagged with the destination's error.
    async fn write(
        &mut self,
        sink: &mut dyn Sink,
        prepared: &Prepared,
        out: Vec<(Item, Row)>,
    ) -> Result<(), RetryError> {
        let (mut items, mut rows): (Vec<Item>, Vec<Row>) = out.into_iter().unzip();
        while !rows.is_empty() {
            let ids: Vec<i64> = items.iter().map(|i| i.flagged.id).collect();
            let checkpoint = Checkpoint {
                cursor: Some(ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")),
                ..Checkpoint::default()
            };
            let name = self.checkpoint_name();
            let batch = WriteBatch {
                migration: &self.m.name,
                prepared,
                checkpoint_name: &name,
                columns: &self.plan.output,
                rows: &rows,
                all_or_nothing: true,
                checkpoint: &checkpoint,
            };
            let rejected = sink.write(batch).await?;
            let Some((at, message)) = rejected.into_iter().next() else {
                self.state.resolve(&ids, "written").await?;
                self.counts.written += ids.len() as u64;
                return Ok(());
            };
            rows.remove(at);
            let item = items.remove(at);
            let failure = self.plan.failure(
                &item.source,
                item.flagged.position as u64,
                "destination".into(),
                None,
                None,
                message,
            );
            self.failed_again_with(&item, &failure).await?;
        }
        Ok(())
    }

    async fn failed_again_with(
        &mut self,
        item: &Item,
        failure: &RowFailure,
    ) -> Result<(), RetryError> {
        let again = flagged(failure, item.flagged.run_id, &self.m.name);
        self.failed_again(&item.flagged, &again).await
    }

    async fn failed_again(
        &mut self,
        row: &FlaggedRow,
        again: &FlaggedRow,
    ) -> Result<(), RetryError> {
        self.state.failed_again(row.id, again).await?;
        self.counts.failed += 1;
        Ok(())
    }
}
