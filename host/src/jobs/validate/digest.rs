//! An order-independent checksum of a table's rows: the sum, modulo 2^128,
//! of a SHA-256 hash of each row in a canonical form. A changed value, a
//! missing row and a duplicated row each change the sum; row order does not.
//!
//! The canonical form irons out what a destination may legitimately change
//! on the way in: a decimal's trailing zeros (`1.50` in a `DECIMAL(65,30)`)
//! and the key order or spacing of a JSON document.

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::model::value::{Row, Value};

/// The checksum of a set of rows, with the row and null counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableDigest {
    /// Rows added.
    pub rows: u64,
    /// NULLs per column.
    pub nulls: Vec<u64>,
    sum: u128,
}

impl TableDigest {
    /// An empty digest of rows with `columns` columns.
    pub fn new(columns: usize) -> Self {
        Self {
            rows: 0,
            nulls: vec![0; columns],
            sum: 0,
        }
    }

    /// Adds one row; `order[i]` is where the digest's column `i` sits in
    /// `row` (so two tables with their columns in different orders compare).
    pub fn add(&mut self, row: &Row, order: &[usize]) {
        let mut hasher = Sha256::new();
        for (i, &at) in order.iter().enumerate() {
            let value = &row[at];
            if matches!(value, Value::Null) {
                self.nulls[i] += 1;
            }
            hash_value(&mut hasher, value);
        }
        self.add_hash(row_hash(hasher));
        self.rows += 1;
    }

    /// Adds one row by its [`hash_row`] over every column (its NULLs are
    /// not counted).
    pub fn add_row_hash(&mut self, hash: u128) {
        self.add_hash(hash);
        self.rows += 1;
    }

    fn add_hash(&mut self, hash: u128) {
        self.sum = self.sum.wrapping_add(hash);
    }

    /// Folds in another digest of the same columns (a table read in parts).
    pub fn merge(&mut self, other: &TableDigest) {
        self.add_hash(other.sum);
        self.rows += other.rows;
        for (n, m) in self.nulls.iter_mut().zip(&other.nulls) {
            *n += m;
        }
    }

    /// The checksum as 32 hex digits.
    pub fn checksum(&self) -> String {
        format!("{:032x}", self.sum)
    }
}

/// The hash of one row in canonical form, for matching single rows.
pub fn hash_row(row: &Row, order: &[usize]) -> u128 {
    let mut hasher = Sha256::new();
    for &at in order {
        hash_value(&mut hasher, &row[at]);
    }
    row_hash(hasher)
}

/// Whether two values are the same in canonical form (`1.50` and `1.5`).
pub fn same(a: &Value, b: &Value) -> bool {
    let hash = |v| {
        let mut hasher = Sha256::new();
        hash_value(&mut hasher, v);
        row_hash(hasher)
    };
    hash(a) == hash(b)
}

fn row_hash(hasher: Sha256) -> u128 {
    let bytes = hasher.finalize();
    u128::from_le_bytes(bytes[..16].try_into().expect("32-byte hash"))
}

/// Feeds a value in canonical form: a type tag, then a length-prefixed body,
/// so no two different rows share an encoding.
fn hash_value(h: &mut Sha256, value: &Value) {
    let (tag, body): (u8, std::borrow::Cow<[u8]>) = match value {
        Value::Null => (0, (&[][..]).into()),
        Value::Boolean(b) => (1, vec![*b as u8].into()),
        Value::Int(i) => (2, i.to_le_bytes().to_vec().into()),
        Value::Float(f) => (3, canonical_float(*f).to_le_bytes().to_vec().into()),
        Value::Decimal(d) => (4, canonical_decimal(d).into_bytes().into()),
        Value::Text(t) => (5, t.as_bytes().into()),
        Value::Bytes(b) => (6, b.as_slice().into()),
        Value::Date(d) => (7, d.to_le_bytes().to_vec().into()),
        Value::Time(t) => (8, t.to_le_bytes().to_vec().into()),
        Value::Timestamp(t) => (9, t.to_le_bytes().to_vec().into()),
        Value::Timestamptz(t) => (10, t.to_le_bytes().to_vec().into()),
        Value::Uuid((hi, lo)) => {
            let mut b = hi.to_le_bytes().to_vec();
            b.extend(lo.to_le_bytes());
            (11, b.into())
        }
        Value::Json(j) => (12, canonical_json(j).into_bytes().into()),
    };
    h.update([tag]);
    h.update((body.len() as u64).to_le_bytes());
    h.update(&body);
}

