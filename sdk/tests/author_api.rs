//! The author's view of the SDK: both plugin forms run through the native
//! harness, as a third-party crate would use them.

use credvault_sdk::prelude::*;
use credvault_sdk::testing::{context, run_transform, run_transform_with};

fn people() -> Schema {
    vec![
        Column::new("id", ColumnType::Int).not_null(),
        Column::new("name", ColumnType::Text),
        Column::new("score", ColumnType::Float),
    ]
}

fn ada() -> Vec<Value> {
    vec![Value::Int(1), "Ada".into(), Value::Float(9.5)]
}

// --- The function form -------------------------------------------------

#[derive(serde::Deserialize)]
struct Suffix {
    suffix: String,
}

#[transform]
fn add_suffix(row: &mut Row, config: &Suffix) -> Result<(), RowError> {
    let name = row.text("name")?;
    row.set("name", format!("{name}{}", config.suffix))?;
    Ok(())
}

#[test]
fn function_form_keeps_the_schema_and_edits_rows() {
    let (schema, out) =
        run_transform::<AddSuffix>(r#"{"suffix": "!"}"#, people(), vec![ada()]).unwrap();
    assert_eq!(schema, people());
    assert_eq!(
        out,
        vec![Outcome::Keep(vec![
            Value::Int(1),
            "Ada!".into(),
            Value::Float(9.5)
        ])]
    );
}

#[test]
fn typed_getters_fail_with_the_column_and_the_expected_type() {
    let rows = vec![
        vec![Value::Int(1), Value::Null, Value::Null],
        vec![Value::Int(2), Value::Int(5), Value::Null],
    ];
    let (_, out) = run_transform::<AddSuffix>(r#"{"suffix": "!"}"#, people(), rows).unwrap();
    assert_eq!(
        out,
        vec![
            Outcome::Error(RowError::new("expected text, got null").column("name")),
            Outcome::Error(RowError::new("expected text, got int 5").column("name")),
        ]
    );
    assert_eq!(
        out[1],
        Outcome::Error(RowError {
            column: Some("name".into()),
            message: "expected text, got int 5".into()
        })
    );
}

#[test]
fn config_errors_name_the_field() {
    let err = run_transform::<AddSuffix>(r#"{"suffix": 1}"#, people(), vec![]).unwrap_err();
    assert_eq!(
        err,
        "invalid config at `suffix`: invalid type: integer `1`, expected a string at line 1 column 12"
    );
    let err = run_transform::<AddSuffix>("{", people(), vec![]).unwrap_err();
    assert!(
        err.starts_with("invalid config: not valid JSON: EOF while parsing"),
        "{err}"
    );
    let err = run_transform::<AddSuffix>("", people(), vec![]).unwrap_err();
    assert!(err.contains("missing field `suffix`"), "{err}");
}

/// Drops rows whose score is below the threshold; no config struct needed
/// for the second one.
#[derive(serde::Deserialize)]
struct Threshold {
    min: f64,
}

#[transform]
fn keep_high_scores(row: &mut Row, config: &Threshold) -> Result<RowAction, RowError> {
    match row.float_opt("score")? {
        Some(s) if s >= config.min => Ok(RowAction::Keep),
        _ => Ok(RowAction::Drop),
    }
}

#[transform]
fn clear_names(row: &mut Row) -> Result<(), RowError> {
    row.set_null("name")?;
    row.set(0, 42)?;
    Ok(())
}

#[test]
fn function_form_can_drop_rows_and_needs_no_config() {
    let rows = vec![ada(), vec![Value::Int(2), "Bob".into(), Value::Int(3)]];
    let (_, out) = run_transform::<KeepHighScores>(r#"{"min": 5}"#, people(), rows).unwrap();
    assert_eq!(out, vec![Outcome::Keep(ada()), Outcome::Drop]);

    for config in ["", "{}", r#"{"anything": [1, 2]}"#, "null"] {
        let (_, out) = run_transform::<ClearNames>(config, people(), vec![ada()]).unwrap();
        assert_eq!(
            out,
            vec![Outcome::Keep(vec![
                Value::Int(42),
                Value::Null,
                Value::Float(9.5)
            ])]
        );
    }
}

// --- The trait form ----------------------------------------------------

/// Splits `name` into `first` and `last`, appending both columns.
struct SplitName {
    name: usize,
    separator: String,
    table: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitConfig {
    #[serde(default = "space")]
    separator: String,
}

fn space() -> String {
    " ".into()
}

impl Transform for SplitName {
    type Config = SplitConfig;

    fn configure(
        ctx: &Context,
        config: SplitConfig,
        input: &Schema,
    ) -> Result<(Self, Schema), String> {
        let name = input
            .iter()
            .position(|c| c.name == "name" && c.type_ == ColumnType::Text)
            .ok_or("split-name needs a text column named `name`")?;
        let mut output = input.clone();
        output.push(Column::new("first", ColumnType::Text));
        output.push(Column::new("last", ColumnType::Text));
        let table = ctx.table.clone();
        Ok((
            SplitName {
                name,
                separator: config.separator,
                table,
            },
            output,
        ))
    }

    fn transform_row(&mut self, mut row: Row) -> Outcome {
        let Some(name) = row.values()[self.name].as_text() else {
            return Outcome::Drop;
        };
        let (first, last) = match name.split_once(self.separator.as_str()) {
            Some((f, l)) => (f.to_string(), Some(l.to_string())),
            None => (name.to_string(), None),
        };
        if first.is_empty() {
            return RowError::new(format!("empty first name in table {}", self.table))
                .column("name")
                .into();
        }
        row.push(first);
        row.push(last);
        row.into()
    }
}

credvault_sdk::export_transform!(SplitName);

#[test]
fn trait_form_changes_the_schema() {
    let rows = vec![
        vec![Value::Int(1), "Ada Lovelace".into(), Value::Null],
        vec![Value::Int(2), "Plato".into(), Value::Null],
        vec![Value::Int(3), Value::Null, Value::Null],
        vec![Value::Int(4), " x".into(), Value::Null],
    ];
    let mut ctx = context();
    ctx.table = "people".into();
    let (schema, out) = run_transform_with::<SplitName>(&ctx, "{}", people(), rows).unwrap();
    let names: Vec<&str> = schema.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["id", "name", "score", "first", "last"]);
    assert_eq!(
        out,
        vec![
            Outcome::Keep(vec![
                Value::Int(1),
                "Ada Lovelace".into(),
                Value::Null,
                "Ada".into(),
                "Lovelace".into()
            ]),
            Outcome::Keep(vec![
                Value::Int(2),
                "Plato".into(),
                Value::Null,
                "Plato".into(),
                Value::Null
            ]),
            Outcome::Drop,
            Outcome::Error(RowError::new("empty first name in table people").column("name")),
        ]
    );
}

#[test]
fn trait_form_configure_errors_pass_through() {
    let err = run_transform::<SplitName>("{}", vec![Column::new("x", ColumnType::Int)], vec![])
        .unwrap_err();
    assert_eq!(err, "split-name needs a text column named `name`");
    let err = run_transform::<SplitName>(r#"{"sep": "-"}"#, people(), vec![]).unwrap_err();
    assert!(
        err.starts_with("invalid config at `sep`: unknown field `sep`, expected `separator`"),
        "{err}"
    );
}

// --- The batch loop ----------------------------------------------------

#[test]
fn a_row_of_the_wrong_width_is_a_row_error_not_a_panic() {
    let (_, out) = run_transform::<AddSuffix>(
        r#"{"suffix": "!"}"#,
        people(),
        vec![vec![Value::Int(1)], ada()],
    )
    .unwrap();
    assert_eq!(
        out[0],
        Outcome::Error(RowError::new(
            "the row has 1 values but the input schema has 3 columns"
        ))
    );
    assert!(matches!(out[1], Outcome::Keep(_)));
}

#[test]
fn transform_before_configure_reports_not_configured() {
    let slot = credvault_sdk::runtime::Slot::<AddSuffix>::new();
    let out = slot.transform_outcomes(vec![ada(), ada()]);
    assert_eq!(out.len(), 2);
    assert!(
        matches!(&out[0], Outcome::Error(e) if e.message.contains("not configured")),
        "{out:?}"
    );
    // A failed configure leaves the slot unconfigured too.
    assert!(slot.configure(&context(), "{}", people()).is_err());
    assert!(matches!(
        &slot.transform_outcomes(vec![ada()])[0],
        Outcome::Error(_)
    ));
    assert!(
        slot.configure(&context(), r#"{"suffix":"?"}"#, people())
            .is_ok()
    );
    assert!(matches!(
        &slot.transform_outcomes(vec![ada()])[0],
        Outcome::Keep(_)
    ));
}

// --- Row and value helpers ----------------------------------------------

#[test]
fn row_accessors_by_name_and_index() {
    let columns = std::rc::Rc::new(credvault_sdk::Columns::new(people()));
    let mut row = Row::from_parts(columns, ada());
    assert_eq!(row.int("id").unwrap(), 1);
    assert_eq!(row.int(0).unwrap(), 1);
    assert_eq!(row.text(1).unwrap(), "Ada");
    assert_eq!(row.float("score").unwrap(), 9.5);
    assert_eq!(row.float("id").unwrap(), 1.0);
    assert_eq!(row.get("name").unwrap(), &Value::Text("Ada".into()));
    assert_eq!(row.index_of("score"), Some(2));
    assert_eq!(row.len(), 3);
    assert!(!row.is_empty());
    assert_eq!(row.schema().len(), 3);
    assert_eq!(
        row.get("nme").unwrap_err(),
        RowError::new("the input has no column named \"nme\" (columns: id, name, score)")
            .column("nme")
    );
    assert_eq!(
        row.get(7).unwrap_err().message,
        "column index 7 is out of range: the row has 3 values"
    );
    assert_eq!(
        row.boolean("name").unwrap_err().to_string(),
        "name: expected boolean, got text \"Ada\""
    );
    row.set("score", None::<f64>).unwrap();
    assert_eq!(row.float_opt("score").unwrap(), None);
    assert_eq!(row.int_opt("score").unwrap(), None);
    row.set(1, Some("Grace")).unwrap();
    assert_eq!(row.text_opt("name").unwrap(), Some("Grace"));
    assert_eq!(
        format!("{row:?}"),
        r#"{"id": Value::Int(1), "name": Value::Text("Grace"), "score": Value::Null}"#
    );
    assert!(row.set("missing", 1).is_err());
}

#[test]
fn value_helpers() {
    assert!(Value::Null.is_null());
    assert_eq!(Value::Null.type_name(), "null");
    assert_eq!(Value::Int(3).type_name(), "int");
    assert_eq!(Value::Int(3).as_int(), Some(3));
    assert_eq!(Value::Int(3).as_float(), Some(3.0));
    assert_eq!(Value::Decimal("1.5".into()).as_float(), Some(1.5));
    assert_eq!(Value::Text("a".into()).as_text(), Some("a"));
    assert_eq!(Value::Json("{}".into()).as_text(), None);
    assert_eq!(Value::Boolean(true).as_bool(), Some(true));
    assert_eq!(Value::Date(3).as_date(), Some(3));
    assert_eq!(Value::Timestamptz(9).as_timestamp(), Some(9));
    assert_eq!(Value::from("x"), Value::Text("x".into()));
    assert_eq!(Value::from(1i32), Value::Int(1));
    assert_eq!(Value::from(None::<i64>), Value::Null);
    assert_eq!(
        Value::Text("x".repeat(50)).describe(),
        format!("text {:?}…", "x".repeat(40))
    );
    assert_eq!(Value::Bytes(vec![1]).describe(), "bytes");
    assert_eq!(ColumnType::Timestamptz.to_string(), "timestamptz");
    assert!(ColumnType::Decimal.is_numeric());
    assert!(!Column::new("a", ColumnType::Int).not_null().nullable);
    assert_eq!(RowError::new("boom").to_string(), "boom");
}

#[test]
fn logging_works_natively() {
    credvault_sdk::log::info!("{} rows", 3);
    credvault_sdk::log::warn("odd");
    credvault_sdk::log::log(credvault_sdk::log::Level::Debug, "detail");
}
