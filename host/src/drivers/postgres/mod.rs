//! PostgreSQL through sqlx: a source that streams tables with binary
//! `COPY … TO STDOUT` and a sink that loads each batch with binary
//! `COPY … FROM STDIN` in one transaction with its checkpoint.
//!
//! Connections are built from the endpoint's parts ([`PgConnectOptions`]),
//! never from a URL, so the password is never in a string that could be
//! printed; every driver error goes through [`server::connect_error`], which
//! tells the failure kinds apart and redacts the password.

mod array;
pub(crate) mod capability;
mod cdc;
mod copy;
pub(crate) mod driver;
mod error;
mod feed;
pub(crate) mod restore;
mod schema;
mod sink;
mod source;
mod types;
mod window;

use std::path::Path;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgConnection, PgPool};

use super::server::{self, DbFailure};
use super::{Cause, ConnectorError};
use crate::config::{Secret, ServerEndpoint, TlsMode};
use types::PgType;

pub use cdc::{Lsn, PgChanges, SlotHealth, SourceChange, TableChange};
pub(super) use sink::PgSink;
pub(super) use source::PgSource;

/// PostgreSQL's default port.
const DEFAULT_PORT: u16 = 5432;

/// How long to wait for a server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Where a sink keeps its checkpoints: a table in the destination schema,
/// so a batch and its checkpoint commit in one transaction.
const CHECKPOINTS: &str = "_credvault_checkpoints";

/// Session settings every connection gets, so text forms (of casts and of
/// resume keys) do not depend on the server's configuration.
/// (sqlx itself sets DateStyle ISO, TimeZone UTC and client_encoding UTF8.)
const SESSION: [(&str, &str); 2] = [
    ("IntervalStyle", "postgres"),
    ("standard_conforming_strings", "on"),
];

/// Reads SQLSTATE codes: what they say about a failed connection or query
/// (the one place PostgreSQL's failures are told apart).
fn classify(err: &dyn sqlx::error::DatabaseError) -> Option<DbFailure> {
    match err.code()?.as_ref() {
        // 28000 also covers pg_hba.conf refusals, which no password fixes.
        "28000" if err.message().contains("no encryption") => Some(DbFailure::TlsRequired),
        "28000" if err.message().contains("pg_hba.conf") => Some(DbFailure::HostNotAllowed),
        "28P01" | "28000" => Some(DbFailure::Auth),
        "3D000" => Some(DbFailure::MissingDatabase),
        "42501" => Some(DbFailure::Permission),
        // admin_shutdown, crash_shutdown, cannot_connect_now; class 08 is
        // connection exceptions.
        "57P01" | "57P02" | "57P03" => Some(DbFailure::ConnectionLost),
        code if code.starts_with("08") => Some(DbFailure::ConnectionLost),
        "53100" => Some(DbFailure::Full),
        _ => None,
    }
}

/// Quotes an identifier.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes a string literal (sessions run with standard_conforming_strings,
/// so a backslash is an ordinary character).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A connection pool to one endpoint, and how to name it in messages.
pub(crate) struct Db {
    /// `source postgres user@host:port/db`.
    pub(crate) endpoint: String,
    ep: ServerEndpoint,
    port: u16,
    password: Option<Secret>,
    schema: String,
    /// Whether text arrives as UTF-8 (binary COPY sends the server's
    /// encoding unconverted).
    utf8: bool,
    pub(crate) pool: PgPool,
}

