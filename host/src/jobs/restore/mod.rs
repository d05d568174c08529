//! Restore points: before a fresh run writes, a copy of every destination
//! table it touches, kept inside the destination database; `rollback` puts
//! a point's tables back and verifies them by checksum.
//!
//! Copies are made by the server itself (`INSERT … SELECT`, no rows cross
//! the network) into tables named `_credvault_rp_<point>_<i>` beside the
//! originals, listed in a catalog table `_credvault_restore_points`. The
//! checksum of each copy is taken through the connectors when the point is
//! made, so a rollback can prove it put back exactly those rows, even if
//! the copy was tampered with since.

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::Migration;
use crate::drivers::registry::{driver, names_with, nouns_without};
pub use crate::drivers::restore::{Action, Point, PointTable};
use crate::drivers::restore::{RestoreStore, WatchedStore};
use crate::drivers::stall::{NO_PROGRESS, Watchdog};
use crate::drivers::{
    ConnectorError, ReadRequest, Source, SourceBatch, open_destination_reader, open_sink,
};
use crate::jobs::validate::TableDigest;
use crate::model::value::TableInfo;
use crate::state::{Hold, StateError, StateStore};

/// Rows per batch when a table is read back for its checksum.
const DIGEST_BATCH: usize = 10_000;

/// A restore point could not be made, found or restored.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    /// The destination failed.
    #[error(transparent)]
    Connector(#[from] ConnectorError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
    /// The request cannot be met (no such point, an unsupported destination).
    #[error("{endpoint}: {message}")]
    Refused {
        /// The destination.
        endpoint: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// The verification of one rolled-back table.
#[derive(Debug, Clone, Serialize)]
pub struct TableCheck {
    /// The table.
    pub table: String,
    /// What the rollback did.
    pub action: Action,
    /// Rows the table holds now.
    pub rows: u64,
    /// Its checksum now.
    pub checksum: Option<String>,
    /// Whether it matches the point.
    pub passed: bool,
    /// Why not, when it does not.
    pub problem: Option<String>,
}

/// The outcome of a rollback.
#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    /// The destination.
    pub destination: String,
    /// The point restored.
    pub point: String,
    /// One check per table.
    pub tables: Vec<TableCheck>,
}

impl Rollback {
    /// Whether every table matches the point.
    pub fn passed(&self) -> bool {
        self.tables.iter().all(|t| t.passed)
    }
}

/// The restore points of a migration's destination.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The destination.
    pub destination: String,
    /// Its points for the migration, oldest first.
    pub points: Vec<Point>,
}

/// What a run's restore point holds, for its report.
#[derive(Debug, Clone, Serialize)]
pub struct Taken {
    /// The point's name.
    pub name: String,
    /// Tables covered (including ones that did not exist yet).
    pub tables: usize,
    /// Rows copied.
    pub rows: u64,
    /// When its retention ends.
    pub expires_at: String,
    /// Expired points removed.
    pub pruned: Vec<String>,
}

/// Opens the destination's store; on a database server every step runs
/// under a watchdog for `settings.stall_seconds`.
async fn open_store(m: &Migration) -> Result<Box<dyn RestoreStore>, RestoreError> {
    let stall = std::time::Duration::from_secs(m.settings.stall_seconds);
    let dog = Watchdog::for_endpoint("destination", &m.destination, &m.base_dir, stall)?;
    let Some(dog) = dog else {
        return open_bare_store(m).await;
    };
    let inner = dog.watch("connecting", &NO_PROGRESS, open_bare_store(m));
    let inner = inner.await?;
    Ok(Box::new(WatchedStore { inner, dog }))
}

async fn open_bare_store(m: &Migration) -> Result<Box<dyn RestoreStore>, RestoreError> {
    let driver = driver(&m.destination);
    match driver.restore_store(&m.destination, &m.base_dir).await {
        Some(store) => Ok(store?),
        None => Err(RestoreError::Refused {
            endpoint: format!("destination {}", driver.name()),
            message: unsupported(),
        }),
    }
}

/// Why a destination keeps no restore points, naming those that do.
fn unsupported() -> String {
    format!(
        "restore points are kept for {} destinations, not {}; copy the data yourself before a run, and set restore_points = false to silence this",
        names_with(|t| t.restore_points),
        nouns_without(|t| t.restore_points)
    )
}

