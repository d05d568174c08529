//! SQLite through sqlx: a source that streams tables, and a sink that writes
//! each batch with multi-row prepared inserts in one transaction.

pub(crate) mod capability;
pub(crate) mod driver;
pub(crate) mod restore;
mod schema;

use std::path::{Path, PathBuf};
use std::str::FromStr;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, SqlitePool, TypeInfo, ValueRef};
use tokio::sync::mpsc;

use super::merge::Dialect;
use super::{
    Batcher, Bound, Checkpoint, ConnectorError, FailureKind, FreeSpace, Healthcheck, Prepare,
    Prepared, ReadRequest, Readiness, Rejected, Sink, Source, SourceBatch, SqlDestination, Step,
    WriteBatch, free_space_at, integer_key, misfits, readiness,
};
use crate::drivers::Shape;
use crate::model::schema::Schema;
use crate::model::value::{Column, ColumnType, Row, TableInfo, Value, to_text};

/// SQLite's limit on bound parameters in one statement.
const MAX_PARAMS: usize = 32_766;

/// Quotes an identifier for SQLite.
pub(crate) fn ident(name: &str) -> String {
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
    ConnectorError::new(endpoint, err.to_string())
        .of_kind(failure_kind(&err))
        .because(&err)
}

/// What an SQLite error means for a run (the one place SQLite's failures
/// are told apart): SQLITE_FULL, whatever its extended code, is a full
/// disk. A file has no connection to lose.
fn failure_kind(err: &sqlx::Error) -> FailureKind {
    const SQLITE_FULL: i32 = 13;
    let code = match err {
        sqlx::Error::Database(db) => db.code().and_then(|c| c.parse::<i32>().ok()),
        _ => None,
    };
    match code {
        Some(code) if code & 0xff == SQLITE_FULL => FailureKind::Full,
        _ => FailureKind::Other,
    }
}

async fn discover(pool: &SqlitePool, endpoint: &str) -> Result<Vec<TableInfo>, ConnectorError> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(pool)
    .await
    .map_err(|e| sql_error(endpoint, e))?;
    let names = names.into_iter().filter(|n| !super::bookkeeping(n));
    let mut tables = Vec::new();
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
pub(crate) fn raw_value(row: &SqliteRow, i: usize) -> Value {
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

/// An open SQLite database and how to name it in messages.
struct Db {
    role: &'static str,
    path: PathBuf,
    pool: SqlitePool,
}

impl Db {
    fn describe(&self) -> String {
        format!("{} sqlite {}", self.role, self.path.display())
    }

    fn error(&self, err: sqlx::Error) -> ConnectorError {
        self.failed("", err)
    }

    /// A driver error, its text after `context`.
    fn failed(&self, context: &str, err: sqlx::Error) -> ConnectorError {
        ConnectorError::new(self.describe(), format!("{context}{err}")).because(&err)
    }

    /// A failure no driver error caused.
    fn refusal(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::new(self.describe(), message)
    }

    /// A driver error while writing `table`; a full disk says where to
    /// make room.
    fn write_error(&self, table: &str, err: sqlx::Error) -> ConnectorError {
        let kind = failure_kind(&err);
        let message = match kind {
            FailureKind::Full => {
                let folder = self.path.parent().filter(|d| !d.as_os_str().is_empty());
                let place = free_space_place(folder.unwrap_or(Path::new(".")));
                format!(
                    "table `{table}`: the disk is full ({err}): free space on the filesystem of {place}, or move the destination (`path`) to a disk with room"
                )
            }
            _ => format!("table `{table}`: {err}"),
        };
        ConnectorError::new(self.describe(), message)
            .of_kind(kind)
            .because(&err)
    }
}

/// The folder a destination file lives in, as a person finds it.
fn free_space_place(folder: &Path) -> String {
    folder
        .canonicalize()
        .unwrap_or_else(|_| folder.to_path_buf())
        .display()
        .to_string()
}

/// Reads tables from an SQLite file, opened read-only.
pub struct SqliteSource {
    db: Db,
}

impl SqliteSource {
    pub(super) async fn open(path: &Path) -> Result<Self, ConnectorError> {
        let endpoint = format!("source sqlite {}", path.display());
        if !path.exists() {
            return Err(ConnectorError::new(
                endpoint,
                "no such database file; check `source.path`",
            ));
        }
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| sql_error(&endpoint, e))?;
        let db = Db {
            role: "source",
            path: path.to_path_buf(),
            pool,
        };
        Ok(Self { db })
    }
}

