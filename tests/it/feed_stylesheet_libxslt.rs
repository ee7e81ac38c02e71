//! The feeds' stylesheet run by libxslt (`xsltproc`, the XSLT engine of Chromium and
//! GNOME): one hostile item must not stop the whole page rendering (issue 13.10).

use std::process::Command;

use chrono::DateTime;
use lookout::feed::{render_atom, render_rss, Channel, FeedDate};
use lookout::store::StoredItem;

const STYLESHEET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/feed.xsl");

fn channel() -> Channel {
    Channel {
        title: "lookout".into(),
        description: "hostile".into(),
        site_link: "http://127.0.0.1:8080/".into(),
        self_url: "http://127.0.0.1:8080/feed.xml".into(),
        stylesheet: None,
        guid_scope: None,
        dates: FeedDate::default(),
    }
}

fn item(id: i64, title: &str, summary: String) -> StoredItem {
    StoredItem {
        id,
        key: format!("title:{id}"),
        title: title.into(),
        link: Some(format!("https://example.org/{id}")),
        summary,
        authors: vec!["Ada".into()],
        author_count: Some(1),
        publisher: None,
        source: "drop".into(),
        published: None,
        listed: None,
        arxiv_id: None,
        format: "feed".into(),
        first_seen: DateTime::UNIX_EPOCH,
        updated_at: DateTime::UNIX_EPOCH,
    }
}

/// Runs xsltproc over `feed`; `None` (after saying so) when it is not installed.
fn xsltproc(feed: &[u8]) -> Option<String> {
    if Command::new("xsltproc").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("LOOKOUT_REQUIRE_READERS").is_none(),
            "xsltproc is not installed"
        );
        crate::common::skipped("the libxslt check (xsltproc is not installed)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("feed.xml");
    std::fs::write(&path, feed).unwrap();
    let out = Command::new("xsltproc")
        .arg(STYLESHEET)
        .arg(&path)
        .output()
        .expect("run xsltproc");
    assert!(
        out.status.success(),
        "libxslt failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8 page"))
}

#[test]
fn thousands_of_entities_and_tags_in_one_summary_still_render() {
    let ampersands = "&".repeat(5_000);
    let tags = "<b>x</b>&lt;".repeat(2_000);
    let mixed: String = (0..3_000)
        .map(|i| if i % 7 == 0 { "&quot;" } else { "a&b" })
        .collect();
    let items = [
        item(1, "ampersands", ampersands.clone()),
        item(2, "tags", tags),
        item(3, "mixed", mixed.clone()),
        item(4, "after them", "still shown".into()),
    ];
    for feed in [
        render_rss(&channel(), &items),
        render_atom(&channel(), &items),
    ] {
        let Some(page) = xsltproc(&feed) else { return };
        assert!(page.contains("after them") && page.contains("still shown"));
        let doc = scraper::Html::parse_document(&page);
        let desc = scraper::Selector::parse("p.desc").expect("selector");
        let descs: Vec<String> = doc
            .select(&desc)
            .map(|p| p.text().collect::<String>())
            .collect();
        // Every entity decoded once, none lost or split at a cut.
        assert_eq!(descs[0].matches('&').count(), 5_000);
        assert!(descs[0].starts_with("&&&"));
        // A summary is text: markup in it is shown as written, never as markup.
        assert_eq!(descs[1].matches("<b>x</b>&lt;").count(), 2_000);
        assert!(descs[2].starts_with(&mixed), "{}", &descs[2][..80]);
    }
}
