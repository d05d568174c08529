//! The MariaDB/MySQL sink: creates InnoDB tables, and lands each batch as
//! multi-row INSERTs together with its checkpoint in one transaction.

use std::collections::HashMap;
use std::path::Path;

use async_trait::async_trait;
use sqlx::mysql::{MySqlArguments, MySqlConnection};
use sqlx::{Executor, MySql};

use super::decode::{iso_date, naive_text, time_text};
use super::source::row_columns;
use super::types::{create_comment, create_type};
use super::{CHECKPOINTS, Server, error_number, ident, sql_mode, text};
use crate::config::ServerEndpoint;
use crate::drivers::Shape;
use crate::drivers::Step;
use crate::drivers::merge::Dialect;
use crate::drivers::{
    Checkpoint, ConnectorError, FreeSpace, Healthcheck, Native, Prepare, Prepared, Readiness,
    Rejected, Sink, SqlDestination, WriteBatch, misfits, native_of, readiness, server,
};
use crate::model::value::{
    Column, Row, TableInfo, Value, date_from_days, time_from_micros, to_text,
};

/// Destination sessions: strict, so a value the column cannot hold is an
/// error rather than a silent truncation.
pub(super) const SESSION: &str = concat!("SET SESSION sql_mode = '", sql_mode!(), "'");

/// The most placeholders one prepared statement may have.
const MAX_PARAMS: usize = 65_535;

/// Error numbers that blame a row (a duplicate key, a NULL in a NOT NULL
/// column, a value out of range or too long, a failed CHECK or foreign
/// key), as opposed to the connection, the table or a privilege.
const ROW_ERRORS: &[u16] = &[
    1048, 1062, 1264, 1265, 1292, 1366, 1367, 1406, 1411, 1451, 1452, 1690, 3140, 3819, 4025,
];

/// Writes tables into one MariaDB/MySQL database.
pub struct MySqlSink {
    server: Server,
    /// Bytes one statement may carry: half of `max_allowed_packet`.
    max_statement: usize,
    /// Per table, the columns created with a source's native type.
    natives: HashMap<String, Vec<(String, Native)>>,
}

/// Why a batch could not land as a whole.
enum Failure {
    /// A row was refused, or the server changed a value (a warning): the
    /// batch is retried row by row to tell which.
    Row,
    /// Anything else: the run stops.
    Fatal(ConnectorError),
}

impl MySqlSink {
    /// Connects to the endpoint and creates the checkpoint table if needed.
    pub(crate) async fn open(ep: &ServerEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        let server = Server::connect("destination", ep, base_dir, 1, SESSION).await?;
        create_checkpoints(&server).await?;
        let packet: i64 = sqlx::query_scalar("SELECT CAST(@@max_allowed_packet AS SIGNED)")
            .fetch_one(&server.pool)
            .await
            .map_err(|e| server.error(e))?;
        let max_statement = usize::try_from(packet / 2).unwrap_or(1 << 20).max(1 << 16);
        Ok(Self {
            server,
            max_statement,
            natives: HashMap::new(),
        })
    }

    /// The destination table's column names, or `None` if it does not exist.
    async fn table_columns(&self, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
        column_names(&self.server, table).await
    }

    async fn check_append(&self, table: &str, columns: &[Column]) -> Result<(), ConnectorError> {
        let Some(existing) = self.table_columns(table).await? else {
            return Err(self
                .server
                .message(format!("table `{table}` is gone; run again with --restart")));
        };
        let missing: Vec<&str> = columns
            .iter()
            .filter(|c| !existing.iter().any(|e| e.eq_ignore_ascii_case(&c.name)))
            .map(|c| c.name.as_str())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        Err(self.server.message(format!(
            "cannot append to `{table}`: it has no column(s) {}; rename them in the mapping, or choose another destination table",
            missing.join(", ")
        )))
    }

    async fn create(&self, table: &str, columns: &[Column]) -> Result<(), ConnectorError> {
        let defs: Vec<String> = columns
            .iter()
            .map(|c| {
                let t = match native_of(&self.natives, table, &c.name) {
                    Some(Native::Decimal { precision, scale })
                        if (1..=65).contains(&precision) && scale <= 30 =>
                    {
                        format!("DECIMAL({precision},{scale})")
                    }
                    _ => create_type(c.type_, self.server.native_uuid).to_string(),
                };
                let mut def = format!("{} {t}", ident(&c.name));
                if !c.nullable {
                    def.push_str(" NOT NULL");
                }
                if let Some(comment) = create_comment(c.type_) {
                    def.push_str(&format!(" COMMENT '{comment}'"));
                }
                def
            })
            .collect();
        let sql = format!(
            "CREATE TABLE {} ({}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4",
            ident(table),
            defs.join(", ")
        );
        self.server
            .pool
            .execute(sql.as_str())
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(())
    }