/// `SELECT … ORDER BY key [WHERE key > after]`: the stable order a resumed
/// read relies on. Tables without a primary key are ordered by rowid and
/// resumed by skipping rows.
fn read_sql(request: &ReadRequest) -> (String, Vec<Option<String>>) {
    let table = &request.table;
    let columns: Vec<String> = table.columns.iter().map(|c| ident(&c.name)).collect();
    let key: Vec<String> = table.primary_key.iter().map(|k| ident(k)).collect();
    let order = if key.is_empty() {
        "rowid".to_string()
    } else {
        key.join(", ")
    };
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let mut offset = 0;
    match request.after.as_ref() {
        Some(Checkpoint {
            key: Some(last), ..
        }) if !key.is_empty() => {
            let marks = vec!["?"; key.len()].join(", ");
            conditions.push(format!("({}) > ({marks})", key.join(", ")));
            binds.clone_from(last);
        }
        Some(checkpoint) => offset = checkpoint.rows,
        None => {}
    }
    if let (Some(range), [k]) = (request.range, key.as_slice()) {
        conditions.extend(range.lo.map(|lo| format!("{k} >= {lo}")));
        conditions.extend(range.hi.map(|hi| format!("{k} < {hi}")));
    }
    if let Some(since) = &request.since {
        let c = ident(&since.column);
        if let Some(from) = &since.from {
            conditions.push(format!("{c} >= ?"));
            binds.push(Some(from.clone()));
        }
        conditions.push(format!("{c} <= ?"));
        binds.push(Some(since.to.clone()));
    }
    let filter = match conditions.is_empty() {
        true => String::new(),
        false => format!(" WHERE {}", conditions.join(" AND ")),
    };
    let limit = request.limit.map_or(-1, |l| l as i64);
    let sql = format!(
        "SELECT {} FROM {}{filter} ORDER BY {order} LIMIT {limit} OFFSET {offset}",
        columns.join(", "),
        ident(&table.name)
    );
    (sql, binds)
}

#[async_trait]
impl Source for SqliteSource {
    fn describe(&self) -> String {
        self.db.describe()
    }

    async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        discover(&self.db.pool, &self.describe()).await
    }

    async fn count(&self, table: &TableInfo) -> Result<u64, ConnectorError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", ident(&table.name)))
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))?;
        Ok(n as u64)
    }

    async fn key_bounds(&self, table: &TableInfo) -> Result<Option<(i64, i64)>, ConnectorError> {
        let Some(key) = integer_key(table) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT min({0}), max({0}) FROM {1}",
            ident(key),
            ident(&table.name)
        );
        let bounds: (Option<i64>, Option<i64>) = sqlx::query_as(&sql)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))?;
        Ok(bounds.0.zip(bounds.1))
    }

    /// The column's maximum: SQLite has one writer at a time, so every row
    /// a reader sees is committed and none can be added below it later
    /// (unless the application writes cursor values that go back).
    async fn cursor_bound(&self, table: &TableInfo, column: &str) -> Result<Bound, ConnectorError> {
        let sql = format!(
            "SELECT CAST(max({}) AS TEXT) FROM {}",
            ident(column),
            ident(&table.name)
        );
        let to = sqlx::query_scalar(&sql)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))?;
        Ok(Bound {
            to,
            held_back_since: None,
        })
    }

    async fn read(
        &self,
        request: ReadRequest,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        let (sql, binds) = read_sql(&request);
        let mut query = sqlx::query(&sql);
        for value in &binds {
            query = query.bind(value.as_deref());
        }
        let width = request.table.columns.len();
        let first = request.after.as_ref().map_or(0, |c| c.rows) + 1;
        let mut batches = Batcher::new(request.batch_size, first);
        let mut rows = query.fetch(&self.db.pool);
        loop {
            match rows.try_next().await {
                Ok(Some(row)) => {
                    let row = (0..width).map(|i| raw_value(&row, i)).collect();
                    if let Some(batch) = batches.push(row)
                        && tx.send(Ok(batch)).await.is_err()
                    {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = tx.send(Err(self.db.error(e))).await;
                    return;
                }
            }
        }
        if let Some(batch) = batches.finish() {
            let _ = tx.send(Ok(batch)).await;
        }
    }

    /// Reads the tables' schema, the views and the triggers from the
    /// pragmas and `sqlite_schema` (see `schema.rs`).
    async fn schema(&self, tables: &[TableInfo]) -> Result<Option<Schema>, ConnectorError> {
        let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        schema::read(&self.db, &names).await.map(Some)
    }

    /// The pages of the table and its indexes, from SQLite's `dbstat`.
    async fn size_bytes(&self, table: &TableInfo) -> Result<Option<u64>, ConnectorError> {
        let bytes: Option<i64> = sqlx::query_scalar(
            "SELECT SUM(pgsize) FROM dbstat WHERE name IN (SELECT name FROM sqlite_schema WHERE tbl_name = ?)",
        )
        .bind(&table.name)
        .fetch_one(&self.db.pool)
        .await
        .map_err(|e| self.db.error(e))?;
        Ok(bytes.map(|b| b.unsigned_abs()))
    }
}

