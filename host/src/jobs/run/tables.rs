//! The executor: streams each table from source through mapping and
//! transforms into the sink in bounded batches, in load-order waves,
//! applying the row-error policy and recording progress, checkpoints and
//! flagged rows.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::events::{Events, RunError, RunEvent};
use crate::config::{ErrorPolicy, IfExists, Migration, OnOrphan};
use crate::drivers::{
    Checkpoint, ConnectorError, FailureKind, KeyRange, Prepare, Prepared, ReadRequest, Sink,
    Source, SourceBatch, WriteBatch, open_sink, owner,
};
use crate::engine::batch::{Output, Processed, RowFailure, process};
use crate::engine::order::load_order;
use crate::engine::plan::TablePlan;
use crate::engine::transforms::PluginStats;
use crate::jobs::policy::{self, Counting, RowPolicy};
use crate::jobs::progress::{Tallies, Tally, pace};
use crate::jobs::retry::settle_cycle;
use crate::model::text::untrusted;
use crate::model::value::{Row, TableInfo};
use crate::state::{FlaggedRow, RunCounts, StateStore};

/// Batches buffered between two stages: memory stays bounded by a few
/// batches whatever the table's size.
const BATCHES_IN_FLIGHT: usize = 2;
/// How often a running table's progress is copied to the state store.
const STATE_CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest wait before trying a table again after a lost connection.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The reader task, the map-and-transform task (which returns its
/// plugins' resource use) and the stream of processed batches.
type Stages = (
    JoinHandle<()>,
    JoinHandle<Vec<PluginStats>>,
    mpsc::Receiver<Result<Processed, RunError>>,
);

/// Moves the tables, `settings.parallel_tables` at a time, each with its
/// own destination connection. After a table fails no new table starts;
/// the first failure is the run's.
pub(super) async fn run_tables(
    m: &Migration,
    plans: &[TablePlan],
    source: &Arc<dyn Source>,
    state: &StateStore,
    run_id: i64,
    resuming: bool,
    events: &Events<'_>,
) -> (RunCounts, Result<(), RunError>) {
    let order = match open_sink(m).await {
        Ok(sink) => load_order(sink.as_ref(), plans).await,
        Err(err) => Err(err),
    };
    let order = match order {
        Ok(order) => order,
        Err(err) => return (RunCounts::default(), Err(err.into())),
    };
    let failed = AtomicBool::new(false);
    let mut outcomes = Vec::with_capacity(plans.len());
    for wave in &order.waves {
        outcomes.extend(run_wave(m, wave, source, state, run_id, resuming, events, &failed).await);
    }
    let mut totals = RunCounts::default();
    let mut result = Ok(());
    for (counts, outcome) in outcomes {
        add(&mut totals, &counts);
        if let (Err(err), Ok(())) = (outcome, &result) {
            result = Err(err);
        }
    }
    let unordered: Vec<&TablePlan> = plans
        .iter()
        .filter(|p| order.unordered().any(|t| t == p.spec.destination()))
        .collect();
    if !unordered.is_empty()
        && !failed.load(Ordering::SeqCst)
        && let Err(err) = settle(m, &unordered, state, run_id, &mut totals, events).await
        && result.is_ok()
    {
        result = Err(err);
    }
    (totals, result)
}

/// Writes again what the tables of a foreign-key cycle refused for a
/// missing parent, now that every table of the cycle is in (see
/// [`settle_cycle`]), and moves those rows from skipped or flagged to
/// written in `totals`. A table whose transforms must not be called again
/// (they write or send something) keeps its refused rows as they are.
async fn settle(
    m: &Migration,
    cycle: &[&TablePlan],
    state: &StateStore,
    run_id: i64,
    totals: &mut RunCounts,
    events: &Events<'_>,
) -> Result<(), RunError> {
    let mut callable = Vec::with_capacity(cycle.len());
    for &plan in cycle {
        match crate::engine::not_callable(plan) {
            None => callable.push(plan),
            Some(why) => tracing::warn!(
                "{}: rows refused for a missing parent are left as they are, not written again: {why}",
                events.table(plan)
            ),
        }
    }
    let cycle = callable;
    let settled = settle_cycle(m, &cycle, state).await?;
    for (plan, t) in cycle.iter().zip(&settled) {
        if t.counts.retried == 0 {
            continue;
        }
        let written = t.counts.written;
        totals.written += written;
        let flagged = plan.policy == ErrorPolicy::Flag || plan.spec.on_orphan == OnOrphan::Flag;
        match flagged {
            true => totals.flagged -= written.min(totals.flagged),
            false => totals.skipped -= written.min(totals.skipped),
        }
        let refused = state.orphans(&m.name, &t.table).await?.len() as u64;
        events.on(&RunEvent::CycleSettled {
            table: events.table(plan),
            source: events.source(),
            written,
            refused,
        });
    }
    let detail = serde_json::json!({ "tables": settled });
    state
        .event(&m.name, Some(run_id), "cycle_settled", &detail)
        .await?;
    Ok(())
}

/// Moves one wave of tables, `parallel_tables` at a time.
#[allow(clippy::too_many_arguments)]
async fn run_wave(
    m: &Migration,
    wave: &[&TablePlan],
    source: &Arc<dyn Source>,
    state: &StateStore,
    run_id: i64,
    resuming: bool,
    events: &Events<'_>,
    failed: &AtomicBool,
) -> Vec<(RunCounts, Result<(), RunError>)> {
    futures_util::stream::iter(wave.iter().copied())
        .map(|table| async {
            let mut run = TableRun::new(m, table, run_id, state);
            if failed.load(Ordering::SeqCst) {
                events.on(&RunEvent::TableSkipped {
                    table: events.table(table),
                    source: events.source(),
                    reason: "not started: a table whose policy is `stop` failed".into(),
                });
                return (run.counts, Ok(()));
            }
            let outcome = match open_sink(m).await {
                Ok(sink) => run.run(source, sink, resuming, events).await,
                Err(err) => Err(err.into()),
            };
            let outcome = outcome.map_err(|e| run.named(e));
            if let Err(err) = &outcome {
                // Under `skip` and `flag` the other tables go on (the run
                // still ends failed); `stop` stops the run.
                if m.policy(&table.spec) == ErrorPolicy::Stop {
                    failed.store(true, Ordering::SeqCst);
                }
                let detail = serde_json::json!({ "table": run.shown(), "error": err.to_string() });
                let _ = state
                    .event(&m.name, Some(run_id), "table_failed", &detail)
                    .await;
            }
            (run.counts, outcome)
        })
        .buffer_unordered(m.settings.parallel_tables.max(1))
        .collect()
        .await
}

/// A destination connection with the table prepared on it: what writing
/// the table needs. A connection made after a lost one replaces both.
struct Connection {
    sink: Box<dyn Sink>,
    table: Prepared,
}

/// A table's exact row count, counted on its own task alongside the copy
/// (a full count of a large table takes a while).
struct Total {
    counting: Option<JoinHandle<Result<u64, ConnectorError>>>,
    rows: u64,
}

impl Total {
    fn count(source: &Arc<dyn Source>, table: &TableInfo) -> Self {
        let (source, table) = (Arc::clone(source), table.clone());
        Self {
            counting: Some(tokio::spawn(async move { source.count(&table).await })),
            rows: 0,
        }
    }

    fn known(rows: u64) -> Self {
        Self {
            counting: None,
            rows,
        }
    }

    async fn get(&mut self) -> Result<u64, RunError> {
        if let Some(counting) = self.counting.take() {
            self.rows = counting.await.expect("count task panicked")?;
        }
        Ok(self.rows)
    }
}

/// Adds the resource use of a slice's plugins to the table's.
fn merge(total: &mut Vec<PluginStats>, more: Vec<PluginStats>) {
    if total.is_empty() {
        *total = more;
        return;
    }
    for (t, m) in total.iter_mut().zip(more) {
        t.calls += m.calls;
        t.instances += m.instances;
        t.fuel += m.fuel;
        t.peak_memory = t.peak_memory.max(m.peak_memory);
        t.seconds += m.seconds;
        t.rows_in += m.rows_in;
        t.rows_out += m.rows_out;
        t.rows_dropped += m.rows_dropped;
        t.rows_failed += m.rows_failed;
    }
}

fn add(total: &mut RunCounts, c: &RunCounts) {
    total.read += c.read;
    total.written += c.written;
    total.dropped += c.dropped;
    total.skipped += c.skipped;
    total.flagged += c.flagged;
}

/// One table's run, or one key range of a split table.
struct TableRun<'a> {
    m: &'a Migration,
    plan: &'a TablePlan,
    run_id: i64,
    state: &'a StateStore,
    counts: RunCounts,
    plugins: Vec<PluginStats>,
    /// Set when this run moves one key range of a split table.
    slice: Option<Slice>,
    /// Where the table (or range) stood when this run started on it.
    resumed_at: Option<u64>,
    /// What this run had counted when its last batch was committed, and
    /// the rows it flagged since: a lost batch's are taken back.
    committed: RunCounts,
    committed_rows: u64,
    unsaved_flags: Vec<i64>,
    /// The batch being written: the rows its checkpoint counts, and what
    /// the run counts once it is in. A lost connection leaves it in doubt
    /// until the destination's checkpoint tells.
    in_flight: Option<(u64, RunCounts)>,
}

