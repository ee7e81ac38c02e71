//! The SQLite store (rusqlite, WAL): items and the keys they are known by, captures
//! already ingested, per-source fetch state, alert matches and the delivery outbox.
//!
//! `ingest` is the heart of lookout: in one transaction it diffs a page's entries
//! against every item seen before, inserts the new ones, and enqueues one outbox row per
//! (rule, notifier) for each new item a rule matches. A crash can never record an item
//! as seen without its alerts, nor enqueue an alert twice.
//!
//! The store is synchronous; the daemon calls it from `spawn_blocking`.

mod backend;
mod bulk;
mod health;
mod ingest;
mod interests;
mod items;
mod migrations;
mod outbox;
pub mod postgres;

pub use backend::{Lease, SourceLease, Store, StoreBackend};
pub use health::{
    recovery_advice, Condition, Fault, StoreHealth, STORE_RETRY_BASE, STORE_RETRY_MAX,
};
pub use ingest::idempotency_key;
pub use interests::{
    interest_rule, like_keys, CorpusItem, InterestMatch, ScoreRow, ScoredItem, Verdict,
};
pub use items::{Listed, Listing};
pub use outbox::RuleMatch;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};

use crate::entry::{Entry, Timestamp};
use crate::sources::{Recorded, SourceHealth, Validators};

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
    /// A store call on the blocking pool panicked or was cancelled.
    #[error("store task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
    /// A store file could not be synced, moved or removed.
    #[error("store: {doing} {path}: {source}")]
    File {
        /// What the store was doing.
        doing: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// PostgreSQL reported an error while doing `context`.
    // The client's own message is often just "db error" or "error connecting to
    // server": the server's message or the socket's error is its cause.
    #[error("store: {context}: {}", crate::logging::Chain(.source))]
    Postgres {
        /// What the store was doing.
        context: &'static str,
        /// The PostgreSQL client's error (the server's, or the connection's).
        source: ::postgres::Error,
    },
    /// A stored value does not decode (a row edited by hand or written by a buggy build).
    #[error("store: column {column} holds a value that does not decode: {detail}")]
    Value {
        /// The column.
        column: &'static str,
        /// What is wrong with it.
        detail: String,
    },
    /// A new item's key was free a moment ago and is taken now, inside one transaction.
    #[error("store: item key {0} was taken while it was being inserted")]
    KeyTaken(String),
    /// The TLS setup for a PostgreSQL connection could not be built.
    #[error("store: TLS for PostgreSQL: {0}")]
    Tls(#[source] rustls::Error),
    /// `lookout migrate` copies into an empty database only.
    #[error(
        "store: the PostgreSQL database already holds a store; migrate copies into an empty one"
    )]
    NotEmpty,
    /// A thread of the store's could not be started.
    #[error("store: cannot start a thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The operation exists for one backend only (`what` says which and why).
    #[error("store: {0}")]
    Unsupported(&'static str),
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

    /// The interests that score `entry` at or above their threshold (none by default):
    /// recorded for their feeds and enqueued like rule matches, in the same transaction.
    fn interests(&self, _entry: &Entry, _source: &str) -> Vec<InterestMatch> {
        Vec::new()
    }
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
    /// When the thing itself was published, when known (see [`Entry::published`]).
    pub published: Option<Timestamp>,
    /// When a listing says the item appeared, when known (see [`Entry::listed`]).
    pub listed: Option<Timestamp>,
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

impl ItemFilter<'_> {
    /// The key the store records this feed scope's changes under: `all`,
    /// `source:NAME` or `rule:NAME` (see [`Store::scope_changes`]).
    pub fn scope_key(&self) -> String {
        match self {
            ItemFilter::All => "all".to_owned(),
            ItemFilter::Source(name) => format!("source:{name}"),
            ItemFilter::Rule(name) => format!("rule:{name}"),
        }
    }
}

/// A source's record kept across restarts: its health, whatever its kind, and for an
/// HTTP source the validators of the last page stored and whether one ever was.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FetchState {
    /// What to send with the next conditional GET.
    pub validators: Validators,
    /// Whether a fetch ever succeeded (the first one is the baseline).
    pub ever_succeeded: bool,
    /// The source's health, as the daemon shows it.
    pub health: SourceHealth,
}

