//! Runs that end by themselves: `lookout once` (one pass over every source, for cron)
//! and `lookout import` (a folder of saved captures, for a first fill of the feeds).
//! Both use the daemon's pipeline and store; neither starts a server.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, Notify};

use super::{open_with_generation, pipeline, Alerts, DaemonError, OutboxTask, Pipeline};
use crate::alert::Notifiers;
use crate::config::{Config, FolderConfig, SourceConfig, SourceKind};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::parse::Parsed;
use crate::publish::Publisher;
use crate::sources::folder::FolderSource;
use crate::sources::http::{HostGate, HttpSource, Scheduler, DEFAULT_MAX_IN_FLIGHT};
use crate::sources::{Failure, Outcome, Page, Report};
use crate::store::{self, Matcher, SharedStore, StoreHealth};

/// One source's result in a `lookout once` pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassReport {
    /// The source name.
    pub source: String,
    /// False when the source failed (the pass exits non-zero).
    pub ok: bool,
    /// One line saying what happened.
    pub summary: String,
}

/// `lookout once`: one pass over every source (fetch or scan, parse, ingest), then the
/// feeds are rendered and written. The same pipeline as the daemon, without a server.
pub async fn once(config: Config) -> Result<Vec<PassReport>, DaemonError> {
    let config = Arc::new(config);
    let (store, generation) = open_with_generation(&config).await?;
    let publisher = Arc::new(Publisher::new(store.clone(), &config, generation));
    let alerts = Alerts::build(&config)?;
    // Interests score the pass's new papers with models trained on the store as it
    // was, then learn from what the pass added before their feeds are written.
    let interests = Arc::new(super::interests::Interests::new(&config));
    super::interests::refresh_all(&interests, &store).await;
    let live = Arc::new(Live::new(
        Arc::clone(&config),
        Arc::new(super::interests::WithInterests {
            rules: alerts.rules.clone(),
            interests: Arc::clone(&interests),
        }),
    ));
    let metrics = Metrics::new();
    // Shared by the pipeline and the delivery pass: a store found unable to write
    // while ingesting pauses the deliveries too.
    let health = super::store_health(&config);
    let (tx, rx) = mpsc::channel::<Report>(64);
    let pipeline = tokio::spawn(pipeline(
        rx,
        Pipeline {
            store: store.clone(),
            live,
            publisher: Arc::clone(&publisher),
            outbox_wake: Arc::new(Notify::new()),
            metrics: metrics.clone(),
            pulse: None,
            health: health.clone(),
            // A one-pass run answers a page the store cannot take at once (the file
            // stays for the next pass) instead of waiting for the store.
            stopping: None,
        },
    ));
    let gate = HostGate::new(config.http.min_host_gap.0);
    // The HTTP sources go through one scheduler, as in the daemon: a bounded pool of
    // fetches that takes hosts in turn, instead of 10,000 tasks each holding its source
    // while it waits for its host (issue 15: 177 MB for 10,000 pages).
    let (scheduler, handle) = Scheduler::new(gate.clone(), DEFAULT_MAX_IN_FLIGHT);
    let mut reports: Vec<Option<PassReport>> = vec![None; config.sources.len()];
    let mut folders = Vec::new();
    for (n, cfg) in config.sources.iter().enumerate() {
        let name = cfg.name.get_ref().clone();
        match &cfg.kind {
            SourceKind::Folder(_) => {
                let config = Arc::clone(&config);
                let tx = tx.clone();
                folders.push((
                    n,
                    tokio::spawn(async move {
                        let cfg = &config.sources[n];
                        match &cfg.kind {
                            SourceKind::Folder(folder) => folder_pass(cfg, folder, &tx).await,
                            SourceKind::Http(_) => (false, "not a folder".to_owned()),
                        }
                    }),
                ));
            }
            SourceKind::Http(_) => match HttpSource::new(cfg, gate.clone(), store.clone()) {
                Ok(source) => handle.add(source),
                Err(e) => {
                    reports[n] = Some(PassReport {
                        source: name,
                        ok: false,
                        summary: e.to_string(),
                    })
                }
            },
        }
    }
    let index: std::collections::HashMap<&str, usize> = config
        .sources
        .iter()
        .enumerate()
        .map(|(n, s)| (s.name.get_ref().as_str(), n))
        .collect();
    for (name, result) in scheduler.run_pass(tx.clone()).await {
        let (ok, summary) = match result {
            Ok(outcome) => (true, outcome.to_string()),
            Err(e) => (false, e.to_string()),
        };
        if let Some(&n) = index.get(name.as_str()) {
            reports[n] = Some(PassReport {
                source: name,
                ok,
                summary,
            });
        }
    }
    drop(handle);
    for (n, task) in folders {
        let (ok, summary) = task
            .await
            .unwrap_or_else(|e| (false, format!("pass failed: {e}")));
        reports[n] = Some(PassReport {
            source: config.sources[n].name.get_ref().clone(),
            ok,
            summary,
        });
    }
    let reports: Vec<PassReport> = reports
        .into_iter()
        .zip(&config.sources)
        .map(|(r, cfg)| {
            r.unwrap_or_else(|| PassReport {
                source: cfg.name.get_ref().clone(),
                ok: false,
                summary: "not fetched (the pipeline closed)".to_owned(),
            })
        })
        .collect();
    drop(tx);
    let _ = pipeline.await;
    if super::interests::refresh_all(&interests, &store).await {
        if let Ok(g) = store::blocking(&store, |s| s.generation()).await {
            publisher.store_changed(g);
        }
    }
    // The store is written for the last time (but for deliveries): fold the WAL into
    // the database on the other core while the feeds are rendered and written.
    let checkpoint = {
        let path = super::database_path(&config);
        let sqlite = config.store.url.is_none();
        tokio::task::spawn_blocking(move || {
            if sqlite {
                store::Store::checkpoint_at(&path)
            } else {
                Ok(())
            }
        })
    };
    deliver_due(&store, alerts.notifiers, &metrics, &health).await;
    if let Err(e) = publisher.write_all().await {
        tracing::warn!(error = %e, "cannot write feed files");
    }
    if let Ok(Err(e)) = checkpoint.await {
        tracing::debug!(error = %e, "cannot checkpoint the WAL; the close will");
    }
    Ok(reports)
}

