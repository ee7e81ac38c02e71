//! Feed files on disk: written when their feed changed, left alone otherwise.

use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};

use chrono::Utc;
use lookout::config::Config;
use lookout::entry::Entry;
use lookout::publish::Publisher;
use lookout::store::{Ingest, NoRules, SharedStore, Store};

fn config(dir: &std::path::Path, extra: &str) -> Config {
    let text = format!(
        r#"
state_dir = "{}"
{extra}
[[source]]
name = "a"
kind = "folder"
path = "{0}/a"
[[source]]
name = "b"
kind = "folder"
path = "{0}/b"
"#,
        dir.display()
    );
    Config::parse(&text, "test.toml").expect("valid config")
}

fn ingest(store: &SharedStore, publisher: &Publisher, source: &str, title: &str) {
    let entries = [Entry {
        title: title.to_owned(),
        summary: format!("About {title}."),
        format: "hf-papers",
        ..Entry::default()
    }];
    let mut store = lookout::store::lock(store);
    store
        .ingest(
            &Ingest {
                source,
                origin: "test",
                content_hash: None,
                format: "hf-papers",
                entries: &entries,
                seen_at: Utc::now(),
                alerts: false,
            },
            &NoRules,
        )
        .expect("ingest");
    publisher.store_changed(store.generation().expect("generation"));
}

/// The inode of a file: a rename into place gives a new one, so an unchanged inode
/// means the file was not rewritten.
fn inode(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).expect("file exists").ino()
}

#[tokio::test]
async fn only_feeds_whose_items_changed_are_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let store: SharedStore = Arc::new(Mutex::new(
        Store::open(&config.state_dir.join("lookout.db")).unwrap(),
    ));
    let publisher = Arc::new(Publisher::new(store.clone(), &config, 0));
    let feeds = dir.path().join("feeds");

    ingest(&store, &publisher, "a", "First paper");
    publisher.write_all().await.unwrap();
    let (all, a, b) = (
        feeds.join("feed.xml"),
        feeds.join("feeds/a.xml"),
        feeds.join("feeds/b.xml"),
    );
    let before = [inode(&all), inode(&a), inode(&b)];
    // RSS files by default; Atom and JSON Feed are served, not written.
    assert!(!feeds.join("feed.atom").exists() && !feeds.join("feeds/a.json").exists());

    // A new item on source b: the all feed and b's feed change, a's does not.
    ingest(&store, &publisher, "b", "Second paper");
    publisher.write_all().await.unwrap();
    assert_ne!(inode(&all), before[0], "all feed rewritten");
    assert_eq!(inode(&a), before[1], "feed of source a left alone");
    assert_ne!(inode(&b), before[2], "feed of source b rewritten");
    let b_feed = std::fs::read_to_string(&b).unwrap();
    assert!(b_feed.contains("Second paper") && !b_feed.contains("First paper"));

    // A restart renders everything once more but writes nothing whose bytes match.
    let after = [inode(&all), inode(&a), inode(&b)];
    let generation = lookout::store::lock(&store).generation().unwrap();
    let restarted = Arc::new(Publisher::new(store.clone(), &config, generation));
    restarted.write_all().await.unwrap();
    assert_eq!([inode(&all), inode(&a), inode(&b)], after);
}

#[tokio::test]
async fn configured_file_formats_are_all_written() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "[feed]\nfile_formats = [\"rss\", \"atom\", \"json\"]",
    );
    let store: SharedStore = Arc::new(Mutex::new(
        Store::open(&config.state_dir.join("lookout.db")).unwrap(),
    ));
    let publisher = Arc::new(Publisher::new(store.clone(), &config, 0));
    ingest(&store, &publisher, "a", "First paper");
    publisher.write_all().await.unwrap();
    for file in [
        "feed.xml",
        "feed.atom",
        "feed.json",
        "feeds/b.atom",
        "feeds/a.json",
    ] {
        assert!(dir.path().join("feeds").join(file).exists(), "{file}");
    }
}

