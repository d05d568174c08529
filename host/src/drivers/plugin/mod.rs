//! Sources and sinks served by wasm plugins (`type = "plugin"`), driven
//! through the same [`Source`] and [`Sink`] traits as the native connectors,
//! so planning, checkpoints, resume, policies and validation all apply.

pub(crate) mod driver;

use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Mutex, mpsc};

use super::{
    Checkpoint, ConnectorError, FreeSpace, Healthcheck, Prepare, Prepared, ReadRequest, Rejected,
    Sink, Source, SourceBatch, SourceFault, WriteBatch,
};
use crate::config::PluginEndpoint;
use crate::drivers::Shape;
use crate::model::value::{Column, TableInfo, Value};
use crate::runtime::plugins;
use crate::runtime::{
    PluginFailure, Runtime, RuntimeError, SinkInstance, SinkMode, SinkPlugin, SourceInstance,
    SourcePlugin, SourceRows,
};

static RUNTIME: OnceLock<Runtime> = OnceLock::new();

/// Sets the wasm runtime plugin endpoints are loaded with (the CLI's, with
/// its cache and installed plugins). Without it, one without a cache is made.
pub fn use_runtime(runtime: &Runtime) {
    let _ = RUNTIME.set(runtime.clone());
}

fn runtime() -> Result<&'static Runtime, RuntimeError> {
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let runtime = Runtime::new(None)?;
    Ok(RUNTIME.get_or_init(|| runtime))
}

/// A source plugin with its settings.
pub struct PluginSource {
    plugin: SourcePlugin,
    config: String,
    migration: String,
}

/// A sink plugin with its settings and its live instance.
pub struct PluginSink {
    plugin: SinkPlugin,
    config: String,
    migration: String,
    instance: Mutex<Option<SinkInstance>>,
}

fn endpoint_error(kind: &str, ep: &PluginEndpoint, message: impl Into<String>) -> ConnectorError {
    ConnectorError::new(format!("{kind} plugin {}", ep.plugin), message)
}

/// The runtime could not load the plugin of `ep`.
fn load_error(kind: &str, ep: &PluginEndpoint, err: RuntimeError) -> ConnectorError {
    endpoint_error(kind, ep, err.to_string()).because(&err)
}

fn locate(
    ep: &PluginEndpoint,
    base_dir: &Path,
    kind: &str,
) -> Result<(String, Vec<u8>), ConnectorError> {
    let runtime = runtime().map_err(|e| load_error(kind, ep, e))?;
    plugins::locate(&ep.plugin, base_dir, runtime, ep.sha256.as_deref())
        .map(|(name, wasm)| (name, wasm.into_owned()))
        .map_err(|e| endpoint_error(kind, ep, e.to_string()).because(&e))
}

impl PluginSource {
    /// Loads the plugin and checks its configuration.
    pub async fn open(ep: &PluginEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        let (name, wasm) = locate(ep, base_dir, "source")?;
        let grants = crate::drivers::grants(&ep.grants, base_dir);
        let plugin = runtime()
            .and_then(|r| r.load_source(&name, &wasm, ep.effective_limits(), grants))
            .map_err(|e| load_error("source", ep, e))?;
        let source = Self {
            plugin,
            config: ep.config_json(),
            migration: ep.migration.clone(),
        };
        let mut instance = source.instance("check").await?;
        instance
            .check(&source.config)
            .await
            .map_err(|e| source.error(e))?;
        Ok(source)
    }

    fn error(&self, failure: PluginFailure) -> ConnectorError {
        ConnectorError::new(self.describe(), failure.to_string())
    }

    async fn instance(&self, table: &str) -> Result<SourceInstance, ConnectorError> {
        let scope = format!("{}/{table}", self.migration);
        self.plugin
            .instantiate(&scope)
            .await
            .map_err(|e| self.error(e))
    }

    /// Streams `request` into `tx`; the first error ends it. A reader that
    /// keeps returning empty batches, or outlasts `table_seconds`, is
    /// stopped: either would otherwise hold `check`, `preview` and `run`
    /// forever.
    async fn stream(
        &self,
        request: &ReadRequest,
        tx: &mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) -> Result<(), ConnectorError> {
        let table = &request.table;
        let started = Instant::now();
        let mut instance = self.instance(&table.name).await?;
        let after = request.after.as_ref();
        let position = after.and_then(|c| c.position.as_deref());
        instance
            .open(&self.config, &table.name, position)
            .await
            .map_err(|e| self.error(e))?;
        let mut first = after.map_or(0, |c| c.rows) + 1;
        let mut left = request.limit.unwrap_or(u64::MAX);
        let max = request.batch_size.clamp(1, u32::MAX as usize) as u32;
        let mut empty = 0;
        while left > 0 {
            self.within_budget(started, &table.name)?;
            let next = instance.next(max, &table.columns).await;
            let Some(read) = next.map_err(|e| self.error(e))? else {
                break;
            };
            empty = if read.rows.is_empty() { empty + 1 } else { 0 };
            if empty >= MAX_EMPTY_BATCHES {
                return Err(self.endless(&table.name));
            }
            if read.position.len() > MAX_POSITION {
                return Err(self.oversize_position(&table.name, read.position.len()));
            }
            let batch = source_batch(read, first, left);
            left -= batch.rows.len() as u64;
            first += batch.rows.len() as u64;
            if tx.send(Ok(batch)).await.is_err() {
                break;
            }
        }
        Ok(())
    }

