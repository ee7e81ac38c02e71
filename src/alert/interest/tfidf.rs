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

/// Word texts to dense ids, for fitting. Interning 16 million tokens was most of the
/// training time (BENCHMARKS.md "Interests"), so a lookup touches as little memory as
/// it can: a word of at most 8 bytes (most words) *is* its key, its bytes packed in a
/// u64, so one probe of a map of integers finds it with no text to compare; a longer
/// word is keyed by its 64-bit hash, and its text, kept in one buffer, is compared
/// there. Two long words with the same hash (about one chance in 10^8 for a million
/// words) still get two ids.
#[derive(Default)]
struct Interner {
    hasher: foldhash::fast::FixedState,
    short: HashMap<u64, u32, foldhash::fast::FixedState>,
    ids: HashMap<u64, u32, BuildNoHash>,
    collisions: Map<Box<str>, u32>,
    bytes: String,
    spans: Vec<(u32, u32)>,
}

impl Interner {
    fn intern(&mut self, word: &str) -> u32 {
        use std::hash::BuildHasher;
        let next = self.spans.len() as u32;
        if word.len() <= 8 {
            // Tokens are ASCII letters, digits and `_`: no NUL pads a shorter word's key
            // into a longer one's.
            let mut key = [0u8; 8];
            key[..word.len()].copy_from_slice(word.as_bytes());
            let id = *self.short.entry(u64::from_le_bytes(key)).or_insert(next);
            if id == next {
                self.push(word);
            }
            return id;
        }
        let h = self.hasher.hash_one(word);
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

/// Documents per chunk of a fit: one chunk per core, none under a few thousand
/// documents (a thread costs more than it saves there).
fn chunk_len(n_docs: usize) -> usize {
    const MIN_CHUNK: usize = 4096;
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    n_docs.div_ceil(cores).max(MIN_CHUNK)
}

/// `f` of each item, each on its own thread (the first on this one), in order.
fn parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let Some((first, rest)) = items.split_first() else {
        return Vec::new();
    };
    std::thread::scope(|scope| {
        let f = &f;
        let handles: Vec<_> = rest
            .iter()
            .map(|item| scope.spawn(move || f(item)))
            .collect();
        let mut out = Vec::with_capacity(items.len());
        out.push(f(first));
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))),
        );
        out
    })
}

/// Two sorted lists of (pair, count) merged into one, counts of equal pairs added.
fn merge_counts(a: Vec<(u64, u32)>, b: Vec<(u64, u32)>) -> Vec<(u64, u32)> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 == y.0 => {
                let merged = (x.0, x.1 + y.1);
                a.next();
                b.next();
                merged
            }
            (Some(x), Some(y)) if x.0 < y.0 => a.next().expect("peeked"),
            (Some(_), Some(_)) | (None, Some(_)) => b.next().expect("peeked"),
            (Some(_), None) => a.next().expect("peeked"),
            (None, None) => return out,
        };
        out.push(next);
    }
}

/// One chunk of a fit's documents as word ids: the chunk's interner, its documents'
/// tokens end to end, and where each document starts.
struct Tokens {
    interner: Interner,
    tokens: Vec<u32>,
    starts: Vec<usize>,
}

