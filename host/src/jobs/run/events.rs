//! What a run reports as it goes, and why one stops: its events, the
//! observer that receives them, and its errors.

use std::sync::Mutex;

use serde::Serialize;

use crate::config::ErrorPolicy;
use crate::drivers::{ConnectorError, FailureKind};
use crate::engine::batch::{RowFailure, TableFailure};
use crate::engine::plan::{PlanError, TablePlan};
use crate::engine::transforms::PluginStats;
use crate::jobs::progress::{Naming, row_name};
use crate::jobs::restore::{RestoreError, Taken};
use crate::jobs::validate::Report;
use crate::state::{RunCounts, StateError};

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The migration does not fit the real schemas or plugins.
    #[error("the migration cannot be planned:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Plan(Vec<PlanError>),
    /// A source or destination failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The restore point could not be made (nothing was written).
    #[error("no restore point could be made, so nothing was written: {0}")]
    RestorePoint(#[from] RestoreError),
    /// A row failed in a table whose policy is `stop`.
    #[error(
        "stopped on a failed row (policy `stop`): {0}. Rows before its batch are committed; fix the row or choose on_error = \"skip\" or \"flag\", then run again"
    )]
    Stopped(Box<RowFailure>),
    /// A plugin failed beyond what a row policy covers.
    #[error(transparent)]
    Plugin(#[from] TableFailure),
    /// A table stopped on a failure that leaves what it committed in place
    /// (its connection lost more than `settings.retries` times, a full
    /// disk): the next run resumes after its last committed batch.
    #[error(
        "{source}{}; {}`credvault run FILE` resumes `{table}` after its last committed batch",
        gave_up(*.retries),
        resume_when(.source.kind)
    )]
    Resumable {
        /// The table, as a person knows it.
        table: String,
        /// The tries made after the first loss.
        retries: u32,
        /// What failed.
        source: ConnectorError,
    },
}

impl RunError {
    /// Whether a connection was lost, so a new one may carry on.
    pub fn lost_connection(&self) -> bool {
        matches!(self, RunError::Connector(e) if e.kind == FailureKind::ConnectionLost)
    }
}

fn gave_up(retries: u32) -> String {
    match retries {
        0 => String::new(),
        1 => " (gave up after 1 retry)".into(),
        n => format!(" (gave up after {n} retries)"),
    }
}

fn resume_when(kind: FailureKind) -> &'static str {
    match kind {
        FailureKind::ConnectionLost => "once the server is back, ",
        FailureKind::Full => "then ",
        FailureKind::Other => "",
    }
}