#[test]
fn unknown_file_format_is_refused_with_its_line() {
    let err = Config::parse(
        "state_dir = \"/tmp/x\"\n[feed]\nfile_formats = [\"rss\", \"html\"]\n",
        "bad.toml",
    )
    .expect_err("html is not a feed format");
    let text = err.to_string();
    assert!(text.contains("bad.toml:3"), "{text}");
    assert!(text.contains("html"), "{text}");
}

/// A source removed from the config takes its feed files with it on the next write;
/// other files in the folder stay (issue 16).
#[tokio::test]
async fn feed_files_of_a_removed_source_are_deleted_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let store: SharedStore = Arc::new(Mutex::new(
        Store::open(&config.state_dir.join("lookout.db")).unwrap(),
    ));
    let publisher = Arc::new(Publisher::new(store.clone(), &config, 0));
    ingest(&store, &publisher, "a", "First paper");
    publisher.write_all().await.unwrap();
    let feeds = dir.path().join("feeds");
    assert!(feeds.join("feeds/b.xml").exists());
    std::fs::write(feeds.join("feeds/notes.txt"), "mine").unwrap();
    std::fs::write(feeds.join("feeds/.crashed.tmp"), "half").unwrap();

    let without_b = Config::parse(
        &format!(
            "state_dir = \"{0}\"\n[[source]]\nname = \"a\"\nkind = \"folder\"\npath = \"{0}/a\"\n",
            dir.path().display()
        ),
        "test.toml",
    )
    .unwrap();
    publisher.reconfigure(&without_b);
    publisher.write_all().await.unwrap();
    assert!(
        !feeds.join("feeds/b.xml").exists(),
        "the removed source's feed"
    );
    assert!(
        !feeds.join("feeds/.crashed.tmp").exists(),
        "a crash's leftover"
    );
    assert!(feeds.join("feeds/a.xml").exists());
    assert!(feeds.join("feed.xml").exists());
    assert!(
        feeds.join("feeds/notes.txt").exists(),
        "not a feed file: left alone"
    );
}

/// Feed files go through a temp file of their own (tempfile, synced, persisted): writers
/// of one feed never share a temp name, so none fails or tears the file, and no temp
/// file is left behind (issue 16: a fixed `.tmp` name, no fsync).
#[test]
fn concurrent_writes_of_one_feed_file_each_use_their_own_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.xml");
    let bodies: Vec<String> = (0..8)
        .map(|n| format!("<item>{n}</item>").repeat(20_000))
        .collect();
    std::thread::scope(|s| {
        for body in &bodies {
            let path = &path;
            s.spawn(move || {
                for _ in 0..10 {
                    lookout::publish::write_atomically(path, body.as_bytes()).expect("written");
                }
            });
        }
    });
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(bodies.contains(&text), "a whole body, not a torn one");
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["feed.xml"], "no temp file left behind");
}

/// A rule removed on reload takes its feed files with it (issue 16: they stayed).
#[tokio::test]
async fn feed_files_of_a_removed_rule_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let rule = "[[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\nnotify = []\n";
    let config = config(dir.path(), rule);
    let store: SharedStore = Arc::new(Mutex::new(
        Store::open(&config.state_dir.join("lookout.db")).unwrap(),
    ));
    let publisher = Arc::new(Publisher::new(store.clone(), &config, 0));
    ingest(&store, &publisher, "a", "Diffusion paper");
    publisher.write_all().await.unwrap();
    let feeds = dir.path().join("feeds");
    let rule_feed = feeds.join("alerts/diffusion.xml");
    assert!(rule_feed.exists(), "written while the rule exists");

    publisher.reconfigure(&self::config(dir.path(), ""));
    publisher.write_all().await.unwrap();
    assert!(!rule_feed.exists(), "the removed rule's feed");
    assert!(feeds.join("feeds/a.xml").exists());
}
