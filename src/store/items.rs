//! Reading items back: feed listings, counts, the generation counter.

use chrono::{DateTime, NaiveDate, Utc};
use rusqlite::OptionalExtension;

use crate::entry::{day_start, Timestamp};

use super::{bad_column, time_col, Ctx, ItemFilter, SqliteStore, StoreError, StoredItem};

/// The columns [`item_from_row`] reads, in its order, from `items` aliased `i`.
/// Joined queries put them first so the item always starts at column 0. A macro, not a
/// const, so queries can be `concat!`ed into consts the query-plan test can see.
macro_rules! item_columns {
    () => {
        "i.id, i.key, i.title, i.link, i.summary, i.authors, i.author_count, i.publisher, \
         i.source, i.published, i.arxiv_id, i.format, i.first_seen, i.updated_at, i.listed"
    };
}
pub(super) use item_columns;

/// How many columns [`item_columns!`] names: where a joined query's own columns start.
pub(super) const ITEM_COLUMN_COUNT: usize = 15;

/// Every item, newest first. Each listing ends with the time its feed orders by,
/// column [`ITEM_COLUMN_COUNT`].
pub(super) const LIST_ALL: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", i.first_seen FROM items i ORDER BY i.first_seen DESC, i.id DESC LIMIT ?1"
);

/// One source's items, by when that source first saw them.
pub(super) const LIST_SOURCE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", s.first_seen FROM item_sources s JOIN items i ON i.id = s.item_id WHERE s.source = ?2 \
      ORDER BY s.first_seen DESC, s.item_id DESC LIMIT ?1"
);

/// One rule's items, by match time.
pub(super) const LIST_RULE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", m.at FROM matches m JOIN items i ON i.id = m.item_id WHERE m.rule = ?2 \
      ORDER BY m.at DESC, m.item_id DESC LIMIT ?1"
);

/// Every item changed after generation ?1, in no order, with [`LIST_ALL`]'s order
/// column. The `changed` index bounds the walk to what changed.
pub(super) const CHANGED_ALL: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", i.first_seen FROM items i INDEXED BY items_changed WHERE i.changed > ?1"
);

/// One source's items changed after generation ?1. CROSS JOIN keeps the changed
/// items as the outer loop: the source's whole list is what this query avoids.
pub(super) const CHANGED_SOURCE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", s.first_seen FROM items i INDEXED BY items_changed CROSS JOIN item_sources s \
      WHERE i.changed > ?1 AND s.source = ?2 AND s.item_id = i.id"
);

/// One rule's items changed after generation ?1 (see [`CHANGED_SOURCE`]).
pub(super) const CHANGED_RULE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", m.at FROM items i INDEXED BY items_changed CROSS JOIN matches m \
      WHERE i.changed > ?1 AND m.rule = ?2 AND m.item_id = i.id"
);

/// A row when more than ?2 items changed after generation ?1: walks ?2 index
/// entries at most.
pub(super) const CHANGED_MORE_THAN: &str =
    "SELECT 1 FROM items INDEXED BY items_changed WHERE changed > ?1 LIMIT 1 OFFSET ?2";

/// The generation, and the generation of the last item delete, read together.
const GENERATION_AND_DELETE: &str = "SELECT value, deleted FROM generation WHERE id = 1";

/// The item an alias belongs to.
pub(super) const BY_ALIAS: &str = concat!(
    "SELECT ",
    item_columns!(),
    " FROM item_keys k JOIN items i ON i.id = k.item_id WHERE k.alias = ?1"
);

/// One item by row id.
pub(super) const BY_ID: &str = concat!("SELECT ", item_columns!(), " FROM items i WHERE i.id = ?1");

/// Decodes the item columns of a row selected with [`item_columns!`].
pub(super) fn item_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredItem> {
    let authors: String = row.get(5)?;
    let published: Option<String> = row.get(9)?;
    let listed: Option<String> = row.get(14)?;
    Ok(StoredItem {
        id: row.get(0)?,
        key: row.get(1)?,
        title: row.get(2)?,
        link: row.get(3)?,
        summary: row.get(4)?,
        authors: json_list(&authors, 5)?,
        author_count: row.get(6)?,
        publisher: row.get(7)?,
        source: row.get(8)?,
        published: published.map(|t| timestamp_col(&t, 9)).transpose()?,
        listed: listed.map(|t| timestamp_col(&t, 14)).transpose()?,
        arxiv_id: row.get(10)?,
        format: row.get(11)?,
        first_seen: time_col(row, 12)?,
        updated_at: time_col(row, 13)?,
    })
}

