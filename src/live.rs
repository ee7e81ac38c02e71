//! What the running daemon knows about itself and swaps on reload: the current config
//! and rule matcher, the last refused reload, and every source's health. The daemon
//! writes it (the health, only the pipeline); the server reads it for `/healthz` and
//! the status page.
//!
//! The health of every source, whatever its kind, is one [`SourceHealth`] here, kept
//! by the pipeline from the sources' reports; the store keeps a copy across restarts,
//! read back at start.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use chrono::{DateTime, Utc};

use crate::config::Config;
use crate::sources::{Recorded, SourceHealth};
use crate::store::Matcher;

/// The daemon's swappable state. Every field is replaced whole, so a reader holds a
/// consistent value (an `Arc`) without holding a lock.
pub struct Live {
    config: RwLock<Arc<Config>>,
    matcher: RwLock<Arc<dyn Matcher + Send + Sync>>,
    reload_error: RwLock<Option<String>>,
    health: RwLock<HashMap<String, SourceHealth>>,
    warnings: RwLock<HashMap<String, Vec<String>>>,
}

impl Live {
    /// State for a freshly started daemon.
    pub fn new(config: Arc<Config>, matcher: Arc<dyn Matcher + Send + Sync>) -> Live {
        Live {
            config: RwLock::new(config),
            matcher: RwLock::new(matcher),
            reload_error: RwLock::new(None),
            health: RwLock::new(HashMap::new()),
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

    /// Books one attempt of a source (see [`SourceHealth::record`]).
    pub fn record(&self, source: &str, at: DateTime<Utc>, recorded: &Recorded) {
        write(&self.health)
            .entry(source.to_owned())
            .or_default()
            .record(at, recorded);
    }

    /// Sets a source's health as the store kept it (at start).
    pub fn set_health(&self, source: &str, health: SourceHealth) {
        write(&self.health).insert(source.to_owned(), health);
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

    /// A source's health (default when it has attempted nothing yet).
    pub fn source_health(&self, source: &str) -> SourceHealth {
        read(&self.health).get(source).cloned().unwrap_or_default()
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
