//! The TOML configuration: structs, defaults, validation and `${ENV}` secrets.
//!
//! The config is the user interface, so every error names the file, line, column and
//! key at fault. Shape checks (unknown keys, bad values, bad durations) come out of the
//! TOML deserializer with their span; cross-checks (a rule naming an unknown notifier,
//! a folder source without a path) carry the span of the field they are about.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

pub use crate::alert::notifiers::{
    CommandConfig, EmailConfig, NtfyConfig, SmtpTls, WebhookConfig, WebhookTemplate,
};
use crate::feed::FeedFormat;
pub use crate::parse::selectors::SelectorsConfig;
pub use crate::sources::folder::{AfterIngest, FolderConfig};
pub use crate::sources::http::HttpSourceConfig;

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
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the SQLite database and the rendered feeds live.
    pub state_dir: PathBuf,
    /// The HTTP server that serves feeds, health and the status page.
    pub server: ServerConfig,
    /// Feed channel settings.
    pub feed: FeedConfig,
    /// Where pages come from (`[[source]]`).
    pub sources: Vec<SourceConfig>,
    /// Keyword alert rules (`[[alert]]`).
    pub alerts: Vec<AlertRuleConfig>,
    /// Where alert matches are delivered (`[[notifier]]`).
    pub notifiers: Vec<NotifierConfig>,
    /// Politeness shared by every HTTP source.
    pub http: HttpConfig,
    /// Interests learned from liked papers (`[[interest]]`).
    pub interests: Vec<InterestConfig>,
    /// Where items and alerts are kept (`[store]`): SQLite under `state_dir` unless a
    /// PostgreSQL URL is given.
    pub store: StoreConfig,
}

/// The file's keys other than `[[source]]` and `[[notifier]]`, which are read kind by
/// kind (see [`SourceConfig`]).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    feed: FeedConfig,
    #[serde(default, rename = "alert")]
    alerts: Vec<AlertRuleConfig>,
    #[serde(default)]
    http: HttpConfig,
    #[serde(default, rename = "interest")]
    interests: Vec<InterestConfig>,
    #[serde(default)]
    store: StoreConfig,
}

/// `[store]`: the database. Absent, lookout keeps its embedded SQLite file under
/// `state_dir`; `url = "postgres://…"` shares one PostgreSQL database between replicas.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// The PostgreSQL database (`postgres://user:${PASSWORD}@host/db?sslmode=require`),
    /// `${NAME}` references expanded as secrets; checked when the config is read.
    #[serde(default)]
    pub url: Option<StoreUrl>,
    /// This replica's name in its leases and claims, on `/healthz` and the status page
    /// (default: the host's name and the process id). Two replicas running at once
    /// must not share one.
    #[serde(default)]
    pub replica: Option<Spanned<String>>,
    /// How long a replica's source leases and delivery claims last unrenewed: a dead
    /// replica's work is taken over within this time (default 30s, at least 2s).
    #[serde(default)]
    pub lease: Option<Spanned<HumanDuration>>,
}

impl StoreConfig {
    /// The lease period in force: `lease`, else [`crate::store::postgres::LEASE_PERIOD`].
    pub fn lease_period(&self) -> Duration {
        self.lease
            .as_ref()
            .map_or(crate::store::postgres::LEASE_PERIOD, |l| l.get_ref().0)
    }

    /// The replica's configured name, if any.
    pub fn replica_name(&self) -> Option<&str> {
        self.replica.as_ref().map(|r| r.get_ref().as_str())
    }

