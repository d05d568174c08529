//! Migrations with several sources: each source's tables run as their own
//! single-source migration (a [`Part`](crate::config::Part)), and tables
//! several sources fill (`[consolidate.<table>]`) are merged in the
//! destination, one row per key by the stated rule.
//!
//! A consolidated table is never written in place. Every source lands in
//! a scratch table through the ordinary pipeline (mapping, transforms,
//! policies, checkpoints, validation against its source); the merge ranks
//! all their rows per key in SQL and fills a new copy; the copy is
//! validated against the sources by the host's own reckoning of the
//! winners; only then is it swapped in for the table, atomically. A failed
//! or killed run leaves the table as it was.

mod merge;
mod parts;
mod schema;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde::Serialize;

pub use merge::Scratch;
pub use parts::{check, preview, validate};
pub use schema::{Feed, Unified};

use crate::config::{IfExists, Migration, Part};
use crate::drivers::Shape;
use crate::drivers::merge::{Applied, Dialect};
use crate::drivers::{
    Checkpoint, ConnectorError, Prepare, Sink, Source, SqlDestination, Step, open_sink,
    open_source, owner,
};
use crate::engine::{PlanError, plan};
use crate::jobs::restore;
use crate::jobs::run::{Planned, run_named};
use crate::jobs::sync::TableSync;
use crate::jobs::sync::sync_tables;
use crate::jobs::validate::{Report, TableReport};
use crate::jobs::{
    Naming, Observer, RunError, RunEvent, RunOptions, RunSummary, record_validation,
};
use crate::model::value::{Column, ColumnType};
use crate::runtime::Runtime;
use crate::state::{RunCounts, StateStore};

/// Why a run is consolidating: a run honours `if_exists` and takes a
/// restore point; a sync swaps in the new copy whatever is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// `credvault run`.
    Run,
    /// `credvault sync` / `serve`: the sync's number.
    Sync(i64),
}

/// What the merge of one consolidated table did.
#[derive(Debug, Clone, Serialize)]
pub struct Merged {
    /// The destination table.
    pub table: String,
    /// Source rows that reached the merge.
    pub source_rows: u64,
    /// Rows kept: one per distinct key.
    pub rows: u64,
    /// Rows kept from each source (`label.table`), in precedence order.
    pub kept: Vec<(String, u64)>,
    /// What changed in the table, compared with its previous copy.
    pub changed: Applied,
    /// The rule, in words.
    pub rule: String,
    /// Whether the new copy replaced the table (not when it failed its
    /// validation).
    pub swapped: bool,
}

/// What a multi-source run did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The run's id (the whole migration's).
    pub run_id: i64,
    /// Its number among the migration's runs.
    pub number: i64,
    /// Each source's own run.
    pub parts: Vec<(String, RunSummary)>,
    /// Each consolidated table.
    pub merged: Vec<Merged>,
    /// The consolidated tables' validation, unless `settings.validate = false`.
    pub validation: Option<Report>,
    /// Totals over the parts.
    pub counts: RunCounts,
    /// In a sync, the tables not consolidated, each synced by its mode.
    pub synced: Vec<TableSync>,
}

impl Summary {
    /// Whether every validation that ran passed.
    pub fn passed(&self) -> bool {
        let parts = self
            .parts
            .iter()
            .all(|(_, s)| s.validation.as_ref().is_none_or(|r| r.passed));
        parts && self.validation.as_ref().is_none_or(|r| r.passed)
    }
}

/// Lays out every consolidated table of `m` from its sources' plans.
pub async fn unify(m: &Migration, runtime: &Runtime, clock: i64) -> Result<Vec<Unified>, RunError> {
    Ok(unify_parts(m, runtime, clock).await?.0)
}

