//! The host-owned `db` capability against the real PostgreSQL and MariaDB
//! servers and SQLite: a transform that enriches rows from a lookup table
//! through a granted connection, and the hostile source tripping each
//! denial (no grant, another connection, a write through a read-only grant,
//! the row cap, the timeout, SQLite's ATTACH).

use credvault_tests::{Project, exec_sqlite, guests};

use super::project;
use super::servers::{Scratch, TestDb};

/// A password the tests hand the host, which must never be printed.
const SECRET: &str = "Zq8-hunter2-not-for-plugins";

/// `people` rows with a country code each: FR, DE, FR, XX, ….
fn people_with_countries(p: &Project, n: usize) {
    let codes = ["FR", "DE", "FR", "XX"];
    let rows: Vec<String> = (1..=n)
        .map(|i| format!("{i},person {i},{}", codes[(i - 1) % codes.len()]))
        .collect();
    p.csv("people", "id,name,country", &rows);
}

/// A CSV → SQLite migration whose transform looks each person's country up
/// in connection `crm`, defined by `connection`.
fn lookup_migration(connection: &str, dialect: &str, grant: &str) -> String {
    format!(
        r#"name = "lookup"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 50
[connections.crm]
{connection}
[[tables]]
source = "people"
key = ["id"]
[tables.columns.id]
type = "int"
[[tables.transforms]]
plugin = {:?}
config = {{ connection = "crm", table = "countries", key = "code", on = "country", add = ["country_name", "region"], dialect = "{dialect}" }}
grants = {{ {grant} }}
"#,
        guests::DB_LOOKUP
    )
}

const COUNTRIES: &str = "INSERT INTO countries VALUES ('FR', 'France', 'EU'), ('DE', 'Germany', 'EU'), ('JP', 'Japan', 'AS')";

/// Runs the lookup migration and checks every row got its country.
fn assert_lookup_works(p: &Project, env: &[(&str, &str)]) {
    people_with_countries(p, 200);
    let run = p.run_with_env(&["--log", "debug", "run", "m.toml"], env);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(
        run.stdout.contains("200 read, 200 written"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("validation of `lookup`: passed"),
        "{}",
        run.all()
    );
    assert!(
        !run.all().contains(SECRET),
        "the password leaked: {}",
        run.all()
    );
    let rows = p.query(
        "out/vault.db",
        "SELECT id, country, country_name, region FROM people ORDER BY id LIMIT 4",
    );
    let got: Vec<Vec<Option<&str>>> = rows
        .iter()
        .map(|r| r.iter().map(|v| v.as_deref()).collect())
        .collect();
    assert_eq!(
        got,
        vec![
            vec![Some("1"), Some("FR"), Some("France"), Some("EU")],
            vec![Some("2"), Some("DE"), Some("Germany"), Some("EU")],
            vec![Some("3"), Some("FR"), Some("France"), Some("EU")],
            vec![Some("4"), Some("XX"), None, None],
        ]
    );
}

fn pg_connection(s: &Scratch) -> String {
    format!(
        "type = \"postgres\"\nhost = \"127.0.0.1\"\ndatabase = \"test\"\nuser = \"postgres\"\nschema = \"{}\"\npassword_env = \"CV_CRM_PW\"",
        s.schema
    )
}

fn mariadb_connection(db: &TestDb, user: &str) -> String {
    format!(
        "type = \"mariadb\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\nuser = \"{user}\"\npassword_env = \"CV_CRM_PW\"",
        db.name
    )
}

#[test]
fn a_transform_enriches_rows_through_a_granted_postgres_connection() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.countries (code text PRIMARY KEY, country_name text, region varchar(8))",
    );
    s.exec(&COUNTRIES.replace("countries", "{s}.countries"));
    // A role that may only read the table: what a grant should connect as.
    let reader = s.role();
    s.exec(&format!(
        "GRANT USAGE ON SCHEMA {{s}} TO {reader}; GRANT SELECT ON {{s}}.countries TO {reader}"
    ));
    let p = project();
    p.write(
        "m.toml",
        &lookup_migration(
            &pg_connection(&s).replace("user = \"postgres\"", &format!("user = \"{reader}\"")),
            "postgres",
            r#"db = [{ connection = "crm" }]"#,
        ),
    );
    assert_lookup_works(&p, &[("CV_CRM_PW", SECRET)]);
}

