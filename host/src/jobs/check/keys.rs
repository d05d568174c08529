//! Key collisions on append: source rows whose key, as it will land, is
//! already in the destination table.
//!
//! Cost: the destination table is read once and a 64-bit hash of each key
//! kept in a set (about 20 bytes a row; at most [`MAX_KEYS`] rows, about
//! 200 MB, else the check says it did not compare). Then the source table is
//! read once through the mapping and transforms, as the run would, and each
//! key looked up. Hashes can collide by chance, with odds of about
//! rows × rows / 2^64: negligible below billions of rows.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::mpsc;

use super::CheckResult;
use super::destination::Destination;
use crate::config::Migration;
use crate::drivers::{ConnectorError, ReadRequest, Source, SourceBatch};
use crate::engine::batch::{Output, process};
use crate::engine::plan::TablePlan;
use crate::engine::transforms::Chain;
use crate::model::convert::convert_ref;
use crate::model::value::{ColumnType, Row, TableInfo, Value, to_text};

/// The most destination keys held in memory.
const MAX_KEYS: usize = 10_000_000;
/// Colliding keys shown.
const EXAMPLES: usize = 5;

/// Where the key is in output rows and in destination rows.
struct KeyColumns {
    names: Vec<String>,
    output: Vec<usize>,
    types: Vec<ColumnType>,
    dest: Vec<usize>,
}

