//! The outbox worker against a real SQLite store and a real local HTTP receiver:
//! delivery with the store's idempotency keys, retries then failed, rate limit, digest
//! batching, exactly once across a restart, resend with the same key after an
//! abandoned send, and notifiers that left the config.
//!
//! Rules are compiled by `RuleSet` and rows enqueued by `store.ingest`, as in the
//! daemon. Waiting is a poll of the store's counts with a deadline, never a fixed sleep.

use crate::common::*;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use lookout::alert::outbox::{self, OutboxOptions};
use lookout::alert::{Notifiers, RuleSet};
use lookout::config::Config;
use lookout::entry::Entry;
use lookout::store::{idempotency_key, Ingest, OutboxCounts, SharedStore, Store};
use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

// The struct update keeps this compiling when the daemon adds fields (metrics,
// heartbeat) that tests leave at their defaults; until then it updates nothing.
fn fast() -> OutboxOptions {
    OutboxOptions {
        poll: Duration::from_millis(20),
        batch: 100,
        backoff_base: Duration::from_millis(10),
        backoff_max: Duration::from_millis(40),
        drain: Duration::from_secs(5),
        ..OutboxOptions::default()
    }
}

fn entry(n: u32, title: &str) -> Entry {
    Entry {
        title: title.to_owned(),
        link: Some(format!("https://example.org/paper/{n}")),
        summary: "An abstract.".to_owned(),
        format: "hf-papers",
        ..Entry::default()
    }
}

fn open(dir: &tempfile::TempDir) -> SharedStore {
    let store = Store::open(&dir.path().join("lookout.db")).expect("open store");
    Arc::new(Mutex::new(store))
}

/// Ingests `entries` as one capture seen `ago` in the past, through the config's rules.
fn ingest(store: &SharedStore, config: &Config, entries: &[Entry], ago: Duration) -> usize {
    let rules = RuleSet::compile(&config.alerts).expect("rules compile");
    let seen_at = Utc::now() - chrono::Duration::from_std(ago).expect("small duration");
    let batch = Ingest {
        source: "drop",
        origin: "test",
        content_hash: None,
        format: "hf-papers",
        entries,
        seen_at,
        alerts: true,
    };
    let mut guard = store.lock().expect("store lock");
    guard.ingest(&batch, &rules).expect("ingest").queued
}

fn counts(store: &SharedStore) -> OutboxCounts {
    store
        .lock()
        .expect("store lock")
        .outbox_counts()
        .expect("counts")
}

