//! Validation, dry runs and environments on CSV → SQLite: the checksum and
//! the counts catch each kind of tampering with the destination.

use credvault_tests::{Project, exec_sqlite, people};

use super::servers::{Scratch, TestDb};
use super::{people_migration, project};

/// A project with 500 people moved to SQLite (run validated on the way).
fn moved() -> Project {
    let p = project();
    p.csv("people", "id,name,score", &people(500));
    p.write("m.toml", &people_migration("validate_sample = 50", ""));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("validation of `people-move`: passed"),
        "{}",
        run.all()
    );
    p
}

fn tamper(p: &Project, sql: &str) {
    exec_sqlite(&p.path().join("out/vault.db"), sql);
}

/// Runs `credvault validate` expecting it to fail, and returns its output.
fn validate_fails(p: &Project, args: &[&str]) -> String {
    let mut all = vec!["validate", "m.toml"];
    all.extend(args);
    let run = p.run(&all);
    assert_eq!(run.code, 1, "validation should fail:\n{}", run.all());
    run.stdout
}

fn line<'a>(out: &'a str, check: &str) -> &'a str {
    out.lines()
        .find(|l| l.contains(&format!("] {check}:")))
        .unwrap_or_else(|| panic!("no `{check}` line in:\n{out}"))
}

#[test]
fn an_untouched_destination_passes_every_check() {
    let p = moved();
    let run = p.run_ok(&["validate", "m.toml", "--html", "report.html"]);
    for check in [
        "column count",
        "data types",
        "row count",
        "null counts",
        "checksum",
        "spot check",
    ] {
        assert!(
            line(&run.stdout, check).contains("[pass]"),
            "{}",
            run.stdout
        );
    }
    let html = std::fs::read_to_string(p.path().join("report.html")).unwrap();
    assert!(html.contains("Validation of people-move: passed"), "{html}");
    let json = p.run_ok(&["validate", "m.toml", "--json"]);
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["passed"], true);
    assert_eq!(report["tables"][0]["lines"].as_array().unwrap().len(), 6);
}

#[test]
fn a_changed_value_fails_the_checksum_and_the_spot_check_names_it() {
    let p = moved();
    tamper(&p, "UPDATE people SET name = 'someone else' WHERE id = 250");
    let out = validate_fails(&p, &[]);
    assert!(line(&out, "checksum").contains("[FAIL]"), "{out}");
    assert!(line(&out, "row count").contains("[pass]"), "{out}");
    // With every row sampled, the spot check finds the row and the column.
    let out = validate_fails(&p, &["--sample", "1000"]);
    assert!(
        line(&out, "spot check")
            .contains(r#"id=250: column name expected "person 250", destination "someone else""#),
        "{out}"
    );
}

#[test]
fn a_missing_row_fails_the_count_and_the_checksum() {
    let p = moved();
    tamper(&p, "DELETE FROM people WHERE id = 17");
    let out = validate_fails(&p, &["--sample", "1000"]);
    assert!(
        line(&out, "row count").contains("expected 500, destination 499"),
        "{out}"
    );
    assert!(line(&out, "checksum").contains("[FAIL]"), "{out}");
    assert!(
        line(&out, "spot check").contains("id=17: missing at the destination"),
        "{out}"
    );
}

#[test]
fn a_duplicated_row_fails_the_count_and_the_checksum() {
    let p = moved();
    tamper(&p, "INSERT INTO people SELECT * FROM people WHERE id = 99");
    let out = validate_fails(&p, &["--sample", "1000"]);
    assert!(
        line(&out, "row count").contains("expected 500, destination 501"),
        "{out}"
    );
    assert!(line(&out, "checksum").contains("[FAIL]"), "{out}");
    assert!(
        line(&out, "spot check").contains("id=99: 2 rows at the destination, 1 expected"),
        "{out}"
    );
}

#[test]
fn a_null_where_a_value_was_fails_the_null_counts() {
    let p = moved();
    tamper(&p, "UPDATE people SET score = NULL WHERE id = 3");
    let out = validate_fails(&p, &[]);
    assert!(
        line(&out, "null counts").contains("score: expected 0, destination 1"),
        "{out}"
    );
}

#[test]
fn validation_failures_are_in_the_audit_log() {
    let p = moved();
    tamper(&p, "DELETE FROM people WHERE id = 1");
    // No spot check, so which checks fail does not depend on the sample.
    validate_fails(&p, &["--sample", "0"]);
    let log = p.run_ok(&["log", "--json"]);
    let last: serde_json::Value = serde_json::from_str(log.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "validated");
    assert_eq!(last["detail"]["passed"], false);
    assert_eq!(
        last["detail"]["failed"],
        serde_json::json!(["people: row count", "people: checksum"])
    );
}

#[test]
fn rows_refused_by_the_destination_are_expected_to_be_missing() {
    let p = project();
    p.csv("people", "id,name,score", &people(20));
    // The destination refuses a duplicate key: it lands once, is flagged
    // once, and validation still passes.
    std::fs::create_dir_all(p.path().join("out")).unwrap();
    std::fs::write(p.path().join("out/vault.db"), "").unwrap();
    tamper(
        &p,
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, score INTEGER)",
    );
    let mut rows = people(20);
    rows.push("7,person seven again,1".into());
    p.csv("people", "id,name,score", &rows);
    p.write(
        "m.toml",
        &people_migration("on_error = \"flag\"", "if_exists = \"append\""),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("1 flagged"), "{}", run.all());
    assert!(
        run.stdout.contains("validation of `people-move`: passed"),
        "{}",
        run.all()
    );
    let run = p.run_ok(&["validate", "m.toml", "--sample", "100"]);
    assert!(
        line(&run.stdout, "spot check").contains("[pass] spot check: 20 random rows"),
        "the refused duplicate is not expected, the landed row is: {}",
        run.all()
    );
}

