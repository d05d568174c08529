//! MariaDB/MySQL introspection into the schema model, from
//! `information_schema` in a few set-based queries (one per kind of object,
//! for the whole database, never one per table), on one connection.
//!
//! Every text is `CAST(… AS CHAR)` so it reads the same on every server
//! version. MariaDB (10.2.7 on) quotes a literal default in
//! `COLUMN_DEFAULT` (`'x'`), writes `NULL` for `DEFAULT NULL` and leaves a
//! function unquoted (`current_timestamp()`); MySQL quotes nothing and marks
//! an expression with `DEFAULT_GENERATED` in `EXTRA`. An ENUM column's
//! labels become an enum type `<table>_<column>` (MariaDB has no named
//! enum types), so the model has one way of saying "enum". MariaDB's JSON
//! is `longtext` with a `json_valid` check: its type stays `longtext`
//! verbatim, its kind is JSON. View definitions come qualified with the
//! database; the qualification is removed so they can be replayed in
//! another database.

use sqlx::MySqlConnection;
use sqlx::mysql::MySqlRow;

use super::{Server, error_number, ident, text};
use crate::drivers::ConnectorError;
use crate::model::schema::{
    CheckDef, ColumnDef, DefaultDef, DefaultKind, Deferrable, EnumDef, FkAction, FkMatch,
    ForeignKeyDef, Generation, Identity, IndexDef, IndexElement, IndexKey, KeyDef, NativeType,
    PartitionDef, PartitionStrategy, Partitioning, RoutineDef, RoutineKind, Schema, TableDef,
    TriggerDef, TypeDef, TypeKind, ViewDef,
};

/// Base tables with their next AUTO_INCREMENT value, comment and default
/// collation.
const TABLES_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(AUTO_INCREMENT AS CHAR), CAST(TABLE_COMMENT AS CHAR),
       CAST(TABLE_COLLATION AS CHAR)
FROM information_schema.TABLES
WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')
ORDER BY TABLE_NAME";

/// Every column of the database, in order.
const COLUMNS_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR),
       CAST(DATA_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), CAST(COLUMN_DEFAULT AS CHAR),
       CAST(EXTRA AS CHAR), CAST(COLLATION_NAME AS CHAR), CAST(GENERATION_EXPRESSION AS CHAR),
       CAST(COLUMN_COMMENT AS CHAR), CAST(CHARACTER_MAXIMUM_LENGTH AS CHAR),
       CAST(NUMERIC_PRECISION AS CHAR), CAST(NUMERIC_SCALE AS CHAR)
FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, ORDINAL_POSITION";

/// Every index part (the primary key's index is called `PRIMARY`).
/// `COLLATION` is `D` for a descending part (MariaDB 10.8 on, MySQL 8),
/// `SUB_PART` a prefix length.
const INDEXES_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR),
       CAST(COLUMN_NAME AS CHAR), CAST(COLLATION AS CHAR), CAST(SUB_PART AS CHAR),
       CAST(INDEX_TYPE AS CHAR), CAST(INDEX_COMMENT AS CHAR)
FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";

/// MySQL 8's index parts, with the expression of a functional part (whose
/// `COLUMN_NAME` is NULL); MariaDB has no such parts nor column.
const MYSQL_INDEXES_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR),
       CAST(COLUMN_NAME AS CHAR), CAST(COLLATION AS CHAR), CAST(SUB_PART AS CHAR),
       CAST(INDEX_TYPE AS CHAR), CAST(INDEX_COMMENT AS CHAR), CAST(EXPRESSION AS CHAR)
FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX";

/// Foreign keys column by column, with their actions.
const FOREIGN_KEYS_SQL: &str = "
SELECT CAST(k.TABLE_NAME AS CHAR), CAST(k.CONSTRAINT_NAME AS CHAR), CAST(k.COLUMN_NAME AS CHAR),
       CAST(k.REFERENCED_TABLE_SCHEMA AS CHAR), CAST(k.REFERENCED_TABLE_NAME AS CHAR),
       CAST(k.REFERENCED_COLUMN_NAME AS CHAR), CAST(r.UPDATE_RULE AS CHAR),
       CAST(r.DELETE_RULE AS CHAR)
FROM information_schema.KEY_COLUMN_USAGE k
JOIN information_schema.REFERENTIAL_CONSTRAINTS r
  ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME
 AND r.TABLE_NAME = k.TABLE_NAME
WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL
ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME, k.ORDINAL_POSITION";

/// Check constraints; MariaDB's view has the table (names are per table:
/// a column's check is named after the column).
const MARIADB_CHECKS_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(CONSTRAINT_NAME AS CHAR), CAST(CHECK_CLAUSE AS CHAR)
FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()
ORDER BY TABLE_NAME, CONSTRAINT_NAME";

