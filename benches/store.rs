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
//! With `LOOKOUT_BENCH_PG=postgres://…/postgres` (a server where that user may create
//! databases) every size runs on PostgreSQL too, as group `store-pg`, each size in a
//! new database `lookout_bench_<size>` (issue 17: PostgreSQL within 3x of SQLite).
//! On a shared machine wall time is noise, so the ingest benches also add up CPU time:
//! this process's, plus the PostgreSQL backends serving the store (from
//! `/proc/PID/schedstat`, so the server must run on this machine), and print it per
//! item at the end of each bench; `LOOKOUT_BENCH_CPU_OUT=FILE` appends the same as
//! one line per bench (`group size bench items wall_ns client_cpu_ns server_cpu_ns`).
//!
//! Run with `cargo bench --bench store`; the fill times are printed to stderr.

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

/// Fills `store` with `n` items through `Store::ingest`.
fn fill(store: &mut Store, n: usize) {
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
}

/// A second connection to the bench's database, beside the store: it reads the next
/// item id, removes what a measured page added, and finds the server's CPU time.
enum Raw {
    Sqlite(rusqlite::Connection),
    /// The client, and the pids of the backends serving the store's connections.
    Postgres(Box<postgres::Client>, Vec<i32>),
}

impl Raw {
    fn next_id(&mut self) -> i64 {
        const SQL: &str = "SELECT COALESCE(MAX(id), 0) + 1 FROM items";
        match self {
            Raw::Sqlite(conn) => conn.query_row(SQL, [], |r| r.get(0)).expect("max id"),
            Raw::Postgres(client, _) => client.query_one(SQL, &[]).expect("max id").get(0),
        }
    }

