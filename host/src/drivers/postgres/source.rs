//! The PostgreSQL source: tables from the catalog, rows from binary
//! `COPY (SELECT …) TO STDOUT` decoded straight into values.

use std::path::Path;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use tokio::sync::mpsc;

use super::copy::TupleReader;
use super::types::{Binary, Select, native, read_as};
use super::{CatalogTable, Db, ident, literal};
use crate::config::ServerEndpoint;
use crate::drivers::{
    Batcher, Bound, Checkpoint, ConnectorError, Native, ReadRequest, Source, SourceBatch,
    integer_key, read_one,
};
use crate::model::schema::Schema;
use crate::model::value::{Column, TableInfo};

/// Reads the tables of one schema.
pub struct PgSource {
    db: Db,
}

impl PgSource {
    /// Connects (testing the connection) to the endpoint.
    pub(super) async fn open(ep: &ServerEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        // Each table or key range being read holds a connection for its
        // whole COPY (`parallel_tables` of them), plus one to count or
        // discover; the pool opens them only as needed.
        let db = Db::open("source", ep, base_dir, &[], 16).await?;
        Ok(Self { db })
    }

    /// The catalog entry of one table, or an error if it has gone.
    async fn table(&self, name: &str) -> Result<CatalogTable, ConnectorError> {
        let found = self.db.catalog(Some(name)).await?.into_iter().next();
        found.ok_or_else(|| {
            self.db.fail(format!(
                "table `{name}` is not in schema `{}` (any more)",
                self.db.schema
            ))
        })
    }

    /// Streams the table into `tx`; `Ok` also when the receiver went away.
    async fn stream(
        &self,
        request: &ReadRequest,
        tx: &mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) -> Result<(), ConnectorError> {
        let name = &request.table.name;
        let plan = read_plan(&self.db, request, &self.table(name).await?)?;
        let mut conn = self
            .db
            .pool
            .acquire()
            .await
            .map_err(|e| self.db.table_error(name, &e))?;
        let outcome = match conn.copy_out_raw(&plan.sql).await {
            Ok(stream) => self.pump(stream, request, tx, plan.layouts).await,
            Err(e) => Err(self.db.table_error(name, &e)),
        };
        // After a refused or abandoned COPY the connection is mid-protocol
        // (or the server still sending): it must not go back to the pool,
        // and dropping it is quicker than draining the rest of the table.
        if !matches!(outcome, Ok(true)) {
            conn.close_on_drop();
        }
        outcome.map(drop)
    }

    /// Reads a started COPY into batches. `Ok(true)`: the whole table was
    /// read; `Ok(false)`: the receiver went away.
    async fn pump<S, B>(
        &self,
        mut stream: S,
        request: &ReadRequest,
        tx: &mpsc::Sender<Result<SourceBatch, ConnectorError>>,
        layouts: Vec<Binary>,
    ) -> Result<bool, ConnectorError>
    where
        S: futures_util::Stream<Item = Result<B, sqlx::Error>> + Unpin,
        B: AsRef<[u8]>,
    {
        let name = &request.table.name;
        let first = request.after.as_ref().map_or(0, |c| c.rows) + 1;
        let mut reader = TupleReader::new(layouts);
        let mut batches = Batcher::new(request.batch_size.max(1), first);
        let mut position = first;
        let outcome: Result<bool, ConnectorError> = 'read: loop {
            let chunk = match stream.try_next().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break Ok(true),
                Err(e) => break Err(self.db.table_error(name, &e)),
            };
            reader.feed(chunk.as_ref());
            loop {
                match reader.next_row() {
                    Ok(Some(row)) => {
                        position += 1;
                        if let Some(batch) = batches.push(row)
                            && tx.send(Ok(batch)).await.is_err()
                        {
                            break 'read Ok(false);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        let column = e.column.map_or(String::new(), |i| {
                            format!(", column `{}`", request.table.columns[i].name)
                        });
                        let message =
                            format!("table `{name}`, row {position}{column}: {}", e.message);
                        break 'read Err(self.db.fail(message));
                    }
                }
            }
        };
        match outcome {
            Ok(true) if reader.ended() => {
                if let Some(batch) = batches.finish() {
                    let _ = tx.send(Ok(batch)).await;
                }
                Ok(true)
            }
            Ok(true) => Err(self
                .db
                .fail(format!("table `{name}`: the COPY stream ended early"))),
            other => other,
        }
    }
}

