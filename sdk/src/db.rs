//! Database connections owned by the host. The migration file defines a
//! connection (`[connections.crm]`) and grants it to this plugin (`grants =
//! { db = [{ connection = "crm" }] }`); the plugin opens it by name and
//! never sees its address or password. Reads only, unless the grant says
//! `write = true`: the database itself refuses writes, and they come back as
//! [`DbError::Denied`].
//!
//! ```no_run
//! use credvault_sdk::Value;
//! use credvault_sdk::db::Connection;
//!
//! let crm = Connection::open("crm")?;
//! let found = crm.query(
//!     "SELECT name FROM countries WHERE code = $1",
//!     &[Value::Text("FR".into())],
//! )?;
//! for row in &found.rows {
//!     println!("{:?}", row[0]);
//! }
//! # Ok::<(), credvault_sdk::db::DbError>(())
//! ```
//!
//! Placeholders are the database's own: `$1`, `$2` … for PostgreSQL, `?`
//! for MySQL, MariaDB and SQLite. Each call is one statement in its own
//! transaction, under the grant's `timeout_ms`, `max_rows` and
//! `max_result_kb`.
//!
//! Outside the host (in native `cargo test`), a connection opens only if the
//! test registered a fake for its name with [`crate::testing::fake_db`].

use std::fmt;

use crate::{Column, Value};

/// What a query returned.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    /// The result's columns in order, each with the type its values have.
    pub columns: Vec<Column>,
    /// The rows; value `i` of a row belongs to column `i`.
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    /// The index of the column named `name`, if the result has one.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c.name == name)
    }
}

/// Why a statement did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbError {
    /// The migration file does not grant this (no such connection in
    /// `grants.db`, or a write through a read-only grant); the message says
    /// what to grant.
    Denied(String),
    /// Granted, but it failed: unreachable, a bad statement, too many rows,
    /// too slow.
    Failed(String),
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Denied(m) => write!(f, "access denied: {m}"),
            DbError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for DbError {}

impl From<DbError> for String {
    fn from(e: DbError) -> String {
        e.to_string()
    }
}

/// An open connection. Dropping it tells the host it is no longer needed.
pub struct Connection {
    inner: Inner,
}

enum Inner {
    #[cfg(target_arch = "wasm32")]
    Host(crate::bindings::credvault::migrate::db::Connection),
    #[cfg_attr(target_arch = "wasm32", allow(dead_code))]
    Fake(crate::testing::FakeDb),
}

impl Connection {
    /// Opens the granted connection `name`.
    pub fn open(name: &str) -> Result<Connection, DbError> {
        #[cfg(target_arch = "wasm32")]
        {
            use crate::bindings::credvault::migrate::db;
            db::Connection::open(name)
                .map(|c| Connection {
                    inner: Inner::Host(c),
                })
                .map_err(from_host)
        }
        #[cfg(not(target_arch = "wasm32"))]
        {
            match crate::testing::find_fake_db(name) {
                Some(fake) => Ok(Connection {
                    inner: Inner::Fake(fake),
                }),
                None => Err(DbError::Failed(format!(
                    "database connections are only available inside the credvault host (asked for `{name}`); in a native test, register a fake with credvault_sdk::testing::fake_db(\"{name}\", …)"
                ))),
            }
        }
    }

    /// Runs a statement that returns rows, with `params` bound to its
    /// placeholders.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult, DbError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(c) => c
                .query(sql, params)
                .map(|r| QueryResult {
                    columns: r.columns,
                    rows: r.rows,
                })
                .map_err(from_host),
            Inner::Fake(fake) => fake.query(sql, params),
        }
    }

    /// Runs a statement that changes rows; returns how many it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        match &self.inner {
            #[cfg(target_arch = "wasm32")]
            Inner::Host(c) => c.execute(sql, params).map_err(from_host),
            Inner::Fake(fake) => fake.query(sql, params).map(|r| r.rows.len() as u64),
        }
    }
}

#[cfg(target_arch = "wasm32")]
fn from_host(e: crate::bindings::credvault::migrate::host::HostError) -> DbError {
    use crate::bindings::credvault::migrate::host::HostError;
    match e {
        HostError::Denied(m) => DbError::Denied(m),
        HostError::Failed(m) => DbError::Failed(m),
    }
}