/// Check constraints; MySQL's view has no table (names are per database).
const MYSQL_CHECKS_SQL: &str = "
SELECT CAST(t.TABLE_NAME AS CHAR), CAST(c.CONSTRAINT_NAME AS CHAR), CAST(c.CHECK_CLAUSE AS CHAR)
FROM information_schema.CHECK_CONSTRAINTS c
JOIN information_schema.TABLE_CONSTRAINTS t
  ON t.CONSTRAINT_SCHEMA = c.CONSTRAINT_SCHEMA AND t.CONSTRAINT_NAME = c.CONSTRAINT_NAME
 AND t.CONSTRAINT_TYPE = 'CHECK'
WHERE c.CONSTRAINT_SCHEMA = DATABASE()
ORDER BY t.TABLE_NAME, c.CONSTRAINT_NAME";

/// Unique indexes that are unique constraints.
const UNIQUES_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(CONSTRAINT_NAME AS CHAR)
FROM information_schema.TABLE_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = DATABASE() AND CONSTRAINT_TYPE = 'UNIQUE'";

/// Partitions (and subpartitions) with their bounds, in order.
const PARTITIONS_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(PARTITION_NAME AS CHAR), CAST(PARTITION_METHOD AS CHAR),
       CAST(PARTITION_EXPRESSION AS CHAR), CAST(PARTITION_DESCRIPTION AS CHAR),
       CAST(SUBPARTITION_NAME AS CHAR), CAST(SUBPARTITION_METHOD AS CHAR),
       CAST(SUBPARTITION_EXPRESSION AS CHAR)
FROM information_schema.PARTITIONS
WHERE TABLE_SCHEMA = DATABASE() AND PARTITION_NAME IS NOT NULL
ORDER BY TABLE_NAME, PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION";

/// Views with their queries (qualified with the database by the server).
const VIEWS_SQL: &str = "
SELECT CAST(TABLE_NAME AS CHAR), CAST(VIEW_DEFINITION AS CHAR), CAST(CHECK_OPTION AS CHAR)
FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()
ORDER BY TABLE_NAME";

/// Functions and procedures with their characteristics and bodies.
const ROUTINES_SQL: &str = "
SELECT CAST(ROUTINE_NAME AS CHAR), CAST(ROUTINE_TYPE AS CHAR), CAST(DTD_IDENTIFIER AS CHAR),
       CAST(ROUTINE_DEFINITION AS CHAR), CAST(IS_DETERMINISTIC AS CHAR),
       CAST(SQL_DATA_ACCESS AS CHAR), CAST(SECURITY_TYPE AS CHAR), CAST(ROUTINE_COMMENT AS CHAR)
FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()
ORDER BY ROUTINE_NAME, ROUTINE_TYPE";

/// Routine parameters in order (a function's result, position 0, left out).
const PARAMETERS_SQL: &str = "
SELECT CAST(SPECIFIC_NAME AS CHAR), CAST(ROUTINE_TYPE AS CHAR), CAST(PARAMETER_MODE AS CHAR),
       CAST(PARAMETER_NAME AS CHAR), CAST(DTD_IDENTIFIER AS CHAR)
FROM information_schema.PARAMETERS
WHERE SPECIFIC_SCHEMA = DATABASE() AND ORDINAL_POSITION > 0
ORDER BY SPECIFIC_NAME, ROUTINE_TYPE, ORDINAL_POSITION";

/// Triggers with their timing, event and statement.
const TRIGGERS_SQL: &str = "
SELECT CAST(EVENT_OBJECT_TABLE AS CHAR), CAST(TRIGGER_NAME AS CHAR),
       CAST(ACTION_TIMING AS CHAR), CAST(EVENT_MANIPULATION AS CHAR),
       CAST(ACTION_STATEMENT AS CHAR)
FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()
ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER";

/// Reads the schema model of `tables` in the server's database, with the
/// database's views and routines and the tables' triggers.
pub(super) async fn read(server: &Server, tables: &[String]) -> Result<Schema, ConnectorError> {
    let fail = |e: sqlx::Error| {
        let mut err = server.error(e);
        err.message = format!("reading the schema: {}", err.message);
        err
    };
    let mut conn = server.pool.acquire().await.map_err(fail)?;
    if !server.mariadb {
        // MySQL 8 caches TABLES.AUTO_INCREMENT for a day unless told not
        // to; older servers have no such variable, hence no error check.
        let _ = sqlx::query("SET SESSION information_schema_stats_expiry = 0")
            .execute(&mut *conn)
            .await;
    }
    let catalog = Catalog::read(&mut conn, server.mariadb)
        .await
        .map_err(fail)?;
    Ok(catalog.into_schema(&server.ep.database, tables, server.mariadb))
}

