//! Where pages come from: a watched drop folder ([`folder`]) and listing pages fetched
//! over HTTP ([`http`]). Both hand the daemon a [`Page`]; neither knows page formats.

pub mod folder;
pub mod http;

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
    /// The attempt failed; the error, in one line.
    Failed(String),
}

/// A source's health, whatever its kind: its last good and bad attempt. The pipeline
/// keeps one per source from the [`Report`]s, the store keeps it across restarts
/// (with an HTTP source's validators), and the status page, `/healthz` and the
/// sources' own schedules read it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceHealth {
    /// When a page was last stored (or found seen before), or a 304 came.
    pub last_success: Option<DateTime<Utc>>,
    /// The last error: a failed fetch, a refused page, a page the store could not take.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
}

impl SourceHealth {
    /// The health kept in a stored fetch state.
    pub fn of(state: &crate::store::FetchState) -> SourceHealth {
        SourceHealth {
            last_success: state.last_success,
            last_error: state.last_error.clone(),
            last_error_at: state.last_error_at,
            consecutive_failures: state.consecutive_failures,
        }
    }

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
                self.last_error = Some(error.clone());
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
            Outcome::Failed { reason } | Outcome::Deferred { reason } => {
                Recorded::Failure(reason.clone())
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
    Failure(String),
}

/// `state` after an attempt at `at`. A success clears the failures, marks the baseline
/// done and, with new validators, replaces the old; a failure keeps the validators, so
/// the next request of a page that was never stored is unconditional only if it never
/// was.
pub fn record(
    state: &crate::store::FetchState,
    at: DateTime<Utc>,
    recorded: &Recorded,
) -> crate::store::FetchState {
    let mut health = SourceHealth::of(state);
    health.record(at, recorded);
    let mut state = state.clone();
    if let Recorded::Success(validators) = recorded {
        if let Some(v) = validators {
            state.etag.clone_from(&v.etag);
            state.last_modified.clone_from(&v.last_modified);
        }
        state.ever_succeeded = true;
    }
    state.last_success = health.last_success;
    state.last_error = health.last_error;
    state.last_error_at = health.last_error_at;
    state.consecutive_failures = health.consecutive_failures;
    state
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
    /// The page was refused; `reason` goes to the quarantine sidecar or the log.
    Failed {
        /// Why, in one line.
        reason: String,
    },
    /// The page is fine but could not be stored now (store error): the source keeps it
    /// and tries again later. Never a reason to quarantine the page.
    Deferred {
        /// Why, in one line.
        reason: String,
    },
}
