//! PostgreSQL scenarios against the real server on 127.0.0.1:5432 (trust
//! auth, database `test`). Each test works in its own throwaway schema,
//! dropped at the end even when the test fails. A server that is not
//! running fails the tests with the command that starts it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credvault_tests::{Project, Run};

use super::project;
use super::servers::{PG_BIN, Scratch, unique};

/// A PG → PG migration of `table` within the scratch schema into `dest`.
fn pg_to_pg(s: &Scratch, settings: &str, table: &str) -> String {
    format!(
        "name = \"pg-move\"\n{}{}[settings]\n{settings}\n[[tables]]\n{table}\n",
        s.endpoint("source", ""),
        s.endpoint("destination", "")
    )
}

/// One row per edge of every mapped type; row 2 is all NULLs.
pub(crate) const ALL_TYPES: &str = r#"
CREATE TYPE {s}.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE {s}.all_types (
  id int4 PRIMARY KEY, i2 int2, i8 int8, n numeric(30,10), f4 float4, f8 float8,
  t text, vc varchar(20), c char(6), nm name, by bytea, ok bool, d date, tm time,
  ts timestamp, tz timestamptz, u uuid, j json, jb jsonb, m {s}.mood, arr int[],
  iv interval);
INSERT INTO {s}.all_types VALUES
 (1, -32768, 9223372036854775807, 12345678901234567890.1234500000, 3.25, 1e308,
  E'héllo\nwörld ✓ \t ''quoted'' \\ back', 'varchar', 'ab', 'a_name', '\x00ff0000', true,
  '0001-01-01', '23:59:59.999999', '2024-02-29 13:45:00.123456', '2024-02-29 13:45:00.654321+02',
  '123e4567-e89b-12d3-a456-426614174000', '{"a": [1, 2.50], "b": "x"}', '{"b": {"c": null}}',
  'happy', '{1,NULL,3}', '1 day 02:03:04.5'),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, 0, -9223372036854775808, -0.0000000001, 'NaN', '-Infinity', '', '', '', '', '\x', false,
  '9999-12-31', '00:00:00', '1969-12-31 23:59:59.999999', '1970-01-01 00:00:00+00',
  '00000000-0000-0000-0000-000000000000', '[]', '[]', 'sad', '{}', '-1 mon'),
 (4, 32767, 1, 0.0000000000, 5e-45, 5e-324, 'ünïcödé 🎉', 'x', 'abcdef', 'n', '\x00', true,
  '1969-12-31', '12:00:00.000001', '1900-01-01 00:00:00', '2262-04-11 23:47:16.854775+00',
  'ffffffff-ffff-ffff-ffff-ffffffffffff', '1.50', '"s"', 'ok', '{-2147483648,2147483647}', '0');
"#;

/// Each column of the source as text, in the form the destination should
/// hold it (enum → text, array → JSON array, json → jsonb).
const SOURCE_AS_TEXT: &str = "id::text, i2::text, i8::text, n::text, f4::float8::text, f8::text, t, vc::text, \
     rpad(c::text, 6), nm::text, by::text, ok::text, d::text, tm::text, ts::text, tz::text, u::text, \
     j::jsonb::text, jb::text, m::text, to_jsonb(arr)::text, iv::text";

const DEST_AS_TEXT: &str = "id::text, i2::text, i8::text, n::text, f4::text, f8::text, t, vc, c, nm, by::text, \
     ok::text, d::text, tm::text, ts::text, tz::text, u::text, j::text, jb::text, m, to_jsonb(arr)::text, iv";

