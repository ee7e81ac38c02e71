//! Publishing: which feeds exist, their rendered bytes kept in memory, and their copies
//! on disk.
//!
//! The store bumps a generation counter on every change feeds can see, and records
//! which feed scopes (all items, a source, a rule) each change touched. A feed is
//! rendered again only when its own scope has changed since its last rendering; until
//! then requests are served from memory with a strong ETag, and conditional GETs never
//! touch the database. After each change the writer task writes the feeds whose scope
//! changed, atomically (temp file + rename) under `state_dir/feeds/`, and only when
//! their bytes differ from the file's, so a static web server or a reader pointed at
//! the files sees only whole feeds, and unchanged ones keep their mtime.
//!
//! A rendering carries its gzip form, made with it in the blocking render task, so no
//! request compresses anything. A new rendering reuses what the previous one (in
//! memory, or the file the writer wrote) holds: the bytes of every item whose stored
//! fields did not change, and their gzip pieces; only changed items are rendered by
//! [`feed::Frame`] and compressed (`splice`). The ETags are made from per-item
//! digests, so they cost the same whatever the feed's size, and are the same after a
//! restart.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::config::Config;
use crate::feed::{self, Channel, FeedFormat};
use crate::store::{ItemFilter, SharedStore, StoreError};

/// Which items a feed holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FeedScope {
    /// Every item.
    All,
    /// Items seen on one source.
    Source(String),
    /// Items one alert rule matched.
    Rule(String),
    /// Items one interest scores at or above its threshold.
    Interest(String),
}

/// One feed: its scope and format.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FeedId {
    /// Which items.
    pub scope: FeedScope,
    /// Which format.
    pub format: FeedFormat,
}

impl FeedId {
    /// The URL path the server answers for this feed, e.g. `/feeds/drop.xml`.
    pub fn url_path(&self) -> String {
        let ext = self.format.extension();
        match &self.scope {
            FeedScope::All => format!("/feed.{ext}"),
            FeedScope::Source(s) => format!("/feeds/{s}.{ext}"),
            FeedScope::Rule(r) => format!("/alerts/{r}.{ext}"),
            FeedScope::Interest(i) => format!("/interests/{i}.{ext}"),
        }
    }

    /// The feed's file under `state_dir/feeds/`.
    pub fn file_path(&self, feeds_dir: &Path) -> PathBuf {
        feeds_dir.join(self.url_path().trim_start_matches('/'))
    }

    /// Human title of the feed, from the configured channel title.
    pub fn title(&self, base: &str) -> String {
        match &self.scope {
            FeedScope::All => base.to_owned(),
            FeedScope::Source(s) => format!("{base}: {s}"),
            FeedScope::Rule(r) => format!("{base}: alert {r}"),
            FeedScope::Interest(i) => format!("{base}: interest {i}"),
        }
    }
}

/// A rendered feed, shared by every request until the store changes.
///
/// The document and its gzip form are made together, in the blocking render task, and
/// live in this one value: a request gets both from the same rendering or neither, so
/// a changed feed is never served from an older compressed copy.
#[derive(Debug)]
pub struct Rendered {
    /// The feed document.
    pub bytes: bytes::Bytes,
    /// Strong ETag (quoted).
    pub etag: String,
    /// The document gzipped, with its own ETag. `None` only for renderings made to
    /// write a file, which no request sees.
    pub gzip: Option<Encoded>,
    /// Newest change among the feed's items (or the render time of an empty feed).
    pub last_modified: DateTime<Utc>,
    /// Store generation it was rendered at.
    pub generation: u64,
    /// `Content-Type` value.
    pub content_type: &'static str,
    /// The `ETag` and `Last-Modified` header values, made once: a conditional GET
    /// then costs no formatting.
    pub headers: ValidatorHeaders,
    /// Where each item's bytes are, for the next rendering to reuse.
    layout: Option<Arc<Layout>>,
}

impl Rendered {
    /// What the next rendering of the same feed may reuse.
    fn reusable(&self) -> Option<Previous<'_>> {
        Some(Previous {
            bytes: &self.bytes,
            gzip: self.gzip.as_ref().map(|g| &g.bytes[..]),
            layout: self.layout.as_deref()?,
        })
    }
}

/// An earlier rendering of a feed, from memory or from its file: its bytes, gzip
/// bytes if any, and where each item is in them.
#[derive(Clone, Copy)]
struct Previous<'a> {
    bytes: &'a [u8],
    gzip: Option<&'a [u8]>,
    layout: &'a Layout,
}

/// A rendering in one content coding.
#[derive(Debug)]
pub struct Encoded {
    /// The encoded document.
    pub bytes: bytes::Bytes,
    /// Strong ETag (quoted) of these bytes, `"<hex>-gz"`: made from the bytes (see
    /// `spliced_etag`), so it differs from the identity ETag and changes with them.
    pub etag: String,
    /// `etag` as a header value.
    pub etag_header: Option<http::HeaderValue>,
}

/// A rendering's validators as response header values.
#[derive(Debug, Clone)]
pub struct ValidatorHeaders {
    /// `ETag`.
    pub etag: Option<http::HeaderValue>,
    /// `Last-Modified`, an IMF-fixdate.
    pub last_modified: Option<http::HeaderValue>,
}

/// Why a feed could not be rendered or written.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// Reading items failed.
    #[error("rendering feed {path}: {source}")]
    Store {
        /// The feed's URL path.
        path: String,
        /// The store error.
        source: StoreError,
    },
    /// Writing the feed file failed.
    #[error("writing feed file {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The blocking render task panicked or was cancelled.
    #[error("rendering feed {0}: render task failed")]
    Task(String),
}

/// What the publisher needs from the config; replaced on reload.
#[derive(Debug, Clone)]
struct Settings {
    title: String,
    base_url: String,
    max_items: usize,
    dates: feed::FeedDate,
    feeds_dir: Option<PathBuf>,
    file_formats: Vec<FeedFormat>,
    sources: Vec<String>,
    rules: Vec<String>,
    /// Each interest's name and threshold.
    interests: Vec<(String, f32)>,
}

