//! CSV files: a source (one table per file) and a sink (one file per table).
//! Every CSV value is text; the column mapping gives it a type.

pub(crate) mod driver;
mod records;

use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{
    Batcher, Checkpoint, ConnectorError, FreeSpace, Healthcheck, Prepare, Prepared, ReadRequest,
    Rejected, Sink, Source, SourceBatch, SourceFault, WriteBatch, free_space_at,
};
use crate::config::IfExists;
use crate::drivers::Shape;
use crate::model::value::{Column, ColumnType, Row, TableInfo, Value, to_text};
use records::{Record, Records};

/// Reads `.csv` files with a header row.
pub struct CsvSource {
    path: PathBuf,
    delimiter: u8,
    null: String,
}

impl CsvSource {
    pub(super) fn new(path: PathBuf, delimiter: u8, null: String) -> Result<Self, ConnectorError> {
        if !path.exists() {
            return Err(ConnectorError::new(
                format!("source csv {}", path.display()),
                "no such file or folder; check `source.path` (relative paths start at the migration file's folder)",
            ));
        }
        Ok(Self {
            path,
            delimiter,
            null,
        })
    }

    fn error(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::new(self.describe(), message)
    }

    fn files(&self) -> Result<Vec<(String, PathBuf)>, ConnectorError> {
        let table_of = |p: &Path| p.file_stem().map(|s| s.to_string_lossy().into_owned());
        if self.path.is_file() {
            return Ok(vec![(
                table_of(&self.path).unwrap_or_default(),
                self.path.clone(),
            )]);
        }
        let entries =
            std::fs::read_dir(&self.path).map_err(|e| self.error(e.to_string()).because(&e))?;
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
        if let Some((_, path)) = files.iter().find(|(t, _)| t == table) {
            return Ok(path.clone());
        }
        let names: Vec<&str> = files.iter().map(|(t, _)| t.as_str()).collect();
        Err(self.error(format!(
            "no CSV file for table `{table}`; found: {}",
            names.join(", ")
        )))
    }

    /// The file's records, past its header row; and the header's names.
    fn open(&self, file: &Path) -> Result<(Records<BufReader<File>>, Vec<String>), ConnectorError> {
        let fail = |message: String| self.error(format!("{}: {message}", file.display()));
        let input = File::open(file).map_err(|e| fail(e.to_string()).because(&e))?;
        let mut records = Records::new(BufReader::new(input), self.delimiter);
        let header = header_of(&mut records).map_err(|e| fail(e.to_string()).because(&e))?;
        records.set_width(header.len());
        Ok((records, header))
    }
}

/// Why a CSV file's header row gives no columns.
#[derive(Debug, thiserror::Error)]
enum HeaderError {
    /// The file could not be read at the header row.
    #[error("line {line}: cannot read the header row: {source}; fix the file, then run again")]
    Read {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    /// The header row is not well-formed CSV.
    #[error("line {line}: cannot read the header row: {message}; fix the file, then run again")]
    Broken { line: u64, message: String },
    /// The header row is not UTF-8.
    #[error(
        "line {0}: the header row is not UTF-8 text; save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
    )]
    NotUtf8(u64),
    /// No header row at all.
    #[error("the file is empty: a CSV table needs a header row naming its columns")]
    Empty,
    /// Two columns of one name (1-based positions).
    #[error(
        "the header row names column {name:?} twice (columns {first} and {second}); give every column its own name"
    )]
    Twice {
        name: String,
        first: usize,
        second: usize,
    },
}

/// The header row's names (untrimmed); an empty list for an empty file.
fn header_of(records: &mut Records<BufReader<File>>) -> Result<Vec<String>, HeaderError> {
    match records.next_record() {
        Err(source) => Err(HeaderError::Read {
            line: records.line(),
            source,
        }),
        Ok(None) => Ok(Vec::new()),
        Ok(Some(Record::Broken { line, message, .. })) => {
            Err(HeaderError::Broken { line, message })
        }
        Ok(Some(Record::Fields { line, fields })) => fields
            .into_iter()
            .map(|f| String::from_utf8(f).map_err(|_| HeaderError::NotUtf8(line)))
            .collect(),
    }
}

