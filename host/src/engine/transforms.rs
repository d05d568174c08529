//! Runs a table's transform chain over a batch. Row errors come back as
//! values; a trap kills the instance, and the batch is bisected on fresh
//! instances until the row that causes it stands alone.

use crate::model::value::{Column, Row, RowError};
use crate::model::value::{RowResult, TransformContext};
use crate::runtime::{PluginFailure, TransformInstance, TransformPlugin};

/// One configured step of a chain.
#[derive(Clone)]
pub struct TransformStep {
    /// The loaded plugin.
    pub plugin: TransformPlugin,
    /// Its settings as JSON.
    pub config: String,
    /// The schema it receives.
    pub input: Vec<Column>,
    /// The schema it emits.
    pub output: Vec<Column>,
}

/// What became of one row in the chain.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainOutcome {
    /// The transformed row.
    Row(Row),
    /// A transform filtered it out.
    Dropped,
    /// A transform failed on it.
    Failed {
        /// The plugin at fault.
        plugin: String,
        /// The column at fault, when known.
        column: Option<String>,
        /// What happened.
        message: String,
    },
}

/// A failure that ends the table whatever its row policy.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// A plugin could not be (re)started or configured.
    #[error("{0}")]
    Plugin(#[from] PluginFailure),
    /// A plugin trapped on too many rows.
    #[error(
        "plugin `{plugin}` failed on {traps} rows in this table (limit {limit}); the last: {last}. Fix the plugin or raise settings.max_plugin_traps"
    )]
    TooManyTraps {
        /// The plugin.
        plugin: String,
        /// Rows it trapped on.
        traps: u32,
        /// The limit.
        limit: u32,
        /// The last failure.
        last: String,
    },
    /// A plugin's failing calls took too long in all.
    #[error(
        "plugin `{plugin}` spent {seconds:.0} s in calls that failed in this table (limit {limit} s, {traps} rows isolated); the last: {last}. Fix the plugin (or its time limit), or raise settings.max_trap_seconds"
    )]
    FailingTooLong {
        /// The plugin.
        plugin: String,
        /// Seconds spent in failing calls.
        seconds: f64,
        /// The limit.
        limit: u64,
        /// Rows isolated so far.
        traps: u32,
        /// The last failure.
        last: String,
    },
}

/// How long a table may spend in failing plugin calls by default.
const MAX_FAILING: std::time::Duration = std::time::Duration::from_secs(60);

/// What one plugin of a table's chain consumed and produced.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PluginStats {
    /// The plugin's name.
    pub plugin: String,
    /// Calls made (bisection after a trap adds calls).
    pub calls: u64,
    /// Instances started (one, plus one after each trap).
    pub instances: u64,
    /// Fuel (instructions) spent by calls that returned.
    pub fuel: u64,
    /// Highest linear memory of any instance, in bytes.
    pub peak_memory: usize,
    /// Wall-clock time inside the plugin, in seconds.
    pub seconds: f64,
    /// Rows handed to it.
    pub rows_in: u64,
    /// Rows it returned.
    pub rows_out: u64,
    /// Rows it filtered out.
    pub rows_dropped: u64,
    /// Rows it failed on (errors and traps).
    pub rows_failed: u64,
}

/// A transform chain with its live instances.
pub struct Chain {
    ctx: TransformContext,
    steps: Vec<(TransformStep, Option<TransformInstance>)>,
    traps: u32,
    max_traps: u32,
    stats: Vec<PluginStats>,
    /// Stop isolating at the first row that traps (the `stop` policy ends
    /// the table there, so the rest of the batch need not be bisected).
    first_failure_ends: bool,
    /// Time spent in calls that trapped, and how much is allowed: each
    /// may run to the plugin's deadline, and bisection makes many.
    failing: std::time::Duration,
    max_failing: std::time::Duration,
}

