//! The status page, the OPML list and the feed stylesheet as files a browser can open.
//!
//! Besides checking them, these tests write a small static site to
//! `$CARGO_TARGET_TMPDIR/ops-preview/` (the status page as `index.html`, an RSS and an
//! Atom feed that reference `feed.xsl`, the stylesheet, `feeds.opml`), so a person or
//! `.ci/browser-check` can look at real renderings without a running daemon:
//!
//! ```sh
//! cargo test --test it ops_status_page::
//! (cd target/tmp/ops-preview && python3 -m http.server 8765 --bind 127.0.0.1) &
//! .ci/browser-check --screenshot /tmp/status.png http://127.0.0.1:8765/ "Newest items"
//! ```

use std::path::PathBuf;

use chrono::{DateTime, NaiveDate, Utc};
use lookout::feed::{self, Channel};
use lookout::status::{
    render_opml, render_status_page, FeedLink, ItemView, RuleView, SourceView, SourcesSummary,
    StatusView,
};
use lookout::store::{FailedDelivery, OutboxCounts, StoredItem};

/// The stylesheet the server serves at `/feed.xsl`.
const FEED_XSL: &str = include_str!("../../assets/feed.xsl");

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .expect("valid test time")
        .to_utc()
}

fn preview_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ops-preview");
    std::fs::create_dir_all(&dir).expect("create preview dir");
    dir
}

fn feed_link(name: &str, title: &str) -> FeedLink {
    let base = if name == "all" {
        "/feed".to_owned()
    } else {
        format!("/feeds/{name}")
    };
    FeedLink {
        title: title.to_owned(),
        rss: format!("{base}.xml"),
        atom: format!("{base}.atom"),
        json: format!("{base}.json"),
    }
}

/// A view like a day of real use: one healthy folder source, one failing HTTP source,
/// a few papers, a rule with a match and a failed delivery.
fn sample_view() -> StatusView {
    let now = at("2026-11-25T12:00:00Z");
    let item = |title: &str, link: &str, source: &str, when: &str| ItemView {
        title: title.to_owned(),
        link: Some(link.to_owned()),
        source: source.to_owned(),
        when: at(when),
    };
    let mut view = StatusView {
        title: "lookout".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        generated_at: now,
        reload_error: Some(
            "/etc/lookout/lookout.toml:27:9: key `every` in [[source]] #2: invalid duration \"3x\""
                .into(),
        ),
        store_problem: None,
        replica: None,
        sources: vec![
            SourceView {
                name: "drop".into(),
                kind: "folder".into(),
                ok: true,
                last_success: Some(at("2026-11-25T11:52:00Z")),
                last_error: None,
                last_error_at: None,
                consecutive_failures: 0,
                warnings: vec!["selectors.summary \"p.lede\" matched nothing on the page".into()],
            },
            SourceView {
                name: "hf-daily".into(),
                kind: "http".into(),
                ok: false,
                last_success: Some(at("2026-11-25T06:00:00Z")),
                last_error: Some(
                    "HTTP 503 Service Unavailable from huggingface.co (retry in 8m)".into(),
                ),
                last_error_at: Some(at("2026-11-25T11:40:00Z")),
                consecutive_failures: 4,
                warnings: Vec::new(),
            },
        ],
        items: vec![
            item(
                "Diffusion Models Are Real-Time Game Engines",
                "https://arxiv.org/abs/2408.14837",
                "hf-daily",
                "2026-11-25T08:00:00Z",
            ),
            item(
                "Scaling Laws for Sparse Autoencoders <b>& friends</b>",
                "https://huggingface.co/papers/2411.00001",
                "drop",
                "2026-11-25T07:30:00Z",
            ),
            ItemView {
                title: "A capture without a usable link".into(),
                link: Some("javascript:alert(1)".into()),
                source: "drop".into(),
                when: at("2026-11-24T18:00:00Z"),
            },
        ],
        rules: vec![RuleView {
            name: "diffusion".into(),
            recent: vec![item(
                "Diffusion Models Are Real-Time Game Engines",
                "https://arxiv.org/abs/2408.14837",
                "hf-daily",
                "2026-11-25T08:00:00Z",
            )],
            failed: vec![FailedDelivery {
                rule: "diffusion".into(),
                notifier: "phone".into(),
                title: "Score-Based Generative Modeling".into(),
                error: "ntfy answered 401 Unauthorized".into(),
                at: at("2026-11-25T10:15:00Z"),
            }],
        }],
        outbox: OutboxCounts {
            pending: 1,
            failed: 1,
            delivered: 12,
        },
        feeds: vec![
            feed_link("all", "lookout"),
            feed_link("drop", "lookout: drop"),
            feed_link("hf-daily", "lookout: hf-daily"),
        ],
        opml_url: "/feeds.opml".into(),
        sources_summary: Default::default(),
        more_feeds: 0,
    };
    view.sources_summary = SourcesSummary::count(&view.sources);
    view
}