    /// The checks of `[store]` the deserializer cannot make: `replica` and `lease`
    /// only with a PostgreSQL `url` (a SQLite store has one process and no leases), a
    /// name that fits a log line, and a lease of at least
    /// [`crate::store::postgres::MIN_LEASE_PERIOD`].
    fn check(&self) -> Result<(), Located> {
        let min = crate::store::postgres::MIN_LEASE_PERIOD;
        if self.url.is_none() {
            let key = self
                .replica
                .as_ref()
                .map(|r| (r.span(), "replica"))
                .or_else(|| self.lease.as_ref().map(|l| (l.span(), "lease")));
            if let Some((span, key)) = key {
                return Err((
                    span,
                    format!("`{key}` applies to replicas of a PostgreSQL store: set `url` too"),
                ));
            }
        }
        if let Some(name) = &self.replica {
            let text = name.get_ref();
            if text.is_empty() || text.len() > 64 || !text.chars().all(|c| c.is_ascii_graphic()) {
                return Err((
                    name.span(),
                    format!("invalid replica name {text:?}: use 1-64 printable ASCII characters without spaces"),
                ));
            }
        }
        if let Some(lease) = &self.lease {
            if lease.get_ref().0 < min {
                return Err((
                    lease.span(),
                    format!(
                        "`lease` must be at least {}: a replica renews its leases at a third of it",
                        HumanDuration(min)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A PostgreSQL URL: `${NAME}` references expanded, scheme and syntax checked. It
/// holds a password more often than not, so neither `Debug` nor an error shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreUrl(Secret);

impl StoreUrl {
    /// The URL to connect to, references expanded.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StoreUrl(***)")
    }
}

impl<'de> Deserialize<'de> for StoreUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Secret::deserialize(d)?;
        crate::store::postgres::check_url(text.expose()).map_err(serde::de::Error::custom)?;
        Ok(StoreUrl(text))
    }
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
    /// Where to listen: `host:port`, loopback unless configured otherwise; a host name
    /// is resolved at start.
    #[serde(default = "default_listen")]
    pub listen: Listen,
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

impl ServerConfig {
    /// The address feeds and messages link to, without a trailing slash: `base_url`,
    /// else `http://<listen>` (the daemon sets `base_url` to the bound address at start,
    /// so a port 0 becomes the real one).
    pub fn base(&self) -> String {
        match &self.base_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }
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

/// `[[source]]`: one place pages come from: the keys every kind takes, and the kind
/// with its own keys.
///
/// The table is tagged by `kind`, one typed variant per kind ([`SourceKind`]), each
/// variant's struct beside its code with `deny_unknown_fields`: a key that does not
/// apply to the kind (`settle` on an HTTP source) is refused when the file is read,
/// with its line and column. The tag is dispatched by [`Config::parse`] itself rather
/// than by serde's `#[serde(tag = "kind")]`, whose derive buffers the table and loses
/// the TOML spans every error here points with.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique name; used in feed URLs (`/feeds/{name}.xml`) and rules.
    pub name: Spanned<String>,
    /// Page format: `auto` or one of [`crate::parse::formats`].
    pub format: Spanned<String>,
    /// CSS selectors for `format = "selectors"` (refused with any other format).
    pub selectors: Option<SelectorsConfig>,
    /// The kind (`kind = "folder"` or `"http"`) and its own keys.
    pub kind: SourceKind,
}

/// The kinds of source lookout can take pages from, each with its own config.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// A watched drop folder.
    Folder(FolderConfig),
    /// A listing page fetched over HTTP on a schedule.
    Http(HttpSourceConfig),
}

impl SourceKind {
    /// The kind as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Folder(_) => "folder",
            SourceKind::Http(_) => "http",
        }
    }
}

impl SourceConfig {
    /// The source's name.
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The folder config, when this is a drop folder.
    pub fn folder(&self) -> Option<&FolderConfig> {
        match &self.kind {
            SourceKind::Folder(f) => Some(f),
            SourceKind::Http(_) => None,
        }
    }

    /// The HTTP config, when this is a polled listing page.
    pub fn http(&self) -> Option<&HttpSourceConfig> {
        match &self.kind {
            SourceKind::Http(h) => Some(h),
            SourceKind::Folder(_) => None,
        }
    }

    /// Reads one `[[source]]` table: the shared keys, then the kind's own.
    fn from_toml(table: Spanned<DeValue<'_>>) -> Result<SourceConfig, Located> {
        let tagged = Tagged::split(table, "source", &["name", "format", "selectors"])?;
        let common: SourceCommon = tagged.common()?;
        let name = common.name.get_ref().clone();
        let kind = match tagged.kind.get_ref().as_str() {
            "folder" => SourceKind::Folder(tagged.own("folder source", &name)?),
            "http" => {
                let every = tagged.span_of("every");
                let headers = tagged.span_of("headers");
                let user_agent = tagged.span_of("user_agent");
                let http: HttpSourceConfig = tagged.own("http source", &name)?;
                check_http_source(&http, every, headers, user_agent)?;
                SourceKind::Http(http)
            }
            other => {
                return Err((
                    tagged.kind.span(),
                    format!("unknown source kind {other:?}; expected folder or http"),
                ))
            }
        };
        let source = SourceConfig {
            name: common.name,
            format: common.format,
            selectors: common.selectors.map(Spanned::into_inner),
            kind,
        };
        check_format(&source, tagged.span_of("selectors"))?;
        Ok(source)
    }
}

/// The keys every source kind takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceCommon {
    name: Spanned<String>,
    #[serde(default = "default_format")]
    format: Spanned<String>,
    #[serde(default)]
    selectors: Option<Spanned<SelectorsConfig>>,
}

/// An HTTP source's checks the deserializer cannot make: `every` at least a second;
/// header names and values (and the user agent) that HTTP can carry, so a bad one is
/// refused here and not at the first fetch. A value is never quoted: it may be a secret.
fn check_http_source(
    http: &HttpSourceConfig,
    every: Range<usize>,
    headers: Range<usize>,
    user_agent: Range<usize>,
) -> Result<(), Located> {
    if http.every.0 < Duration::from_secs(1) {
        return Err((every, "`every` must be at least 1s".into()));
    }
    match header_map(&http.headers) {
        Err(BadHeader::Name(name)) => {
            return Err((
                headers,
                format!("header name {name:?} is not a valid HTTP header name"),
            ));
        }
        Err(BadHeader::Value(name)) => {
            return Err((
                headers,
                format!("the value of header {name:?} holds characters HTTP cannot carry (a control character or a line break)"),
            ));
        }
        Ok(_) => {}
    }
    if let Some(agent) = &http.user_agent {
        if http::HeaderValue::from_str(agent).is_err() {
            return Err((
                user_agent,
                "`user_agent` holds characters HTTP cannot carry (a control character or a line break)".into(),
            ));
        }
    }
    Ok(())
}

/// The format is one lookout knows; `selectors` comes with its table, and only with it;
/// every selector compiles and the `date_format` is one chrono can read.
fn check_format(source: &SourceConfig, selectors_span: Range<usize>) -> Result<(), Located> {
    let format = source.format.get_ref();
    let names = format_names();
    if !names.contains(&format.as_str()) {
        return Err((
            source.format.span(),
            format!(
                "unknown format {format:?}; expected one of {}",
                names.join(", ")
            ),
        ));
    }
    match (&source.selectors, format.as_str()) {
        (None, "selectors") => Err((
            source.format.span(),
            "format \"selectors\" needs a [source.selectors] table".into(),
        )),
        (Some(_), f) if f != "selectors" => Err((
            selectors_span,
            format!("`selectors` applies to format \"selectors\" only, not {f:?}"),
        )),
        (Some(selectors), _) => selectors
            .check()
            .map_err(|message| (selectors_span, message)),
        (None, _) => Ok(()),
    }
}

/// `format = "..."` names a source may use: `auto` (sniff the page), then every format
/// [`crate::parse::formats`] knows.
pub fn format_names() -> Vec<&'static str> {
    std::iter::once("auto")
        .chain(crate::parse::formats().iter().map(|f| f.name()))
        .collect()
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

/// `[[interest]]`: papers like the ones in a likes file, ranked by a model learned from
/// it (see [`crate::alert::interest`]); its feed is `/interests/{name}.xml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InterestConfig {
    /// Unique interest name; also the name of its feed.
    pub name: Spanned<String>,
    /// The likes file: BibTeX, CSL-JSON, or one arXiv id, DOI or title a line.
    /// `${NAME}` references are expanded, a leading `~/` is the home directory, and a
    /// relative path is taken from the config file's directory. Re-read when it changes.
    pub likes: Spanned<String>,
    /// `likes` resolved (see [`InterestConfig::likes_path`]).
    #[serde(skip)]
    likes_path: PathBuf,
    /// Source names the interest ranks (default: every source).
    #[serde(default)]
    pub sources: Option<Vec<Spanned<String>>>,
    /// Feed and alert threshold (default [`crate::alert::interest::DEFAULT_MIN_SCORE`]).
    #[serde(default)]
    pub min_score: Option<Spanned<f32>>,
    /// Notifier names (default: `log`; `[]`: the feed only).
    #[serde(default)]
    pub notify: Option<Vec<Spanned<String>>>,
    /// Batch matches per notifier into one message per window.
    #[serde(default)]
    pub digest: Option<Spanned<HumanDuration>>,
}

