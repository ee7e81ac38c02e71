//! End to end: two real daemons, replicas on one PostgreSQL database (issue 17). They
//! serve the same feeds, one fetches each HTTP source, and when that one is killed the
//! other takes the source over within a lease period. Skipped, with one line for the
//! run, where PostgreSQL is not installed.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

/// The replicas' `[store] lease` in the takeover test: short, to measure it.
const LEASE: Duration = Duration::from_secs(3);

/// What a loaded test machine may add to a takeover: the survivor asks for the lease
/// the moment it lapses, then fetches (before that moment was asked for, it polled
/// every tenth of a 30 s period, so 3 s more).
const TAKEOVER_MARGIN: Duration = Duration::from_millis(1500);

/// Answers every request with `body` and keeps each request's time.
struct Recorded {
    body: Vec<u8>,
    times: Arc<Mutex<Vec<Instant>>>,
}

impl Respond for Recorded {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        self.times.lock().unwrap().push(Instant::now());
        ResponseTemplate::new(200).set_body_bytes(self.body.clone())
    }
}

/// The `/healthz` of the replica at `base`: its name and the sources it leases.
fn replica(base: &str) -> (String, Vec<String>) {
    let (_, _, body) = get(&format!("{base}/healthz"), &[]);
    let health: serde_json::Value = serde_json::from_slice(&body).expect("healthz is JSON");
    let replica = &health["replica"];
    assert_eq!(replica["store"], "postgresql", "{health}");
    let leases = replica["leases"]
        .as_array()
        .expect("leases")
        .iter()
        .map(|l| l.as_str().unwrap_or_default().to_owned())
        .collect();
    (replica["name"].as_str().expect("name").to_owned(), leases)
}

#[test]
fn two_replicas_share_the_feeds_and_a_killed_ones_source_is_taken_over() {
    let Some(url) = pg::database() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fetches: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/hf"))
            .respond_with(Recorded {
                body: fixture("hf_papers_may20.txt"),
                times: Arc::clone(&fetches),
            })
            .mount(&server)
            .await;
        server
    });
    let extra = format!(
        "[store]\nurl = \"{url}\"\nlease = \"{lease}s\"\n\
         [[source]]\nname = \"hf\"\nkind = \"http\"\nurl = \"{uri}/hf\"\nevery = \"1s\"\njitter = \"0s\"\n",
        uri = server.uri(),
        lease = LEASE.as_secs()
    );
    let (one, two) = (Setup::new(&extra), Setup::new(&extra));
    let a = Daemon::start(&one.config);
    let b = Daemon::start(&two.config);
    let (a_base, b_base) = (a.base.clone(), b.base.clone());

    // One store: the page one replica fetched is in both replicas' feeds.
    for base in [&a_base, &b_base] {
        wait_for(Duration::from_secs(30), "the source's items", || {
            let (status, _, body) = get(&format!("{base}/feeds/hf.xml"), &[]);
            (status == 200 && rss_guids(&body).len() == 27).then_some(())
        });
    }
    // Two replicas, one lease.
    let holder = wait_for(Duration::from_secs(30), "one replica to lease hf", || {
        let ((a_name, a_leases), (b_name, b_leases)) = (replica(&a_base), replica(&b_base));
        assert_ne!(a_name, b_name);
        match (a_leases.as_slice(), b_leases.as_slice()) {
            ([s], []) if s == "hf" => Some('a'),
            ([], [s]) if s == "hf" => Some('b'),
            ([], []) => None,
            other => panic!("hf leased twice: {other:?}"),
        }
    });
    // The other replica reports the source's health as the store records it.
    let other_base = if holder == 'a' { &b_base } else { &a_base };
    wait_for(
        Duration::from_secs(30),
        "the other replica to see hf's success",
        || {
            let (_, _, body) = get(&format!("{other_base}/healthz"), &[]);
            let health: serde_json::Value = serde_json::from_slice(&body).ok()?;
            health["sources"]["hf"]["last_success"].as_str().map(drop)
        },
    );
    // Metrics say the same.
    let holder_base = if holder == 'a' { &a_base } else { &b_base };
    let (_, _, metrics) = get(&format!("{holder_base}/metrics"), &[]);
    let metrics = String::from_utf8_lossy(&metrics);
    assert!(metrics.contains("store=\"postgresql\"} 1"), "{metrics}");
    assert!(metrics.contains("source_leases 1"), "{metrics}");
    let (_, _, page) = get(&format!("{holder_base}/"), &[]);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("on PostgreSQL, leasing 1 sources"), "{page}");
    // A capture dropped on one replica reaches the other's feed.
    one.drop_file("text.txt", &fixture("aitopics_energy.txt"));
    wait_for(
        Duration::from_secs(30),
        "the other replica's feed to follow",
        || {
            let (status, _, body) = get(&format!("{b_base}/feed.xml"), &[]);
            (status == 200 && rss_guids(&body).len() == 37).then_some(())
        },
    );
    // SIGKILL the holder: the survivor takes the source over, and fetches it, within a
    // lease period of the kill.
    let (victim, survivor) = if holder == 'a' { (a, b) } else { (b, a) };
    let killed = Instant::now();
    victim.signal(libc::SIGKILL);
    drop(victim);
    wait_for(
        Duration::from_secs(30),
        "the survivor to take hf over",
        || {
            let (_, leases) = replica(&survivor.base);
            (leases == ["hf"]).then_some(())
        },
    );
    // A request the victim had on the wire as it died reaches the server within a few
    // ms; any later one is the survivor's.
    let takeover = wait_for(Duration::from_secs(30), "the survivor's fetch", || {
        let times = fetches.lock().unwrap();
        times
            .iter()
            .map(|t| t.saturating_duration_since(killed))
            .find(|after| *after > Duration::from_millis(100))
    });
    println!("takeover: first fetch by the survivor {takeover:?} after the kill (lease {LEASE:?})");
    assert!(
        takeover <= LEASE + TAKEOVER_MARGIN,
        "taken over {takeover:?} after the kill, lease {LEASE:?}"
    );
    // And stops cleanly (its connections close off the async workers).
    assert!(survivor.stop(Duration::from_secs(20)).success());
}

