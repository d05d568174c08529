//! What a plugin's store holds: a deny-by-default WASI context, the memory
//! guard, captured stderr, the log target, and the capabilities granted to
//! it (HTTP, database connections).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::{Resource, ResourceTable};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{
    FsPerms, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView,
};

use super::bindings::db::{self, QueryResult};
use super::bindings::host::{self, HostError, HttpRequest, HttpResponse};
use super::bindings::{LogLevel, Value, log};
use super::convert::{from_wit, to_wit_columns, to_wit_row};
use crate::capabilities::db::DbHandle;
use crate::capabilities::{CapabilityError, DbGrant, Grants, HttpGrant, http};

/// How much of a plugin's stderr is kept to explain a panic.
const STDERR_CAPTURE: usize = 64 * 1024;
/// Log lines a plugin may write per instance before the host drops the rest.
const MAX_LOG_LINES: u32 = 1_000;
/// Longest log line kept, in bytes.
const MAX_LOG_LINE: usize = 2_000;
/// Database connections an instance may hold open at once: each is only an
/// entry in the store's table, but a loop of opens must not grow it forever.
const MAX_DB_HANDLES: usize = 64;
/// How much of a refused statement the host's log line shows.
const LOGGED_SQL: usize = 200;

/// Per-instance state of a plugin store.
pub(crate) struct PluginState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) memory: MemoryGuard,
    pub(crate) stderr: MemoryOutputPipe,
    plugin: String,
    scope: String,
    log_lines: u32,
    http: Option<HttpGrant>,
    db: Vec<DbGrant>,
    db_handles: usize,
}

/// A directory of the plugin's grants that could not be opened for it.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot open the granted directory {} ({error:#}); create it or fix grants.dirs",
    dir.display()
)]
pub(crate) struct GrantError {
    /// The directory on the host.
    dir: std::path::PathBuf,
    /// Why WASI could not open it.
    #[source]
    error: wasmtime::Error,
}

