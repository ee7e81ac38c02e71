//! The SQLite store (rusqlite, WAL): items and the keys they are known by, captures
//! already ingested, per-source fetch state, alert matches and the delivery outbox.
//!
//! `ingest` is the heart of lookout: in one transaction it diffs a page's entries
//! against every item seen before, inserts the new ones, and enqueues one outbox row per
//! (rule, notifier) for each new item a rule matches. A crash can never record an item
//! as seen without its alerts, nor enqueue an alert twice.
//!
//! The store is synchronous; the daemon calls it from `spawn_blocking`.

mod migrations;

use chrono::{DateTime, NaiveDate, Utc};

use crate::entry::Entry;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error while doing `context`.
    #[error("store: {context}: {source}")]
    Sqlite {
        /// What the store was doing.
        context: &'static str,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer lookout.
    #[error("store schema version {found} is newer than this lookout understands ({known})")]
    TooNew {
        /// Version found in the file.
        found: i64,
        /// Newest version this build knows.
        known: i64,
    },
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// One rule's match of an entry, as the alert matcher reports it to `ingest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMatch {
    /// The rule's name.
    pub rule: String,
    /// The notifiers the match is delivered to (one outbox row each).
    pub notifiers: Vec<String>,
    /// The keywords or patterns that matched, for the message.
    pub matched: Vec<String>,
    /// Digest window in seconds: deliveries wait until the window closes, then go as one.
    pub digest_secs: Option<u64>,
}

/// Decides which rules an entry matches. The alert module implements it; `ingest` calls
/// it inside its transaction, for new items only.
pub trait Matcher {
    /// The rules `entry`, seen on source `source`, matches.
    fn matches(&self, entry: &Entry, source: &str) -> Vec<AlertMatch>;
}

/// A matcher with no rules.
pub struct NoRules;

impl Matcher for NoRules {
    fn matches(&self, _entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        Vec::new()
    }
}

/// One page's worth of entries to ingest.
#[derive(Debug, Clone)]
pub struct Ingest<'a> {
    /// The lookout source name.
    pub source: &'a str,
    /// File path or URL, recorded with the capture.
    pub origin: &'a str,
    /// Hex SHA-256 of the page bytes; a capture already ingested is skipped whole.
    pub content_hash: Option<&'a str>,
    /// The format that parsed the page.
    pub format: &'a str,
    /// The page's entries.
    pub entries: &'a [Entry],
    /// When lookout saw them (first-seen time of new items).
    pub seen_at: DateTime<Utc>,
    /// False for a baseline capture: new items fill the feed but enqueue no deliveries.
    pub alerts: bool,
}

/// What one ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Items seen for the first time.
    pub new: usize,
    /// Known items whose stored fields changed (summary, link, ...).
    pub updated: usize,
    /// Entries that matched a known item and changed nothing.
    pub unchanged: usize,
    /// Outbox rows enqueued.
    pub queued: usize,
    /// The capture's content hash was already recorded: nothing was done.
    pub duplicate_capture: bool,
}

/// An item as stored: what feeds, the status page and notifiers read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// Row id.
    pub id: i64,
    /// Stable identity key (the first key the item was known by); used as the feed guid.
    pub key: String,
    /// Title.
    pub title: String,
    /// Link, when any capture gave one.
    pub link: Option<String>,
    /// Latest summary.
    pub summary: String,
    /// Author names (may be empty).
    pub authors: Vec<String>,
    /// Number of authors, when known.
    pub author_count: Option<u32>,
    /// Publisher or venue.
    pub publisher: Option<String>,
    /// The lookout source that first saw the item.
    pub source: String,
    /// Publication date, when known.
    pub published: Option<NaiveDate>,
    /// arXiv id, when known.
    pub arxiv_id: Option<String>,
    /// Format that first parsed it.
    pub format: String,
    /// When lookout first saw it.
    pub first_seen: DateTime<Utc>,
    /// When any stored field last changed.
    pub updated_at: DateTime<Utc>,
}

/// Which items a listing asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFilter<'a> {
    /// Every item.
    All,
    /// Items seen on this source.
    Source(&'a str),
    /// Items this alert rule matched.
    Rule(&'a str),
}

/// Per-source HTTP state kept across restarts: conditional GET validators and backoff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchState {
    /// Last `ETag` the server sent.
    pub etag: Option<String>,
    /// Last `Last-Modified` the server sent.
    pub last_modified: Option<String>,
    /// Last successful fetch (200 or 304).
    pub last_success: Option<DateTime<Utc>>,
    /// Last failure time.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Last failure message.
    pub last_error: Option<String>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// Whether a fetch ever succeeded (the first one is the baseline).
    pub ever_succeeded: bool,
}

/// One outbox row due for delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Outbox row id.
    pub id: i64,
    /// Rule name.
    pub rule: String,
    /// Notifier name.
    pub notifier: String,
    /// Stable per (item, rule, notifier): receivers drop duplicates with it.
    pub idempotency_key: String,
    /// Keywords that matched.
    pub matched: Vec<String>,
    /// Attempts so far.
    pub attempts: u32,
    /// The matched item.
    pub item: StoredItem,
}

/// Outbox totals for health and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    /// Rows waiting (including retries).
    pub pending: u64,
    /// Rows that exhausted their attempts.
    pub failed: u64,
    /// Rows delivered.
    pub delivered: u64,
}

/// A failed delivery, for the status page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedDelivery {
    /// Rule name.
    pub rule: String,
    /// Notifier name.
    pub notifier: String,
    /// Title of the item.
    pub title: String,
    /// The last error.
    pub error: String,
    /// When it was given up.
    pub at: DateTime<Utc>,
}

/// The open database.
pub struct Store {
    conn: rusqlite::Connection,
}

/// The store shared between tasks; every use goes through `spawn_blocking`.
pub type SharedStore = std::sync::Arc<std::sync::Mutex<Store>>;

/// Locks the shared store. A panic while holding the lock cannot leave SQLite
/// half-written (the transaction rolls back), so a poisoned lock is simply taken over.
pub fn lock(store: &SharedStore) -> std::sync::MutexGuard<'_, Store> {
    store
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
