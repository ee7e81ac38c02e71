//! Property: whatever text an entry carries (control characters, `]]>`, markup, `&`,
//! surrogate escapes, megabyte titles), once ingested into a real store and rendered,
//! every feed format is well formed and reads back with one item per stored item and
//! the same titles.
//!
//! Case counts are modest so `cargo test` stays fast; raise them with
//! `LOOKOUT_PROP_CASES=10000 LOOKOUT_PROP_MB_CASES=20 cargo test --release --test it prop_feeds::`.

use chrono::DateTime;
use lookout::entry::Entry;
use lookout::feed::{render_atom, render_json_feed, render_rss, xml_safe, Channel};
use lookout::parse::{parse_page, ParseContext};
use lookout::store::{Ingest, ItemFilter, NoRules, Store, StoredItem};
use proptest::prelude::*;

/// Pieces that have broken feed writers somewhere: XML metacharacters, CDATA ends,
/// characters XML 1.0 forbids, escapes of lone surrogates as text, Unicode line
/// separators, BOMs and non-characters.
const NASTY: &[&str] = &[
    "]]>",
    "<![CDATA[",
    "<",
    ">",
    "&",
    "&amp;",
    "&#0;",
    "&#xD800;",
    "\"",
    "'",
    "</title>",
    "<script>alert(1)</script>",
    "\\ud800",
    "\\udfff",
    "\\u0000",
    "\u{0}",
    "\u{1}",
    "\u{8}",
    "\u{b}",
    "\u{c}",
    "\u{1b}",
    "\u{7f}",
    "\u{80}",
    "\u{85}",
    "\u{9f}",
    "\r",
    "\r\n",
    "\n",
    "\t",
    "\u{2028}",
    "\u{2029}",
    "\u{feff}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{fffd}",
    "\u{10ffff}",
    "\u{1f600}",
    "e\u{301}",
    " ",
    "paper",
    "Diffusion",
];

/// Text mixing the nasty pieces with arbitrary Unicode.
fn hostile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        prop::collection::vec(prop::sample::select(NASTY), 0..24).prop_map(|v| v.concat()),
        (
            any::<String>(),
            prop::collection::vec(prop::sample::select(NASTY), 1..8)
        )
            .prop_map(|(s, v)| format!("{s}{}{s}", v.concat())),
    ]
}

fn hostile_entry() -> impl Strategy<Value = Entry> {
    (
        hostile_text(),
        prop::option::of(hostile_text()),
        hostile_text(),
        prop::collection::vec(hostile_text(), 0..3),
        prop::option::of(hostile_text()),
        prop::option::of("[0-9]{4}\\.[0-9]{5}"),
    )
        .prop_map(|(title, link, summary, authors, source, arxiv_id)| Entry {
            author_count: Some(authors.len() as u32),
            title,
            link,
            summary,
            authors,
            source,
            published: None,
            listed: None,
            arxiv_id,
            guid: None,
            format: "feed",
        })
}

fn channel() -> Channel {
    Channel {
        title: "lookout".into(),
        description: "property test".into(),
        site_link: "http://127.0.0.1:8080/".into(),
        self_url: "http://127.0.0.1:8080/feed.xml".into(),
        stylesheet: None,
        guid_scope: None,
        dates: lookout::feed::FeedDate::default(),
    }
}

/// Ingests `entries` into a fresh on-disk store and lists what it kept.
fn store_and_list(entries: &[Entry]) -> Vec<StoredItem> {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = Store::open(&dir.path().join("lookout.db")).expect("open store");
    let batch = Ingest {
        source: "prop",
        origin: "proptest",
        content_hash: None,
        format: "feed",
        entries,
        seen_at: DateTime::from_timestamp(1_780_000_000, 0).expect("time"),
        alerts: true,
    };
    store
        .ingest(&batch, &NoRules)
        .expect("ingest never fails on text");
    store.items(ItemFilter::All, 500).expect("list")
}

