//! Pre-run checks: each one passes or fails with a reason.

use serde::Serialize;

use super::plan::{TablePlan, plan_tables};
use crate::config::{IfExists, Migration};
use crate::connectors::{open_sink, open_source};
use crate::runtime::Runtime;
use crate::value::type_name;

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// Why, or what to do.
    pub detail: String,
    /// Further lines, e.g. a table's type mapping `id int → id int`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<String>,
}

impl CheckResult {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: true,
            detail: detail.into(),
            lines: Vec::new(),
        }
    }
    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: false,
            detail: detail.into(),
            lines: Vec::new(),
        }
    }
}

/// A table's columns as they map: `source type → destination type`, then
/// the columns the transforms add or retype.
fn type_mapping(plan: &TablePlan) -> Vec<String> {
    let mut lines: Vec<String> = plan
        .mapping
        .columns()
        .iter()
        .map(|c| {
            let lossy = if c.lossy { " (lossy allowed)" } else { "" };
            format!(
                "{} {} → {} {}{lossy}",
                c.from.name,
                type_name(c.from.type_),
                c.to.name,
                type_name(c.to.type_)
            )
        })
        .collect();
    for c in &plan.output {
        if !plan
            .mapping
            .output
            .iter()
            .any(|m| m.name == c.name && m.type_ == c.type_)
        {
            lines.push(format!(
                "→ {} {} (from a transform)",
                c.name,
                type_name(c.type_)
            ));
        }
    }
    lines
}

/// Checks the source, every table's mapping and plugins against the real
/// schemas, and the destination.
pub async fn check(m: &Migration, runtime: &Runtime) -> Vec<CheckResult> {
    let mut results = vec![CheckResult::pass(
        "migration file",
        format!("`{}` parsed, {} table(s)", m.name, m.tables.len()),
    )];
    let source = match open_source(m).await {
        Ok(source) => source,
        Err(e) => {
            results.push(CheckResult::fail("source reachable", e.to_string()));
            return results;
        }
    };
    let tables = match source.discover().await {
        Ok(tables) => tables,
        Err(e) => {
            results.push(CheckResult::fail("source reachable", e.to_string()));
            return results;
        }
    };
    let reached = format!("{}: {} table(s)", source.describe(), tables.len());
    results.push(CheckResult::pass("source reachable", reached));
    match plan_tables(
        m,
        source.as_ref(),
        &tables,
        runtime,
        chrono::Utc::now().timestamp_micros(),
    )
    .await
    {
        Ok(plans) => results.extend(plans.iter().map(|p| {
            let mut result = CheckResult::pass(
                format!("table {} mapping", p.spec.source),
                format!(
                    "{} column(s) → `{}`, {} transform(s)",
                    p.output.len(),
                    p.spec.destination(),
                    p.steps.len()
                ),
            );
            result.lines = type_mapping(p);
            result
        })),
        Err(errors) => results.extend(errors.into_iter().map(|e| {
            CheckResult::fail(format!("table {} mapping", e.table), e.problems.join("; "))
        })),
    }
    let sink = match open_sink(m).await {
        Ok(sink) => sink,
        Err(e) => {
            results.push(CheckResult::fail("destination reachable", e.to_string()));
            return results;
        }
    };
    results.push(CheckResult::pass("destination reachable", sink.describe()));
    for t in &m.tables {
        let name = format!("destination table {}", t.destination());
        results.push(match (sink.existing_rows(t.destination()).await, t.if_exists) {
            (Err(e), _) => CheckResult::fail(name, e.to_string()),
            (Ok(None), _) => CheckResult::pass(name, "does not exist yet; it will be created"),
            (Ok(Some(rows)), IfExists::Fail) => CheckResult::fail(
                name,
                format!("already exists with {rows} rows; set if_exists = \"append\" or \"replace\", or choose another table"),
            ),
            (Ok(Some(rows)), IfExists::Append) => CheckResult::pass(name, format!("exists with {rows} rows; rows will be appended")),
            (Ok(Some(rows)), IfExists::Replace) => CheckResult::pass(name, format!("exists with {rows} rows; it will be replaced")),
        });
    }
    results
}
