//! `credvault serve`: syncs continuous and scheduled migrations when they
//! are due, several at once, each within its time limit, until stopped.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, watch};

use super::SyncError;
use crate::config::{Catalog, Migration, SyncKind, SyncSpec};
use crate::jobs::Observer;
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

    /// `every 5m`, `cron 0 3 * * * UTC`, or `not scheduled`.
    pub fn describe(&self) -> String {
        match (&self.cron, &self.every) {
            (Some(cron), _) => format!("cron {cron} UTC"),
            (None, Some(every)) => format!("every {every}"),
            (None, None) => "not scheduled".into(),
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

/// Asks a running scheduler to stop: syncs in progress get a grace to
/// finish, then are cut off.
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
        let _ = tokio::time::timeout(nap, self.until_raised()).await;
    }

    /// Waits until the stop is raised (for ever if its switch is gone).
    async fn until_raised(&mut self) {
        if self.0.wait_for(|stop| *stop).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves `grace` after the stop is raised.
    async fn after(mut self, grace: Duration) {
        self.until_raised().await;
        tokio::time::sleep(grace).await;
    }
}

/// The most syncs `serve` runs at once unless `--jobs` says otherwise.
pub const DEFAULT_JOBS: usize = 4;
/// How long syncs in progress may go on after a stop before they are cut
/// off: long enough to commit a batch, short enough for a service manager.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How `serve` runs syncs.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// The most syncs at once (of different migrations).
    pub jobs: usize,
    /// How long syncs in progress may go on after a stop.
    pub grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            jobs: DEFAULT_JOBS,
            grace: STOP_GRACE,
        }
    }
}

/// Whose turn it is to write each migration in this process. The
/// scheduler and the dashboard's actions take a migration's turn before
/// they write it, so a click never runs beside a sync of the same
/// migration, while other migrations go on side by side.
#[derive(Default)]
pub struct Turns(std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>);

impl Turns {
    /// `migration`'s turn.
    pub fn of(&self, migration: &str) -> Arc<Mutex<()>> {
        let mut turns = self.0.lock().expect("turns");
        Arc::clone(turns.entry(migration.to_string()).or_default())
    }

    /// The migrations whose turn is taken now, by name.
    pub fn taken(&self) -> Vec<String> {
        let turns = self.0.lock().expect("turns");
        let mut taken: Vec<String> = turns
            .iter()
            .filter(|(_, turn)| turn.try_lock().is_err())
            .map(|(name, _)| name.clone())
            .collect();
        taken.sort();
        taken
    }

    /// Waits until no turn is taken.
    pub async fn idle(&self) {
        let all: Vec<Arc<Mutex<()>>> = self.0.lock().expect("turns").values().cloned().collect();
        for turn in all {
            let _ = turn.lock().await;
        }
    }
}

/// What `serve` reports as it goes.
pub enum Served<'a> {
    /// A sync ended, or a due one could not start.
    Synced(&'a Migration, Result<super::SyncSummary, SyncError>),
    /// The migration's syncs fell behind its schedule; said once, until
    /// they keep it again.
    Behind(&'a Migration, Lag),
    /// Its syncs keep its schedule again.
    OnSchedule(&'a Migration),
}

/// How a sync fell behind its schedule.
#[derive(Debug, Clone)]
pub struct Lag {
    /// The schedule, as `every 1s` or `cron 0 3 * * * UTC`.
    pub schedule: String,
    /// How long the sync took.
    pub took: Duration,
    /// How long it waited for a sync slot.
    pub late: Duration,
    /// The time between two due times.
    pub period: Duration,
    /// How many sync slots there are (it waits for one when it is late).
    pub slots: usize,
}

impl std::fmt::Display for Lag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let schedule = &self.schedule;
        let took = self.took.as_secs_f64();
        if self.took > self.period {
            return write!(
                f,
                "it is due {schedule} but its sync took {took:.1}s, so it syncs back to back, every {took:.1}s or so (give it a longer interval, or make the sync faster)"
            );
        }
        let (late, slots) = (self.late.as_secs_f64(), self.slots);
        write!(
            f,
            "it is due {schedule} but its sync started {late:.1}s late, waiting for one of the {slots} sync slots, all taken by other migrations' syncs; `credvault serve --jobs N` sets how many run at once"
        )
    }
}

