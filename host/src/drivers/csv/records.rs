//! Reading CSV records line by line with strict quoting, so that a broken
//! line is one row error rather than a silent change to the rows after it.
//!
//! Records are RFC 4180: fields split at the delimiter, a field that starts
//! with `"` is quoted (`""` inside is one quote, line breaks are kept), a
//! quote inside an unquoted field is an ordinary character, lines end at
//! `\n` or `\r\n`, blank lines are skipped, and a UTF-8 byte-order mark at
//! the start is dropped. Strict where lenient readers guess:
//!
//! - a quote still open at the end of the file is an error naming the line
//!   where it opened;
//! - a closing quote must be followed by the delimiter or the end of the
//!   line;
//! - a quoted field that runs over a whole line without any quote that
//!   reads as a record of the header's width (two columns or more) has run
//!   away: its opening quote is missing its closing one;
//! - a quoted field longer than [`MAX_FIELD_BYTES`] has run away too.
//!
//! After any of these the reader starts again at the line after the one
//! where the quote opened, so the lines it had taken into the field are
//! read as the records they are.

use std::collections::VecDeque;
use std::io::BufRead;

/// The longest quoted field read; longer ones are taken for a runaway
/// quote (and memory stays bounded).
pub(super) const MAX_FIELD_BYTES: usize = 64 << 20;

/// One physical line, with its line break.
struct Line {
    /// Its 1-based number in the file.
    number: u64,
    /// Its bytes, the line break (`\n` or `\r\n`) included if it has one.
    bytes: Vec<u8>,
}

impl Line {
    /// The bytes without the line break.
    fn content(&self) -> &[u8] {
        let b = &self.bytes[..];
        let b = b.strip_suffix(b"\n").unwrap_or(b);
        b.strip_suffix(b"\r")
            .filter(|_| b.len() < self.bytes.len())
            .unwrap_or(b)
    }

    /// The line break.
    fn end(&self) -> &[u8] {
        &self.bytes[self.content().len()..]
    }
}

/// A record as read: its fields' raw bytes, or why it could not be read.
#[derive(Debug, PartialEq)]
pub(super) enum Record {
    /// A well-formed record starting at `line`.
    Fields { line: u64, fields: Vec<Vec<u8>> },
    /// A record whose quoting is broken: `fields` are those read before
    /// the quoted field in column `column` (0-based) that opened at
    /// `line`.
    Broken {
        line: u64,
        fields: Vec<Vec<u8>>,
        column: usize,
        message: String,
    },
}

/// Reads records from CSV text.
pub(super) struct Records<R> {
    input: R,
    delimiter: u8,
    /// The header's field count once known: the runaway rule needs it.
    width: Option<usize>,
    /// Lines read, the last one's number.
    lines: u64,
    /// Lines to read again (after a runaway quote), in order.
    pending: VecDeque<Line>,
}

/// How a quoted field ended.
enum Quoted {
    /// Closed; reading goes on in `line` at byte `at`. `taken` are the
    /// lines after the opening one that the field took in before `line`.
    Closed {
        line: Line,
        at: usize,
        taken: Vec<Line>,
    },
    /// Broken; the message says why, and `lines` are the lines after the
    /// opening one that the field took in, to be read again.
    Broken { message: String, lines: Vec<Line> },
}

impl<R: BufRead> Records<R> {
    /// A reader of records separated by `delimiter`.
    pub fn new(input: R, delimiter: u8) -> Self {
        Self {
            input,
            delimiter,
            width: None,
            lines: 0,
            pending: VecDeque::new(),
        }
    }

    /// Sets the header's field count, which the runaway rule compares with.
    pub fn set_width(&mut self, width: usize) {
        self.width = Some(width);
    }

    /// The number of the last line read.
    pub fn line(&self) -> u64 {
        self.lines
    }

    /// The next record, `None` at the end of the file.
    pub fn next_record(&mut self) -> std::io::Result<Option<Record>> {
        loop {
            let Some(line) = self.next_line()? else {
                return Ok(None);
            };
            if line.content().is_empty() {
                continue;
            }
            return self.record(line).map(Some);
        }
    }

    fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        if let Some(line) = self.pending.pop_front() {
            return Ok(Some(line));
        }
        let mut bytes = Vec::new();
        if self.input.read_until(b'\n', &mut bytes)? == 0 {
            return Ok(None);
        }
        self.lines += 1;
        if self.lines == 1 && bytes.starts_with(b"\xEF\xBB\xBF") {
            bytes.drain(..3);
        }
        Ok(Some(Line {
            number: self.lines,
            bytes,
        }))
    }

    /// Reads the record that starts with `line`.
    fn record(&mut self, mut line: Line) -> std::io::Result<Record> {
        let start = line.number;
        let mut fields = Vec::new();
        let mut at = 0;
        loop {
            let content = line.content();
            if content.get(at) != Some(&b'"') {
                let rest = &content[at..];
                match rest.iter().position(|b| *b == self.delimiter) {
                    Some(d) => {
                        fields.push(rest[..d].to_vec());
                        at += d + 1;
                        continue;
                    }
                    None => {
                        fields.push(rest.to_vec());
                        return Ok(Record::Fields {
                            line: start,
                            fields,
                        });
                    }
                }
            }
            let column = fields.len();
            let opened = line.number;
            let mut field = Vec::new();
            match self.quoted(line, at + 1, &mut field)? {
                Quoted::Closed {
                    line: l,
                    at: a,
                    taken,
                } => {
                    fields.push(field);
                    let content = l.content();
                    match content.get(a) {
                        None => {
                            return Ok(Record::Fields {
                                line: start,
                                fields,
                            });
                        }
                        Some(&d) if d == self.delimiter => {
                            line = l;
                            at = a + 1;
                        }
                        Some(_) => {
                            let message = format!(
                                "the quote that opens column {} at line {opened} closes at line {} followed by {:?} instead of the delimiter or the line's end; a quote inside a quoted field is written twice (\"\")",
                                column + 1,
                                l.number,
                                String::from_utf8_lossy(&content[a..(a + 20).min(content.len())])
                            );
                            if l.number != opened {
                                self.read_again(taken.into_iter().chain([l]).collect());
                            }
                            return Ok(Record::Broken {
                                line: start,
                                fields: fields[..column].to_vec(),
                                column,
                                message,
                            });
                        }
                    }
                }
                Quoted::Broken { message, lines } => {
                    self.read_again(lines);
                    fields.truncate(column);
                    return Ok(Record::Broken {
                        line: start,
                        fields,
                        column,
                        message,
                    });
                }
            }
        }
    }

    /// Reads a quoted field into `field`, from byte `at` of `line` (just
    /// after the opening quote).
    fn quoted(
        &mut self,
        mut line: Line,
        mut at: usize,
        field: &mut Vec<u8>,
    ) -> std::io::Result<Quoted> {
        let opened = line.number;
        let mut taken: Vec<Line> = Vec::new();
        loop {
            let content = line.content();
            match content[at..].iter().position(|b| *b == b'"') {
                Some(q) => {
                    field.extend_from_slice(&content[at..at + q]);
                    at += q + 1;
                    if content.get(at) == Some(&b'"') {
                        field.push(b'"');
                        at += 1;
                        continue;
                    }
                    // Lines between the opening and the closing one are
                    // part of the field; the closing line goes on.
                    taken.retain(|l| l.number != opened);
                    return Ok(Quoted::Closed { line, at, taken });
                }
                None => {
                    field.extend_from_slice(&content[at..]);
                    field.extend_from_slice(line.end());
                }
            }
            if field.len() > MAX_FIELD_BYTES {
                taken.push(line);
                taken.retain(|l| l.number != opened);
                let message = format!(
                    "the quote that opens at line {opened} is not closed within {} MiB; a quoted field ends with a quote followed by the delimiter or the line's end",
                    MAX_FIELD_BYTES >> 20
                );
                return Ok(Quoted::Broken {
                    message,
                    lines: taken,
                });
            }
            let Some(next) = self.next_line()? else {
                taken.push(line);
                taken.retain(|l| l.number != opened);
                let message = format!(
                    "the quote that opens at line {opened} is never closed (the file ends inside it); add the closing quote or remove the opening one"
                );
                return Ok(Quoted::Broken {
                    message,
                    lines: taken,
                });
            };
            if self.reads_as_record(next.content()) {
                let number = next.number;
                taken.push(line);
                taken.push(next);
                taken.retain(|l| l.number != opened);
                let message = format!(
                    "the quote that opens at line {opened} is not closed before line {number}, which reads as a record of its own; add the closing quote or remove the opening one"
                );
                return Ok(Quoted::Broken {
                    message,
                    lines: taken,
                });
            }
            taken.push(std::mem::replace(&mut line, next));
            at = 0;
        }
    }

    /// Puts lines back to be read before any other, in their order.
    fn read_again(&mut self, lines: Vec<Line>) {
        for line in lines.into_iter().rev() {
            self.pending.push_front(line);
        }
    }

    /// Whether a line inside a quoted field looks like a whole record: no
    /// quote at all, and the header's number of fields (two or more).
    fn reads_as_record(&self, content: &[u8]) -> bool {
        let Some(width) = self.width.filter(|w| *w >= 2) else {
            return false;
        };
        !content.contains(&b'"')
            && content.iter().filter(|b| **b == self.delimiter).count() + 1 == width
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str, width: Option<usize>) -> Vec<Record> {
        let mut records = Records::new(text.as_bytes(), b',');
        if let Some(w) = width {
            records.set_width(w);
        }
        let mut out = Vec::new();
        while let Some(r) = records.next_record().expect("reading from memory") {
            out.push(r);
        }
        out
    }

    fn fields(line: u64, fields: &[&str]) -> Record {
        Record::Fields {
            line,
            fields: fields.iter().map(|f| f.as_bytes().to_vec()).collect(),
        }
    }

    fn broken_at(records: &[Record]) -> Vec<(u64, String)> {
        records
            .iter()
            .filter_map(|r| match r {
                Record::Broken { line, message, .. } => Some((*line, message.clone())),
                Record::Fields { .. } => None,
            })
            .collect()
    }

    #[test]
    fn quoted_fields_keep_delimiters_quotes_and_line_breaks() {
        let got = read(
            "\u{feff}a,b\r\n\"x,1\",\"say \"\"hi\"\"\"\n\n\"two\r\nlines\",\n,\"\"\n",
            Some(2),
        );
        assert_eq!(
            got,
            [
                fields(1, &["a", "b"]),
                fields(2, &["x,1", "say \"hi\""]),
                fields(4, &["two\r\nlines", ""]),
                fields(6, &["", ""]),
            ]
        );
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_is_a_character() {
        assert_eq!(
            read("a,b\n5\" disk,x\n", Some(2))[1],
            fields(2, &["5\" disk", "x"])
        );
    }

    #[test]
    fn a_runaway_quote_is_one_broken_record_and_the_lines_after_it_are_read() {
        let got = read("id,n\n1,\"a\n2,b\n3,c\n", Some(2));
        assert_eq!(got.len(), 4);
        assert_eq!(got[2], fields(3, &["2", "b"]));
        assert_eq!(got[3], fields(4, &["3", "c"]));
        let Record::Broken {
            line,
            fields,
            column,
            message,
        } = &got[1]
        else {
            panic!("{got:?}")
        };
        assert_eq!(
            (*line, fields.clone(), *column),
            (2, vec![b"1".to_vec()], 1)
        );
        assert!(
            message.contains("opens at line 2 is not closed before line 3"),
            "{message}"
        );
    }

    #[test]
    fn a_quote_open_at_the_end_of_the_file_names_its_line() {
        // One column: no line reads as a record, so only the end tells.
        let got = read("n\nx\n\"y\nz\n", Some(1));
        let broken = broken_at(&got);
        assert_eq!(broken.len(), 1, "{got:?}");
        assert_eq!(broken[0].0, 3);
        assert!(
            broken[0].1.contains("opens at line 3 is never closed"),
            "{}",
            broken[0].1
        );
        assert_eq!(got.last(), Some(&fields(4, &["z"])));
    }

    #[test]
    fn text_after_a_closing_quote_is_refused() {
        let got = read("a,b\n\"x\"y,1\n2,3\n", Some(2));
        let broken = broken_at(&got);
        assert_eq!(broken.len(), 1);
        assert!(
            broken[0].1.contains("followed by \"y,1\""),
            "{}",
            broken[0].1
        );
        assert_eq!(got[2], fields(3, &["2", "3"]));
    }

    #[test]
    fn a_multi_line_field_with_lines_unlike_records_is_kept() {
        let got = read(
            "id,note,x\n1,\"Dear Sir,\nthanks\n\nbye\",z\n2,b,c\n",
            Some(3),
        );
        assert_eq!(got[1], fields(2, &["1", "Dear Sir,\nthanks\n\nbye", "z"]));
        assert_eq!(got[2], fields(6, &["2", "b", "c"]));
    }
}
