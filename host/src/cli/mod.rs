//! The `credvault` command line: the only place that uses `anyhow`.

/// `println!` that ends the process quietly once stdout is closed (say,
/// `credvault flagged list | head`), instead of panicking. Like the two
/// below, it shows no terminal control that data put in a line.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        if let Err(e) = writeln!(std::io::stdout(), "{}", $crate::model::text::for_terminal(&line)) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            panic!("writing to stdout: {e}");
        }
    }};
}

/// `eprintln!` that never panics: a closed or full stderr (say, `credvault
/// serve 2>&1 | head`) loses the line, and nothing else. Diagnostics must
/// never stop a command, least of all `serve` on its way to a SIGTERM.
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stderr(), "{}", $crate::model::text::for_terminal(&line));
    }};
}

/// `println!` for lines that report what already happened (a sync's
/// outcome in `serve`): a closed stdout loses the line, and the command
/// goes on, with its own exit code.
macro_rules! told {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        let _ = writeln!(std::io::stdout(), "{}", $crate::model::text::for_terminal(&line));
    }};
}

mod flagged;
mod plugin;
mod progress;
mod restore;
mod show;
mod sync;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::app::{self, Ran};
use crate::config::{Catalog, Migration};
use crate::jobs;
use crate::runtime::Runtime;
use crate::state::StateStore;

