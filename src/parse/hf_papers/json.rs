//! The JSON: the `/api/daily_papers` API, and the same objects embedded in the HTML
//! page's `data-props`.
//!
//! Where papers sit varies from page to page (a top-level array, `{"dailyPapers": [...]}`,
//! any depth of another component's props), so finding them is a walk over
//! [`serde_json::Value`]. What a paper says is then read through typed structs
//! ([`DailyPaper`], [`Paper`]) that are tolerant where real pages vary: unknown fields
//! are ignored, and a field of an unexpected type (a numeric `id`, a `null` title, an
//! `authors` object) reads as absent instead of losing the whole paper.
//!
//! # Which object wins
//!
//! A daily-paper wrapper (`{ paper: {...}, title, summary, publishedAt }`) and its paper
//! both carry some fields, and they answer different questions:
//!
//! | entry field | first | then | why |
//! |---|---|---|---|
//! | `title` | wrapper (non-blank) | paper | the wrapper's is the one the listing shows |
//! | `summary` | paper | wrapper | the paper's is the abstract |
//! | `published` | paper `publishedAt` | wrapper `publishedAt` | the paper's arXiv date, as the text capture prints it; the wrapper's is when it was featured |
//! | `listed` | paper `submittedOnDailyAt` | wrapper `publishedAt` | when it was put on the daily list: what "new" means to its readers |
//!
//! A date field that is present but does not parse is not replaced by the other object's.

use std::collections::HashSet;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use super::{paper_link, NAME};
use crate::entry::{clean_text, normalize_arxiv_id, Entry};
use crate::parse::arxiv::is_arxiv_id;
use crate::parse::{dates, ParseContext, ParseError};

/// Parses the `/api/daily_papers` JSON (an array of daily-paper objects). Objects that
/// wrap such an array (`{"dailyPapers": [...]}`) are read the same way; an empty array
/// is an empty page, not an error.
pub fn parse_json(text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ParseError::Malformed {
        format: NAME,
        reason: format!("invalid JSON: {e}"),
    })?;
    let entries = papers_in(&value, ctx);
    if entries.is_empty() && !is_empty_listing(&value) {
        return Err(ParseError::Malformed {
            format: NAME,
            reason:
                "JSON holds no paper objects (expected [{\"paper\": {\"id\", \"title\", ...}}])"
                    .into(),
        });
    }
    Ok(entries)
}

/// The papers of a JSON text, for sniffing: `None` when it is not JSON.
pub(super) fn papers_in_text(text: &str, ctx: &ParseContext<'_>) -> Option<Vec<Entry>> {
    Some(papers_in(&serde_json::from_str(text).ok()?, ctx))
}

/// Every paper in a JSON value, in document order, each arXiv id once.
fn papers_in(value: &Value, ctx: &ParseContext<'_>) -> Vec<Entry> {
    let mut papers = Papers::default();
    papers.collect(value, ctx);
    papers.into_entries()
}

/// The shapes a whole listing comes in; only used to tell an empty listing (a day
/// without papers) from JSON that holds none.
#[derive(Deserialize)]
#[serde(untagged)]
enum Listing {
    /// `[ {...}, ... ]`
    List(Vec<IgnoredAny>),
    /// `{ "dailyPapers": [ {...}, ... ] }`
    Wrapped {
        #[serde(rename = "dailyPapers")]
        daily_papers: Vec<IgnoredAny>,
    },
}

/// An empty array, or an object whose `dailyPapers` is an empty array.
pub(super) fn is_empty_listing(value: &Value) -> bool {
    match Listing::deserialize(value) {
        Ok(
            Listing::List(items)
            | Listing::Wrapped {
                daily_papers: items,
            },
        ) => items.is_empty(),
        Err(_) => false,
    }
}

/// A daily-paper wrapper: the listing's view of one paper (its `paper` is read apart).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DailyPaper {
    #[serde(default, deserialize_with = "or_none")]
    title: Option<String>,
    #[serde(default, deserialize_with = "or_none")]
    summary: Option<String>,
    #[serde(default, deserialize_with = "or_none")]
    published_at: Option<String>,
}

