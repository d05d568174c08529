//! The MariaDB/MySQL source: discovery from `information_schema`, exact
//! counts, and reads streamed in primary-key order over the binary
//! protocol, resumable after a checkpoint's key.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::mysql::MySqlRow;
use tokio::sync::mpsc;

use super::decode::{decode, naive_text};
use super::types::{Kind, SchemaColumn};
use super::{OWN_TABLES, Server, ident, raw, sql_mode, text};
use crate::config::ServerEndpoint;
use crate::drivers::{
    Batcher, Bound, Checkpoint, ConnectorError, Native, ReadRequest, Source, SourceBatch,
    integer_key, read_one,
};
use crate::model::schema::Schema;
use crate::model::value::{Column, Row, TableInfo, Value};

/// Source sessions: strict, and patient with a slow consumer. The server
/// blocks writing a streamed result while the bounded channel is full; the
/// default `net_write_timeout` (60 s) would end the read if a destination
/// stalled that long. Sorting compares whole values (up to 8 MiB), so a
/// keyless table's order is stable.
const SESSION: &str = concat!(
    "SET SESSION sql_mode = '",
    sql_mode!(),
    "', net_write_timeout = 3600, max_sort_length = 8388608"
);

/// Reads tables of one MariaDB/MySQL database.
pub struct MySqlSource {
    server: Server,
}

/// A source column as the reader needs it.
#[derive(Debug, Clone)]
struct ReadColumn {
    name: String,
    kind: Kind,
    data_type: String,
    precision: Option<u64>,
    scale: Option<u64>,
    nullable: bool,
}

impl ReadColumn {
    /// A `DECIMAL(p,s)`'s precision and scale.
    fn native(&self) -> Option<Native> {
        let (precision, scale) = (self.precision?, self.scale?);
        (self.kind == Kind::Decimal).then_some(Native::Decimal {
            precision: u32::try_from(precision).ok()?,
            scale: u32::try_from(scale).ok()?,
        })
    }

    /// The expression the read orders and compares by. `enum` and `set`
    /// sort by their index but compare with text by text, so they are
    /// ordered as text to keep resuming consistent.
    fn order_expr(&self) -> String {
        match self.data_type.as_str() {
            "enum" | "set" => format!("CAST({} AS CHAR)", ident(&self.name)),
            _ => ident(&self.name),
        }
    }

    /// The expression a keyless table is sorted by. A column that may hold
    /// megabytes (MEDIUM/LONG TEXT or BLOB, the sink's text type) is sorted
    /// by its MD5: sorting by the value itself with an 8 MiB
    /// `max_sort_length` needs a sort buffer of over 100 MiB, and the server
    /// refuses ("Out of sort memory"). Any fixed total order will do for
    /// resuming by position.
    fn total_order_expr(&self) -> String {
        match self.data_type.as_str() {
            "mediumtext" | "longtext" | "mediumblob" | "longblob" | "json" => {
                format!("MD5({})", ident(&self.name))
            }
            _ => self.order_expr(),
        }
    }

    /// The placeholder a key value is compared through: a cast to the
    /// column's type, so the server compares exactly (a string against a
    /// decimal or a bigint would be compared as doubles).
    fn placeholder(&self) -> String {
        match self.kind {
            Kind::Decimal => format!(
                "CAST(? AS DECIMAL({},{}))",
                self.precision.unwrap_or(65),
                self.scale.unwrap_or(30)
            ),
            Kind::Date => "CAST(? AS DATE)".into(),
            Kind::Time => "CAST(? AS TIME(6))".into(),
            Kind::DateTime | Kind::DateTimeUtc | Kind::Timestamp => "CAST(? AS DATETIME(6))".into(),
            _ => "?".into(),
        }
    }
}

/// A key value bound for the resume comparison.
#[derive(Debug, Clone, PartialEq)]
enum Param {
    Int(i64),
    UInt(u64),
    Single(f32),
    Double(f64),
    Bytes(Vec<u8>),
    Text(String),
}

