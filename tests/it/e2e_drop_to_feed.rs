//! End to end: the real binary, a real drop folder, the feed read over HTTP.

use std::io::Write;
use std::time::Duration;

use crate::common::*;

fn expected_items() -> usize {
    FIXTURES.iter().map(|(_, n)| n).sum::<usize>() - SHARED_BETWEEN_HF_CAPTURES
}

/// Writes a capture in place, in small chunks with pauses, keeping the file open
/// throughout, as a slow downloader does. The daemon must wait for the close.
fn slow_chunked_write(path: &std::path::Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in bytes.chunks(bytes.len() / 12 + 1) {
        f.write_all(chunk).unwrap();
        f.flush().unwrap();
        // Pacing of the writer under test, not synchronisation: longer than the
        // configured settle time, so only the close may trigger the read.
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn dropped_captures_become_one_feed_that_survives_restart() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let feed_url = format!("{}/feed.xml", daemon.base);

    // Two captures renamed into place, one written slowly in place.
    setup.drop_file("aitopics.txt", &fixture("aitopics_energy.txt"));
    setup.drop_file("hf-may20.txt", &fixture("hf_papers_may20.txt"));
    slow_chunked_write(
        &setup.drop.join("hf-apr17.txt"),
        &fixture("hf_papers_apr17.txt"),
    );
    for name in ["aitopics.txt", "hf-may20.txt", "hf-apr17.txt"] {
        setup.wait_filed("processed", name);
    }
    assert!(
        !setup.drop.join("failed/hf-apr17.txt").exists(),
        "the slow write was read half-written:\n{}",
        daemon.log()
    );

    let guids = wait_for(
        Duration::from_secs(60),
        "the feed to hold every item",
        || {
            let (status, _, body) = get(&feed_url, &[]);
            let guids = rss_guids(&body);
            (status == 200 && guids.len() == expected_items()).then_some(guids)
        },
    );
    let mut unique = guids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), expected_items(), "guids are unique");

    // The same bytes again under a new name: filed, but no new items.
    setup.drop_file("again.txt", &fixture("hf_papers_may20.txt"));
    setup.wait_filed("processed", "again.txt");
    let (_, headers, body) = get(&feed_url, &[]);
    assert_eq!(rss_guids(&body), guids, "a re-dropped capture adds nothing");

    // A conditional GET with the current ETag is answered 304.
    let etag = headers["etag"].to_str().unwrap().to_owned();
    let (status, _, body304) = get(&feed_url, &[("if-none-match", &etag)]);
    assert_eq!(status, 304);
    assert!(body304.is_empty());
    let last_modified = headers["last-modified"].to_str().unwrap().to_owned();
    let (status, _, _) = get(&feed_url, &[("if-modified-since", &last_modified)]);
    assert_eq!(status, 304);

    // Garbage is quarantined with its reason; the daemon keeps serving.
    let garbage: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    setup.drop_file("garbage.bin", &garbage);
    setup.drop_file("empty.txt", b"");
    setup.wait_filed("failed", "garbage.bin");
    let reason =
        std::fs::read_to_string(setup.wait_filed("failed", "garbage.bin.error.txt")).unwrap();
    assert!(reason.contains("unrecognized"), "reason says why: {reason}");
    let reason =
        std::fs::read_to_string(setup.wait_filed("failed", "empty.txt.error.txt")).unwrap();
    assert!(reason.contains("empty"), "reason says why: {reason}");
    let (status, _, body) = get(&feed_url, &[]);
    assert_eq!(status, 200);
    assert_eq!(rss_guids(&body).len(), expected_items());

    // Feed readers read it without complaint.
    feed_readers_accept(&body, expected_items());

    let status = daemon.stop(Duration::from_secs(10));
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");

    // Restart: the same items, nothing ingested again.
    let daemon = Daemon::start(&setup.config);
    let (status, _, body) = get(&format!("{}/feed.xml", daemon.base), &[]);
    assert_eq!(status, 200);
    assert_eq!(rss_guids(&body), guids, "same items after restart");
    assert!(
        !daemon.log().contains("ingested page"),
        "nothing re-ingested:\n{}",
        daemon.log()
    );
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn files_left_while_down_are_taken_at_start() {
    let setup = Setup::new("");
    std::fs::create_dir_all(&setup.drop).unwrap();
    std::fs::write(setup.drop.join("left.txt"), fixture("aitopics_energy.txt")).unwrap();
    std::fs::write(
        setup.drop.join(".hidden.txt"),
        fixture("hf_papers_may20.txt"),
    )
    .unwrap();
    std::fs::write(setup.drop.join("download.crdownload"), b"half").unwrap();
    let daemon = Daemon::start(&setup.config);
    setup.wait_filed("processed", "left.txt");
    let (_, _, body) = get(&format!("{}/feeds/drop.xml", daemon.base), &[]);
    assert_eq!(rss_guids(&body).len(), 10);
    assert!(
        setup.drop.join(".hidden.txt").exists(),
        "dotfiles are ignored"
    );
    assert!(
        setup.drop.join("download.crdownload").exists(),
        "partial downloads are ignored"
    );
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn oversized_file_is_refused_with_its_reason() {
    let setup = Setup::new("max_file_size = 1000\n");
    let daemon = Daemon::start(&setup.config);
    setup.drop_file("big.txt", &fixture("aitopics_energy.txt"));
    let reason = std::fs::read_to_string(setup.wait_filed("failed", "big.txt.error.txt")).unwrap();
    assert!(reason.contains("max_file_size"), "{reason}");
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn unknown_feed_is_404() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let (status, _, _) = get(&format!("{}/feeds/nope.xml", daemon.base), &[]);
    assert_eq!(status, 404);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

/// Feed readers accept it: the document is well-formed XML (a strict parser), and a
/// feed parser other than our renderer (feed-rs) finds every item, each with a title
/// and the guid the `rss` crate reads.
fn feed_readers_accept(body: &[u8], items: usize) {
    let text = std::str::from_utf8(body).expect("the feed is UTF-8");
    roxmltree::Document::parse(text).expect("the feed is well-formed XML");
    let feed = feed_rs::parser::parse(body).expect("feed-rs reads the feed");
    assert_eq!(feed.entries.len(), items);
    assert!(
        feed.entries.iter().all(|e| e.title.is_some()),
        "every item has a title"
    );
    let ids: Vec<String> = feed.entries.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        ids,
        rss_guids(body),
        "both parsers read the same guids, in order"
    );
}
