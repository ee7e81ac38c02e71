//! arXiv listing pages (`/list/<category>/new`, `/list/<category>/recent`,
//! `/list/<category>/pastweek`), and arXiv id detection for every format.
//!
//! A listing is a `dl` of `dt`/`dd` pairs: the `dt` holds the abstract link
//! (`/abs/<id>`), the `dd` the metadata (`.list-title`, `.list-authors` links,
//! `.list-subjects` with a `.primary-subject`, and on `/new` pages the abstract in
//! `p.mathjax`). Labels such as "Title:" sit in `span.descriptor` and are stripped.
//! Day headings (`h3`: "Showing new listings for Monday, 20 May 2024",
//! "Tue, 21 May 2024 (showing 25 of 130 entries)") date the entries that follow them.

use scraper::ElementRef;
use url::Url;

use super::markup::{self, text_of};
use super::{dates, page_kind, PageFormat, PageKind, ParseContext, ParseError, Reading};
use crate::entry::{day_start, normalize_arxiv_id, Entry};

/// The format name used in config and on entries.
pub const NAME: &str = "arxiv";

/// arXiv listing pages.
pub struct Arxiv;

impl PageFormat for Arxiv {
    fn name(&self) -> &'static str {
        NAME
    }

    fn recognize(&self, text: &str, ctx: &ParseContext<'_>) -> Option<Result<Reading, ParseError>> {
        is_listing(text, ctx).then(|| parse_listing(text, ctx).map(Reading::from))
    }

    fn parse(&self, text: &str, ctx: &ParseContext<'_>) -> Result<Reading, ParseError> {
        parse_listing(text, ctx).map(Reading::from)
    }
}

/// Whether a page is an arXiv listing: by its URL, or by its markup.
fn is_listing(text: &str, ctx: &ParseContext<'_>) -> bool {
    if page_kind(text) != PageKind::Markup {
        return false;
    }
    let listing_url = ctx.url.is_some_and(|u| {
        u.host_str().is_some_and(|h| h.ends_with("arxiv.org")) && u.path().starts_with("/list/")
    });
    listing_url || (text.contains("list-title") && text.contains("/abs/") && text.contains("<dt"))
}

/// Parses an arXiv listing page into entries, in page order, each id once (the same
/// paper can be listed as a new submission and again as a cross-list on some pages).
pub fn parse_listing(text: &str, ctx: &ParseContext<'_>) -> Result<Vec<Entry>, ParseError> {
    let doc = markup::parse_document(NAME, text)?;
    let walk = markup::selector(NAME, "h1, h2, h3, h4, dt, dd")?;
    let abs_sel = markup::selector(NAME, "a[href*=\"/abs/\"]")?;
    let title_sel = markup::selector(NAME, ".list-title")?;
    let authors_sel = markup::selector(NAME, ".list-authors")?;
    let author_link_sel = markup::selector(NAME, "a")?;
    let subjects_sel = markup::selector(NAME, ".list-subjects")?;
    let primary_sel = markup::selector(NAME, ".primary-subject")?;
    let abstract_sel = markup::selector(NAME, "p.mathjax, p")?;
    let reference = ctx.reference_date();

    let mut entries = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut day = None;
    let mut pending_id: Option<String> = None;
    let mut saw_dt = false;
    for el in doc.select(&walk) {
        match el.value().name() {
            "dt" => {
                saw_dt = true;
                pending_id = el
                    .select(&abs_sel)
                    .find_map(|a| a.value().attr("href").and_then(arxiv_id_in))
                    .or_else(|| arxiv_id_in(&text_of(el)));
            }
            "dd" => {
                let Some(id) = pending_id.take() else {
                    continue;
                };
                let Some(title_el) = markup::first(el, &title_sel) else {
                    continue;
                };
                let title = strip_descriptor(&text_of(title_el), "Title:");
                if title.is_empty() || !seen.insert(id.clone()) {
                    continue;
                }
                let authors: Vec<String> = match markup::first(el, &authors_sel) {
                    Some(list) => {
                        let linked: Vec<String> = list
                            .select(&author_link_sel)
                            .map(text_of)
                            .filter(|n| !n.is_empty())
                            .collect();
                        if linked.is_empty() {
                            strip_descriptor(&text_of(list), "Authors:")
                                .split(',')
                                .map(|n| n.trim().to_owned())
                                .filter(|n| !n.is_empty())
                                .collect()
                        } else {
                            linked
                        }
                    }
                    None => Vec::new(),
                };
                let source = markup::first(el, &subjects_sel).and_then(|subjects| {
                    let primary = markup::first(subjects, &primary_sel)
                        .map(text_of)
                        .unwrap_or_else(|| {
                            let all = strip_descriptor(&text_of(subjects), "Subjects:");
                            all.split(';').next().unwrap_or("").trim().to_owned()
                        });
                    (!primary.is_empty()).then_some(primary)
                });
                let summary = abstract_of(el, &abstract_sel);
                entries.push(Entry {
                    title,
                    link: abs_link(&id),
                    summary,
                    author_count: u32::try_from(authors.len()).ok().filter(|n| *n > 0),
                    authors,
                    source,
                    // The listing's day is when the paper was announced; arXiv
                    // prints no other date on it.
                    published: day.map(day_start),
                    listed: day.map(day_start),
                    arxiv_id: Some(id),
                    guid: None,
                    format: NAME,
                });
            }
            _ => {
                // A heading with a date starts that day's entries; other headings
                // ("New submissions", "Cross-lists") keep the current day.
                if let Some(d) = dates::find_date(&text_of(el), reference) {
                    day = Some(d);
                }
            }
        }
    }
    if entries.is_empty() && !saw_dt {
        return Err(ParseError::Malformed {
            format: NAME,
            reason: "no listing entries (dl > dt with an /abs/ link, dd with .list-title) found"
                .into(),
        });
    }
    Ok(entries)
}