impl FetchState {
    /// Books an attempt at `at`: a success clears the failures, marks the baseline done
    /// and, with new validators, replaces the old; a failure keeps the validators, so
    /// the next request of a page that was never stored is unconditional only if it
    /// never was.
    pub fn record(&mut self, at: DateTime<Utc>, recorded: &Recorded) {
        self.health.record(at, recorded);
        if let Recorded::Success(validators) = recorded {
            if let Some(v) = validators {
                self.validators.clone_from(v);
            }
            self.ever_succeeded = true;
        }
    }
}

/// Reads the source (column 0) and its [`FetchState`] (from column 1): one text for
/// both databases. A macro, not a const, so queries can be `concat!`ed into consts.
macro_rules! select_fetch_states {
    () => {
        "SELECT source, etag, last_modified, last_success, last_error_at, last_error, \
         consecutive_failures, ever_succeeded FROM fetch_state"
    };
}
use select_fetch_states;

/// Writes one source's [`FetchState`] (`$1` the source, then the columns in
/// [`FETCH_STATE_COLUMNS`] order). SQLite reads `$N` as the N-th parameter too, so
/// both databases run this text.
const SAVE_FETCH_STATE: &str = "INSERT INTO fetch_state (source, etag, last_modified, last_success,
        last_error_at, last_error, consecutive_failures, ever_succeeded)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (source) DO UPDATE SET
        etag = excluded.etag,
        last_modified = excluded.last_modified,
        last_success = excluded.last_success,
        last_error_at = excluded.last_error_at,
        last_error = excluded.last_error,
        consecutive_failures = excluded.consecutive_failures,
        ever_succeeded = excluded.ever_succeeded";

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

/// The embedded SQLite database, lookout's default store.
pub struct SqliteStore {
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

/// Runs a store call on the blocking pool, as every call from async code must:
/// SQLite must not block the runtime. The one place tasks reach the store from.
pub async fn blocking<T: Send + 'static>(
    store: &SharedStore,
    call: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = std::sync::Arc::clone(store);
    tokio::task::spawn_blocking(move || call(&mut lock(&store)))
        .await
        .map_err(StoreError::Task)?
}

/// How a connection journals its writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Journal {
    /// The store's own file: WAL.
    Wal,
    /// An in-memory database: SQLite's default, a journal in memory.
    Memory,
    /// A database built aside for a bulk load (see [`Store::create_aside`]): a journal
    /// in memory and no syncs, since the file is not the store until it is moved in.
    Aside,
}

/// How long a statement waits for another connection's write lock before failing.
/// The daemon holds one connection; this covers `lookout` commands run beside it.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Statements the store prepares; all fit in the cache at once, so a hot ingest never
/// re-parses SQL.
const STATEMENT_CACHE: usize = 64;

