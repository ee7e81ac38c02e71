//! Feed rendering from stored items: RSS 2.0, Atom and JSON Feed 1.1. The one place
//! that turns items into feed bytes, and the one place that decides an item's link
//! ([`feed_link_for`]), which notifiers reuse.
//!
//! Every function here is pure: the same channel and items give the same bytes, so a
//! feed's [`etag`] changes exactly when its content does. The three formats share one
//! item mapping ([`FeedItem`]): title, HTML description, guid, date, link, authors.
//!
//! - **Guids are unique per feed.** Readers such as newsboat key items by guid alone,
//!   across every feed they follow: an item in `/feed.xml` and in a per-source feed
//!   must have two guids, or one feed loses it. The all-items feed uses the item's key
//!   (as before), other feeds append their scope ([`Channel::guid_scope`]).
//! - **Dates say when an item appeared** ([`FeedDate`]): a paper from 2019 that is on
//!   today's listing is new today, so it sorts at the top of a reader. The paper's own
//!   date stays in the description (so in Atom's summary too) and in the JSON Feed
//!   item's `_lookout` extension.
//!
//! Text from captured pages is hostile by default. XML writers escape markup, but no
//! escaping makes a control character legal in XML 1.0, so every text field first goes
//! through [`xml_safe`]; the description is HTML and is built from escaped pieces, so a
//! `<script>` in a summary reaches the reader as text.

use std::borrow::Cow;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::store::StoredItem;

/// The Atom namespace, for the RSS channel's `atom:link rel="self"`.
const ATOM_NS: &str = "http://www.w3.org/2005/Atom";

/// The JSON Feed version this module writes.
const JSON_FEED_VERSION: &str = "https://jsonfeed.org/version/1.1";

/// The Dublin Core namespace, for RSS `dc:creator` (RSS's own `<author>` must be an
/// email address, which listings do not give).
const DC_NS: &str = "http://purl.org/dc/elements/1.1/";

/// The three syndication formats every feed is offered in. In the config
/// (`[feed] file_formats`) they are `"rss"`, `"atom"` and `"json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedFormat {
    /// RSS 2.0 (`.xml`).
    Rss,
    /// Atom 1.0 (`.atom`).
    Atom,
    /// JSON Feed 1.1 (`.json`).
    Json,
}

impl FeedFormat {
    /// File extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            FeedFormat::Rss => "xml",
            FeedFormat::Atom => "atom",
            FeedFormat::Json => "json",
        }
    }

    /// `Content-Type` header value.
    pub fn content_type(self) -> &'static str {
        match self {
            FeedFormat::Rss => "application/rss+xml; charset=utf-8",
            FeedFormat::Atom => "application/atom+xml; charset=utf-8",
            FeedFormat::Json => "application/feed+json; charset=utf-8",
        }
    }

    /// The format a file extension names.
    pub fn from_extension(ext: &str) -> Option<FeedFormat> {
        match ext {
            "xml" | "rss" => Some(FeedFormat::Rss),
            "atom" => Some(FeedFormat::Atom),
            "json" => Some(FeedFormat::Json),
            _ => None,
        }
    }
}

/// Which of an item's dates dates it in a feed (`[feed] date` in the config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedDate {
    /// When the item appeared: the date its listing gives for that (the Hugging Face
    /// daily-papers day, the arXiv announcement day, a feed item's date), else when
    /// lookout first saw it. New items sort at the top of a reader.
    #[default]
    Appeared,
    /// The thing's own publication date (a paper's arXiv date), else as `Appeared`.
    Published,
}

impl FeedDate {
    /// The date `item` shows under this choice.
    pub fn of(self, item: &StoredItem) -> DateTime<Utc> {
        let appeared = item.listed.map(|t| t.to_utc()).unwrap_or(item.first_seen);
        match self {
            FeedDate::Appeared => appeared,
            FeedDate::Published => item.published.map_or(appeared, |t| t.to_utc()),
        }
    }
}

