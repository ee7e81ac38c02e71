//! The store delta (issue 15: a feed's listing at a generation, and what changed since
//! one) and the interests' store (issue 18: scores recorded and alerted in the ingest,
//! verdicts, the corpus, rewritten scores) on both stores (`on_both_stores!`).

use crate::common::*;
use lookout::entry::Entry;
use lookout::store::{
    AlertMatch, Ingest, InterestMatch, ItemFilter, Matcher, ScoreRow, Store, Verdict,
};

fn batch<'a>(source: &'a str, entries: &'a [Entry], secs: i64, alerts: bool) -> Ingest<'a> {
    Ingest {
        source,
        origin: "/drop/capture.txt",
        content_hash: None,
        format: "hf-papers",
        entries,
        seen_at: at(secs),
        alerts,
    }
}

/// Rule "halo" matches titles with "halo"; interest "dm" scores titles with "dark"
/// at 0.9 and alerts a webhook.
struct Rules;

impl Matcher for Rules {
    fn matches(&self, entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        if entry.title.contains("halo") {
            vec![AlertMatch {
                rule: "halo".into(),
                notifiers: vec!["hook".into()],
                matched: vec!["halo".into()],
                digest_secs: None,
            }]
        } else {
            Vec::new()
        }
    }

    fn interests(&self, entry: &Entry, _source: &str) -> Vec<InterestMatch> {
        if entry.title.contains("dark") {
            vec![InterestMatch {
                interest: "dm".into(),
                score: 0.9,
                terms: vec![("dark".into(), 0.5)],
                notifiers: vec!["hook".into()],
                digest_secs: None,
            }]
        } else {
            Vec::new()
        }
    }
}

fn titles(listing: &lookout::store::Listing) -> Vec<&str> {
    let mut titles: Vec<&str> = listing
        .items
        .iter()
        .map(|l| l.item.title.as_str())
        .collect();
    titles.sort_unstable();
    titles
}

fn changed_items_are_what_changed_in_each_feed_since_a_listing(open: &dyn Fn() -> Store) {
    let mut store = open();
    let first = [entry("one"), entry("two")];
    store
        .ingest(&batch("a", &first, 0, true), &Rules)
        .expect("ingest");
    let listing = store.listing(ItemFilter::All, 10).expect("listing");
    assert_eq!(listing.items.len(), 2);
    assert_eq!(listing.generation, store.generation().expect("generation"));
    let none = store
        .changed_items(ItemFilter::All, listing.generation, 10)
        .expect("changes")
        .expect("told");
    assert!(none.items.is_empty());
    // New items (one matched by the rule), a known item seen again on the same
    // source (unchanged), a known item seen on a new source (changed in that feed).
    let second = [entry("three halo"), entry("one")];
    store
        .ingest(&batch("a", &second, 10, true), &Rules)
        .expect("ingest");
    let third = [entry("two")];
    store
        .ingest(&batch("b", &third, 20, true), &Rules)
        .expect("ingest");
    let since = listing.generation;
    let all = store
        .changed_items(ItemFilter::All, since, 10)
        .expect("changes")
        .expect("told");
    assert_eq!(titles(&all), ["three halo", "two"]);
    let now = store.listing(ItemFilter::All, 10).expect("listing");
    assert_eq!(now.generation, all.generation);
    let three = now
        .items
        .iter()
        .find(|l| l.item.title == "three halo")
        .expect("listed");
    assert!(all.items.contains(three), "same order time as a listing");
    let source_a = store
        .changed_items(ItemFilter::Source("a"), since, 10)
        .expect("changes")
        .expect("told");
    // An item is marked changed, not a feed: "two", new on source b, is in source
    // a's feed too, and a feed applying it again shows the same item.
    assert_eq!(titles(&source_a), ["three halo", "two"]);
    let source_b = store
        .changed_items(ItemFilter::Source("b"), since, 10)
        .expect("changes")
        .expect("told");
    assert_eq!(titles(&source_b), ["two"]);
    let rule = store
        .changed_items(ItemFilter::Rule("halo"), since, 10)
        .expect("changes")
        .expect("told");
    assert_eq!(titles(&rule), ["three halo"]);
    assert_eq!(rule.items[0].order, at(10).timestamp_millis());
    // More changes than the cap (a thousand at least) ask for a new listing.
    let many: Vec<Entry> = (0..1_001).map(|i| entry(&format!("bulk {i}"))).collect();
    store
        .ingest(&batch("a", &many, 30, true), &Rules)
        .expect("ingest");
    assert_eq!(
        store
            .changed_items(ItemFilter::All, since, 10)
            .expect("changes"),
        None
    );
}

