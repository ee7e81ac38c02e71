//! The PostgreSQL store's reads and the outbox's state machine: the
//! [`StoreBackend`] operations besides the ingest.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use postgres::Row;

use super::{col, count, schema, time, PostgresStore};
use crate::sources::{SourceHealth, Validators};
use crate::store::items::{item_columns, parse_timestamp, ITEM_COLUMN_COUNT};
use crate::store::outbox::RuleMatch;
use crate::store::{select_fetch_states, SAVE_FETCH_STATE};
use crate::store::{
    CorpusItem, Delivery, FailedDelivery, FetchState, Ingest, IngestReport, ItemFilter, Lease,
    Listing, Matcher, OutboxCounts, ScoreRow, ScoredItem, SourceLease, StoreBackend, StoreError,
    StoredItem, Verdict,
};

/// Every item, newest first. Each listing ends with the time its feed orders by,
/// column [`ITEM_COLUMN_COUNT`].
pub(super) const LIST_ALL: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", i.first_seen FROM items i ORDER BY i.first_seen DESC, i.id DESC LIMIT $1"
);

/// One source's items, by when that source first saw them.
pub(super) const LIST_SOURCE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", s.first_seen FROM item_sources s JOIN items i ON i.id = s.item_id WHERE s.source = $2 \
      ORDER BY s.first_seen DESC, s.item_id DESC LIMIT $1"
);

/// One rule's items, by match time.
pub(super) const LIST_RULE: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", m.at FROM matches m JOIN items i ON i.id = m.item_id WHERE m.rule = $2 \
      ORDER BY m.at DESC, m.item_id DESC LIMIT $1"
);

/// The item an alias belongs to.
const BY_ALIAS: &str = concat!(
    "SELECT ",
    item_columns!(),
    " FROM item_keys k JOIN items i ON i.id = k.item_id WHERE k.alias = $1"
);

/// One item by row id.
pub(super) const BY_ID: &str = concat!("SELECT ", item_columns!(), " FROM items i WHERE i.id = $1");

/// Claims pending rows due by $1 for replica $3 until the lease period $4 from now,
/// oldest due first: rows no replica claims, this one's own, and those whose claim
/// lapsed (their replica died). Rows another replica is claiming right now are
/// skipped, not waited for. Returns the rows with their items; the order is restored
/// by the caller (RETURNING has none).
const CLAIM_DUE: &str = concat!(
    "WITH due AS (SELECT id FROM outbox \
      WHERE state = 'pending' AND next_attempt <= $1 \
        AND (claimed_by IS NULL OR claimed_by = $3 OR claimed_until < ",
    super::leases::server_now_ms!(),
    ") ORDER BY next_attempt, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
     UPDATE outbox o SET claimed_by = $3, claimed_until = ",
    super::leases::server_now_ms!(),
    " + $4 FROM due, items i WHERE o.id = due.id AND i.id = o.item_id RETURNING ",
    item_columns!(),
    ", o.id, o.rule, o.notifier, o.idempotency_key, o.matched, o.attempts, o.next_attempt"
);

/// How long until the first claim another replica holds on a row due by $1 lapses
/// ($2: this replica), in ms; NULL when there is none.
const NEXT_CLAIM_LAPSE: &str = concat!(
    "SELECT min(claimed_until) - ",
    super::leases::server_now_ms!(),
    " FROM outbox WHERE state = 'pending' AND next_attempt <= $1 \
        AND claimed_by <> $2 AND claimed_until >= ",
    super::leases::server_now_ms!()
);

/// A rule's matches, newest first.
const RECENT_MATCHES: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", m.matched, m.at FROM matches m JOIN items i ON i.id = m.item_id \
      WHERE m.rule = $1 ORDER BY m.at DESC, m.item_id DESC LIMIT $2"
);

/// A JSON array of strings stored in `column`.
fn json_list(text: &str, column: &'static str) -> Result<Vec<String>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Value {
        column,
        detail: e.to_string(),
    })
}

