//! Transform plugins: pre-linked components and the live instances that
//! process batches under limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::{Store, Trap};

use super::bindings;
use super::convert::{
    from_wit_columns, from_wit_result, give_back, lend, to_wit_columns, to_wit_context,
};
use super::limits::{FailureKind, Limits, PluginFailure};
use super::state::{GrantError, PluginState, RandomUse};
use super::{EPOCH_TICK, deadline_ticks};
use crate::capabilities::Grants;
use crate::model::value::{
    Column, Row, RowResult, TransformContext, conforms, describe, type_name,
};

/// A loaded transform plugin, ready to instantiate. Cheap to clone.
#[derive(Clone)]
pub struct TransformPlugin {
    name: Arc<str>,
    pre: bindings::TransformPluginPre<PluginState>,
    limits: Limits,
    grants: Arc<Grants>,
    random: RandomUse,
}

/// Resources one call consumed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallStats {
    /// Fuel spent.
    pub fuel: u64,
    /// Time in the plugin.
    pub elapsed: Duration,
}

/// A live, configured instance. After any failure it must be dropped.
pub struct TransformInstance {
    name: Arc<str>,
    store: Store<PluginState>,
    bindings: bindings::TransformPlugin,
    limits: Limits,
    output: Vec<Column>,
}

impl TransformPlugin {
    pub(super) fn new(
        name: &str,
        pre: bindings::TransformPluginPre<PluginState>,
        limits: Limits,
        grants: Grants,
    ) -> Self {
        Self {
            name: name.into(),
            pre,
            limits,
            grants: Arc::new(grants),
            random: RandomUse::default(),
        }
    }

    /// What the plugin's grants let it change beyond its output, in words
    /// (see [`Grants::side_effects`]).
    pub fn side_effects(&self) -> Option<String> {
        self.grants.side_effects()
    }

    /// Whether any instance of this plugin drew random bytes.
    pub fn drew_random(&self) -> bool {
        self.random.drawn()
    }

    /// The plugin's name in the migration file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Starts a fresh instance and configures it for `input` rows.
    pub async fn instantiate(
        &self,
        ctx: &TransformContext,
        config_json: &str,
        input: &[Column],
    ) -> Result<TransformInstance, PluginFailure> {
        let scope = format!("{}/{}", ctx.migration, ctx.table);
        let mut store = new_store(
            self.pre.engine(),
            &self.name,
            &scope,
            self.limits,
            &self.grants,
            &self.random,
        )
        .map_err(|e| {
            self.failure(FailureKind::Config {
                message: e.to_string(),
            })
        })?;
        let instantiated = with_timeout(self.limits, self.pre.instantiate_async(&mut store)).await;
        let bindings = match instantiated {
            Ok(bindings) => bindings,
            Err(err) => return Err(self.failure(classify(&store, self.limits, err))),
        };
        arm(&mut store, self.limits);
        let guest = bindings.credvault_migrate_transform();
        let configured = with_timeout(
            self.limits,
            guest.call_configure(
                &mut store,
                &to_wit_context(ctx),
                config_json,
                &to_wit_columns(input),
            ),
        )
        .await;
        let output = match configured {
            Ok(Ok(output)) => from_wit_columns(output),
            Ok(Err(message)) => return Err(self.failure(FailureKind::Config { message })),
            Err(err) => return Err(self.failure(classify(&store, self.limits, err))),
        };
        Ok(TransformInstance {
            name: self.name.clone(),
            store,
            bindings,
            limits: self.limits,
            output,
        })
    }

    fn failure(&self, kind: FailureKind) -> PluginFailure {
        PluginFailure {
            plugin: self.name.to_string(),
            kind,
        }
    }
}

impl TransformInstance {
    /// The schema of the rows this instance emits.
    pub fn output_schema(&self) -> &[Column] {
        &self.output
    }

    /// Peak linear memory of this instance so far, in bytes.
    pub fn peak_memory(&self) -> usize {
        self.store.data().memory.peak
    }

    /// Transforms a batch: one result per row, checked against the contract.
    pub async fn transform(
        &mut self,
        rows: &mut [Row],
    ) -> Result<(Vec<RowResult>, CallStats), PluginFailure> {
        arm(&mut self.store, self.limits);
        let started = Instant::now();
        let guest = self.bindings.credvault_migrate_transform();
        let lent = lend(rows);
        let called = with_timeout(self.limits, guest.call_transform(&mut self.store, &lent)).await;
        give_back(rows, lent);
        let results: Vec<RowResult> = called
            .map_err(|err| {
                let kind = classify(&self.store, self.limits, err);
                self.failure(kind)
            })?
            .into_iter()
            .map(from_wit_result)
            .collect();
        let stats = CallStats {
            fuel: self.limits.fuel - self.store.get_fuel().unwrap_or(0),
            elapsed: started.elapsed(),
        };
        self.check_contract(rows.len(), &results).map_err(|e| {
            self.failure(FailureKind::Contract {
                message: e.to_string(),
            })
        })?;
        Ok((results, stats))
    }

