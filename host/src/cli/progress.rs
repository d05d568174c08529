//! Run progress: bars on a terminal, plain lines otherwise, JSON on request.

use std::collections::{BTreeMap, HashMap};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::ErrorPolicy;
use crate::engine::RowFailure;
use crate::jobs::{Observer, RunEvent};
use crate::state::RunCounts;

/// Row failures printed per table before the rest are only counted.
const SHOWN_FAILURES: u32 = 10;
/// How often plain-line progress is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Draws a run's events.
pub struct Reporter {
    mode: Mode,
    failures: HashMap<String, u32>,
    /// Put before each table's name: `[migration] ` when runs of several
    /// migrations share the terminal.
    prefix: String,
    /// Where each table stands, as its events said: what an interrupted
    /// run reports.
    tables: BTreeMap<String, Standing>,
    /// The run (its id and the number shown), once it started, and
    /// whether it finished (its validation may follow).
    run_id: Option<(i64, i64)>,
    run_finished: bool,
}

/// A table's rows committed so far, of how many; or why it needed no work.
#[derive(Debug, Clone)]
enum Standing {
    Moving {
        done: u64,
        total: u64,
        counts: RunCounts,
    },
    Finished {
        done: u64,
        counts: RunCounts,
    },
    Skipped(String),
}

enum Mode {
    Json,
    Bars {
        multi: MultiProgress,
        bars: HashMap<String, ProgressBar>,
    },
    Plain {
        last: Instant,
    },
}

impl Reporter {
    /// JSON events when asked, bars on a terminal, plain lines otherwise.
    pub fn new(json: bool) -> Self {
        let mode = if json {
            Mode::Json
        } else if std::io::stderr().is_terminal() {
            Mode::Bars {
                multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
                bars: HashMap::new(),
            }
        } else {
            Mode::Plain {
                last: Instant::now(),
            }
        };
        Self {
            mode,
            failures: HashMap::new(),
            prefix: String::new(),
            tables: BTreeMap::new(),
            run_id: None,
            run_finished: false,
        }
    }

    /// Another reporter drawing on the same terminal, for a run of
    /// `migration` beside this one's (`serve` runs several syncs at once):
    /// its own bars and counts, under the same set of bars, its tables
    /// named `[migration] table`.
    pub fn beside(&self, migration: &str) -> Self {
        let mode = match &self.mode {
            Mode::Json => Mode::Json,
            Mode::Bars { multi, .. } => Mode::Bars {
                multi: multi.clone(),
                bars: HashMap::new(),
            },
            Mode::Plain { .. } => Mode::Plain {
                last: Instant::now(),
            },
        };
        Self {
            mode,
            failures: HashMap::new(),
            prefix: format!("[{migration}] "),
            tables: BTreeMap::new(),
            run_id: None,
            run_finished: false,
        }
    }

    /// The run this reporter saw start (its id and number), and whether
    /// it finished copying.
    pub fn run(&self) -> Option<(i64, i64, bool)> {
        self.run_id
            .map(|(id, number)| (id, number, self.run_finished))
    }

    /// Each table the run reached, with the rows committed to it.
    pub fn committed(&self) -> Vec<String> {
        self.tables
            .iter()
            .map(|(table, standing)| match standing {
                Standing::Moving { done, total, .. } => {
                    format!("{table}: {done} of {total} rows committed")
                }
                Standing::Finished { done, .. } => format!("{table}: complete, {done} rows"),
                Standing::Skipped(why) => format!("{table}: skipped, {why}"),
            })
            .collect()
    }

    /// What the run committed, as its events said (rows skipped and
    /// flagged by a table still moving are counted as skipped).
    pub fn counts(&self) -> RunCounts {
        let mut total = RunCounts::default();
        for standing in self.tables.values() {
            if let Standing::Moving { counts, .. } | Standing::Finished { counts, .. } = standing {
                total.read += counts.read;
                total.written += counts.written;
                total.dropped += counts.dropped;
                total.skipped += counts.skipped;
                total.flagged += counts.flagged;
            }
        }
        total
    }

