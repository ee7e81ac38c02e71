//! One scheduler for every HTTP source of a daemon: a due-time heap, one timer and a
//! bounded pool of fetches in flight, instead of a task and a timer per source.
//!
//! 10,000 sources cost 10,000 small entries (the source, its validators, its backoff)
//! and one heap entry each, not 10,000 tasks with their own sleeps. At most
//! [`DEFAULT_MAX_IN_FLIGHT`] fetches run at once; a source that falls due while the
//! pool is full waits in the heap, in due order. Before a fetch takes a slot, the
//! scheduler asks the [`HostGate`] whether the source's host is free: a busy host's
//! source goes back into the heap for when the host frees up, so the few slots never
//! sit waiting on one slow site while others are due. The fetch still enters the gate,
//! which is what keeps the politeness promise.
//!
//! [`SchedulerHandle`] adds, replaces and removes sources while the others run on
//! (reload). A removed or replaced source's fetch in flight finishes, but its result is
//! dropped and it is never scheduled again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{schedule, AttemptError, FetchOutcome, HostGate, HttpSource, Known};
use crate::sources::Report;
use crate::store::Lease;

/// How long after another replica's lease lapses a source asks for it again: a
/// lease is free once strictly past its expiry, by the database server's clock.
const LEASE_MARGIN: Duration = Duration::from_millis(20);

/// Fetches in flight at most, across all sources: enough to keep a hundred sites busy
/// on a 2-core machine, small enough that sockets and buffers stay bounded.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 64;

/// What the daemon asks of the running scheduler.
enum Command {
    /// Starts polling a source, replacing any source of the same name.
    Add(Box<HttpSource>),
    /// Stops polling the named source.
    Remove(String),
}

/// Adds and removes sources of a running [`Scheduler`]; cheap to clone. When every
/// handle is dropped, the scheduler stops.
#[derive(Clone)]
pub struct SchedulerHandle {
    tx: mpsc::UnboundedSender<Command>,
    stats: Arc<Stats>,
}

impl SchedulerHandle {
    /// Starts polling `source` (its first fetch within the source's start delay),
    /// replacing a source of the same name, whose fetch in flight is then disowned.
    pub fn add(&self, source: HttpSource) {
        let _ = self.tx.send(Command::Add(Box::new(source)));
    }

    /// Stops polling the source named `name`.
    pub fn remove(&self, name: &str) {
        let _ = self.tx.send(Command::Remove(name.to_owned()));
    }

    /// What the scheduler is doing now (for metrics and tests).
    pub fn stats(&self) -> SchedulerStats {
        self.stats.snapshot()
    }
}

/// What the scheduler holds, as counts: for `/metrics`, so a test (or an operator) can
/// see that the fetches in flight stay bounded however many sources there are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SchedulerStats {
    /// Sources being polled.
    pub sources: usize,
    /// Fetches in flight now.
    pub in_flight: usize,
    /// The most fetches ever in flight at once.
    pub max_in_flight_seen: usize,
    /// The configured bound on fetches in flight.
    pub max_in_flight: usize,
}

#[derive(Default)]
struct Stats {
    sources: AtomicUsize,
    in_flight: AtomicUsize,
    max_seen: AtomicUsize,
    max: AtomicUsize,
}

impl Stats {
    fn snapshot(&self) -> SchedulerStats {
        SchedulerStats {
            sources: self.sources.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            max_in_flight_seen: self.max_seen.load(Ordering::Relaxed),
            max_in_flight: self.max.load(Ordering::Relaxed),
        }
    }
}

/// One polled source and what it carries between attempts.
struct Entry {
    source: Arc<HttpSource>,
    /// Changes when the source is replaced: a heap entry or a finished fetch of an
    /// older version is stale and dropped.
    version: u64,
    /// Read from the store on the first attempt, kept from the outcomes after; away
    /// with the fetch while one is in flight.
    known: Option<Known>,
    /// Backoff-worthy failures in a row (see [`HttpSource::run`] for why a restart
    /// starts them afresh).
    failures: u32,
    /// Whether a fetch is in flight (then the source is not in the heap).
    busy: bool,
    /// Whether this replica held the source's lease at its last turn: a source taken
    /// over reads its state from the store again before fetching.
    held: bool,
}

/// What a finished fetch hands back.
struct Done {
    name: String,
    host: String,
    version: u64,
    known: Option<Known>,
    /// Not held when another replica of a shared store holds the source's lease: no
    /// fetch was made, and `result` means nothing.
    lease: Lease,
    result: Result<FetchOutcome, AttemptError>,
}