impl Settings {
    fn from_config(config: &Config) -> Settings {
        let base_url = config.server.base();
        Settings {
            title: config.feed.title.clone(),
            base_url,
            max_items: config.feed.max_items,
            dates: config.feed.date,
            feeds_dir: config
                .feed
                .write_files
                .then(|| config.state_dir.join("feeds")),
            file_formats: config.feed.file_formats.clone(),
            sources: config
                .sources
                .iter()
                .map(|s| s.name.get_ref().clone())
                .collect(),
            rules: config
                .alerts
                .iter()
                .map(|r| r.name.get_ref().clone())
                .collect(),
            interests: config
                .interests
                .iter()
                .map(|i| (i.name().to_owned(), i.threshold()))
                .collect(),
        }
    }
}

/// Keeps every feed's rendered bytes and knows when they are stale.
pub struct Publisher {
    store: SharedStore,
    settings: RwLock<Settings>,
    cache: Mutex<HashMap<FeedId, Arc<Rendered>>>,
    /// One lock per feed, held while it renders: requests that find the feed stale
    /// while it renders wait for that rendering instead of each making their own (64
    /// readers polling a feed that just changed made 64 renderings).
    rendering: Mutex<HashMap<FeedId, Arc<Mutex<()>>>>,
    generation: watch::Sender<u64>,
    /// When each scope last changed, as read from the store at a generation.
    scopes: Mutex<Option<ScopeChanges>>,
    /// What the writer knows of each feed file it wrote (or found current).
    written: Mutex<HashMap<FeedId, WrittenFile>>,
    /// Keys the item fingerprints that decide whether an item's bytes can be reused.
    fingerprints: foldhash::quality::RandomState,
    /// Set at start and on reload: the writer removes the files of sources and rules
    /// the config no longer has, once.
    prune: std::sync::atomic::AtomicBool,
}

/// [`Store::scope_changes`](crate::store::Store::scope_changes) as read at one
/// store generation.
struct ScopeChanges {
    read_at: u64,
    changed_at: HashMap<FeedScope, u64>,
}

impl ScopeChanges {
    /// Keyed by scope, so the request path looks one up without building its key.
    fn new(read_at: u64, by_key: HashMap<String, u64>) -> ScopeChanges {
        let changed_at = by_key
            .into_iter()
            .filter_map(|(key, generation)| Some((FeedScope::from_key(&key)?, generation)))
            .collect();
        ScopeChanges {
            read_at,
            changed_at,
        }
    }

    fn of(&self, scope: &FeedScope) -> u64 {
        self.changed_at.get(scope).copied().unwrap_or(0)
    }
}

impl FeedScope {
    /// The scope a store scope key names (see `ItemFilter::scope_key`).
    fn from_key(key: &str) -> Option<FeedScope> {
        match key.split_once(':') {
            None if key == "all" => Some(FeedScope::All),
            Some(("source", name)) => Some(FeedScope::Source(name.to_owned())),
            Some(("rule", name)) => Some(FeedScope::Rule(name.to_owned())),
            Some(("interest", name)) => Some(FeedScope::Interest(name.to_owned())),
            _ => None,
        }
    }

    /// The store's listing for this scope; `None` for an interest, listed with its
    /// scores (see `Store::interest_items`).
    fn filter(&self) -> Option<ItemFilter<'_>> {
        match self {
            FeedScope::All => Some(ItemFilter::All),
            FeedScope::Source(s) => Some(ItemFilter::Source(s)),
            FeedScope::Rule(r) => Some(ItemFilter::Rule(r)),
            FeedScope::Interest(_) => None,
        }
    }

    /// The key the store records this scope's changes under.
    fn scope_key(&self) -> String {
        match (self, self.filter()) {
            (FeedScope::Interest(i), _) => crate::store::interest_rule(i),
            (_, Some(filter)) => filter.scope_key(),
            (_, None) => String::new(),
        }
    }
}