/// Where a sink keeps its checkpoints, inside the destination database, so
/// they commit in the same transaction as the rows.
const CHECKPOINTS: &str = "_credvault_checkpoints";

/// One connection that writes to an SQLite file (created if missing, with
/// its folder).
pub(crate) async fn writer_pool(path: &Path) -> Result<SqlitePool, ConnectorError> {
    let endpoint = format!("destination sqlite {}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            ConnectorError::new(
                &endpoint,
                format!("cannot create folder {}: {e}", dir.display()),
            )
        })?;
    }
    let options = SqliteConnectOptions::from_str("sqlite://")
        .expect("static url")
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        // Tables written in parallel take turns on SQLite's one writer.
        .busy_timeout(std::time::Duration::from_secs(300));
    SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .map_err(|e| sql_error(&endpoint, e))
}

/// Writes tables into an SQLite file (created if missing).
pub struct SqliteSink {
    db: Db,
}

impl SqliteSink {
    pub(super) async fn open(path: &Path) -> Result<Self, ConnectorError> {
        let endpoint = format!("destination sqlite {}", path.display());
        let pool = writer_pool(path).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (migration TEXT NOT NULL, table_name TEXT NOT NULL, checkpoint TEXT NOT NULL, updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP, PRIMARY KEY (migration, table_name))"
        );
        sqlx::query(&create)
            .execute(&pool)
            .await
            .map_err(|e| sql_error(&endpoint, e))?;
        let db = Db {
            role: "destination",
            path: path.to_path_buf(),
            pool,
        };
        Ok(Self { db })
    }

    async fn check_append(&self, table: &str, columns: &[Column]) -> Result<(), ConnectorError> {
        let existing = discover(&self.db.pool, &self.describe()).await?;
        let existing = existing.iter().find(|t| t.name == table);
        let Some(existing) = existing else {
            return Err(self
                .db
                .refusal(format!("table `{table}` is gone; run again with --restart")));
        };
        let missing: Vec<&str> = columns
            .iter()
            .filter(|c| !existing.columns.iter().any(|e| e.name == c.name))
            .map(|c| c.name.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.db.refusal(format!(
            "cannot append to `{table}`: it has no column(s) {}; rename them in the mapping, or choose another destination table",
            missing.join(", ")
        )))
    }

    /// Creates `table` with `columns`, each of its declared type.
    async fn create(&self, table: &str, columns: &[Column]) -> Result<(), ConnectorError> {
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
        .execute(&self.db.pool)
        .await
        .map_err(|e| self.db.write_error(table, e))?;
        Ok(())
    }

    /// Finds the rows the destination refuses. SQLite undoes only the failed
    /// statement, so the good rows stay in the transaction.
    async fn write_row_by_row(
        &mut self,
        batch: &WriteBatch<'_>,
    ) -> Result<Vec<Rejected>, ConnectorError> {
        let sql = insert_sql(batch.table(), batch.columns, 1);
        let fail = |e| self.db.write_error(batch.table(), e);
        let mut tx = self.db.pool.begin().await.map_err(fail)?;
        let mut rejected = Vec::new();
        for (i, row) in batch.rows.iter().enumerate() {
            let inserted = bind_rows(sqlx::query(&sql), std::slice::from_ref(row))
                .execute(&mut *tx)
                .await;
            match inserted {
                Ok(_) => {}
                Err(e) if !is_row_error(&e) => return Err(fail(e)),
                Err(e) => {
                    let message = match &e {
                        sqlx::Error::Database(db) => db.message().to_string(),
                        other => other.to_string(),
                    };
                    rejected.push((i, message));
                    if batch.all_or_nothing {
                        tx.rollback().await.map_err(fail)?;
                        return Ok(rejected);
                    }
                }
            }
        }
        save_checkpoint(
            &mut tx,
            batch.migration,
            batch.checkpoint_name,
            batch.checkpoint,
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(rejected)
    }
}

