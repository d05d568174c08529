//! SQLite introspection into the schema model, from the pragma
//! table-valued functions joined to `sqlite_schema` (one query per kind of
//! fact, never one per table), all in one read transaction so they see one
//! state.
//!
//! The pragmas say most things: columns with their declared types, NOT
//! NULL, default text, key position and whether they are generated
//! (`pragma_table_xinfo`), indexes and their elements (`pragma_index_list`,
//! `pragma_index_xinfo`), foreign keys (`pragma_foreign_key_list`). What
//! they leave out is read from the `CREATE` text SQLite keeps in
//! `sqlite_schema`: CHECK constraints, generated columns' expressions,
//! AUTOINCREMENT, COLLATE, constraint names, DEFERRABLE, an index's
//! expression elements and its WHERE.
//!
//! SQLite names no constraint it is not told to name: a key, unique
//! constraint, check or foreign key without `CONSTRAINT name` gets the
//! name PostgreSQL would give it (`t_pkey`, `t_a_b_key`, `t_a_check`,
//! `t_a_fkey`), so the model is stable and readable across dialects.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{Db, ident};
use crate::drivers::ConnectorError;
use crate::drivers::literal::quoted;
use crate::model::schema::{
    CheckDef, ColumnDef, ColumnRef, DefaultDef, DefaultKind, Deferrable, FkAction, FkMatch,
    ForeignKeyDef, Generation, Identity, IndexDef, IndexElement, IndexKey, KeyDef, NativeType,
    Schema, SequenceDef, TableDef, TriggerDef, TypeKind, ViewDef,
};

/// Every table, index, view and trigger with the text that created it.
const OBJECTS_SQL: &str = "SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE name NOT LIKE 'sqlite\\_%' ESCAPE '\\'";

/// Tables asked for (`?1`, a JSON array) with whether they are `WITHOUT
/// ROWID`.
const TABLES_SQL: &str = "
SELECT l.name, l.wr FROM pragma_table_list l
WHERE l.schema = 'main' AND l.type = 'table' AND l.name IN (SELECT value FROM json_each(?1))";

/// Columns of the tables asked for, in order, hidden (generated) ones too.
const COLUMNS_SQL: &str = "
SELECT m.name AS table_name, x.name, x.type, x.\"notnull\" AS not_null, x.dflt_value, x.pk, x.hidden
FROM sqlite_schema m JOIN pragma_table_xinfo(m.name) x
WHERE m.type = 'table' AND m.name IN (SELECT value FROM json_each(?1))
ORDER BY m.name, x.cid";

/// Indexes of the tables asked for, key element by key element (the
/// trailing rowid or row columns an index carries are not keys).
const INDEXES_SQL: &str = "
SELECT m.name AS table_name, l.name AS index_name, l.\"unique\" AS is_unique, l.origin,
       x.cid, x.name AS column_name, x.\"desc\" AS descending
FROM sqlite_schema m JOIN pragma_index_list(m.name) l JOIN pragma_index_xinfo(l.name) x
WHERE m.type = 'table' AND m.name IN (SELECT value FROM json_each(?1)) AND x.\"key\" = 1
ORDER BY m.name, l.name, x.seqno";

/// Foreign keys of the tables asked for, column by column.
const FOREIGN_KEYS_SQL: &str = "
SELECT m.name AS table_name, f.id, f.\"table\" AS ref_table, f.\"from\" AS from_column,
       f.\"to\" AS to_column, f.on_update, f.on_delete
FROM sqlite_schema m JOIN pragma_foreign_key_list(m.name) f
WHERE m.type = 'table' AND m.name IN (SELECT value FROM json_each(?1))
ORDER BY m.name, f.id, f.seq";

/// A table's primary key columns, for a foreign key that names none.
const KEY_OF_SQL: &str = "SELECT name FROM pragma_table_info(?1) WHERE pk > 0 ORDER BY pk";

/// Reads the schema model of `tables` in `db`, with the views and the
/// triggers on those tables and on views.
pub(super) async fn read(db: &Db, tables: &[String]) -> Result<Schema, ConnectorError> {
    let fail = |e: sqlx::Error| db.failed("reading the schema: ", e);
    let mut tx = db.pool.begin().await.map_err(fail)?;
    let asked = serde_json::Value::from(tables.to_vec()).to_string();
    let catalog = Catalog::read(&mut tx, &asked).await.map_err(fail)?;
    let parents = parent_keys(&mut tx, &catalog).await.map_err(fail)?;
    // Read only: nothing to keep.
    let _ = tx.rollback().await;
    Ok(catalog.into_schema(&parents))
}

/// The catalog rows, one list per query.
struct Catalog {
    objects: Vec<SqliteRow>,
    tables: Vec<SqliteRow>,
    columns: Vec<SqliteRow>,
    indexes: Vec<SqliteRow>,
    foreign_keys: Vec<SqliteRow>,
    /// `sqlite_sequence`: the last AUTOINCREMENT value of each table.
    sequences: HashMap<String, i64>,
}

