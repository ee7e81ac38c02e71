//! The outbox worker: delivers the rows `store.ingest` enqueued, at least once.
//!
//! # How a row travels
//!
//! The worker polls `due_deliveries` (every [`OutboxOptions::poll`], and at once when
//! the daemon notifies `wake` after an ingest queued rows). Each due row is sent through
//! the notifier it names; on success it is marked delivered. On failure it is rescheduled
//! with exponential backoff and jitter (`base * 2^(attempt-1)`, capped, then a random
//! point in its upper half; never earlier than the receiver's `Retry-After`) until the
//! notifier's `max_attempts`, then marked failed and logged as a warning; the status
//! page lists failed rows.
//!
//! # Choices worth knowing
//!
//! - **At-least-once.** A row is marked only after its send returned, so a crash (or a
//!   shutdown deadline) between the two resends it later, always with the same
//!   `Idempotency-Key`. Nothing else resends.
//! - **One send in flight per notifier**, different notifiers in parallel: a slow
//!   receiver never holds up the others, and a notifier's messages go out in order.
//! - **Rate limit** (`rate_limit` per minute) is a token bucket (governor) per notifier, full at
//!   start (a burst of up to `rate_limit`). Rows over the limit stay pending and wait for
//!   a token; waiting is not an attempt and never fails a row. `rate_limit = 0` means no
//!   limit.
//! - **Digest.** The store schedules every match of a digest rule's window at the
//!   window's end, so they fall due together; the worker sends all due rows of one
//!   (rule, notifier) as one [`Message`], retried and marked together. The digest's
//!   idempotency key is a hash of its rows' keys (the row's own key for one row), so a
//!   resend of the same rows carries the same key. A digest still being retried when
//!   the next window closes goes out merged with that window's rows, under a new key
//!   (it is a different message).
//! - **A notifier that is not configured** (removed by a reload while rows were
//!   pending) is treated as a failing receiver: its rows are retried with backoff, so a
//!   reload that brings it back within the retry span delivers them, and after
//!   [`MISSING_NOTIFIER_MAX_ATTEMPTS`] they are marked failed and visible on the status
//!   page instead of lying pending forever and crowding the due list. It is logged
//!   once per name.
//! - **Crowding.** The store hands out due rows oldest first, `batch` at a time. When a
//!   whole batch belongs to busy or rate-limited notifiers the next poll asks for twice
//!   as many (up to 16 batches), so a backlog for one notifier does not starve the rest.
//! - **Shutdown.** When `shutdown` is cancelled the worker takes no new rows, waits for
//!   the sends in flight up to [`OutboxOptions::drain`], then abandons what is left
//!   (a running command is killed); abandoned rows stay pending for the next start.
//! - **Reload.** The worker holds one [`Notifiers`]; the daemon restarts it with a new
//!   set after a reload (a clean stop loses nothing).
//! - **A store that cannot write** (a full disk) or is damaged pauses the worker. A
//!   message sent whose outcome cannot be recorded is *not* sent again: its outcome is
//!   kept in memory, the worker stops sending, and it retries recording with capped
//!   exponential backoff ([`OutboxOptions::store_retry_base`], one log line per
//!   retry, not per row), waking early when [`StoreHealth`] says the store writes
//!   again. Only once every kept outcome is recorded does sending resume, so a full
//!   disk repeats no alert. Before, the row stayed due and went out again at once:
//!   23,892 POSTs of one alert in 18 s (issue 13.1). Kept outcomes are lost only if
//!   the process stops before the store writes again; those alerts then go out once
//!   more at the next start, with the same `Idempotency-Key`. A damaged store pauses
//!   the worker until a restart.

