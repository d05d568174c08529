//! PostgreSQL's binary COPY format, read and written directly: the fastest
//! way in and out of the server (no text parsing on either side).
//!
//! A stream is a header (signature, flags, extension), then tuples (an i16
//! field count, then per field an i32 length, -1 for NULL, and the bytes),
//! then an i16 -1. Every number is big-endian.

use crate::model::value::{Row, Value, date_from_days, timestamp_from_micros, to_text};

use super::error::{DecodeError, EncodeError};
use super::types::Binary;

/// The 11-byte signature that opens every binary COPY stream.
const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Days from 1970-01-01 (ours) to 2000-01-01 (PostgreSQL's epoch).
const EPOCH_DAYS: i32 = 10_957;

/// Microseconds from 1970-01-01 to 2000-01-01.
const EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Numeric sign words.
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// A field that could not be read or written: the column's index and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FieldError {
    /// The column's index in the row, when the error concerns one field.
    pub column: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    fn stream(message: impl Into<String>) -> Self {
        Self {
            column: None,
            message: message.into(),
        }
    }
}

/// What the buffer holds next.
enum Next {
    /// Not a whole tuple yet.
    Incomplete,
    /// The end-of-stream marker.
    Trailer,
    /// A tuple: its fields' byte ranges and where it ends.
    Tuple(Vec<std::ops::Range<usize>>, usize),
}

/// Reads tuples out of the chunks of a binary COPY stream. Chunks may split
/// a tuple anywhere; the unread tail waits for the next chunk.
pub(super) struct TupleReader {
    layouts: Vec<Binary>,
    buf: Vec<u8>,
    pos: usize,
    header_read: bool,
    ended: bool,
}

impl TupleReader {
    /// A reader for tuples whose fields have these layouts.
    pub fn new(layouts: Vec<Binary>) -> Self {
        Self {
            layouts,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            header_read: false,
            ended: false,
        }
    }

    /// Adds the next chunk of the stream.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
        } else if self.pos > 0 {
            self.buf.drain(..self.pos);
        }
        self.pos = 0;
        self.buf.extend_from_slice(chunk);
    }

    /// Whether the trailer has been read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next complete tuple, or `None` until more data arrives.
    pub fn next_row(&mut self) -> Result<Option<Row>, FieldError> {
        if !self.header_read && !self.read_header()? {
            return Ok(None);
        }
        if self.ended {
            return Ok(None);
        }
        match self.complete_tuple()? {
            Next::Incomplete => Ok(None),
            Next::Trailer => {
                self.ended = true;
                self.pos += 2;
                Ok(None)
            }
            Next::Tuple(fields, end) => {
                let row = self.decode(&fields)?;
                self.pos = end;
                Ok(Some(row))
            }
        }
    }

    fn read_header(&mut self) -> Result<bool, FieldError> {
        let rest = &self.buf[self.pos..];
        if rest.len() < 19 {
            return Ok(false);
        }
        if &rest[..11] != SIGNATURE {
            return Err(FieldError::stream(
                "not a binary COPY stream (bad signature)",
            ));
        }
        let ext = be_u32(&rest[15..19]) as usize;
        if rest.len() < 19 + ext {
            return Ok(false);
        }
        self.pos += 19 + ext;
        self.header_read = true;
        Ok(true)
    }

    /// Where the next tuple's fields are, if it is wholly buffered.
    fn complete_tuple(&self) -> Result<Next, FieldError> {
        let buf = &self.buf;
        let mut at = self.pos;
        if buf.len() < at + 2 {
            return Ok(Next::Incomplete);
        }
        let count = i16::from_be_bytes([buf[at], buf[at + 1]]);
        at += 2;
        if count == -1 {
            return Ok(Next::Trailer);
        }
        if count as usize != self.layouts.len() {
            return Err(FieldError::stream(format!(
                "a tuple has {count} fields, expected {}",
                self.layouts.len()
            )));
        }
        let mut fields = Vec::with_capacity(self.layouts.len());
        for _ in 0..count {
            if buf.len() < at + 4 {
                return Ok(Next::Incomplete);
            }
            let len = be_u32(&buf[at..at + 4]) as i32;
            at += 4;
            // A NULL (-1) is an empty range; `decode` tells it from an empty
            // value by the length word just before it.
            let len = usize::try_from(len).unwrap_or(0);
            if buf.len() < at + len {
                return Ok(Next::Incomplete);
            }
            fields.push(at..at + len);
            at += len;
        }
        Ok(Next::Tuple(fields, at))
    }

    fn decode(&self, fields: &[std::ops::Range<usize>]) -> Result<Row, FieldError> {
        let mut row = Vec::with_capacity(fields.len());
        for (i, (range, layout)) in fields.iter().zip(&self.layouts).enumerate() {
            let len_word = be_u32(&self.buf[range.start - 4..range.start]) as i32;
            if len_word == -1 {
                row.push(Value::Null);
                continue;
            }
            let value =
                decode_field(*layout, &self.buf[range.clone()]).map_err(|err| FieldError {
                    column: Some(i),
                    message: err.to_string(),
                })?;
            row.push(value);
        }
        Ok(row)
    }
}

fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// `N` bytes of a fixed-size field, or an error naming the layout.
fn fixed<const N: usize>(b: &[u8], what: &'static str) -> Result<[u8; N], DecodeError> {
    b.try_into().map_err(|_| DecodeError::FieldSize {
        what,
        len: b.len(),
        expected: N,
    })
}

fn utf8(b: &[u8]) -> Result<String, DecodeError> {
    String::from_utf8(b.to_vec()).map_err(DecodeError::NotUtf8)
}

/// Decodes one non-NULL field.
pub(super) fn decode_field(layout: Binary, b: &[u8]) -> Result<Value, DecodeError> {
    Ok(match layout {
        Binary::Bool => Value::Boolean(fixed::<1>(b, "bool")?[0] != 0),
        Binary::Int2 => Value::Int(i16::from_be_bytes(fixed(b, "int2")?).into()),
        Binary::Int4 => Value::Int(i32::from_be_bytes(fixed(b, "int4")?).into()),
        Binary::Int8 => Value::Int(i64::from_be_bytes(fixed(b, "int8")?)),
        Binary::Float4 => Value::Float(f32::from_be_bytes(fixed(b, "float4")?).into()),
        Binary::Float8 => Value::Float(f64::from_be_bytes(fixed(b, "float8")?)),
        Binary::Numeric => Value::Decimal(numeric_to_text(b)?),
        Binary::Text => Value::Text(utf8(b)?),
        Binary::Json => Value::Json(utf8(b)?),
        Binary::Jsonb => match b.split_first() {
            Some((1, text)) => Value::Json(utf8(text)?),
            _ => return Err(DecodeError::JsonbVersion),
        },
        Binary::Bytea => Value::Bytes(b.to_vec()),
        Binary::Date => date_from_pg(i32::from_be_bytes(fixed(b, "date")?)),
        Binary::Time => {
            let micros = i64::from_be_bytes(fixed(b, "time")?);
            Value::Time(u64::try_from(micros).map_err(|_| DecodeError::NegativeTime(micros))?)
        }
        Binary::Timestamp => timestamp_from_pg(i64::from_be_bytes(fixed(b, "timestamp")?), false),
        Binary::Timestamptz => {
            timestamp_from_pg(i64::from_be_bytes(fixed(b, "timestamptz")?), true)
        }
        Binary::Uuid => {
            let u = u128::from_be_bytes(fixed(b, "uuid")?);
            Value::Uuid(((u >> 64) as u64, u as u64))
        }
        // Sources select arrays through `to_jsonb`, so none arrives raw.
        Binary::Array(_) => return Err(DecodeError::RawArray),
    })
}