/// Whether an error blames the row (a constraint, a type) rather than the
/// file: a full disk refuses every row alike.
fn is_row_error(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(_)) && failure_kind(err) == FailureKind::Other
}

async fn save_checkpoint(
    conn: &mut sqlx::SqliteConnection,
    migration: &str,
    table: &str,
    checkpoint: &Checkpoint,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {CHECKPOINTS} (migration, table_name, checkpoint) VALUES (?, ?, ?)
         ON CONFLICT (migration, table_name) DO UPDATE SET checkpoint = excluded.checkpoint, updated_at = CURRENT_TIMESTAMP"
    );
    let json = serde_json::to_string(checkpoint).expect("checkpoints serialize");
    sqlx::query(&sql)
        .bind(migration)
        .bind(table)
        .bind(json)
        .execute(conn)
        .await?;
    Ok(())
}

#[async_trait]
impl Sink for SqliteSink {
    fn describe(&self) -> String {
        self.db.describe()
    }

    fn concurrent_writers(&self) -> bool {
        true
    }

    async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        let exists: Option<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_schema WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(|e| self.db.error(e))?;
        if exists.is_none() {
            return Ok(None);
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", ident(table)))
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))?;
        Ok(Some(n as u64))
    }

    async fn prepare(
        &mut self,
        _migration: &str,
        table: &str,
        shape: Shape<'_>,
        mode: Prepare,
    ) -> Result<Prepared, ConnectorError> {
        let columns = shape.columns;
        let existing = match mode {
            Prepare::Fresh(_) => self.existing_rows(table).await?,
            Prepare::Resume => None,
        };
        match readiness(mode, existing, table, self.describe())? {
            Readiness::Adopt => self.check_append(table, columns).await?,
            Readiness::Replace => {
                sqlx::query(&format!("DROP TABLE {}", ident(table)))
                    .execute(&self.db.pool)
                    .await
                    .map_err(|e| self.db.error(e))?;
                self.create(table, columns).await?;
            }
            Readiness::Create => self.create(table, columns).await?,
        }
        Ok(Prepared::new(table))
    }

    async fn write(&mut self, batch: WriteBatch<'_>) -> Result<Vec<Rejected>, ConnectorError> {
        let per_chunk = (MAX_PARAMS / batch.columns.len().max(1)).max(1);
        let fail = |e| self.db.write_error(batch.table(), e);
        let mut tx = self.db.pool.begin().await.map_err(fail)?;
        for chunk in batch.rows.chunks(per_chunk) {
            let sql = insert_sql(batch.table(), batch.columns, chunk.len());
            if let Err(err) = bind_rows(sqlx::query(&sql), chunk).execute(&mut *tx).await {
                tx.rollback().await.map_err(fail)?;
                return match is_row_error(&err) {
                    true => self.write_row_by_row(&batch).await,
                    false => Err(fail(err)),
                };
            }
        }
        save_checkpoint(
            &mut tx,
            batch.migration,
            batch.checkpoint_name,
            batch.checkpoint,
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(Vec::new())
    }

    async fn finish(
        &mut self,
        migration: &str,
        prepared: Prepared,
        checkpoint: &Checkpoint,
    ) -> Result<(), ConnectorError> {
        let table = prepared.table();
        let done = Checkpoint {
            done: true,
            ..checkpoint.clone()
        };
        let fail = |e| self.db.write_error(table, e);
        let mut conn = self.db.pool.acquire().await.map_err(fail)?;
        save_checkpoint(&mut conn, migration, table, &done)
            .await
            .map_err(fail)
    }

    async fn committed(
        &self,
        migration: &str,
        table: &str,
    ) -> Result<Option<Checkpoint>, ConnectorError> {
        let sql =
            format!("SELECT checkpoint FROM {CHECKPOINTS} WHERE migration = ? AND table_name = ?");
        let json: Option<String> = sqlx::query_scalar(&sql)
            .bind(migration)
            .bind(table)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| self.db.refusal(e.to_string()).because(&e))
        })
        .transpose()
    }

    async fn drop_table(&mut self, table: &str) -> Result<(), ConnectorError> {
        self.execute(&format!("DROP TABLE IF EXISTS {}", ident(table)))
            .await
    }

    async fn reset(&mut self, migration: &str) -> Result<(), ConnectorError> {
        sqlx::query(&format!("DELETE FROM {CHECKPOINTS} WHERE migration = ?"))
            .bind(migration)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))?;
        Ok(())
    }

    fn healthcheck(&self) -> Option<&dyn Healthcheck> {
        Some(self)
    }

    fn sql(&self) -> Option<&dyn SqlDestination> {
        Some(self)
    }

    fn sql_mut(&mut self) -> Option<&mut dyn SqlDestination> {
        Some(self)
    }
}

