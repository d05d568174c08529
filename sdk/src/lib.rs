//! The SDK for CredVault Migrations plugins: write a config struct and one
//! function per row (or a [`Transform`] impl), or a [`source::Source`] or
//! [`sink::Sink`] impl, and this crate turns it into a `wasm32-wasip2`
//! component. It owns the WIT bindings, the exports and
//! the batch loop; an author never sees a WIT path or a generated type path.
//!
//! # The short form: one function per row
//!
//! ```
//! use credvault_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Config {
//!     suffix: String,
//! }
//!
//! #[transform]
//! fn add_suffix(row: &mut Row, config: &Config) -> Result<(), RowError> {
//!     let name = row.text("name")?;
//!     row.set("name", format!("{name}{}", config.suffix))?;
//!     Ok(())
//! }
//! # fn main() {}
//! ```
//!
//! `#[transform]` also defines a type named after the function in CamelCase
//! (`AddSuffix` here) that implements [`Transform`]; the test harness
//! [`testing::run_transform`] takes it. The output schema is the input schema.
//! To leave a row out (a filter), return `Result<RowAction, RowError>` and
//! `Ok(RowAction::Drop)`.
//!
//! # The full form: a [`Transform`] impl
//!
//! Use it when the transform changes the schema or needs the [`Context`];
//! register it with [`export_transform!`].

/// Lets the macros name this crate as `credvault_sdk` from inside it too.
extern crate self as credvault_sdk;

/// The generated WIT bindings. Not part of the API: use the re-exports.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
// wit-bindgen's generated lifting/lowering code is `unsafe` by nature; it is
// confined to this module.
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "transform-plugin",
        pub_export_macro: true,
        default_bindings_module: "credvault_sdk::bindings",
        runtime_path: "credvault_sdk::__wit_bindgen::rt",
        additional_derives: [PartialEq, Clone],
        generate_all,
    });
}

/// Bindings of the source world, sharing the transform world's types.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod source_bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "source-plugin",
        pub_export_macro: true,
        default_bindings_module: "credvault_sdk::source_bindings",
        runtime_path: "credvault_sdk::__wit_bindgen::rt",
        with: {
            "credvault:migrate/types@0.2.1": crate::bindings::credvault::migrate::types,
            "credvault:migrate/log@0.2.1": crate::bindings::credvault::migrate::log,
            "credvault:migrate/host@0.2.1": crate::bindings::credvault::migrate::host,
            "credvault:migrate/db@0.2.1": crate::bindings::credvault::migrate::db,
        },
    });
}

/// Bindings of the sink world, sharing the transform world's types.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod sink_bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "sink-plugin",
        pub_export_macro: true,
        default_bindings_module: "credvault_sdk::sink_bindings",
        runtime_path: "credvault_sdk::__wit_bindgen::rt",
        with: {
            "credvault:migrate/types@0.2.1": crate::bindings::credvault::migrate::types,
            "credvault:migrate/log@0.2.1": crate::bindings::credvault::migrate::log,
            "credvault:migrate/host@0.2.1": crate::bindings::credvault::migrate::host,
            "credvault:migrate/db@0.2.1": crate::bindings::credvault::migrate::db,
        },
    });
}

#[doc(hidden)]
pub use wit_bindgen as __wit_bindgen;

pub mod db;
pub mod http;
pub mod log;
mod row;
#[doc(hidden)]
pub mod runtime;
pub mod sink;
pub mod source;
pub mod testing;
mod value;

pub use credvault_sdk_macros::transform;
pub use row::{ColumnRef, Columns, Row};
/// Re-exported so configs can derive `Deserialize` without a direct dependency
/// (`#[serde(crate = "credvault_sdk::serde")]`).
pub use serde;

/// One cell of a row: `Null`, `Boolean`, `Int`, `Float`, `Decimal` (text),
/// `Text`, `Bytes`, `Date` (days since 1970-01-01), `Time` (µs since
/// midnight), `Timestamp` / `Timestamptz` (µs since the epoch), `Uuid`
/// (high, low) and `Json` (text).
pub use bindings::credvault::migrate::types::Value;

/// The type of a column.
pub use bindings::credvault::migrate::types::ColumnType;

/// A column of a schema: `name`, `type_` and `nullable`.
pub use bindings::credvault::migrate::types::Column;

/// A row the transform could not process: an optional `column` and a
/// `message` saying what went wrong and what was expected.
pub use bindings::credvault::migrate::types::RowError;

/// What the host tells a transform about the run: `migration`, `table` and
/// `run_started_at` (µs since the epoch; plugins have no clock).
pub use bindings::exports::credvault::migrate::transform::Context;

/// A table a source offers: `name`, `columns`, `primary_key` (column
/// names) and `approx_rows`.
pub use bindings::credvault::migrate::types::TableInfo;

