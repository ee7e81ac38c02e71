//! The store's diff against a real SQLite file and a real PostgreSQL server (each
//! test in `on_both_stores!` runs on both): identity, dedup, updates, persistence.

use crate::common::*;
use chrono::NaiveDate;
use lookout::entry::Entry;
use lookout::store::{
    AlertMatch, Ingest, IngestReport, ItemFilter, Matcher, NoRules, Store, StoreError,
};

/// An entry its page knows by an arXiv id (an HF page or the API), not by title alone.
fn paper(title: &str, id: &str) -> Entry {
    Entry {
        arxiv_id: Some(id.to_owned()),
        ..entry(title)
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("state").join("lookout.db")).expect("open store")
}

fn batch<'a>(
    source: &'a str,
    hash: Option<&'a str>,
    entries: &'a [Entry],
    secs: i64,
) -> Ingest<'a> {
    Ingest {
        source,
        origin: "/drop/capture.txt",
        content_hash: hash,
        format: "hf-papers",
        entries,
        seen_at: at(secs),
        alerts: true,
    }
}

/// Matches every entry whose title mentions "diffusion".
struct Diffusion;

impl Matcher for Diffusion {
    fn matches(&self, entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        if entry.title.to_lowercase().contains("diffusion") {
            vec![AlertMatch {
                rule: "diffusion".into(),
                notifiers: vec!["hook".into(), "mail".into()],
                matched: vec!["diffusion".into()],
                digest_secs: None,
            }]
        } else {
            Vec::new()
        }
    }
}

fn titles(store: &Store, filter: ItemFilter<'_>) -> Vec<String> {
    store
        .items(filter, 100)
        .expect("list items")
        .into_iter()
        .map(|item| item.title)
        .collect()
}

fn new_entries_are_new_exactly_once(open: &dyn Fn() -> Store) {
    let mut store = open();
    let entries = vec![entry("Alpha"), entry("Beta"), entry("Gamma")];
    let first = store
        .ingest(&batch("drop", Some("h1"), &entries, 0), &NoRules)
        .expect("ingest");
    assert_eq!(first.new, 3);
    let again = store
        .ingest(&batch("drop", Some("h2"), &entries, 10), &NoRules)
        .expect("ingest again");
    assert_eq!(
        again,
        IngestReport {
            unchanged: 3,
            ..IngestReport::default()
        }
    );
    assert_eq!(store.item_count().expect("count"), 3);
}

fn redropped_capture_adds_nothing(open: &dyn Fn() -> Store) {
    let mut store = open();
    let entries = vec![entry("Alpha"), entry("Beta")];
    store
        .ingest(&batch("drop", Some("same"), &entries, 0), &NoRules)
        .expect("ingest");
    let generation = store.generation().expect("generation");
    assert!(store.has_capture("drop", "same").expect("has capture"));
    assert!(!store.has_capture("drop", "other").expect("has capture"));

    // Even with different entries, the recorded hash means "these bytes were done".
    let changed = vec![entry("Alpha"), entry("Delta")];
    let report = store
        .ingest(&batch("drop", Some("same"), &changed, 10), &Diffusion)
        .expect("re-ingest");
    assert!(report.duplicate_capture);
    assert_eq!((report.new, report.updated, report.unchanged), (0, 0, 0));
    assert_eq!(store.item_count().expect("count"), 2);
    assert_eq!(store.generation().expect("generation"), generation);
}

fn overlapping_capture_adds_only_unseen_entries(open: &dyn Fn() -> Store) {
    let mut store = open();
    let monday = vec![entry("Alpha"), entry("Beta"), entry("Gamma")];
    let tuesday = vec![
        entry("Gamma"),
        entry("Beta"),
        entry("Delta"),
        entry("Epsilon"),
    ];
    store
        .ingest(&batch("drop", Some("mon"), &monday, 0), &NoRules)
        .expect("monday");
    let report = store
        .ingest(&batch("drop", Some("tue"), &tuesday, 60), &NoRules)
        .expect("tuesday");
    assert_eq!((report.new, report.unchanged), (2, 2));
    assert_eq!(
        titles(&store, ItemFilter::All),
        // Newest first; within one capture the later row first.
        ["Epsilon", "Delta", "Gamma", "Beta", "Alpha"]
    );
}