/// The COPY statement for a read and the binary layout of its fields.
struct ReadPlan {
    sql: String,
    layouts: Vec<Binary>,
}

/// `COPY (SELECT cols FROM t [WHERE (key) > (last)] ORDER BY key|ctid
/// [LIMIT n] [OFFSET skipped]) TO STDOUT (FORMAT binary)`. COPY takes no
/// parameters, so the resume key is inlined as quoted literals cast to the
/// key columns' own types.
fn read_plan(
    db: &Db,
    request: &ReadRequest,
    table: &CatalogTable,
) -> Result<ReadPlan, ConnectorError> {
    let mut exprs = Vec::with_capacity(request.table.columns.len());
    let mut layouts = Vec::with_capacity(request.table.columns.len());
    for column in &request.table.columns {
        let found = table.columns.iter().find(|c| c.name == column.name);
        let Some(found) = found else {
            return Err(db.fail(format!(
                "table `{}` has no column `{}` any more; check the source schema",
                table.name, column.name
            )));
        };
        let how = read_as(&found.pg);
        let (expr, layout) = select_expr(&column.name, how.select, how.binary, db.utf8);
        exprs.push(expr);
        layouts.push(layout);
    }
    let key: Vec<&str> = table.primary_key.iter().map(|(_, k)| k.as_str()).collect();
    let mut sql = format!(
        "COPY (SELECT {} FROM {}",
        exprs.join(", "),
        db.qualified(&table.name)
    );
    let mut conditions = range_conditions(request, &key);
    conditions.extend(since_conditions(request, table));
    let mut offset = 0;
    match &request.after {
        Some(Checkpoint {
            key: Some(last), ..
        }) if !key.is_empty() && last.len() == key.len() => {
            conditions.push(after_condition(table, &key, last));
        }
        Some(checkpoint) => offset = checkpoint.rows,
        None => {}
    }
    if !conditions.is_empty() {
        sql.push_str(&format!(" WHERE {}", conditions.join(" AND ")));
    }
    // Without a key, physical order is the only stable one: correct as long
    // as the table is not updated or rewritten between a run and its resume.
    let order = match key.is_empty() {
        true => "ctid".to_string(),
        false => key.iter().map(|k| ident(k)).collect::<Vec<_>>().join(", "),
    };
    sql.push_str(&format!(" ORDER BY {order}"));
    if let Some(limit) = request.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    if offset > 0 {
        sql.push_str(&format!(" OFFSET {offset}"));
    }
    sql.push_str(") TO STDOUT (FORMAT binary)");
    Ok(ReadPlan { sql, layouts })
}

/// `(k1, k2) > ('last1'::type1, 'last2'::type2)`: rows after a checkpoint,
/// the literals cast to the key columns' own types so the comparison (and
/// its collation) is the one `ORDER BY` uses.
fn after_condition(table: &CatalogTable, key: &[&str], last: &[Option<String>]) -> String {
    let bounds: Vec<String> = key
        .iter()
        .zip(last)
        .map(|(k, v)| {
            let pg = table
                .columns
                .iter()
                .find(|c| c.name == *k)
                .map(|c| c.pg.name.as_str());
            match v {
                Some(v) => format!("{}::{}", literal(v), pg.unwrap_or("text")),
                None => "NULL".to_string(),
            }
        })
        .collect();
    let columns: Vec<String> = key.iter().map(|k| ident(k)).collect();
    format!("({}) > ({})", columns.join(", "), bounds.join(", "))
}

/// `c >= from AND c <= to` for an incremental sync, the bounds cast to the
/// cursor column's own type.
fn since_conditions(request: &ReadRequest, table: &CatalogTable) -> Vec<String> {
    let Some(since) = &request.since else {
        return Vec::new();
    };
    let pg = table
        .columns
        .iter()
        .find(|c| c.name == since.column)
        .map_or("text", |c| c.pg.name.as_str());
    let c = ident(&since.column);
    let mut conditions: Vec<String> = since
        .from
        .iter()
        .map(|from| format!("{c} >= {}::{pg}", literal(from)))
        .collect();
    conditions.push(format!("{c} <= {}::{pg}", literal(&since.to)));
    conditions
}

/// `k >= lo AND k < hi` for one key range of a split table.
fn range_conditions(request: &ReadRequest, key: &[&str]) -> Vec<String> {
    let (Some(range), [k]) = (request.range, key) else {
        return Vec::new();
    };
    let k = ident(k);
    let mut conditions: Vec<String> = range
        .lo
        .map(|lo| format!("{k} >= {lo}"))
        .into_iter()
        .collect();
    conditions.extend(range.hi.map(|hi| format!("{k} < {hi}")));
    conditions
}

