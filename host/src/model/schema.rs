//! The schema model: what a database declares around its rows (exact
//! column types, defaults, identity, keys, constraints, indexes, comments,
//! partitioning) and the objects an application relies on beside its
//! tables (enum types, domains, sequences, views, routines, triggers).
//!
//! It is pure data, read by a source driver and later replayed by a
//! destination's renderer: every part keeps the source's verbatim SQL text
//! (for a destination of the same dialect) next to dialect-neutral facts
//! (for one that must translate). Names inside the verbatim text are
//! unqualified for the source's own schema, so the text can be replayed in
//! another schema. [`diff`] names what differs between two tables, for the
//! validation that compares what landed with what was expected.

use serde::{Deserialize, Serialize};

/// A source's schema: its tables and the objects around them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// The driver that read it (`postgres`), whose dialect the verbatim
    /// text is in.
    pub dialect: String,
    /// The schema (PostgreSQL) or database (MariaDB/MySQL) it was read from.
    pub namespace: Option<String>,
    /// Enum types and domains, which columns may use.
    pub types: Vec<TypeDef>,
    /// Sequences no column owns (a column's own sequence is under its
    /// [`Identity`]).
    pub sequences: Vec<SequenceDef>,
    /// The tables asked for.
    pub tables: Vec<TableDef>,
    /// Views and materialized views.
    pub views: Vec<ViewDef>,
    /// Functions and procedures.
    pub routines: Vec<RoutineDef>,
    /// Triggers on the tables asked for.
    pub triggers: Vec<TriggerDef>,
}

impl Schema {
    /// The table called `name`.
    pub fn table(&self, name: &str) -> Option<&TableDef> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// The enum type or domain called `name`.
    pub fn type_def(&self, name: &str) -> Option<&TypeDef> {
        self.types.iter().find(|t| t.name() == name)
    }

    /// The view or materialized view called `name`.
    pub fn view(&self, name: &str) -> Option<&ViewDef> {
        self.views.iter().find(|v| v.name == name)
    }

    /// The free-standing sequence called `name`.
    pub fn sequence(&self, name: &str) -> Option<&SequenceDef> {
        self.sequences.iter().find(|s| s.name == name)
    }

    /// The function or procedure called `name` (the first, if overloaded).
    pub fn routine(&self, name: &str) -> Option<&RoutineDef> {
        self.routines.iter().find(|r| r.name == name)
    }

    /// The trigger called `name` on `table`.
    pub fn trigger(&self, table: &str, name: &str) -> Option<&TriggerDef> {
        self.triggers
            .iter()
            .find(|t| t.table == table && t.name == name)
    }
}

/// A user-defined type columns may use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TypeDef {
    /// An enum type with its labels.
    Enum(EnumDef),
    /// A domain: a base type with its own default, NOT NULL and checks.
    Domain(DomainDef),
}

impl TypeDef {
    /// The type's name.
    pub fn name(&self) -> &str {
        match self {
            TypeDef::Enum(e) => &e.name,
            TypeDef::Domain(d) => &d.name,
        }
    }
}

/// An enum type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnumDef {
    /// Its name.
    pub name: String,
    /// Its labels, in their sort order (the order comparisons use).
    pub labels: Vec<String>,
    /// Its comment.
    pub comment: Option<String>,
}

/// A domain over a base type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainDef {
    /// Its name.
    pub name: String,
    /// The type it restricts.
    pub base: NativeType,
    /// The default a column of it gets when the column has none.
    pub default: Option<DefaultDef>,
    /// Whether NULL is refused.
    pub not_null: bool,
    /// Its checks, on `VALUE`.
    pub checks: Vec<CheckDef>,
    /// Its comment.
    pub comment: Option<String>,
}

/// A sequence with its parameters and the value it last handed out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SequenceDef {
    /// Its name.
    pub name: String,
    /// The integer type of its values (`bigint`).
    pub data_type: String,
    /// Its first value.
    pub start: i64,
    /// Its step.
    pub increment: i64,
    /// Its smallest value.
    pub min: i64,
    /// Its largest value.
    pub max: i64,
    /// How many values a session takes at a time.
    pub cache: i64,
    /// Whether it wraps around at its end.
    pub cycle: bool,
    /// The value it last handed out (with a cache, the last one reserved);
    /// `None` if it never has (or the reader may not see it).
    pub last_value: Option<i64>,
    /// The column whose drop drops it, when it is not that column's
    /// identity or serial sequence.
    pub owned_by: Option<ColumnRef>,
    /// Its comment.
    pub comment: Option<String>,
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnRef {
    /// The table.
    pub table: String,
    /// The column.
    pub column: String,
}