impl SqliteStore {
    /// Opens (creating when absent) the database at `path` and brings its schema up to
    /// date. The parent directory is created if needed.
    ///
    /// WAL with `synchronous=NORMAL`: a commit is durable against a process crash, and a
    /// power loss can lose at most the last transactions, never corrupt the file.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                path: dir.to_owned(),
                source,
            })?;
        }
        let conn = Connection::open(path).ctx("opening the database file")?;
        SqliteStore::setup(conn, Journal::Wal)
    }

    /// Opens a private in-memory database with the full schema, for tests and dry runs.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let conn = Connection::open_in_memory().ctx("opening an in-memory database")?;
        SqliteStore::setup(conn, Journal::Memory)
    }

    fn setup(mut conn: Connection, journal: Journal) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx("setting the busy timeout")?;
        // Check before switching the journal mode: a newer lookout's file is not ours to
        // touch at all.
        migrations::check_not_too_new(&conn)?;
        if journal == Journal::Wal {
            let _mode: String = conn
                .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
                .ctx("switching to WAL")?;
        }
        let synchronous = if journal == Journal::Aside {
            "OFF"
        } else {
            "NORMAL"
        };
        conn.pragma_update(None, "synchronous", synchronous)
            .ctx("setting the sync level")?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .ctx("enabling foreign keys")?;
        // Query-planner stability: plans never depend on bound values (lookout keeps no
        // statistics for them to depend on). Without it, SQLite marks a join whose WHERE
        // binds a parameter as "re-plan when rebound", and rusqlite's statement cache
        // clears the bindings of every statement it takes back, so such a query was
        // compiled again on every call, most of an alias lookup's time (BENCHMARKS.md,
        // "Figures behind code choices").
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .ctx("enabling the query planner stability guarantee")?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        if migrations::version(&conn)? < migrations::latest() {
            migrations::migrate(&mut conn)?;
        }
        Ok(SqliteStore { conn })
    }

    /// The generation at which each feed scope last changed, by
    /// [`ItemFilter::scope_key`]. A scope not listed has not changed since the store
    /// began tracking scopes: its feed is current at any generation.
    pub fn scope_changes(&self) -> Result<HashMap<String, u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT scope, generation FROM scope_changes")
            .ctx("preparing the scope change listing")?;
        let rows = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })
            .ctx("listing scope changes")?;
        rows.map(|row| {
            let (scope, generation) = row.ctx("reading a scope change")?;
            Ok((scope, u64::try_from(generation).unwrap_or(0)))
        })
        .collect()
    }

    /// Copies what the WAL of the store at `path` holds into its database file, on a
    /// connection of its own (blocking), while the store's connection goes on reading:
    /// a run that ends soon after its last write (`lookout once`) does it beside its
    /// last reads, and the store's close then has nothing left to copy.
    pub fn checkpoint_at(path: &Path) -> Result<(), StoreError> {
        let conn = Connection::open(path).ctx("opening a checkpoint connection")?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .ctx("setting the busy timeout")?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .ctx("setting the sync level")?;
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .ctx("checkpointing the WAL")
    }

    /// Frees what SQLite's page cache holds (`PRAGMA shrink_memory`), for an idle
    /// daemon after a burst of reads.
    pub fn release_memory(&self) -> Result<(), StoreError> {
        self.conn
            .execute_batch("PRAGMA shrink_memory")
            .ctx("shrinking the page cache")
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        migrations::version(&self.conn)
    }

    /// The fetch states of `sources`, in order; the default (never fetched) for a
    /// source with none recorded.
    pub fn fetch_states(&self, sources: &[&str]) -> Result<Vec<FetchState>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(concat!(select_fetch_states!(), " WHERE source = ?1"))
            .ctx("preparing the fetch state query")?;
        // In-process reads: a cached statement per source costs no round trip.
        sources
            .iter()
            .map(|source| {
                let state = stmt
                    .query_row([source], |row| fetch_state_from_row(row, 1))
                    .optional()
                    .ctx("reading a source's fetch state")?;
                Ok(state.unwrap_or_default())
            })
            .collect()
    }

    /// Records several sources' fetch states in one transaction.
    pub fn save_fetch_states(&mut self, states: &[(&str, &FetchState)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("starting a fetch state transaction")?;
        {
            let mut stmt = tx
                .prepare_cached(SAVE_FETCH_STATE)
                .ctx("preparing the fetch state update")?;
            for (source, state) in states {
                let h = &state.health;
                stmt.execute(params![
                    source,
                    state.validators.etag,
                    state.validators.last_modified,
                    h.last_success.map(to_ms),
                    h.last_error_at.map(to_ms),
                    h.last_error,
                    h.consecutive_failures,
                    state.ever_succeeded,
                ])
                .ctx("saving a source's fetch state")?;
            }
        }
        tx.commit().ctx("committing fetch states")
    }

    /// Every recorded fetch state, by source name (for `/healthz` and the status page).
    pub fn all_fetch_states(&self) -> Result<Vec<(String, FetchState)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(concat!(select_fetch_states!(), " ORDER BY source"))
            .ctx("preparing the fetch states query")?;
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, fetch_state_from_row(row, 1)?)))
            .ctx("listing fetch states")?;
        rows.collect::<Result<_, _>>().ctx("reading fetch states")
    }
}

/// Attaches what the store was doing to a SQLite error.
trait Ctx<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sqlite { context, source })
    }
}

/// Times are stored as unix milliseconds.
fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

/// A stored value that does not decode is reported as a conversion failure of its
/// column, never a panic: the file may have been edited or written by a buggy build.
fn bad_column(
    idx: usize,
    what: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Text, what.into())
}

fn time_col(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<DateTime<Utc>> {
    let ms: i64 = row.get(idx)?;
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| bad_column(idx, format!("timestamp {ms} ms is out of range")))
}

