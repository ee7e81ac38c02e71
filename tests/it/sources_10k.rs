//! 10,000 HTTP sources in one daemon (issue 15): all polled from one scheduler with a
//! bounded number of fetches and sockets, conditional GETs answered 304, a reload that
//! drops 9,000 of them stops their polls, and `/healthz` and the status page answer
//! with a summary instead of 10,000 entries.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::common::*;

const SOURCES: usize = 10_000;
const KEPT: usize = 1_000;
/// Local ports the pages are served on: ten "hosts" for the per-host gate.
const HOSTS: usize = 10;

/// Per source: pages answered 200, and 304.
struct Counts {
    full: Vec<AtomicU64>,
    not_modified: Vec<AtomicU64>,
}

impl Counts {
    fn total(&self, range: std::ops::Range<usize>) -> u64 {
        range
            .map(|n| {
                self.full[n].load(Ordering::Relaxed) + self.not_modified[n].load(Ordering::Relaxed)
            })
            .sum()
    }
}

async fn page(
    State(counts): State<Arc<Counts>>,
    Path(n): Path<usize>,
    headers: HeaderMap,
) -> Response {
    let etag = format!("\"p{n}\"");
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        counts.not_modified[n].fetch_add(1, Ordering::Relaxed);
        return StatusCode::NOT_MODIFIED.into_response();
    }
    counts.full[n].fetch_add(1, Ordering::Relaxed);
    let body = format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>p{n}</title>\
         <link>http://example.org/</link><description>page {n}</description><item>\
         <title>Item {n}</title><link>http://example.org/item/{n}</link>\
         <guid>http://example.org/item/{n}</guid></item></channel></rss>"
    );
    (
        [
            (header::CONTENT_TYPE, "application/rss+xml".to_owned()),
            (header::ETAG, etag),
        ],
        body,
    )
        .into_response()
}

/// Serves `/p/{n}` on `HOSTS` ports; returns the ports.
fn serve(rt: &tokio::runtime::Runtime, counts: Arc<Counts>) -> Vec<u16> {
    let app = axum::Router::new()
        .route("/p/{n}", axum::routing::get(page))
        .with_state(counts);
    (0..HOSTS)
        .map(|_| {
            let listener = rt
                .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let app = app.clone();
            rt.spawn(async move { axum::serve(listener, app).await });
            port
        })
        .collect()
}

fn sources_toml(ports: &[u16], n: usize) -> String {
    let mut text = String::from("[http]\nmin_host_gap = \"0s\"\n");
    for i in 0..n {
        let port = ports[i % ports.len()];
        text.push_str(&format!(
            "[[source]]\nname = \"s{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:{port}/p/{i}\"\n\
             every = \"2s\"\njitter = \"1s\"\n"
        ));
    }
    text
}

/// Open file descriptors of a process.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn metric(base: &str, name: &str) -> f64 {
    let (_, _, body) = get(&format!("{base}/metrics"), &[]);
    String::from_utf8_lossy(&body)
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} not found"))
}