fn same_entry_twice_in_one_page_counts_once(open: &dyn Fn() -> Store) {
    let mut store = open();
    let entries = vec![
        entry("Diffusion Alpha"),
        entry("Beta"),
        entry("diffusion   alpha!"),
    ];
    let report = store
        .ingest(&batch("drop", Some("h"), &entries, 0), &Diffusion)
        .expect("ingest");
    assert_eq!((report.new, report.updated, report.unchanged), (2, 0, 0));
    assert_eq!(report.queued, 2, "one item, two notifiers");
    assert_eq!(store.item_count().expect("count"), 2);
}

/// Pages ingested in one transaction see each other's writes (PostgreSQL holds rows
/// back until a read needs them): a later page finds the item, source and capture an
/// earlier one recorded.
fn pages_of_one_transaction_see_each_others_writes(open: &dyn Fn() -> Store) {
    let mut store = open();
    let before = store.generation().expect("generation");
    let first = vec![paper("Diffusion Alpha", "2401.00042"), entry("Beta")];
    let mut edited = paper("Diffusion Alpha", "2401.00042");
    edited.summary = "A better abstract.".into();
    let again = vec![edited, entry("Gamma")];
    let elsewhere = vec![entry("Beta")];
    let reports = store
        .ingest_all(
            &[
                batch("drop", Some("h1"), &first, 0),
                batch("drop", Some("h2"), &again, 10),
                batch("drop", Some("h1"), &first, 20),
                batch("other", Some("h3"), &elsewhere, 30),
            ],
            &Diffusion,
        )
        .expect("ingest all");
    let counts: Vec<_> = reports
        .iter()
        .map(|r| (r.new, r.updated, r.unchanged, r.queued, r.duplicate_capture))
        .collect();
    assert_eq!(
        counts,
        [
            (2, 0, 0, 2, false),
            (1, 1, 0, 0, false),
            (0, 0, 0, 0, true),
            (0, 0, 1, 0, false)
        ]
    );
    assert_eq!(store.item_count().expect("count"), 3);
    assert_eq!(titles(&store, ItemFilter::Source("other")), ["Beta"]);
    let items = store.items(ItemFilter::All, 10).expect("items");
    let alpha = items
        .iter()
        .find(|i| i.title == "Diffusion Alpha")
        .expect("alpha");
    assert_eq!(alpha.summary, "A better abstract.");
    let after = store.generation().expect("generation");
    assert_eq!(
        after,
        before + 3,
        "one bump per page that changed something"
    );
    let scopes = store.scope_changes().expect("scopes");
    assert_eq!(scopes.get("source:other"), Some(&after));
}