#[test]
fn a_transform_enriches_rows_through_a_granted_mariadb_connection() {
    let db = TestDb::new();
    db.exec("CREATE TABLE countries (code varchar(2) PRIMARY KEY, country_name text, region varchar(8))");
    db.exec(COUNTRIES);
    // A user who may write: read-only comes from the grant, not privileges.
    let user = db.user(SECRET, &["ALL ON `{db}`.*"]);
    let p = project();
    p.write(
        "m.toml",
        &lookup_migration(
            &mariadb_connection(&db, &user),
            "mysql",
            r#"db = [{ connection = "crm" }]"#,
        ),
    );
    assert_lookup_works(&p, &[("CV_CRM_PW", SECRET)]);
}

#[test]
fn a_transform_enriches_rows_through_a_granted_sqlite_connection() {
    let p = project();
    let crm = p.path().join("crm.db");
    exec_sqlite(
        &crm,
        &format!(
            "CREATE TABLE countries (code TEXT PRIMARY KEY, country_name TEXT, region TEXT); {COUNTRIES}"
        ),
    );
    p.write(
        "m.toml",
        &lookup_migration(
            "type = \"sqlite\"\npath = \"crm.db\"",
            "sqlite",
            r#"db = [{ connection = "crm" }]"#,
        ),
    );
    assert_lookup_works(&p, &[]);
}

#[test]
fn a_wrong_password_fails_the_plugin_without_showing_it() {
    let db = TestDb::new();
    db.exec("CREATE TABLE countries (code varchar(2) PRIMARY KEY, country_name text, region text)");
    let user = db.user("the-right-one", &["SELECT ON `{db}`.*"]);
    let p = project();
    people_with_countries(&p, 3);
    p.write(
        "m.toml",
        &lookup_migration(
            &mariadb_connection(&db, &user),
            "mysql",
            r#"db = [{ connection = "crm" }]"#,
        ),
    );
    let run = p.run_with_env(
        &["--log", "debug", "check", "m.toml"],
        &[("CV_CRM_PW", SECRET)],
    );
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all()
            .contains("connection `crm` could not be opened: authentication failed"),
        "{}",
        run.all()
    );
    assert!(
        !run.all().contains(SECRET),
        "the password leaked: {}",
        run.all()
    );
}

/// Runs the hostile source's table `bad` in `mode` with `sql` on
/// connection `name`, under `grants`, beside table `good`, in a fresh
/// project; returns it and everything the run printed.
fn hostile_db(
    connection: &str,
    name: &str,
    mode: &str,
    sql: &str,
    grants: &str,
) -> (Project, String) {
    hostile_run(project(), connection, name, mode, sql, grants)
}

/// [`hostile_db`] in a project prepared beforehand (an SQLite file in it).
fn hostile_run(
    p: Project,
    connection: &str,
    name: &str,
    mode: &str,
    sql: &str,
    grants: &str,
) -> (Project, String) {
    p.write(
        "m.toml",
        &format!(
            r#"name = "hostile"
[source]
type = "plugin"
plugin = {:?}
config = {{ mode = "{mode}", connection = "{name}", sql = {sql:?} }}
grants = {{ {grants} }}
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 10
[connections.crm]
{connection}
[connections.billing]
type = "sqlite"
path = "billing.db"
[[tables]]
source = "bad"
[[tables]]
source = "good"
"#,
            guests::HOSTILE_SOURCE
        ),
    );
    let run = p.run_with_env(&["run", "--force", "m.toml"], &[("CV_CRM_PW", SECRET)]);
    assert_eq!(run.code, 1, "the run fails cleanly: {}", run.all());
    let good = p.query("out/vault.db", "SELECT count(*) FROM good");
    assert_eq!(
        good[0][0].as_deref(),
        Some("3"),
        "the other table landed: {}",
        run.all()
    );
    assert!(
        !run.all().contains(SECRET),
        "the password leaked: {}",
        run.all()
    );
    let all = run.all();
    (p, all)
}

const READ_CRM: &str = r#"db = [{ connection = "crm" }]"#;