/// How `serve` stopped.
#[derive(Debug)]
pub struct Stopped {
    /// When it saw the stop: the grace runs from there.
    pub at: std::time::Instant,
    /// The migrations whose syncs were cut off at the end of the grace.
    pub cut_off: Vec<String>,
}

/// What `serve` works with.
pub struct Scheduler<'a> {
    /// The migrations.
    pub catalog: &'a Catalog,
    /// Plugins.
    pub runtime: &'a Runtime,
    /// The state store.
    pub state: &'a StateStore,
    /// Shared with the dashboard.
    pub turns: &'a Turns,
    /// Jobs and grace.
    pub options: ServeOptions,
}

/// A reporter of each sync's run events.
pub type Observe<'a> = &'a dyn Fn(&Migration) -> Box<dyn Observer>;

/// A sync in progress.
type Syncing<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Done> + 'a>>;

/// A sync that ended, with how its timing went.
struct Done {
    m: Migration,
    due: Time,
    outcome: Result<super::SyncSummary, SyncError>,
    lag: Option<Lag>,
}

/// What the scheduler remembers between looks, so each thing is said once.
#[derive(Default)]
struct Book {
    unreadable: HashMap<String, String>,
    held_elsewhere: HashSet<String>,
    syncing: HashSet<String>,
    behind: HashSet<String>,
    /// Since when each migration is due with every slot taken.
    queued: HashMap<String, Time>,
    /// The due time each migration's last sync started for, and when it
    /// ended.
    last: HashMap<String, (Time, Time)>,
}

type Time = chrono::DateTime<chrono::Utc>;

impl Book {
    /// How long to wait before syncing `name`, due at `at`, again: a sync
    /// that ended without being recorded (the state store failing, say)
    /// leaves the same due time, and is tried again after a pause rather
    /// than in a busy loop.
    fn rest(&self, name: &str, at: Time) -> Duration {
        match self.last.get(name) {
            Some((due, ended)) if *due == at => {
                let since = (chrono::Utc::now() - ended).to_std().unwrap_or_default();
                RECHECK.saturating_sub(since)
            }
            _ => Duration::ZERO,
        }
    }
}

