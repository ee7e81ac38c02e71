//! The HTTP source against real local servers (wiremock, or a raw TCP listener for
//! misbehaving ones) and a real SQLite store in a temp dir. No internet: every
//! request goes to 127.0.0.1.
//!
//! Timing: tests wait with deadlines (polling or `watch::wait_for`), never sleep to
//! synchronize. Wall-clock assertions are only lower bounds (a timer never fires
//! early), which a loaded machine cannot break.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lookout::config::{Config, HumanDuration, SourceConfig};
use lookout::entry::Entry;
use lookout::sources::http::{
    fetch_url, schedule, AttemptError, FetchFailure, FetchOutcome, HostGate, HttpError, HttpSource,
    Limits, DEFAULT_USER_AGENT,
};
use lookout::sources::{Capture, Failure, Outcome, Page, Recorded, Report};
use lookout::store::{FetchState, Ingest, NoRules, SharedStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::common::{self, eventually, redirect, serving};

/// How long any wait may take before the test fails; far beyond what each needs.
const DEADLINE: Duration = Duration::from_secs(20);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A validated http source config; `extra` is more TOML for the `[[source]]` table.
fn source_config(name: &str, url: &str, extra: &str) -> SourceConfig {
    let text = format!("[[source]]\nname = {name:?}\nkind = \"http\"\nurl = {url:?}\n{extra}\n");
    let mut config = Config::parse(&text, "<test>").expect("test config is valid");
    config.sources.remove(0)
}

/// A source config polled every `every` (below the 1 s the validator allows for
/// users, so tests run fast).
fn fast_config(name: &str, url: &str, every: Duration, extra: &str) -> SourceConfig {
    let mut cfg = source_config(name, url, extra);
    if let lookout::config::SourceKind::Http(http) = &mut cfg.kind {
        http.every = HumanDuration(every);
    }
    cfg
}

/// Stands in for the daemon: a real store, a pipeline that "parses" each body line
/// as an entry title and ingests it (bodies starting with `BAD` are refused), the
/// shared host gate and the shutdown signal.
struct Daemon {
    _dir: tempfile::TempDir,
    store: SharedStore,
    gate: HostGate,
    tx: mpsc::Sender<Report>,
    pages: Arc<Mutex<Vec<Page>>>,
    shutdown: CancellationToken,
}

impl Daemon {
    fn new(min_gap: Duration) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("lookout.db")).expect("open store");
        let store: SharedStore = Arc::new(Mutex::new(store));
        let (tx, rx) = mpsc::channel(16);
        let pages = Arc::new(Mutex::new(Vec::new()));
        tokio::spawn(pipeline(rx, SharedStore::clone(&store), Arc::clone(&pages)));
        Daemon {
            _dir: dir,
            store,
            gate: HostGate::new(min_gap),
            tx,
            pages,
            shutdown: CancellationToken::new(),
        }
    }

    fn source(&self, cfg: &SourceConfig) -> HttpSource {
        HttpSource::new(cfg, self.gate.clone(), SharedStore::clone(&self.store))
            .expect("source builds")
            .with_start_delay(Duration::ZERO)
    }

    /// Runs a source as the daemon would; returns its task.
    fn spawn(&self, source: HttpSource) -> tokio::task::JoinHandle<()> {
        tokio::spawn(source.run(self.tx.clone(), self.shutdown.child_token()))
    }

    /// The healthy neighbour ([`healthy_neighbour`]) kept its schedule: three more
    /// pages at least since it had `at_start`.
    fn neighbour_kept_its_schedule(&self, at_start: usize) {
        let healthy = self.pages_of("healthy").len() - at_start;
        assert!(
            healthy >= 3,
            "the healthy source delivered only {healthy} pages meanwhile"
        );
    }

    fn pages_of(&self, source: &str) -> Vec<Page> {
        let pages = self.pages.lock().expect("pages lock");
        pages
            .iter()
            .filter(|p| p.source == source)
            .cloned()
            .collect()
    }

    fn fetch_state(&self, source: &str) -> FetchState {
        let store = self.store.lock().expect("store lock");
        store.fetch_state(source).expect("fetch state")
    }

    /// The source's record once the pipeline has booked `failures` failures in a row:
    /// a source reports an attempt and goes on, the pipeline books it when it gets it.
    async fn recorded(&self, source: &str, failures: u32) -> FetchState {
        let state = self.failed_at_least(source, failures).await;
        assert_eq!(state.health.consecutive_failures, failures, "{state:?}");
        state
    }

    /// The source's record once the pipeline has booked at least `failures` failures
    /// in a row: the health the daemon shows.
    async fn failed_at_least(&self, source: &str, failures: u32) -> FetchState {
        eventually("the attempts recorded by the pipeline", || {
            self.fetch_state(source).health.consecutive_failures >= failures
        })
        .await;
        self.fetch_state(source)
    }
}