#[test]
fn a_dry_run_writes_validates_and_drops_scratch_tables_only() {
    let p = project();
    p.csv("people", "id,name,score", &people(100));
    p.write("m.toml", &people_migration("", ""));
    let run = p.run_ok(&["run", "m.toml", "--dry-run"]);
    assert!(run.stdout.contains("100 written"), "{}", run.all());
    assert!(run.stdout.contains("people → people"), "{}", run.all());
    assert!(
        !run.all().contains("credvault_dry"),
        "progress and reports name the table, not its scratch copy: {}",
        run.all()
    );
    let log = p.run_ok(&["log"]);
    assert!(!log.stdout.contains("credvault_dry"), "{}", log.all());
    assert!(run.stdout.contains("[pass] checksum"), "{}", run.all());
    let tables = p.query(
        "out/vault.db",
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '_credvault_checkpoints'",
    );
    assert!(tables.is_empty(), "nothing is left behind: {tables:?}");
    // The real run afterwards starts fresh and lands everything.
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout
            .contains("run 1 succeeded: 100 read, 100 written"),
        "{}",
        run.all()
    );
}

#[test]
fn an_environment_swaps_the_destination_and_keeps_its_own_runs() {
    let p = project();
    p.csv("people", "id,name,score", &people(10));
    let m = people_migration("", "")
        + "[environments.staging]\ndestination = { type = \"sqlite\", path = \"out/staging.db\" }\n";
    p.write("m.toml", &m);
    let run = p.run_ok(&["--env", "staging", "run", "m.toml"]);
    assert!(
        run.stdout.contains("`people-move@staging`"),
        "{}",
        run.all()
    );
    assert_eq!(
        p.query("out/staging.db", "SELECT count(*) FROM people"),
        [[Some("10".into())]]
    );
    assert!(
        !p.path().join("out/vault.db").exists(),
        "production untouched"
    );
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(
        p.query("out/vault.db", "SELECT count(*) FROM people"),
        [[Some("10".into())]]
    );
    let unknown = p.run(&["--env", "prod", "run", "m.toml"]);
    assert_eq!(unknown.code, 2, "{}", unknown.all());
    assert!(
        unknown
            .stderr
            .contains("environment `prod` is not defined; the migration file has: staging"),
        "{}",
        unknown.all()
    );
}

