//! Pre-run checks, each failing for its real reason on real servers and
//! files: an unreachable source, missing CREATE/INSERT/SELECT privileges
//! (with the GRANT that fixes them, run to prove it), mappings that do not
//! fit the real schemas, tables in the way, key collisions, too little free
//! space; `run` refusing to start on a failed check, and `--force`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use credvault_tests::{Project, Run, exec_sqlite, people};

use super::project;
use super::servers::{Scratch, TestDb};

/// `credvault check` that must fail; everything it printed.
fn failing_check(p: &Project) -> String {
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    run.all()
}

fn assert_has(all: &str, expected: &str) {
    assert!(all.contains(expected), "expected: {expected}\n{all}");
}

/// A run that must refuse to start, naming the failed check and `--force`.
fn assert_refused(run: &Run, check: &str) {
    assert_eq!(run.code, 1, "{}", run.all());
    assert_has(&run.stderr, &format!("[FAIL] {check}"));
    assert_has(&run.stderr, "the run did not start");
    assert_has(&run.stderr, "--force");
}

/// The GRANT statements a check's messages name.
fn grants(all: &str) -> Vec<String> {
    all.split("grant it with `")
        .skip(1)
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn an_unreachable_source_fails_its_check_and_the_run_does_not_start() {
    let p = project();
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    p.write(
        "m.toml",
        &format!(
            "name = \"gone\"\n[source]\ntype = \"postgres\"\nport = {closed}\ndatabase = \"test\"\nuser = \"postgres\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"t\"\n"
        ),
    );
    let all = failing_check(&p);
    assert_has(
        &all,
        &format!(
            "[FAIL] source reachable: source postgres postgres@127.0.0.1:{closed}/test: connection refused by 127.0.0.1:{closed}"
        ),
    );
    assert_refused(&p.run(&["run", "m.toml"]), "source reachable");
    let forced = p.run(&["run", "--force", "m.toml"]);
    assert_eq!(forced.code, 1, "{}", forced.all());
    assert_has(&forced.stderr, "starting anyway (--force)");
    assert_has(&forced.stderr, "error: source postgres");
}

#[test]
fn a_postgres_role_without_create_insert_or_select_fails_with_the_grant_that_fixes_it() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.people (id int PRIMARY KEY, name text);
         INSERT INTO {s}.people VALUES (1, 'a'), (2, 'b');
         CREATE TABLE {s}.orders (id int PRIMARY KEY, amount numeric);
         INSERT INTO {s}.orders VALUES (1, 9.5);
         CREATE TABLE {s}.ledger (id bigint PRIMARY KEY, amount numeric);
         INSERT INTO {s}.ledger VALUES (100, 1)",
    );
    let role = s.role();
    s.exec(&format!(
        "GRANT USAGE ON SCHEMA {{s}} TO {role}; GRANT SELECT ON {{s}}.people, {{s}}.ledger TO {role}"
    ));
    let as_role = |section: &str| {
        s.endpoint(section, "")
            .replace("user = \"postgres\"", &format!("user = \"{role}\""))
    };
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"perm\"\n{}{}[[tables]]\nsource = \"people\"\ndestination = \"vault\"\n[[tables]]\nsource = \"orders\"\ndestination = \"ledger\"\nif_exists = \"append\"\n",
            as_role("source"),
            as_role("destination")
        ),
    );
    let schema = &s.schema;
    let no_create = format!(
        "user `{role}` lacks a needed privilege: permission denied for schema {schema}; an administrator can grant it with `GRANT CREATE ON SCHEMA \"{schema}\" TO \"{role}\"`"
    );

    // Without CREATE on the schema not even the checkpoint table can be made.
    let all = failing_check(&p);
    assert_has(
        &all,
        "[pass] destination reachable: connected, but it cannot be written",
    );
    assert_has(
        &all,
        "[FAIL] destination may create tables: destination postgres",
    );
    assert_has(&all, &no_create);
    assert_has(&all, "[FAIL] source table orders readable");
    assert_has(
        &all,
        &format!(
            "permission denied for table orders; an administrator can grant it with `GRANT SELECT ON \"{schema}\".\"orders\" TO \"{role}\"`"
        ),
    );

    // Once an administrator has made the checkpoint table, the role can
    // connect; the probe still cannot create, and the appended table is
    // not writable.
    s.exec(&format!(
        "CREATE TABLE {{s}}._credvault_checkpoints (migration text NOT NULL, table_name text NOT NULL, checkpoint jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (migration, table_name));
         GRANT SELECT, INSERT, UPDATE, DELETE ON {{s}}._credvault_checkpoints TO {role}"
    ));
    let all = failing_check(&p);
    assert_has(&all, "[pass] destination reachable: destination postgres");
    assert_has(&all, "[FAIL] destination may create tables");
    assert_has(
        &all,
        &format!("needed for vault: destination postgres {role}@127.0.0.1:5432/test: {no_create}"),
    );
    assert_has(
        &all,
        &format!(
            "[FAIL] destination table ledger writable: destination postgres {role}@127.0.0.1:5432/test: user `{role}` lacks a needed privilege: no INSERT privilege on table \"{schema}\".\"ledger\"; an administrator can grant it with `GRANT INSERT ON \"{schema}\".\"ledger\" TO \"{role}\"`"
        ),
    );
    assert_has(
        &all,
        &format!(
            "[pass] destination free space: unknown, so not compared: role `{role}` may not read the server's data_directory setting"
        ),
    );

    // The GRANTs the messages name are all it takes.
    let named = grants(&all);
    assert_eq!(named.len(), 3, "{named:?}");
    for grant in &named {
        s.exec(grant);
    }
    let check = p.run_ok(&["check", "m.toml"]);
    assert_has(&check.stdout, "[pass] destination table ledger writable");
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(
        s.one("SELECT count(*) FROM {s}.ledger").as_deref(),
        Some("2")
    );
}