/// Turns a checkpoint's key text back into a value of the column's type.
fn key_param(col: &ReadColumn, text: &str) -> Option<Param> {
    Some(match col.kind {
        Kind::Bool => match text {
            "true" => Param::Int(1),
            "false" => Param::Int(0),
            other => Param::Int(other.parse().ok()?),
        },
        Kind::Signed | Kind::Unsigned | Kind::Bit => match text.parse() {
            Ok(i) => Param::Int(i),
            Err(_) => Param::UInt(text.parse().ok()?),
        },
        Kind::BigUnsigned | Kind::BitWide => Param::UInt(text.parse().ok()?),
        Kind::Float => Param::Single(text.parse().ok()?),
        Kind::Double => Param::Double(text.parse().ok()?),
        Kind::Bytes => match text.strip_prefix("\\x") {
            Some(hex_text) => Param::Bytes(hex::decode(hex_text).ok()?),
            None => Param::Bytes(text.as_bytes().to_vec()),
        },
        Kind::DateTimeUtc | Kind::Timestamp => match chrono::DateTime::parse_from_rfc3339(text) {
            Ok(t) => Param::Text(naive_text(t.timestamp_micros())?),
            Err(_) => Param::Text(text.to_string()),
        },
        _ => Param::Text(text.to_string()),
    })
}

/// Why a read cannot resume where its checkpoint says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ResumeError {
    /// The table's primary key names a column it no longer has.
    #[error("the primary key names a column that is gone")]
    KeyColumnGone,
    /// The checkpoint's key has another number of parts than the key.
    #[error(
        "the checkpoint's key has {parts} part(s) but the primary key has {columns}; run again with --restart"
    )]
    KeyParts { parts: usize, columns: usize },
    /// A key column is NULL in the checkpoint.
    #[error("the checkpoint's key has NULL for `{0}`")]
    NullKey(String),
    /// A key value that the column's type does not take.
    #[error("the checkpoint's key value {value:?} does not fit column `{column}`")]
    Unfit { value: String, column: String },
}

/// The statement that reads a table, and the key values it binds.
#[derive(Debug)]
struct ReadSql {
    sql: String,
    binds: Vec<Param>,
}

/// `SELECT … [WHERE key > last] ORDER BY key [LIMIT]`: the stable order a
/// resumed read relies on. A composite key's `>` is spelled out
/// (`a > ? OR (a = ? AND b > ?)`), behind `a >= ?` so the server scans a
/// range of the index. A table without a primary key is ordered by all its
/// columns and resumed by skipping the rows already consumed.
fn read_sql(request: &ReadRequest, columns: &[ReadColumn]) -> Result<ReadSql, ResumeError> {
    let table = &request.table;
    let select: Vec<String> = columns.iter().map(|c| ident(&c.name)).collect();
    let key: Vec<&ReadColumn> = table
        .primary_key
        .iter()
        .map(|k| columns.iter().find(|c| &c.name == k))
        .collect::<Option<_>>()
        .ok_or(ResumeError::KeyColumnGone)?;
    let order: Vec<String> = match key.is_empty() {
        true => columns.iter().map(ReadColumn::total_order_expr).collect(),
        false => key.iter().map(|c| c.order_expr()).collect(),
    };
    let mut sql = format!("SELECT {} FROM {}", select.join(", "), ident(&table.name));
    let mut conditions = Vec::new();
    let mut binds = Vec::new();
    let mut offset = 0;
    match request.after.as_ref() {
        Some(Checkpoint {
            key: Some(last), ..
        }) if !key.is_empty() => {
            let (filter, params) = after_key(&key, last)?;
            conditions.push(filter);
            binds = params;
        }
        Some(checkpoint) => offset = checkpoint.rows,
        None => {}
    }
    if let (Some(range), [k]) = (request.range, key.as_slice()) {
        let k = k.order_expr();
        conditions.extend(range.lo.map(|lo| format!("{k} >= {lo}")));
        conditions.extend(range.hi.map(|hi| format!("{k} < {hi}")));
    }
    if let Some(since) = &request.since {
        let c = ident(&since.column);
        if let Some(from) = &since.from {
            conditions.push(format!("{c} >= ?"));
            binds.push(Param::Text(from.clone()));
        }
        conditions.push(format!("{c} <= ?"));
        binds.push(Param::Text(since.to.clone()));
    }
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    // Sorting a keyless table by every column can exhaust the server's sort
    // memory (long text, JSON); a reader that takes any order skips it.
    let unordered = key.is_empty() && request.any_order && offset == 0;
    if !unordered {
        sql.push_str(&format!(" ORDER BY {}", order.join(", ")));
    }
    match (request.limit, offset) {
        (Some(limit), 0) => sql.push_str(&format!(" LIMIT {limit}")),
        (Some(limit), offset) => sql.push_str(&format!(" LIMIT {offset}, {limit}")),
        (None, 0) => {}
        (None, offset) => sql.push_str(&format!(" LIMIT {offset}, 18446744073709551615")),
    }
    Ok(ReadSql { sql, binds })
}

