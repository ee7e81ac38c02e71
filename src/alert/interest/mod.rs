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

/// A score as people read it (feeds, `interest rank`, the status page): three decimals,
/// cut rather than rounded, so a paper just under `min_score` never reads as at it
/// (0.98986 is `0.989`, not `0.990`).
pub fn shown_score(score: f32) -> String {
    // An f32 is within 1e-7 of the decimal it was written as: nudging by a millionth
    // keeps 0.9 (0.89999998 as f32) reading 0.900, while 0.98986 still reads 0.989.
    let cut = (f64::from(score) * 1000.0 + 1e-3).floor() / 1000.0;
    format!("{cut:.3}")
}

/// The text a model sees of one paper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Doc<'a> {
    /// The title.
    pub title: &'a str,
    /// The abstract or summary ("" when there is none).
    pub summary: &'a str,
}

#[cfg(test)]
mod shown_tests {
    use super::shown_score;

    #[test]
    fn a_score_is_cut_to_three_decimals_never_rounded_up_to_a_threshold() {
        assert_eq!(shown_score(0.98986), "0.989");
        assert_eq!(shown_score(0.99), "0.990");
        assert_eq!(shown_score(0.9), "0.900");
        assert_eq!(shown_score(0.85), "0.850");
        assert_eq!(shown_score(0.9999), "0.999");
        // Every threshold one can write with three decimals reads as written.
        for k in 0..=1000u16 {
            let written = format!("{}.{:03}", k / 1000, k % 1000);
            assert_eq!(shown_score(written.parse().unwrap()), written);
        }
        assert_eq!(shown_score(1.0), "1.000");
        assert_eq!(shown_score(0.0), "0.000");
        assert_eq!(shown_score(0.5), "0.500");
    }
}