/// A key range of a split table, with the name its checkpoint goes by.
#[derive(Debug, Clone)]
struct Slice {
    checkpoint: String,
    range: KeyRange,
    /// Which range it is (from 0), and where every range of the table stands.
    index: usize,
    tallies: Arc<Tallies>,
}

/// The name the checkpoint of range `i` of `count` goes by.
fn range_name(table: &str, i: usize, count: usize) -> String {
    format!("{table}#{}/{count}", i + 1)
}

impl<'a> TableRun<'a> {
    fn new(m: &'a Migration, plan: &'a TablePlan, run_id: i64, state: &'a StateStore) -> Self {
        Self {
            m,
            plan,
            run_id,
            state,
            counts: RunCounts::default(),
            plugins: Vec::new(),
            slice: None,
            resumed_at: None,
            committed: RunCounts::default(),
            committed_rows: 0,
            unsaved_flags: Vec::new(),
            in_flight: None,
        }
    }

    /// An error leaving this table, naming it (not every driver's message
    /// does). One that leaves the committed rows in place says that the
    /// next run resumes after them.
    fn named(&self, err: RunError) -> RunError {
        let RunError::Connector(mut source) = err else {
            return err;
        };
        if !source.message.contains(&format!("`{}`", self.table())) {
            source.message = format!("table `{}`: {}", self.shown(), source.message);
        }
        match source.kind {
            FailureKind::Other => RunError::Connector(source),
            _ => RunError::Resumable {
                table: self.shown().to_string(),
                retries: 0,
                source,
            },
        }
    }

