//! Printing check results, previews and run summaries.

use std::path::Path;

use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

use crate::config::Migration;
use crate::jobs::validate::{Report, Status};
use crate::jobs::{CheckResult, PreviewRow, RunSummary, TablePreview};
use crate::model::value::{TableInfo, to_json, to_text, type_name};
use crate::state::{Event, RunRecord};

/// A run's outcome, then its validation.
pub fn summary(m: &Migration, s: &RunSummary, state: &Path) {
    run_line(m, s.number, "succeeded", s.counts, state);
    if let Some(report) = &s.validation {
        validation(report);
    }
    dry_run_note(m);
}

/// A run's totals, and where its flagged rows are.
fn run_line(m: &Migration, number: i64, verdict: &str, c: crate::state::RunCounts, state: &Path) {
    out!(
        "migration `{}` run {number} {verdict}: {}",
        m.name,
        counts(c)
    );
    if c.flagged > 0 {
        out!(
            "review flagged rows: credvault --state {} flagged list --migration {}",
            state.display(),
            m.name
        );
    }
}

fn counts(c: crate::state::RunCounts) -> String {
    format!(
        "{} read, {} written, {} dropped, {} skipped, {} flagged",
        c.read, c.written, c.dropped, c.skipped, c.flagged
    )
}

fn dry_run_note(m: &Migration) {
    if m.dry_run {
        out!("dry run: the scratch tables were dropped; the real tables were not touched");
    }
}

/// A validation report as lines: each table, then each check.
pub fn validation(report: &Report) {
    let verdict = if report.passed { "passed" } else { "FAILED" };
    out!("validation of `{}`: {verdict}", report.migration);
    for t in &report.tables {
        out!("  {} → {}", t.source, t.table);
        for line in &t.lines {
            let mark = match line.status {
                Status::Pass => "pass",
                Status::Fail => "FAIL",
                Status::Skip => "skip",
            };
            out!("    [{mark}] {}: {}", line.check, line.detail);
        }
    }
}

pub fn checks(results: &[CheckResult], json: bool) {
    if json {
        out!(
            "{}",
            serde_json::to_string_pretty(results).expect("serializable")
        );
        return;
    }
    for r in results {
        let mark = if r.passed { "pass" } else { "FAIL" };
        out!("[{mark}] {}: {}", r.name, r.detail);
        for line in &r.lines {
            out!("         {line}");
        }
    }
    let failed = results.iter().filter(|r| !r.passed).count();
    match failed {
        0 => out!("all {} checks passed", results.len()),
        n => out!("{n} of {} checks failed", results.len()),
    }
}

/// Before a run, on stderr: the failed checks and whether the run starts.
pub fn failed_checks(results: &[CheckResult], force: bool, json: bool) {
    let failed: Vec<&CheckResult> = results.iter().filter(|r| !r.passed).collect();
    if failed.is_empty() {
        // None ran: the run only completes the last run's validation.
        if !json && !results.is_empty() {
            note!("all {} pre-run checks passed", results.len());
        }
        return;
    }
    for r in &failed {
        note!("[FAIL] {}: {}", r.name, r.detail);
    }
    let n = failed.len();
    match force {
        true => note!("{n} pre-run check(s) failed; starting anyway (--force)"),
        false => note!(
            "{n} pre-run check(s) failed, so the run did not start: fix them (`credvault check` shows every check), or run with --force to start anyway"
        ),
    }
}

