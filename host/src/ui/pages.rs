//! The dashboard's HTML: rendered on the server, with a small stylesheet and
//! one small script for live progress (no build step, nothing fetched from
//! elsewhere).

use std::collections::HashSet;
use std::fmt::Write as _;

use axum::http::StatusCode;

use crate::config::show_size;
use crate::jobs::RetrySummary;
use crate::jobs::restore::{Action, Listing, Point, RestoreError, Rollback};
use crate::jobs::sync::SlotReport;
/// Escapes text for HTML (the validation report's escaping).
pub(crate) use crate::jobs::validate::report::esc;
use crate::state::{Event, FlaggedRow, RunRecord, StoredValidation, SyncRecord};

/// The stylesheet.
pub const STYLE: &str = include_str!("style.css");
/// The live-progress script of a migration's page.
pub const LIVE: &str = include_str!("live.js");

/// A migration's line in the list, and the head of its page.
pub struct Overview {
    /// Its name.
    pub name: String,
    /// One-time, continuous or scheduled, with its schedule.
    pub kind: String,
    /// `paused`, `run succeeded`, `sync failed`, `never run`, …
    pub status: String,
    /// Whether its syncs are paused.
    pub paused: bool,
    /// Whether it syncs on a schedule (continuous or scheduled).
    pub scheduled: bool,
    /// When its last sync started.
    pub last_sync: Option<String>,
    /// When its last run started.
    pub last_run: Option<String>,
    /// When its next sync is due, or why none is.
    pub next_sync: String,
}

/// Everything a migration's page shows.
pub struct Page {
    /// Its head.
    pub overview: Overview,
    /// Its newest runs.
    pub runs: Vec<RunRecord>,
    /// Its newest syncs, when it is scheduled.
    pub syncs: Vec<SyncRecord>,
    /// Its newest validation.
    pub validation: Option<StoredValidation>,
    /// Its flagged rows (the first of them).
    pub flagged: Vec<FlaggedRow>,
    /// How many there are in all.
    pub flagged_total: u64,
    /// How many its dry runs flagged (kept apart, not listed).
    pub dry_run_flagged: u64,
    /// How many `credvault flagged retry` may retry (not those of syncs).
    pub retryable_total: u64,
    /// Which of the rows shown it may retry.
    pub retryable: HashSet<i64>,
    /// Its restore points, or why they cannot be listed.
    pub points: Result<Listing, RestoreError>,
    /// Its audit log, oldest first.
    pub events: Vec<Event>,
    /// Its CDC replication slots (none unless it syncs by CDC).
    pub slots: Vec<SlotReport>,
}

/// Percent-encodes a path segment or query value.
pub fn enc(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A migration's name as a safe file name.
pub fn file_name(name: &str) -> String {
    name.chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '_',
            },
        )
        .collect()
}

/// `2025-01-31T12:00:00.000000Z` as `2025-01-31 12:00:00 UTC`.
pub fn when(stamp: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(stamp)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| stamp.to_string())
}

fn maybe_when(stamp: &Option<String>) -> String {
    stamp.as_deref().map(when).unwrap_or_else(|| "—".into())
}

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · CredVault</title><link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body><header><a class=\"brand\" href=\"/\">CredVault Migrations</a></header><main>{body}</main></body></html>\n",
        esc(title)
    )
}

fn status_class(status: &str) -> &'static str {
    if status.contains("fail") || status == "lost" {
        "bad"
    } else if status.contains("rolled back") {
        "warn"
    } else if status.contains("succeeded") || status.contains("passed") {
        "good"
    } else if ["paused", "running", "interrupted", "unreserved"]
        .iter()
        .any(|s| status.contains(s))
    {
        "warn"
    } else {
        "quiet"
    }
}

fn badge(status: &str) -> String {
    format!(
        "<span class=\"badge {}\">{}</span>",
        status_class(status),
        esc(status)
    )
}

/// The list of migrations.
pub fn index(rows: &[Overview]) -> String {
    let mut body = String::from(
        "<h1>Migrations</h1><table id=\"migrations\"><thead><tr><th>Migration</th><th>Kind</th>\
         <th>Status</th><th>Last run</th><th>Last sync</th><th>Next sync</th></tr></thead><tbody>",
    );
    for r in rows {
        let _ = write!(
            body,
            "<tr><td><a href=\"/m/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            enc(&r.name),
            esc(&r.name),
            esc(&r.kind),
            badge(&r.status),
            maybe_when(&r.last_run),
            maybe_when(&r.last_sync),
            esc(&r.next_sync)
        );
    }
    if rows.is_empty() {
        body.push_str("<tr><td colspan=\"6\">no migration files were given to <code>credvault serve</code></td></tr>");
    }
    body.push_str("</tbody></table>");
    layout("Migrations", &body)
}