/// The catalogue rows, one list per query.
struct Catalog {
    tables: Vec<MySqlRow>,
    columns: Vec<MySqlRow>,
    indexes: Vec<MySqlRow>,
    foreign_keys: Vec<MySqlRow>,
    checks: Vec<MySqlRow>,
    uniques: Vec<MySqlRow>,
    partitions: Vec<MySqlRow>,
    views: Vec<MySqlRow>,
    routines: Vec<MySqlRow>,
    parameters: Vec<MySqlRow>,
    triggers: Vec<MySqlRow>,
}

impl Catalog {
    async fn read(conn: &mut MySqlConnection, mariadb: bool) -> Result<Self, sqlx::Error> {
        let checks = if mariadb {
            MARIADB_CHECKS_SQL
        } else {
            MYSQL_CHECKS_SQL
        };
        Ok(Self {
            tables: fetch(conn, TABLES_SQL).await?,
            columns: fetch(conn, COLUMNS_SQL).await?,
            indexes: fetch(
                conn,
                if mariadb {
                    INDEXES_SQL
                } else {
                    MYSQL_INDEXES_SQL
                },
            )
            .await?,
            foreign_keys: fetch(conn, FOREIGN_KEYS_SQL).await?,
            checks: fetch_checks(conn, checks).await?,
            uniques: fetch(conn, UNIQUES_SQL).await?,
            partitions: fetch(conn, PARTITIONS_SQL).await?,
            views: fetch(conn, VIEWS_SQL).await?,
            routines: fetch(conn, ROUTINES_SQL).await?,
            parameters: fetch(conn, PARAMETERS_SQL).await?,
            triggers: fetch(conn, TRIGGERS_SQL).await?,
        })
    }

    /// Puts the rows of the tables asked for together into the model.
    fn into_schema(self, database: &str, asked: &[String], mariadb: bool) -> Schema {
        let json = json_columns(&self.checks);
        let mut types = Vec::new();
        let mut tables: Vec<TableDef> = Vec::new();
        for row in self.tables.iter().filter(|r| asked.contains(&col(r, 0))) {
            let name = col(row, 0);
            let info = TableInfo {
                next: opt(row, 1).and_then(|n| n.parse().ok()),
                collation: opt(row, 3),
                json: &json,
                mariadb,
            };
            let mut table = TableDef {
                comment: opt(row, 2).filter(|c| !c.is_empty()),
                ..TableDef::default()
            };
            for c in self.columns.iter().filter(|c| col(c, 0) == name) {
                let (column, enum_def) = column_def(c, &name, &info);
                types.extend(enum_def);
                table.columns.push(column);
            }
            table.name = name;
            tables.push(table);
        }
        add_indexes(&mut tables, &self.indexes, &self.uniques);
        add_foreign_keys(&mut tables, &self.foreign_keys, database);
        add_checks(&mut tables, &self.checks);
        add_partitions(&mut tables, &self.partitions);
        let known: Vec<String> = self
            .tables
            .iter()
            .chain(&self.views)
            .map(|r| col(r, 0))
            .collect();
        Schema {
            dialect: if mariadb { "mariadb" } else { "mysql" }.into(),
            namespace: Some(database.into()),
            types,
            sequences: Vec::new(),
            views: self
                .views
                .iter()
                .map(|r| view_def(r, database, &known))
                .collect(),
            routines: self
                .routines
                .iter()
                .map(|r| routine_def(r, &self.parameters))
                .collect(),
            triggers: self
                .triggers
                .iter()
                .filter(|r| asked.contains(&col(r, 0)))
                .map(trigger_def)
                .collect(),
            tables,
        }
    }
}

async fn fetch(conn: &mut MySqlConnection, sql: &str) -> Result<Vec<MySqlRow>, sqlx::Error> {
    sqlx::query(sql).fetch_all(conn).await
}

/// The check constraints; none on a server without `CHECK_CONSTRAINTS`
/// (MySQL before 8.0.16, which parses CHECK and enforces nothing) or
/// without its `TABLE_NAME` (MariaDB before 10.3.10).
async fn fetch_checks(conn: &mut MySqlConnection, sql: &str) -> Result<Vec<MySqlRow>, sqlx::Error> {
    match fetch(conn, sql).await {
        // Unknown table, unknown column.
        Err(sqlx::Error::Database(e)) if matches!(error_number(e.as_ref()), Some(1109 | 1054)) => {
            Ok(Vec::new())
        }
        other => other,
    }
}

/// Column `i` as text, `None` for NULL.
fn opt(row: &MySqlRow, i: usize) -> Option<String> {
    text(row, i)
}

/// Column `i` as text, empty for NULL.
fn col(row: &MySqlRow, i: usize) -> String {
    text(row, i).unwrap_or_default()
}

