//! Type conversion between column types. A conversion either keeps the
//! value exactly or fails with a message saying what was expected: nothing
//! is rounded, truncated or shifted silently.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

use crate::model::value::{
    ColumnType, Value, date_from_days, days_from_date, describe, micros_from_time,
    micros_from_timestamp, parse_uuid, time_from_micros, timestamp_from_micros, to_text, type_name,
    value_type,
};

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// A value that cannot become the type asked for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConvertError {
    /// No exact (or opted-into lossy) conversion: `got` describes the
    /// value, e.g. `text "12x"`.
    #[error("expected {}{}, got {got}", type_name(*to), hint(*to))]
    Mismatch {
        /// The type asked for.
        to: ColumnType,
        /// The value, described.
        got: String,
    },
    /// A JSON value (from a flagged-row export) that does not read as `to`.
    #[error("{json} cannot be read as {}", type_name(*to))]
    Json {
        /// The JSON value, as text.
        json: String,
        /// The type asked for.
        to: ColumnType,
    },
}

/// Converts `value` to type `to`; null stays null.
pub fn convert(value: Value, to: ColumnType) -> Result<Value, ConvertError> {
    match value_type(&value) {
        None => Ok(Value::Null),
        Some(from) if from == to => Ok(value),
        Some(_) => convert_other(&value, to).ok_or_else(|| mismatch(&value, to)),
    }
}

/// Like [`convert`], for a borrowed value (cloned only when it already has
/// the type).
pub fn convert_ref(value: &Value, to: ColumnType) -> Result<Value, ConvertError> {
    match value_type(value) {
        None => Ok(Value::Null),
        Some(from) if from == to => Ok(value.clone()),
        Some(_) => convert_other(value, to).ok_or_else(|| mismatch(value, to)),
    }
}

/// Like [`convert`], but where no exact conversion exists, allows the
/// nearest one a user opted into with `lossy = true`: floats and decimals
/// round to the nearest integer, decimals and big integers to the nearest
/// float, date-times truncate to their (UTC) date.
pub fn convert_lossy(value: Value, to: ColumnType) -> Result<Value, ConvertError> {
    let nearest = match (&value, to) {
        (Value::Float(f), ColumnType::Int) if f.is_finite() && f.abs() < 9.2e18 => {
            Some(Value::Int(f.round() as i64))
        }
        (Value::Decimal(d), ColumnType::Int) => round_decimal(d).map(Value::Int),
        (Value::Decimal(d), ColumnType::Float) => d.parse().ok().map(Value::Float),
        (Value::Int(i), ColumnType::Float) => Some(Value::Float(*i as f64)),
        (Value::Timestamp(t) | Value::Timestamptz(t), ColumnType::Date) => {
            Some(Value::Date(t.div_euclid(MICROS_PER_DAY) as i32))
        }
        _ => None,
    };
    match convert(value, to) {
        Ok(exact) => Ok(exact),
        Err(err) => nearest.ok_or(err),
    }
}

/// Whether some value of type `from` can become `to`, so mapping one to
/// the other is not wrong for every row. Text parses into any type, and
/// every value has a text form.
pub fn convertible(from: ColumnType, to: ColumnType, lossy: bool) -> bool {
    use ColumnType as T;
    let exact = matches!(
        (from, to),
        (T::Int, T::Float | T::Decimal | T::Boolean)
            | (T::Boolean, T::Int)
            | (T::Float, T::Int | T::Decimal)
            | (T::Decimal, T::Float | T::Int)
            | (T::Date, T::Timestamp)
            | (T::Timestamp, T::Date | T::Timestamptz)
            | (T::Timestamptz, T::Timestamp)
    );
    from == to
        || from == T::Text
        || to == T::Text
        || exact
        || (lossy && from == T::Timestamptz && to == T::Date)
}

/// The error for a value that cannot become `to`.
pub fn mismatch(value: &Value, to: ColumnType) -> ConvertError {
    ConvertError::Mismatch {
        to,
        got: describe(value),
    }
}

/// What a value of type `to` looks like, for [`ConvertError::Mismatch`].
fn hint(to: ColumnType) -> &'static str {
    match to {
        ColumnType::Date => " like 2024-01-31",
        ColumnType::Time => " like 13:45:00",
        ColumnType::Timestamp => " like 2024-01-31 13:45:00",
        ColumnType::Timestamptz => " like 2024-01-31T13:45:00+02:00",
        ColumnType::Boolean => " (true/false, yes/no, 1/0)",
        ColumnType::Int => " (a whole number that fits in 64 bits)",
        _ => "",
    }
}

