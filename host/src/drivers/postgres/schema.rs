//! PostgreSQL introspection into the schema model, from `pg_catalog` in a
//! few set-based queries (one per kind of object, never one per table), all
//! in one read-only repeatable-read transaction so they see one state.
//!
//! The transaction sets `search_path` to the source schema (then
//! `pg_catalog`), so `format_type`, `pg_get_expr`, `pg_get_constraintdef`,
//! `pg_get_viewdef` and `pg_get_triggerdef` leave names in that schema
//! unqualified (`nextval('orders_id_seq'::regclass)`, `order_status`) and
//! their text can be replayed in another schema; names elsewhere stay
//! qualified. `pg_get_indexdef` does so only in its pretty form (plain, it
//! writes `ON app.orders`). One text qualifies regardless:
//! `pg_get_functiondef`'s header (`FUNCTION app.f(…)`).

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use super::{Db, ident};
use crate::drivers::ConnectorError;
use crate::drivers::literal::quoted;
use crate::model::schema::{
    CheckDef, ColumnDef, ColumnRef, DefaultDef, DefaultKind, Deferrable, DomainDef, EnumDef,
    ExclusionDef, FkAction, FkMatch, ForeignKeyDef, Generation, Identity, IndexDef, IndexElement,
    IndexKey, KeyDef, NativeType, PartitionDef, PartitionStrategy, Partitioning, RoutineDef,
    RoutineKind, Schema, SequenceDef, TableDef, TriggerDef, TypeDef, TypeKind, ViewDef,
};

/// Columns of the tables asked for (`$2`), in order, with what their types
/// are made of: the declared type, a domain's base, an array's element.
const COLUMNS_SQL: &str = "
SELECT c.relname::text AS table_name, a.attname::text AS name,
       format_type(a.atttypid, a.atttypmod) AS type_sql, t.typtype::text AS typtype,
       format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END) AS base_sql,
       bt.typtype::text AS base_typtype, bt.typcategory::text AS base_category,
       et.typtype::text AS element_typtype,
       a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_sql,
       a.attidentity::text AS identity, a.attgenerated::text AS generated,
       CASE WHEN a.attcollation <> t.typcollation THEN co.collname::text END AS collation,
       col_description(c.oid, a.attnum) AS comment,
       obj_description(c.oid, 'pg_class') AS table_comment
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
LEFT JOIN pg_collation co ON co.oid = a.attcollation
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname = ANY ($2)
ORDER BY c.relname, a.attnum";

/// Primary keys, unique, foreign-key, check and exclusion constraints of
/// the tables asked for (a partitioned table's copies on its partitions
/// are left out: they come with the partitions).
const CONSTRAINTS_SQL: &str = "
SELECT c.relname::text AS table_name, con.conname::text AS name, con.contype::text AS kind,
       ARRAY(SELECT a.attname::text FROM unnest(con.conkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.n ORDER BY k.o) AS columns,
       CASE WHEN fn.nspname <> $1 THEN fn.nspname::text END AS ref_schema,
       fc.relname::text AS ref_table,
       ARRAY(SELECT a.attname::text FROM unnest(con.confkey) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.n ORDER BY k.o) AS ref_columns,
       con.confupdtype::text AS on_update, con.confdeltype::text AS on_delete,
       con.confmatchtype::text AS matching,
       con.condeferrable AS deferrable, con.condeferred AS deferred, con.convalidated AS validated,
       pg_get_constraintdef(con.oid, true) AS definition
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
WHERE n.nspname = $1 AND con.contype IN ('p', 'u', 'f', 'c', 'x') AND NOT c.relispartition
  AND con.conparentid = 0 AND c.relname = ANY ($2)
ORDER BY c.relname, con.conname";

/// Indexes backing no constraint, of the tables asked for and of every
/// materialized view, element by element: its text (a column name or an
/// expression), its column number (0 for an expression), its sort options
/// (bit 1 DESC, bit 2 NULLS FIRST) and a non-default operator class.
const INDEXES_SQL: &str = "
SELECT c.relname::text AS table_name, ic.relname::text AS name, i.indisunique AS is_unique,
       am.amname::text AS method, i.indnkeyatts::int4 AS key_count,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnatts) k ORDER BY k) AS elements,
       ARRAY(SELECT i.indkey[k - 1] FROM generate_series(1, i.indnatts) k ORDER BY k)::int2[] AS attnums,
       ARRAY(SELECT i.indoption[k - 1] FROM generate_series(1, i.indnkeyatts) k ORDER BY k)::int2[] AS options,
       ARRAY(SELECT CASE WHEN oc.opcdefault THEN NULL ELSE oc.opcname::text END
             FROM generate_series(1, i.indnkeyatts) k JOIN pg_opclass oc ON oc.oid = i.indclass[k - 1]
             ORDER BY k) AS opclasses,
       pg_get_expr(i.indpred, i.indrelid, true) AS predicate,
       pg_get_indexdef(i.indexrelid, 0, true) AS definition,
       obj_description(i.indexrelid, 'pg_class') AS comment
