//! The endpoints a migration file names (`[source]`, `[destination]`,
//! `[connections.<name>]`): the one place outside `drivers/` that knows
//! which kinds of database there are, because the file's `type = "…"`
//! picks one. What each kind accepts in the file is checked here too.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{GrantsSpec, Limits, LimitsSpec, PasswordError, Secret, empty_table, load_password};

/// A source or destination (`[source]`, `[destination]`).
///
/// ```toml
/// [source]
/// type = "csv"        # csv | sqlite
/// path = "data/"      # a .csv file, or a folder of them (one table each)
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Endpoint {
    /// CSV files: a file is one table named after the file; a folder holds
    /// one table per `.csv` file.
    Csv {
        /// A `.csv` file or a folder.
        path: PathBuf,
        /// The field delimiter (one byte).
        #[serde(default = "default_delimiter")]
        delimiter: char,
        /// The text that stands for NULL (unquoted). Default: the empty field.
        #[serde(default)]
        null: String,
    },
    /// An SQLite database file.
    Sqlite {
        /// The database file.
        path: PathBuf,
    },
    /// A PostgreSQL server.
    Postgres(ServerEndpoint),
    /// A MySQL or MariaDB server (`type = "mysql"` or `"mariadb"`).
    #[serde(alias = "mariadb")]
    Mysql(ServerEndpoint),
    /// A wasm source or sink plugin (`type = "plugin"`).
    Plugin(PluginEndpoint),
}

/// A source or destination served by a wasm plugin.
///
/// ```toml
/// [source]
/// type = "plugin"
/// plugin = "plugins/csv_source.wasm"     # a path, or a name installed with `credvault plugin install`
/// sha256 = "…"                           # optional pin
/// config = { dir = "data" }              # the plugin's own settings, as JSON
/// grants = { dirs = [{ path = "data" }] }
/// limits = { timeout_ms = 5_000 }        # over [limits]
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginEndpoint {
    /// A path ending in `.wasm` (relative to the migration file) or an
    /// installed plugin's name.
    pub plugin: String,
    /// The plugin's own settings, passed to it as JSON.
    #[serde(default = "empty_table")]
    pub config: toml::Value,
    /// What the plugin may reach; nothing by default.
    #[serde(default)]
    pub grants: GrantsSpec,
    /// Limits for this plugin, over the migration's `[limits]`.
    #[serde(default)]
    pub limits: LimitsSpec,
    /// The plugin file's SHA-256 (hex): a file that differs is refused.
    pub sha256: Option<String>,
    /// The migration's `[limits]`, filled in when the file loads.
    #[serde(skip)]
    pub defaults: Limits,
    /// The migration's name, for the plugin's log lines.
    #[serde(skip)]
    pub migration: String,
}

impl PluginEndpoint {
    /// The limits every call runs under.
    pub fn effective_limits(&self) -> Limits {
        self.limits.over(self.defaults)
    }

    /// The plugin's config as JSON text.
    pub fn config_json(&self) -> String {
        serde_json::to_string(&self.config).expect("TOML values serialize to JSON")
    }
}

/// A database server (`type = "postgres"` or `"mysql"`/`"mariadb"`).
///
/// ```toml
/// [source]
/// type = "postgres"
/// host = "db.internal"         # default 127.0.0.1
/// port = 5432                  # default: the server type's port
/// database = "crm"
/// user = "reader"
/// password_env = "CRM_DB_PASSWORD"    # or password_file = "secrets/crm.txt"
/// schema = "public"            # PostgreSQL: the schema to read or write
/// tls = "prefer"               # disable | prefer | require | verify-full
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEndpoint {
    /// Host name or address.
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port; default 5432 (PostgreSQL) or 3306 (MySQL/MariaDB).
    pub port: Option<u16>,
    /// The database to connect to.
    pub database: String,
    /// The user to connect as.
    pub user: String,
    /// An environment variable holding the password.
    pub password_env: Option<String>,
    /// A file holding the password (relative to the migration file).
    pub password_file: Option<PathBuf>,
    /// Never set: passwords do not belong in migration files. Present only
    /// to refuse it with a helpful message.
    #[serde(default)]
    pub password: Option<toml::Value>,
    /// PostgreSQL schema (default `public`).
    pub schema: Option<String>,
    /// Transport security.
    #[serde(default)]
    pub tls: TlsMode,
}

