//! Change data capture from a PostgreSQL source: committed inserts, updates
//! and deletes read from a logical replication slot, decoded into the same
//! values a normal read of the table produces.
//!
//! The slot uses the `test_decoding` output plugin, through the SQL
//! functions (`pg_logical_slot_peek_changes`), rather than `pgoutput`:
//! - `pgoutput` needs a publication, and publishing a table without a
//!   replica identity makes the *application's* UPDATEs and DELETEs on it
//!   fail; creating one also needs table ownership (or superuser for
//!   `FOR ALL TABLES`). `test_decoding` leaves nothing on the source but the
//!   slot.
//! - `test_decoding` ships with every packaged PostgreSQL (contrib) and
//!   prints each value with the type's own output function in this
//!   session's settings (ISO dates in UTC, hex bytea, shortest-exact
//!   floats), so the text maps onto the row model exactly; the parser
//!   below handles its quoting (`'it''s'`), `null`, and
//!   `unchanged-toast-datum`.
//!
//! Positions: changes come in commit order, but the WAL position of a
//! change is not monotonic across interleaved transactions, so every change
//! is placed by its transaction's commit (the end LSN of the commit record)
//! and its index within the transaction. See [`Lsn`].

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;

use super::error::DecodeError;
use super::types::{PgType, ReadAs, Select, read_as};
use super::{CatalogTable, Db, ident, literal};
use crate::config::ServerEndpoint;
use crate::drivers::ConnectorError;
use crate::model::value::{ColumnType, Row, TableInfo, Value, parse_uuid};

/// The output plugin the slot decodes with (see the module docs).
const PLUGIN: &str = "test_decoding";

/// Microseconds in a day.
const MICROS_PER_DAY: i64 = 86_400_000_000;

/// `pg_type.oid` of `inet`, whose `::text` cast always shows the netmask.
const INET: u32 = 869;

/// One change of a source row, in commit order.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceChange {
    /// A new row: every column of the discovered table, in its column order.
    Insert(Row),
    /// A changed row, same key: the new values of every column, in column
    /// order. An update that changes the primary key arrives as a
    /// [`SourceChange::Delete`] of the old key followed by an
    /// [`SourceChange::Insert`] of the new row.
    Update(Row),
    /// A deleted row: its primary-key values in their column positions;
    /// other columns are `Value::Null`.
    Delete(Row),
}

/// A position in a slot's change stream, in commit order: the commit LSN
/// of a transaction (the end of its commit record), and where a
/// transaction is split across calls, the change's index within it.
///
/// Text form: `0/16B3748` for "transaction 0/16B3748 and everything before
/// it"; `0/16B3748#17@0/16A0000` for "the first 17 changes of that
/// transaction (which began at 0/16A0000)". The last change of a
/// transaction returned whole carries the short form. Store the text with
/// the applied data and parse it back for `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn {
    /// The end LSN of the transaction's commit record.
    commit: u64,
    /// 1-based index of the change within its transaction, or `u32::MAX`
    /// for the whole transaction.
    index: u32,
    /// The transaction's first LSN (only for positions inside it; 0
    /// otherwise), which tells the transaction apart before its commit is
    /// read and lets `confirm` keep it.
    begin: u64,
}

impl Lsn {
    /// The end of the transaction that committed at `commit`.
    pub fn transaction_end(commit: u64) -> Self {
        Self {
            commit,
            index: u32::MAX,
            begin: 0,
        }
    }

    /// The commit LSN of the change's transaction.
    pub fn commit_lsn(&self) -> u64 {
        self.commit
    }

    /// Whether this position covers its whole transaction.
    pub fn is_transaction_end(&self) -> bool {
        self.index == u32::MAX
    }

    /// Change `index` of the transaction that began at `begin` and
    /// committed at `commit`.
    fn within(commit: u64, index: u32, begin: u64) -> Self {
        Self {
            commit,
            index,
            begin,
        }
    }
}

/// An LSN as PostgreSQL writes it: `16/B374D848`.
fn wal_text(lsn: u64) -> String {
    format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)
}

/// Parses `16/B374D848`.
fn parse_wal(text: &str) -> Option<u64> {
    let (hi, lo) = text.trim().split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&wal_text(self.commit))?;
        if !self.is_transaction_end() {
            write!(f, "#{}@{}", self.index, wal_text(self.begin))?;
        }
        Ok(())
    }
}

/// Text that is not a change position ([`Lsn`]'s text form).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a change position like 0/16B3748 or 0/16B3748#17@0/16A0000")]
pub struct BadPosition(String);

impl FromStr for Lsn {
    type Err = BadPosition;

    fn from_str(s: &str) -> Result<Self, BadPosition> {
        let bad = || BadPosition(s.to_string());
        match s.split_once('#') {
            None => parse_wal(s).map(Lsn::transaction_end).ok_or_else(bad),
            Some((commit, rest)) => {
                let (index, begin) = rest.split_once('@').ok_or_else(bad)?;
                let index: u32 = index.parse().map_err(|_| bad())?;
                if index == 0 || index == u32::MAX {
                    return Err(bad());
                }
                Ok(Lsn::within(
                    parse_wal(commit).ok_or_else(bad)?,
                    index,
                    parse_wal(begin).ok_or_else(bad)?,
                ))
            }
        }
    }
}

/// One change with its table and position.
#[derive(Debug, Clone, PartialEq)]
pub struct TableChange {
    /// Where the change stands; everything up to and including it is
    /// "applied up to `lsn`".
    pub lsn: Lsn,
    /// The source table's name, as discovered.
    pub table: String,
    /// The change.
    pub change: SourceChange,
}

/// Reads the committed changes of a PostgreSQL schema's tables from one
/// logical replication slot.
///
/// The lead loop: `ensure_slot`; `changes(tables, applied, max)`; apply
/// them and store the last one's `lsn` in the destination in the same
/// transaction; `confirm(that lsn)`; repeat with `applied` = that lsn. A
/// crash between the destination's commit and `confirm` is harmless: the
/// slot still holds those changes and `changes` skips everything up to
/// `after`.
pub struct PgChanges {
    db: Db,
    slot: String,
    /// What the last `changes` call learned: the position its result ended
    /// at (its last change, or `after` when it found none) and the commit
    /// LSN up to which it saw nothing else for the tables, so `confirm` of
    /// that position may also release the transactions that touched none
    /// of them.
    scanned: Mutex<Option<(Option<Lsn>, u64)>>,
}

impl PgChanges {
    /// Connects to the endpoint the way the PostgreSQL source does (the
    /// password from `password_env`/`password_file`, TLS, redacted errors)
    /// and names the slot to use: 1 to 63 characters of `a`–`z`, `0`–`9`
    /// and `_`.
    pub async fn open(
        ep: &ServerEndpoint,
        base_dir: &Path,
        slot: &str,
    ) -> Result<Self, ConnectorError> {
        let valid = !slot.is_empty()
            && slot.len() <= 63
            && slot
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        // One connection: a slot can be read by one session at a time, so
        // calls must not overlap.
        let db = Db::open("source", ep, base_dir, &[("bytea_output", "hex")], 1).await?;
        if !valid {
            return Err(db.fail(format!(
                "replication slot name {slot:?} is not valid: use 1 to 63 lowercase letters, digits and underscores"
            )));
        }
        Ok(Self {
            db,
            slot: slot.to_string(),
            scanned: Mutex::new(None),
        })
    }

