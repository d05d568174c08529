//! Validation of a consolidated table, independent of the SQL that built
//! it: every source is re-derived through its mapping and transforms, the
//! host picks each key's winner by the same rule, and the table must hold
//! exactly those rows — no key twice, none missing, none extra, every
//! value the winner's.
//!
//! It keeps about 150 bytes per distinct key in memory (the key's text
//! included, to name it in a failure).

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::digest::hash_row;
use super::{AtRest, Line, TableDigest, TableReport, derive_rows, in_type, stream, whole};
use crate::config::{DedupRule, Migration};
use crate::drivers::{SourceBatch, open_destination_reader};
use crate::engine::not_callable;
use crate::jobs::RunError;
use crate::jobs::consolidate::Unified;
use crate::model::value::{Row, TableInfo, Value, to_text};

/// Differences listed by name before the rest are only counted.
const SHOWN: usize = 5;

/// The row a key keeps so far.
struct Best {
    /// Its feed's precedence (0 first).
    feed: usize,
    /// Its `latest_by` value.
    latest: Value,
    /// The hash of the whole row.
    hash: u128,
    /// Another row of the same feed ties with it under the rule and
    /// differs: which one the merge keeps is arbitrary.
    tied: bool,
    /// The feeds that brought the key, one bit each.
    seen: u64,
    /// The key's text, for messages.
    key: String,
}

/// What the sources say the table should hold.
#[derive(Default)]
struct Expected {
    best: HashMap<u128, Best>,
    rows: Vec<u64>,
    failed: u64,
    null_keys: u64,
}

/// Validates `at`, a consolidated table of `m`'s destination (the copy
/// about to be swapped in, or the table itself), against `unified`'s
/// sources. `refused[i]` names the rows the destination refused from feed
/// `i` in the run.
pub async fn consolidated(
    m: &Migration,
    unified: &Unified,
    refused: &[HashSet<String>],
    at: &TableInfo,
) -> Result<TableReport, RunError> {
    if let Some(why) = unified.feeds.iter().find_map(|f| not_callable(&f.plan)) {
        let line = Line::skip("sources", format!("not re-run: {why}; nothing compared"));
        return Ok(report(unified, vec![line]));
    }
    let expected = expect(m, unified, refused).await?;
    let destination = open_destination_reader(m).await?;
    let order: Vec<Option<usize>> = unified
        .columns
        .iter()
        .map(|c| at.columns.iter().position(|d| d.name == c.name))
        .collect();
    let mut lines = vec![
        sources_line(unified, &expected),
        duplicates_line(unified, &expected),
    ];
    lines.push(ties_line(unified, &expected));
    lines.push(Line::new(
        "null keys",
        expected.null_keys == 0,
        match expected.null_keys {
            0 => "every source row has a key".into(),
            n => format!("{n} source rows have a NULL in a key column ({}), so they cannot be matched; fill the key or filter them out", unified.key_names().join(", ")),
        },
    ));
    let missing: Vec<&str> = unified
        .columns
        .iter()
        .zip(&order)
        .filter(|(_, o)| o.is_none())
        .map(|(c, _)| c.name.as_str())
        .collect();
    if !missing.is_empty() {
        lines.push(Line::new(
            "column count",
            false,
            format!("the table lacks {}", missing.join(", ")),
        ));
        return Ok(report(unified, lines));
    }
    let order: Vec<usize> = order.into_iter().flatten().collect();
    let found = scan(m, unified, destination.as_ref(), at, &order, &expected).await?;
    lines.extend(found.lines(&expected));
    Ok(report(unified, lines))
}

fn report(unified: &Unified, lines: Vec<Line>) -> TableReport {
    let sources: Vec<String> = unified
        .feeds
        .iter()
        .map(|f| format!("{}.{}", f.label, f.source))
        .collect();
    TableReport {
        source: sources.join(" + "),
        table: unified.table.clone(),
        lines,
    }
}

