//! What a run's progress events say: the names a person knows, and sums
//! and paces that hold for split tables and resumed runs.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::TableSpec;
use crate::jobs::validate::Report;

/// What a run's events call things when the run is one step of a larger
/// job: a sync's scratch runs and a consolidation's parts have names of
/// their own (`<migration>#sync`, `credvault_part0_<table>`) that a person
/// never sees.
#[derive(Debug, Clone, Default)]
pub struct Naming {
    /// The migration as its file names it (default: the run's own name).
    pub migration: Option<String>,
    /// The sync the run is a step of.
    pub sync: Option<i64>,
    /// The source the run reads, when the migration has several.
    pub source: Option<String>,
    /// The destination table each scratch table stands for.
    pub tables: HashMap<String, String>,
}

impl Naming {
    /// The table `spec` writes, as a person knows it.
    pub fn table<'a>(&'a self, spec: &'a TableSpec) -> &'a str {
        let written = spec.destination();
        spec.stands_for
            .as_deref()
            .or_else(|| self.tables.get(written).map(String::as_str))
            .unwrap_or(written)
    }

    /// A validation report as events show it: the state store keeps the
    /// report of a scratch run under its own names.
    pub fn report(&self, mut report: Report) -> Report {
        if let Some(migration) = &self.migration {
            report.migration = migration.clone();
        }
        for t in &mut report.tables {
            if let Some(table) = self.tables.get(&t.table) {
                t.table = table.clone();
            }
        }
        report
    }
}

/// A progress row's name: the table, and the source when there are several.
pub fn row_name(table: &str, source: Option<&str>) -> String {
    match source {
        Some(source) => format!("{table} (from source `{source}`)"),
        None => table.to_string(),
    }
}

/// Where a table, or one key range of it, stands.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(super) struct Tally {
    /// Rows done, with those committed before this run.
    pub done: u64,
    /// Rows committed before this run.
    pub resumed_at: u64,
    /// Rows this run wrote.
    pub written: u64,
    /// Rows this run skipped or flagged.
    pub errors: u64,
}

/// The tallies of a split table's key ranges, summed into the table's.
#[derive(Debug)]
pub(super) struct Tallies(Mutex<Vec<Tally>>);

impl Tallies {
    /// One tally per range, each starting where an interrupted run left it.
    pub fn resumed(committed: &[u64]) -> Self {
        let start = |&rows| Tally {
            done: rows,
            resumed_at: rows,
            ..Tally::default()
        };
        Self(Mutex::new(committed.iter().map(start).collect()))
    }

    pub fn ranges(&self) -> usize {
        self.0.lock().expect("tallies lock").len()
    }

    /// Records range `i`'s tally and returns the table's.
    pub fn set(&self, i: usize, tally: Tally) -> Tally {
        let mut all = self.0.lock().expect("tallies lock");
        all[i] = tally;
        all.iter().fold(Tally::default(), |a, t| Tally {
            done: a.done + t.done,
            resumed_at: a.resumed_at + t.resumed_at,
            written: a.written + t.written,
            errors: a.errors + t.errors,
        })
    }
}

/// This run's rows per second, and the seconds left at that pace: rows an
/// interrupted run committed took none of this run's time.
pub(super) fn pace(tally: Tally, total: u64, elapsed_s: f64) -> (f64, Option<f64>) {
    let moved = tally.done.saturating_sub(tally.resumed_at);
    let rate = moved as f64 / elapsed_s.max(1e-6);
    let eta = match (total.saturating_sub(tally.done), moved) {
        (0, _) => Some(0.0),
        (_, 0) => None,
        (left, _) => Some(left as f64 / rate),
    };
    (rate, eta)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(done: u64, resumed_at: u64) -> Tally {
        Tally {
            done,
            resumed_at,
            ..Tally::default()
        }
    }

    #[test]
    fn a_resumed_run_s_pace_counts_only_its_own_rows() {
        let (rate, eta) = pace(at(1_010_000, 1_000_000), 2_000_000, 2.0);
        assert_eq!(rate, 5_000.0);
        assert_eq!(eta, Some(198.0));
    }

    #[test]
    fn the_pace_is_unknown_before_a_row_and_zero_left_at_the_end() {
        assert_eq!(pace(at(500, 500), 1_000, 3.0), (0.0, None));
        assert_eq!(pace(at(1_000, 0), 1_000, 2.0), (500.0, Some(0.0)));
    }

    #[test]
    fn a_split_table_reports_the_sum_of_its_ranges() {
        let tallies = Tallies::resumed(&[100, 0, 40]);
        let mine = Tally {
            done: 70,
            written: 65,
            errors: 5,
            ..Tally::default()
        };
        let sum = tallies.set(1, mine);
        assert_eq!(
            sum,
            Tally {
                done: 210,
                resumed_at: 140,
                written: 65,
                errors: 5
            }
        );
        assert_eq!(tallies.set(1, Tally { done: 80, ..mine }).done, 220);
        assert_eq!(tallies.ranges(), 3);
    }

    #[test]
    fn scratch_tables_are_named_for_the_table_they_stand_for() {
        let mut spec = TableSpec::new("people");
        spec.destination = Some("credvault_part1_people".into());
        let naming = Naming {
            tables: [("credvault_part1_people".into(), "people".into())].into(),
            ..Naming::default()
        };
        assert_eq!(naming.table(&spec), "people");
        assert_eq!(Naming::default().table(&spec), "credvault_part1_people");
        spec.destination = Some("credvault_stage_people".into());
        spec.stands_for = Some("people".into());
        assert_eq!(Naming::default().table(&spec), "people");
        assert_eq!(
            row_name("people", Some("crm")),
            "people (from source `crm`)"
        );
    }
}
