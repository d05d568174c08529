//! Syncs: bringing a destination up to date with its source again, table by
//! table, by the table's mode.
//!
//! Every mode first lands rows in a scratch table through the ordinary run
//! pipeline (mapping, transforms, policies, the destination's own checks),
//! then changes the real table in one step: a full copy is swapped in, and
//! incremental rows replace the rows with their key in one transaction that
//! also commits the cursor. A sync killed at any point leaves the real table
//! and its cursor as they were, and the next sync reads the same rows again.

mod cdc;
mod schedule;

use std::sync::Arc;

use serde::Serialize;

pub use cdc::{SlotReport, drop_slots, slot_reports};
pub use schedule::{
    DEFAULT_JOBS, Lag, STOP_GRACE, Scheduler, ServeOptions, Served, Stop, Stopped, Summary, Turns,
    lagging, next_sync,
};

use crate::config::{IfExists, Migration, SyncMode, TableSpec};
use crate::drivers::merge::{Applied, Dialect};
use crate::drivers::{Checkpoint, Since, Sink, Source, SqlDestination, Step, open_sink, owner};
use crate::engine::{PlanError, TablePlan};
use crate::jobs::run::{Planned, run_planned};
use crate::jobs::{Naming, Observer, RunError, RunOptions, RunSummary};
use crate::runtime::Runtime;
use crate::state::{Hold, HoldError, StateStore};

/// The prefix of the scratch tables a sync writes before it swaps or merges.
const STAGE_PREFIX: &str = "credvault_stage_";
/// The prefix of the scratch tables holding every source key (to find
/// deleted rows).
const KEYS_PREFIX: &str = "credvault_keys_";

/// Why a sync did not happen or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The migration is paused.
    #[error(
        "migration `{migration}` is paused (since {since}, by {by}); `credvault resume` it to sync again"
    )]
    Paused {
        /// The migration.
        migration: String,
        /// Since when.
        since: String,
        /// By whom.
        by: String,
    },
    /// The migration file no longer reads (under `serve`, which reads it
    /// again before each sync).
    #[error("{0}; its syncs wait until the file reads again")]
    Unreadable(String),
    /// Another process is writing the migration.
    #[error(transparent)]
    Busy(#[from] HoldError),
    /// The sync failed.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The sync was still going at `[sync] time_limit` and was abandoned.
    #[error(
        "sync {sync} of migration `{migration}` was still going after its time limit of {limit} and was abandoned: what it had not committed is rolled back, each table stays at its last committed checkpoint, and its next sync starts from there (under `serve`, when next due); if it needs longer, raise `[sync] time_limit`"
    )]
    TimeLimit {
        /// The migration.
        migration: String,
        /// The sync's id.
        sync: i64,
        /// The limit, as the file (or the default) says it.
        limit: String,
    },
    /// `serve` was stopped and the sync did not end within the grace.
    #[error(
        "sync {sync} of migration `{migration}` was cut off by the stop after a {grace}s grace: what it had not committed is rolled back, and the next `credvault serve` or `credvault sync` resumes it"
    )]
    CutOff {
        /// The migration.
        migration: String,
        /// The sync's id.
        sync: i64,
        /// The grace, in seconds.
        grace: u64,
    },
}

impl From<crate::drivers::ConnectorError> for SyncError {
    fn from(e: crate::drivers::ConnectorError) -> Self {
        Self::Run(e.into())
    }
}

impl From<crate::state::StateError> for SyncError {
    fn from(e: crate::state::StateError) -> Self {
        Self::Run(e.into())
    }
}

/// What one table's sync did.
#[derive(Debug, Clone, Serialize)]
pub struct TableSync {
    /// The destination table.
    pub table: String,
    /// How it synced.
    pub mode: SyncMode,
    /// What changed.
    pub changed: Applied,
}

/// What a sync did.
#[derive(Debug, Clone, Serialize)]
pub struct SyncSummary {
    /// The sync's id in the state store.
    pub sync_id: i64,
    /// Its number among its migration's syncs (1 for the first).
    pub number: i64,
    /// Per table.
    pub tables: Vec<TableSync>,
    /// Over all tables.
    pub total: Applied,
}

/// Runs one sync of every table of `m`, while `hold` keeps other writers
/// of `m` out, within `[sync] time_limit`.
pub async fn sync_migration(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    hold: &Hold,
    observer: &mut dyn Observer,
) -> Result<SyncSummary, SyncError> {
    let never = Cutoff {
        at: std::future::pending(),
        grace: std::time::Duration::ZERO,
    };
    sync_migration_until(m, runtime, state, hold, observer, never).await
}

