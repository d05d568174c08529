//! Live progress names what a person knows and adds up: a table split into
//! key ranges reports once, as the sum of its ranges; a resumed run's pace
//! counts only its own rows; syncs and consolidations name the real
//! tables, never their scratch copies.

use credvault_tests::{Project, exec_sqlite};
use serde_json::Value;

use super::project;
use super::resume::{CSV_TO_SQLITE, committed_rows, kill_midway};

/// The JSON events a `--json` command printed (a sync's summary included).
fn events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["event"] == kind).collect()
}

fn int(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// `rows` rows in SQLite table `big` with an integer primary key.
fn big_sqlite(p: &Project, db: &str, rows: usize) {
    exec_sqlite(
        &p.path().join(db),
        &format!(
            "CREATE TABLE big (id INTEGER PRIMARY KEY, name TEXT);
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
             INSERT INTO big SELECT i, 'name ' || i FROM n"
        ),
    );
}

#[test]
fn a_table_split_into_key_ranges_reports_as_one_table_whose_ranges_add_up() {
    let p = project();
    big_sqlite(&p, "src.db", 30_000);
    p.write(
        "split.toml",
        "name = \"split\"\n[source]\ntype = \"sqlite\"\npath = \"src.db\"\n[destination]\ntype = \"sqlite\"\npath = \"out/copy.db\"\n[settings]\nbatch_size = 500\nsplit_rows = 5000\nparallel_tables = 3\n[[tables]]\nsource = \"big\"\n",
    );
    let run = p.run_ok(&["run", "split.toml", "--json"]);
    let events = events(&run.stdout);
    let started = of_kind(&events, "table_started");
    assert_eq!(
        started.len(),
        1,
        "one table, not one per range: {started:?}"
    );
    assert_eq!(started[0]["table"], "big");
    assert_eq!(started[0]["ranges"], 6);
    let progress = of_kind(&events, "progress");
    assert!(
        progress.iter().all(|e| e["table"] == "big"),
        "progress names the table, not its ranges: {progress:?}"
    );
    assert!(progress.iter().all(|e| e["total"] == 30_000));
    let done: Vec<u64> = progress.iter().map(|e| int(&e["done"])).collect();
    assert!(
        done.windows(2).all(|w| w[0] < w[1]),
        "each batch adds to the table's sum: {done:?}"
    );
    let last = progress.last().expect("progress events");
    assert_eq!(last["done"], 30_000, "the ranges add up to the table");
    assert_eq!(last["written"], 30_000);
    assert_eq!(last["eta_s"], 0.0);
    let ranges: std::collections::BTreeSet<&str> = progress
        .iter()
        .map(|e| e["range"].as_str().expect("a range"))
        .collect();
    assert_eq!(ranges.len(), 6, "each range shown as detail: {ranges:?}");
    assert!(ranges.iter().all(|r| r.ends_with("/6")), "{ranges:?}");
    let finished = of_kind(&events, "table_finished");
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["table"], "big");
    assert_eq!(finished[0]["done"], 30_000);
    assert!(!run.stdout.contains("big#"), "{}", run.stdout);
}

const PEOPLE: u64 = 200_000;

#[test]
fn a_resumed_run_reports_its_own_pace_and_the_whole_table() {
    let p = project();
    let rows: Vec<String> = (1..=PEOPLE).map(|i| format!("{i},name {i}")).collect();
    p.csv("people", "id,name", &rows);
    p.write("m.toml", &CSV_TO_SQLITE.replace("resume-me", "resumed"));
    kill_midway(&p, &["run", "m.toml"], || {
        committed_rows(&p, "out/vault.db") >= 20_000
    });
    let run = p.run_ok(&["run", "m.toml", "--json"]);
    let events = events(&run.stdout);
    let started = of_kind(&events, "table_started")[0];
    let resumed_at = int(&started["resumed_at"]);
    assert!(
        (20_000..PEOPLE).contains(&resumed_at),
        "resumed part-way: {started}"
    );
    let first = of_kind(&events, "progress")[0];
    assert_eq!(first["resumed_at"], resumed_at, "{first}");
    let (done, elapsed) = (int(&first["done"]), first["elapsed_s"].as_f64().unwrap());
    assert!(done > resumed_at, "done counts the table's rows: {first}");
    let rate = first["rows_per_s"].as_f64().expect("a rate");
    let this_run = (done - resumed_at) as f64;
    assert!(
        (rate * elapsed - this_run).abs() <= this_run * 1e-6,
        "the rate is this run's rows over this run's time: {first}"
    );
    let eta = first["eta_s"].as_f64().expect("an ETA once rows moved");
    let left = (PEOPLE - done) as f64;
    assert!(
        (eta * rate - left).abs() <= left * 1e-6,
        "the ETA is the rows left at this run's pace: {first}"
    );
    let finished = of_kind(&events, "table_finished")[0];
    assert_eq!(finished["done"], PEOPLE, "the whole table: {finished}");
    assert_eq!(
        int(&finished["counts"]["read"]),
        PEOPLE - resumed_at,
        "{finished}"
    );
}

