//! Listing-page poller: schedule with jitter, conditional GET, backoff, limits.
//!
//! Each configured `kind = "http"` source becomes one [`HttpSource`]. The daemon polls
//! them all from one [`Scheduler`]: a due-time heap and a bounded pool of fetches in
//! flight, so 10,000 sources cost 10,000 small entries, not 10,000 tasks and timers,
//! and a slow or failing site holds one slot, never the others. All sources share one
//! [`HostGate`]: requests to the same host go one at a time with a minimum gap,
//! requests to different hosts run freely.
//!
//! A fetch is a conditional GET with the validators (`ETag`, `Last-Modified`) of the
//! last page stored. The source only produces: it reads its validators once, at start,
//! and reports every attempt to the pipeline on the channel its pages take ([`Report`]).
//! A 304 costs no parse and is reported as [`AttemptResult::NotModified`]; a 200 goes as
//! a [`Capture`] carrying the new validators, which the pipeline saves right after
//! storing the page, never before, so a crash between fetch and ingest refetches the
//! page instead of losing it; a failure is reported as [`AttemptResult::Failed`]. The
//! pipeline is the store's one writer, and keeps the source's
//! [`SourceHealth`](crate::sources::SourceHealth).
//!
//! Failures (connect errors, timeouts, HTTP errors, oversized bodies) back off
//! exponentially from [`schedule::DEFAULT_BACKOFF_BASE`] up to `max_backoff`, and never
//! retry sooner than a 429/503 `Retry-After` asks. A page that arrives but does not
//! parse is recorded as a failure but keeps the normal schedule: the server is fine.

mod config;
mod fetch;
mod gate;
pub mod schedule;
mod scheduler;
mod tls;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use url::Url;

pub use config::HttpSourceConfig;
pub use fetch::{fetch_url, FetchFailure, Fetched, HttpError, Limits, DEFAULT_USER_AGENT};
pub use gate::HostGate;
pub use scheduler::{Scheduler, SchedulerHandle, SchedulerStats, DEFAULT_MAX_IN_FLIGHT};

use fetch::Response;

use super::{content_hash, AttemptResult, Capture, Failure, Outcome, Page, Report, Validators};
use crate::config::SourceConfig;
use crate::store::{Fault, IngestReport, SharedStore, StoreError};

/// What one successful fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// 304: the page has not changed; nothing was parsed.
    NotModified,
    /// A new page was parsed and stored.
    Ingested {
        /// The format that parsed it.
        format: &'static str,
        /// What the store did with its entries.
        report: IngestReport,
        /// Whether it went in as a baseline (filled the feed, raised no alerts).
        baseline: bool,
    },
    /// The server sent a page whose bytes were ingested before.
    Duplicate,
    /// Not fetched: another replica of a shared store holds the source's lease.
    LeasedElsewhere,
}

