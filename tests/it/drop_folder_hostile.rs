//! A hostile drop folder (issue 13, parts 2, 3 and 6): whoever may write into the folder
//! plants links, FIFOs and replacement directories, races the daemon with renames, or
//! writes slowly. Nothing is followed, nothing outside the folder is read or written,
//! no version is lost, and no file still being written is taken.
//!
//! End-to-end tests run the real binary on a real folder; the paused writer and the
//! replaced `failed/` run the folder source itself, with a fake pipeline that records
//! what it is sent.

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use lookout::sources::folder::{FolderError, FolderSource};
use lookout::sources::{Outcome, Report};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A one-item RSS feed whose item's guid is `https://example.org/item/{id}`.
fn one_item_feed(id: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>t</title>\
         <link>https://example.org/</link><description>d</description>\
         <item><title>Item {id}</title><link>https://example.org/item/{id}</link>\
         <guid>https://example.org/item/{id}</guid></item></channel></rss>\n"
    )
    .into_bytes()
}

/// The item's guid in `/feed.xml`: its key, from the feed item's own guid.
fn guid(id: &str) -> String {
    format!("guid:https://example.org/item/{id}")
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: mkfifo with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0, "mkfifo");
}

/// The guids the daemon serves in `/feed.xml` (the `drop` source is its only one).
fn served_guids(daemon: &Daemon) -> Vec<String> {
    let (status, _, body) = get(&format!("{}/feed.xml", daemon.base), &[]);
    assert_eq!(status, 200);
    rss_guids(&body)
}

fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

#[test]
fn a_link_dropped_into_the_folder_is_refused_and_never_read() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let secret = setup.dir.path().join("secret.xml");
    std::fs::write(&secret, one_item_feed("secret")).unwrap();

    // Renamed into place, as a browser would, and made in place.
    std::os::unix::fs::symlink(&secret, setup.drop.join(".stolen.tmp")).unwrap();
    std::fs::rename(
        setup.drop.join(".stolen.tmp"),
        setup.drop.join("stolen.xml"),
    )
    .unwrap();
    std::os::unix::fs::symlink(&secret, setup.drop.join("direct.xml")).unwrap();

    for name in ["stolen.xml", "direct.xml"] {
        let moved = setup.drop.join("failed").join(name);
        wait_for(
            Duration::from_secs(30),
            &format!("{name} in failed/"),
            || is_symlink(&moved).then_some(()),
        );
        let note =
            std::fs::read_to_string(setup.wait_filed("failed", &format!("{name}.error.txt")))
                .unwrap();
        assert!(note.contains("symbolic link"), "{note}");
        assert!(!note.contains("<rss"), "the link was never read: {note}");
    }
    // A real capture after them is taken: the daemon carried on.
    setup.drop_file("real.xml", &one_item_feed("real"));
    setup.wait_filed("processed", "real.xml");
    let guids = served_guids(&daemon);
    assert_eq!(guids, [guid("real")], "the linked file was never published");
    assert_eq!(std::fs::read(&secret).unwrap(), one_item_feed("secret"));
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn a_planted_error_file_link_is_never_written_through() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    // The attack that destroyed the database: failed/NAME.error.txt made a link to a
    // file the daemon can write, then a junk file NAME dropped.
    let victim = setup.dir.path().join("victim.db");
    std::fs::write(&victim, b"precious bytes").unwrap();
    let planted = setup.drop.join("failed/junk.txt.error.txt");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    let db = setup.dir.path().join("state/lookout.db");
    std::os::unix::fs::symlink(&db, setup.drop.join("failed/junk2.txt.error.txt")).unwrap();

    setup.drop_file("junk.txt", b"no page format at all\n");
    setup.drop_file("junk2.txt", b"no page format either\n");
    let note = std::fs::read_to_string(setup.wait_filed("failed", "junk.txt.1.error.txt")).unwrap();
    assert!(note.contains("unrecognized"), "{note}");
    setup.wait_filed("failed", "junk.txt.1");
    setup.wait_filed("failed", "junk2.txt.1.error.txt");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious bytes");
    assert!(is_symlink(&planted), "the planted link is left as it was");

    // The database is intact: a capture is still stored and served.
    setup.drop_file("real.xml", &one_item_feed("after"));
    setup.wait_filed("processed", "real.xml");
    assert_eq!(served_guids(&daemon), [guid("after")]);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn a_fifo_in_the_folder_does_not_hang_the_daemon() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    mkfifo(&setup.drop.join(".pipe.tmp"));
    std::fs::rename(setup.drop.join(".pipe.tmp"), setup.drop.join("pipe.xml")).unwrap();
    mkfifo(&setup.drop.join("made-here.xml"));
    setup.drop_file("real.xml", &one_item_feed("behind-the-fifo"));

    setup.wait_filed("processed", "real.xml");
    for name in ["pipe.xml", "made-here.xml"] {
        let note =
            std::fs::read_to_string(setup.wait_filed("failed", &format!("{name}.error.txt")))
                .unwrap();
        assert!(note.contains("not a regular file (a FIFO)"), "{note}");
    }
    assert_eq!(served_guids(&daemon), [guid("behind-the-fifo")]);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

