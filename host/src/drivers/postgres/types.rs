//! How PostgreSQL types meet the row model: which [`ColumnType`] a source
//! column gets, how its binary COPY form is read (or which cast makes it
//! readable), which type the sink creates, and how a value is written into
//! an existing destination column.
//!
//! | PostgreSQL | column type | read as |
//! |---|---|---|
//! | `int2`, `int4`, `int8` | int | binary |
//! | `numeric(p,s)` | decimal | binary base-10000 digits → exact text, scale kept |
//! | `float4`, `float8` | float | binary (float4 widens exactly) |
//! | `text`, `varchar`, `bpchar`, `name` | text | binary (UTF-8) |
//! | `citext`, `"char"`, enums | text | `col::text` |
//! | `bytea` | bytes | binary |
//! | `bool` | boolean | binary |
//! | `date` | date | binary |
//! | `time` | time | binary (µs) |
//! | `timestamp` / `timestamptz` | timestamp / timestamptz | binary (µs) |
//! | `uuid` | uuid | binary |
//! | `json` / `jsonb` | json | binary |
//! | arrays (any element type) | json (a JSON array) | `to_jsonb(col)::text` |
//! | anything else (`interval`, `inet`, `money`, `timetz`, …) | text | `col::text` |

use crate::drivers::Native;
use crate::model::value::ColumnType;

/// Well-known type OIDs (fixed in every PostgreSQL since 8.x).
pub(super) mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// A column's type as the catalog describes it (domains resolved to their
/// base type, since a domain's binary form is its base type's).
#[derive(Debug, Clone)]
pub(super) struct PgType {
    /// The base type's OID.
    pub oid: u32,
    /// `pg_type.typtype` of the base type: `b`ase, `e`num, `c`omposite, ...
    pub typtype: char,
    /// `pg_type.typcategory` of the base type: `A` for arrays.
    pub category: char,
    /// For an array, its element type's OID (`pg_type.typelem`); else 0.
    pub elem: u32,
    /// The declared type modifier (`numeric(p,s)`'s p and s), -1 for none.
    pub typmod: i32,
    /// The declared type's name without modifiers, schema-qualified when not
    /// on the search path (for casting key literals on resume).
    pub name: String,
}

/// One binary field layout the reader and writer understand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Binary {
    /// 1 byte.
    Bool,
    /// Big-endian i16.
    Int2,
    /// Big-endian i32.
    Int4,
    /// Big-endian i64.
    Int8,
    /// IEEE f32.
    Float4,
    /// IEEE f64.
    Float8,
    /// Base-10000 digits with weight, sign and display scale.
    Numeric,
    /// UTF-8 bytes (text, varchar, bpchar, name, enum and citext labels,
    /// and every `::text` cast).
    Text,
    /// UTF-8 JSON text.
    Json,
    /// A version byte (1), then UTF-8 JSON text.
    Jsonb,
    /// Raw bytes.
    Bytea,
    /// i32 days since 2000-01-01.
    Date,
    /// i64 µs since midnight.
    Time,
    /// i64 µs since 2000-01-01 00:00.
    Timestamp,
    /// i64 µs since 2000-01-01 00:00 UTC.
    Timestamptz,
    /// 16 bytes.
    Uuid,
    /// A one-dimensional array of elements of this OID (written from a JSON
    /// array; arrays are read through `to_jsonb`).
    Array(u32),
}

/// How a source column is selected inside `COPY (SELECT …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Select {
    /// As is: its binary form is decoded directly.
    Plain,
    /// `col::text`: the server's text form.
    CastText,
    /// `to_jsonb(col)::text`: an array as a JSON array.
    ArrayJson,
}

/// How a source column is read: the column type it reports, the SELECT
/// expression and the binary layout of what that expression yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ReadAs {
    /// The row-model type.
    pub column_type: ColumnType,
    /// The expression.
    pub select: Select,
    /// The layout of the expression's binary form.
    pub binary: Binary,
}

