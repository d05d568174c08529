//! Free space: what the run needs (the source tables' size, plus a copy of
//! each existing destination table it touches, which a restore point keeps
//! inside the destination) against what the destination has free.

use std::fmt;

use super::CheckResult;
use super::destination::{Destination, Target};
use crate::drivers::{ConnectorError, FreeSpace, Sink, Source};

const NAME: &str = "destination free space";

/// What the run will write, in bytes.
#[derive(Debug, Default)]
struct Need {
    rows: u64,
    copies: u64,
}

impl Need {
    fn total(&self) -> u64 {
        self.rows.saturating_add(self.copies)
    }
}

impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "about {}", size(self.total()))?;
        if self.copies > 0 {
            write!(
                f,
                " ({} of source tables + {} to copy existing tables for a restore point)",
                size(self.rows),
                size(self.copies)
            )?;
        }
        Ok(())
    }
}

pub(super) async fn check(
    source: &dyn Source,
    dest: &Destination,
    sink: &dyn Sink,
    targets: &[Target<'_>],
) -> CheckResult {
    let need = match needed(source, dest, targets).await {
        Ok(need) => need,
        Err(e) => return CheckResult::fail(NAME, format!("cannot estimate the space needed: {e}")),
    };
    let Some(check) = sink.healthcheck() else {
        return super::destination::unchecked(NAME, sink);
    };
    match check.free_space().await {
        Ok(free) => judge(&need, free),
        Err(e) => CheckResult::fail(NAME, e.to_string()),
    }
}

fn judge(need: &Need, free: FreeSpace) -> CheckResult {
    match free {
        FreeSpace::Known { bytes, path } if need.total() > bytes => CheckResult::fail(
            NAME,
            format!(
                "the run needs {need} but only {} is free on the filesystem of {}: free some space there, or choose another destination",
                size(bytes),
                path.display()
            ),
        ),
        FreeSpace::Known { bytes, path } => CheckResult::pass(
            NAME,
            format!(
                "{} free on the filesystem of {}; the run needs {need}",
                size(bytes),
                path.display()
            ),
        ),
        FreeSpace::Unknown(why) => CheckResult::pass(
            NAME,
            format!("unknown, so not compared: {why}; the run needs {need}"),
        ),
    }
}

async fn needed(
    source: &dyn Source,
    dest: &Destination,
    targets: &[Target<'_>],
) -> Result<Need, ConnectorError> {
    let mut need = Need::default();
    for t in targets.iter().filter(|t| !t.done()) {
        need.rows += source.size_bytes(&t.plan.source).await?.unwrap_or(0);
        let existing = dest.table(t.table()).filter(|_| t.copied());
        if let Some(info) = existing {
            need.copies += dest.reader.size_bytes(info).await?.unwrap_or(0);
        }
    }
    Ok(need)
}

/// Bytes for people: `512 B`, `3.4 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(size(512), "512 B");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn unknown_free_space_passes_with_its_reason() {
        let need = Need {
            rows: 2048,
            copies: 1024,
        };
        let unknown = judge(
            &need,
            FreeSpace::Unknown("the server runs elsewhere".into()),
        );
        assert!(unknown.passed);
        assert!(
            unknown
                .detail
                .contains("unknown, so not compared: the server runs elsewhere")
                && unknown
                    .detail
                    .contains("about 3.0 KiB (2.0 KiB of source tables + 1.0 KiB"),
            "{}",
            unknown.detail
        );
        let full = FreeSpace::Known {
            bytes: 1000,
            path: "/mnt/small".into(),
        };
        let short = judge(&need, full);
        assert!(
            !short.passed && short.detail.contains("only 1000 B is free"),
            "{}",
            short.detail
        );
    }
}
