//! Transient failures: a destination that restarts mid-run is retried and
//! every row lands once; a run stopped with Ctrl-C says what it committed
//! and resumes; a full disk names the table and the way out; a table moved
//! in key ranges is named as a person knows it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use credvault_tests::Project;

use super::project;
use super::servers::{LogicalPg, Pg, Scratch};

const ROWS: u64 = 200_000;

/// Table `big` of ROWS rows in the scratch schema of the shared server;
/// column `c` holds a number but in every 500th row `bad`.
fn big_source(s: &Scratch) {
    s.exec(&format!(
        "CREATE TABLE {{s}}.big (id bigint PRIMARY KEY, a int, b text, c text);
         INSERT INTO {{s}}.big SELECT i, i % 1000, md5(i::text),
           CASE WHEN i % 500 = 0 THEN 'bad' ELSE (i % 7)::text END
         FROM generate_series(1, {ROWS}) i;
         ANALYZE {{s}}.big"
    ));
}

/// `big` from the shared server into database `postgres` of `dest`, in
/// batches of 500, with more `[settings]` and `[[tables]]` lines.
fn into_throwaway(s: &Scratch, dest: &LogicalPg, settings: &str, table: &str) -> String {
    format!(
        "name = \"restarts\"\n{}[destination]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = {}\ndatabase = \"postgres\"\nuser = \"postgres\"\n[settings]\nbatch_size = 500\n{settings}\n[[tables]]\nsource = \"big\"\n{table}\n",
        s.endpoint("source", ""),
        dest.port
    )
}

/// Count, checksum and duplicate keys of a `big`-shaped table.
const FINGERPRINT: &str = "SELECT count(*), sum(hashtext(format('%s|%s|%s', id, a, b))), count(*) - count(DISTINCT id) FROM ";

fn source_fingerprint(s: &Scratch, only: &str) -> Vec<Option<String>> {
    s.rows(&format!("{FINGERPRINT} {{s}}.big {only}")).remove(0)
}

fn dest_fingerprint(dest: &LogicalPg) -> Vec<Option<String>> {
    let pg = Pg::connect_at(dest.port, "postgres");
    pg.rows(&format!("{FINGERPRINT} public.big")).remove(0)
}

/// Rows the destination has committed to `big` (0 before its checkpoint
/// table exists).
fn committed(pg: &Pg) -> u64 {
    pg.try_rows(
        "SELECT checkpoint->>'rows' FROM public._credvault_checkpoints WHERE table_name = 'big'",
    )
    .ok()
    .and_then(|rows| rows.into_iter().next())
    .and_then(|r| r.into_iter().next().flatten())
    .and_then(|n| n.parse().ok())
    .unwrap_or(0)
}

/// Waits until `enough` says the run is part-way; fails if it ended first.
fn wait_midway(child: &mut Child, enough: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !enough() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it was part-way; make the table bigger"
        );
        assert!(
            Instant::now() < deadline,
            "the run made no progress in 60 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The spawned run's exit code and stderr, once it ends (within 90 s).
fn outcome(p: &Project, mut child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the run still ran after 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stderr = std::fs::read_to_string(p.path().join("spawned.err")).unwrap_or_default();
    (status.code().unwrap_or(-1), stderr)
}

/// Lets the test hold a batch in flight: every checkpoint write (inside
/// each batch's transaction, after its rows) takes advisory lock 42 shared,
/// so while the test holds it the next batch waits mid-transaction. (Between
/// batches a restart is no failure: the pool reconnects by itself.)
const GATE: &str = "
CREATE TABLE public._credvault_checkpoints (migration text NOT NULL, table_name text NOT NULL,
  checkpoint jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (migration, table_name));
CREATE FUNCTION public.gate() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN PERFORM pg_advisory_xact_lock_shared(42); RETURN NEW; END $$;
CREATE TRIGGER gate BEFORE INSERT OR UPDATE ON public._credvault_checkpoints
  FOR EACH ROW EXECUTE FUNCTION public.gate();";

/// Starts a run of `big` into `dest`; once 5000 rows are committed, holds
/// the next batch in flight and stops `dest` for a second and a half, as a
/// restart does.
fn run_through_a_restart(p: &Project, dest: &LogicalPg) -> (i32, String) {
    let watch = Pg::connect_at(dest.port, "postgres");
    watch.exec(GATE);
    let mut child = p.spawn(&["run", "m.toml"]);
    wait_midway(&mut child, || committed(&watch) >= 5_000);
    watch.exec("SELECT pg_advisory_lock(42)");
    wait_midway(&mut child, || {
        watch.one("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'")
            != Some("0".into())
    });
    dest.stop();
    std::thread::sleep(Duration::from_millis(1500));
    dest.start_again();
    outcome(p, child)
}

#[test]
fn a_destination_restarting_mid_run_is_retried_and_every_row_lands_once() {
    let s = Scratch::new();
    big_source(&s);
    let dest = LogicalPg::start();
    let p = project();
    // Each batch of 500 holds one row whose `c` is no number, flagged
    // before the batch is written: the batch lost in the restart must not
    // leave its row flagged twice.
    let settings = "retries = 5\non_error = \"flag\"\nvalidate = false";
    let table = "[tables.columns.c]\ntype = \"int\"";
    p.write("m.toml", &into_throwaway(&s, &dest, settings, table));
    let (code, stderr) = run_through_a_restart(&p, &dest);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("retry 1 of 5 in") && stderr.contains("resuming `big` after row"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "destination postgres postgres@127.0.0.1:{}/postgres",
            dest.port
        )),
        "names the server: {stderr}"
    );
    let landed = dest_fingerprint(&dest);
    assert_eq!(landed[0].as_deref(), Some("199600"), "{stderr}");
    assert_eq!(landed[2].as_deref(), Some("0"), "no duplicate keys");
    assert_eq!(
        landed,
        source_fingerprint(&s, "WHERE id % 500 <> 0"),
        "same rows on both sides"
    );
    let flagged = p.query(
        ".credvault/state.db",
        "SELECT count(*), count(DISTINCT position) FROM flagged_rows",
    );
    assert_eq!(
        flagged[0][0].as_deref(),
        Some("400"),
        "each bad row flagged once"
    );
    assert_eq!(flagged[0][1], flagged[0][0]);
    let log = p
        .run_ok(&["log", "--migration", "restarts", "--limit", "1000"])
        .stdout;
    assert!(log.contains("table_retried"), "{log}");
    assert!(
        log.contains(r#""counts":{"dropped":0,"flagged":400,"read":200000,"skipped":0,"written":199600},"error":null,"status":"succeeded""#),
        "the run's counts hold each row once: {log}"
    );
    let status = p.run_ok(&["status", "--migration", "restarts"]).stdout;
    assert!(status.contains("succeeded"), "{status}");
}

