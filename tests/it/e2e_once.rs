//! `lookout once`: one pass over several local sources, feeds written, exit code.

use std::process::Command;

use crate::common::*;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn run_once(config: &std::path::Path) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .arg("once")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run lookout once");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn http_source(name: &str, url: &str) -> String {
    format!("[[source]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\nevery = \"1h\"\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn once_fetches_every_source_writes_feeds_and_exits_by_outcome() {
    let server = MockServer::start().await;
    for (route, file) in [
        ("/hf", "hf_papers_may20.txt"),
        ("/ai", "aitopics_energy.txt"),
    ] {
        Mock::given(method("GET"))
            .and(path(route))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_bytes(fixture(file))
                    .insert_header("content-type", "text/plain; charset=utf-8")
                    .insert_header("etag", "\"v1\""),
            )
            .mount(&server)
            .await;
    }
    Mock::given(method("GET"))
        .and(path("/gone"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&server)
        .await;

    let good = format!(
        "[http]\nmin_host_gap = \"0s\"\n{}{}",
        http_source("hf", &format!("{}/hf", server.uri())),
        http_source("ai", &format!("{}/ai", server.uri()))
    );
    let setup = Setup::new(&good);
    setup.drop_file("apr17.txt", &fixture("hf_papers_apr17.txt"));
    // The dropped file must be older than `settle` for a one-shot pass to take it.
    std::thread::sleep(std::time::Duration::from_millis(250));

    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let config = setup.config.clone();
        move || run_once(&config)
    })
    .await
    .unwrap();
    assert!(ok, "all sources fine -> exit 0\n{stdout}\n{stderr}");
    assert!(stdout.contains("hf: hf-papers: 27 entries"), "{stdout}");
    assert!(
        stdout.contains("(baseline: no alerts)"),
        "first fetch is a baseline: {stdout}"
    );
    assert!(
        stdout.contains("ai: aitopics: 10 entries, 10 new"),
        "{stdout}"
    );
    assert!(stdout.contains("drop: 1 files: 1 ingested"), "{stdout}");

    let feeds = setup.dir.path().join("state/feeds");
    let all = std::fs::read(feeds.join("feed.xml")).expect("feed.xml written");
    assert_eq!(
        rss_guids(&all).len(),
        10 + 27 + 35 - SHARED_BETWEEN_HF_CAPTURES
    );
    let hf = std::fs::read(feeds.join("feeds/hf.xml")).expect("per-source feed written");
    assert_eq!(rss_guids(&hf).len(), 27);
    assert!(feeds.join("feeds/ai.xml").exists() && feeds.join("feeds/drop.xml").exists());
    // Atom and JSON Feed are served over HTTP; files are RSS unless configured.
    assert!(!feeds.join("feeds/ai.atom").exists());

    // Second pass: the servers' ETag makes it a conditional GET; nothing new.
    let (ok, stdout, _) = tokio::task::spawn_blocking({
        let config = setup.config.clone();
        move || run_once(&config)
    })
    .await
    .unwrap();
    assert!(ok);
    assert!(
        stdout.contains("hf: ") && !stdout.contains("27 new"),
        "{stdout}"
    );

    // A failing source makes the pass exit non-zero, naming it; the others still run.
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(&http_source("gone", &format!("{}/gone", server.uri())));
    std::fs::write(&setup.config, text).unwrap();
    let (ok, stdout, stderr) = tokio::task::spawn_blocking({
        let config = setup.config.clone();
        move || run_once(&config)
    })
    .await
    .unwrap();
    assert!(!ok, "a failed source -> non-zero exit");
    assert!(
        stdout.contains("gone: FAILED: ") && stdout.contains("404"),
        "{stdout}"
    );
    assert!(stdout.contains("hf: "), "{stdout}");
    assert!(stderr.contains("1 of 4 sources failed"), "{stderr}");
}
