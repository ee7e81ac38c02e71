//! Secrets stay with the origin they were configured for (issue 13, parts 5 and 12):
//! an http source's configured headers and a `Referer` never follow a redirect to
//! another origin, a redirect to `file:` (or any scheme but http and https) is refused
//! by name, and a `${NAME}` in a source `url` is expanded for the request but never
//! shown. Two real local servers (wiremock) on different ports are two origins.

use std::sync::{Arc, Mutex};

use crate::common::{redirect, serving};
use lookout::config::{Config, SourceConfig};
use lookout::sources::http::{
    AttemptError, FetchFailure, FetchOutcome, HostGate, HttpError, HttpSource,
};
use lookout::sources::{Outcome, Page, Recorded, Report};
use lookout::store::{SharedStore, Store};
use tokio::sync::mpsc;
use wiremock::matchers::path;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const API_KEY: &str = "k3y-never-elsewhere";
const BEARER: &str = "Bearer t0ken-never-elsewhere";

fn source_config(url: &str, extra: &str) -> SourceConfig {
    let text = format!("[[source]]\nname = \"s\"\nkind = \"http\"\nurl = {url:?}\n{extra}\n");
    Config::parse(&text, "<test>")
        .expect("test config is valid")
        .sources
        .remove(0)
}

/// The source's config with both secret headers.
fn with_secret_headers(url: &str) -> SourceConfig {
    source_config(
        url,
        &format!("headers = {{ X-Api-Key = {API_KEY:?}, Authorization = {BEARER:?} }}"),
    )
}

/// A store in a temp dir, and a pipeline that keeps every page and answers that it
/// was seen before (so nothing needs parsing).
struct Harness {
    _dir: tempfile::TempDir,
    store: SharedStore,
    tx: mpsc::Sender<Report>,
    pages: Arc<Mutex<Vec<Page>>>,
}

impl Harness {
    fn new() -> Harness {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(&dir.path().join("lookout.db")).expect("open store");
        let store: SharedStore = Arc::new(Mutex::new(store));
        let (tx, mut rx) = mpsc::channel::<Report>(4);
        let pages = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&pages);
        let writer = SharedStore::clone(&store);
        tokio::spawn(async move {
            while let Some(report) = rx.recv().await {
                match report {
                    Report::Page(capture) => {
                        kept.lock().unwrap().push(capture.page);
                        let _ = capture.reply.send(Outcome::Duplicate);
                    }
                    // As the daemon's pipeline does: it alone records attempts.
                    Report::Attempt(attempt) => {
                        let recorded = Recorded::of_attempt(&attempt.result);
                        crate::common::book(&writer, &attempt.source, &recorded);
                    }
                }
            }
        });
        Harness {
            _dir: dir,
            store,
            tx,
            pages,
        }
    }

    async fn fetch(&self, cfg: &SourceConfig) -> Result<FetchOutcome, HttpError> {
        self.source(cfg)
            .fetch_once(&self.tx)
            .await
            .map_err(|e| match e {
                AttemptError::Http(e) => e,
                other => panic!("not an HTTP error: {other}"),
            })
    }

    fn source(&self, cfg: &SourceConfig) -> HttpSource {
        HttpSource::new(
            cfg,
            HostGate::new(std::time::Duration::ZERO),
            self.store.clone(),
        )
        .expect("source builds")
    }
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn requests_to(server: &MockServer, at: &str) -> Vec<Request> {
    server
        .received_requests()
        .await
        .expect("recording on")
        .into_iter()
        .filter(|r| r.url.path() == at)
        .collect()
}

#[tokio::test]
async fn a_cross_origin_redirect_drops_the_configured_headers_and_sends_no_referer() {
    let first = MockServer::start().await;
    let other = MockServer::start().await;
    assert_ne!(first.address().port(), other.address().port());
    Mock::given(path("/list"))
        .respond_with(redirect(302, &format!("{}/moved", other.uri())))
        .mount(&first)
        .await;
    Mock::given(path("/moved"))
        .respond_with(ResponseTemplate::new(200).set_body_string("A paper\n"))
        .mount(&other)
        .await;
    let h = Harness::new();
    let outcome = h
        .fetch(&with_secret_headers(&format!("{}/list", first.uri())))
        .await;
    assert_eq!(outcome.expect("fetched"), FetchOutcome::Duplicate);

    let asked = requests_to(&first, "/list").await;
    assert_eq!(header(&asked[0], "x-api-key"), Some(API_KEY));
    assert_eq!(header(&asked[0], "authorization"), Some(BEARER));
    let followed = requests_to(&other, "/moved").await;
    assert_eq!(followed.len(), 1);
    for name in ["x-api-key", "authorization", "referer"] {
        assert_eq!(
            header(&followed[0], name),
            None,
            "{name} went to the other origin"
        );
    }
    assert!(header(&followed[0], "user-agent").is_some());
    let pages = h.pages.lock().unwrap();
    assert_eq!(pages[0].url.as_ref().map(|u| u.path()), Some("/moved"));
}