/// What a column needs to know of its table.
struct TableInfo<'a> {
    /// `TABLES.AUTO_INCREMENT`: the value the next row gets.
    next: Option<i64>,
    /// The table's default collation.
    collation: Option<String>,
    /// `(table, column)` pairs MariaDB's JSON alias checks with `json_valid`.
    json: &'a [(String, String)],
    mariadb: bool,
}

/// A column, and the enum type its ENUM labels make.
fn column_def(row: &MySqlRow, table: &str, info: &TableInfo) -> (ColumnDef, Option<TypeDef>) {
    let name = col(row, 1);
    let column_type = col(row, 2);
    let data_type = col(row, 3).to_ascii_lowercase();
    let extra = col(row, 6);
    let lower_extra = extra.to_ascii_lowercase();
    let json = info.json.iter().any(|(t, c)| t == table && *c == name);
    let numbers = |i| opt(row, i).and_then(|n| n.parse::<u32>().ok());
    let mut enum_def = None;
    let kind = if data_type == "enum" {
        let type_name = format!("{table}_{name}");
        enum_def = Some(TypeDef::Enum(EnumDef {
            name: type_name.clone(),
            labels: enum_labels(&column_type),
            comment: None,
        }));
        TypeKind::Enum { name: type_name }
    } else if json {
        TypeKind::Json { binary: false }
    } else {
        type_kind(
            &data_type,
            &column_type,
            numbers(10),
            numbers(11),
            numbers(12),
        )
    };
    let generated = opt(row, 8).filter(|g| !g.is_empty());
    let default = opt(row, 5)
        .filter(|_| generated.is_none() && !lower_extra.contains("auto_increment"))
        .map(|sql| DefaultDef {
            kind: default_kind(&sql, info.mariadb, &lower_extra),
            sql,
        });
    let on_update = lower_extra
        .find("on update ")
        .map(|at| extra[at + "on update ".len()..].trim().to_string())
        .map(|sql| DefaultDef {
            kind: DefaultKind::Now,
            sql,
        });
    let identity = lower_extra.contains("auto_increment").then_some(Identity {
        generation: Generation::AutoIncrement,
        sequence: None,
        next: info.next,
    });
    let column = ColumnDef {
        native: NativeType {
            sql: column_type,
            kind,
        },
        not_null: col(row, 4) == "NO",
        default,
        identity,
        generated,
        on_update,
        collation: opt(row, 7).filter(|c| Some(c) != info.collation.as_ref()),
        comment: opt(row, 9).filter(|c| !c.is_empty()),
        name,
    };
    (column, enum_def)
}

/// What a MariaDB/MySQL type is, from `DATA_TYPE` and `COLUMN_TYPE`.
fn type_kind(
    data_type: &str,
    column_type: &str,
    length: Option<u32>,
    precision: Option<u32>,
    scale: Option<u32>,
) -> TypeKind {
    let unsigned = column_type.contains("unsigned");
    let int = |bytes| TypeKind::Int { bytes, unsigned };
    let fraction = || declared_length(column_type);
    match data_type {
        "tinyint" if column_type.starts_with("tinyint(1)") && !unsigned => TypeKind::Bool,
        "bool" | "boolean" => TypeKind::Bool,
        "tinyint" => int(1),
        "smallint" => int(2),
        "mediumint" => int(3),
        "int" | "integer" => int(4),
        "bigint" => int(8),
        "decimal" | "numeric" => TypeKind::Decimal { precision, scale },
        "float" => TypeKind::Float { bytes: 4 },
        "double" | "real" | "double precision" => TypeKind::Float { bytes: 8 },
        "char" => TypeKind::Char {
            length,
            varying: false,
        },
        "varchar" => TypeKind::Char {
            length,
            varying: true,
        },
        "tinytext" | "text" | "mediumtext" | "longtext" => TypeKind::Text,
        "json" => TypeKind::Json { binary: false },
        "binary" | "varbinary" | "tinyblob" | "blob" | "mediumblob" | "longblob" => TypeKind::Bytes,
        "date" => TypeKind::Date,
        "time" => TypeKind::Time {
            tz: false,
            precision: fraction(),
        },
        "datetime" => TypeKind::Timestamp {
            tz: false,
            precision: fraction(),
        },
        // A TIMESTAMP is an instant, stored in UTC.
        "timestamp" => TypeKind::Timestamp {
            tz: true,
            precision: fraction(),
        },
        "uuid" => TypeKind::Uuid,
        other => TypeKind::Other { name: other.into() },
    }
}

/// The number in a type's parentheses: `datetime(6)` → 6.
fn declared_length(column_type: &str) -> Option<u32> {
    let (_, rest) = column_type.split_once('(')?;
    rest.split_once(')')?.0.trim().parse().ok()
}

