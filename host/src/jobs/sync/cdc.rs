//! CDC syncs: a source's committed inserts, updates and deletes, read from
//! its change feed (PostgreSQL: a logical replication slot), applied by key.
//!
//! The first sync creates the slot, then copies the table in full (changes
//! made during that copy arrive again through the slot and are applied by
//! key, so nothing is lost). Each later sync stages up to a batch of
//! changes, collapsed to the last per key, and applies them in one
//! transaction that also records the log position; only then is the slot
//! told to release them. A crash in between replays changes the destination
//! already has, and they are skipped by position.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Table;
use crate::config::{Endpoint, IfExists, Migration, SyncMode, show_size};
use crate::drivers::Shape;
use crate::drivers::feed::{self, ChangeFeed};
use crate::drivers::merge::Applied;
use crate::drivers::registry::{driver, names_with};
use crate::drivers::{
    Checkpoint, ConnectorError, Lsn, Prepare, Sink, SlotHealth, SourceBatch, SourceChange, SqlAsk,
    Step, WriteBatch, open_sink, sql_of,
};
use crate::engine::{Chain, Output, process};
use crate::jobs::policy::{self, Counting, RowPolicy};
use crate::jobs::run::{Events, Opening, Record, close_record, open_record};
use crate::jobs::{Observer, RunError, RunEvent};
use crate::model::convert::convert_ref;
use crate::model::value::{Column, Row};
use crate::state::{RunCounts, StateStore};

/// The slot a migration reads its changes from.
fn slot_name(m: &Migration) -> String {
    let name: String = m
        .name
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect();
    let mut slot = format!("credvault_{name}");
    slot.truncate(63);
    slot
}

/// Opens the change feed of `m`'s `source`, through the migration's slot.
async fn open_feed(
    m: &Migration,
    source: &Endpoint,
) -> Result<Box<dyn ChangeFeed>, ConnectorError> {
    feed::open_feed(m, source, &slot_name(m)).await
}

/// How long a sync waits for the server session of a killed sync to let
/// go of the slot: the server ends it once it notices the client is gone,
/// after the read it was doing.
const SLOT_WAIT: Duration = Duration::from_secs(180);

/// A migration's CDC slot as its source reports it, against `max_lag`.
#[derive(Debug, Clone, Serialize)]
pub struct SlotReport {
    /// The migration (or the part of a multi-source one) the slot serves.
    pub migration: String,
    /// The slot's name.
    pub slot: String,
    /// What the slot keeps; `None` if it does not exist (no CDC sync yet,
    /// or removed).
    pub health: Option<SlotHealth>,
    /// `[sync] max_lag` in bytes.
    pub max_lag: u64,
    /// Why the source could not be asked, if it could not.
    pub error: Option<String>,
    /// What needs attention, as sentences.
    pub warnings: Vec<String>,
}

impl SlotReport {
    /// One line: the slot's retained WAL, lag and status.
    pub fn summary(&self) -> String {
        let Some(h) = &self.health else {
            return match &self.error {
                Some(e) => format!("CDC slot `{}`: cannot read it: {e}", self.slot),
                None => format!(
                    "CDC slot `{}`: not created yet (the first CDC sync creates it)",
                    self.slot
                ),
            };
        };
        let bytes = |b: Option<u64>| b.map_or("-".to_string(), show_size);
        let mut line = format!(
            "CDC slot `{}`: keeps {} of WAL, lag {}, wal_status {}",
            self.slot,
            bytes(h.retained_bytes),
            bytes(h.lag_bytes),
            h.status()
        );
        if let Some(safe) = h.safe_wal_size {
            line.push_str(&format!(
                ", safe_wal_size {}",
                show_size(safe.max(0) as u64)
            ));
        }
        if let Some(pid) = h.active_pid {
            line.push_str(&format!(", in use by server process {pid}"));
        }
        line.push_str(&format!(" (max_lag {})", show_size(self.max_lag)));
        line
    }
}

/// The CDC slots of `m` (one per PostgreSQL source with CDC tables), with
/// what each keeps on its server and warnings past `[sync] max_lag`. A
/// source that cannot be reached is reported, not an error.
pub async fn slot_reports(m: &Migration) -> Vec<SlotReport> {
    let max_lag = m.sync.max_lag_bytes().unwrap_or(u64::MAX);
    let mut reports = Vec::new();
    for (part, ep) in cdc_sources(m) {
        let slot = slot_name(&part);
        let health = match open_feed(&part, &ep).await {
            Ok(changes) => changes.health().await,
            Err(e) => Err(e),
        };
        let (health, error) = match health {
            Ok(h) => (h, None),
            Err(e) => (None, Some(e.to_string())),
        };
        let warnings = health
            .as_ref()
            .map_or_else(Vec::new, |h| warnings_of(h, max_lag));
        reports.push(SlotReport {
            migration: part.name.clone(),
            slot,
            health,
            max_lag,
            error,
            warnings,
        });
    }
    reports
}