use crate::logging::Chain;
use std::collections::{HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::Quota;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::message::Message;
use super::notifiers::{Notifiers, NotifyError};
use crate::metrics::Metrics;
use crate::store::{Delivery, SharedStore, Store, StoreError, StoreHealth};
use crate::systemd::Heartbeat;

/// Attempts for rows whose notifier is not configured, before they are marked failed.
/// With the default backoff that spans about two hours.
pub const MISSING_NOTIFIER_MAX_ATTEMPTS: u32 = 8;

/// Longest `Retry-After` honoured; a larger one is cut to this.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Tunables of the worker. `Default` is what the daemon runs; tests shorten the times.
#[derive(Debug, Clone)]
pub struct OutboxOptions {
    /// How often the store is polled when nothing wakes the worker.
    pub poll: Duration,
    /// Rows asked of the store per poll.
    pub batch: usize,
    /// Delay before the second attempt; doubles for each further one.
    pub backoff_base: Duration,
    /// Longest delay between attempts.
    pub backoff_max: Duration,
    /// How long shutdown waits for sends in flight.
    pub drain: Duration,
    /// Where deliveries are counted and timed (none in tests that do not look).
    pub metrics: Option<Metrics>,
    /// The daemon's liveness registry: the worker touches its pulse on every turn of
    /// its loop, so a stuck worker stops the systemd watchdog.
    pub heartbeat: Option<Heartbeat>,
    /// The store's condition, shared with the pipeline and `/healthz`; `None` gives the
    /// worker a record of its own.
    pub health: Option<StoreHealth>,
    /// First wait before trying the store again after it could not write; doubles with
    /// each failed try.
    pub store_retry_base: Duration,
    /// Longest wait between tries of a store that cannot write.
    pub store_retry_max: Duration,
}

impl Default for OutboxOptions {
    fn default() -> Self {
        OutboxOptions {
            poll: Duration::from_secs(1),
            batch: 100,
            backoff_base: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
            drain: Duration::from_secs(10),
            metrics: None,
            heartbeat: None,
            health: None,
            store_retry_base: Duration::from_secs(1),
            store_retry_max: Duration::from_secs(60),
        }
    }
}

/// Runs `f` on the store off the async workers, as every store call must.
async fn with_store<T, F>(store: &SharedStore, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
{
    crate::store::blocking(store, move |s| f(s)).await
}

/// Delivers due outbox rows until `shutdown` is cancelled,
/// with the default [`OutboxOptions`]. See the module docs.
///
/// The daemon calls `wake.notify_one()` after an ingest queued rows: the permit is kept
/// when the worker is busy, so a wake is never lost (`notify_waiters` would lose it).
pub async fn run(
    store: SharedStore,
    notifiers: Arc<Notifiers>,
    shutdown: CancellationToken,
    wake: Arc<Notify>,
) {
    run_with(store, notifiers, shutdown, wake, OutboxOptions::default()).await;
}

/// [`run`] with explicit options.
pub async fn run_with(
    store: SharedStore,
    notifiers: Arc<Notifiers>,
    shutdown: CancellationToken,
    wake: Arc<Notify>,
    options: OutboxOptions,
) {
    let health = options
        .health
        .clone()
        .unwrap_or_else(|| StoreHealth::new(None));
    let mut condition = health.subscribe();
    let mut worker = Worker {
        limit: options.batch.max(1),
        store,
        notifiers,
        options,
        busy: HashMap::new(),
        limits: HashMap::new(),
        warned_missing: HashSet::new(),
        health,
        unrecorded: Vec::new(),
        blocked: None,
        pause_logged_at: None,
        pause_logged: true,
    };
    let mut sends: JoinSet<Option<Unrecorded>> = JoinSet::new();
    let pulse = worker
        .options
        .heartbeat
        .as_ref()
        .map(|h| h.register("outbox"));
    if !shutdown.is_cancelled() {
        loop {
            if let Some(p) = &pulse {
                p.touch();
            }
            let wait = if worker.paused() {
                // Waits stay within one poll so the pulse keeps beating.
                worker.retry_store().await.min(worker.options.poll)
            } else {
                let token_wait = worker.dispatch(&mut sends).await;
                // A short floor keeps a bucket that is about to refill from spinning
                // the loop.
                token_wait
                    .map_or(worker.options.poll, |d| d.min(worker.options.poll))
                    .max(Duration::from_millis(10))
            };
            tokio::select! {
                Some(done) = sends.join_next_with_id() => worker.finished(done),
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                Ok(()) = condition.changed() => worker.condition_changed(),
                () = shutdown.cancelled() => break,
            }
        }
    }
    // Shutdown: no new rows; let the sends in flight finish, up to the deadline.
    let deadline = tokio::time::sleep(worker.options.drain);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            done = sends.join_next_with_id() => match done {
                Some(done) => worker.finished(done),
                None => break,
            },
            _ = &mut deadline => {
                tracing::warn!(
                    in_flight = sends.len(),
                    "outbox: shutdown deadline reached; abandoning sends in flight (they stay pending)"
                );
                sends.abort_all();
                while sends.join_next().await.is_some() {}
                break;
            }
        }
    }
    worker.record_kept_at_exit().await;
}

