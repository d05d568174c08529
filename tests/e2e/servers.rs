//! Connections to the test servers (PostgreSQL on 127.0.0.1:5432, MariaDB
//! on 127.0.0.1:3306) shared by the scenarios: throwaway schemas,
//! databases, roles and users, dropped when a test ends, passed or failed.
//! A server that is not running fails the tests with the command that
//! starts it.

use std::cell::RefCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::{ConnectOptions, Connection, Decode, Executor, MySql, PgConnection, Row};

pub(crate) const PG_START_HINT: &str =
    "start it with `pg_ctlcluster --skip-systemctl-redirect 15 main start`";

/// A connection to the test server for setting up and checking scenarios.
pub(crate) struct Pg {
    rt: tokio::runtime::Runtime,
    conn: Mutex<PgConnection>,
}

impl Pg {
    /// Connects as `postgres` to database `test`, or fails the test saying
    /// how to start the server.
    pub(crate) fn connect() -> Self {
        Self::connect_at(5432, "test")
    }

    /// Connects as `postgres` to `database` on 127.0.0.1:`port`.
    pub(crate) fn connect_at(port: u16, database: &str) -> Self {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let options = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host("127.0.0.1")
            .port(port)
            .username("postgres")
            .database(database);
        let conn = rt.block_on(async {
            tokio::time::timeout(
                Duration::from_secs(10),
                PgConnection::connect_with(&options),
            )
            .await
        });
        let conn = match conn {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                panic!("PostgreSQL is not reachable at 127.0.0.1:{port} ({e}); {PG_START_HINT}")
            }
            Err(_) => {
                panic!("PostgreSQL at 127.0.0.1:{port} did not answer in 10 s; {PG_START_HINT}")
            }
        };
        Self {
            rt,
            conn: Mutex::new(conn),
        }
    }

    /// Runs statements (several, separated by `;`).
    pub(crate) fn exec(&self, sql: &str) {
        if let Err(e) = self.try_exec(sql) {
            panic!("{e}\n in: {sql}");
        }
    }

    pub(crate) fn try_exec(&self, sql: &str) -> Result<(), sqlx::Error> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        self.rt
            .block_on(sqlx::raw_sql(sql).execute(&mut *conn))
            .map(|_| ())
    }

    /// Every value of a query in its PostgreSQL text form (`None` = NULL).
    pub(crate) fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.try_rows(sql)
            .unwrap_or_else(|e| panic!("{e}\n in: {sql}"))
    }

    pub(crate) fn try_rows(&self, sql: &str) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
        let mut conn = self.conn.lock().unwrap_or_else(|e| e.into_inner());
        // The simple-query protocol returns text forms, so any type reads
        // as a string.
        let rows = self.rt.block_on(sqlx::raw_sql(sql).fetch_all(&mut *conn))?;
        Ok(rows
            .iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get_unchecked::<Option<String>, _>(i).expect("text"))
                    .collect()
            })
            .collect())
    }

    /// The first value of the first row.
    pub(crate) fn one(&self, sql: &str) -> Option<String> {
        self.rows(sql)
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .flatten()
    }
}

