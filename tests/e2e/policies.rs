//! The row-error policies: skip, stop and flag, for mapping errors,
//! transform errors, plugin traps and broken plugin contracts.

use credvault_tests::{guests, people};

use super::{people_migration, project};

fn with_bad_score(p: &credvault_tests::Project) {
    let mut rows = people(6);
    rows[2] = "3,person 3,thirty".into();
    p.csv("people", "id,name,score", &rows);
}

#[test]
fn skip_counts_the_row_and_migrates_the_rest() {
    let p = project();
    with_bad_score(&p);
    p.write("m.toml", &people_migration("on_error = \"skip\"", ""));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("5 written") && run.stdout.contains("1 skipped"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr
            .contains("table `people`, row 3 (id=3), mapping, column `score`: expected int"),
        "the error names table, row, key, column and expectation: {}",
        run.all()
    );
    assert!(run.stderr.contains("got text \"thirty\""), "{}", run.all());
    let flagged = p.run_ok(&["flagged", "list"]);
    assert!(flagged.stdout.contains("0 flagged row(s)"));
}

#[test]
fn stop_halts_before_the_failing_batch_and_keeps_earlier_batches() {
    let p = project();
    with_bad_score(&p);
    p.write("m.toml", &people_migration("batch_size = 2", ""));
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("stopped on a failed row (policy `stop`)"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("row 3 (id=3)"), "{}", run.all());
    let ids = p.query("out/vault.db", "SELECT id FROM people ORDER BY id");
    assert_eq!(
        ids.len(),
        2,
        "only the batch before the failure is committed"
    );
}

#[test]
fn flag_keeps_the_row_its_error_and_position_for_review_and_export() {
    let p = project();
    with_bad_score(&p);
    p.write("m.toml", &people_migration("on_error = \"flag\"", ""));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("1 flagged"), "{}", run.all());
    let list = p.run_ok(&["flagged", "list", "--migration", "people-move"]);
    assert!(
        list.stdout
            .contains("people-move.people row 3 (id=3), mapping, column `score`"),
        "{}",
        list.all()
    );
    let jsonl = p.run_ok(&["flagged", "export", "--format", "jsonl"]);
    let row: serde_json::Value =
        serde_json::from_str(jsonl.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        row["row"],
        serde_json::json!({ "id": "3", "name": "person 3", "score": "thirty" })
    );
    assert_eq!(row["value"], "thirty");
    p.run_ok(&[
        "flagged",
        "export",
        "--format",
        "csv",
        "--output",
        "flagged.csv",
    ]);
    let csv = std::fs::read_to_string(p.path().join("flagged.csv")).unwrap();
    assert!(
        csv.starts_with(
            "id,run,migration,table,position,key,stage,column,value,error,id,name,score"
        ),
        "{csv}"
    );
    assert!(csv.contains(",thirty\n"), "{csv}");
}

#[test]
fn an_export_of_many_flagged_rows_holds_each_once() {
    let p = project();
    // 5,000 bad rows: the export reads them a page of 2,000 at a time.
    let rows: Vec<String> = (1..=5_000)
        .map(|i| format!("{i},person {i},bad{i}"))
        .collect();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &people_migration("on_error = \"flag\"", ""));
    p.run_ok(&["run", "m.toml"]);
    let jsonl = p.run_ok(&["flagged", "export"]).stdout;
    let positions: Vec<i64> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["position"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(positions, (1..=5_000).collect::<Vec<i64>>());
    let csv = p.run_ok(&["flagged", "export", "--format", "csv"]).stdout;
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("id,run,migration,table,position,key,stage,column,value,error,id,name,score")
    );
    assert_eq!(lines.clone().count(), 5_000);
    assert!(
        lines.last().unwrap().ends_with(",5000,person 5000,bad5000"),
        "{csv:.300}"
    );
}

