//! The row model: values, columns, tables and row errors, plus how they
//! print, parse and describe themselves. They mirror the WIT `types`
//! interface one to one; `runtime` moves them across the boundary without
//! copying a string.

use chrono::{DateTime, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// The type of a column, as the host and every plugin see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// true or false.
    Boolean,
    /// A signed 64-bit integer.
    Int,
    /// A 64-bit IEEE float.
    Float,
    /// An exact decimal number, carried as text so no precision is lost.
    Decimal,
    /// UTF-8 text.
    Text,
    /// Raw bytes.
    Bytes,
    /// A calendar date.
    Date,
    /// A time of day.
    Time,
    /// A date and time without a zone.
    Timestamp,
    /// An instant in time (a date and time in UTC).
    Timestamptz,
    /// A 128-bit UUID.
    Uuid,
    /// A JSON document, carried as its text.
    Json,
}

/// One cell of a row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL: absent, not empty.
    Null,
    /// A boolean.
    Boolean(bool),
    /// A signed 64-bit integer.
    Int(i64),
    /// A 64-bit float.
    Float(f64),
    /// An exact decimal in canonical text form, e.g. "-1234.50".
    Decimal(String),
    /// UTF-8 text.
    Text(String),
    /// Raw bytes.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01 (negative before).
    Date(i32),
    /// Microseconds since midnight, 0 ..= 86_399_999_999.
    Time(u64),
    /// Microseconds since 1970-01-01T00:00:00, no zone attached.
    Timestamp(i64),
    /// Microseconds since 1970-01-01T00:00:00Z.
    Timestamptz(i64),
    /// A UUID as (high 64 bits, low 64 bits).
    Uuid((u64, u64)),
    /// A JSON document as text.
    Json(String),
}

/// A column of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// The column's name, unique within its schema.
    pub name: String,
    /// The type every non-null value of the column has.
    pub type_: ColumnType,
    /// Whether the column may hold null.
    pub nullable: bool,
}

/// A row a plugin or a conversion could not process; the table's error
/// policy (skip, stop or flag) decides what happens to it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowError {
    /// The column at fault, when one is.
    pub column: Option<String>,
    /// What went wrong and what was expected.
    pub message: String,
}

/// A table a source can read, as found by discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct TableInfo {
    /// The table's name, qualified by schema where the source has schemas.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<Column>,
    /// The primary key's column names, empty when there is none.
    pub primary_key: Vec<String>,
    /// An estimate of the number of rows, when cheaply known.
    pub approx_rows: Option<u64>,
}

/// What a transform is told about the work it is part of.
#[derive(Debug, Clone, PartialEq)]
pub struct TransformContext {
    /// The migration's name.
    pub migration: String,
    /// The destination table the rows are bound for.
    pub table: String,
    /// When the run started, in microseconds since 1970-01-01T00:00:00Z.
    pub run_started_at: i64,
}

/// A transform's outcome for one input row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowResult {
    /// The transformed row, matching the output schema.
    Ok(Row),
    /// Leave this row out of the destination (a filter), not an error.
    Drop,
    /// The row failed; the table's error policy decides what happens.
    Error(RowError),
}

/// One row: value `i` belongs to column `i` of its schema.
pub type Row = Vec<Value>;

const EPOCH: NaiveDate = NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");

/// Whether `value` has `column`'s type. Null always conforms in flight;
/// NOT NULL is the destination's to enforce (a refused row, not a crash).
pub fn conforms(value: &Value, column: &Column) -> bool {
    value_type(value).is_none_or(|t| t == column.type_)
}

/// The type of a non-null value.
pub fn value_type(value: &Value) -> Option<ColumnType> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(_) => ColumnType::Boolean,
        Value::Int(_) => ColumnType::Int,
        Value::Float(_) => ColumnType::Float,
        Value::Decimal(_) => ColumnType::Decimal,
        Value::Text(_) => ColumnType::Text,
        Value::Bytes(_) => ColumnType::Bytes,
        Value::Date(_) => ColumnType::Date,
        Value::Time(_) => ColumnType::Time,
        Value::Timestamp(_) => ColumnType::Timestamp,
        Value::Timestamptz(_) => ColumnType::Timestamptz,
        Value::Uuid(_) => ColumnType::Uuid,
        Value::Json(_) => ColumnType::Json,
    })
}

/// The name users write for a type in migration files.
pub fn type_name(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Boolean => "boolean",
        ColumnType::Int => "int",
        ColumnType::Float => "float",
        ColumnType::Decimal => "decimal",
        ColumnType::Text => "text",
        ColumnType::Bytes => "bytes",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Timestamptz => "timestamptz",
        ColumnType::Uuid => "uuid",
        ColumnType::Json => "json",
    }
}

/// Every type, for error messages and docs.
pub const ALL_TYPES: [ColumnType; 12] = [
    ColumnType::Boolean,
    ColumnType::Int,
    ColumnType::Float,
    ColumnType::Decimal,
    ColumnType::Text,
    ColumnType::Bytes,
    ColumnType::Date,
    ColumnType::Time,
    ColumnType::Timestamp,
    ColumnType::Timestamptz,
    ColumnType::Uuid,
    ColumnType::Json,
];

