//! MariaDB and MySQL through sqlx: a source that streams tables in key
//! order over the binary protocol, and a sink that lands batched multi-row
//! INSERTs and its checkpoint in one InnoDB transaction.
//!
//! Every session is strict (`STRICT_ALL_TABLES`, no zero dates) and in UTC,
//! so the server neither truncates a value silently nor shifts a
//! `TIMESTAMP` by a local zone; what strict mode still lets through as a
//! note (a decimal rounded to the column's scale, say) is caught by checking
//! the warning count after each statement.

pub(crate) mod capability;
mod decode;
pub(crate) mod driver;
pub(crate) mod restore;
mod schema;
mod sink;
mod source;
mod types;
mod window;

use std::path::Path;
use std::time::Duration;

use sqlx::mysql::{
    MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlRow, MySqlSslMode,
};
use sqlx::{ConnectOptions, Connection, Decode, Executor, MySql, Row as _};

pub use sink::MySqlSink;
pub(crate) use sink::{Query, bind_value};
pub use source::MySqlSource;

use super::server::{self, DbFailure};
use super::{Cause, ConnectorError};
use crate::config::{Secret, ServerEndpoint, TlsMode};

/// The port MariaDB and MySQL listen on unless told otherwise.
const DEFAULT_PORT: u16 = 3306;

/// How long to wait for a server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The session's SQL mode: strict for every table type, no zero or partly
/// zero dates, and an explicit 0 in an AUTO_INCREMENT column stays 0 (as
/// `mysqldump` does), so what lands is what was read. A macro so the
/// session statements can be `concat!`ed constants.
macro_rules! sql_mode {
    () => {
        "STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION,NO_AUTO_VALUE_ON_ZERO"
    };
}
use sql_mode;

/// Where the sink keeps its checkpoints, inside the destination database,
/// so they commit in the same transaction as the rows. Never discovered.
const CHECKPOINTS: &str = "_credvault_checkpoints";

/// A `LIKE` pattern for every table of credvault's own (checkpoints,
/// restore points), which discovery leaves out.
const OWN_TABLES: &str = "\\_credvault\\_%";

/// Quotes an identifier for MySQL.
pub(crate) fn ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Reads the MySQL error number a driver error carries.
fn error_number(err: &dyn sqlx::error::DatabaseError) -> Option<u16> {
    err.try_downcast_ref::<MySqlDatabaseError>()
        .map(MySqlDatabaseError::number)
}

/// Tells authentication, missing-database, permission, lost-connection and
/// full-disk failures apart by the server's error number (the one place
/// MariaDB's failures are told apart).
fn classify(err: &dyn sqlx::error::DatabaseError) -> Option<DbFailure> {
    match error_number(err)? {
        1045 => Some(DbFailure::Auth),
        1049 => Some(DbFailure::MissingDatabase),
        1044 | 1142 | 1143 | 1227 => Some(DbFailure::Permission),
        // Server gone, server lost, connection killed, shutdown in progress.
        2006 | 2013 | 1927 | 1053 => Some(DbFailure::ConnectionLost),
        // The table is full, the disk is full.
        1114 | 1021 => Some(DbFailure::Full),
        // A write that failed with errno 28, ENOSPC ("Got error 28 from
        // storage engine", "Error writing file … (Errcode: 28 …)").
        1030 | 3 if says_errno_28(err.message()) => Some(DbFailure::Full),
        _ => None,
    }
}

/// Whether a storage error's message gives errno 28 (ENOSPC), as
/// "Got error 28 from storage engine" or "(Errcode: 28 …)" do; a table
/// named `orders_2028` does not.
fn says_errno_28(message: &str) -> bool {
    message.contains("Got error 28 ") || message.contains("Errcode: 28 ")
}

/// An open server connection pool and what messages need to name it.
pub(crate) struct Server {
    pub(crate) endpoint: String,
    ep: ServerEndpoint,
    port: u16,
    password: Option<Secret>,
    pub(crate) pool: MySqlPool,
    /// Whether the server is MariaDB 10.7 or later (it has a `UUID` type).
    native_uuid: bool,
    /// Whether the server is MariaDB rather than MySQL.
    mariadb: bool,
}