#[test]
fn a_mariadb_user_without_create_insert_or_drop_fails_with_the_grant_that_fixes_it() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE people (id INT PRIMARY KEY, name TEXT); INSERT INTO people VALUES (1, 'a');
         CREATE TABLE ledger (id BIGINT PRIMARY KEY, name LONGTEXT); INSERT INTO ledger VALUES (100, 'z');",
    );
    let password = "Check-Secret-2024";
    let user = db.user(password, &["SELECT ON `{db}`.*"]);
    let name = &db.name;
    let destination = format!(
        "type = \"mariadb\"\nhost = \"127.0.0.1\"\ndatabase = \"{name}\"\nuser = \"{user}\"\npassword_env = \"CV_TEST_PASSWORD\""
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"perm\"\n[source]\n{}\n[destination]\n{destination}\n[[tables]]\nsource = \"people\"\ndestination = \"ledger\"\nif_exists = \"append\"\n[[tables]]\nsource = \"people\"\ndestination = \"fresh\"\n",
            db.endpoint()
        ),
    );
    let check =
        |p: &Project| p.run_with_env(&["check", "m.toml"], &[("CV_TEST_PASSWORD", password)]);
    let denied = |what: &str, grant: &str| {
        format!(
            "user `{user}` lacks a needed privilege: {what} command denied to user '{user}'@'127.0.0.1' for table `{name}`.`{grant}`"
        )
    };

    // SELECT alone: the checkpoint table cannot be made.
    let all = check(&p).all();
    assert_has(&all, "[FAIL] destination may create tables");
    assert_has(
        &all,
        &format!(
            "{}; an administrator can grant it with `GRANT CREATE ON `{name}`.* TO '{user}'@'%'`",
            denied("CREATE", "_credvault_checkpoints")
        ),
    );

    // With the checkpoint table made by an administrator: the probe cannot
    // create, and the appended table is not writable.
    p.write(
        "root.toml",
        &format!(
            "name = \"setup\"\n[source]\n{0}\n[destination]\n{0}\n[[tables]]\nsource = \"people\"\ndestination = \"setup_copy\"\n",
            db.endpoint()
        ),
    );
    p.run_ok(&["run", "root.toml"]);
    db.exec(&format!(
        "GRANT INSERT, UPDATE, DELETE ON `{name}`.`_credvault_checkpoints` TO '{user}'@'%'"
    ));
    let all = check(&p).all();
    assert_has(&all, "[pass] destination reachable: destination mariadb");
    assert_has(&all, "[FAIL] destination may create tables");
    assert_has(
        &all,
        "[FAIL] destination may create tables: needed for fresh: ",
    );
    assert_has(&all, "[FAIL] destination table ledger writable");
    assert_has(
        &all,
        &format!(
            "{}; an administrator can grant it with `GRANT INSERT ON `{name}`.`ledger` TO '{user}'@'%'`",
            denied("INSERT", "ledger")
        ),
    );
    assert_has(&all, "[pass] destination free space: ");
    assert_has(&all, "free on the filesystem of /var/lib/mysql");

    // CREATE without DROP: the probe table is made but cannot be dropped,
    // and the message says so.
    db.exec(&format!(
        "GRANT CREATE, INSERT ON `{name}`.* TO '{user}'@'%'"
    ));
    let all = check(&p).all();
    assert_has(&all, "[FAIL] destination may create tables");
    assert_has(&all, "created the probe table `_credvault_probe_");
    assert_has(&all, "but could not drop it, so an administrator must");
    assert_has(&all, &format!("GRANT DROP ON `{name}`.* TO '{user}'@'%'"));
    assert_has(&all, "[pass] destination table ledger writable");

    db.exec(&format!("GRANT DROP ON `{name}`.* TO '{user}'@'%'"));
    let run = check(&p);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        !run.all().contains(password),
        "a password leaked: {}",
        run.all()
    );
    let probes = db.value(&format!(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{name}' AND TABLE_NAME LIKE '\\_credvault\\_probe%'"
    ));
    assert_eq!(probes, "1", "only the probe left by the user without DROP");
}

