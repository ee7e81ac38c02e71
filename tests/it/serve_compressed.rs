//! Feeds served gzipped from the copy made once per rendering: the gzip bytes decode
//! to the identity bytes, each encoding has its own ETag and answers its own
//! conditional requests, `Vary: Accept-Encoding` is on 200 and 304 alike, q-values are
//! honoured, and a change is never served from the old compressed copy.

use std::io::Read;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::DateTime;
use lookout::config::Config;
use lookout::entry::Entry;
use lookout::live::Live;
use lookout::metrics::Metrics;
use lookout::publish::Publisher;
use lookout::server::{self, AppState, ConnectionLimits};
use lookout::store::{Ingest, NoRules, SharedStore, Store, StoreHealth};
use reqwest::header::{HeaderMap, ACCEPT_ENCODING, CONTENT_ENCODING, ETAG, LAST_MODIFIED, VARY};

/// A served store with one folder source `a`, on a free port.
struct Served {
    store: SharedStore,
    publisher: Arc<Publisher>,
    base: String,
    client: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "state_dir = {:?}\n[[source]]\nname = \"a\"\nkind = \"folder\"\npath = {:?}\n",
            dir.path(),
            dir.path().join("a"),
        );
        let config = Arc::new(Config::parse(&text, "test.toml").expect("valid config"));
        let store: SharedStore = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let publisher = Arc::new(Publisher::new(store.clone(), &config, 0));
        let app = server::router(AppState {
            publisher: Arc::clone(&publisher),
            store: store.clone(),
            token: Arc::new(RwLock::new(None)),
            metrics: Metrics::new(),
            live: Arc::new(Live::new(Arc::clone(&config), Arc::new(NoRules))),
            health: StoreHealth::new(None),
            interests: Arc::new(lookout::daemon::interests::Interests::new(&config)),
        });
        let listener = server::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let limits = ConnectionLimits {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
        };
        tokio::spawn(server::serve(listener, app, limits, async move {
            let _ = stopped.await;
        }));
        // The raw bytes on the wire: no transparent decoding.
        let client = reqwest::Client::builder()
            .no_gzip()
            .no_brotli()
            .build()
            .unwrap();
        Served {
            store,
            publisher,
            base,
            client,
            _stop: stop,
            _dir: dir,
        }
    }

    /// Ingests `titles` as items of source `a`, seen at `seen` seconds.
    fn ingest(&self, titles: &[String], seen: i64) {
        self.ingest_with_link(titles, None, seen);
    }

    /// The same, with a link on each: fills the link of a known item that had none.
    fn ingest_with_link(&self, titles: &[String], link: Option<&str>, seen: i64) {
        let entries: Vec<Entry> = titles
            .iter()
            .map(|title| Entry {
                title: title.clone(),
                summary: format!("About {title}: diffusion models and their friends."),
                authors: vec!["Ada Lovelace".into(), "Alan Turing".into()],
                link: link.map(|l| format!("{l}/{}", title.len())),
                format: "hf-papers",
                ..Entry::default()
            })
            .collect();
        let mut store = lookout::store::lock(&self.store);
        store
            .ingest(
                &Ingest {
                    source: "a",
                    origin: "test",
                    content_hash: None,
                    format: "hf-papers",
                    entries: &entries,
                    seen_at: DateTime::from_timestamp(seen, 0).unwrap(),
                    alerts: false,
                },
                &NoRules,
            )
            .expect("ingest");
        self.publisher
            .store_changed(store.generation().expect("generation"));
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, HeaderMap, Vec<u8>) {
        let mut req = self.client.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.bytes().await.unwrap().to_vec())
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    // One member, not several: every decoder reads that.
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("valid gzip");
    out
}

