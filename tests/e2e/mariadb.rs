//! MariaDB scenarios against the real server on 127.0.0.1:3306 (user root,
//! no password): every type of the mapping table to MariaDB, SQLite and
//! PostgreSQL, zero dates, connection failures told apart, a row the
//! destination refuses (and retried once it takes it), and runs resumed after a stop and after `kill -9`.
//! Each test works in its own throwaway database, dropped even on failure.

use std::time::{Duration, Instant};

use credvault_tests::Project;
use sqlx::postgres::PgConnection;
use sqlx::{Connection, Executor, Row as _};

use super::project;
use super::servers::{TestDb, block_on, unique};

/// A migration of `tables` (each a `[[tables]]` body) between endpoints.
fn migration(source: &str, destination: &str, settings: &str, tables: &[&str]) -> String {
    let mut text = format!(
        "name = \"maria\"\n[source]\n{source}\n[destination]\n{destination}\n[settings]\n{settings}\n"
    );
    for table in tables {
        text.push_str(&format!("[[tables]]\n{table}\n"));
    }
    text
}

/// A table with every type of the mapping table, and three rows: typical
/// values, all NULL, and extremes.
const EVERY_TYPE: &str = r#"
CREATE TABLE every_type (
  id INT PRIMARY KEY, b BOOL, ti TINYINT, si SMALLINT, mi MEDIUMINT, i INT, bi BIGINT,
  u BIGINT UNSIGNED, ui INT UNSIGNED, d DECIMAL(30,10), f FLOAT, db DOUBLE,
  c CHAR(3), v VARCHAR(20), t TEXT, bin BINARY(4), vb VARBINARY(10), bl BLOB,
  dt DATE, tm TIME(6), dtt DATETIME(6), ts TIMESTAMP(6) NULL, y YEAR, j JSON,
  e ENUM('a','b'), s SET('x','y'), bt BIT(5), uu UUID, g GEOMETRY, ip INET6
);
INSERT INTO every_type VALUES
 (1, TRUE, 127, 32767, 8388607, 2147483647, 9223372036854775807, 18446744073709551615,
  4294967295, 12.3400000000, 0.1, 0.1, 'abc', 'héllo ✓', 'long 😀 text
second line', 0x00010200, 0x00ff00, 0x0000000000, '2024-02-29', '13:45:00.123456',
  '2024-01-31 13:45:00.123456', '2024-01-31 13:45:00.654321', 2024, '{"a": [1, 2]}',
  'b', 'x,y', b'10101', '123e4567-e89b-12d3-a456-426614174000',
  ST_GeomFromText('POINT(1 2)'), '::1'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, FALSE, -128, -32768, -8388608, -2147483648, -9223372036854775808, 0, 0,
  -99999999999999999999.9999999999, -1.5, -123456.789, '', '', '', 0x00000000, '', '',
  '1000-01-01', '00:00:00', '9999-12-31 23:59:59.999999', '1970-01-01 00:00:01', 1901, '[]',
  'a', '', b'0', '00000000-0000-0000-0000-000000000000', ST_GeomFromText('POINT(0 0)'), '::ffff:10.0.0.1')
"#;

/// Per column, how source `s` and copy `d` are compared in MariaDB:
/// `<=>` is NULL-safe equality; a float is compared as the server prints
/// it, a bit as its number, a geometry as its bytes.
const SAME_VALUES: &[(&str, &str)] = &[
    ("b", "s.b <=> d.b"),
    ("ti", "s.ti <=> d.ti"),
    ("si", "s.si <=> d.si"),
    ("mi", "s.mi <=> d.mi"),
    ("i", "s.i <=> d.i"),
    ("bi", "s.bi <=> d.bi"),
    ("u", "s.u <=> d.u"),
    ("ui", "s.ui <=> d.ui"),
    ("d", "s.d <=> d.d"),
    ("f", "CAST(s.f AS CHAR) <=> CAST(d.f AS CHAR)"),
    ("db", "s.db <=> d.db"),
    ("c", "BINARY s.c <=> BINARY d.c"),
    ("v", "BINARY s.v <=> BINARY d.v"),
    ("t", "BINARY s.t <=> BINARY d.t"),
    ("bin", "s.bin <=> d.bin"),
    ("vb", "s.vb <=> d.vb"),
    ("bl", "s.bl <=> d.bl"),
    ("dt", "s.dt <=> d.dt"),
    ("tm", "s.tm <=> d.tm"),
    ("dtt", "s.dtt <=> d.dtt"),
    ("ts", "s.ts <=> d.ts"),
    ("y", "s.y <=> d.y"),
    ("j", "BINARY s.j <=> BINARY d.j"),
    ("e", "BINARY CAST(s.e AS CHAR) <=> BINARY d.e"),
    ("s", "BINARY CAST(s.s AS CHAR) <=> BINARY d.s"),
    ("bt", "s.bt + 0 <=> d.bt"),
    ("uu", "s.uu <=> d.uu"),
    ("g", "HEX(s.g) <=> HEX(d.g)"),
    ("ip", "BINARY CAST(s.ip AS CHAR) <=> BINARY d.ip"),
];

