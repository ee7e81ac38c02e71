//! Ingest cost per item with 10k, 100k and (with `LOOKOUT_BENCH_1M=1`) 1M items
//! already stored. The claim under test: the cost stays flat as the store grows,
//! because every per-entry query seeks an index.
//!
//! Each size's database is filled once, through `Store::ingest` in batches of 10,000
//! entries (one transaction each), in a temp dir, and reused by every bench of that
//! size. Three benches per size, each over a 100-entry page:
//!
//! - `ingest-new`: 100 entries never seen (the item, its aliases and source are
//!   inserted). The rows are deleted again after each iteration, outside the timing,
//!   so the store stays at its size however many iterations criterion runs.
//! - `ingest-known`: 100 entries the store already holds (all lookups, no writes).
//! - `list-500`: the newest 500 items, as a feed render reads them.
//!
//! Run with `cargo bench --bench store`; the fill times are printed to stderr.

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lookout::entry::{day_start, Entry};
use lookout::store::{Ingest, ItemFilter, NoRules, Store};

/// Entries per measured page.
const PAGE: usize = 100;
/// Entries per fill transaction.
const FILL_BATCH: usize = 10_000;

/// The `n`th synthetic paper: unique arXiv id and title, a short abstract, authors.
fn paper(n: usize, tag: &str) -> Entry {
    Entry {
        title: format!("{tag} study {n} of sparse attention in long-context models"),
        link: None,
        summary: format!(
            "We study item {n}: a synthetic abstract of typical length for benchmarks, \
             describing a method, an experiment and a result in two sentences ({tag})."
        ),
        authors: vec![
            "Ada Example".into(),
            "Bo Sample".into(),
            "Chidi Test".into(),
        ],
        author_count: Some(3),
        source: Some("arXiv.org Machine Learning".into()),
        published: NaiveDate::from_ymd_opt(2026, 5, 1 + (n % 28) as u32).map(day_start),
        listed: None,
        guid: None,
        // Ids of the form 2NNN.NNNNN, unique per (tag, n) for n < 10M.
        arxiv_id: Some(format!(
            "{}{:03}.{:05}",
            if tag == "fill" { 1 } else { 2 },
            n / 100_000,
            n % 100_000
        )),
        format: "arxiv",
    }
}

fn batch<'a>(entries: &'a [Entry], source: &'a str, at: i64) -> Ingest<'a> {
    Ingest {
        source,
        origin: "bench",
        content_hash: None,
        format: "arxiv",
        entries,
        seen_at: DateTime::from_timestamp(1_780_000_000 + at, 0).expect("valid time"),
        alerts: true,
    }
}

/// Fills a new database at `path` with `n` items through `Store::ingest`.
fn fill(path: &Path, n: usize) -> Store {
    let mut store = Store::open(path).expect("open store");
    let started = Instant::now();
    let mut done = 0;
    while done < n {
        let end = (done + FILL_BATCH).min(n);
        let entries: Vec<Entry> = (done..end).map(|i| paper(i, "fill")).collect();
        let report = store
            .ingest(&batch(&entries, "fill", done as i64), &NoRules)
            .expect("fill ingest");
        assert_eq!(report.new, end - done, "filler items are all new");
        done = end;
    }
    let took = started.elapsed();
    eprintln!(
        "filled {n} items in {took:.2?} ({:.0} items/s through Store::ingest)",
        n as f64 / took.as_secs_f64()
    );
    store
}

/// Removes the items a measured `ingest-new` page added, so the store keeps its size.
fn undo(conn: &rusqlite::Connection, entries: &[Entry], first_new_id: i64) {
    let tx = conn.unchecked_transaction().expect("undo tx");
    {
        let mut del = tx
            .prepare_cached("DELETE FROM item_keys WHERE alias = ?1")
            .expect("prepare");
        for alias in entries.iter().flat_map(Entry::aliases) {
            del.execute([alias]).expect("delete alias");
        }
    }
    tx.execute(
        "DELETE FROM item_sources WHERE source = 'bench' AND item_id >= ?1",
        [first_new_id],
    )
    .expect("delete sources");
    tx.execute("DELETE FROM items WHERE id >= ?1", [first_new_id])
        .expect("delete items");
    tx.commit().expect("undo commit");
}

fn sizes() -> Vec<usize> {
    let mut sizes = vec![10_000, 100_000];
    if std::env::var_os("LOOKOUT_BENCH_1M").is_some_and(|v| v == "1") {
        sizes.push(1_000_000);
    } else {
        eprintln!("1M-item store skipped: set LOOKOUT_BENCH_1M=1 to measure it");
    }
    sizes
}

fn ingest_cost(c: &mut Criterion) {
    for size in sizes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lookout.db");
        let mut store = fill(&path, size);
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        raw.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        // The bundled SQLite enforces foreign keys by default, and deleting an item then
        // scans item_keys (no index on item_id) for references: a full scan per row, 19 s
        // a page at 1M items. The undo deletes the children first; turn the check off.
        raw.pragma_update(None, "foreign_keys", false)
            .expect("foreign keys off");
        let next_id = |conn: &rusqlite::Connection| -> i64 {
            conn.query_row("SELECT COALESCE(MAX(id), 0) + 1 FROM items", [], |r| {
                r.get(0)
            })
            .expect("max id")
        };

        let mut group = c.benchmark_group("store");
        group
            .sample_size(20)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(4))
            .throughput(Throughput::Elements(PAGE as u64));

        let mut round = 0usize;
        group.bench_function(BenchmarkId::new("ingest-new", size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let entries: Vec<Entry> = (0..PAGE)
                        .map(|i| paper(round * PAGE + i, "bench"))
                        .collect();
                    round += 1;
                    let first = next_id(&raw);
                    let ingest = batch(&entries, "bench", round as i64);
                    let started = Instant::now();
                    let report = store.ingest(&ingest, &NoRules).expect("ingest");
                    total += started.elapsed();
                    assert_eq!(report.new, PAGE);
                    undo(&raw, &entries, first);
                }
                total
            })
        });

        let mut round = 0usize;
        group.bench_function(BenchmarkId::new("ingest-known", size), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    // A page of stored items spread over the whole store.
                    let entries: Vec<Entry> = (0..PAGE)
                        .map(|i| paper((round * 7919 + i * 104_729) % size, "fill"))
                        .collect();
                    round += 1;
                    let ingest = batch(&entries, "fill", 0);
                    let started = Instant::now();
                    let report = store.ingest(&ingest, &NoRules).expect("ingest");
                    total += started.elapsed();
                    assert_eq!(report.new, 0);
                }
                total
            })
        });

        group.throughput(Throughput::Elements(500));
        group.bench_function(BenchmarkId::new("list-500", size), |b| {
            b.iter(|| {
                let items = store.items(ItemFilter::All, 500).expect("list");
                assert_eq!(items.len(), 500);
                items
            })
        });
        group.finish();
        drop(raw);
        drop(store);
    }
}

criterion_group!(benches, ingest_cost);
criterion_main!(benches);