#[async_trait]
impl Source for CsvSource {
    fn describe(&self) -> String {
        format!("source csv {}", self.path.display())
    }

    async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        self.files()?
            .into_iter()
            .map(|(name, file)| {
                let (_, headers) = self.open(&file)?;
                let columns = columns_of(&headers)
                    .map_err(|message| self.error(format!("{}: {message}", file.display())))?;
                Ok(TableInfo {
                    name,
                    columns,
                    primary_key: Vec::new(),
                    approx_rows: None,
                })
            })
            .collect()
    }

    async fn count(&self, table: &TableInfo) -> Result<u64, ConnectorError> {
        let (mut records, _) = self.open(&self.file(&table.name)?)?;
        let endpoint = self.describe();
        tokio::task::spawn_blocking(move || {
            let mut n = 0;
            // Broken records are rows too (row errors when read).
            while records
                .next_record()
                .map_err(|e| read_failed(&endpoint, records.line(), &e))?
                .is_some()
            {
                n += 1;
            }
            Ok(n)
        })
        .await
        .expect("count task panicked")
    }

    async fn read(
        &self,
        request: ReadRequest,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        let reader = match self.file(&request.table.name).and_then(|f| self.open(&f)) {
            Ok((records, _)) => records,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                return;
            }
        };
        let null = self.null.clone();
        let endpoint = self.describe();
        let task = tokio::task::spawn_blocking(move || {
            read_batches(reader, &null, &request, &tx, &endpoint)
        });
        task.await.expect("csv reader panicked");
    }

    /// The file's size.
    async fn size_bytes(&self, table: &TableInfo) -> Result<Option<u64>, ConnectorError> {
        let files = self.files()?;
        let Some((_, file)) = files.iter().find(|(t, _)| t == &table.name) else {
            return Ok(None);
        };
        let meta = std::fs::metadata(file).map_err(|e| self.error(e.to_string()).because(&e))?;
        Ok(Some(meta.len()))
    }
}

/// The columns a header row names. A schema's column names are unique, so
/// a repeated name (two empty ones included, as `a,,` gives) is refused
/// rather than left to a later stage to trip over; so is a file with no
/// header row, which would be a table without columns.
fn columns_of(headers: &[String]) -> Result<Vec<Column>, HeaderError> {
    if headers.is_empty() {
        return Err(HeaderError::Empty);
    }
    let mut columns: Vec<Column> = Vec::with_capacity(headers.len());
    for (i, header) in headers.iter().enumerate() {
        let name = header.trim();
        if let Some(first) = columns.iter().position(|c| c.name == name) {
            return Err(HeaderError::Twice {
                name: name.to_string(),
                first: first + 1,
                second: i + 1,
            });
        }
        columns.push(Column {
            name: name.to_string(),
            type_: ColumnType::Text,
            nullable: true,
        });
    }
    Ok(columns)
}

/// A file or CSV error about `endpoint`, its text after `context`.
fn failure<E: std::error::Error + 'static>(
    endpoint: &str,
    context: &str,
    err: E,
) -> ConnectorError {
    ConnectorError::new(endpoint, format!("{context}{err}")).because(&err)
}

/// What to say when the file cannot be read at all.
fn read_failed(endpoint: &str, line: u64, e: &std::io::Error) -> ConnectorError {
    let message = format!("line {line}: {e}; fix the file or remove the bad line, then run again");
    ConnectorError::new(endpoint, message).because(e)
}

