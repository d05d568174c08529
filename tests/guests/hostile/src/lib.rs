//! A hostile transform. Its config picks one misbehaviour, done on every row
//! or only on rows whose first column equals `trigger`, so tests can check
//! that bisection isolates exactly the poison row:
//!
//! `{"mode": "loop" | "sleep" | "memory" | "panic" | "stack" | "row-error" |
//!   "shadow-stack" | "extra-rows" | "wrong-type" | "read-file" | "env" | "clock" | "net" |
//!   "configure-panic" | "db-insert" | "http" | "random", "trigger": "..."}`
//!
//! Probes (read-file, env, clock, net, random) append a `probe` text column
//! saying what the sandbox let them see (`random`: 16 hex digits drawn from
//! `wasi:random`).
//!
//! Side effects: `db-insert` runs `sql` on the granted `connection` with the
//! row's first value as its parameter; `http` sends `method` to `url` with
//! `headers` and the row's first value as the body. A refusal is the row's
//! error. With `on_configure = true` each also happens once in `configure`,
//! for the value 0.
#![allow(unsafe_code)] // wit-bindgen's generated exports use unsafe
#![allow(missing_docs)] // a test guest; its generated bindings are documented in wit/

wit_bindgen::generate!({
    path: "../../../wit",
    world: "transform-plugin",
});

use std::cell::RefCell;

use credvault::migrate::types::{Column, ColumnType, RowError, Value};
use exports::credvault::migrate::transform::{Context, Guest, RowResult};

#[derive(serde::Deserialize, Default, Clone)]
struct Config {
    mode: String,
    trigger: Option<String>,
    connection: Option<String>,
    sql: Option<String>,
    method: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// Also do the side effect once in `configure`, for a row `[0]`
    /// (a refusal there is ignored).
    #[serde(default)]
    on_configure: bool,
}

thread_local! {
    static CONFIG: RefCell<Config> = RefCell::new(Config::default());
}

struct Hostile;

const PROBES: [&str; 5] = ["read-file", "env", "clock", "net", "random"];

impl Guest for Hostile {
    fn configure(_ctx: Context, config: String, input: Vec<Column>) -> Result<Vec<Column>, String> {
        let config: Config = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        if config.mode == "configure-panic" {
            panic!("configure exploded");
        }
        let mut output = input;
        if PROBES.contains(&config.mode.as_str()) {
            output.push(Column {
                name: "probe".into(),
                type_: ColumnType::Text,
                nullable: true,
            });
        }
        if config.on_configure {
            let _ = side_effect(&config, &[Value::Int(0)]);
        }
        CONFIG.with(|c| *c.borrow_mut() = config);
        Ok(output)
    }

    fn transform(rows: Vec<Vec<Value>>) -> Vec<RowResult> {
        let config = CONFIG.with(|c| c.borrow().clone());
        let mut results: Vec<RowResult> = rows
            .into_iter()
            .map(|row| misbehave(&config, row))
            .collect();
        if config.mode == "extra-rows" {
            results.push(RowResult::Drop);
        }
        results
    }
}

fn triggered(config: &Config, row: &[Value]) -> bool {
    match (&config.trigger, row.first()) {
        (None, _) => true,
        (Some(t), Some(Value::Text(v))) => t == v,
        (Some(t), Some(Value::Int(v))) => t == &v.to_string(),
        _ => false,
    }
}

fn misbehave(config: &Config, mut row: Vec<Value>) -> RowResult {
    let probe = PROBES.contains(&config.mode.as_str());
    if !triggered(config, &row) {
        if probe {
            row.push(Value::Null);
        }
        return RowResult::Ok(row);
    }
    match config.mode.as_str() {
        "loop" => spin(),
        "sleep" => std::thread::sleep(std::time::Duration::from_secs(3600)),
        "memory" => hoard(),
        "panic" => panic!("hostile guest panicked on purpose"),
        "stack" => {
            recurse(1);
        }
        "shadow-stack" => {
            recurse_big(1);
        }
        "row-error" => {
            return RowResult::Error(RowError {
                column: None,
                message: "refused on purpose".into(),
            });
        }
        "wrong-type" => row[0] = Value::Int(7),
        "read-file" => row.push(Value::Text(read_file())),
        "env" => row.push(Value::Text(env())),
        "clock" => row.push(Value::Text(clock())),
        "net" => row.push(Value::Text(net())),
        "random" => row.push(Value::Text(random())),
        "db-insert" | "http" => {
            if let Err(message) = side_effect(config, &row) {
                return RowResult::Error(RowError {
                    column: None,
                    message,
                });
            }
        }
        _ => {}
    }
    RowResult::Ok(row)
}

fn random() -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("wasi:random answers");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Inserts or sends the row's first value, as the config says.
fn side_effect(config: &Config, row: &[Value]) -> Result<(), String> {
    use credvault::migrate::{db, host};
    let first = row.first().cloned().unwrap_or(Value::Null);
    let refused = |e: host::HostError| match e {
        host::HostError::Denied(m) => format!("denied: {m}"),
        host::HostError::Failed(m) => format!("failed: {m}"),
    };
    if config.mode == "db-insert" {
        let name = config.connection.as_deref().unwrap_or_default();
        let sql = config.sql.as_deref().unwrap_or_default();
        let connection = db::Connection::open(name).map_err(refused)?;
        return connection.execute(sql, &[first]).map(drop).map_err(refused);
    }
    let body = match first {
        Value::Int(n) => n.to_string(),
        Value::Text(t) => t,
        _ => String::new(),
    };
    let request = host::HttpRequest {
        method: config.method.clone().unwrap_or_else(|| "GET".into()),
        url: config.url.clone().unwrap_or_default(),
        headers: config.headers.clone(),
        body: body.into_bytes(),
    };
    host::http_fetch(&request).map(drop).map_err(refused)
}

fn spin() {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn hoard() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

/// Deep recursion on the wasm stack itself (no locals in linear memory).
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(depth: u64) -> u64 {
    recurse(depth + 1).wrapping_mul(31).rotate_left(7) ^ depth
}

/// Deep recursion with big frames, which live on the shadow stack in linear
/// memory: it runs off the bottom of memory.
#[allow(unconditional_recursion)]
fn recurse_big(depth: u64) -> u64 {
    let pad = std::hint::black_box([depth; 64]);
    recurse_big(depth + 1) + pad[3]
}

fn read_file() -> String {
    match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("allowed: read {} bytes", text.len()),
        Err(e) => format!("denied: {e}"),
    }
}

fn env() -> String {
    let vars: Vec<String> = std::env::vars().map(|(k, _)| k).collect();
    if vars.is_empty() {
        "denied: no environment".into()
    } else {
        format!("allowed: {}", vars.join(","))
    }
}

fn clock() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if now == 0 {
        "denied: clock frozen at 1970".into()
    } else {
        format!("allowed: {now}")
    }
}

fn net() -> String {
    match std::net::TcpStream::connect("127.0.0.1:5432") {
        Ok(_) => "allowed: connected".into(),
        Err(e) => format!("denied: {e}"),
    }
}

export!(Hostile);
