//! Listing-page poller: schedule with jitter, conditional GET, backoff, limits.
//!
//! Each configured `kind = "http"` source becomes one [`HttpSource`] running as its own
//! task ([`HttpSource::run`]), so a slow or failing site never delays another. All
//! sources share one [`HostGate`]: requests to the same host go one at a time with a
//! minimum gap, requests to different hosts run freely.
//!
//! A fetch is a conditional GET with the validators (`ETag`, `Last-Modified`) stored
//! in the source's [`FetchState`]. A 304 costs no parse and sends no page. A 200 goes
//! to the pipeline as a [`Capture`] with the fetch state it leads to; the pipeline
//! saves that state (the new validators) right after storing the page, never before,
//! so a crash between fetch and ingest refetches the page instead of losing it.
//!
//! Failures (connect errors, timeouts, HTTP errors, oversized bodies) back off
//! exponentially from [`schedule::DEFAULT_BACKOFF_BASE`] up to `max_backoff`, and never
//! retry sooner than a 429/503 `Retry-After` asks. A page that arrives but does not
//! parse is recorded as a failure but keeps the normal schedule: the server is fine.

mod config;
mod fetch;
mod gate;
pub mod schedule;
mod tls;

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, oneshot, watch};
use url::Url;

pub use config::HttpSourceConfig;
pub use fetch::{fetch_url, Fetched, HttpError, Limits, DEFAULT_USER_AGENT};
pub use gate::HostGate;

use fetch::{Response, Validators};

use super::{content_hash, Capture, Outcome, Page};
use crate::config::SourceConfig;
use crate::store::{FetchState, IngestReport, SharedStore};

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
}

/// A source's health as the daemon shows it (status page, metrics); watch it with
/// [`HttpSource::status`]. Updated after every attempt, with the schedule in the same
/// update so a reader never sees a new failure count with a stale next delay.
#[derive(Debug, Clone, Default)]
pub struct SourceStatus {
    /// The fetch state as last saved: last success, last error, consecutive failures.
    pub state: FetchState,
    /// Fetch attempts since the task started.
    pub attempts: u64,
    /// The error of the latest attempt, `None` if it succeeded.
    pub last_error: Option<String>,
    /// Delay until the next attempt, as scheduled after the latest one.
    pub next_delay: Option<Duration>,
    /// When the next attempt is due.
    pub next_attempt: Option<Instant>,
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
    store: SharedStore,
    status: watch::Sender<SourceStatus>,
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
            status: watch::Sender::new(SourceStatus::default()),
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

    /// Follows the source's health; the value changes after every attempt.
    pub fn status(&self) -> watch::Receiver<SourceStatus> {
        self.status.subscribe()
    }

