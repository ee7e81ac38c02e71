//! One interest's model: tf-idf features ([`super::tfidf`]) and a linear SVM
//! ([`super::svm`]) trained with the likes as positives and the rest of the store as
//! negatives, as arxiv-sanity-lite ranks papers for a tag.
//!
//! **The score** is the margin turned into a percentile among the store: the fraction
//! of the training negatives (the stored papers that are not liked) whose margin is
//! below this paper's. 0.99 means "ranks above 99 % of the papers you did not like",
//! whatever the interest's size or the SVM's scale, so one threshold,
//! [`DEFAULT_MIN_SCORE`], serves every interest. The negatives' margins are held out
//! (approximate leave-one-out, see `svm::Trained::held_out_margins`), and a stored
//! paper is scored by its own held-out margin ([`Fitted::held_out`]), a new one by the
//! model's: so a stored paper and a new one alike score their percentile among the
//! store's *other* papers, and about 1 % of the stored papers score 0.99 or more. The
//! percentile table keeps 1,025 knots, denser towards the top where thresholds live,
//! and above the best negative the score keeps growing towards 1 (never reaching it)
//! so that the best papers still rank among themselves.

use super::svm;
use super::tfidf::{Pruning, Vectorizer};
use super::Doc;

/// The default feed and alert threshold: a paper must score above 99 % of the stored
/// papers that are not liked. Chosen on the offline evaluation (BENCHMARKS.md
/// "Interests"): ...
pub const DEFAULT_MIN_SCORE: f32 = 0.99;

/// arxiv-sanity-lite's default `C` (its range is 0.01 to 0.1).
const C: f64 = 0.1;

/// Vocabulary size and memory of a trained model, for metrics and the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelStats {
    /// Features (unigrams and bigrams) in the vocabulary.
    pub vocabulary: usize,
    /// Liked papers it was trained on.
    pub positives: usize,
    /// Other papers it was trained on.
    pub negatives: usize,
    /// Approximate heap bytes held by the model.
    pub heap_bytes: usize,
}

/// A model with the scores of the documents it was trained on.
#[derive(Debug, Clone)]
pub struct Fitted {
    /// The model, for new papers.
    pub model: Model,
    /// Each training document's score from its held-out margin (positives first, then
    /// negatives, in the order given): its percentile among the *other* negatives, as a
    /// new paper's score is. [`Model::score`] of a training document would instead use
    /// the margin the model was fitted to, which the SVM pushes below -1 for every
    /// negative it can separate: in a small store the median stored paper then scored
    /// near 0 and the liked topic's unliked papers far below their place.
    pub held_out: Vec<f32>,
}

/// A trained tf-idf + linear model for one interest. `Send + Sync`; shared behind an Arc.
#[derive(Debug, Clone)]
pub struct Model {
    vectorizer: Vectorizer,
    weights: Vec<f32>,
    bias: f32,
    calibration: Calibration,
    positives: usize,
    negatives: usize,
}

impl Model {
    /// Trains on positives (likes) and negatives (the rest of the store, plus "not
    /// interested"). The same documents in the same order give the same model.
    pub fn train(positives: &[Doc<'_>], negatives: &[Doc<'_>]) -> Model {
        Model::fit(positives, negatives).model
    }

    /// [`Model::train`], also giving each training document its held-out score (see
    /// [`Fitted::held_out`]): what a stored paper scores, so that its score means what
    /// a new paper's does.
    pub fn fit(positives: &[Doc<'_>], negatives: &[Doc<'_>]) -> Fitted {
        let docs: Vec<Doc<'_>> = positives.iter().chain(negatives).copied().collect();
        let (vectorizer, rows) = Vectorizer::fit(&docs, Pruning::for_corpus(docs.len()));
        let labels: Vec<bool> = (0..docs.len()).map(|i| i < positives.len()).collect();
        let params = svm::Params {
            c: C,
            eps: 0.1,
            max_iter: 200,
        };
        let trained = svm::train(&rows, &labels, vectorizer.len(), params);
        // Percentiles among the negatives as the model would see them new (held out),
        // not as it fitted them: see svm::Trained::held_out_margins.
        let calibration = Calibration::new(trained.held_out_margins[positives.len()..].to_vec());
        let held_out = trained
            .held_out_margins
            .iter()
            .map(|&m| calibration.score(m))
            .collect();
        let model = Model {
            vectorizer,
            weights: trained.weights,
            bias: trained.bias,
            calibration,
            positives: positives.len(),
            negatives: negatives.len(),
        };
        Fitted { model, held_out }
    }