impl InterestConfig {
    /// The interest's name.
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// The likes file: `${NAME}` references expanded, `~/` from `$HOME`, and a relative
    /// path joined to the config file's directory (resolved when the config is read).
    pub fn likes_path(&self) -> PathBuf {
        self.likes_path.clone()
    }

    /// Resolves `likes` into `likes_path` against the config file's directory `dir`.
    fn resolve_likes(&mut self, dir: &Path) -> Result<(), Located> {
        let name = self.name.get_ref();
        let raw = expand_secret(self.likes.get_ref())
            .map_err(|m| (self.likes.span(), format!("interest {name:?}: {m}")))?;
        if raw.trim().is_empty() {
            return Err((
                self.likes.span(),
                format!("interest {name:?}: `likes` is empty"),
            ));
        }
        let path = match (raw.strip_prefix("~/"), std::env::var_os("HOME")) {
            (Some(rest), Some(home)) => Path::new(&home).join(rest),
            _ => PathBuf::from(raw),
        };
        self.likes_path = if path.is_relative() {
            dir.join(path)
        } else {
            path
        };
        Ok(())
    }

    /// The threshold in force: `min_score`, else the model's calibrated default.
    pub fn threshold(&self) -> f32 {
        self.min_score
            .as_ref()
            .map_or(crate::alert::interest::DEFAULT_MIN_SCORE, |m| *m.get_ref())
    }

    /// Whether the interest ranks items of `source`.
    pub fn covers(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|s| s.iter().any(|n| n.get_ref() == source))
    }

    /// Notifiers a match goes to, deduplicated: `log` when `notify` is absent.
    pub fn notifiers(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.notify {
            Some(names) => names.iter().map(|n| n.get_ref().clone()).collect(),
            None => vec!["log".to_owned()],
        };
        let mut seen = std::collections::HashSet::new();
        names.retain(|n| seen.insert(n.clone()));
        names
    }

    /// The digest window in seconds, if any.
    pub fn digest_secs(&self) -> Option<u64> {
        self.digest.as_ref().map(|d| d.get_ref().0.as_secs().max(1))
    }
}

/// The interests' checks across tables: unique names, known sources and notifiers, a
/// digest of at least a second, a threshold that is a number, and a likes file that
/// reads and names a paper (so a typo in its path, or an export with nothing in it yet,
/// is refused here, not found at the first training).
fn check_interests(
    interests: &[InterestConfig],
    sources: &std::collections::HashSet<&str>,
    notifiers: &std::collections::HashSet<&str>,
) -> Result<(), Located> {
    let mut seen = std::collections::HashSet::new();
    for interest in interests {
        let name = interest.name.get_ref();
        check_name(name).map_err(|m| (interest.name.span(), m))?;
        if !seen.insert(name.as_str()) {
            return Err((
                interest.name.span(),
                format!("duplicate interest name {name:?}"),
            ));
        }
        for s in interest.sources.iter().flatten() {
            if !sources.contains(s.get_ref().as_str()) {
                return Err((
                    s.span(),
                    format!("interest {name:?}: unknown source {:?}", s.get_ref()),
                ));
            }
        }
        for n in interest.notify.iter().flatten() {
            if !notifiers.contains(n.get_ref().as_str()) {
                return Err((
                    n.span(),
                    format!("interest {name:?}: unknown notifier {:?}", n.get_ref()),
                ));
            }
        }
        if let Some(digest) = &interest.digest {
            if digest.get_ref().0 < Duration::from_secs(1) {
                return Err((
                    digest.span(),
                    format!("interest {name:?}: `digest` must be at least 1s"),
                ));
            }
        }
        if let Some(min) = &interest.min_score {
            // Scores are percentiles: 0 passes everything, above 1 nothing.
            if !(0.0..=1.0).contains(min.get_ref()) {
                return Err((
                    min.span(),
                    format!("interest {name:?}: `min_score` must be between 0 and 1"),
                ));
            }
        }
        let path = interest.likes_path();
        // An empty file is refused too: the interest would never be trained.
        crate::alert::interest::read_likes(&path)
            .map_err(|e| (interest.likes.span(), format!("interest {name:?}: {e}")))?;
    }
    Ok(())
}