/// The labels of `enum('a','it''s')`, in order, unquoted.
fn enum_labels(column_type: &str) -> Vec<String> {
    let Some(body) = column_type
        .find('(')
        .and_then(|at| column_type[at + 1..].strip_suffix(')'))
    else {
        return Vec::new();
    };
    let mut labels = Vec::new();
    let mut rest = body.trim_start();
    while let Some((label, after)) = quoted(rest) {
        labels.push(label);
        rest = after.trim_start().trim_start_matches(',').trim_start();
    }
    labels
}

/// A leading `'…'` literal, unquoted (`''` and `\'` undone), and the text
/// after it.
fn quoted(sql: &str) -> Option<(String, &str)> {
    let body = sql.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, n)) = chars.next() {
                    value.push(n);
                }
            }
            '\'' if chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                value.push('\'');
                chars.next();
            }
            '\'' => return Some((value, &body[i + 1..])),
            c => value.push(c),
        }
    }
    None
}

/// What a `COLUMN_DEFAULT` is. MariaDB quotes literals and writes `NULL`
/// for `DEFAULT NULL`; MySQL quotes nothing and says `DEFAULT_GENERATED`
/// in `EXTRA` for an expression.
fn default_kind(sql: &str, mariadb: bool, extra: &str) -> DefaultKind {
    let lower = sql.to_ascii_lowercase();
    let now = ["current_timestamp", "now(", "localtimestamp", "localtime"]
        .iter()
        .any(|f| lower.starts_with(f));
    if now {
        return DefaultKind::Now;
    }
    if !mariadb {
        return if extra.contains("default_generated") {
            DefaultKind::Expression
        } else {
            DefaultKind::Literal {
                value: Some(sql.into()),
            }
        };
    }
    if sql == "NULL" {
        return DefaultKind::Literal { value: None };
    }
    if let Some((value, "")) = quoted(sql) {
        return DefaultKind::Literal { value: Some(value) };
    }
    if sql.parse::<f64>().is_ok_and(f64::is_finite) {
        return DefaultKind::Literal {
            value: Some(sql.into()),
        };
    }
    DefaultKind::Expression
}

/// `(table, column)` pairs whose check is `json_valid(`column`)`: MariaDB's
/// JSON columns.
fn json_columns(checks: &[MySqlRow]) -> Vec<(String, String)> {
    checks
        .iter()
        .filter_map(|r| {
            let column = col(r, 2)
                .trim()
                .strip_prefix("json_valid(`")?
                .strip_suffix("`)")?
                .replace("``", "`");
            Some((col(r, 0), column))
        })
        .collect()
}

/// One index, as its parts' rows make it.
struct IndexRows {
    table: String,
    name: String,
    unique: bool,
    method: String,
    elements: Vec<IndexElement>,
    comment: Option<String>,
}

impl IndexRows {
    /// `(`a`(10), `b` DESC)`.
    fn key_list(&self) -> String {
        let parts: Vec<String> = self
            .elements
            .iter()
            .map(|e| {
                let mut text = match &e.key {
                    IndexKey::Column { name } => ident(name),
                    IndexKey::Expression { sql } => format!("({sql})"),
                };
                if let Some(prefix) = e.prefix {
                    text.push_str(&format!("({prefix})"));
                }
                if e.descending {
                    text.push_str(" DESC");
                }
                text
            })
            .collect();
        format!("({})", parts.join(", "))
    }

    /// Whether it keys whole columns, ascending: what a unique constraint is.
    fn plain(&self) -> bool {
        self.method == "btree"
            && self
                .elements
                .iter()
                .all(|e| e.prefix.is_none() && !e.descending)
    }

    fn columns(&self) -> Vec<String> {
        self.elements
            .iter()
            .filter_map(|e| match &e.key {
                IndexKey::Column { name } => Some(name.clone()),
                IndexKey::Expression { .. } => None,
            })
            .collect()
    }
}

/// Groups the index parts by index, in order.
fn index_rows(rows: &[MySqlRow]) -> Vec<IndexRows> {
    let mut out: Vec<IndexRows> = Vec::new();
    for r in rows {
        let (table, name) = (col(r, 0), col(r, 1));
        if out
            .last()
            .is_none_or(|i| i.table != table || i.name != name)
        {
            out.push(IndexRows {
                table,
                name,
                unique: col(r, 2) == "0",
                method: col(r, 6).to_ascii_lowercase(),
                elements: Vec::new(),
                comment: opt(r, 7).filter(|c| !c.is_empty()),
            });
        }
        let Some(index) = out.last_mut() else {
            continue;
        };
        let descending = col(r, 4) == "D";
        // A SPATIAL index reports a SUB_PART it was not declared with.
        let prefix = opt(r, 5)
            .filter(|_| index.method != "spatial")
            .and_then(|n| n.parse().ok());
        let key = match (opt(r, 3), opt(r, 8)) {
            (None, Some(sql)) => IndexKey::Expression { sql },
            (name, _) => IndexKey::Column {
                name: name.unwrap_or_default(),
            },
        };
        index.elements.push(IndexElement {
            key,
            descending,
            // MariaDB/MySQL sort NULLs first ascending, last descending.
            nulls_first: !descending,
            opclass: None,
            prefix,
        });
    }
    out
}

