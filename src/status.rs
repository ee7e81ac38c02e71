//! The status page (`GET /`) and the OPML subscription list (`GET /feeds.opml`),
//! rendered from plain data.
//!
//! Everything here is a pure function: the server gathers a [`StatusView`] from the
//! store, the config and the daemon's state, and these functions turn it into bytes.
//! That keeps the page testable without a server, and keeps I/O out of rendering.
//!
//! The page is server-rendered HTML that needs no JavaScript: a person checking on the
//! daemon from a phone gets a readable page on the first response. It is written as
//! polyglot HTML5 (every element closed, every attribute quoted), so the tests can
//! parse it as XML and check its structure instead of grepping strings.
//!
//! The page and the OPML are askama templates in `assets/status/` (checked at compile
//! time, the CSS inlined from `assets/status/status.css`). Text on the page comes from
//! captured pages and from the config, and captured pages are hostile by default: the
//! templates escape every value by default ([`PageEscaper`]), and links taken from
//! captures are only made clickable when they are `http(s)` URLs, since escaping does
//! not stop a `javascript:` URL from running when clicked.

use chrono::{DateTime, Utc};

use crate::store::{FailedDelivery, OutboxCounts};

/// Everything the status page shows; gathered by the server, rendered by
/// [`render_status_page`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusView {
    /// The feed title from the config (`[feed] title`), used as the page title.
    pub title: String,
    /// lookout's version.
    pub version: String,
    /// When the view was gathered; relative times ("5 min ago") count from it.
    pub generated_at: DateTime<Utc>,
    /// The error of the last refused config reload, while the old config still runs.
    pub reload_error: Option<String>,
    /// What is wrong with the store (it cannot write, or is damaged, and what to do),
    /// shown at the top of the page; `None` while it is healthy.
    pub store_problem: Option<String>,
    /// Which replica of a shared store served the page, and what it holds ("replica
    /// web-1:812 on PostgreSQL, leasing 3 sources"); `None` on a store of its own.
    pub replica: Option<String>,
    /// The sources listed on this page: those that need attention first (see
    /// [`SourcesSummary`] for the rest).
    pub sources: Vec<SourceView>,
    /// How all the sources stand, and which page of them [`StatusView::sources`] is.
    pub sources_summary: SourcesSummary,
    /// The newest items, newest first.
    pub items: Vec<ItemView>,
    /// Every alert rule with its recent matches and failed deliveries.
    pub rules: Vec<RuleView>,
    /// Outbox totals.
    pub outbox: OutboxCounts,
    /// Every feed, in its three formats.
    pub feeds: Vec<FeedLink>,
    /// Feeds left out of [`StatusView::feeds`] (with thousands of sources, the page
    /// lists the first few; the OPML list has them all).
    pub more_feeds: usize,
    /// Where the OPML list of all feeds is served (normally `/feeds.opml`; the server
    /// adds `?token=` when a token protects it, as it does for feed links).
    pub opml_url: String,
}

/// One source as the status page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceView {
    /// The source's name.
    pub name: String,
    /// Its kind (`folder`, `http`).
    pub kind: String,
    /// Whether its last attempt succeeded (a source never attempted is ok).
    pub ok: bool,
    /// Its last successful fetch or ingest.
    pub last_success: Option<DateTime<Utc>>,
    /// Its last error message, if any.
    pub last_error: Option<String>,
    /// When the last error happened.
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// What was odd about its latest page: the source is degraded (see
    /// [`crate::parse::ParseWarning`]).
    pub warnings: Vec<String>,
}

/// A source's state as shown: in the order the page lists them (attention first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceState {
    /// Its last attempt failed.
    Failing,
    /// Its last page was stored but looked wrong (it has warnings).
    Degraded,
    /// All well.
    Ok,
}

impl SourceView {
    /// The source's state: failing beats degraded beats ok.
    pub fn state(&self) -> SourceState {
        if !self.ok {
            SourceState::Failing
        } else if !self.warnings.is_empty() {
            SourceState::Degraded
        } else {
            SourceState::Ok
        }
    }
}

