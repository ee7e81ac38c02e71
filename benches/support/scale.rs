//! Scales the fixture pages up to benchmark sizes: the entries of a page repeated, each
//! copy with its titles made unique, inside the page's own header and footer, so the
//! parsers see the structure they would on a long listing page.
//!
//! Shared by the criterion benches through `#[path]`; not every bench uses every item.
#![allow(dead_code)]

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use lookout::config::SelectorsConfig;
use lookout::parse::{parse_page, ParseContext};

/// How a fixture's repeating part is found.
#[derive(Debug, Clone, Copy)]
pub enum Shape {
    /// A text capture: the header runs up to the line holding the first title; the rest
    /// repeats.
    Text,
    /// Markup: the part from the first `start` to the end of the last `end` repeats.
    Region {
        /// Opens the first entry.
        start: &'static str,
        /// Closes the last entry.
        end: &'static str,
    },
    /// JSON: the array at this JSON pointer ("" is the document) repeats.
    JsonArray(&'static str),
    /// The Hugging Face papers page: the `DailyPapers` `data-props` JSON and the
    /// article cards both repeat.
    HfPage,
}

/// One fixture and how to scale it.
#[derive(Debug, Clone, Copy)]
pub struct Fixture {
    /// Bench name.
    pub name: &'static str,
    /// File under tests/fixtures.
    pub file: &'static str,
    /// Format passed to `parse_page` (`auto` where the format sniffs).
    pub format: &'static str,
    /// Its repeating part.
    pub shape: Shape,
}

/// Every fixture the parse bench scales, one or more per format.
pub const FIXTURES: &[Fixture] = &[
    Fixture {
        name: "hf-text",
        file: "hf_papers_apr17.txt",
        format: "auto",
        shape: Shape::Text,
    },
    Fixture {
        name: "aitopics-text",
        file: "aitopics_energy.txt",
        format: "auto",
        shape: Shape::Text,
    },
    Fixture {
        name: "hf-html",
        file: "hf_papers_page.html",
        format: "auto",
        shape: Shape::HfPage,
    },
    Fixture {
        name: "hf-cards-html",
        file: "hf_papers_cards.html",
        format: "auto",
        shape: Shape::Region {
            start: "<article",
            end: "</article>",
        },
    },
    Fixture {
        name: "hf-json",
        file: "hf_daily_papers_api.json",
        format: "auto",
        shape: Shape::JsonArray(""),
    },
    Fixture {
        name: "arxiv-html",
        file: "arxiv_list_new.html",
        format: "auto",
        shape: Shape::Region {
            start: "<dt>",
            end: "</dd>",
        },
    },
    Fixture {
        name: "aitopics-html",
        file: "aitopics_listing.html",
        format: "auto",
        shape: Shape::Region {
            start: "<div class=\"summary-item\"",
            end: "Goto</a></div>\n        </div>",
        },
    },
    Fixture {
        name: "rss2",
        file: "feed_rss2.xml",
        format: "auto",
        shape: Shape::Region {
            start: "<item>",
            end: "</item>",
        },
    },
    Fixture {
        name: "atom",
        file: "feed_atom.xml",
        format: "auto",
        shape: Shape::Region {
            start: "<entry>",
            end: "</entry>",
        },
    },
    Fixture {
        name: "json-feed",
        file: "feed.json",
        format: "auto",
        shape: Shape::JsonArray("/items"),
    },
    Fixture {
        name: "selectors-html",
        file: "selectors_blog.html",
        format: "selectors",
        shape: Shape::Region {
            start: "<article",
            end: "</article>",
        },
    },
];

/// A scaled page, ready to parse.
pub struct Scaled {
    /// The page bytes.
    pub bytes: Vec<u8>,
    /// Entries the page parses to (checked when it was built).
    pub entries: usize,
    /// Distinct titles among them.
    pub unique_titles: usize,
}

/// Where the fixtures are: `LOOKOUT_BENCH_FIXTURES`, else tests/fixtures.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("LOOKOUT_BENCH_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"))
}

/// The capture time every bench parses at (fixed, so runs compare).
pub fn captured_at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_779_300_000, 0).expect("valid time")
}

