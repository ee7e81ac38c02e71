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

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use feed_rs::model;

use super::arxiv::paper_id_of;
use super::feed_lenient::{self, LenientFeed, LenientItem};
use super::markup::{fragment_text, resolve_link};
use super::{
    dates, page_kind, PageFormat, PageKind, ParseContext, ParseError, ParseWarning, Reading,
};
use crate::entry::{clean_text, Entry};

/// The format name used in config and on entries.
pub const NAME: &str = "feed";

/// RSS, Atom and JSON Feed documents.
pub struct Feed;

impl PageFormat for Feed {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognize(&self, text: &str, ctx: &ParseContext<'_>) -> Option<Result<Reading, ParseError>> {
        is_feed(text, ctx).then(|| parse_feed(text, ctx))
    }

    fn parse(&self, text: &str, ctx: &ParseContext<'_>) -> Result<Reading, ParseError> {
        parse_feed(text, ctx)
    }
}

/// Whether a page is a feed: by its declared type or its document root.
fn is_feed(text: &str, ctx: &ParseContext<'_>) -> bool {
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

/// An item's fields as either reader gives them, before they become an [`Entry`].
#[derive(Debug, Default)]
struct ItemFields {
    /// Title, as markup.
    title: Option<String>,
    /// (rel, href), in document order.
    links: Vec<(Option<String>, String)>,
    /// guid / id; empty when the item has none.
    id: String,
    /// Summary, as markup.
    summary: Option<String>,
    /// Content, as markup.
    content: Option<String>,
    /// Published, else updated.
    published: Option<DateTime<Utc>>,
    /// Author display names.
    authors: Vec<String>,
}

impl ItemFields {
    /// Whether a field a reader shows is missing.
    fn lacks_something(&self) -> bool {
        self.links.is_empty()
            || self.title.is_none()
            || (self.summary.is_none() && self.content.is_none())
    }

    /// Fills the fields this reading left empty from another reading of the item.
    fn fill_from(&mut self, other: ItemFields) {
        if self.links.is_empty() {
            self.links = other.links;
        }
        if self.title.is_none() {
            self.title = other.title;
        }
        if self.summary.is_none() && self.content.is_none() {
            self.summary = other.summary;
            self.content = other.content;
        }
        if self.id.is_empty() {
            self.id = other.id;
        }
    }
}

/// Parses any feed: feed-rs first, over a lenient pre-pass (see [`prepare_xml`]); the
/// lenient reader ([`feed_lenient`]) when feed-rs refuses the document or finds no item
/// in a document that has some. A document read only up to a fault gives its entries
/// with a [`ParseWarning::Malformed`].
pub fn parse_feed(text: &str, ctx: &ParseContext<'_>) -> Result<Reading, ParseError> {
    let reference = ctx.reference_date();
    let is_json = page_kind(text) == PageKind::Json;
    let prepared = if is_json {
        prepare_json(text)
    } else {
        prepare_xml(text)
    };
    let strict = read_with_feed_rs(&prepared, ctx);
    let lenient = || {
        if is_json {
            feed_lenient::read_json(text)
        } else {
            Some(feed_lenient::read_xml(&prepared))
        }
    };
    let (source, items, warnings) = match strict {
        Ok(feed) if !feed.entries.is_empty() || !has_items(&prepared, is_json) => {
            let source = feed.title.as_ref().map(|t| t.content.clone());
            let mut items: Vec<ItemFields> = feed.entries.iter().map(fields_of_model).collect();
            // feed-rs skips fields in namespaces it does not expect (`<a10:link href=…/>`
            // in RSS, as .NET writes it; `<xhtml:body>`); the lenient reading of the
            // same items has them, and fills only what feed-rs left empty.
            if !is_json && items.iter().any(ItemFields::lacks_something) {
                let more = feed_lenient::read_xml(&prepared);
                if more.items.len() == items.len() {
                    for (item, seen) in items.iter_mut().zip(more.items) {
                        item.fill_from(fields_of_lenient(seen, reference));
                    }
                }
            }
            (source, items, Vec::new())
        }
        strict => {
            let why = match &strict {
                Ok(_) => "feed-rs found no items".to_owned(),
                Err(e) => e.to_string(),
            };
            let Some(LenientFeed {
                title,
                items,
                fault,
            }) = lenient().filter(|f| !f.items.is_empty() || strict.is_err())
            else {
                return match strict {
                    Ok(_) => Ok(Reading::default()),
                    Err(e) => Err(e),
                };
            };
            if items.is_empty() {
                return Err(strict.err().unwrap_or(ParseError::Malformed {
                    format: NAME,
                    reason: why,
                }));
            }
            let warnings = match (strict.is_err(), fault) {
                (false, None) => Vec::new(),
                (_, fault) => vec![ParseWarning::Malformed {
                    format: NAME,
                    reason: fault.unwrap_or(why),
                }],
            };
            let items = items
                .into_iter()
                .map(|i| fields_of_lenient(i, reference))
                .collect();
            (title, items, warnings)
        }
    };
    let source = source.map(|t| plain_title(&t)).filter(|t| !t.is_empty());
    Ok(Reading {
        entries: items
            .iter()
            .filter_map(|item| entry_from_item(item, source.as_deref(), ctx))
            .collect(),
        warnings,
    })
}

/// feed-rs over the prepared text.
fn read_with_feed_rs(text: &str, ctx: &ParseContext<'_>) -> Result<model::Feed, ParseError> {
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
    parser
        .parse(text.as_bytes())
        .map_err(|e| ParseError::Malformed {
            format: NAME,
            reason: format!("not a readable RSS, Atom or JSON feed: {e}"),
        })
}

/// Whether a document has item elements (or JSON items) at all, so that feed-rs
/// finding none means it did not understand them.
fn has_items(text: &str, is_json: bool) -> bool {
    if is_json {
        return feed_lenient::read_json(text).is_some_and(|f| !f.items.is_empty());
    }
    let lower = text.to_ascii_lowercase();
    ["<item", "<entry", ":item", ":entry"].iter().any(|tag| {
        lower
            .match_indices(tag)
            .any(|(i, m)| lower[i + m.len()..].starts_with(['>', ' ', '\n', '\t', '\r', '/']))
    })
}

/// A feed-rs item's fields.
fn fields_of_model(item: &model::Entry) -> ItemFields {
    ItemFields {
        title: item.title.as_ref().map(|t| t.content.clone()),
        links: item
            .links
            .iter()
            .map(|l| (l.rel.clone(), l.href.clone()))
            .collect(),
        id: item.id.clone(),
        summary: item.summary.as_ref().map(|t| t.content.clone()),
        content: item.content.as_ref().and_then(|c| c.body.clone()),
        published: item.published.or(item.updated),
        authors: item.authors.iter().filter_map(person_name).collect(),
    }
}

/// A lenient reading's fields, dates through the one date parser.
fn fields_of_lenient(item: LenientItem, reference: chrono::NaiveDate) -> ItemFields {
    let date = |d: &Option<String>| {
        d.as_deref()
            .and_then(|t| dates::parse_timestamp(t.trim(), reference))
            .map(|t| t.with_timezone(&Utc))
    };
    ItemFields {
        published: date(&item.published).or_else(|| date(&item.updated)),
        title: item.title,
        links: item.links,
        id: item.id.unwrap_or_default(),
        summary: item.summary,
        content: item.content,
        authors: item
            .authors
            .iter()
            .filter_map(|a| name_of(&fragment_text(a), None))
            .collect(),
    }
}

/// One entry from a feed item; `None` for an item with nothing to show (no title,
/// text, link or id).
fn entry_from_item(
    item: &ItemFields,
    source: Option<&str>,
    ctx: &ParseContext<'_>,
) -> Option<Entry> {
    let summary = item
        .summary
        .as_deref()
        .map(fragment_text)
        .filter(|s| !s.is_empty())
        .or_else(|| item.content.as_deref().map(fragment_text))
        .unwrap_or_default();
    let link = web_link(item, ctx);
    let guid = item.id.trim();
    let title = item
        .title
        .as_deref()
        .map(plain_title)
        .filter(|t| !t.is_empty())
        // RSS 2.0 allows items with only a description; their first words stand in,
        // and failing those the link or id, as readers show such items.
        .or_else(|| (!summary.is_empty()).then(|| headline_from(&summary)))
        .or_else(|| link.clone())
        .or_else(|| (!guid.is_empty()).then(|| clean_text(guid)))?;
    let mut authors = item.authors.clone();
    if let [one] = authors.as_slice() {
        if let Some(list) = split_author_list(one) {
            authors = list;
        }
    }
    let (arxiv_id, guid) = if guid.is_empty() {
        (link.as_deref().and_then(paper_id_of), None)
    } else {
        match paper_id_of(guid) {
            Some(id) => (Some(id), None),
            None => (None, Some(guid.to_owned())),
        }
    };
    let published = item.published.map(|t| t.fixed_offset());
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

/// A title as plain text: markup removed and entities decoded, also when the markup
/// was escaped once more (`&lt;p&gt;Entry content&lt;/p&gt;` in an RSS title).
fn plain_title(title: &str) -> String {
    let text = fragment_text(title);
    if looks_like_markup(&text) {
        fragment_text(&text)
    } else {
        text
    }
}

/// Whether text holds an HTML tag (`<p>`, `</b>`, `<br/>`), not just a `<` sign.
fn looks_like_markup(text: &str) -> bool {
    text.match_indices('<').any(|(i, _)| {
        let rest = &text[i + 1..];
        let rest = rest.strip_prefix('/').unwrap_or(rest);
        rest.starts_with(|c: char| c.is_ascii_alphabetic())
            && rest.find('>').is_some_and(|end| !rest[..end].contains('<'))
    })
}

/// The item's web page: its `alternate` link (or a link without `rel`), else the first
/// link, else an id that is itself a URL (RSS `guid isPermaLink`).
fn web_link(item: &ItemFields, ctx: &ParseContext<'_>) -> Option<String> {
    let preferred = item
        .links
        .iter()
        .find(|(rel, _)| matches!(rel.as_deref(), None | Some("alternate")))
        .or_else(|| item.links.first())
        .map(|(_, href)| href.as_str());
    preferred
        .and_then(|href| resolve_link(href.trim(), ctx.url))
        .or_else(|| resolve_link(item.id.trim(), None))
}

/// Makes a document feed-rs can read, changing nothing a reader would see: leading
/// whitespace dropped (a blank line before `<?xml` is a fatal error to an XML
/// parser), the declaration's `encoding` set to UTF-8 (the text was decoded already,
/// and quick-xml would otherwise decode it again), a missing or unknown RSS `version`
/// read as 2.0 (0.93, 0.94 and 2.0 are supersets of 0.91/0.92), and the Atom 0.3 and
/// RSS 0.90 namespaces read as Atom 1.0 and RSS 1.0, whose elements they share (Atom
/// 0.3's `issued`/`modified` become `published`/`updated`).
pub fn prepare_xml(text: &str) -> Cow<'_, str> {
    let trimmed = text.trim_start_matches(super::text::is_space);
    let mut out = Cow::Borrowed(trimmed);
    if let Some(rest) = out.strip_prefix("<?xml") {
        if let Some(end) = rest.find("?>") {
            let decl = &rest[..end];
            let fixed = ENCODING_ATTR.replace(decl, "encoding=\"utf-8\"");
            if fixed != decl {
                out = Cow::Owned(format!("<?xml{fixed}{}", &rest[end..]));
            }
        }
    }
    if root_element(&out) == "rss" {
        let version = RSS_VERSION
            .captures(&out)
            .and_then(|c| c.get(1))
            .map(|m| m.as_str().to_owned());
        if !matches!(version.as_deref(), Some("2.0" | "0.91" | "0.92")) {
            out = Cow::Owned(match version {
                Some(_) => RSS_VERSION
                    .replace(&out, "<rss${pre}version=\"2.0\"")
                    .into_owned(),
                None => out.replacen("<rss", "<rss version=\"2.0\"", 1),
            });
        }
    }
    if out.contains(ATOM_03) {
        // Both ends of each date element are renamed alike, so they stay paired.
        let renamed = ATOM_03_DATES.replace_all(&out, |c: &regex::Captures<'_>| {
            let new = if &c["name"] == "issued" {
                "published"
            } else {
                "updated"
            };
            format!(
                "<{}{}{new}",
                &c["close"],
                c.name("prefix").map_or("", |m| m.as_str())
            )
        });
        out = Cow::Owned(renamed.replace(ATOM_03, "http://www.w3.org/2005/Atom"));
    }
    if out.contains(RSS_090) {
        out = Cow::Owned(out.replace(RSS_090, "http://purl.org/rss/1.0/"));
    }
    out
}

