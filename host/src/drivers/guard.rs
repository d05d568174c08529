//! The statement guard of read-only grants: refuses statements that reach
//! files or server-wide settings, which a read-only transaction does not
//! stop (PostgreSQL runs `COPY … TO PROGRAM` and `pg_read_file` in one;
//! MariaDB runs `SELECT … INTO OUTFILE`, `LOAD_FILE` and `SET GLOBAL`).
//!
//! It reads the statement as the server's lexer would (comments, string
//! literals, quoted identifiers, case) and looks at its words, never at
//! raw text, so `/* */`, `--`, odd case or spacing do not hide a word, and
//! a word inside a string does not count. It is a second line: a function
//! called through dynamic SQL escapes it, so the real protection is a
//! database user without superuser, FILE or SUPER privileges (checked when
//! the grant's connection opens).

/// Which server's lexical rules a statement follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// PostgreSQL (standard-conforming strings, which the host sets).
    Postgres,
    /// MySQL and MariaDB (backslash escapes, `#` comments).
    Mysql,
}

/// PostgreSQL words that reach the server's files, programs, other
/// servers or its running state.
const PG_REFUSED: &[&str] = &[
    "copy",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_ls_logdir",
    "pg_ls_waldir",
    "pg_ls_tmpdir",
    "pg_ls_archive_statusdir",
    "pg_ls_logicalsnapdir",
    "pg_ls_logicalmapdir",
    "pg_ls_replslotdir",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "lo_import",
    "lo_export",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_promote",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
];

/// PostgreSQL word prefixes refused (every `dblink…` function).
const PG_REFUSED_PREFIXES: &[&str] = &["dblink"];

/// PostgreSQL statements refused by their first word: anonymous code
/// blocks (dynamic SQL) and loading a shared library.
const PG_REFUSED_FIRST: &[&str] = &["do", "load"];

/// MySQL/MariaDB words that reach the server's files or its global
/// settings, or change how the next statement is read.
const MY_REFUSED: &[&str] = &[
    "outfile",
    "dumpfile",
    "load_file",
    "global",
    "persist",
    "persist_only",
    "sql_mode",
    "shutdown",
    "kill",
    "flush",
    "install",
    "uninstall",
    "soname",
];

/// MySQL/MariaDB statements refused by their first word and the word after
/// it: `LOAD DATA`/`LOAD XML` read server or client files; `SET ROLE`,
/// `SET DEFAULT ROLE` and `SET PASSWORD` change the session's powers or the
/// account.
const MY_REFUSED_PAIRS: &[(&str, &str)] = &[
    ("load", "data"),
    ("load", "xml"),
    ("load", "index"),
    ("set", "role"),
    ("set", "default"),
    ("set", "password"),
];

/// Why a read-only grant refuses `sql`, or `None` when it may run.
pub(crate) fn refusal(sql: &str, dialect: Dialect) -> Option<String> {
    let words = match words(sql, dialect) {
        Ok(words) => words,
        Err(why) => return Some(why.to_string()),
    };
    let first = words.first().map(String::as_str);
    let second = words.get(1).map(String::as_str);
    match dialect {
        Dialect::Postgres => pg_refusal(&words, first),
        Dialect::Mysql => my_refusal(&words, first, second),
    }
}

fn pg_refusal(words: &[String], first: Option<&str>) -> Option<String> {
    if let Some(first) = first.filter(|f| PG_REFUSED_FIRST.contains(f)) {
        return Some(format!("`{}` statements", first.to_uppercase()));
    }
    words
        .iter()
        .find(|w| {
            PG_REFUSED.contains(&w.as_str()) || PG_REFUSED_PREFIXES.iter().any(|p| w.starts_with(p))
        })
        .map(|w| format!("`{w}`"))
}

