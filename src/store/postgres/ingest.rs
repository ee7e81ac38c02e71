//! The PostgreSQL statements of an ingest; the rules are [`crate::store`]'s
//! `ingest_in`, shared with SQLite.
//!
//! Every statement is a round trip to the server, and the rules ask one thing at a
//! time (an alias's owner, then an insert, then the next alias...). So an ingest runs
//! through [`Batched`]: once per page it reads ahead what the page's steps will ask
//! (every alias's owner, each owner's row and whether the page's source has seen it,
//! which keys are taken, the capture and the generation) in one query, answers the
//! steps from that, and holds back the writes nobody reads within the transaction,
//! sending each table's rows as one `unnest` statement before the next read and before
//! commit. The ingest lock makes the read-ahead exact: no other ingest writes these
//! tables until this one commits.

use std::collections::{BTreeSet, HashMap, HashSet};

use postgres::GenericClient;

use super::queries::{item_from_row, BY_ID};
use super::{col, PostgresStore, Session};
use crate::entry::Entry;
use crate::store::ingest::{ingest_in, CaptureRow, IngestSql, ItemUpdate, NewItem, OutboxRow};
use crate::store::items::{item_columns, ITEM_COLUMN_COUNT};
use crate::store::{Ingest, IngestReport, Matcher, StoreError, StoredItem};

/// The lock every ingest holds until it commits: which entry is which item is decided
/// by one writer at a time, as on SQLite, so two replicas ingesting the same new paper
/// at once make one item ("lookout" in ASCII, then 2).
pub(super) const INGEST_LOCK: i64 = 0x6c6f_6f6b_6f75_7402;

/// The channel a committed change is announced on, for other replicas' feed caches.
pub const CHANGES_CHANNEL: &str = "lookout_changes";

impl PostgresStore {
    /// See [`StoreBackend::ingest_all`](crate::store::StoreBackend::ingest_all).
    pub(super) fn ingest_batches(
        &self,
        batches: &[Ingest<'_>],
        matcher: &dyn Matcher,
    ) -> Result<Vec<IngestReport>, StoreError> {
        self.in_transaction(|session| {
            session.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&INGEST_LOCK],
                "taking the ingest lock",
            )?;
            let mut db = Batched::new(session);
            let reports = batches
                .iter()
                .map(|batch| ingest_in(&mut db, batch, matcher))
                .collect::<Result<Vec<_>, _>>()?;
            db.flush()?;
            Ok(reports)
        })
    }
}

/// An optional count as the database keeps it.
fn opt_count(n: Option<u32>) -> Option<i64> {
    n.map(i64::from)
}