/// What a finished send leaves to write to its outbox rows.
#[derive(Debug, Clone)]
struct Recording {
    /// The rows of the message (one, or a digest's).
    ids: Vec<i64>,
    /// What happened.
    mark: Mark,
}

/// The outcome of one send, as the outbox rows record it.
#[derive(Debug, Clone)]
enum Mark {
    /// Delivered at this time.
    Delivered(chrono::DateTime<Utc>),
    /// Failed; try again at `next`.
    Retry {
        next: chrono::DateTime<Utc>,
        error: String,
    },
    /// Failed for good at `at`.
    Failed {
        at: chrono::DateTime<Utc>,
        error: String,
    },
}

impl Recording {
    /// Writes the outcome to every row of the message. Rows already final are left as
    /// they are, so writing the same outcome again (after a partial failure) is safe.
    fn write(&self, s: &Store) -> Result<(), StoreError> {
        for &id in &self.ids {
            match &self.mark {
                Mark::Delivered(at) => s.mark_delivered(id, *at)?,
                Mark::Retry { next, error } => s.mark_retry(id, *next, error)?,
                Mark::Failed { at, error } => s.mark_failed(id, error, *at)?,
            };
        }
        Ok(())
    }
}

/// A send whose outcome could not be written: kept in memory and written before
/// anything else is sent.
#[derive(Debug)]
struct Unrecorded {
    recording: Recording,
    /// Why the store could not write it.
    error: StoreError,
}

/// The worker is paused because the store cannot write: when to try it next.
#[derive(Debug, Clone, Copy)]
struct Blocked {
    /// Failed tries of the store so far.
    tries: u32,
    next_try: Instant,
}

/// The worker's state between polls.
struct Worker {
    store: SharedStore,
    notifiers: Arc<Notifiers>,
    options: OutboxOptions,
    /// Rows asked of the store per poll (grows while batches are all unsendable).
    limit: usize,
    /// Notifiers with a send in flight, by the task doing it.
    busy: HashMap<tokio::task::Id, String>,
    /// The rate limit of each notifier that has one, full when first used.
    limits: HashMap<String, RateLimit>,
    warned_missing: HashSet<String>,
    health: StoreHealth,
    /// Sends whose outcome the store could not write yet, oldest first.
    unrecorded: Vec<Unrecorded>,
    /// Set while the store cannot write (or outcomes wait to be written).
    blocked: Option<Blocked>,
    /// When a pause for unrecorded outcomes was last logged.
    pause_logged_at: Option<Instant>,
    /// Whether the current pause was logged (then so is its end).
    pause_logged: bool,
}

/// Least time between two logged pauses for outcomes the store could not write.
const PAUSE_LOG_EVERY: Duration = Duration::from_secs(60);

