//! Static typing: turns an [`Ast`] into an executable [`Node`] tree against
//! the schema as it stands, resolving columns to indices, inferring the
//! output type and nullability, and rejecting type errors with a position.

use credvault_sdk::{Column, ColumnType, Value};

use crate::datefmt::{self, DateFormat};
use crate::parser::{Ast, AstKind, BinOp, ExprError, Lit};

/// A static type; `None` is the type of the `null` literal (fits anything).
pub type Ty = Option<ColumnType>;

/// A compiled function.
#[derive(Debug, Clone, PartialEq)]
pub enum Func {
    /// upper(text)
    Upper,
    /// lower(text)
    Lower,
    /// strip(text) / trim(text)
    Strip,
    /// concat(any, …), nulls skipped
    Concat,
    /// coalesce(a, …)
    Coalesce,
    /// length(text)
    Length,
    /// substr(text, start[, len])
    Substr,
    /// replace(text, from, to)
    Replace,
    /// round(x[, digits])
    Round,
    /// abs(x)
    Abs,
    /// to_text(any)
    ToText,
    /// to_int(x)
    ToInt,
    /// to_float(x)
    ToFloat,
    /// parse_date(text, 'fmt'); the format is not among the arguments.
    ParseDate(DateFormat),
    /// parse_timestamp(text, 'fmt')
    ParseTimestamp(DateFormat),
    /// format_date(date_or_ts, 'fmt')
    FormatDate(DateFormat),
    /// year(date_or_ts)
    Year,
    /// month(date_or_ts)
    Month,
    /// day(date_or_ts)
    Day,
}

/// An arithmetic operator on numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arith {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/` (always a float)
    Div,
    /// `%`
    Rem,
}

/// Date arithmetic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateArith {
    /// date + int days (operands in that order)
    AddDays,
    /// date - int days
    SubDays,
    /// date - date, in days
    Diff,
}

/// An executable expression; see `eval`.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A constant.
    Const(Value),
    /// The value at this index of the working row.
    Column(usize),
    /// Unary minus.
    Neg(Box<Node>),
    /// `not`.
    Not(Box<Node>),
    /// Number arithmetic.
    Arith(Arith, Box<Node>, Box<Node>),
    /// Date arithmetic.
    DateArith(DateArith, Box<Node>, Box<Node>),
    /// A comparison (one of the comparison [`BinOp`]s).
    Cmp(BinOp, Box<Node>, Box<Node>),
    /// Three-valued `and`.
    And(Box<Node>, Box<Node>),
    /// Three-valued `or`.
    Or(Box<Node>, Box<Node>),
    /// `if c then a else b`; a null condition takes `else`.
    If(Box<Node>, Box<Node>, Box<Node>),
    /// A function call.
    Call(Func, Vec<Node>),
    /// Converts an int (or decimal) to a float, where types were unified.
    ToFloat(Box<Node>),
}

/// A compiled expression with its static type.
#[derive(Debug, Clone, PartialEq)]
pub struct Typed {
    /// What to run.
    pub node: Node,
    /// The type of its non-null values.
    pub ty: Ty,
    /// Whether it may be null.
    pub nullable: bool,
}

/// What an expression can see: the columns as they stand before it runs.
pub struct Env<'a> {
    /// The working row's columns.
    pub columns: &'a [Column],
    /// Whether each column still holds the input's value (for hints about
    /// the column mapping).
    pub from_input: &'a [bool],
    /// The assignment's text, to quote operands in messages.
    pub src: &'a str,
    /// The run's start, µs since the epoch (for current_year/current_date).
    pub now_micros: i64,
}

const FUNCTIONS: &[&str] = &[
    "upper",
    "lower",
    "strip",
    "trim",
    "concat",
    "coalesce",
    "length",
    "substr",
    "replace",
    "round",
    "abs",
    "to_text",
    "to_int",
    "to_float",
    "parse_date",
    "parse_timestamp",
    "format_date",
    "year",
    "month",
    "day",
    "current_year",
    "current_date",
];

type Result<T> = std::result::Result<T, ExprError>;

fn ty_name(ty: Ty) -> &'static str {
    ty.map_or("null", ColumnType::name)
}

fn is_num(ty: Ty) -> bool {
    ty.is_none_or(ColumnType::is_numeric)
}

fn is(ty: Ty, want: ColumnType) -> bool {
    ty.is_none_or(|t| t == want)
}

