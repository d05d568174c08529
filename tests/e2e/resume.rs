//! A run killed with SIGKILL resumes from its last committed checkpoint:
//! every row lands exactly once.

use std::time::{Duration, Instant};

use credvault_tests::Project;

use super::project;

/// Waits until `probe` says the run is part-way, then kills it.
pub(crate) fn kill_midway(p: &Project, args: &[&str], probe: impl Fn() -> bool) {
    let mut child = p.spawn(args);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !probe() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed; make the table bigger"
        );
        assert!(
            Instant::now() < deadline,
            "the run made no progress in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
}

pub(crate) fn committed_rows(p: &Project, db: &str) -> u64 {
    if !p.path().join(db).exists() {
        return 0;
    }
    let sql =
        "SELECT coalesce(max(json_extract(checkpoint, '$.rows')), 0) FROM _credvault_checkpoints";
    let rows = std::panic::catch_unwind(|| p.query(db, sql)).unwrap_or_default();
    rows.first()
        .and_then(|r| r[0].as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

const ROWS: usize = 200_000;

/// Ids 1..=ROWS each landed exactly once in `table`.
fn assert_every_id_once(p: &Project, db: &str, table: &str) {
    let sql = format!("SELECT count(*), count(DISTINCT id), sum(id) FROM {table}");
    let check = p.query(db, &sql);
    assert_eq!(
        check[0][0].as_deref(),
        Some(ROWS.to_string().as_str()),
        "every row exactly once"
    );
    assert_eq!(check[0][1], check[0][0], "no duplicates");
    assert_eq!(
        check[0][2].as_deref(),
        Some((ROWS * (ROWS + 1) / 2).to_string().as_str())
    );
}

fn big_csv(p: &Project) {
    let rows: Vec<String> = (1..=ROWS)
        .map(|i| format!("{i},name {i},{}", i % 97))
        .collect();
    p.csv("people", "id,name,score", &rows);
}

/// CSV → SQLite through the `expr` plugin, in batches of 500.
pub(crate) const CSV_TO_SQLITE: &str = r#"name = "resume-me"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 500
[[tables]]
source = "people"
[tables.columns.id]
type = "int"
[[tables.transforms]]
plugin = "expr"
config.expressions = ["name = upper(name)"]
"#;

#[test]
fn a_killed_csv_to_sqlite_run_resumes_without_loss_or_duplicates() {
    let p = project();
    big_csv(&p);
    p.write("m.toml", CSV_TO_SQLITE);
    kill_midway(&p, &["run", "m.toml"], || {
        committed_rows(&p, "out/vault.db") >= 20_000
    });
    let partial = p.query("out/vault.db", "SELECT count(*) FROM people")[0][0]
        .clone()
        .unwrap();
    assert!(
        partial.parse::<usize>().unwrap() < ROWS,
        "killed part-way ({partial} rows)"
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stderr.contains("resuming interrupted run 1"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains("people: resuming after row"),
        "{}",
        run.all()
    );
    assert_every_id_once(&p, "out/vault.db", "people");
    let names = p.query("out/vault.db", "SELECT max(name) FROM people");
    assert_eq!(names[0][0].as_deref(), Some("NAME 99999"));
    // A finished migration starts afresh (and refuses to overwrite).
    let again = p.run(&["run", "m.toml"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(again.stderr.contains("already exists"), "{}", again.all());
}

#[test]
fn a_killed_sqlite_to_csv_run_resumes_by_key() {
    let p = project();
    big_csv(&p);
    p.write("load.toml", &CSV_TO_SQLITE.replace("resume-me", "load"));
    p.run_ok(&["run", "load.toml"]);
    // Give the SQLite table a primary key, so reads resume by key.
    p.write(
        "keyed.sql",
        "CREATE TABLE keyed (id INTEGER PRIMARY KEY, name TEXT, score TEXT); INSERT INTO keyed SELECT id, name, score FROM people ORDER BY id DESC;",
    );
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        &std::fs::read_to_string(p.path().join("keyed.sql")).unwrap(),
    );
    p.write(
        "export.toml",
        "name = \"export\"\n[source]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[destination]\ntype = \"csv\"\npath = \"export\"\n[settings]\nbatch_size = 500\n[[tables]]\nsource = \"keyed\"\n",
    );
    let sidecar = p.path().join("export/.credvault/export.keyed.json");
    kill_midway(&p, &["run", "export.toml"], || {
        std::fs::read_to_string(&sidecar)
            .is_ok_and(|t| t.contains("\"rows\":") && !t.contains("\"rows\":0,"))
    });
    assert!(
        !p.path().join("export/keyed.csv").exists(),
        "a half-written table is never visible"
    );
    let run = p.run_ok(&["run", "export.toml"]);
    assert!(run.stderr.contains("resuming"), "{}", run.all());
    let text = std::fs::read_to_string(p.path().join("export/keyed.csv")).unwrap();
    let ids: Vec<u64> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(ids.len(), ROWS, "every row exactly once");
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in key order, no duplicates"
    );
}

#[test]
fn a_large_table_split_into_key_ranges_lands_exactly_once_even_when_killed() {
    let p = project();
    big_csv(&p);
    p.write("load.toml", &CSV_TO_SQLITE.replace("resume-me", "load"));
    p.run_ok(&["run", "load.toml"]);
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        "CREATE TABLE keyed (id INTEGER PRIMARY KEY, name TEXT, score TEXT); INSERT INTO keyed SELECT id, name, score FROM people;",
    );
    p.write(
        "split.toml",
        "name = \"split\"\n[source]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[destination]\ntype = \"sqlite\"\npath = \"out/copy.db\"\n[settings]\nbatch_size = 500\nsplit_rows = 40000\nparallel_tables = 3\n[[tables]]\nsource = \"keyed\"\n",
    );
    kill_midway(&p, &["run", "split.toml"], || {
        committed_rows(&p, "out/copy.db") >= 5_000
    });
    let run = p.run_ok(&["run", "split.toml", "--json"]);
    // The resumed run cuts the table into the same 5 ranges, and reports
    // them as the one table they fill.
    let progress: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "progress")
        .collect();
    assert!(!progress.is_empty(), "{}", run.all());
    assert!(
        progress.iter().all(
            |e| e["table"] == "keyed" && e["range"].as_str().is_some_and(|r| r.ends_with("/5"))
        ),
        "{progress:?}"
    );
    assert_every_id_once(&p, "out/copy.db", "keyed");
}

/// How many `kind` events the project's state store holds.
fn logged(p: &Project, kind: &str) -> u64 {
    let sql = format!("SELECT count(*) FROM events WHERE kind = '{kind}'");
    let rows =
        std::panic::catch_unwind(|| p.query(".credvault/state.db", &sql)).unwrap_or_default();
    rows.first()
        .and_then(|r| r[0].as_deref())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The runs as recorded: id, status, validation.
fn runs(p: &Project) -> Vec<Vec<Option<String>>> {
    p.query(
        ".credvault/state.db",
        "SELECT id, status, validation FROM runs ORDER BY id",
    )
}

/// Copies the big table, killed once its validation has started.
fn killed_while_validating(p: &Project) {
    big_csv(p);
    let m = CSV_TO_SQLITE.replace(
        "batch_size = 500",
        "batch_size = 500\nvalidate_sample = 200000",
    );
    p.write("m.toml", &m);
    kill_midway(p, &["run", "m.toml"], || logged(p, "validating") > 0);
    assert_every_id_once(p, "out/vault.db", "people");
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        runs(p),
        [[text("1"), text("succeeded"), text("pending")]],
        "copied, its validation cut off"
    );
    assert_eq!(logged(p, "validated"), 0, "killed before it validated");
    let status = p.run_ok(&["status", "--migration", "resume-me"]).stdout;
    assert!(
        status.contains("validation not completed: the next `credvault run` completes it"),
        "{status}"
    );
}

#[test]
fn a_run_killed_while_validating_is_validated_by_the_next_run() {
    let p = project();
    killed_while_validating(&p);
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stderr
            .contains("run 1 copied every table but its validation did not complete"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("validation of `resume-me`: passed"),
        "{}",
        run.all()
    );
    assert!(!run.all().contains("already exists"), "{}", run.all());
    let text = |v: &str| Some(v.to_string());
    assert_eq!(
        runs(&p),
        [[text("1"), text("succeeded"), text("passed")]],
        "no new run: the first one got its validation"
    );
    assert_every_id_once(&p, "out/vault.db", "people");
    let kept = p.query(
        ".credvault/state.db",
        "SELECT run_id, passed FROM validations",
    );
    assert_eq!(kept, [[text("1"), text("1")]]);
    let log = p.run_ok(&["log", "--migration", "resume-me"]).stdout;
    let last = log.lines().last().unwrap_or_default();
    assert!(last.contains("validated run 1"), "{log}");
    assert!(last.contains(r#""passed":true"#), "{log}");
    let status = p.run_ok(&["status", "--migration", "resume-me"]).stdout;
    assert!(status.contains("succeeded, validation passed"), "{status}");
    // Validated now: the migration is finished, and a run starts afresh.
    let again = p.run(&["run", "m.toml"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(again.stderr.contains("already exists"), "{}", again.all());
}

#[test]
fn a_validation_completed_later_that_fails_fails_the_run() {
    let p = project();
    killed_while_validating(&p);
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        "DELETE FROM people WHERE id = 4242",
    );
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "exits by the validation: {}", run.all());
    assert!(
        run.stdout.contains("expected 200000, destination 199999"),
        "{}",
        run.all()
    );
    let text = |v: &str| Some(v.to_string());
    assert_eq!(runs(&p), [[text("1"), text("succeeded"), text("failed")]]);
    // Its validation is complete: `validate` does not rewrite the run's
    // outcome, and the next run is a fresh one (which refuses to
    // overwrite the table).
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        "INSERT INTO people VALUES (4242, 'NAME 4242', '71')",
    );
    p.run_ok(&["validate", "m.toml"]);
    assert_eq!(runs(&p), [[text("1"), text("succeeded"), text("failed")]]);
    let again = p.run(&["run", "m.toml"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(again.stderr.contains("already exists"), "{}", again.all());
}

/// A run killed while a batch's write is under way has already kept the
/// rows that batch flagged, though the batch never committed. Fixed at the
/// source before the resume, those rows land; their flags must not stay
/// open, saying rows are missing that are there.
#[test]
fn rows_flagged_in_a_batch_killed_before_its_commit_are_closed_when_the_resume_reads_it_again() {
    let s = super::servers::Scratch::new();
    s.exec(
        "CREATE TABLE {s}.people (id int PRIMARY KEY, name text NOT NULL, score int);
         CREATE FUNCTION {s}.slowly() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep(0.4); RETURN NULL; END $$;
         CREATE TRIGGER slowly AFTER INSERT ON {s}.people
           FOR EACH STATEMENT EXECUTE FUNCTION {s}.slowly()",
    );
    let p = project();
    // One bad score in each batch of 5, until the source is fixed.
    let people = |bad: bool| -> Vec<String> {
        (1..=60)
            .map(|i| match (bad, i % 5) {
                (true, 0) => format!("{i},person {i},bad"),
                _ => format!("{i},person {i},{i}"),
            })
            .collect()
    };
    p.csv("people", "id,name,score", &people(true));
    p.write(
        "m.toml",
        &format!(
            "name = \"slow-flags\"\n[source]\ntype = \"csv\"\npath = \"data\"\n{}[settings]\nbatch_size = 5\non_error = \"flag\"\nrestore_points = false\nvalidate = false\n[[tables]]\nsource = \"people\"\nif_exists = \"append\"\nkey = [\"id\"]\n[tables.columns.id]\ntype = \"int\"\n[tables.columns.score]\ntype = \"int\"\n",
            s.endpoint("destination", "")
        ),
    );
    let flagged = |p: &Project| -> u64 {
        let db = p.path().join(".credvault/state.db");
        let kept = |sql: &str| credvault_tests::query_sqlite(&db, sql);
        if !db.exists()
            || kept("SELECT count(*) FROM sqlite_schema WHERE name = 'flagged_rows'")
                != [[Some("1".to_string())]]
        {
            return 0;
        }
        kept("SELECT count(*) FROM flagged_rows")
            .first()
            .and_then(|r| r[0].as_deref().and_then(|n| n.parse().ok()))
            .unwrap_or(0)
    };
    // The third batch's flag is kept just before its write sleeps.
    kill_midway(&p, &["run", "m.toml"], || flagged(&p) >= 3);
    let landed: u64 = s
        .one("SELECT count(*)::text FROM {s}.people")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert_eq!(
        landed, 8,
        "the first two batches committed, the third did not"
    );
    p.csv("people", "id,name,score", &people(false));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stderr.contains("resuming interrupted run 1"),
        "{}",
        run.all()
    );
    assert_eq!(
        s.one("SELECT count(*)::text FROM {s}.people"),
        Some("58".into()),
        "rows 5 and 10 stay out, flagged; every other row lands once"
    );
    let open = p.query(
        ".credvault/state.db",
        "SELECT group_concat(position) FROM (SELECT position FROM flagged_rows WHERE resolved_at IS NULL ORDER BY position)",
    );
    assert_eq!(
        open,
        [[Some("5,10".into())]],
        "the flag of row 15, whose batch never committed and which has landed since, is closed"
    );
}
