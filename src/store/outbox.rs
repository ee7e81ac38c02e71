//! The alert outbox: what the delivery worker reads and how it records the outcome.
//!
//! A row is `pending` until the worker marks it `delivered` or, after its last retry,
//! `failed`; both are final, so a late mark from a worker that lost a race is ignored.
//! Rows for a rule or notifier that left the config stay pending: the worker decides.

use chrono::{DateTime, Utc};

use super::items::{item_columns, item_from_row, json_list, sql_limit, ITEM_COLUMN_COUNT};
use super::{
    time_col, to_ms, Ctx, Delivery, FailedDelivery, OutboxCounts, SqliteStore, StoreError,
    StoredItem,
};

/// Pending rows due by ?1, oldest due first.
pub(super) const DUE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", o.id, o.rule, o.notifier, o.idempotency_key, o.matched, o.attempts \
       FROM outbox o JOIN items i ON i.id = o.item_id \
      WHERE o.state = 'pending' AND o.next_attempt <= ?1 \
      ORDER BY o.next_attempt, o.id LIMIT ?2"
);

/// Failed rows, most recently given up first.
pub(super) const FAILED: &str = "SELECT o.rule, o.notifier, i.title, COALESCE(o.last_error, ''), \
            COALESCE(o.done_at, o.created_at) \
       FROM outbox o JOIN items i ON i.id = o.item_id \
      WHERE o.state = 'failed' \
      ORDER BY o.done_at DESC, o.id DESC LIMIT ?1";

/// A rule's matches, newest first.
pub(super) const RECENT_MATCHES: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", m.matched, m.at FROM matches m JOIN items i ON i.id = m.item_id \
      WHERE m.rule = ?1 ORDER BY m.at DESC, m.item_id DESC LIMIT ?2"
);

/// Rows in one state.
pub(super) const COUNT_STATE: &str = "SELECT COUNT(*) FROM outbox WHERE state = ?1";

/// One rule's match of an item, for the status page and per-rule listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMatch {
    /// The matched item.
    pub item: StoredItem,
    /// The keywords or patterns that matched.
    pub matched: Vec<String>,
    /// When the rule matched (the ingest time of the item).
    pub at: DateTime<Utc>,
}

impl SqliteStore {
    /// Up to `limit` pending deliveries due at `now`, oldest due first, each with its
    /// item.
    pub fn due_deliveries(
        &self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(DUE)
            .ctx("preparing the due deliveries query")?;
        let rows = stmt
            .query_map(rusqlite::params![to_ms(now), sql_limit(limit)], |row| {
                let at = ITEM_COLUMN_COUNT;
                let matched: String = row.get(at + 4)?;
                Ok(Delivery {
                    item: item_from_row(row)?,
                    id: row.get(at)?,
                    rule: row.get(at + 1)?,
                    notifier: row.get(at + 2)?,
                    idempotency_key: row.get(at + 3)?,
                    matched: json_list(&matched, at + 4)?,
                    attempts: row.get(at + 5)?,
                })
            })
            .ctx("listing due deliveries")?;
        rows.collect::<Result<_, _>>().ctx("reading due deliveries")
    }

    /// Records a successful delivery; the successful try counts as an attempt too.
    /// Returns false when the row is not pending (already delivered or failed, or
    /// unknown), so a late mark never revives or rewrites a final state.
    pub fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, done_at = ?2,
                                   last_error = NULL
                  WHERE id = ?1 AND state = 'pending'",
            )
            .ctx("preparing the delivered mark")?;
        let n = stmt
            .execute(rusqlite::params![id, to_ms(now)])
            .ctx("marking a delivery done")?;
        Ok(n > 0)
    }

    /// Records a failed attempt that will be retried at `next_attempt`: one more
    /// attempt, the error kept for the status page. Returns false when the row is not
    /// pending.
    pub fn mark_retry(
        &self,
        id: i64,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?2, last_error = ?3
                  WHERE id = ?1 AND state = 'pending'",
            )
            .ctx("preparing the retry mark")?;
        let n = stmt
            .execute(rusqlite::params![id, to_ms(next_attempt), error])
            .ctx("scheduling a delivery retry")?;
        Ok(n > 0)
    }

    /// Gives a delivery up after its last attempt failed. Returns false when the row is
    /// not pending.
    pub fn mark_failed(
        &self,
        id: i64,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = ?2,
                                   done_at = ?3
                  WHERE id = ?1 AND state = 'pending'",
            )
            .ctx("preparing the failed mark")?;
        let n = stmt
            .execute(rusqlite::params![id, error, to_ms(now)])
            .ctx("marking a delivery failed")?;
        Ok(n > 0)
    }

    /// Outbox rows by state, for `/healthz` and metrics.
    pub fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        // One count per state, each a range of the (state, ...) index rather than a walk
        // of the table.
        let mut stmt = self
            .conn
            .prepare_cached(COUNT_STATE)
            .ctx("preparing the outbox count")?;
        let mut count = |state: &str| -> Result<u64, StoreError> {
            let n: i64 = stmt
                .query_row([state], |row| row.get(0))
                .ctx("counting outbox rows")?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(OutboxCounts {
            pending: count("pending")?,
            failed: count("failed")?,
            delivered: count("delivered")?,
        })
    }

    /// Up to `limit` failed deliveries, most recently given up first.
    pub fn failed_deliveries(&self, limit: usize) -> Result<Vec<FailedDelivery>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(FAILED)
            .ctx("preparing the failed deliveries query")?;
        let rows = stmt
            .query_map([sql_limit(limit)], |row| {
                Ok(FailedDelivery {
                    rule: row.get(0)?,
                    notifier: row.get(1)?,
                    title: row.get(2)?,
                    error: row.get(3)?,
                    at: time_col(row, 4)?,
                })
            })
            .ctx("listing failed deliveries")?;
        rows.collect::<Result<_, _>>()
            .ctx("reading failed deliveries")
    }

    /// Up to `limit` of `rule`'s matches, newest first.
    pub fn recent_matches(&self, rule: &str, limit: usize) -> Result<Vec<RuleMatch>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(RECENT_MATCHES)
            .ctx("preparing the recent matches query")?;
        let rows = stmt
            .query_map(rusqlite::params![rule, sql_limit(limit)], |row| {
                let at = ITEM_COLUMN_COUNT;
                let matched: String = row.get(at)?;
                Ok(RuleMatch {
                    item: item_from_row(row)?,
                    matched: json_list(&matched, at)?,
                    at: time_col(row, at + 1)?,
                })
            })
            .ctx("listing a rule's matches")?;
        rows.collect::<Result<_, _>>()
            .ctx("reading a rule's matches")
    }
}