fn orders(p: &Project, sql: &str) {
    exec_sqlite(&p.path().join("src.db"), sql);
}

const CRONNY: &str = r#"name = "cronny"
[source]
type = "sqlite"
path = "src.db"
[destination]
type = "sqlite"
path = "vault.db"
[settings]
on_error = "flag"
[sync]
mode = "incremental"
detect_deletes = true
[[tables]]
source = "orders"
cursor = "updated_at"
[tables.columns.qty]
type = "int"
"#;

#[test]
fn a_sync_s_progress_names_the_table_and_the_sync_not_its_scratch_copies() {
    let p = project();
    orders(
        &p,
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, qty, updated_at TEXT NOT NULL);
         INSERT INTO orders VALUES (1, 1, '2024-01-01'), (2, 2, '2024-01-02'), (3, 'lots', '2024-01-03')",
    );
    p.write("m.toml", CRONNY);
    p.run_ok(&["sync", "m.toml", "--json"]);
    orders(
        &p,
        "INSERT INTO orders VALUES (4, 4, '2024-02-01'); DELETE FROM orders WHERE id = 1",
    );
    let sync = p.run_ok(&["sync", "m.toml", "--json"]);
    for scratch in ["credvault_stage_", "credvault_keys_", "cronny#sync"] {
        assert!(!sync.stdout.contains(scratch), "{scratch}: {}", sync.stdout);
    }
    let events = events(&sync.stdout);
    let runs = of_kind(&events, "run_started");
    assert_eq!(runs.len(), 2, "the rows, then the keys: {runs:?}");
    assert!(
        runs.iter()
            .all(|e| e["migration"] == "cronny" && e["sync"] == 2),
        "{runs:?}"
    );
    for kind in ["table_started", "progress", "table_finished"] {
        let found = of_kind(&events, kind);
        assert!(!found.is_empty(), "no {kind}");
        assert!(found.iter().all(|e| e["table"] == "orders"), "{found:?}");
    }
    let failed = of_kind(&events, "row_failed");
    assert!(!failed.is_empty(), "the bad row is read again");
    assert!(failed.iter().all(|e| e["failure"]["table"] == "orders"));
}

const PEOPLE_360: &str = r#"name = "people-360"
[destination]
type = "sqlite"
path = "vault.db"
[settings]
on_error = "flag"
[connections.crm]
type = "csv"
path = "crm"
[connections.shop]
type = "csv"
path = "shop"
[[tables]]
connection = "crm"
source = "people"
[tables.columns.age]
type = "int"
[[tables]]
connection = "shop"
source = "people"
[tables.columns.age]
type = "int"
[consolidate.people]
key = ["email"]
rule = "priority"
priority = ["crm", "shop"]
if_exists = "replace"
"#;

#[test]
fn a_consolidation_s_progress_names_the_table_and_each_source() {
    let p = project();
    p.write(
        "crm/people.csv",
        "email,name,age\nada@example.com,Ada (crm),36\nalan@example.com,Alan (crm),old\n",
    );
    p.write(
        "shop/people.csv",
        "email,name,age\nada@example.com,Ada (shop),37\ngrace@example.com,Grace (shop),45\n",
    );
    p.write("m.toml", PEOPLE_360);
    for args in [["run", "m.toml", "--json"], ["sync", "m.toml", "--json"]] {
        let run = p.run_ok(&args);
        // The summary after the events (`consolidation_finished`, the
        // sync's) reports each part's run as the state store keeps it.
        let events: Vec<Value> = events(&run.stdout)
            .into_iter()
            .filter(|e| {
                e.get("event")
                    .is_some_and(|k| k != "consolidation_finished")
            })
            .collect();
        let text = serde_json::to_string(&events).unwrap();
        assert!(!text.contains("credvault_part"), "{text}");
        assert!(!text.contains("people-360#"), "{text}");
        let runs = of_kind(&events, "run_started");
        let sources: Vec<&Value> = runs.iter().map(|e| &e["source"]).collect();
        assert_eq!(sources, ["crm", "shop"], "{runs:?}");
        assert!(runs.iter().all(|e| e["migration"] == "people-360"));
        for kind in ["table_started", "progress", "table_finished"] {
            let found = of_kind(&events, kind);
            let named: Vec<String> = found
                .iter()
                .map(|e| format!("{} from {}", e["table"], e["source"]))
                .collect();
            assert_eq!(
                named,
                ["\"people\" from \"crm\"", "\"people\" from \"shop\""],
                "{kind}"
            );
        }
        let failed = of_kind(&events, "row_failed");
        assert_eq!(failed.len(), 1, "{failed:?}");
        assert_eq!(failed[0]["failure"]["table"], "people");
        assert_eq!(failed[0]["source"], "crm");
    }
    let sync = p.run_ok(&["sync", "m.toml", "--json"]);
    let runs = of_kind(&events(&sync.stdout), "run_started")
        .iter()
        .map(|e| e["sync"].clone())
        .collect::<Vec<_>>();
    assert_eq!(runs, [2, 2], "both parts are steps of sync 2");
}
