//! Politeness towards the sites we poll: at most one request at a time per host, and
//! a minimum gap between the end of one request and the start of the next.
//!
//! The gate forgets a host once nobody holds or waits for its turn and its gap has
//! passed, so a daemon polling 10,000 sites keeps an entry only for the hosts in use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::OwnedMutexGuard;
use tokio::time::Instant;

/// Serializes requests per host, shared by every HTTP source of a daemon (clone it;
/// clones share the same hosts). Different hosts never wait for each other, so one
/// slow site delays only the sources that poll that same site.
///
/// A host is the URL's host *and port*: a different port is a different server as far
/// as load goes (and local test servers differ only in port).
#[derive(Clone)]
pub struct HostGate {
    inner: Arc<Inner>,
}

struct Inner {
    min_gap: Duration,
    /// One async lock per host, holding when that host's last request ended. The outer
    /// std mutex is held only to look the entry up, never across an await.
    hosts: Mutex<Hosts>,
}

/// The host entries, and the size at which they are next swept for forgotten hosts.
#[derive(Default)]
struct Hosts {
    map: HashMap<String, Arc<tokio::sync::Mutex<Option<Instant>>>>,
    /// Sweeping every time would cost a pass over all hosts per request: the map is
    /// swept when it has doubled since the last sweep, which keeps the cost amortized
    /// constant and the map at most twice the hosts in use.
    sweep_at: usize,
}

impl Hosts {
    /// Drops the hosts nobody holds or waits for (the map holds the only reference)
    /// whose gap has passed: they would let a new request in at once anyway.
    fn sweep(&mut self, min_gap: Duration) {
        let now = Instant::now();
        self.map.retain(|_, lock| {
            if Arc::strong_count(lock) > 1 {
                return true;
            }
            match lock.try_lock() {
                Ok(last) => last.is_some_and(|t| t + min_gap > now),
                Err(_) => true,
            }
        });
        self.sweep_at = (self.map.len() * 2).max(64);
    }
}

impl HostGate {
    /// Gap between requests to one host when the daemon asks for nothing else.
    pub const DEFAULT_MIN_GAP: Duration = Duration::from_secs(1);

    /// A gate that keeps at least `min_gap` between requests to the same host.
    pub fn new(min_gap: Duration) -> Self {
        HostGate {
            inner: Arc::new(Inner {
                min_gap,
                hosts: Mutex::new(Hosts::default()),
            }),
        }
    }

    /// The gap this gate keeps between requests to one host.
    pub fn min_gap(&self) -> Duration {
        self.inner.min_gap
    }

    /// Waits for the host's turn: until no other request to it is in flight and the
    /// minimum gap since the last one has passed. The turn lasts until it is dropped,
    /// which should be after the whole body has been read.
    pub(crate) async fn enter(&self, host: &str) -> HostTurn {
        let lock = {
            let mut hosts = self.hosts();
            if hosts.map.len() >= hosts.sweep_at {
                hosts.sweep(self.inner.min_gap);
            }
            Arc::clone(hosts.map.entry(host.to_owned()).or_default())
        };
        let guard = lock.lock_owned().await;
        if let Some(last) = *guard {
            tokio::time::sleep_until(last + self.inner.min_gap).await;
        }
        HostTurn { guard }
    }

    /// When `host` will next let a request in, if not now: while a request to it is
    /// in flight, one gap from now (a guess: the end is not known); after one, its end
    /// plus the gap. A scheduler asks before it gives a fetch one of its few slots, so
    /// a slot does not sit waiting for a busy host while other hosts are free.
    pub fn busy_until(&self, host: &str) -> Option<Instant> {
        let hosts = self.hosts();
        let lock = hosts.map.get(host)?;
        let now = Instant::now();
        let free_at = match lock.try_lock() {
            Ok(last) => (*last)? + self.inner.min_gap,
            Err(_) => now + self.inner.min_gap.max(Duration::from_millis(20)),
        };
        (free_at > now).then_some(free_at)
    }

    /// How many hosts the gate remembers: those in use, and at most as many again
    /// not yet swept away.
    pub fn hosts_remembered(&self) -> usize {
        self.hosts().map.len()
    }

    fn hosts(&self) -> std::sync::MutexGuard<'_, Hosts> {
        // A poisoned map is still a valid map: no update leaves it half done.
        self.inner
            .hosts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for HostGate {
    fn default() -> Self {
        HostGate::new(Self::DEFAULT_MIN_GAP)
    }
}

impl std::fmt::Debug for HostGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostGate")
            .field("min_gap", &self.inner.min_gap)
            .finish_non_exhaustive()
    }
}

/// One request's turn at a host. Dropping it (also when the request is abandoned on
/// shutdown or timeout) records the end time the next turn measures its gap from.
pub(crate) struct HostTurn {
    guard: OwnedMutexGuard<Option<Instant>>,
}

impl Drop for HostTurn {
    fn drop(&mut self) {
        *self.guard = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real time, but only lower bounds (a sleep never ends early) and generous upper
    // bounds, so a loaded machine cannot make these flaky.

    #[tokio::test]
    async fn same_host_waits_for_the_turn_and_the_gap() {
        let gate = HostGate::new(Duration::from_millis(100));
        let start = Instant::now();
        let first = gate.enter("a:80").await;
        let g = gate.clone();
        let second = tokio::spawn(async move {
            let _turn = g.enter("a:80").await;
            Instant::now()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        let entered = second.await.expect("task");
        assert!(
            entered - start >= Duration::from_millis(150),
            "{:?}",
            entered - start
        );
    }

    #[tokio::test]
    async fn hosts_nobody_waits_for_are_forgotten() {
        let gate = HostGate::new(Duration::ZERO);
        for n in 0..10_000 {
            drop(gate.enter(&format!("h{n}:80")).await);
        }
        // Swept whenever the map doubles: never more than twice the hosts in use (one).
        assert!(gate.hosts_remembered() <= 64, "{}", gate.hosts_remembered());
        let held = gate.enter("busy:80").await;
        assert!(gate.busy_until("busy:80").is_some());
        for n in 0..1_000 {
            drop(gate.enter(&format!("g{n}:80")).await);
        }
        // A host whose turn is held is never forgotten: its gap must still be kept.
        assert!(gate.busy_until("busy:80").is_some());
        drop(held);
        assert_eq!(gate.busy_until("busy:80"), None, "gap zero: free at once");
    }

    #[tokio::test]
    async fn other_hosts_do_not_wait() {
        let gate = HostGate::new(Duration::from_secs(60));
        let busy = gate.enter("a:80").await;
        drop(busy);
        let others = async {
            let _other = gate.enter("b:80").await;
            let _other_port = gate.enter("a:8080").await;
        };
        tokio::time::timeout(Duration::from_secs(30), others)
            .await
            .expect("other hosts entered without waiting for a:80's gap");
    }
}
