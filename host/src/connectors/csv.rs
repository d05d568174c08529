//! CSV files: a source (one table per file) and a sink (one file per table).
//! Every CSV value is text; the column mapping gives it a type.

use std::fs::File;
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::{ConnectorError, SourceBatch};
use crate::config::IfExists;
use crate::value::{Column, ColumnType, Row, TableInfo, Value, to_text};

/// Reads `.csv` files with a header row.
pub struct CsvSource {
    path: PathBuf,
    delimiter: u8,
    null: String,
}

impl CsvSource {
    pub(super) fn new(path: PathBuf, delimiter: u8, null: String) -> Result<Self, ConnectorError> {
        if !path.exists() {
            return Err(ConnectorError {
                endpoint: format!("source csv {}", path.display()),
                message: "no such file or folder; check `source.path` (relative paths start at the migration file's folder)".into(),
            });
        }
        Ok(Self {
            path,
            delimiter,
            null,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError {
            endpoint: format!("source csv {}", self.path.display()),
            message: message.into(),
        }
    }

    fn files(&self) -> Result<Vec<(String, PathBuf)>, ConnectorError> {
        let table_of = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        if self.path.is_file() {
            return Ok(vec![(
                table_of(&self.path).unwrap_or_default(),
                self.path.clone(),
            )]);
        }
        let entries = std::fs::read_dir(&self.path).map_err(|e| self.error(e.to_string()))?;
        let mut files: Vec<(String, PathBuf)> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")))
            .filter_map(|p| Some((table_of(&p)?, p)))
            .collect();
        files.sort();
        Ok(files)
    }

    fn file(&self, table: &str) -> Result<PathBuf, ConnectorError> {
        let files = self.files()?;
        let names: Vec<&str> = files.iter().map(|(t, _)| t.as_str()).collect();
        let message = format!(
            "no CSV file for table `{table}`; found: {}",
            names.join(", ")
        );
        files
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, p)| p.clone())
            .ok_or_else(|| self.error(message))
    }

    fn reader(&self, file: &Path) -> Result<csv::Reader<File>, ConnectorError> {
        csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .from_path(file)
            .map_err(|e| self.error(format!("{}: {e}", file.display())))
    }

    pub(super) fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        self.files()?
            .into_iter()
            .map(|(name, file)| {
                let headers = self
                    .reader(&file)?
                    .headers()
                    .map_err(|e| {
                        self.error(format!(
                            "{}: cannot read the header row: {e}",
                            file.display()
                        ))
                    })?
                    .clone();
                let columns = headers
                    .iter()
                    .map(|h| Column {
                        name: h.trim().to_string(),
                        type_: ColumnType::Text,
                        nullable: true,
                    })
                    .collect();
                Ok(TableInfo {
                    name,
                    columns,
                    primary_key: Vec::new(),
                    approx_rows: None,
                })
            })
            .collect()
    }

    pub(super) async fn count(&self, table: &str) -> Result<u64, ConnectorError> {
        let mut reader = self.reader(&self.file(table)?)?;
        let endpoint = self.error("").endpoint;
        tokio::task::spawn_blocking(move || {
            let mut record = csv::ByteRecord::new();
            let mut n = 0;
            while reader
                .read_byte_record(&mut record)
                .map_err(|e| ConnectorError {
                    endpoint: endpoint.clone(),
                    message: e.to_string(),
                })?
            {
                n += 1;
            }
            Ok(n)
        })
        .await
        .expect("count task panicked")
    }

    pub(super) async fn read(
        &self,
        table: &TableInfo,
        batch_size: usize,
        limit: Option<u64>,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        let reader = match self.file(&table.name).and_then(|f| self.reader(&f)) {
            Ok(reader) => reader,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        };
        let null = self.null.clone();
        let endpoint = self.error("").endpoint;
        let limit = limit.unwrap_or(u64::MAX);
        let task = tokio::task::spawn_blocking(move || {
            read_batches(reader, &null, batch_size, limit, &tx, &endpoint);
        });
        task.await.expect("csv reader panicked");
    }
}

