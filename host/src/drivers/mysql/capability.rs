//! The `db` capability on MySQL and MariaDB. Before each statement the host
//! sets the session's transaction access mode (read-only unless the grant
//! allows writes: then even DDL, which commits implicitly, is refused) and
//! its statement timeout; reads then run inside `START TRANSACTION READ
//! ONLY`. A plugin's statement may change those settings, but only for
//! itself: the next call sets them again first.

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use sqlx::mysql::{MySql, MySqlDatabaseError, MySqlPool, MySqlRow};
use sqlx::pool::PoolConnection;
use sqlx::{Column as _, Decode, Executor, Row as _, Statement as _, TypeInfo as _, ValueRef as _};

use async_trait::async_trait;

use crate::capabilities::db::{
    Collector, ConnectError, DbConnector, DbError, DbLimits, DbSession, QueryResult, column,
};
use crate::config::{Secret, ServerEndpoint};
use crate::drivers::Cause;
use crate::drivers::guard::{self, Dialect};
use crate::drivers::mysql::{Query, bind_value, capability_pool, decode_result, result_type};
use crate::model::value::{Column, Value};

/// `ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION`.
const READ_ONLY: u16 = 1792;
/// MariaDB's `ER_STATEMENT_TIMEOUT` (max_statement_time exceeded).
const MARIADB_TIMEOUT: u16 = 1969;
/// MySQL's `ER_QUERY_TIMEOUT` (max_execution_time exceeded).
const MYSQL_TIMEOUT: u16 = 3024;

/// An open MySQL or MariaDB pool.
pub(crate) struct MyDb {
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
    ) -> Result<Self, ConnectError> {
        let role = format!("connection {name}");
        let (pool, password, mariadb) = capability_pool(&role, server, base_dir)
            .await
            .map_err(|e| ConnectError::caused(e.message.clone(), e))?;
        Ok(Self {
            pool,
            password,
            mariadb,
        })
    }

    /// A driver error, the password redacted from its text and its kept
    /// cause.
    fn redact(&self, err: sqlx::Error) -> ConnectError {
        let cause = Cause::of(&err, self.password.as_ref());
        ConnectError::caused(cause.to_string(), cause)
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

/// Global privileges that reach beyond data.
const PRIVILEGED: &[&str] = &["ALL PRIVILEGES", "FILE", "SUPER", "CREATE USER", "SHUTDOWN"];

/// The powers beyond data one line of `SHOW GRANTS` gives.
fn privileged(line: &str) -> Vec<String> {
    let Some(rest) = line.strip_prefix("GRANT ") else {
        return Vec::new();
    };
    if rest.starts_with("PROXY ON ") {
        return vec!["PROXY".to_string()];
    }
    if let Some((privileges, _)) = rest.split_once(" ON *.* TO ") {
        return privileges
            .split(',')
            .map(str::trim)
            .filter(|p| PRIVILEGED.contains(p) || p.ends_with(" ADMIN") || p.ends_with("_ADMIN"))
            .map(|p| format!("{p} ON *.*"))
            .collect();
    }
    match rest.split_once(" TO ") {
        Some((role, _)) if !role.contains(" ON ") => vec![format!("role {role}")],
        _ => Vec::new(),
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

/// Opens a MySQL or MariaDB server for a plugin's `db` grant.
pub(crate) struct MyConnector {
    /// The server.
    pub(crate) server: ServerEndpoint,
    /// The migration file's folder, for `password_file`.
    pub(crate) base_dir: PathBuf,
}

#[async_trait]
impl DbConnector for MyConnector {
    async fn connect(&self, grant: &str, write: bool) -> Result<Box<dyn DbSession>, ConnectError> {
        let db = MyDb::open(grant, &self.server, &self.base_dir, write).await?;
        Ok(Box::new(db))
    }
}

#[async_trait]
impl DbSession for MyDb {
    /// What the user may do beyond data, each named, from `SHOW GRANTS`:
    /// global FILE, SUPER, `… ADMIN`, CREATE USER, SHUTDOWN, PROXY or ALL
    /// PRIVILEGES, and roles (whose privileges the user cannot read, and
    /// `SET ROLE` would take on). Empty for an ordinary user.
    async fn privileges(&self) -> Result<Vec<String>, ConnectError> {
        let rows: Vec<MySqlRow> = sqlx::raw_sql("SHOW GRANTS")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.redact(e))?;
        let mut powers = Vec::new();
        for row in &rows {
            let raw = row.try_get_raw(0).map_err(|e| self.redact(e))?;
            let bytes = <&[u8] as Decode<MySql>>::decode(raw)
                .map_err(|e| ConnectError::new(e.to_string()))?;
            powers.extend(privileged(&String::from_utf8_lossy(bytes)));
        }
        Ok(powers)
    }

    fn refusal(&self, sql: &str) -> Option<String> {
        guard::refusal(sql, Dialect::Mysql)
    }

    /// Runs a statement that returns rows.
    async fn query(
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
    async fn execute(
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
}

#[cfg(test)]
mod tests {
    use super::privileged;

    #[test]
    fn show_grants_lines_name_the_powers_beyond_data() {
        let root = "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION";
        assert_eq!(privileged(root), ["ALL PRIVILEGES ON *.*"]);
        let mixed = "GRANT SELECT, FILE, CONNECTION ADMIN ON *.* TO `u`@`%`";
        assert_eq!(
            privileged(mixed),
            ["FILE ON *.*", "CONNECTION ADMIN ON *.*"]
        );
        assert_eq!(privileged("GRANT `dba` TO `u`@`%`"), ["role `dba`"]);
        for plain in [
            "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*AB'",
            "GRANT ALL PRIVILEGES ON `crm`.* TO `u`@`%`",
            "GRANT SELECT ON `crm`.`t` TO `u`@`%`",
        ] {
            assert!(privileged(plain).is_empty(), "{plain}");
        }
    }
}
