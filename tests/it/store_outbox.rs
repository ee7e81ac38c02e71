//! The alert outbox against a real SQLite file and a real PostgreSQL server: what ingest enqueues, and the delivery
//! state machine the worker drives.

use chrono::{DateTime, Duration, Utc};
use lookout::entry::Entry;
use lookout::store::{idempotency_key, AlertMatch, Ingest, Matcher, OutboxCounts, Store};

fn at(secs: i64) -> DateTime<Utc> {
    // A multiple of 900 s, so digest windows in these tests start here.
    DateTime::from_timestamp(1_699_999_200 + secs, 0).expect("valid test time")
}

fn entry(title: &str) -> Entry {
    Entry {
        title: title.to_owned(),
        format: "hf-papers",
        ..Entry::default()
    }
}

/// Two rules: "hot" (two notifiers, immediate) and "slow" (one notifier, 15 min digest);
/// both match titles containing "hot".
struct Rules;

impl Matcher for Rules {
    fn matches(&self, entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        if !entry.title.contains("hot") {
            return Vec::new();
        }
        vec![
            AlertMatch {
                rule: "hot".into(),
                notifiers: vec!["hook".into(), "mail".into()],
                matched: vec!["hot".into()],
                digest_secs: None,
            },
            AlertMatch {
                rule: "slow".into(),
                notifiers: vec!["digest-mail".into()],
                matched: vec!["hot".into()],
                digest_secs: Some(900),
            },
        ]
    }
}

fn ingest(store: &mut Store, hash: &str, entries: &[Entry], secs: i64, alerts: bool) -> usize {
    let batch = Ingest {
        source: "drop",
        origin: "/drop/x.txt",
        content_hash: Some(hash),
        format: "hf-papers",
        entries,
        seen_at: at(secs),
        alerts,
    };
    store.ingest(&batch, &Rules).expect("ingest").queued
}

fn outbox_has_one_row_per_rule_and_notifier_with_a_stable_key(open: &dyn Fn() -> Store) {
    let mut store = open();
    let queued = ingest(
        &mut store,
        "a",
        &[entry("a hot paper"), entry("cold")],
        0,
        true,
    );
    assert_eq!(queued, 3);
    // Far in the future everything is due, digest included.
    let mut due = store.due_deliveries(at(10_000), 10).expect("due");
    assert_eq!(due.len(), 3);
    due.sort_by(|a, b| (&a.rule, &a.notifier).cmp(&(&b.rule, &b.notifier)));
    let pairs: Vec<(&str, &str)> = due
        .iter()
        .map(|d| (d.rule.as_str(), d.notifier.as_str()))
        .collect();
    assert_eq!(
        pairs,
        [("hot", "hook"), ("hot", "mail"), ("slow", "digest-mail")]
    );
    for delivery in &due {
        assert_eq!(delivery.item.title, "a hot paper");
        assert_eq!(delivery.attempts, 0);
        assert_eq!(delivery.matched, ["hot"]);
        assert_eq!(
            delivery.idempotency_key,
            idempotency_key(&delivery.item.key, &delivery.rule, &delivery.notifier)
        );
    }
    let keys: std::collections::HashSet<&str> =
        due.iter().map(|d| d.idempotency_key.as_str()).collect();
    assert_eq!(keys.len(), 3, "keys differ per (rule, notifier)");
    assert_eq!(
        due[0].idempotency_key,
        idempotency_key("title:a hot paper", "hot", "hook"),
        "the key depends only on item key, rule and notifier"
    );
}

fn baseline_records_matches_but_enqueues_nothing(open: &dyn Fn() -> Store) {
    let mut store = open();
    let queued = ingest(&mut store, "a", &[entry("a hot paper")], 0, false);
    assert_eq!(queued, 0);
    assert_eq!(
        store.outbox_counts().expect("counts"),
        OutboxCounts::default()
    );
    assert_eq!(store.recent_matches("hot", 10).expect("matches").len(), 1);
    assert_eq!(store.recent_matches("slow", 10).expect("matches").len(), 1);
}

fn known_items_never_alert_again(open: &dyn Fn() -> Store) {
    let mut store = open();
    assert_eq!(ingest(&mut store, "a", &[entry("a hot paper")], 0, true), 3);
    let mut edited = entry("a hot paper");
    edited.summary = "now with an abstract".into();
    assert_eq!(ingest(&mut store, "b", &[edited], 10, true), 0);
    assert_eq!(store.outbox_counts().expect("counts").pending, 3);
}