/// Decodes a timestamp stored in column `idx`: RFC 3339, or a bare `YYYY-MM-DD` as
/// schema 3 and before wrote it (that day's start in UTC).
fn timestamp_col(text: &str, idx: usize) -> rusqlite::Result<Timestamp> {
    parse_timestamp(text).map_err(|err| bad_column(idx, err))
}

/// A stored timestamp: RFC 3339, or a bare `YYYY-MM-DD` (that day's start in UTC).
pub(super) fn parse_timestamp(text: &str) -> Result<Timestamp, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).or_else(|err| {
        NaiveDate::parse_from_str(text, "%Y-%m-%d")
            .map(day_start)
            .map_err(|_| err)
    })
}

/// Decodes a JSON array of strings stored in column `idx`.
pub(super) fn json_list(text: &str, idx: usize) -> rusqlite::Result<Vec<String>> {
    serde_json::from_str(text).map_err(|err| bad_column(idx, err))
}

/// SQLite's LIMIT takes an i64; a limit beyond that is no limit.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// An item in a feed's listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// The item.
    pub item: StoredItem,
    /// The time the feed orders it by, unix ms: first seen for the all-items feed, when
    /// the source first saw it for a source's, when the rule matched it for a rule's.
    /// Ties go to the higher [`StoredItem::id`], as in [`Store::items`].
    pub order: i64,
}

/// A feed's items as of one store generation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    /// The generation the items were read at, in the same read transaction: every
    /// change up to it is in them, none after.
    pub generation: u64,
    /// The items ([`Store::listing`]: newest first; [`Store::changed_items`]: in no order).
    pub items: Vec<Listed>,
}

/// Decodes a listing row: the item, then its order column.
fn listed_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Listed> {
    Ok(Listed {
        item: item_from_row(row)?,
        order: row.get(ITEM_COLUMN_COUNT)?,
    })
}

/// The listing query of a feed scope and its name argument.
fn listing_query<'a>(filter: ItemFilter<'a>, changed: bool) -> (&'static str, Option<&'a str>) {
    match (filter, changed) {
        (ItemFilter::All, false) => (LIST_ALL, None),
        (ItemFilter::Source(source), false) => (LIST_SOURCE, Some(source)),
        (ItemFilter::Rule(rule), false) => (LIST_RULE, Some(rule)),
        (ItemFilter::All, true) => (CHANGED_ALL, None),
        (ItemFilter::Source(source), true) => (CHANGED_SOURCE, Some(source)),
        (ItemFilter::Rule(rule), true) => (CHANGED_RULE, Some(rule)),
    }
}

/// The least number of changed items past which [`Store::changed_items`] gives up
/// and the feed lists itself again: past a feed's length, a listing costs no more.
pub(super) const CHANGED_ITEMS_FLOOR: usize = 1_000;

impl SqliteStore {
    /// Up to `limit` items, newest first.
    ///
    /// [`ItemFilter::All`] orders by first-seen time; [`ItemFilter::Source`] by when that
    /// source first saw the item (a paper another source saw last month is new on this
    /// source's feed today); [`ItemFilter::Rule`] by when the rule matched. Ties go to
    /// the higher row id, so the order is total and stable between renders.
    pub fn items(
        &self,
        filter: ItemFilter<'_>,
        limit: usize,
    ) -> Result<Vec<StoredItem>, StoreError> {
        let listed = self.list(filter, false, sql_limit(limit))?;
        Ok(listed.into_iter().map(|l| l.item).collect())
    }

    /// Up to `limit` items of a feed, newest first (ordered as [`Store::items`]), with
    /// their order times and the generation they were read at.
    pub fn listing(&self, filter: ItemFilter<'_>, limit: usize) -> Result<Listing, StoreError> {
        let tx = self
            .conn
            .unchecked_transaction()
            .ctx("starting a listing read")?;
        let (generation, _) = self.generation_and_delete()?;
        let items = self.list(filter, false, sql_limit(limit))?;
        tx.finish().ctx("ending a listing read")?;
        Ok(Listing { generation, items })
    }