fn convert_other(value: &Value, to: ColumnType) -> Option<Value> {
    match (value, to) {
        (Value::Bytes(b), ColumnType::Text) => bytes_to_text(b).map(Value::Text),
        (value, ColumnType::Text) => has_text_form(value)
            .then(|| to_text(value))
            .flatten()
            .map(Value::Text),
        (Value::Text(text), to) => from_text(text, to),
        (Value::Int(i), ColumnType::Float) => exact_float(*i).map(Value::Float),
        (Value::Int(i), ColumnType::Decimal) => Some(Value::Decimal(i.to_string())),
        (Value::Int(0), ColumnType::Boolean) => Some(Value::Boolean(false)),
        (Value::Int(1), ColumnType::Boolean) => Some(Value::Boolean(true)),
        (Value::Boolean(b), ColumnType::Int) => Some(Value::Int(i64::from(*b))),
        (Value::Float(f), ColumnType::Int) => exact_int(*f).map(Value::Int),
        (Value::Float(f), ColumnType::Decimal) => {
            f.is_finite().then(|| Value::Decimal(f.to_string()))
        }
        (Value::Decimal(d), ColumnType::Float) => decimal_to_float(d).map(Value::Float),
        (Value::Decimal(d), ColumnType::Int) => canonical_decimal(d)?.parse().ok().map(Value::Int),
        // A day outside the calendar (past year 262143) has no timestamp;
        // the multiplication would overflow for the farthest ones.
        (Value::Date(d), ColumnType::Timestamp) => {
            date_from_days(*d)?;
            Some(Value::Timestamp(i64::from(*d) * MICROS_PER_DAY))
        }
        (Value::Timestamp(t), ColumnType::Date) => (t.rem_euclid(MICROS_PER_DAY) == 0)
            .then(|| Value::Date(t.div_euclid(MICROS_PER_DAY) as i32)),
        (Value::Timestamp(t), ColumnType::Timestamptz) => Some(Value::Timestamptz(*t)),
        (Value::Timestamptz(t), ColumnType::Timestamp) => Some(Value::Timestamp(*t)),
        _ => None,
    }
}

/// Bytes as their UTF-8 text, except text that reads back as a `\x` hex
/// escape (`from_text` would turn `\x41` into one byte): such bytes take
/// the hex form, so the text converts back to the same bytes.
fn bytes_to_text(bytes: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(bytes).ok()?;
    match text.trim().starts_with("\\x") {
        true => to_text(&Value::Bytes(bytes.to_vec())),
        false => Some(text.to_string()),
    }
}

/// Whether `to_text` gives text that reads back as the value: dates and
/// times outside chrono's calendar (past year 262143, or a time of day
/// past 24 h) print as a count (`day 2147483647`) for messages only.
fn has_text_form(value: &Value) -> bool {
    match value {
        Value::Date(d) => date_from_days(*d).is_some(),
        Value::Time(t) => time_from_micros(*t).is_some(),
        Value::Timestamp(t) | Value::Timestamptz(t) => timestamp_from_micros(*t).is_some(),
        _ => true,
    }
}

/// Parses text as a value of type `to`.
pub fn from_text(text: &str, to: ColumnType) -> Option<Value> {
    let t = text.trim();
    Some(match to {
        ColumnType::Text => Value::Text(text.to_string()),
        ColumnType::Boolean => Value::Boolean(parse_bool(t)?),
        ColumnType::Int => Value::Int(t.parse().ok()?),
        ColumnType::Float => Value::Float(t.parse().ok()?),
        ColumnType::Decimal => Value::Decimal(canonical_decimal(t)?),
        ColumnType::Bytes => Value::Bytes(match t.strip_prefix("\\x") {
            Some(h) => hex::decode(h).ok()?,
            None => text.as_bytes().to_vec(),
        }),
        ColumnType::Date => Value::Date(days_from_date(
            NaiveDate::parse_from_str(t, "%Y-%m-%d").ok()?,
        )),
        // A leap second (23:59:60) would be 24:00:00, not a time of day.
        ColumnType::Time => Value::Time(micros_from_time(
            NaiveTime::parse_from_str(t, "%H:%M:%S%.f")
                .ok()
                .filter(|t| t.nanosecond() < 1_000_000_000)?,
        )),
        ColumnType::Timestamp => Value::Timestamp(micros_from_timestamp(parse_naive_timestamp(t)?)),
        ColumnType::Timestamptz => Value::Timestamptz(parse_timestamptz(t)?),
        ColumnType::Uuid => Value::Uuid(parse_uuid(t)?),
        ColumnType::Json => {
            serde_json::from_str::<serde_json::Value>(t).ok()?;
            Value::Json(t.to_string())
        }
    })
}

