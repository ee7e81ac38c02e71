//! Interests: alerts for papers like the ones you keep, learned offline from your own
//! library.
//!
//! An interest is a named set of liked papers ([`likes`]: BibTeX, CSL-JSON or a list of
//! ids and titles). [`Model::train`] fits tf-idf features of titles and summaries and a
//! linear SVM with the likes as positives and the rest of the store as negatives, as
//! arxiv-sanity-lite does; [`Model::score`] ranks a new paper in microseconds, on the
//! ingest path, and [`Model::explain`] names the terms that weighed most.
//!
//! - [`likes`]: reading likes files.
//! - `tfidf`: the vectorizer (scikit-learn's `TfidfVectorizer` as arxiv-sanity-lite
//!   configures it).
//! - `svm`: the linear SVM (liblinear's dual coordinate descent, as `LinearSVC`).
//! - [`model`]: the two together, and the score's calibration.
//!
//! How well it ranks, beside scikit-learn on the same data, and what it costs: the
//! "Interests" section of BENCHMARKS.md (`bench/interest/run`).

pub mod likes;
pub mod model;
mod svm;
mod tfidf;

pub use likes::{normalize_doi, parse_likes, read_likes, Like, LikesError};
pub use model::{Fitted, Model, ModelStats, DEFAULT_MIN_SCORE};

/// The text a model sees of one paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc<'a> {
    /// The title.
    pub title: &'a str,
    /// The abstract or summary ("" when there is none).
    pub summary: &'a str,
}