fn read_batches(
    mut records: Records<BufReader<File>>,
    null: &str,
    request: &ReadRequest,
    tx: &mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    endpoint: &str,
) {
    let skip = request.after.as_ref().map_or(0, |c| c.rows);
    let limit = request.limit.unwrap_or(u64::MAX);
    let columns = &request.table.columns;
    let mut batches = Batcher::new(request.batch_size, skip + 1);
    let mut seen = 0u64;
    while seen < skip.saturating_add(limit) {
        let record = match records.next_record() {
            Ok(Some(record)) => record,
            Ok(None) => break,
            Err(e) => {
                let _ = tx.blocking_send(Err(read_failed(endpoint, records.line(), &e)));
                return;
            }
        };
        seen += 1;
        if seen <= skip {
            continue;
        }
        let full = match to_row(record, columns, null) {
            (row, None) => batches.push(row),
            (row, Some(fault)) => batches.push_fault(row, fault),
        };
        if let Some(batch) = full
            && tx.blocking_send(Ok(batch)).is_err()
        {
            return;
        }
    }
    if let Some(batch) = batches.finish() {
        let _ = tx.blocking_send(Ok(batch));
    }
}

/// A record as a row of the table, or as a stand-in row (the fields that
/// could be read, NULL elsewhere) and what is wrong with it.
fn to_row(record: Record, columns: &[Column], null: &str) -> (Row, Option<SourceFault>) {
    match record {
        Record::Fields { line, fields } if fields.len() != columns.len() => {
            ragged(line, fields, columns, null)
        }
        Record::Fields { line, fields } => {
            let (row, bad) = values(fields, columns.len(), null);
            let fault = bad.first().map(|(c, raw)| SourceFault {
                index: 0,
                column: Some(*c),
                unread: bad.iter().map(|(c, _)| *c).collect(),
                value: Some(shorten(&String::from_utf8_lossy(raw))),
                message: not_utf8(line, raw),
            });
            (row, fault)
        }
        Record::Broken {
            line,
            fields,
            column,
            message,
        } => {
            let (row, bad) = values(fields, columns.len(), null);
            let mut unread: Vec<usize> = bad.into_iter().map(|(c, _)| c).collect();
            unread.extend(column.min(columns.len())..columns.len());
            let fault = SourceFault {
                index: 0,
                column: (column < columns.len()).then_some(column),
                unread,
                value: None,
                message: format!("line {line}: {message}"),
            };
            (row, Some(fault))
        }
    }
}

/// A line with more or fewer fields than the header. Fields past the
/// header's width have no column; with too many, the last column's own
/// text is uncertain (an unquoted delimiter may have split any field), so
/// it is left out of the kept row as the missing ones are.
fn ragged(
    line: u64,
    fields: Vec<Vec<u8>>,
    columns: &[Column],
    null: &str,
) -> (Row, Option<SourceFault>) {
    let (width, found) = (columns.len(), fields.len());
    let text: Vec<String> = fields
        .iter()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let value = shorten(&text.join(","));
    let (row, bad) = values(fields.into_iter().take(width).collect(), width, null);
    let mut unread: Vec<usize> = bad.into_iter().map(|(c, _)| c).collect();
    unread.extend(found.min(width)..width);
    if found > width {
        unread.push(width - 1);
    }
    let header: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let message = format!(
        "line {line} has {found} field(s) but the header has {width} ({}); fix the line (quote a field that holds the delimiter) or remove it",
        header.join(", ")
    );
    let fault = SourceFault {
        index: 0,
        column: None,
        unread,
        value: Some(value),
        message,
    };
    (row, Some(fault))
}

/// The fields as values, `width` of them (NULL past the fields given),
/// and the fields that are not UTF-8, by column, with their bytes.
fn values(fields: Vec<Vec<u8>>, width: usize, null: &str) -> (Row, Vec<(usize, Vec<u8>)>) {
    let mut row = Vec::with_capacity(width);
    let mut bad = Vec::new();
    for (c, field) in fields.into_iter().enumerate() {
        match String::from_utf8(field) {
            Ok(text) if text == null => row.push(Value::Null),
            Ok(text) => row.push(Value::Text(text)),
            Err(e) => {
                bad.push((c, e.into_bytes()));
                row.push(Value::Null);
            }
        }
    }
    row.resize(width, Value::Null);
    (row, bad)
}

