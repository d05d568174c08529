//! MariaDB and MySQL in the registry.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::capability::MyConnector;
use super::restore::MySqlStore;
use super::{MySqlSink, MySqlSource};
use crate::capabilities::db::DbConnector;
use crate::config::Endpoint;
use crate::drivers::registry::{Driver, Traits, not_mine};
use crate::drivers::restore::RestoreStore;
use crate::drivers::stall::{Probe, described};
use crate::drivers::{ConnectorError, Sink, Source};

/// MariaDB and MySQL.
pub(crate) struct Mysql;

#[async_trait]
impl Driver for Mysql {
    fn name(&self) -> &'static str {
        "MariaDB/MySQL"
    }

    fn noun(&self) -> &'static str {
        "MariaDB/MySQL databases"
    }

    fn handles(&self, endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Mysql(_))
    }

    fn traits(&self) -> Traits {
        Traits {
            case_blind_names: true,
            // The server allows 4096, but InnoDB (the engine tables are
            // made with) stops at 1017.
            max_columns: Some((1017, "MariaDB/MySQL (InnoDB)")),
            keeps_negative_zero: false,
            sql: true,
            restore_points: true,
            db_capability: true,
            change_feed: false,
        }
    }

    fn server(
        &self,
        role: &str,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Option<Result<(String, Probe), ConnectorError>> {
        let Endpoint::Mysql(ep) = e else {
            return None;
        };
        let (port, probe) = super::prober(ep, base_dir);
        Some(described(role, "mariadb", ep, port, probe))
    }

    async fn reader(
        &self,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let Endpoint::Mysql(ep) = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(MySqlSource::open(ep, base_dir).await?))
    }

    async fn writer(&self, e: &Endpoint, base_dir: &Path) -> Result<Box<dyn Sink>, ConnectorError> {
        let Endpoint::Mysql(ep) = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(MySqlSink::open(ep, base_dir).await?))
    }

    fn db_capability(&self, e: &Endpoint, base_dir: &Path) -> Option<Arc<dyn DbConnector>> {
        let Endpoint::Mysql(server) = e else {
            return None;
        };
        Some(Arc::new(MyConnector {
            server: server.clone(),
            base_dir: base_dir.to_path_buf(),
        }))
    }

    async fn restore_store(
        &self,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Option<Result<Box<dyn RestoreStore>, ConnectorError>> {
        let Endpoint::Mysql(ep) = e else { return None };
        let store = MySqlStore::open(ep, base_dir).await;
        Some(store.map(|s| Box::new(s) as Box<dyn RestoreStore>))
    }
}
