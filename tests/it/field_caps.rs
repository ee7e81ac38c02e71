//! Field caps (issue 13.11): a 1 MB title or summary in a real feed is stored and served
//! cut to what a reader can show, on a character boundary, with a marker.

use chrono::Utc;
use lookout::entry::{caps, CUT_MARKER};
use lookout::parse::{parse_page, ParseContext};
use lookout::store::{Ingest, ItemFilter, NoRules, Store};

#[test]
fn a_megabyte_title_and_summary_are_stored_and_served_capped() {
    let title = "Ω".repeat(1 << 19); // 1 MiB of two-byte characters
    let summary = "word ".repeat(1 << 18);
    let link = format!("https://example.org/?q={}", "a".repeat(1 << 20));
    let feed = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>\
         <item><title>{title}</title><link>{link}</link><guid>g1</guid>\
         <description>{summary}</description></item></channel></rss>"
    );
    let parsed = parse_page(feed.as_bytes(), "auto", &ParseContext::at(Utc::now())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("lookout.db")).unwrap();
    store
        .ingest(
            &Ingest {
                source: "s",
                origin: "test",
                content_hash: Some("h"),
                format: parsed.format,
                entries: &parsed.entries,
                seen_at: Utc::now(),
                alerts: false,
            },
            &NoRules,
        )
        .unwrap();
    let items = store.items(ItemFilter::All, 10).unwrap();
    let item = &items[0];
    assert_eq!(item.title.chars().count(), caps::TITLE);
    assert!(item.title.starts_with("ΩΩ") && item.title.ends_with(CUT_MARKER));
    assert_eq!(item.summary.chars().count(), caps::SUMMARY);
    assert!(item.summary.ends_with(CUT_MARKER));
    assert_eq!(item.link, None, "a cut link would lead elsewhere: dropped");
    let rss = lookout::feed::render_rss(
        &lookout::feed::Channel {
            title: "t".into(),
            description: "d".into(),
            site_link: "http://127.0.0.1/".into(),
            self_url: "http://127.0.0.1/feed.xml".into(),
            stylesheet: None,
            guid_scope: None,
            dates: lookout::feed::FeedDate::default(),
        },
        &items,
    );
    assert!(rss.len() < 64 * 1024, "served feed is {} bytes", rss.len());
}
