//! `kind = "http"`: the keys only a listing-page poller takes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{HumanDuration, Secret, SourceUrl, DEFAULT_MAX_SIZE};

/// An HTTP source's own keys. Any other key is refused when the config is read, so a
/// key meant for a drop folder (`settle`, `path`) cannot pass silently.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// The listing page URL (http or https); `${NAME}` references are expanded.
    pub url: Spanned<SourceUrl>,
    /// Fetch interval, at least a second.
    #[serde(default = "default_every")]
    pub every: HumanDuration,
    /// Random extra delay added to each interval, up to this much (default: a tenth of
    /// `every`).
    #[serde(default)]
    pub jitter: Option<HumanDuration>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// User-Agent (default `lookout/<version>`).
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// Total request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Largest body accepted, after decompression, in bytes.
    #[serde(default = "default_max_size")]
    pub max_body_size: u64,
    /// Most redirects followed.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: usize,
    /// Longest backoff after repeated failures.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// Whether the first successful fetch raises alerts (default: it only fills the feed).
    #[serde(default)]
    pub alert_on_first: bool,
}

fn default_every() -> HumanDuration {
    HumanDuration(Duration::from_secs(30 * 60))
}
fn default_connect_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_max_size() -> u64 {
    DEFAULT_MAX_SIZE
}
fn default_max_redirects() -> usize {
    5
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(6 * 3600))
}