/// A migration's page.
pub fn migration(p: &Page) -> String {
    let o = &p.overview;
    let name = enc(&o.name);
    let mut body = format!(
        "<h1>{}</h1><dl class=\"facts\"><dt>Kind</dt><dd>{}</dd><dt>Status</dt><dd id=\"status\">{}</dd>\
         <dt>Last run</dt><dd>{}</dd><dt>Last sync</dt><dd>{}</dd><dt>Next sync</dt><dd>{}</dd></dl>",
        esc(&o.name),
        esc(&o.kind),
        badge(&o.status),
        maybe_when(&o.last_run),
        maybe_when(&o.last_sync),
        esc(&o.next_sync)
    );
    // Pausing stops syncs; a one-time migration has none, unless the CLI
    // paused it anyway.
    let toggle = match (o.paused, o.scheduled) {
        (true, _) => Some(("resume", "Resume syncs")),
        (false, true) => Some(("pause", "Pause syncs")),
        (false, false) => None,
    };
    let _ = write!(
        body,
        "<div class=\"actions\"><form method=\"post\" action=\"/m/{name}/run\"><button id=\"run-now\">Run now</button></form>"
    );
    if let Some((action, label)) = toggle {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/m/{name}/{action}\"><button id=\"{action}\" class=\"secondary\">{label}</button></form>"
        );
    }
    body.push_str("</div>");
    let _ = write!(
        body,
        "<section id=\"live\" data-events=\"/m/{name}/events\"><h2>Live progress</h2>\
         <p id=\"live-status\" class=\"quiet\">no run or sync started by this dashboard or its schedule yet \
         (one started from a shell shows under Runs once it ends)</p>\
         <table id=\"progress\"><thead><tr><th>Table</th><th>Progress</th><th>%</th><th>Rows</th>\
         <th>Rows/s</th><th>ETA</th><th>Errors</th></tr></thead><tbody></tbody></table>\
         <ul id=\"failures\"></ul></section>"
    );
    slots(&mut body, &p.slots);
    if o.scheduled {
        syncs(&mut body, &p.syncs);
    }
    runs(&mut body, &p.runs);
    validation(&mut body, p.validation.as_ref());
    flagged(&mut body, &name, p);
    points(&mut body, &name, &p.points);
    events(&mut body, &p.events);
    body.push_str("<script src=\"/live.js\"></script>");
    layout(&o.name, &body)
}

/// What the migration's CDC slots keep on their sources, with warnings
/// past `max_lag` or when WAL was lost.
fn slots(body: &mut String, slots: &[SlotReport]) {
    if slots.is_empty() {
        return;
    }
    body.push_str(
        "<section id=\"slots\"><h2>Change capture</h2><table><thead><tr><th>Slot</th><th>Retained WAL</th>\
         <th>Lag</th><th>WAL status</th><th>Safe WAL size</th><th>In use by</th><th>Max lag</th></tr></thead><tbody>",
    );
    let bytes = |b: Option<u64>| b.map_or("-".to_string(), show_size);
    for r in slots {
        let h = r.health.as_ref();
        let status = match (h, &r.error) {
            (Some(h), _) => h.wal_status.clone().unwrap_or_else(|| "-".into()),
            (None, Some(_)) => "unreadable".into(),
            (None, None) => "not created yet".into(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&r.slot),
            bytes(h.and_then(|h| h.retained_bytes)),
            bytes(h.and_then(|h| h.lag_bytes)),
            badge(&status),
            bytes(h.and_then(|h| h.safe_wal_size).map(|s| s.max(0) as u64)),
            h.and_then(|h| h.active_pid)
                .map_or(String::new(), |p| format!("pid {p}")),
            show_size(r.max_lag)
        );
    }
    body.push_str("</tbody></table>");
    for r in slots {
        for w in r.warnings.iter().chain(&r.error) {
            let _ = write!(body, "<p class=\"warning\">{}</p>", esc(w));
        }
    }
    body.push_str("</section>");
}

