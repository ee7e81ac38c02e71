//! What one new item costs the publisher, by feed size and by how many feeds the item
//! is in, and what each gzip level costs: the figures behind issue 15's "changes in
//! milliseconds at any feed size" and the choice of `GZIP_LEVEL` in `src/publish.rs`.
//!
//! Not a criterion bench: each run is one measured change, made to be counted with
//! callgrind (instructions are deterministic; wall time on a shared VM is not).
//!
//! ```sh
//! cargo bench --bench feed_change                     # every row, wall times
//! cargo bench --bench feed_change -- change 5000 1    # one row: 5,000 items, 1 rule
//! cargo bench --bench feed_change -- levels           # gzip levels on a 1 MB feed
//! # Instructions of the measured change: the last dump, `Publisher::current`
//! # inclusive (the renders run on the blocking pool's threads, which
//! # --toggle-collect, per thread, would miss):
//! valgrind --tool=callgrind --dump-before='*measured_change*' \
//!     target/release/deps/feed_change-* change 5000 1
//! ```
//!
//! The measured change is the whole of it: the store query for what changed
//! (`Store::changed_items`), merging it into each feed's item list, rendering and
//! compressing the new item, and both ETags.
//!
//! The items are the entries of the three real captures, repeated with unique titles,
//! as in `benches/feed.rs`.

use std::hint::black_box;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::DateTime;
use lookout::config::Config;
use lookout::entry::Entry;
use lookout::feed::FeedFormat;
use lookout::feed::{render_rss, Channel, Frame};
use lookout::parse::{parse_page, ParseContext};
use lookout::publish::{FeedId, FeedScope, Publisher};
use lookout::store::{AlertMatch, Ingest, ItemFilter, Matcher, SharedStore, Store};

/// Every rule matches every entry: an item in `rules` rule feeds.
struct EveryRule(Vec<String>);

impl Matcher for EveryRule {
    fn matches(&self, _entry: &Entry, _source: &str) -> Vec<AlertMatch> {
        self.0
            .iter()
            .map(|rule| AlertMatch {
                rule: rule.clone(),
                notifiers: Vec::new(),
                matched: Vec::new(),
                digest_secs: None,
            })
            .collect()
    }
}

/// The fixture entries, repeated with unique titles.
fn entries(from: usize, to: usize) -> Vec<Entry> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let ctx = ParseContext::at(DateTime::from_timestamp(1_779_300_000, 0).expect("time"));
    let base: Vec<Entry> = [
        "hf_papers_apr17.txt",
        "hf_papers_may20.txt",
        "aitopics_energy.txt",
    ]
    .iter()
    .flat_map(|f| {
        let bytes = std::fs::read(dir.join(f)).expect("fixture");
        parse_page(&bytes, "auto", &ctx).expect("parses").entries
    })
    .collect();
    (from..to)
        .map(|i| {
            let e = &base[i % base.len()];
            Entry {
                title: format!("{} ({i})", e.title),
                // Unique ids, so every copy is its own item.
                arxiv_id: None,
                link: e.link.as_ref().map(|l| format!("{l}#{i}")),
                guid: None,
                ..e.clone()
            }
        })
        .collect()
}

/// A store with `items` items of source `a`, each in `rules` rule feeds, and a
/// publisher that has served every RSS feed once (so it keeps them).
struct Setup {
    store: SharedStore,
    publisher: Arc<Publisher>,
    matcher: EveryRule,
    feeds: Vec<FeedId>,
    rt: tokio::runtime::Runtime,
    items: usize,
}

