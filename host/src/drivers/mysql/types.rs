//! The type mapping between MySQL/MariaDB columns and the row model, both
//! ways (see the table in README.md).

use crate::model::value::ColumnType;

/// How a source column is read: its shape on the wire and the row-model
/// type it becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// `tinyint(1)` / `bool`: 0 and 1 become booleans; any other value is
    /// handed on as an int, so the mapping reports it instead of guessing.
    Bool,
    /// Signed integers of any width, and `year`.
    Signed,
    /// Unsigned integers up to `int unsigned`: they fit in 64 bits.
    Unsigned,
    /// `bigint unsigned`: may exceed i64, so carried as a decimal.
    BigUnsigned,
    /// `decimal(p,s)`: exact text, scale kept.
    Decimal,
    /// `float` (single precision).
    Float,
    /// `double`.
    Double,
    /// Character strings, `enum`, `set`, `inet4`/`inet6` and unknown types.
    Text,
    /// `json` (MySQL), or MariaDB's `longtext` with a `json_valid` check.
    Json,
    /// Binary strings, blobs and spatial types (MySQL's internal geometry
    /// format: a 4-byte SRID, then WKB).
    Bytes,
    /// `date`.
    Date,
    /// `time`: a time of day; negative or 24 h and more arrive as text.
    Time,
    /// `datetime`: a timestamp without zone.
    DateTime,
    /// `datetime` this sink wrote from a `timestamptz` (UTC, marked by a
    /// column comment), read back as `timestamptz`.
    DateTimeUtc,
    /// `timestamp`: stored in UTC, read in a `+00:00` session.
    Timestamp,
    /// `bit(n)` with n ≤ 63: an int.
    Bit,
    /// `bit(64)`: a decimal, like `bigint unsigned`.
    BitWide,
    /// MariaDB's `uuid`.
    Uuid,
}

/// What `information_schema.COLUMNS` says about a column, plus whether a
/// `json_valid` check constrains it.
pub(super) struct SchemaColumn<'a> {
    /// `DATA_TYPE`, e.g. `bigint`.
    pub data_type: &'a str,
    /// `COLUMN_TYPE`, e.g. `bigint(20) unsigned`.
    pub column_type: &'a str,
    /// `COLUMN_COMMENT`.
    pub comment: &'a str,
    /// A `json_valid(col)` check exists (MariaDB's JSON).
    pub json_checked: bool,
    /// `NUMERIC_PRECISION` (the n of `bit(n)`).
    pub precision: Option<u64>,
}

/// The comment the sink puts on a `datetime(6)` column that holds a
/// `timestamptz` in UTC; the source reads such a column back as
/// `timestamptz`.
pub(super) const UTC_COMMENT: &str = "credvault: timestamptz, UTC";

impl Kind {
    /// The kind of a column described by the information schema.
    pub(super) fn of(c: &SchemaColumn<'_>) -> Kind {
        let column_type = c.column_type.to_ascii_lowercase();
        let unsigned = column_type.contains("unsigned");
        match c.data_type.to_ascii_lowercase().as_str() {
            "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => Kind::Bool,
            "bool" | "boolean" => Kind::Bool,
            "bigint" if unsigned => Kind::BigUnsigned,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" if unsigned => Kind::Unsigned,
            "tinyint" | "smallint" | "mediumint" | "int" | "integer" | "bigint" | "year" => {
                Kind::Signed
            }
            "decimal" | "numeric" | "dec" | "fixed" => Kind::Decimal,
            "float" => Kind::Float,
            "double" | "real" | "double precision" => Kind::Double,
            "json" => Kind::Json,
            "longtext" | "text" | "mediumtext" | "tinytext" if c.json_checked => Kind::Json,
            "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => Kind::Bytes,
            "geometry" | "point" | "linestring" | "polygon" | "multipoint" | "multilinestring"
            | "multipolygon" | "geometrycollection" => Kind::Bytes,
            "date" => Kind::Date,
            "time" => Kind::Time,
            "datetime" if c.comment == UTC_COMMENT => Kind::DateTimeUtc,
            "datetime" => Kind::DateTime,
            "timestamp" => Kind::Timestamp,
            "bit" if c.precision.unwrap_or(1) <= 63 => Kind::Bit,
            "bit" => Kind::BitWide,
            "uuid" => Kind::Uuid,
            _ => Kind::Text,
        }
    }

