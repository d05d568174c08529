//! Native connectors: sources and sinks the host drives directly (CSV files,
//! SQLite, and database servers through sqlx). They speak the same row model
//! as wasm plugins.
//!
//! Every source reads a table in a stable order (its primary key when it has
//! one) so a run can resume after the last committed row; every sink commits
//! each batch together with a [`Checkpoint`] where it can, so a resumed run
//! neither loses nor repeats a row.

/// Runs sync [`Step`]s on a transaction of any sqlx database and returns
/// their numbers (written once for the three SQL sinks, whose connection
/// types differ).
macro_rules! run_steps {
    ($tx:expr, $steps:expr) => {
        async {
            let mut numbers = Vec::with_capacity($steps.len());
            for step in $steps {
                numbers.push(match step {
                    $crate::drivers::Step::Count(sql) => {
                        let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *$tx).await?;
                        n.max(0) as u64
                    }
                    $crate::drivers::Step::Exec(sql) => {
                        sqlx::query(sql).execute(&mut *$tx).await?.rows_affected()
                    }
                });
            }
            Ok::<Vec<u64>, sqlx::Error>(numbers)
        }
        .await
    };
}

/// Binds one catalog row (a point and one of its tables) to an
/// [`insert_sql`] statement, in its column order; a macro because the three
/// databases' query types differ.
macro_rules! bind_catalog_row {
    ($query:expr, $point:expr, $table:expr) => {
        $query
            .bind(&$point.name)
            .bind($point.seq)
            .bind(&$point.migration)
            .bind(&$point.created_at)
            .bind(&$point.expires_at)
            .bind(&$table.table)
            .bind($table.existed)
            .bind(&$table.backup)
            .bind($table.rows as i64)
            .bind(&$table.checksum)
            .bind(&$table.ddl)
    };
}

mod cause;
mod csv;
pub mod feed;
pub(crate) mod guard;
mod literal;
pub mod merge;
pub(crate) mod mysql;
pub mod owner;
pub mod plugin;
pub(crate) mod postgres;
pub mod registry;
pub mod restore;
mod restore_watched;
pub mod server;
pub(crate) mod sqlite;
pub(crate) mod stall;

pub use cause::Cause;
pub use plugin::use_runtime;
pub use postgres::{Lsn, PgChanges, SlotHealth, SourceChange, TableChange};

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

pub use crate::model::cursor::Since;

use crate::capabilities::Grants;
use crate::config::{Endpoint, GrantsSpec, IfExists, Migration};
use crate::model::schema::Schema;
use crate::model::value::{Column, ColumnType, Row, TableInfo, type_name};

/// What a source column's native type says beyond its row-model type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// An array, carried as a JSON array, of elements of this type.
    Array(ColumnType),
    /// A decimal of `precision` digits, `scale` of them after the point.
    Decimal {
        /// Total significant digits.
        precision: u32,
        /// Digits after the point.
        scale: u32,
    },
}

impl Native {
    /// Whether this still describes an output column of type `t` (a
    /// mapping or a transform may have retyped it).
    pub fn fits(self, t: ColumnType) -> bool {
        match self {
            Native::Array(_) => t == ColumnType::Json,
            Native::Decimal { .. } => t == ColumnType::Decimal,
        }
    }
}

/// The native type a sink was told of for `column` of `table`, if any.
pub(crate) fn native_of(
    natives: &std::collections::HashMap<String, Vec<(String, Native)>>,
    table: &str,
    column: &str,
) -> Option<Native> {
    let columns = natives.get(table)?;
    columns
        .iter()
        .find(|(name, _)| name == column)
        .map(|(_, n)| *n)
}

/// A connector failure, with the endpoint it concerns and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{endpoint}: {message}")]
pub struct ConnectorError {
    /// Which source or destination, e.g. `source csv data/`.
    pub endpoint: String,
    /// What went wrong and, where known, what to do about it.
    pub message: String,
    /// What a run can do about it.
    pub kind: FailureKind,
    /// The driver, file or CSV error it came from, redacted like `message`.
    #[source]
    pub source: Option<Cause>,
}

/// What a failure means for a run that meets it mid-table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureKind {
    /// Nothing a retry mends.
    #[default]
    Other,
    /// The connection broke or the server is restarting: what was
    /// committed stands, and a new connection may carry on.
    ConnectionLost,
    /// The destination's disk is full: what was committed stands, and the
    /// run resumes once there is room.
    Full,
}

