//! A native test harness: run a transform the way the host would, without
//! wasm, so plugins are unit-tested with plain `cargo test`.
//!
//! ```
//! use credvault_sdk::prelude::*;
//! use credvault_sdk::testing::run_transform;
//!
//! #[derive(serde::Deserialize)]
//! struct Config { suffix: String }
//!
//! #[transform]
//! fn add_suffix(row: &mut Row, config: &Config) -> Result<(), RowError> {
//!     let name = row.text("name")?;
//!     row.set("name", format!("{name}{}", config.suffix))?;
//!     Ok(())
//! }
//!
//! let (schema, out) = run_transform::<AddSuffix>(
//!     r#"{"suffix": "!"}"#,
//!     vec![Column::new("name", ColumnType::Text)],
//!     vec![vec!["ada".into()]],
//! )
//! .unwrap();
//! assert_eq!(schema.len(), 1);
//! assert_eq!(out, vec![Outcome::Keep(vec!["ada!".into()])]);
//! ```

use crate::runtime::Slot;
use crate::{Context, Outcome, Schema, Transform, Value};

/// The context the harness passes: migration `"test"`, table `"test"`, run
/// started at 2024-06-15T12:00:00Z.
pub fn context() -> Context {
    Context {
        migration: "test".to_string(),
        table: "test".to_string(),
        run_started_at: 1_718_452_800_000_000,
    }
}

/// Configures `T` with `config_json` and `input`, then transforms `rows` as
/// one batch. Returns the output schema and one outcome per row, or the
/// configuration error the host would report.
pub fn run_transform<T: Transform>(
    config_json: &str,
    input: Schema,
    rows: Vec<Vec<Value>>,
) -> Result<(Schema, Vec<Outcome>), String> {
    run_transform_with::<T>(&context(), config_json, input, rows)
}

/// [`run_transform`] with a context of your own (e.g. another run start).
pub fn run_transform_with<T: Transform>(
    ctx: &Context,
    config_json: &str,
    input: Schema,
    rows: Vec<Vec<Value>>,
) -> Result<(Schema, Vec<Outcome>), String> {
    let slot = Slot::<T>::new();
    let schema = slot.configure(ctx, config_json, input)?;
    Ok((schema, slot.transform_outcomes(rows)))
}

/// Reads `table` from source `S` with `config_json`, after `after` when
/// given, `max_rows` at a time, as the host would: every batch until the
/// end, each checked against the `max_rows` the host asked for.
pub fn read_table<S: crate::source::Source>(
    config_json: &str,
    table: &str,
    after: Option<&str>,
    max_rows: usize,
) -> Result<Vec<crate::source::SourceBatch>, String> {
    use crate::source::Reader;
    let config = crate::runtime::parse_config::<S::Config>(config_json)?;
    let mut reader = S::open(&config, table, after)?;
    let mut batches = Vec::new();
    while let Some(batch) = reader.next(max_rows)? {
        if batch.rows.len() > max_rows {
            return Err(format!(
                "returned {} rows when asked for at most {max_rows}",
                batch.rows.len()
            ));
        }
        batches.push(batch);
    }
    Ok(batches)
}

/// Configures sink `S` with `config_json`, as the host's first call does.
pub fn configure_sink<S: crate::sink::Sink>(config_json: &str) -> Result<S, String> {
    S::configure(crate::runtime::parse_config(config_json)?)
}

/// The answer a fake database gives to a statement and its parameters.
type Answer = dyn Fn(&str, &[Value]) -> Result<crate::db::QueryResult, crate::db::DbError>;

/// A stand-in for a granted database connection in native tests, made by
/// [`fake_db`]. It answers what the test tells it to and records every
/// statement, so a test can also check how often the plugin asked.
#[derive(Clone)]
pub struct FakeDb {
    name: String,
    answer: std::rc::Rc<Answer>,
    calls: std::rc::Rc<std::cell::RefCell<Vec<Call>>>,
}

/// A statement a fake database was asked to run, with its parameters.
type Call = (String, Vec<Value>);

impl FakeDb {
    /// Every statement run on this connection so far, with its parameters.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    pub(crate) fn query(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<crate::db::QueryResult, crate::db::DbError> {
        self.calls
            .borrow_mut()
            .push((sql.to_string(), params.to_vec()));
        (self.answer)(sql, params)
    }
}

std::thread_local! {
    static FAKE_DBS: std::cell::RefCell<Vec<FakeDb>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Makes [`crate::db::Connection::open`]`(name)` succeed on this thread (each
/// `#[test]` runs on its own), answering every `query` with `answer(sql,
/// params)`; `execute` returns the number of rows of that answer. This is a
/// fake: it checks no SQL and grants nothing; inside the host, only the
/// migration file's grants open connections.
///
/// ```
/// use credvault_sdk::Value;
/// use credvault_sdk::db::{Connection, QueryResult};
///
/// let fake = credvault_sdk::testing::fake_db("crm", |_sql, params| {
///     Ok(QueryResult { columns: vec![], rows: vec![params.to_vec()] })
/// });
/// let crm = Connection::open("crm").unwrap();
/// let echo = crm.query("SELECT $1", &[Value::Int(7)]).unwrap();
/// assert_eq!(echo.rows, vec![vec![Value::Int(7)]]);
/// assert_eq!(fake.calls().len(), 1);
/// ```
pub fn fake_db(
    name: &str,
    answer: impl Fn(&str, &[Value]) -> Result<crate::db::QueryResult, crate::db::DbError> + 'static,
) -> FakeDb {
    let fake = FakeDb {
        name: name.to_string(),
        answer: std::rc::Rc::new(answer),
        calls: Default::default(),
    };
    FAKE_DBS.with(|fakes| {
        let mut fakes = fakes.borrow_mut();
        fakes.retain(|f| f.name != name);
        fakes.push(fake.clone());
    });
    fake
}

/// The fake registered for `name` on this thread, if any.
pub(crate) fn find_fake_db(name: &str) -> Option<FakeDb> {
    FAKE_DBS.with(|fakes| fakes.borrow().iter().find(|f| f.name == name).cloned())
}
