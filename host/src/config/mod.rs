//! The migration file: a TOML document a person writes and reviews.
//!
//! Every table rejects unknown keys, so a typo is an error that points at the
//! key rather than a setting silently ignored. Relative paths are resolved
//! against the file's own folder.

mod catalog;
mod consolidate;
mod endpoint;
mod limits;
mod parts;
mod secret;
mod size;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use catalog::{Catalog, CatalogError};
pub use endpoint::{Endpoint, PluginEndpoint, ServerEndpoint, TlsMode};
pub use limits::Limits;

pub use parts::{Contributor, Part};
pub use secret::{PasswordError, Secret, load_password};
pub use size::{SizeError, parse_size, show_size};
pub use validate::ConfigError;

/// A migration file.
///
/// ```toml
/// name = "crm-to-vault"
/// [source]
/// type = "csv"
/// path = "data/"
/// [destination]
/// type = "sqlite"
/// path = "vault.db"
/// [[tables]]
/// source = "customers"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Migration {
    /// The migration's name: used in the state store, logs and reports.
    pub name: String,
    /// Where rows come from. A migration whose every table names a
    /// `connection` needs none.
    pub source: Option<Endpoint>,
    /// Where rows go.
    pub destination: Endpoint,
    /// Run-wide settings.
    #[serde(default)]
    pub settings: Settings,
    /// Default limits for every plugin (`[limits]`).
    #[serde(default)]
    pub limits: LimitsSpec,
    /// Source tables picked by name pattern (`[select]`), besides `[[tables]]`.
    #[serde(default)]
    pub select: Selection,
    /// The tables to migrate with their own settings (`[[tables]]`).
    #[serde(default)]
    pub tables: Vec<TableSpec>,
    /// How and when the migration syncs (`[sync]`).
    #[serde(default)]
    pub sync: SyncSpec,
    /// Named environments (`[environments.staging]`) that swap in another
    /// source or destination, chosen with `--env`.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Named connections (`[connections.crm]`), each an endpoint like
    /// `[source]`: what plugins are granted through the host-owned `db`
    /// resource, and the sources of a consolidation.
    #[serde(default)]
    pub connections: BTreeMap<String, Endpoint>,
    /// Destination tables that several `[[tables]]` fill, each with the rule
    /// that makes one row per key (`[consolidate.<destination table>]`).
    #[serde(default)]
    pub consolidate: BTreeMap<String, ConsolidateSpec>,
    /// The folder relative paths are resolved against.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The environment chosen with `--env`, if any.
    #[serde(skip)]
    pub environment: Option<String>,
    /// Whether this is a dry run: rows go to scratch tables that are
    /// validated and then dropped (see [`Migration::dry_run`]).
    #[serde(skip)]
    pub dry_run: bool,
}

/// An environment (`[environments.<name>]`): the endpoints that differ from
/// the top-level ones.
///
/// ```toml
/// [environments.staging]
/// destination = { type = "postgres", database = "crm_staging", user = "app", password_env = "STAGING_PW" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Environment {
    /// Replaces `[source]`.
    pub source: Option<Endpoint>,
    /// Replaces `[destination]`.
    pub destination: Option<Endpoint>,
    /// Replaces the named `[connections.<name>]` it lists.
    #[serde(default)]
    pub connections: BTreeMap<String, Endpoint>,
}

/// How and when a migration syncs (`[sync]`).
///
/// ```toml
/// [sync]
/// kind = "continuous"     # one-time (default) | continuous | scheduled
/// every = "5m"            # continuous: 30s, 5m, 2h, hourly, daily, …
/// cron = "0 3 * * *"      # scheduled: a cron expression (UTC)
/// mode = "incremental"    # full (default) | incremental | cdc; tables may override
/// detect_deletes = true   # incremental: remove rows whose key left the source
/// max_lag = "1GB"         # cdc: warn when a slot keeps more WAL than this
/// time_limit = "10m"      # abandon a sync still going after this (default 1h)
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncSpec {
    /// One-time, continuous or scheduled.
    #[serde(default)]
    pub kind: SyncKind,
    /// The interval of a continuous (or scheduled) migration.
    pub every: Option<String>,
    /// The cron schedule of a scheduled migration (UTC).
    pub cron: Option<String>,
    /// The default mode of its tables.
    #[serde(default)]
    pub mode: SyncMode,
    /// For incremental tables: compare the keys on both sides after each
    /// sync and delete rows whose key is no longer in the source.
    #[serde(default)]
    pub detect_deletes: bool,
    /// For CDC: how much WAL a migration's replication slot may keep on
    /// the source (a byte size like `"1GB"`) before `status`, `pause` and
    /// the dashboard warn. Default [`DEFAULT_MAX_LAG`].
    pub max_lag: Option<String>,
    /// How long one sync may take (`"10m"`) before it is abandoned: what
    /// it has not committed is rolled back, and the next sync starts from
    /// the last committed checkpoint. Default [`DEFAULT_TIME_LIMIT`].
    pub time_limit: Option<String>,
}

