//! Talking to systemd (`Type=notify`): readiness, stopping, status lines and the
//! watchdog.
//!
//! Every function is a no-op when `NOTIFY_SOCKET` is unset, so the daemon calls them
//! unconditionally: under systemd they report, from a terminal or a test they do
//! nothing.
//!
//! The watchdog is only useful if a ping means "the daemon works", not "some thread is
//! still scheduled". So the [`Watchdog`] task pings only while every loop that
//! registered with the [`Heartbeat`] has touched its [`Pulse`] within the watchdog
//! interval. A loop that hangs (a deadlocked store lock, a stuck blocking call) stops
//! touching, the pings stop, and systemd restarts the service after `WatchdogSec=`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

/// A notification could not be sent to the service manager.
#[derive(Debug, thiserror::Error)]
#[error("cannot notify systemd of {state}: {source}")]
pub struct NotifyError {
    /// What was being reported (`READY=1`, `WATCHDOG=1`, ...).
    pub state: &'static str,
    /// The socket error.
    pub source: std::io::Error,
}

fn send(state: &'static str, states: &[NotifyState<'_>]) -> Result<(), NotifyError> {
    sd_notify::notify(states).map_err(|source| NotifyError { state, source })
}

/// Tells systemd the daemon is ready: call once the store is open and the server
/// listens (and again after a reload, see [`reloading`]).
pub fn ready() -> Result<(), NotifyError> {
    send("READY=1", &[NotifyState::Ready])
}

/// Tells systemd the daemon is reloading its config. systemd wants the monotonic time
/// with it, to tell this reload from an older one; call [`ready`] when done.
pub fn reloading() -> Result<(), NotifyError> {
    let now = NotifyState::monotonic_usec_now().map_err(|source| NotifyError {
        state: "RELOADING=1",
        source,
    })?;
    send("RELOADING=1", &[NotifyState::Reloading, now])
}

/// Tells systemd the daemon is shutting down.
pub fn stopping() -> Result<(), NotifyError> {
    send("STOPPING=1", &[NotifyState::Stopping])
}

/// Sets the one-line status `systemctl status` shows. Line breaks and other control
/// characters become single spaces: the protocol is one `KEY=value` per line, so a
/// newline in a message (an error from a page, say) would otherwise start a new
/// assignment such as `READY=1`.
pub fn status(line: &str) -> Result<(), NotifyError> {
    let line: String = line
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|word| !word.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    send("STATUS=", &[NotifyState::Status(&line)])
}

/// Sends one watchdog ping (`WATCHDOG=1`). The [`Watchdog`] task calls it; call it
/// directly only where no heartbeat gate applies.
pub fn watchdog_ping() -> Result<(), NotifyError> {
    send("WATCHDOG=1", &[NotifyState::Watchdog])
}

/// The watchdog interval systemd asks for (`WATCHDOG_USEC`, when `WATCHDOG_PID` is
/// unset or names this process); `None` when the watchdog is off.
pub fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
}

/// The loops whose liveness the watchdog checks. Clone it freely: every clone is the
/// same set.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    inner: Arc<HeartbeatInner>,
}

#[derive(Debug)]
struct HeartbeatInner {
    /// Touch times are kept as nanoseconds since this instant, so they fit an atomic.
    origin: Instant,
    loops: Mutex<Vec<Arc<Slot>>>,
}

#[derive(Debug)]
struct Slot {
    name: String,
    last_nanos: AtomicU64,
    retired: AtomicBool,
}

/// One loop's handle on the [`Heartbeat`]: the loop calls [`Pulse::touch`] on every
/// turn, including idle turns (a timer branch in its `select!`), at least every half
/// watchdog interval. Dropping the pulse unregisters the loop, so a loop that ends on
/// purpose (a source removed on reload) does not count as hung.
#[derive(Debug)]
pub struct Pulse {
    slot: Arc<Slot>,
    origin: Instant,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat::new()
    }
}

