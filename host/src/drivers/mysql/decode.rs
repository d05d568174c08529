//! Decoding values of the binary protocol into the row model, by column
//! kind. The driver hands over raw bytes; decoding them here (rather than
//! through sqlx's typed decoders) keeps zero dates and out-of-range times
//! visible instead of turning them into NULL or an error for the whole
//! table.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

use super::types::Kind;
use crate::model::value::{
    Value, days_from_date, micros_from_time, micros_from_timestamp, parse_uuid,
};

/// Why a binary-protocol value's bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Decimal or JSON text that is not UTF-8.
    #[error("text that is not UTF-8")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// A fixed-size value of the wrong length.
    #[error("{len} bytes where {expected} were expected")]
    Size { len: usize, expected: usize },
    /// An integer of a width the protocol does not send.
    #[error("an integer of {0} bytes")]
    IntWidth(usize),
    /// A float whose shortest text does not parse back (never expected).
    #[error("a float {value} without a decimal form")]
    FloatForm {
        value: String,
        #[source]
        source: std::num::ParseFloatError,
    },
    /// A date, date-time or time without its length byte (`what` names it).
    #[error("an empty {0}")]
    Empty(&'static str),
    /// A date, date-time or time shorter than its length byte says.
    #[error("a truncated {0}")]
    Truncated(&'static str),
}

/// Decodes one non-null value. A value the row model cannot hold as its
/// column's type (a zero date, a negative time, 2 in a `tinyint(1)`) is
/// handed on as text or int, so the mapping reports it as a row error that
/// names the value; `Err` means the bytes themselves are malformed.
pub(super) fn decode(kind: Kind, raw: &[u8]) -> Result<Value, DecodeError> {
    Ok(match kind {
        Kind::Bool => match int(raw, true)? {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            other => Value::Int(other as i64),
        },
        Kind::Signed => Value::Int(int(raw, true)? as i64),
        Kind::Unsigned => {
            let v = int(raw, false)?;
            i64::try_from(v).map_or_else(|_| Value::Decimal(v.to_string()), Value::Int)
        }
        Kind::BigUnsigned => Value::Decimal(int(raw, false)?.to_string()),
        Kind::Decimal => Value::Decimal(text(raw)?),
        Kind::Float => Value::Float(single(raw)?),
        Kind::Double => Value::Float(f64::from_le_bytes(fixed(raw)?)),
        Kind::Text => match std::str::from_utf8(raw) {
            Ok(s) => Value::Text(s.to_string()),
            Err(_) => Value::Bytes(raw.to_vec()),
        },
        Kind::Json => Value::Json(text(raw)?),
        Kind::Bytes => Value::Bytes(raw.to_vec()),
        Kind::Date => date(raw)?,
        Kind::Time => time(raw)?,
        Kind::DateTime => datetime(raw, Value::Timestamp)?,
        Kind::DateTimeUtc | Kind::Timestamp => datetime(raw, Value::Timestamptz)?,
        Kind::Bit => bits(raw).map_or_else(|| Value::Bytes(raw.to_vec()), Value::Int),
        Kind::BitWide => Value::Decimal(bits_wide(raw).to_string()),
        Kind::Uuid => uuid(raw)?,
    })
}

fn text(raw: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(raw.to_vec()).map_err(DecodeError::NotUtf8)
}

fn fixed<const N: usize>(raw: &[u8]) -> Result<[u8; N], DecodeError> {
    raw.try_into().map_err(|_| DecodeError::Size {
        len: raw.len(),
        expected: N,
    })
}

/// A little-endian integer of 1, 2, 4 or 8 bytes (the width follows the
/// column's wire type), sign-extended when `signed`.
fn int(raw: &[u8], signed: bool) -> Result<i128, DecodeError> {
    Ok(match (raw.len(), signed) {
        (1, true) => i128::from(raw[0] as i8),
        (1, false) => i128::from(raw[0]),
        (2, true) => i128::from(i16::from_le_bytes(fixed(raw)?)),
        (2, false) => i128::from(u16::from_le_bytes(fixed(raw)?)),
        (4, true) => i128::from(i32::from_le_bytes(fixed(raw)?)),
        (4, false) => i128::from(u32::from_le_bytes(fixed(raw)?)),
        (8, true) => i128::from(i64::from_le_bytes(fixed(raw)?)),
        (8, false) => i128::from(u64::from_le_bytes(fixed(raw)?)),
        (n, _) => return Err(DecodeError::IntWidth(n)),
    })
}

/// A `float` becomes the double its shortest decimal form denotes (0.1, as
/// the server prints it, not 0.10000000149011612): written back into a
/// `float` it is the same number, and it reads as the user expects.
fn single(raw: &[u8]) -> Result<f64, DecodeError> {
    let f = f32::from_le_bytes(fixed(raw)?);
    f.to_string()
        .parse()
        .map_err(|source| DecodeError::FloatForm {
            value: f.to_string(),
            source,
        })
}

/// `bit(n)` arrives big-endian in ⌈n/8⌉ bytes.
fn bits(raw: &[u8]) -> Option<i64> {
    i64::try_from(bits_wide(raw)).ok()
}

fn bits_wide(raw: &[u8]) -> u64 {
    raw.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// The parts of a binary DATE/DATETIME/TIMESTAMP: a length byte (0, 4, 7
/// or 11), then year (2 bytes), month, day, hour, minute, second and
/// microseconds (4 bytes), absent parts being zero.
fn date_parts(raw: &[u8]) -> Result<[u32; 7], DecodeError> {
    let len = usize::from(*raw.first().ok_or(DecodeError::Empty("date"))?);
    let body = raw.get(1..1 + len).ok_or(DecodeError::Truncated("date"))?;
    let mut parts = [0u32; 7];
    if len >= 4 {
        parts[0] = u32::from(u16::from_le_bytes([body[0], body[1]]));
        parts[1] = u32::from(body[2]);
        parts[2] = u32::from(body[3]);
    }
    if len >= 7 {
        parts[3] = u32::from(body[4]);
        parts[4] = u32::from(body[5]);
        parts[5] = u32::from(body[6]);
    }
    if len >= 11 {
        parts[6] = u32::from_le_bytes([body[7], body[8], body[9], body[10]]);
    }
    Ok(parts)
}

/// The text MySQL prints for a date it holds but the calendar does not
/// (`0000-00-00`, `2024-02-00`).
fn date_text(p: &[u32; 7]) -> String {
    format!("{:04}-{:02}-{:02}", p[0], p[1], p[2])
}

fn date(raw: &[u8]) -> Result<Value, DecodeError> {
    let p = date_parts(raw)?;
    let valid = NaiveDate::from_ymd_opt(p[0] as i32, p[1], p[2]);
    Ok(valid.map_or_else(
        || Value::Text(date_text(&p)),
        |d| Value::Date(days_from_date(d)),
    ))
}

/// Microseconds since the epoch as the value `make` builds of them, or the
/// server's text for an impossible date-time (a zero date, say).
fn datetime(raw: &[u8], make: fn(i64) -> Value) -> Result<Value, DecodeError> {
    let p = date_parts(raw)?;
    let valid = NaiveDate::from_ymd_opt(p[0] as i32, p[1], p[2])
        .and_then(|d| d.and_hms_micro_opt(p[3], p[4], p[5], p[6]));
    Ok(valid.map(micros_from_timestamp).map_or_else(
        || {
            let mut text = format!("{} {:02}:{:02}:{:02}", date_text(&p), p[3], p[4], p[5]);
            if p[6] != 0 {
                text.push_str(&format!(".{:06}", p[6]));
            }
            Value::Text(text)
        },
        make,
    ))
}

/// A binary TIME: a length byte (0, 8 or 12), a sign byte, days (4 bytes),
/// hour, minute, second and microseconds (4 bytes). A time of day becomes a
/// `time`; a negative time or one of 24 h or more (MySQL's TIME is also an
/// interval, up to 838:59:59) is handed on as its text, `-01:30:00` or
/// `25:00:00`, which the mapping refuses as a time unless told otherwise.
fn time(raw: &[u8]) -> Result<Value, DecodeError> {
    let len = usize::from(*raw.first().ok_or(DecodeError::Empty("time"))?);
    let body = raw.get(1..1 + len).ok_or(DecodeError::Truncated("time"))?;
    if len < 8 {
        return Ok(Value::Time(0));
    }
    let negative = body[0] != 0;
    let days = u32::from_le_bytes([body[1], body[2], body[3], body[4]]);
    let (h, m, s) = (u32::from(body[5]), u32::from(body[6]), u32::from(body[7]));
    let micros = match len >= 12 {
        true => u32::from_le_bytes([body[8], body[9], body[10], body[11]]),
        false => 0,
    };
    let hours = days * 24 + h;
    if !negative
        && hours < 24
        && let Some(t) = NaiveTime::from_hms_micro_opt(hours, m, s, micros)
    {
        return Ok(Value::Time(micros_from_time(t)));
    }
    let sign = if negative { "-" } else { "" };
    let mut text = format!("{sign}{hours:02}:{m:02}:{s:02}");
    if micros != 0 {
        text.push_str(&format!(".{micros:06}"));
    }
    Ok(Value::Text(text))
}

/// MariaDB sends a UUID as its text; 16 raw bytes are accepted too.
fn uuid(raw: &[u8]) -> Result<Value, DecodeError> {
    if raw.len() == 16 {
        let hi = u64::from_be_bytes(fixed(&raw[..8])?);
        let lo = u64::from_be_bytes(fixed(&raw[8..])?);
        return Ok(Value::Uuid((hi, lo)));
    }
    let text = text(raw)?;
    Ok(parse_uuid(&text).map_or(Value::Text(text), Value::Uuid))
}

/// A timestamp as the naive text MySQL parses (`2024-01-31
/// 13:45:00.123456`), in UTC for a `timestamptz`; `None` outside chrono's
/// range. Written digit by digit: chrono's `format` parses its pattern for
/// every value, which showed as a tenth of a copy's CPU time.
pub(super) fn naive_text(micros: i64) -> Option<String> {
    let t: NaiveDateTime = crate::model::value::timestamp_from_micros(micros)?;
    let mut out = String::with_capacity(26);
    push_date(&mut out, t.date())?;
    out.push(' ');
    push_time(&mut out, t.time());
    Some(out)
}

/// A date as `YYYY-MM-DD`; `None` for years MySQL cannot hold.
pub(super) fn iso_date(date: NaiveDate) -> Option<String> {
    let mut out = String::with_capacity(10);
    push_date(&mut out, date)?;
    Some(out)
}

/// A time of day as `HH:MM:SS.ffffff`.
pub(super) fn time_text(time: NaiveTime) -> String {
    let mut out = String::with_capacity(15);
    push_time(&mut out, time);
    out
}

fn push_digits(out: &mut String, value: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = (value / 10u32.pow(i)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}

fn push_date(out: &mut String, date: NaiveDate) -> Option<()> {
    use chrono::Datelike;
    let year = u32::try_from(date.year()).ok().filter(|y| *y <= 9999)?;
    push_digits(out, year, 4);
    out.push('-');
    push_digits(out, date.month(), 2);
    out.push('-');
    push_digits(out, date.day(), 2);
    Some(())
}

fn push_time(out: &mut String, time: NaiveTime) {
    use chrono::Timelike;
    push_digits(out, time.hour(), 2);
    out.push(':');
    push_digits(out, time.minute(), 2);
    out.push(':');
    push_digits(out, time.second(), 2);
    out.push('.');
    push_digits(out, time.nanosecond() / 1_000, 6);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::value::to_text;

    #[test]
    fn zero_and_partial_dates_stay_visible_as_text() {
        assert_eq!(
            decode(Kind::Date, &[0]),
            Ok(Value::Text("0000-00-00".into()))
        );
        let feb_zero = [4, 0xe8, 0x07, 2, 0];
        assert_eq!(
            decode(Kind::Date, &feb_zero),
            Ok(Value::Text("2024-02-00".into()))
        );
        assert_eq!(
            decode(Kind::DateTime, &[0]),
            Ok(Value::Text("0000-00-00 00:00:00".into()))
        );
    }

    #[test]
    fn datetimes_keep_microseconds() {
        let raw = [11, 0xe8, 0x07, 1, 31, 13, 45, 0, 0x40, 0xe2, 0x01, 0];
        let v = decode(Kind::DateTime, &raw).unwrap();
        assert_eq!(to_text(&v).unwrap(), "2024-01-31 13:45:00.123456");
    }

    #[test]
    fn times_outside_a_day_become_text() {
        let neg = [8, 1, 0, 0, 0, 0, 1, 30, 0];
        assert_eq!(
            decode(Kind::Time, &neg),
            Ok(Value::Text("-01:30:00".into()))
        );
        let long = [8, 0, 1, 0, 0, 0, 1, 0, 0];
        assert_eq!(
            decode(Kind::Time, &long),
            Ok(Value::Text("25:00:00".into()))
        );
        let ok = [12, 0, 0, 0, 0, 0, 23, 59, 59, 1, 0, 0, 0];
        assert_eq!(
            to_text(&decode(Kind::Time, &ok).unwrap()).unwrap(),
            "23:59:59.000001"
        );
    }

    #[test]
    fn integers_keep_their_sign_and_range() {
        assert_eq!(decode(Kind::Signed, &[0xff]), Ok(Value::Int(-1)));
        assert_eq!(decode(Kind::Unsigned, &[0xff]), Ok(Value::Int(255)));
        assert_eq!(
            decode(Kind::BigUnsigned, &[0xff; 8]),
            Ok(Value::Decimal("18446744073709551615".into()))
        );
        assert_eq!(decode(Kind::Bool, &[2]), Ok(Value::Int(2)));
        assert_eq!(decode(Kind::Bit, &[0x01, 0x02]), Ok(Value::Int(258)));
    }

    #[test]
    fn temporal_values_print_as_mysql_reads_them() {
        assert_eq!(
            naive_text(1_706_708_700_123_456).as_deref(),
            Some("2024-01-31 13:45:00.123456")
        );
        assert_eq!(naive_text(0).as_deref(), Some("1970-01-01 00:00:00.000000"));
        let d = NaiveDate::from_ymd_opt(1, 2, 3).unwrap();
        assert_eq!(iso_date(d).as_deref(), Some("0001-02-03"));
        assert_eq!(iso_date(NaiveDate::from_ymd_opt(-5, 1, 1).unwrap()), None);
        let t = NaiveTime::from_hms_micro_opt(9, 5, 7, 42).unwrap();
        assert_eq!(time_text(t), "09:05:07.000042");
    }

    #[test]
    fn floats_read_as_the_server_prints_them() {
        assert_eq!(
            decode(Kind::Float, &0.1f32.to_le_bytes()),
            Ok(Value::Float(0.1))
        );
    }
}