    /// Creates the logical replication slot if it does not exist yet;
    /// `true` if it was created. Changes committed from then on are kept
    /// until confirmed. Fails with what to change when the server does not
    /// run with `wal_level = logical`, the user lacks REPLICATION, no slot
    /// is free, or a slot of that name exists for another purpose.
    pub async fn ensure_slot(&self) -> Result<bool, ConnectorError> {
        let (wal_level, may_replicate, max_slots, used): (String, Option<bool>, i32, i64) =
            sqlx::query_as(
                "SELECT current_setting('wal_level'),
                    (SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user),
                    current_setting('max_replication_slots')::int4,
                    (SELECT count(*) FROM pg_replication_slots)",
            )
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.error(&e))?;
        if wal_level != "logical" {
            return Err(self.db.fail(format!(
                "the server runs with wal_level = {wal_level}, but change data capture needs logical decoding: set `wal_level = logical` in postgresql.conf (or run ALTER SYSTEM SET wal_level = logical as a superuser) and restart the server"
            )));
        }
        if may_replicate != Some(true) {
            return Err(self.db.fail(format!(
                "user `{}` may not use replication slots: as a superuser, run ALTER ROLE {} WITH REPLICATION",
                self.db.ep.user,
                ident(&self.db.ep.user)
            )));
        }
        if self.existing_slot().await? {
            return Ok(false);
        }
        if i64::from(max_slots) <= used {
            return Err(self.no_free_slot(max_slots));
        }
        let created = sqlx::query("SELECT pg_create_logical_replication_slot($1, $2)")
            .bind(&self.slot)
            .bind(PLUGIN)
            .execute(&self.db.pool)
            .await;
        match created {
            Ok(_) => Ok(true),
            // Created by someone else meanwhile: check it is ours to use.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42710") => {
                self.existing_slot().await.map(|_| false)
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("53400") => {
                Err(self.no_free_slot(max_slots))
            }
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("58P01") => {
                Err(self.db.fail(format!(
                    "the server has no `{PLUGIN}` output plugin ({}): install PostgreSQL's contrib package on the server (e.g. postgresql-contrib)",
                    e.message()
                )))
            }
            Err(e) => Err(self.slot_error(&e)),
        }
    }

    /// Whether the slot exists, and an error if it is not a `test_decoding`
    /// slot of this database.
    async fn existing_slot(&self) -> Result<bool, ConnectorError> {
        let found: Option<(String, Option<String>, Option<String>, bool)> = sqlx::query_as(
            "SELECT slot_type::text, plugin::text, database::text, database = current_database()
             FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&self.slot)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.db.error(&e))?;
        let Some((kind, plugin, database, here)) = found else {
            return Ok(false);
        };
        let slot = &self.slot;
        if kind != "logical" || plugin.as_deref() != Some(PLUGIN) {
            return Err(self.db.fail(format!(
                "replication slot `{slot}` exists but is a {kind} slot{}, not a `{PLUGIN}` one: choose another slot name, or drop it if nothing uses it (SELECT pg_drop_replication_slot({}))",
                plugin.map_or(String::new(), |p| format!(" for plugin `{p}`")),
                literal(slot)
            )));
        }
        if !here {
            return Err(self.db.fail(format!(
                "replication slot `{slot}` belongs to database `{}`, not `{}`: choose another slot name",
                database.unwrap_or_default(),
                self.db.ep.database
            )));
        }
        Ok(true)
    }

    fn no_free_slot(&self, max_slots: i32) -> ConnectorError {
        self.db.fail(format!(
            "all {max_slots} replication slots (max_replication_slots) are in use: raise max_replication_slots in postgresql.conf and restart the server, or drop a slot nothing uses (SELECT slot_name, active FROM pg_replication_slots; SELECT pg_drop_replication_slot('name'))"
        ))
    }

    /// A slot function's error with what to do.
    fn slot_error(&self, err: &sqlx::Error) -> ConnectorError {
        let slot = &self.slot;
        if let sqlx::Error::Database(e) = err {
            if is_lost_wal(e.message()) {
                return self.lost(e.message());
            }
            let message = match e.code().as_deref() {
                Some("42704") => format!(
                    "replication slot `{slot}` does not exist: create it first (ensure_slot); changes made before it existed are not kept"
                ),
                Some("55006") => format!(
                    "replication slot `{slot}` is in use by another server session ({}): a sync killed part-way leaves one until the server notices, or another program (or a sync with another state store) reads the slot; see SELECT active_pid FROM pg_replication_slots WHERE slot_name = '{slot}', then try again",
                    e.message()
                ),
                Some("55000") if e.message().contains("wal_level") => format!(
                    "{}: set `wal_level = logical` in postgresql.conf and restart the server",
                    e.message()
                ),
                Some("42501") => format!(
                    "user `{}` may not use replication slots ({}): as a superuser, run ALTER ROLE {} WITH REPLICATION",
                    self.db.ep.user,
                    e.message(),
                    ident(&self.db.ep.user)
                ),
                _ => return self.db.error(err),
            };
            return self.db.fail(message);
        }
        self.db.error(err)
    }

    /// What the slot keeps on the server, or `None` if it does not exist.
    /// `wal_status` and `safe_wal_size` need PostgreSQL 13 or later.
    pub async fn health(&self) -> Result<Option<SlotHealth>, ConnectorError> {
        let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int4")
            .fetch_one(&self.db.pool)
            .await
            .map_err(|e| self.db.error(&e))?;
        let (status, safe) = match version >= 130_000 {
            true => ("wal_status::text", "safe_wal_size::int8"),
            false => ("NULL::text", "NULL::int8"),
        };
        let sql = format!(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8,
                    pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8,
                    {status}, {safe}, active_pid,
                    current_setting('max_slot_wal_keep_size', true)
             FROM pg_replication_slots WHERE slot_name = $1"
        );
        type Row = (
            Option<i64>,
            Option<i64>,
            Option<String>,
            Option<i64>,
            Option<i32>,
            Option<String>,
        );
        let row: Option<Row> = sqlx::query_as(&sql)
            .bind(&self.slot)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(|e| self.db.error(&e))?;
        Ok(
            row.map(|(retained, lag, wal_status, safe, pid, keep)| SlotHealth {
                slot: self.slot.clone(),
                retained_bytes: retained.map(|b| b.max(0) as u64),
                lag_bytes: lag.map(|b| b.max(0) as u64),
                lost: wal_status.as_deref() == Some("lost"),
                wal_status,
                safe_wal_size: safe,
                active_pid: pid,
                max_slot_wal_keep_size: keep.filter(|k| k != "-1"),
            }),
        )
    }

    /// Fails with what to do when the slot lost WAL it needed, after
    /// waiting (up to `bound`) while another server session still holds it
    /// (see [`PgChanges::wait_free`]).
    pub async fn ready(&self, bound: Duration) -> Result<(), ConnectorError> {
        match self.wait_free(bound).await? {
            Some(health) if health.lost => Err(self.lost("wal_status = lost")),
            _ => Ok(()),
        }
    }

    /// Waits (up to `bound`) until no other server session holds the slot,
    /// then says what it keeps (`None` if it does not exist). A sync killed
    /// part-way leaves its session running until the server notices the
    /// client is gone, which takes as long as the read it was doing.
    pub async fn wait_free(&self, bound: Duration) -> Result<Option<SlotHealth>, ConnectorError> {
        let start = Instant::now();
        let mut told = None;
        loop {
            let health = self.health().await?;
            let Some(pid) = health.as_ref().and_then(|h| h.active_pid) else {
                return Ok(health);
            };
            if start.elapsed() >= bound {
                return Err(self.still_held(pid, bound));
            }
            if told != Some(pid) {
                tracing::warn!(
                    "replication slot `{}` is still held by server process {pid} (the session of a sync that ended without letting go, e.g. killed); waiting up to {} s for the server to end it",
                    self.slot,
                    bound.as_secs()
                );
                told = Some(pid);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn still_held(&self, pid: i32, bound: Duration) -> ConnectorError {
        self.db.fail(format!(
            "replication slot `{}` is still held by server process {pid} after {} s; no sync of this migration runs from this state store, so it is a session left by a killed sync that is still reading, another program, or a sync using another state store: see SELECT pid, application_name, client_addr, state, query_start FROM pg_stat_activity WHERE pid = {pid}; if nothing should hold it, end it with SELECT pg_terminate_backend({pid}) and sync again",
            self.slot,
            bound.as_secs()
        ))
    }

    /// The error of a slot whose WAL the server removed.
    fn lost(&self, why: &str) -> ConnectorError {
        self.db.fail(format!(
            "replication slot `{}` lost WAL it needed ({why}): the server removed changes it kept for this migration (it fell behind by more than max_slot_wal_keep_size, e.g. while paused), so the destination can no longer be brought up to date change by change and must be copied again in full: run `credvault remove FILE` (drops the slot and the migration's checkpoints), then `credvault sync FILE` (or `credvault run FILE`)",
            self.slot
        ))
    }

    /// Up to `max` committed changes to `tables` (as discovered by the
    /// PostgreSQL source, so values have the same types and values as a
    /// normal read) after position `after` (exclusive), in commit order,
    /// without consuming them from the slot. Changes to other tables are
    /// skipped.
    ///
    /// Transactions are returned whole while they fit in `max`; a single
    /// transaction with more than `max` changes for these tables is
    /// returned `max` changes at a time, its positions then carrying the
    /// index within it, so memory here stays bounded by `max` (the server
    /// decodes whole transactions, spilling big ones to disk). Positions
    /// assume the same `tables` from call to call.
    ///
    /// Every table needs a primary key (CDC identifies rows by it) and a
    /// replica identity that logs it (`DEFAULT` or `FULL`).
    pub async fn changes(
        &self,
        tables: &[TableInfo],
        after: Option<Lsn>,
        max: usize,
    ) -> Result<Vec<TableChange>, ConnectorError> {
        if max == 0 || tables.is_empty() {
            return Ok(Vec::new());
        }
        let plans = self.plans(tables).await?;
        // The server stops decoding at the first transaction boundary after
        // this many output rows (BEGIN and COMMIT count, and so do changes
        // up to `after` and to other tables, which are skipped): when it
        // stopped there without `max` changes for us, read again further.
        let mut rows_wanted: i64 = (max as i64).saturating_mul(2).saturating_add(16);
        loop {
            let limit = i32::try_from(rows_wanted).unwrap_or(i32::MAX);
            let mut collector = Collector::new(&self.db.schema, &plans, after, max);
            let mut rows = sqlx::query_as::<_, (String, String)>(
                "SELECT lsn::text, data FROM pg_logical_slot_peek_changes($1, NULL, $2, \
                 'include-xids', '0', 'skip-empty-xacts', '1')",
            )
            .bind(&self.slot)
            .bind(limit)
            .fetch(&self.db.pool);
            let mut seen: i64 = 0;
            while let Some((lsn, data)) = rows.try_next().await.map_err(|e| self.slot_error(&e))? {
                seen += 1;
                let lsn = parse_wal(&lsn).ok_or_else(|| {
                    self.db.fail(format!(
                        "the server returned an LSN {lsn:?} that is not one"
                    ))
                })?;
                collector.feed(lsn, &data).map_err(|m| {
                    self.db
                        .fail(format!("replication slot `{}`: {m}", self.slot))
                })?;
                if collector.done {
                    break;
                }
            }
            drop(rows);
            if collector.done || seen < i64::from(limit) || limit == i32::MAX {
                let Collector {
                    out,
                    arrays,
                    horizon,
                    ..
                } = collector;
                let mut out = out;
                self.convert_arrays(&mut out, arrays).await?;
                let end = out.last().map(|c| c.lsn).or(after);
                let mut scanned = self.scanned.lock().unwrap_or_else(|e| e.into_inner());
                *scanned = horizon.map(|h| (end, h));
                return Ok(out);
            }
            rows_wanted = rows_wanted.saturating_mul(4);
        }
    }

    /// How each table's changes decode, checking that CDC can identify its
    /// rows.
    async fn plans(
        &self,
        tables: &[TableInfo],
    ) -> Result<HashMap<String, TablePlan>, ConnectorError> {
        let catalog: HashMap<String, CatalogTable> = self
            .db
            .catalog(None)
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        let identities: Vec<(String, String)> = sqlx::query_as(
            "SELECT c.relname::text, c.relreplident::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
        )
        .bind(&self.db.schema)
        .fetch_all(&self.db.pool)
        .await
        .map_err(|e| self.db.error(&e))?;
        let identities: HashMap<String, String> = identities.into_iter().collect();
        let mut plans = HashMap::new();
        for table in tables {
            let name = &table.name;
            let qualified = self.db.qualified(name);
            let Some(found) = catalog.get(name) else {
                return Err(self.db.fail(format!(
                    "table `{name}` is not in schema `{}` (any more)",
                    self.db.schema
                )));
            };
            if table.primary_key.is_empty() || found.primary_key.is_empty() {
                return Err(self.db.fail(format!(
                    "table `{name}` has no primary key, and change data capture needs one to tell its rows apart: add one (ALTER TABLE {qualified} ADD PRIMARY KEY (…)) or leave the table out of CDC"
                )));
            }
            if identities.get(name).map(String::as_str) == Some("n") {
                return Err(self.db.fail(format!(
                    "table `{name}` has REPLICA IDENTITY NOTHING, so its deletes carry no key: run ALTER TABLE {qualified} REPLICA IDENTITY DEFAULT"
                )));
            }
            let mut columns = Vec::with_capacity(table.columns.len());
            for column in &table.columns {
                let Some(c) = found.columns.iter().find(|c| c.name == column.name) else {
                    return Err(self.db.fail(format!(
                        "table `{name}` has no column `{}` any more; check the source schema",
                        column.name
                    )));
                };
                columns.push((column.name.clone(), c.pg.clone()));
            }
            let key = table
                .primary_key
                .iter()
                .map(|k| {
                    table
                        .columns
                        .iter()
                        .position(|c| &c.name == k)
                        .ok_or_else(|| {
                            self.db.fail(format!(
                                "table `{name}`: key column `{k}` is not among its columns"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            plans.insert(name.clone(), TablePlan { columns, key });
        }
        Ok(plans)
    }

    /// Arrays arrive in PostgreSQL's array text; the source reads them as
    /// `to_jsonb(col)::text`, so the server converts them the same way (one
    /// query per array type).
    async fn convert_arrays(
        &self,
        out: &mut [TableChange],
        arrays: Vec<PendingArray>,
    ) -> Result<(), ConnectorError> {
        let mut by_type: HashMap<&str, Vec<&PendingArray>> = HashMap::new();
        for a in &arrays {
            by_type.entry(a.type_name.as_str()).or_default().push(a);
        }
        for (type_name, pending) in by_type {
            let texts: Vec<&str> = pending.iter().map(|a| a.text.as_str()).collect();
            let sql = format!(
                "SELECT to_jsonb(v::{type_name})::text FROM unnest($1::text[]) WITH ORDINALITY AS u(v, i) ORDER BY i"
            );
            let json: Vec<String> = sqlx::query_scalar(&sql)
                .bind(&texts)
                .fetch_all(&self.db.pool)
                .await
                .map_err(|e| self.db.error(&e))?;
            for (a, json) in pending.iter().zip(json) {
                if let Some(slot) = out
                    .get_mut(a.change)
                    .and_then(|c| row_mut(&mut c.change).get_mut(a.column))
                {
                    *slot = Value::Json(json);
                }
            }
        }
        Ok(())
    }

    /// Tells the server every change up to `lsn` is safely applied, so the
    /// slot stops keeping it and its WAL can be recycled. Call it only after
    /// the destination committed those changes together with `lsn`. A
    /// position inside a transaction releases what came before that
    /// transaction. Confirming a position at or before one already
    /// confirmed does nothing.
    pub async fn confirm(&self, lsn: Lsn) -> Result<(), ConnectorError> {
        let target = if lsn.is_transaction_end() {
            // If the last `changes` call ended exactly here and saw only
            // other tables' transactions after it, release those too.
            let scanned = *self.scanned.lock().unwrap_or_else(|e| e.into_inner());
            match scanned {
                Some((Some(end), horizon)) if end == lsn => lsn.commit.max(horizon),
                _ => lsn.commit,
            }
        } else {
            lsn.begin
        };
        let current: Option<Option<String>> = sqlx::query_scalar(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&self.slot)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.db.error(&e))?;
        let Some(current) = current else {
            return Err(self.db.fail(format!(
                "replication slot `{}` does not exist (any more): the changes after the last confirmed position are lost; copy the tables again",
                self.slot
            )));
        };
        if current
            .as_deref()
            .and_then(parse_wal)
            .is_some_and(|c| c >= target)
        {
            return Ok(());
        }
        sqlx::query("SELECT pg_replication_slot_advance($1, $2::pg_lsn)")
            .bind(&self.slot)
            .bind(wal_text(target))
            .execute(&self.db.pool)
            .await
            .map_err(|e| self.slot_error(&e))?;
        Ok(())
    }

    /// How far the last `changes` call has seen for its tables: its last
    /// change, or, past it, the commit up to which it found nothing else
    /// for them. A table that has applied its changes up to here may let
    /// the slot go that far.
    pub fn seen(&self) -> Option<Lsn> {
        let scanned = *self.scanned.lock().unwrap_or_else(|e| e.into_inner());
        let (end, horizon) = scanned?;
        match end {
            Some(end) if !end.is_transaction_end() || end.commit >= horizon => Some(end),
            _ => Some(Lsn::transaction_end(horizon)),
        }
    }

    /// Where the slot stands: every transaction that committed up to here
    /// has been released (or came before the slot), so a table that has
    /// read nothing since may start after it.
    pub async fn confirmed(&self) -> Result<Option<Lsn>, ConnectorError> {
        let current: Option<Option<String>> = sqlx::query_scalar(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&self.slot)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(|e| self.db.error(&e))?;
        Ok(current
            .flatten()
            .as_deref()
            .and_then(parse_wal)
            .map(Lsn::transaction_end))
    }

    /// Confirms `lsn` exactly: what every table reading the slot has
    /// applied, so none of the tables' horizons apply to the others.
    pub async fn confirm_all(&self, lsn: Lsn) -> Result<(), ConnectorError> {
        *self.scanned.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.confirm(lsn).await
    }

    /// Drops the slot (when a migration is removed or restarted), so the
    /// server stops keeping WAL for it. Nothing happens if it is gone.
    pub async fn drop_slot(&self) -> Result<(), ConnectorError> {
        sqlx::query(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1",
        )
        .bind(&self.slot)
        .execute(&self.db.pool)
        .await
        .map_err(|e| self.slot_error(&e))?;
        Ok(())
    }

    /// The slot's name.
    pub fn slot(&self) -> &str {
        &self.slot
    }
}

/// What a replication slot keeps on the server (`pg_replication_slots`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SlotHealth {
    /// The slot's name.
    pub slot: String,
    /// WAL the server keeps for the slot: the current WAL position minus
    /// its `restart_lsn`; `None` once the slot lost its WAL.
    pub retained_bytes: Option<u64>,
    /// How far the last confirmed change (`confirmed_flush_lsn`) is behind
    /// the current WAL position.
    pub lag_bytes: Option<u64>,
    /// `reserved`, `extended`, `unreserved` or `lost` (PostgreSQL 13+).
    pub wal_status: Option<String>,
    /// WAL that may still be written before the slot is at risk of
    /// losing WAL (PostgreSQL 13+, with `max_slot_wal_keep_size` set).
    pub safe_wal_size: Option<i64>,
    /// The server process using the slot right now, if one is.
    pub active_pid: Option<i32>,
    /// Whether the server removed WAL the slot needed (`wal_status = lost`).
    pub lost: bool,
    /// The server's `max_slot_wal_keep_size`, unless unlimited.
    pub max_slot_wal_keep_size: Option<String>,
}

impl SlotHealth {
    /// Its `wal_status`, or why there is none.
    pub fn status(&self) -> &str {
        self.wal_status
            .as_deref()
            .unwrap_or("unknown (before PostgreSQL 13)")
    }
}

/// Whether a server error says a slot's WAL is gone.
fn is_lost_wal(message: &str) -> bool {
    message.contains("has already been removed")
        || message.contains("can no longer get changes from replication slot")
        || message.contains("has been invalidated")
        || message.contains("has not previously reserved WAL")
}

/// How one table's changes decode.
struct TablePlan {
    /// The discovered columns in order, with their catalog types.
    columns: Vec<(String, PgType)>,
    /// Positions of the primary-key columns among them.
    key: Vec<usize>,
}

/// An array value waiting for the server to turn it into JSON.
struct PendingArray {
    /// Index of the change in the result.
    change: usize,
    /// Column index in its row.
    column: usize,
    /// The column's declared type, to cast the text to.
    type_name: String,
    /// The array's text form.
    text: String,
}

fn row_mut(change: &mut SourceChange) -> &mut Row {
    match change {
        SourceChange::Insert(r) | SourceChange::Update(r) | SourceChange::Delete(r) => r,
    }
}

/// A value as `test_decoding` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// `null`.
    Null,
    /// `unchanged-toast-datum`: an unchanged value stored out of line,
    /// which the WAL record does not carry.
    UnchangedToast,
    /// The type's text form, unquoted.
    Text(String),
}

/// One column of a printed tuple.
type Field = (String, Token);

/// What a `table …:` line says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// `INSERT: <tuple>`.
    Insert(Vec<Field>),
    /// `UPDATE: [old-key: <tuple> new-tuple: ]<tuple>`.
    Update {
        old: Option<Vec<Field>>,
        new: Vec<Field>,
    },
    /// `DELETE: <tuple>` (key columns, or all non-null ones under
    /// REPLICA IDENTITY FULL), `None` for `(no-tuple-data)`.
    Delete(Option<Vec<Field>>),
    /// `TRUNCATE: …`.
    Truncate,
}

/// Why a line of `test_decoding` output could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum LineError {
    /// A token the line's grammar needs next.
    #[error("expected {token:?} at byte {at}")]
    Expected { token: &'static str, at: usize },
    /// An empty schema, table or column name.
    #[error("expected a name at byte {0}")]
    NoName(usize),
    /// A quoted name or value without its closing quote.
    #[error("an unterminated {quote} string at byte {at}")]
    Unterminated { quote: char, at: usize },
    /// A column's type name without its closing `]:`.
    #[error("an unterminated type name at byte {0}")]
    UnterminatedType(usize),
    /// A column without its value.
    #[error("a missing value at byte {0}")]
    NoValue(usize),
    /// `INSERT: (no-tuple-data)`.
    #[error("an INSERT without its row")]
    InsertWithoutRow,
    /// `UPDATE: (no-tuple-data)`.
    #[error("an UPDATE without its new row")]
    UpdateWithoutRow,
    /// An operation other than INSERT, UPDATE, DELETE and TRUNCATE.
    #[error("an unknown change at byte {0}")]
    UnknownChange(usize),
    /// Text after the last field.
    #[error("unexpected text at byte {0}")]
    Trailing(usize),
}

/// Why the slot's output could not be turned into changes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ChangeError {
    /// A change line before any `BEGIN`.
    #[error("a change at {} outside a transaction", wal_text(*.0))]
    OutsideTransaction(u64),
    /// A line about one of our tables that does not parse.
    #[error("cannot read change {data:?}: {source}")]
    Unreadable {
        data: String,
        #[source]
        source: LineError,
    },
    /// A change of one of our tables that cannot be replayed.
    #[error("table `{table}`, change at {lsn}: {problem}")]
    Change {
        table: String,
        lsn: Lsn,
        #[source]
        problem: ChangeProblem,
    },
}

/// What is wrong with one change of one of our tables.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
enum ChangeProblem {
    /// A deleted row's old tuple lacks a key column.
    #[error(
        "the deleted row carries no value for key column `{0}`: the table's replica identity must include its primary key (ALTER TABLE … REPLICA IDENTITY DEFAULT)"
    )]
    NoKeyValue(String),
    /// A changed row lacks a column the plan has.
    #[error("the change carries no column `{0}`: the table's columns changed; discover it again")]
    NoColumn(String),
    /// An unchanged TOASTed value with no full old row to take it from.
    #[error(
        "column `{0}` kept a large (TOASTed) value the WAL does not carry, so the update cannot be replayed from the slot: run ALTER TABLE … REPLICA IDENTITY FULL on the source so updates log it, then copy the table again (restart the migration)"
    )]
    Toasted(String),
    /// A column's text that does not decode.
    #[error("column `{name}`: {source}")]
    Column {
        name: String,
        #[source]
        source: DecodeError,
    },
    /// A delete without any old tuple.
    #[error(
        "the delete carries no key (the table has no replica identity): run ALTER TABLE … REPLICA IDENTITY DEFAULT with a primary key, then copy the table again"
    )]
    NoKey,
    /// A TRUNCATE of the table.
    #[error(
        "the table was truncated, which change data capture cannot replay row by row: empty the destination table and copy the source table again (restart the migration, which drops the slot)"
    )]
    Truncated,
}

