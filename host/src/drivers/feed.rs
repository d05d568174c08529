//! A source's log of committed changes, read through a named slot that
//! holds the log until the reader confirms what it applied: what a CDC
//! sync reads. A driver offers one through [`super::registry::Driver::change_feed`].

use std::time::Duration;

use async_trait::async_trait;

use super::registry::{driver, names_with};
use super::stall::{NO_PROGRESS, Watchdog};
use super::{ConnectorError, Lsn, SlotHealth, TableChange};
use crate::config::{Endpoint, Migration};
use crate::model::value::TableInfo;

/// Opens the change feed of `m`'s `source` read through `slot`; on a
/// database server every call runs under a watchdog for
/// `settings.stall_seconds`, like every other step on it.
pub async fn open_feed(
    m: &Migration,
    source: &Endpoint,
    slot: &str,
) -> Result<Box<dyn ChangeFeed>, ConnectorError> {
    let opened = driver(source).change_feed(source, &m.base_dir, slot);
    let stall = Duration::from_secs(m.settings.stall_seconds);
    let Some(dog) = Watchdog::for_endpoint("source", source, &m.base_dir, stall)? else {
        return opened.await.unwrap_or_else(|| Err(no_feed(m)));
    };
    let doing = format!("opening replication slot `{slot}`");
    let opened = dog.watch(&doing, &NO_PROGRESS, async {
        opened.await.unwrap_or_else(|| Err(no_feed(m)))
    });
    let inner = opened.await?;
    Ok(Box::new(WatchedFeed { inner, dog }))
}

/// The error of a CDC sync from a source without a change feed.
fn no_feed(m: &Migration) -> ConnectorError {
    ConnectorError::new(
        format!("migration `{}`", m.name),
        format!(
            "CDC needs a {} source; sync this source with sync = \"incremental\" or \"full\"",
            names_with(|t| t.change_feed)
        ),
    )
}

/// The committed changes of a source, in commit order, kept for one reader
/// by its slot until confirmed.
#[async_trait]
pub trait ChangeFeed: Send + Sync {
    /// The slot's name.
    fn slot(&self) -> &str;

    /// Creates the slot if it does not exist yet; `true` if it was created
    /// (changes committed from then on are kept until confirmed).
    async fn ensure_slot(&self) -> Result<bool, ConnectorError>;

    /// What the slot keeps on the source; `None` if it does not exist.
    async fn health(&self) -> Result<Option<SlotHealth>, ConnectorError>;

    /// Waits up to `bound` for a session a killed reader left on the slot
    /// to let go of it, then fails naming it.
    async fn ready(&self, bound: Duration) -> Result<(), ConnectorError>;

    /// Like `ready`, for a slot that may not exist: its health once free,
    /// `None` if there is no such slot.
    async fn wait_free(&self, bound: Duration) -> Result<Option<SlotHealth>, ConnectorError>;

    /// Up to `max` changes of `tables` committed after `after`.
    async fn changes(
        &self,
        tables: &[TableInfo],
        after: Option<Lsn>,
        max: usize,
    ) -> Result<Vec<TableChange>, ConnectorError>;

    /// Where the last `changes` call saw nothing more for its tables.
    fn seen(&self) -> Option<Lsn>;

    /// Where the slot was last confirmed to.
    async fn confirmed(&self) -> Result<Option<Lsn>, ConnectorError>;

    /// Lets the slot release everything up to `lsn`.
    async fn confirm_all(&self, lsn: Lsn) -> Result<(), ConnectorError>;

    /// Drops the slot, so the source stops keeping its log for it.
    async fn drop_slot(&self) -> Result<(), ConnectorError>;
}

/// A change feed whose every call runs under a [`Watchdog`].
struct WatchedFeed {
    inner: Box<dyn ChangeFeed>,
    dog: Watchdog,
}

impl WatchedFeed {
    /// "reading changes from replication slot `credvault_m`".
    fn doing(&self, what: &str) -> String {
        format!("{what} replication slot `{}`", self.inner.slot())
    }
}

#[async_trait]
impl ChangeFeed for WatchedFeed {
    fn slot(&self) -> &str {
        self.inner.slot()
    }

    async fn ensure_slot(&self) -> Result<bool, ConnectorError> {
        let step = self.inner.ensure_slot();
        self.dog
            .watch(&self.doing("creating"), &NO_PROGRESS, step)
            .await
    }

    async fn health(&self) -> Result<Option<SlotHealth>, ConnectorError> {
        let step = self.inner.health();
        self.dog
            .watch(&self.doing("reading the health of"), &NO_PROGRESS, step)
            .await
    }

    async fn ready(&self, bound: Duration) -> Result<(), ConnectorError> {
        let step = self.inner.ready(bound);
        self.dog
            .watch(&self.doing("waiting for"), &NO_PROGRESS, step)
            .await
    }

    async fn wait_free(&self, bound: Duration) -> Result<Option<SlotHealth>, ConnectorError> {
        let step = self.inner.wait_free(bound);
        self.dog
            .watch(&self.doing("waiting for"), &NO_PROGRESS, step)
            .await
    }

    async fn changes(
        &self,
        tables: &[TableInfo],
        after: Option<Lsn>,
        max: usize,
    ) -> Result<Vec<TableChange>, ConnectorError> {
        let step = self.inner.changes(tables, after, max);
        self.dog
            .watch(&self.doing("reading changes from"), &NO_PROGRESS, step)
            .await
    }

    fn seen(&self) -> Option<Lsn> {
        self.inner.seen()
    }

    async fn confirmed(&self) -> Result<Option<Lsn>, ConnectorError> {
        let step = self.inner.confirmed();
        self.dog
            .watch(&self.doing("reading the position of"), &NO_PROGRESS, step)
            .await
    }

    async fn confirm_all(&self, lsn: Lsn) -> Result<(), ConnectorError> {
        let step = self.inner.confirm_all(lsn);
        self.dog
            .watch(
                &self.doing("releasing applied changes from"),
                &NO_PROGRESS,
                step,
            )
            .await
    }

    async fn drop_slot(&self) -> Result<(), ConnectorError> {
        let step = self.inner.drop_slot();
        self.dog
            .watch(&self.doing("dropping"), &NO_PROGRESS, step)
            .await
    }
}
