//! An example transform plugin that enriches each row from a lookup table
//! through a database connection the migration file grants it: for each
//! batch it collects the distinct keys, asks the database once (in chunks of
//! 500 keys), and adds the looked-up columns to every row.
//!
//! ```toml
//! [connections.crm]
//! type = "postgres"
//! database = "crm"
//! user = "reader"
//! password_env = "CRM_PW"
//!
//! [[tables.transforms]]
//! plugin = "credvault_example_db_lookup.wasm"
//! config = { connection = "crm", table = "countries", key = "code", on = "country", add = ["name", "region"] }
//! grants = { db = [{ connection = "crm" }] }
//! ```
//!
//! Build it with
//! `cargo build -p credvault-example-db-lookup --target wasm32-wasip2 --release`.

use std::collections::HashMap;

use credvault_sdk::db::Connection;
use credvault_sdk::prelude::*;

/// Keys per lookup query: well under every database's placeholder limit.
const KEYS_PER_QUERY: usize = 500;

/// The plugin's settings.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The granted connection (`[connections.<name>]`).
    pub connection: String,
    /// The lookup table.
    pub table: String,
    /// The lookup table's key column.
    pub key: String,
    /// The input column whose value is looked up by `key`.
    pub on: String,
    /// The lookup table's columns to add to each row, under their own names.
    pub add: Vec<String>,
    /// How the SQL is written: placeholders and quoted names.
    #[serde(default)]
    pub dialect: Dialect,
    /// What a row whose key is not in the table gets.
    #[serde(default)]
    pub missing: Missing,
}

/// The SQL dialect of the connection.
#[derive(serde::Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// `$1` placeholders, `"name"` quoting.
    #[default]
    Postgres,
    /// `?` placeholders, `` `name` `` quoting (also MariaDB).
    Mysql,
    /// `?` placeholders, `"name"` quoting.
    Sqlite,
}

/// What a row whose key is not found gets.
#[derive(serde::Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Missing {
    /// The added columns are null.
    #[default]
    Null,
    /// The row fails, naming the key.
    Error,
}

impl Dialect {
    fn quote(self, name: &str) -> String {
        match self {
            Dialect::Mysql => format!("`{}`", name.replace('`', "``")),
            _ => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }
}

/// A configured lookup: the connection, the SQL pieces and this batch's
/// answers by key.
pub struct DbLookup {
    db: Connection,
    config: Config,
    on: usize,
    select: String,
    found: HashMap<String, Vec<Value>>,
}

/// A key's identity in the cache: its value as the plugin sees it.
fn cache_key(value: &Value) -> String {
    format!("{value:?}")
}

impl Transform for DbLookup {
    type Config = Config;

    fn configure(_ctx: &Context, config: Config, input: &Schema) -> Result<(Self, Schema), String> {
        let on = input
            .iter()
            .position(|c| c.name == config.on)
            .ok_or_else(|| format!("`on`: the input has no column `{}`", config.on))?;
        if let Some(clash) = config
            .add
            .iter()
            .find(|a| input.iter().any(|c| &c.name == *a))
        {
            return Err(format!(
                "`add`: the input already has a column `{clash}`; rename it in the column mapping first"
            ));
        }
        if config.add.is_empty() {
            return Err("`add`: name at least one column of the lookup table".into());
        }
        let d = config.dialect;
        let columns: Vec<String> = std::iter::once(&config.key)
            .chain(&config.add)
            .map(|c| d.quote(c))
            .collect();
        let select = format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            d.quote(&config.table)
        );
        let db = Connection::open(&config.connection).map_err(String::from)?;
        // An empty read gives the lookup columns' real types.
        let probe = db
            .query(&format!("{select} WHERE 1 = 0"), &[])
            .map_err(|e| format!("reading table `{}`: {e}", config.table))?;
        let mut output = input.clone();
        output.extend(
            probe
                .columns
                .iter()
                .skip(1)
                .map(|c| Column::new(&c.name, c.type_)),
        );
        let lookup = DbLookup {
            db,
            on,
            select,
            found: HashMap::new(),
            config,
        };
        Ok((lookup, output))
    }

