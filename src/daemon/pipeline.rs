//! The ingest pipeline: every captured page is parsed and its entries diffed into the
//! store, then the source is told what became of it. Pages queued at the same moment
//! share one transaction (group commit); each still gets its own outcome.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, Notify};

use crate::config::Config;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::parse::{self, ParseContext, ParseError, Parsed};
use crate::publish::Publisher;
use crate::sources::{Capture, Outcome, Page};
use crate::store::{self, Ingest, Matcher, SharedStore};
use crate::systemd;

/// Parses pages and ingests their entries, all in one store transaction: the path
/// every captured page takes, in the daemon and in `lookout once`. Each page gets its
/// own outcome, as if it were ingested alone. Blocking: call from `spawn_blocking`.
pub fn process_pages(
    store: &SharedStore,
    pages: &[Page],
    config: &Config,
    matcher: &dyn Matcher,
) -> Vec<Outcome> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; pages.len()];
    let mut parsed: Vec<(usize, Parsed)> = Vec::with_capacity(pages.len());
    for (n, page) in pages.iter().enumerate() {
        let seen = store::lock(store).has_capture(&page.content_hash);
        outcomes[n] = match seen {
            Ok(true) => Some(Outcome::Duplicate),
            Ok(false) => match parse_for_ingest(page, config) {
                Ok(p) => {
                    parsed.push((n, p));
                    None
                }
                Err(e) => Some(Outcome::Failed {
                    reason: e.to_string(),
                }),
            },
            Err(e) => Some(Outcome::Deferred {
                reason: e.to_string(),
            }),
        };
    }
    let batches: Vec<Ingest<'_>> = parsed
        .iter()
        .map(|(n, p)| batch_of(&pages[*n], p))
        .collect();
    // Nothing to store (every page seen before or refused): no write transaction.
    let result = if batches.is_empty() {
        Ok(Vec::new())
    } else {
        store::lock(store).ingest_all(&batches, matcher)
    };
    match result {
        Ok(reports) => {
            for ((n, p), report) in parsed.iter().zip(reports) {
                outcomes[*n] = Some(if report.duplicate_capture {
                    Outcome::Duplicate
                } else {
                    Outcome::Ingested {
                        format: p.format,
                        report,
                    }
                });
            }
        }
        Err(e) => {
            for (n, _) in &parsed {
                outcomes[*n] = Some(Outcome::Deferred {
                    reason: e.to_string(),
                });
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or(Outcome::Deferred {
                reason: "not processed".to_owned(),
            })
        })
        .collect()
}

/// Most captures one store transaction takes: a burst (a `lookout once` pass, many
/// drops at once) commits together instead of once per page.
const GROUP_COMMIT: usize = 64;

/// Parses a page with its source's format and selectors, entries in ingest order.
pub(super) fn parse_for_ingest(page: &Page, config: &Config) -> Result<Parsed, ParseError> {
    let selectors = config
        .source(&page.source)
        .and_then(|s| s.selectors.as_ref());
    let ctx = ParseContext {
        captured_at: page.captured_at,
        url: page.url.as_ref(),
        content_type: page.content_type.as_deref(),
        selectors,
    };
    let mut parsed = parse::parse_page(&page.body, &page.format, &ctx)?;
    // Entries of one capture share their first-seen time and feeds break the tie by
    // insertion order, newest last: ingest bottom-up so the page's top entry leads.
    parsed.entries.reverse();
    Ok(parsed)
}

/// The store's view of a parsed page.
pub(super) fn batch_of<'a>(page: &'a Page, parsed: &'a Parsed) -> Ingest<'a> {
    Ingest {
        source: &page.source,
        origin: &page.origin,
        content_hash: Some(&page.content_hash),
        format: parsed.format,
        entries: &parsed.entries,
        seen_at: Utc::now(),
        alerts: !page.baseline,
    }
}

