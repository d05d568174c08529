//! `credvault flagged`: rows kept for review under the `flag` policy.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Subcommand, ValueEnum};

use crate::actions::{ExportFormat, export_flagged};
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
}

#[derive(clap::Args)]
pub struct Filter {
    /// Only this migration.
    #[arg(long)]
    migration: Option<String>,
    /// Only this run.
    #[arg(long)]
    run: Option<i64>,
    /// Only this destination table.
    #[arg(long)]
    table: Option<String>,
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
        FlaggedFilter {
            migration: f.migration,
            run_id: f.run,
            table: f.table,
        }
    }
}

pub async fn run(command: FlaggedCommand, state: &StateStore) -> anyhow::Result<()> {
    match command {
        FlaggedCommand::List { filter, json } => {
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
                out!(
                    "#{} run {} {}.{} row {}{key}, {}{column}: {}",
                    r.id,
                    r.run_id,
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
            let rows = state.flagged(&filter.into()).await?;
            let out: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .with_context(|| format!("creating {}", path.display()))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let format = match format {
                Format::Jsonl => ExportFormat::Jsonl,
                Format::Csv => ExportFormat::Csv,
            };
            export_flagged(&rows, format, out)?;
            if let Some(path) = output {
                eprintln!(
                    "exported {} flagged row(s) to {}",
                    rows.len(),
                    path.display()
                );
            }
            Ok(())
        }
    }
}
