//! The PostgreSQL sink: each batch is one transaction holding a binary
//! `COPY … FROM STDIN` of its rows and the upsert of its checkpoint, so a
//! batch lands exactly once however the run is interrupted.
//!
//! Batches commit with `synchronous_commit = off`: a server crash can lose
//! the last few commits, but each loses its checkpoint with it, so a resumed
//! run redoes exactly those batches. `finish` commits synchronously, which
//! flushes every earlier commit too, before a table is reported complete.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use futures_util::future::BoxFuture;
use sqlx::PgConnection;
use sqlx::postgres::PgDatabaseError;

use super::copy::{TRAILER, TupleWriter, header};
use super::types::{Binary, create_type, writable, write_as};
use super::{CHECKPOINTS, CatalogTable, Db, ident};
use crate::config::ServerEndpoint;
use crate::drivers::Shape;
use crate::drivers::Step;
use crate::drivers::merge::Dialect;
use crate::drivers::server::{self, DbFailure};
use crate::drivers::{
    Checkpoint, ConnectorError, FreeSpace, Healthcheck, Native, Prepare, Prepared, Readiness,
    Rejected, Sink, SqlDestination, WriteBatch, native_of, readiness,
};
use crate::model::value::{Column, type_name};

/// Bytes per COPY data message.
const CHUNK: usize = 1 << 20;

/// Writes tables into one schema.
pub struct PgSink {
    db: Db,
    /// Per table, the binary layout of each written column, checked against
    /// the real table when it was prepared.
    layouts: HashMap<String, Vec<Binary>>,
    /// Per table, the columns created with a source's native type.
    natives: HashMap<String, Vec<(String, Native)>>,
}

/// Where one encoded row sits in the batch's buffer.
struct Span {
    row: usize,
    bytes: Range<usize>,
}

impl PgSink {
    /// Connects (testing the connection) and makes sure the checkpoint
    /// table exists.
    pub(super) async fn open(ep: &ServerEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        let db = Db::open(
            "destination",
            ep,
            base_dir,
            &[("synchronous_commit", "off")],
            2,
        )
        .await?;
        if !db.utf8 {
            return Err(db.fail(
                "the database's encoding is not UTF8; binary COPY hands text over unconverted, so load into a UTF8 database",
            ));
        }
        create_checkpoints(&db).await?;
        Ok(Self {
            db,
            layouts: HashMap::new(),
            natives: HashMap::new(),
        })
    }

    /// `GRANT CREATE ON SCHEMA s TO user`.
    fn grant_create(&self) -> String {
        create_grant(&self.db)
    }

    /// Checks that an existing table can take `columns` and remembers how
    /// to encode them.
    async fn adopt(&mut self, table: &str, columns: &[Column]) -> Result<(), ConnectorError> {
        let found = self.db.catalog(Some(table)).await?.into_iter().next();
        let Some(existing) = found else {
            return Err(self.db.fail(format!(
                "table `{table}` is gone from schema `{}`; run again with --restart",
                self.db.schema
            )));
        };
        let layouts = fit(&existing, columns).map_err(|problems| {
            self.db.fail(format!(
                "cannot load into the existing table `{table}`: {}; rename or convert those columns in the mapping, or choose another destination table",
                problems.join("; ")
            ))
        })?;
        self.layouts.insert(table.to_string(), layouts);
        Ok(())
    }