#[async_trait]
impl Healthcheck for SqliteSink {
    /// SQLite column names ignore case, and a declared type decides how a
    /// value reads back.
    async fn misfits(
        &self,
        table: &str,
        columns: &[Column],
    ) -> Result<Vec<String>, ConnectorError> {
        let existing = discover(&self.db.pool, &self.describe()).await?;
        Ok(match existing.iter().find(|t| t.name == table) {
            Some(existing) => misfits(existing, columns, true),
            None => vec![format!("table `{table}` does not exist")],
        })
    }

    async fn probe_create(&self) -> Result<(), ConnectorError> {
        let mut tx = self.db.pool.begin().await.map_err(|e| self.db.error(e))?;
        sqlx::query("CREATE TABLE _credvault_probe (x)")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db.failed("cannot create a table: ", e))?;
        tx.rollback().await.map_err(|e| self.db.error(e))
    }

    async fn probe_write(&self, table: &str) -> Result<(), ConnectorError> {
        let mut tx = self.db.pool.begin().await.map_err(|e| self.db.error(e))?;
        let t = ident(table);
        sqlx::query(&format!("INSERT INTO {t} SELECT * FROM {t} WHERE 0"))
            .execute(&mut *tx)
            .await
            .map_err(|e| self.db.failed(&format!("cannot write to `{table}`: "), e))?;
        tx.rollback().await.map_err(|e| self.db.error(e))
    }

    async fn free_space(&self) -> Result<FreeSpace, ConnectorError> {
        let folder = self.db.path.parent().filter(|d| !d.as_os_str().is_empty());
        Ok(free_space_at(folder.unwrap_or(Path::new("."))))
    }
}

#[async_trait]
impl SqlDestination for SqliteSink {
    fn dialect(&self) -> Dialect {
        Dialect {
            quote: ident,
            same: "IS",
            exact: crate::drivers::merge::as_is,
            update_join: false,
        }
    }

    fn sql_name(&self, table: &str) -> String {
        ident(table)
    }

    async fn run_script(
        &mut self,
        migration: &str,
        checkpoint_name: &str,
        steps: &[Step],
        checkpoint: &Checkpoint,
    ) -> Result<Vec<u64>, ConnectorError> {
        let mut tx = self.db.pool.begin().await.map_err(|e| self.db.error(e))?;
        let numbers = run_steps!(tx, steps).map_err(|e| self.db.error(e))?;
        save_checkpoint(&mut tx, migration, checkpoint_name, checkpoint)
            .await
            .map_err(|e| self.db.error(e))?;
        tx.commit().await.map_err(|e| self.db.error(e))?;
        Ok(numbers)
    }