/// Re-derives every feed and keeps each key's winner.
async fn expect(
    m: &Migration,
    unified: &Unified,
    refused: &[HashSet<String>],
) -> Result<Expected, RunError> {
    let mut expected = Expected::default();
    let identity: Vec<usize> = (0..unified.columns.len()).collect();
    let none = HashSet::new();
    let at_rest = AtRest::of(&m.destination);
    for (i, feed) in unified.feeds.iter().enumerate() {
        let part = m.parts().into_iter().find(|p| p.label == feed.label);
        let part = part.map(|p| p.migration).unwrap_or_else(|| m.clone());
        let source = crate::drivers::open_source(&part).await?;
        let refused = refused.get(i).unwrap_or(&none);
        let mut rows = 0;
        let counts = derive_rows(m, &feed.plan, source.as_ref(), refused, |row| {
            rows += 1;
            let row = at_rest.apply(lay_out(unified, i, &row));
            expected.add(unified, i, row, &identity);
        })
        .await?;
        expected.rows.push(rows);
        expected.failed += counts.failed + counts.dropped + counts.refused;
    }
    Ok(expected)
}

/// A feed's row in the unified column order, converted to the unified
/// types, with the lineage column filled.
fn lay_out(unified: &Unified, feed: usize, row: &Row) -> Row {
    let f = &unified.feeds[feed];
    let mut out: Row = unified
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let at = f.at.get(i).copied().flatten();
            at.map_or(Value::Null, |i| in_type(&row[i], c.type_))
        })
        .collect();
    if let Some(l) = unified.lineage {
        out[l] = Value::Text(f.label.clone());
    }
    out
}

impl Expected {
    fn add(&mut self, unified: &Unified, feed: usize, row: Row, identity: &[usize]) {
        if unified.key.iter().any(|&k| matches!(row[k], Value::Null)) {
            self.null_keys += 1;
            return;
        }
        let key = hash_row(&row, &unified.key);
        let latest = unified.latest.map_or(Value::Null, |l| row[l].clone());
        let hash = hash_row(&row, identity);
        let bit = 1u64 << feed.min(63);
        let Some(best) = self.best.get_mut(&key) else {
            let key_text = key_text(unified, &row);
            self.best.insert(
                key,
                Best {
                    feed,
                    latest,
                    hash,
                    tied: false,
                    seen: bit,
                    key: key_text,
                },
            );
            return;
        };
        best.seen |= bit;
        match beats(
            unified.spec.rule,
            (feed, &latest),
            (best.feed, &best.latest),
        ) {
            Ordering::Greater => {
                (best.feed, best.latest, best.hash, best.tied) = (feed, latest, hash, false);
            }
            Ordering::Equal if best.hash != hash => best.tied = true,
            _ => {}
        }
    }
}

/// Whether row `a` wins over row `b` of the same key (`Greater`), loses,
/// or ties: as the merge's `ORDER BY (latest IS NULL), latest DESC,
/// priority` ranks them.
fn beats(rule: DedupRule, a: (usize, &Value), b: (usize, &Value)) -> Ordering {
    let by_latest = match rule {
        DedupRule::Latest => order(a.1, b.1),
        DedupRule::Priority => Ordering::Equal,
    };
    by_latest.then(b.0.cmp(&a.0))
}