/// PostgreSQL days since 2000 as a date. A day the row model has no date
/// for (`infinity`, `-infinity`, past year 262143) is handed on as
/// PostgreSQL's text for it, which the column mapping refuses as a date:
/// a row error naming the row's key and the column under the table's
/// policy, or a value a `map` or `type = "text"` keeps.
fn date_from_pg(days: i32) -> Value {
    match days {
        i32::MAX => return Value::Text("infinity".into()),
        i32::MIN => return Value::Text("-infinity".into()),
        _ => {}
    }
    match days.checked_add(EPOCH_DAYS) {
        Some(d) if date_from_days(d).is_some() => Value::Date(d),
        _ => Value::Text(pg_date_text(i64::from(days)).join("")),
    }
}

/// PostgreSQL µs since 2000 as a timestamp; like [`date_from_pg`], one the
/// row model cannot hold (infinity, past year 262143) is handed on as
/// PostgreSQL's text for it (UTC for `timestamptz`).
fn timestamp_from_pg(micros: i64, zoned: bool) -> Value {
    match micros {
        i64::MAX => return Value::Text("infinity".into()),
        i64::MIN => return Value::Text("-infinity".into()),
        _ => {}
    }
    match micros.checked_add(EPOCH_MICROS) {
        Some(t) if timestamp_from_micros(t).is_some() && zoned => Value::Timestamptz(t),
        Some(t) if timestamp_from_micros(t).is_some() => Value::Timestamp(t),
        _ => Value::Text(pg_timestamp_text(micros, zoned)),
    }
}

