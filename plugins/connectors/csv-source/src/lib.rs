//! Reads CSV files from a directory the migration file grants: each
//! `NAME.csv` is a table `NAME` whose columns are its header, all text (the
//! column mapping gives them types). An empty field is NULL.
//!
//! ```toml
//! [source]
//! type = "plugin"
//! plugin = "credvault_csv_source.wasm"
//! config = { dir = "data" }
//! grants = { dirs = [{ path = "data" }] }
//! ```

use std::fs::File;
use std::path::PathBuf;

use credvault_sdk::prelude::*;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The granted directory, as written in `grants.dirs`.
    dir: String,
    #[serde(default = "comma")]
    delimiter: char,
}

fn comma() -> char {
    ','
}

struct CsvSource;

/// An open file, and how many data rows have been read.
struct CsvReader {
    records: csv::StringRecordsIntoIter<File>,
    read: u64,
}

fn file(config: &Config, table: &str) -> PathBuf {
    PathBuf::from(&config.dir).join(format!("{table}.csv"))
}

fn reader(config: &Config, table: &str) -> Result<csv::Reader<File>, String> {
    let path = file(config, table);
    let file = File::open(&path).map_err(|e| {
        format!(
            "cannot open {}: {e}; is `{}` granted in grants.dirs?",
            path.display(),
            config.dir
        )
    })?;
    Ok(csv::ReaderBuilder::new()
        .delimiter(config.delimiter as u8)
        .from_reader(file))
}

impl Source for CsvSource {
    type Config = Config;
    type Reader = CsvReader;

    fn discover(config: &Config) -> Result<Vec<TableInfo>, String> {
        let entries = std::fs::read_dir(&config.dir).map_err(|e| {
            format!(
                "cannot list {}: {e}; grant it with grants.dirs = [{{ path = \"{}\" }}]",
                config.dir, config.dir
            )
        })?;
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .filter_map(|n| n.strip_suffix(".csv").map(String::from))
            .collect();
        names.sort();
        names.iter().map(|name| table(config, name)).collect()
    }

    fn open(config: &Config, table: &str, after: Option<&str>) -> Result<CsvReader, String> {
        let skip = match after {
            Some(p) => p
                .parse::<u64>()
                .map_err(|_| format!("bad position `{p}`"))?,
            None => 0,
        };
        let mut records = reader(config, table)?.into_records();
        for _ in 0..skip {
            records.next();
        }
        Ok(CsvReader {
            records,
            read: skip,
        })
    }
}

fn table(config: &Config, name: &str) -> Result<TableInfo, String> {
    let headers = reader(config, name)?
        .headers()
        .map_err(|e| format!("{name}.csv: {e}"))?
        .clone();
    Ok(TableInfo {
        name: name.to_string(),
        columns: headers
            .iter()
            .map(|h| Column::new(h, ColumnType::Text))
            .collect(),
        primary_key: Vec::new(),
        approx_rows: None,
    })
}

impl Reader for CsvReader {
    fn next(&mut self, max_rows: usize) -> Result<Option<SourceBatch>, String> {
        let mut rows = Vec::new();
        for record in self.records.by_ref().take(max_rows) {
            let record = record.map_err(|e| format!("row {}: {e}", self.read + 1))?;
            rows.push(record.iter().map(field).collect());
            self.read += 1;
        }
        if rows.is_empty() {
            return Ok(None);
        }
        Ok(Some(SourceBatch {
            rows,
            position: self.read.to_string(),
        }))
    }
}

fn field(text: &str) -> Value {
    match text {
        "" => Value::Null,
        text => Value::Text(text.to_string()),
    }
}

export_source!(CsvSource);