/// Waits for (and drains) read events on files in a directory, through inotify: the
/// rename race below renames the next version the moment the daemon has read the
/// current one, which is when the old daemon went on to move an unread file.
struct ReadWatch(std::os::fd::OwnedFd);

impl ReadWatch {
    fn new(dir: &Path) -> ReadWatch {
        use std::os::fd::FromRawFd;
        // SAFETY: plain syscalls; the descriptor is owned by the returned value.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC | libc::IN_NONBLOCK) };
        assert!(fd >= 0, "inotify_init1");
        let owned = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let c = CString::new(dir.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid inotify descriptor and a NUL-terminated path.
        let wd = unsafe { libc::inotify_add_watch(fd, c.as_ptr(), libc::IN_ACCESS) };
        assert!(wd >= 0, "inotify_add_watch");
        ReadWatch(owned)
    }

    /// True once a read happened since the last call (false after `timeout`).
    fn wait_read(&self, timeout: Duration) -> bool {
        use std::os::fd::AsRawFd;
        let mut pfd = libc::pollfd {
            fd: self.0.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout.as_millis() as libc::c_int) };
        if n <= 0 {
            return false;
        }
        let mut buf = [0u8; 4096];
        // Drain everything queued: one read of a small file is one event.
        // SAFETY: reading into a buffer of the given length.
        while unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
        true
    }
}