/// The statements [`Batched`] sends itself when its read-ahead does not know the answer
/// (and, for `capture_exists`, a lookup outside an ingest): one round trip each. What
/// only writes goes through `Batched`'s write-behind alone.
impl<C: postgres::GenericClient> Session<'_, C> {
    /// Whether `source` stored a capture of `hash`.
    pub(super) fn capture_exists(&mut self, source: &str, hash: &str) -> Result<bool, StoreError> {
        let row = self.query_opt(
            "SELECT 1 FROM captures WHERE source = $1 AND hash = $2",
            &[&source, &hash],
            "looking up a capture",
        )?;
        Ok(row.is_some())
    }

    fn alias_owner(&mut self, alias: &str) -> Result<Option<(i64, Option<String>)>, StoreError> {
        let row = self.query_opt(
            "SELECT i.id, i.ident FROM item_keys k JOIN items i ON i.id = k.item_id
              WHERE k.alias = $1",
            &[&alias],
            "looking up an alias",
        )?;
        row.map(|row| Ok((col(&row, 0, "items.id")?, col(&row, 1, "items.ident")?)))
            .transpose()
    }

    fn item_by_id(&mut self, id: i64) -> Result<Option<StoredItem>, StoreError> {
        let row = self.query_opt(BY_ID, &[&id], "reading a known item")?;
        row.map(|row| item_from_row(&row)).transpose()
    }

    fn add_alias(&mut self, alias: &str, item_id: i64) -> Result<bool, StoreError> {
        let added = self.execute(
            "INSERT INTO item_keys (alias, item_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&alias, &item_id],
            "recording an alias",
        )?;
        Ok(added > 0)
    }

    fn add_source(&mut self, item_id: i64, source: &str, now: i64) -> Result<bool, StoreError> {
        let added = self.execute(
            "INSERT INTO item_sources (source, item_id, first_seen) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
            &[&source, &item_id, &now],
            "recording an item's source",
        )?;
        Ok(added > 0)
    }

    fn item_scopes(
        &mut self,
        item_id: i64,
        scopes: &mut BTreeSet<String>,
    ) -> Result<(), StoreError> {
        let rows = self.query(
            "SELECT 'source:' || source FROM item_sources WHERE item_id = $1
             UNION ALL SELECT 'rule:' || rule FROM matches WHERE item_id = $1",
            &[&item_id],
            "looking up an item's feeds",
        )?;
        for row in rows {
            scopes.insert(col(&row, 0, "scope")?);
        }
        Ok(())
    }

    fn insert_item(&mut self, item: &NewItem<'_>) -> Result<Option<i64>, StoreError> {
        let row = self.query_opt(
            "INSERT INTO items (key, title, link, summary, authors, author_count, publisher,
                                source, published, arxiv_id, format, first_seen, updated_at,
                                ident, listed, changed)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, $14, $15)
             ON CONFLICT (key) DO NOTHING
             RETURNING id",
            &[
                &item.key,
                &item.title,
                &item.link,
                &item.summary,
                &item.authors,
                &opt_count(item.author_count),
                &item.publisher,
                &item.source,
                &item.published,
                &item.arxiv_id,
                &item.format,
                &item.now,
                &item.ident,
                &item.listed,
                &item.changed,
            ],
            "inserting an item",
        )?;
        row.map(|row| col(&row, 0, "items.id")).transpose()
    }

    fn key_exists(&mut self, key: &str) -> Result<bool, StoreError> {
        let row = self.query_opt(
            "SELECT 1 FROM items WHERE key = $1",
            &[&key],
            "looking up an item key",
        )?;
        Ok(row.is_some())
    }

    fn update_item(&mut self, update: &ItemUpdate<'_>) -> Result<(), StoreError> {
        self.execute(
            "UPDATE items SET summary = $2, link = $3, authors = $4, author_count = $5,
                              publisher = $6, published = $7, arxiv_id = $8, updated_at = $9,
                              ident = $10
              WHERE id = $1",
            &[
                &update.id,
                &update.summary,
                &update.link,
                &update.authors,
                &opt_count(update.author_count),
                &update.publisher,
                &update.published,
                &update.arxiv_id,
                &update.now,
                &update.ident,
            ],
            "updating an item",
        )?;
        Ok(())
    }

    fn enqueue(&mut self, row: &OutboxRow<'_>) -> Result<bool, StoreError> {
        let queued = self.execute(
            "INSERT INTO outbox
                    (item_id, rule, notifier, idempotency_key, matched, next_attempt, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING",
            &[
                &row.item_id,
                &row.rule,
                &row.notifier,
                &row.key,
                &row.matched,
                &row.due,
                &row.now,
            ],
            "enqueueing a delivery",
        )?;
        Ok(queued > 0)
    }

    fn next_generation(&mut self) -> Result<i64, StoreError> {
        let row = self.query_one(
            "SELECT value + 1 FROM generation WHERE id = 1",
            &[],
            "reading the generation",
        )?;
        col(&row, 0, "generation.value")
    }
}

/// Reads every alias of a page ($1; $2 marks the first alias of an entry, its key)
/// with its owner, in one statement: the owner's row ([`item_columns!`]), its
/// identity, the alias, whether an item holds the alias as its key (asked only for a
/// free alias: an entry whose key alias is held is rarely new), whether the
/// page's source ($3) has seen the owner; then the next generation and whether the
/// capture ($4) is recorded. The generation row makes one row even for no aliases.
const READ_AHEAD: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", i.ident, a.alias,
            a.is_key AND k.alias IS NULL
                AND EXISTS (SELECT 1 FROM items t WHERE t.key = a.alias),
            EXISTS (SELECT 1 FROM item_sources s WHERE s.source = $3 AND s.item_id = i.id),
            g.value + 1,
            EXISTS (SELECT 1 FROM captures c WHERE c.source = $3 AND c.hash = $4)
       FROM generation g
       LEFT JOIN (unnest($1::text[], $2::bool[]) AS a (alias, is_key)
                  LEFT JOIN item_keys k ON k.alias = a.alias
                  LEFT JOIN items i ON i.id = k.item_id) ON true
      WHERE g.id = 1"
);

