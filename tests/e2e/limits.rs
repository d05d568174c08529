//! Each limit and each capability denial tripped by a hostile guest. The
//! poison row (id 3) is isolated by bisection and flagged with its true
//! cause; every other row lands, and the run finishes.

use credvault_tests::{Project, guests, people};

use super::{people_migration, project};

/// Runs the hostile guest in `mode` on row 3 of six under the flag policy.
fn hostile(mode: &str, limits: &str) -> (Project, String) {
    let p = project();
    p.csv("people", "id,name,score", &people(6));
    let table = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = {mode:?}, trigger = \"3\" }}\nlimits = {{ {limits} }}\n",
        guests::HOSTILE
    );
    p.write(
        "m.toml",
        &people_migration("batch_size = 6\non_error = \"flag\"", &table),
    );
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 0, "the host must finish the run: {}", run.all());
    (p, run.all())
}

/// The one flagged row's error, after checking the other rows landed.
fn flagged_error(p: &Project) -> String {
    let landed = p.query("out/vault.db", "SELECT id FROM people ORDER BY id");
    let ids: Vec<&str> = landed.iter().map(|r| r[0].as_deref().unwrap()).collect();
    assert_eq!(ids, ["1", "2", "4", "5", "6"]);
    let list = p.run_ok(&["flagged", "list", "--json"]);
    let rows: Vec<serde_json::Value> = list
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{}", list.stdout);
    assert_eq!(rows[0]["position"], 3);
    assert_eq!(rows[0]["key"], "id=3");
    assert!(
        rows[0]["stage"]
            .as_str()
            .unwrap()
            .contains("hostile_guest.wasm"),
        "names the plugin: {}",
        rows[0]
    );
    assert_eq!(rows[0]["table"], "people");
    rows[0]["error"].as_str().unwrap().to_string()
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    let (p, _) = hostile("loop", "fuel = 20_000_000");
    let error = flagged_error(&p);
    assert!(
        error.contains("ran out of fuel (limit 20000000 instructions per call)"),
        "{error}"
    );
    assert!(
        error.contains("isolated from the batch of rows 1–6"),
        "names the batch: {error}"
    );
}

#[test]
fn busy_loop_with_ample_fuel_hits_the_wall_clock_deadline() {
    let (p, _) = hostile("loop", "fuel = 1_000_000_000_000_000, timeout_ms = 200");
    let error = flagged_error(&p);
    assert!(
        error.contains("exceeded its wall-clock deadline (200 ms per call)"),
        "{error}"
    );
}

#[test]
fn sleeping_in_a_host_call_hits_the_deadline_too() {
    let (p, _) = hostile("sleep", "timeout_ms = 200");
    let error = flagged_error(&p);
    assert!(
        error.contains("exceeded its wall-clock deadline"),
        "{error}"
    );
}

#[test]
fn memory_bomb_hits_the_memory_cap() {
    let (p, _) = hostile("memory", "memory_mb = 16");
    let error = flagged_error(&p);
    assert!(error.contains("hit its memory cap (16 MiB"), "{error}");
}

#[test]
fn panic_is_reported_with_its_message() {
    let (p, output) = hostile("panic", "");
    let error = flagged_error(&p);
    assert!(
        error.contains("panicked: hostile guest panicked on purpose (at"),
        "{error}"
    );
    // The run report accounts for the plugin: every row in, the poison row
    // failed, and a fresh instance after each trap of the bisection.
    let report = output
        .lines()
        .find(|l| l.contains("plugin credvault_hostile_guest.wasm:"))
        .unwrap_or_else(|| panic!("no plugin report in {output}"));
    assert!(
        report.contains("rows in 6, out 5, dropped 0, failed 1"),
        "{report}"
    );
    // Bisecting rows 1–6 for row 3 traps 4 times in 7 calls.
    assert!(
        report.contains("7 calls, 5 instance(s)"),
        "one per trap, plus the first: {report}"
    );
}

#[test]
fn runaway_recursion_overflows_the_stack() {
    let (p, _) = hostile("stack", "");
    let error = flagged_error(&p);
    assert!(error.contains("overflowed its stack"), "{error}");
}

/// A probe's answer for row 3 under the stop policy (a denial is a value,
/// not a failure).
fn probe(mode: &str) -> String {
    probe_with_log(mode).0
}

