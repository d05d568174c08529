//! Change data capture from PostgreSQL, through the library API
//! (`credvault::drivers::PgChanges`), against a throwaway server with
//! `wal_level = logical`, and against the shared server (`replica`) for the
//! error that says what to set. Then the slot's upkeep through the binary:
//! the WAL it keeps in `status` and `pause`, `remove`, a slot that lost its
//! WAL, and a slot still held by the session of a killed sync.

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use credvault_tests::Project;

use credvault::config::{Endpoint, ServerEndpoint, TlsMode};
use credvault::drivers::{Lsn, PgChanges, SourceChange, TableChange, open_reader};
use credvault::model::value::{Row, TableInfo};
use tokio::sync::mpsc;

use super::postgres::ALL_TYPES;
use super::project;
use super::servers::{LogicalPg, PG_BIN, Pg, block_on};

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
    let request = credvault::drivers::ReadRequest {
        any_order: false,
        ..credvault::drivers::ReadRequest::whole(&info, 100)
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
                .map(|v| credvault::model::value::to_text(v).unwrap_or_else(|| "NULL".into()))
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

/// The slot every test migration below reads from.
const SLOT: &str = "credvault_pg_cdc";

/// A CDC migration of `accounts` (`rows` of them) from the throwaway
/// server into SQLite, with extra `[sync]` settings.
fn cdc_project(server: &LogicalPg, rows: u32, sync: &str) -> (Project, Pg) {
    let pg = Pg::connect_at(server.port, "postgres");
    pg.exec(&format!(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance int);
         INSERT INTO accounts SELECT i, 'owner ' || i, i FROM generate_series(1, {rows}) i"
    ));
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"pg-cdc\"\n[source]\ntype = \"postgres\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\ntls = \"disable\"\n[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[sync]\nmode = \"cdc\"\n{sync}\n[[tables]]\nsource = \"accounts\"\n",
            server.port
        ),
    );
    (p, pg)
}

/// The destination holds exactly the source's rows.
fn same_rows(p: &Project, pg: &Pg) {
    assert_eq!(
        p.query(
            "vault.db",
            "SELECT id, owner, balance FROM accounts ORDER BY id"
        ),
        pg.rows("SELECT id::text, owner, balance::text FROM accounts ORDER BY accounts.id")
    );
}

/// The slot's column `expr`, by our own SQL.
fn slot(pg: &Pg, expr: &str) -> Option<String> {
    pg.one(&format!(
        "SELECT ({expr})::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
    ))
}

