//! The host-owned `db` capability: a plugin opens a connection the migration
//! file grants it by name (`grants = { db = [{ connection = "crm" }] }`), and
//! the host connects with sqlx. The plugin never sees the address, the user
//! or the password, and driver messages reach it with the password redacted.
//!
//! Read-only grants are enforced by the database first: PostgreSQL and
//! MySQL/MariaDB run every statement in a `READ ONLY` transaction, SQLite
//! opens the file read-only. A read-only transaction still lets a powerful
//! user reach the server's files and settings, so a connection whose user
//! is privileged (superuser, FILE, SUPER, …) is refused when it opens unless
//! the grant says `allow_privileged = true`, and read-only grants refuse
//! statements naming file, program and server-setting operations
//! ([`guard`]). SQLite runs one statement per call. Each statement also runs
//! under the grant's timeout (on the server where it has one) and its row
//! and byte caps, checked while rows stream in.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::OnceCell;

use super::CapabilityError;
use crate::model::value::{Column, ColumnType, Value};

/// Opens the database behind a grant; each database's driver supplies one.
#[async_trait]
pub trait DbConnector: Send + Sync {
    /// Connects for grant `grant`: read-only sessions unless `write`.
    async fn connect(&self, grant: &str, write: bool) -> Result<Box<dyn DbSession>, ConnectError>;
}

/// Why a grant's database could not be opened. Its message and its source
/// are free of the password.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ConnectError {
    /// What went wrong and what to do.
    pub message: String,
    /// The error it came from, if one did (a connector error, whose own
    /// cause is redacted; an SQLite error).
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ConnectError {
    /// An error that no other caused.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// An error caused by `source`, which must hold no password: its
    /// message is `message`.
    pub fn caused(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// An open database a plugin's statements run on.
#[async_trait]
pub trait DbSession: Send + Sync {
    /// What the user may do beyond reading and writing data, each named;
    /// empty for an ordinary user.
    async fn privileges(&self) -> Result<Vec<String>, ConnectError>;

    /// What the pre-run check says once the database opened.
    fn verified(&self, allow_privileged: bool) -> String {
        match allow_privileged {
            true => {
                "it connects (allow_privileged: its user's privileges are not checked)".to_string()
            }
            false => {
                "it connects, and its user holds no superuser, FILE or SUPER privileges".to_string()
            }
        }
    }

    /// What a read-only grant must not run in `sql` (files, programs,
    /// server settings), if anything.
    fn refusal(&self, sql: &str) -> Option<String>;

    /// Runs a statement that returns rows, under `limits`.
    async fn query(
        &self,
        sql: &str,
        params: &[Value],
        write: bool,
        limits: DbLimits,
    ) -> Result<QueryResult, DbError>;

    /// Runs a statement that changes rows; returns how many it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        write: bool,
        limits: DbLimits,
    ) -> Result<u64, DbError>;
}

/// A connection granted to a plugin, with its limits. Clones share one pool,
/// opened on first use, so every instance of a plugin reuses it.
#[derive(Clone)]
pub struct DbGrant {
    /// The connection's name in the migration file.
    pub name: String,
    /// Opens what it points at.
    connector: Arc<dyn DbConnector>,
    /// Whether the plugin may change data.
    pub write: bool,
    /// Whether a user with powers beyond data (superuser, FILE, SUPER) is
    /// accepted; refused when the connection opens otherwise.
    pub allow_privileged: bool,
    /// Caps on each statement.
    pub limits: DbLimits,
    session: Arc<OnceCell<Box<dyn DbSession>>>,
}

impl fmt::Debug for DbGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbGrant")
            .field("name", &self.name)
            .field("write", &self.write)
            .field("allow_privileged", &self.allow_privileged)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Caps on each statement a plugin runs.
#[derive(Debug, Clone, Copy)]
pub struct DbLimits {
    /// The most rows a query may return.
    pub max_rows: usize,
    /// The most bytes of values a query may return.
    pub max_bytes: usize,
    /// How long a statement may run.
    pub timeout: Duration,
}

/// What a query returned: its columns and rows in the row model.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    /// The result's columns, in order.
    pub columns: Vec<Column>,
    /// The rows; value `i` belongs to column `i`.
    pub rows: Vec<Vec<Value>>,
}

/// A connection a plugin opened: the index of its grant among the plugin's.
#[derive(Debug, Clone, Copy)]
pub struct DbHandle {
    /// Which of the plugin's grants it uses.
    pub grant: usize,
}