impl Server {
    /// Connects once directly (so a refused port, a DNS failure or a wrong
    /// password is reported at once and told apart, not retried until a
    /// pool times out), then opens a pool of `connections`.
    async fn connect(
        role: &str,
        ep: &ServerEndpoint,
        base_dir: &Path,
        connections: u32,
        session: &'static str,
    ) -> Result<Self, ConnectorError> {
        let port = ep.port.unwrap_or(DEFAULT_PORT);
        let endpoint = server::describe(role, "mariadb", ep, port);
        let password = ep
            .password(base_dir)
            .map_err(|e| ConnectorError::new(&endpoint, e.to_string()).because(&e))?;
        let options = connect_options(ep, port, password.as_ref());
        let fail = |e: sqlx::Error| {
            server::connect_error(&endpoint, &e, ep, port, password.as_ref(), classify)
        };
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| fail(server::no_answer(CONNECT_TIMEOUT)))?
            .map_err(fail)?;
        probe.close().await.map_err(fail)?;
        let pool = MySqlPoolOptions::new()
            .max_connections(connections)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    conn.execute(session).await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(fail)?;
        let version: String = sqlx::query_scalar("SELECT VERSION()")
            .fetch_one(&pool)
            .await
            .map_err(fail)?;
        Ok(Self {
            endpoint,
            ep: ep.clone(),
            port,
            password,
            pool,
            native_uuid: has_native_uuid(&version),
            mariadb: version.contains("MariaDB"),
        })
    }

    /// A driver error as an actionable message, the password redacted.
    pub(crate) fn error(&self, err: sqlx::Error) -> ConnectorError {
        server::connect_error(
            &self.endpoint,
            &err,
            &self.ep,
            self.port,
            self.password.as_ref(),
            classify,
        )
    }

    /// `'user'@'host'`: the account the server matched this session to.
    async fn account(&self) -> String {
        let row = sqlx::query("SELECT CAST(CURRENT_USER() AS CHAR)")
            .fetch_one(&self.pool)
            .await;
        let current = row.ok().and_then(|r| text(&r, 0));
        let (user, host) = current
            .as_deref()
            .and_then(|c| c.rsplit_once('@'))
            .unwrap_or((&self.ep.user, "%"));
        format!("'{user}'@'{host}'")
    }

    /// `` `database`.`table` ``, or `` `database`.* `` without a table.
    fn object(&self, table: Option<&str>) -> String {
        format!(
            "{}.{}",
            ident(&self.ep.database),
            table.map_or("*".to_string(), ident)
        )
    }

    /// A driver error; a refused privilege names the GRANT that gives it.
    async fn refused(&self, err: sqlx::Error, privilege: &str, object: &str) -> ConnectorError {
        match &err {
            sqlx::Error::Database(db) if classify(db.as_ref()) == Some(DbFailure::Permission) => {
                let grant = format!("GRANT {privilege} ON {object} TO {}", self.account().await);
                server::denied(&self.endpoint, &self.ep.user, db.message(), &grant)
                    .caused_by(Cause::of(&err, self.password.as_ref()))
            }
            _ => self.error(err),
        }
    }

    /// A message about this endpoint, the password redacted.
    fn message(&self, text: impl AsRef<str>) -> ConnectorError {
        let text = match &self.password {
            Some(secret) => secret.redact(text.as_ref()),
            None => text.as_ref().to_string(),
        };
        ConnectorError::new(&self.endpoint, text)
    }
}

/// A connection to a destination in the sink's strict UTC session (for
/// restore points).
pub(crate) async fn open_destination(
    ep: &ServerEndpoint,
    base_dir: &Path,
) -> Result<Server, ConnectorError> {
    Server::connect("destination", ep, base_dir, 1, sink::SESSION).await
}

/// Connects once to `ep` for the `db` capability (so a refused password is
/// reported at once), then opens a pool of two whose sessions are strict
/// and in UTC like the connectors'. Returns the pool, the password (to
/// redact it from later errors) and whether the server is MariaDB.
pub(crate) async fn capability_pool(
    role: &str,
    ep: &ServerEndpoint,
    base_dir: &Path,
) -> Result<(MySqlPool, Option<Secret>, bool), ConnectorError> {
    let server = Server::connect(role, ep, base_dir, 2, sink::SESSION).await?;
    Ok((server.pool, server.password, server.mariadb))
}