/// Polls `probe` every 20 ms for up to `secs` seconds.
fn wait_for<T>(what: &str, secs: u64, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "waited in vain for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn status_and_pause_show_the_wal_a_paused_slot_keeps_and_warn_past_max_lag() {
    let server = LogicalPg::start();
    let (p, pg) = cdc_project(&server, 2000, "max_lag = \"256kB\"");
    p.run_ok(&["sync", "m.toml"]);
    let paused = p.run_ok(&["pause", "m.toml"]).stdout;
    assert!(
        paused.contains(&format!("CDC slot `{SLOT}`: keeps"))
            && paused.contains("while paused, each CDC slot keeps every change's WAL"),
        "{paused}"
    );
    for _ in 0..9 {
        pg.exec("UPDATE accounts SET balance = balance + 1");
    }
    let before: u64 = slot(&pg, "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)")
        .expect("the slot")
        .parse()
        .unwrap();
    assert!(
        before > 1 << 20,
        "nine updates of 2000 rows keep {before} bytes"
    );
    let json = p.run_ok(&["status", "m.toml", "--json"]).stdout;
    let after: u64 = slot(&pg, "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)")
        .unwrap()
        .parse()
        .unwrap();
    let rows: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    let report = &rows[0]["slots"][0];
    let kept = report["health"]["retained_bytes"].as_u64().expect(&json);
    assert!(
        before <= kept && kept <= after,
        "{before} <= {kept} <= {after}"
    );
    assert!(report["health"]["lag_bytes"].as_u64().expect(&json) > 1 << 20);
    assert_eq!(report["health"]["wal_status"], "reserved", "{json}");
    assert_eq!(report["max_lag"], 256 * 1024);
    assert_eq!(rows[0]["paused"], true);

    let text = p.run_ok(&["status", "m.toml"]).stdout;
    assert!(
        text.contains(&format!("CDC slot `{SLOT}`: keeps "))
            && text.contains("wal_status reserved")
            && text.contains(&format!(
                "warning: slot `{SLOT}` keeps {} of WAL on the source, past max_lag (256 kB)",
                credvault::config::show_size(kept)
            ))
            && text.contains("paused since"),
        "{text}"
    );
    // Without the file, status cannot ask the source: as before.
    assert!(!p.run_ok(&["status"]).stdout.contains("CDC slot"));
    let page = dashboard_page(&p, "/m/pg-cdc");
    assert!(
        page.contains("<section id=\"slots\"><h2>Change capture</h2>")
            && page.contains(&format!("<td>{SLOT}</td>"))
            && page.contains(">reserved</span>")
            && page.contains(&format!("<p class=\"warning\">slot `{SLOT}` keeps "))
            && page.contains("past max_lag (256 kB)"),
        "{page}"
    );

    p.run_ok(&["resume", "m.toml"]);
    let synced = p.run_ok(&["sync", "m.toml"]);
    assert!(synced.stdout.contains("succeeded"), "{}", synced.all());
    same_rows(&p, &pg);
    let lag: u64 = slot(
        &pg,
        "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)",
    )
    .unwrap()
    .parse()
    .unwrap();
    assert!(
        lag < 256 * 1024,
        "the sync confirmed its changes: lag {lag}"
    );

    // A bad max_lag is refused with the key named.
    p.write(
        "bad.toml",
        &std::fs::read_to_string(p.path().join("m.toml"))
            .unwrap()
            .replace("\"256kB\"", "\"lots\""),
    );
    let bad = p.run(&["status", "bad.toml"]);
    assert_eq!(bad.code, 2, "{}", bad.all());
    assert!(
        bad.stderr.contains(
            "sync.max_lag: \"lots\" is not a byte size; write a number with a unit, e.g. \"1GB\""
        ),
        "{}",
        bad.all()
    );
}

/// One page of `credvault serve --ui m.toml`.
fn dashboard_page(p: &Project, path: &str) -> String {
    let mut serve = p.spawn_with_stderr(&["serve", "--ui", "--listen", "127.0.0.1:0", "m.toml"]);
    let lines = std::io::BufReader::new(serve.stderr.take().unwrap()).lines();
    let addr = lines
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("dashboard: http://")
                .map(|a| a.trim_end_matches('/').to_string())
        })
        .expect("serve --ui says where it listens");
    let page = credvault_tests::browser::http(&addr, "GET", path, &[], "");
    let _ = serve.kill();
    let _ = serve.wait();
    assert_eq!(page.status, 200, "{}", page.body);
    page.body
}

/// Holds the slot from outside, the way a killed sync's session does
/// until the server ends it: a `pg_recvlogical` streaming from it.
fn hold_slot(server: &LogicalPg) -> std::process::Child {
    std::process::Command::new(format!("{PG_BIN}/pg_recvlogical"))
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-S",
            SLOT,
        ])
        .args(["-p", &server.port.to_string(), "--start", "-f", "/dev/null"])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("pg_recvlogical")
}