impl ConnectorError {
    /// An error about `endpoint`.
    pub fn new(endpoint: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            message: message.into(),
            kind: FailureKind::Other,
            source: None,
        }
    }

    /// The same error, caused by `err` (one that holds no password: use
    /// [`ConnectorError::caused_by`] for one that may).
    pub fn because<E: std::error::Error + 'static>(self, err: &E) -> Self {
        self.caused_by(Cause::of(err, None))
    }

    /// The same error, caused by `cause`.
    pub fn caused_by(self, cause: Cause) -> Self {
        Self {
            source: Some(cause),
            ..self
        }
    }

    /// The same error, of `kind`.
    pub fn of_kind(self, kind: FailureKind) -> Self {
        Self { kind, ..self }
    }
}

/// What a table a sink prepares will hold: its columns, and which of them
/// carry a source column's native type unchanged, so a destination that
/// has that type creates them as such (others get the row-model type's
/// default). One argument, so no sink is prepared without them.
#[derive(Debug, Clone, Copy)]
pub struct Shape<'a> {
    /// The columns, in order.
    pub columns: &'a [Column],
    /// Columns with a native type to keep.
    pub natives: &'a [(String, Native)],
}

impl<'a> Shape<'a> {
    /// Columns with no native type to keep (scratch tables).
    pub fn plain(columns: &'a [Column]) -> Self {
        Self {
            columns,
            natives: &[],
        }
    }
}

/// A batch read from a source table.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows, in source order.
    pub rows: Vec<Row>,
    /// The 1-based position of the first row in its table.
    pub first: u64,
    /// Where a source plugin stands after the last row: its opaque
    /// resumable position, kept in the checkpoint.
    pub position: Option<String>,
    /// Rows the source could not read as rows of the table, by index in
    /// `rows` (ascending): each goes to the table's row-error policy.
    pub faults: Vec<SourceFault>,
}

/// A source row that could not be read as a row of its table (a CSV line
/// with too few or too many fields, text that is not UTF-8, a quote that
/// runs away): a row error under the table's policy, like a value the
/// mapping refuses, so the rest of the table still loads. The batch holds
/// a stand-in row of the table's width at `index` (the values that could
/// be read, NULL elsewhere), which is never written.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceFault {
    /// The row's index in its batch.
    pub index: usize,
    /// The column at fault, if one is.
    pub column: Option<usize>,
    /// Columns whose values could not be read: they are left out of the
    /// kept (flagged) row, so a retry asks for them rather than writing
    /// NULL in their place.
    pub unread: Vec<usize>,
    /// The offending text, shortened, if there is one.
    pub value: Option<String>,
    /// What is wrong, where (e.g. the line), and what to do.
    pub message: String,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct ReadRequest {
    /// The table, as discovered.
    pub table: TableInfo,
    /// Rows per batch.
    pub batch_size: usize,
    /// Stop after this many rows.
    pub limit: Option<u64>,
    /// Continue after a checkpoint instead of from the start.
    pub after: Option<Checkpoint>,
    /// Only this range of the table's integer key (a split table).
    pub range: Option<KeyRange>,
    /// Rows may come in any order (validation digests them), so a source
    /// need not sort a table that has no key.
    pub any_order: bool,
    /// Only rows whose cursor column lies in a window (incremental syncs).
    pub since: Option<Since>,
}

/// Where an incremental sync may read up to (see [`Source::cursor_bound`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Bound {
    /// The largest cursor value surely committed, as text (`None`: no row
    /// is yet, so there is nothing to read).
    pub to: Option<String>,
    /// When the bound is below the column's maximum because a transaction
    /// is open: since when (as the source prints it), so a stuck
    /// transaction shows.
    pub held_back_since: Option<String>,
}

