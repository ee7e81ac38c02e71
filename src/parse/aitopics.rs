//! AITopics listing (aitopics.org search and topic pages): text capture, HTML page.
//!
//! Each item on the page is a title, the publisher it comes from ("arXiv.org Machine
//! Learning", "Al Jazeera", "MIT Technology Review"), sometimes a date, and a summary.
//!
//! - **Text capture**: after a header ("Goto", "Collaborating Authors", the topic name),
//!   paragraphs come in that order: title / publisher / [date] / summary. Parsed by
//!   structure, see [`parse_text`].
//! - **HTML page**: no public spec; items are read by structure (each result is a block
//!   with one heading link, a source/publisher element, an optional date and a summary),
//!   with tolerant class matching, see [`parse_html`].

use chrono::NaiveDate;
use scraper::ElementRef;
use url::Url;

use super::arxiv::arxiv_id_in;
use super::markup::{self, text_of};
use super::text::{self, is_prose, is_title_like, paragraphs};
use super::{dates, page_kind, PageFormat, PageKind, ParseContext, ParseError, Reading};
use crate::entry::{clean_text, day_start, Entry};

/// The format name used in config and on entries.
pub const NAME: &str = "aitopics";

/// AITopics listings in either shape (text capture, HTML).
pub struct AiTopics;

impl PageFormat for AiTopics {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognize(&self, text: &str, ctx: &ParseContext<'_>) -> Option<Result<Reading, ParseError>> {
        match page_kind(text) {
            PageKind::Markup => {
                sniff_html(text, ctx).then(|| parse_html(text, ctx).map(Reading::from))
            }
            PageKind::Json => None,
            PageKind::Text => recognize_text(text, ctx).map(|e| Ok(e.into())),
        }
    }

    fn parse(&self, text: &str, ctx: &ParseContext<'_>) -> Result<Reading, ParseError> {
        match page_kind(text) {
            PageKind::Markup => parse_html(text, ctx),
            PageKind::Json => Err(ParseError::Malformed {
                format: NAME,
                reason: "AITopics pages are HTML or a text capture, not JSON".into(),
            }),
            PageKind::Text => parse_text(text, ctx),
        }
        .map(Reading::from)
    }
}

// ---------------------------------------------------------------------------------
// Text capture
// ---------------------------------------------------------------------------------

/// Header lines of the AITopics page chrome; any one identifies the site.
const MARKERS: &[&str] = &["collaborating authors", "goto"];

/// A publisher name is a short line: a few words, no sentence.
const LONGEST_PUBLISHER: usize = 80;

/// One line-level unit of an AITopics capture.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    /// A date line.
    Date(NaiveDate),
    /// Any other text (title, publisher, summary, header), whitespace-collapsed.
    Text(String),
}

impl Block {
    fn text(&self) -> Option<&str> {
        match self {
            Block::Text(t) => Some(t),
            Block::Date(_) => None,
        }
    }
}

/// Parses a text capture of an AITopics listing.
///
/// An item is a short title line, a short publisher line, an optional date line and a
/// prose summary, in that order (a date may also come before the publisher). Blocks
/// before the first complete item are the page header. After it, an item missing its
/// summary (title and publisher followed by the next item) is kept with an empty
/// summary rather than glued to its neighbour.
pub fn parse_text(text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let blocks = text_blocks(text, ctx.reference_date());
    let (entries, _) = assemble_covering(&blocks);
    if entries.is_empty() {
        return Err(ParseError::Malformed {
            format: NAME,
            reason: "no title / publisher / summary items found in the text capture".into(),
        });
    }
    Ok(entries)
}

