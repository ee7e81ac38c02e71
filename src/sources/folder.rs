//! Drop-folder watcher: notify events, complete-file detection, start-up scan,
//! `processed/` and `failed/` handling.
//!
//! A file is read only when it is complete. inotify tells us when a writer closes a
//! file it wrote (`close_write`) or renames one into place; both mean "done", so the
//! file is taken at once. A file seen being created or written waits for that close.
//! A file found at start-up (or whose metadata changed) is taken once its size and
//! mtime have stayed the same for `settle`. Temporary names (dotfiles, `*.part`,
//! `*.tmp`, `*.crdownload`) are never read: browsers and `rsync` rename them into
//! place when done, which we see as a rename.
//!
//! After the daemon answers, the file moves to `processed/` (or is kept or deleted,
//! per `after`), or to `failed/` beside a `NAME.error.txt` saying why. When the
//! daemon stops before answering, the file stays where it is and the next start-up
//! scan takes it again; its content hash keeps it from being ingested twice.
//!
//! Whoever may write into the folder is not trusted (issue 13). [`drop_dir`] reads and
//! moves without ever following a link, refuses anything but a regular file, never
//! overwrites, and files away only the very file (device and inode) that was read.
//! [`writers`] keeps a file some process still holds open for writing from being taken
//! on a quiet time alone. A temporary error (out of descriptors or space) leaves the
//! file in place for a retry with a backoff; it never sends a good capture to `failed/`.

mod config;
mod drop_dir;
mod writers;

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

pub use self::config::{AfterIngest, FolderConfig};
pub use self::drop_dir::{is_temporary, FileAwayError, Refusal};
use self::drop_dir::{DropDir, FileId, Found, Shelf};
use super::{content_hash, Capture, Failure, Outcome, Page, Report};
use crate::config::SourceConfig;
use crate::parse::ParseError;

/// Why the folder source could not start.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The folder (or its `processed/` / `failed/` children) could not be created.
    #[error("cannot create folder {path}: {source}")]
    Create {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `processed/` or `failed/` is not a real directory: a symbolic link (or a file)
    /// stands in its place. Nothing is ever moved through a link.
    #[error("{path} is not a real directory (a symbolic link?); refusing to use the drop folder")]
    NotADirectory {
        /// The offending path.
        path: PathBuf,
    },
    /// The watcher could not be set up.
    #[error("cannot watch folder {path}: {source}")]
    Watch {
        /// The folder.
        path: PathBuf,
        /// The notify error.
        source: notify::Error,
    },
}

/// A configured drop folder.
#[derive(Debug, Clone)]
pub struct FolderSource {
    name: String,
    dir: PathBuf,
    format: String,
    after: AfterIngest,
    max_file_size: u64,
    settle: Duration,
    writer_quiet: Duration,
}

/// How sure we are that a file is complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Readiness {
    /// The writer closed it or renamed it into place.
    Complete,
    /// A writer has it open (created or written to): wait for the close.
    Writing,
    /// Found, or only its metadata changed: wait for size and mtime to settle.
    Settling,
}

/// On Linux inotify reports every close after writing, and the kernel closes a
/// crashed writer's files, so a file being written is waited for until it closes;
/// `WRITER_QUIET` is only a backstop for writes that make no close event (a hard
/// link made into the folder). Even then a file some process still holds open for
/// writing is not taken (see [`writers`]). Elsewhere the settle time is all we have.
const WRITER_QUIET: Duration = if cfg!(target_os = "linux") {
    Duration::from_secs(60)
} else {
    Duration::ZERO
};

/// How often a file still open for writing is looked at again. Its close event takes
/// it at once; this only bounds the wait should that event be missed.
const WRITER_RECHECK: Duration = Duration::from_secs(10);

/// Longest wait between tries of a file that met a temporary error (out of file
/// descriptors or space, the store unable to write): long enough not to spin, short
/// enough that a capture follows soon after the trouble ends.
const MAX_RETRY: Duration = Duration::from_secs(60);

