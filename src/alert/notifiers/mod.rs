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

use reqwest::header::{HeaderMap, CONTENT_TYPE};

use super::message::Message;
use crate::config::{Config, NotifierConfig, NotifierKind, Secret};

pub use command::CommandConfig;
pub use email::{EmailConfig, SmtpTls};
pub use ntfy::NtfyConfig;
pub use webhook::{WebhookConfig, WebhookTemplate};

/// Why a notifier could not be built or a message not delivered: the notifier, named
/// once here rather than in every kind of failure, and what went wrong. None carries
/// a secret.
#[derive(Debug, thiserror::Error)]
#[error("notifier {notifier:?}: {kind}")]
pub struct NotifyError {
    /// The notifier's name.
    pub notifier: String,
    /// What went wrong.
    #[source]
    pub kind: NotifyErrorKind,
}

/// What went wrong with a notifier (see [`NotifyError`], which names it).
#[derive(Debug, thiserror::Error)]
pub enum NotifyErrorKind {
    /// The notifier's configuration cannot be used (an unparsable URL, address or header).
    #[error("invalid configuration: {reason}")]
    Config {
        /// What is wrong, without the value when it may be secret.
        reason: String,
    },
    /// A delivery names a notifier that is not (or no longer) configured.
    #[error("not configured")]
    Unknown,
    /// The HTTP client could not be created.
    #[error("cannot create the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// The HTTP request failed before a response (connect, TLS, timeout); the error's
    /// URL is stripped.
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    /// The receiver answered with a non-2xx status.
    #[error("HTTP status {status}")]
    Status {
        /// The status code.
        status: u16,
        /// The receiver's `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },
    /// The mail could not be built (bad address, ...).
    #[error("cannot build the mail: {0}")]
    Mail(#[source] lettre::error::Error),
    /// The SMTP session failed.
    #[error("SMTP: {0}")]
    Smtp(#[source] lettre::transport::smtp::Error),
    /// The command could not be started.
    #[error("cannot run {program}: {source}")]
    Spawn {
        /// The program as configured.
        program: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The command ran and failed.
    #[error("{program} failed ({status}){}", stderr_suffix(.stderr))]
    Exit {
        /// The program as configured.
        program: String,
        /// Exit status as the OS describes it ("exit status: 3", "signal: 9").
        status: String,
        /// First non-empty line of its standard error.
        stderr: String,
    },
    /// The delivery took longer than the notifier's `timeout` (a command is killed).
    #[error("timed out after {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The configured timeout.
        timeout: Duration,
    },
}

impl NotifyErrorKind {
    /// This failure, at the named notifier.
    pub fn at(self, notifier: &str) -> NotifyError {
        NotifyError {
            notifier: notifier.to_owned(),
            kind: self,
        }
    }

    /// A [`NotifyErrorKind::Config`] saying `reason`.
    pub(crate) fn config<R: Into<String>>(reason: R) -> NotifyErrorKind {
        NotifyErrorKind::Config {
            reason: reason.into(),
        }
    }
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl NotifyError {
    /// A delivery names a notifier that is not (or no longer) configured.
    pub fn unknown(notifier: &str) -> NotifyError {
        NotifyErrorKind::Unknown.at(notifier)
    }

    /// Whether retrying cannot help: the SMTP relay refused the mail with a permanent
    /// (5xx) reply, or the mail could not even be built. A transient (4xx) reply, a
    /// timeout or a lost connection is worth retrying.
    pub fn is_permanent(&self) -> bool {
        match &self.kind {
            NotifyErrorKind::Smtp(source) => source.is_permanent(),
            NotifyErrorKind::Mail(_) => true,
            _ => false,
        }
    }

    /// How long the receiver asked us to wait before retrying (HTTP `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            NotifyErrorKind::Status { retry_after, .. } => *retry_after,
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
        let kind = (|| {
            Ok(match &config.kind {
                NotifierKind::Log => Kind::Log,
                NotifierKind::Webhook(c) => {
                    Kind::Webhook(webhook::Webhook::new(c, &client.get()?)?)
                }
                NotifierKind::Ntfy(c) => Kind::Ntfy(ntfy::Ntfy::new(c, &client.get()?)?),
                NotifierKind::Email(c) => Kind::Email(email::Email::new(c, config.timeout.0)?),
                NotifierKind::Command(c) => Kind::Command(command::Command::new(c)),
            })
        })()
        .map_err(|kind: NotifyErrorKind| kind.at(&name))?;
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
                Kind::Webhook(w) => w.send(msg, self.timeout).await,
                Kind::Ntfy(n) => n.send(msg, self.timeout).await,
                Kind::Email(e) => e.send(msg).await,
                Kind::Command(c) => c.send(msg).await,
            }
        };
        match tokio::time::timeout(self.timeout, send).await {
            Ok(result) => result,
            Err(_) => Err(NotifyErrorKind::Timeout {
                timeout: self.timeout,
            }),
        }
        .map_err(|kind| kind.at(&self.name))
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
            feed_base: config.server.base(),
            digest_rules: config
                .alerts
                .iter()
                // Any digest, as in `RuleSet` (which rounds a sub-second one up to 1 s).
                .filter(|r| r.digest.is_some())
                .map(|r| r.name.get_ref().clone())
                .chain(
                    config
                        .interests
                        .iter()
                        .filter(|i| i.digest.is_some())
                        .map(|i| crate::store::interest_rule(i.name())),
                )
                .collect(),
        })
    }

    /// The notifier with this name.
    pub fn get(&self, name: &str) -> Option<&Notifier> {
        self.by_name.get(name)
    }

    /// Absolute URL of a rule's feed, `{base_url}/alerts/{rule}.xml`.
    pub fn feed_url(&self, rule: &str) -> String {
        rule_feed_url(&self.feed_base, rule)
    }

    /// Whether the rule batches its matches into digests.
    pub fn is_digest(&self, rule: &str) -> bool {
        self.digest_rules.contains(rule)
    }
}