/// The filter `key > last` and its bound values.
fn after_key(
    key: &[&ReadColumn],
    last: &[Option<String>],
) -> Result<(String, Vec<Param>), ResumeError> {
    if last.len() != key.len() {
        return Err(ResumeError::KeyParts {
            parts: last.len(),
            columns: key.len(),
        });
    }
    let mut params = Vec::with_capacity(key.len());
    for (col, text) in key.iter().zip(last) {
        let text = text
            .as_deref()
            .ok_or_else(|| ResumeError::NullKey(col.name.clone()))?;
        let param = key_param(col, text).ok_or_else(|| ResumeError::Unfit {
            value: text.to_string(),
            column: col.name.clone(),
        })?;
        params.push(param);
    }
    let mut binds = vec![params[0].clone()];
    let mut alternatives = Vec::with_capacity(key.len());
    for i in 0..key.len() {
        let mut terms = Vec::with_capacity(i + 1);
        for j in 0..i {
            terms.push(format!(
                "{} = {}",
                key[j].order_expr(),
                key[j].placeholder()
            ));
            binds.push(params[j].clone());
        }
        terms.push(format!(
            "{} > {}",
            key[i].order_expr(),
            key[i].placeholder()
        ));
        binds.push(params[i].clone());
        alternatives.push(format!("({})", terms.join(" AND ")));
    }
    let filter = format!(
        "{} >= {} AND ({})",
        key[0].order_expr(),
        key[0].placeholder(),
        alternatives.join(" OR ")
    );
    Ok((filter, binds))
}

impl MySqlSource {
    /// Connects to the endpoint and checks that the database is there.
    pub(crate) async fn open(ep: &ServerEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        // Several connections: a split table is read in key ranges side by
        // side, and counting runs beside a read.
        let server = Server::connect("source", ep, base_dir, 8, SESSION).await?;
        Ok(Self { server })
    }

    /// Every column of the database's tables (or of one table), in order.
    async fn columns(
        &self,
        only: Option<&str>,
    ) -> Result<Vec<(String, ReadColumn)>, ConnectorError> {
        columns(&self.server, only).await
    }

    /// Primary-key columns of every table, in key order.
    async fn primary_keys(&self) -> Result<HashMap<String, Vec<String>>, ConnectorError> {
        let sql = "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.KEY_COLUMN_USAGE
                   WHERE TABLE_SCHEMA = DATABASE() AND CONSTRAINT_NAME = 'PRIMARY'
                   ORDER BY TABLE_NAME, ORDINAL_POSITION";
        let rows = sqlx::query(sql)
            .fetch_all(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        let mut keys: HashMap<String, Vec<String>> = HashMap::new();
        for r in &rows {
            if let (Some(table), Some(column)) = (text(r, 0), text(r, 1)) {
                keys.entry(table).or_default().push(column);
            }
        }
        Ok(keys)
    }

    /// Tables and views with the server's row estimate (`TABLE_ROWS`),
    /// leaving out credvault's own (checkpoints, restore points).
    async fn tables(&self) -> Result<Vec<(String, Option<u64>)>, ConnectorError> {
        let sql = "SELECT CAST(TABLE_NAME AS CHAR), CAST(TABLE_ROWS AS CHAR) FROM information_schema.TABLES
                   WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED', 'VIEW') AND TABLE_NAME NOT LIKE ?
                   ORDER BY TABLE_NAME";
        let rows = sqlx::query(sql)
            .bind(OWN_TABLES)
            .fetch_all(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((text(r, 0)?, text(r, 1).and_then(|n| n.parse().ok()))))
            .collect())
    }