impl Publisher {
    /// A publisher for `config`, starting at store generation `generation`.
    pub fn new(store: SharedStore, config: &Config, generation: u64) -> Publisher {
        Publisher {
            store,
            settings: RwLock::new(Settings::from_config(config)),
            cache: Mutex::new(HashMap::new()),
            rendering: Mutex::new(HashMap::new()),
            generation: watch::Sender::new(generation),
            scopes: Mutex::new(None),
            written: Mutex::new(HashMap::new()),
            fingerprints: foldhash::quality::RandomState::default(),
            prune: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Takes a reloaded config: feeds for new sources and rules appear, removed ones go.
    pub fn reconfigure(&self, config: &Config) {
        let settings = Settings::from_config(config);
        if let Ok(mut s) = self.settings.write() {
            *s = settings;
        }
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
        // Titles and links may have changed: every file is checked again.
        if let Ok(mut written) = self.written.lock() {
            written.clear();
        }
        self.prune.store(true, std::sync::atomic::Ordering::Relaxed);
        // Wake the writer so files for new feeds appear and removed ones go.
        self.generation.send_modify(|_| {});
    }

    /// Records that the store moved to `generation`; stale feeds re-render on next use.
    pub fn store_changed(&self, generation: u64) {
        self.generation.send_if_modified(|g| {
            if *g != generation {
                *g = generation;
                true
            } else {
                false
            }
        });
    }

    /// The store generation feeds are current with.
    pub fn generation(&self) -> u64 {
        *self.generation.borrow()
    }

    /// Every feed that exists under the current config.
    pub fn feeds(&self) -> Vec<FeedId> {
        let Ok(s) = self.settings.read() else {
            return Vec::new();
        };
        let mut scopes = vec![FeedScope::All];
        scopes.extend(s.sources.iter().cloned().map(FeedScope::Source));
        scopes.extend(s.rules.iter().cloned().map(FeedScope::Rule));
        scopes.extend(
            s.interests
                .iter()
                .map(|(i, _)| FeedScope::Interest(i.clone())),
        );
        scopes
            .into_iter()
            .flat_map(|scope| {
                [FeedFormat::Rss, FeedFormat::Atom, FeedFormat::Json].map(|format| FeedId {
                    scope: scope.clone(),
                    format,
                })
            })
            .collect()
    }

    /// Removes the feed files (`feeds/<source>.*`, `alerts/<rule>.*`) of sources and
    /// rules the config no longer has, and temporary files a crash left; nothing else
    /// in `dir` is touched. A file that cannot be removed is logged, not fatal.
    fn remove_stale_files(&self, dir: &Path) {
        let current: std::collections::HashSet<PathBuf> =
            self.feeds().iter().map(|id| id.file_path(dir)).collect();
        for sub in ["feeds", "alerts", "interests"] {
            let Ok(entries) = std::fs::read_dir(dir.join(sub)) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let ours = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .and_then(FeedFormat::from_extension)
                    .is_some()
                    || (name.starts_with('.') && name.ends_with(".tmp"));
                let regular = entry.file_type().is_ok_and(|t| t.is_file());
                if ours && regular && !current.contains(&path) {
                    match std::fs::remove_file(&path) {
                        Ok(()) => tracing::info!(file = %path.display(),
                            "removed the feed file of a source or rule no longer configured"),
                        Err(e) => tracing::warn!(file = %path.display(), error = %e,
                            "cannot remove a stale feed file"),
                    }
                }
            }
        }
    }

    /// Whether a feed exists under the current config.
    pub fn exists(&self, id: &FeedId) -> bool {
        let Ok(s) = self.settings.read() else {
            return false;
        };
        match &id.scope {
            FeedScope::All => true,
            FeedScope::Source(name) => s.sources.contains(name),
            FeedScope::Rule(name) => s.rules.contains(name),
            FeedScope::Interest(name) => s.interests.iter().any(|(i, _)| i == name),
        }
    }

    /// Absolute URL of a feed (for `atom:link rel="self"`, OPML and the status page).
    pub fn url_of(&self, id: &FeedId) -> String {
        let base = self
            .settings
            .read()
            .map(|s| s.base_url.clone())
            .unwrap_or_default();
        format!("{base}{}", id.url_path())
    }

    /// The feed's current rendering: from memory when its scope has not changed since,
    /// else rendered now (and kept). `None` when no such feed exists.
    pub async fn get(self: &Arc<Self>, id: &FeedId) -> Result<Option<Arc<Rendered>>, PublishError> {
        if !self.exists(id) {
            return Ok(None);
        }
        if let Some(hit) = self.cached_without_store(id) {
            return Ok(Some(hit));
        }
        let this = Arc::clone(self);
        let id2 = id.clone();
        let rendered = tokio::task::spawn_blocking(move || this.current(&id2, true))
            .await
            .map_err(|_| PublishError::Task(id.url_path()))??;
        // After the answer, not before it: the reader waiting for a changed feed does
        // not wait for the memory to be given back.
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.release_freed_memory());
        Ok(Some(rendered))
    }

    /// The cached rendering when it is known current without asking the store: the
    /// scope changes were read at the current generation.
    fn cached_without_store(&self, id: &FeedId) -> Option<Arc<Rendered>> {
        let changed_at = {
            let scopes = self.scopes.lock().ok()?;
            let scopes = scopes.as_ref().filter(|s| s.read_at == self.generation())?;
            scopes.of(&id.scope)
        };
        self.cached_since(id, changed_at)
    }

    /// The cached rendering, if it was made after its scope last changed.
    fn cached_since(&self, id: &FeedId, changed_at: u64) -> Option<Arc<Rendered>> {
        self.cache
            .lock()
            .ok()?
            .get(id)
            .filter(|r| r.generation >= changed_at)
            .cloned()
    }

    /// When a feed's scope last changed, reading the scope changes from the store once
    /// per generation (blocking).
    fn scope_changed_at(&self, scope: &FeedScope, generation: u64) -> Result<u64, PublishError> {
        let mut scopes = self
            .scopes
            .lock()
            .map_err(|_| PublishError::Task("scope changes".to_owned()))?;
        if scopes.as_ref().is_none_or(|s| s.read_at != generation) {
            let changed_at = crate::store::lock(&self.store)
                .scope_changes()
                .map_err(|source| PublishError::Store {
                    path: scope_path(scope),
                    source,
                })?;
            *scopes = Some(ScopeChanges::new(generation, changed_at));
        }
        Ok(scopes.as_ref().map_or(0, |s| s.of(scope)))
    }

    /// The feed's current rendering (blocking): the cached one when its scope has not
    /// changed since it was rendered, else a new one, kept in the cache when `keep`.
    fn current(&self, id: &FeedId, keep: bool) -> Result<Arc<Rendered>, PublishError> {
        let generation = self.generation();
        let changed_at = self.scope_changed_at(&id.scope, generation)?;
        self.current_at(id, generation, changed_at, keep)
    }

    /// [`Publisher::current`] with the generation and the scope's last change already
    /// read. A feed that is in the cache (someone asked for it over HTTP) is always
    /// kept: the file writer, which runs right after each change, then renders and
    /// compresses it before the next request asks.
    fn current_at(
        &self,
        id: &FeedId,
        generation: u64,
        changed_at: u64,
        keep: bool,
    ) -> Result<Arc<Rendered>, PublishError> {
        self.current_from(id, generation, changed_at, keep, None)
    }

    /// [`Publisher::current_at`], reusing the items of `from_file` (an earlier
    /// rendering read back from the feed's file) when the feed is not in memory.
    fn current_from(
        &self,
        id: &FeedId,
        generation: u64,
        changed_at: u64,
        keep: bool,
        from_file: Option<Previous<'_>>,
    ) -> Result<Arc<Rendered>, PublishError> {
        let turn = self
            .rendering
            .lock()
            .map(|mut r| Arc::clone(r.entry(id.clone()).or_default()))
            .map_err(|_| PublishError::Task(id.url_path()))?;
        // A rendering that panicked leaves nothing half-made behind this lock.
        let _turn = turn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Read after the wait: the rendering waited for may be the one needed.
        let previous = self.cache.lock().ok().and_then(|c| c.get(id).cloned());
        if let Some(hit) = previous.as_ref().filter(|r| r.generation >= changed_at) {
            return Ok(Arc::clone(hit));
        }
        let keep = keep || previous.is_some();
        let reuse = previous
            .as_deref()
            .and_then(Rendered::reusable)
            .or(from_file);
        let rendered = Arc::new(self.render(id, generation, reuse, keep)?);
        if keep {
            if let Ok(mut cache) = self.cache.lock() {
                // Two renders of one feed may race; the later generation stays.
                let newer = cache
                    .get(id)
                    .is_some_and(|r| r.generation > rendered.generation);
                if !newer {
                    cache.insert(id.clone(), Arc::clone(&rendered));
                }
            }
        }
        Ok(rendered)
    }

