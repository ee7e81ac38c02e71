//! Whether the store can be trusted with a write: the kinds of store failure, the
//! integrity check, and [`StoreHealth`], the one record of the store's condition that
//! the pipeline, the outbox worker, `/healthz`, the status page and metrics share.
//!
//! Two conditions stop lookout from writing, and both must stop it *quietly*:
//!
//! - **The store cannot write** (a full disk, too many open files, a lock held by
//!   another process): temporary. Captures stay in their folders, deliveries pause,
//!   and both resume on their own as soon as a write succeeds again. Before this record
//!   existed, an outbox row whose outcome could not be written stayed due and was sent
//!   again at once, thousands of times a second (issue 13.1).
//! - **The store is damaged** (`SQLITE_CORRUPT`, `SQLITE_NOTADB`, or a failed
//!   `PRAGMA quick_check`): it does not heal by itself. Writes that happen to miss the
//!   damaged pages still succeed, so without this record the daemon went on "ingesting"
//!   into a file nothing could be read back from (issue 13.7). Nothing is written until
//!   an operator restores or recovers the file and restarts lookout.
//!
//! Each change of condition is logged once, when it happens; the components that wait
//! on the store watch [`StoreHealth::subscribe`] instead of retrying in a loop.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rusqlite::ErrorCode;
use tokio::sync::watch;

use super::{Ctx, SqliteStore, Store, StoreError};

/// What kind of failure a store error is, which decides what is done about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Try again later: the disk is full (`SQLITE_FULL`, `ENOSPC`), the process is out
    /// of file descriptors (`EMFILE`, `SQLITE_CANTOPEN`), another connection holds the
    /// lock (`SQLITE_BUSY`, `SQLITE_LOCKED`), or the I/O layer failed
    /// (`SQLITE_IOERR`). Never a reason to refuse a capture.
    Temporary,
    /// The file is damaged (`SQLITE_CORRUPT`, `SQLITE_NOTADB`): check its integrity.
    Corrupt,
    /// Anything else (a bug, a value that does not decode): reported as it is.
    Other,
}

impl StoreError {
    /// What kind of failure this is (see [`Fault`]).
    pub fn fault(&self) -> Fault {
        match self {
            StoreError::Sqlite { source, .. } => sqlite_fault(source),
            StoreError::File { source, .. } | StoreError::Dir { source, .. } => io_fault(source),
            StoreError::Postgres { source, .. } => super::postgres::fault(source),
            StoreError::TooNew { .. }
            | StoreError::Task(_)
            | StoreError::Value { .. }
            | StoreError::KeyTaken(_)
            | StoreError::Tls(_)
            | StoreError::Thread(_)
            | StoreError::NotEmpty
            | StoreError::Unsupported(_) => Fault::Other,
        }
    }
}

impl StoreError {
    /// What an operator does about this error, and what lookout does meanwhile, when
    /// there is more to say than the error: a PostgreSQL server that refuses
    /// connections or logins, or is full, and a store written by a newer lookout.
    pub fn advice(&self) -> Option<&'static str> {
        match self {
            StoreError::Postgres { source, .. } => Some(super::postgres::advice(source)),
            StoreError::TooNew { .. } => Some(
                "a newer lookout wrote this store (on PostgreSQL: another replica was \
                 upgraded first): run this version or a newer one; never an older one",
            ),
            _ => None,
        }
    }
}

/// What lookout does while a SQLite store cannot write.
const SQLITE_CANNOT_WRITE: &str =
    "captures stay in their folders and deliveries pause until it can (is the disk full?)";

fn sqlite_fault(error: &rusqlite::Error) -> Fault {
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DiskFull
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::ReadOnly,
        ) => Fault::Temporary,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Fault::Corrupt,
        _ => Fault::Other,
    }
}

fn io_fault(error: &std::io::Error) -> Fault {
    match error.raw_os_error() {
        Some(libc::ENOSPC | libc::EDQUOT | libc::EMFILE | libc::ENFILE | libc::EAGAIN) => {
            Fault::Temporary
        }
        _ if error.kind() == std::io::ErrorKind::StorageFull => Fault::Temporary,
        _ => Fault::Other,
    }
}

