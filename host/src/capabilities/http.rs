//! Outbound HTTP and HTTPS for plugins, through reqwest (rustls, with the
//! webpki roots plus an optional private CA from the grant). Only hosts on
//! the grant's allow-list are reached; the size cap is enforced while the
//! body streams in, and the whole exchange has the grant's timeout.
//! Redirects are not followed and proxies from the environment are not
//! used: the plugin sees a redirect and must ask again, so every hop is
//! checked against the allow-list. Only the methods the WIT names are sent,
//! and of those only the grant's (GET and HEAD by default); the host sets
//! `Host` (always the URL's host) and the framing headers itself.

use super::{CapabilityError, HTTP_METHODS, HttpGrant};

/// Headers a plugin may not set: they name another virtual host than the
/// one granted, or change how the request is framed on the connection
/// (request smuggling). The host sets them from the URL and the body.
const HOST_HEADERS: [&str; 9] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "keep-alive",
    "proxy-connection",
];

/// A request from a plugin.
#[derive(Debug, Clone)]
pub struct Request {
    /// GET, POST, ...
    pub method: String,
    /// An absolute http:// or https:// URL.
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
    if !matches!(url.scheme(), "http" | "https") {
        return Err(CapabilityError::Failed(format!(
            "only http:// and https:// URLs are supported, got {}://",
            url.scheme()
        )));
    }
    check_method(grant, &request.method)?;
    check_headers(&request.headers)?;
    let client = grant
        .client()
        .await
        .map_err(|e| CapabilityError::Failed(e.to_string()))?;
    let exchange = exchange(client, url, &host, port, request, grant.max_response_bytes);
    match tokio::time::timeout(grant.timeout, exchange).await {
        Ok(result) => result.map_err(|e| CapabilityError::Failed(e.to_string())),
        Err(_) => Err(CapabilityError::Failed(format!(
            "{host}:{port} did not answer within grants.http.timeout_ms = {}",
            grant.timeout.as_millis()
        ))),
    }
}

/// Refuses a method the WIT does not name (`TRACE`, `CONNECT`, `get`, …)
/// and one the grant does not allow.
fn check_method(grant: &HttpGrant, method: &str) -> Result<(), CapabilityError> {
    if !HTTP_METHODS.contains(&method) {
        let upper = method.to_ascii_uppercase();
        let hint = match HTTP_METHODS.contains(&upper.as_str()) {
            true => format!(" (methods are upper case: `{upper}`)"),
            false => String::new(),
        };
        return Err(CapabilityError::Failed(format!(
            "`{}` is not a method plugins may send{hint}; the host sends only {}",
            crate::model::text::untrusted(method),
            HTTP_METHODS.join(", ")
        )));
    }
    if !grant.methods.iter().any(|m| m == method) {
        return Err(CapabilityError::Denied(format!(
            "{method} is not in grants.http.methods ({}); add \"{method}\" there if this plugin should send it (`credvault preview` and validation then no longer call it on rows, since that would send its requests again)",
            grant.methods.join(", ")
        )));
    }
    Ok(())
}

/// Refuses the headers the host sets itself.
fn check_headers(headers: &[(String, String)]) -> Result<(), CapabilityError> {
    let Some((name, _)) = headers
        .iter()
        .find(|(name, _)| HOST_HEADERS.contains(&name.trim().to_ascii_lowercase().as_str()))
    else {
        return Ok(());
    };
    Err(CapabilityError::Failed(format!(
        "a plugin may not set the `{}` header: the host sets Host to the URL's host and frames the request itself; leave it out",
        crate::model::text::untrusted(name.trim())
    )))
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

/// Why a grant's HTTP client could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The grant's `ca_file` could not be read.
    #[error(
        "cannot read grants.http.ca_file {}: {source}; point it at the PEM certificate of the CA that signs the server's certificate",
        path.display()
    )]
    ReadCa {
        /// The file.
        path: std::path::PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The grant's `ca_file` holds no certificate, or a broken one.
    #[error("grants.http.ca_file {} holds no PEM certificate{}", path.display(), source.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NoCa {
        /// The file.
        path: std::path::PathBuf,
        /// The parser's error, if it failed.
        source: Option<reqwest::Error>,
    },
    /// The client could not be built.
    #[error("cannot set up the HTTP client: {}", chain(source))]
    Build {
        /// The builder's error.
        source: reqwest::Error,
    },
}

