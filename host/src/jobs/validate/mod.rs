//! Validation: does the destination hold what the source, mapped and
//! transformed, says it should?
//!
//! Each table is read twice side by side: the source, re-derived through
//! the same mapping and transforms as the run (with the run's clock), and
//! the destination. Both are reduced to a [`TableDigest`] (rows, NULLs per
//! column, an order-independent checksum) and a sample of rows picked by a
//! salted hash of their key, so both sides pick the same rows without
//! waiting for each other and memory stays bounded by the sample.

mod consolidated;
pub mod digest;
pub(crate) mod report;

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use tokio::sync::mpsc;

pub use consolidated::consolidated;
pub use digest::TableDigest;
pub use report::html;

use crate::config::{Endpoint, IfExists, Migration, OnOrphan};
use crate::drivers::{
    ReadRequest, Source, SourceBatch, open_destination_reader, open_sink, open_source, owner,
};
use crate::engine::{Chain, Output, TablePlan, not_callable, plan, process};
use crate::jobs::RunError;
use crate::model::convert::convert_ref;
use crate::model::value::{
    Column, ColumnType, Row, TableInfo, Value, to_text, type_name, value_type,
};
use crate::runtime::Runtime;
use crate::state::RunCounts;

/// How to validate.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Rows to spot-check per table.
    pub sample: u64,
    /// The clock the transforms saw in the run being validated (µs since
    /// the epoch), so time-dependent transforms derive the same rows.
    pub run_started_at: i64,
    /// Rows the destination refused in the run under the `skip` or `flag`
    /// policy, by destination table (`#position`, and `id=42` when the row
    /// has a key): the destination lacks them on purpose.
    pub refused: HashMap<String, HashSet<String>>,
    /// Of those, the rows refused because a row they refer to was missing
    /// (a foreign key whose parent was refused or never there), by table.
    pub dangling: HashMap<String, Vec<String>>,
    /// What the latest run to finish each table counted for it, by table:
    /// a table whose transform may not be called again (it writes
    /// elsewhere) is compared with these counts instead.
    pub recorded: HashMap<String, RunCounts>,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// As expected.
    Pass,
    /// Not as expected.
    Fail,
    /// Not applicable here (the reason says why).
    Skip,
}

/// One line of a table's validation.
#[derive(Debug, Clone, Serialize)]
pub struct Line {
    /// What was compared: `row count`, `checksum`, …
    pub check: String,
    /// Pass, fail or skip.
    pub status: Status,
    /// What was expected and found, or why it was skipped.
    pub detail: String,
}

impl Line {
    /// A line that passes or fails.
    pub fn new(check: &str, passed: bool, detail: String) -> Self {
        let status = if passed { Status::Pass } else { Status::Fail };
        Self {
            check: check.into(),
            status,
            detail,
        }
    }

    pub(crate) fn skip(check: &str, detail: impl Into<String>) -> Self {
        Self {
            check: check.into(),
            status: Status::Skip,
            detail: detail.into(),
        }
    }
}

/// A table's validation.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// The source table.
    pub source: String,
    /// The destination table.
    pub table: String,
    /// The checks, in order.
    pub lines: Vec<Line>,
}

impl TableReport {
    /// Whether no check failed.
    pub fn passed(&self) -> bool {
        self.lines.iter().all(|l| l.status != Status::Fail)
    }
}

/// A migration's validation.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The migration.
    pub migration: String,
    /// When it was validated (RFC 3339, UTC).
    pub validated_at: String,
    /// Rows spot-checked per table.
    pub sample: u64,
    /// Whether every table passed.
    pub passed: bool,
    /// Per table.
    pub tables: Vec<TableReport>,
}

/// Validates every table of a migration.
pub async fn validate(
    m: &Migration,
    runtime: &Runtime,
    options: Options,
) -> Result<Report, RunError> {
    let m = &m.without_transform_effects();
    let source = open_source(m).await?;
    let plans = plan(m, source.as_ref(), runtime, options.run_started_at)
        .await
        .map_err(RunError::Plan)?;
    validate_planned(m, source.as_ref(), &plans, options).await
}