#[test]
fn remove_drops_the_slot_and_bookkeeping_and_is_refused_while_a_sync_holds_it() {
    let server = LogicalPg::start();
    let (p, pg) = cdc_project(&server, 100, "");
    p.run_ok(&["sync", "m.toml"]);
    assert_eq!(slot(&pg, "slot_name").as_deref(), Some(SLOT));

    // A session holds the slot: the next sync waits for it, naming its
    // pid, and holds the migration meanwhile, so `remove` is refused.
    let mut holder = hold_slot(&server);
    let pid = wait_for("the slot in use", 30, || slot(&pg, "active_pid"));
    let mut sync = p.spawn_with_stderr(&["sync", "m.toml"]);
    let mut stderr = std::io::BufReader::new(sync.stderr.take().unwrap()).lines();
    let waiting = stderr
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("is still held"))
        .expect("the sync says it waits");
    assert!(
        waiting.contains(&format!(
            "replication slot `{SLOT}` is still held by server process {pid}"
        )) && waiting.contains("waiting up to"),
        "{waiting}"
    );
    let refused = p.run(&["remove", "m.toml"]);
    assert_eq!(refused.code, 2, "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("migration `pg-cdc` is busy: `credvault sync`"),
        "{}",
        refused.all()
    );
    assert_eq!(slot(&pg, "slot_name").as_deref(), Some(SLOT), "still there");
    let _ = holder.kill();
    let _ = holder.wait();
    let status = sync.wait().unwrap();
    let rest: Vec<String> = stderr.map_while(Result::ok).collect();
    assert!(status.success(), "{rest:?}");

    // Nothing was lost meanwhile.
    pg.exec("INSERT INTO accounts VALUES (101, 'new', 1); DELETE FROM accounts WHERE id = 1");
    let synced = p.run_ok(&["sync", "m.toml"]);
    assert!(
        synced.stdout.contains("1 new, 0 updated, 1 deleted"),
        "{}",
        synced.all()
    );
    same_rows(&p, &pg);
    p.run_ok(&["pause", "m.toml"]);

    let removed = p.run_ok(&["remove", "m.toml"]).stdout;
    assert!(
        removed.contains(&format!("dropped replication slot `{SLOT}` on the source"))
            && removed.contains("deleted its checkpoints in the destination")
            && removed.contains(" runs, 3 syncs")
            && removed.contains("and its pause"),
        "{removed}"
    );
    assert_eq!(
        pg.one(&format!(
            "SELECT count(*)::text FROM pg_replication_slots WHERE slot_name = '{SLOT}'"
        )),
        Some("0".into())
    );
    assert_eq!(
        p.query(
            "vault.db",
            "SELECT count(*) FROM _credvault_checkpoints WHERE migration LIKE 'pg-cdc%'"
        ),
        vec![vec![Some("0".into())]]
    );
    assert!(p.run_ok(&["status"]).stdout.contains("no syncs yet"));
    let log = p.run_ok(&["log", "--json"]).stdout;
    let removal = log
        .lines()
        .find(|l| l.contains("\"removed\""))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(removal.contains(SLOT), "{removal}");
    assert!(
        log.contains("\"paused\"") && log.contains("\"synced\""),
        "the trail stays: {log}"
    );
    // Again: nothing left to drop, and no error.
    let again = p.run_ok(&["remove", "m.toml"]).stdout;
    assert!(!again.contains("dropped replication slot"), "{again}");

    // The next sync starts over with a fresh slot and a full copy.
    let fresh = p.run_ok(&["sync", "m.toml"]);
    assert!(fresh.stdout.contains("succeeded"), "{}", fresh.all());
    assert_eq!(slot(&pg, "slot_name").as_deref(), Some(SLOT));
    same_rows(&p, &pg);
}

