//! Run progress: bars on a terminal, plain lines otherwise, JSON on request.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::ErrorPolicy;
use crate::pipeline::{Observer, RunEvent};

/// Row failures printed per table before the rest are only counted.
const SHOWN_FAILURES: u32 = 10;
/// How often plain-line progress is printed.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// Draws a run's events.
pub struct Reporter {
    mode: Mode,
    failures: HashMap<String, u32>,
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
        }
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
            _ => eprintln!("{line}"),
        }
    }
}

fn eta(done: u64, total: u64, elapsed: f64) -> String {
    if done == 0 || done >= total {
        return "0s".into();
    }
    let secs = elapsed / done as f64 * (total - done) as f64;
    format!("{secs:.0}s")
}

impl Observer for Reporter {
    fn on(&mut self, event: &RunEvent) {
        if let Mode::Json = self.mode {
            out!(
                "{}",
                serde_json::to_string(event).expect("events serialize")
            );
            return;
        }
        match event {
            RunEvent::RunStarted {
                run_id,
                migration,
                tables,
                resumed_from,
            } => {
                let resumed = resumed_from
                    .map(|r| format!(", resuming interrupted run {r}"))
                    .unwrap_or_default();
                self.print(&format!(
                    "run {run_id} of `{migration}`: {tables} table(s){resumed}"
                ));
            }
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
            RunEvent::TableSkipped { table, reason } => {
                self.print(&format!("{table}: skipped, {reason}"))
            }
            RunEvent::TableStarted {
                table,
                total,
                resumed_at,
            } => match &mut self.mode {
                Mode::Bars { multi, bars } => {
                    let bar = multi.add(ProgressBar::new(*total));
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{prefix:>16} [{bar:30}] {percent:>3}% {human_pos}/{human_len} rows {per_sec:0} ETA {eta} {msg}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(table.clone());
                    bar.set_position(*resumed_at);
                    bars.insert(table.clone(), bar);
                }
                _ if *resumed_at > 0 => {
                    eprintln!("{table}: resuming after row {resumed_at} of {total}")
                }
                _ => eprintln!("{table}: starting, {total} rows"),
            },
            RunEvent::Progress {
                table,
                done,
                total,
                written,
                errors,
                elapsed_s,
            } => match &mut self.mode {
                Mode::Bars { bars, .. } => {
                    if let Some(bar) = bars.get(table) {
                        bar.set_position(*done);
                        bar.set_message(format!("errors: {errors}"));
                    }
                }
                Mode::Plain { last } => {
                    if last.elapsed() >= PLAIN_EVERY || done == total {
                        *last = Instant::now();
                        let pct = if *total == 0 {
                            100.0
                        } else {
                            *done as f64 * 100.0 / *total as f64
                        };
                        let rate = *done as f64 / elapsed_s.max(1e-6);
                        eprintln!(
                            "{table}: {pct:.1}% {done}/{total} rows, {written} written, {rate:.0} rows/s, ETA {}, errors {errors}",
                            eta(*done, *total, *elapsed_s)
                        );
                    }
                }
                Mode::Json => {}
            },
            RunEvent::RowFailed { failure, policy } => {
                let seen = self.failures.entry(failure.table.clone()).or_default();
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
                    self.print(&format!(
                        "{}: more failed rows; see the summary",
                        failure.table
                    ));
                }
            }
            RunEvent::TableFinished {
                table,
                counts,
                plugins,
                elapsed_s,
            } => {
                if let Mode::Bars { bars, .. } = &mut self.mode
                    && let Some(bar) = bars.remove(table)
                {
                    bar.finish_and_clear();
                }
                let rate = counts.read as f64 / elapsed_s.max(1e-6);
                self.print(&format!(
                    "{table}: done in {elapsed_s:.2}s, {} read, {} written, {} dropped, {} skipped, {} flagged ({rate:.0} rows/s)",
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
            RunEvent::RunFinished { .. } | RunEvent::Validated { .. } => {}
        }
    }
}