/// The scheduler's state; built by [`Scheduler::new`], run by [`Scheduler::run`].
pub struct Scheduler {
    commands: mpsc::UnboundedReceiver<Command>,
    stats: Arc<Stats>,
    gate: HostGate,
    max_in_flight: usize,
    entries: HashMap<String, Entry>,
    /// Due times: (when, version, name). An entry whose version no longer matches, or
    /// whose source is busy or gone, is skipped when popped.
    heap: BinaryHeap<Reverse<(Instant, u64, String)>>,
    next_version: u64,
    metrics: Option<crate::metrics::Metrics>,
    /// Fetches in flight per host, and the sources parked until that host is free:
    /// woken one per finished fetch, so a host with a hundred due sources costs a
    /// hundred wake-ups, not a hundred sweeps of the heap.
    hosts: HashMap<String, HostQueue>,
    /// The fetch in flight of each task: which source it is for, so a fetch that
    /// panicked frees its source and its host instead of leaving them busy for good.
    fetching: HashMap<tokio::task::Id, (String, u64, String)>,
    /// In a one-pass run (`lookout once`), each source's result: the source is then
    /// removed instead of scheduled again.
    pass: Option<Vec<(String, Result<FetchOutcome, AttemptError>)>>,
}

/// One host's fetches in flight and the sources waiting for it.
#[derive(Default)]
struct HostQueue {
    in_flight: usize,
    parked: std::collections::VecDeque<(u64, String)>,
}

impl Scheduler {
    /// A scheduler over `gate` with at most `max_in_flight` fetches at once, and the
    /// handle that feeds it sources.
    pub fn new(gate: HostGate, max_in_flight: usize) -> (Scheduler, SchedulerHandle) {
        let (tx, commands) = mpsc::unbounded_channel();
        let stats = Arc::new(Stats::default());
        let max_in_flight = max_in_flight.max(1);
        stats.max.store(max_in_flight, Ordering::Relaxed);
        let scheduler = Scheduler {
            commands,
            stats: Arc::clone(&stats),
            gate,
            max_in_flight,
            entries: HashMap::new(),
            heap: BinaryHeap::new(),
            next_version: 0,
            metrics: None,
            hosts: HashMap::new(),
            fetching: HashMap::new(),
            pass: None,
        };
        (scheduler, SchedulerHandle { tx, stats })
    }