impl Catalog {
    async fn read(conn: &mut SqliteConnection, asked: &str) -> Result<Self, sqlx::Error> {
        let objects = sqlx::query(OBJECTS_SQL).fetch_all(&mut *conn).await?;
        let fetch = |sql: &'static str| sqlx::query(sql).bind(asked.to_string());
        let tables = fetch(TABLES_SQL).fetch_all(&mut *conn).await?;
        let columns = fetch(COLUMNS_SQL).fetch_all(&mut *conn).await?;
        let indexes = fetch(INDEXES_SQL).fetch_all(&mut *conn).await?;
        let foreign_keys = fetch(FOREIGN_KEYS_SQL).fetch_all(&mut *conn).await?;
        let has_sequences: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'sqlite_sequence'",
        )
        .fetch_optional(&mut *conn)
        .await?;
        let sequences = match has_sequences {
            Some(_) => sqlx::query_as("SELECT name, seq FROM sqlite_sequence")
                .fetch_all(&mut *conn)
                .await?
                .into_iter()
                .collect(),
            None => HashMap::new(),
        };
        Ok(Self {
            objects,
            tables,
            columns,
            indexes,
            foreign_keys,
            sequences,
        })
    }

    /// The `CREATE` text of the object called `name`.
    fn sql_of(&self, name: &str) -> String {
        self.objects
            .iter()
            .find(|r| string(r, "name") == name)
            .map(|r| string(r, "sql"))
            .unwrap_or_default()
    }

    /// Puts the rows together into the model.
    fn into_schema(self, parents: &HashMap<String, Vec<String>>) -> Schema {
        let tables: Vec<TableDef> = self
            .tables
            .iter()
            .map(|r| self.table_def(&string(r, "name"), number(r, "wr") != 0, parents))
            .collect();
        let asked: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        let of_type = |kind: &'static str| {
            self.objects
                .iter()
                .filter(move |r| string(r, "type") == kind)
        };
        let view_names: Vec<String> = of_type("view").map(|r| string(r, "name")).collect();
        let relations: Vec<String> = of_type("table")
            .map(|r| string(r, "name"))
            .chain(view_names.iter().cloned())
            .collect();
        let views = of_type("view").map(|r| view_def(r, &relations)).collect();
        let mut triggers: Vec<TriggerDef> = of_type("trigger")
            .filter(|r| {
                let on = string(r, "tbl_name");
                asked.contains(&on.as_str()) || view_names.contains(&on)
            })
            .map(trigger_def)
            .collect();
        triggers.sort_by(|a, b| (&a.table, &a.name).cmp(&(&b.table, &b.name)));
        Schema {
            dialect: "sqlite".into(),
            namespace: None,
            tables,
            views,
            triggers,
            ..Schema::default()
        }
    }

    /// The table `name` from its rows and its `CREATE TABLE` text.
    fn table_def(
        &self,
        name: &str,
        without_rowid: bool,
        parents: &HashMap<String, Vec<String>>,
    ) -> TableDef {
        let text = parse_table(&self.sql_of(name));
        let columns = rows_of(&self.columns, name);
        let indexes = rows_of(&self.indexes, name);
        let key: Vec<(i64, String)> = {
            let mut key: Vec<(i64, String)> = columns
                .iter()
                .filter(|r| number(r, "pk") > 0)
                .map(|r| (number(r, "pk"), string(r, "name")))
                .collect();
            key.sort();
            key
        };
        let key: Vec<String> = key.into_iter().map(|(_, c)| c).collect();
        let has_key_index = indexes.iter().any(|r| string(r, "origin") == "pk");
        let rowid_alias = match (key.as_slice(), without_rowid || has_key_index) {
            ([only], false) => Some(only.clone()),
            _ => None,
        };
        let mut table = TableDef {
            name: name.to_string(),
            ..TableDef::default()
        };
        for row in columns.iter().copied() {
            let column = self.column_def(row, name, &text, rowid_alias.as_deref(), without_rowid);
            table.columns.push(column);
        }
        let column_names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
        table.primary_key = (!key.is_empty()).then(|| KeyDef {
            name: text
                .primary_key_name
                .clone()
                .unwrap_or_else(|| format!("{name}_pkey")),
            definition: format!("PRIMARY KEY {}", column_list(&key)),
            columns: key,
            deferrable: Deferrable::No,
        });
        add_indexes(&mut table, &indexes, &text, |index| self.sql_of(index));
        table.checks = check_defs(name, &text.checks, &column_names);
        table.foreign_keys =
            foreign_key_defs(name, &rows_of(&self.foreign_keys, name), &text, parents);
        table
    }

    fn column_def(
        &self,
        row: &SqliteRow,
        table: &str,
        text: &TableText,
        rowid_alias: Option<&str>,
        without_rowid: bool,
    ) -> ColumnDef {
        let name = string(row, "name");
        let declared = string(row, "type");
        let parsed = text.columns.get(&name.to_lowercase());
        let is_alias = rowid_alias == Some(name.as_str());
        let in_key = number(row, "pk") > 0;
        let hidden = number(row, "hidden");
        let identity = is_alias.then(|| {
            let autoincrement = parsed.is_some_and(|c| c.autoincrement);
            identity(table, &name, autoincrement, self.sequences.get(table))
        });
        ColumnDef {
            not_null: number(row, "not_null") != 0 || is_alias || (without_rowid && in_key),
            native: NativeType {
                kind: type_kind(&declared),
                sql: declared,
            },
            default: text_of(row, "dflt_value").map(|d| default_def(&d)),
            identity,
            generated: match hidden {
                2 | 3 => parsed.and_then(|c| c.generated.clone()),
                _ => None,
            },
            collation: parsed.and_then(|c| c.collation.clone()),
            comment: None,
            on_update: None,
            name,
        }
    }
}