    /// What a feed says about itself under the current config: the channel its
    /// renderings are made with.
    pub fn channel(&self, id: &FeedId) -> Option<Channel> {
        let settings = self.settings.read().ok()?;
        Some(Self::channel_in(id, &settings))
    }

    /// What a feed says about itself under `settings`.
    fn channel_in(id: &FeedId, settings: &Settings) -> Channel {
        Channel {
            title: id.title(&settings.title),
            description: match &id.scope {
                FeedScope::All => "New entries from every watched listing page".to_owned(),
                FeedScope::Source(s) => format!("New entries from source {s}"),
                FeedScope::Rule(r) => format!("Entries matching alert rule {r}"),
                FeedScope::Interest(i) => format!("Papers like those interest {i} likes"),
            },
            site_link: format!("{}/", settings.base_url),
            self_url: format!("{}{}", settings.base_url, id.url_path()),
            stylesheet: (id.format != FeedFormat::Json)
                .then(|| format!("{}/feed.xsl", settings.base_url)),
            guid_scope: match &id.scope {
                FeedScope::All => None,
                scope => Some(scope.scope_key()),
            },
            dates: settings.dates,
        }
    }

    /// Renders one feed from the store (blocking: call from `spawn_blocking`), reusing
    /// the bytes of items that `previous` (an earlier rendering of the same feed)
    /// already holds, and gzips it when `gzip`.
    fn render(
        &self,
        id: &FeedId,
        generation: u64,
        previous: Option<Previous<'_>>,
        gzip: bool,
    ) -> Result<Rendered, PublishError> {
        // What the rendering needs of the settings, not a copy of them all (their
        // source list is as long as the config's).
        let (channel, max_items) = self
            .settings
            .read()
            .map(|s| (Self::channel_in(id, &s), s.max_items))
            .map_err(|_| PublishError::Task(id.url_path()))?;
        if let FeedScope::Interest(name) = &id.scope {
            let settings = self
                .settings
                .read()
                .map(|s| s.clone())
                .map_err(|_| PublishError::Task(id.url_path()))?;
            return self.render_interest(id, name, &settings, generation, gzip);
        }
        let store_err = |source| PublishError::Store {
            path: id.url_path(),
            source,
        };
        let (listed_at, slots) = self
            .list(id, previous.map(|p| p.layout), max_items)
            .map_err(store_err)?;
        let updated = slots
            .iter()
            .map(Slot::updated_at)
            .max()
            .unwrap_or(DateTime::UNIX_EPOCH);
        let spliced = feed::Frame::updated_at(id.format, &channel, updated).and_then(|frame| {
            splice(
                &frame,
                &slots,
                listed_at,
                previous,
                gzip,
                &self.fingerprints,
            )
        });
        let last_modified = slots
            .iter()
            .map(Slot::modified)
            .max()
            .unwrap_or_else(Utc::now);
        drop(slots);
        let (bytes, etag, gzipped, layout) = match spliced {
            Some(spliced) => (
                spliced.bytes,
                spliced.etag,
                spliced.gzip,
                Some(Arc::new(spliced.layout)),
            ),
            // Never for the writers in use (the property tests check the cut); kept so
            // that a writer that changes its output costs speed, not correctness.
            None => {
                let items = crate::store::lock(&self.store)
                    .items(id.scope.filter().unwrap_or(ItemFilter::All), max_items)
                    .map_err(store_err)?;
                let bytes = match id.format {
                    FeedFormat::Rss => feed::render_rss(&channel, &items),
                    FeedFormat::Atom => feed::render_atom(&channel, &items),
                    FeedFormat::Json => feed::render_json_feed(&channel, &items),
                };
                let gzipped = gzip.then(|| gzip_whole(&bytes)).flatten();
                let etag = feed::etag(&bytes);
                (bytes, etag, gzipped, None)
            }
        };
        let headers = ValidatorHeaders {
            etag: http::HeaderValue::from_str(&etag).ok(),
            last_modified: http::HeaderValue::from_str(&httpdate::fmt_http_date(
                last_modified.into(),
            ))
            .ok(),
        };
        let gzip = gzipped.map(|(gz, etag)| Encoded {
            etag_header: http::HeaderValue::from_str(&etag).ok(),
            etag,
            bytes: gz.into(),
        });
        Ok(Rendered {
            etag,
            bytes: bytes.into(),
            gzip,
            last_modified,
            generation,
            content_type: id.format.content_type(),
            headers,
            layout,
        })
    }

    /// Renders an interest's feed whole (blocking; see [`feed::render_scored`]).
    fn render_interest(
        &self,
        id: &FeedId,
        name: &str,
        settings: &Settings,
        generation: u64,
        gzip: bool,
    ) -> Result<Rendered, PublishError> {
        let min_score = settings
            .interests
            .iter()
            .find(|(i, _)| i == name)
            .map_or(f32::INFINITY, |(_, m)| *m);
        let items = crate::store::lock(&self.store)
            .interest_items(name, min_score, settings.max_items)
            .map_err(|source| PublishError::Store {
                path: id.url_path(),
                source,
            })?;
        let channel = Self::channel_in(id, settings);
        let bytes = feed::render_scored(id.format, &channel, &items);
        let gzipped = gzip.then(|| gzip_whole(&bytes)).flatten();
        let etag = feed::etag(&bytes);
        let last_modified = items
            .iter()
            .map(|s| s.item.updated_at.max(s.item.first_seen))
            .max()
            .unwrap_or_else(Utc::now);
        Ok(Rendered {
            headers: ValidatorHeaders {
                etag: http::HeaderValue::from_str(&etag).ok(),
                last_modified: http::HeaderValue::from_str(&httpdate::fmt_http_date(
                    last_modified.into(),
                ))
                .ok(),
            },
            gzip: gzipped.map(|(gz, etag)| Encoded {
                etag_header: http::HeaderValue::from_str(&etag).ok(),
                etag,
                bytes: gz.into(),
            }),
            etag,
            bytes: bytes.into(),
            last_modified,
            generation,
            content_type: id.format.content_type(),
            layout: None,
        })
    }

