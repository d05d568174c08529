//! Noticing a database server that stopped answering.
//!
//! sqlx 0.8 sets no read timeout and offers no TCP keepalive on its
//! sockets, so a server that stops answering (a frozen host, a stopped
//! process) would hold a step for ever. Every step
//! on a PostgreSQL or MariaDB/MySQL source or destination therefore runs
//! under a [`Watchdog`]: once it has gone `settings.stall_seconds` without
//! finishing (a read: without a batch), the watchdog probes the same server
//! on a new connection. A server that answers is working on the step (an
//! index build, a big COPY, a slow view, a lock wait), so the step goes on;
//! one that does not is given up on, and the step is dropped unfinished.
//! (A half-open connection to a server that still takes new ones looks
//! like a working step: the probe answers, so it is not cut.)
//! Its transaction never commits here, so what lands is whole batches with
//! their checkpoints.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::registry::driver;
use super::{
    Bound, Checkpoint, ConnectorError, FreeSpace, Healthcheck, Native, Prepare, Prepared,
    ReadRequest, Rejected, Sink, Source, SourceBatch, SqlDestination, Step, WriteBatch, merge,
    server,
};
use crate::config::{Endpoint, PasswordError, ServerEndpoint};
use crate::drivers::Shape;
use crate::model::schema::Schema;
use crate::model::value::{Column, TableInfo};

/// A server endpoint as messages name it (`source postgres
/// user@host:port/db`), with its probe; the error of a password that cannot
/// be read names it too.
pub(crate) fn described(
    role: &str,
    kind: &str,
    ep: &ServerEndpoint,
    port: u16,
    probe: Result<Probe, PasswordError>,
) -> Result<(String, Probe), ConnectorError> {
    let endpoint = server::describe(role, kind, ep, port);
    match probe {
        Ok(probe) => Ok((endpoint, probe)),
        Err(e) => Err(ConnectorError::new(&endpoint, e.to_string()).because(&e)),
    }
}

/// Connects anew to a server and asks it something trivial.
pub(crate) type Probe =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Result<(), sqlx::Error>> + Send>> + Send + Sync>;

/// A progress count for steps that report none: only finishing counts.
pub(crate) static NO_PROGRESS: AtomicU64 = AtomicU64::new(0);

/// Watches the steps on one server.
pub(crate) struct Watchdog {
    /// `destination postgres user@host:port/db`.
    endpoint: String,
    stall: Duration,
    probe: Probe,
}

impl Watchdog {
    /// A watchdog over `endpoint` (in `role`) when it is a database server,
    /// probing with the endpoint's own connection settings.
    pub(crate) fn for_endpoint(
        role: &str,
        endpoint: &Endpoint,
        base_dir: &Path,
        stall: Duration,
    ) -> Result<Option<Self>, ConnectorError> {
        let Some(server) = driver(endpoint).server(role, endpoint, base_dir) else {
            return Ok(None);
        };
        let (endpoint, probe) = server?;
        Ok(Some(Self::new(endpoint, stall, probe)))
    }

    /// A watchdog that calls `probe` after `stall` without an end.
    pub(crate) fn new(endpoint: String, stall: Duration, probe: Probe) -> Self {
        Self {
            endpoint,
            stall,
            probe,
        }
    }

    /// Runs `step` (described as `doing`, e.g. "writing table `t`") to its
    /// end, unless the server stops answering. A step that reports progress
    /// bumps `progress`; the clock restarts with each bump.
    pub(crate) async fn watch<T, E: From<ConnectorError>>(
        &self,
        doing: &str,
        progress: &AtomicU64,
        step: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        tokio::pin!(step);
        let mut seen = progress.load(Ordering::Relaxed);
        loop {
            if let Ok(done) = tokio::time::timeout(self.stall, &mut step).await {
                return done;
            }
            let now = progress.load(Ordering::Relaxed);
            if now != seen {
                seen = now;
                continue;
            }
            tokio::select! {
                done = &mut step => return done,
                answer = self.answers() => {
                    if let Err(why) = answer {
                        return Err(self.stopped(doing, &why).into());
                    }
                }
            }
        }
    }

