//! Page bytes -> entries. One file per site format plus generic ones; this module
//! decodes the bytes, sniffs the format when the source says `auto`, and dispatches.
//!
//! Parsers are pure functions over text: no I/O, no clock (the capture time comes in
//! through [`ParseContext`]), so they are easy to test, benchmark and fuzz. They never
//! panic on page data: anything that does not fit is a [`ParseError`].
//!
//! | format | file | shapes |
//! |---|---|---|
//! | `hf-papers` | [`hf_papers`] | text capture, HTML page (`data-props` JSON or cards), JSON API |
//! | `aitopics` | [`aitopics`] | text capture, HTML listing |
//! | `arxiv` | [`arxiv`] | `/list/<cat>/new` and `/recent` pages |
//! | `feed` | [`feed`] | RSS 0.9x/1.0/2.0, Atom, JSON Feed (via feed-rs) |
//! | `selectors` | [`selectors`] | any HTML page, with CSS selectors from the config |
//!
//! Dates, in every format, go through [`dates`]; bytes become text through
//! [`encoding`], which chooses the encoding as a browser does and refuses binary data.
//!
//! Auto-detection says no: a page that no format recognises by its real structure is
//! [`ParseError::Unrecognized`] ("not a listing"), never a best guess.

mod aitopics;
mod arxiv;
pub mod dates;
pub mod encoding;
mod feed;
mod feed_lenient;
mod hf_papers;
mod markup;
pub mod selectors;
mod text;

use chrono::{DateTime, NaiveDate, Utc};

use crate::entry::Entry;
use selectors::SelectorsConfig;

/// What a parser may know about the page besides its text.
#[derive(Debug, Clone, Copy)]
pub struct ParseContext<'a> {
    /// When the page was captured; yearless dates resolve against it.
    pub captured_at: DateTime<Utc>,
    /// The page URL, for resolving relative links.
    pub url: Option<&'a url::Url>,
    /// `Content-Type` of a fetched page.
    pub content_type: Option<&'a str>,
    /// Selectors for the `selectors` format.
    pub selectors: Option<&'a SelectorsConfig>,
}

impl<'a> ParseContext<'a> {
    /// A context with only a capture time (dropped files, tests).
    pub fn at(captured_at: DateTime<Utc>) -> Self {
        ParseContext {
            captured_at,
            url: None,
            content_type: None,
            selectors: None,
        }
    }

    /// The date yearless page dates resolve against: the capture's UTC calendar date.
    pub fn reference_date(&self) -> NaiveDate {
        self.captured_at.date_naive()
    }
}

/// The coarse shape of a page's text, which decides which readers may look at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageKind {
    /// HTML or XML: the first non-blank character opens a tag.
    Markup,
    /// A complete JSON document.
    Json,
    /// Anything else: a text capture, or unrecognizable content.
    Text,
}

/// Tells markup, JSON and plain text apart by the first non-blank character (and, for
/// `{`/`[`, by whether the whole text is valid JSON, so a capture starting with "[1]"
/// stays text).
pub fn page_kind(text: &str) -> PageKind {
    let body = text.trim_start_matches(text::is_space);
    let mut chars = body.chars();
    match (chars.next(), chars.next()) {
        (Some('<'), Some(c)) if c.is_ascii_alphabetic() || c == '!' || c == '?' => PageKind::Markup,
        (Some('{' | '['), _) if serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok() => {
            PageKind::Json
        }
        _ => PageKind::Text,
    }
}

/// The entries of one page, the format that read them, and what went wrong on the way
/// without stopping the reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Name of the format that parsed the page.
    pub format: &'static str,
    /// Every entry on the page, in page order.
    pub entries: Vec<Entry>,
    /// Problems that leave the page readable but its source degraded: a broken
    /// document read up to the break, a selector that never matched, ...
    pub warnings: Vec<ParseWarning>,
}

/// A problem with a page that still parsed: the source is degraded, not failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseWarning {
    /// The document is malformed; the entries before the fault were kept.
    #[error("{format}: malformed document, read up to the fault: {reason}")]
    Malformed {
        /// The format that read it.
        format: &'static str,
        /// What was wrong, and where.
        reason: String,
    },
    /// A configured selector matched nothing on the whole page.
    #[error("selectors.{key} {selector:?} matched nothing on the page")]
    SelectorNeverMatched {
        /// The config key (`title`, `summary`, ...).
        key: &'static str,
        /// The CSS selector as configured.
        selector: String,
    },
    /// `date_format` parsed none of the dates the `date` selector found.
    #[error("selectors.date_format {format:?} matched none of the {found} dates found")]
    DateFormatMatchedNothing {
        /// The configured chrono format.
        format: String,
        /// How many date elements were found.
        found: usize,
    },
    /// The page gave no entries where its source had entries before (the pipeline
    /// knows the source's history; parsing does not).
    #[error("no entries on a page whose source had entries before")]
    NoEntries,
    /// The page declared an encoding that its bytes do not fit.
    #[error("bytes that do not fit the declared encoding {encoding} were replaced")]
    Undecodable {
        /// The declared encoding.
        encoding: &'static str,
    },
}

/// One format's reading of a page: its entries and any warnings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reading {
    /// Every entry on the page, in page order.
    pub entries: Vec<Entry>,
    /// Problems that did not stop the reading.
    pub warnings: Vec<ParseWarning>,
}

impl From<Vec<Entry>> for Reading {
    fn from(entries: Vec<Entry>) -> Self {
        Reading {
            entries,
            warnings: Vec::new(),
        }
    }
}