/// What became of a file the source tried to take.
enum Taken {
    /// It was no longer there (or a directory, or replaced while being read: the newer
    /// file comes with its own event).
    Gone,
    /// The pipeline answered (or the source refused it itself), and the file is filed.
    Done(Outcome),
    /// The file stays where it is for a later try: a temporary error while reading or
    /// filing it, or the store could not take it now. `outcome` says how far it got.
    Later(Outcome),
    /// The pipeline is gone: shutting down. The file stays for next time.
    PipelineClosed,
}

/// Least quiet time for a file known only from a scan (start-up, or after an event
/// overflow) or a metadata change. Files untouched for longer are taken at once.
const SCAN_QUIET: Duration = Duration::from_secs(2);

/// A file on the watch list, waiting for its size and mtime to stop changing.
#[derive(Debug, Clone, Copy)]
struct Pending {
    size: u64,
    mtime: Option<SystemTime>,
    stable_since: tokio::time::Instant,
    /// How long size and mtime must stay still before the file is taken.
    quiet: Duration,
}

impl FolderSource {
    /// Builds the source from a source's shared config and its folder keys.
    pub fn new(cfg: &SourceConfig, folder: &FolderConfig) -> Self {
        FolderSource {
            name: cfg.name.get_ref().clone(),
            dir: folder.path.clone(),
            format: cfg.format.get_ref().clone(),
            after: folder.after,
            max_file_size: folder.max_file_size,
            settle: folder.settle.0,
            writer_quiet: WRITER_QUIET,
        }
    }

    /// Sets how long a file seen being written, with no close seen since, waits before
    /// it is taken anyway (60 s on Linux). For tests: the daemon never changes it.
    #[doc(hidden)]
    pub fn with_writer_quiet(mut self, quiet: Duration) -> Self {
        self.writer_quiet = quiet;
        self
    }

    /// The watched folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Opens the folder (creating it and its `processed/` and `failed/` children), and
    /// makes its path the canonical one: the watcher reports absolute paths.
    fn prepare(&mut self) -> Result<Arc<DropDir>, FolderError> {
        let drop = DropDir::open(&self.dir)?;
        self.dir = drop.path().to_owned();
        Ok(Arc::new(drop))
    }

