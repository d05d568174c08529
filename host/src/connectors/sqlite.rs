//! SQLite through sqlx: a source that streams tables, and a sink that writes
//! each batch with multi-row prepared inserts in one transaction.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, SqlitePool, TypeInfo, ValueRef};
use tokio::sync::mpsc;

use super::{ConnectorError, Rejected, SourceBatch};
use crate::config::IfExists;
use crate::value::{Column, ColumnType, Row, TableInfo, Value, to_text};

/// SQLite's limit on bound parameters in one statement.
const MAX_PARAMS: usize = 32_766;

/// Quotes an identifier for SQLite.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The column type for an SQLite declared type (see README's type table).
pub fn type_from_declared(declared: &str) -> ColumnType {
    let d = declared.to_ascii_uppercase();
    let has = |s: &str| d.contains(s);
    match () {
        _ if has("BOOL") => ColumnType::Boolean,
        _ if has("TIMESTAMPTZ") => ColumnType::Timestamptz,
        _ if has("TIMESTAMP") || has("DATETIME") => ColumnType::Timestamp,
        _ if has("DATE") => ColumnType::Date,
        _ if has("TIME") => ColumnType::Time,
        _ if has("UUID") => ColumnType::Uuid,
        _ if has("JSON") => ColumnType::Json,
        _ if has("DECIMAL") || has("NUMERIC") => ColumnType::Decimal,
        _ if has("INT") => ColumnType::Int,
        _ if has("CHAR") || has("CLOB") || has("TEXT") => ColumnType::Text,
        _ if has("REAL") || has("FLOA") || has("DOUB") => ColumnType::Float,
        _ if d.is_empty() || has("BLOB") => ColumnType::Bytes,
        _ => ColumnType::Text,
    }
}

/// The declared type a sink gives a column. Types SQLite lacks are kept as
/// text with a declared name that round-trips (and has TEXT affinity, so
/// SQLite never turns "1.10" into 1.1).
pub fn declared_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Boolean => "BOOLEAN",
        ColumnType::Int => "INTEGER",
        ColumnType::Float => "REAL",
        ColumnType::Decimal => "DECIMAL_TEXT",
        ColumnType::Text => "TEXT",
        ColumnType::Bytes => "BLOB",
        ColumnType::Date => "DATE_TEXT",
        ColumnType::Time => "TIME_TEXT",
        ColumnType::Timestamp => "TIMESTAMP_TEXT",
        ColumnType::Timestamptz => "TIMESTAMPTZ_TEXT",
        ColumnType::Uuid => "UUID_TEXT",
        ColumnType::Json => "JSON_TEXT",
    }
}

fn sql_error(endpoint: &str, err: sqlx::Error) -> ConnectorError {
    ConnectorError {
        endpoint: endpoint.to_string(),
        message: err.to_string(),
    }
}

async fn discover(pool: &SqlitePool, endpoint: &str) -> Result<Vec<TableInfo>, ConnectorError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error(endpoint, e))?;
    let mut tables = Vec::with_capacity(names.len());
    for name in names {
        let info = sqlx::query(&format!("PRAGMA table_info({})", ident(&name)))
            .fetch_all(pool)
            .await
            .map_err(|e| sql_error(endpoint, e))?;
        let mut pk: Vec<(i64, String)> = Vec::new();
        let columns = info
            .iter()
            .map(|r| {
                let col: String = r.get("name");
                let declared: String = r.get("type");
                let notnull: i64 = r.get("notnull");
                let pk_pos: i64 = r.get("pk");
                if pk_pos > 0 {
                    pk.push((pk_pos, col.clone()));
                }
                Column {
                    name: col,
                    type_: type_from_declared(&declared),
                    nullable: notnull == 0 && pk_pos == 0,
                }
            })
            .collect();
        pk.sort();
        tables.push(TableInfo {
            name,
            columns,
            primary_key: pk.into_iter().map(|(_, c)| c).collect(),
            approx_rows: None,
        });
    }
    Ok(tables)
}