impl Chain {
    /// A chain ready to run; instances start on first use.
    pub fn new(ctx: TransformContext, steps: Vec<TransformStep>, max_traps: u32) -> Self {
        let stats = steps
            .iter()
            .map(|s| PluginStats {
                plugin: s.plugin.name().to_string(),
                ..PluginStats::default()
            })
            .collect();
        Self {
            ctx,
            steps: steps.into_iter().map(|s| (s, None)).collect(),
            traps: 0,
            max_traps,
            stats,
            first_failure_ends: false,
            failing: std::time::Duration::ZERO,
            max_failing: MAX_FAILING,
        }
    }

    /// Bounds the time the table may spend in calls that trap.
    pub fn with_trap_time(mut self, limit: std::time::Duration) -> Self {
        self.max_failing = limit;
        self
    }

    /// The chain for a table whose policy is `stop`: once a row is found
    /// to trap, the rest of its batch is left untransformed (and reported
    /// as such if anyone asks), since the table ends at that row.
    pub fn stopping_at_first_trap(mut self) -> Self {
        self.first_failure_ends = true;
        self
    }

    /// Resource use of each step so far.
    pub fn stats(&self) -> &[PluginStats] {
        &self.stats
    }

    /// Runs every step over `rows`; one outcome per input row.
    pub async fn run(
        &mut self,
        rows: Vec<Row>,
        batch_first: u64,
    ) -> Result<Vec<ChainOutcome>, ChainError> {
        let mut outcomes: Vec<ChainOutcome> = rows.into_iter().map(ChainOutcome::Row).collect();
        for step in 0..self.steps.len() {
            let (alive, mut inputs): (Vec<usize>, Vec<Row>) = outcomes
                .iter_mut()
                .enumerate()
                .filter_map(|(i, o)| match o {
                    ChainOutcome::Row(row) => Some((i, std::mem::take(row))),
                    _ => None,
                })
                .unzip();
            if inputs.is_empty() {
                break;
            }
            let results = self.run_step(step, &mut inputs, batch_first).await?;
            let stats = &mut self.stats[step];
            stats.rows_in += inputs.len() as u64;
            for result in &results {
                match result {
                    ChainOutcome::Row(_) => stats.rows_out += 1,
                    ChainOutcome::Dropped => stats.rows_dropped += 1,
                    ChainOutcome::Failed { .. } => stats.rows_failed += 1,
                }
            }
            for (i, result) in alive.into_iter().zip(results) {
                outcomes[i] = result;
            }
        }
        Ok(outcomes)
    }