/// A text page's items when it is an AITopics capture, recognised by its real
/// structure: the listing's repeated title / publisher / summary blocks make up most
/// of the page (at least 70% of its blocks, or half with the site's header markers),
/// with at least two items (one with the markers). Any text with blank lines has the
/// odd title/short line/prose triple (a README, an article); only a listing is made of
/// them, and its publishers are names.
fn recognize_text(text: &str, ctx: &ParseContext<'_>) -> Option<Vec<Entry>> {
    let marked = text.lines().take(40).any(|l| {
        MARKERS
            .iter()
            .any(|m| text::trim(l).eq_ignore_ascii_case(m))
    });
    let blocks = text_blocks(text, ctx.reference_date());
    let (entries, covered) = assemble_covering(&blocks);
    let share = |percent: usize| covered * 100 >= blocks.len() * percent;
    // Publishers are proper names ("arXiv.org Machine Learning", "Al Jazeera"): a
    // short line of lower-case words between a heading and a paragraph is prose.
    let named = entries.iter().all(|e| {
        e.source
            .as_deref()
            .is_some_and(|p| p.chars().any(char::is_uppercase))
    });
    let listing = (entries.len() >= 2 && share(70)) || (marked && !entries.is_empty() && share(50));
    (listing && named).then_some(entries)
}

/// Splits the capture into line blocks. Within a paragraph, each line is its own block,
/// except that lines continuing a sentence (starting lower-case after prose) are
/// joined, for captures that wrap long summaries.
fn text_blocks(text: &str, reference: NaiveDate) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    for para in paragraphs(text) {
        let mut in_para = 0usize;
        for line in para {
            if let Some(d) = dates::parse_date(line, reference) {
                blocks.push(Block::Date(d));
                in_para += 1;
                continue;
            }
            let line = clean_text(line);
            let continues = in_para > 0 && line.starts_with(|c: char| c.is_lowercase());
            match blocks.last_mut() {
                Some(Block::Text(prev)) if continues && is_prose(prev) => {
                    prev.push(' ');
                    prev.push_str(&line);
                }
                _ => blocks.push(Block::Text(line)),
            }
            in_para += 1;
        }
    }
    blocks
}

/// A title/publisher/date/summary match starting at one block.
struct Item {
    title: String,
    publisher: String,
    date: Option<NaiveDate>,
    summary: Option<String>,
    /// Blocks consumed.
    len: usize,
}

/// Matches an item at `blocks[i..]`: title, then publisher and an optional date in
/// either order, then a summary if one follows. The summary is prose; with
/// `short_summary` (past the header) a short line counts too when the next item starts
/// right after it, so a one-line teaser is neither lost nor taken for a title.
fn item_at(blocks: &[Block], i: usize, short_summary: bool) -> Option<Item> {
    let title = blocks.get(i)?.text().filter(|t| is_title_like(t))?;
    let mut j = i + 1;
    let mut date = None;
    if let Some(Block::Date(d)) = blocks.get(j) {
        date = Some(*d);
        j += 1;
    }
    let publisher = blocks.get(j)?.text().filter(|t| is_publisher_like(t))?;
    j += 1;
    if let (None, Some(Block::Date(d))) = (date, blocks.get(j)) {
        date = Some(*d);
        j += 1;
    }
    let starts_item = |k: usize| {
        k >= blocks.len() || item_at(blocks, k, false).is_some_and(|n| n.summary.is_some())
    };
    let summary = blocks
        .get(j)
        .and_then(Block::text)
        .filter(|t| is_prose(t) || (short_summary && starts_item(j + 1)));
    if summary.is_some() {
        j += 1;
    }
    Some(Item {
        title: title.to_owned(),
        publisher: publisher.to_owned(),
        date,
        summary: summary.map(str::to_owned),
        len: j - i,
    })
}

/// A publisher line: short, few words, not prose.
fn is_publisher_like(text: &str) -> bool {
    text.chars().count() <= LONGEST_PUBLISHER
        && text.split_whitespace().count() <= 10
        && !is_prose(text)
}

