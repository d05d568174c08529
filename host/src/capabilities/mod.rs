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
}

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
            client: Arc::new(OnceCell::new()),
        }
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
