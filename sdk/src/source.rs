//! Source plugins: list tables, then read one in batches, each ending at a
//! position the host keeps in its checkpoint and hands back on resume.
//!
//! ```
//! use credvault_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Config { rows: i64 }
//!
//! struct Numbers;
//! struct Counter { next: i64, end: i64 }
//!
//! impl Source for Numbers {
//!     type Config = Config;
//!     type Reader = Counter;
//!     fn discover(config: &Config) -> Result<Vec<TableInfo>, String> {
//!         Ok(vec![TableInfo {
//!             name: "numbers".into(),
//!             columns: vec![Column::new("n", ColumnType::Int)],
//!             primary_key: vec!["n".into()],
//!             approx_rows: Some(config.rows as u64),
//!         }])
//!     }
//!     fn open(config: &Config, _table: &str, after: Option<&str>) -> Result<Counter, String> {
//!         let next = after.map_or(Ok(1), |p| p.parse::<i64>().map(|n| n + 1)).map_err(|e| e.to_string())?;
//!         Ok(Counter { next, end: config.rows })
//!     }
//! }
//!
//! impl Reader for Counter {
//!     fn next(&mut self, max_rows: usize) -> Result<Option<SourceBatch>, String> {
//!         if self.next > self.end { return Ok(None) }
//!         let last = (self.next + max_rows as i64 - 1).min(self.end);
//!         let rows = (self.next..=last).map(|n| vec![Value::Int(n)]).collect();
//!         self.next = last + 1;
//!         Ok(Some(SourceBatch { rows, position: last.to_string() }))
//!     }
//! }
//!
//! export_source!(Numbers);
//! # fn main() {}
//! ```

use crate::{TableInfo, Value};

/// Rows read from a table and the position just after the last of them.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceBatch {
    /// The rows, laid out like the table's columns.
    pub rows: Vec<Vec<Value>>,
    /// Opaque to the host: given back to [`Source::open`] to resume after
    /// the last row of this batch.
    pub position: String,
}

/// A source plugin. The host instantiates it afresh for each table read.
pub trait Source: 'static {
    /// The plugin's settings, deserialized from the migration file's JSON.
    type Config: serde::de::DeserializeOwned;
    /// An open read of one table.
    type Reader: Reader;

    /// Checks the config and that the source is reachable. Default: discover.
    fn check(config: &Self::Config) -> Result<(), String> {
        Self::discover(config).map(|_| ())
    }

    /// The tables this source offers, with their columns and keys.
    fn discover(config: &Self::Config) -> Result<Vec<TableInfo>, String>;

    /// Opens `table`, continuing just after `after` (a position this
    /// source returned earlier) when given.
    fn open(
        config: &Self::Config,
        table: &str,
        after: Option<&str>,
    ) -> Result<Self::Reader, String>;
}

/// An open read of one table.
pub trait Reader: 'static {
    /// Up to `max_rows` rows (more is refused by the host), or `None` at the end.
    fn next(&mut self, max_rows: usize) -> Result<Option<SourceBatch>, String>;
}

/// Exports a [`Source`] implementation as the component's `source`
/// interface. Use it once per plugin crate. On targets other than wasm32 it
/// defines a hidden native entry point instead, so the crate builds and
/// tests natively.
#[macro_export]
macro_rules! export_source {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)] // the generated export shims are `unsafe extern "C"`
        const _: () = {
            struct __CredvaultExport;

            impl $crate::source_bindings::exports::credvault::migrate::source::Guest for __CredvaultExport {
                type Reader = $crate::runtime::ReaderHandle<<$ty as $crate::source::Source>::Reader>;

                fn check(config: ::std::string::String) -> ::std::result::Result<(), ::std::string::String> {
                    $crate::runtime::source_check::<$ty>(&config)
                }

                fn discover(
                    config: ::std::string::String,
                ) -> ::std::result::Result<::std::vec::Vec<$crate::TableInfo>, ::std::string::String> {
                    $crate::runtime::source_discover::<$ty>(&config)
                }

                fn open(
                    config: ::std::string::String,
                    table: ::std::string::String,
                    after: ::std::option::Option<::std::string::String>,
                ) -> ::std::result::Result<
                    $crate::source_bindings::exports::credvault::migrate::source::Reader,
                    ::std::string::String,
                > {
                    $crate::runtime::source_open::<$ty>(&config, &table, after.as_deref())
                }
            }

            $crate::source_bindings::export!(__CredvaultExport with_types_in $crate::source_bindings);
        };

        /// Natively: reads a whole table the way the host would (see
        /// `credvault_sdk::testing::read_table`).
        #[cfg(not(target_arch = "wasm32"))]
        #[doc(hidden)]
        pub fn __credvault_read_table(
            config: &str,
            table: &str,
        ) -> ::std::result::Result<::std::vec::Vec<$crate::source::SourceBatch>, ::std::string::String> {
            $crate::testing::read_table::<$ty>(config, table, None, 1000)
        }
    };
}
