//! Restore points and rollback on real SQLite, PostgreSQL and MariaDB
//! destinations: a table with awkward values is replaced, then appended to,
//! and every rollback must bring back exactly the rows it held (compared as
//! a full text dump taken with SQL); a table the run created is dropped;
//! `--to` picks an older point; expired points are pruned; a copy tampered
//! with fails the checksum verification.

use credvault_tests::{Project, exec_sqlite};

use super::project;
use super::servers::Scratch;
use super::servers::TestDb;

/// What a scenario needs of a destination database.
trait Dest {
    /// The `[destination]` section.
    fn section(&self) -> String;
    /// Runs statements.
    fn exec(&self, sql: &str);
    /// `table` as SQL names it.
    fn table(&self, name: &str) -> String;
    /// Every row of `accounts`, each value in an exact text form, by id.
    fn dump(&self) -> Vec<Vec<Option<String>>>;
    /// Whether a table exists.
    fn exists(&self, table: &str) -> bool;
    /// The rows in a table.
    fn count(&self, table: &str) -> String;
}

struct Lite<'a>(&'a Project);

impl Dest for Lite<'_> {
    fn section(&self) -> String {
        "[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n".into()
    }

    fn exec(&self, sql: &str) {
        exec_sqlite(&self.0.path().join("out/vault.db"), sql);
    }

    fn table(&self, name: &str) -> String {
        name.into()
    }

    fn dump(&self) -> Vec<Vec<Option<String>>> {
        let exact: Vec<String> = ["name", "amount", "ratio", "at", "data"]
            .iter()
            .map(|c| format!("typeof({c}) || ':' || quote({c})"))
            .collect();
        self.0.query(
            "out/vault.db",
            &format!("SELECT id, {} FROM accounts ORDER BY id", exact.join(", ")),
        )
    }

    fn exists(&self, table: &str) -> bool {
        let sql = format!("SELECT count(*) FROM sqlite_schema WHERE name = '{table}'");
        self.0.query("out/vault.db", &sql)[0][0].as_deref() == Some("1")
    }

    fn count(&self, table: &str) -> String {
        let sql = format!("SELECT count(*) FROM {table}");
        self.0.query("out/vault.db", &sql)[0][0]
            .clone()
            .unwrap_or_default()
    }
}

/// `accounts` in SQLite: a decimal kept as text with its scale, a real,
/// a microsecond timestamp, bytes with zeros, unicode, NULLs; an index.
const LITE_ACCOUNTS: &str = "
CREATE TABLE accounts (id INTEGER PRIMARY KEY, name TEXT, amount DECIMAL_TEXT, ratio REAL, at TIMESTAMP_TEXT, data BLOB);
CREATE INDEX accounts_name ON accounts (name);
INSERT INTO accounts VALUES
 (1, 'ünïcödé 🎉 ''quoted''', '12.340', 0.1, '2024-02-29 13:45:00.123456', x'00ff00'),
 (2, NULL, NULL, NULL, NULL, NULL),
 (3, '', '-0.001', -1e308, '1969-12-31 23:59:59.999999', x'');
";

impl Dest for Scratch {
    fn section(&self) -> String {
        self.endpoint("destination", "")
    }

    fn exec(&self, sql: &str) {
        Scratch::exec(self, sql);
    }

    fn table(&self, name: &str) -> String {
        format!("{{s}}.{name}")
    }

    fn dump(&self) -> Vec<Vec<Option<String>>> {
        self.rows("SELECT a::text FROM {s}.accounts a ORDER BY id")
    }

    fn exists(&self, table: &str) -> bool {
        self.one(&format!("SELECT to_regclass('{{s}}.{table}') IS NOT NULL"))
            .as_deref()
            == Some("t")
    }

    fn count(&self, table: &str) -> String {
        self.one(&format!("SELECT count(*) FROM {{s}}.{table}"))
            .unwrap_or_default()
    }
}