/// An RFC 3339 (or older `YYYY-MM-DD`) timestamp stored in `column`.
fn timestamp(
    text: Option<String>,
    column: &'static str,
) -> Result<Option<crate::entry::Timestamp>, StoreError> {
    text.map(|t| {
        parse_timestamp(&t).map_err(|e| StoreError::Value {
            column,
            detail: e.to_string(),
        })
    })
    .transpose()
}

/// Decodes the item columns of a row selected with `item_columns!`.
pub(super) fn item_from_row(row: &Row) -> Result<StoredItem, StoreError> {
    let authors: String = col(row, 5, "items.authors")?;
    let author_count: Option<i64> = col(row, 6, "items.author_count")?;
    Ok(StoredItem {
        id: col(row, 0, "items.id")?,
        key: col(row, 1, "items.key")?,
        title: col(row, 2, "items.title")?,
        link: col(row, 3, "items.link")?,
        summary: col(row, 4, "items.summary")?,
        authors: json_list(&authors, "items.authors")?,
        author_count: author_count.and_then(|n| u32::try_from(n).ok()),
        publisher: col(row, 7, "items.publisher")?,
        source: col(row, 8, "items.source")?,
        published: timestamp(col(row, 9, "items.published")?, "items.published")?,
        arxiv_id: col(row, 10, "items.arxiv_id")?,
        format: col(row, 11, "items.format")?,
        first_seen: time(col(row, 12, "items.first_seen")?, "items.first_seen")?,
        updated_at: time(col(row, 13, "items.updated_at")?, "items.updated_at")?,
        listed: timestamp(col(row, 14, "items.listed")?, "items.listed")?,
    })
}

fn opt_time(ms: Option<i64>, column: &'static str) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(|ms| time(ms, column)).transpose()
}

fn fetch_state_from_row(row: &Row, at: usize) -> Result<FetchState, StoreError> {
    let time = |i: usize, column: &'static str| opt_time(col(row, at + i, column)?, column);
    Ok(FetchState {
        validators: Validators {
            etag: col(row, at, "fetch_state.etag")?,
            last_modified: col(row, at + 1, "fetch_state.last_modified")?,
        },
        health: SourceHealth {
            last_success: time(2, "fetch_state.last_success")?,
            last_error_at: time(3, "fetch_state.last_error_at")?,
            last_error: col(row, at + 4, "fetch_state.last_error")?,
            consecutive_failures: count(row, at + 5, "fetch_state.consecutive_failures")?,
        },
        ever_succeeded: col(row, at + 6, "fetch_state.ever_succeeded")?,
    })
}

/// A LIMIT as PostgreSQL takes it; a limit beyond i64 is no limit.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_ms(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

impl PostgresStore {
    /// A one-column count or counter of the generation row.
    fn generation_column(
        &self,
        sql: &'static str,
        context: &'static str,
    ) -> Result<i64, StoreError> {
        self.with(|s| col(&s.query_one(sql, &[], context)?, 0, "generation"))
    }
}

