//! Files that are no listing give no entries: random bytes, a gzip file, a PDF, a PNG,
//! a README, Rust source, lorem ipsum and an HTML article are each refused as "not a
//! listing" with a reason, by `parse_page` and by the real `lookout parse`, so the
//! drop folder moves them to `failed/` instead of making junk items (and alerts) of
//! them. The seed captures still parse as before.

use std::io::Write;
use std::process::Command;

use chrono::{TimeZone, Utc};
use lookout::parse::{parse_page, ParseContext, ParseError};

/// Deterministic pseudo-random bytes (xorshift64), so the test is repeatable.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A real gzip file of some real text.
fn gzip() -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(&std::fs::read(repo("README.md")).unwrap())
        .unwrap();
    enc.finish().unwrap()
}

/// A tiny but complete PDF (one empty page).
const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n\
2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n\
3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >> endobj\n\
xref\n0 4\n0000000000 65535 f \n0000000009 00000 n \n0000000058 00000 n \n0000000115 00000 n \n\
trailer << /Size 4 /Root 1 0 R >>\nstartxref\n186\n%%EOF\n";

/// A 1x1 PNG.
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82";

const LOREM: &str = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua.\n\n\
Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.\n\n\
Duis aute irure dolor\n\nin reprehenderit\n\nin voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident.\n\n\
Sunt in culpa\n\nqui officia\n\ndeserunt mollit anim id est laborum, sed ut perspiciatis unde omnis iste natus error sit voluptatem.\n";

const ARTICLE: &str = "<!doctype html><html><head><title>Why we moved to Rust</title></head><body>\
<header><nav><a href=\"/\">Home</a> <a href=\"/blog\">Blog</a></nav></header>\
<article><h1>Why we moved to Rust</h1><p class=\"byline\">By Ada Example, 3 March 2025</p>\
<p>We had a service that fell over every week. This is the story of how we rewrote it, what it cost and what we learned.</p>\
<h2>The old service</h2><p>It was written in a hurry, and it showed. Memory grew without bound.</p>\
<h2>The rewrite</h2><p>Three of us spent two months on it. The new service has not crashed since.</p></article>\
<footer>Copyright 2025</footer></body></html>";

fn repo(path: &str) -> String {
    format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))
}

/// Every file of the junk set, by name.
fn junk() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (
            "random-1mb.bin",
            random_bytes(1 << 20, 0x9E37_79B9_7F4A_7C15),
        ),
        ("random-4k.bin", random_bytes(4096, 42)),
        ("readme.md.gz", gzip()),
        ("paper.pdf", PDF.to_vec()),
        ("pixel.png", PNG.to_vec()),
        ("README.md", std::fs::read(repo("README.md")).unwrap()),
        ("mod.rs", std::fs::read(repo("src/parse/mod.rs")).unwrap()),
        (
            "aitopics.rs",
            std::fs::read(repo("src/parse/aitopics.rs")).unwrap(),
        ),
        ("lorem.txt", LOREM.as_bytes().to_vec()),
        ("article.html", ARTICLE.as_bytes().to_vec()),
    ]
}

fn ctx() -> ParseContext<'static> {
    ParseContext::at(Utc.with_ymd_and_hms(2026, 5, 20, 12, 0, 0).unwrap())
}

#[test]
fn junk_is_not_a_listing() {
    for (name, bytes) in junk() {
        match parse_page(&bytes, "auto", &ctx()) {
            Err(ParseError::Unrecognized { hint }) => {
                assert!(!hint.is_empty(), "{name}: a reason");
            }
            Err(e) => panic!("{name}: refused, but not as unrecognized: {e}"),
            Ok(p) => panic!(
                "{name}: {} entries as {}, first {:?}",
                p.entries.len(),
                p.format,
                p.entries.first().map(|e| &e.title)
            ),
        }
    }
}

#[test]
fn binary_junk_is_refused_whatever_the_format() {
    for (name, bytes) in junk().into_iter().filter(|(n, _)| {
        n.ends_with(".bin") || n.ends_with(".gz") || n.ends_with(".pdf") || n.ends_with(".png")
    }) {
        for format in ["aitopics", "hf-papers", "feed", "arxiv"] {
            let err = parse_page(&bytes, format, &ctx()).unwrap_err();
            assert!(
                matches!(&err, ParseError::Unrecognized { hint } if hint.contains("binary")),
                "{name} as {format}: {err}"
            );
        }
    }
}

#[test]
fn lookout_parse_refuses_junk_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in junk() {
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["parse", path.to_str().unwrap(), "--json"])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{name}: exit {:?}", out.status);
        assert!(out.stdout.is_empty(), "{name}: no entries printed");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("not a listing"), "{name}: {stderr}");
    }
}

#[test]
fn seed_captures_still_parse() {
    let seeds = std::path::Path::new("/work/shared/fixtures/seeds");
    // The seeds are copies of fixtures kept in the repo; check both where present.
    let mut checked = 0;
    for (file, format, count) in [
        ("tests/fixtures/aitopics_energy.txt", "aitopics", 10),
        ("tests/fixtures/hf_papers_may20.txt", "hf-papers", 27),
        ("tests/fixtures/hf_papers_apr17.txt", "hf-papers", 35),
    ] {
        let parsed = parse_page(&std::fs::read(repo(file)).unwrap(), "auto", &ctx()).unwrap();
        assert_eq!(
            (parsed.format, parsed.entries.len()),
            (format, count),
            "{file}"
        );
        checked += 1;
    }
    if let Ok(dir) = std::fs::read_dir(seeds) {
        for entry in dir.flatten() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let parsed = parse_page(&bytes, "auto", &ctx()).unwrap();
            assert!(!parsed.entries.is_empty(), "{:?}", entry.path());
            assert!(parsed.warnings.is_empty(), "{:?}", entry.path());
        }
    }
    assert_eq!(checked, 3);
}

#[test]
fn the_drop_folder_files_junk_in_failed_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let drop = dir.path().join("drop");
    std::fs::create_dir_all(&drop).unwrap();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[[source]]\nname = \"drop\"\nkind = \"folder\"\npath = {drop:?}\n",
            dir.path().join("state")
        ),
    )
    .unwrap();
    let junk = junk();
    for (name, bytes) in &junk {
        std::fs::write(drop.join(name), bytes).unwrap();
        // Files found by the start-up scan are read once they have settled; these were
        // written long ago, as far as the scan can tell.
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(drop.join(name))
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
    }
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["once", "--config", config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    for (name, _) in &junk {
        assert!(
            drop.join("failed").join(name).exists(),
            "{name} in failed/: {stdout}"
        );
        let reason =
            std::fs::read_to_string(drop.join("failed").join(format!("{name}.error.txt"))).unwrap();
        assert!(reason.contains("not a listing"), "{name}: {reason}");
    }
    assert!(
        !drop.join("processed").exists()
            || std::fs::read_dir(drop.join("processed"))
                .unwrap()
                .next()
                .is_none()
    );
}