#[tokio::test]
async fn a_same_origin_redirect_keeps_the_configured_headers() {
    let server = serving(vec![
        ("/old", redirect(301, "/new")),
        (
            "/new",
            ResponseTemplate::new(200).set_body_string("A paper\n"),
        ),
    ])
    .await;
    let h = Harness::new();
    h.fetch(&with_secret_headers(&format!("{}/old", server.uri())))
        .await
        .expect("fetched");
    let followed = requests_to(&server, "/new").await;
    assert_eq!(header(&followed[0], "x-api-key"), Some(API_KEY));
    assert_eq!(header(&followed[0], "authorization"), Some(BEARER));
    assert_eq!(header(&followed[0], "referer"), None);
}

#[tokio::test]
async fn a_redirect_to_a_file_url_is_refused_by_its_scheme() {
    let server = MockServer::start().await;
    for (at, to) in [
        ("/file", "file:///etc/passwd"),
        ("/ftp", "ftp://127.0.0.1/x"),
    ] {
        Mock::given(path(at))
            .respond_with(redirect(302, to))
            .mount(&server)
            .await;
    }
    let h = Harness::new();
    for (at, scheme) in [("/file", "file"), ("/ftp", "ftp")] {
        let url = format!("{}{at}", server.uri());
        let error = h
            .fetch(&source_config(&url, ""))
            .await
            .expect_err("a redirect to another scheme is refused");
        assert!(
            matches!(error.failure(), Some(FetchFailure::SchemeRefused { scheme: s }) if s == scheme),
            "{error:?}"
        );
        let text = error.to_string();
        assert_eq!(
            text,
            format!(
                "GET {url}: redirect to a {scheme}: URL refused (only http and https are followed)"
            )
        );
        assert!(!text.contains("HTTP 302"), "{text}");
    }
    assert!(h.pages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_secret_in_the_source_url_is_sent_but_never_shown() {
    const KEY: &str = "q-s3cret-in-url";
    std::env::set_var("LOOKOUT_TEST_EDGE_URL_KEY", KEY);
    let server = MockServer::start().await;
    // The first answer repeats the key in a redirect, as some sites do; the second fails.
    Mock::given(path("/list"))
        .respond_with(redirect(302, &format!("/page?key={KEY}")))
        .mount(&server)
        .await;
    Mock::given(path("/page"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&server)
        .await;
    let configured = format!("{}/list?key=${{LOOKOUT_TEST_EDGE_URL_KEY}}", server.uri());
    let cfg = source_config(&configured, "");
    assert!(!format!("{cfg:?}").contains(KEY));
    let h = Harness::new();
    let source = h.source(&cfg);
    assert!(!format!("{source:?}").contains(KEY));
    let error = source
        .fetch_once(&h.tx)
        .await
        .expect_err("the page answers 500");

    let asked = requests_to(&server, "/list").await;
    assert_eq!(asked[0].url.query(), Some(format!("key={KEY}").as_str()));
    let text = error.to_string();
    assert_eq!(text, format!("GET {configured}: HTTP 500"));
    // The pipeline books the attempt after the source reported it: wait for it.
    let error = || {
        let state = h
            .store
            .lock()
            .unwrap()
            .fetch_state("s")
            .expect("fetch state");
        state.health.last_error
    };
    crate::common::eventually("the attempt recorded", || error().is_some()).await;
    let recorded = error().unwrap_or_default();
    assert!(recorded.contains("HTTP 500"), "{recorded}");
    assert!(!recorded.contains(KEY), "{recorded}");

    // A refused connection's error (reqwest names the URL in its own) hides it too.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = source_config(
        &format!("http://127.0.0.1:{closed}/?key=${{LOOKOUT_TEST_EDGE_URL_KEY}}"),
        "",
    );
    let error = h.fetch(&cfg).await.expect_err("nothing listens");
    assert!(
        matches!(error.failure(), Some(FetchFailure::Connect { .. })),
        "{error:?}"
    );
    assert!(!format!("{error} {error:?}").contains(KEY), "{error}");
}

#[tokio::test]
async fn a_redirect_that_repeats_the_url_secret_is_shown_redacted() {
    const KEY: &str = "r-s3cret-in-url";
    std::env::set_var("LOOKOUT_TEST_EDGE_URL_KEY_2", KEY);
    let server = serving(vec![
        ("/list", redirect(302, &format!("/page?key={KEY}"))),
        (
            "/page",
            ResponseTemplate::new(200).set_body_string("A paper\n"),
        ),
    ])
    .await;
    let h = Harness::new();
    let cfg = source_config(
        &format!("{}/list?key=${{LOOKOUT_TEST_EDGE_URL_KEY_2}}", server.uri()),
        "",
    );
    h.fetch(&cfg).await.expect("fetched");
    let pages = h.pages.lock().unwrap();
    assert_eq!(
        pages[0].origin,
        format!("{}/page?key=${{LOOKOUT_TEST_EDGE_URL_KEY_2}}", server.uri())
    );
    // The parser still gets the real URL, to resolve relative links.
    assert_eq!(
        pages[0].url.as_ref().and_then(|u| u.query()),
        Some(format!("key={KEY}").as_str())
    );
}