/// `$1` new item ids, drawn from the items' identity sequence as its default would.
const DRAW_IDS: &str = "SELECT nextval(pg_get_serial_sequence('items', 'id'))
                          FROM generate_series(1, $1::bigint)";

/// The new items held back, one array per column.
const INSERT_ITEMS: &str =
    "INSERT INTO items (id, key, title, link, summary, authors, author_count, publisher, source,
                        published, arxiv_id, format, first_seen, updated_at, ident, listed,
                        changed)
     SELECT id, key, title, link, summary, authors, author_count, publisher, source,
            published, arxiv_id, format, now, now, ident, listed, changed
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                   $7::bigint[], $8::text[], $9::text[], $10::text[], $11::text[],
                   $12::text[], $13::bigint[], $14::text[], $15::text[], $16::bigint[])
            AS u (id, key, title, link, summary, authors, author_count, publisher, source,
                  published, arxiv_id, format, now, ident, listed, changed)";

const INSERT_ALIASES: &str = "INSERT INTO item_keys (alias, item_id)
     SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING";

const INSERT_SOURCES: &str = "INSERT INTO item_sources (source, item_id, first_seen)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) ON CONFLICT DO NOTHING";

const INSERT_MATCHES: &str = "INSERT INTO matches (rule, item_id, matched, at)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[])
     ON CONFLICT DO NOTHING";

const UPSERT_INTERESTS: &str = "INSERT INTO interest_scores (interest, item_id, score, terms, seen)
     SELECT * FROM unnest($1::text[], $2::bigint[], $3::float8[], $4::text[], $5::bigint[])
     ON CONFLICT (interest, item_id) DO UPDATE
        SET score = EXCLUDED.score, terms = EXCLUDED.terms, seen = EXCLUDED.seen";

const INSERT_CAPTURES: &str =
    "INSERT INTO captures (hash, source, origin, format, entries, new_items, seen_at)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[],
                          $6::bigint[], $7::bigint[])
     ON CONFLICT DO NOTHING";

const MARK_CHANGED: &str = "UPDATE items SET changed = u.generation
      FROM unnest($1::bigint[], $2::bigint[]) AS u (id, generation)
     WHERE items.id = u.id";

/// The generation bump, the scopes ($3) it changed, and the announcement, in one
/// statement (see `bump_generation` and `scope_changed` of the direct statements).
const BUMP_AND_SCOPES: &str = "WITH g AS (
         UPDATE generation SET value = value + 1, changed_at = GREATEST(changed_at, $1),
                               items = items + $2
          WHERE id = 1 RETURNING value),
     s AS (
         INSERT INTO scope_changes (scope, generation)
         SELECT scope, g.value FROM unnest($3::text[]) AS scope, g
         ON CONFLICT (scope) DO UPDATE SET generation = EXCLUDED.generation)
     SELECT pg_notify($4, '') FROM g";

/// Scope changes without a bump held back: at the current generation.
const SCOPES: &str = "INSERT INTO scope_changes (scope, generation)
     SELECT scope, g.value FROM unnest($1::text[]) AS scope, generation g WHERE g.id = 1
     ON CONFLICT (scope) DO UPDATE SET generation = EXCLUDED.generation";

/// An ingest transaction's statements, read ahead per page and written behind (see the
/// module's doc). What the read-ahead does not cover (an alias outside the page, a
/// `#n` key, an item inserted in this transaction) and every statement whose answer
/// only the server has (an outbox insert, an update, an item's feeds) go to the server
/// as they come, after the rows held back.
struct Batched<'s, 'a, C: GenericClient> {
    db: &'s mut Session<'a, C>,
    ahead: Ahead,
    behind: Behind,
    /// Item ids drawn from the sequence and not used yet, in order.
    ids: std::collections::VecDeque<i64>,
}

