//! The destination's checks: reachable, may create tables, and per table
//! its conflicts with `if_exists`, whether it takes the rows, may be written
//! and already holds their keys; then free space.

use super::{CheckResult, keys, space};
use crate::config::{ErrorPolicy, IfExists, Migration, SyncKind};
use crate::drivers::{
    Checkpoint, ConnectorError, Sink, Source, open_destination_reader, open_sink, owner,
};
use crate::engine::plan::TablePlan;
use crate::model::value::TableInfo;

/// A destination table as the run will find it.
pub(super) struct Target<'a> {
    /// The table's plan.
    pub plan: &'a TablePlan,
    /// Rows it holds; `None` if it does not exist.
    pub rows: Option<u64>,
    /// This migration's checkpoint for it, when the run resumes an
    /// interrupted one that had started it.
    pub resumed: Option<Checkpoint>,
    /// Whether this migration created the table (an earlier run did, and
    /// nobody has made it again since): only such a table may be replaced
    /// without the user asking for it.
    pub ours: bool,
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
    results.push(load_order(sink.as_ref(), plans).await);
    if !m.destination.readable() {
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
    match open_destination_reader(m).await {
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
        let ours = rows.is_some() && owner::owns(sink, &m.name, table).await?;
        targets.push(Target {
            plan,
            rows,
            resumed,
            ours,
        });
    }
    Ok(targets)
}

async fn read_destination(m: &Migration) -> Result<Destination, ConnectorError> {
    let reader = open_destination_reader(m).await?;
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
    let Some(check) = sink.healthcheck() else {
        return unchecked(CREATE, sink);
    };
    match check.probe_create().await {
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
    let mut results = vec![conflict(m, t)];
    if !t.appends() {
        return results;
    }
    results.push(fits(sink, t).await);
    results.push(writable(sink, t).await);
    let fresh_rows = t.resumed.is_none() && t.rows.unwrap_or(0) > 0;
    if fresh_rows {
        results.push(keys::check(m, t.plan, source, dest, t.ours).await);
    }
    results
}

/// The table's state against `if_exists`; the run's own tables when
/// resuming are no conflict.
fn conflict(m: &Migration, t: &Target<'_>) -> CheckResult {
    let name = format!("destination table {}", t.table());
    let pass = |detail: String| CheckResult::pass(name.clone(), detail);
    match (&t.resumed, t.rows, t.plan.spec.if_exists) {
        (Some(c), _, _) if c.done => pass("completed by the interrupted run; it is skipped".into()),
        (Some(c), _, _) => pass(format!(
            "started by the interrupted run; it resumes after source row {}",
            c.rows
        )),
        (None, None, _) => pass("does not exist yet; it will be created".into()),
        (None, Some(rows), IfExists::Fail) if t.ours && m.sync.kind != SyncKind::OneTime => {
            pass(format!(
                "holds {rows} rows from an earlier run of this migration: its syncs bring it up to date (a new `run` needs if_exists = \"replace\" for a fresh copy)"
            ))
        }
        (None, Some(rows), IfExists::Fail) if t.ours => {
            CheckResult::fail(name.clone(), super::super::run::own_copy(rows))
        }
        (None, Some(rows), IfExists::Fail) => CheckResult::fail(
            name.clone(),
            format!(
                "already exists with {rows} rows, and this migration did not create it; set if_exists = \"append\" to add the rows to it, or choose another destination table"
            ),
        ),
        (None, Some(rows), IfExists::Append) => {
            pass(format!("exists with {rows} rows; rows will be appended"))
        }
        (None, Some(rows), IfExists::Replace) if t.ours => pass(format!(
            "exists with {rows} rows, created by an earlier run of this migration; it will be replaced by a fresh copy"
        )),
        (None, Some(rows), IfExists::Replace) => pass(format!(
            "exists with {rows} rows and was not created by this migration; it will be replaced as if_exists = \"replace\" asks (a restore point keeps it)"
        )),
    }
}

/// Every output column exists in the table with a type that takes it.
async fn fits(sink: &dyn Sink, t: &Target<'_>) -> CheckResult {
    let name = format!("destination table {} columns", t.table());
    let Some(check) = sink.healthcheck() else {
        return unchecked(name, sink);
    };
    match check.misfits(t.table(), &t.plan.output).await {
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
                "{}; rename or convert those columns in the mapping{}",
                problems.join("; "),
                replace_advice(t.ours)
            ),
        ),
        Err(e) => CheckResult::fail(name, e.to_string()),
    }
}

async fn writable(sink: &dyn Sink, t: &Target<'_>) -> CheckResult {
    let name = format!("destination table {} writable", t.table());
    let Some(check) = sink.healthcheck() else {
        return unchecked(name, sink);
    };
    match check.probe_write(t.table()).await {
        Ok(()) => CheckResult::pass(name, "this user may add rows (none written)"),
        Err(e) => CheckResult::fail(name, e.to_string()),
    }
}

/// A probe `sink` does not offer ([`Sink::healthcheck`]): nothing to
/// check, so it passes, saying so.
pub(super) fn unchecked(name: impl Into<String>, sink: &dyn Sink) -> CheckResult {
    let detail = format!(
        "not checked: {} offers no preflight probes",
        sink.describe()
    );
    CheckResult::pass(name, detail)
}

/// Advice to replace a table, given only for a table the migration created:
/// any other is the user's, and never to be replaced on our suggestion.
pub(super) fn replace_advice(ours: bool) -> &'static str {
    match ours {
        true => ", or use if_exists = \"replace\" (this migration created the table)",
        false => ", or choose another destination table",
    }
}

const ORDER: &str = "destination load order";

/// Parents before children, by the destination's foreign keys between the
/// run's tables. Tables on a cycle load together last, and what they refuse
/// for a missing parent is written again once all are in; a cycle fails
/// only where a table's policy is `stop`, which would stop at the first
/// such row.
async fn load_order(sink: &dyn Sink, plans: &[TablePlan]) -> CheckResult {
    let order = match crate::engine::order::load_order(sink, plans).await {
        Ok(order) => order,
        Err(e) => return CheckResult::fail(ORDER, e.to_string()),
    };
    if !order.cycle.is_empty() {
        let cycle = order.cycle.join(", ");
        let stopping: Vec<&str> = plans
            .iter()
            .filter(|p| p.policy == ErrorPolicy::Stop)
            .map(|p| p.spec.destination())
            .filter(|t| order.cycle.iter().any(|c| c == t))
            .collect();
        if !stopping.is_empty() {
            return CheckResult::fail(
                ORDER,
                format!(
                    "the foreign keys of {cycle} form a cycle, so some rows arrive before the rows they refer to, and under on_error = \"stop\" ({}) the first such row stops the run; choose on_error = \"skip\" or \"flag\" for them (rows refused for a missing parent are then written again once the whole cycle is in), or drop one of the constraints for the load and add it back after",
                    stopping.join(", ")
                ),
            );
        }
        return CheckResult::pass(
            ORDER,
            format!(
                "the foreign keys of {cycle} form a cycle: they load together last, and rows refused because the row they refer to was not there yet are written again once the whole cycle is in"
            ),
        );
    }
    if order.waves.len() < 2 {
        return CheckResult::pass(ORDER, "no foreign keys between the run's tables");
    }
    let waves: Vec<String> = order
        .waves
        .iter()
        .map(|w| {
            w.iter()
                .map(|p| p.spec.destination())
                .collect::<Vec<_>>()
                .join(", ")
        })
        .collect();
    CheckResult::pass(
        ORDER,
        format!(
            "parents before children, by their foreign keys: {}",
            waves.join(", then ")
        ),
    )
}
