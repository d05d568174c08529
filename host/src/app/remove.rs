//! `credvault remove`: a migration's CDC slots, its checkpoints in the
//! destination and its records in the state store go; the destination's
//! tables, its restore points and the audit trail stay.

use serde::Serialize;

use crate::config::Migration;
use crate::drivers::{ConnectorError, open_sink};
use crate::state::{Forgotten, Hold, StateError, StateStore};

/// What a removal dropped.
#[derive(Debug, Clone, Serialize)]
pub struct Removed {
    /// The CDC replication slots dropped on the sources.
    pub slots: Vec<String>,
    /// The names whose checkpoints were deleted from the destination.
    pub checkpoints: Vec<String>,
    /// What the state store forgot.
    pub state: Forgotten,
}

/// Why a removal stopped part-way; running it again finishes it.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    /// A source or the destination failed.
    #[error("{0}; nothing after it was removed: fix that and run `credvault remove` again")]
    Connector(#[from] ConnectorError),
    /// The state store failed.
    #[error(transparent)]
    State(#[from] StateError),
}

/// Removes the migration `hold` holds: drops its CDC slots (the sources
/// stop keeping WAL for it), its checkpoints in the destination and its
/// records in the state store, so its next sync or run starts with a full
/// copy; records a `removed` audit event. Each step is safe to repeat.
pub async fn remove(
    m: &Migration,
    state: &StateStore,
    hold: &Hold,
) -> Result<Removed, RemoveError> {
    debug_assert_eq!(hold.migration(), m.name);
    let slots = crate::jobs::sync::drop_slots(m).await?;
    let checkpoints = owners(m);
    let mut sink = open_sink(m).await?;
    for owner in &checkpoints {
        sink.reset(owner).await?;
    }
    let forgotten = state.forget(hold).await?;
    let removed = Removed {
        slots,
        checkpoints,
        state: forgotten,
    };
    let detail = serde_json::to_value(&removed).expect("serializable");
    state.event(&m.name, None, "removed", &detail).await?;
    Ok(removed)
}

/// The names a migration's checkpoints are kept under in the destination:
/// its own, its syncs' scratch tables', and its parts'.
fn owners(m: &Migration) -> Vec<String> {
    let mut names = vec![m.name.clone()];
    if m.is_multi_source() {
        names.extend(m.parts().into_iter().map(|p| p.migration.name));
    }
    let syncs: Vec<String> = names.iter().map(|n| format!("{n}#sync")).collect();
    names.extend(syncs);
    names
}
