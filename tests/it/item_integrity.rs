//! Item integrity (issue 12): one item is one thing, each source reads its own pages,
//! dates say when, guids are unique per feed, RSS carries authors, and served feeds
//! follow the store whoever writes it. Real fixtures through the real parsers into a
//! real SQLite file; the end-to-end cases run the real binary.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::time::Duration;

use crate::common::*;
use chrono::{DateTime, Utc};
use lookout::entry::{normalize_title, Entry};
use lookout::parse::{parse_page, ParseContext};
use lookout::store::{Ingest, IngestReport, ItemFilter, NoRules, Store, StoredItem};

fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_779_300_000 + secs, 0).expect("valid test time")
}

fn entries_of(name: &str) -> Vec<Entry> {
    parse_page(&fixture(name), "auto", &ParseContext::at(at(0)))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
        .entries
}

fn ingest(
    store: &mut Store,
    source: &str,
    hash: &str,
    entries: &[Entry],
    secs: i64,
) -> IngestReport {
    store
        .ingest(
            &Ingest {
                source,
                origin: "test",
                content_hash: Some(hash),
                format: "auto",
                entries,
                seen_at: at(secs),
                alerts: false,
            },
            &NoRules,
        )
        .expect("ingest")
}

fn item(store: &Store, key: &str) -> StoredItem {
    store
        .item_by_key(key)
        .expect("lookup")
        .unwrap_or_else(|| panic!("no item {key}"))
}

const BLOG_POST: &str = "guid:notebook-2026-05-12-frame-averaging";
const PAPER: &str = "arxiv:2110.03336";

/// Case 1: a blog post with its own guid that links to a paper, and the paper from
/// the HF API, are two items in either order, and stay so over ten alternating
/// captures: the paper is new, and neither takes the other's title, authors, date or
/// summary.
#[test]
fn a_post_linking_a_paper_and_the_paper_are_two_items_in_either_order() {
    let blog = entries_of("feed_rss2.xml");
    let api = entries_of("hf_daily_papers_api.json");
    for blog_first in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lookout.db")).unwrap();
        let mut reports = Vec::new();
        for round in 0..10 {
            let (source, entries) = if (round % 2 == 0) == blog_first {
                ("notebook", &blog)
            } else {
                ("hf", &api)
            };
            // Each capture is new bytes (the page changed elsewhere), so each is read.
            let report = ingest(&mut store, source, &format!("h{round}"), entries, round);
            reports.push((source, report));
        }
        let first_hf = reports.iter().find(|(s, _)| *s == "hf").expect("hf ran");
        assert_eq!(first_hf.1.new, api.len(), "every paper is new: {reports:?}");
        assert_eq!(first_hf.1.updated, 0);
        for (source, report) in &reports[2..] {
            assert_eq!(
                (report.new, report.updated),
                (0, 0),
                "{source}: nothing flips on a later capture"
            );
        }
        let post = item(&store, BLOG_POST);
        let paper = item(&store, PAPER);
        assert_ne!(post.id, paper.id);
        assert_eq!(post.title, "Frame Averaging, explained & implemented");
        assert_eq!(post.authors, ["Tomás Ruiz"]);
        assert_eq!(
            post.link.as_deref(),
            Some("https://arxiv.org/abs/2110.03336v3")
        );
        assert_eq!(
            post.published.map(|t| t.to_utc()),
            Some("2026-05-12T09:00:00Z".parse().unwrap())
        );
        assert!(post.summary.starts_with("A short walk through"));
        assert_eq!(post.arxiv_id, None);

        let api_paper = api
            .iter()
            .find(|e| e.arxiv_id.as_deref() == Some("2110.03336"))
            .expect("the API lists the paper");
        assert_eq!(paper.title, api_paper.title);
        assert_eq!(paper.authors, api_paper.authors);
        assert_eq!(paper.summary, api_paper.summary);
        assert_eq!(paper.published, api_paper.published);
        assert_eq!(
            paper.link.as_deref(),
            Some("https://huggingface.co/papers/2110.03336")
        );
        for source in ["notebook", "hf"] {
            let keys: Vec<String> = store
                .items(ItemFilter::Source(source), 100)
                .unwrap()
                .into_iter()
                .map(|i| i.key)
                .collect();
            let (own, other) = if source == "hf" {
                (PAPER, BLOG_POST)
            } else {
                (BLOG_POST, PAPER)
            };
            assert!(keys.iter().any(|k| k == own), "{source}: {keys:?}");
            assert!(!keys.iter().any(|k| k == other), "{source}: {keys:?}");
        }
    }
}

