//! tf-idf features of a paper's title and summary, as arxiv-sanity-lite computes them with
//! scikit-learn's `TfidfVectorizer`: accents stripped, lowercased, tokens of two or more
//! word characters starting with a letter, English stop words removed, unigrams and
//! bigrams, sublinear tf (`1 + ln tf`), smooth idf, rows l2-normalised.
//!
//! The vocabulary is pruned as arxiv-sanity-lite prunes it (`min_df`, `max_df`,
//! `max_features` most frequent terms), which bounds a model's memory whatever the store
//! holds. Fitting interns tokens to `u32` ids first and counts bigrams as pairs of ids,
//! only for pairs of words that are frequent enough themselves: a bigram is never more
//! frequent than either of its words, so this drops nothing `min_df` would keep and
//! spares counting millions of one-off pairs (training time, BENCHMARKS.md "Interests").

use std::collections::HashMap;

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

use super::Doc;

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// How the vocabulary is pruned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pruning {
    /// Terms in fewer documents than this are dropped.
    pub min_df: u32,
    /// Terms in more than this fraction of documents are dropped (too common to tell).
    pub max_df: f32,
    /// At most this many terms are kept, the most frequent first.
    pub max_features: usize,
}

impl Pruning {
    /// arxiv-sanity-lite's settings (`min_df=5, max_df=0.1, max_features=20000`), relaxed
    /// for small stores where they would leave no vocabulary: with fewer than a few
    /// thousand papers a word's document frequency says little, and a topic's own words
    /// may well be in a tenth of them.
    pub fn for_corpus(n_docs: usize) -> Self {
        Pruning {
            min_df: (n_docs / 2000).clamp(1, 5) as u32,
            max_df: if n_docs >= 2000 { 0.1 } else { 1.0 },
            max_features: 20_000,
        }
    }
}

/// A sparse matrix in compressed rows: row `r` is `indices/data[indptr[r]..indptr[r+1]]`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Csr {
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub data: Vec<f32>,
}

impl Csr {
    /// Row `r` as (feature, value) slices.
    pub fn row(&self, r: usize) -> (&[u32], &[f32]) {
        let span = self.indptr[r]..self.indptr[r + 1];
        (&self.indices[span.clone()], &self.data[span])
    }

    /// The number of rows.
    pub fn rows(&self) -> usize {
        self.indptr.len().saturating_sub(1)
    }
}

/// No unigram or feature: the id a word outside the vocabulary gets.
const NONE: u32 = u32::MAX;

/// A fitted vocabulary: which words and word pairs are features, and their idf.
#[derive(Debug, Clone, Default)]
pub(crate) struct Vectorizer {
    /// Every kept word (a feature itself, or part of a bigram feature) to its word id.
    words: Map<Box<str>, u32>,
    /// Word id to its text (for explanations).
    word_text: Vec<Box<str>>,
    /// Word id to its unigram feature, or `NONE`.
    word_feature: Vec<u32>,
    /// (first word id, second word id) packed in a u64, to the bigram's feature.
    bigrams: Map<u64, u32>,
    /// Feature to its word ids (second `NONE` for a unigram), for explanations.
    feature_words: Vec<(u32, u32)>,
    /// Feature to its idf.
    idf: Vec<f32>,
}

/// Word texts to dense ids, for fitting. Keyed by the word's 64-bit hash, with the
/// texts in one buffer: a lookup compares bytes in that buffer instead of following a
/// pointer per key, which made interning the bulk of the training time. Two words with
/// the same hash (about one chance in 10^8 for a million words) still get two ids.
#[derive(Default)]
struct Interner {
    hasher: foldhash::fast::FixedState,
    ids: HashMap<u64, u32, BuildNoHash>,
    collisions: Map<Box<str>, u32>,
    bytes: String,
    spans: Vec<(u32, u32)>,
}

impl Interner {
    fn intern(&mut self, word: &str) -> u32 {
        use std::hash::BuildHasher;
        let h = self.hasher.hash_one(word);
        let next = self.spans.len() as u32;
        let id = *self.ids.entry(h).or_insert(next);
        if id == next {
            self.push(word);
            return id;
        }
        if self.text(id) == word {
            return id;
        }
        match self.collisions.get(word) {
            Some(&id) => id,
            None => {
                self.collisions.insert(word.into(), next);
                self.push(word);
                next
            }
        }
    }

