//! Outbound HTTP through the host, to the hosts the migration file grants
//! this plugin (`grants = { http = { hosts = [...] } }`). Anything else is
//! refused with [`HttpError::Denied`] and logged by the host.
//!
//! ```no_run
//! let page = credvault_sdk::http::get("http://api.example.com/items?page=1")?;
//! let items: serde_json::Value = serde_json::from_slice(&page.body).map_err(|e| e.to_string())?;
//! # Ok::<(), String>(())
//! ```

use std::fmt;

/// The answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// Why a request did not get a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The migration file does not grant this host.
    Denied(String),
    /// Granted, but it failed (unreachable, too large, too slow).
    Failed(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Denied(m) => write!(f, "access denied: {m}"),
            HttpError::Failed(m) => write!(f, "{m}"),
        }
    }
}

impl From<HttpError> for String {
    fn from(e: HttpError) -> String {
        e.to_string()
    }
}

/// Sends a request and returns the whole response.
pub fn fetch(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, HttpError> {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::bindings::credvault::migrate::host;
        let request = host::HttpRequest {
            method: method.to_string(),
            url: url.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        };
        match host::http_fetch(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(host::HostError::Denied(m)) => Err(HttpError::Denied(m)),
            Err(host::HostError::Failed(m)) => Err(HttpError::Failed(m)),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (method, headers, body);
        Err(HttpError::Failed(format!(
            "HTTP is only available inside a component (asked for {url})"
        )))
    }
}

/// `GET url`; a status other than 2xx is an error naming it.
pub fn get(url: &str) -> Result<Response, HttpError> {
    let response = fetch("GET", url, &[], &[])?;
    if !(200..300).contains(&response.status) {
        return Err(HttpError::Failed(format!(
            "GET {url} answered {}",
            response.status
        )));
    }
    Ok(response)
}
