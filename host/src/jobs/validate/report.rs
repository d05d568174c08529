//! The validation report as a self-contained HTML page.

use std::fmt::Write as _;

use super::{Report, Status};

/// Escapes text for HTML.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:2em;min-width:40em}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
.pass{color:#17692b}.fail{color:#b00020;font-weight:bold}.skip{color:#777}\
code{font-size:12px}";

/// The report as an HTML page.
pub fn html(report: &Report) -> String {
    let verdict = if report.passed { "passed" } else { "FAILED" };
    let mut page = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Validation of {m}</title>\
         <style>{STYLE}</style></head><body><h1>Validation of {m}: {verdict}</h1>\
         <p>Validated at {at}; {n} rows spot-checked per table.</p>",
        m = esc(&report.migration),
        at = esc(&report.validated_at),
        n = report.sample,
    );
    for table in &report.tables {
        let _ = write!(
            page,
            "<h2>{} → {}</h2><table><tr><th>check</th><th>result</th><th>detail</th></tr>",
            esc(&table.source),
            esc(&table.table)
        );
        for line in &table.lines {
            let (class, word) = match line.status {
                Status::Pass => ("pass", "pass"),
                Status::Fail => ("fail", "FAIL"),
                Status::Skip => ("skip", "skip"),
            };
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"{class}\">{word}</td><td><code>{}</code></td></tr>",
                esc(&line.check),
                esc(&line.detail)
            );
        }
        page.push_str("</table>");
    }
    page.push_str("</body></html>\n");
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jobs::validate::{Line, TableReport};

    #[test]
    fn values_from_the_data_are_escaped() {
        let report = Report {
            migration: "m<1>".into(),
            validated_at: "2026-01-01T00:00:00Z".into(),
            sample: 10,
            passed: false,
            tables: vec![TableReport {
                source: "a".into(),
                table: "b".into(),
                lines: vec![Line::new(
                    "spot check",
                    false,
                    "name expected \"<script>\"".into(),
                )],
            }],
        };
        let page = html(&report);
        assert!(page.contains("m&lt;1&gt;"));
        assert!(page.contains("&quot;&lt;script&gt;&quot;"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("class=\"fail\">FAIL"));
    }
}