    /// The feed's items now, and the store generation they are current at: the items of
    /// `previous` (an earlier rendering's layout) with what changed since applied, at a
    /// cost in proportion to the change, or listed whole when there is no earlier
    /// rendering or the store cannot tell the change (see `Store::changed_items`).
    fn list<'a>(
        &self,
        id: &FeedId,
        previous: Option<&'a Layout>,
        max_items: usize,
    ) -> Result<(u64, Vec<Slot<'a>>), StoreError> {
        let store = crate::store::lock(&self.store);
        let filter = id.scope.filter().unwrap_or(ItemFilter::All);
        if let Some(previous) = previous {
            if let Some(changes) = store.changed_items(filter, previous.listed_at, max_items)? {
                return Ok((
                    changes.generation,
                    apply(previous, changes.items, max_items),
                ));
            }
        }
        let listing = store.listing(filter, max_items)?;
        Ok((
            listing.generation,
            listing
                .items
                .into_iter()
                .map(|l| Slot::Fresh(Box::new(l)))
                .collect(),
        ))
    }

    /// Writes the feed files under `state_dir/feeds/` after each store change, until
    /// `shutdown` is cancelled.
    pub async fn write_files(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        let mut changes = self.generation.subscribe();
        changes.mark_changed();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
            if let Err(e) = self.write_all().await {
                tracing::warn!(error = %e, "cannot write feed files");
            }
        }
    }

    /// Writes every feed file (in the configured `file_formats`) whose scope changed
    /// since it was last written, and whose bytes differ from the file on disk.
    pub async fn write_all(self: &Arc<Self>) -> Result<(), PublishError> {
        let Some((dir, formats)) = self
            .settings
            .read()
            .ok()
            .and_then(|s| Some((s.feeds_dir.clone()?, s.file_formats.clone())))
        else {
            return Ok(());
        };
        if self.prune.swap(false, std::sync::atomic::Ordering::Relaxed) {
            let this = Arc::clone(self);
            let dir2 = dir.clone();
            tokio::task::spawn_blocking(move || this.remove_stale_files(&dir2))
                .await
                .map_err(|_| PublishError::Task("feed files".to_owned()))?;
        }
        // A few at a time: renders wait for the store in turn, but the XML and the
        // file writes of one feed overlap with the next one's. Two per core, because a
        // file write spends part of its time waiting in the file system, not running
        // (see BENCHMARKS.md, "Figures behind code choices").
        let parallel = 2 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let writes = self
            .feeds()
            .into_iter()
            .filter(|id| formats.contains(&id.format))
            .map(|id| {
                let this = Arc::clone(self);
                let url_path = id.url_path();
                let path = id.file_path(&dir);
                async move {
                    tokio::task::spawn_blocking(move || this.write_file(&id, &path))
                        .await
                        .map_err(|_| PublishError::Task(url_path))?
                }
            });
        let results: Vec<Result<(), PublishError>> = futures_util::stream::iter(writes)
            .buffer_unordered(parallel)
            .collect()
            .await;
        self.release_freed_memory();
        results.into_iter().collect()
    }

    /// Brings one feed file up to date (blocking). Only feeds someone asks for over
    /// HTTP stay in memory: a cached rendering is reused, others are rendered, written
    /// and dropped. For those the writer keeps the layout of what it wrote, and the
    /// file, while nobody else changed it, holds the items the next rendering reuses:
    /// a change then renders only its own items whatever the number of feeds written
    /// (an item matched by 100 rules is in 100 files), for a few dozen bytes of memory
    /// per item and file.
    fn write_file(&self, id: &FeedId, path: &Path) -> Result<(), PublishError> {
        let generation = self.generation();
        let changed_at = self.scope_changed_at(&id.scope, generation)?;
        let known = self.written.lock().ok().and_then(|w| w.get(id).cloned());
        if known.as_ref().is_some_and(|w| w.generation >= changed_at) {
            return Ok(());
        }
        let stamp = FileStamp::of(path);
        let on_disk = std::fs::read(path).ok();
        // The file as the writer left it (same inode, size and time): its items are
        // where the layout says.
        let from_file = known
            .as_ref()
            .filter(|w| w.stamp.is_some() && w.stamp == stamp)
            .zip(on_disk.as_deref())
            .and_then(|(w, bytes)| {
                let layout = w.layout.as_deref()?;
                (layout.len == bytes.len()).then_some(Previous {
                    bytes,
                    gzip: None,
                    layout,
                })
            });
        let rendered = self.current_from(id, generation, changed_at, false, from_file)?;
        // A restart, or a change that left this feed's bytes as they were: no write.
        if on_disk.as_deref() != Some(&rendered.bytes[..]) {
            write_atomically(path, &rendered.bytes)?;
        }
        if let Ok(mut written) = self.written.lock() {
            written.insert(
                id.clone(),
                WrittenFile {
                    generation: rendered.generation,
                    layout: rendered.layout.clone(),
                    stamp: FileStamp::of(path),
                },
            );
        }
        Ok(())
    }
}

/// What the writer knows of a feed file it wrote.
#[derive(Debug, Clone)]
struct WrittenFile {
    /// The generation it was written (or found current) at.
    generation: u64,
    /// Where the items are in it.
    layout: Option<Arc<Layout>>,
    /// The file as it was after the write.
    stamp: Option<FileStamp>,
}

/// What tells a file apart from the one written: a rename into place gives a new
/// inode, and an edit in place changes the time or the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<std::time::SystemTime>,
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

/// A scope's feed path, for errors.
fn scope_path(scope: &FeedScope) -> String {
    FeedId {
        scope: scope.clone(),
        format: FeedFormat::Rss,
    }
    .url_path()
}