/// The primary key, unique constraints and secondary indexes of each table.
fn add_indexes(tables: &mut [TableDef], rows: &[MySqlRow], uniques: &[MySqlRow]) {
    let constraints: Vec<(String, String)> =
        uniques.iter().map(|r| (col(r, 0), col(r, 1))).collect();
    for index in index_rows(rows) {
        let Some(t) = tables.iter_mut().find(|t| t.name == index.table) else {
            continue;
        };
        let keys = index.key_list();
        let is_constraint = constraints.contains(&(index.table.clone(), index.name.clone()));
        if index.name == "PRIMARY" {
            t.primary_key = Some(KeyDef {
                columns: index.columns(),
                definition: format!("PRIMARY KEY {keys}"),
                deferrable: Deferrable::No,
                name: index.name,
            });
        } else if index.unique && is_constraint && index.plain() {
            t.uniques.push(KeyDef {
                columns: index.columns(),
                definition: format!("UNIQUE KEY {} {keys}", ident(&index.name)),
                deferrable: Deferrable::No,
                name: index.name,
            });
        } else {
            let kind = match (index.method.as_str(), index.unique) {
                ("fulltext", _) => "FULLTEXT ",
                ("spatial", _) => "SPATIAL ",
                (_, true) => "UNIQUE ",
                _ => "",
            };
            t.indexes.push(IndexDef {
                definition: format!(
                    "CREATE {kind}INDEX {} ON {} {keys}",
                    ident(&index.name),
                    ident(&index.table)
                ),
                name: index.name,
                unique: index.unique,
                method: index.method,
                elements: index.elements,
                include: Vec::new(),
                predicate: None,
                comment: index.comment,
            });
        }
    }
}

/// `information_schema`'s rule words.
fn fk_action(rule: &str) -> FkAction {
    match rule {
        "CASCADE" => FkAction::Cascade,
        "SET NULL" => FkAction::SetNull,
        "SET DEFAULT" => FkAction::SetDefault,
        "RESTRICT" => FkAction::Restrict,
        _ => FkAction::NoAction,
    }
}

fn add_foreign_keys(tables: &mut [TableDef], rows: &[MySqlRow], database: &str) {
    for r in rows {
        let Some(t) = tables.iter_mut().find(|t| t.name == col(r, 0)) else {
            continue;
        };
        let name = col(r, 1);
        if t.foreign_keys.last().is_none_or(|k| k.name != name) {
            t.foreign_keys.push(ForeignKeyDef {
                name,
                columns: Vec::new(),
                ref_schema: opt(r, 3).filter(|s| s != database),
                ref_table: col(r, 4),
                ref_columns: Vec::new(),
                on_update: fk_action(&col(r, 6)),
                on_delete: fk_action(&col(r, 7)),
                matching: FkMatch::Simple,
                deferrable: Deferrable::No,
                validated: true,
                definition: String::new(),
            });
        }
        if let Some(k) = t.foreign_keys.last_mut() {
            k.columns.push(col(r, 2));
            k.ref_columns.push(col(r, 5));
            k.definition = fk_definition(k);
        }
    }
}

/// `FOREIGN KEY (`a`) REFERENCES `t` (`id`) ON DELETE CASCADE ON UPDATE RESTRICT`.
fn fk_definition(k: &ForeignKeyDef) -> String {
    let names = |c: &[String]| c.iter().map(|n| ident(n)).collect::<Vec<_>>().join(", ");
    let table = match &k.ref_schema {
        Some(schema) => format!("{}.{}", ident(schema), ident(&k.ref_table)),
        None => ident(&k.ref_table),
    };
    format!(
        "FOREIGN KEY ({}) REFERENCES {table} ({}) ON DELETE {} ON UPDATE {}",
        names(&k.columns),
        names(&k.ref_columns),
        k.on_delete.sql(),
        k.on_update.sql()
    )
}

fn add_checks(tables: &mut [TableDef], rows: &[MySqlRow]) {
    for r in rows {
        let Some(t) = tables.iter_mut().find(|t| t.name == col(r, 0)) else {
            continue;
        };
        let expression = col(r, 2);
        let columns = t
            .columns
            .iter()
            .filter(|c| expression.contains(&ident(&c.name)))
            .map(|c| c.name.clone())
            .collect();
        t.checks.push(CheckDef {
            name: col(r, 1),
            definition: format!("CHECK ({expression})"),
            expression,
            columns,
            validated: true,
        });
    }
}