/// A paper object, inside a wrapper or bare (as search and trending lists hold them).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Paper {
    /// The arXiv id, for the papers that have one.
    #[serde(default, deserialize_with = "or_none")]
    id: Option<String>,
    #[serde(default, deserialize_with = "or_none")]
    title: Option<String>,
    #[serde(default, deserialize_with = "or_none")]
    summary: Option<String>,
    #[serde(default, deserialize_with = "or_none")]
    authors: Option<Vec<Author>>,
    #[serde(default, deserialize_with = "or_none")]
    published_at: Option<String>,
    #[serde(default, deserialize_with = "or_none")]
    submitted_on_daily_at: Option<String>,
}

/// One element of a paper's `authors`: `{ "name": ... }` in the API, a plain string in
/// some embedded lists, anything else skipped.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Author {
    Plain(String),
    Named {
        #[serde(default, deserialize_with = "or_none")]
        name: Option<String>,
    },
    Other(IgnoredAny),
}

impl Author {
    fn name(&self) -> Option<&str> {
        match self {
            Author::Plain(name) => Some(name),
            Author::Named { name } => name.as_deref(),
            Author::Other(_) => None,
        }
    }
}

/// A field of the type asked for, or `None` when it has another type: a page that
/// sends `"id": 2401` or `"title": null` loses that field, not the paper.
fn or_none<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    let value = Value::deserialize(deserializer)?;
    Ok(T::deserialize(value).ok())
}

/// Papers collected from one or more JSON values (an HTML page embeds several), each
/// arXiv id (or, without one, each title) once, in document order.
#[derive(Default)]
pub(super) struct Papers {
    entries: Vec<Entry>,
    seen: HashSet<String>,
}