async fn pipeline(
    mut rx: mpsc::Receiver<Report>,
    store: SharedStore,
    pages: Arc<Mutex<Vec<Page>>>,
) {
    while let Some(report) = rx.recv().await {
        let Capture {
            page,
            reply,
            validators,
        } = match report {
            Report::Page(capture) => capture,
            Report::Attempt(attempt) => {
                common::book(
                    &store,
                    &attempt.source,
                    &Recorded::of_attempt(&attempt.result),
                );
                continue;
            }
        };
        let outcome = if page.body.starts_with(b"BAD") {
            Outcome::Failed {
                error: Failure::msg("unrecognized page"),
            }
        } else {
            let entries: Vec<Entry> = String::from_utf8_lossy(&page.body)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| Entry {
                    title: l.to_owned(),
                    format: "test",
                    ..Entry::default()
                })
                .collect();
            let report = store
                .lock()
                .expect("store lock")
                .ingest(
                    &Ingest {
                        source: &page.source,
                        origin: &page.origin,
                        content_hash: Some(&page.content_hash),
                        format: "test",
                        entries: &entries,
                        seen_at: page.captured_at,
                        alerts: !page.baseline,
                    },
                    &NoRules,
                )
                .expect("ingest");
            if report.duplicate_capture {
                Outcome::Duplicate
            } else {
                Outcome::Ingested {
                    format: "test",
                    report,
                }
            }
        };
        // As the daemon's pipeline does: the validators are recorded with a stored page.
        common::book(
            &store,
            &page.source,
            &Recorded::of_outcome(&outcome, validators.as_ref()),
        );
        pages.lock().expect("pages lock").push(page);
        let _ = reply.send(outcome);
    }
}

/// A server that accepts connections and never says a word.
async fn silent_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (addr, accepted)
}

/// A server whose 200 response body never ends.
async fn endless_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let head =
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\n";
                if socket.write_all(head).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 16 * 1024];
                while socket.write_all(&chunk).await.is_ok() {}
            });
        }
    });
    addr
}

/// A healthy source on its own server, polled every 100 ms: the witness that the
/// other sources of a daemon keep their schedule while one misbehaves.
async fn healthy_neighbour(daemon: &Daemon) -> (MockServer, tokio::task::JoinHandle<()>) {
    let server = MockServer::start().await;
    let counter = AtomicUsize::new(0);
    // A different body each time so every fetch is a new page, not a duplicate.
    Mock::given(method("GET"))
        .respond_with(move |_: &Request| {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            ResponseTemplate::new(200).set_body_string(format!("Healthy paper {n}\n"))
        })
        .mount(&server)
        .await;
    let cfg = fast_config("healthy", &format!("{}/list", server.uri()), ms(100), "");
    let task = daemon.spawn(daemon.source(&cfg));
    (server, task)
}

/// Records when each request arrived and answers the n-th request (0-based) with
/// `respond(n)`.
#[derive(Clone)]
struct Script {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    respond: Arc<dyn Fn(usize) -> ResponseTemplate + Send + Sync>,
}

impl Script {
    /// Answers from a list; the last response repeats.
    fn new(responses: Vec<ResponseTemplate>) -> Script {
        Script::with(move |n| responses[n.min(responses.len() - 1)].clone())
    }

