//! One writer per migration, across processes. A run, sync, retry or
//! rollback holds its migration for as long as it writes, so a
//! `credvault run` in a shell and a scheduled sync in `serve` cannot write
//! the same tables at once, and a rollback cannot land in the middle of a
//! run. The hold is an OS file lock beside the state store: the kernel
//! drops it when its process ends, however it ends, so no stale hold is
//! ever left to clear by hand.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::StateStore;

/// A migration held by this process; dropping it lets go.
#[derive(Debug)]
pub struct Hold {
    migration: String,
    _file: File,
}

impl Hold {
    /// The migration held.
    pub fn migration(&self) -> &str {
        &self.migration
    }
}

/// Why a migration could not be held.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// Another action holds it.
    #[error(
        "migration `{migration}` is busy: {holder} is writing it; wait for that to finish (or stop it), then try again"
    )]
    Busy {
        /// The migration.
        migration: String,
        /// Who holds it, as far as its lock file tells.
        holder: String,
    },
    /// The lock file could not be used.
    #[error("cannot lock migration `{migration}` with {}: {source}", path.display())]
    Io {
        /// The migration.
        migration: String,
        /// The lock file.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// What a holder writes into its lock file, for the message others get.
#[derive(Serialize, Deserialize)]
struct Holder {
    action: String,
    pid: u32,
    user: String,
    since: String,
}

impl StateStore {
    /// Holds `migration` for `action` (`credvault run`, say), or says who
    /// holds it. Never waits.
    pub fn hold(&self, migration: &str, action: &str) -> Result<Hold, HoldError> {
        let path = self.lock_path(migration);
        let io = |source| HoldError::Io {
            migration: migration.to_string(),
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            super::private::own_dir(dir).map_err(io)?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(super::private::FILE_MODE)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(HoldError::Busy {
                    migration: migration.to_string(),
                    holder: describe(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let holder = Holder {
            action: action.to_string(),
            pid: std::process::id(),
            user: super::actor(),
            since: chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S UTC")
                .to_string(),
        };
        let text = serde_json::to_string(&holder).expect("serializable");
        file.set_len(0)
            .and_then(|()| file.write_all(text.as_bytes()))
            .map_err(io)?;
        Ok(Hold {
            migration: migration.to_string(),
            _file: file,
        })
    }

    /// Whether the last process that held `migration` is still alive. A
    /// run left `running` by one that is not was cut off (killed, crashed,
    /// the machine went down) and resumes on the next run. Reads the lock
    /// file only: taking the lock to look, however briefly, could turn a
    /// writer starting at that moment away.
    pub fn holder_alive(&self, migration: &str) -> bool {
        std::fs::read_to_string(self.lock_path(migration))
            .ok()
            .and_then(|text| serde_json::from_str::<Holder>(&text).ok())
            .is_some_and(|h| std::path::Path::new(&format!("/proc/{}", h.pid)).exists())
    }

    /// `state.db` keeps its locks in `state.db.locks/`, one file per
    /// migration, named by the name's hash since names may hold any
    /// character.
    fn lock_path(&self, migration: &str) -> PathBuf {
        let mut dir = self.path.clone().into_os_string();
        dir.push(".locks");
        let hash = hex::encode(&Sha256::digest(migration.as_bytes())[..8]);
        PathBuf::from(dir).join(format!("{hash}.lock"))
    }
}

/// Who holds a lock file, from what it says; a holder that has not
/// written it yet is "another process".
fn describe(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.rewind().and_then(|()| file.read_to_string(&mut text));
    match serde_json::from_str::<Holder>(&text) {
        Ok(h) => format!(
            "`{}` (pid {}, user {}, since {})",
            h.action, h.pid, h.user, h.since
        ),
        Err(_) => "another process".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::HoldError;
    use crate::state::StateStore;

    #[tokio::test]
    async fn a_held_migration_names_its_holder_until_let_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateStore::open(&dir.path().join("state.db"))
            .await
            .unwrap();
        let hold = state.hold("people", "credvault run").unwrap();
        assert_eq!(hold.migration(), "people");
        let err = state.hold("people", "credvault sync").unwrap_err();
        let HoldError::Busy { holder, .. } = &err else {
            panic!("{err}")
        };
        let pid = std::process::id();
        assert!(holder.starts_with(&format!("`credvault run` (pid {pid}, user ")));
        assert!(
            err.to_string().contains("migration `people` is busy"),
            "{err}"
        );
        let other = state.hold("people/2 ü", "credvault run").unwrap();
        assert!(state.holder_alive("people"));
        assert!(!state.holder_alive("never held"));
        drop(hold);
        drop(state.hold("people", "credvault sync").unwrap());
        drop(other);
    }
}
