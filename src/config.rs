//! The TOML configuration: structs, defaults, validation and `${ENV}` secrets.
//!
//! The config is the user interface, so every error names the file, line, column and
//! key at fault. Shape checks (unknown keys, bad values, bad durations) come out of the
//! TOML deserializer with their span; cross-checks (a rule naming an unknown notifier,
//! a folder source without a path) carry the span of the field they are about.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::Spanned;

use crate::publish::FeedFormat;

/// The configuration `lookout run` uses when given no `--config`.
pub const DEFAULT_CONFIG: &str = r#"
state_dir = "./lookout-data"

[server]
listen = "127.0.0.1:8080"
base_url = "http://127.0.0.1:8080"

[feed]
title = "lookout"
max_items = 500

[[source]]
name = "drop"
kind = "folder"
path = "./drop"
format = "auto"
after = "move"
"#;

/// Default limit on a dropped file or fetched body: 32 MiB.
pub const DEFAULT_MAX_SIZE: u64 = 32 * 1024 * 1024;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML, or a key or value is wrong; located in the file.
    #[error("{file}:{line}:{column}: {key}{message}")]
    Invalid {
        /// The config file (or `<default>`).
        file: String,
        /// 1-based line of the fault.
        line: usize,
        /// 1-based column of the fault.
        column: usize,
        /// "key `x` in [[source]] #2: " or empty when no key applies.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A whole lookout configuration, validated.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where the SQLite database and the rendered feeds live.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// The HTTP server that serves feeds, health and the status page.
    #[serde(default)]
    pub server: ServerConfig,
    /// Feed channel settings.
    #[serde(default)]
    pub feed: FeedConfig,
    /// Where pages come from.
    #[serde(default, rename = "source")]
    pub sources: Vec<SourceConfig>,
    /// Keyword alert rules.
    #[serde(default, rename = "alert")]
    pub alerts: Vec<AlertRuleConfig>,
    /// Where alert matches are delivered.
    #[serde(default, rename = "notifier")]
    pub notifiers: Vec<NotifierConfig>,
    /// Politeness shared by every HTTP source.
    #[serde(default)]
    pub http: HttpConfig,
}

/// `[http]`: settings shared by all HTTP sources.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Least time between two requests to the same host (and port), whichever
    /// sources make them. `"0s"` for hosts you run yourself.
    #[serde(default = "default_min_host_gap")]
    pub min_host_gap: HumanDuration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            min_host_gap: default_min_host_gap(),
        }
    }
}

/// `[server]`: the listening socket and how feeds link back to it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Socket to listen on; loopback unless configured otherwise.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Public base URL for absolute links in feeds (`atom:link rel="self"`, OPML).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Optional access token required on everything but `/healthz`.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Most client connections open at once (default: derived from the open-file
    /// limit, leaving a reserve for the store, drop folders and outgoing requests).
    #[serde(default)]
    pub max_connections: Option<usize>,
    /// Longest wait for a request's headers, an idle keep-alive connection's next
    /// request included; then the connection is closed.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: HumanDuration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            base_url: None,
            token: None,
            max_connections: None,
            header_timeout: default_header_timeout(),
        }
    }
}

/// `[feed]`: channel metadata and size.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// Channel title of the all-items feed; per-source feeds append the source name.
    #[serde(default = "default_feed_title")]
    pub title: String,
    /// Most items a feed holds, newest first.
    #[serde(default = "default_max_items")]
    pub max_items: usize,
    /// Whether feeds are also written under `state_dir/feeds/`.
    #[serde(default = "yes")]
    pub write_files: bool,
    /// Which formats are written as files: RSS alone by default (every format is
    /// always served over HTTP).
    #[serde(default = "default_file_formats")]
    pub file_formats: Vec<FeedFormat>,
    /// Which date dates items: `"appeared"` (the default: when the listing shows the
    /// item appeared, else when lookout first saw it) or `"published"` (the thing's own
    /// publication date, such as a paper's arXiv date).
    #[serde(default)]
    pub date: crate::feed::FeedDate,
}

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            title: default_feed_title(),
            max_items: default_max_items(),
            write_files: true,
            file_formats: default_file_formats(),
            date: crate::feed::FeedDate::default(),
        }
    }
}