/// What a feed says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    /// Feed title ("lookout", "lookout: hf-daily", "lookout alert: diffusion").
    pub title: String,
    /// One-line description.
    pub description: String,
    /// The site the feed belongs to: the configured base URL, else
    /// `http://127.0.0.1:8080/`.
    pub site_link: String,
    /// The absolute URL this feed is served at (the `rel="self"` link).
    pub self_url: String,
    /// URL of an XSL stylesheet that renders the feed as a page in a browser; written
    /// as an `xml-stylesheet` processing instruction in the XML formats.
    pub stylesheet: Option<String>,
    /// What makes this feed's guids its own: `None` for the all-items feed (guids are
    /// item keys), else the feed's scope (`source:NAME`, `rule:NAME`), appended to
    /// each key as `KEY@SCOPE`.
    pub guid_scope: Option<String>,
    /// Which date dates the items.
    pub dates: FeedDate,
}

/// One item as all three formats show it, with every text field already XML-safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedItem {
    /// The guid, stable and unique to this feed: the item's store key, with the
    /// channel's [`Channel::guid_scope`].
    pub guid: String,
    /// Title, plain text.
    pub title: String,
    /// Where the item links to, see [`feed_link_for`].
    pub link: Option<String>,
    /// Description as HTML: the escaped summary, then authors and publisher.
    pub description_html: String,
    /// The item's date, as [`Channel::dates`] chooses.
    pub date: DateTime<Utc>,
    /// The thing's own publication date, when known.
    pub published: Option<DateTime<Utc>>,
    /// When a stored field last changed (never before `date`).
    pub updated: DateTime<Utc>,
    /// Author names.
    pub authors: Vec<String>,
}

impl FeedItem {
    /// Maps a stored item to what `channel` shows.
    pub fn from_stored(item: &StoredItem, channel: &Channel) -> FeedItem {
        let date = channel.dates.of(item);
        let guid = match &channel.guid_scope {
            None => Cow::Borrowed(item.key.as_str()),
            Some(scope) => Cow::Owned(format!("{}@{scope}", item.key)),
        };
        FeedItem {
            guid: xml_safe(&guid).into_owned(),
            title: xml_safe(&item.title).into_owned(),
            link: feed_link_for(item).map(|link| xml_safe(&link).into_owned()),
            description_html: description_html(item, date),
            date,
            published: item.published.map(|t| t.to_utc()),
            updated: item.updated_at.max(date),
            authors: item
                .authors
                .iter()
                .map(|name| xml_safe(name).into_owned())
                .collect(),
        }
    }
}

/// The link an item points to, for feeds and notifiers alike: the link a capture gave;
/// else where its page format finds it by title (a Hugging Face text capture carries
/// no links, and the papers page's search finds the paper); else its arXiv abstract
/// page; else none.
pub fn feed_link_for(item: &StoredItem) -> Option<String> {
    if let Some(link) = item.link.as_deref().filter(|l| !l.trim().is_empty()) {
        return Some(link.to_owned());
    }
    if let Some(link) = crate::parse::link_by_title(&item.format, &item.title) {
        return Some(link);
    }
    item.arxiv_id
        .as_deref()
        .filter(|id| !id.trim().is_empty())
        .map(|id| format!("https://arxiv.org/abs/{}", id.trim()))
}

/// The description as HTML: the summary paragraph, then one line naming the authors
/// (or their count), the publisher, and the publication date when it is not the feed
/// date, each piece escaped.
fn description_html(item: &StoredItem, date: DateTime<Utc>) -> String {
    let mut html = String::new();
    let summary = xml_safe(item.summary.trim());
    if !summary.is_empty() {
        html.push_str("<p>");
        html.push_str(&escape_html(&summary));
        html.push_str("</p>");
    }
    let authors = if !item.authors.is_empty() {
        Some(item.authors.join(", "))
    } else {
        match item.author_count {
            Some(1) => Some("1 author".to_owned()),
            Some(n) if n > 0 => Some(format!("{n} authors")),
            _ => None,
        }
    };
    let publisher = item.publisher.as_deref().filter(|p| !p.trim().is_empty());
    let published = item
        .published
        .filter(|t| t.to_utc() != date)
        .map(|t| format!("published {}", t.format("%-d %b %Y")));
    let line: Vec<&str> = authors
        .as_deref()
        .into_iter()
        .chain(publisher)
        .chain(published.as_deref())
        .collect();
    if !line.is_empty() {
        html.push_str("<p>");
        html.push_str(&escape_html(&xml_safe(&line.join(" · "))));
        html.push_str("</p>");
    }
    html
}