/// The `max_lag` of a migration that sets none.
pub const DEFAULT_MAX_LAG: &str = "1GB";
/// The `time_limit` of a migration that sets none.
pub const DEFAULT_TIME_LIMIT: &str = "1h";

/// When a migration runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncKind {
    /// When someone runs it.
    #[default]
    OneTime,
    /// Every `every`, under `credvault serve`.
    Continuous,
    /// On a `cron` schedule (or `every`), under `credvault serve`.
    Scheduled,
}

/// How a sync brings a table up to date.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncMode {
    /// Copy the whole table and swap it in atomically.
    #[default]
    Full,
    /// Copy the rows past the table's `cursor` column and replace them by key.
    Incremental,
    /// Apply inserts, updates and deletes from the source's change log
    /// (PostgreSQL logical decoding).
    Cdc,
}

/// A `[sync]` setting that does not parse or is out of range; the message
/// names the key.
#[derive(Debug, thiserror::Error)]
pub enum SyncSpecError {
    /// `every` is not a duration.
    #[error(
        "sync.every: {every:?} is not a duration ({source}); write e.g. \"30s\", \"5m\", \"2h\", \"hourly\" or \"daily\""
    )]
    Every {
        /// As written.
        every: String,
        /// The parser's error.
        #[source]
        source: humantime::DurationError,
    },
    /// `every` is under a second.
    #[error("sync.every: {0:?} is shorter than a second")]
    EveryTooShort(String),
    /// `time_limit` is not a duration.
    #[error("sync.time_limit: {text:?} is not a duration ({source}); write e.g. \"10m\" or \"2h\"")]
    TimeLimit {
        /// As written.
        text: String,
        /// The parser's error.
        #[source]
        source: humantime::DurationError,
    },
    /// `time_limit` is under a second.
    #[error(
        "sync.time_limit: {0:?} is shorter than a second; a sync needs at least that to connect"
    )]
    TimeLimitTooShort(String),
    /// `max_lag` is not a byte size.
    #[error("sync.max_lag: {0}")]
    MaxLag(#[source] SizeError),
    /// `cron` is not a cron expression.
    #[error(
        "sync.cron: {cron:?} is not a cron expression ({source}); write e.g. \"0 3 * * *\" for 03:00 UTC daily"
    )]
    Cron {
        /// As written.
        cron: String,
        /// The parser's error.
        #[source]
        source: croner::errors::CronError,
    },
}

/// Why a migration cannot be taken in a named environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvironmentError {
    /// The file has no `[environments]` at all.
    #[error(
        "environment `{0}`: the migration file defines no environments; add an [environments.{0}] table with a destination"
    )]
    NoEnvironments(String),
    /// The file has environments, but not this one.
    #[error("environment `{name}` is not defined; the migration file has: {}", known.join(", "))]
    Unknown {
        /// The environment asked for.
        name: String,
        /// The environments the file defines.
        known: Vec<String>,
    },
    /// The environment overrides a connection the file does not define.
    #[error(
        "environment `{name}`: connection `{connection}` is not defined at the top level; add [connections.{connection}] or fix the name"
    )]
    UnknownConnection {
        /// The environment.
        name: String,
        /// The connection it overrides.
        connection: String,
    },
}

/// Why a migration file could not be loaded in an environment.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The file does not read, parse or validate.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The environment named is not one the file can be taken in; the
    /// message names the file.
    #[error("{}: {source}", path.display())]
    Environment {
        /// The migration file.
        path: PathBuf,
        /// Why the environment cannot be entered.
        #[source]
        source: EnvironmentError,
    },
}

impl SyncSpec {
    /// The wait between syncs, if the migration has one.
    pub fn interval(&self) -> Result<Option<std::time::Duration>, SyncSpecError> {
        let Some(every) = &self.every else {
            return Ok(None);
        };
        let text = match every.as_str() {
            "hourly" => "1h",
            "daily" => "1d",
            "weekly" => "7d",
            other => other,
        };
        let interval = humantime::parse_duration(text).map_err(|source| SyncSpecError::Every {
            every: every.clone(),
            source,
        })?;
        if interval < std::time::Duration::from_secs(1) {
            return Err(SyncSpecError::EveryTooShort(every.clone()));
        }
        Ok(Some(interval))
    }

    /// `time_limit` (the default when unset).
    pub fn time_limit(&self) -> Result<std::time::Duration, SyncSpecError> {
        let text = self.time_limit.as_deref().unwrap_or(DEFAULT_TIME_LIMIT);
        let limit = humantime::parse_duration(text).map_err(|source| SyncSpecError::TimeLimit {
            text: text.to_string(),
            source,
        })?;
        if limit < std::time::Duration::from_secs(1) {
            return Err(SyncSpecError::TimeLimitTooShort(text.to_string()));
        }
        Ok(limit)
    }

    /// `max_lag` in bytes (the default when unset).
    pub fn max_lag_bytes(&self) -> Result<u64, SyncSpecError> {
        let text = self.max_lag.as_deref().unwrap_or(DEFAULT_MAX_LAG);
        parse_size(text).map_err(SyncSpecError::MaxLag)
    }