#[test]
fn every_mapped_type_round_trips_pg_to_pg() {
    let s = Scratch::new();
    s.exec(ALL_TYPES);
    let p = project();
    p.write(
        "m.toml",
        &pg_to_pg(&s, "", "source = \"all_types\"\ndestination = \"copy\""),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("4 written"), "{}", run.all());
    let types = s.rows(
        "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
         WHERE table_schema = '{s}' AND table_name = 'copy' ORDER BY ordinal_position",
    );
    let types: Vec<String> = types
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r[0].as_deref().unwrap_or(""),
                r[1].as_deref().unwrap_or(""),
                r[2].as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        types.join(", "),
        "id bigint NO, i2 bigint YES, i8 bigint YES, n numeric YES, f4 double precision YES, \
         f8 double precision YES, t text YES, vc text YES, c text YES, nm text YES, by bytea YES, \
         ok boolean YES, d date YES, tm time without time zone YES, ts timestamp without time zone YES, \
         tz timestamp with time zone YES, u uuid YES, j jsonb YES, jb jsonb YES, m text YES, \
         arr ARRAY YES, iv text YES"
    );
    let n = s.rows(
        "SELECT numeric_precision, numeric_scale FROM information_schema.columns \
         WHERE table_schema = '{s}' AND table_name = 'copy' AND column_name = 'n'",
    );
    assert_eq!(
        (n[0][0].as_deref(), n[0][1].as_deref()),
        (Some("30"), Some("10")),
        "numeric(30,10) is created as such"
    );
    let (source, dest) = ((SOURCE_AS_TEXT, "all_types"), (DEST_AS_TEXT, "copy"));
    for (from, to) in [(source, dest), (dest, source)] {
        let diff = s.rows(&format!(
            "SELECT {} FROM {{s}}.{} EXCEPT SELECT {} FROM {{s}}.{}",
            from.0, from.1, to.0, to.1
        ));
        assert!(
            diff.is_empty(),
            "rows of {} missing from {}: {diff:?}",
            from.1,
            to.1
        );
    }
    // Spot checks of the exact text forms that matter most.
    let row1 = s.rows(
        "SELECT n::text, ts::text, tz::text, by::text, arr::text, t FROM {s}.copy WHERE id = 1",
    );
    let v = |i: usize| row1[0][i].as_deref();
    assert_eq!(
        v(0),
        Some("12345678901234567890.1234500000"),
        "numeric keeps its scale"
    );
    assert_eq!(v(1), Some("2024-02-29 13:45:00.123456"));
    assert_eq!(v(2), Some("2024-02-29 11:45:00.654321+00"));
    assert_eq!(v(3), Some("\\x00ff0000"), "bytea keeps zero bytes");
    assert_eq!(v(4), Some("{1,NULL,3}"), "an array stays an array");
    assert_eq!(v(5), Some("héllo\nwörld ✓ \t 'quoted' \\ back"));
    let nulls = s.one("SELECT count(*) FROM {s}.copy c WHERE id = 2 AND num_nulls(VARIADIC ARRAY[i2::text, i8::text, n::text, f4::text, f8::text, t, vc, c, nm, by::text, ok::text, d::text, tm::text, ts::text, tz::text, u::text, j::text, jb::text, m, arr::text, iv]) = 21");
    assert_eq!(
        nulls.as_deref(),
        Some("1"),
        "NULL stays NULL in every column"
    );
}

