//! `credvault serve`: syncs continuous and scheduled migrations when they
//! are due, until stopped.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::{SyncError, sync_migration};
use crate::config::{Catalog, Migration, SyncKind, SyncSpec};
use crate::pipeline::Observer;
use crate::runtime::Runtime;
use crate::state::{StateStore, SyncRecord};

/// The longest the scheduler sleeps before looking again.
const LONGEST_NAP: Duration = Duration::from_secs(30);
/// How soon the scheduler looks again after a sync.
const RECHECK: Duration = Duration::from_secs(1);

/// A migration's schedule, as kept with each sync (so `status` can say
/// when the next one is due without the migration file).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Summary {
    /// One-time, continuous or scheduled.
    pub kind: SyncKind,
    /// The interval.
    pub every: Option<String>,
    /// The cron expression.
    pub cron: Option<String>,
}

impl Summary {
    /// The schedule of `m`.
    pub fn of(m: &Migration) -> Self {
        Self {
            kind: m.sync.kind,
            every: m.sync.every.clone(),
            cron: m.sync.cron.clone(),
        }
    }

    /// When the sync after one that started at `last` is due.
    pub fn next_after(
        &self,
        last: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        let spec = SyncSpec {
            kind: self.kind,
            every: self.every.clone(),
            cron: self.cron.clone(),
            ..SyncSpec::default()
        };
        spec.next_after(last)
    }
}

/// When the sync after `last` is due, by the schedule kept with it (so no
/// migration file is needed); `None` for a one-time migration.
pub fn next_sync(last: &SyncRecord) -> Option<chrono::DateTime<chrono::Utc>> {
    let schedule: Summary = serde_json::from_value(last.schedule.clone()).ok()?;
    let started = chrono::DateTime::parse_from_rfc3339(&last.started_at)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc));
    schedule.next_after(started)
}

/// Asks a running scheduler to stop once the sync in progress is done.
#[derive(Clone)]
pub struct Stop(watch::Receiver<bool>);

impl Stop {
    /// A stop signal and the switch that raises it.
    pub fn new() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self(rx))
    }

    fn raised(&self) -> bool {
        *self.0.borrow()
    }

    /// Sleeps for `nap` or until stopped. A switch dropped without being
    /// raised (its task ended) still leaves the whole nap to sleep: waking
    /// at once would turn the scheduler's loop into a busy loop.
    async fn nap(&mut self, nap: Duration) {
        let _ = tokio::time::timeout(nap, async {
            if self.0.wait_for(|stop| *stop).await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await;
    }
}

/// Syncs each migration of `catalog` whenever it is due (its first sync at
/// once), skipping paused ones, until `stop` is raised; a sync in progress
/// always finishes first, so no batch is cut off. Each file is read again
/// before its due time is looked at, so edits apply without a restart; a
/// file that no longer reads is reported once and not synced until it does.
/// Failures are reported to `report` and retried at the next due time.
/// Each sync holds `turn`, which the dashboard's actions hold too, so a
/// click never runs beside a sync; a migration another process holds (a
/// `credvault run` in a shell, say) is reported once and synced once it
/// is let go.
pub async fn serve(
    catalog: &Catalog,
    runtime: &Runtime,
    state: &StateStore,
    observer: &mut dyn Observer,
    turn: &Mutex<()>,
    mut stop: Stop,
    mut report: impl FnMut(&Migration, Result<super::SyncSummary, SyncError>),
) -> Result<(), SyncError> {
    let mut unreadable: HashMap<String, String> = HashMap::new();
    let mut held_elsewhere: HashSet<String> = HashSet::new();
    while !stop.raised() {
        let mut soonest = LONGEST_NAP;
        for last in catalog.migrations() {
            if stop.raised() {
                break;
            }
            // Taken before looking at the due time: a sync just run from the
            // dashboard moves it.
            let _turn = turn.lock().await;
            if stop.raised() {
                break;
            }
            let m = match catalog.current(&last.name) {
                Some(Ok(m)) => m,
                Some(Err(why)) => {
                    if unreadable.get(&last.name) != Some(&why) {
                        unreadable.insert(last.name.clone(), why.clone());
                        report(&last, Err(SyncError::Unreadable(why)));
                    }
                    continue;
                }
                None => continue,
            };
            unreadable.remove(&m.name);
            if m.sync.kind == SyncKind::OneTime {
                continue;
            }
            let due = next_due(&m, state).await?;
            let wait = due
                .map(|d| (d - chrono::Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(LONGEST_NAP);
            if wait > Duration::ZERO {
                soonest = soonest.min(wait);
                continue;
            }
            if state.paused(&m.name).await?.is_some() {
                continue;
            }
            let hold = match state.hold(&m.name, "credvault serve (a scheduled sync)") {
                Ok(hold) => hold,
                Err(busy) => {
                    // Due still: look again soon, and say so once.
                    if held_elsewhere.insert(m.name.clone()) {
                        report(&m, Err(busy.into()));
                    }
                    soonest = soonest.min(RECHECK);
                    continue;
                }
            };
            held_elsewhere.remove(&m.name);
            report(
                &m,
                sync_migration(&m, runtime, state, &hold, observer).await,
            );
            // Its next due time is only known now: look again soon (not at
            // once, so a sync that fails before it is recorded cannot spin).
            soonest = soonest.min(RECHECK);
        }
        stop.nap(soonest).await;
    }
    Ok(())
}

/// When `m` is next due: after its last sync's start, or now.
async fn next_due(
    m: &Migration,
    state: &StateStore,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, SyncError> {
    let last = state.last_syncs(Some(&m.name)).await?;
    let started = last
        .first()
        .and_then(|s| chrono::DateTime::parse_from_rfc3339(&s.started_at).ok())
        .map(|t| t.with_timezone(&chrono::Utc));
    Ok(match started {
        None => Some(chrono::Utc::now()),
        Some(started) => Summary::of(m).next_after(Some(started)),
    })
}

#[cfg(test)]
mod nap_tests {
    use super::*;

    #[tokio::test]
    async fn a_switch_dropped_unraised_still_naps_instead_of_spinning() {
        let (raise, mut stop) = Stop::new();
        drop(raise);
        let started = std::time::Instant::now();
        stop.nap(Duration::from_millis(200)).await;
        assert!(started.elapsed() >= Duration::from_millis(190));
        assert!(!stop.raised());
    }

    #[tokio::test]
    async fn a_raised_switch_ends_the_nap_at_once() {
        let (raise, mut stop) = Stop::new();
        raise.send(true).unwrap();
        let started = std::time::Instant::now();
        stop.nap(Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