/// What needs attention about a slot.
fn warnings_of(h: &SlotHealth, max_lag: u64) -> Vec<String> {
    let slot = &h.slot;
    if h.lost {
        return vec![format!(
            "slot `{slot}` lost WAL it needed (wal_status = lost): the next sync fails; copy the tables again with `credvault remove FILE`, then `credvault sync FILE`"
        )];
    }
    let mut out = Vec::new();
    let kept = h.retained_bytes.unwrap_or(0).max(h.lag_bytes.unwrap_or(0));
    if kept > max_lag {
        out.push(format!(
            "slot `{slot}` keeps {} of WAL on the source, past max_lag ({}): the server cannot recycle it until the migration syncs; resume and sync it, or `credvault remove FILE` if it is no longer needed",
            show_size(kept),
            show_size(max_lag)
        ));
    }
    if h.wal_status.as_deref() == Some("unreserved") {
        out.push(format!(
            "slot `{slot}` is about to lose WAL (wal_status = unreserved: past max_slot_wal_keep_size); sync it now, or it will need a full copy"
        ));
    }
    out
}

/// Drops the CDC slots of `m` (their names; a slot that does not exist
/// is skipped), so the sources stop keeping WAL for it; waits first for
/// the session a killed sync may have left on a slot.
pub async fn drop_slots(m: &Migration) -> Result<Vec<String>, ConnectorError> {
    let mut dropped = Vec::new();
    for (part, ep) in cdc_sources(m) {
        let changes = open_feed(&part, &ep).await?;
        if changes.wait_free(SLOT_WAIT).await?.is_some() {
            changes.drop_slot().await?;
            dropped.push(changes.slot().to_string());
        }
    }
    Ok(dropped)
}

/// The migrations that read a source with a change feed by CDC (the
/// migration itself, or its parts when it has several sources), with that
/// source.
fn cdc_sources(m: &Migration) -> Vec<(Migration, Endpoint)> {
    let parts = match m.is_multi_source() {
        true => m.parts().into_iter().map(|p| p.migration).collect(),
        false => vec![m.clone()],
    };
    parts
        .into_iter()
        .filter(|p| {
            p.sync.mode == SyncMode::Cdc || p.tables.iter().any(|t| p.sync_mode(t) == SyncMode::Cdc)
        })
        .filter_map(|p| {
            let source = p.source.clone()?;
            driver(&source).traits().change_feed.then_some((p, source))
        })
        .collect()
}

