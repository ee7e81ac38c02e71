//! Crash safety of the drop-folder pipeline: the real binary is SIGKILLed at random
//! moments while captures keep arriving, at least 20 times, and restarted each time.
//! Afterwards nothing seen is lost and nothing is stored twice.
//!
//! Why this holds (and what the test would catch if it stopped holding): a file leaves
//! the drop folder only after its ingest committed; a file whose ingest committed but
//! which was not yet moved is taken again at start-up and recognized by its content
//! hash; items are identified by their aliases, so an entry seen in two captures is one
//! item.
//!
//! The kill moments come from a seeded generator; the seed is printed, and
//! `LOOKOUT_CRASH_SEED=N` replays a run.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{get, wait_for, Daemon, Setup};
use lookout::store::{ItemFilter, Store};
use rand::{Rng, SeedableRng};

const KILLS: usize = 22;

/// Entries of its own in each capture: enough that an ingest takes a while, so kills
/// land mid-transaction as well as between files.
const OWN: usize = 60;

/// The titles capture `i` holds: `OWN` of its own and one of the capture before, so
/// the same item arrives in two files (possibly on both sides of a crash).
fn titles_of(i: usize) -> Vec<String> {
    let mut titles: Vec<String> = (0..OWN).map(|j| format!("Crash paper {i}.{j}")).collect();
    if i > 0 {
        titles.push(format!("Crash paper {}.0", i - 1));
    }
    titles
}