/// When a sync is cut off, and the grace it had after the stop (to say so).
pub struct Cutoff<F> {
    /// Resolves when the sync is to be cut off.
    pub at: F,
    /// The grace it had.
    pub grace: std::time::Duration,
}

/// [`sync_migration`], abandoned when `cutoff.at` resolves. An abandoned
/// sync (past its time limit, or cut off) is dropped between two awaits:
/// the transaction it had open is never committed, so the destination
/// rolls it back, and its tables stay at their last committed checkpoint.
pub async fn sync_migration_until(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    hold: &Hold,
    observer: &mut dyn Observer,
    cutoff: Cutoff<impl std::future::Future<Output = ()>>,
) -> Result<SyncSummary, SyncError> {
    debug_assert_eq!(hold.migration(), m.name);
    if let Some((since, by)) = state.paused(&m.name).await? {
        return Err(SyncError::Paused {
            migration: m.name.clone(),
            since,
            by,
        });
    }
    let schedule = serde_json::to_value(schedule::Summary::of(m)).expect("serializable");
    let runs_before = state.newest_run_id().await?;
    let sync_id = state.start_sync(&m.name, &schedule).await?;
    let number = state.sync_number(sync_id).await?;
    state
        .event(
            &m.name,
            None,
            "sync_started",
            &serde_json::json!({ "sync": number }),
        )
        .await?;
    let work = async {
        match m.is_multi_source() {
            // Boxed: a consolidation nests whole runs and syncs, and its
            // future is too deep to lay out inline.
            true => Box::pin(sync_consolidated(m, runtime, state, number, observer)).await,
            false => {
                let naming = Naming {
                    migration: Some(m.name.clone()),
                    sync: Some(number),
                    ..Naming::default()
                };
                sync_tables(m, None, runtime, state, &naming, observer).await
            }
        }
    };
    // Validated when the file loaded; the default covers a file that
    // bypassed it.
    let limit = m
        .sync
        .time_limit()
        .unwrap_or(std::time::Duration::from_secs(3600));
    let outcome: Result<Vec<TableSync>, SyncError> = tokio::select! {
        outcome = work => outcome.map_err(SyncError::from),
        () = tokio::time::sleep(limit) => Err(SyncError::TimeLimit {
            migration: m.name.clone(),
            sync: number,
            limit: m.sync.time_limit.clone().unwrap_or(crate::config::DEFAULT_TIME_LIMIT.into()),
        }),
        () = cutoff.at => Err(SyncError::CutOff {
            migration: m.name.clone(),
            sync: number,
            grace: cutoff.grace.as_secs(),
        }),
    };
    let (status, error) = match &outcome {
        Ok(_) => ("succeeded", None),
        Err(e @ SyncError::CutOff { .. }) => ("interrupted", Some(e.to_string())),
        Err(e) => ("failed", Some(e.to_string())),
    };
    if let Err(e @ (SyncError::CutOff { .. } | SyncError::TimeLimit { .. })) = &outcome {
        state
            .abandon_runs(&m.name, runs_before, &e.to_string())
            .await?;
    }
    let total = outcome.as_ref().map(|t| sum(t)).unwrap_or_default();
    state
        .finish_sync(
            sync_id,
            status,
            [total.inserted, total.updated, total.deleted],
            error.as_deref(),
        )
        .await?;
    let detail =
        serde_json::json!({ "sync": number, "status": status, "changed": total, "error": error });
    state.event(&m.name, None, "synced", &detail).await?;
    Ok(SyncSummary {
        sync_id,
        number,
        tables: outcome?,
        total,
    })
}

fn sum(tables: &[TableSync]) -> Applied {
    tables.iter().fold(Applied::default(), |a, t| Applied {
        inserted: a.inserted + t.changed.inserted,
        updated: a.updated + t.changed.updated,
        deleted: a.deleted + t.changed.deleted,
    })
}