#[test]
fn pg_to_sqlite_keeps_every_value() {
    let s = Scratch::new();
    s.exec(ALL_TYPES);
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"pg-sqlite\"\n{}[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"all_types\"\n",
            s.endpoint("source", "")
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("4 written"), "{}", run.all());
    let rows = p.query(
        "out/vault.db",
        "SELECT id, i2, i8, n, f4, f8 = 1e308, t, vc, c, nm, CASE WHEN by IS NULL THEN NULL ELSE hex(by) END, ok, d, tm, ts, tz, u, j, jb, m, arr, iv \
         FROM all_types ORDER BY id",
    );
    let s = |v: &str| Some(v.to_string());
    assert_eq!(
        rows[0],
        [
            s("1"),
            s("-32768"),
            s("9223372036854775807"),
            s("12345678901234567890.1234500000"),
            s("3.25"),
            s("1"),
            s("héllo\nwörld ✓ \t 'quoted' \\ back"),
            s("varchar"),
            s("ab    "),
            s("a_name"),
            s("00FF0000"),
            s("1"),
            s("0001-01-01"),
            s("23:59:59.999999"),
            s("2024-02-29 13:45:00.123456"),
            s("2024-02-29T11:45:00.654321Z"),
            s("123e4567-e89b-12d3-a456-426614174000"),
            s(r#"{"a": [1, 2.50], "b": "x"}"#),
            s(r#"{"b": {"c": null}}"#),
            s("happy"),
            s("[1, null, 3]"),
            s("1 day 02:03:04.5"),
        ]
    );
    assert!(
        rows[1][1..].iter().all(Option::is_none),
        "row 2 is all NULL: {:?}",
        rows[1]
    );
    assert_eq!(rows[2][3], s("-0.0000000001"));
    assert_eq!(rows[2][10], s(""), "empty bytea stays empty, not NULL");
    assert_eq!(rows[2][14], s("1969-12-31 23:59:59.999999"));
    assert_eq!(rows[3][12], s("1969-12-31"));
    assert_eq!(rows[3][3], s("0.0000000000"));
}

/// Runs `credvault check` on a migration from a PostgreSQL source with
/// `endpoint` lines replacing the defaults, and returns everything printed.
fn check_source(p: &Project, endpoint: &str, env: &[(&str, &str)]) -> Run {
    p.write(
        "m.toml",
        &format!(
            "name = \"conn\"\n[source]\ntype = \"postgres\"\n{endpoint}\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"t\"\n"
        ),
    );
    let run = p.run_with_env(&["check", "m.toml"], env);
    assert_ne!(run.code, 0, "{}", run.all());
    run
}

#[test]
fn connection_failures_are_told_apart() {
    let s = Scratch::new();
    let p = project();
    let closed = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let refused = check_source(
        &p,
        &format!("port = {closed}\ndatabase = \"test\"\nuser = \"postgres\""),
        &[],
    );
    assert!(
        refused
            .all()
            .contains(&format!("connection refused by 127.0.0.1:{closed}")),
        "{}",
        refused.all()
    );
    let dns = check_source(
        &p,
        "host = \"no-such-host.invalid\"\ndatabase = \"test\"\nuser = \"postgres\"",
        &[],
    );
    assert!(
        dns.all()
            .contains("cannot resolve host `no-such-host.invalid` (DNS)"),
        "{}",
        dns.all()
    );
    let missing = check_source(
        &p,
        "database = \"cv_no_such_database\"\nuser = \"postgres\"",
        &[],
    );
    assert!(
        missing
            .all()
            .contains("database `cv_no_such_database` does not exist on 127.0.0.1:5432"),
        "{}",
        missing.all()
    );
    let schema = check_source(
        &p,
        "database = \"test\"\nuser = \"postgres\"\nschema = \"cv_no_such_schema\"",
        &[],
    );
    assert!(
        schema
            .all()
            .contains("schema `cv_no_such_schema` does not exist"),
        "{}",
        schema.all()
    );

    // A role that may use the schema but not read the table.
    s.exec("CREATE TABLE {s}.t (id int PRIMARY KEY); INSERT INTO {s}.t VALUES (1)");
    let role = s.role();
    s.exec(&format!("GRANT USAGE ON SCHEMA {{s}} TO {role}"));
    p.write(
        "m.toml",
        &format!(
            "name = \"conn\"\n{}[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"t\"\n",
            s.endpoint("source", "").replace("user = \"postgres\"", &format!("user = \"{role}\""))
        ),
    );
    let denied = p.run(&["run", "m.toml"]);
    assert_eq!(denied.code, 1, "{}", denied.all());
    assert!(
        denied.all().contains(&format!(
            "user `{role}` lacks a needed privilege: permission denied for table t"
        )),
        "{}",
        denied.all()
    );
}

/// A PostgreSQL instance of our own (the shared server trusts everyone, so
/// it cannot refuse a password): password authentication, a free port, a
/// temporary folder; stopped when dropped.
struct PasswordServer {
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
}

impl PasswordServer {
    fn start(password: &str) -> Self {
        Self::start_with(password, |_, _| {})
    }

    /// Like `start`, with `configure(temp dir, data dir)` run between
    /// initdb and the server's start (to add settings or files).
    fn start_with(password: &str, configure: impl FnOnce(&Path, &Path)) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        // initdb refuses to run as root: run the server as `postgres` then.
        let as_postgres = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        std::fs::write(dir.path().join("pw"), password).expect("writing the password file");
        if as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(
                chown.is_ok_and(|s| s.success()),
                "chown of the temp dir failed"
            );
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let server = Self {
            dir,
            port,
            as_postgres,
        };
        let data = server.dir.path().join("data");
        let pw = server.dir.path().join("pw");
        server.pg(
            "initdb",
            &[
                "-D",
                &data.display().to_string(),
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                &format!("--pwfile={}", pw.display()),
            ],
        );
        configure(server.dir.path(), &data);
        if server.as_postgres {
            let chown = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(server.dir.path())
                .status();
            assert!(
                chown.is_ok_and(|s| s.success()),
                "chown of the temp dir failed"
            );
        }
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            server.dir.path().display()
        );
        let log = server.dir.path().join("log");
        server.pg(
            "pg_ctl",
            &[
                "-D",
                &data.display().to_string(),
                "-o",
                &opts,
                "-l",
                &log.display().to_string(),
                "-w",
                "start",
            ],
        );
        server
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let path = format!("{PG_BIN}/{tool}");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(&path)
        };
        let out = cmd
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {path}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PasswordServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let path = format!("{PG_BIN}/pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            Command::new(&path)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .output();
    }
}