/// [`unify`], and each part's plan by its label: what the part's run uses,
/// so nothing is planned twice.
async fn unify_parts(
    m: &Migration,
    runtime: &Runtime,
    clock: i64,
) -> Result<(Vec<Unified>, BTreeMap<String, Planned>), RunError> {
    let mut plans = BTreeMap::new();
    let mut parts = BTreeMap::new();
    let mut errors = Vec::new();
    for part in m.parts() {
        let source: Arc<dyn Source> = Arc::from(open_source(&part.migration).await?);
        match plan(&part.migration, source.as_ref(), runtime, clock).await {
            Ok(p) => {
                plans.extend(p.iter().map(|p| {
                    (
                        (part.label.clone(), p.spec.destination().to_string()),
                        p.clone(),
                    )
                }));
                let planned = Planned {
                    source,
                    plans: p,
                    clock,
                };
                parts.insert(part.label.clone(), planned);
            }
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(RunError::Plan(errors));
    }
    let mut unified = Vec::new();
    for (table, spec) in &m.consolidate {
        let feeds = m
            .contributors(table)
            .into_iter()
            .filter_map(|c| {
                let plan = plans.get(&(c.label.clone(), c.stage.clone()))?.clone();
                Some((c, plan))
            })
            .collect();
        match Unified::new(table, spec, feeds) {
            Ok(u) => unified.push(u),
            Err(problems) => errors.push(PlanError {
                table: format!("{table} (consolidated)"),
                problems,
            }),
        }
    }
    match errors.is_empty() {
        true => Ok((unified, parts)),
        false => Err(RunError::Plan(errors)),
    }
}

/// Runs a multi-source migration: every part, then every merge.
pub async fn run(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    options: RunOptions,
    purpose: Purpose,
    observer: &mut dyn Observer,
) -> Result<Summary, RunError> {
    let clock = chrono::Utc::now().timestamp_micros();
    let (unified, planned) = unify_parts(m, runtime, clock).await?;
    let mut sink = open_sink(m).await?;
    if !unified.is_empty() {
        ready(m, &unified, sink.as_ref(), purpose).await?;
    }
    let finals = m.final_tables();
    let finals: Vec<&str> = finals.iter().map(String::as_str).collect();
    let point = match purpose == Purpose::Run && !m.dry_run {
        true => restore::before_run(m, &finals, state).await?,
        false => None,
    };
    let run_id = state.start_run(&m.name, clock, None).await?;
    let number = state.run_number(run_id).await?;
    let detail = serde_json::json!({ "parts": m.parts().len(), "consolidated": m.consolidate.keys().collect::<Vec<_>>() });
    state
        .event(&m.name, Some(run_id), "run_started", &detail)
        .await?;
    if let Some(point) = point {
        state.note_restore_point(run_id, &point.name).await?;
        observer.on(&RunEvent::RestorePoint(point));
    }
    let job = Job {
        m,
        runtime,
        state,
        purpose,
    };
    let outcome = run_all(&job, options, planned, &unified, sink.as_mut(), observer).await;
    let counts = outcome
        .as_ref()
        .map(|o| total(&o.parts))
        .unwrap_or_default();
    let (status, error) = match &outcome {
        Ok(_) => ("succeeded", None),
        Err(e) => ("failed", Some(e.to_string())),
    };
    state
        .finish_run(run_id, status, counts, error.as_deref(), false)
        .await?;
    let detail = serde_json::json!({ "status": status, "counts": counts, "error": error });
    state
        .event(&m.name, Some(run_id), "run_finished", &detail)
        .await?;
    if m.dry_run {
        for table in &finals {
            sink.drop_table(table).await?;
        }
    }
    let Outcome {
        parts,
        merged,
        validation,
        synced,
    } = outcome?;
    if let Some(report) = &validation {
        record_validation(state, report, Some(run_id)).await?;
    }
    Ok(Summary {
        run_id,
        number,
        parts,
        merged,
        validation,
        counts,
        synced,
    })
}

/// What the parts and merges of a run did.
struct Outcome {
    parts: Vec<(String, RunSummary)>,
    merged: Vec<Merged>,
    validation: Option<Report>,
    synced: Vec<TableSync>,
}

/// What every step of a multi-source run works with.
struct Job<'a> {
    m: &'a Migration,
    runtime: &'a Runtime,
    state: &'a StateStore,
    purpose: Purpose,
}

async fn run_all(
    job: &Job<'_>,
    options: RunOptions,
    planned: BTreeMap<String, Planned>,
    unified: &[Unified],
    sink: &mut dyn Sink,
    observer: &mut dyn Observer,
) -> Result<Outcome, RunError> {
    let (parts, synced) = run_parts(job, options, planned, observer).await?;
    let m = job.m;
    let mut merged = Vec::new();
    let mut reports = Vec::new();
    for u in unified {
        let (table, report) = consolidate_table(m, u, job.state, sink).await?;
        merged.push(table);
        reports.extend(report);
    }
    let validation = (m.settings.validate && !reports.is_empty()).then(|| {
        let report = Report::new(&m.name, 0, reports);
        observer.on(&RunEvent::Validated {
            report: report.clone(),
            source: None,
        });
        report
    });
    Ok(Outcome {
        parts,
        merged,
        validation,
        synced,
    })
}