impl Setup {
    fn new(items: usize, rules: usize) -> Setup {
        let mut text = format!(
            "state_dir = \"/nonexistent\"\n[feed]\nmax_items = {items}\nwrite_files = false\n\
             [[source]]\nname = \"a\"\nkind = \"folder\"\npath = \"/nonexistent/a\"\n"
        );
        let names: Vec<String> = (0..rules).map(|r| format!("r{r}")).collect();
        for name in &names {
            text.push_str(&format!("[[alert]]\nname = \"{name}\"\nany = [\"x\"]\n"));
        }
        let config = Config::parse(&text, "bench.toml").expect("valid config");
        let store: SharedStore = Arc::new(Mutex::new(Store::open_in_memory().expect("store")));
        let publisher = Arc::new(Publisher::new(store.clone(), &config, 0));
        let mut feeds = vec![FeedScope::All, FeedScope::Source("a".into())];
        feeds.extend(names.iter().cloned().map(FeedScope::Rule));
        let feeds = feeds
            .into_iter()
            .map(|scope| FeedId {
                scope,
                format: FeedFormat::Rss,
            })
            .collect();
        let setup = Setup {
            store,
            publisher,
            matcher: EveryRule(names),
            feeds,
            rt: tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime"),
            items: 0,
        };
        let mut setup = setup;
        for chunk in (0..items).collect::<Vec<_>>().chunks(500) {
            setup.ingest(entries(chunk[0], chunk[chunk.len() - 1] + 1));
        }
        setup.render_all();
        setup
    }

    fn ingest(&mut self, entries: Vec<Entry>) {
        self.items += entries.len();
        let mut store = lookout::store::lock(&self.store);
        store
            .ingest(
                &Ingest {
                    source: "a",
                    origin: "bench",
                    content_hash: None,
                    format: "hf-papers",
                    entries: &entries,
                    seen_at: DateTime::from_timestamp(1_800_000_000 + self.items as i64, 0)
                        .expect("time"),
                    alerts: true,
                },
                &self.matcher,
            )
            .expect("ingest");
        self.publisher
            .store_changed(store.generation().expect("generation"));
    }

    /// Brings every feed up to date, as the requests after a change do.
    fn render_all(&self) -> usize {
        let mut bytes = 0;
        for id in &self.feeds {
            let rendered = self
                .rt
                .block_on(self.publisher.get(id))
                .expect("renders")
                .expect("exists");
            bytes += rendered.bytes.len();
        }
        bytes
    }
}

/// The measured part: every feed the new item is in, brought up to date (the store's
/// changed items, the merge, document, ETags, gzip). Counted with callgrind's
/// `--dump-before` (see the module docs).
#[inline(never)]
fn measured_change(setup: &Setup) -> usize {
    setup.render_all()
}

/// One new item on a warmed publisher: the wall time of the renders it causes.
fn change(items: usize, rules: usize) {
    let t = Instant::now();
    let mut setup = Setup::new(items, rules);
    let setup_time = t.elapsed();
    setup.ingest(entries(1_000_000, 1_000_001));
    let t = Instant::now();
    let bytes = black_box(measured_change(&setup));
    let took = t.elapsed();
    println!(
        "change: {items} items per feed, item in {} feeds ({rules} rules + all + source): \
         {:.2} ms for all, {:.3} ms per feed, {:.1} MB of feeds (setup {:.1} s)",
        setup.feeds.len(),
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / setup.feeds.len() as f64,
        bytes as f64 / 1e6,
        setup_time.as_secs_f64()
    );
}

/// CPU time of this process.
fn cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The least CPU time of `runs` runs of `f`.
fn least_cpu(runs: usize, mut f: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..runs {
        let t = cpu_time();
        out = black_box(f());
        best = best.min(cpu_time() - t);
    }
    (best, out)
}

/// Compresses `input` as one raw deflate piece (sync flush), with `dictionary`.
fn piece(c: &mut flate2::Compress, dictionary: Option<&[u8]>, input: &[u8]) -> usize {
    c.reset();
    if let Some(d) = dictionary {
        c.set_dictionary(d).expect("dictionary");
    }
    let mut out = Vec::with_capacity(input.len() + 1024);
    c.compress_vec(input, &mut out, flate2::FlushCompress::Sync)
        .expect("compress");
    assert_eq!(c.total_in() as usize, input.len(), "room enough");
    out.len()
}