    /// Watches the folder until `shutdown` is cancelled, sending each complete file to `tx`.
    /// `watching` is told once the watch is set: from then on no file written is missed.
    ///
    /// Files are handled one at a time, in the order they became complete; the watcher
    /// keeps collecting events meanwhile.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Report>,
        shutdown: CancellationToken,
        watching: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), FolderError> {
        let folder = self.prepare()?;
        let (event_tx, mut events) = mpsc::unbounded_channel();
        let mut watcher = RecommendedWatcher::new(
            move |res: notify::Result<notify::Event>| {
                // The receiver only goes away at shutdown; events after that are moot.
                let _ = event_tx.send(res);
            },
            notify::Config::default(),
        )
        .map_err(|source| FolderError::Watch {
            path: self.dir.clone(),
            source,
        })?;
        watcher
            .watch(&self.dir, RecursiveMode::NonRecursive)
            .map_err(|source| FolderError::Watch {
                path: self.dir.clone(),
                source,
            })?;
        tracing::info!(source = %self.name, dir = %self.dir.display(), "watching drop folder");
        if let Some(watching) = watching {
            let _ = watching.send(());
        }

        // Files left while we were down: the watch is already on, so nothing written
        // from here on is missed; these still have to settle like any other.
        let mut pending: HashMap<PathBuf, Pending> = HashMap::new();
        // Files that met a temporary error, and how many times in a row.
        let mut retries: HashMap<PathBuf, u32> = HashMap::new();
        for path in self.scan() {
            self.observe(&mut pending, path, Readiness::Settling);
        }

        let tick = (self.settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    match event {
                        Ok(event) => {
                            for (path, readiness) in self.classify(&event) {
                                // A file waiting out a temporary error waits on: putting
                                // it back in the folder after a failed move makes an
                                // event too, which must not turn into a busy loop.
                                let waiting_out_error =
                                    retries.contains_key(&path) && pending.contains_key(&path);
                                if readiness == Readiness::Complete && !waiting_out_error {
                                    pending.remove(&path);
                                    let taken = self.take_file(&folder, &path, &tx).await;
                                    if !self.after_take(path, taken, &mut pending, &mut retries) {
                                        return Ok(());
                                    }
                                } else {
                                    self.observe(&mut pending, path, readiness);
                                }
                            }
                        }
                        Err(e) => {
                            // inotify queue overflow or similar: rescan so nothing is missed.
                            tracing::warn!(source = %self.name, error = %e, "watch error; rescanning folder");
                            for path in self.scan() {
                                self.observe(&mut pending, path, Readiness::Settling);
                            }
                        }
                    }
                }
                _ = ticker.tick(), if !pending.is_empty() => {
                    for path in self.settled_and_closed(&mut pending).await {
                        let taken = self.take_file(&folder, &path, &tx).await;
                        if !self.after_take(path, taken, &mut pending, &mut retries) {
                            return Ok(());
                        }
                    }
                }
            }
        }
        drop(watcher);
        Ok(())
    }

    /// Books what became of a file: a file kept for later goes back on the watch list
    /// with a growing wait. Returns false when the daemon is shutting down.
    fn after_take(
        &self,
        path: PathBuf,
        taken: Taken,
        pending: &mut HashMap<PathBuf, Pending>,
        retries: &mut HashMap<PathBuf, u32>,
    ) -> bool {
        match taken {
            Taken::PipelineClosed => return false,
            Taken::Gone | Taken::Done(_) => {
                retries.remove(&path);
            }
            Taken::Later(_) => {
                let tries = retries.entry(path.clone()).or_insert(0);
                *tries = tries.saturating_add(1);
                // After the `tries`-th temporary error in a row: 1 s, doubling.
                let wait = crate::retry::backoff(*tries, Duration::from_secs(1), MAX_RETRY);
                let meta = std::fs::symlink_metadata(&path).ok();
                pending.insert(
                    path,
                    Pending {
                        size: meta.as_ref().map_or(0, |m| m.len()),
                        mtime: meta.and_then(|m| m.modified().ok()),
                        stable_since: tokio::time::Instant::now(),
                        quiet: wait,
                    },
                );
            }
        }
        true
    }

    /// Candidate names currently in the folder (anything but directories: links and
    /// FIFOs are found so that they are refused), oldest first.
    fn scan(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<(SystemTime, PathBuf)> = dir
            .filter_map(Result::ok)
            // The directory entry's own type: a link is not followed.
            .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
            .map(|e| e.path())
            .filter(|p| is_candidate(p))
            .map(|p| {
                let mtime = std::fs::symlink_metadata(&p)
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                (mtime, p)
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| p).collect()
    }

    /// Which paths an event concerns, and how complete each is.
    fn classify(&self, event: &notify::Event) -> Vec<(PathBuf, Readiness)> {
        let readiness = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => Readiness::Complete,
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => Readiness::Complete,
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                // (from, to): only the destination is of interest.
                return event
                    .paths
                    .last()
                    .filter(|p| self.is_ours(p))
                    .map(|p| vec![(p.clone(), Readiness::Complete)])
                    .unwrap_or_default();
            }
            EventKind::Create(CreateKind::File | CreateKind::Any | CreateKind::Other)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Any) => Readiness::Writing,
            EventKind::Modify(ModifyKind::Metadata(_)) => Readiness::Settling,
            _ => return Vec::new(),
        };
        event
            .paths
            .iter()
            .filter(|p| self.is_ours(p))
            .map(|p| (p.clone(), readiness))
            .collect()
    }

    /// A file directly in the watched folder with a name we read.
    fn is_ours(&self, path: &Path) -> bool {
        path.parent() == Some(self.dir.as_path()) && is_candidate(path)
    }

    /// Puts a file on the watch list, or resets its clock when it changed. Never
    /// follows a link: a link, FIFO or socket is complete when it appears, and is
    /// taken (to be refused) at the next tick.
    fn observe(&self, pending: &mut HashMap<PathBuf, Pending>, path: PathBuf, how: Readiness) {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                pending.remove(&path);
                return;
            }
            Err(_) => {
                // Cannot look now (out of descriptors?): look again after a while.
                pending.entry(path).or_insert(Pending {
                    size: 0,
                    mtime: None,
                    stable_since: tokio::time::Instant::now(),
                    quiet: SCAN_QUIET,
                });
                return;
            }
        };
        if meta.is_dir() {
            return;
        }
        let now = tokio::time::Instant::now();
        let mtime = meta.modified().ok();
        // A file found untouched for longer than `settle` (left while we were down) is
        // complete already; back-date its clock instead of making it wait again.
        let age = mtime
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .unwrap_or_default();
        let quiet = match how {
            _ if !meta.is_file() => Duration::ZERO,
            Readiness::Writing => self.settle.max(self.writer_quiet),
            // Found by a scan or a metadata change: no close event will tell when a
            // writer is done, so a pausing writer gets a little more room.
            _ => self.settle.max(SCAN_QUIET),
        };
        let stable_since = now.checked_sub(age.min(quiet)).unwrap_or(now);
        let entry = pending.entry(path).or_insert(Pending {
            size: meta.len(),
            mtime,
            stable_since,
            quiet,
        });
        entry.quiet = entry.quiet.max(quiet);
        if entry.size != meta.len() || entry.mtime != mtime {
            entry.size = meta.len();
            entry.mtime = mtime;
            entry.stable_since = now;
        }
    }

    /// Files whose size and mtime have not moved for their quiet time, and that no
    /// process (we can see) still has open for writing; removed from the list. A file
    /// still open for writing waits on, for its close event or another quiet time.
    async fn settled_and_closed(&self, pending: &mut HashMap<PathBuf, Pending>) -> Vec<PathBuf> {
        let now = tokio::time::Instant::now();
        let mut ready = Vec::new();
        pending.retain(|path, p| {
            let meta = match std::fs::symlink_metadata(path) {
                Ok(meta) => meta,
                // Gone: moved away or deleted by someone else.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
                // Cannot look now: keep it, and look again later.
                Err(_) => return true,
            };
            let mtime = meta.modified().ok();
            if meta.len() != p.size || mtime != p.mtime {
                p.size = meta.len();
                p.mtime = mtime;
                p.stable_since = now;
                return true;
            }
            if now.duration_since(p.stable_since) >= p.quiet {
                ready.push((path.clone(), FileId::from_metadata(&meta), *p));
                return false;
            }
            true
        });
        if ready.is_empty() {
            return Vec::new();
        }
        // One look through /proc for the whole batch (it reads every open descriptor
        // of every process we can see).
        let ids: HashSet<FileId> = ready.iter().map(|(_, id, _)| *id).collect();
        let open = tokio::task::spawn_blocking(move || writers::open_for_writing(&ids))
            .await
            .unwrap_or_default();
        let mut paths = Vec::with_capacity(ready.len());
        for (path, id, mut p) in ready {
            if open.contains(&id) {
                tracing::info!(source = %self.name, file = %path.display(),
                    "still open for writing; waiting for the writer to close it");
                p.stable_since = now;
                p.quiet = p.quiet.max(WRITER_RECHECK);
                pending.insert(path, p);
            } else {
                paths.push(path);
            }
        }
        paths.sort();
        paths
    }

    /// Reads one complete file, hands it to the pipeline and files it per the outcome.
    async fn take_file(
        &self,
        folder: &Arc<DropDir>,
        path: &Path,
        tx: &mpsc::Sender<Report>,
    ) -> Taken {
        let Some(name) = path.file_name().map(OsStr::to_owned) else {
            return Taken::Gone;
        };
        let read = {
            let (drop, name, max) = (Arc::clone(folder), name.clone(), self.max_file_size);
            tokio::task::spawn_blocking(move || drop.read(&name, max)).await
        };
        let file = match read {
            Ok(Ok(Found::Capture(file))) => file,
            Ok(Ok(Found::Nothing)) => return Taken::Gone,
            Ok(Ok(Found::Refused { id, refusal, open })) => {
                // Held open until filed away, as a capture is (below).
                let _open = open;
                let reason = refusal.to_string();
                return self
                    .quarantine(
                        folder,
                        path,
                        id,
                        Outcome::Failed {
                            error: Failure::new(refusal),
                        },
                        &reason,
                    )
                    .await;
            }
            Ok(Err(e)) if is_temporary(&e) => {
                tracing::warn!(source = %self.name, file = %path.display(), error = %e,
                    "cannot read file now; kept for a later try");
                return Taken::Later(Outcome::Deferred {
                    error: Failure::new(ReadLater(e)),
                });
            }
            Ok(Err(e)) => {
                tracing::warn!(source = %self.name, file = %path.display(), error = %e, "cannot look at file; left alone");
                return Taken::Gone;
            }
            Err(_) => return Taken::Gone, // the read task panicked: nothing was read
        };
        // Held open until the file is filed away: its inode, the identity checked
        // before the move, cannot be reused by a newer file meanwhile.
        let _open = file.open;
        let captured_at: DateTime<Utc> = DateTime::<Utc>::from(file.mtime);
        // Only a file whose one name is in the drop folder was put there by whoever
        // wrote it; the sidecar may then quote it (a hard link made into the folder
        // could be anyone's file).
        let may_quote = file.nlink <= 1;
        let page = Page {
            source: self.name.clone(),
            origin: path.display().to_string(),
            content_hash: content_hash(&file.body),
            body: file.body,
            content_type: None,
            url: None,
            captured_at,
            format: self.format.clone(),
            // Dropped files always count as new: someone dropped them on purpose.
            baseline: false,
        };
        let (reply, outcome) = oneshot::channel();
        let capture = Capture {
            page,
            reply,
            validators: None,
        };
        if tx.send(Report::Page(capture)).await.is_err() {
            return Taken::PipelineClosed;
        }
        // The pipeline finishes in-flight work on shutdown, so the answer comes unless
        // the pipeline is gone; a closed reply channel leaves the file for next time.
        let Ok(outcome) = outcome.await else {
            return Taken::PipelineClosed;
        };
        match outcome {
            Outcome::Ingested { .. } | Outcome::Duplicate => {
                self.done(folder, path, file.id, outcome).await
            }
            Outcome::Failed { ref error } => {
                let reason = error.to_string();
                // The parser's own message, which may quote the page: for the sidecar
                // only, never the logs nor `/healthz`.
                let detail = error
                    .error()
                    .downcast_ref::<Unparsed>()
                    .filter(|_| may_quote)
                    .map(|unparsed| unparsed.0.to_string())
                    .filter(|detail| *detail != reason);
                let note = match detail {
                    Some(detail) => format!("{reason}\ndetail: {detail}"),
                    None => reason,
                };
                self.quarantine(folder, path, file.id, outcome, &note).await
            }
            Outcome::Deferred { ref error } => {
                tracing::warn!(source = %self.name, file = %path.display(), %error, "file kept for a later try");
                Taken::Later(outcome)
            }
        }
    }

    /// One pass for `lookout once`: every file now in the folder that has not changed
    /// for `settle` and that no process (we can see) has open for writing (such a file
    /// is left for the next pass), oldest first. Returns each file's outcome.
    pub async fn once(
        &mut self,
        tx: &mpsc::Sender<Report>,
    ) -> Result<Vec<(PathBuf, Outcome)>, FolderError> {
        let folder = self.prepare()?;
        let mut outcomes = Vec::new();
        let paths = self.scan();
        let ids: HashSet<FileId> = paths
            .iter()
            .filter_map(|p| std::fs::symlink_metadata(p).ok())
            .map(|m| FileId::from_metadata(&m))
            .collect();
        let open = tokio::task::spawn_blocking(move || writers::open_for_writing(&ids))
            .await
            .unwrap_or_default();
        for path in paths {
            let meta = std::fs::symlink_metadata(&path).ok();
            let quiet = meta
                .as_ref()
                .and_then(|m| m.modified().ok())
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= self.settle);
            let writing = meta.is_some_and(|m| open.contains(&FileId::from_metadata(&m)));
            if !quiet || writing {
                tracing::info!(file = %path.display(), "still being written; left for the next pass");
                continue;
            }
            match self.take_file(&folder, &path, tx).await {
                Taken::Done(outcome) | Taken::Later(outcome) => outcomes.push((path, outcome)),
                Taken::Gone => {}
                Taken::PipelineClosed => break,
            }
        }
        Ok(outcomes)
    }

    /// Files an ingested file per `after`: exactly the file that was read (`id`); a
    /// newer file at the same name stays for its own event.
    async fn done(
        &self,
        folder: &Arc<DropDir>,
        path: &Path,
        id: FileId,
        outcome: Outcome,
    ) -> Taken {
        if self.after == AfterIngest::Keep {
            return Taken::Done(outcome);
        }
        let (job_drop, name, after) = (Arc::clone(folder), file_name(path), self.after);
        let result = tokio::task::spawn_blocking(move || match after {
            AfterIngest::Delete => job_drop
                .delete(&name, id)
                .map(|deleted| deleted.then_some(())),
            _ => job_drop
                .file_away(&name, id, Shelf::Processed)
                .map(|moved| moved.map(|_| ())),
        })
        .await;
        match result {
            Ok(Ok(Some(()))) => Taken::Done(outcome),
            Ok(Ok(None)) => {
                tracing::info!(source = %self.name, file = %path.display(),
                    "a newer file took this name while it was read; that one is taken next");
                Taken::Done(outcome)
            }
            Ok(Err(e)) => {
                // Left in place: taken again later, it is then a capture seen before.
                tracing::error!(source = %self.name, file = %path.display(), error = %e,
                    "cannot file away ingested file; kept for a later try");
                Taken::Later(outcome)
            }
            Err(_) => Taken::Later(outcome),
        }
    }

    /// Moves a refused file (exactly the one that was read: `id`) to `failed/`, beside
    /// a new `NAME.error.txt` holding `note`. The log gets the outcome's reason only:
    /// the note may quote the file, the reason never does.
    async fn quarantine(
        &self,
        folder: &Arc<DropDir>,
        path: &Path,
        id: FileId,
        outcome: Outcome,
        note: &str,
    ) -> Taken {
        let reason = match &outcome {
            Outcome::Failed { error } => error.to_string(),
            _ => String::new(),
        };
        let text = format!(
            "{}\nfile: {}\nsource: {}\nat: {}\n",
            note,
            // A file name may hold a line break or an escape sequence: shown escaped,
            // so `cat NAME.error.txt` cannot drive the terminal.
            crate::logging::escape_controls(&path.display().to_string()),
            self.name,
            Utc::now().to_rfc3339()
        );
        let (job_drop, name) = (Arc::clone(folder), file_name(path));
        let result =
            tokio::task::spawn_blocking(move || job_drop.quarantine(&name, id, &text)).await;
        match result {
            Ok(Ok(Some((dest, written)))) => {
                tracing::warn!(source = %self.name, file = %path.display(), %reason,
                    failed = %dest.to_string_lossy(), "file refused; moved to failed/");
                if let Err(e) = written {
                    tracing::warn!(source = %self.name, file = %dest.to_string_lossy(), error = %e, "cannot write error sidecar");
                }
                Taken::Done(outcome)
            }
            Ok(Ok(None)) => {
                tracing::warn!(source = %self.name, file = %path.display(), %reason,
                    "file refused; a newer file took its name meanwhile and is taken next");
                Taken::Done(outcome)
            }
            Ok(Err(e)) => {
                tracing::error!(source = %self.name, file = %path.display(), %reason, error = %e,
                    "file refused but cannot be moved to failed/; kept for a later try");
                Taken::Later(outcome)
            }
            Err(_) => Taken::Later(outcome),
        }
    }
}