/// How long a sync waits for the transactions open when it read a
/// cursor's maximum to end, before it reads nothing this time.
pub(crate) const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// The bound of a cursor whose order says nothing about commit order (an
/// id): `max` once every transaction in `open` (session, start) has ended,
/// asking `now` again for up to [`SETTLE`]; otherwise nothing, held back
/// since the oldest one left.
pub(crate) async fn settled_bound<K, F, Fut>(
    mut open: std::collections::HashSet<(K, String)>,
    max: Option<String>,
    mut now: F,
) -> Result<Bound, ConnectorError>
where
    K: Eq + std::hash::Hash,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<std::collections::HashSet<(K, String)>, ConnectorError>>,
{
    let deadline = std::time::Instant::now() + SETTLE;
    while !open.is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let still = now().await?;
        open.retain(|t| still.contains(t));
    }
    Ok(match open.iter().map(|(_, since)| since).min() {
        None => Bound {
            to: max,
            held_back_since: None,
        },
        Some(since) => Bound {
            to: None,
            held_back_since: Some(since.clone()),
        },
    })
}

impl ReadRequest {
    /// Every row of `table` in any order, for checks that look at a whole
    /// table as a set (validation, key collisions, restore verification).
    pub fn whole(table: &TableInfo, batch_size: usize) -> Self {
        Self {
            table: table.clone(),
            batch_size: batch_size.max(1),
            limit: None,
            after: None,
            range: None,
            any_order: true,
            since: None,
        }
    }
}

/// A slice of a table by its single integer primary key: `lo <= key < hi`,
/// open-ended where a bound is `None` (so rows added beyond the bounds seen
/// at planning time still land).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRange {
    /// The first key in the range, if bounded below.
    pub lo: Option<i64>,
    /// The first key after the range, if bounded above.
    pub hi: Option<i64>,
}

impl KeyRange {
    /// `n` ranges of about equal key span covering `min..=max`; the first
    /// and last are open-ended.
    pub fn split(min: i64, max: i64, n: u64) -> Vec<KeyRange> {
        let span = (max as i128 - min as i128 + 1).max(1);
        let n = (n as i128).clamp(1, span);
        let cut = |i: i128| (min as i128 + span * i / n) as i64;
        (0..n)
            .map(|i| KeyRange {
                lo: (i > 0).then(|| cut(i)),
                hi: (i < n - 1).then(|| cut(i + 1)),
            })
            .collect()
    }

    /// The ranges as checkpoint text: the inner cut points.
    pub fn encode(ranges: &[KeyRange]) -> Vec<Option<String>> {
        ranges
            .iter()
            .filter_map(|r| r.hi)
            .map(|cut| Some(cut.to_string()))
            .collect()
    }

    /// The ranges from their cut points.
    pub fn decode(cuts: &[Option<String>]) -> Vec<KeyRange> {
        let cuts: Vec<i64> = cuts
            .iter()
            .flatten()
            .filter_map(|c| c.parse().ok())
            .collect();
        let mut bounds = vec![None];
        bounds.extend(cuts.into_iter().map(Some));
        bounds.push(None);
        bounds
            .windows(2)
            .map(|w| KeyRange { lo: w[0], hi: w[1] })
            .collect()
    }
}

/// How far a table has been committed to the destination: the number of
/// source rows consumed and, for a table with a primary key, the key of the
/// last one (each value in its text form). Sources order rows by that key,
/// so reading resumes with `key > last`; tables without a key resume by
/// skipping `rows` rows of a stable order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Source rows consumed (written, skipped, flagged or dropped).
    pub rows: u64,
    /// The primary key of the last row consumed.
    pub key: Option<Vec<Option<String>>>,
    /// Whether the table is complete.
    pub done: bool,
    /// Where a sync reached: an incremental cursor's last value, or a
    /// change log position.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// A source plugin's opaque position after the last row consumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
}

/// A row a destination refused (a constraint, say): its index in the batch
/// and the destination's message.
pub type Rejected = (usize, String);

/// How a sink should make a table ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prepare {
    /// A new load: create the table, honouring `if_exists`.
    Fresh(IfExists),
    /// Continue an interrupted load: the table exists and keeps its rows.
    Resume,
}

/// One batch to write, with the checkpoint to commit alongside it.
pub struct WriteBatch<'a> {
    /// The migration, which owns the checkpoint.
    pub migration: &'a str,
    /// The destination table, as its sink prepared it.
    pub prepared: &'a Prepared,
    /// The name the checkpoint is kept under: the table, or for one key
    /// range of a split table, `table#i/n`.
    pub checkpoint_name: &'a str,
    /// The table's columns.
    pub columns: &'a [Column],
    /// The rows.
    pub rows: &'a [Row],
    /// Refuse the whole batch if one row is refused (the `stop` policy).
    pub all_or_nothing: bool,
    /// Where the source stands once this batch is in.
    pub checkpoint: &'a Checkpoint,
}

