//! `credvault serve` with several migrations: a destination that stops
//! answering holds up neither the other migrations nor a stop, and a
//! schedule the syncs cannot keep is said once per streak.

use std::process::Child;
use std::time::{Duration, Instant};

use credvault_tests::{Project, exec_sqlite, query_sqlite};

use super::project;
use super::servers::{Pg, Scratch};

/// 50 orders in `src.db`.
fn orders(p: &Project) {
    exec_sqlite(
        &p.path().join("src.db"),
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT, qty INTEGER);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50)
         INSERT INTO orders SELECT i, 'item ' || i, i FROM n",
    );
}

/// A migration `name` of `src.db`'s orders, syncing every second.
fn every_second(name: &str, destination: &str, sync: &str, table: &str) -> String {
    format!(
        "name = \"{name}\"\n[source]\ntype = \"sqlite\"\npath = \"src.db\"\n{destination}\n[sync]\nkind = \"continuous\"\nevery = \"1s\"\n{sync}\n[[tables]]\nsource = \"orders\"\n{table}\n"
    )
}

/// Counts with a query on the project's state store, as `serve` writes it
/// (0 before `serve` made it).
fn count(p: &Project, sql: &str) -> usize {
    let store = p.path().join(".credvault/state.db");
    if !store.exists() {
        return 0;
    }
    query_sqlite(&store, sql)[0][0]
        .as_deref()
        .map_or(0, |n| n.parse().expect("a count"))
}

fn syncs(p: &Project, migration: &str, status: &str) -> usize {
    count(
        p,
        &format!(
            "SELECT count(*) FROM syncs WHERE migration = '{migration}' AND status = '{status}'"
        ),
    )
}

fn said(p: &Project) -> String {
    std::fs::read_to_string(p.path().join("spawned.err")).unwrap_or_default()
}