/// Case 2: a post titled exactly like a paper never takes the paper's link or
/// authors, and a text capture of the paper (title only) still finds the paper.
#[test]
fn a_post_titled_like_a_paper_never_becomes_the_paper() {
    let title = "Frame Averaging for Invariant and Equivariant Network Design";
    let post = Entry {
        title: title.into(),
        link: Some("https://blog.example.org/frame-averaging".into()),
        guid: Some("https://blog.example.org/?p=7".into()),
        authors: vec!["A. Blogger".into()],
        summary: "My take.".into(),
        format: "feed",
        ..Entry::default()
    };
    let paper = Entry {
        title: title.into(),
        arxiv_id: Some("2110.03336".into()),
        link: Some("https://huggingface.co/papers/2110.03336".into()),
        authors: vec!["Omri Puny".into(), "Matan Atzmon".into()],
        format: "hf-papers",
        ..Entry::default()
    };
    let text = Entry {
        title: title.into(),
        summary: "Many machine learning tasks involve learning functions.".into(),
        author_count: Some(7),
        format: "hf-papers",
        ..Entry::default()
    };
    for order in [
        [&post, &paper, &text],
        [&paper, &post, &text],
        [&post, &text, &paper],
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("lookout.db")).unwrap();
        for (i, entry) in order.iter().enumerate() {
            ingest(
                &mut store,
                &format!("s{i}"),
                "h",
                std::slice::from_ref(*entry),
                i as i64,
            );
        }
        assert_eq!(store.item_count().unwrap(), 2, "the post and the paper");
        let stored_post = item(&store, "guid:https://blog.example.org/?p=7");
        assert_eq!(stored_post.authors, ["A. Blogger"]);
        assert_eq!(stored_post.summary, "My take.");
        let stored_paper = item(&store, "arxiv:2110.03336");
        assert_eq!(stored_paper.authors, ["Omri Puny", "Matan Atzmon"]);
        assert_eq!(
            stored_paper.link.as_deref(),
            Some("https://huggingface.co/papers/2110.03336")
        );
        assert_eq!(
            stored_paper.summary, "Many machine learning tasks involve learning functions.",
            "the text capture landed on the paper, not the post"
        );
    }
}

/// An item's feed date is settled when it is first stored: a text capture's paper
/// (dated when first seen) keeps its date when the API later gives a listing date.
fn an_items_feed_date_never_moves_once_stored(open: &dyn Fn() -> Store) {
    let mut store = open();
    let title = "Relative representations enable zero-shot latent space communication";
    let text = Entry {
        title: title.into(),
        summary: "Neural networks embed.".into(),
        format: "hf-papers",
        ..Entry::default()
    };
    ingest(&mut store, "drop", "t", &[text], 0);
    let api = entries_of("hf_daily_papers_api.json");
    ingest(&mut store, "drop", "api", &api, 60);
    let item = item(&store, "arxiv:2209.15430");
    assert_eq!(item.listed, None, "the listing date did not move the item");
    assert!(
        item.arxiv_id.is_some() && !item.authors.is_empty(),
        "other fields filled"
    );
}

/// Two entries with different ids are never one item, whatever their titles.
fn entries_with_different_ids_are_never_one_item(open: &dyn Fn() -> Store) {
    let mut store = open();
    let post = |guid: &str| Entry {
        title: "Weekly links".into(),
        link: Some("https://blog.example.org/".into()),
        guid: Some(guid.into()),
        format: "feed",
        ..Entry::default()
    };
    let report = ingest(&mut store, "blog", "h1", &[post("w1"), post("w2")], 0);
    assert_eq!(
        report.new, 2,
        "two guids with one title and one link: two posts"
    );
}

