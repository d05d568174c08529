//! How far an incremental sync may read a PostgreSQL table: up to a cursor
//! value below which every row is committed and no open transaction can
//! still add one.
//!
//! A row's `updated_at = now()` is its transaction's start, and it becomes
//! visible only at commit, possibly after rows stamped later were synced.
//! So the bound is never the plain maximum while other transactions are
//! open:
//!
//! - time cursors (`timestamptz`, `timestamp`, `date`): the largest value
//!   below the start of the oldest transaction open in the database
//!   (`pg_stat_activity.xact_start`). Whatever an open or later
//!   transaction writes from the server's clock (`now()`,
//!   `clock_timestamp()`) is at or after its start, so it lands above.
//! - any other cursor (an id from a sequence): the maximum once every
//!   transaction open when it was read has ended, waited for a moment; a
//!   transaction still open then holds the sync back entirely.

use std::collections::HashSet;

use super::types::oid;
use super::{CatalogTable, Db, ident};
use crate::drivers::{Bound, ConnectorError, settled_bound};

/// Other sessions of this database (they are the only ones that can write
/// its tables), leaving out autovacuum and WAL senders (a logical one reads
/// the catalog in transactions), which write no rows. `hidden`: the session
/// belongs to another user and this one may not see it.
const SESSIONS: &str =
    "SELECT pid, xact_start::text AS since, query = '<insufficient privilege>' AS hidden
    FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid()
      AND coalesce(backend_type, '') NOT IN ('autovacuum worker', 'walsender')";

/// The bound of `column` in `table` (see the module).
pub(super) async fn bound(
    db: &Db,
    table: &CatalogTable,
    column: &str,
) -> Result<Bound, ConnectorError> {
    let Some(found) = table.columns.iter().find(|c| c.name == column) else {
        return Err(db.fail(format!(
            "table `{}` has no cursor column `{column}`; check `cursor` in the migration file",
            table.name
        )));
    };
    match found.pg.oid {
        oid::TIMESTAMPTZ | oid::TIMESTAMP | oid::DATE => {
            by_time(db, table, column, &found.pg.name).await
        }
        _ => settled(db, table, column).await,
    }
}

/// The largest value below the oldest open transaction's start, cast to
/// the column's type (a `date` cursor stops at the day before it).
async fn by_time(
    db: &Db,
    table: &CatalogTable,
    column: &str,
    pg: &str,
) -> Result<Bound, ConnectorError> {
    let (c, t) = (ident(column), db.qualified(&table.name));
    let sql = format!(
        "WITH open AS ({SESSIONS}),
         oldest AS (SELECT min(since::timestamptz) AS at, count(*) FILTER (WHERE hidden) AS hidden FROM open)
         SELECT (SELECT max({c})::text FROM {t} WHERE {c} < least(now(), oldest.at)::{pg}),
                (SELECT max({c})::text FROM {t}),
                oldest.at::text, oldest.hidden
         FROM oldest"
    );
    let (to, max, oldest, hidden): (Option<String>, Option<String>, Option<String>, i64) =
        sqlx::query_as(&sql)
            .fetch_one(&db.pool)
            .await
            .map_err(|e| db.table_error(&table.name, &e))?;
    if hidden > 0 {
        return Err(hidden_sessions(db, table, column, hidden.unsigned_abs()));
    }
    let held_back_since = oldest.filter(|_| max != to);
    Ok(Bound {
        to,
        held_back_since,
    })
}

/// The maximum, once every transaction open when it was read has ended.
async fn settled(db: &Db, table: &CatalogTable, column: &str) -> Result<Bound, ConnectorError> {
    let sql = format!(
        "SELECT max({})::text FROM {}",
        ident(column),
        db.qualified(&table.name)
    );
    let max: Option<String> = sqlx::query_scalar(&sql)
        .fetch_one(&db.pool)
        .await
        .map_err(|e| db.table_error(&table.name, &e))?;
    // Sessions after the maximum: a transaction holding a value below it
    // took that value before the maximum was read, so it is either
    // committed by now or among these.
    let open = open_transactions(db, table, column).await?;
    settled_bound(open, max, || open_transactions(db, table, column)).await
}

/// Other sessions' open transactions: (pid, start).
async fn open_transactions(
    db: &Db,
    table: &CatalogTable,
    column: &str,
) -> Result<HashSet<(i32, String)>, ConnectorError> {
    let rows: Vec<(i32, Option<String>, bool)> = sqlx::query_as(SESSIONS)
        .fetch_all(&db.pool)
        .await
        .map_err(|e| db.table_error(&table.name, &e))?;
    let hidden = rows.iter().filter(|r| r.2).count();
    if hidden > 0 {
        return Err(hidden_sessions(db, table, column, hidden as u64));
    }
    Ok(rows
        .into_iter()
        .filter_map(|(pid, since, _)| Some((pid, since?)))
        .collect())
}

/// Without seeing every session's transaction the bound could pass a row
/// still to be committed, so the sync refuses rather than lose it.
fn hidden_sessions(db: &Db, table: &CatalogTable, column: &str, n: u64) -> ConnectorError {
    db.fail(format!(
        "table `{}`: an incremental sync by `{column}` must see when every open transaction in the database began (or it could skip rows committed late), and {n} sessions of other users are hidden from `{user}`; run `GRANT pg_read_all_stats TO {user}`, or sync this table in full or by cdc",
        table.name,
        user = ident(&db.ep.user)
    ))
}
