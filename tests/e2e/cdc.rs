//! Change data capture from PostgreSQL, through the library API
//! (`credvault::connectors::PgChanges`), against a throwaway server with
//! `wal_level = logical`, and against the shared server (`replica`) for the
//! error that says what to set.

use std::path::Path;

use credvault::config::{Endpoint, ServerEndpoint, TlsMode};
use credvault::connectors::{Lsn, PgChanges, SourceChange, TableChange, open_reader};
use credvault::value::{Row, TableInfo};
use tokio::sync::mpsc;

use super::postgres::ALL_TYPES;
use super::servers::{LogicalPg, Pg, block_on};

/// Runs statements on the throwaway server (inside the test's runtime,
/// where the blocking [`Pg`] helper cannot run).
async fn exec(port: u16, sql: &str) {
    let mut conn = connect(port).await;
    sqlx::raw_sql(sql)
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\n in: {sql}"));
}

/// The first value of a query, as text.
async fn one(port: u16, sql: &str) -> Option<String> {
    let mut conn = connect(port).await;
    sqlx::query_scalar::<_, Option<String>>(sql)
        .fetch_one(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{e}\n in: {sql}"))
}

async fn connect(port: u16) -> sqlx::PgConnection {
    use sqlx::Connection;
    let options = sqlx::postgres::PgConnectOptions::new_without_pgpass()
        .host("127.0.0.1")
        .port(port)
        .username("postgres")
        .database("postgres");
    sqlx::PgConnection::connect_with(&options)
        .await
        .expect("the throwaway server")
}

fn endpoint(port: u16, database: &str, user: &str) -> ServerEndpoint {
    ServerEndpoint {
        host: "127.0.0.1".into(),
        port: Some(port),
        database: database.into(),
        user: user.into(),
        password_env: None,
        password_file: None,
        password: None,
        schema: None,
        tls: TlsMode::Disable,
    }
}

/// The tables as the PostgreSQL source discovers them, and every row of
/// `table` as a normal read returns it (in key order).
async fn discover_and_read(ep: &ServerEndpoint, table: &str) -> (Vec<TableInfo>, Vec<Row>) {
    let source = open_reader(&Endpoint::Postgres(ep.clone()), Path::new("."))
        .await
        .expect("source");
    let tables = source.discover().await.expect("discover");
    let info = tables
        .iter()
        .find(|t| t.name == table)
        .expect("table")
        .clone();
    let (tx, mut rx) = mpsc::channel(4);
    let request = credvault::connectors::ReadRequest {
        any_order: false,
        ..credvault::connectors::ReadRequest::whole(&info, 100)
    };
    let read = source.read(request, tx);
    let collect = async {
        let mut rows = Vec::new();
        while let Some(batch) = rx.recv().await {
            rows.extend(batch.expect("a batch").rows);
        }
        rows
    };
    let ((), rows) = tokio::join!(read, collect);
    (tables, rows)
}

fn pick(tables: &[TableInfo], names: &[&str]) -> Vec<TableInfo> {
    names
        .iter()
        .map(|n| tables.iter().find(|t| t.name == *n).expect("table").clone())
        .collect()
}

/// `table kind row` with values in their text form, for comparisons.
fn show(changes: &[TableChange]) -> Vec<String> {
    changes
        .iter()
        .map(|c| {
            let (kind, row) = match &c.change {
                SourceChange::Insert(r) => ("insert", r),
                SourceChange::Update(r) => ("update", r),
                SourceChange::Delete(r) => ("delete", r),
            };
            let values: Vec<String> = row
                .iter()
                .map(|v| credvault::value::to_text(v).unwrap_or_else(|| "NULL".into()))
                .collect();
            format!("{} {kind} {}", c.table, values.join(","))
        })
        .collect()
}

#[test]
fn committed_changes_arrive_in_order_with_the_sources_values_exactly_once() {
    let server = LogicalPg::start();
    let port = server.port;
    let ep = endpoint(server.port, "postgres", "postgres");
    block_on(async {
        let cdc = PgChanges::open(&ep, Path::new("."), "cv_sync")
            .await
            .expect("open");
        assert!(cdc.ensure_slot().await.expect("a slot"), "created");
        assert!(!cdc.ensure_slot().await.expect("the slot"), "already there");

        // Every type, inserted in one transaction after the slot exists.
        exec(port, &ALL_TYPES.replace("{s}", "public")).await;
        for sql in [
            "CREATE TABLE people (id int PRIMARY KEY, name text); CREATE TABLE nokey (a int)",
            "INSERT INTO people VALUES (1, 'ann'), (2, 'bob'), (3, 'it''s \"cy\"'); INSERT INTO nokey VALUES (1)",
            "BEGIN; UPDATE people SET name = 'bobby' WHERE id = 2; DELETE FROM people WHERE id = 3; \
             UPDATE nokey SET a = 2; COMMIT",
            "BEGIN; INSERT INTO people VALUES (99, 'never'); ROLLBACK",
            "UPDATE people SET id = 20, name = NULL WHERE id = 2",
        ] {
            // One transaction each.
            exec(port, sql).await;
        }
        let (tables, all_types_rows) = discover_and_read(&ep, "all_types").await;
        let ours = pick(&tables, &["all_types", "people"]);

        let changes = cdc.changes(&ours, None, 100).await.expect("changes");
        // The inserts of every type equal a normal read of the table.
        let inserted: Vec<String> = changes[..4]
            .iter()
            .map(|c| match &c.change {
                SourceChange::Insert(r) => format!("{r:?}"),
                other => panic!("expected an insert, got {other:?}"),
            })
            .collect();
        let read: Vec<String> = all_types_rows.iter().map(|r| format!("{r:?}")).collect();
        assert_eq!(inserted, read, "CDC values equal the source's");
        assert_eq!(
            show(&changes[4..]),
            vec![
                "people insert 1,ann",
                "people insert 2,bob",
                "people insert 3,it's \"cy\"",
                "people update 2,bobby",
                "people delete 3,NULL",
                // A changed key: the old row goes, the new one comes.
                "people delete 2,NULL",
                "people insert 20,NULL",
            ],
            "commit order, no rolled-back insert, no other table"
        );
        let lsns: Vec<Lsn> = changes.iter().map(|c| c.lsn).collect();
        assert!(lsns.windows(2).all(|w| w[0] < w[1]), "{lsns:?}");
        let (people_txn, update_txn) = (changes[6].lsn, changes[8].lsn);
        assert!(
            people_txn.is_transaction_end() && update_txn.is_transaction_end(),
            "{lsns:?} {:?}",
            show(&changes)
        );
        assert_eq!(
            people_txn.to_string().parse::<Lsn>().expect("parses"),
            people_txn
        );

        // Peeking consumes nothing; `after` skips what was applied.
        assert_eq!(
            cdc.changes(&ours, None, 100).await.expect("again").len(),
            11
        );
        let rest = cdc
            .changes(&ours, Some(people_txn), 100)
            .await
            .expect("after");
        assert_eq!(show(&rest)[0], "people update 2,bobby");
        assert_eq!(rest.len(), 4);

        // A small `max`: whole transactions while they fit; the 4-row
        // transaction alone is split, then completed.
        let first = cdc.changes(&ours, None, 3).await.expect("max 3");
        assert_eq!(first.len(), 3);
        assert!(!first[2].lsn.is_transaction_end(), "{}", first[2].lsn);
        let more = cdc
            .changes(&ours, Some(first[2].lsn), 3)
            .await
            .expect("next");
        assert_eq!(
            more.len(),
            1,
            "the rest of that transaction: {:?}",
            show(&more)
        );
        assert!(more[0].lsn.is_transaction_end());
        assert_eq!(
            format!("{:?}", more[0].change),
            format!("{:?}", changes[3].change)
        );
        let next = cdc
            .changes(&ours, Some(more[0].lsn), 3)
            .await
            .expect("next");
        assert_eq!(
            show(&next),
            show(&changes[4..7]),
            "the next whole transaction"
        );

        // Confirm up to the update transaction: the slot lets it go.
        cdc.confirm(update_txn).await.expect("confirm");
        let confirmed = one(
            port,
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = 'cv_sync'",
        )
        .await
        .expect("a slot");
        assert_eq!(confirmed, update_txn.to_string());
        cdc.confirm(people_txn)
            .await
            .expect("an older position is no error");

        // A restart continues from the confirmed point.
        drop(cdc);
        let cdc = PgChanges::open(&ep, Path::new("."), "cv_sync")
            .await
            .expect("reopen");
        assert!(!cdc.ensure_slot().await.expect("slot"));
        let after_restart = cdc.changes(&ours, None, 100).await.expect("changes");
        assert_eq!(
            show(&after_restart),
            vec!["people delete 2,NULL", "people insert 20,NULL"]
        );
        // A crash after applying only the first change of that
        // transaction: `after` inside it skips just that one.
        let resumed = cdc
            .changes(&ours, Some(after_restart[0].lsn), 100)
            .await
            .expect("changes");
        assert_eq!(show(&resumed), vec!["people insert 20,NULL"]);

        // A table without a primary key is refused with what to do.
        let err = cdc
            .changes(&pick(&tables, &["nokey"]), None, 10)
            .await
            .expect_err("no key");
        assert!(
            err.to_string().contains("table `nokey` has no primary key")
                && err.to_string().contains("ADD PRIMARY KEY"),
            "{err}"
        );

        // A user without REPLICATION is told which ALTER ROLE gives it.
        exec(port, "CREATE ROLE cv_reader LOGIN").await;
        let reader = PgChanges::open(
            &endpoint(port, "postgres", "cv_reader"),
            Path::new("."),
            "cv_other",
        )
        .await
        .expect("open");
        let err = reader.ensure_slot().await.expect_err("no REPLICATION");
        assert!(
            err.to_string()
                .contains("ALTER ROLE \"cv_reader\" WITH REPLICATION"),
            "{err}"
        );

        cdc.drop_slot().await.expect("drop");
        cdc.drop_slot()
            .await
            .expect("dropping a missing slot is no error");
        assert_eq!(
            one(port, "SELECT count(*)::text FROM pg_replication_slots").await,
            Some("0".into())
        );
    });
}

#[test]
fn a_server_without_logical_decoding_says_what_to_set() {
    // The shared server runs with wal_level = replica.
    let pg = Pg::connect();
    assert_eq!(pg.one("SHOW wal_level").as_deref(), Some("replica"));
    block_on(async {
        let cdc = PgChanges::open(
            &endpoint(5432, "test", "postgres"),
            Path::new("."),
            "cv_never",
        )
        .await
        .expect("open");
        let err = cdc.ensure_slot().await.expect_err("replica");
        let message = err.to_string();
        assert!(
            message.contains("wal_level = replica")
                && message.contains("set `wal_level = logical` in postgresql.conf")
                && message.contains("restart the server"),
            "{message}"
        );
        let bad = PgChanges::open(
            &endpoint(5432, "test", "postgres"),
            Path::new("."),
            "Bad-Name",
        )
        .await;
        assert!(bad.is_err_and(|e| e.to_string().contains("not valid")));
    });
}
