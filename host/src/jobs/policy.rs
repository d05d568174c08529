//! The one row-policy step: what becomes of a row that failed (`skip`,
//! `stop`, `flag`, and `on_orphan = "flag"`), for runs and for every kind
//! of sync alike. It records the row under the run it failed in, counts
//! it, writes its audit event and tells the observer.

use std::time::Duration;

use super::run::{Events, RunError, RunEvent, flagged};
use crate::config::{ErrorPolicy, Migration, OnOrphan};
use crate::engine::batch::RowFailure;
use crate::engine::plan::TablePlan;
use crate::engine::transforms::Chain;
use crate::state::{FlaggedRow, RunCounts, StateStore, missing_parent, refers_to_missing_row};

/// Flagged rows per table recorded one by one in the audit log; the rest
/// are counted in `table_finished` (all are in `credvault flagged`).
const AUDITED_FLAGS: u64 = 100;

/// The transform chain a table's rows go through: under `stop` the first
/// row that traps ends its batch, since the table ends at that row.
pub(super) fn chain(m: &Migration, plan: &TablePlan) -> Chain {
    let chain = Chain::new(
        plan.ctx.clone(),
        plan.steps.clone(),
        m.settings.max_plugin_traps,
    )
    .with_trap_time(Duration::from_secs(m.settings.max_trap_seconds));
    match plan.policy {
        ErrorPolicy::Stop => chain.stopping_at_first_trap(),
        _ => chain,
    }
}

/// A table's row policy within one run: the state store records failed
/// rows under `run_id` of `migration` (the name the run is recorded
/// under: a sync's is `<migration>#sync`).
pub(super) struct RowPolicy<'a> {
    /// The migration the run is recorded under.
    pub migration: &'a str,
    /// The table's plan, with its policy.
    pub plan: &'a TablePlan,
    /// The run the rows failed in.
    pub run_id: i64,
    /// Where rows, counts and audit events are kept.
    pub state: &'a StateStore,
}

/// What the policy counts as it goes: the run's (or table's) counts, and
/// the ids of the rows it flagged since the last commit, which are taken
/// back if that batch never commits.
pub(super) struct Counting<'a> {
    /// The counts that skipped and flagged rows add to.
    pub counts: &'a mut RunCounts,
    /// The flagged rows' ids.
    pub flagged: &'a mut Vec<i64>,
}

impl RowPolicy<'_> {
    /// Applies the policy to the rows a batch's mapping and transforms
    /// failed (in source order), before the batch is written: under `stop`
    /// the first one ends the run.
    pub async fn apply_all(
        &self,
        failures: Vec<RowFailure>,
        tally: Counting<'_>,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        if self.plan.policy == ErrorPolicy::Flag {
            return self.flag(failures, tally, events).await;
        }
        let Counting { counts, flagged } = tally;
        for failure in failures {
            let tally = Counting {
                counts: &mut *counts,
                flagged: &mut *flagged,
            };
            self.apply(failure, tally, events).await?;
        }
        Ok(())
    }

    /// Applies the table's policy to a failed row. The state store keeps
    /// the row under the table it was written to; what is reported names
    /// the table a person knows.
    pub async fn apply(
        &self,
        mut failure: RowFailure,
        tally: Counting<'_>,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        let policy = self.plan.policy;
        let shown = events.table(self.plan);
        if self.orphan(&failure) {
            failure.message = self.with_parent_error(failure.message).await?;
            return self.flag(vec![failure], tally, events).await;
        }
        match policy {
            ErrorPolicy::Stop => {
                failure.table = shown;
                return Err(RunError::Stopped(Box::new(failure)));
            }
            ErrorPolicy::Skip => {
                if failure.stage == "destination" {
                    self.state
                        .skipped(&flagged(&failure, self.run_id, self.migration))
                        .await?;
                }
                tally.counts.skipped += 1;
            }
            ErrorPolicy::Flag => return self.flag(vec![failure], tally, events).await,
        }
        failure.table = shown;
        report(failure, policy, events);
        Ok(())
    }

    /// Whether `on_orphan = "flag"` takes this refusal: the destination
    /// refused the row because a row it refers to is missing.
    fn orphan(&self, failure: &RowFailure) -> bool {
        self.plan.spec.on_orphan == OnOrphan::Flag
            && failure.stage == "destination"
            && refers_to_missing_row(&failure.message)
    }

    /// An orphan's error, with why its parent is missing where the
    /// destination names the parent and the run flagged it.
    async fn with_parent_error(&self, message: String) -> Result<String, RunError> {
        let Some((parent, values)) = missing_parent(&message) else {
            return Ok(format!("{message}; the row it refers to is missing"));
        };
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let key = values.join(", ");
        Ok(
            match self
                .state
                .refusal_of(self.migration, &parent, &values)
                .await?
            {
                Some(error) => {
                    format!("{message}; its parent in `{parent}` ({key}) was refused: {error}")
                }
                None => format!("{message}; its parent in `{parent}` ({key}) is not there"),
            },
        )
    }

    /// Keeps failed rows under the `flag` policy, in one transaction of the
    /// state store (a commit per row held a run whose rows all fail to a
    /// few thousand rows a second), and logs the first ones in the audit
    /// log.
    async fn flag(
        &self,
        failures: Vec<RowFailure>,
        tally: Counting<'_>,
        events: &Events<'_>,
    ) -> Result<(), RunError> {
        let rows: Vec<FlaggedRow> = failures
            .iter()
            .map(|f| flagged(f, self.run_id, self.migration))
            .collect();
        let ids = self.state.flag_all(&rows).await?;
        tally.flagged.extend(ids);
        let shown = events.table(self.plan);
        for (mut failure, row) in failures.into_iter().zip(&rows) {
            tally.counts.flagged += 1;
            if tally.counts.flagged <= AUDITED_FLAGS {
                let detail = serde_json::json!({
                    "table": row.table, "position": row.position, "key": row.key,
                    "stage": row.stage, "column": row.column, "error": row.error,
                });
                self.state
                    .event(self.migration, Some(self.run_id), "row_flagged", &detail)
                    .await?;
            }
            failure.table = shown.clone();
            report(failure, ErrorPolicy::Flag, events);
        }
        Ok(())
    }
}

/// Tells the observers of a failed row and what its policy did.
fn report(failure: RowFailure, policy: ErrorPolicy, events: &Events<'_>) {
    events.on(&RunEvent::RowFailed {
        failure,
        policy,
        source: events.source(),
    });
}