/// A client for one grant: the webpki roots and the grant's `ca_file`, no
/// redirects, no proxies.
pub(super) fn build_client(
    ca_file: Option<&std::path::Path>,
) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(true)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .user_agent(concat!("credvault/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|source| ClientError::ReadCa {
            path: path.to_path_buf(),
            source,
        })?;
        let no_ca = |source| ClientError::NoCa {
            path: path.to_path_buf(),
            source,
        };
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| no_ca(Some(e)))?;
        if certs.is_empty() {
            return Err(no_ca(None));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|source| ClientError::Build { source })
}

/// Why a request got no (acceptable) response; the text says what to
/// check, and is what the plugin is told.
#[derive(Debug, thiserror::Error)]
enum ExchangeError {
    /// The plugin named no HTTP method.
    #[error("`{0}` is not an HTTP method")]
    Method(String),
    /// The server's certificate was refused.
    #[error(
        "TLS failed with {host}:{port}: the server's certificate is not trusted or not valid for `{host}` ({}); if a private CA signs it, set grants.http.ca_file to that CA's PEM certificate",
        chain(source)
    )]
    Tls {
        host: String,
        port: u16,
        source: reqwest::Error,
    },
    /// No connection could be made.
    #[error("cannot connect to {host}:{port}: {}", chain(source))]
    Connect {
        host: String,
        port: u16,
        source: reqwest::Error,
    },
    /// The request could not be built (a bad header, say).
    #[error("the request is malformed: {}", chain(source))]
    Malformed { source: reqwest::Error },
    /// Anything else that stopped the request.
    #[error("the request to {host}:{port} failed: {}", chain(source))]
    Send {
        host: String,
        port: u16,
        source: reqwest::Error,
    },
    /// The response is over the grant's size cap (in KiB).
    #[error("the response is larger than grants.http.max_response_kb ({0} KiB)")]
    TooLarge(usize),
    /// The response broke off while its body was read.
    #[error("reading the response from {host}:{port}: {}", chain(source))]
    Read {
        host: String,
        port: u16,
        source: reqwest::Error,
    },
}

async fn exchange(
    client: &reqwest::Client,
    url: url::Url,
    host: &str,
    port: u16,
    request: Request,
    max_body: usize,
) -> Result<Response, ExchangeError> {
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| ExchangeError::Method(request.method.clone()))?;
    let idempotent = matches!(method, reqwest::Method::GET | reqwest::Method::HEAD);
    let mut builder = client.request(method, url).body(request.body);
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    // A server may close an idle kept-alive connection just as a request
    // goes out on it; a read-only request is then safely sent once more.
    let retry = idempotent.then(|| builder.try_clone()).flatten();
    let mut response = match builder.send().await {
        Err(e) if retry.is_some() && connection_dropped(&e) => retry.unwrap().send().await,
        sent => sent,
    }
    .map_err(|e| send_error(e, host, port))?;
    let too_large = || ExchangeError::TooLarge(max_body / 1024);
    if response
        .content_length()
        .is_some_and(|n| n > max_body as u64)
    {
        return Err(too_large());
    }
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            let value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            (n.as_str().to_ascii_lowercase(), value)
        })
        .collect();
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| ExchangeError::Read {
            host: host.to_string(),
            port,
            source,
        })?
    {
        if body.len() + chunk.len() > max_body {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// Whether the connection broke under the request (reset, aborted, closed).
fn connection_dropped(err: &reqwest::Error) -> bool {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            )
        {
            return true;
        }
        source = cause.source();
    }
    false
}

/// Why a request got no response, saying what to check.
fn send_error(source: reqwest::Error, host: &str, port: u16) -> ExchangeError {
    let why = chain(&source);
    let host = host.to_string();
    if why.contains("certificate") || why.contains("Certificate") {
        return ExchangeError::Tls { host, port, source };
    }
    if source.is_connect() {
        return ExchangeError::Connect { host, port, source };
    }
    if source.is_builder() {
        return ExchangeError::Malformed { source };
    }
    ExchangeError::Send { host, port, source }
}