    fn with(respond: impl Fn(usize) -> ResponseTemplate + Send + Sync + 'static) -> Script {
        Script {
            arrivals: Arc::new(Mutex::new(Vec::new())),
            respond: Arc::new(respond),
        }
    }

    fn arrivals(&self) -> Vec<Instant> {
        self.arrivals.lock().expect("arrivals lock").clone()
    }
}

impl wiremock::Respond for Script {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = {
            let mut arrivals = self.arrivals.lock().expect("arrivals lock");
            arrivals.push(Instant::now());
            arrivals.len() - 1
        };
        (self.respond)(n)
    }
}

async fn scripted_server(script: &Script) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(script.clone())
        .mount(&server)
        .await;
    server
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}

#[tokio::test]
async fn second_fetch_is_conditional_and_a_304_sends_no_page() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/list"))
        .and(header("if-none-match", "\"v1\""))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/list"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .insert_header("last-modified", "Wed, 21 Oct 2015 07:28:00 GMT")
                .insert_header("content-type", "text/plain; charset=utf-8")
                .set_body_string("Paper one\nPaper two\n"),
        )
        .mount(&server)
        .await;
    let daemon = Daemon::new(Duration::ZERO);
    let url = format!("{}/list", server.uri());
    let source = daemon.source(&source_config("papers", &url, ""));

    let first = source.fetch_once(&daemon.tx).await.expect("first fetch");
    assert!(
        matches!(&first, FetchOutcome::Ingested { report, .. } if report.new == 2),
        "{first:?}"
    );
    let state = daemon.fetch_state("papers");
    assert_eq!(state.validators.etag.as_deref(), Some("\"v1\""));
    assert_eq!(
        state.validators.last_modified.as_deref(),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );

    let second = source.fetch_once(&daemon.tx).await.expect("second fetch");
    assert_eq!(second, FetchOutcome::NotModified);
    assert_eq!(daemon.pages_of("papers").len(), 1, "a 304 sends no page");

    let requests = server.received_requests().await.expect("recording on");
    assert_eq!(requests.len(), 2);
    assert!(requests[0].headers.get("if-none-match").is_none());
    let h = |name: &str| requests[1].headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(h("if-none-match"), Some("\"v1\""));
    assert_eq!(
        h("if-modified-since"),
        Some("Wed, 21 Oct 2015 07:28:00 GMT")
    );

    let state = daemon.fetch_state("papers");
    assert!(state.ever_succeeded);
    assert_eq!(state.health.consecutive_failures, 0);
    assert!(state.health.last_success.is_some());
    assert_eq!(
        state.validators.etag.as_deref(),
        Some("\"v1\""),
        "a 304 keeps the validators"
    );
}

#[tokio::test]
async fn the_page_carries_fetch_time_final_url_content_type_format_and_hash() {
    let server = serving(vec![
        ("/old", redirect(301, "/new")),
        (
            "/new",
            ResponseTemplate::new(200).set_body_raw("A paper\n", "text/html"),
        ),
    ])
    .await;
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config(
        "moved",
        &format!("{}/old", server.uri()),
        "format = \"hf-papers\"",
    );
    let before = chrono::Utc::now();
    daemon
        .source(&cfg)
        .fetch_once(&daemon.tx)
        .await
        .expect("fetch");
    let after = chrono::Utc::now();

    let pages = daemon.pages_of("moved");
    let page = &pages[0];
    assert_eq!(page.url.as_ref().map(|u| u.path()), Some("/new"));
    assert_eq!(page.origin, format!("{}/new", server.uri()));
    assert_eq!(page.content_type.as_deref(), Some("text/html"));
    assert_eq!(page.format, "hf-papers");
    assert_eq!(page.body, b"A paper\n");
    assert_eq!(
        page.content_hash,
        lookout::sources::content_hash(b"A paper\n")
    );
    assert!(before <= page.captured_at && page.captured_at <= after);
}