/// Runs every part: a run moves all its tables; a sync brings the tables
/// that are not consolidated up to date by their mode, and restages the
/// others afresh.
async fn run_parts(
    job: &Job<'_>,
    options: RunOptions,
    mut planned: BTreeMap<String, Planned>,
    observer: &mut dyn Observer,
) -> Result<(Vec<(String, RunSummary)>, Vec<TableSync>), RunError> {
    let (m, runtime, state) = (job.m, job.runtime, job.state);
    let mut done = Vec::new();
    let mut synced = Vec::new();
    for part in &m.parts() {
        let (staged, plain) = split(m, part);
        let naming = naming(job, part);
        // Every part runs with the plan made to lay out the merges; a
        // sync's part is split in two, each taking its tables' plans.
        let plan = planned.remove(&part.label);
        let (to_run, options, plan) = match job.purpose {
            Purpose::Run => (Some(&part.migration), options, plan),
            Purpose::Sync(_) => {
                if let Some(plain) = &plain {
                    let own = plan.as_ref().map(|p| p.only(|t| !is_stage(m, t)));
                    let sync = sync_tables(plain, own, runtime, state, &naming, observer);
                    synced.extend(sync.await?);
                }
                let own = plan.map(|p| p.only(|t| is_stage(m, t)));
                (staged.as_ref(), RunOptions { restart: true }, own)
            }
        };
        let Some(to_run) = to_run else { continue };
        let summary = run_named(to_run, plan, runtime, state, options, &naming, observer).await?;
        if summary.validation.as_ref().is_some_and(|r| !r.passed) {
            return Err(consolidation_error(format!(
                "the tables from `{}` did not validate against their source (see its report above), so nothing was merged; fix the cause and run again",
                part.label
            )));
        }
        done.push((part.label.clone(), summary));
    }
    Ok((done, synced))
}

/// How a part's runs report themselves: as a step of the migration, from
/// its source, each scratch table named for the consolidated table it
/// feeds.
fn naming(job: &Job<'_>, part: &Part) -> Naming {
    let m = job.m;
    let tables = m
        .consolidate
        .keys()
        .flat_map(|t| m.contributors(t).into_iter().map(|c| (c.stage, t.clone())))
        .collect();
    Naming {
        migration: Some(m.name.clone()),
        sync: match job.purpose {
            Purpose::Run => None,
            Purpose::Sync(id) => Some(id),
        },
        source: Some(part.label.clone()),
        tables,
    }
}

/// A part's tables split into those feeding a consolidated table and the
/// others (which a sync brings up to date by their own mode).
fn split(m: &Migration, part: &Part) -> (Option<Migration>, Option<Migration>) {
    let (mut staged, mut plain) = (part.migration.clone(), part.migration.clone());
    staged.tables.retain(|t| is_stage(m, t.destination()));
    staged.select = Default::default();
    plain.tables.retain(|t| !is_stage(m, t.destination()));
    let some = |p: Migration| (!p.tables.is_empty() || !p.select.include.is_empty()).then_some(p);
    (some(staged), some(plain))
}

/// Whether `table` is the scratch table of a source of a consolidated table.
pub(crate) fn is_stage(m: &Migration, table: &str) -> bool {
    m.consolidate
        .keys()
        .any(|t| m.contributors(t).iter().any(|c| c.stage == table))
}

fn total(parts: &[(String, RunSummary)]) -> RunCounts {
    parts
        .iter()
        .fold(RunCounts::default(), |a, (_, s)| RunCounts {
            read: a.read + s.counts.read,
            written: a.written + s.counts.written,
            dropped: a.dropped + s.counts.dropped,
            skipped: a.skipped + s.counts.skipped,
            flagged: a.flagged + s.counts.flagged,
        })
}

fn consolidation_error(message: String) -> RunError {
    RunError::Connector(ConnectorError::new("consolidation", message))
}

/// The error of a run whose validation failed: the tables that failed it
/// were not swapped in.
pub fn failed_validation() -> RunError {
    consolidation_error(
        "validation failed (see the report), so the tables that failed it were not swapped in and keep their previous rows".into(),
    )
}

