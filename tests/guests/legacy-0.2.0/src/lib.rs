//! A transform built against `credvault:migrate@0.2.0` as it was released
//! (a frozen copy in `wit/`): it upper-cases every text value. It proves a
//! host speaking a later 0.2.x still loads and runs plugins built before.
#![allow(unsafe_code)] // wit-bindgen's generated exports use unsafe
#![allow(missing_docs)] // a test guest; its generated bindings are documented in wit/

wit_bindgen::generate!({
    path: "wit",
    world: "transform-plugin",
});

use credvault::migrate::types::{Column, Value};
use exports::credvault::migrate::transform::{Context, Guest, RowResult};

struct Legacy;

impl Guest for Legacy {
    fn configure(
        _ctx: Context,
        _config: String,
        input: Vec<Column>,
    ) -> Result<Vec<Column>, String> {
        Ok(input)
    }

    fn transform(rows: Vec<Vec<Value>>) -> Vec<RowResult> {
        rows.into_iter()
            .map(|row| {
                let upper = row.into_iter().map(|v| match v {
                    Value::Text(t) => Value::Text(t.to_uppercase()),
                    other => other,
                });
                RowResult::Ok(upper.collect())
            })
            .collect()
    }
}

export!(Legacy);
