//! The state store: runs, checkpoints, flagged rows and the audit log, in an
//! embedded SQLite file by default.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};

mod hold;
pub mod private;
mod remove;
pub use hold::{Hold, HoldError};
pub use remove::Forgotten;

/// A state-store failure.
#[derive(Debug, thiserror::Error)]
#[error("state store {path}: {message}")]
pub struct StateError {
    /// The store's file.
    pub path: PathBuf,
    /// What went wrong (it already tells the cause's text).
    pub message: String,
    /// The error it came from, if one did.
    #[source]
    pub source: Option<StateCause>,
}

/// The error underneath a [`StateError`]. Its text is already part of the
/// `StateError`'s message, so a printer of error chains stops here.
#[derive(Debug, thiserror::Error)]
pub enum StateCause {
    /// SQLite failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
    /// The store's file or folder could not be made or protected.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl StateError {
    /// An error about the store at `path`, caused by `source`: its message
    /// is `context` followed by the cause's text.
    fn caused(path: &Path, context: &str, source: impl Into<StateCause>) -> Self {
        let source = source.into();
        Self {
            path: path.to_path_buf(),
            message: format!("{context}{source}"),
            source: Some(source),
        }
    }
}

/// A row held for review under the `flag` policy.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FlaggedRow {
    /// The flagged row's id in the store.
    pub id: i64,
    /// The run that flagged it.
    pub run_id: i64,
    /// That run's number among its migration's runs (0 until kept).
    pub run: i64,
    /// The migration's name.
    pub migration: String,
    /// The destination table.
    pub table: String,
    /// The row's 1-based position in its source table.
    pub position: i64,
    /// The row's key (`id=42`), when the table has one.
    pub key: Option<String>,
    /// The stage that failed: `source`, `mapping`, `transform <plugin>`, `destination`.
    pub stage: String,
    /// The column at fault, when known.
    pub column: Option<String>,
    /// The offending value, when known.
    pub value: Option<String>,
    /// The error.
    pub error: String,
    /// The source row as a JSON object.
    pub row: serde_json::Value,
    /// When it was flagged (RFC 3339).
    pub flagged_at: String,
    /// How many times it was retried and failed again.
    pub retries: i64,
    /// How it was closed, once it is: `written`, `present`, `dropped` or
    /// `superseded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<String>,
    /// When it was closed (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<String>,
}

/// Counters of a run, as stored.
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct RunCounts {
    /// Rows read from the source.
    pub read: u64,
    /// Rows written to the destination.
    pub written: u64,
    /// Rows dropped by a transform on purpose.
    pub dropped: u64,
    /// Rows skipped under the `skip` policy.
    pub skipped: u64,
    /// Rows flagged under the `flag` policy.
    pub flagged: u64,
}

/// An entry of the audit log.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The migration.
    pub migration: String,
    /// The run, if the event belongs to one.
    pub run_id: Option<i64>,
    /// That run's number among its migration's runs.
    pub run: Option<i64>,
    /// Who: the OS user that ran the command.
    pub actor: String,
    /// What: `checked`, `run_started`, `table_finished`, `run_finished`, …
    pub kind: String,
    /// The details, as JSON.
    pub detail: serde_json::Value,
}

/// A run's (or sync's) number among its migration's runs (1 for its
/// first), from a table whose `migration` and `$id` columns name it: the
/// store's ids are shared by every migration, so they are never shown.
macro_rules! number {
    ($of:literal, $table:literal, $id:literal) => {
        concat!(
            "(SELECT count(*) FROM ",
            $of,
            " n WHERE n.migration = ",
            $table,
            ".migration AND n.id <= ",
            $table,
            ".",
            $id,
            ")"
        )
    };
}

/// Rows of the migration `?1` and of its syncs, parts and dry runs
/// (`name#…`).
macro_rules! of_migration {
    () => {
        "(migration = ?1 OR substr(migration, 1, length(?1) + 1) = ?1 || '#')"
    };
}

/// [`of_migration!`] as a string for statements built at run time.
const OF_MIGRATION: &str = of_migration!();

/// Rows of dry runs (`name#dry-run`, and the parts of a consolidated one).
macro_rules! of_dry_run {
    () => {
        "(migration LIKE '%#dry-run' OR migration LIKE '%#dry-run#%')"
    };
}

/// Filters for listing flagged rows.
#[derive(Debug, Clone, Default)]
pub struct FlaggedFilter {
    /// Only this migration (with its parts and syncs: `name#…`).
    pub migration: Option<String>,
    /// Rows of dry runs (`name#dry-run`) instead of the real runs': the two
    /// are never mixed, so a dry run's rows are never retried into the
    /// real tables nor counted with theirs.
    pub dry_runs: bool,
    /// Only this run, by its number among its migration's runs.
    pub run: Option<i64>,
    /// Only this destination table.
    pub table: Option<String>,
    /// Closed rows too (retried, superseded), with how they were closed.
    pub closed_too: bool,
    /// Only rows after this id (to read them page by page).
    pub after: Option<i64>,
    /// At most this many rows.
    pub limit: Option<u32>,
}

/// The rows a [`FlaggedFilter`] selects (binds ?1–?6); a run number picks
/// that run of the migration itself, not of its syncs or parts, which are
/// numbered on their own. `id > ?5` is
/// always there (0 for no page yet), so that SQLite seeks to each page by
/// the primary key instead of reading every row before it again.
macro_rules! flagged_where {
    () => {
        concat!(
            " WHERE policy = 'flag' AND (?4 OR resolved_at IS NULL) AND (?1 IS NULL OR ",
            of_migration!(),
            ") AND (?2 IS NULL OR (migration = ?1 AND ",
            number!("runs", "flagged_rows", "run_id"),
            " = ?2)) AND (?3 IS NULL OR table_name = ?3) AND id > ?5 AND ",
            of_dry_run!(),
            " = ?6"
        )
    };
}

