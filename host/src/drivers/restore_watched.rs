//! A restore-point store whose every step runs under the stall watchdog
//! (see `connectors::stall`), so a destination that stops answering while
//! a point is taken or rolled back fails the step instead of holding it.

use async_trait::async_trait;

use crate::drivers::ConnectorError;
use crate::drivers::restore::{Action, CatalogRow, Point, PointTable, RestoreStore};
use crate::drivers::stall::{NO_PROGRESS, Watchdog};

/// A store and its watchdog.
pub(crate) struct WatchedStore {
    pub(crate) inner: Box<dyn RestoreStore>,
    pub(crate) dog: Watchdog,
}

/// "… table `name`".
fn table(doing: &str, name: &str) -> String {
    format!("{doing} table `{name}`")
}

#[async_trait]
impl RestoreStore for WatchedStore {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn catalog(&self) -> Result<Vec<CatalogRow>, ConnectorError> {
        let step = self.inner.catalog();
        let doing = "reading the restore points";
        self.dog.watch(doing, &NO_PROGRESS, step).await
    }

    async fn record(&self, point: &Point) -> Result<(), ConnectorError> {
        let step = self.inner.record(point);
        let doing = "recording a restore point";
        self.dog.watch(doing, &NO_PROGRESS, step).await
    }

    async fn forget(&self, point: &str) -> Result<(), ConnectorError> {
        let step = self.inner.forget(point);
        let doing = "removing a restore point";
        self.dog.watch(doing, &NO_PROGRESS, step).await
    }

    async fn exists(&self, t: &str) -> Result<bool, ConnectorError> {
        let step = self.inner.exists(t);
        self.dog
            .watch(&table("looking up", t), &NO_PROGRESS, step)
            .await
    }

    async fn back_up(&self, t: &str, backup: &str) -> Result<Option<String>, ConnectorError> {
        let step = self.inner.back_up(t, backup);
        let doing = table("copying into a restore point", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn restore(&self, entry: &PointTable, backup: &str) -> Result<Action, ConnectorError> {
        let step = self.inner.restore(entry, backup);
        let doing = table("restoring", &entry.table);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn drop_table(&self, t: &str) -> Result<(), ConnectorError> {
        let step = self.inner.drop_table(t);
        self.dog
            .watch(&table("dropping", t), &NO_PROGRESS, step)
            .await
    }

    async fn cascades(&self, t: &str) -> Result<Vec<String>, ConnectorError> {
        let step = self.inner.cascades(t);
        let doing = table("reading the foreign keys on", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }
}