/// The store's condition, as `/healthz`, the status page and metrics report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Reads and writes work.
    Healthy,
    /// The last write failed for a temporary reason; captures and deliveries wait.
    CannotWrite {
        /// The error, in one line.
        error: String,
        /// What to do about it, and what lookout does meanwhile.
        advice: String,
        /// Since when.
        since: DateTime<Utc>,
    },
    /// The file failed its integrity check; nothing is written until it is restored.
    Corrupt {
        /// What the check (or SQLite) reported, in one line.
        report: String,
        /// Since when.
        since: DateTime<Utc>,
    },
}

impl Condition {
    /// Whether writes may be tried: the store is not known to be damaged.
    pub fn is_intact(&self) -> bool {
        !matches!(self, Condition::Corrupt { .. })
    }

    /// Whether everything works.
    pub fn is_healthy(&self) -> bool {
        matches!(self, Condition::Healthy)
    }

    /// A one-line summary for `/healthz` and the status page, `None` when healthy.
    pub fn problem(&self) -> Option<String> {
        match self {
            Condition::Healthy => None,
            Condition::CannotWrite { error, advice, .. } => {
                Some(format!("the store cannot write ({error}); {advice}"))
            }
            Condition::Corrupt { report, .. } => Some(format!(
                "the store is damaged ({report}); nothing is written until it is restored"
            )),
        }
    }
}

/// What an operator does about a damaged SQLite store, shown with the error.
pub fn recovery_advice(path: &Path) -> String {
    format!(
        "stop lookout, then restore {path} from a backup, or recover what it holds with \
         `sqlite3 {path} .recover | sqlite3 {path}.recovered` and move {path}.recovered \
         into place; then start lookout again",
        path = path.display()
    )
}

/// The store's condition, shared by every task that writes or reports it. Cloning is
/// cheap; every clone sees the same condition.
#[derive(Debug, Clone)]
pub struct StoreHealth {
    state: Arc<watch::Sender<Condition>>,
    site: Site,
    quiet: Arc<Mutex<Quiet>>,
}

/// Where the store is, which decides the advice given when it is damaged.
#[derive(Debug, Clone)]
enum Site {
    /// A SQLite file (`None`: in memory).
    Sqlite(Option<PathBuf>),
    /// A PostgreSQL server.
    Postgres,
}

/// Keeps a store that flaps between "cannot write" and "writes again" (a nearly full
/// disk: a small write fits, the next ingest does not) from filling the log, and a
/// stream of corruption reports from running the integrity check each time.
#[derive(Debug, Default)]
struct Quiet {
    /// When a spell of "cannot write" was last logged.
    logged: Option<Instant>,
    /// Whether the current spell was logged (then so is its end).
    spell_logged: bool,
    /// Spells since the last logged one that were not logged.
    unlogged: u32,
    /// When the integrity check last passed.
    checked: Option<Instant>,
}

/// The store retry policy, shared by every task that finds the store unable to answer:
/// the first wait before it tries again (without word that the store works again), and
/// what a `crate::retry::backoff` over further failed tries grows to at most. A task
/// that waits on the store this way does not count the wait as its own failure.
pub const STORE_RETRY_BASE: Duration = Duration::from_secs(1);
/// Longest wait between two tries of a store that cannot answer (see [`STORE_RETRY_BASE`]).
pub const STORE_RETRY_MAX: Duration = Duration::from_secs(30);

/// Least time between two logged changes between healthy and unable to write.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// Least time between integrity checks run because SQLite reported corruption.
const CHECK_EVERY: Duration = Duration::from_secs(60);

impl StoreHealth {
    /// A healthy store at `path` (named in the recovery advice; `None` in memory).
    pub fn new(path: Option<PathBuf>) -> StoreHealth {
        StoreHealth::at(Site::Sqlite(path))
    }

    /// A healthy PostgreSQL store: its advice is about the server, not a file.
    pub fn postgres() -> StoreHealth {
        StoreHealth::at(Site::Postgres)
    }

