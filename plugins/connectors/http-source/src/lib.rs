//! Reads a paginated JSON API through the host's HTTP capability. Each page
//! is `{"items": [{...}, ...], "next": "<url of the next page>" | null}`;
//! each item becomes a row of the configured columns (missing fields are
//! NULL). The position is the page's URL and the items read from it, so a
//! resumed run asks for that page again and skips what landed.
//!
//! ```toml
//! [source]
//! type = "plugin"
//! plugin = "credvault_http_source.wasm"
//! config = { url = "http://api.example.com/people", table = "people", key = ["id"], columns = [{ name = "id", type = "int" }, { name = "name", type = "text" }] }
//! grants = { http = { hosts = ["api.example.com"], max_response_kb = 1024, timeout_ms = 5000 } }
//! ```

use std::collections::VecDeque;

use credvault_sdk::prelude::*;
use serde_json::Value as Json;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The first page.
    url: String,
    /// The table name the API's rows go by.
    table: String,
    columns: Vec<ColumnConfig>,
    #[serde(default)]
    key: Vec<String>,
    /// The field of a page that holds its items.
    #[serde(default = "items")]
    items: String,
    /// The field of a page that holds the next page's URL.
    #[serde(default = "next")]
    next: String,
}

fn items() -> String {
    "items".into()
}

fn next() -> String {
    "next".into()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ColumnConfig {
    name: String,
    #[serde(rename = "type")]
    type_: String,
}

/// Where reading stands: the page being read and items taken from it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Position {
    page: String,
    taken: usize,
}

struct HttpSource;

struct PageReader {
    columns: Vec<Column>,
    items_field: String,
    next_field: String,
    page: Option<String>,
    buffered: VecDeque<Json>,
    taken: usize,
    next_page: Option<String>,
}

fn column_type(name: &str) -> Result<ColumnType, String> {
    Ok(match name {
        "int" => ColumnType::Int,
        "float" => ColumnType::Float,
        "text" => ColumnType::Text,
        "boolean" => ColumnType::Boolean,
        "json" => ColumnType::Json,
        other => {
            return Err(format!(
                "column type `{other}`: this source reads int, float, text, boolean or json (map other types in [tables.columns])"
            ));
        }
    })
}

fn columns(config: &Config) -> Result<Vec<Column>, String> {
    config
        .columns
        .iter()
        .map(|c| Ok(Column::new(&c.name, column_type(&c.type_)?)))
        .collect()
}

impl Source for HttpSource {
    type Config = Config;
    type Reader = PageReader;

    fn check(config: &Config) -> Result<(), String> {
        columns(config)?;
        credvault_sdk::http::get(&config.url)?;
        Ok(())
    }

    fn discover(config: &Config) -> Result<Vec<TableInfo>, String> {
        Ok(vec![TableInfo {
            name: config.table.clone(),
            columns: columns(config)?,
            primary_key: config.key.clone(),
            approx_rows: None,
        }])
    }

    fn open(config: &Config, table: &str, after: Option<&str>) -> Result<PageReader, String> {
        if table != config.table {
            return Err(format!(
                "no table `{table}`: this source reads `{}`",
                config.table
            ));
        }
        let start = match after {
            Some(p) => serde_json::from_str(p).map_err(|e| format!("bad position `{p}`: {e}"))?,
            None => Position {
                page: config.url.clone(),
                taken: 0,
            },
        };
        let mut reader = PageReader {
            columns: columns(config)?,
            items_field: config.items.clone(),
            next_field: config.next.clone(),
            page: None,
            buffered: VecDeque::new(),
            taken: 0,
            next_page: Some(start.page),
        };
        reader.load_next()?;
        for _ in 0..start.taken {
            reader.buffered.pop_front();
            reader.taken += 1;
        }
        Ok(reader)
    }
}

impl PageReader {
    /// Fetches the next page into the buffer; false when there is none.
    fn load_next(&mut self) -> Result<bool, String> {
        let Some(url) = self.next_page.take() else {
            return Ok(false);
        };
        let response = credvault_sdk::http::get(&url)?;
        let page: Json = serde_json::from_slice(&response.body)
            .map_err(|e| format!("{url} did not answer JSON: {e}"))?;
        let items = page
            .get(&self.items_field)
            .and_then(Json::as_array)
            .ok_or_else(|| format!("{url}: the page has no `{}` list", self.items_field))?;
        self.buffered = items.iter().cloned().collect();
        self.next_page = page
            .get(&self.next_field)
            .and_then(Json::as_str)
            .map(String::from);
        self.page = Some(url);
        self.taken = 0;
        Ok(true)
    }

    fn row(&self, item: &Json) -> Vec<Value> {
        self.columns
            .iter()
            .map(|c| value(item.get(&c.name).unwrap_or(&Json::Null), c))
            .collect()
    }
}

impl Reader for PageReader {
    fn next(&mut self, max_rows: usize) -> Result<Option<SourceBatch>, String> {
        while self.buffered.is_empty() {
            if !self.load_next()? {
                return Ok(None);
            }
        }
        let mut rows = Vec::new();
        while rows.len() < max_rows {
            let Some(item) = self.buffered.pop_front() else {
                break;
            };
            rows.push(self.row(&item));
            self.taken += 1;
        }
        let position = Position {
            page: self.page.clone().unwrap_or_default(),
            taken: self.taken,
        };
        Ok(Some(SourceBatch {
            rows,
            position: serde_json::to_string(&position).expect("positions serialize"),
        }))
    }
}

/// The value of `json` as `column`'s type. A value that is not of that
/// type is passed on as it is (text, or JSON): the host makes its row a
/// row error under the table's policy, and the rest of the table loads.
fn value(json: &Json, column: &Column) -> Value {
    let as_given = || match json {
        Json::String(s) => Value::Text(s.clone()),
        j => Value::Json(j.to_string()),
    };
    match (column.type_, json) {
        (_, Json::Null) => Value::Null,
        (ColumnType::Int, j) => j.as_i64().map_or_else(as_given, Value::Int),
        (ColumnType::Float, j) => j.as_f64().map_or_else(as_given, Value::Float),
        (ColumnType::Boolean, j) => j.as_bool().map_or_else(as_given, Value::Boolean),
        (ColumnType::Text, Json::String(s)) => Value::Text(s.clone()),
        (ColumnType::Text, j) => Value::Text(j.to_string()),
        (_, j) => Value::Json(j.to_string()),
    }
}

export_source!(HttpSource);
