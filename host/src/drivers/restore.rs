//! Restore points as a destination keeps them: a catalog table and a copy
//! of each table, made by the server itself. Each database's store lives in
//! its driver's folder (`restore.rs`); `jobs::restore` takes, lists and
//! rolls back points through [`RestoreStore`].

use async_trait::async_trait;
use serde::Serialize;

use super::ConnectorError;
pub(crate) use super::restore_watched::WatchedStore;

/// The catalog table of restore points, in the destination.
pub const CATALOG: &str = "_credvault_restore_points";

/// The columns every dialect's catalog has, in this order.
pub const CATALOG_COLUMNS: &str = "point, seq, migration, created_at, expires_at, table_name, existed, backup_table, row_count, checksum, ddl";

/// One table of a restore point.
#[derive(Debug, Clone, Serialize)]
pub struct PointTable {
    /// The destination table.
    pub table: String,
    /// Whether it existed when the point was made; if not, a rollback
    /// drops it.
    pub existed: bool,
    /// The table holding its copy.
    pub backup: Option<String>,
    /// Rows in the copy.
    pub rows: u64,
    /// The copy's checksum (see `jobs::validate::TableDigest`).
    pub checksum: Option<String>,
    /// What the dialect needs to recreate the table (SQLite: its original
    /// CREATE statements).
    #[serde(skip)]
    pub ddl: Option<String>,
}

/// A restore point: the destination tables of one run as they were before
/// it wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Point {
    /// `<migration>-<yyyymmdd-hhmmss>` (UTC).
    pub name: String,
    /// Its number in the destination, which names its copies.
    #[serde(skip)]
    pub seq: i64,
    /// The migration that made it.
    pub migration: String,
    /// When (RFC 3339, UTC).
    pub created_at: String,
    /// When its retention ends; the next point made after that removes it.
    pub expires_at: String,
    /// Whether its retention has ended.
    pub expired: bool,
    /// Its tables.
    pub tables: Vec<PointTable>,
}

impl Point {
    /// Rows over all its tables.
    pub fn rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// One catalog row: a point's header and one of its tables.
pub type CatalogRow = (
    String,
    i64,
    String,
    String,
    String,
    String,
    bool,
    Option<String>,
    i64,
    Option<String>,
    Option<String>,
);

/// What rolling a table back did to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Its rows were replaced in one transaction; the table itself (its
    /// grants, triggers, foreign keys) stayed.
    Replaced,
    /// It had been dropped or replaced, so it was recreated from the copy.
    Recreated,
    /// It did not exist at the point, so it was dropped.
    Dropped,
}

/// A destination that keeps restore points: its catalog and its copies.
#[async_trait]
pub trait RestoreStore: Send + Sync {
    /// `destination kind where`, for messages.
    fn describe(&self) -> String;

    /// Every catalog row, all migrations.
    async fn catalog(&self) -> Result<Vec<CatalogRow>, ConnectorError>;

    /// Adds a point's rows to the catalog.
    async fn record(&self, point: &Point) -> Result<(), ConnectorError>;

    /// Removes a point's rows from the catalog.
    async fn forget(&self, point: &str) -> Result<(), ConnectorError>;

    /// Whether `table` exists.
    async fn exists(&self, table: &str) -> Result<bool, ConnectorError>;

    /// Copies `table` into a new table `backup`; returns what the dialect
    /// keeps to recreate the table.
    async fn back_up(&self, table: &str, backup: &str) -> Result<Option<String>, ConnectorError>;

    /// Puts the copy back into the table: its rows replaced in one
    /// transaction if it still has the copy's columns, else recreated.
    async fn restore(&self, entry: &PointTable, backup: &str) -> Result<Action, ConnectorError>;

    /// Drops `table` if it exists.
    async fn drop_table(&self, table: &str) -> Result<(), ConnectorError>;

    /// Foreign keys of other tables that act on a delete from `table`
    /// (`ON DELETE CASCADE`, `SET NULL`, `SET DEFAULT`), each described
    /// for a message.
    async fn cascades(&self, table: &str) -> Result<Vec<String>, ConnectorError>;
}

/// `INSERT INTO catalog (…) VALUES (…)` with the dialect's placeholders
/// (`mark(1)` … `mark(11)`).
pub fn insert_sql(catalog: &str, mark: impl Fn(usize) -> String) -> String {
    let marks: Vec<String> = (1..=11).map(mark).collect();
    format!(
        "INSERT INTO {catalog} ({CATALOG_COLUMNS}) VALUES ({})",
        marks.join(", ")
    )
}