/// How many sources there are in each state, and which page of them the status page
/// lists: with 10,000 sources the page lists 50 at a time, those that need attention
/// first, with links to the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcesSummary {
    /// Configured sources.
    pub total: usize,
    /// Sources whose last attempt succeeded and whose page looked right.
    pub ok: usize,
    /// Sources with warnings.
    pub degraded: usize,
    /// Sources whose last attempt failed.
    pub failing: usize,
    /// The page listed, from 1.
    pub page: usize,
    /// Pages in all.
    pub pages: usize,
    /// The previous page's URL, if any.
    pub prev: Option<String>,
    /// The next page's URL, if any.
    pub next: Option<String>,
}

impl SourcesSummary {
    /// The counts of `sources`, as one page holding them all.
    pub fn count(sources: &[SourceView]) -> SourcesSummary {
        let mut summary = SourcesSummary {
            total: sources.len(),
            page: 1,
            pages: 1,
            ..SourcesSummary::default()
        };
        for s in sources {
            match s.state() {
                SourceState::Failing => summary.failing += 1,
                SourceState::Degraded => summary.degraded += 1,
                SourceState::Ok => summary.ok += 1,
            }
        }
        summary
    }
}

/// One item in a list of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemView {
    /// The item's title.
    pub title: String,
    /// Where it links to (see [`crate::feed::feed_link_for`]); shown as a link only
    /// when it is an `http(s)` URL.
    pub link: Option<String>,
    /// The source that saw it.
    pub source: String,
    /// Its date: publication date, else first seen (or, for a match, when it matched).
    pub when: DateTime<Utc>,
}

/// One alert rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleView {
    /// The rule's name.
    pub name: String,
    /// Its most recent matches, newest first.
    pub recent: Vec<ItemView>,
    /// Deliveries of its matches that were given up on.
    pub failed: Vec<FailedDelivery>,
}

/// One feed in its three formats, as absolute or server-relative URLs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedLink {
    /// Human title ("lookout: hf-daily").
    pub title: String,
    /// RSS 2.0 URL.
    pub rss: String,
    /// Atom URL.
    pub atom: String,
    /// JSON Feed URL.
    pub json: String,
}

/// Escapes text for the page or the OPML (the crate's one escaping function, shared
/// with the feeds). The templates apply it to every value through [`PageEscaper`].
pub use crate::feed::escape_html;

/// The templates' escaper: [`escape_html`], which also drops the characters XML 1.0
/// forbids, so the page stays polyglot (well-formed XML) whatever a capture holds.
/// `assets/status/askama.toml` makes it the default of every `.html` and `.opml`
/// template, so no value can be written unescaped without a visible `|safe`.
#[derive(Debug, Clone, Copy)]
pub struct PageEscaper;

impl askama::filters::Escaper for PageEscaper {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, text: &str) -> std::fmt::Result {
        dest.write_str(&escape_html(text))
    }
}

/// The status page: `assets/status/page.html`, CSS inlined from
/// `assets/status/status.css` at compile time.
#[derive(askama::Template)]
#[template(path = "page.html", config = "assets/status/askama.toml")]
struct Page<'a> {
    view: &'a StatusView,
    /// Rendered apart (see [`SourcesSection`]) and inserted with `|safe`: its values
    /// are escaped inside it.
    sources: SourcesSection<'a>,
    /// The interests section, rendered apart (its values escaped inside it); empty
    /// without interests.
    interests: String,
}

/// The sources section of the page (`assets/status/sources.html`), one template of its
/// own so that how sources are listed can change without touching the rest.
#[derive(askama::Template)]
#[template(path = "sources.html", config = "assets/status/askama.toml")]
struct SourcesSection<'a> {
    sources: &'a [SourceView],
    summary: &'a SourcesSummary,
    /// When the view was gathered, for the relative times.
    now: DateTime<Utc>,
}

/// One interest as the status page shows it: its model and the items it ranks, each
/// with "like" and "not interested" buttons.
#[derive(Debug, Clone, PartialEq)]
pub struct InterestView {
    /// The interest's name.
    pub name: String,
    /// Its threshold.
    pub min_score: f32,
    /// Liked papers its model learned from.
    pub positives: usize,
    /// Of those, the ones found in the store.
    pub matched: usize,
    /// The model's vocabulary size.
    pub vocabulary: usize,
    /// When the model was trained.
    pub trained_at: Option<DateTime<Utc>>,
    /// Why the last training failed.
    pub error: Option<String>,
    /// Where its buttons post (with the token query).
    pub action: String,
    /// Its items at or above the threshold, newest first.
    pub items: Vec<ScoredView>,
    /// The newest other items, scored by the model in force, to judge too.
    pub others: Vec<ScoredView>,
}