/// `[[notifier]]`: one delivery target: the keys every kind takes, and the kind with
/// its own keys. Tagged by `kind` like [`SourceConfig`], for the same reasons.
#[derive(Debug, Clone, PartialEq)]
pub struct NotifierConfig {
    /// Unique name, referenced by rules' `notify`.
    pub name: Spanned<String>,
    /// Timeout of one delivery (request, SMTP session or command run).
    pub timeout: HumanDuration,
    /// Most deliveries per minute; further ones wait.
    pub rate_limit: Option<u32>,
    /// Attempts before a delivery is marked failed.
    pub max_attempts: u32,
    /// The kind and its own keys.
    pub kind: NotifierKind,
}

/// The kinds of notifier, each with its own config (beside its code in
/// [`crate::alert::notifiers`]).
#[derive(Debug, Clone, PartialEq)]
pub enum NotifierKind {
    /// A structured log line; takes no keys of its own.
    Log,
    /// HTTP POST of JSON (plain, Slack or Discord shaped).
    Webhook(WebhookConfig),
    /// Publish to an ntfy topic.
    Ntfy(NtfyConfig),
    /// SMTP mail.
    Email(EmailConfig),
    /// Run a program (never through a shell).
    Command(CommandConfig),
}

impl NotifierKind {
    /// The kind as written in the config.
    pub fn name(&self) -> &'static str {
        match self {
            NotifierKind::Log => "log",
            NotifierKind::Webhook(_) => "webhook",
            NotifierKind::Ntfy(_) => "ntfy",
            NotifierKind::Email(_) => "email",
            NotifierKind::Command(_) => "command",
        }
    }
}

/// The keys every notifier kind takes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NotifierCommon {
    name: Spanned<String>,
    #[serde(default = "default_notify_timeout")]
    timeout: HumanDuration,
    #[serde(default)]
    rate_limit: Option<u32>,
    #[serde(default = "default_max_attempts")]
    max_attempts: u32,
}

/// A kind that takes no keys of its own (`log`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NoKeys {}

impl NotifierConfig {
    /// The notifier's name.
    pub fn name(&self) -> &str {
        self.name.get_ref()
    }

    /// Reads one `[[notifier]]` table: the shared keys, then the kind's own, then the
    /// checks of values the types alone do not make.
    fn from_toml(table: Spanned<DeValue<'_>>) -> Result<NotifierConfig, Located> {
        let tagged = Tagged::split(
            table,
            "notifier",
            &["name", "timeout", "rate_limit", "max_attempts"],
        )?;
        let common: NotifierCommon = tagged.common()?;
        let name = common.name.get_ref().clone();
        let not_empty = |present: bool, key: &str| {
            if present {
                Ok(())
            } else {
                Err((tagged.span_of(key), format!("`{key}` must not be empty")))
            }
        };
        let kind = match tagged.kind.get_ref().as_str() {
            "log" => {
                let NoKeys {} = tagged.own("log notifier", &name)?;
                NotifierKind::Log
            }
            "webhook" => NotifierKind::Webhook(tagged.own("webhook notifier", &name)?),
            "ntfy" => {
                let ntfy: NtfyConfig = tagged.own("ntfy notifier", &name)?;
                not_empty(!ntfy.topic.is_empty(), "topic")?;
                if ntfy.priority.is_some_and(|p| !(1..=5).contains(&p)) {
                    return Err((tagged.span_of("priority"), "priority must be 1-5".into()));
                }
                NotifierKind::Ntfy(ntfy)
            }
            "email" => {
                let email: EmailConfig = tagged.own("email notifier", &name)?;
                not_empty(!email.host.is_empty(), "host")?;
                not_empty(!email.from.is_empty(), "from")?;
                not_empty(!email.to.is_empty(), "to")?;
                NotifierKind::Email(email)
            }
            "command" => {
                let command: CommandConfig = tagged.own("command notifier", &name)?;
                not_empty(!command.program.as_os_str().is_empty(), "program")?;
                NotifierKind::Command(command)
            }
            other => {
                return Err((
                    tagged.kind.span(),
                    format!(
                        "unknown notifier kind {other:?}; expected log, webhook, ntfy, email or command"
                    ),
                ))
            }
        };
        Ok(NotifierConfig {
            name: common.name,
            timeout: common.timeout,
            rate_limit: common.rate_limit,
            max_attempts: common.max_attempts,
            kind,
        })
    }
}

/// A byte span of the config text and what is wrong there.
type Located = (Range<usize>, String);

/// A `[[source]]` or `[[notifier]]` table split by its `kind` tag into the keys every
/// kind takes and the kind's own, each half still carrying its TOML spans, so the
/// kind's struct (with `deny_unknown_fields`) refuses a key that is not its own at
/// that key's line and column.
struct Tagged<'i> {
    /// The whole table.
    span: Range<usize>,
    /// `kind = "..."`.
    kind: Spanned<String>,
    /// The keys every kind takes.
    common: DeTable<'i>,
    /// Everything else: the kind's own keys (or keys that do not apply to it).
    own: DeTable<'i>,
    /// Where each key's value is, for checks made after deserializing.
    spans: Vec<(String, Range<usize>)>,
}