fn changed_summary_updates_the_item_and_bumps_the_generation(open: &dyn Fn() -> Store) {
    let mut store = open();
    let before = vec![paper("Alpha", "2401.00042")];
    store
        .ingest(&batch("drop", Some("a"), &before, 0), &NoRules)
        .expect("first");
    let generation = store.generation().expect("generation");

    // The source that first saw it edits it, by its id.
    let mut edited = paper("Alpha", "2401.00042");
    edited.summary = "A better abstract.".into();
    let report = store
        .ingest(&batch("drop", Some("b"), &[edited], 30), &Diffusion)
        .expect("second");
    assert_eq!((report.new, report.updated, report.queued), (0, 1, 0));
    assert!(store.generation().expect("generation") > generation);
    assert_eq!(store.last_change().expect("last change"), Some(at(30)));

    let item = store
        .item_by_key("title:alpha")
        .expect("lookup")
        .expect("item exists");
    assert_eq!(item.summary, "A better abstract.");
    assert_eq!(item.first_seen, at(0));
    assert_eq!(item.updated_at, at(30));
    assert_eq!(store.item_count().expect("count"), 1);

    // A capture that lacks the summary never erases it.
    let mut bare = paper("Alpha", "2401.00042");
    bare.summary.clear();
    let report = store
        .ingest(&batch("drop", Some("c"), &[bare], 40), &NoRules)
        .expect("third");
    assert_eq!(report.unchanged, 1);
    let item = store.item_by_key("title:alpha").expect("lookup");
    assert_eq!(
        item.map(|i| i.summary).as_deref(),
        Some("A better abstract.")
    );

    // A text capture (no id) or another source only fills what is missing.
    let mut text = entry("Alpha");
    text.summary = "A teaser.".into();
    let mut other = paper("Alpha", "2401.00042");
    other.summary = "Another site's abstract.".into();
    let report = store
        .ingest(&batch("drop", Some("d"), &[text], 50), &NoRules)
        .expect("text");
    assert_eq!(report.unchanged, 1);
    let report = store
        .ingest(&batch("other", Some("e"), &[other], 60), &NoRules)
        .expect("other source");
    assert_eq!((report.updated, report.unchanged), (0, 1));
    let item = store.item_by_key("title:alpha").expect("lookup");
    assert_eq!(
        item.map(|i| i.summary).as_deref(),
        Some("A better abstract.")
    );
}

fn unchanged_capture_does_not_bump_the_generation(open: &dyn Fn() -> Store) {
    let mut store = open();
    let entries = vec![entry("Alpha")];
    store
        .ingest(&batch("drop", Some("a"), &entries, 0), &NoRules)
        .expect("first");
    let generation = store.generation().expect("generation");
    store
        .ingest(&batch("drop", Some("b"), &entries, 30), &NoRules)
        .expect("second");
    assert_eq!(store.generation().expect("generation"), generation);
    assert_eq!(store.last_change().expect("last change"), Some(at(0)));
}

fn text_html_and_json_captures_of_one_paper_are_one_item(open: &dyn Fn() -> Store) {
    let mut store = open();
    // Text capture: title, count of authors, no ids.
    let text = Entry {
        title: "Scaling Diffusion Transformers".into(),
        author_count: Some(4),
        format: "hf-papers",
        ..Entry::default()
    };
    let report = store
        .ingest(&batch("drop", Some("text"), &[text], 0), &Diffusion)
        .expect("text");
    assert_eq!((report.new, report.queued), (1, 2));

    // HTML page: same title, now with the arXiv id, link and abstract.
    let html = Entry {
        title: "Scaling Diffusion Transformers".into(),
        link: Some("https://huggingface.co/papers/2401.00001".into()),
        summary: "We scale DiTs.".into(),
        arxiv_id: Some("2401.00001v2".into()),
        author_count: Some(4),
        format: "hf-papers",
        ..Entry::default()
    };
    let report = store
        .ingest(&batch("hf-html", Some("html"), &[html], 60), &Diffusion)
        .expect("html");
    assert_eq!((report.new, report.updated, report.queued), (0, 1, 0));

    // JSON API: only the id, and a title the site has since edited.
    let json = Entry {
        title: "Scaling Diffusion Transformers (v2)".into(),
        arxiv_id: Some("arXiv:2401.00001".into()),
        authors: vec![
            "A. One".into(),
            "B. Two".into(),
            "C. Three".into(),
            "D. Four".into(),
        ],
        published: NaiveDate::from_ymd_opt(2024, 1, 2).map(lookout::entry::day_start),
        format: "hf-json",
        ..Entry::default()
    };
    let report = store
        .ingest(&batch("hf-json", Some("json"), &[json], 120), &Diffusion)
        .expect("json");
    assert_eq!((report.new, report.updated), (0, 1));

    assert_eq!(store.item_count().expect("count"), 1);
    let item = store
        .item_by_key("arxiv:2401.00001")
        .expect("lookup")
        .expect("the text item learned the arXiv alias");
    assert_eq!(item.key, "title:scaling diffusion transformers");
    assert_eq!(item.title, "Scaling Diffusion Transformers");
    assert_eq!(item.arxiv_id.as_deref(), Some("2401.00001"));
    assert_eq!(item.summary, "We scale DiTs.");
    assert_eq!(item.authors.len(), 4);
    assert_eq!(
        item.published.map(|t| t.date_naive()),
        NaiveDate::from_ymd_opt(2024, 1, 2)
    );
    assert_eq!(
        store
            .item_by_key("title:scaling diffusion transformers v2")
            .expect("lookup")
            .map(|i| i.id),
        Some(item.id),
        "the edited title became an alias too"
    );
    // Every source that saw it lists it.
    for source in ["drop", "hf-html", "hf-json"] {
        assert_eq!(
            titles(&store, ItemFilter::Source(source)),
            ["Scaling Diffusion Transformers"]
        );
    }
    assert_eq!(store.outbox_counts().expect("counts").pending, 2);
}