    fn push(&mut self, word: &str) {
        self.spans
            .push((self.bytes.len() as u32, word.len() as u32));
        self.bytes.push_str(word);
    }

    fn text(&self, id: u32) -> &str {
        let (start, len) = self.spans[id as usize];
        &self.bytes[start as usize..(start + len) as usize]
    }

    fn len(&self) -> usize {
        self.spans.len()
    }
}

/// The keys of `Interner::ids` are hashes already.
#[derive(Default, Clone, Copy)]
struct BuildNoHash;

impl std::hash::BuildHasher for BuildNoHash {
    type Hasher = NoHash;
    fn build_hasher(&self) -> NoHash {
        NoHash(0)
    }
}

struct NoHash(u64);

impl std::hash::Hasher for NoHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; this keeps the trait whole.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

fn pair(a: u32, b: u32) -> u64 {
    (u64::from(a) << 32) | u64::from(b)
}

impl Vectorizer {
    /// The number of features.
    pub fn len(&self) -> usize {
        self.idf.len()
    }

    /// The text of a feature: a word, or two words separated by a space.
    pub fn term(&self, feature: u32) -> String {
        let (a, b) = self.feature_words[feature as usize];
        if b == NONE {
            self.word_text[a as usize].to_string()
        } else {
            format!(
                "{} {}",
                self.word_text[a as usize], self.word_text[b as usize]
            )
        }
    }

    /// Approximate heap bytes (maps counted at their capacity with per-entry overhead).
    pub fn heap_bytes(&self) -> usize {
        let words: usize = self.word_text.iter().map(|w| w.len()).sum::<usize>() * 2;
        words
            + self.words.capacity() * (16 + 4 + 1)
            + self.word_text.capacity() * 16
            + self.word_feature.capacity() * 4
            + self.bigrams.capacity() * (8 + 4 + 1)
            + self.feature_words.capacity() * 8
            + self.idf.capacity() * 4
    }