/// Waits up to `limit` for `what`, failing with what serve said.
fn wait_for(p: &Project, limit: Duration, about: &str, what: impl Fn() -> bool) {
    let started = Instant::now();
    while !what() {
        assert!(
            started.elapsed() < limit,
            "{about}: not within {limit:?}; serve said:\n{}",
            said(p)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Sends SIGTERM and waits for the exit, failing past `limit`.
fn stop_within(p: &Project, mut child: Child, limit: Duration) {
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for serve") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "serve still ran {limit:?} after SIGTERM; it said:\n{}",
                said(p)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}: {}", said(p));
}

#[test]
fn a_stalled_destination_starves_no_other_migration_and_holds_up_no_stop() {
    let p = project();
    orders(&p);
    let s = Scratch::new();
    let pg = s.endpoint("destination", "");
    // Two migrations into PostgreSQL tables this test will lock: one with a
    // short time limit, one with the default (an hour).
    p.write(
        "a.toml",
        &every_second("stalled-a", &pg, "time_limit = \"2s\"", ""),
    );
    p.write(
        "c.toml",
        &every_second("stalled-c", &pg, "", "destination = \"orders_c\""),
    );
    let sqlite = "[destination]\ntype = \"sqlite\"\npath = \"b.db\"";
    p.write("b.toml", &every_second("quick-b", sqlite, "", ""));
    p.run_ok(&["sync", "a.toml"]);
    p.run_ok(&["sync", "c.toml"]);
    let dump = "SELECT id, item, qty FROM orders ORDER BY id";
    let first = p.query("src.db", dump);
    exec_sqlite(
        &p.path().join("src.db"),
        "UPDATE orders SET item = 'changed' WHERE id <= 5; DELETE FROM orders WHERE id = 6;
         INSERT INTO orders VALUES (51, 'new', 51)",
    );
    // The destination stops answering for both: every statement on the
    // tables waits for this open transaction (stalled-c's inside its
    // scratch run, as it makes its scratch table).
    let locker = Pg::connect();
    s.exec("CREATE TABLE {s}.credvault_stage_orders_c (id int)");
    locker.exec(&format!(
        "BEGIN; LOCK TABLE {0}.orders, {0}.credvault_stage_orders_c IN ACCESS EXCLUSIVE MODE",
        s.schema
    ));
    let child = p.spawn(&["serve", "a.toml", "b.toml", "c.toml"]);
    let running = "SELECT count(*) FROM runs WHERE status = 'running'";
    wait_for(
        &p,
        Duration::from_secs(30),
        "stalled-c's scratch run",
        || count(&p, running) > 0,
    );
    wait_for(
        &p,
        Duration::from_secs(30),
        "quick-b synced 3 times",
        || syncs(&p, "quick-b", "succeeded") >= 3,
    );
    let limit =
        "migration `stalled-a` was still going after its time limit of 2s and was abandoned";
    wait_for(
        &p,
        Duration::from_secs(30),
        "stalled-a's time limit",
        || said(&p).contains(limit),
    );
    assert!(
        said(&p).contains("each table stays at its last committed checkpoint"),
        "{}",
        said(&p)
    );
    assert_eq!(syncs(&p, "stalled-c", "running"), 1, "{}", said(&p));
    stop_within(&p, child, Duration::from_secs(15));
    let said = said(&p);
    let stopped = said
        .lines()
        .find(|l| l.starts_with("stopped: cut off the syncs of"))
        .unwrap_or_else(|| panic!("no word of the syncs cut off:\n{said}"));
    assert!(
        stopped.contains("`stalled-c`")
            && stopped.contains("the next `credvault serve` or `credvault sync` resumes them"),
        "{said}"
    );
    assert_eq!(syncs(&p, "stalled-c", "running"), 0, "{said}");
    assert_eq!(syncs(&p, "stalled-c", "interrupted"), 1, "{said}");
    assert_eq!(
        count(&p, running),
        0,
        "the abandoned syncs' runs are closed: {said}"
    );
    // Nothing the abandoned syncs did landed; once the destination
    // answers, the next syncs bring both tables up to date.
    locker.exec("ROLLBACK");
    let table = |name: &str| s.rows(&dump.replace("orders", &format!("{{s}}.{name}")));
    assert_eq!(table("orders"), first);
    assert_eq!(table("orders_c"), first);
    p.run_ok(&["sync", "a.toml"]);
    p.run_ok(&["sync", "c.toml"]);
    let source = p.query("src.db", dump);
    assert_ne!(source, first);
    assert_eq!(table("orders"), source);
    assert_eq!(table("orders_c"), source);
}

/// `src.db`'s orders into SQLite every second; with `slow`, a transform
/// sleeps on row 2 for 2 s (one row a batch, so it costs one timeout a
/// sync), so every sync takes longer than the schedule allows.
fn slow_or_quick(slow: bool) -> String {
    let table = match slow {
        true => format!(
            "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"sleep\", trigger = \"2\" }}\nlimits = {{ timeout_ms = 2000 }}\n",
            credvault_tests::guests::HOSTILE
        ),
        false => String::new(),
    };
    let destination = "[destination]\ntype = \"sqlite\"\npath = \"out.db\"\n[settings]\non_error = \"flag\"\nbatch_size = 1";
    every_second("laggard", destination, "", &table)
}

#[test]
fn a_schedule_the_syncs_cannot_keep_is_said_once_per_streak() {
    let p = project();
    orders(&p);
    p.write("m.toml", &slow_or_quick(true));
    let child = p.spawn(&["serve", "m.toml"]);
    let behind = "warning: migration `laggard` cannot keep its schedule: it is due every 1s but its sync took ";
    let times = |text: &str| said(&p).matches(text).count();
    let ended = || {
        let sql =
            "SELECT count(*) FROM syncs WHERE migration = 'laggard' AND finished_at IS NOT NULL";
        count(&p, sql)
    };
    wait_for(&p, Duration::from_secs(40), "3 slow syncs", || ended() >= 3);
    assert_eq!(times(behind), 1, "once for the streak:\n{}", said(&p));
    assert!(
        said(&p).contains("so it syncs back to back, every "),
        "{}",
        said(&p)
    );
    // Quick syncs end the streak; slow ones again start a new one.
    p.write("m.toml", &slow_or_quick(false));
    let again = "migration `laggard` keeps its schedule again (every 1s)";
    wait_for(&p, Duration::from_secs(30), "back on schedule", || {
        times(again) == 1
    });
    p.write("m.toml", &slow_or_quick(true));
    wait_for(&p, Duration::from_secs(30), "a second streak", || {
        times(behind) == 2
    });
    let seen = ended();
    wait_for(&p, Duration::from_secs(40), "2 more slow syncs", || {
        ended() >= seen + 2
    });
    assert_eq!(times(behind), 2, "{}", said(&p));
    assert_eq!(times(again), 1, "{}", said(&p));
    // The last sync, slow, ends within the stop's grace.
    stop_within(&p, child, Duration::from_secs(15));
    let status = p.run_ok(&["status"]).stdout;
    assert!(
        status.contains(
            "warning: cannot keep its schedule: it is due every 1s but its last sync took "
        ),
        "{status}"
    );
}

#[test]
fn jobs_bounds_the_syncs_at_once_and_a_wait_for_a_slot_is_said() {
    let p = project();
    orders(&p);
    let s = Scratch::new();
    let pg = s.endpoint("destination", "");
    p.write(
        "a.toml",
        &every_second("stalled-a", &pg, "time_limit = \"3s\"", ""),
    );
    let sqlite = "[destination]\ntype = \"sqlite\"\npath = \"b.db\"";
    p.write("b.toml", &every_second("quick-b", sqlite, "", ""));
    p.run_ok(&["sync", "a.toml"]);
    let locker = Pg::connect();
    locker.exec(&format!(
        "BEGIN; LOCK TABLE {}.orders IN ACCESS EXCLUSIVE MODE",
        s.schema
    ));
    let child = p.spawn(&["serve", "--jobs", "1", "a.toml", "b.toml"]);
    let late = "warning: migration `quick-b` cannot keep its schedule: it is due every 1s but its sync started ";
    wait_for(
        &p,
        Duration::from_secs(40),
        "quick-b waiting for a slot",
        || said(&p).contains(late),
    );
    assert!(
        said(&p).contains("waiting for one of the 1 sync slots, all taken by other migrations' syncs; `credvault serve --jobs N` sets how many run at once"),
        "{}",
        said(&p)
    );
    stop_within(&p, child, Duration::from_secs(15));
    locker.exec("ROLLBACK");
    // One slot: no two syncs of this serve overlapped.
    let overlapping = count(
        &p,
        "SELECT count(*) FROM syncs x JOIN syncs y ON x.id < y.id
         WHERE x.id > 1 AND y.started_at < x.finished_at AND x.started_at < y.finished_at",
    );
    assert_eq!(overlapping, 0, "{}", said(&p));
}