    /// Creates the table (dropping the old one first for `replace`).
    async fn create(
        &mut self,
        table: &str,
        columns: &[Column],
        replace: bool,
    ) -> Result<(), ConnectorError> {
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                let null = if c.nullable { "" } else { " NOT NULL" };
                let t = match native_of(&self.natives, table, &c.name) {
                    Some(Native::Array(elem)) => format!("{}[]", create_type(elem)),
                    Some(Native::Decimal { precision, scale })
                        if (1..=1000).contains(&precision) =>
                    {
                        format!("numeric({precision},{scale})")
                    }
                    _ => create_type(c.type_).to_string(),
                };
                format!("{} {t}{null}", ident(&c.name))
            })
            .collect();
        let fail = |e: &sqlx::Error| self.db.table_error(table, e);
        let mut tx = self.db.pool.begin().await.map_err(|e| fail(&e))?;
        if replace {
            let drop = format!("DROP TABLE {}", self.db.qualified(table));
            sqlx::query(&drop)
                .execute(&mut *tx)
                .await
                .map_err(|e| fail(&e))?;
        }
        let sql = format!(
            "CREATE TABLE {} ({})",
            self.db.qualified(table),
            defs.join(", ")
        );
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| fail(&e))?;
        tx.commit().await.map_err(|e| fail(&e))?;
        self.adopt(table, columns).await
    }

    /// The layouts for a batch's columns (prepared earlier, normally).
    async fn layouts(
        &mut self,
        table: &str,
        columns: &[Column],
    ) -> Result<Vec<Binary>, ConnectorError> {
        match self.layouts.get(table) {
            Some(l) if l.len() == columns.len() => {}
            _ => self.adopt(table, columns).await?,
        }
        Ok(self.layouts.get(table).cloned().unwrap_or_default())
    }

    /// Finds the rows the destination refuses by bisection: COPY halves of
    /// the batch, each under a savepoint (PostgreSQL aborts the whole
    /// transaction on any error), splitting a half that fails until single
    /// rows remain. Good rows commit with the checkpoint.
    async fn isolate(
        &self,
        batch: &WriteBatch<'_>,
        copy_sql: &str,
        buf: &[u8],
        spans: &[Span],
        mut rejected: Vec<Rejected>,
    ) -> Result<Vec<Rejected>, ConnectorError> {
        let fail = |e: &sqlx::Error| self.db.table_error(batch.table(), e);
        let mut tx = self.db.pool.begin().await.map_err(|e| fail(&e))?;
        let mut pending = halves(0..spans.len());
        while let Some(range) = pending.pop() {
            let bytes = spans[range.start].bytes.start..spans[range.end - 1].bytes.end;
            sqlx::query("SAVEPOINT credvault_rows")
                .execute(&mut *tx)
                .await
                .map_err(|e| fail(&e))?;
            let err = match copy_in(&mut tx, copy_sql, &buf[bytes]).await {
                Ok(()) => {
                    let release = sqlx::query("RELEASE SAVEPOINT credvault_rows");
                    release.execute(&mut *tx).await.map_err(|e| fail(&e))?;
                    continue;
                }
                Err(e) if is_row_error(&e) => e,
                Err(e) => return Err(fail(&e)),
            };
            for undo in [
                "ROLLBACK TO SAVEPOINT credvault_rows",
                "RELEASE SAVEPOINT credvault_rows",
            ] {
                sqlx::query(undo)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| fail(&e))?;
            }
            if range.len() > 1 {
                pending.extend(halves(range));
                continue;
            }
            rejected.push((spans[range.start].row, row_message(&err)));
            if batch.all_or_nothing {
                tx.rollback().await.map_err(|e| fail(&e))?;
                return Ok(rejected.split_off(rejected.len() - 1));
            }
        }
        save_checkpoint(
            &mut tx,
            &self.db,
            batch.migration,
            batch.checkpoint_name,
            batch.checkpoint,
        )
        .await?;
        tx.commit().await.map_err(|e| fail(&e))?;
        rejected.sort_by_key(|(i, _)| *i);
        Ok(rejected)
    }
}

/// Creates the checkpoint table unless it exists (so a role without CREATE
/// on the schema can still append, once it has been made).
async fn create_checkpoints(db: &Db) -> Result<(), ConnectorError> {
    let qualified = db.qualified(CHECKPOINTS);
    let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
        .bind(&qualified)
        .fetch_one(&db.pool)
        .await
        .map_err(|e| db.error(&e))?;
    if exists.is_some() {
        return Ok(());
    }
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {qualified} (migration text NOT NULL, table_name text NOT NULL, checkpoint jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (migration, table_name))"
    );
    sqlx::query(&create)
        .execute(&db.pool)
        .await
        .map_err(|e| db.refused(&e, &create_grant(db)))?;
    Ok(())
}

fn create_grant(db: &Db) -> String {
    db.grant("CREATE", &format!("SCHEMA {}", ident(&db.schema)))
}

/// How each of `columns` is written into the existing table, or why it
/// cannot be.
fn fit(existing: &CatalogTable, columns: &[Column]) -> Result<Vec<Binary>, Vec<String>> {
    let mut layouts = Vec::with_capacity(columns.len());
    let mut problems = Vec::new();
    for column in columns {
        let Some(dest) = existing.columns.iter().find(|c| c.name == column.name) else {
            problems.push(format!("it has no column `{}`", column.name));
            continue;
        };
        match write_as(&dest.pg) {
            Some(b) if writable(column.type_, b) => layouts.push(b),
            _ => problems.push(format!(
                "column `{}` is {}, which cannot take {} values",
                column.name,
                dest.pg.name,
                type_name(column.type_)
            )),
        }
    }
    match problems.is_empty() {
        true => Ok(layouts),
        false => Err(problems),
    }
}

