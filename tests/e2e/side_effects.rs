//! Plugins that change things beyond their output are called on rows once,
//! by `run`: `preview` and validation (after the run, and `credvault
//! validate`) do not call them again. HTTP sends only the methods the WIT
//! names and the grant lists, to the granted host under its own `Host`.
//! Random bytes stay fresh, and validation says why such a transform's
//! values differ.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use credvault_tests::{Project, guests};

use super::project;
use super::servers::Scratch;

/// A CSV → SQLite migration of three people through the hostile guest in
/// `mode` with `config` (TOML inline-table fields) and `grants`.
fn hostile_migration(p: &Project, mode: &str, config: &str, grants: &str, more: &str) {
    p.csv(
        "people",
        "id,name",
        &["1,ada".into(), "2,grace".into(), "3,edsger".into()],
    );
    p.write(
        "m.toml",
        &format!(
            r#"name = "effects"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
{more}
[[tables]]
source = "people"
key = ["id"]
[tables.columns.id]
type = "int"
[[tables.transforms]]
plugin = {:?}
config = {{ mode = "{mode}"{config} }}
grants = {{ {grants} }}
"#,
            guests::HOSTILE
        ),
    );
}

/// `run` (validating), `preview` and `validate`, each of which must succeed.
fn run_preview_validate(p: &Project) -> (String, String, String) {
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("validation of `effects`: passed"),
        "{}",
        run.all()
    );
    let preview = p.run_ok(&["preview", "m.toml"]);
    let validate = p.run_ok(&["validate", "m.toml"]);
    (run.all(), preview.all(), validate.all())
}

#[test]
fn a_transform_with_a_write_grant_inserts_once_per_row_whatever_runs_after() {
    let s = Scratch::new();
    s.exec("CREATE TABLE {s}.audit (person bigint)");
    let writer = s.role();
    s.exec(&format!(
        "GRANT USAGE ON SCHEMA {{s}} TO {writer}; GRANT INSERT ON {{s}}.audit TO {writer}"
    ));
    let p = project();
    let connection = format!(
        "[connections.crm]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\ndatabase = \"test\"\nuser = \"{writer}\"\nschema = \"{}\"",
        s.schema
    );
    hostile_migration(
        &p,
        "db-insert",
        r#", connection = "crm", sql = "INSERT INTO audit VALUES ($1)""#,
        r#"db = [{ connection = "crm", write = true }]"#,
        &connection,
    );
    let (run, preview, validate) = run_preview_validate(&p);
    let audit = s.rows("SELECT person FROM {s}.audit ORDER BY person");
    let people: Vec<Option<&str>> = audit.iter().map(|r| r[0].as_deref()).collect();
    assert_eq!(
        people,
        vec![Some("1"), Some("2"), Some("3")],
        "one INSERT per row, by the run alone:\n{run}\n{preview}\n{validate}"
    );
    let why = "holds a write grant on `crm`, so calling it again would repeat what it did";
    assert!(
        preview.contains("rows not previewed: transform `credvault_hostile_guest.wasm`")
            && preview.contains(why),
        "{preview}"
    );
    for report in [&run, &validate] {
        assert!(
            report.contains("[pass] row count: expected 3 (3 source rows, less 0 the run recorded as dropped, skipped or flagged), destination 3; not re-run: transform")
                && report.contains(why)
                && report.contains("[skip] checksum: not compared: the transform is not re-run (see row count)"),
            "{report}"
        );
    }
    // The count is compared for real: a row gone from the destination fails.
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        "DELETE FROM people WHERE id = 2",
    );
    let again = p.run(&["validate", "m.toml"]);
    assert_eq!(again.code, 1, "{}", again.all());
    assert!(
        again.stdout.contains("[FAIL] row count: expected 3"),
        "{}",
        again.all()
    );
    assert_eq!(s.rows("SELECT person FROM {s}.audit").len(), 3);
}