/// The kinds of source lookout can take pages from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// A watched drop folder.
    Folder,
    /// A listing page fetched over HTTP on a schedule.
    Http,
}

/// What happens to a dropped file once ingested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterIngest {
    /// Move it to `processed/`.
    #[default]
    Move,
    /// Leave it where it is (its hash stops it being ingested twice).
    Keep,
    /// Delete it.
    Delete,
}

/// `[[source]]`: one place pages come from. Fields that do not apply to the kind are refused.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name; used in feed URLs (`/feeds/{name}.xml`) and rules.
    pub name: Spanned<String>,
    /// `folder` or `http`.
    pub kind: Spanned<SourceKind>,
    /// Page format: `auto` or a named format.
    #[serde(default = "default_format")]
    pub format: Spanned<String>,
    /// CSS selectors for `format = "selectors"`.
    #[serde(default)]
    pub selectors: Option<SelectorsConfig>,
    /// Folder: the directory to watch.
    #[serde(default)]
    pub path: Option<Spanned<PathBuf>>,
    /// Folder: what to do with a file after ingesting it.
    #[serde(default)]
    pub after: AfterIngest,
    /// Folder: largest file accepted, in bytes.
    #[serde(default = "default_max_size")]
    pub max_file_size: u64,
    /// Folder: how long size and mtime must stay unchanged before a file is read.
    #[serde(default = "default_settle")]
    pub settle: HumanDuration,
    /// HTTP: the listing page URL; `${NAME}` references are expanded.
    #[serde(default)]
    pub url: Option<Spanned<SourceUrl>>,
    /// HTTP: fetch interval.
    #[serde(default = "default_every")]
    pub every: HumanDuration,
    /// HTTP: random extra delay added to each interval, up to this much (default: a tenth of `every`).
    #[serde(default)]
    pub jitter: Option<HumanDuration>,
    /// HTTP: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// HTTP: User-Agent (default `lookout/<version>`).
    #[serde(default)]
    pub user_agent: Option<String>,
    /// HTTP: connect timeout.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
    /// HTTP: total request timeout.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// HTTP: largest body accepted, after decompression, in bytes.
    #[serde(default = "default_max_size")]
    pub max_body_size: u64,
    /// HTTP: most redirects followed.
    #[serde(default = "default_max_redirects")]
    pub max_redirects: usize,
    /// HTTP: longest backoff after repeated failures.
    #[serde(default = "default_max_backoff")]
    pub max_backoff: HumanDuration,
    /// HTTP: whether the first successful fetch raises alerts (default: it only fills the feed).
    #[serde(default)]
    pub alert_on_first: bool,
}

/// `[source.selectors]`: a generic listing page described by CSS selectors.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SelectorsConfig {
    /// Selects each entry's element.
    pub item: String,
    /// Within an item: the title element.
    pub title: String,
    /// Within an item: the link element (its `href`); default: the title element or its first `a`.
    #[serde(default)]
    pub link: Option<String>,
    /// Within an item: the summary element.
    #[serde(default)]
    pub summary: Option<String>,
    /// Within an item: the date element (text, or its `datetime` attribute).
    #[serde(default)]
    pub date: Option<String>,
    /// chrono format of the date text, e.g. `"%d %B %Y"`; default: common formats are tried.
    #[serde(default)]
    pub date_format: Option<String>,
    /// Within an item: the authors elements.
    #[serde(default)]
    pub authors: Option<String>,
}

/// Entry fields a rule can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    /// The entry title.
    Title,
    /// The summary text.
    Summary,
    /// Author names.
    Authors,
    /// The publisher or venue.
    Source,
}