/// A probe's answer for row 3, and everything the run printed.
fn probe_with_log(mode: &str) -> (String, String) {
    let p = project();
    p.csv("people", "id,name,score", &people(3));
    let table = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = {mode:?}, trigger = \"3\" }}\n",
        guests::HOSTILE
    );
    p.write("m.toml", &people_migration("", &table));
    let run = p.run_ok(&["run", "m.toml"]);
    let rows = p.query("out/vault.db", "SELECT probe FROM people WHERE id = 3");
    (rows[0][0].clone().expect("the probe answered"), run.all())
}

#[test]
fn big_frames_overflowing_the_shadow_stack_are_caught() {
    let (p, _) = hostile("shadow-stack", "");
    let error = flagged_error(&p);
    assert!(error.contains("shadow stack"), "{error}");
}

#[test]
fn plugins_cannot_read_host_files() {
    let answer = probe("read-file");
    assert!(answer.starts_with("denied:"), "{answer}");
}

#[test]
fn plugins_see_no_environment() {
    // SAFETY of the assertion: the test process itself has a non-empty environment.
    assert!(std::env::vars().next().is_some());
    let answer = probe("env");
    assert_eq!(answer, "denied: no environment");
}

#[test]
fn plugins_have_no_clock() {
    assert_eq!(probe("clock"), "denied: clock frozen at 1970");
}

#[test]
fn plugins_cannot_open_sockets() {
    let (answer, output) = probe_with_log("net");
    assert!(answer.starts_with("denied:"), "{answer}");
    // The host logs the attempt with the plugin and the migration/table.
    let logged = output
        .lines()
        .find(|l| l.contains("denied network access"))
        .unwrap_or_else(|| panic!("no denial logged: {output}"));
    assert!(
        logged.contains("plugin=credvault_hostile_guest.wasm")
            && logged.contains("scope=people-move/people")
            && !logged.contains('\u{1b}'),
        "plain text, naming plugin and table: {logged}"
    );
}

#[test]
fn a_trapping_plugin_does_not_stop_other_tables() {
    let p = project();
    p.csv("people", "id,name,score", &people(4));
    p.csv("pets", "id,name", &["1,rex".into(), "2,tom".into()]);
    let m = format!(
        "{}\n[[tables]]\nsource = \"pets\"\n",
        people_migration(
            "on_error = \"flag\"",
            &format!(
                "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"panic\" }}\n",
                guests::HOSTILE
            )
        )
    );
    p.write("m.toml", &m);
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stdout.contains("2 written") && run.stdout.contains("4 flagged"),
        "{}",
        run.all()
    );
    assert_eq!(
        p.query("out/vault.db", "SELECT count(*) FROM pets")[0][0].as_deref(),
        Some("2")
    );
}

#[test]
fn under_the_stop_policy_the_first_trapping_row_ends_the_table_by_name() {
    let p = project();
    p.csv("people", "id,name,score", &people(50));
    let table = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"loop\", trigger = \"7\" }}\nlimits = {{ fuel = 10_000_000 }}\n",
        guests::HOSTILE
    );
    p.write("m.toml", &people_migration("on_error = \"stop\"", &table));
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.stderr
            .contains("stopped on a failed row (policy `stop`): table `people`, row 7 (id=7)"),
        "{}",
        run.all()
    );
    assert!(run.stderr.contains("ran out of fuel"), "{}", run.all());
}

/// Every row sleeps past a 200 ms deadline: isolating each costs calls
/// that run to the deadline, so the table's time in failing calls is
/// bounded (`max_trap_seconds`), not just its count of traps.
#[test]
fn time_spent_in_failing_calls_is_bounded_per_table() {
    let p = project();
    p.csv("people", "id,name,score", &people(200));
    let table = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"sleep\" }}\nlimits = {{ timeout_ms = 200 }}\n",
        guests::HOSTILE
    );
    p.write(
        "m.toml",
        &people_migration(
            "batch_size = 200\non_error = \"flag\"\nmax_plugin_traps = 1000\nmax_trap_seconds = 2",
            &table,
        ),
    );
    let run = p.run(&["run", "m.toml"]);
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(
        run.all()
            .contains("in calls that failed in this table (limit 2 s"),
        "{}",
        run.all()
    );
}