/// `accounts` in PostgreSQL: a serial key (whose sequence the table owns:
/// a copy must not depend on it, or the run's DROP TABLE fails), an
/// identity and a generated column, a default, numeric with scale,
/// microsecond timestamps, bytea, jsonb, unicode, NULLs.
const PG_ACCOUNTS: &str = "
CREATE TABLE {s}.accounts (id serial PRIMARY KEY, name text, amount numeric(12,3), at timestamptz,
  ts timestamp(6), data bytea, flag bool DEFAULT true, doc jsonb,
  ticket int GENERATED ALWAYS AS IDENTITY, doubled numeric GENERATED ALWAYS AS (amount * 2) STORED,
  CHECK (amount > -1000));
INSERT INTO {s}.accounts (id, name, amount, at, ts, data, flag, doc) VALUES
 (1, E'ünïcödé 🎉 ''quoted'' \\\\ back', 12.340, '2024-02-29 13:45:00.123456+02', '1999-12-31 23:59:59.999999', '\\x00ff00', true, '{\"a\": [1, 2.50]}'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '', -0.001, '1970-01-01 00:00:00+00', '0001-01-01 00:00:00', '\\x', false, '[]');
";

impl Dest for TestDb {
    fn section(&self) -> String {
        format!("[destination]\n{}", self.endpoint())
    }

    fn exec(&self, sql: &str) {
        TestDb::exec(self, sql);
    }

    fn table(&self, name: &str) -> String {
        name.into()
    }

    fn dump(&self) -> Vec<Vec<Option<String>>> {
        self.query(
            "SELECT id, name, amount, at, ts, HEX(data), flag, note, doubled FROM accounts ORDER BY id",
        )
    }

    fn exists(&self, table: &str) -> bool {
        self.value(&format!(
            "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
        )) == "1"
    }

    fn count(&self, table: &str) -> String {
        self.value(&format!("SELECT COUNT(*) FROM {table}"))
    }
}

/// `accounts` in MariaDB: an auto-increment key, a decimal with scale,
/// DATETIME(6) and TIMESTAMP(6), bytes with zeros, unicode, a stored
/// generated column, NULLs.
const MARIA_ACCOUNTS: &str = "
CREATE TABLE accounts (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(12,3),
  at DATETIME(6), ts TIMESTAMP(6) NULL, data VARBINARY(20), flag TINYINT(1), note TEXT,
  doubled DECIMAL(14,3) AS (amount * 2) STORED, KEY by_name (name)) CHARACTER SET utf8mb4;
INSERT INTO accounts (id, name, amount, at, ts, data, flag, note) VALUES
 (1, 'ünïcödé 🎉 ''quoted''', 12.340, '2024-02-29 13:45:00.123456', '2024-01-31 13:45:00.654321', 0x00ff00, 1, 'line one\nline two'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '', -0.001, '1000-01-01 00:00:00', '1970-01-01 00:00:01', '', 0, '');
";

/// CSV `accounts` → `accounts` (`if_exists` as given) and → `extra`, a
/// table that does not exist before the first run.
fn migration(dest: &dyn Dest, if_exists: &str, settings: &str) -> String {
    format!(
        r#"name = "vault-restore"
[source]
type = "csv"
path = "data"
{}
[settings]
{settings}
[[tables]]
source = "accounts"
key = ["id"]
if_exists = "{if_exists}"
[tables.columns.id]
type = "int"
[[tables]]
source = "accounts"
destination = "extra"
if_exists = "replace"
[tables.columns.id]
type = "int"
"#,
        dest.section()
    )
}

