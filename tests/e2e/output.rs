//! What the `credvault` binary writes, and what it does when no one reads
//! it: `serve` with its stdout and stderr closed (`… 2>&1 | head -n 2`)
//! keeps working, stops on SIGTERM and never spins; dependencies' logs
//! (sqlx's slow statements, with their SQL) stay off the terminal at the
//! default level.

use std::io::BufRead as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use credvault_tests::{Project, exec_sqlite};

use super::project;
use super::servers::{Pg, Scratch};

/// `credvault serve ARGS` in the project with stdout and stderr piped.
fn serve_piped(p: &Project, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_credvault"))
        .current_dir(p.path())
        .arg("--state")
        .arg(p.path().join(".credvault/state.db"))
        .arg("serve")
        .args(args)
        .env_remove("CREDVAULT_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting credvault serve")
}

/// Reads the first line `serve` writes on stderr, then closes both of its
/// pipes' read ends, as `head -n 1` does when it has its line.
fn close_after_first_line(child: &mut Child) -> String {
    let stderr = child.stderr.take().expect("piped stderr");
    let mut line = String::new();
    std::io::BufReader::new(stderr)
        .read_line(&mut line)
        .expect("reading serve's first line");
    drop(child.stdout.take());
    line
}

/// CPU seconds (user + system) the process has used so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may
    // hold spaces: state is field 3, utime and stime fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let ticks_per_s = 100.0; // USER_HZ on Linux
    (ticks(11).unwrap_or(0.0) + ticks(12).unwrap_or(0.0)) / ticks_per_s
}

/// CPU seconds the process uses over the next `wall`.
fn cpu_over(pid: u32, wall: Duration) -> f64 {
    let before = cpu_seconds(pid);
    std::thread::sleep(wall);
    cpu_seconds(pid) - before
}

/// Sends SIGTERM and waits up to 10 s for the exit; a process that does
/// not stop is measured (is it spinning?), killed, and the test fails.
fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let pid = child.id();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("running kill");
    let sent = Instant::now();
    while sent.elapsed() < Duration::from_secs(10) {
        if let Some(status) = child.try_wait().expect("waiting for serve") {
            return status;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let burnt = cpu_over(pid, Duration::from_secs(1));
    let _ = child.kill();
    let _ = child.wait();
    panic!("serve ignored SIGTERM for 10 s (using {burnt:.2} CPU seconds a second meanwhile)");
}

/// Asserts `serve` is alive and idle: under half a CPU second a second.
fn assert_quiet_and_alive(child: &mut Child, what: &str) {
    assert!(
        child.try_wait().expect("polling serve").is_none(),
        "serve exited {what}: {:?}",
        child.try_wait()
    );
    let burnt = cpu_over(child.id(), Duration::from_secs(1));
    assert!(
        burnt < 0.5,
        "serve burns {burnt:.2} CPU seconds a second {what}"
    );
}

#[test]
fn serve_with_its_output_closed_stops_on_sigterm_without_spinning() {
    let p = project();
    p.csv("people", "id,name", &["1,Ann".into()]);
    p.write(
        "m.toml",
        "name = \"one-time\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"people\"\n",
    );
    let mut child = serve_piped(&p, &["--ui", "--listen", "127.0.0.1:0", "m.toml"]);
    let first = close_after_first_line(&mut child);
    assert!(!first.is_empty(), "serve said nothing");
    assert_quiet_and_alive(&mut child, "with its output closed");
    let status = terminate(&mut child);
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
}

#[test]
fn serve_keeps_syncing_with_its_output_closed_and_still_stops() {
    let p = project();
    exec_sqlite(
        &p.path().join("src.db"),
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, item TEXT);
         INSERT INTO orders VALUES (1, 'pen'), (2, 'ink');",
    );
    p.write(
        "m.toml",
        "name = \"orders-sync\"\n[source]\ntype = \"sqlite\"\npath = \"src.db\"\n[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[sync]\nkind = \"continuous\"\nevery = \"1s\"\n[[tables]]\nsource = \"orders\"\n",
    );
    let mut child = serve_piped(&p, &["m.toml"]);
    close_after_first_line(&mut child);
    // Each sync prints its outcome on stdout and its progress on stderr,
    // both closed now: serve must go on syncing regardless.
    p.wait_logged("orders-sync", "synced", 3);
    assert_quiet_and_alive(&mut child, "syncing with its output closed");
    let status = terminate(&mut child);
    assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
}

/// A source read that takes over sqlx's slow-statement threshold (1 s):
/// another session holds the table locked for 2 s while credvault reads
/// it, so its statements on the table wait.
#[test]
fn a_slow_statement_is_not_logged_at_the_default_level() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.secrets (id int PRIMARY KEY, token text);
         INSERT INTO {s}.secrets VALUES (1, 'tok-4711-hush');",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"slow\"\n{}[destination]\ntype = \"sqlite\"\npath = \"out/vault.db\"\n[[tables]]\nsource = \"secrets\"\nkey = [\"id\"]\n",
            s.endpoint("source", "")
        ),
    );
    let locker = Pg::connect();
    locker.exec(&format!(
        "BEGIN; LOCK TABLE {}.secrets IN ACCESS EXCLUSIVE MODE",
        s.schema
    ));
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        locker.exec("ROLLBACK");
    });
    let started = Instant::now();
    let run = p.run_ok(&["run", "m.toml"]);
    release.join().expect("releasing the lock");
    assert!(
        started.elapsed() > Duration::from_millis(1500),
        "the run did not wait for the lock, so no statement was slow:\n{}",
        run.all()
    );
    for noise in ["slow statement", "db.statement", "SELECT", "WARN"] {
        assert!(
            !run.stderr.contains(noise),
            "`{noise}` reached stderr at the default level:\n{}",
            run.all()
        );
    }
    assert_eq!(
        p.query("out/vault.db", "SELECT token FROM secrets"),
        [[Some("tok-4711-hush".into())]]
    );
}