/// `[[alert]]`: a keyword rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleConfig {
    /// Unique rule name; also the name of its feed (`/alerts/{name}.xml`).
    pub name: Spanned<String>,
    /// At least one must match (when given).
    #[serde(default)]
    pub any: Vec<String>,
    /// Every one must match.
    #[serde(default)]
    pub all: Vec<String>,
    /// None may match.
    #[serde(default)]
    pub none: Vec<String>,
    /// Regular expressions; each counts like an `any` keyword.
    #[serde(default)]
    pub regex: Vec<Spanned<String>>,
    /// Fields searched (default: title, summary, authors, source).
    #[serde(default)]
    pub fields: Option<Vec<Field>>,
    /// Source names the rule applies to (default: every source).
    #[serde(default)]
    pub sources: Option<Vec<Spanned<String>>>,
    /// Notifier names (default: `log`).
    #[serde(default)]
    pub notify: Option<Vec<Spanned<String>>>,
    /// Batch matches per notifier into one message per window.
    #[serde(default)]
    pub digest: Option<HumanDuration>,
}

/// The kinds of notifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// A structured log line.
    Log,
    /// HTTP POST of JSON (plain, Slack or Discord shaped).
    Webhook,
    /// Publish to an ntfy topic.
    Ntfy,
    /// SMTP mail.
    Email,
    /// Run a program (never through a shell).
    Command,
}

/// Body shape of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookTemplate {
    /// lookout's own JSON object.
    #[default]
    Json,
    /// Slack (and Mattermost) incoming webhook.
    Slack,
    /// Discord incoming webhook.
    Discord,
}

/// SMTP transport security.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (required).
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only for a relay on localhost.
    None,
}

/// `[[notifier]]`: one delivery target. Fields that do not apply to the kind are refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// Unique name, referenced by rules' `notify`.
    pub name: Spanned<String>,
    /// `log`, `webhook`, `ntfy`, `email` or `command`.
    pub kind: Spanned<NotifierKind>,
    /// Webhook: target URL (may hold a secret, so it is a [`Secret`]).
    #[serde(default)]
    pub url: Option<Secret>,
    /// Webhook: HMAC-SHA256 signing secret.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Webhook: body shape.
    #[serde(default)]
    pub template: WebhookTemplate,
    /// Webhook / ntfy: extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, Secret>,
    /// ntfy: server base URL (default `https://ntfy.sh`).
    #[serde(default)]
    pub server: Option<String>,
    /// ntfy: topic.
    #[serde(default)]
    pub topic: Option<String>,
    /// ntfy: access token.
    #[serde(default)]
    pub token: Option<Secret>,
    /// ntfy: tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// ntfy: priority 1-5.
    #[serde(default)]
    pub priority: Option<u8>,
    /// Email: SMTP host.
    #[serde(default)]
    pub host: Option<String>,
    /// Email: SMTP port (default by `tls`: 587, 465 or 25).
    #[serde(default)]
    pub port: Option<u16>,
    /// Email: transport security.
    #[serde(default)]
    pub tls: SmtpTls,
    /// Email: a PEM file of CA certificates to trust besides the system's, for a relay
    /// whose certificate a private CA signed.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Email: SMTP user name.
    #[serde(default)]
    pub username: Option<Secret>,
    /// Email: SMTP password.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Email: sender address.
    #[serde(default)]
    pub from: Option<String>,
    /// Email: recipient addresses.
    #[serde(default)]
    pub to: Vec<String>,
    /// Command: program to run (path or name on PATH), never through a shell.
    #[serde(default)]
    pub program: Option<PathBuf>,
    /// Command: arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Timeout of one delivery (request, SMTP session or command run).
    #[serde(default = "default_notify_timeout")]
    pub timeout: HumanDuration,
    /// Most deliveries per minute; further ones wait.
    #[serde(default)]
    pub rate_limit: Option<u32>,
    /// Attempts before a delivery is marked failed.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
}

/// A duration written the human way in the config ("30m", "1h 30m", "90s").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(text.trim())
            .map(HumanDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration {text:?} ({e}); write e.g. \"90s\", \"30m\", \"1h 30m\""
                ))
            })
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A config value that may be a secret: `${NAME}` is replaced by the environment
/// variable `NAME`, or else by the systemd credential `$CREDENTIALS_DIRECTORY/NAME`.
/// Its `Debug` never shows the value, so it cannot leak into logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps an already-resolved value (tests, command-line input).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand_secret(&raw)
            .map(Secret)
            .map_err(serde::de::Error::custom)
    }
}

