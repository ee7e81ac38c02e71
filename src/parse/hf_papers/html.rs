//! The HTML page: the JSON it embeds for hydration, else its visible cards.

use std::collections::HashSet;

use scraper::Html;
use serde_json::Value;
use url::Url;

use super::{json, paper_link, NAME};
use crate::entry::Entry;
use crate::parse::arxiv::arxiv_id_in;
use crate::parse::markup::{self, text_of};
use crate::parse::text::is_prose;
use crate::parse::{dates, ParseContext, ParseError};

/// Whether an HTML page is a Daily Papers page: its hydration target, or a
/// huggingface.co papers URL, or HF-relative paper links.
pub(super) fn sniff(text: &str, ctx: &ParseContext<'_>) -> bool {
    if text.contains("DailyPapers") && text.contains("data-props") {
        return true;
    }
    let hf_url = ctx
        .url
        .is_some_and(|u| u.host_str() == Some("huggingface.co") && u.path().starts_with("/papers"));
    hf_url || (text.contains("huggingface.co") && text.contains("href=\"/papers/"))
}

/// Parses an HTML Daily Papers page (daily, date, trending or search).
///
/// Reads the JSON the page embeds for hydration: `div[data-target="DailyPapers"]`
/// first, then any other `data-props` holding paper objects (other pages use other
/// targets and keys). When no embedded JSON holds papers, reads the visible cards:
/// `h3 > a[href="/papers/<id>"]` inside each article.
pub fn parse_html(text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let doc = markup::parse_document(NAME, text)?;
    let props_sel = markup::selector(NAME, "[data-props]")?;
    let mut hydration: Vec<(bool, Value)> = doc
        .select(&props_sel)
        .filter_map(|el| {
            let daily = el.value().attr("data-target") == Some("DailyPapers");
            let value = serde_json::from_str(el.value().attr("data-props")?).ok()?;
            Some((daily, value))
        })
        .collect();
    // DailyPapers first: it is the list the page is about; other components (sidebars,
    // "trending" boxes) come after and add only papers not seen yet.
    hydration.sort_by_key(|(daily, _)| !*daily);
    let mut papers = json::Papers::default();
    let mut empty_daily = false;
    for (daily, value) in &hydration {
        papers.collect(value, ctx);
        empty_daily |= *daily && json::is_empty_listing(value);
    }
    let mut entries = papers.into_entries();
    if entries.is_empty() {
        entries = cards_from_markup(&doc, ctx)?;
    }
    if entries.is_empty() && !empty_daily {
        return Err(ParseError::Malformed {
            format: NAME,
            reason:
                "no DailyPapers data-props and no paper cards (h3 > a[href^=\"/papers/\"]) found"
                    .into(),
        });
    }
    Ok(entries)
}

/// Reads the visible paper cards when the page carries no embedded JSON.
fn cards_from_markup(doc: &Html, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let title_sel = markup::selector(NAME, "h3 a[href*=\"/papers/\"], h2 a[href*=\"/papers/\"]")?;
    let p_sel = markup::selector(NAME, "p")?;
    let time_sel = markup::selector(NAME, "time")?;
    let base = ctx
        .url
        .cloned()
        .or_else(|| Url::parse("https://huggingface.co/papers").ok());
    let reference = ctx.reference_date();
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for card in markup::cards(doc, &title_sel) {
        let Some(href) = card.title.value().attr("href") else {
            continue;
        };
        let Some(link) = markup::resolve_link(href, base.as_ref()) else {
            continue;
        };
        // Only paper links count: "/papers/date/..." and "/papers/trending" are navigation.
        let Some(id) = arxiv_id_in(&link).filter(|_| link.contains("/papers/")) else {
            continue;
        };
        let title = text_of(card.title);
        if title.is_empty() || !seen.insert(id.clone()) {
            continue;
        }
        let summary = card
            .root
            .select(&p_sel)
            .map(text_of)
            .find(|t| is_prose(t))
            .unwrap_or_default();
        let card_text = text_of(card.root);
        let published = card.root.select(&time_sel).find_map(|t| {
            let when = t
                .value()
                .attr("datetime")
                .map(str::to_owned)
                .unwrap_or_else(|| text_of(t));
            dates::parse_timestamp(&when, reference)
        });
        out.push(Entry {
            title,
            link: paper_link(&id),
            summary,
            authors: Vec::new(),
            author_count: author_count_in(&card_text),
            source: None,
            published,
            listed: None,
            arxiv_id: Some(id),
            guid: None,
            format: NAME,
        });
    }
    Ok(out)
}

/// Finds "N authors" in running card text ("· 8 authors").
fn author_count_in(text: &str) -> Option<u32> {
    let mut words = text.split_whitespace().peekable();
    while let Some(word) = words.next() {
        if let Some(next) = words.peek() {
            let next = next.trim_end_matches(|c: char| !c.is_alphanumeric());
            if (next.eq_ignore_ascii_case("authors") || next.eq_ignore_ascii_case("author"))
                && !word.is_empty()
                && word.bytes().all(|b| b.is_ascii_digit())
            {
                return word.parse().ok();
            }
        }
    }
    None
}