impl<'a> WriteBatch<'a> {
    /// The destination table.
    pub fn table(&self) -> &'a str {
        self.prepared.table()
    }
}

/// Where rows come from.
#[async_trait]
pub trait Source: Send + Sync {
    /// A short name for messages: `source csv data/`.
    fn describe(&self) -> String;

    /// Lists the tables with their columns, keys and approximate row counts.
    async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError>;

    /// The exact number of rows in a table.
    async fn count(&self, table: &TableInfo) -> Result<u64, ConnectorError>;

    /// The smallest and largest key of a table whose primary key is one
    /// integer column, so it can be read in ranges; `None` otherwise or if
    /// the source cannot read ranges (it must then ignore `ReadRequest::range`).
    async fn key_bounds(&self, _table: &TableInfo) -> Result<Option<(i64, i64)>, ConnectorError> {
        Ok(None)
    }

    /// The upper bound of an incremental sync's window on `column`: the
    /// largest value such that every row at or below it is committed and
    /// no transaction still open can write another one (see [`Bound`]).
    async fn cursor_bound(
        &self,
        _table: &TableInfo,
        _column: &str,
    ) -> Result<Bound, ConnectorError> {
        Err(ConnectorError::new(
            self.describe(),
            "incremental syncs need a database source (SQLite, PostgreSQL, MariaDB/MySQL); sync this source in full (sync = \"full\")",
        ))
    }

    /// For each column of `table`, what its native type says beyond the
    /// row model's (an array's element type, a decimal's precision), so a
    /// destination that has the same can recreate it; empty when nothing.
    async fn native_types(
        &self,
        _table: &TableInfo,
    ) -> Result<Vec<Option<Native>>, ConnectorError> {
        Ok(Vec::new())
    }

    /// The schema of `tables` (exact types, defaults, identity, keys,
    /// constraints, indexes, partitions, comments) with the objects around
    /// them (enum types, domains, sequences, views, routines, triggers), so
    /// a destination can recreate what an application relies on; `None`
    /// when this source cannot say (files, plugins).
    async fn schema(&self, _tables: &[TableInfo]) -> Result<Option<Schema>, ConnectorError> {
        Ok(None)
    }

    /// Streams a table in batches into `tx`, in primary-key order when the
    /// table has a key. Memory stays bounded by the channel's capacity.
    async fn read(
        &self,
        request: ReadRequest,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    );

    /// About how many bytes a table takes here, indexes included; `None`
    /// if it does not exist.
    async fn size_bytes(&self, table: &TableInfo) -> Result<Option<u64>, ConnectorError>;

    /// Reads one row of `table`, proving this user may read it. Servers
    /// name the missing privilege and the GRANT that gives it.
    async fn probe_read(&self, table: &TableInfo) -> Result<(), ConnectorError> {
        read_one(self, table).await
    }
}

/// Reads at most one row of `table`; the first error, if any.
pub(crate) async fn read_one<S: Source + ?Sized>(
    source: &S,
    table: &TableInfo,
) -> Result<(), ConnectorError> {
    let request = ReadRequest {
        limit: Some(1),
        ..ReadRequest::whole(table, 1)
    };
    let (tx, mut rx) = mpsc::channel(1);
    let drain = async {
        let mut first_error = None;
        while let Some(batch) = rx.recv().await {
            if let (Err(e), None) = (batch, &first_error) {
                first_error = Some(e);
            }
        }
        first_error
    };
    let ((), error) = tokio::join!(source.read(request, tx), drain);
    error.map_or(Ok(()), Err)
}

/// Free space where a destination keeps its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FreeSpace {
    /// Bytes an unprivileged user may still write on the filesystem that
    /// holds `path`.
    Known {
        /// The free bytes.
        bytes: u64,
        /// The folder measured.
        path: PathBuf,
    },
    /// Why it cannot be known from here.
    Unknown(String),
}