FROM pg_index i
JOIN pg_class ic ON ic.oid = i.indexrelid
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = ic.relam
WHERE n.nspname = $1 AND NOT c.relispartition AND i.indisvalid
  AND ((c.relkind IN ('r', 'p') AND c.relname = ANY ($2)) OR c.relkind = 'm')
  AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid
                  AND k.conrelid = i.indrelid AND k.contype IN ('p', 'u', 'x'))
  AND ic.relname NOT LIKE 'credvault\\_key\\_%'
ORDER BY c.relname, ic.relname";

/// Enum types with their labels in sort order.
const ENUMS_SQL: &str = "
SELECT t.typname::text AS name, array_agg(e.enumlabel::text ORDER BY e.enumsortorder) AS labels,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
WHERE n.nspname = $1
GROUP BY t.oid, t.typname
ORDER BY t.typname";

/// Domains with their base type (made of the same parts as a column's),
/// default, NOT NULL and checks.
const DOMAINS_SQL: &str = "
SELECT t.typname::text AS name, format_type(t.typbasetype, t.typtypmod) AS base_sql,
       bt.typtype::text AS base_typtype, bt.typcategory::text AS base_category,
       et.typtype::text AS element_typtype,
       t.typnotnull AS not_null, pg_get_expr(t.typdefaultbin, 0) AS default_sql,
       ARRAY(SELECT k.conname::text FROM pg_constraint k
             WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname) AS check_names,
       ARRAY(SELECT pg_get_constraintdef(k.oid, true) FROM pg_constraint k
             WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname) AS check_definitions,
       ARRAY(SELECT k.convalidated FROM pg_constraint k
             WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.conname) AS check_validated,
       obj_description(t.oid, 'pg_type') AS comment
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
JOIN pg_type bt ON bt.oid = t.typbasetype
LEFT JOIN pg_type et ON et.oid = bt.typelem AND bt.typcategory = 'A'
WHERE n.nspname = $1 AND t.typtype = 'd'
ORDER BY t.typname";

/// Every sequence of the schema with its parameters, the value it last
/// handed out (`pg_sequences`, NULL if never or not readable), and the
/// column that owns it: `a` for a serial column's (or `OWNED BY`), `i` for
/// an identity column's.
const SEQUENCES_SQL: &str = "
SELECT c.relname::text AS name, format_type(s.seqtypid, NULL) AS data_type,
       s.seqstart AS start, s.seqincrement AS increment, s.seqmin AS min, s.seqmax AS max,
       s.seqcache AS cache, s.seqcycle AS cycle, ps.last_value AS last_value,
       owner.deptype AS owner_kind, owner.table_name AS owner_table, owner.column_name AS owner_column,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_sequence s
JOIN pg_class c ON c.oid = s.seqrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_sequences ps ON ps.schemaname = n.nspname AND ps.sequencename = c.relname
LEFT JOIN LATERAL (
  SELECT d.deptype::text AS deptype, oc.relname::text AS table_name, a.attname::text AS column_name
  FROM pg_depend d
  JOIN pg_class oc ON oc.oid = d.refobjid
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
    AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
  LIMIT 1
) owner ON true
WHERE n.nspname = $1
ORDER BY c.relname";

/// Partitioned tables with their keys, and partitions with their parent
/// and bound (tables only: `pg_inherits` also links partitions' indexes).
const PARTITIONS_SQL: &str = "
SELECT c.relname::text AS name, p.relname::text AS parent,
       pg_get_expr(c.relpartbound, c.oid) AS bound,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS key
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_inherits i ON i.inhrelid = c.oid AND c.relispartition
LEFT JOIN pg_class p ON p.oid = i.inhparent
WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'f') AND (c.relkind = 'p' OR c.relispartition)
ORDER BY c.relname";

/// Views and materialized views with their queries and the relations of
/// the same schema they read.
const VIEWS_SQL: &str = "
SELECT c.relname::text AS name, c.relkind = 'm' AS materialized,
       pg_get_viewdef(c.oid, true) AS definition,
       ARRAY(SELECT DISTINCT rc.relname::text
             FROM pg_rewrite r
             JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
                             AND d.refclassid = 'pg_class'::regclass
             JOIN pg_class rc ON rc.oid = d.refobjid
             WHERE r.ev_class = c.oid AND rc.oid <> c.oid AND rc.relnamespace = c.relnamespace
             ORDER BY 1) AS depends_on,
       obj_description(c.oid, 'pg_class') AS comment
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relkind IN ('v', 'm')
ORDER BY c.relname";