fn same_title_with_different_arxiv_ids_is_two_items(open: &dyn Fn() -> Store) {
    let mut store = open();
    let first = Entry {
        title: "Attention Is All You Need".into(),
        arxiv_id: Some("1706.03762".into()),
        format: "hf-papers",
        ..Entry::default()
    };
    let second = Entry {
        arxiv_id: Some("2501.99999".into()),
        ..first.clone()
    };
    let report = store
        .ingest(&batch("drop", Some("a"), &[first], 0), &NoRules)
        .expect("first");
    assert_eq!(report.new, 1);
    let report = store
        .ingest(&batch("drop", Some("b"), &[second], 10), &NoRules)
        .expect("second");
    assert_eq!(report.new, 1);
    assert_eq!(store.item_count().expect("count"), 2);
    let newer = store
        .item_by_key("arxiv:2501.99999")
        .expect("lookup")
        .expect("second paper stored");
    assert_eq!(newer.key, "arxiv:2501.99999");
    // The shared title stays with the paper that had it first.
    let by_title = store
        .item_by_key("title:attention is all you need")
        .expect("lookup")
        .expect("title alias");
    assert_eq!(by_title.arxiv_id.as_deref(), Some("1706.03762"));
}

#[test]
fn reopened_file_keeps_everything_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state").join("lookout.db");
    let entries = vec![entry("Diffusion Alpha"), entry("Beta")];
    let generation = {
        let mut store = Store::open(&path).expect("open");
        store
            .ingest(&batch("drop", Some("h"), &entries, 0), &Diffusion)
            .expect("ingest");
        store.generation().expect("generation")
    };
    for _ in 0..2 {
        let mut store = Store::open(&path).expect("reopen");
        assert_eq!(store.item_count().expect("count"), 2);
        assert_eq!(store.generation().expect("generation"), generation);
        assert!(store.has_capture("drop", "h").expect("capture"));
        assert_eq!(store.outbox_counts().expect("outbox").pending, 2);
        let report = store
            .ingest(&batch("drop", Some("h"), &entries, 5), &Diffusion)
            .expect("re-ingest");
        assert!(report.duplicate_capture);
    }
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .expect("journal mode");
    assert_eq!(mode, "wal");
}

#[test]
fn newer_schema_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lookout.db");
    let known = Store::open(&path)
        .expect("open")
        .schema_version()
        .expect("version");
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.pragma_update(None, "user_version", known + 1)
            .expect("set version");
    }
    match Store::open(&path) {
        Err(StoreError::TooNew { found, known: k }) => {
            assert_eq!((found, k), (known + 1, known));
        }
        Err(other) => panic!("expected TooNew, got {other}"),
        Ok(_) => panic!("expected TooNew, the store opened"),
    }
}

