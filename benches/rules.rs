//! Matching throughput of the compiled [`RuleSet`] with 10, 1,000 and 10,000 rules,
//! beside the naive approach (one case-insensitive regex per rule, tried in a loop) in
//! the same run. Each iteration matches one entry (title, summary, authors, publisher).
//!
//! Run: `cargo bench --bench rules`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lookout::alert::RuleSet;
use lookout::config::AlertRuleConfig;
use lookout::entry::Entry;
use lookout::store::Matcher;
use regex::{Regex, RegexBuilder};

/// Words rules are built from; combinations give distinct keywords and phrases.
const WORDS: &[&str] = &[
    "diffusion",
    "transformer",
    "attention",
    "graph",
    "neural",
    "network",
    "language",
    "model",
    "reinforcement",
    "learning",
    "policy",
    "gradient",
    "bayesian",
    "inference",
    "causal",
    "retrieval",
    "agent",
    "robot",
    "vision",
    "speech",
    "protein",
    "molecule",
    "quantum",
    "sparse",
    "mixture",
    "expert",
    "kernel",
    "contrastive",
    "federated",
    "privacy",
    "adversarial",
    "robustness",
    "benchmark",
    "dataset",
    "tokenizer",
    "alignment",
    "reward",
    "distillation",
    "pruning",
    "quantization",
    "compiler",
    "scheduling",
    "optimizer",
    "convex",
    "stochastic",
    "variational",
    "autoencoder",
    "segmentation",
    "detection",
    "tracking",
    "planning",
    "reasoning",
    "theorem",
    "proof",
    "sampling",
    "score",
    "flow",
    "energy",
    "physics",
    "climate",
    "medical",
    "clinical",
];

fn rule(i: usize) -> AlertRuleConfig {
    let n = WORDS.len();
    let a = WORDS[i % n];
    let b = WORDS[(i / n) % n];
    let c = WORDS[(i / (n * n) + i * 7) % n];
    // Distinct per rule: a numbered keyword makes every rule's keyword set unique, and
    // the phrase and prefix exercise the rest of the language.
    let text = format!(
        "name = \"r{i}\"\nany = [\"{a} {b}\", \"{c}{i}\", \"{b}{i}*\"]\nnone = [\"retracted{i}\"]\n"
    );
    toml::from_str(&text).expect("generated rule parses")
}

/// The naive matcher: one regex per rule over the concatenated fields.
fn naive(rules: usize) -> Vec<Regex> {
    (0..rules)
        .map(|i| {
            let n = WORDS.len();
            let a = WORDS[i % n];
            let b = WORDS[(i / n) % n];
            let c = WORDS[(i / (n * n) + i * 7) % n];
            RegexBuilder::new(&format!(r"\b(?:{a}\s+{b}|{c}{i})\b|\b{b}{i}"))
                .case_insensitive(true)
                .build()
                .expect("naive regex compiles")
        })
        .collect()
}

fn entry() -> Entry {
    Entry {
        title: "Score-Based Diffusion Models for Protein Structure Generation with \
                Equivariant Graph Neural Networks"
            .to_owned(),
        summary: "We present a score-based generative model that learns the distribution \
                  of protein backbones. The model couples a stochastic differential \
                  equation with an equivariant graph neural network and a variational \
                  bound on the likelihood. On standard benchmarks it improves designability \
                  and diversity over prior diffusion and flow matching baselines, while \
                  sampling an order of magnitude faster thanks to a distilled reverse \
                  process. We release code, weights and a curated dataset of 40,000 \
                  structures, and discuss limitations of current evaluation protocols, \
                  including the reliance on in-silico folding oracles and the difficulty \
                  of measuring novelty. Ablations show that attention over residue pairs \
                  and the choice of noise schedule matter most."
            .to_owned(),
        authors: vec![
            "Ada Lovelace".to_owned(),
            "Grace Hopper".to_owned(),
            "Alan Turing".to_owned(),
        ],
        source: Some("arXiv.org Machine Learning".to_owned()),
        format: "hf-papers",
        ..Entry::default()
    }
}

fn bench(c: &mut Criterion) {
    let entry = entry();
    let text = format!(
        "{}\n{}\n{}\n{}",
        entry.title,
        entry.summary,
        entry.authors.join("; "),
        entry.source.as_deref().unwrap_or("")
    );
    let mut group = c.benchmark_group("match_one_entry");
    group.throughput(Throughput::Bytes(text.len() as u64));
    for rules in [10usize, 1_000, 10_000] {
        let configs: Vec<AlertRuleConfig> = (0..rules).map(rule).collect();
        let set = RuleSet::compile(&configs).expect("rules compile");
        group.bench_with_input(BenchmarkId::new("ruleset", rules), &set, |b, set| {
            b.iter(|| black_box(set.matches(black_box(&entry), "hf")))
        });
        let regexes = naive(rules);
        group.bench_with_input(
            BenchmarkId::new("regex_per_rule", rules),
            &regexes,
            |b, rs| {
                b.iter(|| {
                    let text = black_box(&text);
                    black_box(rs.iter().filter(|r| r.is_match(text)).count())
                })
            },
        );
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