#[test]
fn every_type_round_trips_mariadb_to_mariadb() {
    let db = TestDb::new();
    db.exec(EVERY_TYPE);
    let p = project();
    let table = "source = \"every_type\"\ndestination = \"copy\"";
    p.write(
        "m.toml",
        &migration(&db.endpoint(), &db.endpoint(), "", &[table]),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("3 written"), "{}", run.all());
    assert_eq!(db.value("SELECT COUNT(*) FROM copy"), "3");
    for (column, same) in SAME_VALUES {
        let differ = db.query(&format!(
            "SELECT s.id FROM every_type s JOIN copy d USING (id) WHERE NOT ({same})"
        ));
        assert!(
            differ.is_empty(),
            "column `{column}` differs in rows {differ:?}"
        );
    }
    let types = db.query(
        "SELECT COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'copy' AND COLUMN_NAME IN ('id', 'd', 'ts', 'uu', 'j', 'b')  ORDER BY COLUMN_NAME",
    );
    let types: Vec<String> = types
        .iter()
        .map(|r| format!("{}={}", r[0].as_deref().unwrap(), r[1].as_deref().unwrap()))
        .collect();
    assert_eq!(
        types,
        [
            "b=tinyint(1)",
            "d=decimal(30,10)",
            "id=bigint(20)",
            "j=longtext",
            "ts=datetime(6)",
            "uu=uuid"
        ]
    );
    // The copy reads back with the same row-model types: a timestamptz
    // kept in UTC in a commented datetime(6), JSON as a checked longtext.
    let preview = p.run_ok(&["preview", "m.toml", "--rows", "0"]);
    assert!(preview.stdout.contains("timestamptz"), "{}", preview.all());
    let back = project();
    let again = "source = \"copy\"\ndestination = \"again\"";
    back.write(
        "m.toml",
        &migration(&db.endpoint(), &db.endpoint(), "", &[again]),
    );
    let preview = back.run_ok(&["preview", "m.toml", "--rows", "0"]);
    for line in [
        "ts            ┆ timestamptz",
        "j             ┆ json",
        "uu            ┆ uuid",
    ] {
        assert!(preview.stdout.contains(line), "{line}: {}", preview.all());
    }
}

/// The values every_type's rows 1 and 3 must have in SQLite, as text
/// (bytes as hex).
const IN_SQLITE: &[(&str, &str, &str)] = &[
    ("b", "1", "0"),
    ("ti", "127", "-128"),
    ("si", "32767", "-32768"),
    ("mi", "8388607", "-8388608"),
    ("i", "2147483647", "-2147483648"),
    ("bi", "9223372036854775807", "-9223372036854775808"),
    ("u", "18446744073709551615", "0"),
    ("ui", "4294967295", "0"),
    ("d", "12.3400000000", "-99999999999999999999.9999999999"),
    ("f", "0.1", "-1.5"),
    ("db", "0.1", "-123456.789"),
    ("c", "abc", ""),
    ("v", "héllo ✓", ""),
    ("t", "long 😀 text\nsecond line", ""),
    ("hex(bin)", "00010200", "00000000"),
    ("hex(vb)", "00FF00", ""),
    ("hex(bl)", "0000000000", ""),
    ("dt", "2024-02-29", "1000-01-01"),
    ("tm", "13:45:00.123456", "00:00:00"),
    (
        "dtt",
        "2024-01-31 13:45:00.123456",
        "9999-12-31 23:59:59.999999",
    ),
    ("ts", "2024-01-31T13:45:00.654321Z", "1970-01-01T00:00:01Z"),
    ("y", "2024", "1901"),
    ("j", "{\"a\": [1, 2]}", "[]"),
    ("e", "b", "a"),
    ("s", "x,y", ""),
    ("bt", "21", "0"),
    (
        "uu",
        "123e4567-e89b-12d3-a456-426614174000",
        "00000000-0000-0000-0000-000000000000",
    ),
    (
        "hex(g)",
        "000000000101000000000000000000F03F0000000000000040",
        "00000000010100000000000000000000000000000000000000",
    ),
    ("ip", "::1", "::ffff:10.0.0.1"),
];