/// gzip levels on the 500-item, ~1 MB feed: the whole document per request (what
/// tower-http did), and the pieces the publisher makes (all of them on a cold render;
/// two per new item).
fn levels() {
    let store = Store::open_in_memory().expect("store");
    let mut store = store;
    let batch = entries(0, 500);
    store
        .ingest(
            &Ingest {
                source: "a",
                origin: "bench",
                content_hash: None,
                format: "hf-papers",
                entries: &batch,
                seen_at: DateTime::from_timestamp(1_800_000_000, 0).expect("time"),
                alerts: false,
            },
            &EveryRule(Vec::new()),
        )
        .expect("ingest");
    let items = store.items(ItemFilter::All, 500).expect("items");
    let channel = Channel {
        title: "lookout".into(),
        description: "New entries from every watched listing page".into(),
        site_link: "http://127.0.0.1:8080/".into(),
        self_url: "http://127.0.0.1:8080/feed.xml".into(),
        stylesheet: Some("http://127.0.0.1:8080/feed.xsl".into()),
        guid_scope: None,
        dates: lookout::feed::FeedDate::default(),
    };
    let doc = render_rss(&channel, &items);
    let frame = Frame::new(FeedFormat::Rss, &channel, &items).expect("frame");
    let fragments: Vec<Vec<u8>> = items.iter().map(|i| frame.item(i).expect("item")).collect();
    println!(
        "levels: RSS feed of {} items, {} bytes; least CPU of 5 runs",
        items.len(),
        doc.len()
    );
    // A cold rendering (no earlier one to reuse: start-up, `lookout once`) renders
    // every item on its own; beside the whole document rendered in one go.
    let (whole, _) = least_cpu(5, || render_rss(&channel, &items).len());
    let (cold, _) = least_cpu(5, || {
        let frame = Frame::new(FeedFormat::Rss, &channel, &items).expect("frame");
        items
            .iter()
            .map(|i| frame.item(i).expect("item").len())
            .sum()
    });
    println!(
        "cold: whole document {:.2} ms, item by item {:.2} ms",
        whole.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e3
    );
    println!("| level | whole document: CPU | bytes | pieces, cold render: CPU | bytes | one new item (2 pieces): CPU |");
    println!("|---|---|---|---|---|---|");
    for level in [1, 2, 4, 6, 9] {
        let (whole_cpu, whole_len) = least_cpu(5, || {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
            e.write_all(&doc).expect("write");
            e.finish().expect("finish").len()
        });
        let mut c = flate2::Compress::new(flate2::Compression::new(level), false);
        let (cold_cpu, cold_len) = least_cpu(5, || {
            let mut len = piece(&mut c, None, &frame.head());
            for (i, f) in fragments.iter().enumerate() {
                let dict = i.checked_sub(1).map(|j| &fragments[j][..]);
                len += piece(&mut c, dict, f);
            }
            len
        });
        let (one_cpu, _) = least_cpu(50, || {
            piece(&mut c, None, &fragments[0]) + piece(&mut c, Some(&fragments[0]), &fragments[1])
        });
        println!(
            "| {level} | {:.2} ms | {whole_len} | {:.2} ms | {cold_len} | {:.1} µs |",
            whole_cpu.as_secs_f64() * 1e3,
            cold_cpu.as_secs_f64() * 1e3,
            one_cpu.as_secs_f64() * 1e6,
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.first().map(String::as_str) {
        Some("change") => {
            let n = |i: usize, default| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(default);
            change(n(1, 500), n(2, 1));
        }
        Some("levels") => levels(),
        _ => {
            levels();
            for (items, rules) in [(500, 1), (5_000, 1), (500, 100)] {
                change(items, rules);
            }
        }
    }
}
