//! The ingest pipeline: every captured page is parsed and its entries diffed into the
//! store, then the source is told what became of it. Pages are parsed as they arrive,
//! on the blocking pool, while earlier ones are ingested; pages parsed and waiting at
//! the same moment share one transaction (group commit); each still gets its own
//! outcome, in arrival order.
//!
//! A page the store cannot take now (a full disk, a lock held elsewhere, a damaged
//! file) is *held*: its source gets no answer yet, so a dropped file stays in its
//! folder and the source waits, and the pipeline takes no new page until the held ones
//! are stored. They are tried again as soon as [`StoreHealth`] says the store writes
//! again, and otherwise with capped exponential backoff; no restart is needed. When the
//! daemon stops, held pages are answered [`Outcome::Deferred`] and stay with their
//! sources for the next start. Before, such a file stayed in the folder until the next
//! restart (issue 13.1). A damaged store takes no page at all: a write that missed the
//! damaged pages would "succeed" into a file nothing can be read back from (issue
//! 13.7).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::parse::{self, ParseContext, ParseError, ParseWarning, Parsed};
use crate::publish::Publisher;
use crate::sources::folder::Unparsed;
use crate::sources::{Attempt, Capture, Failure, Outcome, Page, Recorded, Report, Validators};
use crate::store::{self, Condition, Fault, Ingest, Matcher, SharedStore, StoreHealth};
use crate::systemd;

/// A page made ready for the store, on the blocking pool: parsed, or already known
/// to be a duplicate or refused.
pub(super) enum Prepared {
    /// Parsed; its entries go to the store.
    Parsed(Parsed),
    /// Nothing to store: this is the page's outcome.
    Done(Outcome),
}

/// Readies one page for ingest (blocking): skips a capture already recorded, else
/// parses it with its source's format. Parsing runs as pages arrive, beside the
/// ingest of earlier ones, so it needs no store lock: when an ingest holds it, the
/// duplicate check is left to the ingest transaction, which makes it anyway.
pub(super) fn prepare(store: &SharedStore, page: &Page, config: &Config) -> Prepared {
    let seen = match store.try_lock() {
        Ok(store) => store.has_capture(&page.source, &page.content_hash),
        Err(std::sync::TryLockError::Poisoned(p)) => {
            p.into_inner().has_capture(&page.source, &page.content_hash)
        }
        Err(std::sync::TryLockError::WouldBlock) => Ok(false),
    };
    match seen {
        Ok(true) => Prepared::Done(Outcome::Duplicate),
        // A store that cannot answer now: parse anyway and leave the check to the
        // ingest, whose failure says what kind it is (and holds the page).
        Ok(false) | Err(_) => match parse_for_ingest(page, config) {
            Ok(parsed) => Prepared::Parsed(parsed),
            Err(e) => Prepared::Done(Outcome::Failed {
                error: Failure::new(Unparsed(e)),
            }),
        },
    }
}