/// One scored item with its buttons.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredView {
    /// The item's row id, which the buttons send.
    pub id: i64,
    /// Title.
    pub title: String,
    /// Link, shown as one only when it is http(s).
    pub link: Option<String>,
    /// Score.
    pub score: f32,
    /// The terms that weighed most.
    pub terms: Vec<String>,
    /// What the user said of it so far ("like", "not_interested").
    pub verdict: Option<String>,
}

impl InterestView {
    /// The threshold as the page shows it (see [`crate::alert::interest::shown_score`]).
    pub fn min_score_text(&self) -> String {
        crate::alert::interest::shown_score(self.min_score)
    }
}

impl ScoredView {
    /// The score as the page shows it (see [`crate::alert::interest::shown_score`]).
    pub fn score_text(&self) -> String {
        crate::alert::interest::shown_score(self.score)
    }
}

/// The interests section (`assets/status/interests.html`).
#[derive(askama::Template)]
#[template(path = "interests.html", config = "assets/status/askama.toml")]
struct InterestsSection<'a> {
    interests: &'a [InterestView],
    form_token: &'a str,
    now: DateTime<Utc>,
}

/// Renders the status page as a complete HTML5 document.
pub fn render_status_page(view: &StatusView) -> String {
    render_status_page_with(view, &[], "")
}

/// [`render_status_page`] with an interests section, whose buttons carry
/// `form_token` (the page's own, see `daemon::interests::Interests::form_token`).
pub fn render_status_page_with(
    view: &StatusView,
    interests: &[InterestView],
    form_token: &str,
) -> String {
    let section = InterestsSection {
        interests,
        form_token,
        now: view.generated_at,
    };
    let page = Page {
        view,
        sources: SourcesSection {
            sources: &view.sources,
            summary: &view.sources_summary,
            now: view.generated_at,
        },
        interests: if interests.is_empty() {
            String::new()
        } else {
            askama::Template::render(&section).unwrap_or_default()
        },
    };
    // Rendering writes into a String and calls no fallible filter: it cannot fail.
    askama::Template::render(&page).unwrap_or_default()
}

/// A link from a captured page when it may be rendered as a clickable `href`: only
/// absolute `http` and `https` URLs (not `javascript:`, `data:` and the like), since
/// escaping does not stop such a URL from running when clicked.
fn safe_href(link: &Option<String>) -> Option<&str> {
    link.as_deref()
        .map(str::trim)
        .filter(|l| url::Url::parse(l).is_ok_and(|u| matches!(u.scheme(), "http" | "https")))
}

/// `2026-11-25 08:09 UTC`.
fn format_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// How long before `now` the time `t` was, in the largest unit that fits.
fn ago(t: &DateTime<Utc>, now: &DateTime<Utc>) -> String {
    let secs = (*now - *t).num_seconds();
    match secs {
        s if s < 0 => format_time(t),
        0..60 => "just now".to_owned(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        86_400..2_592_000 => format!("{} d ago", secs / 86_400),
        _ => t.format("%Y-%m-%d").to_string(),
    }
}

/// The OPML list: `assets/status/feeds.opml`.
#[derive(askama::Template)]
#[template(path = "feeds.opml", config = "assets/status/askama.toml")]
struct Opml<'a> {
    title: &'a str,
    feeds: &'a [FeedLink],
}