/// How a source column of type `t` is read (see the module table).
pub(super) fn read_as(t: &PgType) -> ReadAs {
    let plain = |column_type, binary| ReadAs {
        column_type,
        select: Select::Plain,
        binary,
    };
    match t.oid {
        oid::BOOL => plain(ColumnType::Boolean, Binary::Bool),
        oid::INT2 => plain(ColumnType::Int, Binary::Int2),
        oid::INT4 => plain(ColumnType::Int, Binary::Int4),
        oid::INT8 => plain(ColumnType::Int, Binary::Int8),
        oid::FLOAT4 => plain(ColumnType::Float, Binary::Float4),
        oid::FLOAT8 => plain(ColumnType::Float, Binary::Float8),
        oid::NUMERIC => plain(ColumnType::Decimal, Binary::Numeric),
        oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => plain(ColumnType::Text, Binary::Text),
        oid::BYTEA => plain(ColumnType::Bytes, Binary::Bytea),
        oid::DATE => plain(ColumnType::Date, Binary::Date),
        oid::TIME => plain(ColumnType::Time, Binary::Time),
        oid::TIMESTAMP => plain(ColumnType::Timestamp, Binary::Timestamp),
        oid::TIMESTAMPTZ => plain(ColumnType::Timestamptz, Binary::Timestamptz),
        oid::UUID => plain(ColumnType::Uuid, Binary::Uuid),
        oid::JSON => plain(ColumnType::Json, Binary::Json),
        oid::JSONB => plain(ColumnType::Json, Binary::Jsonb),
        _ if t.category == 'A' => ReadAs {
            column_type: ColumnType::Json,
            select: Select::ArrayJson,
            binary: Binary::Json,
        },
        // Enums, citext, interval, inet, money, ...: their text form loses
        // nothing and every PostgreSQL type has one.
        _ => ReadAs {
            column_type: ColumnType::Text,
            select: Select::CastText,
            binary: Binary::Text,
        },
    }
}

/// The type the sink gives a new column of type `t`.
pub(super) fn create_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Boolean => "boolean",
        ColumnType::Int => "bigint",
        ColumnType::Float => "double precision",
        ColumnType::Decimal => "numeric",
        ColumnType::Text => "text",
        ColumnType::Bytes => "bytea",
        ColumnType::Date => "date",
        ColumnType::Time => "time",
        ColumnType::Timestamp => "timestamp",
        ColumnType::Timestamptz => "timestamptz",
        ColumnType::Uuid => "uuid",
        ColumnType::Json => "jsonb",
    }
}

/// The binary layout a destination column of type `t` accepts, if the sink
/// can write it. Enum and citext columns take text labels; other types
/// without a binary writer here (interval, arrays, ...) are refused when the
/// table is prepared, not row by row.
pub(super) fn write_as(t: &PgType) -> Option<Binary> {
    if t.category == 'A' {
        return element(t.elem).map(|_| Binary::Array(t.elem));
    }
    let native = read_as(t);
    if native.select == Select::Plain {
        return Some(native.binary);
    }
    (t.typtype == 'e' || t.name == "citext" || t.name.ends_with(".citext")).then_some(Binary::Text)
}

/// How values of the type with OID `elem` (an array's elements, a query
/// result's column) are read and written, when they have a binary layout
/// here.
pub(super) fn element(elem: u32) -> Option<ReadAs> {
    let t = PgType {
        oid: elem,
        typtype: 'b',
        category: 'X',
        elem: 0,
        typmod: -1,
        name: String::new(),
    };
    Some(read_as(&t)).filter(|r| r.select == Select::Plain)
}

/// What a column's type says beyond its row-model type: the elements of
/// an array the sink can recreate (one dimension, elements with a binary
/// layout here), or a `numeric(p,s)`'s precision and scale.
pub(super) fn native(t: &PgType) -> Option<Native> {
    if t.category == 'A' {
        return element(t.elem).map(|r| Native::Array(r.column_type));
    }
    // numeric's typmod is ((p << 16) | s) + 4; a negative scale (PG 15+)
    // has no MySQL counterpart and is left out.
    let digits = u32::try_from(t.typmod.checked_sub(4)?).ok()?;
    let (precision, scale) = (digits >> 16, digits & 0xffff);
    (t.oid == oid::NUMERIC && scale <= precision).then_some(Native::Decimal { precision, scale })
}

