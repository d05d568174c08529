//! Evaluation of a compiled [`Node`] tree against one working row. Values
//! borrow from the row and the program where they can (column references,
//! literals, `strip`, `substr`), so most expressions allocate only their
//! output.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt::Write;

use credvault_sdk::Value;

use crate::compile::{Arith, DateArith, Func, Node};
use crate::datefmt;
use crate::parser::BinOp;

/// A per-row failure: what was expected and what was found.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalError(pub String);

type Result<T> = std::result::Result<T, EvalError>;

/// A value during evaluation; text and unusual values may be borrowed.
#[derive(Debug, Clone, PartialEq)]
pub enum V<'a> {
    /// SQL null.
    Null,
    /// A boolean.
    Bool(bool),
    /// An int.
    Int(i64),
    /// A float.
    Float(f64),
    /// Text.
    Text(Cow<'a, str>),
    /// Days since the epoch.
    Date(i32),
    /// µs since the epoch, no zone.
    Ts(i64),
    /// µs since the epoch, UTC.
    Tstz(i64),
    /// Any other value (decimal, bytes, time, uuid, json), untouched.
    Other(Cow<'a, Value>),
}

impl<'a> V<'a> {
    fn of(v: &'a Value) -> Self {
        match v {
            Value::Null => V::Null,
            Value::Boolean(b) => V::Bool(*b),
            Value::Int(i) => V::Int(*i),
            Value::Float(f) => V::Float(*f),
            Value::Text(s) => V::Text(Cow::Borrowed(s)),
            Value::Date(d) => V::Date(*d),
            Value::Timestamp(t) => V::Ts(*t),
            Value::Timestamptz(t) => V::Tstz(*t),
            other => V::Other(Cow::Borrowed(other)),
        }
    }

    /// The owned value, for the output row.
    pub fn into_value(self) -> Value {
        match self {
            V::Null => Value::Null,
            V::Bool(b) => Value::Boolean(b),
            V::Int(i) => Value::Int(i),
            V::Float(f) => Value::Float(f),
            V::Text(s) => Value::Text(s.into_owned()),
            V::Date(d) => Value::Date(d),
            V::Ts(t) => Value::Timestamp(t),
            V::Tstz(t) => Value::Timestamptz(t),
            V::Other(v) => v.into_owned(),
        }
    }

    fn describe(&self) -> String {
        match self {
            V::Text(s) => format!("{:?}", truncate(s)),
            V::Null => "null".into(),
            other => {
                let mut s = String::new();
                write_text(other, &mut s);
                s
            }
        }
    }
}

fn truncate(s: &str) -> Cow<'_, str> {
    const MAX: usize = 60;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => Cow::Owned(format!("{}…", &s[..i])),
        None => Cow::Borrowed(s),
    }
}

fn unexpected(what: &str, got: &V<'_>) -> EvalError {
    EvalError(format!("expected {what}, got {}", got.describe()))
}

/// A number operand: an int, or anything else as a float.
#[derive(Clone, Copy)]
enum Num {
    Int(i64),
    Float(f64),
}

fn num(v: &V<'_>) -> Result<Num> {
    match v {
        V::Int(i) => Ok(Num::Int(*i)),
        V::Float(f) => Ok(Num::Float(*f)),
        V::Other(c) => match c.as_ref() {
            Value::Decimal(d) => d
                .trim()
                .parse()
                .map(Num::Float)
                .map_err(|_| EvalError(format!("expected a decimal number, got {d:?}"))),
            _ => Err(unexpected("a number", v)),
        },
        _ => Err(unexpected("a number", v)),
    }
}

fn float(v: &V<'_>) -> Result<f64> {
    Ok(match num(v)? {
        Num::Int(i) => i as f64,
        Num::Float(f) => f,
    })
}

fn overflow(op: &str) -> EvalError {
    EvalError(format!(
        "integer overflow in '{op}' (the result does not fit in an int; use to_float(…))"
    ))
}

fn text<'a>(v: V<'a>) -> Result<Cow<'a, str>> {
    match v {
        V::Text(s) => Ok(s),
        other => Err(unexpected("text", &other)),
    }
}