    /// Runs one step, isolating trapping rows by bisection.
    async fn run_step(
        &mut self,
        step: usize,
        rows: &mut [Row],
        batch_first: u64,
    ) -> Result<Vec<ChainOutcome>, ChainError> {
        let mut results: Vec<Option<ChainOutcome>> = vec![None; rows.len()];
        let mut pending = vec![(0, rows.len())];
        while let Some((start, end)) = pending.pop() {
            let started = std::time::Instant::now();
            let called = self.call(step, &mut rows[start..end]).await?;
            if let Err(failure) = &called {
                self.count_failing(failure, started.elapsed())?;
            }
            match called {
                Ok(batch) => {
                    for (slot, result) in results[start..end].iter_mut().zip(batch) {
                        *slot = Some(self.outcome(step, result));
                    }
                }
                Err(failure) if end - start == 1 => {
                    self.count_trap(&failure)?;
                    tracing::warn!(
                        table = %self.ctx.table,
                        "{failure} on row {} (batch rows {}–{})",
                        batch_first + start as u64,
                        batch_first,
                        batch_first + rows.len() as u64 - 1
                    );
                    results[start] = Some(ChainOutcome::Failed {
                        plugin: failure.plugin.clone(),
                        column: None,
                        message: format!(
                            "{} (isolated from the batch of rows {}–{})",
                            failure.kind,
                            batch_first,
                            batch_first + rows.len() as u64 - 1
                        ),
                    });
                    if self.first_failure_ends {
                        self.leave_untransformed(
                            &mut results,
                            &failure,
                            batch_first + start as u64,
                        );
                        break;
                    }
                }
                Err(failure) => {
                    tracing::debug!(table = %self.ctx.table, "{failure}; bisecting rows {start}..{end} to isolate the cause");
                    let mid = start + (end - start) / 2;
                    pending.push((mid, end));
                    pending.push((start, mid));
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every row gets an outcome"))
            .collect())
    }

    /// Calls a step on a live instance (starting one if needed). The outer
    /// error ends the table; the inner one is a trap to isolate.
    async fn call(
        &mut self,
        step: usize,
        rows: &mut [Row],
    ) -> Result<Result<Vec<RowResult>, PluginFailure>, ChainError> {
        let (spec, slot) = &mut self.steps[step];
        let stats = &mut self.stats[step];
        if slot.is_none() {
            stats.instances += 1;
            match spec
                .plugin
                .instantiate(&self.ctx, &spec.config, &spec.input)
                .await
            {
                Ok(instance) => *slot = Some(instance),
                Err(failure) if failure.kind.is_trap() => return Ok(Err(failure)),
                Err(failure) => return Err(failure.into()),
            }
        }
        let instance = slot.as_mut().expect("instance just started");
        stats.calls += 1;
        let started = std::time::Instant::now();
        let called = instance.transform(rows).await;
        stats.seconds += started.elapsed().as_secs_f64();
        stats.peak_memory = stats.peak_memory.max(instance.peak_memory());
        match called {
            Ok((results, call)) => {
                stats.fuel += call.fuel;
                Ok(Ok(results))
            }
            Err(failure) => {
                *slot = None;
                Ok(Err(failure))
            }
        }
    }

    fn outcome(&self, step: usize, result: RowResult) -> ChainOutcome {
        match result {
            RowResult::Ok(row) => ChainOutcome::Row(row),
            RowResult::Drop => ChainOutcome::Dropped,
            RowResult::Error(RowError { column, message }) => ChainOutcome::Failed {
                plugin: self.steps[step].0.plugin.name().to_string(),
                column,
                message,
            },
        }
    }

    /// Marks the rows not yet transformed as failed because of the trap
    /// on row `at`, which ends the table.
    fn leave_untransformed(
        &self,
        results: &mut [Option<ChainOutcome>],
        failure: &PluginFailure,
        at: u64,
    ) {
        for slot in results.iter_mut().filter(|r| r.is_none()) {
            *slot = Some(ChainOutcome::Failed {
                plugin: failure.plugin.clone(),
                column: None,
                message: format!(
                    "not transformed: the table stops at row {at}, where the plugin trapped"
                ),
            });
        }
    }

    fn count_failing(
        &mut self,
        failure: &PluginFailure,
        took: std::time::Duration,
    ) -> Result<(), ChainError> {
        self.failing += took;
        if self.failing <= self.max_failing {
            return Ok(());
        }
        Err(ChainError::FailingTooLong {
            plugin: failure.plugin.clone(),
            seconds: self.failing.as_secs_f64(),
            limit: self.max_failing.as_secs(),
            traps: self.traps,
            last: failure.kind.to_string(),
        })
    }

    fn count_trap(&mut self, failure: &PluginFailure) -> Result<(), ChainError> {
        self.traps += 1;
        if self.traps > self.max_traps {
            return Err(ChainError::TooManyTraps {
                plugin: failure.plugin.clone(),
                traps: self.traps,
                limit: self.max_traps,
                last: failure.kind.to_string(),
            });
        }
        Ok(())
    }
}

/// Why the table's rows cannot be re-derived, if a transform of its chain
/// may change something beyond its output (a database it writes, requests
/// other than GET and HEAD, files): calling it again would repeat that.
pub fn not_callable(plan: &super::plan::TablePlan) -> Option<String> {
    plan.steps.iter().find_map(|step| {
        let why = step.plugin.side_effects()?;
        Some(format!(
            "transform `{}` {why}, so calling it again would repeat what it did",
            step.plugin.name()
        ))
    })
}