/// A parsed `table schema.name[, …]: OP: …` line: the tables (more than
/// one only for TRUNCATE) and the change.
fn parse_line(data: &str) -> Result<(Vec<(String, String)>, Line), LineError> {
    let mut p = Parser { s: data, at: 0 };
    p.expect("table ")?;
    let mut tables = Vec::new();
    loop {
        let schema = p.identifier()?;
        p.expect(".")?;
        let table = p.identifier()?;
        tables.push((schema, table));
        if !p.eat(", ") {
            break;
        }
    }
    p.expect(":")?;
    let line = if p.eat(" INSERT:") {
        Line::Insert(p.tuple()?.ok_or(LineError::InsertWithoutRow)?)
    } else if p.eat(" UPDATE:") {
        let old = if p.eat(" old-key:") {
            let old = p.fields()?;
            p.expect(" new-tuple:")?;
            Some(old)
        } else {
            None
        };
        Line::Update {
            old,
            new: p.tuple()?.ok_or(LineError::UpdateWithoutRow)?,
        }
    } else if p.eat(" DELETE:") {
        Line::Delete(p.tuple()?)
    } else if p.eat(" TRUNCATE:") {
        return Ok((tables, Line::Truncate));
    } else {
        return Err(LineError::UnknownChange(p.at));
    };
    if p.at != data.len() {
        return Err(LineError::Trailing(p.at));
    }
    Ok((tables, line))
}