impl<'i> Tagged<'i> {
    fn split(
        table: Spanned<DeValue<'i>>,
        what: &str,
        common_keys: &[&str],
    ) -> Result<Tagged<'i>, Located> {
        let span = table.span();
        let DeValue::Table(entries) = table.into_inner() else {
            return Err((span, format!("each [[{what}]] must be a table")));
        };
        let mut kind = None;
        let mut common = DeTable::new();
        let mut own = DeTable::new();
        let mut spans = Vec::new();
        for (key, value) in entries {
            spans.push((key.get_ref().to_string(), value.span()));
            if key.get_ref() == "kind" {
                let value_span = value.span();
                match value.get_ref().as_str() {
                    Some(k) => kind = Some(Spanned::new(value_span, k.to_owned())),
                    None => return Err((value_span, "`kind` must be a string".into())),
                }
            } else if common_keys.contains(&key.get_ref().as_ref()) {
                common.insert(key, value);
            } else {
                own.insert(key, value);
            }
        }
        let kind = kind.ok_or_else(|| (span.clone(), format!("[[{what}]] needs a `kind`")))?;
        Ok(Tagged {
            span,
            kind,
            common,
            own,
            spans,
        })
    }

    /// Where the value of `key` is, or the `kind` tag when the key is not written.
    fn span_of(&self, key: &str) -> Range<usize> {
        self.spans
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(|| self.kind.span(), |(_, span)| span.clone())
    }

    /// The shared keys, typed.
    fn common<T: for<'de> Deserialize<'de>>(&self) -> Result<T, Located> {
        let table = Spanned::new(self.span.clone(), DeValue::Table(self.common.clone()));
        T::deserialize(toml::de::ValueDeserializer::from(table)).map_err(|e| {
            (
                e.span().unwrap_or(self.span.clone()),
                e.message().to_owned(),
            )
        })
    }

    /// The kind's own keys, typed. A missing required key points at the `kind` tag and
    /// says which; a key the kind does not take points at itself.
    fn own<T: for<'de> Deserialize<'de>>(&self, kind: &str, name: &str) -> Result<T, Located> {
        let table = Spanned::new(self.span.clone(), DeValue::Table(self.own.clone()));
        T::deserialize(toml::de::ValueDeserializer::from(table)).map_err(|e| {
            let message = e.message();
            if let Some(key) = backticked(message, "missing field ") {
                return (self.kind.span(), format!("{kind} {name:?} needs a `{key}`"));
            }
            if let Some(key) = backticked(message, "unknown field ") {
                return (
                    e.span().unwrap_or_else(|| self.span_of(&key)),
                    format!("`{key}` does not apply to {} {kind}", article(kind)),
                );
            }
            (e.span().unwrap_or(self.span.clone()), message.to_owned())
        })
    }
}

/// The `name` of a serde message such as "missing field `name`".
fn backticked(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(key, _)| key.to_owned())
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

/// `[server] listen`: `host:port`, where the host is an IP address or a name resolved
/// when the daemon starts (`localhost:8080`). Shown as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    host: String,
    port: u16,
}

impl Listen {
    /// The addresses to bind, resolved now (a name may resolve to several, such as
    /// `::1` and `127.0.0.1` for `localhost`). Blocking: a name may ask the resolver.
    pub fn resolve(&self) -> std::io::Result<Vec<SocketAddr>> {
        use std::net::ToSocketAddrs;
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        Ok((host, self.port).to_socket_addrs()?.collect())
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl From<SocketAddr> for Listen {
    fn from(addr: SocketAddr) -> Listen {
        let host = match addr {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        };
        Listen {
            host,
            port: addr.port(),
        }
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl std::str::FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Listen, String> {
        if let Ok(addr) = text.parse::<SocketAddr>() {
            return Ok(Listen::from(addr));
        }
        let wrong =
            || format!("{text:?} is not host:port (e.g. \"127.0.0.1:8080\" or \"localhost:8080\")");
        let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
        let port = port.parse::<u16>().map_err(|_| wrong())?;
        // A host name; an IP address (even a bracketed IPv6 one) parsed above.
        let valid = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
        if !valid {
            return Err(wrong());
        }
        Ok(Listen {
            host: host.to_owned(),
            port,
        })
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A URL lookout sends to (a webhook, an ntfy server): `${NAME}` references expanded,
/// parsed, and `http` or `https` only, all checked when the config is read. It may hold
/// a credential (a Slack or Discord webhook's path is one), so neither `Debug` nor an
/// error shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct TargetUrl {
    text: Secret,
    url: url::Url,
}

impl TargetUrl {
    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The URL as configured, references expanded.
    pub fn expose(&self) -> &str {
        self.text.expose()
    }
}

impl fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TargetUrl({}://{}/…)",
            self.url.scheme(),
            self.url.host_str().unwrap_or("")
        )
    }
}

impl<'de> Deserialize<'de> for TargetUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = Secret::deserialize(d)?;
        // The error says what is wrong, never the value: it may be the credential.
        let url = url::Url::parse(text.expose())
            .map_err(|e| serde::de::Error::custom(format!("not a valid URL: {e}")))?;
        check_scheme(&url).map_err(serde::de::Error::custom)?;
        Ok(TargetUrl { text, url })
    }
}

/// Only `http` and `https` URLs with a host are fetched or posted to.
fn check_scheme(url: &url::Url) -> Result<(), String> {
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "url scheme {:?} is not http or https",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the url has no host".to_owned());
    }
    Ok(())
}

/// A configured header HTTP cannot carry; names the header, never its value (it may
/// be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadHeader {
    /// The name is not an HTTP header name.
    #[error("invalid header name {0:?}")]
    Name(String),
    /// The value holds a control character or a line break.
    #[error("invalid value for header {0:?}")]
    Value(String),
}