/// Validates tables already planned (by the run being validated): no
/// transform is configured again, and one whose transforms have side
/// effects is not called at all ([`not_callable`]).
pub async fn validate_planned(
    m: &Migration,
    source: &dyn Source,
    plans: &[TablePlan],
    options: Options,
) -> Result<Report, RunError> {
    let options = &options;
    let destination = open_destination_reader(m).await?;
    let found = destination.discover().await?;
    let empty_before = empty_before(m, plans).await?;
    let mut tables = Vec::new();
    for plan in plans {
        let at = found.iter().find(|t| t.name == plan.spec.destination());
        let report = match at {
            Some(at) => {
                let sides = Sides {
                    source,
                    destination: destination.as_ref(),
                    at,
                };
                let was_empty = empty_before.contains(plan.spec.destination());
                validate_table(m, plan, sides, options, was_empty).await?
            }
            None => missing_table(plan, destination.describe()),
        };
        tables.push(report);
    }
    Ok(Report::new(&m.name, options.sample, tables))
}

impl Report {
    /// A report made now of `tables`' validations.
    pub fn new(migration: &str, sample: u64, tables: Vec<TableReport>) -> Self {
        Self {
            migration: migration.to_string(),
            validated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            sample,
            passed: tables.iter().all(TableReport::passed),
            tables,
        }
    }
}

/// The appended tables that held no rows when the migration's last fresh
/// load of them started: all they hold is what the run wrote, so they are
/// compared whole, like tables the run created.
async fn empty_before(m: &Migration, plans: &[TablePlan]) -> Result<HashSet<String>, RunError> {
    let mut empty = HashSet::new();
    let appended: Vec<&str> = plans
        .iter()
        .filter(|p| p.spec.if_exists == IfExists::Append)
        .map(|p| p.spec.destination())
        .collect();
    if appended.is_empty() || !m.destination.readable() {
        return Ok(empty);
    }
    let sink = open_sink(m).await?;
    for table in appended {
        if owner::rows_before(sink.as_ref(), &m.name, table).await? == Some(0) {
            empty.insert(table.to_string());
        }
    }
    Ok(empty)
}

fn missing_table(plan: &TablePlan, destination: String) -> TableReport {
    TableReport {
        source: plan.spec.source.clone(),
        table: shown(plan).to_string(),
        lines: vec![Line::new(
            "table exists",
            false,
            format!("{destination} has no table `{}`", plan.spec.destination()),
        )],
    }
}

/// The two ends of a table.
struct Sides<'a> {
    source: &'a dyn Source,
    destination: &'a dyn Source,
    at: &'a TableInfo,
}

async fn validate_table(
    m: &Migration,
    plan: &TablePlan,
    sides: Sides<'_>,
    options: &Options,
    was_empty: bool,
) -> Result<TableReport, RunError> {
    let layout = Layout::new(plan, sides.at);
    let mut lines = vec![layout.columns_line(), layout.types_line(sides.destination)];
    if !layout.missing.is_empty() {
        return Ok(report(plan, lines));
    }
    let total = sides.source.count(&plan.source).await?;
    let appended = plan.spec.if_exists == IfExists::Append && !was_empty;
    if let Some(why) = not_callable(plan) {
        let found = sides.destination.count(sides.at).await?;
        let recorded = options.recorded.get(shown(plan));
        lines.extend(recorded_lines(total, recorded, found, &why, appended));
        if let Some(keys) = options.dangling.get(plan.spec.destination()) {
            lines.push(references_line(keys, plan.spec.on_orphan));
        }
        return Ok(report(plan, lines));
    }
    let picker = Picker::new(options.sample, total);
    let empty = HashSet::new();
    let refused = options
        .refused
        .get(plan.spec.destination())
        .unwrap_or(&empty);
    let (expected, found) = tokio::join!(
        derive(m, plan, sides.source, &layout, &picker, refused),
        scan(m, sides.destination, sides.at, &layout, &picker),
    );
    let (expected, found) = (expected?, found?);
    if appended {
        let why = "the table is appended to (if_exists = \"append\"), so it may hold other rows; see the spot check";
        lines.push(Line::skip("row count", why));
        lines.push(Line::skip("null counts", why));
        lines.push(Line::skip("checksum", why));
    } else {
        lines.push(count_line(&expected, &found));
        lines.push(nulls_line(plan, &expected.digest, &found.digest));
        lines.push(checksum_line(&expected.digest, &found.digest));
    }
    lines.push(spot_line(plan, &layout, &expected, &found, appended));
    if let Some(keys) = options.dangling.get(plan.spec.destination()) {
        lines.push(references_line(keys, plan.spec.on_orphan));
    }
    explain_random(plan, &mut lines);
    Ok(report(plan, lines))
}