    /// The reader's view of a table's columns, in the discovered order.
    async fn read_columns(&self, table: &TableInfo) -> Result<Vec<ReadColumn>, ConnectorError> {
        let found = self.columns(Some(&table.name)).await?;
        table
            .columns
            .iter()
            .map(|c| {
                found
                    .iter()
                    .find(|(_, f)| f.name == c.name)
                    .map(|(_, f)| f.clone())
                    .ok_or_else(|| {
                        self.server.message(format!(
                            "table `{}` has no column `{}` any more; check the source schema",
                            table.name, c.name
                        ))
                    })
            })
            .collect()
    }

    /// Decodes one row, or says which column could not be read.
    fn decode_row(
        &self,
        table: &str,
        columns: &[ReadColumn],
        row: &MySqlRow,
    ) -> Result<Row, ConnectorError> {
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| match raw(row, i) {
                None => Ok(Value::Null),
                Some(bytes) => decode(c.kind, bytes).map_err(|e| {
                    self.server.message(format!(
                        "table `{table}`, column `{}`: cannot read a {:?} value: {e}",
                        c.name, c.kind
                    ))
                }),
            })
            .collect()
    }

    /// Streams the rows of `sql` into batches; stops early if the receiver
    /// has gone. The server streams the result and the bounded channel
    /// holds it back, so memory does not grow with the table.
    async fn stream(
        &self,
        request: &ReadRequest,
        columns: &[ReadColumn],
        read: ReadSql,
        tx: &mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) -> Result<(), ConnectorError> {
        let mut query = sqlx::query(&read.sql);
        for param in &read.binds {
            query = match param {
                Param::Int(v) => query.bind(*v),
                Param::UInt(v) => query.bind(*v),
                Param::Single(v) => query.bind(*v),
                Param::Double(v) => query.bind(*v),
                Param::Bytes(v) => query.bind(v.as_slice()),
                Param::Text(v) => query.bind(v.as_str()),
            };
        }
        let first = request.after.as_ref().map_or(0, |c| c.rows) + 1;
        let mut batches = Batcher::new(request.batch_size, first);
        let mut rows = query.fetch(&self.server.pool);
        while let Some(row) = rows.try_next().await.map_err(|e| self.server.error(e))? {
            let row = self.decode_row(&request.table.name, columns, &row)?;
            if let Some(batch) = batches.push(row)
                && tx.send(Ok(batch)).await.is_err()
            {
                return Ok(());
            }
        }
        if let Some(batch) = batches.finish() {
            let _ = tx.send(Ok(batch)).await;
        }
        Ok(())
    }
}

/// Every column of the database's tables (or of one table), in order.
async fn columns(
    server: &Server,
    only: Option<&str>,
) -> Result<Vec<(String, ReadColumn)>, ConnectorError> {
    let json = json_checks(server).await;
    let sql = format!(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), CAST(NUMERIC_PRECISION AS CHAR), CAST(NUMERIC_SCALE AS CHAR), CAST(COLUMN_COMMENT AS CHAR)
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() {}
         ORDER BY TABLE_NAME, ORDINAL_POSITION",
        if only.is_some() { "AND TABLE_NAME = ?" } else { "" }
    );
    let mut query = sqlx::query(&sql);
    if let Some(table) = only {
        query = query.bind(table);
    }
    let rows = query
        .fetch_all(&server.pool)
        .await
        .map_err(|e| server.error(e))?;
    Ok(rows.iter().map(|r| read_column(r, &json)).collect())
}

/// `(table, column)` pairs that MariaDB's JSON alias constrains with
/// `json_valid(col)`. MySQL has a real JSON type and no such checks (and
/// no TABLE_NAME in this view), so a failing query means none.
async fn json_checks(server: &Server) -> HashSet<(String, String)> {
    let sql = "SELECT CAST(TABLE_NAME AS CHAR), CAST(CHECK_CLAUSE AS CHAR) FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()";
    let Ok(rows) = sqlx::query(sql).fetch_all(&server.pool).await else {
        return HashSet::new();
    };
    rows.iter()
        .filter_map(|r| {
            let clause = text(r, 1)?;
            let column = clause
                .trim()
                .strip_prefix("json_valid(`")?
                .strip_suffix("`)")?
                .replace("``", "`");
            Some((text(r, 0)?, column))
        })
        .collect()
}

