//! The `webhook` notifier: POST the match as JSON, in lookout's own shape or shaped
//! for Slack (and Mattermost) or Discord incoming webhooks.
//!
//! Every request carries `Idempotency-Key`; with a `secret` it also carries
//! `X-Lookout-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>`, so the
//! receiver can check the body came from us unaltered.

use std::time::Duration;

use hmac::{Hmac, Mac};
use reqwest::header::HeaderMap;
use serde_json::{json, Value};
use sha2::Sha256;

use super::{extra_headers, post_json, send_checked, NotifyErrorKind};
use crate::alert::message::{truncate, Message, MessageItem};
use crate::config::{Secret, TargetUrl};

/// `kind = "webhook"`: the keys only a webhook takes.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// Target URL, http or https (may hold a secret: it is never shown).
    pub url: TargetUrl,
    /// HMAC-SHA256 signing secret.
    #[serde(default)]
    pub secret: Option<Secret>,
    /// Body shape.
    #[serde(default)]
    pub template: WebhookTemplate,
    /// Extra request headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
}

/// Body shape of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
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

/// The signature header.
pub const SIGNATURE_HEADER: &str = "X-Lookout-Signature";

/// Slack allows 50 blocks a message; keep room for the header and the "more" line.
const SLACK_MAX_ITEMS: usize = 45;
/// Discord allows 10 embeds a message.
const DISCORD_MAX_EMBEDS: usize = 10;

pub(super) struct Webhook {
    client: reqwest::Client,
    url: reqwest::Url,
    secret: Option<Secret>,
    template: WebhookTemplate,
    headers: HeaderMap,
}

impl std::fmt::Debug for Webhook {
    // The URL's path or query often is the credential (Slack, Discord): show the host only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field(
                "url",
                &format_args!(
                    "{}://{}/…",
                    self.url.scheme(),
                    self.url.host_str().unwrap_or("")
                ),
            )
            .field("signed", &self.secret.is_some())
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

impl Webhook {
    pub(super) fn new(
        config: &WebhookConfig,
        client: &reqwest::Client,
    ) -> Result<Webhook, NotifyErrorKind> {
        // The config checked the URL (parsed, http or https) when it was read.
        Ok(Webhook {
            client: client.clone(),
            url: config.url.url().clone(),
            secret: config.secret.clone(),
            template: config.template,
            headers: extra_headers(&config.headers)?,
        })
    }

    pub(super) async fn send(
        &self,
        msg: &Message,
        timeout: Duration,
    ) -> Result<(), NotifyErrorKind> {
        let body = match self.template {
            WebhookTemplate::Json => msg.to_json(),
            WebhookTemplate::Slack => slack_body(msg),
            WebhookTemplate::Discord => discord_body(msg),
        };
        // Serialized once: the signature must cover exactly the bytes sent.
        let bytes = serde_json::to_vec(&body)
            .map_err(|e| NotifyErrorKind::config(format!("cannot serialize the body: {e}")))?;
        let mut request = post_json(&self.client, &self.url, timeout, &self.headers, msg);
        if let Some(secret) = &self.secret {
            request = request.header(SIGNATURE_HEADER, sign(secret.expose().as_bytes(), &bytes));
        }
        send_checked(request.body(bytes)).await
    }
}

/// `sha256=<hex HMAC-SHA256(key, body)>`.
pub(crate) fn sign(key: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Slack mrkdwn needs `&`, `<` and `>` escaped; everything else is literal.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn slack_link(item: &MessageItem) -> String {
    let title = slack_escape(&item.title);
    match &item.link {
        Some(link) => format!("<{}|{title}>", slack_escape(link)),
        None => title,
    }
}

fn slack_item_text(item: &MessageItem) -> String {
    let mut text = format!("*{}*", slack_link(item));
    if !item.authors.is_empty() {
        text.push('\n');
        text.push_str(&slack_escape(&truncate(&item.authors.join(", "), 300)));
    }
    if !item.summary.is_empty() {
        text.push('\n');
        text.push_str(&slack_escape(&truncate(&item.summary, 1500)));
    }
    if !item.matched.is_empty() {
        text.push_str(&format!(
            "\n_matched: {}_",
            slack_escape(&item.matched.join(", "))
        ));
    }
    // A section's text is limited to 3000 characters.
    truncate(&text, 3000)
}

/// The Slack incoming-webhook shape: `text` (the notification and fallback) and
/// `blocks` (one section per item). Mattermost shows `text` and accepts the rest.
fn slack_body(msg: &Message) -> Value {
    let feed_link = format!("<{}|{}>", slack_escape(&msg.feed), slack_escape(&msg.rule));
    let text = match (msg.is_single(), msg.items.first()) {
        (true, Some(item)) => format!("lookout {feed_link}: {}", slack_link(item)),
        _ => format!("lookout {feed_link}: {} new matches", msg.items.len()),
    };
    let mut blocks: Vec<Value> = msg
        .items
        .iter()
        .take(SLACK_MAX_ITEMS)
        .map(|item| json!({"type": "section", "text": {"type": "mrkdwn", "text": slack_item_text(item)}}))
        .collect();
    if msg.items.len() > SLACK_MAX_ITEMS {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn",
            "text": format!("…and {} more in the {feed_link} feed", msg.items.len() - SLACK_MAX_ITEMS)}}));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn",
        "text": format!("lookout rule {feed_link}")}]}));
    json!({"text": text, "blocks": blocks})
}

/// The Discord incoming-webhook shape: `content` plus one embed per item (title, url,
/// description), within Discord's limits (10 embeds, 256-char titles, 2000-char content).
fn discord_body(msg: &Message) -> Value {
    let mut content = format!("**lookout: {}**", msg.headline());
    if msg.items.len() > DISCORD_MAX_EMBEDS {
        content.push_str(&format!(
            "\n{} more in {}",
            msg.items.len() - DISCORD_MAX_EMBEDS,
            msg.feed
        ));
    }
    let embeds: Vec<Value> = msg
        .items
        .iter()
        .take(DISCORD_MAX_EMBEDS)
        .map(|item| {
            let mut description = String::new();
            if !item.authors.is_empty() {
                description.push_str(&truncate(&item.authors.join(", "), 300));
                description.push_str("\n\n");
            }
            description.push_str(&truncate(&item.summary, 3000));
            if !item.matched.is_empty() {
                description.push_str(&format!("\n\nmatched: {}", item.matched.join(", ")));
            }
            let mut embed = json!({
                "title": truncate(&item.title, 256),
                "description": truncate(&description, 4096),
            });
            if let Some(link) = &item.link {
                embed["url"] = Value::from(link.as_str());
            }
            embed
        })
        .collect();
    json!({"content": truncate(&content, 2000), "embeds": embeds})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn slack_text_escapes_angle_brackets_and_ampersands() {
        assert_eq!(slack_escape("a<b>&c"), "a&lt;b&gt;&amp;c");
    }
}
