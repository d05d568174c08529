//! The unified schema of a consolidated table: the union of the columns
//! its sources bring (after their mapping and transforms), each with one
//! type, plus where every source's columns sit in it.

use crate::config::{ConsolidateSpec, Contributor, DedupRule};
use crate::engine::TablePlan;
use crate::model::value::{Column, ColumnType, type_name};

/// Types whose order every database and the host agree on, so "latest"
/// means the same in the merge and in its validation (text is excluded:
/// collations differ).
const ORDERED: [ColumnType; 6] = [
    ColumnType::Int,
    ColumnType::Float,
    ColumnType::Date,
    ColumnType::Time,
    ColumnType::Timestamp,
    ColumnType::Timestamptz,
];

/// A consolidated table's layout.
#[derive(Clone)]
pub struct Unified {
    /// The destination table.
    pub table: String,
    /// Its rule.
    pub spec: ConsolidateSpec,
    /// Its columns: every source column once, then the lineage column.
    pub columns: Vec<Column>,
    /// Indices of the key columns.
    pub key: Vec<usize>,
    /// Index of the `latest_by` column.
    pub latest: Option<usize>,
    /// Index of the lineage column.
    pub lineage: Option<usize>,
    /// Its sources, in order of precedence.
    pub feeds: Vec<Feed>,
}

/// One source table of a consolidated table.
#[derive(Clone)]
pub struct Feed {
    /// The connection (`source` for `[source]`).
    pub label: String,
    /// The source table.
    pub source: String,
    /// The scratch table its rows land in.
    pub stage: String,
    /// Its plan (as its part runs it, into `stage`).
    pub plan: TablePlan,
    /// For each unified column, where it sits in this feed's rows.
    pub at: Vec<Option<usize>>,
}

impl Unified {
    /// Lays out `table` from its contributors' plans (in precedence order);
    /// every conflict is one problem naming the column and the sources.
    pub fn new(
        table: &str,
        spec: &ConsolidateSpec,
        feeds: Vec<(Contributor, TablePlan)>,
    ) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        let mut columns: Vec<Column> = Vec::new();
        let mut origin: Vec<&str> = Vec::new();
        for (c, plan) in &feeds {
            for col in &plan.output {
                match columns.iter().position(|u| u.name == col.name) {
                    None => {
                        columns.push(col.clone());
                        origin.push(&c.label);
                    }
                    Some(i) => match widen(columns[i].type_, col.type_) {
                        Some(t) => {
                            columns[i].type_ = t;
                            columns[i].nullable |= col.nullable;
                        }
                        None => problems.push(format!(
                            "column `{}`: `{}` gives {}, `{}` gives {}; give both one type, e.g. `type = \"{}\"` in [tables.columns.{}] of `{}`",
                            col.name,
                            origin[i],
                            type_name(columns[i].type_),
                            c.label,
                            type_name(col.type_),
                            type_name(columns[i].type_),
                            col.name,
                            c.label
                        )),
                    },
                }
            }
        }
        let feeds: Vec<Feed> = feeds
            .into_iter()
            .map(|(c, plan)| Feed::new(c, plan, &columns))
            .collect();
        for col in &mut columns {
            col.nullable |= feeds.iter().any(|f| !f.brings(&col.name));
        }
        let find = |columns: &[Column], name: &str| columns.iter().position(|c| c.name == name);
        let mut key = Vec::new();
        for k in &spec.key {
            match find(&columns, k) {
                Some(i) => key.push(i),
                None => problems.push(format!(
                    "key: no source brings a column `{k}`; the key names destination columns (after renames and transforms)"
                )),
            }
            for f in feeds.iter().filter(|f| !f.brings(k)) {
                problems.push(format!(
                    "key: `{}` (table `{}`) brings no column `{k}`, so its rows would have no key; map one of its columns onto `{k}`",
                    f.label, f.source
                ));
            }
        }
        let latest = latest_column(spec, &columns, &mut problems);
        let lineage = spec.lineage.as_ref().map(|name| {
            if find(&columns, name).is_some() {
                problems.push(format!(
                    "lineage: a source already brings a column `{name}`; choose another name for the lineage column"
                ));
            }
            columns.push(Column {
                name: name.clone(),
                type_: ColumnType::Text,
                nullable: false,
            });
            columns.len() - 1
        });
        match problems.is_empty() {
            true => Ok(Self {
                table: table.to_string(),
                spec: spec.clone(),
                columns,
                key,
                latest,
                lineage,
                feeds,
            }),
            false => Err(problems),
        }
    }

    /// The columns' names.
    pub fn names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }

    /// The key columns' names.
    pub fn key_names(&self) -> Vec<String> {
        self.key
            .iter()
            .map(|&i| self.columns[i].name.clone())
            .collect()
    }

    /// The rule in words: `latest by updated_at, then crm, shop`.
    pub fn rule_text(&self) -> String {
        let order: Vec<&str> = self.feeds.iter().map(|f| f.label.as_str()).collect();
        let order = dedup(order).join(" > ");
        match (self.spec.rule, &self.spec.latest_by) {
            (DedupRule::Latest, Some(by)) => format!("latest `{by}` wins, ties by {order}"),
            _ => format!("source priority {order}"),
        }
    }
}

fn dedup(mut labels: Vec<&str>) -> Vec<&str> {
    let mut seen = Vec::new();
    labels.retain(|l| {
        let new = !seen.contains(l);
        seen.push(*l);
        new
    });
    labels
}

impl Feed {
    fn new(c: Contributor, plan: TablePlan, columns: &[Column]) -> Self {
        let at = columns
            .iter()
            .map(|u| plan.output.iter().position(|c| c.name == u.name))
            .collect();
        Self {
            label: c.label,
            source: c.spec.source,
            stage: c.stage,
            plan,
            at,
        }
    }

    /// Whether this feed's rows have column `name`.
    pub fn brings(&self, name: &str) -> bool {
        self.plan.output.iter().any(|c| c.name == name)
    }

    /// The unified columns this feed brings, by name.
    pub fn names(&self, unified: &Unified) -> Vec<String> {
        unified
            .columns
            .iter()
            .zip(&self.at)
            .filter(|(_, at)| at.is_some())
            .map(|(c, _)| c.name.clone())
            .collect()
    }
}

/// The one type two sources' columns can share without loss: the same,
/// or decimal for an int and a decimal.
fn widen(a: ColumnType, b: ColumnType) -> Option<ColumnType> {
    use ColumnType::{Decimal, Int};
    match (a, b) {
        _ if a == b => Some(a),
        (Int, Decimal) | (Decimal, Int) => Some(Decimal),
        _ => None,
    }
}

fn latest_column(
    spec: &ConsolidateSpec,
    columns: &[Column],
    problems: &mut Vec<String>,
) -> Option<usize> {
    let by = spec.latest_by.as_ref()?;
    let Some(i) = columns.iter().position(|c| &c.name == by) else {
        problems.push(format!(
            "latest_by: no source brings a column `{by}`; it names a destination column"
        ));
        return None;
    };
    if !ORDERED.contains(&columns[i].type_) {
        let names: Vec<&str> = ORDERED.iter().map(|t| type_name(*t)).collect();
        problems.push(format!(
            "latest_by: `{by}` is {}, which databases order differently; use a column of type {}",
            type_name(columns[i].type_),
            names.join(", ")
        ));
    }
    Some(i)
}
