//! Property: a feed the publisher builds from the item fragments and gzip pieces it
//! kept from its previous rendering is byte for byte the feed rendered whole from the
//! same items, and its gzip copy decodes to those bytes, after any sequence of
//! changes: new items on either source and on a rule, items dropping off the end of a
//! short feed, items changed in place (with a new time or the time they had), hostile
//! text, captures whose time goes backwards, items a second source sees. After the
//! first rendering, each change reaches the publisher through the store's delta
//! (`Store::changed_items`), applied to the item list of the previous rendering, not
//! through a new listing; the whole rendering it is compared with lists the items
//! afresh. A restart gives the same bytes, gzip bytes and ETags. Feed files, whose
//! writer reuses the items of the file it wrote last, are the whole renderings too.
//!
//! Raise the case count with
//! `LOOKOUT_PROP_CASES=2000 cargo test --release --test it prop_fragments::`.

use std::io::Read;
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use lookout::config::Config;
use lookout::entry::Entry;
use lookout::feed::FeedFormat;
use lookout::feed::{render_atom, render_json_feed, render_rss};
use lookout::publish::{FeedId, FeedScope, Publisher};
use lookout::store::{AlertMatch, Ingest, ItemFilter, Matcher, SharedStore, Store};
use proptest::prelude::*;

/// Rule `r` matches every title holding a `z`.
struct TitlesWithZ;

impl Matcher for TitlesWithZ {
    fn matches(&self, entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        if entry.title.contains('z') {
            vec![AlertMatch {
                rule: "r".into(),
                notifiers: Vec::new(),
                matched: vec!["z".into()],
                digest_secs: None,
            }]
        } else {
            Vec::new()
        }
    }
}

/// One change to the store.
#[derive(Debug, Clone)]
struct Change {
    source: &'static str,
    /// Titles from a small pool, so a later change often meets a known item.
    titles: Vec<String>,
    summary: String,
    link: Option<String>,
    publisher: Option<String>,
    authors: Vec<String>,
    /// Seconds from a fixed start, from a few values, so times repeat and go back.
    seen: i64,
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z ]{0,40}",
        any::<String>(),
        prop::sample::select(vec!["]]>", "</item>", "\"items\":[]", "&amp;", "\u{0}x"])
            .prop_map(str::to_owned),
    ]
}

fn change() -> impl Strategy<Value = Change> {
    (
        prop::sample::select(vec!["a", "b"]),
        prop::collection::vec("(zeta|alpha|beta|gamma|zed|delta) [0-9]", 1..4),
        text(),
        prop::option::of("https://example\\.org/[a-z]{1,6}"),
        prop::option::of(text()),
        prop::collection::vec("[A-Z][a-z]{1,8}", 0..3),
        prop::sample::select(vec![0i64, 0, 60, 120, -60]),
    )
        .prop_map(
            |(source, titles, summary, link, publisher, authors, seen)| Change {
                source,
                titles,
                summary,
                link,
                publisher,
                authors,
                seen,
            },
        )
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("gzip decodes");
    out
}

fn apply(store: &SharedStore, publisher: &Publisher, change: &Change) {
    let entries: Vec<Entry> = change
        .titles
        .iter()
        .map(|title| Entry {
            title: title.clone(),
            summary: change.summary.clone(),
            link: change.link.clone(),
            source: change.publisher.clone(),
            authors: change.authors.clone(),
            author_count: Some(change.authors.len() as u32),
            format: "feed",
            ..Entry::default()
        })
        .collect();
    let mut store = lookout::store::lock(store);
    store
        .ingest(
            &Ingest {
                source: change.source,
                origin: "proptest",
                content_hash: None,
                format: "feed",
                entries: &entries,
                seen_at: DateTime::from_timestamp(1_800_000_000 + change.seen, 0).unwrap(),
                alerts: true,
            },
            &TitlesWithZ,
        )
        .expect("ingest");
    publisher.store_changed(store.generation().expect("generation"));
}

/// The whole rendering of a feed's items now.
fn whole(store: &SharedStore, publisher: &Publisher, id: &FeedId) -> Vec<u8> {
    let filter = match &id.scope {
        FeedScope::All => ItemFilter::All,
        FeedScope::Source(s) => ItemFilter::Source(s),
        FeedScope::Rule(r) => ItemFilter::Rule(r),
        FeedScope::Interest(_) => unreachable!("these feeds have no interest"),
    };
    let items = lookout::store::lock(store)
        .items(filter, MAX_ITEMS)
        .expect("list");
    let channel = publisher.channel(id).expect("channel");
    match id.format {
        FeedFormat::Rss => render_rss(&channel, &items),
        FeedFormat::Atom => render_atom(&channel, &items),
        FeedFormat::Json => render_json_feed(&channel, &items),
    }
}

const MAX_ITEMS: usize = 5;

/// Every feed file the writer wrote equals the whole rendering of its items now.
fn check_files(
    store: &SharedStore,
    writer: &Arc<Publisher>,
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
) {
    rt.block_on(writer.write_all()).expect("files written");
    for id in writer.feeds() {
        let file = std::fs::read(id.file_path(dir)).expect("file written");
        assert!(
            file == whole(store, writer, &id),
            "{}: the file is the whole rendering",
            id.url_path()
        );
    }
}