/// The raw value SQLite stored; the mapping stage converts it to the
/// column's type (so a stray value becomes a row error, not a crash).
fn raw_value(row: &SqliteRow, i: usize) -> Value {
    let Ok(raw) = row.try_get_raw(i) else {
        return Value::Null;
    };
    if raw.is_null() {
        return Value::Null;
    }
    match raw.type_info().name() {
        "INTEGER" => row.try_get::<i64, _>(i).map_or(Value::Null, Value::Int),
        "REAL" => row.try_get::<f64, _>(i).map_or(Value::Null, Value::Float),
        "BLOB" => row
            .try_get::<Vec<u8>, _>(i)
            .map_or(Value::Null, Value::Bytes),
        _ => row.try_get::<String, _>(i).map_or(Value::Null, Value::Text),
    }
}

/// Reads tables from an SQLite file, opened read-only.
pub struct SqliteSource {
    path: PathBuf,
    pool: SqlitePool,
}

impl SqliteSource {
    pub(super) async fn open(path: &Path) -> Result<Self, ConnectorError> {
        let endpoint = format!("source sqlite {}", path.display());
        if !path.exists() {
            return Err(ConnectorError {
                endpoint,
                message: "no such database file; check `source.path`".into(),
            });
        }
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| sql_error(&endpoint, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            pool,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn endpoint(&self) -> String {
        format!("source sqlite {}", self.path.display())
    }

    pub(super) async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        discover(&self.pool, &self.endpoint()).await
    }

    pub(super) async fn count(&self, table: &str) -> Result<u64, ConnectorError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", ident(table)))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| sql_error(&self.endpoint(), e))?;
        Ok(n as u64)
    }

    pub(super) async fn read(
        &self,
        table: &TableInfo,
        batch_size: usize,
        limit: Option<u64>,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        let columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
        let limit = limit.map_or(-1, |l| l as i64);
        let sql = format!(
            "SELECT {} FROM {} LIMIT ?",
            columns.join(", "),
            ident(&table.name)
        );
        let mut rows = sqlx::query(&sql).bind(limit).fetch(&self.pool);
        let mut batch = SourceBatch {
            rows: Vec::with_capacity(batch_size),
            first: 1,
        };
        let mut read = 0u64;
        loop {
            match rows.try_next().await {
                Ok(Some(row)) => {
                    read += 1;
                    batch
                        .rows
                        .push((0..columns.len()).map(|i| raw_value(&row, i)).collect());
                    if batch.rows.len() == batch_size {
                        let next = SourceBatch {
                            rows: Vec::with_capacity(batch_size),
                            first: read + 1,
                        };
                        if tx
                            .send(Ok(std::mem::replace(&mut batch, next)))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(sql_error(&self.endpoint(), e))).await;
                    return;
                }
            }
        }
        if !batch.rows.is_empty() {
            let _ = tx.send(Ok(batch)).await;
        }
    }
}

/// Writes tables into an SQLite file (created if missing).
pub struct SqliteSink {
    path: PathBuf,
    pool: SqlitePool,
}

