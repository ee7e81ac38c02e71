//! [`Message`]: what one notification carries, and the renderings every notifier
//! shares (the webhook/command JSON, a headline, a plain-text body).
//!
//! A message holds a list of items: one for an ordinary delivery, every match of the
//! window for a rule with a `digest`. Its shape follows the rule, not the count, so a
//! receiver of a digest rule always gets the digest shape, even for a single match.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::entry::{timestamp_text, Timestamp};
use crate::store::Delivery;

/// One notification: a rule's match of one item, or a digest of several.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The rule that matched.
    pub rule: String,
    /// Absolute URL of the rule's feed (`{base_url}/alerts/{rule}.xml`).
    pub feed: String,
    /// Sent as `Idempotency-Key` (and as the mail's Message-ID): the delivery's own key,
    /// or for a digest of several rows a hash of their keys, so a resend after a crash
    /// carries the same key as the first send.
    pub idempotency_key: String,
    /// Whether the rule batches matches: the message is shaped as a digest.
    pub digest: bool,
    /// The matched items (at least one).
    pub items: Vec<MessageItem>,
}

/// One matched item in a [`Message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageItem {
    /// The item's stable identity key (the feed guid).
    pub key: String,
    /// Title.
    pub title: String,
    /// Link, when known.
    pub link: Option<String>,
    /// Summary (may be empty).
    pub summary: String,
    /// Author names (may be empty).
    pub authors: Vec<String>,
    /// The lookout source that first saw the item.
    pub source: String,
    /// Publisher or venue named by the page.
    pub publisher: Option<String>,
    /// Publication date, when known.
    pub published: Option<Timestamp>,
    /// The keywords or patterns of the rule that hit.
    pub matched: Vec<String>,
}

impl MessageItem {
    /// The item of one outbox row.
    pub fn from_delivery(delivery: &Delivery) -> MessageItem {
        let item = &delivery.item;
        MessageItem {
            key: item.key.clone(),
            title: item.title.clone(),
            // The same link the feeds give (a search link for a text capture's paper).
            link: crate::feed::feed_link_for(item),
            summary: item.summary.clone(),
            authors: item.authors.clone(),
            source: item.source.clone(),
            publisher: item.publisher.clone(),
            published: item.published,
            matched: delivery.matched.clone(),
        }
    }
}

impl Message {
    /// The message for outbox rows of one rule and one notifier: one row for an
    /// ordinary rule, every due row of the window for a digest rule.
    pub fn from_deliveries(feed: String, digest: bool, rows: &[Delivery]) -> Message {
        let rule = rows.first().map(|d| d.rule.clone()).unwrap_or_default();
        let idempotency_key = match rows {
            [one] => one.idempotency_key.clone(),
            _ => {
                let mut keys: Vec<&str> = rows.iter().map(|d| d.idempotency_key.as_str()).collect();
                keys.sort_unstable();
                // A JSON array as hash input, so no two key lists hash the same text.
                let input = serde_json::Value::from(keys).to_string();
                format!("digest-{}", hex::encode(Sha256::digest(input.as_bytes())))
            }
        };
        Message {
            rule,
            feed,
            idempotency_key,
            digest,
            items: rows.iter().map(MessageItem::from_delivery).collect(),
        }
    }

    /// The JSON the webhook posts and a command reads on stdin. One item:
    /// `{rule, key, title, link, summary, authors, source, publisher, published,
    /// matched, feed}`; a digest: `{rule, feed, digest: true, count, items: [...]}` with
    /// the one-item object for each item.
    pub fn to_json(&self) -> Value {
        match (self.digest, self.items.as_slice()) {
            (false, [item]) => self.item_json(item),
            _ => json!({
                "rule": self.rule,
                "feed": self.feed,
                "digest": true,
                "count": self.items.len(),
                "items": self.items.iter().map(|i| self.item_json(i)).collect::<Vec<_>>(),
            }),
        }
    }

    fn item_json(&self, item: &MessageItem) -> Value {
        json!({
            "rule": self.rule,
            "key": item.key,
            "title": item.title,
            "link": item.link,
            "summary": item.summary,
            "authors": item.authors,
            "source": item.source,
            "publisher": item.publisher,
            "published": item.published.as_ref().map(timestamp_text),
            "matched": item.matched,
            "feed": self.feed,
        })
    }

    /// Whether the message is rendered as a single match (not a digest).
    pub fn is_single(&self) -> bool {
        !self.digest && self.items.len() == 1
    }

    /// A one-line summary: "rule: title", or "rule: N new matches" for a digest.
    pub fn headline(&self) -> String {
        match (self.is_single(), self.items.first()) {
            (true, Some(item)) => format!("{}: {}", self.rule, item.title),
            _ => {
                let n = self.items.len();
                let noun = if n == 1 { "match" } else { "matches" };
                format!("{}: {n} new {noun}", self.rule)
            }
        }
    }

