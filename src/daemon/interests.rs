//! Interests in the running daemon: each `[[interest]]`'s current model, trained off
//! the ingest path and swapped in whole; the scoring of new entries in the ingest path;
//! and the form tokens of the status page's "like" and "not interested" buttons.
//!
//! # When a model is trained
//!
//! The training task ([`run`]) looks at every interest at start, every few seconds,
//! and at once when a verdict or the config changed. It trains an interest again when
//! its likes file changed (size or modification time), when its verdicts changed, or
//! when the store grew by a tenth since the last training (the vocabulary and the
//! negatives moved), or grew at all and the model is ten minutes old (a liked paper
//! that arrived since is then matched). Training reads the store once (the newest [`MAX_CORPUS`] items),
//! then trains without holding it; the new model replaces the old in one pointer swap,
//! so an ingest scores with the old model or the new, never half of each. Then every
//! stored item is scored again for the interest's feed; that rescoring alerts nobody:
//! only new items alert, from the ingest.
//!
//! # What a model learns from
//!
//! Positives: the stored items the likes file names (matched by arXiv id, DOI or
//! normalized title, as [`Store::item_for_like`] does), the likes that are not stored
//! (from their own title and abstract, when the file has them), and the items the user
//! said "like" to. Negatives: the rest of the store, as arxiv-sanity-lite does, and the
//! items the user said "not interested" to, counted twice (hard negatives).

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use chrono::Utc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::alert::interest::{Doc, Model};
use crate::alert::RuleSet;
use crate::config::{Config, InterestConfig};
use crate::entry::Entry;
use crate::publish::Publisher;
use crate::store::{
    self, AlertMatch, InterestMatch, Matcher, SharedStore, Store, StoreError, Verdict,
};

/// Most stored items an interest trains on and ranks, newest first: 100,000 trains in
/// well under the 2 s budget (BENCHMARKS.md).
pub const MAX_CORPUS: usize = 100_000;
/// How many terms explain a score ("why this paper").
pub const TERMS: usize = 5;
/// How often the training task looks for a changed likes file or a grown store.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Growth of the store that makes a model stale: one item in `GROWTH_OVER` (a tenth).
const GROWTH_OVER: u64 = 10;
/// Any growth makes a model this old stale: a liked paper that arrived since is then
/// matched, and new words counted, within this long, not only after a tenth more items.
const REFRESH_AFTER: Duration = Duration::from_secs(600);

/// Why an interest could not be trained.
#[derive(Debug, thiserror::Error)]
pub enum InterestError {
    /// The likes file could not be read or parsed.
    #[error("interest {interest:?}: {source}")]
    Likes {
        /// The interest.
        interest: String,
        /// What the likes reader said (it names the file).
        source: crate::alert::interest::LikesError,
    },
    /// The store could not be read or written.
    #[error("interest {interest:?}: {source}")]
    Store {
        /// The interest.
        interest: String,
        /// The store error.
        source: StoreError,
    },
    /// Nothing to learn from: no like matched, none has a title, no "like" verdict.
    #[error("interest {0:?}: no liked paper to learn from (the likes file names none that is stored or has a title)")]
    NoPositives(String),
}

/// What a model was trained on, to tell when it is stale.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrainedOn {
    likes: Option<(SystemTime, u64)>,
    verdicts: Vec<(i64, Verdict)>,
    items: u64,
    /// When the inputs were read.
    at: std::time::Instant,
}

/// One configured interest and its current model.
pub struct Interest {
    config: InterestConfig,
    model: RwLock<Option<Arc<Model>>>,
    /// The store keys of the likes file's papers (see [`store::like_keys`]), from the
    /// last training: a new entry filed under one is liked already, and not announced.
    liked_keys: RwLock<Arc<std::collections::HashSet<String>>>,
    trained_on: Mutex<Option<TrainedOn>>,
    status: Mutex<InterestStatus>,
}