/// A read-only grant of `crm` that accepts a privileged user (the test
/// servers' `postgres` superuser).
const READ_CRM_PRIVILEGED: &str = r#"db = [{ connection = "crm", allow_privileged = true }]"#;

#[test]
fn a_plugin_without_a_db_grant_is_denied_and_logged() {
    let s = Scratch::new();
    let (_, all) = hostile_db(&pg_connection(&s), "crm", "db-query", "SELECT 1", "");
    assert!(
        all.contains("access denied: no database connection is granted to this plugin, so `crm` is refused; add grants.db = [{ connection = \"crm\" }]"),
        "{all}"
    );
    assert!(
        all.contains("denied database connection `crm`"),
        "the host logs it: {all}"
    );
}

#[test]
fn a_connection_not_granted_is_denied() {
    let s = Scratch::new();
    let (_, all) = hostile_db(
        &pg_connection(&s),
        "billing",
        "db-query",
        "SELECT * FROM invoices",
        READ_CRM,
    );
    assert!(
        all.contains("access denied: connection `billing` is not in this plugin's grants.db (crm)"),
        "{all}"
    );
    assert!(
        all.contains("denied database connection `billing`"),
        "{all}"
    );
}

/// Asserts a write was refused as a read-only denial, and logged.
fn assert_read_only(all: &str) {
    assert!(
        all.contains("access denied: connection `crm` is granted read-only, and the database refused this write")
            && all.contains("set write = true in this plugin's grants.db entry for `crm`"),
        "{all}"
    );
    assert!(
        all.contains("denied database write through connection `crm` (INSERT INTO planted"),
        "the host logs it: {all}"
    );
}

#[test]
fn a_write_through_a_read_only_postgres_grant_is_refused_by_the_database() {
    let s = Scratch::new();
    s.exec("CREATE TABLE {s}.planted (id int)");
    let (_, all) = hostile_db(
        &pg_connection(&s),
        "crm",
        "db-execute",
        "INSERT INTO planted VALUES (1)",
        READ_CRM_PRIVILEGED,
    );
    assert_read_only(&all);
    assert_eq!(
        s.one("SELECT count(*) FROM {s}.planted").as_deref(),
        Some("0")
    );
    let (_, ddl) = hostile_db(
        &pg_connection(&s),
        "crm",
        "db-execute",
        "CREATE TABLE made (id int)",
        READ_CRM_PRIVILEGED,
    );
    assert!(ddl.contains("is granted read-only"), "{ddl}");
    assert_eq!(
        s.one("SELECT count(*) FROM pg_tables WHERE schemaname = '{s}' AND tablename = 'made'")
            .as_deref(),
        Some("0")
    );
}

#[test]
fn a_write_through_a_read_only_mariadb_grant_is_refused_by_the_database() {
    let db = TestDb::new();
    db.exec("CREATE TABLE planted (id int)");
    let user = db.user(SECRET, &["ALL ON `{db}`.*"]);
    let crm = mariadb_connection(&db, &user);
    let (_, all) = hostile_db(
        &crm,
        "crm",
        "db-execute",
        "INSERT INTO planted VALUES (1)",
        READ_CRM,
    );
    assert_read_only(&all);
    assert_eq!(db.value("SELECT count(*) FROM planted"), "0");
    // DDL commits on its own in MariaDB: the session's access mode refuses it.
    let (_, ddl) = hostile_db(
        &crm,
        "crm",
        "db-execute",
        "CREATE TABLE made (id int)",
        READ_CRM,
    );
    assert!(ddl.contains("is granted read-only"), "{ddl}");
    assert!(db.query("SHOW TABLES LIKE 'made'").is_empty());
}

#[test]
fn a_write_through_a_read_only_sqlite_grant_is_refused_by_the_database() {
    let p = project();
    exec_sqlite(
        &p.path().join("crm.db"),
        "CREATE TABLE planted (id INTEGER)",
    );
    let crm = "type = \"sqlite\"\npath = \"crm.db\"";
    let (p, all) = hostile_run(
        p,
        crm,
        "crm",
        "db-execute",
        "INSERT INTO planted VALUES (1)",
        READ_CRM,
    );
    assert_read_only(&all);
    assert_eq!(
        p.query("crm.db", "SELECT count(*) FROM planted")[0][0].as_deref(),
        Some("0")
    );
}