    /// The cron schedule, if the migration has one.
    pub fn schedule(&self) -> Result<Option<croner::Cron>, SyncSpecError> {
        self.cron
            .as_deref()
            .map(|c| {
                c.parse::<croner::Cron>()
                    .map_err(|source| SyncSpecError::Cron {
                        cron: c.to_string(),
                        source,
                    })
            })
            .transpose()
    }

    /// When the next sync is due after one that started at `last` (or now,
    /// if there was none): `None` for one-time migrations.
    pub fn next_after(
        &self,
        last: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        if self.kind == SyncKind::OneTime {
            return None;
        }
        let now = chrono::Utc::now();
        if let Ok(Some(cron)) = self.schedule() {
            return cron.find_next_occurrence(&last.unwrap_or(now), false).ok();
        }
        let interval = self.interval().ok().flatten()?;
        let interval = chrono::Duration::from_std(interval).ok()?;
        // An interval past chrono's last date means no next sync, not a panic.
        match last {
            None => Some(now),
            Some(l) => l.checked_add_signed(interval),
        }
    }
}

/// The prefix of the scratch tables a dry run writes.
pub const DRY_RUN_PREFIX: &str = "credvault_dry_";

/// What a dry run's name adds to its migration's, so its runs and flagged
/// rows are kept apart from the real ones.
pub const DRY_RUN_SUFFIX: &str = "#dry-run";

/// Capabilities granted to a plugin; each is denied unless listed here.
///
/// ```toml
/// grants = { dirs = [{ path = "data", write = false }], http = { hosts = ["api.example.com"], methods = ["GET", "HEAD"], max_response_kb = 1024, timeout_ms = 5000, ca_file = "certs/ca.pem" }, db = [{ connection = "crm" }] }
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantsSpec {
    /// Directories the plugin sees, read-only unless `write = true`.
    #[serde(default)]
    pub dirs: Vec<DirSpec>,
    /// Outbound HTTP to an allow-list of hosts.
    pub http: Option<HttpSpec>,
    /// Named connections (`[connections.<name>]`) the plugin may open
    /// through the host-owned `db` resource.
    #[serde(default)]
    pub db: Vec<DbSpec>,
    /// The endpoints of the connections `db` names, copied in from the
    /// migration (and its environment) when the file loads, so the grants
    /// resolve on their own.
    #[serde(skip)]
    pub connections: BTreeMap<String, Endpoint>,
    /// What [`GrantsSpec::without_effects`] took away, in words.
    #[serde(skip)]
    pub withheld: Option<String>,
}

/// A named connection granted to a plugin. The host connects (the plugin
/// never sees the address or the password) and the database itself keeps
/// it read-only unless `write = true`. A connection whose user is
/// privileged (PostgreSQL superuser or file roles, MySQL/MariaDB FILE,
/// SUPER, …) is refused unless `allow_privileged = true`.
///
/// ```toml
/// grants = { db = [{ connection = "crm", write = false, max_rows = 10000, max_result_kb = 4096, timeout_ms = 5000 }] }
/// # a superuser connection, accepted knowingly:
/// grants = { db = [{ connection = "admin", allow_privileged = true }] }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbSpec {
    /// The `[connections.<name>]` granted: PostgreSQL, MySQL/MariaDB or SQLite.
    pub connection: String,
    /// Whether the plugin may change data. Default false: every statement
    /// runs in a read-only transaction (SQLite: a read-only connection).
    #[serde(default)]
    pub write: bool,
    /// Whether a user with powers beyond data (a PostgreSQL superuser or
    /// member of the server-file roles; MySQL/MariaDB FILE, SUPER, `…
    /// ADMIN`, ALL PRIVILEGES ON *.*, roles) is accepted. Default false:
    /// `check` fails the grant and the plugin cannot open it.
    #[serde(default)]
    pub allow_privileged: bool,
    /// The most rows one query may return. Default 10000.
    #[serde(default = "default_db_max_rows")]
    pub max_rows: u64,
    /// The most data one query may return, KiB. Default 4096.
    #[serde(default = "default_db_max_result_kb")]
    pub max_result_kb: u64,
    /// How long one statement may run, ms. Default 5000.
    #[serde(default = "default_db_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_db_max_rows() -> u64 {
    10_000
}

fn default_db_max_result_kb() -> u64 {
    4_096
}

fn default_db_timeout_ms() -> u64 {
    5_000
}

/// A directory granted to a plugin. The plugin opens it by `path` as
/// written here; the host resolves it against the migration file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirSpec {
    /// The directory.
    pub path: PathBuf,
    /// Whether the plugin may create, change and delete files. Default false.
    #[serde(default)]
    pub write: bool,
}

/// Outbound HTTP and HTTPS granted to a plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// Hosts it may reach (`api.example.com`, or `host:port` for one port).
    pub hosts: Vec<String>,
    /// The largest response body accepted, KiB. Default 1024.
    #[serde(default = "default_max_response_kb")]
    pub max_response_kb: u64,
    /// Time one request may take, ms. Default 5000.
    #[serde(default = "default_http_timeout_ms")]
    pub timeout_ms: u64,
    /// A PEM file of CA certificates to trust for `https://` besides the
    /// public (webpki) roots: a private CA. Relative to the migration file.
    pub ca_file: Option<PathBuf>,
    /// The methods the plugin may send, among GET, POST, PUT, PATCH,
    /// DELETE and HEAD. Default `["GET", "HEAD"]`. A transform allowed any
    /// other method is called on rows by `run` only: `preview` and
    /// validation would send its requests again.
    #[serde(default = "default_http_methods")]
    pub methods: Vec<String>,
}

