//! The batch loop behind [`export_transform!`](crate::export_transform): the
//! state a configured transform keeps between calls. Not part of the API.

use std::cell::RefCell;
use std::rc::Rc;

use crate::bindings::exports::credvault::migrate::transform::RowResult;
use crate::row::Columns;
use crate::{Context, Outcome, Row, RowError, Schema, Transform, Value};

/// A configured transform and the column index its rows share.
struct State<T> {
    transform: T,
    columns: Rc<Columns>,
}

/// Where an instance keeps its transform: empty until `configure` succeeds.
pub struct Slot<T> {
    state: RefCell<Option<State<T>>>,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Slot<T> {
    /// An unconfigured slot.
    pub const fn new() -> Self {
        Slot {
            state: RefCell::new(None),
        }
    }
}

/// Parses the config text; an empty config means `{}`. Errors name the field.
pub fn parse_config<C: serde::de::DeserializeOwned>(config: &str) -> Result<C, String> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            format!("invalid config: not valid JSON: {inner}")
        } else if matches!(path.as_str(), "" | "." | "?") {
            format!("invalid config: {inner}")
        } else {
            format!("invalid config at `{path}`: {inner}")
        }
    })
}

impl<T: Transform> Slot<T> {
    /// Implements the `configure` export: parses the config, configures the
    /// transform and keeps it. A failed configure leaves the slot empty.
    pub fn configure(&self, ctx: &Context, config: &str, input: Schema) -> Result<Schema, String> {
        *self.state.borrow_mut() = None;
        let config: T::Config = parse_config(config)?;
        let (transform, output) = T::configure(ctx, config, &input)?;
        *self.state.borrow_mut() = Some(State {
            transform,
            columns: Rc::new(Columns::new(input)),
        });
        Ok(output)
    }

    /// Runs the transform over a batch, one outcome per row.
    pub fn transform_outcomes(&self, rows: Vec<Vec<Value>>) -> Vec<Outcome> {
        let mut guard = self.state.borrow_mut();
        let Some(state) = guard.as_mut() else {
            return rows
                .iter()
                .map(|_| {
                    Outcome::Error(RowError::new(
                        "the transform is not configured: the host must call configure first",
                    ))
                })
                .collect();
        };
        let width = state.columns.len();
        if let Err(message) = state.transform.begin_batch(&rows) {
            return rows
                .iter()
                .map(|_| Outcome::Error(RowError::new(message.clone())))
                .collect();
        }
        rows.into_iter()
            .map(|values| {
                if values.len() != width {
                    return Outcome::Error(RowError::new(format!(
                        "the row has {} values but the input schema has {width} columns",
                        values.len()
                    )));
                }
                let row = Row::from_parts(Rc::clone(&state.columns), values);
                state.transform.transform_row(row)
            })
            .collect()
    }

    /// Implements the `transform` export.
    pub fn transform(&self, rows: Vec<Vec<Value>>) -> Vec<RowResult> {
        self.transform_outcomes(rows)
            .into_iter()
            .map(|o| match o {
                Outcome::Keep(values) => RowResult::Ok(values),
                Outcome::Drop => RowResult::Drop,
                Outcome::Error(e) => RowResult::Error(e),
            })
            .collect()
    }
}

/// An open source read, as the `reader` resource.
pub struct ReaderHandle<R>(RefCell<R>);

impl<R: crate::source::Reader>
    crate::source_bindings::exports::credvault::migrate::source::GuestReader for ReaderHandle<R>
{
    fn next(
        &self,
        max_rows: u32,
    ) -> Result<
        Option<crate::source_bindings::exports::credvault::migrate::source::SourceBatch>,
        String,
    > {
        let batch = self.0.borrow_mut().next(max_rows as usize)?;
        Ok(batch.map(|b| {
            crate::source_bindings::exports::credvault::migrate::source::SourceBatch {
                rows: b.rows,
                position: b.position,
            }
        }))
    }
}

/// Implements the source `check` export.
pub fn source_check<S: crate::source::Source>(config: &str) -> Result<(), String> {
    S::check(&parse_config(config)?)
}

/// Implements the source `discover` export.
pub fn source_discover<S: crate::source::Source>(
    config: &str,
) -> Result<Vec<crate::TableInfo>, String> {
    S::discover(&parse_config(config)?)
}

/// Implements the source `open` export.
pub fn source_open<S: crate::source::Source>(
    config: &str,
    table: &str,
    after: Option<&str>,
) -> Result<crate::source_bindings::exports::credvault::migrate::source::Reader, String>
where
    ReaderHandle<S::Reader>:
        crate::source_bindings::exports::credvault::migrate::source::GuestReader,
{
    let reader = S::open(&parse_config(config)?, table, after)?;
    Ok(
        crate::source_bindings::exports::credvault::migrate::source::Reader::new(ReaderHandle(
            RefCell::new(reader),
        )),
    )
}

/// Where a sink instance keeps its configured sink.
pub struct SinkSlot<T> {
    sink: RefCell<Option<T>>,
}

impl<T: crate::sink::Sink> Default for SinkSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: crate::sink::Sink> SinkSlot<T> {
    /// An unconfigured slot.
    pub const fn new() -> Self {
        Self {
            sink: RefCell::new(None),
        }
    }

    /// Implements `configure`.
    pub fn configure(&self, config: &str) -> Result<(), String> {
        let sink = T::configure(parse_config(config)?)?;
        *self.sink.borrow_mut() = Some(sink);
        Ok(())
    }

    /// Runs `call` on the configured sink.
    pub fn with<R>(&self, call: impl FnOnce(&mut T) -> Result<R, String>) -> Result<R, String> {
        match self.sink.borrow_mut().as_mut() {
            Some(sink) => call(sink),
            None => Err("the sink is not configured: the host must call configure first".into()),
        }
    }
}