#[test]
fn mappings_are_checked_against_the_real_schemas() {
    let p = project();
    exec_sqlite(
        &p.path().join("data/src.db"),
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, born DATE_TEXT, score INTEGER);
         INSERT INTO people VALUES (1, 'a', '2001-02-03', 10);
         CREATE TABLE pets (id INTEGER PRIMARY KEY, name TEXT);
         INSERT INTO pets VALUES (1, 'rex');",
    );
    let migration = |tables: &str| {
        format!(
            "name = \"maps\"\n[source]\ntype = \"sqlite\"\npath = \"data/src.db\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n{tables}"
        )
    };

    // Names that do not exist, two columns onto one.
    p.write(
        "m.toml",
        &migration(
            "[[tables]]\nsource = \"people\"\n[tables.columns.nmae]\nrename = \"x\"\n[tables.columns.name]\nrename = \"score\"\n",
        ),
    );
    let all = failing_check(&p);
    assert_has(
        &all,
        "[FAIL] table people mapping: columns.nmae: the source table `people` has no column `nmae`; did you mean `name`?",
    );
    assert_has(
        &all,
        "columns.score: maps onto `score`, which `name` already maps onto; rename one of them",
    );

    // A type no value converts to; two names one column in a destination
    // whose column names ignore case.
    p.write(
        "m.toml",
        &migration(
            "[[tables]]\nsource = \"people\"\n[tables.columns.born]\ntype = \"int\"\n[tables.columns.name]\nrename = \"Score\"\n",
        ),
    );
    let all = failing_check(&p);
    assert_has(
        &all,
        "[FAIL] table people mapping: columns.born: date values never convert to int; choose a type they convert to (text takes any), or replace them with `map`",
    );
    assert_has(&all, "`Score` and `score` land in one column");

    // Appending to tables that cannot take the rows; a table in the way.
    exec_sqlite(
        &p.path().join("out/vault.db"),
        "CREATE TABLE people (id INTEGER, name INTEGER, born DATE_TEXT);
         CREATE TABLE pets (id INTEGER, name TEXT);",
    );
    p.write(
        "m.toml",
        &migration(
            "[[tables]]\nsource = \"people\"\nif_exists = \"append\"\n[[tables]]\nsource = \"pets\"\n",
        ),
    );
    let all = failing_check(&p);
    assert_has(
        &all,
        "[FAIL] destination table people columns: column `name` is int, which cannot take text values; it has no column `score`; rename or convert those columns in the mapping",
    );
    assert_has(
        &all,
        "[FAIL] destination table pets: already exists with 0 rows, and this migration did not create it; set if_exists = \"append\" to add the rows to it, or choose another destination table",
    );
    assert_has(&all, "[pass] table people mapping");
}