/// Refuses to start when a consolidated table is in the way of a run, or
/// the destination cannot merge.
async fn ready(
    m: &Migration,
    unified: &[Unified],
    sink: &dyn Sink,
    purpose: Purpose,
) -> Result<(), RunError> {
    if sink.sql().is_none() {
        return Err(cannot_merge(sink));
    }
    for u in unified {
        let table = m.final_name(&u.table);
        let existing = sink.existing_rows(&table).await?;
        let in_the_way =
            purpose == Purpose::Run && !m.dry_run && u.spec.if_exists == IfExists::Fail;
        if let (true, Some(rows)) = (in_the_way, existing) {
            return Err(consolidation_error(format!(
                "table `{table}` already exists with {rows} rows; set if_exists = \"replace\" in [consolidate.{}] to rebuild it, or choose another table",
                u.table
            )));
        }
        // A consolidation rebuilds its tables whole: only one it created,
        // or one the user asked it to replace, may be swapped out.
        let asked = purpose == Purpose::Run && u.spec.if_exists == IfExists::Replace;
        if let Some(rows) = existing
            && !m.dry_run
            && !asked
            && !owner::owns(sink, &m.name, &table).await?
        {
            return Err(consolidation_error(format!(
                "table `{table}` ({rows} rows) was not created by migration `{}` (or was made again since), and a consolidation rebuilds its tables whole, so it is left alone; choose another table, or set if_exists = \"replace\" in [consolidate.{}] and `credvault run` to replace it (a restore point keeps it)",
                m.name, u.table
            )));
        }
    }
    Ok(())
}

/// The refusal of a destination that takes no SQL, so cannot merge.
fn cannot_merge(sink: &dyn Sink) -> RunError {
    consolidation_error(format!(
        "{} cannot merge tables; consolidate into a database destination ({})",
        sink.describe(),
        crate::drivers::registry::sql_destinations()
    ))
}

/// Merges one consolidated table's scratch tables into a new copy,
/// validates it and swaps it in.
async fn consolidate_table(
    m: &Migration,
    u: &Unified,
    state: &StateStore,
    sink: &mut dyn Sink,
) -> Result<(Merged, Option<TableReport>), RunError> {
    let Some(sink) = sink.sql_mut() else {
        return Err(cannot_merge(sink));
    };
    let dialect = sink.dialect();
    let scratch = Scratch::of(&u.table);
    let table = m.final_name(&u.table);
    let numbers = merge_into_copy(m, u, &scratch, &dialect, sink).await?;
    let (null_keys, source_rows) = (numbers[0], numbers[1]);
    if null_keys > 0 {
        drop_scratch(u, &scratch, sink).await?;
        return Err(consolidation_error(format!(
            "table `{}`: {null_keys} source rows have a NULL in a key column ({}), so they cannot be matched across sources; fill the key or filter those rows out, then run again",
            u.table,
            u.key_names().join(", ")
        )));
    }
    let kept: Vec<(String, u64)> = u
        .feeds
        .iter()
        .zip(&numbers[2..])
        .map(|(f, n)| (format!("{}.{}", f.label, f.source), *n))
        .collect();
    let rows = kept.iter().map(|(_, n)| n).sum();
    let report = match m.settings.validate {
        true => Some(check_copy(m, u, state, &scratch).await?),
        false => None,
    };
    if report.as_ref().is_some_and(|r| !r.passed()) {
        drop_scratch(u, &scratch, sink).await?;
        let mut report = report.expect("checked");
        report.table = table.clone();
        let result = Merged {
            swapped: false,
            ..merged(u, rows, source_rows, kept, Applied::default())
        };
        return Ok((result, Some(report)));
    }
    let changed = compare(&m.name, u, &table, &scratch, &dialect, sink, rows).await?;
    sink.swap_tables(&scratch.merged, &table).await?;
    owner::claim(sink, &m.name, &table).await?;
    drop_scratch(u, &scratch, sink).await?;
    let result = merged(u, rows, source_rows, kept, changed);
    let detail = serde_json::to_value(&result).expect("serializable");
    state.event(&m.name, None, "consolidated", &detail).await?;
    Ok((result, report))
}

fn merged(
    u: &Unified,
    rows: u64,
    source_rows: u64,
    kept: Vec<(String, u64)>,
    changed: Applied,
) -> Merged {
    Merged {
        table: u.table.clone(),
        source_rows,
        rows,
        kept,
        changed,
        rule: u.rule_text(),
        swapped: true,
    }
}