/// The free space of the filesystem that holds `path`.
pub(crate) fn free_space_at(path: &Path) -> FreeSpace {
    match rustix::fs::statvfs(path) {
        Ok(s) => FreeSpace::Known {
            bytes: s.f_bavail.saturating_mul(s.f_frsize),
            path: path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        },
        Err(e) => FreeSpace::Unknown(format!(
            "cannot read the free space of {}: {e}",
            path.display()
        )),
    }
}

/// Whether a destination column of type `dest` takes values of type
/// `value` without loss: the same type, an int into a decimal, or anything
/// into text (every value has an exact text form).
pub(crate) fn takes(dest: ColumnType, value: ColumnType) -> bool {
    dest == value
        || dest == ColumnType::Text
        || (dest == ColumnType::Decimal && value == ColumnType::Int)
}

/// Why rows of `columns` cannot be appended to the existing table `dest`:
/// columns it lacks, and columns whose type does not take the values.
pub(crate) fn misfits(dest: &TableInfo, columns: &[Column], ignore_case: bool) -> Vec<String> {
    let same = |a: &str, b: &str| a == b || (ignore_case && a.eq_ignore_ascii_case(b));
    columns
        .iter()
        .filter_map(|c| {
            let Some(found) = dest.columns.iter().find(|d| same(&d.name, &c.name)) else {
                return Some(format!("it has no column `{}`", c.name));
            };
            (!takes(found.type_, c.type_)).then(|| {
                format!(
                    "column `{}` is {}, which cannot take {} values",
                    c.name,
                    type_name(found.type_),
                    type_name(c.type_)
                )
            })
        })
        .collect()
}

/// Where rows go: the write path and its checkpoints. What a destination
/// offers beyond that is reached through optional capabilities, each
/// `None` where it has none: the preflight probes ([`Sink::healthcheck`])
/// and SQL for merges and swaps ([`Sink::sql`]).
#[async_trait]
pub trait Sink: Send + Sync {
    /// A short name for messages: `destination sqlite vault.db`.
    fn describe(&self) -> String;

    /// Whether several connections may write one table at once (so a large
    /// table can be split into key ranges moved side by side).
    fn concurrent_writers(&self) -> bool {
        false
    }

    /// The number of rows in `table` if it exists. On the write path (not
    /// in [`Healthcheck`]): whether a table exists decides what a run
    /// creates, claims and keeps a restore point of, and what a sync merges.
    async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError>;

    /// Makes `table` ready for rows of `shape`, and returns the token that
    /// writing and finishing it need.
    async fn prepare(
        &mut self,
        migration: &str,
        table: &str,
        shape: Shape<'_>,
        mode: Prepare,
    ) -> Result<Prepared, ConnectorError>;

    /// Writes and commits a batch together with its checkpoint. With
    /// `all_or_nothing`, a refused row rolls the whole batch back and is
    /// returned alone; otherwise the good rows are committed and the refused
    /// ones returned.
    async fn write(&mut self, batch: WriteBatch<'_>) -> Result<Vec<Rejected>, ConnectorError>;

    /// Marks a table complete (and makes it visible, for files); the table
    /// takes no more rows, so its token is spent.
    async fn finish(
        &mut self,
        migration: &str,
        table: Prepared,
        checkpoint: &Checkpoint,
    ) -> Result<(), ConnectorError>;

    /// The checkpoint last committed for `table` by `migration`.
    async fn committed(
        &self,
        migration: &str,
        table: &str,
    ) -> Result<Option<Checkpoint>, ConnectorError>;

    /// Forgets `migration`'s checkpoints (a fresh run starts over).
    async fn reset(&mut self, migration: &str) -> Result<(), ConnectorError>;

    /// Drops `table` if it exists (a dry run's scratch tables).
    async fn drop_table(&mut self, table: &str) -> Result<(), ConnectorError>;

    /// Its preflight probes (`credvault check`, the checks before a run),
    /// if it has them.
    fn healthcheck(&self) -> Option<&dyn Healthcheck> {
        None
    }

    /// Its SQL side, if it is an SQL destination (syncs, consolidation,
    /// retries); `None` for one that takes full runs only (CSV files,
    /// plugin sinks). [`registry::Traits::sql`] says the same of its driver.
    fn sql(&self) -> Option<&dyn SqlDestination> {
        None
    }

    /// [`Sink::sql`], to write through.
    fn sql_mut(&mut self) -> Option<&mut dyn SqlDestination> {
        None
    }
}

/// A table a sink has made ready for rows ([`Sink::prepare`]). Writing
/// ([`WriteBatch`]) and finishing need one, and only drivers make one, so
/// nothing outside them writes a table that was not prepared.
#[derive(Debug)]
pub struct Prepared {
    table: String,
}

impl Prepared {
    /// The token for `table`, which its sink has just made ready.
    fn new(table: &str) -> Self {
        Self {
            table: table.to_string(),
        }
    }

