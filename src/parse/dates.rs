//! The one date parser: every format's date text goes through here.
//!
//! Listing pages print dates in a handful of shapes: "Feb 5, 2024", "February 5, 2024",
//! "5 Feb 2024", "Mon, 05 Feb 2024 10:00:00 +0000" (RFC 2822), "2024-02-05" and
//! "2024-02-05T10:00:00Z" (ISO 8601 / RFC 3339), "Mar-5-2024" and, on pages about the
//! current year, yearless "May 7". Real captures also leave debris after a date: an
//! upvote count or a page number glued on by select-all ("Dec 19, 2025 1"). This module
//! reads all of those with one small hand-written scanner (no regex, no allocation on the
//! hot path), so every format agrees on what a date is.
//!
//! A yearless date gets the latest year that does not put it after the capture's
//! reference date: captured on 2026-01-03, "Dec 30" is 2025-12-30 and "Jan 2" is
//! 2026-01-02.
//!
//! [`parse_timestamp`] keeps a written time and zone as the instant they name
//! ("Tue, 19 May 2026 22:30:00 -0400" is 02:30 UTC on the 20th); a bare day is its
//! first instant in UTC. [`parse_date`] reads the calendar day alone, as written.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime};

use crate::entry::{day_start, Timestamp};

/// A date as written, before a yearless one is given its year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RawDate {
    /// A complete calendar date.
    Full(NaiveDate),
    /// Month (1-12) and day (1-31) without a year.
    Yearless {
        /// Month, 1-12.
        month: u32,
        /// Day of the month, 1-31.
        day: u32,
    },
}

impl RawDate {
    /// The calendar date, a yearless one resolved against `reference` (see [`resolve_yearless`]).
    pub fn resolve(self, reference: NaiveDate) -> Option<NaiveDate> {
        match self {
            RawDate::Full(date) => Some(date),
            RawDate::Yearless { month, day } => resolve_yearless(month, day, reference),
        }
    }
}

/// Parses text that is a date, optionally followed by debris (numbers, a time, a zone).
///
/// Returns `None` when the text does not start with a date, or when words follow the
/// date ("May 7 ways to ..." is a title, not a date).
pub fn parse_date(text: &str, reference: NaiveDate) -> Option<NaiveDate> {
    let (raw, rest) = parse_prefix(text)?;
    if !is_debris(rest) {
        return None;
    }
    raw.resolve(reference)
}

/// Parses a date that may carry a time and a zone, keeping the instant with its offset:
/// RFC 3339 / ISO 8601 ("2026-05-19T22:30:00-04:00"; without a zone, UTC), RFC 2822 with
/// numeric or named zones and two-digit years ("Thu, 07 Dec 17 10:00:29 -0800"). Any
/// other date [`parse_date`] reads is that day's first instant in UTC.
pub fn parse_timestamp(text: &str, reference: NaiveDate) -> Option<Timestamp> {
    let trimmed = text.trim();
    if trimmed.len() >= 11 {
        if let Ok(t) = DateTime::parse_from_rfc3339(trimmed) {
            return Some(t);
        }
        if let Ok(t) = DateTime::parse_from_rfc2822(trimmed) {
            return Some(t);
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(trimmed, format) {
                return Some(t.and_utc().fixed_offset());
            }
        }
    }
    parse_date(text, reference).map(day_start)
}

/// Like [`parse_date`] but without resolving a yearless date, for callers that need to
/// know whether the page gave a year (the tests' view of the prefix parser).
#[cfg(test)]
fn parse_raw(text: &str) -> Option<RawDate> {
    let (raw, rest) = parse_prefix(text)?;
    is_debris(rest).then_some(raw)
}

/// Finds the first date anywhere in running text ("Showing new listings for Monday,
/// 20 May 2024"); words may follow it. Tries each word start in turn.
pub fn find_date(text: &str, reference: NaiveDate) -> Option<NaiveDate> {
    let mut prev_alnum = false;
    for (i, ch) in text.char_indices() {
        let alnum = ch.is_alphanumeric();
        if alnum && !prev_alnum {
            if let Some(date) = text
                .get(i..)
                .and_then(parse_prefix)
                .and_then(|(raw, _)| raw.resolve(reference))
            {
                return Some(date);
            }
        }
        prev_alnum = alnum;
    }
    None
}