/// `RANGE` → Range; `LIST`, `LIST COLUMNS` → List; `HASH`, `KEY`,
/// `LINEAR …` → Hash.
fn strategy(method: &str) -> PartitionStrategy {
    if method.starts_with("RANGE") {
        PartitionStrategy::Range
    } else if method.starts_with("LIST") {
        PartitionStrategy::List
    } else {
        PartitionStrategy::Hash
    }
}

/// A partition's bound as `CREATE TABLE` writes it.
fn bound(method: &str, description: Option<String>) -> String {
    match (strategy(method), description) {
        (PartitionStrategy::Range, Some(d)) if d == "MAXVALUE" => {
            "VALUES LESS THAN MAXVALUE".into()
        }
        (PartitionStrategy::Range, Some(d)) => format!("VALUES LESS THAN ({d})"),
        (PartitionStrategy::List, Some(d)) => format!("VALUES IN ({d})"),
        _ => String::new(),
    }
}

/// Each partitioned table's key and partitions, subpartitions after their
/// partition.
fn add_partitions(tables: &mut [TableDef], rows: &[MySqlRow]) {
    for r in rows {
        let Some(t) = tables.iter_mut().find(|t| t.name == col(r, 0)) else {
            continue;
        };
        let method = col(r, 2);
        let partitioning = t.partitioning.get_or_insert_with(|| Partitioning {
            strategy: strategy(&method),
            key: format!("{method} ({})", col(r, 3)),
            partitions: Vec::new(),
        });
        let name = col(r, 1);
        if !partitioning.partitions.iter().any(|p| p.name == name) {
            partitioning.partitions.push(PartitionDef {
                name: name.clone(),
                parent: t.name.clone(),
                bound: bound(&method, opt(r, 4)),
                key: opt(r, 6).map(|m| format!("{m} ({})", col(r, 7))),
            });
        }
        if let Some(sub) = opt(r, 5) {
            partitioning.partitions.push(PartitionDef {
                name: sub,
                parent: name,
                bound: String::new(),
                key: None,
            });
        }
    }
}

/// A view, its query unqualified for the database, and the tables and
/// views of the database it reads.
fn view_def(row: &MySqlRow, database: &str, known: &[String]) -> ViewDef {
    let name = col(row, 0);
    let qualifier = format!("{}.", ident(database));
    let raw = col(row, 1);
    let mut depends_on: Vec<String> = known
        .iter()
        .filter(|k| **k != name && raw.contains(&format!("{qualifier}{}", ident(k))))
        .cloned()
        .collect();
    depends_on.sort();
    depends_on.dedup();
    let mut definition = unqualified(&raw, &qualifier);
    match col(row, 2).as_str() {
        "CASCADED" => definition.push_str(" WITH CASCADED CHECK OPTION"),
        "LOCAL" => definition.push_str(" WITH LOCAL CHECK OPTION"),
        _ => {}
    }
    ViewDef {
        name,
        materialized: false,
        definition,
        depends_on,
        indexes: Vec::new(),
        comment: None,
    }
}