/// A range split in two, the first half last (it is popped first, so rows
/// are found in order).
fn halves(r: Range<usize>) -> Vec<Range<usize>> {
    if r.len() < 2 {
        return vec![r];
    }
    let mid = r.start + r.len() / 2;
    vec![mid..r.end, r.start..mid]
}

/// Sends `body` (encoded tuples) as one binary COPY. Boxed so its future
/// is `Send` for every lifetime (the async-trait methods need that, and the
/// compiler cannot prove it through sqlx's generic `send`).
fn copy_in<'a>(
    conn: &'a mut PgConnection,
    sql: &'a str,
    body: &'a [u8],
) -> BoxFuture<'a, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let mut copy = conn.copy_in_raw(sql).await?;
        copy.send(header()).await?;
        for chunk in body.chunks(CHUNK) {
            copy.send(chunk).await?;
        }
        copy.send(&TRAILER[..]).await?;
        copy.finish().await?;
        Ok(())
    })
}

/// Whether an error concerns a row's data (SQLSTATE class 22, a bad value,
/// or 23, a constraint) rather than the table or the connection.
fn is_row_error(err: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = err else {
        return false;
    };
    db.code()
        .is_some_and(|c| c.starts_with("22") || c.starts_with("23"))
}

/// The server's message for a refused row, with the key it names (for a
/// unique or foreign-key violation).
fn row_message(err: &sqlx::Error) -> String {
    let sqlx::Error::Database(db) = err else {
        return err.to_string();
    };
    let detail = db
        .try_downcast_ref::<PgDatabaseError>()
        .and_then(PgDatabaseError::detail)
        .filter(|d| d.starts_with("Key "));
    match detail {
        Some(d) => format!("{} ({d})", db.message()),
        None => db.message().to_string(),
    }
}

async fn save_checkpoint(
    conn: &mut PgConnection,
    db: &Db,
    migration: &str,
    table: &str,
    checkpoint: &Checkpoint,
) -> Result<(), ConnectorError> {
    let json = serde_json::to_string(checkpoint)
        .map_err(|e| db.fail(format!("table `{table}`: checkpoint: {e}")))?;
    let sql = format!(
        "INSERT INTO {} (migration, table_name, checkpoint) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (migration, table_name) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, updated_at = now()",
        db.qualified(CHECKPOINTS)
    );
    sqlx::query(&sql)
        .bind(migration)
        .bind(table)
        .bind(json)
        .execute(conn)
        .await
        .map_err(|e| db.table_error(table, &e))?;
    Ok(())
}

#[async_trait]
impl Sink for PgSink {
    fn describe(&self) -> String {
        self.db.endpoint.clone()
    }

    /// Each writer has its own connections, and PostgreSQL takes
    /// concurrent COPYs into one table.
    fn concurrent_writers(&self) -> bool {
        true
    }

    async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        let qualified = self.db.qualified(table);
        let found: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
            .bind(&qualified)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        if found.is_none() {
            return Ok(None);
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {qualified}"))
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        Ok(Some(u64::try_from(n).unwrap_or(0)))
    }

    async fn prepare(
        &mut self,
        _migration: &str,
        table: &str,
        shape: Shape<'_>,
        mode: Prepare,
    ) -> Result<Prepared, ConnectorError> {
        let columns = shape.columns;
        self.natives
            .insert(table.to_string(), shape.natives.to_vec());
        let existing = match mode {
            Prepare::Fresh(_) => self.existing_rows(table).await?,
            Prepare::Resume => None,
        };
        let shown = format!("{}.{table}", self.db.schema);
        match readiness(mode, existing, &shown, self.describe())? {
            Readiness::Adopt => self.adopt(table, columns).await?,
            Readiness::Replace => self.create(table, columns, true).await?,
            Readiness::Create => self.create(table, columns, false).await?,
        }
        Ok(Prepared::new(table))
    }

