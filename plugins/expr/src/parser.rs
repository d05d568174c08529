//! Lexer and Pratt parser: assignment text → [`Ast`] with byte spans, so
//! errors can point at the offending part.

/// A parse or type error at a byte offset of the assignment text.
#[derive(Debug, Clone, PartialEq)]
pub struct ExprError {
    /// What is wrong and what to do.
    pub message: String,
    /// Byte offset into the assignment text.
    pub pos: usize,
}

impl ExprError {
    pub(crate) fn new(message: impl Into<String>, pos: usize) -> Self {
        ExprError {
            message: message.into(),
            pos,
        }
    }
}

type Result<T> = std::result::Result<T, ExprError>;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    QuotedIdent(String),
    Int(i64),
    Float(f64),
    Str(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
    Eof,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    start: usize,
    end: usize,
}

fn lex(src: &str) -> Result<Vec<Token>> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let tok =
            if c.is_ascii_alphabetic() || c == b'_' {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                Tok::Ident(src[start..i].to_string())
            } else if c.is_ascii_digit()
                || (c == b'.' && bytes.get(i + 1).is_some_and(u8::is_ascii_digit))
            {
                let mut float = false;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                if i < bytes.len() && bytes[i] == b'.' {
                    float = true;
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                }
                if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
                    let mut j = i + 1;
                    if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
                        j += 1;
                    }
                    if j < bytes.len() && bytes[j].is_ascii_digit() {
                        float = true;
                        i = j;
                        while i < bytes.len() && bytes[i].is_ascii_digit() {
                            i += 1;
                        }
                    }
                }
                let text = &src[start..i];
                if float {
                    Tok::Float(text.parse().map_err(|_| {
                        ExprError::new(format!("{text} is not a valid number"), start)
                    })?)
                } else {
                    Tok::Int(text.parse().map_err(|_| {
                        ExprError::new(
                            format!("{text} is too large for an int (at most 9223372036854775807)"),
                            start,
                        )
                    })?)
                }
            } else if c == b'\'' || c == b'"' {
                let quote = c as char;
                let mut text = String::new();
                i += 1;
                loop {
                    let Some(ch) = src[i..].chars().next() else {
                        let what = if quote == '\'' { "text" } else { "column name" };
                        return Err(ExprError::new(
                            format!("unterminated {what}: add the closing {quote}"),
                            start,
                        ));
                    };
                    i += ch.len_utf8();
                    if ch == quote {
                        if src[i..].starts_with(quote) {
                            text.push(quote);
                            i += 1;
                        } else {
                            break;
                        }
                    } else {
                        text.push(ch);
                    }
                }
                if quote == '\'' {
                    Tok::Str(text)
                } else {
                    Tok::QuotedIdent(text)
                }
            } else {
                i += 1;
                match c {
                    b'(' => Tok::LParen,
                    b')' => Tok::RParen,
                    b',' => Tok::Comma,
                    b'+' => Tok::Op("+"),
                    b'-' => Tok::Op("-"),
                    b'*' => Tok::Op("*"),
                    b'/' => Tok::Op("/"),
                    b'%' => Tok::Op("%"),
                    b'=' | b'!' | b'<' | b'>' => {
                        let next = bytes.get(i).copied();
                        let op = match (c, next) {
                            (b'=', Some(b'=')) => "==",
                            (b'!', Some(b'=')) => "!=",
                            (b'<', Some(b'=')) => "<=",
                            (b'>', Some(b'=')) => ">=",
                            (b'<', Some(b'>')) => "!=",
                            (b'=', _) => "=",
                            (b'<', _) => "<",
                            (b'>', _) => ">",
                            _ => {
                                return Err(ExprError::new(
                                    "unexpected '!': write != to compare, or `not` to negate",
                                    start,
                                ));
                            }
                        };
                        if op.len() == 2 || (c == b'<' && next == Some(b'>')) {
                            i += 1;
                        }
                        Tok::Op(op)
                    }
                    _ => {
                        let ch = src[start..].chars().next().unwrap_or('?');
                        return Err(ExprError::new(
                            format!("unexpected character {ch:?}"),
                            start,
                        ));
                    }
                }
            };
        out.push(Token { tok, start, end: i });
    }
    out.push(Token {
        tok: Tok::Eof,
        start: src.len(),
        end: src.len(),
    });
    Ok(out)
}

/// A literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// `42`.
    Int(i64),
    /// `4.2`.
    Float(f64),
    /// `'text'`.
    Text(String),
}

/// A binary operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
}

