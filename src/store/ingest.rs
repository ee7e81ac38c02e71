//! `ingest`: diff a page's entries against every item seen before and enqueue the
//! alerts of the new ones, in one transaction.

use std::collections::{BTreeSet, HashSet};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sha2::{Digest, Sha256};

use super::items::{item_from_row, BY_ID};
use super::{
    to_ms, AlertMatch, Ctx, Ingest, IngestReport, ItemFilter, Matcher, SqliteStore, StoreError,
    StoredItem,
};
use crate::entry::{normalize_arxiv_id, Entry, Timestamp};

/// Whether a source has ingested a capture with this hash.
pub(super) const CAPTURE_EXISTS: &str = "SELECT 1 FROM captures WHERE source = ?1 AND hash = ?2";

/// Whether an item holds a guid key.
pub(super) const KEY_EXISTS: &str = "SELECT 1 FROM items WHERE key = ?1";

impl SqliteStore {
    /// [`StoreBackend::ingest_all`](super::StoreBackend::ingest_all) on SQLite: one
    /// IMMEDIATE transaction around the shared rules of [`ingest_in`].
    pub fn ingest_all(
        &mut self,
        batches: &[Ingest<'_>],
        matcher: &dyn Matcher,
    ) -> Result<Vec<IngestReport>, StoreError> {
        // IMMEDIATE: take the write lock up front instead of upgrading a read lock
        // midway, which SQLite can only refuse (SQLITE_BUSY) rather than wait for.
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("starting an ingest transaction")?;
        let reports = batches
            .iter()
            .map(|batch| ingest_in(&mut &*tx, batch, matcher))
            .collect::<Result<Vec<_>, _>>()?;
        tx.commit().ctx("committing an ingest")?;
        Ok(reports)
    }
}

/// The statements one ingest runs, inside one transaction of one backend. The rules of
/// [`ingest_in`] (which entry is which item, what a capture may change, what alerts)
/// are written once, here; each backend says only how a step reads or writes.
pub(super) trait IngestSql {
    /// Called once per page before any other step: a backend whose every statement is
    /// a round trip (PostgreSQL) reads what the page's steps will ask in one go.
    fn prefetch(&mut self, _batch: &Ingest<'_>) -> Result<(), StoreError> {
        Ok(())
    }
    /// Whether `source` has ingested a capture with this content hash.
    fn capture_exists(&mut self, source: &str, hash: &str) -> Result<bool, StoreError>;
    /// The item id and identity behind an alias ([`ALIAS_OWNER`]).
    fn alias_owner(&mut self, alias: &str) -> Result<Option<(i64, Option<String>)>, StoreError>;
    /// One item by row id.
    fn item_by_id(&mut self, id: i64) -> Result<Option<StoredItem>, StoreError>;
    /// Records an alias of `item_id` unless it is taken; true when it was recorded.
    fn add_alias(&mut self, alias: &str, item_id: i64) -> Result<bool, StoreError>;
    /// Records that `source` has seen the item; true when it had not before.
    fn add_source(&mut self, item_id: i64, source: &str, now: i64) -> Result<bool, StoreError>;
    /// Adds the scopes of every feed an item is in ([`ITEM_SCOPES`]).
    fn item_scopes(
        &mut self,
        item_id: i64,
        scopes: &mut BTreeSet<String>,
    ) -> Result<(), StoreError>;
    /// Inserts a new item; its row id, or `None` when its key is taken.
    fn insert_item(&mut self, item: &NewItem<'_>) -> Result<Option<i64>, StoreError>;
    /// Whether an item holds this key ([`KEY_EXISTS`]).
    fn key_exists(&mut self, key: &str) -> Result<bool, StoreError>;
    /// Writes a known item's changed fields.
    fn update_item(&mut self, update: &ItemUpdate<'_>) -> Result<(), StoreError>;
    /// Records a rule's match of an item (once per rule and item).
    fn insert_match(
        &mut self,
        rule: &str,
        item_id: i64,
        words: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Enqueues one delivery unless its key is queued; true when it was.
    fn enqueue(&mut self, row: &OutboxRow<'_>) -> Result<bool, StoreError>;
    /// Records an ingested capture.
    fn record_capture(&mut self, capture: &CaptureRow<'_>) -> Result<(), StoreError>;
    /// Moves the generation on: `new_items` more items, changed at `now`.
    fn bump_generation(&mut self, now: i64, new_items: i64) -> Result<(), StoreError>;
    /// Records that a feed scope changed at the current generation.
    fn scope_changed(&mut self, scope: &str) -> Result<(), StoreError>;
    /// The generation this transaction's change will be (the current one plus one):
    /// the transaction holds the write lock, so no other change comes between.
    fn next_generation(&mut self) -> Result<i64, StoreError>;
    /// Records that a known item changed at `generation` (see
    /// [`StoreBackend::changed_items`](super::StoreBackend::changed_items)).
    fn mark_changed(&mut self, item_id: i64, generation: i64) -> Result<(), StoreError>;
    /// Records (or replaces) an interest's score of an item, `terms` as JSON.
    fn record_interest(
        &mut self,
        interest: &str,
        item_id: i64,
        score: f64,
        terms: &str,
        seen: i64,
    ) -> Result<(), StoreError>;
}

/// A new item's row, as [`IngestSql::insert_item`] writes it.
#[derive(Debug)]
pub(super) struct NewItem<'a> {
    pub key: &'a str,
    pub title: &'a str,
    pub link: Option<&'a str>,
    pub summary: &'a str,
    /// JSON array of names.
    pub authors: String,
    pub author_count: Option<u32>,
    pub publisher: Option<&'a str>,
    pub source: &'a str,
    /// RFC 3339.
    pub published: Option<String>,
    pub arxiv_id: Option<String>,
    pub format: &'a str,
    /// Unix ms: first seen and updated.
    pub now: i64,
    pub ident: Option<&'a str>,
    /// RFC 3339.
    pub listed: Option<String>,
    /// The generation the item is marked changed at (see
    /// [`IngestSql::mark_changed`]).
    pub changed: i64,
}

/// A known item's fields after an update, as [`IngestSql::update_item`] writes them.
#[derive(Debug)]
pub(super) struct ItemUpdate<'a> {
    pub id: i64,
    pub summary: String,
    pub link: Option<String>,
    /// JSON array of names.
    pub authors: String,
    pub author_count: Option<u32>,
    pub publisher: Option<String>,
    pub published: Option<String>,
    pub arxiv_id: Option<String>,
    pub now: i64,
    pub ident: Option<&'a str>,
}

/// One outbox row, as [`IngestSql::enqueue`] writes it.
#[derive(Debug)]
pub(super) struct OutboxRow<'a> {
    pub item_id: i64,
    pub rule: &'a str,
    pub notifier: &'a str,
    pub key: &'a str,
    /// JSON array of the matched words.
    pub matched: &'a str,
    pub due: i64,
    pub now: i64,
}

/// One ingested capture, as [`IngestSql::record_capture`] writes it.
#[derive(Debug)]
pub(super) struct CaptureRow<'a> {
    pub hash: &'a str,
    pub source: &'a str,
    pub origin: &'a str,
    pub format: &'a str,
    pub entries: i64,
    pub new_items: i64,
    pub now: i64,
}

/// One page of an ingest, inside its transaction: the rules
/// [`StoreBackend::ingest`](super::StoreBackend::ingest) states, for every backend.
pub(super) fn ingest_in(
    db: &mut dyn IngestSql,
    batch: &Ingest<'_>,
    matcher: &dyn Matcher,
) -> Result<IngestReport, StoreError> {
    let mut report = IngestReport::default();
    db.prefetch(batch)?;
    if let Some(hash) = batch.content_hash {
        if db.capture_exists(batch.source, hash)? {
            report.duplicate_capture = true;
            return Ok(report);
        }
    }
    let now = to_ms(batch.seen_at);
    // The generation this page's change will be: the items it changes are marked
    // with it, for `StoreBackend::changed_items`.
    let next_generation = db.next_generation()?;
    let mut seen_in_page: HashSet<i64> = HashSet::with_capacity(batch.entries.len());
    let mut changed = false;
    // The feed scopes this page changes (see `ItemFilter::scope_key`): the two every
    // new item is in, and a set for the rest.
    let (mut all_changed, mut source_changed) = (false, false);
    let mut touched: BTreeSet<String> = BTreeSet::new();
    for entry in batch.entries {
        let aliases = entry.aliases();
        if aliases.is_empty() {
            continue;
        }
        // The entry's id leads its aliases when it has one (see `Entry::aliases`):
        // taken from there, not formatted again for every step below.
        let ident = aliases
            .first()
            .map(String::as_str)
            .filter(|alias| !alias.starts_with("title:"));
        match find_item(db, ident, &aliases)? {
            Some(known) => {
                let item = &known.item;
                let learned = add_aliases(db, item.id, &aliases)?;
                let new_source = db.add_source(item.id, batch.source, now)?;
                let updated = update_item(db, &known, entry, ident, batch.source, now)?;
                changed |= new_source || updated || learned > 0;
                source_changed |= new_source;
                if new_source || updated {
                    db.mark_changed(item.id, next_generation)?;
                }
                if updated {
                    all_changed = true;
                    db.item_scopes(item.id, &mut touched)?;
                }
                if seen_in_page.insert(item.id) {
                    if updated {
                        report.updated += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
            }
            None => {
                let (id, key) =
                    insert_item(db, entry, batch, &aliases, ident, now, next_generation)?;
                seen_in_page.insert(id);
                report.new += 1;
                changed = true;
                (all_changed, source_changed) = (true, true);
                for matched in matcher.matches(entry, batch.source) {
                    report.queued += record_match(db, id, &key, &matched, batch, now)?;
                    touched.insert(ItemFilter::Rule(&matched.rule).scope_key());
                }
                for scored in matcher.interests(entry, batch.source) {
                    report.queued += super::interests::record(db, id, &key, &scored, batch, now)?;
                    touched.insert(scored.scope_key());
                }
            }
        }
    }
    if let Some(hash) = batch.content_hash {
        db.record_capture(&CaptureRow {
            hash,
            source: batch.source,
            origin: batch.origin,
            format: batch.format,
            entries: i64::try_from(batch.entries.len()).unwrap_or(i64::MAX),
            new_items: i64::try_from(report.new).unwrap_or(i64::MAX),
            now,
        })?;
    }
    if changed {
        db.bump_generation(now, i64::try_from(report.new).unwrap_or(i64::MAX))?;
        if all_changed {
            touched.insert(ItemFilter::All.scope_key());
        }
        if source_changed {
            touched.insert(ItemFilter::Source(batch.source).scope_key());
        }
        for scope in &touched {
            db.scope_changed(scope)?;
        }
    }
    Ok(report)
}

/// The feed scopes an item is in; keys as [`ItemFilter::scope_key`] makes them.
pub(super) const ITEM_SCOPES: &str =
    "SELECT 'source:' || source FROM item_sources WHERE item_id = ?1
     UNION ALL SELECT 'rule:' || rule FROM matches WHERE item_id = ?1";

/// Whether `source` has ingested a capture with this content hash.
pub(super) fn capture_exists(
    conn: &Connection,
    source: &str,
    hash: &str,
) -> Result<bool, StoreError> {
    let mut stmt = conn
        .prepare_cached(CAPTURE_EXISTS)
        .ctx("preparing the capture lookup")?;
    stmt.exists([source, hash]).ctx("looking up a capture")
}

/// A stored item an entry was found to be, with what the store knows it as.
struct Known {
    item: StoredItem,
    /// What the item is (`arxiv:`, `guid:`, `url:`), `None` when it is known by its
    /// title alone.
    ident: Option<String>,
}

/// The known item an entry with id `entry_ident` and `aliases` is, if any: the item of
/// its most specific alias that is the same thing (see [`same_thing`]). Probes the
/// alias index alone (most entries of a page are either all new or all known) and
/// reads the whole row only for the item found.
fn find_item(
    db: &mut dyn IngestSql,
    entry_ident: Option<&str>,
    aliases: &[String],
) -> Result<Option<Known>, StoreError> {
    for alias in aliases {
        let Some((id, ident)) = db.alias_owner(alias)? else {
            continue;
        };
        let by_title = alias.starts_with("title:");
        if same_thing(entry_ident, ident.as_deref(), by_title) {
            let item = db.item_by_id(id)?;
            return Ok(item.map(|item| Known { item, ident }));
        }
    }
    Ok(None)
}

/// Whether an entry with id `ours` and an item with id `theirs`, which share an alias,
/// are one thing. By title, only when one of them has no id: a text capture finds the
/// paper a richer page recorded, but a post titled like a paper is not the paper. By an
/// id or link, unless both have ids that differ; a link is the weakest id, so a feed
/// that adds guids to its items finds the items it listed by link before.
fn same_thing(ours: Option<&str>, theirs: Option<&str>, by_title: bool) -> bool {
    match (ours, theirs) {
        (None, _) | (_, None) => true,
        _ if by_title => false,
        (Some(ours), Some(theirs)) => {
            ours == theirs || ours.starts_with("url:") || theirs.starts_with("url:")
        }
    }
}

/// The item id and identity behind an alias.
pub(super) const ALIAS_OWNER: &str =
    "SELECT i.id, i.ident FROM item_keys k JOIN items i ON i.id = k.item_id WHERE k.alias = ?1";

/// Records aliases for `item_id`; one already taken (by this item or, for a title
/// shared by two papers, by another) is left as it is. Returns how many were new.
fn add_aliases(
    db: &mut dyn IngestSql,
    item_id: i64,
    aliases: &[String],
) -> Result<usize, StoreError> {
    let mut added = 0;
    for alias in aliases {
        added += usize::from(db.add_alias(alias, item_id)?);
    }
    Ok(added)
}

/// Inserts a new item with its aliases, id and source, marked changed at
/// `generation`; returns its row id and key.
fn insert_item(
    db: &mut dyn IngestSql,
    entry: &Entry,
    batch: &Ingest<'_>,
    aliases: &[String],
    ident: Option<&str>,
    now: i64,
    generation: i64,
) -> Result<(i64, String), StoreError> {
    let format = if entry.format.is_empty() {
        batch.format
    } else {
        entry.format
    };
    let mut row = NewItem {
        key: &aliases[0],
        title: &entry.title,
        link: non_empty(entry.link.as_deref()),
        summary: &entry.summary,
        authors: authors_json(&entry.authors),
        author_count: entry.author_count,
        publisher: non_empty(entry.source.as_deref()),
        source: batch.source,
        published: entry.published.map(rfc3339),
        arxiv_id: entry.arxiv_id.as_deref().map(normalize_arxiv_id),
        format,
        now,
        ident,
        listed: entry.listed.map(rfc3339),
        changed: generation,
    };
    // The key is the first alias. Every item key is also an alias, so an unmatched
    // entry's first alias is normally free as a key; only an alias table edited by
    // hand makes it taken, and then the insert is refused and a free key is found.
    let (id, key) = match db.insert_item(&row)? {
        Some(id) => (id, aliases[0].clone()),
        None => {
            let key = free_key(db, &aliases[0])?;
            row.key = &key;
            let id = db
                .insert_item(&row)?
                .ok_or_else(|| StoreError::KeyTaken(key.clone()))?;
            (id, key)
        }
    };
    add_aliases(db, id, aliases)?;
    db.add_source(id, batch.source, now)?;
    Ok((id, key))
}

/// `key` with the first free `#n` suffix, for a key an item already holds as its
/// guid.
fn free_key(db: &mut dyn IngestSql, key: &str) -> Result<String, StoreError> {
    let mut n = 2;
    loop {
        let candidate = format!("{key}#{n}");
        if !db.key_exists(&candidate)? {
            return Ok(candidate);
        }
        n += 1;
    }
}

/// Brings a known item up to date with `entry`, seen on `source`, and gives an item
/// known by its title alone the entry's id.
///
/// A capture from another source, or one without an id (a text capture), only fills
/// the fields the item lacks: the API adds authors to a text capture's item, but no
/// capture takes over what another said, so fields never flip between captures. The
/// source that first saw the item edits it with a capture that knows it by its id (a
/// feed that fixed a summary). The title stays as first seen: it is what readers know
/// the item by. Returns whether anything changed.
///
/// `entry_ident` is the entry's id (see [`Entry::ident`]). The listing date is not
/// touched: the date feeds show is settled when the item is first stored, so an item
/// dated by when lookout first saw it never moves in a reader that has shown it.
fn update_item(
    db: &mut dyn IngestSql,
    known: &Known,
    entry: &Entry,
    entry_ident: Option<&str>,
    source: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let item = &known.item;
    let edits =
        item.source == source && known.ident.is_some() && entry_ident == known.ident.as_deref();
    let mut changed = false;
    // The entry's non-empty value where it may edit or the item has none, else the
    // stored one.
    let mut fill = |old: Option<&str>, new: Option<&str>| -> Option<String> {
        let new = new.filter(|n| !n.is_empty());
        match (old.filter(|o| !o.is_empty()), new) {
            (Some(old), Some(new)) if edits && old != new => {
                changed = true;
                Some(new.to_owned())
            }
            (Some(old), _) => Some(old.to_owned()),
            (None, new) => {
                changed |= new.is_some();
                new.map(str::to_owned)
            }
        }
    };
    let summary = fill(Some(&item.summary), Some(&entry.summary));
    let link = fill(item.link.as_deref(), entry.link.as_deref());
    let publisher = fill(item.publisher.as_deref(), entry.source.as_deref());
    let entry_arxiv = entry.arxiv_id.as_deref().map(normalize_arxiv_id);
    let arxiv_id = fill(item.arxiv_id.as_deref(), entry_arxiv.as_deref());
    let (old_published, new_published) =
        (item.published.map(rfc3339), entry.published.map(rfc3339));
    let published = fill(old_published.as_deref(), new_published.as_deref());
    // An item known by its title alone becomes what the entry is; one known by its
    // link becomes its guid, once a feed gives one.
    let ident = match (known.ident.as_deref(), entry_ident) {
        (None, Some(new)) => Some(new),
        (Some(old), Some(new)) if old.starts_with("url:") && new.starts_with("guid:") => Some(new),
        (old, _) => old,
    };
    changed |= ident != known.ident.as_deref();
    let new_authors = !entry.authors.is_empty()
        && (item.authors.is_empty() || (edits && entry.authors != item.authors));
    let (authors, author_count) = if new_authors {
        changed = true;
        (&entry.authors, entry.author_count)
    } else {
        let count = item.author_count.or(entry.author_count);
        changed |= count != item.author_count;
        (&item.authors, count)
    };
    if !changed {
        return Ok(false);
    }
    db.update_item(&ItemUpdate {
        id: item.id,
        summary: summary.unwrap_or_default(),
        link,
        authors: authors_json(authors),
        author_count,
        publisher,
        published,
        arxiv_id,
        now,
        ident,
    })?;
    Ok(true)
}

/// Records one rule's match of a new item and, for a capture that alerts, one outbox
/// row per notifier. Returns the outbox rows enqueued.
fn record_match(
    db: &mut dyn IngestSql,
    item_id: i64,
    item_key: &str,
    matched: &AlertMatch,
    batch: &Ingest<'_>,
    now: i64,
) -> Result<usize, StoreError> {
    let words = serde_json::Value::from(matched.matched.clone()).to_string();
    db.insert_match(&matched.rule, item_id, &words, now)?;
    if !batch.alerts {
        return Ok(0);
    }
    let due = due_time(now, matched.digest_secs);
    enqueue(
        db,
        item_id,
        item_key,
        &matched.rule,
        &matched.notifiers,
        &words,
        due,
        now,
    )
}

/// Enqueues one outbox row per notifier for a match of `rule` (a rule's name, or an
/// interest's `interest:NAME`), due at `due`; `matched` is the JSON list the message
/// shows. Returns the rows enqueued (a row already there is left as it is).
#[allow(clippy::too_many_arguments)]
pub(super) fn enqueue(
    db: &mut dyn IngestSql,
    item_id: i64,
    item_key: &str,
    rule: &str,
    notifiers: &[String],
    matched: &str,
    due: i64,
    now: i64,
) -> Result<usize, StoreError> {
    let mut queued = 0;
    for notifier in notifiers {
        let key = idempotency_key(item_key, rule, notifier);
        queued += usize::from(db.enqueue(&OutboxRow {
            item_id,
            rule,
            notifier,
            key: &key,
            matched,
            due,
            now,
        })?);
    }
    Ok(queued)
}

/// When a delivery first falls due: now, or for a digest rule the end of the current
/// window. Windows are aligned to the epoch, so every match of a rule within one window
/// shares one due time and the worker can send them as one message.
pub(super) fn due_time(now: i64, digest_secs: Option<u64>) -> i64 {
    match digest_secs.filter(|secs| *secs > 0) {
        Some(secs) => {
            let window = i64::try_from(secs)
                .unwrap_or(i64::MAX / 1000)
                .saturating_mul(1000);
            now.div_euclid(window)
                .saturating_add(1)
                .saturating_mul(window)
        }
        None => now,
    }
}

/// The delivery key a receiver deduplicates on: hex SHA-256 over the item key, rule
/// and notifier. Encoded as a JSON array first so no two triples hash the same input.
pub fn idempotency_key(item_key: &str, rule: &str, notifier: &str) -> String {
    let input = serde_json::Value::from(vec![item_key, rule, notifier]).to_string();
    hex::encode(Sha256::digest(input.as_bytes()))
}

fn authors_json(authors: &[String]) -> String {
    serde_json::Value::from(authors.to_vec()).to_string()
}

/// A timestamp as the store keeps it: RFC 3339 with its offset.
fn rfc3339(t: Timestamp) -> String {
    t.to_rfc3339()
}

fn non_empty(text: Option<&str>) -> Option<&str> {
    text.filter(|t| !t.is_empty())
}

/// The SQLite statements of an ingest, on the transaction's connection.
impl IngestSql for &Connection {
    fn capture_exists(&mut self, source: &str, hash: &str) -> Result<bool, StoreError> {
        capture_exists(self, source, hash)
    }

    fn alias_owner(&mut self, alias: &str) -> Result<Option<(i64, Option<String>)>, StoreError> {
        let mut stmt = self
            .prepare_cached(ALIAS_OWNER)
            .ctx("preparing the alias lookup")?;
        stmt.query_row([alias], |row| Ok((row.get(0)?, row.get(1)?)))
            .optional()
            .ctx("looking up an alias")
    }

    fn item_by_id(&mut self, id: i64) -> Result<Option<StoredItem>, StoreError> {
        let mut stmt = self.prepare_cached(BY_ID).ctx("preparing the item read")?;
        stmt.query_row([id], item_from_row)
            .optional()
            .ctx("reading a known item")
    }

    fn add_alias(&mut self, alias: &str, item_id: i64) -> Result<bool, StoreError> {
        let mut stmt = self
            .prepare_cached("INSERT OR IGNORE INTO item_keys (alias, item_id) VALUES (?1, ?2)")
            .ctx("preparing the alias insert")?;
        let added = stmt
            .execute(params![alias, item_id])
            .ctx("recording an alias")?;
        Ok(added > 0)
    }

    fn add_source(&mut self, item_id: i64, source: &str, now: i64) -> Result<bool, StoreError> {
        let mut stmt = self
            .prepare_cached(
                "INSERT OR IGNORE INTO item_sources (source, item_id, first_seen)
                 VALUES (?1, ?2, ?3)",
            )
            .ctx("preparing the item source insert")?;
        let added = stmt
            .execute(params![source, item_id, now])
            .ctx("recording an item's source")?;
        Ok(added > 0)
    }

    fn item_scopes(
        &mut self,
        item_id: i64,
        scopes: &mut BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .prepare_cached(ITEM_SCOPES)
            .ctx("preparing the item scope lookup")?;
        let rows = stmt
            .query_map([item_id], |row| row.get::<_, String>(0))
            .ctx("looking up an item's feeds")?;
        for scope in rows {
            scopes.insert(scope.ctx("reading an item's feeds")?);
        }
        Ok(())
    }

    fn insert_item(&mut self, item: &NewItem<'_>) -> Result<Option<i64>, StoreError> {
        let mut stmt = self
            .prepare_cached(
                "INSERT INTO items (key, title, link, summary, authors, author_count, publisher,
                                    source, published, arxiv_id, format, first_seen, updated_at,
                                    ident, listed, changed)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14, ?15)",
            )
            .ctx("preparing the item insert")?;
        let inserted = stmt.execute(params![
            item.key,
            item.title,
            item.link,
            item.summary,
            item.authors,
            item.author_count,
            item.publisher,
            item.source,
            item.published,
            item.arxiv_id,
            item.format,
            item.now,
            item.ident,
            item.listed,
            item.changed,
        ]);
        match inserted {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
            {
                Ok(None)
            }
            other => {
                other.ctx("inserting an item")?;
                Ok(Some(self.last_insert_rowid()))
            }
        }
    }

    fn key_exists(&mut self, key: &str) -> Result<bool, StoreError> {
        let mut stmt = self
            .prepare_cached(KEY_EXISTS)
            .ctx("preparing the key lookup")?;
        stmt.exists([key]).ctx("looking up an item key")
    }

    fn update_item(&mut self, update: &ItemUpdate<'_>) -> Result<(), StoreError> {
        let mut stmt = self
            .prepare_cached(
                "UPDATE items SET summary = ?2, link = ?3, authors = ?4, author_count = ?5,
                                  publisher = ?6, published = ?7, arxiv_id = ?8, updated_at = ?9,
                                  ident = ?10
                  WHERE id = ?1",
            )
            .ctx("preparing the item update")?;
        stmt.execute(params![
            update.id,
            update.summary,
            update.link,
            update.authors,
            update.author_count,
            update.publisher,
            update.published,
            update.arxiv_id,
            update.now,
            update.ident,
        ])
        .ctx("updating an item")?;
        Ok(())
    }

    fn insert_match(
        &mut self,
        rule: &str,
        item_id: i64,
        words: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut stmt = self
            .prepare_cached(
                "INSERT OR IGNORE INTO matches (rule, item_id, matched, at)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .ctx("preparing the match insert")?;
        stmt.execute(params![rule, item_id, words, now])
            .ctx("recording a match")?;
        Ok(())
    }

    fn enqueue(&mut self, row: &OutboxRow<'_>) -> Result<bool, StoreError> {
        let mut stmt = self
            .prepare_cached(
                "INSERT OR IGNORE INTO outbox
                        (item_id, rule, notifier, idempotency_key, matched, next_attempt,
                         created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .ctx("preparing the outbox insert")?;
        let queued = stmt
            .execute(params![
                row.item_id,
                row.rule,
                row.notifier,
                row.key,
                row.matched,
                row.due,
                row.now
            ])
            .ctx("enqueueing a delivery")?;
        Ok(queued > 0)
    }

    fn record_capture(&mut self, capture: &CaptureRow<'_>) -> Result<(), StoreError> {
        let mut stmt = self
            .prepare_cached(
                "INSERT OR IGNORE INTO captures
                        (hash, source, origin, format, entries, new_items, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .ctx("preparing the capture record")?;
        stmt.execute(params![
            capture.hash,
            capture.source,
            capture.origin,
            capture.format,
            capture.entries,
            capture.new_items,
            capture.now,
        ])
        .ctx("recording the capture")?;
        Ok(())
    }

    fn bump_generation(&mut self, now: i64, new_items: i64) -> Result<(), StoreError> {
        let mut stmt = self
            .prepare_cached(
                "UPDATE generation SET value = value + 1, changed_at = MAX(changed_at, ?1),
                                       items = items + ?2
                  WHERE id = 1",
            )
            .ctx("preparing the generation bump")?;
        stmt.execute(params![now, new_items])
            .ctx("bumping the generation")?;
        Ok(())
    }

    fn scope_changed(&mut self, scope: &str) -> Result<(), StoreError> {
        let mut stmt = self
            .prepare_cached(
                "INSERT INTO scope_changes (scope, generation)
                      SELECT ?1, value FROM generation WHERE id = 1
                 ON CONFLICT (scope) DO UPDATE SET generation = excluded.generation",
            )
            .ctx("preparing the scope change record")?;
        stmt.execute([scope]).ctx("recording a feed scope change")?;
        Ok(())
    }

    fn next_generation(&mut self) -> Result<i64, StoreError> {
        self.prepare_cached("SELECT value + 1 FROM generation WHERE id = 1")
            .ctx("preparing the generation read")?
            .query_row([], |row| row.get(0))
            .ctx("reading the generation")
    }

    fn mark_changed(&mut self, item_id: i64, generation: i64) -> Result<(), StoreError> {
        self.prepare_cached("UPDATE items SET changed = ?2 WHERE id = ?1")
            .ctx("preparing the item change mark")?
            .execute(params![item_id, generation])
            .ctx("marking an item changed")?;
        Ok(())
    }

    fn record_interest(
        &mut self,
        interest: &str,
        item_id: i64,
        score: f64,
        terms: &str,
        seen: i64,
    ) -> Result<(), StoreError> {
        self.prepare_cached(
            "INSERT OR REPLACE INTO interest_scores (interest, item_id, score, terms, seen)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .ctx("preparing the interest score insert")?
        .execute(params![interest, item_id, score, terms, seen])
        .ctx("recording an interest score")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_decide_whether_a_shared_alias_is_one_thing() {
        // A text capture (no id) is whatever item its title names.
        assert!(same_thing(None, Some("arxiv:2110.03336"), true));
        assert!(same_thing(Some("arxiv:2110.03336"), None, true));
        // A post titled like a paper is not the paper.
        assert!(!same_thing(
            Some("guid:p42"),
            Some("arxiv:2110.03336"),
            true
        ));
        assert!(!same_thing(Some("arxiv:1"), Some("arxiv:2"), true));
        // By id: the same id, or a link that a guid now names.
        assert!(same_thing(Some("arxiv:1"), Some("arxiv:1"), false));
        assert!(same_thing(
            Some("guid:a"),
            Some("url:https://x.org/a"),
            false
        ));
        assert!(!same_thing(Some("guid:a"), Some("guid:b"), false));
    }

    #[test]
    fn digest_due_time_is_the_end_of_an_epoch_aligned_window() {
        assert_eq!(due_time(1_000, None), 1_000);
        assert_eq!(due_time(1_000, Some(0)), 1_000);
        assert_eq!(due_time(1_000, Some(900)), 900_000);
        assert_eq!(due_time(899_999, Some(900)), 900_000);
        assert_eq!(due_time(900_000, Some(900)), 1_800_000);
    }

    #[test]
    fn idempotency_key_is_stable_and_separates_fields() {
        let a = idempotency_key("arxiv:1", "rule", "hook");
        assert_eq!(a, idempotency_key("arxiv:1", "rule", "hook"));
        assert_eq!(a.len(), 64);
        assert_ne!(
            idempotency_key("a", "bc", "d"),
            idempotency_key("ab", "c", "d")
        );
    }
}