    /// The prepared table.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// A destination's preflight probes: what `credvault check` and the checks
/// before a run ask of it, writing nothing.
#[async_trait]
pub trait Healthcheck: Send + Sync {
    /// Why the existing `table` cannot take rows of `columns` (columns it
    /// lacks, types that do not take the values); empty if it can.
    async fn misfits(&self, table: &str, columns: &[Column])
    -> Result<Vec<String>, ConnectorError>;

    /// Proves this user may create tables here, leaving none behind.
    async fn probe_create(&self) -> Result<(), ConnectorError>;

    /// Proves this user may add rows to the existing `table`, writing none.
    async fn probe_write(&self, table: &str) -> Result<(), ConnectorError>;

    /// Free space where this destination keeps its data.
    async fn free_space(&self) -> Result<FreeSpace, ConnectorError>;
}

/// An SQL destination: a sink that also merges a scratch table into a
/// table by key, swaps one in, and runs a sync's statements together with
/// its checkpoint (syncs, consolidation, retries). A sink, so code handed
/// one writes and reads checkpoints through it too.
#[async_trait]
pub trait SqlDestination: Sink {
    /// How this destination spells SQL.
    fn dialect(&self) -> merge::Dialect;

    /// A table's name as SQL writes it (quoted, with its schema).
    fn sql_name(&self, table: &str) -> String;

    /// Runs `steps` in one transaction together with `checkpoint`, and
    /// returns each step's number: a count query's result, or the rows a
    /// statement changed.
    async fn run_script(
        &mut self,
        migration: &str,
        checkpoint_name: &str,
        steps: &[Step],
        checkpoint: &Checkpoint,
    ) -> Result<Vec<u64>, ConnectorError>;

    /// Runs one statement on its own (DDL, which MySQL cannot keep inside
    /// a transaction).
    async fn execute(&mut self, sql: &str) -> Result<(), ConnectorError>;

    /// What tells this life of `table` from a table of the same name made
    /// after it was dropped (PostgreSQL: its oid), or `None` when the table
    /// is not there or this destination cannot tell.
    async fn table_identity(&self, _table: &str) -> Result<Option<String>, ConnectorError> {
        Ok(None)
    }

    /// The tables `table`'s foreign keys refer to (itself too, when it refers
    /// to itself), so a load fills parents before children; empty when it
    /// has none or does not exist.
    async fn parents(&self, _table: &str) -> Result<Vec<String>, ConnectorError> {
        Ok(Vec::new())
    }

    /// Creates `copy`, empty, with the columns, defaults, NOT NULL, check
    /// and unique constraints of `table` (not its foreign keys), so rows
    /// staged there are refused as `table` would refuse them.
    async fn create_like(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError>;

    /// Puts `copy` in the place of `table` (dropping the old one) so that
    /// readers see the old table or the new one, never half of either.
    async fn swap_tables(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError>;
}

/// What a destination that takes no SQL was asked to do, for its refusal
/// ([`takes_no_sql`]).
#[derive(Debug, Clone, Copy)]
pub enum SqlAsk<'a> {
    /// A sync's statements with its checkpoint (incremental, CDC).
    Sync,
    /// One statement.
    Statement,
    /// An empty copy of a table, to be named `copy`.
    CreateLike {
        /// The copy's name.
        copy: &'a str,
    },
    /// Swapping `copy` in.
    Swap {
        /// The copy's name.
        copy: &'a str,
    },
}

/// The refusal of a destination that takes full runs only (no
/// [`Sink::sql`]), asked `ask`: the one place its messages are made.
pub fn takes_no_sql(sink: &dyn Sink, ask: SqlAsk<'_>) -> ConnectorError {
    let message = match ask {
        SqlAsk::Sync => {
            "this destination takes full runs only, not incremental or CDC syncs".to_string()
        }
        SqlAsk::Statement => "this destination takes no SQL".to_string(),
        SqlAsk::CreateLike { copy } => {
            format!("cannot create `{copy}`: this destination takes full runs only")
        }
        SqlAsk::Swap { copy } => {
            format!("cannot swap in `{copy}`: this destination takes full runs only")
        }
    };
    ConnectorError::new(sink.describe(), message)
}

/// `sink`'s SQL side, or its refusal of `ask` when it takes full runs only.
pub fn sql_of<'s>(
    sink: &'s mut dyn Sink,
    ask: SqlAsk<'_>,
) -> Result<&'s mut dyn SqlDestination, ConnectorError> {
    if sink.sql().is_none() {
        return Err(takes_no_sql(sink, ask));
    }
    Ok(sink.sql_mut().expect("`sql` and `sql_mut` agree"))
}

/// One statement of a sync script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A `SELECT COUNT(*) …`: its result.
    Count(String),
    /// A statement: the rows it changed.
    Exec(String),
}