#[test]
fn transform_row_errors_follow_the_policy() {
    let p = project();
    p.csv("people", "id,name,score", &people(4));
    let table = format!(
        "on_error = \"skip\"\n[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"row-error\", trigger = \"2\" }}\n",
        guests::HOSTILE
    );
    p.write("m.toml", &people_migration("", &table));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("3 written") && run.stdout.contains("1 skipped"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("refused on purpose"), "{}", run.all());
}

#[test]
fn a_plugin_that_breaks_its_contract_is_stopped_after_the_trap_budget() {
    let p = project();
    p.csv("people", "id,name,score", &people(10));
    let table = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"extra-rows\" }}\n",
        guests::HOSTILE
    );
    p.write(
        "m.toml",
        &people_migration("on_error = \"flag\"\nmax_plugin_traps = 3", &table),
    );
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("broke the plugin contract: returned 2 results for 1 rows"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr
            .contains("failed on 4 rows in this table (limit 3)"),
        "{}",
        run.all()
    );
}

#[test]
fn values_of_the_wrong_type_are_a_contract_violation() {
    let p = project();
    p.csv("people", "id,name,score", &people(1));
    let table = format!(
        "[tables.columns.id]\ntype = \"text\"\n[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"wrong-type\" }}\n",
        guests::HOSTILE
    );
    let m = people_migration("on_error = \"flag\"", &table)
        .replace("[tables.columns.id]\ntype = \"int\"\n", "");
    p.write("m.toml", &m);
    p.run_ok(&["run", "m.toml"]);
    let list = p.run_ok(&["flagged", "list"]);
    assert!(
        list.stdout
            .contains("column `id` is declared text but got int \"7\""),
        "{}",
        list.all()
    );
}

#[test]
fn a_plugin_failing_to_configure_fails_the_check() {
    let p = project();
    p.csv("people", "id,name,score", &people(1));
    let table = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"configure-panic\" }}\n",
        guests::HOSTILE
    );
    p.write("m.toml", &people_migration("", &table));
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.contains("panicked: configure exploded"),
        "{}",
        run.all()
    );
}

/// Tables `a` (into a table the user made without its `name` column) and
/// `b`, one at a time, under `policy`.
fn two_tables_the_first_failing(p: &credvault_tests::Project, policy: &str) {
    p.csv("a", "id,name", &["1,x".to_string()]);
    p.csv(
        "b",
        "id,name",
        &(1..=5).map(|i| format!("{i},b{i}")).collect::<Vec<_>>(),
    );
    std::fs::create_dir_all(p.path().join("out")).expect("out/");
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        "CREATE TABLE a (id INTEGER)",
    );
    p.write(
        "m.toml",
        &format!(
            "name = \"two\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n\
             [settings]\nparallel_tables = 1\non_error = \"{policy}\"\n\
             [[tables]]\nsource = \"a\"\nif_exists = \"append\"\n[[tables]]\nsource = \"b\"\n"
        ),
    );
}

#[test]
fn under_flag_a_failed_table_does_not_keep_the_others_from_loading() {
    let p = project();
    two_tables_the_first_failing(&p, "flag");
    let run = p.run(&["run", "m.toml", "--force"]);
    assert_eq!(run.code, 1, "the run ends failed: {}", run.all());
    assert!(run.all().contains("has no column(s) name"), "{}", run.all());
    assert_eq!(
        p.query("out/vault.db", "SELECT count(*) FROM b")[0][0].as_deref(),
        Some("5"),
        "{}",
        run.all()
    );
}

#[test]
fn under_stop_a_failed_table_stops_the_run_and_says_what_did_not_start() {
    let p = project();
    two_tables_the_first_failing(&p, "stop");
    let run = p.run(&["run", "m.toml", "--force"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains("b: skipped") || run.all().contains("not started"),
        "{}",
        run.all()
    );
    let tables = p.query(
        "out/vault.db",
        "SELECT count(*) FROM sqlite_schema WHERE name = 'b'",
    );
    assert_eq!(tables[0][0].as_deref(), Some("0"), "{}", run.all());
}
