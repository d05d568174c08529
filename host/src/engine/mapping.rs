//! Column mapping: rename, skip, convert types and replace values, from the
//! source schema to the schema the transforms (and then the sink) see.

use std::collections::HashMap;

use crate::config::{ColumnSpec, TableSpec, Unmapped};
use crate::model::convert::{convert, convert_lossy, convert_ref, convertible, from_toml};
use crate::model::value::{
    Column, ColumnType, Row, TableInfo, Value, parse_type_name, to_text, type_name,
};

/// A mapping from source rows to mapped rows.
#[derive(Debug, Clone)]
pub struct Mapping {
    columns: Vec<MappedColumn>,
    /// Columns in the source table.
    width: usize,
    /// The mapped schema.
    pub output: Vec<Column>,
}

/// How one destination column is made from a source column.
#[derive(Debug, Clone)]
pub struct MappedColumn {
    /// Index of the source column.
    pub source: usize,
    /// The source column's name and type.
    pub from: Column,
    /// The mapped column.
    pub to: Column,
    /// Whether a conversion may round or truncate (`lossy = true`).
    pub lossy: bool,
    map: Option<ValueMap>,
}

impl MappedColumn {
    /// Whether values pass unchanged: no value map, no type change.
    pub fn passes_through(&self) -> bool {
        self.map.is_none() && self.from.type_ == self.to.type_
    }
}

#[derive(Debug, Clone)]
struct ValueMap {
    entries: HashMap<String, Value>,
    unmapped: Unmapped,
    default: Value,
}

/// A value that a value map does not list, under `unmapped = "error"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{key:?} is not in the value map (known: {}); add it to `map` or set `unmapped`",
    known.join(", ")
)]
pub struct NotInMap {
    /// The value, as text.
    pub key: String,
    /// The values the map lists, sorted.
    pub known: Vec<String>,
}

/// A value that could not be mapped.
#[derive(Debug, Clone, PartialEq)]
pub struct MapError {
    /// The mapped column's name.
    pub column: String,
    /// The offending value, as text.
    pub value: Option<String>,
    /// What was expected.
    pub message: String,
}

impl Mapping {
    /// Builds the mapping of `table` against the real source schema; every
    /// problem is reported, each naming its key.
    pub fn new(spec: &TableSpec, source: &TableInfo) -> Result<Self, Vec<String>> {
        let mut problems = Vec::new();
        for name in spec.columns.keys() {
            if !source.columns.iter().any(|c| &c.name == name) {
                problems.push(format!(
                    "columns.{name}: the source table `{}` has no column `{name}`{}",
                    source.name,
                    suggestion(name, source.columns.iter().map(|c| c.name.as_str()))
                ));
            }
        }
        let default_spec = ColumnSpec::default();
        let mut columns = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (i, col) in source.columns.iter().enumerate() {
            let spec = spec.columns.get(&col.name).unwrap_or(&default_spec);
            if spec.skip {
                continue;
            }
            let name = spec.rename.clone().unwrap_or_else(|| col.name.clone());
            if let Some(other) = seen.insert(name.clone(), col.name.clone()) {
                problems.push(match other == col.name {
                    // Not a clash a rename could fix: both would be renamed.
                    true => format!(
                        "columns.{other}: the source table `{}` declares column `{other}` twice; a table holds one column of a name: fix the source's schema (a plugin's `discover`)",
                        source.name
                    ),
                    false => format!(
                        "columns.{}: maps onto `{name}`, which `{other}` already maps onto; rename one of them",
                        col.name
                    ),
                });
            }
            let to_type = spec
                .type_
                .as_deref()
                .and_then(parse_type_name)
                .unwrap_or(col.type_);
            let map = match &spec.map {
                Some(entries) => match value_map(&col.name, entries, spec, to_type) {
                    Ok(map) => Some(map),
                    Err(mut errs) => {
                        problems.append(&mut errs);
                        None
                    }
                },
                None => None,
            };
            columns.push(MappedColumn {
                source: i,
                from: col.clone(),
                to: Column {
                    name,
                    type_: to_type,
                    nullable: col.nullable
                        || map.as_ref().is_some_and(|m| m.unmapped == Unmapped::Null),
                },
                lossy: spec.lossy,
                map,
            });
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let output = columns.iter().map(|c| c.to.clone()).collect();
        Ok(Self {
            columns,
            width: source.columns.len(),
            output,
        })
    }

    /// The mapped columns, in output order.
    pub fn columns(&self) -> &[MappedColumn] {
        &self.columns
    }

    /// Columns whose source type never converts to the mapped type, so
    /// every value but NULL would fail (values a value map replaces are
    /// typed already).
    pub fn inconvertible(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.map.as_ref().is_none_or(|m| m.unmapped == Unmapped::Keep))
            .filter(|c| !convertible(c.from.type_, c.to.type_, c.lossy))
            .map(|c| {
                format!(
                    "columns.{}: {} values never convert to {}; choose a type they convert to (text takes any), or replace them with `map`",
                    c.from.name,
                    type_name(c.from.type_),
                    type_name(c.to.type_)
                )
            })
            .collect()
    }

    /// Maps one source row.
    pub fn apply(&self, row: &Row) -> Result<Row, MapError> {
        let mut out = Vec::with_capacity(self.columns.len());
        for c in &self.columns {
            out.push(c.apply(row.get(c.source).unwrap_or(&Value::Null))?);
        }
        Ok(out)
    }

    /// Whether the mapping leaves values as they are (renames aside), so a
    /// row whose values already have the column types passes unchanged.
    pub fn is_identity(&self) -> bool {
        self.columns
            .iter()
            .enumerate()
            .all(|(i, c)| c.source == i && c.map.is_none() && c.from.type_ == c.to.type_)
            && self.columns.len() == self.width
    }