#[test]
fn a_wrong_password_is_an_auth_error_and_no_password_is_ever_printed() {
    let right = unique("right");
    let wrong = unique("wrong");
    let server = PasswordServer::start(&right);
    let p = project();
    let endpoint = format!(
        "port = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\npassword_env = \"CV_TEST_PG_PASSWORD\"",
        server.port
    );
    let refused = check_source(&p, &endpoint, &[("CV_TEST_PG_PASSWORD", &wrong)]);
    let all = refused.all();
    assert!(
        all.contains("authentication failed for user `postgres`"),
        "{all}"
    );
    assert!(
        all.contains("password_env/password_file"),
        "says where the password comes from: {all}"
    );
    assert!(
        !all.contains(&wrong) && !all.contains(&right),
        "a password was printed: {all}"
    );

    // The right password gets in (and is not printed either): the check now
    // fails only because the table does not exist.
    let accepted = check_source(&p, &endpoint, &[("CV_TEST_PG_PASSWORD", &right)]);
    let all = accepted.all();
    assert!(all.contains("[pass] source reachable"), "{all}");
    assert!(!all.contains(&right), "the password was printed: {all}");
}

#[test]
fn tls_modes_are_honoured_and_tls_failures_are_told_apart() {
    // A server that accepts TLS connections only, with a self-signed
    // certificate for localhost (no CA anyone trusts).
    let server = PasswordServer::start_with(&unique("pw"), |dir, data| {
        let out = Command::new("openssl")
            .current_dir(dir)
            .args([
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost",
                "-addext",
                "basicConstraints=critical,CA:FALSE",
                "-keyout",
                "server.key",
                "-out",
                "server.crt",
            ])
            .output()
            .expect("running openssl");
        assert!(
            out.status.success(),
            "openssl failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let key = dir.join("server.key");
        let key_mode = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(&key, key_mode).expect("chmod 600 of the key");
        let conf = format!(
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            dir.join("server.crt").display(),
            key.display()
        );
        let mut all =
            std::fs::read_to_string(data.join("postgresql.conf")).expect("postgresql.conf");
        all.push_str(&conf);
        std::fs::write(data.join("postgresql.conf"), all).expect("writing postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("writing pg_hba.conf");
    });
    let p = project();
    let endpoint = |host: &str, tls: &str| {
        format!(
            "host = \"{host}\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\ntls = \"{tls}\"",
            server.port
        )
    };

    // TLS without checking the certificate gets in: the check fails only
    // because the table does not exist.
    let require = check_source(&p, &endpoint("127.0.0.1", "require"), &[]);
    let all = require.all();
    assert!(all.contains("[pass] source reachable"), "{all}");

    // No TLS: the server itself refuses the connection.
    let disable = check_source(&p, &endpoint("127.0.0.1", "disable"), &[]);
    let all = disable.all();
    assert!(!all.contains("[pass] source reachable"), "{all}");
    assert!(
        all.contains("accepts only TLS connections: set `tls = \"require\"`")
            && all.contains("no encryption"),
        "{all}"
    );

    // TLS with certificate checks: the name matches, the issuer is unknown.
    let verify = check_source(&p, &endpoint("localhost", "verify-full"), &[]);
    let all = verify.all();
    assert!(!all.contains("[pass] source reachable"), "{all}");
    assert!(
        all.contains(&format!("TLS failed with localhost:{}", server.port)),
        "{all}"
    );
}

/// `people(id, name)` with ids 1..=n, in the scratch schema.
fn people(s: &Scratch, n: u32) {
    s.exec(&format!(
        "CREATE TABLE {{s}}.people (id int PRIMARY KEY, name text);
         INSERT INTO {{s}}.people SELECT i, 'person ' || i FROM generate_series(1, {n}) i"
    ));
}

#[test]
fn rows_the_destination_refuses_are_flagged_and_the_rest_lands() {
    let s = Scratch::new();
    people(&s, 10);
    s.exec(
        "UPDATE {s}.people SET name = NULL WHERE id = 7;
         CREATE TABLE {s}.vault (id bigint PRIMARY KEY, name text NOT NULL);
         INSERT INTO {s}.vault VALUES (5, 'already here')",
    );
    let p = project();
    p.write(
        "m.toml",
        &pg_to_pg(
            &s,
            "batch_size = 4\non_error = \"flag\"",
            "source = \"people\"\ndestination = \"vault\"\nif_exists = \"append\"",
        ),
    );
    // The pre-run check finds key 5 already there; forced, the destination
    // refuses that row.
    let run = p.run_ok(&["run", "--force", "m.toml"]);
    assert!(
        run.stdout.contains("8 written") && run.stdout.contains("2 flagged"),
        "{}",
        run.all()
    );
    let list = p.run_ok(&["flagged", "list"]);
    assert!(
        list.stdout.contains("row 5 (id=5), destination")
            && list
                .stdout
                .contains("duplicate key value violates unique constraint")
            && list.stdout.contains("Key (id)=(5) already exists"),
        "{}",
        list.all()
    );
    assert!(
        list.stdout.contains("row 7 (id=7), destination")
            && list.stdout.contains("null value in column \"name\""),
        "{}",
        list.all()
    );
    let ids = s.one("SELECT string_agg(id::text, ',' ORDER BY id) FROM {s}.vault");
    assert_eq!(ids.as_deref(), Some("1,2,3,4,5,6,8,9,10"));
    assert_eq!(
        s.one("SELECT name FROM {s}.vault WHERE id = 5").as_deref(),
        Some("already here")
    );
}

#[test]
fn a_refused_row_under_stop_keeps_only_the_batches_before_it() {
    let s = Scratch::new();
    people(&s, 10);
    s.exec(
        "UPDATE {s}.people SET name = NULL WHERE id = 7;
         CREATE TABLE {s}.vault (id bigint, name text NOT NULL)",
    );
    let p = project();
    p.write(
        "m.toml",
        &pg_to_pg(
            &s,
            "batch_size = 4",
            "source = \"people\"\ndestination = \"vault\"\nif_exists = \"append\"",
        ),
    );
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains("row 7 (id=7), destination"),
        "{}",
        run.all()
    );
    assert_eq!(
        s.one("SELECT count(*) FROM {s}.vault").as_deref(),
        Some("4")
    );
}

#[test]
fn an_existing_table_is_not_overwritten_by_accident() {
    let s = Scratch::new();
    people(&s, 3);
    s.exec("CREATE TABLE {s}.vault (id bigint); INSERT INTO {s}.vault VALUES (1), (2)");
    let p = project();
    p.write(
        "m.toml",
        &pg_to_pg(&s, "", "source = \"people\"\ndestination = \"vault\""),
    );
    let run = p.run(&["run", "m.toml"]);
    assert_ne!(run.code, 0, "{}", run.all());
    assert!(
        run.all()
            .contains("destination table vault: already exists with 2 rows"),
        "{}",
        run.all()
    );
    p.write(
        "m.toml",
        &pg_to_pg(
            &s,
            "",
            "source = \"people\"\ndestination = \"vault\"\nif_exists = \"replace\"",
        ),
    );
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(
        s.one("SELECT count(name) FROM {s}.vault").as_deref(),
        Some("3")
    );
}

/// Count, checksum and duplicate keys of a `big`-shaped table.
fn fingerprint(s: &Scratch, table: &str) -> Vec<Option<String>> {
    s.rows(&format!(
        "SELECT count(*), sum(hashtext(format('%s|%s|%s|%s|%s', id, a, b, c, d))), \
         count(*) - count(DISTINCT id) FROM {{s}}.{table}"
    ))
    .remove(0)
}

/// Rows the destination has committed, per its checkpoint (0 before the
/// sink has created its checkpoint table).
fn committed_rows(s: &Scratch) -> u64 {
    let sql =
        "SELECT (checkpoint->>'rows') FROM {s}._credvault_checkpoints WHERE table_name = 'copy'";
    let rows =
        s.pg.try_rows(&sql.replace("{s}", &s.schema))
            .unwrap_or_default();
    rows.into_iter()
        .next()
        .and_then(|r| r.into_iter().next().flatten())
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_killed_run_resumes_with_every_row_exactly_once() {
    let s = Scratch::new();
    let total = 300_000;
    s.exec(&format!(
        "CREATE TABLE {{s}}.big (id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz);
         INSERT INTO {{s}}.big SELECT i, i % 1000, CASE WHEN i % 10 = 0 THEN NULL ELSE md5(i::text) END,
           (i::bigint * 7919 % 1000000) / 100.0, '2020-01-01'::timestamptz + i * interval '1 second 7 microseconds'
         FROM generate_series(1, {total}) i;
         ANALYZE {{s}}.big"
    ));
    let p = project();
    p.write(
        "m.toml",
        &pg_to_pg(
            &s,
            "batch_size = 1000",
            "source = \"big\"\ndestination = \"copy\"",
        ),
    );
    let mut child: Child = p.spawn(&["run", "m.toml"]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut at_kill = 0;
    while Instant::now() < deadline {
        at_kill = committed_rows(&s);
        if at_kill >= 20_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    let landed: u64 = s
        .one("SELECT count(*) FROM {s}.copy")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        at_kill > 0 && landed < total,
        "the run must be killed part-way (checkpoint at {at_kill}, {landed} rows landed)"
    );
    assert_eq!(
        committed_rows(&s),
        landed,
        "the checkpoint matches the committed rows exactly"
    );

    let run = p.run_ok(&["run", "m.toml"]);
    let (source, dest) = (fingerprint(&s, "big"), fingerprint(&s, "copy"));
    assert_eq!(dest[0].as_deref(), Some("300000"), "{}", run.all());
    assert_eq!(dest[2].as_deref(), Some("0"), "no duplicate keys");
    assert_eq!(source, dest, "same rows on both sides");
}

#[test]
fn a_table_without_a_key_resumes_by_position() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.big (id bigint, a int, b text, c numeric(12,2), d timestamptz);
         INSERT INTO {s}.big SELECT i, i, 'x' || i, i / 100.0, now() FROM generate_series(1, 2500) i",
    );
    let p = project();
    // A first run that stops on a row the destination refuses after two
    // batches, then a fixed destination and a resumed run.
    s.exec("CREATE TABLE {s}.copy (id bigint, a int CHECK (a <> 2001), b text, c numeric, d timestamptz)");
    p.write(
        "m.toml",
        &pg_to_pg(
            &s,
            "batch_size = 1000",
            "source = \"big\"\ndestination = \"copy\"\nif_exists = \"append\"",
        ),
    );
    let first = p.run(&["run", "m.toml"]);
    assert_eq!(first.code, 1, "{}", first.all());
    assert_eq!(committed_rows(&s), 2000);
    s.exec("ALTER TABLE {s}.copy DROP CONSTRAINT copy_a_check");
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(fingerprint(&s, "big"), fingerprint(&s, "copy"));
}

#[test]
fn a_table_split_into_key_ranges_lands_every_row_once() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.big (id bigint PRIMARY KEY, a int, b text, c numeric(12,2), d timestamptz);
         INSERT INTO {s}.big SELECT i * 3, i, 'x' || i, i / 100.0, now() FROM generate_series(-2000, 7000) i",
    );
    let p = project();
    p.write(
        "m.toml",
        &pg_to_pg(
            &s,
            "batch_size = 500\nsplit_rows = 2000\nparallel_tables = 3",
            "source = \"big\"\ndestination = \"copy\"",
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("9001 written"), "{}", run.all());
    let slices =
        s.one("SELECT count(*) FROM {s}._credvault_checkpoints WHERE table_name LIKE 'copy#%/%'");
    assert_eq!(
        slices.as_deref(),
        Some("5"),
        "9001 rows in ranges of about 2000"
    );
    assert_eq!(fingerprint(&s, "big"), fingerprint(&s, "copy"));
}

