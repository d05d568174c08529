//! End-to-end runs of the CLI as a user would type them.

use credvault_tests::{exec_sqlite, guests, people};

use super::{people_migration, project};

#[test]
fn csv_to_sqlite_with_expression_transform_keeps_types_and_values() {
    let p = project();
    p.csv(
        "customers",
        "customer_id,email,tier,signup,birth_year,notes",
        &[
            "1, Ada@Example.COM ,gold,01/31/2020,1990,x".into(),
            "2,grace@example.com,silver,12/01/2021,,y".into(),
        ],
    );
    p.write(
        "m.toml",
        r#"name = "crm"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[[tables]]
source = "customers"
destination = "clients"
[tables.columns.customer_id]
rename = "id"
type = "int"
[tables.columns.notes]
skip = true
[tables.columns.birth_year]
type = "int"
[tables.columns.tier]
type = "int"
map = { gold = 1, silver = 2 }
[[tables.transforms]]
plugin = "expr"
config.expressions = [
  "email = lower(strip(email))",
  "signup = parse_date(signup, 'MM/DD/YYYY')",
  "age = current_year() - birth_year",
]
"#,
    );
    let check = p.run_ok(&["check", "m.toml"]);
    assert!(
        check.stdout.contains("customer_id text → id int"),
        "{}",
        check.all()
    );
    assert!(
        check.stdout.contains("→ age int (from a transform)"),
        "{}",
        check.all()
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("2 written"), "{}", run.all());
    let rows = p.query(
        "out/vault.db",
        "SELECT id, email, tier, signup, birth_year, age IS NULL, typeof(id), typeof(tier) FROM clients ORDER BY id",
    );
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows[0],
        [
            s("1"),
            s("ada@example.com"),
            s("1"),
            s("2020-01-31"),
            s("1990"),
            s("0"),
            s("integer"),
            s("integer")
        ]
    );
    assert_eq!(rows[1][4], None, "an empty CSV field stays NULL");
    assert_eq!(rows[1][5], s("1"), "arithmetic on NULL gives NULL");
    let columns = p.query(
        "out/vault.db",
        "SELECT name, type FROM pragma_table_info('clients')",
    );
    let declared: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", c[0].as_deref().unwrap(), c[1].as_deref().unwrap()))
        .collect();
    assert_eq!(
        declared,
        [
            "id INTEGER",
            "email TEXT",
            "tier INTEGER",
            "signup DATE_TEXT",
            "birth_year INTEGER",
            "age INTEGER"
        ]
    );
}

#[test]
fn preview_shows_mapped_rows_and_the_type_mapping_without_writing() {
    let p = project();
    p.csv("people", "id,name,score", &people(20));
    p.write(
        "m.toml",
        &people_migration("", "[[tables.transforms]]\nplugin = \"expr\"\nconfig.expressions = [\"name = upper(name)\", \"double = score * 2\"]\n"),
    );
    let run = p.run_ok(&["preview", "m.toml", "--rows", "2"]);
    assert!(run.stdout.contains("20 rows in source"), "{}", run.all());
    assert!(run.stdout.contains("PERSON 2"), "{}", run.all());
    assert!(
        !run.stdout.contains("PERSON 3"),
        "only two rows: {}",
        run.all()
    );
    assert!(
        !p.path().join("out/vault.db").exists(),
        "preview must not write"
    );
    let json = p.run_ok(&["preview", "m.toml", "--rows", "1", "--json"]);
    let parsed: serde_json::Value =
        serde_json::from_str(&json.stdout).expect("preview --json is JSON");
    assert_eq!(parsed[0]["rows"][0]["double"], 20);
    assert_eq!(parsed[0]["mapping"][2]["to_type"], "int");
}

#[test]
fn json_events_report_progress_per_batch() {
    let p = project();
    p.csv("people", "id,name,score", &people(250));
    p.write("m.toml", &people_migration("batch_size = 100", ""));
    let run = p.run_ok(&["run", "m.toml", "--json"]);
    let events: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        [
            "run_started",
            "restore_point",
            "table_started",
            "progress",
            "progress",
            "progress",
            "table_finished",
            "run_finished",
            "validated"
        ]
    );
    assert_eq!(events[1]["tables"], 1);
    assert_eq!(events[5]["done"], 250);
    assert_eq!(events[5]["total"], 250);
    assert_eq!(events[7]["status"], "succeeded");
    assert_eq!(events[8]["report"]["passed"], true);
}

