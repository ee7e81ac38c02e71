//! lookout's feed reader over an oracle it did not write: every feed in feedparser
//! 6.0.14's test suite and feed-rs 2.4's fixtures (`tests/corpus/`, see ORIGIN.md),
//! beside the entry counts Python feedparser gave for the same files
//! (`tests/corpus/feedparser_counts.json`, precomputed once, so no Python here).
//!
//! Fails on any feed that feedparser reads (at least one entry) and lookout loses (no
//! entry, or an error), except the known, deliberate differences listed below with a
//! reason each; and on a replacement character in the output of a feed whose
//! encoding was declared and fits its bytes. A listed difference that no longer
//! differs fails too, so the list stays true.
//!
//! `cargo test --test it feed_corpus:: -- --nocapture` prints the summary that
//! BENCHMARKS.md quotes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{TimeZone, Utc};
use lookout::parse::encoding::decode_page;
use lookout::parse::{parse_page, ParseContext};

/// Feeds feedparser reads that lookout deliberately does not, and why.
const KNOWN_DIFFERENCES: &[(&str, &str)] = &[
    (
        "feedparser/wellformed/base/http_entry_link_base_docuri.xml",
        "the only field is a relative link, which feedparser resolves against the URL its test server served the file from; a saved file has no URL, and lookout keeps no link it cannot make absolute",
    ),
    (
        "feedparser/wellformed/base/http_item_link_base_docuri.xml",
        "the only field is a relative link (see http_entry_link_base_docuri.xml)",
    ),
    (
        "feedparser/wellformed/namespace/atomsvgdesc.xml",
        "the only text is an SVG <desc> inside the content, which a reader does not show: nothing to show",
    ),
    (
        "feedparser/wellformed/namespace/atomsvgtitle.xml",
        "the only text is an SVG <title> inside the content: nothing to show",
    ),
    (
        "feedparser/wellformed/namespace/rss2.0svgtitle.xml",
        "the only text is an SVG <title> inside the description: nothing to show",
    ),
    (
        "feedparser/wellformed/rss/item_category_image.xml",
        "the item's only child is a category with an image nested in it; the item has no title, link or text of its own",
    ),
    (
        "feedparser/wellformed/rss/item_description_not_a_doctype2.xml",
        "the only text is the start of a DOCTYPE in a CDATA section, which is markup: nothing to show",
    ),
    (
        "feedparser/illformed/rss_incomplete_cdata.xml",
        "the document ends inside a broken CDATA section that opens the item's title: nothing of the item is readable",
    ),
    (
        "feedparser/encoding/csucs4.xml",
        "UTF-32 (UCS-4): not a WHATWG encoding, so encoding_rs (what browsers use) has no decoder for it, and no browser reads it",
    ),
    (
        "feedparser/encoding/ucs4-be.xml",
        "UTF-32 (UCS-4): not a WHATWG encoding (see csucs4.xml)",
    ),
];

/// Items with nothing a reader can show or tell apart: no title, link or id, and no
/// summary or content with any text (feedparser's one-field unit tests: an item with
/// only an author, a category, an enclosure, an image or empty markup). feedparser
/// counts such an item; lookout drops it, since an entry needs a title to be shown and
/// something to be known by. Judged here from the raw document, not by lookout.
fn has_nothing_to_show(text: &str) -> bool {
    let tag = regex::Regex::new(r"(?is)<(?:[a-z0-9_]+:)?(item|entry)[\s>].*").unwrap();
    let Some(items) = tag.find(text).map(|m| m.as_str()) else {
        return false;
    };
    // An Atom entry's <source> describes the feed it came from, not the entry.
    let source = regex::Regex::new(r"(?is)<source[\s>].*?</source>").unwrap();
    let items = source.replace_all(items, "");
    let items = items.replace("<![CDATA[", "").replace("]]>", "");
    let items = items.as_str();
    let named = regex::Regex::new(r"(?i)<(?:[a-z0-9_]+:)?(link|guid|id)[\s>/]").unwrap();
    if named.is_match(items) {
        return false;
    }
    let body = regex::Regex::new(
        r"(?is)<(?:[a-z0-9_]+:)?(?:title|description|summary|content|body|fullitem|encoded|abstract)\b[^>]*>(.*?)</(?:[a-z0-9_]+:)?(?:title|description|summary|content|body|fullitem|encoded|abstract)>",
    )
    .unwrap();
    let tags = regex::Regex::new(r"(?s)<[^>]*>").unwrap();
    let shown = body.captures_iter(items).any(|c| {
        let once = tags.replace_all(&c[1], "");
        let decoded = once
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&amp;", "&");
        !tags.replace_all(&decoded, "").trim().is_empty()
    });
    !shown
}

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// feedparser's reading of one file.
#[derive(Debug, serde::Deserialize)]
struct Oracle {
    entries: usize,
    bozo: bool,
}

