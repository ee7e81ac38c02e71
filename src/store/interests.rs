//! Interests in the store: the user's verdicts on items ("like", "not interested"),
//! and each interest's items at or above its threshold with their scores, which its
//! feed lists.
//!
//! A new item an interest scores high enough is recorded here inside the ingest
//! transaction, with its outbox rows, like a rule's match ([`record`]); after each
//! retraining the daemon rewrites an interest's scores whole
//! ([`Store::replace_interest_scores`]), which changes the feed but alerts nobody.

use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};

use super::ingest::{due_time, enqueue, IngestSql};
use super::items::{item_columns, item_from_row, sql_limit, ITEM_COLUMN_COUNT};
use super::{bad_column, to_ms, Ctx, Ingest, SqliteStore, StoreError, StoredItem};
use crate::entry::{normalize_arxiv_id, normalize_title, normalize_url};

/// What the user said of an item for one interest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// "like": a positive example, as a paper of the likes file.
    Like,
    /// "not interested": a hard negative.
    NotInterested,
}

impl Verdict {
    /// The verdict as stored and as the status page's form sends it.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Like => "like",
            Verdict::NotInterested => "not_interested",
        }
    }

    /// The verdict a form value names.
    pub fn parse(text: &str) -> Option<Verdict> {
        match text {
            "like" => Some(Verdict::Like),
            "not_interested" => Some(Verdict::NotInterested),
            _ => None,
        }
    }
}

/// An interest's score of a new item, as the ingest records it (see
/// [`super::Matcher::interests`]).
#[derive(Debug, Clone, PartialEq)]
pub struct InterestMatch {
    /// The interest's name.
    pub interest: String,
    /// The model's score.
    pub score: f32,
    /// The terms that weighed most, with their contributions.
    pub terms: Vec<(String, f32)>,
    /// Notifiers the match is delivered to (one outbox row each).
    pub notifiers: Vec<String>,
    /// Digest window in seconds, as for a rule.
    pub digest_secs: Option<u64>,
}

impl InterestMatch {
    /// The name the outbox and the notifiers know the interest by: `interest:NAME`,
    /// apart from every rule name (a rule's name has no `:`).
    pub fn rule(&self) -> String {
        interest_rule(&self.interest)
    }

    /// The feed scope the match changes (see [`super::ItemFilter::scope_key`]).
    pub fn scope_key(&self) -> String {
        interest_rule(&self.interest)
    }
}

/// `interest:NAME`: an interest's name in the outbox, and its feed scope.
pub fn interest_rule(interest: &str) -> String {
    format!("interest:{interest}")
}

/// An item of an interest's feed: the stored item, its score and why.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredItem {
    /// The item.
    pub item: StoredItem,
    /// Its score.
    pub score: f32,
    /// The terms that weighed most, with their contributions.
    pub terms: Vec<(String, f32)>,
}

/// One item's score for an interest's feed, as a retraining records it.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    /// The item's row id.
    pub item_id: i64,
    /// The item's first-seen time, unix ms (see [`CorpusItem::seen`]).
    pub seen: i64,
    /// Its score.
    pub score: f32,
    /// The terms that weighed most, with their contributions.
    pub terms: Vec<(String, f32)>,
}

/// A stored item as a model reads it, with the sources that saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorpusItem {
    /// Row id.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Summary.
    pub summary: String,
    /// First-seen time, unix ms (the feed orders by it).
    pub seen: i64,
    /// Every source that has seen the item.
    pub sources: Vec<String>,
}

/// What the outbox row of an interest match says matched: the score, then the terms.
pub(super) fn matched_json(score: f32, terms: &[(String, f32)]) -> String {
    let labels: Vec<String> = std::iter::once(format!(
        "score {}",
        crate::alert::interest::shown_score(score)
    ))
    .chain(terms.iter().map(|(t, _)| t.clone()))
    .collect();
    serde_json::Value::from(labels).to_string()
}

/// The terms as stored: a JSON array of `[term, weight]`.
pub(super) fn terms_json(terms: &[(String, f32)]) -> String {
    serde_json::to_string(terms).unwrap_or_else(|_| "[]".to_owned())
}