/// The abstract paragraph of a `dd`, when the listing shows abstracts (`/new` does,
/// `/recent` does not).
fn abstract_of(dd: ElementRef<'_>, sel: &scraper::Selector) -> String {
    dd.select(sel)
        .map(text_of)
        .find(|t| !t.is_empty())
        .unwrap_or_default()
}

/// Drops a leading descriptor label ("Title:", "Authors:") and surrounding space.
fn strip_descriptor(text: &str, label: &str) -> String {
    let text = text.trim();
    let rest = match text.get(..label.len()) {
        Some(head) if head.eq_ignore_ascii_case(label) => text.get(label.len()..).unwrap_or(""),
        _ => text,
    };
    rest.trim().to_owned()
}

/// `https://arxiv.org/abs/<id>`.
fn abs_link(id: &str) -> Option<String> {
    Url::parse("https://arxiv.org/abs/")
        .ok()?
        .join(id)
        .ok()
        .map(String::from)
}

// ---------------------------------------------------------------------------------
// arXiv ids
// ---------------------------------------------------------------------------------

/// Whether `s` is an arXiv identifier: new style `2401.12345` (four digits, a dot, four
/// or five digits) or old style `hep-th/9901001` / `math.GT/0309136`, each with an
/// optional version suffix `v2`.
pub fn is_arxiv_id(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && id_prefix_len(s) == Some(s.len())
}

/// Finds an arXiv id in a link or text: after `arxiv.org/abs/`, `/pdf/`, `/html/`,
/// `arXiv:`, `oai:arXiv.org:` or `huggingface.co/papers/`. The version suffix is
/// removed ("2401.12345v2" -> "2401.12345").
pub fn arxiv_id_in(text: &str) -> Option<String> {
    const MARKERS: &[&str] = &[
        "arxiv.org/abs/",
        "arxiv.org/pdf/",
        "arxiv.org/html/",
        "huggingface.co/papers/",
        "arxiv.org:",
        "arxiv:",
        "/abs/",
        "/papers/",
    ];
    // ASCII lower-casing keeps byte offsets, so positions found in `lower` slice `text`.
    let lower = text.to_ascii_lowercase();
    for marker in MARKERS {
        for (pos, _) in lower.match_indices(marker) {
            let Some(rest) = text.get(pos + marker.len()..) else {
                continue;
            };
            if let Some(len) = id_prefix_len(rest) {
                if let Some(id) = rest.get(..len) {
                    return Some(normalize_arxiv_id(id));
                }
            }
        }
    }
    None
}

