//! What the running daemon knows about itself and swaps on reload: the current config
//! and rule matcher, the last refused reload, and each drop folder's health. The daemon
//! writes it; the server reads it for `/healthz` and the status page.
//!
//! HTTP sources keep their health in the store (`FetchState`), since it must survive a
//! restart to drive backoff; folder sources only live as long as the process.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::store::Matcher;

/// The health of a drop folder: its last good and bad page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FolderHealth {
    /// When a file was last ingested (or found to be seen before).
    pub last_success: Option<DateTime<Utc>>,
    /// The last refusal or store error.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Refused files since the last good one.
    pub consecutive_failures: u32,
}

/// The daemon's swappable state. Every field is replaced whole, so a reader holds a
/// consistent value (an `Arc`) without holding a lock.
pub struct Live {
    config: RwLock<Arc<Config>>,
    matcher: RwLock<Arc<dyn Matcher + Send + Sync>>,
    reload_error: RwLock<Option<String>>,
    folders: RwLock<HashMap<String, FolderHealth>>,
    warnings: RwLock<HashMap<String, Vec<String>>>,
}

impl Live {
    /// State for a freshly started daemon.
    pub fn new(config: Arc<Config>, matcher: Arc<dyn Matcher + Send + Sync>) -> Live {
        Live {
            config: RwLock::new(config),
            matcher: RwLock::new(matcher),
            reload_error: RwLock::new(None),
            folders: RwLock::new(HashMap::new()),
            warnings: RwLock::new(HashMap::new()),
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&read(&self.config))
    }

    /// The rule matcher in force.
    pub fn matcher(&self) -> Arc<dyn Matcher + Send + Sync> {
        Arc::clone(&read(&self.matcher))
    }

    /// Why the last reload was refused, while the old config still runs.
    pub fn reload_error(&self) -> Option<String> {
        read(&self.reload_error).clone()
    }

    /// Switches to a reloaded config and its matcher, clearing any reload error.
    pub fn switch(&self, config: Arc<Config>, matcher: Arc<dyn Matcher + Send + Sync>) {
        *write(&self.matcher) = matcher;
        *write(&self.config) = config;
        *write(&self.reload_error) = None;
    }

    /// Records a refused reload.
    pub fn reload_refused(&self, error: String) {
        *write(&self.reload_error) = Some(error);
    }

    /// Records a drop folder's page outcome: `Ok` for a stored page, `Err` for a refusal.
    pub fn record_folder(&self, source: &str, result: Result<(), &str>) {
        let now = Utc::now();
        let mut folders = write(&self.folders);
        let health = folders.entry(source.to_owned()).or_default();
        match result {
            Ok(()) => {
                health.last_success = Some(now);
                health.consecutive_failures = 0;
            }
            Err(reason) => {
                health.last_error = Some(reason.to_owned());
                health.last_error_at = Some(now);
                health.consecutive_failures = health.consecutive_failures.saturating_add(1);
            }
        }
    }

    /// Records what was odd about a source's latest stored page (a selector that never
    /// matched, a page that emptied, a malformed document read up to its fault); an
    /// empty list clears it. A source with warnings is degraded, not failing.
    pub fn set_source_warnings(&self, source: &str, warnings: Vec<String>) {
        let mut all = write(&self.warnings);
        if warnings.is_empty() {
            all.remove(source);
        } else {
            all.insert(source.to_owned(), warnings);
        }
    }

    /// The warnings of a source's latest stored page (empty when it was fine).
    pub fn source_warnings(&self, source: &str) -> Vec<String> {
        read(&self.warnings)
            .get(source)
            .cloned()
            .unwrap_or_default()
    }

    /// A drop folder's health (default when it has seen nothing yet).
    pub fn folder_health(&self, source: &str) -> FolderHealth {
        read(&self.folders).get(source).cloned().unwrap_or_default()
    }
}

/// Locks are only held to copy or replace a value, so a poisoned one holds a whole
/// value and is taken over.
pub(crate) fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}
