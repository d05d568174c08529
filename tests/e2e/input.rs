//! Input that is read wrongly: a CSV quote that runs away, ragged lines,
//! text that is not UTF-8, and PostgreSQL dates and timestamps the row
//! model has no value for. Each is a row error under the table's policy,
//! named by its line or key, and the rest of the table loads.

use credvault_tests::Project;

use super::project;
use super::servers::Scratch;

/// A CSV → SQLite migration of `t` (key `id`, an int) with a policy.
fn csv_migration(policy: &str) -> String {
    format!(
        r#"name = "input"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[[tables]]
source = "t"
key = ["id"]
on_error = "{policy}"
[tables.columns.id]
type = "int"
"#
    )
}

/// `data/t.csv`: header `id,n,name` and rows `i,i,name i` for 1..=1000
/// (row i at line i + 1), the one at line 501 (`500,500,"name 500`) missing its closing quote.
fn runaway_quote(p: &Project) {
    let mut text = String::from("id,n,name\n");
    for i in 1..=1000 {
        match i {
            500 => text.push_str("500,500,\"name 500\n"),
            _ => text.push_str(&format!("{i},{i},name {i}\n")),
        }
    }
    p.write("data/t.csv", &text);
}

/// Rows in the destination, how many have the name their id says, and the
/// longest name.
fn loaded(p: &Project) -> (String, String, String) {
    let got = p.query(
        "out/vault.db",
        "SELECT count(*), sum(name = 'name ' || id AND n = CAST(id AS TEXT)), max(length(name)) FROM t",
    );
    let cell = |i: usize| got[0][i].clone().unwrap_or_default();
    (cell(0), cell(1), cell(2))
}

#[test]
fn an_unbalanced_quote_stops_the_table_naming_its_line() {
    let p = project();
    runaway_quote(&p);
    p.write("m.toml", &csv_migration("stop"));
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr.contains(
            "table `t`, row 500 (id=500), source, column `name`: line 501: the quote that opens at line 501 is not closed before line 502"
        ),
        "the error names the table, the key, the column and the line: {}",
        run.all()
    );
    // Nothing merged was written (the batch holding the broken row is not).
    let (rows, _, longest) = loaded(&p);
    assert!(
        rows == "0" || longest.parse::<u32>().unwrap_or(0) <= 9,
        "{rows} rows, {longest}"
    );
}

#[test]
fn an_unbalanced_quote_is_one_flagged_row_and_the_rest_loads() {
    let p = project();
    runaway_quote(&p);
    p.write("m.toml", &csv_migration("flag"));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("999 written") && run.stdout.contains("1 flagged"),
        "{}",
        run.all()
    );
    let (rows, matching, longest) = loaded(&p);
    assert_eq!(
        (rows.as_str(), matching.as_str(), longest.as_str()),
        ("999", "999", "9"),
        "every row but the broken one, none merged into another"
    );
    let missing = p.query("out/vault.db", "SELECT count(*) FROM t WHERE id = 500");
    assert_eq!(missing[0][0].as_deref(), Some("0"));
    let list = p.run_ok(&["flagged", "list"]);
    assert!(
        list.stdout
            .contains("row 500 (id=500), source, column `name`")
            && list
                .stdout
                .contains("line 501: the quote that opens at line 501"),
        "{}",
        list.all()
    );
}

#[test]
fn a_quoted_field_over_several_lines_loads_intact() {
    let p = project();
    p.write(
        "data/t.csv",
        "id,n,name\n1,1,\"first line\nsecond, with a comma\n\n\"\"quoted\"\" last\"\n2,2,plain\r\n3,3,\"a,b\"\n",
    );
    p.write("m.toml", &csv_migration("stop"));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("3 written"), "{}", run.all());
    let got = p.query("out/vault.db", "SELECT id, name FROM t ORDER BY id");
    let names: Vec<&str> = got.iter().map(|r| r[1].as_deref().unwrap_or("")).collect();
    assert_eq!(
        names,
        [
            "first line\nsecond, with a comma\n\n\"quoted\" last",
            "plain",
            "a,b"
        ]
    );
}