fn int(v: &V<'_>) -> Result<i64> {
    match v {
        V::Int(i) => Ok(*i),
        other => Err(unexpected("an int", other)),
    }
}

/// A borrowed slice of `s` (owned if `s` was).
fn slice<'a>(s: Cow<'a, str>, f: impl FnOnce(&str) -> &str) -> Cow<'a, str> {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(f(b)),
        Cow::Owned(o) => Cow::Owned(f(&o).to_string()),
    }
}

/// Appends the text form of `v` (as `to_text` gives it) to `out`.
pub fn write_text(v: &V<'_>, out: &mut String) {
    // Writing to a String cannot fail.
    let _ = match v {
        V::Null => Ok(()),
        V::Bool(b) => write!(out, "{b}"),
        V::Int(i) => write!(out, "{i}"),
        // Huge floats in exponent form: 1e20, not 100000000000000000000.
        V::Float(f) if f.is_finite() && f.abs() >= 1e16 => write!(out, "{f:e}"),
        V::Float(f) => write!(out, "{f}"),
        V::Text(s) => {
            out.push_str(s);
            Ok(())
        }
        V::Date(d) => match datefmt::date_from_days(*d) {
            Some(date) => write!(out, "{date}"),
            None => write!(out, "date {d}"),
        },
        V::Ts(t) | V::Tstz(t) => {
            let r = match datefmt::datetime_from_micros(*t) {
                Some(dt) => write!(out, "{dt}"),
                None => write!(out, "timestamp {t}"),
            };
            if matches!(v, V::Tstz(_)) {
                out.push('Z');
            }
            r
        }
        V::Other(c) => match c.as_ref() {
            Value::Decimal(s) | Value::Json(s) | Value::Text(s) => {
                out.push_str(s);
                Ok(())
            }
            Value::Time(us) => {
                let (secs, micros) = (us / 1_000_000, us % 1_000_000);
                let r = write!(
                    out,
                    "{:02}:{:02}:{:02}",
                    secs / 3600,
                    secs / 60 % 60,
                    secs % 60
                );
                if micros != 0 {
                    let _ = write!(out, ".{micros:06}");
                }
                r
            }
            Value::Uuid((hi, lo)) => {
                let h = format!("{hi:016x}{lo:016x}");
                write!(
                    out,
                    "{}-{}-{}-{}-{}",
                    &h[..8],
                    &h[8..12],
                    &h[12..16],
                    &h[16..20],
                    &h[20..]
                )
            }
            Value::Bytes(b) => {
                out.push_str("\\x");
                for byte in b {
                    let _ = write!(out, "{byte:02x}");
                }
                Ok(())
            }
            other => write!(out, "{other:?}"),
        },
    };
}

fn compare(a: &V<'_>, b: &V<'_>) -> Option<Ordering> {
    const DAY: i64 = 86_400_000_000;
    match (a, b) {
        (V::Int(x), V::Int(y)) => Some(x.cmp(y)),
        (V::Text(x), V::Text(y)) => Some(x.as_ref().cmp(y.as_ref())),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Date(x), V::Date(y)) => Some(x.cmp(y)),
        (V::Ts(x), V::Ts(y)) | (V::Tstz(x), V::Tstz(y)) => Some(x.cmp(y)),
        (V::Date(d), V::Ts(t)) => Some((i64::from(*d) * DAY).cmp(t)),
        (V::Ts(t), V::Date(d)) => Some(t.cmp(&(i64::from(*d) * DAY))),
        (V::Other(x), V::Other(y)) => match (x.as_ref(), y.as_ref()) {
            (Value::Time(p), Value::Time(q)) => Some(p.cmp(q)),
            (Value::Decimal(_), _) | (_, Value::Decimal(_)) => {
                float(a).ok()?.partial_cmp(&float(b).ok()?)
            }
            (p, q) => (p == q).then_some(Ordering::Equal),
        },
        _ => float(a).ok()?.partial_cmp(&float(b).ok()?),
    }
}