    /// An error of this key range, naming the table and the rows, never the
    /// name the range's checkpoint goes by.
    fn in_range(&self, err: RunError) -> RunError {
        match err {
            RunError::Connector(mut e) => {
                e.message = self.unmasked(&e.message);
                RunError::Connector(e)
            }
            RunError::Resumable {
                table,
                retries,
                mut source,
            } => {
                source.message = self.unmasked(&source.message);
                RunError::Resumable {
                    table,
                    retries,
                    source,
                }
            }
            other => other,
        }
    }

    /// `text` with this key range's checkpoint name (`big#4/4`) replaced by
    /// the table and its rows.
    fn unmasked(&self, text: &str) -> String {
        let Some(slice) = &self.slice else {
            return text.to_string();
        };
        let internal = format!("`{}`", slice.checkpoint);
        let shown = format!("`{}` ({})", self.shown(), self.range_rows(slice.range));
        text.replace(&internal, &shown)
    }

    /// A key range as a person reads it: `rows with id from 1 to 250000`.
    fn range_rows(&self, range: KeyRange) -> String {
        let key = self.plan.source.primary_key.first().map_or("key", |k| k);
        match (range.lo, range.hi) {
            (Some(lo), Some(hi)) => format!("rows with {key} from {lo} to {}", hi - 1),
            (Some(lo), None) => format!("rows with {key} from {lo} on"),
            (None, Some(hi)) => format!("rows with {key} below {hi}"),
            (None, None) => "every row".into(),
        }
    }

    fn table(&self) -> &str {
        self.plan.spec.destination()
    }

    /// The table as a person knows it: a scratch table (a dry run's, a
    /// sync's) by the table it stands for.
    fn shown(&self) -> &str {
        self.plan.spec.stands_for.as_deref().unwrap_or(self.table())
    }

    /// The name this run's checkpoints go by: the table, or the slice.
    fn checkpoint_name(&self) -> &str {
        self.slice.as_ref().map_or(self.table(), |s| &s.checkpoint)
    }

    /// Prepares the destination table on `sink` and returns where reading
    /// starts (after the last committed checkpoint when resuming) with the
    /// connection to write through; none when the interrupted run finished
    /// the table.
    async fn start(
        &self,
        mut sink: Box<dyn Sink>,
        resuming: bool,
    ) -> Result<(Checkpoint, Option<Connection>), RunError> {
        let (name, table) = (&self.m.name, self.table());
        let committed = match resuming {
            true => sink.committed(name, table).await?,
            false => None,
        };
        if let Some(checkpoint) = committed {
            if checkpoint.done {
                return Ok((checkpoint, None));
            }
            owner::check_resume(sink.as_ref(), name, table).await?;
            let conn = self.resume(sink).await?;
            return Ok((checkpoint, Some(conn)));
        }
        let if_exists = self.plan.spec.if_exists;
        let existed = sink.existing_rows(table).await?;
        let prepared = sink
            .prepare(name, table, self.plan.shape(), Prepare::Fresh(if_exists))
            .await?;
        let created = existed.is_none() || if_exists == IfExists::Replace;
        if created {
            owner::claim(sink.as_mut(), name, table).await?;
        }
        let rows_before = existed.filter(|_| !created).unwrap_or(0);
        owner::mark_start(sink.as_mut(), name, table, rows_before).await?;
        let mut conn = Connection {
            sink,
            table: prepared,
        };
        let start = Checkpoint::default();
        // Committing an empty first batch records that the table is ours, so
        // a crash before the first real batch still resumes.
        self.commit(&mut conn, &[], &start, false).await?;
        Ok((start, Some(conn)))
    }

