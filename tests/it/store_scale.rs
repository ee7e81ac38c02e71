//! Ingest cost with a million items stored. Ignored by default (it writes ~300 MB and
//! takes a while in a debug build); run it with
//! `cargo test --release --test it store_scale:: -- --ignored --nocapture`.
//! It prints timings and asserts only counts: timing asserts would fail on a busy
//! machine without saying anything about the code.

use std::time::Instant;

use chrono::DateTime;
use lookout::entry::Entry;
use lookout::store::{Ingest, ItemFilter, NoRules, Store};

const STORED: i64 = 1_000_000;

#[test]
#[ignore = "slow: fills a million items; run by hand to measure"]
fn thousand_entry_page_ingests_fast_with_a_million_items_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lookout.db");
    drop(Store::open(&path).expect("create schema"));

    // Fill through SQL directly: a million ingests would measure the filler, not the
    // store. Each filler item has its key, a title alias and a source row, as ingest
    // would write them.
    let started = Instant::now();
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(&format!(
            "BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {STORED})
             INSERT INTO items (id, key, title, summary, source, format, first_seen, updated_at)
             SELECT i, 'arxiv:f.' || i, 'Filler paper ' || i, 'An abstract.', 'fill', 'arxiv',
                    1600000000000 + i, 1600000000000 + i FROM n;
             INSERT INTO item_keys (alias, item_id) SELECT key, id FROM items;
             INSERT INTO item_keys (alias, item_id)
             SELECT 'title:filler paper ' || id, id FROM items;
             INSERT INTO item_sources (source, item_id, first_seen)
             SELECT 'fill', id, first_seen FROM items;
             COMMIT;"
        ))
        .expect("fill");
    }
    eprintln!("filled {STORED} items in {:?}", started.elapsed());

    let mut store = Store::open(&path).expect("open");
    // Half the page is known (by title only, so the lookup falls through the arXiv
    // alias first), half is new.
    let page: Vec<Entry> = (0..1000)
        .map(|n| Entry {
            title: if n % 2 == 0 {
                format!("Filler paper {}", n * 997 + 1)
            } else {
                format!("Brand new paper {n}")
            },
            arxiv_id: Some(format!("2601.{n:05}")),
            summary: "Fresh abstract.".into(),
            format: "arxiv",
            ..Entry::default()
        })
        .collect();
    let batch = Ingest {
        source: "arxiv",
        origin: "https://arxiv.org/list/cs.LG/new",
        content_hash: Some("page-1"),
        format: "arxiv",
        entries: &page,
        seen_at: DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
        alerts: true,
    };
    let started = Instant::now();
    let report = store.ingest(&batch, &NoRules).expect("ingest");
    eprintln!(
        "ingested a 1000-entry page in {:?}: {report:?}",
        started.elapsed()
    );
    assert_eq!((report.new, report.updated), (500, 500));

    let again = Ingest {
        content_hash: Some("page-2"),
        ..batch
    };
    let started = Instant::now();
    let report = store.ingest(&again, &NoRules).expect("re-ingest");
    eprintln!("re-ingested it (all known) in {:?}", started.elapsed());
    assert_eq!(report.unchanged, 1000);

    let started = Instant::now();
    let items = store.items(ItemFilter::All, 500).expect("list");
    let by_source = store.items(ItemFilter::Source("arxiv"), 500).expect("list");
    eprintln!("listed 2 x 500 items in {:?}", started.elapsed());
    assert_eq!((items.len(), by_source.len()), (500, 500));
    let started = Instant::now();
    let count = store.item_count().expect("count");
    eprintln!("counted {count} items in {:?}", started.elapsed());
    assert_eq!(count, 1_000_500);
}