/// Why a statement failed, before it is phrased for the plugin.
#[derive(Debug)]
pub enum DbError {
    /// The database refused a write because the session is read-only.
    ReadOnly(String),
    /// The host refused a statement of a read-only grant: it names what.
    Refused(String),
    /// SQLite was handed more than one statement.
    SeveralStatements,
    /// The statement ran past the grant's timeout.
    Timeout,
    /// The result had more rows than `max_rows`.
    TooManyRows,
    /// The result held more bytes than `max_bytes`.
    TooLarge,
    /// Anything else the driver or the database said (password redacted).
    Driver(String),
}

impl DbGrant {
    /// A grant of connection `name`; a privileged user is refused (see
    /// [`DbGrant::allow_privileged`]).
    pub fn new(name: &str, connector: Arc<dyn DbConnector>, write: bool, limits: DbLimits) -> Self {
        Self {
            name: name.to_string(),
            connector,
            write,
            allow_privileged: false,
            limits,
            session: Arc::new(OnceCell::new()),
        }
    }

    /// Connects as the plugin would and checks the user's privileges: the
    /// pre-run check of a grant. Says what it found.
    pub async fn verify(&self) -> Result<String, CapabilityError> {
        Ok(self.session().await?.verified(self.allow_privileged))
    }

    /// The grant's database, connected on first use, its user's privileges
    /// checked. A failure is not kept, so a later `open` tries again.
    async fn session(&self) -> Result<&dyn DbSession, CapabilityError> {
        let opened = self
            .session
            .get_or_try_init(|| async {
                let session = self.connector.connect(&self.name, self.write).await?;
                if !self.allow_privileged {
                    self.refuse_privileged(session.as_ref()).await?;
                }
                Ok(session)
            })
            .await;
        opened.map(Box::as_ref).map_err(|e: ConnectError| {
            CapabilityError::Failed(format!(
                "connection `{}` could not be opened: {e}",
                self.name
            ))
        })
    }

    /// Fails when the user can do more than read and write data: a
    /// read-only transaction does not stop a superuser's `COPY … TO
    /// PROGRAM` nor a FILE holder's `INTO OUTFILE`.
    async fn refuse_privileged(&self, session: &dyn DbSession) -> Result<(), ConnectError> {
        let powers = session.privileges().await.map_err(|e| {
            let message = format!("its user's privileges could not be read ({e}); set allow_privileged = true in this plugin's grants.db entry for `{}` to skip the check", self.name);
            ConnectError::caused(message, e)
        })?;
        if powers.is_empty() {
            return Ok(());
        }
        Err(ConnectError::new(format!(
            "its user holds privileges beyond reading and writing data ({}), which a plugin could use to read or write the server's files, run programs or change server settings; grant a connection whose user has only the privileges the plugin needs, or set allow_privileged = true in this plugin's grants.db entry for `{}` to accept it",
            powers.join(", "),
            self.name
        )))
    }

    /// Runs a statement that returns rows.
    pub async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, CapabilityError> {
        let session = self.session().await?;
        let result = match self.refused(session, sql) {
            Some(e) => Err(e),
            None => session.query(sql, params, self.write, self.limits).await,
        };
        result.map_err(|e| self.error(e))
    }

    /// Runs a statement that changes rows; returns how many it changed.
    pub async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, CapabilityError> {
        let session = self.session().await?;
        let result = match self.refused(session, sql) {
            Some(e) => Err(e),
            None => session.execute(sql, params, self.write, self.limits).await,
        };
        result.map_err(|e| self.error(e))
    }

    /// Refuses a read-only grant's statement that reaches files, programs
    /// or server settings.
    fn refused(&self, session: &dyn DbSession, sql: &str) -> Option<DbError> {
        match self.write {
            true => None,
            false => session.refusal(sql).map(DbError::Refused),
        }
    }

    /// A statement's failure as the plugin sees it, naming the setting to
    /// change.
    fn error(&self, err: DbError) -> CapabilityError {
        let name = &self.name;
        let limits = &self.limits;
        match err {
            DbError::ReadOnly(why) => CapabilityError::Denied(format!(
                "connection `{name}` is granted read-only, and the database refused this write ({why}); set write = true in this plugin's grants.db entry for `{name}` if it should write"
            )),
            DbError::Refused(what) => CapabilityError::Denied(format!(
                "connection `{name}` is granted read-only, and the host refuses {what} on read-only grants: statements that reach the server's files, programs or settings (which a read-only transaction does not stop), and SQL that cannot be read safely, are refused before they are sent; read data with plain queries, or grant a connection with write = true whose user has only the privileges the plugin needs"
            )),
            DbError::SeveralStatements => CapabilityError::Failed(format!(
                "connection `{name}` runs one statement per call, and this SQL holds more than one (nothing of it ran); call query or execute once for each statement"
            )),
            DbError::Timeout => CapabilityError::Failed(format!(
                "the statement on connection `{name}` ran longer than its grant's timeout_ms = {} and was cancelled; make it cheaper (an index, a LIMIT) or raise timeout_ms",
                limits.timeout.as_millis()
            )),
            DbError::TooManyRows => CapabilityError::Failed(format!(
                "the query on connection `{name}` returned more than its grant's max_rows = {} rows; add a LIMIT (or page through with WHERE key > last) or raise max_rows",
                limits.max_rows
            )),
            DbError::TooLarge => CapabilityError::Failed(format!(
                "the query on connection `{name}` returned more than its grant's max_result_kb = {} KiB; select fewer columns or rows, or raise max_result_kb",
                limits.max_bytes / 1024
            )),
            DbError::Driver(message) => {
                CapabilityError::Failed(format!("connection `{name}`: {message}"))
            }
        }
    }
}