#[test]
fn corrupt_stored_data_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lookout.db");
    {
        let mut store = Store::open(&path).expect("open");
        store
            .ingest(&batch("drop", None, &[entry("Alpha")], 0), &NoRules)
            .expect("ingest");
    }
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute(
            "UPDATE items SET authors = 'not json', published = '2024-13-45'",
            [],
        )
        .expect("corrupt");
    }
    let store = Store::open(&path).expect("reopen");
    let err = store.items(ItemFilter::All, 10).expect_err("corrupt row");
    assert!(err.to_string().contains("store: "), "{err}");
}

fn listings_by_source_and_rule_are_newest_first(open: &dyn Fn() -> Store) {
    let mut store = open();
    let a = vec![entry("Diffusion One"), entry("Plain One")];
    let b = vec![entry("Diffusion Two"), entry("Plain One")];
    store
        .ingest(&batch("a", Some("a"), &a, 0), &Diffusion)
        .expect("a");
    store
        .ingest(&batch("b", Some("b"), &b, 60), &Diffusion)
        .expect("b");
    assert_eq!(
        titles(&store, ItemFilter::Source("a")),
        ["Plain One", "Diffusion One"]
    );
    // "Plain One" is older as an item but new to source b, seen there with "Diffusion
    // Two"; the tie goes to the higher row id.
    assert_eq!(
        titles(&store, ItemFilter::Source("b")),
        ["Diffusion Two", "Plain One"]
    );
    assert_eq!(
        titles(&store, ItemFilter::Rule("diffusion")),
        ["Diffusion Two", "Diffusion One"]
    );
    assert!(titles(&store, ItemFilter::Rule("nothing")).is_empty());
    let limited = store.items(ItemFilter::All, 2).expect("limited");
    assert_eq!(limited.len(), 2);
    assert_eq!(limited[0].title, "Diffusion Two");
    let matches = store.recent_matches("diffusion", 10).expect("matches");
    assert_eq!(matches.len(), 2);
    assert_eq!(matches[0].item.title, "Diffusion Two");
    assert_eq!(matches[0].matched, ["diffusion"]);
    assert_eq!(matches[0].at, at(60));
}

fn thousand_entry_page_ingests_in_one_go(open: &dyn Fn() -> Store) {
    let mut store = open();
    let page: Vec<Entry> = (0..1000)
        .map(|n| Entry {
            title: format!("Paper number {n} on diffusion"),
            arxiv_id: Some(format!("2401.{n:05}")),
            link: Some(format!("https://arxiv.org/abs/2401.{n:05}")),
            summary: "x".repeat(500),
            authors: vec!["Someone".into(); 5],
            author_count: Some(5),
            format: "arxiv",
            ..Entry::default()
        })
        .collect();
    let report = store
        .ingest(&batch("arxiv", Some("big"), &page, 0), &Diffusion)
        .expect("ingest");
    assert_eq!((report.new, report.queued), (1000, 2000));
    let report = store
        .ingest(&batch("arxiv", Some("big2"), &page, 10), &Diffusion)
        .expect("re-ingest");
    assert_eq!((report.new, report.unchanged), (0, 1000));
    assert_eq!(store.item_count().expect("count"), 1000);
}

fn entries_without_any_identity_are_skipped(open: &dyn Fn() -> Store) {
    let mut store = open();
    let entries = vec![entry("?!"), entry("Alpha"), entry("")];
    let report = store
        .ingest(&batch("drop", Some("h"), &entries, 0), &NoRules)
        .expect("ingest");
    assert_eq!(report.new, 1);
    assert_eq!(store.item_count().expect("count"), 1);
}