#[test]
fn every_type_lands_in_sqlite_with_its_value() {
    let db = TestDb::new();
    db.exec(EVERY_TYPE);
    let p = project();
    let sqlite = "type = \"sqlite\"\npath = \"out/vault.db\"";
    p.write(
        "m.toml",
        &migration(&db.endpoint(), sqlite, "", &["source = \"every_type\""]),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("3 written"), "{}", run.all());
    for (column, first, third) in IN_SQLITE {
        let got = p.query(
            "out/vault.db",
            &format!("SELECT {column} FROM every_type ORDER BY id"),
        );
        let got: Vec<Option<&str>> = got.iter().map(|r| r[0].as_deref()).collect();
        assert_eq!(got[0], Some(*first), "row 1, {column}");
        let null = column.starts_with("hex(").then_some("");
        assert_eq!(got[1], null, "row 2 is all NULL, {column}");
        assert_eq!(got[2], Some(*third), "row 3, {column}");
    }
}

/// A PostgreSQL database for one test, dropped at the end.
struct PgDb {
    name: String,
}

impl PgDb {
    async fn connect(db: &str) -> PgConnection {
        let url = format!("postgres://postgres@127.0.0.1:5432/{db}");
        PgConnection::connect(&url).await.unwrap_or_else(|e| {
            panic!("PostgreSQL must run on 127.0.0.1:5432 (user postgres, trust): {e}")
        })
    }

    fn new() -> Self {
        let name = unique("cv");
        block_on(async {
            let mut conn = Self::connect("test").await;
            conn.execute(format!("CREATE DATABASE {name}").as_str())
                .await
                .expect("creating a PostgreSQL database");
        });
        Self { name }
    }

