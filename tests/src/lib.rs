//! Helpers for scenario tests: a throwaway project folder with data and a
//! migration file, the `credvault` binary run on it, and the destination
//! read back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod browser;

/// Paths of the components built for tests (see build.rs).
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// A temporary project: `data/` for CSV sources, `out/` for destinations,
/// its own state store.
pub struct Project {
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// What a CLI run printed.
pub struct Run {
    /// The exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Both streams, for assertion messages.
    pub fn all(&self) -> String {
        format!(
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Project {
    /// A new empty project run with the `credvault` binary at `bin`.
    pub fn new(bin: &str) -> Self {
        let dir = tempfile::tempdir().expect("creating a temp dir");
        std::fs::create_dir_all(dir.path().join("data")).expect("creating data/");
        Self {
            dir,
            bin: PathBuf::from(bin),
        }
    }

    /// The project's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file relative to the project.
    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("creating folders");
        std::fs::write(&path, text).expect("writing a file");
        path
    }

    /// Writes `data/<table>.csv` from a header and rows.
    pub fn csv(&self, table: &str, header: &str, rows: &[String]) {
        let mut text = format!("{header}\n");
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        self.write(&format!("data/{table}.csv"), &text);
    }

    /// `credvault ARGS` in the project, with its own state store.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.current_dir(self.dir.path())
            .arg("--state")
            .arg(self.dir.path().join(".credvault/state.db"))
            .args(args)
            .env_remove("CREDVAULT_LOG");
        cmd
    }

    /// Runs `credvault` with the project's state store.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_env(args, &[])
    }

    /// Runs `credvault` with extra environment variables (a password, say).
    pub fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let output: Output = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .expect("running credvault");
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Runs `credvault`, killing it (and failing the test) if it has not
    /// ended within `limit`: for what must not hang.
    pub fn run_within(&self, args: &[&str], limit: std::time::Duration) -> Run {
        let mut child = self
            .command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting credvault");
        let read = |mut pipe: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut text = String::new();
                let _ = pipe.read_to_string(&mut text);
                text
            })
        };
        let stdout = read(Box::new(child.stdout.take().expect("piped")));
        let stderr = read(Box::new(child.stderr.take().expect("piped")));
        let started = std::time::Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for credvault") {
                break status;
            }
            if started.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("credvault {args:?} still ran after {limit:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        Run {
            code: status.code().unwrap_or(-1),
            stdout: stdout.join().expect("reading stdout"),
            stderr: stderr.join().expect("reading stderr"),
        }
    }

    /// Starts `credvault` in the background (to kill it mid-run).
    /// Its stderr goes to `spawned.err` in the project, which a test that
    /// waits in vain for it shows (see [`Project::wait_logged`]).
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        let err = std::fs::File::create(self.dir.path().join("spawned.err"))
            .expect("creating spawned.err");
        self.command(args)
            .stdout(std::process::Stdio::null())
            .stderr(err)
            .spawn()
            .expect("starting credvault")
    }

    /// Starts `credvault` in the background with its stderr piped, to read
    /// what it announces (the dashboard's address, say).
    pub fn spawn_with_stderr(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("starting credvault")
    }

    /// Runs `credvault` and asserts it succeeded.
    pub fn run_ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, 0, "credvault {args:?} failed:\n{}", run.all());
        run
    }

    /// The rows `credvault flagged list ARGS` lists, a line each.
    pub fn flagged_list(&self, args: &[&str]) -> Vec<String> {
        let mut all = vec!["flagged", "list"];
        all.extend_from_slice(args);
        self.run_ok(&all)
            .stdout
            .lines()
            .filter(|l| l.starts_with('#'))
            .map(str::to_string)
            .collect()
    }

    /// Waits until `migration`'s audit log holds `times` events of `kind`.
    pub fn wait_logged(&self, migration: &str, kind: &str, times: usize) {
        let started = std::time::Instant::now();
        // A `log` that fails (the store busy as the other process opens
        // it) counts as nothing logged yet; the last failure is shown.
        let last_error = std::cell::RefCell::new(String::new());
        let logged = || {
            let log = self.run(&["log", "--migration", migration]);
            if log.code != 0 {
                *last_error.borrow_mut() = log.all();
                return 0;
            }
            log.stdout
                .lines()
                .filter(|l| l.split_whitespace().any(|w| w == kind))
                .count()
        };
        while logged() < times {
            let waited = started.elapsed();
            let spawned =
                || std::fs::read_to_string(self.dir.path().join("spawned.err")).unwrap_or_default();
            assert!(
                waited < std::time::Duration::from_secs(120),
                "`{migration}` logged no {times}× `{kind}` in {waited:?}; the last spawned command said:\n{}\nthe last failed `log`: {}",
                spawned(),
                last_error.borrow()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// Runs an SQL query on an SQLite file of the project; every value as
    /// text (`None` for NULL).
    pub fn query(&self, db: &str, sql: &str) -> Vec<Vec<Option<String>>> {
        query_sqlite(&self.dir.path().join(db), sql)
    }
}

/// Runs SQL statements on an SQLite file (created, with its folder, if
/// missing).
pub fn exec_sqlite(db: &Path, sql: &str) {
    if let Some(dir) = db.parent() {
        std::fs::create_dir_all(dir).expect("creating the database's folder");
    }
    use sqlx::Connection;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = format!("sqlite://{}?mode=rwc", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("opening the database");
        sqlx::raw_sql(sql)
            .execute(&mut conn)
            .await
            .expect("running SQL");
    });
}

/// Runs a query on an SQLite file, every value as text.
pub fn query_sqlite(db: &Path, sql: &str) -> Vec<Vec<Option<String>>> {
    use sqlx::{Connection, Row};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let url = format!("sqlite://{}?mode=ro", db.display());
        let mut conn = sqlx::SqliteConnection::connect(&url)
            .await
            .expect("opening the destination");
        let rows = sqlx::query(sql)
            .fetch_all(&mut conn)
            .await
            .expect("querying the destination");
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| {
                        r.try_get::<Option<String>, _>(i)
                            .or_else(|_| {
                                r.try_get::<Option<i64>, _>(i)
                                    .map(|v| v.map(|v| v.to_string()))
                            })
                            .or_else(|_| {
                                r.try_get::<Option<f64>, _>(i)
                                    .map(|v| v.map(|v| v.to_string()))
                            })
                            .expect("a text, integer or real value")
                    })
                    .collect()
            })
            .collect()
    })
}

/// `n` CSV rows `id,name,score` with ids 1..=n.
pub fn people(n: usize) -> Vec<String> {
    (1..=n)
        .map(|i| format!("{i},person {i},{}", i * 10))
        .collect()
}