/// Functions and procedures (not aggregates or window functions, not an
/// extension's).
const ROUTINES_SQL: &str = "
SELECT p.proname::text AS name, p.prokind::text AS kind,
       pg_get_function_identity_arguments(p.oid) AS arguments, l.lanname::text AS language,
       pg_get_functiondef(p.oid) AS definition, obj_description(p.oid, 'pg_proc') AS comment
FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = $1 AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                  AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.proname, 3";

/// User triggers on the tables asked for and on views (not the internal
/// ones behind foreign keys).
const TRIGGERS_SQL: &str = "
SELECT c.relname::text AS table_name, t.tgname::text AS name, t.tgfoid::regproc::text AS function,
       t.tgenabled <> 'D' AS enabled, pg_get_triggerdef(t.oid, true) AS definition
FROM pg_trigger t
JOIN pg_class c ON c.oid = t.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND NOT t.tgisinternal
  AND (c.relname = ANY ($2) OR c.relkind = 'v')
ORDER BY c.relname, t.tgname";

/// Reads the schema model of `tables` in `db`'s schema, with the schema's
/// types, sequences, views and routines.
pub(super) async fn read(db: &Db, tables: &[String]) -> Result<Schema, ConnectorError> {
    let fail = |e: sqlx::Error| {
        let mut err = db.error(&e);
        err.message = format!("reading the schema: {}", err.message);
        err
    };
    let mut tx = db.pool.begin().await.map_err(fail)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    sqlx::query("SELECT set_config('search_path', $1, true)")
        .bind(format!("{}, pg_catalog", ident(&db.schema)))
        .execute(&mut *tx)
        .await
        .map_err(fail)?;
    let catalog = Catalog::read(&mut tx, &db.schema, tables)
        .await
        .map_err(fail)?;
    // Read only: nothing to keep.
    let _ = tx.rollback().await;
    Ok(catalog.into_schema(&db.schema))
}

/// The catalog rows, one list per query.
struct Catalog {
    columns: Vec<PgRow>,
    constraints: Vec<PgRow>,
    indexes: Vec<PgRow>,
    enums: Vec<PgRow>,
    domains: Vec<PgRow>,
    sequences: Vec<PgRow>,
    partitions: Vec<PgRow>,
    views: Vec<PgRow>,
    routines: Vec<PgRow>,
    triggers: Vec<PgRow>,
}

impl Catalog {
    async fn read(
        conn: &mut PgConnection,
        schema: &str,
        tables: &[String],
    ) -> Result<Self, sqlx::Error> {
        Ok(Self {
            columns: fetch(conn, COLUMNS_SQL, schema, tables).await?,
            constraints: fetch(conn, CONSTRAINTS_SQL, schema, tables).await?,
            indexes: fetch(conn, INDEXES_SQL, schema, tables).await?,
            enums: fetch(conn, ENUMS_SQL, schema, tables).await?,
            domains: fetch(conn, DOMAINS_SQL, schema, tables).await?,
            sequences: fetch(conn, SEQUENCES_SQL, schema, tables).await?,
            partitions: fetch(conn, PARTITIONS_SQL, schema, tables).await?,
            views: fetch(conn, VIEWS_SQL, schema, tables).await?,
            routines: fetch(conn, ROUTINES_SQL, schema, tables).await?,
            triggers: fetch(conn, TRIGGERS_SQL, schema, tables).await?,
        })
    }

    /// Puts the rows together into the model.
    fn into_schema(self, namespace: &str) -> Schema {
        let mut sequences: Vec<Sequence> = self.sequences.iter().map(sequence).collect();
        let mut tables = tables_of(&self.columns, &mut sequences);
        let mut indexes = indexes_by_table(&self.indexes);
        for t in &mut tables {
            t.indexes = indexes.remove(&t.name).unwrap_or_default();
        }
        add_constraints(&mut tables, &self.constraints);
        add_partitions(&mut tables, &self.partitions);
        let mut types: Vec<TypeDef> = self.enums.iter().map(enum_def).collect();
        types.extend(self.domains.iter().map(domain_def));
        let asked: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        let sequences = sequences
            .into_iter()
            .filter(|s| {
                s.owner
                    .as_ref()
                    .is_none_or(|o| asked.contains(&o.table.as_str()))
            })
            .map(|s| s.def)
            .collect();
        Schema {
            dialect: "postgres".into(),
            namespace: Some(namespace.into()),
            types,
            sequences,
            tables,
            views: self
                .views
                .iter()
                .map(|r| view_def(r, &mut indexes))
                .collect(),
            routines: self.routines.iter().map(routine_def).collect(),
            triggers: self.triggers.iter().map(trigger_def).collect(),
        }
    }
}

