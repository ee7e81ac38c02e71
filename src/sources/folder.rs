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

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use notify::event::{AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RenameMode};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot, watch};

use super::{content_hash, Capture, Outcome, Page};
use crate::config::{AfterIngest, SourceConfig};

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
/// link made into the folder). Elsewhere the settle time is all we have.
const WRITER_QUIET: Duration = if cfg!(target_os = "linux") {
    Duration::from_secs(60)
} else {
    Duration::ZERO
};

/// What became of a file the source tried to take.
enum Taken {
    /// It was no longer there (or not a regular file).
    Gone,
    /// The pipeline answered (or the source refused it itself).
    Done(Outcome),
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
    /// Builds the source from its config (which validation guarantees has a `path`).
    pub fn new(cfg: &SourceConfig) -> Self {
        FolderSource {
            name: cfg.name.get_ref().clone(),
            dir: cfg
                .path
                .as_ref()
                .map(|p| p.get_ref().clone())
                .unwrap_or_else(|| PathBuf::from(".")),
            format: cfg.format.get_ref().clone(),
            after: cfg.after,
            max_file_size: cfg.max_file_size,
            settle: cfg.settle.0,
        }
    }

    /// The watched folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates the folder and its `processed/` and `failed/` children, and makes the
    /// folder's path absolute: the watcher reports absolute paths, and a relative
    /// `path = "./drop"` must still recognise its own files.
    fn prepare(&mut self) -> Result<(), FolderError> {
        for dir in [
            self.dir.clone(),
            self.dir.join("processed"),
            self.dir.join("failed"),
        ] {
            std::fs::create_dir_all(&dir).map_err(|source| FolderError::Create {
                path: dir.clone(),
                source,
            })?;
        }
        self.dir = std::fs::canonicalize(&self.dir).map_err(|source| FolderError::Create {
            path: self.dir.clone(),
            source,
        })?;
        Ok(())
    }

