//! Sink plugins: make tables ready, write batches durably together with the
//! host's checkpoint, and hand the last checkpoint back on resume.
//!
//! The host calls [`Sink::configure`] once per instance, then the other
//! methods on the value it returned. A checkpoint is opaque text: keep it
//! with the rows it covers (written in the same step), so a resumed run
//! neither loses nor repeats a row. `plugins/connectors/csv-sink` is a
//! complete example.

pub use crate::sink_bindings::exports::credvault::migrate::sink::{
    IfExists, PrepareMode, Rejected,
};
use crate::{Schema, Value};

/// One batch to write.
#[derive(Debug, Clone)]
pub struct WriteBatch {
    /// The migration writing it.
    pub migration: String,
    /// The destination table.
    pub table: String,
    /// The name the checkpoint is kept under (the table, or a slice of it).
    pub checkpoint_name: String,
    /// The rows, laid out like the columns given to `prepare`.
    pub rows: Vec<Vec<Value>>,
    /// Keep nothing of the batch if one row is refused.
    pub all_or_nothing: bool,
    /// The checkpoint to keep with these rows.
    pub checkpoint: String,
}

/// A sink plugin.
pub trait Sink: Sized + 'static {
    /// The plugin's settings, deserialized from the migration file's JSON.
    type Config: serde::de::DeserializeOwned;

    /// Checks the config and that the destination is writable.
    fn configure(config: Self::Config) -> Result<Self, String>;

    /// Rows in `table`, or `None` if it does not exist.
    fn table_rows(&mut self, table: &str) -> Result<Option<u64>, String>;

    /// Makes `table` ready for rows of `columns`: create it, or honour
    /// `if_exists` (`Fail`: say so, naming its rows), or on `Resume` cut it
    /// back to what the last checkpoint covers.
    fn prepare(
        &mut self,
        migration: &str,
        table: &str,
        columns: &Schema,
        mode: PrepareMode,
    ) -> Result<(), String>;

    /// Writes a batch and keeps its checkpoint with it; returns the rows
    /// the destination refused (by index), if it refuses rows one by one.
    fn write(&mut self, batch: WriteBatch) -> Result<Vec<Rejected>, String>;

    /// Marks `table` complete with its final checkpoint.
    fn finish(&mut self, migration: &str, table: &str, checkpoint: &str) -> Result<(), String>;

    /// The checkpoint last kept under (`migration`, `name`).
    fn committed(&mut self, migration: &str, name: &str) -> Result<Option<String>, String>;

    /// Forgets every checkpoint of `migration`.
    fn reset(&mut self, migration: &str) -> Result<(), String>;

    /// Drops `table` if it exists.
    fn drop_table(&mut self, table: &str) -> Result<(), String>;
}

/// Exports a [`Sink`] implementation as the component's `sink` interface.
/// Use it once per plugin crate. On targets other than wasm32 it defines a
/// hidden native entry point instead, so the crate builds and tests natively.
#[macro_export]
macro_rules! export_sink {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)] // the generated export shims are `unsafe extern "C"`
        const _: () = {
            use ::std::string::String;
            use ::std::result::Result;
            use $crate::sink::{PrepareMode, Rejected};

            ::std::thread_local! {
                static SINK: $crate::runtime::SinkSlot<$ty> = const { $crate::runtime::SinkSlot::new() };
            }

            struct __CredvaultExport;

            impl $crate::sink_bindings::exports::credvault::migrate::sink::Guest for __CredvaultExport {
                fn configure(config: String) -> Result<(), String> {
                    SINK.with(|s| s.configure(&config))
                }
                fn table_rows(table: String) -> Result<Option<u64>, String> {
                    SINK.with(|s| s.with(|k| k.table_rows(&table)))
                }
                fn prepare(migration: String, table: String, columns: $crate::Schema, mode: PrepareMode) -> Result<(), String> {
                    SINK.with(|s| s.with(|k| k.prepare(&migration, &table, &columns, mode)))
                }
                fn write(
                    migration: String,
                    table: String,
                    checkpoint_name: String,
                    rows: ::std::vec::Vec<::std::vec::Vec<$crate::Value>>,
                    all_or_nothing: bool,
                    checkpoint: String,
                ) -> Result<::std::vec::Vec<Rejected>, String> {
                    let batch = $crate::sink::WriteBatch { migration, table, checkpoint_name, rows, all_or_nothing, checkpoint };
                    SINK.with(|s| s.with(|k| k.write(batch)))
                }
                fn finish(migration: String, table: String, checkpoint: String) -> Result<(), String> {
                    SINK.with(|s| s.with(|k| k.finish(&migration, &table, &checkpoint)))
                }
                fn committed(migration: String, name: String) -> Result<Option<String>, String> {
                    SINK.with(|s| s.with(|k| k.committed(&migration, &name)))
                }
                fn reset(migration: String) -> Result<(), String> {
                    SINK.with(|s| s.with(|k| k.reset(&migration)))
                }
                fn drop_table(table: String) -> Result<(), String> {
                    SINK.with(|s| s.with(|k| k.drop_table(&table)))
                }
            }

            $crate::sink_bindings::export!(__CredvaultExport with_types_in $crate::sink_bindings);
        };

        /// Natively: configures the sink the way the host would.
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __credvault_configure(config: &str) -> ::std::result::Result<$ty, ::std::string::String> {
            $crate::testing::configure_sink::<$ty>(config)
        }
    };
}