/// A table with its columns, keys, constraints and indexes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    /// Its name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<ColumnDef>,
    /// Its primary key.
    pub primary_key: Option<KeyDef>,
    /// Its unique constraints (unique indexes that are not constraints are
    /// in `indexes`).
    pub uniques: Vec<KeyDef>,
    /// Its check constraints.
    pub checks: Vec<CheckDef>,
    /// Its foreign keys.
    pub foreign_keys: Vec<ForeignKeyDef>,
    /// Its exclusion constraints (PostgreSQL), verbatim only.
    pub exclusions: Vec<ExclusionDef>,
    /// Its indexes that back no constraint.
    pub indexes: Vec<IndexDef>,
    /// How it is partitioned, with its partitions.
    pub partitioning: Option<Partitioning>,
    /// Its comment.
    pub comment: Option<String>,
}

impl TableDef {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The index called `name`.
    pub fn index(&self, name: &str) -> Option<&IndexDef> {
        self.indexes.iter().find(|i| i.name == name)
    }

    /// The foreign key called `name`.
    pub fn foreign_key(&self, name: &str) -> Option<&ForeignKeyDef> {
        self.foreign_keys.iter().find(|f| f.name == name)
    }

    /// The check constraint called `name`.
    pub fn check(&self, name: &str) -> Option<&CheckDef> {
        self.checks.iter().find(|c| c.name == name)
    }
}

/// A column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Its name.
    pub name: String,
    /// Its exact type.
    pub native: NativeType,
    /// Whether NULL is refused.
    pub not_null: bool,
    /// Its default.
    pub default: Option<DefaultDef>,
    /// How its values are generated from a sequence, if they are.
    pub identity: Option<Identity>,
    /// The expression of a stored generated column (SQLite's VIRTUAL
    /// ones too: the model does not tell them apart).
    pub generated: Option<String>,
    /// What an update of the row sets it to when the update does not
    /// (MariaDB/MySQL `ON UPDATE current_timestamp()`).
    #[serde(default)]
    pub on_update: Option<DefaultDef>,
    /// Its collation, when not its type's default.
    pub collation: Option<String>,
    /// Its comment.
    pub comment: Option<String>,
}

/// A column type exactly as the source declares it, and what it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NativeType {
    /// The source's own text: `character varying(40)`, `numeric(12,2)`,
    /// `int(10) unsigned`, `order_status`.
    pub sql: String,
    /// What the type is, whatever the dialect calls it.
    pub kind: TypeKind,
}

/// What a column type is, dialect-neutral, for translating it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TypeKind {
    /// An integer of `bytes` bytes.
    Int {
        /// 1, 2, 3, 4 or 8.
        bytes: u8,
        /// Whether it has no sign (MariaDB/MySQL).
        unsigned: bool,
    },
    /// true or false.
    Bool,
    /// An exact decimal; no precision means any.
    Decimal {
        /// Total significant digits.
        precision: Option<u32>,
        /// Digits after the point.
        scale: Option<u32>,
    },
    /// A binary float of `bytes` bytes (4 or 8).
    Float {
        /// 4 or 8.
        bytes: u8,
    },
    /// Characters, of at most (or, fixed, exactly) `length`.
    Char {
        /// The declared length; `None`: unbounded.
        length: Option<u32>,
        /// Whether shorter values keep their length (varchar).
        varying: bool,
    },
    /// Unbounded text.
    Text,
    /// Raw bytes.
    Bytes,
    /// A calendar date.
    Date,
    /// A time of day.
    Time {
        /// Whether it carries a zone offset.
        tz: bool,
        /// Digits of fractional seconds, when declared.
        precision: Option<u32>,
    },
    /// A date and time.
    Timestamp {
        /// Whether it is an instant (with time zone).
        tz: bool,
        /// Digits of fractional seconds, when declared.
        precision: Option<u32>,
    },
    /// A span of time.
    Interval,
    /// A UUID.
    Uuid,
    /// A JSON document; `binary` for PostgreSQL's jsonb.
    Json {
        /// jsonb rather than json.
        binary: bool,
    },
    /// A value of the enum type `name` (its labels are in [`Schema::types`]).
    Enum {
        /// The enum type.
        name: String,
    },
    /// An array of `element`.
    Array {
        /// The elements' type.
        element: Box<TypeKind>,
    },
    /// The domain `name` over `base`.
    Domain {
        /// The domain.
        name: String,
        /// The type it restricts.
        base: Box<TypeKind>,
    },
    /// Anything else (tsvector, inet, a range, a composite type), by the
    /// source's name for it.
    Other {
        /// The source's name for it.
        name: String,
    },
}

