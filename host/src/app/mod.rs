//! What a person asks of a migration (check before a run, run, pause,
//! resume, export flagged rows and read them back fixed), one function each: the CLI and the web
//! dashboard both call these, so neither has an implementation of its own.

mod remove;

use std::collections::HashMap;
use std::io::Write;

pub use remove::{RemoveError, Removed, remove};

use crate::config::Migration;
use crate::jobs::{self, CheckResult, Observer, Planned, RunError, RunOptions, RunSummary};
use crate::runtime::Runtime;
use crate::state::{FlaggedFilter, FlaggedRow, Hold, StateError, StateStore};

/// How a run ended: a single-source run or a consolidation.
pub enum Ran {
    /// A migration with one source.
    Single(Result<RunSummary, RunError>),
    /// A migration with several sources.
    Consolidated(Result<crate::jobs::consolidate::Summary, RunError>),
}

impl Ran {
    /// Whether the run finished and its validation passed.
    pub fn passed(&self) -> bool {
        match self {
            Ran::Single(Ok(s)) => s.validation.as_ref().is_none_or(|r| r.passed),
            Ran::Consolidated(Ok(s)) => s.passed(),
            Ran::Single(Err(_)) | Ran::Consolidated(Err(_)) => false,
        }
    }

    /// Why the run failed, if it did.
    pub fn error(&self) -> Option<&RunError> {
        match self {
            Ran::Single(Err(e)) | Ran::Consolidated(Err(e)) => Some(e),
            _ => None,
        }
    }
}

/// The pre-run checks of a migration, part by part when it has several
/// sources, and the plan they made when every table planned (a single
/// source only: a consolidation lays out its merges when it runs).
async fn checks(
    m: &Migration,
    runtime: &Runtime,
    resuming: bool,
) -> (Vec<CheckResult>, Option<Planned>) {
    match m.is_multi_source() {
        true => {
            let results = crate::jobs::consolidate::check(m, runtime, resuming).await;
            (results, None)
        }
        false => jobs::check_and_plan(m, runtime, resuming).await,
    }
}

/// Runs a migration's checks (as `credvault check` does) and records them
/// in the audit log.
pub async fn check(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
) -> Result<Vec<CheckResult>, StateError> {
    let resuming = resumable(state, m).await?;
    let (results, _) = record_checks(m, runtime, state, resuming, None).await?;
    Ok(results)
}

/// Runs the checks before a run and records them in the audit log (with
/// whether `force` starts the run despite a failure). The run may start
/// when every check passed or `force` is set.
pub async fn check_before_run(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    restart: bool,
    force: bool,
) -> Result<Checked, StateError> {
    // A run that only completes the last run's validation writes nothing,
    // so there is nothing to check (its tables exist: they are the copy).
    if !restart && awaits_validation(state, m).await? {
        return Ok(Checked::default());
    }
    let resuming = !restart && resumable(state, m).await?;
    let (results, plan) = record_checks(m, runtime, state, resuming, Some(force)).await?;
    Ok(Checked { results, plan })
}

/// The checks before a run, and the plan they made for it.
#[derive(Default)]
pub struct Checked {
    /// Every check's outcome.
    pub results: Vec<CheckResult>,
    /// The plan, when every table planned: the run uses it.
    pub plan: Option<Planned>,
}

/// Whether the next run of `m` only completes the validation of its last
/// run, which copied everything but was cut off while validating.
pub async fn awaits_validation(state: &StateStore, m: &Migration) -> Result<bool, StateError> {
    let last = state.last_run(&m.name).await?;
    Ok(m.settings.validate && !m.is_multi_source() && last.is_some_and(|r| r.awaits_validation()))
}

/// The checks and their `checked` audit event: how many ran, which failed,
/// and before a run whether it was forced.
async fn record_checks(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    resuming: bool,
    before_run: Option<bool>,
) -> Result<(Vec<CheckResult>, Option<Planned>), StateError> {
    let (results, plan) = checks(m, runtime, resuming).await;
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| !r.passed)
        .map(|r| r.name.as_str())
        .collect();
    let mut detail = serde_json::json!({ "checks": results.len(), "failed": failed });
    if let Some(force) = before_run {
        detail["before_run"] = true.into();
        detail["forced"] = (force && !failed.is_empty()).into();
    }
    state.event(&m.name, None, "checked", &detail).await?;
    Ok((results, plan))
}

/// Whether the next run of `m` resumes an interrupted one.
pub async fn resumable(state: &StateStore, m: &Migration) -> Result<bool, StateError> {
    Ok(state
        .last_run(&m.name)
        .await?
        .is_some_and(|r| r.resumable()))
}

