//! The destination's checks: reachable, may create tables, and per table
//! its conflicts with `if_exists`, whether it takes the rows, may be written
//! and already holds their keys; then free space.

use super::super::plan::TablePlan;
use super::{CheckResult, keys, space};
use crate::config::{Endpoint, IfExists, Migration};
use crate::connectors::{Checkpoint, ConnectorError, Sink, Source, open_reader, open_sink};
use crate::value::TableInfo;

/// A destination table as the run will find it.
pub(super) struct Target<'a> {
    /// The table's plan.
    pub plan: &'a TablePlan,
    /// Rows it holds; `None` if it does not exist.
    pub rows: Option<u64>,
    /// This migration's checkpoint for it, when the run resumes an
    /// interrupted one that had started it.
    pub resumed: Option<Checkpoint>,
}

impl Target<'_> {
    pub fn table(&self) -> &str {
        self.plan.spec.destination()
    }

    /// Whether the interrupted run finished it (the run skips it).
    pub fn done(&self) -> bool {
        self.resumed.as_ref().is_some_and(|c| c.done)
    }

    /// Whether the run creates it: a new table, or one it replaces.
    fn creates(&self) -> bool {
        self.resumed.is_none()
            && (self.rows.is_none() || self.plan.spec.if_exists == IfExists::Replace)
    }

    /// Whether rows go into it as it stands.
    pub fn appends(&self) -> bool {
        let fresh = self.resumed.is_none() && self.plan.spec.if_exists == IfExists::Append;
        self.rows.is_some() && !self.done() && (fresh || self.resumed.is_some())
    }

    /// Whether a restore point copies it: an existing table the run writes
    /// into or replaces.
    pub fn copied(&self) -> bool {
        self.appends() || (self.rows.is_some() && self.creates())
    }
}

/// The destination opened for reading, to compare keys and measure tables.
pub(super) struct Destination {
    pub reader: Box<dyn Source>,
    pub tables: Vec<TableInfo>,
}

impl Destination {
    pub fn table(&self, name: &str) -> Option<&TableInfo> {
        self.tables.iter().find(|t| t.name == name)
    }
}

pub(super) async fn check(
    m: &Migration,
    source: &dyn Source,
    plans: &[TablePlan],
    resuming: bool,
    results: &mut Vec<CheckResult>,
) {
    let Some(sink) = reach(m, results).await else {
        return;
    };
    let targets = match targets(m, sink.as_ref(), plans, resuming).await {
        Ok(targets) => targets,
        Err(e) => {
            results.push(CheckResult::fail("destination tables", e.to_string()));
            return;
        }
    };
    results.push(can_create(sink.as_ref(), &targets).await);
    if let Endpoint::Plugin(_) = m.destination {
        results.push(CheckResult::pass(
            "destination tables",
            "a plugin destination is write-only: the plugin checks existing tables itself when it prepares them",
        ));
        return;
    }
    let dest = match read_destination(m).await {
        Ok(dest) => dest,
        Err(e) => {
            results.push(CheckResult::fail("destination readable", e.to_string()));
            return;
        }
    };
    for target in &targets {
        results.extend(table_checks(m, source, sink.as_ref(), &dest, target).await);
    }
    results.push(space::check(source, &dest, sink.as_ref(), &targets).await);
}

/// Opens the destination for writing. A server that answers but refuses
/// to make the checkpoint table is reachable: that is a permission failure.
async fn reach(m: &Migration, results: &mut Vec<CheckResult>) -> Option<Box<dyn Sink>> {
    let error = match open_sink(m).await {
        Ok(sink) => {
            results.push(CheckResult::pass("destination reachable", sink.describe()));
            return Some(sink);
        }
        Err(e) => e.to_string(),
    };
    match open_reader(&m.destination, &m.base_dir).await {
        Ok(_) => {
            results.push(CheckResult::pass(
                "destination reachable",
                "connected, but it cannot be written",
            ));
            results.push(CheckResult::fail(CREATE, error));
        }
        Err(_) => results.push(CheckResult::fail("destination reachable", error)),
    }
    None
}

const CREATE: &str = "destination may create tables";