/// A column's (or domain's) default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultDef {
    /// The source's own expression: `'pending'::order_status`, `now()`.
    pub sql: String,
    /// What it is.
    pub kind: DefaultKind,
}

/// What a default is, for translating it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DefaultKind {
    /// A constant: its text, `None` for NULL.
    Literal {
        /// The constant's text, unquoted: `pending`, `0`, `true`, `{}`.
        value: Option<String>,
    },
    /// The current timestamp (`now()`, `CURRENT_TIMESTAMP`).
    Now,
    /// The next value of a sequence.
    Sequence {
        /// The sequence, as the source names it.
        name: String,
    },
    /// Any other expression.
    Expression,
}

/// How a column's values come from a sequence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Which kind of generation.
    pub generation: Generation,
    /// The sequence behind it with its current value (none for
    /// AUTO_INCREMENT, whose counter is the table's, and for SQLite's plain
    /// rowid alias; SQLite's AUTOINCREMENT counter, the table's row of
    /// `sqlite_sequence`, comes as one named `sqlite_sequence`).
    pub sequence: Option<SequenceDef>,
    /// The value the next row gets when the counter is the table's
    /// (MariaDB/MySQL `AUTO_INCREMENT`, past the rows there); `None` when
    /// a sequence holds it.
    #[serde(default)]
    pub next: Option<i64>,
}

/// The kinds of generated keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Generation {
    /// `GENERATED ALWAYS AS IDENTITY`: a value given is refused.
    Always,
    /// `GENERATED BY DEFAULT AS IDENTITY`.
    ByDefault,
    /// `serial`: a default of `nextval` on a sequence the column owns.
    Serial,
    /// MariaDB/MySQL `AUTO_INCREMENT`.
    AutoIncrement,
}

/// A primary key or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDef {
    /// The constraint's name.
    pub name: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
    /// The source's definition: `PRIMARY KEY (order_id, line)`.
    pub definition: String,
    /// Whether its check can wait.
    pub deferrable: Deferrable,
}

/// Whether a constraint's check can wait until commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Deferrable {
    /// Checked at each statement.
    #[default]
    No,
    /// Deferrable, checked at each statement unless deferred.
    InitiallyImmediate,
    /// Deferrable, checked at commit unless made immediate.
    InitiallyDeferred,
}

/// A check constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDef {
    /// The constraint's name.
    pub name: String,
    /// The condition alone: `quantity > 0`.
    pub expression: String,
    /// The source's definition: `CHECK (quantity > 0)`.
    pub definition: String,
    /// The columns it names (none for a domain's).
    pub columns: Vec<String>,
    /// Whether the rows already there were checked.
    pub validated: bool,
}

/// What a foreign key does when the row it refers to changes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FkAction {
    /// Refuse, checked at the end of the statement (or at commit).
    #[default]
    NoAction,
    /// Refuse at once.
    Restrict,
    /// Follow: delete or update the referring rows.
    Cascade,
    /// Set the referring columns to NULL.
    SetNull,
    /// Set the referring columns to their defaults.
    SetDefault,
}

impl FkAction {
    /// Its SQL words: `SET NULL`.
    pub fn sql(self) -> &'static str {
        match self {
            FkAction::NoAction => "NO ACTION",
            FkAction::Restrict => "RESTRICT",
            FkAction::Cascade => "CASCADE",
            FkAction::SetNull => "SET NULL",
            FkAction::SetDefault => "SET DEFAULT",
        }
    }
}

