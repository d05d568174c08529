//! The built-in expression transform: assignments such as
//! `email = lower(strip(email))`, parsed and type-checked once at configure
//! time, then evaluated per row. Written with `credvault-sdk` like any
//! third-party plugin.
//!
//! # Config
//!
//! ```json
//! {"expressions": [
//!   "email = lower(strip(email))",
//!   "created_at = parse_date(created_at, 'MM/DD/YYYY')",
//!   "age = current_year() - birth_year",
//!   "tier = if total >= 1000 then 'gold' else 'basic'"
//! ]}
//! ```
//!
//! Each assignment replaces an existing column (keeping its position) or
//! appends a new one; assignments run in order and later ones see the
//! results of earlier ones.
//!
//! # Language
//!
//! - Literals: `42`, `4.2`, `'text'` (`''` for a quote), `true`, `false`,
//!   `null`. Columns: `name`, or `"odd name"` in double quotes.
//! - Operators, loosest first: `or`; `and`; `not`; `== != < <= > >=` (also
//!   `<>`); `+ -`; `* / %`; unary `-`. `/` always gives a float; an int
//!   mixed with a float or decimal gives a float. `date ± int` adds days and
//!   `date - date` counts days.
//! - `if cond then a else b` (nestable; a null condition takes `else`).
//! - Functions: upper, lower, strip (trim), concat(…), coalesce(…), length,
//!   substr(text, start[, len]) (1-based), replace(text, from, to),
//!   round(x[, digits]), abs, to_text, to_int, to_float,
//!   parse_date(text, 'fmt'), parse_timestamp(text, 'fmt'),
//!   format_date(date_or_ts, 'fmt'), year, month, day, current_year(),
//!   current_date(). Format tokens: YYYY YY MM DD HH mm ss; anything else
//!   (and the letters T, Z) is a literal separator.
//! - Nulls: null in gives null out, except concat (skips nulls) and
//!   coalesce; comparisons with null are null; `and`/`or` are three-valued.
//! - `current_year()` and `current_date()` are those of the run's start
//!   (UTC): plugins have no clock, so a re-run gives the same values.

use std::collections::HashMap;

use credvault_sdk::prelude::*;
use serde::Deserialize;

mod compile;
mod datefmt;
mod eval;
mod parser;
#[cfg(test)]
mod tests;

use compile::{Env, Node};

/// The transform's settings.
///
/// ```json
/// {"expressions": ["email = lower(email)", "full_name = concat(first, ' ', last)"]}
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Assignments `column = expression`, run in order.
    pub expressions: Vec<String>,
}

/// One compiled assignment.
#[derive(Debug)]
struct Step {
    /// Index of the column written in the working (output) row.
    target: usize,
    /// The column's name, for row errors.
    name: String,
    node: Node,
}

/// The expression transform, configured.
#[derive(Debug)]
pub struct Expr {
    steps: Vec<Step>,
    width: usize,
}

/// Formats a configure error: index, text, message and a caret.
fn configure_error(index: usize, text: &str, e: &parser::ExprError) -> String {
    let caret_at = text[..e.pos.min(text.len())].chars().count();
    format!(
        "expression {index} {text:?}: {}\n    {text}\n    {}^",
        e.message,
        " ".repeat(caret_at)
    )
}

impl Transform for Expr {
    type Config = Config;

    fn configure(ctx: &Context, config: Config, input: &Schema) -> Result<(Self, Schema), String> {
        let mut columns = input.clone();
        let mut from_input = vec![true; columns.len()];
        let mut by_name: HashMap<String, usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        let mut steps = Vec::with_capacity(config.expressions.len());
        for (i, text) in config.expressions.iter().enumerate() {
            let err = |e: parser::ExprError| configure_error(i + 1, text, &e);
            let assignment = parser::parse_assignment(text).map_err(err)?;
            let env = Env {
                columns: &columns,
                from_input: &from_input,
                src: text,
                now_micros: ctx.run_started_at,
            };
            let typed = env.compile(&assignment.expr).map_err(err)?;
            let target = match by_name.get(&assignment.target) {
                Some(&t) => {
                    let col = &mut columns[t];
                    // A bare null keeps the column's type.
                    col.type_ = typed.ty.unwrap_or(col.type_);
                    col.nullable = typed.nullable;
                    from_input[t] = false;
                    t
                }
                None => {
                    columns.push(Column {
                        name: assignment.target.clone(),
                        type_: typed.ty.unwrap_or(ColumnType::Text),
                        nullable: typed.nullable,
                    });
                    from_input.push(false);
                    by_name.insert(assignment.target.clone(), columns.len() - 1);
                    columns.len() - 1
                }
            };
            steps.push(Step {
                target,
                name: assignment.target,
                node: typed.node,
            });
        }
        let width = columns.len();
        Ok((Expr { steps, width }, columns))
    }

    fn transform_row(&mut self, row: Row) -> Outcome {
        let mut values = row.into_values();
        values.resize(self.width, Value::Null);
        for step in &self.steps {
            match eval::eval(&step.node, &values) {
                Ok(v) => {
                    let v = v.into_value();
                    values[step.target] = v;
                }
                Err(e) => return Outcome::Error(RowError::new(e.0).column(step.name.as_str())),
            }
        }
        Outcome::Keep(values)
    }
}

export_transform!(Expr);
