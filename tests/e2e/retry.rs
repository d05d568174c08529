//! Retrying flagged rows: fixed in an export, after fixing the migration
//! file, never over a row the destination already holds, and exactly once
//! when a retry is cut short.

use credvault_tests::{Project, exec_sqlite, people};

use super::{people_migration, project};

/// Six people, the third with a score that is not a number, flagged.
fn flagged_project() -> Project {
    let p = project();
    let mut rows = people(6);
    rows[2] = "3,person 3,thirty".into();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &people_migration("on_error = \"flag\"", ""));
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("1 flagged"), "{}", run.all());
    p
}

fn flagged_json(p: &Project) -> Vec<serde_json::Value> {
    let list = p.run_ok(&["flagged", "list", "--json"]);
    list.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn score_of(p: &Project, id: i64) -> Vec<Vec<Option<String>>> {
    let sql = format!("SELECT name, score FROM people WHERE id = {id}");
    p.query("out/vault.db", &sql)
}

#[test]
fn a_row_fixed_in_its_export_is_retried_into_the_destination_once() {
    let p = flagged_project();
    let export = p.run_ok(&["flagged", "export", "--format", "jsonl"]);
    let fixed = export
        .stdout
        .replace(r#""score":"thirty""#, r#""score":"30""#);
    assert_ne!(fixed, export.stdout, "the export holds the source row");
    p.write("fixed.jsonl", &fixed);
    let retry = p.run_ok(&["flagged", "retry", "m.toml", "--fixed", "fixed.jsonl"]);
    assert!(
        retry.stdout.contains("people: 1 retried: 1 written"),
        "{}",
        retry.all()
    );
    assert_eq!(
        score_of(&p, 3),
        vec![vec![Some("person 3".into()), Some("30".into())]]
    );
    let count = p.query("out/vault.db", "SELECT COUNT(*) FROM people");
    assert_eq!(count[0][0].as_deref(), Some("6"));
    assert!(flagged_json(&p).is_empty(), "the row is no longer open");
    let all = p.run_ok(&["flagged", "list", "--all"]);
    assert!(
        all.stdout.contains(": retried and written]") && all.stdout.contains("1 flagged row(s)"),
        "closed rows are listed with --all: {}",
        all.all()
    );
    let again = p.run_ok(&["flagged", "retry", "m.toml", "--fixed", "fixed.jsonl"]);
    assert!(
        again
            .stdout
            .contains("1 line(s) of the fixed file name rows no longer open"),
        "a fixed row is not written twice: {}",
        again.all()
    );
    assert_eq!(score_of(&p, 3).len(), 1);
    let log = p.run_ok(&["log", "--migration", "people-move", "--json"]);
    assert!(log.stdout.contains("flagged_retried"), "{}", log.all());
}

#[test]
fn a_row_that_fails_again_stays_flagged_until_the_migration_is_fixed() {
    let p = flagged_project();
    let retry = p.run_ok(&["flagged", "retry", "m.toml"]);
    assert!(retry.stdout.contains("1 failed again"), "{}", retry.all());
    let open = flagged_json(&p);
    assert_eq!(open.len(), 1);
    assert_eq!(open[0]["retries"], 1);
    assert_eq!(open[0]["column"], "score");
    let list = p.run_ok(&["flagged", "list"]);
    assert!(
        list.stdout.contains("got text \"thirty\" (retried 1×)"),
        "{}",
        list.all()
    );

    p.write(
        "bad.jsonl",
        &format!(
            "{{\"id\":{},\"row\":{{\"id\":\"3\",\"nme\":\"x\",\"score\":\"1\"}}}}\n",
            open[0]["id"]
        ),
    );
    let typo = p.run_ok(&["flagged", "retry", "m.toml", "--fixed", "bad.jsonl"]);
    assert!(typo.stdout.contains("1 failed again"), "{}", typo.all());
    let open = flagged_json(&p);
    assert_eq!(open[0]["stage"], "retry");
    assert!(
        open[0]["error"]
            .as_str()
            .unwrap()
            .contains("source table `people` has no column `nme`"),
        "{open:?}"
    );

    // The fix goes into the migration file: a value map for the word.
    let fixed = people_migration("on_error = \"flag\"", "").replace(
        "[tables.columns.score]\ntype = \"int\"",
        "[tables.columns.score]\ntype = \"int\"\nmap = { thirty = 30 }\nunmapped = \"keep\"",
    );
    p.write("m.toml", &fixed);
    let retry = p.run_ok(&["flagged", "retry", "m.toml", "--table", "people"]);
    assert!(retry.stdout.contains("1 written"), "{}", retry.all());
    assert_eq!(score_of(&p, 3)[0][1].as_deref(), Some("30"));
    let validate = p.run_ok(&["validate", "m.toml"]);
    assert!(validate.stdout.contains("passed"), "{}", validate.all());
}

#[test]
fn a_retry_never_overwrites_a_row_the_destination_already_holds() {
    let p = flagged_project();
    exec_sqlite(
        &p.path().join("out/vault.db"),
        "INSERT INTO people (id, name, score) VALUES (3, 'typed by hand', 33)",
    );
    let export = p.run_ok(&["flagged", "export"]);
    p.write("fixed.jsonl", &export.stdout.replace("thirty", "30"));
    let retry = p.run_ok(&["flagged", "retry", "m.toml", "--fixed", "fixed.jsonl"]);
    assert!(
        retry.stdout.contains("1 already at the destination by key"),
        "{}",
        retry.all()
    );
    assert_eq!(
        score_of(&p, 3),
        vec![vec![Some("typed by hand".into()), Some("33".into())]]
    );
    let tables = p.query(
        "out/vault.db",
        "SELECT name FROM sqlite_master WHERE name LIKE 'credvault_retry%'",
    );
    assert!(
        tables.is_empty(),
        "the scratch table is dropped: {tables:?}"
    );
}

#[test]
fn a_retry_cut_short_after_its_commit_is_finished_by_the_next() {
    let p = flagged_project();
    let id = flagged_json(&p)[0]["id"].as_i64().unwrap();
    // What a retry killed between the destination's commit and the state
    // store's update leaves behind: the row, and its id with the checkpoint.
    exec_sqlite(
        &p.path().join("out/vault.db"),
        &format!(
            "INSERT INTO people (id, name, score) VALUES (3, 'person 3', 30);
             INSERT INTO _credvault_checkpoints (migration, table_name, checkpoint)
             VALUES ('people-move', 'people#retry', '{{\"rows\":0,\"key\":null,\"done\":false,\"cursor\":\"{id}\"}}')"
        ),
    );
    let retry = p.run_ok(&["flagged", "retry", "m.toml"]);
    assert!(retry.stdout.contains("1 written"), "{}", retry.all());
    assert!(flagged_json(&p).is_empty());
    let count = p.query("out/vault.db", "SELECT COUNT(*) FROM people WHERE id = 3");
    assert_eq!(count[0][0].as_deref(), Some("1"), "written once");
}

#[test]
fn a_narrower_retry_still_closes_the_rows_a_cut_short_one_wrote() {
    let p = project();
    let mut rows = people(4);
    rows[1] = "2,person 2,two".into();
    rows[3] = "4,person 4,four".into();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &people_migration("on_error = \"flag\"", ""));
    p.run_ok(&["run", "m.toml"]);
    let ids: Vec<i64> = flagged_json(&p)
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    exec_sqlite(
        &p.path().join("out/vault.db"),
        &format!(
            "INSERT INTO people (id, name, score) VALUES (2, 'person 2', 20);
             INSERT INTO _credvault_checkpoints (migration, table_name, checkpoint)
             VALUES ('people-move', 'people#retry', '{{\"rows\":0,\"key\":null,\"done\":false,\"cursor\":\"{}\"}}')",
            ids[0]
        ),
    );
    let retry = p.run_ok(&["flagged", "retry", "m.toml", "--id", &ids[1].to_string()]);
    assert!(
        retry.stdout.contains("1 written") && retry.stdout.contains("1 failed again"),
        "{}",
        retry.all()
    );
    let open = flagged_json(&p);
    assert_eq!(open.len(), 1);
    assert_eq!(
        open[0]["id"], ids[1],
        "the cut-short row is closed, the other stays"
    );
}

#[test]
fn a_retry_refuses_ids_it_does_not_know_and_unreadable_fixes() {
    let p = flagged_project();
    let unknown = p.run(&["flagged", "retry", "m.toml", "--id", "999"]);
    assert_eq!(unknown.code, 2, "{}", unknown.all());
    assert!(
        unknown
            .stderr
            .contains("flagged row #999 is not an open flagged row of a run of `people-move`"),
        "{}",
        unknown.all()
    );
    p.write("fixed.csv", "id,score\n1,30\n");
    let csv = p.run(&["flagged", "retry", "m.toml", "--fixed", "fixed.csv"]);
    assert_eq!(csv.code, 2, "{}", csv.all());
    assert!(
        csv.stderr.contains("line 1:") && csv.stderr.contains("flagged export --format jsonl"),
        "{}",
        csv.all()
    );
    assert_eq!(flagged_json(&p).len(), 1, "nothing changed");
}

#[test]
fn rows_the_destination_refused_go_in_once_it_takes_them_and_validation_agrees() {
    let s = super::servers::Scratch::new();
    s.exec(
        "CREATE TABLE {s}.accounts (id int PRIMARY KEY, amount int);
         INSERT INTO {s}.accounts VALUES (1, 10), (2, -5), (3, 20), (4, -1);
         CREATE TABLE {s}.ledger (id bigint, amount bigint CONSTRAINT nonneg CHECK (amount >= 0));",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"pg-retry\"\n{}{}[settings]\non_error = \"flag\"\n[[tables]]\nsource = \"accounts\"\ndestination = \"ledger\"\nif_exists = \"append\"\n",
            s.endpoint("source", ""),
            s.endpoint("destination", "")
        ),
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(run.stdout.contains("2 flagged"), "{}", run.all());
    let open = flagged_json(&p);
    assert_eq!(open[0]["stage"], "destination");
    let first = open[0]["id"].to_string();

    let retry = p.run_ok(&["flagged", "retry", "m.toml", "--id", &first]);
    assert!(
        retry.stdout.contains("ledger: 1 retried: 0 written")
            && retry.stdout.contains("1 failed again"),
        "{}",
        retry.all()
    );
    assert!(
        flagged_json(&p)[0]["error"]
            .as_str()
            .unwrap()
            .contains("nonneg")
    );

    s.exec("ALTER TABLE {s}.ledger DROP CONSTRAINT nonneg");
    let retry = p.run_ok(&["flagged", "retry", "m.toml"]);
    assert!(
        retry.stdout.contains("2 retried: 2 written"),
        "{}",
        retry.all()
    );
    let amounts = s.rows("SELECT amount::text FROM {s}.ledger ORDER BY id");
    let amounts: Vec<&str> = amounts.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(amounts, ["10", "-5", "20", "-1"]);
    let validate = p.run_ok(&["validate", "m.toml"]);
    assert!(validate.stdout.contains("passed"), "{}", validate.all());
}

#[test]
fn a_fresh_run_supersedes_the_flags_of_the_runs_before_it() {
    let p = project();
    let mut rows = people(4);
    rows[1] = "2,person 2,two".into();
    p.csv("people", "id,name,score", &rows);
    let replace = "if_exists = \"replace\"";
    p.write("m.toml", &people_migration("on_error = \"flag\"", replace));
    p.run_ok(&["run", "m.toml"]);
    p.run_ok(&["run", "m.toml"]);
    let open = flagged_json(&p);
    assert_eq!(
        open.len(),
        1,
        "the second run flagged the row again: {open:?}"
    );
    assert_eq!(open[0]["run_id"], 2);
    let retry = p.run_ok(&["flagged", "retry", "m.toml"]);
    assert!(retry.stdout.contains("1 retried"), "{}", retry.all());
}

#[test]
fn a_row_flagged_twice_by_a_resumed_run_is_retried_once() {
    let p = flagged_project();
    // What a run killed after flagging a batch and before committing it,
    // then resumed, leaves: the row flagged twice.
    exec_sqlite(
        &p.path().join(".credvault/state.db"),
        "INSERT INTO flagged_rows (run_id, migration, table_name, position, row_key, stage, column_name, value, error, row_json, flagged_at, policy)
         SELECT run_id, migration, table_name, position, row_key, stage, column_name, value, error, row_json, flagged_at, policy FROM flagged_rows",
    );
    let export = p.run_ok(&["flagged", "export"]);
    assert_eq!(export.stdout.lines().count(), 2);
    p.write("fixed.jsonl", &export.stdout.replace("thirty", "30"));
    let retry = p.run_ok(&["flagged", "retry", "m.toml", "--fixed", "fixed.jsonl"]);
    assert!(
        retry.stdout.contains("1 retried: 1 written"),
        "{}",
        retry.all()
    );
    assert_eq!(score_of(&p, 3).len(), 1, "written once");
    assert!(flagged_json(&p).is_empty());
}

#[test]
fn rows_of_a_keyless_table_a_full_sync_rebuilt_are_closed_unwritten() {
    let p = project();
    let mut rows = people(4);
    rows[1] = "2,person 2,two".into();
    p.csv("people", "id,name,score", &rows);
    p.write(
        "m.toml",
        "name = \"keyless\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n\
         [settings]\non_error = \"flag\"\n[sync]\nkind = \"continuous\"\nevery = \"1h\"\n\
         [[tables]]\nsource = \"people\"\n[tables.columns.score]\ntype = \"int\"\n",
    );
    p.run_ok(&["run", "m.toml"]);
    p.run_ok(&["sync", "m.toml"]);
    let retry = p.run_ok(&["flagged", "retry", "m.toml"]);
    assert!(
        retry.stdout.contains("1 retried: 0 written")
            && retry
                .stdout
                .contains("1 closed unwritten (a full sync rebuilt the keyless table since)"),
        "{}",
        retry.all()
    );
    let count = p.query("out/vault.db", "SELECT COUNT(*) FROM people");
    assert_eq!(count[0][0].as_deref(), Some("3"));
}

#[test]
fn a_fix_that_still_fails_is_kept_for_the_next_export() {
    let p = flagged_project();
    let export = p.run_ok(&["flagged", "export"]);
    let still = export.stdout.replace("\"thirty\"", "\"thirty-one\"");
    p.write("still.jsonl", &still);
    let retry = p.run_ok(&["flagged", "retry", "m.toml", "--fixed", "still.jsonl"]);
    assert!(retry.stdout.contains("1 failed again"), "{}", retry.all());
    let export = p.run_ok(&["flagged", "export"]);
    assert!(
        export.stdout.contains(r#""score":"thirty-one""#),
        "{}",
        export.all()
    );
    assert!(
        export.stdout.contains(r#""value":"thirty-one""#),
        "{}",
        export.all()
    );
}
