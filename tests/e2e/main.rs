//! Scenario tests: real migration files run through the `credvault` binary
//! on real files and databases. One binary for all scenarios.

mod capabilities;
mod cdc;
mod checks;
mod cli;
mod config_errors;
mod consolidate;
mod hold;
mod hostile_text;
mod input;
mod limits;
mod mariadb;
mod output;
mod owned;
mod plugins;
mod policies;
mod postgres;
mod private_files;
mod progress;
mod restore;
mod resume;
mod retry;
mod schema;
mod schema_mariadb;
mod schema_sqlite;
mod serve;
mod servers;
mod side_effects;
mod stall;
mod sync;
mod sync_window;
mod transient;
mod ui;
mod validate;

use credvault_tests::Project;

/// A fresh project for the binary under test.
fn project() -> Project {
    Project::new(env!("CARGO_BIN_EXE_credvault"))
}

/// A CSV → SQLite migration of table `people` with extra `[[tables]]`
/// settings (policy, columns, transforms) appended.
fn people_migration(settings: &str, table: &str) -> String {
    format!(
        r#"name = "people-move"
[source]
type = "csv"
path = "data"
[destination]
type = "sqlite"
path = "out/vault.db"
[settings]
{settings}
[[tables]]
source = "people"
key = ["id"]
{table}
[tables.columns.id]
type = "int"
[tables.columns.score]
type = "int"
"#
    )
}
