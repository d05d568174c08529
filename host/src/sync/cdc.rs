//! CDC syncs: a PostgreSQL source's committed inserts, updates and deletes,
//! read from its logical replication slot, applied by key.
//!
//! The first sync creates the slot, then copies the table in full (changes
//! made during that copy arrive again through the slot and are applied by
//! key, so nothing is lost). Each later sync stages up to a batch of
//! changes, collapsed to the last per key, and applies them in one
//! transaction that also records the log position; only then is the slot
//! told to release them. A crash in between replays changes the destination
//! already has, and they are skipped by position.

use std::collections::HashMap;

use super::Table;
use crate::config::{Endpoint, IfExists, Migration};
use crate::connectors::merge::Applied;
use crate::connectors::{
    Checkpoint, ConnectorError, Lsn, PgChanges, Prepare, Sink, SourceBatch, SourceChange, Step,
    WriteBatch, open_sink,
};
use crate::pipeline::convert::convert_ref;
use crate::pipeline::{Chain, Observer, Output, RunError, process};
use crate::runtime::Runtime;
use crate::state::StateStore;
use crate::value::{Column, Row};

/// The slot a migration reads its changes from.
fn slot_name(m: &Migration) -> String {
    let name: String = m
        .name
        .chars()
        .map(|c| match c.is_ascii_alphanumeric() {
            true => c.to_ascii_lowercase(),
            false => '_',
        })
        .collect();
    let mut slot = format!("credvault_{name}");
    slot.truncate(63);
    slot
}