/// Gives every delivery that is due now one attempt (`lookout once`): runs the outbox
/// worker until nothing is due, or a minute has passed. Retries scheduled later stay
/// queued for the next pass or the daemon.
async fn deliver_due(
    store: &SharedStore,
    notifiers: Arc<Notifiers>,
    metrics: &Metrics,
    health: &StoreHealth,
) {
    let due = |store: SharedStore| async move {
        store::blocking(&store, |s| s.due_deliveries(Utc::now(), 1))
            .await
            .is_ok_and(|rows| !rows.is_empty())
    };
    if !due(store.clone()).await {
        return;
    }
    let wake = Arc::new(Notify::new());
    let worker = OutboxTask::start(
        store.clone(),
        notifiers,
        Arc::clone(&wake),
        metrics,
        None,
        health,
    );
    wake.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // A store that cannot write pauses the worker: waiting out the minute would not
    // help, and what is due goes out at the next pass.
    while due(store.clone()).await
        && tokio::time::Instant::now() < deadline
        && health.condition().is_healthy()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    worker.stop().await;
}

async fn folder_pass(
    cfg: &SourceConfig,
    folder: &FolderConfig,
    tx: &mpsc::Sender<Report>,
) -> (bool, String) {
    let mut source = FolderSource::new(cfg, folder);
    match source.once(tx).await {
        Err(e) => (false, e.to_string()),
        Ok(outcomes) => {
            let (mut ingested, mut new, mut dup, mut failed, mut deferred) = (0, 0, 0, 0, 0);
            for (_, outcome) in &outcomes {
                match outcome {
                    Outcome::Ingested { report, .. } => {
                        ingested += 1;
                        new += report.new;
                    }
                    Outcome::Duplicate => dup += 1,
                    Outcome::Failed { .. } => failed += 1,
                    Outcome::Deferred { .. } => deferred += 1,
                }
            }
            let summary = format!(
                "{} files: {ingested} ingested ({new} new items), {dup} seen before, {failed} refused (in failed/), {deferred} not stored",
                outcomes.len()
            );
            (failed == 0 && deferred == 0, summary)
        }
    }
}

/// What `lookout import` did.
#[derive(Debug, Clone, Default)]
pub struct ImportSummary {
    /// Files looked at.
    pub files: usize,
    /// Files parsed and stored.
    pub ingested: usize,
    /// Files whose bytes were ingested before.
    pub duplicates: usize,
    /// Files refused, with why.
    pub failed: usize,
    /// Entries read from the ingested files.
    pub entries: usize,
    /// Items stored for the first time.
    pub new_items: usize,
    /// Wall time of the import.
    pub elapsed: Duration,
    /// Each refused file and why, with its causes.
    pub failures: Vec<(PathBuf, Failure)>,
}