/// Runs a migration, consolidating when it has several sources. Once a
/// single-source run is done, the flagged rows of the runs before its
/// fresh start are closed as superseded (it flagged again those that
/// still fail). `hold` keeps other writers of `m` out meanwhile.
pub async fn run(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    hold: &Hold,
    options: RunOptions,
    plan: Option<Planned>,
    observer: &mut dyn Observer,
) -> Ran {
    debug_assert_eq!(hold.migration(), m.name);
    use crate::jobs::consolidate::Purpose;
    match m.is_multi_source() {
        true => Ran::Consolidated(
            crate::jobs::consolidate::run(m, runtime, state, options, Purpose::Run, observer).await,
        ),
        false => {
            let ran = jobs::run_migration(m, runtime, state, options, plan, observer).await;
            // Only once it is done: a run cut off has not flagged its rows yet.
            if ran.is_ok()
                && let Err(e) = state.supersede_flagged(&m.name).await
            {
                tracing::warn!("older flagged rows stay listed: {e}");
            }
            Ran::Single(ran)
        }
    }
}

/// Pauses a migration's syncs and records it; false if it already was.
pub async fn pause(state: &StateStore, migration: &str) -> Result<bool, StateError> {
    let paused = state.pause(migration).await?;
    if paused {
        let detail = serde_json::json!({});
        state.event(migration, None, "paused", &detail).await?;
    }
    Ok(paused)
}

/// Resumes a paused migration and records it; false if it was not paused.
pub async fn resume(state: &StateStore, migration: &str) -> Result<bool, StateError> {
    let resumed = state.resume(migration).await?;
    if resumed {
        let detail = serde_json::json!({});
        state.event(migration, None, "resumed", &detail).await?;
    }
    Ok(resumed)
}

/// The file formats flagged rows are exported in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with the error columns first, then the row's own columns.
    Csv,
}

/// Writing an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The output could not be written.
    #[error("writing the export: {0}")]
    Io(#[from] std::io::Error),
    /// The CSV writer failed.
    #[error("writing the CSV export: {0}")]
    Csv(#[from] csv::Error),
    /// The flagged rows could not be read.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Flagged rows read from the state store at a time by an export.
const EXPORT_PAGE: u32 = 2_000;

/// An export of flagged rows (with their source values) for fixing, made
/// a page of rows at a time so that its memory does not grow with them.
pub struct Export {
    state: StateStore,
    filter: FlaggedFilter,
    format: ExportFormat,
    /// A CSV export's row columns, once known (a first pass reads them),
    /// and the last row that pass saw: rows flagged since may have other
    /// columns, so they are left for the next export.
    columns: Option<(Vec<String>, i64)>,
    /// How many rows were exported.
    pub rows: u64,
}

impl Export {
    /// An export of the rows `filter` selects.
    pub fn new(state: &StateStore, filter: &FlaggedFilter, format: ExportFormat) -> Self {
        let filter = FlaggedFilter {
            limit: Some(EXPORT_PAGE),
            after: None,
            ..filter.clone()
        };
        Self {
            state: state.clone(),
            filter,
            format,
            columns: None,
            rows: 0,
        }
    }

    /// The next piece of the file, or `None` at its end.
    pub async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, ExportError> {
        let mut chunk = Vec::new();
        if self.format == ExportFormat::Csv && self.columns.is_none() {
            let columns = self.csv_columns().await?;
            write_csv_header(&columns.0, &mut chunk)?;
            self.columns = Some(columns);
        }
        let mut rows = self.state.flagged(&self.filter).await?;
        if let Some((_, until)) = self.columns {
            rows.retain(|r| r.id <= until);
        }
        let Some(last) = rows.last() else {
            return Ok((!chunk.is_empty()).then_some(chunk));
        };
        self.filter.after = Some(last.id);
        self.rows += rows.len() as u64;
        match &self.columns {
            Some((columns, _)) => write_csv_rows(&rows, columns, &mut chunk)?,
            None => write_jsonl(&rows, &mut chunk),
        }
        Ok(Some(chunk))
    }

    /// Writes the whole export to `out`; how many rows it holds.
    pub async fn write_to(mut self, mut out: impl Write) -> Result<u64, ExportError> {
        while let Some(chunk) = self.next_chunk().await? {
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(self.rows)
    }

    /// Every column of the exported rows, in the order they first come,
    /// and the last row's id.
    async fn csv_columns(&self) -> Result<(Vec<String>, i64), ExportError> {
        let mut filter = self.filter.clone();
        let mut columns: Vec<String> = Vec::new();
        loop {
            let rows = self.state.flagged(&filter).await?;
            let Some(last) = rows.last() else {
                return Ok((columns, filter.after.unwrap_or(0)));
            };
            filter.after = Some(last.id);
            for key in rows
                .iter()
                .filter_map(|r| r.row.as_object())
                .flat_map(|o| o.keys())
            {
                if !columns.contains(key) {
                    columns.push(key.clone());
                }
            }
        }
    }
}

fn write_jsonl(rows: &[FlaggedRow], out: &mut Vec<u8>) {
    for row in rows {
        serde_json::to_writer(&mut *out, row).expect("flagged rows serialize");
        out.push(b'\n');
    }
}

/// Why a file of fixed rows could not be read; `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum FixedError {
    /// A line that is not JSON.
    #[error(
        "line {line}: {source} (fixed rows come as JSON lines, as `credvault flagged export --format jsonl` writes them)"
    )]
    NotJson {
        /// The line.
        line: usize,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A line without the flagged row's `id`.
    #[error("line {0}: no flagged-row `id`; keep the `id` of each exported line")]
    NoId(usize),
    /// A line without its `row` object.
    #[error("line {0}: no `row` object; fix the values inside the exported `row`")]
    NoRow(usize),
    /// A second line for one flagged row.
    #[error("line {line}: flagged row #{id} comes twice")]
    Twice {
        /// The second line.
        line: usize,
        /// The flagged row's id.
        id: i64,
    },
    /// No lines at all.
    #[error("no fixed rows in it: keep the exported lines of the rows you fixed")]
    Empty,
}

/// Reads fixed rows back from a JSON-lines export: each line's `row` by
/// its flagged-row `id`. Other fields (the error, the key) are ignored.
pub fn read_fixed(text: &str) -> Result<HashMap<i64, serde_json::Value>, FixedError> {
    let mut fixed = HashMap::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let line_no = n + 1;
        let entry: serde_json::Value =
            serde_json::from_str(line).map_err(|source| FixedError::NotJson {
                line: line_no,
                source,
            })?;
        let id = entry["id"].as_i64().ok_or(FixedError::NoId(line_no))?;
        let row = entry
            .get("row")
            .filter(|r| r.is_object())
            .ok_or(FixedError::NoRow(line_no))?;
        if fixed.insert(id, row.clone()).is_some() {
            return Err(FixedError::Twice { line: line_no, id });
        }
    }
    if fixed.is_empty() {
        return Err(FixedError::Empty);
    }
    Ok(fixed)
}