impl Papers {
    /// Walks a JSON value for paper objects: a daily-paper wrapper (`{ paper: {...},
    /// title, publishedAt }`) or a bare paper (see [`is_bare_paper`]). Recursion depth is
    /// bounded by serde_json's own nesting limit.
    pub(super) fn collect(&mut self, value: &Value, ctx: &ParseContext<'_>) {
        match value {
            Value::Array(items) => {
                for item in items {
                    self.collect(item, ctx);
                }
            }
            Value::Object(obj) => {
                let found = match obj.get("paper").and_then(Value::as_object) {
                    Some(paper) if paper.contains_key("id") || paper.contains_key("title") => {
                        Some(entry(&read(value), &read(&obj["paper"]), ctx))
                    }
                    _ if is_bare_paper(obj) => {
                        Some(entry(&DailyPaper::default(), &read(value), ctx))
                    }
                    _ => None,
                };
                match found {
                    Some(Some(entry)) => self.push(entry),
                    // A paper without a title: nothing to list, and nothing inside it either.
                    Some(None) => {}
                    None => {
                        for v in obj.values() {
                            self.collect(v, ctx);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    fn push(&mut self, entry: Entry) {
        let key = entry
            .arxiv_id
            .clone()
            .unwrap_or_else(|| entry.title.clone());
        if self.seen.insert(key) {
            self.entries.push(entry);
        }
    }

    /// The entries, in the order they were found.
    pub(super) fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// Reads an object through its typed struct. Every field is optional and tolerant, so
/// this fails only on a value that is not an object, which the walk never hands it.
fn read<T: Default + for<'de> Deserialize<'de>>(value: &Value) -> T {
    T::deserialize(value).unwrap_or_default()
}

/// A paper object outside a daily-paper wrapper: an arXiv id, a title, and a summary or
/// authors (so a JSON Feed item or a user object is never taken for one).
fn is_bare_paper(obj: &Map<String, Value>) -> bool {
    obj.get("id")
        .and_then(Value::as_str)
        .is_some_and(is_arxiv_id)
        && obj.get("title").and_then(Value::as_str).is_some()
        && (obj.contains_key("summary") || obj.contains_key("authors"))
}

/// One entry from a paper and its daily-paper wrapper (an empty one for a bare paper),
/// by the precedence in the module docs. `None` when neither has a title.
fn entry(wrapper: &DailyPaper, paper: &Paper, ctx: &ParseContext<'_>) -> Option<Entry> {
    let title = wrapper
        .title
        .as_deref()
        .filter(|t| !t.trim().is_empty())
        .or(paper.title.as_deref())
        .map(clean_text)
        .filter(|t| !t.is_empty())?;
    let summary = paper
        .summary
        .as_deref()
        .or(wrapper.summary.as_deref())
        .map(clean_text)
        .unwrap_or_default();
    let authors: Vec<String> = paper
        .authors
        .iter()
        .flatten()
        .filter_map(Author::name)
        .map(clean_text)
        .filter(|n| !n.is_empty())
        .collect();
    let reference = ctx.reference_date();
    let when = |first: &Option<String>| {
        first
            .as_deref()
            .or(wrapper.published_at.as_deref())
            .and_then(|s| dates::parse_timestamp(s, reference))
    };
    let id = paper.id.as_deref().map(str::trim).unwrap_or("");
    let arxiv_id = is_arxiv_id(id).then(|| normalize_arxiv_id(id));
    Some(Entry {
        title,
        link: arxiv_id.as_deref().and_then(paper_link),
        summary,
        author_count: u32::try_from(authors.len()).ok().filter(|n| *n > 0),
        authors,
        source: None,
        published: when(&paper.published_at),
        listed: when(&paper.submitted_on_daily_at),
        arxiv_id,
        guid: None,
        format: NAME,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn parse(json: &str) -> Vec<Entry> {
        let ctx = ParseContext::at(Utc.with_ymd_and_hms(2026, 5, 20, 12, 0, 0).unwrap());
        parse_json(json, &ctx).unwrap()
    }

    fn day(e: Option<crate::entry::Timestamp>) -> Option<String> {
        e.map(|t| t.date_naive().to_string())
    }

    #[test]
    fn wrong_types_lose_the_field_not_the_paper() {
        let entries = parse(
            r#"[{"paper": {"id": 2401, "title": "A Paper", "summary": null,
                 "authors": [{"name": 5}, "Ada", {"name": " Bo "}, 7, {"user": "x"}],
                 "publishedAt": 3, "upvotes": "many"},
                "title": null, "numComments": "x"}]"#,
        );
        assert_eq!(entries.len(), 1);
        let e = &entries[0];
        assert_eq!(e.title, "A Paper");
        assert_eq!(e.arxiv_id, None);
        assert_eq!(e.link, None);
        assert_eq!(e.summary, "");
        assert_eq!(e.authors, ["Ada", "Bo"]);
        assert_eq!(e.author_count, Some(2));
        assert_eq!(e.published, None);
    }

    #[test]
    fn wrapper_title_paper_summary_and_paper_dates_win() {
        let entries = parse(
            r#"{"dailyPapers": [
                {"title": "Listed Title", "summary": "wrapper summary",
                 "publishedAt": "2026-05-19T08:00:00Z",
                 "paper": {"id": "2405.00001", "title": "Paper Title", "summary": "paper summary",
                           "publishedAt": "2026-05-01T00:00:00Z",
                           "submittedOnDailyAt": "2026-05-18T06:00:00Z"}},
                {"title": "  ", "publishedAt": "2026-05-19T08:00:00Z",
                 "paper": {"id": "2405.00002", "title": "Only The Paper's"}}
            ]}"#,
        );
        assert_eq!(entries.len(), 2);
        let (first, second) = (&entries[0], &entries[1]);
        assert_eq!(first.title, "Listed Title");
        assert_eq!(first.summary, "paper summary");
        assert_eq!(day(first.published).as_deref(), Some("2026-05-01"));
        assert_eq!(day(first.listed).as_deref(), Some("2026-05-18"));
        assert_eq!(
            first.link.as_deref(),
            Some("https://huggingface.co/papers/2405.00001")
        );
        // A blank wrapper title falls back to the paper's; the wrapper's date stands in
        // for both dates the paper lacks.
        assert_eq!(second.title, "Only The Paper's");
        assert_eq!(day(second.published).as_deref(), Some("2026-05-19"));
        assert_eq!(day(second.listed).as_deref(), Some("2026-05-19"));
    }

    #[test]
    fn empty_listings_are_pages_and_other_json_is_refused() {
        assert!(parse("[]").is_empty());
        assert!(parse(r#"{"dailyPapers": [], "other": 1}"#).is_empty());
        let ctx = ParseContext::at(Utc.with_ymd_and_hms(2026, 5, 20, 12, 0, 0).unwrap());
        assert!(parse_json(r#"{"items": [{"id": "x", "title": "feed item"}]}"#, &ctx).is_err());
        assert!(parse_json(r#"{"dailyPapers": 3}"#, &ctx).is_err());
    }

    #[test]
    fn the_same_paper_twice_is_one_entry() {
        let paper = r#"{"paper": {"id": "2405.00001", "title": "Twice"}}"#;
        assert_eq!(
            parse(&format!("[{paper}, {{\"nested\": [{paper}]}}]")).len(),
            1
        );
    }
}