/// Syncs a multi-source migration: its consolidated tables are rebuilt
/// from every source and swapped in, its other tables synced by their mode.
async fn sync_consolidated(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    number: i64,
    observer: &mut dyn Observer,
) -> Result<Vec<TableSync>, RunError> {
    use crate::jobs::consolidate::{Purpose, run};
    let options = RunOptions { restart: true };
    let purpose = Purpose::Sync(number);
    let summary = run(m, runtime, state, options, purpose, observer).await?;
    if !summary.passed() {
        return Err(crate::jobs::consolidate::failed_validation());
    }
    let mut tables = summary.synced;
    tables.extend(summary.merged.into_iter().map(|t| TableSync {
        table: t.table,
        mode: SyncMode::Full,
        changed: t.changed,
    }));
    Ok(tables)
}

/// Syncs every table of a single-source migration by its mode, with the
/// plan its job made (`None`: plans it here); its runs report themselves
/// as `naming` says (a step of which sync, of which migration).
pub(crate) async fn sync_tables(
    m: &Migration,
    planned: Option<Planned>,
    runtime: &Runtime,
    state: &StateStore,
    naming: &Naming,
    observer: &mut dyn Observer,
) -> Result<Vec<TableSync>, RunError> {
    let Planned {
        source,
        plans,
        clock,
    } = match planned {
        Some(planned) => planned,
        None => Planned::afresh(m, runtime, chrono::Utc::now().timestamp_micros()).await?,
    };
    let cdc_peers: Vec<String> = plans
        .iter()
        .filter(|p| m.sync_mode(&p.spec) == SyncMode::Cdc)
        .map(|p| checkpoint_name(p.spec.destination()))
        .collect();
    let mut done = Vec::new();
    for plan in &plans {
        let mut table = Table::new(m, plan, naming, Arc::clone(&source), clock);
        table.cdc_peers = cdc_peers.clone();
        let changed = match m.sync_mode(&plan.spec) {
            SyncMode::Full => table.full(state, observer).await?,
            SyncMode::Incremental => table.incremental(source.as_ref(), state, observer).await?,
            SyncMode::Cdc => table.cdc(state, observer).await?,
        };
        done.push(TableSync {
            table: plan.spec.destination().to_string(),
            mode: m.sync_mode(&plan.spec),
            changed,
        });
    }
    Ok(done)
}

/// One table being synced.
struct Table<'a> {
    m: &'a Migration,
    plan: &'a TablePlan,
    /// How its scratch runs report themselves.
    naming: &'a Naming,
    /// The destination table.
    name: String,
    /// Its scratch table.
    stage: String,
    /// Where its sync progress is kept in the destination.
    checkpoint: String,
    /// Where every CDC table of the sync keeps its progress: they share
    /// one slot, which may go only as far as all of them have applied.
    cdc_peers: Vec<String>,
    /// The sync's source, open.
    source: Arc<dyn Source>,
    /// When the sync started (what its transforms are told).
    clock: i64,
}

/// The checkpoint a table's sync progress is kept under.
fn checkpoint_name(table: &str) -> String {
    format!("sync:{table}")
}

impl<'a> Table<'a> {
    fn new(
        m: &'a Migration,
        plan: &'a TablePlan,
        naming: &'a Naming,
        source: Arc<dyn Source>,
        clock: i64,
    ) -> Self {
        let name = plan.spec.destination().to_string();
        Self {
            m,
            plan,
            naming,
            stage: format!("{STAGE_PREFIX}{name}"),
            checkpoint: checkpoint_name(&name),
            cdc_peers: Vec::new(),
            source,
            clock,
            name,
        }
    }

    fn columns(&self) -> Vec<String> {
        self.plan.output.iter().map(|c| c.name.clone()).collect()
    }

    /// The destination's key: the source key as the mapping names it.
    fn key(&self) -> Vec<String> {
        self.plan.output_key_names()
    }

    /// Copies the rows `since` selects (all of them without it) into the
    /// scratch table, through the ordinary run pipeline. Staging for a
    /// table the user made goes into an empty copy of it (`theirs`), so its
    /// constraints refuse rows there and the table's row policy applies.
    async fn stage(
        &self,
        since: Option<Since>,
        theirs: Option<&mut dyn SqlDestination>,
        state: &StateStore,
        observer: &mut dyn Observer,
    ) -> Result<(), RunError> {
        let if_exists = match theirs {
            Some(sink) => {
                sink.create_like(&self.stage, &self.name).await?;
                IfExists::Append
            }
            None => IfExists::Replace,
        };
        let spec = TableSpec {
            destination: Some(self.stage.clone()),
            if_exists,
            since,
            stands_for: Some(self.name.clone()),
            ..self.plan.spec.clone()
        };
        let plan = self.plan.restaged(spec, &self.step_name());
        self.run_step(plan, state, observer).await?;
        Ok(())
    }

