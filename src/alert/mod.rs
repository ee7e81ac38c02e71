//! Keyword alerts: rules compiled to one matcher, the outbox delivery worker, and the
//! notifiers it delivers through.
//!
//! - [`rules`]: every `[[alert]]` rule compiled into one [`RuleSet`], the
//!   [`crate::store::Matcher`] that `store.ingest` calls inside its transaction, so a
//!   new item and its outbox rows (one per rule and notifier) commit together.
//! - [`outbox`]: the worker that delivers those rows at least once, with retries,
//!   backoff, per-notifier rate limits and digests.
//! - [`notifiers`]: `log`, `webhook` (plain, Slack, Discord), `ntfy`, `email` and
//!   `command`, built from `[[notifier]]` config.
//! - [`Message`]: what one notification carries, one item or a digest's list.
//!
//! [`test_rule`] sends a sample match through a rule's notifiers for
//! `lookout alert test RULE`.

pub mod interest;
mod message;
pub mod notifiers;
pub mod outbox;
mod rules;

pub use message::{Message, MessageItem};
pub use notifiers::{Notifier, Notifiers, NotifyError, NotifyErrorKind};
pub use rules::{RuleError, RuleSet};

use crate::config::Config;

/// Why `lookout alert test` could not run at all (per-notifier failures are results).
#[derive(Debug, thiserror::Error)]
pub enum TestRuleError {
    /// No rule has that name.
    #[error("no alert rule named {rule:?} (known: {known})")]
    UnknownRule {
        /// The name asked for.
        rule: String,
        /// The configured rule names, comma-separated.
        known: String,
    },
    /// The shared HTTP client could not be created.
    #[error(transparent)]
    Notify(#[from] NotifyError),
}

/// Sends a sample match of `rule` through each of its notifiers (default `log`) and
/// returns each notifier's name with its result, in the rule's order (empty for a
/// feed-only rule, `notify = []`). A notifier that
/// cannot be built reports that as its result; the others are still tried.
///
/// Each sample carries a fresh idempotency key (`test-...`), so receivers that drop
/// duplicates still show every test.
pub async fn test_rule(
    config: &Config,
    rule: &str,
) -> Result<Vec<(String, Result<(), NotifyError>)>, TestRuleError> {
    let rule_config = config
        .alerts
        .iter()
        .find(|r| r.name.get_ref() == rule)
        .ok_or_else(|| TestRuleError::UnknownRule {
            rule: rule.to_owned(),
            known: config
                .alerts
                .iter()
                .map(|r| r.name.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    // As in `RuleSet`: no `notify` means the log, `notify = []` means no notifier.
    let mut names: Vec<String> = match &rule_config.notify {
        Some(names) => names.iter().map(|n| n.get_ref().clone()).collect(),
        None => vec!["log".to_owned()],
    };
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(n.clone()));

    let mut client = notifiers::LazyClient::default();
    let feed = notifiers::rule_feed_url(&config.server.base(), rule);
    let matched: Vec<String> = rule_config
        .any
        .iter()
        .chain(&rule_config.all)
        .take(3)
        .cloned()
        .chain(
            rule_config
                .regex
                .iter()
                .take(1)
                .map(|r| r.get_ref().clone()),
        )
        .collect();
    let stamp = chrono::Utc::now().timestamp_millis();

    let mut results = Vec::with_capacity(names.len());
    for name in names {
        let notifier = match config.notifiers.iter().find(|n| n.name.get_ref() == &name) {
            Some(n) => Notifier::from_config(n, &mut client),
            None if name == "log" => Ok(Notifier::log()),
            None => Err(NotifyError::unknown(&name)),
        };
        let message = Message {
            rule: rule.to_owned(),
            feed: feed.clone(),
            idempotency_key: format!("test-{rule}-{name}-{stamp}"),
            digest: false,
            items: vec![MessageItem {
                key: format!("test:{rule}"),
                title: format!("lookout test alert for rule {rule:?}"),
                link: Some(feed.clone()),
                summary: "A sample match sent by `lookout alert test` to check that this \
                          notifier delivers."
                    .to_owned(),
                authors: vec!["lookout".to_owned()],
                source: "test".to_owned(),
                publisher: None,
                published: Some(chrono::Utc::now().fixed_offset()),
                matched: matched.clone(),
            }],
        };
        let result = match notifier {
            Ok(n) => n.send(&message).await,
            Err(e) => Err(e),
        };
        results.push((name, result));
    }
    Ok(results)
}
