//! The CSV source as a run uses it: a file on disk opened through
//! `credvault::drivers::open_reader` (the `[source] type = "csv"` path),
//! then `discover`, `count` and `read` in batches, resumed from a checkpoint
//! and with a row limit, and what it read written back through the CSV sink
//! and read again.
//!
//! The input is text: its first byte is the delimiter (any ASCII character
//! but a quote or a line break, as the migration file allows; otherwise `,`), the second the batch size
//! (1 + its value mod 8), the rest of the first line the NULL text, and
//! everything after the first newline the file (quotes, bad UTF-8 and all).
//!
//! Checked besides not panicking:
//! - a table has columns, with unique names (the WIT `column` record says
//!   so), and every row has one value per column; a file without a header
//!   row or with a repeated name is refused with a message;
//! - `count` agrees with the rows `read` delivers; batches are numbered from
//!   1 without gaps and hold at most the batch size;
//! - a field is NULL exactly when its text is the NULL text, else text;
//! - for files without quotes or carriage returns, the rows are exactly the
//!   lines split at the delimiter (a plain reference reader), and a line
//!   with another number of fields than the header is a fault of its row
//!   (a row error), never an error for the table;
//! - resuming after k rows gives the rows from k + 1 on, numbered so; a limit
//!   gives the first rows;
//! - an error says where (a line) and what to do;
//! - rows written by the CSV sink with the same delimiter and NULL text read
//!   back unchanged, header included.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use credvault::config::{Endpoint, IfExists};
use credvault::drivers::{
    Checkpoint, ConnectorError, Prepare, ReadRequest, Shape, Source, SourceBatch, WriteBatch,
    open_reader, open_writer,
};
use credvault::model::value::{Column, Row, TableInfo, Value};
use libfuzzer_sys::fuzz_target;
use tokio::sync::mpsc;

struct Case {
    delimiter: u8,
    batch_size: usize,
    null: String,
    content: Vec<u8>,
}

impl Case {
    fn parse(data: &[u8]) -> Option<Case> {
        let (&first, rest) = data.split_first()?;
        let (&size, rest) = rest.split_first()?;
        let newline = rest.iter().position(|b| *b == b'\n')?;
        Some(Case {
            // What the migration file accepts (config/validate.rs).
            delimiter: match first {
                b'"' | b'\n' | b'\r' => b',',
                d if d.is_ascii() => d,
                _ => b',',
            },
            batch_size: 1 + usize::from(size % 8),
            null: String::from_utf8_lossy(&rest[..newline]).into_owned(),
            content: rest[newline + 1..].to_vec(),
        })
    }

    fn endpoint(&self, path: PathBuf) -> Endpoint {
        Endpoint::Csv {
            path,
            delimiter: char::from(self.delimiter),
            null: self.null.clone(),
        }
    }
}

/// A folder of this process's own (fuzzing jobs run side by side).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("credvault-fuzz-csv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creating the scratch folder");
        dir
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a tokio runtime")
    })
}

/// Every batch `read` sends, or its first error.
async fn read_all(
    source: &dyn Source,
    table: &TableInfo,
    batch_size: usize,
    after: Option<u64>,
    limit: Option<u64>,
) -> Result<Vec<SourceBatch>, ConnectorError> {
    let request = ReadRequest {
        table: table.clone(),
        batch_size,
        limit,
        after: after.map(|rows| Checkpoint {
            rows,
            key: None,
            done: false,
            cursor: None,
            position: None,
        }),
        range: None,
        any_order: false,
        since: None,
    };
    let (tx, mut rx) = mpsc::channel(2);
    let collect = async {
        let mut batches = Vec::new();
        while let Some(batch) = rx.recv().await {
            batches.push(batch);
        }
        batches.into_iter().collect::<Result<Vec<_>, _>>()
    };
    let ((), batches) = tokio::join!(source.read(request, tx), collect);
    batches
}

/// Batches numbered from `first` without gaps, none over the batch size.
fn rows_of(batches: Vec<SourceBatch>, first: u64, batch_size: usize) -> Vec<Row> {
    let mut next = first;
    let mut rows = Vec::new();
    for batch in batches {
        assert_eq!(batch.first, next, "batch numbering has a gap");
        assert!(!batch.rows.is_empty() && batch.rows.len() <= batch_size);
        next += batch.rows.len() as u64;
        rows.extend(batch.rows);
    }
    rows
}

/// The positions of the rows the source could not read.
fn faults_of(batches: &[SourceBatch]) -> std::collections::HashSet<u64> {
    batches
        .iter()
        .flat_map(|b| b.faults.iter().map(move |f| b.first + f.index as u64))
        .collect()
}

fn check_error(err: &ConnectorError) {
    let text = err.to_string();
    assert!(
        text.contains("source csv"),
        "the error does not name the source: {text}"
    );
    assert!(
        text.contains("line") && text.contains("fix the file"),
        "the error does not say where or what to do: {text}"
    );
}

/// The rows a plain reader sees in a file without quotes or carriage
/// returns: non-empty lines split at the delimiter, `None` for a line whose
/// number of fields differs from the header's. `None` when it does not
/// apply.
fn reference(case: &Case) -> Option<Result<(Vec<String>, Vec<Option<Row>>), ()>> {
    let text = std::str::from_utf8(&case.content).ok()?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let special = [b'"', b'\r', b'\n'];
    if text.contains(['"', '\r']) || special.contains(&case.delimiter) {
        return None;
    }
    let delimiter = char::from(case.delimiter);
    let mut lines = text.split('\n').filter(|l| !l.is_empty());
    let Some(header) = lines.next() else {
        return Some(Ok((Vec::new(), Vec::new())));
    };
    let header: Vec<String> = header
        .split(delimiter)
        .map(|h| h.trim().to_string())
        .collect();
    let mut rows = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(delimiter).collect();
        if fields.len() != header.len() {
            rows.push(None);
            continue;
        }
        rows.push(Some(
            fields.into_iter().map(|f| field(f, &case.null)).collect(),
        ));
    }
    Some(Ok((header, rows)))
}