/// Why a page could not be parsed. The daemon quarantines the page with this reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    /// The page has no content at all.
    #[error("page is empty")]
    Empty,
    /// Not a listing: no known format recognized the page, or it is binary data.
    #[error("unrecognized page, not a listing: {hint}")]
    Unrecognized {
        /// What the content looked like, for the error sidecar.
        hint: String,
    },
    /// A named format was asked for that does not exist.
    #[error("unknown format {0:?}")]
    UnknownFormat(String),
    /// The format was recognized (or named) but the page does not fit it.
    #[error("{format}: {reason}")]
    Malformed {
        /// The format that tried.
        format: &'static str,
        /// What did not fit.
        reason: String,
    },
}

/// One page format: detection and parsing. Implemented once per site format.
pub trait PageFormat: Sync {
    /// The name used in config (`format = "..."`) and in entries.
    fn name(&self) -> &'static str;
    /// For `format = "auto"`: this format's reading of the page, or `None` when the
    /// page is not of this format. A format whose test is reading the page returns
    /// that reading, so an auto page is parsed once, not once to sniff and again.
    fn recognize(&self, text: &str, ctx: &ParseContext<'_>) -> Option<Result<Reading, ParseError>>;
    /// Every entry of the page, in page order.
    fn parse(&self, text: &str, ctx: &ParseContext<'_>) -> Result<Reading, ParseError>;
    /// Whether this format recognizes the page.
    fn sniff(&self, text: &str, ctx: &ParseContext<'_>) -> bool {
        self.recognize(text, ctx).is_some()
    }
    /// Where an entry of this format that came without a link can be found by its
    /// title (a site's search), for feeds and notifiers; `None` for most formats.
    fn link_by_title(&self, _title: &str) -> Option<String> {
        None
    }
}

/// The link of the format named `format` (as entries carry it) for an entry that came
/// without one, found by its title: see [`PageFormat::link_by_title`]. Lets feeds and
/// notifiers give such items a link without knowing page formats.
pub fn link_by_title(format: &str, title: &str) -> Option<String> {
    let title = title.trim();
    if title.is_empty() {
        return None;
    }
    formats()
        .iter()
        .find(|f| f.name() == format)
        .and_then(|f| f.link_by_title(title))
}

/// Decodes page bytes that came without a `Content-Type` (a dropped file) as text:
/// the encoding chosen as [`encoding::decode_page`] does, the BOM dropped, CRLF and
/// lone CR turned into LF.
pub fn decode(bytes: &[u8]) -> String {
    encoding::decode_page(bytes, None).text
}

/// Every known format, in sniffing order (most specific first). Feeds come first because
/// their test (the root element) is the strictest; `selectors` never sniffs, it is only
/// used when named.
pub fn formats() -> &'static [&'static dyn PageFormat] {
    &[
        &feed::Feed,
        &hf_papers::HfPapers,
        &arxiv::Arxiv,
        &aitopics::AiTopics,
        &selectors::Selectors,
    ]
}

/// Parses a page with the named format, or the first that sniffs it when `format` is `auto`.
pub fn parse_page(
    bytes: &[u8],
    format: &str,
    ctx: &ParseContext<'_>,
) -> Result<Parsed, ParseError> {
    let decoded = encoding::decode_page(bytes, ctx.content_type);
    let text = decoded.text.as_str();
    if text.trim().is_empty() {
        return Err(ParseError::Empty);
    }
    if let Some(hint) = encoding::binary_reason(bytes, &decoded) {
        return Err(ParseError::Unrecognized { hint });
    }
    let (chosen, reading) = if format == "auto" {
        formats()
            .iter()
            .find_map(|f| Some((f, f.recognize(text, ctx)?)))
            .ok_or_else(|| ParseError::Unrecognized {
                hint: describe(text),
            })?
    } else {
        let chosen = formats()
            .iter()
            .find(|f| f.name() == format)
            .ok_or_else(|| ParseError::UnknownFormat(format.to_owned()))?;
        (chosen, chosen.parse(text, ctx))
    };
    let Reading {
        mut entries,
        mut warnings,
    } = reading?;
    if decoded.had_errors && decoded.source.is_declared() {
        warnings.insert(
            0,
            ParseWarning::Undecodable {
                encoding: decoded.encoding.name(),
            },
        );
    }
    entries.iter_mut().for_each(Entry::cap_fields);
    // Logged here, once for every caller (daemon, `lookout parse`); the daemon's
    // source health reads them from `Parsed::warnings`.
    for warning in &warnings {
        tracing::warn!(format = chosen.name(), "{warning}");
    }
    Ok(Parsed {
        format: chosen.name(),
        entries,
        warnings,
    })
}

/// A short description of unrecognized content for the quarantine sidecar.
fn describe(text: &str) -> String {
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("");
    let mut first: String = first.chars().take(60).collect();
    if first.chars().any(|c| c == '\u{fffd}' || c.is_control()) {
        first = "binary or non-text content".to_owned();
    }
    format!(
        "no format matched; {} bytes, first line {first:?}",
        text.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_format_that_knows_a_search_links_an_entry_by_its_title() {
        assert_eq!(
            link_by_title(hf_papers::NAME, "Diffusion & Friends").as_deref(),
            Some("https://huggingface.co/papers?q=Diffusion+%26+Friends")
        );
        assert_eq!(link_by_title(hf_papers::NAME, "  "), None);
        assert_eq!(link_by_title("arxiv", "Diffusion"), None);
        assert_eq!(link_by_title("no-such-format", "Diffusion"), None);
    }
}
