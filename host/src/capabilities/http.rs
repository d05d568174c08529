//! Outbound HTTP for plugins: a small HTTP/1.1 client that only talks to
//! hosts on the grant's allow-list, and stops at the grant's size and time
//! limits. Redirects are not followed: the plugin sees them and must ask
//! again, so every hop is checked against the allow-list.

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{CapabilityError, HttpGrant};

/// Longest response head (status line and headers) accepted.
const MAX_HEAD: usize = 64 * 1024;

/// A request from a plugin.
#[derive(Debug, Clone)]
pub struct Request {
    /// GET, POST, ...
    pub method: String,
    /// An absolute http:// URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body; empty for none.
    pub body: Vec<u8>,
}

/// The whole response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// Body, at most the grant's limit.
    pub body: Vec<u8>,
}

/// Sends `request` if `grant` allows its host.
pub async fn fetch(
    grant: Option<&HttpGrant>,
    request: Request,
) -> Result<Response, CapabilityError> {
    let url = url::Url::parse(&request.url)
        .map_err(|e| CapabilityError::Failed(format!("invalid URL `{}`: {e}", request.url)))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let Some(grant) = grant else {
        return Err(CapabilityError::Denied(format!(
            "no HTTP access is granted, so {host} is refused; add grants.http = {{ hosts = [\"{host}\"] }} to this plugin in the migration file"
        )));
    };
    if !allowed(grant, &host, port) {
        return Err(CapabilityError::Denied(format!(
            "host {host}:{port} is not in grants.http.hosts ({}); add it there if this plugin should reach it",
            grant.hosts.join(", ")
        )));
    }
    if url.scheme() != "http" {
        return Err(CapabilityError::Failed(format!(
            "only http:// URLs are supported, got {}://",
            url.scheme()
        )));
    }
    let exchange = exchange(&url, &host, port, &request, grant.max_response_bytes);
    match tokio::time::timeout(grant.timeout, exchange).await {
        Ok(result) => result.map_err(CapabilityError::Failed),
        Err(_) => Err(CapabilityError::Failed(format!(
            "{host}:{port} did not answer within grants.http.timeout_ms = {}",
            grant.timeout.as_millis()
        ))),
    }
}

/// Whether `host:port` is on the allow-list; an entry without a port allows
/// any port of its host.
fn allowed(grant: &HttpGrant, host: &str, port: u16) -> bool {
    grant.hosts.iter().any(|entry| {
        let (name, entry_port) = match entry.rsplit_once(':') {
            Some((name, p)) if !name.contains(':') => (name, p.parse::<u16>().ok()),
            _ => (entry.as_str(), None),
        };
        name.eq_ignore_ascii_case(host) && entry_port.is_none_or(|p| p == port)
    })
}

async fn exchange(
    url: &url::Url,
    host: &str,
    port: u16,
    request: &Request,
    max_body: usize,
) -> Result<Response, String> {
    let mut stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let head = request_head(url, host, request);
    stream
        .write_all(head.as_bytes())
        .await
        .and(stream.write_all(&request.body).await)
        .map_err(|e| format!("sending to {host}:{port}: {e}"))?;
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader).await?;
    let body = read_body(&mut reader, &headers, max_body).await?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn request_head(url: &url::Url, host: &str, request: &Request) -> String {
    let mut path = url.path().to_string();
    if let Some(query) = url.query() {
        path = format!("{path}?{query}");
    }
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let mut head = format!(
        "{} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        request.method.to_ascii_uppercase(),
        request.body.len()
    );
    for (name, value) in &request.headers {
        let clean = |s: &str| s.replace(['\r', '\n'], " ");
        head.push_str(&format!("{}: {}\r\n", clean(name), clean(value)));
    }
    head.push_str("\r\n");
    head
}

async fn read_head(
    reader: &mut BufReader<TcpStream>,
) -> Result<(u16, Vec<(String, String)>), String> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let mut line = String::new();
        let n = reader
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading the response: {e}"))?;
        total += n;
        if n == 0 || total > MAX_HEAD {
            return Err("the response head is missing or too long".into());
        }
        let line = line.trim_end().to_string();
        if line.is_empty() {
            break;
        }
        lines.push(line);
    }
    let status = lines
        .first()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or("the response has no HTTP status line")?;
    let headers = lines[1..]
        .iter()
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers))
}

async fn read_body(
    reader: &mut BufReader<TcpStream>,
    headers: &[(String, String)],
    max: usize,
) -> Result<Vec<u8>, String> {
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    let too_large = || {
        format!(
            "the response is larger than grants.http.max_response_kb ({} KiB)",
            max / 1024
        )
    };
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        return read_chunked(reader, max).await;
    }
    if let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if length > max {
            return Err(too_large());
        }
        let mut body = vec![0; length];
        reader
            .read_exact(&mut body)
            .await
            .map_err(|e| format!("reading the response body: {e}"))?;
        return Ok(body);
    }
    let mut body = Vec::new();
    let read = reader
        .take(max as u64 + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|e| format!("reading the response body: {e}"))?;
    if read > max {
        return Err(too_large());
    }
    Ok(body)
}

async fn read_chunked(reader: &mut BufReader<TcpStream>, max: usize) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        reader
            .read_line(&mut line)
            .await
            .map_err(|e| format!("reading a response chunk: {e}"))?;
        let size_text = line.trim().split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size `{}`", line.trim()))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len() + size > max {
            return Err(format!(
                "the response is larger than grants.http.max_response_kb ({} KiB)",
                max / 1024
            ));
        }
        let start = body.len();
        body.resize(start + size + 2, 0);
        reader
            .read_exact(&mut body[start..])
            .await
            .map_err(|e| format!("reading a response chunk: {e}"))?;
        body.truncate(start + size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hosts: &[&str]) -> HttpGrant {
        HttpGrant {
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            max_response_bytes: 1024,
            timeout: std::time::Duration::from_secs(1),
        }
    }

    #[test]
    fn the_allow_list_matches_hosts_and_ports() {
        let g = grant(&["api.example.com", "127.0.0.1:8080"]);
        assert!(allowed(&g, "API.example.com", 443));
        assert!(allowed(&g, "127.0.0.1", 8080));
        assert!(!allowed(&g, "127.0.0.1", 8081));
        assert!(!allowed(&g, "evil.example.com", 80));
    }

    #[tokio::test]
    async fn ungranted_hosts_are_denied_before_connecting() {
        let request = Request {
            method: "GET".into(),
            url: "http://203.0.113.9/x".into(),
            headers: vec![],
            body: vec![],
        };
        let denied = fetch(Some(&grant(&["api.example.com"])), request.clone()).await;
        assert!(
            matches!(denied, Err(CapabilityError::Denied(m)) if m.contains("203.0.113.9:80 is not in grants.http.hosts"))
        );
        let none = fetch(None, request).await;
        assert!(
            matches!(none, Err(CapabilityError::Denied(m)) if m.contains("no HTTP access is granted"))
        );
    }
}
