//! Writes each table to `NAME.csv` in a directory the migration file grants
//! with `write = true`. Each batch is appended and flushed, then the host's
//! checkpoint is saved with the file's length (in `.credvault/` in the same
//! directory), so a resumed run cuts the file back to the last checkpoint.
//!
//! ```toml
//! [destination]
//! type = "plugin"
//! plugin = "credvault_csv_sink.wasm"
//! config = { dir = "out" }
//! grants = { dirs = [{ path = "out", write = true }] }
//! ```

mod text;

use std::fs::{File, OpenOptions};
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

struct CsvSink {
    config: Config,
}

/// What a checkpoint file holds: the table file's length when the
/// checkpoint was saved, and the host's checkpoint.
#[derive(serde::Serialize, serde::Deserialize)]
struct Saved {
    bytes: u64,
    checkpoint: String,
}

impl CsvSink {
    fn file(&self, table: &str) -> PathBuf {
        PathBuf::from(&self.config.dir).join(format!("{table}.csv"))
    }

    fn checkpoints(&self, migration: &str) -> PathBuf {
        PathBuf::from(&self.config.dir)
            .join(".credvault")
            .join(migration.replace(['/', '\\'], "_"))
    }

    fn saved_path(&self, migration: &str, name: &str) -> PathBuf {
        self.checkpoints(migration)
            .join(format!("{}.json", name.replace(['/', '\\'], "_")))
    }

    fn load(&self, migration: &str, name: &str) -> Result<Option<Saved>, String> {
        let path = self.saved_path(migration, name);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Saves atomically: a new file renamed over the old one.
    fn save(&self, migration: &str, name: &str, saved: &Saved) -> Result<(), String> {
        let dir = self.checkpoints(migration);
        std::fs::create_dir_all(&dir).map_err(|e| self.denied(&dir, e))?;
        let path = self.saved_path(migration, name);
        let partial = path.with_extension("partial");
        let text = serde_json::to_string(saved).expect("checkpoints serialize");
        std::fs::write(&partial, text).map_err(|e| self.denied(&partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| self.denied(&path, e))
    }

    fn denied(&self, path: &std::path::Path, e: std::io::Error) -> String {
        format!(
            "cannot write {}: {e}; grant the directory with grants.dirs = [{{ path = \"{}\", write = true }}]",
            path.display(),
            self.config.dir
        )
    }

    fn create(&self, table: &str, columns: &Schema) -> Result<(), String> {
        let path = self.file(table);
        let file = File::create(&path).map_err(|e| self.denied(&path, e))?;
        let mut writer = self.writer(file);
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        writer.write_record(&names).map_err(|e| e.to_string())?;
        writer.flush().map_err(|e| self.denied(&path, e))
    }

    fn writer(&self, file: File) -> csv::Writer<File> {
        csv::WriterBuilder::new()
            .delimiter(self.config.delimiter as u8)
            .from_writer(file)
    }

    fn resume(&self, migration: &str, table: &str) -> Result<(), String> {
        let Some(saved) = self.load(migration, table)? else {
            return Ok(());
        };
        let path = self.file(table);
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| self.denied(&path, e))?;
        file.set_len(saved.bytes).map_err(|e| self.denied(&path, e))
    }
}

impl Sink for CsvSink {
    type Config = Config;

    fn configure(config: Config) -> Result<Self, String> {
        std::fs::read_dir(&config.dir).map_err(|e| {
            format!(
                "cannot open {}: {e}; grant it with grants.dirs = [{{ path = \"{}\", write = true }}]",
                config.dir, config.dir
            )
        })?;
        Ok(CsvSink { config })
    }

    fn table_rows(&mut self, table: &str) -> Result<Option<u64>, String> {
        let path = self.file(table);
        if !path.exists() {
            return Ok(None);
        }
        let reader = csv::ReaderBuilder::new()
            .delimiter(self.config.delimiter as u8)
            .from_path(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Some(reader.into_records().count() as u64))
    }

    fn prepare(
        &mut self,
        migration: &str,
        table: &str,
        columns: &Schema,
        mode: PrepareMode,
    ) -> Result<(), String> {
        let existing = self.table_rows(table)?;
        match (mode, existing) {
            (PrepareMode::Resume, _) => self.resume(migration, table),
            (PrepareMode::Fresh(IfExists::Fail), Some(rows)) => Err(format!(
                "{} already exists with {rows} rows; set if_exists = \"append\" or \"replace\" for it",
                self.file(table).display()
            )),
            (PrepareMode::Fresh(IfExists::Append), Some(_)) => Ok(()),
            _ => self.create(table, columns),
        }
    }

    fn write(&mut self, batch: WriteBatch) -> Result<Vec<Rejected>, String> {
        let path = self.file(&batch.table);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| self.denied(&path, e))?;
        let mut writer = self.writer(file);
        for row in &batch.rows {
            let fields: Vec<String> = row.iter().map(text::field).collect();
            writer.write_record(&fields).map_err(|e| e.to_string())?;
        }
        writer.flush().map_err(|e| self.denied(&path, e))?;
        let file = writer.into_inner().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| self.denied(&path, e))?;
        let bytes = file.metadata().map_err(|e| e.to_string())?.len();
        let saved = Saved {
            bytes,
            checkpoint: batch.checkpoint,
        };
        self.save(&batch.migration, &batch.checkpoint_name, &saved)?;
        Ok(Vec::new())
    }

    fn finish(&mut self, migration: &str, table: &str, checkpoint: &str) -> Result<(), String> {
        let bytes = std::fs::metadata(self.file(table)).map_or(0, |m| m.len());
        let saved = Saved {
            bytes,
            checkpoint: checkpoint.to_string(),
        };
        self.save(migration, table, &saved)
    }

    fn committed(&mut self, migration: &str, name: &str) -> Result<Option<String>, String> {
        Ok(self.load(migration, name)?.map(|s| s.checkpoint))
    }

    fn reset(&mut self, migration: &str) -> Result<(), String> {
        match std::fs::remove_dir_all(self.checkpoints(migration)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        }
    }

    fn drop_table(&mut self, table: &str) -> Result<(), String> {
        match std::fs::remove_file(self.file(table)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        }
    }
}

export_sink!(CsvSink);