/// Polls the outbox counts until `done` holds, failing after a generous deadline.
async fn wait_for(store: &SharedStore, what: &str, done: impl Fn(&OutboxCounts) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = counts(store);
        if done(&now) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until `server` has had a request, failing with `what` after 20 s.
async fn requested(server: &MockServer, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.received_requests().await.map_or(0, |r| r.len()) == 0 {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A running worker and the means to stop it.
struct Worker {
    stop: tokio_util::sync::CancellationToken,
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

fn start(store: &SharedStore, config: &Config, options: OutboxOptions) -> Worker {
    let notifiers = Arc::new(Notifiers::from_config(config).expect("notifiers build"));
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = stop.clone();
    let wake = Arc::new(Notify::new());
    let task = tokio::spawn(outbox::run_with(
        Arc::clone(store),
        notifiers,
        shutdown,
        Arc::clone(&wake),
        options,
    ));
    Worker { stop, wake, task }
}

/// Runs a worker until the outbox counts say `what` (`done`), then stops it.
async fn run_until(
    store: &SharedStore,
    config: &Config,
    options: OutboxOptions,
    what: &str,
    done: impl Fn(&OutboxCounts) -> bool,
) {
    let worker = start(store, config, options);
    wait_for(store, what, done).await;
    worker.stop().await;
}

fn failed_deliveries(store: &SharedStore, n: usize) -> Vec<lookout::store::FailedDelivery> {
    store
        .lock()
        .expect("store lock")
        .failed_deliveries(n)
        .expect("failed list")
}

impl Worker {
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("worker stops within its drain deadline")
            .expect("worker task did not panic");
    }
}

fn keys(requests: &[wiremock::Request]) -> Vec<String> {
    requests
        .iter()
        .filter_map(|r| r.headers.get("idempotency-key"))
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect()
}

async fn server(status: u16) -> MockServer {
    crate::common::answering(ResponseTemplate::new(status)).await
}

fn hook_config(uri: &str, extra_notifier: &str, rule: &str) -> Config {
    config(&format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{uri}/hook\"\n{extra_notifier}\n\
         [[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\nnotify = [\"hook\"]\n{rule}\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_are_delivered_once_with_the_store_idempotency_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let server = server(200).await;
    let config = hook_config(&server.uri(), "", "");
    let entries = [
        entry(1, "Diffusion models"),
        entry(2, "Unrelated"),
        entry(3, "Score diffusion"),
    ];
    assert_eq!(ingest(&store, &config, &entries, Duration::ZERO), 2);

    let worker = start(&store, &config, fast());
    worker.wake.notify_one();
    wait_for(&store, "2 delivered", |c| c.delivered == 2).await;
    worker.stop().await;

    let requests = server.received_requests().await.expect("recording on");
    let expected: HashSet<String> = [1, 3]
        .iter()
        .map(|n| {
            let key = format!("url:https://example.org/paper/{n}");
            idempotency_key(&key, "diffusion", "hook")
        })
        .collect();
    assert_eq!(
        keys(&requests).into_iter().collect::<HashSet<_>>(),
        expected
    );
    assert_eq!(requests.len(), 2);
    let titles: HashSet<String> = requests
        .iter()
        .map(|r| r.body_json::<Value>().expect("JSON")["title"].to_string())
        .collect();
    assert!(titles.contains("\"Diffusion models\""), "{titles:?}");
    assert_eq!(counts(&store).pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_receiver_is_retried_then_the_row_is_marked_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let server = server(503).await;
    let config = hook_config(&server.uri(), "max_attempts = 3", "");
    ingest(&store, &config, &[entry(1, "Diffusion")], Duration::ZERO);

    run_until(&store, &config, fast(), "1 failed", |c| c.failed == 1).await;

    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 3, "max_attempts sends, then no more");
    let sent = keys(&requests);
    assert!(
        sent.iter().all(|k| k == &sent[0]),
        "every retry carries one key"
    );
    let failed = failed_deliveries(&store, 10);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].notifier, "hook");
    assert!(
        failed[0].error.contains("HTTP status 503"),
        "{}",
        failed[0].error
    );
    assert_eq!(counts(&store).pending, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_for_a_while_gets_every_pending_alert_once_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let server = MockServer::start().await;
    // Down for the first three requests, then up.
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(502))
        .up_to_n_times(3)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let config = hook_config(&server.uri(), "", "");
    ingest(
        &store,
        &config,
        &[entry(1, "Diffusion a"), entry(2, "Diffusion b")],
        Duration::ZERO,
    );
    run_until(&store, &config, fast(), "2 delivered", |c| c.delivered == 2).await;
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 5, "three refused, then one each");
    let distinct: HashSet<String> = keys(&requests).into_iter().collect();
    assert_eq!(distinct.len(), 2);
    assert_eq!(counts(&store).failed, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_over_the_rate_limit_wait_and_do_not_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let server = server(200).await;
    let config = config(&format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/hook\"\nrate_limit = 2\n\
         max_attempts = 1\n\
         [[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\nnotify = [\"hook\", \"log\"]\n",
        server.uri()
    ));
    let entries: Vec<Entry> = (1..=5)
        .map(|n| entry(n, &format!("Diffusion {n}")))
        .collect();
    assert_eq!(ingest(&store, &config, &entries, Duration::ZERO), 10);

    let worker = start(&store, &config, fast());
    // The unlimited `log` notifier delivers all five; the hook only its burst of two.
    wait_for(&store, "7 delivered", |c| c.delivered == 7).await;
    // Proving that nothing more happens needs time to pass: many poll intervals (20 ms)
    // go by here, and the next token is 30 s away.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let now = counts(&store);
    worker.stop().await;
    assert_eq!(now.delivered, 7, "{now:?}");
    assert_eq!(now.pending, 3, "{now:?}");
    assert_eq!(
        now.failed, 0,
        "waiting for a token is not a failed attempt: {now:?}"
    );
    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_sends_one_message_per_window_and_holds_open_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let server = server(200).await;
    let config = config(&format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}/hook\"\n\
         [[alert]]\nname = \"closed\"\nany = [\"diffusion\"]\nnotify = [\"hook\"]\ndigest = \"1s\"\n\
         [[alert]]\nname = \"open\"\nany = [\"transformer\"]\nnotify = [\"hook\"]\ndigest = \"1d\"\n",
        server.uri()
    ));
    // Seen a minute ago: the 1 s window has long closed, so its rows are due.
    let entries = [
        entry(1, "Diffusion one"),
        entry(2, "Diffusion two"),
        entry(3, "Diffusion three"),
    ];
    assert_eq!(
        ingest(&store, &config, &entries, Duration::from_secs(60)),
        3
    );
    // Seen now: the day-long window is open, so this row must be held.
    assert_eq!(
        ingest(
            &store,
            &config,
            &[entry(4, "A transformer")],
            Duration::ZERO
        ),
        1
    );

    let metrics = lookout::metrics::Metrics::new();
    let options = OutboxOptions {
        metrics: Some(metrics.clone()),
        ..fast()
    };
    run_until(&store, &config, options, "3 delivered", |c| {
        c.delivered == 3
    })
    .await;
    // /metrics counts the digest's rows, as the store (and so /healthz) does.
    assert!(
        metrics
            .encode()
            .contains("lookout_alerts_delivered_total{notifier=\"hook\"} 3\n"),
        "{}",
        metrics.encode()
    );

    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 1, "one message for the window");
    let body: Value = requests[0].body_json().expect("JSON");
    assert_eq!(body["rule"], "closed");
    assert_eq!(body["digest"], true);
    assert_eq!(body["count"], 3);
    let titles: HashSet<&str> = body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    assert_eq!(
        titles,
        HashSet::from(["Diffusion one", "Diffusion two", "Diffusion three"])
    );
    let key = keys(&requests).pop().expect("key");
    assert!(key.starts_with("digest-"), "{key}");
    assert_eq!(counts(&store).pending, 1, "the open window is held");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_exactly_once_across_a_worker_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(200).await;
    let config = hook_config(&server.uri(), "", "");
    {
        let store = open(&dir);
        ingest(
            &store,
            &config,
            &[entry(1, "Diffusion a"), entry(2, "Diffusion b")],
            Duration::ZERO,
        );
        run_until(&store, &config, fast(), "2 delivered", |c| c.delivered == 2).await;
    }
    // A new process: the store reopened from its file, a new worker.
    let store = open(&dir);
    let worker = start(&store, &config, fast());
    ingest(&store, &config, &[entry(3, "Diffusion c")], Duration::ZERO);
    worker.wake.notify_one();
    wait_for(&store, "3 delivered", |c| c.delivered == 3).await;
    worker.stop().await;

    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 3, "nothing re-sent after a clean restart");
    let distinct: HashSet<String> = keys(&requests).into_iter().collect();
    assert_eq!(distinct.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_abandoned_at_shutdown_is_resent_with_the_same_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&slow)
        .await;
    let config_slow = hook_config(&slow.uri(), "", "");
    ingest(
        &store,
        &config_slow,
        &[entry(1, "Diffusion")],
        Duration::ZERO,
    );

    let options = OutboxOptions {
        drain: Duration::from_millis(50),
        ..fast()
    };
    let worker = start(&store, &config_slow, options);
    // Wait until the receiver has the request: the send is in flight.
    requested(&slow, "request never arrived").await;
    // Shutdown with a short deadline abandons it, like a crash before recording.
    worker.stop().await;
    assert_eq!(counts(&store).pending, 1);

    let fast_server = server(200).await;
    let config_fast = hook_config(&fast_server.uri(), "", "");
    let worker = start(&store, &config_fast, fast());
    wait_for(&store, "1 delivered", |c| c.delivered == 1).await;
    worker.stop().await;

    let first = keys(&slow.received_requests().await.expect("recording on"));
    let second = keys(&fast_server.received_requests().await.expect("recording on"));
    assert_eq!(first.len(), 1);
    assert_eq!(first, second, "the resend carries the first send's key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_for_a_removed_notifier_are_retried_then_failed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let server = server(200).await;
    let before = config(&format!(
        "[[notifier]]\nname = \"gone\"\nkind = \"webhook\"\nurl = \"{}/x\"\n\
         [[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\nnotify = [\"gone\", \"log\"]\n",
        server.uri()
    ));
    ingest(&store, &before, &[entry(1, "Diffusion")], Duration::ZERO);
    // After a reload the notifier is no longer configured.
    let after = config("[[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\n");
    let worker = start(&store, &after, fast());
    wait_for(&store, "log delivered and gone failed", |c| {
        c.delivered == 1 && c.failed == 1
    })
    .await;
    worker.stop().await;
    let failed = failed_deliveries(&store, 10);
    assert_eq!(failed[0].notifier, "gone");
    assert!(
        failed[0].error.contains("not configured"),
        "{}",
        failed[0].error
    );
    assert!(server.received_requests().await.expect("on").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_does_not_hold_up_other_notifiers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&dir);
    let slow = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(30)))
        .mount(&slow)
        .await;
    let fast_server = server(200).await;
    let config = config(&format!(
        "[[notifier]]\nname = \"slow\"\nkind = \"webhook\"\nurl = \"{}/\"\ntimeout = \"60s\"\n\
         [[notifier]]\nname = \"fast\"\nkind = \"webhook\"\nurl = \"{}/\"\n\
         [[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\nnotify = [\"slow\", \"fast\"]\n",
        slow.uri(),
        fast_server.uri()
    ));
    let entries = [entry(1, "Diffusion a"), entry(2, "Diffusion b")];
    assert_eq!(ingest(&store, &config, &entries, Duration::ZERO), 4);
    let options = OutboxOptions {
        drain: Duration::from_millis(50),
        ..fast()
    };
    let worker = start(&store, &config, options);
    wait_for(&store, "both fast rows delivered", |c| c.delivered == 2).await;
    requested(&slow, "slow request never arrived").await;
    worker.stop().await;
    assert_eq!(fast_server.received_requests().await.expect("on").len(), 2);
    // One send at a time per notifier: the slow one never got its second row.
    assert_eq!(slow.received_requests().await.expect("on").len(), 1);
    assert_eq!(counts(&store).pending, 2);
}