impl std::fmt::Display for FetchOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchOutcome::NotModified => f.write_str("not modified"),
            FetchOutcome::Duplicate => f.write_str("unchanged page (seen before)"),
            FetchOutcome::LeasedElsewhere => {
                f.write_str("fetched by another replica (it holds the lease)")
            }
            FetchOutcome::Ingested {
                format,
                report,
                baseline,
            } => write!(
                f,
                "{format}: {} entries, {} new, {} updated{}",
                report.new + report.updated + report.unchanged,
                report.new,
                report.updated,
                if *baseline {
                    " (baseline: no alerts)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Why an attempt brought no page into the store: the fetch failed, or what came of it
/// was refused, or there is no pipeline to take it. Only the first is an HTTP error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AttemptError {
    /// The fetch failed.
    #[error(transparent)]
    Http(#[from] HttpError),
    /// The page arrived but the pipeline refused it (it did not parse).
    #[error("GET {url}: page refused: {error}")]
    Refused {
        /// The final URL of the page.
        url: String,
        /// The pipeline's reason.
        #[source]
        error: Failure,
    },
    /// The page arrived but the store could not take it now.
    #[error("GET {url}: page not stored: {error}")]
    NotStored {
        /// The final URL of the page.
        url: String,
        /// Why the store could not take it.
        #[source]
        error: Failure,
    },
    /// The source's saved validators could not be read at start.
    #[error("source {source_name:?}: cannot read its saved state: {error}")]
    State {
        /// The source.
        source_name: String,
        /// The store's error (shared: the attempt's report carries it too).
        #[source]
        error: Arc<StoreError>,
    },
    /// The fetch task ended without a result (it panicked: a bug, logged).
    #[error("source {source_name:?}: the fetch failed unexpectedly")]
    Lost {
        /// The source.
        source_name: String,
    },
    /// The pipeline stopped taking pages (the daemon is shutting down).
    #[error("source {source_name:?}: the pipeline is closed")]
    PipelineClosed {
        /// The source.
        source_name: String,
    },
}

impl AttemptError {
    /// Whether this failure should slow the source down. Network trouble and server
    /// errors do; a page that arrived fine but did not parse does not (the server is
    /// healthy, hammering is not the issue), nor does a shutdown.
    /// A store that cannot answer is not the source's failure: see
    /// [`AttemptError::store_unavailable`].
    pub fn backs_off(&self) -> bool {
        match self {
            AttemptError::Http(_) | AttemptError::Lost { .. } => true,
            AttemptError::State { .. } => !self.store_unavailable(),
            _ => false,
        }
    }

    /// Whether the attempt failed because the store could not be reached (a
    /// PostgreSQL server that is down, a lock held): not the source's fault. Such an
    /// attempt counts as no failure of the source and does not grow its backoff; it is
    /// tried again after the store retry delay ([`crate::store::STORE_RETRY_BASE`]), so
    /// the source resumes (and a replica takes over a stopped peer's sources) within
    /// moments of the store's return instead of after a backoff grown all outage long.
    pub fn store_unavailable(&self) -> bool {
        matches!(self, AttemptError::State { error, .. } if error.fault() == Fault::Temporary)
    }

    /// The wait the server asked for with `Retry-After` on a 429 or 503.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            AttemptError::Http(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// What the source remembers between attempts: read from the store once, at start,
/// then kept from its own pages' outcomes.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Sent with the next request.
    validators: Validators,
    /// Whether a fetch ever succeeded: the first one is the baseline.
    ever_succeeded: bool,
}

/// One HTTP source: its client, schedule and state. Build it with [`HttpSource::new`],
/// then [`run`](HttpSource::run) it as a task or call
/// [`fetch_once`](HttpSource::fetch_once) for a single pass.
pub struct HttpSource {
    name: String,
    url: Url,
    format: String,
    alert_on_first: bool,
    client: fetch::SourceClient,
    limits: Limits,
    every: Duration,
    jitter: Duration,
    max_backoff: Duration,
    backoff_base: Duration,
    start_delay: Duration,
    gate: HostGate,
    host: String,
    /// Read once, at start, for the validators: never written.
    store: SharedStore,
    metrics: Option<crate::metrics::Metrics>,
}

impl std::fmt::Debug for HttpSource {
    // Hand-written so configured headers (secrets, held by the client) never print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpSource")
            .field("name", &self.name)
            .field("url", &self.client.show(&self.url))
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

impl HttpSource {
    /// Builds the source's client from its config: timeouts, redirect cap, User-Agent
    /// and headers. Fails on a config the client cannot use (bad URL or header).
    pub fn new(cfg: &SourceConfig, gate: HostGate, store: SharedStore) -> Result<Self, HttpError> {
        let name = cfg.name.get_ref().clone();
        let config_error = |reason: String| HttpError::Config {
            source_name: name.clone(),
            reason,
        };
        let http = cfg
            .http()
            .ok_or_else(|| config_error("not an http source".into()))?;
        let configured = http.url.get_ref();
        // Errors show the URL as configured: the expanded one may hold a secret.
        let url = Url::parse(configured.expose())
            .map_err(|e| config_error(format!("invalid url {configured:?}: {e}")))?;
        let host =
            host_key(&url).ok_or_else(|| config_error(format!("url {configured} has no host")))?;
        let limits = Limits::from_source(http);
        let client = fetch::build_client(&name, &limits, &http.headers, Some(configured))?;
        let every = http.every.0;
        Ok(HttpSource {
            url,
            format: cfg.format.get_ref().clone(),
            alert_on_first: http.alert_on_first,
            client,
            limits,
            every,
            jitter: http
                .jitter
                .as_ref()
                .map_or_else(|| schedule::default_jitter(every), |j| j.0),
            max_backoff: http.max_backoff.0,
            backoff_base: schedule::DEFAULT_BACKOFF_BASE,
            start_delay: schedule::DEFAULT_START_DELAY,
            metrics: None,
            gate,
            host,
            store,
            name,
        })
    }

    /// Sets the first delay of the failure backoff (default
    /// [`schedule::DEFAULT_BACKOFF_BASE`]); tests use milliseconds.
    pub fn with_backoff_base(mut self, base: Duration) -> Self {
        self.backoff_base = base;
        self
    }

    /// Sets the longest random delay before the first fetch (default
    /// [`schedule::DEFAULT_START_DELAY`]).
    pub fn with_start_delay(mut self, max: Duration) -> Self {
        self.start_delay = max;
        self
    }

    /// Counts every fetch by outcome in `metrics`.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Polls this one source until `shutdown` is cancelled, on a [`Scheduler`] of its
    /// own (the daemon runs all its sources on one). A fetch in flight is abandoned at
    /// once on shutdown: its page, if any, is fetched again next start because its
    /// validators were not saved. Also returns when the pipeline behind `tx` closes.
    pub async fn run(self, tx: mpsc::Sender<Report>, shutdown: CancellationToken) {
        let gate = self.gate.clone();
        scheduler::run_one(self, gate, tx, shutdown).await;
    }

    /// One fetch, no schedule: what `lookout once` does per source. Reports the attempt
    /// to the pipeline like a scheduled fetch. A page that does not parse is an error
    /// ([`AttemptError::Refused`]).
    pub async fn fetch_once(
        &self,
        tx: &mpsc::Sender<Report>,
    ) -> Result<FetchOutcome, AttemptError> {
        let result = self.attempt(&mut None, tx).await;
        self.count(&result);
        result
    }

    fn next_regular_delay(&self) -> Duration {
        self.every + schedule::random_up_to(self.jitter)
    }

    /// Counts the attempt in the metrics, by outcome. Its health is the pipeline's to
    /// keep, from the attempt's report.
    fn count(&self, result: &Result<FetchOutcome, AttemptError>) {
        if let Some(m) = &self.metrics {
            use crate::metrics::FetchOutcome as M;
            let outcome = match result {
                Ok(FetchOutcome::NotModified) => M::NotModified,
                Ok(_) => M::Ok,
                Err(AttemptError::Refused { .. } | AttemptError::NotStored { .. }) => M::Refused,
                Err(_) => M::Error,
            };
            m.record_fetch(&self.name, outcome);
        }
    }

    /// One attempt: GET under the host gate, then the pipeline's verdict on the page,
    /// every result reported to the pipeline. `known` is read from the store on the
    /// first attempt and kept from the outcomes after.
    async fn attempt(
        &self,
        known: &mut Option<Known>,
        tx: &mpsc::Sender<Report>,
    ) -> Result<FetchOutcome, AttemptError> {
        let known = match known {
            Some(k) => k,
            None => match self.read_known().await {
                Ok(k) => known.insert(k),
                // A store that cannot be reached could not record the attempt either,
                // and it is not the source's failure: not reported.
                Err(e) if e.store_unavailable() => return Err(e),
                Err(e) => {
                    self.report(tx, AttemptResult::Failed(Failure::new(e.clone())))
                        .await?;
                    return Err(e);
                }
            },
        };
        let response = {
            // Held until the body is read: one request per host at a time.
            let _turn = self.gate.enter(&self.host).await;
            fetch::get(&self.client, &self.url, &self.limits, &known.validators).await
        };
        let body = match response {
            Ok(Response::NotModified) => {
                self.report(tx, AttemptResult::NotModified).await?;
                known.ever_succeeded = true;
                return Ok(FetchOutcome::NotModified);
            }
            Ok(Response::Page(body)) => body,
            Err(e) => {
                self.report(tx, AttemptResult::Failed(Failure::new(e.clone())))
                    .await?;
                return Err(e.into());
            }
        };
        let baseline = !known.ever_succeeded && !self.alert_on_first;
        // The final URL, for logs and the store, without the secrets of the source URL.
        let shown = self.client.show(&body.url);
        let page = Page {
            source: self.name.clone(),
            origin: shown.clone(),
            content_hash: content_hash(&body.body),
            body: body.body,
            content_type: body.content_type,
            url: Some(body.url.clone()),
            captured_at: body.fetched_at,
            format: self.format.clone(),
            baseline,
        };
        let (reply, answer) = oneshot::channel();
        let capture = Capture {
            page,
            reply,
            validators: Some(body.validators.clone()),
        };
        if tx.send(Report::Page(capture)).await.is_err() {
            return Err(self.closed());
        }
        let outcome = answer.await.map_err(|_| self.closed())?;
        match outcome {
            Outcome::Ingested { format, report } => {
                known.validators = body.validators;
                known.ever_succeeded = true;
                Ok(FetchOutcome::Ingested {
                    format,
                    report,
                    baseline,
                })
            }
            Outcome::Duplicate => {
                known.validators = body.validators;
                known.ever_succeeded = true;
                Ok(FetchOutcome::Duplicate)
            }
            Outcome::Failed { error } => Err(AttemptError::Refused { url: shown, error }),
            // Not stored: the validators stay the old ones, so the next fetch gets it again.
            Outcome::Deferred { error } => Err(AttemptError::NotStored { url: shown, error }),
        }
    }

    /// Tells the pipeline what came of an attempt that brought no page.
    async fn report(
        &self,
        tx: &mpsc::Sender<Report>,
        result: AttemptResult,
    ) -> Result<(), AttemptError> {
        tx.send(Report::attempt(self.name.clone(), result))
            .await
            .map_err(|_| self.closed())
    }

    fn closed(&self) -> AttemptError {
        AttemptError::PipelineClosed {
            source_name: self.name.clone(),
        }
    }

    /// Whether this replica holds the source's lease (always, on a store one process
    /// owns), else when the holder's lapses. A store that cannot answer does not stop
    /// the fetch: the pipeline holds what the store cannot take, as it does for one
    /// replica.
    async fn lease(&self) -> crate::store::Lease {
        let name = self.name.clone();
        crate::store::blocking(&self.store, move |store| store.lease_source(&name))
            .await
            .unwrap_or(crate::store::Lease::Held)
    }

    /// The validators and baseline flag the store holds for this source: a read,
    /// off the async workers. The source never writes the store.
    async fn read_known(&self) -> Result<Known, AttemptError> {
        let name = self.name.clone();
        let state = crate::store::blocking(&self.store, move |store| store.fetch_state(&name))
            .await
            .map_err(|error| AttemptError::State {
                source_name: self.name.clone(),
                error: Arc::new(error),
            })?;
        Ok(Known {
            validators: state.validators,
            ever_succeeded: state.ever_succeeded,
        })
    }
}

/// The politeness key of a URL: host and port.
fn host_key(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_includes_the_port() {
        let key = |u: &str| Url::parse(u).ok().and_then(|u| host_key(&u));
        assert_eq!(
            key("https://example.org/a").as_deref(),
            Some("example.org:443")
        );
        assert_eq!(
            key("http://example.org:8080/").as_deref(),
            Some("example.org:8080")
        );
        assert_eq!(key("http://127.0.0.1/").as_deref(), Some("127.0.0.1:80"));
    }
}
