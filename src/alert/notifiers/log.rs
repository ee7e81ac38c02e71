//! The `log` notifier: one structured `tracing` line per matched item. Always
//! available, and the default of a rule without `notify`.

use crate::alert::message::Message;

/// Logs every item of the message at INFO under the `lookout::alert` target, with the
/// rule, title, link and matched keywords as fields, so a JSON log shipper can route
/// alerts like any other event.
///
/// The title is said once, as a field. The message does not repeat it, and the item's
/// key is left out: for a text capture it is the title again (`title:…`), and the
/// idempotency key already identifies the delivery.
pub(super) fn send(notifier: &str, msg: &Message) {
    for item in &msg.items {
        tracing::info!(
            target: "lookout::alert",
            %notifier,
            rule = %msg.rule,
            title = %item.title,
            link = %item.link.as_deref().unwrap_or(""),
            source = %item.source,
            matched = %item.matched.join(", "),
            idempotency_key = %msg.idempotency_key,
            "alert"
        );
    }
}