fn runs(body: &mut String, runs: &[RunRecord]) {
    body.push_str("<section id=\"runs\"><h2>Runs</h2>");
    if runs.is_empty() {
        body.push_str("<p class=\"quiet\">no run yet</p></section>");
        return;
    }
    body.push_str(
        "<table><thead><tr><th>Run</th><th>Started</th><th>Finished</th><th>Status</th><th>Read</th>\
         <th>Written</th><th>Skipped</th><th>Flagged</th><th>Error</th></tr></thead><tbody>",
    );
    for r in runs {
        let c = r.counts;
        let status = match &r.rolled_back {
            Some(point) => format!("{}, rolled back to {point}", r.status),
            None => r.status.clone(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            r.number,
            when(&r.started_at),
            maybe_when(&r.finished_at),
            badge(&status),
            c.read,
            c.written,
            c.skipped,
            c.flagged,
            esc(r.error.as_deref().unwrap_or(""))
        );
    }
    body.push_str("</tbody></table></section>");
}

/// A scheduled migration's newest syncs, with what each changed.
fn syncs(body: &mut String, syncs: &[SyncRecord]) {
    body.push_str("<section id=\"syncs\"><h2>Syncs</h2>");
    if syncs.is_empty() {
        body.push_str("<p class=\"quiet\">no sync yet</p></section>");
        return;
    }
    body.push_str(
        "<table><thead><tr><th>Sync</th><th>Started</th><th>Finished</th><th>Status</th><th>New</th>\
         <th>Updated</th><th>Deleted</th><th>Error</th></tr></thead><tbody>",
    );
    for s in syncs {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            s.number,
            when(&s.started_at),
            maybe_when(&s.finished_at),
            badge(&s.status),
            s.inserted,
            s.updated,
            s.deleted,
            esc(s.error.as_deref().unwrap_or(""))
        );
    }
    body.push_str("</tbody></table></section>");
}

