//! Source and sink plugins run through the CLI: a synthetic generator, CSV
//! through granted directories, and a paginated HTTP API on a local server,
//! plus the denials of what was not granted.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use credvault_tests::{Project, guests, people};

use super::project;
use super::servers::{Scratch, TestDb};

fn generator_migration(seed: u64, rows: u64) -> String {
    format!(
        r#"name = "synthetic"
[source]
type = "plugin"
plugin = {:?}
config = {{ seed = {seed}, rows = {rows} }}
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 1000
[[tables]]
source = "people"
"#,
        guests::GENERATOR
    )
}

fn dump(p: &Project) -> Vec<Vec<Option<String>>> {
    p.query("out/vault.db", "SELECT * FROM people ORDER BY id")
}

#[test]
fn the_generator_source_is_deterministic_from_its_seed() {
    let a = project();
    a.write("m.toml", &generator_migration(42, 2500));
    let run = a.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("2500 read, 2500 written"),
        "{}",
        run.all()
    );
    assert!(
        run.stdout.contains("validation of `synthetic`: passed"),
        "{}",
        run.all()
    );
    let b = project();
    b.write("m.toml", &generator_migration(42, 2500));
    b.run_ok(&["run", "m.toml"]);
    assert_eq!(dump(&a), dump(&b));
    let c = project();
    c.write("m.toml", &generator_migration(43, 2500));
    c.run_ok(&["run", "m.toml"]);
    assert_ne!(dump(&a), dump(&c));
    let first = &dump(&a)[0];
    assert_eq!(first[0].as_deref(), Some("1"));
    assert!(
        first[2].as_deref().unwrap().ends_with("1@example.com"),
        "{first:?}"
    );
}

#[test]
fn a_source_plugin_config_error_names_the_field() {
    let p = project();
    let text = generator_migration(1, 1).replace("seed = 1, ", "");
    p.write("m.toml", &text);
    let run = p.run(&["check", "m.toml"]);
    assert_ne!(run.code, 0);
    assert!(run.all().contains("missing field `seed`"), "{}", run.all());
}

fn csv_migration(source_grant: &str, sink_grant: &str) -> String {
    format!(
        r#"name = "csv-dirs"
[source]
type = "plugin"
plugin = {:?}
config = {{ dir = "data" }}
grants = {{ {source_grant} }}
[destination]
type = "plugin"
plugin = {:?}
config = {{ dir = "out" }}
grants = {{ {sink_grant} }}
[settings]
batch_size = 4
validate = false
[[tables]]
source = "people"
key = ["id"]
[tables.columns.id]
type = "int"
[tables.columns.score]
type = "int"
"#,
        guests::CSV_SOURCE,
        guests::CSV_SINK
    )
}

const READ_DATA: &str = r#"dirs = [{ path = "data" }]"#;
const WRITE_OUT: &str = r#"dirs = [{ path = "out", write = true }]"#;

#[test]
fn csv_files_move_between_granted_directories() {
    let p = project();
    p.csv("people", "id,name,score", &people(10));
    std::fs::create_dir_all(p.path().join("out")).unwrap();
    p.write("m.toml", &csv_migration(READ_DATA, WRITE_OUT));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("10 read, 10 written"), "{}", run.all());
    let out = std::fs::read_to_string(p.path().join("out/people.csv")).unwrap();
    let source = std::fs::read_to_string(p.path().join("data/people.csv")).unwrap();
    assert_eq!(out.replace("\r\n", "\n"), source.replace("\r\n", "\n"));
}

#[test]
fn a_directory_not_granted_cannot_be_read() {
    let p = project();
    p.csv("people", "id,name,score", &people(3));
    std::fs::create_dir_all(p.path().join("out")).unwrap();
    p.write("m.toml", &csv_migration("", WRITE_OUT));
    let run = p.run(&["run", "m.toml"]);
    assert_ne!(run.code, 0);
    assert!(
        run.all().contains("cannot list data") && run.all().contains("grant it with grants.dirs"),
        "{}",
        run.all()
    );
}