/// What the status page, `/healthz` and `/metrics` show of an interest's model.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct InterestStatus {
    /// When the current model was trained.
    pub trained_at: Option<chrono::DateTime<Utc>>,
    /// How long its last training took (reading the likes and the store included),
    /// in seconds.
    pub training_seconds: f64,
    /// Liked papers it learned from, and how many of them are stored items.
    pub positives: usize,
    /// Of the positives, those found in the store.
    pub matched: usize,
    /// Entries of the likes file not found in the store (learned from their own title
    /// and abstract when the file has them).
    pub unmatched: usize,
    /// Its vocabulary size.
    pub vocabulary: usize,
    /// Stored items at or above its threshold after its last training: its feed.
    pub feed_items: usize,
    /// Trainings that failed since the interest was configured.
    pub training_errors: u64,
    /// Scorings of the stored items that could not be recorded since the interest
    /// was configured.
    pub scoring_errors: u64,
    /// Why the last training failed, while the previous model (if any) stays.
    pub error: Option<String>,
}

impl Interest {
    fn new(config: InterestConfig) -> Interest {
        Interest {
            config,
            model: RwLock::new(None),
            liked_keys: RwLock::default(),
            trained_on: Mutex::new(None),
            status: Mutex::new(InterestStatus::default()),
        }
    }

    /// The interest's config.
    pub fn config(&self) -> &InterestConfig {
        &self.config
    }

    /// The model in force, if one was trained.
    pub fn model(&self) -> Option<Arc<Model>> {
        crate::live::read(&self.model).clone()
    }

    /// What the status page shows of it.
    pub fn status(&self) -> InterestStatus {
        lock(&self.status).clone()
    }