fn arith(op: Arith, a: &V<'_>, b: &V<'_>) -> Result<V<'static>> {
    let (x, y) = (num(a)?, num(b)?);
    if let (Num::Int(x), Num::Int(y), false) = (x, y, op == Arith::Div) {
        let r = match op {
            Arith::Add => x.checked_add(y).ok_or_else(|| overflow("+"))?,
            Arith::Sub => x.checked_sub(y).ok_or_else(|| overflow("-"))?,
            Arith::Mul => x.checked_mul(y).ok_or_else(|| overflow("*"))?,
            _ => {
                if y == 0 {
                    return Err(EvalError(format!("division by zero ({x} % 0)")));
                }
                x.wrapping_rem(y)
            }
        };
        return Ok(V::Int(r));
    }
    let (x, y) = (float(a)?, float(b)?);
    Ok(V::Float(match op {
        Arith::Add => x + y,
        Arith::Sub => x - y,
        Arith::Mul => x * y,
        Arith::Div | Arith::Rem => {
            if y == 0.0 {
                let sym = if op == Arith::Div { "/" } else { "%" };
                return Err(EvalError(format!(
                    "division by zero ({} {sym} 0)",
                    a.describe()
                )));
            }
            if op == Arith::Div { x / y } else { x % y }
        }
    }))
}

fn date_parts(v: &V<'_>) -> Result<chrono::NaiveDateTime> {
    let dt = match v {
        V::Date(d) => datefmt::date_from_days(*d).map(|d| d.and_time(chrono::NaiveTime::MIN)),
        V::Ts(t) | V::Tstz(t) => datefmt::datetime_from_micros(*t),
        other => return Err(unexpected("a date or timestamp", other)),
    };
    dt.ok_or_else(|| {
        EvalError(format!(
            "{} is out of the supported date range",
            v.describe()
        ))
    })
}

/// Evaluates `node` against `row`.
pub fn eval<'a>(node: &'a Node, row: &'a [Value]) -> Result<V<'a>> {
    Ok(match node {
        Node::Const(v) => V::of(v),
        Node::Column(i) => row.get(*i).map_or(V::Null, V::of),
        Node::Neg(inner) => match eval(inner, row)? {
            V::Null => V::Null,
            v => match num(&v)? {
                Num::Int(i) => V::Int(i.checked_neg().ok_or_else(|| overflow("-"))?),
                Num::Float(f) => V::Float(-f),
            },
        },
        Node::Not(inner) => match eval(inner, row)? {
            V::Null => V::Null,
            V::Bool(b) => V::Bool(!b),
            other => return Err(unexpected("a boolean", &other)),
        },
        Node::ToFloat(inner) => match eval(inner, row)? {
            V::Null => V::Null,
            v => V::Float(float(&v)?),
        },
        Node::Arith(op, a, b) => {
            let (a, b) = (eval(a, row)?, eval(b, row)?);
            if matches!(a, V::Null) || matches!(b, V::Null) {
                V::Null
            } else {
                arith(*op, &a, &b)?
            }
        }
        Node::DateArith(op, a, b) => {
            let (a, b) = (eval(a, row)?, eval(b, row)?);
            match (op, a, b) {
                (_, V::Null, _) | (_, _, V::Null) => V::Null,
                (DateArith::Diff, V::Date(x), V::Date(y)) => V::Int(i64::from(x) - i64::from(y)),
                (DateArith::AddDays | DateArith::SubDays, V::Date(d), V::Int(n)) => {
                    let n = if *op == DateArith::AddDays {
                        Some(n)
                    } else {
                        n.checked_neg()
                    };
                    let r = n
                        .and_then(|n| i64::from(d).checked_add(n))
                        .and_then(|r| i32::try_from(r).ok())
                        .filter(|r| datefmt::date_from_days(*r).is_some());
                    V::Date(r.ok_or_else(|| EvalError("the date is out of range".into()))?)
                }
                (_, a, _) => return Err(unexpected("a date", &a)),
            }
        }
        Node::Cmp(op, a, b) => {
            let (a, b) = (eval(a, row)?, eval(b, row)?);
            if matches!(a, V::Null) || matches!(b, V::Null) {
                return Ok(V::Null);
            }
            let ord = compare(&a, &b);
            V::Bool(match op {
                BinOp::Eq => ord == Some(Ordering::Equal),
                BinOp::Ne => ord != Some(Ordering::Equal),
                BinOp::Lt => ord == Some(Ordering::Less),
                BinOp::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                BinOp::Gt => ord == Some(Ordering::Greater),
                _ => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
            })
        }
        Node::And(a, b) => match eval(a, row)? {
            V::Bool(false) => V::Bool(false),
            a => match (a, eval(b, row)?) {
                (_, V::Bool(false)) => V::Bool(false),
                (V::Bool(true), V::Bool(true)) => V::Bool(true),
                _ => V::Null,
            },
        },
        Node::Or(a, b) => match eval(a, row)? {
            V::Bool(true) => V::Bool(true),
            a => match (a, eval(b, row)?) {
                (_, V::Bool(true)) => V::Bool(true),
                (V::Bool(false), V::Bool(false)) => V::Bool(false),
                _ => V::Null,
            },
        },
        Node::If(c, a, b) => match eval(c, row)? {
            V::Bool(true) => eval(a, row)?,
            _ => eval(b, row)?,
        },
        Node::Call(func, args) => call(func, args, row)?,
    })
}