/// Parses a type name as written in a migration file (with common aliases).
pub fn parse_type_name(name: &str) -> Option<ColumnType> {
    Some(match name.to_ascii_lowercase().as_str() {
        "boolean" | "bool" => ColumnType::Boolean,
        "int" | "integer" | "bigint" => ColumnType::Int,
        "float" | "double" | "real" => ColumnType::Float,
        "decimal" | "numeric" => ColumnType::Decimal,
        "text" | "string" | "varchar" => ColumnType::Text,
        "bytes" | "blob" | "bytea" => ColumnType::Bytes,
        "date" => ColumnType::Date,
        "time" => ColumnType::Time,
        "timestamp" | "datetime" => ColumnType::Timestamp,
        "timestamptz" => ColumnType::Timestamptz,
        "uuid" => ColumnType::Uuid,
        "json" | "jsonb" => ColumnType::Json,
        _ => return None,
    })
}

/// A short description of a value for error messages: `text "abc"`.
pub fn describe(value: &Value) -> String {
    match value_type(value) {
        None => "null".to_string(),
        Some(t) => format!("{} {}", type_name(t), quoted(value)),
    }
}

/// The value as shown to a user, truncated to keep messages readable.
pub fn quoted(value: &Value) -> String {
    let text = to_text(value).unwrap_or_else(|| "null".into());
    let mut shown: String = text.chars().take(80).collect();
    if shown.len() < text.len() {
        shown.push('…');
    }
    format!("{shown:?}")
}

/// The canonical text form of a value (ISO 8601 for temporal values, hex for
/// bytes); `None` for null.
pub fn to_text(value: &Value) -> Option<String> {
    Some(match value {
        Value::Null => return None,
        Value::Boolean(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Decimal(d) | Value::Text(d) | Value::Json(d) => d.clone(),
        Value::Bytes(b) => format!("\\x{}", hex::encode(b)),
        Value::Date(d) => date_from_days(*d).map_or_else(|| format!("day {d}"), |d| d.to_string()),
        Value::Time(t) => time_from_micros(*t).map_or_else(
            || format!("{t} µs"),
            |t| t.format("%H:%M:%S%.f").to_string(),
        ),
        Value::Timestamp(t) => timestamp_from_micros(*t).map_or_else(
            || format!("{t} µs"),
            |t| t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        ),
        Value::Timestamptz(t) => timestamp_from_micros(*t).map_or_else(
            || format!("{t} µs"),
            |t| t.and_utc().format("%Y-%m-%dT%H:%M:%S%.fZ").to_string(),
        ),
        Value::Uuid((hi, lo)) => format_uuid(*hi, *lo),
    })
}

/// The value as JSON, for reports, previews and flagged-row exports.
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Boolean(b) => (*b).into(),
        Value::Int(i) => (*i).into(),
        Value::Float(f) => {
            serde_json::Number::from_f64(*f).map_or_else(|| f.to_string().into(), Into::into)
        }
        other => to_text(other).into(),
    }
}

/// Days since 1970-01-01 as a date.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    EPOCH.checked_add_signed(chrono::TimeDelta::try_days(days.into())?)
}

/// A date as days since 1970-01-01.
pub fn days_from_date(date: NaiveDate) -> i32 {
    (date - EPOCH).num_days() as i32
}

/// Microseconds since midnight as a time of day.
pub fn time_from_micros(micros: u64) -> Option<NaiveTime> {
    let secs = u32::try_from(micros / 1_000_000).ok()?;
    NaiveTime::from_num_seconds_from_midnight_opt(secs, (micros % 1_000_000) as u32 * 1_000)
}

/// A time of day as microseconds since midnight.
pub fn micros_from_time(time: NaiveTime) -> u64 {
    u64::from(time.num_seconds_from_midnight()) * 1_000_000 + u64::from(time.nanosecond() / 1_000)
}

/// Microseconds since the epoch as a naive date-time.
pub fn timestamp_from_micros(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|t| t.naive_utc())
}

/// A naive date-time as microseconds since the epoch.
pub fn micros_from_timestamp(t: NaiveDateTime) -> i64 {
    t.and_utc().timestamp_micros()
}

fn format_uuid(hi: u64, lo: u64) -> String {
    let h = format!("{hi:016x}{lo:016x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Parses a UUID in its usual hyphenated (or plain hex) form.
pub fn parse_uuid(text: &str) -> Option<(u64, u64)> {
    let hex: String = text
        .trim()
        .trim_matches(['{', '}'])
        .chars()
        .filter(|c| *c != '-')
        .collect();
    if hex.len() != 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u64::from_str_radix(&hex[..16], 16).ok()?,
        u64::from_str_radix(&hex[16..], 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporal_values_round_trip_through_text() {
        let d = days_from_date(NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
        assert_eq!(to_text(&Value::Date(d)).unwrap(), "2024-02-29");
        let t = micros_from_time(NaiveTime::from_hms_micro_opt(13, 5, 9, 123_456).unwrap());
        assert_eq!(to_text(&Value::Time(t)).unwrap(), "13:05:09.123456");
        assert_eq!(
            to_text(&Value::Timestamptz(1_700_000_000_000_001)).unwrap(),
            "2023-11-14T22:13:20.000001Z"
        );
    }

    #[test]
    fn uuids_parse_and_print() {
        let text = "123e4567-e89b-12d3-a456-426614174000";
        let (hi, lo) = parse_uuid(text).unwrap();
        assert_eq!(format_uuid(hi, lo), text);
        assert_eq!(parse_uuid("not-a-uuid"), None);
    }
}
