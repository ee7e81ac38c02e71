//! The PostgreSQL statements of an ingest; the rules are [`crate::store`]'s
//! `ingest_in`, shared with SQLite.

use std::collections::BTreeSet;

use super::queries::{item_from_row, BY_ID};
use super::{col, PostgresStore, Session};
use crate::store::ingest::{ingest_in, CaptureRow, IngestSql, ItemUpdate, NewItem, OutboxRow};
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
            batches
                .iter()
                .map(|batch| ingest_in(session, batch, matcher))
                .collect()
        })
    }
}

/// An optional count as the database keeps it.
fn opt_count(n: Option<u32>) -> Option<i64> {
    n.map(i64::from)
}

impl<C: postgres::GenericClient> IngestSql for Session<'_, C> {
    fn capture_exists(&mut self, source: &str, hash: &str) -> Result<bool, StoreError> {
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

    fn insert_match(
        &mut self,
        rule: &str,
        item_id: i64,
        words: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO matches (rule, item_id, matched, at) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
            &[&rule, &item_id, &words, &now],
            "recording a match",
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

    fn record_capture(&mut self, capture: &CaptureRow<'_>) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO captures (hash, source, origin, format, entries, new_items, seen_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING",
            &[
                &capture.hash,
                &capture.source,
                &capture.origin,
                &capture.format,
                &capture.entries,
                &capture.new_items,
                &capture.now,
            ],
            "recording the capture",
        )?;
        Ok(())
    }

    fn bump_generation(&mut self, now: i64, new_items: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE generation SET value = value + 1, changed_at = GREATEST(changed_at, $1),
                                   items = items + $2
              WHERE id = 1",
            &[&now, &new_items],
            "bumping the generation",
        )?;
        // Delivered at commit, once however many pages the transaction held: the
        // other replicas re-read the scope changes then.
        self.execute(
            "SELECT pg_notify($1, '')",
            &[&CHANGES_CHANNEL],
            "announcing the change",
        )?;
        Ok(())
    }

    fn scope_changed(&mut self, scope: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO scope_changes (scope, generation)
                  SELECT $1, value FROM generation WHERE id = 1
             ON CONFLICT (scope) DO UPDATE SET generation = EXCLUDED.generation",
            &[&scope],
            "recording a feed scope change",
        )?;
        Ok(())
    }

    fn next_generation(&mut self) -> Result<i64, StoreError> {
        let row = self.query_one(
            "SELECT value + 1 FROM generation WHERE id = 1",
            &[],
            "reading the generation",
        )?;
        col(&row, 0, "generation.value")
    }

    fn mark_changed(&mut self, item_id: i64, generation: i64) -> Result<(), StoreError> {
        self.execute(
            "UPDATE items SET changed = $2 WHERE id = $1",
            &[&item_id, &generation],
            "marking an item changed",
        )?;
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
        self.execute(
            "INSERT INTO interest_scores (interest, item_id, score, terms, seen)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (interest, item_id) DO UPDATE
                SET score = EXCLUDED.score, terms = EXCLUDED.terms, seen = EXCLUDED.seen",
            &[&interest, &item_id, &score, &terms, &seen],
            "recording an interest score",
        )?;
        Ok(())
    }
}
