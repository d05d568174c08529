//! The SQL of a consolidation, in what PostgreSQL, MariaDB/MySQL and SQLite
//! all speak: every source's scratch table is copied into one `union`
//! table tagged with its precedence, ranked per key by the rule with
//! `ROW_NUMBER()`, and the first of each key goes into the new copy of the
//! table. The host's memory never holds the rows.

use super::schema::Unified;
use crate::drivers::Step;
use crate::drivers::merge::Dialect;

/// The precedence column of the union and ranked tables (0 = first).
pub const PRIORITY: &str = "credvault_priority";
/// The rank of a row among those of its key (1 = kept).
pub const RANK: &str = "credvault_rank";
const MAX_TABLE_NAME: usize = 60;

/// The scratch tables of one consolidated table.
#[derive(Debug, Clone)]
pub struct Scratch {
    /// Every source row, tagged with its precedence.
    pub union: String,
    /// The same rows, each with its rank among its key's.
    pub ranked: String,
    /// The winners: the new copy swapped in for the table.
    pub merged: String,
}

impl Scratch {
    /// The scratch tables of `table`.
    pub fn of(table: &str) -> Self {
        let name = |what: &str| {
            let mut n = format!("credvault_{what}_{table}");
            n.truncate(n.floor_char_boundary(MAX_TABLE_NAME));
            n
        };
        Self {
            union: name("union"),
            ranked: name("ranked"),
            merged: name("merged"),
        }
    }
}

/// Writes the statements for one consolidated table.
pub struct MergeSql<'a> {
    /// The table's layout.
    pub unified: &'a Unified,
    /// The destination's SQL spelling.
    pub dialect: &'a Dialect,
    /// A table's name as SQL writes it.
    pub sql_name: &'a dyn Fn(&str) -> String,
    /// The scratch tables.
    pub scratch: &'a Scratch,
}

impl MergeSql<'_> {
    fn quote_all(&self, names: &[String]) -> String {
        names
            .iter()
            .map(|n| (self.dialect.quote)(n))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Copies feed `i`'s scratch table into the union table.
    fn union_insert(&self, i: usize) -> String {
        let feed = &self.unified.feeds[i];
        let cols = self.quote_all(&feed.names(self.unified));
        let (mut into, mut from) = (
            format!("{cols}, {}", (self.dialect.quote)(PRIORITY)),
            format!("{cols}, {i}"),
        );
        if let Some(at) = self.unified.lineage {
            let name = &self.unified.columns[at].name;
            into.push_str(&format!(", {}", (self.dialect.quote)(name)));
            from.push_str(&format!(", '{}'", feed.label.replace('\'', "''")));
        }
        format!(
            "INSERT INTO {} ({into}) SELECT {from} FROM {}",
            (self.sql_name)(&self.scratch.union),
            (self.sql_name)(&feed.stage)
        )
    }

    /// The window that ranks the rows of a key: by the rule, then by
    /// precedence.
    fn window(&self) -> String {
        let q = self.dialect.quote;
        let partition: Vec<String> = self
            .unified
            .key_names()
            .iter()
            .map(|k| (self.dialect.exact)(&q(k)))
            .collect();
        let mut order = Vec::new();
        if let Some(at) = self.unified.latest {
            let l = q(&self.unified.columns[at].name);
            order.push(format!("({l} IS NULL)"));
            order.push(format!("{l} DESC"));
        }
        order.push(q(PRIORITY));
        format!(
            "ROW_NUMBER() OVER (PARTITION BY {} ORDER BY {})",
            partition.join(", "),
            order.join(", ")
        )
    }

    /// Ranks every row of the union table.
    fn rank_insert(&self) -> String {
        let cols = self.quote_all(&self.unified.names());
        let p = (self.dialect.quote)(PRIORITY);
        format!(
            "INSERT INTO {} ({cols}, {p}, {}) SELECT {cols}, {p}, {} FROM {}",
            (self.sql_name)(&self.scratch.ranked),
            (self.dialect.quote)(RANK),
            self.window(),
            (self.sql_name)(&self.scratch.union)
        )
    }

    fn count_ranked(&self, condition: &str) -> String {
        format!(
            "SELECT COUNT(*) FROM {} WHERE {condition}",
            (self.sql_name)(&self.scratch.ranked)
        )
    }

    /// The statements, in one transaction; their numbers, in order: rows
    /// with a NULL key, rows in all, then per feed the rows it won, then
    /// the rows kept.
    pub fn steps(&self) -> Vec<Step> {
        let q = self.dialect.quote;
        let mut steps: Vec<Step> = (0..self.unified.feeds.len())
            .map(|i| Step::Exec(self.union_insert(i)))
            .collect();
        steps.push(Step::Exec(self.rank_insert()));
        let null_key: Vec<String> = self
            .unified
            .key_names()
            .iter()
            .map(|k| format!("{} IS NULL", q(k)))
            .collect();
        steps.push(Step::Count(self.count_ranked(&null_key.join(" OR "))));
        steps.push(Step::Count(self.count_ranked("1 = 1")));
        for i in 0..self.unified.feeds.len() {
            let won = format!("{} = 1 AND {} = {i}", q(RANK), q(PRIORITY));
            steps.push(Step::Count(self.count_ranked(&won)));
        }
        let cols = self.quote_all(&self.unified.names());
        steps.push(Step::Exec(format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE {} = 1",
            (self.sql_name)(&self.scratch.merged),
            (self.sql_name)(&self.scratch.ranked),
            q(RANK)
        )));
        steps
    }
}
