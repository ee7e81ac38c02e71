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