/// The CSV export's fixed columns, before the row's own.
const CSV_FIXED: [&str; 10] = [
    "id",
    "run",
    "migration",
    "table",
    "position",
    "key",
    "stage",
    "column",
    "value",
    "error",
];

fn write_csv_header(columns: &[String], out: &mut Vec<u8>) -> Result<(), ExportError> {
    let mut w = csv::Writer::from_writer(out);
    let fixed = CSV_FIXED.iter().map(|s| s.to_string());
    w.write_record(fixed.chain(columns.iter().cloned()))?;
    w.flush()?;
    Ok(())
}

fn write_csv_rows(
    rows: &[FlaggedRow],
    columns: &[String],
    out: &mut Vec<u8>,
) -> Result<(), ExportError> {
    let mut w = csv::Writer::from_writer(out);
    for r in rows {
        let mut record = vec![
            r.id.to_string(),
            r.run.to_string(),
            r.migration.clone(),
            r.table.clone(),
            r.position.to_string(),
            r.key.clone().unwrap_or_default(),
            r.stage.clone(),
            r.column.clone().unwrap_or_default(),
            r.value.clone().unwrap_or_default(),
            r.error.clone(),
        ];
        for c in columns {
            record.push(match r.row.get(c) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            });
        }
        w.write_record(record)?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::read_fixed;

    #[test]
    fn fixed_rows_are_read_by_id_and_bad_lines_are_named() {
        let text =
            "{\"id\":4,\"error\":\"x\",\"row\":{\"score\":\"30\"}}\n\n{\"id\":9,\"row\":{}}\n";
        let fixed = read_fixed(text).unwrap();
        assert_eq!(fixed[&4], serde_json::json!({ "score": "30" }));
        assert_eq!(fixed.len(), 2);
        let message = |text: &str| read_fixed(text).unwrap_err().to_string();
        let twice = message("{\"id\":4,\"row\":{}}\n{\"id\":4,\"row\":{}}");
        assert_eq!(twice, "line 2: flagged row #4 comes twice");
        let no_id = message("{\"row\":{}}");
        assert!(no_id.starts_with("line 1: no flagged-row `id`"), "{no_id}");
        let no_row = message("{\"id\":1,\"row\":[1]}");
        assert!(no_row.contains("no `row` object"), "{no_row}");
        let empty = message("\n");
        assert!(empty.starts_with("no fixed rows"), "{empty}");
        let csv = message("id,score\n1,30");
        assert!(csv.contains("flagged export --format jsonl"), "{csv}");
    }
}