async fn targets<'a>(
    m: &Migration,
    sink: &dyn Sink,
    plans: &'a [TablePlan],
    resuming: bool,
) -> Result<Vec<Target<'a>>, ConnectorError> {
    let mut targets = Vec::with_capacity(plans.len());
    for plan in plans {
        let table = plan.spec.destination();
        let resumed = match resuming {
            true => sink.committed(&m.name, table).await?,
            false => None,
        };
        let rows = sink.existing_rows(table).await?;
        targets.push(Target {
            plan,
            rows,
            resumed,
        });
    }
    Ok(targets)
}

async fn read_destination(m: &Migration) -> Result<Destination, ConnectorError> {
    let reader = open_reader(&m.destination, &m.base_dir).await?;
    let tables = reader.discover().await?;
    Ok(Destination { reader, tables })
}

/// Creates a table without keeping it, if the run will create any.
async fn can_create(sink: &dyn Sink, targets: &[Target<'_>]) -> CheckResult {
    let creating: Vec<&str> = targets
        .iter()
        .filter(|t| t.creates())
        .map(Target::table)
        .collect();
    if creating.is_empty() {
        return CheckResult::pass(CREATE, "not needed: every table exists already");
    }
    let needed = format!("needed for {}", creating.join(", "));
    match sink.probe_create().await {
        Ok(()) => CheckResult::pass(CREATE, format!("yes ({needed})")),
        Err(e) => CheckResult::fail(CREATE, format!("{needed}: {e}")),
    }
}

async fn table_checks(
    m: &Migration,
    source: &dyn Source,
    sink: &dyn Sink,
    dest: &Destination,
    t: &Target<'_>,
) -> Vec<CheckResult> {
    let mut results = vec![conflict(t)];
    if !t.appends() {
        return results;
    }
    results.push(fits(sink, t).await);
    results.push(writable(sink, t).await);
    let fresh_rows = t.resumed.is_none() && t.rows.unwrap_or(0) > 0;
    if fresh_rows {
        results.push(keys::check(m, t.plan, source, dest).await);
    }
    results
}

/// The table's state against `if_exists`; the run's own tables when
/// resuming are no conflict.
fn conflict(t: &Target<'_>) -> CheckResult {
    let name = format!("destination table {}", t.table());
    let pass = |detail: String| CheckResult::pass(name.clone(), detail);
    match (&t.resumed, t.rows, t.plan.spec.if_exists) {
        (Some(c), _, _) if c.done => pass("completed by the interrupted run; it is skipped".into()),
        (Some(c), _, _) => pass(format!(
            "started by the interrupted run; it resumes after source row {}",
            c.rows
        )),
        (None, None, _) => pass("does not exist yet; it will be created".into()),
        (None, Some(rows), IfExists::Fail) => CheckResult::fail(
            name.clone(),
            format!(
                "already exists with {rows} rows; set if_exists = \"append\" or \"replace\", or choose another table"
            ),
        ),
        (None, Some(rows), IfExists::Append) => {
            pass(format!("exists with {rows} rows; rows will be appended"))
        }
        (None, Some(rows), IfExists::Replace) => {
            pass(format!("exists with {rows} rows; it will be replaced"))
        }
    }
}

/// Every output column exists in the table with a type that takes it.
async fn fits(sink: &dyn Sink, t: &Target<'_>) -> CheckResult {
    let name = format!("destination table {} columns", t.table());
    match sink.misfits(t.table(), &t.plan.output).await {
        Ok(problems) if problems.is_empty() => CheckResult::pass(
            name,
            format!(
                "has all {} column(s), each of a type that takes the values",
                t.plan.output.len()
            ),
        ),
        Ok(problems) => CheckResult::fail(
            name,
            format!(
                "{}; rename or convert those columns in the mapping, or use if_exists = \"replace\"",
                problems.join("; ")
            ),
        ),
        Err(e) => CheckResult::fail(name, e.to_string()),
    }
}

async fn writable(sink: &dyn Sink, t: &Target<'_>) -> CheckResult {
    let name = format!("destination table {} writable", t.table());
    match sink.probe_write(t.table()).await {
        Ok(()) => CheckResult::pass(name, "this user may add rows (none written)"),
        Err(e) => CheckResult::fail(name, e.to_string()),
    }
}