/// Case 3: the same bytes on two sources are each source's own page.
fn the_same_page_on_two_sources_is_ingested_by_both(open: &dyn Fn() -> Store) {
    let mut store = open();
    let entries = entries_of("hf_papers_may20.txt");
    let first = ingest(&mut store, "a", "same-bytes", &entries, 0);
    let second = ingest(&mut store, "b", "same-bytes", &entries, 1);
    assert_eq!(first.new, entries.len());
    assert!(!second.duplicate_capture, "b never read this page");
    assert_eq!(second.unchanged, entries.len());
    assert_eq!(
        store.items(ItemFilter::Source("b"), 1000).unwrap().len(),
        entries.len()
    );
    assert!(ingest(&mut store, "b", "same-bytes", &entries, 2).duplicate_capture);
}

/// The real captures, then the HF page and API of the same days: one item per paper.
fn hf_text_page_and_api_merge_into_one_item_per_paper(open: &dyn Fn() -> Store) {
    let mut store = open();
    let files = [
        "aitopics_energy.txt",
        "hf_papers_may20.txt",
        "hf_papers_apr17.txt",
        "hf_papers_page.html",
        "hf_daily_papers_api.json",
        "hf_papers_cards.html",
    ];
    for (i, name) in files.iter().enumerate() {
        ingest(&mut store, "drop", name, &entries_of(name), i as i64);
    }
    let items = store.items(ItemFilter::All, 10_000).unwrap();
    let mut by_title: HashMap<String, Vec<&str>> = HashMap::new();
    for it in &items {
        by_title
            .entry(normalize_title(&it.title))
            .or_default()
            .push(&it.key);
    }
    let twice: Vec<_> = by_title.iter().filter(|(_, keys)| keys.len() > 1).collect();
    assert!(twice.is_empty(), "items added twice: {twice:?}");
    let ids: Vec<_> = items.iter().filter_map(|i| i.arxiv_id.as_deref()).collect();
    assert_eq!(ids.len(), ids.iter().collect::<HashSet<_>>().len());
}