    async fn execute(&mut self, sql: &str) -> Result<(), ConnectorError> {
        sqlx::query(sql)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))?;
        Ok(())
    }

    async fn parents(&self, table: &str) -> Result<Vec<String>, ConnectorError> {
        sqlx::query_scalar("SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?)")
            .bind(table)
            .fetch_all(&self.db.pool)
            .await
            .map_err(|e| self.db.error(e))
    }

    /// The table's root page and its definition: a table made again gets
    /// another of at least one of them, but for a rare page reuse.
    async fn table_identity(&self, table: &str) -> Result<Option<String>, ConnectorError> {
        sqlx::query_scalar(
            "SELECT rootpage || ' ' || sql FROM sqlite_schema WHERE type = 'table' AND name = ?",
        )
        .bind(table)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.db.error(e))
    }

    /// The table's own `CREATE TABLE` under the copy's name (SQLite has no
    /// `LIKE`); its separate indexes stay behind.
    async fn create_like(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError> {
        let sql: Option<String> =
            sqlx::query_scalar("SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = ?")
                .bind(table)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(|e| self.db.error(e))?;
        let Some(definition) = sql.as_deref().and_then(columns_part) else {
            return Err(self
                .db
                .refusal(format!("cannot read the definition of table `{table}`")));
        };
        self.execute(&format!("DROP TABLE IF EXISTS {}", ident(copy)))
            .await?;
        self.execute(&format!("CREATE TABLE {} {definition}", ident(copy)))
            .await
    }

    async fn swap_tables(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError> {
        let mut tx = self.db.pool.begin().await.map_err(|e| self.db.error(e))?;
        let steps = [
            Step::Exec(format!("DROP TABLE IF EXISTS {}", ident(table))),
            Step::Exec(format!(
                "ALTER TABLE {} RENAME TO {}",
                ident(copy),
                ident(table)
            )),
        ];
        run_steps!(tx, &steps).map_err(|e| self.db.error(e))?;
        tx.commit().await.map_err(|e| self.db.error(e))
    }
}

/// What follows the table's name in its `CREATE TABLE`: the parenthesised
/// columns and constraints, and any table options after them.
fn columns_part(create: &str) -> Option<&str> {
    let head = create.get(..12)?;
    if !head.eq_ignore_ascii_case("CREATE TABLE") {
        return None;
    }
    let rest = create[12..].trim_start();
    let name_end = match rest.chars().next()? {
        q @ ('"' | '`' | '[') => {
            let close = if q == '[' { ']' } else { q };
            let mut i = 1;
            let bytes = rest.as_bytes();
            loop {
                let at = i + rest[i..].find(close)?;
                // A doubled quote is a quote inside the name.
                if close != ']' && bytes.get(at + 1) == Some(&(close as u8)) {
                    i = at + 2;
                    continue;
                }
                break at + 1;
            }
        }
        _ => rest.find(|c: char| c == '(' || c.is_whitespace())?,
    };
    let after = rest[name_end..].trim_start();
    after.starts_with('(').then_some(after)
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

/// A query on SQLite with its bound values.
pub(crate) type Query<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_rows<'q>(mut query: Query<'q>, rows: &'q [Row]) -> Query<'q> {
    for row in rows {
        for value in row {
            query = bind_value(query, value);
        }
    }
    query
}

/// Binds one value in the form this sink stores it (temporal values and
/// UUIDs as their ISO text).
pub(crate) fn bind_value<'q>(query: Query<'q>, value: &'q Value) -> Query<'q> {
    match value {
        Value::Null => query.bind(None::<i64>),
        Value::Boolean(b) => query.bind(*b),
        Value::Int(i) => query.bind(*i),
        // SQLite turns a NaN REAL into NULL; as text it survives.
        Value::Float(f) if f.is_nan() => query.bind("NaN"),
        Value::Float(f) => query.bind(*f),
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) => query.bind(s.as_str()),
        Value::Bytes(b) => query.bind(b.as_slice()),
        other => query.bind(to_text(other)),
    }
}