/// Escapes text for HTML and XML element content and attribute values: `&`, `<`, `>`,
/// `"` and `'` become references, and characters XML 1.0 forbids are dropped (see
/// [`xml_safe`]). The one escaping function of the crate: the feeds' HTML descriptions,
/// the status page and the OPML list all go through it.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for ch in xml_safe(text).chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(ch),
        }
    }
    out
}

/// Whether XML 1.0 allows `ch` in a document at all (the `Char` production). Rust
/// strings cannot hold surrogates, so what remains is the C0 controls other than tab,
/// LF and CR, and U+FFFE / U+FFFF.
fn xml_char(ch: char) -> bool {
    matches!(ch, '\t' | '\n' | '\r' | '\u{20}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text` without the characters XML 1.0 forbids; borrowed when there were none, which
/// is almost always.
pub fn xml_safe(text: &str) -> Cow<'_, str> {
    if text.chars().all(xml_char) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.chars().filter(|&ch| xml_char(ch)).collect())
    }
}

/// Renders an RSS 2.0 feed of `items`, in the order given (newest first).
pub fn render_rss(channel: &Channel, items: &[StoredItem]) -> Vec<u8> {
    let rss_items = items
        .iter()
        .map(|item| rss_item(FeedItem::from_stored(item, channel)))
        .collect();
    with_stylesheet(
        rss_document(channel, rss_items),
        channel.stylesheet.as_deref(),
    )
}

/// One item as RSS shows it.
fn rss_item(item: FeedItem) -> rss::Item {
    rss::Item {
        title: Some(item.title),
        link: item.link,
        description: (!item.description_html.is_empty()).then_some(item.description_html),
        author: None,
        dublin_core_ext: (!item.authors.is_empty()).then(|| {
            rss::extension::dublincore::DublinCoreExtension {
                creators: item.authors,
                ..Default::default()
            }
        }),
        // Our keys ("arxiv:...", "title:...") are never URLs, so never permalinks.
        guid: Some(rss::Guid {
            value: item.guid,
            permalink: false,
        }),
        pub_date: Some(item.date.to_rfc2822()),
        ..rss::Item::default()
    }
}

/// The RSS document of `channel` with `rss_items`, without the stylesheet instruction.
fn rss_document(channel: &Channel, rss_items: Vec<rss::Item>) -> Vec<u8> {
    let self_link = rss::extension::Extension {
        name: "atom:link".to_owned(),
        value: None,
        attrs: BTreeMap::from([
            ("href".to_owned(), xml_safe(&channel.self_url).into_owned()),
            ("rel".to_owned(), "self".to_owned()),
            ("type".to_owned(), "application/rss+xml".to_owned()),
        ]),
        children: BTreeMap::new(),
    };
    let mut extensions = rss::extension::ExtensionMap::new();
    extensions
        .entry("atom".to_owned())
        .or_default()
        .insert("link".to_owned(), vec![self_link]);

    let rss_channel = rss::Channel {
        title: xml_safe(&channel.title).into_owned(),
        link: xml_safe(&channel.site_link).into_owned(),
        description: xml_safe(&channel.description).into_owned(),
        generator: Some(concat!("lookout ", env!("CARGO_PKG_VERSION")).to_owned()),
        items: rss_items,
        extensions,
        namespaces: BTreeMap::from([
            ("atom".to_owned(), ATOM_NS.to_owned()),
            ("dc".to_owned(), DC_NS.to_owned()),
        ]),
        ..rss::Channel::default()
    };
    rss_channel
        .write_to(Vec::new())
        // The writer is a Vec, whose writes cannot fail, and quick-xml validates
        // nothing else while writing, so this is unreachable.
        .expect("writing RSS into memory cannot fail")
}

/// Renders an Atom feed of `items`, in the order given (newest first).
///
/// Atom ids must be IRIs and our keys are not, so an entry's id is
/// `urn:lookout:<percent-encoded key>`: as stable as the RSS guid, and reversible.
pub fn render_atom(channel: &Channel, items: &[StoredItem]) -> Vec<u8> {
    let entries = items
        .iter()
        .map(|item| atom_entry(FeedItem::from_stored(item, channel)))
        .collect();
    with_stylesheet(
        atom_document(channel, feed_updated(items), entries),
        channel.stylesheet.as_deref(),
    )
}