    /// Prepares the table, which this run has started, on `sink`: a key
    /// range's own connection, or one made after a lost one.
    async fn resume(&self, mut sink: Box<dyn Sink>) -> Result<Connection, RunError> {
        let (name, table) = (&self.m.name, self.table());
        let shape = self.plan.shape();
        let prepared = sink.prepare(name, table, shape, Prepare::Resume).await?;
        Ok(Connection {
            sink,
            table: prepared,
        })
    }

    async fn commit(
        &self,
        conn: &mut Connection,
        rows: &[Row],
        checkpoint: &Checkpoint,
        all_or_nothing: bool,
    ) -> Result<Vec<crate::drivers::Rejected>, RunError> {
        let name = self.checkpoint_name();
        self.commit_as(conn, name, rows, checkpoint, all_or_nothing)
            .await
    }

    /// Writes rows to the table with a checkpoint kept under `name`.
    async fn commit_as(
        &self,
        conn: &mut Connection,
        name: &str,
        rows: &[Row],
        checkpoint: &Checkpoint,
        all_or_nothing: bool,
    ) -> Result<Vec<crate::drivers::Rejected>, RunError> {
        let batch = WriteBatch {
            migration: &self.m.name,
            prepared: &conn.table,
            checkpoint_name: name,
            columns: &self.plan.output,
            rows,
            all_or_nothing,
            checkpoint,
        };
        Ok(conn.sink.write(batch).await?)
    }

    async fn run(
        &mut self,
        source: &Arc<dyn Source>,
        sink: Box<dyn Sink>,
        resuming: bool,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        let started = Instant::now();
        let table = self.table().to_string();
        let (checkpoint, conn) = self.start(sink, resuming).await?;
        let Some(mut conn) = conn else {
            events.on(&RunEvent::TableSkipped {
                table: events.table(self.plan),
                source: events.source(),
                reason: "completed by the interrupted run".into(),
            });
            return Ok(());
        };
        let mut total = Total::count(source, &self.plan.source);
        let checkpoint = match self
            .split(source, &mut conn, &mut total, &checkpoint)
            .await?
        {
            Some(ranges) => {
                let total = total.get().await?;
                let committed = self
                    .ranges_committed(conn.sink.as_ref(), ranges.len())
                    .await?;
                events.on(&RunEvent::TableStarted {
                    table: events.table(self.plan),
                    source: events.source(),
                    total,
                    resumed_at: committed.iter().sum(),
                    ranges: ranges.len(),
                });
                let tallies = Arc::new(Tallies::resumed(&committed));
                self.run_slices(source, ranges, tallies, total, events)
                    .await?
            }
            None => {
                if resuming {
                    self.state
                        .reread(&self.m.name, &table, checkpoint.rows)
                        .await?;
                }
                self.move_retrying(source, &mut conn, checkpoint, &mut total, started, events)
                    .await?
            }
        };
        conn.sink
            .finish(&self.m.name, conn.table, &checkpoint)
            .await?;
        self.state
            .checkpoint(&self.m.name, &table, self.run_id, checkpoint.rows)
            .await?;
        let detail = serde_json::json!({ "table": self.shown(), "counts": self.counts, "plugins": self.plugins });
        self.state
            .event(&self.m.name, Some(self.run_id), "table_finished", &detail)
            .await?;
        events.on(&RunEvent::TableFinished {
            table: events.table(self.plan),
            source: events.source(),
            counts: self.counts,
            done: checkpoint.rows,
            plugins: self.plugins.clone(),
            elapsed_s: started.elapsed().as_secs_f64(),
        });
        Ok(())
    }

    /// The rows each of the table's `count` key ranges committed before
    /// this run (none, unless it resumes an interrupted one).
    async fn ranges_committed(&self, sink: &dyn Sink, count: usize) -> Result<Vec<u64>, RunError> {
        let mut rows = Vec::with_capacity(count);
        for i in 0..count {
            let name = range_name(self.table(), i, count);
            let committed = sink.committed(&self.m.name, &name).await?;
            rows.push(committed.map_or(0, |c| c.rows));
        }
        Ok(rows)
    }

