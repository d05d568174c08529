//! How far an incremental sync may read a MariaDB/MySQL table: up to a
//! cursor value below which every row is committed and no open
//! transaction can still add one.
//!
//! A row's `updated_at = NOW()` is its statement's start, and it becomes
//! visible only at commit, possibly after rows stamped later were synced.
//! So the bound is never the plain maximum while other transactions are
//! open:
//!
//! - time cursors (`timestamp`, `datetime`, `date`): the largest value
//!   below the oldest of: the start of every open InnoDB transaction
//!   (`information_schema.INNODB_TRX.trx_started`, whole seconds, so one
//!   second earlier) and of every statement running
//!   (`PROCESSLIST.TIME`, one that has not reached InnoDB yet), and a
//!   second before now (`INNODB_TRX` is a copy up to 0.1 s old). Whatever
//!   an open or later statement writes from the server's clock is at or
//!   after these. `datetime` values are taken to be in the server's time zone
//!   (`@@global.time_zone`).
//! - any other cursor (an `AUTO_INCREMENT` id): the maximum once every
//!   InnoDB transaction open when it was read has ended, waited for a
//!   moment; a transaction still open then holds the sync back entirely.
//!
//! Both need the `PROCESS` privilege (to see other users' transactions).

use std::collections::HashSet;
use std::time::Duration;

use super::{Server, ident};
use crate::drivers::{Bound, ConnectorError, settled_bound};

/// Stands for "no open transaction" (Unix seconds far in the future).
const NEVER: &str = "1000000000000.000000";

/// Threads whose command never writes rows (idle, replication senders,
/// server daemons) and so cannot hold the bound back.
const IDLE: &str = "('Sleep', 'Daemon', 'Binlog Dump', 'Binlog Dump GTID', 'Slave_IO')";

/// The bound of `column` (of type `data_type`) in `table` (see the
/// module).
pub(super) async fn bound(
    server: &Server,
    table: &str,
    column: &str,
    data_type: &str,
) -> Result<Bound, ConnectorError> {
    match data_type.to_ascii_lowercase().as_str() {
        "timestamp" => by_time(server, table, column, "FROM_UNIXTIME(@h)").await,
        "datetime" => by_time(server, table, column, LOCAL).await,
        "date" => by_time(server, table, column, &format!("DATE({LOCAL})")).await,
        _ => settled(server, table, column).await,
    }
}

/// The horizon (`@h`, Unix seconds) in the server's own time zone, where
/// `NOW()` stamps a `datetime` of a session that did not change it.
const LOCAL: &str = "CONVERT_TZ(FROM_UNIXTIME(@h), @@session.time_zone, @@global.time_zone)";

/// The largest value below the oldest open transaction or statement,
/// `horizon` being that moment as the column's type has it.
async fn by_time(
    server: &Server,
    table: &str,
    column: &str,
    horizon: &str,
) -> Result<Bound, ConnectorError> {
    let (c, t) = (ident(column), ident(table));
    // `@o`: the oldest open transaction's or running statement's start,
    // less a second (`trx_started` has whole seconds, in the server's
    // system time zone; the connector's sessions are in UTC). `@h`: the
    // horizon, also a second before now, since `INNODB_TRX` is a copy the
    // server refreshes at most every 0.1 s, and a transaction begun since
    // may be missing from it.
    let oldest = format!(
        "SELECT LEAST(
             COALESCE((SELECT UNIX_TIMESTAMP(CONVERT_TZ(MIN(trx_started), 'SYSTEM', @@session.time_zone)) - 1
                       FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id <> CONNECTION_ID()), {NEVER}),
             COALESCE((SELECT UNIX_TIMESTAMP(NOW(6)) - MAX(TIME) - 1
                       FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND NOT IN {IDLE}), {NEVER})
         ) INTO @o"
    );
    let bound = format!(
        "SELECT CAST((SELECT MAX({c}) FROM {t} WHERE {c} < {horizon}) AS CHAR),
                CAST((SELECT MAX({c}) FROM {t}) AS CHAR),
                IF(@o < {NEVER}, CAST(CONCAT(FROM_UNIXTIME(@o + 1, '%Y-%m-%d %H:%i:%s'), ' UTC') AS CHAR), NULL)"
    );
    let mut conn = server
        .pool
        .acquire()
        .await
        .map_err(|e| refused(server, table, e))?;
    for sql in [
        oldest.as_str(),
        "SET @h = LEAST(UNIX_TIMESTAMP(NOW(6)) - 1, @o)",
    ] {
        sqlx::query(sql)
            .execute(&mut *conn)
            .await
            .map_err(|e| refused(server, table, e))?;
    }
    let (to, max, oldest): (Option<String>, Option<String>, Option<String>) =
        sqlx::query_as(&bound)
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| refused(server, table, e))?;
    let held_back_since = oldest.filter(|_| max != to);
    Ok(Bound {
        to,
        held_back_since,
    })
}

/// The maximum, once every InnoDB transaction open when it was read has
/// ended.
async fn settled(server: &Server, table: &str, column: &str) -> Result<Bound, ConnectorError> {
    let sql = format!(
        "SELECT CAST(MAX({}) AS CHAR) FROM {}",
        ident(column),
        ident(table)
    );
    let max: Option<String> = sqlx::query_scalar(&sql)
        .fetch_one(&server.pool)
        .await
        .map_err(|e| server.error(e))?;
    // Transactions after the maximum: one holding an id below it took the
    // id before the maximum was read, so it is committed or among these
    // (looked at once `INNODB_TRX`, a copy up to 0.1 s old, is newer).
    tokio::time::sleep(Duration::from_millis(150)).await;
    let open = open_transactions(server, table).await?;
    settled_bound(open, max, || open_transactions(server, table)).await
}

/// Other threads' open InnoDB transactions: (thread, start).
async fn open_transactions(
    server: &Server,
    table: &str,
) -> Result<HashSet<(u64, String)>, ConnectorError> {
    let rows: Vec<(u64, Option<String>)> = sqlx::query_as(
        "SELECT trx_mysql_thread_id, CAST(trx_started AS CHAR) FROM information_schema.INNODB_TRX
         WHERE trx_mysql_thread_id <> CONNECTION_ID()",
    )
    .fetch_all(&server.pool)
    .await
    .map_err(|e| refused(server, table, e))?;
    Ok(rows
        .into_iter()
        .filter_map(|(thread, since)| Some((thread, since?)))
        .collect())
}

/// A failed look at the open transactions, naming the privilege it needs.
fn refused(server: &Server, table: &str, err: sqlx::Error) -> ConnectorError {
    let mut e = server.error(err);
    e.message = format!(
        "table `{table}`: an incremental sync must see every open transaction (or it could skip rows committed late), which needs the PROCESS privilege (`GRANT PROCESS ON *.* TO {}`): {}",
        server.ep.user, e.message
    );
    e
}