    fn at(site: Site) -> StoreHealth {
        StoreHealth {
            state: Arc::new(watch::Sender::new(Condition::Healthy)),
            site,
            quiet: Arc::new(Mutex::new(Quiet::default())),
        }
    }

    fn quiet(&self) -> std::sync::MutexGuard<'_, Quiet> {
        self.quiet.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a spell of "cannot write" that starts now is logged, and how many went
    /// unlogged before it: at most one spell per [`LOG_EVERY`] is, with its end.
    fn log_spell(&self) -> Option<u32> {
        let mut quiet = self.quiet();
        let now = Instant::now();
        if quiet
            .logged
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            quiet.unlogged += 1;
            quiet.spell_logged = false;
            return None;
        }
        quiet.logged = Some(now);
        quiet.spell_logged = true;
        Some(std::mem::take(&mut quiet.unlogged))
    }

    /// The condition now.
    pub fn condition(&self) -> Condition {
        self.state.borrow().clone()
    }

    /// A receiver told of every change of condition, for tasks that wait for the store.
    pub fn subscribe(&self) -> watch::Receiver<Condition> {
        self.state.subscribe()
    }

    /// What to do about a damaged store: recover its file, or see to the server.
    pub fn advice(&self) -> String {
        match &self.site {
            Site::Sqlite(path) => {
                recovery_advice(path.as_deref().unwrap_or(Path::new("lookout.db")))
            }
            Site::Postgres => "the PostgreSQL server reports damaged data: read its log for \
                 the table or index, REINDEX a damaged index or restore the database from a \
                 backup (pg_dump, a base backup), then restart lookout"
                .to_owned(),
        }
    }

    /// A write succeeded: a store that could not write can again. Logged once.
    pub fn wrote(&self) {
        let recovered = self.state.send_if_modified(|c| {
            if matches!(c, Condition::CannotWrite { .. }) {
                *c = Condition::Healthy;
                true
            } else {
                false
            }
        });
        if recovered && self.quiet().spell_logged {
            tracing::info!("store: writes succeed again; held captures and deliveries resume");
        }
    }

    /// Records a failed store call on `store` and says what kind of failure it was. A
    /// temporary one marks the store unable to write (logged once); one that reports
    /// corruption runs the integrity check, and marks the store damaged when the check
    /// fails too (logged once, with what to do).
    pub fn failed(&self, store: &Store, error: &StoreError) -> Fault {
        let fault = error.fault();
        match fault {
            Fault::Temporary => self.cannot_write(error),
            Fault::Corrupt => {
                let recently = self
                    .quiet()
                    .checked
                    .is_some_and(|at| at.elapsed() < CHECK_EVERY);
                // Known damaged, or found intact a moment ago: the check would say so
                // again, and it reads the whole file.
                if self.condition().is_intact() && !recently {
                    match store.quick_check() {
                        Ok(None) => {
                            self.quiet().checked = Some(Instant::now());
                            tracing::warn!(error = %error,
                                "store: SQLite reported corruption but the integrity check \
                                 passes; going on");
                        }
                        Ok(Some(report)) => self.corrupt(&report),
                        // The check itself could not run: the error is all there is.
                        Err(_) => self.corrupt(&error.to_string()),
                    }
                }
            }
            Fault::Other => {}
        }
        fault
    }

    /// Marks the store unable to write because of `error` (logged once).
    pub fn cannot_write(&self, error: &StoreError) {
        let advice = error.advice().unwrap_or(SQLITE_CANNOT_WRITE);
        let error = one_line(&error.to_string());
        let changed = self.state.send_if_modified(|c| match c {
            Condition::Healthy => {
                *c = Condition::CannotWrite {
                    error: error.clone(),
                    advice: advice.to_owned(),
                    since: Utc::now(),
                };
                true
            }
            // The same spell: the latest error and its advice are shown (a server
            // shutting down, then refusing connections), without a new log line or
            // waking the tasks that wait for the condition to change.
            Condition::CannotWrite {
                error: shown,
                advice: advised,
                ..
            } => {
                shown.clone_from(&error);
                advice.clone_into(advised);
                false
            }
            Condition::Corrupt { .. } => false,
        });
        if changed {
            if let Some(unlogged) = self.log_spell() {
                tracing::error!(%error, %advice, unlogged_spells = unlogged,
                    "store: cannot write; captures stay in their folders and deliveries \
                     pause until a write succeeds again");
            }
        }
    }

    /// Marks the store damaged: `report` is what the integrity check said. Final until
    /// the process restarts. Logged once, with what to do.
    pub fn corrupt(&self, report: &str) {
        let report = one_line(report);
        let changed = self.state.send_if_modified(|c| {
            if c.is_intact() {
                *c = Condition::Corrupt {
                    report: report.clone(),
                    since: Utc::now(),
                };
                true
            } else {
                false
            }
        });
        if changed {
            tracing::error!(%report, advice = %self.advice(),
                "store: the database file is damaged; lookout writes nothing to it, keeps \
                 captures in their folders and pauses deliveries");
        }
    }

    /// Runs the integrity check on `store` (blocking) and records a failure. Returns
    /// whether the store passed.
    pub fn check(&self, store: &Store) -> bool {
        match store.quick_check() {
            Ok(None) => true,
            Ok(Some(report)) => {
                self.corrupt(&report);
                false
            }
            Err(e) => {
                self.failed(store, &e);
                self.condition().is_intact()
            }
        }
    }
}

