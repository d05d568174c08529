//! PostgreSQL in the registry.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::capability::PgConnector;
use super::restore::PgStore;
use crate::capabilities::db::DbConnector;
use crate::config::Endpoint;
use crate::drivers::feed::ChangeFeed;
use crate::drivers::registry::{Driver, Traits, not_mine};
use crate::drivers::restore::RestoreStore;
use crate::drivers::stall::{Probe, described};
use crate::drivers::{ConnectorError, Sink, Source};

/// PostgreSQL.
pub(crate) struct Postgres;

#[async_trait]
impl Driver for Postgres {
    fn name(&self) -> &'static str {
        "PostgreSQL"
    }

    fn noun(&self) -> &'static str {
        "PostgreSQL databases"
    }

    fn handles(&self, endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Postgres(_))
    }

    fn traits(&self) -> Traits {
        Traits {
            case_blind_names: false,
            max_columns: Some((1600, "PostgreSQL")),
            keeps_negative_zero: true,
            sql: true,
            restore_points: true,
            db_capability: true,
            change_feed: true,
        }
    }

    fn server(
        &self,
        role: &str,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Option<Result<(String, Probe), ConnectorError>> {
        let Endpoint::Postgres(ep) = e else {
            return None;
        };
        let (port, probe) = super::prober(ep, base_dir);
        Some(described(role, "postgres", ep, port, probe))
    }

    async fn reader(
        &self,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let Endpoint::Postgres(ep) = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(super::open_source(ep, base_dir).await?))
    }

    async fn writer(&self, e: &Endpoint, base_dir: &Path) -> Result<Box<dyn Sink>, ConnectorError> {
        let Endpoint::Postgres(ep) = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(super::open_sink(ep, base_dir).await?))
    }

    fn db_capability(&self, e: &Endpoint, base_dir: &Path) -> Option<Arc<dyn DbConnector>> {
        let Endpoint::Postgres(server) = e else {
            return None;
        };
        Some(Arc::new(PgConnector {
            server: server.clone(),
            base_dir: base_dir.to_path_buf(),
        }))
    }

    async fn change_feed(
        &self,
        e: &Endpoint,
        base_dir: &Path,
        slot: &str,
    ) -> Option<Result<Box<dyn ChangeFeed>, ConnectorError>> {
        let Endpoint::Postgres(ep) = e else {
            return None;
        };
        let feed = super::PgChanges::open(ep, base_dir, slot).await;
        Some(feed.map(|f| Box::new(f) as Box<dyn ChangeFeed>))
    }

    async fn restore_store(
        &self,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Option<Result<Box<dyn RestoreStore>, ConnectorError>> {
        let Endpoint::Postgres(ep) = e else {
            return None;
        };
        let store = PgStore::open(ep, base_dir).await;
        Some(store.map(|s| Box::new(s) as Box<dyn RestoreStore>))
    }
}