#[test]
fn postgres_tables_that_cannot_take_the_rows_fail_their_checks() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.people (id int PRIMARY KEY, name text); INSERT INTO {s}.people VALUES (1, 'a');
         CREATE TABLE {s}.orders (id int PRIMARY KEY); INSERT INTO {s}.orders VALUES (1);
         CREATE TABLE {s}.vault (id bigint, name int, note interval);
         CREATE TABLE {s}.taken (id int); INSERT INTO {s}.taken VALUES (1), (2)",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"pg-fit\"\n{}{}[[tables]]\nsource = \"people\"\ndestination = \"vault\"\nif_exists = \"append\"\n[[tables]]\nsource = \"orders\"\ndestination = \"taken\"\n",
            s.endpoint("source", ""),
            s.endpoint("destination", "")
        ),
    );
    let all = failing_check(&p);
    assert_has(
        &all,
        "[FAIL] destination table vault columns: column `name` is integer, which cannot take text values",
    );
    assert_has(
        &all,
        "[FAIL] destination table taken: already exists with 2 rows",
    );
    assert_has(&all, "[pass] destination free space: ");
    assert_has(&all, "free on the filesystem of /var/lib/postgresql");
}

#[test]
fn key_collisions_on_append_stop_the_run_until_forced() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.people (person_id int PRIMARY KEY, name text);
         INSERT INTO {s}.people SELECT i, 'person ' || i FROM generate_series(1, 10) i;
         CREATE TABLE {s}.vault (id bigint PRIMARY KEY, name text);
         INSERT INTO {s}.vault VALUES (5, 'already here'), (7, 'also here'), (50, 'other')",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"keys\"\n{}{}[settings]\non_error = \"flag\"\nbatch_size = 3\n[[tables]]\nsource = \"people\"\ndestination = \"vault\"\nif_exists = \"append\"\n[tables.columns.person_id]\nrename = \"id\"\n[[tables.transforms]]\nplugin = \"expr\"\nconfig.expressions = [\"name = upper(name)\"]\n",
            s.endpoint("source", ""),
            s.endpoint("destination", "")
        ),
    );
    let all = failing_check(&p);
    assert_has(
        &all,
        "[FAIL] destination table vault keys: 2 of 10 source rows have a key (id) already in the table, e.g. id=5; id=7",
    );
    assert_refused(&p.run(&["run", "m.toml"]), "destination table vault keys");
    assert_eq!(
        s.one("SELECT count(*) FROM {s}.vault").as_deref(),
        Some("3")
    );

    let forced = p.run_ok(&["run", "--force", "m.toml"]);
    assert_has(&forced.stderr, "starting anyway (--force)");
    assert_has(&forced.stdout, "8 written");
    assert_has(&forced.stdout, "2 flagged");
    let log = p.run_ok(&["log", "--json"]);
    let checked: Vec<serde_json::Value> = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["kind"] == "checked")
        .collect();
    let forced_flags: Vec<&serde_json::Value> =
        checked.iter().map(|e| &e["detail"]["forced"]).collect();
    let expected = [
        serde_json::Value::Null,
        serde_json::json!(false),
        serde_json::json!(true),
    ];
    assert_eq!(forced_flags, expected.iter().collect::<Vec<_>>());
    assert_eq!(
        checked[2]["detail"]["failed"],
        serde_json::json!(["destination table vault keys"])
    );
}

