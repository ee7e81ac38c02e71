//! The `ntfy` notifier: publish to an ntfy server's topic.
//!
//! It uses ntfy's JSON publish API (POST `{server}/` with
//! `{topic, title, message, tags, click, priority}`) rather than the header API: titles
//! and tags travel as JSON strings, so non-ASCII titles need no RFC 2047 encoding.

use std::time::Duration;

use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::json;

use super::{extra_headers, post_json, send_checked, NotifyErrorKind};
use crate::alert::message::{truncate, Message};
use crate::config::{Secret, TargetUrl};

/// `kind = "ntfy"`: the keys only an ntfy notifier takes.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtfyConfig {
    /// Server base URL, http or https (default `https://ntfy.sh`).
    #[serde(default)]
    pub server: Option<TargetUrl>,
    /// The topic (not empty).
    pub topic: String,
    /// Access token.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Priority 1-5.
    #[serde(default)]
    pub priority: Option<u8>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, Secret>,
}

/// ntfy's default server.
pub const DEFAULT_SERVER: &str = "https://ntfy.sh";

/// ntfy keeps messages up to 4096 bytes as text; longer ones become attachments.
const MAX_MESSAGE_CHARS: usize = 3500;

#[derive(Debug)]
pub(super) struct Ntfy {
    client: reqwest::Client,
    /// The server root, where the JSON API is published.
    endpoint: reqwest::Url,
    topic: String,
    token: Option<Secret>,
    tags: Vec<String>,
    priority: Option<u8>,
    headers: HeaderMap,
}

impl Ntfy {
    pub(super) fn new(
        config: &NtfyConfig,
        client: &reqwest::Client,
    ) -> Result<Ntfy, NotifyErrorKind> {
        // The config checked the server URL (parsed, http or https) when it was read.
        let server = config
            .server
            .as_ref()
            .map_or(DEFAULT_SERVER, |s| s.expose());
        // A trailing slash keeps a path prefix (ntfy behind a reverse proxy) in the URL.
        let root = format!("{}/", server.trim_end_matches('/'));
        let endpoint = reqwest::Url::parse(&root)
            .map_err(|e| NotifyErrorKind::config(format!("`server` is not a valid URL: {e}")))?;
        Ok(Ntfy {
            client: client.clone(),
            endpoint,
            topic: config.topic.clone(),
            token: config.token.clone(),
            tags: config.tags.clone(),
            priority: config.priority,
            headers: extra_headers(&config.headers)?,
        })
    }

    pub(super) async fn send(
        &self,
        msg: &Message,
        timeout: Duration,
    ) -> Result<(), NotifyErrorKind> {
        let mut body = json!({
            "topic": self.topic,
            "title": truncate(&msg.headline(), 250),
            "message": truncate(&msg.text(), MAX_MESSAGE_CHARS),
            "click": msg.click(),
        });
        if !self.tags.is_empty() {
            body["tags"] = json!(self.tags);
        }
        if let Some(priority) = self.priority {
            body["priority"] = json!(priority);
        }
        let mut request =
            post_json(&self.client, &self.endpoint, timeout, &self.headers, msg).json(&body);
        if let Some(token) = &self.token {
            let mut value =
                reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| NotifyErrorKind::config("`token` is not a valid header value"))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        send_checked(request).await
    }
}
