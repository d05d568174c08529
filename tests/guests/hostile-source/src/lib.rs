//! A source with two tables: `good` reads three rows; `bad` misbehaves as
//! `mode` says, to prove each misbehaviour is stopped with a clear error
//! while the host, and the other table, carry on.
//!
//! Modes: `giant` (a batch far larger than asked for), `http` (a host not on
//! the allow-list), `read-dir` (a directory not granted), `write-dir` (a
//! file in a directory granted read-only), `db-query` / `db-execute` (open
//! database connection `connection` and run `sql` on it: a connection not
//! granted, a write through a read-only grant, a result over the row cap, a
//! statement past the timeout, an SQLite `ATTACH`), `empty` (empty batches
//! that never end the table), `endless` (rows that never end),
//! `duplicate-columns` (`id` declared twice),
//! `columns` (`columns` int columns), `not-null` (a NOT NULL `name` that
//! row 3 leaves null), `wrong-type` (an int `score` that row 3 fills with
//! text `"ABC123"`), `huge-position` (a 1 MiB position with its rows).

use credvault_sdk::prelude::*;

#[derive(serde::Deserialize)]
struct Config {
    mode: String,
    #[serde(default)]
    connection: String,
    #[serde(default)]
    sql: String,
    #[serde(default)]
    columns: usize,
}

struct Hostile;

enum Table {
    Good {
        next: i64,
    },
    Bad {
        mode: String,
        connection: String,
        sql: String,
    },
    Rows {
        rows: Vec<Vec<Value>>,
    },
}

fn info(name: &str) -> TableInfo {
    TableInfo {
        name: name.into(),
        columns: vec![Column::new("id", ColumnType::Int)],
        primary_key: vec!["id".into()],
        approx_rows: None,
    }
}

impl Source for Hostile {
    type Config = Config;
    type Reader = Table;

    fn check(_: &Config) -> Result<(), String> {
        Ok(())
    }

    fn discover(config: &Config) -> Result<Vec<TableInfo>, String> {
        let mut bad = info("bad");
        bad.columns = match config.mode.as_str() {
            "duplicate-columns" => vec![
                Column::new("id", ColumnType::Int),
                Column::new("id", ColumnType::Int),
            ],
            "columns" => (0..config.columns.max(1))
                .map(|i| {
                    Column::new(
                        if i == 0 { "id".into() } else { format!("c{i}") },
                        ColumnType::Int,
                    )
                })
                .collect(),
            "not-null" => vec![
                Column::new("id", ColumnType::Int),
                Column::new("name", ColumnType::Text).not_null(),
            ],
            "wrong-type" => vec![
                Column::new("id", ColumnType::Int),
                Column::new("score", ColumnType::Int),
            ],
            _ => bad.columns,
        };
        Ok(vec![bad, info("good")])
    }

    fn open(config: &Config, table: &str, _after: Option<&str>) -> Result<Table, String> {
        Ok(match table {
            "good" => Table::Good { next: 1 },
            _ if config.mode == "endless" => Table::Good { next: i64::MIN },
            _ if config.mode == "not-null" || config.mode == "wrong-type" => Table::Rows {
                rows: five_rows(&config.mode),
            },
            _ => Table::Bad {
                mode: config.mode.clone(),
                connection: config.connection.clone(),
                sql: config.sql.clone(),
            },
        })
    }
}

/// Five rows of `id` and a second column; row 3's second value breaks
/// the declared schema as `mode` says.
fn five_rows(mode: &str) -> Vec<Vec<Value>> {
    (1..=5)
        .map(|i| {
            let second = match (mode, i) {
                ("not-null", 3) => Value::Null,
                ("not-null", _) => Value::Text(format!("person {i}")),
                (_, 3) => Value::Text("ABC123".into()),
                _ => Value::Int(i * 10),
            };
            vec![Value::Int(i), second]
        })
        .collect()
}

fn ids(range: std::ops::RangeInclusive<i64>) -> Vec<Vec<Value>> {
    range.map(|i| vec![Value::Int(i)]).collect()
}

impl Reader for Table {
    fn next(&mut self, max_rows: usize) -> Result<Option<SourceBatch>, String> {
        let rows = match self {
            Table::Good { next } if *next < 0 => {
                // Endless: ids count up from 1 (offset from i64::MIN) forever.
                let from = *next - i64::MIN + 1;
                *next += max_rows as i64;
                ids(from..=from + max_rows as i64 - 1)
            }
            Table::Good { next } if *next > 3 => return Ok(None),
            Table::Rows { rows } if rows.is_empty() => return Ok(None),
            Table::Rows { rows } => {
                let take = max_rows.min(rows.len());
                rows.drain(..take).collect()
            }
            Table::Bad { mode, .. } if mode == "empty" => Vec::new(),
            Table::Bad { mode, .. } if mode == "huge-position" => {
                return Ok(Some(SourceBatch {
                    rows: ids(1..=3),
                    position: "x".repeat(1 << 20),
                }));
            }
            Table::Bad { mode, .. } if mode == "duplicate-columns" || mode == "columns" => {
                return Ok(None);
            }
            Table::Good { next } => {
                let last = (*next + max_rows as i64 - 1).min(3);
                let rows = ids(*next..=last);
                *next = last + 1;
                rows
            }
            Table::Bad {
                mode,
                connection,
                sql,
            } if mode.starts_with("db-") => return Err(reach_db(mode, connection, sql)),
            Table::Bad { mode, .. } => misbehave(mode, max_rows)?,
        };
        Ok(Some(SourceBatch {
            position: rows.len().to_string(),
            rows,
        }))
    }
}

fn misbehave(mode: &str, max_rows: usize) -> Result<Vec<Vec<Value>>, String> {
    match mode {
        "giant" => Ok(ids(1..=(max_rows as i64 + 1000))),
        "http" => credvault_sdk::http::get("http://169.254.169.254/latest/meta-data/")
            .map(|_| Vec::new())
            .map_err(String::from),
        "read-dir" => std::fs::read_to_string("secrets/key.txt")
            .map(|_| Vec::new())
            .map_err(|e| format!("reading secrets/key.txt: {e}")),
        "write-dir" => std::fs::write("data/planted.txt", "x")
            .map(|_| Vec::new())
            .map_err(|e| format!("writing data/planted.txt: {e}")),
        other => Err(format!("unknown mode {other}")),
    }
}

/// Runs `sql` on `connection`; every outcome is an error, so the table stops
/// with what the host said (or with the news that it let this through).
fn reach_db(mode: &str, connection: &str, sql: &str) -> String {
    let db = match credvault_sdk::db::Connection::open(connection) {
        Ok(db) => db,
        Err(e) => return format!("opening {connection}: {e}"),
    };
    let outcome = match mode {
        "db-execute" => db.execute(sql, &[]).map(|n| format!("{n} rows changed")),
        _ => db
            .query(sql, &[])
            .map(|r| format!("{} rows read", r.rows.len())),
    };
    match outcome {
        Ok(done) => format!("the host let this through: {done}"),
        Err(e) => format!("running {sql}: {e}"),
    }
}

export_source!(Hostile);