/// Runs one catalog query with the schema (`$1`) and the tables (`$2`).
async fn fetch(
    conn: &mut PgConnection,
    sql: &str,
    schema: &str,
    tables: &[String],
) -> Result<Vec<PgRow>, sqlx::Error> {
    sqlx::query(sql)
        .bind(schema)
        .bind(tables)
        .fetch_all(conn)
        .await
}

/// A sequence and, when a column owns it, which column and how.
struct Sequence {
    def: SequenceDef,
    owner: Option<ColumnRef>,
    /// `i`: an identity column's; `a`: a serial column's or `OWNED BY`.
    owner_kind: Option<String>,
}

/// A text column, `None` for NULL (and for a type mismatch, which the
/// queries' casts rule out).
fn text(row: &PgRow, column: &str) -> Option<String> {
    row.try_get(column).ok().flatten()
}

/// A text column that is never NULL.
fn string(row: &PgRow, column: &str) -> String {
    text(row, column).unwrap_or_default()
}

fn flag(row: &PgRow, column: &str) -> bool {
    row.try_get::<Option<bool>, _>(column)
        .ok()
        .flatten()
        .unwrap_or(false)
}

fn strings(row: &PgRow, column: &str) -> Vec<String> {
    row.try_get(column).unwrap_or_default()
}

fn number(row: &PgRow, column: &str) -> Option<i64> {
    row.try_get::<Option<i64>, _>(column).ok().flatten()
}

/// The first character of a `"char"` column cast to text.
fn code(row: &PgRow, column: &str) -> char {
    string(row, column).chars().next().unwrap_or(' ')
}

fn sequence(row: &PgRow) -> Sequence {
    let owner = text(row, "owner_table").map(|table| ColumnRef {
        table,
        column: string(row, "owner_column"),
    });
    Sequence {
        def: SequenceDef {
            name: string(row, "name"),
            data_type: string(row, "data_type"),
            start: number(row, "start").unwrap_or(1),
            increment: number(row, "increment").unwrap_or(1),
            min: number(row, "min").unwrap_or(1),
            max: number(row, "max").unwrap_or(i64::MAX),
            cache: number(row, "cache").unwrap_or(1),
            cycle: flag(row, "cycle"),
            last_value: number(row, "last_value"),
            owned_by: owner.clone(),
            comment: text(row, "comment"),
        },
        owner_kind: text(row, "owner_kind"),
        owner,
    }
}

/// The tables from their column rows (in table order). A column's identity
/// or serial sequence moves from `sequences` into the column.
fn tables_of(rows: &[PgRow], sequences: &mut Vec<Sequence>) -> Vec<TableDef> {
    let mut tables: Vec<TableDef> = Vec::new();
    for row in rows {
        let table = string(row, "table_name");
        if tables.last().is_none_or(|t| t.name != table) {
            tables.push(TableDef {
                name: table.clone(),
                comment: text(row, "table_comment"),
                ..TableDef::default()
            });
        }
        let column = column_def(row, &table, sequences);
        if let Some(t) = tables.last_mut() {
            t.columns.push(column);
        }
    }
    tables
}

fn column_def(row: &PgRow, table: &str, sequences: &mut Vec<Sequence>) -> ColumnDef {
    let name = string(row, "name");
    let native = NativeType {
        sql: string(row, "type_sql"),
        kind: declared_kind(&TypeParts::of(row, "type_sql")),
    };
    let expression = text(row, "default_sql");
    let generated = (string(row, "generated") == "s")
        .then(|| expression.clone())
        .flatten();
    let default = expression
        .filter(|_| generated.is_none())
        .map(|sql| DefaultDef {
            kind: default_kind(&sql),
            sql,
        });
    let generation = match string(row, "identity").as_str() {
        "a" => Some(Generation::Always),
        "d" => Some(Generation::ByDefault),
        _ => None,
    };
    let owned_by = |kind: &str, s: &Sequence| {
        s.owner_kind.as_deref() == Some(kind)
            && s.owner
                .as_ref()
                .is_some_and(|o| o.table == table && o.column == name)
    };
    let identity = match (generation, default.as_ref().map(|d| &d.kind)) {
        (Some(generation), _) => Some(Identity {
            generation,
            sequence: take(sequences, |s| owned_by("i", s)),
            next: None,
        }),
        (None, Some(DefaultKind::Sequence { name: seq })) => {
            take(sequences, |s| s.def.name == *seq && owned_by("a", s)).map(|sequence| Identity {
                generation: Generation::Serial,
                sequence: Some(sequence),
                next: None,
            })
        }
        _ => None,
    };
    ColumnDef {
        not_null: flag(row, "not_null"),
        default,
        identity,
        generated,
        on_update: None,
        collation: text(row, "collation"),
        comment: text(row, "comment"),
        native,
        name,
    }
}