    async fn write(&mut self, batch: WriteBatch<'_>) -> Result<Vec<Rejected>, ConnectorError> {
        let layouts = self.layouts(batch.table(), batch.columns).await?;
        let mut writer = TupleWriter::with_capacity(batch.rows.len() * 16 * layouts.len().max(1));
        let mut spans = Vec::with_capacity(batch.rows.len());
        let mut rejected = Vec::new();
        for (i, row) in batch.rows.iter().enumerate() {
            let start = writer.buf.len();
            match writer.push(row, &layouts) {
                Ok(()) => spans.push(Span {
                    row: i,
                    bytes: start..writer.buf.len(),
                }),
                Err(e) => {
                    let column = e.column.map_or(String::new(), |c| {
                        format!("column `{}`: ", batch.columns[c].name)
                    });
                    rejected.push((i, format!("{column}{}", e.message)));
                }
            }
        }
        if batch.all_or_nothing && !rejected.is_empty() {
            rejected.truncate(1);
            return Ok(rejected);
        }
        let names: Vec<String> = batch.columns.iter().map(|c| ident(&c.name)).collect();
        let copy_sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            self.db.qualified(batch.table()),
            names.join(", ")
        );
        let fail = |e: &sqlx::Error| self.db.table_error(batch.table(), e);
        let mut tx = self.db.pool.begin().await.map_err(|e| fail(&e))?;
        if !spans.is_empty() {
            match copy_in(&mut tx, &copy_sql, &writer.buf).await {
                Ok(()) => {}
                Err(e) if is_row_error(&e) => {
                    tx.rollback().await.map_err(|e| fail(&e))?;
                    return self
                        .isolate(&batch, &copy_sql, &writer.buf, &spans, rejected)
                        .await;
                }
                Err(e) => return Err(fail(&e)),
            }
        }
        save_checkpoint(
            &mut tx,
            &self.db,
            batch.migration,
            batch.checkpoint_name,
            batch.checkpoint,
        )
        .await?;
        tx.commit().await.map_err(|e| fail(&e))?;
        Ok(rejected)
    }

    async fn finish(
        &mut self,
        migration: &str,
        prepared: Prepared,
        checkpoint: &Checkpoint,
    ) -> Result<(), ConnectorError> {
        let table = prepared.table();
        let done = Checkpoint {
            done: true,
            ..checkpoint.clone()
        };
        let fail = |e: &sqlx::Error| self.db.table_error(table, e);
        let mut tx = self.db.pool.begin().await.map_err(|e| fail(&e))?;
        sqlx::query("SET LOCAL synchronous_commit = on")
            .execute(&mut *tx)
            .await
            .map_err(|e| fail(&e))?;
        save_checkpoint(&mut tx, &self.db, migration, table, &done).await?;
        tx.commit().await.map_err(|e| fail(&e))
    }

    async fn committed(
        &self,
        migration: &str,
        table: &str,
    ) -> Result<Option<Checkpoint>, ConnectorError> {
        let sql = format!(
            "SELECT checkpoint::text FROM {} WHERE migration = $1 AND table_name = $2",
            self.db.qualified(CHECKPOINTS)
        );
        let json: Option<String> = sqlx::query_scalar(&sql)
            .bind(migration)
            .bind(table)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        json.map(|j| {
            serde_json::from_str(&j).map_err(|e| {
                self.db
                    .fail(format!("table `{table}`: unreadable checkpoint {j}: {e}"))
            })
        })
        .transpose()
    }

    async fn drop_table(&mut self, table: &str) -> Result<(), ConnectorError> {
        let sql = format!("DROP TABLE IF EXISTS {}", self.db.qualified(table));
        sqlx::query(&sql)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        Ok(())
    }

    async fn reset(&mut self, migration: &str) -> Result<(), ConnectorError> {
        let sql = format!(
            "DELETE FROM {} WHERE migration = $1",
            self.db.qualified(CHECKPOINTS)
        );
        sqlx::query(&sql)
            .bind(migration)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.db.error(&e))?;
        Ok(())
    }

    fn healthcheck(&self) -> Option<&dyn Healthcheck> {
        Some(self)
    }

    fn sql(&self) -> Option<&dyn SqlDestination> {
        Some(self)
    }

    fn sql_mut(&mut self) -> Option<&mut dyn SqlDestination> {
        Some(self)
    }
}

#[async_trait]
impl Healthcheck for PgSink {
    async fn misfits(
        &self,
        table: &str,
        columns: &[Column],
    ) -> Result<Vec<String>, ConnectorError> {
        let found = self.db.catalog(Some(table)).await?.into_iter().next();
        Ok(match found {
            Some(existing) => fit(&existing, columns).err().unwrap_or_default(),
            None => vec![format!("table `{table}` does not exist")],
        })
    }

    /// Creates a table in a transaction that is rolled back.
    async fn probe_create(&self) -> Result<(), ConnectorError> {
        let fail = |e: &sqlx::Error| self.db.refused(e, &self.grant_create());
        let mut tx = self.db.pool.begin().await.map_err(|e| fail(&e))?;
        let sql = format!(
            "CREATE TABLE {} (x int)",
            self.db.qualified("_credvault_probe")
        );
        sqlx::query(&sql)
            .execute(&mut *tx)
            .await
            .map_err(|e| fail(&e))?;
        tx.rollback().await.map_err(|e| fail(&e))
    }