/// A throwaway schema `cv_<random>` in database `test`, dropped (with any
/// roles the test made) when the test ends, passed or failed.
pub(crate) struct Scratch {
    pub(crate) pg: Pg,
    pub(crate) schema: String,
    roles: Mutex<Vec<String>>,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        let pg = Pg::connect();
        let schema = unique("cv");
        pg.exec(&format!("CREATE SCHEMA {schema}"));
        Self {
            pg,
            schema,
            roles: Mutex::new(Vec::new()),
        }
    }

    /// Runs statements with `{s}` standing for the schema.
    pub(crate) fn exec(&self, sql: &str) {
        self.pg.exec(&sql.replace("{s}", &self.schema));
    }

    pub(crate) fn rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        self.pg.rows(&sql.replace("{s}", &self.schema))
    }

    pub(crate) fn one(&self, sql: &str) -> Option<String> {
        self.pg.one(&sql.replace("{s}", &self.schema))
    }

    /// A login role, dropped with the schema.
    pub(crate) fn role(&self) -> String {
        let role = unique("cv_role");
        self.pg.exec(&format!("CREATE ROLE {role} LOGIN"));
        self.roles
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(role.clone());
        role
    }

    /// `[source]` or `[destination]` on this schema, with extra lines.
    pub(crate) fn endpoint(&self, section: &str, extra: &str) -> String {
        format!(
            "[{section}]\ntype = \"postgres\"\nhost = \"127.0.0.1\"\nport = 5432\ndatabase = \"test\"\nuser = \"postgres\"\nschema = \"{}\"\n{extra}\n",
            self.schema
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = self
            .pg
            .try_exec(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema));
        for role in self.roles.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = self
                .pg
                .try_exec(&format!("DROP OWNED BY {role}; DROP ROLE IF EXISTS {role}"));
        }
    }
}

/// A throwaway PostgreSQL database `cv_win_…`, dropped when the test ends:
/// only this test's sessions are in it, so no other test's open
/// transaction holds back an incremental sync from it (the bound looks at
/// the whole source database).
pub(crate) struct PgDb {
    admin: Pg,
    pub(crate) name: String,
}

impl PgDb {
    pub(crate) fn new() -> Self {
        let admin = Pg::connect();
        let name = unique("cv_win");
        admin.exec(&format!("CREATE DATABASE {name}"));
        Self { admin, name }
    }

