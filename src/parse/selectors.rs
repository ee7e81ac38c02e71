//! Any other listing page, described in the config with CSS selectors (like rsspls):
//!
//! ```toml
//! [source.selectors]
//! item = "article.post"
//! title = "h2"
//! link = "h2 a"            # optional: default is the title element or its first link
//! summary = "p.teaser"     # optional
//! date = "time"            # optional: its `datetime` attribute, else its text
//! date_format = "%d %B %Y" # optional: default tries the common formats
//! authors = ".byline a"    # optional: one element per author
//! ```
//!
//! Every selector but `item` applies within one item. Relative links resolve against
//! the page URL. This format never sniffs: it is used when a source names it.

use scraper::{ElementRef, Selector};

use super::arxiv::paper_id_of;
use super::markup::{self, resolve_link, text_of};
use super::{dates, PageFormat, ParseContext, ParseError, ParseWarning, Reading};
use crate::entry::{day_start, Entry};

/// `[source.selectors]`: a generic listing page described by CSS selectors.
#[derive(Debug, Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SelectorsConfig {
    /// Selects each entry's element.
    pub item: String,
    /// Within an item: the title element.
    pub title: String,
    /// Within an item: the link element (its `href`); default: the title element or its first `a`.
    #[serde(default)]
    pub link: Option<String>,
    /// Within an item: the summary element.
    #[serde(default)]
    pub summary: Option<String>,
    /// Within an item: the date element (text, or its `datetime` attribute).
    #[serde(default)]
    pub date: Option<String>,
    /// chrono format of the date text, e.g. `"%d %B %Y"`; default: common formats are tried.
    #[serde(default)]
    pub date_format: Option<String>,
    /// Within an item: the authors elements.
    #[serde(default)]
    pub authors: Option<String>,
}

/// The format name used in config and on entries.
pub const NAME: &str = "selectors";

/// Pages read with selectors from the source's config.
pub struct Selectors;

impl PageFormat for Selectors {
    fn name(&self) -> &'static str {
        NAME
    }

    /// Never: without the user's selectors there is nothing to recognize.
    /// Never claims a page: selectors only apply when a source names them.
    fn recognize(
        &self,
        _text: &str,
        _ctx: &ParseContext<'_>,
    ) -> Option<Result<Reading, ParseError>> {
        None
    }

    fn parse(&self, text: &str, ctx: &ParseContext<'_>) -> Result<Reading, ParseError> {
        let config = ctx.selectors.ok_or_else(|| ParseError::Malformed {
            format: NAME,
            reason: "format \"selectors\" needs a [source.selectors] table (item, title, ...) in the config".into(),
        })?;
        read_with(text, config, ctx)
    }
}

/// The config's selectors, compiled once per page.
struct Compiled {
    item: Selector,
    title: Selector,
    link: Option<Selector>,
    summary: Option<Selector>,
    date: Option<Selector>,
    authors: Option<Selector>,
    any_link: Selector,
}

impl SelectorsConfig {
    /// Compiles every selector and reads the `date_format`, so a typo fails when the
    /// config is read rather than at the first fetch. The error is the one parsing
    /// would give.
    pub fn check(&self) -> Result<(), String> {
        if let Err(e) = Compiled::new(self) {
            return Err(match e {
                ParseError::Malformed { reason, .. } => reason,
                other => other.to_string(),
            });
        }
        if let Some(format) = &self.date_format {
            use chrono::format::{Item, StrftimeItems};
            if StrftimeItems::new(format).any(|item| matches!(item, Item::Error)) {
                return Err(format!(
                    "selectors.date_format {format:?} is not a chrono format (e.g. \"%d %B %Y\")"
                ));
            }
        }
        Ok(())
    }
}

impl Compiled {
    fn new(config: &SelectorsConfig) -> Result<Self, ParseError> {
        let opt = |css: &Option<String>, key: &str| -> Result<Option<Selector>, ParseError> {
            css.as_deref().map(|c| compile(c, key)).transpose()
        };
        Ok(Compiled {
            item: compile(&config.item, "item")?,
            title: compile(&config.title, "title")?,
            link: opt(&config.link, "link")?,
            summary: opt(&config.summary, "summary")?,
            date: opt(&config.date, "date")?,
            authors: opt(&config.authors, "authors")?,
            any_link: markup::selector(NAME, "a[href]")?,
        })
    }
}

/// Compiles one configured selector; the error names the config key.
fn compile(css: &str, key: &str) -> Result<Selector, ParseError> {
    Selector::parse(css).map_err(|e| ParseError::Malformed {
        format: NAME,
        reason: format!("selectors.{key}: invalid CSS selector {css:?}: {e}"),
    })
}