/// Arrays of every element type with a binary layout, with NULL elements,
/// empty and NULL arrays. (A JSON `null` inside a `jsonb[]` is not here: in
/// the row model's JSON form it cannot be told from a NULL element.)
const ARRAYS: &str = r#"
CREATE TABLE {s}.arrays (
  id int PRIMARY KEY, i2 int2[], i4 int4[], i8 int8[], n numeric(12,3)[], f4 float4[], f8 float8[],
  t text[], vc varchar(5)[], b bool[], by bytea[], d date[], tm time[], ts timestamp[],
  tz timestamptz[], u uuid[], jb jsonb[]);
INSERT INTO {s}.arrays VALUES
 (1, '{1,-32768}', '{2147483647,NULL}', '{-9223372036854775808}', '{1.500,NULL,-0.001}',
  '{3.25,NaN}', '{1e308,-Infinity,5e-324}', ARRAY['a,b', 'quote"d', NULL, '', 'ü ✓', 'NULL'],
  '{abc}', '{t,f,NULL}', ARRAY['\x00ff'::bytea, '\x'::bytea], '{2024-02-29,0001-01-01}',
  '{23:59:59.999999}', '{"2024-02-29 13:45:00.123456"}', '{"2024-02-29 13:45:00.654321+02"}',
  '{123e4567-e89b-12d3-a456-426614174000}', ARRAY['{"a": [1, 2.50]}'::jsonb, NULL, '"s"'::jsonb]),
 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (3, '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}', '{}');