#[test]
fn preview_and_validation_configure_a_writing_transform_without_its_write_grant() {
    let p = project();
    let connection = "[connections.crm]\ntype = \"sqlite\"\npath = \"crm.db\"";
    credvault_tests::exec_sqlite(
        &p.path().join("crm.db"),
        "CREATE TABLE audit (person INTEGER)",
    );
    hostile_migration(
        &p,
        "db-insert",
        r#", connection = "crm", sql = "INSERT INTO audit VALUES (?)", on_configure = true"#,
        r#"db = [{ connection = "crm", write = true }]"#,
        connection,
    );
    let configured = || {
        let rows = p.query("crm.db", "SELECT count(*) FROM audit WHERE person = 0");
        rows[0][0].clone().unwrap_or_default()
    };
    p.run_ok(&["run", "m.toml"]);
    let after_run = configured();
    assert_ne!(after_run, "0", "the run's configure writes");
    let preview = p.run_ok(&["preview", "m.toml"]);
    let validate = p.run_ok(&["validate", "m.toml"]);
    assert_eq!(
        configured(),
        after_run,
        "preview and validate configure it read-only:\n{}\n{}",
        preview.all(),
        validate.all()
    );
    assert!(
        preview
            .stderr
            .contains("denied database write through connection `crm`"),
        "{}",
        preview.all()
    );
    assert!(
        validate.stdout.contains("holds a write grant on `crm`"),
        "{}",
        validate.all()
    );
}

#[test]
fn check_does_not_call_a_writing_transform_to_compare_appended_keys() {
    let p = project();
    let connection = "[connections.crm]\ntype = \"sqlite\"\npath = \"crm.db\"";
    credvault_tests::exec_sqlite(
        &p.path().join("crm.db"),
        "CREATE TABLE audit (person INTEGER)",
    );
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO people VALUES (100, 'there before')",
    );
    hostile_migration(
        &p,
        "db-insert",
        r#", connection = "crm", sql = "INSERT INTO audit VALUES (?)""#,
        r#"db = [{ connection = "crm", write = true }]"#,
        connection,
    );
    let file = std::fs::read_to_string(p.path().join("m.toml")).unwrap();
    p.write(
        "m.toml",
        &file.replace("key = [\"id\"]", "key = [\"id\"]\nif_exists = \"append\""),
    );
    let audited = || p.query("crm.db", "SELECT count(*) FROM audit")[0][0].clone();
    let check = p.run_ok(&["check", "m.toml"]);
    assert!(
        check.all().contains("people keys: not compared: transform `credvault_hostile_guest.wasm` holds a write grant on `crm`"),
        "{}",
        check.all()
    );
    assert_eq!(audited().as_deref(), Some("0"), "{}", check.all());
    p.run_ok(&["run", "m.toml"]);
    assert_eq!(audited().as_deref(), Some("3"));
}

/// What a test HTTP server saw: each request's method, `Host` header and
/// body.
type Seen = Arc<Mutex<Vec<(String, String, String)>>>;

/// A local HTTP server answering `200 ok` to every request; returns its
/// port and what it saw.
fn http_server() -> (u16, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Seen = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if let Some(request) = read_request(stream) {
                log.lock().unwrap().push(request);
            }
        }
    });
    (port, seen)
}

/// Reads one request and answers it.
fn read_request(mut stream: TcpStream) -> Option<(String, String, String)> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).ok()?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let method = head.split(' ').next().unwrap_or_default().to_string();
    let header = |name: &str| {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).ok()?;
    let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    stream.write_all(answer).ok()?;
    let body = String::from_utf8_lossy(&body).into_owned();
    Some((method, header("host").unwrap_or_default(), body))
}