/// What the read-ahead of the current page knows; the steps keep it current.
#[derive(Default)]
struct Ahead {
    /// The page's capture: its source and hash, and whether it is recorded.
    capture: Option<(String, String, bool)>,
    /// The generation the page's change will be, until the page bumps it.
    next_generation: Option<i64>,
    /// Each alias of the page and the item that holds it, `None` when free.
    owners: HashMap<String, Option<i64>>,
    /// The identity of every item in `owners`.
    idents: HashMap<i64, Option<String>>,
    /// The rows of the items in `owners` as read, until updated.
    rows: HashMap<i64, StoredItem>,
    /// Whether a source has seen an item, for the page's source and the items above.
    sources: HashMap<(i64, String), bool>,
    /// Whether an item holds a key, for every entry's first alias that no item holds.
    keys: HashMap<String, bool>,
    /// How many entries have no alias held: how many ids the page may need.
    may_be_new: usize,
}

/// Rows held back until the next read or the commit, one vector per column.
#[derive(Default)]
struct Behind {
    items: NewItems,
    /// Row index in `items` by item id: a change mark for an item not inserted yet
    /// goes into its row.
    item_rows: HashMap<i64, usize>,
    aliases: (Vec<String>, Vec<i64>),
    sources: (Vec<String>, Vec<i64>, Vec<i64>),
    matches: (Vec<String>, Vec<i64>, Vec<String>, Vec<i64>),
    /// Interest scores; `interest_keys` makes a second score of one pair replace the
    /// first, as the upsert would.
    interests: Interests,
    interest_keys: HashMap<(String, i64), usize>,
    captures: Captures,
    changed: (Vec<i64>, Vec<i64>),
    /// The generation bump: its time and new items.
    bump: Option<(i64, i64)>,
    scopes: BTreeSet<String>,
}

/// New items' columns, as [`INSERT_ITEMS`] takes them.
#[derive(Default)]
struct NewItems {
    id: Vec<i64>,
    key: Vec<String>,
    title: Vec<String>,
    link: Vec<Option<String>>,
    summary: Vec<String>,
    authors: Vec<String>,
    author_count: Vec<Option<i64>>,
    publisher: Vec<Option<String>>,
    source: Vec<String>,
    published: Vec<Option<String>>,
    arxiv_id: Vec<Option<String>>,
    format: Vec<String>,
    now: Vec<i64>,
    ident: Vec<Option<String>>,
    listed: Vec<Option<String>>,
    changed: Vec<i64>,
}

impl NewItems {
    fn push(&mut self, id: i64, item: &NewItem<'_>) {
        let owned = |s: Option<&str>| s.map(str::to_owned);
        self.id.push(id);
        self.key.push(item.key.to_owned());
        self.title.push(item.title.to_owned());
        self.link.push(owned(item.link));
        self.summary.push(item.summary.to_owned());
        self.authors.push(item.authors.clone());
        self.author_count.push(opt_count(item.author_count));
        self.publisher.push(owned(item.publisher));
        self.source.push(item.source.to_owned());
        self.published.push(item.published.clone());
        self.arxiv_id.push(item.arxiv_id.clone());
        self.format.push(item.format.to_owned());
        self.now.push(item.now);
        self.ident.push(owned(item.ident));
        self.listed.push(item.listed.clone());
        self.changed.push(item.changed);
    }
}

/// Interest scores' columns, as [`UPSERT_INTERESTS`] takes them.
#[derive(Default)]
struct Interests {
    interest: Vec<String>,
    item: Vec<i64>,
    score: Vec<f64>,
    terms: Vec<String>,
    seen: Vec<i64>,
}

/// Captures' columns, as [`INSERT_CAPTURES`] takes them.
#[derive(Default)]
struct Captures {
    hash: Vec<String>,
    source: Vec<String>,
    origin: Vec<String>,
    format: Vec<String>,
    entries: Vec<i64>,
    new_items: Vec<i64>,
    now: Vec<i64>,
}

impl<'s, 'a, C: GenericClient> Batched<'s, 'a, C> {
    fn new(db: &'s mut Session<'a, C>) -> Self {
        Batched {
            db,
            ahead: Ahead::default(),
            behind: Behind::default(),
            ids: std::collections::VecDeque::new(),
        }
    }