/// Every feed the publisher serves equals the whole rendering of its items now.
fn check(store: &SharedStore, publisher: &Arc<Publisher>, rt: &tokio::runtime::Runtime) {
    let max_items = MAX_ITEMS;
    for scope in [
        FeedScope::All,
        FeedScope::Source("a".into()),
        FeedScope::Source("b".into()),
        FeedScope::Rule("r".into()),
    ] {
        let filter = match &scope {
            FeedScope::All => ItemFilter::All,
            FeedScope::Source(s) => ItemFilter::Source(s),
            FeedScope::Rule(r) => ItemFilter::Rule(r),
            FeedScope::Interest(_) => unreachable!("these feeds have no interest"),
        };
        let items = lookout::store::lock(store)
            .items(filter, max_items)
            .expect("list");
        for format in [FeedFormat::Rss, FeedFormat::Atom, FeedFormat::Json] {
            let id = FeedId {
                scope: scope.clone(),
                format,
            };
            let channel = publisher.channel(&id).expect("channel");
            let whole = match format {
                FeedFormat::Rss => render_rss(&channel, &items),
                FeedFormat::Atom => render_atom(&channel, &items),
                FeedFormat::Json => render_json_feed(&channel, &items),
            };
            let served = rt
                .block_on(publisher.get(&id))
                .expect("renders")
                .expect("the feed exists");
            assert_eq!(
                String::from_utf8_lossy(&served.bytes),
                String::from_utf8_lossy(&whole),
                "{}",
                id.url_path()
            );
            let gzip = served.gzip.as_ref().expect("served feeds carry gzip");
            assert!(
                gunzip(&gzip.bytes) == whole,
                "{}: gzip decodes to the document",
                id.url_path()
            );
        }
    }
}

fn cases() -> u32 {
    std::env::var("LOOKOUT_PROP_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(48)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn spliced_feeds_equal_whole_renderings(changes in prop::collection::vec(change(), 1..10)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "state_dir = {:?}\n[feed]\nmax_items = 5\nfile_formats = [\"rss\", \"atom\", \"json\"]\n\
             [[source]]\nname = \"a\"\nkind = \"folder\"\npath = \"/nonexistent/a\"\n\
             [[source]]\nname = \"b\"\nkind = \"folder\"\npath = \"/nonexistent/b\"\n\
             [[alert]]\nname = \"r\"\nany = [\"z\"]\n",
            dir.path()
        );
        let config = Config::parse(&text, "prop.toml").expect("valid config");
        let store: SharedStore = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let publisher = Arc::new(Publisher::new(store.clone(), &config, 0));
        // A second publisher that only writes files: nothing of it stays in memory
        // but the layouts of the files it wrote.
        let writer = Arc::new(Publisher::new(store.clone(), &config, 0));
        let feeds_dir = dir.path().join("feeds");
        for change in &changes {
            apply(&store, &publisher, change);
            writer.store_changed(publisher.generation());
            check(&store, &publisher, &rt);
            check_files(&store, &writer, &rt, &feeds_dir);
        }
        // A restart renders every feed afresh: the same bytes, gzip bytes and ETags
        // as the renderings spliced change by change, so clients' validators survive.
        let generation = publisher.generation();
        let restarted = Arc::new(Publisher::new(store.clone(), &config, generation));
        for id in publisher.feeds() {
            let spliced = rt.block_on(publisher.get(&id)).unwrap().unwrap();
            let fresh = rt.block_on(restarted.get(&id)).unwrap().unwrap();
            prop_assert_eq!(&spliced.etag, &fresh.etag, "{}", id.url_path());
            let (a, b) = (spliced.gzip.as_ref().unwrap(), fresh.gzip.as_ref().unwrap());
            prop_assert_eq!(&a.etag, &b.etag, "{}", id.url_path());
            prop_assert!(a.bytes == b.bytes, "{}: same gzip bytes", id.url_path());
        }
    }
}

/// A feed file changed behind the writer's back is not taken for the one it wrote: the
/// next change renders the feed from the store, not from the edited bytes.
#[test]
fn a_feed_file_edited_by_hand_is_not_reused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "state_dir = {:?}\n[feed]\nfile_formats = [\"rss\", \"atom\", \"json\"]\n[[source]]\nname = \"a\"\nkind = \"folder\"\npath = \"/nonexistent/a\"\n",
        dir.path()
    );
    let config = Config::parse(&text, "edit.toml").expect("valid config");
    let store: SharedStore = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
    let writer = Arc::new(Publisher::new(store.clone(), &config, 0));
    let feeds_dir = dir.path().join("feeds");
    let mut change = Change {
        source: "a",
        titles: vec!["alpha 1".into(), "beta 2".into()],
        summary: "first".into(),
        link: None,
        publisher: None,
        authors: Vec::new(),
        seen: 0,
    };
    apply(&store, &writer, &change);
    check_files(&store, &writer, &rt, &feeds_dir);
    // Same length, other bytes, in place: the title of one item changed by hand.
    let path = feeds_dir.join("feed.xml");
    let edited = String::from_utf8(std::fs::read(&path).unwrap())
        .unwrap()
        .replace("alpha 1", "ALPHA 1");
    std::fs::write(&path, edited).unwrap();
    change.titles = vec!["gamma 3".into()];
    change.seen = 60;
    apply(&store, &writer, &change);
    check_files(&store, &writer, &rt, &feeds_dir);
    let file = std::fs::read_to_string(&path).unwrap();
    assert!(
        file.contains("alpha 1") && !file.contains("ALPHA 1"),
        "{file}"
    );
}