/// A cursor over one line of `test_decoding` output.
struct Parser<'a> {
    s: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.s[self.at..]
    }

    fn eat(&mut self, token: &str) -> bool {
        let found = self.rest().starts_with(token);
        if found {
            self.at += token.len();
        }
        found
    }

    fn expect(&mut self, token: &'static str) -> Result<(), LineError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(LineError::Expected { token, at: self.at })
        }
    }

    /// A quoted (`"a ""b"""`) or plain identifier. Plain ones are what
    /// `quote_identifier` leaves unquoted: lowercase letters, digits, `_`
    /// and `$`, so they end at any other character.
    fn identifier(&mut self) -> Result<String, LineError> {
        if self.eat("\"") {
            return self.quoted('"');
        }
        let len = self
            .rest()
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
            .unwrap_or(self.rest().len());
        if len == 0 {
            return Err(LineError::NoName(self.at));
        }
        let name = self.rest()[..len].to_string();
        self.at += len;
        Ok(name)
    }

    /// The rest of a string opened by `quote`, a doubled quote standing
    /// for one.
    fn quoted(&mut self, quote: char) -> Result<String, LineError> {
        let mut out = String::new();
        loop {
            let rest = self.rest();
            let Some(end) = rest.find(quote) else {
                return Err(LineError::Unterminated { quote, at: self.at });
            };
            out.push_str(&rest[..end]);
            self.at += end + 1;
            if self.rest().starts_with(quote) {
                out.push(quote);
                self.at += 1;
            } else {
                return Ok(out);
            }
        }
    }

    /// ` (no-tuple-data)` or a tuple.
    fn tuple(&mut self) -> Result<Option<Vec<Field>>, LineError> {
        if self.eat(" (no-tuple-data)") {
            return Ok(None);
        }
        self.fields().map(Some)
    }

    /// ` name[type]:value` fields until the end or ` new-tuple:`.
    fn fields(&mut self) -> Result<Vec<Field>, LineError> {
        let mut fields = Vec::new();
        while !self.rest().is_empty() && !self.rest().starts_with(" new-tuple:") {
            self.expect(" ")?;
            let name = self.identifier()?;
            self.expect("[")?;
            self.skip_type()?;
            let value = self.value()?;
            fields.push((name, value));
        }
        Ok(fields)
    }

    /// A type name up to `]:` (`integer[]`, `"My ]: type"`), consumed with
    /// the `]:`.
    fn skip_type(&mut self) -> Result<(), LineError> {
        loop {
            let rest = self.rest();
            if rest.starts_with("]:") {
                self.at += 2;
                return Ok(());
            }
            match rest.chars().next() {
                None => return Err(LineError::UnterminatedType(self.at)),
                Some('"') => {
                    self.at += 1;
                    self.quoted('"')?;
                }
                Some(c) => self.at += c.len_utf8(),
            }
        }
    }

    /// `null`, `unchanged-toast-datum`, `'quoted'`, `B'0101'` (bit
    /// strings) or a bare token (numbers, `true`/`false`).
    fn value(&mut self) -> Result<Token, LineError> {
        if self.eat("'") {
            return self.quoted('\'').map(Token::Text);
        }
        if self.eat("B'") {
            return self.quoted('\'').map(Token::Text);
        }
        let len = self.rest().find(' ').unwrap_or(self.rest().len());
        let start = self.at;
        self.at += len;
        Ok(match &self.s[start..self.at] {
            "null" => Token::Null,
            "unchanged-toast-datum" => Token::UnchangedToast,
            "" => return Err(LineError::NoValue(self.at)),
            other => Token::Text(other.to_string()),
        })
    }
}