/// `294276-12-31 23:59:59.5` (`+00` when zoned, ` BC` before year 1), as
/// PostgreSQL writes it, for µs since 2000.
fn pg_timestamp_text(micros: i64, zoned: bool) -> String {
    const DAY: i64 = 86_400_000_000;
    let [date, bc] = pg_date_text(micros.div_euclid(DAY));
    let of_day = micros.rem_euclid(DAY);
    let (secs, frac) = (of_day / 1_000_000, of_day % 1_000_000);
    let mut text = format!(
        "{date} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    if frac != 0 {
        let digits = format!("{frac:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    if zoned {
        text.push_str("+00");
    }
    text + &bc
}

/// The date `days` after 2000-01-01 as PostgreSQL writes it (`2024-01-31`,
/// `0044-03-15` + ` BC`): the date, and the era suffix.
fn pg_date_text(days: i64) -> [String; 2] {
    // Howard Hinnant's civil_from_days, on days since 1970.
    let z = days + i64::from(EPOCH_DAYS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Year 0 of the proleptic calendar is 1 BC.
    let (year, bc) = match year {
        y if y >= 1 => (y, ""),
        y => (1 - y, " BC"),
    };
    [format!("{year:04}-{month:02}-{day:02}"), bc.to_string()]
}

/// A binary numeric as canonical decimal text with its display scale, so
/// `1.50` stays `1.50`. NaN and infinities keep PostgreSQL's spelling.
pub(super) fn numeric_to_text(b: &[u8]) -> Result<String, DecodeError> {
    if b.len() < 8 {
        return Err(DecodeError::NumericHeader(b.len()));
    }
    let word = |i: usize| u16::from_be_bytes([b[2 * i], b[2 * i + 1]]);
    let (ndigits, weight, sign, dscale) =
        (word(0) as usize, word(1) as i16, word(2), word(3) as usize);
    if b.len() != 8 + 2 * ndigits {
        return Err(DecodeError::NumericDigits {
            len: b.len(),
            digits: ndigits,
        });
    }
    match sign {
        NUMERIC_NAN => return Ok("NaN".into()),
        NUMERIC_PINF => return Ok("Infinity".into()),
        NUMERIC_NINF => return Ok("-Infinity".into()),
        NUMERIC_POS | NUMERIC_NEG => {}
        other => return Err(DecodeError::NumericSign(other)),
    }
    let digit = |i: i64| -> u16 {
        usize::try_from(i)
            .ok()
            .filter(|&i| i < ndigits)
            .map_or(0, |i| word(4 + i))
    };
    let mut out = String::with_capacity(8 + 4 * ndigits + dscale);
    if sign == NUMERIC_NEG {
        out.push('-');
    }
    // Digit i stands for 10000^(weight - i).
    let weight = i64::from(weight);
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for i in 1..=weight {
            out.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        out.push('.');
        let start = out.len();
        let mut i = weight + 1;
        while out.len() - start < dscale {
            out.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        out.truncate(start + dscale);
    }
    Ok(out)
}

/// Decimal text (`-12.50`, `1e-3`, `NaN`, `Infinity`) as a binary numeric.
pub(super) fn numeric_from_text(text: &str, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let bad = || EncodeError::NotADecimal(text.to_string());
    let t = text.trim();
    let special = match t.to_ascii_lowercase().as_str() {
        "nan" => Some(NUMERIC_NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => Some(NUMERIC_PINF),
        "-infinity" | "-inf" => Some(NUMERIC_NINF),
        _ => None,
    };
    if let Some(sign) = special {
        for w in [0, 0, sign, 0] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        return Ok(());
    }
    let (negative, t) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match t.find(['e', 'E']) {
        Some(at) => (&t[..at], t[at + 1..].parse::<i64>().map_err(|_| bad())?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().chain(frac.bytes()).all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let dscale = (frac.len() as i64 - exp).max(0);
    if dscale > 0x3FFF || exp.abs() > 100_000 {
        return Err(EncodeError::NumericRange(text.to_string()));
    }
    let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).map(|c| c - b'0').collect();
    // The decimal point sits after `point` digits; line it up on a 4-digit
    // group boundary by padding with zeros on both sides.
    let mut point = int.len() as i64 + exp;
    if point < 0 {
        digits.splice(0..0, std::iter::repeat_n(0, (-point) as usize));
        point = 0;
    }
    if point as usize > digits.len() {
        digits.resize(point as usize, 0);
    }
    let lead = ((4 - point % 4) % 4) as usize;
    digits.splice(0..0, std::iter::repeat_n(0, lead));
    let point = point as usize + lead;
    digits.resize(digits.len().div_ceil(4) * 4, 0);
    let mut groups: Vec<u16> = digits
        .chunks(4)
        .map(|g| g.iter().fold(0u16, |acc, d| acc * 10 + u16::from(*d)))
        .collect();
    let mut weight = (point / 4) as i64 - 1;
    let leading = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let weight = i16::try_from(weight).map_err(|_| EncodeError::NumericRange(text.to_string()))?;
    let sign = if negative && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    out.extend_from_slice(&(groups.len() as u16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(dscale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    Ok(())
}

/// Writes binary COPY data: a header, tuples, a trailer.
pub(super) struct TupleWriter {
    /// The encoded bytes so far.
    pub buf: Vec<u8>,
}

impl TupleWriter {
    /// An empty stream body (no header: [`header`] and [`TRAILER`] frame
    /// any run of tuples, so a subset can be re-sent on its own).
    pub fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// Appends `row` as one tuple with fields laid out as `layouts`. On an
    /// error the buffer is left as it was.
    pub fn push(&mut self, row: &[Value], layouts: &[Binary]) -> Result<(), FieldError> {
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&(layouts.len() as i16).to_be_bytes());
        for (i, (value, layout)) in row.iter().zip(layouts).enumerate() {
            if let Err(err) = encode_field(value, *layout, &mut self.buf) {
                self.buf.truncate(start);
                return Err(FieldError {
                    column: Some(i),
                    message: err.to_string(),
                });
            }
        }
        Ok(())
    }
}

/// The header of a binary COPY stream: signature, no flags, no extension.
pub(super) fn header() -> Vec<u8> {
    let mut h = SIGNATURE.to_vec();
    h.extend_from_slice(&[0; 8]);
    h
}

/// The end of a binary COPY stream.
pub(super) const TRAILER: [u8; 2] = [0xff, 0xff];

/// Appends one field: its length word, then its bytes.
pub(super) fn encode_field(
    value: &Value,
    layout: Binary,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if matches!(value, Value::Null) {
        out.extend_from_slice(&(-1i32).to_be_bytes());
        return Ok(());
    }
    let len_at = out.len();
    out.extend_from_slice(&[0; 4]);
    encode_value(value, layout, out)?;
    let len = i32::try_from(out.len() - len_at - 4).map_err(|_| EncodeError::TooLong)?;
    out[len_at..len_at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

pub(super) fn encode_value(
    value: &Value,
    layout: Binary,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mismatch = || EncodeError::Mismatch {
        value: crate::model::value::describe(value),
        layout: format!("{layout:?}"),
    };
    match (layout, value) {
        (Binary::Bool, Value::Boolean(b)) => out.push(u8::from(*b)),
        (Binary::Int2, Value::Int(i)) => {
            let v = i16::try_from(*i).map_err(|_| EncodeError::IntRange {
                value: *i,
                column: "a smallint",
            })?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (Binary::Int4, Value::Int(i)) => {
            let v = i32::try_from(*i).map_err(|_| EncodeError::IntRange {
                value: *i,
                column: "an integer",
            })?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (Binary::Int8, Value::Int(i)) => out.extend_from_slice(&i.to_be_bytes()),
        (Binary::Numeric, Value::Int(i)) => numeric_from_text(&i.to_string(), out)?,
        (Binary::Numeric, Value::Decimal(d)) => numeric_from_text(d, out)?,
        (Binary::Float8, Value::Float(f)) => out.extend_from_slice(&f.to_be_bytes()),
        (Binary::Float4, Value::Float(f)) => {
            let narrow = *f as f32;
            if f64::from(narrow) != *f && !f.is_nan() {
                return Err(EncodeError::InexactReal(*f));
            }
            out.extend_from_slice(&narrow.to_be_bytes());
        }
        (Binary::Text, Value::Text(s)) => out.extend_from_slice(s.as_bytes()),
        (Binary::Text, other) => {
            out.extend_from_slice(to_text(other).unwrap_or_default().as_bytes())
        }
        (Binary::Json, Value::Json(s)) => out.extend_from_slice(s.as_bytes()),
        (Binary::Jsonb, Value::Json(s)) => {
            out.push(1);
            out.extend_from_slice(s.as_bytes());
        }
        (Binary::Bytea, Value::Bytes(b)) => out.extend_from_slice(b),
        (Binary::Date, Value::Date(d)) => {
            let v = d
                .checked_sub(EPOCH_DAYS)
                .ok_or(EncodeError::DateRange(*d))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (Binary::Time, Value::Time(t)) => {
            let v = i64::try_from(*t).map_err(|_| EncodeError::TimeRange(*t))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (Binary::Timestamp, Value::Timestamp(t)) | (Binary::Timestamptz, Value::Timestamptz(t)) => {
            let v = t
                .checked_sub(EPOCH_MICROS)
                .ok_or(EncodeError::TimestampRange(*t))?;
            out.extend_from_slice(&v.to_be_bytes());
        }
        (Binary::Uuid, Value::Uuid((hi, lo))) => {
            out.extend_from_slice(&hi.to_be_bytes());
            out.extend_from_slice(&lo.to_be_bytes());
        }
        (Binary::Array(elem), Value::Json(json)) => super::array::encode_array(json, elem, out)?,
        _ => return Err(mismatch()),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let mut b = Vec::new();
        numeric_from_text(text, &mut b).unwrap();
        numeric_to_text(&b).unwrap()
    }

    #[test]
    fn numerics_keep_every_digit_and_their_scale() {
        for t in [
            "0",
            "0.00",
            "1.50",
            "-1.50",
            "12345678901234567890.0123456789",
            "0.0001",
            "0.00001230",
            "10000",
            "-99990000.1",
            "NaN",
            "Infinity",
            "-Infinity",
            "100000000000000000000000000000",
        ] {
            assert_eq!(round_trip(t), t);
        }
        assert_eq!(round_trip("1.5e3"), "1500");
        assert_eq!(round_trip("1.5e-3"), "0.0015");
        assert_eq!(round_trip("-0.000"), "0.000");
        let mut b = Vec::new();
        assert!(numeric_from_text("12x", &mut b).is_err());
        assert!(numeric_from_text(".", &mut b).is_err());
    }

    #[test]
    fn tuples_survive_any_chunking() {
        let layouts = vec![
            Binary::Int8,
            Binary::Text,
            Binary::Numeric,
            Binary::Timestamptz,
            Binary::Uuid,
        ];
        let rows = vec![
            vec![
                Value::Int(-7),
                Value::Text("héllo\n\0x".into()),
                Value::Decimal("3.1400".into()),
                Value::Timestamptz(1_700_000_000_000_001),
                Value::Uuid((1, u64::MAX)),
            ],
            vec![
                Value::Null,
                Value::Text(String::new()),
                Value::Null,
                Value::Timestamptz(-1),
                Value::Null,
            ],
        ];
        let mut w = TupleWriter::with_capacity(0);
        for r in &rows {
            w.push(r, &layouts).unwrap();
        }
        let mut stream = header();
        stream.extend_from_slice(&w.buf);
        stream.extend_from_slice(&TRAILER);
        for size in [1, 3, 7, stream.len()] {
            let mut reader = TupleReader::new(layouts.clone());
            let mut got = Vec::new();
            for chunk in stream.chunks(size) {
                reader.feed(chunk);
                while let Some(row) = reader.next_row().unwrap() {
                    got.push(row);
                }
            }
            assert!(reader.ended());
            assert_eq!(got, rows, "chunks of {size}");
        }
    }

    #[test]
    fn dates_and_timestamps_without_a_row_model_value_arrive_as_their_text() {
        let text = |s: &str| Value::Text(s.into());
        assert_eq!(date_from_pg(i32::MAX), text("infinity"));
        assert_eq!(date_from_pg(i32::MIN), text("-infinity"));
        assert_eq!(date_from_pg(0), Value::Date(EPOCH_DAYS));
        // PostgreSQL's last date, 5874897-12-31, and 300000-01-01.
        assert_eq!(date_from_pg(2_145_031_948), text("5874897-12-31"));
        assert_eq!(date_from_pg(108_842_265), text("300000-01-01"));
        assert_eq!(date_from_pg(-746_117), Value::Date(-746_117 + EPOCH_DAYS));
        assert_eq!(pg_date_text(-746_117), ["0044-03-15", " BC"]);
        assert_eq!(timestamp_from_pg(i64::MAX, false), text("infinity"));
        assert_eq!(timestamp_from_pg(i64::MIN, true), text("-infinity"));
        // '294276-12-31 23:59:59.5', PostgreSQL's last timestamp but half a second.
        let last = 9_223_371_331_199_500_000;
        assert_eq!(
            timestamp_from_pg(last, false),
            text("294276-12-31 23:59:59.5")
        );
        assert_eq!(
            timestamp_from_pg(last, true),
            text("294276-12-31 23:59:59.5+00")
        );
        assert_eq!(
            timestamp_from_pg(1, true),
            Value::Timestamptz(EPOCH_MICROS + 1)
        );
    }

    #[test]
    fn a_value_that_does_not_fit_names_its_column_and_leaves_the_buffer() {
        let mut w = TupleWriter::with_capacity(0);
        let err = w
            .push(
                &[Value::Int(1), Value::Int(70_000)],
                &[Binary::Int8, Binary::Int2],
            )
            .unwrap_err();
        assert_eq!(err.column, Some(1));
        assert!(err.message.contains("smallint"), "{}", err.message);
        assert!(w.buf.is_empty());
    }
}
