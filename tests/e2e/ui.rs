//! The web dashboard of `credvault serve --ui`, clicked through in a real
//! headless chromium: a run followed live to 100 %, its flagged rows
//! exported (the same bytes as `credvault flagged export`) and retried
//! (failing again, and once fixed written), a rollback
//! confirmed and checked in the destination, a sync paused and resumed;
//! and state changes refused from other origins, by raw HTTP requests.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use credvault_tests::browser::{Browser, http};
use credvault_tests::{Project, people};

use super::project;

/// Rows in the source table; rows 7 and 1234 have a score that is no int.
const ROWS: usize = 20_000;

/// A one-time CSV → SQLite migration that flags bad rows, and a
/// continuous one synced hourly.
fn dashboard_project() -> Project {
    let p = project();
    let mut rows = people(ROWS);
    rows[6] = "7,person 7,thirty".into();
    rows[1233] = "1234,person 1234,lots".into();
    p.csv("people", "id,name,score", &rows);
    p.write("m.toml", &migration("people-move", "out/vault.db", ""));
    p.write(
        "s.toml",
        &migration(
            "people-sync",
            "out/sync.db",
            "[sync]\nkind = \"continuous\"\nevery = \"1h\"\n",
        ),
    );
    p
}

fn migration(name: &str, destination: &str, sync: &str) -> String {
    format!(
        r#"name = "{name}"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "{destination}"
[settings]
on_error = "flag"
batch_size = 500
{sync}[[tables]]
source = "people"
key = ["id"]
if_exists = "replace"
[tables.columns.id]
type = "int"
[tables.columns.score]
type = "int"
"#
    )
}

/// `credvault serve --ui` on a free port; its address (`127.0.0.1:port`).
struct Served {
    child: Child,
    addr: String,
    /// What it printed on stderr so far.
    said: Arc<Mutex<Vec<String>>>,
}

impl Served {
    fn start(p: &Project, extra: &[&str]) -> Self {
        Self::listening(p, "127.0.0.1:0", extra)
    }