impl Db {
    /// Connects once to test the endpoint (so the first error is the real
    /// one, not a pool timeout), then keeps a lazy pool of `connections`.
    async fn open(
        role: &str,
        ep: &ServerEndpoint,
        base_dir: &Path,
        extra: &[(&str, &str)],
        connections: u32,
    ) -> Result<Self, ConnectorError> {
        let port = ep.port.unwrap_or(DEFAULT_PORT);
        let endpoint = server::describe(role, "postgres", ep, port);
        let password = ep
            .password(base_dir)
            .map_err(|e| ConnectorError::new(&endpoint, e.to_string()).because(&e))?;
        let options = connect_options(ep, port, password.as_ref(), extra);
        let fail = |e: &sqlx::Error| {
            server::connect_error(&endpoint, e, ep, port, password.as_ref(), classify)
        };
        let mut probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| fail(&server::no_answer(CONNECT_TIMEOUT)))?
            .map_err(|e| fail(&e))?;
        let schema = ep.schema.clone().unwrap_or_else(|| "public".into());
        let (encoding, schema_exists): (String, bool) = sqlx::query_as(
            "SELECT current_setting('server_encoding'), EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
        )
        .bind(&schema)
        .fetch_one(&mut probe)
        .await
        .map_err(|e| fail(&e))?;
        let _ = probe.close().await;
        if !schema_exists {
            return Err(ConnectorError::new(
                &endpoint,
                format!(
                    "schema `{schema}` does not exist in database `{}`: check `schema`, or create it (CREATE SCHEMA {})",
                    ep.database,
                    ident(&schema)
                ),
            ));
        }
        let pool = PgPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(60))
            .connect_lazy_with(options);
        Ok(Self {
            endpoint,
            ep: ep.clone(),
            port,
            password,
            schema,
            utf8: encoding.eq_ignore_ascii_case("UTF8"),
            pool,
        })
    }

    /// A driver error as an actionable message, password redacted.
    pub(crate) fn error(&self, err: &sqlx::Error) -> ConnectorError {
        server::connect_error(
            &self.endpoint,
            err,
            &self.ep,
            self.port,
            self.password.as_ref(),
            classify,
        )
    }

    /// A driver error; a refused privilege names the GRANT that gives it.
    fn refused(&self, err: &sqlx::Error, grant: &str) -> ConnectorError {
        match err {
            sqlx::Error::Database(db) if classify(db.as_ref()) == Some(DbFailure::Permission) => {
                server::denied(&self.endpoint, &self.ep.user, db.message(), grant)
                    .caused_by(Cause::of(err, self.password.as_ref()))
            }
            _ => self.error(err),
        }
    }

    /// `GRANT privilege ON object TO user`.
    fn grant(&self, privilege: &str, object: &str) -> String {
        format!("GRANT {privilege} ON {object} TO {}", ident(&self.ep.user))
    }

    /// A driver error about one table.
    pub(crate) fn table_error(&self, table: &str, err: &sqlx::Error) -> ConnectorError {
        let mut e = self.error(err);
        e.message = format!("table `{table}`: {}", e.message);
        e
    }

    /// An error of ours (never holds the password).
    fn fail(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::new(&self.endpoint, message)
    }

    /// `"schema"."table"`.
    pub(crate) fn qualified(&self, table: &str) -> String {
        format!("{}.{}", ident(&self.schema), ident(table))
    }

    /// The tables of the schema (or just `only`), their columns in order.
    async fn catalog(&self, only: Option<&str>) -> Result<Vec<CatalogTable>, ConnectorError> {
        let rows: Vec<CatalogRow> = sqlx::query_as(CATALOG_SQL)
            .bind(&self.schema)
            .bind(only)
            .bind(CHECKPOINTS)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(&e))?;
        let mut tables: Vec<CatalogTable> = Vec::new();
        for row in rows {
            let (
                table,
                column,
                oid,
                typtype,
                category,
                type_name,
                not_null,
                reltuples,
                pk_pos,
                elem,
                typmod,
            ) = row;
            if tables.last().is_none_or(|t| t.name != table) {
                tables.push(CatalogTable {
                    name: table,
                    columns: Vec::new(),
                    approx_rows: (reltuples >= 0.0).then_some(reltuples as u64),
                    primary_key: Vec::new(),
                });
            }
            let Some(t) = tables.last_mut() else { continue };
            if let Some(pos) = pk_pos {
                t.primary_key.push((pos, column.clone()));
            }
            t.columns.push(CatalogColumn {
                name: column,
                pg: PgType {
                    oid: u32::try_from(oid).unwrap_or(0),
                    typtype: typtype.chars().next().unwrap_or('b'),
                    category: category.chars().next().unwrap_or('X'),
                    elem: u32::try_from(elem).unwrap_or(0),
                    typmod: i32::try_from(typmod).unwrap_or(-1),
                    name: type_name,
                },
                not_null,
            });
        }
        for t in &mut tables {
            t.primary_key.sort();
        }
        Ok(tables)
    }
}