    /// Watches the folder until `shutdown` turns true, sending each complete file to `tx`.
    /// `watching` is told once the watch is set: from then on no file written is missed.
    ///
    /// Files are handled one at a time, in the order they became complete; the watcher
    /// keeps collecting events meanwhile.
    pub async fn run(
        mut self,
        tx: mpsc::Sender<Capture>,
        mut shutdown: watch::Receiver<bool>,
        watching: Option<tokio::sync::oneshot::Sender<()>>,
    ) -> Result<(), FolderError> {
        self.prepare()?;
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
        for path in self.scan() {
            self.observe(&mut pending, path, Readiness::Settling);
        }

        let tick = (self.settle / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                event = events.recv() => {
                    let Some(event) = event else { break };
                    match event {
                        Ok(event) => {
                            for (path, readiness) in self.classify(&event) {
                                match readiness {
                                    Readiness::Complete => {
                                        pending.remove(&path);
                                        if !self.take(&path, &tx).await {
                                            return Ok(());
                                        }
                                    }
                                    other => self.observe(&mut pending, path, other),
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
                    for path in self.settled(&mut pending) {
                        if !self.take(&path, &tx).await {
                            return Ok(());
                        }
                    }
                }
            }
        }
        drop(watcher);
        Ok(())
    }

    /// Candidate files currently in the folder, oldest first.
    fn scan(&self) -> Vec<PathBuf> {
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<(SystemTime, PathBuf)> = dir
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .filter(|p| is_candidate(p))
            .map(|p| {
                let mtime = std::fs::metadata(&p)
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
            EventKind::Create(CreateKind::File | CreateKind::Any)
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

    /// Puts a file on the watch list, or resets its clock when it changed.
    fn observe(&self, pending: &mut HashMap<PathBuf, Pending>, path: PathBuf, how: Readiness) {
        let Ok(meta) = std::fs::metadata(&path) else {
            pending.remove(&path);
            return;
        };
        if !meta.is_file() {
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
            Readiness::Writing => self.settle.max(WRITER_QUIET),
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

    /// Files whose size and mtime have not moved for `settle`; removed from the list.
    fn settled(&self, pending: &mut HashMap<PathBuf, Pending>) -> Vec<PathBuf> {
        let now = tokio::time::Instant::now();
        let mut ready = Vec::new();
        pending.retain(|path, p| {
            let Ok(meta) = std::fs::metadata(path) else {
                return false; // gone: moved away or deleted by someone else
            };
            let mtime = meta.modified().ok();
            if meta.len() != p.size || mtime != p.mtime {
                p.size = meta.len();
                p.mtime = mtime;
                p.stable_since = now;
                return true;
            }
            if now.duration_since(p.stable_since) >= p.quiet {
                ready.push(path.clone());
                return false;
            }
            true
        });
        ready.sort();
        ready
    }

    /// Reads one complete file, hands it to the pipeline and files it per the outcome.
    /// Returns false when the daemon is shutting down (the file stays for next time).
    async fn take(&self, path: &Path, tx: &mpsc::Sender<Capture>) -> bool {
        !matches!(self.take_file(path, tx).await, Taken::PipelineClosed)
    }

    /// [`take`](Self::take), telling what happened to the file.
    async fn take_file(&self, path: &Path, tx: &mpsc::Sender<Capture>) -> Taken {
        let meta = match tokio::fs::metadata(path).await {
            Ok(m) if m.is_file() => m,
            _ => return Taken::Gone, // taken via another event, or not a file
        };
        if meta.len() > self.max_file_size {
            let reason = format!(
                "file is {} bytes, over max_file_size ({} bytes)",
                meta.len(),
                self.max_file_size
            );
            self.quarantine(path, &reason).await;
            return Taken::Done(Outcome::Failed { reason });
        }
        let body = match tokio::fs::read(path).await {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Taken::Gone,
            Err(e) => {
                let reason = format!("cannot read file: {e}");
                self.quarantine(path, &reason).await;
                return Taken::Done(Outcome::Failed { reason });
            }
        };
        let captured_at: DateTime<Utc> = meta
            .modified()
            .map(DateTime::<Utc>::from)
            .unwrap_or_else(|_| Utc::now());
        let page = Page {
            source: self.name.clone(),
            origin: path.display().to_string(),
            content_hash: content_hash(&body),
            body,
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
            fetch_state: None,
        };
        if tx.send(capture).await.is_err() {
            return Taken::PipelineClosed;
        }
        // The pipeline finishes in-flight work on shutdown, so the answer comes unless
        // the pipeline is gone; a closed reply channel leaves the file for next time.
        let Ok(outcome) = outcome.await else {
            return Taken::PipelineClosed;
        };
        match &outcome {
            Outcome::Ingested { .. } | Outcome::Duplicate => self.done(path).await,
            Outcome::Failed { reason } => self.quarantine(path, reason).await,
            // Left in place: the next start-up scan (or a later write) takes it again.
            Outcome::Deferred { reason } => {
                tracing::warn!(source = %self.name, file = %path.display(), %reason, "file kept for a later try")
            }
        }
        Taken::Done(outcome)
    }

    /// One pass for `lookout once` and `lookout import`: every file now in the folder
    /// that has not changed for `settle` (a file still being written is left for the
    /// next pass), oldest first. Returns each file's outcome.
    pub async fn once(
        &mut self,
        tx: &mpsc::Sender<Capture>,
    ) -> Result<Vec<(PathBuf, Outcome)>, FolderError> {
        self.prepare()?;
        let mut outcomes = Vec::new();
        for path in self.scan() {
            let quiet = std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| SystemTime::now().duration_since(m).ok())
                .is_some_and(|age| age >= self.settle);
            if !quiet {
                tracing::info!(file = %path.display(), "still changing; left for the next pass");
                continue;
            }
            match self.take_file(&path, tx).await {
                Taken::Done(outcome) => outcomes.push((path, outcome)),
                Taken::Gone => {}
                Taken::PipelineClosed => break,
            }
        }
        Ok(outcomes)
    }

    /// Files an ingested file per `after`.
    async fn done(&self, path: &Path) {
        let result = match self.after {
            AfterIngest::Keep => Ok(()),
            AfterIngest::Delete => tokio::fs::remove_file(path).await,
            AfterIngest::Move => move_into(path, &self.dir.join("processed"))
                .await
                .map(|_| ()),
        };
        if let Err(e) = result {
            tracing::warn!(source = %self.name, file = %path.display(), error = %e, "cannot file away ingested file");
        }
    }

    /// Moves a refused file to `failed/` and writes `NAME.error.txt` beside it.
    async fn quarantine(&self, path: &Path, reason: &str) {
        tracing::warn!(source = %self.name, file = %path.display(), %reason, "file refused; moved to failed/");
        let failed = self.dir.join("failed");
        match move_into(path, &failed).await {
            Ok(dest) => {
                let mut sidecar = dest.clone().into_os_string();
                sidecar.push(".error.txt");
                let text = format!(
                    "{}\nfile: {}\nsource: {}\nat: {}\n",
                    reason,
                    path.display(),
                    self.name,
                    Utc::now().to_rfc3339()
                );
                if let Err(e) = tokio::fs::write(&sidecar, text).await {
                    tracing::warn!(file = %dest.display(), error = %e, "cannot write error sidecar");
                }
            }
            Err(e) => {
                tracing::warn!(source = %self.name, file = %path.display(), error = %e, "cannot move refused file to failed/")
            }
        }
    }
}

/// Whether a file name is one we read: not hidden, not a download in progress.
pub fn is_candidate(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        // Non-UTF-8 names are still files someone dropped; read them.
        return path.file_name().is_some();
    };
    const TEMPORARY: &[&str] = &[".part", ".tmp", ".crdownload", ".swp", ".partial", "~"];
    !name.starts_with('.') && !TEMPORARY.iter().any(|suffix| name.ends_with(suffix))
}

/// Moves `path` into `dir`, never overwriting: a name already taken gets a numeric suffix.
async fn move_into(path: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    let name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "unnamed".into());
    let mut dest = dir.join(&name);
    let mut n = 1;
    while tokio::fs::try_exists(&dest).await.unwrap_or(false) {
        let mut alt = name.clone();
        alt.push(format!(".{n}"));
        dest = dir.join(alt);
        n += 1;
    }
    tokio::fs::rename(path, &dest).await?;
    Ok(dest)
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

    #[tokio::test]
    async fn move_into_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        for _ in 0..3 {
            let src = dir.path().join("f.txt");
            std::fs::write(&src, "x").unwrap();
            move_into(&src, &dest).await.unwrap();
        }
        let mut names: Vec<_> = std::fs::read_dir(&dest)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["f.txt", "f.txt.1", "f.txt.2"]);
    }
}