/// Finds the grant of connection `name` among a plugin's grants.
pub fn open(grants: &[DbGrant], name: &str) -> Result<DbHandle, CapabilityError> {
    if grants.is_empty() {
        return Err(CapabilityError::Denied(format!(
            "no database connection is granted to this plugin, so `{name}` is refused; add grants.db = [{{ connection = \"{name}\" }}] to it in the migration file (naming a [connections.{name}])"
        )));
    }
    match grants.iter().position(|g| g.name == name) {
        Some(grant) => Ok(DbHandle { grant }),
        None => {
            let granted: Vec<&str> = grants.iter().map(|g| g.name.as_str()).collect();
            Err(CapabilityError::Denied(format!(
                "connection `{name}` is not in this plugin's grants.db ({}); add {{ connection = \"{name}\" }} there if it should reach it",
                granted.join(", ")
            )))
        }
    }
}

/// Gathers a result's rows, stopping at the grant's caps.
pub struct Collector {
    pub(crate) limits: DbLimits,
    pub(crate) rows: Vec<Vec<Value>>,
    pub(crate) bytes: usize,
}

impl Collector {
    /// An empty result under `limits`.
    pub fn new(limits: DbLimits) -> Self {
        Self {
            limits,
            rows: Vec::new(),
            bytes: 0,
        }
    }

    /// Keeps a row, or says which cap it would break.
    pub fn push(&mut self, row: Vec<Value>) -> Result<(), DbError> {
        if self.rows.len() >= self.limits.max_rows {
            return Err(DbError::TooManyRows);
        }
        self.bytes += row.iter().map(value_size).sum::<usize>();
        if self.bytes > self.limits.max_bytes {
            return Err(DbError::TooLarge);
        }
        self.rows.push(row);
        Ok(())
    }
}

/// About how many bytes a value takes in a result.
fn value_size(value: &Value) -> usize {
    match value {
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 8,
    }
}

/// A result column.
pub fn column(name: &str, column_type: ColumnType) -> Column {
    Column {
        name: name.to_string(),
        type_: column_type,
        nullable: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(name: &str) -> DbGrant {
        let limits = DbLimits {
            max_rows: 2,
            max_bytes: 10,
            timeout: Duration::from_secs(1),
        };
        DbGrant::new(name, Arc::new(Nowhere), false, limits)
    }

    /// A connector the tests never open.
    struct Nowhere;

    #[async_trait]
    impl DbConnector for Nowhere {
        async fn connect(&self, _: &str, _: bool) -> Result<Box<dyn DbSession>, ConnectError> {
            Err(ConnectError::new("not opened in these tests"))
        }
    }

    #[test]
    fn only_granted_connections_open() {
        let none = open(&[], "crm").unwrap_err();
        assert!(
            matches!(&none, CapabilityError::Denied(m) if m.contains("no database connection is granted") && m.contains("grants.db = [{ connection = \"crm\" }]")),
            "{none:?}"
        );
        let other = open(&[grant("crm")], "billing").unwrap_err();
        assert!(
            matches!(&other, CapabilityError::Denied(m) if m.contains("`billing` is not in this plugin's grants.db (crm)")),
            "{other:?}"
        );
        assert_eq!(open(&[grant("a"), grant("crm")], "crm").unwrap().grant, 1);
    }

    #[test]
    fn the_collector_stops_at_either_cap() {
        let mut rows = Collector::new(grant("g").limits);
        rows.push(vec![Value::Int(1)]).unwrap();
        assert!(matches!(
            rows.push(vec![Value::Int(2)]),
            Err(DbError::TooLarge)
        ));
        let mut few = Collector::new(DbLimits {
            max_bytes: 1000,
            ..grant("g").limits
        });
        few.push(vec![Value::Null]).unwrap();
        few.push(vec![Value::Null]).unwrap();
        assert!(matches!(
            few.push(vec![Value::Null]),
            Err(DbError::TooManyRows)
        ));
    }
}