/// One catalog row: table, column, base type OID, typtype, typcategory,
/// declared type name, NOT NULL, reltuples, position in the primary key,
/// array element type OID, type modifier (-1 for none).
type CatalogRow = (
    String,
    String,
    i64,
    String,
    String,
    String,
    bool,
    f64,
    Option<i64>,
    i64,
    i64,
);

/// Columns of ordinary and partitioned tables (not partitions, which their
/// parent already covers) with domains resolved to their base types. A
/// listing leaves out credvault's own tables (checkpoints, restore points);
/// one of them can still be looked up by name.
const CATALOG_SQL: &str = "
SELECT c.relname::text, a.attname::text, bt.oid::int8, bt.typtype::text, bt.typcategory::text,
       format_type(a.atttypid, NULL), a.attnotnull, c.reltuples::float8,
       (SELECT k.ord FROM pg_index i, unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
         WHERE i.indrelid = c.oid AND i.indisprimary AND k.attnum = a.attnum),
       bt.typelem::int8,
       (CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END)::int8
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND ($2::text IS NULL OR c.relname = $2) AND c.relname <> $3
  AND ($2::text IS NOT NULL OR c.relname NOT LIKE '\\_credvault\\_%')
ORDER BY c.relname, a.attnum";

/// A table as the catalog describes it.
struct CatalogTable {
    name: String,
    columns: Vec<CatalogColumn>,
    /// Primary-key columns with their position in the key.
    primary_key: Vec<(i64, String)>,
    approx_rows: Option<u64>,
}

/// A column as the catalog describes it.
struct CatalogColumn {
    name: String,
    pg: PgType,
    not_null: bool,
}

/// Connection options from the endpoint's parts. `extra` adds session
/// settings (the sink's commit mode).
fn connect_options(
    ep: &ServerEndpoint,
    port: u16,
    password: Option<&Secret>,
    extra: &[(&str, &str)],
) -> PgConnectOptions {
    let ssl = match ep.tls {
        TlsMode::Disable => PgSslMode::Disable,
        TlsMode::Prefer => PgSslMode::Prefer,
        TlsMode::Require => PgSslMode::Require,
        TlsMode::VerifyFull => PgSslMode::VerifyFull,
    };
    let mut options = PgConnectOptions::new_without_pgpass()
        .host(&ep.host)
        .port(port)
        .username(&ep.user)
        .database(&ep.database)
        .ssl_mode(ssl)
        .application_name("credvault")
        .extra_float_digits(3)
        .options(SESSION.iter().chain(extra).copied());
    if let Some(secret) = password {
        options = options.password(secret.expose());
    }
    options
}

/// The port of `ep` and a [`Probe`](super::stall::Probe) of it: a new
/// connection that runs `SELECT 1`.
pub(crate) fn prober(
    ep: &ServerEndpoint,
    base_dir: &Path,
) -> (
    u16,
    Result<super::stall::Probe, crate::config::PasswordError>,
) {
    let port = ep.port.unwrap_or(DEFAULT_PORT);
    let probe = ep.password(base_dir).map(|password| {
        let options = connect_options(ep, port, password.as_ref(), &[]);
        let probe: super::stall::Probe = std::sync::Arc::new(move || {
            let options = options.clone();
            Box::pin(async move {
                let mut conn = PgConnection::connect_with(&options).await?;
                sqlx::query("SELECT 1").execute(&mut conn).await?;
                conn.close().await
            })
        });
        probe
    });
    (port, probe)
}