impl Tokens {
    /// Tokenizes and interns `docs`; stop words are interned first, as ids below
    /// `STOP_WORDS.len()`, so one lookup both interns a word and tells a stop word.
    fn of(docs: &[Doc<'_>]) -> Tokens {
        let mut interner = Interner::default();
        for w in STOP_WORDS {
            interner.intern(w);
        }
        let stop = STOP_WORDS.len() as u32;
        let mut tokens = Vec::new();
        let mut starts = Vec::with_capacity(docs.len() + 1);
        let mut buf = String::new();
        for doc in docs {
            starts.push(tokens.len());
            for (i, part) in [doc.title, doc.summary].into_iter().enumerate() {
                if i > 0 {
                    tokens.push(NONE);
                }
                for_each_word(part, &mut buf, |w| {
                    let id = interner.intern(w);
                    if id >= stop {
                        tokens.push(id);
                    }
                });
            }
        }
        starts.push(tokens.len());
        Tokens {
            interner,
            tokens,
            starts,
        }
    }

    fn docs(&self) -> usize {
        self.starts.len() - 1
    }

    fn doc(&self, d: usize) -> &[u32] {
        &self.tokens[self.starts[d]..self.starts[d + 1]]
    }
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
    ///
    /// The documents are cut into one contiguous chunk per core, and each pass works
    /// on the chunks in parallel (`std::thread::scope`): tokenizing and interning
    /// (each chunk its own interner, merged into the first), document frequencies,
    /// pair counts and the rows. The result does not depend on the number of chunks:
    /// word ids are only used to count, and the kept vocabulary is numbered in text
    /// order.
    pub fn fit(docs: &[Doc<'_>], pruning: Pruning) -> (Vectorizer, Csr) {
        Vectorizer::fit_in_chunks(docs, pruning, chunk_len(docs.len()))
    }

    /// [`Vectorizer::fit`] with chunks of `chunk` documents.
    fn fit_in_chunks(docs: &[Doc<'_>], pruning: Pruning, chunk: usize) -> (Vectorizer, Csr) {
        let n_docs = docs.len();
        if n_docs == 0 {
            let rows = Csr {
                indptr: vec![0],
                ..Csr::default()
            };
            return (Vectorizer::default(), rows);
        }
        let chunks: Vec<&[Doc<'_>]> = docs.chunks(chunk.max(1)).collect();

        // Pass 1: intern every token; a document is a run of word ids, with NONE
        // between title and summary so that no bigram spans them.
        let mut parts: Vec<Tokens> = parallel(&chunks, |chunk| Tokens::of(chunk));
        let mut texts = std::mem::take(&mut parts[0].interner);
        let remaps: Vec<Vec<u32>> = parts[1..]
            .iter()
            .map(|part| {
                (0..part.interner.len() as u32)
                    .map(|id| texts.intern(part.interner.text(id)))
                    .collect()
            })
            .collect();
        std::thread::scope(|scope| {
            for (part, remap) in parts[1..].iter_mut().zip(&remaps) {
                scope.spawn(move || {
                    part.interner = Interner::default();
                    for t in part.tokens.iter_mut().filter(|t| **t != NONE) {
                        *t = remap[*t as usize];
                    }
                });
            }
        });
        drop(remaps);
        let n_words = texts.len();

        // Pass 2: document frequencies of words, then of pairs of frequent words.
        let word_df = parallel(&parts, |part| {
            let mut df = vec![0u32; n_words];
            // The last document each word was counted in: a document counts once.
            let mut last = vec![u32::MAX; n_words];
            for d in 0..part.docs() {
                for &t in part.doc(d).iter().filter(|&&t| t != NONE) {
                    if last[t as usize] != d as u32 {
                        last[t as usize] = d as u32;
                        df[t as usize] += 1;
                    }
                }
            }
            df
        })
        .into_iter()
        .reduce(|mut a, b| {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
            a
        })
        .unwrap_or_default();
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
        // Each chunk's documents' distinct pairs, sorted and counted in runs (faster
        // and smaller than a hash map of millions of pairs), then the chunks' counts
        // merged.
        let pair_counts = parallel(&parts, |part| {
            let mut pairs: Vec<u64> = Vec::new();
            for d in 0..part.docs() {
                let start = pairs.len();
                pairs.extend(
                    part.doc(d)
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
            pairs
                .chunk_by(|a, b| a == b)
                .map(|run| (run[0], run.len() as u32))
                .collect::<Vec<(u64, u32)>>()
        })
        .into_iter()
        .reduce(merge_counts)
        .unwrap_or_default();
        let pair_df: Vec<(u64, u32)> = pair_counts.into_iter().filter(|&(_, df)| ok(df)).collect();

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
        drop(pair_df);
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
        let mut new_id = vec![NONE; n_words];
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
        let mut old_word_feature = vec![NONE; n_words];
        let mut old_pair_feature: Map<u64, u32> = Map::default();
        // Which words begin or end a bigram feature: most pairs are rejected by these
        // two lookups before the hash map is asked.
        let mut begins = vec![false; n_words];
        let mut ends = vec![false; n_words];
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
        drop(texts);

        // Pass 3: the training rows, a block of rows per chunk, then joined.
        let blocks = parallel(&parts, |part| {
            let mut rows = Csr {
                indptr: Vec::with_capacity(part.docs() + 1),
                ..Csr::default()
            };
            rows.indptr.push(0);
            let mut features: Vec<u32> = Vec::new();
            for d in 0..part.docs() {
                features.clear();
                let toks = part.doc(d);
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
            rows
        });
        drop(parts);
        let mut rows = Csr {
            indptr: Vec::with_capacity(n_docs + 1),
            indices: Vec::with_capacity(blocks.iter().map(|b| b.indices.len()).sum()),
            data: Vec::with_capacity(blocks.iter().map(|b| b.data.len()).sum()),
        };
        rows.indptr.push(0);
        for block in blocks {
            let offset = rows.indices.len();
            rows.indptr
                .extend(block.indptr[1..].iter().map(|&p| p + offset));
            rows.indices.extend_from_slice(&block.indices);
            rows.data.extend_from_slice(&block.data);
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
    for_each_word(text, buf, |w| {
        if !is_stop_word(w) {
            f(w);
        }
    });
}

/// [`for_each_token`] with the stop words left in (a fit tells them apart as it
/// interns, with no second lookup).
fn for_each_word(text: &str, buf: &mut String, mut f: impl FnMut(&str)) {
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
        if ascii && word.len() >= 2 && (first.is_ascii_alphabetic() || first == b'_') {
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

    #[test]
    fn a_fit_in_chunks_gives_the_same_vocabulary_and_rows() {
        let texts: Vec<String> = (0..50)
            .map(|i| {
                (0..20)
                    .map(|k| format!("w{} the w{}", (i * 7 + k * 3) % 23, (i + k) % 11))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let docs: Vec<Doc<'_>> = texts
            .iter()
            .map(|t| Doc {
                title: "a title",
                summary: t,
            })
            .collect();
        let pruning = Pruning {
            min_df: 2,
            max_df: 0.9,
            max_features: 60,
        };
        let (one, rows) = Vectorizer::fit_in_chunks(&docs, pruning, docs.len());
        let terms = |v: &Vectorizer| (0..v.len() as u32).map(|f| v.term(f)).collect::<Vec<_>>();
        for chunk in [1, 7, 25] {
            let (v, r) = Vectorizer::fit_in_chunks(&docs, pruning, chunk);
            assert_eq!(terms(&v), terms(&one), "chunks of {chunk}");
            assert_eq!(
                (&r.indptr, &r.indices, &r.data),
                (&rows.indptr, &rows.indices, &rows.data)
            );
        }
        assert!(!terms(&one).contains(&"the".to_owned()));
        let (empty, rows) = Vectorizer::fit(&[], pruning);
        assert_eq!((empty.len(), rows.rows()), (0, 0));
    }
}
