//! PostgreSQL's logical replication slot as a [`ChangeFeed`].

use std::time::Duration;

use async_trait::async_trait;

use super::cdc::{Lsn, PgChanges, SlotHealth, TableChange};
use crate::drivers::ConnectorError;
use crate::drivers::feed::ChangeFeed;
use crate::model::value::TableInfo;

#[async_trait]
impl ChangeFeed for PgChanges {
    fn slot(&self) -> &str {
        PgChanges::slot(self)
    }

    async fn ensure_slot(&self) -> Result<bool, ConnectorError> {
        PgChanges::ensure_slot(self).await
    }

    async fn health(&self) -> Result<Option<SlotHealth>, ConnectorError> {
        PgChanges::health(self).await
    }

    async fn ready(&self, bound: Duration) -> Result<(), ConnectorError> {
        PgChanges::ready(self, bound).await
    }

    async fn wait_free(&self, bound: Duration) -> Result<Option<SlotHealth>, ConnectorError> {
        PgChanges::wait_free(self, bound).await
    }

    async fn changes(
        &self,
        tables: &[TableInfo],
        after: Option<Lsn>,
        max: usize,
    ) -> Result<Vec<TableChange>, ConnectorError> {
        PgChanges::changes(self, tables, after, max).await
    }

    fn seen(&self) -> Option<Lsn> {
        PgChanges::seen(self)
    }

    async fn confirmed(&self) -> Result<Option<Lsn>, ConnectorError> {
        PgChanges::confirmed(self).await
    }

    async fn confirm_all(&self, lsn: Lsn) -> Result<(), ConnectorError> {
        PgChanges::confirm_all(self, lsn).await
    }

    async fn drop_slot(&self) -> Result<(), ConnectorError> {
        PgChanges::drop_slot(self).await
    }
}
