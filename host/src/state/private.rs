//! Files and folders only their owner may open. The state store keeps the
//! full source values of flagged rows, and so do its WAL, the exports and
//! the validation reports: none of them may be readable by other users of
//! the machine, whatever the umask (the usual 022 makes files 0644).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Owner read and write only.
pub const FILE_MODE: u32 = 0o600;
/// Owner only.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and its missing parents, each owner-only. A folder that
/// is already there is left as it is: it may be the user's own (`.`).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)
}

/// A folder that is credvault's own (the plugin cache, installed plugins,
/// the lock files): created owner-only, and made so if an older version
/// made it open to others.
pub fn own_dir(dir: &Path) -> io::Result<()> {
    create_dir_all(dir)?;
    std::fs::set_permissions(dir, Permissions::from_mode(DIR_MODE))
}

/// Creates (or empties) `path` for writing, owner-only; a regular file
/// that was there more open is made owner-only too. Anything else (a
/// device such as `/dev/stdout`, a pipe) keeps its mode.
pub fn create_file(path: &Path) -> io::Result<File> {
    let file = options().truncate(true).open(path)?;
    if file.metadata()?.is_file() {
        file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    }
    Ok(file)
}

/// Creates `path` empty and owner-only if it is missing, else leaves it,
/// so that SQLite, which gives its WAL and shared-memory files the mode of
/// the database file, opens an owner-only file.
pub fn touch(path: &Path) -> io::Result<()> {
    options().truncate(false).open(path).map(drop)
}

/// Makes an existing file owner-only; a missing one is fine.
pub fn restrict(path: &Path) -> io::Result<()> {
    match std::fs::set_permissions(path, Permissions::from_mode(FILE_MODE)) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true).create(true).mode(FILE_MODE);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn files_and_folders_are_owner_only_and_open_ones_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("a/b");
        own_dir(&own).unwrap();
        assert_eq!(mode(&own), DIR_MODE);
        assert_eq!(mode(&dir.path().join("a")), DIR_MODE);
        let file = own.join("export.jsonl");
        std::fs::write(&file, "old").unwrap();
        std::fs::set_permissions(&file, Permissions::from_mode(0o644)).unwrap();
        create_file(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(std::fs::read(&file).unwrap(), b"");
        let db = own.join("state.db");
        touch(&db).unwrap();
        assert_eq!(mode(&db), FILE_MODE);
        restrict(&own.join("state.db-wal")).unwrap();
    }
}