    /// One row of `sql`, every value as text.
    fn row(&self, sql: &str) -> Vec<Option<String>> {
        block_on(async {
            let mut conn = Self::connect(&self.name).await;
            conn.execute("SET TIME ZONE 'UTC'").await.unwrap();
            let row = conn
                .fetch_one(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            (0..row.len())
                .map(|i| row.try_get::<Option<String>, _>(i).unwrap())
                .collect()
        })
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        block_on(async move {
            let mut conn = Self::connect("test").await;
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await;
        });
    }
}

#[test]
fn every_type_lands_in_postgres_with_its_value() {
    let db = TestDb::new();
    db.exec(EVERY_TYPE);
    let pg = PgDb::new();
    let p = project();
    let destination = format!(
        "type = \"postgres\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\nuser = \"postgres\"",
        pg.name
    );
    p.write(
        "m.toml",
        &migration(
            &db.endpoint(),
            &destination,
            "",
            &["source = \"every_type\""],
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("3 written"), "{}", run.all());
    let pg_text: &[(&str, &str)] = &[
        ("b", "true"),
        ("bi", "9223372036854775807"),
        ("u", "18446744073709551615"),
        ("d", "12.3400000000"),
        ("f", "0.1"),
        ("v", "héllo ✓"),
        ("t", "long 😀 text\nsecond line"),
        ("bl", "\\x0000000000"),
        ("dt", "2024-02-29"),
        ("tm", "13:45:00.123456"),
        ("dtt", "2024-01-31 13:45:00.123456"),
        ("ts", "2024-01-31 13:45:00.654321+00"),
        ("j", "{\"a\": [1, 2]}"),
        ("e", "b"),
        ("bt", "21"),
        ("uu", "123e4567-e89b-12d3-a456-426614174000"),
    ];
    let columns: Vec<String> = pg_text.iter().map(|(c, _)| format!("{c}::text")).collect();
    let first = pg.row(&format!(
        "SELECT {} FROM every_type WHERE id = 1",
        columns.join(", ")
    ));
    for ((column, want), got) in pg_text.iter().zip(&first) {
        assert_eq!(got.as_deref(), Some(*want), "row 1, {column}");
    }
    let nulls = pg.row(&format!(
        "SELECT {} FROM every_type WHERE id = 2",
        columns.join(", ")
    ));
    assert!(
        nulls.iter().all(Option::is_none),
        "row 2 is all NULL: {nulls:?}"
    );
}

#[test]
fn zero_dates_and_times_outside_a_day_are_row_errors_not_silent_nulls() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE events (id INT PRIMARY KEY, day DATE, at TIME, seen DATETIME);
         INSERT INTO events VALUES (1, '2024-01-31', '10:00:00', '2024-01-31 10:00:00'),
           (2, '0000-00-00', '10:00:00', '2024-01-31 10:00:00'),
           (3, '2024-01-31', '-01:30:00', '2024-01-31 10:00:00'),
           (4, '2024-01-31', '25:00:00', '2024-01-31 10:00:00'),
           (5, '2024-01-31', '10:00:00', '0000-00-00 00:00:00'),
           (6, NULL, NULL, NULL)",
    );
    let p = project();
    let sqlite = "type = \"sqlite\"\npath = \"out/vault.db\"";
    p.write(
        "m.toml",
        &migration(
            &db.endpoint(),
            sqlite,
            "on_error = \"flag\"",
            &["source = \"events\""],
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("2 written") && run.stdout.contains("4 flagged"),
        "{}",
        run.all()
    );
    for expected in [
        "row 2 (id=2), mapping, column `day`: expected date like 2024-01-31, got text \"0000-00-00\"",
        "row 3 (id=3), mapping, column `at`: expected time like 13:45:00, got text \"-01:30:00\"",
        "row 4 (id=4), mapping, column `at`: expected time like 13:45:00, got text \"25:00:00\"",
        "row 5 (id=5), mapping, column `seen`: expected timestamp like 2024-01-31 13:45:00, got text \"0000-00-00 00:00:00\"",
    ] {
        assert!(run.stderr.contains(expected), "{expected}\n{}", run.all());
    }
    let nulls = p.query(
        "out/vault.db",
        "SELECT day, at, seen FROM events WHERE id = 6",
    );
    assert_eq!(nulls, [vec![None, None, None]], "NULL stays NULL");

    // The documented way out: map the zero date to a chosen day, or read
    // the column as text.
    let q = project();
    let mapped = "source = \"events\"\n[tables.columns.day]\nmap = { \"0000-00-00\" = \"1970-01-01\" }\nunmapped = \"keep\"\n[tables.columns.at]\ntype = \"text\"\n[tables.columns.seen]\ntype = \"text\"";
    q.write("m.toml", &migration(&db.endpoint(), sqlite, "", &[mapped]));
    q.run_ok(&["run", "m.toml"]);
    let rows = q.query(
        "out/vault.db",
        "SELECT day, at, seen FROM events WHERE id IN (2, 3, 5) ORDER BY id",
    );
    let text = |r: &Vec<Option<String>>| {
        r.iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("|")
    };
    let rows: Vec<String> = rows.iter().map(text).collect();
    assert_eq!(
        rows,
        [
            "1970-01-01|10:00:00|2024-01-31 10:00:00",
            "2024-01-31|-01:30:00|2024-01-31 10:00:00",
            "2024-01-31|10:00:00|0000-00-00 00:00:00"
        ]
    );
}

/// A migration whose source is `body` (an endpoint with its options), for
/// connection failures.
fn failing_source(p: &Project, body: &str) {
    let sqlite = "type = \"sqlite\"\npath = \"out/vault.db\"";
    p.write(
        "m.toml",
        &migration(body, sqlite, "", &["source = \"people\""]),
    );
}

#[test]
fn connection_failures_are_told_apart_and_never_show_the_password() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE people (id INT PRIMARY KEY, name TEXT); INSERT INTO people VALUES (1, 'a')",
    );
    let right = "Right-Secret-4711";
    let wrong = "Wrong-Secret-0815";
    let reader = db.user(right, &["SELECT ON `{db}`.* "]);
    let writer_only = db.user(right, &["INSERT ON `{db}`.`people`"]);
    let server = |host: &str, port: u16, database: &str, user: &str| {
        format!(
            "type = \"mariadb\"\nhost = \"{host}\"\nport = {port}\ndatabase = \"{database}\"\nuser = \"{user}\"\npassword_env = \"CV_TEST_PASSWORD\"\n"
        )
    };
    let cases = [
        (
            server("127.0.0.1", 1, &db.name, &reader),
            right,
            "connection refused by 127.0.0.1:1: is the server running",
        ),
        (
            server("no-such-host.invalid", 3306, &db.name, &reader),
            right,
            "cannot resolve host `no-such-host.invalid` (DNS)",
        ),
        (
            server("127.0.0.1", 3306, &db.name, &reader),
            wrong,
            &format!("authentication failed for user `{reader}`"),
        ),
        (
            server("127.0.0.1", 3306, "cv_no_such_database", "root"),
            "",
            "database `cv_no_such_database` does not exist on 127.0.0.1:3306",
        ),
        (
            server("127.0.0.1", 3306, &db.name, &writer_only),
            right,
            &format!("user `{writer_only}` lacks a needed privilege: SELECT command denied"),
        ),
    ];
    for (source, password, expected) in &cases {
        let p = project();
        failing_source(&p, source);
        let run = p.run_with_env(&["run", "m.toml"], &[("CV_TEST_PASSWORD", password)]);
        assert_ne!(run.code, 0, "{}", run.all());
        assert!(run.all().contains(expected), "{expected}\n{}", run.all());
        assert!(
            !run.all().contains(right) && !run.all().contains(wrong),
            "a password leaked: {}",
            run.all()
        );
    }
    // The right password connects (so the failures above are the causes
    // they name).
    let p = project();
    failing_source(&p, &server("127.0.0.1", 3306, &db.name, &reader));
    let run = p.run_with_env(&["run", "m.toml"], &[("CV_TEST_PASSWORD", right)]);
    assert_eq!(run.code, 0, "{}", run.all());
}