/// An http source's `url`. `${NAME}` references are expanded as in a [`Secret`] (an
/// API key in a query string is common), and the text as configured is kept: it is
/// what `Display` and `Debug` show, and [`SourceUrl::redact`] puts the references back
/// into any text, so the expanded values never reach a log line, an error or a page.
#[derive(Clone, PartialEq, Eq)]
pub struct SourceUrl {
    configured: String,
    expanded: String,
    /// Each expanded value (non-empty) with the `${NAME}` it came from.
    values: Vec<(String, String)>,
}

impl SourceUrl {
    /// The URL as written in the config, references unexpanded: safe to show.
    pub fn configured(&self) -> &str {
        &self.configured
    }

    /// The URL to request, references expanded.
    pub fn expose(&self) -> &str {
        &self.expanded
    }

    /// `text` with every expanded value replaced by its `${NAME}` reference, so a URL
    /// the server redirected to (which may repeat the query) can be shown.
    pub fn redact(&self, text: &str) -> String {
        use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC};
        /// What `url::Url` escapes in a query.
        const QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>');
        let mut text = text.to_owned();
        for (value, reference) in &self.values {
            // As configured, and as a URL (ours after parsing, or a server's in a
            // redirect) may carry it: escaped as a query, as a form, or everything.
            let forms = [
                value.clone(),
                utf8_percent_encode(value, QUERY).to_string(),
                url::form_urlencoded::byte_serialize(value.as_bytes()).collect(),
                utf8_percent_encode(value, NON_ALPHANUMERIC).to_string(),
            ];
            for form in forms {
                text = text.replace(&form, reference);
            }
        }
        text
    }
}

impl fmt::Display for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.configured)
    }
}

impl fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SourceUrl").field(&self.configured).finish()
    }
}

impl<'de> Deserialize<'de> for SourceUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let configured = String::deserialize(d)?;
        let (expanded, references) = expand(&configured).map_err(serde::de::Error::custom)?;
        let mut values: Vec<(String, String)> = references
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| (value, format!("${{{name}}}")))
            .collect();
        // The longest first, so a value that contains another is replaced whole.
        values.sort_by_key(|(value, _)| std::cmp::Reverse(value.len()));
        Ok(SourceUrl {
            configured,
            expanded,
            values,
        })
    }
}

/// Replaces each `${NAME}` in `raw` from the environment or the systemd credentials
/// directory. The error names the variable, never a value.
fn expand_secret(raw: &str) -> Result<String, String> {
    expand(raw).map(|(expanded, _)| expanded)
}

/// [`expand_secret`], also returning each reference's name and value.
fn expand(raw: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut references = Vec::new();
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${...} reference".to_owned())?;
        let name = &after[..end];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        {
            return Err(format!("invalid variable name in ${{{name}}}"));
        }
        let value = lookup_secret(name)?;
        out.push_str(&value);
        references.push((name.to_owned(), value));
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok((out, references))
}

fn lookup_secret(name: &str) -> Result<String, String> {
    if let Ok(value) = std::env::var(name) {
        return Ok(value);
    }
    if let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY") {
        let path = Path::new(&dir).join(name);
        if let Ok(value) = std::fs::read_to_string(&path) {
            return Ok(value.trim_end_matches(['\r', '\n']).to_owned());
        }
    }
    Err(format!(
        "${{{name}}} is not set (neither an environment variable nor a systemd credential)"
    ))
}