fn validation(body: &mut String, v: Option<&StoredValidation>) {
    body.push_str("<section id=\"validation\"><h2>Validation</h2>");
    let Some(v) = v else {
        body.push_str("<p class=\"quiet\">not validated yet: a run validates its tables, and so does <code>credvault validate</code></p></section>");
        return;
    };
    let verdict = match (&v.rolled_back, v.passed) {
        (Some(_), _) => "out of date",
        (None, true) => "passed",
        (None, false) => "failed",
    };
    let run = v.run.map(|r| format!(" of run {r}")).unwrap_or_default();
    let _ = write!(
        body,
        "<p>{} · validated {}{run}</p>",
        badge(verdict),
        when(&v.at)
    );
    if let Some(point) = &v.rolled_back {
        let was = if v.passed { "passed" } else { "failed" };
        let _ = write!(
            body,
            "<p class=\"warning\" id=\"validation-rolled-back\">this validation {was}, but the tables were then rolled back to restore point <code>{}</code>: it no longer describes them (<code>credvault validate</code> checks them as they are now)</p>",
            esc(point)
        );
    }
    let tables = v.report["tables"].as_array().cloned().unwrap_or_default();
    for t in &tables {
        let table = t["table"].as_str().unwrap_or("?");
        let _ = write!(
            body,
            "<h3>{}</h3><table class=\"checks\"><tbody>",
            esc(table)
        );
        for line in t["lines"].as_array().into_iter().flatten() {
            let status = line["status"].as_str().unwrap_or("?");
            let class = match status {
                "pass" => "good",
                "fail" => "bad",
                _ => "quiet",
            };
            let _ = write!(
                body,
                "<tr><td><span class=\"badge {class}\">{}</span></td><td>{}</td><td>{}</td></tr>",
                esc(status),
                esc(line["check"].as_str().unwrap_or("")),
                esc(line["detail"].as_str().unwrap_or(""))
            );
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("</section>");
}

fn flagged(body: &mut String, name: &str, p: &Page) {
    let (rows, total) = (&p.flagged, p.flagged_total);
    let _ = write!(
        body,
        "<section id=\"flagged\"><h2>Flagged rows <span class=\"count\">{total}</span></h2>"
    );
    if p.dry_run_flagged > 0 {
        let _ = write!(
            body,
            "<p class=\"quiet\" id=\"dry-run-flagged\">{} more flagged by dry runs, kept apart from these (never retried into the real tables): <code>credvault flagged list --migration {name} --dry-run</code></p>",
            p.dry_run_flagged
        );
    }
    if total == 0 {
        body.push_str("<p class=\"quiet\">none: rows that fail under the <code>flag</code> policy are kept here for review</p></section>");
        return;
    }
    let retry_all = match p.retryable_total == 0 {
        true => String::new(),
        false => format!(
            "<form method=\"post\" action=\"/m/{name}/flagged/retry\"><button id=\"retry-all\" \
             title=\"through the current mapping and transforms into the destination; rows that fail again stay here\">\
             Retry all {}</button></form>\
             <form method=\"post\" action=\"/m/{name}/flagged/retry-fixed\" enctype=\"multipart/form-data\" class=\"upload\">\
             <input type=\"file\" name=\"fixed\" id=\"fixed-file\" accept=\".jsonl,.json,.txt\" required \
             title=\"the JSONL export with the values of some rows fixed; only the rows in it are retried\">\
             <button class=\"secondary\" id=\"retry-fixed\">Retry fixed rows</button></form>",
            p.retryable_total
        ),
    };
    let _ = write!(
        body,
        "<div class=\"actions\"><a class=\"button secondary\" id=\"export-jsonl\" href=\"/m/{name}/flagged.jsonl\" download>Export JSONL</a>\
         <a class=\"button secondary\" id=\"export-csv\" href=\"/m/{name}/flagged.csv\" download>Export CSV</a>{retry_all}{}</div>",
        match (rows.len() as u64) < total {
            true => format!(
                " <span class=\"quiet\">showing the first {}</span>",
                rows.len()
            ),
            false => String::new(),
        }
    );
    body.push_str(
        "<table><thead><tr><th>#</th><th>Run</th><th>Table</th><th>Row</th><th>Key</th><th>Stage</th>\
         <th>Column</th><th>Value</th><th>Error</th><th></th></tr></thead><tbody>",
    );
    for r in rows {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td class=\"error\">{}{}</td><td>{}</td></tr>",
            r.id,
            r.run,
            esc(&r.table),
            r.position,
            esc(r.key.as_deref().unwrap_or("")),
            esc(&r.stage),
            esc(r.column.as_deref().unwrap_or("")),
            esc(r.value.as_deref().unwrap_or("")),
            esc(&r.error),
            match r.retries {
                0 => String::new(),
                n => format!(" <span class=\"quiet\">(retried {n}×)</span>"),
            },
            retry_button(name, r.id, p.retryable.contains(&r.id)),
        );
    }
    body.push_str("</tbody></table></section>");
}

/// A row's Retry button; rows of syncs have none (their next sync reads
/// the source again).
fn retry_button(name: &str, id: i64, retryable: bool) -> String {
    match retryable {
        true => format!(
            "<form method=\"post\" action=\"/m/{name}/flagged/retry\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
             <button class=\"secondary\" id=\"retry-{id}\">Retry</button></form>"
        ),
        false => String::new(),
    }
}

fn points(body: &mut String, name: &str, points: &Result<Listing, RestoreError>) {
    body.push_str("<section id=\"restore-points\"><h2>Restore points</h2>");
    let listing = match points {
        Ok(listing) => listing,
        Err(why) => {
            let why = why.to_string();
            let _ = write!(body, "<p class=\"quiet\">{}</p></section>", esc(&why));
            return;
        }
    };
    if listing.points.is_empty() {
        let _ = write!(
            body,
            "<p class=\"quiet\">none in {}: each run keeps one of the tables it replaces</p></section>",
            esc(&listing.destination)
        );
        return;
    }
    body.push_str(
        "<table><thead><tr><th>Point</th><th>Created</th><th>Expires</th><th>Tables</th><th>Rows</th><th></th></tr></thead><tbody>",
    );
    for p in listing.points.iter().rev() {
        let expires = match p.expired {
            true => format!("expired {}", when(&p.expires_at)),
            false => when(&p.expires_at),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
             <td><a class=\"button danger\" href=\"/m/{name}/rollback?to={}\">Roll back…</a></td></tr>",
            esc(&p.name),
            when(&p.created_at),
            expires,
            p.tables.len(),
            p.rows(),
            enc(&p.name)
        );
    }
    body.push_str("</tbody></table></section>");
}

fn events(body: &mut String, events: &[Event]) {
    body.push_str("<section id=\"audit\"><h2>Audit log</h2>");
    if events.is_empty() {
        body.push_str("<p class=\"quiet\">nothing recorded yet</p></section>");
        return;
    }
    body.push_str(
        "<table><thead><tr><th>When</th><th>Who</th><th>What</th><th>Run</th><th>Detail</th></tr></thead><tbody>",
    );
    for e in events.iter().rev() {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
            when(&e.at),
            esc(&e.actor),
            esc(&e.kind),
            e.run.map(|r| r.to_string()).unwrap_or_default(),
            esc(&e.detail.to_string())
        );
    }
    body.push_str("</tbody></table></section>");
}