#[test]
fn a_row_the_destination_refuses_is_flagged_and_the_rest_lands() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE orders (id INT PRIMARY KEY, amount DECIMAL(12,3));
         INSERT INTO orders SELECT seq, seq + 0.5 FROM seq_1_to_10;
         UPDATE orders SET amount = 1.234 WHERE id = 7;
         CREATE TABLE ledger (id BIGINT PRIMARY KEY, amount DECIMAL(12,2));
         INSERT INTO ledger VALUES (3, 99.99);",
    );
    let p = project();
    let table = "source = \"orders\"\ndestination = \"ledger\"\nif_exists = \"append\"";
    p.write(
        "m.toml",
        &migration(
            &db.endpoint(),
            &db.endpoint(),
            "on_error = \"flag\"",
            &[table],
        ),
    );
    // The pre-run check finds key 3 already there; forced, the destination
    // refuses that row.
    let run = p.run_ok(&["run", "--force", "m.toml"]);
    assert!(
        run.stdout.contains("8 written") && run.stdout.contains("2 flagged"),
        "{}",
        run.all()
    );
    let list = p.run_ok(&["flagged", "list"]);
    assert!(
        list.stdout.contains("row 3 (id=3), destination")
            && list
                .stdout
                .contains("Duplicate entry '3' for key 'PRIMARY' (error 1062)"),
        "{}",
        list.all()
    );
    assert!(
        list.stdout.contains("row 7 (id=7), destination")
            && list.stdout.contains("the destination would change the value: Note 1265: Data truncated for column 'amount'"),
        "a value the column would round is refused, not rounded: {}",
        list.all()
    );
    assert_eq!(db.value("SELECT COUNT(*) FROM ledger"), "9");
    assert_eq!(db.value("SELECT amount FROM ledger WHERE id = 3"), "99.99");
    assert!(db.query("SELECT 1 FROM ledger WHERE id = 7").is_empty());

    // Retried: key 3 is there already and is left alone; row 7 is refused
    // again until the column takes three decimals.
    let retry = p.run_ok(&["flagged", "retry", "m.toml"]);
    assert!(
        retry
            .stdout
            .contains("2 retried: 0 written, 1 already at the destination by key")
            && retry.stdout.contains("1 failed again"),
        "{}",
        retry.all()
    );
    db.exec("ALTER TABLE ledger MODIFY amount DECIMAL(12,3)");
    let retry = p.run_ok(&["flagged", "retry", "m.toml"]);
    assert!(
        retry.stdout.contains("1 retried: 1 written"),
        "{}",
        retry.all()
    );
    assert_eq!(db.value("SELECT amount FROM ledger WHERE id = 7"), "1.234");
    assert_eq!(db.value("SELECT amount FROM ledger WHERE id = 3"), "99.990");
    assert_eq!(db.value("SELECT COUNT(*) FROM ledger"), "10");
    let list = p.run_ok(&["flagged", "list"]);
    assert!(list.stdout.contains("0 flagged row(s)"), "{}", list.all());
}