/// The keys a liked paper is filed under in the store, most specific first: its arXiv
/// id, its DOI (as a `doi.org` link), its normalized title; the same keys the ingest
/// files items under ([`crate::entry::Entry::aliases`]).
pub fn like_keys(arxiv_id: Option<&str>, doi: Option<&str>, title: Option<&str>) -> Vec<String> {
    let mut keys = Vec::with_capacity(3);
    if let Some(id) = arxiv_id.filter(|i| !i.trim().is_empty()) {
        keys.push(format!("arxiv:{}", normalize_arxiv_id(id)));
    }
    if let Some(doi) = doi.map(str::trim).filter(|d| !d.is_empty()) {
        keys.push(format!(
            "url:{}",
            normalize_url(&format!("https://doi.org/{doi}"))
        ));
    }
    if let Some(title) = title.map(normalize_title).filter(|t| !t.is_empty()) {
        keys.push(format!("title:{title}"));
    }
    keys
}

/// Records an interest's match of a new item and, for a capture that alerts, one
/// outbox row per notifier (as `record_match` does for a rule). Returns the rows
/// enqueued.
pub(super) fn record(
    db: &mut dyn IngestSql,
    item_id: i64,
    item_key: &str,
    scored: &InterestMatch,
    batch: &Ingest<'_>,
    now: i64,
) -> Result<usize, StoreError> {
    db.record_interest(
        &scored.interest,
        item_id,
        f64::from(scored.score),
        &terms_json(&scored.terms),
        now,
    )?;
    if !batch.alerts {
        return Ok(0);
    }
    let due = due_time(now, scored.digest_secs);
    let matched = matched_json(scored.score, &scored.terms);
    enqueue(
        db,
        item_id,
        item_key,
        &scored.rule(),
        &scored.notifiers,
        &matched,
        due,
        now,
    )
}

/// Stored items as a model reads them, newest first, after (?2, ?3).
pub(super) const CORPUS: &str = "SELECT i.id, i.title, i.summary, i.first_seen,
        (SELECT group_concat(s.source, char(31)) FROM item_sources s WHERE s.item_id = i.id)
   FROM items i WHERE (i.first_seen, i.id) < (?2, ?3)
  ORDER BY i.first_seen DESC, i.id DESC LIMIT ?1";

/// An interest's feed items at or above a score, newest first.
pub(super) const INTEREST_ITEMS: &str = concat!(
    "SELECT ",
    item_columns!(),
    ", s.score, s.terms FROM interest_scores s JOIN items i ON i.id = s.item_id \
      WHERE s.interest = ?1 AND s.score >= ?2 \
      ORDER BY s.seen DESC, s.item_id DESC LIMIT ?3"
);

impl SqliteStore {
    /// Records (or, with `None`, clears) the user's verdict on an item for an
    /// interest. Returns false when no item has that id.
    pub fn set_verdict(
        &self,
        interest: &str,
        item_id: i64,
        verdict: Option<Verdict>,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let exists = self
            .conn
            .prepare_cached("SELECT 1 FROM items WHERE id = ?1")
            .ctx("preparing the item check")?
            .exists([item_id])
            .ctx("checking an item")?;
        if !exists {
            return Ok(false);
        }
        match verdict {
            Some(v) => self
                .conn
                .prepare_cached(
                    "INSERT INTO interest_verdicts (interest, item_id, verdict, at)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (interest, item_id)
                     DO UPDATE SET verdict = excluded.verdict, at = excluded.at",
                )
                .ctx("preparing the verdict insert")?
                .execute(params![interest, item_id, v.as_str(), to_ms(at)])
                .ctx("recording a verdict")?,
            None => self
                .conn
                .prepare_cached(
                    "DELETE FROM interest_verdicts WHERE interest = ?1 AND item_id = ?2",
                )
                .ctx("preparing the verdict removal")?
                .execute(params![interest, item_id])
                .ctx("clearing a verdict")?,
        };
        Ok(true)
    }