/// Ingests prepared pages, all in one store transaction: the path every captured page
/// takes, in the daemon and in `lookout once`. Each page gets its own outcome, as if
/// it were ingested alone. A store failure is recorded in `health`, makes every
/// parsed page [`Outcome::Deferred`] and is returned as its [`Fault`]; a store known to
/// be damaged is not written at all ([`Fault::Corrupt`]). Blocking: call from
/// `spawn_blocking`.
pub(super) fn ingest_group(
    store: &SharedStore,
    pages: &[(Page, Prepared)],
    matcher: &dyn Matcher,
    health: &StoreHealth,
) -> (Vec<Outcome>, Option<Fault>) {
    let batches: Vec<Ingest<'_>> = pages
        .iter()
        .filter_map(|(page, prepared)| match prepared {
            Prepared::Parsed(parsed) => Some(batch_of(page, parsed)),
            Prepared::Done(_) => None,
        })
        .collect();
    let mut fault = None;
    // Nothing to store (every page seen before or refused): no write transaction.
    let result = if batches.is_empty() {
        Ok(Vec::new())
    } else if !health.condition().is_intact() {
        let error = Failure::msg("the store is damaged; the page is kept until it is restored");
        return (deferred_all(pages, &error), Some(Fault::Corrupt));
    } else {
        let mut guard = store::lock(store);
        let result = guard.ingest_all(&batches, matcher);
        match &result {
            Ok(_) => health.wrote(),
            Err(e) => fault = Some(health.failed(&guard, e)),
        }
        result
    };
    let mut reports = match result {
        Ok(reports) => reports.into_iter().map(Ok).collect::<Vec<_>>(),
        Err(e) => vec![Err(Failure::new(e)); batches.len()],
    }
    .into_iter();
    let outcomes = pages
        .iter()
        .map(|(_, prepared)| match prepared {
            Prepared::Done(outcome) => outcome.clone(),
            Prepared::Parsed(parsed) => match reports.next() {
                Some(Ok(report)) if report.duplicate_capture => Outcome::Duplicate,
                Some(Ok(report)) => Outcome::Ingested {
                    format: parsed.format,
                    report,
                },
                Some(Err(error)) => Outcome::Deferred { error },
                None => Outcome::Deferred {
                    error: Failure::msg("not processed"),
                },
            },
        })
        .collect();
    (outcomes, fault)
}

/// What was odd about each stored page, for its source's health: the parser's
/// warnings, and a page with no entries where the source had some. `None` for a page
/// not stored now (a duplicate says nothing new). Blocking.
fn page_warnings(
    store: &SharedStore,
    pages: &[(Page, Prepared)],
    outcomes: &[Outcome],
) -> Vec<Option<Vec<String>>> {
    pages
        .iter()
        .zip(outcomes)
        .map(|((page, prepared), outcome)| {
            let (Prepared::Parsed(parsed), Outcome::Ingested { .. }) = (prepared, outcome) else {
                return None;
            };
            let mut warnings: Vec<String> =
                parsed.warnings.iter().map(ToString::to_string).collect();
            if parsed.entries.is_empty() {
                let had = store::lock(store)
                    .items(store::ItemFilter::Source(&page.source), 1)
                    .is_ok_and(|items| !items.is_empty());
                if had {
                    let warning = ParseWarning::NoEntries.to_string();
                    tracing::warn!(source = %page.source, origin = %page.origin, "{warning}");
                    warnings.push(warning);
                }
            }
            Some(warnings)
        })
        .collect()
}

