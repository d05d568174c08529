//! `credvault sync`, `serve`, `status`, `pause` and `resume`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use tokio::net::TcpListener;

use super::progress::Reporter;
use crate::app::Removed;
use crate::config::{Catalog, Migration, show_size};
use crate::jobs::Observer;
use crate::jobs::sync::{
    Scheduler, ServeOptions, Served, SlotReport, Stop, SyncError, SyncSummary, Turns,
    sync_migration,
};
use crate::runtime::Runtime;
use crate::state::{StateStore, SyncRecord};
use crate::ui::{Both, Dashboard, Live, Origins};

/// Options of `credvault serve`.
#[derive(Args)]
pub struct ServeArgs {
    /// The migration files to keep in sync (one-time ones are skipped).
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also serve the web dashboard (see `--listen`).
    #[arg(long)]
    ui: bool,
    /// Where the dashboard listens (with `--ui`); port 0 picks a free one.
    #[arg(long, default_value = crate::ui::DEFAULT_LISTEN, requires = "ui")]
    listen: SocketAddr,
    /// Let the dashboard listen on an address other than loopback. It has
    /// no login: put your own access control in front of it.
    #[arg(long, requires = "ui")]
    allow_remote: bool,
    /// Another origin users reach the dashboard by, as they type it
    /// (`https://migrations.example.com` behind a proxy); repeatable, and
    /// needed when listening on 0.0.0.0 or [::].
    #[arg(long = "origin", value_name = "URL", requires = "ui")]
    origins: Vec<String>,
    /// The most syncs that run at once (each of another migration); a
    /// migration due while all are taken waits for one.
    #[arg(long, value_name = "N", default_value_t = crate::jobs::sync::DEFAULT_JOBS as u16,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    jobs: u16,
}

impl ServeArgs {
    /// The migration files.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// How the scheduler runs syncs.
    pub fn options(&self) -> ServeOptions {
        ServeOptions {
            jobs: usize::from(self.jobs),
            ..ServeOptions::default()
        }
    }

    /// Binds the dashboard's address, when `--ui` asks for it, with the
    /// origins it answers.
    pub async fn dashboard(&self) -> anyhow::Result<Option<(TcpListener, Origins)>> {
        if !self.ui {
            return Ok(None);
        }
        let listener = crate::ui::bind(self.listen, self.allow_remote).await?;
        let origins = Origins::of(listener.local_addr()?, &self.origins)?;
        if origins.is_empty() {
            anyhow::bail!(
                "the dashboard on {} would answer no one: it answers only requests addressed to a name it knows, and an address like 0.0.0.0 is none; add --origin with the URL users type (http://HOST:{})",
                self.listen,
                self.listen.port()
            );
        }
        Ok(Some((listener, origins)))
    }
}

/// Runs one sync and prints what it changed.
pub async fn sync_once(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let hold = state.hold(&m.name, "credvault sync")?;
    let mut observer = Reporter::new(json);
    let outcome = sync_migration(m, runtime, state, &hold, &mut observer).await;
    observer.finish();
    Ok(show_outcome(m, outcome, json))
}

