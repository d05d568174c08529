//! CredVault Migrations: moves data between databases through sandboxed
//! WebAssembly plugins. This crate holds the host runtime, the native
//! connectors, the pipeline, the state store and the `credvault` CLI.

pub mod actions;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod connectors;
pub mod consolidate;
pub mod model;
pub mod pipeline;
pub mod plugins;
pub mod restore;
pub mod runtime;
pub mod state;
pub mod sync;
pub mod ui;
pub mod validate;
