//! Replicas sharing one PostgreSQL store (issue 17): source leases, outbox claims and
//! migrations, with two or more connections standing for replicas. Skipped, with one
//! line for the run, where PostgreSQL is not installed.

use std::time::Duration;

use crate::common::*;
use lookout::entry::Entry;
use lookout::store::{AlertMatch, Ingest, Lease, Matcher, Store};

/// A replica named `name` on the database at `url`, whose leases and claims last
/// `period` unrenewed.
fn replica(url: &str, name: &str, period: Duration) -> Store {
    let mut store = Store::connect(url).expect("connect");
    let pg = store.postgres().expect("a PostgreSQL store");
    pg.set_replica(name);
    pg.set_lease_period(period);
    store
}

/// Every entry matches rule "r", delivered to notifiers "hook" and "mail".
struct Everything;

impl Matcher for Everything {
    fn matches(&self, _entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        vec![AlertMatch {
            rule: "r".into(),
            notifiers: vec!["hook".into(), "mail".into()],
            matched: vec!["x".into()],
            digest_secs: None,
        }]
    }
}

/// Ingests one new paper through `store`, alerting both notifiers: two deliveries due.
fn alerting_paper(store: &mut Store) {
    let entries = [Entry {
        title: "A paper".into(),
        format: "hf-papers",
        ..Entry::default()
    }];
    let ingest = Ingest {
        source: "hf",
        origin: "test",
        content_hash: Some("h"),
        format: "hf-papers",
        entries: &entries,
        seen_at: at(0),
        alerts: true,
    };
    assert_eq!(
        store.ingest(&ingest, &Everything).expect("ingest").queued,
        2
    );
}

#[test]
fn a_source_is_leased_by_one_replica_until_its_lease_lapses() {
    let Some(url) = pg::database() else { return };
    let a = replica(&url, "a", Duration::from_secs(1));
    let b = replica(&url, "b", Duration::from_secs(1));
    assert!(a.lease_source("hf").expect("lease").is_held());
    // a holds it, for one period at most: b is told when to ask again.
    match b.lease_source("hf").expect("lease") {
        Lease::Elsewhere { lapses_in } => assert!(lapses_in <= Duration::from_secs(1)),
        Lease::Held => panic!("a holds hf"),
    }
    assert!(
        b.lease_source("blog").expect("lease").is_held(),
        "another source is free"
    );
    assert!(
        a.lease_source("hf").expect("renew").is_held(),
        "the holder renews"
    );
    let holders: Vec<(String, String)> = b
        .leases()
        .expect("leases")
        .into_iter()
        .map(|l| (l.source, l.holder))
        .collect();
    assert_eq!(
        holders,
        [("blog".into(), "b".into()), ("hf".into(), "a".into())]
    );
    // a stops calling the store, as a dead replica does: its lease lapses and b takes
    // the source over; then a, back, finds it taken.
    wait_for(Duration::from_secs(10), "b to take hf over", || {
        b.lease_source("hf").expect("lease").is_held().then_some(())
    });
    assert!(!a.lease_source("hf").expect("lease").is_held());
}

#[test]
fn a_delivery_claimed_by_a_dead_replica_is_taken_over_with_the_same_key() {
    let Some(url) = pg::database() else { return };
    let mut a = replica(&url, "a", Duration::from_secs(1));
    let b = replica(&url, "b", Duration::from_secs(1));
    alerting_paper(&mut a);
    let claimed = a.due_deliveries(at(0), 10).expect("due");
    assert_eq!(claimed.len(), 2);
    assert_eq!(
        a.due_deliveries(at(0), 10).expect("due").len(),
        2,
        "a keeps its own"
    );
    assert!(
        b.due_deliveries(at(0), 10).expect("due").is_empty(),
        "a claims them"
    );
    // b is told when a's claims lapse, to look again then rather than at a poll.
    let lapse = b.claims_lapse_in().expect("a's claims lapse");
    assert!(lapse <= Duration::from_secs(1), "{lapse:?}");
    assert_eq!(
        a.claims_lapse_in(),
        None,
        "a's own claims are no one else's"
    );
    // a dies mid-send: its claims lapse and b sends the same rows, under the same keys.
    let taken = wait_for(Duration::from_secs(10), "b to take the rows over", || {
        Some(b.due_deliveries(at(0), 10).expect("due")).filter(|rows| !rows.is_empty())
    });
    let keys = |rows: &[lookout::store::Delivery]| {
        let mut keys: Vec<String> = rows.iter().map(|d| d.idempotency_key.clone()).collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&taken), keys(&claimed));
    for row in &taken {
        assert!(b.mark_delivered(row.id, at(1)).expect("mark"));
    }
    assert!(a.due_deliveries(at(0), 10).expect("due").is_empty());
    assert!(
        !a.mark_delivered(claimed[0].id, at(2)).expect("late mark"),
        "a late mark changes nothing"
    );
    assert_eq!(a.outbox_counts().expect("counts").delivered, 2);
}

#[test]
fn a_replica_that_stops_in_order_hands_its_leases_and_claims_over_at_once() {
    let Some(url) = pg::database() else { return };
    // A period far longer than the test: only the release can free them.
    let mut a = replica(&url, "a", Duration::from_secs(600));
    let b = replica(&url, "b", Duration::from_secs(600));
    alerting_paper(&mut a);
    assert!(a.lease_source("hf").expect("lease").is_held());
    let claimed = a.due_deliveries(at(0), 10).expect("due");
    assert_eq!(claimed.len(), 2);
    assert!(!b.lease_source("hf").expect("lease").is_held());
    assert!(b.due_deliveries(at(0), 10).expect("due").is_empty());

    a.release_leases().expect("release");
    assert!(
        b.lease_source("hf").expect("lease").is_held(),
        "b takes the source at once"
    );
    let taken = b.due_deliveries(at(0), 10).expect("due");
    let keys = |rows: &[lookout::store::Delivery]| {
        let mut keys: Vec<String> = rows.iter().map(|d| d.idempotency_key.clone()).collect();
        keys.sort();
        keys
    };
    assert_eq!(keys(&taken), keys(&claimed), "b sends a's rows, same keys");
    assert!(b.leases().expect("leases").iter().all(|l| l.holder == "b"));
}

#[test]
fn replicas_starting_together_migrate_the_schema_once() {
    let Some(url) = pg::database() else { return };
    let versions: Vec<i64> = std::thread::scope(|scope| {
        let starts: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| Store::connect(&url).expect("connect").schema_version()))
            .collect();
        starts
            .into_iter()
            .map(|s| s.join().expect("thread").expect("version"))
            .collect()
    });
    assert_eq!(versions, vec![lookout::store::postgres::latest_schema(); 4]);
}