/// The open flagged rows a retry may write into `?1`'s destination: see
/// [`StateStore::retryable`].
macro_rules! retryable_where {
    () => {
        concat!(
            " WHERE policy = 'flag' AND resolved_at IS NULL AND migration = ?1 AND run_id > 0 AND run_id >= ",
            last_fresh_run!()
        )
    };
}

/// The id of `?1`'s last fresh run (one that did not resume another): its
/// flags and refusals stand for the destination as that run rebuilt it.
macro_rules! last_fresh_run {
    () => {
        "(SELECT COALESCE(MAX(id), 0) FROM runs WHERE migration = ?1 AND resumed_from IS NULL)"
    };
}

/// The state store.
#[derive(Clone)]
pub struct StateStore {
    path: PathBuf,
    pool: SqlitePool,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    migration TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    rows_read INTEGER NOT NULL DEFAULT 0,
    rows_written INTEGER NOT NULL DEFAULT 0,
    rows_dropped INTEGER NOT NULL DEFAULT 0,
    rows_skipped INTEGER NOT NULL DEFAULT 0,
    rows_flagged INTEGER NOT NULL DEFAULT 0,
    error TEXT
);
CREATE TABLE IF NOT EXISTS checkpoints (
    migration TEXT NOT NULL,
    table_name TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    position INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (migration, table_name)
);
CREATE TABLE IF NOT EXISTS flagged_rows (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER NOT NULL,
    migration TEXT NOT NULL,
    table_name TEXT NOT NULL,
    position INTEGER NOT NULL,
    row_key TEXT,
    stage TEXT NOT NULL,
    column_name TEXT,
    value TEXT,
    error TEXT NOT NULL,
    row_json TEXT NOT NULL,
    flagged_at TEXT NOT NULL,
    policy TEXT NOT NULL DEFAULT 'flag',
    retries INTEGER NOT NULL DEFAULT 0,
    resolved_at TEXT,
    resolution TEXT
);
CREATE INDEX IF NOT EXISTS flagged_rows_by_migration ON flagged_rows (migration, run_id);
CREATE INDEX IF NOT EXISTS flagged_rows_by_row ON flagged_rows (migration, table_name, position);
CREATE INDEX IF NOT EXISTS runs_by_migration ON runs (migration, id);
CREATE TABLE IF NOT EXISTS syncs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    migration TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    inserted INTEGER NOT NULL DEFAULT 0,
    updated INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    schedule TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS syncs_by_migration ON syncs (migration, id);
CREATE TABLE IF NOT EXISTS paused (
    migration TEXT PRIMARY KEY,
    paused_at TEXT NOT NULL,
    actor TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS validations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    migration TEXT NOT NULL,
    run_id INTEGER,
    at TEXT NOT NULL,
    passed INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    migration TEXT NOT NULL,
    run_id INTEGER,
    actor TEXT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

/// The status of a run whose destination was rolled back before it finished.
const ROLLED_BACK: &str = "rolled_back";

/// The validation of a run that finished copying, until it completes.
const PENDING: &str = "pending";

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Makes the store and its WAL and shared-memory files owner-only: a new
/// store is created so, and one an older version made 0644 is tightened
/// (SQLite gives the WAL the database file's mode, so it stays so).
fn restrict_files(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        private::restrict(Path::new(&file))?;
    }
    Ok(())
}