/// One item as an Atom entry.
fn atom_entry(item: FeedItem) -> atom_syndication::Entry {
    atom_syndication::Entry {
        title: atom_syndication::Text::plain(item.title),
        id: atom_id(&item.guid),
        // Readers sort Atom by `updated`: the feed date, or a later change.
        updated: item.updated.fixed_offset(),
        // The feed date, as in RSS: a reader that sorts by `published` must see a
        // new item as new. The thing's own date is in the summary.
        published: Some(item.date.fixed_offset()),
        authors: item
            .authors
            .into_iter()
            .map(|name| atom_syndication::Person {
                name,
                ..atom_syndication::Person::default()
            })
            .collect(),
        links: item
            .link
            .map(|href| atom_syndication::Link {
                href,
                rel: "alternate".to_owned(),
                ..atom_syndication::Link::default()
            })
            .into_iter()
            .collect(),
        summary: (!item.description_html.is_empty())
            .then(|| atom_syndication::Text::html(item.description_html)),
        ..atom_syndication::Entry::default()
    }
}

/// The Atom document of `channel` with `entries`, dated `updated`, without the
/// stylesheet instruction.
fn atom_document(
    channel: &Channel,
    updated: DateTime<Utc>,
    entries: Vec<atom_syndication::Entry>,
) -> Vec<u8> {
    let self_url = xml_safe(&channel.self_url).into_owned();
    let feed = atom_syndication::Feed {
        title: atom_syndication::Text::plain(xml_safe(&channel.title).into_owned()),
        id: self_url.clone(),
        updated: updated.fixed_offset(),
        // Atom wants an author on every entry or on the feed; the feed's own name is
        // the honest one when a capture named nobody.
        authors: vec![atom_syndication::Person {
            name: xml_safe(&channel.title).into_owned(),
            ..atom_syndication::Person::default()
        }],
        subtitle: (!channel.description.is_empty())
            .then(|| atom_syndication::Text::plain(xml_safe(&channel.description).into_owned())),
        links: vec![
            atom_syndication::Link {
                href: self_url,
                rel: "self".to_owned(),
                mime_type: Some("application/atom+xml".to_owned()),
                ..atom_syndication::Link::default()
            },
            atom_syndication::Link {
                href: xml_safe(&channel.site_link).into_owned(),
                rel: "alternate".to_owned(),
                ..atom_syndication::Link::default()
            },
        ],
        generator: Some(atom_syndication::Generator {
            value: "lookout".to_owned(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").to_owned()),
        }),
        entries,
        ..atom_syndication::Feed::default()
    };
    feed.write_to(Vec::new())
        // As for RSS: a Vec writer cannot fail.
        .expect("writing Atom into memory cannot fail")
}

/// Renders a JSON Feed 1.1 of `items`, in the order given (newest first).
pub fn render_json_feed(channel: &Channel, items: &[StoredItem]) -> Vec<u8> {
    let json_items = items
        .iter()
        .map(|item| json_item(FeedItem::from_stored(item, channel)))
        .collect();
    json_document(channel, json_items)
}

/// One item as a JSON Feed item object.
fn json_item(item: FeedItem) -> serde_json::Value {
    use serde_json::{json, Map, Value};
    let mut obj = Map::new();
    obj.insert("id".into(), Value::from(item.guid));
    if let Some(link) = item.link {
        obj.insert("url".into(), Value::from(link));
    }
    obj.insert("title".into(), Value::from(item.title));
    obj.insert("content_html".into(), Value::from(item.description_html));
    obj.insert("date_published".into(), Value::from(item.date.to_rfc3339()));
    obj.insert(
        "date_modified".into(),
        Value::from(item.updated.to_rfc3339()),
    );
    // JSON Feed has one publication date; the thing's own goes in lookout's
    // extension object (JSON Feed 1.1: keys starting with "_").
    if let Some(published) = item.published {
        obj.insert(
            "_lookout".into(),
            json!({ "published": published.to_rfc3339() }),
        );
    }
    if !item.authors.is_empty() {
        let authors: Vec<Value> = item
            .authors
            .into_iter()
            .map(|name| json!({ "name": name }))
            .collect();
        obj.insert("authors".into(), Value::from(authors));
    }
    Value::Object(obj)
}

/// Renders an interest's feed in `format`: each item's description starts with its
/// score and the terms that weighed most ("why this paper"), and a JSON Feed item
/// carries them as `_lookout: { score, terms }`. Rendered whole (an interest's feed
/// holds only the items at or above its threshold, so the splicing the other feeds
/// use would save little).
pub fn render_scored(
    format: FeedFormat,
    channel: &Channel,
    items: &[crate::store::ScoredItem],
) -> Vec<u8> {
    let shown = items.iter().map(|scored| {
        let mut item = FeedItem::from_stored(&scored.item, channel);
        let terms: Vec<&str> = scored.terms.iter().map(|(t, _)| t.as_str()).collect();
        let why = format!(
            "Score {} · why: {}",
            crate::alert::interest::shown_score(scored.score),
            terms.join(", ")
        );
        item.description_html = format!(
            "<p>{}</p>{}",
            escape_html(&xml_safe(&why)),
            item.description_html
        );
        (item, scored)
    });
    match format {
        FeedFormat::Rss => with_stylesheet(
            rss_document(channel, shown.map(|(i, _)| rss_item(i)).collect()),
            channel.stylesheet.as_deref(),
        ),
        FeedFormat::Atom => {
            let stored: Vec<StoredItem> = items.iter().map(|s| s.item.clone()).collect();
            let entries = shown.map(|(i, _)| atom_entry(i)).collect();
            with_stylesheet(
                atom_document(channel, feed_updated(&stored), entries),
                channel.stylesheet.as_deref(),
            )
        }
        FeedFormat::Json => {
            let json_items = shown
                .map(|(item, scored)| {
                    let mut value = json_item(item);
                    if let Some(obj) = value.as_object_mut() {
                        let ext = obj
                            .entry("_lookout")
                            .or_insert_with(|| serde_json::json!({}));
                        if let Some(ext) = ext.as_object_mut() {
                            ext.insert("score".into(), serde_json::json!(scored.score));
                            let terms: Vec<String> = scored
                                .terms
                                .iter()
                                .map(|(t, _)| xml_safe(t).into_owned())
                                .collect();
                            ext.insert("terms".into(), serde_json::json!(terms));
                        }
                    }
                    value
                })
                .collect();
            json_document(channel, json_items)
        }
    }
}

/// The JSON Feed document of `channel` with `json_items`.
fn json_document(channel: &Channel, json_items: Vec<serde_json::Value>) -> Vec<u8> {
    let feed = serde_json::json!({
        "version": JSON_FEED_VERSION,
        "title": xml_safe(&channel.title),
        "home_page_url": xml_safe(&channel.site_link),
        "feed_url": xml_safe(&channel.self_url),
        "description": xml_safe(&channel.description),
        "items": json_items,
    });
    // Display for a Value cannot fail: every key is a string.
    feed.to_string().into_bytes()
}

/// A feed document cut where its items go, so the publisher can build the document
/// from item fragments it kept from an earlier rendering and render only the items
/// that changed (see `publish.rs`). The whole document is
/// `head, item, separator, item, ..., tail`, byte for byte what [`render_rss`],
/// [`render_atom`] and [`render_json_feed`] give for the same items (a property test
/// holds them to it).
///
/// RSS and Atom items are rendered by the same crates as whole documents are: a
/// document with one item, less the empty document's head and tail. The writers put
/// items last in the channel (and text is escaped, the description is CDATA of
/// escaped HTML), so the cut is exact; [`Frame::item`] checks it anyway.
#[derive(Debug)]
pub struct Frame<'a> {
    format: FeedFormat,
    channel: &'a Channel,
    /// Atom's feed-level `updated`, from all the feed's items.
    updated: DateTime<Utc>,
    /// The empty document as the crate writes it (no stylesheet instruction).
    empty: Vec<u8>,
    /// Where items go in `empty`.
    cut: usize,
    /// The stylesheet instruction and where it goes in `empty`, if any.
    stylesheet: Vec<u8>,
    stylesheet_at: usize,
}