/// Reads back a value written by [`crate::model::value::to_json`] (or edited by a
/// person in a flagged-row export) as a value of type `to`.
pub fn from_json(json: &serde_json::Value, to: ColumnType) -> Result<Value, ConvertError> {
    use serde_json::Value as J;
    let value = match (json, to) {
        (J::Null, _) => Some(Value::Null),
        (J::Bool(b), ColumnType::Boolean) => Some(Value::Boolean(*b)),
        (J::Number(n), ColumnType::Int) => n.as_i64().map(Value::Int),
        (J::Number(n), ColumnType::Float) => n.as_f64().map(Value::Float),
        (J::Number(n), _) => from_text(&n.to_string(), to),
        (J::Bool(b), _) => from_text(&b.to_string(), to),
        (J::String(s), _) => from_text(s, to),
        (J::Array(_) | J::Object(_), ColumnType::Json) => Some(Value::Json(json.to_string())),
        _ => None,
    };
    value.ok_or_else(|| ConvertError::Json {
        json: json.to_string(),
        to,
    })
}

fn parse_bool(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" | "1" | "on" => Some(true),
        "false" | "f" | "no" | "n" | "0" | "off" => Some(false),
        _ => None,
    }
}

fn parse_naive_timestamp(t: &str) -> Option<NaiveDateTime> {
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(t, "%Y-%m-%d")
            .ok()?
            .and_hms_opt(0, 0, 0)
    })
}

/// An instant needs a zone: text without one is refused rather than guessed.
/// RFC 3339 has four-digit years; the last form takes the signed years
/// beyond 0000–9999 that `to_text` prints (`+10000-01-01T00:00:00Z`).
fn parse_timestamptz(t: &str) -> Option<i64> {
    let parsed = DateTime::parse_from_rfc3339(t)
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S%.f%#z"))
        .or_else(|_| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%#z"))
        .ok()?;
    Some(parsed.timestamp_micros())
}

/// Canonical decimal text: optional sign, digits, optional fraction; the
/// scale (trailing zeros) is kept because it is part of the value's meaning.
fn canonical_decimal(t: &str) -> Option<String> {
    let (sign, digits) = match t.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", t.strip_prefix('+').unwrap_or(t)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    Some(match frac.is_empty() {
        true => format!("{sign}{int}"),
        false => format!("{sign}{int}.{frac}"),
    })
}

/// A decimal becomes a float only if the float holds it exactly.
fn decimal_to_float(d: &str) -> Option<f64> {
    let f: f64 = d.parse().ok()?;
    let canonical = canonical_decimal(d)?;
    let trimmed = match canonical.split_once('.') {
        Some((i, frac)) if frac.trim_end_matches('0').is_empty() => i.to_string(),
        Some((i, frac)) => format!("{i}.{}", frac.trim_end_matches('0')),
        None => canonical,
    };
    (f.to_string() == trimmed).then_some(f)
}

/// A decimal rounded half away from zero (as `f64::round`) on its digits:
/// through a float, 9007199254740993.4 would become ...994.
fn round_decimal(d: &str) -> Option<i64> {
    let canonical = canonical_decimal(d.trim())?;
    let (negative, digits) = match canonical.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, canonical.as_str()),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut n: i128 = int.parse().ok()?;
    if frac.starts_with(['5', '6', '7', '8', '9']) {
        n += 1;
    }
    i64::try_from(if negative { -n } else { n }).ok()
}

fn exact_float(i: i64) -> Option<f64> {
    let f = i as f64;
    (f as i64 == i && i.unsigned_abs() <= 1 << 53).then_some(f)
}