/// Removes the first sequence that `fits` and returns it, owner cleared
/// (the column holding it says whose it is).
fn take(sequences: &mut Vec<Sequence>, fits: impl Fn(&Sequence) -> bool) -> Option<SequenceDef> {
    let at = sequences.iter().position(fits)?;
    let mut def = sequences.remove(at).def;
    def.owned_by = None;
    Some(def)
}

/// What a type is made of, as the queries return it: its text, its
/// `typtype`, and (for a domain or an array) its base and element.
struct TypeParts {
    sql: String,
    typtype: char,
    base_sql: String,
    base_typtype: char,
    base_category: char,
    element_typtype: char,
}

impl TypeParts {
    /// From a row with `base_sql`, `base_typtype`, `base_category`,
    /// `element_typtype` and, under `sql_column`, the declared type (with
    /// `typtype`, or a domain's base when there is no `typtype`).
    fn of(row: &PgRow, sql_column: &str) -> Self {
        Self {
            sql: string(row, sql_column),
            typtype: text(row, "typtype").map_or('b', |t| t.chars().next().unwrap_or('b')),
            base_sql: string(row, "base_sql"),
            base_typtype: code(row, "base_typtype"),
            base_category: code(row, "base_category"),
            element_typtype: code(row, "element_typtype"),
        }
    }
}

/// The kind of a declared type: a domain over its base, or the base.
fn declared_kind(parts: &TypeParts) -> TypeKind {
    let base = base_kind(parts);
    match parts.typtype {
        'd' => TypeKind::Domain {
            name: parts.sql.clone(),
            base: Box::new(base),
        },
        _ => base,
    }
}

/// The kind of a (domain's) base type: an array of its element, or one
/// value.
fn base_kind(parts: &TypeParts) -> TypeKind {
    match parts.base_category {
        // format_type writes an array, of any dimensions, as `element[]`.
        'A' => TypeKind::Array {
            element: Box::new(scalar_kind(
                parts.base_sql.trim_end_matches("[]"),
                parts.element_typtype,
            )),
        },
        _ => scalar_kind(&parts.base_sql, parts.base_typtype),
    }
}

/// The kind of a non-array type from its `format_type` text and `typtype`.
fn scalar_kind(sql: &str, typtype: char) -> TypeKind {
    match typtype {
        'e' => TypeKind::Enum { name: sql.into() },
        'b' => builtin_kind(sql),
        _ => TypeKind::Other { name: sql.into() },
    }
}

/// The kind of a built-in type from `format_type`'s canonical text:
/// `character varying(40)`, `numeric(12,2)`, `timestamp(3) with time zone`.
fn builtin_kind(sql: &str) -> TypeKind {
    let (name, args) = match (sql.find('('), sql.find(')')) {
        (Some(open), Some(close)) if open < close => (
            format!("{}{}", &sql[..open], &sql[close + 1..]),
            sql[open + 1..close]
                .split(',')
                .map(|a| a.trim().parse::<u32>().ok())
                .collect::<Vec<_>>(),
        ),
        _ => (sql.to_string(), Vec::new()),
    };
    let first = args.first().copied().flatten();
    let int = |bytes| TypeKind::Int {
        bytes,
        unsigned: false,
    };
    match name.as_str() {
        "smallint" => int(2),
        "integer" => int(4),
        "bigint" => int(8),
        "boolean" => TypeKind::Bool,
        "numeric" => TypeKind::Decimal {
            precision: first,
            scale: first.map(|_| args.get(1).copied().flatten().unwrap_or(0)),
        },
        "real" => TypeKind::Float { bytes: 4 },
        "double precision" => TypeKind::Float { bytes: 8 },
        "character varying" => TypeKind::Char {
            length: first,
            varying: true,
        },
        "character" | "bpchar" => TypeKind::Char {
            length: first,
            varying: false,
        },
        "text" => TypeKind::Text,
        "bytea" => TypeKind::Bytes,
        "date" => TypeKind::Date,
        "time without time zone" | "time with time zone" => TypeKind::Time {
            tz: !name.contains("without"),
            precision: first,
        },
        "timestamp without time zone" | "timestamp with time zone" => TypeKind::Timestamp {
            tz: !name.contains("without"),
            precision: first,
        },
        "uuid" => TypeKind::Uuid,
        "json" => TypeKind::Json { binary: false },
        "jsonb" => TypeKind::Json { binary: true },
        n if n.starts_with("interval") => TypeKind::Interval,
        _ => TypeKind::Other { name: sql.into() },
    }
}

