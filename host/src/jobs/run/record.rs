//! A run's record in the state store: how every run, a sync's steps and
//! CDC included, starts and ends, and what an interrupted run or a
//! validation leaves there.

use super::events::{Events, RunError, RunEvent};
use crate::jobs::validate::{self, Report};
use crate::state::{RunCounts, StateStore};

/// What a run's record starts with.
pub(in crate::jobs) struct Opening<'a> {
    /// The migration the run is recorded under (`NAME#sync` for a sync's).
    pub(in crate::jobs) recorded: &'a str,
    /// When the run started (its transforms are told).
    pub(in crate::jobs) clock: i64,
    /// How many tables it moves.
    pub(in crate::jobs) tables: usize,
    /// The run it resumes: its id and number.
    pub(in crate::jobs) resumed: Option<(i64, i64)>,
    /// The `run_started` audit event's detail.
    pub(in crate::jobs) detail: serde_json::Value,
}

/// A run's record in the state store.
pub(in crate::jobs) struct Record {
    /// The migration it is recorded under.
    pub(in crate::jobs) recorded: String,
    /// Its id.
    pub(in crate::jobs) id: i64,
    /// Its number among its migration's runs.
    pub(in crate::jobs) number: i64,
}

/// Starts a run's record: its row, its `run_started` audit event, and the
/// observer's event. Every run, a sync's steps and CDC included, starts here.
pub(in crate::jobs) async fn open_record(
    state: &StateStore,
    opening: Opening<'_>,
    events: &Events<'_>,
) -> Result<Record, RunError> {
    let resumed_from = opening.resumed.map(|(id, _)| id);
    let id = state
        .start_run(opening.recorded, opening.clock, resumed_from)
        .await?;
    let number = state.run_number(id).await?;
    state
        .event(opening.recorded, Some(id), "run_started", &opening.detail)
        .await?;
    events.on(&RunEvent::RunStarted {
        run_id: id,
        number,
        migration: events.migration(opening.recorded),
        tables: opening.tables,
        resumed_from: opening.resumed.map(|(_, number)| number),
        sync: events.naming.sync,
        source: events.source(),
    });
    Ok(Record {
        recorded: opening.recorded.to_string(),
        id,
        number,
    })
}

/// Ends a run's record: its status (failed when `error` says why), its
/// counts, its `run_finished` audit event, and the observer's event.
pub(in crate::jobs) async fn close_record(
    state: &StateStore,
    record: &Record,
    counts: RunCounts,
    error: Option<String>,
    validating: bool,
    events: &Events<'_>,
) -> Result<(), RunError> {
    let status = match error {
        None => "succeeded",
        Some(_) => "failed",
    };
    state
        .finish_run(record.id, status, counts, error.as_deref(), validating)
        .await?;
    let detail = serde_json::json!({ "status": status, "counts": counts, "error": error });
    state
        .event(&record.recorded, Some(record.id), "run_finished", &detail)
        .await?;
    events.on(&RunEvent::RunFinished {
        run_id: record.id,
        number: record.number,
        status: status.to_string(),
        counts,
        error,
    });
    Ok(())
}

/// Records a run stopped by a signal as interrupted (not left `running`),
/// with what it had committed (`committed`: a line per table), in its
/// record and the audit log. The next run resumes it.
pub async fn record_interrupted(
    state: &StateStore,
    migration: &str,
    run_id: i64,
    signal: &str,
    counts: RunCounts,
    committed: &[String],
) -> Result<(), RunError> {
    let error = format!("interrupted by {signal}; the next `credvault run` resumes it");
    state
        .finish_run(run_id, "interrupted", counts, Some(&error), false)
        .await?;
    let detail = serde_json::json!({ "signal": signal, "counts": counts, "tables": committed });
    state
        .event(migration, Some(run_id), "run_interrupted", &detail)
        .await?;
    Ok(())
}

/// Keeps a validation report in the state store with its audit event.
pub async fn record_validation(
    state: &StateStore,
    report: &Report,
    run_id: Option<i64>,
) -> Result<(), RunError> {
    let json = serde_json::to_value(report).expect("reports serialize");
    state
        .save_validation(&report.migration, run_id, report.passed, &json)
        .await?;
    if let Some(run_id) = run_id {
        state.validated(run_id, report.passed).await?;
    }
    let failed: Vec<String> = report
        .tables
        .iter()
        .flat_map(|t| {
            t.lines
                .iter()
                .filter(|l| l.status == validate::Status::Fail)
                .map(move |l| format!("{}: {}", t.table, l.check))
        })
        .collect();
    let detail = serde_json::json!({
        "passed": report.passed,
        "tables": report.tables.len(),
        "failed": failed,
    });
    state
        .event(&report.migration, run_id, "validated", &detail)
        .await?;
    Ok(())
}