    /// The key ranges to move this table in, when `settings.split_rows`
    /// asks for it, the table has a single integer key, and the destination
    /// takes concurrent writers. The ranges are fixed by the first run (and
    /// kept with the checkpoints), so a resumed run slices the same way.
    async fn split(
        &self,
        source: &Arc<dyn Source>,
        conn: &mut Connection,
        total: &mut Total,
        checkpoint: &Checkpoint,
    ) -> Result<Option<Vec<KeyRange>>, RunError> {
        let plan_name = format!("{}#ranges", self.table());
        if let Some(saved) = conn.sink.committed(&self.m.name, &plan_name).await? {
            return Ok(Some(KeyRange::decode(
                saved.key.as_deref().unwrap_or_default(),
            )));
        }
        let split_rows = self.m.settings.split_rows;
        if split_rows == 0 || checkpoint.rows > 0 || !conn.sink.concurrent_writers() {
            return Ok(None);
        }
        let rows = match self.plan.source.approx_rows {
            Some(rows) if rows > 0 => rows,
            _ => total.get().await?,
        };
        if rows <= split_rows {
            return Ok(None);
        }
        let Some((lo, hi)) = source.key_bounds(&self.plan.source).await? else {
            return Ok(None);
        };
        let ranges = KeyRange::split(lo, hi, rows.div_ceil(split_rows));
        let saved = Checkpoint {
            key: Some(KeyRange::encode(&ranges)),
            ..Checkpoint::default()
        };
        self.commit_as(conn, &plan_name, &[], &saved, false).await?;
        Ok(Some(ranges))
    }