    /// Inserts the whole batch in as few statements as the placeholder and
    /// packet limits allow, checking after each that the server changed
    /// nothing (a warning or note means it did).
    async fn insert_all(
        &self,
        conn: &mut MySqlConnection,
        batch: &WriteBatch<'_>,
    ) -> Result<(), Failure> {
        let mut start = 0;
        while start < batch.rows.len() {
            let end = chunk_end(batch.rows, start, batch.columns.len(), self.max_statement);
            let chunk = &batch.rows[start..end];
            let sql = insert_sql(batch.table(), batch.columns, chunk.len());
            match bind_rows(sqlx::query(&sql), chunk)
                .execute(&mut *conn)
                .await
            {
                Ok(_) => {}
                Err(sqlx::Error::Database(db)) if is_row_error(db.as_ref()) => {
                    return Err(Failure::Row);
                }
                Err(e) => return Err(Failure::Fatal(self.server.error(e))),
            }
            if !warnings(conn)
                .await
                .map_err(|e| Failure::Fatal(self.server.error(e)))?
                .is_empty()
            {
                return Err(Failure::Row);
            }
            start = end;
        }
        Ok(())
    }

    /// Finds the rows the destination refuses, one INSERT per row. A failed
    /// statement is undone by the server on its own; a row that landed
    /// changed (with a warning) is undone through its savepoint.
    async fn write_row_by_row(
        &self,
        batch: &WriteBatch<'_>,
    ) -> Result<Vec<Rejected>, ConnectorError> {
        let fail = |e| self.server.error(e);
        let sql = insert_sql(batch.table(), batch.columns, 1);
        let mut tx = self.server.pool.begin().await.map_err(fail)?;
        let mut rejected = Vec::new();
        for (i, row) in batch.rows.iter().enumerate() {
            tx.execute("SAVEPOINT credvault_row").await.map_err(fail)?;
            match bind_rows(sqlx::query(&sql), std::slice::from_ref(row))
                .execute(&mut *tx)
                .await
            {
                Ok(_) => {
                    let changed = warnings(&mut tx).await.map_err(fail)?;
                    if !changed.is_empty() {
                        tx.execute("ROLLBACK TO SAVEPOINT credvault_row")
                            .await
                            .map_err(fail)?;
                        rejected.push((
                            i,
                            format!(
                                "the destination would change the value: {}",
                                changed.join("; ")
                            ),
                        ));
                    }
                }
                Err(sqlx::Error::Database(db)) if is_row_error(db.as_ref()) => {
                    rejected.push((i, refusal(db.as_ref())));
                }
                Err(e) => return Err(fail(e)),
            }
            if batch.all_or_nothing && !rejected.is_empty() {
                tx.rollback().await.map_err(fail)?;
                return Ok(rejected);
            }
        }
        save_checkpoint(
            &mut tx,
            batch.migration,
            batch.checkpoint_name,
            batch.checkpoint,
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(rejected)
    }
}

/// A table's column names, or `None` if it does not exist.
async fn column_names(server: &Server, table: &str) -> Result<Option<Vec<String>>, ConnectorError> {
    let sql = "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION";
    let rows = sqlx::query(sql)
        .bind(table)
        .fetch_all(&server.pool)
        .await
        .map_err(|e| server.error(e))?;
    let names: Vec<String> = rows.iter().filter_map(|r| text(r, 0)).collect();
    Ok((!names.is_empty()).then_some(names))
}

/// Creates the checkpoint table unless it exists (so a user without CREATE
/// can still append, once it has been made).
async fn create_checkpoints(server: &Server) -> Result<(), ConnectorError> {
    if column_names(server, CHECKPOINTS).await?.is_some() {
        return Ok(());
    }
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {} (migration VARCHAR(255) NOT NULL, table_name VARCHAR(255) NOT NULL, checkpoint LONGTEXT NOT NULL, updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), PRIMARY KEY (migration, table_name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        ident(CHECKPOINTS)
    );
    match server.pool.execute(create.as_str()).await {
        Ok(_) => Ok(()),
        Err(e) => Err(server.refused(e, "CREATE", &server.object(None)).await),
    }
}

/// Whether an error blames the row rather than the statement or session.
fn is_row_error(err: &dyn sqlx::error::DatabaseError) -> bool {
    error_number(err).is_some_and(|n| ROW_ERRORS.contains(&n))
}

/// A refused row's message, with the server's error number.
fn refusal(err: &dyn sqlx::error::DatabaseError) -> String {
    match error_number(err) {
        Some(n) => format!("{} (error {n})", err.message()),
        None => err.message().to_string(),
    }
}

/// The warnings and notes the last statement raised, e.g. `Note 1265: Data
/// truncated for column 'd' at row 1` (a decimal rounded to the column's
/// scale, which strict mode allows).
async fn warnings(conn: &mut MySqlConnection) -> Result<Vec<String>, sqlx::Error> {
    let rows = conn.fetch_all("SHOW WARNINGS").await?;
    Ok(rows
        .iter()
        .map(|r| {
            let part = |i| text(r, i).unwrap_or_default();
            format!("{} {}: {}", part(0), part(1), part(2))
        })
        .collect())
}

async fn save_checkpoint(
    conn: &mut MySqlConnection,
    migration: &str,
    table: &str,
    checkpoint: &Checkpoint,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO {} (migration, table_name, checkpoint) VALUES (?, ?, ?)
         ON DUPLICATE KEY UPDATE checkpoint = VALUES(checkpoint), updated_at = CURRENT_TIMESTAMP(6)",
        ident(CHECKPOINTS)
    );
    let json = serde_json::to_string(checkpoint).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query(&sql)
        .bind(migration)
        .bind(table)
        .bind(json)
        .execute(conn)
        .await?;
    Ok(())
}