/// The selectors the `selectors` fixture is read with.
pub fn blog_selectors() -> SelectorsConfig {
    SelectorsConfig {
        item: "article.post".into(),
        title: "h2".into(),
        link: None,
        summary: Some("p.teaser".into()),
        date: Some("time".into()),
        date_format: None,
        authors: Some(".byline a".into()),
    }
}

/// The base URL pages are parsed against.
pub fn base_url() -> url::Url {
    url::Url::parse("https://lab.example.edu/blog/").expect("valid url")
}

/// Parses `bytes` as `fixture` would be parsed; the entries' titles.
pub fn titles(fixture: &Fixture, bytes: &[u8]) -> Result<Vec<String>, String> {
    let selectors = blog_selectors();
    let url = base_url();
    let mut ctx = ParseContext::at(captured_at());
    ctx.url = Some(&url);
    if fixture.format == "selectors" {
        ctx.selectors = Some(&selectors);
    }
    parse_page(bytes, fixture.format, &ctx)
        .map(|p| p.entries.into_iter().map(|e| e.title).collect())
        .map_err(|e| e.to_string())
}

/// The fixture scaled to at least `target` bytes; `None` when the fixture file is
/// missing (the parsers branch may not have landed its synthesized fixtures yet).
pub fn scale(fixture: &Fixture, target: usize) -> Option<Result<Scaled, String>> {
    let path = fixtures_dir().join(fixture.file);
    let original = std::fs::read_to_string(&path).ok()?;
    Some(build(fixture, &original, target))
}

fn build(fixture: &Fixture, original: &str, target: usize) -> Result<Scaled, String> {
    let base_titles = titles(fixture, original.as_bytes())?;
    if base_titles.is_empty() {
        return Err(format!("{} parses to no entries", fixture.file));
    }
    let text = match fixture.shape {
        Shape::Text => {
            let first = original
                .find(base_titles[0].as_str())
                .ok_or("first title not found verbatim")?;
            let line_start = original[..first].rfind('\n').map_or(0, |i| i + 1);
            let (head, body) = original.split_at(line_start);
            let copies = copies_for(body.len(), target);
            let mut out = String::with_capacity(target + body.len());
            out.push_str(head);
            for k in 0..copies {
                out.push_str(&uniquify(body, &base_titles, k));
                if !out.ends_with('\n') {
                    out.push_str("\n\n");
                }
            }
            out
        }
        Shape::Region { start, end } => repeat_region(original, start, end, &base_titles, target)?,
        Shape::JsonArray(pointer) => {
            let mut doc: serde_json::Value =
                serde_json::from_str(original).map_err(|e| e.to_string())?;
            let one = serde_json::to_string(&doc)
                .map_err(|e| e.to_string())?
                .len();
            let copies = copies_for(one, target);
            let array = doc
                .pointer_mut(pointer)
                .and_then(|v| v.as_array_mut())
                .ok_or("no array at the pointer")?;
            *array = replicate_json(array, copies);
            serde_json::to_string_pretty(&doc).map_err(|e| e.to_string())?
        }
        Shape::HfPage => hf_page(original, &base_titles, target)?,
    };
    let got = titles(fixture, text.as_bytes())?;
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    Ok(Scaled {
        entries: got.len(),
        unique_titles: unique.len(),
        bytes: text.into_bytes(),
    })
}

fn copies_for(unit: usize, target: usize) -> usize {
    target.div_ceil(unit.max(1)).max(1)
}

/// `body` with every title (raw or HTML-escaped) suffixed by its copy number and every
/// arXiv id moved to another (see [`shift_arxiv_ids`]); copy 0 stays as it was.
pub fn uniquify(body: &str, titles: &[String], k: usize) -> String {
    if k == 0 {
        return body.to_owned();
    }
    let mut out = shift_arxiv_ids(body, k);
    for title in titles {
        if title.trim().is_empty() {
            continue;
        }
        for variant in [title.clone(), escape_html(title), escape_html_hex(title)] {
            if out.contains(variant.as_str()) {
                out = out.replace(variant.as_str(), &format!("{variant} (copy {k})"));
                break;
            }
        }
    }
    out
}

