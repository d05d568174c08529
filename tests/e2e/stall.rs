//! A database server that stops answering: the run fails within a bound,
//! naming the server and the table, and keeps whole batches only; a step
//! that takes long on a server that still answers is not cut.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use super::project;
use super::servers::{LogicalPg, Pg, Scratch};

/// Processes stopped (SIGSTOP) until dropped, when they go on (SIGCONT),
/// whether the test passed or not.
struct Frozen {
    pids: Vec<u32>,
}

impl Frozen {
    /// Stops `pids` in order (a parent first, so it starts no new process).
    fn new(pids: Vec<u32>) -> Self {
        for pid in &pids {
            signal("-STOP", *pid);
        }
        Self { pids }
    }

    /// Every process of a PostgreSQL server: the postmaster, frozen first,
    /// then its children.
    fn postgres(server: &LogicalPg) -> Self {
        let postmaster = server.postmaster_pid();
        let mut frozen = Self::new(vec![postmaster]);
        let children = Command::new("pgrep")
            .args(["-P", &postmaster.to_string()])
            .output()
            .expect("running pgrep");
        for pid in String::from_utf8_lossy(&children.stdout).split_whitespace() {
            let pid: u32 = pid.parse().expect("a process id");
            signal("-STOP", pid);
            frozen.pids.push(pid);
        }
        frozen
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        for pid in self.pids.iter().rev() {
            signal("-CONT", *pid);
        }
    }
}

fn signal(which: &str, pid: u32) {
    let _ = Command::new("kill")
        .args([which, &pid.to_string()])
        .status();
}