/// The order of two `latest_by` values: NULL lowest, then by value.
fn order(a: &Value, b: &Value) -> Ordering {
    use Value::*;
    match (a, b) {
        (Null, Null) => Ordering::Equal,
        (Null, _) => Ordering::Less,
        (_, Null) => Ordering::Greater,
        (Int(x), Int(y)) => x.cmp(y),
        (Float(x), Float(y)) => x.total_cmp(y),
        (Date(x), Date(y)) => x.cmp(y),
        (Time(x), Time(y)) => x.cmp(y),
        (Timestamp(x), Timestamp(y)) | (Timestamptz(x), Timestamptz(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

fn key_text(unified: &Unified, row: &Row) -> String {
    unified
        .key
        .iter()
        .map(|&k| {
            let v = to_text(&row[k]).unwrap_or_else(|| "null".into());
            format!("{}={v}", unified.columns[k].name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn sources_line(unified: &Unified, expected: &Expected) -> Line {
    let per: Vec<String> = unified
        .feeds
        .iter()
        .zip(&expected.rows)
        .map(|(f, n)| format!("{}.{}: {n}", f.label, f.source))
        .collect();
    let total: u64 = expected.rows.iter().sum();
    let mut detail = format!("{total} rows ({})", per.join(", "));
    if expected.failed > 0 {
        detail.push_str(&format!(
            "; {} more refused in the run or filtered out",
            expected.failed
        ));
    }
    Line::new("sources", true, detail)
}

fn duplicates_line(unified: &Unified, expected: &Expected) -> Line {
    let shared = expected
        .best
        .values()
        .filter(|b| b.seen.count_ones() > 1)
        .count();
    let mut won = vec![0u64; unified.feeds.len()];
    for b in expected.best.values() {
        won[b.feed] += 1;
    }
    let kept: Vec<String> = unified
        .feeds
        .iter()
        .zip(&won)
        .map(|(f, n)| format!("{} {n}", f.label))
        .collect();
    Line::new(
        "duplicates",
        true,
        format!(
            "{shared} keys in more than one source, resolved by {}; kept: {}",
            unified.rule_text(),
            kept.join(", ")
        ),
    )
}

fn ties_line(unified: &Unified, expected: &Expected) -> Line {
    let tied: Vec<&Best> = expected.best.values().filter(|b| b.tied).collect();
    match tied.first() {
        None => Line::new("ties", true, "the rule picks one row for every key".into()),
        Some(first) => Line::new(
            "ties",
            false,
            format!(
                "{} keys have rows from one source that tie under the rule with different values (e.g. {} from `{}`), so the kept row is arbitrary; make the key unique in that source, or rank by a finer latest_by",
                tied.len(),
                first.key,
                unified.feeds[first.feed].label
            ),
        ),
    }
}

/// The destination table, compared row by row with the winners.
struct Found {
    digest: TableDigest,
    duplicated: Vec<String>,
    unexpected: Vec<String>,
    differ: Vec<String>,
    seen: HashSet<u128>,
}

async fn scan(
    m: &Migration,
    unified: &Unified,
    destination: &dyn crate::drivers::Source,
    at: &TableInfo,
    order: &[usize],
    expected: &Expected,
) -> Result<Found, RunError> {
    let mut found = Found {
        digest: TableDigest::new(unified.columns.len()),
        duplicated: Vec::new(),
        unexpected: Vec::new(),
        differ: Vec::new(),
        seen: HashSet::new(),
    };
    let identity: Vec<usize> = (0..unified.columns.len()).collect();
    stream(destination, whole(m, at), async |batch: SourceBatch| {
        for row in &batch.rows {
            let row = align(unified, row, order);
            found.digest.add(&row, &identity);
            let key = hash_row(&row, &unified.key);
            let text = key_text(unified, &row);
            if !found.seen.insert(key) {
                found.duplicated.push(text);
                continue;
            }
            match expected.best.get(&key) {
                None => found.unexpected.push(text),
                Some(b) if b.hash != hash_row(&row, &identity) => found.differ.push(text),
                Some(_) => {}
            }
        }
        Ok(())
    })
    .await?;
    Ok(found)
}

/// A destination row in the unified order and types.
fn align(unified: &Unified, row: &Row, order: &[usize]) -> Row {
    order
        .iter()
        .zip(&unified.columns)
        .map(|(&i, c)| in_type(&row[i], c.type_))
        .collect()
}

impl Found {
    fn lines(&self, expected: &Expected) -> Vec<Line> {
        let want = expected.best.len() as u64;
        let got = self.digest.rows;
        let mut winners = TableDigest::new(0);
        let mut missing = Vec::new();
        for (key, b) in &expected.best {
            winners.add_row_hash(b.hash);
            if !self.seen.contains(key) {
                missing.push(b.key.clone());
            }
        }
        let examples = |v: &[String]| {
            let shown: Vec<&str> = v.iter().take(SHOWN).map(String::as_str).collect();
            shown.join("; ")
        };
        let mut problems = Vec::new();
        for (what, keys) in [
            ("missing", &missing),
            ("not from any source", &self.unexpected),
            ("differ from the winning source row", &self.differ),
        ] {
            if !keys.is_empty() {
                problems.push(format!("{} {what} ({})", keys.len(), examples(keys)));
            }
        }
        let (a, b) = (winners.checksum(), self.digest.checksum());
        vec![
            Line::new(
                "row count",
                want == got,
                format!("expected {want} (one per distinct key), table {got}"),
            ),
            Line::new(
                "keys unique",
                self.duplicated.is_empty(),
                match self.duplicated.is_empty() {
                    true => "no key appears twice".into(),
                    false => format!(
                        "{} keys appear more than once ({})",
                        self.duplicated.len(),
                        examples(&self.duplicated)
                    ),
                },
            ),
            Line::new(
                "rows match",
                problems.is_empty(),
                match problems.is_empty() {
                    true => format!("all {got} rows are their key's winning source row"),
                    false => problems.join("; "),
                },
            ),
            Line::new(
                "checksum",
                a == b,
                match a == b {
                    true => a,
                    false => format!("expected {a}, table {b}"),
                },
            ),
        ]
    }
}