#[test]
fn sqlite_grants_cannot_attach_other_database_files() {
    let p = project();
    exec_sqlite(
        &p.path().join("crm.db"),
        "CREATE TABLE planted (id INTEGER)",
    );
    let crm = "type = \"sqlite\"\npath = \"crm.db\"";
    let write = r#"db = [{ connection = "crm", write = true }]"#;
    let attach = "ATTACH DATABASE 'elsewhere.db' AS other";
    let (p, all) = hostile_run(p, crm, "crm", "db-execute", attach, write);
    assert!(all.contains("too many attached databases"), "{all}");
    assert!(!p.path().join("elsewhere.db").exists());
}

#[test]
fn a_write_grant_lets_the_plugin_write() {
    let s = Scratch::new();
    s.exec("CREATE TABLE {s}.planted (id int)");
    let write = r#"db = [{ connection = "crm", write = true, allow_privileged = true }]"#;
    let (_, all) = hostile_db(
        &pg_connection(&s),
        "crm",
        "db-execute",
        "INSERT INTO planted VALUES (1), (2)",
        write,
    );
    assert!(
        all.contains("the host let this through: 2 rows changed"),
        "{all}"
    );
    // The pre-run checks and the run each read the table, and each read
    // runs the INSERT: whole statements landed, committed.
    let landed: u64 = s
        .one("SELECT count(*) FROM {s}.planted")
        .unwrap()
        .parse()
        .unwrap();
    assert!(landed >= 2 && landed.is_multiple_of(2), "{landed} rows");
    let db = TestDb::new();
    db.exec("CREATE TABLE planted (id int)");
    let user = db.user(SECRET, &["ALL ON `{db}`.*"]);
    let (_, all) = hostile_db(
        &mariadb_connection(&db, &user),
        "crm",
        "db-execute",
        "INSERT INTO planted VALUES (1)",
        write,
    );
    assert!(
        all.contains("the host let this through: 1 rows changed"),
        "{all}"
    );
    let landed: u64 = db.value("SELECT count(*) FROM planted").parse().unwrap();
    assert!(landed >= 1, "{landed} rows");
}

#[test]
fn a_result_over_the_row_cap_fails_with_the_cap_named() {
    let s = Scratch::new();
    let grant = r#"db = [{ connection = "crm", max_rows = 100, allow_privileged = true }]"#;
    let (_, all) = hostile_db(
        &pg_connection(&s),
        "crm",
        "db-query",
        "SELECT generate_series(1, 100000)",
        grant,
    );
    assert!(
        all.contains(
            "the query on connection `crm` returned more than its grant's max_rows = 100 rows"
        ),
        "{all}"
    );
    let db = TestDb::new();
    let user = db.user(SECRET, &["SELECT ON `{db}`.*"]);
    let big = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000) SELECT REPEAT('x', 1000) FROM n";
    let grant = r#"db = [{ connection = "crm", max_result_kb = 64 }]"#;
    let (_, all) = hostile_db(
        &mariadb_connection(&db, &user),
        "crm",
        "db-query",
        big,
        grant,
    );
    assert!(
        all.contains("returned more than its grant's max_result_kb = 64 KiB"),
        "{all}"
    );
}

#[test]
fn a_statement_past_the_timeout_is_cancelled() {
    let s = Scratch::new();
    let grant = r#"db = [{ connection = "crm", timeout_ms = 300, allow_privileged = true }]"#;
    let started = std::time::Instant::now();
    let (_, all) = hostile_db(
        &pg_connection(&s),
        "crm",
        "db-query",
        "SELECT pg_sleep(30)",
        grant,
    );
    assert!(
        all.contains("the statement on connection `crm` ran longer than its grant's timeout_ms = 300 and was cancelled"),
        "{all}"
    );
    let db = TestDb::new();
    let user = db.user(SECRET, &["SELECT ON `{db}`.*"]);
    let (_, all) = hostile_db(
        &mariadb_connection(&db, &user),
        "crm",
        "db-query",
        "SELECT SLEEP(30)",
        grant,
    );
    assert!(
        all.contains("ran longer than its grant's timeout_ms = 300"),
        "{all}"
    );
    assert!(
        started.elapsed().as_secs() < 25,
        "the sleeps were cut short"
    );
}