/// Whether a table is CredVault's own bookkeeping (checkpoints, restore
/// points), never offered as data. A dry run's scratch tables
/// (`credvault_dry_*`) are data: validation reads them.
pub(crate) fn bookkeeping(table: &str) -> bool {
    table.starts_with("_credvault_")
}

/// The name of a table's primary key when it is one integer column: such a
/// table can be read in key ranges.
pub(crate) fn integer_key(table: &TableInfo) -> Option<&str> {
    let [key] = table.primary_key.as_slice() else {
        return None;
    };
    let integer = table
        .columns
        .iter()
        .any(|c| &c.name == key && c.type_ == ColumnType::Int);
    integer.then_some(key.as_str())
}

/// How a sink makes a table ready for rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Readiness {
    /// Create it.
    Create,
    /// Drop the existing table, then create it.
    Replace,
    /// Write into the existing table, once its columns are checked.
    Adopt,
}

/// Decides, the same way for every sink, what `prepare` does with `table`
/// given the rows it already holds (`None`: it does not exist; only looked
/// up for a fresh load).
pub(crate) fn readiness(
    mode: Prepare,
    existing: Option<u64>,
    table: &str,
    endpoint: String,
) -> Result<Readiness, ConnectorError> {
    match (mode, existing) {
        (Prepare::Resume, _) => Ok(Readiness::Adopt),
        (Prepare::Fresh(_), None) => Ok(Readiness::Create),
        (Prepare::Fresh(IfExists::Fail), Some(rows)) => Err(ConnectorError::new(
            endpoint,
            format!(
                "table `{table}` already exists with {rows} rows; set if_exists = \"append\" to add the rows to it, or choose another destination table"
            ),
        )),
        (Prepare::Fresh(IfExists::Replace), Some(_)) => Ok(Readiness::Replace),
        (Prepare::Fresh(IfExists::Append), Some(_)) => Ok(Readiness::Adopt),
    }
}

/// Opens the migration's source.
pub async fn open_source(m: &Migration) -> Result<Box<dyn Source>, ConnectorError> {
    let Some(source) = &m.source else {
        return Err(ConnectorError::new(
            format!("migration `{}`", m.name),
            "it has no [source]: its tables name their connections, so each is read from its own",
        ));
    };
    watched_reader("source", source, m).await
}

/// Opens the migration's destination for reading (validation, checks).
pub async fn open_destination_reader(m: &Migration) -> Result<Box<dyn Source>, ConnectorError> {
    watched_reader("destination", &m.destination, m).await
}

/// Opens `endpoint` for reading; on a database server every step runs
/// under a watchdog for `settings.stall_seconds`.
async fn watched_reader(
    role: &str,
    endpoint: &Endpoint,
    m: &Migration,
) -> Result<Box<dyn Source>, ConnectorError> {
    let stall = std::time::Duration::from_secs(m.settings.stall_seconds);
    let Some(dog) = stall::Watchdog::for_endpoint(role, endpoint, &m.base_dir, stall)? else {
        return open_reader(endpoint, &m.base_dir).await;
    };
    let open = open_reader(endpoint, &m.base_dir);
    let inner = dog.watch("connecting", &stall::NO_PROGRESS, open).await?;
    Ok(Box::new(stall::WatchedSource { inner, dog }))
}