/// A change of one of our tables, parsed but not decoded (it may turn out
/// to be applied already once its commit is read).
struct Pending {
    /// 1-based index among this transaction's changes to our tables.
    index: u32,
    table: String,
    kind: PendingKind,
}

enum PendingKind {
    /// A new row.
    Insert(Vec<Field>),
    /// A changed row, with the old tuple when the WAL has one (REPLICA
    /// IDENTITY FULL) to fill unchanged TOAST values from.
    Update(Vec<Field>, Option<Vec<Field>>),
    /// A deleted row's key (or full old row).
    Delete(Option<Vec<Field>>),
    /// The table was truncated.
    Truncate,
}

/// The transaction being read.
struct Txn {
    begin: u64,
    /// Changes up to this index were returned by an earlier call.
    skip_upto: u32,
    index: u32,
    stored: Vec<Pending>,
    /// Whether changes were left out for want of room.
    overflow: bool,
}

/// Turns the slot's output rows into changes, in commit order.
struct Collector<'a> {
    schema: &'a str,
    plans: &'a HashMap<String, TablePlan>,
    after: Option<Lsn>,
    max: usize,
    out: Vec<TableChange>,
    arrays: Vec<PendingArray>,
    txn: Option<Txn>,
    /// The last commit up to which every change to our tables is in `out`
    /// or at or before `after`.
    horizon: Option<u64>,
    /// Whether `out` is complete for this call.
    done: bool,
}

impl<'a> Collector<'a> {
    fn new(
        schema: &'a str,
        plans: &'a HashMap<String, TablePlan>,
        after: Option<Lsn>,
        max: usize,
    ) -> Self {
        Self {
            schema,
            plans,
            after,
            max,
            out: Vec::new(),
            arrays: Vec::new(),
            txn: None,
            horizon: None,
            done: false,
        }
    }

    /// One output row of the slot: its LSN and text.
    fn feed(&mut self, lsn: u64, data: &str) -> Result<(), ChangeError> {
        if data == "BEGIN" || data.starts_with("BEGIN ") {
            let skip_upto = match self.after {
                Some(a) if !a.is_transaction_end() && a.begin == lsn => a.index,
                _ => 0,
            };
            self.txn = Some(Txn {
                begin: lsn,
                skip_upto,
                index: 0,
                stored: Vec::new(),
                overflow: false,
            });
            return Ok(());
        }
        if data == "COMMIT" || data.starts_with("COMMIT ") {
            return self.commit(lsn);
        }
        if !data.starts_with("table ") {
            // Logical messages (pg_logical_emit_message) and the like.
            return Ok(());
        }
        let Some(txn) = self.txn.as_mut() else {
            return Err(ChangeError::OutsideTransaction(lsn));
        };
        let ours = |(schema, table): &(String, String)| {
            schema == self.schema && self.plans.contains_key(table)
        };
        let (tables, line) = match parse_line(data) {
            Ok(parsed) => parsed,
            // A line we cannot read that cannot be about our tables must
            // not stop their stream.
            Err(_) if !self.plans.keys().any(|t| data.contains(t.as_str())) => return Ok(()),
            Err(source) => {
                return Err(ChangeError::Unreadable {
                    data: data.to_string(),
                    source,
                });
            }
        };
        let Some((_, table)) = tables.iter().find(|t| ours(t)) else {
            return Ok(());
        };
        let kinds = match line {
            Line::Insert(new) => vec![PendingKind::Insert(new)],
            Line::Delete(old) => vec![PendingKind::Delete(old)],
            Line::Truncate => vec![PendingKind::Truncate],
            Line::Update { old, new } => {
                let plan = &self.plans[table];
                match &old {
                    Some(old) if key_changed(plan, old, &new) => {
                        vec![
                            PendingKind::Delete(Some(old.clone())),
                            PendingKind::Insert(new),
                        ]
                    }
                    _ => vec![PendingKind::Update(new, old)],
                }
            }
        };
        let room = self.max - self.out.len();
        for kind in kinds {
            txn.index += 1;
            if txn.index <= txn.skip_upto {
                continue;
            }
            if txn.stored.len() < room {
                txn.stored.push(Pending {
                    index: txn.index,
                    table: table.clone(),
                    kind,
                });
            } else {
                txn.overflow = true;
            }
        }
        Ok(())
    }

