//! Applying a sync to a destination table in one transaction, in SQL every
//! database here speaks: rows staged in a scratch table are merged by key
//! (new ones inserted, changed ones updated in place), keys staged in
//! another are deleted, or a freshly copied table is swapped in whole (a
//! full sync of a table the migration made).
//! Counting what changed is part of the same transaction.

use serde::{Deserialize, Serialize};

use super::Checkpoint;

/// What a sync changed in a destination table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// Rows whose key was not there.
    pub inserted: u64,
    /// Rows whose key was there with other values.
    pub updated: u64,
    /// Rows removed.
    pub deleted: u64,
}

/// A merge of staged rows into a table.
pub struct Merge<'a> {
    /// The migration, which owns the checkpoint.
    pub migration: &'a str,
    /// The destination table.
    pub table: &'a str,
    /// The scratch table holding the new versions of rows.
    pub upserts: &'a str,
    /// The scratch table holding the keys of removed rows, if any.
    pub deletes: Option<&'a str>,
    /// The columns of the table (and of `upserts`).
    pub columns: &'a [String],
    /// The key columns.
    pub key: &'a [String],
    /// Committed with the rows: the cursor or log position reached.
    pub checkpoint: &'a Checkpoint,
}

/// A full copy swapped in for the table.
pub struct Swap<'a> {
    /// The migration, which owns the checkpoint.
    pub migration: &'a str,
    /// The destination table (it may not exist yet).
    pub table: &'a str,
    /// The complete new copy, renamed to `table`.
    pub copy: &'a str,
    /// The columns of both.
    pub columns: &'a [String],
    /// The key columns, for counting what changed (none: all rows count as
    /// inserted and the old ones as deleted).
    pub key: &'a [String],
    /// Committed with the swap.
    pub checkpoint: &'a Checkpoint,
}

/// How one database spells what the statements need.
pub struct Dialect {
    /// Quotes a column name.
    pub quote: fn(&str) -> String,
    /// The NULL-safe equality operator (`IS NOT DISTINCT FROM`, `<=>`, `IS`).
    pub same: &'static str,
    /// A column as compared byte for byte, where the default collation
    /// would call `A` and `a` the same key (MySQL: `BINARY col`).
    pub exact: fn(&str) -> String,
    /// Whether an update that reads another table is spelled `UPDATE t
    /// JOIN s ON … SET …` (MySQL) rather than `UPDATE t SET … FROM s`.
    pub update_join: bool,
}

/// A column compared as it is (PostgreSQL and SQLite compare text by bytes).
pub fn as_is(column: &str) -> String {
    column.to_string()
}

