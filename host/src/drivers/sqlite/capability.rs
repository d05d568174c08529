//! The `db` capability on an SQLite file: opened read-only (and
//! `query_only`) unless the grant allows writes, with `ATTACH` disabled (it
//! would open any other database file on this machine, or create one; it
//! also stops `VACUUM INTO`), one statement per call, and a progress
//! handler that interrupts a statement at the grant's deadline.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use futures_util::TryStreamExt;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions};
use sqlx::{Column as _, Executor, Row as _, Statement as _, TypeInfo as _};

use async_trait::async_trait;

use crate::capabilities::db::{
    Collector, ConnectError, DbConnector, DbError, DbLimits, DbSession, QueryResult, column,
};
use crate::drivers::sqlite::{Query, bind_value, raw_value, type_from_declared};
use crate::model::value::{Column, Value};

/// Virtual-machine steps between two looks at the deadline.
const PROGRESS_STEPS: i32 = 1_000;

/// SQLite's primary result code for a write to a read-only database.
const SQLITE_READONLY: i64 = 8;

/// An open SQLite file.
pub(crate) struct LiteDb {
    pool: SqlitePool,
}

impl LiteDb {
    /// Opens `path`, which must exist; read-only unless `write`.
    pub(super) async fn open(path: &Path, write: bool) -> Result<Self, ConnectError> {
        if !path.is_file() {
            return Err(ConnectError::new(
                "its SQLite file does not exist (check the connection's `path`)",
            ));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .read_only(!write)
            .create_if_missing(false);
        let options = match write {
            true => options,
            false => options.pragma("query_only", "ON"),
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .after_connect(|conn, _| Box::pin(forbid_attach(conn)))
            .connect_with(options)
            .await
            .map_err(|e| ConnectError::caused(e.to_string(), e))?;
        Ok(Self { pool })
    }

    /// Runs a statement that returns rows.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[Value],
        limits: DbLimits,
    ) -> Result<QueryResult, DbError> {
        let mut conn = self.pool.acquire().await.map_err(driver)?;
        one_statement(&mut conn, sql).await?;
        let timed_out = watch_deadline(&mut conn, limits).await?;
        let mut rows = Collector::new(limits);
        let mut columns = None;
        let outcome = async {
            let mut stream = bind_all(sqlx::query(sql), params).fetch(&mut *conn);
            while let Some(row) = stream.try_next().await.map_err(driver)? {
                if columns.is_none() {
                    columns = Some(result_columns(row.columns(), &row));
                }
                rows.push((0..row.len()).map(|i| raw_value(&row, i)).collect())?;
            }
            Ok::<(), DbError>(())
        }
        .await;
        let outcome = finish(&mut conn, outcome, &timed_out).await;
        outcome?;
        let columns = match columns {
            Some(columns) => columns,
            None => {
                let statement = (&mut *conn).prepare(sql).await.map_err(driver)?;
                statement
                    .columns()
                    .iter()
                    .map(|c| column(c.name(), type_from_declared(c.type_info().name())))
                    .collect()
            }
        };
        Ok(QueryResult {
            columns,
            rows: rows.rows,
        })
    }

    /// Runs a statement that changes rows.
    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        limits: DbLimits,
    ) -> Result<u64, DbError> {
        let mut conn = self.pool.acquire().await.map_err(driver)?;
        one_statement(&mut conn, sql).await?;
        let timed_out = watch_deadline(&mut conn, limits).await?;
        let outcome = bind_all(sqlx::query(sql), params)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
            .map_err(driver);
        finish(&mut conn, outcome, &timed_out).await
    }
}

/// Turns off `ATTACH` on a fresh connection: the plugin may reach this file
/// only, never another database file on this machine.
async fn forbid_attach(conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
    let mut handle = conn.lock_handle().await?;
    let raw = handle.as_raw_handle().as_ptr();
    // SAFETY: `raw` is the live handle of the connection locked above, and
    // sqlite3_limit only reads and sets an integer on it.
    #[allow(unsafe_code)]
    unsafe {
        libsqlite3_sys::sqlite3_limit(raw, libsqlite3_sys::SQLITE_LIMIT_ATTACHED, 0);
    }
    Ok(())
}

/// Refuses SQL holding more than one statement, before any of it runs:
/// sqlx would run them all, one after the other. Each statement is only
/// prepared here (compiled, not run); what is left after the first must be
/// nothing, whitespace, comments or `;`.
async fn one_statement(conn: &mut SqliteConnection, sql: &str) -> Result<(), DbError> {
    use libsqlite3_sys::{SQLITE_OK, sqlite3_finalize, sqlite3_prepare_v2};
    let mut handle = conn.lock_handle().await.map_err(driver)?;
    let raw = handle.as_raw_handle().as_ptr();
    let mut rest = sql.as_bytes();
    let mut statements = 0;
    while !rest.is_empty() {
        let mut statement = std::ptr::null_mut();
        let mut tail = std::ptr::null();
        let len =
            std::os::raw::c_int::try_from(rest.len()).map_err(|_| DbError::SeveralStatements)?;
        // SAFETY: `raw` is the live handle locked above; `rest` outlives
        // the call and its length is passed, so SQLite reads within it;
        // `tail` points into `rest`; a prepared statement is finalized.
        #[allow(unsafe_code)]
        let rc = unsafe {
            let rc = sqlite3_prepare_v2(raw, rest.as_ptr().cast(), len, &mut statement, &mut tail);
            if !statement.is_null() {
                sqlite3_finalize(statement);
            }
            rc
        };
        if !statement.is_null() {
            statements += 1;
        }
        // A later statement that does not compile yet may compile once the
        // first has run (a table it creates): refuse, never run the first.
        if statements > 1 || (rc != SQLITE_OK && statements > 0) {
            return Err(DbError::SeveralStatements);
        }
        if rc != SQLITE_OK {
            return Ok(()); // the run reports the first statement's error
        }
        let used = (tail as usize).saturating_sub(rest.as_ptr() as usize);
        if used == 0 || used > rest.len() {
            break;
        }
        rest = &rest[used..];
    }
    Ok(())
}

