//! The seam between what lookout asks of its store and the databases that can hold it.
//!
//! [`StoreBackend`] is every operation the daemon, the server and the commands use,
//! with one meaning whatever the database: the embedded SQLite file
//! ([`SqliteStore`], the default) or a PostgreSQL server that several replicas share
//! ([`PostgresStore`]). [`Store`] is what callers hold: it owns one backend and hands
//! out the trait, so `store.items(…)` reads the same on either. The few operations
//! only one database has (SQLite's bulk loads and page caps) are methods of [`Store`]
//! that say so.
//!
//! Adding an operation: declare it here, implement it for both backends (the SQLite
//! one beside its siblings, the PostgreSQL one under `store/postgres/`), and add it to
//! the store test suite, which runs against both.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::interests::{CorpusItem, ScoreRow, ScoredItem, Verdict};
use super::items::Listing;
use super::outbox::RuleMatch;
use super::postgres::PostgresStore;
use super::{
    Delivery, FailedDelivery, FetchState, Ingest, IngestReport, ItemFilter, Matcher, OutboxCounts,
    SqliteStore, StoreError, StoredItem,
};

/// The store's operations, one meaning on every database. Blocking: async code calls
/// them through [`super::blocking`].
pub trait StoreBackend: Send {
    /// Ingests one page's entries in ONE transaction: new items with their aliases,
    /// matches and outbox rows, updates of known items, the capture record and the
    /// generation bump commit together or not at all.
    ///
    /// - A capture whose `content_hash` this source already ingested is skipped whole
    ///   (`duplicate_capture`); the same bytes on another source are that source's page.
    /// - An entry is a known item when one of its [`Entry::aliases`] is and the two are
    ///   the same thing: by an id alias, unless their ids differ (two papers, two posts,
    ///   a paper and a post); by the title alias, only when one of them has no id (a
    ///   text capture). So two entries with different ids are never one item.
    /// - A known item learns the entry's other aliases, its id when it had none, and the
    ///   entry's value of every field it lacks (`updated`), else it is `unchanged`. Only
    ///   the source that first saw the item edits filled fields, and only with a capture
    ///   that knows the item by its id: no capture takes over another source's title,
    ///   authors, date or summary, and fields never flip between captures. Known items
    ///   never alert again.
    /// - A new item is offered to `matcher`; each match is recorded (the per-rule feeds)
    ///   and, when `batch.alerts`, enqueued as one outbox row per notifier, due at
    ///   `seen_at`, or at the end of its digest window.
    /// - An entry repeated within the page counts once.
    /// - Entries with nothing to know them by (no title, link nor arXiv id) are skipped.
    ///
    /// `seen_at` is the ingest time: it stamps new items, updates, matches and the
    /// outbox schedule.
    ///
    /// [`Entry::aliases`]: crate::entry::Entry::aliases
    fn ingest(
        &mut self,
        batch: &Ingest<'_>,
        matcher: &dyn Matcher,
    ) -> Result<IngestReport, StoreError> {
        let mut reports = self.ingest_all(std::slice::from_ref(batch), matcher)?;
        Ok(reports.pop().unwrap_or_default())
    }

