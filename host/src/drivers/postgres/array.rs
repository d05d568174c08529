//! Arrays. The row model carries a PostgreSQL array as the JSON array
//! `to_jsonb` makes of it (so plugins and other databases see plain JSON);
//! writing it into an array column turns it back into the array's binary
//! form, each element in its own type's layout. One dimension; NULL
//! elements are kept.

use serde_json::value::RawValue;

use super::copy::encode_field;
use super::error::EncodeError;
use super::types::element;
use crate::model::convert::from_text;
use crate::model::value::{ColumnType, Value, type_name};

/// Appends the binary form of the JSON array `json` as an array of the type
/// with OID `elem`.
pub(super) fn encode_array(json: &str, elem: u32, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let Some(read) = element(elem) else {
        return Err(EncodeError::ArrayType(elem));
    };
    let items: Vec<&RawValue> =
        serde_json::from_str(json).map_err(|source| EncodeError::NotAnArray {
            shown: json.chars().take(40).collect(),
            source,
        })?;
    let values = items
        .iter()
        .map(|raw| element_value(raw.get(), read.column_type))
        .collect::<Result<Vec<_>, _>>()?;
    let has_null = values.iter().any(|v| matches!(v, Value::Null));
    let dimensions: i32 = if values.is_empty() { 0 } else { 1 };
    out.extend_from_slice(&dimensions.to_be_bytes());
    out.extend_from_slice(&i32::from(has_null).to_be_bytes());
    out.extend_from_slice(&elem.to_be_bytes());
    if dimensions == 1 {
        let n = i32::try_from(values.len()).map_err(|_| EncodeError::ArrayTooLong)?;
        out.extend_from_slice(&n.to_be_bytes());
        out.extend_from_slice(&1i32.to_be_bytes());
    }
    for v in &values {
        encode_field(v, read.binary, out)?;
    }
    Ok(())
}

/// One element of a JSON array (its raw JSON text) as a value of type `t`,
/// read the way `to_jsonb` writes that type: numbers as JSON numbers,
/// booleans as booleans, everything else as strings in PostgreSQL's own
/// text form.
fn element_value(raw: &str, t: ColumnType) -> Result<Value, EncodeError> {
    let bad = || EncodeError::Element {
        raw: raw.to_string(),
        type_name: type_name(t),
    };
    if raw == "null" {
        return Ok(Value::Null);
    }
    if t == ColumnType::Json {
        return Ok(Value::Json(raw.to_string()));
    }
    match raw.as_bytes().first() {
        Some(b'[') => Err(EncodeError::MultiDimensional),
        Some(b'"') => {
            let text: String = serde_json::from_str(raw).map_err(|_| bad())?;
            from_text(&text, t).ok_or_else(bad)
        }
        _ if raw == "true" || raw == "false" => match t {
            ColumnType::Boolean => Ok(Value::Boolean(raw == "true")),
            _ => Err(bad()),
        },
        _ => match t {
            ColumnType::Int | ColumnType::Float | ColumnType::Decimal => {
                from_text(raw, t).ok_or_else(bad)
            }
            _ => Err(bad()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::encode_array;
    use crate::drivers::postgres::types::oid;

    /// The binary form PostgreSQL's `array_send` gives `'{1,NULL,3}'::int8[]`.
    #[test]
    fn a_json_array_becomes_the_binary_array_postgres_sends() {
        let mut out = Vec::new();
        encode_array("[1, null, 3]", oid::INT8, &mut out).unwrap();
        let mut want = Vec::new();
        for word in [1i32, 1, oid::INT8 as i32, 3, 1] {
            want.extend_from_slice(&word.to_be_bytes());
        }
        want.extend_from_slice(&8i32.to_be_bytes());
        want.extend_from_slice(&1i64.to_be_bytes());
        want.extend_from_slice(&(-1i32).to_be_bytes());
        want.extend_from_slice(&8i32.to_be_bytes());
        want.extend_from_slice(&3i64.to_be_bytes());
        assert_eq!(out, want);
    }

    #[test]
    fn an_empty_array_has_no_dimensions() {
        let mut out = Vec::new();
        encode_array("[]", oid::TEXT, &mut out).unwrap();
        let mut want = Vec::new();
        for word in [0i32, 0, oid::TEXT as i32] {
            want.extend_from_slice(&word.to_be_bytes());
        }
        assert_eq!(out, want);
    }

    #[test]
    fn what_does_not_fit_the_element_type_is_refused_with_the_element() {
        let mut out = Vec::new();
        let err = encode_array(r#"[1, "two"]"#, oid::INT8, &mut out).unwrap_err();
        assert_eq!(err.to_string(), "array element \"two\" is not a int");
        let err = encode_array("[[1], [2]]", oid::INT8, &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("multi-dimensional"), "{err}");
        let err = encode_array(r#"{"a": 1}"#, oid::INT8, &mut out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("takes a JSON array"), "{err}");
    }
}
