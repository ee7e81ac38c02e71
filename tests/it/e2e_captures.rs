//! End to end: `POST /captures/<source>` on the real daemon (issue 17), a capture sent
//! over HTTP taken as a file dropped into that source's folder.

use std::time::Duration;

use crate::common::*;

/// POSTs `body` to `url` with `headers`; returns the status and body text.
fn post(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = reqwest::Client::new().post(url).body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap_or_default())
    })
}

#[test]
fn a_posted_capture_is_taken_as_a_dropped_file_and_guarded_as_a_write() {
    let setup = Setup::new("max_file_size = 100000\n");
    // The token goes into the `[server]` table Setup wrote.
    let text = std::fs::read_to_string(&setup.config).unwrap().replace(
        "listen = \"127.0.0.1:0\"\n",
        "listen = \"127.0.0.1:0\"\ntoken = \"t0ken\"\n",
    );
    std::fs::write(&setup.config, text).unwrap();
    let daemon = Daemon::start(&setup.config);
    let url = format!("{}/captures/drop", daemon.base);
    let auth = ("authorization", "Bearer t0ken");
    let page = fixture("aitopics_energy.txt");

    let (status, body) = post(&url, &[auth], page.clone());
    assert_eq!(status, 201, "{body}");
    assert!(body.contains("\"new\":10"), "{body}");
    let (_, _, feed) = get(&format!("{}/feed.xml?token=t0ken", daemon.base), &[]);
    assert_eq!(rss_guids(&feed).len(), 10);
    // The same bytes again: a duplicate, as a re-dropped file.
    let (status, body) = post(&url, &[auth], page.clone());
    assert_eq!((status, body.contains("duplicate")), (200, true), "{body}");
    // Refused: no token, a wrong one, a token in the query, another site.
    assert_eq!(post(&url, &[], page.clone()).0, 401);
    assert_eq!(
        post(&url, &[("authorization", "Bearer nope")], page.clone()).0,
        401
    );
    assert_eq!(
        post(&format!("{url}?token=t0ken"), &[], page.clone()).0,
        401
    );
    let cross = [auth, ("sec-fetch-site", "cross-site")];
    assert_eq!(post(&url, &cross, page.clone()).0, 403);
    let other_origin = [auth, ("origin", "https://evil.example")];
    assert_eq!(post(&url, &other_origin, page.clone()).0, 403);
    // Too large, an unknown source, a page nothing can parse.
    assert_eq!(post(&url, &[auth], vec![b'x'; 200_000]).0, 413);
    assert_eq!(
        post(&format!("{}/captures/nosuch", daemon.base), &[auth], page).0,
        404
    );
    let (status, body) = post(&url, &[auth], b"\x00\x01 not a listing".to_vec());
    assert_eq!(status, 422, "{body}");
    // The daemon still stops promptly with the route's channel open.
    assert!(daemon.stop(Duration::from_secs(20)).success());
}

#[test]
fn captures_are_refused_when_no_token_is_configured() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let (status, body) = post(
        &format!("{}/captures/drop", daemon.base),
        &[("authorization", "Bearer anything")],
        fixture("aitopics_energy.txt"),
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("token"), "{body}");
}
