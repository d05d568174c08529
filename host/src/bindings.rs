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

pub use generated::credvault::migrate::{log, types};
pub use generated::exports::credvault::migrate::transform;
pub use generated::{TransformPlugin, TransformPluginPre};

pub use log::Level as LogLevel;
pub use transform::{Context as TransformContext, RowResult};
pub use types::{Column, ColumnType, RowError, TableInfo, Value};