/// Why a field that is not UTF-8 is refused, and what to do.
fn not_utf8(line: u64, raw: &[u8]) -> String {
    let at = std::str::from_utf8(raw)
        .err()
        .map_or(0, |e| e.valid_up_to());
    format!(
        "line {line}: the text is not UTF-8 (byte 0x{:02x} at byte {} of the field); save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`) and run again",
        raw.get(at).copied().unwrap_or(0),
        at + 1
    )
}

/// Text from the file, cut to 200 characters for messages.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(200) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

/// Writes one `.csv` file per table into a folder. A table is written to a
/// `.partial` file and renamed into place when finished, so a reader never
/// sees half a file. After each batch the file's length is recorded with
/// the checkpoint in `.credvault/`, so a resumed run cuts off anything
/// written after the last checkpoint and appends from there.
pub struct CsvSink {
    dir: PathBuf,
    delimiter: u8,
    null: String,
    open: Option<(String, csv::Writer<File>)>,
}

/// The sidecar state of a table being written.
#[derive(Serialize, Deserialize)]
struct Progress {
    bytes: u64,
    checkpoint: Checkpoint,
}

impl CsvSink {
    pub(super) fn new(dir: PathBuf, delimiter: u8, null: String) -> Result<Self, ConnectorError> {
        std::fs::create_dir_all(dir.join(".credvault")).map_err(|e| {
            ConnectorError::new(
                format!("destination csv {}", dir.display()),
                format!("cannot create the folder: {e}"),
            )
        })?;
        Ok(Self {
            dir,
            delimiter,
            null,
            open: None,
        })
    }

