//! A capture written in place in small chunks over two seconds, the file held open
//! throughout (a slow download, a `cat > drop/x.txt`), is never read half-written:
//! lookout waits for the writer to close it.
//!
//! `cargo test` runs 5 tries (5 writers at once, about 2 s). The 50-try version is
//! ignored there and run by the harness (`bench/run`) or by hand:
//! `cargo test --release --test it crash_partial_write:: -- --ignored`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use crate::common::{fixture, get, wait_for, Daemon, Setup};

/// Entries in the capture every writer writes (hf_papers_may20.txt).
const ENTRIES: usize = 27;

/// Writes `bytes` to `path` in 20 chunks over about two seconds, open throughout.
/// The pauses are the writer's pacing, longer than the daemon's settle time, so only
/// the close may make the file ready.
fn slow_write(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::File::create(path).expect("create");
    for chunk in bytes.chunks(bytes.len().div_ceil(20)) {
        f.write_all(chunk).expect("write");
        f.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The capture with its titles made unique to writer `n`, so every file is new
/// content and adds its own 27 items.
fn capture_for(n: usize) -> Vec<u8> {
    let text = String::from_utf8(fixture("hf_papers_may20.txt")).expect("utf-8 fixture");
    let parsed = lookout::parse::parse_page(
        text.as_bytes(),
        "auto",
        &lookout::parse::ParseContext::at(chrono::Utc::now()),
    )
    .expect("fixture parses");
    let mut out = text.clone();
    for e in &parsed.entries {
        out = out.replacen(&e.title, &format!("{} w{n}", e.title), 1);
    }
    out.into_bytes()
}

/// Runs `rounds` rounds of `writers` concurrent slow writers against one daemon and
/// checks every file was ingested once, whole.
fn slow_writers_are_never_read_half_written(rounds: usize, writers: usize) {
    let Setup {
        dir: _dir,
        config,
        drop,
    } = Setup::custom("max_items = 100000\nwrite_files = false", "50ms", "");
    std::fs::create_dir_all(&drop).expect("drop");
    let daemon = Daemon::start(&config);
    let mut n = 0;
    for _ in 0..rounds {
        let handles: Vec<_> = (0..writers)
            .map(|_| {
                n += 1;
                let path = drop.join(format!("slow-{n:03}.txt"));
                let bytes = capture_for(n);
                std::thread::spawn(move || slow_write(&path, &bytes))
            })
            .collect();
        for h in handles {
            h.join().expect("writer");
        }
    }
    let tries = n;
    wait_for(Duration::from_secs(60), "every file to be filed", || {
        let done = std::fs::read_dir(drop.join("processed")).ok()?.count()
            + std::fs::read_dir(drop.join("failed")).ok()?.count();
        (done >= tries).then_some(())
    });
    let log = daemon.log();
    let refused: Vec<_> = std::fs::read_dir(drop.join("failed"))
        .expect("failed dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert!(refused.is_empty(), "refused: {refused:?}\n{log}");
    // Exactly one ingest per file, each with all of its entries new.
    let ingests: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ingested page"))
        .collect();
    assert_eq!(ingests.len(), tries, "one ingest per file:\n{log}");
    for line in &ingests {
        assert!(
            line.contains(&format!("new={ENTRIES} ")),
            "a file was read before it was complete: {line}"
        );
    }
    let (_, _, body) = get(&format!("{}/feed.xml", daemon.base), &[]);
    let feed = rss::Channel::read_from(&body[..]).expect("feed parses");
    assert_eq!(feed.items().len(), tries * ENTRIES);
    assert!(daemon.stop(Duration::from_secs(10)).success());
    eprintln!("{tries} slow writes, each read once and whole");
}

#[test]
fn five_slow_writers_are_never_read_half_written() {
    slow_writers_are_never_read_half_written(1, 5);
}

#[test]
#[ignore = "about 10 s: 50 tries; run by bench/run"]
fn fifty_slow_writers_are_never_read_half_written() {
    slow_writers_are_never_read_half_written(5, 10);
}
