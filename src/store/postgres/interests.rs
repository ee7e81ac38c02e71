//! Interests on PostgreSQL: the user's verdicts, the corpus a model reads, and each
//! interest's scored items, with the meaning of `store/interests.rs` on SQLite.

use chrono::{DateTime, Utc};

use super::ingest::{CHANGES_CHANNEL, INGEST_LOCK};
use super::queries::item_from_row;
use super::{col, PostgresStore};
use crate::store::interests::{like_keys, terms_json};
use crate::store::items::{item_columns, ITEM_COLUMN_COUNT};
use crate::store::{interest_rule, CorpusItem, ScoreRow, ScoredItem, StoreError, Verdict};

/// Stored items as a model reads them, newest first, after ($2, $3).
const CORPUS: &str = "SELECT i.id, i.title, i.summary, i.first_seen,
        (SELECT string_agg(s.source, chr(31)) FROM item_sources s WHERE s.item_id = i.id)
   FROM items i WHERE (i.first_seen, i.id) < ($2, $3)
  ORDER BY i.first_seen DESC, i.id DESC LIMIT $1";

/// An interest's feed items at or above a score, newest first.
const INTEREST_ITEMS: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", s.score, s.terms FROM interest_scores s JOIN items i ON i.id = s.item_id \
      WHERE s.interest = $1 AND s.score >= $2 \
      ORDER BY s.seen DESC, s.item_id DESC LIMIT $3"
);