/// How a multi-column foreign key treats NULLs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FkMatch {
    /// A NULL in any column exempts the row.
    #[default]
    Simple,
    /// All columns NULL or none.
    Full,
    /// PostgreSQL accepts it but does not implement it.
    Partial,
}

/// A foreign key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKeyDef {
    /// The constraint's name.
    pub name: String,
    /// The referring columns, in order.
    pub columns: Vec<String>,
    /// The referred table's schema, when not the source's own.
    pub ref_schema: Option<String>,
    /// The referred table.
    pub ref_table: String,
    /// The referred columns, in the order of `columns`.
    pub ref_columns: Vec<String>,
    /// What an update of the referred row does.
    pub on_update: FkAction,
    /// What a delete of the referred row does.
    pub on_delete: FkAction,
    /// How NULLs are treated.
    pub matching: FkMatch,
    /// Whether its check can wait.
    pub deferrable: Deferrable,
    /// Whether the rows already there were checked.
    pub validated: bool,
    /// The source's definition: `FOREIGN KEY (order_id) REFERENCES orders(id) ON DELETE CASCADE`.
    pub definition: String,
}

/// An exclusion constraint, kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExclusionDef {
    /// The constraint's name.
    pub name: String,
    /// The source's definition: `EXCLUDE USING gist (room WITH =, during WITH &&)`.
    pub definition: String,
}

/// A secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDef {
    /// Its name.
    pub name: String,
    /// Whether it refuses duplicates.
    pub unique: bool,
    /// Its access method: `btree`, `gin`, `hash`.
    pub method: String,
    /// Its key elements, in order.
    pub elements: Vec<IndexElement>,
    /// Columns carried but not keyed (`INCLUDE`).
    pub include: Vec<String>,
    /// The condition of a partial index: `status = 'pending'::order_status`.
    pub predicate: Option<String>,
    /// The source's whole statement, unqualified for the source's schema.
    /// PostgreSQL's, on a partitioned table, says `ON ONLY t` (the parent
    /// alone, its partitions' indexes attached one by one).
    pub definition: String,
    /// Its comment.
    pub comment: Option<String>,
}

/// One key element of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexElement {
    /// A column or an expression.
    pub key: IndexKey,
    /// Whether it sorts descending.
    pub descending: bool,
    /// Whether NULLs sort first.
    pub nulls_first: bool,
    /// Its operator class, when not the type's default.
    pub opclass: Option<String>,
    /// How many leading characters (or bytes) of the column it keys on,
    /// when not the whole value (MariaDB/MySQL prefix indexes).
    #[serde(default)]
    pub prefix: Option<u32>,
}

/// What an index element keys on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "key", rename_all = "snake_case")]
pub enum IndexKey {
    /// A column.
    Column {
        /// The column.
        name: String,
    },
    /// An expression, without its surrounding parentheses: `lower(email::text)`.
    Expression {
        /// The expression.
        sql: String,
    },
}

/// The ways a table can be partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionStrategy {
    /// By ranges of the key.
    Range,
    /// By lists of key values.
    List,
    /// By a hash of the key.
    Hash,
}

/// How a table is partitioned, with its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partitioning {
    /// The strategy.
    pub strategy: PartitionStrategy,
    /// The source's partition key: `RANGE (happened_at)`.
    pub key: String,
    /// Every partition under the table, each after its parent.
    pub partitions: Vec<PartitionDef>,
}

/// A partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDef {
    /// Its name.
    pub name: String,
    /// The table it is a partition of (the partitioned table, or a
    /// partition that is partitioned in turn).
    pub parent: String,
    /// The source's bound: `FOR VALUES FROM (…) TO (…)`, `DEFAULT`.
    pub bound: String,
    /// Its own partition key, when it is partitioned in turn.
    pub key: Option<String>,
}

/// A view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewDef {
    /// Its name.
    pub name: String,
    /// Whether its rows are stored (and refreshed on demand).
    pub materialized: bool,
    /// Its query, without a trailing `;`.
    pub definition: String,
    /// The tables and views of the source's schema it reads, so views are
    /// created after what they read.
    pub depends_on: Vec<String>,
    /// A materialized view's indexes.
    pub indexes: Vec<IndexDef>,
    /// Its comment.
    pub comment: Option<String>,
}

/// The kinds of routines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutineKind {
    /// A function.
    Function,
    /// A procedure.
    Procedure,
}