fn my_refusal(words: &[String], first: Option<&str>, second: Option<&str>) -> Option<String> {
    if let (Some(first), Some(second)) = (first, second)
        && MY_REFUSED_PAIRS.contains(&(first, second))
    {
        return Some(format!(
            "`{} {}`",
            first.to_uppercase(),
            second.to_uppercase()
        ));
    }
    words
        .iter()
        .map(|w| w.trim_start_matches('@'))
        .find(|w| MY_REFUSED.contains(w))
        .map(|w| format!("`{w}`"))
}

/// What the guard cannot read safely, so it refuses the statement; its
/// text is the refusal a read-only grant gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
enum GuardError {
    /// PostgreSQL's `U&"…"`, whose escapes could spell any name.
    #[error("Unicode-escaped names (`U&\"…\"`)")]
    UnicodeName,
    /// MySQL's `/*! */` and `/*M! */`, whose text the server runs.
    #[error("executable comments (`/*! … */`)")]
    ExecutableComment,
    /// A `/*` without its `*/`.
    #[error("an unterminated comment")]
    UnterminatedComment,
    /// A quote without its closing quote.
    #[error("an unterminated quoted string or name")]
    UnterminatedQuote,
    /// A `$tag$` without its closing tag.
    #[error("an unterminated dollar-quoted string")]
    UnterminatedDollar,
}

/// The statement's words (keywords, names, quoted identifiers), lowercased,
/// outside comments and string literals; an error for what cannot be read
/// safely (an unterminated comment, MySQL's executable comments).
fn words(sql: &str, dialect: Dialect) -> Result<Vec<String>, GuardError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        i = match (c, next) {
            ('-', Some('-')) if line_comment(&chars, i, dialect) => skip_line(&chars, i),
            ('#', _) if dialect == Dialect::Mysql => skip_line(&chars, i),
            ('/', Some('*')) => skip_block(&chars, i, dialect)?,
            ('\'', _) => {
                let escapes = dialect == Dialect::Mysql || e_prefix(&chars, i);
                skip_quoted(&chars, i, '\'', escapes)?
            }
            ('"', _) if dialect == Dialect::Mysql => {
                // A string, or an identifier under ANSI_QUOTES (where a
                // backslash escapes nothing): count the words inside too,
                // which only ever refuses more.
                let end = skip_quoted(&chars, i, '"', true)?;
                let text = inner(&chars, i, end);
                words.push(text.clone());
                words.extend(
                    text.split(|c| !is_word(c, dialect))
                        .filter(|w| !w.is_empty())
                        .map(str::to_string),
                );
                end
            }
            ('"', _) if dialect == Dialect::Postgres && unicode_prefix(&chars, i) => {
                return Err(GuardError::UnicodeName);
            }
            ('"', _) | ('`', _) => {
                let end = skip_quoted(&chars, i, c, false)?;
                words.push(inner(&chars, i, end));
                end
            }
            ('$', _) if dialect == Dialect::Postgres && !after_word(&chars, i) => {
                skip_dollar(&chars, i)?
            }
            _ if is_word(c, dialect) => {
                let end = (i..chars.len())
                    .find(|&j| !is_word(chars[j], dialect))
                    .unwrap_or(chars.len());
                words.push(chars[i..end].iter().collect::<String>().to_lowercase());
                end
            }
            _ => i + 1,
        };
    }
    Ok(words)
}

fn is_word(c: char, dialect: Dialect) -> bool {
    c.is_alphanumeric() || c == '_' || c == '$' || (c == '@' && dialect == Dialect::Mysql)
}

/// Whether the character before `i` belongs to a word (then `$` is part
/// of a name or a parameter, not a dollar quote).
fn after_word(chars: &[char], i: usize) -> bool {
    i > 0 && is_word(chars[i - 1], Dialect::Postgres)
}