/// Before a fresh run writes: copies every table in `tables` that exists
/// into a new point (and notes the others as absent), then removes the
/// migration's expired points. `None` when restore points are off, or for a CSV
/// destination (with a warning).
pub async fn before_run(
    m: &Migration,
    tables: &[&str],
    state: &StateStore,
) -> Result<Option<Taken>, RestoreError> {
    if !m.settings.restore_points {
        return Ok(None);
    }
    if !driver(&m.destination).traits().restore_points {
        tracing::warn!("no restore point for this run: {}", unsupported());
        return Ok(None);
    }
    let store = open_store(m).await?;
    let point = take(m, store.as_ref(), tables).await?;
    let detail = serde_json::json!({
        "point": point.name,
        "destination": store.describe(),
        "expires_at": point.expires_at,
        "tables": point.tables,
    });
    state
        .event(&m.name, None, "restore_point_created", &detail)
        .await?;
    let pruned = prune(m, store.as_ref(), state, &point.name).await?;
    Ok(Some(Taken {
        tables: point.tables.len(),
        rows: point.rows(),
        name: point.name,
        expires_at: point.expires_at,
        pruned,
    }))
}

/// The migration's restore points in its destination, oldest first.
pub async fn list(m: &Migration) -> Result<Listing, RestoreError> {
    let store = open_store(m).await?;
    Ok(Listing {
        destination: store.describe(),
        points: points(store.as_ref(), &m.name).await?,
    })
}

/// Puts the tables of a restore point back (the newest, or the one named
/// `to`), checks each against the checksum taken when the point was made,
/// and forgets the migration's checkpoints so its next run starts afresh.
pub async fn rollback(
    m: &Migration,
    to: Option<&str>,
    state: &StateStore,
    hold: &Hold,
) -> Result<Rollback, RestoreError> {
    debug_assert_eq!(hold.migration(), m.name);
    let store = open_store(m).await?;
    let point = pick(store.as_ref(), &m.name, to).await?;
    preflight(store.as_ref(), &point).await?;
    let outcome = restore_all(m, store.as_ref(), &point).await;
    let mut detail = serde_json::json!({
        "point": point.name,
        "destination": store.describe(),
    });
    match &outcome {
        Ok(tables) => {
            detail["passed"] = tables.iter().all(|t| t.passed).into();
            detail["tables"] = serde_json::json!(tables);
        }
        Err(e) => {
            detail["passed"] = false.into();
            detail["error"] = e.to_string().into();
        }
    }
    state.event(&m.name, None, "rolled_back", &detail).await?;
    state.close_unfinished(&m.name).await?;
    state.rolled_back(&m.name, &point.name).await?;
    Ok(Rollback {
        destination: store.describe(),
        point: point.name,
        tables: outcome?,
    })
}

/// Restores or drops each table, verifies them, and forgets the
/// migration's checkpoints.
async fn restore_all(
    m: &Migration,
    store: &dyn RestoreStore,
    point: &Point,
) -> Result<Vec<TableCheck>, RestoreError> {
    let mut actions = Vec::with_capacity(point.tables.len());
    for t in &point.tables {
        let action = match &t.backup {
            Some(backup) if t.existed => store.restore(t, backup).await?,
            _ => {
                store.drop_table(&t.table).await?;
                Action::Dropped
            }
        };
        actions.push(action);
    }
    let tables = verify(m, point, &actions).await?;
    open_sink(m).await?.reset(&m.name).await?;
    Ok(tables)
}

