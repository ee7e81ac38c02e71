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
//! - **Rate limit** (`rate_limit` per minute) is a token bucket per notifier, full at
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
//! - **Shutdown.** When `shutdown` turns true the worker takes no new rows, waits for
//!   the sends in flight up to [`OutboxOptions::drain`], then abandons what is left
//!   (a running command is killed); abandoned rows stay pending for the next start.
//! - **Reload.** The worker holds one [`Notifiers`]; the daemon restarts it with a new
//!   set after a reload (a clean stop loses nothing).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rand::Rng;
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::message::Message;
use super::notifiers::{Notifiers, NotifyError};
use crate::metrics::Metrics;
use crate::store::{Delivery, SharedStore, Store, StoreError};
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

/// Delivers due outbox rows until `shutdown` turns true (or its sender is dropped),
/// with the default [`OutboxOptions`]. See the module docs.
///
/// The daemon calls `wake.notify_one()` after an ingest queued rows: the permit is kept
/// when the worker is busy, so a wake is never lost (`notify_waiters` would lose it).
pub async fn run(
    store: SharedStore,
    notifiers: Arc<Notifiers>,
    shutdown: watch::Receiver<bool>,
    wake: Arc<Notify>,
) {
    run_with(store, notifiers, shutdown, wake, OutboxOptions::default()).await;
}

/// [`run`] with explicit options.
pub async fn run_with(
    store: SharedStore,
    notifiers: Arc<Notifiers>,
    mut shutdown: watch::Receiver<bool>,
    wake: Arc<Notify>,
    options: OutboxOptions,
) {
    let mut worker = Worker {
        limit: options.batch.max(1),
        store,
        notifiers,
        options,
        busy: HashMap::new(),
        buckets: HashMap::new(),
        warned_missing: HashSet::new(),
    };
    let mut sends: JoinSet<()> = JoinSet::new();
    let pulse = worker
        .options
        .heartbeat
        .as_ref()
        .map(|h| h.register("outbox"));
    if !*shutdown.borrow_and_update() {
        loop {
            if let Some(p) = &pulse {
                p.touch();
            }
            let token_wait = worker.dispatch(&mut sends).await;
            // A short floor keeps a bucket that is about to refill from spinning the loop.
            let wait = token_wait
                .map_or(worker.options.poll, |d| d.min(worker.options.poll))
                .max(Duration::from_millis(10));
            tokio::select! {
                Some(done) = sends.join_next_with_id() => worker.finished(done),
                _ = wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow_and_update() {
                        break;
                    }
                }
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
    buckets: HashMap<String, TokenBucket>,
    warned_missing: HashSet<String>,
}

impl Worker {
    /// Starts sends for the due rows whose notifier is idle and has a token. Returns
    /// how long until a rate-limited notifier gets its next token, if one is waiting.
    async fn dispatch(&mut self, sends: &mut JoinSet<()>) -> Option<Duration> {
        let limit = self.limit;
        let now = Utc::now();
        let rows = match with_store(&self.store, move |s| s.due_deliveries(now, limit)).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "outbox: cannot read due deliveries");
                return None;
            }
        };
        let full = rows.len() >= limit;
        let mut busy: HashSet<String> = self.busy.values().cloned().collect();
        let mut token_wait: Option<Duration> = None;
        let mut started = 0usize;
        let mut taken: HashSet<i64> = HashSet::new();
        let clock = Instant::now();

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
                    if let Some(per_minute) = n.rate_limit().filter(|r| *r > 0) {
                        let bucket = self
                            .buckets
                            .entry(row.notifier.clone())
                            .or_insert_with(|| TokenBucket::new(per_minute, clock));
                        if let Err(wait) = bucket.try_take(clock) {
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

    /// A send task ended: its notifier is free again.
    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = match done {
            Ok((id, ())) => id,
            Err(e) => {
                if e.is_panic() {
                    tracing::error!("outbox: a delivery task panicked; its rows stay pending");
                }
                e.id()
            }
        };
        self.busy.remove(&id);
    }
}

/// Sends one message (one row, or a digest's rows) and records the outcome.
async fn deliver(
    store: SharedStore,
    notifiers: Arc<Notifiers>,
    options: OutboxOptions,
    rows: Vec<Delivery>,
) {
    let Some(first) = rows.first() else {
        return;
    };
    let rule = first.rule.clone();
    let notifier_name = first.notifier.clone();
    let message =
        Message::from_deliveries(notifiers.feed_url(&rule), notifiers.is_digest(&rule), &rows);
    let notifier = notifiers.get(&notifier_name);
    let started = std::time::Instant::now();
    let result = match notifier {
        Some(n) => n.send(&message).await,
        None => Err(NotifyError::Unknown {
            notifier: notifier_name.clone(),
        }),
    };
    if let Some(m) = &options.metrics {
        m.record_delivery(
            &notifier_name,
            result.is_ok(),
            started.elapsed().as_secs_f64(),
        );
    }
    let max_attempts = notifier.map_or(MISSING_NOTIFIER_MAX_ATTEMPTS, |n| n.max_attempts());
    let attempt = rows.iter().map(|r| r.attempts).max().unwrap_or(0) + 1;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();

    let recorded = match result {
        Ok(()) => {
            tracing::debug!(rule = %rule, notifier = %notifier_name, rows = ids.len(),
                key = %message.idempotency_key, "outbox: delivered");
            with_store(&store, move |s| {
                let now = Utc::now();
                for id in ids {
                    s.mark_delivered(id, now)?;
                }
                Ok(())
            })
            .await
        }
        Err(error) if attempt >= max_attempts => {
            tracing::warn!(rule = %rule, notifier = %notifier_name, attempts = attempt,
                title = %first.item.title, error = %error,
                "outbox: delivery failed for good");
            let text = error.to_string();
            with_store(&store, move |s| {
                let now = Utc::now();
                for id in ids {
                    s.mark_failed(id, &text, now)?;
                }
                Ok(())
            })
            .await
        }
        Err(error) => {
            // The receiver's Retry-After wins over our backoff, within reason.
            let delay = backoff(attempt, &options)
                .max(error.retry_after().unwrap_or_default().min(MAX_RETRY_AFTER));
            tracing::info!(rule = %rule, notifier = %notifier_name, attempt,
                retry_in = %humantime::format_duration(Duration::from_secs(delay.as_secs())),
                error = %error, "outbox: delivery failed; will retry");
            let text = error.to_string();
            let next = Utc::now()
                + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(1));
            with_store(&store, move |s| {
                for id in ids {
                    s.mark_retry(id, next, &text)?;
                }
                Ok(())
            })
            .await
        }
    };
    if let Err(e) = recorded {
        // The row stays pending and is sent again: at-least-once, same key.
        tracing::error!(rule = %rule, notifier = %notifier_name, error = %e,
            "outbox: cannot record a delivery outcome");
    }
}