    /// Keeps the scheduler gauges of `metrics` current.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Polls until `shutdown` is cancelled, every handle is dropped, or the pipeline
    /// behind `tx` closes. Fetches in flight are abandoned at once on shutdown: their
    /// pages are fetched again next start, since their validators were not saved.
    pub async fn run(mut self, tx: mpsc::Sender<Report>, shutdown: CancellationToken) {
        let mut running: JoinSet<Done> = JoinSet::new();
        loop {
            let next_due = self.heap.peek().map(|Reverse((at, _, _))| *at);
            let room = running.len() < self.max_in_flight;
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    let Some(done) = self.joined(joined) else { continue };
                    if !self.finished(done) {
                        break;
                    }
                }
                command = self.commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break,
                },
                () = sleep_until(next_due), if room && next_due.is_some() => {
                    self.launch_due(&mut running, &tx);
                }
            }
            self.stats.in_flight.store(running.len(), Ordering::Relaxed);
            if let Some(m) = &self.metrics {
                let stats = self.stats.snapshot();
                m.set_scheduler(stats.sources, stats.in_flight, stats.max_in_flight_seen);
            }
        }
        running.abort_all();
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Add(source) => {
                let name = source.name().to_owned();
                let version = self.next_version;
                self.next_version += 1;
                let first = if self.pass.is_some() {
                    Instant::now()
                } else {
                    Instant::now() + schedule::random_up_to(source.start_delay)
                };
                self.entries.insert(
                    name.clone(),
                    Entry {
                        source: Arc::from(source),
                        version,
                        known: None,
                        failures: 0,
                        busy: false,
                        held: false,
                    },
                );
                self.heap.push(Reverse((first, version, name)));
            }
            Command::Remove(name) => {
                self.entries.remove(&name);
            }
        }
        self.stats
            .sources
            .store(self.entries.len(), Ordering::Relaxed);
        // Stale heap entries are skipped when popped; after many removals, rebuild so
        // the heap does not hold thousands of them until they fall due.
        if self.heap.len() > 2 * self.entries.len() + 64 {
            let entries = &self.entries;
            self.heap.retain(|Reverse((_, version, name))| {
                entries.get(name).is_some_and(|e| e.version == *version)
            });
        }
    }

    /// Starts every due fetch the pool has room for.
    fn launch_due(&mut self, running: &mut JoinSet<Done>, tx: &mpsc::Sender<Report>) {
        let now = Instant::now();
        while running.len() < self.max_in_flight {
            let Some(Reverse((at, _, _))) = self.heap.peek() else {
                break;
            };
            if *at > now {
                break;
            }
            let Some(Reverse((_, version, name))) = self.heap.pop() else {
                break;
            };
            let Some(entry) = self.entries.get_mut(&name) else {
                continue;
            };
            if entry.version != version || entry.busy {
                continue;
            }
            let host = entry.source.host.clone();
            if let Some(free_at) = self.gate.busy_until(&host) {
                match self.hosts.get_mut(&host) {
                    // Ours: woken when it ends.
                    Some(queue) if queue.in_flight > 0 => queue.parked.push_back((version, name)),
                    // The gap after a fetch, or another user of the gate.
                    _ => self.heap.push(Reverse((free_at, version, name))),
                }
                continue;
            }
            self.hosts.entry(host).or_default().in_flight += 1;
            entry.busy = true;
            let host = entry.source.host.clone();
            let (name_of_task, host_of_task) = (name.clone(), host.clone());
            let source = Arc::clone(&entry.source);
            let mut known = entry.known.take();
            let tx = tx.clone();
            let held = entry.held;
            let task = running.spawn(async move {
                // Only the sources this replica leases are fetched (on a store one
                // process owns, all of them; replicas running `once` together split
                // the sources the same way).
                let lease = source.lease().await;
                if !lease.is_held() {
                    return Done {
                        name,
                        host,
                        version,
                        known,
                        lease,
                        result: Ok(FetchOutcome::LeasedElsewhere),
                    };
                }
                if !held {
                    // Taken over (or first fetched here): the validators and the
                    // baseline flag are what the last fetcher recorded, read again from
                    // the store; else a takeover's first page would be a baseline and
                    // its new items would never alert.
                    known = None;
                }
                let result = source.attempt(&mut known, &tx).await;
                Done {
                    name,
                    host,
                    version,
                    known,
                    lease,
                    result,
                }
            });
            self.fetching
                .insert(task.id(), (name_of_task, version, host_of_task));
            let seen = self.stats.max_seen.load(Ordering::Relaxed);
            self.stats
                .max_seen
                .store(seen.max(running.len()), Ordering::Relaxed);
        }
    }

    /// What a fetch task that ended brought: its result, or, when it panicked, a
    /// failed attempt (see [`Scheduler::lost`]); `None` for a task no longer tracked.
    fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, Done), tokio::task::JoinError>,
    ) -> Option<Done> {
        match joined {
            Ok((id, done)) => {
                self.fetching.remove(&id);
                Some(done)
            }
            Err(e) => self.lost(&e),
        }
    }

    /// A fetch task that panicked (a bug): its source counts a failed attempt and is
    /// scheduled again, as after any failure.
    fn lost(&mut self, error: &tokio::task::JoinError) -> Option<Done> {
        let (name, version, host) = self.fetching.remove(&error.id())?;
        tracing::error!(source = %name, %error, "fetch task failed");
        Some(Done {
            known: None,
            // It was fetching, so it held the source.
            lease: Lease::Held,
            result: Err(AttemptError::Lost {
                source_name: name.clone(),
            }),
            name,
            host,
            version,
        })
    }

    /// Books a finished fetch and schedules the source's next one. False when the
    /// pipeline is closed: nothing more can be reported, so the scheduler stops.
    fn finished(&mut self, done: Done) -> bool {
        if matches!(done.result, Err(AttemptError::PipelineClosed { .. })) {
            return false;
        }
        self.host_freed(&done.host);
        let Some(entry) = self.entries.get_mut(&done.name) else {
            return true;
        };
        if entry.version != done.version {
            return true;
        }
        entry.held = done.lease.is_held();
        if let (Lease::Elsewhere { lapses_in }, None) = (done.lease, &self.pass) {
            // Another replica fetches this source; ask again the moment its lease
            // lapses (just after, as the lease is taken once strictly past its
            // expiry), to take it over within a lease period of that replica's death.
            entry.busy = false;
            entry.known = done.known;
            let again = Instant::now() + lapses_in + LEASE_MARGIN;
            self.heap.push(Reverse((again, done.version, done.name)));
            return true;
        }
        if let Some(results) = &mut self.pass {
            if done.lease.is_held() {
                entry.source.count(&done.result);
            }
            self.entries.remove(&done.name);
            results.push((done.name, done.result));
            return true;
        }
        entry.busy = false;
        entry.known = done.known;
        let delay = entry.source.next_delay(&done.result, &mut entry.failures);
        entry.source.count(&done.result);
        self.heap
            .push(Reverse((Instant::now() + delay, done.version, done.name)));
        true
    }
}

