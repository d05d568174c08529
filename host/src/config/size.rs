//! Byte sizes as people write them in a migration file (`"1GB"`,
//! `"512MB"`), with PostgreSQL's units: a kB is 1024 bytes, as in
//! postgresql.conf, so `max_lag` and `max_slot_wal_keep_size` read alike.

const UNITS: [(&str, u64); 5] = [
    ("TB", 1 << 40),
    ("GB", 1 << 30),
    ("MB", 1 << 20),
    ("kB", 1 << 10),
    ("B", 1),
];

/// A byte size that does not parse: the text as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a byte size; write a number with a unit, e.g. \"1GB\", \"512MB\" or \"64kB\""
)]
pub struct SizeError(pub String);

/// Parses `"1GB"`, `"512 MB"`, `"64kB"`, `"1.5GB"` or a plain number of
/// bytes. Units are case-insensitive and may end in `iB` (`MiB`).
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let bad = || SizeError(text.to_string());
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = (t[..split].trim(), t[split..].trim());
    let number: f64 = number.parse().map_err(|_| bad())?;
    let unit = unit
        .strip_suffix("iB")
        .map_or(unit.to_string(), |u| format!("{u}B"));
    let factor = match unit.as_str() {
        "" => 1,
        u => UNITS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(u))
            .map(|(_, f)| *f)
            .ok_or_else(bad)?,
    };
    let bytes = number * factor as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// A byte count for people: `451.2 MB`, `12 kB`, `0 B`.
pub fn show_size(bytes: u64) -> String {
    for (name, factor) in UNITS {
        if bytes >= factor && factor > 1 {
            let value = bytes as f64 / factor as f64;
            return match value < 10.0 {
                true => format!("{value:.1} {name}"),
                false => format!("{value:.0} {name}"),
            };
        }
    }
    format!("{bytes} B")
}

#[cfg(test)]
mod tests {
    use super::{parse_size, show_size};

    #[test]
    fn sizes_parse_with_postgres_units_and_print_back() {
        assert_eq!(parse_size("1GB"), Ok(1 << 30));
        assert_eq!(parse_size("512 MB"), Ok(512 << 20));
        assert_eq!(parse_size("64kb"), Ok(64 << 10));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1.5GB"), Ok(3 << 29));
        assert_eq!(parse_size("1000"), Ok(1000));
        for bad in ["", "GB", "1 GiGa", "-1GB", "1e3", "lots"] {
            let err = parse_size(bad).expect_err(bad).to_string();
            assert!(err.contains("is not a byte size"), "{err}");
        }
        assert_eq!(show_size(0), "0 B");
        assert_eq!(show_size(1023), "1023 B");
        assert_eq!(show_size(1536), "1.5 kB");
        assert_eq!(show_size(451 << 20), "451 MB");
        assert_eq!(show_size(3 << 30), "3.0 GB");
    }
}
