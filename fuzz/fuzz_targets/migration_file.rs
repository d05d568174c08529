//! The migration-file parser: `credvault::config::Migration::parse` on any
//! text, then what the rest of the program does with a file it accepted.
//!
//! Checked besides not panicking:
//! - an error names the file and never repeats a `password = "…"` value
//!   (secrets stay out of errors);
//! - an accepted file keeps the promises its validation makes: a name,
//!   batch size and parallelism in range, one-byte (ASCII) CSV delimiters
//!   wherever a CSV endpoint may be used (connectors take the delimiter as a
//!   byte), a sync interval and cron expression that parse, no validation
//!   of a write-only plugin destination, CDC only from PostgreSQL;
//! - every environment it defines can be entered, and keeps those promises;
//! - what a run asks of it does not panic: the next sync time, table
//!   selection, limits, plugin configuration as JSON and grants.
#![no_main]

use std::path::{Path, PathBuf};

use credvault::config::{Endpoint, Migration, SyncMode};
use libfuzzer_sys::fuzz_target;

/// The values given to `password` keys on the input's lines, long enough
/// that finding one in a message is no coincidence.
fn passwords(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("password") {
        rest = &rest[at + "password".len()..];
        let value = rest.trim_start_matches([' ', '\t']);
        let Some(value) = value.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start_matches([' ', '\t']);
        let end = value.find(['\n', ',', '}']).unwrap_or(value.len());
        let value = value[..end].trim().trim_matches(['"', '\'']);
        if value.len() >= 6 {
            found.push(value);
        }
    }
    found
}

fn endpoints(m: &Migration) -> Vec<(String, &Endpoint)> {
    let mut all = vec![("destination".to_string(), &m.destination)];
    if let Some(source) = &m.source {
        all.push(("source".to_string(), source));
    }
    for (name, e) in &m.connections {
        all.push((format!("connections.{name}"), e));
    }
    for (env, e) in &m.environments {
        all.extend(
            e.source
                .iter()
                .map(|s| (format!("environments.{env}.source"), s)),
        );
        all.extend(
            e.destination
                .iter()
                .map(|d| (format!("environments.{env}.destination"), d)),
        );
        for (name, c) in &e.connections {
            all.push((format!("environments.{env}.connections.{name}"), c));
        }
    }
    all
}

fn check_accepted(m: &Migration) {
    assert!(!m.name.trim().is_empty());
    assert!((1..=1_000_000).contains(&m.settings.batch_size));
    assert!((1..=64).contains(&m.settings.parallel_tables));
    for (key, endpoint) in endpoints(m) {
        match endpoint {
            Endpoint::Csv { delimiter, .. } => {
                assert!(
                    delimiter.is_ascii(),
                    "{key}.delimiter {delimiter:?} was accepted"
                );
            }
            Endpoint::Plugin(p) => {
                let _ = p.config_json();
                let _ = credvault::drivers::grants(&p.grants, Path::new("/base"));
                let _ = p.effective_limits();
            }
            Endpoint::Postgres(s) | Endpoint::Mysql(s) => {
                assert!(s.password.is_none(), "{key}.password was accepted");
            }
            Endpoint::Sqlite { .. } => {}
        }
    }
    if m.settings.validate {
        let plugin = matches!(m.destination, Endpoint::Plugin(_));
        assert!(
            !plugin,
            "a plugin destination with validate = true was accepted"
        );
    }
    if m.tables.iter().any(|t| m.sync_mode(t) == SyncMode::Cdc) {
        let postgres = matches!(m.source, None | Some(Endpoint::Postgres(_)));
        assert!(
            postgres,
            "a CDC table with a source other than PostgreSQL was accepted"
        );
    }
    let interval = m.sync.interval().expect("an accepted sync interval parses");
    let schedule = m
        .sync
        .schedule()
        .expect("an accepted cron expression parses");
    if interval.is_some() || schedule.is_some() {
        let last = chrono::DateTime::from_timestamp(1_700_000_000, 0);
        let _ = m.sync.next_after(last);
    }
    let tables = m.selected_tables(&["customers", "orders", "t"]);
    for table in &tables {
        let _ = m.policy(table);
        let _ = m.sync_mode(table);
        for t in &table.transforms {
            let _ = m.limits(t);
        }
    }
    let _ = m.clone().dry_run().selected_tables(&["customers"]);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let origin = Path::new("fuzz.toml");
    match Migration::parse(text, origin, PathBuf::from("/base")) {
        Ok(m) => {
            check_accepted(&m);
            for env in m.environments.keys() {
                let entered = m.clone().in_environment(env).unwrap_or_else(|e| {
                    panic!("environment {env} was accepted but cannot be entered: {e}")
                });
                check_accepted(&entered);
            }
        }
        Err(err) => {
            let message = err.to_string();
            assert!(message.starts_with("fuzz.toml"), "{message}");
            for secret in passwords(text) {
                let elsewhere = text.matches(secret).count() > 1;
                assert!(
                    elsewhere || !message.contains(secret),
                    "the error repeats a password: {message}"
                );
            }
        }
    }
});