impl StateStore {
    /// Opens (creating if needed, owner-only) the store at `path`.
    pub async fn open(path: &Path) -> Result<Self, StateError> {
        let fail =
            |context: &'static str| move |e: std::io::Error| StateError::caused(path, context, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            private::create_dir_all(dir).map_err(fail("cannot create its folder: "))?;
        }
        private::touch(path).map_err(fail("cannot create it: "))?;
        let options = SqliteConnectOptions::from_str("sqlite://")
            .expect("static url")
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(30));
        let pool = connect(options)
            .await
            .map_err(|e| StateError::caused(path, "", e))?;
        prepare_tables(&pool, path).await?;
        restrict_files(path).map_err(fail("cannot make it owner-only: "))?;
        Ok(Self {
            path: path.to_path_buf(),
            pool,
        })
    }

    fn error(&self, err: sqlx::Error) -> StateError {
        StateError::caused(&self.path, "", err)
    }

    /// Records the start of a run and returns its id. `clock` is the time
    /// the transforms are told (µs since the epoch): a resumed run keeps its
    /// first run's, so every row of a table sees the same time.
    pub async fn start_run(
        &self,
        migration: &str,
        clock: i64,
        resumed_from: Option<i64>,
    ) -> Result<i64, StateError> {
        let id = sqlx::query(
            "INSERT INTO runs (migration, started_at, status, clock, resumed_from) VALUES (?, ?, 'running', ?, ?)",
        )
        .bind(migration)
        .bind(now())
        .bind(clock)
        .bind(resumed_from)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?
        .last_insert_rowid();
        Ok(id)
    }

    /// Records how a run ended. `validating`: a validation follows, so
    /// the run is marked as awaiting it in the same statement (a run cut
    /// off while validating is then told from one never validated).
    pub async fn finish_run(
        &self,
        run_id: i64,
        status: &str,
        counts: RunCounts,
        error: Option<&str>,
        validating: bool,
    ) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE runs SET finished_at = ?, status = ?, rows_read = ?, rows_written = ?, rows_dropped = ?, rows_skipped = ?, rows_flagged = ?, error = ?, validation = ? WHERE id = ?",
        )
        .bind(now())
        .bind(status)
        .bind(counts.read as i64)
        .bind(counts.written as i64)
        .bind(counts.dropped as i64)
        .bind(counts.skipped as i64)
        .bind(counts.flagged as i64)
        .bind(error)
        .bind(validating.then_some(PENDING))
        .bind(run_id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Records how far a table has been committed to the destination.
    pub async fn checkpoint(
        &self,
        migration: &str,
        table: &str,
        run_id: i64,
        position: u64,
    ) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO checkpoints (migration, table_name, run_id, position, updated_at) VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (migration, table_name) DO UPDATE SET run_id = excluded.run_id, position = excluded.position, updated_at = excluded.updated_at",
        )
        .bind(migration)
        .bind(table)
        .bind(run_id)
        .bind(position as i64)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Keeps a row for review.
    pub async fn flag(&self, row: &FlaggedRow) -> Result<(), StateError> {
        self.keep(row, "flag").await
    }

    /// Keeps several rows under the `flag` policy in one transaction: a
    /// commit each would bound a run whose rows all fail to a few thousand
    /// rows a second. Returns their ids.
    pub async fn flag_all(&self, rows: &[FlaggedRow]) -> Result<Vec<i64>, StateError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let mut ids = Vec::with_capacity(rows.len());
        for row in rows {
            let done = keep_row(row, "flag")
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
            ids.push(done.last_insert_rowid());
        }
        tx.commit().await.map_err(|e| self.error(e))?;
        Ok(ids)
    }

    /// Forgets flagged rows by id: those of a batch the destination never
    /// committed, which the run reads and flags again when it resumes.
    pub async fn unflag(&self, ids: &[i64]) -> Result<(), StateError> {
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        for id in ids {
            sqlx::query("DELETE FROM flagged_rows WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?;
        }
        tx.commit().await.map_err(|e| self.error(e))
    }

    /// Closes the open rows of `table` that `migration`'s runs since its
    /// last fresh run kept at source positions past `rows`: the destination
    /// never committed the batches they were in (the run was killed or cut
    /// off), and the run resuming the table reads them again.
    pub async fn reread(&self, migration: &str, table: &str, rows: u64) -> Result<(), StateError> {
        sqlx::query(concat!(
            "UPDATE flagged_rows SET resolved_at = ?4, resolution = 'reread'
                 WHERE migration = ?1 AND table_name = ?2 AND position > ?3
                   AND resolved_at IS NULL AND run_id >= ",
            last_fresh_run!()
        ))
        .bind(migration)
        .bind(table)
        .bind(rows as i64)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Notes a row the destination refused under the `skip` policy, so
    /// validation knows the destination lacks it on purpose.
    pub async fn skipped(&self, row: &FlaggedRow) -> Result<(), StateError> {
        self.keep(row, "skip").await
    }

    /// The rows of `table` the destination refused (skipped or flagged)
    /// since the migration's last fresh run because a row they refer to was
    /// missing, still open, oldest first.
    pub async fn orphans(
        &self,
        migration: &str,
        table: &str,
    ) -> Result<Vec<FlaggedRow>, StateError> {
        let rows = sqlx::query(concat!(
            "SELECT *, ",
            number!("runs", "flagged_rows", "run_id"),
            " AS run FROM flagged_rows
                 WHERE migration = ?1 AND table_name = ?2 AND stage = 'destination'
                   AND resolved_at IS NULL AND run_id >= ",
            last_fresh_run!(),
            " ORDER BY id"
        ))
        .bind(migration)
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(flagged_row)
            .filter(|r| refers_to_missing_row(&r.error))
            .collect())
    }

    /// The rows the destination refused (skipped or flagged) since the
    /// migration's last fresh run, by destination table: each by its
    /// position (`#7`) and, when it has one, its key (`id=42`).
    pub async fn refused(
        &self,
        migration: &str,
    ) -> Result<HashMap<String, HashSet<String>>, StateError> {
        let rows: Vec<(String, Option<String>, i64)> = sqlx::query_as(concat!(
            "SELECT table_name, row_key, position FROM flagged_rows
                 WHERE migration = ?1 AND stage = 'destination' AND resolved_at IS NULL
                   AND run_id >= ",
            last_fresh_run!()
        ))
        .bind(migration)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let mut refused: HashMap<String, HashSet<String>> = HashMap::new();
        for (table, key, position) in rows {
            let ids = refused.entry(table).or_default();
            ids.insert(format!("#{position}"));
            ids.extend(key);
        }
        Ok(refused)
    }

    /// The keys (or `#position`) of rows the destination refused in the
    /// migration's last fresh run because a row they refer to was missing
    /// (a foreign key), by table: children of refused or absent parents.
    pub async fn refused_for_reference(
        &self,
        migration: &str,
    ) -> Result<HashMap<String, Vec<String>>, StateError> {
        let rows: Vec<(String, Option<String>, i64, String)> = sqlx::query_as(concat!(
            "SELECT table_name, row_key, position, error FROM flagged_rows
                 WHERE migration = ?1 AND stage = 'destination' AND resolved_at IS NULL
                   AND run_id >= ",
            last_fresh_run!(),
            " ORDER BY id"
        ))
        .bind(migration)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let mut found: HashMap<String, Vec<String>> = HashMap::new();
        for (table, key, position, error) in rows {
            if refers_to_missing_row(&error) {
                let name = key.unwrap_or_else(|| format!("#{position}"));
                found.entry(table).or_default().push(name);
            }
        }
        Ok(found)
    }

    /// The error of the open flagged row of `table` (in the migration's
    /// last fresh run) whose key has these values, in order: why a parent
    /// row is missing.
    pub async fn refusal_of(
        &self,
        migration: &str,
        table: &str,
        values: &[&str],
    ) -> Result<Option<String>, StateError> {
        let rows: Vec<(Option<String>, String)> = sqlx::query_as(concat!(
            "SELECT row_key, error FROM flagged_rows
                 WHERE migration = ?1 AND table_name = ?2 AND resolved_at IS NULL
                   AND run_id >= ",
            last_fresh_run!(),
            " ORDER BY id"
        ))
        .bind(migration)
        .bind(table)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let same = |key: &str| {
            let found: Vec<&str> = key
                .split(", ")
                .map(|part| part.split_once('=').map_or(part, |(_, v)| v))
                .collect();
            found == values
        };
        Ok(rows
            .into_iter()
            .find(|(key, _)| key.as_deref().is_some_and(same))
            .map(|(_, error)| error))
    }

    async fn keep(&self, row: &FlaggedRow, policy: &str) -> Result<(), StateError> {
        keep_row(row, policy)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Lists the flagged rows still open (not retried into the destination
    /// nor superseded), or with `closed_too` all of them, oldest first.
    pub async fn flagged(&self, filter: &FlaggedFilter) -> Result<Vec<FlaggedRow>, StateError> {
        let sql = concat!(
            "SELECT *, ",
            number!("runs", "flagged_rows", "run_id"),
            " AS run FROM flagged_rows",
            flagged_where!(),
            " ORDER BY id LIMIT ?7"
        );
        let limit = filter.limit.map_or(-1, i64::from);
        let rows = bind_filter(sqlx::query(sql), filter)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(flagged_row).collect())
    }

    /// How many flagged rows `filter` selects (its `limit` aside).
    pub async fn count_flagged(&self, filter: &FlaggedFilter) -> Result<u64, StateError> {
        let sql = concat!("SELECT count(*) FROM flagged_rows", flagged_where!());
        let row = bind_filter(sqlx::query(sql), filter)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.get::<i64, _>(0) as u64)
    }

    /// How many rows [`StateStore::retryable`] would return.
    pub async fn count_retryable(&self, migration: &str) -> Result<u64, StateError> {
        let sql = concat!("SELECT count(*) FROM flagged_rows", retryable_where!());
        let count: i64 = sqlx::query_scalar(sql)
            .bind(migration)
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(count as u64)
    }

    /// Which of `ids` [`StateStore::retryable`] would return.
    pub async fn retryable_among(
        &self,
        migration: &str,
        ids: &[i64],
    ) -> Result<HashSet<i64>, StateError> {
        let sql = concat!(
            "SELECT id FROM flagged_rows",
            retryable_where!(),
            " AND id IN (SELECT value FROM json_each(?2))"
        );
        let ids = sqlx::query_scalar(sql)
            .bind(migration)
            .bind(serde_json::to_string(ids).expect("serializable"))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(ids.into_iter().collect())
    }

    /// The open flagged rows a retry may write into `migration`'s
    /// destination: those of its own runs since its last fresh run (older
    /// ones belong to a destination table that run rebuilt; a sync's are
    /// kept under its runs of `<migration>#sync`, and a CDC sync's from
    /// before it had runs under run 0: the sync's to read again), oldest
    /// first.
    pub async fn retryable(&self, migration: &str) -> Result<Vec<FlaggedRow>, StateError> {
        let rows = sqlx::query(concat!(
            "SELECT *, ",
            number!("runs", "flagged_rows", "run_id"),
            " AS run FROM flagged_rows",
            retryable_where!(),
            " ORDER BY id"
        ))
        .bind(migration)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(flagged_row).collect())
    }

    /// Closes the open flags of `migration` that later ones stand for:
    /// those of runs before its last fresh run (which rebuilt the
    /// destination they were kept for, and flagged again the rows that
    /// still fail), and earlier flags of a row flagged again (a resumed run
    /// reads the batch it was cut off in once more).
    pub async fn supersede_flagged(&self, migration: &str) -> Result<(), StateError> {
        sqlx::query(
            concat!(
                "UPDATE flagged_rows SET resolved_at = ?2, resolution = 'superseded'
                 WHERE policy = 'flag' AND resolved_at IS NULL AND migration = ?1
                   AND (run_id < ",
                last_fresh_run!(),
                " OR EXISTS (SELECT 1 FROM flagged_rows later
                               WHERE later.migration = flagged_rows.migration AND later.table_name = flagged_rows.table_name
                                 AND later.position = flagged_rows.position AND later.id > flagged_rows.id
                                 AND later.policy = 'flag' AND later.resolved_at IS NULL))"
            ),
        )
        .bind(migration)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// When the last successful sync of `migration` started (RFC 3339).
    pub async fn last_synced(&self, migration: &str) -> Result<Option<String>, StateError> {
        sqlx::query_scalar(
            "SELECT MAX(started_at) FROM syncs WHERE migration = ? AND status = 'succeeded'",
        )
        .bind(migration)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| self.error(e))
    }

    /// Closes flagged rows: `written` (a retry wrote them), `present` (the
    /// destination already had their key), `dropped` (a transform now
    /// filters them out) or `superseded` (the table was rebuilt since).
    pub async fn resolve(&self, ids: &[i64], resolution: &str) -> Result<(), StateError> {
        let ids = serde_json::to_string(ids).expect("ids serialize");
        sqlx::query(
            "UPDATE flagged_rows SET resolved_at = ?, resolution = ? WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(now())
        .bind(resolution)
        .bind(ids)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Keeps a flagged row open with the error its retry met, and the row
    /// as it was tried (with a person's fixes, so the next export has them).
    pub async fn failed_again(&self, id: i64, failure: &FlaggedRow) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE flagged_rows SET stage = ?, column_name = ?, value = ?, error = ?, row_json = ?, retries = retries + 1 WHERE id = ?",
        )
        .bind(&failure.stage)
        .bind(&failure.column)
        .bind(&failure.value)
        .bind(&failure.error)
        .bind(failure.row.to_string())
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Appends an event to the audit log.
    pub async fn event(
        &self,
        migration: &str,
        run_id: Option<i64>,
        kind: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StateError> {
        // The first event of a migration is preceded by its `created`.
        sqlx::query(
            "INSERT INTO events (at, migration, run_id, actor, kind, detail)
             SELECT ?1, ?2, NULL, ?3, 'created', '{}'
             WHERE NOT EXISTS (SELECT 1 FROM events WHERE migration = ?2)",
        )
        .bind(now())
        .bind(migration)
        .bind(actor())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        sqlx::query("INSERT INTO events (at, migration, run_id, actor, kind, detail) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(now())
            .bind(migration)
            .bind(run_id)
            .bind(actor())
            .bind(kind)
            .bind(detail.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The newest run of `migration`: its id, status and clock.
    pub async fn last_run(&self, migration: &str) -> Result<Option<LastRun>, StateError> {
        let sql = concat!(
            "SELECT id, ",
            number!("runs", "runs", "id"),
            ", status, clock, validation FROM runs WHERE migration = ? ORDER BY id DESC LIMIT 1"
        );
        let last = sqlx::query(sql)
            .bind(migration)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(last.map(|r| LastRun {
            id: r.get(0),
            number: r.get(1),
            status: r.get(2),
            clock: r.get(3),
            validation: r.get(4),
        }))
    }

    /// The newest run's id in the store (0 before any).
    pub async fn newest_run_id(&self) -> Result<i64, StateError> {
        let (id,): (i64,) = sqlx::query_as("SELECT coalesce(max(id), 0) FROM runs")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(id)
    }

    /// Marks the runs of `migration` (and of its scratch runs,
    /// `<migration>#…`) newer than `after` that are still `running` as
    /// failed with `error`: a sync abandoned while they ran (its time
    /// limit, a stop) never finished them.
    pub async fn abandon_runs(
        &self,
        migration: &str,
        after: i64,
        error: &str,
    ) -> Result<(), StateError> {
        sqlx::query(concat!(
            "UPDATE runs SET status = 'failed', finished_at = ?4, error = ?3
             WHERE id > ?2 AND status = 'running' AND ",
            of_migration!(),
            " AND NOT ",
            of_dry_run!()
        ))
        .bind(migration)
        .bind(after)
        .bind(error)
        .bind(now())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Records the start of a sync, with the schedule it runs on.
    pub async fn start_sync(
        &self,
        migration: &str,
        schedule: &serde_json::Value,
    ) -> Result<i64, StateError> {
        let id = sqlx::query(
            "INSERT INTO syncs (migration, started_at, status, schedule) VALUES (?, ?, 'running', ?)",
        )
        .bind(migration)
        .bind(now())
        .bind(schedule.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?
        .last_insert_rowid();
        Ok(id)
    }

    /// Records how a sync ended: its status, what it changed, its error.
    pub async fn finish_sync(
        &self,
        id: i64,
        status: &str,
        changed: [u64; 3],
        error: Option<&str>,
    ) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE syncs SET finished_at = ?, status = ?, inserted = ?, updated = ?, deleted = ?, error = ? WHERE id = ?",
        )
        .bind(now())
        .bind(status)
        .bind(changed[0] as i64)
        .bind(changed[1] as i64)
        .bind(changed[2] as i64)
        .bind(error)
        .bind(id)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// The newest sync of each migration (or of `migration`).
    pub async fn last_syncs(&self, migration: Option<&str>) -> Result<Vec<SyncRecord>, StateError> {
        let rows = sqlx::query(
            concat!(
                "SELECT *, ",
                number!("syncs", "syncs", "id"),
                " AS number FROM syncs WHERE id IN (SELECT MAX(id) FROM syncs WHERE (?1 IS NULL OR migration = ?1) GROUP BY migration) ORDER BY migration"
            ),
        )
        .bind(migration)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(sync_record).collect())
    }

    /// The newest `limit` syncs of `migration`, newest first.
    pub async fn syncs(&self, migration: &str, limit: u32) -> Result<Vec<SyncRecord>, StateError> {
        let sql = concat!(
            "SELECT *, ",
            number!("syncs", "syncs", "id"),
            " AS number FROM syncs WHERE migration = ? ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(sql)
            .bind(migration)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows.iter().map(sync_record).collect())
    }

    /// Pauses a migration's syncs; false if it already was.
    pub async fn pause(&self, migration: &str) -> Result<bool, StateError> {
        let done = sqlx::query(
            "INSERT OR IGNORE INTO paused (migration, paused_at, actor) VALUES (?, ?, ?)",
        )
        .bind(migration)
        .bind(now())
        .bind(actor())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Resumes a migration's syncs; false if it was not paused.
    pub async fn resume(&self, migration: &str) -> Result<bool, StateError> {
        let done = sqlx::query("DELETE FROM paused WHERE migration = ?")
            .bind(migration)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(done.rows_affected() == 1)
    }

    /// Every paused migration with since when.
    pub async fn paused_all(&self) -> Result<Vec<(String, String)>, StateError> {
        sqlx::query_as("SELECT migration, paused_at FROM paused ORDER BY migration")
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))
    }

    /// Since when and by whom a migration is paused, if it is.
    pub async fn paused(&self, migration: &str) -> Result<Option<(String, String)>, StateError> {
        sqlx::query_as("SELECT paused_at, actor FROM paused WHERE migration = ?")
            .bind(migration)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))
    }

    /// Gives a run awaiting its validation the outcome (`passed` or
    /// `failed`); a run validated already keeps its own.
    pub async fn validated(&self, run_id: i64, passed: bool) -> Result<(), StateError> {
        let outcome = if passed { "passed" } else { "failed" };
        sqlx::query("UPDATE runs SET validation = ? WHERE id = ? AND validation = ?")
            .bind(outcome)
            .bind(run_id)
            .bind(PENDING)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Keeps a validation report.
    pub async fn save_validation(
        &self,
        migration: &str,
        run_id: Option<i64>,
        passed: bool,
        report: &serde_json::Value,
    ) -> Result<(), StateError> {
        sqlx::query(
            "INSERT INTO validations (migration, run_id, at, passed, report) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(migration)
        .bind(run_id)
        .bind(now())
        .bind(passed)
        .bind(report.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Marks the last run of `migration` rolled back if it did not succeed:
    /// its destination was restored, so the next run starts afresh instead
    /// of resuming it.
    pub async fn close_unfinished(&self, migration: &str) -> Result<(), StateError> {
        sqlx::query(
            "UPDATE runs SET status = ?, finished_at = coalesce(finished_at, ?)
             WHERE id = (SELECT max(id) FROM runs WHERE migration = ?) AND status <> 'succeeded'",
        )
        .bind(ROLLED_BACK)
        .bind(now())
        .bind(migration)
        .execute(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Notes the restore point made before run `run_id`, so a rollback to
    /// it knows the runs it undoes.
    pub async fn note_restore_point(&self, run_id: i64, point: &str) -> Result<(), StateError> {
        sqlx::query("UPDATE runs SET restore_point = ? WHERE id = ?")
            .bind(point)
            .bind(run_id)
            .execute(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Records that `migration`'s destination went back to restore point
    /// `point`: the runs since it (its syncs' and parts' too) are undone,
    /// and no validation taken before describes the tables any more.
    pub async fn rolled_back(&self, migration: &str, point: &str) -> Result<(), StateError> {
        let mine = OF_MIGRATION;
        let runs = format!(
            "UPDATE runs SET rolled_back = ?2 WHERE {mine} AND rolled_back IS NULL
             AND id >= (SELECT min(id) FROM runs WHERE migration = ?1 AND restore_point = ?2)"
        );
        let validations =
            format!("UPDATE validations SET rolled_back = ?2 WHERE {mine} AND rolled_back IS NULL");
        for sql in [runs, validations] {
            sqlx::query(&sql)
                .bind(migration)
                .bind(point)
                .execute(&self.pool)
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// The newest `limit` audit events, oldest first.
    pub async fn events(
        &self,
        migration: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Event>, StateError> {
        let rows = sqlx::query(concat!(
            "SELECT *, ",
            number!("runs", "events", "run_id"),
            " AS run FROM (SELECT * FROM events WHERE (?1 IS NULL OR ",
            of_migration!(),
            ") ORDER BY id DESC LIMIT ?2) events ORDER BY id"
        ))
        .bind(migration)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|r| Event {
                at: r.get("at"),
                migration: r.get("migration"),
                run_id: r.get("run_id"),
                run: r
                    .get::<Option<i64>, _>("run_id")
                    .map(|_| r.get::<i64, _>("run")),
                actor: r.get("actor"),
                kind: r.get("kind"),
                detail: serde_json::from_str(r.get::<&str, _>("detail")).unwrap_or_default(),
            })
            .collect())
    }

    /// What the latest run to finish each table of `migration` counted
    /// for it (that run's rows only), by the table's name.
    pub async fn table_counts(
        &self,
        migration: &str,
    ) -> Result<HashMap<String, RunCounts>, StateError> {
        let rows = sqlx::query(
            "SELECT detail FROM events WHERE migration = ? AND kind = 'table_finished' ORDER BY id",
        )
        .bind(migration)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.error(e))?;
        let mut counts = HashMap::new();
        for row in &rows {
            let detail: serde_json::Value =
                serde_json::from_str(row.get::<&str, _>("detail")).unwrap_or_default();
            let table = detail["table"].as_str().map(str::to_string);
            let recorded = serde_json::from_value::<RunCounts>(detail["counts"].clone());
            if let (Some(table), Ok(recorded)) = (table, recorded) {
                counts.insert(table, recorded);
            }
        }
        Ok(counts)
    }

    /// The newest `limit` runs of `migration`, newest first.
    pub async fn runs(&self, migration: &str, limit: u32) -> Result<Vec<RunRecord>, StateError> {
        let sql = concat!(
            "SELECT *, ",
            number!("runs", "runs", "id"),
            " AS number FROM runs WHERE migration = ? ORDER BY id DESC LIMIT ?"
        );
        let rows = sqlx::query(sql)
            .bind(migration)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(rows
            .iter()
            .map(|r| RunRecord {
                id: r.get("id"),
                number: r.get("number"),
                started_at: r.get("started_at"),
                finished_at: r.get("finished_at"),
                status: r.get("status"),
                counts: RunCounts {
                    read: r.get::<i64, _>("rows_read") as u64,
                    written: r.get::<i64, _>("rows_written") as u64,
                    dropped: r.get::<i64, _>("rows_dropped") as u64,
                    skipped: r.get::<i64, _>("rows_skipped") as u64,
                    flagged: r.get::<i64, _>("rows_flagged") as u64,
                },
                error: r.get("error"),
                validation: r.get("validation"),
                rolled_back: r.get("rolled_back"),
            })
            .collect())
    }

    /// The newest validation report kept for `migration`.
    pub async fn last_validation(
        &self,
        migration: &str,
    ) -> Result<Option<StoredValidation>, StateError> {
        let sql = concat!(
            "SELECT at, run_id, ",
            number!("runs", "validations", "run_id"),
            ", passed, report, rolled_back FROM validations WHERE migration = ? ORDER BY id DESC LIMIT 1"
        );
        type Kept = (String, Option<i64>, i64, bool, String, Option<String>);
        let row: Option<Kept> = sqlx::query_as(sql)
            .bind(migration)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))?;
        Ok(row.map(
            |(at, run_id, number, passed, report, rolled_back)| StoredValidation {
                at,
                run: run_id.map(|_| number),
                run_id,
                passed,
                report: serde_json::from_str(&report).unwrap_or_default(),
                rolled_back,
            },
        ))
    }

    /// A run's number among its migration's runs.
    pub async fn run_number(&self, run_id: i64) -> Result<i64, StateError> {
        let sql = concat!(
            "SELECT ",
            number!("runs", "runs", "id"),
            " FROM runs WHERE id = ?"
        );
        self.scalar(sql, run_id).await
    }

    /// A sync's number among its migration's syncs.
    pub async fn sync_number(&self, sync_id: i64) -> Result<i64, StateError> {
        let sql = concat!(
            "SELECT ",
            number!("syncs", "syncs", "id"),
            " FROM syncs WHERE id = ?"
        );
        self.scalar(sql, sync_id).await
    }

    async fn scalar(&self, sql: &'static str, id: i64) -> Result<i64, StateError> {
        sqlx::query_scalar(sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map(Option::unwrap_or_default)
            .map_err(|e| self.error(e))
    }

    /// The status of a run.
    pub async fn run_status(&self, run_id: i64) -> Result<Option<String>, StateError> {
        sqlx::query_scalar("SELECT status FROM runs WHERE id = ?")
            .bind(run_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.error(e))
    }
}

/// A run as recorded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRecord {
    /// The run's id in the store.
    pub id: i64,
    /// Its number among its migration's runs (1 for the first): the one
    /// shown.
    pub number: i64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
    /// `running`, `succeeded`, `failed` or `rolled_back`.
    pub status: String,
    /// Its counters.
    pub counts: RunCounts,
    /// Why it failed.
    pub error: Option<String>,
    /// Its validation: `pending` (it finished copying and its validation
    /// has not completed yet), `passed` or `failed`; none when it was not
    /// validated (or ran before validations were recorded with runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<String>,
    /// The restore point a rollback put its tables back to, undoing it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rolled_back: Option<String>,
}

/// A validation report as kept.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoredValidation {
    /// When it was kept (RFC 3339).
    pub at: String,
    /// The run it validated, if any.
    pub run_id: Option<i64>,
    /// That run's number among its migration's runs.
    pub run: Option<i64>,
    /// Whether every table passed.
    pub passed: bool,
    /// The report (`validate --json`'s form).
    pub report: serde_json::Value,
    /// The restore point the destination was rolled back to after it: the
    /// report no longer describes the tables.
    pub rolled_back: Option<String>,
}

/// A sync as recorded.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncRecord {
    /// The sync's id in the store.
    pub id: i64,
    /// Its number among its migration's syncs (1 for the first): the one
    /// shown.
    pub number: i64,
    /// The migration.
    pub migration: String,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When it ended, if it did.
    pub finished_at: Option<String>,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Rows added.
    pub inserted: u64,
    /// Rows changed.
    pub updated: u64,
    /// Rows removed.
    pub deleted: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// The migration's `[sync]` settings at the time, as JSON.
    pub schedule: serde_json::Value,
}

/// The newest run of a migration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastRun {
    /// Its id.
    pub id: i64,
    /// Its number among its migration's runs.
    pub number: i64,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// The time its transforms were told (µs), if recorded.
    pub clock: Option<i64>,
    /// Its validation: `pending`, `passed`, `failed`, or none.
    pub validation: Option<String>,
}

impl LastRun {
    /// Whether the next run continues this one: it neither succeeded nor
    /// was rolled back.
    pub fn resumable(&self) -> bool {
        self.status != "succeeded" && self.status != ROLLED_BACK
    }

    /// Whether it copied everything but its validation never completed
    /// (the process was killed while validating): the next run validates
    /// it instead of starting over.
    pub fn awaits_validation(&self) -> bool {
        self.status == "succeeded" && self.validation.as_deref() == Some(PENDING)
    }
}

fn flagged_row(r: &sqlx::sqlite::SqliteRow) -> FlaggedRow {
    FlaggedRow {
        id: r.get("id"),
        run_id: r.get("run_id"),
        run: r.get("run"),
        migration: r.get("migration"),
        table: r.get("table_name"),
        position: r.get("position"),
        key: r.get("row_key"),
        stage: r.get("stage"),
        column: r.get("column_name"),
        value: r.get("value"),
        error: r.get("error"),
        row: serde_json::from_str(r.get::<&str, _>("row_json")).unwrap_or_default(),
        flagged_at: r.get("flagged_at"),
        retries: r.get("retries"),
        resolution: r.get("resolution"),
        resolved_at: r.get("resolved_at"),
    }
}

/// Brings a store made by an older version up to the current tables.
/// Connects to the store. Two processes opening a new store at once (a
/// `run`, and a `status` or the dashboard asking about it) race to make it
/// a WAL database; the one that loses is told the store is busy, whatever
/// its busy timeout, and tries again.
async fn connect(options: SqliteConnectOptions) -> Result<SqlitePool, sqlx::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let connected = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options.clone())
            .await;
        match connected {
            Err(e) if busy(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

/// Creates and upgrades the store's tables. Another process may hold the
/// store (a run while `status` starts, or SQLite tidying its WAL as the
/// last one closes): a store that is busy is tried again for a while
/// rather than failing a command that only wants to read.
async fn prepare_tables(pool: &SqlitePool, path: &Path) -> Result<(), StateError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let done = match sqlx::raw_sql(SCHEMA).execute(pool).await {
            Ok(_) => upgrade(pool)
                .await
                .map_err(|e| ("cannot upgrade its tables: ", e)),
            Err(e) => Err(("cannot create its tables: ", e)),
        };
        match done {
            Err((_, e)) if busy(&e) && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => {
                return other.map_err(|(context, e)| StateError::caused(path, context, e));
            }
        }
    }
}

/// Whether SQLite said the store is busy or locked (`SQLITE_BUSY`,
/// `SQLITE_LOCKED` and their extended codes).
fn busy(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(d) = e else {
        return false;
    };
    let code = d.code().and_then(|c| c.parse::<u32>().ok());
    code.is_some_and(|n| matches!(n & 0xff, 5 | 6))
}

async fn upgrade(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    for (table, column, def) in [
        ("runs", "clock", "INTEGER"),
        ("runs", "resumed_from", "INTEGER"),
        ("runs", "validation", "TEXT"),
        ("runs", "restore_point", "TEXT"),
        ("runs", "rolled_back", "TEXT"),
        ("validations", "rolled_back", "TEXT"),
        ("flagged_rows", "policy", "TEXT NOT NULL DEFAULT 'flag'"),
        ("flagged_rows", "retries", "INTEGER NOT NULL DEFAULT 0"),
        ("flagged_rows", "resolved_at", "TEXT"),
        ("flagged_rows", "resolution", "TEXT"),
    ] {
        let columns: Vec<String> =
            sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                .fetch_all(pool)
                .await?;
        if !columns.iter().any(|c| c == column) {
            let added = sqlx::query(&format!("ALTER TABLE {table} ADD COLUMN {column} {def}"))
                .execute(pool)
                .await;
            // Another process opening the same new store (`status` while
            // `serve` starts, say) may have added it in between.
            match added {
                Err(sqlx::Error::Database(e)) if e.message().contains("duplicate column name") => {}
                other => {
                    other?;
                }
            }
        }
    }
    Ok(())
}

/// Who is acting: the OS user running the tool.
fn sync_record(r: &sqlx::sqlite::SqliteRow) -> SyncRecord {
    SyncRecord {
        id: r.get("id"),
        number: r.get("number"),
        migration: r.get("migration"),
        started_at: r.get("started_at"),
        finished_at: r.get("finished_at"),
        status: r.get("status"),
        inserted: r.get::<i64, _>("inserted") as u64,
        updated: r.get::<i64, _>("updated") as u64,
        deleted: r.get::<i64, _>("deleted") as u64,
        error: r.get("error"),
        schedule: serde_json::from_str(r.get::<&str, _>("schedule")).unwrap_or_default(),
    }
}

/// The insert that keeps a failed row under `policy`.
fn keep_row<'q>(
    row: &'q FlaggedRow,
    policy: &'q str,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    sqlx::query(
        "INSERT INTO flagged_rows (run_id, migration, table_name, position, row_key, stage, column_name, value, error, row_json, flagged_at, policy)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(row.run_id)
    .bind(&row.migration)
    .bind(&row.table)
    .bind(row.position)
    .bind(&row.key)
    .bind(&row.stage)
    .bind(&row.column)
    .bind(&row.value)
    .bind(&row.error)
    .bind(row.row.to_string())
    .bind(now())
    .bind(policy)
}

/// Binds a [`FlaggedFilter`] to `?1`–`?6` of [`flagged_where!`].
fn bind_filter<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>,
    filter: &'q FlaggedFilter,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>> {
    query
        .bind(&filter.migration)
        .bind(filter.run)
        .bind(&filter.table)
        .bind(filter.closed_too)
        .bind(filter.after.unwrap_or(0))
        .bind(filter.dry_runs)
}

fn actor() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown".into())
}