#[test]
fn db_grants_must_name_a_database_connection() {
    let p = project();
    let unknown = lookup_migration(
        "type = \"sqlite\"\npath = \"crm.db\"",
        "sqlite",
        r#"db = [{ connection = "nope" }]"#,
    );
    p.write("m.toml", &unknown);
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.all().contains("tables[0] (people).transforms[0].grants.db[0].connection: there is no [connections.nope] in this file (it defines: crm)"),
        "{}",
        run.all()
    );
    let csv = lookup_migration(
        "type = \"csv\"\npath = \"data\"",
        "sqlite",
        r#"db = [{ connection = "crm" }]"#,
    );
    p.write("m.toml", &csv);
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.all().contains("connections.crm is not a database (a db grant opens PostgreSQL, MySQL/MariaDB or SQLite connections)"),
        "{}",
        run.all()
    );
}

/// Asserts `sql` was refused by the read-only guard, naming `what`.
fn assert_guarded(all: &str, what: &str) {
    assert!(
        all.contains(&format!(
            "access denied: connection `crm` is granted read-only, and the host refuses {what} on read-only grants"
        )),
        "{all}"
    );
    assert!(!all.contains("the host let this through"), "it ran: {all}");
}

/// A path in the shared /tmp that the database servers could write.
fn server_tmp_file(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(super::servers::unique(tag))
}

#[test]
fn a_read_only_postgres_grant_refuses_files_and_programs_even_for_a_superuser() {
    let s = Scratch::new();
    let marker = server_tmp_file("cv_program");
    let program = format!(
        "/* hidden? */ CoPy (SELECT 1) TO PROGRAM 'touch {}'",
        marker.display()
    );
    let (_, all) = hostile_db(
        &pg_connection(&s),
        "crm",
        "db-query",
        &program,
        READ_CRM_PRIVILEGED,
    );
    assert_guarded(&all, "`copy`");
    assert!(!marker.exists(), "COPY TO PROGRAM ran: {all}");
    for (sql, what) in [
        (
            "SELECT pg_catalog.PG_READ_FILE ('/etc/hostname')",
            "`pg_read_file`",
        ),
        ("SELECT lo_import('/etc/hostname')", "`lo_import`"),
    ] {
        let (_, all) = hostile_db(
            &pg_connection(&s),
            "crm",
            "db-query",
            sql,
            READ_CRM_PRIVILEGED,
        );
        assert_guarded(&all, what);
    }
}

#[test]
fn a_read_only_mariadb_grant_refuses_files_and_global_settings() {
    let db = TestDb::new();
    // secure_file_priv is empty on the test server, so FILE reaches /tmp.
    let user = db.user(SECRET, &["ALL ON `{db}`.*", "FILE, SUPER ON *.*"]);
    let crm = mariadb_connection(&db, &user);
    let outfile = server_tmp_file("cv_outfile");
    let before = db.value("SELECT @@GLOBAL.max_connections");
    let raised: u64 = before.parse::<u64>().unwrap() + 7;
    for (sql, what) in [
        (
            format!("SELECT 1 INTO /* x */ OUTFILE '{}'", outfile.display()),
            "`outfile`",
        ),
        (
            format!("select 1 into dumpfile '{}'", outfile.display()),
            "`dumpfile`",
        ),
        (
            "SELECT LOAD_FILE('/etc/hostname')".to_string(),
            "`load_file`",
        ),
        (
            format!("SET @@global.max_connections = {raised}"),
            "`global`",
        ),
        (format!("set  GLOBAL max_connections={raised}"), "`global`"),
        (
            "LOAD DATA INFILE '/etc/hostname' INTO TABLE t".to_string(),
            "`LOAD DATA`",
        ),
    ] {
        let (_, all) = hostile_db(&crm, "crm", "db-query", &sql, READ_CRM_PRIVILEGED);
        assert_guarded(&all, what);
    }
    assert!(!outfile.exists(), "a file was written");
    assert_eq!(db.value("SELECT @@GLOBAL.max_connections"), before);
}