/// Renders an OPML 2.0 subscription list with one outline per feed (its RSS URL, which
/// every reader understands; the Atom and JSON variants would only subscribe the same
/// items twice).
pub fn render_opml(title: &str, feeds: &[FeedLink]) -> String {
    // As for the page: rendering into a String cannot fail.
    askama::Template::render(&Opml { title, feeds }).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("valid test time")
            .to_utc()
    }

    fn feed(name: &str) -> FeedLink {
        FeedLink {
            title: format!("lookout: {name}"),
            rss: format!("http://127.0.0.1:8080/feeds/{name}.xml"),
            atom: format!("http://127.0.0.1:8080/feeds/{name}.atom"),
            json: format!("http://127.0.0.1:8080/feeds/{name}.json"),
        }
    }

    fn view() -> StatusView {
        let now = at("2026-11-25T12:00:00Z");
        let mut view = StatusView {
            title: "lookout".into(),
            version: "0.1.0".into(),
            generated_at: now,
            reload_error: None,
            store_problem: None,
            replica: None,
            sources: vec![
                SourceView {
                    name: "drop".into(),
                    kind: "folder".into(),
                    ok: true,
                    last_success: Some(at("2026-11-25T11:55:00Z")),
                    last_error: None,
                    last_error_at: None,
                    consecutive_failures: 0,
                    warnings: Vec::new(),
                },
                SourceView {
                    name: "hf-daily".into(),
                    kind: "http".into(),
                    ok: false,
                    last_success: Some(at("2026-11-24T09:00:00Z")),
                    last_error: Some("HTTP 503 from huggingface.co".into()),
                    last_error_at: Some(at("2026-11-25T11:30:00Z")),
                    consecutive_failures: 3,
                    warnings: Vec::new(),
                },
            ],
            items: vec![ItemView {
                title: "Diffusion models are real-time game engines".into(),
                link: Some("https://arxiv.org/abs/2408.14837".into()),
                source: "hf-daily".into(),
                when: at("2026-11-25T10:00:00Z"),
            }],
            rules: vec![RuleView {
                name: "diffusion".into(),
                recent: vec![],
                failed: vec![FailedDelivery {
                    rule: "diffusion".into(),
                    notifier: "phone".into(),
                    title: "Some paper".into(),
                    error: "ntfy answered 401".into(),
                    at: at("2026-11-25T11:00:00Z"),
                }],
            }],
            outbox: OutboxCounts {
                pending: 2,
                failed: 1,
                delivered: 10,
            },
            feeds: vec![feed("all"), feed("drop")],
            opml_url: "/feeds.opml".into(),
            sources_summary: Default::default(),
            more_feeds: 0,
        };
        view.sources_summary = SourcesSummary::count(&view.sources);
        view
    }

    /// Every text node of the document, concatenated.
    fn text_of(doc: &roxmltree::Document<'_>) -> String {
        doc.descendants()
            .filter(|n| n.is_text())
            .filter_map(|n| n.text())
            .collect()
    }

    fn parse(html: &str) -> roxmltree::Document<'_> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..roxmltree::ParsingOptions::default()
        };
        roxmltree::Document::parse_with_options(html, opts)
            .unwrap_or_else(|e| panic!("page is not well-formed: {e}\n{html}"))
    }

    #[test]
    fn escape_html_escapes_markup_quotes_and_ampersands() {
        assert_eq!(
            escape_html(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(escape_html("plain text"), "plain text");
        assert_eq!(escape_html("bell\u{7}"), "bell");
    }

    #[test]
    fn status_page_is_well_formed_with_phone_viewport_and_dark_mode() {
        let html = render_status_page(&view());
        assert!(html.starts_with("<!DOCTYPE html>"));
        let doc = parse(&html);
        let meta = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name("meta") && n.attribute("name") == Some(name))
                .and_then(|n| n.attribute("content"))
        };
        assert_eq!(
            meta("viewport"),
            Some("width=device-width, initial-scale=1")
        );
        assert!(html.contains("prefers-color-scheme: dark"));
        assert!(
            !doc.descendants().any(|n| n.has_tag_name("script")),
            "the page needs no script"
        );
    }

    #[test]
    fn status_page_shows_sources_items_rules_and_feed_links() {
        let html = render_status_page(&view());
        let doc = parse(&html);
        let text = text_of(&doc);
        for expected in [
            "drop",
            "hf-daily",
            "failing",
            "3 consecutive failures",
            "HTTP 503 from huggingface.co",
            "Diffusion models are real-time game engines",
            "diffusion",
            "ntfy answered 401",
            "2 pending",
        ] {
            assert!(text.contains(expected), "page lacks {expected:?}:\n{html}");
        }
        let hrefs: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("a"))
            .filter_map(|n| n.attribute("href"))
            .collect();
        for expected in [
            "https://arxiv.org/abs/2408.14837",
            "http://127.0.0.1:8080/feeds/drop.xml",
            "http://127.0.0.1:8080/feeds/drop.atom",
            "http://127.0.0.1:8080/feeds/drop.json",
            "http://127.0.0.1:8080/feeds/all.xml",
            "/feeds.opml",
        ] {
            assert!(
                hrefs.contains(&expected),
                "no link to {expected}: {hrefs:?}"
            );
        }
    }

    #[test]
    fn status_page_relative_times_count_from_generation() {
        let html = render_status_page(&view());
        assert!(html.contains(">5 min ago</time>"), "{html}");
        assert!(html.contains(">30 min ago</time>"), "{html}");
        assert!(html.contains(">2 h ago</time>"), "{html}");
    }

    #[test]
    fn status_page_shows_reload_error_only_when_there_is_one() {
        let mut v = view();
        let html = render_status_page(&v);
        assert!(!html.contains("reload-error"));
        v.reload_error = Some("lookout.toml:3:9: key `every`: invalid duration \"3x\"".into());
        let html = render_status_page(&v);
        let doc = parse(&html);
        let notice = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("reload-error"))
            .expect("reload error notice");
        let text: String = notice.descendants().filter_map(|n| n.text()).collect();
        assert!(text.contains("invalid duration \"3x\""), "{text}");
    }

    #[test]
    fn status_page_shows_a_store_problem_at_the_top_only_when_there_is_one() {
        let mut v = view();
        assert!(!render_status_page(&v).contains("store-problem"));
        v.store_problem = Some(
            "the store is damaged (Tree 2 page 1040 <bad>). To repair: `sqlite3 lookout.db .recover`"
                .into(),
        );
        let html = render_status_page(&v);
        let doc = parse(&html);
        let notice = doc
            .descendants()
            .find(|n| n.attribute("id") == Some("store-problem"))
            .expect("store notice");
        let text: String = notice.descendants().filter_map(|n| n.text()).collect();
        assert!(text.contains("Tree 2 page 1040 <bad>"), "{text}");
        assert!(text.contains(".recover"), "{text}");
        assert!(
            html.find("store-problem") < html.find("id=\"sources\""),
            "above the sources"
        );
    }

    #[test]
    fn hostile_text_is_escaped_everywhere_on_the_page() {
        let hostile = r#"<script>alert('x')</script> "q" & <img src=x onerror=alert(1)>"#;
        let mut v = view();
        v.title = hostile.into();
        v.version = hostile.into();
        v.reload_error = Some(hostile.into());
        v.store_problem = Some(hostile.into());
        v.sources[0].name = hostile.into();
        v.sources[0].kind = hostile.into();
        v.sources[1].last_error = Some(hostile.into());
        v.items[0].title = hostile.into();
        v.items[0].source = hostile.into();
        v.items[0].link = Some(format!("https://example.org/?q=\"><script>{hostile}"));
        v.rules[0].name = hostile.into();
        v.rules[0].failed[0].title = hostile.into();
        v.rules[0].failed[0].error = hostile.into();
        v.rules[0].failed[0].notifier = hostile.into();
        v.feeds[0].title = hostile.into();
        v.feeds[0].rss = format!("/x.xml?\"{hostile}");
        v.opml_url = format!("/feeds.opml?\"{hostile}");
        let html = render_status_page(&v);
        let doc = parse(&html);
        assert!(
            !doc.descendants()
                .any(|n| n.has_tag_name("script") || n.has_tag_name("img")),
            "hostile markup became elements:\n{html}"
        );
        // The hostile text survives as text, the way a person should read it.
        assert!(text_of(&doc).contains("<script>alert('x')</script> \"q\" & <img"));
        assert!(!html.contains("<script>"));
        assert!(!html.contains("onerror=alert(1)>"));
    }

    #[test]
    fn characters_xml_forbids_are_dropped_so_the_page_stays_well_formed() {
        let mut v = view();
        v.sources[1].last_error = Some("bad\u{1}byte\u{1b}[31m".into());
        v.items[0].title = "form\u{c}feed".into();
        let html = render_status_page(&v);
        let text = text_of(&parse(&html));
        assert!(text.contains("badbyte[31m"), "{text}");
        assert!(text.contains("formfeed"), "{text}");
    }

    #[test]
    fn non_http_links_are_not_clickable() {
        let mut v = view();
        v.items[0].link = Some("javascript:alert(document.cookie)".into());
        v.items.push(ItemView {
            title: "data link".into(),
            link: Some("data:text/html,<script>alert(1)</script>".into()),
            source: "drop".into(),
            when: v.generated_at,
        });
        let html = render_status_page(&v);
        let doc = parse(&html);
        let hrefs: Vec<&str> = doc
            .descendants()
            .filter_map(|n| n.attribute("href"))
            .collect();
        assert!(
            hrefs
                .iter()
                .all(|h| !h.starts_with("javascript:") && !h.starts_with("data:")),
            "{hrefs:?}"
        );
        assert!(text_of(&doc).contains("Diffusion models are real-time game engines"));
    }

    #[test]
    fn empty_view_renders_explanations_not_empty_lists() {
        let mut v = view();
        v.sources.clear();
        v.items.clear();
        v.rules.clear();
        let html = render_status_page(&v);
        let doc = parse(&html);
        let text = text_of(&doc);
        assert!(text.contains("No sources are configured."));
        assert!(text.contains("No items yet."));
        assert!(text.contains("No alert rules are configured."));
    }

    #[test]
    fn opml_lists_every_feed_and_parses_as_xml() {
        let feeds = vec![feed("all"), feed("drop"), feed("hf-daily")];
        let opml = render_opml("lookout feeds", &feeds);
        let doc = roxmltree::Document::parse(&opml).expect("OPML is well-formed XML");
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "opml");
        assert_eq!(root.attribute("version"), Some("2.0"));
        let title = root
            .descendants()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text());
        assert_eq!(title, Some("lookout feeds"));
        let outlines: Vec<(Option<&str>, Option<&str>, Option<&str>)> = root
            .descendants()
            .filter(|n| n.has_tag_name("outline"))
            .map(|n| {
                (
                    n.attribute("type"),
                    n.attribute("text"),
                    n.attribute("xmlUrl"),
                )
            })
            .collect();
        let expected: Vec<(Option<&str>, Option<&str>, Option<&str>)> = feeds
            .iter()
            .map(|f| (Some("rss"), Some(f.title.as_str()), Some(f.rss.as_str())))
            .collect();
        assert_eq!(outlines, expected);
    }

    #[test]
    fn opml_escapes_hostile_titles_and_urls() {
        let hostile = FeedLink {
            title: "a <b> & \"c\" 'd'\u{1}".into(),
            rss: "http://h/x.xml?a=1&b=\"2\"".into(),
            atom: String::new(),
            json: String::new(),
        };
        let opml = render_opml("t & <t>", std::slice::from_ref(&hostile));
        let doc = roxmltree::Document::parse(&opml).expect("OPML is well-formed XML");
        let outline = doc
            .descendants()
            .find(|n| n.has_tag_name("outline"))
            .expect("an outline");
        assert_eq!(outline.attribute("text"), Some("a <b> & \"c\" 'd'"));
        assert_eq!(
            outline.attribute("xmlUrl"),
            Some("http://h/x.xml?a=1&b=\"2\"")
        );
        let title = doc
            .descendants()
            .find(|n| n.has_tag_name("title"))
            .and_then(|n| n.text());
        assert_eq!(title, Some("t & <t>"));
    }

    #[test]
    fn interest_items_carry_escaped_text_and_buttons_with_the_form_token() {
        let scored = |id, title: &str| ScoredView {
            id,
            title: title.into(),
            link: Some("javascript:alert(1)".into()),
            score: 0.995,
            terms: vec!["dark <matter>".into()],
            verdict: None,
        };
        let interests = [InterestView {
            name: "cosmo".into(),
            min_score: 0.99,
            positives: 3,
            matched: 2,
            vocabulary: 100,
            trained_at: None,
            error: None,
            action: "/interests/cosmo/verdict?token=a&b".into(),
            items: vec![scored(7, "<script>x</script>")],
            others: vec![scored(8, "below")],
        }];
        let html = render_status_page_with(&view(), &interests, "n.t");
        let doc = parse(&html);
        let forms: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("form"))
            .collect();
        assert_eq!(forms.len(), 2, "a form per paper");
        for form in &forms {
            assert_eq!(form.attribute("method"), Some("post"));
            assert_eq!(
                form.attribute("action"),
                Some("/interests/cosmo/verdict?token=a&b")
            );
            let token = form
                .descendants()
                .find(|n| n.attribute("name") == Some("form_token"));
            assert_eq!(token.and_then(|n| n.attribute("value")), Some("n.t"));
        }
        assert!(!html.contains("<script>x"));
        assert!(!html.contains("href=\"javascript:"));
        assert!(text_of(&doc).contains("dark <matter>"));
        // Without interests the section is not there at all.
        assert!(!render_status_page(&view()).contains("id=\"interests\""));
    }
}