/// The ordered columns of a row stream.
pub type Schema = Vec<Column>;

/// A transform plugin: validates its config against the input schema once,
/// then maps each row to an [`Outcome`].
pub trait Transform: Sized + 'static {
    /// The plugin's settings, deserialized from the migration file's JSON.
    type Config: serde::de::DeserializeOwned;

    /// Validates `config` against the `input` schema; returns the transform
    /// and the schema of the rows it emits. An `Err` is shown to the user as a
    /// configuration error, so say what is wrong and how to fix it.
    fn configure(
        ctx: &Context,
        config: Self::Config,
        input: &Schema,
    ) -> Result<(Self, Schema), String>;

    /// Transforms one row (laid out like the input schema) into an outcome
    /// whose row, if kept, is laid out like the output schema.
    fn transform_row(&mut self, row: Row) -> Outcome;

    /// Called with each batch's rows (laid out like the input schema)
    /// before `transform_row` sees them one by one: the place to look up
    /// what the whole batch needs at once (one database query per batch,
    /// not per row). An `Err` fails every row of the batch with its
    /// message. The default does nothing.
    fn begin_batch(&mut self, rows: &[Vec<Value>]) -> Result<(), String> {
        let _ = rows;
        Ok(())
    }
}

/// What happened to one input row.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The transformed row, laid out like the output schema.
    Keep(Vec<Value>),
    /// Leave the row out of the destination (a filter); not an error.
    Drop,
    /// The row failed; the table's error policy (skip, stop, flag) applies.
    Error(RowError),
}

impl Outcome {
    /// Keeps `row` as it is now.
    pub fn keep(row: Row) -> Self {
        Outcome::Keep(row.into_values())
    }
}

impl From<Row> for Outcome {
    fn from(row: Row) -> Self {
        Outcome::keep(row)
    }
}

impl From<RowError> for Outcome {
    fn from(error: RowError) -> Self {
        Outcome::Error(error)
    }
}

/// What a `#[transform]` function decides about a row it processed without
/// error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowAction {
    /// Emit the (possibly modified) row.
    Keep,
    /// Leave the row out of the destination (a filter); not an error.
    Drop,
}

/// A `#[transform]` function's return type: `Result<(), RowError>` (keep or
/// fail) or `Result<RowAction, RowError>` (keep, drop or fail).
pub trait IntoOutcome {
    /// Turns the function's result and the row it modified into an outcome.
    fn into_outcome(self, row: Row) -> Outcome;
}

impl IntoOutcome for Result<(), RowError> {
    fn into_outcome(self, row: Row) -> Outcome {
        match self {
            Ok(()) => Outcome::keep(row),
            Err(e) => Outcome::Error(e),
        }
    }
}

impl IntoOutcome for Result<RowAction, RowError> {
    fn into_outcome(self, row: Row) -> Outcome {
        match self {
            Ok(RowAction::Keep) => Outcome::keep(row),
            Ok(RowAction::Drop) => Outcome::Drop,
            Err(e) => Outcome::Error(e),
        }
    }
}

/// Exports a [`Transform`] implementation as the component's `transform`
/// interface. Use it once per plugin crate; `#[transform]` calls it for you.
///
/// On targets other than wasm32 it expands to nothing, so the crate still
/// builds and tests natively (see [`testing`]).
#[macro_export]
macro_rules! export_transform {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)] // the generated export shims are `unsafe extern "C"`
        const _: () = {
            ::std::thread_local! {
                static STATE: $crate::runtime::Slot<$ty> = const { $crate::runtime::Slot::new() };
            }

            struct __CredvaultExport;

            impl $crate::bindings::exports::credvault::migrate::transform::Guest for __CredvaultExport {
                fn configure(
                    ctx: $crate::Context,
                    config: ::std::string::String,
                    input: $crate::Schema,
                ) -> ::std::result::Result<$crate::Schema, ::std::string::String> {
                    STATE.with(|slot| slot.configure(&ctx, &config, input))
                }

                fn transform(
                    rows: ::std::vec::Vec<::std::vec::Vec<$crate::Value>>,
                ) -> ::std::vec::Vec<$crate::bindings::exports::credvault::migrate::transform::RowResult> {
                    STATE.with(|slot| slot.transform(rows))
                }
            }

            $crate::bindings::export!(__CredvaultExport with_types_in $crate::bindings);
        };
    };
}

/// Everything a plugin author usually needs: `use credvault_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::sink::{IfExists, PrepareMode, Rejected, Sink, WriteBatch};
    pub use crate::source::{Reader, Source, SourceBatch};
    pub use crate::{
        Column, ColumnType, Context, IntoOutcome, Outcome, Row, RowAction, RowError, Schema,
        TableInfo, Transform, Value, db, export_sink, export_source, export_transform, http, log,
        transform,
    };
}