#[test]
fn an_existing_destination_table_is_never_overwritten_by_default() {
    let p = project();
    p.csv("people", "id,name,score", &people(3));
    p.write("m.toml", &people_migration("", ""));
    p.run_ok(&["run", "m.toml"]);
    let again = p.run(&["run", "m.toml"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(
        again
            .stderr
            .contains("already exists with 3 rows from an earlier run of this migration")
            && again.stderr.contains("if_exists = \"replace\""),
        "{}",
        again.all()
    );
    assert!(
        !again.stderr.contains("restore point people-move"),
        "refused before anything: {}",
        again.all()
    );
    // A continuous migration's `check` passes on its own table (its syncs
    // update it); no check advises replacing a table the migration did
    // not create.
    let continuous = "\n[sync]\nkind = \"continuous\"\nevery = \"1h\"\n";
    p.write(
        "m.toml",
        &format!("{}{continuous}", people_migration("", "")),
    );
    let check = p.run_ok(&["check", "m.toml"]);
    assert!(
        check.stdout.contains(
            "holds 3 rows from an earlier run of this migration: its syncs bring it up to date"
        ),
        "{}",
        check.all()
    );
    exec_sqlite(
        &p.path().join("out/vault.db"),
        "DROP TABLE people; CREATE TABLE people (id INTEGER, name TEXT, score INTEGER)",
    );
    let theirs = p.run(&["check", "m.toml"]);
    assert_eq!(theirs.code, 1, "{}", theirs.all());
    assert!(
        theirs.stdout.contains("this migration did not create it")
            && !theirs.stdout.contains("\"replace\""),
        "{}",
        theirs.all()
    );
    assert!(
        theirs.stdout.contains("[FAIL] destination table people"),
        "{}",
        theirs.all()
    );
    p.write("m.toml", &people_migration("", "if_exists = \"replace\""));
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(
        p.query("out/vault.db", "SELECT count(*) FROM people")[0][0].as_deref(),
        Some("3")
    );
}

#[test]
fn sqlite_source_to_csv_destination() {
    let p = project();
    p.csv("people", "id,name,score", &people(5));
    p.write("m.toml", &people_migration("", ""));
    p.run_ok(&["run", "m.toml"]);
    p.write(
        "back.toml",
        "name = \"back\"\n[source]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[destination]\ntype = \"csv\"\npath = \"export\"\n[[tables]]\nsource = \"people\"\n",
    );
    let check = p.run_ok(&["check", "back.toml"]);
    assert!(
        check.stdout.contains("all 6 checks passed") || check.stdout.contains("checks passed"),
        "{}",
        check.all()
    );
    p.run_ok(&["run", "back.toml"]);
    let text = std::fs::read_to_string(p.path().join("export/people.csv")).unwrap();
    assert_eq!(text.lines().next(), Some("id,name,score"));
    assert_eq!(text.lines().nth(5), Some("5,person 5,50"));
}

#[test]
fn a_third_party_plugin_built_with_the_sdk_runs_in_a_migration() {
    let p = project();
    p.csv("people", "id,name,score", &people(3));
    let table = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ suffix = \" (migrated)\" }}\n",
        guests::ADD_SUFFIX
    );
    p.write("m.toml", &people_migration("", &table));
    p.run_ok(&["run", "m.toml"]);
    let rows = p.query("out/vault.db", "SELECT name FROM people ORDER BY id");
    assert_eq!(rows[2][0].as_deref(), Some("person 3 (migrated)"));
}

#[test]
fn check_reports_mapping_errors_against_the_real_schema() {
    let p = project();
    p.csv("people", "id,name,score", &people(1));
    p.write(
        "m.toml",
        &people_migration(
            "",
            "[tables.columns.nmae]\nrename = \"full_name\"\n[[tables.transforms]]\nplugin = \"expr\"\nconfig.expressions = [\"x = name - 1\"]\n",
        ),
    );
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stdout
            .contains("no column `nmae`; did you mean `name`?"),
        "{}",
        run.all()
    );
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("[FAIL] table people mapping")
            && run.stderr.contains("the run did not start"),
        "{}",
        run.all()
    );
    let forced = p.run(&["run", "--force", "m.toml"]);
    assert_eq!(forced.code, 1);
    assert!(
        forced.stderr.contains("cannot be planned"),
        "{}",
        forced.all()
    );
}

#[test]
fn tables_are_selected_by_pattern_and_discover_shows_the_choice() {
    let p = project();
    p.csv("people", "id,name,score", &people(3));
    p.csv("pets", "id,name", &["1,rex".into()]);
    p.csv("tmp_scratch", "x", &["1".into()]);
    p.write(
        "m.toml",
        "name = \"all\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[select]\ninclude = [\"*\"]\nexclude = [\"tmp_*\"]\n[[tables]]\nsource = \"people\"\n[tables.columns.id]\ntype = \"int\"\n",
    );
    let discover = p.run_ok(&["discover", "m.toml"]);
    assert!(
        discover.stdout.contains("people (selected)"),
        "{}",
        discover.all()
    );
    assert!(
        discover.stdout.contains("pets (selected)"),
        "{}",
        discover.all()
    );
    assert!(
        discover.stdout.contains("tmp_scratch (not selected)"),
        "{}",
        discover.all()
    );
    assert!(
        discover.stdout.contains("    score text"),
        "{}",
        discover.all()
    );
    p.run_ok(&["run", "m.toml"]);
    let tables = p.query(
        "out/vault.db",
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY name",
    );
    let names: Vec<&str> = tables.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(names, ["people", "pets"]);
    assert_eq!(
        p.query("out/vault.db", "SELECT typeof(id) FROM people LIMIT 1")[0][0].as_deref(),
        Some("integer")
    );
}

