//! Pre-run checks: each one passes or fails with a reason. `credvault check`
//! prints them; `credvault run` runs them first and refuses to start on a
//! failure unless forced.

mod destination;
mod grants;
mod keys;
mod space;

use std::collections::HashMap;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{Endpoint, Migration};
use crate::drivers::registry::driver;
use crate::drivers::{Native, Source, open_source};
use crate::engine::plan::{TablePlan, plan_each};
use crate::jobs::run::Planned;
use crate::model::value::{Column, TableInfo, type_name};
use crate::runtime::Runtime;

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
    /// A passed check.
    pub fn pass(name: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            passed: true,
            detail: detail.into(),
            lines: Vec::new(),
        }
    }
    /// A failed check.
    pub fn fail(name: impl Into<String>, detail: impl Into<String>) -> Self {
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
            let native = plan.natives.iter().find(|(name, _)| *name == c.to.name);
            let kept = match native.map(|(_, n)| *n) {
                Some(Native::Decimal { precision, scale }) => format!("({precision},{scale})"),
                Some(Native::Array(elem)) => format!(" (array of {})", type_name(elem)),
                None => String::new(),
            };
            format!(
                "{} {} → {} {}{kept}{lossy}",
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

/// Checks a migration against the real source and destination: both
/// reachable, every plugin's `db` grant opens without a privileged user,
/// every source table readable, every mapping valid against the real schemas, the destination writable, each table's conflicts, and
/// free space. `resuming`: the run would continue an interrupted one, whose
/// half-written tables are its own, not conflicts.
pub async fn check(m: &Migration, runtime: &Runtime, resuming: bool) -> Vec<CheckResult> {
    check_and_plan(m, runtime, resuming).await.0
}

/// [`check`], and the plan it made when every table planned: what the run
/// that follows uses, so it plans nothing again.
pub async fn check_and_plan(
    m: &Migration,
    runtime: &Runtime,
    resuming: bool,
) -> (Vec<CheckResult>, Option<Planned>) {
    let mut results = vec![CheckResult::pass(
        "migration file",
        format!("`{}` parsed, {} table(s)", m.name, m.tables.len()),
    )];
    grants::check(m, &mut results).await;
    let Some((source, tables)) = reach_source(m, &mut results).await else {
        return (results, None);
    };
    readable(m, source.as_ref(), &tables, &mut results).await;
    let clock = chrono::Utc::now().timestamp_micros();
    let (plans, whole) = mappings(m, source.as_ref(), &tables, runtime, clock, &mut results).await;
    destination::check(m, source.as_ref(), &plans, resuming, &mut results).await;
    let planned = whole.then(|| Planned {
        source: Arc::from(source),
        plans,
        clock,
    });
    (results, planned)
}

async fn reach_source(
    m: &Migration,
    results: &mut Vec<CheckResult>,
) -> Option<(Box<dyn Source>, Vec<TableInfo>)> {
    tracing::debug!(migration = %m.name, "checking: discovering the source catalogue");
    let discovered = match open_source(m).await {
        Ok(source) => source.discover().await.map(|tables| (source, tables)),
        Err(e) => Err(e),
    };
    match discovered {
        Ok((source, tables)) => {
            let reached = format!("{}: {} table(s)", source.describe(), tables.len());
            results.push(CheckResult::pass("source reachable", reached));
            Some((source, tables))
        }
        Err(e) => {
            results.push(CheckResult::fail("source reachable", e.to_string()));
            None
        }
    }
}

/// Reads one row of every selected table (a missing table is the
/// mapping's to report).
async fn readable(
    m: &Migration,
    source: &dyn Source,
    tables: &[TableInfo],
    results: &mut Vec<CheckResult>,
) {
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let mut seen = Vec::new();
    for spec in m.selected_tables(&names) {
        let Some(info) = tables.iter().find(|t| t.name == spec.source) else {
            continue;
        };
        if seen.contains(&spec.source) {
            continue;
        }
        seen.push(spec.source.clone());
        let name = format!("source table {} readable", info.name);
        results.push(match source.probe_read(info).await {
            Ok(()) => CheckResult::pass(name, "this user may read it"),
            Err(e) => CheckResult::fail(name, e.to_string()),
        });
    }
}

/// Plans every table against the real source schema and plugins, and
/// checks what planning alone allows; returns the tables that planned, and
/// whether every table did.
async fn mappings(
    m: &Migration,
    source: &dyn Source,
    tables: &[TableInfo],
    runtime: &Runtime,
    started: i64,
    results: &mut Vec<CheckResult>,
) -> (Vec<TablePlan>, bool) {
    let mut whole = true;
    let case_blind = driver(&m.destination).traits().case_blind_names;
    let mut plans = Vec::new();
    for planned in plan_each(m, source, tables, runtime, started).await {
        let plan = match planned {
            Ok(plan) => plan,
            Err(e) => {
                let name = format!("table {} mapping", e.table);
                results.push(CheckResult::fail(name, e.problems.join("; ")));
                whole = false;
                continue;
            }
        };
        let mut result = mapping_result(&plan, case_blind);
        schema_problems(&plan, &m.destination, &mut result);
        results.push(result);
        plans.push(plan);
    }
    (plans, whole)
}

fn mapping_result(plan: &TablePlan, case_blind: bool) -> CheckResult {
    let name = format!("table {} mapping", plan.spec.source);
    let mut problems = plan.mapping.inconvertible();
    if case_blind {
        problems.extend(case_collisions(&plan.output));
    }
    let mut result = match problems.is_empty() {
        true => CheckResult::pass(
            name,
            format!(
                "{} column(s) → `{}`, {} transform(s)",
                plan.output.len(),
                plan.spec.destination(),
                plan.steps.len()
            ),
        ),
        false => CheckResult::fail(name, problems.join("; ")),
    };
    result.lines = type_mapping(plan);
    result
}

/// Fails `result` if the table has more columns than the destination
/// allows in one table (a column declared twice fails the mapping).
fn schema_problems(plan: &TablePlan, destination: &Endpoint, result: &mut CheckResult) {
    let Some(problem) = too_wide(plan.output.len(), destination) else {
        return;
    };
    result.detail = match result.passed {
        true => problem,
        false => format!("{}; {problem}", result.detail),
    };
    result.passed = false;
}

/// A table of `columns` columns the destination cannot create.
fn too_wide(columns: usize, destination: &Endpoint) -> Option<String> {
    let (limit, name) = driver(destination).traits().max_columns?;
    (columns > limit).then(|| {
        format!(
            "the table would have {columns} columns, but {name} allows at most {limit} in a table; leave columns out (`skip = true` under [tables.columns.<name>]) or split the table"
        )
    })
}

/// Output columns whose names differ only in case: one column in a
/// destination whose column names ignore case (SQLite, MySQL). Names that
/// are exactly the same are duplicates, said as such.
fn case_collisions(output: &[Column]) -> Vec<String> {
    let mut seen: HashMap<String, &str> = HashMap::new();
    output
        .iter()
        .filter_map(|c| {
            let other = seen.insert(c.name.to_lowercase(), &c.name)?;
            if other == c.name {
                return Some(format!(
                    "`{other}` appears twice among the table's columns (a transform outputs a column the table already has); rename one of them"
                ));
            }
            Some(format!(
                "`{other}` and `{}` land in one column: the destination's column names ignore case; rename one of them",
                c.name
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::value::ColumnType;

    #[test]
    fn names_that_differ_only_in_case_collide() {
        let col = |name: &str| Column {
            name: name.into(),
            type_: ColumnType::Text,
            nullable: true,
        };
        let found = case_collisions(&[col("Name"), col("id"), col("name")]);
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("`Name` and `name`"), "{found:?}");
        assert!(case_collisions(&[col("a"), col("b")]).is_empty());
    }
}
