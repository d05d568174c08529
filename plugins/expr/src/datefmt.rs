//! Date formats such as `MM/DD/YYYY`: parsed once at configure time, then
//! used to parse and print dates and timestamps. Calendar math is chrono's.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};
use std::fmt::Write;

/// Days from 0001-01-01 (day 1 of the common era) to 1970-01-01.
const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Year4,
    Year2,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Literal(char),
}

/// A parsed format string.
#[derive(Debug, Clone, PartialEq)]
pub struct DateFormat {
    text: String,
    items: Vec<Item>,
}

/// The tokens a format may use, for messages.
pub const TOKENS: &str = "YYYY, YY, MM, DD, HH, mm, ss";

impl DateFormat {
    /// Parses a format such as `YYYY-MM-DD HH:mm:ss`. Letters must form
    /// tokens; everything else is a literal separator.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            const TABLE: [(&str, Item); 7] = [
                ("YYYY", Item::Year4),
                ("YY", Item::Year2),
                ("MM", Item::Month),
                ("DD", Item::Day),
                ("HH", Item::Hour),
                ("mm", Item::Minute),
                ("ss", Item::Second),
            ];
            if let Some((tok, item)) = TABLE.iter().find(|(t, _)| rest.starts_with(t)) {
                items.push(*item);
                rest = &rest[tok.len()..];
            } else if c.is_alphabetic() && c != 'T' && c != 'Z' {
                // T and Z are the ISO 8601 separator and zone letters.
                return Err(format!(
                    "bad date format '{text}': unknown token starting at {c:?} (use {TOKENS}; \
                     months are MM, minutes are mm)"
                ));
            } else {
                items.push(Item::Literal(c));
                rest = &rest[c.len_utf8()..];
            }
        }
        if items.is_empty() {
            return Err(format!("the date format is empty (use {TOKENS})"));
        }
        Ok(DateFormat {
            text: text.to_string(),
            items,
        })
    }

    /// The format as written, e.g. `MM/DD/YYYY`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Checks the format can parse a full date: it needs a year, a month and
    /// a day.
    pub fn check_parses_date(&self) -> Result<(), String> {
        let has = |f: &dyn Fn(&Item) -> bool| self.items.iter().any(f);
        let mut missing = Vec::new();
        if !has(&|i| matches!(i, Item::Year4 | Item::Year2)) {
            missing.push("a year (YYYY or YY)");
        }
        if !has(&|i| *i == Item::Month) {
            missing.push("a month (MM)");
        }
        if !has(&|i| *i == Item::Day) {
            missing.push("a day (DD)");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "the date format '{}' lacks {}",
                self.text,
                missing.join(" and ")
            ))
        }
    }

    /// Parses `input` (surrounding spaces ignored); `None` when it does not
    /// match the format or is not a real date or time.
    pub fn parse_datetime(&self, input: &str) -> Option<NaiveDateTime> {
        let s = input.trim().as_bytes();
        let mut pos = 0;
        let (mut year, mut month, mut day) = (1970i32, 1u32, 1u32);
        let (mut hour, mut minute, mut second) = (0u32, 0u32, 0u32);
        for (n, item) in self.items.iter().enumerate() {
            // A field followed directly by another field must have all its
            // digits (YYYYMMDD); otherwise 1 or 2 digits are fine (3/5/2020).
            let next_is_field =
                matches!(self.items.get(n + 1), Some(i) if !matches!(i, Item::Literal(_)));
            let mut digits = |min: usize, max: usize| -> Option<u32> {
                let min = if next_is_field { max } else { min };
                let mut v = 0u32;
                let mut count = 0;
                while count < max && pos < s.len() && s[pos].is_ascii_digit() {
                    v = v * 10 + u32::from(s[pos] - b'0');
                    pos += 1;
                    count += 1;
                }
                (count >= min).then_some(v)
            };
            match item {
                Item::Year4 => year = i32::try_from(digits(4, 4)?).ok()?,
                Item::Year2 => {
                    let y = i32::try_from(digits(2, 2)?).ok()?;
                    // POSIX strptime: 69–99 are 19xx, 00–68 are 20xx.
                    year = if y >= 69 { 1900 + y } else { 2000 + y };
                }
                Item::Month => month = digits(1, 2)?,
                Item::Day => day = digits(1, 2)?,
                Item::Hour => hour = digits(1, 2)?,
                Item::Minute => minute = digits(1, 2)?,
                Item::Second => second = digits(1, 2)?,
                Item::Literal(c) => {
                    let mut buf = [0u8; 4];
                    let lit = c.encode_utf8(&mut buf).as_bytes();
                    if !s[pos..].starts_with(lit) {
                        return None;
                    }
                    pos += lit.len();
                }
            }
        }
        if pos != s.len() {
            return None;
        }
        let date = NaiveDate::from_ymd_opt(year, month, day)?;
        let time = NaiveTime::from_hms_opt(hour, minute, second)?;
        Some(NaiveDateTime::new(date, time))
    }

    /// Prints a date and time in this format.
    pub fn format(&self, dt: &NaiveDateTime, out: &mut String) {
        for item in &self.items {
            // Writing to a String cannot fail.
            let _ = match item {
                Item::Year4 => write!(out, "{:04}", dt.year()),
                Item::Year2 => write!(out, "{:02}", dt.year().rem_euclid(100)),
                Item::Month => write!(out, "{:02}", dt.month()),
                Item::Day => write!(out, "{:02}", dt.day()),
                Item::Hour => write!(out, "{:02}", dt.hour()),
                Item::Minute => write!(out, "{:02}", dt.minute()),
                Item::Second => write!(out, "{:02}", dt.second()),
                Item::Literal(c) => {
                    out.push(*c);
                    Ok(())
                }
            };
        }
    }
}

