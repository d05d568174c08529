//! Native connectors: sources and sinks the host drives directly (CSV files
//! and SQLite through sqlx). They speak the same row model as wasm plugins.

mod csv;
mod sqlite;

use tokio::sync::mpsc;

use crate::config::{Endpoint, IfExists, Migration};
use crate::value::{Column, Row, TableInfo};

/// A connector failure, with the endpoint it concerns and what to do.
#[derive(Debug, thiserror::Error)]
#[error("{endpoint}: {message}")]
pub struct ConnectorError {
    /// Which source or destination, e.g. `source csv data/`.
    pub endpoint: String,
    /// What went wrong and, where known, what to do about it.
    pub message: String,
}

/// A batch read from a source table.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows, in source order.
    pub rows: Vec<Row>,
    /// The 1-based position of the first row in its table.
    pub first: u64,
}

/// Where rows come from.
pub enum Source {
    /// CSV files.
    Csv(csv::CsvSource),
    /// An SQLite database.
    Sqlite(sqlite::SqliteSource),
}

/// Where rows go.
pub enum Sink {
    /// CSV files in a folder.
    Csv(Box<csv::CsvSink>),
    /// An SQLite database.
    Sqlite(sqlite::SqliteSink),
}

/// A row a destination refused (a constraint, say): its index in the batch
/// and the destination's message.
pub type Rejected = (usize, String);

impl Source {
    /// Opens the migration's source.
    pub async fn open(m: &Migration) -> Result<Self, ConnectorError> {
        Ok(match &m.source {
            Endpoint::Csv {
                path,
                delimiter,
                null,
            } => Source::Csv(csv::CsvSource::new(
                m.resolve(path),
                *delimiter as u8,
                null.clone(),
            )?),
            Endpoint::Sqlite { path } => {
                Source::Sqlite(sqlite::SqliteSource::open(&m.resolve(path)).await?)
            }
        })
    }

    /// Lists the tables with their columns, keys and approximate row counts.
    pub async fn discover(&self) -> Result<Vec<TableInfo>, ConnectorError> {
        match self {
            Source::Csv(s) => s.discover(),
            Source::Sqlite(s) => s.discover().await,
        }
    }

    /// Finds one table, or says which tables exist.
    pub async fn table(&self, name: &str) -> Result<TableInfo, ConnectorError> {
        let tables = self.discover().await?;
        let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
        let message = format!(
            "table `{name}` not found; the source has: {}",
            names.join(", ")
        );
        tables
            .iter()
            .find(|t| t.name == name)
            .cloned()
            .ok_or_else(|| ConnectorError {
                endpoint: self.describe(),
                message,
            })
    }

    /// The exact number of rows in a table.
    pub async fn count(&self, table: &str) -> Result<u64, ConnectorError> {
        match self {
            Source::Csv(s) => s.count(table).await,
            Source::Sqlite(s) => s.count(table).await,
        }
    }

    /// Streams a table in batches into `tx`, stopping after `limit` rows.
    /// Memory stays bounded by the channel's capacity.
    pub async fn read(
        &self,
        table: &TableInfo,
        batch_size: usize,
        limit: Option<u64>,
        tx: mpsc::Sender<Result<SourceBatch, ConnectorError>>,
    ) {
        match self {
            Source::Csv(s) => s.read(table, batch_size, limit, tx).await,
            Source::Sqlite(s) => s.read(table, batch_size, limit, tx).await,
        }
    }

    /// A short name for messages: `source csv data/`.
    pub fn describe(&self) -> String {
        match self {
            Source::Csv(s) => format!("source csv {}", s.path().display()),
            Source::Sqlite(s) => format!("source sqlite {}", s.path().display()),
        }
    }
}

impl Sink {
    /// Opens the migration's destination (creating an SQLite file or a CSV
    /// folder if needed).
    pub async fn open(m: &Migration) -> Result<Self, ConnectorError> {
        Ok(match &m.destination {
            Endpoint::Csv {
                path,
                delimiter,
                null,
            } => {
                let sink = csv::CsvSink::new(m.resolve(path), *delimiter as u8, null.clone())?;
                Sink::Csv(Box::new(sink))
            }
            Endpoint::Sqlite { path } => {
                Sink::Sqlite(sqlite::SqliteSink::open(&m.resolve(path)).await?)
            }
        })
    }

    /// The number of rows in `table` if it exists.
    pub async fn existing_rows(&self, table: &str) -> Result<Option<u64>, ConnectorError> {
        match self {
            Sink::Csv(s) => s.existing_rows(table),
            Sink::Sqlite(s) => s.existing_rows(table).await,
        }
    }

    /// Makes `table` ready for rows of `columns`.
    pub async fn prepare(
        &mut self,
        table: &str,
        columns: &[Column],
        if_exists: IfExists,
    ) -> Result<(), ConnectorError> {
        match self {
            Sink::Csv(s) => s.prepare(table, columns, if_exists),
            Sink::Sqlite(s) => s.prepare(table, columns, if_exists).await,
        }
    }

    /// Writes and commits a batch. With `all_or_nothing`, a refused row
    /// rolls the whole batch back and is returned alone; otherwise the good
    /// rows are committed and the refused ones returned.
    pub async fn write(
        &mut self,
        table: &str,
        columns: &[Column],
        rows: &[Row],
        all_or_nothing: bool,
    ) -> Result<Vec<Rejected>, ConnectorError> {
        match self {
            Sink::Csv(s) => s.write(table, rows).map(|()| Vec::new()),
            Sink::Sqlite(s) => s.write(table, columns, rows, all_or_nothing).await,
        }
    }

    /// Makes a finished table visible (CSV files are renamed into place).
    pub async fn finish(&mut self, table: &str) -> Result<(), ConnectorError> {
        match self {
            Sink::Csv(s) => s.finish(table),
            Sink::Sqlite(_) => Ok(()),
        }
    }

    /// Reads back up to `limit` rows of a destination table (for tests,
    /// previews of the result and validation).
    pub async fn read_back(&self, table: &str, limit: u64) -> Result<Vec<Row>, ConnectorError> {
        match self {
            Sink::Csv(s) => s.read_back(table, limit),
            Sink::Sqlite(s) => s.read_back(table, limit).await,
        }
    }

    /// A short name for messages: `destination sqlite vault.db`.
    pub fn describe(&self) -> String {
        match self {
            Sink::Csv(s) => format!("destination csv {}", s.path().display()),
            Sink::Sqlite(s) => format!("destination sqlite {}", s.path().display()),
        }
    }
}