/// The absolute URL of a rule's RSS feed under `base`, as the publisher serves it.
pub(crate) fn rule_feed_url(base: &str, rule: &str) -> String {
    // An interest's deliveries name it `interest:NAME` (see `store::interest_rule`).
    let scope = match rule.strip_prefix("interest:") {
        Some(name) => crate::publish::FeedScope::Interest(name.to_owned()),
        None => crate::publish::FeedScope::Rule(rule.to_owned()),
    };
    let id = crate::publish::FeedId {
        scope,
        format: crate::feed::FeedFormat::Rss,
    };
    format!("{base}{}", id.url_path())
}

/// The notifiers' one HTTP client, built on first use: building it loads the system's
/// trust store (BENCHMARKS.md, "Figures behind code choices"), wasted when no notifier
/// speaks HTTP.
#[derive(Default)]
pub struct LazyClient(Option<reqwest::Client>);

impl LazyClient {
    /// The client, built now if this is the first call.
    pub fn get(&mut self) -> Result<reqwest::Client, NotifyErrorKind> {
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
fn http_client() -> Result<reqwest::Client, NotifyErrorKind> {
    reqwest::Client::builder()
        .user_agent(concat!("lookout/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(NotifyErrorKind::Client)
}

/// Turns configured extra headers into a header map; values are marked sensitive so
/// they never show in debug output. Errors name the header, never its value.
fn extra_headers(
    headers: &std::collections::BTreeMap<String, Secret>,
) -> Result<HeaderMap, NotifyErrorKind> {
    crate::config::header_map(headers).map_err(|e| NotifyErrorKind::config(e.to_string()))
}

/// A POST of `msg` to `url` with what every HTTP notifier sends: its configured extra
/// headers, a JSON content type and the message's `Idempotency-Key`. The caller adds
/// the body and its own headers.
fn post_json(
    client: &reqwest::Client,
    url: &reqwest::Url,
    timeout: Duration,
    headers: &HeaderMap,
    msg: &Message,
) -> reqwest::RequestBuilder {
    client
        .post(url.clone())
        .timeout(timeout)
        .headers(headers.clone())
        .header(CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", &msg.idempotency_key)
}

/// Sends a request and turns its answer into `Ok` for 2xx, else the failure (see
/// [`check_status`], [`http_error`]).
async fn send_checked(request: reqwest::RequestBuilder) -> Result<(), NotifyErrorKind> {
    let response = request.send().await.map_err(http_error)?;
    check_status(&response)
}

/// Turns a response into `Ok` for 2xx, else a [`NotifyErrorKind::Status`] carrying the
/// receiver's `Retry-After`.
fn check_status(response: &reqwest::Response) -> Result<(), NotifyErrorKind> {
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    Err(NotifyErrorKind::Status {
        status: status.as_u16(),
        retry_after: crate::retry::retry_after_header(response.headers(), chrono::Utc::now()),
    })
}

/// Maps a reqwest error to [`NotifyErrorKind::Http`] with the URL removed, since webhook
/// URLs often embed a token.
fn http_error(error: reqwest::Error) -> NotifyErrorKind {
    NotifyErrorKind::Http(error.without_url())
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let err = extra_headers(&headers).unwrap_err().at("hook").to_string();
        assert!(err.contains("X-Token") && !err.contains("sec"), "{err}");
    }
}