impl StoreBackend for PostgresStore {
    fn ingest_all(
        &mut self,
        batches: &[Ingest<'_>],
        matcher: &dyn Matcher,
    ) -> Result<Vec<IngestReport>, StoreError> {
        self.ingest_batches(batches, matcher)
    }

    fn items(&self, filter: ItemFilter<'_>, n: usize) -> Result<Vec<StoredItem>, StoreError> {
        let n = limit(n);
        let rows = self.with(|s| match filter {
            ItemFilter::All => s.query(LIST_ALL, &[&n], "listing items"),
            ItemFilter::Source(source) => s.query(LIST_SOURCE, &[&n, &source], "listing items"),
            ItemFilter::Rule(rule) => s.query(LIST_RULE, &[&n, &rule], "listing items"),
        })?;
        rows.iter().map(item_from_row).collect()
    }

    fn listing(&self, filter: ItemFilter<'_>, limit: usize) -> Result<Listing, StoreError> {
        self.feed_listing(filter, limit)
    }

    fn changed_items(
        &self,
        filter: ItemFilter<'_>,
        since: u64,
        limit: usize,
    ) -> Result<Option<Listing>, StoreError> {
        self.feed_changes(filter, since, limit)
    }

    fn set_verdict(
        &self,
        interest: &str,
        item_id: i64,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.put_verdict(interest, item_id, verdict, at)
    }

    fn verdicts(&self, interest: &str) -> Result<Vec<(i64, Verdict)>, StoreError> {
        self.interest_verdicts(interest)
    }

    fn item_for_like(
        &self,
        arxiv_id: Option<&str>,
        doi: Option<&str>,
        title: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        self.liked_item(arxiv_id, doi, title)
    }

    fn corpus(
        &self,
        after: Option<&CorpusItem>,
        limit: usize,
    ) -> Result<Vec<CorpusItem>, StoreError> {
        self.corpus_page(after, limit)
    }

    fn replace_interest_scores(
        &mut self,
        interest: &str,
        scores: &[ScoreRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.put_interest_scores(interest, scores, now)
    }

    fn interest_items(
        &self,
        interest: &str,
        min_score: f32,
        limit: usize,
    ) -> Result<Vec<ScoredItem>, StoreError> {
        self.scored_items(interest, min_score, limit)
    }

    fn interest_count(&self, interest: &str, min_score: f32) -> Result<u64, StoreError> {
        self.scored_count(interest, min_score)
    }

    fn item_by_key(&self, key: &str) -> Result<Option<StoredItem>, StoreError> {
        let row = self.with(|s| s.query_opt(BY_ALIAS, &[&key], "looking up an item by key"))?;
        row.map(|row| item_from_row(&row)).transpose()
    }

    fn item_count(&self) -> Result<u64, StoreError> {
        let n = self.generation_column(
            "SELECT items FROM generation WHERE id = 1",
            "counting items",
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn generation(&self) -> Result<u64, StoreError> {
        let n = self.generation_column(
            "SELECT value FROM generation WHERE id = 1",
            "reading the generation",
        )?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn last_change(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ms = self.generation_column(
            "SELECT changed_at FROM generation WHERE id = 1",
            "reading the last change time",
        )?;
        if ms == 0 {
            return Ok(None);
        }
        time(ms, "generation.changed_at").map(Some)
    }

    fn has_capture(&self, source: &str, hash: &str) -> Result<bool, StoreError> {
        self.with(|s| s.capture_exists(source, hash))
    }

    fn scope_changes(&self) -> Result<HashMap<String, u64>, StoreError> {
        let rows = self.with(|s| {
            s.query(
                "SELECT scope, generation FROM scope_changes",
                &[],
                "listing scope changes",
            )
        })?;
        rows.iter()
            .map(|row| {
                let generation: i64 = col(row, 1, "scope_changes.generation")?;
                Ok((
                    col(row, 0, "scope_changes.scope")?,
                    u64::try_from(generation).unwrap_or(0),
                ))
            })
            .collect()
    }

    fn fetch_states(&self, sources: &[&str]) -> Result<Vec<FetchState>, StoreError> {
        const SQL: &str = concat!(select_fetch_states!(), " WHERE source = ANY($1)");
        let rows = self.with(|s| s.query(SQL, &[&sources], "reading sources' fetch states"))?;
        let mut found = HashMap::with_capacity(rows.len());
        for row in &rows {
            let source: String = col(row, 0, "fetch_state.source")?;
            found.insert(source, fetch_state_from_row(row, 1)?);
        }
        Ok(sources
            .iter()
            .map(|source| found.get(*source).cloned().unwrap_or_default())
            .collect())
    }

    fn save_fetch_states(&mut self, states: &[(&str, &FetchState)]) -> Result<(), StoreError> {
        self.in_transaction(|s| {
            for (source, state) in states {
                let h = &state.health;
                s.execute(
                    SAVE_FETCH_STATE,
                    &[
                        source,
                        &state.validators.etag,
                        &state.validators.last_modified,
                        &h.last_success.map(to_ms),
                        &h.last_error_at.map(to_ms),
                        &h.last_error,
                        &i64::from(h.consecutive_failures),
                        &state.ever_succeeded,
                    ],
                    "saving a source's fetch state",
                )?;
            }
            Ok(())
        })
    }

    fn all_fetch_states(&self) -> Result<Vec<(String, FetchState)>, StoreError> {
        const SQL: &str = concat!(select_fetch_states!(), " ORDER BY source");
        let rows = self.with(|s| s.query(SQL, &[], "listing fetch states"))?;
        rows.iter()
            .map(|row| {
                Ok((
                    col(row, 0, "fetch_state.source")?,
                    fetch_state_from_row(row, 1)?,
                ))
            })
            .collect()
    }

    fn due_deliveries(&self, now: DateTime<Utc>, n: usize) -> Result<Vec<Delivery>, StoreError> {
        let (replica, lease) = (self.replica(), self.lease_ms());
        let (mut rows, lapse) = self.with(|s| {
            let rows = s.query(
                CLAIM_DUE,
                &[&to_ms(now), &limit(n), &replica, &lease],
                "claiming due deliveries",
            )?;
            let lapse = s.query_one(
                NEXT_CLAIM_LAPSE,
                &[&to_ms(now), &replica],
                "reading when other replicas' claims lapse",
            )?;
            Ok((rows, col::<Option<i64>>(&lapse, 0, "outbox.claimed_until")?))
        })?;
        self.set_claims_lapse(lapse);
        let due_at = |row: &Row| row.try_get::<_, i64>(ITEM_COLUMN_COUNT + 6).unwrap_or(0);
        rows.sort_by_key(|row| {
            (
                due_at(row),
                row.try_get::<_, i64>(ITEM_COLUMN_COUNT).unwrap_or(0),
            )
        });
        rows.iter()
            .map(|row| {
                let at = ITEM_COLUMN_COUNT;
                let matched: String = col(row, at + 4, "outbox.matched")?;
                Ok(Delivery {
                    item: item_from_row(row)?,
                    id: col(row, at, "outbox.id")?,
                    rule: col(row, at + 1, "outbox.rule")?,
                    notifier: col(row, at + 2, "outbox.notifier")?,
                    idempotency_key: col(row, at + 3, "outbox.idempotency_key")?,
                    matched: json_list(&matched, "outbox.matched")?,
                    attempts: count(row, at + 5, "outbox.attempts")?,
                })
            })
            .collect()
    }

    fn mark_delivered(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self.with(|s| {
            s.execute(
                "UPDATE outbox SET state = 'delivered', attempts = attempts + 1, done_at = $2,
                                   last_error = NULL, claimed_by = NULL
                  WHERE id = $1 AND state = 'pending'",
                &[&id, &to_ms(now)],
                "marking a delivery done",
            )
        })?;
        Ok(n > 0)
    }

    fn mark_retry(
        &self,
        id: i64,
        next_attempt: DateTime<Utc>,
        error: &str,
    ) -> Result<bool, StoreError> {
        let n = self.with(|s| {
            s.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = $2, last_error = $3,
                                   claimed_by = NULL
                  WHERE id = $1 AND state = 'pending'",
                &[&id, &to_ms(next_attempt), &error],
                "scheduling a delivery retry",
            )
        })?;
        Ok(n > 0)
    }

    fn mark_failed(&self, id: i64, error: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let n = self.with(|s| {
            s.execute(
                "UPDATE outbox SET state = 'failed', attempts = attempts + 1, last_error = $2,
                                   done_at = $3, claimed_by = NULL
                  WHERE id = $1 AND state = 'pending'",
                &[&id, &error, &to_ms(now)],
                "marking a delivery failed",
            )
        })?;
        Ok(n > 0)
    }

    fn outbox_counts(&self) -> Result<OutboxCounts, StoreError> {
        self.with(|s| {
            let mut by_state = |state: &str| -> Result<u64, StoreError> {
                let row = s.query_one(
                    "SELECT COUNT(*) FROM outbox WHERE state = $1",
                    &[&state],
                    "counting outbox rows",
                )?;
                count(&row, 0, "outbox count")
            };
            Ok(OutboxCounts {
                pending: by_state("pending")?,
                failed: by_state("failed")?,
                delivered: by_state("delivered")?,
            })
        })
    }

    fn failed_deliveries(&self, n: usize) -> Result<Vec<FailedDelivery>, StoreError> {
        let rows = self.with(|s| {
            s.query(
                "SELECT o.rule, o.notifier, i.title, COALESCE(o.last_error, ''),
                        COALESCE(o.done_at, o.created_at)
                   FROM outbox o JOIN items i ON i.id = o.item_id
                  WHERE o.state = 'failed'
                  ORDER BY o.done_at DESC, o.id DESC LIMIT $1",
                &[&limit(n)],
                "listing failed deliveries",
            )
        })?;
        rows.iter()
            .map(|row| {
                Ok(FailedDelivery {
                    rule: col(row, 0, "outbox.rule")?,
                    notifier: col(row, 1, "outbox.notifier")?,
                    title: col(row, 2, "items.title")?,
                    error: col(row, 3, "outbox.last_error")?,
                    at: time(col(row, 4, "outbox.done_at")?, "outbox.done_at")?,
                })
            })
            .collect()
    }

    fn recent_matches(&self, rule: &str, n: usize) -> Result<Vec<RuleMatch>, StoreError> {
        let rows = self.with(|s| {
            s.query(
                RECENT_MATCHES,
                &[&rule, &limit(n)],
                "listing a rule's matches",
            )
        })?;
        rows.iter()
            .map(|row| {
                let at = ITEM_COLUMN_COUNT;
                let matched: String = col(row, at, "matches.matched")?;
                Ok(RuleMatch {
                    item: item_from_row(row)?,
                    matched: json_list(&matched, "matches.matched")?,
                    at: time(col(row, at + 1, "matches.at")?, "matches.at")?,
                })
            })
            .collect()
    }

    fn schema_version(&self) -> Result<i64, StoreError> {
        self.with(|s| {
            col(
                &s.query_one(schema::VERSION, &[], "reading the schema version")?,
                0,
                "lookout_schema.version",
            )
        })
    }

    fn is_empty(&self) -> Result<bool, StoreError> {
        self.with(|s| {
            let row = s.query_one(
                "SELECT NOT EXISTS (SELECT 1 FROM items) AND NOT EXISTS (SELECT 1 FROM captures)
                    AND NOT EXISTS (SELECT 1 FROM fetch_state)
                    AND NOT EXISTS (SELECT 1 FROM outbox)",
                &[],
                "checking whether the store is empty",
            )?;
            col(&row, 0, "empty")
        })
    }

    /// PostgreSQL checks its own pages (checksums, WAL replay); a damaged one surfaces
    /// as an error of the statement that reads it (`XX001`), which [`super::fault`]
    /// reports as corrupt.
    fn quick_check(&self) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    fn probe_write(&self) -> Result<(), StoreError> {
        self.with(|s| {
            s.execute(
                "UPDATE lookout_schema SET version = version WHERE id = 1",
                &[],
                "probing whether the store can write",
            )
            .map(drop)
        })
    }

    fn release_memory(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn claims_lapse_in(&self) -> Option<std::time::Duration> {
        PostgresStore::claims_lapse_in(self)
    }

    fn lease_source(&self, source: &str) -> Result<Lease, StoreError> {
        self.lease(source)
    }

    fn leases(&self) -> Result<Vec<SourceLease>, StoreError> {
        self.live_leases()
    }

    fn release_leases(&self) -> Result<(), StoreError> {
        PostgresStore::release_leases(self)
    }

    fn replica(&self) -> Option<&str> {
        Some(PostgresStore::replica(self))
    }
}
