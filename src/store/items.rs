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

/// Every item, newest first.
pub(super) const LIST_ALL: &str = concat!(
    "SELECT ",
    item_columns!(),
    " FROM items i ORDER BY i.first_seen DESC, i.id DESC LIMIT ?1"
);

/// One source's items, by when that source first saw them.
pub(super) const LIST_SOURCE: &str = concat!(
    "SELECT ",
    item_columns!(),
    " FROM item_sources s JOIN items i ON i.id = s.item_id WHERE s.source = ?2 \
      ORDER BY s.first_seen DESC, s.item_id DESC LIMIT ?1"
);

/// One rule's items, by match time.
pub(super) const LIST_RULE: &str = concat!(
    "SELECT ",
    item_columns!(),
    " FROM matches m JOIN items i ON i.id = m.item_id WHERE m.rule = ?2 \
      ORDER BY m.at DESC, m.item_id DESC LIMIT ?1"
);

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
        let limit = sql_limit(limit);
        // Each query walks one index in order and stops after `limit` rows, so a feed
        // render costs the same with a thousand items stored or a million.
        let (sql, arg) = match filter {
            ItemFilter::All => (LIST_ALL, None),
            ItemFilter::Source(source) => (LIST_SOURCE, Some(source)),
            ItemFilter::Rule(rule) => (LIST_RULE, Some(rule)),
        };
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .ctx("preparing an item listing")?;
        let rows = match arg {
            None => stmt.query_map(rusqlite::params![limit], item_from_row),
            Some(arg) => stmt.query_map(rusqlite::params![limit, arg], item_from_row),
        }
        .ctx("listing items")?;
        rows.collect::<Result<_, _>>().ctx("reading listed items")
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