/// The arXiv id when `s` *is* a paper's id or address, not merely mentions one: a bare
/// id, `arXiv:<id>`, `oai:arXiv.org:<id>`, or a link to the paper on arxiv.org or
/// huggingface.co. A blog post's guid or link that only contains an id is not a paper.
pub fn paper_id_of(s: &str) -> Option<String> {
    let s = s.trim();
    if is_arxiv_id(s) {
        return Some(normalize_arxiv_id(s));
    }
    let lower = s.to_ascii_lowercase();
    if lower.starts_with("oai:arxiv.org:") || lower.starts_with("arxiv:") {
        return arxiv_id_in(s);
    }
    let url = url::Url::parse(s).ok()?;
    let host = url.host_str()?.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    matches!(host, "arxiv.org" | "export.arxiv.org" | "huggingface.co")
        .then(|| arxiv_id_in(url.path()))
        .flatten()
}

/// Length of the arXiv id at the start of `s` (with its version suffix), if one is
/// there and is not followed by more id-like characters.
fn id_prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let digits_at = |from: usize| {
        b.get(from..)
            .map_or(0, |r| r.iter().take_while(|c| c.is_ascii_digit()).count())
    };
    let end = if digits_at(0) == 4 && b.get(4) == Some(&b'.') && matches!(digits_at(5), 4 | 5) {
        // New style: YYMM.NNNNN
        5 + digits_at(5)
    } else {
        // Old style: archive[.SUBJ]/YYMMNNN
        let archive = b
            .iter()
            .take_while(|c| c.is_ascii_lowercase() || **c == b'-')
            .count();
        if archive < 2 {
            return None;
        }
        let mut i = archive;
        if b.get(i) == Some(&b'.') {
            let subj = b.get(i + 1..).map_or(0, |r| {
                r.iter().take_while(|c| c.is_ascii_uppercase()).count()
            });
            if subj != 2 {
                return None;
            }
            i += 3;
        }
        if b.get(i) != Some(&b'/') || digits_at(i + 1) != 7 {
            return None;
        }
        i + 8
    };
    // A version suffix.
    let end = if b.get(end) == Some(&b'v') && digits_at(end + 1) > 0 {
        end + 1 + digits_at(end + 1)
    } else {
        end
    };
    // The id must end here: "2401.123456" or "2401.12345abc" is not an id.
    match b.get(end) {
        Some(c) if c.is_ascii_alphanumeric() => None,
        _ => Some(end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_new_and_old_style_ids() {
        assert!(is_arxiv_id("2401.12345"));
        assert!(is_arxiv_id("2401.1234"));
        assert!(is_arxiv_id("2401.12345v3"));
        assert!(is_arxiv_id("hep-th/9901001"));
        assert!(is_arxiv_id("math.GT/0309136v2"));
        assert!(!is_arxiv_id("2401.123456"));
        assert!(!is_arxiv_id("240.12345"));
        assert!(!is_arxiv_id("https://example.com/1"));
        assert!(!is_arxiv_id(""));
        assert!(!is_arxiv_id("trending"));
    }

    #[test]
    fn finds_ids_in_links_and_text() {
        assert_eq!(
            arxiv_id_in("https://arxiv.org/abs/2405.12345v2").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(
            arxiv_id_in("http://arxiv.org/pdf/2405.12345.pdf").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(
            arxiv_id_in("oai:arXiv.org:2405.12345v1").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(
            arxiv_id_in("arXiv:hep-th/9901001").as_deref(),
            Some("hep-th/9901001")
        );
        assert_eq!(
            arxiv_id_in("/papers/2405.12345").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(
            arxiv_id_in("https://huggingface.co/papers/2405.12345#community").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(arxiv_id_in("/papers/date/2024-05-20"), None);
        assert_eq!(
            paper_id_of("oai:arXiv.org:2405.12345v1").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(
            paper_id_of("http://arxiv.org/abs/2405.12345v2").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(
            paper_id_of("https://huggingface.co/papers/2405.12345").as_deref(),
            Some("2405.12345")
        );
        assert_eq!(
            paper_id_of("https://blog.example.org/papers/2405.12345"),
            None
        );
        assert_eq!(paper_id_of("notebook-2026-05-12-frame-averaging"), None);
        assert_eq!(arxiv_id_in("https://example.com/post/1"), None);
        assert_eq!(arxiv_id_in("arxiv:\u{e9}\u{e9}"), None);
    }

    #[test]
    fn descriptors_are_stripped() {
        assert_eq!(strip_descriptor("Title: A B", "Title:"), "A B");
        assert_eq!(strip_descriptor("A B", "Title:"), "A B");
        assert_eq!(strip_descriptor("Ti", "Title:"), "Ti");
    }
}
