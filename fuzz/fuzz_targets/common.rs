//! What every parser target shares: one fixed capture time and base URL, and the
//! selectors the `selectors` target reads pages with.
#![allow(dead_code)]

use lookout::config::SelectorsConfig;
use lookout::parse::{parse_page, ParseContext, Parsed};

/// Parses `data` with `format` as a page fetched from a fixed URL at a fixed time.
/// Parsers must never panic on page data; an `Err` is a fine answer.
pub fn parse(data: &[u8], format: &str) -> Option<Parsed> {
    let url = url::Url::parse("https://example.org/list/").expect("valid url");
    let selectors = SelectorsConfig {
        item: "article".into(),
        title: "h2".into(),
        link: None,
        summary: Some("p".into()),
        date: Some("time".into()),
        date_format: None,
        authors: Some(".byline a".into()),
    };
    let mut ctx =
        ParseContext::at(chrono::DateTime::from_timestamp(1_779_300_000, 0).expect("time"));
    ctx.url = Some(&url);
    ctx.selectors = Some(&selectors);
    let parsed = parse_page(data, format, &ctx).ok()?;
    if format != "auto" {
        assert_eq!(parsed.format, format, "a named format parses as itself");
    }
    Some(parsed)
}