/// Each change records which feeds it touched, so only those are rendered again.
fn changes_record_the_feed_scopes_they_touch(open: &dyn Fn() -> Store) {
    let mut store = open();
    let gen_of = |store: &Store, scope: ItemFilter<'_>| {
        store
            .scope_changes()
            .unwrap()
            .get(&scope.scope_key())
            .copied()
    };

    // A new item: the all feed, its source's feed and the matching rule's feed.
    let first = [paper("Diffusion for graphs", "2401.00077")];
    store
        .ingest(&batch("a", None, &first, 1), &Diffusion)
        .unwrap();
    let g1 = store.generation().unwrap();
    assert_eq!(gen_of(&store, ItemFilter::All), Some(g1));
    assert_eq!(gen_of(&store, ItemFilter::Source("a")), Some(g1));
    assert_eq!(gen_of(&store, ItemFilter::Rule("diffusion")), Some(g1));
    assert_eq!(gen_of(&store, ItemFilter::Source("b")), None);

    // The same item, unchanged, seen on another source: only that source's feed.
    store
        .ingest(&batch("b", None, &first, 2), &Diffusion)
        .unwrap();
    let g2 = store.generation().unwrap();
    assert!(g2 > g1);
    assert_eq!(gen_of(&store, ItemFilter::Source("b")), Some(g2));
    assert_eq!(gen_of(&store, ItemFilter::All), Some(g1));
    assert_eq!(gen_of(&store, ItemFilter::Source("a")), Some(g1));
    assert_eq!(gen_of(&store, ItemFilter::Rule("diffusion")), Some(g1));

    // A page that changes nothing touches nothing.
    store
        .ingest(&batch("a", None, &first, 3), &Diffusion)
        .unwrap();
    assert_eq!(store.generation().unwrap(), g2);

    // An update (a new summary) changes every feed the item is in.
    let mut updated = paper("Diffusion for graphs", "2401.00077");
    updated.summary = "A longer, better abstract.".into();
    store
        .ingest(&batch("a", None, &[updated], 4), &Diffusion)
        .unwrap();
    let g3 = store.generation().unwrap();
    for scope in [
        ItemFilter::All,
        ItemFilter::Source("a"),
        ItemFilter::Source("b"),
        ItemFilter::Rule("diffusion"),
    ] {
        assert_eq!(gen_of(&store, scope), Some(g3), "{scope:?}");
    }
}

#[test]
fn a_first_fill_is_loaded_aside_and_moved_in_over_the_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state").join("lookout.db");
    let aside = dir.path().join("state").join("lookout.db.import");
    let mut live = open(&dir);
    assert!(live.is_empty().unwrap());
    assert!(live.claim_alone().unwrap(), "no other connection is open");
    // What an interrupted load left is replaced, not loaded into.
    std::fs::write(&aside, b"half a database").unwrap();
    let mut loaded = Store::create_aside(&aside).unwrap();
    let entries = [entry("Aside paper one"), entry("Aside paper two")];
    let report = loaded
        .ingest(&batch("drop", Some("h1"), &entries, 1), &NoRules)
        .unwrap();
    assert_eq!(report.new, 2);
    loaded.move_into_place(&aside, &db).unwrap();
    drop(live);

    assert!(!aside.exists(), "the aside file became the store");
    let store = open(&dir);
    assert!(!store.is_empty().unwrap());
    assert_eq!(
        titles(&store, ItemFilter::All),
        ["Aside paper two", "Aside paper one"]
    );
    let probe = rusqlite::Connection::open(&db).unwrap();
    let mode: String = probe
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal", "the store is back in WAL once opened");
}

#[test]
fn the_store_is_claimed_only_when_no_other_connection_has_it_open() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state").join("lookout.db");
    let daemon = open(&dir);
    let mut import = open(&dir);
    assert!(
        !import.claim_alone().unwrap(),
        "a daemon has the file open: it must not be replaced under it"
    );
    // Refused, the connection is as it was: it writes, and the daemon sees it.
    let entries = [entry("Written beside the daemon")];
    import
        .ingest(&batch("drop", Some("h1"), &entries, 1), &NoRules)
        .unwrap();
    assert_eq!(
        titles(&daemon, ItemFilter::All),
        ["Written beside the daemon"]
    );

    drop(daemon);
    assert!(import.claim_alone().unwrap());
    // Claimed, nobody else can open the file until the claim ends.
    let late = rusqlite::Connection::open(&db).unwrap();
    late.busy_timeout(std::time::Duration::ZERO).unwrap();
    assert!(
        late.query_row("SELECT count(*) FROM items", [], |row| row.get::<_, i64>(0))
            .is_err(),
        "the claimed file is locked"
    );
    drop(import);
    assert_eq!(
        late.query_row("SELECT count(*) FROM items", [], |row| row.get::<_, i64>(0))
            .unwrap(),
        1
    );
}