/// Whether `--` at `i` starts a comment: always in PostgreSQL; in MySQL
/// only when followed by whitespace, a control character or the end.
fn line_comment(chars: &[char], i: usize, dialect: Dialect) -> bool {
    match dialect {
        Dialect::Postgres => true,
        Dialect::Mysql => chars
            .get(i + 2)
            .is_none_or(|c| c.is_whitespace() || c.is_control()),
    }
}

fn skip_line(chars: &[char], i: usize) -> usize {
    (i..chars.len())
        .find(|&j| chars[j] == '\n')
        .unwrap_or(chars.len())
}

/// Past a `/* */` comment (nested in PostgreSQL). MySQL runs the text of
/// `/*! */` and `/*M! */`, so those are refused rather than read.
fn skip_block(chars: &[char], start: usize, dialect: Dialect) -> Result<usize, GuardError> {
    if dialect == Dialect::Mysql && matches!(chars.get(start + 2), Some('!' | 'M' | 'm')) {
        let executable = chars.get(start + 2) == Some(&'!') || chars.get(start + 3) == Some(&'!');
        if executable {
            return Err(GuardError::ExecutableComment);
        }
    }
    let mut depth = 0;
    let mut i = start;
    while i + 1 < chars.len() {
        match (chars[i], chars[i + 1]) {
            ('/', '*') if depth == 0 || dialect == Dialect::Postgres => {
                depth += 1;
                i += 2;
            }
            ('*', '/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return Ok(i);
                }
            }
            _ => i += 1,
        }
    }
    Err(GuardError::UnterminatedComment)
}

/// Whether the quote at `i` opens a PostgreSQL Unicode-escaped name
/// (`U&"…"`), whose escapes could spell any name.
fn unicode_prefix(chars: &[char], i: usize) -> bool {
    i >= 2 && chars[i - 1] == '&' && matches!(chars[i - 2], 'u' | 'U')
}

/// Whether the quote at `i` opens a PostgreSQL escape string (`E'…'`).
fn e_prefix(chars: &[char], i: usize) -> bool {
    i > 0
        && matches!(chars[i - 1], 'e' | 'E')
        && (i < 2 || !is_word(chars[i - 2], Dialect::Postgres))
}

/// Past a quoted literal or identifier opened at `start`; the quote doubled
/// stands for itself, and a backslash escapes the next character where
/// `escapes`.
fn skip_quoted(
    chars: &[char],
    start: usize,
    quote: char,
    escapes: bool,
) -> Result<usize, GuardError> {
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if escapes => i += 2,
            c if c == quote && chars.get(i + 1) == Some(&quote) => i += 2,
            c if c == quote => return Ok(i + 1),
            _ => i += 1,
        }
    }
    Err(GuardError::UnterminatedQuote)
}

/// The text between the quotes of a literal that ends before `end`,
/// lowercased.
fn inner(chars: &[char], start: usize, end: usize) -> String {
    let last = end.saturating_sub(1).max(start + 1);
    chars[start + 1..last]
        .iter()
        .collect::<String>()
        .to_lowercase()
}