    /// Moves each key range on its own connection, `parallel_tables` at a
    /// time; returns the table's final checkpoint.
    async fn run_slices(
        &mut self,
        source: &Arc<dyn Source>,
        ranges: Vec<KeyRange>,
        tallies: Arc<Tallies>,
        total: u64,
        events: &Events<'_>,
    ) -> Result<Checkpoint, RunError> {
        let count = ranges.len();
        let started = Instant::now();
        let (m, plan, run_id, state) = (self.m, self.plan, self.run_id, self.state);
        let table = self.table().to_string();
        let outcomes: Vec<(RunCounts, Vec<PluginStats>, Result<Checkpoint, RunError>)> =
            futures_util::stream::iter(ranges.into_iter().enumerate())
                .map(|(i, range)| {
                    let (table, tallies) = (&table, Arc::clone(&tallies));
                    async move {
                        let mut slice = TableRun::new(m, plan, run_id, state);
                        slice.slice = Some(Slice {
                            checkpoint: range_name(table, i, count),
                            range,
                            index: i,
                            tallies,
                        });
                        let outcome = slice.run_slice(source, total, started, events).await;
                        (slice.counts, slice.plugins, outcome)
                    }
                })
                .buffer_unordered(m.settings.parallel_tables.max(1))
                .collect()
                .await;
        let mut rows = 0;
        let mut first_error = None;
        for (counts, plugins, outcome) in outcomes {
            add(&mut self.counts, &counts);
            merge(&mut self.plugins, plugins);
            match outcome {
                Ok(done) => rows += done.rows,
                Err(err) => first_error = first_error.or(Some(err)),
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(Checkpoint {
                rows,
                ..Checkpoint::default()
            }),
        }
    }

    /// One key range, on its own destination connection.
    async fn run_slice(
        &mut self,
        source: &Arc<dyn Source>,
        total: u64,
        started: Instant,
        events: &Events<'_>,
    ) -> Result<Checkpoint, RunError> {
        let moved = self.move_slice(source, total, started, events).await;
        moved.map_err(|e| self.in_range(e))
    }

    async fn move_slice(
        &mut self,
        source: &Arc<dyn Source>,
        total: u64,
        started: Instant,
        events: &Events<'_>,
    ) -> Result<Checkpoint, RunError> {
        let sink = open_sink(self.m).await?;
        let name = self.checkpoint_name().to_string();
        let checkpoint = sink
            .committed(&self.m.name, &name)
            .await?
            .unwrap_or_default();
        if checkpoint.done {
            return Ok(checkpoint);
        }
        let mut conn = self.resume(sink).await?;
        let done = self
            .move_retrying(
                source,
                &mut conn,
                checkpoint,
                &mut Total::known(total),
                started,
                events,
            )
            .await?;
        let done = Checkpoint { done: true, ..done };
        self.commit(&mut conn, &[], &done, false).await?;
        Ok(done)
    }

    /// [`Self::move_rows`], trying again after a lost connection: each try
    /// reconnects and resumes after the destination's last committed
    /// checkpoint, up to `settings.retries` times in a row (a try that
    /// commits a batch starts the count afresh), waiting longer each time.
    /// A new connection replaces `conn`.
    async fn move_retrying(
        &mut self,
        source: &Arc<dyn Source>,
        conn: &mut Connection,
        checkpoint: Checkpoint,
        total: &mut Total,
        started: Instant,
        events: &Events<'_>,
    ) -> Result<Checkpoint, RunError> {
        let retries = self.m.settings.retries;
        let (mut from, mut attempt) = (checkpoint, 0);
        loop {
            let resumed = from.rows;
            let moved = self
                .move_rows(source, conn, from.clone(), total, started, events)
                .await;
            let mut err = match moved {
                Ok(done) => return Ok(done),
                Err(err) => err,
            };
            if self.committed_rows > resumed {
                attempt = 0;
            }
            loop {
                if !err.lost_connection() || attempt == retries {
                    // Given up: the batch in doubt is taken back (the next
                    // run resumes from the destination's checkpoint).
                    self.settle_in_doubt(None).await;
                }
                if !err.lost_connection() {
                    return Err(err);
                }
                if attempt == retries {
                    return Err(self.gave_up(err, attempt));
                }
                attempt += 1;
                let delay = backoff(attempt);
                self.retrying(&err, attempt, delay, events).await?;
                tokio::time::sleep(delay).await;
                match self.reconnect().await {
                    Ok((again, checkpoint)) => {
                        self.settle_in_doubt(Some(checkpoint.rows)).await;
                        (*conn, from) = (again, checkpoint);
                        break;
                    }
                    Err(e) => err = e,
                }
            }
        }
    }

    /// What the batch in flight when the connection broke counted and
    /// flagged stands if the destination's checkpoint (at `committed_rows`)
    /// shows it committed, and is taken back if not, or if nobody asked the
    /// destination (`None`): the next run reads it again.
    async fn settle_in_doubt(&mut self, committed_rows: Option<u64>) {
        let unsaved = std::mem::take(&mut self.unsaved_flags);
        match (self.in_flight.take(), committed_rows) {
            (Some((rows, counts)), Some(committed)) if committed >= rows => {
                tracing::warn!(
                    "{}: the batch in flight when the connection broke did commit; rows the destination refused in it, if any, were not recorded (validation's row count tells)",
                    self.shown()
                );
                self.counts = counts;
                self.committed = counts;
                self.committed_rows = rows;
            }
            _ => {
                self.counts = self.committed;
                if let Err(e) = self.state.unflag(&unsaved).await {
                    tracing::warn!(
                        "rows flagged in a batch that was not committed stay flagged: {e}"
                    );
                }
            }
        }
    }

    /// A lost connection given up on: the table stops, and says that the
    /// next run resumes it.
    fn gave_up(&self, err: RunError, retries: u32) -> RunError {
        match err {
            RunError::Connector(source) => RunError::Resumable {
                table: self.shown().to_string(),
                retries,
                source,
            },
            other => other,
        }
    }

    /// Tells the observers and the audit log that the table tries again.
    async fn retrying(
        &self,
        err: &RunError,
        attempt: u32,
        delay: Duration,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        let range = self.slice.as_ref().map(|s| self.range_rows(s.range));
        let error = self.unmasked(&err.to_string());
        let detail = serde_json::json!({
            "table": self.shown(), "range": range, "attempt": attempt,
            "retries": self.m.settings.retries, "committed": self.committed_rows, "error": error,
        });
        self.state
            .event(&self.m.name, Some(self.run_id), "table_retried", &detail)
            .await?;
        events.on(&RunEvent::Retrying {
            table: events.table(self.plan),
            source: events.source(),
            range,
            attempt,
            retries: self.m.settings.retries,
            delay_s: delay.as_secs_f64(),
            committed: self.committed_rows,
            error,
        });
        Ok(())
    }

    /// A new destination connection, ready for this table (or range), and
    /// the destination's last committed checkpoint: the batch in flight
    /// when the connection broke may have committed or not, and only the
    /// destination knows.
    async fn reconnect(&self) -> Result<(Connection, Checkpoint), RunError> {
        let conn = self.resume(open_sink(self.m).await?).await?;
        let checkpoint = conn
            .sink
            .committed(&self.m.name, self.checkpoint_name())
            .await?
            .unwrap_or_default();
        Ok((conn, checkpoint))
    }

    /// Streams rows from the checkpoint on; on failure, takes back what was
    /// counted and flagged for batches never committed (a resumed run reads
    /// them again).
    async fn move_rows(
        &mut self,
        source: &Arc<dyn Source>,
        conn: &mut Connection,
        checkpoint: Checkpoint,
        total: &mut Total,
        started: Instant,
        events: &Events<'_>,
    ) -> Result<Checkpoint, RunError> {
        self.committed = self.counts;
        self.committed_rows = checkpoint.rows;
        self.in_flight = None;
        let moved = self
            .move_batches(source, conn, checkpoint, total, started, events)
            .await;
        if let Err(err) = &moved
            && !err.lost_connection()
        {
            // Nothing to reconnect to ask: taken back, as a batch that
            // failed before its commit (the next run reads it again).
            self.settle_in_doubt(None).await;
        }
        moved
    }

    /// Streams rows from the checkpoint on: read | map and transform | write.
    async fn move_batches(
        &mut self,
        source: &Arc<dyn Source>,
        conn: &mut Connection,
        mut checkpoint: Checkpoint,
        total: &mut Total,
        started: Instant,
        events: &Events<'_>,
    ) -> Result<Checkpoint, RunError> {
        let table = self.table().to_string();
        let request = ReadRequest {
            table: self.plan.source.clone(),
            batch_size: self.m.settings.batch_size,
            limit: None,
            after: (checkpoint.rows > 0).then(|| checkpoint.clone()),
            range: self.slice.as_ref().map(|s| s.range),
            any_order: false,
            since: self.plan.spec.since.clone(),
        };
        let (reader, transformer, mut processed) = self.spawn_stages(source, request);
        let total = total.get().await?;
        let first_try = self.resumed_at.is_none();
        let resumed_at = *self.resumed_at.get_or_insert(checkpoint.rows);
        if self.slice.is_none() && first_try {
            events.on(&RunEvent::TableStarted {
                table: events.table(self.plan),
                source: events.source(),
                total,
                resumed_at,
                ranges: 0,
            });
        }
        let mut last_state_write = Instant::now();
        while let Some(batch) = processed.recv().await {
            let batch = batch?;
            let consumed = batch.source.rows.len() as u64;
            self.counts.read += consumed;
            self.counts.dropped += batch.dropped;
            self.apply_policies(batch.failures, events).await?;
            checkpoint = Checkpoint {
                rows: checkpoint.rows + consumed,
                key: batch
                    .source
                    .rows
                    .last()
                    .and_then(|row| self.plan.order_key(row)),
                done: false,
                cursor: None,
                position: batch.source.position.clone(),
            };
            let mut landed = self.counts;
            landed.written += match &batch.output {
                Output::Source => batch.source.rows.len(),
                Output::Rows(rows) => rows.len(),
            } as u64;
            self.in_flight = Some((checkpoint.rows, landed));
            self.write(conn, batch.output, &batch.source, &checkpoint, events)
                .await?;
            self.in_flight = None;
            self.committed = self.counts;
            self.committed_rows = checkpoint.rows;
            self.unsaved_flags.clear();
            // The destination holds the authoritative checkpoint; the state
            // store's copy is for `status`, so it need not be written per batch.
            if self.slice.is_none() && last_state_write.elapsed() >= STATE_CHECKPOINT_EVERY {
                self.state
                    .checkpoint(&self.m.name, &table, self.run_id, checkpoint.rows)
                    .await?;
                last_state_write = Instant::now();
            }
            if self.slice.is_none()
                && let Some(percent) = milestone(checkpoint.rows - consumed, checkpoint.rows, total)
            {
                let detail = serde_json::json!({ "table": self.shown(), "percent": percent, "rows": checkpoint.rows, "total": total });
                self.state
                    .event(&self.m.name, Some(self.run_id), "progress", &detail)
                    .await?;
            }
            let mine = Tally {
                done: checkpoint.rows,
                resumed_at,
                written: self.counts.written,
                errors: self.counts.skipped + self.counts.flagged,
            };
            events.on(&self.progress(mine, total, started, events));
        }
        reader.await.expect("reader task panicked");
        let plugins = transformer.await.expect("transform task panicked");
        merge(&mut self.plugins, plugins);
        Ok(checkpoint)
    }

    /// The table's progress event once this run (or this key range) is at
    /// `mine`: a key range reports the sum over the table's ranges.
    fn progress(&self, mine: Tally, total: u64, started: Instant, events: &Events<'_>) -> RunEvent {
        let (tally, range) = match &self.slice {
            Some(s) => {
                let range = format!("{}/{}", s.index + 1, s.tallies.ranges());
                (s.tallies.set(s.index, mine), Some(range))
            }
            None => (mine, None),
        };
        let elapsed_s = started.elapsed().as_secs_f64();
        let (rows_per_s, eta_s) = pace(tally, total, elapsed_s);
        RunEvent::Progress {
            table: events.table(self.plan),
            source: events.source(),
            done: tally.done,
            total,
            written: tally.written,
            errors: tally.errors,
            elapsed_s,
            resumed_at: tally.resumed_at,
            rows_per_s,
            eta_s,
            range,
        }
    }

    /// Starts the reader and the map-and-transform stage on their own tasks,
    /// joined by bounded channels: reading, transforming and writing overlap,
    /// and memory stays bounded by the batches in flight.
    fn spawn_stages(&self, source: &Arc<dyn Source>, request: ReadRequest) -> Stages {
        let (read_tx, mut read_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let (done_tx, done_rx) = mpsc::channel(BATCHES_IN_FLIGHT);
        let source = Arc::clone(source);
        let reader = tokio::spawn(async move { source.read(request, read_tx).await });
        let plan = self.plan.clone();
        let mut chain = policy::chain(self.m, &plan);
        let transformer = tokio::spawn(async move {
            while let Some(batch) = read_rx.recv().await {
                let processed = match batch {
                    Ok(batch) => process(&plan, &mut chain, batch)
                        .await
                        .map_err(RunError::from),
                    Err(err) => Err(err.into()),
                };
                let failed = processed.is_err();
                if done_tx.send(processed).await.is_err() || failed {
                    break;
                }
            }
            chain.stats().to_vec()
        });
        (reader, transformer, done_rx)
    }

    async fn write(
        &mut self,
        conn: &mut Connection,
        output: Output,
        source: &SourceBatch,
        checkpoint: &Checkpoint,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        let (index, rows): (Vec<usize>, Cow<'_, [Row]>) = match output {
            Output::Source => (
                (0..source.rows.len()).collect(),
                Cow::Borrowed(&source.rows),
            ),
            Output::Rows(rows) => {
                let (index, rows): (Vec<usize>, Vec<Row>) = rows.into_iter().unzip();
                (index, Cow::Owned(rows))
            }
        };
        let stop = self.plan.policy == ErrorPolicy::Stop;
        let rejected = self.commit(conn, &rows, checkpoint, stop).await?;
        let refused = if stop && !rejected.is_empty() {
            rows.len()
        } else {
            rejected.len()
        };
        self.counts.written += (rows.len() - refused) as u64;
        for (i, message) in rejected {
            let at = index[i];
            let position = source.first + at as u64;
            let failure = self.plan.failure(
                &source.rows[at],
                position,
                "destination".into(),
                None,
                None,
                message,
            );
            self.apply_policy(failure, events).await?;
        }
        Ok(())
    }

    /// The table's row policy in this run.
    fn policy(&self) -> RowPolicy<'a> {
        RowPolicy {
            migration: &self.m.name,
            plan: self.plan,
            run_id: self.run_id,
            state: self.state,
        }
    }

    /// Applies the table's policy to a failed row (see [`RowPolicy::apply`]).
    async fn apply_policy(
        &mut self,
        failure: RowFailure,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        let policy = self.policy();
        let tally = Counting {
            counts: &mut self.counts,
            flagged: &mut self.unsaved_flags,
        };
        policy.apply(failure, tally, events).await
    }

    /// Applies the policy to the rows a batch's mapping and transforms
    /// failed, before the batch is written.
    async fn apply_policies(
        &mut self,
        failures: Vec<RowFailure>,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        let policy = self.policy();
        let tally = Counting {
            counts: &mut self.counts,
            flagged: &mut self.unsaved_flags,
        };
        policy.apply_all(failures, tally, events).await
    }
}

/// The wait before try `attempt` (from 1): 1 s, 2 s, 4 s … at most
/// [`MAX_BACKOFF`], less up to a fifth at random, so key ranges that lost
/// the same server do not all knock again at once.
fn backoff(attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let full = Duration::from_secs(1 << attempt.saturating_sub(1).min(5)).min(MAX_BACKOFF);
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let fraction = (random >> 11) as f64 / (1u64 << 53) as f64;
    full.mul_f64(1.0 - fraction / 5.0)
}

/// The progress milestone (25, 50 or 75 %) a batch crossed, if any.
fn milestone(before: u64, after: u64, total: u64) -> Option<u64> {
    if total == 0 || after >= total {
        return None;
    }
    let (from, to) = (before * 4 / total, after * 4 / total);
    (to > from).then_some(to * 25)
}

/// A failed row as the state store keeps it.
pub fn flagged(f: &RowFailure, run_id: i64, migration: &str) -> FlaggedRow {
    FlaggedRow {
        id: 0,
        run_id,
        run: 0,
        migration: migration.to_string(),
        table: f.table.clone(),
        position: f.position as i64,
        key: f.key.clone(),
        stage: f.stage.clone(),
        column: f.column.clone(),
        // Kept to a few KB, escaped: a plugin may return any message. The
        // full source values stay in `row`, for a retry.
        value: f.value.as_deref().map(|v| untrusted(v).into_owned()),
        error: untrusted(&f.message).into_owned(),
        row: f.row.clone(),
        flagged_at: String::new(),
        retries: 0,
        resolution: None,
        resolved_at: None,
    }
}

#[cfg(test)]
mod tests {
    use super::{backoff, milestone};
    use std::time::Duration;

    #[test]
    fn retries_wait_longer_each_time_up_to_a_cap_with_jitter() {
        for (attempt, full) in [(1, 1), (2, 2), (3, 4), (4, 8), (6, 30), (20, 30)] {
            let wait = backoff(attempt);
            let full = Duration::from_secs(full);
            assert!(
                wait <= full && wait >= full.mul_f64(0.8),
                "{attempt}: {wait:?}"
            );
        }
    }

    #[test]
    fn milestones_are_recorded_once_each_and_not_at_the_end() {
        assert_eq!(milestone(0, 24, 100), None);
        assert_eq!(milestone(24, 25, 100), Some(25));
        assert_eq!(milestone(25, 49, 100), None);
        assert_eq!(milestone(10, 80, 100), Some(75));
        assert_eq!(milestone(80, 100, 100), None);
        assert_eq!(milestone(0, 3, 0), None);
    }
}