    fn check_contract(&self, sent: usize, results: &[RowResult]) -> Result<(), ContractError> {
        if results.len() != sent {
            return Err(ContractError::Results {
                got: results.len(),
                sent,
            });
        }
        for (i, result) in results.iter().enumerate() {
            let RowResult::Ok(row) = result else { continue };
            if row.len() != self.output.len() {
                return Err(ContractError::Width {
                    row: i,
                    values: row.len(),
                    columns: self.output.len(),
                });
            }
            for (value, column) in row.iter().zip(&self.output) {
                if !conforms(value, column) {
                    return Err(ContractError::Type {
                        row: i,
                        column: column.name.clone(),
                        declared: type_name(column.type_),
                        got: describe(value),
                    });
                }
            }
        }
        Ok(())
    }

    fn failure(&self, kind: FailureKind) -> PluginFailure {
        PluginFailure {
            plugin: self.name.to_string(),
            kind,
        }
    }
}

/// How a transform's answer broke its contract with the host.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum ContractError {
    /// Not one result per row sent.
    #[error("returned {got} results for {sent} rows")]
    Results { got: usize, sent: usize },
    /// A row of another width than the output schema.
    #[error("row {row} has {values} values but the declared output schema has {columns} columns")]
    Width {
        row: usize,
        values: usize,
        columns: usize,
    },
    /// A value of another type than its column's.
    #[error("row {row}: column `{column}` is declared {declared} but got {got}")]
    Type {
        row: usize,
        column: String,
        declared: &'static str,
        got: String,
    },
}

/// A store for one instance, with its grants, memory cap and deadline.
pub(super) fn new_store(
    engine: &wasmtime::Engine,
    plugin: &str,
    scope: &str,
    limits: Limits,
    grants: &Grants,
    random: &RandomUse,
) -> Result<Store<PluginState>, GrantError> {
    let state = PluginState::new(plugin, scope, limits.memory_bytes(), grants, random)?;
    let mut store = Store::new(engine, state);
    store.limiter(|state| &mut state.memory);
    store.epoch_deadline_trap();
    arm(&mut store, limits);
    Ok(store)
}

/// Refills fuel and resets the deadline before a call.
pub(super) fn arm(store: &mut Store<PluginState>, limits: Limits) {
    store
        .set_fuel(limits.fuel)
        .expect("fuel is enabled on every engine");
    store.set_epoch_deadline(deadline_ticks(limits.timeout_ms));
}

/// The epoch deadline stops busy guests; this timeout also stops a guest
/// blocked in a host call (a sleep, say), where epochs are not checked.
pub(super) async fn with_timeout<T>(
    limits: Limits,
    call: impl Future<Output = wasmtime::Result<T>>,
) -> wasmtime::Result<T> {
    let grace = EPOCH_TICK * 2;
    match tokio::time::timeout(Duration::from_millis(limits.timeout_ms) + grace, call).await {
        Ok(result) => result,
        Err(_) => Err(wasmtime::Error::new(Trap::Interrupt)),
    }
}

/// Tells the true cause of a failed call.
pub(super) fn classify(
    store: &Store<PluginState>,
    limits: Limits,
    err: wasmtime::Error,
) -> FailureKind {
    let state = store.data();
    if let Some(requested) = state.memory.refused {
        return FailureKind::MemoryCap {
            limit_mb: limits.memory_mb,
            requested,
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => FailureKind::OutOfFuel { limit: limits.fuel },
        Some(Trap::Interrupt) => FailureKind::Deadline {
            timeout_ms: limits.timeout_ms,
        },
        Some(Trap::StackOverflow) => FailureKind::StackOverflow,
        Some(Trap::MemoryOutOfBounds) => FailureKind::Trap {
            message: "out of bounds memory access (a wild pointer, or deep recursion that overflowed the shadow stack in linear memory)".into(),
        },
        Some(trap) => match panic_message(&state.stderr_text()) {
            Some(message) => FailureKind::Panic { message },
            None => FailureKind::Trap {
                message: with_stderr(trap.to_string(), &state.stderr_text()),
            },
        },
        None => FailureKind::Trap {
            message: format!("{err:#}"),
        },
    }
}

/// Pulls "message (at file:line:col)" out of a Rust panic printed to stderr.
fn panic_message(stderr: &str) -> Option<String> {
    let start = stderr.rfind("panicked at ")?;
    let rest = &stderr[start + "panicked at ".len()..];
    let (location, message) = rest.split_once(":\n").unwrap_or((rest, ""));
    let message: Vec<&str> = message
        .lines()
        .take_while(|line| !line.starts_with("note: "))
        .collect();
    Some(format!("{} (at {location})", message.join(" ").trim()))
}

fn with_stderr(message: String, stderr: &str) -> String {
    let stderr = stderr.trim();
    if stderr.is_empty() {
        return message;
    }
    // The end of stderr is where the cause is; keep the last 500 characters.
    let start = stderr.char_indices().rev().nth(499).map_or(0, |(i, _)| i);
    format!("{message}; plugin stderr: {}", &stderr[start..])
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_message_is_extracted() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:10:5:\nboom here\nnote: run with `RUST_BACKTRACE=1`\n";
        assert_eq!(
            panic_message(stderr).as_deref(),
            Some("boom here (at src/lib.rs:10:5)")
        );
        assert_eq!(panic_message("memory allocation failed"), None);
    }
}