/// Past a dollar-quoted string (`$$…$$`, `$tag$…$tag$`); a `$` that opens
/// none (a parameter `$1`) is passed over.
fn skip_dollar(chars: &[char], start: usize) -> Result<usize, GuardError> {
    let tag_end =
        (start + 1..chars.len()).find(|&j| !(chars[j].is_alphanumeric() || chars[j] == '_'));
    let Some(tag_end) = tag_end.filter(|&j| chars[j] == '$') else {
        return Ok(start + 1);
    };
    if chars.get(start + 1).is_some_and(|c| c.is_ascii_digit()) {
        return Ok(start + 1);
    }
    let tag = &chars[start..=tag_end];
    let body = tag_end + 1;
    (body..chars.len())
        .find(|&j| chars[j..].starts_with(tag))
        .map(|j| j + tag.len())
        .ok_or(GuardError::UnterminatedDollar)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(sql: &str) -> Option<String> {
        refusal(sql, Dialect::Postgres)
    }

    fn my(sql: &str) -> Option<String> {
        refusal(sql, Dialect::Mysql)
    }

    #[test]
    fn postgres_file_and_program_access_is_refused_however_written() {
        for sql in [
            "COPY (SELECT 1) TO PROGRAM 'touch /tmp/x'",
            "  /* hi */ copy t TO '/tmp/x'",
            "-- a comment\nCoPy t FROM PROGRAM 'id'",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_catalog.PG_READ_FILE ('/etc/passwd')",
            "SELECT \"pg_read_file\"('/etc/passwd')",
            "SELECT /* x */pg_read_binary_file/**/('/etc/passwd')",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT lo_export(1, '/tmp/x')",
            "SELECT * FROM dblink('host=x', 'select 1') AS t(a int)",
            "SELECT query_to_xml('select 1', true, false, '')",
            "DO $$ BEGIN EXECUTE 'select 1'; END $$",
            "LOAD 'auto_explain'",
            "SELECT 'a' /* /* nested */ */, pg_stat_file('x')",
            "SELECT E'it\\'s', pg_read_file('x')",
        ] {
            assert!(pg(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn postgres_reads_pass_and_words_in_strings_do_not_count() {
        for sql in [
            "SELECT code, name FROM countries WHERE code = $1",
            "SELECT 'COPY pg_read_file' AS note",
            "SELECT $tag$ copy $tag$, $$pg_read_file$$",
            "SELECT 1 -- copy",
            "SELECT copied, copy_count FROM t",
            "INSERT INTO planted VALUES (1)",
        ] {
            assert_eq!(pg(sql), None, "{sql}");
        }
    }

    #[test]
    fn mysql_files_and_global_settings_are_refused_however_written() {
        for sql in [
            "SELECT 1 INTO OUTFILE '/tmp/x'",
            "select 1 into/**/dumpfile '/tmp/x'",
            "SELECT LOAD_FILE('/etc/passwd')",
            "SELECT load_file ('/etc/passwd')",
            "SELECT `load_file`('/etc/passwd')",
            "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
            "load  /* x */ xml infile 'a' into table t",
            "SET GLOBAL max_connections = 10",
            "set @@GLOBAL.max_connections = 10",
            "SET @@global.max_connections=10",
            "SET PERSIST max_connections = 10",
            "SET sql_mode = 'NO_BACKSLASH_ESCAPES'",
            "SET ROLE admin",
            "SELECT 1 /*!50000 INTO OUTFILE '/tmp/x' */",
            "SELECT 1 /*M! INTO OUTFILE '/tmp/x' */",
            "SELECT 'a\\'' , LOAD_FILE('/etc/passwd')",
            "SELECT 1 #\n INTO OUTFILE '/tmp/x'",
            "SELECT 1 --1\n, load_file('x')",
            "SELECT 1 --1, load_file('x')",
            "SELECT \"a\\\" , load_file('x') -- \"",
        ] {
            assert!(my(sql).is_some(), "{sql}");
        }
    }

    #[test]
    fn mysql_reads_pass_and_words_in_strings_do_not_count() {
        for sql in [
            "SELECT code, name FROM countries WHERE code = ?",
            "SELECT 'INTO OUTFILE' AS note",
            "SELECT 1 -- load_file('x')",
            "SELECT 1 # SET GLOBAL x = 1",
            "SELECT 1 /* set global */",
            "SET SESSION max_statement_time = 1",
            "SELECT SLEEP(30)",
        ] {
            assert_eq!(my(sql), None, "{sql}");
        }
    }

    #[test]
    fn unreadable_statements_are_refused() {
        assert!(pg("SELECT 1 /* open").is_some());
        assert!(pg("SELECT 'open").is_some());
        assert!(pg("SELECT $x$ open").is_some());
        assert!(my("SELECT \"open").is_some());
        assert!(pg("SELECT U&\"pg\\005fread_file\"('x')").is_some());
    }
}