/// Configured extra headers (`headers = { … }` of an HTTP source or notifier) as a
/// header map, every value marked sensitive so it stays out of reqwest's and hyper's
/// Debug output. The one place such headers are checked, for sources and notifiers.
pub fn header_map(
    headers: &std::collections::BTreeMap<String, Secret>,
) -> Result<http::HeaderMap, BadHeader> {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        let header = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| BadHeader::Name(name.clone()))?;
        let mut value = http::HeaderValue::from_str(value.expose())
            .map_err(|_| BadHeader::Value(name.clone()))?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
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
        // Shown as configured: the expanded URL may hold a secret.
        let url = url::Url::parse(&expanded)
            .map_err(|e| serde::de::Error::custom(format!("invalid url {configured:?}: {e}")))?;
        check_scheme(&url).map_err(serde::de::Error::custom)?;
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
fn default_listen() -> Listen {
    Listen::from(SocketAddr::from(([127, 0, 0, 1], 8080)))
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
fn default_min_host_gap() -> HumanDuration {
    HumanDuration(Duration::from_secs(1))
}
fn default_notify_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_max_attempts() -> u32 {
    8
}

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

    /// Parses and validates config text; `file` names it in errors, and its directory
    /// is where relative likes paths are taken from (the working directory for
    /// `<default>`).
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let dir = match file {
            "<default>" => Path::new(""),
            file => Path::new(file).parent().unwrap_or(Path::new("")),
        };
        Config::from_text(text, dir).map_err(|(span, message)| locate(text, file, span, message))
    }

    fn from_text(text: &str, dir: &Path) -> Result<Config, Located> {
        let mut root = DeTable::parse(text).map_err(toml_error)?;
        // The kind-tagged tables are taken out first and read kind by kind.
        let sources = take_tables(root.get_mut(), "source")?;
        let notifiers = take_tables(root.get_mut(), "notifier")?;
        let mut doc =
            Document::deserialize(toml::de::Deserializer::from(root)).map_err(toml_error)?;
        for interest in &mut doc.interests {
            interest.resolve_likes(dir)?;
        }
        let config = Config {
            state_dir: doc.state_dir,
            server: doc.server,
            feed: doc.feed,
            sources: sources
                .into_iter()
                .map(SourceConfig::from_toml)
                .collect::<Result<_, _>>()?,
            alerts: doc.alerts,
            notifiers: notifiers
                .into_iter()
                .map(NotifierConfig::from_toml)
                .collect::<Result<_, _>>()?,
            http: doc.http,
            interests: doc.interests,
            store: doc.store,
        };
        config.validate()?;
        Ok(config)
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name.get_ref() == name)
    }

    /// The names of the configured sources, in config order.
    pub fn source_names(&self) -> Vec<&str> {
        self.sources.iter().map(SourceConfig::name).collect()
    }

    /// Checks across tables that no single table can make: unique names, rules that
    /// compile and name known sources and notifiers.
    fn validate(&self) -> Result<(), Located> {
        if self.feed.max_items == 0 {
            return Err((0..0, "[feed] max_items must be at least 1".into()));
        }
        if self.server.max_connections == Some(0) {
            return Err((0..0, "[server] max_connections must be at least 1".into()));
        }
        if self.server.header_timeout.0.is_zero() {
            return Err((0..0, "[server] header_timeout must be more than 0s".into()));
        }
        self.store.check()?;
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
        }

        let mut notifier_names = std::collections::HashSet::from(["log"]);
        for n in &self.notifiers {
            let name = n.name.get_ref();
            check_name(name).map_err(|m| (n.name.span(), m))?;
            if !notifier_names.insert(name.as_str()) && name != "log" {
                return Err((n.name.span(), format!("duplicate notifier name {name:?}")));
            }
        }

        let mut rule_names = std::collections::HashSet::new();
        for rule in &self.alerts {
            let name = rule.name.get_ref();
            check_name(name).map_err(|m| (rule.name.span(), m))?;
            if !rule_names.insert(name.as_str()) {
                return Err((rule.name.span(), format!("duplicate alert name {name:?}")));
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
        check_interests(&self.interests, &names, &notifier_names)?;
        // The rules are validated where they are compiled, and nowhere else.
        crate::alert::RuleSet::compile(&self.alerts).map_err(|e| self.rule_error(e))?;
        Ok(())
    }

    /// Where in the file a rule that does not compile is.
    fn rule_error(&self, error: crate::alert::RuleError) -> Located {
        use crate::alert::RuleError;
        let rule_span = |rule: &str| {
            self.alerts
                .iter()
                .find(|r| r.name.get_ref() == rule)
                .map_or(0..0, |r| r.name.span())
        };
        match &error {
            RuleError::BadRegex {
                rule, span, source, ..
            } => (span.clone(), format!("alert {rule:?}: bad regex: {source}")),
            RuleError::EmptyKeyword { rule, .. } | RuleError::NoCondition { rule } => {
                (rule_span(rule), error.to_string())
            }
            RuleError::Automaton(_) | RuleError::RegexSet(_) => (0..0, error.to_string()),
        }
    }
}

/// A TOML error as a span and its message.
fn toml_error(e: toml::de::Error) -> Located {
    (e.span().unwrap_or(0..0), e.message().trim_end().to_owned())
}