    /// The items of a feed that changed after generation `since` (inserted, updated,
    /// or new in the feed's source or rule), with the generation they were read at:
    /// what a feed listed at `since` applies to be current, at a cost in proportion to
    /// what changed. `None` when the change cannot be told that way and the feed must
    /// list itself again ([`Store::listing`]): an item was deleted since, or more items
    /// changed (in any feed) than `limit` or a thousand, whichever is more.
    pub fn changed_items(
        &self,
        filter: ItemFilter<'_>,
        since: u64,
        limit: usize,
    ) -> Result<Option<Listing>, StoreError> {
        let since_sql = i64::try_from(since).unwrap_or(i64::MAX);
        let tx = self
            .conn
            .unchecked_transaction()
            .ctx("starting a change read")?;
        let (generation, deleted) = self.generation_and_delete()?;
        let cap = sql_limit(limit.max(CHANGED_ITEMS_FLOOR));
        let too_many = self
            .conn
            .prepare_cached(CHANGED_MORE_THAN)
            .ctx("preparing the change count")?
            .exists(rusqlite::params![since_sql, cap])
            .ctx("counting changed items")?;
        let listing = if deleted > since || too_many {
            None
        } else if generation == since {
            Some(Vec::new())
        } else {
            Some(self.list(filter, true, since_sql)?)
        };
        tx.finish().ctx("ending a change read")?;
        Ok(listing.map(|items| Listing { generation, items }))
    }

    /// Runs a listing query: `first` is the LIMIT of a listing, the generation after
    /// which to list of a change.
    fn list(
        &self,
        filter: ItemFilter<'_>,
        changed: bool,
        first: i64,
    ) -> Result<Vec<Listed>, StoreError> {
        // A listing walks one index in order and stops after `limit` rows, a change
        // walks the changed items, so a feed render costs the same with a thousand
        // items stored or a million.
        let (sql, arg) = listing_query(filter, changed);
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .ctx("preparing an item listing")?;
        let rows = match arg {
            None => stmt.query_map(rusqlite::params![first], listed_from_row),
            Some(arg) => stmt.query_map(rusqlite::params![first, arg], listed_from_row),
        }
        .ctx("listing items")?;
        rows.collect::<Result<_, _>>().ctx("reading listed items")
    }

    /// The generation and the generation of the last item delete.
    fn generation_and_delete(&self) -> Result<(u64, u64), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(GENERATION_AND_DELETE)
            .ctx("preparing the generation query")?;
        let (value, deleted): (i64, i64) = stmt
            .query_row([], |row| Ok((row.get(0)?, row.get(1)?)))
            .ctx("reading the generation")?;
        Ok((
            u64::try_from(value).unwrap_or(0),
            u64::try_from(deleted).unwrap_or(0),
        ))
    }

    /// The item known by `key`: its guid key or any other alias it gathered
    /// (`arxiv:2401.00001`, `title:some paper`, `url:https://...`).
    pub fn item_by_key(&self, key: &str) -> Result<Option<StoredItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(BY_ALIAS)
            .ctx("preparing an item lookup")?;
        stmt.query_row([key], item_from_row)
            .optional()
            .ctx("looking up an item by key")
    }

    /// How many items are stored: a counter the ingest bumps (and a trigger lowers on
    /// deletes), so it costs the same at any size.
    pub fn item_count(&self) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT items FROM generation WHERE id = 1")
            .ctx("preparing the item count")?;
        let count: i64 = stmt.query_row([], |row| row.get(0)).ctx("counting items")?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// The change counter: it moves whenever anything a feed shows changed. Which
    /// feeds a change touched is in [`Store::scope_changes`].
    pub fn generation(&self) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT value FROM generation WHERE id = 1")
            .ctx("preparing the generation query")?;
        let value: i64 = stmt
            .query_row([], |row| row.get(0))
            .ctx("reading the generation")?;
        Ok(u64::try_from(value).unwrap_or(0))
    }

    /// When the newest change a feed can see was made (the feeds' `Last-Modified`);
    /// `None` while the store has never changed.
    pub fn last_change(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT changed_at FROM generation WHERE id = 1")
            .ctx("preparing the last-change query")?;
        let changed = stmt
            .query_row([], |row| {
                let ms: i64 = row.get(0)?;
                if ms == 0 {
                    Ok(None)
                } else {
                    time_col(row, 0).map(Some)
                }
            })
            .ctx("reading the last change time")?;
        Ok(changed)
    }

    /// Whether `source` already ingested a capture with this content hash.
    pub fn has_capture(&self, source: &str, hash: &str) -> Result<bool, StoreError> {
        super::ingest::capture_exists(&self.conn, source, hash)
    }
}
