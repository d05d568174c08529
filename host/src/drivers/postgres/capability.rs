//! The `db` capability on PostgreSQL: every statement runs alone in its own
//! transaction, `BEGIN READ ONLY` unless the grant allows writes, with
//! `SET LOCAL statement_timeout` at the grant's timeout. Parameters and
//! results travel in the binary forms the connectors already speak.

use std::path::{Path, PathBuf};

use futures_util::TryStreamExt;
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{
    PgArgumentBuffer, PgArguments, PgColumn, PgConnection, PgPool, PgRow, PgTypeInfo,
};
use sqlx::{Arguments, Column as _, Executor, Postgres, Row as _, Statement as _, ValueRef as _};

use async_trait::async_trait;

use crate::capabilities::db::{
    Collector, ConnectError, DbConnector, DbError, DbLimits, DbSession, QueryResult, column,
};
use crate::config::{Secret, ServerEndpoint};
use crate::drivers::Cause;
use crate::drivers::guard::{self, Dialect};
use crate::drivers::postgres::{capability_pool, decode_result, encode_param, result_type};
use crate::model::value::{Column, Value};

/// SQLSTATE of a write in a read-only transaction.
const READ_ONLY_TRANSACTION: &str = "25006";
/// SQLSTATE of a statement cancelled by `statement_timeout`.
const QUERY_CANCELED: &str = "57014";

/// The current user and whether it is a superuser.
const CURRENT_USER: &str =
    "SELECT current_user::text, rolsuper FROM pg_roles WHERE rolname = current_user";

/// The superuser roles and the file and program roles (PostgreSQL 11+)
/// the current user is, or may become (`SET ROLE`).
const PRIVILEGED_ROLES: &str = "SELECT rolname::text, rolsuper FROM pg_roles \
     WHERE (rolsuper OR rolname IN ('pg_read_server_files', 'pg_write_server_files', 'pg_execute_server_program')) \
     AND pg_has_role(current_user, oid, 'MEMBER') ORDER BY rolname";

/// The server-file functions the current user may execute (revoked from
/// PUBLIC by default); those missing from this server version are skipped.
const FILE_FUNCTIONS: &str = "SELECT f FROM unnest(ARRAY['pg_read_file(text)', 'pg_read_binary_file(text)', \
     'pg_ls_dir(text)', 'pg_stat_file(text)', 'lo_import(text)', 'lo_export(oid, text)']) AS f \
     WHERE to_regprocedure(f) IS NOT NULL AND has_function_privilege(f, 'EXECUTE')";

/// An open PostgreSQL connection pool.
pub(crate) struct PgDb {
    pool: PgPool,
    password: Option<Secret>,
}

impl PgDb {
    /// Connects as the endpoint says; a read-only grant's sessions also
    /// default to read-only transactions.
    pub(super) async fn open(
        name: &str,
        server: &ServerEndpoint,
        base_dir: &Path,
        write: bool,
    ) -> Result<Self, ConnectError> {
        let session: &[(&str, &str)] = match write {
            true => &[],
            false => &[("default_transaction_read_only", "on")],
        };
        let role = format!("connection {name}");
        let (pool, password) = capability_pool(&role, server, base_dir, session)
            .await
            .map_err(|e| ConnectError::caused(e.message.clone(), e))?;
        Ok(Self { pool, password })
    }

    /// A driver error, the password redacted from its text and its kept
    /// cause.
    fn redact(&self, err: sqlx::Error) -> ConnectError {
        let cause = Cause::of(&err, self.password.as_ref());
        ConnectError::caused(cause.to_string(), cause)
    }

    /// A pooled connection inside a fresh transaction: read-only unless
    /// `write`, its statements cut off at the grant's timeout. A plugin's
    /// statement cannot lift either: each call begins anew.
    async fn begin(
        &self,
        write: bool,
        limits: DbLimits,
    ) -> Result<sqlx::pool::PoolConnection<Postgres>, DbError> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.error(e))?;
        let mode = if write { "BEGIN" } else { "BEGIN READ ONLY" };
        // Standard strings keep a backslash literal, as the read-only
        // statement guard reads them, whatever the plugin set before.
        let begin = format!(
            "{mode}; SET LOCAL standard_conforming_strings = on; SET LOCAL statement_timeout = {}",
            limits.timeout.as_millis().max(1)
        );
        conn.execute(begin.as_str())
            .await
            .map_err(|e| self.error(e))?;
        Ok(conn)
    }

    /// Commits a write that succeeded, else rolls back; a connection that
    /// cannot end its transaction is closed rather than reused.
    async fn end<T>(
        &self,
        conn: &mut sqlx::pool::PoolConnection<Postgres>,
        write: bool,
        outcome: Result<T, DbError>,
    ) -> Result<T, DbError> {
        let end = if write && outcome.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        if let Err(e) = conn.execute(end).await {
            conn.close_on_drop();
            return outcome.and(Err(self.error(e)));
        }
        outcome
    }

    /// The columns of a statement that returned no rows.
    async fn describe(
        &self,
        conn: &mut PgConnection,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<Column>, DbError> {
        let types: Vec<PgTypeInfo> = params.iter().map(|v| PgParam(v).type_info()).collect();
        let statement = conn
            .prepare_with(sql, &types)
            .await
            .map_err(|e| self.error(e))?;
        result_columns(statement.columns())
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
        match db.code().as_deref() {
            Some(READ_ONLY_TRANSACTION) => DbError::ReadOnly(redact(db.message())),
            Some(QUERY_CANCELED) => DbError::Timeout,
            _ => DbError::Driver(redact(db.message())),
        }
    }
}

