//! `credvault restore-points list` and `credvault rollback`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use crate::jobs::restore::{Action, Listing, Point, Rollback, TableCheck};
use crate::state::StateStore;

#[derive(Subcommand)]
pub enum RestorePointsCommand {
    /// List a migration's restore points: name, created, expires, tables,
    /// rows.
    List {
        /// The migration file (its destination holds the points).
        file: PathBuf,
        /// Print as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub async fn points(command: RestorePointsCommand, env: Option<&str>) -> anyhow::Result<ExitCode> {
    let RestorePointsCommand::List { file, json } = command;
    let m = super::load(&file, env)?;
    let listing = crate::jobs::restore::list(&m).await?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&listing).expect("serializable")
        );
    } else {
        show_listing(&m.name, &listing);
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn rollback(
    file: &Path,
    to: Option<&str>,
    json: bool,
    env: Option<&str>,
    state: &Path,
) -> anyhow::Result<ExitCode> {
    let m = super::load(file, env)?;
    let state = StateStore::open(state).await?;
    let hold = state.hold(&m.name, "credvault rollback")?;
    let report = crate::jobs::restore::rollback(&m, to, &state, &hold).await?;
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializable")
        );
    } else {
        show_rollback(&m.name, &report);
    }
    Ok(match report.passed() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// `2025-01-31T12:00:00.000000Z` as `2025-01-31 12:00:00 UTC`.
pub(super) fn shown(stamp: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stamp)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| stamp.to_string())
}

fn show_listing(migration: &str, listing: &Listing) {
    if listing.points.is_empty() {
        out!(
            "no restore points of `{migration}` in {}",
            listing.destination
        );
        return;
    }
    out!(
        "restore points of `{migration}` in {}:",
        listing.destination
    );
    for p in &listing.points {
        show_point(p);
    }
}

fn show_point(p: &Point) {
    let expires = match p.expired {
        true => format!("EXPIRED {} (the next run removes it)", shown(&p.expires_at)),
        false => format!("expires {}", shown(&p.expires_at)),
    };
    out!(
        "{}  created {}  {expires}  {} table(s)  {} rows",
        p.name,
        shown(&p.created_at),
        p.tables.len(),
        p.rows()
    );
    for t in &p.tables {
        match t.existed {
            true => out!("  {}: {} rows", t.table, t.rows),
            false => out!("  {}: did not exist (a rollback drops it)", t.table),
        }
    }
}

fn show_rollback(migration: &str, report: &Rollback) {
    out!(
        "rolled `{migration}` back to restore point {} in {}",
        report.point,
        report.destination
    );
    for t in &report.tables {
        out!("{}", check_line(t));
    }
    let failed = report.tables.iter().filter(|t| !t.passed).count();
    match failed {
        0 => out!(
            "all {} tables verified by checksum; checkpoints of `{migration}` cleared, so its next run starts afresh",
            report.tables.len()
        ),
        n => out!(
            "{n} of {} tables do not match the restore point",
            report.tables.len()
        ),
    }
}

fn check_line(t: &TableCheck) -> String {
    let mark = if t.passed { "pass" } else { "FAIL" };
    let action = match t.action {
        Action::Replaced => "rows replaced",
        Action::Recreated => "recreated",
        Action::Dropped => "dropped (it did not exist at the point)",
    };
    let detail = match (&t.problem, &t.checksum) {
        (Some(problem), _) => format!(": {problem}"),
        (None, Some(sum)) => format!(", {} rows, checksum {sum} matches", t.rows),
        (None, None) => String::new(),
    };
    format!("[{mark}] {}: {action}{detail}", t.table)
}
