//! Text from data and plugins never reaches the terminal as control
//! sequences or forged lines of ours, and never grows without bound.

use super::{people_migration, project};

/// What an attacker puts in a CSV: a window title, a screen clear and a
/// forged success line.
const FORGED: &str = "\u{1b}]0;pwned\u{7}\u{1b}[2Jd\nmigration `x` run 1 succeeded";

fn assert_harmless(what: &str, out: &str) {
    assert!(
        !out.contains('\u{1b}'),
        "{what} printed an escape sequence: {out:?}"
    );
    assert!(!out.contains('\u{7}'), "{what} printed a bell: {out:?}");
    assert!(
        !out.lines()
            .any(|l| l.trim() == "migration `x` run 1 succeeded"),
        "{what} printed a forged line: {out}"
    );
}

#[test]
fn a_hostile_value_in_a_row_error_is_shown_escaped() {
    let p = project();
    let value = FORGED.replace('\n', "\\n");
    let quoted = format!("\"{}\"", FORGED.replace('"', "\"\""));
    p.csv(
        "people",
        "id,name,score",
        &[
            "1,ok,1".into(),
            format!("2,{value},{quoted}"),
            format!("3,x,{}", "9".repeat(10_000)),
        ],
    );
    p.write("m.toml", &people_migration("", "on_error = \"flag\""));
    let run = p.run(&["run", "m.toml"]);
    assert_harmless("run", &run.all());
    let list = p.run_ok(&["flagged", "list"]);
    assert_harmless("flagged list", &list.all());
    assert!(list.stdout.contains("]0;pwned"), "{}", list.all());
    assert!(
        list.stdout.lines().all(|l| l.len() < 10_000),
        "a huge value is cut in what is printed: {}",
        list.stdout.len()
    );
}

#[test]
fn a_hostile_csv_header_is_shown_escaped_by_discover_preview_and_run() {
    let p = project();
    let header = format!("id,\"{}\"", FORGED.replace('"', "\"\""));
    p.csv("people", &header, &["1,a".into(), "2,b".into()]);
    p.write(
        "m.toml",
        "name = \"h\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"people\"\n",
    );
    for command in ["discover", "preview", "run"] {
        let out = p.run(&[command, "m.toml"]);
        assert_harmless(command, &out.all());
        if command != "run" {
            assert!(out.all().contains("]0;pwned"), "{command}: {}", out.all());
        }
    }
}