impl Heartbeat {
    /// An empty set of loops (which the watchdog counts as all alive).
    pub fn new() -> Heartbeat {
        Heartbeat {
            inner: Arc::new(HeartbeatInner {
                origin: Instant::now(),
                loops: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Registers a loop named `name` (for the log when it goes stale); registration
    /// counts as its first touch.
    pub fn register(&self, name: impl Into<String>) -> Pulse {
        let slot = Arc::new(Slot {
            name: name.into(),
            last_nanos: AtomicU64::new(nanos_since(self.inner.origin, Instant::now())),
            retired: AtomicBool::new(false),
        });
        self.loops().push(Arc::clone(&slot));
        Pulse {
            slot,
            origin: self.inner.origin,
        }
    }

    /// The names of registered loops that have not touched their pulse for `max_age`
    /// or longer at `now` (empty when every loop is alive).
    pub fn stale_at(&self, now: Instant, max_age: Duration) -> Vec<String> {
        let mut loops = self.loops();
        loops.retain(|slot| !slot.retired.load(Ordering::Acquire));
        let now = nanos_since(self.inner.origin, now);
        loops
            .iter()
            .filter(|slot| {
                let age = now.saturating_sub(slot.last_nanos.load(Ordering::Acquire));
                Duration::from_nanos(age) >= max_age
            })
            .map(|slot| slot.name.clone())
            .collect()
    }

    /// [`Heartbeat::stale_at`] now.
    pub fn stale(&self, max_age: Duration) -> Vec<String> {
        self.stale_at(Instant::now(), max_age)
    }

    fn loops(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Slot>>> {
        // The list is only pushed to and filtered; a panic elsewhere cannot leave it
        // half-changed, so a poisoned lock is taken over.
        self.inner
            .loops
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Pulse {
    /// Records that the loop is alive now.
    pub fn touch(&self) {
        self.touch_at(Instant::now());
    }

    /// Records that the loop was alive at `t` (tests use it to place touches in time).
    fn touch_at(&self, t: Instant) {
        self.slot
            .last_nanos
            .store(nanos_since(self.origin, t), Ordering::Release);
    }

    /// The loop's name.
    pub fn name(&self) -> &str {
        &self.slot.name
    }
}

impl Drop for Pulse {
    fn drop(&mut self) {
        self.slot.retired.store(true, Ordering::Release);
    }
}

/// Nanoseconds from `origin` to `t` (0 if `t` is earlier); u64 nanoseconds last 584
/// years of uptime.
fn nanos_since(origin: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// How many watchdog checks pinged and how many were withheld; shared with the task so
/// the daemon (and tests) can see what it did.
#[derive(Debug, Clone, Default)]
pub struct WatchdogCounts {
    pings: Arc<AtomicU64>,
    withheld: Arc<AtomicU64>,
}

impl WatchdogCounts {
    /// Pings sent so far.
    pub fn pings(&self) -> u64 {
        self.pings.load(Ordering::Acquire)
    }

    /// Checks that found a stale loop and sent nothing.
    pub fn withheld(&self) -> u64 {
        self.withheld.load(Ordering::Acquire)
    }
}

/// The watchdog task: every half interval, pings systemd if every loop registered with
/// its [`Heartbeat`] touched its pulse within the interval, and withholds the ping
/// otherwise.
#[derive(Debug)]
pub struct Watchdog {
    interval: Duration,
    heartbeat: Heartbeat,
    counts: WatchdogCounts,
}

impl Watchdog {
    /// A watchdog for systemd's interval (`WATCHDOG_USEC`); `None` when the watchdog is
    /// off, in which case the daemon runs no task for it.
    pub fn from_env(heartbeat: Heartbeat) -> Option<Watchdog> {
        watchdog_interval().map(|interval| Watchdog::new(interval, heartbeat))
    }

    /// A watchdog with an explicit interval.
    pub fn new(interval: Duration, heartbeat: Heartbeat) -> Watchdog {
        Watchdog {
            interval,
            heartbeat,
            counts: WatchdogCounts::default(),
        }
    }

    /// The interval systemd kills the service after without a ping.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// What the task has done so far (live: keep it and read it while the task runs).
    pub fn counts(&self) -> WatchdogCounts {
        self.counts.clone()
    }

    /// Runs until `shutdown` is cancelled. Pings every half
    /// interval, as sd_watchdog_enabled(3) advises, so one late tick does not kill the
    /// service; a loop counts as stale after a whole interval without a touch.
    pub async fn run(self, shutdown: CancellationToken) {
        let period = (self.interval / 2).max(Duration::from_millis(1));
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_stale = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            let stale = self.heartbeat.stale(self.interval);
            if stale.is_empty() {
                if was_stale {
                    tracing::info!("every loop is alive again; watchdog pings resume");
                    was_stale = false;
                }
                match watchdog_ping() {
                    Ok(()) => {
                        self.counts.pings.fetch_add(1, Ordering::AcqRel);
                    }
                    Err(e) => tracing::warn!(error = %e, "watchdog ping failed"),
                }
            } else {
                self.counts.withheld.fetch_add(1, Ordering::AcqRel);
                if !was_stale {
                    tracing::error!(
                        loops = %stale.join(", "), interval = %humantime::format_duration(self.interval),
                        "loops stopped reporting; withholding watchdog pings so systemd restarts the service"
                    );
                    was_stale = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn fresh_loops_are_not_stale() {
        let hb = Heartbeat::new();
        let _a = hb.register("pipeline");
        let _b = hb.register("outbox");
        assert!(hb.stale_at(Instant::now(), 10 * SECOND).is_empty());
    }

    #[test]
    fn an_untouched_loop_goes_stale_after_the_interval() {
        let hb = Heartbeat::new();
        let _pipeline = hb.register("pipeline");
        let _outbox = hb.register("outbox");
        let start = Instant::now();
        assert!(hb.stale_at(start + 9 * SECOND, 10 * SECOND).is_empty());
        assert_eq!(
            hb.stale_at(start + 30 * SECOND, 10 * SECOND),
            vec!["pipeline".to_owned(), "outbox".to_owned()]
        );
    }

    #[test]
    fn a_touch_makes_a_stale_loop_fresh_again() {
        let hb = Heartbeat::new();
        let pipeline = hb.register("pipeline");
        let start = Instant::now();
        assert_eq!(
            hb.stale_at(start + 30 * SECOND, 10 * SECOND),
            vec!["pipeline".to_owned()]
        );
        pipeline.touch_at(start + 25 * SECOND);
        assert!(hb.stale_at(start + 30 * SECOND, 10 * SECOND).is_empty());
        assert_eq!(
            hb.stale_at(start + 36 * SECOND, 10 * SECOND),
            vec!["pipeline".to_owned()]
        );
    }

    #[test]
    fn dropped_pulse_no_longer_counts() {
        let hb = Heartbeat::new();
        let keep = hb.register("server");
        let gone = hb.register("source hf");
        drop(gone);
        let later = Instant::now() + 30 * SECOND;
        assert_eq!(hb.stale_at(later, 10 * SECOND), vec!["server".to_owned()]);
        drop(keep);
        assert!(hb.stale_at(later, 10 * SECOND).is_empty());
    }

    #[test]
    fn clones_share_one_set_of_loops() {
        let hb = Heartbeat::new();
        let _pulse = hb.clone().register("pipeline");
        assert_eq!(
            hb.stale_at(Instant::now() + 20 * SECOND, SECOND),
            vec!["pipeline".to_owned()]
        );
    }

    #[tokio::test]
    async fn watchdog_task_stops_on_shutdown() {
        let stop = CancellationToken::new();
        let dog = Watchdog::new(Duration::from_secs(3600), Heartbeat::new());
        let task = tokio::spawn(dog.run(stop.clone()));
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("watchdog stops within the deadline")
            .expect("watchdog task did not panic");
    }
}
