//! What credvault writes to disk that holds source values (the state
//! store with flagged rows, its WAL, exports, reports) and its own
//! folders are owner-only, under the usual umask 022.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use credvault_tests::{Project, Run, guests, people};

use super::{people_migration, project};

/// `credvault ARGS` in the project under `umask 022` (files 0644 unless
/// the program says otherwise).
fn run_umask_022(p: &Project, args: &[&str]) -> Run {
    let output = Command::new("sh")
        .arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_credvault"))
        .arg("--state")
        .arg(p.path().join(".credvault/state.db"))
        .args(args)
        .current_dir(p.path())
        .env_remove("CREDVAULT_LOG")
        .output()
        .expect("running credvault");
    let run = Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        run.code == 0 || args[0] == "validate",
        "credvault {args:?} failed:\n{}",
        run.all()
    );
    run
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn assert_mode(p: &Project, name: &str, want: u32) {
    let got = mode(&p.path().join(name));
    assert_eq!(got, want, "{name} is {got:o}, want {want:o}");
}

#[test]
fn the_state_store_exports_reports_and_own_folders_are_owner_only() {
    let p = project();
    let mut rows = people(4);
    rows[1] = "2,person 2,secret-score".into();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &people_migration("on_error = \"flag\"", ""));
    let run = run_umask_022(&p, &["run", "m.toml"]);
    assert!(run.stdout.contains("1 flagged"), "{}", run.all());
    run_umask_022(&p, &["flagged", "export", "--output", "flagged.jsonl"]);
    run_umask_022(&p, &["validate", "m.toml", "--html", "report.html"]);
    run_umask_022(
        &p,
        &["plugin", "install", guests::ADD_SUFFIX, "--name", "suffix"],
    );
    assert!(
        std::fs::read_to_string(p.path().join("flagged.jsonl"))
            .unwrap()
            .contains("secret-score")
    );
    // SQLite leaves the WAL and shared-memory files when the process
    // ends without closing the store; they hold rows too.
    for file in ["state.db", "state.db-wal", "state.db-shm"] {
        let path = format!(".credvault/{file}");
        if file == "state.db" || p.path().join(&path).exists() {
            assert_mode(&p, &path, 0o600);
        }
    }
    assert_mode(&p, "flagged.jsonl", 0o600);
    assert_mode(&p, "report.html", 0o600);
    for dir in [
        ".credvault",
        ".credvault/state.db.locks",
        ".credvault/cache",
        ".credvault/plugins",
    ] {
        assert_mode(&p, dir, 0o700);
    }
    for lock in std::fs::read_dir(p.path().join(".credvault/state.db.locks")).unwrap() {
        let lock = lock.unwrap().path();
        assert_eq!(mode(&lock), 0o600, "{}", lock.display());
    }
}

#[test]
fn a_store_an_older_version_left_open_is_made_owner_only() {
    let p = project();
    p.csv("people", "id,name,score", &people(2));
    p.write("m.toml", &people_migration("on_error = \"flag\"", ""));
    run_umask_022(&p, &["run", "m.toml"]);
    let open = std::fs::Permissions::from_mode(0o644);
    std::fs::set_permissions(p.path().join(".credvault/state.db"), open.clone()).unwrap();
    std::fs::set_permissions(
        p.path().join(".credvault/cache"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(p.path().join("old.jsonl"), "").unwrap();
    std::fs::set_permissions(p.path().join("old.jsonl"), open).unwrap();
    run_umask_022(&p, &["flagged", "export", "--output", "old.jsonl"]);
    run_umask_022(&p, &["plugin", "inspect", guests::ADD_SUFFIX]);
    assert_mode(&p, ".credvault/state.db", 0o600);
    assert_mode(&p, ".credvault/cache", 0o700);
    assert_mode(&p, "old.jsonl", 0o600);
}
