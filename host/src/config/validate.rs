//! Checks of a parsed migration file that serde cannot express. Each problem
//! names the key it is about.

use std::collections::HashSet;
use std::path::PathBuf;

use super::endpoint::{CHANGE_LOGS, DATABASES};
use super::{Migration, SyncMode, Unmapped};
use crate::model::value::parse_type_name;

/// A migration file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read migration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or has an unknown or mistyped key.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The parser's message, with line, column and the offending key.
        message: String,
    },
    /// The file parses but some settings do not make sense.
    #[error("{path}: {}", problems.join("\n  "))]
    Invalid {
        /// The file.
        path: PathBuf,
        /// One line per problem, each naming its key.
        problems: Vec<String>,
    },
}

/// The longest retention a restore point may have: a date ten years on
/// is far enough for any rollback.
const MAX_RESTORE_POINT_DAYS: u32 = 3650;

/// The most tries after a lost connection: with waits capped at 30 s,
/// 20 tries wait about 8 minutes.
const MAX_RETRIES: u32 = 20;

pub(super) fn check(m: &Migration) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if m.name.trim().is_empty() {
        problems.push("name: must not be empty".to_string());
    }
    if m.settings.batch_size == 0 || m.settings.batch_size > 1_000_000 {
        problems.push(format!(
            "settings.batch_size: must be between 1 and 1000000, got {}",
            m.settings.batch_size
        ));
    }
    if !(1..=64).contains(&m.settings.parallel_tables) {
        problems.push(format!(
            "settings.parallel_tables: must be between 1 and 64, got {}",
            m.settings.parallel_tables
        ));
    }
    if !(1..=86_400).contains(&m.settings.stall_seconds) {
        problems.push(format!(
            "settings.stall_seconds: must be between 1 and 86400 (a day), got {}; a server that stops answering would otherwise hold a run for ever",
            m.settings.stall_seconds
        ));
    }
    if m.settings.retries > MAX_RETRIES {
        problems.push(format!(
            "settings.retries: must be between 0 and {MAX_RETRIES}, got {}; a server away longer is better resumed with a new `credvault run`",
            m.settings.retries
        ));
    }
    if m.settings.restore_point_days > MAX_RESTORE_POINT_DAYS {
        problems.push(format!(
            "settings.restore_point_days: must be between 0 and {MAX_RESTORE_POINT_DAYS} (ten years), got {}; to keep no restore points set restore_points = false",
            m.settings.restore_point_days
        ));
    }
    if !m.destination.readable() && m.settings.validate {
        problems.push(
            "settings.validate: a plugin destination is write-only, so it cannot be read back and validated; set validate = false (and check the destination with a source plugin that reads it)".to_string(),
        );
    }
    if m.tables.is_empty() && m.select.include.is_empty() {
        problems.push(
            "tables: list tables in [[tables]] entries, or pick them with [select] include = [\"*\"]".to_string(),
        );
    }
    for (key, patterns) in [
        ("include", &m.select.include),
        ("exclude", &m.select.exclude),
    ] {
        for p in patterns {
            if let Err(e) = glob::Pattern::new(p) {
                problems.push(format!("select.{key}: bad pattern {p:?}: {e}"));
            }
        }
    }
    for name in m.connections.keys() {
        if !is_plain_name(name) {
            problems.push(format!(
                "connections.{name}: a connection name is letters, digits, `_` and `-`"
            ));
        }
    }
    for (name, env) in &m.environments {
        if env.source.is_none() && env.destination.is_none() && env.connections.is_empty() {
            problems.push(format!(
                "environments.{name}: set a source, a destination or connections for this environment"
            ));
        }
        for connection in env.connections.keys() {
            if !m.connections.contains_key(connection) {
                problems.push(format!(
                    "environments.{name}.connections.{connection}: no [connections.{connection}] to replace"
                ));
            }
        }
    }
    for (key, endpoint) in endpoints(m) {
        problems.extend(endpoint.problems(&key));
    }
    check_sync(m, &mut problems);
    check_sources(m, &mut problems);
    super::consolidate::check(m, &mut problems);
    check_db_grants(m, &mut problems);
    check_limits(m, &mut problems);
    let mut destinations = HashSet::new();
    for (i, table) in m.tables.iter().enumerate() {
        let at = format!("tables[{i}] ({})", table.source);
        if table.on_orphan == super::OnOrphan::Flag && m.policy(table) == super::ErrorPolicy::Stop {
            problems.push(format!(
                "{at}.on_orphan: \"flag\" keeps the table loading past a row whose parent is missing, and on_error = \"stop\" stops there; set on_error = \"flag\" (or \"skip\") for this table"
            ));
        }
        if !destinations.insert(table.destination())
            && !m.consolidate.contains_key(table.destination())
        {
            problems.push(format!(
                "{at}.destination: `{}` is the destination of two tables; to merge their rows into one table, add [consolidate.{}] with a key and a rule",
                table.destination(),
                table.destination()
            ));
        }
        check_columns(&at, table, &mut problems);
        for (j, t) in table.transforms.iter().enumerate() {
            if t.plugin.trim().is_empty() {
                problems.push(format!(
                    "{at}.transforms[{j}].plugin: must name a built-in plugin or a .wasm file"
                ));
            }
            if !t.config.is_table() {
                problems.push(format!("{at}.transforms[{j}].config: must be a table"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Every table's endpoint exists: `[source]`, or the connection it names.
fn check_sources(m: &Migration, problems: &mut Vec<String>) {
    if m.connections.contains_key(super::parts::MAIN_SOURCE) {
        problems.push(format!(
            "connections.{0}: `{0}` names [source] in tables and priorities; call this connection something else",
            super::parts::MAIN_SOURCE
        ));
    }
    if m.source.is_none() && !m.select.include.is_empty() {
        problems.push(
            "select: [select] picks tables of [source], and there is none; add a [source] or list the tables in [[tables]] with their connection".into(),
        );
    }
    let known = || m.connections.keys().cloned().collect::<Vec<_>>().join(", ");
    for (i, table) in m.tables.iter().enumerate() {
        let at = format!("tables[{i}] ({})", table.source);
        match &table.connection {
            None if m.source.is_none() => problems.push(format!(
                "{at}: there is no [source] to read it from; set connection = \"<name>\" to one of [connections] ({}) or add a [source]",
                known()
            )),
            Some(c) if !m.connections.contains_key(c) => problems.push(format!(
                "{at}.connection: no [connections.{c}] is defined{}",
                match m.connections.is_empty() {
                    true => "; add one".to_string(),
                    false => format!(" (known: {})", known()),
                }
            )),
            _ => {}
        }
    }
}

/// Every endpoint of the file with the key it is written under: the
/// destination, the source, the connections and each environment's.
fn endpoints(m: &Migration) -> Vec<(String, &super::Endpoint)> {
    let mut all = vec![("destination".to_string(), &m.destination)];
    all.extend(m.source.iter().map(|e| ("source".to_string(), e)));
    all.extend(
        m.connections
            .iter()
            .map(|(n, e)| (format!("connections.{n}"), e)),
    );
    for (name, env) in &m.environments {
        let at = |key: &str| format!("environments.{name}.{key}");
        all.extend(env.source.iter().map(|e| (at("source"), e)));
        all.extend(env.destination.iter().map(|e| (at("destination"), e)));
        all.extend(
            env.connections
                .iter()
                .map(|(c, e)| (at(&format!("connections.{c}")), e)),
        );
    }
    all
}

/// Whether `name` is a plain identifier: a connection name appears in
/// grants, logs and error messages, so it stays readable.
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_sync(m: &Migration, problems: &mut Vec<String>) {
    use super::SyncKind;
    let spec = &m.sync;
    problems.extend(spec.interval().err().map(|e| e.to_string()));
    problems.extend(spec.schedule().err().map(|e| e.to_string()));
    problems.extend(spec.max_lag_bytes().err().map(|e| e.to_string()));
    problems.extend(spec.time_limit().err().map(|e| e.to_string()));
    match spec.kind {
        SyncKind::Continuous if spec.every.is_none() => problems.push(
            "sync.every: a continuous migration needs an interval, e.g. every = \"5m\"".into(),
        ),
        SyncKind::Scheduled if spec.every.is_none() && spec.cron.is_none() => problems.push(
            "sync.cron: a scheduled migration needs a cron expression (cron = \"0 3 * * *\") or an interval (every = \"daily\")".into(),
        ),
        SyncKind::OneTime if spec.every.is_some() || spec.cron.is_some() => problems.push(
            "sync.kind: set kind = \"continuous\" or \"scheduled\" to sync on a schedule".into(),
        ),
        _ => {}
    }
    for (i, table) in m.tables.iter().enumerate() {
        let at = format!("tables[{i}] ({})", table.source);
        match (m.sync_mode(table), &table.cursor) {
            (SyncMode::Incremental, None) => problems.push(format!(
                "{at}.cursor: an incremental table needs a cursor column (an updated_at timestamp or an increasing id)"
            )),
            (SyncMode::Full | SyncMode::Cdc, Some(_)) => problems.push(format!(
                "{at}.cursor: only incremental tables follow a cursor; set sync = \"incremental\""
            )),
            _ => {}
        }
    }
    for (i, table) in m.tables.iter().enumerate() {
        let endpoint = match &table.connection {
            Some(c) => m.connections.get(c),
            None => m.source.as_ref(),
        };
        if m.sync_mode(table) == SyncMode::Cdc && endpoint.is_some_and(|e| !e.has_change_log()) {
            problems.push(format!("tables[{i}] ({}).sync: CDC reads {CHANGE_LOGS}'s change log; this table's source is not {CHANGE_LOGS}, so use incremental or full", table.source));
        }
    }
    // Tables picked by [select] are known only once the source is read.
    if m.sync.mode == SyncMode::Cdc
        && !m.select.include.is_empty()
        && m.source.as_ref().is_some_and(|e| !e.has_change_log())
    {
        problems.push(format!("sync.mode: CDC reads {CHANGE_LOGS}'s change log; the source is not {CHANGE_LOGS}, so use incremental or full for the tables [select] picks"));
    }
}

fn check_columns(at: &str, table: &super::TableSpec, problems: &mut Vec<String>) {
    let mut targets: HashSet<&str> = HashSet::new();
    for (name, col) in &table.columns {
        let at = format!("{at}.columns.{name}");
        if let Some(t) = &col.type_
            && parse_type_name(t).is_none()
        {
            problems.push(format!(
                "{at}.type: unknown type `{t}`; use one of boolean, int, float, decimal, text, bytes, date, time, timestamp, timestamptz, uuid, json"
            ));
        }
        if col.skip && (col.rename.is_some() || col.type_.is_some() || col.map.is_some()) {
            problems.push(format!(
                "{at}: `skip = true` cannot be combined with rename, type or map"
            ));
        }
        if col.unmapped == Unmapped::Default && col.default.is_none() {
            problems.push(format!(
                "{at}.default: `unmapped = \"default\"` needs a `default` value"
            ));
        }
        if col.default.is_some() && col.unmapped != Unmapped::Default {
            problems.push(format!(
                "{at}.default: only used with `unmapped = \"default\"`"
            ));
        }
        if col.map.is_none() && (col.unmapped != Unmapped::Error || col.default.is_some()) {
            problems.push(format!("{at}.unmapped: only used together with `map`"));
        }
        if !col.skip {
            let target = col.rename.as_deref().unwrap_or(name);
            if !targets.insert(target) {
                problems.push(format!(
                    "{at}.rename: two columns are mapped onto `{target}`"
                ));
            }
        }
    }
}

/// Every plugin's limits are in range; `table_seconds` only where a
/// table is read (`[limits]` and source plugins).
fn check_limits(m: &Migration, problems: &mut Vec<String>) {
    problems.extend(m.limits.problems("limits"));
    for (at, e) in endpoints(m) {
        let Some(p) = e.plugin() else {
            continue;
        };
        let at = format!("{at}.limits");
        problems.extend(p.limits.problems(&at));
        if !at.ends_with("source.limits") && p.limits.table_seconds.is_some() {
            problems.push(format!(
                "{at}.table_seconds: only a source plugin reads tables; set it on the [source] plugin or in [limits]"
            ));
        }
    }
    for (i, table) in m.tables.iter().enumerate() {
        for (j, t) in table.transforms.iter().enumerate() {
            let at = format!("tables[{i}] ({}).transforms[{j}].limits", table.source);
            problems.extend(t.limits.problems(&at));
            if t.limits.table_seconds.is_some() {
                problems.push(format!(
                    "{at}.table_seconds: only a source plugin reads tables; set it on the [source] plugin or in [limits]"
                ));
            }
        }
    }
}

/// A grant's `http.methods`: only the methods the WIT names, in upper case.
fn check_http_methods(at: &str, http: &super::HttpSpec, problems: &mut Vec<String>) {
    use crate::config::HTTP_METHODS;
    for method in &http.methods {
        if !HTTP_METHODS.contains(&method.as_str()) {
            problems.push(format!(
                "{at}.http.methods: `{method}` is not a method plugins may send; use {}",
                HTTP_METHODS.join(", ")
            ));
        }
    }
}

/// Every plugin's grants: `http.methods` are methods the WIT names, and
/// each `db` entry names a `[connections.<name>]` that is
/// a database the host can open for it (in every environment), once, with
/// usable limits.
fn check_db_grants(m: &Migration, problems: &mut Vec<String>) {
    let mut grants: Vec<(String, &super::GrantsSpec)> = endpoints(m)
        .into_iter()
        .filter_map(|(at, e)| Some((format!("{at}.grants"), &e.plugin()?.grants)))
        .collect();
    for (i, table) in m.tables.iter().enumerate() {
        for (j, t) in table.transforms.iter().enumerate() {
            let at = format!("tables[{i}] ({}).transforms[{j}].grants", table.source);
            grants.push((at, &t.grants));
        }
    }
    for (at, spec) in grants {
        if let Some(http) = &spec.http {
            check_http_methods(&at, http, problems);
        }
        let mut seen = HashSet::new();
        for (k, db) in spec.db.iter().enumerate() {
            let at = format!("{at}.db[{k}]");
            let name = &db.connection;
            if !seen.insert(name) {
                problems.push(format!(
                    "{at}: connection `{name}` is granted twice; keep one entry"
                ));
            }
            if db.max_rows == 0 || db.max_result_kb == 0 || db.timeout_ms == 0 {
                problems.push(format!(
                    "{at}: max_rows, max_result_kb and timeout_ms must be at least 1"
                ));
            }
            let Some(endpoint) = m.connections.get(name) else {
                let known: Vec<&str> = m.connections.keys().map(String::as_str).collect();
                problems.push(format!(
                    "{at}.connection: there is no [connections.{name}] in this file ({}); define it, or fix the name",
                    match known.is_empty() {
                        true => "it defines no connections".to_string(),
                        false => format!("it defines: {}", known.join(", ")),
                    }
                ));
                continue;
            };
            let replacements = m.environments.iter().filter_map(|(env, e)| {
                Some((
                    format!("environments.{env}.connections.{name}"),
                    e.connections.get(name)?,
                ))
            });
            for (key, endpoint) in [(format!("connections.{name}"), endpoint)]
                .into_iter()
                .chain(replacements)
            {
                if !endpoint.is_database() {
                    problems.push(format!(
                        "{at}.connection: {key} is not a database (a db grant opens {DATABASES} connections); grant it another way (a directory, say) or point it at a database"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::CHANGE_LOGS;
    use crate::config::Migration;

    #[test]
    fn cdc_over_tables_picked_by_select_needs_a_source_with_a_change_log() {
        let with = |source: &str| {
            let text = format!(
                "name = \"x\"\n[source]\n{source}\n[destination]\ntype = \"sqlite\"\npath = \"o.db\"\n[sync]\nmode = \"cdc\"\n[select]\ninclude = [\"*\"]\n"
            );
            Migration::parse(&text, Path::new("m.toml"), "/".into()).map(|_| ())
        };
        let err = with("type = \"mysql\"\ndatabase = \"d\"\nuser = \"u\"")
            .unwrap_err()
            .to_string();
        let refusal = format!(
            "sync.mode: CDC reads {CHANGE_LOGS}'s change log; the source is not {CHANGE_LOGS}"
        );
        assert!(err.contains(&refusal), "{err}");
        with("type = \"postgres\"\ndatabase = \"d\"\nuser = \"u\"").unwrap();
    }

    #[test]
    fn retries_are_bounded() {
        let with = |n: u32| {
            let text = format!(
                "name = \"x\"\n[source]\ntype = \"csv\"\npath = \"in\"\n[destination]\ntype = \"sqlite\"\npath = \"o.db\"\n[settings]\nretries = {n}\n[[tables]]\nsource = \"t\"\n"
            );
            Migration::parse(&text, Path::new("m.toml"), "/".into()).map(|m| m.settings.retries)
        };
        assert_eq!(with(0).unwrap(), 0);
        assert_eq!(with(20).unwrap(), 20);
        let err = with(21).unwrap_err().to_string();
        assert!(
            err.contains("settings.retries: must be between 0 and 20, got 21"),
            "{err}"
        );
    }

    /// Only the source's CSV delimiter was checked, but every CSV endpoint
    /// takes it as one byte (`'é' as u8` is 0xE9, a different delimiter).
    /// fuzz/fuzz_targets/csv_reader.rs found that a line break as delimiter
    /// writes files that read back with another column.
    #[test]
    fn every_csv_delimiter_is_one_ascii_character() {
        let text = "name = \"x\"\n[source]\ntype = \"csv\"\npath = \"in\"\n[destination]\ntype = \"csv\"\npath = \"out\"\ndelimiter = \"é\"\n[environments.e]\nsource = { type = \"csv\", path = \"in\", delimiter = \"§\" }\n[[tables]]\nsource = \"t\"\n";
        let err = Migration::parse(text, Path::new("m.toml"), "/".into())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("destination.delimiter: must be one ASCII character other than a quote or a line break, got 'é'"),
            "{err}"
        );
        assert!(
            err.contains("environments.e.source.delimiter: must be one ASCII character"),
            "{err}"
        );
        for delimiter in ["\\n", "\\r", "\\\""] {
            let text = format!(
                "name = \"x\"\n[source]\ntype = \"csv\"\npath = \"in\"\ndelimiter = \"{delimiter}\"\n[destination]\ntype = \"sqlite\"\npath = \"o.db\"\n[[tables]]\nsource = \"t\"\n"
            );
            let err = Migration::parse(&text, Path::new("m.toml"), "/".into())
                .unwrap_err()
                .to_string();
            assert!(err.contains("source.delimiter: must be one ASCII character other than a quote or a line break"), "{err}");
        }
    }
}
