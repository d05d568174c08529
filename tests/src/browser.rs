//! A real headless browser for the dashboard's tests: Debian's chromium
//! driven by chromedriver over the W3C WebDriver HTTP API, with a tiny
//! HTTP/1.1 client (also used to send raw requests to the dashboard).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How to install what the browser tests need.
pub const INSTALL: &str = "apt-get update && apt-get install -y chromium chromium-driver (or CREDVAULT_UI_TESTS=1 scripts/setup)";

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub body: String,
}

impl Response {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one HTTP/1.1 request to `addr` (`127.0.0.1:port`) and reads the
/// whole response: exactly the headers given, plus Host (unless given),
/// Content-Length and `Connection: close`.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Response {
    let mut stream =
        TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("a read timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    stream
        .write_all(request.as_bytes())
        .expect("sending a request");
    parse(&read_response(&mut stream))
}

/// Reads one response: by its Content-Length, to its last chunk, or to the
/// end (some servers keep the connection open despite `Connection: close`).
fn read_response(stream: &mut TcpStream) -> Vec<u8> {
    let mut raw = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).expect("reading a response");
        if n == 0 {
            return raw;
        }
        raw.extend_from_slice(&buf[..n]);
        if complete(&raw) {
            return raw;
        }
    }
}

fn complete(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let body = &raw[end + 4..];
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    match length {
        Some(length) => body.len() >= length,
        None if head.contains("transfer-encoding: chunked") => body.ends_with(b"0\r\n\r\n"),
        None => false,
    }
}

fn parse(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = match chunked {
        true => unchunk(body),
        false => body.to_string(),
    };
    Response {
        status,
        headers,
        body,
    }
}

fn unchunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// A headless chromium session.
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    downloads: tempfile::TempDir,
}

/// A free port on loopback (free when asked; the driver takes it at once).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

fn installed(program: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|p| p.join(program))
        .find(|p| p.is_file())
}

impl Browser {
    /// Starts chromedriver and a headless chromium; fails (never skips)
    /// when they are not installed, saying how to install them.
    pub fn start() -> Self {
        let driver = installed("chromedriver")
            .unwrap_or_else(|| panic!("chromedriver is not installed: {INSTALL}"));
        let chromium =
            installed("chromium").unwrap_or_else(|| panic!("chromium is not installed: {INSTALL}"));
        let port = free_port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting chromedriver: {e}; {INSTALL}"));
        let addr = format!("127.0.0.1:{port}");
        let downloads = tempfile::tempdir().expect("a downloads folder");
        let mut browser = Self {
            driver: child,
            addr,
            session: String::new(),
            downloads,
        };
        browser.wait_ready();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--window-size=1280,1000"],
                "prefs": {
                    "download.default_directory": browser.downloads.path(),
                    "download.prompt_for_download": false
                }
            }
        }}});
        let created = browser.call("POST", "/session", Some(capabilities));
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("chromedriver made no session: {created}"))
            .to_string();
        browser
    }

    fn wait_ready(&self) {
        let start = Instant::now();
        loop {
            if TcpStream::connect(&self.addr).is_ok() {
                let status = http(&self.addr, "GET", "/status", &[], "");
                if status.body.contains("\"ready\":true") {
                    return;
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not get ready on {}",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let headers = [("Content-Type", "application/json; charset=utf-8")];
        let response = http(&self.addr, method, path, &headers, &body);
        let value: Value = serde_json::from_str(&response.body)
            .unwrap_or_else(|e| panic!("chromedriver answered {path} with {}: {e}", response.body));
        if response.status != 200 {
            panic!(
                "WebDriver {method} {path} failed ({}): {}",
                response.status, value["value"]
            );
        }
        value["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens a URL.
    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    /// The current URL.
    pub fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the page; what it returns.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    fn element(&self, css: &str) -> Option<String> {
        let found = self.script(
            "return document.querySelector(arguments[0]) !== null;",
            json!([css]),
        );
        if found != Value::Bool(true) {
            return None;
        }
        let element = self.session_call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        element
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// Clicks the element `css` selects, waiting for it to appear.
    pub fn click(&self, css: &str) {
        let id = self.wait(&format!("`{css}` to appear"), || self.element(css));
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Chooses `file` in the file input `css` selects.
    pub fn upload(&self, css: &str, file: &Path) {
        let id = self.wait(&format!("`{css}` to appear"), || self.element(css));
        let text = file.to_str().expect("a UTF-8 path");
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The text of the element `css` selects, if there is one.
    pub fn text(&self, css: &str) -> Option<String> {
        let text = self.script(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            json!([css]),
        );
        text.as_str().map(str::to_string)
    }

    /// Waits up to 60 s for `what` to give a value.
    pub fn wait<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(value) = probe() {
                return value;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; the page at {} shows: {}",
                self.url(),
                self.text("main").unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for a file to be downloaded (complete) and returns its path.
    pub fn downloaded(&self, name: &str) -> PathBuf {
        let path = self.downloads.path().join(name);
        self.wait(&format!("the download {name}"), || {
            let partial = self
                .downloads
                .path()
                .join(format!("{name}.crdownload"))
                .exists();
            (path.exists() && !partial).then(|| path.clone())
        })
    }

    /// Saves a PNG screenshot of the page.
    pub fn screenshot(&self, path: &Path) {
        let data = self.session_call("GET", "/screenshot", None);
        let png = base64(data.as_str().expect("base64 PNG"));
        std::fs::write(path, png).expect("writing a screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                &self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                &[],
                "",
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Decodes standard base64 (what WebDriver screenshots are).
fn base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => 0,
        }
    };
    let clean: Vec<u8> = text.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk.iter().fold(0u32, |acc, &c| (acc << 6) | value(c)) << (6 * (4 - chunk.len()));
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad.min(2)]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_base64_and_chunks() {
        assert_eq!(base64("aGVsbG8="), b"hello");
        assert_eq!(base64("aGk="), b"hi");
        assert_eq!(base64("aGV5"), b"hey");
        assert_eq!(unchunk("5\r\nhello\r\n3\r\n th\r\n0\r\n\r\n"), "hello th");
    }
}