    /// Removes the items a measured `ingest-new` page added, so the store keeps its size.
    fn undo(&mut self, entries: &[Entry], first_new_id: i64) {
        let aliases: Vec<String> = entries.iter().flat_map(Entry::aliases).collect();
        match self {
            Raw::Sqlite(conn) => {
                let tx = conn.unchecked_transaction().expect("undo tx");
                {
                    let mut del = tx
                        .prepare_cached("DELETE FROM item_keys WHERE alias = ?1")
                        .expect("prepare");
                    for alias in &aliases {
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
            Raw::Postgres(client, _) => {
                let mut tx = client.transaction().expect("undo tx");
                tx.execute("DELETE FROM item_keys WHERE alias = ANY($1)", &[&aliases])
                    .expect("delete aliases");
                tx.execute(
                    "DELETE FROM item_sources WHERE source = 'bench' AND item_id >= $1",
                    &[&first_new_id],
                )
                .expect("delete sources");
                tx.execute("DELETE FROM items WHERE id >= $1", &[&first_new_id])
                    .expect("delete items");
                tx.commit().expect("undo commit");
            }
        }
    }

    /// CPU time the PostgreSQL backends serving the store have used, in ns (0 on SQLite,
    /// whose work runs in this process).
    fn server_cpu_ns(&self) -> u64 {
        let Raw::Postgres(_, pids) = self else {
            return 0;
        };
        pids.iter()
            .map(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/schedstat"))
                    .ok()
                    .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// This process's CPU time (every thread), in ns.
fn process_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Wall and CPU time over every measured page of one bench.
#[derive(Default)]
struct Tally {
    items: u64,
    wall_ns: u64,
    client_ns: u64,
    server_ns: u64,
}

impl Tally {
    /// Times one ingest, wall and CPU, and adds it up.
    fn measure<T>(&mut self, raw: &Raw, items: usize, f: impl FnOnce() -> T) -> (T, Duration) {
        let (client, server) = (process_cpu_ns(), raw.server_cpu_ns());
        let started = Instant::now();
        let out = f();
        let took = started.elapsed();
        self.client_ns += process_cpu_ns() - client;
        self.server_ns += raw.server_cpu_ns().saturating_sub(server);
        self.wall_ns += u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.items += items as u64;
        (out, took)
    }

    /// Prints the per-item figures, and appends them to `LOOKOUT_BENCH_CPU_OUT`.
    fn report(&self, group: &str, size: usize, bench: &str) {
        let per = |ns: u64| ns as f64 / 1000.0 / self.items.max(1) as f64;
        eprintln!(
            "{group}/{bench}/{size}: per item {:.1} µs wall, CPU {:.1} µs here + {:.1} µs in the server = {:.1} µs ({} items)",
            per(self.wall_ns),
            per(self.client_ns),
            per(self.server_ns),
            per(self.client_ns + self.server_ns),
            self.items
        );
        if let Some(path) = std::env::var_os("LOOKOUT_BENCH_CPU_OUT") {
            use std::io::Write;
            let mut out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .expect("open LOOKOUT_BENCH_CPU_OUT");
            writeln!(
                out,
                "{group} {size} {bench} {} {} {} {}",
                self.items, self.wall_ns, self.client_ns, self.server_ns
            )
            .expect("write LOOKOUT_BENCH_CPU_OUT");
        }
    }
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

/// A filled store of `size` items for the bench group `group`, with its raw
/// connection; the temp dir (SQLite) is kept alive beside it.
fn open_filled(group: &str, size: usize) -> (Store, Raw, Option<tempfile::TempDir>) {
    if group == "store" {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lookout.db");
        let mut store = Store::open(&path).expect("open store");
        fill(&mut store, size);
        let raw = rusqlite::Connection::open(&path).expect("raw connection");
        raw.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        // The bundled SQLite enforces foreign keys by default, and deleting an item then
        // scans item_keys (no index on item_id) for references: a full scan per row, 19 s
        // a page at 1M items. The undo deletes the children first; turn the check off.
        raw.pragma_update(None, "foreign_keys", false)
            .expect("foreign keys off");
        return (store, Raw::Sqlite(raw), Some(dir));
    }
    let admin_url = std::env::var("LOOKOUT_BENCH_PG").expect("LOOKOUT_BENCH_PG");
    let db = format!("lookout_bench_{size}");
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).expect("connect");
    // Two calls: in one string they would run as one transaction, which DROP DATABASE
    // refuses.
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .expect("drop the last run's bench database");
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .expect("a new bench database");
    let mut config: postgres::Config = admin_url.parse().expect("LOOKOUT_BENCH_PG is a URL");
    config.dbname(&db);
    let mut url = url::Url::parse(&admin_url).expect("LOOKOUT_BENCH_PG is a URL");
    url.set_path(&db);
    let mut store = Store::connect(url.as_str()).expect("connect store");
    fill(&mut store, size);
    let mut raw = config.connect(postgres::NoTls).expect("raw connection");
    // As on SQLite: the undo deletes children first, and the foreign-key checks on
    // deleting an item would scan item_keys (no index on item_id) per row.
    raw.batch_execute("SET session_replication_role = replica")
        .expect("foreign keys off (needs a superuser)");
    let pids = raw
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&db],
        )
        .expect("the store's backends")
        .iter()
        .map(|r| r.get(0))
        .collect();
    (store, Raw::Postgres(Box::new(raw), pids), None)
}

fn ingest_cost(c: &mut Criterion) {
    let mut groups = vec!["store"];
    if std::env::var_os("LOOKOUT_BENCH_PG").is_some() {
        groups.push("store-pg");
    }
    for size in sizes() {
        for &name in &groups {
            let (mut store, mut raw, _dir) = open_filled(name, size);
            let mut group = c.benchmark_group(name);
            group
                .sample_size(20)
                .warm_up_time(Duration::from_secs(1))
                .measurement_time(Duration::from_secs(4))
                .throughput(Throughput::Elements(PAGE as u64));

            let mut round = 0usize;
            let mut tally = Tally::default();
            group.bench_function(BenchmarkId::new("ingest-new", size), |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let entries: Vec<Entry> = (0..PAGE)
                            .map(|i| paper(round * PAGE + i, "bench"))
                            .collect();
                        round += 1;
                        let first = raw.next_id();
                        let ingest = batch(&entries, "bench", round as i64);
                        let (report, took) = tally.measure(&raw, PAGE, || {
                            store.ingest(&ingest, &NoRules).expect("ingest")
                        });
                        total += took;
                        assert_eq!(report.new, PAGE);
                        raw.undo(&entries, first);
                    }
                    total
                })
            });
            tally.report(name, size, "ingest-new");

            let mut round = 0usize;
            let mut tally = Tally::default();
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
                        let (report, took) = tally.measure(&raw, PAGE, || {
                            store.ingest(&ingest, &NoRules).expect("ingest")
                        });
                        total += took;
                        assert_eq!(report.new, 0);
                    }
                    total
                })
            });
            tally.report(name, size, "ingest-known");

            group.throughput(Throughput::Elements(500));
            group.bench_function(BenchmarkId::new("list-500", size), |b| {
                b.iter(|| {
                    let items = store.items(ItemFilter::All, 500).expect("list");
                    assert_eq!(items.len(), 500);
                    items
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, ingest_cost);
criterion_main!(benches);