impl Scheduler {
    /// One fetch of `host` ended: the next source parked for it, if any, is due when
    /// the gate lets it in. The host is forgotten once nothing is in flight or parked.
    fn host_freed(&mut self, host: &str) {
        let Some(queue) = self.hosts.get_mut(host) else {
            return;
        };
        queue.in_flight = queue.in_flight.saturating_sub(1);
        let at = self.gate.busy_until(host).unwrap_or_else(Instant::now);
        while let Some((version, name)) = queue.parked.pop_front() {
            let current = self
                .entries
                .get(&name)
                .is_some_and(|e| e.version == version && !e.busy);
            if current {
                self.heap.push(Reverse((at, version, name)));
                break;
            }
        }
        if queue.in_flight == 0 && queue.parked.is_empty() {
            self.hosts.remove(host);
        }
    }

    /// One fetch of every source added so far, as soon as the pool and the hosts
    /// allow (no start delay), then stops: `lookout once`. Returns each source's
    /// result, in the order they finished.
    pub async fn run_pass(
        mut self,
        tx: mpsc::Sender<Report>,
    ) -> Vec<(String, Result<FetchOutcome, AttemptError>)> {
        self.pass = Some(Vec::new());
        // Take the sources already sent; none come later.
        while let Ok(command) = self.commands.try_recv() {
            self.command(command);
        }
        let mut running: JoinSet<Done> = JoinSet::new();
        while !self.entries.is_empty() || !running.is_empty() {
            let next_due = self.heap.peek().map(|Reverse((at, _, _))| *at);
            let room = running.len() < self.max_in_flight;
            tokio::select! {
                biased;
                Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                    let Some(done) = self.joined(joined) else { continue };
                    if !self.finished(done) {
                        break;
                    }
                }
                () = sleep_until(next_due), if room && next_due.is_some() => {
                    self.launch_due(&mut running, &tx);
                }
                else => break,
            }
        }
        self.pass.take().unwrap_or_default()
    }
}

/// Sleeps until `at`; never ends when there is nothing due (the branch is disabled
/// then anyway).
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Runs one source alone on its own scheduler: what [`HttpSource::run`] does.
pub(super) async fn run_one(
    source: HttpSource,
    gate: HostGate,
    tx: mpsc::Sender<Report>,
    shutdown: CancellationToken,
) {
    let (scheduler, handle) = Scheduler::new(gate, 1);
    handle.add(source);
    // The handle lives as long as the scheduler runs.
    let _handle = handle;
    scheduler.run(tx, shutdown).await;
}

impl HttpSource {
    /// The delay before the next attempt after `result`, counting backoff-worthy
    /// `failures` in a row, with the log line that goes with it.
    fn next_delay(
        &self,
        result: &Result<FetchOutcome, AttemptError>,
        failures: &mut u32,
    ) -> Duration {
        match result {
            Ok(outcome) => {
                *failures = 0;
                tracing::debug!(source = %self.name, outcome = %outcome, "fetched");
                self.next_regular_delay()
            }
            Err(error) if error.store_unavailable() => {
                // Neither counted nor backed off (see `AttemptError::store_unavailable`);
                // the outage itself is logged once, by the store's health record.
                let delay = crate::store::STORE_RETRY_BASE.min(self.next_regular_delay());
                tracing::debug!(source = %self.name, %error, retry_in = %humantime::format_duration(delay), "the store cannot be read; fetch postponed");
                delay
            }
            Err(error) if error.backs_off() => {
                *failures = failures.saturating_add(1);
                let delay = schedule::failure_delay(
                    *failures,
                    self.backoff_base,
                    self.max_backoff,
                    error.retry_after(),
                );
                tracing::warn!(source = %self.name, %error, failures = *failures, retry_in = %humantime::format_duration(delay), "fetch failed");
                delay
            }
            Err(error) => {
                *failures = 0;
                tracing::warn!(source = %self.name, %error, "page refused");
                self.next_regular_delay()
            }
        }
    }
}