    /// A file, CSV or JSON error, its text as the message.
    fn error<E: std::error::Error + 'static>(&self, err: E) -> ConnectorError {
        failure(&self.describe(), "", err)
    }

    /// A file error, its text after `context`.
    fn failed<E: std::error::Error + 'static>(&self, context: &str, err: E) -> ConnectorError {
        failure(&self.describe(), context, err)
    }

    /// A failure no file error caused.
    fn refusal(&self, message: impl Into<String>) -> ConnectorError {
        ConnectorError::new(self.describe(), message)
    }

    fn file(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.csv"))
    }

    fn partial(&self, table: &str) -> PathBuf {
        self.dir.join(format!("{table}.csv.partial"))
    }

    fn sidecar(&self, migration: &str, table: &str) -> PathBuf {
        self.dir
            .join(".credvault")
            .join(format!("{migration}.{table}.json"))
    }

    fn save(
        &self,
        migration: &str,
        table: &str,
        progress: &Progress,
    ) -> Result<(), ConnectorError> {
        let path = self.sidecar(migration, table);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_vec(progress).expect("progress serializes");
        std::fs::write(&tmp, text).map_err(|e| self.error(e))?;
        std::fs::rename(&tmp, &path).map_err(|e| self.error(e))
    }

    fn load(&self, migration: &str, table: &str) -> Result<Option<Progress>, ConnectorError> {
        match std::fs::read(self.sidecar(migration, table)) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| self.error(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Appends rows to the open table and makes them durable; returns the
    /// file's length, where the next batch starts.
    fn append(&mut self, table: &str, rows: &[Row]) -> Result<u64, ConnectorError> {
        let endpoint = self.describe();
        let null = &self.null;
        let Some((_, writer)) = self.open.as_mut().filter(|(t, _)| t == table) else {
            let message = format!("table `{table}` was not prepared");
            return Err(ConnectorError::new(endpoint, message));
        };
        for row in rows {
            let fields = row
                .iter()
                .map(|v| to_text(v).unwrap_or_else(|| null.clone()));
            writer
                .write_record(fields)
                .map_err(|e| failure(&endpoint, "", e))?;
        }
        writer.flush().map_err(|e| failure(&endpoint, "", e))?;
        let file = writer.get_ref();
        file.sync_data().map_err(|e| failure(&endpoint, "", e))?;
        Ok(file
            .metadata()
            .map_err(|e| failure(&endpoint, "", e))?
            .len())
    }

    fn open_partial(
        &mut self,
        table: &str,
        columns: &[Column],
        resume_at: Option<u64>,
    ) -> Result<(), ConnectorError> {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(resume_at.is_none())
            .open(self.partial(table))
            .map_err(|e| self.error(e))?;
        if let Some(bytes) = resume_at {
            file.set_len(bytes).map_err(|e| self.error(e))?;
            file.seek(std::io::SeekFrom::End(0))
                .map_err(|e| self.error(e))?;
        }
        let mut writer = csv::WriterBuilder::new()
            .delimiter(self.delimiter)
            .from_writer(file);
        if resume_at.is_none() {
            writer
                .write_record(columns.iter().map(|c| c.name.as_str()))
                .map_err(|e| self.error(e))?;
        }
        self.open = Some((table.to_string(), writer));
        Ok(())
    }

    /// Opens `table`'s partial file for rows of `columns`: the one left by
    /// an interrupted run, a copy of the finished file to append to, or a
    /// new one.
    fn open_table(
        &mut self,
        migration: &str,
        table: &str,
        columns: &[Column],
        mode: Prepare,
    ) -> Result<(), ConnectorError> {
        match mode {
            Prepare::Resume => {
                let progress = self.load(migration, table)?;
                let Some(progress) = progress.filter(|_| self.partial(table).exists()) else {
                    return Err(self.refusal(format!("cannot resume `{table}`: its partial file is gone; run again with --restart")));
                };
                self.open_partial(table, columns, Some(progress.bytes))
            }
            Prepare::Fresh(if_exists) => {
                let exists = self.file(table).exists();
                if exists && if_exists == IfExists::Fail {
                    return Err(self.refusal(format!(
                        "{} already exists; set if_exists = \"replace\" or \"append\" for this table, or choose another destination",
                        self.file(table).display()
                    )));
                }
                if exists && if_exists == IfExists::Append {
                    std::fs::copy(self.file(table), self.partial(table))
                        .map_err(|e| self.error(e))?;
                    let bytes = std::fs::metadata(self.partial(table))
                        .map_err(|e| self.error(e))?
                        .len();
                    return self.open_partial(table, columns, Some(bytes));
                }
                self.open_partial(table, columns, None)
            }
        }
    }
}

#[async_trait]
impl Sink for CsvSink {
    fn describe(&self) -> String {
        format!("destination csv {}", self.dir.display())
    }

    async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        let file = self.file(table);
        if !file.exists() {
            return Ok(None);
        }
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .from_path(&file)
            .map_err(|e| self.error(e))?;
        Ok(Some(reader.byte_records().count() as u64))
    }

    async fn prepare(
        &mut self,
        migration: &str,
        table: &str,
        shape: Shape<'_>,
        mode: Prepare,
    ) -> Result<Prepared, ConnectorError> {
        self.open_table(migration, table, shape.columns, mode)?;
        Ok(Prepared::new(table))
    }

    async fn write(&mut self, batch: WriteBatch<'_>) -> Result<Vec<Rejected>, ConnectorError> {
        let bytes = self.append(batch.table(), batch.rows)?;
        let progress = Progress {
            bytes,
            checkpoint: batch.checkpoint.clone(),
        };
        self.save(batch.migration, batch.checkpoint_name, &progress)?;
        Ok(Vec::new())
    }

    async fn finish(
        &mut self,
        migration: &str,
        prepared: Prepared,
        checkpoint: &Checkpoint,
    ) -> Result<(), ConnectorError> {
        let table = prepared.table();
        if let Some((_, mut writer)) = self.open.take() {
            writer.flush().map_err(|e| self.error(e))?;
        }
        std::fs::rename(self.partial(table), self.file(table)).map_err(|e| self.error(e))?;
        let progress = Progress {
            bytes: 0,
            checkpoint: Checkpoint {
                done: true,
                ..checkpoint.clone()
            },
        };
        self.save(migration, table, &progress)
    }

    async fn committed(
        &self,
        migration: &str,
        table: &str,
    ) -> Result<Option<Checkpoint>, ConnectorError> {
        Ok(self.load(migration, table)?.map(|p| p.checkpoint))
    }

    async fn drop_table(&mut self, table: &str) -> Result<(), ConnectorError> {
        for file in [self.file(table), self.partial(table)] {
            match std::fs::remove_file(&file) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(self.error(e)),
                _ => {}
            }
        }
        Ok(())
    }

    async fn reset(&mut self, migration: &str) -> Result<(), ConnectorError> {
        let prefix = format!("{migration}.");
        let entries = std::fs::read_dir(self.dir.join(".credvault")).map_err(|e| self.error(e))?;
        for entry in entries.filter_map(Result::ok) {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                std::fs::remove_file(entry.path()).map_err(|e| self.error(e))?;
            }
        }
        Ok(())
    }

    fn healthcheck(&self) -> Option<&dyn Healthcheck> {
        Some(self)
    }
}

