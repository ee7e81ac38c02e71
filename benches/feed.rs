//! Feed rendering: RSS, Atom and JSON Feed of 500 items (the default `max_items`), the
//! work the publisher does once per store change.
//!
//! The items are the entries of the three real captures, repeated with unique titles
//! to 500, with their real abstracts, authors and dates. Run with
//! `cargo bench --bench feed`.

use std::time::Duration;

use chrono::DateTime;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout::feed::{render_atom, render_json_feed, render_rss, Channel};
use lookout::parse::{parse_page, ParseContext};
use lookout::store::StoredItem;

const ITEMS: usize = 500;

fn items() -> Vec<StoredItem> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let ctx = ParseContext::at(DateTime::from_timestamp(1_779_300_000, 0).expect("time"));
    let entries: Vec<_> = [
        "hf_papers_apr17.txt",
        "hf_papers_may20.txt",
        "aitopics_energy.txt",
    ]
    .iter()
    .flat_map(|f| {
        let bytes = std::fs::read(dir.join(f)).expect("fixture");
        parse_page(&bytes, "auto", &ctx).expect("parses").entries
    })
    .collect();
    let seen = DateTime::from_timestamp(1_779_300_000, 0).expect("time");
    (0..ITEMS)
        .map(|i| {
            let e = &entries[i % entries.len()];
            StoredItem {
                id: i as i64 + 1,
                key: format!("title:{} {i}", e.title.to_lowercase()),
                title: format!("{} ({i})", e.title),
                link: e.link.clone(),
                summary: e.summary.clone(),
                authors: e.authors.clone(),
                author_count: e.author_count,
                publisher: e.source.clone(),
                source: "drop".into(),
                published: e.published,
                listed: e.listed,
                arxiv_id: e.arxiv_id.clone(),
                format: e.format.to_owned(),
                first_seen: seen,
                updated_at: seen,
            }
        })
        .collect()
}

fn render(c: &mut Criterion) {
    let items = items();
    let channel = Channel {
        title: "lookout".into(),
        description: "Every item lookout has seen".into(),
        site_link: "http://127.0.0.1:8080/".into(),
        self_url: "http://127.0.0.1:8080/feed.xml".into(),
        stylesheet: None,
        guid_scope: None,
        dates: lookout::feed::FeedDate::default(),
    };
    let mut group = c.benchmark_group("feed/500-items");
    group
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(ITEMS as u64));
    type Render = fn(&Channel, &[StoredItem]) -> Vec<u8>;
    let formats: [(&str, Render); 3] = [
        ("rss", render_rss),
        ("atom", render_atom),
        ("json", render_json_feed),
    ];
    for (name, render) in formats {
        eprintln!("{name}: {} bytes", render(&channel, &items).len());
        group.bench_function(name, |b| b.iter(|| render(&channel, &items)));
    }
    group.finish();
}

criterion_group!(benches, render);
criterion_main!(benches);
