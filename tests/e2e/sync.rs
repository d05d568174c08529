//! Syncs: incremental and full syncs see inserts, updates and deletes made
//! between syncs; pause and resume; a killed sync; the scheduler.

use std::time::{Duration, Instant};

use credvault_tests::{Project, exec_sqlite};

use super::project;
use super::servers::{LogicalPg, Pg, PgDb, Scratch, TestDb};

fn sqlite_sync(p: &Project, sync: &str, table: &str) {
    p.write(
        "m.toml",
        &format!(
            "name = \"orders-sync\"\n[source]\ntype = \"sqlite\"\npath = \"src.db\"\n[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[sync]\n{sync}\n[[tables]]\nsource = \"orders\"\n{table}\n"
        ),
    );
}

fn source(p: &Project, sql: &str) {
    exec_sqlite(&p.path().join("src.db"), sql);
}

fn rows(p: &Project, db: &str) -> Vec<Vec<Option<String>>> {
    p.query(db, "SELECT * FROM orders ORDER BY id")
}

/// 1000 orders, the last 300 sharing one `updated_at`.
fn orders(p: &Project) {
    source(
        p,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, qty INTEGER, updated_at TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000)
         INSERT INTO orders SELECT i, 'item ' || i, i, CASE WHEN i > 700 THEN '2024-06-01 00:00:00' ELSE printf('2024-01-01 00:%02d:00', i % 60) END FROM n",
    );
}

#[test]
fn incremental_syncs_see_inserts_updates_and_deletes_and_lose_no_tied_row() {
    let p = project();
    orders(&p);
    sqlite_sync(
        &p,
        "mode = \"incremental\"\ndetect_deletes = true",
        "cursor = \"updated_at\"",
    );
    let first = p.run_ok(&["sync", "m.toml"]);
    assert!(
        first.stdout.contains("1000 new, 0 updated, 0 deleted"),
        "{}",
        first.all()
    );
    // A row that shares the last cursor value arrives late, others change
    // or go away.
    source(
        &p,
        "INSERT INTO orders VALUES (1001, 'late', 1, '2024-06-01 00:00:00');
         UPDATE orders SET qty = -5, updated_at = '2024-07-01 00:00:00' WHERE id IN (3, 4);
         DELETE FROM orders WHERE id IN (10, 11, 12)",
    );
    let second = p.run_ok(&["sync", "m.toml"]);
    assert!(
        second
            .stdout
            .contains("sync 2 of `orders-sync` succeeded: 1 new, 2 updated, 3 deleted"),
        "{}",
        second.all()
    );
    assert_eq!(rows(&p, "vault.db"), rows(&p, "src.db"));
    let status = p.run_ok(&["status"]);
    assert!(
        status.stdout.contains("orders-sync: last sync")
            && status.stdout.contains("succeeded")
            && status.stdout.contains("1 new, 2 updated, 3 deleted"),
        "{}",
        status.all()
    );
    let tables = p.query(
        "vault.db",
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name LIKE 'credvault_%'",
    );
    assert!(tables.is_empty(), "scratch tables are dropped: {tables:?}");
}

#[test]
fn a_full_sync_swaps_in_a_fresh_copy_and_counts_what_changed() {
    let p = project();
    orders(&p);
    sqlite_sync(&p, "mode = \"full\"", "");
    p.run_ok(&["sync", "m.toml"]);
    source(
        &p,
        "INSERT INTO orders VALUES (2000, 'new', 1, 'x'); UPDATE orders SET item = 'changed' WHERE id = 5; DELETE FROM orders WHERE id = 6",
    );
    let run = p.run_ok(&["sync", "m.toml"]);
    assert!(
        run.stdout.contains("1 new, 1 updated, 1 deleted"),
        "{}",
        run.all()
    );
    assert_eq!(rows(&p, "vault.db"), rows(&p, "src.db"));
}