fn file_name(path: &Path) -> OsString {
    path.file_name().map(OsStr::to_owned).unwrap_or_default()
}

/// A page that did not parse, as the pipeline answers it. It says (in `/healthz`, on
/// the status page and in the logs) what kind of refusal it is, never the page's text.
/// (Issue 13: a link to any file, dropped into the folder, put that file's first line
/// into `/healthz`, which needs no token.) The parser's full message, which may quote
/// the page, is kept here for the error sidecar beside the refused file only; it is
/// not the `source()`, so no chain of causes prints it.
#[derive(Debug, thiserror::Error)]
#[error("{}", public_reason(.0))]
pub struct Unparsed(pub ParseError);

/// A file that could not be read now (a temporary error): kept for a later try.
#[derive(Debug, thiserror::Error)]
#[error("cannot read file now")]
struct ReadLater(#[source] std::io::Error);

fn public_reason(error: &ParseError) -> String {
    match error {
        ParseError::Empty | ParseError::UnknownFormat(_) => error.to_string(),
        ParseError::Unrecognized { .. } => "unrecognized page: no format matched".to_owned(),
        // Our parsers word their reasons themselves; what follows a colon is a
        // library's message (an XML or JSON error), which may quote the page.
        ParseError::Malformed { format, reason } => {
            let head = reason.split(": ").next().unwrap_or(reason);
            format!("{format}: {head}")
        }
    }
}

/// Reads a capture for `lookout import` with the drop folder's rules: a symbolic link
/// is not followed and only a regular file is read (opened `O_NONBLOCK`, so a FIFO
/// cannot hang the import). Returns the bytes and the modification time.
pub fn read_regular_file(path: &Path) -> Result<(Vec<u8>, SystemTime), Refusal> {
    use std::io::Read;
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => Refusal::Symlink,
            _ => Refusal::Unreadable(e),
        })?;
    let meta = file.metadata().map_err(Refusal::Unreadable)?;
    let kind = meta.file_type();
    if !kind.is_file() {
        return Err(Refusal::NotRegular(if kind.is_dir() {
            "directory"
        } else if kind.is_fifo() {
            "FIFO"
        } else if kind.is_socket() {
            "socket"
        } else if kind.is_char_device() || kind.is_block_device() {
            "device"
        } else {
            "special file"
        }));
    }
    let mut body = Vec::with_capacity(meta.len() as usize);
    (&file)
        .read_to_end(&mut body)
        .map_err(Refusal::Unreadable)?;
    let mtime = meta.modified().unwrap_or_else(|_| SystemTime::now());
    Ok((body, mtime))
}

/// Whether a file name is one we read: not hidden, not a download in progress, not
/// one of the folder's own `processed/` and `failed/`.
pub fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        // Non-UTF-8 names are still files someone dropped; read them.
        return path.file_name().is_some();
    };
    const TEMPORARY: &[&str] = &[".part", ".tmp", ".crdownload", ".swp", ".partial", "~"];
    !name.starts_with('.')
        && !TEMPORARY.iter().any(|suffix| name.ends_with(suffix))
        && name != Shelf::Processed.name()
        && name != Shelf::Failed.name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_and_hidden_names_are_not_candidates() {
        for name in ["a.part", "b.tmp", "c.crdownload", ".hidden", "x.swp", "y~"] {
            assert!(!is_candidate(Path::new(name)), "{name}");
        }
        for name in ["page.txt", "papers.html", "api.json", "noext"] {
            assert!(is_candidate(Path::new(name)), "{name}");
        }
    }
}