    /// The score of one paper (calibrated so [`DEFAULT_MIN_SCORE`] is a sensible
    /// threshold): its percentile among the store's papers that are not liked.
    pub fn score(&self, doc: &Doc<'_>) -> f32 {
        self.calibration.score(self.margin(doc))
    }

    /// The SVM's raw decision value for one paper (higher is more liked).
    pub fn margin(&self, doc: &Doc<'_>) -> f32 {
        let row = self.vectorizer.transform(doc);
        let (idx, val) = row.row(0);
        self.bias
            + idx
                .iter()
                .zip(val)
                .map(|(&f, &v)| self.weights[f as usize] * v)
                .sum::<f32>()
    }

    /// The `n` terms that weighed most for this paper, with their contributions to the
    /// margin ("why this paper"), largest first; only terms that count for it.
    pub fn explain(&self, doc: &Doc<'_>, n: usize) -> Vec<(String, f32)> {
        let row = self.vectorizer.transform(doc);
        let (idx, val) = row.row(0);
        let mut terms: Vec<(u32, f32)> = idx
            .iter()
            .zip(val)
            .map(|(&f, &v)| (f, self.weights[f as usize] * v))
            .filter(|&(_, c)| c > 0.0)
            .collect();
        // Ties by feature id (terms are numbered in text order): deterministic.
        terms.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        terms
            .into_iter()
            .take(n)
            .map(|(f, c)| (self.vectorizer.term(f), c))
            .collect()
    }

    /// Vocabulary size and approximate heap bytes, for metrics and the status page.
    pub fn stats(&self) -> ModelStats {
        ModelStats {
            vocabulary: self.vectorizer.len(),
            positives: self.positives,
            negatives: self.negatives,
            heap_bytes: self.vectorizer.heap_bytes()
                + self.weights.capacity() * 4
                + self.calibration.knots.capacity() * 8,
        }
    }
}

/// Margins to percentiles among the negatives: (margin, fraction of negatives below it)
/// knots, increasing in both.
#[derive(Debug, Clone, Default)]
struct Calibration {
    knots: Vec<(f32, f32)>,
    /// The margin scale of the top tail, beyond the last knot.
    tail: f32,
}

/// Knots in the percentile table; 1,025 is 8 KiB and resolves the top percent finely.
const KNOTS: usize = 1024;

impl Calibration {
    fn new(mut margins: Vec<f32>) -> Calibration {
        if margins.is_empty() {
            return Calibration::default();
        }
        margins.sort_unstable_by(f32::total_cmp);
        let n = margins.len();
        // Knot k sits at quantile 1 - (1 - k/K)^3: one in three knots is in the top
        // 4 %, where thresholds are set.
        let mut knots: Vec<(f32, f32)> = (0..=KNOTS)
            .map(|k| {
                let u = 1.0 - k as f64 / KNOTS as f64;
                let i = (((1.0 - u * u * u) * (n - 1) as f64).round() as usize).min(n - 1);
                (margins[i], ((i as f64 + 0.5) / n as f64) as f32)
            })
            .collect();
        knots.dedup_by(|b, a| b.0 <= a.0);
        // The tail's scale: the margin spread of the top percent of negatives.
        let top = margins[n - 1];
        let p99 = margins[((n - 1) as f64 * 0.99) as usize];
        let tail = (top - p99).max(1e-3);
        Calibration { knots, tail }
    }