fn show_outcome(m: &Migration, outcome: Result<SyncSummary, SyncError>, json: bool) -> ExitCode {
    match outcome {
        Ok(summary) if json => {
            told!("{}", serde_json::to_string(&summary).expect("serializable"));
            ExitCode::SUCCESS
        }
        Ok(summary) => {
            for t in &summary.tables {
                told!(
                    "{}: {} sync, {} new, {} updated, {} deleted",
                    t.table,
                    serde_json::to_value(t.mode)
                        .expect("serializable")
                        .as_str()
                        .unwrap_or("?"),
                    t.changed.inserted,
                    t.changed.updated,
                    t.changed.deleted
                );
            }
            let c = summary.total;
            told!(
                "sync {} of `{}` succeeded: {} new, {} updated, {} deleted",
                summary.number,
                m.name,
                c.inserted,
                c.updated,
                c.deleted
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            note!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// Syncs the migrations when due until SIGTERM or Ctrl-C, then gives the
/// syncs in progress a grace to end, cuts off the rest and exits. With a
/// `dashboard` listener, serves the web dashboard meanwhile, and gives an
/// action started there the same grace.
pub async fn serve_until_stopped(
    catalog: Catalog,
    runtime: &Runtime,
    state: &StateStore,
    dashboard: Option<(TcpListener, Origins)>,
    options: ServeOptions,
) -> anyhow::Result<ExitCode> {
    let (raise, stop) = Stop::new();
    let grace = options.grace.as_secs();
    tokio::spawn(async move {
        wait_for_signal().await;
        // Raised before saying so: the stop must never depend on stderr.
        let _ = raise.send(true);
        note!("stopping: syncs in progress get {grace}s to finish, then are cut off");
    });
    for m in &catalog.migrations() {
        let next = crate::jobs::sync::Summary::of(m).next_after(None);
        match next {
            Some(_) => note!("serving `{}` ({})", m.name, describe_schedule(m)),
            None => note!("`{}` is one-time: not scheduled", m.name),
        }
    }
    let catalog = Arc::new(catalog);
    let live = Arc::new(Live::default());
    let turns = Arc::new(Turns::default());
    let ui = match dashboard {
        Some((listener, origins)) => Some(start_dashboard(
            listener, origins, &catalog, runtime, state, &live, &turns,
        )?),
        None => None,
    };
    let mut reporter = Reporter::new(false);
    let observe = |m: &crate::config::Migration| -> Box<dyn Observer> {
        Box::new(Both(reporter.beside(&m.name), live.observer(&m.name)))
    };
    let scheduler = Scheduler {
        catalog: &catalog,
        runtime,
        state,
        turns: &turns,
        options,
    };
    let stopped = scheduler
        .serve(&observe, stop, |served| match served {
            Served::Synced(m, outcome) => {
                if ui.is_some() {
                    match &outcome {
                        Ok(s) => {
                            live.outcome(&m.name, true, &format!("sync {} succeeded", s.number))
                        }
                        Err(e) => live.outcome(&m.name, false, &e.to_string()),
                    }
                }
                show_outcome(m, outcome, false);
            }
            Served::Behind(m, lag) => {
                note!(
                    "warning: migration `{}` cannot keep its schedule: {lag}",
                    m.name
                )
            }
            Served::OnSchedule(m) => note!(
                "migration `{}` keeps its schedule again ({})",
                m.name,
                describe_schedule(m)
            ),
        })
        .await?;
    reporter.finish();
    if let Some((_, server)) = ui {
        let deadline = tokio::time::Instant::from_std(stopped.at + options.grace);
        let idle = tokio::time::timeout_at(deadline, turns.idle()).await;
        server.abort();
        if idle.is_err() {
            for name in turns.taken() {
                note!(
                    "cut off the dashboard's action on `{name}` after the {grace}s grace: what it had not committed is rolled back; run it again (the next `credvault serve` or `credvault sync` resumes a sync)"
                );
            }
        }
    }
    if !stopped.cut_off.is_empty() {
        let names: Vec<String> = stopped.cut_off.iter().map(|n| format!("`{n}`")).collect();
        note!(
            "stopped: cut off the syncs of {} after the {grace}s grace; what they had not committed is rolled back, and the next `credvault serve` or `credvault sync` resumes them",
            names.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves the dashboard in the background.
fn start_dashboard(
    listener: TcpListener,
    origins: Origins,
    catalog: &Arc<Catalog>,
    runtime: &Runtime,
    state: &StateStore,
    live: &Arc<Live>,
    turns: &Arc<Turns>,
) -> anyhow::Result<(Arc<Dashboard>, tokio::task::JoinHandle<()>)> {
    let addr = listener.local_addr()?;
    let dashboard = Arc::new(Dashboard::new(
        Arc::clone(catalog),
        runtime.clone(),
        state.clone(),
        Arc::clone(live),
        Arc::clone(turns),
        origins,
    ));
    note!("dashboard: http://{addr}/");
    if addr.ip().is_unspecified() {
        note!("  answering as {}", dashboard.origins().join(", "));
    }
    let served = Arc::clone(&dashboard);
    let server = tokio::spawn(async move {
        if let Err(e) = crate::ui::serve(listener, served).await {
            note!("error: the dashboard stopped: {e}");
        }
    });
    Ok((dashboard, server))
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn describe_schedule(m: &Migration) -> String {
    crate::jobs::sync::Summary::of(m).describe()
}

/// The CDC slots of each migration named on the command line.
pub type Slots = [(String, Vec<SlotReport>)];

/// Prints each migration's last sync and when the next is due, and the
/// CDC slots of the migrations in `slots` with their warnings.
pub fn status(records: &[SyncRecord], paused: &[(String, String)], slots: &Slots, json: bool) {
    let slots_of = |name: &str| {
        slots
            .iter()
            .find(|(m, _)| m == name)
            .map_or(&[][..], |(_, s)| s.as_slice())
    };
    if json {
        let mut rows: Vec<serde_json::Value> = records
            .iter()
            .map(|r| {
                let mut v = serde_json::to_value(r).expect("serializable");
                v["next_sync"] = next_sync(r).into();
                v["paused"] = paused.iter().any(|(m, _)| m == &r.migration).into();
                v["behind_schedule"] = crate::jobs::sync::lagging(r).into();
                v["slots"] = serde_json::to_value(slots_of(&r.migration)).expect("serializable");
                v
            })
            .collect();
        for (name, reports) in slots {
            if !records.iter().any(|r| &r.migration == name) {
                rows.push(serde_json::json!({ "migration": name, "slots": reports }));
            }
        }
        out!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("serializable")
        );
        return;
    }
    if records.is_empty() && slots.is_empty() {
        out!("no syncs yet: `credvault sync FILE` runs one");
    }
    for (name, reports) in slots {
        if !records.iter().any(|r| &r.migration == name) {
            out!("{name}: no sync yet");
            show_slots(reports);
        }
    }
    for r in records {
        let duration = duration(r).map_or(String::new(), |d| format!(" in {d:.1}s"));
        out!(
            "{}: last sync {} {}{duration}: {} new, {} updated, {} deleted",
            r.migration,
            r.started_at,
            r.status,
            r.inserted,
            r.updated,
            r.deleted
        );
        if let Some(error) = &r.error {
            out!("  error: {error}");
        }
        match paused.iter().find(|(m, _)| m == &r.migration) {
            Some((_, since)) => out!("  paused since {since}"),
            None => out!(
                "  next sync: {}",
                next_sync(r).unwrap_or_else(|| "not scheduled (one-time)".into())
            ),
        }
        if let Some(lag) = crate::jobs::sync::lagging(r) {
            out!("  warning: {lag}");
        }
        show_slots(slots_of(&r.migration));
    }
}

/// A migration's CDC slots, one line each, then their warnings.
fn show_slots(reports: &[SlotReport]) {
    for report in reports {
        out!("  {}", report.summary());
        for warning in &report.warnings {
            out!("  warning: {warning}");
        }
    }
}

/// After `pause`: what the migration's CDC slots keep, and that they keep
/// growing while it is paused.
pub fn paused_slots(reports: &[SlotReport]) {
    if reports.is_empty() {
        return;
    }
    show_slots(reports);
    let limit = reports.first().map_or(0, |r| r.max_lag);
    out!(
        "  while paused, each CDC slot keeps every change's WAL on its source; `credvault status FILE` shows how much, and warns past max_lag ({}); past the server's max_slot_wal_keep_size the slot loses its WAL and the next sync needs a full copy",
        show_size(limit)
    );
}

/// Prints what `remove` dropped.
pub fn removed(m: &Migration, removed: &Removed, json: bool) {
    if json {
        out!("{}", serde_json::to_string(removed).expect("serializable"));
        return;
    }
    out!("removed `{}`:", m.name);
    for slot in &removed.slots {
        out!("  dropped replication slot `{slot}` on the source");
    }
    out!(
        "  deleted its checkpoints in the destination ({})",
        removed.checkpoints.join(", ")
    );
    let f = &removed.state;
    out!(
        "  forgot {} runs, {} syncs, {} checkpoints and {} validations in the state store{}",
        f.runs,
        f.syncs,
        f.checkpoints,
        f.validations,
        if f.paused { ", and its pause" } else { "" }
    );
    if f.flagged_closed > 0 {
        out!(
            "  closed {} flagged rows as `removed` (still in `credvault flagged list --all` and the export)",
            f.flagged_closed
        );
    }
    out!(
        "  kept: the destination's tables, its restore points and the audit trail; the next sync or run copies everything again"
    );
}

fn parse(t: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

fn duration(r: &SyncRecord) -> Option<f64> {
    let (start, end) = (parse(&r.started_at)?, parse(r.finished_at.as_deref()?)?);
    Some((end - start).num_milliseconds() as f64 / 1000.0)
}

fn next_sync(r: &SyncRecord) -> Option<String> {
    let next = crate::jobs::sync::next_sync(r)?;
    Some(next.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}