/// The end of the chunk that starts at `start`: as many rows as fit in
/// 65,535 placeholders and `max_bytes`, and at least one.
fn chunk_end(rows: &[Row], start: usize, width: usize, max_bytes: usize) -> usize {
    let max_rows = (MAX_PARAMS / width.max(1)).max(1);
    let mut bytes = 0;
    let mut end = start;
    while end < rows.len() && end - start < max_rows {
        bytes += rows[end].iter().map(value_size).sum::<usize>();
        if bytes > max_bytes && end > start {
            break;
        }
        end += 1;
    }
    end
}

/// About how many bytes a value takes in an execute packet (its type, its
/// length prefix, its body).
fn value_size(value: &Value) -> usize {
    11 + match value {
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) => s.len(),
        Value::Bytes(b) => b.len(),
        _ => 16,
    }
}

fn insert_sql(table: &str, columns: &[Column], rows: usize) -> String {
    let names: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let one = format!("({})", vec!["?"; columns.len()].join(","));
    format!(
        "INSERT INTO {} ({}) VALUES {}",
        ident(table),
        names.join(", "),
        vec![one; rows].join(",")
    )
}

/// A query on MySQL/MariaDB with its bound values.
pub(crate) type Query<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

fn bind_rows<'q>(mut query: Query<'q>, rows: &'q [Row]) -> Query<'q> {
    for row in rows {
        for value in row {
            query = bind_value(query, value);
        }
    }
    query
}

/// Binds a value in the form MySQL parses exactly: temporal values as ISO
/// text (a `timestamptz` as its UTC wall-clock time), decimals as their
/// text.
pub(crate) fn bind_value<'q>(query: Query<'q>, value: &'q Value) -> Query<'q> {
    match value {
        Value::Null => query.bind(None::<&str>),
        Value::Boolean(b) => query.bind(*b),
        Value::Int(i) => query.bind(*i),
        Value::Float(f) => query.bind(*f),
        Value::Text(s) | Value::Decimal(s) | Value::Json(s) => query.bind(s.as_str()),
        Value::Bytes(b) => query.bind(b.as_slice()),
        Value::Timestamp(t) | Value::Timestamptz(t) => query.bind(naive_text(*t)),
        Value::Date(d) => query.bind(date_from_days(*d).and_then(iso_date)),
        Value::Time(t) => query.bind(time_from_micros(*t).map(time_text)),
        other => query.bind(to_text(other)),
    }
}

#[async_trait]
impl Sink for MySqlSink {
    fn describe(&self) -> String {
        self.server.endpoint.clone()
    }

    /// InnoDB takes concurrent inserts into one table, each range on its
    /// own connection and transaction.
    fn concurrent_writers(&self) -> bool {
        true
    }

