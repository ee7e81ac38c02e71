//! End to end: the real daemon polling local listing pages. A source that hangs and one
//! that fails do not hold up a healthy one, and the feeds keep being served meanwhile.

use std::time::Duration;

use crate::common::*;
use wiremock::ResponseTemplate;

#[test]
fn slow_and_failing_sources_do_not_stop_the_others_or_the_feeds() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(serving(vec![
        ("/hf", hf_page()),
        (
            "/slow",
            ResponseTemplate::new(200).set_delay(Duration::from_secs(120)),
        ),
        ("/broken", ResponseTemplate::new(500)),
    ]));
    let uri = server.uri();
    let sources = format!(
        "[[source]]\nname = \"hf\"\nkind = \"http\"\nurl = \"{uri}/hf\"\nevery = \"1s\"\njitter = \"0s\"\n\
         [[source]]\nname = \"slow\"\nkind = \"http\"\nurl = \"{uri}/slow\"\nevery = \"1s\"\ntimeout = \"2s\"\n\
         [[source]]\nname = \"broken\"\nkind = \"http\"\nurl = \"{uri}/broken\"\nevery = \"1s\"\n"
    );
    let setup = Setup::new(&sources);
    let daemon = Daemon::start(&setup.config);
    let base = daemon.base.clone();

    // The healthy source fills its feed while the slow one hangs.
    wait_for(
        Duration::from_secs(30),
        "the healthy source's items",
        || {
            let (status, _, body) = get(&format!("{base}/feeds/hf.xml"), &[]);
            (status == 200 && rss_guids(&body).len() == 27).then_some(())
        },
    );
    // It keeps its schedule: conditional GETs go on (answered 200 with the same ETag;
    // the same bytes are recognised and skipped).
    let first = requests_to(&rt, &server, "/hf");
    wait_for(
        Duration::from_secs(60),
        "more fetches of the healthy source",
        || (requests_to(&rt, &server, "/hf") >= first + 2).then_some(()),
    );
    let conditional = rt
        .block_on(server.received_requests())
        .unwrap_or_default()
        .iter()
        .any(|r| r.url.path() == "/hf" && r.headers.get("if-none-match").is_some());
    assert!(conditional, "later fetches are conditional");

    // The failures are visible in health, and the feeds are served throughout.
    let health = wait_for(Duration::from_secs(30), "both failures in /healthz", || {
        let (_, _, body) = get(&format!("{base}/healthz"), &[]);
        let h: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let failing = |s: &str| {
            h["sources"][s]["consecutive_failures"]
                .as_u64()
                .unwrap_or(0)
                >= 1
        };
        (failing("slow") && failing("broken")).then_some(h)
    });
    assert!(
        health["sources"]["slow"]["last_error"]
            .as_str()
            .unwrap()
            .contains("timed out"),
        "{health}"
    );
    assert!(
        health["sources"]["broken"]["last_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{health}"
    );
    assert_eq!(health["sources"]["hf"]["consecutive_failures"], 0);
    let (status, _, body) = get(&format!("{base}/feed.xml"), &[]);
    assert_eq!(status, 200);
    assert_eq!(rss_guids(&body).len(), 27);
    assert!(
        daemon.stop(Duration::from_secs(10)).success(),
        "stops while a fetch hangs"
    );
}

/// The status page's links to its other pages of sources keep `base_url`'s path (a
/// proxy serving lookout under `/lookout/` strips it) and the token.
#[test]
fn the_status_pages_page_links_keep_the_base_url_path_and_the_token() {
    // 51 sources: two pages. They point at a closed port and are polled hourly, so
    // they only fail once each, which is all the listing needs.
    let sources: String = (0..51)
        .map(|i| {
            format!(
                "[[source]]\nname = \"s{i}\"\nkind = \"http\"\nurl = \"http://127.0.0.1:9/{i}\"\nevery = \"1h\"\n"
            )
        })
        .collect();
    let setup = Setup::new(&sources);
    let text = std::fs::read_to_string(&setup.config).unwrap();
    let listen = "[server]\nlisten = \"127.0.0.1:0\"\n";
    assert!(text.contains(listen));
    let keys = "base_url = \"https://papers.example/lookout/\"\ntoken = \"s3cret\"\n";
    std::fs::write(
        &setup.config,
        text.replacen(listen, &format!("{listen}{keys}"), 1),
    )
    .unwrap();
    let daemon = Daemon::start(&setup.config);
    let base = daemon.base.clone();
    let page = |n: usize| {
        let (status, _, body) = get(&format!("{base}/?token=s3cret&page={n}"), &[]);
        assert_eq!(status, 200);
        String::from_utf8(body).unwrap()
    };
    let first = page(1);
    assert!(
        first.contains("href=\"/lookout/?token=s3cret&amp;page=2\""),
        "{first}"
    );
    let second = page(2);
    assert!(
        second.contains("href=\"/lookout/?token=s3cret&amp;page=1\""),
        "{second}"
    );
}