/// Every parsed page deferred for `error`; pages already decided keep their outcome.
fn deferred_all(pages: &[(Page, Prepared)], error: &Failure) -> Vec<Outcome> {
    pages
        .iter()
        .map(|(_, prepared)| match prepared {
            Prepared::Done(outcome) => outcome.clone(),
            Prepared::Parsed(_) => Outcome::Deferred {
                error: error.clone(),
            },
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
    /// The store's condition, shared with the outbox worker and `/healthz`.
    pub(super) health: StoreHealth,
    /// Cancelled when the daemon begins to stop: held pages are answered
    /// [`Outcome::Deferred`] instead of waiting longer. `None` (the one-shot runs)
    /// holds no page: a store failure is answered at once.
    pub(super) stopping: Option<CancellationToken>,
}

/// First wait before a held page is tried again without word that the store writes
/// again; doubles per failed try up to [`HOLD_RETRY_MAX`]: the store retry policy.
const HOLD_RETRY_BASE: Duration = crate::store::STORE_RETRY_BASE;
/// Longest wait between tries of held pages.
const HOLD_RETRY_MAX: Duration = crate::store::STORE_RETRY_MAX;

/// A page being prepared on the blocking pool (done: the page, what became of it and
/// the seconds it took), and where its outcome goes.
struct Preparing {
    job: tokio::task::JoinHandle<((Page, Prepared), f64)>,
    reply: oneshot::Sender<Outcome>,
    validators: Option<Validators>,
}

/// Takes captures until every sender is gone. Each page is parsed as soon as it
/// arrives, on the blocking pool; pages are ingested in arrival order, whatever is
/// parsed and waiting together in one transaction; then the publisher is told, each
/// source answered and the outbox woken.
pub(super) async fn pipeline(mut rx: mpsc::Receiver<Report>, mut p: Pipeline) {
    // Bounded like the capture channel: at most this many pages wait parsed or in
    // parsing, and a burst's sources wait for their turn to send.
    let (jobs, mut ready) = mpsc::channel::<Preparing>(GROUP_COMMIT);
    let store = p.store.clone();
    let live = Arc::clone(&p.live);
    let health = p.health.clone();
    let parser = tokio::spawn(async move {
        while let Some(report) = rx.recv().await {
            let Capture {
                page,
                reply,
                validators,
            } = match report {
                Report::Page(capture) => capture,
                Report::Attempt(attempt) => {
                    // In arrival order: a source reports its next attempt only once
                    // its page before was answered.
                    record_attempt(&store, &live, &health, attempt).await;
                    continue;
                }
            };
            let store = store.clone();
            let config = live.config();
            let job = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let prepared = prepare(&store, &page, &config);
                ((page, prepared), started.elapsed().as_secs_f64())
            });
            let preparing = Preparing {
                job,
                reply,
                validators,
            };
            if jobs.send(preparing).await.is_err() {
                return;
            }
        }
    });
    let mut waiting: VecDeque<Preparing> = VecDeque::new();
    let mut idle = tokio::time::interval(Duration::from_secs(1));
    let mut held = Held::default();
    let mut condition = p.health.subscribe();
    loop {
        if let Some(pulse) = &p.pulse {
            pulse.touch();
        }
        if !held.pages.is_empty() {
            p.retry_held(&mut held, &mut condition).await;
            continue;
        }
        if waiting.is_empty() {
            let next = tokio::select! {
                next = ready.recv() => next,
                _ = idle.tick() => continue,
            };
            match next {
                Some(preparing) => waiting.push_back(preparing),
                None => break,
            }
        }
        while waiting.len() < GROUP_COMMIT {
            match ready.try_recv() {
                Ok(more) => waiting.push_back(more),
                Err(_) => break,
            }
        }
        // The oldest page first, then every page behind it that is ready too.
        let mut group = Vec::new();
        while group.len() < GROUP_COMMIT
            && waiting
                .front()
                .is_some_and(|head| group.is_empty() || head.job.is_finished())
        {
            let Some(Preparing {
                job,
                reply,
                validators,
            }) = waiting.pop_front()
            else {
                break;
            };
            match job.await {
                Ok((page, seconds)) => group.push(Ready {
                    page,
                    validators,
                    parse_seconds: seconds,
                    reply,
                    held: false,
                }),
                Err(e) => tracing::error!(error = %e, "parse task failed"),
            }
        }
        if !group.is_empty() {
            held.pages = p.ingest(group).await;
            if !held.pages.is_empty() {
                // The store just failed: give it the first backoff step before the
                // next try, unless it says sooner that it writes again.
                held.next_try = Some(tokio::time::Instant::now() + HOLD_RETRY_BASE);
            }
        }
    }
    let _ = parser.await;
}

/// Pages the store could not take, oldest first, and when to try them again.
#[derive(Default)]
struct Held {
    pages: Vec<Ready>,
    /// Failed tries since the pages were first held.
    tries: u32,
    next_try: Option<tokio::time::Instant>,
}

/// A prepared page waiting for its turn to be ingested.
struct Ready {
    page: (Page, Prepared),
    validators: Option<Validators>,
    parse_seconds: f64,
    reply: oneshot::Sender<Outcome>,
    /// Held before: the store could not take it on an earlier try.
    held: bool,
}