fn stored(id: i64, title: &str, summary: &str, link: &str) -> StoredItem {
    StoredItem {
        id,
        key: format!("title:{id}"),
        title: title.to_owned(),
        link: Some(link.to_owned()),
        summary: summary.to_owned(),
        authors: vec!["Ada Lovelace".into(), "Alan Turing".into()],
        author_count: Some(2),
        publisher: Some("arXiv".into()),
        source: "drop".into(),
        published: NaiveDate::from_ymd_opt(2026, 11, 25).map(lookout::entry::day_start),
        listed: None,
        arxiv_id: None,
        format: "hf-papers".into(),
        first_seen: at("2026-11-25T08:00:00Z"),
        updated_at: at("2026-11-25T08:00:00Z"),
    }
}

fn sample_items() -> Vec<StoredItem> {
    vec![
        stored(
            1,
            "Diffusion Models Are Real-Time Game Engines",
            "We present GameNGen, the first game engine powered entirely by a neural model.",
            "https://arxiv.org/abs/2408.14837",
        ),
        stored(
            2,
            "Tags <b>stay</b> text & \"quotes\" too",
            "A summary with <script>alert('x')</script> & an ampersand.",
            "javascript:alert(1)",
        ),
    ]
}

fn channel(self_path: &str) -> Channel {
    Channel {
        title: "lookout".into(),
        description: "New entries from every watched listing page".into(),
        site_link: "/".into(),
        self_url: format!("http://127.0.0.1:8080{self_path}"),
        guid_scope: None,
        dates: lookout::feed::FeedDate::default(),
        stylesheet: Some("feed.xsl".into()),
    }
}

#[test]
fn feed_stylesheet_is_xslt_1_for_rss_and_atom() {
    let doc = roxmltree::Document::parse(FEED_XSL).expect("feed.xsl is well-formed XML");
    let root = doc.root_element();
    let xsl = "http://www.w3.org/1999/XSL/Transform";
    assert_eq!(root.tag_name().namespace(), Some(xsl));
    assert_eq!(root.tag_name().name(), "stylesheet");
    assert_eq!(root.attribute("version"), Some("1.0"));
    assert_eq!(
        root.lookup_namespace_uri(Some("atom")),
        Some("http://www.w3.org/2005/Atom")
    );
    let matches: Vec<&str> = root
        .children()
        .filter(|n| n.tag_name().namespace() == Some(xsl) && n.tag_name().name() == "template")
        .filter_map(|n| n.attribute("match"))
        .collect();
    for expected in ["/", "channel", "item", "atom:feed", "atom:entry"] {
        assert!(
            matches.contains(&expected),
            "no template for {expected}: {matches:?}"
        );
    }
    let output = root
        .children()
        .find(|n| n.tag_name().name() == "output")
        .expect("xsl:output");
    assert_eq!(output.attribute("method"), Some("html"));
}

#[test]
fn feeds_reference_the_stylesheet_before_their_root_element() {
    let items = sample_items();
    for (bytes, root) in [
        (feed::render_rss(&channel("/feed.xml"), &items), "rss"),
        (feed::render_atom(&channel("/feed.atom"), &items), "feed"),
    ] {
        let text = String::from_utf8(bytes).expect("UTF-8 feed");
        let pi = text
            .find("<?xml-stylesheet type=\"text/xsl\" href=\"feed.xsl\"?>")
            .unwrap_or_else(|| panic!("no stylesheet instruction in {text}"));
        let root_at = text
            .find(&format!("<{root}"))
            .unwrap_or_else(|| panic!("no <{root}> in {text}"));
        assert!(pi < root_at, "instruction after the root element: {text}");
        roxmltree::Document::parse(&text).expect("feed stays well-formed");
    }
}

#[test]
fn preview_site_is_written_and_well_formed() {
    let dir = preview_dir();
    let view = sample_view();
    let html = render_status_page(&view);
    let opml = render_opml("lookout feeds", &view.feeds);
    let items = sample_items();
    let files: [(&str, Vec<u8>); 5] = [
        ("index.html", html.clone().into_bytes()),
        ("feeds.opml", opml.clone().into_bytes()),
        ("feed.xml", feed::render_rss(&channel("/feed.xml"), &items)),
        (
            "feed.atom",
            feed::render_atom(&channel("/feed.atom"), &items),
        ),
        ("feed.xsl", FEED_XSL.as_bytes().to_vec()),
    ];
    for (name, bytes) in &files {
        std::fs::write(dir.join(name), bytes).expect("write preview file");
    }
    let opts = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..roxmltree::ParsingOptions::default()
    };
    let page = roxmltree::Document::parse_with_options(&html, opts).expect("page parses");
    let text: String = page.descendants().filter_map(|n| n.text()).collect();
    for expected in [
        "hf-daily",
        "4 consecutive failures",
        "Diffusion Models Are Real-Time Game Engines",
        "Scaling Laws for Sparse Autoencoders <b>& friends</b>",
        "ntfy answered 401 Unauthorized",
        "invalid duration \"3x\"",
    ] {
        assert!(text.contains(expected), "page lacks {expected:?}");
    }
    let opml_doc = roxmltree::Document::parse(&opml).expect("OPML parses");
    assert_eq!(
        opml_doc
            .descendants()
            .filter(|n| n.has_tag_name("outline"))
            .count(),
        view.feeds.len()
    );
    for (name, _) in &files {
        assert!(dir.join(name).is_file(), "{name} written");
    }
}