#[test]
fn a_transform_that_posts_sends_one_request_per_row_whatever_runs_after() {
    let (port, seen) = http_server();
    let p = project();
    hostile_migration(
        &p,
        "http",
        &format!(r#", method = "POST", url = "http://127.0.0.1:{port}/audit""#),
        &format!(r#"http = {{ hosts = ["127.0.0.1:{port}"], methods = ["POST"] }}"#),
        "",
    );
    let (run, preview, validate) = run_preview_validate(&p);
    let mut bodies: Vec<String> = seen.lock().unwrap().iter().map(|r| r.2.clone()).collect();
    bodies.sort();
    assert_eq!(
        bodies,
        vec!["1", "2", "3"],
        "one POST per row, by the run alone:\n{run}\n{preview}\n{validate}"
    );
    let why = "may send POST requests (grants.http.methods), so calling it again would repeat what it did";
    assert!(preview.contains(why), "{preview}");
    assert!(validate.contains(why), "{validate}");
}

#[test]
fn a_plugin_sends_only_granted_wit_methods_and_never_its_own_host_header() {
    let (port, seen) = http_server();
    let url = format!("http://127.0.0.1:{port}/x");
    let hosts = format!(r#"http = {{ hosts = ["127.0.0.1:{port}"] }}"#);
    let refused = |config: String, expected: &str| {
        let p = project();
        hostile_migration(&p, "http", &config, &hosts, "");
        let run = p.run(&["run", "m.toml"]);
        assert_ne!(run.code, 0, "{}", run.all());
        assert!(run.all().contains(expected), "{}", run.all());
    };
    refused(
        format!(r#", method = "TRACE", url = "{url}""#),
        "`TRACE` is not a method plugins may send; the host sends only GET, POST, PUT, PATCH, DELETE, HEAD",
    );
    refused(
        format!(r#", method = "post", url = "{url}""#),
        "`post` is not a method plugins may send (methods are upper case: `POST`)",
    );
    refused(
        format!(r#", method = "POST", url = "{url}""#),
        r#"POST is not in grants.http.methods (GET, HEAD); add "POST" there"#,
    );
    for header in ["Host", "transfer-encoding", "Content-Length", "Connection"] {
        refused(
            format!(r#", method = "GET", url = "{url}", headers = [["{header}", "evil.example"]]"#),
            &format!("a plugin may not set the `{header}` header"),
        );
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing refused reached the server: {:?}",
        seen.lock().unwrap()
    );
    let p = project();
    hostile_migration(&p, "http", &format!(r#", url = "{url}""#), &hosts, "");
    p.run_ok(&["run", "m.toml"]);
    let seen = seen.lock().unwrap();
    assert!(!seen.is_empty());
    for (method, host, _) in seen.iter() {
        assert_eq!(
            (method.as_str(), host.as_str()),
            ("GET", format!("127.0.0.1:{port}").as_str())
        );
    }
}

#[test]
fn validation_says_why_a_transform_that_draws_random_bytes_differs() {
    let p = project();
    hostile_migration(&p, "random", "", "", "");
    let run = p.run_ok(&["run", "m.toml"]);
    let drawn = p.query("out/vault.db", "SELECT DISTINCT probe FROM people");
    assert_eq!(drawn.len(), 3, "fresh bytes for each row: {drawn:?}");
    let why = "not comparable: transform `credvault_hostile_guest.wasm` draws random bytes (wasi:random), so re-deriving its rows gives other values than the run wrote";
    assert!(
        run.stdout.contains("validation of `effects`: passed")
            && run.stdout.contains("[pass] row count: expected 3")
            && run.stdout.contains(&format!("[skip] checksum: {why}"))
            && run.stdout.contains(&format!("[skip] spot check: {why}")),
        "{}",
        run.all()
    );
}

#[test]
fn http_methods_beyond_the_wit_are_refused_when_the_file_loads() {
    let p = project();
    hostile_migration(
        &p,
        "http",
        "",
        r#"http = { hosts = ["api.example.com"], methods = ["GET", "TRACE", "post"] }"#,
        "",
    );
    let run = p.run(&["check", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    for method in ["TRACE", "post"] {
        assert!(
            run.stderr.contains(&format!("tables[0] (people).transforms[0].grants.http.methods: `{method}` is not a method plugins may send; use GET, POST, PUT, PATCH, DELETE, HEAD")),
            "{}",
            run.all()
        );
    }
}