/// Groups blocks into entries (see [`parse_text`]), and says how many of the blocks
/// the entries were made of.
fn assemble_covering(blocks: &[Block]) -> (Vec<Entry>, usize) {
    let mut covered = 0;
    let mut entries = Vec::new();
    let mut i = 0;
    while i < blocks.len() {
        let found = item_at(blocks, i, !entries.is_empty());
        let take = match &found {
            // A complete item always counts.
            Some(item) if item.summary.is_some() => true,
            // An item without a summary counts once the header is behind us, and only
            // if what follows is another item (or the end), so header or footer lines
            // are not taken for one.
            Some(item) => {
                !entries.is_empty() && {
                    let next = i + item.len;
                    next >= blocks.len()
                        || item_at(blocks, next, false).is_some_and(|n| n.summary.is_some())
                }
            }
            None => false,
        };
        match found {
            Some(item) if take => {
                i += item.len;
                covered += item.len;
                entries.push(Entry {
                    title: item.title,
                    link: None,
                    summary: item.summary.unwrap_or_default(),
                    authors: Vec::new(),
                    author_count: None,
                    source: Some(item.publisher),
                    published: item.date.map(day_start),
                    // An aggregator's date is when it listed the story.
                    listed: item.date.map(day_start),
                    arxiv_id: None,
                    guid: None,
                    format: NAME,
                });
            }
            _ => i += 1,
        }
    }
    (entries, covered)
}

// ---------------------------------------------------------------------------------
// HTML page
// ---------------------------------------------------------------------------------

/// Whether an HTML page is an AITopics page: fetched from aitopics.org, or saved from
/// it (its `<title>` names AITopics, or it links documents as `aitopics.org/doc/` or
/// site-relative `/doc/`). A page that merely mentions the site is not claimed.
fn sniff_html(text: &str, ctx: &ParseContext<'_>) -> bool {
    if ctx
        .url
        .is_some_and(|u| u.host_str().is_some_and(|h| h.ends_with("aitopics.org")))
    {
        return true;
    }
    let lower = text.to_ascii_lowercase();
    let title = lower
        .find("<title")
        .and_then(|start| {
            let rest = lower.get(start..)?;
            rest.find("</title").and_then(|end| rest.get(..end))
        })
        .unwrap_or("");
    title.contains("aitopics")
        || lower.contains("aitopics.org/doc/")
        || (lower.contains("aitopics.org") && lower.contains("href=\"/doc/"))
}

/// What a part of an item is, told by the words of its class names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Title,
    Source,
    Date,
    Summary,
}

/// Class-name words and the role they give. A class is split into words
/// (`summary-source`, `doc_publisher`, `SourceName`) and read from the last word: a role
/// word decides, a filler word ([`FILLER_WORDS`]) defers to the word before it, any
/// other word means no role. So `summary-source` is a source, `summary-text` a summary,
/// and `summary-meta` or `summary-item` (wrappers) nothing.
const ROLE_WORDS: &[(&str, Role)] = &[
    ("title", Role::Title),
    ("headline", Role::Title),
    ("source", Role::Source),
    ("publisher", Role::Source),
    ("origin", Role::Source),
    ("venue", Role::Source),
    ("journal", Role::Source),
    ("date", Role::Date),
    ("time", Role::Date),
    ("published", Role::Date),
    ("pubdate", Role::Date),
    ("timestamp", Role::Date),
    ("summary", Role::Summary),
    ("abstract", Role::Summary),
    ("snippet", Role::Summary),
    ("description", Role::Summary),
    ("teaser", Role::Summary),
    ("excerpt", Role::Summary),
];

/// Words that name how a part is shown, not what it is.
const FILLER_WORDS: &[&str] = &[
    "text", "body", "content", "name", "label", "line", "value", "link", "wrap", "wrapper",
];

/// The role an element's classes give it, if any.
fn role_of(el: ElementRef<'_>) -> Option<Role> {
    el.value().classes().find_map(|class| {
        for word in markup::class_words(class).iter().rev() {
            if let Some((_, role)) = ROLE_WORDS.iter().find(|(w, _)| w == word) {
                return Some(*role);
            }
            if !FILLER_WORDS.contains(&word.as_str()) {
                return None;
            }
        }
        None
    })
}