/// Delay before the attempt after `attempt` failed ones: `base * 2^(attempt-1)` capped
/// at `max`, then a uniformly random point in its upper half, so many rows failing
/// together (a receiver down) do not retry in lockstep.
fn backoff(attempt: u32, options: &OutboxOptions) -> Duration {
    let exp = attempt.saturating_sub(1).min(30);
    let full = options
        .backoff_base
        .saturating_mul(1u32 << exp)
        .min(options.backoff_max);
    full.mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// A token bucket: `capacity` tokens, refilled continuously at `capacity` per minute.
#[derive(Debug, Clone)]
struct TokenBucket {
    capacity: f64,
    tokens: f64,
    per_sec: f64,
    last: Instant,
}

impl TokenBucket {
    fn new(per_minute: u32, now: Instant) -> TokenBucket {
        let capacity = f64::from(per_minute.max(1));
        TokenBucket {
            capacity,
            tokens: capacity,
            per_sec: capacity / 60.0,
            last: now,
        }
    }

    /// Takes a token, or says how long until one is available.
    fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.capacity);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.per_sec))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let options = OutboxOptions {
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(100),
            ..OutboxOptions::default()
        };
        for _ in 0..50 {
            let first = backoff(1, &options);
            assert!(first >= Duration::from_secs(5) && first <= Duration::from_secs(10));
            let third = backoff(3, &options);
            assert!(third >= Duration::from_secs(20) && third <= Duration::from_secs(40));
            let late = backoff(40, &options);
            assert!(late >= Duration::from_secs(50) && late <= Duration::from_secs(100));
        }
    }

    #[test]
    fn token_bucket_allows_a_burst_then_refills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(2, start);
        assert!(bucket.try_take(start).is_ok());
        assert!(bucket.try_take(start).is_ok());
        let wait = bucket.try_take(start).unwrap_err();
        assert!(
            wait > Duration::from_secs(29) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(bucket.try_take(start + Duration::from_secs(30)).is_ok());
        assert!(bucket.try_take(start + Duration::from_secs(30)).is_err());
    }
}