/// The restore points `restore-points list --json` shows: each point's
/// name and its copy of `accounts`.
fn points(p: &Project, file: &str) -> Vec<(String, Option<String>)> {
    let run = p.run_ok(&["restore-points", "list", file, "--json"]);
    let listing: serde_json::Value = serde_json::from_str(&run.stdout).expect("JSON");
    listing["points"]
        .as_array()
        .expect("points")
        .iter()
        .map(|point| {
            let accounts = point["tables"]
                .as_array()
                .expect("tables")
                .iter()
                .find(|t| t["table"] == "accounts")
                .expect("accounts is in every point");
            (
                point["name"].as_str().expect("name").to_string(),
                accounts["backup"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The whole story on one destination whose `accounts` table holds the
/// fixture. `after_recreate` checks what a recreated table must still do.
fn rollback_scenario(p: &Project, d: &dyn Dest, after_recreate: &dyn Fn()) {
    let before = d.dump();
    assert_eq!(before.len(), 3, "the fixture is in place");
    p.csv(
        "accounts",
        "id,name",
        &["101,new one".into(), "102,new two".into()],
    );
    p.write("replace.toml", &migration(d, "replace", ""));
    p.write("append.toml", &migration(d, "append", ""));

    // A run that replaces the table, rolled back: the table is recreated
    // with exactly its old rows, and the table the run made is dropped.
    let run = p.run_ok(&["run", "replace.toml"]);
    assert!(
        run.stderr.contains("restore point vault-restore-")
            && run.stderr.contains("(2 table(s), 3 rows"),
        "{}",
        run.all()
    );
    assert_eq!(d.count("accounts"), "2", "the run replaced the table");
    assert!(d.exists("extra"));
    let back = p.run_ok(&["rollback", "replace.toml"]);
    assert!(
        back.stdout
            .contains("[pass] accounts: recreated, 3 rows, checksum"),
        "{}",
        back.all()
    );
    assert!(
        back.stdout
            .contains("[pass] extra: dropped (it did not exist at the point)"),
        "{}",
        back.all()
    );
    assert_eq!(d.dump(), before, "rollback restores byte-identical data");
    assert!(!d.exists("extra"), "a table absent before the run is gone");
    after_recreate();

    // Two appending runs make two more points; the newest is the default,
    // `--to` picks an older one. Both restore in place.
    p.run_ok(&["run", "append.toml"]);
    let appended = d.dump();
    assert_eq!(appended.len(), 5, "{appended:?}");
    p.csv(
        "accounts",
        "id,name",
        &["201,third".into(), "202,fourth".into()],
    );
    let run = p.run_ok(&["run", "append.toml"]);
    assert!(run.stderr.contains("(2 table(s), 7 rows"), "{}", run.all());
    let listed = points(p, "append.toml");
    assert_eq!(listed.len(), 3, "{listed:?}");
    let text = p.run_ok(&["restore-points", "list", "append.toml"]);
    for (name, _) in &listed {
        assert!(text.stdout.contains(name.as_str()), "{}", text.all());
    }
    assert!(
        text.stdout.contains("  accounts: 5 rows") && text.stdout.contains("2 table(s)  7 rows"),
        "{}",
        text.all()
    );
    let back = p.run_ok(&["rollback", "append.toml"]);
    assert!(
        back.stdout.contains(&listed[2].0)
            && back
                .stdout
                .contains("[pass] accounts: rows replaced, 5 rows"),
        "{}",
        back.all()
    );
    assert_eq!(d.dump(), appended, "the newest point is the default");
    let back = p.run_ok(&["rollback", "append.toml", "--to", &listed[1].0]);
    assert!(
        back.stdout
            .contains("[pass] accounts: rows replaced, 3 rows"),
        "{}",
        back.all()
    );
    assert_eq!(d.dump(), before, "--to restores the older point");
    assert!(!d.exists("extra"));

    // A copy changed after its point was made fails the verification.
    let copy = listed[1].1.as_deref().expect("accounts had a copy");
    d.exec(&format!(
        "UPDATE {} SET name = 'tampered' WHERE id = 1",
        d.table(copy)
    ));
    let back = p.run(&["rollback", "append.toml", "--to", &listed[1].0]);
    assert_eq!(back.code, 1, "{}", back.all());
    assert!(
        back.stdout
            .contains("[FAIL] accounts: rows replaced: the copy")
            && back.stdout.contains("was changed after the point was made"),
        "{}",
        back.all()
    );

    // A point past its retention is listed as expired, then pruned by the
    // next run along with its copy.
    p.write(
        "short.toml",
        &migration(d, "append", "restore_point_days = 0"),
    );
    p.run_ok(&["run", "short.toml"]);
    let listed = points(p, "short.toml");
    let (expiring, expiring_copy) = listed.last().expect("a new point").clone();
    let text = p.run_ok(&["restore-points", "list", "short.toml"]);
    assert!(text.stdout.contains("EXPIRED"), "{}", text.all());
    p.csv("accounts", "id,name", &["301,fifth".into()]);
    let run = p.run_ok(&["run", "short.toml"]);
    assert!(
        run.stderr
            .contains(&format!("restore point {expiring} expired and was removed")),
        "{}",
        run.all()
    );
    let names: Vec<String> = points(p, "short.toml")
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    assert!(!names.contains(&expiring), "{names:?}");
    assert_eq!(names.len(), 4, "older points keep their own retention");
    assert!(!d.exists(expiring_copy.as_deref().expect("a copy")));

    let log = p.run_ok(&["log", "--migration", "vault-restore", "--limit", "500"]);
    for kind in [
        "restore_point_created",
        "rolled_back",
        "restore_point_pruned",
    ] {
        assert!(log.stdout.contains(kind), "{kind} missing: {}", log.all());
    }

    // Deleting the rows of a table that another table references with
    // ON DELETE CASCADE would delete that table's rows too: refused.
    let (orders, accounts) = (d.table("orders"), d.table("accounts"));
    d.exec(&format!(
        "CREATE TABLE {orders} (id INT PRIMARY KEY, account_id INT, FOREIGN KEY (account_id) REFERENCES {accounts} (id) ON DELETE CASCADE);
         INSERT INTO {orders} VALUES (1, 1)"
    ));
    let back = p.run(&["rollback", "short.toml"]);
    assert_eq!(back.code, 2, "{}", back.all());
    assert!(
        back.stderr
            .contains("rolling back `accounts` deletes its rows")
            && back
                .stderr
                .contains("(ON DELETE CASCADE) would delete or change rows")
            && back.stderr.contains("nothing was changed"),
        "{}",
        back.all()
    );
    assert_eq!(d.count("orders"), "1");
}

#[test]
fn sqlite_rollback_restores_byte_identical_data() {
    let p = project();
    let d = Lite(&p);
    std::fs::create_dir_all(p.path().join("out")).expect("out/");
    std::fs::File::create(p.path().join("out/vault.db")).expect("an empty database");
    d.exec(LITE_ACCOUNTS);
    // Left by a run that died while making its point, under the name the
    // first point's copy would take: skipped, not dropped.
    d.exec("CREATE TABLE _credvault_rp_1_0 (junk)");
    rollback_scenario(&p, &d, &|| {
        assert!(d.exists("_credvault_rp_1_0"));
        let index = p.query(
            "out/vault.db",
            "SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'accounts'",
        );
        assert_eq!(index, vec![vec![Some("accounts_name".to_string())]]);
    });
}

#[test]
fn postgres_rollback_restores_byte_identical_data() {
    let s = Scratch::new();
    s.exec(PG_ACCOUNTS);
    let p = project();
    rollback_scenario(&p, &s, &|| {
        // The recreated table's identity carries on after the restored rows,
        // and its constraints came back.
        let ticket =
            s.one("INSERT INTO {s}.accounts (id, name) VALUES (900, 'probe') RETURNING ticket");
        assert_eq!(ticket.as_deref(), Some("4"));
        s.exec("DELETE FROM {s}.accounts WHERE id = 900");
        let checks = s.one("SELECT count(*) FROM pg_constraint WHERE conrelid = '{s}.accounts'::regclass AND contype IN ('p', 'c')");
        assert_eq!(checks.as_deref(), Some("2"));
        let defaults = s.rows("SELECT column_name::text, column_default::text FROM information_schema.columns WHERE table_schema = '{s}' AND table_name = 'accounts' AND column_default IS NOT NULL");
        assert_eq!(
            defaults,
            vec![vec![Some("flag".into()), Some("true".into())]],
            "plain defaults come back; the serial's (its sequence went with the replaced table) does not"
        );
    });
}

#[test]
fn a_rollback_that_fails_part_way_is_logged_and_can_be_retried() {
    let s = Scratch::new();
    s.exec(PG_ACCOUNTS);
    let before = s.dump();
    let p = project();
    p.csv("accounts", "id,name", &["101,new one".into()]);
    p.write("m.toml", &migration(&s, "replace", ""));
    p.run_ok(&["run", "m.toml"]);
    // A view on the run's table keeps PostgreSQL from dropping it.
    s.exec("CREATE VIEW {s}.recent AS SELECT * FROM {s}.accounts");
    let back = p.run(&["rollback", "m.toml"]);
    assert_eq!(back.code, 2, "{}", back.all());
    assert!(
        back.stderr.contains("table `accounts`") && back.stderr.contains("depend"),
        "{}",
        back.all()
    );
    let log = p.run_ok(&["log", "--json"]);
    let failed = log
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("JSON"))
        .find(|e| e["kind"] == "rolled_back")
        .expect("the failed rollback is in the audit log");
    assert_eq!(failed["detail"]["passed"], false);
    assert!(
        failed["detail"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("depend"))
    );
    s.exec("DROP VIEW {s}.recent");
    p.run_ok(&["rollback", "m.toml"]);
    assert_eq!(s.dump(), before);
}

#[test]
fn mariadb_rollback_restores_byte_identical_data() {
    let db = TestDb::new();
    db.exec(MARIA_ACCOUNTS);
    let p = project();
    rollback_scenario(&p, &db, &|| {
        let keys = db.value("SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'accounts'");
        assert_eq!(keys, "2", "the primary key and the index came back");
    });
}

#[test]
fn a_rolled_back_failed_run_is_not_resumed_and_other_misuse_is_explained() {
    let p = project();
    p.csv("accounts", "id,name", &["1,one".into(), "x,bad".into()]);
    let d = Lite(&p);
    p.write("m.toml", &migration(&d, "fail", ""));
    let run = p.run(&["rollback", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr.contains("has no restore points here"),
        "{}",
        run.all()
    );

    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "the bad row stops the run: {}", run.all());
    let run = p.run(&["rollback", "m.toml", "--to", "nope"]);
    assert!(
        run.stderr
            .contains("has no restore point `nope`; its points are vault-restore-"),
        "{}",
        run.all()
    );
    let back = p.run_ok(&["rollback", "m.toml", "--json"]);
    let back: serde_json::Value = serde_json::from_str(&back.stdout).expect("JSON");
    assert_eq!(back["tables"][0]["table"], "accounts");
    assert_eq!(back["tables"][0]["action"], "dropped");
    assert_eq!(back["tables"][0]["passed"], true);
    assert!(!d.exists("accounts") && !d.exists("extra"));
    p.csv("accounts", "id,name", &["1,one".into(), "2,two".into()]);
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        !run.stderr.contains("resuming") && run.stderr.contains("restore point"),
        "a rolled-back run starts afresh: {}",
        run.all()
    );

    p.write(
        "off.toml",
        &migration(&d, "replace", "restore_points = false"),
    );
    let run = p.run_ok(&["run", "off.toml"]);
    assert!(!run.stderr.contains("restore point"), "{}", run.all());

    // A point whose copy was dropped by hand cannot be restored.
    p.write("replace.toml", &migration(&d, "replace", ""));
    p.run_ok(&["run", "replace.toml"]);
    let (_, copy) = points(&p, "replace.toml").pop().expect("a point");
    d.exec(&format!("DROP TABLE {}", copy.expect("accounts existed")));
    let back = p.run(&["rollback", "replace.toml"]);
    assert_eq!(back.code, 2, "{}", back.all());
    assert!(
        back.stderr
            .contains("is gone, so the point cannot be restored; nothing was changed"),
        "{}",
        back.all()
    );

    p.write(
        "long.toml",
        &migration(&d, "replace", "restore_point_days = 4000"),
    );
    let run = p.run(&["check", "long.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("settings.restore_point_days: must be between 0 and 3650"),
        "{}",
        run.all()
    );
}

#[test]
fn csv_destinations_say_they_have_no_restore_points() {
    let p = project();
    p.csv("accounts", "id,name", &["1,one".into()]);
    p.write(
        "m.toml",
        "name = \"to-csv\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"csv\"\npath = \"export\"\n[[tables]]\nsource = \"accounts\"\n",
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stderr.contains("no restore point for this run: restore points are kept for SQLite, PostgreSQL and MariaDB/MySQL destinations"),
        "{}",
        run.all()
    );
    let run = p.run(&["restore-points", "list", "m.toml"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("not CSV folders"), "{}", run.all());
}