/// A function or procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutineDef {
    /// Its name.
    pub name: String,
    /// Function or procedure.
    pub kind: RoutineKind,
    /// Its argument list, which tells overloads apart: `code text`.
    pub arguments: String,
    /// Its language: `sql`, `plpgsql`.
    pub language: String,
    /// The source's whole `CREATE OR REPLACE …` statement. PostgreSQL's
    /// names the source schema in its header.
    pub definition: String,
    /// Its comment.
    pub comment: Option<String>,
}

/// A trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerDef {
    /// The table (or view) it is on.
    pub table: String,
    /// Its name.
    pub name: String,
    /// The function it runs.
    pub function: String,
    /// Whether it fires (a disabled trigger is kept, disabled).
    pub enabled: bool,
    /// The source's `CREATE TRIGGER …` statement.
    pub definition: String,
}

/// What differs between the table that was `expected` and the one `found`,
/// one sentence per difference, each naming the object: a missing index, a
/// column's changed type or default, a foreign key's changed action. Parts
/// are matched by name. Empty when they are the same.
pub fn diff(expected: &TableDef, found: &TableDef) -> Vec<String> {
    let mut out = Vec::new();
    by_name(
        "column",
        &expected.columns,
        &found.columns,
        &mut out,
        column_diff,
    );
    key_diff(
        expected.primary_key.as_ref(),
        found.primary_key.as_ref(),
        &mut out,
    );
    by_name(
        "unique constraint",
        &expected.uniques,
        &found.uniques,
        &mut out,
        |e, f| {
            differs("columns", &list(&e.columns), &list(&f.columns))
                .into_iter()
                .chain(differs("definition", &e.definition, &f.definition))
                .collect()
        },
    );
    by_name(
        "check constraint",
        &expected.checks,
        &found.checks,
        &mut out,
        |e, f| {
            differs("condition", &e.expression, &f.expression)
                .into_iter()
                .collect()
        },
    );
    by_name(
        "foreign key",
        &expected.foreign_keys,
        &found.foreign_keys,
        &mut out,
        foreign_key_diff,
    );
    by_name(
        "exclusion constraint",
        &expected.exclusions,
        &found.exclusions,
        &mut out,
        |e, f| {
            differs("definition", &e.definition, &f.definition)
                .into_iter()
                .collect()
        },
    );
    by_name(
        "index",
        &expected.indexes,
        &found.indexes,
        &mut out,
        index_diff,
    );
    partitioning_diff(
        expected.partitioning.as_ref(),
        found.partitioning.as_ref(),
        &mut out,
    );
    if let Some(d) = differs("comment", &opt(&expected.comment), &opt(&found.comment)) {
        out.push(format!("table `{}`: {d}", expected.name));
    }
    out
}

/// Something with a name parts are matched by.
trait Named {
    fn name(&self) -> &str;
}

macro_rules! named {
    ($($t:ty),*) => {
        $(impl Named for $t {
            fn name(&self) -> &str {
                &self.name
            }
        })*
    };
}
named!(
    ColumnDef,
    KeyDef,
    CheckDef,
    ForeignKeyDef,
    ExclusionDef,
    IndexDef,
    PartitionDef
);

/// Matches `expected` and `found` by name: names the missing ones, the
/// unexpected ones, and what `compare` finds in each pair.
fn by_name<T: Named>(
    what: &str,
    expected: &[T],
    found: &[T],
    out: &mut Vec<String>,
    compare: impl Fn(&T, &T) -> Vec<String>,
) {
    for e in expected {
        match found.iter().find(|f| f.name() == e.name()) {
            None => out.push(format!("{what} `{}` is missing", e.name())),
            Some(f) => out.extend(
                compare(e, f)
                    .into_iter()
                    .map(|d| format!("{what} `{}`: {d}", e.name())),
            ),
        }
    }
    for f in found {
        if !expected.iter().any(|e| e.name() == f.name()) {
            out.push(format!("{what} `{}` is not expected", f.name()));
        }
    }
}

/// `what X, found Y` when they differ.
fn differs(what: &str, expected: &str, found: &str) -> Option<String> {
    (expected != found).then(|| format!("{what} {expected}, found {found}"))
}

/// `(a, b)`.
fn list(items: &[String]) -> String {
    format!("({})", items.join(", "))
}