    /// A connection to it as `postgres`.
    pub(crate) fn connect(&self) -> Pg {
        Pg::connect_at(5432, &self.name)
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = self.admin.try_exec(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

pub(crate) const MARIADB_START_HINT: &str = "MariaDB must run on 127.0.0.1:3306 with user root and no password; start it with `start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`";

/// Runs a future to completion on a fresh runtime.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A name no other test (or test run) uses: `cv_<pid>_<time>_<n>`.
pub(crate) fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "{prefix}_{}_{nanos:x}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A root connection (to `database`, if given), in UTC like the connector.
pub(crate) async fn connect(database: Option<&str>) -> MySqlConnection {
    let mut options = MySqlConnectOptions::new()
        .host("127.0.0.1")
        .port(3306)
        .username("root")
        .charset("utf8mb4");
    if let Some(db) = database {
        options = options.database(db);
    }
    options
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{MARIADB_START_HINT} ({e})"))
}

/// A throwaway database `cv_…`, and users made for it; both dropped when
/// the test ends, whether it passed or not.
pub(crate) struct TestDb {
    pub(crate) name: String,
    users: RefCell<Vec<String>>,
}

impl TestDb {
    pub(crate) fn new() -> Self {
        let name = unique("cv");
        block_on(async {
            let mut conn = connect(None).await;
            conn.execute(format!("CREATE DATABASE `{name}` CHARACTER SET utf8mb4").as_str())
                .await
                .expect("creating the test database");
        });
        Self {
            name,
            users: RefCell::new(Vec::new()),
        }
    }

    /// Runs statements (several, separated by `;`). Zero dates are allowed
    /// in these sessions so tests can create them.
    pub(crate) fn exec(&self, sql: &str) {
        block_on(async {
            let mut conn = connect(Some(&self.name)).await;
            conn.execute("SET SESSION sql_mode = ''").await.unwrap();
            sqlx::raw_sql(sql)
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }

    /// Runs a query; every value as text (`None` for NULL).
    pub(crate) fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        block_on(async {
            let mut conn = connect(Some(&self.name)).await;
            let rows = conn
                .fetch_all(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| {
                            let raw = r.try_get_raw(i).ok()?;
                            let bytes = <&[u8] as Decode<MySql>>::decode(raw).ok()?;
                            Some(String::from_utf8_lossy(bytes).into_owned())
                        })
                        .collect()
                })
                .collect()
        })
    }

    /// The single value a query returns.
    pub(crate) fn value(&self, sql: &str) -> String {
        self.query(sql)[0][0].clone().unwrap_or_default()
    }

    /// A user `cv_u_…` with `password` and the given grants (`{db}` stands
    /// for this database), dropped with the database.
    pub(crate) fn user(&self, password: &str, grants: &[&str]) -> String {
        let user = unique("cv_u");
        self.users.borrow_mut().push(user.clone());
        self.exec(&format!(
            "CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'"
        ));
        for grant in grants {
            let grant = grant.replace("{db}", &self.name);
            self.exec(&format!("GRANT {grant} TO '{user}'@'%'"));
        }
        user
    }

    /// A `[source]` or `[destination]` body for this database as root.
    pub(crate) fn endpoint(&self) -> String {
        format!(
            "type = \"mariadb\"\nhost = \"127.0.0.1\"\ndatabase = \"{}\"\nuser = \"root\"\n",
            self.name
        )
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let users = self.users.take();
        block_on(async move {
            let mut conn = connect(None).await;
            let _ = conn
                .execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                .await;
            for user in users {
                let _ = conn
                    .execute(format!("DROP USER IF EXISTS '{user}'@'%'").as_str())
                    .await;
            }
        });
    }
}

/// Where the PostgreSQL server programs are.
pub(crate) const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// A PostgreSQL instance of our own with `wal_level = logical` (the shared
/// server runs with `replica`), trust authentication, on a free port in a
/// temporary folder; stopped when dropped.
pub(crate) struct LogicalPg {
    dir: tempfile::TempDir,
    pub(crate) port: u16,
    as_postgres: bool,
    /// The server's options, to start it again the same.
    opts: String,
}

impl LogicalPg {
    pub(crate) fn start() -> Self {
        Self::start_with(&[], "")
    }

    /// A server made with extra `initdb` arguments (`--wal-segsize=1`) and
    /// extra server options (`-c max_slot_wal_keep_size=2MB`).
    pub(crate) fn start_with(initdb: &[&str], options: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        // initdb refuses to run as root: run the server as `postgres` then.
        let as_postgres = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        if as_postgres {
            let chown = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status();
            assert!(
                chown.is_ok_and(|s| s.success()),
                "chown of the temp dir failed"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = Self {
            dir,
            port,
            as_postgres,
            opts: String::new(),
        };
        let data = server.dir.path().join("data").display().to_string();
        server.pg(
            "initdb",
            &[
                "-D",
                data.as_str(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
            .into_iter()
            .chain(initdb.iter().copied())
            .collect::<Vec<_>>(),
        );
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4 -c fsync=off {options}",
            server.dir.path().display()
        );
        server.opts = opts;
        server.start_again();
        server
    }

    /// The postmaster's process id.
    pub(crate) fn postmaster_pid(&self) -> u32 {
        let pid_file = self.dir.path().join("data/postmaster.pid");
        let text = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
        let first = text.lines().next().unwrap_or_default();
        first.trim().parse().expect("a process id")
    }

    /// Stops the server as an administrator would for a restart: open
    /// sessions are ended (SQLSTATE 57P01), new ones refused.
    pub(crate) fn stop(&self) {
        let data = self.dir.path().join("data").display().to_string();
        self.pg("pg_ctl", &["-D", &data, "-m", "fast", "-w", "stop"]);
    }

    /// Starts the stopped server again, with the options it had.
    pub(crate) fn start_again(&self) {
        let data = self.dir.path().join("data").display().to_string();
        let log = self.dir.path().join("log").display().to_string();
        self.pg(
            "pg_ctl",
            &["-D", &data, "-o", &self.opts, "-l", &log, "-w", "start"],
        );
    }

    fn command(&self, tool: &str) -> std::process::Command {
        let path = format!("{PG_BIN}/{tool}");
        if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--", &path]);
            c
        } else {
            std::process::Command::new(path)
        }
    }

    fn pg(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for LogicalPg {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let _ = self
            .command("pg_ctl")
            .args(["-D", &data, "-m", "immediate", "stop"])
            .stdout(std::process::Stdio::null())
            .output();
    }
}
