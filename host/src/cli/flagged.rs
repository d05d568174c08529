//! `credvault flagged`: rows kept for review under the `flag` policy.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};

use crate::app::{Export, ExportFormat};
use crate::config::DRY_RUN_SUFFIX;
use crate::jobs::{RetryCounts, RetryRequest, retry_flagged};
use crate::state::{FlaggedFilter, StateStore};

#[derive(Subcommand)]
pub enum FlaggedCommand {
    /// List flagged rows with their errors.
    List {
        #[command(flatten)]
        filter: Filter,
        /// Print as JSON lines.
        #[arg(long)]
        json: bool,
    },
    /// Export flagged rows (with their source values) for fixing.
    Export {
        #[command(flatten)]
        filter: Filter,
        /// The file format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write here instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Send flagged rows through the migration's current mapping and
    /// transforms into the destination again: after fixing the migration
    /// file or the destination, or with rows fixed in an export.
    Retry {
        /// The migration file.
        file: PathBuf,
        /// Only rows of this destination table.
        #[arg(long)]
        table: Option<String>,
        /// Only this flagged row (repeat for more).
        #[arg(long = "id")]
        ids: Vec<i64>,
        /// Retry the rows of this JSON-lines export, with the values fixed
        /// inside each line's `row` (lines left out are not retried).
        #[arg(long)]
        fixed: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
pub struct Filter {
    /// Only this migration.
    #[arg(long)]
    migration: Option<String>,
    /// Only this run of the migration (`--migration` names it): 1 for
    /// its first.
    #[arg(long, requires = "migration")]
    run: Option<i64>,
    /// Only this destination table.
    #[arg(long)]
    table: Option<String>,
    /// Also rows already closed (retried, or superseded by a later run),
    /// with how and when.
    #[arg(long)]
    all: bool,
    /// The rows dry runs flagged (`run --dry-run`), kept apart from the
    /// real runs' rows.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// CSV with the error columns first, then the row's own columns.
    Csv,
}

impl From<Filter> for FlaggedFilter {
    fn from(f: Filter) -> Self {
        let dry_runs = f.dry_run
            || f.migration
                .as_deref()
                .is_some_and(|m| m.contains(DRY_RUN_SUFFIX));
        FlaggedFilter {
            migration: f.migration,
            dry_runs,
            run: f.run,
            table: f.table,
            closed_too: f.all,
            ..FlaggedFilter::default()
        }
    }
}

pub async fn run(command: FlaggedCommand, state: &Path, env: Option<&str>) -> anyhow::Result<()> {
    match command {
        FlaggedCommand::Retry {
            file,
            table,
            ids,
            fixed,
            json,
        } => {
            let fixed = match fixed {
                Some(path) => read_fixed(&path)?,
                None => HashMap::new(),
            };
            let request = RetryRequest { table, ids, fixed };
            retry(&file, env, state, &request, json).await
        }
        FlaggedCommand::List { filter, json } => {
            let state = StateStore::open(state).await?;
            let rows = state.flagged(&filter.into()).await?;
            if json {
                for row in &rows {
                    out!("{}", serde_json::to_string(row)?);
                }
                return Ok(());
            }
            for r in &rows {
                let key = r
                    .key
                    .as_deref()
                    .map(|k| format!(" ({k})"))
                    .unwrap_or_default();
                let column = r
                    .column
                    .as_deref()
                    .map(|c| format!(", column `{c}`"))
                    .unwrap_or_default();
                let retried = match r.retries {
                    0 => String::new(),
                    n => format!(" (retried {n}×)"),
                };
                let closed = match (&r.resolution, &r.resolved_at) {
                    (Some(how), Some(at)) => format!(" [closed {at}: {}]", closed_as(how)),
                    _ => String::new(),
                };
                out!(
                    "#{} run {} {}.{} row {}{key}, {}{column}: {}{retried}{closed}",
                    r.id,
                    r.run,
                    r.migration,
                    r.table,
                    r.position,
                    r.stage,
                    r.error
                );
            }
            out!("{} flagged row(s)", rows.len());
            Ok(())
        }
        FlaggedCommand::Export {
            filter,
            format,
            output,
        } => {
            let state = StateStore::open(state).await?;
            let out: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    crate::state::private::create_file(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout()),
            };
            let format = match format {
                Format::Jsonl => ExportFormat::Jsonl,
                Format::Csv => ExportFormat::Csv,
            };
            let export = Export::new(&state, &filter.into(), format);
            let rows = export.write_to(std::io::BufWriter::new(out)).await?;
            if let Some(path) = output {
                note!("exported {rows} flagged row(s) to {}", path.display());
            }
            Ok(())
        }
    }
}

fn closed_as(resolution: &str) -> &str {
    match resolution {
        "written" => "retried and written",
        "present" => "the destination already had its key",
        "dropped" => "a transform now drops it",
        "superseded" => "superseded by a later run or sync",
        "reread" => "its batch never committed; the resumed run read it again",
        other => other,
    }
}

fn read_fixed(path: &Path) -> anyhow::Result<HashMap<i64, serde_json::Value>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    crate::app::read_fixed(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

async fn retry(
    file: &Path,
    env: Option<&str>,
    state: &Path,
    request: &RetryRequest,
    json: bool,
) -> anyhow::Result<()> {
    let (m, runtime, state) = super::open(file, env, state).await?;
    let hold = state.hold(&m.name, "credvault flagged retry")?;
    let summary = retry_flagged(&m, &runtime, &state, &hold, request).await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    for t in &summary.tables {
        out!("{}: {}", t.table, retried(&t.counts));
    }
    match summary.tables.len() {
        0 => out!("no open flagged rows to retry"),
        1 => {}
        _ => out!("total: {}", retried(&summary.total)),
    }
    if summary.total.failed > 0 {
        out!(
            "rows that failed again stay flagged with their new error: credvault flagged list --migration {}",
            m.name
        );
    }
    if summary.stale_fixes > 0 {
        out!(
            "{} line(s) of the fixed file name rows no longer open (retried since the export, or flagged again by a later run): left alone",
            summary.stale_fixes
        );
    }
    if summary.not_retryable > 0 {
        out!(
            "{} other open flagged row(s) (from syncs, or from runs before the last fresh run) were left alone",
            summary.not_retryable
        );
    }
    Ok(())
}

fn retried(c: &RetryCounts) -> String {
    let rebuilt = match c.superseded {
        0 => String::new(),
        n => format!(", {n} closed unwritten (a full sync rebuilt the keyless table since)"),
    };
    format!(
        "{} retried: {} written, {} already at the destination by key, {} dropped by a transform, {} failed again{rebuilt}",
        c.retried, c.written, c.present, c.dropped, c.failed
    )
}