#[test]
fn ten_thousand_sources_are_polled_with_bounded_fetches_and_a_reload_stops_nine_thousand() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts = Arc::new(Counts {
        full: (0..SOURCES).map(|_| AtomicU64::new(0)).collect(),
        not_modified: (0..SOURCES).map(|_| AtomicU64::new(0)).collect(),
    });
    let ports = serve(&rt, Arc::clone(&counts));
    // The [http] table has to come before the first [[source]] of Setup's text, so the
    // drop folder's table follows instead of leading.
    let setup = Setup::new("");
    let base_text = std::fs::read_to_string(&setup.config).unwrap();
    let (head, tail) = base_text.split_once("[[source]]").unwrap();
    let write = |n: usize| {
        let text = format!("{head}{}[[source]]{tail}", sources_toml(&ports, n));
        std::fs::write(&setup.config, text).unwrap();
    };
    write(SOURCES);
    // Quiet: 10,000 sources log a debug line per fetch.
    let daemon = Daemon::start_with(&setup.config, &[("RUST_LOG", "info")]);
    let base = daemon.base.clone();

    // Every source fetched once in full, then conditionally: 304.
    let mut max_fds = 0;
    wait_for(
        Duration::from_secs(600),
        "every source answered 304",
        || {
            max_fds = max_fds.max(open_fds(daemon.pid()));
            let done = (0..SOURCES).all(|n| counts.not_modified[n].load(Ordering::Relaxed) > 0);
            done.then_some(())
        },
    );
    for n in 0..SOURCES {
        assert!(counts.full[n].load(Ordering::Relaxed) >= 1, "source s{n}");
    }
    // Bounded: one scheduler with at most 64 fetches in flight, whatever the sources.
    let in_flight_max = metric(&base, "lookout_http_fetches_in_flight_max");
    assert!(
        (1.0..=64.0).contains(&in_flight_max),
        "fetches in flight at most: {in_flight_max}"
    );
    assert_eq!(
        metric(&base, "lookout_http_sources_scheduled"),
        SOURCES as f64
    );
    // 64 fetches, a few idle connections per host, the store, the server: far from
    // one socket per source.
    assert!(max_fds < 400, "open file descriptors peaked at {max_fds}");

    // /healthz summarises; it lists sources only when few need attention.
    let (status, _, body) = get(&format!("{base}/healthz"), &[]);
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["source_counts"]["total"], SOURCES + 1, "{health}");
    assert_eq!(health["source_counts"]["ok"], SOURCES + 1, "{health}");
    assert_eq!(health["source_counts"]["all_listed"], false);
    assert_eq!(health["sources"].as_object().map(|m| m.len()), Some(0));
    assert!(body.len() < 4096, "/healthz is {} bytes", body.len());
    assert_eq!(
        metric(&base, "lookout_sources{state=\"ok\"}"),
        (SOURCES + 1) as f64
    );

    // The status page: the counts, one page of 50 sources, a link to the next.
    let (status, _, body) = get(&format!("{base}/"), &[]);
    assert_eq!(status, 200);
    let html = String::from_utf8(body).unwrap();
    assert!(html.contains(&format!(
        "{} · 0 failing · 0 degraded · {} ok",
        SOURCES + 1,
        SOURCES + 1
    )));
    assert_eq!(html.matches("<li class=\"source\">").count(), 50);
    assert!(html.contains("page 1 of 201"), "{html}");
    assert!(html.contains("href=\"/?page=2\""));
    assert!(html.len() < 100_000, "status page is {} bytes", html.len());
    let (status, _, body) = get(&format!("{base}/?page=201"), &[]);
    assert_eq!(status, 200);
    let html = String::from_utf8(body).unwrap();
    assert_eq!(html.matches("<li class=\"source\">").count(), 1);
    assert!(html.contains("href=\"/?page=200\""));

    // Reload with the first 1,000 only: the 9,000 others are no longer polled.
    write(KEPT);
    daemon.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(60), "the reload", || {
        daemon.log().contains("config reloaded").then_some(())
    });
    wait_for(
        Duration::from_secs(30),
        "the scheduler to drop 9,000",
        || (metric(&base, "lookout_http_sources_scheduled") == KEPT as f64).then_some(()),
    );
    let removed_then = counts.total(KEPT..SOURCES);
    let kept_then: Vec<u64> = (0..KEPT).map(|n| counts.total(n..n + 1)).collect();
    // Twice more each for the kept ones: time enough for any removed one to be due.
    wait_for(
        Duration::from_secs(120),
        "the kept sources polled twice more",
        || {
            (0..KEPT)
                .all(|n| counts.total(n..n + 1) >= kept_then[n] + 2)
                .then_some(())
        },
    );
    let removed_now = counts.total(KEPT..SOURCES);
    // Fetches already in flight when the reload came may still arrive: 64 at most.
    assert!(
        removed_now - removed_then <= 64,
        "removed sources fetched {} times after the reload",
        removed_now - removed_then
    );
    let (_, _, body) = get(&format!("{base}/healthz"), &[]);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["source_counts"]["total"], KEPT + 1, "{health}");
    daemon.stop(Duration::from_secs(30));
}