/// What a run reports as it goes. A run that is one step of a larger job
/// (a sync, one source of several) names what a person knows: the
/// migration, the destination table and the source, never scratch names.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RunEvent {
    /// The run started.
    RunStarted {
        /// The run's id in the state store.
        run_id: i64,
        /// Its number among its migration's runs (1 for the first): the
        /// one shown.
        number: i64,
        /// The migration.
        migration: String,
        /// Tables to move.
        tables: usize,
        /// The number of the interrupted run this one continues, if any.
        resumed_from: Option<i64>,
        /// The sync this run is a step of.
        #[serde(skip_serializing_if = "Option::is_none")]
        sync: Option<i64>,
        /// The source it reads, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// The destination tables were copied into a restore point.
    RestorePoint(Taken),
    /// A table started.
    TableStarted {
        /// The destination table.
        table: String,
        /// The source it reads, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Rows in the source table.
        total: u64,
        /// Rows already committed by an interrupted run.
        resumed_at: u64,
        /// Key ranges it moves in side by side (0: in one stream).
        ranges: usize,
    },
    /// A table needed no work.
    TableSkipped {
        /// The destination table.
        table: String,
        /// The source it reads, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Why.
        reason: String,
    },
    /// A batch was committed. A table moved in key ranges reports the sum
    /// over its ranges.
    Progress {
        /// The destination table.
        table: String,
        /// The source it reads, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Rows processed so far, with those an interrupted run committed.
        done: u64,
        /// Rows in the source table.
        total: u64,
        /// Rows written so far by this run.
        written: u64,
        /// Rows skipped or flagged so far by this run.
        errors: u64,
        /// Seconds since the table started.
        elapsed_s: f64,
        /// Rows committed by an interrupted run before this one started.
        resumed_at: u64,
        /// This run's pace: `(done - resumed_at) / elapsed_s`.
        rows_per_s: f64,
        /// Seconds left at this run's pace (unknown before it moved a row).
        eta_s: Option<f64>,
        /// The key range whose batch this was, e.g. `2/6`.
        #[serde(skip_serializing_if = "Option::is_none")]
        range: Option<String>,
    },
    /// A table (or a key range of one) lost its connection and tries
    /// again: it reconnects and resumes after its last committed batch.
    Retrying {
        /// The destination table.
        table: String,
        /// The source it reads, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// The rows of the key range that lost it, e.g. `rows with id from
        /// 1 to 250000`, when the table moves in ranges.
        #[serde(skip_serializing_if = "Option::is_none")]
        range: Option<String>,
        /// Which try this is, from 1.
        attempt: u32,
        /// Tries there are (`settings.retries`).
        retries: u32,
        /// Seconds until it tries.
        delay_s: f64,
        /// Rows committed before the loss (of the range, for a range).
        committed: u64,
        /// What failed.
        error: String,
    },
    /// A row failed and its policy was applied.
    RowFailed {
        /// The failure.
        failure: RowFailure,
        /// The policy applied.
        policy: ErrorPolicy,
        /// The source it was read from, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
    /// Rows of a table on a foreign-key cycle that the destination refused
    /// for a missing parent were written again once every table of the
    /// cycle was in.
    CycleSettled {
        /// The destination table.
        table: String,
        /// The source it reads, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// Rows written now.
        written: u64,
        /// Rows still refused (they stay skipped or flagged).
        refused: u64,
    },
    /// A table finished.
    TableFinished {
        /// The destination table.
        table: String,
        /// The source it reads, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
        /// This run's counts.
        counts: RunCounts,
        /// Rows done, with those an interrupted run committed.
        done: u64,
        /// What each of its plugins consumed.
        plugins: Vec<PluginStats>,
        /// Seconds it took.
        elapsed_s: f64,
    },
    /// The run ended.
    RunFinished {
        /// The run's id.
        run_id: i64,
        /// Its number among its migration's runs.
        number: i64,
        /// `succeeded` or `failed`.
        status: String,
        /// Totals.
        counts: RunCounts,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// The run's tables were validated.
    Validated {
        /// The report.
        report: Report,
        /// The source the run read, when the migration has several.
        #[serde(skip_serializing_if = "Option::is_none")]
        source: Option<String>,
    },
}

impl RunEvent {
    /// The progress row a table's event belongs to: the table, and for one
    /// source of several, which (a consolidated table has one per source).
    pub fn row(&self) -> Option<String> {
        match self {
            Self::TableStarted { table, source, .. }
            | Self::Retrying { table, source, .. }
            | Self::TableSkipped { table, source, .. }
            | Self::Progress { table, source, .. }
            | Self::CycleSettled { table, source, .. }
            | Self::TableFinished { table, source, .. } => Some(row_name(table, source.as_deref())),
            Self::RowFailed {
                failure, source, ..
            } => Some(row_name(&failure.table, source.as_deref())),
            _ => None,
        }
    }
}

/// Receives run events (the CLI draws progress bars or prints JSON).
pub trait Observer: Send {
    /// Called for each event, in order.
    fn on(&mut self, event: &RunEvent);
}

/// Events from tables running side by side, to one observer, naming
/// things as the run's [`Naming`] says.
pub(in crate::jobs) struct Events<'a> {
    pub(in crate::jobs) observer: Mutex<&'a mut dyn Observer>,
    pub(in crate::jobs) naming: &'a Naming,
}

impl<'a> Events<'a> {
    /// Events to `observer`, naming things as `naming` says.
    pub(in crate::jobs) fn new(observer: &'a mut dyn Observer, naming: &'a Naming) -> Self {
        Self {
            observer: Mutex::new(observer),
            naming,
        }
    }

    pub(in crate::jobs) fn on(&self, event: &RunEvent) {
        self.observer.lock().expect("observer lock").on(event);
    }

    pub(in crate::jobs) fn table(&self, plan: &TablePlan) -> String {
        self.naming.table(&plan.spec).to_string()
    }

    pub(in crate::jobs) fn source(&self) -> Option<String> {
        self.naming.source.clone()
    }

    /// The migration as its events name it: the file's, for a run that is
    /// a step of a larger job recorded under another name.
    pub(in crate::jobs) fn migration(&self, recorded: &str) -> String {
        self.naming
            .migration
            .clone()
            .unwrap_or_else(|| recorded.to_string())
    }
}
