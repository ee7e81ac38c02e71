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

/// The filter without `RUST_LOG`: lookout at INFO; the PostgreSQL client only from
/// WARN, since it logs the server's NOTICEs ("relation already exists, skipping" at
/// every start) at INFO with its own source paths.
pub const DEFAULT_FILTER: &str = "info,tokio_postgres=warn,postgres=warn";

/// Installs the global subscriber: `RUST_LOG` filters (default [`DEFAULT_FILTER`]), and
/// `LOOKOUT_LOG_FORMAT=json` selects JSON lines.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER));
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

/// An error and its causes on one line, each cause said once.
///
/// lookout's errors write their cause into their own message ("cannot create state
/// directory /x: Not a directory (os error 20)") *and* return it from `source()`, so a
/// log line with `error = %e` is complete. Walking the chain naively then repeats every
/// cause once per level. This writes the outermost message and adds a cause only when
/// the text so far does not already hold it.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut text = self.0.to_string();
        let mut cause = self.0.source();
        while let Some(error) = cause {
            let said = error.to_string();
            if !said.is_empty() && !text.contains(&said) {
                text.push_str(": ");
                text.push_str(&said);
            }
            cause = error.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_filter_parses_and_quiets_the_postgresql_client() {
        let filter = tracing_subscriber::EnvFilter::try_new(DEFAULT_FILTER).expect("parses");
        let shown = filter.to_string();
        assert!(shown.contains("tokio_postgres=warn"), "{shown}");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("cannot create state directory /x: {0}")]
    struct Dir(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("opening store /x/lookout.db: {0}")]
    struct Open(#[source] Dir);

    /// Says only its own part; the cause must be added.
    #[derive(Debug, thiserror::Error)]
    #[error("loading the config")]
    struct Quiet(#[source] std::io::Error);

    #[test]
    fn a_cause_already_in_the_message_is_said_once() {
        let enotdir = || std::io::Error::from_raw_os_error(20);
        let error = Open(Dir(enotdir()));
        let line = Chain(&error).to_string();
        assert_eq!(
            line,
            format!(
                "opening store /x/lookout.db: cannot create state directory /x: {}",
                enotdir()
            )
        );
        assert_eq!(line.matches("os error 20").count(), 1, "{line}");
        let quiet = Quiet(enotdir());
        assert_eq!(
            Chain(&quiet).to_string(),
            format!("loading the config: {}", enotdir())
        );
    }

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