    async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        if self.table_columns(table).await?.is_none() {
            return Ok(None);
        }
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", ident(table)))
            .fetch_one(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(Some(n.unsigned_abs()))
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
        match readiness(mode, existing, table, self.describe())? {
            Readiness::Adopt => self.check_append(table, columns).await?,
            Readiness::Replace => {
                self.server
                    .pool
                    .execute(format!("DROP TABLE {}", ident(table)).as_str())
                    .await
                    .map_err(|e| self.server.error(e))?;
                self.create(table, columns).await?;
            }
            Readiness::Create => self.create(table, columns).await?,
        }
        Ok(Prepared::new(table))
    }

    async fn write(&mut self, batch: WriteBatch<'_>) -> Result<Vec<Rejected>, ConnectorError> {
        let fail = |e| self.server.error(e);
        let mut tx = self.server.pool.begin().await.map_err(fail)?;
        match self.insert_all(&mut tx, &batch).await {
            Ok(()) => {}
            Err(Failure::Row) => {
                tx.rollback().await.map_err(fail)?;
                return self.write_row_by_row(&batch).await;
            }
            Err(Failure::Fatal(e)) => return Err(e),
        }
        save_checkpoint(
            &mut tx,
            batch.migration,
            batch.checkpoint_name,
            batch.checkpoint,
        )
        .await
        .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(Vec::new())
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
        let mut conn = self
            .server
            .pool
            .acquire()
            .await
            .map_err(|e| self.server.error(e))?;
        save_checkpoint(&mut conn, migration, table, &done)
            .await
            .map_err(|e| self.server.error(e))
    }