impl Worker {
    /// Starts sends for the due rows whose notifier is idle and has a token. Returns
    /// how long until a rate-limited notifier gets its next token, or another
    /// replica's claim on a due row lapses, whichever is first, if one is waiting.
    async fn dispatch(&mut self, sends: &mut JoinSet<Option<Unrecorded>>) -> Option<Duration> {
        let limit = self.limit;
        let now = Utc::now();
        let health = self.health.clone();
        let due = with_store(&self.store, move |s| {
            let rows = s.due_deliveries(now, limit).inspect_err(|e| {
                health.failed(s, e);
            })?;
            Ok((rows, s.claims_lapse_in()))
        })
        .await;
        let (rows, claims_lapse) = match due {
            Ok(due) => due,
            Err(e) => {
                // A store that cannot be read pauses the worker (see `paused`); other
                // errors are retried at the next poll.
                if self.health.condition().is_healthy() {
                    tracing::error!(error = %e, "outbox: cannot read due deliveries");
                }
                return None;
            }
        };
        let full = rows.len() >= limit;
        let mut busy: HashSet<String> = self.busy.values().cloned().collect();
        // Rows another replica claims are looked at again the moment the claim lapses
        // (a shared store), not at the next poll: a dead replica's deliveries are
        // taken over within one lease period.
        let mut token_wait: Option<Duration> =
            claims_lapse.map(|lapse| lapse + Duration::from_millis(20));
        let mut started = 0usize;
        let mut taken: HashSet<i64> = HashSet::new();

        for (i, row) in rows.iter().enumerate() {
            if taken.contains(&row.id) || busy.contains(&row.notifier) {
                continue;
            }
            let notifier = self.notifiers.get(&row.notifier);
            match notifier {
                None => {
                    if self.warned_missing.insert(row.notifier.clone()) {
                        tracing::warn!(
                            notifier = %row.notifier,
                            rule = %row.rule,
                            "outbox: deliveries name a notifier that is not configured; \
                             retrying with backoff until it returns or the attempts run out"
                        );
                    }
                }
                Some(n) => {
                    if let Some(per_minute) = n.rate_limit().and_then(NonZeroU32::new) {
                        let limit = self
                            .limits
                            .entry(row.notifier.clone())
                            .or_insert_with(|| RateLimit::direct(quota(per_minute)));
                        if let Err(wait) = try_take(limit, &DefaultClock::default()) {
                            token_wait = Some(token_wait.map_or(wait, |w| w.min(wait)));
                            busy.insert(row.notifier.clone());
                            continue;
                        }
                    }
                }
            }
            // A digest rule's due rows for this notifier go as one message.
            let group: Vec<Delivery> = if self.notifiers.is_digest(&row.rule) {
                rows[i..]
                    .iter()
                    .filter(|r| r.rule == row.rule && r.notifier == row.notifier)
                    .cloned()
                    .collect()
            } else {
                vec![row.clone()]
            };
            taken.extend(group.iter().map(|r| r.id));
            busy.insert(row.notifier.clone());
            started += 1;
            let handle = sends.spawn(deliver(
                Arc::clone(&self.store),
                Arc::clone(&self.notifiers),
                self.options.clone(),
                self.health.clone(),
                group,
            ));
            self.busy.insert(handle.id(), row.notifier.clone());
        }

        // A full batch of which nothing could be sent: look further next time.
        self.limit = if full && started == 0 {
            (self.limit * 2).min(self.options.batch.max(1) * 16)
        } else {
            self.options.batch.max(1)
        };
        token_wait
    }

    /// A send task ended: its notifier is free again. An outcome it could not write
    /// is kept, and pauses the worker.
    fn finished(
        &mut self,
        done: Result<(tokio::task::Id, Option<Unrecorded>), tokio::task::JoinError>,
    ) {
        let id = match done {
            Ok((id, unrecorded)) => {
                if let Some(unrecorded) = unrecorded {
                    self.keep(unrecorded);
                }
                id
            }
            Err(e) => {
                if e.is_panic() {
                    tracing::error!("outbox: a delivery task panicked; its rows stay pending");
                }
                e.id()
            }
        };
        self.busy.remove(&id);
    }

    /// Keeps a sent message's outcome that the store could not write, and pauses.
    fn keep(&mut self, unrecorded: Unrecorded) {
        if self.blocked.is_none() {
            // A nearly full disk lets a pause end and the next begin every second or
            // so: log one pause a minute (and its end), not each.
            let now = Instant::now();
            self.pause_logged = self
                .pause_logged_at
                .is_none_or(|at| now.duration_since(at) >= PAUSE_LOG_EVERY);
            if self.pause_logged {
                self.pause_logged_at = Some(now);
            }
        }
        if self.unrecorded.is_empty() && self.pause_logged {
            tracing::error!(error = %unrecorded.error,
                "outbox: a message was sent but its outcome cannot be recorded; sending \
                 pauses, and the outcome is kept in memory and recorded first once the store \
                 writes again (the message is not sent again)");
        }
        self.unrecorded.push(unrecorded);
        self.block(Instant::now());
        self.publish_unrecorded();
    }

    /// Pauses sending, if it was not paused yet, with the first store retry a
    /// `store_retry_base` from `now`; the pause as it stands.
    fn block(&mut self, now: Instant) -> Blocked {
        *self.blocked.get_or_insert(Blocked {
            tries: 0,
            next_try: now + self.options.store_retry_base,
        })
    }

    fn publish_unrecorded(&self) {
        if let Some(m) = &self.options.metrics {
            m.set_unrecorded(self.unrecorded.len() as u64);
        }
    }