/// The SELECT expression for a column and the layout of its binary form.
/// Binary COPY sends text in the server's encoding, so on a server that is
/// not UTF-8 text is converted explicitly (and arrives as bytea, whose
/// binary form is the bytes themselves).
fn select_expr(name: &str, select: Select, layout: Binary, utf8: bool) -> (String, Binary) {
    let col = ident(name);
    let expr = match select {
        Select::Plain => col,
        Select::CastText => format!("{col}::text"),
        Select::ArrayJson => format!("to_jsonb({col})::text"),
    };
    match layout {
        Binary::Text | Binary::Json | Binary::Jsonb if !utf8 => {
            let as_text = if layout == Binary::Text {
                Binary::Text
            } else {
                Binary::Json
            };
            (format!("convert_to(({expr})::text, 'UTF8')"), as_text)
        }
        _ => (expr, layout),
    }
}

/// A catalog table as the row model sees it.
fn table_info(t: CatalogTable) -> TableInfo {
    let columns = t
        .columns
        .iter()
        .map(|c| Column {
            name: c.name.clone(),
            type_: read_as(&c.pg).column_type,
            nullable: !c.not_null,
        })
        .collect();
    TableInfo {
        name: t.name,
        columns,
        primary_key: t.primary_key.into_iter().map(|(_, k)| k).collect(),
        approx_rows: t.approx_rows,
    }
}

#[async_trait]
impl Source for PgSource {
    fn describe(&self) -> String {
        self.db.endpoint.clone()
    }

    async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        Ok(self
            .db
            .catalog(None)
            .await?
            .into_iter()
            .map(table_info)
            .collect())
    }

    /// Reads the tables' schema and the objects around them from the
    /// catalog (see `schema.rs`).
    async fn schema(&self, tables: &[TableInfo]) -> Result<Option<Schema>, ConnectorError> {
        let names: Vec<String> = tables.iter().map(|t| t.name.clone()).collect();
        super::schema::read(&self.db, &names).await.map(Some)
    }

    async fn native_types(&self, table: &TableInfo) -> Result<Vec<Option<Native>>, ConnectorError> {
        let t = self.table(&table.name).await?;
        Ok(t.columns.iter().map(|c| native(&c.pg)).collect())
    }

    async fn count(&self, table: &TableInfo) -> Result<u64, ConnectorError> {
        let sql = format!("SELECT count(*) FROM {}", self.db.qualified(&table.name));
        let n: i64 = sqlx::query_scalar(&sql)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(&table.name, &e))?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn key_bounds(&self, table: &TableInfo) -> Result<Option<(i64, i64)>, ConnectorError> {
        let Some(key) = integer_key(table) else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT min({k})::int8, max({k})::int8 FROM {}",
            self.db.qualified(&table.name),
            k = ident(key)
        );
        let bounds: (Option<i64>, Option<i64>) = sqlx::query_as(&sql)
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.table_error(&table.name, &e))?;
        Ok(bounds.0.zip(bounds.1))
    }

    async fn cursor_bound(&self, table: &TableInfo, column: &str) -> Result<Bound, ConnectorError> {
        super::window::bound(&self.db, &self.table(&table.name).await?, column).await
    }

    async fn read(
        &self,
        request: ReadRequest,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        if let Err(e) = self.stream(&request, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    /// The table with its indexes and TOAST.
    async fn size_bytes(&self, table: &TableInfo) -> Result<Option<u64>, ConnectorError> {
        let bytes: Option<i64> =
            sqlx::query_scalar("SELECT pg_total_relation_size(to_regclass($1))::int8")
                .bind(self.db.qualified(&table.name))
                .fetch_one(&self.db.pool)
                .await
                .map_err(|e| self.db.table_error(&table.name, &e))?;
        Ok(bytes.map(i64::unsigned_abs))
    }

    async fn probe_read(&self, table: &TableInfo) -> Result<(), ConnectorError> {
        let qualified = self.db.qualified(&table.name);
        let sql = format!("SELECT 1 FROM {qualified} LIMIT 1");
        if let Err(e) = sqlx::query(&sql).fetch_optional(&self.db.pool).await {
            return Err(self.db.refused(&e, &self.db.grant("SELECT", &qualified)));
        }
        read_one(self, table).await
    }
}