fn header(h: &HeaderMap, name: reqwest::header::HeaderName) -> &str {
    h.get(&name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header"))
}

fn titles(from: usize, to: usize) -> Vec<String> {
    (from..to).map(|i| format!("Paper number {i}")).collect()
}

const GZIP: (&str, &str) = ("accept-encoding", "gzip, deflate, br");

#[tokio::test]
async fn gzip_answers_decode_to_the_identity_bytes_with_their_own_etag() {
    let s = Served::start().await;
    s.ingest(&titles(0, 300), 1_800_000_000);
    for path in ["/feed.xml", "/feed.atom", "/feed.json", "/feeds/a.xml"] {
        let (status, plain_h, plain) = s.get(path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert!(plain_h.get(CONTENT_ENCODING).is_none(), "{path}");
        assert_eq!(header(&plain_h, VARY), "accept-encoding", "{path}");

        let (status, gz_h, gz) = s.get(path, &[GZIP]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(header(&gz_h, CONTENT_ENCODING), "gzip", "{path}");
        assert_eq!(header(&gz_h, VARY), "accept-encoding", "{path}");
        assert!(gz.len() < plain.len() / 2, "{path}: compressed");
        assert_eq!(
            gunzip(&gz),
            plain,
            "{path}: gzip decodes to the identity bytes"
        );
        let (plain_tag, gz_tag) = (header(&plain_h, ETAG), header(&gz_h, ETAG));
        assert_ne!(plain_tag, gz_tag, "{path}: an ETag per encoding");
        assert!(gz_tag.ends_with("-gz\""), "{path}: {gz_tag}");
    }
}

#[tokio::test]
async fn each_encoding_answers_its_own_conditional_requests_with_vary() {
    let s = Served::start().await;
    s.ingest(&titles(0, 20), 1_800_000_000);
    let (_, plain_h, _) = s.get("/feed.xml", &[]).await;
    let (_, gz_h, _) = s.get("/feed.xml", &[GZIP]).await;
    let plain_tag = header(&plain_h, ETAG).to_owned();
    let gz_tag = header(&gz_h, ETAG).to_owned();

    let (status, h, body) = s
        .get("/feed.xml", &[GZIP, ("if-none-match", &gz_tag)])
        .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(header(&h, ETAG), gz_tag);
    assert_eq!(header(&h, VARY), "accept-encoding");

    let (status, h, _) = s.get("/feed.xml", &[("if-none-match", &plain_tag)]).await;
    assert_eq!(status, 304);
    assert_eq!(header(&h, ETAG), plain_tag);
    assert_eq!(header(&h, VARY), "accept-encoding");

    // The other encoding's ETag does not match: the client gets what it asked for.
    let (status, h, body) = s.get("/feed.xml", &[("if-none-match", &gz_tag)]).await;
    assert_eq!(status, 200);
    assert!(h.get(CONTENT_ENCODING).is_none());
    assert!(body.starts_with(b"<?xml"));
    let (status, h, body) = s
        .get("/feed.xml", &[GZIP, ("if-none-match", &plain_tag)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, CONTENT_ENCODING), "gzip");
    assert!(gunzip(&body).starts_with(b"<?xml"));

    // A list holding either matches the one this request would get.
    let both = format!("{plain_tag}, {gz_tag}");
    let (status, h, _) = s.get("/feed.xml", &[GZIP, ("if-none-match", &both)]).await;
    assert_eq!((status, header(&h, ETAG)), (304, gz_tag.as_str()));
}

/// `If-Modified-Since` is read in every HTTP-date form a client may send (RFC 9110
/// 5.6.7), not only the IMF one (before: RFC 2822 only).
#[tokio::test]
async fn if_modified_since_in_every_http_date_form_is_answered_304() {
    let s = Served::start().await;
    s.ingest(&titles(0, 20), 1_800_000_000);
    let (_, h, _) = s.get("/feed.xml", &[]).await;
    let modified = httpdate::parse_http_date(header(&h, LAST_MODIFIED)).expect("an HTTP date");
    let at = chrono::DateTime::<chrono::Utc>::from(modified);
    for format in [
        "%a, %d %b %Y %H:%M:%S GMT",
        "%A, %d-%b-%y %H:%M:%S GMT",
        "%a %b %e %H:%M:%S %Y",
    ] {
        let since = at.format(format).to_string();
        let (status, _, body) = s.get("/feed.xml", &[("if-modified-since", &since)]).await;
        assert_eq!(status, 304, "{since}");
        assert!(body.is_empty());
        let before = (at - chrono::Duration::seconds(1))
            .format(format)
            .to_string();
        let (status, _, _) = s.get("/feed.xml", &[("if-modified-since", &before)]).await;
        assert_eq!(status, 200, "{before}");
    }
}

#[tokio::test]
async fn a_gzip_request_after_a_change_gets_the_new_bytes_and_validators() {
    let s = Served::start().await;
    s.ingest(&titles(0, 200), 1_800_000_000);
    let (_, old_h, old_gz) = s.get("/feed.xml", &[GZIP]).await;
    let old_tag = header(&old_h, ETAG).to_owned();
    let mut seen = 1_800_000_000;
    // Several changes, so later renderings reuse pieces of earlier ones: new items on
    // top, and items in the middle changed in place, one with the time it already had
    // (a capture's own time can repeat), which must not keep its old bytes.
    for round in 0..6 {
        seen += 60;
        match round {
            2 => s.ingest_with_link(&titles(100, 101), Some("https://a.example"), seen),
            4 => s.ingest_with_link(&titles(150, 151), Some("https://b.example"), 1_800_000_000),
            _ => s.ingest(&titles(1_000 + round, 1_001 + round), seen),
        }
        let (status, h, gz) = s
            .get("/feed.xml", &[GZIP, ("if-none-match", &old_tag)])
            .await;
        assert_eq!(status, 200, "round {round}: the old ETag is stale");
        let tag = header(&h, ETAG).to_owned();
        assert_ne!(tag, old_tag);
        let (_, _, plain) = s.get("/feed.xml", &[]).await;
        let decoded = gunzip(&gz);
        assert_eq!(decoded, plain, "round {round}");
        let change = match round {
            2 => "https://a.example/".to_owned(),
            4 => "https://b.example/".to_owned(),
            _ => format!("Paper number {}", 1_000 + round),
        };
        assert!(
            String::from_utf8_lossy(&decoded).contains(&change),
            "round {round}: the change is in the gzip copy"
        );
        assert_ne!(gz, old_gz);
        let (status, h, _) = s.get("/feed.xml", &[GZIP, ("if-none-match", &tag)]).await;
        assert_eq!(status, 304, "round {round}");
        assert_eq!(header(&h, VARY), "accept-encoding");
        assert_eq!(header(&h, ETAG), tag);
    }
}

#[tokio::test]
async fn gzip_with_q_zero_or_unasked_is_not_sent() {
    let s = Served::start().await;
    s.ingest(&titles(0, 5), 1_800_000_000);
    for value in [
        "gzip;q=0",
        "gzip;q=0, deflate",
        "identity",
        "*;q=0, identity",
        "br",
    ] {
        let (status, h, body) = s
            .get("/feed.xml", &[(ACCEPT_ENCODING.as_str(), value)])
            .await;
        assert_eq!(status, 200, "{value}");
        assert!(h.get(CONTENT_ENCODING).is_none(), "{value}: identity");
        assert!(body.starts_with(b"<?xml"), "{value}");
        assert_eq!(header(&h, VARY), "accept-encoding", "{value}");
    }
    for value in ["gzip;q=0.1", "*", "x-gzip"] {
        let (_, h, _) = s
            .get("/feed.xml", &[(ACCEPT_ENCODING.as_str(), value)])
            .await;
        assert_eq!(header(&h, CONTENT_ENCODING), "gzip", "{value}");
    }
}

#[tokio::test]
async fn other_routes_are_still_compressed_per_request() {
    let s = Served::start().await;
    s.ingest(&titles(0, 30), 1_800_000_000);
    let (status, h, body) = s.get("/", &[GZIP]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&h, CONTENT_ENCODING), "gzip");
    assert!(String::from_utf8_lossy(&gunzip(&body)).contains("Paper number 1"));
    // A feed's own gzip is not compressed a second time on its way out.
    let (_, h, _) = s.get("/feed.xml", &[GZIP]).await;
    assert_eq!(h.get_all(CONTENT_ENCODING).iter().count(), 1);
}

/// Readers that ask for a feed that just changed, all at once, get one rendering: the
/// first makes it, the others wait for it instead of each making their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_after_a_change_share_one_rendering() {
    use lookout::feed::FeedFormat;
    use lookout::publish::{FeedId, FeedScope};
    let s = Served::start().await;
    s.ingest(&titles(0, 300), 1_800_000_000);
    let id = FeedId {
        scope: FeedScope::All,
        format: FeedFormat::Rss,
    };
    let first = s.publisher.get(&id).await.unwrap().unwrap();
    s.ingest(&titles(300, 301), 1_800_000_060);
    let requests: Vec<_> = (0..16)
        .map(|_| {
            let publisher = Arc::clone(&s.publisher);
            let id = id.clone();
            tokio::spawn(async move { publisher.get(&id).await.unwrap().unwrap() })
        })
        .collect();
    let mut renderings = Vec::new();
    for request in requests {
        renderings.push(request.await.unwrap());
    }
    assert!(!Arc::ptr_eq(&renderings[0], &first), "rendered again");
    assert!(
        renderings.iter().all(|r| Arc::ptr_eq(r, &renderings[0])),
        "every request got the same rendering"
    );
}