#[test]
fn a_slot_that_lost_its_wal_fails_the_sync_with_what_to_do() {
    // 1 MB WAL segments, and a slot may keep at most 2 MB of them.
    let server = LogicalPg::start_with(
        &["--wal-segsize=1"],
        "-c max_slot_wal_keep_size=2MB -c min_wal_size=2MB -c max_wal_size=4MB",
    );
    let (p, pg) = cdc_project(&server, 100, "");
    p.run_ok(&["sync", "m.toml"]);
    p.run_ok(&["pause", "m.toml"]);
    pg.exec("UPDATE accounts SET balance = -1 WHERE id = 1; CREATE TABLE filler (n int)");
    wait_for("the slot to lose its WAL", 60, || {
        pg.exec("INSERT INTO filler SELECT generate_series(1, 50000); SELECT pg_switch_wal(); CHECKPOINT");
        (slot(&pg, "wal_status").as_deref() == Some("lost")).then_some(())
    });
    let status = p.run_ok(&["status", "m.toml"]).stdout;
    assert!(
        status.contains("wal_status lost")
            && status.contains(&format!("warning: slot `{SLOT}` lost WAL it needed")),
        "{status}"
    );
    p.run_ok(&["resume", "m.toml"]);
    let failed = p.run(&["sync", "m.toml"]);
    assert_eq!(failed.code, 1, "{}", failed.all());
    assert!(
        failed
            .stderr
            .contains(&format!("replication slot `{SLOT}` lost WAL it needed"))
            && failed.stderr.contains("must be copied again in full")
            && failed.stderr.contains("`credvault remove FILE`"),
        "{}",
        failed.all()
    );
    // The way out it names works.
    p.run_ok(&["remove", "m.toml"]);
    p.run_ok(&["sync", "m.toml"]);
    same_rows(&p, &pg);
    assert_eq!(slot(&pg, "wal_status").as_deref(), Some("reserved"));
}

#[test]
fn a_sync_killed_mid_read_is_followed_by_one_that_waits_for_its_session() {
    let server = LogicalPg::start();
    let (p, pg) = cdc_project(&server, 20_000, "");
    p.run_ok(&["sync", "m.toml"]);
    pg.exec(
        "BEGIN; UPDATE accounts SET balance = balance + 1; UPDATE accounts SET owner = 'changed'; COMMIT",
    );
    let mut sync = p.spawn(&["sync", "m.toml"]);
    let pid = wait_for("the sync to read the slot", 120, || slot(&pg, "active_pid"));
    sync.kill().unwrap(); // SIGKILL
    let _ = sync.wait();
    let again = p.run_ok(&["sync", "m.toml"]);
    assert!(!again.stderr.contains("another sync"), "{}", again.all());
    if again.stderr.contains("is still held") {
        assert!(
            again
                .stderr
                .contains(&format!("is still held by server process {pid}")),
            "{}",
            again.all()
        );
    }
    assert!(again.stdout.contains("succeeded"), "{}", again.all());
    same_rows(&p, &pg);
}

/// A CDC migration of `stock` (its text `qty` read as an integer, so
/// `'lots'` fails the mapping) from the throwaway server into SQLite under
/// `on_error = policy`, synced once (the full copy) while every row is
/// good, with one row in.
fn stock_project(server: &LogicalPg, policy: &str) -> (Project, Pg) {
    let pg = Pg::connect_at(server.port, "postgres");
    pg.exec("CREATE TABLE stock (id int PRIMARY KEY, qty text); INSERT INTO stock VALUES (1, '1')");
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"stock-cdc\"\n[source]\ntype = \"postgres\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\ntls = \"disable\"\n[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[sync]\nmode = \"cdc\"\n[[tables]]\nsource = \"stock\"\non_error = \"{policy}\"\n[tables.columns.qty]\ntype = \"int\"\n",
            server.port
        ),
    );
    p.run_ok(&["sync", "m.toml"]);
    (p, pg)
}

/// The destination's `stock`, by our own SQL.
fn stock_rows(p: &Project) -> Vec<Vec<Option<String>>> {
    p.query("vault.db", "SELECT id, qty FROM stock ORDER BY id")
}

/// `[id, qty]` rows, for comparisons.
fn rows_of(rows: &[(u32, u32)]) -> Vec<Vec<Option<String>>> {
    rows.iter()
        .map(|(id, qty)| vec![Some(id.to_string()), Some(qty.to_string())])
        .collect()
}

/// The events of kind `kind` a `sync --json` printed.
fn sync_events(stdout: &str, kind: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == kind)
        .collect()
}