impl PluginState {
    /// A state with no network, environment or real clock, and no files
    /// but the directories `grants` names.
    /// Its random bytes are fresh (see [`RandomUse`]).
    pub(crate) fn new(
        plugin: &str,
        scope: &str,
        memory_cap: usize,
        grants: &Grants,
        random: &RandomUse,
    ) -> Result<Self, GrantError> {
        let stderr = MemoryOutputPipe::new(STDERR_CAPTURE);
        let (who, at) = (plugin.to_string(), scope.to_string());
        let mut wasi = WasiCtxBuilder::new();
        for dir in &grants.dirs {
            let perms = match dir.write {
                true => FsPerms::ReadWrite,
                false => FsPerms::ReadOnly,
            };
            wasi.preopened_dir(&dir.host, &dir.guest, perms)
                .map_err(|error| GrantError {
                    dir: dir.host.clone(),
                    error,
                })?;
        }
        let wasi = wasi
            .secure_random(random.watch(wasmtime_wasi::random::thread_rng()))
            .insecure_random(random.watch(wasmtime_wasi::random::thread_rng()))
            .stderr(stderr.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            // Sockets may be created, so that every address a plugin tries
            // is refused here, where the attempt can be logged.
            .allow_tcp(true)
            .allow_udp(true)
            .allow_ip_name_lookup(false)
            .socket_addr_check(move |addr, usage| {
                tracing::warn!(plugin = %who, scope = %at, "denied network access ({usage:?} {addr}): no host is granted");
                Box::pin(async { false })
            })
            .build();
        Ok(Self {
            wasi,
            table: ResourceTable::new(),
            memory: MemoryGuard::new(memory_cap),
            stderr,
            plugin: plugin.to_string(),
            scope: scope.to_string(),
            log_lines: 0,
            http: grants.http.clone(),
            db: grants.db.clone(),
            db_handles: 0,
        })
    }

    /// Logs a refused capability with the plugin and its table.
    fn denied(&self, what: &str, message: &str) {
        let (plugin, scope) = (&self.plugin, &self.scope);
        tracing::warn!(plugin, scope, "denied {what}: {message}");
    }

    /// What the plugin printed to stderr, lossily decoded.
    pub(crate) fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl log::Host for PluginState {
    fn log(&mut self, level: LogLevel, message: String) {
        self.log_lines += 1;
        if self.log_lines > MAX_LOG_LINES {
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE {
            let cut = message.floor_char_boundary(MAX_LOG_LINE);
            message.truncate(cut);
            message.push('…');
        }
        // A plugin's words reach a terminal: no escape sequence, line
        // break or bidi mark of its own.
        let message = crate::model::text::untrusted(&message);
        let (plugin, scope) = (&self.plugin, &self.scope);
        match level {
            LogLevel::Trace => tracing::trace!(plugin, scope, "{message}"),
            LogLevel::Debug => tracing::debug!(plugin, scope, "{message}"),
            LogLevel::Info => tracing::info!(plugin, scope, "{message}"),
            LogLevel::Warn => tracing::warn!(plugin, scope, "{message}"),
            LogLevel::Error => tracing::error!(plugin, scope, "{message}"),
        }
        if self.log_lines == MAX_LOG_LINES {
            tracing::warn!(
                plugin,
                scope,
                "plugin log limit reached; further lines dropped"
            );
        }
    }
}

impl super::bindings::types::Host for PluginState {}

impl host::Host for PluginState {
    async fn http_fetch(&mut self, request: HttpRequest) -> Result<HttpResponse, HostError> {
        let request = http::Request {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: request.body,
        };
        let url = request.url.clone();
        match http::fetch(self.http.as_ref(), request).await {
            Ok(r) => Ok(HttpResponse {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(CapabilityError::Denied(message)) => {
                self.denied(&format!("HTTP request to {url}"), &message);
                Err(HostError::Denied(message))
            }
            Err(CapabilityError::Failed(message)) => Err(HostError::Failed(message)),
        }
    }
}

impl PluginState {
    /// The grant behind an open connection.
    fn db_grant(&self, handle: &Resource<DbHandle>) -> Result<&DbGrant, HostError> {
        let handle = self
            .table
            .get(handle)
            .map_err(|e| HostError::Failed(format!("not an open connection: {e}")))?;
        Ok(&self.db[handle.grant])
    }

    /// A failed statement as the plugin sees it; a refused write is logged.
    fn db_error(&self, connection: &str, sql: &str, err: CapabilityError) -> HostError {
        match err {
            CapabilityError::Denied(message) => {
                let cut = sql.floor_char_boundary(LOGGED_SQL.min(sql.len()));
                let statement = match cut < sql.len() {
                    true => format!("{}…", &sql[..cut]),
                    false => sql.to_string(),
                };
                self.denied(
                    &format!("database write through connection `{connection}` ({statement})"),
                    &message,
                );
                HostError::Denied(message)
            }
            CapabilityError::Failed(message) => HostError::Failed(message),
        }
    }
}

impl db::Host for PluginState {}

impl db::HostConnection for PluginState {
    async fn open(&mut self, name: String) -> Result<Resource<DbHandle>, HostError> {
        let handle = match crate::capabilities::db::open(&self.db, &name) {
            Ok(handle) => handle,
            Err(CapabilityError::Denied(message)) => {
                self.denied(&format!("database connection `{name}`"), &message);
                return Err(HostError::Denied(message));
            }
            Err(CapabilityError::Failed(message)) => return Err(HostError::Failed(message)),
        };
        if self.db_handles >= MAX_DB_HANDLES {
            return Err(HostError::Failed(format!(
                "this plugin instance already holds {MAX_DB_HANDLES} open connections; drop the ones it no longer needs (or reuse one)"
            )));
        }
        // Connect now, so a wrong password or an unreachable server shows
        // at `open`, where the plugin expects it.
        self.db[handle.grant]
            .query("SELECT 1", &[])
            .await
            .map_err(|e| self.db_error(&name, "SELECT 1", e))?;
        let resource = self
            .table
            .push(handle)
            .map_err(|e| HostError::Failed(format!("cannot keep the connection: {e}")))?;
        self.db_handles += 1;
        Ok(resource)
    }

    async fn query(
        &mut self,
        handle: Resource<DbHandle>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<QueryResult, HostError> {
        let grant = self.db_grant(&handle)?.clone();
        let params: Vec<_> = params.into_iter().map(from_wit).collect();
        match grant.query(&sql, &params).await {
            Ok(result) => Ok(QueryResult {
                columns: to_wit_columns(&result.columns),
                rows: result.rows.into_iter().map(to_wit_row).collect(),
            }),
            Err(e) => Err(self.db_error(&grant.name, &sql, e)),
        }
    }

    async fn execute(
        &mut self,
        handle: Resource<DbHandle>,
        sql: String,
        params: Vec<Value>,
    ) -> Result<u64, HostError> {
        let grant = self.db_grant(&handle)?.clone();
        let params: Vec<_> = params.into_iter().map(from_wit).collect();
        grant
            .execute(&sql, &params)
            .await
            .map_err(|e| self.db_error(&grant.name, &sql, e))
    }

    async fn drop(&mut self, handle: Resource<DbHandle>) -> wasmtime::Result<()> {
        self.table.delete(handle)?;
        self.db_handles = self.db_handles.saturating_sub(1);
        Ok(())
    }
}

/// Whether a plugin drew random bytes (`wasi:random`), shared by all its
/// instances. The bytes stay unpredictable and fresh on every call: a
/// seed kept so that validation could replay them would let whoever reads
/// the state store recompute any secret a plugin made from them, and would
/// not replay anyway (which rows a draw serves depends on how the rows were
/// batched). Validation reads this flag instead, to say why the values of
/// such a transform cannot be re-derived.
#[derive(Debug, Clone, Default)]
pub(crate) struct RandomUse(Arc<AtomicBool>);

impl RandomUse {
    /// Whether any instance drew random bytes so far.
    pub(crate) fn drawn(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `rng`, noting each draw from it here.
    fn watch(&self, rng: Box<dyn rand_core::Rng + Send>) -> Watched {
        Watched {
            rng,
            drawn: self.0.clone(),
        }
    }
}

/// A generator that notes when it is drawn from.
struct Watched {
    rng: Box<dyn rand_core::Rng + Send>,
    drawn: Arc<AtomicBool>,
}

impl rand_core::TryRng for Watched {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        self.drawn.store(true, Ordering::Relaxed);
        Ok(self.rng.next_u32())
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        self.drawn.store(true, Ordering::Relaxed);
        Ok(self.rng.next_u64())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.drawn.store(true, Ordering::Relaxed);
        self.rng.fill_bytes(dst);
        Ok(())
    }
}

/// Caps linear memory and remembers when the cap was hit, so the host can
/// report "memory cap" instead of the guest's own abort message.
pub(crate) struct MemoryGuard {
    cap: usize,
    pub(crate) peak: usize,
    pub(crate) refused: Option<usize>,
}

impl MemoryGuard {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            peak: 0,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryGuard {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.cap {
            self.refused = Some(desired);
            return Ok(false);
        }
        self.peak = self.peak.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // A table element is a pointer: bound tables by the same memory cap.
        Ok(desired.saturating_mul(size_of::<usize>()) <= self.cap)
    }
}

/// Plugins get no clock unless granted: time stands still at 1970-01-01.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
