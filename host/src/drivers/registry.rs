//! The one list of databases. Everything outside `drivers/` asks this
//! registry what a database offers, never matches on one: adding a database
//! is a folder under `drivers/` and one line in [`DRIVERS`].

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::feed::ChangeFeed;
use super::restore::RestoreStore;
use super::stall::Probe;
use super::{ConnectorError, Sink, Source};
use crate::capabilities::db::DbConnector;
use crate::config::Endpoint;

/// Every database, in the order messages name them.
pub const DRIVERS: &[&dyn Driver] = &[
    &super::sqlite::driver::Sqlite,
    &super::postgres::driver::Postgres,
    &super::mysql::driver::Mysql,
    &super::csv::driver::Csv,
    &super::plugin::driver::Plugin,
];

/// One database: how to open it, and what it offers beyond reading and
/// writing rows (each optional capability is `None` where it has none).
#[async_trait]
pub trait Driver: Sync {
    /// Its name in messages ("PostgreSQL").
    fn name(&self) -> &'static str;

    /// What its endpoints are, in the plural ("CSV folders").
    fn noun(&self) -> &'static str;

    /// Whether `endpoint` is one of its.
    fn handles(&self, endpoint: &Endpoint) -> bool;

    /// What checks and validation need to know of it.
    fn traits(&self) -> Traits {
        Traits::default()
    }

    /// Opens `endpoint` for reading; relative paths resolve against
    /// `base_dir`.
    async fn reader(
        &self,
        endpoint: &Endpoint,
        base_dir: &Path,
    ) -> Result<Box<dyn Source>, ConnectorError>;

    /// Opens `endpoint` for writing.
    async fn writer(
        &self,
        endpoint: &Endpoint,
        base_dir: &Path,
    ) -> Result<Box<dyn Sink>, ConnectorError>;

    /// What opens it for a plugin's `db` grant, if plugins may reach it.
    fn db_capability(
        &self,
        _endpoint: &Endpoint,
        _base_dir: &Path,
    ) -> Option<Arc<dyn DbConnector>> {
        None
    }

    /// When `endpoint` is a database server: how messages name it in
    /// `role` ("source", "destination"), and how the stall watchdog asks it
    /// whether it still answers (a new connection running `SELECT 1`).
    fn server(
        &self,
        _role: &str,
        _endpoint: &Endpoint,
        _base_dir: &Path,
    ) -> Option<Result<(String, Probe), ConnectorError>> {
        None
    }

    /// Opens the change feed of `endpoint` read through `slot`, if it has
    /// one (CDC syncs).
    async fn change_feed(
        &self,
        _endpoint: &Endpoint,
        _base_dir: &Path,
        _slot: &str,
    ) -> Option<Result<Box<dyn ChangeFeed>, ConnectorError>> {
        None
    }

    /// Opens its restore-point store, if it keeps restore points.
    async fn restore_store(
        &self,
        _endpoint: &Endpoint,
        _base_dir: &Path,
    ) -> Option<Result<Box<dyn RestoreStore>, ConnectorError>> {
        None
    }
}

/// Facts about a database that checks and validation rely on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traits {
    /// Whether column names that differ only in case are one column.
    pub case_blind_names: bool,
    /// The most columns a table may have, if it has a limit, and what
    /// sets it ("MariaDB/MySQL (InnoDB)").
    pub max_columns: Option<(usize, &'static str)>,
    /// Whether a float's -0.0 keeps its sign.
    pub keeps_negative_zero: bool,
    /// Whether it is an SQL destination: it merges a scratch table into a
    /// table by key, swaps one in, and takes single rows (syncs,
    /// consolidation, retries), where its sink offers an
    /// [`SqlDestination`](super::SqlDestination) ([`Sink::sql`]).
    pub sql: bool,
    /// Whether it keeps restore points ([`Driver::restore_store`]).
    pub restore_points: bool,
    /// Whether plugins may open it through a `db` grant.
    pub db_capability: bool,
    /// Whether it has a change feed ([`Driver::change_feed`]): CDC syncs.
    pub change_feed: bool,
}

/// The driver of `endpoint`.
pub fn driver(endpoint: &Endpoint) -> &'static dyn Driver {
    DRIVERS
        .iter()
        .copied()
        .find(|d| d.handles(endpoint))
        .expect("every endpoint kind has a driver in DRIVERS")
}