/// Move data into CredVault through sandboxed wasm plugins.
#[derive(Parser)]
#[command(name = "credvault", version, about)]
struct Cli {
    /// The state store (runs, checkpoints, flagged rows, audit log).
    #[arg(
        long,
        global = true,
        env = "CREDVAULT_STATE",
        default_value = ".credvault/state.db"
    )]
    state: PathBuf,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "CREDVAULT_LOG", default_value = "warn")]
    log: String,
    /// The environment to use, as named in the migration file's
    /// `[environments.<name>]` (e.g. staging, production).
    #[arg(long, global = true, env = "CREDVAULT_ENV")]
    env: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a migration: copy every table, applying mappings and transforms.
    Run {
        /// The migration file.
        file: PathBuf,
        /// Print one JSON event per line on stdout instead of progress bars.
        #[arg(long)]
        json: bool,
        /// Start over instead of resuming an interrupted run.
        #[arg(long)]
        restart: bool,
        /// Start even if a pre-run check fails.
        #[arg(long)]
        force: bool,
        /// Do everything but touch the real tables: write into scratch
        /// tables, validate them, then drop them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Validate the destination against the source: row, column and NULL
    /// counts, types, a checksum, and a spot check of random rows.
    Validate {
        /// The migration file.
        file: PathBuf,
        /// Rows to spot-check per table (default: settings.validate_sample).
        #[arg(long)]
        sample: Option<u64>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        /// Also write the report as an HTML page to this file.
        #[arg(long)]
        html: Option<PathBuf>,
    },
    /// Check a migration file, its connections, mappings and plugins.
    Check {
        /// The migration file.
        file: PathBuf,
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the source's tables (columns, types, keys, approximate rows)
    /// and which of them the migration selects.
    Discover {
        /// The migration file.
        file: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the first rows of each table as they will arrive.
    Preview {
        /// The migration file.
        file: PathBuf,
        /// Rows per table.
        #[arg(long, default_value_t = 5)]
        rows: u64,
        /// Print the preview as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect or install plugin files.
    Plugin {
        #[command(subcommand)]
        command: plugin::PluginCommand,
    },
    /// Show the audit log: who checked and ran what, when, with what result.
    Log {
        /// Only this migration.
        #[arg(long)]
        migration: Option<String>,
        /// How many of the newest events.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Run one sync of a migration: each table by its mode (full,
    /// incremental), reporting new, updated and deleted rows.
    Sync {
        /// The migration file.
        file: PathBuf,
        /// Print the outcome as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Keep continuous and scheduled migrations in sync until SIGTERM or
    /// Ctrl-C (the sync in progress finishes first).
    Serve(sync::ServeArgs),
    /// Show each migration's last sync, what it changed and the next one;
    /// with migration files, also what their CDC slots keep on the source.
    Status {
        /// Migration files whose CDC replication slots to show (retained
        /// WAL, lag, wal_status), warning past `[sync] max_lag`.
        files: Vec<PathBuf>,
        /// Only this migration (its name).
        #[arg(long)]
        migration: Option<String>,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stop syncing a migration until `resume` (changes wait at the source).
    Pause {
        /// The migration file.
        file: PathBuf,
    },
    /// Sync a paused migration again.
    Resume {
        /// The migration file.
        file: PathBuf,
    },
    /// Remove a migration: drop its CDC replication slots, its checkpoints
    /// in the destination and its records in the state store (the
    /// destination's tables, restore points and audit trail stay). Its next
    /// sync or run copies everything again.
    Remove {
        /// The migration file.
        file: PathBuf,
        /// Print what was dropped as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List, export or retry rows kept for review under the `flag` policy.
    Flagged {
        #[command(subcommand)]
        command: flagged::FlaggedCommand,
    },
    /// List the restore points runs made of their destination tables.
    RestorePoints {
        #[command(subcommand)]
        command: restore::RestorePointsCommand,
    },
    /// Put the destination tables back as a restore point holds them (the
    /// newest by default), then verify each by checksum.
    Rollback {
        /// The migration file.
        file: PathBuf,
        /// The restore point's name (see `restore-points list`).
        #[arg(long)]
        to: Option<String>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> ExitCode {
    one_malloc_arena();
    let cli = Cli::parse();
    init_tracing(&cli.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("starting the async runtime");
    let code = match runtime.block_on(dispatch(cli)) {
        Ok(code) => code,
        Err(err) => {
            note!("error: {}", told(&err));
            ExitCode::from(2)
        }
    };
    // Work left on blocking threads belongs to what the command abandoned
    // (a sync cut off by a stop, say): it must not keep the process alive.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// `err` and its causes, joined by `: ` as `{:#}` does, down to the first
/// cause that the error holding it has already told in its own message
/// (a state store's SQLite or I/O error, a connector's redacted cause):
/// printing it again would only repeat that text.
fn told(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        if cause.is::<crate::state::StateCause>() || cause.is::<crate::drivers::Cause>() {
            break;
        }
        text.push_str(": ");
        text.push_str(&cause.to_string());
    }
    text
}

/// Makes glibc's malloc serve every thread from one arena; must run before
/// any thread starts. A batch's rows are allocated on the tokio worker that
/// decodes them and freed on whichever one writes them, and glibc returns a
/// freed chunk to the arena it came from: with an arena per worker, each
/// grew towards the whole working set of batches in flight, and the sum
/// kept rising the longer a table ran (peak RSS up 10–50 MiB from 1M to 10M
/// rows while the live heap stayed flat at ~50 MiB). With one arena peak
/// RSS is the live heap, flat with rows; measured no slower on 2 cores
/// (small allocations come from each thread's tcache without the lock).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn one_malloc_arena() {
    // SAFETY: mallopt only sets a tuning parameter of the allocator, and it
    // runs first thing in `main`, before other threads exist.
    #[allow(unsafe_code)]
    let _ = unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
}

/// Other allocators keep no per-thread arenas to limit.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn one_malloc_arena() {}

/// Logs on stderr at `--log LEVEL`. Write errors are dropped, never
/// reported (reporting them is another write to the closed stderr).
fn init_tracing(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(log_directives(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_directives("warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .log_internal_errors(false)
        .init();
}

/// The filter for `--log LEVEL`. Below `debug` only credvault's own events
/// pass: dependencies' warnings (sqlx's `slow statement` with the
/// statement's text, its failed pings on release) are noise to a person
/// at a terminal, and a statement's text can hold data. `debug`, `trace`
/// and full directives (`info,sqlx=debug`) are taken as written.
fn log_directives(level: &str) -> String {
    let plain = level.trim().to_ascii_lowercase();
    match plain.as_str() {
        "off" | "error" | "warn" | "info" => format!("credvault={plain}"),
        _ => level.to_string(),
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Run {
            file,
            json,
            restart,
            dry_run,
            force,
        } => {
            let (mut m, runtime, state) = open(&file, cli.env.as_deref(), &cli.state).await?;
            if dry_run {
                m = m.dry_run();
            }
            let hold = state.hold(&m.name, "credvault run")?;
            let Some(plan) = checked_before_run(&m, &runtime, &state, restart, force, json).await?
            else {
                return Ok(ExitCode::FAILURE);
            };
            let mut observer = progress::Reporter::new(json);
            let options = jobs::RunOptions { restart };
            let ran = {
                let run = app::run(&m, &runtime, &state, &hold, options, plan, &mut observer);
                tokio::select! {
                    ran = run => Ok(ran),
                    signal = stop_signal() => Err(signal),
                }
            };
            observer.finish();
            let ran = match ran {
                Ok(ran) => ran,
                Err(signal) => return interrupted(&file, &m, &state, &observer, signal).await,
            };
            let result = match ran {
                Ran::Consolidated(result) => {
                    return show::consolidation(&m, result, &cli.state, json);
                }
                Ran::Single(result) => result,
            };
            match result {
                Ok(summary) => {
                    if !json {
                        show::summary(&m, &summary, &cli.state);
                    }
                    let valid = summary.validation.as_ref().is_none_or(|r| r.passed);
                    Ok(if valid {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    })
                }
                Err(err) => {
                    note!("error: {err}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Validate {
            file,
            sample,
            json,
            html,
        } => {
            let (m, runtime, state) = open(&file, cli.env.as_deref(), &cli.state).await?;
            let report = validate(&m, &runtime, &state, sample).await?;
            if let Some(path) = html {
                write_private(&path, crate::jobs::validate::html(&report).as_bytes())?;
            }
            match json {
                true => out!("{}", serde_json::to_string_pretty(&report)?),
                false => show::validation(&report),
            }
            Ok(if report.passed {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Check { file, json } => {
            let (m, runtime, state) = open(&file, cli.env.as_deref(), &cli.state).await?;
            let results = app::check(&m, &runtime, &state).await?;
            show::checks(&results, json);
            Ok(if results.iter().all(|r| r.passed) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Discover { file, json } => {
            let m = load(&file, cli.env.as_deref())?;
            runtime(&cli.state)?;
            let parts = match m.is_multi_source() {
                true => m.parts().into_iter().map(|p| p.migration).collect(),
                false => vec![m],
            };
            for part in &parts {
                let source = crate::drivers::open_source(part).await?;
                let tables = source.discover().await?;
                show::discovered(part, &tables, json);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Preview { file, rows, json } => {
            let m = load(&file, cli.env.as_deref())?;
            let runtime = runtime(&cli.state)?;
            let previews = match m.is_multi_source() {
                true => crate::jobs::consolidate::preview(&m, &runtime, rows).await?,
                false => jobs::preview(&m, &runtime, rows).await?,
            };
            show::previews(&previews, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Plugin { command } => {
            plugin::run(command, &runtime(&cli.state)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Log {
            migration,
            limit,
            json,
        } => {
            let state = StateStore::open(&cli.state).await?;
            show::events(&state.events(migration.as_deref(), limit).await?, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync { file, json } => {
            let (m, runtime, state) = open(&file, cli.env.as_deref(), &cli.state).await?;
            sync::sync_once(&m, &runtime, &state, json).await
        }
        Command::Serve(args) => {
            let catalog =
                Catalog::load(args.files(), cli.env.as_deref()).map_err(anyhow::Error::msg)?;
            let state = StateStore::open(&cli.state).await?;
            let dashboard = args.dashboard().await?;
            let options = args.options();
            sync::serve_until_stopped(catalog, &runtime(&cli.state)?, &state, dashboard, options)
                .await
        }
        Command::Status {
            files,
            migration,
            json,
        } => {
            let state = StateStore::open(&cli.state).await?;
            if let Some(name) = migration.as_deref().filter(|_| !json)
                && let Some(run) = state.runs(name, 1).await?.first()
            {
                show::last_run(name, run);
            }
            let records = state.last_syncs(migration.as_deref()).await?;
            let paused = state.paused_all().await?;
            let mut slots = Vec::new();
            for file in &files {
                let m = load(file, cli.env.as_deref())?;
                if migration.as_ref().is_none_or(|n| *n == m.name) {
                    slots.push((m.name.clone(), crate::jobs::sync::slot_reports(&m).await));
                }
            }
            sync::status(&records, &paused, &slots, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Pause { file } => {
            let m = load(&file, cli.env.as_deref())?;
            let state = StateStore::open(&cli.state).await?;
            match app::pause(&state, &m.name).await? {
                true => {
                    out!(
                        "`{}` is paused: syncs wait until `credvault resume`",
                        m.name
                    );
                }
                false => out!("`{}` was already paused", m.name),
            }
            sync::paused_slots(&crate::jobs::sync::slot_reports(&m).await);
            Ok(ExitCode::SUCCESS)
        }
        Command::Remove { file, json } => {
            let m = load(&file, cli.env.as_deref())?;
            let state = StateStore::open(&cli.state).await?;
            let hold = state.hold(&m.name, "credvault remove")?;
            let removed = app::remove(&m, &state, &hold).await?;
            sync::removed(&m, &removed, json);
            Ok(ExitCode::SUCCESS)
        }
        Command::Resume { file } => {
            let m = load(&file, cli.env.as_deref())?;
            let state = StateStore::open(&cli.state).await?;
            match app::resume(&state, &m.name).await? {
                true => {
                    out!(
                        "`{}` resumed: the next sync picks up every change made meanwhile",
                        m.name
                    );
                }
                false => out!("`{}` was not paused", m.name),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Flagged { command } => {
            flagged::run(command, &cli.state, cli.env.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RestorePoints { command } => restore::points(command, cli.env.as_deref()).await,
        Command::Rollback { file, to, json } => {
            restore::rollback(&file, to.as_deref(), json, cli.env.as_deref(), &cli.state).await
        }
    }
}

/// Waits for Ctrl-C (SIGINT) or SIGTERM; returns the signal's name and the
/// exit code that tells it (128 + its number).
async fn stop_signal() -> (&'static str, u8) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => ("SIGINT", 130),
        _ = term.recv() => ("SIGTERM", 143),
    }
}

/// Ends a run stopped by a signal: its batches in flight were abandoned
/// (so rolled back), it is recorded as interrupted, and the person learns
/// what each table committed and how to resume. Exits at once: a plugin
/// call still running on a worker thread is not waited for.
async fn interrupted(
    file: &Path,
    m: &Migration,
    state: &StateStore,
    observer: &progress::Reporter,
    (signal, code): (&'static str, u8),
) -> anyhow::Result<ExitCode> {
    let committed = observer.committed();
    let next = match observer.run() {
        Some((run_id, number, false)) => {
            let counts = observer.counts();
            jobs::record_interrupted(state, &m.name, run_id, signal, counts, &committed).await?;
            note!(
                "run {number} of `{}` interrupted by {signal}: batches in flight were rolled back, committed rows stay",
                m.name
            );
            "resumes after the committed rows"
        }
        Some((_, number, true)) => {
            note!(
                "run {number} of `{}` copied every table; its validation was interrupted by {signal}",
                m.name
            );
            "completes its validation"
        }
        None => {
            note!(
                "`{}` interrupted by {signal} before its run started",
                m.name
            );
            "starts it"
        }
    };
    for line in &committed {
        note!("  {line}");
    }
    note!("`credvault run {}` {next}", file.display());
    std::process::exit(code.into());
}

/// Runs the checks before a run and records them; `None` if a check failed
/// and the run must not start (`--force` starts it anyway, and the audit
/// event says so), else the plan they made, if every table planned.
async fn checked_before_run(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    restart: bool,
    force: bool,
    json: bool,
) -> anyhow::Result<Option<Option<jobs::Planned>>> {
    let checked = app::check_before_run(m, runtime, state, restart, force).await?;
    let failed = checked.results.iter().filter(|r| !r.passed).count();
    show::failed_checks(&checked.results, force, json);
    Ok((failed == 0 || force).then_some(checked.plan))
}

/// Loads a migration file, in the environment `env` if one is named.
fn load(file: &Path, env: Option<&str>) -> anyhow::Result<Migration> {
    Migration::load_in(file, env).map_err(anyhow::Error::msg)
}

/// Validates a migration against the clock of its last run, and keeps
/// the report.
async fn validate(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    sample: Option<u64>,
) -> anyhow::Result<crate::jobs::validate::Report> {
    let last = state.last_run(&m.name).await?;
    if last.is_none() {
        note!(
            "note: `{}` has no run in this state store; transforms that use the run's time see the current time",
            m.name
        );
    }
    let options = crate::jobs::validate::Options {
        sample: sample.unwrap_or(m.settings.validate_sample),
        run_started_at: last
            .as_ref()
            .and_then(|r| r.clock)
            .unwrap_or_else(|| chrono::Utc::now().timestamp_micros()),
        refused: state.refused(&m.name).await?,
        dangling: state.refused_for_reference(&m.name).await?,
        recorded: state.table_counts(&m.name).await?,
    };
    let report = match m.is_multi_source() {
        true => crate::jobs::consolidate::validate(m, runtime, state, options).await?,
        false => crate::jobs::validate::validate(m, runtime, options).await?,
    };
    jobs::record_validation(state, &report, last.map(|r| r.id)).await?;
    Ok(report)
}

async fn open(
    file: &Path,
    env: Option<&str>,
    state: &Path,
) -> anyhow::Result<(Migration, Runtime, StateStore)> {
    let m = load(file, env)?;
    let runtime = runtime(state)?;
    let state = StateStore::open(state).await?;
    Ok((m, runtime, state))
}

/// Writes a report owner-only: it holds the destination's values.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    crate::state::private::create_file(path)
        .and_then(|mut file| file.write_all(bytes))
        .with_context(|| format!("writing {}", path.display()))
}

/// The wasm runtime, caching compiled plugins beside the state store.
fn runtime(state: &Path) -> anyhow::Result<Runtime> {
    let cache = state.parent().unwrap_or(Path::new(".")).join("cache");
    crate::state::private::own_dir(&cache)
        .with_context(|| format!("creating the plugin cache {}", cache.display()))?;
    let plugins = state.parent().unwrap_or(Path::new(".")).join("plugins");
    let runtime = Runtime::new(Some(&cache))?.with_plugin_dir(plugins);
    crate::drivers::use_runtime(&runtime);
    Ok(runtime)
}

#[cfg(test)]
mod tests {
    use super::{log_directives, told};
    use crate::drivers::{Cause, ConnectorError};

    #[test]
    fn a_told_cause_is_not_printed_twice() {
        let io = std::io::Error::other("disk on fire");
        let err = ConnectorError::new("destination csv out/", "disk on fire").because(&io);
        assert_eq!(
            told(&anyhow::Error::from(err)),
            "destination csv out/: disk on fire"
        );
        let err = ConnectorError::new("d", "m").caused_by(Cause::of(&io, None));
        let err = anyhow::Error::from(err).context("writing x");
        assert_eq!(told(&err), "writing x: d: m");
        let err = anyhow::Error::from(io).context("creating y");
        assert_eq!(
            told(&err),
            format!("{err:#}"),
            "other chains print as before"
        );
    }

    #[tokio::test]
    async fn a_state_store_error_prints_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        // A store whose folder is a file cannot be created.
        let Err(err) = crate::state::StateStore::open(&file.join("state.db")).await else {
            panic!("a store under a file opened");
        };
        assert!(
            std::error::Error::source(&err).is_some(),
            "the I/O error is kept"
        );
        let text = err.to_string();
        assert!(text.contains("cannot create"), "{text}");
        assert_eq!(told(&anyhow::Error::from(err)), text);
    }

    #[test]
    fn dependencies_log_only_from_debug_on() {
        assert_eq!(log_directives("warn"), "credvault=warn");
        assert_eq!(log_directives("INFO"), "credvault=info");
        assert_eq!(log_directives("debug"), "debug");
        assert_eq!(log_directives("info,sqlx=debug"), "info,sqlx=debug");
    }
}