/// The checks of a table whose transforms are not called again: its row
/// count against what the run recorded; the values are not compared.
fn recorded_lines(
    total: u64,
    recorded: Option<&RunCounts>,
    found: u64,
    why: &str,
    appended: bool,
) -> Vec<Line> {
    let not_run = format!("not re-run: {why}; compared row counts with what the run recorded");
    let count = match (recorded, appended) {
        (_, true) => Line::skip(
            "row count",
            format!(
                "the table is appended to (if_exists = \"append\"), so it may hold other rows; not re-run: {why}"
            ),
        ),
        (None, false) => Line::skip(
            "row count",
            format!(
                "not re-run: {why}; no run of this migration in this state store recorded the table, so nothing is compared"
            ),
        ),
        (Some(c), false) => {
            let left_out = c.dropped + c.skipped + c.flagged;
            let want = total.saturating_sub(left_out);
            Line::new(
                "row count",
                want == found,
                format!(
                    "expected {want} ({total} source rows, less {left_out} the run recorded as dropped, skipped or flagged), destination {found}; {not_run}"
                ),
            )
        }
    };
    let values = "not compared: the transform is not re-run (see row count)".to_string();
    let mut lines = vec![count];
    for check in ["null counts", "checksum", "spot check"] {
        lines.push(Line::skip(check, values.clone()));
    }
    lines
}

/// The value checks a transform that draws random bytes cannot pass: its
/// re-derived rows hold other values than the run wrote. They are skipped
/// with that reason rather than failed; the row count still counts.
fn explain_random(plan: &TablePlan, lines: &mut [Line]) {
    let Some(step) = plan.steps.iter().find(|s| s.plugin.drew_random()) else {
        return;
    };
    let values = ["null counts", "checksum", "spot check"];
    for line in lines
        .iter_mut()
        .filter(|l| l.status == Status::Fail && values.contains(&l.check.as_str()))
    {
        line.status = Status::Skip;
        line.detail = format!(
            "not comparable: transform `{}` draws random bytes (wasi:random), so re-deriving its rows gives other values than the run wrote ({})",
            step.plugin.name(),
            line.detail
        );
    }
}

/// Rows that are missing because a row they refer to is: the counts pass
/// (the destination refused them on purpose), but the data is not whole.
fn references_line(keys: &[String], on_orphan: OnOrphan) -> Line {
    let examples: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
    if on_orphan == OnOrphan::Flag {
        return Line::new(
            "references",
            true,
            format!(
                "{} row(s) whose parent is missing are flagged, as on_orphan = \"flag\" asks, e.g. {}",
                keys.len(),
                examples.join("; ")
            ),
        );
    }
    Line::new(
        "references",
        false,
        format!(
            "{} row(s) refused because a row they refer to is missing (its parent was refused or never there), e.g. {}: fix the parent rows (`credvault flagged list`), retry them, then retry these",
            keys.len(),
            examples.join("; ")
        ),
    )
}

/// The destination table as a person knows it: a dry run's scratch table by
/// the table it stands for.
fn shown(plan: &TablePlan) -> &str {
    plan.spec
        .stands_for
        .as_deref()
        .unwrap_or(plan.spec.destination())
}