/// A rowid alias (`INTEGER PRIMARY KEY`) takes the next value past the
/// largest when none is given; with AUTOINCREMENT, past the largest ever
/// handed out, which `sqlite_sequence` keeps (no row until the first).
fn identity(table: &str, column: &str, autoincrement: bool, last: Option<&i64>) -> Identity {
    if !autoincrement {
        return Identity {
            generation: Generation::ByDefault,
            sequence: None,
            next: None,
        };
    }
    Identity {
        generation: Generation::AutoIncrement,
        sequence: Some(SequenceDef {
            name: "sqlite_sequence".into(),
            data_type: "INTEGER".into(),
            start: 1,
            increment: 1,
            min: 1,
            max: i64::MAX,
            cache: 1,
            cycle: false,
            last_value: last.copied(),
            owned_by: Some(ColumnRef {
                table: table.into(),
                column: column.into(),
            }),
            comment: None,
        }),
        next: None,
    }
}

/// The key columns of the tables foreign keys name without columns
/// (`REFERENCES parent`, meaning its primary key).
async fn parent_keys(
    conn: &mut SqliteConnection,
    catalog: &Catalog,
) -> Result<HashMap<String, Vec<String>>, sqlx::Error> {
    let mut keys = HashMap::new();
    for row in &catalog.foreign_keys {
        let parent = string(row, "ref_table");
        if text_of(row, "to_column").is_some() || keys.contains_key(&parent) {
            continue;
        }
        let columns: Vec<String> = sqlx::query_scalar(KEY_OF_SQL)
            .bind(&parent)
            .fetch_all(&mut *conn)
            .await?;
        keys.insert(parent, columns);
    }
    Ok(keys)
}

/// The rows of `table`.
fn rows_of<'a>(all: &'a [SqliteRow], table: &str) -> Vec<&'a SqliteRow> {
    all.iter()
        .filter(|r| string(r, "table_name") == table)
        .collect()
}

fn text_of(row: &SqliteRow, column: &str) -> Option<String> {
    row.try_get(column).ok().flatten()
}

fn string(row: &SqliteRow, column: &str) -> String {
    text_of(row, column).unwrap_or_default()
}

fn number(row: &SqliteRow, column: &str) -> i64 {
    row.try_get::<Option<i64>, _>(column)
        .ok()
        .flatten()
        .unwrap_or(0)
}

/// `(a, b)`, each name quoted only when it must be.
fn column_list(columns: &[String]) -> String {
    let names: Vec<String> = columns.iter().map(|c| sql_name(c)).collect();
    format!("({})", names.join(", "))
}

/// A name as SQL: bare when it is a plain word, else quoted.
fn sql_name(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if plain { name.to_string() } else { ident(name) }
}

/// What a declared type is, by SQLite's affinity rules in their order
/// (INT → integer; CHAR, CLOB, TEXT → text; BLOB or none → blob; REAL,
/// FLOA, DOUB → real; anything else → numeric), refined within the
/// affinity by the names the row model reads (`BOOLEAN`, `DATETIME`,
/// `DECIMAL(10,2)`, `VARCHAR(40)`, the sink's own `DATE_TEXT`).
pub(crate) fn type_kind(declared: &str) -> TypeKind {
    let d = declared.to_ascii_uppercase();
    let has = |s: &str| d.contains(s);
    let numbers = type_numbers(&d);
    if has("INT") {
        TypeKind::Int {
            bytes: 8,
            unsigned: false,
        }
    } else if has("CHAR") || has("CLOB") || has("TEXT") {
        named_kind(&d, &numbers).unwrap_or_else(|| match has("CHAR") {
            true => TypeKind::Char {
                length: numbers.first().copied(),
                varying: has("VAR"),
            },
            false => TypeKind::Text,
        })
    } else if has("BLOB") || d.trim().is_empty() {
        TypeKind::Bytes
    } else if has("REAL") || has("FLOA") || has("DOUB") {
        TypeKind::Float { bytes: 8 }
    } else {
        named_kind(&d, &numbers).unwrap_or_else(|| TypeKind::Other {
            name: declared.to_string(),
        })
    }
}

/// The kinds a type's name tells, in the row model's order.
fn named_kind(d: &str, numbers: &[u32]) -> Option<TypeKind> {
    let has = |s: &str| d.contains(s);
    Some(match () {
        _ if has("BOOL") => TypeKind::Bool,
        _ if has("TIMESTAMPTZ") => TypeKind::Timestamp {
            tz: true,
            precision: None,
        },
        _ if has("TIMESTAMP") || has("DATETIME") => TypeKind::Timestamp {
            tz: false,
            precision: None,
        },
        _ if has("DATE") => TypeKind::Date,
        _ if has("TIME") => TypeKind::Time {
            tz: false,
            precision: None,
        },
        _ if has("UUID") => TypeKind::Uuid,
        _ if has("JSON") => TypeKind::Json { binary: false },
        _ if has("DECIMAL") || has("NUMERIC") => TypeKind::Decimal {
            precision: numbers.first().copied(),
            scale: numbers.get(1).copied(),
        },
        _ => return None,
    })
}