/// How a query result column whose type sqlx names `type_name` (`INT`,
/// `VARCHAR`, `BIGINT UNSIGNED`, …) is read, in the binary protocol.
fn result_kind(type_name: &str) -> types::Kind {
    use types::Kind;
    match type_name {
        "BOOLEAN" => Kind::Bool,
        "BIGINT UNSIGNED" => Kind::BigUnsigned,
        n if n.ends_with(" UNSIGNED") => Kind::Unsigned,
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => Kind::Signed,
        "FLOAT" => Kind::Float,
        "DOUBLE" => Kind::Double,
        "DECIMAL" => Kind::Decimal,
        "DATE" => Kind::Date,
        "TIME" => Kind::Time,
        "DATETIME" => Kind::DateTime,
        "TIMESTAMP" => Kind::Timestamp,
        "JSON" => Kind::Json,
        "BIT" => Kind::Bit,
        "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" | "GEOMETRY" => {
            Kind::Bytes
        }
        _ => Kind::Text,
    }
}

/// The row-model type of a query result column (see [`result_kind`]).
pub(crate) fn result_type(type_name: &str) -> crate::model::value::ColumnType {
    result_kind(type_name).column_type()
}

/// Decodes one non-NULL binary-protocol value of a query result column.
pub(crate) fn decode_result(
    type_name: &str,
    raw: &[u8],
) -> Result<crate::model::value::Value, decode::DecodeError> {
    decode::decode(result_kind(type_name), raw)
}

/// Connection options from the endpoint's parts: never a URL, so the
/// password is not formatted into any string.
fn connect_options(
    ep: &ServerEndpoint,
    port: u16,
    password: Option<&Secret>,
) -> MySqlConnectOptions {
    let ssl = match ep.tls {
        TlsMode::Disable => MySqlSslMode::Disabled,
        TlsMode::Prefer => MySqlSslMode::Preferred,
        TlsMode::Require => MySqlSslMode::Required,
        TlsMode::VerifyFull => MySqlSslMode::VerifyIdentity,
    };
    let options = MySqlConnectOptions::new()
        .host(&ep.host)
        .port(port)
        .username(&ep.user)
        .database(&ep.database)
        .ssl_mode(ssl)
        .charset("utf8mb4")
        .timezone(Some("+00:00".to_string()));
    // An empty password means none (root on a fresh server has none); sent
    // as a password it would be refused.
    match password.filter(|p| !p.expose().is_empty()) {
        Some(secret) => options.password(secret.expose()),
        None => options,
    }
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
        let options = connect_options(ep, port, password.as_ref());
        let probe: super::stall::Probe = std::sync::Arc::new(move || {
            let options = options.clone();
            Box::pin(async move {
                let mut conn = options.connect().await?;
                conn.execute("SELECT 1").await?;
                conn.close().await
            })
        });
        probe
    });
    (port, probe)
}

/// `10.11.19-MariaDB-0+deb12u1` has a UUID type; MySQL and MariaDB before
/// 10.7 do not.
fn has_native_uuid(version: &str) -> bool {
    if !version.contains("MariaDB") {
        return false;
    }
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (10, 7),
        _ => false,
    }
}

/// The raw bytes of column `i` (`None` for NULL). Read without sqlx's type
/// checks, whose notion of a compatible type varies between MySQL and
/// MariaDB versions (and which reads a zero date as NULL).
fn raw(row: &MySqlRow, i: usize) -> Option<&[u8]> {
    let value = row.try_get_raw(i).ok()?;
    <&[u8] as Decode<MySql>>::decode(value).ok()
}

/// Column `i` as text (`None` for NULL); catalogue queries cast what they
/// select to text so this serves every server version.
pub(crate) fn text(row: &MySqlRow, i: usize) -> Option<String> {
    raw(row, i).map(|b| String::from_utf8_lossy(b).into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_errno_28_means_a_full_disk() {
        assert!(says_errno_28(
            "Got error 28 \"No space left on device\" from storage engine InnoDB"
        ));
        assert!(says_errno_28(
            "Error writing file '/tmp/MY1' (Errcode: 28 \"No space left on device\")"
        ));
        assert!(!says_errno_28("Table 'orders_2028' is read only"));
        assert!(!says_errno_28("Got error 128 from storage engine"));
    }

    use super::*;

    #[test]
    fn identifiers_are_quoted_with_backticks() {
        assert_eq!(ident("a`b"), "`a``b`");
    }

    #[test]
    fn uuid_support_follows_the_server_version() {
        assert!(has_native_uuid("10.11.19-MariaDB-0+deb12u1"));
        assert!(has_native_uuid("11.4.2-MariaDB"));
        assert!(!has_native_uuid("10.6.4-MariaDB"));
        assert!(!has_native_uuid("8.0.36"));
    }
}