fn report(plan: &TablePlan, lines: Vec<Line>) -> TableReport {
    TableReport {
        source: plan.spec.source.clone(),
        table: shown(plan).to_string(),
        lines,
    }
}

/// Where the expected columns sit in the destination table, and which of
/// them make up the key.
struct Layout {
    /// For each expected column, its index in the destination row.
    order: Vec<usize>,
    /// Expected columns the destination lacks.
    missing: Vec<String>,
    /// Destination columns nobody expects.
    extra: Vec<String>,
    /// Expected-column indices of the key (empty: the table has none).
    key: Vec<usize>,
    /// The expected columns.
    columns: Vec<Column>,
    /// The destination's columns.
    found: Vec<Column>,
}

impl Layout {
    fn new(plan: &TablePlan, at: &TableInfo) -> Self {
        let mut order = Vec::new();
        let mut missing = Vec::new();
        for c in &plan.output {
            match at.columns.iter().position(|d| d.name == c.name) {
                Some(i) => order.push(i),
                None => missing.push(c.name.clone()),
            }
        }
        let extra = at
            .columns
            .iter()
            .filter(|d| !plan.output.iter().any(|c| c.name == d.name))
            .map(|d| d.name.clone())
            .collect();
        Self {
            order,
            missing,
            extra,
            key: plan.output_key(),
            columns: plan.output.clone(),
            found: at.columns.clone(),
        }
    }

    fn columns_line(&self) -> Line {
        let n = self.columns.len();
        if !self.missing.is_empty() {
            let detail = format!(
                "{n} expected, the destination lacks {}",
                self.missing.join(", ")
            );
            return Line::new("column count", false, detail);
        }
        let detail = match self.extra.as_slice() {
            [] => format!("{n} both sides"),
            extra => format!(
                "{n} expected, all present; the destination also has {}",
                extra.join(", ")
            ),
        };
        Line::new("column count", true, detail)
    }

    fn types_line(&self, destination: &dyn Source) -> Line {
        if destination.describe().contains(" csv ") {
            return Line::skip("data types", "CSV files carry no column types");
        }
        let differ: Vec<String> = self
            .columns
            .iter()
            .zip(&self.order)
            .filter(|(c, i)| self.found[**i].type_ != c.type_)
            .map(|(c, &i)| {
                format!(
                    "{}: expected {}, found {}",
                    c.name,
                    type_name(c.type_),
                    type_name(self.found[i].type_)
                )
            })
            .collect();
        match differ.is_empty() {
            true => Line::new("data types", true, format!("{} match", self.order.len())),
            false => Line::new("data types", false, differ.join("; ")),
        }
    }

    /// A destination row as an expected row: expected column order, each
    /// value in the expected type where it converts exactly (a value that
    /// does not is kept as found, and so will not match).
    fn align(&self, row: &Row) -> Row {
        self.order
            .iter()
            .zip(&self.columns)
            .map(|(&i, c)| in_type(&row[i], c.type_))
            .collect()
    }

    fn identity(&self) -> Vec<usize> {
        (0..self.columns.len()).collect()
    }

    /// What picks and matches a row: its key, or the whole row.
    fn key_hash(&self, row: &Row) -> u128 {
        match self.key.is_empty() {
            true => digest::hash_row(row, &self.identity()),
            false => digest::hash_row(row, &self.key),
        }
    }