    /// Whether the server answers a probe on a new connection within the
    /// stall time. Any reply counts, a refusal too (too many connections,
    /// starting up): the server is there.
    async fn answers(&self) -> Result<(), ProbeError> {
        match tokio::time::timeout(self.stall, (self.probe)()).await {
            Err(_) => Err(ProbeError::NoAnswer),
            Ok(Ok(())) | Ok(Err(sqlx::Error::Database(_))) => Ok(()),
            Ok(Err(sqlx::Error::Io(io))) => Err(ProbeError::Io(io)),
            Ok(Err(_)) => Err(ProbeError::Failed),
        }
    }

    /// The message for a server that stopped answering.
    fn stopped(&self, doing: &str, why: &ProbeError) -> ConnectorError {
        let s = self.stall.as_secs();
        ConnectorError::new(
            &self.endpoint,
            format!(
                "the server stopped answering: no reply for {s} s while {doing} ({why}); check the server, then run again: a run resumes from the last checkpoint, and a batch commits together with its checkpoint or not at all (settings.stall_seconds = {s} is how long to wait)"
            ),
        )
    }
}

/// A source whose every step runs under a watchdog.
pub(crate) struct WatchedSource {
    pub(crate) inner: Box<dyn Source>,
    pub(crate) dog: Watchdog,
}

/// "… table `name`".
fn table(doing: &str, name: &str) -> String {
    format!("{doing} table `{name}`")
}