    fn listening(p: &Project, listen: &str, extra: &[&str]) -> Self {
        let mut args = vec!["serve", "--ui", "--listen", listen];
        args.extend_from_slice(extra);
        args.extend_from_slice(&["m.toml", "s.toml"]);
        let mut child = p.spawn_with_stderr(&args);
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let said = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&said);
        // Reads stderr to its end, so serve never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("dashboard: http://") {
                    let _ = tx.send(url.trim_end_matches('/').to_string());
                }
                kept.lock().unwrap().push(line);
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("serve --ui announces the dashboard's address on stderr");
        Self { child, addr, said }
    }

    /// The lines it printed on stderr that contain `text`.
    fn said(&self, text: &str) -> Vec<String> {
        let said = self.said.lock().unwrap();
        said.iter().filter(|l| l.contains(text)).cloned().collect()
    }

    /// Waits until the scheduler's first sync of `people-sync` (made at
    /// once) is done, so a click does not meet it (and a 409).
    fn after_first_sync(self, p: &Project) -> Self {
        p.wait_logged("people-sync", "synced", 1);
        self
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops it as SIGTERM does, and checks it exits cleanly.
    fn stop(mut self) {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let status = self.child.wait().expect("waiting for serve");
        assert!(status.success(), "serve exits 0 on SIGTERM: {status:?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn count(p: &Project, db: &str) -> usize {
    p.query(db, "SELECT count(*) FROM people")[0][0]
        .as_deref()
        .and_then(|n| n.parse().ok())
        .expect("a count")
}

/// The cells of the retry result page's table, once it shows.
fn retry_result(b: &Browser) -> serde_json::Value {
    b.wait("the retry", || b.text("#retry-result tbody"));
    b.script(
        "return Array.from(document.querySelectorAll('#retry-result tbody td'), td => td.textContent);",
        serde_json::json!([]),
    )
}

/// Clicks "Run now" on the open migration page and waits for the outcome.
fn run_now(b: &Browser) -> String {
    // The page shows the previous outcome until the click's page loads.
    b.script(
        "delete document.getElementById('live').dataset.outcome;",
        serde_json::json!([]),
    );
    b.click("#run-now");
    b.wait("the run's outcome", || {
        let done = b.script(
            "return document.getElementById('live').dataset.outcome || null;",
            serde_json::json!([]),
        );
        done.as_str().map(str::to_string)
    })
}

#[test]
fn a_run_its_flagged_rows_and_a_rollback_clicked_through_in_a_browser() {
    let p = dashboard_project();
    let served = Served::start(&p, &[]).after_first_sync(&p);
    let b = Browser::start();

    // The list: both migrations, their kinds and schedules.
    b.goto(&served.url("/"));
    let list = b.text("#migrations").expect("the migrations table");
    assert!(
        list.contains("people-move") && list.contains("one-time"),
        "{list}"
    );
    assert!(list.contains("continuous, every 1h"), "{list}");
    assert!(list.contains("not scheduled (one-time)"), "{list}");

    // A run, followed live to 100 %.
    b.click("a[href='/m/people-move']");
    b.wait("the migration page", || {
        b.text("h1").filter(|h| h == "people-move")
    });
    assert_eq!(run_now(&b), "ok", "{:?}", b.text("#live"));
    let progress = b.text("#progress tbody tr").expect("a progress row");
    assert!(progress.contains("100%"), "{progress}");
    assert!(progress.contains("20,000 / 20,000"), "{progress}");
    let failures = b.text("#failures").unwrap_or_default();
    assert!(
        failures.contains("row 7 (id=7)") && failures.contains("expected int"),
        "{failures}"
    );
    assert_eq!(count(&p, "out/vault.db"), ROWS - 2);

    // After the run: its validation, flagged rows and restore point.
    b.click("#refresh");
    b.wait("the validation", || {
        b.text("#validation").filter(|v| v.contains("passed"))
    });
    let validation = b.text("#validation").unwrap_or_default();
    assert!(validation.contains("row count"), "{validation}");
    let flagged = b.text("#flagged").unwrap_or_default();
    assert!(
        flagged.contains("thirty") && flagged.contains("lots"),
        "{flagged}"
    );

    // The export is what `credvault flagged export` writes.
    b.click("#export-csv");
    let csv = std::fs::read_to_string(b.downloaded("people-move-flagged.csv")).expect("the CSV");
    let cli = p.run_ok(&[
        "flagged",
        "export",
        "--migration",
        "people-move",
        "--format",
        "csv",
    ]);
    assert_eq!(csv, cli.stdout);
    assert!(csv.starts_with("id,run,migration,table,position,key,stage,column,value,error"));
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let jsonl = http(&served.addr, "GET", "/m/people-move/flagged.jsonl", &[], "");
    assert_eq!(jsonl.status, 200);
    assert!(
        jsonl
            .header("content-disposition")
            .unwrap_or("")
            .contains("attachment")
    );
    let cli = p.run_ok(&["flagged", "export", "--migration", "people-move"]);
    assert_eq!(jsonl.body, cli.stdout);

    // A row retried from its button: the migration is unchanged, so it
    // fails again and stays flagged, as `credvault flagged retry` says.
    b.click("#flagged tbody tr button");
    let cells = retry_result(&b);
    assert_eq!(
        cells,
        serde_json::json!(["people", "1", "0", "0", "0", "1"])
    );
    b.click("#back");
    b.wait("the audit log", || {
        b.text("#audit").filter(|a| a.contains("flagged_retried"))
    });
    let open = p.run_ok(&["flagged", "list", "--migration", "people-move", "--json"]);
    assert_eq!(open.stdout.lines().count(), 2, "{}", open.all());
    assert!(open.stdout.contains("\"retries\":1"), "{}", open.all());

    // Row 7 fixed in the JSONL export and uploaded: only the rows in the
    // file are retried, and row 7 lands with its fixed value.
    b.click("#refresh");
    b.click("#export-jsonl");
    let export = std::fs::read_to_string(b.downloaded("people-move-flagged.jsonl")).unwrap();
    let line = export.lines().find(|l| l.contains("thirty")).unwrap();
    let fixed = p.write("fixed.jsonl", &line.replace("\"thirty\"", "\"30\""));
    let not_jsonl = p.write("fixed.csv", "id,score\n7,30\n");
    b.upload("#fixed-file", &not_jsonl);
    b.click("#retry-fixed");
    let refused = b.wait("the refusal", || b.text("#failure"));
    assert!(
        refused.starts_with("the fixed file: line 1:") && refused.contains("JSON lines"),
        "{refused}"
    );
    b.goto(&served.url("/m/people-move"));
    b.upload("#fixed-file", &fixed);
    b.click("#retry-fixed");
    let cells = retry_result(&b);
    assert_eq!(
        cells,
        serde_json::json!(["people", "1", "1", "0", "0", "0"])
    );
    let score = p.query("out/vault.db", "SELECT score FROM people WHERE id = 7");
    assert_eq!(score[0][0].as_deref(), Some("30"));
    let open = p.run_ok(&["flagged", "list", "--migration", "people-move", "--json"]);
    assert_eq!(open.stdout.lines().count(), 1, "{}", open.all());
    assert!(open.stdout.contains("lots"), "{}", open.all());
    b.click("#back");

    // A second run with fewer rows, then a rollback to the point it made.
    p.csv("people", "id,name,score", &people(10));
    assert_eq!(run_now(&b), "ok", "{:?}", b.text("#live"));
    assert_eq!(count(&p, "out/vault.db"), 10);
    b.click("#refresh");
    b.click("#restore-points tbody tr a.danger");
    b.wait("the confirmation", || {
        b.text("h1").filter(|h| h.starts_with("Roll back"))
    });
    let question = b.text("main").unwrap_or_default();
    assert!(
        question.contains(&format!("back to {} rows", ROWS - 1)),
        "{question}"
    );
    assert_eq!(
        count(&p, "out/vault.db"),
        10,
        "nothing happens before the confirmation"
    );
    b.click("#confirm-rollback");
    let result = b.wait("the rollback", || b.text("#rollback-result"));
    assert!(result.contains("passed"), "{result}");
    assert_eq!(count(&p, "out/vault.db"), ROWS - 1);
    b.click("#back");
    b.wait("the audit log", || {
        b.text("#audit").filter(|a| a.contains("rolled_back"))
    });

    // A sync from the dashboard, as `credvault sync` does it.
    b.goto(&served.url("/m/people-sync"));
    assert_eq!(run_now(&b), "ok", "{:?}", b.text("#live"));
    b.click("#refresh");
    let flagged = b.text("#flagged").unwrap_or_default();
    assert!(
        flagged.contains("thirty"),
        "the first sync's flags: {flagged}"
    );
    assert!(
        !flagged.contains("credvault_stage"),
        "a sync's rows name the table, not its scratch copy: {flagged}"
    );
    let forms = b.script(
        "return document.querySelectorAll('#flagged form').length;",
        serde_json::json!([]),
    );
    assert_eq!(forms, 0, "a sync's flagged rows have no Retry: {flagged}");
    let synced = b.text("#live-status").unwrap_or_default();
    assert!(synced.contains("sync 2 succeeded"), "{synced}");
    assert_eq!(count(&p, "out/sync.db"), 10, "the source holds 10 rows now");
    // Its syncs, the schedule's first and this one, with what they changed.
    let syncs = b.script(
        "return Array.from(document.querySelectorAll('#syncs tbody tr'), tr => tr.cells[3].textContent + ' ' + tr.cells[6].textContent);",
        serde_json::json!([]),
    );
    assert_eq!(
        syncs,
        serde_json::json!([format!("succeeded {}", ROWS - 2 - 9), "succeeded 0"]),
        "newest first; the second deleted all rows but 1–10 (of which 7 was flagged, and is new)"
    );

    // Pause and resume a sync.
    b.click("#pause");
    b.wait("the resume button", || b.text("#resume"));
    assert!(b.text("#status").unwrap_or_default().contains("paused"));
    assert!(b.text("#audit").unwrap_or_default().contains("paused"));
    let status = p.run_ok(&["status", "--migration", "people-sync"]);
    assert!(status.stdout.contains("paused since"), "{}", status.all());
    b.click("#resume");
    b.wait("the pause button", || b.text("#pause"));
    assert!(b.text("#audit").unwrap_or_default().contains("resumed"));
    let status = p.run_ok(&["status", "--migration", "people-sync"]);
    assert!(!status.stdout.contains("paused since"), "{}", status.all());

    // SIGTERM with a page's live stream still open: serve exits cleanly.
    served.stop();
    drop(b);
}

#[test]
fn state_changes_from_another_origin_are_refused() {
    let p = dashboard_project();
    let served = Served::start(&p, &[]);
    let addr = served.addr.as_str();
    let own = format!("http://{addr}");
    let pause = "/m/people-sync/pause";
    let paused = || {
        p.run_ok(&["log", "--migration", "people-sync"])
            .stdout
            .contains("paused")
    };

    let evil = http(
        addr,
        "POST",
        pause,
        &[("Origin", "http://evil.example")],
        "",
    );
    assert_eq!(evil.status, 403, "{evil:?}");
    assert!(
        evil.body
            .contains("must come from the dashboard's own pages"),
        "{evil:?}"
    );
    let lookalike = format!("{own}0");
    let near = http(addr, "POST", pause, &[("Origin", lookalike.as_str())], "");
    assert_eq!(near.status, 403, "{near:?}");
    let bare = http(addr, "POST", pause, &[], "");
    assert_eq!(bare.status, 403, "no Origin and no Referer: {bare:?}");
    let foreign_referer = http(
        addr,
        "POST",
        pause,
        &[("Referer", "http://evil.example/x")],
        "",
    );
    assert_eq!(foreign_referer.status, 403, "{foreign_referer:?}");
    let port = addr.rsplit(':').next().unwrap_or_default();
    let rebound_host = format!("evil.example:{port}");
    let rebound = http(addr, "GET", "/", &[("Host", rebound_host.as_str())], "");
    assert_eq!(
        rebound.status, 403,
        "another Host (DNS rebinding): {rebound:?}"
    );
    let by_get = http(addr, "GET", pause, &[], "");
    assert_eq!(
        by_get.status, 405,
        "state changes are POST only: {by_get:?}"
    );
    let unconfirmed = http(
        addr,
        "POST",
        "/m/people-move/rollback",
        &[
            ("Origin", own.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        "to=whatever",
    );
    assert_eq!(unconfirmed.status, 400, "{unconfirmed:?}");
    let upload = "--b\r\nContent-Disposition: form-data; name=\"fixed\"; filename=\"f.jsonl\"\r\n\r\n{\"id\":1,\"row\":{}}\r\n--b--\r\n";
    let evil_upload = http(
        addr,
        "POST",
        "/m/people-move/flagged/retry-fixed",
        &[
            ("Origin", "http://evil.example"),
            ("Content-Type", "multipart/form-data; boundary=b"),
        ],
        upload,
    );
    assert_eq!(evil_upload.status, 403, "{evil_upload:?}");
    let log = p.run_ok(&["log", "--migration", "people-move"]).stdout;
    assert!(!log.contains("flagged_retried"), "{log}");
    // No page may be framed by another site, which could trick a click.
    for page in [&evil, &http(addr, "GET", "/m/people-move", &[], "")] {
        assert_eq!(page.header("x-frame-options"), Some("DENY"), "{page:?}");
        let policy = page.header("content-security-policy").unwrap_or("");
        assert!(policy.contains("frame-ancestors 'none'"), "{page:?}");
    }
    assert!(!paused(), "nothing was paused by refused requests");

    let referer = format!("{own}/m/people-sync");
    let ok = http(addr, "POST", pause, &[("Referer", referer.as_str())], "");
    assert_eq!(ok.status, 303, "{ok:?}");
    assert!(paused());
    let ok = http(
        addr,
        "POST",
        "/m/people-sync/resume",
        &[("Origin", own.as_str())],
        "",
    );
    assert_eq!(ok.status, 303, "{ok:?}");
    served.stop();
}

#[test]
fn a_run_killed_outright_shows_as_interrupted_not_running() {
    let p = dashboard_project();
    p.csv("people", "id,name,score", &people(50));
    let m =
        migration("people-move", "out/vault.db", "").replace("batch_size = 500", "batch_size = 1");
    p.write("m.toml", &format!("{m}{}", slow_transform(30)));
    let mut shell = p.spawn(&["run", "m.toml"]);
    p.wait_logged("people-move", "run_started", 1);
    let served = Served::start(&p, &[]);
    let page = || http(&served.addr, "GET", "/m/people-move", &[], "").body;
    let running = page();
    assert!(
        running.contains("<span class=\"badge warn\">running</span>"),
        "{running}"
    );
    shell.kill().expect("SIGKILL");
    shell.wait().expect("reaped");
    let cut = page();
    assert!(
        cut.contains("interrupted (the next run resumes it)"),
        "{cut}"
    );
    assert!(!cut.contains(">running<"), "{cut}");
    served.stop();
}

#[test]
fn a_run_whose_validation_failed_is_not_shown_as_a_success() {
    let p = dashboard_project();
    p.csv("people", "id,name,score", &people(50));
    p.run_ok(&["run", "m.toml"]);
    credvault_tests::exec_sqlite(
        &p.path().join("out/vault.db"),
        "UPDATE people SET score = score + 1 WHERE id = 5",
    );
    assert_eq!(p.run(&["validate", "m.toml"]).code, 1);
    let served = Served::start(&p, &[]);
    for path in ["/", "/m/people-move"] {
        let page = http(&served.addr, "GET", path, &[], "");
        assert!(
            page.body
                .contains("<span class=\"badge bad\">run succeeded, validation failed</span>"),
            "{path}: {}",
            page.body
        );
    }
    served.stop();
}

#[test]
fn the_dashboard_listens_only_on_loopback_unless_told() {
    let p = dashboard_project();
    let run = p.run(&["serve", "--ui", "--listen", "0.0.0.0:0", "m.toml"]);
    assert_eq!(run.code, 2, "{}", run.all());
    assert!(
        run.stderr
            .contains("refusing to serve the dashboard on 0.0.0.0:0")
            && run.stderr.contains("--allow-remote"),
        "{}",
        run.all()
    );
    let unnamed = p.run(&[
        "serve",
        "--ui",
        "--listen",
        "0.0.0.0:0",
        "--allow-remote",
        "m.toml",
    ]);
    assert_eq!(unnamed.code, 2, "{}", unnamed.all());
    assert!(
        unnamed.stderr.contains("would answer no one") && unnamed.stderr.contains("--origin"),
        "{}",
        unnamed.all()
    );
    let public = "https://migrations.example.com";
    let served = Served::listening(&p, "0.0.0.0:0", &["--allow-remote", "--origin", public]);
    let addr = served.addr.as_str();
    let by_ip = http(addr, "GET", "/", &[], "");
    assert_eq!(by_ip.status, 403, "0.0.0.0 is no name: {by_ip:?}");
    let proxied = [("Host", "migrations.example.com"), ("Origin", public)];
    let page = http(addr, "GET", "/", &proxied[..1], "");
    assert_eq!(page.status, 200, "{page:?}");
    let pause = http(addr, "POST", "/m/people-sync/pause", &proxied, "");
    assert_eq!(pause.status, 303, "{pause:?}");
    served.stop();
}

#[test]
fn a_click_waits_for_a_scheduled_sync_of_its_own_migration_only() {
    let p = dashboard_project();
    let slow = slow_transform(3);
    let sync = migration(
        "people-sync",
        "out/sync.db",
        "[sync]\nkind = \"continuous\"\nevery = \"1h\"\n",
    );
    p.write("s.toml", &format!("{sync}{slow}"));
    let served = Served::start(&p, &[]);
    let addr = served.addr.as_str();
    let own = format!("http://{addr}");
    p.wait_logged("people-sync", "sync_started", 1);
    let form = [
        ("Origin", own.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    for path in ["/m/people-sync/run", "/m/people-sync/flagged/retry"] {
        let click = http(addr, "POST", path, &form, "");
        assert_eq!(click.status, 409, "{path}: {click:?}");
        assert!(
            click
                .body
                .contains("of `people-sync` is still going (started here or by the schedule)"),
            "{click:?}"
        );
    }
    // Another migration's turn is its own: it runs beside the sync.
    let click = http(addr, "POST", "/m/people-move/run", &form, "");
    assert_eq!(click.status, 303, "{click:?}");
    p.wait_logged("people-move", "run_finished", 1);
    p.wait_logged("people-sync", "synced", 1);
    let click = http(addr, "POST", "/m/people-sync/run", &form, "");
    assert_eq!(click.status, 303, "its turn came: {click:?}");
    served.stop();
}

/// A transform that sleeps on row 2 until its `seconds` limit.
fn slow_transform(seconds: u32) -> String {
    format!(
        "[[tables.transforms]]\nplugin = {:?}\nconfig = {{ mode = \"sleep\", trigger = \"2\" }}\nlimits = {{ timeout_ms = {} }}\n",
        credvault_tests::guests::HOSTILE,
        seconds * 1000
    )
}

#[test]
fn serve_waits_for_a_run_another_process_holds() {
    let p = dashboard_project();
    p.csv("people", "id,name,score", &people(50));
    // One row a batch, so the sleeping row costs one timeout, not one
    // per step of isolating it in its batch.
    let sync = migration(
        "people-sync",
        "out/sync.db",
        "[sync]\nkind = \"continuous\"\nevery = \"1h\"\n",
    )
    .replace("batch_size = 500", "batch_size = 1");
    p.write("s.toml", &format!("{sync}{}", slow_transform(4)));
    let mut shell = p.spawn(&["run", "s.toml"]);
    p.wait_logged("people-sync", "run_started", 1);
    let served = Served::start(&p, &[]);
    let own = format!("http://{}", served.addr);
    let click = http(
        &served.addr,
        "POST",
        "/m/people-sync/run",
        &[("Origin", own.as_str())],
        "",
    );
    assert_eq!(click.status, 409, "{click:?}");
    let holder = format!(
        "migration `people-sync` is busy: `credvault run` (pid {}, user ",
        shell.id()
    );
    assert!(click.body.contains(&holder), "{click:?}");
    assert!(shell.wait().expect("the shell's run").success());
    // The scheduler found the sync due, said once that it waits, and
    // synced as soon as the run let go.
    p.wait_logged("people-sync", "synced", 1);
    assert_eq!(served.said(&holder).len(), 1, "{:?}", served.said(""));
    let log = p.run_ok(&["log", "--migration", "people-sync"]).stdout;
    let finished = log.find(" run_finished ").expect("the run finished");
    let synced = log.find(" sync_started ").expect("the sync started");
    assert!(finished < synced, "the sync started after the run:\n{log}");
    served.stop();
}

#[test]
fn a_row_the_destination_refused_is_retried_from_its_button_once_fixed() {
    let p = project();
    p.csv("people", "id,name,score", &people(5));
    p.write(
        "m.toml",
        &migration("people-move", "out/vault.db", "")
            .replace("if_exists = \"replace\"", "if_exists = \"append\""),
    );
    p.write("s.toml", &migration("people-sync", "out/sync.db", ""));
    std::fs::create_dir_all(p.path().join("out")).unwrap();
    let db = p.path().join("out/vault.db");
    credvault_tests::exec_sqlite(
        &db,
        "CREATE TABLE people (id INTEGER, name TEXT, score INTEGER);
         CREATE TRIGGER no_thirty BEFORE INSERT ON people WHEN NEW.score = 30
         BEGIN SELECT RAISE(ABORT, 'score 30 is reserved'); END;",
    );
    let served = Served::start(&p, &[]);
    let b = Browser::start();
    b.goto(&served.url("/m/people-move"));
    assert_eq!(run_now(&b), "ok", "{:?}", b.text("#live"));
    b.click("#refresh");
    let flagged = b.text("#flagged").unwrap_or_default();
    assert!(flagged.contains("score 30 is reserved"), "{flagged}");
    assert_eq!(count(&p, "out/vault.db"), 4);

    credvault_tests::exec_sqlite(&db, "DROP TRIGGER no_thirty");
    b.click("#flagged tbody tr button");
    let cells = retry_result(&b);
    assert_eq!(
        cells,
        serde_json::json!(["people", "1", "1", "0", "0", "0"])
    );
    assert_eq!(count(&p, "out/vault.db"), 5);
    b.click("#back");
    let flagged = b.wait("the flagged rows", || b.text("#flagged"));
    assert!(flagged.contains("none"), "{flagged}");
    served.stop();
}

#[test]
fn edits_to_a_migration_file_apply_without_restarting_serve() {
    let p = dashboard_project();
    let served = Served::start(&p, &[]).after_first_sync(&p);
    let addr = served.addr.as_str();
    let own = format!("http://{addr}");
    let form = [
        ("Origin", own.as_str()),
        ("Content-Type", "application/x-www-form-urlencoded"),
    ];
    let run = http(addr, "POST", "/m/people-move/run", &form, "");
    assert_eq!(run.status, 303, "{run:?}");
    p.wait_logged("people-move", "validated", 1);
    assert_eq!(count(&p, "out/vault.db"), ROWS - 2);

    // The fix goes into the file; the dashboard's Retry uses it at once.
    let fixed = migration("people-move", "out/vault.db", "").replace(
        "[tables.columns.score]\ntype = \"int\"",
        "[tables.columns.score]\ntype = \"int\"\nmap = { thirty = 30, lots = 1000 }\nunmapped = \"keep\"",
    );
    p.write("m.toml", &fixed);
    // The run's thread may still hold its turn a moment after `validated`.
    let started = std::time::Instant::now();
    let retry = loop {
        let retry = http(addr, "POST", "/m/people-move/flagged/retry", &form, "");
        if retry.status != 409 || started.elapsed() > Duration::from_secs(60) {
            break retry;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(retry.status, 200, "{retry:?}");
    assert!(
        retry.body.contains("<td>people</td><td>2</td><td>2</td>"),
        "{}",
        retry.body
    );
    assert_eq!(count(&p, "out/vault.db"), ROWS);

    // A file that no longer reads is refused, not acted on in an old version.
    p.write("m.toml", "name = \"people-move\"\n[source\n");
    let page = http(addr, "GET", "/m/people-move", &[], "");
    assert_eq!(page.status, 409, "{page:?}");
    assert!(page.body.contains("m.toml"), "{}", page.body);
    let run = http(addr, "POST", "/m/people-move/run", &form, "");
    assert_eq!(run.status, 409, "{run:?}");

    // A new schedule applies to the next look of the scheduler.
    p.wait_logged("people-sync", "synced", 1);
    p.write(
        "s.toml",
        &migration(
            "people-sync",
            "out/sync.db",
            "[sync]\nkind = \"continuous\"\nevery = \"1s\"\n",
        ),
    );
    p.wait_logged("people-sync", "synced", 2);
    served.stop();
}

#[test]
fn runs_are_numbered_per_migration_and_dry_runs_and_rollbacks_are_told_apart() {
    let p = dashboard_project();
    let dry = p.run_ok(&["run", "m.toml", "--dry-run"]);
    assert!(
        dry.stdout.contains("run 1 succeeded") && dry.stdout.contains("2 flagged"),
        "{}",
        dry.all()
    );
    // The real run is the migration's first, whatever the store saw before.
    let first = p.run_ok(&["run", "m.toml"]);
    assert!(
        first
            .stdout
            .contains("migration `people-move` run 1 succeeded"),
        "{}",
        first.all()
    );
    assert!(
        first.stdout.contains("validation of `people-move`: passed"),
        "{}",
        first.all()
    );

    // A dry run's flagged rows are kept apart from the real run's.
    let rows = p.flagged_list(&["--migration", "people-move"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter()
            .all(|r| r.contains(" run 1 people-move.people ")),
        "{rows:?}"
    );
    let rows = p.flagged_list(&["--migration", "people-move", "--dry-run"]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().all(|r| r.contains("people-move#dry-run")),
        "{rows:?}"
    );
    let by_run = p.flagged_list(&["--migration", "people-move", "--run", "1"]);
    assert_eq!(by_run.len(), 2, "{by_run:?}");

    // A second run, then a rollback to the point made before it.
    let second = p.run_ok(&["run", "m.toml"]);
    assert!(
        second.stdout.contains("run 2 succeeded"),
        "{}",
        second.all()
    );
    p.run_ok(&["rollback", "m.toml"]);
    let status = p.run_ok(&["status", "--migration", "people-move"]).stdout;
    let line = status
        .lines()
        .find(|l| l.starts_with("people-move: last run"))
        .unwrap_or_else(|| panic!("no last run line in:\n{status}"));
    assert!(line.contains("last run 2 "), "{line}");
    assert!(line.contains("rolled back to people-move-"), "{line}");
    assert!(!line.contains("validation passed"), "{line}");

    let served = Served::start(&p, &[]).after_first_sync(&p);
    let page = http(&served.addr, "GET", "/m/people-move", &[], "").body;
    assert!(page.contains("id=\"validation-rolled-back\""), "{page}");
    let verdict = page
        .split("<section id=\"validation\">")
        .nth(1)
        .and_then(|s| s.split("</p>").next())
        .unwrap_or_default();
    assert!(
        verdict.contains("out of date") && !verdict.contains(">passed<"),
        "{verdict}"
    );
    assert!(verdict.contains("of run 2"), "{verdict}");
    assert!(
        page.contains("id=\"dry-run-flagged\">2 more flagged by dry runs"),
        "{page}"
    );
    let list = http(&served.addr, "GET", "/", &[], "").body;
    assert!(list.contains("rolled back to people-move-"), "{list}");
    served.stop();
}

#[test]
fn a_run_number_picks_the_migrations_own_run_not_its_syncs() {
    let p = dashboard_project();
    p.run_ok(&["run", "s.toml"]);
    p.run_ok(&["sync", "s.toml"]);
    let every = p.flagged_list(&["--migration", "people-sync"]);
    assert_eq!(
        every.len(),
        4,
        "the run's two and the sync's two: {every:?}"
    );
    let first = p.flagged_list(&["--migration", "people-sync", "--run", "1"]);
    assert_eq!(first.len(), 2, "{first:?}");
    assert!(
        first
            .iter()
            .all(|l| l.contains(" run 1 people-sync.people ")),
        "{first:?}"
    );
}
