//! Source and sink plugins: pre-linked components, and live instances whose
//! every call runs under the plugin's limits and is checked against the
//! contract before the host uses what it returned.

use std::sync::Arc;

use wasmtime::Store;
use wasmtime::component::ResourceAny;

use super::bindings;
use super::bindings::sink::{IfExists, PrepareMode, Rejected};
use super::convert::{from_wit_row, from_wit_table, give_back, lend, to_wit_columns};
use super::limits::{FailureKind, Limits, PluginFailure};
use super::state::{PluginState, RandomUse};
use super::transform::{arm, classify, new_store, with_timeout};
use crate::capabilities::Grants;
use crate::model::value::{Column, Row, TableInfo, Value, conforms, describe, to_text, type_name};

/// Calls a guest function under the limits; a trap or the plugin's own
/// error becomes a [`FailureKind`].
macro_rules! guest_call {
    ($this:expr, $call:expr) => {{
        arm(&mut $this.store, $this.limits);
        let called = with_timeout($this.limits, $call).await;
        match called {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err($this.failure(FailureKind::Refused { message })),
            Err(err) => {
                let kind = classify(&$this.store, $this.limits, err);
                Err($this.failure(kind))
            }
        }
    }};
}

/// A loaded source plugin, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct SourcePlugin {
    name: Arc<str>,
    pre: bindings::SourcePluginPre<PluginState>,
    limits: Limits,
    grants: Arc<Grants>,
}

/// A loaded sink plugin, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct SinkPlugin {
    name: Arc<str>,
    pre: bindings::SinkPluginPre<PluginState>,
    limits: Limits,
    grants: Arc<Grants>,
}

/// A live source instance. After any failure it must be dropped.
pub struct SourceInstance {
    name: Arc<str>,
    store: Store<PluginState>,
    bindings: bindings::SourcePlugin,
    limits: Limits,
    reader: Option<ResourceAny>,
}

/// A live, configured sink instance. After any failure it must be dropped.
pub struct SinkInstance {
    name: Arc<str>,
    store: Store<PluginState>,
    bindings: bindings::SinkPlugin,
    limits: Limits,
}

fn failure(name: &str, kind: FailureKind) -> PluginFailure {
    PluginFailure {
        plugin: name.to_string(),
        kind,
    }
}