/// The CDC runs of `stock-cdc` as the state store records them, by our own
/// SQL: `number status read written dropped skipped flagged`, oldest first.
fn cdc_runs(p: &Project) -> Vec<String> {
    p.query(
        ".credvault/state.db",
        "SELECT (SELECT count(*) FROM runs n WHERE n.migration = runs.migration AND n.id <= runs.id),
                status, rows_read, rows_written, rows_dropped, rows_skipped, rows_flagged
         FROM runs WHERE migration = 'stock-cdc#sync' ORDER BY id",
    )
    .into_iter()
    .map(|r| r.into_iter().map(Option::unwrap_or_default).collect::<Vec<_>>().join(" "))
    .collect()
}

/// The audit events of `stock-cdc` (its sync's runs included) of `kind`
/// in run `run`.
fn logged(p: &Project, kind: &str, run: i64) -> Vec<serde_json::Value> {
    let log = p.run_ok(&["log", "--migration", "stock-cdc", "--json"]);
    log.stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON event"))
        .filter(|e| e["kind"] == kind && e["migration"] == "stock-cdc#sync" && e["run"] == run)
        .collect()
}

/// A changed row that fails its mapping is flagged under the sync's own
/// run, as a run flags one: listed under that run's number, counted in the
/// run's record, and in the audit log.
#[test]
fn a_cdc_row_that_fails_is_flagged_under_the_syncs_run_with_counts_and_audit() {
    let server = LogicalPg::start();
    let (p, pg) = stock_project(&server, "flag");
    pg.exec(
        "INSERT INTO stock VALUES (2, 'lots'), (3, '3'); UPDATE stock SET qty = '10' WHERE id = 1",
    );
    let sync = p.run_ok(&["sync", "m.toml", "--json"]);
    let finished = sync_events(&sync.stdout, "run_finished");
    assert_eq!(finished.len(), 1, "{}", sync.all());
    let run = &finished[0];
    assert_eq!(run["number"], 2, "the full copy was run 1: {run}");
    assert_eq!(run["status"], "succeeded");
    assert_eq!(
        run["counts"],
        serde_json::json!({ "read": 3, "written": 2, "dropped": 0, "skipped": 0, "flagged": 1 })
    );
    assert_eq!(
        sync_events(&sync.stdout, "run_started")[0]["sync"],
        2,
        "{}",
        sync.all()
    );
    let failed = sync_events(&sync.stdout, "row_failed");
    assert!(
        failed.len() == 1 && failed[0]["failure"]["key"] == "id=2" && failed[0]["policy"] == "flag",
        "{failed:?}"
    );
    assert_eq!(stock_rows(&p), rows_of(&[(1, 10), (3, 3)]));
    let listed = p.flagged_list(&["--migration", "stock-cdc#sync", "--run", "2"]);
    assert!(
        listed.len() == 1
            && listed[0].contains(" run 2 stock-cdc#sync.stock ")
            && listed[0].contains("(id=2), mapping, column `qty`"),
        "{listed:?}"
    );
    assert!(
        p.flagged_list(&["--migration", "stock-cdc#sync", "--run", "1"])
            .is_empty()
    );
    assert_eq!(
        p.flagged_list(&["--migration", "stock-cdc"]),
        listed,
        "the migration's list has its syncs' rows"
    );
    assert_eq!(
        cdc_runs(&p),
        ["1 succeeded 1 1 0 0 0", "2 succeeded 3 2 0 0 1"]
    );
    let flagged = logged(&p, "row_flagged", 2);
    assert!(
        flagged.len() == 1 && flagged[0]["detail"]["key"] == "id=2",
        "{flagged:?}"
    );
    for kind in ["run_started", "table_finished", "run_finished"] {
        assert_eq!(logged(&p, kind, 2).len(), 1, "{kind}");
    }
    let status = p
        .run_ok(&["status", "--migration", "stock-cdc#sync"])
        .stdout;
    assert!(
        status.contains("stock-cdc#sync: last run 2 ") && status.contains(" succeeded"),
        "{status}"
    );
    // A sync that finds no change has no run.
    let idle = p.run_ok(&["sync", "m.toml", "--json"]);
    assert!(
        sync_events(&idle.stdout, "run_started").is_empty(),
        "{}",
        idle.all()
    );
    assert_eq!(cdc_runs(&p).len(), 2);
}