    /// The end of a transaction that committed at `commit`.
    fn commit(&mut self, commit: u64) -> Result<(), ChangeError> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        let applied = self
            .after
            .is_some_and(|a| commit < a.commit || (commit == a.commit && a.is_transaction_end()));
        if applied || (txn.stored.is_empty() && !txn.overflow) {
            self.horizon = Some(commit);
            return Ok(());
        }
        if txn.overflow && !self.out.is_empty() {
            // It does not fit after what we have: next call.
            self.done = true;
            return Ok(());
        }
        let whole = !txn.overflow;
        let last = txn.stored.len().saturating_sub(1);
        for (i, pending) in txn.stored.into_iter().enumerate() {
            let lsn = if whole && i == last {
                Lsn::transaction_end(commit)
            } else {
                Lsn::within(commit, pending.index, txn.begin)
            };
            self.decode(lsn, pending)?;
        }
        if whole {
            self.horizon = Some(commit);
        }
        if !whole || self.out.len() >= self.max {
            self.done = true;
        }
        Ok(())
    }

    /// Decodes a change into `out`.
    fn decode(&mut self, lsn: Lsn, pending: Pending) -> Result<(), ChangeError> {
        let plan = &self.plans[&pending.table];
        let table = &pending.table;
        let at = |problem: ChangeProblem| ChangeError::Change {
            table: table.clone(),
            lsn,
            problem,
        };
        let change_index = self.out.len();
        let mut arrays = Vec::new();
        let mut row_of = |fields: &[Field],
                          fill: Option<&[Field]>,
                          only_key: bool|
         -> Result<Row, ChangeError> {
            let mut row = vec![Value::Null; plan.columns.len()];
            for (i, (name, pg)) in plan.columns.iter().enumerate() {
                if only_key && !plan.key.contains(&i) {
                    continue;
                }
                let mut token = fields.iter().find(|(n, _)| n == name).map(|(_, t)| t);
                if token == Some(&Token::UnchangedToast) {
                    // Unchanged, so the old tuple's value (REPLICA IDENTITY
                    // FULL logs it in full) is the new one.
                    token = fill
                        .and_then(|old| old.iter().find(|(n, _)| n == name))
                        .map(|(_, t)| t)
                        .or(token);
                }
                let token = match token {
                    Some(t) => t,
                    // A FULL old tuple leaves NULLs out.
                    None if only_key && !plan.key.contains(&i) => &Token::Null,
                    None if only_key => {
                        return Err(at(ChangeProblem::NoKeyValue(name.clone())));
                    }
                    None => {
                        return Err(at(ChangeProblem::NoColumn(name.clone())));
                    }
                };
                row[i] = match token {
                    Token::Null => Value::Null,
                    Token::UnchangedToast => {
                        return Err(at(ChangeProblem::Toasted(name.clone())));
                    }
                    Token::Text(text) => {
                        let how = read_as(pg);
                        if how.select == Select::ArrayJson {
                            arrays.push(PendingArray {
                                change: change_index,
                                column: i,
                                type_name: pg.name.clone(),
                                text: text.clone(),
                            });
                            Value::Null
                        } else {
                            decode_text(text, pg, how).map_err(|source| {
                                at(ChangeProblem::Column {
                                    name: name.clone(),
                                    source,
                                })
                            })?
                        }
                    }
                };
            }
            Ok(row)
        };
        let change = match &pending.kind {
            PendingKind::Insert(new) => SourceChange::Insert(row_of(new, None, false)?),
            PendingKind::Update(new, old) => {
                SourceChange::Update(row_of(new, old.as_deref(), false)?)
            }
            PendingKind::Delete(Some(old)) => SourceChange::Delete(row_of(old, None, true)?),
            PendingKind::Delete(None) => {
                return Err(at(ChangeProblem::NoKey));
            }
            PendingKind::Truncate => {
                return Err(at(ChangeProblem::Truncated));
            }
        };
        self.arrays.extend(arrays);
        self.out.push(TableChange {
            lsn,
            table: pending.table,
            change,
        });
        Ok(())
    }
}

/// Whether an UPDATE moved the row to another primary key.
fn key_changed(plan: &TablePlan, old: &[Field], new: &[Field]) -> bool {
    plan.key.iter().any(|&i| {
        let name = &plan.columns[i].0;
        let get = |fields: &[Field]| {
            fields
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, t)| t.clone())
        };
        // An old tuple without the key column says nothing about it.
        get(old).is_some_and(|o| Some(o) != get(new))
    })
}

/// A value's text form (the type's output function, in this session's
/// settings) as the value the PostgreSQL source reads for the same column.
fn decode_text(text: &str, pg: &PgType, how: ReadAs) -> Result<Value, DecodeError> {
    let bad = |what: &'static str| DecodeError::NotA {
        text: text.to_string(),
        what,
    };
    Ok(match how.column_type {
        ColumnType::Int => Value::Int(text.parse().map_err(|_| bad("whole number"))?),
        ColumnType::Boolean => match text {
            "true" | "t" => Value::Boolean(true),
            "false" | "f" => Value::Boolean(false),
            _ => return Err(bad("boolean")),
        },
        // Shortest exact text (extra_float_digits = 3): parsing it at the
        // column's own width gives back the stored value.
        ColumnType::Float if pg.oid == super::types::oid::FLOAT4 => {
            Value::Float(text.parse::<f32>().map_err(|_| bad("real"))?.into())
        }
        ColumnType::Float => Value::Float(text.parse::<f64>().map_err(|_| bad("float"))?),
        // numeric_out's text is the binary reader's: digits with the
        // display scale, NaN and infinities spelled the same.
        ColumnType::Decimal if is_decimal(text) => Value::Decimal(text.to_string()),
        ColumnType::Decimal => return Err(bad("decimal number")),
        // `inet`'s output leaves out a host's /32 or /128, which the
        // source's `::text` cast shows.
        ColumnType::Text if pg.oid == INET && !text.contains('/') => {
            let bits = if text.contains(':') { 128 } else { 32 };
            Value::Text(format!("{text}/{bits}"))
        }
        ColumnType::Text => Value::Text(text.to_string()),
        ColumnType::Json => Value::Json(text.to_string()),
        ColumnType::Bytes => {
            let hex = text
                .strip_prefix("\\x")
                .ok_or_else(|| bad("hex bytea (bytea_output = hex)"))?;
            Value::Bytes(hex::decode(hex).map_err(|_| bad("hex bytea"))?)
        }
        ColumnType::Uuid => Value::Uuid(parse_uuid(text).ok_or_else(|| bad("uuid"))?),
        // `infinity` and years the row model has no room for arrive as
        // their text, as a full read gives them: the mapping refuses them
        // by key and column under the table's policy.
        ColumnType::Date if beyond_dates(text) => Value::Text(text.to_string()),
        ColumnType::Timestamp | ColumnType::Timestamptz if beyond_dates(text) => {
            Value::Text(text.to_string())
        }
        ColumnType::Date => Value::Date(parse_date(text)?),
        ColumnType::Time => {
            Value::Time(u64::try_from(parse_time(text)?).map_err(|_| bad("time of day"))?)
        }
        ColumnType::Timestamp => Value::Timestamp(parse_timestamp(text, false)?),
        ColumnType::Timestamptz => Value::Timestamptz(parse_timestamp(text, true)?),
    })
}