    /// Every verdict given for an interest, by item id.
    pub fn verdicts(&self, interest: &str) -> Result<Vec<(i64, Verdict)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT item_id, verdict FROM interest_verdicts WHERE interest = ?1
                  ORDER BY item_id",
            )
            .ctx("preparing the verdict listing")?;
        let rows = stmt
            .query_map([interest], |row| {
                let text: String = row.get(1)?;
                let verdict = Verdict::parse(&text)
                    .ok_or_else(|| bad_column(1, format!("unknown verdict {text:?}")))?;
                Ok((row.get(0)?, verdict))
            })
            .ctx("listing verdicts")?;
        rows.collect::<Result<_, _>>().ctx("reading verdicts")
    }

    /// The stored item a liked paper is: by its arXiv id, else its DOI (as a
    /// `doi.org` link), else its normalized title, the keys the ingest files items
    /// under.
    pub fn item_for_like(
        &self,
        arxiv_id: Option<&str>,
        doi: Option<&str>,
        title: Option<&str>,
    ) -> Result<Option<i64>, StoreError> {
        let keys = like_keys(arxiv_id, doi, title);
        let mut stmt = self
            .conn
            .prepare_cached("SELECT item_id FROM item_keys WHERE alias = ?1")
            .ctx("preparing the alias lookup")?;
        for key in keys {
            let found = stmt
                .query_row([&key], |row| row.get::<_, i64>(0))
                .optional()
                .ctx("looking up a liked paper")?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Up to `limit` stored items as a model reads them, newest first, from after
    /// `after` (the last item of the page before, so a long read can let go of the
    /// store between pages): what an interest trains on and ranks.
    pub fn corpus(
        &self,
        after: Option<&CorpusItem>,
        limit: usize,
    ) -> Result<Vec<CorpusItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(CORPUS)
            .ctx("preparing the corpus listing")?;
        let (seen, id) = after.map_or((i64::MAX, i64::MAX), |a| (a.seen, a.id));
        let rows = stmt
            .query_map(params![sql_limit(limit), seen, id], |row| {
                let sources: Option<String> = row.get(4)?;
                Ok(CorpusItem {
                    id: row.get(0)?,
                    title: row.get(1)?,
                    summary: row.get(2)?,
                    seen: row.get(3)?,
                    sources: sources
                        .map(|s| s.split('\u{1f}').map(str::to_owned).collect())
                        .unwrap_or_default(),
                })
            })
            .ctx("listing the corpus")?;
        rows.collect::<Result<_, _>>().ctx("reading the corpus")
    }

    /// Replaces an interest's scored items with `scores` in one transaction, and marks
    /// its feed changed.
    pub fn replace_interest_scores(
        &mut self,
        interest: &str,
        scores: &[ScoreRow],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("starting an interest score transaction")?;
        tx.execute(
            "DELETE FROM interest_scores WHERE interest = ?1",
            [interest],
        )
        .ctx("clearing an interest's scores")?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO interest_scores (interest, item_id, score, terms, seen)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .ctx("preparing the interest score insert")?;
            for row in scores {
                stmt.execute(params![
                    interest,
                    row.item_id,
                    f64::from(row.score),
                    terms_json(&row.terms),
                    row.seen
                ])
                .ctx("recording an interest score")?;
            }
        }
        tx.execute(
            "UPDATE generation SET value = value + 1, changed_at = MAX(changed_at, ?1)
              WHERE id = 1",
            [to_ms(now)],
        )
        .ctx("bumping the generation")?;
        tx.execute(
            "INSERT INTO scope_changes (scope, generation)
                  SELECT ?1, value FROM generation WHERE id = 1
             ON CONFLICT (scope) DO UPDATE SET generation = excluded.generation",
            [interest_rule(interest)],
        )
        .ctx("recording a feed scope change")?;
        tx.commit().ctx("committing interest scores")
    }

    /// Up to `limit` of an interest's items scored at least `min_score`, newest first.
    pub fn interest_items(
        &self,
        interest: &str,
        min_score: f32,
        limit: usize,
    ) -> Result<Vec<ScoredItem>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(INTEREST_ITEMS)
            .ctx("preparing an interest listing")?;
        let rows = stmt
            .query_map(
                params![interest, f64::from(min_score), sql_limit(limit)],
                |row| {
                    let at = ITEM_COLUMN_COUNT;
                    let score: f64 = row.get(at)?;
                    let terms: String = row.get(at + 1)?;
                    Ok(ScoredItem {
                        item: item_from_row(row)?,
                        // Stored from an f32: the narrowing gives it back.
                        score: score as f32,
                        terms: serde_json::from_str(&terms).map_err(|e| bad_column(at + 1, e))?,
                    })
                },
            )
            .ctx("listing an interest's items")?;
        rows.collect::<Result<_, _>>()
            .ctx("reading an interest's items")
    }

    /// How many of an interest's items scored at least `min_score`.
    pub fn interest_count(&self, interest: &str, min_score: f32) -> Result<u64, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT count(*) FROM interest_scores WHERE interest = ?1 AND score >= ?2",
            )
            .ctx("preparing an interest count")?
            .query_row(params![interest, f64::from(min_score)], |row| {
                row.get::<_, i64>(0)
            })
            .map(|n| u64::try_from(n).unwrap_or(0))
            .ctx("counting an interest's items")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Entry;
    use crate::store::{NoRules, Store};

    fn store_with(entries: &[Entry]) -> Store {
        let mut store = Store::open_in_memory().expect("open");
        store
            .ingest(
                &Ingest {
                    source: "s",
                    origin: "t",
                    content_hash: None,
                    format: "rss",
                    entries,
                    seen_at: Utc::now(),
                    alerts: true,
                },
                &NoRules,
            )
            .expect("ingest");
        store
    }

    #[test]
    fn likes_are_found_by_arxiv_id_doi_link_or_normalized_title() {
        let store = store_with(&[
            Entry {
                title: "Dark Matter Halos".into(),
                arxiv_id: Some("2401.00001".into()),
                ..Entry::default()
            },
            Entry {
                title: "A journal paper".into(),
                link: Some("https://doi.org/10.1000/XYZ".into()),
                ..Entry::default()
            },
            Entry {
                title: "Gradient is All You Need?".into(),
                ..Entry::default()
            },
        ]);
        let found = |a, d, t| store.item_for_like(a, d, t).expect("lookup");
        assert!(found(Some("arXiv:2401.00001v2"), None, None).is_some());
        assert!(found(None, Some("10.1000/XYZ"), None).is_some());
        assert!(found(None, None, Some("gradient  is ALL you need")).is_some());
        assert_eq!(
            found(Some("2401.99999"), None, Some("Nothing like it")),
            None
        );
    }

    #[test]
    fn verdicts_survive_as_stored_and_scores_list_newest_first_above_the_threshold() {
        let mut store = store_with(&[
            Entry {
                title: "one".into(),
                ..Entry::default()
            },
            Entry {
                title: "two".into(),
                ..Entry::default()
            },
        ]);
        let corpus = store.corpus(None, 10).expect("corpus");
        assert_eq!(corpus.len(), 2);
        let rest = store.corpus(Some(&corpus[0]), 10).expect("corpus");
        assert_eq!(rest, corpus[1..]);
        assert_eq!(corpus[0].sources, ["s"]);
        let (a, b) = (corpus[0].id, corpus[1].id);
        assert!(store
            .set_verdict("x", a, Some(Verdict::Like), Utc::now())
            .expect("set"));
        assert!(!store
            .set_verdict("x", 999, Some(Verdict::Like), Utc::now())
            .expect("set"));
        store
            .set_verdict("x", a, Some(Verdict::NotInterested), Utc::now())
            .expect("set");
        assert_eq!(
            store.verdicts("x").expect("read"),
            [(a, Verdict::NotInterested)]
        );
        let row = |item_id, seen, score, terms| ScoreRow {
            item_id,
            seen,
            score,
            terms,
        };
        let rows = vec![
            row(a, 20, 0.9, vec![("halo".to_owned(), 0.5)]),
            row(b, 10, 0.1, Vec::new()),
        ];
        let before = store.generation().expect("generation");
        store
            .replace_interest_scores("x", &rows, Utc::now())
            .expect("replace");
        assert!(store.generation().expect("generation") > before);
        assert!(store
            .scope_changes()
            .expect("scopes")
            .contains_key("interest:x"));
        let listed = store.interest_items("x", 0.5, 10).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].item.id, a);
        assert_eq!(listed[0].terms, [("halo".to_owned(), 0.5)]);
        assert_eq!(store.interest_items("x", 0.0, 10).expect("list").len(), 2);
        assert_eq!(store.interest_count("x", 0.5).expect("count"), 1);
        assert_eq!(store.interest_count("x", 0.0).expect("count"), 2);
    }
}