fn field(text: &str, null: &str) -> Value {
    if text == null {
        Value::Null
    } else {
        Value::Text(text.to_string())
    }
}

/// Writes `rows` through the CSV sink and reads them back.
async fn through_sink(case: &Case, columns: &[Column], rows: &[Row]) -> (Vec<String>, Vec<Row>) {
    let out = scratch().join("out");
    let mut sink = open_writer(&case.endpoint(out.clone()), scratch())
        .await
        .expect("open the sink");
    let prepared = sink
        .prepare(
            "fuzz",
            "t",
            Shape::plain(columns),
            Prepare::Fresh(IfExists::Replace),
        )
        .await
        .expect("prepare the sink");
    let checkpoint = Checkpoint {
        rows: rows.len() as u64,
        key: None,
        done: false,
        cursor: None,
        position: None,
    };
    let batch = WriteBatch {
        migration: "fuzz",
        prepared: &prepared,
        checkpoint_name: "t",
        columns,
        rows,
        all_or_nothing: true,
        checkpoint: &checkpoint,
    };
    let rejected = sink.write(batch).await.expect("write to the sink");
    assert!(rejected.is_empty());
    sink.finish("fuzz", prepared, &checkpoint)
        .await
        .expect("finish the sink");
    let source = open_reader(&case.endpoint(out.join("t.csv")), scratch())
        .await
        .expect("open the written file");
    let table = source
        .discover()
        .await
        .expect("discover the written file")
        .remove(0);
    let names = table.columns.iter().map(|c| c.name.clone()).collect();
    let batches = read_all(&*source, &table, 64, None, None)
        .await
        .unwrap_or_else(|e| panic!("the sink wrote a file its source cannot read: {e}"));
    (names, rows_of(batches, 1, 64))
}

async fn check(case: Case) {
    let file = scratch().join("t.csv");
    std::fs::write(&file, &case.content).expect("writing the input file");
    let source = open_reader(&case.endpoint(file), scratch())
        .await
        .expect("the file exists");
    let expected = reference(&case);
    let table = match source.discover().await {
        Ok(mut tables) => {
            assert_eq!(tables.len(), 1);
            tables.remove(0)
        }
        Err(err) => {
            let text = err.to_string();
            assert!(text.contains("header row"), "{text}");
            if let Some(Ok((header, _))) = &expected {
                let unique: std::collections::HashSet<&String> = header.iter().collect();
                let refusable = header.is_empty() || unique.len() < header.len();
                assert!(refusable, "a plain file's header was refused: {text}");
            }
            return;
        }
    };
    assert_eq!(table.name, "t");
    let names: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
    let unique: std::collections::HashSet<&String> = names.iter().collect();
    assert_eq!(unique.len(), names.len(), "column names repeat: {names:?}");
    assert!(!names.is_empty(), "a table without columns");
    let count = source.count(&table).await;
    let faulted;
    let batches = read_all(&*source, &table, case.batch_size, None, None).await;
    let rows = match batches {
        Ok(batches) => {
            faulted = faults_of(&batches);
            rows_of(batches, 1, case.batch_size)
        }
        Err(err) => {
            check_error(&err);
            assert!(
                !matches!(expected, Some(Ok(_))),
                "a plain file was refused: {err}"
            );
            return;
        }
    };
    if let Some(expected) = expected {
        let (header, expected_rows) = expected.expect("the reference reads every plain file");
        assert_eq!(names, header);
        assert_eq!(rows.len(), expected_rows.len());
        for (i, (row, expected)) in rows.iter().zip(&expected_rows).enumerate() {
            let position = i as u64 + 1;
            match expected {
                Some(expected) => {
                    assert_eq!(row, expected);
                    assert!(!faulted.contains(&position), "a plain row was refused");
                }
                None => assert!(faulted.contains(&position), "a ragged line was not refused"),
            }
        }
    }
    let count = count.expect("counted the rows it read");
    assert_eq!(count, rows.len() as u64, "count disagrees with read");
    for row in &rows {
        assert_eq!(row.len(), names.len(), "a row does not fit the header");
        for value in row {
            match value {
                Value::Null => {}
                Value::Text(t) => assert_ne!(t, &case.null, "the NULL text was read as text"),
                other => panic!("a CSV field became {other:?}"),
            }
        }
    }
    for k in [1, rows.len() / 2, rows.len()] {
        if k > rows.len() || k == 0 {
            continue;
        }
        let resumed = read_all(&*source, &table, case.batch_size, Some(k as u64), None)
            .await
            .expect("resuming a readable file");
        assert_eq!(rows_of(resumed, k as u64 + 1, case.batch_size), rows[k..]);
        let limited = read_all(&*source, &table, case.batch_size, None, Some(k as u64))
            .await
            .expect("reading the first rows of a readable file");
        assert_eq!(rows_of(limited, 1, case.batch_size), rows[..k]);
    }
    let (written_names, written_rows) = through_sink(&case, &table.columns, &rows).await;
    assert_eq!(written_names, names, "the header changed through the sink");
    assert_eq!(written_rows, rows, "rows changed through the sink");
}

fuzz_target!(|data: &[u8]| {
    if let Some(case) = Case::parse(data) {
        runtime().block_on(check(case));
    }
});
