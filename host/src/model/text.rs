//! Text that came from data or a plugin, made safe to print and to keep:
//! no control character or bidirectional mark reaches a terminal as such
//! (an escape sequence could retitle the window, clear the screen or forge
//! a line of ours), and no message grows without bound.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The most bytes of untrusted text kept in one message.
pub const MAX_TEXT: usize = 4096;

/// Whether `c` must not reach a terminal as itself: C0 and C1 controls, DEL,
/// and the marks that reorder text on screen.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character written as an escape (`\n`, `\e`,
/// `\u{202e}`), cut to [`MAX_TEXT`] bytes with a note of what was left out.
pub fn untrusted(text: &str) -> Cow<'_, str> {
    if text.len() <= MAX_TEXT && !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len().min(MAX_TEXT) + 16);
    for (i, c) in text.char_indices() {
        if out.len() >= MAX_TEXT {
            let _ = write!(out, "… ({} more bytes)", text.len() - i);
            break;
        }
        escape_into(&mut out, c);
    }
    Cow::Owned(out)
}

/// A line we print whose parts may hold untrusted text: terminal controls
/// are escaped, but its own line breaks and tabs stay.
pub fn for_terminal(line: &str) -> Cow<'_, str> {
    let bad = |c: char| unsafe_char(c) && c != '\n' && c != '\t';
    if !line.chars().any(bad) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 8);
    for c in line.chars() {
        match bad(c) {
            true => escape_into(&mut out, c),
            false => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\u{1b}' => out.push_str("\\e"),
        c if unsafe_char(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_and_marks_are_shown_not_obeyed() {
        let header = "\u{1b}]0;pwned\u{7}\u{1b}[2Jd\nmigration `x` run 1 succeeded";
        assert_eq!(
            untrusted(header),
            "\\e]0;pwned\\u{7}\\e[2Jd\\nmigration `x` run 1 succeeded"
        );
        assert_eq!(
            untrusted("a\u{202e}b\u{0}c\u{85}"),
            "a\\u{202e}b\\u{0}c\\u{85}"
        );
        assert!(matches!(untrusted("plain ünïcode ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_text_is_cut_with_what_was_left_out() {
        let long = "x".repeat(MAX_TEXT + 100);
        let cut = untrusted(&long);
        assert!(cut.len() < MAX_TEXT + 40, "{}", cut.len());
        assert!(cut.ends_with("… (100 more bytes)"), "{cut}");
    }

    #[test]
    fn a_printed_line_keeps_its_own_breaks() {
        assert_eq!(for_terminal("a\n\tb\u{1b}[2J"), "a\n\tb\\e[2J");
    }
}
