//! Where alert messages go: one file per kind of [`Notifier`], built from
//! `[[notifier]]` config, and [`Notifiers`], the set the outbox worker delivers through.
//!
//! A notifier is a plain struct over an enum of the five kinds rather than a trait
//! object: the set of kinds is closed (the config enum names them), and an enum lets
//! `send` be an ordinary `async fn` without boxing futures or pulling in a crate.
//!
//! Secrets ([`crate::config::Secret`]: webhook URLs, signing keys, tokens, SMTP
//! passwords) never reach a log line or an error: errors name the notifier, never its
//! URL, and HTTP errors have their URL stripped.

mod command;
mod email;
mod log;
mod ntfy;
mod webhook;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

use super::message::Message;
use crate::config::{Config, NotifierConfig, NotifierKind, Secret};

pub use command::CommandConfig;
pub use email::{EmailConfig, SmtpTls};
pub use ntfy::NtfyConfig;
pub use webhook::{WebhookConfig, WebhookTemplate};

/// Why a notifier could not be built or a message not delivered. Every variant names
/// the notifier; none carries a secret.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The notifier's configuration cannot be used (an unparsable URL, address or header).
    #[error("notifier {notifier:?}: invalid configuration: {reason}")]
    Config {
        /// The notifier.
        notifier: String,
        /// What is wrong, without the value when it may be secret.
        reason: String,
    },
    /// A delivery names a notifier that is not (or no longer) configured.
    #[error("notifier {notifier:?} is not configured")]
    Unknown {
        /// The missing notifier's name.
        notifier: String,
    },
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The HTTP request failed before a response (connect, TLS, timeout); the error's
    /// URL is stripped.
    #[error("notifier {notifier:?}: request failed: {source}")]
    Http {
        /// The notifier.
        notifier: String,
        /// reqwest's error, without its URL.
        source: reqwest::Error,
    },
    /// The receiver answered with a non-2xx status.
    #[error("notifier {notifier:?}: HTTP status {status}")]
    Status {
        /// The notifier.
        notifier: String,
        /// The status code.
        status: u16,
        /// The receiver's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The mail could not be built (bad address, ...).
    #[error("notifier {notifier:?}: cannot build the mail: {reason}")]
    Mail {
        /// The notifier.
        notifier: String,
        /// What lettre refused.
        reason: String,
    },
    /// The SMTP session failed.
    #[error("notifier {notifier:?}: SMTP: {source}")]
    Smtp {
        /// The notifier.
        notifier: String,
        /// lettre's error.
        source: lettre::transport::smtp::Error,
    },
    /// The command could not be started.
    #[error("notifier {notifier:?}: cannot run {program}: {source}")]
    Spawn {
        /// The notifier.
        notifier: String,
        /// The program as configured.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("notifier {notifier:?}: {program} failed ({status}){}", stderr_suffix(.stderr))]
    Exit {
        /// The notifier.
        notifier: String,
        /// The program as configured.
        program: String,
        /// Exit status as the OS describes it ("exit status: 3", "signal: 9").
        status: String,
        /// First non-empty line of its standard error.
        stderr: String,
    },
    /// The delivery took longer than the notifier's `timeout` (a command is killed).
    #[error("notifier {notifier:?}: timed out after {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The notifier.
        notifier: String,
        /// The configured timeout.
        timeout: Duration,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl NotifyError {
    /// Whether retrying cannot help: the SMTP relay refused the mail with a permanent
    /// (5xx) reply, or the mail could not even be built. A transient (4xx) reply, a
    /// timeout or a lost connection is worth retrying.
    pub fn is_permanent(&self) -> bool {
        match self {
            NotifyError::Smtp { source, .. } => source.is_permanent(),
            NotifyError::Mail { .. } => true,
            _ => false,
        }
    }

    /// How long the receiver asked us to wait before retrying (HTTP `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The kinds, each holding what it needs to send.
#[derive(Debug)]
enum Kind {
    Log,
    Webhook(webhook::Webhook),
    Ntfy(ntfy::Ntfy),
    Email(email::Email),
    Command(command::Command),
}

/// One configured delivery target.
#[derive(Debug)]
pub struct Notifier {
    name: String,
    timeout: Duration,
    max_attempts: u32,
    rate_limit: Option<u32>,
    kind: Kind,
}

impl Notifier {
    /// Builds a notifier from its config. `client` is the one HTTP client webhooks and
    /// ntfy share. Nothing is contacted yet.
    pub fn from_config(
        config: &NotifierConfig,
        client: &mut LazyClient,
    ) -> Result<Notifier, NotifyError> {
        let name = config.name.get_ref().clone();
        let kind = match &config.kind {
            NotifierKind::Log => Kind::Log,
            NotifierKind::Webhook(c) => {
                Kind::Webhook(webhook::Webhook::new(&name, c, &client.get()?)?)
            }
            NotifierKind::Ntfy(c) => Kind::Ntfy(ntfy::Ntfy::new(&name, c, &client.get()?)?),
            NotifierKind::Email(c) => Kind::Email(email::Email::new(&name, c, config.timeout.0)?),
            NotifierKind::Command(c) => Kind::Command(command::Command::new(c)),
        };
        Ok(Notifier {
            name,
            timeout: config.timeout.0,
            max_attempts: config.max_attempts.max(1),
            rate_limit: config.rate_limit,
            kind,
        })
    }

    /// The built-in `log` notifier, available even when not configured.
    pub fn log() -> Notifier {
        Notifier {
            name: "log".to_owned(),
            timeout: Duration::from_secs(30),
            max_attempts: 1,
            rate_limit: None,
            kind: Kind::Log,
        }
    }

    /// The notifier's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Attempts before a delivery is given up (at least 1).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// Most deliveries per minute, when limited.
    pub fn rate_limit(&self) -> Option<u32> {
        self.rate_limit
    }

    /// Delivers one message, within the notifier's timeout. A command still running at
    /// the timeout is killed (the future owning it is dropped, and it was spawned with
    /// `kill_on_drop`).
    pub async fn send(&self, msg: &Message) -> Result<(), NotifyError> {
        let send = async {
            match &self.kind {
                Kind::Log => {
                    log::send(&self.name, msg);
                    Ok(())
                }
                Kind::Webhook(w) => w.send(&self.name, msg, self.timeout).await,
                Kind::Ntfy(n) => n.send(&self.name, msg, self.timeout).await,
                Kind::Email(e) => e.send(&self.name, msg).await,
                Kind::Command(c) => c.send(&self.name, msg).await,
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(NotifyError::Timeout {
                notifier: self.name.clone(),
                timeout: self.timeout,
            }),
        }
    }
}

/// Every configured notifier plus the built-in `log`, and what the outbox worker needs
/// from the config to shape messages: the feed base URL and which rules are digests.
#[derive(Debug)]
pub struct Notifiers {
    by_name: HashMap<String, Notifier>,
    feed_base: String,
    digest_rules: HashSet<String>,
}

impl Notifiers {
    /// Builds every `[[notifier]]` of the config (and `log`). Fails on the first one
    /// that cannot be built.
    pub fn from_config(config: &Config) -> Result<Notifiers, NotifyError> {
        let mut client = LazyClient::default();
        let mut by_name = HashMap::new();
        by_name.insert("log".to_owned(), Notifier::log());
        for n in &config.notifiers {
            let notifier = Notifier::from_config(n, &mut client)?;
            by_name.insert(notifier.name.clone(), notifier);
        }
        Ok(Notifiers {
            by_name,
            feed_base: feed_base(config),
            digest_rules: config
                .alerts
                .iter()
                // Any digest, as in `RuleSet` (which rounds a sub-second one up to 1 s).
                .filter(|r| r.digest.is_some())
                .map(|r| r.name.get_ref().clone())
                .collect(),
        })
    }

    /// The notifier with this name.
    pub fn get(&self, name: &str) -> Option<&Notifier> {
        self.by_name.get(name)
    }

    /// Absolute URL of a rule's feed, `{base_url}/alerts/{rule}.xml`.
    pub fn feed_url(&self, rule: &str) -> String {
        format!("{}/alerts/{rule}.xml", self.feed_base)
    }

    /// Whether the rule batches its matches into digests.
    pub fn is_digest(&self, rule: &str) -> bool {
        self.digest_rules.contains(rule)
    }
}

/// The base URL feed links start with: `[server] base_url`, else the listen address.
pub(crate) fn feed_base(config: &Config) -> String {
    match &config.server.base_url {
        Some(base) => base.trim_end_matches('/').to_owned(),
        None => format!("http://{}", config.server.listen),
    }
}

/// The notifiers' one HTTP client, built on first use: building it loads the system's
/// trust store (~10 ms), wasted when no notifier speaks HTTP.
#[derive(Default)]
pub struct LazyClient(Option<reqwest::Client>);

impl LazyClient {
    /// The client, built now if this is the first call.
    pub fn get(&mut self) -> Result<reqwest::Client, NotifyError> {
        if let Some(client) = &self.0 {
            return Ok(client.clone());
        }
        let client = http_client()?;
        self.0 = Some(client.clone());
        Ok(client)
    }
}

/// The one HTTP client of the notifiers. Redirects are not followed: a webhook that
/// redirects a POST is misconfigured, and following it could send the signed body and
/// headers somewhere else.
fn http_client() -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(NotifyError::Client)
}

/// Turns configured extra headers into a header map; values are marked sensitive so
/// they never show in debug output. Errors name the header, never its value.
fn extra_headers(
    notifier: &str,
    headers: &std::collections::BTreeMap<String, Secret>,
) -> Result<HeaderMap, NotifyError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| NotifyError::Config {
            notifier: notifier.to_owned(),
            reason: format!("invalid header name {name:?}"),
        })?;
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| NotifyError::Config {
            notifier: notifier.to_owned(),
            reason: format!("invalid value for header {name:?}"),
        })?;
        value.set_sensitive(true);
        map.insert(header, value);
    }
    Ok(map)
}