    /// The session for a statement sent as it comes, after the rows held back.
    fn direct(&mut self) -> Result<&mut Session<'a, C>, StoreError> {
        self.flush()?;
        Ok(&mut *self.db)
    }

    /// Sends the rows held back, parents first (items before the rows that point at
    /// them), the generation bump and its scopes last.
    fn flush(&mut self) -> Result<(), StoreError> {
        let behind = std::mem::take(&mut self.behind);
        let db = &mut *self.db;
        let items = &behind.items;
        if !items.id.is_empty() {
            db.execute(
                INSERT_ITEMS,
                &[
                    &items.id,
                    &items.key,
                    &items.title,
                    &items.link,
                    &items.summary,
                    &items.authors,
                    &items.author_count,
                    &items.publisher,
                    &items.source,
                    &items.published,
                    &items.arxiv_id,
                    &items.format,
                    &items.now,
                    &items.ident,
                    &items.listed,
                    &items.changed,
                ],
                "inserting items",
            )?;
        }
        let (alias, item) = &behind.aliases;
        if !alias.is_empty() {
            db.execute(INSERT_ALIASES, &[alias, item], "recording aliases")?;
        }
        let (source, item, now) = &behind.sources;
        if !source.is_empty() {
            db.execute(
                INSERT_SOURCES,
                &[source, item, now],
                "recording items' sources",
            )?;
        }
        let (rule, item, words, at) = &behind.matches;
        if !rule.is_empty() {
            db.execute(
                INSERT_MATCHES,
                &[rule, item, words, at],
                "recording matches",
            )?;
        }
        let i = &behind.interests;
        if !i.interest.is_empty() {
            db.execute(
                UPSERT_INTERESTS,
                &[&i.interest, &i.item, &i.score, &i.terms, &i.seen],
                "recording interest scores",
            )?;
        }
        let c = &behind.captures;
        if !c.hash.is_empty() {
            db.execute(
                INSERT_CAPTURES,
                &[
                    &c.hash,
                    &c.source,
                    &c.origin,
                    &c.format,
                    &c.entries,
                    &c.new_items,
                    &c.now,
                ],
                "recording captures",
            )?;
        }
        let (item, generation) = &behind.changed;
        if !item.is_empty() {
            db.execute(MARK_CHANGED, &[item, generation], "marking items changed")?;
        }
        let scopes: Vec<&str> = behind.scopes.iter().map(String::as_str).collect();
        if let Some((now, new_items)) = behind.bump {
            db.query(
                BUMP_AND_SCOPES,
                &[&now, &new_items, &scopes, &CHANGES_CHANNEL],
                "bumping the generation",
            )?;
        } else if !scopes.is_empty() {
            db.execute(SCOPES, &[&scopes], "recording feed scope changes")?;
        }
        Ok(())
    }

    /// The next unused item id, drawing as many as the page may need when none is
    /// left.
    fn next_id(&mut self) -> Result<i64, StoreError> {
        if self.ids.is_empty() {
            let n = i64::try_from(self.ahead.may_be_new.max(1)).unwrap_or(i64::MAX);
            self.ahead.may_be_new = 0;
            let rows = self.db.query(DRAW_IDS, &[&n], "drawing item ids")?;
            for row in rows {
                self.ids.push_back(col(&row, 0, "items.id")?);
            }
        }
        self.ids.pop_front().ok_or(StoreError::Value {
            column: "items.id",
            detail: "the sequence gave no id".to_owned(),
        })
    }
}

/// Every alias of a page's entries once, and whether it is an entry's first (its key);
/// with each entry's aliases.
fn page_aliases(entries: &[Entry]) -> (Vec<String>, Vec<bool>, Vec<Vec<String>>) {
    let mut index: HashMap<String, usize> = HashMap::new();
    let (mut aliases, mut is_key) = (Vec::new(), Vec::new());
    let per_entry: Vec<Vec<String>> = entries.iter().map(Entry::aliases).collect();
    for entry in &per_entry {
        for (n, alias) in entry.iter().enumerate() {
            let at = *index.entry(alias.clone()).or_insert_with(|| {
                aliases.push(alias.clone());
                is_key.push(false);
                aliases.len() - 1
            });
            is_key[at] |= n == 0;
        }
    }
    (aliases, is_key, per_entry)
}

