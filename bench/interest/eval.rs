//! The offline evaluation of lookout's interest model (`bench/interest/run` runs it beside
//! scikit-learn; BENCHMARKS.md "Interests" has the figures).
//!
//! Protocol, per category: papers sorted by arXiv id (the order they were announced) and
//! split into an earlier and a later part: `--later-from ID` makes every paper with an id
//! at or after ID the later part (the vendored data's later part is a contiguous block,
//! data/README.md), otherwise the later half. The model is trained on the earlier part,
//! with exactly `--liked` papers of the category as the likes (the first ones by id) and
//! the other earlier papers as the rest of the store; it then ranks the later part.
//! Precision@20 and recall@100 are measured against the category labels. Only categories
//! with at least `--liked` earlier papers and `--min-relevant` later ones are evaluated.
//!
//! `--timing N` instead trains one model on N documents (the real papers, then synthetic
//! abstracts whose words follow a Zipf law over a 200,000-word vocabulary, to give a
//! realistic vocabulary and bigram count) and reports training time, scoring time, the
//! model's heap and the process's peak memory.
//!
//! Output: one JSON object a line, which `bench/interest/run` tabulates.

use std::collections::BTreeMap;
use std::time::Instant;

use lookout::alert::interest::{Doc, Model};

struct Paper {
    id: String,
    categories: Vec<String>,
    title: String,
    abstract_: String,
}

fn usage() -> ! {
    eprintln!(
        "usage: interest_eval [--data FILE.jsonl[.gz]] [--later-from ID] [--liked N] \
         [--categories a,b,..] [--min-relevant N] | --timing N"
    );
    std::process::exit(2)
}

fn main() {
    let mut data = String::from("bench/interest/data/arxiv-math-2505.jsonl");
    let mut liked = 40usize;
    let mut categories: Option<Vec<String>> = None;
    let mut timing: Option<usize> = None;
    let mut min_relevant = 20usize;
    let mut later_from: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--data" => data = value(),
            "--later-from" => later_from = Some(value()),
            "--liked" => liked = value().parse().unwrap_or_else(|_| usage()),
            "--categories" => categories = Some(value().split(',').map(str::to_owned).collect()),
            "--timing" => timing = Some(value().parse().unwrap_or_else(|_| usage())),
            "--min-relevant" => min_relevant = value().parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    let mut papers = read_papers(&data);
    papers.sort_by(|a, b| a.id.cmp(&b.id));
    match timing {
        Some(n) => run_timing(&papers, n),
        None => {
            // Split at the first paper of the later block, or in the middle.
            let split = later_from.map_or(papers.len() / 2, |id| {
                papers.partition_point(|p| p.id.as_str() < id.as_str())
            });
            run_ranking(&papers, split, liked, categories, min_relevant)
        }
    }
}

/// Reads JSON lines with `id`, `title`, `abstract` and `categories` (a list, or the
/// Kaggle arXiv snapshot's space-separated string), gzipped or not.
fn read_papers(path: &str) -> Vec<Paper> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let text = if path.ends_with(".gz") {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&bytes[..]), &mut s)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        s
    } else {
        String::from_utf8(bytes).unwrap_or_else(|e| panic!("{path}: {e}"))
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{path}: {e}"));
            let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
            let categories = match &v["categories"] {
                serde_json::Value::Array(a) => a
                    .iter()
                    .filter_map(|c| c.as_str().map(str::to_owned))
                    .collect(),
                serde_json::Value::String(s) => s.split_whitespace().map(str::to_owned).collect(),
                _ => Vec::new(),
            };
            Paper {
                id: s("id"),
                categories,
                title: s("title"),
                abstract_: s("abstract"),
            }
        })
        .collect()
}

fn doc(p: &Paper) -> Doc<'_> {
    Doc {
        title: &p.title,
        summary: &p.abstract_,
    }
}