/// Parses a date with an explicit chrono format (`date_format` in a `selectors` source),
/// e.g. `"%d %B %Y"`. A format with a time and zone keeps the instant; one with a time
/// and no zone is UTC; a bare day is its first instant in UTC. Yearless formats like
/// `"%b %d"` resolve like yearless page dates.
pub fn parse_with_format(text: &str, format: &str, reference: NaiveDate) -> Option<Timestamp> {
    let text = text.trim();
    if let Ok(dt) = DateTime::parse_from_str(text, format) {
        return Some(dt);
    }
    if let Ok(dt) = NaiveDateTime::parse_from_str(text, format) {
        return Some(dt.and_utc().fixed_offset());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, format) {
        return Some(day_start(date));
    }
    // A format without a year: parse it in a leap year (so "Feb 29" exists), then
    // give it the year a yearless page date would get.
    let with_year = format!("{text} 2000");
    let format_with_year = format!("{format} %Y");
    let date = NaiveDate::parse_from_str(&with_year, &format_with_year).ok()?;
    resolve_yearless(date.month(), date.day(), reference).map(day_start)
}

/// The latest date with this month and day that is not after `reference`: the year a
/// listing page means when it prints "May 7" without one. Feb 29 gets the latest leap
/// year not after `reference`.
pub fn resolve_yearless(month: u32, day: u32, reference: NaiveDate) -> Option<NaiveDate> {
    // Eight years back always reaches a leap year (1900-style century gaps included).
    (0..=8).find_map(|back| {
        let year = reference.year().checked_sub(back)?;
        NaiveDate::from_ymd_opt(year, month, day).filter(|d| *d <= reference)
    })
}

/// Reads a date at the start of `text`; returns it and the unread rest.
fn parse_prefix(text: &str) -> Option<(RawDate, &str)> {
    let text = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\u{feff}');
    if let Some(found) = parse_iso(text) {
        return Some(found);
    }
    let mut s = Scanner::new(text);
    // An optional weekday: "Mon, 05 Feb 2024", "Monday, 20 May 2024".
    let save = s.pos;
    match s.word() {
        Some(w) if is_weekday(w) => {
            s.skip_seps();
        }
        _ => s.pos = save,
    }
    let start = s.pos;
    if let Some(found) = month_first(&mut s) {
        return Some((found, s.rest()));
    }
    s.pos = start;
    let found = day_first(&mut s)?;
    Some((found, s.rest()))
}

/// "Feb 5, 2024", "February 5 2024", "Mar-5-2024", "May 7", "Feb. 5th, 2024".
fn month_first(s: &mut Scanner<'_>) -> Option<RawDate> {
    let month = month_number(s.word()?)?;
    s.eat('.');
    s.skip_seps();
    let day = s.day()?;
    s.ordinal_suffix();
    let before_year = s.pos;
    s.eat('.');
    s.skip_seps();
    match s.year() {
        Some(year) => Some(RawDate::Full(NaiveDate::from_ymd_opt(year, month, day)?)),
        None => {
            s.pos = before_year;
            yearless(month, day)
        }
    }
}

/// "5 Feb 2024", "05 February 2024", "5th of May", "7 May".
fn day_first(s: &mut Scanner<'_>) -> Option<RawDate> {
    let day = s.day()?;
    s.ordinal_suffix();
    s.eat('.');
    s.skip_seps();
    let save = s.pos;
    match s.word() {
        Some(w) if w.eq_ignore_ascii_case("of") => s.skip_seps(),
        _ => s.pos = save,
    }
    let month = month_number(s.word()?)?;
    let before_year = s.pos;
    s.eat('.');
    s.skip_seps();
    match s.year() {
        Some(year) => Some(RawDate::Full(NaiveDate::from_ymd_opt(year, month, day)?)),
        None => {
            s.pos = before_year;
            yearless(month, day)
        }
    }
}

/// A yearless month/day is only a date if some year has it (Feb 30 never does).
fn yearless(month: u32, day: u32) -> Option<RawDate> {
    NaiveDate::from_ymd_opt(2000, month, day).map(|_| RawDate::Yearless { month, day })
}

/// "2024-02-05", "2024/02/05", and any timestamp starting with one ("2024-02-05T10:00:00Z").
fn parse_iso(text: &str) -> Option<(RawDate, &str)> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(r)?;
        if part.iter().all(u8::is_ascii_digit) {
            std::str::from_utf8(part).ok()?.parse().ok()
        } else {
            None
        }
    };
    let year = digits(0..4)?;
    let sep = *b.get(4)?;
    if !(sep == b'-' || sep == b'/') || b.get(7) != Some(&sep) {
        return None;
    }
    let month = digits(5..7)?;
    let day = digits(8..10)?;
    // "2024-02-051" is not a date followed by debris; a time or space may follow.
    if b.get(10).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let date = NaiveDate::from_ymd_opt(i32::try_from(year).ok()?, month, day)?;
    let rest = text.get(10..)?;
    // The time part of a timestamp is debris for a date.
    let rest = rest.strip_prefix(['T', 't']).map_or(rest, |r| {
        r.trim_start_matches(|c: char| c.is_ascii_digit() || c == ':' || c == '.')
    });
    Some((RawDate::Full(date), rest))
}