/// What the pipeline task works with.
pub(super) struct Pipeline {
    pub(super) store: SharedStore,
    pub(super) live: Arc<Live>,
    pub(super) publisher: Arc<Publisher>,
    pub(super) outbox_wake: Arc<Notify>,
    pub(super) metrics: Metrics,
    /// Touched on every capture and every idle second: the pipeline is alive.
    pub(super) pulse: Option<systemd::Pulse>,
}

/// Takes captures until every sender is gone: parse, ingest (whatever is queued
/// together, in one transaction), tell the publisher, answer each source, wake the
/// outbox.
pub(super) async fn pipeline(mut rx: mpsc::Receiver<Capture>, p: Pipeline) {
    let mut idle = tokio::time::interval(Duration::from_secs(1));
    loop {
        if let Some(pulse) = &p.pulse {
            pulse.touch();
        }
        let capture = tokio::select! {
            capture = rx.recv() => capture,
            _ = idle.tick() => continue,
        };
        let Some(first) = capture else {
            return;
        };
        // Whatever else is already queued joins this transaction.
        let mut captures = vec![first];
        while captures.len() < GROUP_COMMIT {
            match rx.try_recv() {
                Ok(more) => captures.push(more),
                Err(_) => break,
            }
        }
        let (pages, replies): (Vec<Page>, Vec<_>) =
            captures.into_iter().map(|c| (c.page, c.reply)).unzip();
        let store = p.store.clone();
        let config = p.live.config();
        let matcher = p.live.matcher();
        let started = std::time::Instant::now();
        let job = tokio::task::spawn_blocking(move || {
            let outcomes = process_pages(&store, &pages, &config, matcher.as_ref());
            let generation = store::lock(&store).generation().ok();
            (pages, outcomes, generation)
        });
        let (pages, outcomes, generation) = match job.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "ingest task failed");
                continue;
            }
        };
        if let Some(g) = generation {
            p.publisher.store_changed(g);
        }
        let elapsed = started.elapsed().as_secs_f64() / pages.len() as f64;
        for ((page, outcome), reply) in pages.into_iter().zip(outcomes).zip(replies) {
            p.report(&page, &outcome, elapsed);
            // The source may have stopped listening (shutdown); the page is stored
            // either way.
            let _ = reply.send(outcome);
        }
    }
}

impl Pipeline {
    /// Logs and counts what became of one page; `seconds` is its share of the ingest.
    fn report(&self, page: &Page, outcome: &Outcome, seconds: f64) {
        let dropped = page.url.is_none();
        match outcome {
            Outcome::Ingested { format, report } => {
                tracing::info!(
                    source = %page.source, origin = %page.origin, format,
                    new = report.new, updated = report.updated, unchanged = report.unchanged,
                    alerts = report.queued, "ingested page"
                );
                let entries = report.new + report.updated + report.unchanged;
                self.metrics.record_ingest(
                    &page.source,
                    entries as u64,
                    report.new as u64,
                    seconds,
                );
                if report.queued > 0 {
                    self.outbox_wake.notify_one();
                }
            }
            Outcome::Duplicate => {
                tracing::info!(source = %page.source, origin = %page.origin, "same capture seen before; skipped")
            }
            Outcome::Failed { reason } => {
                tracing::warn!(source = %page.source, origin = %page.origin, %reason, "page refused");
                self.metrics.record_parse_failure(&page.source);
            }
            Outcome::Deferred { reason } => {
                tracing::error!(source = %page.source, origin = %page.origin, %reason, "page not stored; will retry")
            }
        }
        if dropped {
            // HTTP sources keep their health in the store; drop folders here.
            let result = match outcome {
                Outcome::Ingested { .. } | Outcome::Duplicate => Ok(()),
                Outcome::Failed { reason } | Outcome::Deferred { reason } => Err(reason.as_str()),
            };
            self.live.record_folder(&page.source, result);
        }
    }
}