/// Connects once to `ep` for the `db` capability (so a refused password is
/// reported at once, not as a pool timeout), then keeps a lazy pool of two.
/// `session` adds startup settings. Statements are not cached: a plugin
/// may bind values of other types to the same SQL from call to call.
pub(crate) async fn capability_pool(
    role: &str,
    ep: &ServerEndpoint,
    base_dir: &Path,
    session: &[(&str, &str)],
) -> Result<(PgPool, Option<Secret>), ConnectorError> {
    let port = ep.port.unwrap_or(DEFAULT_PORT);
    let endpoint = server::describe(role, "postgres", ep, port);
    let password = ep
        .password(base_dir)
        .map_err(|e| ConnectorError::new(&endpoint, e.to_string()).because(&e))?;
    let schema = ident(ep.schema.as_deref().unwrap_or("public"));
    let session: Vec<(&str, &str)> = [("search_path", schema.as_str())]
        .into_iter()
        .chain(session.iter().copied())
        .collect();
    let options =
        connect_options(ep, port, password.as_ref(), &session).statement_cache_capacity(0);
    let fail = |e: &sqlx::Error| {
        server::connect_error(&endpoint, e, ep, port, password.as_ref(), classify)
    };
    let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
        .await
        .map_err(|_| fail(&server::no_answer(CONNECT_TIMEOUT)))?
        .map_err(|e| fail(&e))?;
    let _ = probe.close().await;
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy_with(options);
    Ok((pool, password))
}

/// How a query result column of type `oid` is read: its row-model type,
/// when its binary form is one the connectors decode (others need a cast
/// to text in the query).
pub(crate) fn result_type(oid: u32) -> Option<crate::model::value::ColumnType> {
    types::element(oid).map(|read| read.column_type)
}

/// Decodes one non-NULL binary result value of a column of type `oid`
/// (one [`result_type`] accepts).
pub(crate) fn decode_result(
    oid: u32,
    bytes: &[u8],
) -> Result<crate::model::value::Value, error::DecodeError> {
    let read = types::element(oid).ok_or(error::DecodeError::NoDecoder)?;
    copy::decode_field(read.binary, bytes)
}

/// Appends a parameter's binary form to `out` and returns the type OID it
/// is sent as; NULL is sent as OID 0 (unspecified), so the server infers
/// its type from the statement.
pub(crate) fn encode_param(
    value: &crate::model::value::Value,
    out: &mut Vec<u8>,
) -> Result<u32, error::EncodeError> {
    use crate::model::value::Value;
    use types::{Binary, oid};
    let (oid, layout) = match value {
        Value::Null => return Ok(0),
        Value::Boolean(_) => (oid::BOOL, Binary::Bool),
        Value::Int(_) => (oid::INT8, Binary::Int8),
        Value::Float(_) => (oid::FLOAT8, Binary::Float8),
        Value::Decimal(_) => (oid::NUMERIC, Binary::Numeric),
        Value::Text(_) => (oid::TEXT, Binary::Text),
        Value::Bytes(_) => (oid::BYTEA, Binary::Bytea),
        Value::Date(_) => (oid::DATE, Binary::Date),
        Value::Time(_) => (oid::TIME, Binary::Time),
        Value::Timestamp(_) => (oid::TIMESTAMP, Binary::Timestamp),
        Value::Timestamptz(_) => (oid::TIMESTAMPTZ, Binary::Timestamptz),
        Value::Uuid(_) => (oid::UUID, Binary::Uuid),
        Value::Json(_) => (oid::JSONB, Binary::Jsonb),
    };
    copy::encode_value(value, layout, out)?;
    Ok(oid)
}

/// Opens a PostgreSQL source.
pub(super) async fn open_source(
    ep: &ServerEndpoint,
    base_dir: &Path,
) -> Result<PgSource, ConnectorError> {
    PgSource::open(ep, base_dir).await
}

/// A plain connection to a destination (for restore points): commits are
/// synchronous, unlike the sink's.
pub(crate) async fn open_destination(
    ep: &ServerEndpoint,
    base_dir: &Path,
) -> Result<Db, ConnectorError> {
    Db::open("destination", ep, base_dir, &[], 2).await
}

/// Opens a PostgreSQL sink.
pub(super) async fn open_sink(
    ep: &ServerEndpoint,
    base_dir: &Path,
) -> Result<PgSink, ConnectorError> {
    PgSink::open(ep, base_dir).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's \\x"), "'it''s \\x'");
    }
}
