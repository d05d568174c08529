//! [`Row`]: one row's values with access by column name or index, backed by a
//! column index shared by every row of a stream.

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use crate::{ColumnType, RowError, Schema, Value};

/// The input schema and a name → index map, built once at configure time and
/// shared (by reference count) by every row.
#[derive(Debug)]
pub struct Columns {
    schema: Schema,
    by_name: HashMap<String, usize>,
}

impl Columns {
    /// Indexes `schema` by column name.
    pub fn new(schema: Schema) -> Self {
        let by_name = schema
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Columns { schema, by_name }
    }

    /// The schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The index of the column named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The number of columns.
    pub fn len(&self) -> usize {
        self.schema.len()
    }

    /// Whether the schema has no columns.
    pub fn is_empty(&self) -> bool {
        self.schema.is_empty()
    }

    fn name_of(&self, index: usize) -> String {
        self.schema
            .get(index)
            .map_or_else(|| format!("#{index}"), |c| c.name.clone())
    }
}

/// A column named by its name (`"email"`) or its position (`0`).
pub trait ColumnRef {
    /// The column's index in the row, or an error naming what was asked for.
    fn resolve(&self, columns: &Columns, width: usize) -> Result<usize, RowError>;
}

impl ColumnRef for &str {
    fn resolve(&self, columns: &Columns, _width: usize) -> Result<usize, RowError> {
        columns.index_of(self).ok_or_else(|| {
            let names: Vec<&str> = columns.schema.iter().map(|c| c.name.as_str()).collect();
            RowError::new(format!(
                "the input has no column named {self:?} (columns: {})",
                names.join(", ")
            ))
            .column(*self)
        })
    }
}

impl ColumnRef for &String {
    fn resolve(&self, columns: &Columns, width: usize) -> Result<usize, RowError> {
        self.as_str().resolve(columns, width)
    }
}

impl ColumnRef for usize {
    fn resolve(&self, _columns: &Columns, width: usize) -> Result<usize, RowError> {
        if *self < width {
            Ok(*self)
        } else {
            Err(RowError::new(format!(
                "column index {self} is out of range: the row has {width} values"
            )))
        }
    }
}

/// One row: its values and the shared column index of its stream.
///
/// Typed getters (`text`, `int`, `float`, `boolean`) fail with a [`RowError`]
/// naming the column and the expected type, so `?` gives a good message; the
/// `_opt` variants return `None` for null instead of failing.
#[derive(Clone)]
pub struct Row {
    columns: Rc<Columns>,
    values: Vec<Value>,
}

impl fmt::Debug for Row {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for (i, v) in self.values.iter().enumerate() {
            map.entry(&self.columns.name_of(i), v);
        }
        map.finish()
    }
}

impl PartialEq for Row {
    fn eq(&self, other: &Self) -> bool {
        self.values == other.values
    }
}

impl Row {
    /// A row of `values` laid out like `columns`.
    pub fn from_parts(columns: Rc<Columns>, values: Vec<Value>) -> Self {
        Row { columns, values }
    }

    /// The schema the row is laid out like.
    pub fn schema(&self) -> &Schema {
        self.columns.schema()
    }

    /// The index of the column named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.columns.index_of(name)
    }

    /// The values, in column order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// The values, mutable (push to append output columns).
    pub fn values_mut(&mut self) -> &mut Vec<Value> {
        &mut self.values
    }

    /// The values, consuming the row.
    pub fn into_values(self) -> Vec<Value> {
        self.values
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the row has no values.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Appends a value (for transforms that add columns).
    pub fn push(&mut self, value: impl Into<Value>) {
        self.values.push(value.into());
    }

    fn index(&self, column: impl ColumnRef) -> Result<usize, RowError> {
        column.resolve(&self.columns, self.values.len())
    }

    /// The value of a column, by name or index.
    pub fn get(&self, column: impl ColumnRef) -> Result<&Value, RowError> {
        let i = self.index(column)?;
        Ok(&self.values[i])
    }

    fn typed<'a, T>(
        &'a self,
        column: impl ColumnRef,
        expected: ColumnType,
        pick: impl FnOnce(&'a Value) -> Option<T>,
    ) -> Result<Option<T>, RowError> {
        let i = self.index(column)?;
        let value = &self.values[i];
        if value.is_null() {
            return Ok(None);
        }
        match pick(value) {
            Some(v) => Ok(Some(v)),
            None => Err(
                RowError::new(format!("expected {expected}, got {}", value.describe()))
                    .column(self.columns.name_of(i)),
            ),
        }
    }

    fn required<T>(
        &self,
        column: impl ColumnRef,
        expected: ColumnType,
        got: Result<Option<T>, RowError>,
    ) -> Result<T, RowError> {
        match got? {
            Some(v) => Ok(v),
            None => {
                let i = self.index(column)?;
                Err(RowError::new(format!("expected {expected}, got null"))
                    .column(self.columns.name_of(i)))
            }
        }
    }

    /// The text of a text column; null or another type is an error.
    pub fn text(&self, column: impl ColumnRef + Copy) -> Result<&str, RowError> {
        self.required(column, ColumnType::Text, self.text_opt(column))
    }

    /// The text of a text column, `None` for null.
    pub fn text_opt(&self, column: impl ColumnRef) -> Result<Option<&str>, RowError> {
        self.typed(column, ColumnType::Text, Value::as_text)
    }

    /// The integer of an int column; null or another type is an error.
    pub fn int(&self, column: impl ColumnRef + Copy) -> Result<i64, RowError> {
        self.required(column, ColumnType::Int, self.int_opt(column))
    }

    /// The integer of an int column, `None` for null.
    pub fn int_opt(&self, column: impl ColumnRef) -> Result<Option<i64>, RowError> {
        self.typed(column, ColumnType::Int, Value::as_int)
    }

    /// The number of a float, int or decimal column; null is an error.
    pub fn float(&self, column: impl ColumnRef + Copy) -> Result<f64, RowError> {
        self.required(column, ColumnType::Float, self.float_opt(column))
    }

    /// The number of a float, int or decimal column, `None` for null.
    pub fn float_opt(&self, column: impl ColumnRef) -> Result<Option<f64>, RowError> {
        self.typed(column, ColumnType::Float, Value::as_float)
    }

    /// The boolean of a boolean column; null or another type is an error.
    pub fn boolean(&self, column: impl ColumnRef + Copy) -> Result<bool, RowError> {
        self.required(column, ColumnType::Boolean, self.boolean_opt(column))
    }

    /// The boolean of a boolean column, `None` for null.
    pub fn boolean_opt(&self, column: impl ColumnRef) -> Result<Option<bool>, RowError> {
        self.typed(column, ColumnType::Boolean, Value::as_bool)
    }

    /// Sets a column's value, by name or index.
    pub fn set(&mut self, column: impl ColumnRef, value: impl Into<Value>) -> Result<(), RowError> {
        let i = self.index(column)?;
        self.values[i] = value.into();
        Ok(())
    }

    /// Sets a column to null, by name or index.
    pub fn set_null(&mut self, column: impl ColumnRef) -> Result<(), RowError> {
        self.set(column, Value::Null)
    }
}
