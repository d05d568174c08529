//! The one place WIT bindings are generated for the host.
//!
//! The generated value types (`Value`, `Column`, ...) are plain Rust data and
//! serve as the host's own row model, so rows cross into plugins without a
//! conversion step.

#[allow(missing_docs)] // generated from wit/, which documents every item
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform-plugin",
        exports: { default: async },
        additional_derives: [PartialEq],
    });
}

pub use generated::*;

pub use credvault::migrate::log::Level as LogLevel;
pub use credvault::migrate::types::{Column, ColumnType, RowError, TableInfo, Value};
pub use exports::credvault::migrate::transform::{Context as TransformContext, RowResult};