#[derive(Debug, serde::Deserialize)]
struct Counts {
    feedparser: String,
    feeds: BTreeMap<String, Oracle>,
}

/// A header a feedparser test file says its test server sends (`Header: Content-type:
/// …` in its leading comment).
fn header_of(bytes: &[u8], header: &str) -> Option<String> {
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(2048)]);
    text.lines().find_map(|l| {
        let rest = l.trim().strip_prefix("Header:")?.trim();
        let (name, value) = rest.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case(header)
            .then(|| value.trim().to_owned())
    })
}

#[test]
fn every_feed_feedparser_reads_is_read() {
    let counts: Counts = serde_json::from_slice(
        &std::fs::read(corpus().join("feedparser_counts.json")).expect("counts"),
    )
    .expect("counts parse");
    assert!(counts.feeds.len() >= 1000, "the corpus holds 1,000+ feeds");
    let captured = Utc.with_ymd_and_hms(2026, 5, 20, 12, 0, 0).unwrap();
    let known: BTreeMap<&str, &str> = KNOWN_DIFFERENCES.iter().copied().collect();

    let mut lost = Vec::new();
    let mut replaced = Vec::new();
    let mut still_listed = Vec::new();
    let (mut read_both, mut read_fp, mut same_count) = (0, 0, 0);
    let (mut entries_fp, mut entries_lookout) = (0usize, 0usize);
    let (mut fewer, mut more) = (Vec::new(), Vec::new());
    let mut warned = 0;
    let mut nothing_to_show = 0;
    for (path, oracle) in &counts.feeds {
        let bytes = std::fs::read(corpus().join(path)).expect("corpus file");
        let content_type = header_of(&bytes, "content-type");
        // Relative links resolve against the document's location, as fetched.
        let location = header_of(&bytes, "content-location").and_then(|l| url::Url::parse(&l).ok());
        let mut ctx = ParseContext::at(captured);
        ctx.content_type = content_type.as_deref();
        ctx.url = location.as_ref();
        let parsed = parse_page(&bytes, "feed", &ctx);
        let got = parsed.as_ref().map_or(0, |p| p.entries.len());
        entries_lookout += got;
        if let Ok(p) = &parsed {
            warned += usize::from(!p.warnings.is_empty());
        }
        if oracle.entries > 0 {
            read_fp += 1;
            entries_fp += oracle.entries;
            let is_lost = got == 0;
            if is_lost && has_nothing_to_show(&decode_page(&bytes, None).text) {
                nothing_to_show += 1;
                continue;
            }
            match (is_lost, known.contains_key(path.as_str())) {
                (true, false) => lost.push(format!(
                    "{path}: feedparser {} entries, lookout {}",
                    oracle.entries,
                    match &parsed {
                        Ok(_) => "0 entries".to_owned(),
                        Err(e) => format!("error: {e}"),
                    }
                )),
                (false, true) => still_listed.push(path.clone()),
                (false, false) => read_both += 1,
                (true, true) => {}
            }
            if got == oracle.entries {
                same_count += 1;
            } else if got > 0 && got < oracle.entries {
                fewer.push(format!("{path} ({got} < {})", oracle.entries));
            } else if got > oracle.entries {
                more.push(format!("{path} ({got} > {})", oracle.entries));
            }
        }
        // A declared encoding that fits the bytes never gives a replacement character.
        let decoded = decode_page(&bytes, ctx.content_type);
        if decoded.source.is_declared() && !decoded.had_errors && !oracle.bozo {
            if let Ok(p) = &parsed {
                let bad = p.entries.iter().any(|e| {
                    e.title.contains('\u{fffd}') && !decoded.text.contains('\u{fffd}')
                        || e.summary.contains('\u{fffd}') && !decoded.text.contains('\u{fffd}')
                });
                if bad {
                    replaced.push(path.clone());
                }
            }
        }
    }
    println!(
        "feed corpus (feedparser {}): {} files; feedparser reads entries from {read_fp}, \
         lookout reads {read_both} of those; {nothing_to_show} hold only items with \
         nothing to show; {} listed differences; same entry count in \
         {same_count}; entries: feedparser {entries_fp}, lookout {entries_lookout}; \
         {} feeds with fewer entries, {} with more; {warned} read with a warning",
        counts.feedparser,
        counts.feeds.len(),
        KNOWN_DIFFERENCES.len(),
        fewer.len(),
        more.len(),
    );
    for f in fewer.iter().chain(&more) {
        println!("  count differs: {f}");
    }
    assert!(
        lost.is_empty(),
        "{} feeds that feedparser reads are lost:\n{}",
        lost.len(),
        lost.join("\n")
    );
    assert!(
        replaced.is_empty(),
        "replacement characters where the encoding was declared: {replaced:?}"
    );
    assert!(
        still_listed.is_empty(),
        "listed as differences but read now (remove them from KNOWN_DIFFERENCES): {still_listed:?}"
    );
}