    /// Ingests many pages in one transaction, in order, as if each were ingested alone:
    /// what a bulk import does. One commit per page would write the touched index
    /// pages again for every page; batching writes them once.
    fn ingest_all(
        &mut self,
        batches: &[Ingest<'_>],
        matcher: &dyn Matcher,
    ) -> Result<Vec<IngestReport>, StoreError>;

    /// Up to `limit` items, newest first.
    ///
    /// [`ItemFilter::All`] orders by first-seen time; [`ItemFilter::Source`] by when that
    /// source first saw the item; [`ItemFilter::Rule`] by when the rule matched. Ties go
    /// to the higher row id, so the order is total and stable between renders.
    fn items(&self, filter: ItemFilter<'_>, limit: usize) -> Result<Vec<StoredItem>, StoreError>;

    /// Up to `limit` items of a feed, newest first (ordered as [`StoreBackend::items`]),
    /// with their order times and the generation they were read at, in one read
    /// transaction.
    fn listing(&self, filter: ItemFilter<'_>, limit: usize) -> Result<Listing, StoreError>;

    /// The items of a feed that changed after generation `since` (inserted, updated,
    /// or new in the feed's source or rule), with the generation they were read at:
    /// what a feed listed at `since` applies to be current, at a cost in proportion to
    /// what changed. `None` when the change cannot be told that way and the feed must
    /// list itself again ([`StoreBackend::listing`]): an item was deleted since, or
    /// more items changed (in any feed) than `limit` or a thousand, whichever is more.
    fn changed_items(
        &self,
        filter: ItemFilter<'_>,
        since: u64,
        limit: usize,
    ) -> Result<Option<Listing>, StoreError>;

    /// Records (or, with `None`, clears) the user's verdict on an item for an
    /// interest. Returns false when no item has that id.
    fn set_verdict(
        &self,
        interest: &str,
        item_id: i64,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Every verdict given for an interest, by item id.
    fn verdicts(&self, interest: &str) -> Result<Vec<(i64, Verdict)>, StoreError>;

    /// The stored item a liked paper is: by its arXiv id, else its DOI (as a
    /// `doi.org` link), else its normalized title, the keys the ingest files items
    /// under.
    fn item_for_like(
        &self,
        arxiv_id: Option<&str>,
        doi: Option<&str>,
        title: Option<&str>,
    ) -> Result<Option<i64>, StoreError>;

    /// Up to `limit` stored items as a model reads them, newest first, from after
    /// `after` (the last item of the page before): what an interest trains on and ranks.
    fn corpus(
        &self,
        after: Option<&CorpusItem>,
        limit: usize,
    ) -> Result<Vec<CorpusItem>, StoreError>;

    /// Replaces an interest's scored items with `scores` in one transaction, and marks
    /// its feed changed.
    fn replace_interest_scores(
        &mut self,
        interest: &str,
        scores: &[ScoreRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Up to `limit` of an interest's items scored at least `min_score`, newest first.
    fn interest_items(
        &self,
        interest: &str,
        min_score: f32,
        limit: usize,
    ) -> Result<Vec<ScoredItem>, StoreError>;

    /// How many of an interest's items scored at least `min_score` (its feed's size,
    /// for `/metrics` and `/healthz`).
    fn interest_count(&self, interest: &str, min_score: f32) -> Result<u64, StoreError>;

    /// The item known by `key`: its guid key or any other alias it gathered.
    fn item_by_key(&self, key: &str) -> Result<Option<StoredItem>, StoreError>;

    /// How many items are stored (a kept counter: the same cost at any size).
    fn item_count(&self) -> Result<u64, StoreError>;

    /// The change counter: it moves whenever anything a feed shows changed.
    fn generation(&self) -> Result<u64, StoreError>;

    /// When the newest change a feed can see was made; `None` while there was none.
    fn last_change(&self) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Whether `source` already ingested a capture with this content hash.
    fn has_capture(&self, source: &str, hash: &str) -> Result<bool, StoreError>;

    /// The generation at which each feed scope last changed, by
    /// [`ItemFilter::scope_key`]. A scope not listed has not changed since the store
    /// began tracking scopes.
    fn scope_changes(&self) -> Result<HashMap<String, u64>, StoreError>;

    /// The fetch states of `sources`, in order, in one read; the default (never
    /// fetched) for a source with none recorded.
    fn fetch_states(&self, sources: &[&str]) -> Result<Vec<FetchState>, StoreError>;

    /// The fetch state of `source`; the default (never fetched) when none is recorded.
    fn fetch_state(&self, source: &str) -> Result<FetchState, StoreError> {
        Ok(self.fetch_states(&[source])?.pop().unwrap_or_default())
    }

    /// Records several sources' fetch states in one transaction.
    fn save_fetch_states(&mut self, states: &[(&str, &FetchState)]) -> Result<(), StoreError>;

    /// Every recorded fetch state, by source name.
    fn all_fetch_states(&self) -> Result<Vec<(String, FetchState)>, StoreError>;

    /// How long until the first claim another replica holds on a due delivery lapses,
    /// as the last [`StoreBackend::due_deliveries`] found it: the outbox worker asks
    /// again then, to send a dead replica's deliveries the moment its claims lapse.
    /// `None` when there is no such claim (always, on a store one process owns).
    fn claims_lapse_in(&self) -> Option<std::time::Duration> {
        None
    }

    /// Up to `limit` pending deliveries due at `now`, oldest due first, with their items.
    fn due_deliveries(&self, now: DateTime<Utc>, limit: usize)
        -> Result<Vec<Delivery>, StoreError>;

    /// Records a successful delivery; false when the row is not pending.
    fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Records a failed attempt retried at `next_attempt`; false when not pending.
    fn mark_retry(
        &self,
        id: i64,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<bool, StoreError>;

    /// Gives a delivery up after its last attempt; false when not pending.
    fn mark_failed(&self, id: i64, error: &str, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Outbox rows by state.
    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError>;

    /// Up to `limit` failed deliveries, most recently given up first.
    fn failed_deliveries(&self, limit: usize) -> Result<Vec<FailedDelivery>, StoreError>;

    /// Up to `limit` of `rule`'s matches, newest first.
    fn recent_matches(&self, rule: &str, limit: usize) -> Result<Vec<RuleMatch>, StoreError>;

    /// The schema version of the open database.
    fn schema_version(&self) -> Result<i64, StoreError>;

    /// Whether the store holds nothing yet: no item, capture, fetch state or delivery.
    fn is_empty(&self) -> Result<bool, StoreError>;

    /// Checks the database's structure: `None` when intact, else what was found.
    fn quick_check(&self) -> Result<Option<String>, StoreError>;

    /// Makes the smallest committed write there is, to learn whether writes work again.
    fn probe_write(&self) -> Result<(), StoreError>;

    /// Frees what the connection caches, for an idle daemon after a burst of reads.
    fn release_memory(&self) -> Result<(), StoreError>;

    /// Which database this is, for logs, `/healthz` and the status page.
    fn kind(&self) -> &'static str;

    /// Takes or renews this replica's lease of HTTP source `source`. While another
    /// replica holds it, says when that lease lapses unrenewed, so this one asks again
    /// exactly then (and does not fetch the source before). A store one process owns
    /// (SQLite) always grants it.
    fn lease_source(&self, source: &str) -> Result<Lease, StoreError>;

    /// The source leases in force, for `/healthz` and the status page (none on SQLite).
    fn leases(&self) -> Result<Vec<SourceLease>, StoreError>;

    /// Gives up this replica's source leases and outbox claims when the daemon stops
    /// in order, so another replica (or this one restarted, under a new name) takes
    /// them when it next asks instead of a lease period later. `lookout once` keeps
    /// its leases: they say its sources were just fetched. Nothing to do on a store one
    /// process owns.
    fn release_leases(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// This replica's name in a shared store; `None` for a store one process owns.
    fn replica(&self) -> Option<&str>;

    /// The sources whose lease this replica holds, by name.
    fn held_leases(&self) -> Result<Vec<String>, StoreError> {
        let me = self.replica();
        Ok(self
            .leases()?
            .into_iter()
            .filter(|lease| Some(lease.holder.as_str()) == me)
            .map(|lease| lease.source)
            .collect())
    }
}

/// The answer to [`StoreBackend::lease_source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// This replica holds the lease: it fetches the source.
    Held,
    /// Another replica holds it; unrenewed, it lapses in `lapses_in` (by the
    /// database server's clock, so no two replicas' clocks need agree).
    Elsewhere {
        /// Time left on the other replica's lease.
        lapses_in: std::time::Duration,
    },
}

impl Lease {
    /// Whether this replica holds the lease.
    pub fn is_held(self) -> bool {
        self == Lease::Held
    }
}

/// Which replica fetches an HTTP source, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLease {
    /// The source.
    pub source: String,
    /// The replica holding it.
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires: DateTime<Utc>,
}

/// The store callers hold: one backend behind the [`StoreBackend`] operations
/// (reached through `Deref`, as a `Box<dyn StoreBackend>` would be).
pub struct Store {
    backend: Backend,
}

/// The database a [`Store`] holds. An enum rather than a box, so the operations only
/// one database has reach it without a downcast.
enum Backend {
    Sqlite(SqliteStore),
    /// Boxed: a connection's config and client are several times a SQLite handle.
    Postgres(Box<PostgresStore>),
}

impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Store {
        Store {
            backend: Backend::Sqlite(store),
        }
    }
}

impl From<PostgresStore> for Store {
    fn from(store: PostgresStore) -> Store {
        Store {
            backend: Backend::Postgres(Box::new(store)),
        }
    }
}

impl std::ops::Deref for Store {
    type Target = dyn StoreBackend;

    fn deref(&self) -> &(dyn StoreBackend + 'static) {
        match &self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(store) => &**store,
        }
    }
}

impl std::ops::DerefMut for Store {
    fn deref_mut(&mut self) -> &mut (dyn StoreBackend + 'static) {
        match &mut self.backend {
            Backend::Sqlite(store) => store,
            Backend::Postgres(store) => &mut **store,
        }
    }
}

/// What a SQLite-only operation says on PostgreSQL.
const SQLITE_ONLY: StoreError =
    StoreError::Unsupported("this operation exists for the SQLite store only");

impl Store {
    /// Opens (creating when absent) the SQLite database at `path`, schema up to date.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        SqliteStore::open(path).map(Store::from)
    }

    /// Opens a private in-memory SQLite database, for tests and dry runs.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        SqliteStore::open_in_memory().map(Store::from)
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://…`) and brings its
    /// schema up to date under an advisory lock, whichever replica gets there first.
    pub fn connect(url: &str) -> Result<Store, StoreError> {
        PostgresStore::connect(url).map(Store::from)
    }

    /// The SQLite store, when that is the backend.
    pub fn sqlite(&mut self) -> Option<&mut SqliteStore> {
        match &mut self.backend {
            Backend::Sqlite(store) => Some(store),
            Backend::Postgres(_) => None,
        }
    }

    /// The PostgreSQL store, when that is the backend.
    pub fn postgres(&mut self) -> Option<&mut PostgresStore> {
        match &mut self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(store) => Some(&mut **store),
        }
    }

    /// Copies this SQLite store into the empty PostgreSQL database at `url`
    /// (`lookout migrate`): items, identity keys, captures, fetch state, matches and the
    /// outbox, with their ids and states, so nothing is new again and no alert is sent
    /// twice.
    pub fn migrate_to(&self, url: &str) -> Result<super::postgres::Copied, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => PostgresStore::connect(url)?.copy_from(store),
            Backend::Postgres(_) => Err(SQLITE_ONLY),
        }
    }

    /// See [`SqliteStore::checkpoint_at`].
    pub fn checkpoint_at(path: &Path) -> Result<(), StoreError> {
        SqliteStore::checkpoint_at(path)
    }

    /// See [`SqliteStore::aside_path`].
    pub fn aside_path(db: &Path) -> PathBuf {
        SqliteStore::aside_path(db)
    }

    /// See [`SqliteStore::create_aside`].
    pub fn create_aside(path: &Path) -> Result<Store, StoreError> {
        SqliteStore::create_aside(path).map(Store::from)
    }

    /// See [`SqliteStore::move_into_place`]; a PostgreSQL store is never loaded aside.
    pub fn move_into_place(self, aside: &Path, dest: &Path) -> Result<(), StoreError> {
        match self.backend {
            Backend::Sqlite(store) => store.move_into_place(aside, dest),
            Backend::Postgres(_) => Err(SQLITE_ONLY),
        }
    }

    /// See [`SqliteStore::claim_alone`]. A PostgreSQL store is shared by design: never
    /// claimed, so a first fill loads into it like any other import.
    pub fn claim_alone(&mut self) -> Result<bool, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(store) => store.claim_alone(),
            Backend::Postgres(_) => Ok(false),
        }
    }

    /// See [`SqliteStore::tune_for_bulk_load`]; nothing to tune on PostgreSQL.
    pub fn tune_for_bulk_load(&self, on: bool) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.tune_for_bulk_load(on),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// See [`SqliteStore::page_count`].
    pub fn page_count(&self) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.page_count(),
            Backend::Postgres(_) => Err(SQLITE_ONLY),
        }
    }

    /// See [`SqliteStore::limit_pages`].
    pub fn limit_pages(&self, pages: u64) -> Result<u64, StoreError> {
        match &self.backend {
            Backend::Sqlite(store) => store.limit_pages(pages),
            Backend::Postgres(_) => Err(SQLITE_ONLY),
        }
    }
}