fn default_http_methods() -> Vec<String> {
    SAFE_METHODS.iter().map(|m| m.to_string()).collect()
}

fn default_max_response_kb() -> u64 {
    1024
}

fn default_http_timeout_ms() -> u64 {
    5_000
}

impl GrantsSpec {
    /// These grants without what lets a plugin change things (database
    /// writes, HTTP methods other than GET and HEAD, writable folders),
    /// remembering what was taken: what `preview` and validation configure
    /// a transform with, so that not even its `configure` repeats a write.
    pub fn without_effects(&self) -> GrantsSpec {
        let mut spec = self.clone();
        spec.withheld = self.side_effects();
        for db in &mut spec.db {
            db.write = false;
        }
        for dir in &mut spec.dirs {
            dir.write = false;
        }
        if let Some(http) = &mut spec.http {
            http.methods.retain(|m| SAFE_METHODS.contains(&m.as_str()));
        }
        spec
    }

    /// What the plugin may change beyond its own output, in words, if
    /// anything: a database it may write, HTTP methods other than GET and
    /// HEAD, a directory it may write. Calling such a plugin again repeats
    /// its changes, so only a run calls it on rows.
    pub fn side_effects(&self) -> Option<String> {
        if let Some(withheld) = &self.withheld {
            return Some(withheld.clone());
        }
        if let Some(db) = self.db.iter().find(|d| d.write) {
            return Some(format!("holds a write grant on `{}`", db.connection));
        }
        if let Some(http) = &self.http {
            let unsafe_methods: Vec<&str> = http
                .methods
                .iter()
                .map(String::as_str)
                .filter(|m| !SAFE_METHODS.contains(m))
                .collect();
            if !unsafe_methods.is_empty() {
                return Some(format!(
                    "may send {} requests (grants.http.methods)",
                    unsafe_methods.join(", ")
                ));
            }
        }
        let dir = self.dirs.iter().find(|d| d.write)?;
        Some(format!(
            "may write files in `{}`",
            dir.path.to_string_lossy()
        ))
    }
}

/// The HTTP methods a plugin may send, as the WIT names them.
pub const HTTP_METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// The methods that only read, granted when `grants.http.methods` is not
/// given: a plugin limited to them may be called again without harm.
pub const SAFE_METHODS: [&str; 2] = ["GET", "HEAD"];

/// Run-wide settings (`[settings]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Rows per batch through every stage. Default 10000: large batches
    /// amortise each commit; memory stays a few batches whatever the table.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// The error policy for tables that set none. Default `stop`.
    #[serde(default)]
    pub on_error: ErrorPolicy,
    /// How many rows a plugin may trap on in one table before the table
    /// stops whatever its policy. Default 20.
    #[serde(default = "default_max_plugin_traps")]
    pub max_plugin_traps: u32,
    /// Seconds a table may spend in plugin calls that trap (a trap is
    /// followed by calls that isolate its row, each of which may run to the
    /// plugin's time limit) before the table stops whatever its policy.
    /// Default 60.
    ///
    /// ```toml
    /// [settings]
    /// max_trap_seconds = 60
    /// ```
    #[serde(default = "default_max_trap_seconds")]
    pub max_trap_seconds: u64,
    /// Seconds a step on a database server (PostgreSQL, MariaDB/MySQL) may
    /// go without an answer before the server is probed on a new
    /// connection; if the probe gets no answer within as long again, the
    /// step is given up and the run fails, naming the server and the table.
    /// A server that answers the probe is working (an index build, a big
    /// COPY, a slow view), so its step goes on. Default 60; 1 to 86400.
    ///
    /// ```toml
    /// [settings]
    /// stall_seconds = 60
    /// ```
    #[serde(default = "default_stall_seconds")]
    pub stall_seconds: u64,
    /// Times a table (or a key range of one) is tried again after its
    /// connection to the source or destination was lost (reset, closed,
    /// the server restarting): it reconnects and resumes after its last
    /// committed batch, waiting 1 s, 2 s, 4 s … (at most 30 s, with
    /// jitter) between tries. Rows the destination refuses are never
    /// retried this way. Default 3; 0 stops at the first loss (the next
    /// `credvault run` resumes).
    ///
    /// ```toml
    /// [settings]
    /// retries = 3
    /// ```
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Tables moved at the same time, each with its own connections.
    /// Default 2.
    #[serde(default = "default_parallel_tables")]
    pub parallel_tables: usize,
    /// Split tables with more rows than this into key ranges moved side by
    /// side (`parallel_tables` at a time), when the table has a single
    /// integer primary key and the destination takes concurrent writers.
    /// 0 (the default) never splits.
    #[serde(default)]
    pub split_rows: u64,
    /// Validate every table after a run (`credvault validate`). Default
    /// true; it reads both sides once more.
    #[serde(default = "yes")]
    pub validate: bool,
    /// Rows per table the validation spot-checks. Default 100.
    #[serde(default = "default_validate_sample")]
    pub validate_sample: u64,
    /// Before a fresh run writes, copy every destination table it touches
    /// into a restore point (`credvault rollback` puts them back). Default
    /// true; SQLite, PostgreSQL and MariaDB/MySQL destinations.
    #[serde(default = "default_true")]
    pub restore_points: bool,
    /// Days a restore point is kept; older ones are removed when the next
    /// point is made. Default 30; 0 keeps a point only until the next run.
    #[serde(default = "default_restore_point_days")]
    pub restore_point_days: u32,
}

