//! A damaged store (issue 13.7): with 64 KB of garbage written at 4 MB into
//! `lookout.db`, the daemon used to log `ingested page … new=5` and move captures to
//! `processed/`, though nothing could be read back, and `/healthz` sometimes stayed 200.
//! Now the integrity check at start finds the damage: `/healthz` says so with what to
//! do, captures stay in the folder, deliveries pause, and the error is logged once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use chrono::Utc;
use lookout::alert::outbox::{self, OutboxOptions};
use lookout::alert::{Notifiers, RuleSet};
use lookout::config::Config;
use lookout::entry::Entry;
use lookout::store::{Ingest, NoRules, SharedStore, Store, StoreHealth};
use tokio::sync::Notify;
use wiremock::ResponseTemplate;

/// Where the garbage went, and how much of it.
const GARBAGE_AT: u64 = 4 * 1024 * 1024;
const GARBAGE_LEN: usize = 64 * 1024;

/// Builds a real store at `path` larger than `GARBAGE_AT + GARBAGE_LEN`, through the
/// same ingest the daemon uses.
fn build_store(path: &std::path::Path) {
    let mut store = Store::open(path).expect("open store");
    let summary = "Measurements of distant quasars and their host galaxies. ".repeat(12);
    for batch in 0..60 {
        let entries: Vec<Entry> = (0..100)
            .map(|i| Entry {
                title: format!("Paper {batch}-{i}"),
                link: Some(format!("https://example.org/paper/{batch}/{i}")),
                summary: summary.clone(),
                ..Entry::default()
            })
            .collect();
        let hash = format!("capture-{batch}");
        store
            .ingest(
                &Ingest {
                    source: "drop",
                    origin: "build",
                    content_hash: Some(&hash),
                    format: "rss",
                    entries: &entries,
                    seen_at: Utc::now(),
                    alerts: false,
                },
                &NoRules,
            )
            .expect("ingest");
    }
    assert_eq!(store.quick_check().expect("check"), None, "intact before");
}

/// Overwrites `GARBAGE_LEN` bytes at `GARBAGE_AT` with pseudo-random bytes.
fn corrupt(path: &std::path::Path) {
    use std::io::{Seek, SeekFrom, Write};
    let len = std::fs::metadata(path).expect("size").len();
    eprintln!("store of {len} bytes; 64 KiB of garbage at 4 MiB");
    assert!(
        len > GARBAGE_AT + GARBAGE_LEN as u64,
        "store of {len} bytes is too small to corrupt at 4 MB"
    );
    let mut x: u32 = 0x9e37_79b9;
    let garbage: Vec<u8> = (0..GARBAGE_LEN)
        .map(|_| {
            // xorshift32: reproducible garbage without a seed file.
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open store file");
    file.seek(SeekFrom::Start(GARBAGE_AT)).expect("seek");
    file.write_all(&garbage).expect("write garbage");
    file.sync_all().expect("sync");
}

/// The real binary on a store corrupted as in the issue.
#[test]
fn a_damaged_store_is_reported_once_and_keeps_captures_in_the_folder() {
    let setup = Setup::new("");
    let db = setup.dir.path().join("state").join("lookout.db");
    build_store(&db);
    corrupt(&db);

    let daemon = Daemon::start(&setup.config);
    let (status, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
    let body: serde_json::Value = serde_json::from_slice(&body).expect("healthz is JSON");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "store damaged", "{body}");
    assert_eq!(body["store"]["intact"], false, "{body}");
    let action = body["action"].as_str().unwrap_or_default();
    assert!(
        action.contains("backup") && action.contains(".recover"),
        "{body}"
    );

    setup.drop_file(
        "late.xml",
        &std::fs::read(fixture_path("aitopics_energy.txt")).unwrap(),
    );
    wait_for(Duration::from_secs(20), "the capture to be held", || {
        daemon
            .log()
            .lines()
            .any(|l| l.contains("page held until the store can take it") && l.contains("late.xml"))
            .then_some(())
    });
    assert!(setup.drop.join("late.xml").exists(), "kept in the folder");
    assert!(!setup.drop.join("processed/late.xml").exists());
    assert!(
        !setup.drop.join("failed/late.xml").exists(),
        "not refused either"
    );
    // Asked again: still reported, still not logged again.
    let (status, _, _) = get(&format!("{}/healthz", daemon.base), &[]);
    assert_eq!(status, 503);
    let (status, _, page) = get(&format!("{}/", daemon.base), &[]);
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(".recover"),
        "status page ({status}) says what to do:\n{page}"
    );

    let log = daemon.log();
    assert!(!log.contains("ingested page"), "nothing ingested:\n{log}");
    if std::env::var_os("FAULT_LOG").is_some() {
        eprintln!("{log}");
    }
    let reported = log.matches("the database file is damaged").count();
    assert_eq!(reported, 1, "reported once:\n{log}");
    let line = log
        .lines()
        .find(|l| l.contains("the database file is damaged"))
        .unwrap_or_default();
    assert!(
        line.contains(".recover") && line.contains("backup"),
        "{line}"
    );

    // A clean stop: the held capture is let go and stays for the next start.
    let status = daemon.stop(Duration::from_secs(30));
    assert!(status.success(), "{status:?}");
    assert!(setup.drop.join("late.xml").exists());
}

/// Deliveries pause on a damaged store: queued alerts are not sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_pause_while_the_store_is_damaged() {
    let server = crate::common::answering(ResponseTemplate::new(200)).await;
    let config = Config::parse(
        &format!(
            "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/hook\"\n\
             [[alert]]\nname = \"quasars\"\nany = [\"quasar\"]\nnotify = [\"hook\"]\n",
            server.uri()
        ),
        "test.toml",
    )
    .expect("config parses");
    let dir = tempfile::tempdir().expect("tempdir");
    let store: SharedStore = Arc::new(Mutex::new(
        Store::open(&dir.path().join("lookout.db")).expect("open"),
    ));
    let rules = RuleSet::compile(&config.alerts).expect("rules");
    let entries = vec![Entry {
        title: "quasar".to_owned(),
        ..Entry::default()
    }];
    let queued = ingest_alerting(&store, &rules, &entries).queued;
    assert_eq!(queued, 1);

    let health = StoreHealth::new(None);
    health.corrupt("injected: *** in database main *** Page 1000: invalid page type");
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone();
    let worker = tokio::spawn(outbox::run_with(
        Arc::clone(&store),
        Arc::new(Notifiers::from_config(&config).expect("notifiers")),
        shutdown,
        Arc::new(Notify::new()),
        OutboxOptions {
            poll: Duration::from_millis(10),
            health: Some(health),
            ..OutboxOptions::default()
        },
    ));
    // Dozens of polls at 10 ms: an unpaused worker sends in the first.
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until {
        assert!(
            server
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty(),
            "a delivery went out from a damaged store"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    worker.await.expect("worker ends");
    assert_eq!(store.lock().unwrap().outbox_counts().unwrap().pending, 1);
}