/// Parses a page with explicit selectors, with the warnings a user needs to see their
/// selectors working: a selector (title, link, summary, date, authors) that matched in
/// no item, and a `date_format` that read none of the dates found. Items without a
/// title are skipped; a page where `item` matches nothing is an error (the site most
/// likely changed).
pub fn read_with(
    text: &str,
    config: &SelectorsConfig,
    ctx: &ParseContext<'_>,
) -> Result<Reading, ParseError> {
    let sel = Compiled::new(config)?;
    // How many items each optional selector matched in, and dates read.
    let mut hits = Hits::default();
    let doc = markup::parse_document(NAME, text)?;
    let reference = ctx.reference_date();
    let mut matched = 0usize;
    let mut entries = Vec::new();
    for item in doc.select(&sel.item) {
        matched += 1;
        // Each selector is looked up once per item: for the counts and for the entry.
        let found = Found::in_item(item, &sel);
        hits.count(&found);
        let Some(title_el) = found.title else {
            continue;
        };
        let title = text_of(title_el);
        if title.is_empty() {
            continue;
        }
        let link = item_link(item, title_el, found.link, &sel)
            .and_then(|href| resolve_link(href, ctx.url));
        let summary = found.summary.map(text_of).unwrap_or_default();
        let published = found.date.and_then(|el| {
            let attr = el
                .value()
                .attr("datetime")
                .or_else(|| el.value().attr("content"));
            let shown = text_of(el);
            match &config.date_format {
                Some(format) => {
                    let by_format = [attr.unwrap_or(""), shown.as_str()]
                        .into_iter()
                        .find_map(|t| dates::parse_with_format(t, format, reference));
                    hits.dates_read += usize::from(by_format.is_some());
                    by_format.or_else(|| attr.and_then(|a| dates::parse_timestamp(a, reference)))
                }
                None => attr
                    .and_then(|a| dates::parse_timestamp(a, reference))
                    .or_else(|| dates::parse_timestamp(&shown, reference))
                    .or_else(|| dates::find_date(&shown, reference).map(day_start)),
            }
        });
        let authors: Vec<String> = match (&sel.authors, found.authors) {
            (Some(s), Some(_)) => item
                .select(s)
                .map(text_of)
                .filter(|n| !n.is_empty())
                .collect(),
            _ => Vec::new(),
        };
        entries.push(Entry {
            title,
            arxiv_id: link.as_deref().and_then(paper_id_of),
            link,
            summary,
            author_count: u32::try_from(authors.len()).ok().filter(|n| *n > 0),
            authors,
            source: None,
            published,
            // The date a listing prints beside an entry is when it appeared there.
            listed: published,
            guid: None,
            format: NAME,
        });
    }
    if matched == 0 {
        return Err(ParseError::Malformed {
            format: NAME,
            reason: format!(
                "selectors.item {:?} matched nothing on the page",
                config.item
            ),
        });
    }
    Ok(Reading {
        entries,
        warnings: hits.warnings(config),
    })
}

/// What each configured selector found in one item (its first match).
struct Found<'a> {
    title: Option<ElementRef<'a>>,
    link: Option<ElementRef<'a>>,
    summary: Option<ElementRef<'a>>,
    date: Option<ElementRef<'a>>,
    authors: Option<ElementRef<'a>>,
}

impl<'a> Found<'a> {
    fn in_item(item: ElementRef<'a>, sel: &Compiled) -> Found<'a> {
        let first = |s: &Option<Selector>| s.as_ref().and_then(|s| markup::first(item, s));
        Found {
            title: markup::first(item, &sel.title),
            link: first(&sel.link),
            summary: first(&sel.summary),
            date: first(&sel.date),
            authors: first(&sel.authors),
        }
    }
}

/// How often each selector matched, for the warnings of [`read_with`].
#[derive(Default)]
struct Hits {
    title: usize,
    link: usize,
    summary: usize,
    date: usize,
    authors: usize,
    /// Dates that `date_format` read.
    dates_read: usize,
}

impl Hits {
    /// Counts the selectors that matched in one item.
    fn count(&mut self, found: &Found<'_>) {
        self.title += usize::from(found.title.is_some());
        self.link += usize::from(found.link.is_some());
        self.summary += usize::from(found.summary.is_some());
        self.date += usize::from(found.date.is_some());
        self.authors += usize::from(found.authors.is_some());
    }

    /// A warning for each configured selector that matched in no item, and for a
    /// `date_format` under which none of the found dates parsed.
    fn warnings(&self, config: &SelectorsConfig) -> Vec<ParseWarning> {
        let mut out = Vec::new();
        let keys: [(&'static str, Option<&String>, usize); 5] = [
            ("title", Some(&config.title), self.title),
            ("link", config.link.as_ref(), self.link),
            ("summary", config.summary.as_ref(), self.summary),
            ("date", config.date.as_ref(), self.date),
            ("authors", config.authors.as_ref(), self.authors),
        ];
        for (key, selector, hits) in keys {
            if let (Some(selector), 0) = (selector, hits) {
                out.push(ParseWarning::SelectorNeverMatched {
                    key,
                    selector: selector.clone(),
                });
            }
        }
        if let (Some(format), true) = (&config.date_format, self.date > 0 && self.dates_read == 0) {
            out.push(ParseWarning::DateFormatMatchedNothing {
                format: format.clone(),
                found: self.date,
            });
        }
        out
    }
}

/// The item's `href`: from the `link` selector's match `link` (its own `href`, or its
/// first link's), else the title element if it is a link, else the title's first link,
/// else the item's first link.
fn item_link<'a>(
    item: ElementRef<'a>,
    title: ElementRef<'a>,
    link: Option<ElementRef<'a>>,
    sel: &Compiled,
) -> Option<&'a str> {
    let href_of = |el: ElementRef<'a>| {
        el.value()
            .attr("href")
            .or_else(|| markup::first(el, &sel.any_link).and_then(|a| a.value().attr("href")))
    };
    match &sel.link {
        Some(_) => link.and_then(href_of),
        None => href_of(title).or_else(|| href_of(item)),
    }
}