    /// Whether sending is paused: outcomes wait to be written, or the store cannot
    /// write or is damaged.
    fn paused(&self) -> bool {
        !self.unrecorded.is_empty() || !self.health.condition().is_healthy()
    }

    /// The store's condition changed: when it writes again, try at once instead of
    /// waiting out the backoff.
    fn condition_changed(&mut self) {
        if self.health.condition().is_healthy() {
            if let Some(b) = &mut self.blocked {
                b.next_try = Instant::now();
            }
        }
    }

    /// While paused: when the backoff allows, writes the kept outcomes (or, with none
    /// kept, probes the store with one small write). Returns how long to wait before
    /// the next turn. A damaged store is not tried: deliveries pause until a restart.
    async fn retry_store(&mut self) -> Duration {
        if !self.health.condition().is_intact() {
            return self.options.poll;
        }
        let now = Instant::now();
        // Just paused: the store has only now failed; give it the first step.
        let blocked = self.block(now);
        if now < blocked.next_try {
            return blocked.next_try - now;
        }
        let recordings: Vec<Recording> = self
            .unrecorded
            .iter()
            .map(|u| u.recording.clone())
            .collect();
        let health = self.health.clone();
        // Outcomes written before one fails are written for good; count them so they
        // are dropped from memory either way.
        let result = with_store(&self.store, move |s| {
            let mut written = 0usize;
            let result = if recordings.is_empty() {
                s.probe_write()
            } else {
                recordings.iter().try_for_each(|r| {
                    r.write(s)?;
                    written += 1;
                    Ok(())
                })
            };
            note_write(&health, s, &result);
            Ok((written, result))
        })
        .await;
        let (written, result) = match result {
            Ok(done) => done,
            Err(e) => (0, Err(e)),
        };
        self.unrecorded.drain(..written.min(self.unrecorded.len()));
        self.publish_unrecorded();
        match result {
            Ok(()) => {
                if self.pause_logged && (written > 0 || blocked.tries > 0) {
                    tracing::info!(
                        recorded = written,
                        "outbox: the store writes again; outcomes kept in memory are recorded \
                         and deliveries resume"
                    );
                }
                self.blocked = None;
                Duration::ZERO
            }
            Err(e) => {
                let tries = blocked.tries + 1;
                let delay = crate::retry::backoff(
                    tries,
                    self.options.store_retry_base,
                    self.options.store_retry_max,
                );
                self.blocked = Some(Blocked {
                    tries,
                    next_try: Instant::now() + delay,
                });
                // One line per try, whatever the number of rows waiting (the backoff
                // spaces them out); none for a pause that was not logged. While the
                // store is known unable to write (an outage, logged once when it starts
                // and once when it ends by the store's health record), at DEBUG.
                if self.pause_logged && self.health.condition().is_healthy() {
                    tracing::warn!(error = %e, tries, kept = self.unrecorded.len(),
                        retry_in = %humantime::format_duration(delay),
                        "outbox: the store still cannot write; deliveries stay paused");
                } else if self.pause_logged {
                    tracing::debug!(error = %e, tries, kept = self.unrecorded.len(),
                        retry_in = %humantime::format_duration(delay),
                        "outbox: the store still cannot write; deliveries stay paused");
                }
                delay
            }
        }
    }

    /// At shutdown: one last try to write the kept outcomes, else say what it means.
    async fn record_kept_at_exit(&mut self) {
        if self.unrecorded.is_empty() || !self.health.condition().is_intact() {
            if !self.unrecorded.is_empty() {
                self.warn_lost();
            }
            return;
        }
        self.blocked = Some(Blocked {
            tries: 0,
            next_try: Instant::now(),
        });
        self.retry_store().await;
        if !self.unrecorded.is_empty() {
            self.warn_lost();
        }
    }

    fn warn_lost(&self) {
        tracing::warn!(
            kept = self.unrecorded.len(),
            "outbox: stopping with sent messages whose outcome could not be recorded; \
             they go out once more at the next start, with the same Idempotency-Key"
        );
    }
}

