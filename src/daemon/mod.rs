//! Wires the tasks together: sources, the ingest pipeline, feed publishing, the alert
//! outbox and the HTTP server; shutdown on SIGTERM/SIGINT and reload on SIGHUP.
//!
//! Shutdown has one shape: a [`CancellationToken`] every task selects on, and a
//! [`TaskTracker`] that waits for the tasks it spawned, with a deadline. It goes in two
//! phases, each its own token. `stopping` stops the sources (each holds a child token,
//! so a reload stops one alone) and lets the pipeline answer the pages it holds for the
//! store; the pipeline then drains what the sources already sent (its channel closes
//! when the last source's sender drops), so no captured page is half-handled. Then
//! `shutdown` stops the outbox worker (a child token too, replaced on reload), the
//! feed writer, the store monitor and the server.
//!
//! [`pipeline`] is the one path every page takes (parse, then ingest); [`oneshot`] holds
//! the runs that end by themselves: `lookout once` and `lookout import`.

pub mod interests;
mod oneshot;
mod pipeline;

pub use oneshot::{import, once, ImportSummary, PassReport};
use pipeline::{pipeline, Pipeline};

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::alert::{outbox, Notifiers, RuleSet};
use crate::config::{Config, HumanDuration, SourceConfig, SourceKind};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::server::{self, AppState};
use crate::sources::folder::FolderSource;
use crate::sources::http::{
    HostGate, HttpSource, Scheduler, SchedulerHandle, DEFAULT_MAX_IN_FLIGHT,
};
use crate::sources::{AttemptResult, Failure, Report};
use crate::store::{self, SharedStore, Store, StoreError, StoreHealth};
use crate::systemd::{self, Heartbeat, Watchdog};

/// How long shutdown waits for in-flight work before giving up on it.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);
/// Longest wait at start-up (and reload) for the drop folders to be watched.
const WATCH_DEADLINE: Duration = Duration::from_secs(10);