/// What a default expression (as `pg_get_expr` writes it) is.
fn default_kind(sql: &str) -> DefaultKind {
    let sql = sql.trim();
    if sql == "NULL" || sql.starts_with("NULL::") && only_casts(&sql[4..]) {
        return DefaultKind::Literal { value: None };
    }
    if matches!(
        sql,
        "now()" | "CURRENT_TIMESTAMP" | "transaction_timestamp()"
    ) {
        return DefaultKind::Now;
    }
    if let Some(name) = sql
        .strip_prefix("nextval(")
        .and_then(|s| s.strip_suffix("::regclass)"))
        .and_then(|s| quoted(s).filter(|(_, rest)| rest.is_empty()))
        .map(|(name, _)| name)
    {
        return DefaultKind::Sequence {
            name: unquote_ident(&name),
        };
    }
    if let Some((value, rest)) = quoted(sql)
        && only_casts(rest)
    {
        return DefaultKind::Literal { value: Some(value) };
    }
    let bare = sql
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .unwrap_or(sql);
    let (value, rest) = bare.split_at(bare.find("::").unwrap_or(bare.len()));
    if only_casts(rest)
        && (matches!(value, "true" | "false")
            || (!value.is_empty() && value.parse::<f64>().is_ok_and(f64::is_finite)))
    {
        return DefaultKind::Literal {
            value: Some(value.into()),
        };
    }
    DefaultKind::Expression
}

/// Whether `rest` is nothing but casts: `::integer[]`, `::numeric(12,2)`,
/// `::character varying`.
fn only_casts(rest: &str) -> bool {
    rest.split("::").enumerate().all(|(i, part)| match i {
        0 => part.is_empty(),
        _ => {
            !part.is_empty()
                && !part.contains("COLLATE")
                && part.chars().all(|c| {
                    c.is_alphanumeric()
                        || matches!(c, '_' | ' ' | '[' | ']' | '(' | ')' | ',' | '"' | '.')
                })
        }
    })
}

/// `"Odd name"` → `Odd name`; other names as they are.
fn unquote_ident(name: &str) -> String {
    match name.strip_prefix('"').and_then(|n| n.strip_suffix('"')) {
        Some(inner) if !inner.contains("\".\"") => inner.replace("\"\"", "\""),
        _ => name.to_string(),
    }
}

/// The condition of `CHECK (cond) [NOT VALID] [NO INHERIT]`.
fn check_expression(definition: &str) -> String {
    let Some(body) = definition.strip_prefix("CHECK ") else {
        return definition.to_string();
    };
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for (i, c) in body.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '(') => depth += 1,
            (None, ')') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return body[1..i].to_string();
                }
            }
            _ => {}
        }
    }
    body.to_string()
}

fn deferrable(row: &PgRow) -> Deferrable {
    match (flag(row, "deferrable"), flag(row, "deferred")) {
        (false, _) => Deferrable::No,
        (true, false) => Deferrable::InitiallyImmediate,
        (true, true) => Deferrable::InitiallyDeferred,
    }
}

/// `pg_constraint.confupdtype` / `confdeltype`.
fn fk_action(code: char) -> FkAction {
    match code {
        'r' => FkAction::Restrict,
        'c' => FkAction::Cascade,
        'n' => FkAction::SetNull,
        'd' => FkAction::SetDefault,
        _ => FkAction::NoAction,
    }
}

fn add_constraints(tables: &mut [TableDef], rows: &[PgRow]) {
    for row in rows {
        let table = string(row, "table_name");
        let Some(t) = tables.iter_mut().find(|t| t.name == table) else {
            continue;
        };
        let name = string(row, "name");
        let columns = strings(row, "columns");
        let definition = string(row, "definition");
        match code(row, "kind") {
            'p' => {
                t.primary_key = Some(KeyDef {
                    name,
                    columns,
                    definition,
                    deferrable: deferrable(row),
                })
            }
            'u' => t.uniques.push(KeyDef {
                name,
                columns,
                definition,
                deferrable: deferrable(row),
            }),
            'c' => t.checks.push(CheckDef {
                name,
                expression: check_expression(&definition),
                definition,
                columns,
                validated: flag(row, "validated"),
            }),
            'f' => t.foreign_keys.push(ForeignKeyDef {
                name,
                columns,
                ref_schema: text(row, "ref_schema"),
                ref_table: string(row, "ref_table"),
                ref_columns: strings(row, "ref_columns"),
                on_update: fk_action(code(row, "on_update")),
                on_delete: fk_action(code(row, "on_delete")),
                matching: match code(row, "matching") {
                    'f' => FkMatch::Full,
                    'p' => FkMatch::Partial,
                    _ => FkMatch::Simple,
                },
                deferrable: deferrable(row),
                validated: flag(row, "validated"),
                definition,
            }),
            _ => t.exclusions.push(ExclusionDef { name, definition }),
        }
    }
}