fn run_lookout(args: &[&str], config: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run lookout");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Case 3 end to end: two `selectors` sources on one URL, with different selectors,
/// both read the page; a 304 afterwards keeps each source's own state.
#[tokio::test(flavor = "multi_thread")]
async fn two_selector_sources_on_one_url_each_read_it() {
    use wiremock::matchers::{header_exists, method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/blog"))
        .and(header_exists("if-none-match"))
        .respond_with(ResponseTemplate::new(304))
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/blog"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_bytes(fixture("selectors_blog.html"))
                .insert_header("content-type", "text/html; charset=utf-8")
                .insert_header("etag", "\"v1\""),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let url = format!("{}/blog", server.uri());
    let source = |name: &str, item: &str| {
        format!(
            "[[source]]\nname = \"{name}\"\nkind = \"http\"\nurl = \"{url}\"\nevery = \"1h\"\n\
             format = \"selectors\"\nselectors = {{ item = \"{item}\", title = \"h2\", link = \"h2 a\" }}\n"
        )
    };
    let setup = Setup::new(&format!(
        "[http]\nmin_host_gap = \"0s\"\n{}{}",
        source("posts", "article.post"),
        source("linked", "article.post:has(h2 a)")
    ));
    let config = setup.config.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || run_lookout(&["once"], &config))
        .await
        .unwrap();
    assert!(ok, "{out}");
    // The two run side by side: whichever stores a shared post first counts it new.
    assert!(out.contains("posts: selectors: 3 entries"), "{out}");
    assert!(out.contains("linked: selectors: 2 entries"), "{out}");
    let config = setup.config.clone();
    let (ok, out) = tokio::task::spawn_blocking(move || run_lookout(&["once"], &config))
        .await
        .unwrap();
    assert!(ok, "{out}");
    let feeds = setup.dir.path().join("state/feeds");
    for (source, n) in [("posts", 3), ("linked", 2)] {
        let body = std::fs::read(feeds.join(format!("feeds/{source}.xml"))).expect("feed file");
        assert_eq!(rss_guids(&body).len(), n, "{source}\n{out}");
    }
}

/// Cases 4, 5 and 6 end to end, with real readers: dates keep their instant and say
/// when an item appeared, guids are unique per feed (newsboat through `/feeds.opml`
/// shows every feed whole), and feedparser reads the RSS authors.
#[test]
fn served_feeds_date_by_appearance_key_guids_per_feed_and_name_authors() {
    let setup = Setup::new("[[alert]]\nname = \"frames\"\nany = [\"frame averaging\"]\n");
    let daemon = Daemon::start(&setup.config);
    setup.drop_file("notebook.xml", &fixture("feed_rss2.xml"));
    setup.wait_filed("processed", "notebook.xml");
    setup.drop_file("api.json", &fixture("hf_daily_papers_api.json"));
    setup.wait_filed("processed", "api.json");

    let (status, _, body) = get(&format!("{}/feed.xml", daemon.base), &[]);
    assert_eq!(status, 200);
    let feed = rss::Channel::read_from(&body[..]).expect("valid RSS");
    let by_title: BTreeMap<&str, &rss::Item> = feed
        .items()
        .iter()
        .filter_map(|i| Some((i.title()?, i)))
        .collect();
    // Case 4: "Tue, 19 May 2026 22:30:00 -0400" is 02:30 UTC on the 20th.
    let notes = by_title["Reading notes: relative representations"];
    assert_eq!(notes.pub_date(), Some("Wed, 20 May 2026 02:30:00 +0000"));
    // A paper from 2022 on the 20 May daily list is dated by the list.
    let paper = by_title["Relative representations enable zero-shot latent space communication"];
    assert_eq!(paper.pub_date(), Some("Wed, 20 May 2026 01:12:33 +0000"));
    assert!(
        paper
            .description()
            .unwrap_or("")
            .contains("published 30 Sep 2022"),
        "the paper's own date stays in the description"
    );
    // Case 6: authors as dc:creator.
    let creators = paper.dublin_core_ext().expect("dc:creator").creators();
    assert_eq!(creators.len(), 6);

    // Case 5: a reader that keys by guid alone sees every feed whole.
    let (_, _, opml) = get(&format!("{}/feeds.opml", daemon.base), &[]);
    let opml = String::from_utf8(opml).unwrap();
    let doc = roxmltree::Document::parse(&opml).expect("OPML");
    let urls: Vec<String> = doc
        .descendants()
        .filter_map(|n| n.attribute("xmlUrl"))
        .filter(|u| u.ends_with(".xml"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        urls.len(),
        3,
        "the all-items, source and rule feeds: {urls:?}"
    );
    let mut owner: HashMap<String, String> = HashMap::new();
    let mut counts = BTreeMap::new();
    for url in &urls {
        let (_, _, body) = get(url, &[]);
        let guids = rss_guids(&body);
        counts.insert(url.clone(), guids.len());
        for guid in guids {
            if let Some(other) = owner.insert(guid.clone(), url.clone()) {
                panic!("guid {guid} is in {other} and {url}");
            }
        }
    }
    newsboat_sees_every_item(&opml, &counts);
    feedparser_reads_authors(&format!("{}/feed.xml", daemon.base));
    daemon.stop(Duration::from_secs(10));
}

/// Whether a missing reader fails the test (CI installs them) or skips its part.
fn readers_required() -> bool {
    std::env::var_os("LOOKOUT_REQUIRE_READERS").is_some()
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Subscribes a real newsboat to the OPML list and counts what it stored per feed.
fn newsboat_sees_every_item(opml: &str, want: &BTreeMap<String, usize>) {
    if !have("newsboat") {
        assert!(!readers_required(), "newsboat is not installed");
        skipped("the newsboat check (newsboat is not installed)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (opml_path, urls, cache, conf) = (
        dir.path().join("feeds.opml"),
        dir.path().join("urls"),
        dir.path().join("cache.db"),
        dir.path().join("config"),
    );
    std::fs::write(&opml_path, opml).unwrap();
    std::fs::write(&urls, "").unwrap();
    std::fs::write(&conf, "").unwrap();
    let newsboat = |args: &[&std::ffi::OsStr]| {
        let out = Command::new("newsboat")
            .args([
                "-u".as_ref(),
                urls.as_os_str(),
                "-c".as_ref(),
                cache.as_os_str(),
            ])
            .args(["-C".as_ref(), conf.as_os_str()])
            .args(args)
            .env("HOME", dir.path())
            .output()
            .expect("run newsboat");
        assert!(
            out.status.success(),
            "newsboat: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    newsboat(&["-i".as_ref(), opml_path.as_os_str()]);
    newsboat(&["-x".as_ref(), "reload".as_ref()]);
    let db = rusqlite::Connection::open(&cache).expect("newsboat's cache");
    let mut stmt = db
        .prepare("SELECT feedurl, COUNT(*) FROM rss_item GROUP BY feedurl")
        .unwrap();
    let got: BTreeMap<String, usize> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as usize)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(&got, want, "newsboat stored every item of every feed");
}

/// Python's feedparser, the reference feed reader, reads each item's authors.
fn feedparser_reads_authors(url: &str) {
    let probe = Command::new("python3")
        .args(["-c", "import feedparser"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        assert!(
            !readers_required(),
            "python3 with feedparser is not installed"
        );
        skipped("the feedparser check (python3 -m pip install feedparser)");
        return;
    }
    let (_, _, body) = get(url, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("feed.xml");
    std::fs::write(&file, body).unwrap();
    let script = "import feedparser, json, sys\n\
                  d = feedparser.parse(sys.argv[1])\n\
                  print(json.dumps({e.title: [a.get('name') for a in e.get('authors', [])] for e in d.entries}))";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output()
        .expect("run feedparser");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let authors: HashMap<String, Vec<Option<String>>> =
        serde_json::from_slice(&out.stdout).expect("feedparser's JSON");
    assert_eq!(
        authors["Frame Averaging, explained & implemented"],
        [Some("Tomás Ruiz".to_owned())]
    );
    assert_eq!(
        authors["Relative representations enable zero-shot latent space communication"].len(),
        6
    );
}

/// Case 7: `lookout import` into a running daemon's store reaches the served feed and
/// the feed files without another drop.
#[test]
fn an_import_into_a_running_daemons_store_is_served() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    setup.drop_file("may20.txt", &fixture("hf_papers_may20.txt"));
    setup.wait_filed("processed", "may20.txt");
    let served = || {
        let (_, _, body) = get(&format!("{}/feed.xml", daemon.base), &[]);
        rss_guids(&body).len()
    };
    let before = served();
    let captures = setup.dir.path().join("captures");
    std::fs::create_dir_all(&captures).unwrap();
    std::fs::write(captures.join("ai.txt"), fixture("aitopics_energy.txt")).unwrap();
    let (ok, out) = run_lookout(&["import", captures.to_str().unwrap()], &setup.config);
    assert!(ok, "{out}");
    let after = wait_for(Duration::from_secs(10), "the import in /feed.xml", || {
        let n = served();
        (n > before).then_some(n)
    });
    assert_eq!(after, before + 10);
    let file = setup.dir.path().join("state/feeds/feed.xml");
    wait_for(Duration::from_secs(10), "the import in feed.xml", || {
        let body = std::fs::read(&file).ok()?;
        (rss_guids(&body).len() == after).then_some(())
    });
    daemon.stop(Duration::from_secs(10));
}

crate::on_both_stores!(
    an_items_feed_date_never_moves_once_stored,
    entries_with_different_ids_are_never_one_item,
    the_same_page_on_two_sources_is_ingested_by_both,
    hf_text_page_and_api_merge_into_one_item_per_paper,
);