#[test]
fn a_checkpoint_beside_the_open_store_copies_the_wal_into_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state").join("lookout.db");
    let mut store = open(&dir);
    let entries = [entry("Checkpointed paper")];
    store
        .ingest(&batch("drop", Some("h1"), &entries, 1), &NoRules)
        .unwrap();
    Store::checkpoint_at(&db).unwrap();
    // The database file alone (no WAL beside it) now holds the item.
    let alone = dir.path().join("alone.db");
    std::fs::copy(&db, &alone).unwrap();
    let probe = rusqlite::Connection::open(&alone).unwrap();
    let count: i64 = probe
        .query_row("SELECT count(*) FROM items", [], |row| row.get(0))
        .unwrap();
    assert_eq!(count, 1, "the item was copied into the database file");
    assert_eq!(titles(&store, ItemFilter::All), ["Checkpointed paper"]);
}

/// A source's record (validators, baseline, health) is kept whole, and a group's
/// records are read in one go, in the order asked, a source never recorded read as
/// the default.
fn fetch_states_round_trip_and_read_in_order(open: &dyn Fn() -> Store) {
    use lookout::sources::{Failure, Recorded, Validators};
    use lookout::store::FetchState;
    let mut store = open();
    let mut a = FetchState::default();
    let validators = Validators {
        etag: Some("\"v1\"".into()),
        last_modified: Some("Tue, 05 Mar 2024 10:00:00 GMT".into()),
    };
    a.record(at(1), &Recorded::Success(Some(validators.clone())));
    let mut b = FetchState::default();
    b.record(at(2), &Recorded::Failure(Failure::msg("HTTP 503")));
    store.save_fetch_states(&[("a", &a), ("b", &b)]).unwrap();
    assert_eq!(
        store.fetch_states(&["b", "never", "a"]).unwrap(),
        [b.clone(), FetchState::default(), a.clone()]
    );
    assert_eq!(a.validators, validators);
    assert!(a.ever_succeeded && a.health.ok());
    assert_eq!(b.health.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(b.health.consecutive_failures, 1);
    // A failure keeps the validators; a 304 (no new validators) keeps them too.
    a.record(at(3), &Recorded::Failure(Failure::msg("timed out")));
    a.record(at(4), &Recorded::Success(None));
    store.save_fetch_states(&[("a", &a)]).unwrap();
    let read = store.fetch_state("a").unwrap();
    assert_eq!(read.validators, validators);
    assert_eq!(read.health.last_success, Some(at(4)));
    assert_eq!(read.health.last_error.as_deref(), Some("timed out"));
    assert_eq!(store.all_fetch_states().unwrap().len(), 2);
}

crate::on_both_stores!(
    fetch_states_round_trip_and_read_in_order,
    new_entries_are_new_exactly_once,
    redropped_capture_adds_nothing,
    overlapping_capture_adds_only_unseen_entries,
    same_entry_twice_in_one_page_counts_once,
    pages_of_one_transaction_see_each_others_writes,
    changed_summary_updates_the_item_and_bumps_the_generation,
    unchanged_capture_does_not_bump_the_generation,
    text_html_and_json_captures_of_one_paper_are_one_item,
    same_title_with_different_arxiv_ids_is_two_items,
    listings_by_source_and_rule_are_newest_first,
    thousand_entry_page_ingests_in_one_go,
    entries_without_any_identity_are_skipped,
    changes_record_the_feed_scopes_they_touch,
);