fn yes() -> bool {
    true
}

fn default_validate_sample() -> u64 {
    100
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            batch_size: default_batch_size(),
            on_error: ErrorPolicy::default(),
            max_plugin_traps: default_max_plugin_traps(),
            max_trap_seconds: default_max_trap_seconds(),
            stall_seconds: default_stall_seconds(),
            retries: default_retries(),
            parallel_tables: default_parallel_tables(),
            split_rows: 0,
            validate: true,
            validate_sample: default_validate_sample(),
            restore_points: true,
            restore_point_days: default_restore_point_days(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_restore_point_days() -> u32 {
    30
}

fn default_batch_size() -> usize {
    10_000
}

fn default_parallel_tables() -> usize {
    2
}

fn default_max_plugin_traps() -> u32 {
    20
}

fn default_max_trap_seconds() -> u64 {
    60
}

fn default_stall_seconds() -> u64 {
    60
}

fn default_retries() -> u32 {
    3
}

/// What a child row refused for a missing parent means (`on_orphan`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnOrphan {
    /// It follows the table's policy, and validation fails.
    #[default]
    Fail,
    /// It is flagged with its parent's error, and validation expects it.
    Flag,
}

/// What happens to a row that fails (conversion, transform error or trap,
/// destination constraint).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorPolicy {
    /// Halt the table; nothing of the failing batch is written.
    #[default]
    Stop,
    /// Count and log the row, and go on.
    Skip,
    /// Keep the row, its error and its position in the state store for
    /// review (`credvault flagged list`), and go on.
    Flag,
}

/// Limits for plugins; unset fields fall back to the migration's `[limits]`
/// and then to the built-in defaults.
///
/// ```toml
/// [limits]
/// fuel = 2_000_000_000   # instructions per call
/// memory_mb = 128        # linear memory per instance
/// timeout_ms = 10_000    # wall-clock time per call
/// table_seconds = 3600   # wall-clock time to read one table (source plugins; unset: no budget)
/// ```
///
/// Every limit is finite: [`LimitsSpec::problems`] says the accepted range
/// of each.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsSpec {
    /// Instructions per call.
    pub fuel: Option<u64>,
    /// Linear memory per instance, MiB.
    pub memory_mb: Option<u32>,
    /// Wall-clock time per call, ms.
    pub timeout_ms: Option<u64>,
    /// Wall-clock time a source plugin may take to read one table (in
    /// `check`, `preview` and `run` alike), seconds.
    pub table_seconds: Option<u64>,
}

impl LimitsSpec {
    /// These limits with gaps filled from `fallback`.
    pub fn over(&self, fallback: Limits) -> Limits {
        Limits {
            fuel: self.fuel.unwrap_or(fallback.fuel),
            memory_mb: self.memory_mb.unwrap_or(fallback.memory_mb),
            timeout_ms: self.timeout_ms.unwrap_or(fallback.timeout_ms),
            table_seconds: self.table_seconds.or(fallback.table_seconds),
        }
    }

    /// What is out of range, each naming its key under `at` (e.g.
    /// `limits` or `source.limits`) and the range it accepts. No limit has
    /// an "unlimited" value: a plugin always runs under all of them.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let checks = [
            ("fuel", self.fuel, MAX_FUEL, "instructions per call"),
            (
                "memory_mb",
                self.memory_mb.map(u64::from),
                MAX_MEMORY_MB,
                "MiB per instance; a wasm32 memory cannot pass 4 GiB",
            ),
            (
                "timeout_ms",
                self.timeout_ms,
                MAX_TIMEOUT_MS,
                "ms per call, one hour at most",
            ),
            (
                "table_seconds",
                self.table_seconds,
                MAX_TABLE_SECONDS,
                "seconds per table, one week at most; leave it out for no budget",
            ),
        ];
        checks
            .into_iter()
            .filter_map(|(key, value, max, unit)| {
                let value = value?;
                (value == 0 || value > max).then(|| {
                    format!("{at}.{key}: must be between 1 and {max} ({unit}), got {value}")
                })
            })
            .collect()
    }
}

/// The most fuel a call may be given: days of computation (so in practice
/// `timeout_ms` ends such a call first), well inside what the runtime's
/// fuel counter holds (a signed 64-bit count).
const MAX_FUEL: u64 = 1_000_000_000_000_000;
/// A wasm32 linear memory's size limit, MiB.
const MAX_MEMORY_MB: u64 = 4096;
/// One hour per call.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
/// One week per table.
const MAX_TABLE_SECONDS: u64 = 604_800;