impl Dialect {
    fn keys_match(&self, a: &str, b: &str, key: &[String]) -> String {
        key.iter()
            .map(|k| format!("{a}.{k} = {b}.{k}", k = (self.quote)(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    fn rows_same(&self, a: &str, b: &str, columns: &[String]) -> String {
        columns
            .iter()
            .map(|c| format!("{a}.{c} {} {b}.{c}", self.same, c = (self.quote)(c)))
            .collect::<Vec<_>>()
            .join(" AND ")
    }

    /// Rows of `from` whose key is not in `other`.
    pub fn count_missing(&self, from: &str, other: &str, key: &[String]) -> String {
        format!(
            "SELECT COUNT(*) FROM {from} n WHERE NOT EXISTS (SELECT 1 FROM {other} o WHERE {})",
            self.keys_match("o", "n", key)
        )
    }

    /// Rows of `from` whose key is in `other` with other values.
    pub fn count_changed(&self, from: &str, other: &str, m: &[String], key: &[String]) -> String {
        format!(
            "SELECT COUNT(*) FROM {from} n WHERE EXISTS (SELECT 1 FROM {other} o WHERE {} AND NOT ({}))",
            self.keys_match("o", "n", key),
            self.rows_same("o", "n", m)
        )
    }

    /// The rows of `staged` whose `tag` column is `n` (0 or 1).
    pub fn count_tagged(&self, staged: &str, tag: &str, n: usize) -> String {
        format!(
            "SELECT COUNT(*) FROM {staged} WHERE {} = {n}",
            (self.quote)(tag)
        )
    }

    /// Deletes the rows of `table` whose key is in `keys`.
    pub fn delete_keys(&self, table: &str, keys: &str, key: &[String]) -> String {
        format!(
            "DELETE FROM {table} WHERE EXISTS (SELECT 1 FROM {keys} k WHERE {})",
            self.keys_match("k", table, key)
        )
    }

    /// Deletes the rows of `table` whose key is not in `keys`.
    pub fn delete_missing(&self, table: &str, keys: &str, key: &[String]) -> String {
        format!(
            "DELETE FROM {table} WHERE NOT EXISTS (SELECT 1 FROM {keys} k WHERE {})",
            self.keys_match("k", table, key)
        )
    }

    /// Indexes `table` on its key columns, so the statements above find
    /// rows by key instead of scanning (`name` must be unique in the
    /// database; an index of that name already there is kept).
    pub fn index(&self, name: &str, table: &str, key: &[String]) -> String {
        let cols: Vec<String> = key.iter().map(|k| (self.quote)(k)).collect();
        format!(
            "CREATE INDEX IF NOT EXISTS {} ON {table} ({})",
            (self.quote)(name),
            cols.join(", ")
        )
    }

    /// The index a destination table keeps on its key (`table` as named,
    /// `sql_table` as SQL writes it), made once and shared by syncs,
    /// consolidations and retries, so their statements find rows by key.
    pub fn key_index(&self, table: &str, sql_table: &str, key: &[String]) -> String {
        self.index(&format!("credvault_key_{table}"), sql_table, key)
    }

    /// An index on a scratch table's key, under a name of its own: the
    /// scratch table may be swapped in, and its index goes with it.
    pub fn scratch_key_index(&self, sql_scratch: &str, key: &[String]) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.index(&format!("credvault_key_{nanos:x}"), sql_scratch, key)
    }

    /// Gives the rows of `table` whose key is in `from` with other values
    /// the values there, in place: the row keeps its other columns, and no
    /// delete trigger or cascade fires.
    pub fn update_changed(
        &self,
        table: &str,
        from: &str,
        columns: &[String],
        key: &[String],
    ) -> String {
        let set = |target: &str| {
            columns
                .iter()
                .filter(|c| !key.contains(c))
                .map(|c| format!("{target}{c} = n.{c}", c = (self.quote)(c)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let (matches, differs) = (
            self.keys_match(table, "n", key),
            self.rows_same(table, "n", columns),
        );
        match self.update_join {
            true => format!(
                "UPDATE {table} JOIN {from} n ON {matches} SET {} WHERE NOT ({differs})",
                set(&format!("{table}."))
            ),
            false => format!(
                "UPDATE {table} SET {} FROM {from} n WHERE {matches} AND NOT ({differs})",
                set("")
            ),
        }
    }

    /// Copies the rows of `from` whose key is not in `table` into it.
    pub fn insert_missing(
        &self,
        table: &str,
        from: &str,
        columns: &[String],
        key: &[String],
    ) -> String {
        let cols: Vec<String> = columns.iter().map(|c| (self.quote)(c)).collect();
        format!(
            "INSERT INTO {table} ({cols}) SELECT {cols} FROM {from} n WHERE NOT EXISTS (SELECT 1 FROM {table} o WHERE {})",
            self.keys_match("o", "n", key),
            cols = cols.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    fn quote(name: &str) -> String {
        format!("\"{name}\"")
    }

    #[test]
    fn statements_match_rows_by_key_and_compare_values_null_safely() {
        let d = Dialect {
            quote,
            same: "IS NOT DISTINCT FROM",
            exact: super::as_is,
            update_join: false,
        };
        let key = vec!["id".to_string()];
        let cols = vec!["id".to_string(), "name".to_string()];
        assert_eq!(
            d.count_changed("s", "t", &cols, &key),
            "SELECT COUNT(*) FROM s n WHERE EXISTS (SELECT 1 FROM t o WHERE o.\"id\" = n.\"id\" AND NOT (o.\"id\" IS NOT DISTINCT FROM n.\"id\" AND o.\"name\" IS NOT DISTINCT FROM n.\"name\"))"
        );
        assert_eq!(
            d.delete_keys("t", "k0", &key),
            "DELETE FROM t WHERE EXISTS (SELECT 1 FROM k0 k WHERE k.\"id\" = t.\"id\")"
        );
    }
}