/// Whether values of `t` can be written into a column laid out as `b`
/// without loss (out-of-range values still fail row by row).
pub(super) fn writable(t: ColumnType, b: Binary) -> bool {
    use Binary as B;
    match t {
        // Every value has an exact text form.
        _ if b == B::Text => true,
        ColumnType::Boolean => b == B::Bool,
        ColumnType::Int => matches!(b, B::Int2 | B::Int4 | B::Int8 | B::Numeric),
        ColumnType::Float => matches!(b, B::Float4 | B::Float8),
        ColumnType::Decimal => b == B::Numeric,
        ColumnType::Bytes => b == B::Bytea,
        ColumnType::Date => b == B::Date,
        ColumnType::Time => b == B::Time,
        ColumnType::Timestamp => b == B::Timestamp,
        ColumnType::Timestamptz => b == B::Timestamptz,
        ColumnType::Uuid => b == B::Uuid,
        ColumnType::Json => matches!(b, B::Json | B::Jsonb | B::Array(_)),
        ColumnType::Text => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(oid: u32, typtype: char, category: char, name: &str) -> PgType {
        PgType {
            elem: 0,
            typmod: -1,
            oid,
            typtype,
            category,
            name: name.into(),
        }
    }

    #[test]
    fn numeric_typmods_give_precision_and_scale() {
        let numeric = |typmod| {
            native(&PgType {
                typmod,
                ..pg(oid::NUMERIC, 'b', 'N', "numeric")
            })
        };
        let (p12s2, p5s0) = (((12 << 16) | 2) + 4, (5 << 16) + 4);
        assert_eq!(
            numeric(p12s2),
            Some(Native::Decimal {
                precision: 12,
                scale: 2
            })
        );
        assert_eq!(
            numeric(p5s0),
            Some(Native::Decimal {
                precision: 5,
                scale: 0
            })
        );
        assert_eq!(numeric(-1), None, "unconstrained numeric");
        let negative_scale = ((3 << 16) | 0x7fe) + 4;
        assert_eq!(numeric(negative_scale), None);
        let varchar = PgType {
            typmod: p12s2,
            ..pg(1043, 'b', 'S', "character varying")
        };
        assert_eq!(native(&varchar), None);
    }

    #[test]
    fn arrays_become_json_and_unknown_types_text() {
        let arr = read_as(&pg(1007, 'b', 'A', "integer[]"));
        assert_eq!(
            (arr.column_type, arr.select),
            (ColumnType::Json, Select::ArrayJson)
        );
        let interval = read_as(&pg(1186, 'b', 'T', "interval"));
        assert_eq!(
            (interval.column_type, interval.select),
            (ColumnType::Text, Select::CastText)
        );
        let mood = pg(90_000, 'e', 'E', "cv.mood");
        assert_eq!(read_as(&mood).select, Select::CastText);
        assert_eq!(write_as(&mood), Some(Binary::Text));
        assert_eq!(write_as(&pg(1186, 'b', 'T', "interval")), None);
    }

    #[test]
    fn every_created_type_accepts_its_own_values() {
        for t in crate::model::value::ALL_TYPES {
            let created = match create_type(t) {
                "boolean" => oid::BOOL,
                "bigint" => oid::INT8,
                "double precision" => oid::FLOAT8,
                "numeric" => oid::NUMERIC,
                "text" => oid::TEXT,
                "bytea" => oid::BYTEA,
                "date" => oid::DATE,
                "time" => oid::TIME,
                "timestamp" => oid::TIMESTAMP,
                "timestamptz" => oid::TIMESTAMPTZ,
                "uuid" => oid::UUID,
                "jsonb" => oid::JSONB,
                other => panic!("unexpected {other}"),
            };
            let b = write_as(&pg(created, 'b', 'X', "")).unwrap();
            assert!(writable(t, b), "{t:?}");
        }
    }
}
