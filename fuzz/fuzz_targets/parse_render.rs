//! Page bytes -> entries -> stored items -> RSS, Atom and JSON Feed: whatever a page
//! holds, the feeds lookout serves must parse back (the property the feed module
//! promises for hostile text), with one item per entry.
#![no_main]

use libfuzzer_sys::fuzz_target;
use lookout::feed::{render_atom, render_json_feed, render_rss, Channel};
use lookout::store::StoredItem;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let Some(parsed) = common::parse(data, "auto") else {
        return;
    };
    let at = chrono::DateTime::from_timestamp(1_779_300_000, 0).expect("time");
    let items: Vec<StoredItem> = parsed
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| StoredItem {
            id: i as i64 + 1,
            key: e.key(),
            title: e.title.clone(),
            link: e.link.clone(),
            summary: e.summary.clone(),
            authors: e.authors.clone(),
            author_count: e.author_count,
            publisher: e.source.clone(),
            source: "fuzz".into(),
            published: e.published,
            arxiv_id: e.arxiv_id.clone(),
            format: e.format.to_owned(),
            first_seen: at,
            updated_at: at,
        })
        .collect();
    let channel = Channel {
        title: "fuzz".into(),
        description: "fuzz".into(),
        site_link: "http://127.0.0.1:8080/".into(),
        self_url: "http://127.0.0.1:8080/feed.xml".into(),
        stylesheet: None,
    };
    let rss = render_rss(&channel, &items);
    let read = rss::Channel::read_from(&rss[..]).expect("RSS parses back");
    assert_eq!(read.items().len(), items.len());
    let atom = render_atom(&channel, &items);
    let read = atom_syndication::Feed::read_from(&atom[..]).expect("Atom parses back");
    assert_eq!(read.entries().len(), items.len());
    let json = render_json_feed(&channel, &items);
    let read: serde_json::Value = serde_json::from_slice(&json).expect("JSON Feed parses back");
    assert_eq!(read["items"].as_array().map(Vec::len), Some(items.len()));
});