impl<'a> Frame<'a> {
    /// The frame of `channel`'s feed of `items` in `format`. `None` when the
    /// document has no place to cut (which the crates' writers never do).
    pub fn new(
        format: FeedFormat,
        channel: &'a Channel,
        items: &[StoredItem],
    ) -> Option<Frame<'a>> {
        Frame::updated_at(format, channel, feed_updated(items))
    }

    /// [`Frame::new`] for a feed whose newest item change (`updated_at`) is
    /// `updated`, or the Unix epoch for an empty feed: for a caller that knows it
    /// without the items at hand.
    pub fn updated_at(
        format: FeedFormat,
        channel: &'a Channel,
        updated: DateTime<Utc>,
    ) -> Option<Frame<'a>> {
        let closing = |empty: Vec<u8>, tail: &[u8]| {
            let cut = empty.len().checked_sub(tail.len())?;
            (empty[cut..] == *tail).then_some((empty, cut))
        };
        let (empty, cut) = match format {
            FeedFormat::Rss => closing(rss_document(channel, Vec::new()), RSS_TAIL)?,
            FeedFormat::Atom => closing(atom_document(channel, updated, Vec::new()), ATOM_TAIL)?,
            FeedFormat::Json => {
                let empty = json_document(channel, Vec::new());
                // A key is the only place an unescaped `"items":[]` can appear: inside
                // a string every quote is escaped.
                let at = find(&empty, JSON_ITEMS)?;
                (empty, at + JSON_ITEMS.len() - 1)
            }
        };
        let (stylesheet, stylesheet_at) = match (format, channel.stylesheet.as_deref()) {
            (FeedFormat::Json, _) | (_, None) => (Vec::new(), 0),
            (_, Some(href)) => stylesheet_instruction(&empty, href),
        };
        if stylesheet_at > cut {
            return None;
        }
        Some(Frame {
            format,
            channel,
            updated,
            empty,
            cut,
            stylesheet,
            stylesheet_at,
        })
    }

    /// Everything before the first item.
    pub fn head(&self) -> Vec<u8> {
        [
            &self.empty[..self.stylesheet_at],
            &self.stylesheet[..],
            &self.empty[self.stylesheet_at..self.cut],
        ]
        .concat()
    }

    /// What goes between two items.
    pub fn separator(&self) -> &'static [u8] {
        match self.format {
            FeedFormat::Json => b",",
            FeedFormat::Rss | FeedFormat::Atom => b"",
        }
    }

    /// Everything after the last item.
    pub fn tail(&self) -> &[u8] {
        &self.empty[self.cut..]
    }

    /// One item's bytes in this feed. `None` if the writer put anything around the
    /// item other than the empty document (never, for the crate versions in use).
    pub fn item(&self, item: &StoredItem) -> Option<Vec<u8>> {
        let item = FeedItem::from_stored(item, self.channel);
        let one = match self.format {
            FeedFormat::Json => return serde_json::to_vec(&json_item(item)).ok(),
            FeedFormat::Rss => rss_document(self.channel, vec![rss_item(item)]),
            FeedFormat::Atom => atom_document(self.channel, self.updated, vec![atom_entry(item)]),
        };
        let tail = self.tail();
        let fits = one.len() >= self.empty.len()
            && one.starts_with(&self.empty[..self.cut])
            && one.ends_with(tail);
        fits.then(|| one[self.cut..one.len() - tail.len()].to_vec())
    }
}