fn default_host() -> String {
    "127.0.0.1".into()
}

/// Transport security for a server connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TlsMode {
    /// Never use TLS.
    Disable,
    /// Use TLS if the server offers it.
    #[default]
    Prefer,
    /// Require TLS, without checking the certificate.
    Require,
    /// Require TLS with a certificate valid for the host.
    VerifyFull,
}

impl ServerEndpoint {
    /// The password, loaded from its variable or file.
    pub fn password(&self, base_dir: &Path) -> Result<Option<Secret>, PasswordError> {
        load_password(
            self.password_env.as_deref(),
            self.password_file.as_deref(),
            base_dir,
        )
    }
}

fn default_delimiter() -> char {
    ','
}

impl Endpoint {
    /// The plugin serving this endpoint, if a plugin does.
    pub fn plugin(&self) -> Option<&PluginEndpoint> {
        match self {
            Endpoint::Plugin(p) => Some(p),
            _ => None,
        }
    }

    /// The plugin serving this endpoint, to fill in when the file loads.
    pub fn plugin_mut(&mut self) -> Option<&mut PluginEndpoint> {
        match self {
            Endpoint::Plugin(p) => Some(p),
            _ => None,
        }
    }

    /// What its kind offers: one arm per kind and no catch-all, so a new
    /// kind does not compile until it says.
    fn facts(&self) -> Facts<'_> {
        let (readable, database, change_log, server) = match self {
            Endpoint::Csv { .. } => (true, false, false, None),
            Endpoint::Sqlite { .. } => (true, true, false, None),
            Endpoint::Postgres(server) => (true, true, true, Some(server)),
            Endpoint::Mysql(server) => (true, true, false, Some(server)),
            Endpoint::Plugin(_) => (false, false, false, None),
        };
        Facts {
            readable,
            database,
            change_log,
            server,
        }
    }

    /// Whether rows written here can be read back (validation, checks of
    /// existing tables): a plugin destination is write-only.
    pub fn readable(&self) -> bool {
        self.facts().readable
    }

    /// Whether a plugin's `db` grant may open it ([`DATABASES`]): a
    /// database, not files or another plugin.
    pub fn is_database(&self) -> bool {
        self.facts().database
    }

    /// Whether it has a change log a CDC sync reads ([`CHANGE_LOGS`]).
    pub fn has_change_log(&self) -> bool {
        self.facts().change_log
    }

    /// What is wrong with how the file sets it, as messages naming `key`
    /// (its place in the file).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        // The CSV connectors take the delimiter as one byte; a quote or a
        // line break as delimiter makes files that do not read back as written.
        if let Endpoint::Csv { delimiter, .. } = self
            && (!delimiter.is_ascii() || ['"', '\n', '\r'].contains(delimiter))
        {
            problems.push(format!(
                "{key}.delimiter: must be one ASCII character other than a quote or a line break, got {delimiter:?}"
            ));
        }
        if let Some(server) = self.facts().server {
            if server.password.is_some() {
                problems.push(format!(
                    "{key}.password: passwords are not kept in migration files; set {key}.password_env = \"VAR\" (an environment variable) or {key}.password_file = \"path\" instead"
                ));
            }
            if server.password_env.is_some() && server.password_file.is_some() {
                problems.push(format!(
                    "{key}: set password_env or password_file, not both"
                ));
            }
        }
        problems
    }
}

/// The kinds a plugin's `db` grant opens, for messages.
pub const DATABASES: &str = "PostgreSQL, MySQL/MariaDB or SQLite";

/// The kinds with a change log CDC reads, for messages.
pub const CHANGE_LOGS: &str = "PostgreSQL";

/// What an endpoint's kind offers ([`Endpoint::facts`]).
struct Facts<'a> {
    readable: bool,
    database: bool,
    change_log: bool,
    /// Its server settings, for a database server.
    server: Option<&'a ServerEndpoint>,
}