    /// Fits the vocabulary on `docs` and returns it with the docs' tf-idf rows.
    pub fn fit(docs: &[Doc<'_>], pruning: Pruning) -> (Vectorizer, Csr) {
        // Pass 1: intern every token; a document is a run of word ids, with NONE
        // between title and summary so that no bigram spans them.
        let mut texts = Interner::default();
        let mut tokens: Vec<u32> = Vec::new();
        let mut starts: Vec<usize> = Vec::with_capacity(docs.len() + 1);
        let mut buf = String::new();
        for doc in docs {
            starts.push(tokens.len());
            for (i, part) in [doc.title, doc.summary].into_iter().enumerate() {
                if i > 0 {
                    tokens.push(NONE);
                }
                for_each_token(part, &mut buf, |t| tokens.push(texts.intern(t)));
            }
        }
        starts.push(tokens.len());
        let n_docs = docs.len();
        let doc_tokens = |d: usize| &tokens[starts[d]..starts[d + 1]];

        // Pass 2: document frequencies of words, then of pairs of frequent words.
        let mut word_df = vec![0u32; texts.len()];
        let mut scratch: Vec<u64> = Vec::new();
        for d in 0..n_docs {
            scratch.clear();
            scratch.extend(
                doc_tokens(d)
                    .iter()
                    .filter(|&&t| t != NONE)
                    .map(|&t| u64::from(t)),
            );
            scratch.sort_unstable();
            scratch.dedup();
            for &t in &scratch {
                word_df[t as usize] += 1;
            }
        }
        // A bigram is in no more documents than either of its words, and a kept feature
        // is at least as frequent as the max_features-th most frequent eligible word
        // (bigrams only add competitors). So only pairs of words at least that frequent
        // can be kept: counting the others would change nothing, and they are most of
        // the distinct pairs of a large store.
        let max_df = (pruning.max_df as f64 * n_docs as f64).floor().max(1.0) as u32;
        let ok = |df: u32| df >= pruning.min_df && df <= max_df;
        let floor = {
            let mut eligible: Vec<u32> = word_df.iter().copied().filter(|&df| ok(df)).collect();
            if eligible.len() > pruning.max_features {
                let k = pruning.max_features - 1;
                *eligible.select_nth_unstable_by(k, |a, b| b.cmp(a)).1
            } else {
                pruning.min_df
            }
        }
        .max(pruning.min_df);
        let frequent = |t: u32| t != NONE && word_df[t as usize] >= floor;
        // Each document's distinct pairs, all in one vector, sorted and counted in runs:
        // faster and smaller than a hash map of millions of pairs.
        let mut pairs: Vec<u64> = Vec::new();
        for d in 0..n_docs {
            let start = pairs.len();
            pairs.extend(
                doc_tokens(d)
                    .windows(2)
                    .filter(|w| frequent(w[0]) && frequent(w[1]))
                    .map(|w| pair(w[0], w[1])),
            );
            pairs[start..].sort_unstable();
            let mut kept = start;
            for i in start..pairs.len() {
                if i == start || pairs[i] != pairs[kept - 1] {
                    pairs[kept] = pairs[i];
                    kept += 1;
                }
            }
            pairs.truncate(kept);
        }
        pairs.sort_unstable();
        let mut pair_df: Vec<(u64, u32)> = Vec::new();
        for run in pairs.chunk_by(|a, b| a == b) {
            let df = run.len() as u32;
            if ok(df) {
                pair_df.push((run[0], df));
            }
        }
        drop(pairs);

        // Pruning: min_df, max_df, then the max_features most frequent; ties at the
        // cut broken by the term's text so that the vocabulary does not depend on
        // hash order.
        let mut candidates: Vec<(u32, u32, u32)> = word_df
            .iter()
            .enumerate()
            .filter(|(_, &df)| ok(df))
            .map(|(t, &df)| (df, t as u32, NONE))
            .collect();
        candidates.extend(
            pair_df
                .iter()
                .map(|&(p, df)| (df, (p >> 32) as u32, p as u32)),
        );
        let by_text = |&(_, a, b): &(u32, u32, u32)| {
            let second = if b == NONE { "" } else { texts.text(b) };
            (texts.text(a), b != NONE, second)
        };
        if candidates.len() > pruning.max_features {
            candidates.sort_unstable_by_key(|c| std::cmp::Reverse(c.0));
            let cut = candidates[pruning.max_features - 1].0;
            let above = candidates.partition_point(|c| c.0 > cut);
            let at_cut_end = candidates.partition_point(|c| c.0 >= cut);
            candidates[above..at_cut_end].sort_unstable_by(|x, y| by_text(x).cmp(&by_text(y)));
            candidates.truncate(pruning.max_features);
        }
        candidates.sort_unstable_by(|x, y| by_text(x).cmp(&by_text(y)));

        // The kept words get new ids in text order (deterministic); features are
        // numbered in the sorted candidates' order.
        let mut kept: Vec<u32> = candidates
            .iter()
            .flat_map(|&(_, a, b)| [a, b])
            .filter(|&t| t != NONE)
            .collect();
        kept.sort_unstable_by(|&a, &b| texts.text(a).cmp(texts.text(b)));
        kept.dedup();
        let mut new_id = vec![NONE; texts.len()];
        for (i, &t) in kept.iter().enumerate() {
            new_id[t as usize] = i as u32;
        }
        let mut v = Vectorizer {
            words: kept
                .iter()
                .map(|&t| (texts.text(t).into(), new_id[t as usize]))
                .collect(),
            word_text: kept.iter().map(|&t| texts.text(t).into()).collect(),
            word_feature: vec![NONE; kept.len()],
            ..Vectorizer::default()
        };
        // Old ids to features, for vectorizing the training documents below.
        let mut old_word_feature = vec![NONE; texts.len()];
        let mut old_pair_feature: Map<u64, u32> = Map::default();
        // Which words begin or end a bigram feature: most pairs are rejected by these
        // two lookups before the hash map is asked.
        let mut begins = vec![false; texts.len()];
        let mut ends = vec![false; texts.len()];
        for (f, &(df, a, b)) in candidates.iter().enumerate() {
            let f = f as u32;
            if b == NONE {
                v.word_feature[new_id[a as usize] as usize] = f;
                old_word_feature[a as usize] = f;
            } else {
                v.bigrams
                    .insert(pair(new_id[a as usize], new_id[b as usize]), f);
                old_pair_feature.insert(pair(a, b), f);
                begins[a as usize] = true;
                ends[b as usize] = true;
            }
            v.feature_words.push((
                new_id[a as usize],
                if b == NONE { NONE } else { new_id[b as usize] },
            ));
            v.idf
                .push(((1.0 + n_docs as f64) / (1.0 + f64::from(df))).ln() as f32 + 1.0);
        }

        // Pass 3: the training rows.
        let mut rows = Csr {
            indptr: Vec::with_capacity(n_docs + 1),
            ..Csr::default()
        };
        rows.indptr.push(0);
        let mut features: Vec<u32> = Vec::new();
        for d in 0..n_docs {
            features.clear();
            let toks = doc_tokens(d);
            features.extend(
                toks.iter()
                    .filter(|&&t| t != NONE)
                    .map(|&t| old_word_feature[t as usize])
                    .filter(|&f| f != NONE),
            );
            features.extend(
                toks.windows(2)
                    .filter(|w| w[0] != NONE && w[1] != NONE)
                    .filter(|w| begins[w[0] as usize] && ends[w[1] as usize])
                    .filter_map(|w| old_pair_feature.get(&pair(w[0], w[1])).copied()),
            );
            v.push_row(&mut features, &mut rows);
        }
        (v, rows)
    }

    /// Appends the tf-idf row of a document's feature occurrences (sorted here).
    fn push_row(&self, features: &mut [u32], rows: &mut Csr) {
        features.sort_unstable();
        let start = rows.indices.len();
        let mut i = 0;
        while i < features.len() {
            let f = features[i];
            let run = features[i..].iter().take_while(|&&g| g == f).count();
            rows.indices.push(f);
            rows.data
                .push((1.0 + (run as f32).ln()) * self.idf[f as usize]);
            i += run;
        }
        let norm = rows.data[start..].iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm > 0.0 {
            rows.data[start..].iter_mut().for_each(|x| *x /= norm);
        }
        rows.indptr.push(rows.indices.len());
    }

    /// The tf-idf row of one document, as (feature, value) pairs sorted by feature.
    pub fn transform(&self, doc: &Doc<'_>) -> Csr {
        let mut features = Vec::new();
        let mut buf = String::new();
        for part in [doc.title, doc.summary] {
            let mut prev = NONE;
            for_each_token(part, &mut buf, |t| {
                let id = self.words.get(t).copied().unwrap_or(NONE);
                if id != NONE {
                    let f = self.word_feature[id as usize];
                    if f != NONE {
                        features.push(f);
                    }
                    if prev != NONE {
                        if let Some(&f) = self.bigrams.get(&pair(prev, id)) {
                            features.push(f);
                        }
                    }
                }
                prev = id;
            });
        }
        let mut row = Csr {
            indptr: vec![0],
            ..Csr::default()
        };
        self.push_row(&mut features, &mut row);
        row
    }
}

/// Calls `f` with each token of `text` in order, as scikit-learn's `TfidfVectorizer`
/// configured by arxiv-sanity-lite makes them: accents stripped (NFKD, combining marks
/// dropped), lowercased, runs of word characters matching `[a-z_][a-z0-9_]+` whole,
/// English stop words removed. `buf` is scratch space, reused between calls.
pub(crate) fn for_each_token(text: &str, buf: &mut String, mut f: impl FnMut(&str)) {
    buf.clear();
    if text.is_ascii() {
        buf.push_str(text);
        buf.make_ascii_lowercase();
    } else {
        buf.extend(
            text.nfkd()
                .filter(|c| !is_combining_mark(*c))
                .flat_map(char::to_lowercase),
        );
    }
    // A token is a maximal run of Unicode word characters (as `\b` delimits it) that is
    // entirely ASCII, starts with a letter or `_`, and has two characters or more.
    // ASCII text (nearly every abstract) is scanned by bytes; the rest by characters,
    // since a non-ASCII letter (α) is a word character that makes its run no token.
    let text = buf.as_str();
    let bytes = text.as_bytes();
    let is_word_byte = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut i = 0;
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) && bytes[i] < 0x80 {
            i += 1;
            continue;
        }
        let start = i;
        let mut ascii = true;
        while i < bytes.len() {
            let b = bytes[i];
            if is_word_byte(b) {
                i += 1;
            } else if b < 0x80 {
                break;
            } else {
                let c = text[i..].chars().next().expect("on a char boundary");
                if !(c.is_alphanumeric() || c == '_') {
                    break;
                }
                ascii = false;
                i += c.len_utf8();
            }
        }
        if i == start {
            // A non-ASCII character that is not a word character: a separator.
            i += text[i..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let word = &text[start..i];
        let first = bytes[start];
        if ascii
            && word.len() >= 2
            && (first.is_ascii_alphabetic() || first == b'_')
            && !is_stop_word(word)
        {
            f(word);
        }
    }
}

fn is_stop_word(word: &str) -> bool {
    // One hash and at most one comparison: a binary search over the list was a tenth
    // of the training time (16 million tokens for 100,000 papers).
    static SET: std::sync::LazyLock<std::collections::HashSet<&str, foldhash::fast::FixedState>> =
        std::sync::LazyLock::new(|| STOP_WORDS.iter().copied().collect());
    word.len() <= 12 && SET.contains(word)
}

/// scikit-learn's `ENGLISH_STOP_WORDS` (from the Glasgow Information Retrieval Group's
/// list), sorted; arxiv-sanity-lite removes them.
const STOP_WORDS: [&str; 318] = [
    "a",
    "about",
    "above",
    "across",
    "after",
    "afterwards",
    "again",
    "against",
    "all",
    "almost",
    "alone",
    "along",
    "already",
    "also",
    "although",
    "always",
    "am",
    "among",
    "amongst",
    "amoungst",
    "amount",
    "an",
    "and",
    "another",
    "any",
    "anyhow",
    "anyone",
    "anything",
    "anyway",
    "anywhere",
    "are",
    "around",
    "as",
    "at",
    "back",
    "be",
    "became",
    "because",
    "become",
    "becomes",
    "becoming",
    "been",
    "before",
    "beforehand",
    "behind",
    "being",
    "below",
    "beside",
    "besides",
    "between",
    "beyond",
    "bill",
    "both",
    "bottom",
    "but",
    "by",
    "call",
    "can",
    "cannot",
    "cant",
    "co",
    "con",
    "could",
    "couldnt",
    "cry",
    "de",
    "describe",
    "detail",
    "do",
    "done",
    "down",
    "due",
    "during",
    "each",
    "eg",
    "eight",
    "either",
    "eleven",
    "else",
    "elsewhere",
    "empty",
    "enough",
    "etc",
    "even",
    "ever",
    "every",
    "everyone",
    "everything",
    "everywhere",
    "except",
    "few",
    "fifteen",
    "fifty",
    "fill",
    "find",
    "fire",
    "first",
    "five",
    "for",
    "former",
    "formerly",
    "forty",
    "found",
    "four",
    "from",
    "front",
    "full",
    "further",
    "get",
    "give",
    "go",
    "had",
    "has",
    "hasnt",
    "have",
    "he",
    "hence",
    "her",
    "here",
    "hereafter",
    "hereby",
    "herein",
    "hereupon",
    "hers",
    "herself",
    "him",
    "himself",
    "his",
    "how",
    "however",
    "hundred",
    "i",
    "ie",
    "if",
    "in",
    "inc",
    "indeed",
    "interest",
    "into",
    "is",
    "it",
    "its",
    "itself",
    "keep",
    "last",
    "latter",
    "latterly",
    "least",
    "less",
    "ltd",
    "made",
    "many",
    "may",
    "me",
    "meanwhile",
    "might",
    "mill",
    "mine",
    "more",
    "moreover",
    "most",
    "mostly",
    "move",
    "much",
    "must",
    "my",
    "myself",
    "name",
    "namely",
    "neither",
    "never",
    "nevertheless",
    "next",
    "nine",
    "no",
    "nobody",
    "none",
    "noone",
    "nor",
    "not",
    "nothing",
    "now",
    "nowhere",
    "of",
    "off",
    "often",
    "on",
    "once",
    "one",
    "only",
    "onto",
    "or",
    "other",
    "others",
    "otherwise",
    "our",
    "ours",
    "ourselves",
    "out",
    "over",
    "own",
    "part",
    "per",
    "perhaps",
    "please",
    "put",
    "rather",
    "re",
    "same",
    "see",
    "seem",
    "seemed",
    "seeming",
    "seems",
    "serious",
    "several",
    "she",
    "should",
    "show",
    "side",
    "since",
    "sincere",
    "six",
    "sixty",
    "so",
    "some",
    "somehow",
    "someone",
    "something",
    "sometime",
    "sometimes",
    "somewhere",
    "still",
    "such",
    "system",
    "take",
    "ten",
    "than",
    "that",
    "the",
    "their",
    "them",
    "themselves",
    "then",
    "thence",
    "there",
    "thereafter",
    "thereby",
    "therefore",
    "therein",
    "thereupon",
    "these",
    "they",
    "thick",
    "thin",
    "third",
    "this",
    "those",
    "though",
    "three",
    "through",
    "throughout",
    "thru",
    "thus",
    "to",
    "together",
    "too",
    "top",
    "toward",
    "towards",
    "twelve",
    "twenty",
    "two",
    "un",
    "under",
    "until",
    "up",
    "upon",
    "us",
    "very",
    "via",
    "was",
    "we",
    "well",
    "were",
    "what",
    "whatever",
    "when",
    "whence",
    "whenever",
    "where",
    "whereafter",
    "whereas",
    "whereby",
    "wherein",
    "whereupon",
    "wherever",
    "whether",
    "which",
    "while",
    "whither",
    "who",
    "whoever",
    "whole",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "within",
    "without",
    "would",
    "yet",
    "you",
    "your",
    "yours",
    "yourself",
    "yourselves",
];

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        for_each_token(text, &mut String::new(), |t| out.push(t.to_owned()));
        out
    }

    #[test]
    fn stop_words_are_sorted_and_distinct() {
        assert!(STOP_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tokens_are_lowercased_accent_free_and_without_stop_words() {
        assert_eq!(
            tokens("The Schrödinger equation of a 3D x2 model, naïve-Bayes_v2 & α-helix."),
            [
                "schrodinger",
                "equation",
                "x2",
                "model",
                "naive",
                "bayes_v2",
                "helix"
            ]
        );
        assert_eq!(tokens("2x e 12 é"), Vec::<String>::new());
    }

    #[test]
    fn fit_keeps_unigrams_and_bigrams_and_rows_are_unit_length() {
        let docs = [
            Doc {
                title: "diffusion models",
                summary: "score based diffusion models",
            },
            Doc {
                title: "galaxy clusters",
                summary: "dark matter in galaxy clusters",
            },
        ];
        let pruning = Pruning {
            min_df: 1,
            max_df: 1.0,
            max_features: 1000,
        };
        let (v, rows) = Vectorizer::fit(&docs, pruning);
        let terms: Vec<String> = (0..v.len() as u32).map(|f| v.term(f)).collect();
        assert!(terms.contains(&"diffusion models".to_owned()), "{terms:?}");
        assert!(terms.contains(&"galaxy".to_owned()));
        // No bigram across title and summary ("models score").
        assert!(!terms.contains(&"models score".to_owned()));
        for r in 0..rows.rows() {
            let norm: f32 = rows.row(r).1.iter().map(|x| x * x).sum();
            assert!((norm - 1.0).abs() < 1e-5);
        }
        // transform gives the training row back for a training document.
        let again = v.transform(&docs[0]);
        assert_eq!(again.row(0).0, rows.row(0).0);
        // max_features keeps the most frequent terms.
        let (small, _) = Vectorizer::fit(
            &docs,
            Pruning {
                max_features: 4,
                ..pruning
            },
        );
        assert_eq!(small.len(), 4);
    }
}
