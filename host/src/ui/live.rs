//! Live progress: the run events the CLI prints with `run --json`, fanned
//! out to the dashboard's server-sent-event streams, with the latest state
//! of each migration kept for pages opened mid-run.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::jobs::{Observer, RunEvent};

/// Events buffered per subscriber; a slower page skips ahead (the next
/// progress event carries the totals, so nothing is lost for good).
const BUFFER: usize = 256;
/// Row failures kept in a migration's snapshot.
const KEPT_FAILURES: usize = 20;

/// One event for one migration's page, as the JSON line `run --json`
/// prints (plus the dashboard's own `action_started` and `outcome`).
#[derive(Debug, Clone)]
pub struct Update {
    /// The migration it belongs to.
    pub migration: String,
    /// The event as JSON.
    pub json: String,
}

/// What a page opened now must be shown first.
#[derive(Default)]
struct Snapshot {
    /// The action and run headers, in order.
    header: Vec<String>,
    /// The newest event of each progress row (a table, or one source's
    /// part of a consolidated table), in the order the rows started.
    tables: Vec<(String, String)>,
    /// The newest row failures.
    failures: Vec<String>,
    /// The outcome, once the action ended.
    outcome: Option<String>,
}

impl Snapshot {
    fn events(&self) -> Vec<String> {
        let tables = self.tables.iter().map(|(_, e)| e.clone());
        self.header
            .iter()
            .cloned()
            .chain(tables)
            .chain(self.failures.iter().cloned())
            .chain(self.outcome.clone())
            .collect()
    }

    fn table(&mut self, row: String, json: String) {
        match self.tables.iter_mut().find(|(t, _)| *t == row) {
            Some(slot) => slot.1 = json,
            None => self.tables.push((row, json)),
        }
    }
}

/// The hub every run of the dashboard's process reports to.
pub struct Live {
    sender: broadcast::Sender<Update>,
    snapshots: Mutex<HashMap<String, Snapshot>>,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            sender: broadcast::channel(BUFFER).0,
            snapshots: Mutex::new(HashMap::new()),
        }
    }
}

impl Live {
    /// The events a page of `migration` shows first, and the stream of
    /// those that follow (subscribed before the snapshot is read, so none
    /// falls in between).
    pub fn subscribe(&self, migration: &str) -> (Vec<String>, broadcast::Receiver<Update>) {
        let receiver = self.sender.subscribe();
        let snapshots = self.snapshots.lock().expect("live snapshots");
        let first = snapshots
            .get(migration)
            .map(Snapshot::events)
            .unwrap_or_default();
        (first, receiver)
    }

    /// A dashboard action on `migration` starts: its page starts afresh.
    pub fn begin(&self, migration: &str, action: &str) {
        let json = serde_json::json!({ "event": "action_started", "action": action }).to_string();
        self.with(migration, |s| {
            *s = Snapshot::default();
            s.header.push(json.clone());
        });
        self.send(migration, json);
    }

    /// How an action (or a scheduled sync) on `migration` ended.
    pub fn outcome(&self, migration: &str, ok: bool, message: &str) {
        let json =
            serde_json::json!({ "event": "outcome", "ok": ok, "message": message }).to_string();
        self.with(migration, |s| s.outcome = Some(json.clone()));
        self.send(migration, json);
    }

    /// An observer that reports a run or sync of `migration` (its scratch
    /// runs, `<migration>#sync`, included) to its pages.
    pub fn observer(self: &Arc<Self>, migration: &str) -> LiveObserver {
        LiveObserver {
            live: Arc::clone(self),
            migration: migration.to_string(),
        }
    }

    fn with(&self, migration: &str, change: impl FnOnce(&mut Snapshot)) {
        let mut snapshots = self.snapshots.lock().expect("live snapshots");
        change(snapshots.entry(migration.to_string()).or_default());
    }

    fn send(&self, migration: &str, json: String) {
        // No page open is no error.
        let _ = self.sender.send(Update {
            migration: migration.to_string(),
            json,
        });
    }

