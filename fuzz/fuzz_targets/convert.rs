//! The value conversion layer (`credvault::model::convert`): `convert`,
//! `convert_ref`, `convert_lossy` and `from_text`, on values built with
//! `arbitrary`.
//!
//! Besides not panicking, it checks what the module promises:
//! - `convert_ref` agrees with `convert`, and an exact conversion that
//!   succeeds also succeeds, with the same value, under `convert_lossy`;
//! - a converted value has the type asked for, and `convertible` admits
//!   every conversion that succeeded (the pre-run check relies on it);
//! - an exact conversion keeps the value: converting the result back, where
//!   that succeeds, gives the original (numerically, for numbers), and
//!   every value that converts to text reads back from that text;
//! - text that parses as a type prints (`to_text`) as text that parses back
//!   to the same value;
//! - lossy conversions give the nearest value: floats and decimals round
//!   half away from zero, timestamps fall on their own day.
#![no_main]

use arbitrary::Arbitrary;
use credvault::model::convert::{convert, convert_lossy, convert_ref, convertible, from_text};
use credvault::model::value::{ALL_TYPES, ColumnType, Value, to_text, value_type};
use libfuzzer_sys::fuzz_target;

const MICROS_PER_DAY: i128 = 86_400_000_000;

#[derive(Arbitrary, Debug)]
struct Input {
    value: AnyValue,
    to: u8,
    text: String,
    text_to: u8,
}

/// A value of any type; some variants aim at the values that matter
/// (canonical decimals, times of day) rather than at raw bits.
#[derive(Arbitrary, Debug)]
enum AnyValue {
    Null,
    Boolean(bool),
    Int(i64),
    SmallInt(i16),
    Float(f64),
    Decimal(Decimal),
    RawDecimal(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(i32),
    Time(u64),
    TimeOfDay(u32, u32),
    Timestamp(i64),
    Timestamptz(i64),
    Uuid(u64, u64),
    Json(Json),
}

/// A decimal in the canonical form `from_text` produces: a sign, digits
/// without leading zeros, and a fraction whose scale is kept.
#[derive(Arbitrary, Debug)]
struct Decimal {
    negative: bool,
    int: Vec<u8>,
    frac: Vec<u8>,
}

impl Decimal {
    fn text(&self) -> String {
        let digits = |d: &[u8]| {
            d.iter()
                .map(|b| char::from(b'0' + b % 10))
                .collect::<String>()
        };
        let int = digits(&self.int);
        let int = int.trim_start_matches('0');
        let int = if int.is_empty() { "0" } else { int };
        let sign = if self.negative { "-" } else { "" };
        match self.frac.is_empty() {
            true => format!("{sign}{int}"),
            false => format!("{sign}{int}.{}", digits(&self.frac)),
        }
    }
}

/// A JSON document, printed compactly.
#[derive(Arbitrary, Debug)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// Nesting is capped well below serde_json's parse limit (128).
    fn to_json(&self, depth: usize) -> serde_json::Value {
        use serde_json::Value as J;
        if depth > 32 {
            return J::Null;
        }
        match self {
            Json::Null => J::Null,
            Json::Bool(b) => J::Bool(*b),
            Json::Int(i) => J::from(*i),
            Json::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Json::Str(s) => J::String(s.clone()),
            Json::Array(items) => J::Array(items.iter().map(|j| j.to_json(depth + 1)).collect()),
            Json::Object(fields) => J::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_json(depth + 1)))
                    .collect(),
            ),
        }
    }
}

impl AnyValue {
    /// The value, and its decimal text when that is canonical.
    fn build(&self) -> (Value, Option<String>) {
        let value = match self {
            AnyValue::Null => Value::Null,
            AnyValue::Boolean(b) => Value::Boolean(*b),
            AnyValue::Int(i) => Value::Int(*i),
            AnyValue::SmallInt(i) => Value::Int(i64::from(*i)),
            AnyValue::Float(f) => Value::Float(*f),
            AnyValue::Decimal(d) => {
                let text = d.text();
                return (Value::Decimal(text.clone()), Some(text));
            }
            AnyValue::RawDecimal(d) => Value::Decimal(d.clone()),
            AnyValue::Text(t) => Value::Text(t.clone()),
            AnyValue::Bytes(b) => Value::Bytes(b.clone()),
            AnyValue::Date(d) => Value::Date(*d),
            AnyValue::Time(t) => Value::Time(*t),
            AnyValue::TimeOfDay(secs, micros) => {
                Value::Time(u64::from(secs % 86_400) * 1_000_000 + u64::from(micros % 1_000_000))
            }
            AnyValue::Timestamp(t) => Value::Timestamp(*t),
            AnyValue::Timestamptz(t) => Value::Timestamptz(*t),
            AnyValue::Uuid(hi, lo) => Value::Uuid((*hi, *lo)),
            AnyValue::Json(j) => Value::Json(j.to_json(0).to_string()),
        };
        (value, None)
    }
}

fn type_at(i: u8) -> ColumnType {
    ALL_TYPES[usize::from(i) % ALL_TYPES.len()]
}

/// The same value, bit for bit (NaN equals NaN).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        _ => a == b,
    }
}

/// The same number: 0 equals -0, 2.50 equals 2.5.
fn same_number(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(x), Value::Float(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Decimal(x), Value::Decimal(y)) => plain_decimal(x) == plain_decimal(y),
        _ => a == b,
    }
}

