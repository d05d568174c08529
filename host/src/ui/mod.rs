//! The web dashboard of `credvault serve --ui`: pages over the same state
//! store, and buttons that call the same functions as the CLI commands
//! (`actions`, `sync`, `restore`), with live progress by server-sent
//! events.

mod guard;
mod handlers;
pub mod live;
mod pages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::config::{Catalog, CatalogError, Migration};
use crate::jobs::sync::Turns;
use crate::runtime::Runtime;
use crate::state::StateStore;

pub use guard::Origins;
pub use live::{Both, Live};

/// The address the dashboard listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7860";

/// The dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    /// A non-loopback address without `--allow-remote`.
    #[error(
        "refusing to serve the dashboard on {0}: it has no login, so it listens only on a loopback address (127.0.0.1 or ::1); pass --allow-remote to listen there anyway, behind your own access control"
    )]
    NotLoopback(SocketAddr),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Binds the dashboard's address: a loopback one unless `allow_remote`.
pub async fn bind(addr: SocketAddr, allow_remote: bool) -> Result<TcpListener, UiError> {
    if !addr.ip().is_loopback() && !allow_remote {
        return Err(UiError::NotLoopback(addr));
    }
    TcpListener::bind(addr)
        .await
        .map_err(|source| UiError::Bind { addr, source })
}

/// What the pages read and the buttons act on.
pub struct Dashboard {
    catalog: Arc<Catalog>,
    runtime: Runtime,
    state: StateStore,
    live: Arc<Live>,
    origins: Origins,
    /// Each migration's turn, taken while a run, sync, retry or rollback
    /// of it started here is going, and by the scheduler while it syncs
    /// it: a click can neither start a run twice nor run beside a
    /// scheduled sync of the same migration.
    turns: Arc<Turns>,
}

impl Dashboard {
    /// A dashboard of the `catalog`'s migrations answering `origins`,
    /// taking turns with the scheduler through `turns`.
    pub fn new(
        catalog: Arc<Catalog>,
        runtime: Runtime,
        state: StateStore,
        live: Arc<Live>,
        turns: Arc<Turns>,
        origins: Origins,
    ) -> Self {
        Self {
            catalog,
            runtime,
            state,
            live,
            origins,
            turns,
        }
    }

    /// The origins it answers.
    pub fn origins(&self) -> &[String] {
        self.origins.all()
    }

    /// A migration as its file reads now: pages and clicks act on the
    /// file as edited, as the CLI would.
    fn migration(&self, name: &str) -> Option<Result<Migration, CatalogError>> {
        self.catalog.current(name)
    }
}

/// Serves the dashboard on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, dashboard: Arc<Dashboard>) -> std::io::Result<()> {
    let guarded = axum::middleware::from_fn_with_state(Arc::clone(&dashboard), handlers::guard);
    let app = Router::new()
        .route("/", get(handlers::index))
        .route("/style.css", get(handlers::style))
        .route("/live.js", get(handlers::script))
        .route("/m/{name}", get(handlers::migration))
        .route("/m/{name}/events", get(handlers::events))
        .route("/m/{name}/flagged.jsonl", get(handlers::export_jsonl))
        .route("/m/{name}/flagged.csv", get(handlers::export_csv))
        .route("/m/{name}/flagged/retry", post(handlers::retry))
        .route(
            "/m/{name}/flagged/retry-fixed",
            post(handlers::retry_fixed).layer(DefaultBodyLimit::max(handlers::FIXED_LIMIT)),
        )
        .route("/m/{name}/run", post(handlers::run_now))
        .route("/m/{name}/pause", post(handlers::pause))
        .route("/m/{name}/resume", post(handlers::resume))
        .route(
            "/m/{name}/rollback",
            get(handlers::confirm_rollback).post(handlers::rollback),
        )
        .layer(guarded)
        .with_state(dashboard);
    axum::serve(listener, app).await
}
