//! The read-only commands of a multi-source migration — check, preview,
//! validate — run part by part, plus what only the whole can tell: whether
//! each consolidated table's sources fit one schema, and whether the table
//! holds exactly the winning rows.

use crate::config::{IfExists, Migration};
use crate::drivers::{open_destination_reader, open_sink};
use crate::jobs::validate::{self, Options, Report, TableReport};
use crate::jobs::{self, CheckResult, RunError, TablePreview};
use crate::runtime::Runtime;
use crate::state::StateStore;

use super::{is_stage, unify};

/// Every part's checks (each named after its source), then each
/// consolidated table's layout and whether it is in the way.
pub async fn check(m: &Migration, runtime: &Runtime, resuming: bool) -> Vec<CheckResult> {
    let mut results = Vec::new();
    for part in m.parts() {
        for mut r in jobs::check(&part.migration, runtime, resuming).await {
            r.name = format!("{}: {}", part.label, r.name);
            results.push(r);
        }
    }
    if m.consolidate.is_empty() {
        return results;
    }
    let clock = chrono::Utc::now().timestamp_micros();
    match unify(m, runtime, clock).await {
        Ok(unified) => {
            for u in unified {
                let name = format!("consolidated table {}", u.table);
                let detail = format!(
                    "{} source table(s) into {} column(s), key ({}), {}",
                    u.feeds.len(),
                    u.columns.len(),
                    u.key_names().join(", "),
                    u.rule_text()
                );
                let mut result = CheckResult::pass(name, detail);
                result.lines = u
                    .columns
                    .iter()
                    .map(|c| {
                        let from: Vec<&str> = u
                            .feeds
                            .iter()
                            .filter(|f| f.brings(&c.name))
                            .map(|f| f.label.as_str())
                            .collect();
                        let from = match from.is_empty() {
                            true => "lineage".to_string(),
                            false => from.join(", "),
                        };
                        format!(
                            "{} {} ← {from}",
                            c.name,
                            crate::model::value::type_name(c.type_)
                        )
                    })
                    .collect();
                results.push(result);
            }
        }
        Err(e) => results.push(CheckResult::fail("consolidated tables", e.to_string())),
    }
    in_the_way(m, &mut results).await;
    results
}

/// A consolidated table that exists fails the check unless it is to be
/// replaced.
async fn in_the_way(m: &Migration, results: &mut Vec<CheckResult>) {
    let Ok(sink) = open_sink(m).await else {
        return;
    };
    for (table, spec) in &m.consolidate {
        let name = format!("consolidated table {table} in the way");
        match (sink.existing_rows(table).await, spec.if_exists) {
            (Ok(Some(rows)), IfExists::Fail) if !m.dry_run => results.push(CheckResult::fail(
                name,
                format!("it exists with {rows} rows; set if_exists = \"replace\" in [consolidate.{table}] to rebuild it (a restore point keeps the old rows)"),
            )),
            (Ok(Some(rows)), _) => results.push(CheckResult::pass(
                name,
                format!("it exists with {rows} rows and will be rebuilt, then swapped in"),
            )),
            (Ok(None), _) => results.push(CheckResult::pass(name, "absent")),
            (Err(e), _) => results.push(CheckResult::fail(name, e.to_string())),
        }
    }
}

/// Every part's preview; a consolidated table's rows show under
/// `table ← source`.
pub async fn preview(
    m: &Migration,
    runtime: &Runtime,
    limit: u64,
) -> Result<Vec<TablePreview>, RunError> {
    let mut previews = Vec::new();
    for part in m.parts() {
        for mut p in jobs::preview(&part.migration, runtime, limit).await? {
            let stage = p.plan.spec.destination().to_string();
            for table in m.consolidate.keys() {
                if m.contributors(table).iter().any(|c| c.stage == stage) {
                    p.plan.spec.destination = Some(format!("{table} ← {}", part.label));
                }
            }
            previews.push(p);
        }
    }
    Ok(previews)
}

/// Validates every part's own tables against their sources, and each
/// consolidated table against all of its sources.
pub async fn validate(
    m: &Migration,
    runtime: &Runtime,
    state: &StateStore,
    options: Options,
) -> Result<Report, RunError> {
    let m = &m.without_transform_effects();
    let mut tables: Vec<TableReport> = Vec::new();
    let mut refused = Vec::new();
    for part in m.parts() {
        let part_refused = state.refused(&part.migration.name).await?;
        for table in m.consolidate.keys() {
            for c in m
                .contributors(table)
                .iter()
                .filter(|c| c.label == part.label)
            {
                refused.push((
                    c.stage.clone(),
                    part_refused.get(&c.stage).cloned().unwrap_or_default(),
                ));
            }
        }
        let mut own = part.migration.clone();
        own.tables.retain(|t| !is_stage(m, t.destination()));
        if own.tables.is_empty() && own.select.include.is_empty() {
            continue;
        }
        let options = Options {
            refused: part_refused,
            ..options.clone()
        };
        tables.extend(validate::validate(&own, runtime, options).await?.tables);
    }
    let unified = unify(m, runtime, options.run_started_at).await?;
    let destination = open_destination_reader(m).await?;
    let found = destination.discover().await?;
    for u in &unified {
        let table = m.final_name(&u.table);
        let report = match found.iter().find(|t| t.name == table) {
            Some(at) => {
                let refused: Vec<_> = u
                    .feeds
                    .iter()
                    .map(|f| {
                        let found = refused.iter().find(|(stage, _)| *stage == f.stage);
                        found.map(|(_, r)| r.clone()).unwrap_or_default()
                    })
                    .collect();
                validate::consolidated(m, u, &refused, at).await?
            }
            None => TableReport {
                source: u
                    .feeds
                    .iter()
                    .map(|f| format!("{}.{}", f.label, f.source))
                    .collect::<Vec<_>>()
                    .join(" + "),
                table: table.clone(),
                lines: vec![validate::Line::new(
                    "table exists",
                    false,
                    format!("{} has no table `{table}`", destination.describe()),
                )],
            },
        };
        tables.push(report);
    }
    Ok(Report::new(&m.name, options.sample, tables))
}