impl std::fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(
            f,
            "{} files: {} ingested, {} seen before, {} refused; {} entries, {} new items in {:.2}s ({:.0} entries/s)",
            self.files,
            self.ingested,
            self.duplicates,
            self.failed,
            self.entries,
            self.new_items,
            secs,
            self.entries as f64 / secs
        )?;
        for (path, reason) in &self.failures {
            writeln!(f, "refused {}: {reason}", path.display())?;
        }
        Ok(())
    }
}

/// `lookout import DIR`: ingests every file of a folder of saved captures once (read,
/// never moved), as a baseline (rule feeds fill, no notifications), then writes the
/// feeds. A progress bar goes to stderr. A first fill (the store is empty and no other
/// process has it open) is loaded into a database built beside the store and moved
/// into place at the end (see [`store::Store::create_aside`]).
pub async fn import(
    config: Config,
    dir: &std::path::Path,
    source: Option<String>,
) -> Result<ImportSummary, DaemonError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| DaemonError::ImportDir {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(Result::ok)
        // The entry's own type: links (and FIFOs) are listed, to be refused by name
        // in the summary, never followed; subdirectories are not walked.
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .map(|e| e.path())
        .filter(|p| crate::sources::folder::is_candidate(p))
        .collect();
    files.sort();
    // Items filed under a source that does not exist would belong to no feed.
    if let Some(name) = &source {
        if config.source(name).is_none() {
            return Err(DaemonError::UnknownSource {
                name: name.clone(),
                known: config.source_names().join(", "),
            });
        }
    }
    let source = source.unwrap_or_else(|| {
        config
            .sources
            .iter()
            .find(|s| s.folder().is_some())
            .map_or_else(|| "import".to_owned(), |s| s.name.get_ref().clone())
    });
    let format = config
        .source(&source)
        .map_or_else(|| "auto".to_owned(), |s| s.format.get_ref().clone());
    let config = Arc::new(config);
    let rules = Alerts::build(&config)?.rules;
    let (mut store, _) = open_with_generation(&config).await?;
    let db = super::database_path(&config);
    let aside = {
        let (store, db) = (store.clone(), db.clone());
        tokio::task::spawn_blocking(move || aside_for_first_fill(&store, &db))
            .await
            .map_err(|_| DaemonError::Task("import"))?
    };
    let summary = {
        let target = aside.as_ref().map_or(&store, |(aside, _)| aside).clone();
        let config = Arc::clone(&config);
        tokio::task::spawn_blocking(move || {
            import_files(&target, &config, rules.as_ref(), &files, &source, &format)
        })
        .await
        .map_err(|_| DaemonError::Task("import"))?
    };
    if let Some((aside, path)) = aside {
        let aside = Arc::try_unwrap(aside)
            .map_err(|_| DaemonError::Task("import"))?
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let moved = {
            let db = db.clone();
            tokio::task::spawn_blocking(move || aside.move_into_place(&path, &db))
                .await
                .map_err(|_| DaemonError::Task("import"))?
        };
        moved.map_err(|source| DaemonError::Store { path: db, source })?;
        // The old connection holds the replaced file; the feeds read the new one.
        drop(store);
        (store, _) = open_with_generation(&config).await?;
    }
    let generation = store::blocking(&store, |s| s.generation())
        .await
        .unwrap_or(0);
    let publisher = Arc::new(Publisher::new(store, &config, generation));
    if let Err(e) = publisher.write_all().await {
        tracing::warn!(error = %e, "cannot write feed files");
    }
    Ok(summary)
}

/// For a first fill (the store is empty and no other process has it open), a store
/// to load aside and where it is; the import then moves it into place. Else `None`:
/// the import goes into the store as it is.
fn aside_for_first_fill(
    store: &SharedStore,
    db: &std::path::Path,
) -> Option<(SharedStore, PathBuf)> {
    let mut live = store::lock(store);
    // A shared PostgreSQL store is never replaced: the import loads into it.
    if live.sqlite().is_none() || !live.is_empty().unwrap_or(false) {
        return None;
    }
    match live.claim_alone() {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!("the store is open elsewhere (a running daemon?); importing into it");
            return None;
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot claim the store for a first fill; importing into it");
            return None;
        }
    }
    let path = store::Store::aside_path(db);
    match store::Store::create_aside(&path) {
        Ok(aside) => Some((Arc::new(std::sync::Mutex::new(aside)), path)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot load aside; importing into the store");
            None
        }
    }
}