/// Why the daemon could not start (once running, failures are logged, not fatal).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened; what to do follows the error when there is more
    /// to say (a PostgreSQL server that refuses, a store from a newer lookout).
    #[error("opening store {path}: {source}{}", source.advice().map(|a| format!(" ({a})")).unwrap_or_default())]
    Store {
        /// The database file.
        path: PathBuf,
        /// The store error.
        source: StoreError,
    },
    /// The server could not resolve or bind its socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: crate::config::Listen,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A signal handler could not be installed.
    #[error("cannot install signal handler: {0}")]
    Signal(std::io::Error),
    /// The server failed while running.
    #[error("server error: {0}")]
    Serve(std::io::Error),
    /// Alert rules could not be compiled from the config.
    #[error("alert rules: {0}")]
    Rules(#[from] crate::alert::RuleError),
    /// Notifiers could not be built from the config.
    #[error("notifiers: {0}")]
    Notifiers(#[from] crate::alert::NotifyError),
    /// The import folder could not be read.
    #[error("reading import folder {path}: {source}")]
    ImportDir {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `lookout import --source` names a source the config does not have.
    #[error("no source {name:?} in the config (sources: {known})")]
    UnknownSource {
        /// The name given.
        name: String,
        /// The configured source names, comma-separated.
        known: String,
    },
    /// A blocking task panicked.
    #[error("{0} task failed")]
    Task(&'static str),
}

/// The SQLite database file inside a state directory.
pub fn database_path(config: &Config) -> PathBuf {
    config.state_dir.join("lookout.db")
}

/// The store as errors name it: the SQLite file, or the PostgreSQL store named
/// without its URL, which may hold a password.
fn store_label(config: &Config) -> PathBuf {
    match &config.store.url {
        Some(_) => PathBuf::from("[store] url (PostgreSQL)"),
        None => database_path(config),
    }
}

/// The store's condition record, giving the advice that fits the store: SQLite's
/// about its file, PostgreSQL's about the server.
fn store_health(config: &Config) -> StoreHealth {
    match &config.store.url {
        Some(_) => StoreHealth::postgres(),
        None => StoreHealth::new(Some(database_path(config))),
    }
}

/// Opens the store named by the config (blocking).
pub fn open_store(config: &Config) -> Result<SharedStore, DaemonError> {
    let mut store = match &config.store.url {
        Some(url) => Store::connect(url.expose()),
        None => Store::open(&database_path(config)),
    }
    .map_err(|source| DaemonError::Store {
        path: store_label(config),
        source,
    })?;
    if let Some(pg) = store.postgres() {
        if let Some(name) = config.store.replica_name() {
            pg.set_replica(name);
        }
        pg.set_lease_period(config.store.lease_period());
    }
    Ok(Arc::new(Mutex::new(store)))
}

/// The alert side of a config, built before anything is switched so a reload with a
/// bad rule or notifier changes nothing.
struct Alerts {
    rules: Arc<RuleSet>,
    notifiers: Arc<Notifiers>,
}

impl Alerts {
    fn build(config: &Config) -> Result<Alerts, DaemonError> {
        let rules = RuleSet::compile(&config.alerts)?;
        let notifiers = Notifiers::from_config(config)?;
        Ok(Alerts {
            rules: Arc::new(rules),
            notifiers: Arc::new(notifiers),
        })
    }
}

/// The running outbox worker and the token that stops it. Reload replaces it whole:
/// queued deliveries live in the store, so nothing is lost in between.
struct OutboxTask {
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl OutboxTask {
    fn start(
        store: SharedStore,
        notifiers: Arc<Notifiers>,
        wake: Arc<Notify>,
        metrics: &Metrics,
        heartbeat: Option<&Heartbeat>,
        health: &StoreHealth,
    ) -> OutboxTask {
        OutboxTask::start_under(
            &CancellationToken::new(),
            store,
            notifiers,
            wake,
            metrics,
            heartbeat,
            health,
        )
    }

    /// [`OutboxTask::start`] with a token that is a child of `shutdown`: the worker also
    /// stops when the daemon does.
    fn start_under(
        shutdown: &CancellationToken,
        store: SharedStore,
        notifiers: Arc<Notifiers>,
        wake: Arc<Notify>,
        metrics: &Metrics,
        heartbeat: Option<&Heartbeat>,
        health: &StoreHealth,
    ) -> OutboxTask {
        let stop = shutdown.child_token();
        let options = outbox::OutboxOptions {
            metrics: Some(metrics.clone()),
            heartbeat: heartbeat.cloned(),
            health: Some(health.clone()),
            ..outbox::OutboxOptions::default()
        };
        let task = tokio::spawn(outbox::run_with(
            store,
            notifiers,
            stop.clone(),
            wake,
            options,
        ));
        OutboxTask { stop, task }
    }

    /// Stops taking rows and waits for sends in flight (the worker has its own deadline).
    async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A running source: the config it runs (the config's entry `index`, kept by the
/// `Arc` of the whole config rather than a copy: with 10,000 sources a copy each was
/// 10 MB) and, for a drop folder, the token that stops its task (a child of the
/// daemon's `stopping`). An HTTP source has no task of its own: stopping it removes it
/// from the scheduler.
struct RunningSource {
    config: Arc<Config>,
    index: usize,
    stop: Option<CancellationToken>,
}

impl RunningSource {
    fn config(&self) -> &SourceConfig {
        &self.config.sources[self.index]
    }
}

/// Starts, stops and restarts sources to match the config: a task per drop folder,
/// and an entry in the one [`Scheduler`] per HTTP source.
struct Sources {
    running: HashMap<String, RunningSource>,
    /// Folder sources started but not yet watching.
    starting: Vec<tokio::sync::oneshot::Receiver<()>>,
    tx: mpsc::Sender<Report>,
    /// Cancelled when the daemon stops: every source's token is its child.
    stopping: CancellationToken,
    /// Every source task, to wait for at shutdown.
    tasks: TaskTracker,
    store: SharedStore,
    gate: HostGate,
    metrics: Metrics,
    /// Feeds the scheduler that polls every HTTP source.
    scheduler: SchedulerHandle,
}

impl Sources {
    /// No source yet; the HTTP scheduler runs as a task of `tasks` until `stopping`.
    fn new(
        tx: mpsc::Sender<Report>,
        stopping: CancellationToken,
        store: SharedStore,
        gate: HostGate,
        metrics: Metrics,
    ) -> Sources {
        let tasks = TaskTracker::new();
        let (scheduler, handle) = Scheduler::new(gate.clone(), DEFAULT_MAX_IN_FLIGHT);
        tasks.spawn(
            scheduler
                .with_metrics(metrics.clone())
                .run(tx.clone(), stopping.child_token()),
        );
        Sources {
            running: HashMap::new(),
            starting: Vec::new(),
            tx,
            stopping,
            tasks,
            store,
            gate,
            metrics,
            scheduler: handle,
        }
    }

    /// Brings the running set in line with `config`: removed and changed sources stop,
    /// new and changed ones start. Unchanged ones keep running untouched.
    fn apply(&mut self, config: &Arc<Config>) {
        let wanted: HashMap<&str, (usize, &SourceConfig)> = config
            .sources
            .iter()
            .enumerate()
            .map(|(n, s)| (s.name.get_ref().as_str(), (n, s)))
            .collect();
        let stale: Vec<String> = self
            .running
            .iter()
            .filter(|(name, r)| wanted.get(name.as_str()).map(|w| w.1) != Some(r.config()))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(r) = self.running.remove(&name) {
                tracing::debug!(source = %name, "stopping source");
                match &r.stop {
                    Some(stop) => stop.cancel(),
                    None => self.scheduler.remove(&name),
                }
            }
        }
        for (name, (index, cfg)) in wanted {
            match self.running.get_mut(name) {
                // Unchanged: it runs on, and now points into the new config, so the
                // old one is freed.
                Some(running) => {
                    running.config = Arc::clone(config);
                    running.index = index;
                }
                None => self.start(config, index, cfg),
            }
        }
    }

    fn start(&mut self, config: &Arc<Config>, index: usize, cfg: &SourceConfig) {
        let name = cfg.name.get_ref().clone();
        let tx = self.tx.clone();
        let stop = match &cfg.kind {
            SourceKind::Folder(folder) => {
                let stop = self.stopping.child_token();
                let stopped = stop.clone();
                let source = FolderSource::new(cfg, folder);
                let name = name.clone();
                let (watching, started) = tokio::sync::oneshot::channel();
                self.starting.push(started);
                let report = tx.clone();
                self.tasks.spawn(async move {
                    if let Err(e) = source.run(tx, stopped, Some(watching)).await {
                        tracing::error!(source = %name, error = %e, "folder source stopped");
                        // A folder that cannot be watched is a failing source: its
                        // health says so, on the status page and `/healthz`.
                        let failed = AttemptResult::Failed(Failure::new(e));
                        let _ = report.send(Report::attempt(name, failed)).await;
                    }
                });
                Some(stop)
            }
            SourceKind::Http(_) => {
                match HttpSource::new(cfg, self.gate.clone(), self.store.clone()) {
                    Ok(source) => {
                        self.scheduler
                            .add(source.with_metrics(self.metrics.clone()));
                    }
                    Err(e) => {
                        tracing::error!(source = %name, error = %e, "cannot start http source");
                        return;
                    }
                }
                None
            }
        };
        self.running.insert(
            name,
            RunningSource {
                config: Arc::clone(config),
                index,
                stop,
            },
        );
    }

    /// Waits until every folder source started so far watches its folder (or failed,
    /// which it logs), so READY means a file dropped now is taken. Bounded: a folder
    /// on a hung mount must not keep the daemon from reporting ready.
    async fn watching(&mut self) {
        let starting = std::mem::take(&mut self.starting);
        let all = futures_util::future::join_all(starting);
        if tokio::time::timeout(WATCH_DEADLINE, all).await.is_err() {
            tracing::warn!("drop folders not all watched after {WATCH_DEADLINE:?}; going on");
        }
    }

    /// Waits (up to the deadline) for every source to finish; `stopping` is cancelled.
    async fn stopped(&mut self) {
        self.running.clear();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_DEADLINE, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("sources did not stop within {SHUTDOWN_DEADLINE:?}");
        }
    }
}

/// Primes the metrics' series for `config`'s sources and notifiers (and the `log` one),
/// dropping those of sources and notifiers it no longer has.
fn prime_metrics(metrics: &Metrics, config: &Config) {
    metrics.prime(
        config.sources.iter().map(|s| s.name.get_ref().as_str()),
        std::iter::once("log").chain(config.notifiers.iter().map(|n| n.name.get_ref().as_str())),
    );
}

/// Runs the daemon until SIGTERM or SIGINT. `config_path` is re-read on SIGHUP.
pub async fn run(config: Config, config_path: Option<PathBuf>) -> Result<(), DaemonError> {
    let listener = listen(&config.server.listen).map_err(|source| DaemonError::Listen {
        addr: config.server.listen.clone(),
        source,
    })?;
    let bound = listener
        .local_addr()
        .map_err(|source| DaemonError::Listen {
            addr: config.server.listen.clone(),
            source,
        })?;
    let config = Arc::new(with_base_url(config, bound));
    let (store, generation) = open_with_generation(&config).await?;
    let health = store_health(&config);
    check_integrity(&store, &health).await;
    let publisher = Arc::new(Publisher::new(store.clone(), &config, generation));
    let alerts = Alerts::build(&config)?;
    let interests = Arc::new(interests::Interests::new(&config));
    let live = Arc::new(Live::new(
        Arc::clone(&config),
        Arc::new(interests::WithInterests {
            rules: alerts.rules.clone(),
            interests: Arc::clone(&interests),
        }),
    ));
    seed_health(&store, &live).await;
    let metrics = Metrics::new();
    metrics.set_store_condition(&health.condition());
    prime_metrics(&metrics, &config);
    let heartbeat = Heartbeat::new();
    let token = Arc::new(RwLock::new(config.server.token.clone()));
    let (tx, rx) = mpsc::channel::<Report>(64);
    let app = server::router(AppState {
        publisher: Arc::clone(&publisher),
        store: store.clone(),
        token: Arc::clone(&token),
        metrics: metrics.clone(),
        live: Arc::clone(&live),
        health: health.clone(),
        interests: Arc::clone(&interests),
    })
    .merge(crate::captures::router(crate::captures::CaptureState {
        pages: tx.downgrade(),
        token: Arc::clone(&token),
        live: Arc::clone(&live),
        health: health.clone(),
    }));
    // The second phase: the server, the outbox, the feed writer and the monitor.
    let shutdown = CancellationToken::new();
    // The first phase, cancelled before the sources stop: the pipeline then answers
    // the pages it holds for the store, so the sources waiting on them can stop.
    let stopping = CancellationToken::new();
    let tasks = TaskTracker::new();

    let limits = server::ConnectionLimits::from_config(&config.server);
    let server = tasks.spawn(server::serve(
        listener,
        app,
        limits,
        shutdown.clone().cancelled_owned(),
    ));

    let outbox_wake = Arc::new(Notify::new());
    let pipeline = tokio::spawn(pipeline(
        rx,
        Pipeline {
            store: store.clone(),
            live: Arc::clone(&live),
            publisher: Arc::clone(&publisher),
            outbox_wake: Arc::clone(&outbox_wake),
            metrics: metrics.clone(),
            pulse: Some(heartbeat.register("pipeline")),
            health: health.clone(),
            stopping: Some(stopping.clone()),
        },
    ));
    tasks.spawn(Arc::clone(&publisher).write_files(shutdown.clone()));
    // Each interest's first model before any source starts: a paper ingested while its
    // interest has no model yet is never scored for an alert (the drop folder may hold
    // captures that arrived while the daemon was down).
    interests::refresh_all(&interests, &store).await;
    tasks.spawn(interests::run(
        Arc::clone(&interests),
        store.clone(),
        Arc::clone(&publisher),
        shutdown.clone(),
    ));
    let mut outbox_task = OutboxTask::start_under(
        &shutdown,
        store.clone(),
        alerts.notifiers,
        Arc::clone(&outbox_wake),
        &metrics,
        Some(&heartbeat),
        &health,
    );
    // Other replicas' commits on a shared store wake the monitor at once.
    let changes = Arc::new(tokio::sync::Notify::new());
    if let Some(url) = &config.store.url {
        let wake = Arc::clone(&changes);
        if let Err(e) = store::postgres::listen_for_changes(
            url.expose(),
            move || wake.notify_one(),
            shutdown.clone(),
        ) {
            tracing::warn!(error = %e, "store: not listening for other replicas' changes; polling");
        }
    }
    tasks.spawn(monitor(
        store.clone(),
        Arc::clone(&publisher),
        health.clone(),
        Arc::clone(&live),
        metrics.clone(),
        heartbeat.register("store"),
        (changes, shutdown.clone()),
    ));
    // Its own token: pings end before STOPPING=1 is sent, not after the drain.
    let watchdog_stop = CancellationToken::new();
    let watchdog = Watchdog::from_env(heartbeat.clone()).map(|w| {
        tracing::info!(interval = ?w.interval(), "systemd watchdog enabled");
        tokio::spawn(w.run(watchdog_stop.clone()))
    });

    let mut sources = Sources::new(
        tx,
        stopping.clone(),
        store.clone(),
        HostGate::new(config.http.min_host_gap.0),
        metrics.clone(),
    );
    sources.apply(&config);
    sources.watching().await;
    // The store is open, the server listens and every drop folder is watched: ready
    // for systemd's `Type=notify`, and for files.
    tracing::info!(listen = %bound, state_dir = %config.state_dir.display(), "lookout running");
    notify_systemd(systemd::ready());

    let mut signals = Signals::install()?;
    while signals.next().await == Signal::Reload {
        let Some(path) = &config_path else {
            tracing::warn!("SIGHUP ignored: running on the embedded default config");
            continue;
        };
        notify_systemd(systemd::reloading());
        // READY=1 again once this reload is over, whether it was taken or refused.
        let _ready_again = ReadyAgain;
        // Everything that can fail is built first; only then is anything switched.
        let (new, alerts) = match prepare_reload(path, &config, bound) {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(error = %e, "new config refused; the running config stays");
                live.reload_refused(e.to_string());
                continue;
            }
        };
        let new = Arc::new(new);
        // New and changed interests are trained before anything of the new config runs.
        interests.reconfigure(&new, &store).await;
        sources.apply(&new);
        sources.watching().await;
        publisher.reconfigure(&new);
        *crate::live::write(&token) = new.server.token.clone();
        prime_metrics(&metrics, &new);
        live.switch(
            Arc::clone(&new),
            Arc::new(interests::WithInterests {
                rules: alerts.rules,
                interests: Arc::clone(&interests),
            }),
        );
        // Queued deliveries live in the store: the new worker picks them up.
        outbox_task.stop().await;
        outbox_task = OutboxTask::start_under(
            &shutdown,
            store.clone(),
            alerts.notifiers,
            Arc::clone(&outbox_wake),
            &metrics,
            Some(&heartbeat),
            &health,
        );
        tracing::info!(config = %path.display(), "config reloaded");
    }

    tracing::info!("shutting down");
    watchdog_stop.cancel();
    if let Some(w) = watchdog {
        let _ = w.await;
    }
    notify_systemd(systemd::stopping());
    stopping.cancel();
    sources.stopped().await;
    drop(sources); // drops the last pipeline sender: the pipeline drains and ends
    if tokio::time::timeout(SHUTDOWN_DEADLINE, pipeline)
        .await
        .is_err()
    {
        tracing::warn!("pipeline did not drain within {SHUTDOWN_DEADLINE:?}");
    }
    shutdown.cancel();
    // The worker has its own deadline for sends in flight.
    outbox_task.stop().await;
    release_leases(&store).await;
    tasks.close();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!("tasks did not stop within {SHUTDOWN_DEADLINE:?}");
    }
    // Finished (the tracker is empty) unless the deadline passed: then not waited for.
    if server.is_finished() {
        if let Ok(Err(e)) = server.await {
            return Err(DaemonError::Serve(e));
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Gives up this replica's leases and claims once it fetches and sends no more (see
/// [`store::StoreBackend::release_leases`]); a failure only means the others wait one
/// lease period, as after a crash.
async fn release_leases(store: &SharedStore) {
    if let Err(e) = store::blocking(store, |s| s.release_leases()).await {
        tracing::warn!(error = %e, "cannot release this replica's leases; others take them over when they lapse");
    }
}

/// Reads every source's health as the store kept it, so the status page shows it
/// from the start; a store that cannot answer shows none until the first attempts.
async fn seed_health(store: &SharedStore, live: &Live) {
    match store::blocking(store, |s| s.all_fetch_states()).await {
        Ok(states) => {
            for (source, state) in states {
                live.set_health(&source, state.health);
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot read the sources' health"),
    }
}

/// Why a reloaded config was refused; the running one stays.
#[derive(Debug, thiserror::Error)]
enum ReloadError {
    /// The file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Its rules or notifiers cannot be built.
    #[error(transparent)]
    Alerts(#[from] DaemonError),
    /// A setting only a restart can change was changed: applying the rest and not it
    /// would leave the daemon half in the old config and half in the new.
    #[error("`{key}` changed from {from} to {to}; it cannot change while lookout runs: restart lookout to apply it")]
    NeedsRestart {
        /// The key, as written in the file.
        key: &'static str,
        /// The running value.
        from: String,
        /// The value in the new file.
        to: String,
    },
}

/// Reads the config file again and builds everything it needs, without switching
/// anything. `state_dir` (the open store, the feed files), `[store] url` (the open
/// store) and `[server] listen` (the bound socket) stay as they are while the daemon
/// runs, so a new value is refused.
fn prepare_reload(
    path: &std::path::Path,
    running: &Config,
    bound: std::net::SocketAddr,
) -> Result<(Config, Alerts), ReloadError> {
    let new = with_base_url(Config::load(path)?, bound);
    if new.state_dir != running.state_dir {
        return Err(ReloadError::NeedsRestart {
            key: "state_dir",
            from: running.state_dir.display().to_string(),
            to: new.state_dir.display().to_string(),
        });
    }
    if new.store.url != running.store.url {
        // Described, not shown: the URL may hold a password.
        let describe = |c: &Config| store_label(c).display().to_string();
        return Err(ReloadError::NeedsRestart {
            key: "[store] url",
            from: describe(running),
            to: describe(&new),
        });
    }
    // Leases and claims already taken carry the name and period they were taken with.
    if new.store.replica != running.store.replica {
        let describe = |c: &Config| c.store.replica_name().unwrap_or("(host:pid)").to_owned();
        return Err(ReloadError::NeedsRestart {
            key: "[store] replica",
            from: describe(running),
            to: describe(&new),
        });
    }
    if new.store.lease != running.store.lease {
        return Err(ReloadError::NeedsRestart {
            key: "[store] lease",
            from: HumanDuration(running.store.lease_period()).to_string(),
            to: HumanDuration(new.store.lease_period()).to_string(),
        });
    }
    if new.server.listen != running.server.listen {
        return Err(ReloadError::NeedsRestart {
            key: "listen",
            from: running.server.listen.to_string(),
            to: new.server.listen.to_string(),
        });
    }
    let alerts = Alerts::build(&new)?;
    Ok((new, alerts))
}

/// Resolves `listen` (a host name may name several addresses) and binds the first
/// address that can be bound.
fn listen(listen: &crate::config::Listen) -> std::io::Result<tokio::net::TcpListener> {
    let mut last = std::io::Error::new(
        std::io::ErrorKind::AddrNotAvailable,
        "the name resolves to no address",
    );
    for addr in listen.resolve()? {
        match server::bind(addr) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Feeds need absolute links: without a configured `base_url`, the address actually
/// bound (which differs from the config for port 0) is the base.
fn with_base_url(mut config: Config, bound: std::net::SocketAddr) -> Config {
    if config.server.base_url.is_none() {
        config.server.base_url = Some(format!("http://{bound}"));
    }
    config
}

/// Opens the store off the async workers and reads its generation.
async fn open_with_generation(config: &Arc<Config>) -> Result<(SharedStore, u64), DaemonError> {
    let config = Arc::clone(config);
    // Both on the blocking pool: a PostgreSQL client blocks on a runtime of its own.
    tokio::task::spawn_blocking(move || {
        let store = open_store(&config)?;
        let generation = store::lock(&store)
            .generation()
            .map_err(|source| DaemonError::Store {
                path: store_label(&config),
                source,
            })?;
        Ok((store, generation))
    })
    .await
    .map_err(|_| DaemonError::Task("open store"))?
}

/// Checks the store's integrity at start (`PRAGMA quick_check`): a damaged file is
/// written to as long as the writes miss the damaged pages, so without the check the
/// daemon went on "ingesting" into a store nothing could be read back from (issue
/// 13.7). A failure is recorded in `health` (logged once, with what to do); the daemon
/// runs on, serving what it can and reporting the damage on `/healthz`.
async fn check_integrity(store: &SharedStore, health: &StoreHealth) {
    let started = std::time::Instant::now();
    let h = health.clone();
    match store::blocking(store, move |s| Ok(h.check(s))).await {
        Ok(true) => tracing::debug!(took = ?started.elapsed(), "store integrity check passed"),
        Ok(false) => {}
        Err(e) => tracing::error!(error = %e, "store integrity check could not run"),
    }
}

/// Sends READY=1 when dropped: ends a reload however the reload ends.
struct ReadyAgain;

impl Drop for ReadyAgain {
    fn drop(&mut self) {
        notify_systemd(systemd::ready());
    }
}

/// sd_notify failures are worth a log line, never a stop.
fn notify_systemd(result: Result<(), systemd::NotifyError>) {
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// Checks twice a second that the store answers (its pulse feeds the watchdog: a stuck
/// store lock stops the pings and systemd restarts us) and tells the publisher its
/// generation, so feeds follow changes any process made; every ten seconds updates
/// the pending-alerts gauge and systemd's one-line STATUS. While the store cannot
/// write, it also tries one small write each tick, so held pages and paused
/// deliveries resume within a second of space returning; and it keeps the store
/// gauges in step with [`StoreHealth`].
async fn monitor(
    store: SharedStore,
    publisher: Arc<Publisher>,
    health: StoreHealth,
    live: Arc<Live>,
    metrics: Metrics,
    pulse: systemd::Pulse,
    (changes, shutdown): (Arc<tokio::sync::Notify>, CancellationToken),
) {
    // Twice a second: a change another process made (`lookout import`) reaches the
    // served feeds within a second. The probe is one read of a one-row table.
    let mut ticks = tokio::time::interval(Duration::from_millis(500));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n: u64 = 0;
    // On a shared store other replicas fetch some sources: their health is what the
    // store records, read again with the detailed figures.
    let shared = store::blocking(&store, |s| Ok(s.replica().is_some()))
        .await
        .unwrap_or(false);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
            // Another replica committed (PostgreSQL's NOTIFY): read it now.
            () = changes.notified() => {}
        }
        let detailed = n % 20 == 0;
        let h = health.clone();
        let probe = store::blocking(&store, move |s| {
            if matches!(h.condition(), store::Condition::CannotWrite { .. }) {
                match s.probe_write() {
                    Ok(()) => h.wrote(),
                    Err(e) => {
                        h.failed(s, &e);
                    }
                }
            }
            let read = || {
                let generation = s.generation()?;
                let extra = if detailed {
                    Some((s.item_count()?, s.outbox_counts()?))
                } else {
                    None
                };
                Ok((generation, extra))
            };
            read().inspect_err(|e| {
                h.failed(s, e);
            })
        })
        .await;
        metrics.set_store_condition(&health.condition());
        n += 1;
        match probe {
            Ok((generation, extra)) => {
                pulse.touch();
                publisher.store_changed(generation);
                if let Some((items, outbox)) = extra {
                    // Reading 10,000 sources' config (its TOML tree is many times the
                    // config itself), a round of fetches, a reload: each frees far more
                    // than it keeps, and glibc keeps freed pages. Giving them back
                    // every ten seconds holds the RSS to what is in use (issue 15's
                    // 10,000-source soak: 87 MB before). Off the async workers: it
                    // waits for the store's lock.
                    let p = Arc::clone(&publisher);
                    tokio::task::spawn_blocking(move || p.release_freed_memory());
                    if shared {
                        seed_health(&store, &live).await;
                    }
                    metrics.set_pending(outbox.pending);
                    let config = live.config();
                    let line = format!(
                        "{items} items; {} sources; {} alerts pending, {} failed{}{}",
                        config.sources.len(),
                        outbox.pending,
                        outbox.failed,
                        if live.reload_error().is_some() {
                            "; last reload refused"
                        } else {
                            ""
                        },
                        match health.condition() {
                            store::Condition::Healthy => "",
                            store::Condition::CannotWrite { .. } => "; STORE CANNOT WRITE",
                            store::Condition::Corrupt { .. } => "; STORE DAMAGED",
                        }
                    );
                    notify_systemd(systemd::status(&line));
                }
            }
            // A store known to be in trouble has said so once already.
            Err(e) if health.condition().is_healthy() => {
                tracing::error!(error = %e, "store check failed")
            }
            Err(_) => {}
        }
    }
}

/// What a signal asks of the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Signal {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP.
    Reload,
}

/// The signals the daemon listens to, installed once at start.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Signals, DaemonError> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(DaemonError::Signal)?,
            int: signal(SignalKind::interrupt()).map_err(DaemonError::Signal)?,
            hup: signal(SignalKind::hangup()).map_err(DaemonError::Signal)?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The store is open: a reload that points `[store] url` elsewhere (or adds or
    /// removes it) is refused whole, and the message shows no URL (it may hold a
    /// password).
    #[test]
    fn a_reload_that_changes_the_store_is_refused_without_showing_the_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("lookout.toml");
        let bound: std::net::SocketAddr = "127.0.0.1:8080".parse().expect("addr");
        let running = Config::parse("", "t.toml").expect("config");
        std::fs::write(
            &path,
            "[store]\nurl = \"postgres://u:pw-secret@db/lookout\"\n",
        )
        .expect("write");
        let Err(refused) = prepare_reload(&path, &running, bound) else {
            panic!("a new store url was accepted on reload");
        };
        let said = refused.to_string();
        assert!(
            said.contains("[store] url") && said.contains("restart"),
            "{said}"
        );
        assert!(!said.contains("pw-secret"), "{said}");
    }
}