#[test]
fn three_hundred_versions_renamed_onto_one_name_are_all_ingested() {
    const VERSIONS: usize = 300;
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let started = Instant::now();
    let reads = ReadWatch::new(&setup.drop);
    let drop_dir = setup.drop.clone();
    let writer = std::thread::spawn(move || {
        let mut unread = 0;
        for v in 0..VERSIONS {
            let tmp = drop_dir.join(format!(".race-{v}.tmp"));
            std::fs::write(&tmp, one_item_feed(&format!("v{v}"))).unwrap();
            std::fs::rename(&tmp, drop_dir.join("race.xml")).unwrap();
            // Next version as soon as this one is read: while the daemon is still
            // ingesting it, before it files it away.
            if !reads.wait_read(Duration::from_secs(2)) {
                unread += 1;
                // A version never read is lost already: fail fast, not 300 times over.
                if unread == 3 {
                    break;
                }
            }
        }
        unread
    });
    let unread = writer.join().unwrap();
    let expected: Vec<String> = (0..VERSIONS).map(|v| guid(&format!("v{v}"))).collect();
    assert_eq!(
        unread, 0,
        "a version was never read: the daemon moved it unread"
    );
    let guids = wait_for(Duration::from_secs(60), "every version in the feed", || {
        let guids = served_guids(&daemon);
        (guids.len() >= VERSIONS).then_some(guids)
    });
    let missing: Vec<&String> = expected.iter().filter(|g| !guids.contains(g)).collect();
    eprintln!(
        "rename race: {}/{VERSIONS} versions ingested in {:.1}s ({unread} waits for a read timed out)",
        VERSIONS - missing.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(missing.is_empty(), "versions lost: {missing:?}");
    setup.wait_filed("processed", "race.xml");
    let failed = std::fs::read_dir(setup.drop.join("failed"))
        .unwrap()
        .count();
    assert_eq!(failed, 0, "nothing refused");
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn healthz_and_logs_never_quote_a_refused_files_content() {
    const MARKER: &str = "SECRET-FIRST-LINE-4711";
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    setup.drop_file("junk.txt", format!("{MARKER}\nmore text\n").as_bytes());
    setup.drop_file(
        "bad-feed.xml",
        format!("<rss><channel><{MARKER}>").as_bytes(),
    );
    let note = std::fs::read_to_string(setup.wait_filed("failed", "junk.txt.error.txt")).unwrap();
    assert!(note.contains("unrecognized"), "{note}");
    assert!(
        note.contains(MARKER),
        "the sidecar may quote the file: {note}"
    );
    setup.wait_filed("failed", "bad-feed.xml.error.txt");

    let (status, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
    let body = String::from_utf8_lossy(&body);
    assert!(status == 200 || status == 503, "{status}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        health["sources"]["drop"]["last_error"].is_string(),
        "{health}"
    );
    assert!(!body.contains(MARKER), "/healthz quotes the file: {body}");
    assert!(
        !body.contains("more text"),
        "/healthz quotes the file: {body}"
    );
    let log = daemon.log();
    assert!(!log.contains(MARKER), "the log quotes the file:\n{log}");
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn import_refuses_links_and_fifos_by_name_and_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let captures = dir.path().join("captures");
    std::fs::create_dir(&captures).unwrap();
    std::fs::write(captures.join("real.xml"), one_item_feed("imported")).unwrap();
    let secret = dir.path().join("secret.xml");
    std::fs::write(&secret, one_item_feed("secret")).unwrap();
    std::os::unix::fs::symlink(&secret, captures.join("link.xml")).unwrap();
    mkfifo(&captures.join("pipe.xml"));
    let config = drop_config(dir.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["import", captures.to_str().unwrap(), "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let status = wait_for(Duration::from_secs(60), "import to finish", || {
        child.try_wait().unwrap()
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(!status.success(), "refused files make the exit non-zero");
    assert!(stdout.contains("3 files: 1 ingested"), "{stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with("refused ") && l.contains(name))
            .unwrap_or_else(|| panic!("{name} refused by name: {stdout}"))
            .to_owned()
    };
    assert!(line("link.xml").contains("symbolic link"), "{stdout}");
    assert!(
        line("pipe.xml").contains("not a regular file (a FIFO)"),
        "{stdout}"
    );
    let feed = std::fs::read(dir.path().join("state/feeds/feed.xml")).expect("feeds written");
    assert_eq!(rss_guids(&feed), [guid("imported")]);
}

/// What the fake pipeline was sent: each file's name and bytes, in order.
type Sent = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// The folder source on its own, its captures answered by `answer` and recorded.
struct Harness {
    _tmp: tempfile::TempDir,
    drop: PathBuf,
    sent: Sent,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), FolderError>>,
}

impl Harness {
    async fn start(
        prepare: impl FnOnce(&Path),
        tune: impl FnOnce(FolderSource) -> FolderSource,
        answer: fn(&[u8]) -> Outcome,
    ) -> Result<Harness, FolderError> {
        let tmp = tempfile::tempdir().unwrap();
        let drop = tmp.path().join("drop");
        prepare(&drop);
        let text = format!(
            "[[source]]\nname = \"drop\"\nkind = \"folder\"\npath = {drop:?}\nsettle = \"50ms\"\n"
        );
        let config = lookout::config::Config::parse(&text, "t.toml").unwrap();
        let folder = config.sources[0].folder().expect("a folder source");
        let source = tune(FolderSource::new(&config.sources[0], folder));
        let (tx, mut rx) = mpsc::channel::<Report>(8);
        let sent: Sent = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&sent);
        tokio::spawn(async move {
            while let Some(Report::Page(capture)) = rx.recv().await {
                let name = Path::new(&capture.page.origin)
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let outcome = answer(&capture.page.body);
                log.lock().unwrap().push((name, capture.page.body));
                let _ = capture.reply.send(outcome);
            }
        });
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let (watching, started) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(source.run(tx, stopped, Some(watching)));
        // The sender is dropped unused when the source fails to start.
        if started.await.is_err() {
            task.await.unwrap()?;
            panic!("the folder source ended before watching, without an error");
        }
        Ok(Harness {
            _tmp: tmp,
            drop,
            sent,
            stop,
            task,
        })
    }

    fn sent(&self) -> Vec<(String, Vec<u8>)> {
        self.sent.lock().unwrap().clone()
    }

    async fn wait_until<T>(&self, what: &str, mut f: impl FnMut(&Harness) -> Option<T>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(v) = f(self) {
                return v;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_writer_keeps_its_file_until_it_closes_it() {
    let quiet = Duration::from_millis(300);
    let h = Harness::start(
        |_| {},
        |s| s.with_writer_quiet(quiet),
        |_| Outcome::Duplicate,
    )
    .await
    .unwrap();
    let full = one_item_feed("slow");
    let (first, rest) = full.split_at(full.len() / 2);
    let path = h.drop.join("slow.xml");
    let mut writer = std::fs::File::create(&path).unwrap();
    writer.write_all(first).unwrap();
    writer.flush().unwrap();
    // The writer under test pauses for several times the quiet time, the file open.
    // (Pacing of the writer, not synchronisation.)
    tokio::time::sleep(quiet * 6).await;
    assert!(
        h.sent().is_empty(),
        "a file still open for writing was taken: {:?}",
        h.sent()
    );
    assert!(path.exists(), "a file still open for writing was moved");
    writer.write_all(rest).unwrap();
    drop(writer);
    let sent = h
        .wait_until("the closed file to be taken", |h| {
            h.drop.join("processed/slow.xml").exists().then(|| h.sent())
        })
        .await;
    assert_eq!(sent, [("slow.xml".to_owned(), full)], "taken once, whole");

    // The backstop still works for a file with no close event and no writer: a hard
    // link made into the folder.
    let outside = h.drop.parent().unwrap().join("outside.xml");
    std::fs::write(&outside, one_item_feed("linked")).unwrap();
    std::fs::hard_link(&outside, h.drop.join("linked.xml")).unwrap();
    h.wait_until("the linked file to be taken", |h| {
        h.drop.join("processed/linked.xml").exists().then_some(())
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_dir_that_is_a_link_is_refused_at_start_and_when_moving() {
    // At start: the source refuses the folder.
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().to_owned();
    let refused = Harness::start(
        |drop| {
            std::fs::create_dir_all(drop).unwrap();
            std::os::unix::fs::symlink(&target, drop.join("failed")).unwrap();
        },
        |s| s,
        |_| Outcome::Duplicate,
    )
    .await;
    assert!(
        matches!(refused, Err(FolderError::NotADirectory { .. })),
        "{:?}",
        refused.err()
    );
    // The same for processed/.
    let refused = Harness::start(
        |drop| {
            std::fs::create_dir_all(drop).unwrap();
            std::os::unix::fs::symlink(&target, drop.join("processed")).unwrap();
        },
        |s| s,
        |_| Outcome::Duplicate,
    )
    .await;
    assert!(matches!(refused, Err(FolderError::NotADirectory { .. })));

    // While running: failed/ swapped for a link; a refused file then stays put.
    let h = Harness::start(
        |_| {},
        |s| s,
        |body| {
            if body.starts_with(b"junk") {
                Outcome::Failed {
                    error: lookout::sources::Failure::msg("junk"),
                }
            } else {
                Outcome::Duplicate
            }
        },
    )
    .await
    .unwrap();
    std::fs::rename(h.drop.join("failed"), h.drop.join("failed.old")).unwrap();
    std::os::unix::fs::symlink(&target, h.drop.join("failed")).unwrap();
    std::fs::write(h.drop.join(".junk.tmp"), "junk").unwrap();
    std::fs::rename(h.drop.join(".junk.tmp"), h.drop.join("junk.txt")).unwrap();
    // Files are handled one at a time: once the next one is filed, the junk's turn
    // (and its refused move) is over.
    std::fs::write(h.drop.join(".good.tmp"), "good").unwrap();
    std::fs::rename(h.drop.join(".good.tmp"), h.drop.join("good.txt")).unwrap();
    h.wait_until("good.txt in processed/", |h| {
        h.drop.join("processed/good.txt").exists().then_some(())
    })
    .await;
    assert!(
        h.drop.join("junk.txt").exists(),
        "the refused file stays put"
    );
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "nothing was written through the link"
    );
    // Once failed/ is a real directory again, the kept file is filed there.
    std::fs::remove_file(h.drop.join("failed")).unwrap();
    std::fs::rename(h.drop.join("failed.old"), h.drop.join("failed")).unwrap();
    h.wait_until("junk.txt in failed/", |h| {
        h.drop
            .join("failed/junk.txt.error.txt")
            .exists()
            .then_some(())
    })
    .await;
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
    h.stop().await;
}

/// Open descriptors of a process (ours to read: a child of this test).
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[test]
fn a_capture_dropped_while_descriptors_run_out_is_kept_and_ingested_later() {
    const LIMIT: usize = 64;
    let setup = Setup::new("");
    std::fs::create_dir_all(&setup.drop).unwrap();
    // The daemon with few descriptors, so that idle clients can use them all up.
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n {LIMIT} && exec \"$0\" run --config \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_lookout"))
        .arg(&setup.config)
        .env("RUST_LOG", "info");
    let daemon = Daemon::start_command(cmd, &setup.config);
    let log = Arc::clone(&daemon.log);
    let addr = daemon.base.trim_start_matches("http://").to_owned();
    let pid = daemon.pid();
    let mut clients = Vec::new();
    // Idle clients until the daemon is out of descriptors, plus a few waiting in the
    // listen backlog to take any descriptor the daemon frees.
    let top_up = |clients: &mut Vec<std::net::TcpStream>| -> bool {
        let mut extra = 0;
        while clients.len() < 8 * LIMIT && (open_fds(pid) < LIMIT || extra < 8) {
            match std::net::TcpStream::connect(&addr) {
                Ok(stream) => clients.push(stream),
                Err(_) => break,
            }
            if open_fds(pid) >= LIMIT {
                extra += 1;
            }
        }
        open_fds(pid) >= LIMIT
    };
    let mut exhausted = false;
    let mut names = Vec::new();
    // Which of the daemon's steps meets the shortage depends on when a descriptor
    // happens to be free; drop captures until one does.
    for attempt in 0..20 {
        if !top_up(&mut clients) {
            break; // the daemon limits connections below its descriptor limit
        }
        exhausted = true;
        let name = format!("during-{attempt}.xml");
        setup.drop_file(&name, &one_item_feed(&format!("during-{attempt}")));
        names.push(name.clone());
        let kept = wait_for(Duration::from_secs(30), "the capture taken or kept", || {
            if log.lock().unwrap().contains("kept for a later try") {
                Some(true)
            } else {
                setup
                    .drop
                    .join("processed")
                    .join(&name)
                    .exists()
                    .then_some(false)
            }
        });
        if kept {
            break;
        }
    }
    if exhausted {
        assert!(
            log.lock().unwrap().contains("kept for a later try"),
            "no capture met the shortage:\n{}",
            log.lock().unwrap()
        );
    } else {
        eprintln!("the daemon never ran out of descriptors (it limits connections)");
        setup.drop_file("during.xml", &one_item_feed("during"));
        names.push("during.xml".to_owned());
    }
    assert_eq!(
        std::fs::read_dir(setup.drop.join("failed"))
            .unwrap()
            .count(),
        0,
        "never moved to failed/:\n{}",
        log.lock().unwrap()
    );
    drop(clients);
    for name in &names {
        setup.wait_filed("processed", name);
    }
    assert_eq!(
        std::fs::read_dir(setup.drop.join("failed"))
            .unwrap()
            .count(),
        0
    );
    let (status, _, body) = get(&format!("http://{addr}/feeds/drop.xml"), &[]);
    assert_eq!(status, 200);
    assert_eq!(
        rss_guids(&body).len(),
        names.len(),
        "every capture ingested"
    );
}