#[tokio::test]
async fn configured_headers_and_the_default_user_agent_are_sent_and_never_shown() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("A paper\n"))
        .mount(&server)
        .await;
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config(
        "private",
        &server.uri(),
        "headers = { Authorization = \"Bearer s3cret-token\" }",
    );
    let source = daemon.source(&cfg);
    assert!(!format!("{source:?}").contains("s3cret"));
    source.fetch_once(&daemon.tx).await.expect("fetch");

    let requests = server.received_requests().await.expect("recording on");
    let h = |name: &str| requests[0].headers.get(name).and_then(|v| v.to_str().ok());
    assert_eq!(h("authorization"), Some("Bearer s3cret-token"));
    assert_eq!(h("user-agent"), Some(DEFAULT_USER_AGENT));
    assert!(DEFAULT_USER_AGENT.starts_with("lookout/"));
    let accept = h("accept-encoding").unwrap_or_default();
    assert!(accept.contains("gzip") && accept.contains("br"), "{accept}");
}

#[tokio::test]
async fn baseline_is_true_on_the_first_success_only() {
    let script = Script::new(vec![
        ResponseTemplate::new(500),
        ResponseTemplate::new(200).set_body_string("Paper one\n"),
        ResponseTemplate::new(200).set_body_string("Paper one\nPaper two\n"),
    ]);
    let server = scripted_server(&script).await;
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config("fresh", &server.uri(), "");
    let source = daemon.source(&cfg);

    let failed = source.fetch_once(&daemon.tx).await;
    assert!(
        matches!(
            failed,
            Err(AttemptError::Http(HttpError::Fetch {
                failure: FetchFailure::Status { status: 500, .. },
                ..
            }))
        ),
        "{failed:?}"
    );
    let first = source.fetch_once(&daemon.tx).await.expect("first success");
    assert!(
        matches!(first, FetchOutcome::Ingested { baseline: true, .. }),
        "{first:?}"
    );
    // A new source object on the same store: the baseline is remembered across restarts.
    let restarted = daemon.source(&cfg);
    let second = restarted
        .fetch_once(&daemon.tx)
        .await
        .expect("second success");
    assert!(
        matches!(
            second,
            FetchOutcome::Ingested {
                baseline: false,
                ..
            }
        ),
        "{second:?}"
    );

    let flags: Vec<bool> = daemon
        .pages_of("fresh")
        .iter()
        .map(|p| p.baseline)
        .collect();
    assert_eq!(
        flags,
        [true, false],
        "a failed first fetch does not use up the baseline"
    );
}

#[tokio::test]
async fn alert_on_first_never_sets_baseline() {
    let script = Script::new(vec![
        ResponseTemplate::new(200).set_body_string("Paper one\n"),
        ResponseTemplate::new(200).set_body_string("Paper two\n"),
    ]);
    let server = scripted_server(&script).await;
    let daemon = Daemon::new(Duration::ZERO);
    let source = daemon.source(&source_config(
        "eager",
        &server.uri(),
        "alert_on_first = true",
    ));
    source.fetch_once(&daemon.tx).await.expect("first");
    source.fetch_once(&daemon.tx).await.expect("second");
    let flags: Vec<bool> = daemon
        .pages_of("eager")
        .iter()
        .map(|p| p.baseline)
        .collect();
    assert_eq!(flags, [false, false]);
}

#[tokio::test]
async fn a_refused_page_saves_no_validators_and_keeps_the_normal_schedule() {
    let script = Script::new(vec![ResponseTemplate::new(200)
        .insert_header("etag", "\"bad\"")
        .set_body_string("BAD page\n")]);
    let server = scripted_server(&script).await;
    let daemon = Daemon::new(Duration::ZERO);
    // A backoff would wait a minute; the normal schedule polls again within a second.
    let every = ms(300);
    let cfg = fast_config("broken", &server.uri(), every, "");
    let source = daemon
        .source(&cfg)
        .with_backoff_base(Duration::from_secs(60));
    let _task = daemon.spawn(source);

    let state = daemon.failed_at_least("broken", 1).await;
    let error = state.health.last_error.unwrap_or_default();
    assert_eq!(error, "unrecognized page", "the pipeline's reason");
    eventually("the next regular poll", || script.arrivals().len() >= 2).await;
    let arrivals = script.arrivals();
    assert!(
        arrivals[1] - arrivals[0] >= every,
        "polled again after {:?}",
        arrivals[1] - arrivals[0]
    );
    let state = daemon.fetch_state("broken");
    assert_eq!(
        state.validators.etag, None,
        "validators are saved only once the page is stored"
    );
    assert!(!state.ever_succeeded);
    daemon.shutdown.cancel();
}