/// A LIMIT as PostgreSQL takes it.
fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl PostgresStore {
    /// See [`StoreBackend::set_verdict`](crate::store::StoreBackend::set_verdict).
    pub(super) fn put_verdict(
        &self,
        interest: &str,
        item_id: i64,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let exists = s
                .query_opt(
                    "SELECT 1 FROM items WHERE id = $1",
                    &[&item_id],
                    "checking an item",
                )?
                .is_some();
            if !exists {
                return Ok(false);
            }
            match verdict {
                Some(v) => s.execute(
                    "INSERT INTO interest_verdicts (interest, item_id, verdict, at)
                     VALUES ($1, $2, $3, $4)
                     ON CONFLICT (interest, item_id)
                     DO UPDATE SET verdict = EXCLUDED.verdict, at = EXCLUDED.at",
                    &[&interest, &item_id, &v.as_str(), &at.timestamp_millis()],
                    "recording a verdict",
                )?,
                None => s.execute(
                    "DELETE FROM interest_verdicts WHERE interest = $1 AND item_id = $2",
                    &[&interest, &item_id],
                    "clearing a verdict",
                )?,
            };
            Ok(true)
        })
    }

    /// See [`StoreBackend::verdicts`](crate::store::StoreBackend::verdicts).
    pub(super) fn interest_verdicts(
        &self,
        interest: &str,
    ) -> Result<Vec<(i64, Verdict)>, StoreError> {
        let rows = self.with(|s| {
            s.query(
                "SELECT item_id, verdict FROM interest_verdicts WHERE interest = $1
                  ORDER BY item_id",
                &[&interest],
                "listing verdicts",
            )
        })?;
        rows.iter()
            .map(|row| {
                let text: String = col(row, 1, "interest_verdicts.verdict")?;
                let verdict = Verdict::parse(&text).ok_or_else(|| StoreError::Value {
                    column: "interest_verdicts.verdict",
                    detail: format!("unknown verdict {text:?}"),
                })?;
                Ok((col(row, 0, "interest_verdicts.item_id")?, verdict))
            })
            .collect()
    }

    /// See [`StoreBackend::item_for_like`](crate::store::StoreBackend::item_for_like).
    pub(super) fn liked_item(
        &self,
        arxiv_id: Option<&str>,
        doi: Option<&str>,
        title: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let keys = like_keys(arxiv_id, doi, title);
        self.with(|s| {
            for key in &keys {
                let row = s.query_opt(
                    "SELECT item_id FROM item_keys WHERE alias = $1",
                    &[key],
                    "looking up a liked paper",
                )?;
                if let Some(row) = row {
                    return col(&row, 0, "item_keys.item_id").map(Some);
                }
            }
            Ok(None)
        })
    }

    /// See [`StoreBackend::corpus`](crate::store::StoreBackend::corpus).
    pub(super) fn corpus_page(
        &self,
        after: Option<&CorpusItem>,
        n: usize,
    ) -> Result<Vec<CorpusItem>, StoreError> {
        let (seen, id) = after.map_or((i64::MAX, i64::MAX), |a| (a.seen, a.id));
        let rows =
            self.with(|s| s.query(CORPUS, &[&limit(n), &seen, &id], "listing the corpus"))?;
        rows.iter()
            .map(|row| {
                let sources: Option<String> = col(row, 4, "item_sources.source")?;
                Ok(CorpusItem {
                    id: col(row, 0, "items.id")?,
                    title: col(row, 1, "items.title")?,
                    summary: col(row, 2, "items.summary")?,
                    seen: col(row, 3, "items.first_seen")?,
                    sources: sources
                        .map(|s| s.split('\u{1f}').map(str::to_owned).collect())
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

    /// See [`StoreBackend::replace_interest_scores`](crate::store::StoreBackend::replace_interest_scores).
    /// Under the ingest lock: an ingest marks the items it changes with the generation
    /// it will commit, which a bump in between would make wrong.
    pub(super) fn put_interest_scores(
        &self,
        interest: &str,
        scores: &[ScoreRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.in_transaction(|s| {
            s.execute(
                "SELECT pg_advisory_xact_lock($1)",
                &[&INGEST_LOCK],
                "taking the ingest lock",
            )?;
            s.execute(
                "DELETE FROM interest_scores WHERE interest = $1",
                &[&interest],
                "clearing an interest's scores",
            )?;
            for row in scores {
                s.execute(
                    "INSERT INTO interest_scores (interest, item_id, score, terms, seen)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[
                        &interest,
                        &row.item_id,
                        &f64::from(row.score),
                        &terms_json(&row.terms),
                        &row.seen,
                    ],
                    "recording an interest score",
                )?;
            }
            s.execute(
                "UPDATE generation SET value = value + 1,
                                       changed_at = GREATEST(changed_at, $1)
                  WHERE id = 1",
                &[&now.timestamp_millis()],
                "bumping the generation",
            )?;
            s.execute(
                "INSERT INTO scope_changes (scope, generation)
                      SELECT $1, value FROM generation WHERE id = 1
                 ON CONFLICT (scope) DO UPDATE SET generation = EXCLUDED.generation",
                &[&interest_rule(interest)],
                "recording a feed scope change",
            )?;
            s.execute(
                "SELECT pg_notify($1, '')",
                &[&CHANGES_CHANNEL],
                "announcing the change",
            )?;
            Ok(())
        })
    }

    /// See [`StoreBackend::interest_items`](crate::store::StoreBackend::interest_items).
    /// See [`StoreBackend::interest_count`](crate::store::StoreBackend::interest_count).
    pub(super) fn scored_count(&self, interest: &str, min_score: f32) -> Result<u64, StoreError> {
        let row = self.with(|s| {
            s.query_one(
                "SELECT count(*) FROM interest_scores WHERE interest = $1 AND score >= $2",
                &[&interest, &f64::from(min_score)],
                "counting an interest's items",
            )
        })?;
        let n: i64 = col(&row, 0, "count")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    pub(super) fn scored_items(
        &self,
        interest: &str,
        min_score: f32,
        n: usize,
    ) -> Result<Vec<ScoredItem>, StoreError> {
        let rows = self.with(|s| {
            s.query(
                INTEREST_ITEMS,
                &[&interest, &f64::from(min_score), &limit(n)],
                "listing an interest's items",
            )
        })?;
        rows.iter()
            .map(|row| {
                let at = ITEM_COLUMN_COUNT;
                let score: f64 = col(row, at, "interest_scores.score")?;
                let terms: String = col(row, at + 1, "interest_scores.terms")?;
                Ok(ScoredItem {
                    item: item_from_row(row)?,
                    // Stored from an f32: the narrowing gives it back.
                    #[allow(clippy::cast_possible_truncation)]
                    score: score as f32,
                    terms: serde_json::from_str(&terms).map_err(|e| StoreError::Value {
                        column: "interest_scores.terms",
                        detail: e.to_string(),
                    })?,
                })
            })
            .collect()
    }
}