    /// Copies every source key, mapped, into its own scratch table; `None`
    /// (the table dropped again) when the copy left a key out: a key it
    /// refused would read as deleted, so deletes wait for a sync whose copy
    /// holds every key.
    async fn stage_keys(
        &self,
        sink: &mut dyn Sink,
        state: &StateStore,
        observer: &mut dyn Observer,
    ) -> Result<Option<String>, RunError> {
        let keys = format!("{KEYS_PREFIX}{}", self.name);
        let mut spec = TableSpec {
            destination: Some(keys.clone()),
            if_exists: IfExists::Replace,
            transforms: Vec::new(),
            stands_for: Some(self.name.clone()),
            ..self.plan.spec.clone()
        };
        for (i, column) in self.plan.source.columns.iter().enumerate() {
            if !self.plan.key.contains(&i) {
                let skip = crate::config::ColumnSpec {
                    skip: true,
                    ..Default::default()
                };
                spec.columns.insert(column.name.clone(), skip);
            }
        }
        let plan = self
            .plan
            .untransformed(spec, &self.step_name(), self.source.as_ref())
            .await
            .map_err(|problems| {
                RunError::Plan(vec![PlanError {
                    table: self.plan.spec.source.clone(),
                    problems,
                }])
            })?;
        let copied = self.run_step(plan, state, observer).await?;
        let left_out = copied.counts.skipped + copied.counts.flagged;
        if left_out == 0 {
            return Ok(Some(keys));
        }
        sink.drop_table(&keys).await?;
        tracing::warn!(
            "table `{}`: {left_out} source key(s) could not be copied for delete detection (skipped or flagged), so no row is deleted in this sync; deletes are applied once every key copies",
            self.name
        );
        Ok(None)
    }

    /// The name a sync's steps are recorded under.
    fn step_name(&self) -> String {
        format!("{}#sync", self.m.name)
    }

    /// Runs one step of the sync (a copy into a scratch table) with the
    /// sync's plan and open source: nothing is discovered or configured
    /// again.
    async fn run_step(
        &self,
        plan: TablePlan,
        state: &StateStore,
        observer: &mut dyn Observer,
    ) -> Result<RunSummary, RunError> {
        let mut one = self.m.clone();
        one.name = self.step_name();
        one.tables = vec![plan.spec.clone()];
        one.select = Default::default();
        one.settings.validate = false;
        one.settings.restore_points = false;
        let planned = Planned {
            source: Arc::clone(&self.source),
            plans: vec![plan],
            clock: self.clock,
        };
        run_planned(&one, planned, state, self.naming, observer).await
    }

    /// Copies the whole table, then swaps the copy in, if the migration
    /// made the table; into a table someone else made, merges the copy by
    /// key instead, so the table keeps its definition, grants and rows from
    /// elsewhere.
    async fn full(
        &self,
        state: &StateStore,
        observer: &mut dyn Observer,
    ) -> Result<Applied, RunError> {
        let mut opened = open_sink(self.m).await?;
        let Some(sink) = opened.sql_mut() else {
            return Err(self.no_sql(opened.as_ref()));
        };
        let dialect = sink.dialect();
        let exists = sink.existing_rows(&self.name).await?.is_some();
        if self.theirs(sink, exists).await? {
            self.need_key(sink)?;
            self.stage(None, Some(&mut *sink), state, observer).await?;
            let deletes = self.m.sync.detect_deletes.then_some(self.stage.as_str());
            let reached = Checkpoint::default();
            let changed = self.merge(sink, &dialect, deletes, &reached, true).await?;
            sink.drop_table(&self.stage).await?;
            return Ok(changed);
        }
        self.stage(None, None, state, observer).await?;
        let changed = match exists {
            false => self.all_new(sink).await?,
            true => {
                self.keep_key_index(sink, &dialect).await?;
                self.index_scratch(sink, &dialect, &self.stage).await?;
                self.compare(sink, &dialect, &Checkpoint::default()).await?
            }
        };
        sink.swap_tables(&self.stage, &self.name).await?;
        owner::claim(sink, &self.m.name, &self.name).await?;
        Ok(changed)
    }

    /// Whether the table exists and someone else made it (by hand, or
    /// another migration): syncs merge into such a table and leave it as it
    /// is, never swap it or add to its indexes.
    async fn theirs(&self, sink: &dyn Sink, exists: bool) -> Result<bool, RunError> {
        Ok(exists && !owner::owns(sink, &self.m.name, &self.name).await?)
    }