/// Longest report kept from the integrity check: its first lines say enough.
const REPORT_CHARS: usize = 300;

/// Joins lines and cuts a long text on a character boundary, for one log line.
fn one_line(text: &str) -> String {
    let joined = text
        .split('\n')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("; ");
    match joined.char_indices().nth(REPORT_CHARS) {
        Some((cut, _)) => format!("{}…", &joined[..cut]),
        None => joined,
    }
}

/// Rows of `PRAGMA quick_check` read at most: a badly damaged file reports a line per
/// damaged page, and the first few are enough to tell.
const CHECK_ROWS: usize = 10;

impl SqliteStore {
    /// Checks the file's structure (`PRAGMA quick_check`: every page of every table
    /// and index is read, without comparing indexes to their tables). `None` when it
    /// is intact, else what SQLite found. Blocking; linear in the file size.
    pub fn quick_check(&self) -> Result<Option<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!("PRAGMA quick_check({CHECK_ROWS})"))
            .ctx("preparing the integrity check")?;
        let lines: Vec<String> = stmt
            .query_map([], |row| row.get::<_, String>(0))
            .ctx("checking the database file's integrity")?
            .collect::<Result<_, _>>()
            .ctx("reading the integrity check")?;
        if lines.len() == 1 && lines[0] == "ok" {
            Ok(None)
        } else {
            Ok(Some(lines.join("\n")))
        }
    }

    /// Makes the smallest committed write there is (the schema version, rewritten
    /// unchanged: one page), to learn whether the store can write again.
    pub fn probe_write(&self) -> Result<(), StoreError> {
        let version = self.schema_version()?;
        self.conn
            .pragma_update(None, "user_version", version)
            .ctx("probing whether the store can write")
    }

    /// The database's size in pages (`PRAGMA page_count`), the least cap
    /// [`Store::limit_pages`] accepts.
    pub fn page_count(&self) -> Result<u64, StoreError> {
        let pages: i64 = self
            .conn
            .query_row("PRAGMA page_count", [], |row| row.get(0))
            .ctx("reading the page count")?;
        Ok(u64::try_from(pages).unwrap_or(0))
    }

    /// Caps the database file at `pages` pages (`PRAGMA max_page_count`, for this
    /// connection only) and returns the cap now in force, which is never below the
    /// file's current size. A write that would grow the file past it fails with
    /// `SQLITE_FULL`, exactly as on a full disk: tests use it to fill the store.
    pub fn limit_pages(&self, pages: u64) -> Result<u64, StoreError> {
        let pages = i64::try_from(pages).unwrap_or(i64::MAX);
        let now: i64 = self
            .conn
            .pragma_update_and_check(None, "max_page_count", pages, |row| row.get(0))
            .ctx("setting the page limit")?;
        Ok(u64::try_from(now).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::store::{Ingest, NoRules};

    fn entries(prefix: &str, n: usize) -> Vec<Entry> {
        (0..n)
            .map(|i| Entry {
                title: format!("{prefix} item {i} {}", "x".repeat(200)),
                ..Entry::default()
            })
            .collect()
    }

    fn ingest(store: &mut Store, hash: &str, entries: &[Entry]) -> Result<(), StoreError> {
        let page = Ingest {
            source: "s",
            origin: "test",
            content_hash: Some(hash),
            format: "f",
            entries,
            seen_at: Utc::now(),
            alerts: false,
        };
        store.ingest(&page, &NoRules).map(|_| ())
    }

    #[test]
    fn a_full_store_is_a_temporary_fault_and_heals_when_space_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("lookout.db")).expect("open");
        let health = StoreHealth::new(None);
        let size = store.page_count().expect("page count");
        assert_eq!(store.limit_pages(size).expect("cap"), size);
        let error = ingest(&mut store, "h1", &entries("a", 50)).expect_err("store is full");
        assert_eq!(error.fault(), Fault::Temporary, "{error}");
        assert!(error.to_string().contains("full"), "{error}");
        assert_eq!(health.failed(&store, &error), Fault::Temporary);
        assert!(matches!(health.condition(), Condition::CannotWrite { .. }));
        assert!(health.condition().problem().is_some());

        store.limit_pages(1 << 30).expect("space returns");
        store.probe_write().expect("probe");
        health.wrote();
        assert_eq!(health.condition(), Condition::Healthy);
        ingest(&mut store, "h1", &entries("a", 50)).expect("ingest after space returns");
    }

    #[test]
    fn a_damaged_store_fails_its_check_and_stays_marked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lookout.db");
        {
            let mut store = Store::open(&path).expect("open");
            for i in 0..20 {
                ingest(&mut store, &format!("h{i}"), &entries(&format!("p{i}"), 50))
                    .expect("ingest");
            }
            assert_eq!(store.quick_check().expect("check"), None);
        }
        // Garbage over the second half of the file, as a failing disk would leave it.
        let len = std::fs::metadata(&path).expect("size").len();
        assert!(len > 200_000, "{len}");
        let mut bytes = std::fs::read(&path).expect("read");
        let from = (len / 2) as usize;
        for (i, b) in bytes[from..from + 65_536].iter_mut().enumerate() {
            *b = (i * 131 % 251) as u8;
        }
        std::fs::write(&path, bytes).expect("corrupt");

        let store = Store::open(&path).expect("opens: the header is intact");
        let health = StoreHealth::new(Some(path.clone()));
        assert!(!health.check(&store));
        let Condition::Corrupt { report, .. } = health.condition() else {
            panic!("not marked corrupt: {:?}", health.condition());
        };
        assert!(!report.is_empty());
        // A write that succeeds elsewhere does not clear it.
        health.wrote();
        assert!(!health.condition().is_intact());
        assert!(health.advice().contains(".recover"));
    }

    #[test]
    fn io_errors_of_a_full_disk_or_too_many_files_are_temporary() {
        for errno in [libc::ENOSPC, libc::EMFILE, libc::ENFILE] {
            let error = StoreError::File {
                doing: "syncing",
                path: PathBuf::from("x"),
                source: std::io::Error::from_raw_os_error(errno),
            };
            assert_eq!(error.fault(), Fault::Temporary, "{error}");
        }
        let error = StoreError::File {
            doing: "syncing",
            path: PathBuf::from("x"),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert_eq!(error.fault(), Fault::Other);
    }

    #[test]
    fn long_reports_are_cut_to_one_line() {
        let text = format!("a\nb\n{}", "é".repeat(500));
        let line = one_line(&text);
        assert!(!line.contains('\n'));
        assert!(line.starts_with("a; b; "));
        assert!(line.chars().count() <= REPORT_CHARS + 1);
    }
}
