//! Where pages come from: a watched drop folder ([`folder`]) and listing pages fetched
//! over HTTP ([`http`]). Both hand the daemon a [`Page`]; neither knows page formats.

pub mod folder;
pub mod http;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// One captured listing page, as a source hands it to the pipeline.
#[derive(Debug, Clone)]
pub struct Page {
    /// Name of the configured source that produced the page.
    pub source: String,
    /// Where the bytes came from: a file path or a URL, for logs and errors.
    pub origin: String,
    /// The raw bytes, undecoded.
    pub body: Vec<u8>,
    /// `Content-Type` of a fetched page, when known.
    pub content_type: Option<String>,
    /// The page URL, used to resolve relative links (HTTP sources).
    pub url: Option<url::Url>,
    /// When the page was captured: a dropped file's mtime or the fetch time. Yearless
    /// dates on the page resolve against it.
    pub captured_at: DateTime<Utc>,
    /// Format name from the source config (`auto` sniffs).
    pub format: String,
    /// A baseline capture fills the feed but raises no alerts (first fetch of an http source).
    pub baseline: bool,
    /// Hex SHA-256 of `body`; the same bytes are never ingested twice.
    pub content_hash: String,
}

/// Hex SHA-256 of a page body: the identity of a capture.
pub fn content_hash(body: &[u8]) -> String {
    hex::encode(Sha256::digest(body))
}

/// What a source sends the pipeline, on one channel: a page to ingest, or an attempt
/// that brought no page. Sources only produce; the pipeline is the store's one writer,
/// and it keeps every source's [`SourceHealth`] from these reports, whatever the kind.
#[derive(Debug)]
// Unboxed: the channel holds at most 64 reports, so the larger variant costs a few
// KB at most, and a page pays no extra allocation.
#[allow(clippy::large_enum_variant)]
pub enum Report {
    /// A captured page, answered once ingested or refused.
    Page(Capture),
    /// An attempt that brought no page: an HTTP 304, or a failed fetch.
    Attempt(Attempt),
}

/// A page on its way into the pipeline, with the channel on which the daemon answers
/// once the page is ingested or refused. Sources act on the answer: the folder source
/// moves the file to `processed/` or `failed/`; the HTTP source sends its new
/// validators from then on. The pipeline records the validators with the page, only
/// once it is stored, so a crash in between refetches the page instead of losing it.
#[derive(Debug)]
pub struct Capture {
    /// The page.
    pub page: Page,
    /// Where the outcome goes; the source may stop listening.
    pub reply: tokio::sync::oneshot::Sender<Outcome>,
    /// What to send with the next request for the same page, when the source makes
    /// conditional requests (HTTP); `None` for a dropped file.
    pub validators: Option<Validators>,
}

/// Validators of a fetched page (`ETag`, `Last-Modified`), sent back for a
/// conditional GET so an unchanged page costs a 304.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    /// The `ETag` the server sent.
    pub etag: Option<String>,
    /// The `Last-Modified` the server sent.
    pub last_modified: Option<String>,
}

/// An attempt of a source that brought no page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The source's name.
    pub source: String,
    /// When the attempt ended.
    pub at: DateTime<Utc>,
    /// What came of it.
    pub result: AttemptResult,
}

impl Report {
    /// The report of an attempt by `source` that ended now with `result`.
    pub fn attempt(source: impl Into<String>, result: AttemptResult) -> Report {
        Report::Attempt(Attempt {
            source: source.into(),
            at: Utc::now(),
            result,
        })
    }
}

/// What came of an attempt that brought no page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// The page had not changed (HTTP 304): a success, with the validators kept.
    NotModified,
    /// The attempt failed, with its cause.
    Failed(Failure),
}

/// Why a page was refused or not stored, or an attempt failed: the error itself, its
/// cause chain kept, until the log line, sidecar or [`SourceHealth`] renders it once
/// ([`crate::logging::Chain`]: each cause said once). Shared, because one store
/// failure answers every page of a group.
#[derive(Debug, Clone)]
pub struct Failure(Arc<dyn std::error::Error + Send + Sync + 'static>);

impl Failure {
    /// Keeps `error` with its causes.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Failure {
        Failure(Arc::new(error))
    }

    /// A failure that has no cause beyond what it says (the store is damaged, the
    /// daemon stopped first).
    pub fn msg(text: impl Into<String>) -> Failure {
        Failure(Arc::from(Box::<dyn std::error::Error + Send + Sync>::from(
            text.into(),
        )))
    }

    /// The error, to look at its kind (`downcast_ref`).
    pub fn error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        &*self.0
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        crate::logging::Chain(&*self.0).fmt(f)
    }
}