fn read_batches(
    mut reader: csv::Reader<File>,
    null: &str,
    batch_size: usize,
    limit: u64,
    tx: &mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    endpoint: &str,
) {
    let mut record = csv::StringRecord::new();
    let mut read = 0u64;
    let mut batch = SourceBatch {
        rows: Vec::with_capacity(batch_size),
        first: 1,
    };
    while read < limit {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                let message = format!("{e}; fix the file or remove the bad line, then run again");
                let _ = tx.blocking_send(Err(ConnectorError {
                    endpoint: endpoint.to_string(),
                    message,
                }));
                return;
            }
        }
        read += 1;
        let row: Row = record
            .iter()
            .map(|f| {
                if f == null {
                    Value::Null
                } else {
                    Value::Text(f.to_string())
                }
            })
            .collect();
        batch.rows.push(row);
        if batch.rows.len() == batch_size {
            let next = SourceBatch {
                rows: Vec::with_capacity(batch_size),
                first: read + 1,
            };
            if tx
                .blocking_send(Ok(std::mem::replace(&mut batch, next)))
                .is_err()
            {
                return;
            }
        }
    }
    if !batch.rows.is_empty() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// Writes one `.csv` file per table into a folder. A table is written to a
/// `.partial` file and renamed into place when finished, so a reader never
/// sees half a file.
pub struct CsvSink {
    dir: PathBuf,
    delimiter: u8,
    null: String,
    open: Option<(String, csv::Writer<File>)>,
}

impl CsvSink {
    pub(super) fn new(dir: PathBuf, delimiter: u8, null: String) -> Result<Self, ConnectorError> {
        std::fs::create_dir_all(&dir).map_err(|e| ConnectorError {
            endpoint: format!("destination csv {}", dir.display()),
            message: format!("cannot create the folder: {e}"),
        })?;
        Ok(Self {
            dir,
            delimiter,
            null,
            open: None,
        })
    }

    pub(super) fn path(&self) -> &Path {
        &self.dir
    }

    fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError {
            endpoint: format!("destination csv {}", self.dir.display()),
            message: message.into(),
        }
    }

    fn file(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.csv"))
    }

    fn partial(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.csv.partial"))
    }

    pub(super) fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        let file = self.file(table);
        if !file.exists() {
            return Ok(None);
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .from_path(&file)
            .map_err(|e| self.error(e.to_string()))?;
        Ok(Some(reader.byte_records().count() as u64))
    }

    pub(super) fn prepare(
        &mut self,
        table: &str,
        columns: &[Column],
        if_exists: IfExists,
    ) -> Result<(), ConnectorError> {
        let exists = self.file(table).exists();
        if exists && if_exists == IfExists::Fail {
            return Err(self.error(format!(
                "{} already exists; set if_exists = \"replace\" or \"append\" for this table, or choose another destination",
                self.file(table).display()
            )));
        }
        let append = exists && if_exists == IfExists::Append;
        if append {
            std::fs::copy(self.file(table), self.partial(table))
                .map_err(|e| self.error(e.to_string()))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(self.partial(table))
            .map_err(|e| self.error(e.to_string()))?;
        let mut writer = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .from_writer(file);
        if !append {
            writer
                .write_record(columns.iter().map(|c| c.name.as_str()))
                .map_err(|e| self.error(e.to_string()))?;
        }
        self.open = Some((table.to_string(), writer));
        Ok(())
    }

    pub(super) fn write(&mut self, table: &str, rows: &[Row]) -> Result<(), ConnectorError> {
        let null = self.null.clone();
        let Some((open, writer)) = self.open.as_mut().filter(|(t, _)| t == table) else {
            return Err(self.error(format!("table `{table}` was not prepared")));
        };
        debug_assert_eq!(open, table);
        for row in rows {
            let fields = row
                .iter()
                .map(|v| to_text(v).unwrap_or_else(|| null.clone()));
            writer.write_record(fields).map_err(|e| ConnectorError {
                endpoint: String::new(),
                message: e.to_string(),
            })?;
        }
        writer.flush().map_err(|e| self.error(e.to_string()))
    }

    pub(super) fn finish(&mut self, table: &str) -> Result<(), ConnectorError> {
        if let Some((_, mut writer)) = self.open.take() {
            writer.flush().map_err(|e| self.error(e.to_string()))?;
        }
        std::fs::rename(self.partial(table), self.file(table))
            .map_err(|e| self.error(e.to_string()))
    }

    pub(super) fn read_back(&self, table: &str, limit: u64) -> Result<Vec<Row>, ConnectorError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .from_path(self.file(table))
            .map_err(|e| self.error(e.to_string()))?;
        let mut rows = Vec::new();
        for record in reader.records().take(limit as usize) {
            let record = record.map_err(|e| self.error(e.to_string()))?;
            rows.push(
                record
                    .iter()
                    .map(|f| {
                        if f == self.null {
                            Value::Null
                        } else {
                            Value::Text(f.to_string())
                        }
                    })
                    .collect(),
            );
        }
        Ok(rows)
    }
}