    async fn probe_write(&self, table: &str) -> Result<(), ConnectorError> {
        let qualified = self.db.qualified(table);
        let allowed: bool = sqlx::query_scalar("SELECT has_table_privilege($1, 'INSERT')")
            .bind(&qualified)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))?;
        if allowed {
            return Ok(());
        }
        let refused = format!("no INSERT privilege on table {qualified}");
        let grant = self.db.grant("INSERT", &qualified);
        Err(server::denied(
            &self.describe(),
            &self.db.ep.user,
            &refused,
            &grant,
        ))
    }

    /// The data directory's filesystem, when the server runs here and the
    /// role may read the setting.
    async fn free_space(&self) -> Result<FreeSpace, ConnectorError> {
        let dir = sqlx::query_scalar::<_, String>("SELECT current_setting('data_directory')")
            .fetch_one(&self.db.pool)
            .await;
        match dir {
            Ok(dir) => Ok(server::data_dir_space(&self.db.ep.host, &dir)),
            Err(sqlx::Error::Database(e))
                if super::classify(e.as_ref()) == Some(DbFailure::Permission) =>
            {
                Ok(FreeSpace::Unknown(format!(
                    "role `{}` may not read the server's data_directory setting (superusers and members of pg_read_all_settings may)",
                    self.db.ep.user
                )))
            }
            Err(e) => Err(self.db.error(&e)),
        }
    }
}

#[async_trait]
impl SqlDestination for PgSink {
    fn dialect(&self) -> Dialect {
        Dialect {
            quote: ident,
            same: "IS NOT DISTINCT FROM",
            exact: crate::drivers::merge::as_is,
            update_join: false,
        }
    }

    fn sql_name(&self, table: &str) -> String {
        self.db.qualified(table)
    }

    async fn run_script(
        &mut self,
        migration: &str,
        checkpoint_name: &str,
        steps: &[Step],
        checkpoint: &Checkpoint,
    ) -> Result<Vec<u64>, ConnectorError> {
        let fail = |e: sqlx::Error| self.db.table_error(checkpoint_name, &e);
        let mut tx = self.db.pool.begin().await.map_err(fail)?;
        let numbers = run_steps!(tx, steps).map_err(fail)?;
        save_checkpoint(&mut tx, &self.db, migration, checkpoint_name, checkpoint).await?;
        tx.commit().await.map_err(fail)?;
        Ok(numbers)
    }

    async fn execute(&mut self, sql: &str) -> Result<(), ConnectorError> {
        sqlx::query(sql)
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.db.error(&e))?;
        Ok(())
    }

    async fn parents(&self, table: &str) -> Result<Vec<String>, ConnectorError> {
        sqlx::query_scalar(
            "SELECT DISTINCT p.relname::text FROM pg_constraint c \
             JOIN pg_class p ON p.oid = c.confrelid \
             WHERE c.contype = 'f' AND c.conrelid = to_regclass($1)",
        )
        .bind(self.db.qualified(table))
        .fetch_all(&self.db.pool)
        .await
        .map_err(|e| self.db.table_error(table, &e))
    }

    /// The table's oid: a table made again gets another.
    async fn table_identity(&self, table: &str) -> Result<Option<String>, ConnectorError> {
        sqlx::query_scalar("SELECT to_regclass($1)::oid::text")
            .bind(self.db.qualified(table))
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(table, &e))
    }

    async fn create_like(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError> {
        let (copy_sql, table_sql) = (self.db.qualified(copy), self.db.qualified(table));
        for sql in [
            format!("DROP TABLE IF EXISTS {copy_sql}"),
            format!("CREATE TABLE {copy_sql} (LIKE {table_sql} INCLUDING ALL)"),
        ] {
            self.execute(&sql).await?;
        }
        self.layouts.remove(copy);
        Ok(())
    }

    async fn swap_tables(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError> {
        let fail = |e: sqlx::Error| self.db.table_error(table, &e);
        let mut tx = self.db.pool.begin().await.map_err(fail)?;
        let steps = [
            Step::Exec(format!("DROP TABLE IF EXISTS {}", self.db.qualified(table))),
            Step::Exec(format!(
                "ALTER TABLE {} RENAME TO {}",
                self.db.qualified(copy),
                ident(table)
            )),
        ];
        run_steps!(tx, &steps).map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        self.layouts.remove(table);
        Ok(())
    }
}
