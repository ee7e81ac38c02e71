//! `lookout migrate --to postgres://…` (issue 17): the real binary copies a SQLite
//! store into PostgreSQL, and the copy goes on where the file stopped: nothing becomes
//! new again, no alert is queued twice, pending deliveries keep their keys. Skipped,
//! with one line for the run, where PostgreSQL is not installed.

use std::process::Command;

use crate::common::*;
use lookout::entry::Entry;
use lookout::store::{AlertMatch, FetchState, Ingest, Matcher, Store};

/// Every entry matches rule "r", delivered to "hook".
struct Everything;

impl Matcher for Everything {
    fn matches(&self, _entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        vec![AlertMatch {
            rule: "r".into(),
            notifiers: vec!["hook".into()],
            matched: vec!["x".into()],
            digest_secs: None,
        }]
    }
}

fn page<'a>(hash: &'a str, entries: &'a [Entry]) -> Ingest<'a> {
    Ingest {
        source: "hf",
        origin: "test",
        content_hash: Some(hash),
        format: "hf-papers",
        entries,
        seen_at: at(0),
        alerts: true,
    }
}

fn migrate(config: &std::path::Path, url: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["migrate", "--config"])
        .arg(config)
        .env("LOOKOUT_MIGRATE_TO", url)
        .output()
        .expect("run lookout migrate")
}

#[test]
fn a_migrated_store_goes_on_where_the_sqlite_file_stopped() {
    let Some(url) = pg::database() else { return };
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", dir.path().join("state")),
    )
    .unwrap();
    let entries: Vec<Entry> = ["One", "Two", "Three"]
        .iter()
        .map(|title| Entry {
            title: (*title).into(),
            format: "hf-papers",
            published: Some(chrono::DateTime::parse_from_rfc3339("2026-05-19T00:00:00Z").unwrap()),
            ..Entry::default()
        })
        .collect();
    let mut state = FetchState {
        ever_succeeded: true,
        ..FetchState::default()
    };
    state.validators.etag = Some("\"v1\"".into());
    state.health.last_success = Some(at(5));
    let (keys_before, delivered) = {
        let mut sqlite = Store::open(&dir.path().join("state").join("lookout.db")).unwrap();
        assert_eq!(
            sqlite
                .ingest(&page("h1", &entries), &Everything)
                .unwrap()
                .queued,
            3
        );
        sqlite.save_fetch_states(&[("hf", &state)]).unwrap();
        let due = sqlite.due_deliveries(at(0), 10).unwrap();
        assert!(sqlite.mark_delivered(due[0].id, at(1)).unwrap());
        let keys: Vec<String> = due[1..].iter().map(|d| d.idempotency_key.clone()).collect();
        (keys, due[0].idempotency_key.clone())
    };

    let out = migrate(&config, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("3 items") && said.contains("3 outbox"),
        "{said}"
    );

    let mut pg = Store::connect(&url).unwrap();
    assert_eq!(pg.item_count().unwrap(), 3);
    assert!(pg.has_capture("hf", "h1").unwrap());
    assert_eq!(pg.fetch_state("hf").unwrap(), state);
    let counts = pg.outbox_counts().unwrap();
    assert_eq!((counts.pending, counts.delivered), (2, 1));
    let mut keys_after: Vec<String> = pg
        .due_deliveries(at(0), 10)
        .unwrap()
        .into_iter()
        .map(|d| d.idempotency_key)
        .collect();
    keys_after.sort();
    let mut keys_before = keys_before;
    keys_before.sort();
    assert_eq!(
        keys_after, keys_before,
        "pending deliveries keep their keys"
    );
    assert!(
        !keys_after.contains(&delivered),
        "a delivered alert is not sent again"
    );
    // The same page again, and its items in a new one: nothing is new, nothing queued.
    let again = pg.ingest(&page("h1", &entries), &Everything).unwrap();
    assert!(again.duplicate_capture);
    let known = pg.ingest(&page("h2", &entries), &Everything).unwrap();
    assert_eq!((known.new, known.queued), (0, 0), "{known:?}");
    // A new item gets a fresh id after the copied ones.
    let fresh = [Entry {
        title: "Four".into(),
        format: "hf-papers",
        ..Entry::default()
    }];
    assert_eq!(pg.ingest(&page("h3", &fresh), &Everything).unwrap().new, 1);
    assert_eq!(pg.item_count().unwrap(), 4);

    // A database that already holds a store is refused, and left as it was.
    let out = migrate(&config, &url);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("empty"));
    assert_eq!(pg.item_count().unwrap(), 4);
}