/// Atom 0.3's namespace.
const ATOM_03: &str = "http://purl.org/atom/ns#";
/// RSS 0.90's namespace.
const RSS_090: &str = "http://my.netscape.com/rdf/simple/0.9/";

/// `encoding="…"` in an XML declaration.
static ENCODING_ATTR: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r#"encoding\s*=\s*["'][^"']*["']"#).expect("valid regex")
});
/// The `version` attribute of the `<rss>` start tag.
static RSS_VERSION: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r#"<rss(?P<pre>[^>]*?\s)version\s*=\s*["']([^"']*)["']"#)
        .expect("valid regex")
});
/// Atom 0.3's date elements, start and end tags.
static ATOM_03_DATES: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(r"<(?P<close>/?)(?P<prefix>[A-Za-z0-9_]+:)?(?P<name>issued|modified)\b")
        .expect("valid regex")
});

/// A JSON Feed with its `version` as feed-rs expects it (`https://`): JSON Feed 1 was
/// published with `http://jsonfeed.org/version/1`, and many feeds still say so.
fn prepare_json(text: &str) -> Cow<'_, str> {
    if text.contains("\"http://jsonfeed.org/version/") {
        Cow::Owned(text.replacen(
            "\"http://jsonfeed.org/version/",
            "\"https://jsonfeed.org/version/",
            1,
        ))
    } else {
        Cow::Borrowed(text)
    }
}