/// Books what became of each page in its source's stored record (with the validators
/// an HTTP source sent, once its page is stored), in one transaction. Held pages are
/// not answered yet, so not booked. A failure is logged: the pages are stored (or
/// were not anyway), and the next fetch of such a source is at worst unconditional.
fn record_pages(
    store: &SharedStore,
    pages: &[(Page, Prepared)],
    outcomes: &[Outcome],
    validators: &[Option<Validators>],
) {
    let at = Utc::now();
    let records: Vec<(&str, Recorded)> = pages
        .iter()
        .zip(outcomes)
        .zip(validators)
        .map(|(((page, _), outcome), v)| {
            (
                page.source.as_str(),
                Recorded::of_outcome(outcome, v.as_ref()),
            )
        })
        .collect();
    if let Err(e) = record_in_store(&mut store::lock(store), at, &records) {
        tracing::warn!(error = %e, "cannot record the sources' attempts");
    }
}

/// Applies attempts to the sources' stored records: one read for the group, then one
/// write transaction. The pipeline is the only writer of these records, but it reads
/// them rather than keeping them in memory: on a store that replicas share, the
/// source's lease (and so its record) may have moved to another replica since.
/// Blocking.
fn record_in_store(
    store: &mut store::Store,
    at: chrono::DateTime<Utc>,
    records: &[(&str, Recorded)],
) -> Result<(), store::StoreError> {
    let mut names: Vec<&str> = Vec::with_capacity(records.len());
    for (source, _) in records {
        if !names.contains(source) {
            names.push(source);
        }
    }
    let mut states = store.fetch_states(&names)?;
    for (source, recorded) in records {
        // A source twice in one group: its second record builds on its first.
        if let Some(i) = names.iter().position(|name| name == source) {
            states[i].record(at, recorded);
        }
    }
    let refs: Vec<(&str, &store::FetchState)> = names.iter().copied().zip(&states).collect();
    store.save_fetch_states(&refs)
}

/// Books an attempt that brought no page: in the store (off the async workers) and in
/// the daemon's view of the source's health. The write tells `health` how it went, as
/// every write does: a store that cannot write is then logged once, by `health`, and
/// not once per attempt here (a replica on a PostgreSQL server that is down reports
/// an attempt per source every few seconds).
async fn record_attempt(store: &SharedStore, live: &Live, health: &StoreHealth, attempt: Attempt) {
    let recorded = Recorded::of_attempt(&attempt.result);
    live.record(&attempt.source, attempt.at, &recorded);
    let (source, at) = (attempt.source, attempt.at);
    let noted = health.clone();
    let result = store::blocking(store, move |s| {
        let result = record_in_store(s, at, &[(&source, recorded)]);
        match &result {
            Ok(()) => noted.wrote(),
            Err(e) => {
                noted.failed(s, e);
            }
        }
        result
    })
    .await;
    if let Err(e) = result {
        if health.condition().is_healthy() {
            tracing::warn!(error = %e, "cannot record a source's attempt");
        } else {
            tracing::debug!(error = %e, "cannot record a source's attempt; the store cannot write");
        }
    }
}

impl Pipeline {
    /// Whether a page the store could not take is held for a later try (see the
    /// module docs): while the daemon runs, not in one-shot runs nor once it stops.
    fn holds(&self) -> bool {
        self.stopping.as_ref().is_some_and(|s| !s.is_cancelled())
    }

