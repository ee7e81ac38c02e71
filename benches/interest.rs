//! Scoring cost of one entry against one interest model (the ingest path's share), and
//! `explain`, on real arXiv abstracts (`bench/interest/data/`). The model is trained on
//! the vendored papers plus 20,000 synthetic abstracts, so that its vocabulary is as
//! large as a real store's (20,000 features after pruning).
//!
//! Run: `cargo bench --bench interest`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lookout::alert::interest::{Doc, Model};

fn papers() -> Vec<(String, String)> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bench/interest/data/arxiv-math-2505.jsonl"
    );
    std::fs::read_to_string(path)
        .expect("the vendored papers")
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("JSON lines");
            (
                v["title"].as_str().unwrap_or_default().to_owned(),
                v["abstract"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Synthetic abstracts: 150 words drawn by a fixed linear congruential walk over a
/// 50,000-word vocabulary, skewed to small indices (frequent words), so that the
/// vocabulary fills up as in a real store.
fn synthetic(n: usize) -> Vec<(String, String)> {
    let mut x: u64 = 7;
    let mut word = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let u = (x >> 33) as f64 / (1u64 << 31) as f64;
        format!("w{}", (50_000f64.powf(u * u)) as u64)
    };
    (0..n)
        .map(|_| {
            let title = (0..10).map(|_| word()).collect::<Vec<_>>().join(" ");
            let summary = (0..150).map(|_| word()).collect::<Vec<_>>().join(" ");
            (title, summary)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let real = papers();
    let fake = synthetic(20_000);
    let docs: Vec<Doc<'_>> = real
        .iter()
        .chain(&fake)
        .map(|(t, s)| Doc {
            title: t,
            summary: s,
        })
        .collect();
    let model = Model::train(&docs[..40], &docs[40..]);
    let mut group = c.benchmark_group("interest");
    group.throughput(Throughput::Elements(real.len() as u64));
    group.bench_function("score_real_abstracts", |b| {
        b.iter(|| {
            for d in &docs[..real.len()] {
                black_box(model.score(black_box(d)));
            }
        })
    });
    group.bench_function("explain_real_abstracts", |b| {
        b.iter(|| {
            for d in &docs[..real.len()] {
                black_box(model.explain(black_box(d), 5));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