/// The question asked before a rollback.
pub fn confirm_rollback(migration: &str, destination: &str, point: &Point) -> String {
    let name = enc(migration);
    let mut body = format!(
        "<h1>Roll back {}?</h1><p>This puts the tables of the {} back as restore point \
         <strong>{}</strong> (made {}) holds them, then verifies each by checksum. \
         Rows written since are lost, and the next run starts afresh.</p><ul>",
        esc(migration),
        esc(destination),
        esc(&point.name),
        when(&point.created_at)
    );
    for t in &point.tables {
        let _ = match t.existed {
            true => write!(
                body,
                "<li><code>{}</code>: back to {} rows</li>",
                esc(&t.table),
                t.rows
            ),
            false => write!(
                body,
                "<li><code>{}</code>: did not exist then, so it is dropped</li>",
                esc(&t.table)
            ),
        };
    }
    let _ = write!(
        body,
        "</ul><form method=\"post\" action=\"/m/{name}/rollback\" class=\"actions\">\
         <input type=\"hidden\" name=\"to\" value=\"{}\"><input type=\"hidden\" name=\"confirm\" value=\"yes\">\
         <button id=\"confirm-rollback\" class=\"danger\">Yes, roll back</button>\
         <a class=\"button secondary\" id=\"cancel\" href=\"/m/{name}\">Cancel</a></form>",
        esc(&point.name)
    );
    layout("Roll back", &body)
}

/// What a rollback did.
pub fn rolled_back(migration: &str, report: &Rollback) -> String {
    let verdict = match report.passed() {
        true => "every table verified by checksum",
        false => "some tables do not match the restore point",
    };
    let mut body = format!(
        "<h1>Rolled back {}</h1><p id=\"rollback-result\">{} · restore point <strong>{}</strong> in {}</p>\
         <table><thead><tr><th></th><th>Table</th><th>Done</th><th>Rows</th><th>Checksum</th></tr></thead><tbody>",
        esc(migration),
        badge(if report.passed() { "passed" } else { "failed" }),
        esc(&report.point),
        esc(&report.destination)
    );
    for t in &report.tables {
        let action = match t.action {
            Action::Replaced => "rows replaced",
            Action::Recreated => "recreated",
            Action::Dropped => "dropped (it did not exist at the point)",
        };
        let check = match (&t.problem, &t.checksum) {
            (Some(problem), _) => esc(problem),
            (None, Some(sum)) => format!("{} matches", esc(sum)),
            (None, None) => String::new(),
        };
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{action}</td><td>{}</td><td>{check}</td></tr>",
            badge(if t.passed { "passed" } else { "failed" }),
            esc(&t.table),
            t.rows
        );
    }
    let _ = write!(
        body,
        "</tbody></table><p>{verdict}; the migration's checkpoints were cleared, so its next run starts afresh.</p>\
         <p><a class=\"button\" id=\"back\" href=\"/m/{}\">Back to {}</a></p>",
        enc(migration),
        esc(migration)
    );
    layout("Rolled back", &body)
}

/// What a retry of flagged rows did.
pub fn retried(migration: &str, summary: &RetrySummary) -> String {
    let mut body = format!(
        "<h1>Retried flagged rows of {}</h1><table id=\"retry-result\"><thead><tr><th>Table</th><th>Retried</th>\
         <th>Written</th><th>Already there</th><th>Dropped</th><th>Failed again</th></tr></thead><tbody>",
        esc(migration)
    );
    let total = ("total", &summary.total);
    let tables = summary.tables.iter().map(|t| (t.table.as_str(), &t.counts));
    for (table, c) in tables.chain((summary.tables.len() > 1).then_some(total)) {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(table),
            c.retried,
            c.written,
            c.present,
            c.dropped,
            c.failed
        );
    }
    body.push_str("</tbody></table>");
    if summary.total.superseded > 0 {
        let _ = write!(
            body,
            "<p>{} row(s) of tables without a key were closed unwritten: a full sync rebuilt the table since they were flagged.</p>",
            summary.total.superseded
        );
    }
    if summary.tables.is_empty() {
        body.push_str("<p>No open flagged row could be retried.</p>");
    }
    body.push_str(
        "<p class=\"quiet\">Rows already there were left as the destination holds them; \
         rows that failed again stay flagged with their new error.</p>",
    );
    let _ = write!(
        body,
        "<p><a class=\"button\" id=\"back\" href=\"/m/{}\">Back to {}</a></p>",
        enc(migration),
        esc(migration)
    );
    layout("Retried", &body)
}

/// A page saying what went wrong.
pub fn failure(status: StatusCode, message: &str) -> String {
    let body = format!(
        "<h1>{}</h1><p id=\"failure\" class=\"error\">{}</p><p><a href=\"/\">All migrations</a></p>",
        status,
        esc(message)
    );
    layout(status.as_str(), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_encodes() {
        assert_eq!(
            esc("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&quot;"
        );
        assert_eq!(enc("a b/ü"), "a%20b%2F%C3%BC");
        assert_eq!(file_name("a b/ü"), "a_b__");
    }
}