/// Whether what follows a date is debris rather than words: numbers (upvote counts,
/// page numbers, times), separators, and time-zone or am/pm markers.
fn is_debris(rest: &str) -> bool {
    rest.split(|c: char| c.is_whitespace() || c == ',' || c == '·' || c == '•' || c == '|')
        .filter(|w| !w.is_empty())
        .all(|w| {
            w.chars().any(|c| c.is_ascii_digit())
                || w.chars().all(|c| !c.is_alphanumeric())
                || is_zone_word(w)
        })
}

/// "GMT", "UTC", "PST", "am", "p.m.", "at": words that may trail a timestamp.
fn is_zone_word(w: &str) -> bool {
    let bare: String = w.chars().filter(|c| c.is_ascii_alphabetic()).collect();
    let lower = bare.to_ascii_lowercase();
    if matches!(lower.as_str(), "am" | "pm" | "at" | "gmt" | "utc" | "z") {
        return true;
    }
    // Other zone abbreviations ("PST", "CEST", "AEDT") are upper-case and end in T; an
    // acronym after a date ("May 7 AI") is a title, so nothing looser is accepted.
    let core = w.trim_matches(|c: char| !c.is_alphanumeric());
    (3..=4).contains(&core.len())
        && core.bytes().all(|b| b.is_ascii_uppercase())
        && core.ends_with('T')
}

/// The month number of an English month name or abbreviation ("Sep", "Sept", "September").
fn month_number(word: &str) -> Option<u32> {
    let lower = word.to_ascii_lowercase();
    let months = [
        ("jan", "january"),
        ("feb", "february"),
        ("mar", "march"),
        ("apr", "april"),
        ("may", "may"),
        ("jun", "june"),
        ("jul", "july"),
        ("aug", "august"),
        ("sep", "september"),
        ("oct", "october"),
        ("nov", "november"),
        ("dec", "december"),
    ];
    months
        .iter()
        .zip(1u32..)
        .find(|((short, long), _)| {
            lower == *short || lower == *long || (*short == "sep" && lower == "sept")
        })
        .map(|(_, n)| n)
}

/// Whether a word is an English weekday name or abbreviation.
fn is_weekday(word: &str) -> bool {
    matches!(
        word.to_ascii_lowercase().as_str(),
        "mon"
            | "monday"
            | "tue"
            | "tues"
            | "tuesday"
            | "wed"
            | "wednesday"
            | "thu"
            | "thur"
            | "thurs"
            | "thursday"
            | "fri"
            | "friday"
            | "sat"
            | "saturday"
            | "sun"
            | "sunday"
    )
}