/// Every new-style arXiv id (`YYMM.NNNNN`) in `text` replaced by another one, the same
/// way for the same id within a copy and differently per copy `k`, so parsers that
/// merge entries by paper id (the Hugging Face and arXiv readers) see distinct papers.
pub fn shift_arxiv_ids(text: &str, k: usize) -> String {
    use std::sync::OnceLock;
    static ID: OnceLock<regex::Regex> = OnceLock::new();
    let id = ID.get_or_init(|| regex::Regex::new(r"\b(\d{4})\.(\d{5})\b").expect("valid regex"));
    id.replace_all(text, |c: &regex::Captures<'_>| {
        let n: usize = c[2].parse().unwrap_or(0);
        // 7919 is prime to 100000: copies up to 100000 never collide with themselves.
        format!("{}.{:05}", &c[1], (n + k * 7919) % 100_000)
    })
    .into_owned()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn escape_html_hex(s: &str) -> String {
    escape_html(s).replace("&#39;", "&#x27;")
}

fn repeat_region(
    original: &str,
    start: &str,
    end: &str,
    titles: &[String],
    target: usize,
) -> Result<String, String> {
    let from = original
        .find(start)
        .ok_or_else(|| format!("no {start:?}"))?;
    let to = original
        .rfind(end)
        .map(|i| i + end.len())
        .ok_or_else(|| format!("no {end:?}"))?;
    let (head, rest) = original.split_at(from);
    let (body, tail) = rest.split_at(to - from);
    let copies = copies_for(body.len(), target);
    let mut out = String::with_capacity(target + original.len());
    out.push_str(head);
    for k in 0..copies {
        out.push_str(&uniquify(body, titles, k));
        out.push('\n');
    }
    out.push_str(tail);
    Ok(out)
}

/// The array's elements repeated `copies` times; from the second copy on, every
/// `title` string anywhere inside an element gets the copy number and every other
/// string its arXiv ids shifted.
fn replicate_json(elements: &[serde_json::Value], copies: usize) -> Vec<serde_json::Value> {
    let mut out = Vec::with_capacity(elements.len() * copies);
    for k in 0..copies {
        for element in elements {
            let mut e = element.clone();
            if k > 0 {
                suffix_fields(&mut e, k);
            }
            out.push(e);
        }
    }
    out
}

fn suffix_fields(value: &mut serde_json::Value, k: usize) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    serde_json::Value::String(s) if key == "title" => {
                        s.push_str(&format!(" (copy {k})"));
                    }
                    serde_json::Value::String(s) => *s = shift_arxiv_ids(s, k),
                    _ => suffix_fields(v, k),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|v| suffix_fields(v, k)),
        _ => {}
    }
}

/// The Hugging Face page: both the hydration JSON and the cards grow.
fn hf_page(original: &str, titles: &[String], target: usize) -> Result<String, String> {
    const OPEN: &str = "data-target=\"DailyPapers\" data-props=\"";
    let at = original.find(OPEN).ok_or("no DailyPapers props")? + OPEN.len();
    let len = original[at..].find('"').ok_or("unterminated data-props")?;
    let props = unescape_attr(&original[at..at + len]);
    let mut doc: serde_json::Value = serde_json::from_str(&props).map_err(|e| e.to_string())?;
    // Half the target in the JSON, half in the cards, as on the real page.
    let copies = copies_for(original.len(), target);
    let papers = doc
        .pointer_mut("/dailyPapers")
        .and_then(|v| v.as_array_mut())
        .ok_or("no dailyPapers")?;
    *papers = replicate_json(papers, copies);
    let props = escape_html(&serde_json::to_string(&doc).map_err(|e| e.to_string())?);
    let mut page = String::with_capacity(target * 2);
    page.push_str(&original[..at]);
    page.push_str(&props);
    page.push_str(&original[at + len..]);
    let from = page.find("<article").ok_or("no cards")?;
    let to = page.rfind("</article>").ok_or("no cards")? + "</article>".len();
    let cards = page[from..to].to_owned();
    let mut out = String::with_capacity(page.len() + cards.len() * copies);
    out.push_str(&page[..from]);
    for k in 0..copies {
        out.push_str(&uniquify(&cards, titles, k));
        out.push('\n');
    }
    out.push_str(&page[to..]);
    Ok(out)
}

fn unescape_attr(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}