/// One table to migrate (`[[tables]]`).
///
/// ```toml
/// [[tables]]
/// source = "customers"
/// destination = "clients"     # default: the source name
/// on_error = "flag"           # stop | skip | flag
/// if_exists = "fail"          # fail | append | replace
/// key = ["customer_id"]       # names rows in error reports
/// [tables.columns.customer_id]
/// rename = "id"
/// type = "int"
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableSpec {
    /// The source table.
    pub source: String,
    /// Read it from `[connections.<name>]` instead of `[source]`.
    pub connection: Option<String>,
    /// The destination table. Default: the source name.
    pub destination: Option<String>,
    /// This table's error policy. Default: `settings.on_error`.
    pub on_error: Option<ErrorPolicy>,
    /// What a row the destination refuses because a row it refers to is
    /// missing (a foreign key) means. Default `fail`: the row follows the
    /// table's policy and validation fails. `flag`: the row is flagged,
    /// naming its parent's error, and validation counts it as expected
    /// (needs `on_error = "skip"` or `"flag"`).
    ///
    /// ```toml
    /// on_orphan = "flag"
    /// ```
    #[serde(default)]
    pub on_orphan: OnOrphan,
    /// What to do when the destination table exists. Default `fail`.
    #[serde(default)]
    pub if_exists: IfExists,
    /// Source columns that identify a row in error reports. Default: the
    /// source's primary key, else the row's position.
    #[serde(default)]
    pub key: Vec<String>,
    /// Per-column mapping, by source column name.
    #[serde(default)]
    pub columns: BTreeMap<String, ColumnSpec>,
    /// Transforms applied in order after the column mapping.
    #[serde(default)]
    pub transforms: Vec<TransformSpec>,
    /// How this table syncs. Default: `sync.mode`.
    pub sync: Option<SyncMode>,
    /// The column an incremental sync follows (an `updated_at` timestamp or
    /// an increasing id).
    pub cursor: Option<String>,
    /// Set by an incremental sync: the window of cursor values to read.
    #[serde(skip)]
    pub since: Option<crate::model::cursor::Since>,
    /// Land a source's arrays as JSON even where the destination has array
    /// types (a consolidation's scratch tables, whose sources may differ).
    #[serde(skip)]
    pub arrays_as_json: bool,
    /// Set on a sync's scratch copy: the table it stands in for, which row
    /// errors name (not the scratch table, which a person never sees).
    #[serde(skip)]
    pub stands_for: Option<String>,
}

impl TableSpec {
    /// A table with default settings.
    pub fn new(source: &str) -> Self {
        Self {
            source: source.to_string(),
            connection: None,
            destination: None,
            on_error: None,
            on_orphan: OnOrphan::default(),
            if_exists: IfExists::default(),
            key: Vec::new(),
            columns: BTreeMap::new(),
            transforms: Vec::new(),
            sync: None,
            cursor: None,
            since: None,
            arrays_as_json: false,
            stands_for: None,
        }
    }

    /// The destination table's name.
    pub fn destination(&self) -> &str {
        self.destination.as_deref().unwrap_or(&self.source)
    }
}

/// How the rows several `[[tables]]` bring to one destination table become
/// one row per key (`[consolidate.<destination table>]`).
///
/// ```toml
/// [consolidate.customers]
/// key = ["email"]                       # destination columns that name one entity
/// rule = "latest"                       # latest | priority
/// latest_by = "updated_at"              # rule = "latest": the newest value wins (NULL is oldest)
/// priority = ["crm", "shop", "legacy"]  # connections, first wins; breaks ties of `latest`
/// lineage = "origin"                    # optional: a column naming the connection each row came from
/// if_exists = "replace"                 # fail (default) | replace
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsolidateSpec {
    /// The destination columns that identify one entity across sources.
    pub key: Vec<String>,
    /// Which row of a key wins.
    pub rule: DedupRule,
    /// For `rule = "latest"`: the column whose largest value wins.
    pub latest_by: Option<String>,
    /// Connection names (`source` for `[source]`) in order of precedence;
    /// default: the order of the `[[tables]]` entries.
    #[serde(default)]
    pub priority: Vec<String>,
    /// A text column added to the table naming the connection of each row.
    pub lineage: Option<String>,
    /// What to do when the table exists before a run (`fail` or `replace`;
    /// syncs always swap in the new copy).
    #[serde(default)]
    pub if_exists: IfExists,
}

/// Which of the rows sharing a key a consolidation keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DedupRule {
    /// The row with the largest `latest_by` value; ties go by `priority`.
    Latest,
    /// The row from the source listed first in `priority`.
    Priority,
}

