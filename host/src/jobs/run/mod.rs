//! A run's lifecycle: plan (or take the checks' plan), refuse to clobber,
//! make the restore point, open the run's record, move the tables
//! ([`tables`]), validate, close the record. Runs, dry runs, a sync's
//! steps and a consolidation's parts all go through it.

mod events;
mod record;
mod tables;

pub(super) use events::Events;
pub use events::{Observer, RunError, RunEvent};
pub(super) use record::{Opening, Record, close_record, open_record};
pub use record::{record_interrupted, record_validation};
pub use tables::flagged;
use tables::run_tables;

use std::sync::Arc;

use serde::Serialize;

use crate::config::{IfExists, Migration};
use crate::drivers::{ConnectorError, Sink, Source, open_sink, open_source, owner};
use crate::engine::plan::{TablePlan, plan};
use crate::jobs::progress::Naming;
use crate::jobs::restore;
use crate::jobs::validate::{self, Report};
use crate::runtime::Runtime;
use crate::state::{LastRun, RunCounts, StateStore};

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// The run's id.
    pub run_id: i64,
    /// Its number among its migration's runs (1 for the first).
    pub number: i64,
    /// Totals over all tables.
    pub counts: RunCounts,
    /// The validation that followed, unless `settings.validate = false`.
    pub validation: Option<Report>,
}

/// How to run.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Start over even if the last run was interrupted (by default it is
    /// resumed from its checkpoints).
    pub restart: bool,
}

/// Runs a migration: plans every table, then moves them one by one. If the
/// last run of this migration did not finish, continues after the
/// destination's last committed checkpoint of each table.
pub async fn run_migration(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    options: RunOptions,
    checked: Option<Planned>,
    observer: &mut dyn Observer,
) -> Result<RunSummary, RunError> {
    let naming = Naming::default();
    run_named(m, checked, runtime, state, options, &naming, observer).await
}

/// [`run_migration`] for a run that may be one step of a larger job: its
/// events name things as `naming` says. It uses `checked`, a plan already
/// made (by the pre-run checks, or to lay out a consolidation), if there
/// is one, and plans otherwise.
pub async fn run_named(
    m: &Migration,
    checked: Option<Planned>,
    runtime: &Runtime,
    state: &StateStore,
    options: RunOptions,
    naming: &Naming,
    observer: &mut dyn Observer,
) -> Result<RunSummary, RunError> {
    let last = match options.restart {
        true => None,
        false => state.last_run(&m.name).await?,
    };
    if let Some(last) = last.as_ref().filter(|r| r.awaits_validation())
        && m.settings.validate
    {
        return finish_validation(m, runtime, state, last, naming, observer).await;
    }
    let resumed = last.filter(|r| r.resumable());
    let clock = resumed
        .as_ref()
        .and_then(|r| r.clock)
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    let planned = match checked {
        Some(planned) => planned.at(clock),
        None => Planned::afresh(m, runtime, clock).await?,
    };
    execute(m, planned, resumed, state, naming, observer).await
}

/// A job's plan: its source, open, and every table's plan, made once at
/// `clock` (the run's start, which transforms are told).
pub struct Planned {
    /// The open source.
    pub source: Arc<dyn Source>,
    /// Every table's plan.
    pub plans: Vec<TablePlan>,
    /// When the job started, in microseconds since the epoch.
    pub clock: i64,
}

impl Planned {
    /// Opens `m`'s source and plans its tables for a job that started at
    /// `clock`.
    pub async fn afresh(m: &Migration, runtime: &Runtime, clock: i64) -> Result<Self, RunError> {
        let source: Arc<dyn Source> = Arc::from(open_source(m).await?);
        let plans = plan(m, source.as_ref(), runtime, clock)
            .await
            .map_err(RunError::Plan)?;
        Ok(Self {
            source,
            plans,
            clock,
        })
    }

    /// The plans of the tables whose destination `keep` takes, on the
    /// same open source.
    pub fn only(&self, keep: impl Fn(&str) -> bool) -> Self {
        Self {
            source: Arc::clone(&self.source),
            plans: self
                .plans
                .iter()
                .filter(|p| keep(p.spec.destination()))
                .cloned()
                .collect(),
            clock: self.clock,
        }
    }

    /// This plan for a run that started at `clock` (a resumed run keeps
    /// its first start, which its transforms are told).
    pub fn at(mut self, clock: i64) -> Self {
        self.clock = clock;
        for plan in &mut self.plans {
            plan.ctx.run_started_at = clock;
        }
        self
    }
}

/// A fresh run of tables already planned (a step of a sync, say): nothing
/// is discovered or configured again.
pub async fn run_planned(
    m: &Migration,
    planned: Planned,
    state: &StateStore,
    naming: &Naming,
    observer: &mut dyn Observer,
) -> Result<RunSummary, RunError> {
    execute(m, planned, None, state, naming, observer).await
}

