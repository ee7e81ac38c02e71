//! End to end: the service endpoints of the real daemon: health (both states), metrics
//! that move, OPML, Atom and JSON Feed read back by real parsers, the access token.

use std::time::Duration;

use crate::common::*;

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing in:\n{text}"))
}

#[test]
fn health_metrics_opml_and_feed_variants() {
    let setup = Setup::new("[[alert]]\nname = \"flows\"\nany = [\"flow*\"]\n");
    let daemon = Daemon::start(&setup.config);
    let base = daemon.base.clone();

    let (_, _, before) = get(&format!("{base}/metrics"), &[]);
    let before = String::from_utf8(before).unwrap();
    assert_eq!(
        metric(&before, "lookout_entries_ingested_total{source=\"drop\"}"),
        0.0
    );

    setup.drop_file("may20.txt", &fixture("hf_papers_may20.txt"));
    setup.wait_filed("processed", "may20.txt");
    setup.drop_file("junk.bin", &[0xff, 0x00, 0x13, 0x37]);
    setup.wait_filed("failed", "junk.bin");

    let (status, _, body) = get(&format!("{base}/healthz"), &[]);
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["items"], 27);
    assert_eq!(
        health["sources"]["drop"]["consecutive_failures"], 1,
        "{health}"
    );
    assert!(health["sources"]["drop"]["last_error"].is_string());
    assert!(health["outbox"]["pending"].is_number());

    get(&format!("{base}/feed.xml"), &[]);
    let (status, headers, after) = get(&format!("{base}/metrics"), &[]);
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .contains("openmetrics"));
    let after = String::from_utf8(after).unwrap();
    assert_eq!(
        metric(&after, "lookout_entries_ingested_total{source=\"drop\"}"),
        27.0
    );
    assert_eq!(
        metric(&after, "lookout_new_items_total{source=\"drop\"}"),
        27.0
    );
    assert_eq!(
        metric(&after, "lookout_parse_failures_total{source=\"drop\"}"),
        1.0
    );
    assert!(metric(&after, "lookout_feed_requests_total{status=\"200\"}") >= 1.0);
    assert!(metric(&after, "lookout_ingest_seconds_count") >= 1.0);
    assert!(metric(&after, "lookout_alerts_delivered_total{notifier=\"log\"}") >= 1.0);

    // OPML lists every feed, and is well-formed XML.
    let (status, _, opml) = get(&format!("{base}/feeds.opml"), &[]);
    assert_eq!(status, 200);
    let opml = String::from_utf8(opml).unwrap();
    let doc = roxmltree::Document::parse(&opml).expect("OPML is well-formed XML");
    let urls: Vec<&str> = doc
        .descendants()
        .filter_map(|n| n.attribute("xmlUrl"))
        .collect();
    for path in ["/feed.xml", "/feeds/drop.xml", "/alerts/flows.xml"] {
        assert!(urls.iter().any(|u| u.ends_with(path)), "{path} in {urls:?}");
    }

    // Atom and JSON Feed variants, read back by real parsers.
    let (_, _, atom) = get(&format!("{base}/feed.atom"), &[]);
    let atom = atom_syndication::Feed::read_from(&atom[..]).expect("valid Atom");
    assert_eq!(atom.entries().len(), 27);
    let (_, headers, json) = get(&format!("{base}/feeds/drop.json"), &[]);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .contains("feed+json"));
    let json: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(json["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(json["items"].as_array().unwrap().len(), 27);
    let parsed = feed_rs::parser::parse(&get(&format!("{base}/alerts/flows.json"), &[]).2[..])
        .expect("feed-rs reads the rule's JSON Feed");
    assert!(!parsed.entries.is_empty());

    // The status page and the stylesheet.
    let (status, _, page) = get(&format!("{base}/"), &[]);
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("Enhancing Neural Subset Selection"),
        "newest items listed"
    );
    assert!(page.contains("/feeds.opml") && page.contains("/alerts/flows.xml"));
    let (status, _, xsl) = get(&format!("{base}/feed.xsl"), &[]);
    assert_eq!(status, 200);
    assert!(String::from_utf8(xsl).unwrap().contains("xsl:stylesheet"));

    // A broken store turns /healthz into 503 (the schema is damaged behind its back).
    let db = rusqlite::Connection::open(setup.dir.path().join("state/lookout.db")).unwrap();
    db.busy_timeout(Duration::from_secs(5)).unwrap();
    db.execute_batch("DROP TABLE generation;").unwrap();
    let (status, _, body) = get(&format!("{base}/healthz"), &[]);
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn token_protects_everything_but_health() {
    let setup = Setup::new("");
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace("[server]\n", "[server]\ntoken = \"${LOOKOUT_E2E_TOKEN}\"\n");
    std::fs::write(&setup.config, text).unwrap();
    let daemon = Daemon::start_with(&setup.config, &[("LOOKOUT_E2E_TOKEN", "s3cret t0ken")]);
    let base = &daemon.base;
    assert_eq!(get(&format!("{base}/healthz"), &[]).0, 200);
    for path in [
        "/feed.xml",
        "/",
        "/metrics",
        "/feeds.opml",
        "/feeds/drop.json",
    ] {
        assert_eq!(
            get(&format!("{base}{path}"), &[]).0,
            401,
            "{path} needs the token"
        );
        assert_eq!(
            get(
                &format!("{base}{path}"),
                &[("authorization", "Bearer wrong")]
            )
            .0,
            401
        );
        assert_eq!(
            get(
                &format!("{base}{path}"),
                &[("authorization", "Bearer s3cret t0ken")]
            )
            .0,
            200,
            "{path} with the bearer token"
        );
    }
    assert_eq!(
        get(&format!("{base}/feed.xml?token=s3cret%20t0ken"), &[]).0,
        200
    );
    // The auth scheme is case-insensitive (RFC 9110 11.1).
    for scheme in ["bearer", "BEARER"] {
        assert_eq!(
            get(
                &format!("{base}/feed.xml"),
                &[("authorization", &format!("{scheme} s3cret t0ken"))]
            )
            .0,
            200,
            "{scheme}"
        );
    }
    // A token of another length, or a prefix of the right one, is refused too.
    for wrong in ["s3cret", "s3cret t0ken!", ""] {
        assert_eq!(
            get(
                &format!("{base}/feed.xml"),
                &[("authorization", &format!("Bearer {wrong}"))]
            )
            .0,
            401,
            "{wrong:?}"
        );
    }
    // Every link of the status page carries the token, the OPML link included.
    let (_, _, page) = get(&format!("{base}/?token=s3cret%20t0ken"), &[]);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains("/feeds.opml?token=s3cret+t0ken"),
        "the OPML link lacks the token"
    );
    let mut followed = 0;
    for href in page.split("href=\"").skip(1) {
        let link = href.split('"').next().unwrap().replace("&amp;", "&");
        let url = if link.starts_with('/') {
            format!("{base}{link}")
        } else if link.starts_with(base.as_str()) {
            link.clone()
        } else {
            continue; // an item's own link, elsewhere
        };
        if url.ends_with("/feed.xsl") {
            continue;
        }
        assert_eq!(get(&url, &[]).0, 200, "{link}");
        followed += 1;
    }
    assert!(followed >= 4, "only {followed} links on the status page");
    assert!(
        !daemon.log().contains("s3cret"),
        "the token is never logged"
    );
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn relative_drop_folder_of_the_quick_start_works() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        "state_dir = \"./state\"\n[server]\nlisten = \"127.0.0.1:0\"\n\
         [[source]]\nname = \"drop\"\nkind = \"folder\"\npath = \"./drop\"\n",
    )
    .unwrap();
    let daemon = Daemon::start_in(&config, dir.path());
    let drop = dir.path().join("drop");
    wait_for(Duration::from_secs(10), "the drop folder", || {
        drop.is_dir().then_some(())
    });
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aitopics_energy.txt"),
        dir.path().join("drop/ai.txt"),
    )
    .unwrap();
    let processed = dir.path().join("drop/processed/ai.txt");
    wait_for(
        Duration::from_secs(60),
        "the copied file to be ingested",
        || processed.exists().then_some(()),
    );
    let (_, _, body) = get(&format!("{}/feed.xml", daemon.base), &[]);
    assert_eq!(rss_guids(&body).len(), 10);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