/// The numbers in a type's parentheses: `NUMERIC(12,2)` → [12, 2].
fn type_numbers(declared: &str) -> Vec<u32> {
    let Some(open) = declared.find('(') else {
        return Vec::new();
    };
    let inner = &declared[open + 1..];
    let inner = &inner[..inner.find(')').unwrap_or(inner.len())];
    inner
        .split(',')
        .map_while(|n| n.trim().parse().ok())
        .collect()
}

/// A default from `dflt_value`, the text SQLite keeps (without the
/// parentheses an expression was written in, which `sql` puts back so it
/// can follow `DEFAULT` again).
pub(crate) fn default_def(text: &str) -> DefaultDef {
    let t = text.trim();
    let upper = t.to_ascii_uppercase();
    let literal = |value: Option<String>| DefaultKind::Literal { value };
    let kind = if upper == "NULL" {
        literal(None)
    } else if let Some((value, "")) = quoted(t) {
        literal(Some(value))
    } else if is_number(t) {
        literal(Some(t.trim_start_matches('+').to_string()))
    } else if upper == "TRUE" || upper == "FALSE" {
        literal(Some(upper.to_lowercase()))
    } else if matches!(
        upper.as_str(),
        "CURRENT_TIMESTAMP"
            | "CURRENT_DATE"
            | "CURRENT_TIME"
            | "DATETIME('NOW')"
            | "DATE('NOW')"
            | "TIME('NOW')"
    ) {
        DefaultKind::Now
    } else {
        DefaultKind::Expression
    };
    let bare = match kind {
        DefaultKind::Literal { .. } => true,
        DefaultKind::Now => !t.contains('('),
        _ => false,
    };
    DefaultDef {
        sql: if bare {
            t.to_string()
        } else {
            format!("({t})")
        },
        kind,
    }
}

/// `12`, `-1.5`, `+3`, `1e3`, `0x1F`.
fn is_number(t: &str) -> bool {
    let unsigned = t.trim_start_matches(['+', '-']);
    let hex = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"));
    match hex {
        Some(h) => !h.is_empty() && h.chars().all(|c| c.is_ascii_hexdigit()),
        None => {
            unsigned.starts_with(|c: char| c.is_ascii_digit() || c == '.')
                && unsigned.parse::<f64>().is_ok_and(f64::is_finite)
        }
    }
}

/// Unique constraints (`origin` u), the key's index of a table without a
/// rowid alias (pk: the key itself), and every index created on its own
/// (c) with its elements, WHERE and text.
fn add_indexes(
    table: &mut TableDef,
    rows: &[&SqliteRow],
    text: &TableText,
    sql_of: impl Fn(&str) -> String,
) {
    let mut names: Vec<String> = rows.iter().map(|r| string(r, "index_name")).collect();
    names.dedup();
    for index in names {
        let elements: Vec<&SqliteRow> = rows
            .iter()
            .copied()
            .filter(|r| string(r, "index_name") == index)
            .collect();
        let columns: Vec<String> = elements.iter().map(|r| string(r, "column_name")).collect();
        match string(elements[0], "origin").as_str() {
            "u" => table.uniques.push(KeyDef {
                name: text
                    .unique_name(&columns)
                    .unwrap_or_else(|| format!("{}_{}_key", table.name, columns.join("_"))),
                definition: format!("UNIQUE {}", column_list(&columns)),
                columns,
                deferrable: Deferrable::No,
            }),
            "c" => {
                let sql = sql_of(&index);
                table.indexes.push(index_def(&index, &elements, &sql));
            }
            _ => {}
        }
    }
}

/// An index created with `CREATE INDEX`: its elements from
/// `pragma_index_xinfo` (an expression, cid -2, by its text), its
/// condition and its statement verbatim. SQLite sorts NULLs before every
/// value, so first when ascending and last when descending.
fn index_def(name: &str, rows: &[&SqliteRow], sql: &str) -> IndexDef {
    let parsed = parse_index(sql);
    let elements = rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let descending = number(r, "descending") != 0;
            let key = match text_of(r, "column_name") {
                Some(name) if number(r, "cid") >= 0 => IndexKey::Column { name },
                _ => IndexKey::Expression {
                    sql: parsed.elements.get(i).cloned().unwrap_or_default(),
                },
            };
            IndexElement {
                key,
                descending,
                nulls_first: !descending,
                opclass: None,
                prefix: None,
            }
        })
        .collect();
    IndexDef {
        name: name.to_string(),
        unique: number(rows[0], "is_unique") != 0,
        method: "btree".into(),
        elements,
        include: Vec::new(),
        predicate: parsed.predicate,
        definition: sql.to_string(),
        comment: None,
    }
}

