//! A migration split by where its tables come from: one single-source
//! migration per endpoint (`[source]` or a `[connections.<name>]`), each
//! run by the ordinary pipeline. Tables bound for a consolidated
//! destination land first in a scratch table of their own, which the
//! consolidation merges.

use super::{DRY_RUN_PREFIX, IfExists, Migration, TableSpec};

/// The label of the tables read from `[source]`.
pub const MAIN_SOURCE: &str = "source";
/// The prefix of the scratch tables a consolidation fills from each source.
pub const PART_PREFIX: &str = "credvault_part";
/// Table names stay under PostgreSQL's 63-byte identifier limit.
const MAX_TABLE_NAME: usize = 60;

/// The tables of a migration that one endpoint supplies.
#[derive(Debug, Clone)]
pub struct Part {
    /// `source` for `[source]`, else the connection's name.
    pub label: String,
    /// A single-source migration of just these tables, named
    /// `<migration>#<label>`, without restore points (the whole migration
    /// takes one).
    pub migration: Migration,
}

/// One table feeding a consolidated destination.
#[derive(Debug, Clone)]
pub struct Contributor {
    /// The connection it is read from (`source` for `[source]`).
    pub label: String,
    /// Its `[[tables]]` entry as written.
    pub spec: TableSpec,
    /// The scratch table its rows land in before the merge.
    pub stage: String,
}

impl Migration {
    /// Whether some table comes from a `[connections.<name>]` or some
    /// destination is consolidated: such a migration runs in [`Part`]s.
    pub fn is_multi_source(&self) -> bool {
        !self.consolidate.is_empty() || self.tables.iter().any(|t| t.connection.is_some())
    }

    /// The label of the endpoint `table` is read from.
    pub fn label_of(table: &TableSpec) -> &str {
        table.connection.as_deref().unwrap_or(MAIN_SOURCE)
    }

    /// The tables feeding consolidated destination `table`, in order of
    /// precedence (the `priority` list, else the order of `[[tables]]`).
    pub fn contributors(&self, table: &str) -> Vec<Contributor> {
        let mut found: Vec<Contributor> = self
            .tables
            .iter()
            .filter(|t| t.destination() == table)
            .enumerate()
            .map(|(n, t)| Contributor {
                label: Self::label_of(t).to_string(),
                spec: t.clone(),
                stage: stage_name(n, table),
            })
            .collect();
        if let Some(spec) = self.consolidate.get(table) {
            let rank = |c: &Contributor| spec.priority.iter().position(|p| *p == c.label);
            found.sort_by_key(|c| rank(c).unwrap_or(usize::MAX));
        }
        found
    }

    /// The destination tables a run of this migration writes for good:
    /// consolidated ones and every other table's.
    pub fn final_tables(&self) -> Vec<String> {
        let mut tables: Vec<String> = Vec::new();
        for t in &self.tables {
            let name = self.final_name(t.destination());
            if !tables.contains(&name) {
                tables.push(name);
            }
        }
        tables
    }

    /// Where rows bound for `table` land for good: the table, or in a dry
    /// run its scratch copy.
    pub fn final_name(&self, table: &str) -> String {
        match self.dry_run {
            true => format!("{DRY_RUN_PREFIX}{table}"),
            false => table.to_string(),
        }
    }

    /// The migration split by endpoint, in the order the endpoints first
    /// appear in `[[tables]]` (`[source]` first when `[select]` picks
    /// tables from it).
    pub fn parts(&self) -> Vec<Part> {
        let mut labels: Vec<&str> = Vec::new();
        if self.source.is_some() && !self.select.include.is_empty() {
            labels.push(MAIN_SOURCE);
        }
        for t in &self.tables {
            let label = Self::label_of(t);
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels.into_iter().map(|l| self.part(l)).collect()
    }

    fn part(&self, label: &str) -> Part {
        let mut m = self.clone();
        m.name = format!("{}#{label}", self.name);
        m.consolidate.clear();
        m.settings.restore_points = false;
        // The parts never drop their tables: consolidation merges them, and
        // a dry run's scratch tables are dropped once the whole run is done.
        m.dry_run = false;
        if label != MAIN_SOURCE {
            m.source = self.connections.get(label).cloned();
            m.select = Default::default();
        }
        m.tables = self
            .tables
            .iter()
            .filter(|t| Self::label_of(t) == label)
            .map(|t| self.part_table(t))
            .collect();
        Part {
            label: label.to_string(),
            migration: m,
        }
    }

    /// A table as its part writes it: a consolidated one into its scratch
    /// table, any other into its destination (renamed in a dry run).
    fn part_table(&self, t: &TableSpec) -> TableSpec {
        let mut t = t.clone();
        let destination = t.destination().to_string();
        if self.consolidate.contains_key(&destination) {
            let me = self
                .contributors(&destination)
                .into_iter()
                .find(|c| c.spec.source == t.source && c.label == Self::label_of(&t));
            t.destination = me.map(|c| c.stage);
            t.if_exists = IfExists::Replace;
            t.arrays_as_json = true;
        } else if self.dry_run {
            t.destination = Some(self.final_name(&destination));
            t.if_exists = IfExists::Replace;
        }
        t.connection = None;
        t
    }
}

/// The scratch table of the `n`th table feeding `table`.
fn stage_name(n: usize, table: &str) -> String {
    let mut name = format!("{PART_PREFIX}{n}_{table}");
    name.truncate(name.floor_char_boundary(MAX_TABLE_NAME));
    name
}