/// Waits for `child` to end, killing it (and failing) after `limit`.
fn wait_within(child: &mut Child, limit: Duration) -> i32 {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting for credvault") {
            return status.code().unwrap_or(-1);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("credvault still ran {limit:?} after its destination stopped answering");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls `probe` every 20 ms for up to `secs` seconds.
fn wait_for(what: &str, secs: u64, mut probe: impl FnMut() -> bool) {
    let started = Instant::now();
    while !probe() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "waited in vain for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `orders` (`rows` of them) in a scratch schema of the shared server.
fn orders(rows: u32) -> Scratch {
    let source = Scratch::new();
    source.exec(&format!(
        "CREATE TABLE {{s}}.orders (id bigint PRIMARY KEY, item text);
         INSERT INTO {{s}}.orders SELECT i, 'item ' || i FROM generate_series(1, {rows}) i"
    ));
    source
}

/// An empty `orders` in `schema` whose every insert statement (each batch)
/// first sleeps `seconds`.
fn slow_orders(schema: &str, seconds: f64) -> String {
    format!(
        "CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, item text);
         CREATE FUNCTION {schema}.slow() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN PERFORM pg_sleep({seconds}); RETURN NULL; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON {schema}.orders
           FOR EACH STATEMENT EXECUTE FUNCTION {schema}.slow()"
    )
}

/// The migration of `orders` into an existing table, `stall_seconds` set.
fn migration(source: &Scratch, destination: &str, stall: u64) -> String {
    format!(
        "name = \"stall\"\n{}{destination}\n[settings]\nbatch_size = 100\nstall_seconds = {stall}\n[[tables]]\nsource = \"orders\"\nif_exists = \"append\"\n",
        source.endpoint("source", "")
    )
}

#[test]
fn a_destination_that_stops_answering_mid_run_fails_it_naming_the_server_and_the_table() {
    let server = LogicalPg::start();
    let dest = Pg::connect_at(server.port, "postgres");
    dest.exec(&slow_orders("public", 0.2));
    let source = orders(3000);
    let p = project();
    let destination = format!(
        "[destination]\ntype = \"postgres\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\ntls = \"disable\"\n",
        server.port
    );
    p.write("m.toml", &migration(&source, &destination, 2));
    let mut run = p.spawn(&["run", "m.toml"]);
    let checkpoint =
        "SELECT coalesce(max((checkpoint->>'rows')::bigint), 0)::text FROM _credvault_checkpoints";
    let committed = || {
        dest.try_rows(checkpoint)
            .ok()
            .and_then(|r| r.into_iter().next()?.into_iter().next()?)
            .unwrap_or_default()
    };
    wait_for("a first committed batch", 30, || {
        committed().parse::<u64>().is_ok_and(|n| n > 0)
    });
    let frozen = Frozen::postgres(&server);
    let code = wait_within(&mut run, Duration::from_secs(45));
    drop(frozen);
    let err = std::fs::read_to_string(p.path().join("spawned.err")).expect("spawned.err");
    assert_ne!(code, 0, "{err}");
    let named = format!(
        "destination postgres postgres@127.0.0.1:{}/postgres",
        server.port
    );
    assert!(
        err.contains(&named)
            && err.contains("stopped answering")
            && err.contains("table `orders`")
            && err.contains("settings.stall_seconds"),
        "{err}"
    );
    // Once every session of the run has ended on the server, what landed is
    // exactly what the checkpoint says: whole batches only.
    wait_for("the run's sessions to end", 30, || {
        dest.one("SELECT count(*)::text FROM pg_stat_activity WHERE application_name = 'credvault'")
            .as_deref()
            == Some("0")
    });
    let landed = dest.one("SELECT count(*)::text FROM orders");
    assert_eq!(landed, Some(committed()), "{err}");
    assert_ne!(landed.as_deref(), Some("3000"), "the run ended early");
}

#[test]
fn a_write_that_works_longer_than_stall_seconds_is_not_cut() {
    let source = orders(200);
    let dest = Scratch::new();
    dest.exec(&slow_orders("{s}", 3.0));
    let p = project();
    p.write(
        "m.toml",
        &migration(&source, &dest.endpoint("destination", ""), 1),
    );
    let run = p.run_within(&["run", "m.toml"], Duration::from_secs(60));
    assert_eq!(run.code, 0, "{}", run.all());
    assert!(!run.all().contains("stopped answering"), "{}", run.all());
    assert_eq!(
        dest.one("SELECT count(*)::text FROM {s}.orders"),
        Some("200".into())
    );
}

/// A MariaDB server of our own (root without a password) on a free port in
/// a temporary folder, with a database `test`; killed when dropped.
struct ThrowawayMariaDb {
    dir: tempfile::TempDir,
    port: u16,
    server: Child,
}

impl ThrowawayMariaDb {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let chown = Command::new("chown")
            .args(["-R", "mysql:mysql"])
            .arg(dir.path())
            .status();
        assert!(
            chown.is_ok_and(|s| s.success()),
            "chown of the temp dir failed"
        );
        let data = format!("--datadir={}", dir.path().join("data").display());
        let install = Command::new("mariadb-install-db")
            .args(["--no-defaults", &data, "--user=mysql"])
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("running mariadb-install-db");
        assert!(
            install.status.success(),
            "mariadb-install-db failed: {}",
            String::from_utf8_lossy(&install.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("log")).expect("a log file");
        let server = Command::new("/usr/sbin/mariadbd")
            .args(["--no-defaults", &data, "--user=mysql", "--skip-log-bin"])
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.path().join("sock").display()))
            .arg("--innodb-buffer-pool-size=16M")
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting mariadbd");
        let db = Self { dir, port, server };
        wait_for("the throwaway MariaDB to start", 30, || {
            db.try_sql("CREATE DATABASE IF NOT EXISTS test").is_some()
        });
        db
    }

    /// Runs `sql` in database `test` with the command-line client; its
    /// output, or `None` if it failed.
    fn try_sql(&self, sql: &str) -> Option<String> {
        let out = Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-u", "root", "-N", "-B"])
            .arg(format!("-P{}", self.port))
            .args(["-e", sql])
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    fn sql(&self, sql: &str) -> String {
        self.try_sql(&format!("USE test; {sql}"))
            .unwrap_or_else(|| panic!("failed: {sql}"))
    }
}

impl Drop for ThrowawayMariaDb {
    fn drop(&mut self) {
        signal("-CONT", self.server.id());
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = &self.dir;
    }
}

#[test]
fn a_mariadb_destination_that_stops_answering_mid_run_fails_it_naming_the_server_and_the_table() {
    let db = ThrowawayMariaDb::start();
    db.sql(
        "CREATE TABLE orders (id bigint PRIMARY KEY, item text);
         CREATE TRIGGER slow BEFORE INSERT ON orders FOR EACH ROW SET @slept = SLEEP(0.002)",
    );
    let source = orders(3000);
    let p = project();
    let destination = format!(
        "[destination]\ntype = \"mariadb\"\nport = {}\ndatabase = \"test\"\nuser = \"root\"\ntls = \"disable\"\n",
        db.port
    );
    p.write("m.toml", &migration(&source, &destination, 2));
    let mut run = p.spawn(&["run", "m.toml"]);
    let checkpoint =
        "SELECT coalesce(max(JSON_VALUE(checkpoint, '$.rows') + 0), 0) FROM _credvault_checkpoints";
    let committed = || {
        db.try_sql(&format!("USE test; {checkpoint}"))
            .unwrap_or_default()
    };
    wait_for("a first committed batch", 30, || {
        committed().parse::<u64>().is_ok_and(|n| n > 0)
    });
    let frozen = Frozen::new(vec![db.server.id()]);
    let code = wait_within(&mut run, Duration::from_secs(45));
    drop(frozen);
    let err = std::fs::read_to_string(p.path().join("spawned.err")).expect("spawned.err");
    assert_ne!(code, 0, "{err}");
    let named = format!("destination mariadb root@127.0.0.1:{}/test", db.port);
    assert!(
        err.contains(&named) && err.contains("stopped answering") && err.contains("table `orders`"),
        "{err}"
    );
    wait_for("the run's sessions to end", 30, || {
        db.try_sql("SELECT count(*) FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND USER = 'root'")
            .as_deref()
            == Some("0")
    });
    let landed = db.sql("SELECT count(*) FROM orders");
    assert_eq!(landed, committed(), "{err}");
    assert_ne!(landed, "3000", "the run ended early");
}

#[test]
fn a_stall_time_of_zero_or_over_a_day_is_refused_with_its_range() {
    for (seconds, got) in [("0", "got 0"), ("86401", "got 86401")] {
        let p = project();
        p.write(
            "m.toml",
            &format!(
                "name = \"x\"\n[source]\ntype = \"csv\"\npath = \"data\"\n[destination]\ntype = \"sqlite\"\npath = \"o.db\"\n[settings]\nstall_seconds = {seconds}\n[[tables]]\nsource = \"t\"\n"
            ),
        );
        let run = p.run(&["check", "m.toml"]);
        assert_eq!(run.code, 2, "{}", run.all());
        assert!(
            run.stderr
                .contains("settings.stall_seconds: must be between 1 and 86400 (a day)")
                && run.stderr.contains(got),
            "{}",
            run.all()
        );
    }
}

/// A CDC migration of `accounts` from `server` into SQLite, with
/// `stall_seconds = 2`, synced once.
fn synced_cdc(server: &LogicalPg) -> super::Project {
    let pg = Pg::connect_at(server.port, "postgres");
    pg.exec(
        "CREATE TABLE accounts (id int PRIMARY KEY, owner text);
         INSERT INTO accounts SELECT i, 'owner ' || i FROM generate_series(1, 100) i",
    );
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"stall-cdc\"\n[source]\ntype = \"postgres\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\ntls = \"disable\"\n[destination]\ntype = \"sqlite\"\npath = \"vault.db\"\n[settings]\nstall_seconds = 2\n[sync]\nmode = \"cdc\"\n[[tables]]\nsource = \"accounts\"\n",
            server.port
        ),
    );
    let first = p.run_within(&["sync", "m.toml"], Duration::from_secs(120));
    assert_eq!(first.code, 0, "{}", first.all());
    p
}

#[test]
fn a_cdc_source_that_stops_answering_is_given_up_on_when_its_slot_is_read() {
    let server = LogicalPg::start();
    let p = synced_cdc(&server);
    let frozen = Frozen::postgres(&server);
    // `status` reads the slot's health through the change feed alone (no
    // catalogue, no reader): without the watchdog it would wait on the
    // frozen server.
    let status = p.run_within(&["status", "m.toml"], Duration::from_secs(45));
    let removed = p.run_within(&["remove", "m.toml"], Duration::from_secs(45));
    drop(frozen);
    let named = format!(
        "source postgres postgres@127.0.0.1:{}/postgres",
        server.port
    );
    for out in [status.all(), removed.all()] {
        assert!(
            out.contains(&named)
                && out.contains("stopped answering")
                && out.contains("replication slot `credvault_stall_cdc`"),
            "{out}"
        );
    }
    assert_ne!(removed.code, 0, "{}", removed.all());
}
