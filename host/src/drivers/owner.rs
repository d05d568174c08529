//! Which destination tables a migration made, and which life of a table a
//! checkpoint belongs to.
//!
//! A migration may drop, swap or rebuild only a table it created; any other
//! table is the user's, and syncs merge into it by key. The register of
//! created tables lives in the destination beside the checkpoints (so it
//! travels with the data), one row per table: the migration that created
//! it, and that table's *life*: a fresh token plus the database's own
//! identity for the table (PostgreSQL's oid, say). A table dropped and made
//! again, by hand or by another migration, has another life, so neither a
//! stale claim nor an interrupted run's checkpoint can be applied to it.

use super::{Checkpoint, ConnectorError, Sink};

/// The migration name the register is kept under: no migration has an
/// empty name (the file's validation refuses it).
const REGISTER: &str = "";

/// The suffix of a table's entry in the register.
const CREATED: &str = "#created";

/// The suffix of the checkpoint that records which life of its table a
/// migration's load started on.
const LIFE: &str = "#life";

/// Whether `sink` keeps a register (only SQL destinations do: files and
/// plugin sinks are written whole by every run).
fn keeps_register(sink: &dyn Sink) -> bool {
    sink.sql().is_some()
}

/// The database's identity for `table` ([`super::SqlDestination::table_identity`]);
/// `None` from a destination without SQL, which cannot tell.
async fn identity(sink: &dyn Sink, table: &str) -> Result<Option<String>, ConnectorError> {
    match sink.sql() {
        Some(sql) => sql.table_identity(table).await,
        None => Ok(None),
    }
}

/// The register's entry for `table`: (owner, life), if one was made.
async fn entry(sink: &dyn Sink, table: &str) -> Result<Option<(String, String)>, ConnectorError> {
    let saved = sink
        .committed(REGISTER, &format!("{table}{CREATED}"))
        .await?;
    Ok(saved.and_then(|c| Some((c.position?, c.cursor?))))
}

/// The life of `table` as it stands: the register's token, when the
/// register still describes this table, and the database's identity.
/// `None` when the table is not there or the destination cannot tell.
async fn life(sink: &dyn Sink, table: &str) -> Result<Option<String>, ConnectorError> {
    let Some(identity) = identity(sink, table).await? else {
        return Ok(None);
    };
    let registered = entry(sink, table)
        .await?
        .map(|(_, life)| life)
        .filter(|life| identity_of(life) == identity);
    Ok(Some(registered.unwrap_or(identity)))
}

/// The database identity a registered life was taken with.
fn identity_of(life: &str) -> &str {
    life.split_once(' ').map_or(life, |(_, identity)| identity)
}

/// Records that `migration` has just created `table` (a new life of it).
pub async fn claim(
    sink: &mut dyn Sink,
    migration: &str,
    table: &str,
) -> Result<(), ConnectorError> {
    let Some(sql) = sink.sql_mut() else {
        return Ok(());
    };
    let Some(identity) = sql.table_identity(table).await? else {
        return Ok(());
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let token = format!("{nanos:x}.{:x}", std::process::id());
    let entry = Checkpoint {
        position: Some(migration.to_string()),
        cursor: Some(format!("{token} {identity}")),
        ..Checkpoint::default()
    };
    sql.run_script(REGISTER, &format!("{table}{CREATED}"), &[], &entry)
        .await?;
    Ok(())
}

/// Whether `table` is one `migration` created and nobody has replaced
/// since. A destination without a register (files) is written whole by
/// every run, so its tables count as the migration's.
pub async fn owns(sink: &dyn Sink, migration: &str, table: &str) -> Result<bool, ConnectorError> {
    if !keeps_register(sink) {
        return Ok(true);
    }
    Ok(creator(sink, table).await?.as_deref() == Some(migration))
}

/// Who created `table`, if the register says and still describes it.
pub async fn creator(sink: &dyn Sink, table: &str) -> Result<Option<String>, ConnectorError> {
    if !keeps_register(sink) {
        return Ok(None);
    }
    let (Some((owner, life)), Some(identity)) =
        (entry(sink, table).await?, identity(sink, table).await?)
    else {
        return Ok(None);
    };
    Ok((identity_of(&life) == identity).then_some(owner))
}

/// Records, at the start of a load, which life of `table` the migration's
/// checkpoints belong to, and how many rows it held before (`rows_before`).
pub async fn mark_start(
    sink: &mut dyn Sink,
    migration: &str,
    table: &str,
    rows_before: u64,
) -> Result<(), ConnectorError> {
    if !keeps_register(sink) {
        return Ok(());
    }
    let Some(life) = life(sink, table).await? else {
        return Ok(());
    };
    let mark = Checkpoint {
        rows: rows_before,
        cursor: Some(life),
        ..Checkpoint::default()
    };
    let Some(sql) = sink.sql_mut() else {
        return Ok(());
    };
    sql.run_script(migration, &format!("{table}{LIFE}"), &[], &mark)
        .await?;
    Ok(())
}

/// How many rows `table` held when `migration`'s last fresh load of it
/// started, if recorded (and the table is still that life of it).
pub async fn rows_before(
    sink: &dyn Sink,
    migration: &str,
    table: &str,
) -> Result<Option<u64>, ConnectorError> {
    let Some(mark) = sink.committed(migration, &format!("{table}{LIFE}")).await? else {
        return Ok(None);
    };
    let now = life(sink, table).await?;
    Ok((now.is_some() && now == mark.cursor).then_some(mark.rows))
}

/// Refuses to resume a load into a table that is no longer the one it
/// started on (dropped and made again, by hand or by another migration).
pub async fn check_resume(
    sink: &dyn Sink,
    migration: &str,
    table: &str,
) -> Result<(), ConnectorError> {
    if !keeps_register(sink) {
        return Ok(());
    }
    let started = sink
        .committed(migration, &format!("{table}{LIFE}"))
        .await?
        .and_then(|c| c.cursor);
    let Some(started) = started else {
        return Ok(());
    };
    let now = life(sink, table).await?;
    if now.as_deref() == Some(started.as_str()) {
        return Ok(());
    }
    let what = match now {
        None => "is gone".to_string(),
        Some(_) => match creator(sink, table).await? {
            Some(other) if other != migration => {
                format!("was made again by migration `{other}`")
            }
            _ => "was dropped and made again".to_string(),
        },
    };
    Err(ConnectorError::new(
        sink.describe(),
        format!(
            "table `{table}` {what} since the interrupted run of `{migration}` started writing it, so that run's checkpoint no longer describes its rows; nothing was written. Start over with `credvault run FILE --restart`"
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::identity_of;

    #[test]
    fn a_registered_life_keeps_the_identity_it_was_taken_with() {
        assert_eq!(identity_of("18c2f.3a 16384"), "16384");
        assert_eq!(identity_of("16384"), "16384");
        assert_eq!(
            identity_of("18c2f.3a 2 CREATE TABLE \"t\" (a)"),
            "2 CREATE TABLE \"t\" (a)"
        );
    }
}