    fn begin_batch(&mut self, rows: &[Vec<Value>]) -> Result<(), String> {
        self.found.clear();
        let mut keys: Vec<&Value> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for row in rows {
            let key = &row[self.on];
            if !matches!(key, Value::Null) && seen.insert(cache_key(key)) {
                keys.push(key);
            }
        }
        for chunk in keys.chunks(KEYS_PER_QUERY) {
            let d = self.config.dialect;
            let marks: Vec<String> = (1..=chunk.len()).map(|n| d.placeholder(n)).collect();
            let sql = format!(
                "{} WHERE {} IN ({})",
                self.select,
                d.quote(&self.config.key),
                marks.join(", ")
            );
            let params: Vec<Value> = chunk.iter().map(|v| (*v).clone()).collect();
            let result = self.db.query(&sql, &params).map_err(String::from)?;
            for mut row in result.rows {
                let key = row.remove(0);
                self.found.insert(cache_key(&key), row);
            }
        }
        Ok(())
    }

    fn transform_row(&mut self, mut row: Row) -> Outcome {
        let key = row.values()[self.on].clone();
        let added = match self.found.get(&cache_key(&key)) {
            Some(values) => values.clone(),
            None if matches!(key, Value::Null) || self.config.missing == Missing::Null => {
                vec![Value::Null; self.config.add.len()]
            }
            None => {
                let message = format!(
                    "no row of `{}` has {} = {}",
                    self.config.table,
                    self.config.key,
                    key.describe()
                );
                return Outcome::Error(RowError::new(message).column(&self.config.on));
            }
        };
        row.values_mut().extend(added);
        Outcome::keep(row)
    }
}

export_transform!(DbLookup);

#[cfg(test)]
mod tests {
    use super::*;
    use credvault_sdk::db::QueryResult;
    use credvault_sdk::testing::{fake_db, run_transform};

    fn countries(_sql: &str, params: &[Value]) -> Result<QueryResult, credvault_sdk::db::DbError> {
        let table = [("FR", "France"), ("DE", "Germany")];
        let rows = table
            .iter()
            .filter(|(code, _)| params.contains(&Value::Text(code.to_string())))
            .map(|(code, name)| vec![Value::Text(code.to_string()), Value::Text(name.to_string())])
            .collect();
        Ok(QueryResult {
            columns: vec![
                Column::new("code", ColumnType::Text),
                Column::new("name", ColumnType::Text),
            ],
            rows,
        })
    }

    fn config(missing: &str) -> String {
        format!(
            r#"{{"connection": "crm", "table": "countries", "key": "code", "on": "country", "add": ["name"], "missing": "{missing}"}}"#
        )
    }

    fn schema() -> Schema {
        vec![
            Column::new("id", ColumnType::Int),
            Column::new("country", ColumnType::Text),
        ]
    }

    fn row(id: i64, country: &str) -> Vec<Value> {
        vec![Value::Int(id), country.into()]
    }

    #[test]
    fn rows_are_enriched_with_one_query_per_batch() {
        let fake = fake_db("crm", countries);
        let rows = vec![row(1, "FR"), row(2, "DE"), row(3, "FR"), row(4, "XX")];
        let (out_schema, out) = run_transform::<DbLookup>(&config("null"), schema(), rows).unwrap();
        assert_eq!(out_schema.last().unwrap().name, "name");
        assert_eq!(
            out,
            vec![
                Outcome::Keep(vec![Value::Int(1), "FR".into(), "France".into()]),
                Outcome::Keep(vec![Value::Int(2), "DE".into(), "Germany".into()]),
                Outcome::Keep(vec![Value::Int(3), "FR".into(), "France".into()]),
                Outcome::Keep(vec![Value::Int(4), "XX".into(), Value::Null]),
            ]
        );
        let calls = fake.calls();
        assert_eq!(calls.len(), 2, "the probe, then one lookup: {calls:?}");
        assert_eq!(
            calls[1].0,
            r#"SELECT "code", "name" FROM "countries" WHERE "code" IN ($1, $2, $3)"#
        );
    }

    #[test]
    fn a_missing_key_can_be_a_row_error() {
        fake_db("crm", countries);
        let (_, out) =
            run_transform::<DbLookup>(&config("error"), schema(), vec![row(1, "XX")]).unwrap();
        let Outcome::Error(e) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(
            e.message
                .contains("no row of `countries` has code = text \"XX\""),
            "{e:?}"
        );
    }

    #[test]
    fn without_a_connection_configure_says_where_db_works() {
        let err = run_transform::<DbLookup>(&config("null"), schema(), vec![]).unwrap_err();
        assert!(
            err.contains("only available inside the credvault host"),
            "{err}"
        );
    }
}