    /// Merges the staged rows into the table by key in one transaction
    /// that also commits `reached`: changed rows are updated in place, new
    /// ones inserted, and with `deletes`, rows whose key is not in that
    /// scratch table are deleted.
    async fn merge(
        &self,
        sink: &mut dyn SqlDestination,
        dialect: &Dialect,
        deletes: Option<&str>,
        reached: &Checkpoint,
        theirs: bool,
    ) -> Result<Applied, RunError> {
        if !theirs {
            self.keep_key_index(sink, dialect).await?;
        }
        self.index_scratch(sink, dialect, &self.stage).await?;
        let (t, s, key, columns) = (
            sink.sql_name(&self.name),
            sink.sql_name(&self.stage),
            self.key(),
            self.columns(),
        );
        let mut counts = vec![
            Step::Count(dialect.count_missing(&s, &t, &key)),
            Step::Count(dialect.count_changed(&s, &t, &columns, &key)),
        ];
        let mut changes = vec![Step::Exec(dialect.insert_missing(&t, &s, &columns, &key))];
        if columns.iter().any(|c| !key.contains(c)) {
            changes.push(Step::Exec(dialect.update_changed(&t, &s, &columns, &key)));
        }
        if let Some(keys) = deletes {
            self.index_scratch(sink, dialect, keys).await?;
            let k = sink.sql_name(keys);
            counts.push(Step::Count(dialect.count_missing(&t, &k, &key)));
            changes.push(Step::Exec(dialect.delete_missing(&t, &k, &key)));
        }
        counts.extend(changes);
        let n = sink
            .run_script(&self.m.name, &self.checkpoint, &counts, reached)
            .await?;
        Ok(Applied {
            inserted: n[0],
            updated: n[1],
            deleted: deletes.map_or(0, |_| n[2]),
        })
    }

    /// Refuses a merge into a table that has no key to merge by.
    fn need_key(&self, sink: &dyn Sink) -> Result<(), RunError> {
        if !self.key().is_empty() {
            return Ok(());
        }
        Err(RunError::Connector(crate::drivers::ConnectorError::new(
            sink.describe(),
            format!(
                "table `{}`: migration `{}` did not create it (or it was made again since), so a sync will not replace it but merges into it by key, and it has none; set `key = [...]` for it",
                self.name, self.m.name
            ),
        )))
    }

    /// Copies the rows past the cursor, then replaces the rows with their
    /// keys and moves the cursor, in one transaction.
    async fn incremental(
        &self,
        source: &dyn Source,
        state: &StateStore,
        observer: &mut dyn Observer,
    ) -> Result<Applied, RunError> {
        let column = self.plan.spec.cursor.clone().unwrap_or_default();
        let mut opened = open_sink(self.m).await?;
        let Some(sink) = opened.sql_mut() else {
            return Err(self.no_sql(opened.as_ref()));
        };
        let dialect = sink.dialect();
        if self.key().is_empty() {
            return Err(RunError::Connector(crate::drivers::ConnectorError::new(
                sink.describe(),
                format!(
                    "table `{}`: an incremental sync replaces rows by key, and this table has none; set `key = [...]` or sync it in full",
                    self.name
                ),
            )));
        }
        let bound = source.cursor_bound(&self.plan.source, &column).await?;
        if let Some(since) = &bound.held_back_since {
            self.held_back(state, &column, since, bound.to.as_deref())
                .await?;
        }
        let Some(to) = bound.to else {
            return Ok(Applied::default());
        };
        let exists = sink.existing_rows(&self.name).await?.is_some();
        let from = match exists {
            true => sink
                .committed(&self.m.name, &self.checkpoint)
                .await?
                .and_then(|c| c.cursor),
            false => None,
        };
        let since = Since {
            column,
            from,
            to: to.clone(),
        };
        let theirs = self.theirs(sink, exists).await?;
        let like: Option<&mut dyn SqlDestination> = match theirs {
            true => Some(&mut *sink),
            false => None,
        };
        self.stage(Some(since), like, state, observer).await?;
        let reached = Checkpoint {
            cursor: Some(to),
            ..Checkpoint::default()
        };
        if !exists {
            let changed = self.all_new(sink).await?;
            sink.run_script(&self.m.name, &self.checkpoint, &[], &reached)
                .await?;
            sink.swap_tables(&self.stage, &self.name).await?;
            owner::claim(sink, &self.m.name, &self.name).await?;
            return Ok(changed);
        }
        let keys = match self.m.sync.detect_deletes {
            true => self.stage_keys(sink, state, observer).await?,
            false => None,
        };
        let changed = self
            .merge(sink, &dialect, keys.as_deref(), &reached, theirs)
            .await?;
        sink.drop_table(&self.stage).await?;
        if let Some(keys) = &keys {
            sink.drop_table(keys).await?;
        }
        Ok(changed)
    }