impl Table<'_> {
    /// One CDC sync of this table.
    pub(super) async fn cdc(
        &self,
        state: &StateStore,
        observer: &mut dyn Observer,
    ) -> Result<Applied, RunError> {
        let feeds = |s: &&Endpoint| driver(s).traits().change_feed;
        let Some(source) = self.m.source.as_ref().filter(feeds) else {
            let which = names_with(|t| t.change_feed);
            return Err(self.fail(&format!("CDC needs a {which} source")));
        };
        let changes = open_feed(self.m, source).await?;
        let created = changes.ensure_slot().await?;
        changes.ready(SLOT_WAIT).await?;
        let mut sink = open_sink(self.m).await?;
        let committed = sink.committed(&self.m.name, &self.checkpoint).await?;
        let exists = sink.existing_rows(&self.name).await?.is_some();
        let after = match (created, exists, committed.and_then(|c| c.cursor)) {
            (false, true, Some(at)) => {
                Some(at.parse::<Lsn>().map_err(|e| self.fail(&e.to_string()))?)
            }
            _ => None,
        };
        let mut total = Applied::default();
        if after.is_none() {
            total = self.full(state, observer).await?;
            sql_of(sink.as_mut(), SqlAsk::Sync)?
                .run_script(&self.m.name, &self.checkpoint, &[], &Checkpoint::default())
                .await?;
        }
        let dialect = sink
            .sql()
            .map(|sql| sql.dialect())
            .ok_or_else(|| self.fail("CDC needs a database destination"))?;
        if !self.theirs(sink.as_ref(), true).await? {
            let sql = sql_of(sink.as_mut(), SqlAsk::Statement)?;
            self.keep_key_index(sql, &dialect).await?;
        }
        let recorded = format!("{}#sync", self.m.name);
        let events = Events::new(observer, self.naming);
        let mut run = CdcRun::new(self, &recorded, state, &events);
        let applied = self
            .drain(changes.as_ref(), sink.as_mut(), after, &mut run)
            .await;
        // The sync's own error comes first: recording the run's end may
        // fail for the same cause.
        let ended = run.end(&applied).await;
        let applied = applied?;
        ended?;
        Ok(add(total, applied))
    }

    /// Applies the slot's changes a batch at a time until it has no more
    /// for this table, each batch under `run` (started by the first).
    async fn drain(
        &self,
        changes: &dyn ChangeFeed,
        sink: &mut dyn Sink,
        mut after: Option<Lsn>,
        run: &mut CdcRun<'_, '_>,
    ) -> Result<Applied, RunError> {
        let mut total = Applied::default();
        loop {
            let batch = changes
                .changes(
                    std::slice::from_ref(&self.plan.source),
                    after,
                    self.m.settings.batch_size,
                )
                .await?;
            let Some(last) = batch.last().map(|c| c.lsn) else {
                self.keep_seen(changes, sink, after).await?;
                self.release(changes, sink).await?;
                return Ok(total);
            };
            run.start().await?;
            let changed = self
                .apply(sink, run, batch.into_iter().map(|c| c.change), last)
                .await;
            let changed = run.settle(changed).await?;
            self.release(changes, sink).await?;
            total = add(total, changed);
            after = Some(last);
        }
    }

    /// Records that this table has seen the slot up to where its last read
    /// found nothing more for it, so the slot may go past other tables'
    /// changes it read over.
    async fn keep_seen(
        &self,
        changes: &dyn ChangeFeed,
        sink: &mut dyn Sink,
        after: Option<Lsn>,
    ) -> Result<(), RunError> {
        let seen = match changes.seen() {
            Some(seen) => Some(seen),
            None => changes.confirmed().await?,
        };
        let Some(seen) = seen.filter(|s| after.is_none_or(|a| *s > a)) else {
            return Ok(());
        };
        let reached = Checkpoint {
            cursor: Some(seen.to_string()),
            ..Checkpoint::default()
        };
        sql_of(sink, SqlAsk::Sync)?
            .run_script(&self.m.name, &self.checkpoint, &[], &reached)
            .await?;
        Ok(())
    }

    /// Lets the slot go up to what every CDC table of the migration has
    /// applied: the slot is shared, so one table may not release changes
    /// another has yet to read.
    async fn release(&self, changes: &dyn ChangeFeed, sink: &dyn Sink) -> Result<(), RunError> {
        let mut oldest: Option<Lsn> = None;
        for checkpoint in &self.cdc_peers {
            let Some(cursor) = sink
                .committed(&self.m.name, checkpoint)
                .await?
                .and_then(|c| c.cursor)
            else {
                // Never synced: its first sync copies the table in full.
                continue;
            };
            let at = cursor
                .parse::<Lsn>()
                .map_err(|e| self.fail(&e.to_string()))?;
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
        if let Some(at) = oldest {
            changes.confirm_all(at).await?;
        }
        Ok(())
    }

    /// Stages one batch of changes and applies it with its position.
    async fn apply(
        &self,
        sink: &mut dyn Sink,
        run: &mut CdcRun<'_, '_>,
        batch: impl Iterator<Item = SourceChange>,
        reached: Lsn,
    ) -> Result<Applied, RunError> {
        let (upserts, deletes) = self.collapse(batch);
        let rows = self.transform(upserts, run).await?;
        run.counts.read += deletes.len() as u64;
        run.counts.written += (rows.len() + deletes.len()) as u64;
        let key_columns: Vec<Column> = self
            .plan
            .output_key()
            .iter()
            .map(|&i| self.plan.output[i].clone())
            .collect();
        let keys = self.mapped_keys(&deletes, &key_columns)?;
        let deletes_table = format!("{}_gone", self.stage);
        self.write_scratch(sink, &self.stage, &self.plan.output, &rows)
            .await?;
        self.write_scratch(sink, &deletes_table, &key_columns, &keys)
            .await?;
        let Some(sink) = sink.sql_mut() else {
            return Err(self.fail("CDC needs a database destination"));
        };
        let dialect = sink.dialect();
        self.index_scratch(sink, &dialect, &self.stage).await?;
        self.index_scratch(sink, &dialect, &deletes_table).await?;
        let (t, s, d, key, columns) = (
            sink.sql_name(&self.name),
            sink.sql_name(&self.stage),
            sink.sql_name(&deletes_table),
            self.key(),
            self.columns(),
        );
        // Changed rows are updated in place (a delete and insert would
        // fire the table's delete triggers and cascades).
        let mut steps = vec![
            Step::Count(dialect.count_missing(&s, &t, &key)),
            Step::Count(dialect.count_changed(&s, &t, &columns, &key)),
            Step::Exec(dialect.delete_keys(&t, &d, &key)),
            Step::Exec(dialect.insert_missing(&t, &s, &columns, &key)),
        ];
        if columns.iter().any(|c| !key.contains(c)) {
            steps.push(Step::Exec(dialect.update_changed(&t, &s, &columns, &key)));
        }
        let reached = Checkpoint {
            cursor: Some(reached.to_string()),
            ..Checkpoint::default()
        };
        let n = sink
            .run_script(&self.m.name, &self.checkpoint, &steps, &reached)
            .await?;
        run.committed();
        sink.drop_table(&self.stage).await?;
        sink.drop_table(&deletes_table).await?;
        Ok(Applied {
            inserted: n[0],
            updated: n[1],
            deleted: n[2],
        })
    }

    /// The last change per key: rows to write, and keys to delete.
    fn collapse(&self, batch: impl Iterator<Item = SourceChange>) -> (Vec<Row>, Vec<Row>) {
        let mut last: HashMap<Vec<String>, SourceChange> = HashMap::new();
        let mut order = Vec::new();
        for change in batch {
            let row = match &change {
                SourceChange::Insert(r) | SourceChange::Update(r) | SourceChange::Delete(r) => r,
            };
            let key: Vec<String> = self
                .plan
                .key
                .iter()
                .map(|&k| crate::model::value::to_text(&row[k]).unwrap_or_default())
                .collect();
            if last.insert(key.clone(), change).is_none() {
                order.push(key);
            }
        }
        let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
        for key in order {
            match last.remove(&key) {
                Some(SourceChange::Delete(r)) => deletes.push(r),
                Some(SourceChange::Insert(r) | SourceChange::Update(r)) => upserts.push(r),
                None => {}
            }
        }
        (upserts, deletes)
    }

    /// Source rows through the mapping and transforms; a row that fails
    /// meets the table's policy as in a run (see [`RowPolicy`]): under
    /// `stop` the first one ends the sync before anything of its batch is
    /// applied.
    async fn transform(
        &self,
        rows: Vec<Row>,
        run: &mut CdcRun<'_, '_>,
    ) -> Result<Vec<Row>, RunError> {
        if rows.is_empty() {
            return Ok(rows);
        }
        // Positions count the changed rows this run has read, so each
        // failed row has its own within the run.
        let first = run.counts.read + 1;
        run.counts.read += rows.len() as u64;
        let batch = SourceBatch {
            rows,
            first,
            position: None,
            faults: Vec::new(),
        };
        let processed = process(self.plan, &mut run.chain, batch).await?;
        run.counts.dropped += processed.dropped;
        let run_id = run.record.as_ref().map(|(r, _)| r.id);
        let run_id = run_id.expect("a CDC run starts before its first batch");
        let policy = RowPolicy {
            migration: run.recorded,
            plan: self.plan,
            run_id,
            state: run.state,
        };
        let tally = Counting {
            counts: &mut run.counts,
            flagged: &mut run.unsaved_flags,
        };
        policy
            .apply_all(processed.failures, tally, run.events)
            .await?;
        Ok(match processed.output {
            Output::Source => processed.source.rows,
            Output::Rows(rows) => rows.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// Deleted rows' keys, converted like the mapping converts them.
    fn mapped_keys(&self, deletes: &[Row], columns: &[Column]) -> Result<Vec<Row>, RunError> {
        deletes
            .iter()
            .map(|row| {
                self.plan
                    .key
                    .iter()
                    .zip(columns)
                    .map(|(&k, c)| {
                        convert_ref(&row[k], c.type_).map_err(|e| self.fail(&e.to_string()))
                    })
                    .collect()
            })
            .collect()
    }

    async fn write_scratch(
        &self,
        sink: &mut dyn Sink,
        table: &str,
        columns: &[Column],
        rows: &[Row],
    ) -> Result<(), RunError> {
        let migration = format!("{}#sync", self.m.name);
        let shape = Shape {
            columns,
            natives: &self.plan.natives,
        };
        let prepared = sink
            .prepare(&migration, table, shape, Prepare::Fresh(IfExists::Replace))
            .await?;
        let rejected = sink
            .write(WriteBatch {
                migration: &migration,
                prepared: &prepared,
                checkpoint_name: table,
                columns,
                rows,
                all_or_nothing: true,
                checkpoint: &Checkpoint::default(),
            })
            .await?;
        match rejected.first() {
            None => Ok(()),
            Some((_, message)) => {
                Err(self.fail(&format!("the destination refused a changed row: {message}")))
            }
        }
    }

    fn fail(&self, message: &str) -> RunError {
        RunError::Connector(ConnectorError::new(
            format!("table `{}`", self.name),
            message.to_string(),
        ))
    }
}

/// The run a CDC sync's changes of one table are applied under, recorded
/// as a sync's scratch runs are (`<migration>#sync`, numbered among them):
/// started by the first batch of changes (a sync that finds none has no
/// run), it keeps the counts, the rows its policy flagged and its audit
/// events, like any run.
struct CdcRun<'a, 'e> {
    /// The migration the run is recorded under.
    recorded: &'a str,
    state: &'a StateStore,
    events: &'a Events<'e>,
    /// The table, as the run's events show it.
    table: String,
    chain: Chain,
    /// The run's record once started, and when.
    record: Option<(Record, Instant)>,
    counts: RunCounts,
    /// The counts as of the last committed batch, and the rows flagged
    /// since: a batch that fails before its commit is read again by the
    /// next sync, so what it counted and flagged is taken back.
    committed: RunCounts,
    unsaved_flags: Vec<i64>,
}

impl<'a, 'e> CdcRun<'a, 'e> {
    fn new(
        table: &Table<'_>,
        recorded: &'a str,
        state: &'a StateStore,
        events: &'a Events<'e>,
    ) -> Self {
        Self {
            recorded,
            state,
            events,
            table: events.table(table.plan),
            chain: policy::chain(table.m, table.plan),
            record: None,
            counts: RunCounts::default(),
            committed: RunCounts::default(),
            unsaved_flags: Vec::new(),
        }
    }

    /// Records the run's start, once.
    async fn start(&mut self) -> Result<(), RunError> {
        if self.record.is_some() {
            return Ok(());
        }
        let opening = Opening {
            recorded: self.recorded,
            clock: chrono::Utc::now().timestamp_micros(),
            tables: 1,
            resumed: None,
            detail: serde_json::json!({ "tables": 1, "resumed_from": null, "cdc": self.table }),
        };
        let record = open_record(self.state, opening, self.events).await?;
        self.record = Some((record, Instant::now()));
        Ok(())
    }

    /// The batch being applied has committed: what it counted and flagged
    /// stands.
    fn committed(&mut self) {
        self.committed = self.counts;
        self.unsaved_flags.clear();
    }

    /// Takes back what a batch that did not commit counted and flagged.
    async fn settle(&mut self, applied: Result<Applied, RunError>) -> Result<Applied, RunError> {
        if applied.is_err() {
            self.counts = self.committed;
            let unsaved = std::mem::take(&mut self.unsaved_flags);
            if let Err(e) = self.state.unflag(&unsaved).await {
                tracing::warn!("rows flagged in a batch that was not applied stay flagged: {e}");
            }
        }
        applied
    }

    /// Records how the run ended, if it started: its counts, its audit
    /// events, and the same events a run's observer gets.
    async fn end(self, applied: &Result<Applied, RunError>) -> Result<(), RunError> {
        let Some((record, started)) = self.record else {
            return Ok(());
        };
        let error = applied.as_ref().err().map(ToString::to_string);
        let plugins = self.chain.stats().to_vec();
        match &error {
            None => {
                let detail = serde_json::json!({ "table": self.table, "counts": self.counts, "plugins": plugins });
                self.state
                    .event(self.recorded, Some(record.id), "table_finished", &detail)
                    .await?;
                self.events.on(&RunEvent::TableFinished {
                    table: self.table.clone(),
                    source: self.events.source(),
                    counts: self.counts,
                    done: self.counts.read,
                    plugins,
                    elapsed_s: started.elapsed().as_secs_f64(),
                });
            }
            Some(error) => {
                let detail = serde_json::json!({ "table": self.table, "error": error });
                self.state
                    .event(self.recorded, Some(record.id), "table_failed", &detail)
                    .await?;
            }
        }
        close_record(self.state, &record, self.counts, error, false, self.events).await
    }
}

fn add(a: Applied, b: Applied) -> Applied {
    Applied {
        inserted: a.inserted + b.inserted,
        updated: a.updated + b.updated,
        deleted: a.deleted + b.deleted,
    }
}