    /// Whether every value of `row` already has its column's type.
    pub fn conforms(&self, row: &Row) -> bool {
        row.len() == self.columns.len()
            && row
                .iter()
                .zip(&self.columns)
                .all(|(v, c)| crate::model::value::conforms(v, &c.to))
    }
}

impl MappedColumn {
    /// Maps one value; the error's text form of the value is only made
    /// when there is an error.
    fn apply(&self, source: &Value) -> Result<Value, MapError> {
        let fail = |value: &Value, message| MapError {
            column: self.to.name.clone(),
            value: to_text(value),
            message,
        };
        let mapped;
        let value = match &self.map {
            Some(map) => {
                mapped = map.apply(source).map_err(|e| fail(source, e.to_string()))?;
                &mapped
            }
            None => source,
        };
        match self.lossy {
            true => convert_lossy(value.clone(), self.to.type_),
            false => convert_ref(value, self.to.type_),
        }
        .map_err(|e| fail(value, e.to_string()))
    }
}

impl ValueMap {
    fn apply(&self, value: &Value) -> Result<Value, NotInMap> {
        let Some(key) = to_text(value) else {
            return Ok(Value::Null);
        };
        if let Some(mapped) = self.entries.get(&key) {
            return Ok(mapped.clone());
        }
        match self.unmapped {
            Unmapped::Error => {
                let mut known: Vec<String> = self.entries.keys().cloned().collect();
                known.sort();
                Err(NotInMap { key, known })
            }
            Unmapped::Null => Ok(Value::Null),
            Unmapped::Keep => Ok(value.clone()),
            Unmapped::Default => Ok(self.default.clone()),
        }
    }
}

fn value_map(
    column: &str,
    entries: &std::collections::BTreeMap<String, toml::Value>,
    spec: &ColumnSpec,
    to: ColumnType,
) -> Result<ValueMap, Vec<String>> {
    let mut problems = Vec::new();
    let mut typed = |key: &str, v: &toml::Value| match convert(from_toml(v), to) {
        Ok(v) => Some(v),
        Err(message) => {
            problems.push(format!(
                "columns.{column}.{key}: {message} (the column's type is {})",
                type_name(to)
            ));
            None
        }
    };
    let mut map = HashMap::new();
    for (k, v) in entries {
        if let Some(v) = typed(&format!("map.{k}"), v) {
            map.insert(k.clone(), v);
        }
    }
    let default = spec
        .default
        .as_ref()
        .and_then(|d| typed("default", d))
        .unwrap_or(Value::Null);
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(ValueMap {
        entries: map,
        unmapped: spec.unmapped,
        default,
    })
}

/// ", did you mean `x`?" for the closest name, if any is close.
pub fn suggestion<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> String {
    let lower = name.to_ascii_lowercase();
    candidates
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 2.max(name.len() / 3))
        .min()
        .map(|(_, c)| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> TableInfo {
        let col = |name: &str| Column {
            name: name.into(),
            type_: ColumnType::Text,
            nullable: true,
        };
        TableInfo {
            name: "customers".into(),
            columns: vec![col("customer_id"), col("tier"), col("notes")],
            primary_key: vec![],
            approx_rows: None,
        }
    }

    fn spec(toml_text: &str) -> TableSpec {
        toml::from_str(&format!("source = \"customers\"\n{toml_text}")).unwrap()
    }

    #[test]
    fn renames_skips_converts_and_maps_values() {
        let spec = spec(
            "[columns.customer_id]\nrename = \"id\"\ntype = \"int\"\n[columns.notes]\nskip = true\n[columns.tier]\ntype = \"int\"\nmap = { gold = 1, silver = 2 }\nunmapped = \"default\"\ndefault = 0\n",
        );
        let mapping = Mapping::new(&spec, &table()).unwrap();
        let names: Vec<&str> = mapping.output.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "tier"]);
        let row = |id: &str, tier: &str| {
            vec![
                Value::Text(id.into()),
                Value::Text(tier.into()),
                Value::Null,
            ]
        };
        assert_eq!(
            mapping.apply(&row("7", "gold")),
            Ok(vec![Value::Int(7), Value::Int(1)])
        );
        assert_eq!(
            mapping.apply(&row("8", "bronze")),
            Ok(vec![Value::Int(8), Value::Int(0)])
        );
        let err = mapping.apply(&row("x9", "gold")).unwrap_err();
        assert_eq!(err.column, "id");
        assert!(err.message.contains("expected int"), "{}", err.message);
    }

    #[test]
    fn unmapped_values_fail_by_default_and_name_the_known_ones() {
        let spec = spec("[columns.tier]\nmap = { gold = \"G\" }\n");
        let mapping = Mapping::new(&spec, &table()).unwrap();
        let err = mapping
            .apply(&vec![
                Value::Text("1".into()),
                Value::Text("platinum".into()),
                Value::Null,
            ])
            .unwrap_err();
        assert!(
            err.message
                .contains("\"platinum\" is not in the value map (known: gold)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn bad_mappings_are_all_reported_against_the_real_schema() {
        let spec = spec(
            "[columns.custmer_id]\nrename = \"id\"\n[columns.tier]\nrename = \"notes\"\n[columns.notes]\ntype = \"int\"\nmap = { a = \"x\" }\n",
        );
        let problems = Mapping::new(&spec, &table()).unwrap_err();
        let all = problems.join("\n");
        assert!(
            all.contains("no column `custmer_id`; did you mean `customer_id`?"),
            "{all}"
        );
        assert!(all.contains("already maps onto"), "{all}");
        assert!(all.contains("columns.notes.map.a: expected int"), "{all}");
    }
}