/// Refuses, before anything changes, a point whose copies are gone, and a
/// rollback that would make the database delete or change rows of other
/// tables through their foreign keys.
async fn preflight(store: &dyn RestoreStore, point: &Point) -> Result<(), RestoreError> {
    for t in &point.tables {
        let backup = t.backup.as_deref().unwrap_or_default();
        if t.existed && !store.exists(backup).await? {
            return Err(refused(
                store,
                format!(
                    "the copy of `{}` ({backup}) in restore point {} is gone, so the point cannot be restored; nothing was changed. Choose another point with --to (see `credvault restore-points list`)",
                    t.table, point.name
                ),
            ));
        }
        let cascades = store.cascades(&t.table).await?;
        if !cascades.is_empty() {
            return Err(refused(
                store,
                format!(
                    "rolling back `{}` deletes its rows, and then {} would delete or change rows of those tables; nothing was changed. Drop those foreign keys for the rollback and add them back after",
                    t.table,
                    cascades.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

fn refused(store: &dyn RestoreStore, message: String) -> RestoreError {
    RestoreError::Refused {
        endpoint: store.describe(),
        message,
    }
}

/// A UTC time as stored: fixed width, so text order is time order.
fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Every point in the destination (all migrations), oldest first.
async fn all_points(store: &dyn RestoreStore) -> Result<Vec<Point>, RestoreError> {
    let now = stamp(Utc::now());
    let mut rows = store.catalog().await?;
    rows.sort_by(|a, b| (a.1, &a.5).cmp(&(b.1, &b.5)));
    let mut points: Vec<Point> = Vec::new();
    for (name, seq, migration, created_at, expires_at, table, existed, backup, rows, sum, ddl) in
        rows
    {
        if points.last().is_none_or(|p| p.name != name) {
            points.push(Point {
                expired: expires_at <= now,
                name,
                seq,
                migration,
                created_at,
                expires_at,
                tables: Vec::new(),
            });
        }
        let Some(point) = points.last_mut() else {
            continue;
        };
        point.tables.push(PointTable {
            table,
            existed,
            backup,
            rows: u64::try_from(rows).unwrap_or(0),
            checksum: sum,
            ddl,
        });
    }
    Ok(points)
}

async fn points(store: &dyn RestoreStore, migration: &str) -> Result<Vec<Point>, RestoreError> {
    let mut points = all_points(store).await?;
    points.retain(|p| p.migration == migration);
    Ok(points)
}

/// The point named `to`, or the newest.
async fn pick(
    store: &dyn RestoreStore,
    migration: &str,
    to: Option<&str>,
) -> Result<Point, RestoreError> {
    let mut points = points(store, migration).await?;
    let known: Vec<String> = points.iter().map(|p| p.name.clone()).collect();
    let found = match to {
        Some(name) => points.into_iter().find(|p| p.name == name),
        None => points.pop(),
    };
    found.ok_or_else(|| {
        let message = match to {
            Some(name) if !known.is_empty() => format!(
                "migration `{migration}` has no restore point `{name}`; its points are {}",
                known.join(", ")
            ),
            _ => format!(
                "migration `{migration}` has no restore points here; a run makes one before it writes unless restore_points = false"
            ),
        };
        refused(store, message)
    })
}

/// Removes the migration's points whose retention has ended (but not the
/// one just made): their copies and their catalog rows. Done after the new
/// point is made, so its number and name never repeat a removed one's.
async fn prune(
    m: &Migration,
    store: &dyn RestoreStore,
    state: &StateStore,
    made: &str,
) -> Result<Vec<String>, RestoreError> {
    let mut pruned = Vec::new();
    for point in points(store, &m.name).await? {
        if !point.expired || point.name == made {
            continue;
        }
        for backup in point.tables.iter().filter_map(|t| t.backup.as_deref()) {
            store.drop_table(backup).await?;
        }
        store.forget(&point.name).await?;
        let detail = serde_json::json!({
            "point": point.name,
            "created_at": point.created_at,
            "expires_at": point.expires_at,
        });
        state
            .event(&m.name, None, "restore_point_pruned", &detail)
            .await?;
        pruned.push(point.name);
    }
    Ok(pruned)
}

/// Makes a new point of `tables`. If a copy fails, the copies made so far
/// are dropped again.
async fn take(
    m: &Migration,
    store: &dyn RestoreStore,
    tables: &[&str],
) -> Result<Point, RestoreError> {
    let mut names: Vec<&str> = Vec::new();
    for t in tables {
        if !names.contains(t) {
            names.push(t);
        }
    }
    let existing = all_points(store).await?;
    let seq = free_seq(store, &existing, names.len()).await?;
    let created = Utc::now();
    let mut name = format!("{}-{}", m.name, created.format("%Y%m%d-%H%M%S"));
    if existing.iter().any(|p| p.name == name) {
        name = format!("{name}-{seq}");
    }
    let days = TimeDelta::days(i64::from(m.settings.restore_point_days));
    let mut point = Point {
        name,
        seq,
        migration: m.name.clone(),
        created_at: stamp(created),
        expires_at: stamp(created + days),
        expired: false,
        tables: Vec::new(),
    };
    let outcome = match copy_all(m, store, &names, &mut point).await {
        Ok(()) => store.record(&point).await.map_err(RestoreError::from),
        Err(e) => Err(e),
    };
    if let Err(e) = outcome {
        for backup in point.tables.iter().filter_map(|t| t.backup.as_deref()) {
            let _ = store.drop_table(backup).await;
        }
        return Err(e);
    }
    Ok(point)
}

fn copy_name(seq: i64, i: usize) -> String {
    format!("_credvault_rp_{seq}_{i}")
}

/// The next point number whose copy names are all free. A run that died
/// while making its point may have left copies the catalog does not know;
/// they are skipped, never dropped (another run may be making them now).
async fn free_seq(
    store: &dyn RestoreStore,
    existing: &[Point],
    tables: usize,
) -> Result<i64, RestoreError> {
    let mut seq = existing.iter().map(|p| p.seq).max().unwrap_or(0) + 1;
    'search: loop {
        for i in 0..tables {
            if store.exists(&copy_name(seq, i)).await? {
                seq += 1;
                continue 'search;
            }
        }
        return Ok(seq);
    }
}

/// Copies each table that exists (and notes the others as absent).
async fn copy_all(
    m: &Migration,
    store: &dyn RestoreStore,
    tables: &[&str],
    point: &mut Point,
) -> Result<(), RestoreError> {
    let reader = open_destination_reader(m).await?;
    let found = reader.discover().await?;
    for (i, &table) in tables.iter().enumerate() {
        let entry = match found.iter().find(|t| t.name == table) {
            Some(info) => copy(store, reader.as_ref(), info, &copy_name(point.seq, i)).await?,
            None => PointTable {
                table: table.to_string(),
                existed: false,
                backup: None,
                rows: 0,
                checksum: None,
                ddl: None,
            },
        };
        point.tables.push(entry);
    }
    Ok(())
}

/// Copies one table and takes the copy's checksum.
async fn copy(
    store: &dyn RestoreStore,
    reader: &dyn Source,
    info: &TableInfo,
    backup: &str,
) -> Result<PointTable, RestoreError> {
    let ddl = store.back_up(&info.name, backup).await?;
    let mut entry = PointTable {
        table: info.name.clone(),
        existed: true,
        backup: Some(backup.to_string()),
        rows: 0,
        checksum: None,
        ddl,
    };
    match digest(reader, &renamed(info, backup)).await {
        Ok(digest) => {
            entry.rows = digest.rows;
            entry.checksum = Some(digest.checksum());
            Ok(entry)
        }
        Err(e) => {
            let _ = store.drop_table(backup).await;
            Err(e.into())
        }
    }
}

/// The same columns under another table name (a copy).
fn renamed(info: &TableInfo, name: &str) -> TableInfo {
    TableInfo {
        name: name.to_string(),
        ..info.clone()
    }
}

/// Reads each table of the rolled-back point and compares it with the
/// checksum taken when the point was made.
async fn verify(
    m: &Migration,
    point: &Point,
    actions: &[Action],
) -> Result<Vec<TableCheck>, RestoreError> {
    let reader = open_destination_reader(m).await?;
    let found = reader.discover().await?;
    let mut checks = Vec::with_capacity(point.tables.len());
    for (t, &action) in point.tables.iter().zip(actions) {
        let info = found.iter().find(|f| f.name == t.table);
        let check = match (info, t.existed) {
            (None, false) => TableCheck {
                table: t.table.clone(),
                action,
                rows: 0,
                checksum: None,
                passed: true,
                problem: None,
            },
            (Some(_), false) => failed(t, action, "it is still there after being dropped"),
            (None, true) => failed(t, action, "it is missing after the restore"),
            (Some(info), true) => compare(reader.as_ref(), t, info, action).await?,
        };
        checks.push(check);
    }
    Ok(checks)
}

fn failed(t: &PointTable, action: Action, problem: &str) -> TableCheck {
    TableCheck {
        table: t.table.clone(),
        action,
        rows: 0,
        checksum: None,
        passed: false,
        problem: Some(problem.to_string()),
    }
}

async fn compare(
    reader: &dyn Source,
    t: &PointTable,
    info: &TableInfo,
    action: Action,
) -> Result<TableCheck, RestoreError> {
    let now = digest(reader, info).await?;
    let checksum = now.checksum();
    let passed = now.rows == t.rows && Some(&checksum) == t.checksum.as_ref();
    let mut problem = None;
    if !passed {
        let backup = t.backup.as_deref().unwrap_or_default();
        let copy = digest(reader, &renamed(info, backup)).await?;
        let expected = t.checksum.as_deref().unwrap_or("none");
        problem = Some(if Some(copy.checksum()) != t.checksum {
            format!(
                "the copy {backup} was changed after the point was made (it now has {} rows, checksum {}; the point recorded {} rows, checksum {expected}), so the restored rows are not the original ones",
                copy.rows,
                copy.checksum(),
                t.rows
            )
        } else {
            format!(
                "the table has {} rows, checksum {checksum}, but the point recorded {} rows, checksum {expected}; it may have been written to during the rollback: roll back again",
                now.rows, t.rows
            )
        });
    }
    Ok(TableCheck {
        table: t.table.clone(),
        action,
        rows: now.rows,
        checksum: Some(checksum),
        passed,
        problem,
    })
}

/// The checksum of a whole table read through the connector. Columns are
/// taken in name order, so a recreated table whose columns moved still
/// compares.
async fn digest(reader: &dyn Source, info: &TableInfo) -> Result<TableDigest, ConnectorError> {
    let mut order: Vec<usize> = (0..info.columns.len()).collect();
    order.sort_by(|&a, &b| info.columns[a].name.cmp(&info.columns[b].name));
    let (tx, mut rx) = mpsc::channel::<Result<SourceBatch, ConnectorError>>(2);
    let request = ReadRequest::whole(info, DIGEST_BATCH);
    let sum = async {
        let mut digest = TableDigest::new(order.len());
        while let Some(batch) = rx.recv().await {
            for row in &batch?.rows {
                digest.add(row, &order);
            }
        }
        Ok(digest)
    };
    let ((), digest) = tokio::join!(reader.read(request, tx), sum);
    digest
}