/// What closes an RSS document after its items.
const RSS_TAIL: &[u8] = b"</channel></rss>";
/// What closes an Atom document after its entries.
const ATOM_TAIL: &[u8] = b"</feed>";
/// The JSON Feed's empty item list, with its key.
const JSON_ITEMS: &[u8] = b"\"items\":[]";

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A strong ETag for feed bytes: the quoted first 128 bits of their SHA-256, in hex.
pub fn etag(bytes: &[u8]) -> String {
    let digest = hex::encode(Sha256::digest(bytes));
    format!("\"{}\"", &digest[..32])
}

/// `urn:lookout:` and the key percent-encoded (an IRI, see [`render_atom`]).
fn atom_id(key: &str) -> String {
    let encoded = percent_encoding::utf8_percent_encode(key, percent_encoding::NON_ALPHANUMERIC);
    format!("urn:lookout:{encoded}")
}

/// The feed's own `updated`: its newest item change. Derived from the items, not the
/// clock, so rendering the same items twice gives the same bytes and ETag.
fn feed_updated(items: &[StoredItem]) -> DateTime<Utc> {
    items
        .iter()
        .map(|item| item.updated_at)
        .max()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

/// Inserts `<?xml-stylesheet type="text/xsl" href="..."?>` right after the XML
/// declaration (where the processing instruction must come, before the root element).
fn with_stylesheet(bytes: Vec<u8>, stylesheet: Option<&str>) -> Vec<u8> {
    let Some(href) = stylesheet else {
        return bytes;
    };
    let (pi, at) = stylesheet_instruction(&bytes, href);
    let mut out = Vec::with_capacity(bytes.len() + pi.len());
    out.extend_from_slice(&bytes[..at]);
    out.extend_from_slice(&pi);
    out.extend_from_slice(&bytes[at..]);
    out
}

/// The stylesheet processing instruction for `bytes` and where it goes: right after
/// the XML declaration, or first with a newline after it when there is none.
fn stylesheet_instruction(bytes: &[u8], href: &str) -> (Vec<u8>, usize) {
    let pi = format!(
        "\n<?xml-stylesheet type=\"text/xsl\" href=\"{}\"?>",
        escape_html(&xml_safe(href))
    );
    let decl_end = if bytes.starts_with(b"<?xml") {
        bytes.windows(2).position(|w| w == b"?>").map(|pos| pos + 2)
    } else {
        None
    };
    match decl_end {
        Some(at) => (pi.into_bytes(), at),
        // No declaration: the instruction may still open the document, without the
        // leading newline that would precede nothing.
        None => (format!("{}\n", pi.trim_start()).into_bytes(), 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(title: &str) -> StoredItem {
        StoredItem {
            id: 1,
            key: "title:x".into(),
            title: title.into(),
            link: None,
            summary: String::new(),
            authors: Vec::new(),
            author_count: None,
            publisher: None,
            source: "drop".into(),
            published: None,
            listed: None,
            arxiv_id: None,
            format: "aitopics".into(),
            first_seen: DateTime::UNIX_EPOCH,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn xml_safe_strips_only_forbidden_characters() {
        assert_eq!(
            xml_safe("a\u{0}b\u{1b}c\td\ne\rf\u{fffe}\u{ffff}g\u{7f}"),
            "abc\td\ne\rfg\u{7f}"
        );
        assert!(matches!(xml_safe("plain ünïcode 🎉"), Cow::Borrowed(_)));
    }

    #[test]
    fn link_prefers_capture_link_then_hf_search_then_arxiv() {
        let mut it = item("Diffusion & Friends");
        it.arxiv_id = Some("2401.00001".into());
        assert_eq!(
            feed_link_for(&it).as_deref(),
            Some("https://arxiv.org/abs/2401.00001")
        );
        it.format = "hf-papers".into();
        assert_eq!(
            feed_link_for(&it).as_deref(),
            Some("https://huggingface.co/papers?q=Diffusion+%26+Friends")
        );
        it.link = Some("https://example.com/p".into());
        assert_eq!(feed_link_for(&it).as_deref(), Some("https://example.com/p"));
        let plain = item("Nothing");
        assert_eq!(feed_link_for(&plain), None);
    }

    #[test]
    fn description_names_authors_or_their_count_and_publisher() {
        let mut it = item("t");
        it.summary = "Uses <b>bold</b> & more".into();
        it.author_count = Some(12);
        it.publisher = Some("Al Jazeera".into());
        assert_eq!(
            description_html(&it, DateTime::UNIX_EPOCH),
            "<p>Uses &lt;b&gt;bold&lt;/b&gt; &amp; more</p><p>12 authors · Al Jazeera</p>"
        );
        it.authors = vec!["Ada".into(), "Bob".into()];
        it.publisher = None;
        assert_eq!(
            description_html(&it, DateTime::UNIX_EPOCH),
            "<p>Uses &lt;b&gt;bold&lt;/b&gt; &amp; more</p><p>Ada, Bob</p>"
        );
    }

    #[test]
    fn etag_is_quoted_stable_and_content_dependent() {
        assert_eq!(etag(b"abc"), etag(b"abc"));
        assert_ne!(etag(b"abc"), etag(b"abd"));
        let tag = etag(b"abc");
        assert!(tag.starts_with('"') && tag.ends_with('"') && tag.len() == 34);
    }

    /// The document a [`Frame`] splices, from its parts.
    fn spliced(format: FeedFormat, channel: &Channel, items: &[StoredItem]) -> Vec<u8> {
        let frame = Frame::new(format, channel, items).expect("the document cuts");
        let mut doc = frame.head();
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                doc.extend_from_slice(frame.separator());
            }
            doc.extend(frame.item(item).expect("the item cuts"));
        }
        doc.extend_from_slice(frame.tail());
        doc
    }

    #[test]
    fn spliced_documents_are_the_whole_renderings() {
        let mut items: Vec<StoredItem> = (0..3)
            .map(|i| {
                let mut it = item(&format!("Paper <{i}> & </item> </entry> ]]>"));
                it.id = i;
                it.key = format!("title:paper {i}");
                it.summary = "\"items\":[] </channel></rss> <![CDATA[".into();
                it.authors = vec!["Ada".into()];
                it.updated_at = DateTime::from_timestamp(1_800_000_000 + i, 0).unwrap();
                it
            })
            .collect();
        items[1].authors.clear();
        for stylesheet in [None, Some("http://h/feed.xsl?a=1&b=2".to_owned())] {
            for guid_scope in [None, Some("rule:x".to_owned())] {
                let channel = Channel {
                    title: "t \"items\":[] </feed>".into(),
                    description: "d".into(),
                    site_link: "http://h/".into(),
                    self_url: "http://h/feed.xml".into(),
                    stylesheet: stylesheet.clone(),
                    guid_scope,
                    dates: FeedDate::Appeared,
                };
                for n in [0, 1, 3] {
                    let items = &items[..n];
                    assert_eq!(
                        spliced(FeedFormat::Rss, &channel, items),
                        render_rss(&channel, items)
                    );
                    assert_eq!(
                        spliced(FeedFormat::Atom, &channel, items),
                        render_atom(&channel, items)
                    );
                    assert_eq!(
                        spliced(FeedFormat::Json, &channel, items),
                        render_json_feed(&channel, items)
                    );
                }
            }
        }
    }

    #[test]
    fn stylesheet_goes_right_after_the_declaration() {
        let out = with_stylesheet(
            b"<?xml version=\"1.0\"?><rss/>".to_vec(),
            Some("/a.xsl?x=1&y=\"2\""),
        );
        assert_eq!(
            String::from_utf8_lossy(&out),
            "<?xml version=\"1.0\"?>\n<?xml-stylesheet type=\"text/xsl\" href=\"/a.xsl?x=1&amp;y=&quot;2&quot;\"?><rss/>"
        );
    }

    #[test]
    fn an_interest_feed_says_each_score_and_why_in_every_format() {
        let channel = Channel {
            title: "t: interest cosmo".into(),
            description: "d".into(),
            site_link: "http://h/".into(),
            self_url: "http://h/interests/cosmo.json".into(),
            stylesheet: None,
            guid_scope: Some("interest:cosmo".into()),
            dates: FeedDate::Appeared,
        };
        let items = [crate::store::ScoredItem {
            item: item("Halos"),
            score: 0.995,
            terms: vec![("dark <matter>".into(), 0.4), ("halo".into(), 0.2)],
        }];
        let json: serde_json::Value =
            serde_json::from_slice(&render_scored(FeedFormat::Json, &channel, &items))
                .expect("JSON");
        let ext = &json["items"][0]["_lookout"];
        assert!((ext["score"].as_f64().expect("score") - 0.995).abs() < 1e-6);
        assert_eq!(ext["terms"], serde_json::json!(["dark <matter>", "halo"]));
        for format in [FeedFormat::Rss, FeedFormat::Atom] {
            let xml = String::from_utf8(render_scored(format, &channel, &items)).expect("utf-8");
            assert!(
                xml.contains("Score 0.995 · why: dark &amp;lt;matter&amp;gt;, halo")
                    || xml.contains("Score 0.995 · why: dark &lt;matter&gt;, halo"),
                "{xml}"
            );
            // The guid is the interest's own, as a rule feed's is the rule's.
            assert!(
                xml.contains("title:x@interest:cosmo")
                    || xml.contains("title%3Ax%40interest%3Acosmo"),
                "{xml}"
            );
        }
    }
}