/// Indexes by the table (or materialized view) they are on.
fn indexes_by_table(rows: &[PgRow]) -> HashMap<String, Vec<IndexDef>> {
    let mut by_table: HashMap<String, Vec<IndexDef>> = HashMap::new();
    for row in rows {
        by_table
            .entry(string(row, "table_name"))
            .or_default()
            .push(index_def(row));
    }
    by_table
}

/// `pg_index.indoption` bits.
const DESC: i16 = 1;
const NULLS_FIRST: i16 = 2;

fn index_def(row: &PgRow) -> IndexDef {
    let texts = strings(row, "elements");
    let attnums: Vec<i16> = row.try_get("attnums").unwrap_or_default();
    let options: Vec<i16> = row.try_get("options").unwrap_or_default();
    let opclasses: Vec<Option<String>> = row.try_get("opclasses").unwrap_or_default();
    let keys = usize::try_from(number32(row, "key_count")).unwrap_or(texts.len());
    let elements = texts
        .iter()
        .take(keys)
        .enumerate()
        .map(|(k, text)| {
            let option = options.get(k).copied().unwrap_or(0);
            IndexElement {
                key: match attnums.get(k) {
                    Some(0) => IndexKey::Expression { sql: text.clone() },
                    _ => IndexKey::Column { name: text.clone() },
                },
                descending: option & DESC != 0,
                nulls_first: option & NULLS_FIRST != 0,
                opclass: opclasses.get(k).cloned().flatten(),
                prefix: None,
            }
        })
        .collect();
    IndexDef {
        name: string(row, "name"),
        unique: flag(row, "is_unique"),
        method: string(row, "method"),
        elements,
        include: texts.iter().skip(keys).cloned().collect(),
        predicate: text(row, "predicate"),
        definition: string(row, "definition"),
        comment: text(row, "comment"),
    }
}