/// The names of the databases that have `feature`, for messages:
/// "SQLite, PostgreSQL and MariaDB/MySQL".
pub fn names_with(feature: impl Fn(&Traits) -> bool) -> String {
    let names: Vec<&str> = DRIVERS
        .iter()
        .filter(|d| feature(&d.traits()))
        .map(|d| d.name())
        .collect();
    match names.split_last() {
        None => "no database".to_string(),
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} and {last}", rest.join(", ")),
    }
}

/// The SQL destinations, for messages of what needs one.
pub fn sql_destinations() -> String {
    names_with(|t| t.sql)
}

/// What the databases without `feature` are, for messages: "CSV folders
/// or plugin sinks".
pub fn nouns_without(feature: impl Fn(&Traits) -> bool) -> String {
    let nouns: Vec<&str> = DRIVERS
        .iter()
        .filter(|d| !feature(&d.traits()))
        .map(|d| d.noun())
        .collect();
    nouns.join(" or ")
}

/// The error of a driver handed an endpoint of another kind (a bug).
pub(super) fn not_mine(own: &dyn Driver, endpoint: &Endpoint) -> ConnectorError {
    ConnectorError::new(
        own.name(),
        format!(
            "was handed a {} endpoint, which it cannot open",
            driver(endpoint).name()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_databases_that_have_a_feature() {
        assert_eq!(
            names_with(|t| t.restore_points),
            "SQLite, PostgreSQL and MariaDB/MySQL"
        );
        assert_eq!(
            names_with(|t| t.max_columns.is_some_and(|(n, _)| n == 1600)),
            "PostgreSQL"
        );
        assert_eq!(names_with(|_| false), "no database");
        assert_eq!(
            nouns_without(|t| t.restore_points),
            "CSV folders or plugin sinks"
        );
    }

    /// A driver that says it is an SQL destination opens sinks that offer
    /// an SQL side, and one that says not opens sinks that offer none
    /// (SQLite and CSV, which need no server).
    #[tokio::test]
    async fn an_sql_destination_is_one_whose_sink_offers_sql() {
        let dir = tempfile::tempdir().unwrap();
        let endpoints = [
            Endpoint::Sqlite {
                path: "vault.db".into(),
            },
            Endpoint::Csv {
                path: "out".into(),
                delimiter: ',',
                null: String::new(),
            },
        ];
        for endpoint in endpoints {
            let driver = driver(&endpoint);
            let mut sink = driver.writer(&endpoint, dir.path()).await.unwrap();
            assert_eq!(
                sink.sql().is_some(),
                driver.traits().sql,
                "{}",
                driver.name()
            );
            let offered = sink.sql().is_some();
            assert_eq!(sink.sql_mut().is_some(), offered, "{}", driver.name());
        }
    }

    /// One endpoint of every kind, as a migration file spells it.
    fn every_kind() -> Vec<Endpoint> {
        let kinds = [
            "type = \"csv\"\npath = \"out\"",
            "type = \"sqlite\"\npath = \"vault.db\"",
            "type = \"postgres\"\ndatabase = \"test\"\nuser = \"postgres\"",
            "type = \"mysql\"\ndatabase = \"test\"\nuser = \"root\"",
            "type = \"plugin\"\nplugin = \"sink.wasm\"",
        ];
        kinds.map(|k| toml::from_str(k).unwrap()).to_vec()
    }

    /// What the migration file's checks know of an endpoint kind (in
    /// `config/endpoint.rs`, below the drivers) agrees with what its driver
    /// says, and a driver without a change feed opens none.
    #[tokio::test]
    async fn the_file_checks_and_the_drivers_agree_on_what_each_kind_offers() {
        let endpoints = every_kind();
        assert_eq!(endpoints.len(), DRIVERS.len(), "one endpoint per driver");
        for endpoint in &endpoints {
            let driver = driver(endpoint);
            let traits = driver.traits();
            let name = driver.name();
            assert_eq!(endpoint.has_change_log(), traits.change_feed, "{name}");
            assert_eq!(endpoint.is_database(), traits.db_capability, "{name}");
            if !traits.change_feed {
                let feed = driver.change_feed(endpoint, Path::new("."), "slot").await;
                assert!(feed.is_none(), "{name}");
            }
            let capability = driver.db_capability(endpoint, Path::new("."));
            assert_eq!(capability.is_some(), traits.db_capability, "{name}");
        }
    }

    #[test]
    fn every_driver_has_a_distinct_name() {
        let mut names: Vec<&str> = DRIVERS.iter().map(|d| d.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DRIVERS.len());
    }
}