#[tokio::test]
async fn a_page_the_pipeline_never_answered_is_fetched_again_in_full() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("etag", "\"v1\"")
                .set_body_string("Paper one\n"),
        )
        .mount(&server)
        .await;
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config("crashy", &server.uri(), "");
    // A pipeline that takes the page and dies before answering, like a crash mid-ingest.
    let (tx, mut rx) = mpsc::channel::<Report>(1);
    let dying = tokio::spawn(async move {
        if let Some(capture) = rx.recv().await {
            drop(capture);
        }
    });
    let result = daemon.source(&cfg).fetch_once(&tx).await;
    assert!(
        matches!(result, Err(AttemptError::PipelineClosed { .. })),
        "{result:?}"
    );
    dying.await.expect("pipeline task");
    assert_eq!(daemon.fetch_state("crashy"), FetchState::default());

    daemon
        .source(&cfg)
        .fetch_once(&daemon.tx)
        .await
        .expect("refetch");
    let requests = server.received_requests().await.expect("recording on");
    assert!(
        requests[1].headers.get("if-none-match").is_none(),
        "unconditional again"
    );
    assert_eq!(daemon.pages_of("crashy").len(), 1);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured_while_others_keep_their_schedule() {
    let script = Script::new(vec![
        ResponseTemplate::new(429).insert_header("retry-after", "1"),
        ResponseTemplate::new(200).set_body_string("Finally\n"),
    ]);
    retry_after_is_honoured(script, "1 s").await;
}

#[tokio::test]
async fn retry_after_http_date_on_503_is_honoured_while_others_keep_their_schedule() {
    // Computed when the request arrives. HTTP dates have whole seconds: two seconds
    // ahead, truncated, is still more than one second after the arrival.
    let script = Script::with(|n| {
        if n == 0 {
            let at = chrono::Utc::now() + chrono::Duration::seconds(2);
            let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            ResponseTemplate::new(503).insert_header("retry-after", date.as_str())
        } else {
            ResponseTemplate::new(200).set_body_string("Finally\n")
        }
    });
    retry_after_is_honoured(script, "an HTTP date").await;
}

#[tokio::test]
async fn retry_after_in_the_obsolete_date_forms_is_honoured_too() {
    // RFC 850 and asctime dates, which HTTP/1.1 recipients must still read.
    for format in ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"] {
        let script = Script::with(move |n| {
            if n == 0 {
                let at = chrono::Utc::now() + chrono::Duration::seconds(2);
                let date = at.format(format).to_string();
                ResponseTemplate::new(503).insert_header("retry-after", date.as_str())
            } else {
                ResponseTemplate::new(200).set_body_string("Finally\n")
            }
        });
        retry_after_is_honoured(script, format).await;
    }
}

async fn retry_after_is_honoured(script: Script, what: &str) {
    let server = scripted_server(&script).await;
    let daemon = Daemon::new(Duration::ZERO);
    let (_healthy_server, _healthy) = healthy_neighbour(&daemon).await;
    // Backoff alone would retry after 10 ms; only Retry-After can make it wait.
    let cfg = fast_config("limited", &server.uri(), Duration::from_secs(60), "");
    let source = daemon.source(&cfg).with_backoff_base(ms(10));
    let _task = daemon.spawn(source);

    eventually("the retried page", || daemon.pages_of("limited").len() == 1).await;
    let healthy_before_retry = daemon
        .pages_of("healthy")
        .iter()
        .filter(|p| p.captured_at < daemon.pages_of("limited")[0].captured_at)
        .count();

    let arrivals = script.arrivals();
    assert_eq!(arrivals.len(), 2);
    let waited = arrivals[1] - arrivals[0];
    assert!(
        waited >= ms(1000),
        "retried after {waited:?}, server said {what}"
    );
    assert!(
        healthy_before_retry >= 3,
        "the healthy source delivered only {healthy_before_retry} pages meanwhile"
    );
    daemon.shutdown.cancel();
}