#[test]
fn replicas_running_once_on_one_store_split_the_sources() {
    let Some(url) = pg::database() else { return };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .respond_with(ResponseTemplate::new(200).set_body_bytes(fixture("aitopics_energy.txt")))
            .mount(&server)
            .await;
        server
    });
    let mut extra = format!("[store]\nurl = \"{url}\"\n");
    for n in 0..4 {
        extra.push_str(&format!(
            "[[source]]\nname = \"s{n}\"\nkind = \"http\"\nurl = \"{}/s{n}\"\nevery = \"1h\"\n",
            server.uri()
        ));
    }
    let (one, two) = (Setup::new(&extra), Setup::new(&extra));
    let once = |config: &std::path::Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["once", "--config"])
            .arg(config)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run lookout once");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first = once(&one.config);
    assert!(!first.contains("another replica"), "{first}");
    // The second replica, within the lease period: every source is the first one's.
    let second = once(&two.config);
    assert_eq!(
        second.matches("fetched by another replica").count(),
        4,
        "{second}"
    );
    let fetched = rt.block_on(server.received_requests()).unwrap_or_default();
    assert_eq!(
        fetched.len(),
        4,
        "each source fetched once, not once per replica"
    );
}

#[test]
fn a_postgresql_server_gone_mid_run_holds_captures_and_loses_nothing() {
    // A server of its own: this test stops it, which the shared one must never be.
    let Some(cluster) = pg::Cluster::create() else {
        return;
    };
    cluster.start();
    // A source whose page never changes: each fetch is an attempt that brings no page,
    // which the pipeline books in the store, every second, outage or not.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        Mock::given(method("GET"))
            .and(path("/unchanged"))
            .respond_with(ResponseTemplate::new(304))
            .mount(&server)
            .await;
        server
    });
    let setup = Setup::new(&format!(
        "[store]\nurl = \"{}\"\n[[source]]\nname = \"unchanged\"\nkind = \"http\"\n\
         url = \"{}/unchanged\"\nevery = \"1s\"\njitter = \"0s\"\n",
        cluster.url(),
        server.uri()
    ));
    // A token, for captures sent over HTTP.
    let text = std::fs::read_to_string(&setup.config).unwrap().replace(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\ntoken = \"t0ken\"\n",
    );
    std::fs::write(&setup.config, text).unwrap();
    let daemon = Daemon::start(&setup.config);
    let captures = format!("{}/captures/drop", daemon.base);
    let auth = ("authorization", "Bearer t0ken");
    let feed_len =
        || rss_guids(&get(&format!("{}/feed.xml?token=t0ken", daemon.base), &[]).2).len();
    setup.drop_file("one.txt", &fixture("aitopics_energy.txt"));
    setup.wait_filed("processed", "one.txt");
    wait_for(Duration::from_secs(30), "the first capture's items", || {
        (feed_len() == 10).then_some(())
    });

    wait_for(
        Duration::from_secs(30),
        "the unchanged source's fetches",
        || (requests_to(&rt, &server, "/unchanged") >= 2).then_some(()),
    );
    cluster.stop();
    let fetched_at_stop = requests_to(&rt, &server, "/unchanged");
    // /healthz says what happened and what to do: nothing, but wait.
    let health = wait_for(Duration::from_secs(30), "/healthz to report it", || {
        let (status, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
        (status == 503).then(|| serde_json::from_slice::<serde_json::Value>(&body).unwrap())
    });
    let error = health["store"]["error"].as_str().unwrap_or_default();
    for says in ["PostgreSQL server", "try again later", "nothing is lost"] {
        assert!(error.contains(says), "{says:?} not in {health}");
    }
    assert!(!error.contains(".recover"), "SQLite's advice: {health}");
    // A capture dropped meanwhile is held in the folder, neither stored nor failed.
    setup.drop_file("two.txt", &fixture("hf_papers_may20.txt"));
    wait_for(Duration::from_secs(30), "the capture held", || {
        let log = daemon.log();
        log.lines()
            .any(|l| l.contains("page held until the store can take it") && l.contains("two.txt"))
            .then_some(())
    });
    assert!(setup.drop.join("two.txt").exists(), "the capture stays put");
    // Once the server is down for good, the advice says it refuses connections.
    wait_for(
        Duration::from_secs(30),
        "the advice of a refused connection",
        || {
            let (_, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
            String::from_utf8_lossy(&body)
                .contains("refuses connections")
                .then_some(())
        },
    );
    assert!(!setup.drop.join("failed").join("two.txt").exists());
    // A capture sent over HTTP meanwhile is answered 503 with Retry-After at once, not
    // when the server returns. (The page is held all the same, and stored then.)
    let sent = Instant::now();
    let (status, headers, body) = post(&captures, &[auth], fixture("aitopics_listing.html"));
    let waited = sent.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(
        headers.get("retry-after").map(|v| v.to_str().unwrap()),
        Some("30")
    );
    assert!(body.contains("refuses connections"), "{body}");
    assert!(
        waited < Duration::from_secs(15),
        "answered after {waited:?}"
    );
    // The outage is logged once, not once per attempt the store could not book.
    wait_for(
        Duration::from_secs(30),
        "attempts during the outage",
        || (requests_to(&rt, &server, "/unchanged") >= fetched_at_stop + 5).then_some(()),
    );
    let log = daemon.log();
    let warned = |what: &str| {
        log.lines()
            .filter(|l| (l.contains("WARN") || l.contains("ERROR")) && l.contains(what))
            .count()
    };
    assert_eq!(warned("store: cannot write"), 1, "{log}");
    for spam in [
        "cannot record a source's attempt",
        "store still cannot write",
        "cannot read its saved state",
    ] {
        assert_eq!(
            warned(spam),
            0,
            "{spam:?} at WARN during the outage:\n{log}"
        );
    }
    assert!(
        daemon.log().contains("try again later"),
        "the log gives the advice:\n{}",
        daemon.log()
    );

    // The server returns: the held capture goes in, and nothing is missing.
    cluster.start();
    setup.wait_filed("processed", "two.txt");
    wait_for(Duration::from_secs(30), "both captures' items", || {
        (feed_len() == 37).then_some(())
    });
    wait_for(Duration::from_secs(30), "/healthz healthy again", || {
        (get(&format!("{}/healthz", daemon.base), &[]).0 == 200).then_some(())
    });
    // The capture answered 503 was stored once the server returned: sending it again
    // is a duplicate.
    let (status, _, body) = post(&captures, &[auth], fixture("aitopics_listing.html"));
    assert_eq!((status, body.as_str()), (200, "{\"duplicate\":true}"));
    // And its end once.
    let log = daemon.log();
    assert_eq!(
        log.matches("store: writes succeed again").count(),
        1,
        "{log}"
    );
}

/// POSTs `body` to `url` with `headers`; returns the status, headers and body text.
fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Bounded: a capture that hangs fails the test instead of holding it.
        let mut req = reqwest::Client::new()
            .post(url)
            .timeout(Duration::from_secs(20))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let (status, headers) = (resp.status().as_u16(), resp.headers().clone());
        (status, headers, resp.text().await.unwrap_or_default())
    })
}

