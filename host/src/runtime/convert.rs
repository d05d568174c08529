//! Moves the row model across the WIT boundary. The model mirrors the WIT
//! `types` interface, so each value is moved, never copied: strings and
//! byte lists keep their buffers, and rows keep their allocations (an
//! in-place `collect` reuses a `Vec` whose element layout is unchanged).

use super::bindings::{transform, types};
use crate::model::value::{
    Column, ColumnType, Row, RowError, RowResult, TableInfo, TransformContext, Value,
};

/// One row, as the bindings carry it.
pub(super) type WitRow = Vec<types::Value>;

/// Lends `rows` to the bindings: each row is moved out and converted in
/// place; [`give_back`] returns them.
pub(super) fn lend(rows: &mut [Row]) -> Vec<WitRow> {
    rows.iter_mut()
        .map(|row| to_wit_row(std::mem::take(row)))
        .collect()
}

/// Puts rows lent with [`lend`] back where they came from.
pub(super) fn give_back(rows: &mut [Row], lent: Vec<WitRow>) {
    for (slot, row) in rows.iter_mut().zip(lent) {
        *slot = from_wit_row(row);
    }
}

/// A row in the bindings' form.
pub(super) fn to_wit_row(row: Row) -> WitRow {
    row.into_iter().map(to_wit).collect()
}

/// A row from the bindings' form.
pub(super) fn from_wit_row(row: WitRow) -> Row {
    row.into_iter().map(from_wit).collect()
}

/// A value in the bindings' form.
pub(super) fn to_wit(value: Value) -> types::Value {
    use types::Value as W;
    match value {
        Value::Null => W::Null,
        Value::Boolean(b) => W::Boolean(b),
        Value::Int(i) => W::Int(i),
        Value::Float(f) => W::Float(f),
        Value::Decimal(s) => W::Decimal(s),
        Value::Text(s) => W::Text(s),
        Value::Bytes(b) => W::Bytes(b),
        Value::Date(d) => W::Date(d),
        Value::Time(t) => W::Time(t),
        Value::Timestamp(t) => W::Timestamp(t),
        Value::Timestamptz(t) => W::Timestamptz(t),
        Value::Uuid(u) => W::Uuid(u),
        Value::Json(s) => W::Json(s),
    }
}

/// A value from the bindings' form.
pub(super) fn from_wit(value: types::Value) -> Value {
    use types::Value as W;
    match value {
        W::Null => Value::Null,
        W::Boolean(b) => Value::Boolean(b),
        W::Int(i) => Value::Int(i),
        W::Float(f) => Value::Float(f),
        W::Decimal(s) => Value::Decimal(s),
        W::Text(s) => Value::Text(s),
        W::Bytes(b) => Value::Bytes(b),
        W::Date(d) => Value::Date(d),
        W::Time(t) => Value::Time(t),
        W::Timestamp(t) => Value::Timestamp(t),
        W::Timestamptz(t) => Value::Timestamptz(t),
        W::Uuid(u) => Value::Uuid(u),
        W::Json(s) => Value::Json(s),
    }
}

/// A column type in the bindings' form.
pub(super) fn to_wit_type(t: ColumnType) -> types::ColumnType {
    use types::ColumnType as W;
    match t {
        ColumnType::Boolean => W::Boolean,
        ColumnType::Int => W::Int,
        ColumnType::Float => W::Float,
        ColumnType::Decimal => W::Decimal,
        ColumnType::Text => W::Text,
        ColumnType::Bytes => W::Bytes,
        ColumnType::Date => W::Date,
        ColumnType::Time => W::Time,
        ColumnType::Timestamp => W::Timestamp,
        ColumnType::Timestamptz => W::Timestamptz,
        ColumnType::Uuid => W::Uuid,
        ColumnType::Json => W::Json,
    }
}

/// A column type from the bindings' form.
pub(super) fn from_wit_type(t: types::ColumnType) -> ColumnType {
    use types::ColumnType as W;
    match t {
        W::Boolean => ColumnType::Boolean,
        W::Int => ColumnType::Int,
        W::Float => ColumnType::Float,
        W::Decimal => ColumnType::Decimal,
        W::Text => ColumnType::Text,
        W::Bytes => ColumnType::Bytes,
        W::Date => ColumnType::Date,
        W::Time => ColumnType::Time,
        W::Timestamp => ColumnType::Timestamp,
        W::Timestamptz => ColumnType::Timestamptz,
        W::Uuid => ColumnType::Uuid,
        W::Json => ColumnType::Json,
    }
}

/// Columns in the bindings' form.
pub(super) fn to_wit_columns(columns: &[Column]) -> Vec<types::Column> {
    columns
        .iter()
        .map(|c| types::Column {
            name: c.name.clone(),
            type_: to_wit_type(c.type_),
            nullable: c.nullable,
        })
        .collect()
}

/// Columns from the bindings' form.
pub(super) fn from_wit_columns(columns: Vec<types::Column>) -> Vec<Column> {
    columns
        .into_iter()
        .map(|c| Column {
            name: c.name,
            type_: from_wit_type(c.type_),
            nullable: c.nullable,
        })
        .collect()
}

/// A table found by a source plugin.
pub(super) fn from_wit_table(t: types::TableInfo) -> TableInfo {
    TableInfo {
        name: t.name,
        columns: from_wit_columns(t.columns),
        primary_key: t.primary_key,
        approx_rows: t.approx_rows,
    }
}

/// A row error from the bindings' form.
pub(super) fn from_wit_error(e: types::RowError) -> RowError {
    RowError {
        column: e.column,
        message: e.message,
    }
}

/// A transform's result for one row.
pub(super) fn from_wit_result(result: transform::RowResult) -> RowResult {
    match result {
        transform::RowResult::Ok(row) => RowResult::Ok(from_wit_row(row)),
        transform::RowResult::Drop => RowResult::Drop,
        transform::RowResult::Error(e) => RowResult::Error(from_wit_error(e)),
    }
}

/// The context a transform is configured with.
pub(super) fn to_wit_context(ctx: &TransformContext) -> transform::Context {
    transform::Context {
        migration: ctx.migration.clone(),
        table: ctx.table.clone(),
        run_started_at: ctx.run_started_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_lent_to_the_bindings_come_back_unchanged() {
        let original = vec![
            vec![
                Value::Null,
                Value::Boolean(true),
                Value::Int(-7),
                Value::Float(1.5),
                Value::Decimal("-1234.50".into()),
                Value::Text("x\u{202e}y".into()),
                Value::Bytes(vec![0, 255]),
            ],
            vec![
                Value::Date(-1),
                Value::Time(86_399_999_999),
                Value::Timestamp(i64::MIN),
                Value::Timestamptz(i64::MAX),
                Value::Uuid((1, 2)),
                Value::Json("{}".into()),
            ],
        ];
        let mut rows = original.clone();
        let lent = lend(&mut rows);
        assert!(rows.iter().all(Vec::is_empty));
        give_back(&mut rows, lent);
        assert_eq!(rows, original);
    }

    #[test]
    fn a_row_moves_without_a_new_allocation() {
        let row = vec![Value::Text("kept".into()), Value::Int(1)];
        let at = row.as_ptr() as usize;
        let wit = to_wit_row(row);
        assert_eq!(wit.as_ptr() as usize, at, "converted in place");
        let back = from_wit_row(wit);
        assert_eq!(back.as_ptr() as usize, at, "converted back in place");
    }

    #[test]
    fn every_column_type_round_trips() {
        for t in crate::model::value::ALL_TYPES {
            assert_eq!(from_wit_type(to_wit_type(t)), t);
        }
    }
}