fn number32(row: &PgRow, column: &str) -> i32 {
    row.try_get::<Option<i32>, _>(column)
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// Gives each partitioned table asked for its key and every partition
/// under it, each after its parent.
fn add_partitions(tables: &mut [TableDef], rows: &[PgRow]) {
    for t in tables {
        let Some(key) = rows
            .iter()
            .find(|r| string(r, "name") == t.name)
            .and_then(|r| text(r, "key"))
        else {
            continue;
        };
        let mut partitions = Vec::new();
        let mut parents = vec![t.name.clone()];
        while let Some(parent) = parents.pop() {
            for row in rows
                .iter()
                .filter(|r| text(r, "parent") == Some(parent.clone()))
            {
                let partition = PartitionDef {
                    name: string(row, "name"),
                    parent: parent.clone(),
                    bound: string(row, "bound"),
                    key: text(row, "key"),
                };
                if partition.key.is_some() {
                    parents.push(partition.name.clone());
                }
                partitions.push(partition);
            }
        }
        let strategy = match key.split_whitespace().next() {
            Some("LIST") => PartitionStrategy::List,
            Some("HASH") => PartitionStrategy::Hash,
            _ => PartitionStrategy::Range,
        };
        t.partitioning = Some(Partitioning {
            strategy,
            key,
            partitions,
        });
    }
}

fn enum_def(row: &PgRow) -> TypeDef {
    TypeDef::Enum(EnumDef {
        name: string(row, "name"),
        labels: strings(row, "labels"),
        comment: text(row, "comment"),
    })
}

fn domain_def(row: &PgRow) -> TypeDef {
    let parts = TypeParts::of(row, "base_sql");
    let names = strings(row, "check_names");
    let definitions = strings(row, "check_definitions");
    let validated: Vec<bool> = row.try_get("check_validated").unwrap_or_default();
    let checks = names
        .into_iter()
        .zip(definitions)
        .zip(validated)
        .map(|((name, definition), validated)| CheckDef {
            name,
            expression: check_expression(&definition),
            definition,
            columns: Vec::new(),
            validated,
        })
        .collect();
    TypeDef::Domain(DomainDef {
        name: string(row, "name"),
        base: NativeType {
            kind: base_kind(&parts),
            sql: parts.base_sql,
        },
        default: text(row, "default_sql").map(|sql| DefaultDef {
            kind: default_kind(&sql),
            sql,
        }),
        not_null: flag(row, "not_null"),
        checks,
        comment: text(row, "comment"),
    })
}

/// A view; a materialized view takes its indexes from `indexes`.
fn view_def(row: &PgRow, indexes: &mut HashMap<String, Vec<IndexDef>>) -> ViewDef {
    let name = string(row, "name");
    let definition = string(row, "definition");
    ViewDef {
        indexes: indexes.remove(&name).unwrap_or_default(),
        materialized: flag(row, "materialized"),
        definition: definition
            .trim()
            .trim_end_matches(';')
            .trim_end()
            .to_string(),
        depends_on: strings(row, "depends_on"),
        comment: text(row, "comment"),
        name,
    }
}

fn routine_def(row: &PgRow) -> RoutineDef {
    RoutineDef {
        name: string(row, "name"),
        kind: match code(row, "kind") {
            'p' => RoutineKind::Procedure,
            _ => RoutineKind::Function,
        },
        arguments: string(row, "arguments"),
        language: string(row, "language"),
        definition: string(row, "definition"),
        comment: text(row, "comment"),
    }
}

fn trigger_def(row: &PgRow) -> TriggerDef {
    TriggerDef {
        table: string(row, "table_name"),
        name: string(row, "name"),
        function: string(row, "function"),
        enabled: flag(row, "enabled"),
        definition: string(row, "definition"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_types_are_told_apart_from_format_types_text() {
        let char_ = |length, varying| TypeKind::Char { length, varying };
        assert_eq!(
            builtin_kind("integer"),
            TypeKind::Int {
                bytes: 4,
                unsigned: false
            }
        );
        assert_eq!(builtin_kind("character varying(40)"), char_(Some(40), true));
        assert_eq!(builtin_kind("character varying"), char_(None, true));
        assert_eq!(builtin_kind("character(2)"), char_(Some(2), false));
        assert_eq!(
            builtin_kind("numeric(12,2)"),
            TypeKind::Decimal {
                precision: Some(12),
                scale: Some(2)
            }
        );
        assert_eq!(
            builtin_kind("numeric(7)"),
            TypeKind::Decimal {
                precision: Some(7),
                scale: Some(0)
            }
        );
        assert_eq!(
            builtin_kind("numeric"),
            TypeKind::Decimal {
                precision: None,
                scale: None
            }
        );
        assert_eq!(
            builtin_kind("timestamp(3) with time zone"),
            TypeKind::Timestamp {
                tz: true,
                precision: Some(3)
            }
        );
        assert_eq!(
            builtin_kind("timestamp without time zone"),
            TypeKind::Timestamp {
                tz: false,
                precision: None
            }
        );
        assert_eq!(
            builtin_kind("time with time zone"),
            TypeKind::Time {
                tz: true,
                precision: None
            }
        );
        assert_eq!(builtin_kind("interval year to month"), TypeKind::Interval);
        assert_eq!(
            builtin_kind("tsvector"),
            TypeKind::Other {
                name: "tsvector".into()
            }
        );
    }

    #[test]
    fn defaults_are_told_apart() {
        let literal = |v: &str| DefaultKind::Literal {
            value: Some(v.into()),
        };
        assert_eq!(
            default_kind("nextval('orders_id_seq'::regclass)"),
            DefaultKind::Sequence {
                name: "orders_id_seq".into()
            }
        );
        assert_eq!(
            default_kind("nextval('\"Odd\"\"seq\"'::regclass)"),
            DefaultKind::Sequence {
                name: "Odd\"seq".into()
            }
        );
        assert_eq!(default_kind("now()"), DefaultKind::Now);
        assert_eq!(default_kind("CURRENT_TIMESTAMP"), DefaultKind::Now);
        assert_eq!(default_kind("'pending'::order_status"), literal("pending"));
        assert_eq!(default_kind("'it''s'::text"), literal("it's"));
        assert_eq!(default_kind("'{}'::integer[]"), literal("{}"));
        assert_eq!(default_kind("'0'::numeric(12,2)"), literal("0"));
        assert_eq!(default_kind("0"), literal("0"));
        assert_eq!(default_kind("'-1'::integer"), literal("-1"));
        assert_eq!(default_kind("'5000000000'::bigint"), literal("5000000000"));
        assert_eq!(default_kind("3.25"), literal("3.25"));
        assert_eq!(default_kind("LOCALTIMESTAMP"), DefaultKind::Expression);
        assert_eq!(
            default_kind("'x'::text COLLATE \"C\""),
            DefaultKind::Expression
        );
        assert_eq!(default_kind("(-1.5)"), literal("-1.5"));
        assert_eq!(default_kind("true"), literal("true"));
        assert_eq!(
            default_kind("NULL::text"),
            DefaultKind::Literal { value: None }
        );
        assert_eq!(
            default_kind("'a'::text || 'b'::text"),
            DefaultKind::Expression
        );
        assert_eq!(default_kind("lower('A'::text)"), DefaultKind::Expression);
        assert_eq!(default_kind("CURRENT_DATE"), DefaultKind::Expression);
        assert_eq!(default_kind("gen_random_uuid()"), DefaultKind::Expression);
    }

    #[test]
    fn a_checks_condition_is_its_outer_parentheses_content() {
        assert_eq!(check_expression("CHECK (quantity > 0)"), "quantity > 0");
        assert_eq!(
            check_expression("CHECK ((a > 0) AND (b <> ')'::text)) NOT VALID"),
            "(a > 0) AND (b <> ')'::text)"
        );
    }
}
