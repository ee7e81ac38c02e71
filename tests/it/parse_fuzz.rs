//! Parsers take page data from anywhere, so no input may make them panic: random bytes,
//! and (more searching) pages stitched together from the pieces real pages are made of.

use chrono::{TimeZone, Utc};
use lookout::config::SelectorsConfig;
use lookout::parse::{dates, formats, parse_page, ParseContext};
use proptest::prelude::*;

/// Fragments of every format, so random pages reach deep into each parser.
const PIECES: &[&str] = &[
    "\n",
    "\n\n",
    "\r\n",
    "\u{a0}",
    "\u{feff}",
    "\u{fffd}",
    "  • 8 authors\n",
    "·\n",
    "Feb 5, 2024\n",
    "May 7\n",
    "Feb 29 1\n",
    "Dec 19, 2025 1\n",
    "Submitted by\n",
    "A Short Title\n",
    "Al Jazeera\n",
    "Collaborating Authors\n",
    "Daily Papers\n",
    "This sentence is long enough to be prose for the parsers, with many words in it.\n",
    "<html><body>",
    "<div data-target=\"DailyPapers\" data-props=\"{&quot;dailyPapers&quot;:[{&quot;paper&quot;:{&quot;id&quot;:&quot;2401.00001&quot;,&quot;title&quot;:&quot;T&quot;}}]}\">",
    "</div>",
    "<article><h3><a href=\"/papers/2401.00002\">Card</a></h3><span>3 authors</span></article>",
    "<dl><dt><a href=\"/abs/2401.00003\">arXiv:2401.00003</a></dt>",
    "<dd><div class='list-title'><span class='descriptor'>Title:</span> X</div><div class='list-authors'><a>A</a></div></dd></dl>",
    "<h3>Mon, 20 May 2024</h3>",
    "<div class=\"summary-item\"><h3><a href=\"/doc/x\">Item</a></h3><span class=\"summary-source\">Src</span></div>",
    "<rss version=\"2.0\"><channel><title>F</title><item><title>I</title><link>https://arxiv.org/abs/2401.00004</link></item></channel></rss>",
    "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title>E</title></entry></feed>",
    "[{\"paper\":{\"id\":\"2401.00005\",\"title\":\"J\",\"authors\":[{\"name\":\"N\"}]}}]",
    "{\"version\":\"https://jsonfeed.org/version/1.1\",\"items\":[{\"id\":\"1\",\"title\":\"K\"}]}",
    "<", ">", "\"", "&amp;", "<!--", "-->", "<script>", "</script>",
];

fn stitched() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(PIECES).prop_map(|s| s.as_bytes().to_vec()),
            1 => prop::collection::vec(any::<u8>(), 0..8),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

fn try_every_format(page: &[u8]) {
    let selectors = SelectorsConfig {
        item: "article, div, item".into(),
        title: "h3, a, title".into(),
        link: None,
        summary: Some("p, span".into()),
        date: Some("h3, time".into()),
        date_format: Some("%b %d".into()),
        authors: Some("a".into()),
    };
    let url = url::Url::parse("https://example.org/list/").ok();
    let mut ctx = ParseContext::at(Utc.with_ymd_and_hms(2026, 1, 3, 0, 0, 0).unwrap());
    ctx.selectors = Some(&selectors);
    ctx.url = url.as_ref();
    let _ = parse_page(page, "auto", &ctx);
    for format in formats() {
        let _ = parse_page(page, format.name(), &ctx);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(page in prop::collection::vec(any::<u8>(), 0..512)) {
        try_every_format(&page);
    }

    #[test]
    fn stitched_pages_never_panic(page in stitched()) {
        try_every_format(&page);
    }

    #[test]
    fn any_text_is_safe_for_the_date_parser(text in "\\PC{0,40}") {
        let reference = chrono::NaiveDate::from_ymd_opt(2026, 1, 3).unwrap();
        let _ = dates::parse_date(&text, reference);
        let _ = dates::find_date(&text, reference);
        let _ = dates::parse_with_format(&text, "%d %b", reference);
    }
}