/// The table's checks, named as written or as PostgreSQL names them
/// (`t_col_check` after the first column named, `t_check` when none; a
/// number added to tell repeats apart).
fn check_defs(table: &str, checks: &[CheckText], columns: &[String]) -> Vec<CheckDef> {
    let mut out: Vec<CheckDef> = Vec::new();
    for check in checks {
        let named = named_columns(&check.expression, columns);
        let name = check.name.clone().unwrap_or_else(|| {
            let base = match check.column.as_ref().or(named.first()) {
                Some(c) => format!("{table}_{c}_check"),
                None => format!("{table}_check"),
            };
            let mut name = base.clone();
            let mut n = 0;
            while out.iter().any(|c| c.name == name) {
                n += 1;
                name = format!("{base}{n}");
            }
            name
        });
        out.push(CheckDef {
            name,
            definition: format!("CHECK ({})", check.expression),
            expression: check.expression.clone(),
            columns: named,
            validated: true,
        });
    }
    out
}

/// The table's columns an expression names, in order of first mention.
fn named_columns(expression: &str, columns: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for token in tokens(expression) {
        if !matches!(token.kind, Kind::Word | Kind::Name) {
            continue;
        }
        let word = unquote(&expression[token.start..token.end]);
        if let Some(c) = columns.iter().find(|c| c.eq_ignore_ascii_case(&word))
            && !out.contains(c)
        {
            out.push(c.clone());
        }
    }
    out
}

/// The table's foreign keys from `pragma_foreign_key_list` (numbered last
/// declared first), in declaration order, with their names and
/// DEFERRABLE from the table's text.
fn foreign_key_defs(
    table: &str,
    rows: &[&SqliteRow],
    text: &TableText,
    parents: &HashMap<String, Vec<String>>,
) -> Vec<ForeignKeyDef> {
    let mut ids: Vec<i64> = rows.iter().map(|r| number(r, "id")).collect();
    ids.dedup();
    ids.reverse();
    ids.iter()
        .map(|id| {
            let parts: Vec<&SqliteRow> = rows
                .iter()
                .copied()
                .filter(|r| number(r, "id") == *id)
                .collect();
            foreign_key_def(table, &parts, text, parents)
        })
        .collect()
}

fn foreign_key_def(
    table: &str,
    parts: &[&SqliteRow],
    text: &TableText,
    parents: &HashMap<String, Vec<String>>,
) -> ForeignKeyDef {
    let first = parts[0];
    let ref_table = string(first, "ref_table");
    let columns: Vec<String> = parts.iter().map(|r| string(r, "from_column")).collect();
    let ref_columns: Vec<String> = match text_of(first, "to_column") {
        Some(_) => parts.iter().map(|r| string(r, "to_column")).collect(),
        None => parents.get(&ref_table).cloned().unwrap_or_default(),
    };
    let on_update = fk_action(&string(first, "on_update"));
    let on_delete = fk_action(&string(first, "on_delete"));
    let written = text.foreign_key(&columns);
    let mut definition = format!(
        "FOREIGN KEY {} REFERENCES {}{}",
        column_list(&columns),
        sql_name(&ref_table),
        column_list(&ref_columns)
    );
    for (word, action) in [("UPDATE", on_update), ("DELETE", on_delete)] {
        if action != FkAction::NoAction {
            definition.push_str(&format!(" ON {word} {}", action.sql()));
        }
    }
    let deferrable = written.map_or(Deferrable::No, |f| f.deferrable);
    match deferrable {
        Deferrable::No => {}
        Deferrable::InitiallyImmediate => definition.push_str(" DEFERRABLE"),
        Deferrable::InitiallyDeferred => definition.push_str(" DEFERRABLE INITIALLY DEFERRED"),
    }
    ForeignKeyDef {
        name: written
            .and_then(|f| f.name.clone())
            .unwrap_or_else(|| format!("{table}_{}_fkey", columns.join("_"))),
        columns,
        ref_schema: None,
        ref_table,
        ref_columns,
        on_update,
        on_delete,
        matching: FkMatch::Simple,
        deferrable,
        validated: true,
        definition,
    }
}

/// `pragma_foreign_key_list`'s action words.
fn fk_action(words: &str) -> FkAction {
    match words {
        "CASCADE" => FkAction::Cascade,
        "SET NULL" => FkAction::SetNull,
        "SET DEFAULT" => FkAction::SetDefault,
        "RESTRICT" => FkAction::Restrict,
        _ => FkAction::NoAction,
    }
}

fn view_def(row: &SqliteRow, relations: &[String]) -> ViewDef {
    let name = string(row, "name");
    let sql = string(row, "sql");
    let definition = after_as(&sql)
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    let mut depends_on: Vec<String> = relations
        .iter()
        .filter(|r| **r != name && !named_columns(&definition, &[(*r).clone()]).is_empty())
        .cloned()
        .collect();
    depends_on.sort();
    ViewDef {
        name,
        materialized: false,
        definition,
        depends_on,
        indexes: Vec::new(),
        comment: None,
    }
}

/// A trigger, whose body SQLite keeps inline: it runs no function.
fn trigger_def(row: &SqliteRow) -> TriggerDef {
    TriggerDef {
        table: string(row, "tbl_name"),
        name: string(row, "name"),
        function: String::new(),
        enabled: true,
        definition: string(row, "sql"),
    }
}

// ---- Reading the CREATE text -------------------------------------------

/// What a token is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A bare word: a keyword or a name.
    Word,
    /// A quoted name: `"a b"`, `` `a` ``, `[a]`.
    Name,
    /// A string literal.
    Text,
    Open,
    Close,
    Comma,
    /// Anything else: an operator, a number's sign, `;`.
    Other,
}