    fn key_text(&self, row: &Row) -> String {
        if self.key.is_empty() {
            return "(whole row; the table has no key)".into();
        }
        self.key
            .iter()
            .map(|&k| {
                let v = to_text(&row[k]).unwrap_or_else(|| "null".into());
                format!("{}={v}", self.columns[k].name)
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `value` in type `to` where it converts exactly; otherwise as it is (so
/// it will not match a value of type `to`).
fn in_type(value: &Value, to: ColumnType) -> Value {
    match value_type(value) {
        Some(t) if t != to => convert_ref(value, to)
            .ok()
            .or_else(|| special_decimal(value, to))
            .unwrap_or_else(|| value.clone()),
        _ => value.clone(),
    }
}

/// A decimal NaN or ±Infinity (PostgreSQL's `numeric` has them) kept as
/// text by a destination without such decimals (SQLite's `DECIMAL_TEXT`).
/// The mapping never parses them from text, so only validation reads
/// them back.
fn special_decimal(value: &Value, to: ColumnType) -> Option<Value> {
    match (value, to) {
        (Value::Text(t), ColumnType::Decimal)
            if matches!(t.as_str(), "NaN" | "Infinity" | "-Infinity") =>
        {
            Some(Value::Decimal(t.clone()))
        }
        _ => None,
    }
}

/// What a destination cannot keep of a value, so that an expected row is
/// compared as the destination can hold it: a difference it cannot help
/// (and the README's type table states) is not a failure, and any other
/// difference still is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AtRest {
    /// Whether a float keeps the sign of zero. SQLite stores a whole REAL
    /// as an integer and MariaDB's DOUBLE drops the sign, so -0.0 reads
    /// back as 0.0 there; PostgreSQL and CSV keep it.
    negative_zero: bool,
}

impl AtRest {
    /// How `destination` stores values.
    pub(crate) fn of(destination: &Endpoint) -> Self {
        let negative_zero = crate::drivers::registry::driver(destination)
            .traits()
            .keeps_negative_zero;
        Self { negative_zero }
    }

    /// `row` as the destination holds it.
    pub(crate) fn apply(self, mut row: Row) -> Row {
        if !self.negative_zero {
            for value in &mut row {
                if let Value::Float(f) = value
                    && *f == 0.0
                {
                    *f = 0.0;
                }
            }
        }
        row
    }
}

/// Picks about `sample` rows of `total` by a salted hash of their key, the
/// same on both sides.
struct Picker {
    salt: u128,
    below: u128,
}

impl Picker {
    fn new(sample: u64, total: u64) -> Self {
        let salt = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
            ^ (std::process::id() as u128) << 64;
        let below = match total {
            0 => u128::MAX,
            _ if sample >= total => u128::MAX,
            _ => u128::MAX / total as u128 * sample as u128,
        };
        Self { salt, below }
    }

    fn picks(&self, key: u128) -> bool {
        let mixed = (key ^ self.salt).wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835);
        self.below == u128::MAX || mixed.rotate_left(64) < self.below
    }
}

/// One side of a table, reduced.
struct Side {
    digest: TableDigest,
    /// Sampled rows by key hash (a list: a duplicated key shows twice).
    sample: HashMap<u128, Vec<Row>>,
    /// Source rows the mapping or a transform refused.
    failed: u64,
    /// Source rows a transform filtered out.
    dropped: u64,
    /// Rows the destination refused in the run (skipped or flagged).
    refused: u64,
    /// Source rows read.
    read: u64,
}

impl Side {
    fn new(columns: usize) -> Self {
        Self {
            digest: TableDigest::new(columns),
            sample: HashMap::new(),
            failed: 0,
            dropped: 0,
            refused: 0,
            read: 0,
        }
    }

    fn add(&mut self, row: Row, layout: &Layout, picker: &Picker) {
        self.digest.add(&row, &layout.identity());
        let key = layout.key_hash(&row);
        if picker.picks(key) {
            self.sample.entry(key).or_default().push(row);
        }
    }
}

/// Streams a table's batches into `each`.
async fn stream(
    source: &dyn Source,
    request: ReadRequest,
    mut each: impl AsyncFnMut(SourceBatch) -> Result<(), RunError>,
) -> Result<(), RunError> {
    let (tx, mut rx) = mpsc::channel(2);
    let reader = source.read(request, tx);
    let consumer = async {
        while let Some(batch) = rx.recv().await {
            each(batch?).await?;
        }
        Ok::<(), RunError>(())
    };
    let ((), consumed) = tokio::join!(reader, consumer);
    consumed
}

fn whole(m: &Migration, table: &TableInfo) -> ReadRequest {
    ReadRequest::whole(table, m.settings.batch_size)
}

/// The source side: every source row through the run's mapping and
/// transforms.
async fn derive(
    m: &Migration,
    plan: &TablePlan,
    source: &dyn Source,
    layout: &Layout,
    picker: &Picker,
    refused: &HashSet<String>,
) -> Result<Side, RunError> {
    let mut side = Side::new(plan.output.len());
    let at_rest = AtRest::of(&m.destination);
    let counts = derive_rows(m, plan, source, refused, |row| {
        side.add(at_rest.apply(row), layout, picker)
    })
    .await?;
    side.read = counts.read;
    side.failed = counts.failed;
    side.dropped = counts.dropped;
    side.refused = counts.refused;
    Ok(side)
}

/// What re-deriving a table from its source counted.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Derived {
    /// Source rows read.
    pub read: u64,
    /// Rows the mapping or a transform refused.
    pub failed: u64,
    /// Rows a transform filtered out.
    pub dropped: u64,
    /// Rows the destination refused in the run.
    pub refused: u64,
}

/// Streams every row of `plan`'s source table through the run's mapping
/// and transforms into `each`, leaving out the rows the destination
/// refused in the run (`refused`: their keys or `#positions`).
pub(crate) async fn derive_rows(
    m: &Migration,
    plan: &TablePlan,
    source: &dyn Source,
    refused: &HashSet<String>,
    mut each: impl FnMut(Row),
) -> Result<Derived, RunError> {
    let traps = m.settings.max_plugin_traps;
    let mut chain = Chain::new(plan.ctx.clone(), plan.steps.clone(), traps);
    let mut counts = Derived::default();
    let ordered = ReadRequest {
        any_order: false,
        ..whole(m, &plan.source)
    };
    stream(source, ordered, async |batch: SourceBatch| {
        counts.read += batch.rows.len() as u64;
        let processed = process(plan, &mut chain, batch).await?;
        counts.failed += processed.failures.len() as u64;
        counts.dropped += processed.dropped;
        let source = processed.source;
        let rows: Vec<(usize, Row)> = match processed.output {
            Output::Source => source.rows.iter().cloned().enumerate().collect(),
            Output::Rows(rows) => rows,
        };
        for (i, row) in rows {
            // A primary key names a row for sure; otherwise its position
            // in the source's stable order does.
            let id = match plan.source.primary_key.is_empty() {
                true => Some(format!("#{}", source.first + i as u64)),
                false => plan.key_text(&source.rows[i]),
            };
            match refused.contains(&id.unwrap_or_default()) {
                true => counts.refused += 1,
                false => each(row),
            }
        }
        Ok(())
    })
    .await?;
    Ok(counts)
}

/// The destination side: every row of the destination table.
async fn scan(
    m: &Migration,
    destination: &dyn Source,
    at: &TableInfo,
    layout: &Layout,
    picker: &Picker,
) -> Result<Side, RunError> {
    let mut side = Side::new(layout.columns.len());
    stream(destination, whole(m, at), async |batch: SourceBatch| {
        for row in &batch.rows {
            side.add(layout.align(row), layout, picker);
        }
        Ok(())
    })
    .await?;
    Ok(side)
}

fn count_line(expected: &Side, found: &Side) -> Line {
    let mut why = String::new();
    if expected.failed > 0 || expected.dropped > 0 || expected.refused > 0 {
        why = format!(
            " ({} source rows, {} refused by the mapping or a transform, {} dropped by a transform, {} refused by the destination)",
            expected.read, expected.failed, expected.dropped, expected.refused
        );
    }
    let (want, got) = (expected.digest.rows, found.digest.rows);
    Line::new(
        "row count",
        want == got,
        format!("expected {want}{why}, destination {got}"),
    )
}

fn nulls_line(plan: &TablePlan, expected: &TableDigest, found: &TableDigest) -> Line {
    let differ: Vec<String> = plan
        .output
        .iter()
        .zip(expected.nulls.iter().zip(&found.nulls))
        .filter(|(_, (a, b))| a != b)
        .map(|(c, (a, b))| format!("{}: expected {a}, destination {b}", c.name))
        .collect();
    match differ.is_empty() {
        true => {
            let total: u64 = expected.nulls.iter().sum();
            Line::new(
                "null counts",
                true,
                format!("{total} NULLs over {} columns match", plan.output.len()),
            )
        }
        false => Line::new("null counts", false, differ.join("; ")),
    }
}

fn checksum_line(expected: &TableDigest, found: &TableDigest) -> Line {
    let (a, b) = (expected.checksum(), found.checksum());
    match a == b {
        true => Line::new("checksum", true, a),
        false => Line::new(
            "checksum",
            false,
            format!(
                "expected {a}, destination {b}: a value differs, or a row is missing or repeated"
            ),
        ),
    }
}

/// Compares the sampled rows by key; reports the first few differences.
fn spot_line(
    plan: &TablePlan,
    layout: &Layout,
    expected: &Side,
    found: &Side,
    appended: bool,
) -> Line {
    let mut problems = Vec::new();
    let mut checked = 0;
    for (key, rows) in &expected.sample {
        checked += rows.len();
        let there = found.sample.get(key).map(Vec::as_slice).unwrap_or(&[]);
        if let Some(problem) = compare_sampled(plan, layout, rows, there) {
            problems.push(problem);
        }
    }
    if !appended {
        for (key, rows) in &found.sample {
            if !expected.sample.contains_key(key) {
                problems.push(format!(
                    "{}: at the destination but not in the source",
                    layout.key_text(&rows[0])
                ));
            }
        }
    }
    if checked == 0 {
        return Line::skip("spot check", "no rows to check");
    }
    let n = problems.len();
    problems.truncate(5);
    match n {
        0 => Line::new(
            "spot check",
            true,
            format!("{checked} random rows re-derived from the source match by key"),
        ),
        _ => Line::new(
            "spot check",
            false,
            format!("{n} of {checked} rows differ: {}", problems.join("; ")),
        ),
    }
}

/// Compares the rows sampled under one key (or, in a table without a key,
/// one whole row) on both sides: the destination must hold as many as
/// the source gave (a row a keyless source holds twice lands twice), each
/// with the expected values. `want` is never empty.
fn compare_sampled(plan: &TablePlan, layout: &Layout, want: &[Row], got: &[Row]) -> Option<String> {
    let key = layout.key_text(&want[0]);
    if got.is_empty() {
        return Some(format!("{key}: missing at the destination"));
    }
    if got.len() != want.len() {
        return Some(format!(
            "{key}: {} rows at the destination, {} expected",
            got.len(),
            want.len()
        ));
    }
    // Rows of one key pair up by their whole content, whatever order each
    // side read them in.
    let (want, got) = (by_content(layout, want), by_content(layout, got));
    let diff = want
        .iter()
        .zip(&got)
        .find_map(|(a, b)| difference(plan, a, b))?;
    Some(format!("{key}: {diff}"))
}

/// Rows sorted by the hash of their whole canonical content.
fn by_content<'a>(layout: &Layout, rows: &'a [Row]) -> Vec<&'a Row> {
    let mut sorted: Vec<&Row> = rows.iter().collect();
    sorted.sort_by_cached_key(|r| digest::hash_row(r, &layout.identity()));
    sorted
}

/// The first column where two rows differ, in words.
fn difference(plan: &TablePlan, want: &Row, got: &Row) -> Option<String> {
    let (i, (a, b)) = want
        .iter()
        .zip(got)
        .enumerate()
        .find(|(_, (a, b))| !digest::same(a, b))?;
    let show = |v: &Value| to_text(v).unwrap_or_else(|| "NULL".into());
    Some(format!(
        "column {} expected {:?}, destination {:?}",
        plan.output[i].name,
        show(a),
        show(b)
    ))
}
