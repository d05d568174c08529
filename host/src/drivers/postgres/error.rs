//! Why a PostgreSQL value could not be read (from a binary field or from
//! the text a change's WAL record prints) or written (as a binary field).
//! The messages are what a row error or a connector error tells the user.

/// Why a value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    /// A fixed-size field of the wrong length.
    #[error("a {what} field of {len} bytes, expected {expected}")]
    FieldSize {
        what: &'static str,
        len: usize,
        expected: usize,
    },
    /// Text (or JSON) that is not UTF-8.
    #[error("text that is not valid UTF-8 ({0})")]
    NotUtf8(#[source] std::string::FromUtf8Error),
    /// A jsonb field whose version byte is not 1.
    #[error("a jsonb field with an unknown version")]
    JsonbVersion,
    /// A time of day before midnight.
    #[error("a negative time ({0} µs)")]
    NegativeTime(i64),
    /// Sources select arrays through `to_jsonb`, so none arrives raw.
    #[error("an array arrived in binary form")]
    RawArray,
    /// A query result column of a type no binary decoder reads.
    #[error("a result column of a type without a binary decoder")]
    NoDecoder,
    /// A numeric field too short for its header.
    #[error("a numeric field of {0} bytes")]
    NumericHeader(usize),
    /// A numeric field whose length disagrees with its digit count.
    #[error("a numeric field of {len} bytes for {digits} digits")]
    NumericDigits { len: usize, digits: usize },
    /// A numeric field with a sign word PostgreSQL does not write.
    #[error("a numeric with sign word {0:#06x}")]
    NumericSign(u16),
    /// Text that is not the named kind of value (`whole number`, `uuid`…).
    #[error("{text:?} is not a {what}")]
    NotA { text: String, what: &'static str },
    /// `infinity` as a date or timestamp, which the row model has not.
    #[error(
        "'infinity' has no {0} value in the row model; replace it (e.g. with NULL) in the source or read the table through a view that casts the column to text"
    )]
    Infinite(&'static str),
    /// A date past what the row model holds.
    #[error("date {0:?} is out of range")]
    DateRange(String),
    /// A timestamp past what the row model holds.
    #[error("timestamp {0:?} is out of range")]
    TimestampRange(String),
}

/// Why a value could not be written as a binary field.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EncodeError {
    /// Text that is not a decimal number, for a numeric column.
    #[error("{0:?} is not a decimal number")]
    NotADecimal(String),
    /// A decimal beyond numeric's weight or scale.
    #[error("{0:?} is outside PostgreSQL's numeric range")]
    NumericRange(String),
    /// A field longer than a length word holds.
    #[error("a value over 2 GiB")]
    TooLong,
    /// A value of a type the column's layout does not take.
    #[error("cannot write {value} into a {layout} column")]
    Mismatch { value: String, layout: String },
    /// An integer too large for a smallint or integer column (`column` is
    /// `a smallint` or `an integer`).
    #[error("{value} does not fit {column} column")]
    IntRange { value: i64, column: &'static str },
    /// A float that a real column would round.
    #[error("{0} does not fit a real (float4) column exactly")]
    InexactReal(f64),
    /// A date PostgreSQL's day count cannot hold.
    #[error("date {0} is out of range")]
    DateRange(i32),
    /// A time of day PostgreSQL's µs count cannot hold.
    #[error("time {0} µs is out of range")]
    TimeRange(u64),
    /// A timestamp PostgreSQL's µs count cannot hold.
    #[error("timestamp {0} µs is out of range")]
    TimestampRange(i64),
    /// An array of an element type without a binary writer.
    #[error("arrays of type OID {0} cannot be written")]
    ArrayType(u32),
    /// An array column's value that is not a JSON array (`shown` is its
    /// first 40 characters).
    #[error("an array column takes a JSON array, got {shown:?}")]
    NotAnArray {
        shown: String,
        #[source]
        source: serde_json::Error,
    },
    /// An array longer than its length word holds.
    #[error("an array of over 2^31 elements")]
    ArrayTooLong,
    /// An array nested in an array.
    #[error(
        "a multi-dimensional array cannot be written yet; set the column's type = \"json\" to land it as jsonb"
    )]
    MultiDimensional,
    /// An element that is not of the array's element type.
    #[error("array element {raw} is not a {type_name}")]
    Element {
        raw: String,
        type_name: &'static str,
    },
}