pub fn previews(previews: &[TablePreview], json: bool) {
    if json {
        let out: Vec<serde_json::Value> = previews.iter().map(preview_json).collect();
        out!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializable")
        );
        return;
    }
    for p in previews {
        let plan = &p.plan;
        out!(
            "\n{} → {} ({} rows in source, policy {:?})",
            shown(&plan.spec.source),
            shown(plan.spec.destination()),
            p.total,
            plan.policy
        );
        let mut types = new_table(vec!["source column", "source type", "→ column", "type"]);
        for c in plan.mapping.columns() {
            types.add_row(vec![
                shown(&c.from.name),
                type_name(c.from.type_).into(),
                shown(&c.to.name),
                type_name(c.to.type_).into(),
            ]);
        }
        out!("{types}");
        if !plan.steps.is_empty() {
            let names: Vec<&str> = plan.steps.iter().map(|s| s.plugin.name()).collect();
            let out: Vec<String> = plan
                .output
                .iter()
                .map(|c| format!("{} {}", shown(&c.name), type_name(c.type_)))
                .collect();
            out!("transforms: {} → {}", names.join(" → "), out.join(", "));
        }
        let mut rows = new_table(
            plan.output
                .iter()
                .map(|c| shown(&c.name))
                .collect::<Vec<_>>(),
        );
        let mut notes = Vec::new();
        for row in &p.rows {
            match row {
                PreviewRow::Row(values) => {
                    rows.add_row(
                        values
                            .iter()
                            .map(|v| to_text(v).map_or_else(|| "NULL".into(), |t| shown(&t)))
                            .collect::<Vec<_>>(),
                    );
                }
                PreviewRow::Dropped(pos) => {
                    notes.push(format!("row {pos}: dropped by a transform"))
                }
                PreviewRow::Failed(f) => notes.push(format!("would fail: {f}")),
            }
        }
        match &p.not_run {
            Some(why) => out!("{why}"),
            None => out!("{rows}"),
        }
        for note in notes {
            out!("  {note}");
        }
    }
}

pub fn discovered(m: &Migration, tables: &[TableInfo], json: bool) {
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    let selected: Vec<String> = m
        .selected_tables(&names)
        .into_iter()
        .map(|t| t.source)
        .collect();
    if json {
        let out: Vec<serde_json::Value> = tables
            .iter()
            .map(|t| {
                let columns: Vec<serde_json::Value> = t
                    .columns
                    .iter()
                    .map(|c| serde_json::json!({ "name": c.name, "type": type_name(c.type_), "nullable": c.nullable }))
                    .collect();
                serde_json::json!({
                    "table": t.name, "selected": selected.contains(&t.name), "primary_key": t.primary_key,
                    "approx_rows": t.approx_rows, "columns": columns,
                })
            })
            .collect();
        out!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializable")
        );
        return;
    }
    for t in tables {
        let mark = if selected.contains(&t.name) {
            "selected"
        } else {
            "not selected"
        };
        let rows = t
            .approx_rows
            .map(|n| format!("~{n} rows, "))
            .unwrap_or_default();
        let key = match t.primary_key.is_empty() {
            true => "no primary key".to_string(),
            false => format!("key ({})", t.primary_key.join(", ")),
        };
        out!("{} ({mark}): {rows}{}", shown(&t.name), shown(&key));
        for c in &t.columns {
            let null = if c.nullable { "" } else { " not null" };
            out!("    {} {}{null}", shown(&c.name), type_name(c.type_));
        }
    }
    let missing: Vec<&String> = selected
        .iter()
        .filter(|s| !names.contains(&s.as_str()))
        .collect();
    for name in missing {
        out!("{name}: listed in [[tables]] but not in the source");
    }
}

pub fn events(events: &[Event], json: bool) {
    for e in events {
        if json {
            out!("{}", serde_json::to_string(e).expect("serializable"));
            continue;
        }
        let run = e.run.map(|r| format!(" run {r}")).unwrap_or_default();
        out!(
            "{} {} {}{run} by {}: {}",
            e.at,
            e.migration,
            e.kind,
            e.actor,
            e.detail
        );
    }
}