    /// Notes where a table stands.
    fn stand(&mut self, event: &RunEvent) {
        let Some(row) = event.row() else {
            match event {
                RunEvent::RunStarted { run_id, number, .. } => {
                    (self.run_id, self.run_finished) = (Some((*run_id, *number)), false)
                }
                RunEvent::RunFinished { .. } => self.run_finished = true,
                _ => {}
            }
            return;
        };
        let standing = match event {
            RunEvent::TableStarted {
                total, resumed_at, ..
            } => Standing::Moving {
                done: *resumed_at,
                total: *total,
                counts: RunCounts::default(),
            },
            RunEvent::Progress {
                done,
                total,
                written,
                errors,
                resumed_at,
                ..
            } => Standing::Moving {
                done: *done,
                total: *total,
                counts: RunCounts {
                    read: done - resumed_at,
                    written: *written,
                    skipped: *errors,
                    ..RunCounts::default()
                },
            },
            RunEvent::TableFinished { done, counts, .. } => Standing::Finished {
                done: *done,
                counts: *counts,
            },
            RunEvent::TableSkipped { reason, .. } => Standing::Skipped(reason.clone()),
            _ => return,
        };
        self.tables.insert(row, standing);
    }

    /// Leaves the terminal tidy.
    pub fn finish(&mut self) {
        if let Mode::Bars { multi, .. } = &self.mode {
            let _ = multi.clear();
        }
    }

    fn print(&self, line: &str) {
        match &self.mode {
            Mode::Bars { multi, .. } => {
                let _ = multi.println(line);
            }
            _ => note!("{line}"),
        }
    }
}

/// Seconds left as a bar or a line shows them (`?` before a row moved).
fn eta(eta_s: Option<f64>) -> String {
    eta_s.map_or("?".into(), |s| format!("{s:.0}s"))
}

/// A run's header: which run, of which migration, and for a step of a
/// sync or one source of several, which.
fn header(event: &RunEvent) -> String {
    let RunEvent::RunStarted {
        number,
        migration,
        tables,
        resumed_from,
        sync,
        source,
        ..
    } = event
    else {
        return String::new();
    };
    let from = source
        .as_ref()
        .map(|s| format!(" (source `{s}`)"))
        .unwrap_or_default();
    let resumed = resumed_from
        .map(|r| format!(", resuming interrupted run {r}"))
        .unwrap_or_default();
    match sync {
        Some(sync) => format!("sync {sync} of `{migration}`{from}: {tables} table(s){resumed}"),
        None => format!("run {number} of `{migration}`{from}: {tables} table(s){resumed}"),
    }
}

impl Observer for Reporter {
    fn on(&mut self, event: &RunEvent) {
        self.stand(event);
        if let Mode::Json = self.mode {
            out!(
                "{}",
                serde_json::to_string(event).expect("events serialize")
            );
            return;
        }
        let row = crate::model::text::untrusted(&event.row().unwrap_or_default()).into_owned();
        let row = format!("{}{row}", self.prefix);
        match event {
            RunEvent::RunStarted { .. } => self.print(&header(event)),
            RunEvent::RestorePoint(point) => {
                for name in &point.pruned {
                    self.print(&format!("restore point {name} expired and was removed"));
                }
                self.print(&format!(
                    "restore point {} ({} table(s), {} rows; kept until {})",
                    point.name,
                    point.tables,
                    point.rows,
                    super::restore::shown(&point.expires_at)
                ));
            }
            RunEvent::TableSkipped { reason, .. } => {
                self.print(&format!("{row}: skipped, {reason}"))
            }
            RunEvent::TableStarted {
                total,
                resumed_at,
                ranges,
                ..
            } => self.started(row, *total, *resumed_at, *ranges),
            RunEvent::Progress { .. } => self.progress(&row, event),
            RunEvent::Retrying {
                range,
                attempt,
                retries,
                delay_s,
                committed,
                error,
                ..
            } => {
                let range = range
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                let error = crate::model::text::untrusted(error);
                self.print(&format!(
                    "{error}; retry {attempt} of {retries} in {delay_s:.1} s, resuming `{row}`{range} after row {committed}"
                ));
            }
            RunEvent::RowFailed {
                failure, policy, ..
            } => self.failed(row, failure, *policy),
            RunEvent::TableFinished { .. } => self.finished(&row, event),
            RunEvent::CycleSettled {
                written, refused, ..
            } => self.print(&format!(
                "{row}: {written} row(s) refused for a missing parent written once the rows they refer to were in; {refused} still refused"
            )),
            RunEvent::RunFinished { .. } | RunEvent::Validated { .. } => {}
        }
    }
}