/// Whether `text` is what numeric_out prints: `-12.50`, `NaN`, `Infinity`.
fn is_decimal(text: &str) -> bool {
    if matches!(text, "NaN" | "Infinity" | "-Infinity") {
        return true;
    }
    let digits = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
    let all = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    all(int) && all(frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (any year).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Whether a date or timestamp as the server prints it lies where the row
/// model has no value for it: infinity, or a year past 262143 (BC too).
fn beyond_dates(text: &str) -> bool {
    if text.ends_with("infinity") {
        return true;
    }
    let year = text.split('-').next().unwrap_or("");
    year.len() > 5 || year.parse::<u32>().is_ok_and(|y| y > 262_143)
}

/// `2024-02-29`, `10000-01-01`, `0044-03-15 BC` (ISO DateStyle) as days
/// since 1970; infinity is refused as the source refuses it.
fn parse_date(text: &str) -> Result<i32, DecodeError> {
    if text.ends_with("infinity") {
        return Err(DecodeError::Infinite("date"));
    }
    let (date, bc) = match text.strip_suffix(" BC") {
        Some(d) => (d, true),
        None => (text, false),
    };
    let days = date_days(date, bc).ok_or_else(|| DecodeError::NotA {
        text: text.to_string(),
        what: "date",
    })?;
    i32::try_from(days).map_err(|_| DecodeError::DateRange(text.to_string()))
}

fn date_days(date: &str, bc: bool) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let year: i64 = parts.next()?.parse().ok()?;
    let month: i64 = parts.next()?.parse().ok()?;
    let day: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || year < 1 {
        return None;
    }
    // Year 1 BC is year 0 of the proleptic calendar.
    let year = if bc { 1 - year } else { year };
    Some(days_from_civil(year, month, day))
}

/// `13:45:00`, `23:59:59.999999`, `24:00:00` as µs since midnight.
fn parse_time(text: &str) -> Result<i64, DecodeError> {
    let bad = || DecodeError::NotA {
        text: text.to_string(),
        what: "time of day",
    };
    let mut parts = text.splitn(3, ':');
    let h: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let m: i64 = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
    let s = parts.next().ok_or_else(bad)?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let secs: i64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 6
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || !(0..=24).contains(&h)
        || !(0..60).contains(&m)
        || !(0..=60).contains(&secs)
    {
        return Err(bad());
    }
    let micros: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().map_err(|_| bad())?
    };
    Ok(((h * 60 + m) * 60 + secs) * 1_000_000 + micros)
}

/// `2024-02-29 13:45:00.123456`, with `+00`/`+05:30`/`-03:00:00` for
/// timestamptz and ` BC` for dates before year 1, as µs since 1970 (UTC
/// for timestamptz); infinity is refused as the source refuses it.
fn parse_timestamp(text: &str, zoned: bool) -> Result<i64, DecodeError> {
    let bad = || DecodeError::NotA {
        text: text.to_string(),
        what: "timestamp",
    };
    if text.ends_with("infinity") {
        return Err(DecodeError::Infinite("timestamp"));
    }
    let (body, bc) = match text.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (text, false),
    };
    let (date, time) = body.split_once(' ').ok_or_else(bad)?;
    let (time, offset) = if zoned {
        let at = time.rfind(['+', '-']).ok_or_else(bad)?;
        let (t, zone) = time.split_at(at);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let mut secs = 0i64;
        for (i, part) in zone[1..].split(':').enumerate() {
            let n: i64 = part.parse().map_err(|_| bad())?;
            secs += n * [3600, 60, 1].get(i).copied().ok_or_else(bad)?;
        }
        (t, sign * secs * 1_000_000)
    } else {
        (time, 0)
    };
    let days = date_days(date, bc).ok_or_else(bad)?;
    let micros = days
        .checked_mul(MICROS_PER_DAY)
        .and_then(|d| d.checked_add(parse_time(time).ok()?))
        .and_then(|t| t.checked_sub(offset))
        .ok_or_else(|| DecodeError::TimestampRange(text.to_string()))?;
    Ok(micros)
}

#[cfg(test)]
mod tests {
    use super::super::types::oid;
    use super::*;

    fn pg(oid: u32, name: &str) -> PgType {
        PgType {
            oid,
            typtype: 'b',
            category: if name.ends_with("[]") { 'A' } else { 'X' },
            elem: 0,
            typmod: -1,
            name: name.into(),
        }
    }

    fn text(t: &str) -> Token {
        Token::Text(t.into())
    }

    #[test]
    fn lines_parse_with_quoting_nulls_and_toast() {
        let (tables, line) = parse_line(
            "table public.t: INSERT: id[integer]:1 \"Odd \"\"col\"\"\"[text]:'it''s a\nline' n[numeric]:-1.50 \
             arr[integer[]]:'{1,NULL}' b[bit]:B'0101' nothing[text]:null big[text]:unchanged-toast-datum \
             tz[timestamp with time zone]:'2024-02-29 11:45:00.654321+00'",
        )
        .unwrap();
        assert_eq!(tables, vec![("public".into(), "t".into())]);
        assert_eq!(
            line,
            Line::Insert(vec![
                ("id".into(), text("1")),
                ("Odd \"col\"".into(), text("it's a\nline")),
                ("n".into(), text("-1.50")),
                ("arr".into(), text("{1,NULL}")),
                ("b".into(), text("0101")),
                ("nothing".into(), Token::Null),
                ("big".into(), Token::UnchangedToast),
                ("tz".into(), text("2024-02-29 11:45:00.654321+00")),
            ])
        );
        let (tables, line) = parse_line(
            "table \"My Schema\".\"a.b: c\": UPDATE: old-key: id[integer]:1 new-tuple: id[integer]:2 v[\"My ]: type\"]:'x'",
        )
        .unwrap();
        assert_eq!(tables, vec![("My Schema".into(), "a.b: c".into())]);
        assert_eq!(
            line,
            Line::Update {
                old: Some(vec![("id".into(), text("1"))]),
                new: vec![("id".into(), text("2")), ("v".into(), text("x"))],
            }
        );
        assert_eq!(
            parse_line("table public.t: DELETE: (no-tuple-data)")
                .unwrap()
                .1,
            Line::Delete(None)
        );
        assert_eq!(
            parse_line("table public.a, public.b: TRUNCATE: restart_seqs").unwrap(),
            (
                vec![("public".into(), "a".into()), ("public".into(), "b".into())],
                Line::Truncate
            )
        );
        assert!(parse_line("table public.t: INSERT: id[integer]:'open").is_err());
        assert!(parse_line("table public.t: MERGE: x").is_err());
    }

