//! The migration files `serve` keeps: each is read again whenever it is
//! used (a due sync, a dashboard page or click), so an edit (a value map
//! for a retry, a new schedule) applies without a restart.

use std::path::PathBuf;
use std::sync::Mutex;

use super::{LoadError, Migration};

/// Why a served migration's file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// The file does not load (in the environment served).
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The file now names another migration.
    #[error(
        "{} now names migration `{now}`, not `{name}`: restart serve to serve it under its new name",
        path.display()
    )]
    Renamed {
        /// The file.
        path: PathBuf,
        /// The name it gives now.
        now: String,
        /// The name it is served under.
        name: String,
    },
}

/// The migration files of one `serve`.
pub struct Catalog {
    entries: Vec<Entry>,
}

struct Entry {
    /// The migration's name, which a file may not change under `serve`.
    name: String,
    path: PathBuf,
    env: Option<String>,
    /// As last read successfully.
    last: Mutex<Migration>,
}

impl Catalog {
    /// Reads every file once (in the environment `env`, if named); the
    /// first that does not read is the error.
    pub fn load(files: &[PathBuf], env: Option<&str>) -> Result<Self, LoadError> {
        let entries = files
            .iter()
            .map(|path| {
                let m = Migration::load_in(path, env)?;
                Ok(Entry {
                    name: m.name.clone(),
                    last: Mutex::new(m),
                    path: path.clone(),
                    env: env.map(str::to_string),
                })
            })
            .collect::<Result<_, LoadError>>()?;
        Ok(Self { entries })
    }

    /// Every migration as last read, in the order of the files.
    pub fn migrations(&self) -> Vec<Migration> {
        self.entries.iter().map(Entry::last).collect()
    }

    /// A migration's file read again now. A file that no longer reads, or
    /// that now names another migration, is an error that says so.
    pub fn current(&self, name: &str) -> Option<Result<Migration, CatalogError>> {
        let entry = self.entries.iter().find(|e| e.name == name)?;
        let read = match Migration::load_in(&entry.path, entry.env.as_deref()) {
            Ok(m) if m.name == name => Ok(m),
            Ok(m) => Err(CatalogError::Renamed {
                path: entry.path.clone(),
                now: m.name,
                name: name.to_string(),
            }),
            Err(e) => Err(e.into()),
        };
        if let Ok(m) = &read {
            *entry.last.lock().expect("catalog lock") = m.clone();
        }
        Some(read)
    }
}

impl Entry {
    fn last(&self) -> Migration {
        self.last.lock().expect("catalog lock").clone()
    }
}