/// Why the keys were not compared.
#[derive(Debug, thiserror::Error)]
enum KeyCheckError {
    /// The table has no key to compare by.
    #[error("the table has no key (set `key` to compare rows)")]
    NoKey,
    /// The mapping skips a key column.
    #[error("key column `{0}` is skipped")]
    Skipped(String),
    /// A transform drops a key column.
    #[error("a transform removes key column `{0}`")]
    Removed(String),
    /// The destination table lacks a key column.
    #[error("the destination table has no column `{0}`")]
    NoColumn(String),
    /// The destination table could not be read.
    #[error("reading the destination table: {0}")]
    Destination(#[source] ConnectorError),
    /// The source could not be read.
    #[error(transparent)]
    Source(ConnectorError),
    /// The mapping or a transform failed beyond a row.
    #[error(transparent)]
    Process(#[from] crate::engine::batch::TableFailure),
}

/// What comparing the keys found.
struct Found {
    compared: u64,
    held: usize,
    colliding: u64,
    examples: Vec<String>,
}

pub(super) async fn check(
    m: &Migration,
    plan: &TablePlan,
    source: &dyn Source,
    dest: &Destination,
    ours: bool,
) -> CheckResult {
    let name = format!("destination table {} keys", plan.spec.destination());
    let Some(table) = dest.table(plan.spec.destination()) else {
        return CheckResult::fail(name, "the table is not readable from the destination");
    };
    let key = match key_columns(plan, table) {
        Ok(key) => key,
        Err(why) => return CheckResult::pass(name, format!("not compared: {why}")),
    };
    if let Some(why) = crate::engine::not_callable(plan) {
        let why = format!("not compared: {why}; only `credvault run` calls it on rows");
        return CheckResult::pass(name, why);
    }
    let held = match destination_keys(dest.reader.as_ref(), table, &key, m).await {
        Ok(Some(held)) => held,
        Ok(None) => {
            return CheckResult::pass(
                name,
                format!(
                    "not compared: the table holds more than {MAX_KEYS} rows, more keys than the check keeps in memory"
                ),
            );
        }
        Err(e) => return CheckResult::fail(name, e.to_string()),
    };
    match source_collisions(m, plan, source, &key, &held).await {
        Ok(found) => report(name, &key, &found, ours),
        Err(e) => CheckResult::fail(name, e.to_string()),
    }
}

fn report(name: String, key: &KeyColumns, found: &Found, ours: bool) -> CheckResult {
    let columns = key.names.join(", ");
    if found.colliding == 0 {
        return CheckResult::pass(
            name,
            format!(
                "none of {} source rows has a key ({columns}) among the {} already there",
                found.compared, found.held
            ),
        );
    }
    CheckResult::fail(
        name,
        format!(
            "{} of {} source rows have a key ({columns}) already in the table, e.g. {}; appended, they would be refused by a unique key or land twice: remove them from one side{}",
            found.colliding,
            found.compared,
            found.examples.join("; "),
            super::destination::replace_advice(ours)
        ),
    )
}

/// The key as it lands: the table's key columns through the mapping, found
/// in the output and in the destination table.
fn key_columns(plan: &TablePlan, dest: &TableInfo) -> Result<KeyColumns, KeyCheckError> {
    if plan.key.is_empty() {
        return Err(KeyCheckError::NoKey);
    }
    let mut key = KeyColumns {
        names: Vec::new(),
        output: Vec::new(),
        types: Vec::new(),
        dest: Vec::new(),
    };
    for &i in &plan.key {
        let source_name = &plan.source.columns[i].name;
        let mapped = plan.mapping.columns().iter().find(|c| c.source == i);
        let Some(mapped) = mapped else {
            return Err(KeyCheckError::Skipped(source_name.clone()));
        };
        let name = &mapped.to.name;
        let Some(out) = plan.output.iter().position(|c| &c.name == name) else {
            return Err(KeyCheckError::Removed(name.clone()));
        };
        let found = dest
            .columns
            .iter()
            .position(|c| &c.name == name)
            .or_else(|| {
                dest.columns
                    .iter()
                    .position(|c| c.name.eq_ignore_ascii_case(name))
            });
        let Some(at) = found else {
            return Err(KeyCheckError::NoColumn(name.clone()));
        };
        key.names.push(name.clone());
        key.output.push(out);
        key.types.push(plan.output[out].type_);
        key.dest.push(at);
    }
    Ok(key)
}

/// The hash of a row's key, each value in the output column's type (so a
/// destination's `'7'` and the source's `7` agree); `None` if part of the
/// key is NULL, which collides with nothing.
fn key_hash(row: &Row, at: &[usize], types: &[ColumnType]) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    for (&i, &t) in at.iter().zip(types) {
        let value = row.get(i).unwrap_or(&Value::Null);
        let typed = convert_ref(value, t).unwrap_or_else(|_| value.clone());
        to_text(&typed)?.hash(&mut hasher);
    }
    Some(hasher.finish())
}

fn show_key(row: &Row, key: &KeyColumns) -> String {
    key.names
        .iter()
        .zip(&key.output)
        .map(|(n, &i)| format!("{n}={}", to_text(&row[i]).unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn read_all(table: &TableInfo, m: &Migration) -> ReadRequest {
    ReadRequest::whole(table, m.settings.batch_size)
}

/// Every key in the destination table, or `None` past [`MAX_KEYS`] (the
/// read stops there).
async fn destination_keys(
    reader: &dyn Source,
    table: &TableInfo,
    key: &KeyColumns,
    m: &Migration,
) -> Result<Option<HashSet<u64>>, KeyCheckError> {
    let (tx, mut rx) = mpsc::channel::<Result<SourceBatch, ConnectorError>>(2);
    let collect = async move {
        let mut held = HashSet::new();
        while let Some(batch) = rx.recv().await {
            let batch = batch.map_err(KeyCheckError::Destination)?;
            held.extend(
                batch
                    .rows
                    .iter()
                    .filter_map(|r| key_hash(r, &key.dest, &key.types)),
            );
            if held.len() > MAX_KEYS {
                return Ok(None);
            }
        }
        Ok(Some(held))
    };
    let ((), held) = tokio::join!(reader.read(read_all(table, m), tx), collect);
    held
}

/// Streams the source through the mapping and transforms and looks up each
/// output row's key.
async fn source_collisions(
    m: &Migration,
    plan: &TablePlan,
    source: &dyn Source,
    key: &KeyColumns,
    held: &HashSet<u64>,
) -> Result<Found, KeyCheckError> {
    let (tx, mut rx) = mpsc::channel::<Result<SourceBatch, ConnectorError>>(2);
    let mut chain = Chain::new(
        plan.ctx.clone(),
        plan.steps.clone(),
        m.settings.max_plugin_traps,
    );
    let compare = async move {
        let mut found = Found {
            compared: 0,
            held: held.len(),
            colliding: 0,
            examples: Vec::new(),
        };
        while let Some(batch) = rx.recv().await {
            let batch = batch.map_err(KeyCheckError::Source)?;
            let processed = process(plan, &mut chain, batch).await?;
            let rows: Vec<&Row> = match &processed.output {
                Output::Source => processed.source.rows.iter().collect(),
                Output::Rows(rows) => rows.iter().map(|(_, r)| r).collect(),
            };
            for row in rows {
                found.compared += 1;
                let hit = key_hash(row, &key.output, &key.types).is_some_and(|h| held.contains(&h));
                if !hit {
                    continue;
                }
                found.colliding += 1;
                if found.examples.len() < EXAMPLES {
                    found.examples.push(show_key(row, key));
                }
            }
        }
        Ok(found)
    };
    let ((), found) = tokio::join!(source.read(read_all(&plan.source, m), tx), compare);
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_in_the_output_type_and_null_keys_collide_with_nothing() {
        let types = [ColumnType::Int];
        let dest_text = vec![Value::Text("007".into())];
        let source_int = vec![Value::Int(7)];
        assert_eq!(
            key_hash(&dest_text, &[0], &types),
            key_hash(&source_int, &[0], &types)
        );
        assert_ne!(
            key_hash(&vec![Value::Int(8)], &[0], &types),
            key_hash(&source_int, &[0], &types)
        );
        assert_eq!(key_hash(&vec![Value::Null], &[0], &types), None);
    }
}