#[async_trait]
impl Source for WatchedSource {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        let step = self.inner.discover();
        self.dog.watch("listing tables", &NO_PROGRESS, step).await
    }

    async fn count(&self, t: &TableInfo) -> Result<u64, ConnectorError> {
        let step = self.inner.count(t);
        self.dog
            .watch(&table("counting", &t.name), &NO_PROGRESS, step)
            .await
    }

    async fn key_bounds(&self, t: &TableInfo) -> Result<Option<(i64, i64)>, ConnectorError> {
        let step = self.inner.key_bounds(t);
        let doing = table("reading the key bounds of", &t.name);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn cursor_bound(&self, t: &TableInfo, column: &str) -> Result<Bound, ConnectorError> {
        let step = self.inner.cursor_bound(t, column);
        let doing = table("reading the cursor bound of", &t.name);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn native_types(&self, t: &TableInfo) -> Result<Vec<Option<Native>>, ConnectorError> {
        let step = self.inner.native_types(t);
        let doing = table("reading the column types of", &t.name);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn schema(&self, tables: &[TableInfo]) -> Result<Option<Schema>, ConnectorError> {
        let step = self.inner.schema(tables);
        self.dog
            .watch("reading the schema", &NO_PROGRESS, step)
            .await
    }

    /// Forwards the batches, each one progress, so a long read that keeps
    /// delivering is never probed.
    async fn read(
        &self,
        request: ReadRequest,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        let doing = table("reading", &request.table.name);
        let progress = AtomicU64::new(0);
        let (inner_tx, mut inner_rx) = mpsc::channel(1);
        let forward = async {
            while let Some(batch) = inner_rx.recv().await {
                progress.fetch_add(1, Ordering::Relaxed);
                if tx.send(batch).await.is_err() {
                    break;
                }
            }
        };
        let both = async {
            tokio::join!(self.inner.read(request, inner_tx), forward);
            Ok::<(), ConnectorError>(())
        };
        if let Err(e) = self.dog.watch(&doing, &progress, both).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn size_bytes(&self, t: &TableInfo) -> Result<Option<u64>, ConnectorError> {
        let step = self.inner.size_bytes(t);
        let doing = table("measuring", &t.name);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn probe_read(&self, t: &TableInfo) -> Result<(), ConnectorError> {
        let step = self.inner.probe_read(t);
        self.dog
            .watch(&table("reading", &t.name), &NO_PROGRESS, step)
            .await
    }
}

/// A sink whose every step runs under a watchdog, those of its
/// capabilities too: it offers a healthcheck and an SQL side exactly when
/// the sink it wraps does, each step of them watched.
pub(crate) struct WatchedSink {
    pub(crate) inner: Box<dyn Sink>,
    pub(crate) dog: Watchdog,
}

/// Why a watched sink's capability always finds the inner one.
const OFFERED: &str = "a watched sink offers a capability only when its inner sink has it";

#[async_trait]
impl Sink for WatchedSink {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn concurrent_writers(&self) -> bool {
        self.inner.concurrent_writers()
    }

    async fn existing_rows(&self, t: &str) -> Result<Option<u64>, ConnectorError> {
        let step = self.inner.existing_rows(t);
        self.dog
            .watch(&table("counting", t), &NO_PROGRESS, step)
            .await
    }

    async fn prepare(
        &mut self,
        migration: &str,
        t: &str,
        shape: Shape<'_>,
        mode: Prepare,
    ) -> Result<Prepared, ConnectorError> {
        let step = self.inner.prepare(migration, t, shape, mode);
        let doing = table("preparing", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn write(&mut self, batch: WriteBatch<'_>) -> Result<Vec<Rejected>, ConnectorError> {
        let doing = table("writing", batch.table());
        let step = self.inner.write(batch);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn finish(
        &mut self,
        migration: &str,
        t: Prepared,
        checkpoint: &Checkpoint,
    ) -> Result<(), ConnectorError> {
        let doing = table("finishing", t.table());
        let step = self.inner.finish(migration, t, checkpoint);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn committed(
        &self,
        migration: &str,
        t: &str,
    ) -> Result<Option<Checkpoint>, ConnectorError> {
        let step = self.inner.committed(migration, t);
        let doing = table("reading the checkpoint of", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn reset(&mut self, migration: &str) -> Result<(), ConnectorError> {
        let step = self.inner.reset(migration);
        let doing = "clearing the checkpoints";
        self.dog.watch(doing, &NO_PROGRESS, step).await
    }

    async fn drop_table(&mut self, t: &str) -> Result<(), ConnectorError> {
        let step = self.inner.drop_table(t);
        let doing = table("dropping", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    fn healthcheck(&self) -> Option<&dyn Healthcheck> {
        self.inner.healthcheck().map(|_| self as &dyn Healthcheck)
    }

    fn sql(&self) -> Option<&dyn SqlDestination> {
        self.inner.sql().map(|_| self as &dyn SqlDestination)
    }

    fn sql_mut(&mut self) -> Option<&mut dyn SqlDestination> {
        match self.inner.sql_mut() {
            Some(_) => Some(self),
            None => None,
        }
    }
}

#[async_trait]
impl Healthcheck for WatchedSink {
    async fn misfits(&self, t: &str, columns: &[Column]) -> Result<Vec<String>, ConnectorError> {
        let step = self.inner.healthcheck().expect(OFFERED).misfits(t, columns);
        let doing = table("reading the columns of", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn probe_create(&self) -> Result<(), ConnectorError> {
        let step = self.inner.healthcheck().expect(OFFERED).probe_create();
        let doing = "trying to create a table";
        self.dog.watch(doing, &NO_PROGRESS, step).await
    }

    async fn probe_write(&self, t: &str) -> Result<(), ConnectorError> {
        let step = self.inner.healthcheck().expect(OFFERED).probe_write(t);
        let doing = table("checking the write privilege on", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn free_space(&self) -> Result<FreeSpace, ConnectorError> {
        let step = self.inner.healthcheck().expect(OFFERED).free_space();
        let doing = "measuring the free space";
        self.dog.watch(doing, &NO_PROGRESS, step).await
    }
}

#[async_trait]
impl SqlDestination for WatchedSink {
    fn dialect(&self) -> merge::Dialect {
        self.inner.sql().expect(OFFERED).dialect()
    }

    fn sql_name(&self, t: &str) -> String {
        self.inner.sql().expect(OFFERED).sql_name(t)
    }

    async fn run_script(
        &mut self,
        migration: &str,
        checkpoint_name: &str,
        steps: &[Step],
        checkpoint: &Checkpoint,
    ) -> Result<Vec<u64>, ConnectorError> {
        let name = checkpoint_name.split('#').next().unwrap_or(checkpoint_name);
        let doing = table("syncing", name);
        let inner = self.inner.sql_mut().expect(OFFERED);
        let step = inner.run_script(migration, checkpoint_name, steps, checkpoint);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn execute(&mut self, sql: &str) -> Result<(), ConnectorError> {
        let step = self.inner.sql_mut().expect(OFFERED).execute(sql);
        let doing = "running a statement";
        self.dog.watch(doing, &NO_PROGRESS, step).await
    }

    async fn table_identity(&self, t: &str) -> Result<Option<String>, ConnectorError> {
        let step = self.inner.sql().expect(OFFERED).table_identity(t);
        let doing = table("looking up", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn parents(&self, t: &str) -> Result<Vec<String>, ConnectorError> {
        let step = self.inner.sql().expect(OFFERED).parents(t);
        let doing = table("reading the foreign keys of", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn create_like(&mut self, copy: &str, t: &str) -> Result<(), ConnectorError> {
        let step = self.inner.sql_mut().expect(OFFERED).create_like(copy, t);
        let doing = table("creating a copy of", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }

    async fn swap_tables(&mut self, copy: &str, t: &str) -> Result<(), ConnectorError> {
        let step = self.inner.sql_mut().expect(OFFERED).swap_tables(copy, t);
        let doing = table("swapping in the new", t);
        self.dog.watch(&doing, &NO_PROGRESS, step).await
    }
}

/// Why a probe on a new connection says the server is not there.
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    /// No reply within the stall time.
    #[error("a probe on a new connection got no answer either")]
    NoAnswer,
    /// The connection failed at the socket.
    #[error("a probe on a new connection failed too: {0}")]
    Io(#[source] std::io::Error),
    /// It failed otherwise; the driver's error is left out, as it may
    /// describe the connection.
    #[error("a probe on a new connection failed too")]
    Failed,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    const STALL: Duration = Duration::from_millis(100);

    /// A watchdog whose probe answers (or hangs) as told, counting calls.
    fn dog(answers: bool, calls: Arc<AtomicUsize>) -> Watchdog {
        let probe: Probe = Arc::new(move || {
            calls.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                if !answers {
                    std::future::pending::<()>().await;
                }
                Ok(())
            })
        });
        Watchdog::new("destination postgres u@h:1/db".into(), STALL, probe)
    }

    async fn slow_step(took: Duration) -> Result<u32, ConnectorError> {
        tokio::time::sleep(took).await;
        Ok(7)
    }

    #[tokio::test]
    async fn a_step_on_a_server_that_answers_probes_runs_to_its_end() {
        let calls = Arc::new(AtomicUsize::new(0));
        let dog = dog(true, calls.clone());
        let done = dog.watch("writing table `t`", &NO_PROGRESS, slow_step(STALL * 5));
        assert_eq!(done.await.unwrap(), 7);
        assert!(calls.load(Ordering::Relaxed) >= 2);
    }

    #[tokio::test]
    async fn a_step_on_a_server_that_answers_nothing_is_given_up_naming_it() {
        let dog = dog(false, Arc::new(AtomicUsize::new(0)));
        let step = dog.watch("writing table `t`", &NO_PROGRESS, slow_step(STALL * 100));
        let err = tokio::time::timeout(STALL * 20, step)
            .await
            .expect("given up within a bound")
            .unwrap_err();
        assert_eq!(err.endpoint, "destination postgres u@h:1/db");
        assert!(
            err.message.contains("stopped answering")
                && err.message.contains("while writing table `t`")
                && err.message.contains("got no answer either"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_step_that_makes_progress_is_not_probed() {
        let calls = Arc::new(AtomicUsize::new(0));
        let dog = dog(false, calls.clone());
        let progress = AtomicU64::new(0);
        let step = async {
            for _ in 0..8 {
                tokio::time::sleep(STALL / 2).await;
                progress.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), ConnectorError>(())
        };
        dog.watch("reading table `t`", &progress, step)
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::Relaxed), 0);
    }
}
