//! Parse throughput per format, in MB/s (and entries/s: `bench/criterion-summary`), on pages scaled up from the
//! fixtures to about 1 MB and 10 MB (see `support/scale.rs`).
//!
//! Pages go through `parse_page` exactly as the daemon calls it: decoding, sniffing
//! (`auto`) and the format's parser. Run with `cargo bench --bench parse`; a fixture not
//! yet in tests/fixtures is skipped with a note (`LOOKOUT_BENCH_FIXTURES=DIR` points
//! elsewhere). `LOOKOUT_BENCH_QUICK=1` measures only the 1 MB pages.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lookout::parse::{parse_page, ParseContext};

#[path = "support/scale.rs"]
mod scale;

const MB: usize = 1_000_000;

fn parse_throughput(c: &mut Criterion) {
    let selectors = scale::blog_selectors();
    let url = scale::base_url();
    let mut sizes = vec![("1MB", MB)];
    if std::env::var_os("LOOKOUT_BENCH_QUICK").is_none() {
        sizes.push(("10MB", 10 * MB));
    }
    for (label, target) in sizes {
        {
            let mut group = c.benchmark_group(format!("parse/{label}"));
            group
                .sample_size(10)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(if target > MB { 8 } else { 3 }));
            for fixture in scale::FIXTURES {
                let page = match scale::scale(fixture, target) {
                    None => {
                        eprintln!("skipping {}: {} not found", fixture.name, fixture.file);
                        continue;
                    }
                    Some(Err(e)) => panic!("cannot scale {}: {e}", fixture.file),
                    Some(Ok(page)) => page,
                };
                eprintln!(
                    "{}: {} bytes, {} entries ({} distinct titles)",
                    fixture.name,
                    page.bytes.len(),
                    page.entries,
                    page.unique_titles
                );
                group.throughput(Throughput::Bytes(page.bytes.len() as u64));
                let mut ctx = ParseContext::at(scale::captured_at());
                ctx.url = Some(&url);
                if fixture.format == "selectors" {
                    ctx.selectors = Some(&selectors);
                }
                group.bench_with_input(
                    // The entry count rides in the id: bench/criterion-summary turns the
                    // time into entries/s (criterion keeps one throughput per bench).
                    BenchmarkId::new(fixture.name, format!("{}-entries", page.entries)),
                    &page.bytes,
                    |b, bytes| {
                        b.iter(|| {
                            let parsed = parse_page(bytes, fixture.format, &ctx).expect("parses");
                            assert_eq!(parsed.entries.len(), page.entries);
                            parsed
                        })
                    },
                );
            }
            group.finish();
        }
    }
}

criterion_group!(benches, parse_throughput);
criterion_main!(benches);
