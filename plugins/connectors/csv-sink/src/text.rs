//! Values as CSV text, the same forms the native CSV connector writes.

use credvault_sdk::Value;

/// A value's field text; NULL is the empty field.
pub fn field(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(s) | Value::Text(s) | Value::Json(s) => s.clone(),
        Value::Bytes(b) => format!(
            "\\x{}",
            b.iter().map(|x| format!("{x:02x}")).collect::<String>()
        ),
        Value::Date(days) => date(*days),
        Value::Time(us) => time(*us),
        Value::Timestamp(us) => timestamp(*us),
        Value::Timestamptz(us) => format!("{}Z", timestamp(*us)),
        Value::Uuid((hi, lo)) => uuid(*hi, *lo),
    }
}

/// Days since 1970-01-01 as YYYY-MM-DD (Howard Hinnant's civil_from_days).
fn date(days: i32) -> String {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn time(us: u64) -> String {
    let (secs, frac) = (us / 1_000_000, us % 1_000_000);
    let base = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    match frac {
        0 => base,
        f => format!("{base}.{f:06}"),
    }
}

fn timestamp(us: i64) -> String {
    let days = us.div_euclid(86_400_000_000);
    let rest = us.rem_euclid(86_400_000_000) as u64;
    format!("{}T{}", date(days as i32), time(rest))
}

fn uuid(hi: u64, lo: u64) -> String {
    let h = format!("{hi:016x}{lo:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_like_the_native_csv_connector() {
        assert_eq!(field(&Value::Date(0)), "1970-01-01");
        assert_eq!(field(&Value::Date(19_723)), "2024-01-01");
        assert_eq!(field(&Value::Date(-1)), "1969-12-31");
        assert_eq!(
            field(&Value::Timestamptz(1_500_000)),
            "1970-01-01T00:00:01.500000Z"
        );
        assert_eq!(field(&Value::Null), "");
    }
}