#[test]
fn sqlite_grants_run_one_statement_per_call() {
    let p = project();
    exec_sqlite(
        &p.path().join("crm.db"),
        "CREATE TABLE planted (id INTEGER)",
    );
    let crm = "type = \"sqlite\"\npath = \"crm.db\"";
    // A write grant, so the second statement would land if it ran.
    let write = r#"db = [{ connection = "crm", write = true }]"#;
    let two = "SELECT 1; /* and */ INSERT INTO planted VALUES (1)";
    let (p, all) = hostile_run(p, crm, "crm", "db-query", two, write);
    assert!(
        all.contains("connection `crm` runs one statement per call, and this SQL holds more than one (nothing of it ran)"),
        "{all}"
    );
    assert_eq!(
        p.query("crm.db", "SELECT count(*) FROM planted")[0][0].as_deref(),
        Some("0")
    );
    // Whitespace, comments and semicolons after one statement are fine.
    let p2 = project();
    exec_sqlite(
        &p2.path().join("crm.db"),
        "CREATE TABLE planted (id INTEGER)",
    );
    let (_, one) = hostile_run(
        p2,
        crm,
        "crm",
        "db-execute",
        "INSERT INTO planted VALUES (1); -- done\n ;",
        write,
    );
    assert!(
        one.contains("the host let this through: 1 rows changed"),
        "{one}"
    );
}

#[test]
fn a_privileged_user_fails_check_and_the_run_unless_the_grant_allows_it() {
    let s = Scratch::new();
    s.exec("CREATE TABLE {s}.countries (code text PRIMARY KEY, country_name text, region text)");
    let p = project();
    people_with_countries(&p, 3);
    let superuser = pg_connection(&s);
    p.write(
        "m.toml",
        &lookup_migration(&superuser, "postgres", READ_CRM),
    );
    let check = p.run_with_env(&["check", "m.toml"], &[("CV_CRM_PW", SECRET)]);
    assert_ne!(check.code, 0, "{}", check.all());
    assert!(
        check.all().contains("connection `crm` could not be opened: its user holds privileges beyond reading and writing data (`postgres` is a superuser)")
            && check.all().contains("or set allow_privileged = true in this plugin's grants.db entry for `crm`"),
        "{}",
        check.all()
    );
    p.write(
        "m.toml",
        &lookup_migration(&superuser, "postgres", READ_CRM_PRIVILEGED),
    );
    let check = p.run_with_env(&["check", "m.toml"], &[("CV_CRM_PW", SECRET)]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check
            .all()
            .contains("allow_privileged: its user's privileges are not checked"),
        "{}",
        check.all()
    );
    // `run --force` skips the checks, not the refusal.
    let (_, all) = hostile_db(&superuser, "crm", "db-query", "SELECT 1", READ_CRM);
    assert!(
        all.contains("could not be opened: its user holds privileges beyond reading and writing data (`postgres` is a superuser)"),
        "{all}"
    );
    // Not a superuser, but one of the roles that read the server's files.
    let filer = s.role();
    s.exec(&format!(
        "GRANT pg_read_server_files TO {filer}; GRANT USAGE ON SCHEMA {{s}} TO {filer}; GRANT SELECT ON {{s}}.countries TO {filer}"
    ));
    let as_filer = superuser.replace("user = \"postgres\"", &format!("user = \"{filer}\""));
    p.write("m.toml", &lookup_migration(&as_filer, "postgres", READ_CRM));
    let check = p.run_with_env(&["check", "m.toml"], &[("CV_CRM_PW", SECRET)]);
    assert_ne!(check.code, 0, "{}", check.all());
    assert!(
        check.all().contains("(member of `pg_read_server_files`)"),
        "{}",
        check.all()
    );
    // MariaDB: FILE on *.* is a privilege beyond data.
    let db = TestDb::new();
    db.exec("CREATE TABLE countries (code varchar(2) PRIMARY KEY, country_name text, region text)");
    let filer = db.user(SECRET, &["SELECT ON `{db}`.*", "FILE ON *.*"]);
    p.write(
        "m.toml",
        &lookup_migration(&mariadb_connection(&db, &filer), "mysql", READ_CRM),
    );
    let check = p.run_with_env(&["check", "m.toml"], &[("CV_CRM_PW", SECRET)]);
    assert_ne!(check.code, 0, "{}", check.all());
    assert!(check.all().contains("(FILE ON *.*)"), "{}", check.all());
    let reader = db.user(SECRET, &["SELECT ON `{db}`.*"]);
    p.write(
        "m.toml",
        &lookup_migration(&mariadb_connection(&db, &reader), "mysql", READ_CRM),
    );
    let check = p.run_with_env(&["check", "m.toml"], &[("CV_CRM_PW", SECRET)]);
    assert_eq!(check.code, 0, "{}", check.all());
    assert!(
        check
            .all()
            .contains("its user holds no superuser, FILE or SUPER privileges"),
        "{}",
        check.all()
    );
}