/// A migration's last run and how its validation went, for `status`.
pub fn last_run(migration: &str, r: &RunRecord) {
    let rolled_back;
    let validation = match (r.rolled_back.as_deref(), r.validation.as_deref()) {
        (Some(point), _) => {
            rolled_back =
                format!(", rolled back to {point} (its tables are as they were before it)");
            &rolled_back
        }
        (None, Some("pending")) => {
            ", validation not completed: the next `credvault run` completes it"
        }
        (None, Some("passed")) => ", validation passed",
        (None, Some("failed")) => ", validation FAILED",
        _ => "",
    };
    out!(
        "{migration}: last run {} {} {}{validation}",
        r.number,
        r.started_at,
        r.status
    );
}

fn new_table(header: impl Into<comfy_table::Row>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header);
    t
}

fn preview_json(p: &TablePreview) -> serde_json::Value {
    let plan = &p.plan;
    let rows: Vec<serde_json::Value> = p
        .rows
        .iter()
        .map(|r| match r {
            PreviewRow::Row(values) => serde_json::Value::Object(
                plan.output
                    .iter()
                    .zip(values)
                    .map(|(c, v)| (c.name.clone(), to_json(v)))
                    .collect(),
            ),
            PreviewRow::Dropped(pos) => serde_json::json!({ "dropped": pos }),
            PreviewRow::Failed(f) => serde_json::json!({ "failed": f }),
        })
        .collect();
    let mapping: Vec<serde_json::Value> = plan
        .mapping
        .columns()
        .iter()
        .map(|c| {
            serde_json::json!({
                "from": c.from.name, "from_type": type_name(c.from.type_),
                "to": c.to.name, "to_type": type_name(c.to.type_),
            })
        })
        .collect();
    let output: Vec<serde_json::Value> = plan
        .output
        .iter()
        .map(|c| serde_json::json!({ "name": c.name, "type": type_name(c.type_) }))
        .collect();
    serde_json::json!({
        "source": plan.spec.source, "destination": plan.spec.destination(), "total": p.total,
        "mapping": mapping, "output": output, "rows": rows, "not_run": p.not_run,
    })
}

/// The outcome of a multi-source run, and its exit code.
pub fn consolidation(
    m: &Migration,
    result: Result<crate::jobs::consolidate::Summary, crate::jobs::RunError>,
    state: &Path,
    json: bool,
) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    let s = match result {
        Ok(s) => s,
        Err(err) => {
            note!("error: {err}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if json {
        let event = serde_json::json!({ "event": "consolidation_finished", "summary": s });
        out!("{event}");
    } else {
        for (label, part) in &s.parts {
            out!(
                "from `{label}` (run {}): {}",
                part.number,
                counts(part.counts)
            );
            if let Some(report) = &part.validation {
                validation(report);
            }
        }
        for t in &s.merged {
            let kept: Vec<String> = t.kept.iter().map(|(f, n)| format!("{f} {n}")).collect();
            let a = t.changed;
            if !t.swapped {
                out!(
                    "consolidated `{}` ({}): {} source rows → {} rows, kept {}; NOT swapped in (its validation failed), the table keeps its previous rows",
                    t.table,
                    t.rule,
                    t.source_rows,
                    t.rows,
                    kept.join(", ")
                );
                continue;
            }
            out!(
                "consolidated `{}` ({}): {} source rows → {} rows, kept {}; {} inserted, {} updated, {} deleted",
                t.table,
                t.rule,
                t.source_rows,
                t.rows,
                kept.join(", "),
                a.inserted,
                a.updated,
                a.deleted
            );
        }
        if let Some(report) = &s.validation {
            validation(report);
        }
        let verdict = match s.passed() {
            true => "succeeded",
            false => "failed validation; tables that failed it were not swapped in",
        };
        run_line(m, s.number, verdict, s.counts, state);
        dry_run_note(m);
    }
    Ok(match s.passed() {
        true => ExitCode::SUCCESS,
        false => ExitCode::FAILURE,
    })
}

/// A name or value from the data, as printed: escaped and cut.
fn shown(text: &str) -> String {
    crate::model::text::untrusted(text).into_owned()
}