/// Under `skip` the row is counted skipped in the sync's run, and kept
/// nowhere for review.
#[test]
fn a_cdc_row_that_fails_under_skip_is_counted_skipped_in_the_syncs_run() {
    let server = LogicalPg::start();
    let (p, pg) = stock_project(&server, "skip");
    pg.exec("INSERT INTO stock VALUES (2, 'lots'), (3, '3')");
    let sync = p.run_ok(&["sync", "m.toml"]);
    assert!(
        sync.stdout.contains("stock: cdc sync, 1 new"),
        "{}",
        sync.all()
    );
    assert!(
        sync.stderr.contains("skipped: table `stock`, row") && sync.stderr.contains("(id=2)"),
        "{}",
        sync.all()
    );
    assert_eq!(stock_rows(&p), rows_of(&[(1, 1), (3, 3)]));
    assert_eq!(
        cdc_runs(&p),
        ["1 succeeded 1 1 0 0 0", "2 succeeded 2 1 0 1 0"]
    );
    assert!(p.flagged_list(&["--migration", "stock-cdc"]).is_empty());
    assert_eq!(logged(&p, "run_finished", 2).len(), 1);
}

/// Under `stop` the first failed row stops the sync, naming the row as a
/// run does: nothing of its batch is applied, the slot keeps it, and once
/// the row is fixed at the source the next sync applies everything.
#[test]
fn a_cdc_row_that_fails_under_stop_stops_the_sync_and_loses_nothing() {
    let server = LogicalPg::start();
    let (p, pg) = stock_project(&server, "stop");
    pg.exec("INSERT INTO stock VALUES (2, '2')");
    p.run_ok(&["sync", "m.toml"]);
    pg.exec("INSERT INTO stock VALUES (3, 'lots'); INSERT INTO stock VALUES (4, '4'), (5, 'more')");
    let stopped = |p: &Project| {
        let sync = p.run(&["sync", "m.toml"]);
        assert_eq!(sync.code, 1, "{}", sync.all());
        assert!(
            sync.stderr.contains(
                "stopped on a failed row (policy `stop`): table `stock`, row 1 (id=3), mapping, column `qty`"
            ) && sync.stderr.contains("Rows before its batch are committed"),
            "{}",
            sync.all()
        );
        assert!(
            !sync.stderr.contains("id=5"),
            "stops at the first: {}",
            sync.all()
        );
    };
    stopped(&p);
    assert_eq!(
        stock_rows(&p),
        rows_of(&[(1, 1), (2, 2)]),
        "nothing after it"
    );
    // The slot was not released past it: the next sync meets it again.
    stopped(&p);
    assert_eq!(stock_rows(&p), rows_of(&[(1, 1), (2, 2)]));
    let runs = cdc_runs(&p);
    assert_eq!(
        runs,
        [
            "1 succeeded 1 1 0 0 0",
            "2 succeeded 1 1 0 0 0",
            "3 failed 0 0 0 0 0",
            "4 failed 0 0 0 0 0"
        ]
    );
    let failed = logged(&p, "run_finished", 3);
    assert!(
        failed[0]["detail"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("stopped on a failed row")),
        "{failed:?}"
    );
    assert!(p.flagged_list(&["--migration", "stock-cdc"]).is_empty());
    pg.exec("UPDATE stock SET qty = '3' WHERE id = 3; UPDATE stock SET qty = '5' WHERE id = 5");
    let fixed = p.run_ok(&["sync", "m.toml"]);
    assert!(
        fixed.stdout.contains("stock: cdc sync, 3 new"),
        "{}",
        fixed.all()
    );
    let source = pg.rows("SELECT id::text, qty FROM stock ORDER BY stock.id");
    assert_eq!(stock_rows(&p), source);
    assert_eq!(
        stock_rows(&p),
        rows_of(&[(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)])
    );
    assert_eq!(cdc_runs(&p)[4], "5 succeeded 3 3 0 0 0");
}