/// One bit pattern for every NaN. -0.0 stays apart from 0.0: a
/// destination that keeps the sign must keep it (validation compares
/// with what a destination that cannot would hold, see `AtRest`).
fn canonical_float(f: f64) -> u64 {
    match f.is_nan() {
        true => f64::NAN.to_bits(),
        false => f.to_bits(),
    }
}

/// `+001.500` → `1.5`, `-0.00` → `0`.
pub fn canonical_decimal(text: &str) -> String {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return text.to_string(); // NaN, Infinity, exponents: compared as written
    }
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let int = int.trim_start_matches('0');
    let frac = frac.trim_end_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    let mut out = String::with_capacity(digits.len() + 1);
    if negative && (int != "0" || !frac.is_empty()) {
        out.push('-');
    }
    out.push_str(int);
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    out
}

/// A JSON document with sorted keys and no spacing; text that is not JSON
/// is compared as written.
fn canonical_json(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) => {
            let mut out = String::with_capacity(text.len());
            write_json(&mut out, &v);
            out
        }
        Err(_) => text.to_string(),
    }
}

fn write_json(out: &mut String, v: &serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&serde_json::Value::String(k.clone()).to_string());
                out.push(':');
                write_json(out, &map[k]);
            }
            out.push('}');
        }
        serde_json::Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// A digest as reported.
#[derive(Debug, Clone, Serialize)]
pub struct DigestSummary {
    /// Rows.
    pub rows: u64,
    /// The checksum.
    pub checksum: String,
}

impl From<&TableDigest> for DigestSummary {
    fn from(d: &TableDigest) -> Self {
        Self {
            rows: d.rows,
            checksum: d.checksum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(rows: &[Row]) -> TableDigest {
        let mut d = TableDigest::new(rows[0].len());
        let order: Vec<usize> = (0..rows[0].len()).collect();
        for r in rows {
            d.add(r, &order);
        }
        d
    }

    fn row(id: i64, name: &str) -> Row {
        vec![Value::Int(id), Value::Text(name.into())]
    }

    #[test]
    fn order_does_not_matter_but_changes_missing_and_duplicated_rows_do() {
        let base = digest(&[row(1, "a"), row(2, "b"), row(3, "c")]);
        assert_eq!(base, digest(&[row(3, "c"), row(1, "a"), row(2, "b")]));
        assert_ne!(base, digest(&[row(1, "a"), row(2, "B"), row(3, "c")]));
        assert_ne!(
            base.checksum(),
            digest(&[row(1, "a"), row(2, "b")]).checksum()
        );
        assert_ne!(
            base.checksum(),
            digest(&[row(1, "a"), row(2, "b"), row(3, "c"), row(3, "c")]).checksum()
        );
    }

    #[test]
    fn values_are_compared_in_canonical_form() {
        assert_eq!(canonical_decimal("001.500"), "1.5");
        assert_eq!(canonical_decimal("-0.000"), "0");
        assert_eq!(canonical_decimal("+12"), "12");
        assert_eq!(canonical_decimal("-0.10"), "-0.1");
        assert_eq!(
            canonical_json(r#"{"b": [1, 2], "a": {"y": 1, "x": null}}"#),
            r#"{"a":{"x":null,"y":1},"b":[1,2]}"#
        );
        let a = digest(&[vec![
            Value::Decimal("1.50".into()),
            Value::Json(r#"{"b":1, "a":2}"#.into()),
        ]]);
        let b = digest(&[vec![
            Value::Decimal("1.5000".into()),
            Value::Json(r#"{"a":2,"b":1}"#.into()),
        ]]);
        assert_eq!(a, b);
        // Every NaN is one value; -0.0 and 0.0 are two.
        assert!(same(&Value::Float(f64::NAN), &Value::Float(-f64::NAN)));
        assert!(!same(&Value::Float(-0.0), &Value::Float(0.0)));
        // A text "1" and an int 1 are different values.
        assert_ne!(
            digest(&[vec![Value::Text("1".into())]]),
            digest(&[vec![Value::Int(1)]])
        );
    }
}