#[async_trait]
impl Healthcheck for CsvSink {
    /// Rows are appended by position, so the header must name the columns
    /// in order; every value is text.
    async fn misfits(
        &self,
        table: &str,
        columns: &[Column],
    ) -> Result<Vec<String>, ConnectorError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(self.delimiter)
            .from_path(self.file(table))
            .map_err(|e| self.error(e))?;
        let header: Vec<String> = reader
            .headers()
            .map_err(|e| self.error(e))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        if header == names {
            return Ok(Vec::new());
        }
        Ok(vec![format!(
            "its header is `{}` but the rows have `{}`; rows are appended by position, so rename, skip or reorder columns to match",
            header.join(","),
            names.join(",")
        )])
    }

    async fn probe_create(&self) -> Result<(), ConnectorError> {
        let probe = self
            .dir
            .join(format!(".credvault-probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .map_err(|e| self.failed("cannot create files in the folder: ", e))?;
        std::fs::remove_file(&probe).map_err(|e| self.error(e))
    }

    async fn probe_write(&self, table: &str) -> Result<(), ConnectorError> {
        let file = self.file(table);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&file)
            .map(drop)
            .map_err(|e| self.failed(&format!("cannot write to {}: ", file.display()), e))
    }

    async fn free_space(&self) -> Result<FreeSpace, ConnectorError> {
        Ok(free_space_at(&self.dir))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn discover(content: &[u8]) -> Result<Vec<TableInfo>, ConnectorError> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let file = dir.path().join("t.csv");
        std::fs::write(&file, content).expect("writing the file");
        CsvSource::new(file, b',', String::new())?.discover().await
    }

    /// Found by fuzz/fuzz_targets/csv_reader.rs (`x,x`, and `a,,` with two
    /// empty names): column names must be unique within a schema.
    #[tokio::test]
    async fn a_header_that_repeats_a_name_is_refused() {
        let err = discover(b"x,x\n1,2\n").await.unwrap_err().to_string();
        assert!(
            err.contains(
                "names column \"x\" twice (columns 1 and 2); give every column its own name"
            ),
            "{err}"
        );
        let err = discover(b"id, x ,x\n").await.unwrap_err().to_string();
        assert!(
            err.contains("column \"x\" twice (columns 2 and 3)"),
            "{err}"
        );
        let err = discover(b"id,,\n1,2,3\n").await.unwrap_err().to_string();
        assert!(err.contains("column \"\" twice (columns 2 and 3)"), "{err}");
    }

    /// Found by fuzz/fuzz_targets/csv_reader.rs: an empty file was a table
    /// without columns, which the CSV sink wrote back as one column `""`.
    #[tokio::test]
    async fn a_file_without_a_header_row_is_refused() {
        for content in [&b""[..], b"\n\n"] {
            let err = discover(content).await.unwrap_err().to_string();
            assert!(
                err.contains("the file is empty: a CSV table needs a header row"),
                "{err}"
            );
        }
        let tables = discover(b" id , name \n1,a\n")
            .await
            .expect("a plain header");
        let names: Vec<&str> = tables[0].columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["id", "name"]);
    }
}