#[test]
fn csv_keys_are_compared_as_they_land_in_sqlite() {
    let p = project();
    p.csv("people", "id,name,score", &people(4));
    p.write(
        "m.toml",
        &super::people_migration("", "if_exists = \"append\""),
    );
    exec_sqlite(
        &p.path().join("out/vault.db"),
        "CREATE TABLE people (id INTEGER, name TEXT, score INTEGER); INSERT INTO people VALUES (3, 'x', 1), (9, 'y', 2)",
    );
    let all = failing_check(&p);
    assert_has(
        &all,
        "[FAIL] destination table people keys: 1 of 4 source rows have a key (id) already in the table, e.g. id=3",
    );
    exec_sqlite(
        &p.path().join("out/vault.db"),
        "UPDATE people SET id = 30 WHERE id = 3",
    );
    let check = p.run_ok(&["check", "m.toml"]);
    assert_has(
        &check.stdout,
        "[pass] destination table people keys: none of 4 source rows has a key (id) among the 2 already there",
    );
}

#[test]
fn a_resumed_run_is_no_conflict_with_its_own_half_written_table() {
    let p = project();
    let mut rows = people(10);
    rows[6] = "7,person 7,lots".into();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &super::people_migration("batch_size = 2", ""));
    let stopped = p.run(&["run", "m.toml"]);
    assert_eq!(stopped.code, 1, "{}", stopped.all());
    assert_has(&stopped.stderr, "stopped on a failed row");
    rows[6] = "7,person 7,70".into();
    p.csv("people", "id,name,score", &rows);

    let check = p.run_ok(&["check", "m.toml"]);
    assert_has(
        &check.stdout,
        "[pass] destination table people: started by the interrupted run; it resumes after source row 6",
    );
    // Starting over is another matter: the table is in the way.
    let restart = p.run(&["run", "--restart", "m.toml"]);
    assert_refused(
        &restart,
        "destination table people: already exists with 6 rows",
    );
    p.run_ok(&["run", "m.toml"]);
    let ids = p.query(
        "out/vault.db",
        "SELECT count(*), count(DISTINCT id) FROM people",
    );
    assert_eq!(ids[0], [Some("10".into()), Some("10".into())]);
}

/// A 1 MiB tmpfs, unmounted when dropped; `None` where this user may not
/// mount (tests run as root on this project's machines).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Option<Self> {
        std::fs::create_dir_all(dir).expect("a mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(dir.to_path_buf()))
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn too_little_free_space_fails_the_check_and_a_forced_run_fills_the_disk() {
    let p = project();
    let rows: Vec<String> = (1..=20_000)
        .map(|i| format!("{i},person {i} {},{}", "x".repeat(80), i % 97))
        .collect();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &super::people_migration("", ""));
    let Some(_disk) = SmallDisk::mount(&p.path().join("out")) else {
        // Without a small filesystem to fill, the check still measures the
        // real one and says what it compared.
        let check = p.run_ok(&["check", "m.toml"]);
        assert_has(&check.stdout, "[pass] destination free space: ");
        assert_has(&check.stdout, "free on the filesystem of");
        assert_has(&check.stdout, "; the run needs about ");
        return;
    };
    let all = failing_check(&p);
    assert_has(&all, "[FAIL] destination free space: the run needs about ");
    assert_has(&all, " MiB but only ");
    assert_has(&all, "is free on the filesystem of");
    assert_refused(&p.run(&["run", "m.toml"]), "destination free space");
    let forced = p.run(&["run", "--force", "m.toml"]);
    assert_eq!(forced.code, 1, "{}", forced.all());
    assert_has(&forced.stderr, "database or disk is full");
}