    /// The link a click should open: the item's link for a single match, else the
    /// rule's feed.
    pub fn click(&self) -> &str {
        match (self.is_single(), self.items.first()) {
            (
                true,
                Some(MessageItem {
                    link: Some(link), ..
                }),
            ) => link,
            _ => &self.feed,
        }
    }

    /// Plain text for mail bodies and ntfy: each item's title, authors, link, summary
    /// and matched keywords, then the rule's feed.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for (i, item) in self.items.iter().enumerate() {
            if i > 0 {
                out.push_str("\n----\n\n");
            }
            out.push_str(&item.title);
            out.push('\n');
            if !item.authors.is_empty() {
                out.push_str(&item.authors.join(", "));
                out.push('\n');
            }
            if let Some(link) = &item.link {
                out.push_str(link);
                out.push('\n');
            }
            if !item.summary.is_empty() {
                out.push('\n');
                out.push_str(&item.summary);
                out.push('\n');
            }
            out.push('\n');
            if !item.matched.is_empty() {
                out.push_str(&format!("Matched: {}\n", item.matched.join(", ")));
            }
            let mut seen = format!("Seen on: {}", item.source);
            if let Some(publisher) = &item.publisher {
                seen.push_str(&format!(" ({publisher})"));
            }
            if let Some(date) = &item.published {
                seen.push_str(&format!(", published {}", timestamp_text(date)));
            }
            out.push_str(&seen);
            out.push('\n');
        }
        out.push_str(&format!("\nAlert rule {:?}: {}\n", self.rule, self.feed));
        out
    }
}

/// Cuts `text` to at most `max` characters, ending in "…" when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::day_start;
    use crate::store::StoredItem;
    use chrono::NaiveDate;
    use chrono::{DateTime, Utc};

    pub(crate) fn delivery(id: i64, title: &str) -> Delivery {
        let at: DateTime<Utc> = DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        Delivery {
            id,
            rule: "diffusion".into(),
            notifier: "hook".into(),
            idempotency_key: format!("key-{id}"),
            matched: vec!["diffusion".into()],
            attempts: 0,
            item: StoredItem {
                id,
                key: format!("title:{}", title.to_lowercase()),
                title: title.into(),
                link: Some(format!("https://example.org/{id}")),
                summary: "A summary.".into(),
                authors: vec!["Ada".into(), "Grace".into()],
                author_count: Some(2),
                publisher: Some("arXiv".into()),
                source: "hf".into(),
                published: NaiveDate::from_ymd_opt(2024, 4, 17).map(day_start),
                listed: None,
                arxiv_id: None,
                format: "hf-papers".into(),
                first_seen: at,
                updated_at: at,
            },
        }
    }

    #[test]
    fn single_message_json_has_the_documented_fields() {
        let m = Message::from_deliveries(
            "http://f/alerts/diffusion.xml".into(),
            false,
            &[delivery(1, "A")],
        );
        let v = m.to_json();
        for field in [
            "rule",
            "key",
            "title",
            "link",
            "summary",
            "authors",
            "source",
            "published",
            "matched",
            "feed",
        ] {
            assert!(v.get(field).is_some(), "missing {field}: {v}");
        }
        assert_eq!(v["published"], "2024-04-17");
        assert_eq!(m.idempotency_key, "key-1");
        assert_eq!(m.headline(), "diffusion: A");
        assert_eq!(m.click(), "https://example.org/1");
    }

    #[test]
    fn digest_key_is_stable_whatever_the_row_order() {
        let a = Message::from_deliveries("f".into(), true, &[delivery(1, "A"), delivery(2, "B")]);
        let b = Message::from_deliveries("f".into(), true, &[delivery(2, "B"), delivery(1, "A")]);
        assert_eq!(a.idempotency_key, b.idempotency_key);
        assert!(a.idempotency_key.starts_with("digest-"));
        assert_eq!(a.to_json()["count"], 2);
        assert_eq!(a.headline(), "diffusion: 2 new matches");
        assert_eq!(a.click(), "f");
        let one = Message::from_deliveries("f".into(), true, &[delivery(3, "C")]);
        assert_eq!(one.idempotency_key, "key-3");
        assert_eq!(
            one.to_json()["digest"],
            true,
            "digest rules keep the digest shape"
        );
    }

    #[test]
    fn text_names_title_authors_link_and_matches() {
        let m = Message::from_deliveries("f".into(), false, &[delivery(1, "A title")]);
        let t = m.text();
        assert!(
            t.contains("A title\nAda, Grace\nhttps://example.org/1\n"),
            "{t}"
        );
        assert!(t.contains("Matched: diffusion"), "{t}");
    }

    #[test]
    fn truncate_counts_characters() {
        assert_eq!(truncate("äöü", 3), "äöü");
        assert_eq!(truncate("äöüß", 3), "äö…");
    }
}