    /// Polls until `shutdown` turns true (or its sender is dropped, which means the
    /// daemon is gone). A fetch in flight is abandoned at once on shutdown: its page,
    /// if any, is fetched again next start because the validators were not saved.
    /// Also returns when the pipeline behind `tx` closes.
    pub async fn run(self, tx: mpsc::Sender<Capture>, mut shutdown: watch::Receiver<bool>) {
        // Backoff-worthy failures in a row, kept apart from the stored
        // `consecutive_failures`, which also counts pages that did not parse: a source
        // whose parser was just fixed (and the daemon restarted) must not meet its
        // first 503 with a six-hour wait. So a restart starts the backoff afresh; the
        // stored count stays what the status page shows.
        let mut failures: u32 = 0;
        // Shown on the status page before the first attempt; an error here will
        // surface again (and be recorded) on the first attempt.
        let stored = self.load_state().await.ok();
        let mut delay = schedule::random_up_to(self.start_delay);
        self.status.send_modify(|s| {
            if let Some(state) = stored {
                s.state = state;
            }
            s.next_delay = Some(delay);
            s.next_attempt = Some(Instant::now() + delay);
        });
        loop {
            tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => return,
                () = tokio::time::sleep(delay) => {}
            }
            let (result, state) = tokio::select! {
                biased;
                () = shutdown_requested(&mut shutdown) => return,
                r = self.attempt(&tx) => r,
            };
            delay = match &result {
                Ok(outcome) => {
                    failures = 0;
                    tracing::info!(source = %self.name, ?outcome, "fetched");
                    self.next_regular_delay()
                }
                Err(HttpError::PipelineClosed { .. }) => return,
                Err(error) if error.backs_off() => {
                    failures = failures.saturating_add(1);
                    let delay = schedule::failure_delay(
                        failures,
                        self.backoff_base,
                        self.max_backoff,
                        error.retry_after(),
                    );
                    tracing::warn!(source = %self.name, %error, failures, retry_in = ?delay, "fetch failed");
                    delay
                }
                Err(error) => {
                    failures = 0;
                    tracing::warn!(source = %self.name, %error, "page refused");
                    self.next_regular_delay()
                }
            };
            self.publish(state, &result, Some(delay));
        }
    }

    /// One fetch, no schedule: what `lookout once` does per source. Records the result
    /// in the store like a scheduled fetch. A page that does not parse is an error
    /// ([`HttpError::Refused`]).
    pub async fn fetch_once(&self, tx: &mpsc::Sender<Capture>) -> Result<FetchOutcome, HttpError> {
        let (result, state) = self.attempt(tx).await;
        self.publish(state, &result, None);
        result
    }

    fn next_regular_delay(&self) -> Duration {
        self.every + schedule::random_up_to(self.jitter)
    }

    fn publish(
        &self,
        state: Option<FetchState>,
        result: &Result<FetchOutcome, HttpError>,
        next: Option<Duration>,
    ) {
        if let Some(m) = &self.metrics {
            use crate::metrics::FetchOutcome as M;
            let outcome = match result {
                Ok(FetchOutcome::NotModified) => M::NotModified,
                Ok(_) => M::Ok,
                Err(HttpError::Refused { .. }) => M::Refused,
                Err(_) => M::Error,
            };
            m.record_fetch(&self.name, outcome);
        }
        self.status.send_modify(|s| {
            if let Some(state) = state {
                s.state = state;
            }
            s.attempts += 1;
            s.last_error = result.as_ref().err().map(ToString::to_string);
            s.next_delay = next;
            s.next_attempt = next.map(|d| Instant::now() + d);
        });
    }

    /// Fetches, hands a new page to the pipeline, and records the result. Returns the
    /// state as saved (`None` when nothing could be recorded).
    async fn attempt(
        &self,
        tx: &mpsc::Sender<Capture>,
    ) -> (Result<FetchOutcome, HttpError>, Option<FetchState>) {
        let mut state = match self.load_state().await {
            Ok(state) => state,
            Err(e) => return (Err(e), None),
        };
        let (result, recorded) = self.exchange(&state, tx).await;
        // A page the pipeline stored (or knew): it recorded the state with it.
        if let Some(recorded) = recorded {
            return (result, Some(recorded));
        }
        let now = Utc::now();
        match &result {
            // Nothing happened that concerns the source; the next start retries.
            Err(HttpError::PipelineClosed { .. }) => return (result, Some(state)),
            // 304: the validators stand.
            Ok(_) => state = succeeded(&state, None, now),
            Err(error) => {
                state.last_error_at = Some(now);
                state.last_error = Some(error.to_string());
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
            }
        }
        match self.save_state(&state).await {
            Ok(()) => (result, Some(state)),
            // A fetch error says more than the store error behind it; the store error
            // is logged so it is not lost.
            Err(store_error) => {
                tracing::error!(source = %self.name, error = %store_error, "cannot save fetch state");
                match result {
                    Ok(_) => (Err(store_error), Some(state)),
                    Err(e) => (Err(e), Some(state)),
                }
            }
        }
    }

    /// The network half of an attempt: GET under the host gate, then the pipeline's
    /// verdict on the page. Also returns the state the pipeline recorded with the page,
    /// when it stored it or knew it.
    async fn exchange(
        &self,
        state: &FetchState,
        tx: &mpsc::Sender<Capture>,
    ) -> (Result<FetchOutcome, HttpError>, Option<FetchState>) {
        let validators = Validators {
            etag: state.etag.clone(),
            last_modified: state.last_modified.clone(),
        };
        let response = {
            // Held until the body is read: one request per host at a time.
            let _turn = self.gate.enter(&self.host).await;
            fetch::get(&self.client, &self.url, &self.limits, &validators).await
        };
        let body = match response {
            Ok(Response::NotModified) => return (Ok(FetchOutcome::NotModified), None),
            Ok(Response::Page(body)) => body,
            Err(e) => return (Err(e), None),
        };
        let baseline = !state.ever_succeeded && !self.alert_on_first;
        let stored = succeeded(state, Some(&body.validators), body.fetched_at);
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
        let closed = || HttpError::PipelineClosed {
            source_name: self.name.clone(),
        };
        let (reply, answer) = oneshot::channel();
        let capture = Capture {
            page,
            reply,
            fetch_state: Some(stored.clone()),
        };
        if tx.send(capture).await.is_err() {
            return (Err(closed()), None);
        }
        let outcome = match answer.await {
            Ok(outcome) => outcome,
            Err(_) => return (Err(closed()), None),
        };
        let result = match outcome {
            Outcome::Ingested { format, report } => Ok(FetchOutcome::Ingested {
                format,
                report,
                baseline,
            }),
            Outcome::Duplicate => Ok(FetchOutcome::Duplicate),
            Outcome::Failed { reason } => Err(HttpError::Refused { url: shown, reason }),
            // Not stored: the validators are not saved, so the next fetch gets it again.
            Outcome::Deferred { reason } => Err(HttpError::Refused {
                url: shown,
                reason: format!("not stored: {reason}"),
            }),
        };
        let recorded = result.is_ok().then_some(stored);
        (result, recorded)
    }

    async fn load_state(&self) -> Result<FetchState, HttpError> {
        let name = self.name.clone();
        self.with_store(move |store| store.fetch_state(&name)).await
    }

    async fn save_state(&self, state: &FetchState) -> Result<(), HttpError> {
        let name = self.name.clone();
        let state = state.clone();
        self.with_store(move |store| store.save_fetch_state(&name, &state))
            .await
    }

    /// Runs a store call on the blocking pool, naming this source in the error.
    async fn with_store<T: Send + 'static>(
        &self,
        call: impl FnOnce(&mut crate::store::Store) -> Result<T, crate::store::StoreError>
            + Send
            + 'static,
    ) -> Result<T, HttpError> {
        crate::store::blocking(&self.store, call)
            .await
            .map_err(|error| HttpError::Store {
                source_name: self.name.clone(),
                error,
            })
    }
}

/// `state` after a successful fetch at `at`: new validators when the response had a
/// page (a 304 keeps the old ones), no failures, baseline done.
fn succeeded(state: &FetchState, validators: Option<&Validators>, at: DateTime<Utc>) -> FetchState {
    let mut state = state.clone();
    if let Some(v) = validators {
        state.etag.clone_from(&v.etag);
        state.last_modified.clone_from(&v.last_modified);
    }
    state.last_success = Some(at);
    state.consecutive_failures = 0;
    state.ever_succeeded = true;
    state
}

/// The politeness key of a URL: host and port.
fn host_key(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    let port = url.port_or_known_default()?;
    Some(format!("{host}:{port}"))
}

/// Resolves when shutdown is asked for, or when the sender is gone (no daemon left
/// to ask: stopping is the only sensible thing).
async fn shutdown_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|&stop| stop).await;
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