#[test]
fn plugins_are_inspected_installed_by_name_and_pinned_by_sha256() {
    let p = project();
    p.csv("people", "id,name,score", &people(2));
    let inspect = p.run_ok(&["plugin", "inspect", guests::ADD_SUFFIX]);
    assert!(
        inspect.stdout.contains("world:    transform-plugin"),
        "{}",
        inspect.all()
    );
    assert!(
        inspect
            .stdout
            .contains("credvault:migrate@0.2.1 (host 0.2.1: compatible)"),
        "{}",
        inspect.all()
    );
    let json = p.run_ok(&["plugin", "inspect", guests::ADD_SUFFIX, "--json"]);
    let info: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let sha = info["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha.len(), 64);
    let install = p.run_ok(&[
        "plugin",
        "install",
        guests::ADD_SUFFIX,
        "--name",
        "suffixer",
    ]);
    assert!(
        install.stdout.contains(&format!("sha256 = \"{sha}\"")),
        "{}",
        install.all()
    );
    let table = |pin: &str| {
        format!(
            "[[tables.transforms]]\nplugin = \"suffixer\"\nsha256 = \"{pin}\"\nconfig = {{ suffix = \"!\" }}\n"
        )
    };
    p.write("m.toml", &people_migration("", &table(&sha)));
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(
        p.query("out/vault.db", "SELECT name FROM people WHERE id = 1")[0][0].as_deref(),
        Some("person 1!")
    );
    let wrong = "0".repeat(64);
    p.write("m.toml", &people_migration("", &table(&wrong)));
    let check = p.run(&["check", "m.toml"]);
    assert_eq!(check.code, 1);
    assert!(
        check.stdout.contains(&format!(
            "the plugin's sha256 is {sha} but the migration pins {wrong}"
        )),
        "{}",
        check.all()
    );
}

#[test]
fn a_file_that_is_not_a_plugin_of_this_host_is_refused_clearly() {
    let p = project();
    p.csv("people", "id,name,score", &people(1));
    p.write("junk.wasm", "not wasm at all");
    p.write(
        "m.toml",
        &people_migration("", "[[tables.transforms]]\nplugin = \"junk.wasm\"\n"),
    );
    let check = p.run(&["check", "m.toml"]);
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check
            .stdout
            .contains("plugin `junk.wasm` is not a usable transform-plugin component"),
        "{}",
        check.all()
    );
    p.write(
        "m.toml",
        &people_migration("", "[[tables.transforms]]\nplugin = \"nonexistent\"\n"),
    );
    let check = p.run(&["check", "m.toml"]);
    assert!(
        check
            .stdout
            .contains("no built-in or installed plugin `nonexistent`"),
        "{}",
        check.all()
    );
}

#[test]
fn the_audit_log_shows_checks_runs_and_their_results() {
    let p = project();
    let mut rows = people(3);
    rows[1] = "2,person 2,lots".into();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &people_migration("on_error = \"flag\"", ""));
    p.run_ok(&["check", "m.toml"]);
    p.run_ok(&["run", "m.toml"]);
    let log = p.run_ok(&["log", "--migration", "people-move", "--json"]);
    let events: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "created",
            "checked",
            "checked",
            "restore_point_created",
            "run_started",
            "row_flagged",
            "table_finished",
            "run_finished",
            "validating",
            "validated"
        ]
    );
    assert_eq!(events[1]["detail"]["failed"], serde_json::json!([]));
    assert_eq!(events[2]["detail"]["before_run"], true);
    assert_eq!(events[2]["detail"]["forced"], false);
    assert_eq!(events[3]["detail"]["tables"][0]["existed"], false);
    assert_eq!(events[5]["detail"]["key"], "id=2");
    assert_eq!(events[5]["detail"]["column"], "score");
    assert_eq!(events[6]["detail"]["counts"]["flagged"], 1);
    assert_eq!(events[7]["detail"]["status"], "succeeded");
    assert_eq!(events[8]["detail"]["sample"], 100);
    assert_eq!(events[9]["detail"]["passed"], true);
    assert!(
        events
            .iter()
            .all(|e| !e["actor"].as_str().unwrap().is_empty()
                && e["at"].as_str().unwrap().ends_with('Z'))
    );
    let text = p.run_ok(&["log"]);
    assert!(
        text.stdout.contains("people-move run_finished run 1 by"),
        "{}",
        text.all()
    );
}