fn opt_time_col(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<Option<DateTime<Utc>>> {
    match row.get::<_, Option<i64>>(idx)? {
        None => Ok(None),
        Some(_) => time_col(row, idx).map(Some),
    }
}

fn fetch_state_from_row(row: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<FetchState> {
    Ok(FetchState {
        validators: Validators {
            etag: row.get(at)?,
            last_modified: row.get(at + 1)?,
        },
        health: SourceHealth {
            last_success: opt_time_col(row, at + 2)?,
            last_error_at: opt_time_col(row, at + 3)?,
            last_error: row.get(at + 4)?,
            consecutive_failures: row.get(at + 5)?,
        },
        ever_succeeded: row.get(at + 6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("valid test time")
    }

    /// The plan of every query that runs per entry, per feed render or per worker
    /// poll: each must seek an index, never walk a table or sort, so its cost does not
    /// grow with a million stored items.
    #[test]
    fn hot_queries_seek_indexes_instead_of_scanning() {
        let store = SqliteStore::open_in_memory().expect("open");
        let queries = [
            items::LIST_ALL,
            items::LIST_SOURCE,
            items::LIST_RULE,
            items::CHANGED_ALL,
            items::CHANGED_SOURCE,
            items::CHANGED_RULE,
            items::CHANGED_MORE_THAN,
            items::BY_ALIAS,
            items::BY_ID,
            ingest::ALIAS_OWNER,
            ingest::ITEM_SCOPES,
            ingest::CAPTURE_EXISTS,
            ingest::KEY_EXISTS,
            outbox::DUE,
            outbox::FAILED,
            outbox::RECENT_MATCHES,
            outbox::COUNT_STATE,
            interests::INTEREST_ITEMS,
            interests::CORPUS,
        ];
        for sql in queries {
            let mut stmt = store
                .conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .expect("explain");
            // The plan does not depend on the values; NULLs fill the slots.
            let nulls = vec![rusqlite::types::Null; stmt.parameter_count()];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(nulls), |row| {
                    row.get::<_, String>(3)
                })
                .expect("plan")
                .collect::<Result<_, _>>()
                .expect("plan rows");
            for step in &plan {
                let full_scan = step.starts_with("SCAN") && !step.contains("INDEX");
                assert!(!full_scan, "{sql}\n  scans: {plan:?}");
                assert!(!step.contains("TEMP B-TREE"), "{sql}\n  sorts: {plan:?}");
            }
        }
    }

    /// Entries known by their titles alone.
    fn titled(titles: &[&str]) -> Vec<Entry> {
        titles
            .iter()
            .map(|title| Entry {
                title: (*title).to_owned(),
                ..Entry::default()
            })
            .collect()
    }

    /// A baseline capture of `entries` from source `s`, recorded under `hash`.
    fn page<'a>(entries: &'a [Entry], hash: &'a str) -> Ingest<'a> {
        Ingest {
            source: "s",
            origin: "test",
            content_hash: Some(hash),
            format: "f",
            entries,
            seen_at: Utc::now(),
            alerts: false,
        }
    }

    /// A store made by the first schema keeps its items counted after the upgrade,
    /// and the count follows what the ingest inserts and whatever deletes rows.
    #[test]
    fn item_count_survives_the_upgrade_and_follows_ingests_and_deletes() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch(migrations::MIGRATIONS[0])
            .expect("schema 1");
        conn.pragma_update(None, "user_version", 1)
            .expect("version 1");
        let insert = "INSERT INTO items (key, title, source, format, first_seen, updated_at)
                      VALUES (?1, 't', 's', 'f', 0, 0)";
        for key in ["a", "b"] {
            conn.execute(insert, [key]).expect("old item");
        }
        let mut store = SqliteStore::setup(conn, Journal::Memory).expect("upgrade");
        assert_eq!(store.item_count().expect("count"), 2);
        let entries = titled(&["One", "Two", "One"]);
        store
            .ingest(&page(&entries, "h1"), &NoRules)
            .expect("ingest");
        assert_eq!(store.item_count().expect("count"), 4);
        // Known items, then a capture seen before: nothing new to count.
        store
            .ingest(&page(&entries, "h2"), &NoRules)
            .expect("ingest");
        store
            .ingest(&page(&entries, "h2"), &NoRules)
            .expect("ingest");
        assert_eq!(store.item_count().expect("count"), 4);
        store
            .conn
            .execute("DELETE FROM items WHERE key IN ('a', 'b')", [])
            .expect("raw delete");
        assert_eq!(store.item_count().expect("count"), 2);
    }

    /// `changed_items` gives what changed after a generation, in the feed's scope,
    /// with the order times a listing gives, and gives up after a delete.
    #[test]
    fn changed_items_are_the_change_and_a_delete_asks_for_a_new_listing() {
        let mut store = Store::open_in_memory().expect("open");
        let first = titled(&["One", "Two"]);
        store.ingest(&page(&first, "h1"), &NoRules).expect("ingest");
        let listing = store.listing(ItemFilter::All, 10).expect("listing");
        assert_eq!(listing.items.len(), 2);
        let none = store
            .changed_items(ItemFilter::All, listing.generation, 10)
            .expect("changes")
            .expect("told");
        assert!(none.items.is_empty());
        // One new item, one known item seen again: only the new one changed.
        let second = titled(&["Three", "One"]);
        store
            .ingest(&page(&second, "h2"), &NoRules)
            .expect("ingest");
        for filter in [ItemFilter::All, ItemFilter::Source("s")] {
            let changes = store
                .changed_items(filter, listing.generation, 10)
                .expect("changes")
                .expect("told");
            let titles: Vec<&str> = changes
                .items
                .iter()
                .map(|l| l.item.title.as_str())
                .collect();
            assert_eq!(titles, ["Three"], "{filter:?}");
            let now = store.listing(filter, 10).expect("listing");
            assert_eq!(now.generation, changes.generation);
            assert_eq!(
                now.items[0], changes.items[0],
                "same order time as a listing"
            );
        }
        assert!(store
            .changed_items(ItemFilter::Source("other"), listing.generation, 10)
            .expect("changes")
            .expect("told")
            .items
            .is_empty());
        store
            .sqlite()
            .expect("a SQLite store")
            .conn
            .execute_batch(
                "DELETE FROM item_keys WHERE item_id = (SELECT id FROM items WHERE title = 'Two');
                 DELETE FROM item_sources WHERE item_id = (SELECT id FROM items WHERE title = 'Two');
                 DELETE FROM items WHERE title = 'Two';",
            )
            .expect("raw delete");
        assert_eq!(
            store
                .changed_items(ItemFilter::All, listing.generation, 10)
                .expect("changes"),
            None
        );
    }

    /// An item key is its first alias; when an alias table edited by hand left that
    /// key taken by an item that no longer answers to it, the new item gets `#2`.
    #[test]
    fn a_taken_key_gets_a_suffix_instead_of_failing_the_ingest() {
        let mut store = SqliteStore::open_in_memory().expect("open");
        let first = titled(&["Same Title"]);
        store
            .ingest(&page(&first, "h1"), &NoRules)
            .expect("first ingest");
        store
            .conn
            .execute("DELETE FROM item_keys", [])
            .expect("alias table edited by hand");
        let report = store
            .ingest(&page(&first, "h2"), &NoRules)
            .expect("second ingest");
        assert_eq!(report.new, 1);
        let keys: Vec<String> = store
            .items(ItemFilter::All, 10)
            .expect("list")
            .into_iter()
            .map(|item| item.key)
            .collect();
        assert_eq!(keys, ["title:same title#2", "title:same title"]);
    }

    /// Cached statements must not be compiled again per call (see `Store::setup`).
    #[test]
    fn query_plans_do_not_depend_on_bound_values() {
        let store = SqliteStore::open_in_memory().expect("open");
        assert!(store
            .conn
            .db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG)
            .expect("read db config"));
    }

    #[test]
    fn store_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<SharedStore>();
    }

    #[test]
    fn fresh_store_is_at_the_latest_schema_version() {
        let store = SqliteStore::open_in_memory().expect("open");
        assert_eq!(
            store.schema_version().expect("version"),
            migrations::latest()
        );
    }

    #[test]
    fn fetch_state_defaults_then_round_trips() {
        let mut store = SqliteStore::open_in_memory().expect("open");
        assert_eq!(
            store.fetch_states(&["hf"]).expect("read"),
            [FetchState::default()]
        );
        let state = FetchState {
            validators: Validators {
                etag: Some("\"abc\"".into()),
                last_modified: Some("Tue, 05 Mar 2024 10:00:00 GMT".into()),
            },
            health: SourceHealth {
                last_success: Some(at(1_700_000_000)),
                last_error_at: Some(at(1_700_000_100)),
                last_error: Some("timeout".into()),
                consecutive_failures: 3,
            },
            ever_succeeded: true,
        };
        store.save_fetch_states(&[("hf", &state)]).expect("save");
        assert_eq!(
            store.fetch_states(&["hf"]).expect("read"),
            [state.clone()].as_slice()
        );
        let mut cleared = state.clone();
        cleared.health.consecutive_failures = 0;
        cleared.health.last_error = None;
        store
            .save_fetch_states(&[("hf", &cleared)])
            .expect("save again");
        assert_eq!(
            store.fetch_states(&["hf"]).expect("read"),
            [cleared.clone()]
        );
        assert_eq!(
            store.all_fetch_states().expect("all"),
            vec![("hf".to_owned(), cleared)]
        );
    }
}