/// SQLite's operations are its inherent methods, beside their SQL in this module's
/// siblings; the trait hands them out.
impl StoreBackend for SqliteStore {
    fn ingest_all(
        &mut self,
        batches: &[Ingest<'_>],
        matcher: &dyn Matcher,
    ) -> Result<Vec<IngestReport>, StoreError> {
        SqliteStore::ingest_all(self, batches, matcher)
    }
    fn items(&self, filter: ItemFilter<'_>, limit: usize) -> Result<Vec<StoredItem>, StoreError> {
        SqliteStore::items(self, filter, limit)
    }
    fn listing(&self, filter: ItemFilter<'_>, limit: usize) -> Result<Listing, StoreError> {
        SqliteStore::listing(self, filter, limit)
    }
    fn changed_items(
        &self,
        filter: ItemFilter<'_>,
        since: u64,
        limit: usize,
    ) -> Result<Option<Listing>, StoreError> {
        SqliteStore::changed_items(self, filter, since, limit)
    }
    fn set_verdict(
        &self,
        interest: &str,
        item_id: i64,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        SqliteStore::set_verdict(self, interest, item_id, verdict, at)
    }
    fn verdicts(&self, interest: &str) -> Result<Vec<(i64, Verdict)>, StoreError> {
        SqliteStore::verdicts(self, interest)
    }
    fn item_for_like(
        &self,
        arxiv_id: Option<&str>,
        doi: Option<&str>,
        title: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        SqliteStore::item_for_like(self, arxiv_id, doi, title)
    }
    fn corpus(
        &self,
        after: Option<&CorpusItem>,
        limit: usize,
    ) -> Result<Vec<CorpusItem>, StoreError> {
        SqliteStore::corpus(self, after, limit)
    }
    fn replace_interest_scores(
        &mut self,
        interest: &str,
        scores: &[ScoreRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        SqliteStore::replace_interest_scores(self, interest, scores, now)
    }
    fn interest_items(
        &self,
        interest: &str,
        min_score: f32,
        limit: usize,
    ) -> Result<Vec<ScoredItem>, StoreError> {
        SqliteStore::interest_items(self, interest, min_score, limit)
    }
    fn interest_count(&self, interest: &str, min_score: f32) -> Result<u64, StoreError> {
        SqliteStore::interest_count(self, interest, min_score)
    }
    fn item_by_key(&self, key: &str) -> Result<Option<StoredItem>, StoreError> {
        SqliteStore::item_by_key(self, key)
    }
    fn item_count(&self) -> Result<u64, StoreError> {
        SqliteStore::item_count(self)
    }
    fn generation(&self) -> Result<u64, StoreError> {
        SqliteStore::generation(self)
    }
    fn last_change(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        SqliteStore::last_change(self)
    }
    fn has_capture(&self, source: &str, hash: &str) -> Result<bool, StoreError> {
        SqliteStore::has_capture(self, source, hash)
    }
    fn scope_changes(&self) -> Result<HashMap<String, u64>, StoreError> {
        SqliteStore::scope_changes(self)
    }
    fn fetch_states(&self, sources: &[&str]) -> Result<Vec<FetchState>, StoreError> {
        SqliteStore::fetch_states(self, sources)
    }
    fn save_fetch_states(&mut self, states: &[(&str, &FetchState)]) -> Result<(), StoreError> {
        SqliteStore::save_fetch_states(self, states)
    }
    fn all_fetch_states(&self) -> Result<Vec<(String, FetchState)>, StoreError> {
        SqliteStore::all_fetch_states(self)
    }
    fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        SqliteStore::due_deliveries(self, now, limit)
    }
    fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        SqliteStore::mark_delivered(self, id, now)
    }
    fn mark_retry(
        &self,
        id: i64,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<bool, StoreError> {
        SqliteStore::mark_retry(self, id, next_attempt, error)
    }
    fn mark_failed(&self, id: i64, error: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        SqliteStore::mark_failed(self, id, error, now)
    }
    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        SqliteStore::outbox_counts(self)
    }
    fn failed_deliveries(&self, limit: usize) -> Result<Vec<FailedDelivery>, StoreError> {
        SqliteStore::failed_deliveries(self, limit)
    }
    fn recent_matches(&self, rule: &str, limit: usize) -> Result<Vec<RuleMatch>, StoreError> {
        SqliteStore::recent_matches(self, rule, limit)
    }
    fn schema_version(&self) -> Result<i64, StoreError> {
        SqliteStore::schema_version(self)
    }
    fn is_empty(&self) -> Result<bool, StoreError> {
        SqliteStore::is_empty(self)
    }
    fn quick_check(&self) -> Result<Option<String>, StoreError> {
        SqliteStore::quick_check(self)
    }
    fn probe_write(&self) -> Result<(), StoreError> {
        SqliteStore::probe_write(self)
    }
    fn release_memory(&self) -> Result<(), StoreError> {
        SqliteStore::release_memory(self)
    }
    fn kind(&self) -> &'static str {
        "sqlite"
    }
    fn lease_source(&self, _source: &str) -> Result<Lease, StoreError> {
        Ok(Lease::Held)
    }
    fn leases(&self) -> Result<Vec<SourceLease>, StoreError> {
        Ok(Vec::new())
    }
    fn replica(&self) -> Option<&str> {
        None
    }
}
