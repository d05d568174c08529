//! Helpers on the WIT data types: typed accessors, conversions and
//! constructors, so authors never match on raw variants unless they want to.

use std::fmt;

use crate::{Column, ColumnType, RowError, Value};

impl ColumnType {
    /// The type's name as users write it in a column mapping, e.g. `"int"`.
    pub fn name(self) -> &'static str {
        match self {
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

    /// Whether values of this type are numbers (int, float or decimal).
    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            ColumnType::Int | ColumnType::Float | ColumnType::Decimal
        )
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Column {
    /// A nullable column.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        Column {
            name: name.into(),
            type_: column_type,
            nullable: true,
        }
    }

    /// The same column, marked as never holding null.
    pub fn not_null(mut self) -> Self {
        self.nullable = false;
        self
    }
}

impl Value {
    /// The value's column type, or `None` for null.
    pub fn column_type(&self) -> Option<ColumnType> {
        Some(match self {
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

    /// The name of the value's type (`"null"` for null), for messages.
    pub fn type_name(&self) -> &'static str {
        self.column_type().map_or("null", ColumnType::name)
    }

    /// Whether the value is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a `Text` value (not of decimal or JSON values).
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The integer of an `Int` value.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number of a `Float`, `Int` or `Decimal` value, as a float.
    pub fn as_float(&self) -> Option<f64> {
        match self {
            Value::Float(f) => Some(*f),
            Value::Int(i) => Some(*i as f64),
            Value::Decimal(d) => d.parse().ok(),
            _ => None,
        }
    }

    /// The boolean of a `Boolean` value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// Days since 1970-01-01 of a `Date` value.
    pub fn as_date(&self) -> Option<i32> {
        match self {
            Value::Date(d) => Some(*d),
            _ => None,
        }
    }

    /// Microseconds since the epoch of a `Timestamp` or `Timestamptz` value.
    pub fn as_timestamp(&self) -> Option<i64> {
        match self {
            Value::Timestamp(t) | Value::Timestamptz(t) => Some(*t),
            _ => None,
        }
    }

    /// A short description for error messages: the type, and the value when
    /// it is short, e.g. `int 42` or `text "abc"`.
    pub fn describe(&self) -> String {
        const MAX: usize = 40;
        let quoted = |s: &str| {
            if s.chars().count() > MAX {
                let cut: String = s.chars().take(MAX).collect();
                format!("{cut:?}…")
            } else {
                format!("{s:?}")
            }
        };
        match self {
            Value::Null => "null".to_string(),
            Value::Boolean(b) => format!("boolean {b}"),
            Value::Int(i) => format!("int {i}"),
            Value::Float(f) => format!("float {f}"),
            Value::Decimal(d) => format!("decimal {d}"),
            Value::Text(s) => format!("text {}", quoted(s)),
            Value::Json(s) => format!("json {}", quoted(s)),
            other => other.type_name().to_string(),
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl RowError {
    /// An error about the row as a whole; add `.column(name)` to name the
    /// column at fault.
    pub fn new(message: impl Into<String>) -> Self {
        RowError {
            column: None,
            message: message.into(),
        }
    }

    /// The same error, naming the column at fault.
    pub fn column(mut self, name: impl Into<String>) -> Self {
        self.column = Some(name.into());
        self
    }
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{c}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for RowError {}