#[test]
fn ragged_lines_and_text_that_is_not_utf8_are_flagged_and_the_rest_loads() {
    let p = project();
    let mut text = b"id,n,name\n1,1,one\n2,2\n3,3,three\n4,4,four,extra\n5,5,caf".to_vec();
    text.extend_from_slice(b"\xe9\n6,6,six\n");
    std::fs::write(p.path().join("data/t.csv"), text).expect("writing the file");
    p.write("m.toml", &csv_migration("flag"));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("3 written") && run.stdout.contains("3 flagged"),
        "{}",
        run.all()
    );
    let ids = p.query("out/vault.db", "SELECT id, name FROM t ORDER BY id");
    let ids: Vec<String> = ids
        .iter()
        .map(|r| {
            format!(
                "{}={}",
                r[0].as_deref().unwrap_or(""),
                r[1].as_deref().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(ids, ["1=one", "3=three", "6=six"]);
    let list = p.run_ok(&["flagged", "list"]);
    for expected in [
        "row 2 (id=2), source: line 3 has 2 field(s) but the header has 3 (id, n, name)",
        "row 4 (id=4), source: line 5 has 4 field(s) but the header has 3",
        "row 5 (id=5), source, column `name`: line 6: the text is not UTF-8 (byte 0xe9 at byte 4 of the field)",
    ] {
        assert!(list.stdout.contains(expected), "{expected}\n{}", list.all());
    }
    // The kept rows leave out what could not be read, so a retry asks for
    // it instead of writing NULL.
    let export = p.run_ok(&["flagged", "export", "--format", "jsonl"]);
    let rows: Vec<serde_json::Value> = export
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["row"].clone())
        .collect();
    assert_eq!(
        rows,
        [
            serde_json::json!({"id": "2", "n": "2"}),
            serde_json::json!({"id": "4", "n": "4"}),
            serde_json::json!({"id": "5", "n": "5"}),
        ]
    );
}

#[test]
fn postgres_infinity_and_far_timestamps_are_flagged_by_key() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.events (id int PRIMARY KEY, d date, ts timestamp, tz timestamptz);
         INSERT INTO {s}.events VALUES
          (1, '2024-01-31', '2024-01-31 13:45:00', '2024-01-31 13:45:00+00'),
          (2, 'infinity', NULL, NULL),
          (3, '-infinity', NULL, NULL),
          (4, NULL, 'infinity', NULL),
          (5, NULL, NULL, '-infinity'),
          (6, NULL, '294276-12-31 23:59:59', NULL),
          (7, '1999-12-31', '1999-12-31 23:59:59', '2000-01-01 00:00:00+00');",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"pg-input\"\n{}[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"events\"\non_error = \"flag\"\n",
            s.endpoint("source", "")
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("2 written") && run.stdout.contains("5 flagged"),
        "{}",
        run.all()
    );
    let got = p.query(
        "out/vault.db",
        "SELECT id, d, ts, tz FROM events ORDER BY id",
    );
    let got: Vec<String> = got
        .into_iter()
        .map(|r| {
            let r: Vec<String> = r.into_iter().map(Option::unwrap_or_default).collect();
            r.join(" | ")
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        got[0].starts_with("1 | 2024-01-31 | 2024-01-31 13:45:00 | 2024-01-31T13:45:00"),
        "{got:?}"
    );
    assert!(
        got[1].starts_with("7 | 1999-12-31 | 1999-12-31 23:59:59 | 2000-01-01T00:00:00"),
        "{got:?}"
    );
    let list = p.run_ok(&["flagged", "list"]);
    for expected in [
        "(id=2), mapping, column `d`: expected date like 2024-01-31, got text \"infinity\"",
        "(id=3), mapping, column `d`: expected date like 2024-01-31, got text \"-infinity\"",
        "(id=4), mapping, column `ts`: expected timestamp like 2024-01-31 13:45:00, got text \"infinity\"",
        "(id=5), mapping, column `tz`: expected timestamptz",
        "(id=6), mapping, column `ts`: expected timestamp like 2024-01-31 13:45:00, got text \"294276-12-31 23:59:59\"",
    ] {
        assert!(list.stdout.contains(expected), "{expected}\n{}", list.all());
    }
}