/// Fills the scratch tables and the new copy in one transaction; returns
/// rows with a NULL key, source rows, then the rows kept from each feed.
async fn merge_into_copy(
    m: &Migration,
    u: &Unified,
    scratch: &Scratch,
    dialect: &Dialect,
    sink: &mut dyn SqlDestination,
) -> Result<Vec<u64>, RunError> {
    let int = |name: &str| Column {
        name: name.into(),
        type_: ColumnType::Int,
        nullable: false,
    };
    let mut union = u.columns.clone();
    union.push(int(merge::PRIORITY));
    let mut ranked = union.clone();
    ranked.push(int(merge::RANK));
    let fresh = Prepare::Fresh(IfExists::Replace);
    // Created empty here, filled by the merge's statements.
    for (table, columns) in [
        (&scratch.union, &union),
        (&scratch.ranked, &ranked),
        (&scratch.merged, &u.columns),
    ] {
        sink.prepare(&m.name, table, Shape::plain(columns), fresh)
            .await?;
    }
    let name = |t: &str| sink.sql_name(t);
    let sql = merge::MergeSql {
        unified: u,
        dialect,
        sql_name: &name,
        scratch,
    };
    let steps = sql.steps();
    let checkpoint = format!("consolidate:{}", u.table);
    let numbers = sink
        .run_script(&m.name, &checkpoint, &steps, &Checkpoint::default())
        .await?;
    // Skip the inserts' own numbers: feeds, then the ranking.
    Ok(numbers[u.feeds.len() + 1..numbers.len() - 1].to_vec())
}

/// Validates the new copy against the sources.
async fn check_copy(
    m: &Migration,
    u: &Unified,
    state: &StateStore,
    scratch: &Scratch,
) -> Result<TableReport, RunError> {
    let parts = m.parts();
    let mut refused = Vec::new();
    for feed in &u.feeds {
        let part = parts.iter().find(|p| p.label == feed.label);
        let by_table = match part {
            Some(p) => state.refused(&p.migration.name).await?,
            None => Default::default(),
        };
        refused.push(
            by_table
                .get(&feed.stage)
                .cloned()
                .unwrap_or_else(HashSet::new),
        );
    }
    let destination = crate::drivers::open_destination_reader(m).await?;
    let found = destination.discover().await?;
    let Some(at) = found.iter().find(|t| t.name == scratch.merged) else {
        return Err(consolidation_error(format!(
            "the merged copy `{}` vanished before it could be validated",
            scratch.merged
        )));
    };
    crate::jobs::validate::consolidated(m, u, &refused, at).await
}

/// What swapping the copy in changes, by key.
async fn compare(
    migration: &str,
    u: &Unified,
    table: &str,
    scratch: &Scratch,
    dialect: &Dialect,
    sink: &mut dyn SqlDestination,
    rows: u64,
) -> Result<Applied, RunError> {
    let names = u.names();
    let existing = sink.existing_rows(table).await?;
    // A destination that cannot tell whether the table takes the rows
    // counts every row as replaced.
    let fits = match (existing, sink.healthcheck()) {
        (Some(_), Some(check)) => check.misfits(table, &u.columns).await?.is_empty(),
        _ => false,
    };
    if !fits {
        return Ok(Applied {
            inserted: rows,
            updated: 0,
            deleted: existing.unwrap_or(0),
        });
    }
    let key = u.key_names();
    let (t, s) = (sink.sql_name(table), sink.sql_name(&scratch.merged));
    for sql in [
        dialect.key_index(table, &t, &key),
        dialect.scratch_key_index(&s, &key),
    ] {
        sink.execute(&sql).await?;
    }
    let steps = [
        Step::Count(dialect.count_missing(&s, &t, &key)),
        Step::Count(dialect.count_changed(&s, &t, &names, &key)),
        Step::Count(dialect.count_missing(&t, &s, &key)),
    ];
    let checkpoint = format!("consolidate:{}", u.table);
    let n = sink
        .run_script(migration, &checkpoint, &steps, &Checkpoint::default())
        .await?;
    Ok(Applied {
        inserted: n[0],
        updated: n[1],
        deleted: n[2],
    })
}

/// Drops the scratch tables of a consolidated table (the merged copy is
/// gone already once it is swapped in).
async fn drop_scratch(u: &Unified, scratch: &Scratch, sink: &mut dyn Sink) -> Result<(), RunError> {
    let stages = u.feeds.iter().map(|f| f.stage.as_str());
    for table in stages.chain([
        scratch.union.as_str(),
        scratch.ranked.as_str(),
        scratch.merged.as_str(),
    ]) {
        sink.drop_table(table).await?;
    }
    Ok(())
}