/// Sends one message (one row, or a digest's rows) and records the outcome. Returns
/// the outcome when the store could not write it, for the worker to keep.
async fn deliver(
    store: SharedStore,
    notifiers: Arc<Notifiers>,
    options: OutboxOptions,
    health: StoreHealth,
    rows: Vec<Delivery>,
) -> Option<Unrecorded> {
    let first = rows.first()?;
    let rule = first.rule.clone();
    let notifier_name = first.notifier.clone();
    let message =
        Message::from_deliveries(notifiers.feed_url(&rule), notifiers.is_digest(&rule), &rows);
    let notifier = notifiers.get(&notifier_name);
    let started = std::time::Instant::now();
    let result = match notifier {
        Some(n) => n.send(&message).await,
        None => Err(NotifyError::unknown(&notifier_name)),
    };
    if let Some(m) = &options.metrics {
        m.record_delivery(
            &notifier_name,
            result.is_ok(),
            rows.len() as u64,
            started.elapsed().as_secs_f64(),
        );
    }
    let max_attempts = notifier.map_or(MISSING_NOTIFIER_MAX_ATTEMPTS, |n| n.max_attempts());
    let attempt = rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();

    let mark = match result {
        Ok(()) => {
            tracing::debug!(rule = %rule, notifier = %notifier_name, rows = ids.len(),
                key = %message.idempotency_key, "outbox: delivered");
            Mark::Delivered(Utc::now())
        }
        Err(error) if attempt >= max_attempts || error.is_permanent() => {
            tracing::warn!(rule = %rule, notifier = %notifier_name, attempts = attempt,
                title = %first.item.title, error = %Chain(&error.kind),
                "outbox: delivery failed for good");
            // The row and the line name the notifier already: the kind says the rest.
            Mark::Failed {
                at: Utc::now(),
                error: Chain(&error.kind).to_string(),
            }
        }
        Err(error) => {
            // The receiver's Retry-After wins over our backoff, within reason.
            let delay = crate::retry::jittered(attempt, options.backoff_base, options.backoff_max)
                .max(error.retry_after().unwrap_or_default().min(MAX_RETRY_AFTER));
            tracing::warn!(rule = %rule, notifier = %notifier_name, attempt,
                retry_in = %humantime::format_duration(Duration::from_secs(delay.as_secs())),
                error = %Chain(&error.kind), "outbox: delivery failed; will retry");
            Mark::Retry {
                next: Utc::now()
                    + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1)),
                error: Chain(&error.kind).to_string(),
            }
        }
    };
    let recording = Recording { ids, mark };
    let kept = recording.clone();
    let recorded = with_store(&store, move |s| {
        let result = recording.write(s);
        note_write(&health, s, &result);
        result
    })
    .await;
    // Not written: the worker keeps the outcome instead of sending the rows again.
    recorded.err().map(|error| Unrecorded {
        recording: kept,
        error,
    })
}

/// Tells the store's health record how a write went, so `/healthz`, the status page and
/// the pipeline see a full disk the worker ran into (and its end).
fn note_write(health: &StoreHealth, s: &Store, result: &Result<(), StoreError>) {
    match result {
        Ok(()) => health.wrote(),
        Err(e) => {
            health.failed(s, e);
        }
    }
}

/// A notifier's rate limit: `per_minute` sends at once (the burst a full bucket allows
/// at start), then one more every `60 s / per_minute`. governor's GCRA is that token
/// bucket kept as one timestamp, so a waiting notifier costs no timer.
type RateLimit = governor::DefaultDirectRateLimiter;

/// The quota of a [`RateLimit`] of `per_minute` sends.
fn quota(per_minute: NonZeroU32) -> Quota {
    Quota::per_minute(per_minute)
}

/// Takes a send from `limit`, or says how long until one is allowed.
fn try_take<C: Clock>(
    limit: &governor::RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
    clock: &C,
) -> Result<(), Duration> {
    limit
        .check()
        .map_err(|not_until| not_until.wait_time_from(clock.now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    #[test]
    fn rate_limit_allows_a_burst_then_refills() {
        let clock = FakeRelativeClock::default();
        let limit = governor::RateLimiter::direct_with_clock(
            quota(NonZeroU32::new(2).unwrap()),
            clock.clone(),
        );
        assert!(try_take(&limit, &clock).is_ok());
        assert!(try_take(&limit, &clock).is_ok());
        let wait = try_take(&limit, &clock).unwrap_err();
        assert!(
            wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        clock.advance(Duration::from_secs(30));
        assert!(try_take(&limit, &clock).is_ok());
        assert!(try_take(&limit, &clock).is_err());
    }
}