/// A person's display name. RSS 2.0 `<author>` holds an email address, optionally
/// with the name in parentheses ("ed@example.org (Ed Smith)"); feed-rs keeps it as the
/// email of a person named "author", so the name is taken from the parentheses then.
fn person_name(person: &model::Person) -> Option<String> {
    name_of(&person.name, person.email.as_deref())
}

/// A display name from a name and an email address (see [`person_name`]); a name that
/// is itself "email (Name)" gives the name in parentheses.
fn name_of(name: &str, email: Option<&str>) -> Option<String> {
    let name = clean_text(name);
    let placeholder = name.is_empty() || name == "author";
    // "ed@example.org (Ed Smith)" given as the name: the name is in the parentheses.
    let address_with_name = email.is_none() && name.contains('@') && name.contains('(');
    if !placeholder && !address_with_name {
        return Some(name);
    }
    let email = clean_text(email.unwrap_or(&name));
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
    local.eq_ignore_ascii_case("rss")
        || local == "feed"
        || local.eq_ignore_ascii_case("rdf")
        // CDF, Microsoft's channel format, which feedparser reads too.
        || local == "CHANNEL"
}

/// A JSON Feed: an object whose `version` names jsonfeed.org.
fn is_json_feed(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text).is_ok_and(|v| {
        v.get("version")
            .and_then(serde_json::Value::as_str)
            .is_some_and(|s| s.contains("jsonfeed.org/version"))
            // A feed without `version` (or with a wrong one) still has its items.
            || (v.get("items").is_some_and(serde_json::Value::is_array)
                && (v.get("title").is_some() || v.get("feed_url").is_some() || v.get("home_page_url").is_some()))
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