impl SqliteSink {
    pub(super) async fn open(path: &Path) -> Result<Self, ConnectorError> {
        let endpoint = format!("destination sqlite {}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| ConnectorError {
                endpoint: endpoint.clone(),
                message: format!("cannot create folder {}: {e}", dir.display()),
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")
            .expect("static url")
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| sql_error(&endpoint, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            pool,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn endpoint(&self) -> String {
        format!("destination sqlite {}", self.path.display())
    }

    fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError {
            endpoint: self.endpoint(),
            message: message.into(),
        }
    }

    pub(super) async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| sql_error(&self.endpoint(), e))?;
        if exists.is_none() {
            return Ok(None);
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", ident(table)))
            .fetch_one(&self.pool)
            .await
            .map_err(|e| sql_error(&self.endpoint(), e))?;
        Ok(Some(n as u64))
    }

    pub(super) async fn prepare(
        &mut self,
        table: &str,
        columns: &[Column],
        if_exists: IfExists,
    ) -> Result<(), ConnectorError> {
        if let Some(rows) = self.existing_rows(table).await? {
            match if_exists {
                IfExists::Fail => {
                    return Err(self.error(format!(
                        "table `{table}` already exists with {rows} rows; set if_exists = \"append\" or \"replace\" for it, or choose another destination table"
                    )));
                }
                IfExists::Replace => {
                    sqlx::query(&format!("DROP TABLE {}", ident(table)))
                        .execute(&self.pool)
                        .await
                        .map_err(|e| sql_error(&self.endpoint(), e))?;
                }
                IfExists::Append => return self.check_append(table, columns).await,
            }
        }
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                format!("{} {}{null}", ident(&c.name), declared_type(c.type_))
            })
            .collect();
        sqlx::query(&format!(
            "CREATE TABLE {} ({})",
            ident(table),
            defs.join(", ")
        ))
        .execute(&self.pool)
        .await
        .map_err(|e| sql_error(&self.endpoint(), e))?;
        Ok(())
    }

    async fn check_append(&self, table: &str, columns: &[Column]) -> Result<(), ConnectorError> {
        let existing = discover(&self.pool, &self.endpoint()).await?;
        let existing = existing
            .iter()
            .find(|t| t.name == table)
            .expect("table exists");
        let missing: Vec<&str> = columns
            .iter()
            .filter(|c| !existing.columns.iter().any(|e| e.name == c.name))
            .map(|c| c.name.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.error(format!(
            "cannot append to `{table}`: it has no column(s) {}; rename them in the mapping or use if_exists = \"replace\"",
            missing.join(", ")
        )))
    }

    pub(super) async fn write(
        &mut self,
        table: &str,
        columns: &[Column],
        rows: &[Row],
        all_or_nothing: bool,
    ) -> Result<Vec<Rejected>, ConnectorError> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let per_chunk = (MAX_PARAMS / columns.len().max(1)).max(1);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| sql_error(&self.endpoint(), e))?;
        let mut failed = false;
        for chunk in rows.chunks(per_chunk) {
            let sql = insert_sql(table, columns, chunk.len());
            if bind_rows(sqlx::query(&sql), chunk)
                .execute(&mut *tx)
                .await
                .is_err()
            {
                failed = true;
                break;
            }
        }
        if !failed {
            tx.commit()
                .await
                .map_err(|e| sql_error(&self.endpoint(), e))?;
            return Ok(Vec::new());
        }
        tx.rollback()
            .await
            .map_err(|e| sql_error(&self.endpoint(), e))?;
        self.write_row_by_row(table, columns, rows, all_or_nothing)
            .await
    }

    /// Finds the rows the destination refuses. SQLite undoes only the failed
    /// statement, so the good rows stay in the transaction.
    async fn write_row_by_row(
        &mut self,
        table: &str,
        columns: &[Column],
        rows: &[Row],
        all_or_nothing: bool,
    ) -> Result<Vec<Rejected>, ConnectorError> {
        let sql = insert_sql(table, columns, 1);
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| sql_error(&self.endpoint(), e))?;
        let mut rejected = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if let Err(err) = bind_rows(sqlx::query(&sql), std::slice::from_ref(row))
                .execute(&mut *tx)
                .await
            {
                let message = match &err {
                    sqlx::Error::Database(db) => db.message().to_string(),
                    other => {
                        return Err(sql_error(
                            &self.endpoint(),
                            sqlx::Error::Protocol(other.to_string()),
                        ));
                    }
                };
                rejected.push((i, message));
                if all_or_nothing {
                    tx.rollback()
                        .await
                        .map_err(|e| sql_error(&self.endpoint(), e))?;
                    return Ok(rejected);
                }
            }
        }
        tx.commit()
            .await
            .map_err(|e| sql_error(&self.endpoint(), e))?;
        Ok(rejected)
    }

    pub(super) async fn read_back(
        &self,
        table: &str,
        limit: u64,
    ) -> Result<Vec<Row>, ConnectorError> {
        let sql = format!("SELECT * FROM {} LIMIT ?", ident(table));
        let rows = sqlx::query(&sql)
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| sql_error(&self.endpoint(), e))?;
        Ok(rows
            .iter()
            .map(|r| (0..r.columns().len()).map(|i| raw_value(r, i)).collect())
            .collect())
    }
}

fn insert_sql(table: &str, columns: &[Column], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let one = format!("({})", vec!["?"; columns.len()].join(","));
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        ident(table),
        names.join(", "),
        vec![one; rows].join(",")
    )
}

type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_rows<'q>(mut query: Query<'q>, rows: &'q [Row]) -> Query<'q> {
    for row in rows {
        for value in row {
            query = match value {
                Value::Null => query.bind(None::<i64>),
                Value::Boolean(b) => query.bind(*b),
                Value::Int(i) => query.bind(*i),
                Value::Float(f) => query.bind(*f),
                Value::Text(s) | Value::Decimal(s) | Value::Json(s) => query.bind(s.as_str()),
                Value::Bytes(b) => query.bind(b.as_slice()),
                other => query.bind(to_text(other)),
            };
        }
    }
    query
}