    /// One turn with pages held: tries them again when the store writes again or the
    /// backoff has passed, answers them "deferred" when the daemon stops, and else
    /// waits (at most a second, so the pulse keeps beating).
    async fn retry_held(&mut self, held: &mut Held, condition: &mut watch::Receiver<Condition>) {
        if !self.holds() {
            for ready in std::mem::take(&mut held.pages) {
                let outcome = Outcome::Deferred {
                    error: Failure::msg("the store could not take the page before lookout stopped"),
                };
                self.report(&ready.page.0, &outcome, ready.parse_seconds);
                // The store could not take the page: this is the only record of it.
                self.live.record(
                    &ready.page.0.source,
                    Utc::now(),
                    &Recorded::of_outcome(&outcome, None),
                );
                let _ = ready.reply.send(outcome);
            }
            *held = Held::default();
            return;
        }
        let now = tokio::time::Instant::now();
        let state = self.health.condition();
        let due = held.next_try.is_none_or(|at| now >= at);
        if state.is_healthy() || (state.is_intact() && due) {
            let pages = std::mem::take(&mut held.pages);
            let count = pages.len();
            held.pages = self.ingest(pages).await;
            if held.pages.is_empty() {
                if held.tries > 0 {
                    tracing::info!(pages = count, "held pages stored; the pipeline resumes");
                }
                *held = Held::default();
            } else {
                held.tries += 1;
                let delay = crate::retry::backoff(held.tries, HOLD_RETRY_BASE, HOLD_RETRY_MAX);
                held.next_try = Some(tokio::time::Instant::now() + delay);
            }
            return;
        }
        let wait = held
            .next_try
            .map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(now)
            })
            .min(Duration::from_secs(1));
        let stopping = async {
            match &self.stopping {
                Some(s) => s.cancelled().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = condition.changed() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping => {}
        }
    }

    /// Ingests a group of prepared pages in one transaction, records the fetch state
    /// of each page stored or known, and answers each source. Each page is reported
    /// with its parse time and its share of the ingest. Returns the pages the store
    /// could not take, unanswered, when they are to be held (see [`Pipeline::holds`]).
    async fn ingest(&self, group: Vec<Ready>) -> Vec<Ready> {
        let mut pages = Vec::with_capacity(group.len());
        let mut validators = Vec::with_capacity(group.len());
        let mut answers = Vec::with_capacity(group.len());
        for ready in group {
            pages.push(ready.page);
            validators.push(ready.validators);
            answers.push((ready.parse_seconds, ready.reply, ready.held));
        }
        let store = self.store.clone();
        let matcher = self.live.matcher();
        let health = self.health.clone();
        let publisher = Arc::clone(&self.publisher);
        let started = std::time::Instant::now();
        let job = tokio::task::spawn_blocking(move || {
            let (outcomes, fault) = ingest_group(&store, &pages, matcher.as_ref(), &health);
            let stored = outcomes
                .iter()
                .any(|o| matches!(o, Outcome::Ingested { .. } | Outcome::Duplicate));
            // Nothing stored: nothing changed to publish. The pages are committed:
            // feeds may show them now, before the bookkeeping below (drop -> feed
            // latency is counted from here).
            if stored {
                if let Ok(g) = store::lock(&store).generation() {
                    publisher.store_changed(g);
                }
            }
            // Pages the store could not take are held or answered later: booked then.
            if fault.is_none() {
                record_pages(&store, &pages, &outcomes, &validators);
            }
            let warnings = page_warnings(&store, &pages, &outcomes);
            (pages, validators, outcomes, fault, warnings)
        });
        let (pages, validators, outcomes, fault, warnings) = match job.await {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "ingest task failed");
                return Vec::new();
            }
        };
        // Held only when the store itself is the trouble (it cannot write, or is
        // damaged); any other store error is answered as before. Decided by this
        // failure, not the shared condition, which a write elsewhere may have cleared
        // since.
        let hold = self.holds() && matches!(fault, Some(Fault::Temporary | Fault::Corrupt));
        let share = started.elapsed().as_secs_f64() / pages.len() as f64;
        let mut held = Vec::new();
        for (
            ((((page, prepared), outcome), (parse_seconds, reply, was_held)), validators),
            warnings,
        ) in pages
            .into_iter()
            .zip(outcomes)
            .zip(answers)
            .zip(validators)
            .zip(warnings)
        {
            if let Some(warnings) = warnings {
                self.live.set_source_warnings(&page.source, warnings);
            }
            if hold && matches!(outcome, Outcome::Deferred { .. }) {
                if !was_held {
                    tracing::info!(source = %page.source, origin = %page.origin,
                        "page held until the store can take it");
                }
                held.push(Ready {
                    page: (page, prepared),
                    validators,
                    parse_seconds,
                    reply,
                    held: true,
                });
                continue;
            }
            self.report(&page, &outcome, parse_seconds + share);
            self.live.record(
                &page.source,
                Utc::now(),
                &Recorded::of_outcome(&outcome, validators.as_ref()),
            );
            // The source may have stopped listening (shutdown); the page is stored
            // either way.
            let _ = reply.send(outcome);
        }
        held
    }

    /// Logs and counts what became of one page; `seconds` is its parse time and its
    /// share of the ingest.
    fn report(&self, page: &Page, outcome: &Outcome, seconds: f64) {
        match outcome {
            Outcome::Ingested { format, report } => {
                tracing::info!(
                    source = %page.source, origin = %page.origin, %format,
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
            // Routine: an HTTP source polls an unchanged page that has no validators
            // again and again. Nothing happened, so nothing at INFO.
            Outcome::Duplicate => {
                tracing::debug!(source = %page.source, origin = %page.origin, "same capture seen before; skipped")
            }
            Outcome::Failed { error } => {
                tracing::debug!(source = %page.source, origin = %page.origin, %error, "page refused");
                self.metrics.record_parse_failure(&page.source);
            }
            // The source that sent the page says it, once: the folder keeps the file,
            // the HTTP source logs its attempt, POST /captures answers 503.
            Outcome::Deferred { error } => {
                tracing::debug!(source = %page.source, origin = %page.origin, %error, "page not stored; will retry")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::AttemptResult;

    /// [`ingest_group`]'s outcomes.
    fn ingest_prepared(
        store: &SharedStore,
        pages: &[(Page, Prepared)],
        matcher: &dyn Matcher,
        health: &StoreHealth,
    ) -> Vec<Outcome> {
        ingest_group(store, pages, matcher, health).0
    }
    use crate::store::{NoRules, Store};

    fn page(body: &[u8]) -> Page {
        page_of("drop", body)
    }

    fn page_of(source: &str, body: &[u8]) -> Page {
        Page {
            source: source.to_owned(),
            origin: "test".to_owned(),
            body: body.to_vec(),
            content_type: None,
            url: None,
            captured_at: Utc::now(),
            format: "auto".to_owned(),
            baseline: true,
            content_hash: crate::sources::content_hash(body),
        }
    }

    fn setup() -> (SharedStore, Config) {
        let store = Store::open_in_memory().expect("in-memory store opens");
        let config = Config::parse("", "test.toml").expect("empty config parses");
        (Arc::new(std::sync::Mutex::new(store)), config)
    }

    const APR17: &[u8] = include_bytes!("../../tests/fixtures/hf_papers_apr17.txt");
    const MAY20: &[u8] = include_bytes!("../../tests/fixtures/hf_papers_may20.txt");

    #[test]
    fn a_group_answers_every_page_in_order_as_if_each_were_ingested_alone() {
        let (store, config) = setup();
        let pages: Vec<(Page, Prepared)> = [APR17, &b"no entries at all"[..], MAY20, APR17]
            .into_iter()
            .map(|body| {
                let page = page(body);
                let prepared = prepare(&store, &page, &config);
                (page, prepared)
            })
            .collect();
        let outcomes = ingest_prepared(&store, &pages, &NoRules, &StoreHealth::new(None));
        assert_eq!(outcomes.len(), 4);
        assert!(
            matches!(&outcomes[0], Outcome::Ingested { report, .. } if report.new > 0),
            "{:?}",
            outcomes[0]
        );
        assert!(
            matches!(&outcomes[1], Outcome::Failed { .. }),
            "{:?}",
            outcomes[1]
        );
        assert!(
            matches!(&outcomes[2], Outcome::Ingested { report, .. } if report.new > 0),
            "{:?}",
            outcomes[2]
        );
        // The same bytes twice in one group: stored once.
        assert_eq!(outcomes[3], Outcome::Duplicate);
    }

    #[test]
    fn a_page_prepared_while_the_store_is_busy_is_still_known_as_a_duplicate() {
        let (store, config) = setup();
        let first = page(APR17);
        let prepared = prepare(&store, &first, &config);
        assert!(matches!(
            ingest_prepared(
                &store,
                &[(first, prepared)],
                &NoRules,
                &StoreHealth::new(None)
            )[0],
            Outcome::Ingested { .. }
        ));

        // Store free: known before parsing.
        assert!(matches!(
            prepare(&store, &page(APR17), &config),
            Prepared::Done(Outcome::Duplicate)
        ));
        // Store busy (an ingest holds it): parsed anyway, and the ingest transaction
        // finds the capture.
        let again = page(APR17);
        let prepared = {
            let _busy = store::lock(&store);
            prepare(&store, &again, &config)
        };
        assert!(matches!(prepared, Prepared::Parsed(_)));
        assert_eq!(
            ingest_prepared(
                &store,
                &[(again, prepared)],
                &NoRules,
                &StoreHealth::new(None)
            ),
            vec![Outcome::Duplicate]
        );
    }

    #[test]
    fn validators_are_recorded_with_the_pages_stored_and_a_refusal_as_a_failure() {
        let (store, config) = setup();
        let pages: Vec<(Page, Prepared)> = [("a", APR17), ("b", &b"no entries"[..]), ("c", APR17)]
            .into_iter()
            .map(|(source, body)| {
                let page = page_of(source, body);
                let prepared = prepare(&store, &page, &config);
                (page, prepared)
            })
            .collect();
        let outcomes = ingest_prepared(&store, &pages, &NoRules, &StoreHealth::new(None));
        let validators = |etag: &str| {
            Some(Validators {
                etag: Some(etag.to_owned()),
                last_modified: None,
            })
        };
        record_pages(
            &store,
            &pages,
            &outcomes,
            &[validators("a"), validators("b"), validators("c")],
        );
        let store = store::lock(&store);
        let state = |source| store.fetch_state(source).expect("read");
        assert_eq!(state("a").validators.etag.as_deref(), Some("a"), "stored");
        assert!(state("a").ever_succeeded && state("a").health.last_success.is_some());
        // Refused: the next fetch must get the page again, unconditionally; the
        // refusal is the source's failure.
        let b = state("b");
        assert_eq!((b.validators.etag, b.ever_succeeded), (None, false));
        assert_eq!(b.health.consecutive_failures, 1);
        assert!(b.health.last_error.is_some_and(|e| !e.is_empty()));
        // The same bytes on another source are that source's own page.
        assert!(
            matches!(outcomes[2], Outcome::Ingested { .. }),
            "{:?}",
            outcomes[2]
        );
        assert_eq!(state("c").validators.etag.as_deref(), Some("c"), "stored");
    }

    #[tokio::test]
    async fn an_attempt_without_a_page_is_recorded_by_the_pipeline_alone() {
        let (store, config) = setup();
        let live = Live::new(Arc::new(config), Arc::new(NoRules));
        let health = StoreHealth::new(None);
        // Whole milliseconds, as the store keeps times.
        let at = chrono::DateTime::from_timestamp_millis(Utc::now().timestamp_millis())
            .expect("now is in range");
        let attempt = |result| Attempt {
            source: "h".to_owned(),
            at,
            result,
        };
        record_attempt(
            &store,
            &live,
            &health,
            attempt(AttemptResult::Failed(Failure::msg("HTTP 503"))),
        )
        .await;
        record_attempt(
            &store,
            &live,
            &health,
            attempt(AttemptResult::Failed(Failure::msg("HTTP 503"))),
        )
        .await;
        let stored = store::lock(&store).fetch_state("h").expect("read");
        assert_eq!(stored.health.consecutive_failures, 2);
        assert_eq!(
            live.source_health("h"),
            stored.health,
            "one health, shown as stored"
        );
        record_attempt(&store, &live, &health, attempt(AttemptResult::NotModified)).await;
        let stored = store::lock(&store).fetch_state("h").expect("read");
        assert_eq!(stored.health.consecutive_failures, 0);
        assert!(stored.ever_succeeded);
        assert_eq!(
            stored.health.last_error.as_deref(),
            Some("HTTP 503"),
            "kept"
        );
        let shown = live.source_health("h");
        assert!(shown.ok() && shown.last_success.is_some());
    }

    /// Waits until the store's health says it cannot write.
    async fn cannot_write(condition: &mut watch::Receiver<Condition>) {
        tokio::time::timeout(
            Duration::from_secs(10),
            condition.wait_for(|c| matches!(c, Condition::CannotWrite { .. })),
        )
        .await
        .expect("the full store is noticed")
        .expect("health kept");
    }

    /// A page the store has no room for is held, unanswered (its file stays in the
    /// folder), and stored on a later try once there is room, with no restart; when
    /// the daemon stops first, it is answered "deferred".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_the_full_store_cannot_take_is_held_then_stored_when_room_returns() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: SharedStore = Arc::new(std::sync::Mutex::new(
            Store::open(&dir.path().join("lookout.db")).expect("open"),
        ));
        let config = Arc::new(Config::parse("", "test.toml").expect("empty config parses"));
        let pages = store::lock(&store).page_count().expect("page count");
        store::lock(&store)
            .limit_pages(pages)
            .expect("no room for one more page");
        let health = StoreHealth::new(None);
        let stopping = CancellationToken::new();
        let (tx, rx) = mpsc::channel(4);
        let task = tokio::spawn(pipeline(
            rx,
            Pipeline {
                store: store.clone(),
                live: Arc::new(Live::new(Arc::clone(&config), Arc::new(NoRules))),
                publisher: Arc::new(Publisher::new(store.clone(), &config, 0)),
                outbox_wake: Arc::new(Notify::new()),
                metrics: Metrics::new(),
                pulse: None,
                health: health.clone(),
                stopping: Some(stopping.clone()),
            },
        ));
        let send = |body: &'static [u8]| {
            let (reply, answer) = oneshot::channel();
            let capture = Capture {
                page: page(body),
                reply,
                validators: None,
            };
            (capture, answer)
        };
        let (capture, mut answer) = send(APR17);
        tx.send(Report::Page(capture))
            .await
            .expect("pipeline takes it");
        let mut condition = health.subscribe();
        cannot_write(&mut condition).await;
        assert!(answer.try_recv().is_err(), "held, not answered");

        store::lock(&store)
            .limit_pages(1 << 30)
            .expect("room returns");
        let outcome = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("stored on a later try")
            .expect("answered");
        assert!(
            matches!(&outcome, Outcome::Ingested { report, .. } if report.new > 0),
            "{outcome:?}"
        );
        assert!(health.condition().is_healthy());

        // Full again, then the daemon stops: the held page is let go, deferred.
        let pages = store::lock(&store).page_count().expect("page count");
        store::lock(&store).limit_pages(pages).expect("full again");
        let (capture, answer) = send(MAY20);
        tx.send(Report::Page(capture))
            .await
            .expect("pipeline takes it");
        cannot_write(&mut condition).await;
        stopping.cancel();
        let outcome = tokio::time::timeout(Duration::from_secs(10), answer)
            .await
            .expect("answered at stop")
            .expect("answered");
        assert!(matches!(outcome, Outcome::Deferred { .. }), "{outcome:?}");
        drop(tx);
        task.await.expect("pipeline ends");
    }
}