/// `sql` without `qualifier` (`` `db`. ``) wherever it is outside a
/// string literal.
fn unqualified(sql: &str, qualifier: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut rest = sql;
    while let Some(c) = rest.chars().next() {
        if quote.is_none() && rest.starts_with(qualifier) {
            rest = &rest[qualifier.len()..];
            continue;
        }
        match (quote, c) {
            (Some('\''), '\\') => {
                // An escaped character inside a literal, taken as it is.
                out.push(c);
                rest = &rest[1..];
                if let Some(n) = rest.chars().next() {
                    out.push(n);
                    rest = &rest[n.len_utf8()..];
                }
                continue;
            }
            (Some(q), c) if c == q => quote = None,
            (None, '\'' | '`') => quote = Some(c),
            _ => {}
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// A routine with its `CREATE` statement, made from its parameters,
/// result type, characteristics and body.
fn routine_def(row: &MySqlRow, parameters: &[MySqlRow]) -> RoutineDef {
    let name = col(row, 0);
    let kind_word = col(row, 1);
    let kind = match kind_word.as_str() {
        "PROCEDURE" => RoutineKind::Procedure,
        _ => RoutineKind::Function,
    };
    let arguments: Vec<String> = parameters
        .iter()
        .filter(|p| col(p, 0) == name && col(p, 1) == kind_word)
        .map(|p| {
            let mode = opt(p, 2)
                .filter(|_| kind == RoutineKind::Procedure)
                .map_or(String::new(), |m| format!("{m} "));
            format!("{mode}{} {}", ident(&col(p, 3)), col(p, 4))
        })
        .collect();
    let arguments = arguments.join(", ");
    let mut definition = format!("CREATE {kind_word} {}({arguments})", ident(&name));
    if let Some(returns) = opt(row, 2) {
        definition.push_str(&format!(" RETURNS {returns}"));
    }
    if col(row, 4) == "YES" {
        definition.push_str(" DETERMINISTIC");
    }
    definition.push_str(&format!(" {}", col(row, 5)));
    if col(row, 6) == "INVOKER" {
        definition.push_str(" SQL SECURITY INVOKER");
    }
    let comment = opt(row, 7).filter(|c| !c.is_empty());
    if let Some(c) = &comment {
        definition.push_str(&format!(" COMMENT '{}'", c.replace('\'', "''")));
    }
    definition.push_str(&format!("\n{}", col(row, 3)));
    RoutineDef {
        name,
        kind,
        arguments,
        language: "SQL".into(),
        definition,
        comment,
    }
}

/// A trigger; MariaDB's run a statement, not a function, so `function` is
/// empty and the statement is in the definition.
fn trigger_def(row: &MySqlRow) -> TriggerDef {
    let (table, name) = (col(row, 0), col(row, 1));
    TriggerDef {
        definition: format!(
            "CREATE TRIGGER {} {} {} ON {} FOR EACH ROW {}",
            ident(&name),
            col(row, 2),
            col(row, 3),
            ident(&table),
            col(row, 4)
        ),
        function: String::new(),
        enabled: true,
        table,
        name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_defaults_are_told_apart() {
        let literal = |v: &str| DefaultKind::Literal {
            value: Some(v.into()),
        };
        assert_eq!(default_kind("'x'", true, ""), literal("x"));
        assert_eq!(default_kind("'it''s'", true, ""), literal("it's"));
        assert_eq!(default_kind("0", true, ""), literal("0"));
        assert_eq!(default_kind("-1.50", true, ""), literal("-1.50"));
        assert_eq!(
            default_kind("NULL", true, ""),
            DefaultKind::Literal { value: None }
        );
        assert_eq!(
            default_kind("current_timestamp()", true, ""),
            DefaultKind::Now
        );
        assert_eq!(
            default_kind("current_timestamp(6)", true, ""),
            DefaultKind::Now
        );
        assert_eq!(default_kind("uuid()", true, ""), DefaultKind::Expression);
        assert_eq!(default_kind("x", false, ""), literal("x"));
        assert_eq!(
            default_kind("(rand())", false, "default_generated"),
            DefaultKind::Expression
        );
    }

    #[test]
    fn partition_bounds_are_written_as_create_table_writes_them() {
        let some = |d: &str| Some(d.to_string());
        assert_eq!(bound("RANGE", some("2026")), "VALUES LESS THAN (2026)");
        assert_eq!(
            bound("RANGE", some("MAXVALUE")),
            "VALUES LESS THAN MAXVALUE"
        );
        assert_eq!(
            bound("RANGE COLUMNS", some("'2026-01-01',MAXVALUE")),
            "VALUES LESS THAN ('2026-01-01',MAXVALUE)"
        );
        assert_eq!(
            bound("LIST COLUMNS", some("'FR','DE'")),
            "VALUES IN ('FR','DE')"
        );
        assert_eq!(bound("HASH", None), "");
        assert_eq!(strategy("LINEAR KEY"), PartitionStrategy::Hash);
    }

    #[test]
    fn a_view_loses_its_database_outside_literals_only() {
        assert_eq!(
            unqualified(
                "select `d`.`t`.`a` AS `a` from `d`.`t` where `d`.`t`.`b` = '`d`.x\\'`d`.'",
                "`d`."
            ),
            "select `t`.`a` AS `a` from `t` where `t`.`b` = '`d`.x\\'`d`.'"
        );
    }

    #[test]
    fn enum_labels_are_read_in_order_and_unquoted() {
        assert_eq!(
            enum_labels("enum('new','active','it''s closed')"),
            ["new", "active", "it's closed"]
        );
        assert_eq!(enum_labels("enum('a,b','c')"), ["a,b", "c"]);
    }

    #[test]
    fn types_are_told_apart() {
        let int = |bytes, unsigned| TypeKind::Int { bytes, unsigned };
        assert_eq!(
            type_kind("int", "int(10) unsigned", None, None, None),
            int(4, true)
        );
        assert_eq!(
            type_kind("tinyint", "tinyint(1)", None, None, None),
            TypeKind::Bool
        );
        assert_eq!(
            type_kind("tinyint", "tinyint(4)", None, None, None),
            int(1, false)
        );
        assert_eq!(
            type_kind("datetime", "datetime(6)", None, None, None),
            TypeKind::Timestamp {
                tz: false,
                precision: Some(6)
            }
        );
        assert_eq!(
            type_kind("timestamp", "timestamp", None, None, None),
            TypeKind::Timestamp {
                tz: true,
                precision: None
            }
        );
        assert_eq!(
            type_kind("varchar", "varchar(40)", Some(40), None, None),
            TypeKind::Char {
                length: Some(40),
                varying: true
            }
        );
    }
}