    /// Records that a transaction open on the source keeps this sync's
    /// window short (its rows wait for a later sync), so a transaction left
    /// open shows in the audit log and on stderr.
    async fn held_back(
        &self,
        state: &StateStore,
        column: &str,
        since: &str,
        to: Option<&str>,
    ) -> Result<(), RunError> {
        let upto = to.map_or("nothing yet".to_string(), |to| {
            format!("`{column}` <= {to}")
        });
        tracing::warn!(
            table = %self.name,
            "incremental sync held back by a transaction open on the source since {since}: reads up to {upto}; later rows wait for the next sync"
        );
        let detail = serde_json::json!({ "table": self.name, "cursor": column, "open_since": since, "to": to });
        state
            .event(&self.m.name, None, "sync_held_back", &detail)
            .await?;
        Ok(())
    }

    /// Indexes a scratch table on the key, so merging and counting find
    /// rows by key.
    async fn index_scratch(
        &self,
        sink: &mut dyn SqlDestination,
        dialect: &Dialect,
        scratch: &str,
    ) -> Result<(), RunError> {
        let key = self.key();
        if !key.is_empty() {
            sink.execute(&dialect.scratch_key_index(&sink.sql_name(scratch), &key))
                .await?;
        }
        Ok(())
    }

    /// Indexes a destination table the migration made on the key, once:
    /// every later sync needs it too. Callers leave a table someone else
    /// made alone (see [`Table::theirs`]).
    async fn keep_key_index(
        &self,
        sink: &mut dyn SqlDestination,
        dialect: &Dialect,
    ) -> Result<(), RunError> {
        let key = self.key();
        if !key.is_empty() {
            let sql = dialect.key_index(&self.name, &sink.sql_name(&self.name), &key);
            sink.execute(&sql).await?;
        }
        Ok(())
    }

    /// Counts a first copy: every row is new.
    async fn all_new(&self, sink: &mut dyn Sink) -> Result<Applied, RunError> {
        let rows = sink.existing_rows(&self.stage).await?.unwrap_or(0);
        Ok(Applied {
            inserted: rows,
            ..Applied::default()
        })
    }

    /// What swapping the copy in changes: keys added and removed, rows with
    /// other values (without a key: every row counts as replaced).
    async fn compare(
        &self,
        sink: &mut dyn SqlDestination,
        dialect: &Dialect,
        reached: &Checkpoint,
    ) -> Result<Applied, RunError> {
        let (t, s, key, columns) = (
            sink.sql_name(&self.name),
            sink.sql_name(&self.stage),
            self.key(),
            self.columns(),
        );
        if key.is_empty() {
            let steps = [
                Step::Count(format!("SELECT COUNT(*) FROM {s}")),
                Step::Count(format!("SELECT COUNT(*) FROM {t}")),
            ];
            let n = sink
                .run_script(&self.m.name, &self.checkpoint, &steps, reached)
                .await?;
            return Ok(Applied {
                inserted: n[0],
                updated: 0,
                deleted: n[1],
            });
        }
        let steps = [
            Step::Count(dialect.count_missing(&s, &t, &key)),
            Step::Count(dialect.count_changed(&s, &t, &columns, &key)),
            Step::Count(dialect.count_missing(&t, &s, &key)),
        ];
        let n = sink
            .run_script(&self.m.name, &self.checkpoint, &steps, reached)
            .await?;
        Ok(Applied {
            inserted: n[0],
            updated: n[1],
            deleted: n[2],
        })
    }

    fn no_sql(&self, sink: &dyn Sink) -> RunError {
        RunError::Connector(crate::drivers::ConnectorError::new(
            sink.describe(),
            format!(
                "table `{}`: syncs need a database destination ({}); write CSV files with `credvault run`",
                self.name,
                crate::drivers::registry::sql_destinations()
            ),
        ))
    }
}