/// A drop folder that cannot be watched is a failing source on `/healthz`: every
/// source's health is one record, kept by the pipeline from what the source reports,
/// whatever its kind (before, only a log line said so).
#[test]
fn a_folder_that_cannot_be_watched_is_a_failing_source_on_healthz() {
    let setup = Setup::new("");
    let not_a_dir = setup.dir.path().join("not-a-dir");
    std::fs::write(&not_a_dir, "a file where the folder should be").unwrap();
    let text = std::fs::read_to_string(&setup.config).unwrap();
    // `kind="folder"` without spaces: the harness waits for every `kind = "folder"` to
    // be watched before it goes on, and this one never will be.
    std::fs::write(
        &setup.config,
        format!("{text}\n[[source]]\nname = \"blocked\"\nkind=\"folder\"\npath = {not_a_dir:?}\n"),
    )
    .unwrap();
    let daemon = Daemon::start(&setup.config);
    let health = wait_for(Duration::from_secs(10), "the failure recorded", || {
        let (_, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
        let health: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (health["sources"]["blocked"]["ok"] == false).then_some(health)
    });
    let blocked = &health["sources"]["blocked"];
    assert_eq!(blocked["kind"], "folder", "{health}");
    assert_eq!(blocked["consecutive_failures"], 1, "{health}");
    assert!(blocked["last_error"].is_string(), "{health}");
    assert_eq!(health["sources"]["drop"]["ok"], true, "{health}");
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

/// SIGTERM on an idle daemon: the pipeline ends as soon as the sources stop (the
/// capture route holds its channel weakly), not at the 5 s drain deadline.
#[test]
fn sigterm_on_an_idle_daemon_drains_the_pipeline_without_waiting_for_its_deadline() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    daemon.signal(libc::SIGTERM);
    let log = wait_for(Duration::from_secs(30), "lookout to say it stopped", || {
        let log = daemon.log();
        log.contains("lookout::daemon: stopped").then_some(log)
    });
    assert!(!log.contains("did not drain"), "{log}");
    assert!(!log.contains("did not stop"), "{log}");
}