    /// Fails once reading `table` has taken longer than `table_seconds`.
    fn within_budget(&self, started: Instant, table: &str) -> Result<(), ConnectorError> {
        let Some(seconds) = self.plugin.limits().table_seconds else {
            return Ok(());
        };
        if started.elapsed() <= Duration::from_secs(seconds) {
            return Ok(());
        }
        Err(ConnectorError::new(
            self.describe(),
            format!(
                "table `{table}`: reading took longer than limits.table_seconds ({seconds} s) and was stopped; raise table_seconds if the source is legitimately this slow"
            ),
        ))
    }

    fn oversize_position(&self, table: &str, bytes: usize) -> ConnectorError {
        ConnectorError::new(
            self.describe(),
            format!(
                "table `{table}`: broke the plugin contract: returned a position of {bytes} bytes (at most {MAX_POSITION}); a position says where reading stands (an offset, a cursor), and is kept with every checkpoint; the read was stopped"
            ),
        )
    }

    fn endless(&self, table: &str) -> ConnectorError {
        ConnectorError::new(
            self.describe(),
            format!(
                "table `{table}`: broke the plugin contract: returned {MAX_EMPTY_BATCHES} empty batches in a row without ending the table (a reader returns none at the end); the read was stopped"
            ),
        )
    }
}

/// The most bytes of a source plugin's position: it is stored with every
/// checkpoint, in the destination's transaction.
const MAX_POSITION: usize = 64 * 1024;

/// Empty batches in a row after which a reader is taken to be stuck: a
/// source that has nothing more returns none (the end of the table).
const MAX_EMPTY_BATCHES: u32 = 1000;

/// The host's batch of the rows a plugin returned, cut to the `left` rows
/// still wanted; a row that does not fit its columns becomes a row error.
fn source_batch(read: SourceRows, first: u64, left: u64) -> SourceBatch {
    let mut rows = read.rows;
    rows.truncate(left.min(rows.len() as u64) as usize);
    let kept = rows.len();
    let faults = read
        .bad
        .into_iter()
        .filter(|b| b.index < kept)
        .map(|b| {
            for &c in &b.columns {
                rows[b.index][c] = Value::Null;
            }
            SourceFault {
                index: b.index,
                column: b.columns.first().copied(),
                unread: b.columns,
                value: b.value,
                message: b.message,
            }
        })
        .collect();
    SourceBatch {
        rows,
        first,
        position: Some(read.position),
        faults,
    }
}

#[async_trait]
impl Source for PluginSource {
    fn describe(&self) -> String {
        format!("source plugin {}", self.plugin.name())
    }

    async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        let mut instance = self.instance("discover").await?;
        instance
            .discover(&self.config)
            .await
            .map_err(|e| self.error(e))
    }

    /// A plugin cannot count without reading: the table is read once.
    async fn count(&self, table: &TableInfo) -> Result<u64, ConnectorError> {
        let (tx, mut rx) = mpsc::channel::<Result<SourceBatch, ConnectorError>>(2);
        let request = ReadRequest::whole(table, 10_000);
        let counting = async {
            let mut rows = 0;
            let mut error = None;
            while let Some(batch) = rx.recv().await {
                match batch {
                    Ok(b) => rows += b.rows.len() as u64,
                    Err(e) => error = error.or(Some(e)),
                }
            }
            error.map_or(Ok(rows), Err)
        };
        let ((), counted) = tokio::join!(self.read(request, tx), counting);
        counted
    }

    async fn read(
        &self,
        request: ReadRequest,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        if let Err(e) = self.stream(&request, &tx).await {
            let _ = tx.send(Err(e)).await;
        }
    }

    async fn size_bytes(&self, _table: &TableInfo) -> Result<Option<u64>, ConnectorError> {
        Ok(None)
    }
}

impl PluginSink {
    /// Loads the plugin and configures an instance (which checks the
    /// destination is writable).
    pub async fn open(ep: &PluginEndpoint, base_dir: &Path) -> Result<Self, ConnectorError> {
        let (name, wasm) = locate(ep, base_dir, "destination")?;
        let grants = crate::drivers::grants(&ep.grants, base_dir);
        let plugin = runtime()
            .and_then(|r| r.load_sink(&name, &wasm, ep.effective_limits(), grants))
            .map_err(|e| load_error("destination", ep, e))?;
        let sink = Self {
            plugin,
            config: ep.config_json(),
            migration: ep.migration.clone(),
            instance: Mutex::new(None),
        };
        sink.with(|_| Box::pin(async { Ok(()) })).await?;
        Ok(sink)
    }