#[test]
fn a_paused_migration_does_not_sync_and_catches_up_after_resume() {
    let p = project();
    orders(&p);
    sqlite_sync(&p, "mode = \"incremental\"", "cursor = \"updated_at\"");
    p.run_ok(&["sync", "m.toml"]);
    p.run_ok(&["pause", "m.toml"]);
    source(
        &p,
        "UPDATE orders SET qty = 0, updated_at = '2025-01-01 00:00:00' WHERE id <= 50",
    );
    let refused = p.run(&["sync", "m.toml"]);
    assert_eq!(refused.code, 1, "{}", refused.all());
    assert!(refused.stderr.contains("is paused"), "{}", refused.all());
    assert!(p.run_ok(&["status"]).stdout.contains("paused since"));
    p.run_ok(&["resume", "m.toml"]);
    let run = p.run_ok(&["sync", "m.toml"]);
    assert!(run.stdout.contains("0 new, 50 updated"), "{}", run.all());
    assert_eq!(rows(&p, "vault.db"), rows(&p, "src.db"));
    let log = p.run_ok(&["log"]).stdout;
    assert!(
        log.contains(" paused ") && log.contains(" resumed "),
        "{log}"
    );
}

#[test]
fn a_sync_killed_part_way_is_redone_with_nothing_lost_or_doubled() {
    let p = project();
    source(
        &p,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, qty INTEGER, updated_at TEXT NOT NULL);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
         INSERT INTO orders SELECT i, 'item ' || i, i, '2024-01-01' FROM n",
    );
    sqlite_sync(&p, "mode = \"incremental\"", "cursor = \"updated_at\"");
    p.run_ok(&["sync", "m.toml"]);
    source(
        &p,
        "UPDATE orders SET qty = qty + 1, updated_at = '2024-02-01'",
    );
    let mut child = p.spawn(&["sync", "m.toml"]);
    std::thread::sleep(Duration::from_millis(400));
    let _ = child.kill();
    let _ = child.wait();
    let run = p.run_ok(&["sync", "m.toml"]);
    assert!(
        run.stdout.contains("0 new, 300000 updated"),
        "{}",
        run.all()
    );
    assert_eq!(
        p.query(
            "vault.db",
            "SELECT count(*), count(DISTINCT id), sum(qty) FROM orders"
        ),
        p.query(
            "src.db",
            "SELECT count(*), count(DISTINCT id), sum(qty) FROM orders"
        )
    );
}

#[test]
fn serve_syncs_when_due_and_stops_cleanly_on_sigterm() {
    let p = project();
    orders(&p);
    sqlite_sync(
        &p,
        "kind = \"continuous\"\nevery = \"1s\"\nmode = \"incremental\"",
        "cursor = \"updated_at\"",
    );
    let mut child = p.spawn(&["serve", "m.toml"]);
    let wait_for = |what: &dyn Fn() -> bool| {
        let start = Instant::now();
        while !what() {
            assert!(start.elapsed() < Duration::from_secs(30), "timed out");
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    wait_for(&|| {
        p.path().join("vault.db").exists()
            && p.query(
                "vault.db",
                "SELECT count(*) FROM sqlite_schema WHERE name = 'orders'",
            ) == [[Some("1".into())]]
    });
    source(
        &p,
        "UPDATE orders SET item = 'again', updated_at = '2030-01-01' WHERE id = 1",
    );
    wait_for(&|| {
        p.query("vault.db", "SELECT item FROM orders WHERE id = 1") == [[Some("again".into())]]
    });
    let pid = child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    assert!(p.run_ok(&["status"]).stdout.contains("next sync: 20"));
}

#[test]
fn postgres_incremental_sync_applies_changes_made_between_syncs() {
    // The source in a database of its own: an incremental sync's bound
    // waits for every transaction open in the source database, and other
    // tests' would hold it back.
    let src = PgDb::new();
    let source = src.connect();
    source.exec(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), updated_at timestamptz NOT NULL);
         INSERT INTO accounts SELECT i, 'owner ' || i, i, '2024-01-01 00:00:00.000001+00' FROM generate_series(1, 500) i",
    );
    let s = Scratch::new();
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"pg-sync\"\n[source]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\nuser = \"postgres\"\nschema = \"public\"\n{}[sync]\nmode = \"incremental\"\ndetect_deletes = true\n[[tables]]\nsource = \"accounts\"\ncursor = \"updated_at\"\n",
            src.name,
            s.endpoint("destination", "")
        ),
    );
    p.run_ok(&["sync", "m.toml"]);
    source.exec(
        "INSERT INTO accounts VALUES (501, 'new', 1.50, now());
         UPDATE accounts SET balance = balance + 0.01, updated_at = now() WHERE id <= 10;
         DELETE FROM accounts WHERE id BETWEEN 100 AND 104",
    );
    let run = p.run_ok(&["sync", "m.toml"]);
    assert!(
        run.stdout.contains("1 new, 10 updated, 5 deleted"),
        "{}",
        run.all()
    );
    let dump = "SELECT id, owner, balance::text, updated_at::text FROM accounts ORDER BY id";
    assert_eq!(
        s.rows(&dump.replace("accounts", "{s}.accounts")),
        source.rows(dump)
    );
}