#[test]
fn a_stopped_run_resumes_after_the_last_committed_composite_key() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE visits (site VARCHAR(10), day DATE, hits INT, ok TINYINT(1), PRIMARY KEY (site, day));
         INSERT INTO visits SELECT CONCAT('s', seq % 3), '2024-01-01' + INTERVAL seq DAY, seq, 1 FROM seq_1_to_100;
         UPDATE visits SET ok = 2 WHERE hits = 50;",
    );
    let p = project();
    let table = "source = \"visits\"\ndestination = \"visits_copy\"";
    let destination = db.endpoint().replace("\"mariadb\"", "\"mysql\"");
    p.write(
        "m.toml",
        &migration(&db.endpoint(), &destination, "batch_size = 7", &[table]),
    );
    let stopped = p.run(&["run", "m.toml"]);
    assert_eq!(stopped.code, 1, "{}", stopped.all());
    assert!(
        stopped
            .stderr
            .contains("column `ok`: expected boolean (true/false, yes/no, 1/0), got int \"2\""),
        "{}",
        stopped.all()
    );
    let at_stop = committed(&db, "visits_copy");
    let landed: u64 = db
        .value("SELECT COUNT(*) FROM visits_copy")
        .parse()
        .unwrap();
    assert!(
        at_stop > 0 && at_stop < 100,
        "stopped part-way, at {at_stop}"
    );
    assert_eq!(
        landed, at_stop,
        "batches before the failing one are committed"
    );
    db.exec("UPDATE visits SET ok = 1 WHERE hits = 50");
    let resumed = p.run_ok(&["run", "m.toml"]);
    assert!(
        resumed
            .stderr
            .contains(&format!("resuming after row {at_stop} of 100")),
        "{}",
        resumed.all()
    );
    let copied = "SELECT CONCAT(COUNT(*), '/', COUNT(DISTINCT site, day), '/', SUM(hits)) FROM";
    assert_eq!(
        db.value(&format!("{copied} visits_copy")),
        db.value(&format!("{copied} visits"))
    );
}

/// The committed row count of `table` in the destination's checkpoints (0
/// before the sink has created its checkpoint table).
fn committed(db: &TestDb, table: &str) -> u64 {
    let exists = db.value(
        "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '_credvault_checkpoints'",
    );
    if exists == "0" {
        return 0;
    }
    db.query(&format!(
        "SELECT JSON_VALUE(checkpoint, '$.rows') FROM _credvault_checkpoints WHERE table_name = '{table}'"
    ))
    .first()
    .and_then(|r| r[0].as_deref()?.parse().ok())
    .unwrap_or(0)
}

/// A checksum of `table`'s rows, independent of column types.
fn checksum(db: &TestDb, table: &str) -> String {
    db.value(&format!(
        "SELECT CONCAT(COUNT(*), '/', COUNT(DISTINCT id), '/', SUM(CRC32(CONCAT_WS('|', id, name, CAST(amount AS DECIMAL(12,2)), at, flag, COALESCE(note, '<null>'))))) FROM {table}"
    ))
}

const BIG: u64 = 200_000;