/// Source tables picked by glob pattern (`*`, `?`, `[abc]`); each is
/// migrated with default settings unless `[[tables]]` lists it.
///
/// ```toml
/// [select]
/// include = ["*"]
/// exclude = ["tmp_*", "audit_log"]
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Selection {
    /// Patterns of tables to migrate.
    #[serde(default)]
    pub include: Vec<String>,
    /// Patterns of tables to leave out (applies to `include` only).
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl Selection {
    /// Whether `table` is picked. Patterns are checked when the file loads.
    pub fn picks(&self, table: &str) -> bool {
        let matches = |patterns: &[String]| {
            patterns
                .iter()
                .any(|p| glob::Pattern::new(p).is_ok_and(|p| p.matches(table)))
        };
        matches(&self.include) && !matches(&self.exclude)
    }
}

/// What to do when a destination table already exists.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IfExists {
    /// Refuse to run: nothing is overwritten by accident.
    #[default]
    Fail,
    /// Add rows to the existing table (its columns must match).
    Append,
    /// Drop and recreate the table.
    Replace,
}

/// The mapping of one source column (`[tables.columns.NAME]`).
///
/// ```toml
/// [tables.columns.tier]
/// rename = "level"
/// type = "int"
/// map = { gold = 1, silver = 2 }
/// unmapped = "default"        # error | null | keep | default
/// default = 0
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// The destination column's name.
    pub rename: Option<String>,
    /// Leave the column out.
    #[serde(default)]
    pub skip: bool,
    /// The destination type (see the type table in README.md).
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// Allow a conversion that cannot be exact (float → int rounds, a
    /// timestamp → date drops the time); without it such a value is a row
    /// error.
    #[serde(default)]
    pub lossy: bool,
    /// Replace values: keys are the source value's text form.
    pub map: Option<BTreeMap<String, toml::Value>>,
    /// What a value missing from `map` becomes. Default `error`.
    #[serde(default)]
    pub unmapped: Unmapped,
    /// The value used when `unmapped = "default"`.
    pub default: Option<toml::Value>,
}

/// What a value missing from a column's `map` becomes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unmapped {
    /// The row fails with an error naming the value.
    #[default]
    Error,
    /// The value becomes null.
    Null,
    /// The value passes through unchanged.
    Keep,
    /// The value becomes the column's `default`.
    Default,
}

/// A transform step (`[[tables.transforms]]`).
///
/// ```toml
/// [[tables.transforms]]
/// plugin = "expr"                     # built-in name, or a path to a .wasm
/// config = { expressions = ["email = lower(email)"] }
/// limits = { timeout_ms = 500 }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// A built-in plugin's name (`expr`) or a path to a `.wasm` component.
    pub plugin: String,
    /// The plugin's own settings, passed to it as JSON.
    #[serde(default = "empty_table")]
    pub config: toml::Value,
    /// Limits for this plugin, over the migration's `[limits]`.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// The plugin file's SHA-256 (hex): the run refuses a file that differs.
    pub sha256: Option<String>,
    /// What the plugin may reach; nothing by default.
    #[serde(default)]
    pub grants: GrantsSpec,
}

fn empty_table() -> toml::Value {
    toml::Value::Table(toml::Table::new())
}

impl Migration {
    /// The migration with every transform's grants
    /// [without effects](GrantsSpec::without_effects): for the commands that
    /// call transforms again after a run (`preview`, validation).
    pub fn without_transform_effects(&self) -> Migration {
        let mut m = self.clone();
        for t in m.tables.iter_mut().flat_map(|t| t.transforms.iter_mut()) {
            t.grants = t.grants.without_effects();
        }
        m
    }