    fn error(&self, failure: PluginFailure) -> ConnectorError {
        ConnectorError::new(self.describe(), failure.to_string())
    }

    /// Runs `call` on the live instance, starting one if needed. A failed
    /// call drops the instance: after a trap it must not be used again.
    async fn with<T>(
        &self,
        call: impl for<'a> FnOnce(
            &'a mut SinkInstance,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<T, PluginFailure>> + Send + 'a>,
        >,
    ) -> Result<T, ConnectorError> {
        let mut slot = self.instance.lock().await;
        if slot.is_none() {
            let instance = self
                .plugin
                .instantiate(&self.migration, &self.config)
                .await
                .map_err(|e| self.error(e))?;
            *slot = Some(instance);
        }
        let result = call(slot.as_mut().expect("started above")).await;
        if result.is_err() {
            *slot = None;
        }
        result.map_err(|e| self.error(e))
    }
}

fn checkpoint_text(checkpoint: &Checkpoint) -> String {
    serde_json::to_string(checkpoint).expect("checkpoints serialize")
}

#[async_trait]
impl Sink for PluginSink {
    fn describe(&self) -> String {
        format!("destination plugin {}", self.plugin.name())
    }

    async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        let table = table.to_string();
        self.with(move |i| Box::pin(async move { i.table_rows(&table).await }))
            .await
    }

    async fn prepare(
        &mut self,
        migration: &str,
        table: &str,
        shape: Shape<'_>,
        mode: Prepare,
    ) -> Result<Prepared, ConnectorError> {
        let columns = shape.columns;
        let mode = match mode {
            Prepare::Fresh(if_exists) => SinkMode::Fresh(if_exists),
            Prepare::Resume => SinkMode::Resume,
        };
        let (migration, table, columns) =
            (migration.to_string(), table.to_string(), columns.to_vec());
        let prepared = Prepared::new(&table);
        self.with(move |i| {
            Box::pin(async move { i.prepare(&migration, &table, &columns, mode).await })
        })
        .await?;
        Ok(prepared)
    }

    async fn write(&mut self, batch: WriteBatch<'_>) -> Result<Vec<Rejected>, ConnectorError> {
        let checkpoint = checkpoint_text(batch.checkpoint);
        let (migration, table, name) = (
            batch.migration.to_string(),
            batch.table().to_string(),
            batch.checkpoint_name.to_string(),
        );
        let mut rows = batch.rows.to_vec();
        let all = batch.all_or_nothing;
        self.with(move |i| {
            Box::pin(async move {
                i.write(&migration, &table, &name, &mut rows, all, &checkpoint)
                    .await
            })
        })
        .await
    }

    async fn finish(
        &mut self,
        migration: &str,
        prepared: Prepared,
        checkpoint: &Checkpoint,
    ) -> Result<(), ConnectorError> {
        let checkpoint = checkpoint_text(checkpoint);
        let (migration, table) = (migration.to_string(), prepared.table().to_string());
        self.with(move |i| Box::pin(async move { i.finish(&migration, &table, &checkpoint).await }))
            .await
    }

    async fn committed(
        &self,
        migration: &str,
        table: &str,
    ) -> Result<Option<Checkpoint>, ConnectorError> {
        let (migration, table) = (migration.to_string(), table.to_string());
        let text = self
            .with(move |i| Box::pin(async move { i.committed(&migration, &table).await }))
            .await?;
        text.map(|t| {
            serde_json::from_str(&t).map_err(|e| {
                ConnectorError::new(
                    self.describe(),
                    format!("the plugin returned a checkpoint the host did not write ({e}); run with --restart"),
                )
            })
        })
        .transpose()
    }

    async fn reset(&mut self, migration: &str) -> Result<(), ConnectorError> {
        let migration = migration.to_string();
        self.with(move |i| Box::pin(async move { i.reset(&migration).await }))
            .await
    }

    async fn drop_table(&mut self, table: &str) -> Result<(), ConnectorError> {
        let table = table.to_string();
        self.with(move |i| Box::pin(async move { i.drop_table(&table).await }))
            .await
    }

    fn healthcheck(&self) -> Option<&dyn Healthcheck> {
        Some(self)
    }
}

#[async_trait]
impl Healthcheck for PluginSink {
    /// A plugin's `prepare` checks the columns of a table it appends to.
    async fn misfits(&self, _: &str, _: &[Column]) -> Result<Vec<String>, ConnectorError> {
        Ok(Vec::new())
    }

    async fn probe_create(&self) -> Result<(), ConnectorError> {
        self.with(|_| Box::pin(async { Ok(()) })).await
    }

    async fn probe_write(&self, _table: &str) -> Result<(), ConnectorError> {
        self.with(|_| Box::pin(async { Ok(()) })).await
    }

    async fn free_space(&self) -> Result<FreeSpace, ConnectorError> {
        Ok(FreeSpace::Unknown(
            "a plugin destination does not report its free space".into(),
        ))
    }
}