fn yes() -> bool {
    true
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("./lookout-data")
}
fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}
fn default_header_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(10))
}
fn default_feed_title() -> String {
    "lookout".to_owned()
}
fn default_file_formats() -> Vec<FeedFormat> {
    vec![FeedFormat::Rss]
}
fn default_max_items() -> usize {
    500
}
fn default_format() -> Spanned<String> {
    Spanned::new(0..0, "auto".to_owned())
}
fn default_max_size() -> u64 {
    DEFAULT_MAX_SIZE
}
fn default_settle() -> HumanDuration {
    HumanDuration(Duration::from_millis(500))
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
fn default_max_redirects() -> usize {
    5
}
fn default_max_backoff() -> HumanDuration {
    HumanDuration(Duration::from_secs(6 * 3600))
}
fn default_min_host_gap() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_notify_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_max_attempts() -> u32 {
    8
}

/// Names of the page formats a source may ask for; `auto` sniffs the content.
pub const FORMAT_NAMES: &[&str] = &[
    "auto",
    "hf-papers",
    "aitopics",
    "arxiv",
    "feed",
    "selectors",
];

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// The embedded default configuration (what `lookout run` uses without `--config`).
    pub fn default_config() -> Config {
        // The embedded text is a constant checked by a unit test; failing here is a build bug.
        Config::parse(DEFAULT_CONFIG, "<default>").expect("embedded default config is valid")
    }

    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            locate(
                text,
                file,
                e.span().unwrap_or(0..0),
                e.message().trim_end().to_owned(),
            )
        })?;
        config
            .validate()
            .map_err(|(span, message)| locate(text, file, span, message))?;
        Ok(config)
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name.get_ref() == name)
    }

    /// Cross-field checks that the deserializer cannot make.
    fn validate(&self) -> Result<(), (Range<usize>, String)> {
        if self.feed.max_items == 0 {
            return Err((0..0, "[feed] max_items must be at least 1".into()));
        }
        if self.server.max_connections == Some(0) {
            return Err((0..0, "[server] max_connections must be at least 1".into()));
        }
        if self.server.header_timeout.0.is_zero() {
            return Err((0..0, "[server] header_timeout must be more than 0s".into()));
        }
        if let Some(base) = &self.server.base_url {
            url::Url::parse(base)
                .map_err(|e| (0..0, format!("[server] base_url {base:?}: {e}")))?;
        }
        let mut names = std::collections::HashSet::new();
        for source in &self.sources {
            let name = source.name.get_ref();
            check_name(name).map_err(|m| (source.name.span(), m))?;
            if !names.insert(name.as_str()) {
                return Err((
                    source.name.span(),
                    format!("duplicate source name {name:?}"),
                ));
            }
            let format = source.format.get_ref();
            if !FORMAT_NAMES.contains(&format.as_str()) {
                return Err((
                    source.format.span(),
                    format!(
                        "unknown format {format:?}; expected one of {}",
                        FORMAT_NAMES.join(", ")
                    ),
                ));
            }
            if format == "selectors" && source.selectors.is_none() {
                return Err((
                    source.format.span(),
                    "format \"selectors\" needs a [source.selectors] table".into(),
                ));
            }
            match source.kind.get_ref() {
                SourceKind::Folder => {
                    if source.path.is_none() {
                        return Err((
                            source.kind.span(),
                            format!("folder source {name:?} needs a `path`"),
                        ));
                    }
                    if let Some(url) = &source.url {
                        return Err((url.span(), "`url` applies to http sources only".into()));
                    }
                }
                SourceKind::Http => {
                    let Some(url) = &source.url else {
                        return Err((
                            source.kind.span(),
                            format!("http source {name:?} needs a `url`"),
                        ));
                    };
                    match url::Url::parse(url.get_ref().expose()) {
                        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                        Ok(u) => {
                            return Err((
                                url.span(),
                                format!("url scheme {:?} is not http or https", u.scheme()),
                            ))
                        }
                        Err(e) => return Err((url.span(), format!("invalid url: {e}"))),
                    }
                    if let Some(path) = &source.path {
                        return Err((path.span(), "`path` applies to folder sources only".into()));
                    }
                    if source.every.0 < Duration::from_secs(1) {
                        return Err((
                            0..0,
                            format!("source {name:?}: `every` must be at least 1s"),
                        ));
                    }
                }
            }
        }

        let mut notifier_names = std::collections::HashSet::from(["log"]);
        for n in &self.notifiers {
            let name = n.name.get_ref();
            check_name(name).map_err(|m| (n.name.span(), m))?;
            if !notifier_names.insert(name.as_str()) && name != "log" {
                return Err((n.name.span(), format!("duplicate notifier name {name:?}")));
            }
            let need = |present: bool, key: &str| {
                if present {
                    Ok(())
                } else {
                    Err((
                        n.kind.span(),
                        format!("{:?} notifier {name:?} needs `{key}`", n.kind.get_ref()),
                    ))
                }
            };
            match n.kind.get_ref() {
                NotifierKind::Log => {}
                NotifierKind::Webhook => need(n.url.is_some(), "url")?,
                NotifierKind::Ntfy => need(n.topic.is_some(), "topic")?,
                NotifierKind::Email => {
                    need(n.host.is_some(), "host")?;
                    need(n.from.is_some(), "from")?;
                    need(!n.to.is_empty(), "to")?;
                }
                NotifierKind::Command => need(n.program.is_some(), "program")?,
            }
            if let Some(p) = n.priority {
                if !(1..=5).contains(&p) {
                    return Err((
                        n.name.span(),
                        format!("notifier {name:?}: priority must be 1-5"),
                    ));
                }
            }
        }

        let mut rule_names = std::collections::HashSet::new();
        for rule in &self.alerts {
            let name = rule.name.get_ref();
            check_name(name).map_err(|m| (rule.name.span(), m))?;
            if !rule_names.insert(name.as_str()) {
                return Err((rule.name.span(), format!("duplicate alert name {name:?}")));
            }
            if rule.any.is_empty() && rule.all.is_empty() && rule.regex.is_empty() {
                return Err((
                    rule.name.span(),
                    format!("alert {name:?} needs at least one of `any`, `all` or `regex`"),
                ));
            }
            for r in &rule.regex {
                if let Err(e) = regex::Regex::new(r.get_ref()) {
                    return Err((r.span(), format!("alert {name:?}: bad regex: {e}")));
                }
            }
            for s in rule.sources.iter().flatten() {
                if !names.contains(s.get_ref().as_str()) {
                    return Err((
                        s.span(),
                        format!("alert {name:?}: unknown source {:?}", s.get_ref()),
                    ));
                }
            }
            for n in rule.notify.iter().flatten() {
                if !notifier_names.contains(n.get_ref().as_str()) {
                    return Err((
                        n.span(),
                        format!("alert {name:?}: unknown notifier {:?}", n.get_ref()),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Names appear in URLs and file names, so they are kept to a safe alphabet.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        || name.starts_with('.')
    {
        return Err(format!(
            "invalid name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        ));
    }
    Ok(())
}

/// Turns a byte span into file:line:column and the key written on that line.
fn locate(text: &str, file: &str, span: Range<usize>, message: String) -> ConfigError {
    let start = span.start.min(text.len());
    let before = &text[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    let line_text = text[line_start..].lines().next().unwrap_or("");
    let table = before
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.split('#').next().unwrap_or(l).trim().to_owned());
    let key = match line_text.split_once('=') {
        Some((k, _)) if !k.trim().starts_with('[') && !k.trim().is_empty() && span.end > 0 => {
            let k = k.trim();
            match &table {
                Some(t) => format!("key `{k}` in {t}: "),
                None => format!("key `{k}`: "),
            }
        }
        _ => String::new(),
    };
    ConfigError::Invalid {
        file: file.to_owned(),
        line: if span.end == 0 { 1 } else { line },
        column: if span.end == 0 { 1 } else { column },
        key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_config_is_valid() {
        let c = Config::default_config();
        assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.feed.max_items, 500);
        assert_eq!(c.sources.len(), 1);
        assert_eq!(c.sources[0].after, AfterIngest::Move);
    }

    #[test]
    fn unknown_key_is_refused_with_line_column_and_key() {
        let text = "state_dir = \"x\"\n[feed]\ntitle = \"t\"\nmax_itemz = 3\n";
        let err = Config::parse(text, "test.toml").unwrap_err().to_string();
        assert!(err.starts_with("test.toml:4:1:"), "{err}");
        assert!(err.contains("max_itemz"), "{err}");
    }

    #[test]
    fn bad_duration_names_its_key() {
        let text = "[[source]]\nname = \"a\"\nkind = \"http\"\nurl = \"http://127.0.0.1/\"\nevery = \"3 fortnights\"\n";
        let err = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(err.starts_with("c.toml:5:"), "{err}");
        assert!(err.contains("key `every` in [[source]]"), "{err}");
        assert!(err.contains("invalid duration"), "{err}");
    }

    #[test]
    fn folder_source_without_path_is_refused() {
        let text = "[[source]]\nname = \"a\"\nkind = \"folder\"\n";
        let err = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(err.contains("c.toml:3:"), "{err}");
        assert!(err.contains("needs a `path`"), "{err}");
    }

    #[test]
    fn rule_with_unknown_notifier_is_refused() {
        let text = "[[alert]]\nname = \"r\"\nany = [\"x\"]\nnotify = [\"nope\"]\n";
        let err = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(err.contains("c.toml:4:"), "{err}");
        assert!(err.contains("unknown notifier \"nope\""), "{err}");
    }

    #[test]
    fn bad_regex_is_reported_with_rule_and_position() {
        let text = "[[alert]]\nname = \"r\"\nregex = ['(unclosed']\n";
        let err = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(err.contains("c.toml:3:10"), "{err}");
        assert!(err.contains("alert \"r\": bad regex"), "{err}");
    }

    #[test]
    fn secrets_expand_from_env_and_never_debug_print() {
        std::env::set_var("LOOKOUT_TEST_SECRET_X", "hunter2");
        let text = "[server]\ntoken = \"${LOOKOUT_TEST_SECRET_X}\"\n";
        let c = Config::parse(text, "c.toml").unwrap();
        let token = c.server.token.unwrap();
        assert_eq!(token.expose(), "hunter2");
        assert!(!format!("{token:?}").contains("hunter2"));
    }

    #[test]
    fn source_urls_expand_references_and_show_them_unexpanded() {
        std::env::set_var("LOOKOUT_TEST_URL_KEY_Q", "k3y/with space");
        let text = "[[source]]\nname = \"a\"\nkind = \"http\"\n\
                    url = \"https://127.0.0.1/list?key=${LOOKOUT_TEST_URL_KEY_Q}\"\n";
        let c = Config::parse(text, "c.toml").unwrap();
        let url = c.sources[0].url.as_ref().unwrap().get_ref();
        assert_eq!(url.expose(), "https://127.0.0.1/list?key=k3y/with space");
        let configured = "https://127.0.0.1/list?key=${LOOKOUT_TEST_URL_KEY_Q}";
        assert_eq!(url.to_string(), configured);
        assert!(!format!("{url:?}").contains("k3y"));
        assert_eq!(
            url.redact("https://127.0.0.1/next?key=k3y%2Fwith+space&k=k3y/with space"),
            "https://127.0.0.1/next?key=${LOOKOUT_TEST_URL_KEY_Q}&k=${LOOKOUT_TEST_URL_KEY_Q}"
        );
        let parsed = url::Url::parse(url.expose()).unwrap();
        assert_eq!(url.redact(parsed.as_str()), configured);
    }

    #[test]
    fn missing_secret_is_refused_without_value() {
        let text = "[server]\ntoken = \"${LOOKOUT_TEST_NOT_SET_Y}\"\n";
        let err = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(err.contains("LOOKOUT_TEST_NOT_SET_Y"), "{err}");
        assert!(err.contains("c.toml:2:"), "{err}");
    }

    #[test]
    fn secrets_come_from_systemd_credentials() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("LOOKOUT_TEST_CRED_Z"), "s3cret\n").unwrap();
        // Only this test reads CREDENTIALS_DIRECTORY, and the variable name is unique.
        std::env::set_var("CREDENTIALS_DIRECTORY", dir.path());
        assert_eq!(
            expand_secret("a${LOOKOUT_TEST_CRED_Z}b").unwrap(),
            "as3cretb"
        );
    }
}
