//! Log output: human lines (the default) or JSON (`LOOKOUT_LOG_FORMAT=json`), on stderr.
//!
//! Log lines quote text from the outside world: titles, file names, URLs, error
//! messages of servers. A file named `x\nINFO fake: all good` must not forge a second
//! line, and an escape sequence in a title must not reach the terminal. The JSON format
//! is safe by construction (serde_json escapes control characters in strings); the
//! human format writes `Display` values as they are, so every field goes through
//! [`escape_controls`] first.

use std::fmt::Write as _;
use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format;

/// Installs the global subscriber: `RUST_LOG` filters (default `info`), and
/// `LOOKOUT_LOG_FORMAT=json` selects JSON lines.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("LOOKOUT_LOG_FORMAT").is_ok_and(|v| v == "json") {
        builder.json().init();
    } else {
        builder.fmt_fields(escaped_fields()).init();
    }
}

/// The human format's fields as the default formatter writes them (`message`, then
/// `name=value` separated by spaces), each value escaped by [`escape_controls`].
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> {
    format::debug_fn(|writer, field, value| {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = write!(text, "{value:?}");
        let text = escape_controls(&text);
        if field.name() == "message" {
            write!(writer, "{text}")
        } else {
            write!(writer, "{field}={text}")
        }
    })
    .delimited(" ")
}

/// `text` with every control character (C0, C1, DEL), line and paragraph separator and
/// bidirectional override written as a Rust escape (`\n`, `\u{1b}`, `\u{202e}`), so one
/// log line stays one line and shows what was really there.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let unsafe_char = |c: char| {
        c.is_control()
            || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_plain_text_is_kept() {
        assert_eq!(
            escape_controls("plain ünïcode \"quoted\""),
            "plain ünïcode \"quoted\""
        );
        assert_eq!(
            escape_controls("x\nINFO fake\r\u{1b}[31m\u{85}\u{202e}"),
            "x\\nINFO fake\\r\\u{1b}[31m\\u{85}\\u{202e}"
        );
        assert_eq!(escape_controls("tab\there"), "tab\\there");
    }
}