    fn record(&self, migration: &str, event: &RunEvent) {
        let json = slim(event);
        self.with(migration, |s| match event {
            RunEvent::RunStarted { .. } => {
                // A scheduled sync after a finished action starts afresh.
                if s.outcome.is_some() {
                    *s = Snapshot::default();
                }
                s.header.push(json.clone());
            }
            RunEvent::TableStarted { .. }
            | RunEvent::Progress { .. }
            | RunEvent::TableFinished { .. }
            | RunEvent::TableSkipped { .. } => {
                s.table(event.row().unwrap_or_default(), json.clone())
            }
            RunEvent::RowFailed { .. } => {
                if s.failures.len() == KEPT_FAILURES {
                    s.failures.remove(0);
                }
                s.failures.push(json.clone());
            }
            RunEvent::RestorePoint(_)
            | RunEvent::CycleSettled { .. }
            | RunEvent::Retrying { .. }
            | RunEvent::RunFinished { .. }
            | RunEvent::Validated { .. } => s.header.push(json.clone()),
        });
        self.send(migration, json);
    }
}

/// The event as JSON, without what a page does not show: a validation's
/// full report (the page reads it from the state store) and a failed row's
/// values (the flagged-rows table and its export have them).
fn slim(event: &RunEvent) -> String {
    let mut value = serde_json::to_value(event).expect("events serialize");
    match event {
        RunEvent::Validated { report, .. } => {
            value = serde_json::json!({ "event": "validated", "passed": report.passed });
        }
        RunEvent::RowFailed { .. } => {
            if let Some(failure) = value.get_mut("failure").and_then(|f| f.as_object_mut()) {
                failure.remove("row");
            }
        }
        _ => {}
    }
    value.to_string()
}

/// Reports run events to the dashboard's pages.
pub struct LiveObserver {
    live: Arc<Live>,
    migration: String,
}

impl Observer for LiveObserver {
    fn on(&mut self, event: &RunEvent) {
        self.live.record(&self.migration, event);
    }
}

/// Sends each event to two observers: the CLI's progress and the pages.
pub struct Both<A, B>(pub A, pub B);

impl<A: Observer, B: Observer> Observer for Both<A, B> {
    fn on(&mut self, event: &RunEvent) {
        self.0.on(event);
        self.1.on(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(done: u64) -> RunEvent {
        from_source(done, None)
    }

    fn from_source(done: u64, source: Option<&str>) -> RunEvent {
        RunEvent::Progress {
            table: "people".into(),
            source: source.map(Into::into),
            done,
            total: 10,
            written: done,
            errors: 0,
            elapsed_s: 1.0,
            resumed_at: 0,
            rows_per_s: done as f64,
            eta_s: None,
            range: None,
        }
    }

    fn started(migration: &str) -> RunEvent {
        RunEvent::RunStarted {
            run_id: 1,
            number: 1,
            migration: migration.into(),
            tables: 1,
            resumed_from: None,
            sync: None,
            source: None,
        }
    }

    #[test]
    fn a_page_opened_mid_run_sees_the_newest_progress_then_what_follows() {
        let live = Arc::new(Live::default());
        live.begin("m", "run");
        let mut observer = live.observer("m");
        observer.on(&started("m"));
        observer.on(&progress(4));
        observer.on(&progress(8));
        let (first, mut receiver) = live.subscribe("m");
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first[0].contains("action_started") && first[1].contains("run_started"));
        assert!(
            first[2].contains("\"done\":8"),
            "only the newest progress: {first:?}"
        );
        live.outcome("m", true, "the run succeeded");
        let next = receiver.try_recv().expect("the outcome is sent");
        assert_eq!(next.migration, "m");
        assert!(next.json.contains("the run succeeded"));
        assert!(live.subscribe("other").0.is_empty());
    }

    #[test]
    fn the_scheduler_s_runs_belong_to_their_migration_and_start_afresh() {
        let live = Arc::new(Live::default());
        let mut observer = live.observer("s");
        observer.on(&started("s#sync"));
        observer.on(&progress(10));
        live.outcome("s", true, "sync 1 succeeded");
        assert_eq!(live.subscribe("s").0.len(), 3);
        observer.on(&started("s#sync"));
        let (first, _) = live.subscribe("s");
        assert_eq!(first.len(), 1, "a new sync starts afresh: {first:?}");
    }

    #[test]
    fn each_source_of_a_consolidated_table_keeps_its_own_row() {
        let live = Arc::new(Live::default());
        let mut observer = live.observer("m");
        observer.on(&started("m"));
        observer.on(&from_source(4, Some("crm")));
        observer.on(&from_source(6, Some("shop")));
        observer.on(&from_source(10, Some("crm")));
        let (first, _) = live.subscribe("m");
        assert_eq!(first.len(), 3, "{first:?}");
        assert!(first[1].contains("\"crm\"") && first[1].contains("\"done\":10"));
        assert!(first[2].contains("\"shop\"") && first[2].contains("\"done\":6"));
    }
}