"#;

#[test]
fn arrays_stay_arrays_pg_to_pg_element_for_element() {
    let s = Scratch::new();
    s.exec(ARRAYS);
    let p = project();
    p.write(
        "m.toml",
        &pg_to_pg(&s, "", "source = \"arrays\"\ndestination = \"copy\""),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("3 written"), "{}", run.all());
    assert!(
        run.stdout.contains("validation of `pg-move`: passed"),
        "{}",
        run.all()
    );
    let types = s.rows(
        "SELECT string_agg(column_name || ' ' || udt_name, ', ' ORDER BY ordinal_position) FROM information_schema.columns \
         WHERE table_schema = '{s}' AND table_name = 'copy'",
    );
    assert_eq!(
        types[0][0].as_deref(),
        Some(
            "id int8, i2 _int8, i4 _int8, i8 _int8, n _numeric, f4 _float8, f8 _float8, t _text, vc _text, \
             b _bool, by _bytea, d _date, tm _time, ts _timestamp, tz _timestamptz, u _uuid, jb _jsonb"
        )
    );
    // Element for element, NULLs and empties included (compared as text
    // after casting back to the source's element types).
    let cols = "id, i2::int2[], i4::int4[], i8, n::numeric(12,3)[], f4::float4[], f8, t, vc::varchar(5)[], b, by, d, tm, ts, tz, u, jb";
    for (a, b) in [("arrays", "copy"), ("copy", "arrays")] {
        let diff = s.rows(&format!(
            "SELECT {cols} FROM {{s}}.{a} EXCEPT SELECT {cols} FROM {{s}}.{b}"
        ));
        assert!(diff.is_empty(), "rows of {a} missing from {b}: {diff:?}");
    }
    assert_eq!(
        s.one("SELECT t::text FROM {s}.copy WHERE id = 1")
            .as_deref(),
        Some(r#"{"a,b","quote\"d",NULL,"","ü ✓",NULL}"#.replace(",NULL}", ",\"NULL\"}").as_str()),
        "the text `NULL` is not the NULL element"
    );
}

#[test]
fn appending_into_existing_array_columns_and_refusing_what_does_not_fit() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.src (id int PRIMARY KEY, tags text[], grid int[]);
         INSERT INTO {s}.src VALUES (1, '{a,b}', '{1,2}'), (2, '{c}', '{{1,2},{3,4}}'), (3, NULL, '{}');
         CREATE TABLE {s}.dst (id int PRIMARY KEY, tags varchar(10)[], grid int4[]);",
    );
    let p = project();
    let table =
        "source = \"src\"\ndestination = \"dst\"\nif_exists = \"append\"\non_error = \"flag\"";
    p.write("m.toml", &pg_to_pg(&s, "", table));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("2 written"), "{}", run.all());
    assert_eq!(
        s.rows("SELECT id::text, tags::text, grid::text FROM {s}.dst ORDER BY id"),
        vec![
            vec![Some("1".into()), Some("{a,b}".into()), Some("{1,2}".into())],
            vec![Some("3".into()), None, Some("{}".into())],
        ]
    );
    let flagged = p.run_ok(&["flagged", "list"]);
    assert!(
        flagged
            .stdout
            .contains("multi-dimensional array cannot be written yet"),
        "{}",
        flagged.all()
    );
}