fn exact_int(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

/// A value written in the migration file (a `map` entry or a `default`).
pub fn from_toml(value: &toml::Value) -> Value {
    match value {
        toml::Value::String(s) => Value::Text(s.clone()),
        toml::Value::Integer(i) => Value::Int(*i),
        toml::Value::Float(f) => Value::Float(*f),
        toml::Value::Boolean(b) => Value::Boolean(*b),
        other => Value::Text(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_comes_back_from_its_json_form() {
        let values = [
            Value::Boolean(false),
            Value::Int(-9_007_199_254_740_993),
            Value::Float(0.1),
            Value::Float(f64::NAN),
            Value::Decimal("12.300".into()),
            Value::Text(" padded ".into()),
            Value::Bytes(vec![0, 255, 92]),
            Value::Date(-719_162),
            Value::Time(86_399_999_999),
            Value::Timestamp(1_700_000_000_123_456),
            Value::Timestamptz(-1),
            Value::Uuid((u64::MAX, 7)),
            Value::Json(r#"{"a":[1,2]}"#.into()),
        ];
        for value in values {
            let t = value_type(&value).unwrap();
            let back = from_json(&crate::model::value::to_json(&value), t).unwrap();
            assert_eq!(to_text(&back), to_text(&value), "{value:?}");
        }
        assert_eq!(
            from_json(&serde_json::json!({"a": 1}), ColumnType::Json),
            Ok(Value::Json(r#"{"a":1}"#.into()))
        );
        assert_eq!(
            from_json(&serde_json::json!("x"), ColumnType::Int).map_err(|e| e.to_string()),
            Err(r#""x" cannot be read as int"#.into())
        );
    }

    #[test]
    fn convertible_agrees_with_convert() {
        let samples = [
            Value::Boolean(true),
            Value::Int(1),
            Value::Float(1.0),
            Value::Decimal("1".into()),
            Value::Text("1".into()),
            Value::Bytes(b"1".to_vec()),
            Value::Date(0),
            Value::Time(0),
            Value::Timestamp(0),
            Value::Timestamptz(0),
            Value::Uuid((0, 1)),
            Value::Json("1".into()),
        ];
        for value in &samples {
            let from = value_type(value).unwrap();
            for to in crate::model::value::ALL_TYPES {
                for lossy in [false, true] {
                    let converted = match lossy {
                        true => convert_lossy(value.clone(), to),
                        false => convert(value.clone(), to),
                    };
                    if converted.is_ok() {
                        assert!(convertible(from, to, lossy), "{from:?} → {to:?}");
                    }
                }
            }
        }
        assert!(!convertible(ColumnType::Date, ColumnType::Int, true));
        assert!(!convertible(ColumnType::Uuid, ColumnType::Boolean, false));
    }

    #[test]
    fn text_converts_to_every_type_or_says_why_not() {
        assert_eq!(
            convert(Value::Text(" 42 ".into()), ColumnType::Int),
            Ok(Value::Int(42))
        );
        assert_eq!(
            convert(Value::Text("yes".into()), ColumnType::Boolean),
            Ok(Value::Boolean(true))
        );
        assert_eq!(
            convert(Value::Text("007.50".into()), ColumnType::Decimal),
            Ok(Value::Decimal("7.50".into()))
        );
        let err = convert(Value::Text("12x".into()), ColumnType::Int)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("expected int") && err.contains("\"12x\""),
            "{err}"
        );
        assert!(
            convert(
                Value::Text("2024-01-31 10:00".into()),
                ColumnType::Timestamptz
            )
            .is_err(),
            "a zone is required"
        );
        assert_eq!(
            convert(
                Value::Text("2024-01-31T10:00:00.000001+01:00".into()),
                ColumnType::Timestamptz
            ),
            Ok(Value::Timestamptz(1_706_691_600_000_001))
        );
    }

    #[test]
    fn lossy_conversions_are_refused() {
        assert!(convert(Value::Float(1.5), ColumnType::Int).is_err());
        assert_eq!(
            convert(Value::Float(2.0), ColumnType::Int),
            Ok(Value::Int(2))
        );
        assert!(convert(Value::Int(i64::MAX), ColumnType::Float).is_err());
        assert!(
            convert(
                Value::Decimal("0.1000000000000000000001".into()),
                ColumnType::Float
            )
            .is_err()
        );
        assert_eq!(
            convert(Value::Decimal("2.50".into()), ColumnType::Float),
            Ok(Value::Float(2.5))
        );
        assert!(convert(Value::Timestamp(1), ColumnType::Date).is_err());
        assert!(convert(Value::Int(2), ColumnType::Boolean).is_err());
    }

    #[test]
    fn lossy_conversions_need_the_opt_in() {
        assert_eq!(
            convert_lossy(Value::Float(2.5), ColumnType::Int),
            Ok(Value::Int(3))
        );
        assert_eq!(
            convert_lossy(
                Value::Decimal("0.1000000000000000000001".into()),
                ColumnType::Float
            ),
            Ok(Value::Float(0.1))
        );
        assert_eq!(
            convert_lossy(Value::Timestamp(86_400_000_001), ColumnType::Date),
            Ok(Value::Date(1))
        );
        assert!(
            convert_lossy(Value::Text("abc".into()), ColumnType::Int).is_err(),
            "not a number is never made one"
        );
        assert_eq!(
            convert_lossy(Value::Int(2), ColumnType::Float),
            Ok(Value::Float(2.0)),
            "exact stays exact"
        );
    }

    // Found by fuzz/fuzz_targets/convert.rs; the inputs are the minimized
    // crashes.

    #[test]
    fn a_date_outside_the_calendar_has_no_timestamp() {
        // The day times 86400 s overflowed i64: a panic under overflow
        // checks, a wrong timestamp without them.
        assert!(convert(Value::Date(-126_484_736), ColumnType::Timestamp).is_err());
        assert!(convert(Value::Date(i32::MAX), ColumnType::Timestamp).is_err());
        assert_eq!(
            convert(Value::Date(-1), ColumnType::Timestamp),
            Ok(Value::Timestamp(-86_400_000_000))
        );
    }

    #[test]
    fn values_outside_the_calendar_do_not_become_text() {
        // They printed as `day -118147366` or `1159660514428 µs`, text that
        // no conversion reads back.
        for value in [
            Value::Date(-118_147_366),
            Value::Time(1_159_660_514_428),
            Value::Timestamp(i64::MAX),
            Value::Timestamptz(i64::MIN),
        ] {
            let err = convert(value.clone(), ColumnType::Text)
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("expected text, got "), "{err}");
        }
    }

    #[test]
    fn timestamptz_text_beyond_four_digit_years_reads_back() {
        // 10000-01-01T00:00:00Z and -0001-12-31T23:59:59.999999Z.
        for micros in [253_402_300_800_000_000, -62_167_219_200_000_001] {
            let value = Value::Timestamptz(micros);
            let text = convert(value.clone(), ColumnType::Text).unwrap();
            assert_eq!(convert(text, ColumnType::Timestamptz), Ok(value));
        }
    }

    // Found while writing the fuzz properties (the round trips the
    // convert target checks).

    #[test]
    fn bytes_that_spell_a_hex_escape_keep_their_bytes_through_text() {
        let bytes = Value::Bytes(b"\\x41".to_vec());
        let text = convert(bytes.clone(), ColumnType::Text).unwrap();
        assert_eq!(text, Value::Text("\\x5c783431".into()));
        assert_eq!(convert(text, ColumnType::Bytes), Ok(bytes));
        assert_eq!(
            convert(Value::Bytes(b" plain ".to_vec()), ColumnType::Text),
            Ok(Value::Text(" plain ".into()))
        );
    }

    #[test]
    fn a_leap_second_is_not_a_time_of_day() {
        // It parsed as 24:00:00 (86400000000 µs), which prints as a count.
        assert!(convert(Value::Text("23:59:60".into()), ColumnType::Time).is_err());
        assert_eq!(
            convert(Value::Text("23:59:59.5".into()), ColumnType::Time),
            Ok(Value::Time(86_399_500_000))
        );
    }

    #[test]
    fn lossy_decimals_round_on_their_digits() {
        // Through a float, ...993.4 rounded to ...994.
        let lossy = |d: &str| convert_lossy(Value::Decimal(d.into()), ColumnType::Int);
        assert_eq!(
            lossy("9007199254740993.4"),
            Ok(Value::Int(9_007_199_254_740_993))
        );
        assert_eq!(lossy("-2.5"), Ok(Value::Int(-3)));
        assert_eq!(lossy("0.49"), Ok(Value::Int(0)));
        assert_eq!(lossy("9223372036854775807.4"), Ok(Value::Int(i64::MAX)));
        assert!(lossy("9223372036854775807.5").is_err());
    }

    #[test]
    fn null_stays_null() {
        for t in crate::model::value::ALL_TYPES {
            assert_eq!(convert(Value::Null, t), Ok(Value::Null));
        }
    }
}