impl<'a> Scheduler<'a> {
    /// Syncs each migration of the catalog whenever it is due (its first
    /// sync at once), skipping paused ones, until `stop` is raised; up to
    /// `options.jobs` syncs of different migrations run at once, the most
    /// overdue first. Each file is read again before its due time is
    /// looked at, so edits apply without a restart; a file that no longer
    /// reads is reported once and not synced until it does. Failures
    /// (a sync past its time limit among them) are reported to `report`
    /// and retried at the next due time, and a migration whose syncs
    /// cannot keep its schedule is reported once until they keep it again.
    /// Each sync holds its migration's turn, which the dashboard's actions
    /// take too, so a click never runs beside a sync of the same
    /// migration; a migration another process holds (a `credvault run` in
    /// a shell, say) is reported once and synced once it is let go. Once
    /// stopped, syncs in progress get `options.grace` to end, then are cut
    /// off.
    pub async fn serve(
        &self,
        observe: Observe<'a>,
        mut stop: Stop,
        mut report: impl FnMut(Served<'_>),
    ) -> Result<Stopped, SyncError> {
        let mut running: FuturesUnordered<Syncing<'a>> = FuturesUnordered::new();
        let mut book = Book::default();
        while !stop.raised() {
            let soonest = self
                .start_due(&mut running, &mut book, &stop, observe, &mut report)
                .await?;
            tokio::select! {
                Some(done) = running.next() => finished(done, &mut book, &mut report),
                () = stop.nap(soonest) => {}
            }
        }
        let mut stopped = Stopped {
            at: std::time::Instant::now(),
            cut_off: Vec::new(),
        };
        while let Some(done) = running.next().await {
            if matches!(done.outcome, Err(SyncError::CutOff { .. })) {
                stopped.cut_off.push(done.m.name.clone());
            }
            finished(done, &mut book, &mut report);
        }
        stopped.cut_off.sort();
        Ok(stopped)
    }

    /// Starts the due syncs that have a slot, the most overdue first;
    /// how soon to look again.
    async fn start_due(
        &self,
        running: &mut FuturesUnordered<Syncing<'a>>,
        book: &mut Book,
        stop: &Stop,
        observe: Observe<'a>,
        report: &mut impl FnMut(Served<'_>),
    ) -> Result<Duration, SyncError> {
        let mut soonest = LONGEST_NAP;
        let mut due = Vec::new();
        for last in self.catalog.migrations() {
            if book.syncing.contains(&last.name) {
                continue;
            }
            let Some(m) = self.readable(&last, book, report) else {
                continue;
            };
            // Taken before looking at the due time: a sync just run from
            // the dashboard moves it. Taken now by the dashboard: look
            // again soon.
            let Ok(turn) = self.turns.of(&m.name).try_lock_owned() else {
                soonest = soonest.min(RECHECK);
                continue;
            };
            let at = next_due(&m, self.state).await?;
            let wait = at
                .map(|d| (d - chrono::Utc::now()).to_std().unwrap_or_default())
                .unwrap_or(LONGEST_NAP);
            let wait = match at {
                Some(at) => wait.max(book.rest(&m.name, at)),
                None => wait,
            };
            match at {
                Some(at) if wait.is_zero() => due.push((at, m, turn)),
                _ => soonest = soonest.min(wait),
            }
        }
        due.sort_by_key(|(at, ..)| *at);
        for (at, m, turn) in due {
            if running.len() >= self.options.jobs {
                // A slot frees when a sync ends, which wakes the loop.
                book.queued
                    .entry(m.name.clone())
                    .or_insert(chrono::Utc::now());
                continue;
            }
            if self.state.paused(&m.name).await?.is_some() {
                continue;
            }
            let hold = match self
                .state
                .hold(&m.name, "credvault serve (a scheduled sync)")
            {
                Ok(hold) => hold,
                Err(busy) => {
                    // Due still: look again soon, and say so once.
                    if book.held_elsewhere.insert(m.name.clone()) {
                        report(Served::Synced(&m, Err(busy.into())));
                    }
                    soonest = soonest.min(RECHECK);
                    continue;
                }
            };
            book.held_elsewhere.remove(&m.name);
            book.syncing.insert(m.name.clone());
            let queued = book.queued.remove(&m.name);
            let jobs = self.options.jobs;
            let cutoff = super::Cutoff {
                at: stop.clone().after(self.options.grace),
                grace: self.options.grace,
            };
            let (runtime, state) = (self.runtime, self.state);
            running.push(Box::pin(async move {
                let _turn = turn;
                let started = chrono::Utc::now();
                let mut observer = observe(&m);
                let outcome =
                    super::sync_migration_until(&m, runtime, state, &hold, &mut *observer, cutoff)
                        .await;
                let lag = lag(&m, at, queued.map(|since| (since, jobs)), started);
                Done {
                    m,
                    due: at,
                    outcome,
                    lag,
                }
            }));
        }
        Ok(soonest)
    }

    /// `last` as its file reads now, if it syncs on a schedule; a file that
    /// no longer reads is reported once.
    fn readable(
        &self,
        last: &Migration,
        book: &mut Book,
        report: &mut impl FnMut(Served<'_>),
    ) -> Option<Migration> {
        let m = match self.catalog.current(&last.name)? {
            Ok(m) => m,
            Err(why) => {
                let why = why.to_string();
                if book.unreadable.get(&last.name) != Some(&why) {
                    book.unreadable.insert(last.name.clone(), why.clone());
                    report(Served::Synced(last, Err(SyncError::Unreadable(why))));
                }
                return None;
            }
        };
        book.unreadable.remove(&m.name);
        (m.sync.kind != SyncKind::OneTime).then_some(m)
    }
}

/// Reports a sync that ended, and whether its migration fell behind its
/// schedule or keeps it again.
fn finished(done: Done, book: &mut Book, report: &mut impl FnMut(Served<'_>)) {
    let Done {
        m,
        due,
        outcome,
        lag,
    } = done;
    book.syncing.remove(&m.name);
    book.last.insert(m.name.clone(), (due, chrono::Utc::now()));
    // A sync cut off by the stop says nothing of the schedule.
    let cut_off = matches!(outcome, Err(SyncError::CutOff { .. }));
    report(Served::Synced(&m, outcome));
    match lag.filter(|_| !cut_off) {
        Some(lag) if book.behind.insert(m.name.clone()) => report(Served::Behind(&m, lag)),
        None if book.behind.remove(&m.name) => report(Served::OnSchedule(&m)),
        _ => {}
    }
}

/// How a sync of `m` due at `due` and started at `started` fell behind,
/// if it took longer than the time between two due times, or waited
/// longer than that for a slot (`queued`: since when, and how many slots
/// there are). A sync started late for other reasons (paused, held by
/// another process, a previous sync that overran) is told as those are.
fn lag(m: &Migration, due: Time, queued: Option<(Time, usize)>, started: Time) -> Option<Lag> {
    let summary = Summary::of(m);
    let period = (summary.next_after(Some(due))? - due).to_std().ok()?;
    let took = (chrono::Utc::now() - started).to_std().unwrap_or_default();
    let late = queued.map_or(Duration::ZERO, |(since, _)| {
        (started - since).to_std().unwrap_or_default()
    });
    (took > period || late > period).then(|| Lag {
        schedule: summary.describe(),
        took,
        late,
        period,
        slots: queued.map_or(0, |(_, slots)| slots),
    })
}

/// When `last` took longer than the time to the sync due after it:
/// `cannot keep its schedule: …`, for `status` and the dashboard.
pub fn lagging(last: &SyncRecord) -> Option<String> {
    let schedule: Summary = serde_json::from_value(last.schedule.clone()).ok()?;
    let parse = |t: &str| {
        chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let started = parse(&last.started_at)?;
    let finished = parse(last.finished_at.as_deref()?)?;
    let period = schedule.next_after(Some(started))? - started;
    let took = finished - started;
    (took > period).then(|| {
        format!(
            "cannot keep its schedule: it is due {} but its last sync took {:.1}s",
            schedule.describe(),
            took.num_milliseconds() as f64 / 1000.0
        )
    })
}

/// When `m` is next due: after its last sync's start, or now.
async fn next_due(m: &Migration, state: &StateStore) -> Result<Option<Time>, SyncError> {
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

#[cfg(test)]
mod lag_tests {
    use super::*;

    fn every_second() -> Migration {
        toml::from_str(
            "name = \"m\"\n[source]\ntype = \"csv\"\npath = \"d\"\n[destination]\ntype = \"sqlite\"\npath = \"o.db\"\n[sync]\nkind = \"continuous\"\nevery = \"1s\"\n",
        )
        .unwrap()
    }

    #[test]
    fn a_sync_longer_than_its_interval_or_waiting_longer_for_a_slot_falls_behind() {
        let m = every_second();
        let now = chrono::Utc::now();
        let ago = |ms| now - chrono::Duration::milliseconds(ms);
        assert!(lag(&m, ago(300), None, ago(200)).is_none(), "on time");
        let slow = lag(&m, ago(2500), None, ago(2400)).expect("took 2.4s");
        assert!(
            slow.to_string()
                .starts_with("it is due every 1s but its sync took 2.4s, so it syncs back to back"),
            "{slow}"
        );
        let queued = lag(&m, ago(3100), Some((ago(3000), 4)), ago(200)).expect("waited 2.8s");
        assert!(
            queued
                .to_string()
                .starts_with("it is due every 1s but its sync started 2.8s late, waiting for one of the 4 sync slots"),
            "{queued}"
        );
    }

    #[tokio::test]
    async fn a_turn_taken_is_listed_until_let_go() {
        let turns = Turns::default();
        let a = turns.of("a").lock_owned().await;
        let _b = turns.of("b");
        assert_eq!(turns.taken(), ["a"]);
        drop(a);
        turns.idle().await;
        assert!(turns.taken().is_empty());
    }
}
