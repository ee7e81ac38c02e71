//! Existing feeds as input: RSS 0.9x, 1.0 (RDF) and 2.0, Atom, and JSON Feed, read with
//! feed-rs, so lookout can also filter and merge feeds that already exist.
//!
//! Each feed item becomes an entry: title, the item's web link, the summary (or the
//! content when there is no summary) as plain text, author names, the published (else
//! updated) date with its time and zone, and the feed's title as `source`.
//!
//! An item is what its guid says it is. A guid that is a paper's id
//! (`oai:arXiv.org:<id>`, `https://arxiv.org/abs/<id>`) makes the item that paper, so an
//! arXiv feed and the same paper from another page are one item. Any other guid is the
//! item's own: a blog post that links to a paper stays a blog post. Only an item with
//! no guid at all is known by its link, which is the paper when it points at one.

use feed_rs::model;

use super::arxiv::paper_id_of;
use super::markup::{fragment_text, resolve_link};
use super::{dates, page_kind, PageFormat, PageKind, ParseContext, ParseError};
use crate::entry::{clean_text, Entry};

/// The format name used in config and on entries.
pub const NAME: &str = "feed";

/// RSS, Atom and JSON Feed documents.
pub struct Feed;

impl PageFormat for Feed {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognize(
        &self,
        text: &str,
        ctx: &ParseContext<'_>,
    ) -> Option<Result<Vec<Entry>, ParseError>> {
        is_feed(text, ctx).then(|| parse_feed(text, ctx))
    }

    fn parse(&self, text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
        parse_feed(text, ctx)
    }
}

/// Whether a page is a feed: by its declared type or its document root.
fn is_feed(text: &str, ctx: &ParseContext<'_>) -> bool {
    {
        // A server that says it sends a feed is believed for markup and JSON bodies;
        // otherwise the document's root decides.
        let declared = ctx.content_type.is_some_and(|ct| {
            let ct = ct.to_ascii_lowercase();
            ct.contains("rss") || ct.contains("atom") || ct.contains("feed+json")
        });
        match page_kind(text) {
            PageKind::Markup => declared || is_feed_root(root_element(text)),
            PageKind::Json => declared || is_json_feed(text),
            PageKind::Text => false,
        }
    }
}

/// Parses any feed feed-rs reads into entries, in document order.
pub fn parse_feed(text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let reference = ctx.reference_date();
    let parser = feed_rs::parser::Builder::new()
        .base_uri(ctx.url.map(url::Url::as_str))
        // Dates go through the one date parser, which reads the shapes real feeds
        // write (two-digit years, named zones, bare days) and keeps the instant.
        .timestamp_parser(move |text| {
            dates::parse_timestamp(text, reference).map(|t| t.with_timezone(&chrono::Utc))
        })
        // An item without a guid keeps an empty id: feed-rs would make one up from the
        // link and title, and an id made up from a title is no identity.
        .id_generator(|_, _, _| String::new())
        .build();
    let feed = parser
        .parse(text.as_bytes())
        .map_err(|e| ParseError::Malformed {
            format: NAME,
            reason: format!("not a readable RSS, Atom or JSON feed: {e}"),
        })?;
    let source = feed
        .title
        .as_ref()
        .map(|t| fragment_text(&t.content))
        .filter(|t| !t.is_empty());
    Ok(feed
        .entries
        .iter()
        .filter_map(|item| entry_from_item(item, source.as_deref(), ctx))
        .collect())
}

/// One entry from a feed item; `None` for an item with neither title nor text.
fn entry_from_item(
    item: &model::Entry,
    source: Option<&str>,
    ctx: &ParseContext<'_>,
) -> Option<Entry> {
    let summary = item
        .summary
        .as_ref()
        .map(|t| fragment_text(&t.content))
        .filter(|s| !s.is_empty())
        .or_else(|| {
            item.content
                .as_ref()
                .and_then(|c| c.body.as_deref())
                .map(fragment_text)
        })
        .unwrap_or_default();
    let link = web_link(item, ctx);
    let title = item
        .title
        .as_ref()
        .map(|t| fragment_text(&t.content))
        .filter(|t| !t.is_empty())
        // RSS 2.0 allows items with only a description; their first words stand in.
        .or_else(|| (!summary.is_empty()).then(|| headline_from(&summary)))?;
    let mut authors: Vec<String> = item.authors.iter().filter_map(person_name).collect();
    if let [one] = authors.as_slice() {
        if let Some(list) = split_author_list(one) {
            authors = list;
        }
    }
    let guid = item.id.trim();
    let (arxiv_id, guid) = if guid.is_empty() {
        (link.as_deref().and_then(paper_id_of), None)
    } else {
        match paper_id_of(guid) {
            Some(id) => (Some(id), None),
            None => (None, Some(guid.to_owned())),
        }
    };
    let published = item.published.or(item.updated).map(|t| t.fixed_offset());
    Some(Entry {
        title,
        link,
        summary,
        author_count: u32::try_from(authors.len()).ok().filter(|n| *n > 0),
        authors,
        source: source.map(str::to_owned),
        published,
        // A feed item's own date is when it appeared on the feed.
        listed: published,
        arxiv_id,
        guid,
        format: NAME,
    })
}