/// Runs `planned`, resuming `resumed` if given.
async fn execute(
    m: &Migration,
    planned: Planned,
    resumed: Option<LastRun>,
    state: &StateStore,
    naming: &Naming,
    observer: &mut dyn Observer,
) -> Result<RunSummary, RunError> {
    let Planned {
        source,
        plans,
        clock,
    } = planned;
    let resumed_from = resumed.as_ref().map(|r| r.id);
    if resumed_from.is_none() {
        let mut sink = open_sink(m).await?;
        refuse_own_copies(m, sink.as_ref(), &plans).await?;
        sink.reset(&m.name).await?;
    }
    // A dry run writes only scratch tables: nothing to restore.
    let point = match resumed_from.is_none() && !m.dry_run {
        true => restore::before_run(m, &destinations(&plans), state).await?,
        false => None,
    };
    let events = Events::new(observer, naming);
    let opening = Opening {
        recorded: &m.name,
        clock,
        tables: plans.len(),
        resumed: resumed.as_ref().map(|r| (r.id, r.number)),
        detail: serde_json::json!({ "tables": plans.len(), "resumed_from": resumed_from }),
    };
    let record = open_record(state, opening, &events).await?;
    let (run_id, number) = (record.id, record.number);
    if let Some(point) = point {
        state.note_restore_point(run_id, &point.name).await?;
        events.on(&RunEvent::RestorePoint(point));
    }
    let (totals, result) = run_tables(
        m,
        &plans,
        &source,
        state,
        run_id,
        resumed_from.is_some(),
        &events,
    )
    .await;
    let validating = result.is_ok() && m.settings.validate;
    let error = result.as_ref().err().map(ToString::to_string);
    close_record(state, &record, totals, error, validating, &events).await?;
    let observer = events.observer.into_inner().expect("observer lock");
    let validation = match (result, m.settings.validate) {
        (Err(err), _) => Err(err),
        (Ok(()), true) => {
            let planned = Planned {
                source,
                plans: plans.clone(),
                clock,
            };
            validate_run(m, &planned, state, run_id, naming, observer)
                .await
                .map(Some)
        }
        (Ok(()), false) => Ok(None),
    };
    if m.dry_run {
        drop_scratch_tables(m, &plans).await?;
    }
    let validation = validation?;
    Ok(RunSummary {
        run_id,
        number,
        counts: totals,
        validation,
    })
}

/// Completes the validation of `last`, a run that copied everything but
/// was cut off while validating (killed, say): nothing is copied again.
async fn finish_validation(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    last: &LastRun,
    naming: &Naming,
    observer: &mut dyn Observer,
) -> Result<RunSummary, RunError> {
    tracing::warn!(
        "run {} copied every table but its validation did not complete; validating it now",
        last.number
    );
    let counts = state
        .runs(&m.name, 1)
        .await?
        .first()
        .map(|r| r.counts)
        .unwrap_or_default();
    let clock = last
        .clock
        .unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
    // Planned once, as validation plans (transforms without their side
    // effects), and the dry run's scratch tables dropped from that plan.
    let m = &m.without_transform_effects();
    let planned = Planned::afresh(m, runtime, clock).await?;
    let report = validate_run(m, &planned, state, last.id, naming, observer).await;
    if m.dry_run {
        drop_scratch_tables(m, &planned.plans).await?;
    }
    Ok(RunSummary {
        run_id: last.id,
        number: last.number,
        counts,
        validation: Some(report?),
    })
}

/// Validates what a run wrote, keeps the report and records the outcome.
/// Refuses, before anything is written, a fresh run into tables an earlier
/// run of this migration made, unless `if_exists` says what to do with
/// them: they are no user's, but they may hold what an application wrote
/// since.
async fn refuse_own_copies(
    m: &Migration,
    sink: &dyn Sink,
    plans: &[TablePlan],
) -> Result<(), RunError> {
    for plan in plans.iter().filter(|p| p.spec.if_exists == IfExists::Fail) {
        let table = plan.spec.destination();
        if let Some(rows) = sink.existing_rows(table).await?
            && owner::owns(sink, &m.name, table).await?
        {
            let message = format!("table `{table}` {}", own_copy(rows));
            return Err(ConnectorError::new(sink.describe(), message).into());
        }
    }
    Ok(())
}

/// Why a fresh run stops at a table an earlier run of the migration made.
pub(super) fn own_copy(rows: u64) -> String {
    format!(
        "already exists with {rows} rows from an earlier run of this migration; `credvault sync` brings it up to date, or set if_exists = \"replace\" for a fresh copy (a restore point keeps the old rows)"
    )
}

/// Validates run `run_id`.
async fn validate_run(
    m: &Migration,
    planned: &Planned,
    state: &StateStore,
    run_id: i64,
    naming: &Naming,
    observer: &mut dyn Observer,
) -> Result<Report, RunError> {
    let clock = planned.clock;
    let options = validate::Options {
        sample: m.settings.validate_sample,
        run_started_at: clock,
        refused: state.refused(&m.name).await?,
        dangling: state.refused_for_reference(&m.name).await?,
        recorded: state.table_counts(&m.name).await?,
    };
    // Marks where a run killed from here on stopped (the run is already
    // recorded as awaiting its validation).
    let detail = serde_json::json!({ "sample": options.sample });
    state
        .event(&m.name, Some(run_id), "validating", &detail)
        .await?;
    let report =
        validate::validate_planned(m, planned.source.as_ref(), &planned.plans, options).await?;
    record_validation(state, &report, Some(run_id)).await?;
    observer.on(&RunEvent::Validated {
        report: naming.report(report.clone()),
        source: naming.source.clone(),
    });
    Ok(report)
}

/// Drops a dry run's scratch tables and forgets its checkpoints.
async fn drop_scratch_tables(m: &Migration, plans: &[TablePlan]) -> Result<(), RunError> {
    let mut sink = open_sink(m).await?;
    for plan in plans {
        sink.drop_table(plan.spec.destination()).await?;
    }
    sink.reset(&m.name).await?;
    Ok(())
}

/// The destination tables a run touches.
fn destinations(plans: &[TablePlan]) -> Vec<&str> {
    plans.iter().map(|p| p.spec.destination()).collect()
}