    async fn committed(
        &self,
        migration: &str,
        table: &str,
    ) -> Result<Option<Checkpoint>, ConnectorError> {
        let sql = format!(
            "SELECT checkpoint FROM {} WHERE migration = ? AND table_name = ?",
            ident(CHECKPOINTS)
        );
        let row = sqlx::query(&sql)
            .bind(migration)
            .bind(table)
            .fetch_optional(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        row.and_then(|r| text(&r, 0))
            .map(|j| {
                serde_json::from_str(&j).map_err(|e| {
                    self.server
                        .message(format!("the checkpoint of `{table}` is unreadable: {e}"))
                })
            })
            .transpose()
    }

    async fn drop_table(&mut self, table: &str) -> Result<(), ConnectorError> {
        SqlDestination::execute(self, &format!("DROP TABLE IF EXISTS {}", ident(table))).await
    }

    async fn reset(&mut self, migration: &str) -> Result<(), ConnectorError> {
        let sql = format!("DELETE FROM {} WHERE migration = ?", ident(CHECKPOINTS));
        sqlx::query(&sql)
            .bind(migration)
            .execute(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
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
impl Healthcheck for MySqlSink {
    /// Column names ignore case here.
    async fn misfits(
        &self,
        table: &str,
        columns: &[Column],
    ) -> Result<Vec<String>, ConnectorError> {
        let existing = TableInfo {
            name: table.to_string(),
            columns: row_columns(&self.server, table).await?,
            primary_key: Vec::new(),
            approx_rows: None,
        };
        if existing.columns.is_empty() {
            return Ok(vec![format!("table `{table}` does not exist")]);
        }
        Ok(misfits(&existing, columns, true))
    }

    /// DDL commits at once here, so the probe creates a uniquely named
    /// table and drops it.
    async fn probe_create(&self) -> Result<(), ConnectorError> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let probe = format!("_credvault_probe_{}_{nanos:x}", std::process::id());
        let create = format!("CREATE TABLE {} (x INT) ENGINE=InnoDB", ident(&probe));
        if let Err(e) = self.server.pool.execute(create.as_str()).await {
            let object = self.server.object(None);
            return Err(self.server.refused(e, "CREATE", &object).await);
        }
        let drop = format!("DROP TABLE {}", ident(&probe));
        if let Err(e) = self.server.pool.execute(drop.as_str()).await {
            let object = self.server.object(None);
            let mut err = self.server.refused(e, "DROP", &object).await;
            err.message = format!(
                "created the probe table `{probe}` but could not drop it, so an administrator must (DROP TABLE {}): {}",
                self.server.object(Some(&probe)),
                err.message
            );
            return Err(err);
        }
        Ok(())
    }

    /// Prepares an INSERT without running it: the server checks the
    /// privilege when it prepares the statement.
    async fn probe_write(&self, table: &str) -> Result<(), ConnectorError> {
        let sql = format!("INSERT INTO {} () VALUES ()", ident(table));
        match self.server.pool.prepare(sql.as_str()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                let object = self.server.object(Some(table));
                Err(self.server.refused(e, "INSERT", &object).await)
            }
        }
    }

    /// The data directory's filesystem, when the server runs here.
    async fn free_space(&self) -> Result<FreeSpace, ConnectorError> {
        let row = sqlx::query("SELECT CAST(@@datadir AS CHAR)")
            .fetch_one(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        let dir = text(&row, 0).unwrap_or_default();
        Ok(server::data_dir_space(&self.server.ep.host, &dir))
    }
}

#[async_trait]
impl SqlDestination for MySqlSink {
    fn dialect(&self) -> Dialect {
        Dialect {
            quote: ident,
            same: "<=>",
            exact: binary,
            update_join: true,
        }
    }

    fn sql_name(&self, table: &str) -> String {
        ident(table)
    }

    async fn run_script(
        &mut self,
        migration: &str,
        checkpoint_name: &str,
        steps: &[Step],
        checkpoint: &Checkpoint,
    ) -> Result<Vec<u64>, ConnectorError> {
        let fail = |e: sqlx::Error| self.server.error(e);
        let mut tx = self.server.pool.begin().await.map_err(fail)?;
        let numbers = run_steps!(tx, steps).map_err(fail)?;
        save_checkpoint(&mut tx, migration, checkpoint_name, checkpoint)
            .await
            .map_err(fail)?;
        tx.commit().await.map_err(fail)?;
        Ok(numbers)
    }

    async fn execute(&mut self, sql: &str) -> Result<(), ConnectorError> {
        self.server
            .pool
            .execute(sql)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(())
    }

    async fn parents(&self, table: &str) -> Result<Vec<String>, ConnectorError> {
        let sql = "SELECT DISTINCT REFERENCED_TABLE_NAME FROM information_schema.KEY_COLUMN_USAGE \
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? \
                   AND REFERENCED_TABLE_SCHEMA = DATABASE()";
        sqlx::query_scalar(sql)
            .bind(table)
            .fetch_all(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))
    }

    /// When the table was made (to the second): a table made again later
    /// has another time.
    async fn table_identity(&self, table: &str) -> Result<Option<String>, ConnectorError> {
        let sql = "SELECT CONCAT(CREATE_TIME, '') FROM information_schema.TABLES \
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";
        let found: Option<Option<String>> = sqlx::query_scalar(sql)
            .bind(table)
            .fetch_optional(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(found.map(|time| time.unwrap_or_default()))
    }

    /// `CREATE TABLE … LIKE` copies columns, defaults, indexes and checks
    /// (never foreign keys).
    async fn create_like(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError> {
        for sql in [
            format!("DROP TABLE IF EXISTS {}", ident(copy)),
            format!("CREATE TABLE {} LIKE {}", ident(copy), ident(table)),
        ] {
            self.execute(&sql).await?;
        }
        Ok(())
    }

    /// `RENAME TABLE` swaps both names in one atomic step (MySQL DDL cannot
    /// join a transaction); the old table is dropped after.
    async fn swap_tables(&mut self, copy: &str, table: &str) -> Result<(), ConnectorError> {
        let old = format!("{table}__credvault_old");
        let rename = match self.existing_rows(table).await? {
            Some(_) => format!(
                "RENAME TABLE {t} TO {o}, {c} TO {t}",
                t = ident(table),
                o = ident(&old),
                c = ident(copy)
            ),
            None => format!("RENAME TABLE {} TO {}", ident(copy), ident(table)),
        };
        for sql in [
            format!("DROP TABLE IF EXISTS {}", ident(&old)),
            rename,
            format!("DROP TABLE IF EXISTS {}", ident(&old)),
        ] {
            self.server
                .pool
                .execute(sql.as_str())
                .await
                .map_err(|e| self.server.error(e))?;
        }
        Ok(())
    }
}

/// A column compared byte for byte: MySQL's default collations ignore case
/// and trailing spaces, so `A@x` and `a@x` would be one key.
fn binary(column: &str) -> String {
    format!("BINARY {column}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_respect_the_placeholder_limit_and_the_packet_size() {
        let rows: Vec<Row> = (0..100).map(|i| vec![Value::Int(i); 1000]).collect();
        assert_eq!(chunk_end(&rows, 0, 1000, usize::MAX), 65);
        let wide: Vec<Row> = (0..10)
            .map(|_| vec![Value::Text("x".repeat(1000))])
            .collect();
        assert_eq!(chunk_end(&wide, 0, 1, 3_000), 2);
        assert_eq!(chunk_end(&wide, 9, 1, 10), 10, "a row always fits alone");
    }
}