/// A PostgreSQL table of awkward values copied PG → PG (validated by the
/// run), then tampered with in each way on the real server.
#[test]
fn postgres_validation_catches_a_changed_value_a_missing_and_a_duplicated_row() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.accounts (id int PRIMARY KEY, owner text, balance numeric(12,2), seen timestamptz, doc jsonb);
         INSERT INTO {s}.accounts SELECT i, 'owner ' || i, i * 1.5, '2024-01-01 00:00:00.000001+00'::timestamptz + i * interval '1 second',
           jsonb_build_object('b', i, 'a', 'x') FROM generate_series(1, 300) i;
         UPDATE {s}.accounts SET owner = NULL WHERE id % 50 = 0;
         CREATE SCHEMA {s}_out",
    );
    let p = project();
    let destination = format!(
        "[destination]\ntype = \"postgres\"\ndatabase = \"test\"\nuser = \"postgres\"\nschema = \"{}_out\"\n",
        s.schema
    );
    p.write(
        "m.toml",
        &format!(
            "name = \"pg-validate\"\n{}{destination}[[tables]]\nsource = \"accounts\"\n",
            s.endpoint("source", "")
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("[pass] checksum"), "{}", run.all());
    assert!(
        run.stdout.contains("6 NULLs over 5 columns match"),
        "{}",
        run.all()
    );
    let out = format!("{}_out", s.schema);
    let tampered = |sql: &str| {
        s.exec(&sql.replace("{o}", &out));
        let text = validate_fails(&p, &["--sample", "1000"]);
        s.exec(&format!(
            "TRUNCATE {out}.accounts; INSERT INTO {out}.accounts SELECT * FROM {}.accounts",
            s.schema
        ));
        text
    };
    let changed = tampered("UPDATE {o}.accounts SET balance = balance + 0.01 WHERE id = 7");
    assert!(line(&changed, "checksum").contains("[FAIL]"), "{changed}");
    assert!(
        line(&changed, "spot check")
            .contains(r#"id=7: column balance expected "10.50", destination "10.51""#),
        "{changed}"
    );
    let missing = tampered("DELETE FROM {o}.accounts WHERE id = 8");
    assert!(
        line(&missing, "row count").contains("expected 300, destination 299"),
        "{missing}"
    );
    let duplicated = tampered("INSERT INTO {o}.accounts SELECT * FROM {o}.accounts WHERE id = 9");
    assert!(
        line(&duplicated, "row count").contains("destination 301"),
        "{duplicated}"
    );
    assert!(
        line(&duplicated, "checksum").contains("[FAIL]"),
        "{duplicated}"
    );
    p.run_ok(&["validate", "m.toml"]);
}

/// MariaDB → MariaDB: the run validates (decimals padded by the server and
/// JSON reformatted still compare), and a tampered row is caught.
#[test]
fn mariadb_validation_compares_canonical_values_and_catches_tampering() {
    let source = TestDb::new();
    let destination = TestDb::new();
    source.exec(
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price DECIMAL(10,2), doc JSON, at DATETIME(6));
         INSERT INTO items VALUES (1, 'one', 1.50, '{\"b\": 1, \"a\": [1, 2]}', '2024-02-29 13:45:00.123456'),
           (2, NULL, NULL, NULL, NULL), (3, 'three', -0.01, '[]', '1970-01-01 00:00:00')",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"maria-validate\"\n[source]\n{}\n[destination]\n{}\n[[tables]]\nsource = \"items\"\n",
            source.endpoint(),
            destination.endpoint()
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout
            .contains("validation of `maria-validate`: passed"),
        "{}",
        run.all()
    );
    destination.exec("UPDATE items SET name = 'ONE' WHERE id = 1");
    let out = validate_fails(&p, &["--sample", "10"]);
    assert!(
        line(&out, "spot check").contains(r#"id=1: column name expected "one", destination "ONE""#),
        "{out}"
    );
}

/// CSV → SQLite of a table without a key: whole rows are what the spot
/// check matches, so identical rows are counted.
const KEYLESS: &str = r#"name = "keyless"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
validate_sample = 1000
[[tables]]
source = "visits"
[tables.columns.n]
type = "int"
"#;

#[test]
fn a_keyless_table_with_duplicate_rows_passes_and_a_lost_or_changed_duplicate_fails() {
    let p = project();
    let mut rows: Vec<String> = (1..=40).map(|i| format!("{i},page {}", i % 7)).collect();
    rows.extend(["3,page 3", "5,page 5", "5,page 5"].map(String::from));
    p.csv("visits", "n,page", &rows);
    p.write("m.toml", KEYLESS);
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        line(&run.stdout, "spot check").contains("[pass] spot check: 43 random rows"),
        "{}",
        run.all()
    );
    let copies = "SELECT n, count(*) FROM visits WHERE n IN (3, 5) GROUP BY n ORDER BY n";
    assert_eq!(
        p.query("out/vault.db", copies),
        [
            [Some("3".into()), Some("2".into())],
            [Some("5".into()), Some("3".into())]
        ]
    );
    // One of the three copies lost.
    tamper(
        &p,
        "DELETE FROM visits WHERE rowid = (SELECT max(rowid) FROM visits WHERE n = 5)",
    );
    let out = validate_fails(&p, &[]);
    assert!(
        line(&out, "spot check").contains("2 rows at the destination, 3 expected"),
        "{out}"
    );
    assert!(
        line(&out, "row count").contains("expected 43, destination 42"),
        "{out}"
    );
    // Back to three, one of them changed.
    tamper(&p, "INSERT INTO visits VALUES (5, 'page five'); ");
    let out = validate_fails(&p, &[]);
    assert!(line(&out, "checksum").contains("[FAIL]"), "{out}");
    assert!(
        line(&out, "spot check").contains("2 rows at the destination, 3 expected"),
        "{out}"
    );
    assert!(
        line(&out, "spot check").contains("at the destination but not in the source"),
        "{out}"
    );
    tamper(
        &p,
        "UPDATE visits SET page = 'page 5' WHERE page = 'page five'",
    );
    p.run_ok(&["validate", "m.toml"]);
}