impl Publisher {
    /// Rendering a feed builds the whole document (and the items behind it) in memory
    /// and frees it a moment later, and fills SQLite's page cache with the rows it
    /// read; glibc keeps freed pages. Giving both back after renders keeps an idle
    /// daemon at what its feed cache really holds; the next render re-reads a few
    /// pages from the OS's file cache.
    pub(crate) fn release_freed_memory(&self) {
        if let Err(e) = crate::store::lock(&self.store).release_memory() {
            tracing::debug!(error = %e, "cannot shrink the store's page cache");
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only returns free heap memory to the kernel.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

/// Writes `bytes` to `path` through a temp file in the same directory and a rename, so
/// readers never see a half-written file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PublishError> {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt as _;
    let err = |source| PublishError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    // A temporary file of its own (two writers never share a name), readable like any
    // feed file (0644 less the umask), synced before it takes the feed's name: a crash
    // leaves the old feed or the new one, never a torn one.
    let mut tmp = tempfile::Builder::new()
        .prefix(".")
        .suffix(".tmp")
        .permissions(std::fs::Permissions::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(bytes).map_err(err)?;
    tmp.as_file().sync_data().map_err(err)?;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

/// The gzip level of feed pieces. Each piece is compressed once per item version, so
/// the level costs on a cold render only; see BENCHMARKS.md ("Compressed feeds") for
/// the CPU and size per level that chose it.
const GZIP_LEVEL: u32 = 6;

/// Where each item's bytes sit in a rendering, so the next rendering of the same feed
/// copies them instead of rendering and compressing the item again.
#[derive(Debug)]
struct Layout {
    /// The feed's items, in document order.
    units: Vec<Unit>,
    /// The document's length.
    len: usize,
    /// The store generation its items were listed at: the next rendering asks the
    /// store only for what changed after it.
    listed_at: u64,
}

/// One item of a rendering.
#[derive(Debug, Clone)]
struct Unit {
    /// The item's row id.
    id: i64,
    /// The time the feed orders the item by (see `Listed::order`).
    order: i64,
    /// The item's `updated_at` (Atom's feed-level `updated` is the newest).
    updated_at: DateTime<Utc>,
    /// The newer of its `updated_at` and `first_seen` (the feed's `Last-Modified`).
    modified: DateTime<Utc>,
    /// The item's [`fingerprint`]: equal fingerprints, equal bytes.
    fingerprint: u64,
    /// The item's bytes in the document, without the separator before it.
    item: std::ops::Range<usize>,
    /// The separator before it and the item's bytes: what its gzip piece holds.
    span: std::ops::Range<usize>,
    /// The first 128 bits of the SHA-256 of the item's bytes, for the ETag.
    digest: Digest,
    /// Its gzip piece in the gzipped document, and that piece's digest.
    gzip: Option<(std::ops::Range<usize>, Digest)>,
    /// The fingerprint of the item before it, whose bytes were the piece's preset
    /// dictionary; `None` for the first item, compressed without one.
    after: Option<u64>,
}

/// One item of a rendering to make: kept from the previous rendering, unchanged, or
/// read from the store.
// Slots live for one rendering and a fresh one is moved straight out of the store's
// listing: a box each would add an allocation per item for no saving.
#[allow(clippy::large_enum_variant)]
enum Slot<'a> {
    /// An item of the previous rendering that did not change.
    Kept(&'a Unit),
    /// An item as the store gave it (boxed: a slot is mostly a kept one).
    Fresh(Box<crate::store::Listed>),
}

impl Slot<'_> {
    fn key(&self) -> (i64, i64) {
        match self {
            Slot::Kept(unit) => (unit.order, unit.id),
            Slot::Fresh(listed) => (listed.order, listed.item.id),
        }
    }

    fn updated_at(&self) -> DateTime<Utc> {
        match self {
            Slot::Kept(unit) => unit.updated_at,
            Slot::Fresh(listed) => listed.item.updated_at,
        }
    }

    fn modified(&self) -> DateTime<Utc> {
        match self {
            Slot::Kept(unit) => unit.modified,
            Slot::Fresh(listed) => listed.item.updated_at.max(listed.item.first_seen),
        }
    }
}

/// The items of `previous` with `changed` (the feed's items changed since it was
/// listed) put in their places, newest first, the first `max_items` of them. An
/// item's place never moves (the time a feed orders by is set when the item enters
/// it), and items only enter a feed, so the changed items and the unchanged ones
/// already listed are all the feed can hold.
fn apply(
    previous: &Layout,
    mut changed: Vec<crate::store::Listed>,
    max_items: usize,
) -> Vec<Slot<'_>> {
    // Sorted, searched per kept item: a SipHash set cost more than the rest of the
    // merge at 5,000 items.
    let mut ids: Vec<i64> = changed.iter().map(|l| l.item.id).collect();
    ids.sort_unstable();
    changed.sort_unstable_by_key(|l| std::cmp::Reverse((l.order, l.item.id)));
    let mut kept = previous
        .units
        .iter()
        .filter(|u| ids.binary_search(&u.id).is_err())
        .map(Slot::Kept)
        .peekable();
    let mut changed = changed
        .into_iter()
        .map(|l| Slot::Fresh(Box::new(l)))
        .peekable();
    let mut slots = Vec::with_capacity(max_items.min(previous.units.len() + ids.len()));
    while slots.len() < max_items {
        let take_kept = match (kept.peek(), changed.peek()) {
            (Some(k), Some(c)) => k.key() > c.key(),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        let next = if take_kept {
            kept.next()
        } else {
            changed.next()
        };
        slots.extend(next);
    }
    slots
}

/// A document built from item fragments, with its ETags.
struct Spliced {
    bytes: Vec<u8>,
    etag: String,
    /// The gzipped document and its ETag.
    gzip: Option<(Vec<u8>, String)>,
    layout: Layout,
}

/// The first 128 bits of a SHA-256.
type Digest = [u8; 16];

fn digest(bytes: &[u8]) -> Digest {
    use sha2::Digest as _;
    let full = sha2::Sha256::digest(bytes);
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// A strong ETag for a document made of `head`, the items' `digests` and `tail`: the
/// quoted first 128 bits of a SHA-256 over them, with the lengths that make the
/// sequence unambiguous. Hashing the items' digests
/// instead of the document keeps a change's cost to the items that changed (hashing
/// the whole document was most of a change's work, BENCHMARKS.md); the digests are of
/// the bytes, so the ETag is the same after a restart.
fn spliced_etag<'a>(
    head: &[u8],
    digests: impl ExactSizeIterator<Item = &'a Digest>,
    tail: &[u8],
    suffix: &str,
) -> String {
    use sha2::Digest as _;
    let mut hasher = sha2::Sha256::new();
    hasher.update((head.len() as u64).to_le_bytes());
    hasher.update(head);
    hasher.update((digests.len() as u64).to_le_bytes());
    for digest in digests {
        hasher.update(digest);
    }
    hasher.update(tail);
    let full = hex::encode(hasher.finalize());
    format!("\"{}{suffix}\"", &full[..32])
}

/// What decides an item's bytes in a feed: every stored field (the item's time alone
/// does not: it is the capture's, and two captures can share one). Hashed with a
/// per-process random seed, so a page cannot be made to collide with an item's earlier
/// version. foldhash, not SipHash: every change hashes every item of the feed.
/// Destructured without `..`, so a new field cannot be forgotten here.
fn fingerprint(keys: &foldhash::quality::RandomState, item: &crate::store::StoredItem) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let crate::store::StoredItem {
        id,
        key,
        title,
        link,
        summary,
        authors,
        author_count,
        publisher,
        source,
        published,
        listed,
        arxiv_id,
        format,
        first_seen,
        updated_at,
    } = item;
    let mut h = keys.build_hasher();
    (id, key, title, link, summary, authors, author_count).hash(&mut h);
    (publisher, source, arxiv_id, format, first_seen, updated_at).hash(&mut h);
    // A timestamp hashes its instant only; the description prints the local day.
    for t in [published, listed] {
        t.map(|t| (t, t.offset().local_minus_utc())).hash(&mut h);
    }
    h.finish()
}

/// Builds the document of `items` in `frame` from the fragments `previous` holds,
/// rendering only items it does not; with `gzip`, the gzipped document too, from the
/// pieces `previous` holds.
///
/// The gzip form is one gzip member whose deflate stream is a piece per item, each
/// ending in a sync flush (a byte-aligned empty stored block), the way pigz joins
/// pieces compressed apart. A piece is compressed with the item before it as its
/// preset dictionary, which recovers most of what separate compression loses (the
/// markup items share); it stays valid while that item stays before it. A new item
/// at the top of a feed thus costs two pieces, whatever the feed's size.
/// `None` when an item does not cut out of its document (see [`feed::Frame::item`]).
fn splice(
    frame: &feed::Frame<'_>,
    slots: &[Slot<'_>],
    listed_at: u64,
    previous: Option<Previous<'_>>,
    gzip: bool,
    keys: &foldhash::quality::RandomState,
) -> Option<Spliced> {
    let old_units = previous.map_or(&[][..], |p| &p.layout.units[..]);
    // A kept item is its old unit; a fresh one may still be in the old rendering with
    // the same bytes (a listing from scratch, an item marked changed that shows the
    // same). A change brings a few fresh items: they are looked for in the old units
    // one by one, and a map of them is made only for many (every item of a listing).
    let fresh = slots.iter().filter(|s| matches!(s, Slot::Fresh(_))).count();
    let old_map: Option<HashMap<u64, &Unit, foldhash::fast::RandomState>> =
        (fresh > 16).then(|| old_units.iter().map(|u| (u.fingerprint, u)).collect());
    let find_old = |fingerprint: u64| match &old_map {
        Some(map) => map.get(&fingerprint).copied(),
        None => old_units.iter().find(|u| u.fingerprint == fingerprint),
    };
    let mut reused: Vec<Option<&Unit>> = Vec::with_capacity(slots.len());
    let old_bytes = previous.map_or(&[][..], |p| p.bytes);
    let mut doc = Vec::with_capacity(old_bytes.len() + 4096);
    doc.extend_from_slice(&frame.head());
    let head_end = doc.len();
    let mut units = Vec::with_capacity(slots.len());
    for (i, slot) in slots.iter().enumerate() {
        let (fingerprint, old) = match slot {
            Slot::Kept(unit) => (unit.fingerprint, Some(*unit)),
            Slot::Fresh(listed) => {
                let fingerprint = fingerprint(keys, &listed.item);
                (fingerprint, find_old(fingerprint))
            }
        };
        reused.push(old);
        let start = doc.len();
        if i > 0 {
            doc.extend_from_slice(frame.separator());
        }
        let item_start = doc.len();
        let digest = match (old, slot) {
            (Some(unit), _) => {
                doc.extend_from_slice(old_bytes.get(unit.item.clone())?);
                unit.digest
            }
            (None, Slot::Fresh(listed)) => {
                doc.extend_from_slice(&frame.item(&listed.item)?);
                self::digest(&doc[item_start..])
            }
            // A kept item is in the previous rendering by construction.
            (None, Slot::Kept(_)) => return None,
        };
        let (order, id) = slot.key();
        units.push(Unit {
            id,
            order,
            updated_at: slot.updated_at(),
            modified: slot.modified(),
            fingerprint,
            item: item_start..doc.len(),
            span: start..doc.len(),
            digest,
            gzip: None,
            after: None,
        });
    }
    let tail_start = doc.len();
    doc.extend_from_slice(frame.tail());
    // The separator is the format's, and the format is the feed's: not hashed.
    let etag = spliced_etag(
        &doc[..head_end],
        units.iter().map(|u| &u.digest),
        &doc[tail_start..],
        "",
    );

    let gzip = if gzip {
        let old_gzip = previous.and_then(|p| p.gzip).unwrap_or_default();
        let pieced = gzip_pieces(&doc, head_end..tail_start, &mut units, &reused, old_gzip);
        if pieced.is_none() {
            units.iter_mut().for_each(|u| u.gzip = None);
        }
        pieced.or_else(|| gzip_whole(&doc))
    } else {
        None
    };
    let len = doc.len();
    Some(Spliced {
        bytes: doc,
        etag,
        gzip,
        layout: Layout {
            units,
            len,
            listed_at,
        },
    })
}

/// The gzip form of `doc` (items in `body`, laid out as `units`), from the pieces of
/// `old_gzip` that the units each reuses (`reused`, in order) say are still valid and
/// new ones; records each unit's
/// piece; with the gzip ETag, made like the document's from the pieces' digests.
/// `None` if the compressor failed.
fn gzip_pieces(
    doc: &[u8],
    body: std::ops::Range<usize>,
    units: &mut [Unit],
    reused: &[Option<&Unit>],
    old_gzip: &[u8],
) -> Option<(Vec<u8>, String)> {
    let mut member = GzipMember::new(old_gzip.len().max(doc.len() / 3));
    let head = member.piece(None, &doc[..body.start])?;
    for i in 0..units.len() {
        let after = i.checked_sub(1).map(|j| units[j].fingerprint);
        let reusable = reused
            .get(i)
            .copied()
            .flatten()
            .filter(|u| u.after == after)
            .and_then(|u| u.gzip.clone())
            .filter(|(range, _)| range.end <= old_gzip.len());
        let piece = match reusable {
            Some((range, digest)) => (member.copy(&old_gzip[range]), digest),
            None => {
                let dictionary = i.checked_sub(1).map(|j| &doc[units[j].item.clone()]);
                let range = member.piece(dictionary, &doc[units[i].span.clone()])?;
                let digest = digest(&member.out[range.clone()]);
                (range, digest)
            }
        };
        units[i].gzip = Some(piece);
        units[i].after = after;
    }
    let tail_start = member.out.len();
    let gz = member.finish(&doc[body.end..], doc)?;
    let digests: Vec<&Digest> = units
        .iter()
        .filter_map(|u| u.gzip.as_ref().map(|(_, d)| d))
        .collect();
    let etag = spliced_etag(
        &gz[..head.end],
        digests.into_iter(),
        &gz[tail_start..],
        "-gz",
    );
    Some((gz, etag))
}

/// The gzip ETag of a document gzipped whole: its bytes' hash, marked `-gz`.
fn gzip_etag(gz: &[u8]) -> String {
    let tag = feed::etag(gz);
    format!("{}-gz\"", tag.trim_end_matches('"'))
}

/// A gzip member (RFC 1952) built from raw deflate pieces.
struct GzipMember {
    out: Vec<u8>,
    deflate: flate2::Compress,
}

impl GzipMember {
    /// The fixed header: deflate, no name, no time (the bytes depend on the document
    /// only), OS unknown.
    const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

    fn new(capacity: usize) -> GzipMember {
        let mut out = Vec::with_capacity(capacity + Self::HEADER.len());
        out.extend_from_slice(&Self::HEADER);
        GzipMember {
            out,
            deflate: flate2::Compress::new(flate2::Compression::new(GZIP_LEVEL), false),
        }
    }

    /// Appends `input` compressed on its own (with `dictionary` as what precedes
    /// it), ending on a byte boundary; returns where its piece is.
    fn piece(&mut self, dictionary: Option<&[u8]>, input: &[u8]) -> Option<std::ops::Range<usize>> {
        let start = self.out.len();
        self.deflate.reset();
        if let Some(dictionary) = dictionary {
            // Deflate looks back 32 KiB at most.
            let from = dictionary.len().saturating_sub(32 * 1024);
            self.deflate.set_dictionary(&dictionary[from..]).ok()?;
        }
        self.deflate_all(input, flate2::FlushCompress::Sync)?;
        Some(start..self.out.len())
    }

    /// Appends a piece made by an earlier rendering.
    fn copy(&mut self, piece: &[u8]) -> std::ops::Range<usize> {
        let start = self.out.len();
        self.out.extend_from_slice(piece);
        start..self.out.len()
    }

    /// Appends `tail` as the final block and the trailer for `document`.
    fn finish(mut self, tail: &[u8], document: &[u8]) -> Option<Vec<u8>> {
        self.deflate.reset();
        self.deflate_all(tail, flate2::FlushCompress::Finish)?;
        let mut crc = flate2::Crc::new();
        crc.update(document);
        self.out.extend_from_slice(&crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32 (RFC 1952).
        self.out
            .extend_from_slice(&(document.len() as u32).to_le_bytes());
        Some(self.out)
    }

    /// Compresses all of `input` into `out`, until `flush` is done.
    fn deflate_all(&mut self, input: &[u8], flush: flate2::FlushCompress) -> Option<()> {
        let start = self.deflate.total_in();
        // Room for the worst case (stored blocks) up front, so one call finishes the
        // flush: a flush split over calls can end in an extra empty block, and the
        // bytes (and the gzip ETag) would then depend on buffer sizes.
        self.out.reserve(input.len() + input.len() / 8 + 128);
        loop {
            if self.out.capacity() - self.out.len() < 64 {
                self.out.reserve(input.len() / 2 + 1024);
            }
            let consumed = usize::try_from(self.deflate.total_in() - start).ok()?;
            let status = self
                .deflate
                .compress_vec(&input[consumed..], &mut self.out, flush)
                .ok()?;
            let all_in = usize::try_from(self.deflate.total_in() - start).ok()? == input.len();
            // A sync flush is complete once the compressor stops short of the end of
            // the room it was given.
            let done = match flush {
                flate2::FlushCompress::Finish => status == flate2::Status::StreamEnd,
                _ => all_in && self.out.len() < self.out.capacity(),
            };
            if done {
                return Some(());
            }
        }
    }
}

/// The whole document gzipped in one go, with its ETag, for the rare rendering that
/// cannot be spliced.
fn gzip_whole(bytes: &[u8]) -> Option<(Vec<u8>, String)> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(bytes.len() / 3),
        flate2::Compression::new(GZIP_LEVEL),
    );
    encoder.write_all(bytes).ok()?;
    let gz = encoder.finish().ok()?;
    let etag = gzip_etag(&gz);
    Some((gz, etag))
}