impl SourcePlugin {
    pub(super) fn new(
        name: &str,
        pre: bindings::SourcePluginPre<PluginState>,
        limits: Limits,
        grants: Grants,
    ) -> Self {
        Self {
            name: name.into(),
            pre,
            limits,
            grants: Arc::new(grants),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Starts a fresh instance; `scope` names the work in its log lines.
    pub async fn instantiate(&self, scope: &str) -> Result<SourceInstance, PluginFailure> {
        let mut store = new_store(
            self.pre.engine(),
            &self.name,
            scope,
            self.limits,
            &self.grants,
            &RandomUse::default(),
        )
        .map_err(|e| {
            let message = e.to_string();
            failure(&self.name, FailureKind::Config { message })
        })?;
        let instantiated = with_timeout(self.limits, self.pre.instantiate_async(&mut store)).await;
        let bindings =
            instantiated.map_err(|err| failure(&self.name, classify(&store, self.limits, err)))?;
        Ok(SourceInstance {
            name: self.name.clone(),
            store,
            bindings,
            limits: self.limits,
            reader: None,
        })
    }
}

impl SourceInstance {
    fn failure(&self, kind: FailureKind) -> PluginFailure {
        failure(&self.name, kind)
    }

    /// Checks the configuration and that the source is reachable.
    pub async fn check(&mut self, config: &str) -> Result<(), PluginFailure> {
        let guest = self.bindings.credvault_migrate_source();
        guest_call!(self, guest.call_check(&mut self.store, config))
    }

    /// The tables the source offers.
    pub async fn discover(&mut self, config: &str) -> Result<Vec<TableInfo>, PluginFailure> {
        let guest = self.bindings.credvault_migrate_source();
        let tables = guest_call!(self, guest.call_discover(&mut self.store, config))?;
        Ok(tables.into_iter().map(from_wit_table).collect())
    }

    /// Opens `table`, after `position` when resuming.
    pub async fn open(
        &mut self,
        config: &str,
        table: &str,
        after: Option<&str>,
    ) -> Result<(), PluginFailure> {
        let guest = self.bindings.credvault_migrate_source();
        let reader = guest_call!(self, guest.call_open(&mut self.store, config, table, after))?;
        self.reader = Some(reader);
        Ok(())
    }

    /// The next rows of the open table and the position after them; `None`
    /// at the end. A batch over `max_rows` or a row of the wrong width
    /// breaks the contract; a value of the wrong type, or a null in a NOT
    /// NULL column, makes its row a [`BadRow`].
    pub async fn next(
        &mut self,
        max_rows: u32,
        columns: &[Column],
    ) -> Result<Option<SourceRows>, PluginFailure> {
        let reader = self.reader.expect("open is called before next");
        let guest = self.bindings.credvault_migrate_source();
        let batch = guest_call!(
            self,
            guest.reader().call_next(&mut self.store, reader, max_rows)
        )?;
        let Some(batch) = batch else { return Ok(None) };
        if batch.rows.len() > max_rows as usize {
            let message = format!(
                "returned {} rows when asked for at most {max_rows}; the batch was refused",
                batch.rows.len()
            );
            return Err(self.failure(FailureKind::Contract { message }));
        }
        let rows: Vec<Row> = batch.rows.into_iter().map(from_wit_row).collect();
        let bad = check_rows(&rows, columns).map_err(|e| {
            self.failure(FailureKind::Contract {
                message: e.to_string(),
            })
        })?;
        Ok(Some(SourceRows {
            rows,
            position: batch.position,
            bad,
        }))
    }
}

/// A batch a source plugin returned, checked against the table's schema.
#[derive(Debug)]
pub struct SourceRows {
    /// The rows, as returned.
    pub rows: Vec<Vec<Value>>,
    /// The plugin's position after the last row.
    pub position: String,
    /// Rows with values that do not fit their declared columns, ascending.
    pub bad: Vec<BadRow>,
}

/// A row whose values do not fit the schema the plugin declared: a row
/// error under the table's policy, not a failure of the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// The row's index in its batch.
    pub index: usize,
    /// The columns whose values do not fit (the first one is named in
    /// `message`).
    pub columns: Vec<usize>,
    /// The first offending value as text (`ABC123`); `None` for a null.
    pub value: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// A row of another width than its table: the plugin broke its contract.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row {row} has {values} values but the table has {columns} columns")]
struct WidthError {
    row: usize,
    values: usize,
    columns: usize,
}

/// Checks rows against the schema they claim: the width of every row (a
/// contract error), then each value's type and NOT NULL (a bad row).
fn check_rows(rows: &[Vec<Value>], columns: &[Column]) -> Result<Vec<BadRow>, WidthError> {
    let mut bad = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        if row.len() != columns.len() {
            return Err(WidthError {
                row: i,
                values: row.len(),
                columns: columns.len(),
            });
        }
        bad.extend(check_row(i, row, columns));
    }
    Ok(bad)
}

/// The values of one row that do not fit their columns, if any.
fn check_row(index: usize, row: &[Value], columns: &[Column]) -> Option<BadRow> {
    let misfit = |(c, (value, column)): (usize, (&Value, &Column))| {
        let null = matches!(value, Value::Null);
        let fits = conforms(value, column) && (column.nullable || !null);
        (!fits).then_some(c)
    };
    let misfits: Vec<usize> = row
        .iter()
        .zip(columns)
        .enumerate()
        .filter_map(misfit)
        .collect();
    let first = *misfits.first()?;
    let (value, column) = (&row[first], &columns[first]);
    let declared = match value {
        Value::Null => "NOT NULL".to_string(),
        _ => type_name(column.type_).to_string(),
    };
    let more = match misfits.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more column(s) that do not fit)"),
    };
    Some(BadRow {
        index,
        value: to_text(value),
        message: format!(
            "column `{}` is declared {declared} but the plugin returned {}{more}; fix the plugin or its config, then retry the row",
            column.name,
            describe(value)
        ),
        columns: misfits,
    })
}

/// How a sink plugin should make a table ready.
#[derive(Debug, Clone, Copy)]
pub enum SinkMode {
    /// A fresh load: `fail`, `append` or `replace` an existing table.
    Fresh(crate::config::IfExists),
    /// Continue an interrupted load.
    Resume,
}

impl SinkPlugin {
    pub(super) fn new(
        name: &str,
        pre: bindings::SinkPluginPre<PluginState>,
        limits: Limits,
        grants: Grants,
    ) -> Self {
        Self {
            name: name.into(),
            pre,
            limits,
            grants: Arc::new(grants),
        }
    }

    /// The plugin's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Starts a fresh instance and configures it.
    pub async fn instantiate(
        &self,
        scope: &str,
        config: &str,
    ) -> Result<SinkInstance, PluginFailure> {
        let mut store = new_store(
            self.pre.engine(),
            &self.name,
            scope,
            self.limits,
            &self.grants,
            &RandomUse::default(),
        )
        .map_err(|e| {
            let message = e.to_string();
            failure(&self.name, FailureKind::Config { message })
        })?;
        let instantiated = with_timeout(self.limits, self.pre.instantiate_async(&mut store)).await;
        let bindings =
            instantiated.map_err(|err| failure(&self.name, classify(&store, self.limits, err)))?;
        let mut instance = SinkInstance {
            name: self.name.clone(),
            store,
            bindings,
            limits: self.limits,
        };
        let guest = instance.bindings.credvault_migrate_sink();
        guest_call!(instance, guest.call_configure(&mut instance.store, config))?;
        Ok(instance)
    }
}

impl SinkInstance {
    fn failure(&self, kind: FailureKind) -> PluginFailure {
        failure(&self.name, kind)
    }

