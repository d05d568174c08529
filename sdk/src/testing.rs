//! A native test harness: run a transform the way the host would, without
//! wasm, so plugins are unit-tested with plain `cargo test`.
//!
//! ```
//! use credvault_sdk::prelude::*;
//! use credvault_sdk::testing::run_transform;
//!
//! #[derive(serde::Deserialize)]
//! struct Config { suffix: String }
//!
//! #[transform]
//! fn add_suffix(row: &mut Row, config: &Config) -> Result<(), RowError> {
//!     let name = row.text("name")?;
//!     row.set("name", format!("{name}{}", config.suffix))?;
//!     Ok(())
//! }
//!
//! let (schema, out) = run_transform::<AddSuffix>(
//!     r#"{"suffix": "!"}"#,
//!     vec![Column::new("name", ColumnType::Text)],
//!     vec![vec!["ada".into()]],
//! )
//! .unwrap();
//! assert_eq!(schema.len(), 1);
//! assert_eq!(out, vec![Outcome::Keep(vec!["ada!".into()])]);
//! ```

use crate::runtime::Slot;
use crate::{Context, Outcome, Schema, Transform, Value};

/// The context the harness passes: migration `"test"`, table `"test"`, run
/// started at 2024-06-15T12:00:00Z.
pub fn context() -> Context {
    Context {
        migration: "test".to_string(),
        table: "test".to_string(),
        run_started_at: 1_718_452_800_000_000,
    }
}

/// Configures `T` with `config_json` and `input`, then transforms `rows` as
/// one batch. Returns the output schema and one outcome per row, or the
/// configuration error the host would report.
pub fn run_transform<T: Transform>(
    config_json: &str,
    input: Schema,
    rows: Vec<Vec<Value>>,
) -> Result<(Schema, Vec<Outcome>), String> {
    run_transform_with::<T>(&context(), config_json, input, rows)
}

/// [`run_transform`] with a context of your own (e.g. another run start).
pub fn run_transform_with<T: Transform>(
    ctx: &Context,
    config_json: &str,
    input: Schema,
    rows: Vec<Vec<Value>>,
) -> Result<(Schema, Vec<Outcome>), String> {
    let slot = Slot::<T>::new();
    let schema = slot.configure(ctx, config_json, input)?;
    Ok((schema, slot.transform_outcomes(rows)))
}

/// Reads `table` from source `S` with `config_json`, after `after` when
/// given, `max_rows` at a time, as the host would: every batch until the
/// end, each checked against the `max_rows` the host asked for.
pub fn read_table<S: crate::source::Source>(
    config_json: &str,
    table: &str,
    after: Option<&str>,
    max_rows: usize,
) -> Result<Vec<crate::source::SourceBatch>, String> {
    use crate::source::Reader;
    let config = crate::runtime::parse_config::<S::Config>(config_json)?;
    let mut reader = S::open(&config, table, after)?;
    let mut batches = Vec::new();
    while let Some(batch) = reader.next(max_rows)? {
        if batch.rows.len() > max_rows {
            return Err(format!(
                "returned {} rows when asked for at most {max_rows}",
                batch.rows.len()
            ));
        }
        batches.push(batch);
    }
    Ok(batches)
}

/// Configures sink `S` with `config_json`, as the host's first call does.
pub fn configure_sink<S: crate::sink::Sink>(config_json: &str) -> Result<S, String> {
    S::configure(crate::runtime::parse_config(config_json)?)
}
