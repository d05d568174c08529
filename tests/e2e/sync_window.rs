//! Incremental syncs by a timestamp cursor under concurrent writers: a
//! transaction that stamps its row `now()` and commits after a later
//! stamped row was synced still arrives. The open transaction is held by
//! the test on its own connection, so nothing races.

use std::time::Duration;

use sqlx::{Connection, MySqlConnection};

use super::project;
use super::servers::{PgDb, Scratch, TestDb, connect};
use credvault_tests::Project;

/// Count and an md5 over every row's id, note and cursor (as epoch
/// microseconds, so both sides print it alike).
const PG_DIGEST: &str = "SELECT count(*)::text || ' ' || coalesce(md5(string_agg(id || '|' || note || '|' || (extract(epoch FROM updated_at) * 1000000)::int8, ',' ORDER BY id)), '-') FROM ";

/// What a sync says when an open transaction keeps its window short.
const HELD: &str = "held back by a transaction open on the source since";

fn sync(p: &Project) -> String {
    p.run_ok(&["sync", "m.toml"]).all()
}

#[test]
fn a_postgres_row_committed_after_a_later_stamped_one_still_arrives() {
    slow_and_quick_writers_on_postgres("updated_at");
}

/// The same with the sequence's id as the cursor: the slow transaction
/// holds a smaller id than the quick one's.
#[test]
fn a_postgres_row_with_a_smaller_id_committed_late_still_arrives() {
    slow_and_quick_writers_on_postgres("id");
}

/// A slow writer takes its id and stamps its row `now()`, keeping its
/// transaction open while a quick one commits rows with later values;
/// syncs run between; after the commit and one more sync every row is
/// there.
fn slow_and_quick_writers_on_postgres(cursor: &str) {
    let db = PgDb::new();
    let setup = db.connect();
    setup.exec(
        "CREATE TABLE events (id bigserial PRIMARY KEY, note text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now());
         INSERT INTO events (note) SELECT 'old ' || i FROM generate_series(1, 3) i",
    );
    let out = Scratch::new();
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"window\"\n[source]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\nuser = \"postgres\"\nschema = \"public\"\n{}[sync]\nmode = \"incremental\"\n[[tables]]\nsource = \"events\"\ncursor = \"{cursor}\"\n",
            db.name,
            out.endpoint("destination", "")
        ),
    );
    sync(&p);
    let slow = db.connect();
    slow.exec("BEGIN; INSERT INTO events (note) VALUES ('slow')");
    std::thread::sleep(Duration::from_millis(20));
    setup.exec("INSERT INTO events (note) VALUES ('quick 1')");
    let held = sync(&p);
    setup.exec("INSERT INTO events (note) VALUES ('quick 2')");
    sync(&p);
    slow.exec("COMMIT");
    sync(&p);
    let source = setup.one(&format!("{PG_DIGEST} events"));
    let destination = out.one(&format!("{PG_DIGEST} {{s}}.events"));
    assert_eq!(destination, source, "slow row lost or rows stale");
    assert!(held.contains(HELD), "{held}");
    assert_eq!(
        out.one("SELECT count(*) FROM {s}.events WHERE note = 'slow'"),
        Some("1".into())
    );
    let events = p.run_ok(&["log", "--migration", "window"]).all();
    assert!(events.contains("sync_held_back"), "{events}");
}

/// Runs statements on a held MariaDB connection.
fn my_exec(rt: &tokio::runtime::Runtime, conn: &mut MySqlConnection, sql: &str) {
    rt.block_on(sqlx::raw_sql(sql).execute(&mut *conn))
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[test]
fn a_mariadb_row_committed_after_a_later_stamped_one_still_arrives() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE events (id BIGINT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(40) NOT NULL, updated_at DATETIME(6) NOT NULL DEFAULT NOW(6));
         INSERT INTO events (note) VALUES ('old 1'), ('old 2'), ('old 3')",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"window\"\n[source]\n{}[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[sync]\nmode = \"incremental\"\n[[tables]]\nsource = \"events\"\ncursor = \"updated_at\"\n",
            db.endpoint()
        ),
    );
    // The first sync after the rows' second is over (the bound allows a
    // second for InnoDB's whole-second transaction starts).
    std::thread::sleep(Duration::from_millis(2100));
    sync(&p);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut slow = rt.block_on(connect(Some(&db.name)));
    my_exec(
        &rt,
        &mut slow,
        "BEGIN; INSERT INTO events (note) VALUES ('slow')",
    );
    // The server shows transactions through a copy refreshed at most
    // every 0.1 s; the bound allows for that, the held-back message needs
    // the transaction in it.
    std::thread::sleep(Duration::from_millis(200));
    db.exec("INSERT INTO events (note) VALUES ('quick 1')");
    let held = sync(&p);
    db.exec("INSERT INTO events (note) VALUES ('quick 2')");
    sync(&p);
    my_exec(&rt, &mut slow, "COMMIT");
    rt.block_on(slow.close()).ok();
    // Count, id sum and notes in id order on each side.
    let source = || {
        db.query(
            "SELECT CAST(COUNT(*) AS CHAR), CAST(SUM(id) AS CHAR), GROUP_CONCAT(note ORDER BY id) FROM events",
        )
    };
    let destination = || {
        p.query(
            "vault.db",
            "SELECT CAST(COUNT(*) AS TEXT), CAST(SUM(id) AS TEXT), (SELECT group_concat(note) FROM (SELECT note FROM events ORDER BY id)) FROM events",
        )
    };
    // One more sync takes the slow row; the server's other transactions
    // (other tests share it) may hold a sync back a moment, never for good.
    std::thread::sleep(Duration::from_millis(1100));
    for _ in 0..10 {
        sync(&p);
        if destination() == source() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(destination(), source(), "slow row lost or rows stale");
    assert!(held.contains(HELD), "{held}");
}