/// A cursor over date text. Works on bytes; words and numbers are ASCII in every
/// date shape we read, so slicing at the positions it finds is always on char boundaries.
struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(text: &'a str) -> Self {
        Scanner { text, pos: 0 }
    }

    fn rest(&self) -> &'a str {
        self.text.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.pos += c.len_utf8();
            true
        } else {
            false
        }
    }

    /// Skips spaces (NBSP included), commas and hyphens between date parts.
    fn skip_seps(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() || c == ',' || c == '-' {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    /// An ASCII word, not followed directly by a digit.
    fn word(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        let len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        if len == 0 {
            return None;
        }
        let word = rest.get(..len)?;
        self.pos += len;
        Some(word)
    }

    /// A run of ASCII digits, at most `max` long, not followed by another digit.
    fn number(&mut self, max: usize) -> Option<(u32, usize)> {
        let rest = self.rest();
        let len = rest.bytes().take_while(u8::is_ascii_digit).count();
        if len == 0 || len > max {
            return None;
        }
        let n = rest.get(..len)?.parse().ok()?;
        self.pos += len;
        Some((n, len))
    }

    /// A day of the month, 1-31, one or two digits.
    fn day(&mut self) -> Option<u32> {
        let save = self.pos;
        match self.number(2) {
            Some((d, _)) if (1..=31).contains(&d) => Some(d),
            _ => {
                self.pos = save;
                None
            }
        }
    }

    /// A four-digit year; anything shorter is debris ("Dec 19, 2025 1" keeps the 1 out).
    fn year(&mut self) -> Option<i32> {
        let save = self.pos;
        match self.number(4) {
            Some((y, 4)) => i32::try_from(y).ok(),
            _ => {
                self.pos = save;
                None
            }
        }
    }

    /// "st", "nd", "rd", "th" after a day number.
    fn ordinal_suffix(&mut self) {
        let rest = self.rest();
        for suffix in ["st", "nd", "rd", "th"] {
            let (Some(head), Some(tail)) = (rest.get(..2), rest.get(2..)) else {
                return;
            };
            if head.eq_ignore_ascii_case(suffix)
                && !tail.starts_with(|c: char| c.is_ascii_alphabetic())
            {
                self.pos += 2;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    const REF: fn() -> NaiveDate = || d(2026, 1, 3);

    #[test]
    fn month_day_year_shapes() {
        for text in [
            "Feb 5, 2024",
            "February 5, 2024",
            "Feb 5 2024",
            "feb 5, 2024",
            "Feb. 5, 2024",
            "Feb 5th, 2024",
            "Feb-5-2024",
        ] {
            assert_eq!(parse_date(text, REF()), Some(d(2024, 2, 5)), "{text}");
        }
        assert_eq!(parse_date("Sept 30, 2024", REF()), Some(d(2024, 9, 30)));
    }

    #[test]
    fn day_month_year_shapes() {
        for text in [
            "5 Feb 2024",
            "05 February 2024",
            "5th of February 2024",
            "5. Feb 2024",
        ] {
            assert_eq!(parse_date(text, REF()), Some(d(2024, 2, 5)), "{text}");
        }
    }

    #[test]
    fn iso_and_timestamps_keep_the_written_date() {
        assert_eq!(parse_date("2024-02-05", REF()), Some(d(2024, 2, 5)));
        assert_eq!(
            parse_date("2024-02-05T23:30:00-05:00", REF()),
            Some(d(2024, 2, 5))
        );
        assert_eq!(
            parse_date("2024-02-05T10:00:00.000Z", REF()),
            Some(d(2024, 2, 5))
        );
        assert_eq!(parse_date("2024-02-05 10:00", REF()), Some(d(2024, 2, 5)));
        assert_eq!(
            parse_date("Mon, 05 Feb 2024 10:00:00 +0000", REF()),
            Some(d(2024, 2, 5))
        );
        assert_eq!(
            parse_date("Mon, 05 Feb 2024 10:00:00 GMT", REF()),
            Some(d(2024, 2, 5))
        );
        assert_eq!(
            parse_date("Monday, 20 May 2024", REF()),
            Some(d(2024, 5, 20))
        );
        assert_eq!(
            parse_date("Mar-5-2024, 14:00:00 GMT", REF()),
            Some(d(2024, 3, 5))
        );
    }

    #[test]
    fn trailing_page_debris_is_ignored() {
        assert_eq!(parse_date("Dec 19, 2025 1", REF()), Some(d(2025, 12, 19)));
        assert_eq!(parse_date("May 28, 2025 4", REF()), Some(d(2025, 5, 28)));
        assert_eq!(
            parse_date("Dec 19, 2025\u{a0}12 ", REF()),
            Some(d(2025, 12, 19))
        );
        assert_eq!(parse_date("Dec 30 1", REF()), Some(d(2025, 12, 30)));
    }

    #[test]
    fn words_after_a_date_make_it_not_a_date() {
        assert_eq!(parse_date("May 7 ways to train a model", REF()), None);
        assert_eq!(parse_date("March of the Penguins", REF()), None);
        assert_eq!(parse_date("Subscribe", REF()), None);
        assert_eq!(parse_date("May", REF()), None);
        assert_eq!(parse_date("", REF()), None);
        assert_eq!(parse_date("8 authors", REF()), None);
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(parse_date("Feb 30, 2024", REF()), None);
        assert_eq!(parse_date("Feb 30", REF()), None);
        assert_eq!(parse_date("2024-13-01", REF()), None);
        assert_eq!(parse_date("Jan 32, 2024", REF()), None);
        assert_eq!(parse_date("Jan 0", REF()), None);
    }

    #[test]
    fn yearless_dates_take_the_latest_year_not_after_the_reference() {
        // Captured 2026-01-03: Dec 30 is last year, Jan 2 this year.
        assert_eq!(parse_date("Dec 30", REF()), Some(d(2025, 12, 30)));
        assert_eq!(parse_date("Jan 2", REF()), Some(d(2026, 1, 2)));
        assert_eq!(
            parse_date("Jan 3", REF()),
            Some(d(2026, 1, 3)),
            "same day is not after"
        );
        assert_eq!(parse_date("Jan 4", REF()), Some(d(2025, 1, 4)));
        assert_eq!(parse_date("7 May", d(2026, 5, 20)), Some(d(2026, 5, 7)));
        assert_eq!(parse_date("May 7", d(2026, 5, 6)), Some(d(2025, 5, 7)));
    }

    #[test]
    fn yearless_feb_29_takes_the_latest_leap_year_not_after() {
        assert_eq!(parse_date("Feb 29", d(2026, 1, 3)), Some(d(2024, 2, 29)));
        assert_eq!(parse_date("Feb 29", d(2028, 2, 29)), Some(d(2028, 2, 29)));
        assert_eq!(parse_date("Feb 29", d(2028, 2, 28)), Some(d(2024, 2, 29)));
        assert_eq!(parse_date("Feb 29", d(2101, 1, 1)), Some(d(2096, 2, 29)));
    }

    #[test]
    fn find_date_reads_dates_inside_headings() {
        assert_eq!(
            find_date("Showing new listings for Monday, 20 May 2024", REF()),
            Some(d(2024, 5, 20))
        );
        assert_eq!(
            find_date("Tue, 21 May 2024 (showing 3 of 3 entries )", REF()),
            Some(d(2024, 5, 21))
        );
        assert_eq!(
            find_date("New submissions (showing 3 of 3 entries)", REF()),
            None
        );
    }

    fn rfc3339(t: Option<Timestamp>) -> Option<String> {
        t.map(|t| t.to_rfc3339())
    }

    #[test]
    fn explicit_formats_including_yearless() {
        assert_eq!(
            rfc3339(parse_with_format("05/02/2024", "%d/%m/%Y", REF())).as_deref(),
            Some("2024-02-05T00:00:00+00:00")
        );
        assert_eq!(
            rfc3339(parse_with_format(
                "2024-02-05 10:00",
                "%Y-%m-%d %H:%M",
                REF()
            ))
            .as_deref(),
            Some("2024-02-05T10:00:00+00:00")
        );
        assert_eq!(
            rfc3339(parse_with_format(
                "2024-02-05 10:00 -0400",
                "%Y-%m-%d %H:%M %z",
                REF()
            ))
            .as_deref(),
            Some("2024-02-05T10:00:00-04:00")
        );
        assert_eq!(
            rfc3339(parse_with_format("30 Dec", "%d %b", REF())).as_deref(),
            Some("2025-12-30T00:00:00+00:00")
        );
        assert_eq!(parse_with_format("nonsense", "%d %b", REF()), None);
    }

    #[test]
    fn timestamps_keep_their_instant_and_offset() {
        let cases = [
            // The wrong day too, if truncated: 22:30 at -04:00 is the 20th in UTC.
            (
                "Tue, 19 May 2026 22:30:00 -0400",
                "2026-05-19T22:30:00-04:00",
            ),
            ("2026-05-19T22:30:00-04:00", "2026-05-19T22:30:00-04:00"),
            ("2024-05-20T09:12:30.123Z", "2024-05-20T09:12:30.123+00:00"),
            ("2024-05-20T09:12:30", "2024-05-20T09:12:30+00:00"),
            ("Thu, 07 Dec 17 10:00:29 -0800", "2017-12-07T10:00:29-08:00"),
            ("Mon, 05 Feb 2024 10:00:00 GMT", "2024-02-05T10:00:00+00:00"),
            ("Feb 5, 2024", "2024-02-05T00:00:00+00:00"),
            ("Dec 30", "2025-12-30T00:00:00+00:00"),
        ];
        for (text, want) in cases {
            assert_eq!(
                rfc3339(parse_timestamp(text, REF())).as_deref(),
                Some(want),
                "{text}"
            );
        }
        let late = parse_timestamp("Tue, 19 May 2026 22:30:00 -0400", REF()).expect("parsed");
        assert_eq!(
            late.with_timezone(&chrono::Utc).to_rfc3339(),
            "2026-05-20T02:30:00+00:00"
        );
        assert_eq!(parse_timestamp("May 7 ways to win", REF()), None);
    }

    #[test]
    fn raw_keeps_yearless_unresolved() {
        assert_eq!(
            parse_raw("May 7"),
            Some(RawDate::Yearless { month: 5, day: 7 })
        );
        assert_eq!(parse_raw("May 7, 2024"), Some(RawDate::Full(d(2024, 5, 7))));
    }

    #[test]
    fn odd_input_never_panics() {
        for text in [
            "\u{fffd}\u{fffd}",
            "2024-",
            "2024-02-0",
            "Feb 5, 20",
            "é 5 Feb",
            "5\u{e9}",
            "Feb 5th\u{e9}",
        ] {
            let _ = parse_date(text, REF());
            let _ = find_date(text, REF());
        }
    }
}
