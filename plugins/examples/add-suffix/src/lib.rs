//! An example third-party transform plugin: appends a configured suffix to
//! the `name` column. Build it with
//! `cargo build -p credvault-example-add-suffix --target wasm32-wasip2 --release`.

use credvault_sdk::prelude::*;

/// The plugin's settings, e.g. `{"suffix": " (migrated)"}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Appended to every name.
    pub suffix: String,
}

/// Appends `config.suffix` to the row's `name`; a null name stays null.
#[transform]
fn add_suffix(row: &mut Row, config: &Config) -> Result<(), RowError> {
    if let Some(name) = row.text_opt("name")? {
        row.set("name", format!("{name}{}", config.suffix))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credvault_sdk::testing::run_transform;

    fn schema() -> Schema {
        vec![
            Column::new("id", ColumnType::Int).not_null(),
            Column::new("name", ColumnType::Text),
        ]
    }

    #[test]
    fn appends_the_suffix_and_keeps_the_schema() {
        let (out_schema, out) = run_transform::<AddSuffix>(
            r#"{"suffix": " (migrated)"}"#,
            schema(),
            vec![
                vec![Value::Int(1), "Ada".into()],
                vec![Value::Int(2), Value::Null],
            ],
        )
        .unwrap();
        assert_eq!(out_schema, schema());
        assert_eq!(
            out,
            vec![
                Outcome::Keep(vec![Value::Int(1), "Ada (migrated)".into()]),
                Outcome::Keep(vec![Value::Int(2), Value::Null]),
            ]
        );
    }

    #[test]
    fn a_wrongly_typed_name_is_a_row_error_naming_the_column() {
        let (_, out) = run_transform::<AddSuffix>(
            r#"{"suffix": "!"}"#,
            schema(),
            vec![vec![Value::Int(1), Value::Int(7)]],
        )
        .unwrap();
        assert_eq!(
            out,
            vec![Outcome::Error(
                RowError::new("expected text, got int 7").column("name")
            )]
        );
    }

    #[test]
    fn a_bad_config_names_the_field() {
        let err = run_transform::<AddSuffix>(r#"{"suffix": 3}"#, schema(), vec![]).unwrap_err();
        assert!(
            err.starts_with("invalid config at `suffix`: invalid type"),
            "{err}"
        );
        let err = run_transform::<AddSuffix>("{}", schema(), vec![]).unwrap_err();
        assert!(err.contains("missing field `suffix`"), "{err}");
    }
}