impl BinOp {
    /// How the operator is written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::And => "and",
            BinOp::Or => "or",
        }
    }

    fn is_comparison(self) -> bool {
        matches!(
            self,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        )
    }
}

/// An expression node and the byte range of its text.
#[derive(Debug, Clone, PartialEq)]
pub struct Ast {
    /// What the node is.
    pub kind: AstKind,
    /// Byte offset where the node's text starts.
    pub start: usize,
    /// Byte offset just past the node's text.
    pub end: usize,
}

/// The kinds of expression node.
#[derive(Debug, Clone, PartialEq)]
pub enum AstKind {
    /// A literal.
    Lit(Lit),
    /// A column reference.
    Column(String),
    /// Unary minus.
    Neg(Box<Ast>),
    /// `not`.
    Not(Box<Ast>),
    /// A binary operation.
    Binary(BinOp, Box<Ast>, Box<Ast>),
    /// `if c then a else b`.
    If(Box<Ast>, Box<Ast>, Box<Ast>),
    /// A function call: name and arguments.
    Call(String, Vec<Ast>),
}

/// One `target = expression` line.
#[derive(Debug, Clone, PartialEq)]
pub struct Assignment {
    /// The column assigned to.
    pub target: String,
    /// The expression.
    pub expr: Ast,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

fn keyword(tok: &Tok) -> Option<&'static str> {
    let Tok::Ident(s) = tok else { return None };
    const KEYWORDS: [&str; 9] = [
        "and", "or", "not", "if", "then", "else", "true", "false", "null",
    ];
    KEYWORDS.into_iter().find(|k| s.eq_ignore_ascii_case(k))
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::QuotedIdent(s) => format!("{s:?}"),
        Tok::Int(i) => i.to_string(),
        Tok::Float(f) => f.to_string(),
        Tok::Str(s) => format!("'{s}'"),
        Tok::Op(o) => format!("'{o}'"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::Comma => "','".into(),
        Tok::Eof => "the end".into(),
    }
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos]
    }

    fn next(&mut self) -> Token {
        let t = self.tokens[self.pos].clone();
        if self.pos + 1 < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn expect_keyword(&mut self, kw: &str, context: &str) -> Result<()> {
        let t = self.peek();
        if keyword(&t.tok) == Some(kw) {
            self.next();
            Ok(())
        } else {
            Err(ExprError::new(
                format!("expected `{kw}` {context}, found {}", describe(&t.tok)),
                t.start,
            ))
        }
    }

    fn infix(&self) -> Option<BinOp> {
        let t = &self.peek().tok;
        match t {
            Tok::Op(op) => Some(match *op {
                "+" => BinOp::Add,
                "-" => BinOp::Sub,
                "*" => BinOp::Mul,
                "/" => BinOp::Div,
                "%" => BinOp::Rem,
                "==" => BinOp::Eq,
                "!=" => BinOp::Ne,
                "<" => BinOp::Lt,
                "<=" => BinOp::Le,
                ">" => BinOp::Gt,
                ">=" => BinOp::Ge,
                _ => return None,
            }),
            _ => match keyword(t) {
                Some("and") => Some(BinOp::And),
                Some("or") => Some(BinOp::Or),
                _ => None,
            },
        }
    }

    fn expr(&mut self, min_bp: u8) -> Result<Ast> {
        let mut lhs = self.prefix()?;
        loop {
            if let Tok::Op("=") = self.peek().tok {
                return Err(ExprError::new(
                    "'=' assigns only at the start; write == to compare",
                    self.peek().start,
                ));
            }
            let Some(op) = self.infix() else { break };
            let (l_bp, r_bp) = match op {
                BinOp::Or => (1, 2),
                BinOp::And => (3, 4),
                _ if op.is_comparison() => (7, 8),
                BinOp::Add | BinOp::Sub => (9, 10),
                _ => (11, 12),
            };
            if l_bp < min_bp {
                break;
            }
            let op_tok = self.next();
            let rhs = self.expr(r_bp)?;
            if op.is_comparison()
                && let Some(next) = self.infix()
                && next.is_comparison()
            {
                return Err(ExprError::new(
                    format!(
                        "comparisons cannot be chained: write `a {} b and b {} c`",
                        op.symbol(),
                        next.symbol()
                    ),
                    op_tok.start,
                ));
            }
            lhs = Ast {
                start: lhs.start,
                end: rhs.end,
                kind: AstKind::Binary(op, Box::new(lhs), Box::new(rhs)),
            };
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<Ast> {
        let t = self.next();
        let lit = |l: Lit| AstKind::Lit(l);
        let kind = match &t.tok {
            Tok::Int(i) => lit(Lit::Int(*i)),
            Tok::Float(f) => lit(Lit::Float(*f)),
            Tok::Str(s) => lit(Lit::Text(s.clone())),
            Tok::QuotedIdent(s) => AstKind::Column(s.clone()),
            Tok::Op("-") => {
                let inner = self.expr(13)?;
                return Ok(Ast {
                    start: t.start,
                    end: inner.end,
                    kind: AstKind::Neg(Box::new(inner)),
                });
            }
            Tok::LParen => {
                let inner = self.expr(0)?;
                let close = self.next();
                if close.tok != Tok::RParen {
                    return Err(ExprError::new(
                        format!(
                            "expected ')' to close the '(', found {}",
                            describe(&close.tok)
                        ),
                        close.start,
                    ));
                }
                return Ok(Ast {
                    start: t.start,
                    end: close.end,
                    kind: inner.kind,
                });
            }
            Tok::Ident(name) => match keyword(&t.tok) {
                Some("true") => lit(Lit::Bool(true)),
                Some("false") => lit(Lit::Bool(false)),
                Some("null") => lit(Lit::Null),
                Some("not") => {
                    let inner = self.expr(5)?;
                    return Ok(Ast {
                        start: t.start,
                        end: inner.end,
                        kind: AstKind::Not(Box::new(inner)),
                    });
                }
                Some("if") => {
                    let cond = self.expr(0)?;
                    self.expect_keyword("then", "after the condition of `if`")?;
                    let then = self.expr(0)?;
                    self.expect_keyword(
                        "else",
                        "after `if … then …` (every `if` needs an `else`)",
                    )?;
                    let other = self.expr(0)?;
                    return Ok(Ast {
                        start: t.start,
                        end: other.end,
                        kind: AstKind::If(Box::new(cond), Box::new(then), Box::new(other)),
                    });
                }
                Some(kw) => {
                    return Err(ExprError::new(
                        format!(
                            "expected a value, found the keyword `{kw}` (quote a column with this name: \"{name}\")"
                        ),
                        t.start,
                    ));
                }
                None if self.peek().tok == Tok::LParen => {
                    self.next();
                    let mut args = Vec::new();
                    if self.peek().tok != Tok::RParen {
                        loop {
                            args.push(self.expr(0)?);
                            let sep = self.next();
                            match sep.tok {
                                Tok::Comma => continue,
                                Tok::RParen => break,
                                _ => {
                                    return Err(ExprError::new(
                                        format!(
                                            "expected ',' or ')' in the arguments of {name}, found {}",
                                            describe(&sep.tok)
                                        ),
                                        sep.start,
                                    ));
                                }
                            }
                        }
                    } else {
                        self.next();
                    }
                    let end = self.tokens[self.pos - 1].end;
                    return Ok(Ast {
                        start: t.start,
                        end,
                        kind: AstKind::Call(name.to_ascii_lowercase(), args),
                    });
                }
                None => AstKind::Column(name.clone()),
            },
            other => {
                return Err(ExprError::new(
                    format!("expected a value, found {}", describe(other)),
                    t.start,
                ));
            }
        };
        Ok(Ast {
            kind,
            start: t.start,
            end: t.end,
        })
    }
}

/// Parses `target = expression`.
pub fn parse_assignment(src: &str) -> Result<Assignment> {
    let tokens = lex(src)?;
    let mut p = Parser { tokens, pos: 0 };
    let first = p.next();
    let target = match &first.tok {
        Tok::Ident(name) if keyword(&first.tok).is_none() => name.clone(),
        Tok::QuotedIdent(name) => name.clone(),
        _ => {
            return Err(ExprError::new(
                "expected an assignment like `column = expression`",
                first.start,
            ));
        }
    };
    let eq = p.next();
    if eq.tok != Tok::Op("=") {
        return Err(ExprError::new(
            format!(
                "expected '=' after the column name, found {} (write `column = expression`)",
                describe(&eq.tok)
            ),
            eq.start,
        ));
    }
    if p.peek().tok == Tok::Eof {
        return Err(ExprError::new(
            "expected an expression after '='",
            p.peek().start,
        ));
    }
    let expr = p.expr(0)?;
    let rest = p.peek();
    if rest.tok != Tok::Eof {
        let hint = if rest.tok == Tok::RParen {
            "an unmatched ')'".to_string()
        } else {
            format!("{} (missing an operator or a comma?)", describe(&rest.tok))
        };
        return Err(ExprError::new(format!("unexpected {hint}"), rest.start));
    }
    Ok(Assignment { target, expr })
}