fn call<'a>(func: &'a Func, args: &'a [Node], row: &'a [Value]) -> Result<V<'a>> {
    // Functions other than concat and coalesce return null for a null first
    // argument.
    let first = match func {
        Func::Concat => {
            let mut out = String::new();
            for a in args {
                write_text(&eval(a, row)?, &mut out);
            }
            return Ok(V::Text(Cow::Owned(out)));
        }
        Func::Coalesce => {
            for a in args {
                let v = eval(a, row)?;
                if !matches!(v, V::Null) {
                    return Ok(v);
                }
            }
            return Ok(V::Null);
        }
        _ => match eval(&args[0], row)? {
            V::Null => return Ok(V::Null),
            v => v,
        },
    };
    // The remaining arguments, null-checked.
    let arg = |i: usize| -> Result<Option<V<'a>>> {
        match eval(&args[i], row)? {
            V::Null => Ok(None),
            v => Ok(Some(v)),
        }
    };
    Ok(match func {
        Func::Concat | Func::Coalesce => unreachable!("handled above"),
        Func::Upper => V::Text(Cow::Owned(text(first)?.to_uppercase())),
        Func::Lower => V::Text(Cow::Owned(text(first)?.to_lowercase())),
        Func::Strip => V::Text(slice(text(first)?, str::trim)),
        Func::Length => V::Int(text(first)?.chars().count() as i64),
        Func::Substr => {
            let s = text(first)?;
            let Some(start) = arg(1)? else {
                return Ok(V::Null);
            };
            let start = int(&start)?;
            let len = match args.len() {
                3 => match arg(2)? {
                    None => return Ok(V::Null),
                    Some(l) => Some(int(&l)?),
                },
                _ => None,
            };
            if len.is_some_and(|l| l < 0) {
                return Err(EvalError(format!(
                    "substr needs a length of 0 or more, got {}",
                    len.unwrap_or_default()
                )));
            }
            // 1-based like SQL; a start before 1 counts the characters
            // before the text against the length.
            let skip = start.max(1) - 1;
            let take = len.map(|l| (l - (1 - start).max(0)).max(0));
            V::Text(slice(s, |s| {
                let byte_at = |n: i64| {
                    usize::try_from(n)
                        .ok()
                        .and_then(|n| s.char_indices().nth(n).map(|(b, _)| b))
                        .unwrap_or(s.len())
                };
                let from = byte_at(skip);
                let to = take.map_or(s.len(), |t| from + byte_at_in(&s[from..], t));
                &s[from..to]
            }))
        }
        Func::Replace => {
            let s = text(first)?;
            let (Some(from), Some(to)) = (arg(1)?, arg(2)?) else {
                return Ok(V::Null);
            };
            let (from, to) = (text(from)?, text(to)?);
            if from.is_empty() || !s.contains(from.as_ref()) {
                V::Text(s)
            } else {
                V::Text(Cow::Owned(s.replace(from.as_ref(), &to)))
            }
        }
        Func::Round => {
            let digits = match args.len() {
                2 => match arg(1)? {
                    None => return Ok(V::Null),
                    Some(d) => int(&d)?,
                },
                _ => 0,
            };
            let digits = i32::try_from(digits.clamp(-30, 30)).unwrap_or(0);
            match num(&first)? {
                Num::Int(i) if digits >= 0 => V::Int(i),
                Num::Int(i) => {
                    let p = 10f64.powi(-digits);
                    let r = ((i as f64) / p).round() * p;
                    if r.abs() >= 9.2e18 {
                        return Err(overflow("round"));
                    }
                    V::Int(r as i64)
                }
                Num::Float(f) => {
                    let p = 10f64.powi(digits);
                    let r = (f * p).round() / p;
                    V::Float(if r.is_finite() { r } else { f })
                }
            }
        }
        Func::Abs => match num(&first)? {
            Num::Int(i) => V::Int(i.checked_abs().ok_or_else(|| overflow("abs"))?),
            Num::Float(f) => V::Float(f.abs()),
        },
        Func::ToText => match first {
            V::Text(s) => V::Text(s),
            other => {
                let mut s = String::new();
                write_text(&other, &mut s);
                V::Text(Cow::Owned(s))
            }
        },
        Func::ToInt => V::Int(to_int(&first)?),
        Func::ToFloat => V::Float(match &first {
            V::Bool(b) => f64::from(u8::from(*b)),
            V::Text(s) => s
                .trim()
                .parse()
                .map_err(|_| unexpected("a number", &first))?,
            other => float(other)?,
        }),
        Func::ParseDate(fmt) | Func::ParseTimestamp(fmt) => {
            let s = text(first)?;
            let what = if matches!(func, Func::ParseDate(_)) {
                "date"
            } else {
                "timestamp"
            };
            let dt = fmt.parse_datetime(&s).ok_or_else(|| {
                EvalError(format!(
                    "expected a {what} like {}, got {:?}",
                    fmt.text(),
                    truncate(&s)
                ))
            })?;
            if matches!(func, Func::ParseDate(_)) {
                V::Date(datefmt::days_from_date(dt.date()))
            } else {
                V::Ts(datefmt::micros_from_datetime(&dt))
            }
        }
        Func::FormatDate(fmt) => {
            let dt = date_parts(&first)?;
            let mut out = String::with_capacity(fmt.text().len() + 4);
            fmt.format(&dt, &mut out);
            V::Text(Cow::Owned(out))
        }
        Func::Year | Func::Month | Func::Day => {
            use chrono::Datelike;
            let dt = date_parts(&first)?;
            V::Int(i64::from(match func {
                Func::Year => dt.year(),
                Func::Month => dt.month() as i32,
                _ => dt.day() as i32,
            }))
        }
    })
}

/// Byte length of the first `n` characters of `s` (all of it if shorter).
fn byte_at_in(s: &str, n: i64) -> usize {
    usize::try_from(n)
        .ok()
        .and_then(|n| s.char_indices().nth(n).map(|(b, _)| b))
        .unwrap_or(s.len())
}

fn to_int(v: &V<'_>) -> Result<i64> {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    let from_float = |f: f64| {
        let t = f.trunc();
        if t.is_finite() && (-LIMIT..LIMIT).contains(&t) {
            Ok(t as i64)
        } else {
            Err(unexpected("a number that fits in an int", v))
        }
    };
    match v {
        V::Int(i) => Ok(*i),
        V::Bool(b) => Ok(i64::from(*b)),
        V::Text(s) => {
            let s = s.trim();
            s.strip_prefix('+')
                .unwrap_or(s)
                .parse()
                .map_err(|_| unexpected("an integer", v))
        }
        other => from_float(float(other)?),
    }
}