/// A throwaway HTTPS server (`openssl s_server -WWW`) serving the files of
/// its folder, with a certificate for `localhost` signed by a CA made for
/// the test (`ca.pem` in the folder); stopped when dropped.
struct HttpsServer {
    dir: tempfile::TempDir,
    port: u16,
    child: std::process::Child,
}

impl HttpsServer {
    fn start(files: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        std::fs::write(
            dir.path().join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .current_dir(dir.path())
                .args(args)
                .output()
                .expect("running openssl (the HTTPS tests need the openssl command)");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ca = [
            "req",
            "-x509",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=credvault test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ];
        openssl(&[&ca[..2], &ec[..], &ca[2..]].concat());
        let csr = [
            "req",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ];
        openssl(&[&csr[..1], &ec[..], &csr[1..]].concat());
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = std::process::Command::new("openssl")
            .current_dir(dir.path())
            .args([
                "s_server",
                "-quiet",
                "-WWW",
                "-cert",
                "server.pem",
                "-key",
                "server.key",
            ])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting openssl s_server");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "openssl s_server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Self { dir, port, child }
    }
}

impl Drop for HttpsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn https_migration(port: u16, ca_file: &str) -> String {
    format!(
        r#"name = "api"
[source]
type = "plugin"
plugin = {:?}
config = {{ url = "https://localhost:{port}/page.json", table = "people", key = ["id"], columns = [{{ name = "id", type = "int" }}, {{ name = "name", type = "text" }}] }}
grants = {{ http = {{ hosts = ["localhost"], timeout_ms = 5000{ca_file} }} }}
[destination]
type = "sqlite"
path = "out/vault.db"
[[tables]]
source = "people"
"#,
        guests::HTTP_SOURCE
    )
}

#[test]
fn https_with_a_private_ca_works_only_when_the_grant_trusts_it() {
    let page = r#"{"items": [{"id": 1, "name": "Ada"}, {"id": 2, "name": "Grace"}], "next": null}"#;
    let server = HttpsServer::start(&[("page.json", page)]);
    let p = project();
    std::fs::copy(server.dir.path().join("ca.pem"), p.path().join("ca.pem")).unwrap();
    p.write(
        "m.toml",
        &https_migration(server.port, r#", ca_file = "ca.pem""#),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("2 read, 2 written"), "{}", run.all());
    let rows = p.query("out/vault.db", "SELECT name FROM people ORDER BY id");
    assert_eq!(rows[1][0].as_deref(), Some("Grace"));

    let untrusted = project();
    untrusted.write("m.toml", &https_migration(server.port, ""));
    let run = untrusted.run(&["run", "m.toml"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all().contains(&format!(
            "TLS failed with localhost:{}: the server's certificate is not trusted",
            server.port
        )) && run.all().contains("set grants.http.ca_file"),
        "{}",
        run.all()
    );
}

#[test]
fn a_plugin_built_against_wit_0_2_0_still_loads_and_runs() {
    let p = project();
    p.csv(
        "people",
        "id,name",
        &["1,ada".to_string(), "2,grace".to_string()],
    );
    let inspect = p.run_ok(&["plugin", "inspect", guests::LEGACY_0_2_0]);
    assert!(
        inspect
            .stdout
            .contains("credvault:migrate@0.2.0 (host 0.2.1: compatible)"),
        "{}",
        inspect.all()
    );
    p.write(
        "m.toml",
        &format!(
            r#"name = "legacy"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[[tables]]
source = "people"
[[tables.transforms]]
plugin = {:?}
"#,
            guests::LEGACY_0_2_0
        ),
    );
    p.run_ok(&["run", "m.toml"]);
    let rows = p.query("out/vault.db", "SELECT name FROM people ORDER BY id");
    assert_eq!(rows[1][0].as_deref(), Some("GRACE"));
}