/// An error with its causes, `outer: inner: innermost`.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text = format!("{text}: {cause_text}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(hosts: &[&str]) -> HttpGrant {
        HttpGrant::new(
            hosts.iter().map(|h| h.to_string()).collect(),
            1024,
            std::time::Duration::from_secs(1),
            None,
        )
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
            url: "https://203.0.113.9/x".into(),
            headers: vec![],
            body: vec![],
        };
        let denied = fetch(Some(&grant(&["api.example.com"])), request.clone()).await;
        assert!(
            matches!(denied, Err(CapabilityError::Denied(m)) if m.contains("203.0.113.9:443 is not in grants.http.hosts"))
        );
        let none = fetch(None, request).await;
        assert!(
            matches!(none, Err(CapabilityError::Denied(m)) if m.contains("no HTTP access is granted"))
        );
    }

    #[tokio::test]
    async fn an_endless_body_is_cut_off_at_the_cap_while_it_streams() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            read_head(&mut socket).await;
            let head = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
            socket.write_all(head.as_bytes()).await.unwrap();
            // No length and no end: only a cap checked while streaming stops it.
            while socket.write_all(&[b'x'; 4096]).await.is_ok() {}
        });
        let request = Request {
            method: "GET".into(),
            url: format!("http://127.0.0.1:{port}/"),
            headers: vec![],
            body: vec![],
        };
        let mut g = grant(&["127.0.0.1"]);
        g.timeout = std::time::Duration::from_secs(30);
        let started = std::time::Instant::now();
        let err = fetch(Some(&g), request).await.unwrap_err();
        assert!(
            matches!(&err, CapabilityError::Failed(m) if m.contains("larger than grants.http.max_response_kb (1 KiB)")),
            "{err:?}"
        );
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    /// Reads one request head from `socket`.
    async fn read_head(socket: &mut tokio::net::TcpStream) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0];
            if socket.read_exact(&mut byte).await.is_err() {
                break;
            }
            head.push(byte[0]);
        }
        head
    }

    #[tokio::test]
    async fn a_get_on_a_kept_alive_connection_reset_by_the_server_is_sent_again() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            let (mut kept, _) = listener.accept().await.unwrap();
            read_head(&mut kept).await;
            kept.write_all(ok).await.unwrap();
            // The second request arrives on the kept-alive connection,
            // which the server then resets unanswered.
            read_head(&mut kept).await;
            kept.set_zero_linger().unwrap();
            drop(kept);
            let (mut fresh, _) = listener.accept().await.unwrap();
            read_head(&mut fresh).await;
            fresh.write_all(ok).await.unwrap();
        });
        let g = grant(&["127.0.0.1"]);
        for _ in 0..2 {
            let request = Request {
                method: "GET".into(),
                url: format!("http://127.0.0.1:{port}/"),
                headers: vec![],
                body: vec![],
            };
            let response = fetch(Some(&g), request).await.unwrap();
            assert_eq!(response.body, b"ok");
        }
    }

    #[test]
    fn only_the_wit_methods_the_grant_lists_are_sent() {
        let g = grant(&["api.example.com"]);
        assert!(check_method(&g, "GET").is_ok() && check_method(&g, "HEAD").is_ok());
        for method in ["TRACE", "CONNECT", "OPTIONS", "get", "GET ", "G\u{0}ET"] {
            let err = check_method(&g, method).unwrap_err();
            assert!(
                matches!(&err, CapabilityError::Failed(m) if m.contains("is not a method plugins may send")),
                "{method}: {err:?}"
            );
        }
        let denied = check_method(&g, "POST").unwrap_err();
        assert!(
            matches!(&denied, CapabilityError::Denied(m) if m.contains("POST is not in grants.http.methods (GET, HEAD)")),
            "{denied:?}"
        );
        let g = g.with_methods(vec!["POST".into()]);
        assert!(check_method(&g, "POST").is_ok());
        assert!(g.clone().methods == ["POST"]);
    }

    #[test]
    fn host_and_framing_headers_are_the_hosts_own() {
        let headers = |name: &str| vec![(name.to_string(), "x".to_string())];
        for name in [
            "Host",
            "host",
            " HOST",
            "Transfer-Encoding",
            "content-length",
            "Connection",
            "Upgrade",
        ] {
            assert!(check_headers(&headers(name)).is_err(), "{name}");
        }
        assert!(check_headers(&headers("Authorization")).is_ok());
    }

    #[tokio::test]
    async fn a_redirect_comes_back_to_the_plugin_unfollowed() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            read_head(&mut socket).await;
            let moved = "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\nContent-Length: 0\r\n\r\n";
            socket.write_all(moved.as_bytes()).await.unwrap();
        });
        let request = Request {
            method: "GET".into(),
            url: format!("http://127.0.0.1:{port}/"),
            headers: vec![],
            body: vec![],
        };
        let response = fetch(Some(&grant(&["127.0.0.1"])), request).await.unwrap();
        assert_eq!(response.status, 302);
    }

    #[test]
    fn a_ca_file_that_is_not_a_certificate_is_refused_with_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate").unwrap();
        let err = build_client(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        let missing = build_client(Some(&dir.path().join("none.pem"))).unwrap_err();
        assert!(
            std::error::Error::source(&missing).is_some_and(|e| e.is::<std::io::Error>()),
            "the I/O error is kept"
        );
        let missing = missing.to_string();
        assert!(
            missing.contains("cannot read grants.http.ca_file"),
            "{missing}"
        );
    }
}