#[test]
fn a_replica_that_could_not_read_the_store_fetches_within_moments_of_its_return() {
    // A server of its own: this test stops it, which the shared one must never be.
    let Some(cluster) = pg::Cluster::create() else {
        return;
    };
    cluster.start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    // Each replica fetches its own path of the source, so the server tells who fetched.
    let fetches: [Arc<Mutex<Vec<Instant>>>; 2] = Default::default();
    let server = rt.block_on(async {
        let server = MockServer::start().await;
        for (at, times) in ["/a", "/b"].into_iter().zip(&fetches) {
            Mock::given(method("GET"))
                .and(path(at))
                .respond_with(Recorded {
                    body: fixture("hf_papers_may20.txt"),
                    times: Arc::clone(times),
                })
                .mount(&server)
                .await;
        }
        server
    });
    let extra = |at: &str| {
        format!(
            "[store]\nurl = \"{url}\"\nlease = \"{lease}s\"\n\
             [[source]]\nname = \"hf\"\nkind = \"http\"\nurl = \"{uri}{at}\"\nevery = \"1s\"\njitter = \"0s\"\n",
            url = cluster.url(),
            uri = server.uri(),
            lease = LEASE.as_secs()
        )
    };
    let (one, two) = (Setup::new(&extra("/a")), Setup::new(&extra("/b")));
    let a = Daemon::start(&one.config);
    let b = Daemon::start(&two.config);
    let holder = wait_for(
        Duration::from_secs(30),
        "one replica to lease hf",
        || match (replica(&a.base).1.as_slice(), replica(&b.base).1.as_slice()) {
            ([s], []) if s == "hf" => Some('a'),
            ([], [s]) if s == "hf" => Some('b'),
            _ => None,
        },
    );
    let (holder, other, other_fetches) = if holder == 'a' {
        (a, b, &fetches[1])
    } else {
        (b, a, &fetches[0])
    };

    // The server goes away. The replica without the lease turns to the store to read
    // the source's state before it would fetch, and cannot: not the source's failure.
    // Before, each such attempt backed the source off like a failed fetch (30 s, then
    // doubling), so after the outage it fetched nothing for minutes.
    cluster.stop();
    let postponed = "the store cannot be read; fetch postponed";
    wait_for(
        Duration::from_secs(60),
        "several postponed attempts",
        || (other.log().matches(postponed).count() >= 3).then_some(()),
    );
    let log = other.log();
    assert!(
        !log.lines()
            .any(|l| l.contains("fetch failed") && l.contains("cannot read its saved state")),
        "a store that cannot be read counted as the source's failure:\n{log}"
    );

    // The server returns and the lease holder stops: the other replica fetches within
    // a lease and a store retry, not a grown backoff later.
    cluster.start();
    let restarted = Instant::now();
    assert!(holder.stop(Duration::from_secs(30)).success());
    let stopped = Instant::now();
    let fetched = wait_for(Duration::from_secs(60), "the other replica's fetch", || {
        let times = other_fetches.lock().unwrap();
        times.iter().copied().find(|t| *t > restarted)
    });
    let after = fetched.saturating_duration_since(stopped);
    println!("after the outage: first fetch {after:?} after the holder stopped");
    assert!(
        after <= LEASE + Duration::from_secs(5),
        "fetched {after:?} after the holder stopped (lease {LEASE:?}):\n{}",
        other.log()
    );
}