/// Renders `items` in every format and checks each one reads back.
fn check_feeds(items: &[StoredItem]) -> Result<(), TestCaseError> {
    let channel = channel();
    let want: Vec<String> = items
        .iter()
        .map(|i| xml_safe(&i.title).into_owned())
        .collect();

    let rss_bytes = render_rss(&channel, items);
    let rss_text = std::str::from_utf8(&rss_bytes).map_err(|e| fail("RSS is not UTF-8", e))?;
    roxmltree::Document::parse(rss_text).map_err(|e| fail("RSS is not well-formed XML", e))?;
    let rss = rss::Channel::read_from(&rss_bytes[..]).map_err(|e| fail("RSS unreadable", e))?;
    let got: Vec<String> = rss
        .items()
        .iter()
        .map(|i| i.title().unwrap_or_default().to_owned())
        .collect();
    same_titles("RSS", &got, &want)?;

    let atom_bytes = render_atom(&channel, items);
    let atom_text = std::str::from_utf8(&atom_bytes).map_err(|e| fail("Atom is not UTF-8", e))?;
    roxmltree::Document::parse(atom_text).map_err(|e| fail("Atom is not well-formed XML", e))?;
    let atom = atom_syndication::Feed::read_from(&atom_bytes[..])
        .map_err(|e| fail("Atom unreadable", e))?;
    let got: Vec<String> = atom
        .entries()
        .iter()
        .map(|e| e.title().value.clone())
        .collect();
    same_titles("Atom", &got, &want)?;

    let json_bytes = render_json_feed(&channel, items);
    let json: serde_json::Value =
        serde_json::from_slice(&json_bytes).map_err(|e| fail("JSON Feed unreadable", e))?;
    let got: Vec<String> = json["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["title"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    same_titles("JSON Feed", &got, &want)?;
    Ok(())
}

/// Compares read-back titles with the expected ones, reporting the first difference
/// (shortened: titles can be a megabyte long). The rss and atom_syndication readers
/// trim surrounding whitespace (U+0085 included) from text, so XML formats compare
/// trimmed.
fn same_titles(format: &str, got: &[String], want: &[String]) -> Result<(), TestCaseError> {
    let xml = format != "JSON Feed";
    let norm = |s: &String| if xml { s.trim().to_owned() } else { s.clone() };
    let got: Vec<String> = got.iter().map(norm).collect();
    let want: Vec<String> = want.iter().map(norm).collect();
    if got.len() != want.len() {
        return Err(TestCaseError::fail(format!(
            "{format}: {} items read back, {} stored",
            got.len(),
            want.len()
        )));
    }
    for (g, w) in got.iter().zip(&want) {
        if g != w {
            return Err(TestCaseError::fail(format!(
                "{format}: title read back as {:?} ({} bytes), stored as {:?} ({} bytes)",
                short(g),
                g.len(),
                short(w),
                w.len()
            )));
        }
    }
    Ok(())
}

fn short(s: &str) -> String {
    s.chars().take(120).collect()
}

fn fail(what: &str, e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(format!("{what}: {e}"))
}

/// An entry with nothing to know it by is skipped by ingest; every other one is kept
/// (possibly merged with an equal-titled one), so the store is never empty then.
fn identifiable(e: &Entry) -> bool {
    !e.aliases().is_empty()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases("LOOKOUT_PROP_CASES", 48)))]

    #[test]
    fn hostile_entries_stored_and_rendered_give_well_formed_feeds(
        entries in prop::collection::vec(hostile_entry(), 1..6)
    ) {
        let items = store_and_list(&entries);
        if entries.iter().any(identifiable) {
            prop_assert!(!items.is_empty(), "an identifiable entry was dropped");
        }
        check_feeds(&items)?;
    }
}

/// An RSS page and a JSON Feed page carrying `text` in every field, the way a hostile
/// site would: XML-escaped in the one, JSON-escaped in the other.
fn hostile_pages(text: &str, raw_json: &str) -> Vec<String> {
    let xml = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let rss = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>\
         <link>https://example.org/</link><description>d</description>\
         <item><title>{t}</title><link>https://example.org/a</link>\
         <description>{t}</description></item>\
         <item><title><![CDATA[{c}]]></title><description><![CDATA[{c}]]></description></item>\
         </channel></rss>",
        t = xml(text),
        c = text.replace("]]>", "]]]]><![CDATA[>"),
    );
    let json = |s: &str| serde_json::to_string(s).expect("string to JSON");
    let feed = format!(
        "{{\"version\":\"https://jsonfeed.org/version/1.1\",\"title\":\"t\",\"items\":[\
         {{\"id\":\"1\",\"title\":{t},\"content_text\":{t}}},\
         {{\"id\":\"2\",\"title\":\"{raw}\",\"content_html\":\"{raw}\"}}]}}",
        t = json(text),
        raw = raw_json,
    );
    vec![rss, feed]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases("LOOKOUT_PROP_CASES", 32)))]

    /// Through the parsers too: pages that carry hostile text, including JSON escapes
    /// of lone surrogates (`\ud800`), either parse to entries that render well or are
    /// refused with an error; never a panic, never a broken feed.
    #[test]
    fn hostile_pages_parsed_stored_and_rendered_give_well_formed_feeds(
        text in hostile_text(),
        raw in prop::sample::select(&[
            "\\ud800", "\\udfff", "a\\ud800b", "\\ud83d\\ude00", "\\u0000", "\\u001b",
            "\\ufffe", "]]>", "\\\\ud800", "<b>&amp;</b>",
        ][..]),
    ) {
        let ctx = ParseContext::at(DateTime::from_timestamp(1_780_000_000, 0).expect("time"));
        for page in hostile_pages(&text, raw) {
            if let Ok(parsed) = parse_page(page.as_bytes(), "auto", &ctx) {
                let items = store_and_list(&parsed.entries);
                check_feeds(&items)?;
            }
        }
    }
}

/// Case count from `var`, else `default` (proptest's `PROPTEST_CASES` does not override
/// a count set in code).
fn cases(var: &str, default: u32) -> u32 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

proptest! {
    // One case: a megabyte takes about a second per step in a debug build. More with
    // LOOKOUT_PROP_MB_CASES=N.
    #![proptest_config(ProptestConfig::with_cases(cases("LOOKOUT_PROP_MB_CASES", 1)))]

    /// A one-megabyte title (a runaway capture) is stored and served whole.
    #[test]
    fn megabyte_titles_give_well_formed_feeds(
        chunk in prop::collection::vec(prop::sample::select(NASTY), 4..16)
            .prop_map(|v| v.concat()),
    ) {
        let title: String = chunk.repeat(1_000_000 / chunk.len().max(1) + 1);
        prop_assert!(title.len() >= 1_000_000);
        let entry = Entry {
            title: format!("Big {title}"),
            summary: "A runaway capture.".into(),
            format: "feed",
            ..Entry::default()
        };
        let items = store_and_list(&[entry]);
        prop_assert_eq!(items.len(), 1);
        check_feeds(&items)?;
    }
}
