//! What a plugin may reach beyond its own memory, as granted by the
//! migration file: directories, HTTP hosts, database connections. Everything
//! here is denied unless granted; the runtime wires these grants into a
//! plugin's store.

pub mod db;
pub mod http;

pub use db::{DbConnector, DbGrant, DbLimits};

/// What opens a `db` grant's connection, by its endpoint (the drivers
/// know); `None` when the endpoint is not a database.
pub type Connector<'a> = dyn Fn(&Endpoint) -> Option<Arc<dyn DbConnector>> + 'a;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

use crate::config::{DbSpec, Endpoint, GrantsSpec};

/// Everything one plugin is granted. The default grants nothing.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Host directories the plugin sees.
    pub dirs: Vec<DirGrant>,
    /// Outbound HTTP, if granted.
    pub http: Option<HttpGrant>,
    /// Database connections the plugin may open by name.
    pub db: Vec<DbGrant>,
    /// What the plugin may change beyond its own output, in words, or what
    /// a command that must not repeat it took away.
    pub side_effects: Option<String>,
}

impl Grants {
    /// The grants with paths resolved against `base_dir`.
    pub fn resolve(spec: &GrantsSpec, base_dir: &Path, connector: &Connector<'_>) -> Grants {
        Grants {
            dirs: spec
                .dirs
                .iter()
                .map(|d| DirGrant {
                    host: base_dir.join(&d.path),
                    guest: d.path.to_string_lossy().into_owned(),
                    write: d.write,
                })
                .collect(),
            http: spec.http.as_ref().map(|h| {
                HttpGrant::new(
                    h.hosts.clone(),
                    (h.max_response_kb as usize).saturating_mul(1024),
                    std::time::Duration::from_millis(h.timeout_ms),
                    h.ca_file.as_ref().map(|f| base_dir.join(f)),
                )
                .with_methods(h.methods.clone())
            }),
            db: spec
                .db
                .iter()
                .filter_map(|d| {
                    let endpoint = spec.connections.get(&d.connection)?;
                    Grants::db_grant(d, endpoint, connector)
                })
                .collect(),
            side_effects: spec.side_effects(),
        }
    }

    /// One `db` grant resolved against its connection; `None` when the
    /// connection is missing or not a database (the file's checks refuse
    /// both, so this only drops what was already reported).
    fn db_grant(grant: &DbSpec, endpoint: &Endpoint, connector: &Connector<'_>) -> Option<DbGrant> {
        let limits = DbLimits {
            max_rows: usize::try_from(grant.max_rows).unwrap_or(usize::MAX),
            max_bytes: usize::try_from(grant.max_result_kb.saturating_mul(1024))
                .unwrap_or(usize::MAX),
            timeout: std::time::Duration::from_millis(grant.timeout_ms),
        };
        let mut db = DbGrant::new(&grant.connection, connector(endpoint)?, grant.write, limits);
        db.allow_privileged = grant.allow_privileged;
        Some(db)
    }

    /// What the plugin may change beyond its own output, in words, if
    /// anything (see [`GrantsSpec::side_effects`]): only a run calls such a
    /// plugin on rows.
    pub fn side_effects(&self) -> Option<String> {
        self.side_effects.clone()
    }
}

pub use crate::config::{HTTP_METHODS, SAFE_METHODS};

/// A host directory a plugin sees at `guest`.
#[derive(Debug, Clone)]
pub struct DirGrant {
    /// The directory on this machine.
    pub host: PathBuf,
    /// The path the plugin opens it by (the path written in the migration file).
    pub guest: String,
    /// Whether the plugin may create, change and delete files in it.
    pub write: bool,
}

/// Outbound HTTP(S) to an allow-list of hosts, with limits on each response.
#[derive(Debug, Clone)]
pub struct HttpGrant {
    /// Host names or addresses, optionally `host:port`.
    pub hosts: Vec<String>,
    /// The largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// How long one request may take, connection to last byte.
    pub timeout: Duration,
    /// A PEM file of CA certificates trusted besides the webpki roots (a
    /// private CA).
    pub ca_file: Option<PathBuf>,
    /// The methods it may send (upper case, among [`HTTP_METHODS`]);
    /// GET and HEAD unless the grant lists others.
    pub methods: Vec<String>,
    /// The client, built on first use and shared by every instance.
    client: Arc<OnceCell<reqwest::Client>>,
}

impl HttpGrant {
    /// A grant of `hosts` with these limits.
    pub fn new(
        hosts: Vec<String>,
        max_response_bytes: usize,
        timeout: Duration,
        ca_file: Option<PathBuf>,
    ) -> Self {
        Self {
            hosts,
            max_response_bytes,
            timeout,
            ca_file,
            methods: SAFE_METHODS.iter().map(|m| m.to_string()).collect(),
            client: Arc::new(OnceCell::new()),
        }
    }

    /// The grant allowing `methods` instead of GET and HEAD.
    pub fn with_methods(mut self, methods: Vec<String>) -> Self {
        self.methods = methods;
        self
    }

    /// The grant's client (its trusted roots, no redirects, no proxies).
    async fn client(&self) -> Result<&reqwest::Client, http::ClientError> {
        self.client
            .get_or_try_init(|| async { http::build_client(self.ca_file.as_deref()) })
            .await
    }
}

/// Why the host did not fulfil a plugin's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityError {
    /// The migration file does not grant it.
    Denied(String),
    /// Granted, but it failed.
    Failed(String),
}
