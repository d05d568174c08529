//! SQLite in the registry.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;

use super::capability::LiteConnector;
use super::restore::SqliteStore;
use super::{SqliteSink, SqliteSource};
use crate::capabilities::db::DbConnector;
use crate::config::Endpoint;
use crate::drivers::registry::{Driver, Traits, not_mine};
use crate::drivers::restore::RestoreStore;
use crate::drivers::{ConnectorError, Sink, Source};

/// SQLite files.
pub(crate) struct Sqlite;

#[async_trait]
impl Driver for Sqlite {
    fn name(&self) -> &'static str {
        "SQLite"
    }

    fn noun(&self) -> &'static str {
        "SQLite files"
    }

    fn handles(&self, endpoint: &Endpoint) -> bool {
        matches!(endpoint, Endpoint::Sqlite { .. })
    }

    fn traits(&self) -> Traits {
        Traits {
            case_blind_names: true,
            // SQLITE_MAX_COLUMN's default; a build may lower it, rarely
            // raise it.
            max_columns: Some((2000, "SQLite")),
            keeps_negative_zero: false,
            sql: true,
            restore_points: true,
            db_capability: true,
            change_feed: false,
        }
    }

    async fn reader(
        &self,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Result<Box<dyn Source>, ConnectorError> {
        let Endpoint::Sqlite { path } = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(SqliteSource::open(&base_dir.join(path)).await?))
    }

    async fn writer(&self, e: &Endpoint, base_dir: &Path) -> Result<Box<dyn Sink>, ConnectorError> {
        let Endpoint::Sqlite { path } = e else {
            return Err(not_mine(self, e));
        };
        Ok(Box::new(SqliteSink::open(&base_dir.join(path)).await?))
    }

    fn db_capability(&self, e: &Endpoint, base_dir: &Path) -> Option<Arc<dyn DbConnector>> {
        let Endpoint::Sqlite { path } = e else {
            return None;
        };
        Some(Arc::new(LiteConnector {
            path: base_dir.join(path),
        }))
    }

    async fn restore_store(
        &self,
        e: &Endpoint,
        base_dir: &Path,
    ) -> Option<Result<Box<dyn RestoreStore>, ConnectorError>> {
        let Endpoint::Sqlite { path } = e else {
            return None;
        };
        let store = SqliteStore::open(&base_dir.join(path)).await;
        Some(store.map(|s| Box::new(s) as Box<dyn RestoreStore>))
    }
}