/// A value bound as a parameter, in its binary form with its own type.
struct PgParam<'a>(&'a Value);

impl PgParam<'_> {
    fn type_info(&self) -> PgTypeInfo {
        let oid = encode_param(self.0, &mut Vec::new()).unwrap_or(0);
        PgTypeInfo::with_oid(Oid(oid))
    }
}

impl sqlx::Type<Postgres> for PgParam<'_> {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(Oid(0))
    }
}

impl sqlx::Encode<'_, Postgres> for PgParam<'_> {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        if matches!(self.0, Value::Null) {
            return Ok(IsNull::Yes);
        }
        let mut bytes = Vec::new();
        encode_param(self.0, &mut bytes)?;
        buf.extend_from_slice(&bytes);
        Ok(IsNull::No)
    }

    fn produces(&self) -> Option<PgTypeInfo> {
        Some(self.type_info())
    }
}

fn arguments(params: &[Value]) -> Result<PgArguments, DbError> {
    let mut args = PgArguments::default();
    for (i, value) in params.iter().enumerate() {
        args.add(PgParam(value))
            .map_err(|e| DbError::Driver(format!("parameter ${}: {e}", i + 1)))?;
    }
    Ok(args)
}

/// The columns of a result (from its first row, or its prepared statement).
fn result_columns(columns: &[PgColumn]) -> Result<Vec<Column>, DbError> {
    columns
        .iter()
        .map(|c| {
            let oid = c.type_info().oid().map_or(0, |o| o.0);
            let column_type =
                result_type(oid).ok_or_else(|| undecodable(c.name(), c.type_info()))?;
            Ok(column(c.name(), column_type))
        })
        .collect()
}

fn decode_row(row: &PgRow) -> Result<Vec<Value>, DbError> {
    (0..row.len())
        .map(|i| {
            let raw = row
                .try_get_raw(i)
                .map_err(|e| DbError::Driver(e.to_string()))?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let oid = raw.type_info().oid().map_or(0, |o| o.0);
            let bytes = raw
                .as_bytes()
                .map_err(|e| DbError::Driver(format!("column {}: {e}", i + 1)))?;
            let name = row.columns()[i].name();
            decode_result(oid, bytes).map_err(|e| DbError::Driver(format!("column `{name}`: {e}")))
        })
        .collect()
}

/// A result column of a type the row model does not read directly.
fn undecodable(name: &str, t: &PgTypeInfo) -> DbError {
    DbError::Driver(format!(
        "column `{name}` is of type {}, which the db capability does not decode; cast it in the query ({name}::text)",
        sqlx::TypeInfo::name(t)
    ))
}
/// Opens a PostgreSQL server for a plugin's `db` grant.
pub(crate) struct PgConnector {
    /// The server.
    pub(crate) server: ServerEndpoint,
    /// The migration file's folder, for `password_file`.
    pub(crate) base_dir: PathBuf,
}

#[async_trait]
impl DbConnector for PgConnector {
    async fn connect(&self, grant: &str, write: bool) -> Result<Box<dyn DbSession>, ConnectError> {
        let db = PgDb::open(grant, &self.server, &self.base_dir, write).await?;
        Ok(Box::new(db))
    }
}

#[async_trait]
impl DbSession for PgDb {
    /// What the user may do beyond data, each named: being or becoming a
    /// superuser or a member of the roles that read and write the server's
    /// files and run programs, and executing the file functions. Empty for
    /// an ordinary user.
    async fn privileges(&self) -> Result<Vec<String>, ConnectError> {
        let (user, superuser): (String, bool) = sqlx::query_as(CURRENT_USER)
            .persistent(false)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.redact(e))?;
        // A superuser is a member of every role and may run everything.
        if superuser {
            return Ok(vec![format!("`{user}` is a superuser")]);
        }
        let roles: Vec<(String, bool)> = sqlx::query_as(PRIVILEGED_ROLES)
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.redact(e))?;
        let functions: Vec<String> = sqlx::query_scalar(FILE_FUNCTIONS)
            .persistent(false)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.redact(e))?;
        let roles = roles.into_iter().map(|(role, superuser)| match superuser {
            true => format!("member of superuser `{role}`"),
            false => format!("member of `{role}`"),
        });
        let functions = functions.into_iter().map(|f| format!("EXECUTE on {f}"));
        Ok(roles.chain(functions).collect())
    }

    fn refusal(&self, sql: &str) -> Option<String> {
        guard::refusal(sql, Dialect::Postgres)
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
            let mut stream = sqlx::query_with(sql, arguments(params)?)
                .persistent(false)
                .fetch(&mut *conn);
            while let Some(row) = stream.try_next().await.map_err(|e| self.error(e))? {
                if columns.is_none() {
                    columns = Some(result_columns(row.columns())?);
                }
                rows.push(decode_row(&row)?)?;
            }
            Ok::<(), DbError>(())
        }
        .await;
        let read = match (read, columns.is_none()) {
            (Ok(()), true) => self.describe(&mut conn, sql, params).await.map(Some),
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
        let outcome = match arguments(params) {
            Ok(args) => sqlx::query_with(sql, args)
                .persistent(false)
                .execute(&mut *conn)
                .await
                .map(|done| done.rows_affected())
                .map_err(|e| self.error(e)),
            Err(e) => Err(e),
        };
        self.end(&mut conn, write, outcome).await
    }
}
