//! One writer per migration across processes: while a `credvault run`
//! writes a migration, a second run, a retry or a rollback from another
//! process is refused with who holds it, and a holder killed outright
//! leaves nothing to clear.

use std::process::Child;

use credvault_tests::{Project, guests, people};

use super::{people_migration, project};

/// A CSV → SQLite migration whose transform sleeps on row 2 until its
/// 4 s limit, so a run holds the migration that long (one row a batch, so
/// isolating the row costs no further timeouts).
fn slow_project() -> Project {
    let p = project();
    p.csv("people", "id,name,score", &people(50));
    let slow = format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"sleep\", trigger = \"2\" }}\nlimits = {{ timeout_ms = 4000 }}\n",
        guests::HOSTILE
    );
    p.write(
        "m.toml",
        &people_migration("on_error = \"flag\"\nbatch_size = 1", &slow),
    );
    p
}

/// Starts a slow run in the background, once it has begun writing.
fn slow_run(p: &Project, runs_before: usize) -> Child {
    let child = p.spawn(&["run", "m.toml"]);
    p.wait_logged("people-move", "run_started", runs_before + 1);
    child
}

fn assert_busy(p: &Project, args: &[&str], holder: &Child) {
    let refused = p.run(args);
    assert_eq!(refused.code, 2, "{args:?}: {}", refused.all());
    let expected = format!(
        "error: migration `people-move` is busy: `credvault run` (pid {}, user ",
        holder.id()
    );
    assert!(refused.stderr.starts_with(&expected), "{}", refused.all());
    assert!(
        refused
            .stderr
            .contains("wait for that to finish (or stop it)"),
        "{}",
        refused.all()
    );
}

#[test]
fn a_second_writer_is_refused_while_a_run_holds_the_migration() {
    let p = slow_project();
    let mut first = slow_run(&p, 0);
    assert_busy(&p, &["run", "m.toml"], &first);
    assert_busy(&p, &["flagged", "retry", "m.toml"], &first);
    assert_busy(&p, &["rollback", "m.toml"], &first);
    // Readers are not held back.
    p.run_ok(&["flagged", "list", "--migration", "people-move"]);
    assert!(first.wait().expect("the first run").success());
    let log = p.run_ok(&["log", "--migration", "people-move"]).stdout;
    let started = log.lines().filter(|l| l.contains("run_started")).count();
    assert_eq!(started, 1, "the refused run never started:\n{log}");
    let rows = p.query("out/vault.db", "SELECT count(*) FROM people");
    assert_eq!(
        rows[0][0].as_deref(),
        Some("49"),
        "row 2 flagged, the rest written once"
    );
    p.run_ok(&["rollback", "m.toml"]);
}

#[test]
fn a_killed_holder_leaves_no_hold_behind() {
    let p = slow_project();
    let mut killed = slow_run(&p, 0);
    killed.kill().expect("SIGKILL");
    killed.wait().expect("reaped");
    let rolled = p.run_ok(&["rollback", "m.toml"]);
    assert!(
        rolled.stdout.contains("rolled `people-move` back"),
        "{}",
        rolled.all()
    );
}