/// Interrupts the connection's statements once the grant's time is up;
/// the flag says whether it did.
async fn watch_deadline(
    conn: &mut SqliteConnection,
    limits: DbLimits,
) -> Result<Arc<AtomicBool>, DbError> {
    let deadline = Instant::now() + limits.timeout;
    let timed_out = Arc::new(AtomicBool::new(false));
    let flag = timed_out.clone();
    let mut handle = conn.lock_handle().await.map_err(driver)?;
    handle.set_progress_handler(PROGRESS_STEPS, move || {
        let go_on = Instant::now() < deadline;
        if !go_on {
            flag.store(true, Ordering::Relaxed);
        }
        go_on
    });
    Ok(timed_out)
}

/// Removes the deadline and reports an interrupted statement as a timeout.
async fn finish<T>(
    conn: &mut SqliteConnection,
    outcome: Result<T, DbError>,
    timed_out: &AtomicBool,
) -> Result<T, DbError> {
    if let Ok(mut handle) = conn.lock_handle().await {
        handle.remove_progress_handler();
    }
    match outcome {
        Err(_) if timed_out.load(Ordering::Relaxed) => Err(DbError::Timeout),
        other => other,
    }
}

fn bind_all<'q>(mut query: Query<'q>, params: &'q [Value]) -> Query<'q> {
    for value in params {
        query = bind_value(query, value);
    }
    query
}

/// The columns of a result: the declared type where SQLite knows one, else
/// the type of the first row's value.
fn result_columns(
    columns: &[sqlx::sqlite::SqliteColumn],
    row: &sqlx::sqlite::SqliteRow,
) -> Vec<Column> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let declared = c.type_info().name();
            let column_type = match (
                declared,
                crate::model::value::value_type(&raw_value(row, i)),
            ) {
                ("NULL", Some(t)) => t,
                _ => type_from_declared(declared),
            };
            column(c.name(), column_type)
        })
        .collect()
}

/// A driver error; a write refused by the read-only file is told apart.
fn driver(err: sqlx::Error) -> DbError {
    if let sqlx::Error::Database(db) = &err {
        let code = db.code().and_then(|c| c.parse::<i64>().ok());
        if code.is_some_and(|c| c & 0xff == SQLITE_READONLY) {
            return DbError::ReadOnly(db.message().to_string());
        }
        return DbError::Driver(db.message().to_string());
    }
    DbError::Driver(err.to_string())
}

/// Opens an SQLite file (never created: it must exist) for a plugin's
/// `db` grant.
pub(crate) struct LiteConnector {
    /// The database file.
    pub(crate) path: PathBuf,
}

#[async_trait]
impl DbConnector for LiteConnector {
    async fn connect(&self, _grant: &str, write: bool) -> Result<Box<dyn DbSession>, ConnectError> {
        Ok(Box::new(LiteDb::open(&self.path, write).await?))
    }
}

/// SQLite has no users: only the file's own permissions, and `ATTACH`
/// is off, so a read-only grant needs no statement guard either.
#[async_trait]
impl DbSession for LiteDb {
    async fn privileges(&self) -> Result<Vec<String>, ConnectError> {
        Ok(Vec::new())
    }

    fn verified(&self, _allow_privileged: bool) -> String {
        "the SQLite file opens".to_string()
    }

    fn refusal(&self, _sql: &str) -> Option<String> {
        None
    }

    async fn query(
        &self,
        sql: &str,
        params: &[Value],
        _write: bool,
        limits: DbLimits,
    ) -> Result<QueryResult, DbError> {
        LiteDb::query(self, sql, params, limits).await
    }

    async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        _write: bool,
        limits: DbLimits,
    ) -> Result<u64, DbError> {
        LiteDb::execute(self, sql, params, limits).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> DbLimits {
        DbLimits {
            max_rows: 100,
            max_bytes: 1 << 20,
            timeout: std::time::Duration::from_secs(5),
        }
    }

    #[tokio::test]
    async fn only_one_statement_runs_per_call() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crm.db");
        std::fs::File::create(&path).unwrap();
        let db = LiteDb::open(&path, true).await.unwrap();
        db.execute("CREATE TABLE t (id INTEGER)", &[], limits())
            .await
            .unwrap();
        for several in [
            "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
            "-- only a comment\n; INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
            // The second would compile only once the first has run.
            "CREATE TABLE u (id INTEGER); INSERT INTO u VALUES (1)",
            "INSERT INTO t VALUES (1); not sql",
        ] {
            let refused = db.execute(several, &[], limits()).await;
            assert!(
                matches!(refused, Err(DbError::SeveralStatements)),
                "{several}: {refused:?}"
            );
        }
        for one in [
            "INSERT INTO t VALUES (1)",
            "INSERT INTO t VALUES (1);",
            "INSERT INTO t VALUES (1); -- done\n ;; /* end */ ",
            "-- first\n INSERT INTO t VALUES (1)",
        ] {
            assert_eq!(db.execute(one, &[], limits()).await.unwrap(), 1, "{one}");
        }
        let count = db.query("SELECT count(*) FROM t", &[], limits()).await;
        assert_eq!(count.unwrap().rows, vec![vec![Value::Int(4)]]);
        let no_u = db.query(
            "SELECT name FROM sqlite_master WHERE name = 'u'",
            &[],
            limits(),
        );
        assert!(no_u.await.unwrap().rows.is_empty());
    }
}
