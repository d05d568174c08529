//! The `db` capability on MySQL and MariaDB. Before each statement the host
//! sets the session's transaction access mode (read-only unless the grant
//! allows writes: then even DDL, which commits implicitly, is refused) and
//! its statement timeout; reads then run inside `START TRANSACTION READ
//! ONLY`. A plugin's statement may change those settings, but only for
//! itself: the next call sets them again first.

use std::path::Path;

use futures_util::TryStreamExt;
use sqlx::mysql::{MySql, MySqlDatabaseError, MySqlPool, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::{Column as _, Decode, Executor, Row as _, Statement as _, TypeInfo as _, ValueRef as _};

use super::{Collector, DbError, DbLimits, QueryResult, column};
use crate::config::{Secret, ServerEndpoint};
use crate::connectors::mysql::{Query, bind_value, capability_pool, decode_result, result_type};
use crate::value::{Column, Value};

/// `ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION`.
const READ_ONLY: u16 = 1792;
/// MariaDB's `ER_STATEMENT_TIMEOUT` (max_statement_time exceeded).
const MARIADB_TIMEOUT: u16 = 1969;
/// MySQL's `ER_QUERY_TIMEOUT` (max_execution_time exceeded).
const MYSQL_TIMEOUT: u16 = 3024;

/// An open MySQL or MariaDB pool.
pub(super) struct MyDb {
    pool: MySqlPool,
    password: Option<Secret>,
    mariadb: bool,
}

impl MyDb {
    /// Connects as the endpoint says.
    pub(super) async fn open(
        name: &str,
        server: &ServerEndpoint,
        base_dir: &Path,
        _write: bool,
    ) -> Result<Self, String> {
        let role = format!("connection {name}");
        let (pool, password, mariadb) = capability_pool(&role, server, base_dir)
            .await
            .map_err(|e| e.message)?;
        Ok(Self {
            pool,
            password,
            mariadb,
        })
    }

    /// Runs a statement that returns rows.
    pub(super) async fn query(
        &self,
        sql: &str,
        params: &[Value],
        write: bool,
        limits: DbLimits,
    ) -> Result<QueryResult, DbError> {
        let mut conn = self.begin(write, limits).await?;
        let mut rows = Collector::new(limits);
        let mut columns = None;
        let read = async {
            let mut stream = bind_all(sqlx::query(sql), params).fetch(&mut *conn);
            while let Some(row) = stream.try_next().await.map_err(|e| self.error(e))? {
                if columns.is_none() {
                    columns = Some(result_columns(row.columns()));
                }
                rows.push(decode_row(&row)?)?;
            }
            Ok::<(), DbError>(())
        }
        .await;
        let read = match (read, columns.is_none()) {
            (Ok(()), true) => (&mut *conn)
                .prepare(sql)
                .await
                .map(|s| Some(result_columns(s.columns())))
                .map_err(|e| self.error(e)),
            (outcome, _) => outcome.map(|()| columns),
        };
        let columns = self.end(&mut conn, write, read).await?;
        Ok(QueryResult {
            columns: columns.unwrap_or_default(),
            rows: rows.rows,
        })
    }

    /// Runs a statement that changes rows.
    pub(super) async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        write: bool,
        limits: DbLimits,
    ) -> Result<u64, DbError> {
        let mut conn = self.begin(write, limits).await?;
        let outcome = bind_all(sqlx::query(sql), params)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected())
            .map_err(|e| self.error(e));
        self.end(&mut conn, write, outcome).await
    }

    /// A pooled connection with the session's access mode and timeout set
    /// for this call; inside a read-only transaction unless `write` (a
    /// write runs on its own, autocommitted).
    async fn begin(&self, write: bool, limits: DbLimits) -> Result<PoolConnection<MySql>, DbError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.error(e))?;
        let read_only = u8::from(!write);
        let ms = limits.timeout.as_millis().max(1);
        let session = match self.mariadb {
            true => format!(
                "SET SESSION max_statement_time = {}, SESSION tx_read_only = {read_only}",
                ms as f64 / 1000.0
            ),
            false => format!(
                "SET SESSION max_execution_time = {ms}, SESSION transaction_read_only = {read_only}"
            ),
        };
        conn.execute(session.as_str())
            .await
            .map_err(|e| self.error(e))?;
        if !write {
            conn.execute("START TRANSACTION READ ONLY")
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(conn)
    }

    /// Ends a read's transaction; a connection that cannot is closed
    /// rather than reused.
    async fn end<T>(
        &self,
        conn: &mut PoolConnection<MySql>,
        write: bool,
        outcome: Result<T, DbError>,
    ) -> Result<T, DbError> {
        if write {
            return outcome;
        }
        if let Err(e) = conn.execute("ROLLBACK").await {
            conn.close_on_drop();
            return outcome.and(Err(self.error(e)));
        }
        outcome
    }

    /// A driver error as the plugin sees it, the password redacted.
    fn error(&self, err: sqlx::Error) -> DbError {
        let redact = |text: &str| match &self.password {
            Some(secret) => secret.redact(text),
            None => text.to_string(),
        };
        let sqlx::Error::Database(db) = &err else {
            return DbError::Driver(redact(&err.to_string()));
        };
        let number = db
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number);
        match number {
            Some(READ_ONLY) => DbError::ReadOnly(redact(db.message())),
            Some(MARIADB_TIMEOUT | MYSQL_TIMEOUT) => DbError::Timeout,
            _ => DbError::Driver(redact(db.message())),
        }
    }
}

fn bind_all<'q>(mut query: Query<'q>, params: &'q [Value]) -> Query<'q> {
    for value in params {
        query = bind_value(query, value);
    }
    query
}

fn result_columns(columns: &[sqlx::mysql::MySqlColumn]) -> Vec<Column> {
    columns
        .iter()
        .map(|c| column(c.name(), result_type(c.type_info().name())))
        .collect()
}

/// A row's values, read from their raw bytes by the column's wire type.
fn decode_row(row: &MySqlRow) -> Result<Vec<Value>, DbError> {
    row.columns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let raw = row
                .try_get_raw(i)
                .map_err(|e| DbError::Driver(e.to_string()))?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let bytes = <&[u8] as Decode<MySql>>::decode(raw)
                .map_err(|e| DbError::Driver(format!("column `{}`: {e}", c.name())))?;
            decode_result(c.type_info().name(), bytes)
                .map_err(|e| DbError::Driver(format!("column `{}`: {e}", c.name())))
        })
        .collect()
}
