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

/// A page on its way into the pipeline, with the channel on which the daemon answers
/// once the page is ingested or refused. Sources act on the answer: the folder source
/// moves the file to `processed/` or `failed/`, the HTTP source's validators are
/// recorded only after the page is safely stored, so a crash in between never loses a
/// page.
#[derive(Debug)]
pub struct Capture {
    /// The page.
    pub page: Page,
    /// Where the outcome goes; the source may stop listening.
    pub reply: tokio::sync::oneshot::Sender<Outcome>,
    /// An HTTP source's fetch state as it stands once this page is stored: the
    /// pipeline records it right after the page (outcome `Ingested` or `Duplicate`),
    /// for a whole group of pages in one transaction instead of one per source.
    pub fetch_state: Option<crate::store::FetchState>,
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