/// The item's web page: its `alternate` link (or a link without `rel`), else the first
/// link, else an id that is itself a URL (RSS `guid isPermaLink`).
fn web_link(item: &model::Entry, ctx: &ParseContext<'_>) -> Option<String> {
    let preferred = item
        .links
        .iter()
        .find(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .or_else(|| item.links.first())
        .map(|l| l.href.as_str());
    preferred
        .and_then(|href| resolve_link(href, ctx.url))
        .or_else(|| resolve_link(&item.id, None))
}

/// A person's display name. RSS 2.0 `<author>` holds an email address, optionally
/// with the name in parentheses ("ed@example.org (Ed Smith)"); feed-rs keeps it as the
/// email of a person named "author", so the name is taken from the parentheses then.
fn person_name(person: &model::Person) -> Option<String> {
    let name = clean_text(&person.name);
    let placeholder = name.is_empty() || name == "author";
    if !placeholder {
        return Some(name);
    }
    let email = clean_text(person.email.as_deref()?);
    let named = email
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map(|(inner, _)| clean_text(inner))
        .filter(|n| !n.is_empty());
    named.or_else(|| (!email.is_empty()).then_some(email))
}

/// Splits one author string that is really a list ("A. Smith, B. Jones, C. Lee", as
/// `dc:creator` in arXiv's RSS carries it). Only when every comma-separated part is a
/// full name (has a space), so "Smith, John" stays one author.
fn split_author_list(names: &str) -> Option<Vec<String>> {
    let names = names.replace(" and ", ", ");
    let parts: Vec<String> = names
        .split(',')
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect();
    (parts.len() > 1 && parts.iter().all(|p| p.contains(' '))).then_some(parts)
}

/// The first sentence (at most 100 characters) of a summary, for items without a title.
fn headline_from(summary: &str) -> String {
    let sentence = summary
        .split_inclusive(". ")
        .next()
        .unwrap_or(summary)
        .trim();
    let mut out: String = sentence.chars().take(100).collect();
    if out.len() < sentence.len() {
        out.push('…');
    }
    out
}

/// The name of the document's root element, skipping the XML declaration, comments,
/// processing instructions and the doctype.
fn root_element(text: &str) -> &str {
    let mut rest = text.trim_start_matches(super::text::is_space);
    loop {
        let skip_to = if rest.starts_with("<?") {
            rest.find("?>").map(|i| i + 2)
        } else if rest.starts_with("<!--") {
            rest.find("-->").map(|i| i + 3)
        } else if rest.starts_with("<!") {
            rest.find('>').map(|i| i + 1)
        } else {
            break;
        };
        match skip_to.and_then(|i| rest.get(i..)) {
            Some(r) => rest = r.trim_start_matches(super::text::is_space),
            None => return "",
        }
    }
    let Some(tag) = rest.strip_prefix('<') else {
        return "";
    };
    let end = tag
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .unwrap_or(tag.len());
    tag.get(..end).unwrap_or("")
}

/// `rss` (0.9x, 2.0), `feed` (Atom), `RDF` with any prefix (RSS 1.0 / 0.90).
fn is_feed_root(name: &str) -> bool {
    let local = name.rsplit(':').next().unwrap_or(name);
    local.eq_ignore_ascii_case("rss") || local == "feed" || local == "RDF"
}

/// A JSON Feed: an object whose `version` names jsonfeed.org.
fn is_json_feed(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        v.get("version")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| s.contains("jsonfeed.org/version"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_element_skips_prolog() {
        assert_eq!(
            root_element("<?xml version=\"1.0\"?>\n<!-- c -->\n<rss version=\"2.0\">"),
            "rss"
        );
        assert_eq!(root_element("<rdf:RDF xmlns:rdf=\"x\">"), "rdf:RDF");
        assert_eq!(root_element("<!DOCTYPE html><html>"), "html");
        assert_eq!(root_element("<?xml"), "");
        assert!(is_feed_root("rdf:RDF"));
        assert!(is_feed_root("feed"));
        assert!(!is_feed_root("html"));
    }

    #[test]
    fn author_lists_split_only_into_full_names() {
        assert_eq!(
            split_author_list("Ngozi Okafor, Erik Lindqvist and Haruto Tanaka"),
            Some(vec![
                "Ngozi Okafor".into(),
                "Erik Lindqvist".into(),
                "Haruto Tanaka".into()
            ])
        );
        assert_eq!(split_author_list("Smith, John"), None);
        assert_eq!(split_author_list("Ada Example"), None);
    }

    #[test]
    fn headline_is_first_sentence_capped() {
        assert_eq!(
            headline_from("One thing happened. Then more."),
            "One thing happened."
        );
        assert_eq!(headline_from(&"x".repeat(150)).chars().count(), 101);
    }
}
