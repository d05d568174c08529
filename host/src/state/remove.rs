//! Forgetting a removed migration. Its runs, state-store checkpoints,
//! syncs, validations and pause go; its flagged rows are closed (kept, so
//! `flagged list --all` and the export still have them); its audit trail
//! stays whole, and gains the removal itself.

use serde::Serialize;

use super::{Hold, StateError, StateStore, now};

/// What [`StateStore::forget`] dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Forgotten {
    /// Runs.
    pub runs: u64,
    /// Syncs.
    pub syncs: u64,
    /// Checkpoints kept in the state store.
    pub checkpoints: u64,
    /// Validation reports.
    pub validations: u64,
    /// Whether it was paused.
    pub paused: bool,
    /// Open flagged rows closed as `removed`.
    pub flagged_closed: u64,
}

/// The tables whose rows of a removed migration are deleted.
const DELETED: [&str; 5] = ["runs", "syncs", "checkpoints", "validations", "paused"];

impl StateStore {
    /// Forgets the migration `hold` holds (and its parts, `name#…`), in one
    /// transaction: the next run or sync of that name starts from nothing.
    /// The audit trail is kept.
    pub async fn forget(&self, hold: &Hold) -> Result<Forgotten, StateError> {
        let migration = hold.migration();
        let mine = super::OF_MIGRATION;
        let mut tx = self.pool.begin().await.map_err(|e| self.error(e))?;
        let mut counts = [0u64; 5];
        for (table, count) in DELETED.iter().zip(&mut counts) {
            *count = sqlx::query(&format!("DELETE FROM {table} WHERE {mine}"))
                .bind(migration)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.error(e))?
                .rows_affected();
        }
        let closed = sqlx::query(&format!(
            "UPDATE flagged_rows SET resolved_at = ?2, resolution = 'removed'
             WHERE resolved_at IS NULL AND {mine}"
        ))
        .bind(migration)
        .bind(now())
        .execute(&mut *tx)
        .await
        .map_err(|e| self.error(e))?
        .rows_affected();
        tx.commit().await.map_err(|e| self.error(e))?;
        let [runs, syncs, checkpoints, validations, paused] = counts;
        Ok(Forgotten {
            runs,
            syncs,
            checkpoints,
            validations,
            paused: paused > 0,
            flagged_closed: closed,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::state::StateStore;

    #[tokio::test]
    async fn forgetting_a_migration_keeps_its_audit_trail_and_other_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(&dir.path().join("state.db"))
            .await
            .unwrap();
        for m in ["people", "people#crm", "people2"] {
            state.start_sync(m, &serde_json::json!({})).await.unwrap();
            state.pause(m).await.unwrap();
            state
                .event(m, None, "paused", &serde_json::json!({}))
                .await
                .unwrap();
        }
        let hold = state.hold("people", "credvault remove").unwrap();
        let gone = state.forget(&hold).await.unwrap();
        assert_eq!((gone.syncs, gone.paused), (2, true));
        assert!(state.last_syncs(Some("people")).await.unwrap().is_empty());
        assert_eq!(state.last_syncs(Some("people2")).await.unwrap().len(), 1);
        assert!(state.paused("people2").await.unwrap().is_some());
        assert_eq!(state.events(Some("people"), 50).await.unwrap().len(), 4);
        assert_eq!(state.forget(&hold).await.unwrap().syncs, 0);
    }
}