/// A table's columns as the row model sees them (what a sink appending to
/// it compares against); empty if it does not exist.
pub(super) async fn row_columns(
    server: &Server,
    table: &str,
) -> Result<Vec<Column>, ConnectorError> {
    let found = columns(server, Some(table)).await?;
    Ok(found
        .into_iter()
        .map(|(_, c)| Column {
            type_: c.kind.column_type(),
            nullable: c.nullable,
            name: c.name,
        })
        .collect())
}

/// A column from a row of the `information_schema.COLUMNS` query.
fn read_column(r: &MySqlRow, json: &HashSet<(String, String)>) -> (String, ReadColumn) {
    let table = text(r, 0).unwrap_or_default();
    let name = text(r, 1).unwrap_or_default();
    let data_type = text(r, 2).unwrap_or_default().to_ascii_lowercase();
    let column_type = text(r, 3).unwrap_or_default();
    let precision = text(r, 5).and_then(|n| n.parse().ok());
    let comment = text(r, 7).unwrap_or_default();
    let kind = Kind::of(&SchemaColumn {
        data_type: &data_type,
        column_type: &column_type,
        comment: &comment,
        json_checked: json.contains(&(table.clone(), name.clone())),
        precision,
    });
    let column = ReadColumn {
        nullable: text(r, 4).as_deref() == Some("YES"),
        scale: text(r, 6).and_then(|n| n.parse().ok()),
        name,
        kind,
        data_type,
        precision,
    };
    (table, column)
}

#[async_trait]
impl Source for MySqlSource {
    fn describe(&self) -> String {
        self.server.endpoint.clone()
    }