fn is_dateish(ty: Ty) -> bool {
    matches!(
        ty,
        None | Some(ColumnType::Date | ColumnType::Timestamp | ColumnType::Timestamptz)
    )
}

/// Levenshtein distance, for "did you mean" hints.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(!ca.eq_ignore_ascii_case(cb));
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn closest<'n>(name: &str, candidates: impl Iterator<Item = &'n str>) -> Option<&'n str> {
    candidates
        .map(|c| (distance(name, c), c))
        .filter(|(d, c)| *d <= 2.max(name.len() / 3) && *d < c.len().max(name.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

impl Env<'_> {
    fn text_of(&self, ast: &Ast) -> &str {
        &self.src[ast.start..ast.end]
    }

    /// How to turn operand `ast` into a `want` ("int", "float", "text").
    fn convert_hint(&self, ast: &Ast, conv: &str, mapping_type: &str) -> String {
        let text = self.text_of(ast);
        if let AstKind::Column(name) = &ast.kind
            && let Some(i) = self.columns.iter().position(|c| &c.name == name)
            && self.from_input[i]
        {
            return format!(
                "give it type = \"{mapping_type}\" in the column mapping, or use {conv}({text})"
            );
        }
        format!("use {conv}({text})")
    }

    fn number_error(&self, what: &str, ast: &Ast, ty: Ty) -> ExprError {
        let hint = match ty {
            Some(ColumnType::Text) => format!(" ({})", self.convert_hint(ast, "to_int", "int")),
            Some(ColumnType::Boolean) => " (use if … then 1 else 0)".to_string(),
            _ => String::new(),
        };
        ExprError::new(
            format!(
                "{what} needs numbers, but {} is {}{hint}",
                self.text_of(ast),
                ty_name(ty)
            ),
            ast.start,
        )
    }

    fn expect(&self, func: &str, ast: &Ast, t: &Typed, want: ColumnType) -> Result<()> {
        if is(t.ty, want) {
            return Ok(());
        }
        let hint = match want {
            ColumnType::Text => format!(" (use to_text({}))", self.text_of(ast)),
            ColumnType::Int if t.ty == Some(ColumnType::Text) => {
                format!(" ({})", self.convert_hint(ast, "to_int", "int"))
            }
            _ => String::new(),
        };
        Err(ExprError::new(
            format!(
                "{func} needs {want}, but {} is {}{hint}",
                self.text_of(ast),
                ty_name(t.ty)
            ),
            ast.start,
        ))
    }

    /// Compiles an expression.
    pub fn compile(&self, ast: &Ast) -> Result<Typed> {
        match &ast.kind {
            AstKind::Lit(lit) => Ok(match lit {
                Lit::Null => Typed {
                    node: Node::Const(Value::Null),
                    ty: None,
                    nullable: true,
                },
                Lit::Bool(b) => constant(Value::Boolean(*b)),
                Lit::Int(i) => constant(Value::Int(*i)),
                Lit::Float(f) => constant(Value::Float(*f)),
                Lit::Text(s) => constant(Value::Text(s.clone())),
            }),
            AstKind::Column(name) => {
                let Some(i) = self.columns.iter().position(|c| &c.name == name) else {
                    let hint = closest(name, self.columns.iter().map(|c| c.name.as_str()))
                        .map(|c| format!("did you mean {c}? "))
                        .unwrap_or_default();
                    let names: Vec<&str> = self.columns.iter().map(|c| c.name.as_str()).collect();
                    return Err(ExprError::new(
                        format!(
                            "unknown column {name:?} ({hint}columns: {}; quote odd names with \"double quotes\", text with 'single quotes')",
                            names.join(", ")
                        ),
                        ast.start,
                    ));
                };
                let c = &self.columns[i];
                Ok(Typed {
                    node: Node::Column(i),
                    ty: Some(c.type_),
                    nullable: c.nullable,
                })
            }
            AstKind::Neg(inner) => {
                let t = self.compile(inner)?;
                if !is_num(t.ty) {
                    return Err(self.number_error("unary '-'", inner, t.ty));
                }
                let ty = t.ty.map(|ty| {
                    if ty == ColumnType::Int {
                        ty
                    } else {
                        ColumnType::Float
                    }
                });
                Ok(Typed {
                    node: Node::Neg(Box::new(t.node)),
                    ty,
                    nullable: t.nullable,
                })
            }
            AstKind::Not(inner) => {
                let t = self.compile(inner)?;
                self.expect("not", inner, &t, ColumnType::Boolean)?;
                Ok(Typed {
                    node: Node::Not(Box::new(t.node)),
                    ty: Some(ColumnType::Boolean),
                    nullable: t.nullable,
                })
            }
            AstKind::Binary(op, a, b) => self.binary(*op, a, b),
            AstKind::If(c, a, b) => {
                let tc = self.compile(c)?;
                self.expect("the condition of `if`", c, &tc, ColumnType::Boolean)?;
                let ta = self.compile(a)?;
                let tb = self.compile(b)?;
                let (ty, mut nodes) = self.unify("the branches of `if`", &[(a, ta), (b, tb)])?;
                let (nb, nb_nullable) = nodes.pop().expect("two branches");
                let (na, na_nullable) = nodes.pop().expect("two branches");
                Ok(Typed {
                    node: Node::If(Box::new(tc.node), Box::new(na), Box::new(nb)),
                    ty,
                    nullable: na_nullable || nb_nullable,
                })
            }
            AstKind::Call(name, args) => self.call(ast, name, args),
        }
    }

    /// Finds a common type for `items`, inserting int→float conversions.
    fn unify(&self, what: &str, items: &[(&Ast, Typed)]) -> Result<(Ty, Vec<(Node, bool)>)> {
        let mut ty: Ty = None;
        for (ast, t) in items {
            let Some(t_ty) = t.ty else { continue };
            ty = match ty {
                None => Some(t_ty),
                Some(cur) if cur == t_ty => Some(cur),
                Some(cur) if cur.is_numeric() && t_ty.is_numeric() => Some(ColumnType::Float),
                Some(cur) => {
                    return Err(ExprError::new(
                        format!(
                            "{what} must have one type, but {} is {} where an earlier one is {cur} (convert it, e.g. with to_text(…))",
                            self.text_of(ast),
                            t_ty
                        ),
                        ast.start,
                    ));
                }
            };
        }
        let nodes = items
            .iter()
            .map(|(_, t)| {
                let node = if ty == Some(ColumnType::Float)
                    && matches!(t.ty, Some(ColumnType::Int | ColumnType::Decimal))
                {
                    Node::ToFloat(Box::new(t.node.clone()))
                } else {
                    t.node.clone()
                };
                (node, t.nullable)
            })
            .collect();
        Ok((ty, nodes))
    }

    fn binary(&self, op: BinOp, a: &Ast, b: &Ast) -> Result<Typed> {
        let ta = self.compile(a)?;
        let tb = self.compile(b)?;
        let nullable = ta.nullable || tb.nullable;
        let sym = format!("'{}'", op.symbol());
        let boxed = |ta: Typed, tb: Typed| (Box::new(ta.node), Box::new(tb.node));
        match op {
            BinOp::And | BinOp::Or => {
                self.expect(&format!("`{}`", op.symbol()), a, &ta, ColumnType::Boolean)?;
                self.expect(&format!("`{}`", op.symbol()), b, &tb, ColumnType::Boolean)?;
                let (x, y) = boxed(ta, tb);
                Ok(Typed {
                    node: if op == BinOp::And {
                        Node::And(x, y)
                    } else {
                        Node::Or(x, y)
                    },
                    ty: Some(ColumnType::Boolean),
                    nullable,
                })
            }
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
                let ordered = !matches!(op, BinOp::Eq | BinOp::Ne);
                let ok = match (ta.ty, tb.ty) {
                    (None, _) | (_, None) => true,
                    (Some(x), Some(y)) if x.is_numeric() && y.is_numeric() => true,
                    (
                        Some(ColumnType::Date | ColumnType::Timestamp),
                        Some(ColumnType::Date | ColumnType::Timestamp),
                    ) => true,
                    (Some(x), Some(y)) if x == y => {
                        !ordered
                            || matches!(
                                x,
                                ColumnType::Text
                                    | ColumnType::Boolean
                                    | ColumnType::Time
                                    | ColumnType::Timestamptz
                            )
                    }
                    _ => false,
                };
                if !ok {
                    let hint = match (ta.ty, tb.ty) {
                        (Some(ColumnType::Text), Some(y)) if y.is_numeric() => {
                            format!(" ({})", self.convert_hint(a, "to_int", "int"))
                        }
                        (Some(x), Some(ColumnType::Text)) if x.is_numeric() => {
                            format!(" ({})", self.convert_hint(b, "to_int", "int"))
                        }
                        (Some(ColumnType::Text), Some(ColumnType::Date)) => {
                            format!(" (use parse_date({}, 'YYYY-MM-DD'))", self.text_of(a))
                        }
                        (Some(ColumnType::Date), Some(ColumnType::Text)) => {
                            format!(" (use parse_date({}, 'YYYY-MM-DD'))", self.text_of(b))
                        }
                        _ => String::new(),
                    };
                    return Err(ExprError::new(
                        format!(
                            "{sym} cannot compare {} ({}) with {} ({}){hint}",
                            self.text_of(a),
                            ty_name(ta.ty),
                            self.text_of(b),
                            ty_name(tb.ty)
                        ),
                        a.start,
                    ));
                }
                let (x, y) = boxed(ta, tb);
                Ok(Typed {
                    node: Node::Cmp(op, x, y),
                    ty: Some(ColumnType::Boolean),
                    nullable,
                })
            }
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem => {
                // Date arithmetic: date ± days, days + date, date - date.
                let date = Some(ColumnType::Date);
                let int = Some(ColumnType::Int);
                let date_op = match (op, ta.ty, tb.ty) {
                    (BinOp::Add | BinOp::Sub, d, i) if d == date && i == int => Some((
                        if op == BinOp::Add {
                            DateArith::AddDays
                        } else {
                            DateArith::SubDays
                        },
                        false,
                        date,
                    )),
                    (BinOp::Add, i, d) if d == date && i == int => {
                        Some((DateArith::AddDays, true, date))
                    }
                    (BinOp::Sub, d1, d2) if d1 == date && d2 == date => {
                        Some((DateArith::Diff, false, int))
                    }
                    _ => None,
                };
                if let Some((kind, swap, ty)) = date_op {
                    let (x, y) = boxed(ta, tb);
                    let (x, y) = if swap { (y, x) } else { (x, y) };
                    return Ok(Typed {
                        node: Node::DateArith(kind, x, y),
                        ty,
                        nullable,
                    });
                }
                if op == BinOp::Add
                    && ta.ty == Some(ColumnType::Text)
                    && tb.ty == Some(ColumnType::Text)
                {
                    return Err(ExprError::new(
                        format!(
                            "'+' needs numbers, but {} is text (to join text use concat({}, {}))",
                            self.text_of(a),
                            self.text_of(a),
                            self.text_of(b)
                        ),
                        a.start,
                    ));
                }
                for (ast, t) in [(a, &ta), (b, &tb)] {
                    if !is_num(t.ty) {
                        return Err(self.number_error(&sym, ast, t.ty));
                    }
                }
                let ty = match (ta.ty, tb.ty) {
                    _ if op == BinOp::Div => Some(ColumnType::Float),
                    (None, None) => None,
                    (Some(ColumnType::Int) | None, Some(ColumnType::Int) | None) => {
                        Some(ColumnType::Int)
                    }
                    _ => Some(ColumnType::Float),
                };
                let arith = match op {
                    BinOp::Add => Arith::Add,
                    BinOp::Sub => Arith::Sub,
                    BinOp::Mul => Arith::Mul,
                    BinOp::Div => Arith::Div,
                    _ => Arith::Rem,
                };
                let (x, y) = boxed(ta, tb);
                Ok(Typed {
                    node: Node::Arith(arith, x, y),
                    ty,
                    nullable,
                })
            }
        }
    }

    fn call(&self, call: &Ast, name: &str, args: &[Ast]) -> Result<Typed> {
        let arity = |min: usize, max: usize, usage: &str| -> Result<()> {
            if args.len() < min || args.len() > max {
                let takes = match (min, max) {
                    (0, 0) => "no arguments".to_string(),
                    (a, b) if a == b => format!("{a} argument{}", if a == 1 { "" } else { "s" }),
                    (a, usize::MAX) => {
                        format!("at least {a} argument{}", if a == 1 { "" } else { "s" })
                    }
                    (a, b) => format!("{a} or {b} arguments"),
                };
                return Err(ExprError::new(
                    format!("{name} takes {takes} ({usage}), got {}", args.len()),
                    call.start,
                ));
            }
            Ok(())
        };
        let compiled = |range: std::ops::Range<usize>| -> Result<Vec<Typed>> {
            args[range].iter().map(|a| self.compile(a)).collect()
        };
        let any_nullable = |ts: &[Typed]| ts.iter().any(|t| t.nullable);
        let make = |func: Func, ts: Vec<Typed>, ty: ColumnType, nullable: bool| Typed {
            nullable,
            node: Node::Call(func, ts.into_iter().map(|t| t.node).collect()),
            ty: Some(ty),
        };
        let text_fn = |func: Func, usage: &str, out: ColumnType| -> Result<Typed> {
            arity(1, 1, usage)?;
            let ts = compiled(0..1)?;
            self.expect(name, &args[0], &ts[0], ColumnType::Text)?;
            let nullable = ts[0].nullable;
            Ok(make(func, ts, out, nullable))
        };
        let date_format = |i: usize, parse: bool| -> Result<DateFormat> {
            let AstKind::Lit(Lit::Text(fmt)) = &args[i].kind else {
                return Err(ExprError::new(
                    format!(
                        "the format of {name} must be a 'quoted' text like 'YYYY-MM-DD' (tokens: {})",
                        datefmt::TOKENS
                    ),
                    args[i].start,
                ));
            };
            let f = DateFormat::parse(fmt).map_err(|m| ExprError::new(m, args[i].start))?;
            if parse {
                f.check_parses_date()
                    .map_err(|m| ExprError::new(m, args[i].start))?;
            }
            Ok(f)
        };
        match name {
            "upper" => text_fn(Func::Upper, "upper(text)", ColumnType::Text),
            "lower" => text_fn(Func::Lower, "lower(text)", ColumnType::Text),
            "strip" | "trim" => text_fn(Func::Strip, "strip(text)", ColumnType::Text),
            "length" => text_fn(Func::Length, "length(text)", ColumnType::Int),
            "concat" => {
                arity(1, usize::MAX, "concat(a, b, …)")?;
                let ts = compiled(0..args.len())?;
                Ok(make(Func::Concat, ts, ColumnType::Text, false))
            }
            "coalesce" => {
                arity(1, usize::MAX, "coalesce(a, b, …)")?;
                let ts = compiled(0..args.len())?;
                let nullable = ts.iter().all(|t| t.nullable);
                let items: Vec<(&Ast, Typed)> = args.iter().zip(ts).collect();
                let (ty, nodes) = self.unify("the arguments of coalesce", &items)?;
                Ok(Typed {
                    node: Node::Call(Func::Coalesce, nodes.into_iter().map(|(n, _)| n).collect()),
                    ty,
                    nullable,
                })
            }
            "substr" => {
                arity(2, 3, "substr(text, start[, length]), start counts from 1")?;
                let ts = compiled(0..args.len())?;
                self.expect(name, &args[0], &ts[0], ColumnType::Text)?;
                for i in 1..ts.len() {
                    self.expect(name, &args[i], &ts[i], ColumnType::Int)?;
                }
                let nullable = any_nullable(&ts);
                Ok(make(Func::Substr, ts, ColumnType::Text, nullable))
            }
            "replace" => {
                arity(3, 3, "replace(text, from, to)")?;
                let ts = compiled(0..3)?;
                for (a, t) in args.iter().zip(&ts) {
                    self.expect(name, a, t, ColumnType::Text)?;
                }
                let nullable = any_nullable(&ts);
                Ok(make(Func::Replace, ts, ColumnType::Text, nullable))
            }
            "round" | "abs" => {
                let (func, usage) = if name == "round" {
                    arity(1, 2, "round(number[, digits])")?;
                    (Func::Round, "round")
                } else {
                    arity(1, 1, "abs(number)")?;
                    (Func::Abs, "abs")
                };
                let ts = compiled(0..args.len())?;
                if !is_num(ts[0].ty) {
                    return Err(self.number_error(usage, &args[0], ts[0].ty));
                }
                if ts.len() == 2 {
                    self.expect("the digits of round", &args[1], &ts[1], ColumnType::Int)?;
                }
                let ty = match ts[0].ty {
                    Some(ColumnType::Int) | None => ColumnType::Int,
                    _ => ColumnType::Float,
                };
                let nullable = any_nullable(&ts);
                Ok(make(func, ts, ty, nullable))
            }
            "to_text" => {
                arity(1, 1, "to_text(value)")?;
                let ts = compiled(0..1)?;
                let nullable = ts[0].nullable;
                Ok(make(Func::ToText, ts, ColumnType::Text, nullable))
            }
            "to_int" | "to_float" => {
                arity(
                    1,
                    1,
                    if name == "to_int" {
                        "to_int(value)"
                    } else {
                        "to_float(value)"
                    },
                )?;
                let ts = compiled(0..1)?;
                let ok = matches!(
                    ts[0].ty,
                    None | Some(ColumnType::Text | ColumnType::Boolean)
                ) || is_num(ts[0].ty);
                if !ok {
                    return Err(ExprError::new(
                        format!(
                            "{name} needs a number, text or boolean, but {} is {}",
                            self.text_of(&args[0]),
                            ty_name(ts[0].ty)
                        ),
                        args[0].start,
                    ));
                }
                let nullable = ts[0].nullable;
                Ok(if name == "to_int" {
                    make(Func::ToInt, ts, ColumnType::Int, nullable)
                } else {
                    make(Func::ToFloat, ts, ColumnType::Float, nullable)
                })
            }
            "parse_date" | "parse_timestamp" => {
                arity(2, 2, &format!("{name}(text, 'MM/DD/YYYY')"))?;
                let ts = compiled(0..1)?;
                if ts[0].ty != Some(ColumnType::Text) && ts[0].ty.is_some() {
                    let already = if is_dateish(ts[0].ty) {
                        format!(
                            "; {} is already a {}: drop the {name}",
                            self.text_of(&args[0]),
                            ty_name(ts[0].ty)
                        )
                    } else {
                        String::new()
                    };
                    return Err(ExprError::new(
                        format!(
                            "{name} needs text, but {} is {}{already}",
                            self.text_of(&args[0]),
                            ty_name(ts[0].ty)
                        ),
                        args[0].start,
                    ));
                }
                let fmt = date_format(1, true)?;
                let nullable = ts[0].nullable;
                Ok(if name == "parse_date" {
                    make(Func::ParseDate(fmt), ts, ColumnType::Date, nullable)
                } else {
                    make(
                        Func::ParseTimestamp(fmt),
                        ts,
                        ColumnType::Timestamp,
                        nullable,
                    )
                })
            }
            "format_date" => {
                arity(2, 2, "format_date(date_or_timestamp, 'YYYY-MM-DD')")?;
                let ts = compiled(0..1)?;
                self.expect_dateish(name, &args[0], &ts[0])?;
                let fmt = date_format(1, false)?;
                let nullable = ts[0].nullable;
                Ok(make(Func::FormatDate(fmt), ts, ColumnType::Text, nullable))
            }
            "year" | "month" | "day" => {
                arity(1, 1, &format!("{name}(date_or_timestamp)"))?;
                let ts = compiled(0..1)?;
                self.expect_dateish(name, &args[0], &ts[0])?;
                let func = match name {
                    "year" => Func::Year,
                    "month" => Func::Month,
                    _ => Func::Day,
                };
                let nullable = ts[0].nullable;
                Ok(make(func, ts, ColumnType::Int, nullable))
            }
            "current_year" => {
                arity(0, 0, "current_year() is the year the run started, in UTC")?;
                let days = datefmt::days_from_micros(self.now_micros);
                let year =
                    datefmt::date_from_days(days).map_or(1970, |d| chrono::Datelike::year(&d));
                Ok(constant(Value::Int(year.into())))
            }
            "current_date" => {
                arity(0, 0, "current_date() is the date the run started, in UTC")?;
                Ok(constant(Value::Date(datefmt::days_from_micros(
                    self.now_micros,
                ))))
            }
            _ => {
                let hint = closest(name, FUNCTIONS.iter().copied())
                    .map(|c| format!("did you mean {c}? "))
                    .unwrap_or_default();
                Err(ExprError::new(
                    format!(
                        "unknown function {name} ({hint}functions: {})",
                        FUNCTIONS.join(", ")
                    ),
                    call.start,
                ))
            }
        }
    }

    fn expect_dateish(&self, func: &str, ast: &Ast, t: &Typed) -> Result<()> {
        if is_dateish(t.ty) {
            return Ok(());
        }
        let hint = if t.ty == Some(ColumnType::Text) {
            format!(
                " (use parse_date({}, 'YYYY-MM-DD') first)",
                self.text_of(ast)
            )
        } else {
            String::new()
        };
        Err(ExprError::new(
            format!(
                "{func} needs a date or timestamp, but {} is {}{hint}",
                self.text_of(ast),
                ty_name(t.ty)
            ),
            ast.start,
        ))
    }
}

fn constant(v: Value) -> Typed {
    Typed {
        ty: v.column_type(),
        nullable: v.is_null(),
        node: Node::Const(v),
    }
}
