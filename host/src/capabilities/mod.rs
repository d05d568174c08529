//! What a plugin may reach beyond its own memory, as granted by the
//! migration file: directories, HTTP hosts. Everything here is denied unless
//! granted; the runtime wires these grants into a plugin's store.

pub mod http;

use std::path::PathBuf;
use std::time::Duration;

/// Everything one plugin is granted. The default grants nothing.
#[derive(Debug, Clone, Default)]
pub struct Grants {
    /// Host directories the plugin sees.
    pub dirs: Vec<DirGrant>,
    /// Outbound HTTP, if granted.
    pub http: Option<HttpGrant>,
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

/// Outbound HTTP to an allow-list of hosts, with limits on each response.
#[derive(Debug, Clone)]
pub struct HttpGrant {
    /// Host names or addresses, optionally `host:port`.
    pub hosts: Vec<String>,
    /// The largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// How long one request may take, connection to last byte.
    pub timeout: Duration,
}

/// Why the host did not fulfil a plugin's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapabilityError {
    /// The migration file does not grant it.
    Denied(String),
    /// Granted, but it failed.
    Failed(String),
}