impl Table<'_> {
    /// One CDC sync of this table.
    pub(super) async fn cdc(
        &self,
        runtime: &Runtime,
        state: &StateStore,
        observer: &mut dyn Observer,
    ) -> Result<Applied, RunError> {
        let Some(Endpoint::Postgres(ep)) = &self.m.source else {
            return Err(self.fail("CDC needs a PostgreSQL source"));
        };
        let changes = PgChanges::open(ep, &self.m.base_dir, &slot_name(self.m)).await?;
        let created = changes.ensure_slot().await?;
        let mut sink = open_sink(self.m).await?;
        let committed = sink.committed(&self.m.name, &self.checkpoint).await?;
        let exists = sink.existing_rows(&self.name).await?.is_some();
        let mut after = match (created, exists, committed.and_then(|c| c.cursor)) {
            (false, true, Some(at)) => Some(at.parse::<Lsn>().map_err(|e| self.fail(&e))?),
            _ => None,
        };
        let mut total = Applied::default();
        if after.is_none() {
            total = self.full(runtime, state, observer).await?;
            sink.run_script(&self.m.name, &self.checkpoint, &[], &Checkpoint::default())
                .await?;
        }
        loop {
            let batch = changes
                .changes(
                    std::slice::from_ref(&self.plan.source),
                    after,
                    self.m.settings.batch_size,
                )
                .await?;
            let Some(last) = batch.last().map(|c| c.lsn) else {
                if let Some(at) = after {
                    changes.confirm(at).await?;
                }
                return Ok(total);
            };
            let changed = self
                .apply(
                    sink.as_mut(),
                    state,
                    batch.into_iter().map(|c| c.change),
                    last,
                )
                .await?;
            changes.confirm(last).await?;
            total = add(total, changed);
            after = Some(last);
        }
    }

    /// Stages one batch of changes and applies it with its position.
    async fn apply(
        &self,
        sink: &mut dyn Sink,
        state: &StateStore,
        batch: impl Iterator<Item = SourceChange>,
        reached: Lsn,
    ) -> Result<Applied, RunError> {
        let (upserts, deletes) = self.collapse(batch);
        let rows = self.transform(upserts, state).await?;
        let key_columns: Vec<Column> = self
            .plan
            .output_key()
            .iter()
            .map(|&i| self.plan.output[i].clone())
            .collect();
        let keys = self.mapped_keys(&deletes, &key_columns)?;
        let deletes_table = format!("{}_gone", self.stage);
        self.write_scratch(sink, &self.stage, &self.plan.output, &rows)
            .await?;
        self.write_scratch(sink, &deletes_table, &key_columns, &keys)
            .await?;
        let dialect = sink
            .dialect()
            .ok_or_else(|| self.fail("CDC needs a database destination"))?;
        self.index(sink, &dialect, &self.stage).await?;
        self.index(sink, &dialect, &deletes_table).await?;
        let (t, s, d, key, columns) = (
            sink.sql_name(&self.name),
            sink.sql_name(&self.stage),
            sink.sql_name(&deletes_table),
            self.key(),
            self.columns(),
        );
        // Changed rows are updated in place (a delete and insert would
        // fire the table's delete triggers and cascades).
        let mut steps = vec![
            Step::Count(dialect.count_missing(&s, &t, &key)),
            Step::Count(dialect.count_changed(&s, &t, &columns, &key)),
            Step::Exec(dialect.delete_keys(&t, &d, &key)),
            Step::Exec(dialect.insert_missing(&t, &s, &columns, &key)),
        ];
        if columns.iter().any(|c| !key.contains(c)) {
            steps.push(Step::Exec(dialect.update_changed(&t, &s, &columns, &key)));
        }
        let reached = Checkpoint {
            cursor: Some(reached.to_string()),
            ..Checkpoint::default()
        };
        let n = sink
            .run_script(&self.m.name, &self.checkpoint, &steps, &reached)
            .await?;
        sink.drop_table(&self.stage).await?;
        sink.drop_table(&deletes_table).await?;
        Ok(Applied {
            inserted: n[0],
            updated: n[1],
            deleted: n[2],
        })
    }

    /// The last change per key: rows to write, and keys to delete.
    fn collapse(&self, batch: impl Iterator<Item = SourceChange>) -> (Vec<Row>, Vec<Row>) {
        let mut last: HashMap<Vec<String>, SourceChange> = HashMap::new();
        let mut order = Vec::new();
        for change in batch {
            let row = match &change {
                SourceChange::Insert(r) | SourceChange::Update(r) | SourceChange::Delete(r) => r,
            };
            let key: Vec<String> = self
                .plan
                .key
                .iter()
                .map(|&k| crate::value::to_text(&row[k]).unwrap_or_default())
                .collect();
            if last.insert(key.clone(), change).is_none() {
                order.push(key);
            }
        }
        let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
        for key in order {
            match last.remove(&key) {
                Some(SourceChange::Delete(r)) => deletes.push(r),
                Some(SourceChange::Insert(r) | SourceChange::Update(r)) => upserts.push(r),
                None => {}
            }
        }
        (upserts, deletes)
    }

    /// Source rows through the mapping and transforms; a row that fails
    /// stops the sync under `stop`, and is flagged or skipped otherwise.
    async fn transform(&self, rows: Vec<Row>, state: &StateStore) -> Result<Vec<Row>, RunError> {
        if rows.is_empty() {
            return Ok(rows);
        }
        let traps = self.m.settings.max_plugin_traps;
        let mut chain = Chain::new(self.plan.ctx.clone(), self.plan.steps.clone(), traps);
        let processed = process(
            self.plan,
            &mut chain,
            SourceBatch {
                rows,
                first: 1,
                position: None,
                faults: Vec::new(),
            },
        )
        .await?;
        for failure in processed.failures {
            match self.plan.policy {
                crate::config::ErrorPolicy::Stop => {
                    return Err(RunError::Stopped(Box::new(failure)));
                }
                crate::config::ErrorPolicy::Skip => {}
                crate::config::ErrorPolicy::Flag => {
                    state
                        .flag(&crate::pipeline::flagged_row(&failure, 0, &self.m.name))
                        .await?;
                }
            }
        }
        Ok(match processed.output {
            Output::Source => processed.source.rows,
            Output::Rows(rows) => rows.into_iter().map(|(_, r)| r).collect(),
        })
    }

    /// Deleted rows' keys, converted like the mapping converts them.
    fn mapped_keys(&self, deletes: &[Row], columns: &[Column]) -> Result<Vec<Row>, RunError> {
        deletes
            .iter()
            .map(|row| {
                self.plan
                    .key
                    .iter()
                    .zip(columns)
                    .map(|(&k, c)| convert_ref(&row[k], c.type_).map_err(|e| self.fail(&e)))
                    .collect()
            })
            .collect()
    }

    async fn write_scratch(
        &self,
        sink: &mut dyn Sink,
        table: &str,
        columns: &[Column],
        rows: &[Row],
    ) -> Result<(), RunError> {
        let migration = format!("{}#sync", self.m.name);
        sink.native_columns(table, &self.plan.natives);
        sink.prepare(
            &migration,
            table,
            columns,
            Prepare::Fresh(IfExists::Replace),
        )
        .await?;
        let rejected = sink
            .write(WriteBatch {
                migration: &migration,
                table,
                checkpoint_name: table,
                columns,
                rows,
                all_or_nothing: true,
                checkpoint: &Checkpoint::default(),
            })
            .await?;
        match rejected.first() {
            None => Ok(()),
            Some((_, message)) => {
                Err(self.fail(&format!("the destination refused a changed row: {message}")))
            }
        }
    }

    fn fail(&self, message: &str) -> RunError {
        RunError::Connector(ConnectorError::new(
            format!("table `{}`", self.name),
            message.to_string(),
        ))
    }
}

fn add(a: Applied, b: Applied) -> Applied {
    Applied {
        inserted: a.inserted + b.inserted,
        updated: a.updated + b.updated,
        deleted: a.deleted + b.deleted,
    }
}
