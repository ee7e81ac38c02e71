//! The ingest pipeline: every captured page is parsed and its entries diffed into the
//! store, one page at a time, then the source is told what became of it.

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

/// Parses a page and ingests its entries: the one path every page takes, from the
/// daemon, `lookout once` and `lookout import`. Blocking: call from `spawn_blocking`.
pub fn process_page(
    store: &SharedStore,
    page: &Page,
    config: &Config,
    matcher: &dyn Matcher,
) -> Outcome {
    let seen = store::lock(store).has_capture(&page.content_hash);
    match seen {
        Ok(true) => return Outcome::Duplicate,
        Ok(false) => {}
        Err(e) => {
            return Outcome::Deferred {
                reason: e.to_string(),
            }
        }
    }
    let parsed = match parse_for_ingest(page, config) {
        Ok(p) => p,
        Err(e) => {
            return Outcome::Failed {
                reason: e.to_string(),
            }
        }
    };
    let result = store::lock(store).ingest(&batch_of(page, &parsed), matcher);
    match result {
        Ok(report) if report.duplicate_capture => Outcome::Duplicate,
        Ok(report) => Outcome::Ingested {
            format: parsed.format,
            report,
        },
        Err(e) => Outcome::Deferred {
            reason: e.to_string(),
        },
    }
}

/// Takes captures one at a time until every sender is gone: parse, ingest, answer the
/// source, tell the publisher and the outbox.
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
        let Some(Capture { page, reply }) = capture else {
            return;
        };
        let store = p.store.clone();
        let config = p.live.config();
        let matcher = p.live.matcher();
        let started = std::time::Instant::now();
        let job = tokio::task::spawn_blocking(move || {
            let outcome = process_page(&store, &page, &config, matcher.as_ref());
            let generation = store::lock(&store).generation().ok();
            (page, outcome, generation)
        });
        let (page, outcome, generation) = match job.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "ingest task failed");
                continue;
            }
        };
        let dropped = page.url.is_none();
        match &outcome {
            Outcome::Ingested { format, report } => {
                tracing::info!(
                    source = %page.source, origin = %page.origin, format,
                    new = report.new, updated = report.updated, unchanged = report.unchanged,
                    alerts = report.queued, "ingested page"
                );
                let entries = report.new + report.updated + report.unchanged;
                p.metrics.record_ingest(
                    &page.source,
                    entries as u64,
                    report.new as u64,
                    started.elapsed().as_secs_f64(),
                );
                if report.queued > 0 {
                    p.outbox_wake.notify_one();
                }
            }
            Outcome::Duplicate => {
                tracing::info!(source = %page.source, origin = %page.origin, "same capture seen before; skipped")
            }
            Outcome::Failed { reason } => {
                tracing::warn!(source = %page.source, origin = %page.origin, %reason, "page refused");
                p.metrics.record_parse_failure(&page.source);
            }
            Outcome::Deferred { reason } => {
                tracing::error!(source = %page.source, origin = %page.origin, %reason, "page not stored; will retry")
            }
        }
        if dropped {
            // HTTP sources keep their health in the store; drop folders here.
            let result = match &outcome {
                Outcome::Ingested { .. } | Outcome::Duplicate => Ok(()),
                Outcome::Failed { reason } | Outcome::Deferred { reason } => Err(reason.as_str()),
            };
            p.live.record_folder(&page.source, result);
        }
        if let Some(g) = generation {
            p.publisher.store_changed(g);
        }
        // The source may have stopped listening (shutdown); the page is stored either way.
        let _ = reply.send(outcome);
    }
}