fn immediate_rows_are_due_now_and_digest_rows_at_the_window_end(open: &dyn Fn() -> Store) {
    let mut store = open();
    ingest(&mut store, "a", &[entry("first hot")], 100, true);
    ingest(&mut store, "b", &[entry("second hot")], 500, true);
    let due_now = store.due_deliveries(at(500), 10).expect("due");
    assert!(due_now.iter().all(|d| d.rule == "hot"));
    assert_eq!(due_now.len(), 4);
    // Oldest due first.
    assert_eq!(due_now[0].item.title, "first hot");
    assert_eq!(due_now[3].item.title, "second hot");
    // Both digest rows share the window [0, 900) and fall due at its end, together.
    let before_end = store.due_deliveries(at(899), 10).expect("due");
    assert!(before_end.iter().all(|d| d.rule == "hot"));
    let at_end = store.due_deliveries(at(900), 10).expect("due");
    assert_eq!(at_end.iter().filter(|d| d.rule == "slow").count(), 2);
    assert_eq!(store.due_deliveries(at(900), 1).expect("due").len(), 1);
}

fn retries_then_delivery_and_retries_then_failure(open: &dyn Fn() -> Store) {
    let mut store = open();
    ingest(
        &mut store,
        "a",
        &[entry("hot one"), entry("hot two")],
        0,
        true,
    );
    let due: Vec<_> = store
        .due_deliveries(at(0), 10)
        .expect("due")
        .into_iter()
        .filter(|d| d.rule == "hot")
        .collect();
    assert_eq!(due.len(), 4);
    let (ok, bad) = (&due[0], &due[1]);

    // A retry moves the row out of the due set until its time, counting the attempt.
    assert!(store.mark_retry(ok.id, at(60), "503").expect("retry"));
    assert!(!store
        .due_deliveries(at(59), 10)
        .expect("due")
        .iter()
        .any(|d| d.id == ok.id));
    let again = store.due_deliveries(at(60), 10).expect("due");
    let again = again.iter().find(|d| d.id == ok.id).expect("due again");
    assert_eq!(again.attempts, 1);
    assert!(store.mark_delivered(ok.id, at(61)).expect("delivered"));

    assert!(store.mark_retry(bad.id, at(30), "timeout").expect("retry"));
    assert!(store
        .mark_failed(bad.id, "connection refused", at(90))
        .expect("fail"));

    // Final states are final: late marks change nothing.
    assert!(!store
        .mark_retry(ok.id, at(100), "late")
        .expect("late retry"));
    assert!(!store
        .mark_delivered(bad.id, at(100))
        .expect("late delivery"));
    assert!(!store
        .mark_failed(ok.id, "late", at(100))
        .expect("late failure"));
    assert!(!store.mark_delivered(9_999, at(100)).expect("unknown row"));

    let never_due: Vec<i64> = store
        .due_deliveries(at(100_000), 10)
        .expect("due")
        .iter()
        .map(|d| d.id)
        .collect();
    assert!(!never_due.contains(&ok.id) && !never_due.contains(&bad.id));
    assert_eq!(
        store.outbox_counts().expect("counts"),
        OutboxCounts {
            pending: 4,
            failed: 1,
            delivered: 1
        }
    );
    let failed = store.failed_deliveries(10).expect("failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].rule, "hot");
    assert_eq!(failed[0].notifier, bad.notifier);
    assert_eq!(failed[0].title, bad.item.title);
    assert_eq!(failed[0].error, "connection refused");
    assert_eq!(failed[0].at, at(90));
}

fn pending_rows_survive_a_reopen(open: &dyn Fn() -> Store) {
    let ids: Vec<i64> = {
        let mut store = open();
        ingest(&mut store, "a", &[entry("hot")], 0, true);
        store
            .due_deliveries(at(0), 10)
            .expect("due")
            .iter()
            .map(|d| d.id)
            .collect()
    };
    let store = open();
    let again: Vec<i64> = store
        .due_deliveries(at(0), 10)
        .expect("due")
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, again);
    assert_eq!(ids.len(), 2);
    assert_eq!(
        store
            .due_deliveries(at(0) + Duration::hours(1), 10)
            .expect("due")
            .len(),
        3
    );
}

crate::on_both_stores!(
    outbox_has_one_row_per_rule_and_notifier_with_a_stable_key,
    baseline_records_matches_but_enqueues_nothing,
    known_items_never_alert_again,
    immediate_rows_are_due_now_and_digest_rows_at_the_window_end,
    retries_then_delivery_and_retries_then_failure,
    pending_rows_survive_a_reopen,
);