/// Turns a response into `Ok` for 2xx, else a [`NotifyError::Status`] carrying the
/// receiver's `Retry-After`.
fn check_status(notifier: &str, response: &reqwest::Response) -> Result<(), NotifyError> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(NotifyError::Status {
        notifier: notifier.to_owned(),
        status: status.as_u16(),
        retry_after: response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, chrono::Utc::now())),
    })
}

/// `Retry-After` is either delay-seconds or an HTTP date.
fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is a valid RFC 2822 date.
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - now).to_std().ok()
}

/// Maps a reqwest error to [`NotifyError::Http`] with the URL removed, since webhook
/// URLs often embed a token.
fn http_error(notifier: &str, error: reqwest::Error) -> NotifyError {
    NotifyError::Http {
        notifier: notifier.to_owned(),
        source: error.without_url(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_an_http_date() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 01 Jan 2024 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(
            parse_retry_after("Sun, 31 Dec 2023 00:00:00 GMT", now),
            None
        );
    }

    #[test]
    fn log_is_always_available_and_feed_urls_use_base_url() {
        let config = Config::parse(
            "[server]\nbase_url = \"https://feeds.example.org/\"\n\
             [[alert]]\nname = \"d\"\nany = [\"x\"]\ndigest = \"15m\"\n",
            "t",
        )
        .unwrap();
        let n = Notifiers::from_config(&config).unwrap();
        assert!(n.get("log").is_some());
        assert_eq!(n.feed_url("d"), "https://feeds.example.org/alerts/d.xml");
        assert!(n.is_digest("d"));
    }

    #[test]
    fn bad_header_value_error_does_not_show_the_value() {
        let mut headers = std::collections::BTreeMap::new();
        headers.insert("X-Token".to_owned(), Secret::new("sec\nret"));
        let err = extra_headers("hook", &headers).unwrap_err().to_string();
        assert!(err.contains("X-Token") && !err.contains("sec"), "{err}");
    }
}