/// Parses an AITopics HTML listing by structure.
///
/// Items are the blocks around each heading link (`h2`-`h4 a[href]`, or links whose
/// class says title); within an item, parts are told by the words of their class names
/// (source/publisher, date/time, summary/abstract/snippet), a `time` element is a date,
/// and without a summary-classed part the longest paragraph is the summary. Links
/// resolve against the page URL (default `https://aitopics.org/`); an arXiv link
/// anywhere in the item (the link to the original) gives the arXiv id. Blocks with a
/// heading link but no source, date or summary (facets, pagination) are not items.
pub fn parse_html(text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let doc = markup::parse_document(NAME, text)?;
    let title_sel = markup::selector(
        NAME,
        "h2 a[href], h3 a[href], h4 a[href], a[href][class*=\"title\"], a[href][class*=\"Title\"]",
    )?;
    let any_sel = markup::selector(NAME, "*")?;
    let p_sel = markup::selector(NAME, "p")?;
    let link_sel = markup::selector(NAME, "a[href]")?;
    let base = ctx
        .url
        .cloned()
        .or_else(|| Url::parse("https://aitopics.org/").ok());
    let reference = ctx.reference_date();

    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for card in markup::cards(&doc, &title_sel) {
        let title = text_of(card.title);
        if title.is_empty() {
            continue;
        }
        let link = card
            .title
            .value()
            .attr("href")
            .and_then(|h| markup::resolve_link(h, base.as_ref()));
        // Parts of the item other than its title: neither inside the title nor
        // holding it (the item's own wrapper classes, "summary-item", say nothing).
        let parts: Vec<(ElementRef<'_>, Option<Role>)> = card
            .root
            .select(&any_sel)
            .filter(|el| !markup::contains(*el, card.title) && !markup::contains(card.title, *el))
            .map(|el| {
                let role = if el.value().name() == "time" {
                    Some(Role::Date)
                } else {
                    role_of(el)
                };
                (el, role)
            })
            .collect();
        let part = |role: Role| {
            parts
                .iter()
                .filter(move |(_, r)| *r == Some(role))
                .map(|(el, _)| *el)
        };
        let source = part(Role::Source)
            .map(text_of)
            .find(|s| !s.is_empty() && *s != title);
        let published = part(Role::Date).find_map(|el| {
            let when = el
                .value()
                .attr("datetime")
                .map(str::to_owned)
                .unwrap_or_else(|| text_of(el));
            dates::parse_timestamp(&when, reference)
                .or_else(|| dates::find_date(&when, reference).map(day_start))
        });
        // A summary holds prose only: a wrapper around the source or date is not one.
        let holds_meta = |el: ElementRef<'_>| {
            parts.iter().any(|(p, r)| {
                matches!(r, Some(Role::Source | Role::Date))
                    && p.id() != el.id()
                    && markup::contains(el, *p)
            })
        };
        let summary = part(Role::Summary)
            .filter(|el| !holds_meta(*el))
            .map(text_of)
            .find(|s| !s.is_empty())
            .or_else(|| {
                card.root
                    .select(&p_sel)
                    .map(text_of)
                    .max_by_key(String::len)
            })
            .filter(|s| *s != title)
            .unwrap_or_default();
        if source.is_none() && summary.is_empty() && published.is_none() {
            continue;
        }
        let arxiv_id = card
            .root
            .select(&link_sel)
            .filter_map(|a| a.value().attr("href"))
            .filter(|h| h.contains("arxiv.org"))
            .find_map(arxiv_id_in);
        if !seen.insert((title.clone(), link.clone())) {
            continue;
        }
        entries.push(Entry {
            title,
            link,
            summary,
            authors: Vec::new(),
            author_count: None,
            source,
            published,
            listed: published,
            arxiv_id,
            guid: None,
            format: NAME,
        });
    }
    if entries.is_empty() {
        return Err(ParseError::Malformed {
            format: NAME,
            reason: "no listing items (heading link with a source, date or summary) found".into(),
        });
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn ctx() -> ParseContext<'static> {
        ParseContext::at(Utc.with_ymd_and_hms(2026, 5, 20, 12, 0, 0).unwrap())
    }

    fn fixture(name: &str) -> String {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        super::super::decode(&std::fs::read(path).unwrap())
    }

    #[test]
    fn energy_capture_has_10_entries() {
        assert_eq!(
            parse_text(&fixture("aitopics_energy.txt"), &ctx())
                .unwrap()
                .len(),
            10
        );
    }

    #[test]
    fn energy_capture_first_and_last_field_by_field() {
        let entries = parse_text(&fixture("aitopics_energy.txt"), &ctx()).unwrap();
        let first = &entries[0];
        assert_eq!(
            first.title,
            "Differentiable Optimization Layers for Guaranteed Fairness in Deep Learning"
        );
        assert_eq!(first.source.as_deref(), Some("arXiv.org Machine Learning"));
        assert!(first
            .summary
            .starts_with("Differentiable optimization layers are traditionally integrated"));
        assert!(first.summary.ends_with(".github.io/fairness_training/."));
        assert_eq!(first.published.map(|t| t.date_naive()), None);
        assert_eq!(first.link, None);
        assert_eq!(first.author_count, None);
        assert_eq!(first.format, "aitopics");
        let last = entries.last().unwrap();
        assert_eq!(
            last.title,
            "Iran war live: Trump threatens Tehran; Saudi, UAE report drone attacks"
        );
        assert_eq!(last.source.as_deref(), Some("Al Jazeera"));
        assert!(last
            .summary
            .starts_with("Could the war trigger a hunger crisis?"));
        assert!(last.summary.ends_with("power plant that sparked a fire."));
    }

    #[test]
    fn energy_capture_publishers() {
        let entries = parse_text(&fixture("aitopics_energy.txt"), &ctx()).unwrap();
        let publishers: Vec<&str> = entries.iter().filter_map(|e| e.source.as_deref()).collect();
        assert_eq!(
            publishers,
            [
                "arXiv.org Machine Learning",
                "arXiv.org Machine Learning",
                "arXiv.org Machine Learning",
                "arXiv.org Machine Learning",
                "arXiv.org Machine Learning",
                "arXiv.org Machine Learning",
                "Al Jazeera",
                "Al Jazeera",
                "MIT Technology Review",
                "Al Jazeera",
            ]
        );
        let download = &entries[8];
        assert_eq!(
            download.title,
            "The Download: Musk v. Altman week 3, and Trump's tech trading"
        );
    }

    #[test]
    fn capture_with_dates_and_a_missing_summary() {
        let text = "Goto\n\nCollaborating Authors\n\n\u{a0}Robotics\n\nA Robot Learns to Walk\n\nThe Verge\n\nMay 18, 2026\n\nResearchers built a robot that learns to walk in an afternoon, and it is quite good at it.\n\nShort Item Without Summary\n\nReuters\n\nAnother Robot Story\n\nWired\n\nThis one has a summary again, long enough to be prose for the parser to see.\n\nA Teaser Item\n\nBBC\n\nRobots, briefly\n\nLast Robot Story\n\nAP\n\nAnd a last summary that is long enough to be prose for the parser to see.\n";
        let entries = parse_text(text, &ctx()).unwrap();
        let titles: Vec<&str> = entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "A Robot Learns to Walk",
                "Short Item Without Summary",
                "Another Robot Story",
                "A Teaser Item",
                "Last Robot Story"
            ]
        );
        assert_eq!(entries[3].summary, "Robots, briefly");
        assert_eq!(entries[4].source.as_deref(), Some("AP"));
        assert_eq!(
            entries[0].published.map(|t| t.date_naive()),
            NaiveDate::from_ymd_opt(2026, 5, 18)
        );
        assert_eq!(entries[1].source.as_deref(), Some("Reuters"));
        assert_eq!(entries[1].summary, "");
        assert_eq!(entries[2].source.as_deref(), Some("Wired"));
    }

    #[test]
    fn crlf_and_bom_parse_the_same() {
        let plain = fixture("aitopics_energy.txt");
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend(plain.replace('\n', " \r\n").as_bytes());
        let mangled = super::super::decode(&bytes);
        assert_eq!(
            parse_text(&mangled, &ctx()).unwrap(),
            parse_text(&plain, &ctx()).unwrap()
        );
    }

    #[test]
    fn sniffs_its_capture_only() {
        assert!(AiTopics.sniff(&fixture("aitopics_energy.txt"), &ctx()));
        assert!(!AiTopics.sniff("hello\n\nworld\n", &ctx()));
    }
}