impl<C: GenericClient> IngestSql for Batched<'_, '_, C> {
    fn prefetch(&mut self, batch: &Ingest<'_>) -> Result<(), StoreError> {
        self.flush()?;
        self.ahead = Ahead::default();
        let (aliases, is_key, per_entry) = page_aliases(batch.entries);
        let rows = self.db.query(
            READ_AHEAD,
            &[&aliases, &is_key, &batch.source, &batch.content_hash],
            "reading the page's aliases ahead",
        )?;
        // Only entries' first aliases that no item holds are looked up as keys (the
        // key column is false for the rest, which says nothing: those go to the
        // server if an entry turns out new after all).
        let keys: HashSet<&str> = aliases
            .iter()
            .zip(&is_key)
            .filter(|(_, key)| **key)
            .map(|(alias, _)| alias.as_str())
            .collect();
        let ahead = &mut self.ahead;
        let at = ITEM_COLUMN_COUNT;
        for row in &rows {
            if ahead.next_generation.is_none() {
                ahead.next_generation = Some(col(row, at + 4, "generation.value")?);
                if let Some(hash) = batch.content_hash {
                    let known = col(row, at + 5, "captures")?;
                    ahead.capture = Some((batch.source.to_owned(), hash.to_owned(), known));
                }
            }
            let Some(alias) = col::<Option<String>>(row, at + 1, "item_keys.alias")? else {
                continue;
            };
            let owner: Option<i64> = col(row, 0, "items.id")?;
            if owner.is_none() && keys.contains(alias.as_str()) {
                ahead
                    .keys
                    .insert(alias.clone(), col(row, at + 2, "items.key")?);
            }
            if let Some(id) = owner {
                if let std::collections::hash_map::Entry::Vacant(slot) = ahead.rows.entry(id) {
                    slot.insert(item_from_row(row)?);
                    ahead.idents.insert(id, col(row, at, "items.ident")?);
                    let seen = col(row, at + 3, "item_sources")?;
                    ahead.sources.insert((id, batch.source.to_owned()), seen);
                }
            }
            ahead.owners.insert(alias, owner);
        }
        ahead.may_be_new = per_entry
            .iter()
            .filter(|entry| {
                !entry.is_empty()
                    && entry
                        .iter()
                        .all(|alias| matches!(ahead.owners.get(alias), Some(None)))
            })
            .count();
        Ok(())
    }

    fn capture_exists(&mut self, source: &str, hash: &str) -> Result<bool, StoreError> {
        if let Some((s, h, known)) = &self.ahead.capture {
            if s == source && h == hash {
                return Ok(*known);
            }
        }
        self.direct()?.capture_exists(source, hash)
    }

    fn alias_owner(&mut self, alias: &str) -> Result<Option<(i64, Option<String>)>, StoreError> {
        match self.ahead.owners.get(alias) {
            Some(None) => return Ok(None),
            Some(Some(id)) => {
                if let Some(ident) = self.ahead.idents.get(id) {
                    return Ok(Some((*id, ident.clone())));
                }
            }
            None => {}
        }
        self.direct()?.alias_owner(alias)
    }

    fn item_by_id(&mut self, id: i64) -> Result<Option<StoredItem>, StoreError> {
        if let Some(item) = self.ahead.rows.get(&id) {
            return Ok(Some(item.clone()));
        }
        self.direct()?.item_by_id(id)
    }

    fn add_alias(&mut self, alias: &str, item_id: i64) -> Result<bool, StoreError> {
        match self.ahead.owners.get_mut(alias) {
            Some(Some(_)) => Ok(false),
            Some(owner @ None) => {
                *owner = Some(item_id);
                self.behind.aliases.0.push(alias.to_owned());
                self.behind.aliases.1.push(item_id);
                Ok(true)
            }
            None => self.direct()?.add_alias(alias, item_id),
        }
    }

    fn add_source(&mut self, item_id: i64, source: &str, now: i64) -> Result<bool, StoreError> {
        match self.ahead.sources.get_mut(&(item_id, source.to_owned())) {
            Some(true) => Ok(false),
            Some(seen @ false) => {
                *seen = true;
                let rows = &mut self.behind.sources;
                rows.0.push(source.to_owned());
                rows.1.push(item_id);
                rows.2.push(now);
                Ok(true)
            }
            None => {
                let added = self.direct()?.add_source(item_id, source, now)?;
                self.ahead
                    .sources
                    .insert((item_id, source.to_owned()), true);
                Ok(added)
            }
        }
    }