#[test]
fn a_killed_mariadb_run_resumes_without_loss_or_duplicates() {
    let db = TestDb::new();
    db.exec(&format!(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(12,2), at DATETIME(6), flag BOOL, note TEXT);
         INSERT INTO big SELECT seq, CONCAT('name ', seq, ' ', REPEAT('x', seq % 50)), seq / 100,
           '2024-01-01' + INTERVAL seq SECOND + INTERVAL seq MICROSECOND, seq % 2,
           IF(seq % 10 = 0, NULL, CONCAT('note ', seq)) FROM seq_1_to_{BIG}"
    ));
    let p = project();
    let table = "source = \"big\"\ndestination = \"big_copy\"";
    p.write(
        "m.toml",
        &migration(
            &db.endpoint(),
            &db.endpoint(),
            "batch_size = 1000",
            &[table],
        ),
    );
    let mut child = p.spawn(&["run", "m.toml"]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while committed(&db, "big_copy") < 20_000 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        assert!(Instant::now() < deadline, "no progress in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let at_kill = committed(&db, "big_copy");
    let landed: u64 = db.value("SELECT COUNT(*) FROM big_copy").parse().unwrap();
    assert!(at_kill < BIG, "killed mid-way, at {at_kill}");
    assert_eq!(
        landed, at_kill,
        "the rows committed are exactly those the checkpoint counts"
    );
    let resumed = p.run_ok(&["run", "m.toml"]);
    assert!(
        resumed.stdout.contains(&format!("{} read", BIG - at_kill)),
        "only the rest is read again: {}",
        resumed.all()
    );
    assert_eq!(checksum(&db, "big_copy"), checksum(&db, "big"));
}

#[test]
fn a_split_table_lands_each_key_range_once() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE big (id BIGINT PRIMARY KEY, name VARCHAR(100), amount DECIMAL(12,2), at DATETIME(6), flag BOOL, note TEXT);
         INSERT INTO big SELECT seq * 3, CONCAT('name ', seq), seq / 100, '2024-01-01' + INTERVAL seq SECOND,
           seq % 2, IF(seq % 10 = 0, NULL, 'n') FROM seq_1_to_30000",
    );
    let p = project();
    let table = "source = \"big\"\ndestination = \"big_copy\"";
    let settings = "batch_size = 1000\nsplit_rows = 8000\nparallel_tables = 3";
    p.write(
        "m.toml",
        &migration(&db.endpoint(), &db.endpoint(), settings, &[table]),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("30000 written"), "{}", run.all());
    let ranges = db.value(
        "SELECT COUNT(*) FROM _credvault_checkpoints WHERE table_name LIKE 'big\\_copy#%/%'",
    );
    assert_eq!(ranges, "4", "four key ranges, each with its checkpoint");
    assert_eq!(checksum(&db, "big_copy"), checksum(&db, "big"));
}

#[test]
fn a_decimal_keeps_its_declared_precision_unless_a_transform_runs() {
    let db = TestDb::new();
    db.exec(
        "CREATE TABLE prices (id INT PRIMARY KEY, amount DECIMAL(12,2));
         INSERT INTO prices VALUES (1, 10.50), (2, -0.01);",
    );
    let amount_type = |table: &str| {
        db.value(&format!(
            "SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' AND COLUMN_NAME = 'amount'"
        ))
    };
    let p = project();
    let copied = "source = \"prices\"\ndestination = \"copied\"";
    let computed = "source = \"prices\"\ndestination = \"computed\"\n[[tables.transforms]]\nplugin = \"expr\"\nconfig.expressions = [\"note = 'x'\"]";
    let text = migration(&db.endpoint(), &db.endpoint(), "", &[copied, computed]);
    p.write("m.toml", &text);
    let check = p.run_ok(&["check", "m.toml"]);
    assert!(
        check
            .stdout
            .contains("amount decimal → amount decimal(12,2)"),
        "{}",
        check.all()
    );
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(amount_type("copied"), "decimal(12,2)");
    assert_eq!(db.value("SELECT amount FROM copied WHERE id = 2"), "-0.01");
    // A transform may compute more digits than the source column had, so
    // where one runs the column gets the exact, wide type instead.
    assert_eq!(amount_type("computed"), "decimal(65,30)");
}