#[test]
fn a_directory_granted_read_only_cannot_be_written() {
    let p = project();
    p.csv("people", "id,name,score", &people(3));
    std::fs::create_dir_all(p.path().join("out")).unwrap();
    p.write(
        "m.toml",
        &csv_migration(READ_DATA, r#"dirs = [{ path = "out" }]"#),
    );
    let run = p.run(&["run", "m.toml"]);
    assert_ne!(run.code, 0);
    assert!(
        run.all().contains("cannot write out/people.csv"),
        "{}",
        run.all()
    );
    assert!(!p.path().join("out/people.csv").exists());
}

/// Serves `pages` pages of `per_page` people at /people?page=N, forever,
/// one request per connection.
fn api_server(pages: usize, per_page: usize) -> u16 {
    api_server_with(pages, per_page, None)
}

/// [`api_server`], with the id of person `bad` (if any) served as the
/// text `"ABC123"`.
fn api_server_with(pages: usize, per_page: usize, bad: Option<usize>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            reader.read_line(&mut line).unwrap_or(0);
            // Read the whole head: closing a socket with unread bytes sends
            // a reset instead of the response.
            let mut header = String::new();
            while reader.read_line(&mut header).unwrap_or(0) > 2 {
                header.clear();
            }
            let page: usize = line
                .split("page=")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let mut body = page_body(port, page, pages, per_page);
            if let Some(bad) = bad {
                body = body.replace(&format!("\"id\":{bad},"), "\"id\":\"ABC123\",");
            }
            let mut stream = &stream;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn page_body(port: u16, page: usize, pages: usize, per_page: usize) -> String {
    let first = (page - 1) * per_page + 1;
    let items: Vec<serde_json::Value> = (first..first + per_page)
        .map(|id| serde_json::json!({ "id": id, "name": format!("person {id}"), "score": id as f64 / 2.0 }))
        .collect();
    let next = (page < pages).then(|| format!("http://127.0.0.1:{port}/people?page={}", page + 1));
    serde_json::json!({ "items": items, "next": next }).to_string()
}

fn api_migration(port: u16, hosts: &str) -> String {
    format!(
        r#"name = "api"
[source]
type = "plugin"
plugin = {:?}
config = {{ url = "http://127.0.0.1:{port}/people?page=1", table = "people", key = ["id"], columns = [{{ name = "id", type = "int" }}, {{ name = "name", type = "text" }}, {{ name = "score", type = "float" }}] }}
grants = {{ http = {{ hosts = [{hosts}], max_response_kb = 64, timeout_ms = 2000 }} }}
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 7
[[tables]]
source = "people"
"#,
        guests::HTTP_SOURCE
    )
}

#[test]
fn a_paginated_http_api_is_read_through_the_allow_list() {
    let port = api_server(3, 10);
    let p = project();
    p.write("m.toml", &api_migration(port, r#""127.0.0.1""#));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("30 read, 30 written"), "{}", run.all());
    assert!(
        run.stdout.contains("validation of `api`: passed"),
        "{}",
        run.all()
    );
    let rows = dump(&p);
    assert_eq!(rows.len(), 30);
    assert_eq!(rows[29][1].as_deref(), Some("person 30"));
}

#[test]
fn a_value_of_the_wrong_type_from_the_api_is_flagged_and_the_rest_loads() {
    let port = api_server_with(3, 10, Some(12));
    let p = project();
    let migration = api_migration(port, r#""127.0.0.1""#).replace(
        "[[tables]]\nsource = \"people\"\n",
        "[[tables]]\nsource = \"people\"\non_error = \"flag\"\n",
    );
    p.write("m.toml", &migration);
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("1 flagged"), "{}", run.all());
    assert_eq!(dump(&p).len(), 29, "{}", run.all());
    let list = p.run_ok(&["flagged", "list", "--migration", "api"]);
    assert!(
        list.stdout
            .contains("column `id` is declared int but the plugin returned text \"ABC123\""),
        "{}",
        list.all()
    );
}

#[test]
fn a_host_not_on_the_allow_list_is_denied_and_logged() {
    let port = api_server(1, 3);
    let p = project();
    p.write("m.toml", &api_migration(port, r#""api.example.com""#));
    let run = p.run(&["run", "m.toml"]);
    assert_ne!(run.code, 0);
    let all = run.all();
    assert!(all.contains("access denied"), "{all}");
    assert!(
        all.contains("127.0.0.1:") && all.contains("is not in grants.http.hosts (api.example.com)"),
        "{all}"
    );
    assert!(
        all.contains("denied HTTP request to"),
        "the host logs it: {all}"
    );
}

#[test]
fn a_response_over_the_size_limit_is_refused() {
    let port = api_server(1, 2000);
    let p = project();
    p.write("m.toml", &api_migration(port, r#""127.0.0.1""#));
    let run = p.run(&["run", "m.toml"]);
    assert_ne!(run.code, 0);
    assert!(
        run.all()
            .contains("larger than grants.http.max_response_kb (64 KiB)"),
        "{}",
        run.all()
    );
}

/// Runs the hostile source with `mode` on table `bad`, beside table `good`.
fn hostile_source(mode: &str, grants: &str) -> (Project, String) {
    let p = project();
    std::fs::create_dir_all(p.path().join("data")).unwrap();
    p.write("secrets/key.txt", "s3cret");
    p.write(
        "m.toml",
        &format!(
            r#"name = "hostile"
[source]
type = "plugin"
plugin = {:?}
config = {{ mode = "{mode}" }}
grants = {{ {grants} }}
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 10
parallel_tables = 2
[[tables]]
source = "bad"
[[tables]]
source = "good"
"#,
            guests::HOSTILE_SOURCE
        ),
    );
    // The pre-run checks already read a row of each table and refuse to
    // start; --force runs anyway, so the run itself must stop it.
    let check = p.run(&["check", "m.toml"]);
    assert_eq!(check.code, 1, "{}", check.all());
    let run = p.run(&["run", "--force", "m.toml"]);
    assert_eq!(run.code, 1, "the run fails cleanly: {}", run.all());
    let good = p.query("out/vault.db", "SELECT count(*) FROM good");
    assert_eq!(
        good[0][0].as_deref(),
        Some("3"),
        "the other table landed: {}",
        run.all()
    );
    (p, run.all())
}

fn bad_rows(p: &Project) -> usize {
    let tables = p.query(
        "out/vault.db",
        "SELECT count(*) FROM sqlite_schema WHERE name = 'bad'",
    );
    match tables[0][0].as_deref() {
        Some("0") => 0,
        _ => p.query("out/vault.db", "SELECT id FROM bad").len(),
    }
}

#[test]
fn a_giant_source_batch_is_refused_and_nothing_of_it_lands() {
    let (p, all) = hostile_source("giant", "");
    assert!(
        all.contains("error: source plugin credvault_hostile_source.wasm")
            && all.contains("rows when asked for at most")
            && all.contains("the batch was refused"),
        "{all}"
    );
    assert_eq!(bad_rows(&p), 0);
}

#[test]
fn a_source_reaching_an_ungranted_host_is_denied() {
    let (_, all) = hostile_source("http", r#"http = { hosts = ["api.example.com"] }"#);
    assert!(
        all.contains("access denied: host 169.254.169.254:80 is not in grants.http.hosts"),
        "{all}"
    );
    assert!(
        all.contains("denied HTTP request to http://169.254.169.254"),
        "{all}"
    );
}

#[test]
fn a_source_reading_an_ungranted_directory_finds_nothing() {
    let (_, all) = hostile_source("read-dir", r#"dirs = [{ path = "data" }]"#);
    assert!(all.contains("reading secrets/key.txt"), "{all}");
    assert!(!all.contains("s3cret"));
}

#[test]
fn a_source_writing_a_read_only_directory_is_refused() {
    let (p, all) = hostile_source("write-dir", r#"dirs = [{ path = "data" }]"#);
    assert!(all.contains("writing data/planted.txt"), "{all}");
    assert!(!p.path().join("data/planted.txt").exists());
}

/// The hostile source's migration, table `bad` in `mode` beside `good`,
/// with `limits` on the source and `table` keys on table `bad`.
fn hostile_migration(p: &Project, mode: &str, limits: &str, table: &str) {
    p.write(
        "m.toml",
        &format!(
            r#"name = "hostile"
[source]
type = "plugin"
plugin = {:?}
config = {{ mode = "{mode}", columns = 2001 }}
limits = {{ {limits} }}
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 10
parallel_tables = 2
[[tables]]
source = "bad"
{table}
[[tables]]
source = "good"
"#,
            guests::HOSTILE_SOURCE
        ),
    );
}

const BOUND: std::time::Duration = std::time::Duration::from_secs(60);

#[test]
fn a_source_returning_empty_batches_forever_is_stopped_in_check_preview_and_run() {
    let p = project();
    hostile_migration(&p, "empty", "", "");
    let stuck = "table `bad`: broke the plugin contract: returned 1000 empty batches in a row";
    let check = p.run_within(&["check", "m.toml"], BOUND);
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check
            .all()
            .contains("source plugin credvault_hostile_source.wasm")
            && check.all().contains(stuck),
        "{}",
        check.all()
    );
    let preview = p.run_within(&["preview", "m.toml", "--rows", "2"], BOUND);
    assert_ne!(preview.code, 0, "{}", preview.all());
    assert!(preview.all().contains(stuck), "{}", preview.all());
    let run = p.run_within(&["run", "--force", "m.toml"], BOUND);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(run.all().contains(stuck), "{}", run.all());
    let good = p.query("out/vault.db", "SELECT count(*) FROM good");
    assert_eq!(good[0][0].as_deref(), Some("3"), "{}", run.all());
}

#[test]
fn a_source_that_never_ends_is_stopped_by_its_table_budget() {
    let p = project();
    hostile_migration(&p, "endless", "table_seconds = 2", "");
    let run = p.run_within(&["run", "--force", "m.toml"], BOUND);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains(
            "table `bad`: reading took longer than limits.table_seconds (2 s) and was stopped"
        ),
        "{}",
        run.all()
    );
    let good = p.query("out/vault.db", "SELECT count(*) FROM good");
    assert_eq!(good[0][0].as_deref(), Some("3"), "{}", run.all());
}

#[test]
fn a_source_declaring_a_column_twice_fails_check_with_that_reason() {
    let p = project();
    hostile_migration(&p, "duplicate-columns", "", "");
    let check = p.run_within(&["check", "m.toml"], BOUND);
    assert_eq!(check.code, 1, "{}", check.all());
    assert!(
        check
            .all()
            .contains("the source table `bad` declares column `id` twice"),
        "{}",
        check.all()
    );
    assert!(
        !check.all().contains("ignore case"),
        "not a case collision: {}",
        check.all()
    );
}

/// Checks the hostile source declaring `columns` columns into
/// `destination` (a `[destination]` body); what `check` printed.
fn check_width(columns: usize, destination: &str) -> String {
    let p = project();
    hostile_migration(&p, "columns", "", "");
    let path = p.path().join("m.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace("columns = 2001", &format!("columns = {columns}"))
        .replace(
            "[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n",
            destination,
        );
    std::fs::write(&path, text).unwrap();
    let check = p.run_within(&["check", "m.toml"], BOUND);
    assert_eq!(check.code, 1, "{}", check.all());
    check.all()
}

#[test]
fn a_source_with_more_columns_than_the_destination_allows_fails_check() {
    let sqlite = "[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n";
    let all = check_width(2001, sqlite);
    let expected = "the table would have 2001 columns, but SQLite allows at most 2000 in a table";
    assert!(all.contains(expected), "{all}");
    let s = Scratch::new();
    let all = check_width(1601, &s.endpoint("destination", ""));
    let expected = "1601 columns, but PostgreSQL allows at most 1600 in a table";
    assert!(all.contains(expected), "{all}");
    let db = TestDb::new();
    let all = check_width(1018, &format!("[destination]\n{}", db.endpoint()));
    let expected = "1018 columns, but MariaDB/MySQL (InnoDB) allows at most 1017 in a table";
    assert!(all.contains(expected), "{all}");
}

/// Runs table `bad` in `mode` under `flag`: row 3 is flagged with
/// `expected`, rows 1, 2, 4 and 5 land.
fn flags_row_three(mode: &str, expected: &str) {
    let p = project();
    hostile_migration(&p, mode, "", "on_error = \"flag\"");
    let run = p.run_within(&["run", "--force", "m.toml"], BOUND);
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(run.stdout.contains("1 flagged"), "{}", run.all());
    let ids = p.query("out/vault.db", "SELECT id FROM bad ORDER BY id");
    let ids: Vec<_> = ids.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "4", "5"], "{}", run.all());
    let list = p.run_ok(&["flagged", "list", "--migration", "hostile"]);
    assert!(list.stdout.contains(expected), "{}", list.all());
}

#[test]
fn a_null_in_a_declared_not_null_column_is_a_row_error() {
    flags_row_three(
        "not-null",
        "column `name` is declared NOT NULL but the plugin returned null",
    );
}

#[test]
fn a_value_of_the_wrong_type_is_flagged_and_the_rest_loads() {
    flags_row_three(
        "wrong-type",
        "column `score` is declared int but the plugin returned text \"ABC123\"",
    );
}

#[test]
fn a_source_position_too_large_to_keep_is_a_contract_error() {
    let p = project();
    hostile_migration(&p, "huge-position", "", "");
    let run = p.run_within(&["run", "--force", "m.toml"], BOUND);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all().contains(
            "table `bad`: broke the plugin contract: returned a position of 1048576 bytes"
        ),
        "{}",
        run.all()
    );
    let kept = p.query(
        "out/vault.db",
        "SELECT coalesce(max(length(checkpoint)), 0) FROM _credvault_checkpoints",
    );
    let longest: usize = kept[0][0].as_deref().unwrap_or("0").parse().unwrap_or(0);
    assert!(
        longest < 70_000,
        "no oversize position was kept: {longest} bytes"
    );
}