/// Imported files the store could not take.
#[derive(Debug, thiserror::Error)]
#[error("not stored")]
struct NotStored(#[source] store::StoreError);

/// Reads a saved capture as a baseline page of `source`.
fn read_capture(path: &std::path::Path, source: &str, format: &str) -> Result<Page, Failure> {
    // The drop folder's rules: no link followed, only a regular file read.
    let (body, mtime) = crate::sources::folder::read_regular_file(path).map_err(Failure::new)?;
    let captured_at = chrono::DateTime::<Utc>::from(mtime);
    Ok(Page {
        source: source.to_owned(),
        origin: path.display().to_string(),
        content_hash: crate::sources::content_hash(&body),
        body,
        content_type: None,
        url: None,
        captured_at,
        format: format.to_owned(),
        baseline: true,
    })
}

/// Captures parsed ahead of the store: the pages with their entries, and the files
/// that could not be read or parsed, with why.
#[derive(Default)]
struct ParsedChunk {
    pages: Vec<(PathBuf, Page, Parsed)>,
    failures: Vec<(PathBuf, Failure)>,
}

/// Reads and parses one chunk of files.
fn parse_chunk(files: &[PathBuf], config: &Config, source: &str, format: &str) -> ParsedChunk {
    let mut chunk = ParsedChunk::default();
    for path in files {
        let parsed = read_capture(path, source, format).and_then(|page| {
            super::pipeline::parse_for_ingest(&page, config)
                .map(|parsed| (page, parsed))
                .map_err(Failure::new)
        });
        match parsed {
            Ok((page, parsed)) => chunk.pages.push((path.clone(), page, parsed)),
            Err(reason) => chunk.failures.push((path.clone(), reason)),
        }
    }
    chunk
}

fn import_files(
    store: &SharedStore,
    config: &Config,
    matcher: &dyn Matcher,
    files: &[PathBuf],
    source: &str,
    format: &str,
) -> ImportSummary {
    let started = std::time::Instant::now();
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} files, {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut summary = ImportSummary {
        files: files.len(),
        ..ImportSummary::default()
    };
    // Files are stored a chunk at a time, one transaction per chunk: far fewer commits
    // for a folder of thousands of captures. Parsing runs ahead on the other cores,
    // chunk k on worker k % workers, each worker one chunk ahead at most; the store
    // takes the chunks back in file order, so items are first seen in that order.
    const CHUNK: usize = 128;
    let chunks: Vec<&[PathBuf]> = files.chunks(CHUNK).collect();
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .saturating_sub(1)
        .clamp(1, 8);
    let mut store = store::lock(store);
    if let Err(e) = store.tune_for_bulk_load(true) {
        tracing::warn!(error = %e, "cannot tune the store for a bulk load; importing anyway");
    }
    std::thread::scope(|scope| {
        let parsed: Vec<std::sync::mpsc::Receiver<ParsedChunk>> = (0..workers)
            .map(|worker| {
                let (tx, rx) = std::sync::mpsc::sync_channel(1);
                let chunks = &chunks;
                scope.spawn(move || {
                    for files in chunks.iter().skip(worker).step_by(workers) {
                        if tx.send(parse_chunk(files, config, source, format)).is_err() {
                            return;
                        }
                    }
                });
                rx
            })
            .collect();
        for (n, files) in chunks.iter().enumerate() {
            // A worker that died (it cannot, short of a panic) ends the import here;
            // the scope then re-raises its panic.
            let Ok(chunk) = parsed[n % workers].recv() else {
                break;
            };
            summary.failed += chunk.failures.len();
            summary.failures.extend(chunk.failures);
            let batches: Vec<_> = chunk
                .pages
                .iter()
                .map(|(_, page, parsed)| super::pipeline::batch_of(page, parsed))
                .collect();
            match store.ingest_all(&batches, matcher) {
                Ok(reports) => {
                    for report in reports {
                        if report.duplicate_capture {
                            summary.duplicates += 1;
                        } else {
                            summary.ingested += 1;
                            summary.entries += report.new + report.updated + report.unchanged;
                            summary.new_items += report.new;
                        }
                    }
                }
                Err(e) => {
                    let error = Failure::new(NotStored(e));
                    for (path, _, _) in chunk.pages {
                        summary.failed += 1;
                        summary.failures.push((path, error.clone()));
                    }
                }
            }
            bar.set_message(format!("{} new items", summary.new_items));
            bar.inc(files.len() as u64);
        }
    });
    if let Err(e) = store.tune_for_bulk_load(false) {
        tracing::warn!(error = %e, "cannot restore the store's settings after a bulk load");
    }
    bar.finish_and_clear();
    summary.elapsed = started.elapsed();
    summary
}
