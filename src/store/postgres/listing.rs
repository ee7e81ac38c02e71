//! A feed's listing at a generation and what changed since one, on PostgreSQL: the
//! store delta of [`StoreBackend::listing`](crate::store::StoreBackend::listing) and
//! [`StoreBackend::changed_items`](crate::store::StoreBackend::changed_items), with
//! SQLite's meaning.

use postgres::Row;

use super::queries::{item_from_row, LIST_ALL, LIST_RULE, LIST_SOURCE};
use super::{col, PostgresStore, Session};
use crate::store::items::{item_columns, CHANGED_ITEMS_FLOOR, ITEM_COLUMN_COUNT};
use crate::store::{ItemFilter, Listed, Listing, StoreError};

/// Every item changed after generation $1, in no order, with [`LIST_ALL`]'s order
/// column; the `items_changed` index bounds the walk to what changed.
const CHANGED_ALL: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", i.first_seen FROM items i WHERE i.changed > $1"
);

/// One source's items changed after generation $1.
const CHANGED_SOURCE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", s.first_seen FROM items i JOIN item_sources s ON s.item_id = i.id \
      WHERE i.changed > $1 AND s.source = $2"
);

/// One rule's items changed after generation $1.
const CHANGED_RULE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", m.at FROM items i JOIN matches m ON m.item_id = i.id \
      WHERE i.changed > $1 AND m.rule = $2"
);

/// A row when more than $2 items changed after generation $1.
const CHANGED_MORE_THAN: &str = "SELECT 1 FROM items WHERE changed > $1 LIMIT 1 OFFSET $2";

/// The generation, and the generation of the last item delete, read together.
const GENERATION_AND_DELETE: &str = "SELECT value, deleted FROM generation WHERE id = 1";

/// Decodes a listing row: the item, then its order column.
fn listed_from_row(row: &Row) -> Result<Listed, StoreError> {
    Ok(Listed {
        item: item_from_row(row)?,
        order: col(row, ITEM_COLUMN_COUNT, "order")?,
    })
}

/// A count or generation as PostgreSQL takes it.
fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// Runs `f` in one read-only REPEATABLE READ transaction: every statement sees the
    /// same snapshot, so a listing and the generation it is read at agree.
    fn in_snapshot<T>(
        &self,
        f: impl FnOnce(&mut Session<'_, postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.in_transaction(|s| {
            s.execute(
                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
                &[],
                "starting a listing read",
            )?;
            f(s)
        })
    }

    /// See [`StoreBackend::listing`](crate::store::StoreBackend::listing).
    pub(super) fn feed_listing(
        &self,
        filter: ItemFilter<'_>,
        limit: usize,
    ) -> Result<Listing, StoreError> {
        self.in_snapshot(|s| {
            let (generation, _) = generation_and_delete(s)?;
            let n = big(limit as u64);
            let rows = match filter {
                ItemFilter::All => s.query(LIST_ALL, &[&n], "listing items")?,
                ItemFilter::Source(source) => {
                    s.query(LIST_SOURCE, &[&n, &source], "listing items")?
                }
                ItemFilter::Rule(rule) => s.query(LIST_RULE, &[&n, &rule], "listing items")?,
            };
            let items = rows.iter().map(listed_from_row).collect::<Result<_, _>>()?;
            Ok(Listing { generation, items })
        })
    }

    /// See [`StoreBackend::changed_items`](crate::store::StoreBackend::changed_items).
    pub(super) fn feed_changes(
        &self,
        filter: ItemFilter<'_>,
        since: u64,
        limit: usize,
    ) -> Result<Option<Listing>, StoreError> {
        self.in_snapshot(|s| {
            let (generation, deleted) = generation_and_delete(s)?;
            let since_sql = big(since);
            let cap = big(limit.max(CHANGED_ITEMS_FLOOR) as u64);
            let too_many = s
                .query_opt(
                    CHANGED_MORE_THAN,
                    &[&since_sql, &cap],
                    "counting changed items",
                )?
                .is_some();
            if deleted > since || too_many {
                return Ok(None);
            }
            if generation == since {
                return Ok(Some(Listing {
                    generation,
                    items: Vec::new(),
                }));
            }
            let rows = match filter {
                ItemFilter::All => s.query(CHANGED_ALL, &[&since_sql], "listing changes")?,
                ItemFilter::Source(source) => {
                    s.query(CHANGED_SOURCE, &[&since_sql, &source], "listing changes")?
                }
                ItemFilter::Rule(rule) => {
                    s.query(CHANGED_RULE, &[&since_sql, &rule], "listing changes")?
                }
            };
            let items = rows.iter().map(listed_from_row).collect::<Result<_, _>>()?;
            Ok(Some(Listing { generation, items }))
        })
    }
}

/// The generation and the generation of the last item delete.
fn generation_and_delete(
    s: &mut Session<'_, postgres::Transaction<'_>>,
) -> Result<(u64, u64), StoreError> {
    let row = s.query_one(GENERATION_AND_DELETE, &[], "reading the generation")?;
    let value: i64 = col(&row, 0, "generation.value")?;
    let deleted: i64 = col(&row, 1, "generation.deleted")?;
    Ok((
        u64::try_from(value).unwrap_or(0),
        u64::try_from(deleted).unwrap_or(0),
    ))
}