    async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        let tables = self.tables().await?;
        let mut keys = self.primary_keys().await?;
        let mut columns: HashMap<String, Vec<Column>> = HashMap::new();
        for (table, c) in self.columns(None).await? {
            columns.entry(table).or_default().push(Column {
                name: c.name,
                type_: c.kind.column_type(),
                nullable: c.nullable,
            });
        }
        Ok(tables
            .into_iter()
            .map(|(name, approx_rows)| TableInfo {
                columns: columns.remove(&name).unwrap_or_default(),
                primary_key: keys.remove(&name).unwrap_or_default(),
                approx_rows,
                name,
            })
            .collect())
    }

    /// Reads the tables' schema and the objects around them from
    /// `information_schema` (see `schema.rs`).
    async fn schema(&self, tables: &[TableInfo]) -> Result<Option<Schema>, ConnectorError> {
        let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        super::schema::read(&self.server, &names).await.map(Some)
    }

    async fn native_types(&self, table: &TableInfo) -> Result<Vec<Option<Native>>, ConnectorError> {
        let found = self.columns(Some(&table.name)).await?;
        Ok(found.iter().map(|(_, c)| c.native()).collect())
    }

    async fn count(&self, table: &TableInfo) -> Result<u64, ConnectorError> {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}", ident(&table.name)))
            .fetch_one(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(n.unsigned_abs())
    }

    async fn cursor_bound(&self, table: &TableInfo, column: &str) -> Result<Bound, ConnectorError> {
        let columns = self.columns(Some(&table.name)).await?;
        let Some((_, found)) = columns.iter().find(|(_, c)| c.name == column) else {
            return Err(ConnectorError::new(
                self.describe(),
                format!(
                    "table `{}` has no cursor column `{column}`; check `cursor` in the migration file",
                    table.name
                ),
            ));
        };
        super::window::bound(&self.server, &table.name, column, &found.data_type).await
    }

    async fn key_bounds(&self, table: &TableInfo) -> Result<Option<(i64, i64)>, ConnectorError> {
        let Some(key) = integer_key(table) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT MIN({k}), MAX({k}) FROM {}",
            ident(&table.name),
            k = ident(key)
        );
        let bounds: (Option<i64>, Option<i64>) = sqlx::query_as(&sql)
            .fetch_one(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(bounds.0.zip(bounds.1))
    }

    /// Data and indexes, as `information_schema.TABLES` estimates them.
    async fn size_bytes(&self, table: &TableInfo) -> Result<Option<u64>, ConnectorError> {
        let sql = "SELECT CAST(DATA_LENGTH + INDEX_LENGTH AS CHAR) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";
        let row = sqlx::query(sql)
            .bind(&table.name)
            .fetch_optional(&self.server.pool)
            .await
            .map_err(|e| self.server.error(e))?;
        Ok(row.and_then(|r| text(&r, 0)).and_then(|n| n.parse().ok()))
    }

    async fn probe_read(&self, table: &TableInfo) -> Result<(), ConnectorError> {
        let sql = format!("SELECT 1 FROM {} LIMIT 1", ident(&table.name));
        if let Err(e) = sqlx::query(&sql).fetch_optional(&self.server.pool).await {
            let object = self.server.object(Some(&table.name));
            return Err(self.server.refused(e, "SELECT", &object).await);
        }
        read_one(self, table).await
    }

    async fn read(
        &self,
        request: ReadRequest,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        let outcome = async {
            let columns = self.read_columns(&request.table).await?;
            let read = read_sql(&request, &columns).map_err(|e| {
                self.server
                    .message(format!("cannot resume table `{}`: {e}", request.table.name))
            })?;
            self.stream(&request, &columns, read, &tx).await
        }
        .await;
        if let Err(err) = outcome {
            let _ = tx.send(Err(err)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::KeyRange;
    use crate::model::value::ColumnType;

    fn col(name: &str, kind: Kind) -> ReadColumn {
        ReadColumn {
            name: name.into(),
            kind,
            data_type: String::new(),
            precision: Some(30),
            scale: Some(10),
            nullable: false,
        }
    }

    fn request(key: &[&str], after: Option<Checkpoint>) -> ReadRequest {
        ReadRequest {
            table: TableInfo {
                name: "t".into(),
                columns: vec![Column {
                    name: "a".into(),
                    type_: ColumnType::Int,
                    nullable: false,
                }],
                primary_key: key.iter().map(|k| k.to_string()).collect(),
                approx_rows: None,
            },
            batch_size: 10,
            limit: None,
            after,
            range: None,
            any_order: false,
            since: None,
        }
    }

    #[test]
    fn a_composite_key_resumes_after_the_last_key() {
        let columns = [col("a", Kind::Signed), col("b", Kind::Decimal)];
        let after = Checkpoint {
            rows: 5,
            key: Some(vec![Some("7".into()), Some("1.50".into())]),
            ..Checkpoint::default()
        };
        let read = read_sql(&request(&["a", "b"], Some(after)), &columns).unwrap();
        assert_eq!(
            read.sql,
            "SELECT `a`, `b` FROM `t` WHERE `a` >= ? AND ((`a` > ?) OR (`a` = ? AND `b` > CAST(? AS DECIMAL(30,10)))) ORDER BY `a`, `b`"
        );
        assert_eq!(
            read.binds,
            [
                Param::Int(7),
                Param::Int(7),
                Param::Int(7),
                Param::Text("1.50".into())
            ]
        );
    }

    #[test]
    fn a_keyless_table_resumes_by_skipping_rows_of_a_total_order() {
        let columns = [col("a", Kind::Signed), col("b", Kind::Text)];
        let after = Checkpoint {
            rows: 5,
            ..Checkpoint::default()
        };
        let read = read_sql(&request(&[], Some(after)), &columns).unwrap();
        assert_eq!(
            read.sql,
            "SELECT `a`, `b` FROM `t` ORDER BY `a`, `b` LIMIT 5, 18446744073709551615"
        );
        let long = ReadColumn {
            data_type: "longtext".into(),
            ..col("c", Kind::Text)
        };
        let read = read_sql(&request(&[], None), &[col("a", Kind::Signed), long]).unwrap();
        assert_eq!(read.sql, "SELECT `a`, `c` FROM `t` ORDER BY `a`, MD5(`c`)");
    }

    #[test]
    fn a_key_range_bounds_the_read() {
        let columns = [col("a", Kind::Signed)];
        let mut req = request(&["a"], None);
        req.range = Some(KeyRange {
            lo: Some(10),
            hi: Some(20),
        });
        let read = read_sql(&req, &columns).unwrap();
        assert_eq!(
            read.sql,
            "SELECT `a` FROM `t` WHERE `a` >= 10 AND `a` < 20 ORDER BY `a`"
        );
    }

    #[test]
    fn timestamptz_keys_are_compared_in_utc() {
        let c = col("t", Kind::Timestamp);
        assert_eq!(
            key_param(&c, "2024-01-31T13:45:00.000001Z"),
            Some(Param::Text("2024-01-31 13:45:00.000001".into()))
        );
    }
}
