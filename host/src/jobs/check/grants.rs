//! The pre-run check of every plugin's `db` grants: each connection opens
//! as the plugin would open it, and its user holds no privileges beyond
//! data unless the grant says `allow_privileged = true`.

use super::CheckResult;
use crate::config::{GrantsSpec, Migration};

/// Opens every `db` grant of the file's plugins once and reports it.
pub(super) async fn check(m: &Migration, results: &mut Vec<CheckResult>) {
    for (at, spec) in plugin_grants(m) {
        for grant in crate::drivers::grants(spec, &m.base_dir).db {
            let name = format!("db grant `{}` of {at}", grant.name);
            results.push(match grant.verify().await {
                Ok(detail) => CheckResult::pass(name, detail),
                Err(e) => CheckResult::fail(name, capability_message(e)),
            });
        }
    }
}

/// Every plugin's grants, with where the plugin is in the file.
fn plugin_grants(m: &Migration) -> Vec<(String, &GrantsSpec)> {
    let endpoints = m
        .source
        .iter()
        .map(|e| ("the source".to_string(), e))
        .chain([("the destination".to_string(), &m.destination)])
        .chain(
            m.connections
                .iter()
                .map(|(n, e)| (format!("connections.{n}"), e)),
        );
    let mut all: Vec<(String, &GrantsSpec)> = endpoints
        .filter_map(|(at, e)| Some((at, &e.plugin()?.grants)))
        .collect();
    for table in &m.tables {
        for (j, t) in table.transforms.iter().enumerate() {
            all.push((
                format!("table {} transform {}", table.source, j + 1),
                &t.grants,
            ));
        }
    }
    all.retain(|(_, spec)| !spec.db.is_empty());
    all
}

fn capability_message(e: crate::capabilities::CapabilityError) -> String {
    match e {
        crate::capabilities::CapabilityError::Denied(m)
        | crate::capabilities::CapabilityError::Failed(m) => m,
    }
}