    fn score(&self, margin: f32) -> f32 {
        let Some(&(m0, p0)) = self.knots.first() else {
            // No negatives to compare with: a logistic of the margin.
            return 1.0 / (1.0 + (-margin).exp());
        };
        let &(m_top, p_top) = self.knots.last().expect("not empty");
        if margin <= m0 {
            return p0 / (1.0 + (m0 - margin) / self.tail);
        }
        if margin >= m_top {
            // A slow (rational) approach to 1, so that f32 still tells margins apart
            // far beyond the best negative.
            return 1.0 - (1.0 - p_top) / (1.0 + (margin - m_top) / self.tail);
        }
        let i = self.knots.partition_point(|&(m, _)| m <= margin);
        let (ma, pa) = self.knots[i - 1];
        let (mb, pb) = self.knots[i];
        pa + (pb - pa) * (margin - ma) / (mb - ma)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two topics, deterministic: diffusion models (liked) and galaxy surveys.
    fn corpus() -> (Vec<String>, Vec<String>) {
        let ml = [
            "diffusion",
            "denoising",
            "score",
            "generative",
            "sampler",
            "noise",
            "image",
            "neural",
        ];
        let astro = [
            "galaxy",
            "cluster",
            "redshift",
            "survey",
            "dark",
            "matter",
            "halo",
            "telescope",
        ];
        let shared = [
            "we", "propose", "new", "method", "results", "data", "model", "study",
        ];
        let mut liked = Vec::new();
        let mut other = Vec::new();
        for i in 0..60usize {
            let words = |topic: &[&str]| {
                (0..12)
                    .map(|k| {
                        if (i + k) % 3 == 0 {
                            shared[(i * 7 + k) % shared.len()]
                        } else {
                            topic[(i * 5 + k * 3) % topic.len()]
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            if i < 10 {
                liked.push(words(&ml));
            }
            other.push(words(if i % 2 == 0 { &ml } else { &astro }));
        }
        (liked, other)
    }

    fn docs(texts: &[String]) -> Vec<Doc<'_>> {
        texts
            .iter()
            .map(|t| Doc {
                title: "",
                summary: t,
            })
            .collect()
    }

    #[test]
    fn the_liked_topic_ranks_first() {
        let (liked, other) = corpus();
        let model = Model::train(&docs(&liked), &docs(&other));
        let mut ranked: Vec<(f32, usize)> = docs(&other)
            .iter()
            .enumerate()
            .map(|(i, d)| (model.score(d), i))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        // The 30 diffusion papers (even i) come before the 30 galaxy papers.
        assert!(ranked[..30].iter().all(|&(_, i)| i % 2 == 0), "{ranked:?}");
        let new_ml = Doc {
            title: "A denoising diffusion sampler",
            summary: "score based generative noise",
        };
        let new_astro = Doc {
            title: "A galaxy cluster survey",
            summary: "redshift of dark matter halo",
        };
        // Half the store is galaxy papers: a new diffusion paper ranks above them all,
        // a new galaxy paper among them.
        let (ml, astro) = (model.score(&new_ml), model.score(&new_astro));
        assert!(ml > 0.5 && astro < 0.5, "{ml} {astro}");
    }

    #[test]
    fn explain_names_the_liked_topics_terms() {
        let (liked, other) = corpus();
        let model = Model::train(&docs(&liked), &docs(&other));
        let doc = Doc {
            title: "Denoising diffusion",
            summary: "a galaxy study of denoising diffusion",
        };
        let terms = model.explain(&doc, 3);
        let names: Vec<&str> = terms.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(terms.len(), 3, "{terms:?}");
        assert!(
            names.contains(&"diffusion") && names.contains(&"denoising"),
            "{terms:?}"
        );
        assert!(!names.iter().any(|t| t.contains("galaxy")), "{terms:?}");
        assert!(terms.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    /// Each model's hash maps get their own random seeds (foldhash), as after a restart,
    /// so this also shows that nothing depends on hash order.
    #[test]
    fn retraining_on_the_same_data_gives_the_same_scores() {
        let (liked, other) = corpus();
        let a = Model::train(&docs(&liked), &docs(&other));
        let b = Model::train(&docs(&liked), &docs(&other));
        for d in docs(&other) {
            assert_eq!(a.score(&d).to_bits(), b.score(&d).to_bits());
        }
        assert_eq!(a.stats(), b.stats());
    }

    /// A store of 400 papers, a quarter of them on the liked topic, each a varied
    /// draw of its topic's words and common words (a small LCG: deterministic).
    fn small_store(seed: u64) -> (Vec<String>, Vec<(String, bool)>) {
        let topic = |t: usize| -> Vec<String> {
            (0..40)
                .map(|w| format!("{}{w}", ["ml", "astro", "bio", "geo"][t]))
                .collect()
        };
        let topics: Vec<Vec<String>> = (0..4).map(topic).collect();
        let common: Vec<String> = (0..60).map(|w| format!("common{w}")).collect();
        let mut state = seed;
        let mut next = |n: usize| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((state >> 33) % n as u64) as usize
        };
        let mut paper = |t: usize| {
            (0..60)
                .map(|_| {
                    if next(2) == 0 {
                        common[next(common.len())].clone()
                    } else {
                        topics[t][next(topics[t].len())].clone()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let liked = (0..12).map(|_| paper(0)).collect();
        let stored = (0..400).map(|i| (paper(i % 4), i % 4 == 0)).collect();
        (liked, stored)
    }

    #[test]
    fn stored_papers_score_their_percentile_among_the_others() {
        let (liked, stored) = small_store(12345);
        let texts: Vec<String> = stored.iter().map(|(t, _)| t.clone()).collect();
        let fitted = Model::fit(&docs(&liked), &docs(&texts));
        let scores = &fitted.held_out[liked.len()..];
        // About 1 % of the stored papers at or above 0.99, as for new papers; the
        // fitted margins gave a median near 0 in a store this small.
        let above = scores.iter().filter(|&&s| s >= 0.99).count();
        assert!((1..=12).contains(&above), "{above} of 400 at or above 0.99");
        let mut sorted = scores.to_vec();
        sorted.sort_by(f32::total_cmp);
        let median = sorted[sorted.len() / 2];
        assert!((0.4..0.6).contains(&median), "median {median}");
        // The liked topic's other papers rank first.
        let mut ranked: Vec<(f32, bool)> = scores
            .iter()
            .zip(&stored)
            .map(|(&s, (_, on_topic))| (s, *on_topic))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        assert!(ranked[..100].iter().all(|&(_, on_topic)| on_topic));
        // A new paper on the liked topic (another draw) scores as its stored peers do.
        let new = small_store(777).1[4].0.clone();
        let s = fitted.model.score(&Doc {
            title: "",
            summary: &new,
        });
        assert!(s > 0.7, "{s}");
    }

    #[test]
    fn scores_are_percentiles_and_keep_ordering_beyond_the_best_negative() {
        let cal = Calibration::new((0..1000).map(|i| i as f32 / 1000.0).collect());
        assert!((cal.score(0.5) - 0.5).abs() < 0.01);
        assert!((cal.score(0.99) - 0.99).abs() < 0.002);
        let (a, b) = (cal.score(1.5), cal.score(3.0));
        assert!(cal.score(0.999) < a && a < b && b <= 1.0, "{a} {b}");
        assert!(cal.score(-1.0) < cal.score(0.0) && cal.score(-1.0) >= 0.0);
    }

    #[test]
    fn a_model_without_likes_scores_everything_alike() {
        let (_, other) = corpus();
        let model = Model::train(&[], &docs(&other));
        let s: Vec<f32> = docs(&other).iter().map(|d| model.score(d)).collect();
        assert!(s.windows(2).all(|w| w[0] == w[1]));
        assert!(s[0] < DEFAULT_MIN_SCORE);
    }
}