/// The date `days` after 1970-01-01.
pub fn date_from_days(days: i32) -> Option<NaiveDate> {
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(UNIX_EPOCH_DAYS_FROM_CE)?)
}

/// Days since 1970-01-01 of `date`.
pub fn days_from_date(date: NaiveDate) -> i32 {
    date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE
}

/// The date and time `micros` microseconds after 1970-01-01T00:00:00.
pub fn datetime_from_micros(micros: i64) -> Option<NaiveDateTime> {
    DateTime::from_timestamp_micros(micros).map(|d| d.naive_utc())
}

/// Microseconds since 1970-01-01T00:00:00 of `dt`.
pub fn micros_from_datetime(dt: &NaiveDateTime) -> i64 {
    dt.and_utc().timestamp_micros()
}

/// Days since the epoch of the date containing `micros`.
pub fn days_from_micros(micros: i64) -> i32 {
    // |i64::MAX µs| / 86_400e6 ≈ 1.07e8 days, well within i32.
    micros.div_euclid(86_400_000_000) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_common_formats() {
        let f = DateFormat::parse("MM/DD/YYYY").unwrap();
        let dt = f.parse_datetime("03/05/2020").unwrap();
        assert_eq!(dt.to_string(), "2020-03-05 00:00:00");
        assert_eq!(f.parse_datetime("3/5/2020"), Some(dt));
        assert_eq!(f.parse_datetime("13/45/2020"), None);
        assert_eq!(f.parse_datetime("02/30/2020"), None);
        assert_eq!(f.parse_datetime("03/05/2020x"), None);
        let mut s = String::new();
        f.format(&dt, &mut s);
        assert_eq!(s, "03/05/2020");

        let f = DateFormat::parse("YYYYMMDD").unwrap();
        assert_eq!(f.parse_datetime("20200305"), Some(dt));
        assert_eq!(f.parse_datetime("202035"), None);

        let f = DateFormat::parse("DD.MM.YY HH:mm:ss").unwrap();
        let dt = f.parse_datetime("05.03.69 23:59:01").unwrap();
        assert_eq!(dt.to_string(), "1969-03-05 23:59:01");
        assert_eq!(f.parse_datetime("05.03.68 24:00:00"), None);
        assert_eq!(
            f.parse_datetime("05.03.68 00:00:00").unwrap().to_string(),
            "2068-03-05 00:00:00"
        );
    }

    #[test]
    fn rejects_unknown_tokens_and_incomplete_date_formats() {
        let e = DateFormat::parse("YYYY-Mo-DD").unwrap_err();
        assert!(e.contains("unknown token starting at 'M'"), "{e}");
        assert!(DateFormat::parse("").is_err());
        let e = DateFormat::parse("MM/YYYY")
            .unwrap()
            .check_parses_date()
            .unwrap_err();
        assert_eq!(e, "the date format 'MM/YYYY' lacks a day (DD)");
    }

    #[test]
    fn epoch_conversions() {
        let d = NaiveDate::from_ymd_opt(1970, 1, 2).unwrap();
        assert_eq!(days_from_date(d), 1);
        assert_eq!(date_from_days(-1).unwrap().to_string(), "1969-12-31");
        assert_eq!(days_from_micros(-1), -1);
        let dt = datetime_from_micros(1_500_000).unwrap();
        assert_eq!(micros_from_datetime(&dt), 1_500_000);
    }
}