impl Reporter {
    fn started(&mut self, row: String, total: u64, resumed_at: u64, ranges: usize) {
        let split = match ranges {
            0 => String::new(),
            n => format!(" in {n} key ranges"),
        };
        match &mut self.mode {
            Mode::Bars { multi, bars } => {
                let bar = multi.add(ProgressBar::new(total).with_position(resumed_at));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>16} [{bar:30}] {percent:>3}% {human_pos}/{human_len} rows {msg}",
                    )
                    .expect("valid template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(row.clone());
                bars.insert(row, bar);
            }
            _ if resumed_at > 0 => {
                note!("{row}: resuming after row {resumed_at} of {total}{split}")
            }
            _ => note!("{row}: starting, {total} rows{split}"),
        }
    }

    /// Rate and ETA come with the event: this run's own pace, over the
    /// whole table when it moves in key ranges.
    fn progress(&mut self, row: &str, event: &RunEvent) {
        let RunEvent::Progress {
            done,
            total,
            written,
            errors,
            rows_per_s,
            eta_s,
            ..
        } = event
        else {
            return;
        };
        let pace = format!("{rows_per_s:.0} rows/s, ETA {}", eta(*eta_s));
        match &mut self.mode {
            Mode::Bars { bars, .. } => {
                if let Some(bar) = bars.get(row) {
                    bar.set_position(*done);
                    bar.set_message(format!("{pace}, errors: {errors}"));
                }
            }
            Mode::Plain { last } => {
                if last.elapsed() >= PLAIN_EVERY || done == total {
                    *last = Instant::now();
                    let pct = match *total {
                        0 => 100.0,
                        total => *done as f64 * 100.0 / total as f64,
                    };
                    note!(
                        "{row}: {pct:.1}% {done}/{total} rows, {written} written, {pace}, errors {errors}"
                    );
                }
            }
            Mode::Json => {}
        }
    }

    fn failed(&mut self, row: String, failure: &RowFailure, policy: ErrorPolicy) {
        let seen = self.failures.entry(row.clone()).or_default();
        *seen += 1;
        let seen = *seen;
        let verb = match policy {
            ErrorPolicy::Stop => "stopped",
            ErrorPolicy::Skip => "skipped",
            ErrorPolicy::Flag => "flagged",
        };
        if seen <= SHOWN_FAILURES {
            self.print(&format!("{verb}: {failure}"));
        } else if seen == SHOWN_FAILURES + 1 {
            self.print(&format!("{row}: more failed rows; see the summary"));
        }
    }

    fn finished(&mut self, row: &str, event: &RunEvent) {
        let RunEvent::TableFinished {
            counts,
            done,
            plugins,
            elapsed_s,
            ..
        } = event
        else {
            return;
        };
        if let Mode::Bars { bars, .. } = &mut self.mode
            && let Some(bar) = bars.remove(row)
        {
            bar.finish_and_clear();
        }
        let rate = counts.read as f64 / elapsed_s.max(1e-6);
        // A resumed run read only the rows its interrupted run had not.
        let resumed = match *done > counts.read {
            true => format!("; {done} rows in all, with the interrupted run's"),
            false => String::new(),
        };
        self.print(&format!(
            "{row}: done in {elapsed_s:.2}s, {} read, {} written, {} dropped, {} skipped, {} flagged ({rate:.0} rows/s){resumed}",
            counts.read, counts.written, counts.dropped, counts.skipped, counts.flagged
        ));
        for p in plugins {
            self.print(&format!(
                "  plugin {}: {} calls, {} instance(s), {} fuel, peak memory {:.1} MiB, {:.2}s; rows in {}, out {}, dropped {}, failed {}",
                p.plugin,
                p.calls,
                p.instances,
                p.fuel,
                p.peak_memory as f64 / (1024.0 * 1024.0),
                p.seconds,
                p.rows_in,
                p.rows_out,
                p.rows_dropped,
                p.rows_failed
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(sync: Option<i64>, source: Option<&str>) -> RunEvent {
        RunEvent::RunStarted {
            run_id: 9,
            number: 7,
            migration: "cronny".into(),
            tables: 1,
            resumed_from: None,
            sync,
            source: source.map(Into::into),
        }
    }

    #[test]
    fn a_run_s_header_names_the_sync_and_the_source_it_is_a_step_of() {
        assert_eq!(
            header(&started(None, None)),
            "run 7 of `cronny`: 1 table(s)"
        );
        assert_eq!(
            header(&started(Some(3), None)),
            "sync 3 of `cronny`: 1 table(s)"
        );
        assert_eq!(
            header(&started(None, Some("crm"))),
            "run 7 of `cronny` (source `crm`): 1 table(s)"
        );
    }

    #[test]
    fn an_eta_is_unknown_until_the_run_moved_a_row() {
        assert_eq!(eta(None), "?");
        assert_eq!(eta(Some(12.4)), "12s");
    }
}