/// The text of an optional part, `none` when absent.
fn opt(text: &Option<String>) -> String {
    text.clone().unwrap_or_else(|| "none".into())
}

fn column_diff(e: &ColumnDef, f: &ColumnDef) -> Vec<String> {
    let null = |c: &ColumnDef| {
        if c.not_null {
            "NOT NULL"
        } else {
            "NULL allowed"
        }
    };
    let default = |c: &ColumnDef| opt(&c.default.as_ref().map(|d| d.sql.clone()));
    let on_update = |c: &ColumnDef| opt(&c.on_update.as_ref().map(|d| d.sql.clone()));
    let identity = |c: &ColumnDef| {
        c.identity
            .as_ref()
            .map_or("none".to_string(), |i| format!("{:?}", i.generation))
    };
    [
        differs("type", &e.native.sql, &f.native.sql),
        differs("nullability", null(e), null(f)),
        differs("default", &default(e), &default(f)),
        differs("identity", &identity(e), &identity(f)),
        differs("generated as", &opt(&e.generated), &opt(&f.generated)),
        differs("on update", &on_update(e), &on_update(f)),
        differs("collation", &opt(&e.collation), &opt(&f.collation)),
        differs("comment", &opt(&e.comment), &opt(&f.comment)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn key_diff(expected: Option<&KeyDef>, found: Option<&KeyDef>, out: &mut Vec<String>) {
    match (expected, found) {
        (None, None) => {}
        (Some(e), None) => out.push(format!(
            "primary key `{}` {} is missing",
            e.name,
            list(&e.columns)
        )),
        (None, Some(f)) => out.push(format!(
            "primary key `{}` {} is not expected",
            f.name,
            list(&f.columns)
        )),
        (Some(e), Some(f)) => {
            if let Some(d) = differs("columns", &list(&e.columns), &list(&f.columns)) {
                out.push(format!("primary key: {d}"));
            }
        }
    }
}

fn foreign_key_diff(e: &ForeignKeyDef, f: &ForeignKeyDef) -> Vec<String> {
    let target = |k: &ForeignKeyDef| {
        let schema = k
            .ref_schema
            .as_ref()
            .map_or(String::new(), |s| format!("{s}."));
        format!("{schema}{}{}", k.ref_table, list(&k.ref_columns))
    };
    [
        differs("columns", &list(&e.columns), &list(&f.columns)),
        differs("references", &target(e), &target(f)),
        (e.on_delete != f.on_delete).then(|| {
            format!(
                "ON DELETE {}, found ON DELETE {}",
                e.on_delete.sql(),
                f.on_delete.sql()
            )
        }),
        (e.on_update != f.on_update).then(|| {
            format!(
                "ON UPDATE {}, found ON UPDATE {}",
                e.on_update.sql(),
                f.on_update.sql()
            )
        }),
        (e.matching != f.matching)
            .then(|| format!("MATCH {:?}, found MATCH {:?}", e.matching, f.matching)),
        (e.deferrable != f.deferrable)
            .then(|| format!("deferrable {:?}, found {:?}", e.deferrable, f.deferrable)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn index_diff(e: &IndexDef, f: &IndexDef) -> Vec<String> {
    let unique = |i: &IndexDef| if i.unique { "unique" } else { "not unique" };
    let elements = |i: &IndexDef| {
        let shown: Vec<String> = i.elements.iter().map(show_element).collect();
        format!("({})", shown.join(", "))
    };
    [
        differs("uniqueness", unique(e), unique(f)),
        differs("method", &e.method, &f.method),
        differs("keys", &elements(e), &elements(f)),
        differs("included columns", &list(&e.include), &list(&f.include)),
        differs("condition", &opt(&e.predicate), &opt(&f.predicate)),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// An index element as SQL: `(lower(email)) DESC NULLS LAST`.
fn show_element(e: &IndexElement) -> String {
    let mut text = match &e.key {
        IndexKey::Column { name } => name.clone(),
        IndexKey::Expression { sql } => format!("({sql})"),
    };
    if let Some(prefix) = e.prefix {
        text.push_str(&format!("({prefix})"));
    }
    if let Some(opclass) = &e.opclass {
        text.push_str(&format!(" {opclass}"));
    }
    if e.descending {
        text.push_str(" DESC");
    }
    // Descending sorts NULLs first by default, ascending last.
    if e.nulls_first != e.descending {
        text.push_str(if e.nulls_first {
            " NULLS FIRST"
        } else {
            " NULLS LAST"
        });
    }
    text
}

fn partitioning_diff(
    expected: Option<&Partitioning>,
    found: Option<&Partitioning>,
    out: &mut Vec<String>,
) {
    let key = |p: Option<&Partitioning>| p.map_or("none".to_string(), |p| p.key.clone());
    if let Some(d) = differs("partitioned by", &key(expected), &key(found)) {
        out.push(d);
        return;
    }
    let (Some(e), Some(f)) = (expected, found) else {
        return;
    };
    by_name("partition", &e.partitions, &f.partitions, out, |e, f| {
        [
            differs("bound", &e.bound, &f.bound),
            differs("parent", &e.parent, &f.parent),
        ]
        .into_iter()
        .flatten()
        .collect()
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(sql: &str, bytes: u8) -> NativeType {
        NativeType {
            sql: sql.into(),
            kind: TypeKind::Int {
                bytes,
                unsigned: false,
            },
        }
    }

    fn column(name: &str, native: NativeType) -> ColumnDef {
        ColumnDef {
            name: name.into(),
            native,
            not_null: true,
            default: None,
            identity: None,
            generated: None,
            on_update: None,
            collation: None,
            comment: None,
        }
    }

    /// `orders` with an identity key, an enum column with a default, a
    /// foreign key, a partial unique index and a check.
    fn orders() -> TableDef {
        let mut status = column(
            "status",
            NativeType {
                sql: "order_status".into(),
                kind: TypeKind::Enum {
                    name: "order_status".into(),
                },
            },
        );
        status.default = Some(DefaultDef {
            sql: "'pending'::order_status".into(),
            kind: DefaultKind::Literal {
                value: Some("pending".into()),
            },
        });
        let mut id = column("id", int("bigint", 8));
        id.identity = Some(Identity {
            generation: Generation::ByDefault,
            sequence: Some(SequenceDef {
                name: "orders_id_seq".into(),
                data_type: "bigint".into(),
                start: 1,
                increment: 1,
                min: 1,
                max: i64::MAX,
                cache: 1,
                cycle: false,
                last_value: Some(3),
                owned_by: None,
                comment: None,
            }),
            next: None,
        });
        TableDef {
            name: "orders".into(),
            columns: vec![id, column("customer_id", int("integer", 4)), status],
            primary_key: Some(KeyDef {
                name: "orders_pkey".into(),
                columns: vec!["id".into()],
                definition: "PRIMARY KEY (id)".into(),
                deferrable: Deferrable::No,
            }),
            checks: vec![CheckDef {
                name: "orders_id_check".into(),
                expression: "id > 0".into(),
                definition: "CHECK (id > 0)".into(),
                columns: vec!["id".into()],
                validated: true,
            }],
            foreign_keys: vec![ForeignKeyDef {
                name: "orders_customer_id_fkey".into(),
                columns: vec!["customer_id".into()],
                ref_schema: None,
                ref_table: "customers".into(),
                ref_columns: vec!["id".into()],
                on_update: FkAction::NoAction,
                on_delete: FkAction::Cascade,
                matching: FkMatch::Simple,
                deferrable: Deferrable::No,
                validated: true,
                definition:
                    "FOREIGN KEY (customer_id) REFERENCES customers(id) ON DELETE CASCADE".into(),
            }],
            indexes: vec![IndexDef {
                name: "orders_one_pending_idx".into(),
                unique: true,
                method: "btree".into(),
                elements: vec![IndexElement {
                    key: IndexKey::Column {
                        name: "customer_id".into(),
                    },
                    descending: false,
                    nulls_first: false,
                    opclass: None,
                    prefix: None,
                }],
                include: Vec::new(),
                predicate: Some("status = 'pending'::order_status".into()),
                definition: "CREATE UNIQUE INDEX orders_one_pending_idx ON orders USING btree (customer_id) WHERE status = 'pending'::order_status".into(),
                comment: None,
            }],
            comment: Some("what people bought".into()),
            ..TableDef::default()
        }
    }

    #[test]
    fn a_schema_survives_a_json_round_trip() {
        let schema = Schema {
            dialect: "postgres".into(),
            namespace: Some("app".into()),
            types: vec![
                TypeDef::Enum(EnumDef {
                    name: "order_status".into(),
                    labels: vec!["pending".into(), "paid".into()],
                    comment: None,
                }),
                TypeDef::Domain(DomainDef {
                    name: "amount".into(),
                    base: NativeType {
                        sql: "numeric(12,2)".into(),
                        kind: TypeKind::Decimal {
                            precision: Some(12),
                            scale: Some(2),
                        },
                    },
                    default: Some(DefaultDef {
                        sql: "0".into(),
                        kind: DefaultKind::Literal {
                            value: Some("0".into()),
                        },
                    }),
                    not_null: true,
                    checks: Vec::new(),
                    comment: None,
                }),
            ],
            tables: vec![orders()],
            views: vec![ViewDef {
                name: "paid".into(),
                materialized: true,
                definition: "SELECT id FROM orders".into(),
                depends_on: vec!["orders".into()],
                indexes: Vec::new(),
                comment: None,
            }],
            triggers: vec![TriggerDef {
                table: "orders".into(),
                name: "touch".into(),
                function: "touch".into(),
                enabled: true,
                definition: "CREATE TRIGGER touch …".into(),
            }],
            ..Schema::default()
        };
        let mut partitioned = orders();
        partitioned.name = "events".into();
        partitioned.columns[0].native.kind = TypeKind::Array {
            element: Box::new(TypeKind::Domain {
                name: "d".into(),
                base: Box::new(TypeKind::Text),
            }),
        };
        partitioned.partitioning = Some(Partitioning {
            strategy: PartitionStrategy::Range,
            key: "RANGE (id)".into(),
            partitions: vec![PartitionDef {
                name: "events_low".into(),
                parent: "events".into(),
                bound: "FOR VALUES FROM (0) TO (10)".into(),
                key: None,
            }],
        });
        let schema = Schema {
            tables: vec![orders(), partitioned],
            ..schema
        };
        let json = serde_json::to_string(&schema).expect("serializes");
        let back: Schema = serde_json::from_str(&json).expect("deserializes");
        assert_eq!(back, schema);
        assert!(
            json.contains(r#""kind":"enum","name":"order_status""#),
            "{json}"
        );
    }

    #[test]
    fn the_same_table_has_no_difference() {
        assert_eq!(diff(&orders(), &orders()), Vec::<String>::new());
    }

    #[test]
    fn diff_names_a_missing_index() {
        let mut found = orders();
        found.indexes.clear();
        assert_eq!(
            diff(&orders(), &found),
            ["index `orders_one_pending_idx` is missing"]
        );
    }

    #[test]
    fn diff_names_a_changed_default() {
        let mut found = orders();
        found.columns[2].default = Some(DefaultDef {
            sql: "'paid'::order_status".into(),
            kind: DefaultKind::Literal {
                value: Some("paid".into()),
            },
        });
        assert_eq!(
            diff(&orders(), &found),
            ["column `status`: default 'pending'::order_status, found 'paid'::order_status"]
        );
    }

    #[test]
    fn diff_names_a_changed_foreign_key_action() {
        let mut found = orders();
        found.foreign_keys[0].on_delete = FkAction::SetNull;
        assert_eq!(
            diff(&orders(), &found),
            ["foreign key `orders_customer_id_fkey`: ON DELETE CASCADE, found ON DELETE SET NULL"]
        );
    }

    #[test]
    fn diff_names_types_keys_and_unexpected_parts() {
        let mut found = orders();
        found.columns[1].native = int("bigint", 8);
        found.primary_key = None;
        found.checks[0].expression = "id >= 0".into();
        found.indexes[0].elements[0].descending = true;
        found.indexes[0].elements[0].nulls_first = true;
        found.indexes.push(IndexDef {
            name: "extra".into(),
            ..found.indexes[0].clone()
        });
        assert_eq!(
            diff(&orders(), &found),
            [
                "column `customer_id`: type integer, found bigint",
                "primary key `orders_pkey` (id) is missing",
                "check constraint `orders_id_check`: condition id > 0, found id >= 0",
                "index `orders_one_pending_idx`: keys (customer_id), found (customer_id DESC)",
                "index `extra` is not expected",
            ]
        );
    }
}