#[tokio::test]
async fn a_server_that_never_answers_times_out_while_others_keep_their_schedule() {
    let (addr, accepted) = silent_server().await;
    let daemon = Daemon::new(Duration::ZERO);
    let (_healthy_server, _healthy) = healthy_neighbour(&daemon).await;
    let cfg = fast_config(
        "mute",
        &format!("http://{addr}/list"),
        Duration::from_secs(60),
        "timeout = \"300ms\"",
    );

    let once = tokio::time::timeout(DEADLINE, daemon.source(&cfg).fetch_once(&daemon.tx))
        .await
        .expect("the fetch gives up by itself");
    match once {
        Err(AttemptError::Http(HttpError::Fetch {
            failure: FetchFailure::Timeout { after },
            ref url,
        })) => {
            assert_eq!(after, ms(300));
            assert!(url.contains(&addr.to_string()));
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    let message = once.err().map(|e| e.to_string()).unwrap_or_default();
    assert_eq!(
        message,
        format!("GET http://{addr}/list: timed out after 300ms")
    );

    let _task = daemon.spawn(daemon.source(&cfg).with_backoff_base(ms(50)));
    let healthy_at_start = daemon.pages_of("healthy").len();
    let state = daemon.failed_at_least("mute", 3).await;
    assert!(state
        .health
        .last_error
        .unwrap_or_default()
        .contains("timed out after 300ms"));
    assert!(accepted.load(Ordering::SeqCst) >= 3);
    daemon.neighbour_kept_its_schedule(healthy_at_start);
    daemon.shutdown.cancel();
}

#[tokio::test]
async fn an_endless_body_is_cut_at_the_limit() {
    let addr = endless_server().await;
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config(
        "endless",
        &format!("http://{addr}/"),
        "max_body_size = 65536\ntimeout = \"60s\"",
    );
    let result = tokio::time::timeout(DEADLINE, daemon.source(&cfg).fetch_once(&daemon.tx))
        .await
        .expect("cut at the limit, long before the timeout");
    match result {
        Err(AttemptError::Http(
            e @ HttpError::Fetch {
                failure: FetchFailure::TooLarge { limit: 65536 },
                ..
            },
        )) => {
            assert_eq!(
                e.to_string(),
                format!("GET http://{addr}/: body exceeds 65536 bytes")
            );
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(daemon.pages_of("endless").is_empty());
    daemon.recorded("endless", 1).await;
}

#[tokio::test]
async fn a_gzip_bomb_is_cut_at_the_limit() {
    // 8 MiB of zeros, about 8 KiB on the wire: small enough to pass any check on the
    // compressed size, 128 times the limit once inflated.
    let bomb = gzip(&vec![0u8; 8 * 1024 * 1024]);
    assert!(bomb.len() < 65536);
    let server = serving(vec![(
        "/bomb",
        ResponseTemplate::new(200)
            .insert_header("content-encoding", "gzip")
            .set_body_bytes(bomb),
    )])
    .await;
    let text = "A paper about compression\n".repeat(100);
    Mock::given(path("/fine"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("content-encoding", "gzip")
                .set_body_bytes(gzip(text.as_bytes())),
        )
        .mount(&server)
        .await;
    let daemon = Daemon::new(Duration::ZERO);
    let extra = "max_body_size = 65536";
    let bomb_cfg = source_config("bomb", &format!("{}/bomb", server.uri()), extra);
    let result = daemon.source(&bomb_cfg).fetch_once(&daemon.tx).await;
    assert!(
        matches!(
            result,
            Err(AttemptError::Http(HttpError::Fetch {
                failure: FetchFailure::TooLarge { limit: 65536 },
                ..
            }))
        ),
        "{result:?}"
    );

    let fine_cfg = source_config("fine", &format!("{}/fine", server.uri()), extra);
    daemon
        .source(&fine_cfg)
        .fetch_once(&daemon.tx)
        .await
        .expect("fine page");
    assert_eq!(
        daemon.pages_of("fine")[0].body,
        text.as_bytes(),
        "decompressed"
    );
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_reading() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_bytes(vec![b'x'; 100_000]))
        .mount(&server)
        .await;
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config("big", &server.uri(), "max_body_size = 65536");
    let result = daemon.source(&cfg).fetch_once(&daemon.tx).await;
    assert!(
        matches!(
            result,
            Err(AttemptError::Http(HttpError::Fetch {
                failure: FetchFailure::TooLarge { .. },
                ..
            }))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn a_redirect_loop_is_an_error() {
    let server = serving(vec![
        ("/a", redirect(302, "/b")),
        ("/b", redirect(302, "/a")),
    ])
    .await;
    let daemon = Daemon::new(Duration::ZERO);
    let url = format!("{}/a", server.uri());
    let result = daemon
        .source(&source_config("loop", &url, ""))
        .fetch_once(&daemon.tx)
        .await;
    match result {
        Err(AttemptError::Http(
            e @ HttpError::Fetch {
                failure: FetchFailure::RedirectLoop { .. },
                ..
            },
        )) => {
            assert_eq!(e.to_string(), format!("GET {url}: redirect loop at {url}"));
        }
        other => panic!("expected a redirect loop, got {other:?}"),
    }
    assert!(daemon.pages_of("loop").is_empty());
    let state = daemon.recorded("loop", 1).await;
    assert!(state
        .health
        .last_error
        .unwrap_or_default()
        .contains("redirect loop"));
}

#[tokio::test]
async fn more_redirects_than_allowed_is_an_error() {
    let server = MockServer::start().await;
    for i in 0..5 {
        Mock::given(path(format!("/r{i}")))
            .respond_with(redirect(302, &format!("/r{}", i + 1)))
            .mount(&server)
            .await;
    }
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config(
        "chain",
        &format!("{}/r0", server.uri()),
        "max_redirects = 2",
    );
    let result = daemon.source(&cfg).fetch_once(&daemon.tx).await;
    assert!(
        matches!(
            result,
            Err(AttemptError::Http(HttpError::Fetch {
                failure: FetchFailure::TooManyRedirects { max: 2 },
                ..
            }))
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn repeated_500s_back_off_with_growing_capped_delays_while_others_keep_their_schedule() {
    let script = Script::new(vec![ResponseTemplate::new(500)]);
    let server = scripted_server(&script).await;
    let daemon = Daemon::new(Duration::ZERO);
    let (_healthy_server, _healthy) = healthy_neighbour(&daemon).await;
    let base = ms(50);
    let cap = ms(200);
    let cfg = fast_config("failing", &server.uri(), ms(10), "max_backoff = \"200ms\"");
    let _task = daemon.spawn(daemon.source(&cfg).with_backoff_base(base));

    // `every` is 10 ms, so any gap between requests above it is backoff.
    let healthy_at_start = daemon.pages_of("healthy").len();
    daemon.failed_at_least("failing", 6).await;
    assert_eq!(
        schedule::backoff(6, base, cap),
        cap,
        "the delay reached its cap"
    );

    let arrivals = script.arrivals();
    for (i, pair) in arrivals.windows(2).enumerate() {
        let expected = schedule::backoff(u32::try_from(i + 1).unwrap_or(u32::MAX), base, cap);
        assert!(
            pair[1] - pair[0] >= expected,
            "gap {i}: {:?} < {expected:?}",
            pair[1] - pair[0]
        );
    }
    let state = daemon.fetch_state("failing");
    assert!(state.health.consecutive_failures >= 6);
    assert!(!state.ever_succeeded);
    assert_eq!(
        state.health.last_error.as_deref(),
        Some(format!("GET {}/: HTTP 500", server.uri()).as_str())
    );
    daemon.neighbour_kept_its_schedule(healthy_at_start);
    daemon.shutdown.cancel();
}

#[tokio::test]
async fn requests_to_one_host_go_one_at_a_time_with_a_gap() {
    let script = Script::new(vec![ResponseTemplate::new(200)
        .set_body_string("Paper\n")
        .set_delay(ms(100))]);
    let server = scripted_server(&script).await;
    let daemon = Daemon::new(ms(100));
    let a = daemon.source(&source_config("a", &format!("{}/a", server.uri()), ""));
    let b = daemon.source(&source_config("b", &format!("{}/b", server.uri()), ""));
    let (ra, rb) = tokio::join!(a.fetch_once(&daemon.tx), b.fetch_once(&daemon.tx));
    ra.expect("a");
    rb.expect("b");
    let arrivals = script.arrivals();
    assert_eq!(arrivals.len(), 2);
    // The second request starts only after the first answered (100 ms) plus the gap.
    assert!(
        arrivals[1] - arrivals[0] >= ms(200),
        "{:?}",
        arrivals[1] - arrivals[0]
    );
}

#[tokio::test]
async fn shutdown_abandons_a_fetch_in_flight() {
    let (addr, accepted) = silent_server().await;
    let daemon = Daemon::new(Duration::ZERO);
    let cfg = source_config("stuck", &format!("http://{addr}/"), "timeout = \"60s\"");
    let task = daemon.spawn(daemon.source(&cfg));
    eventually("the request to hang", || {
        accepted.load(Ordering::SeqCst) >= 1
    })
    .await;
    daemon.shutdown.cancel();
    tokio::time::timeout(DEADLINE, task)
        .await
        .expect("the task stops long before the 60 s timeout")
        .expect("the task did not panic");
    assert_eq!(
        daemon.fetch_state("stuck"),
        FetchState::default(),
        "nothing recorded"
    );
}

#[tokio::test]
async fn fetch_url_previews_a_page() {
    let server = serving(vec![(
        "/list",
        ResponseTemplate::new(200).set_body_raw("[]", "application/json"),
    )])
    .await;
    let url = url::Url::parse(&format!("{}/list", server.uri())).expect("url");
    let fetched = fetch_url(&url, &Limits::default()).await.expect("preview");
    assert_eq!(fetched.body, b"[]");
    assert_eq!(fetched.content_type.as_deref(), Some("application/json"));
    assert_eq!(fetched.url, url);

    let missing = url.join("/nothing").expect("url");
    let error = fetch_url(&missing, &Limits::default())
        .await
        .expect_err("404");
    assert_eq!(error.to_string(), format!("GET {missing}: HTTP 404"));
}

#[tokio::test]
async fn a_refused_connection_names_the_url() {
    // Bind then drop a listener: its port is (almost certainly) closed now.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let url = url::Url::parse(&format!("http://{addr}/")).expect("url");
    let error = fetch_url(&url, &Limits::default())
        .await
        .expect_err("refused");
    assert!(
        matches!(error.failure(), Some(FetchFailure::Connect { .. })),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("GET {url}: cannot connect: ")),
        "{message}"
    );
}

/// A TLS server on 127.0.0.1 whose certificate no trusted CA signed; it answers any
/// request with a page (which a client must never get to read).
async fn untrusted_tls_server() -> SocketAddr {
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("certificate");
    let acceptor = crate::common::tls_acceptor(&cert, &key);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let _ = tls
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello")
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_https_page_behind_an_untrusted_certificate_is_refused() {
    let addr = untrusted_tls_server().await;
    let daemon = Daemon::new(Duration::ZERO);
    let url = format!("https://{addr}/page");
    let result = daemon
        .source(&source_config("tls", &url, ""))
        .fetch_once(&daemon.tx)
        .await;
    let err = result.expect_err("the certificate is not trusted");
    let shown = format!("{err}");
    assert!(
        shown.contains("invalid peer certificate: UnknownIssuer"),
        "{shown}"
    );
    assert!(daemon.pages_of("tls").is_empty(), "nothing was read");
    daemon.recorded("tls", 1).await;
}