    /// Reads, parses and validates a migration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, path, base_dir)
    }

    /// Reads a migration file in the environment `env`, if one is named;
    /// the error names the file.
    pub fn load_in(path: &Path, env: Option<&str>) -> Result<Self, LoadError> {
        let m = Self::load(path)?;
        match env {
            Some(env) => m
                .in_environment(env)
                .map_err(|source| LoadError::Environment {
                    path: path.to_path_buf(),
                    source,
                }),
            None => Ok(m),
        }
    }

    /// Parses and validates migration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &Path, base_dir: PathBuf) -> Result<Self, ConfigError> {
        let mut migration: Migration = toml::from_str(text).map_err(|err| ConfigError::Syntax {
            path: origin.to_path_buf(),
            message: secret::syntax_message(text, &err),
        })?;
        migration.base_dir = base_dir;
        migration.fill_plugin_endpoints();
        migration.share_connections();
        validate::check(&migration).map_err(|problems| ConfigError::Invalid {
            path: origin.to_path_buf(),
            problems,
        })?;
        Ok(migration)
    }

    /// This migration in environment `name`: its endpoints replace the
    /// top-level ones, and its runs, checkpoints and audit entries are kept
    /// under `<name>@<environment>` so environments never resume each
    /// other's runs.
    pub fn in_environment(mut self, name: &str) -> Result<Self, EnvironmentError> {
        let Some(env) = self.environments.get(name).cloned() else {
            let known: Vec<String> = self.environments.keys().cloned().collect();
            return Err(match known.is_empty() {
                true => EnvironmentError::NoEnvironments(name.to_string()),
                false => EnvironmentError::Unknown {
                    name: name.to_string(),
                    known,
                },
            });
        };
        if let Some(source) = env.source {
            self.source = Some(source);
        }
        if let Some(destination) = env.destination {
            self.destination = destination;
        }
        for (connection, endpoint) in env.connections {
            if !self.connections.contains_key(&connection) {
                return Err(EnvironmentError::UnknownConnection {
                    name: name.to_string(),
                    connection,
                });
            }
            self.connections.insert(connection, endpoint);
        }
        self.name = format!("{}@{name}", self.name);
        self.environment = Some(name.to_string());
        self.share_connections();
        Ok(self)
    }

    /// This migration as a dry run: every step of a real run (reading,
    /// mapping, transforms, writing with the destination's own type and
    /// constraint checks, validation), but into scratch tables named
    /// `credvault_dry_<table>` that are dropped at the end, so the real
    /// tables are never touched. Kept under `<name>#dry-run`
    /// ([`DRY_RUN_SUFFIX`]).
    pub fn dry_run(mut self) -> Self {
        self.name = format!("{}{DRY_RUN_SUFFIX}", self.name);
        self.dry_run = true;
        self
    }

    /// Gives plugin endpoints the migration's name and `[limits]`.
    fn fill_plugin_endpoints(&mut self) {
        let defaults = self.limits.over(Limits::default());
        let name = self.name.clone();
        let all = plugin_endpoints(
            &mut self.environments,
            &mut self.source,
            &mut self.destination,
            &mut self.connections,
        );
        for p in all {
            p.defaults = defaults;
            p.migration = name.clone();
        }
    }

    /// Copies the endpoints of the connections each plugin's `db` grant
    /// names into its grants, so they resolve wherever the plugin loads.
    fn share_connections(&mut self) {
        let connections = self.connections.clone();
        let plugins = plugin_endpoints(
            &mut self.environments,
            &mut self.source,
            &mut self.destination,
            &mut self.connections,
        )
        .map(|p| &mut p.grants);
        let transforms = self.tables.iter_mut().flat_map(|t| &mut t.transforms);
        for grants in plugins.chain(transforms.map(|t| &mut t.grants)) {
            grants.connections = grants
                .db
                .iter()
                .filter_map(|d| {
                    Some((
                        d.connection.clone(),
                        connections.get(&d.connection)?.clone(),
                    ))
                })
                .collect();
        }
    }

    /// A path from the file, resolved against the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// The tables to migrate among the source's: every `[[tables]]` entry,
    /// then every other table `[select]` picks, in the source's order.
    pub fn selected_tables(&self, source_tables: &[&str]) -> Vec<TableSpec> {
        let mut tables = self.tables.clone();
        for name in source_tables {
            if self.select.picks(name) && !self.tables.iter().any(|t| t.source == *name) {
                tables.push(TableSpec::new(name));
            }
        }
        if self.dry_run {
            for t in &mut tables {
                if t.stands_for.is_none() {
                    t.stands_for = Some(t.destination().to_string());
                }
                t.destination = Some(format!("{DRY_RUN_PREFIX}{}", t.destination()));
                t.if_exists = IfExists::Replace;
            }
        }
        tables
    }

    /// The effective sync mode of a table.
    pub fn sync_mode(&self, table: &TableSpec) -> SyncMode {
        table.sync.unwrap_or(self.sync.mode)
    }

    /// The effective error policy of a table.
    pub fn policy(&self, table: &TableSpec) -> ErrorPolicy {
        table.on_error.unwrap_or(self.settings.on_error)
    }

    /// The effective limits of a transform.
    pub fn limits(&self, transform: &TransformSpec) -> Limits {
        transform.limits.over(self.limits.over(Limits::default()))
    }
}

/// Every plugin endpoint of a migration: in its environments, its source,
/// destination and connections (fields passed apart so the caller may
/// borrow the others meanwhile).
fn plugin_endpoints<'a>(
    environments: &'a mut BTreeMap<String, Environment>,
    source: &'a mut Option<Endpoint>,
    destination: &'a mut Endpoint,
    connections: &'a mut BTreeMap<String, Endpoint>,
) -> impl Iterator<Item = &'a mut PluginEndpoint> {
    environments
        .values_mut()
        .flat_map(|e| {
            let swapped = [e.source.as_mut(), e.destination.as_mut()];
            swapped
                .into_iter()
                .flatten()
                .chain(e.connections.values_mut())
        })
        .chain(source.iter_mut())
        .chain([destination])
        .chain(connections.values_mut())
        .filter_map(Endpoint::plugin_mut)
}

#[cfg(test)]
mod limits_tests {
    use super::LimitsSpec;

    #[test]
    fn limits_in_range_pass_and_zero_or_huge_ones_name_their_key() {
        let fine = LimitsSpec {
            fuel: Some(1),
            memory_mb: Some(4096),
            timeout_ms: Some(3_600_000),
            table_seconds: None,
        };
        assert!(fine.problems("limits").is_empty());
        let bad = LimitsSpec {
            fuel: Some(u64::MAX),
            memory_mb: Some(u32::MAX),
            timeout_ms: Some(0),
            table_seconds: Some(0),
        };
        let problems = bad.problems("source.limits");
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[2].starts_with("source.limits.timeout_ms: must be between 1 and"));
    }
}