#[test]
fn sync_settings_are_checked_with_the_key_named() {
    let p = project();
    orders(&p);
    sqlite_sync(&p, "kind = \"continuous\"\nmode = \"incremental\"", "");
    let run = p.run(&["sync", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("sync.every: a continuous migration needs an interval"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr
            .contains("tables[0] (orders).cursor: an incremental table needs a cursor column"),
        "{}",
        run.all()
    );
    sqlite_sync(&p, "kind = \"scheduled\"\ncron = \"every day\"", "");
    let run = p.run(&["sync", "m.toml"]);
    assert!(
        run.stderr
            .contains("sync.cron: \"every day\" is not a cron expression"),
        "{}",
        run.all()
    );
    for (limit, why) in [
        ("soon", "sync.time_limit: \"soon\" is not a duration"),
        (
            "500ms",
            "sync.time_limit: \"500ms\" is shorter than a second",
        ),
    ] {
        let sync = format!("kind = \"continuous\"\nevery = \"1m\"\ntime_limit = \"{limit}\"");
        sqlite_sync(&p, &sync, "");
        let run = p.run(&["serve", "m.toml"]);
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(run.stderr.contains(why), "{}", run.all());
    }
}

/// CDC from a throwaway `wal_level=logical` PostgreSQL into SQLite: the
/// first sync copies the table, later ones apply inserts, updates and
/// deletes (including a key changed twice in one batch), and a sync that
/// finds nothing changes nothing.
/// A CDC migration `name` from the throwaway server on `port` into SQLite,
/// with its `[[tables]]`.
fn cdc_into_sqlite(name: &str, port: u16, tables: &str) -> String {
    format!(
        "name = \"{name}\"\n[source]\ntype = \"postgres\"\nport = {port}\ndatabase = \"postgres\"\nuser = \"postgres\"\ntls = \"disable\"\n[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[sync]\nmode = \"cdc\"\n{tables}"
    )
}

#[test]
fn cdc_syncs_apply_inserts_updates_and_deletes_from_the_change_log() {
    let server = LogicalPg::start();
    let pg = Pg::connect_at(server.port, "postgres");
    pg.exec(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), seen timestamptz);
         INSERT INTO accounts SELECT i, 'owner ' || i, i, '2024-01-01 00:00:00.000001+00' FROM generate_series(1, 200) i",
    );
    let p = project();
    p.write(
        "m.toml",
        &cdc_into_sqlite("pg-cdc", server.port, "[[tables]]\nsource = \"accounts\"\n"),
    );
    let first = p.run_ok(&["sync", "m.toml"]);
    assert!(first.stdout.contains("200 new"), "{}", first.all());
    pg.exec(
        "INSERT INTO accounts VALUES (201, 'new', 1.50, now());
         UPDATE accounts SET balance = 0.01 WHERE id <= 3;
         DELETE FROM accounts WHERE id IN (50, 51);
         UPDATE accounts SET owner = 'twice' WHERE id = 7; UPDATE accounts SET owner = 'thrice' WHERE id = 7",
    );
    let second = p.run_ok(&["sync", "m.toml"]);
    assert!(
        second.stdout.contains("1 new, 4 updated, 2 deleted"),
        "{}",
        second.all()
    );
    let dump = pg.rows("SELECT id::text, owner, balance::text FROM accounts ORDER BY accounts.id");
    assert_eq!(
        p.query(
            "vault.db",
            "SELECT id, owner, balance FROM accounts ORDER BY id"
        ),
        dump
    );
    let idle = p.run_ok(&["sync", "m.toml"]);
    assert!(
        idle.stdout.contains("0 new, 0 updated, 0 deleted"),
        "{}",
        idle.all()
    );
}