#[test]
fn with_no_retries_a_lost_destination_says_that_the_next_run_resumes() {
    let s = Scratch::new();
    big_source(&s);
    let dest = LogicalPg::start();
    let p = project();
    p.write("m.toml", &into_throwaway(&s, &dest, "retries = 0", ""));
    let (code, stderr) = run_through_a_restart(&p, &dest);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("`credvault run FILE` resumes `big` after its last committed batch"),
        "{stderr}"
    );
    assert!(
        stderr.contains("once the server is back") && !stderr.contains("retry 1"),
        "{stderr}"
    );
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stderr.contains("big: resuming after row"),
        "{}",
        run.all()
    );
    let landed = dest_fingerprint(&dest);
    assert_eq!(landed[2].as_deref(), Some("0"), "no duplicate keys");
    assert_eq!(
        landed,
        source_fingerprint(&s, ""),
        "same rows on both sides"
    );
}

/// CSV → SQLite in batches of 500, of ROWS people.
const CSV_TO_SQLITE: &str = r#"name = "stop-me"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
batch_size = 500
[[tables]]
source = "people"
[tables.columns.id]
type = "int"
"#;

fn people_csv(p: &Project, rows: u64, pad: usize) {
    let filler = "x".repeat(pad);
    let rows: Vec<String> = (1..=rows)
        .map(|i| format!("{i},name {i} {filler},{}", i % 97))
        .collect();
    p.csv("people", "id,name,score", &rows);
}

/// Ids 1..=rows each in the destination exactly once.
fn every_id_once(p: &Project, rows: u64) {
    let check = p.query(
        "out/vault.db",
        "SELECT count(*), count(DISTINCT id), sum(id) FROM people",
    );
    assert_eq!(check[0][0].as_deref(), Some(rows.to_string().as_str()));
    assert_eq!(check[0][1], check[0][0], "no duplicates");
    assert_eq!(
        check[0][2].as_deref(),
        Some((rows * (rows + 1) / 2).to_string().as_str())
    );
}

#[test]
fn ctrl_c_says_what_was_committed_and_the_next_run_resumes() {
    let p = project();
    people_csv(&p, ROWS, 0);
    p.write("m.toml", CSV_TO_SQLITE);
    let (code, stderr) = interrupt(&p, "INT");
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains("interrupted by SIGINT: batches in flight were rolled back"),
        "{stderr}"
    );
    let line = stderr
        .lines()
        .find(|l| l.contains("people:") && l.contains(&format!("of {ROWS} rows committed")))
        .unwrap_or_else(|| panic!("no line with the committed rows: {stderr}"));
    let said: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    let committed = super::resume::committed_rows(&p, "out/vault.db");
    assert!(
        said >= 20_000 && said <= committed && committed < ROWS,
        "said {said}, the destination committed {committed}"
    );
    assert!(
        stderr.contains("`credvault run m.toml` resumes after the committed rows"),
        "{stderr}"
    );
    let status = p.run_ok(&["status", "--migration", "stop-me"]).stdout;
    assert!(status.contains("interrupted"), "{status}");
    let log = p.run_ok(&["log", "--migration", "stop-me"]).stdout;
    assert!(log.contains("run_interrupted"), "{log}");
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stderr.contains("resuming interrupted run 1"),
        "{}",
        run.all()
    );
    every_id_once(&p, ROWS);
}