/// A token, by where it is in the text.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: Kind,
    start: usize,
    end: usize,
}

/// Splits SQL into tokens, comments left out.
fn tokens(sql: &str) -> Vec<Token> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                continue;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i = sql[i + 2..].find("*/").map_or(bytes.len(), |n| i + n + 4);
                continue;
            }
            b'\'' | b'"' | b'`' | b'[' => {
                let close = if c == b'[' { b']' } else { c };
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == close {
                        if close != b']' && bytes.get(i + 1) == Some(&close) {
                            i += 2;
                            continue;
                        }
                        break;
                    }
                    i += 1;
                }
                i += 1;
                if c == b'\'' { Kind::Text } else { Kind::Name }
            }
            b'(' => {
                i += 1;
                Kind::Open
            }
            b')' => {
                i += 1;
                Kind::Close
            }
            b',' => {
                i += 1;
                Kind::Comma
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'$'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                Kind::Word
            }
            _ => {
                i += 1;
                Kind::Other
            }
        };
        out.push(Token {
            kind,
            start,
            end: i.min(bytes.len()),
        });
    }
    out
}

/// A quoted name without its quotes; a bare one as it is.
fn unquote(name: &str) -> String {
    let pairs = [('"', '"'), ('`', '`'), ('[', ']')];
    for (open, close) in pairs {
        if let Some(inner) = name.strip_prefix(open).and_then(|n| n.strip_suffix(close)) {
            return match open {
                '[' => inner.to_string(),
                q => inner.replace(&format!("{q}{q}"), &q.to_string()),
            };
        }
    }
    name.to_string()
}

/// The tokens of `sql` with the text they come from.
struct Tokens<'a> {
    sql: &'a str,
    list: Vec<Token>,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql,
            list: tokens(sql),
        }
    }

    fn text(&self, i: usize) -> &'a str {
        self.list.get(i).map_or("", |t| &self.sql[t.start..t.end])
    }

    /// Whether token `i` is the keyword `word`.
    fn is(&self, i: usize, word: &str) -> bool {
        self.list.get(i).is_some_and(|t| t.kind == Kind::Word)
            && self.text(i).eq_ignore_ascii_case(word)
    }

    fn kind(&self, i: usize) -> Option<Kind> {
        self.list.get(i).map(|t| t.kind)
    }

    /// The index of the `)` closing the `(` at `open`.
    fn closing(&self, open: usize) -> usize {
        let mut depth = 0usize;
        for i in open..self.list.len() {
            match self.list[i].kind {
                Kind::Open => depth += 1,
                Kind::Close => {
                    depth -= 1;
                    if depth == 0 {
                        return i;
                    }
                }
                _ => {}
            }
        }
        self.list.len()
    }

    /// The text from token `from` to token `to` (both included).
    fn span(&self, from: usize, to: usize) -> &'a str {
        match (self.list.get(from), self.list.get(to)) {
            (Some(a), Some(b)) if from <= to => &self.sql[a.start..b.end],
            _ => "",
        }
    }

    /// The token ranges between top-level commas in `from..to`.
    fn items(&self, from: usize, to: usize) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut start = from;
        for i in from..to {
            match self.list[i].kind {
                Kind::Open => depth += 1,
                Kind::Close => depth = depth.saturating_sub(1),
                Kind::Comma if depth == 0 => {
                    out.push((start, i));
                    start = i + 1;
                }
                _ => {}
            }
        }
        if start < to {
            out.push((start, to));
        }
        out
    }

    /// The names in the parenthesised list at `open`.
    fn names(&self, open: usize) -> Vec<String> {
        self.items(open + 1, self.closing(open))
            .into_iter()
            .map(|(a, _)| unquote(self.text(a)))
            .collect()
    }
}

/// What a table's `CREATE TABLE` text says beyond the pragmas.
#[derive(Debug, Default)]
struct TableText {
    /// By lowercased column name.
    columns: HashMap<String, ColumnText>,
    primary_key_name: Option<String>,
    uniques: Vec<(Option<String>, Vec<String>)>,
    checks: Vec<CheckText>,
    foreign_keys: Vec<ForeignKeyText>,
}

impl TableText {
    fn unique_name(&self, columns: &[String]) -> Option<String> {
        self.uniques
            .iter()
            .find(|(_, c)| same_names(c, columns))
            .and_then(|(n, _)| n.clone())
    }

    fn foreign_key(&self, columns: &[String]) -> Option<&ForeignKeyText> {
        self.foreign_keys
            .iter()
            .find(|f| same_names(&f.columns, columns))
    }
}