fn interest_matches_are_recorded_and_alerted_in_the_ingest(open: &dyn Fn() -> Store) {
    let mut store = open();
    let baseline = [entry("dark old")];
    let report = store
        .ingest(&batch("a", &baseline, 0, false), &Rules)
        .expect("ingest");
    assert_eq!(
        report.queued, 0,
        "a baseline records the score, alerts nobody"
    );
    let page = [entry("dark halo"), entry("bright")];
    let report = store
        .ingest(&batch("a", &page, 10, true), &Rules)
        .expect("ingest");
    // One rule row and one interest row for "dark halo".
    assert_eq!(report.queued, 2);
    let scored = store.interest_items("dm", 0.5, 10).expect("interest items");
    let names: Vec<&str> = scored.iter().map(|s| s.item.title.as_str()).collect();
    assert_eq!(names, ["dark halo", "dark old"], "newest first");
    assert!((scored[0].score - 0.9).abs() < 1e-6);
    assert_eq!(scored[0].terms, [("dark".to_owned(), 0.5)]);
    assert!(store
        .interest_items("dm", 0.95, 10)
        .expect("list")
        .is_empty());
    assert!(store
        .scope_changes()
        .expect("scopes")
        .contains_key("interest:dm"));
    let due = store.due_deliveries(at(20), 10).expect("due");
    let mut rules: Vec<&str> = due.iter().map(|d| d.rule.as_str()).collect();
    rules.sort_unstable();
    assert_eq!(rules, ["halo", "interest:dm"]);
    let interest = due.iter().find(|d| d.rule == "interest:dm").expect("row");
    assert_eq!(interest.matched, ["score 0.900", "dark"]);
    // Seen again: known items alert nobody twice.
    let report = store
        .ingest(&batch("a", &page, 30, true), &Rules)
        .expect("ingest");
    assert_eq!(report.queued, 0);
}

fn verdicts_corpus_and_rewritten_scores(open: &dyn Fn() -> Store) {
    let mut store = open();
    let papers = [
        Entry {
            arxiv_id: Some("2401.00001".into()),
            ..entry("Dark Matter Halos")
        },
        entry("Gradient is All You Need?"),
    ];
    store
        .ingest(&batch("a", &papers, 0, true), &lookout::store::NoRules)
        .expect("ingest");
    let found = store
        .item_for_like(Some("arXiv:2401.00001v2"), None, None)
        .expect("lookup")
        .expect("found by arXiv id");
    let by_title = store
        .item_for_like(None, None, Some("gradient  is ALL you need"))
        .expect("lookup")
        .expect("found by title");
    assert_ne!(found, by_title);
    assert_eq!(
        store
            .item_for_like(Some("2401.99999"), None, Some("Nothing like it"))
            .expect("lookup"),
        None
    );
    let corpus = store.corpus(None, 1).expect("corpus");
    assert_eq!(corpus.len(), 1);
    assert_eq!(corpus[0].sources, ["a"]);
    let rest = store.corpus(Some(&corpus[0]), 10).expect("corpus");
    assert_eq!(rest.len(), 1);
    assert_ne!(rest[0].id, corpus[0].id);
    assert!(store
        .set_verdict("dm", found, Some(Verdict::Like), at(1))
        .expect("set"));
    assert!(!store
        .set_verdict("dm", 999_999, Some(Verdict::Like), at(1))
        .expect("set"));
    store
        .set_verdict("dm", by_title, Some(Verdict::NotInterested), at(2))
        .expect("set");
    store
        .set_verdict("dm", found, Some(Verdict::NotInterested), at(3))
        .expect("set");
    let mut expected = vec![
        (found, Verdict::NotInterested),
        (by_title, Verdict::NotInterested),
    ];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(store.verdicts("dm").expect("verdicts"), expected);
    store.set_verdict("dm", found, None, at(4)).expect("clear");
    assert_eq!(
        store.verdicts("dm").expect("verdicts"),
        [(by_title, Verdict::NotInterested)]
    );
    let before = store.generation().expect("generation");
    let rows = vec![
        ScoreRow {
            item_id: found,
            seen: 20,
            score: 0.8,
            terms: vec![("halo".to_owned(), 0.4)],
        },
        ScoreRow {
            item_id: by_title,
            seen: 10,
            score: 0.1,
            terms: Vec::new(),
        },
    ];
    store
        .replace_interest_scores("dm", &rows, at(5))
        .expect("replace");
    let after = store.generation().expect("generation");
    assert!(after > before);
    assert_eq!(store.scope_changes().expect("scopes")["interest:dm"], after);
    let listed = store.interest_items("dm", 0.5, 10).expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].item.id, found);
    assert_eq!(store.interest_items("dm", 0.0, 10).expect("list").len(), 2);
    store
        .replace_interest_scores("dm", &rows[1..], at(6))
        .expect("replace");
    assert!(store
        .interest_items("dm", 0.5, 10)
        .expect("list")
        .is_empty());
}

crate::on_both_stores!(
    changed_items_are_what_changed_in_each_feed_since_a_listing,
    interest_matches_are_recorded_and_alerted_in_the_ingest,
    verdicts_corpus_and_rewritten_scores,
);