    /// Rows in `table`, `None` if it does not exist.
    pub async fn table_rows(&mut self, table: &str) -> Result<Option<u64>, PluginFailure> {
        let guest = self.bindings.credvault_migrate_sink();
        guest_call!(self, guest.call_table_rows(&mut self.store, table))
    }

    /// Makes `table` ready for rows of `columns`.
    pub async fn prepare(
        &mut self,
        migration: &str,
        table: &str,
        columns: &[Column],
        mode: SinkMode,
    ) -> Result<(), PluginFailure> {
        let mode = match mode {
            SinkMode::Resume => PrepareMode::Resume,
            SinkMode::Fresh(crate::config::IfExists::Fail) => PrepareMode::Fresh(IfExists::Fail),
            SinkMode::Fresh(crate::config::IfExists::Append) => {
                PrepareMode::Fresh(IfExists::Append)
            }
            SinkMode::Fresh(crate::config::IfExists::Replace) => {
                PrepareMode::Fresh(IfExists::Replace)
            }
        };
        let guest = self.bindings.credvault_migrate_sink();
        let columns = to_wit_columns(columns);
        guest_call!(
            self,
            guest.call_prepare(&mut self.store, migration, table, &columns, mode)
        )
    }

    /// Writes and commits rows with their checkpoint; the refused rows, by
    /// index.
    #[allow(clippy::too_many_arguments)]
    pub async fn write(
        &mut self,
        migration: &str,
        table: &str,
        checkpoint_name: &str,
        rows: &mut [Row],
        all_or_nothing: bool,
        checkpoint: &str,
    ) -> Result<Vec<(usize, String)>, PluginFailure> {
        let guest = self.bindings.credvault_migrate_sink();
        let lent = lend(rows);
        let written = guest_call!(
            self,
            guest.call_write(
                &mut self.store,
                migration,
                table,
                checkpoint_name,
                &lent,
                all_or_nothing,
                checkpoint
            )
        );
        give_back(rows, lent);
        let rejected: Vec<Rejected> = written?;
        if let Some(bad) = rejected.iter().find(|r| r.index as usize >= rows.len()) {
            let message = format!(
                "refused row {} of a batch of {} rows",
                bad.index,
                rows.len()
            );
            return Err(self.failure(FailureKind::Contract { message }));
        }
        Ok(rejected
            .into_iter()
            .map(|r| (r.index as usize, r.message))
            .collect())
    }

    /// Marks `table` complete.
    pub async fn finish(
        &mut self,
        migration: &str,
        table: &str,
        checkpoint: &str,
    ) -> Result<(), PluginFailure> {
        let guest = self.bindings.credvault_migrate_sink();
        guest_call!(
            self,
            guest.call_finish(&mut self.store, migration, table, checkpoint)
        )
    }

    /// The checkpoint last kept under `name`.
    pub async fn committed(
        &mut self,
        migration: &str,
        name: &str,
    ) -> Result<Option<String>, PluginFailure> {
        let guest = self.bindings.credvault_migrate_sink();
        guest_call!(self, guest.call_committed(&mut self.store, migration, name))
    }

    /// Forgets `migration`'s checkpoints.
    pub async fn reset(&mut self, migration: &str) -> Result<(), PluginFailure> {
        let guest = self.bindings.credvault_migrate_sink();
        guest_call!(self, guest.call_reset(&mut self.store, migration))
    }

    /// Drops `table` if it exists.
    pub async fn drop_table(&mut self, table: &str) -> Result<(), PluginFailure> {
        let guest = self.bindings.credvault_migrate_sink();
        guest_call!(self, guest.call_drop_table(&mut self.store, table))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::value::ColumnType;

    fn columns() -> Vec<Column> {
        vec![
            Column {
                name: "id".into(),
                type_: ColumnType::Int,
                nullable: false,
            },
            Column {
                name: "name".into(),
                type_: ColumnType::Text,
                nullable: true,
            },
        ]
    }

    #[test]
    fn a_wrong_type_or_a_null_in_not_null_is_a_bad_row_not_a_failed_batch() {
        let rows = vec![
            vec![Value::Int(1), Value::Null],
            vec![Value::Text("ABC123".into()), Value::Int(7)],
            vec![Value::Null, Value::Text("x".into())],
        ];
        let bad = check_rows(&rows, &columns()).expect("the width is right");
        assert_eq!(bad.len(), 2);
        assert_eq!((bad[0].index, bad[0].columns.clone()), (1, vec![0, 1]));
        assert_eq!(bad[0].value.as_deref(), Some("ABC123"));
        assert!(
            bad[0].message.starts_with(
                "column `id` is declared int but the plugin returned text \"ABC123\" (and 1 more"
            ),
            "{}",
            bad[0].message
        );
        assert_eq!((bad[1].index, bad[1].value.clone()), (2, None));
        assert!(
            bad[1].message.contains("declared NOT NULL"),
            "{}",
            bad[1].message
        );
    }

    #[test]
    fn a_row_of_the_wrong_width_breaks_the_contract() {
        let rows = vec![vec![Value::Int(1)]];
        let err = check_rows(&rows, &columns()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "row 0 has 1 values but the table has 2 columns"
        );
    }
}
