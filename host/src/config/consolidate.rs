//! Checks of `[consolidate.<table>]` entries that serde cannot express.

use std::collections::HashSet;

use super::validate::is_plain_name;
use super::{DedupRule, IfExists, Migration, SyncMode};

/// Adds a line to `problems` for each thing wrong with the consolidations.
pub(super) fn check(m: &Migration, problems: &mut Vec<String>) {
    let mut stages = HashSet::new();
    for (table, spec) in &m.consolidate {
        let at = format!("consolidate.{table}");
        let feeding = m.contributors(table);
        if feeding.is_empty() {
            problems.push(format!(
                "{at}: no [[tables]] entry has destination = \"{table}\"; list the tables to merge into it"
            ));
        }
        if spec.key.is_empty() {
            problems.push(format!(
                "{at}.key: name the destination columns that identify one row across sources, e.g. key = [\"email\"]"
            ));
        }
        match (spec.rule, &spec.latest_by) {
            (DedupRule::Latest, None) => problems.push(format!(
                "{at}.latest_by: rule = \"latest\" needs the column whose largest value wins, e.g. latest_by = \"updated_at\""
            )),
            (DedupRule::Priority, Some(_)) => problems.push(format!(
                "{at}.latest_by: only used with rule = \"latest\"; rule = \"priority\" keeps the row of the first source in `priority`"
            )),
            _ => {}
        }
        if spec.if_exists == IfExists::Append {
            problems.push(format!(
                "{at}.if_exists: a consolidated table is rebuilt whole and swapped in; use \"fail\" or \"replace\""
            ));
        }
        if let Some(lineage) = &spec.lineage
            && (!is_plain_name(lineage) || spec.key.contains(lineage))
        {
            problems.push(format!(
                "{at}.lineage: `{lineage}` must be a plain column name (letters, digits, `_`, `-`) that is not a key column"
            ));
        }
        check_priority(&at, spec, &feeding, problems);
        let mut seen = HashSet::new();
        for c in &feeding {
            if !seen.insert((c.label.as_str(), c.spec.source.as_str())) {
                problems.push(format!(
                    "{at}: table `{}` of `{}` feeds it twice",
                    c.spec.source, c.label
                ));
            }
            if m.sync_mode(&c.spec) != SyncMode::Full {
                problems.push(format!(
                    "{at}: table `{}` of `{}` syncs {:?}; a consolidated table is rebuilt from every source each time, so its tables sync in full",
                    c.spec.source, c.label, m.sync_mode(&c.spec)
                ));
            }
            if !stages.insert(c.stage.clone()) {
                problems.push(format!(
                    "{at}: its scratch table `{}` clashes with another consolidation's; shorten one of the destination names",
                    c.stage
                ));
            }
        }
    }
}

fn check_priority(
    at: &str,
    spec: &super::ConsolidateSpec,
    feeding: &[super::Contributor],
    problems: &mut Vec<String>,
) {
    if spec.priority.is_empty() {
        return;
    }
    let labels: Vec<&str> = feeding.iter().map(|c| c.label.as_str()).collect();
    let mut listed = HashSet::new();
    for p in &spec.priority {
        if !listed.insert(p.as_str()) {
            problems.push(format!("{at}.priority: `{p}` is listed twice"));
        } else if !labels.contains(&p.as_str()) {
            problems.push(format!(
                "{at}.priority: `{p}` feeds no table into it (its sources: {})",
                labels.join(", ")
            ));
        }
    }
    for label in labels {
        if !listed.contains(label) {
            problems.push(format!(
                "{at}.priority: `{label}` feeds it but is not listed; list every source in order of precedence"
            ));
        }
    }
}