/// A decimal without its scale or the sign of zero, for comparing numbers.
fn plain_decimal(d: &str) -> String {
    let (negative, digits) = match d.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, d.strip_prefix('+').unwrap_or(d)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let body = match (int.is_empty(), frac.is_empty()) {
        (true, true) => return "0".into(),
        (_, true) => int.to_string(),
        (true, false) => format!("0.{frac}"),
        (false, false) => format!("{int}.{frac}"),
    };
    if negative { format!("-{body}") } else { body }
}

/// A canonical decimal rounded half away from zero, computed on its digits.
fn rounded(decimal: &str) -> Option<i64> {
    let (negative, digits) = match decimal.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, decimal),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let mut n: i128 = int.parse().ok()?;
    if frac.as_bytes().first().is_some_and(|d| *d >= b'5') {
        n += 1;
    }
    i64::try_from(if negative { -n } else { n }).ok()
}

fn check_type(result: &Value, from: Option<ColumnType>, to: ColumnType) {
    match from {
        None => assert_eq!(result, &Value::Null, "null must stay null"),
        Some(_) => assert_eq!(
            value_type(result),
            Some(to),
            "converted to the wrong type: {result:?}"
        ),
    }
}

/// An exact conversion keeps the value: it comes back unchanged.
fn check_round_trip(
    original: &Value,
    converted: &Value,
    from: ColumnType,
    to: ColumnType,
    canonical: bool,
) {
    // Text is not canonical (" 42 " becomes 42): `check_text` covers it.
    if from == to || from == ColumnType::Text {
        return;
    }
    let back = convert(converted.clone(), from);
    if to == ColumnType::Text {
        let skip = matches!(original, Value::Decimal(_)) && !canonical;
        if !skip {
            let back = back.unwrap_or_else(|e| {
                panic!("{original:?} became text {converted:?}, which does not read back: {e}")
            });
            assert!(
                same(&back, original),
                "{original:?} → {converted:?} → {back:?}"
            );
        }
        return;
    }
    if let Ok(back) = back {
        assert!(
            same_number(&back, original),
            "{original:?} → {converted:?} → {back:?}: an exact conversion changed the value"
        );
    }
}

/// What `lossy = true` promises: the nearest value.
fn check_nearest(original: &Value, result: &Value, decimal: Option<&str>) {
    match (original, result) {
        (Value::Float(f), Value::Int(i)) => {
            assert_eq!(*i as f64, f.round(), "{f} rounded to {i}");
        }
        (Value::Decimal(_), Value::Int(i)) => {
            if let Some(expected) = decimal.and_then(rounded) {
                assert_eq!(*i, expected, "{decimal:?} rounded to {i}");
            }
        }
        (Value::Timestamp(t) | Value::Timestamptz(t), Value::Date(d)) => {
            let start = i128::from(*d) * MICROS_PER_DAY;
            let t = i128::from(*t);
            assert!(
                start <= t && t < start + MICROS_PER_DAY,
                "{t} µs is not on day {d}"
            );
        }
        _ => {}
    }
}

fn check_value(value: Value, to: ColumnType, decimal: Option<&str>) {
    let from = value_type(&value);
    let exact = convert(value.clone(), to);
    let by_ref = convert_ref(&value, to);
    match (&exact, &by_ref) {
        (Ok(a), Ok(b)) => assert!(same(a, b), "convert {a:?} but convert_ref {b:?}"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("convert {exact:?} but convert_ref {by_ref:?}"),
    }
    let lossy = convert_lossy(value.clone(), to);
    match (&exact, &lossy) {
        (Ok(a), Ok(b)) => assert!(same(a, b), "exact {a:?} but lossy {b:?}"),
        (Ok(a), Err(e)) => panic!("exact {a:?} but lossy refused: {e}"),
        (Err(e), _) => assert!(
            e.to_string().starts_with("expected "),
            "an unhelpful error: {e}"
        ),
    }
    let Some(from) = from else {
        assert!(exact == Ok(Value::Null) && lossy == Ok(Value::Null));
        return;
    };
    if let Ok(result) = &exact {
        check_type(result, Some(from), to);
        assert!(
            convertible(from, to, false),
            "{value:?} → {result:?} is not `convertible`"
        );
        check_round_trip(&value, result, from, to, decimal.is_some());
    }
    if let Ok(result) = &lossy {
        check_type(result, Some(from), to);
        assert!(
            convertible(from, to, true),
            "{value:?} → {result:?} (lossy) is not `convertible`"
        );
        if exact.is_err() {
            check_nearest(&value, result, decimal);
        }
    }
}

/// Text that parses prints as text that parses back to the same value.
fn check_text(text: &str, to: ColumnType) {
    let Some(value) = from_text(text, to) else {
        return;
    };
    check_type(&value, Some(ColumnType::Text), to);
    let printed = to_text(&value).expect("a parsed value is not null");
    let again = from_text(&printed, to);
    assert!(
        again.as_ref().is_some_and(|a| same(a, &value)),
        "{text:?} parsed as {value:?}, printed as {printed:?}, which parses as {again:?}"
    );
}

fuzz_target!(|input: Input| {
    let (value, decimal) = input.value.build();
    let to = type_at(input.to);
    check_value(value, to, decimal.as_deref());
    check_text(&input.text, type_at(input.text_to));
});