/// Its `Display` already says every cause, so it names no `source()` of its own: an
/// error around it still says each cause once, and the error itself is at
/// [`Failure::error`].
impl std::error::Error for Failure {}

/// Two failures are the same when they say the same (errors have no equality).
impl PartialEq for Failure {
    fn eq(&self, other: &Failure) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for Failure {}

/// A source's health, whatever its kind: its last good and bad attempt. The pipeline
/// keeps one per source from the [`Report`]s, the store keeps it across restarts
/// (in the source's [`FetchState`](crate::store::FetchState)), and the status page,
/// `/healthz` and metrics read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceHealth {
    /// When a page was last stored (or found seen before), or a 304 came.
    pub last_success: Option<DateTime<Utc>>,
    /// The last error, rendered once with its causes: a failed fetch, a refused page,
    /// a page the store could not take.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

impl SourceHealth {
    /// Whether the latest attempt succeeded (a source never attempted is ok).
    pub fn ok(&self) -> bool {
        self.consecutive_failures == 0
    }

    /// Books one attempt at `at`: a success clears the failures, a failure counts one
    /// and keeps its error.
    pub fn record(&mut self, at: DateTime<Utc>, recorded: &Recorded) {
        match recorded {
            Recorded::Success(_) => {
                self.last_success = Some(at);
                self.consecutive_failures = 0;
            }
            Recorded::Failure(error) => {
                self.last_error_at = Some(at);
                self.last_error = Some(error.to_string());
                self.consecutive_failures = self.consecutive_failures.saturating_add(1);
            }
        }
    }
}

impl Recorded {
    /// What an answered page does to its source's record.
    pub fn of_outcome(outcome: &Outcome, validators: Option<&Validators>) -> Recorded {
        match outcome {
            Outcome::Ingested { .. } | Outcome::Duplicate => Recorded::Success(validators.cloned()),
            Outcome::Failed { error } | Outcome::Deferred { error } => {
                Recorded::Failure(error.clone())
            }
        }
    }

    /// What an attempt that brought no page does to its source's record.
    pub fn of_attempt(result: &AttemptResult) -> Recorded {
        match result {
            AttemptResult::NotModified => Recorded::Success(None),
            AttemptResult::Failed(error) => Recorded::Failure(error.clone()),
        }
    }
}

/// What one attempt did to a source's record: the one rule, used by the pipeline for
/// every kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recorded {
    /// A page stored (or known), with its validators when the source has them; or a
    /// 304, which keeps the validators (`None`).
    Success(Option<Validators>),
    /// The attempt failed, or its page was refused or not stored.
    Failure(Failure),
}

/// What became of a captured page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Parsed and stored.
    Ingested {
        /// The format that parsed it.
        format: &'static str,
        /// What the store did with its entries.
        report: crate::store::IngestReport,
    },
    /// The same bytes were ingested before; nothing was done.
    Duplicate,
    /// The page was refused; `error` goes to the quarantine sidecar or the log.
    Failed {
        /// Why.
        error: Failure,
    },
    /// The page is fine but could not be stored now (store error): the source keeps it
    /// and tries again later. Never a reason to quarantine the page.
    Deferred {
        /// Why.
        error: Failure,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot read file now")]
    struct Later(#[source] std::io::Error);

    #[test]
    fn a_failure_keeps_its_error_and_says_each_cause_once() {
        let failure = Failure::new(Later(std::io::Error::from_raw_os_error(24)));
        let said = failure.to_string();
        assert!(said.starts_with("cannot read file now: "), "{said}");
        assert_eq!(said.matches("(os error 24)").count(), 1, "{said}");
        assert!(failure.error().downcast_ref::<Later>().is_some());
        // Recorded as health, it is rendered once, the same way.
        let mut health = SourceHealth::default();
        health.record(Utc::now(), &Recorded::Failure(failure.clone()));
        assert_eq!(health.last_error.as_deref(), Some(said.as_str()));
        assert_eq!(failure, Failure::msg(said), "equal when they say the same");
    }
}