fn same_names(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

#[derive(Debug, Default)]
struct ColumnText {
    generated: Option<String>,
    autoincrement: bool,
    collation: Option<String>,
}

#[derive(Debug)]
struct CheckText {
    name: Option<String>,
    /// The column it is written on, for a column constraint.
    column: Option<String>,
    expression: String,
}

#[derive(Debug)]
struct ForeignKeyText {
    name: Option<String>,
    columns: Vec<String>,
    deferrable: Deferrable,
}

/// Reads a `CREATE TABLE name (…)` statement's column definitions and
/// table constraints.
fn parse_table(sql: &str) -> TableText {
    let t = Tokens::new(sql);
    let mut out = TableText::default();
    let Some(open) = (0..t.list.len()).find(|i| t.kind(*i) == Some(Kind::Open)) else {
        return out;
    };
    let close = t.closing(open);
    for (from, to) in t.items(open + 1, close) {
        let constraint = ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"]
            .iter()
            .any(|w| t.is(from, w));
        let column = (!constraint).then(|| unquote(t.text(from)));
        let first = if constraint { from } else { from + 1 };
        read_clauses(&t, first, to, column.as_deref(), &mut out);
    }
    out
}

/// Reads the constraint clauses in tokens `from..to` of one column
/// definition (`column`) or table constraint.
fn read_clauses(t: &Tokens, from: usize, to: usize, column: Option<&str>, out: &mut TableText) {
    let mut name: Option<String> = None;
    let mut this = ColumnText::default();
    let own = || column.map(|c| vec![c.to_string()]).unwrap_or_default();
    let mut i = from;
    while i < to {
        let next_open = (i + 1..to).find(|j| t.kind(*j) == Some(Kind::Open));
        if t.is(i, "CONSTRAINT") {
            name = Some(unquote(t.text(i + 1)));
            i += 2;
            continue;
        }
        if t.is(i, "PRIMARY") {
            out.primary_key_name = name.take();
        } else if t.is(i, "UNIQUE") {
            let columns = match (column, next_open) {
                (None, Some(o)) => t.names(o),
                _ => own(),
            };
            out.uniques.push((name.take(), columns));
        } else if t.is(i, "CHECK")
            && let Some(o) = next_open
        {
            let c = t.closing(o);
            out.checks.push(CheckText {
                name: name.take(),
                column: column.map(str::to_string),
                expression: t.span(o + 1, c - 1).trim().to_string(),
            });
            i = c + 1;
            continue;
        } else if t.is(i, "FOREIGN")
            && let Some(o) = next_open
        {
            let columns = t.names(o);
            let end = t.closing(o);
            let deferrable = deferrable(t, end, to);
            out.foreign_keys.push(ForeignKeyText {
                name: name.take(),
                columns,
                deferrable,
            });
            i = end + 1;
            continue;
        } else if t.is(i, "REFERENCES") && column.is_some() {
            out.foreign_keys.push(ForeignKeyText {
                name: name.take(),
                columns: own(),
                deferrable: deferrable(t, i, to),
            });
        } else if t.is(i, "AS")
            && let Some(o) = next_open.filter(|o| *o == i + 1)
        {
            let c = t.closing(o);
            this.generated = Some(t.span(o + 1, c - 1).trim().to_string());
            i = c + 1;
            continue;
        } else if t.is(i, "AUTOINCREMENT") {
            this.autoincrement = true;
        } else if t.is(i, "COLLATE") {
            this.collation = Some(unquote(t.text(i + 1)));
        } else if t.is(i, "DEFAULT") && t.kind(i + 1) == Some(Kind::Open) {
            i = t.closing(i + 1) + 1;
            continue;
        }
        i += 1;
    }
    if let Some(c) = column {
        out.columns.insert(c.to_lowercase(), this);
    }
}

/// Whether the foreign key clause after token `from` (up to `to`, or the
/// next constraint) says `DEFERRABLE`, and when it is checked.
fn deferrable(t: &Tokens, from: usize, to: usize) -> Deferrable {
    let end = (from + 1..to)
        .find(|i| {
            ["CONSTRAINT", "CHECK", "UNIQUE", "PRIMARY"]
                .iter()
                .any(|w| t.is(*i, w))
        })
        .unwrap_or(to);
    let Some(at) = (from..end).find(|i| t.is(*i, "DEFERRABLE")) else {
        return Deferrable::No;
    };
    if at > 0 && t.is(at - 1, "NOT") {
        Deferrable::No
    } else if t.is(at + 1, "INITIALLY") && t.is(at + 2, "DEFERRED") {
        Deferrable::InitiallyDeferred
    } else {
        Deferrable::InitiallyImmediate
    }
}

/// What an index's `CREATE INDEX` text says beyond the pragmas.
#[derive(Debug, Default)]
struct IndexText {
    /// Each key element's text without ASC/DESC and COLLATE, an
    /// expression without its parentheses.
    elements: Vec<String>,
    predicate: Option<String>,
}

fn parse_index(sql: &str) -> IndexText {
    let t = Tokens::new(sql);
    let mut out = IndexText::default();
    let Some(on) = (0..t.list.len()).find(|i| t.is(*i, "ON")) else {
        return out;
    };
    let Some(open) = (on..t.list.len()).find(|i| t.kind(*i) == Some(Kind::Open)) else {
        return out;
    };
    let close = t.closing(open);
    for (from, to) in t.items(open + 1, close) {
        let mut last = to - 1;
        while last > from && (t.is(last, "ASC") || t.is(last, "DESC")) {
            last -= 1;
        }
        if last > from + 1 && t.is(last - 1, "COLLATE") {
            last -= 2;
        }
        let whole = t.kind(from) == Some(Kind::Open) && t.closing(from) == last;
        let text = match whole {
            true => t.span(from + 1, last - 1),
            false => t.span(from, last),
        };
        out.elements.push(text.trim().to_string());
    }
    if t.is(close + 1, "WHERE") {
        let rest = t.span(close + 2, t.list.len() - 1);
        out.predicate = Some(rest.trim().trim_end_matches(';').trim().to_string());
    }
    out
}

/// The query of `CREATE VIEW name [(columns)] AS query`.
fn after_as(sql: &str) -> &str {
    let t = Tokens::new(sql);
    let mut depth = 0usize;
    for (i, token) in t.list.iter().enumerate() {
        match token.kind {
            Kind::Open => depth += 1,
            Kind::Close => depth = depth.saturating_sub(1),
            _ if depth == 0 && t.is(i, "AS") => return &sql[token.end..],
            _ => {}
        }
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_follow_the_affinity_rules_then_their_names() {
        let int = TypeKind::Int {
            bytes: 8,
            unsigned: false,
        };
        for (declared, kind) in [
            ("INTEGER", int.clone()),
            ("BIGINT", int.clone()),
            ("FLOATING POINT", int),
            ("TEXT", TypeKind::Text),
            (
                "VARCHAR(120)",
                TypeKind::Char {
                    length: Some(120),
                    varying: true,
                },
            ),
            (
                "CHARACTER(2)",
                TypeKind::Char {
                    length: Some(2),
                    varying: false,
                },
            ),
            ("DATE_TEXT", TypeKind::Date),
            ("", TypeKind::Bytes),
            ("BLOB", TypeKind::Bytes),
            ("DOUBLE PRECISION", TypeKind::Float { bytes: 8 }),
            ("BOOLEAN", TypeKind::Bool),
            (
                "DATETIME",
                TypeKind::Timestamp {
                    tz: false,
                    precision: None,
                },
            ),
            (
                "NUMERIC(12,2)",
                TypeKind::Decimal {
                    precision: Some(12),
                    scale: Some(2),
                },
            ),
            (
                "STRING",
                TypeKind::Other {
                    name: "STRING".into(),
                },
            ),
        ] {
            assert_eq!(type_kind(declared), kind, "{declared}");
        }
    }

    #[test]
    fn defaults_are_told_apart() {
        let lit = |v: &str| DefaultKind::Literal {
            value: Some(v.into()),
        };
        for (text, sql, kind) in [
            ("0", "0", lit("0")),
            ("-1.5", "-1.5", lit("-1.5")),
            ("'it''s'", "'it''s'", lit("it's")),
            ("NULL", "NULL", DefaultKind::Literal { value: None }),
            ("TRUE", "TRUE", lit("true")),
            ("CURRENT_TIMESTAMP", "CURRENT_TIMESTAMP", DefaultKind::Now),
            ("datetime('now')", "(datetime('now'))", DefaultKind::Now),
            ("1+2", "(1+2)", DefaultKind::Expression),
            ("lower(hex(x))", "(lower(hex(x)))", DefaultKind::Expression),
        ] {
            let d = default_def(text);
            assert_eq!((d.sql.as_str(), d.kind), (sql, kind), "{text}");
        }
    }

    #[test]
    fn the_create_text_gives_checks_names_and_generated_columns() {
        let t = parse_table(
            "CREATE TABLE \"o\" (id INTEGER PRIMARY KEY AUTOINCREMENT, -- the key
             \"e\" TEXT COLLATE NOCASE DEFAULT (lower('A,B')) CHECK (length(e) > 1),
             d TEXT GENERATED ALWAYS AS (substr(e, 2)) STORED,
             p INTEGER CONSTRAINT to_p REFERENCES p DEFERRABLE INITIALLY DEFERRED,
             CONSTRAINT pos CHECK (id > 0), UNIQUE (e, d),
             FOREIGN KEY (d) REFERENCES q(x) ON DELETE SET NULL)",
        );
        assert!(t.columns["id"].autoincrement);
        assert_eq!(t.columns["e"].collation.as_deref(), Some("NOCASE"));
        assert_eq!(t.columns["d"].generated.as_deref(), Some("substr(e, 2)"));
        let checks: Vec<(Option<&str>, &str)> = t
            .checks
            .iter()
            .map(|c| (c.name.as_deref(), c.expression.as_str()))
            .collect();
        assert_eq!(checks, [(None, "length(e) > 1"), (Some("pos"), "id > 0")]);
        assert_eq!(t.uniques, [(None, vec!["e".to_string(), "d".to_string()])]);
        let fk = t.foreign_key(&["p".into()]).expect("p's key");
        assert_eq!(fk.name.as_deref(), Some("to_p"));
        assert_eq!(fk.deferrable, Deferrable::InitiallyDeferred);
        assert_eq!(
            t.foreign_key(&["d".into()]).expect("d").deferrable,
            Deferrable::No
        );
    }

    #[test]
    fn an_index_text_gives_its_expressions_and_condition() {
        let i = parse_index(
            "CREATE UNIQUE INDEX i ON t (lower(email) DESC, \"a\" COLLATE NOCASE, (b + 1)) WHERE a IS NOT NULL",
        );
        assert_eq!(i.elements, ["lower(email)", "\"a\"", "b + 1"]);
        assert_eq!(i.predicate.as_deref(), Some("a IS NOT NULL"));
        assert_eq!(
            after_as("CREATE VIEW v (a) AS SELECT a AS b FROM t"),
            " SELECT a AS b FROM t"
        );
    }
}