/// Capture `i` as an RSS 2.0 page.
fn capture(i: usize) -> String {
    let items: String = titles_of(i)
        .iter()
        .map(|t| {
            let slug = t.replace([' ', '.'], "-").to_lowercase();
            format!(
                "<item><title>{t}</title><link>https://example.org/{slug}</link>\
                 <description>Abstract of {t}.</description></item>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>crash {i}</title>\
         <link>https://example.org/</link><description>capture {i}</description>\
         {items}</channel></rss>"
    )
}

/// A temp dir with a config for one drop folder and feeds large enough to list all.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let setup = Setup::custom("max_items = 100000\nwrite_files = false", "200ms", "");
    std::fs::create_dir_all(&setup.drop).expect("drop dir");
    (setup.dir, setup.config, setup.drop)
}

/// Drops capture `i`: mostly renamed into place (browsers, rsync), sometimes written
/// in place and closed.
fn drop_capture(drop: &Path, i: usize, in_place: bool) {
    let name = format!("capture-{i:04}.xml");
    let body = capture(i);
    if in_place {
        std::fs::write(drop.join(&name), body).expect("write capture");
    } else {
        let tmp = drop.join(format!(".{name}.part"));
        std::fs::write(&tmp, body).expect("write temp");
        std::fs::rename(&tmp, drop.join(&name)).expect("rename into place");
    }
}

fn candidates(drop: &Path) -> Vec<String> {
    std::fs::read_dir(drop)
        .expect("read drop dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect()
}

fn files_in(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn sigkill_mid_ingest_loses_nothing_and_stores_nothing_twice() {
    let seed: u64 = std::env::var("LOOKOUT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    eprintln!("LOOKOUT_CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (dir, config, drop) = setup();

    // The writer drops a capture every 15-60 ms until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (stop, written, drop) = (Arc::clone(&stop), Arc::clone(&written), drop.clone());
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        std::thread::spawn(move || {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                drop_capture(&drop, i, rng.random_ratio(1, 8));
                i += 1;
                written.store(i, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(rng.random_range(15..60)));
            }
        })
    };

    let mut ingests_seen = 0;
    for _ in 0..KILLS {
        let daemon = Daemon::start(&config);
        // A random moment: sometimes while it scans at start-up, mostly mid-stream.
        std::thread::sleep(Duration::from_millis(rng.random_range(0..400)));
        daemon.signal(libc::SIGKILL);
        ingests_seen += daemon.log().matches("ingested page").count();
        drop_daemon(daemon);
    }
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    let total = written.load(Ordering::SeqCst);
    eprintln!("{total} captures dropped across {KILLS} kills; {ingests_seen} ingests logged before the kills");
    assert!(
        ingests_seen > 0,
        "the daemon never got to ingest between kills"
    );

    // A last, clean run takes whatever is left.
    let daemon = Daemon::start(&config);
    wait_for(Duration::from_secs(60), "the drop folder to empty", || {
        candidates(&drop).is_empty().then_some(())
    });
    let (status, _, body) = get(&format!("{}/feed.xml", daemon.base), &[]);
    assert_eq!(status, 200);
    let feed = rss::Channel::read_from(&body[..]).expect("feed parses");
    assert!(daemon.stop(Duration::from_secs(10)).success());

    let expected: BTreeSet<String> = (0..total).flat_map(titles_of).collect();

    // Every file was filed as ingested, none refused.
    let processed = files_in(&drop.join("processed"));
    let missing: Vec<String> = (0..total)
        .map(|i| format!("capture-{i:04}.xml"))
        .filter(|n| !processed.contains(n))
        .collect();
    assert!(missing.is_empty(), "not in processed/: {missing:?}");
    assert!(
        files_in(&drop.join("failed")).is_empty(),
        "refused: {:?}",
        files_in(&drop.join("failed"))
    );

    // The feed holds each title once.
    let titles: Vec<String> = feed
        .items()
        .iter()
        .map(|i| i.title().unwrap_or_default().to_owned())
        .collect();
    let unique: BTreeSet<String> = titles.iter().cloned().collect();
    assert_eq!(titles.len(), unique.len(), "a title is in the feed twice");
    assert_eq!(unique, expected, "the feed holds exactly the dropped items");
    let guids: HashSet<String> = feed
        .items()
        .iter()
        .filter_map(|i| i.guid().map(|g| g.value().to_owned()))
        .collect();
    assert_eq!(guids.len(), titles.len(), "guids are unique");

    // And so does the store itself.
    let store = Store::open(&dir.path().join("state/lookout.db")).expect("open store");
    let items = store.items(ItemFilter::All, 1_000_000).expect("list");
    assert_eq!(items.len(), expected.len(), "stored item count");
    let keys: HashSet<&str> = items.iter().map(|i| i.key.as_str()).collect();
    assert_eq!(keys.len(), items.len(), "stored keys are unique");
}

/// Reaps a killed daemon (its Drop waits for the process).
fn drop_daemon(daemon: Daemon) {
    drop(daemon);
}

/// A first fill is loaded aside and moved in at the end: killed midway, it leaves the
/// store as it was (empty and usable), and the same import run again stores every
/// entry once.
#[test]
fn an_import_killed_midway_leaves_the_store_as_it_was_and_runs_again() {
    let dir = tempfile::tempdir().unwrap();
    let captures = dir.path().join("captures");
    std::fs::create_dir(&captures).unwrap();
    let files = 300;
    for i in 0..files {
        std::fs::write(captures.join(format!("c{i:04}.xml")), capture(i)).unwrap();
    }
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", dir.path().join("state")),
    )
    .unwrap();
    let db = dir.path().join("state/lookout.db");
    let aside = dir.path().join("state/lookout.db.import");
    let import = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"));
        cmd.args(["import", captures.to_str().unwrap(), "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        cmd
    };

    let mut child = import().spawn().unwrap();
    // Kill it once the load aside has written something.
    wait_for(Duration::from_secs(60), "the load aside to begin", || {
        std::fs::metadata(&aside)
            .ok()
            .filter(|m| m.len() > 64 * 1024)
    });
    // SAFETY: kill only sends a signal to the child we started.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the import was killed before it finished"
    );
    {
        let store = Store::open(&db).expect("the store opens after the kill");
        assert!(
            store.is_empty().unwrap(),
            "nothing half-imported in the store"
        );
    }

    let out = import().output().unwrap();
    assert!(out.status.success(), "the import runs again");
    assert!(
        !aside.exists(),
        "the unfinished load was replaced and moved in"
    );
    let expected: BTreeSet<String> = (0..files).flat_map(titles_of).collect();
    let store = Store::open(&db).unwrap();
    let items = store.items(ItemFilter::All, 1_000_000).unwrap();
    assert_eq!(items.len(), expected.len(), "each entry stored once");
    let titles: BTreeSet<String> = items.into_iter().map(|i| i.title).collect();
    assert_eq!(titles, expected);
}