/// A plain SMTP relay on 127.0.0.1 that refuses every recipient with `reply` and
/// counts the RCPT commands it was sent.
async fn refusing_relay(reply: &'static str) -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let rcpts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&rcpts);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 relay.test ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                    let answer = match verb.as_str() {
                        "EHLO" | "HELO" | "MAIL" | "RSET" | "NOOP" => "250 ok".to_owned(),
                        "RCPT" => {
                            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            reply.to_owned()
                        }
                        "QUIT" => {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        }
                        _ => "502 not here".to_owned(),
                    };
                    if write
                        .write_all(format!("{answer}\r\n").as_bytes())
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    (port, rcpts)
}

/// A relay that refuses for good (5xx) fails the row at once; one that refuses for
/// now (4xx) is tried again up to `max_attempts` (issue 13.8).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_permanent_smtp_refusal_fails_at_once_and_a_transient_one_is_retried() {
    for (reply, want_attempts) in [("550 5.1.1 no such mailbox", 1), ("451 4.3.0 later", 3)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = open(&dir);
        let (port, rcpts) = refusing_relay(reply).await;
        let config = config(&format!(
            "[[notifier]]\nname = \"mail\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\n\
             tls = \"none\"\nfrom = \"a@example.org\"\nto = [\"b@example.org\"]\nmax_attempts = 3\n\
             [[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\nnotify = [\"mail\"]\n"
        ));
        ingest(&store, &config, &[entry(1, "Diffusion")], Duration::ZERO);
        run_until(&store, &config, fast(), "the row failed", |c| c.failed == 1).await;
        assert_eq!(
            rcpts.load(std::sync::atomic::Ordering::SeqCst),
            want_attempts,
            "{reply}"
        );
    }
}
