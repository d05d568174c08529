//! Standard SQL string literals (`'it''s'`), as PostgreSQL and SQLite
//! write them in their catalogues. (MariaDB also undoes backslash escapes:
//! its schema reader has its own.)

/// A leading SQL string literal, unquoted, and the text after it.
pub(crate) fn quoted(sql: &str) -> Option<(String, &str)> {
    let body = sql.strip_prefix('\'')?;
    let mut value = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '\'' {
            value.push(c);
        } else if chars.peek().is_some_and(|(_, n)| *n == '\'') {
            value.push('\'');
            chars.next();
        } else {
            return Some((value, &body[i + 1..]));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::quoted;

    #[test]
    fn a_literal_is_unquoted_with_its_doubled_quotes_and_the_rest_kept() {
        assert_eq!(
            quoted("'it''s'::text"),
            Some(("it's".to_string(), "::text"))
        );
        assert_eq!(quoted("''"), Some((String::new(), "")));
        assert_eq!(quoted("'open"), None);
        assert_eq!(quoted("now()"), None);
    }
}