/// Takes the `[[key]]` tables out of the document.
fn take_tables<'i>(
    root: &mut DeTable<'i>,
    key: &str,
) -> Result<Vec<Spanned<DeValue<'i>>>, Located> {
    let Some(value) = root.remove(key) else {
        return Ok(Vec::new());
    };
    let span = value.span();
    match value.into_inner() {
        DeValue::Array(items) => Ok(items.iter().cloned().collect()),
        _ => Err((span, format!("write each {key} as a [[{key}]] table"))),
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

/// "a" or "an" before `noun` ("an email notifier", "a webhook notifier").
fn article(noun: &str) -> &'static str {
    match noun.chars().next() {
        Some('a' | 'e' | 'i' | 'o' | 'u') => "an",
        _ => "a",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_default_config_is_valid() {
        let c = Config::default_config();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.feed.max_items, 500);
        assert_eq!(c.sources.len(), 1);
        assert_eq!(
            c.sources[0].folder().map(|f| f.after),
            Some(AfterIngest::Move)
        );
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
        let url = c.sources[0].http().unwrap().url.get_ref();
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
    fn store_url_expands_its_secret_and_a_bad_one_is_refused_at_its_key() {
        std::env::set_var("LOOKOUT_TEST_PG_PASSWORD", "s3cret-pw");
        let text =
            "[store]\nurl = \"postgres://lookout:${LOOKOUT_TEST_PG_PASSWORD}@127.0.0.1/lookout\"\n";
        let config = Config::parse(text, "t.toml").expect("valid");
        let url = config.store.url.expect("a store url");
        assert_eq!(
            url.expose(),
            "postgres://lookout:s3cret-pw@127.0.0.1/lookout"
        );
        assert!(!format!("{url:?}").contains("s3cret"));
        assert_eq!(Config::parse("", "t.toml").expect("valid").store.url, None);
        for bad in ["mysql://u:pw@h/db", "postgres://u:pw@h:notaport/db"] {
            let text = format!("state_dir = \"x\"\n[store]\nurl = \"{bad}\"\n");
            let err = Config::parse(&text, "t.toml").expect_err(bad).to_string();
            assert!(err.contains("t.toml:3"), "{err}");
            assert!(err.contains("url"), "{err}");
            assert!(!err.contains("pw"), "the password is not shown: {err}");
        }
    }

    #[test]
    fn store_replica_and_lease_are_read_and_bad_ones_refused_at_their_key() {
        let url = "[store]\nurl = \"postgres://lookout@127.0.0.1/lookout\"\n";
        let config = Config::parse(
            &format!("{url}replica = \"a-1\"\nlease = \"3s\"\n"),
            "t.toml",
        )
        .expect("valid");
        assert_eq!(config.store.replica_name(), Some("a-1"));
        assert_eq!(config.store.lease_period(), Duration::from_secs(3));
        let config = Config::parse(url, "t.toml").expect("valid");
        assert_eq!(config.store.replica_name(), None);
        assert_eq!(config.store.lease_period(), Duration::from_secs(30));
        for (text, line, key, says) in [
            (format!("{url}lease = \"1s\"\n"), 3, "lease", "at least 2s"),
            (
                format!("{url}lease = \"soon\"\n"),
                3,
                "lease",
                "invalid duration",
            ),
            (
                format!("{url}replica = \"a b\"\n"),
                3,
                "replica",
                "invalid replica name",
            ),
            (
                format!("{url}replica = \"\"\n"),
                3,
                "replica",
                "invalid replica name",
            ),
            (
                "[store]\nlease = \"30s\"\n".to_owned(),
                2,
                "lease",
                "set `url` too",
            ),
            (
                "[store]\nreplica = \"a\"\n".to_owned(),
                2,
                "replica",
                "set `url` too",
            ),
        ] {
            let err = Config::parse(&text, "t.toml").expect_err(&text).to_string();
            assert!(err.starts_with(&format!("t.toml:{line}:")), "{err}");
            assert!(err.contains(key), "{err}");
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn missing_secret_is_refused_without_value() {
        let text = "[server]\ntoken = \"${LOOKOUT_TEST_NOT_SET_Y}\"\n";
        let err = Config::parse(text, "c.toml").unwrap_err().to_string();
        assert!(err.contains("LOOKOUT_TEST_NOT_SET_Y"), "{err}");
        assert!(err.contains("c.toml:2:"), "{err}");
    }

    /// The error of `text`, as `c.toml:LINE:COL: ...`.
    fn refused(text: &str) -> String {
        Config::parse(text, "c.toml").unwrap_err().to_string()
    }

    #[test]
    fn a_key_of_another_kind_is_refused_at_its_line_with_its_name() {
        let err = refused(
            "[[source]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://example.org/\"\nsettle = \"1s\"\n",
        );
        assert!(
            err.starts_with("c.toml:5:1: key `settle` in [[source]]"),
            "{err}"
        );
        assert!(err.contains("does not apply to a http source"), "{err}");

        let err = refused(
            "[[notifier]]\nname = \"m\"\nkind = \"email\"\nhost = \"smtp.example.org\"\n\
             from = \"a@example.org\"\nto = [\"b@example.org\"]\ntopic = \"x\"\n",
        );
        assert!(
            err.starts_with("c.toml:7:1: key `topic` in [[notifier]]"),
            "{err}"
        );
        assert!(err.contains("does not apply to an email notifier"), "{err}");

        let err =
            refused("[[source]]\nname = \"d\"\nkind = \"folder\"\npath = \"d\"\nevery = \"1m\"\n");
        assert!(err.starts_with("c.toml:5:1: key `every`"), "{err}");
    }

    #[test]
    fn a_required_key_is_checked_once_where_the_kind_is_named() {
        let err = refused("[[notifier]]\nname = \"n\"\nkind = \"ntfy\"\n");
        assert!(err.starts_with("c.toml:3:8:"), "{err}");
        assert!(err.contains("ntfy notifier \"n\" needs a `topic`"), "{err}");
        let err = refused("[[notifier]]\nname = \"n\"\nkind = \"ntfy\"\ntopic = \"\"\n");
        assert!(err.starts_with("c.toml:4:9: key `topic`"), "{err}");
        let err = refused("[[notifier]]\nname = \"n\"\nkind = \"pager\"\n");
        assert!(err.starts_with("c.toml:3:8:"), "{err}");
        assert!(err.contains("unknown notifier kind \"pager\""), "{err}");
    }

    #[test]
    fn webhook_and_ntfy_urls_must_be_http_or_https_and_are_never_shown() {
        for (url, why) in [
            ("notaurl", "not a valid URL"),
            (
                "ftp://hooks.example.org/T0K3N",
                "url scheme \"ftp\" is not http or https",
            ),
        ] {
            let err = refused(&format!(
                "[[notifier]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"{url}\"\n"
            ));
            assert!(
                err.starts_with("c.toml:4:7: key `url` in [[notifier]]"),
                "{err}"
            );
            assert!(err.contains(why), "{err}");
            assert!(!err.contains("T0K3N"), "the URL may be a credential: {err}");
        }
        let err = refused(
            "[[notifier]]\nname = \"n\"\nkind = \"ntfy\"\ntopic = \"t\"\nserver = \"gopher://x\"\n",
        );
        assert!(err.starts_with("c.toml:5:10: key `server`"), "{err}");
        let ok = "[[notifier]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"https://hooks.example.org/x\"\n";
        assert!(Config::parse(ok, "c.toml").is_ok());
    }

    #[test]
    fn selectors_and_date_formats_are_compiled_when_the_config_is_read() {
        let source = "[[source]]\nname = \"s\"\nkind = \"http\"\nurl = \"https://example.org/\"\n\
                      format = \"selectors\"\n";
        let err = refused(&format!(
            "{source}selectors = {{ item = \"article[\", title = \"h2\" }}\n"
        ));
        assert!(err.starts_with("c.toml:6:13: key `selectors`"), "{err}");
        assert!(
            err.contains("selectors.item: invalid CSS selector"),
            "{err}"
        );
        let err = refused(&format!(
            "{source}selectors = {{ item = \"a\", title = \"h2\", date_format = \"%d %Q\" }}\n"
        ));
        assert!(
            err.contains("selectors.date_format \"%d %Q\" is not a chrono format"),
            "{err}"
        );
        let ok = format!(
            "{source}selectors = {{ item = \"a\", title = \"h2\", date_format = \"%d %B %Y\" }}\n"
        );
        assert!(Config::parse(&ok, "c.toml").is_ok());
        // Selectors on a source that does not use them are a mistake, not a no-op.
        let err = refused(
            "[[source]]\nname = \"s\"\nkind = \"folder\"\npath = \"d\"\n\
             selectors = { item = \"a\", title = \"h2\" }\n",
        );
        assert!(err.starts_with("c.toml:5:13: key `selectors`"), "{err}");
    }

    #[test]
    fn formats_are_the_parsers_own_names() {
        let names = format_names();
        assert_eq!(names[0], "auto");
        for format in crate::parse::formats() {
            assert!(names.contains(&format.name()), "{}", format.name());
        }
        let err = refused(
            "[[source]]\nname = \"d\"\nkind = \"folder\"\npath = \"d\"\nformat = \"rss\"\n",
        );
        assert!(err.starts_with("c.toml:5:10: key `format`"), "{err}");
    }

    #[test]
    fn every_below_a_second_points_at_its_key() {
        let err = refused(
            "[[source]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://example.org/\"\nevery = \"0s\"\n",
        );
        assert!(
            err.starts_with("c.toml:5:9: key `every` in [[source]]"),
            "{err}"
        );
        assert!(err.contains("at least 1s"), "{err}");
    }

    #[test]
    fn listen_takes_a_host_name_and_refuses_what_is_not_host_port() {
        let c = Config::parse("[server]\nlisten = \"localhost:8080\"\n", "c.toml").unwrap();
        assert_eq!(c.server.listen.to_string(), "localhost:8080");
        let resolved = c.server.listen.resolve().expect("localhost resolves");
        assert!(
            resolved
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8080),
            "{resolved:?}"
        );
        let c = Config::parse("[server]\nlisten = \"[::1]:9\"\n", "c.toml").unwrap();
        assert_eq!(c.server.listen.to_string(), "[::1]:9");
        for bad in ["localhost", "localhost:http", ":80", "a b:80"] {
            let err = refused(&format!("[server]\nlisten = \"{bad}\"\n"));
            assert!(
                err.starts_with("c.toml:2:10: key `listen` in [server]"),
                "{err}"
            );
            assert!(err.contains("is not host:port"), "{err}");
        }
    }

    #[test]
    fn an_unset_reference_in_a_source_url_is_refused_at_the_url() {
        let err = refused(
            "[[source]]\nname = \"a\"\nkind = \"http\"\nurl = \"https://x.org/?k=${LOOKOUT_TEST_UNSET_U}\"\n",
        );
        assert!(err.starts_with("c.toml:4:7: key `url`"), "{err}");
        assert!(err.contains("${LOOKOUT_TEST_UNSET_U} is not set"), "{err}");
    }

    #[test]
    fn rules_are_refused_where_they_are_compiled_at_the_rules_name() {
        let err = refused("[[alert]]\nname = \"r\"\nnone = [\"x\"]\n");
        assert!(
            err.starts_with("c.toml:2:8: key `name` in [[alert]]"),
            "{err}"
        );
        assert!(err.contains("needs at least one of"), "{err}");
        let err = refused("[[alert]]\nname = \"r\"\nany = [\" \"]\n");
        assert!(err.contains("empty keyword in `any`"), "{err}");
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

    #[test]
    fn an_interest_reads_with_its_defaults_and_names_its_likes_file_when_it_cannot_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let likes = dir.path().join("likes.txt");
        std::fs::write(&likes, "2401.00001\n").unwrap();
        let text = format!("[[interest]]\nname = \"c\"\nlikes = {likes:?}\n");
        let c = Config::parse(&text, "c.toml").unwrap();
        let i = &c.interests[0];
        assert_eq!(i.threshold(), crate::alert::interest::DEFAULT_MIN_SCORE);
        assert_eq!(i.notifiers(), ["log"]);
        assert!(i.covers("any source"));
        assert_eq!(i.digest_secs(), None);
        let err = refused(&format!(
            "{text}[[interest]]\nname = \"c\"\nlikes = \"x\"\n"
        ));
        assert!(err.contains("duplicate interest name"), "{err}");
        std::fs::remove_file(&likes).unwrap();
        let err = refused(&text);
        assert!(
            err.starts_with("c.toml:3:9: key `likes` in [[interest]]"),
            "{err}"
        );
        assert!(err.contains("cannot read likes file"), "{err}");
    }
}
