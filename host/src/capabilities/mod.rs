//! What a plugin may reach beyond its own memory, as granted by the
//! migration file: directories, HTTP hosts, database connections. Everything
//! here is denied unless granted; the runtime wires these grants into a
//! plugin's store.

pub mod db;
pub mod http;

pub use db::{DbGrant, DbLimits, DbTarget};

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OnceCell;

/// Everything one plugin is granted. The default grants nothing.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Host directories the plugin sees.
    pub dirs: Vec<DirGrant>,
    /// Outbound HTTP, if granted.
    pub http: Option<HttpGrant>,
    /// Database connections the plugin may open by name.
    pub db: Vec<DbGrant>,
    /// What the migration file grants beyond these, when a command that
    /// must not repeat a plugin's side effects took them away (in the
    /// words of [`Grants::side_effects`]).
    pub withheld: Option<String>,
}

impl Grants {
    /// What the plugin may change beyond its own output, in words, if
    /// anything: a database it may write, HTTP methods other than GET and
    /// HEAD, a directory it may write. Calling such a plugin again repeats
    /// its changes, so only a run calls it on rows.
    pub fn side_effects(&self) -> Option<String> {
        if let Some(withheld) = &self.withheld {
            return Some(withheld.clone());
        }
        if let Some(db) = self.db.iter().find(|d| d.write) {
            return Some(format!("holds a write grant on `{}`", db.name));
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
        Some(format!("may write files in `{}`", dir.guest))
    }
}

/// The HTTP methods a plugin may send, as the WIT names them.
pub const HTTP_METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];

/// The methods that only read, granted when `grants.http.methods` is not
/// given: a plugin limited to them may be called again without harm.
pub const SAFE_METHODS: [&str; 2] = ["GET", "HEAD"];

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
    async fn client(&self) -> Result<&reqwest::Client, String> {
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