/// Starts `credvault run m.toml` and sends it SIG`signal` once 20,000 rows
/// are committed; its exit code and stderr.
fn interrupt(p: &Project, signal: &str) -> (i32, String) {
    let mut child = p.spawn(&["run", "m.toml"]);
    wait_midway(&mut child, || {
        super::resume::committed_rows(p, "out/vault.db") >= 20_000
    });
    let sent = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .expect("running kill");
    assert!(sent.success());
    outcome(p, child)
}

#[test]
fn sigterm_stops_a_run_as_ctrl_c_does() {
    let p = project();
    people_csv(&p, ROWS, 0);
    p.write("m.toml", &CSV_TO_SQLITE.replace("stop-me", "term-me"));
    let (code, stderr) = interrupt(&p, "TERM");
    assert_eq!(code, 143, "{stderr}");
    assert!(
        stderr.contains("run 1 of `term-me` interrupted by SIGTERM")
            && stderr.contains("`credvault run m.toml` resumes after the committed rows"),
        "{stderr}"
    );
    let status = p.run_ok(&["status", "--migration", "term-me"]).stdout;
    assert!(status.contains("interrupted"), "{status}");
    p.run_ok(&["run", "m.toml"]);
    every_id_once(&p, ROWS);
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("running mount");
        assert!(mounted.success(), "mounting a tmpfs needs root");
        Self(dir.to_path_buf())
    }

    fn grow(&self, size: &str) {
        let grown = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .expect("running mount");
        assert!(grown.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_names_the_table_and_the_way_out_and_the_run_resumes() {
    let p = project();
    let rows = 40_000;
    people_csv(&p, rows, 100);
    p.write("m.toml", &CSV_TO_SQLITE.replace("stop-me", "fill-me"));
    let disk = SmallDisk::mount(&p.path().join("out"), "2m");
    // The pre-run check sees the disk is too small; start anyway.
    let full = p.run(&["run", "m.toml", "--force"]);
    assert_eq!(full.code, 1, "{}", full.all());
    let out = p.path().join("out").canonicalize().unwrap();
    for needed in [
        "destination sqlite out/vault.db: table `people`: the disk is full".to_string(),
        format!("free space on the filesystem of {}", out.display()),
        "or move the destination (`path`) to a disk with room".into(),
        "then `credvault run FILE` resumes `people` after its last committed batch".into(),
    ] {
        assert!(full.stderr.contains(&needed), "{needed}: {}", full.all());
    }
    assert!(
        !full.stderr.contains("stopped on a failed row"),
        "{}",
        full.all()
    );
    disk.grow("64m");
    let run = p.run_ok(&["run", "m.toml"]);
    assert!(
        run.stderr.contains("people: resuming after row"),
        "{}",
        run.all()
    );
    every_id_once(&p, rows);
}

#[test]
fn a_failing_key_range_is_named_by_its_table_and_rows() {
    let s = Scratch::new();
    s.exec(
        "CREATE TABLE {s}.big (id bigint PRIMARY KEY, a int, b text);
         INSERT INTO {s}.big SELECT i, i, 'x' || i FROM generate_series(1, 8000) i;
         ANALYZE {s}.big;
         CREATE SCHEMA {s}_out;
         CREATE TABLE {s}_out._credvault_checkpoints (migration text NOT NULL, table_name text NOT NULL,
           checkpoint jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (migration, table_name));
         CREATE FUNCTION {s}_out.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
           BEGIN
             IF NEW.table_name LIKE '%#3/%' AND (NEW.checkpoint->>'rows')::int > 0 THEN
               RAISE EXCEPTION 'no more room in this tablespace';
             END IF;
             RETURN NEW;
           END $$;
         CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON {s}_out._credvault_checkpoints
           FOR EACH ROW EXECUTE FUNCTION {s}_out.refuse();",
    );
    let out = format!("{}_out", s.schema);
    let p = project();
    p.write(
        "m.toml",
        &format!(
            "name = \"ranges\"\n{}[destination]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = 5432\ndatabase = \"test\"\nuser = \"postgres\"\nschema = \"{out}\"\n[settings]\nbatch_size = 500\nsplit_rows = 2000\n[[tables]]\nsource = \"big\"\n",
            s.endpoint("source", "")
        ),
    );
    let run = p.run(&["run", "m.toml"]);
    s.exec(&format!("DROP SCHEMA {out} CASCADE"));
    assert_eq!(run.code, 1, "{}", run.all());
    assert!(!run.all().contains("big#"), "{}", run.all());
    assert!(
        run.stderr.contains(
            "table `big` (rows with id from 4001 to 6000): no more room in this tablespace"
        ),
        "{}",
        run.all()
    );
    let log = p.run_ok(&["log", "--migration", "ranges"]).stdout;
    assert!(!log.contains("big#"), "{log}");
}