fn run_ranking(
    papers: &[Paper],
    split: usize,
    liked: usize,
    categories: Option<Vec<String>>,
    min_relevant: usize,
) {
    let (earlier, later) = papers.split_at(split);
    let has = |p: &Paper, c: &str| p.categories.iter().any(|x| x == c);
    let categories = categories.unwrap_or_else(|| {
        // Every category with enough likes and enough later papers to measure anything.
        let mut count: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for p in earlier {
            for c in &p.categories {
                count.entry(c).or_default().0 += 1;
            }
        }
        for p in later {
            for c in &p.categories {
                count.entry(c).or_default().1 += 1;
            }
        }
        count
            .into_iter()
            .filter(|&(_, (e, l))| e >= liked && l >= min_relevant)
            .map(|(c, _)| c.to_owned())
            .collect()
    });
    for category in categories {
        let (pos, neg): (Vec<&Paper>, Vec<&Paper>) = {
            let mut pos = Vec::new();
            let mut neg = Vec::new();
            for p in earlier {
                if has(p, &category) && pos.len() < liked {
                    pos.push(p);
                } else {
                    neg.push(p);
                }
            }
            (pos, neg)
        };
        let positives: Vec<Doc<'_>> = pos.iter().map(|p| doc(p)).collect();
        let negatives: Vec<Doc<'_>> = neg.iter().map(|p| doc(p)).collect();
        let start = Instant::now();
        let model = Model::train(&positives, &negatives);
        let train_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut ranked: Vec<(f32, usize)> = later
            .iter()
            .enumerate()
            .map(|(i, p)| (model.margin(&doc(p)), i))
            .collect();
        // Ties (equal margins) by position: deterministic.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let relevant = later.iter().filter(|p| has(p, &category)).count();
        let hits = |k: usize| {
            ranked
                .iter()
                .take(k)
                .filter(|&&(_, i)| has(&later[i], &category))
                .count()
        };
        let scores: Vec<f32> = later.iter().map(|p| model.score(&doc(p))).collect();
        let passing = |t: f32| {
            let pass: Vec<usize> = (0..later.len()).filter(|&i| scores[i] >= t).collect();
            let relevant = pass.iter().filter(|&&i| has(&later[i], &category)).count();
            (pass.len(), relevant)
        };
        let (above_default, above_relevant) = passing(lookout::alert::interest::DEFAULT_MIN_SCORE);
        // How many new papers pass, and how many of those are in the category, at each
        // threshold (for choosing DEFAULT_MIN_SCORE).
        let thresholds: BTreeMap<String, (usize, usize)> = [0.9f32, 0.95, 0.98, 0.99, 0.995, 0.999]
            .into_iter()
            .map(|t| (format!("{t}"), passing(t)))
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "system": "lookout",
                "category": category,
                "liked": pos.len(),
                "train": earlier.len(),
                "ranked": later.len(),
                "relevant": relevant,
                "p20": hits(20) as f64 / 20.0,
                "r100": hits(100) as f64 / relevant.max(1) as f64,
                "r50": hits(50) as f64 / relevant.max(1) as f64,
                "top20": ranked.iter().take(20).map(|&(_, i)| &later[i].id).collect::<Vec<_>>(),
                "train_ms": train_ms,
                "vocabulary": model.stats().vocabulary,
                "above_default": above_default,
                "above_default_relevant": above_relevant,
                "thresholds": thresholds,
            })
        );
    }
}

/// A deterministic Zipf sampler over `n` synthetic words (inverse CDF on a table).
struct Zipf {
    cdf: Vec<f64>,
    state: u64,
}

impl Zipf {
    fn new(n: usize, seed: u64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for r in 1..=n {
            sum += 1.0 / r as f64;
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf, state: seed }
    }

    fn next(&mut self) -> usize {
        // SplitMix64, then the inverse CDF.
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let u = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u)
    }
}

fn rusage() -> libc::rusage {
    // SAFETY: getrusage only writes the struct it is given.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    }
}

fn peak_rss_kib() -> i64 {
    rusage().ru_maxrss
}

/// User + system CPU seconds of this (single-threaded) process: on a busy machine the
/// wall clock says more about the neighbours than about the code.
fn cpu_s() -> f64 {
    let u = rusage();
    let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

fn run_timing(papers: &[Paper], n: usize) {
    let mut zipf = Zipf::new(200_000, 42);
    let mut texts: Vec<(String, String)> = papers
        .iter()
        .take(n)
        .map(|p| (p.title.clone(), p.abstract_.clone()))
        .collect();
    while texts.len() < n {
        let mut words = |k: usize| {
            (0..k)
                .map(|_| format!("w{}", zipf.next()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        texts.push((words(10), words(150)));
    }
    let docs: Vec<Doc<'_>> = texts
        .iter()
        .map(|(t, s)| Doc {
            title: t,
            summary: s,
        })
        .collect();
    let rss_before = peak_rss_kib();
    // 40 likes: the first 40 real papers of the most common category.
    let liked = 40.min(docs.len() / 2);
    let (start, cpu) = (Instant::now(), cpu_s());
    let model = Model::train(&docs[..liked], &docs[liked..]);
    let train_s = start.elapsed().as_secs_f64();
    let train_cpu_s = cpu_s() - cpu;
    let rss_after = peak_rss_kib();
    let (start, cpu) = (Instant::now(), cpu_s());
    let mut sink = 0.0f32;
    let scored = docs.len().min(20_000);
    for d in &docs[..scored] {
        sink += model.score(d);
    }
    let score_us = start.elapsed().as_secs_f64() * 1e6 / scored as f64;
    let score_cpu_us = (cpu_s() - cpu) * 1e6 / scored as f64;
    let stats = model.stats();
    println!(
        "{}",
        serde_json::json!({
            "system": "lookout",
            "timing_docs": n,
            "train_s": train_s,
            "train_cpu_s": train_cpu_s,
            "score_us_per_doc": score_us,
            "score_cpu_us_per_doc": score_cpu_us,
            "vocabulary": stats.vocabulary,
            "model_heap_mib": stats.heap_bytes as f64 / (1 << 20) as f64,
            "peak_rss_mib_before": rss_before as f64 / 1024.0,
            "peak_rss_mib_after_training": rss_after as f64 / 1024.0,
            "checksum": sink,
        })
    );
}