    /// The row-model type values of this kind carry.
    pub(super) fn column_type(self) -> ColumnType {
        match self {
            Kind::Bool => ColumnType::Boolean,
            Kind::Signed | Kind::Unsigned | Kind::Bit => ColumnType::Int,
            Kind::BigUnsigned | Kind::Decimal | Kind::BitWide => ColumnType::Decimal,
            Kind::Float | Kind::Double => ColumnType::Float,
            Kind::Text => ColumnType::Text,
            Kind::Json => ColumnType::Json,
            Kind::Bytes => ColumnType::Bytes,
            Kind::Date => ColumnType::Date,
            Kind::Time => ColumnType::Time,
            Kind::DateTime => ColumnType::Timestamp,
            Kind::DateTimeUtc | Kind::Timestamp => ColumnType::Timestamptz,
            Kind::Uuid => ColumnType::Uuid,
        }
    }
}

/// The column type the sink creates for a row-model type. `decimal` has no
/// precision in the row model, so it gets the widest exact type MySQL has
/// (65 digits, 30 after the point); a value with more fractional digits is
/// refused rather than rounded (see the warning check in the sink).
pub(super) fn create_type(t: ColumnType, native_uuid: bool) -> &'static str {
    match t {
        ColumnType::Boolean => "TINYINT(1)",
        ColumnType::Int => "BIGINT",
        ColumnType::Float => "DOUBLE",
        ColumnType::Decimal => "DECIMAL(65,30)",
        ColumnType::Text => "LONGTEXT",
        ColumnType::Bytes => "LONGBLOB",
        ColumnType::Date => "DATE",
        ColumnType::Time => "TIME(6)",
        ColumnType::Timestamp | ColumnType::Timestamptz => "DATETIME(6)",
        ColumnType::Uuid if native_uuid => "UUID",
        ColumnType::Uuid => "CHAR(36)",
        ColumnType::Json => "JSON",
    }
}

/// The comment a created column carries: a `timestamptz` is kept in a
/// `datetime(6)` in UTC (MySQL's `timestamp` ends in 2038), and the comment
/// tells readers, this source included, that it is UTC.
pub(super) fn create_comment(t: ColumnType) -> Option<&'static str> {
    (t == ColumnType::Timestamptz).then_some(UTC_COMMENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(data_type: &str, column_type: &str) -> Kind {
        Kind::of(&SchemaColumn {
            data_type,
            column_type,
            comment: "",
            json_checked: false,
            precision: None,
        })
    }

    #[test]
    fn integers_map_by_width_and_sign() {
        assert_eq!(kind("tinyint", "tinyint(1)"), Kind::Bool);
        assert_eq!(kind("tinyint", "tinyint(1) unsigned"), Kind::Unsigned);
        assert_eq!(kind("tinyint", "tinyint(4)"), Kind::Signed);
        assert_eq!(kind("int", "int(10) unsigned"), Kind::Unsigned);
        assert_eq!(kind("bigint", "bigint(20) unsigned"), Kind::BigUnsigned);
        assert_eq!(kind("bigint", "bigint(20)"), Kind::Signed);
        assert_eq!(kind("year", "year(4)"), Kind::Signed);
    }

    #[test]
    fn json_is_a_checked_longtext_in_mariadb() {
        let c = SchemaColumn {
            data_type: "longtext",
            column_type: "longtext",
            comment: "",
            json_checked: true,
            precision: None,
        };
        assert_eq!(Kind::of(&c), Kind::Json);
        assert_eq!(kind("longtext", "longtext"), Kind::Text);
    }
}