/// The login name of the process's user from /etc/passwd (services often
/// run without USER set).
fn user_from_passwd() -> Option<String> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata("/proc/self").ok()?.uid().to_string();
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.get(2) == Some(&uid.as_str())).then(|| fields[0].to_string())
    })
}

/// Whether a destination's refusal says a row it refers to is missing: the
/// foreign-key messages of PostgreSQL, MariaDB/MySQL and SQLite.
pub(crate) fn refers_to_missing_row(error: &str) -> bool {
    const MESSAGES: [&str; 3] = [
        "violates foreign key constraint",
        "a foreign key constraint fails",
        "FOREIGN KEY constraint failed",
    ];
    MESSAGES.iter().any(|m| error.contains(m))
}

/// The parent a foreign-key refusal names, where the destination says
/// which (PostgreSQL: `Key (customer_id)=(7) is not present in table
/// "customers"`): its table and the key's values.
pub(crate) fn missing_parent(error: &str) -> Option<(String, Vec<String>)> {
    let detail = error.split("Key (").nth(1)?;
    let (_, rest) = detail.split_once(")=(")?;
    let (values, rest) = rest.split_once(") is not present in table \"")?;
    let table = rest.split('"').next()?;
    let values = values.split(", ").map(str::to_string).collect();
    Some((table.to_string(), values))
}

#[cfg(test)]
mod parent_tests {
    use super::missing_parent;

    #[test]
    fn a_postgres_foreign_key_refusal_names_its_parent() {
        let error = "insert or update on table \"orders\" violates foreign key constraint \"orders_customer_id_fkey\" (Key (customer_id)=(7) is not present in table \"customers\".)";
        assert_eq!(
            missing_parent(error),
            Some(("customers".into(), vec!["7".into()]))
        );
        assert_eq!(missing_parent("FOREIGN KEY constraint failed"), None);
    }
}
