//! The one place WIT bindings are generated for the host: one module per
//! world, sharing the types, log, host and db interfaces of the first.
//!
//! The generated value types mirror the host's row model (`model::value`);
//! `convert` moves rows between the two without copying their contents.

#[allow(missing_docs)] // generated from wit/, which documents every item
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "transform-plugin",
        imports: {
            "credvault:migrate/host.http-fetch": async,
            "credvault:migrate/db": async,
        },
        exports: { default: async },
        additional_derives: [PartialEq],
        with: {
            "credvault:migrate/db.connection": crate::capabilities::db::DbHandle,
        },
    });

    pub mod source_world {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "source-plugin",
            exports: { default: async },
            with: {
                "credvault:migrate/types": super::credvault::migrate::types,
                "credvault:migrate/log": super::credvault::migrate::log,
                "credvault:migrate/host": super::credvault::migrate::host,
                "credvault:migrate/db": super::credvault::migrate::db,
            },
        });
    }

    pub mod sink_world {
        wasmtime::component::bindgen!({
            path: "../wit",
            world: "sink-plugin",
            exports: { default: async },
            with: {
                "credvault:migrate/types": super::credvault::migrate::types,
                "credvault:migrate/log": super::credvault::migrate::log,
                "credvault:migrate/host": super::credvault::migrate::host,
                "credvault:migrate/db": super::credvault::migrate::db,
            },
        });
    }
}

pub use generated::credvault::migrate::{db, host, log, types};
pub use generated::exports::credvault::migrate::transform;
pub use generated::sink_world::exports::credvault::migrate::sink;
pub use generated::sink_world::{SinkPlugin, SinkPluginPre};
pub use generated::source_world::{SourcePlugin, SourcePluginPre};
pub use generated::{TransformPlugin, TransformPluginPre};

pub use log::Level as LogLevel;
pub use types::Value;