    fn item_scopes(
        &mut self,
        item_id: i64,
        scopes: &mut BTreeSet<String>,
    ) -> Result<(), StoreError> {
        self.direct()?.item_scopes(item_id, scopes)
    }

    fn insert_item(&mut self, item: &NewItem<'_>) -> Result<Option<i64>, StoreError> {
        match self.ahead.keys.get(item.key) {
            Some(true) => Ok(None),
            Some(false) => {
                let id = self.next_id()?;
                self.ahead.keys.insert(item.key.to_owned(), true);
                self.ahead.idents.insert(id, item.ident.map(str::to_owned));
                // A new item has no sources yet: the page's is recorded next.
                self.ahead
                    .sources
                    .insert((id, item.source.to_owned()), false);
                let behind = &mut self.behind;
                behind.item_rows.insert(id, behind.items.id.len());
                behind.items.push(id, item);
                Ok(Some(id))
            }
            None => self.direct()?.insert_item(item),
        }
    }

    fn key_exists(&mut self, key: &str) -> Result<bool, StoreError> {
        match self.ahead.keys.get(key) {
            Some(taken) => Ok(*taken),
            None => self.direct()?.key_exists(key),
        }
    }

    fn update_item(&mut self, update: &ItemUpdate<'_>) -> Result<(), StoreError> {
        self.direct()?.update_item(update)?;
        self.ahead.rows.remove(&update.id);
        self.ahead
            .idents
            .insert(update.id, update.ident.map(str::to_owned));
        Ok(())
    }

    fn insert_match(
        &mut self,
        rule: &str,
        item_id: i64,
        words: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let rows = &mut self.behind.matches;
        rows.0.push(rule.to_owned());
        rows.1.push(item_id);
        rows.2.push(words.to_owned());
        rows.3.push(now);
        Ok(())
    }

    fn enqueue(&mut self, row: &OutboxRow<'_>) -> Result<bool, StoreError> {
        self.direct()?.enqueue(row)
    }

    fn record_capture(&mut self, capture: &CaptureRow<'_>) -> Result<(), StoreError> {
        if let Some((s, h, known)) = &mut self.ahead.capture {
            if s == capture.source && h == capture.hash {
                *known = true;
            }
        }
        let c = &mut self.behind.captures;
        c.hash.push(capture.hash.to_owned());
        c.source.push(capture.source.to_owned());
        c.origin.push(capture.origin.to_owned());
        c.format.push(capture.format.to_owned());
        c.entries.push(capture.entries);
        c.new_items.push(capture.new_items);
        c.now.push(capture.now);
        Ok(())
    }

    fn bump_generation(&mut self, now: i64, new_items: i64) -> Result<(), StoreError> {
        // One bump per flush: a second one (a page without a read-ahead) sends the
        // first with its scopes.
        if self.behind.bump.is_some() {
            self.flush()?;
        }
        self.behind.bump = Some((now, new_items));
        self.ahead.next_generation = None;
        Ok(())
    }

    fn scope_changed(&mut self, scope: &str) -> Result<(), StoreError> {
        self.behind.scopes.insert(scope.to_owned());
        Ok(())
    }

    fn next_generation(&mut self) -> Result<i64, StoreError> {
        match self.ahead.next_generation {
            Some(generation) => Ok(generation),
            None => self.direct()?.next_generation(),
        }
    }

    fn mark_changed(&mut self, item_id: i64, generation: i64) -> Result<(), StoreError> {
        if let Some(&at) = self.behind.item_rows.get(&item_id) {
            self.behind.items.changed[at] = generation;
        } else {
            self.behind.changed.0.push(item_id);
            self.behind.changed.1.push(generation);
        }
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
        let rows = &mut self.behind.interests;
        match self
            .behind
            .interest_keys
            .get(&(interest.to_owned(), item_id))
        {
            Some(&at) => {
                (rows.score[at], rows.terms[at], rows.seen[at]) = (score, terms.to_owned(), seen);
            }
            None => {
                self.behind
                    .interest_keys
                    .insert((interest.to_owned(), item_id), rows.interest.len());
                rows.interest.push(interest.to_owned());
                rows.item.push(item_id);
                rows.score.push(score);
                rows.terms.push(terms.to_owned());
                rows.seen.push(seen);
            }
        }
        Ok(())
    }
}