    #[test]
    fn values_decode_as_the_binary_reader_does() {
        let d = |t: &str, p: PgType| decode_text(t, &p, read_as(&p));
        assert_eq!(
            d("-9223372036854775808", pg(oid::INT8, "bigint")),
            Ok(Value::Int(i64::MIN))
        );
        assert_eq!(d("t", pg(oid::BOOL, "boolean")), Ok(Value::Boolean(true)));
        assert_eq!(d("3.25", pg(oid::FLOAT4, "real")), Ok(Value::Float(3.25)));
        assert_eq!(
            d("0.1", pg(oid::FLOAT4, "real")),
            Ok(Value::Float(f64::from(0.1f32))),
            "float4 widens exactly, like the binary reader"
        );
        assert!(
            matches!(d("NaN", pg(oid::FLOAT8, "double precision")), Ok(Value::Float(f)) if f.is_nan())
        );
        assert_eq!(
            d("-Infinity", pg(oid::FLOAT8, "double precision")),
            Ok(Value::Float(f64::NEG_INFINITY))
        );
        assert_eq!(
            d(
                "12345678901234567890.1234500000",
                pg(oid::NUMERIC, "numeric")
            ),
            Ok(Value::Decimal("12345678901234567890.1234500000".into()))
        );
        assert!(d("1e5", pg(oid::NUMERIC, "numeric")).is_err());
        assert_eq!(
            d("\\x00ff", pg(oid::BYTEA, "bytea")),
            Ok(Value::Bytes(vec![0, 255]))
        );
        assert_eq!(d("1970-01-02", pg(oid::DATE, "date")), Ok(Value::Date(1)));
        assert_eq!(
            d("0001-01-01 BC", pg(oid::DATE, "date")),
            Ok(Value::Date(-719_528))
        );
        assert_eq!(
            d("infinity", pg(oid::DATE, "date")),
            Ok(Value::Text("infinity".into())),
            "arrives as text, for the mapping to refuse by key"
        );
        assert_eq!(
            d(
                "294276-12-31 23:59:59",
                pg(oid::TIMESTAMP, "timestamp without time zone")
            ),
            Ok(Value::Text("294276-12-31 23:59:59".into()))
        );
        assert_eq!(
            d("24:00:00", pg(oid::TIME, "time without time zone")),
            Ok(Value::Time(86_400_000_000))
        );
        assert_eq!(
            d("00:00:00.5", pg(oid::TIME, "time without time zone")),
            Ok(Value::Time(500_000))
        );
        assert_eq!(
            d(
                "1969-12-31 23:59:59.999999",
                pg(oid::TIMESTAMP, "timestamp without time zone")
            ),
            Ok(Value::Timestamp(-1))
        );
        assert_eq!(
            d(
                "2024-02-29 13:45:00.654321+02",
                pg(oid::TIMESTAMPTZ, "timestamp with time zone")
            ),
            Ok(Value::Timestamptz(1_709_207_100_654_321))
        );
        assert_eq!(
            d(
                "1970-01-01 05:30:00+05:30",
                pg(oid::TIMESTAMPTZ, "timestamp with time zone")
            ),
            Ok(Value::Timestamptz(0))
        );
        assert_eq!(
            d(
                "123e4567-e89b-12d3-a456-426614174000",
                pg(oid::UUID, "uuid")
            ),
            Ok(Value::Uuid(
                parse_uuid("123e4567-e89b-12d3-a456-426614174000").unwrap()
            ))
        );
        assert_eq!(
            d("10.0.0.1", pg(INET, "inet")),
            Ok(Value::Text("10.0.0.1/32".into()))
        );
        assert_eq!(
            d("::1", pg(INET, "inet")),
            Ok(Value::Text("::1/128".into()))
        );
        assert_eq!(
            d(
                "happy",
                PgType {
                    typtype: 'e',
                    ..pg(90_000, "mood")
                }
            ),
            Ok(Value::Text("happy".into()))
        );
    }

    #[test]
    fn the_servers_lost_wal_errors_are_recognized() {
        for message in [
            "requested WAL segment 000000010000000000000003 has already been removed",
            "can no longer get changes from replication slot \"credvault_m\"",
            "cannot advance replication slot that has not previously reserved WAL",
        ] {
            assert!(super::is_lost_wal(message), "{message}");
        }
        assert!(!super::is_lost_wal(
            "replication slot \"x\" is active for PID 7"
        ));
    }

    #[test]
    fn positions_print_parse_and_order() {
        let end = Lsn::transaction_end(0x1_16B3_748A);
        assert_eq!(end.to_string(), "1/16B3748A");
        assert_eq!("1/16B3748A".parse(), Ok(end));
        let inside = Lsn::within(0x16B3748, 17, 0x16A0000);
        assert_eq!(inside.to_string(), "0/16B3748#17@0/16A0000");
        assert_eq!(inside.to_string().parse(), Ok(inside));
        assert!(inside < Lsn::transaction_end(0x16B3748));
        assert!(Lsn::transaction_end(0x16B3747) < inside);
        assert!("0/1#0@0/0".parse::<Lsn>().is_err());
        assert!("zz".parse::<Lsn>().is_err());
    }

    fn plans() -> HashMap<String, TablePlan> {
        let plan = TablePlan {
            columns: vec![
                ("id".into(), pg(oid::INT4, "integer")),
                ("v".into(), pg(oid::TEXT, "text")),
            ],
            key: vec![0],
        };
        HashMap::from([("t".to_string(), plan)])
    }

    /// Feeds `(lsn, line)` rows; the changes as `lsn table kind id`.
    fn collect(rows: &[(u64, &str)], after: Option<Lsn>, max: usize) -> (Vec<String>, bool) {
        let plans = plans();
        let mut c = Collector::new("public", &plans, after, max);
        for (lsn, data) in rows {
            c.feed(*lsn, data).unwrap();
            if c.done {
                break;
            }
        }
        let out = c
            .out
            .iter()
            .map(|ch| {
                let (kind, row) = match &ch.change {
                    SourceChange::Insert(r) => ("I", r),
                    SourceChange::Update(r) => ("U", r),
                    SourceChange::Delete(r) => ("D", r),
                };
                format!(
                    "{} {kind} {:?}",
                    ch.lsn,
                    row.iter()
                        .map(crate::model::value::to_text)
                        .collect::<Vec<_>>()
                )
            })
            .collect();
        (out, c.done)
    }

    const STREAM: &[(u64, &str)] = &[
        (0x10, "BEGIN"),
        (0x11, "table public.t: INSERT: id[integer]:1 v[text]:'a'"),
        (0x12, "table public.other: INSERT: id[integer]:1"),
        (0x13, "table public.t: INSERT: id[integer]:2 v[text]:null"),
        (0x20, "COMMIT"),
        (0x21, "BEGIN"),
        (
            0x22,
            "table public.t: UPDATE: old-key: id[integer]:2 new-tuple: id[integer]:3 v[text]:'b'",
        ),
        (0x23, "table public.t: DELETE: id[integer]:1"),
        (0x24, "table public.t: UPDATE: id[integer]:3 v[text]:'c'"),
        (0x30, "COMMIT"),
    ];

    #[test]
    fn whole_transactions_in_commit_order_with_key_changes_split() {
        let (out, _) = collect(STREAM, None, 100);
        assert_eq!(
            out,
            vec![
                "0/20#1@0/10 I [Some(\"1\"), Some(\"a\")]",
                "0/20 I [Some(\"2\"), None]",
                "0/30#1@0/21 D [Some(\"2\"), None]",
                "0/30#2@0/21 I [Some(\"3\"), Some(\"b\")]",
                "0/30#3@0/21 D [Some(\"1\"), None]",
                "0/30 U [Some(\"3\"), Some(\"c\")]",
            ]
        );
        // After the first transaction: only the second.
        let (out, _) = collect(STREAM, Some(Lsn::transaction_end(0x20)), 100);
        assert_eq!(out.len(), 4);
        assert!(out[0].starts_with("0/30#1@0/21 D"));
    }

    #[test]
    fn a_transaction_that_does_not_fit_waits_and_a_big_one_is_split() {
        // Room for 3: the first transaction (2) fits, the second (4) waits.
        let (out, done) = collect(STREAM, None, 3);
        assert_eq!(out.len(), 2);
        assert!(done);
        // Room for 3 after the first: the second is split 3 + 1.
        let (out, _) = collect(STREAM, Some(Lsn::transaction_end(0x20)), 3);
        assert_eq!(out.len(), 3);
        assert!(out[2].starts_with("0/30#3@0/21 D"), "{out:?}");
        let resume: Lsn = "0/30#3@0/21".parse().unwrap();
        let (out, _) = collect(STREAM, Some(resume), 3);
        assert_eq!(out, vec!["0/30 U [Some(\"3\"), Some(\"c\")]".to_string()]);
    }

    #[test]
    fn unchanged_toast_is_filled_from_a_full_old_row_or_refused() {
        let plans = plans();
        let mut c = Collector::new("public", &plans, None, 10);
        c.feed(1, "BEGIN").unwrap();
        c.feed(
            2,
            "table public.t: UPDATE: old-key: id[integer]:1 v[text]:'long' new-tuple: id[integer]:1 v[text]:unchanged-toast-datum",
        )
        .unwrap();
        c.feed(3, "COMMIT").unwrap();
        assert_eq!(
            c.out[0].change,
            SourceChange::Update(vec![Value::Int(1), Value::Text("long".into())])
        );
        let mut c = Collector::new("public", &plans, None, 10);
        c.feed(1, "BEGIN").unwrap();
        c.feed(
            2,
            "table public.t: UPDATE: id[integer]:1 v[text]:unchanged-toast-datum",
        )
        .unwrap();
        let err = c.feed(3, "COMMIT").unwrap_err().to_string();
        assert!(
            err.contains("REPLICA IDENTITY FULL") && err.contains("column `v`"),
            "{err}"
        );
    }
}
