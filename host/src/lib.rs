//! CredVault Migrations: moves data between databases through sandboxed
//! WebAssembly plugins. This crate holds the host: the layers below depend
//! only on the ones listed before them (checked by `layout::tests`).
//!
//! - [`model`]: the row model and untrusted text; depends on nothing.
//! - [`config`]: the migration file's schema and validation.
//! - [`capabilities`]: what plugins may reach (dirs, HTTP, databases).
//! - [`runtime`]: the wasm sandbox, the only module that names wasmtime.
//! - [`state`]: the state store (runs, checkpoints, flagged rows, audit).
//! - [`drivers`]: everything about each database, one folder each.
//! - [`engine`]: plan, mapping, conversion, transforms, batch processing.
//! - [`jobs`]: run, retry, sync, consolidation, validation, restore points.
//! - [`app`]: what the CLI and the dashboard both ask for.
//! - [`cli`], [`ui`]: the command line and the web dashboard.

pub mod app;
pub mod capabilities;
pub mod cli;
pub mod config;
pub mod drivers;
pub mod engine;
pub mod jobs;
#[cfg(test)]
mod layout;
pub mod model;
pub mod runtime;
pub mod state;
pub mod ui;