#[test]
fn under_serve_a_hostile_plugin_fails_its_own_migration_and_the_others_keep_syncing() {
    let p = project();
    orders(&p);
    sqlite_sync(&p, "kind = \"continuous\"\nevery = \"1s\"", "");
    // The same table through a transform that loops forever on every row,
    // with the stop policy: each of its syncs fails on fuel.
    p.write(
        "bad.toml",
        &format!(
            "name = \"hostile-sync\"\n[source]\ntype = \"sqlite\"\npath = \"src.db\"\n[destination]\ntype = \"sqlite\"\npath = \"bad.db\"\n[sync]\nkind = \"continuous\"\nevery = \"1s\"\n[[tables]]\nsource = \"orders\"\n[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"loop\" }}\nlimits = {{ fuel = 10_000_000 }}\n",
            credvault_tests::guests::HOSTILE
        ),
    );
    let mut child = p.spawn(&["serve", "bad.toml", "m.toml"]);
    let start = Instant::now();
    let synced = |name: &str, status: &str| {
        let out = p.run_ok(&["status", "--migration", name, "--json"]);
        let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        rows[0]["status"] == status
    };
    // Each may be mid-sync at any one look: wait until each has been seen
    // done once.
    let (mut good, mut bad) = (false, false);
    while !(good && bad) {
        good |= synced("orders-sync", "succeeded");
        bad |= synced("hostile-sync", "failed");
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "timed out (good {good}, bad {bad})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    source(&p, "UPDATE orders SET item = 'later' WHERE id = 2");
    while p.query("vault.db", "SELECT item FROM orders WHERE id = 2") != [[Some("later".into())]] {
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "the good migration stopped syncing"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = p.run_ok(&["status", "--migration", "hostile-sync", "--json"]);
    assert!(status.stdout.contains("fuel"), "{}", status.stdout);
    assert!(child.try_wait().unwrap().is_none(), "serve keeps running");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
}

/// Two tables share the migration's slot: a sync of one must not let the
/// slot go past the other's changes it has yet to read, and a table with
/// no change yet is not copied in full again at every sync.
#[test]
fn cdc_tables_sharing_a_slot_lose_none_of_each_others_changes() {
    let server = LogicalPg::start();
    let pg = Pg::connect_at(server.port, "postgres");
    pg.exec(
        "CREATE TABLE a (id int PRIMARY KEY, v text); CREATE TABLE b (id int PRIMARY KEY, v text);
         INSERT INTO a SELECT i, 'a' || i FROM generate_series(1, 20) i;
         INSERT INTO b SELECT i, 'b' || i FROM generate_series(1, 20) i",
    );
    let p = project();
    p.write(
        "m.toml",
        &cdc_into_sqlite(
            "two-cdc",
            server.port,
            "[[tables]]\nsource = \"a\"\n[[tables]]\nsource = \"b\"\n",
        ),
    );
    p.run_ok(&["sync", "m.toml"]);
    // `b` changes before `a`, each in its own transaction: `a`'s sync
    // comes first and must not release `b`'s changes.
    for i in 0..3 {
        pg.exec(&format!("UPDATE b SET v = 'b again {i}' WHERE id = 3"));
        pg.exec(&format!("INSERT INTO b VALUES ({}, 'new')", 100 + i));
        pg.exec(&format!("UPDATE a SET v = 'again {i}' WHERE id = 3"));
        let sync = p.run_ok(&["sync", "m.toml"]);
        assert!(
            !sync.stderr.contains("starting"),
            "no table is copied in full again: {}",
            sync.all()
        );
        assert!(
            sync.stdout.contains("b: cdc sync, 1 new, 1 updated"),
            "{}",
            sync.all()
        );
    }
    for table in ["a", "b"] {
        let sql = format!("SELECT id::text, v FROM {table} ORDER BY {table}.id");
        let dest = p.query(
            "vault.db",
            &format!("SELECT id, v FROM {table} ORDER BY id"),
        );
        assert_eq!(dest, pg.rows(&sql), "table {table}");
    }
    let idle = p.run_ok(&["sync", "m.toml"]);
    assert!(
        idle.stdout.contains("0 new, 0 updated, 0 deleted"),
        "{}",
        idle.all()
    );
}

/// A change whose date the row model cannot hold is one row error under
/// the table's policy, as in a full read; the other changes apply.
#[test]
fn a_cdc_change_with_an_infinite_date_is_flagged_and_the_rest_applies() {
    let server = LogicalPg::start();
    let pg = Pg::connect_at(server.port, "postgres");
    pg.exec("CREATE TABLE ev (id int PRIMARY KEY, d date, ts timestamp)");
    let p = project();
    p.write(
        "m.toml",
        &cdc_into_sqlite(
            "ev-cdc",
            server.port,
            "[[tables]]\nsource = \"ev\"\non_error = \"flag\"\n",
        ),
    );
    p.run_ok(&["sync", "m.toml"]);
    pg.exec("INSERT INTO ev VALUES (1, 'infinity', now()), (2, '2024-01-01', now()), (3, now(), '294276-12-31 23:59:59')");
    let sync = p.run_ok(&["sync", "m.toml"]);
    assert!(sync.stdout.contains("1 new"), "{}", sync.all());
    assert_eq!(
        p.query("vault.db", "SELECT id FROM ev ORDER BY id"),
        [[Some("2".to_string())]]
    );
    let flagged = p.run_ok(&["flagged", "list", "--migration", "ev-cdc"]);
    assert!(
        flagged.stdout.contains("id=1")
            && flagged.stdout.contains("infinity")
            && flagged.stdout.contains("id=3"),
        "{}",
        flagged.all()
    );
}

/// How often a command's log says it read the source catalogue, and how
/// often it configured a transform while planning.
fn planning(run: &credvault_tests::Run) -> (usize, usize) {
    let discoveries = run
        .stderr
        .matches("discovering the source catalogue")
        .count();
    let configured = run
        .stderr
        .matches("planning: configuring transform")
        .count();
    (discoveries, configured)
}

#[test]
fn a_job_plans_once_however_many_tables_it_syncs_and_validation_plans_nothing_again() {
    let p = project();
    let tables = 6;
    let mut spec = String::new();
    for i in 0..tables {
        source(
            &p,
            &format!(
                "CREATE TABLE t{i} (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL);
                 INSERT INTO t{i} VALUES (1, 'a', '2024-01-01'), (2, 'b', '2024-01-02')"
            ),
        );
        spec.push_str(&format!(
            "[[tables]]\nsource = \"t{i}\"\nCURSOR[[tables.transforms]]\nplugin = \"expr\"\nconfig.expressions = [\"name = upper(name)\"]\n"
        ));
    }
    let file = |sync: &str| {
        let cursor = match sync.contains("incremental") {
            true => "cursor = \"updated_at\"\n",
            false => "",
        };
        let spec = spec.replace("CURSOR", cursor);
        format!(
            "name = \"plans-once\"\n[source]\ntype = \"sqlite\"\npath = \"src.db\"\n[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[settings]\nvalidate = true\n[sync]\n{sync}\n{spec}"
        )
    };
    p.write(
        "m.toml",
        &file("mode = \"incremental\"\ndetect_deletes = true"),
    );
    let run = p.run_ok(&["run", "m.toml", "--log", "credvault=debug"]);
    assert!(
        run.stdout.contains("validation of `plans-once`: passed"),
        "{}",
        run.all()
    );
    assert_eq!(
        planning(&run),
        (1, tables),
        "a run plans once and its validation reuses the plan:\n{}",
        run.stderr
    );
    source(
        &p,
        "UPDATE t3 SET name = 'c', updated_at = '2024-02-01' WHERE id = 1; DELETE FROM t4 WHERE id = 2",
    );
    let sync = p.run_ok(&["sync", "m.toml", "--log", "credvault=debug"]);
    assert!(
        sync.stdout.contains("1 new, 1 updated, 1 deleted")
            || sync.stdout.contains("0 new, 1 updated, 1 deleted"),
        "{}",
        sync.all()
    );
    assert_eq!(
        planning(&sync),
        (1, tables),
        "an incremental sync (with its key copies for deletes) plans once:\n{}",
        sync.stderr
    );
    p.write("m.toml", &file("mode = \"full\""));
    let full = p.run_ok(&["sync", "m.toml", "--log", "credvault=debug"]);
    assert_eq!(planning(&full), (1, tables), "{}", full.stderr);
    let names = p.query("vault.db", "SELECT name FROM t3 ORDER BY id");
    assert_eq!(names, vec![vec![Some("C".into())], vec![Some("B".into())]]);
    let gone = p.query("vault.db", "SELECT count(*) FROM t4");
    assert_eq!(gone, vec![vec![Some("1".into())]]);
}

/// A sync that detects deletes copies the source's keys into a scratch
/// table of their own. That copy has no transforms, so a decimal key keeps
/// its precision there even when the table's transforms drop it from the
/// table's own columns: keys of 38 digits fit MariaDB's DECIMAL(40,0), not
/// the DECIMAL(65,30) a key without its precision gets, and a key the copy
/// refused would read as deleted.
#[test]
fn a_transformed_table_with_a_wide_decimal_key_loses_no_row_to_delete_detection() {
    let src = PgDb::new();
    let source = src.connect();
    source.exec(
        "CREATE TABLE things (id numeric(40,0) PRIMARY KEY, name text, updated_at timestamptz NOT NULL);
         INSERT INTO things SELECT 10::numeric ^ 37 + i, 'thing ' || i, '2024-01-01 00:00:00+00' FROM generate_series(1, 20) i",
    );
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE things (id DECIMAL(40,0) PRIMARY KEY, name TEXT, updated_at DATETIME(6))",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"wide-keys\"\n[source]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\nuser = \"postgres\"\nschema = \"public\"\n[destination]\n{}[settings]\non_error = \"skip\"\n[sync]\nmode = \"incremental\"\ndetect_deletes = true\n[[tables]]\nsource = \"things\"\nif_exists = \"append\"\ncursor = \"updated_at\"\n[[tables.transforms]]\nplugin = \"expr\"\nconfig.expressions = [\"name = upper(name)\"]\n",
            src.name,
            db.endpoint()
        ),
    );
    p.run_ok(&["sync", "m.toml"]);
    assert_eq!(db.value("SELECT count(*) FROM things"), "20");
    source.exec("DELETE FROM things WHERE id = 10::numeric ^ 37 + 5");
    let run = p.run_ok(&["sync", "m.toml"]);
    assert!(
        run.stdout.contains("0 new, 0 updated, 1 deleted"),
        "{}",
        run.all()
    );
    assert_eq!(db.value("SELECT count(*) FROM things"), "19");
    assert_eq!(
        db.value("SELECT name FROM things ORDER BY id LIMIT 1"),
        "THING 1"
    );
}