/// PostgreSQL numeric NaN/±Infinity and float8 -0.0, to SQLite, MariaDB
/// and PostgreSQL: each run validates, what each destination holds is
/// as the README's type table says, and a real change still fails.
fn special_numbers() -> Scratch {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.nums (id int PRIMARY KEY, d numeric, f float8);
         INSERT INTO {s}.nums VALUES (1, 'NaN', '-0'), (2, 'Infinity', 0), (3, '-Infinity', '-0'),
           (4, 1.50, -1.5), (5, '-0.00', 'NaN'), (6, NULL, NULL)",
    );
    s
}

fn special_numbers_migration(s: &Scratch, destination: &str) -> String {
    format!(
        "name = \"nums\"\n{}[destination]\n{destination}\n[settings]\nvalidate_sample = 100\n[[tables]]\nsource = \"nums\"\n",
        s.endpoint("source", "")
    )
}

#[test]
fn nan_and_infinite_decimals_and_negative_zero_validate_into_sqlite() {
    let s = special_numbers();
    let p = project();
    let m = special_numbers_migration(&s, "type = \"sqlite\"\npath = \"out/vault.db\"");
    p.write("m.toml", &m);
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("validation of `nums`: passed"),
        "{}",
        run.all()
    );
    let held = p.query(
        "out/vault.db",
        "SELECT id, d, typeof(d), f, typeof(f) FROM nums ORDER BY id",
    );
    let text = |v: &str| Some(v.to_string());
    assert_eq!(held[0][1..3], [text("NaN"), text("text")]);
    assert_eq!(held[1][1..3], [text("Infinity"), text("text")]);
    assert_eq!(held[2][1..3], [text("-Infinity"), text("text")]);
    // SQLite keeps no negative zero in a REAL column (README's type table).
    assert_eq!(held[0][3..5], [text("0"), text("real")]);
    assert_eq!(held[4][3..5], [text("NaN"), text("text")]);
    tamper(&p, "UPDATE nums SET d = 'Infinity' WHERE id = 1");
    let out = validate_fails(&p, &[]);
    assert!(
        line(&out, "spot check")
            .contains(r#"id=1: column d expected "NaN", destination "Infinity""#),
        "{out}"
    );
    tamper(&p, "UPDATE nums SET d = 'NaN' WHERE id = 1");
    p.run_ok(&["validate", "m.toml"]);
}

#[test]
fn negative_zero_stays_in_postgres_and_losing_it_fails_validation() {
    let s = special_numbers();
    s.exec("CREATE SCHEMA {s}_out");
    let p = project();
    let out_schema = format!("{}_out", s.schema);
    let destination = format!(
        "type = \"postgres\"\ndatabase = \"test\"\nuser = \"postgres\"\nschema = \"{out_schema}\""
    );
    p.write("m.toml", &special_numbers_migration(&s, &destination));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("validation of `nums`: passed"),
        "{}",
        run.all()
    );
    let signs =
        format!("SELECT id, f::text, d::text FROM {out_schema}.nums WHERE id <= 3 ORDER BY id");
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        s.rows(&signs),
        [
            [text("1"), text("-0"), text("NaN")],
            [text("2"), text("0"), text("Infinity")],
            [text("3"), text("-0"), text("-Infinity")]
        ]
    );
    s.exec(&format!("UPDATE {out_schema}.nums SET f = 0 WHERE id = 3"));
    let out = validate_fails(&p, &[]);
    assert!(line(&out, "checksum").contains("[FAIL]"), "{out}");
    assert!(
        line(&out, "spot check").contains(r#"id=3: column f expected "-0", destination "0""#),
        "{out}"
    );
}

#[test]
fn negative_zero_into_mariadb_becomes_zero_as_documented_and_validates() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.nums (id int PRIMARY KEY, d numeric(6,2), f float8);
         INSERT INTO {s}.nums VALUES (1, '-0.00', '-0'), (2, 1.5, -1.5), (3, 0, 0)",
    );
    let db = TestDb::new();
    let p = project();
    p.write("m.toml", &special_numbers_migration(&s, &db.endpoint()));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("validation of `nums`: passed"),
        "{}",
        run.all()
    );
    // The sign of a DOUBLE zero is lost by the server (atan2 tells it).
    let held = db.query("SELECT d, f, atan2(f, -1) > 0 FROM nums WHERE id = 1");
    let text = |v: &str| Some(v.to_string());
    assert_eq!(held, [[text("0.00"), text("0"), text("1")]]);
    db.exec("UPDATE nums SET f = 1 WHERE id = 1");
    let out = validate_fails(&p, &[]);
    assert!(
        line(&out, "spot check").contains(r#"id=1: column f expected "0", destination "1""#),
        "{out}"
    );
}