/// Opens any endpoint for reading: the source, or the destination when
/// validating or verifying a restore. Relative paths resolve against
/// `base_dir`.
pub async fn open_reader(
    endpoint: &Endpoint,
    base_dir: &std::path::Path,
) -> Result<Box<dyn Source>, ConnectorError> {
    registry::driver(endpoint).reader(endpoint, base_dir).await
}

/// Opens the migration's destination (creating an SQLite file or a CSV
/// folder if needed). On a database server every step runs under a
/// watchdog for `settings.stall_seconds`.
pub async fn open_sink(m: &Migration) -> Result<Box<dyn Sink>, ConnectorError> {
    let stall = std::time::Duration::from_secs(m.settings.stall_seconds);
    let dog = stall::Watchdog::for_endpoint("destination", &m.destination, &m.base_dir, stall)?;
    let Some(dog) = dog else {
        return open_writer(&m.destination, &m.base_dir).await;
    };
    let open = open_writer(&m.destination, &m.base_dir);
    let inner = dog.watch("connecting", &stall::NO_PROGRESS, open).await?;
    Ok(Box::new(stall::WatchedSink { inner, dog }))
}

/// Opens any endpoint for writing. Relative paths resolve against `base_dir`.
pub async fn open_writer(
    endpoint: &Endpoint,
    base_dir: &std::path::Path,
) -> Result<Box<dyn Sink>, ConnectorError> {
    registry::driver(endpoint).writer(endpoint, base_dir).await
}

/// Sends rows in batches of `batch_size`, numbering them from `first`.
/// Returns false when the receiver has gone (the run stopped).
pub(crate) struct Batcher {
    batch: SourceBatch,
    size: usize,
}

impl Batcher {
    pub(crate) fn new(size: usize, first: u64) -> Self {
        Self {
            batch: SourceBatch {
                rows: Vec::with_capacity(size),
                first,
                position: None,
                faults: Vec::new(),
            },
            size,
        }
    }

    /// Adds a row; returns a full batch to send, if any.
    pub(crate) fn push(&mut self, row: Row) -> Option<SourceBatch> {
        self.batch.rows.push(row);
        if self.batch.rows.len() < self.size {
            return None;
        }
        let next = SourceBatch {
            rows: Vec::with_capacity(self.size),
            first: self.batch.first + self.size as u64,
            position: None,
            faults: Vec::new(),
        };
        Some(std::mem::replace(&mut self.batch, next))
    }

    /// Adds the stand-in row of a row the source could not read, with what
    /// went wrong (its `index` is set here); returns a full batch, if any.
    pub(crate) fn push_fault(&mut self, row: Row, fault: SourceFault) -> Option<SourceBatch> {
        let index = self.batch.rows.len();
        self.batch.faults.push(SourceFault { index, ..fault });
        self.push(row)
    }

    /// The last, partial batch.
    pub(crate) fn finish(self) -> Option<SourceBatch> {
        (!self.batch.rows.is_empty()).then_some(self.batch)
    }
}

/// A plugin's grants, its `db` connections opened by their databases'
/// drivers.
pub fn grants(spec: &GrantsSpec, base_dir: &Path) -> Grants {
    Grants::resolve(spec, base_dir, &|endpoint| {
        registry::driver(endpoint).db_capability(endpoint, base_dir)
    })
}

#[cfg(test)]
mod tests {
    use super::KeyRange;

    #[test]
    fn key_ranges_cover_the_keys_and_survive_a_round_trip() {
        let ranges = KeyRange::split(1, 100, 3);
        assert_eq!(ranges.len(), 3);
        assert_eq!(
            ranges[0],
            KeyRange {
                lo: None,
                hi: Some(34)
            }
        );
        assert_eq!(
            ranges[1],
            KeyRange {
                lo: Some(34),
                hi: Some(67)
            }
        );
        assert_eq!(
            ranges[2],
            KeyRange {
                lo: Some(67),
                hi: None
            }
        );
        assert_eq!(KeyRange::decode(&KeyRange::encode(&ranges)), ranges);
        assert_eq!(
            KeyRange::split(5, 5, 10),
            vec![KeyRange { lo: None, hi: None }]
        );
        assert_eq!(KeyRange::split(i64::MIN, i64::MAX, 2).len(), 2);
    }
}