/// Keys the delete detection's copy refuses are not read as deleted: a
/// source without declared precision (SQLite) gives a decimal key no
/// precision, so its copy of 38-digit keys in MariaDB's DECIMAL(65,30) is
/// refused; the sync then deletes nothing and says why.
#[test]
fn keys_the_delete_detection_could_not_copy_are_not_deleted() {
    let p = project();
    let rows: Vec<String> = (1..=20)
        .map(|i| format!("('1{i:037}', 'thing {i}', '2024-01-01')"))
        .collect();
    source(
        &p,
        &format!(
            "CREATE TABLE things (id TEXT PRIMARY KEY, name TEXT, updated_at TEXT NOT NULL);
             INSERT INTO things VALUES {}",
            rows.join(", ")
        ),
    );
    let db = TestDb::new();
    db.exec("CREATE TABLE things (id DECIMAL(40,0) PRIMARY KEY, name TEXT, updated_at TEXT)");
    p.write(
        "m.toml",
        &format!(
            "name = \"unkeyed\"\n[source]\ntype = \"sqlite\"\npath = \"src.db\"\n[destination]\n{}[settings]\non_error = \"skip\"\n[sync]\nmode = \"incremental\"\ndetect_deletes = true\n[[tables]]\nsource = \"things\"\nif_exists = \"append\"\ncursor = \"updated_at\"\n[tables.columns.id]\ntype = \"decimal\"\n",
            db.endpoint()
        ),
    );
    let first = p.run_ok(&["sync", "m.toml"]);
    assert_eq!(
        db.value("SELECT count(*) FROM things"),
        "20",
        "{}",
        first.all()
    );
    source(&p, "DELETE FROM things WHERE name = 'thing 5'");
    let second = p.run_ok(&["sync", "m.toml"]);
    assert!(
        second
            .stderr
            .contains("could not be copied for delete detection")
            && second.stderr.contains("no row is deleted in this sync"),
        "{}",
        second.all()
    );
    assert_eq!(
        db.value("SELECT count(*) FROM things"),
        "20",
        "{}",
        second.all()
    );
}
