//! The wasm sandbox. This is the only module that names wasmtime types:
//! the engine and its compiled-code cache, per-plugin stores with limits,
//! instance pre-linking, and the classification of traps into failures.

mod bindings;
mod connector;
mod convert;
mod inspect;
mod limits;
pub mod plugins;
mod state;
mod transform;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use connector::{
    BadRow, SinkInstance, SinkMode, SinkPlugin, SourceInstance, SourcePlugin, SourceRows,
};
pub use inspect::{PluginInfo, WIT_PACKAGE, WIT_VERSION, sha256_hex};
pub use limits::{FailureKind, Limits, PluginFailure};
pub use transform::{CallStats, TransformInstance, TransformPlugin};

use crate::capabilities::Grants;
use state::PluginState;

/// How often the engine's epoch advances; wall-clock deadlines are counted
/// in these ticks.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Plugin instances that may be alive at once in one process.
const MAX_INSTANCES: u32 = 256;
/// The wasm stack a plugin may use before it traps with a stack overflow.
const MAX_WASM_STACK: usize = 1024 * 1024;

/// Errors setting up the runtime or loading a plugin.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The wasm engine could not be created.
    #[error("could not start the wasm engine: {0}")]
    Engine(String),
    /// A plugin file could not be read.
    #[error("could not read plugin `{plugin}` from {path}: {source}")]
    Read {
        /// The plugin's name.
        plugin: String,
        /// Where it was looked for.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A plugin is not a valid component, or does not implement the world
    /// it is used as.
    #[error("plugin `{plugin}` is not a usable {world} component: {message}")]
    Invalid {
        /// The plugin's name.
        plugin: String,
        /// The WIT world it was expected to implement.
        world: &'static str,
        /// What wasmtime said.
        message: String,
    },
}

/// Shared wasm engine: compiled code is cached on disk and instances come
/// from a pre-allocated pool. Cheap to clone.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<PluginState>>,
    plugin_dir: Option<PathBuf>,
}

impl Runtime {
    /// Creates the engine. `cache_dir` keeps compiled plugins across runs
    /// (compiling costs 30–80 ms a plugin, loading from cache 0.1 ms).
    pub fn new(cache_dir: Option<&Path>) -> Result<Self, RuntimeError> {
        let engine = match Engine::new(&engine_config(cache_dir, true)?) {
            Ok(engine) => engine,
            Err(err) => {
                tracing::warn!("pooling allocator unavailable ({err}); instantiating on demand");
                Engine::new(&engine_config(cache_dir, false)?).map_err(engine_error)?
            }
        };
        spawn_epoch_ticker(&engine);
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        bindings::TransformPlugin::add_to_linker::<_, HasSelf<PluginState>>(&mut linker, |s| s)
            .map_err(engine_error)?;
        Ok(Self {
            engine,
            linker: Arc::new(linker),
            plugin_dir: None,
        })
    }

    /// Where `credvault plugin install` puts plugins, found by name.
    pub fn with_plugin_dir(mut self, dir: PathBuf) -> Self {
        self.plugin_dir = Some(dir);
        self
    }

    /// The folder of installed plugins, if any.
    pub fn plugin_dir(&self) -> Option<&Path> {
        self.plugin_dir.as_deref()
    }

    /// The file of an installed plugin.
    pub fn installed_plugin(&self, name: &str) -> Option<PathBuf> {
        let file = self.plugin_dir.as_ref()?.join(format!("{name}.wasm"));
        file.is_file().then_some(file)
    }

    /// Loads a transform plugin from wasm bytes (a file or a built-in).
    pub fn load_transform(
        &self,
        plugin: &str,
        wasm: &[u8],
        limits: Limits,
        grants: Grants,
    ) -> Result<TransformPlugin, RuntimeError> {
        let world = "transform-plugin";
        let pre = self.pre(plugin, wasm, world)?;
        let pre = bindings::TransformPluginPre::new(pre).map_err(|e| invalid(plugin, world, e))?;
        Ok(TransformPlugin::new(plugin, pre, limits, grants))
    }

    /// Loads a source plugin from wasm bytes.
    pub fn load_source(
        &self,
        plugin: &str,
        wasm: &[u8],
        limits: Limits,
        grants: Grants,
    ) -> Result<SourcePlugin, RuntimeError> {
        let world = "source-plugin";
        let pre = self.pre(plugin, wasm, world)?;
        let pre = bindings::SourcePluginPre::new(pre).map_err(|e| invalid(plugin, world, e))?;
        Ok(SourcePlugin::new(plugin, pre, limits, grants))
    }

    /// Loads a sink plugin from wasm bytes.
    pub fn load_sink(
        &self,
        plugin: &str,
        wasm: &[u8],
        limits: Limits,
        grants: Grants,
    ) -> Result<SinkPlugin, RuntimeError> {
        let world = "sink-plugin";
        let pre = self.pre(plugin, wasm, world)?;
        let pre = bindings::SinkPluginPre::new(pre).map_err(|e| invalid(plugin, world, e))?;
        Ok(SinkPlugin::new(plugin, pre, limits, grants))
    }

    /// Compiles (or loads from cache), checks the world and version, and
    /// pre-links a component.
    fn pre(
        &self,
        plugin: &str,
        wasm: &[u8],
        world: &'static str,
    ) -> Result<wasmtime::component::InstancePre<PluginState>, RuntimeError> {
        let component =
            Component::new(&self.engine, wasm).map_err(|e| invalid(plugin, world, e))?;
        self.describe(&component, wasm).compatible(plugin, world)?;
        self.linker
            .instantiate_pre(&component)
            .map_err(|e| invalid(plugin, world, e))
    }

    /// Reads a plugin file.
    pub fn read_plugin(plugin: &str, path: &Path) -> Result<Vec<u8>, RuntimeError> {
        std::fs::read(path).map_err(|source| RuntimeError::Read {
            plugin: plugin.to_string(),
            path: path.to_path_buf(),
            source,
        })
    }
}

fn engine_config(cache_dir: Option<&Path>, pooling: bool) -> Result<Config, RuntimeError> {
    let mut config = Config::new();
    config
        .consume_fuel(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK);
    if pooling {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(MAX_INSTANCES)
            .total_core_instances(MAX_INSTANCES * 4)
            .total_memories(MAX_INSTANCES * 2)
            .total_tables(MAX_INSTANCES * 4)
            .max_memory_size(4 << 30);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    if let Some(dir) = cache_dir {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(absolute(dir));
        let cache = wasmtime::Cache::new(cache).map_err(engine_error)?;
        config.cache(Some(cache));
    }
    Ok(config)
}

fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

fn invalid(plugin: &str, world: &'static str, err: wasmtime::Error) -> RuntimeError {
    RuntimeError::Invalid {
        plugin: plugin.to_string(),
        world,
        message: format!("{err:#}"),
    }
}

fn engine_error(err: wasmtime::Error) -> RuntimeError {
    RuntimeError::Engine(format!("{err:#}"))
}

/// Advances the epoch so deadlines fire; stops when the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("credvault-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

/// Epoch ticks for a deadline, rounded up, plus one for the tick in flight.
fn deadline_ticks(timeout_ms: u64) -> u64 {
    timeout_ms.div_ceil(EPOCH_TICK.as_millis() as u64) + 1
}