    /// The match of an entry seen on `source`, when the interest covers the source,
    /// has a model and scores the entry at or above its threshold.
    fn score(&self, entry: &Entry, source: &str) -> Option<InterestMatch> {
        if !self.config.covers(source) {
            return None;
        }
        let model = self.model()?;
        let doc = Doc {
            title: &entry.title,
            summary: &entry.summary,
        };
        let score = model.score(&doc);
        if score < self.config.threshold() {
            return None;
        }
        // A paper of the likes file that arrives only now is what the interest learned
        // from, not a recommendation.
        let liked = crate::live::read(&self.liked_keys).clone();
        if !liked.is_empty() && entry.aliases().iter().any(|k| liked.contains(k)) {
            return None;
        }
        Some(InterestMatch {
            interest: self.config.name().to_owned(),
            score,
            terms: model.explain(&doc, TERMS),
            notifiers: self.config.notifiers(),
            digest_secs: self.config.digest_secs(),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every configured interest, shared by the ingest (scoring), the training task, the
/// server (feeds, buttons) and reload.
pub struct Interests {
    all: RwLock<Vec<Arc<Interest>>>,
    wake: Notify,
    /// Signs the status page's form tokens; new at every start, so a page from before
    /// a restart must be loaded again.
    form_key: [u8; 32],
}

impl Interests {
    /// The interests of `config`, none trained yet.
    pub fn new(config: &Config) -> Interests {
        let interests = Interests {
            all: RwLock::new(Vec::new()),
            wake: Notify::new(),
            form_key: rand::random(),
        };
        interests.configure(config);
        interests
    }

    /// Takes a config: an interest whose config did not change keeps its model; a new
    /// or changed one starts without (see [`Interests::reconfigure`] for a reload).
    pub fn configure(&self, config: &Config) {
        let next = self.next(config);
        *crate::live::write(&self.all) = next;
        self.wake.notify_one();
    }

    /// Takes a reloaded config, training each new or changed interest before it is put
    /// in force (blocking work, off the runtime): an entry ingested after the reload is
    /// scored by every interest of the new config, none of them still without a model.
    /// Meanwhile the old interests stay in force. An interest whose training fails (no
    /// liked paper yet) starts without a model, as at start.
    pub async fn reconfigure(&self, config: &Config, store: &SharedStore) {
        let next = self.next(config);
        let untrained: Vec<Arc<Interest>> = next
            .iter()
            .filter(|i| lock(&i.trained_on).is_none())
            .cloned()
            .collect();
        if !untrained.is_empty() {
            let store = store.clone();
            let trained = tokio::task::spawn_blocking(move || {
                let mut corpus = None;
                for interest in &untrained {
                    refresh(interest, &store, &mut corpus);
                }
            })
            .await;
            if let Err(e) = trained {
                tracing::error!(error = %e, "the new interests' training failed");
            }
        }
        *crate::live::write(&self.all) = next;
        self.wake.notify_one();
    }

    /// The interests of `config`, keeping those whose config did not change.
    fn next(&self, config: &Config) -> Vec<Arc<Interest>> {
        let all = crate::live::read(&self.all);
        config
            .interests
            .iter()
            .map(|c| {
                all.iter()
                    .find(|i| i.config == *c)
                    .cloned()
                    .unwrap_or_else(|| Arc::new(Interest::new(c.clone())))
            })
            .collect()
    }

    /// Every interest, in config order.
    pub fn all(&self) -> Vec<Arc<Interest>> {
        crate::live::read(&self.all).clone()
    }

    /// The interest with this name.
    pub fn get(&self, name: &str) -> Option<Arc<Interest>> {
        self.all().into_iter().find(|i| i.config.name() == name)
    }

    /// Tells the training task that a verdict changed.
    pub fn verdicts_changed(&self) {
        self.wake.notify_one();
    }

    /// The matches of a new entry: every interest that scores it high enough.
    pub fn score(&self, entry: &Entry, source: &str) -> Vec<InterestMatch> {
        crate::live::read(&self.all)
            .iter()
            .filter_map(|i| i.score(entry, source))
            .collect()
    }

    /// A new form token for a status page: a random nonce and its HMAC.
    pub fn form_token(&self) -> String {
        let nonce: [u8; 16] = rand::random();
        let nonce = hex::encode(nonce);
        let tag = self.sign(&nonce);
        format!("{nonce}.{tag}")
    }

    /// Whether a form token is one this daemon made.
    pub fn check_form_token(&self, token: &str) -> bool {
        use subtle::ConstantTimeEq;
        let Some((nonce, tag)) = token.split_once('.') else {
            return false;
        };
        let expected = self.sign(nonce);
        expected.as_bytes().ct_eq(tag.as_bytes()).into()
    }

    fn sign(&self, nonce: &str) -> String {
        use hmac::{Hmac, Mac};
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&self.form_key)
            .expect("HMAC takes a key of any length");
        mac.update(nonce.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

/// The ingest's matcher: the keyword rules, and the interests' models.
pub struct WithInterests {
    /// The compiled `[[alert]]` rules.
    pub rules: Arc<RuleSet>,
    /// The interests.
    pub interests: Arc<Interests>,
}

impl Matcher for WithInterests {
    fn matches(&self, entry: &Entry, source: &str) -> Vec<AlertMatch> {
        self.rules.matches(entry, source)
    }

    fn interests(&self, entry: &Entry, source: &str) -> Vec<InterestMatch> {
        self.interests.score(entry, source)
    }
}

/// A trained model with the corpus it ranks.
pub struct Trained {
    /// The model.
    pub model: Model,
    /// The stored items it was trained beside (newest first), to rank.
    pub corpus: Arc<Vec<store::CorpusItem>>,
    /// Each corpus item's score, from its held-out margin (see
    /// [`crate::alert::interest::Fitted::held_out`]): its percentile among the store's
    /// other papers, as a new paper's score is.
    pub stored_scores: Vec<f32>,
    /// The stored items learned from as liked (the likes file's and "like" verdicts,
    /// less "not interested"): never listed as the interest's recommendations.
    pub liked: std::collections::HashSet<i64>,
    /// The stored items said "not interested" to: never listed either.
    pub refused: std::collections::HashSet<i64>,
    /// Entries of the likes file not found in the store.
    pub unmatched: usize,
    /// The store keys of every paper of the likes file (see [`store::like_keys`]).
    pub liked_keys: std::collections::HashSet<String>,
    /// Liked papers learned from, and of them the ones found in the store.
    pub positives: usize,
    /// Of the positives, the stored ones.
    pub matched: usize,
}

/// Trains `config`'s model from its likes file, its verdicts and the store (blocking;
/// the store is locked only while it is read).
pub fn train(config: &InterestConfig, store: &SharedStore) -> Result<Trained, InterestError> {
    let corpus = read_corpus(store).map_err(|source| InterestError::Store {
        interest: config.name().to_owned(),
        source,
    })?;
    train_with(config, store, corpus)
}

/// The newest [`MAX_CORPUS`] stored items, which every interest trains on and ranks:
/// read once per round of trainings, whatever the number of interests (blocking). Read
/// a page at a time, letting go of the store in between, so an ingest waits for one
/// page at most, not the whole read.
fn read_corpus(store: &SharedStore) -> Result<Arc<Vec<store::CorpusItem>>, StoreError> {
    const PAGE: usize = 5_000;
    let mut corpus: Vec<store::CorpusItem> = Vec::new();
    while corpus.len() < MAX_CORPUS {
        let want = PAGE.min(MAX_CORPUS - corpus.len());
        let page = store::lock(store).corpus(corpus.last(), want)?;
        let done = page.len() < want;
        corpus.extend(page);
        if done {
            break;
        }
    }
    Ok(Arc::new(corpus))
}

/// [`train`] on a corpus already read.
fn train_with(
    config: &InterestConfig,
    store: &SharedStore,
    corpus: Arc<Vec<store::CorpusItem>>,
) -> Result<Trained, InterestError> {
    let name = config.name().to_owned();
    let likes = crate::alert::interest::read_likes(&config.likes_path()).map_err(|source| {
        InterestError::Likes {
            interest: name.clone(),
            source,
        }
    })?;
    let read = |s: &Store| -> Result<_, StoreError> {
        let mut matched = std::collections::HashSet::new();
        let mut unmatched = Vec::new();
        for like in &likes {
            match s.item_for_like(
                like.arxiv_id.as_deref(),
                like.doi.as_deref(),
                like.title.as_deref(),
            )? {
                Some(id) => {
                    matched.insert(id);
                }
                None => unmatched.push(like),
            }
        }
        Ok((matched, unmatched, s.verdicts(&name)?))
    };
    let (matched, unmatched, verdicts) =
        read(&store::lock(store)).map_err(|source| InterestError::Store {
            interest: name.clone(),
            source,
        })?;
    let liked: std::collections::HashSet<i64> = verdicts
        .iter()
        .filter(|(_, v)| *v == Verdict::Like)
        .map(|(id, _)| *id)
        .chain(matched.iter().copied())
        .collect();
    let refused: std::collections::HashSet<i64> = verdicts
        .iter()
        .filter(|(_, v)| *v == Verdict::NotInterested)
        .map(|(id, _)| *id)
        .collect();
    // A "not interested" verdict outweighs the likes file: the user said so last.
    let is_liked = |id: i64| liked.contains(&id) && !refused.contains(&id);
    let mut positives: Vec<Doc<'_>> = corpus.iter().filter(|i| is_liked(i.id)).map(doc).collect();
    let stored_positives = positives.len();
    positives.extend(unmatched.iter().filter_map(|like| {
        let title = like.title.as_deref().filter(|t| !t.trim().is_empty())?;
        Some(Doc {
            title,
            summary: like.summary.as_deref().unwrap_or(""),
        })
    }));
    if positives.is_empty() {
        return Err(InterestError::NoPositives(name));
    }
    let mut negatives: Vec<Doc<'_>> = corpus.iter().filter(|i| !is_liked(i.id)).map(doc).collect();
    negatives.extend(corpus.iter().filter(|i| refused.contains(&i.id)).map(doc));
    let fitted = Model::fit(&positives, &negatives);
    // Each stored item's held-out score: its row among the negatives (in corpus order,
    // after the positives). An item with a verdict or in the likes file is scored by
    // the model it trained instead: it is never recommended, and the leave-one-out
    // approximation is coarse for the few positives and the doubled hard negatives,
    // whose pull on the model is large; `interest rank` shows it for reference.
    let mut next_neg = positives.len();
    let stored_scores = corpus
        .iter()
        .map(|i| {
            let judged = is_liked(i.id) || refused.contains(&i.id);
            if !is_liked(i.id) {
                next_neg += 1;
            }
            if judged {
                fitted.model.score(&doc(i))
            } else {
                fitted.held_out[next_neg - 1]
            }
        })
        .collect();
    let liked_ids = corpus
        .iter()
        .filter(|i| is_liked(i.id))
        .map(|i| i.id)
        .collect();
    let refused_ids = corpus
        .iter()
        .filter(|i| refused.contains(&i.id))
        .map(|i| i.id)
        .collect();
    let count = positives.len();
    drop(positives);
    drop(negatives);
    let liked_keys = likes
        .iter()
        .flat_map(|l| store::like_keys(l.arxiv_id.as_deref(), l.doi.as_deref(), l.title.as_deref()))
        .collect();
    Ok(Trained {
        model: fitted.model,
        liked_keys,
        stored_scores,
        liked: liked_ids,
        refused: refused_ids,
        corpus,
        positives: count,
        matched: stored_positives,
        unmatched: unmatched.len(),
    })
}

/// Every covered item of `trained`'s corpus with its score, for `config`'s feed (at or
/// above `min_score`) or for `lookout interest rank` (`min_score` of
/// `f32::NEG_INFINITY`), best first; liked papers included (the feed leaves them out).
pub fn rank(
    config: &InterestConfig,
    trained: &Trained,
    source: Option<&str>,
    min_score: f32,
) -> Vec<(usize, f32)> {
    let mut ranked: Vec<(usize, f32)> = trained
        .corpus
        .iter()
        .enumerate()
        .filter(|(_, i)| match source {
            Some(s) => i.sources.iter().any(|x| x == s),
            None => i.sources.iter().any(|s| config.covers(s)),
        })
        .map(|(n, _)| (n, trained.stored_scores[n]))
        .filter(|(_, score)| *score >= min_score)
        .collect();
    // Best first; ties (and NaN, never expected) by recency, as the corpus is ordered.
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    ranked
}

/// The terms behind one ranked item's score.
pub fn terms(trained: &Trained, index: usize) -> Vec<(String, f32)> {
    trained.model.explain(&doc(&trained.corpus[index]), TERMS)
}

/// The text a model reads of a stored item.
fn doc(item: &store::CorpusItem) -> Doc<'_> {
    Doc {
        title: &item.title,
        summary: &item.summary,
    }
}

/// One line of `lookout interest rank`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Ranked {
    /// The item's row id (what the status page's buttons send).
    pub id: i64,
    /// Its score.
    pub score: f32,
    /// Its title.
    pub title: String,
    /// The sources that saw it.
    pub sources: Vec<String>,
    /// Whether it is liked (the likes file, or the like button): never in the feed.
    pub liked: bool,
    /// The terms that weighed most, with their contributions.
    pub terms: Vec<(String, f32)>,
}

/// Why `lookout interest rank` could not rank.
#[derive(Debug, thiserror::Error)]
pub enum RankError {
    /// No interest has that name.
    #[error("no interest named {name:?} (configured: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: String,
    },
    /// The store could not be opened.
    #[error(transparent)]
    Open(#[from] super::DaemonError),
    /// The model could not be trained.
    #[error(transparent)]
    Train(#[from] InterestError),
}

/// `lookout interest rank`: trains the interest's model from the store at `config`'s
/// state directory as the daemon does (so the scores are the daemon's) and ranks the
/// stored items it covers (or `source`'s), best first, `limit` of them. Blocking.
pub fn rank_stored(
    config: &Config,
    name: &str,
    source: Option<&str>,
    limit: usize,
) -> Result<Vec<Ranked>, RankError> {
    let interest = config
        .interests
        .iter()
        .find(|i| i.name() == name)
        .ok_or_else(|| RankError::Unknown {
            name: name.to_owned(),
            known: config
                .interests
                .iter()
                .map(InterestConfig::name)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    // As for `lookout import --source`.
    if let Some(name) = source.filter(|name| config.source(name).is_none()) {
        return Err(super::DaemonError::UnknownSource {
            name: name.to_owned(),
            known: config.source_names().join(", "),
        }
        .into());
    }

    let store = super::open_store(config)?;
    let trained = train(interest, &store)?;
    Ok(rank(interest, &trained, source, f32::NEG_INFINITY)
        .into_iter()
        .take(limit)
        .map(|(n, score)| {
            let item = &trained.corpus[n];
            Ranked {
                id: item.id,
                score,
                title: item.title.clone(),
                sources: item.sources.clone(),
                liked: trained.liked.contains(&item.id),
                terms: terms(&trained, n),
            }
        })
        .collect())
}

/// What an interest's training depends on now (blocking): its likes file's stamp, its
/// verdicts and the store's size.
fn inputs(interest: &Interest, store: &SharedStore) -> Result<TrainedOn, StoreError> {
    let likes = std::fs::metadata(interest.config.likes_path())
        .ok()
        .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
    let s = store::lock(store);
    Ok(TrainedOn {
        likes,
        verdicts: s.verdicts(interest.config.name())?,
        items: s.item_count()?,
        at: std::time::Instant::now(),
    })
}

/// Whether a model trained on `old` is stale given `now`.
fn stale(old: Option<&TrainedOn>, now: &TrainedOn) -> bool {
    match old {
        None => true,
        Some(old) => {
            old.likes != now.likes
                || old.verdicts != now.verdicts
                || (now.items > old.items
                    && (now.items.saturating_mul(GROWTH_OVER)
                        >= old.items.saturating_mul(GROWTH_OVER + 1)
                        || now.at.saturating_duration_since(old.at) >= REFRESH_AFTER))
        }
    }
}

/// Trains one interest if it is stale, swaps the model in and rescores its feed
/// (blocking); `corpus` is read at the first stale interest of a round and shared by
/// the others. Returns whether the store changed.
fn refresh(
    interest: &Interest,
    store: &SharedStore,
    corpus: &mut Option<Arc<Vec<store::CorpusItem>>>,
) -> bool {
    let name = interest.config.name();
    let now = match inputs(interest, store) {
        Ok(now) => now,
        Err(e) => {
            tracing::warn!(interest = %name, error = %e, "cannot read what the interest trains on");
            return false;
        }
    };
    if !stale(lock(&interest.trained_on).as_ref(), &now) {
        return false;
    }
    let started = std::time::Instant::now();
    // Recorded before training: a likes file that fails is not read again every tick,
    // only when it changes.
    *lock(&interest.trained_on) = Some(now);
    let shared = match corpus {
        Some(shared) => Arc::clone(shared),
        None => match read_corpus(store) {
            Ok(read) => Arc::clone(corpus.insert(read)),
            Err(e) => {
                tracing::warn!(interest = %name, error = %e, "cannot read the stored items");
                return false;
            }
        },
    };
    let trained = match train_with(&interest.config, store, shared) {
        Ok(trained) => trained,
        Err(e) => {
            tracing::warn!(interest = %name, error = %e, "interest not trained; the previous model stays");
            let mut status = lock(&interest.status);
            status.error = Some(e.to_string());
            status.training_errors += 1;
            return false;
        }
    };
    let took = started.elapsed();
    let ranked = rank(
        &interest.config,
        &trained,
        None,
        interest.config.threshold(),
    );
    // The liked papers are what the interest learned from, not what it recommends
    // (arxiv-sanity-lite does not recommend what you tagged either); a paper said "not
    // interested" to is not recommended again.
    let rows: Vec<store::ScoreRow> = ranked
        .iter()
        .filter(|&&(n, _)| {
            let id = trained.corpus[n].id;
            !trained.liked.contains(&id) && !trained.refused.contains(&id)
        })
        .map(|&(n, score)| store::ScoreRow {
            item_id: trained.corpus[n].id,
            seen: trained.corpus[n].seen,
            score,
            terms: terms(&trained, n),
        })
        .collect();
    let stats = trained.model.stats();
    *crate::live::write(&interest.model) = Some(Arc::new(trained.model));
    *crate::live::write(&interest.liked_keys) = Arc::new(trained.liked_keys);
    {
        let mut status = lock(&interest.status);
        *status = InterestStatus {
            trained_at: Some(Utc::now()),
            training_seconds: took.as_secs_f64(),
            positives: trained.positives,
            matched: trained.matched,
            unmatched: trained.unmatched,
            vocabulary: stats.vocabulary,
            feed_items: rows.len(),
            error: None,
            ..status.clone()
        };
    }
    tracing::info!(interest = %name, positives = trained.positives, matched = trained.matched,
        items = trained.corpus.len(), vocabulary = stats.vocabulary, took = ?took,
        feed = rows.len(), "interest trained");
    match store::lock(store).replace_interest_scores(name, &rows, Utc::now()) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(interest = %name, error = %e, "cannot record the interest's scores");
            lock(&interest.status).scoring_errors += 1;
            false
        }
    }
}

/// Brings every stale interest's model and feed up to date once (what the training
/// task does each turn); returns whether the store changed.
pub async fn refresh_all(interests: &Interests, store: &SharedStore) -> bool {
    let all = interests.all();
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut corpus = None;
        all.iter().fold(false, |changed, i| {
            refresh(i, &store, &mut corpus) | changed
        })
    })
    .await
    .unwrap_or(false)
}

/// The training task: keeps every interest's model current (see the module docs)
/// until `shutdown`.
pub async fn run(
    interests: Arc<Interests>,
    store: SharedStore,
    publisher: Arc<Publisher>,
    shutdown: CancellationToken,
) {
    loop {
        if refresh_all(&interests, &store).await {
            if let Ok(g) = store::blocking(&store, |s| s.generation()).await {
                publisher.store_changed(g);
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = interests.wake.notified() => {}
            () = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on(items: u64, verdicts: Vec<(i64, Verdict)>) -> TrainedOn {
        TrainedOn {
            likes: Some((SystemTime::UNIX_EPOCH, 10)),
            verdicts,
            items,
            at: std::time::Instant::now(),
        }
    }

    #[test]
    fn a_model_is_stale_after_new_likes_new_verdicts_or_a_tenth_more_items() {
        let old = on(100, Vec::new());
        assert!(stale(None, &old));
        assert!(!stale(Some(&old), &on(109, Vec::new())));
        assert!(stale(Some(&old), &on(110, Vec::new())));
        assert!(stale(Some(&old), &on(100, vec![(1, Verdict::Like)])));
        let mut later = on(101, Vec::new());
        later.at = old.at + REFRESH_AFTER;
        assert!(stale(Some(&old), &later), "any growth after a while");
        later.items = 100;
        assert!(!stale(Some(&old), &later), "no growth, no training");
        let mut touched = on(100, Vec::new());
        touched.likes = Some((SystemTime::UNIX_EPOCH, 11));
        assert!(stale(Some(&old), &touched));
    }

    #[test]
    fn form_tokens_verify_here_and_nowhere_else() {
        let config = Config::parse("", "t.toml").expect("config");
        let (a, b) = (Interests::new(&config), Interests::new(&config));
        let token = a.form_token();
        assert!(a.check_form_token(&token));
        assert!(!b.check_form_token(&token));
        assert!(!a.check_form_token("abc.def"));
        assert!(!a.check_form_token(""));
    }
}
