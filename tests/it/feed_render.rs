//! Rendered feeds read back by real parsers: rss, atom_syndication, serde_json, feed-rs.

use crate::common::*;
use chrono::{DateTime, NaiveDate};
use lookout::feed::{etag, feed_link_for, render_atom, render_json_feed, render_rss, Channel};
use lookout::store::StoredItem;

fn channel(stylesheet: Option<&str>) -> Channel {
    Channel {
        title: "lookout".into(),
        description: "Everything lookout saw".into(),
        site_link: "http://127.0.0.1:8080/".into(),
        self_url: "http://127.0.0.1:8080/feed.xml".into(),
        stylesheet: stylesheet.map(str::to_owned),
        guid_scope: None,
        dates: lookout::feed::FeedDate::default(),
    }
}

/// Three items, newest first, as the store lists them.
fn items() -> Vec<StoredItem> {
    vec![
        StoredItem {
            id: 3,
            key: "arxiv:2401.00003".into(),
            title: "Diffusion Transformers at Scale".into(),
            link: None,
            summary: "We scale DiTs.".into(),
            authors: vec!["Ada Lovelace".into(), "Alan Turing".into()],
            author_count: Some(2),
            publisher: None,
            source: "hf".into(),
            published: NaiveDate::from_ymd_opt(2024, 1, 3).map(lookout::entry::day_start),
            listed: None,
            arxiv_id: Some("2401.00003".into()),
            format: "hf-papers".into(),
            first_seen: at(200),
            updated_at: at(300),
        },
        StoredItem {
            id: 2,
            key: "url:https://example.com/news/2".into(),
            title: "Robots in the newsroom".into(),
            link: Some("https://example.com/news/2".into()),
            summary: "A story.".into(),
            authors: Vec::new(),
            author_count: None,
            publisher: Some("Al Jazeera".into()),
            source: "aitopics".into(),
            published: None,
            listed: None,
            arxiv_id: None,
            format: "aitopics".into(),
            first_seen: at(100),
            updated_at: at(100),
        },
        StoredItem {
            id: 1,
            key: "title:an old paper".into(),
            title: "An Old Paper".into(),
            link: None,
            summary: String::new(),
            authors: Vec::new(),
            author_count: Some(7),
            publisher: None,
            source: "arxiv".into(),
            published: None,
            listed: None,
            arxiv_id: Some("2312.99999".into()),
            format: "arxiv".into(),
            first_seen: at(0),
            updated_at: at(0),
        },
    ]
}

/// An item whose every text field is hostile.
fn hostile() -> StoredItem {
    let mut title = String::from(
        "]]> <script>alert(1)</script> & \u{1}\u{8}\u{b}\u{c}\u{1f}\u{fffe}\u{ffff} end",
    );
    title.push_str(&"x".repeat(1 << 20));
    StoredItem {
        id: 9,
        key: "title:]]> <script> & \u{0}x".into(),
        title,
        link: Some("https://example.com/?a=1&b=<2>".into()),
        summary: "]]><![CDATA[ <script>alert('x')</script> & &amp; \u{0}\u{7}".into(),
        authors: vec!["<b>Mallory</b> & \u{2}co".into()],
        author_count: Some(1),
        publisher: Some("]]>pub".into()),
        source: "drop".into(),
        published: None,
        listed: None,
        arxiv_id: None,
        format: "aitopics".into(),
        first_seen: at(0),
        updated_at: at(0),
    }
}

#[test]
fn rss_items_keep_order_guid_date_link_and_description() {
    let bytes = render_rss(&channel(None), &items());
    let feed = rss::Channel::read_from(&bytes[..]).expect("valid RSS");
    assert_eq!(feed.title, "lookout");
    let titles: Vec<_> = feed
        .items
        .iter()
        .filter_map(|i| i.title.as_deref())
        .collect();
    assert_eq!(
        titles,
        [
            "Diffusion Transformers at Scale",
            "Robots in the newsroom",
            "An Old Paper"
        ]
    );

    let first = &feed.items[0];
    let guid = first.guid.as_ref().expect("guid");
    assert_eq!(guid.value, "arxiv:2401.00003");
    assert!(!guid.permalink);
    // Dated when it appeared (its listing gave no day, so when lookout first saw it),
    // not by the paper's own date, which the description keeps.
    let date = DateTime::parse_from_rfc2822(first.pub_date.as_deref().expect("pubDate"))
        .expect("RFC 2822 date");
    assert_eq!(date.to_utc(), at(200));
    // Authors as readers show them: Dublin Core creators.
    let creators = first
        .dublin_core_ext
        .as_ref()
        .expect("dc:creator")
        .creators();
    assert_eq!(creators, ["Ada Lovelace", "Alan Turing"]);
    assert_eq!(
        first.link.as_deref(),
        Some("https://huggingface.co/papers?q=Diffusion+Transformers+at+Scale")
    );
    let description = first.description.as_deref().expect("description");
    assert!(description.contains("We scale DiTs."));
    assert!(description.contains("Ada Lovelace, Alan Turing"));
    assert!(
        description.contains("published 3 Jan 2024"),
        "{description}"
    );

    let second = &feed.items[1];
    assert_eq!(second.link.as_deref(), Some("https://example.com/news/2"));
    assert!(second
        .description
        .as_deref()
        .unwrap_or("")
        .contains("Al Jazeera"));
    // No publication date: first-seen time.
    let date = DateTime::parse_from_rfc2822(second.pub_date.as_deref().expect("pubDate"))
        .expect("RFC 2822 date");
    assert_eq!(date.to_utc(), at(100));

    let third = &feed.items[2];
    assert_eq!(
        third.link.as_deref(),
        Some("https://arxiv.org/abs/2312.99999")
    );
    assert!(third
        .description
        .as_deref()
        .unwrap_or("")
        .contains("7 authors"));
    for (item, stored) in feed.items.iter().zip(items()) {
        assert_eq!(item.link, feed_link_for(&stored));
    }
}

#[test]
fn rss_channel_has_atom_self_link() {
    let bytes = render_rss(&channel(None), &items());
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(
        text.contains("xmlns:atom=\"http://www.w3.org/2005/Atom\""),
        "{text}"
    );
    let feed = rss::Channel::read_from(&bytes[..]).expect("valid RSS");
    let links = &feed.extensions["atom"]["link"];
    assert_eq!(links.len(), 1);
    assert_eq!(links[0].attrs["rel"], "self");
    assert_eq!(links[0].attrs["href"], "http://127.0.0.1:8080/feed.xml");
    assert_eq!(links[0].attrs["type"], "application/rss+xml");

    let parsed = feed_rs::parser::parse(&bytes[..]).expect("feed-rs reads it");
    assert_eq!(parsed.entries.len(), 3);
    assert!(parsed
        .links
        .iter()
        .any(|l| l.href == "http://127.0.0.1:8080/feed.xml" && l.rel.as_deref() == Some("self")));
}

/// Asserts `bytes` holds no character XML 1.0 forbids, which lenient parsers let by.
fn assert_only_xml_chars(bytes: &[u8]) {
    let text = std::str::from_utf8(bytes).expect("utf-8");
    let bad = text.chars().find(|&c| {
        (c < ' ' && !matches!(c, '\t' | '\n' | '\r')) || c == '\u{fffe}' || c == '\u{ffff}'
    });
    assert_eq!(bad, None);
}

#[test]
fn hostile_text_still_yields_well_formed_feeds() {
    let items = vec![hostile()];
    let expected_title_start = "]]> <script>alert(1)</script> &  end";

    let bytes = render_rss(&channel(None), &items);
    assert_only_xml_chars(&bytes);
    let feed = rss::Channel::read_from(&bytes[..]).expect("hostile RSS parses");
    let item = &feed.items[0];
    let title = item.title.as_deref().expect("title");
    assert!(title.starts_with(expected_title_start), "{}", &title[..60]);
    assert_eq!(title.len(), expected_title_start.len() + (1 << 20));
    assert_eq!(
        item.guid.as_ref().map(|g| g.value.as_str()),
        Some("title:]]> <script> & x")
    );
    assert_eq!(item.link.as_deref(), Some("https://example.com/?a=1&b=<2>"));
    // The description is HTML in which the hostile text is escaped text, not markup.
    let description = item.description.as_deref().expect("description");
    assert!(
        description.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"),
        "{description}"
    );
    assert!(description.contains("&amp;amp;"));
    assert!(description.contains("&lt;b&gt;Mallory&lt;/b&gt; &amp; co"));
    assert!(!description.contains("<script>"));
    let parsed = feed_rs::parser::parse(&bytes[..]).expect("feed-rs reads hostile RSS");
    assert_eq!(parsed.entries.len(), 1);

    let bytes = render_atom(&channel(None), &items);
    assert_only_xml_chars(&bytes);
    let feed = atom_syndication::Feed::read_from(&bytes[..]).expect("hostile Atom parses");
    assert!(feed.entries[0]
        .title
        .value
        .starts_with(expected_title_start));
    feed_rs::parser::parse(&bytes[..]).expect("feed-rs reads hostile Atom");

    let bytes = render_json_feed(&channel(None), &items);
    let feed: serde_json::Value = serde_json::from_slice(&bytes).expect("hostile JSON parses");
    let title = feed["items"][0]["title"].as_str().expect("title");
    assert!(title.starts_with(expected_title_start));
    feed_rs::parser::parse(&bytes[..]).expect("feed-rs reads hostile JSON Feed");
}

#[test]
fn stylesheet_instruction_follows_the_declaration() {
    let bytes = render_rss(&channel(Some("/feed.xsl")), &items());
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(
        text.starts_with(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<?xml-stylesheet type=\"text/xsl\" href=\"/feed.xsl\"?>"
        ),
        "{}",
        &text[..120]
    );
    rss::Channel::read_from(&bytes[..]).expect("still valid RSS");
    feed_rs::parser::parse(&bytes[..]).expect("feed-rs reads it");

    let bytes = render_atom(&channel(Some("/feed.xsl")), &items());
    let text = String::from_utf8(bytes.clone()).expect("utf-8");
    assert!(
        text.starts_with("<?xml version=\"1.0\"?>\n<?xml-stylesheet"),
        "{}",
        &text[..80]
    );
    atom_syndication::Feed::read_from(&bytes[..]).expect("still valid Atom");

    let plain = String::from_utf8(render_rss(&channel(None), &items())).expect("utf-8");
    assert!(!plain.contains("xml-stylesheet"));
}

#[test]
fn atom_entries_match_the_rss_mapping() {
    let bytes = render_atom(&channel(None), &items());
    let feed = atom_syndication::Feed::read_from(&bytes[..]).expect("valid Atom");
    assert_eq!(feed.id, "http://127.0.0.1:8080/feed.xml");
    assert!(feed
        .links
        .iter()
        .any(|l| l.rel == "self" && l.href == "http://127.0.0.1:8080/feed.xml"));
    assert_eq!(feed.updated.to_utc(), at(300), "newest item change");
    let titles: Vec<_> = feed
        .entries
        .iter()
        .map(|e| e.title.value.as_str())
        .collect();
    assert_eq!(
        titles,
        [
            "Diffusion Transformers at Scale",
            "Robots in the newsroom",
            "An Old Paper"
        ]
    );
    let first = &feed.entries[0];
    assert_eq!(first.id, "urn:lookout:arxiv%3A2401%2E00003");
    assert_eq!(first.published.map(|d| d.to_utc()), Some(at(200)));
    assert_eq!(first.updated.to_utc(), at(300));
    assert_eq!(first.authors.len(), 2);
    assert_eq!(
        first.links.first().map(|l| l.href.as_str()),
        Some("https://huggingface.co/papers?q=Diffusion+Transformers+at+Scale")
    );
    let parsed = feed_rs::parser::parse(&bytes[..]).expect("feed-rs reads it");
    assert_eq!(parsed.entries.len(), 3);
}

#[test]
fn the_published_setting_dates_items_by_their_own_date() {
    let mut channel = channel(None);
    channel.dates = lookout::feed::FeedDate::Published;
    let bytes = render_rss(&channel, &items());
    let feed = rss::Channel::read_from(&bytes[..]).expect("valid RSS");
    let date = DateTime::parse_from_rfc2822(feed.items[0].pub_date.as_deref().expect("pubDate"))
        .expect("RFC 2822 date");
    assert_eq!(
        date.to_utc(),
        NaiveDate::from_ymd_opt(2024, 1, 3)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .expect("date")
            .and_utc()
    );
}

#[test]
fn listed_dates_keep_their_instant_and_offset() {
    let mut items = items();
    items[1].listed = DateTime::parse_from_rfc3339("2026-05-19T22:30:00-04:00").ok();
    let bytes = render_rss(&channel(None), &items);
    let feed = rss::Channel::read_from(&bytes[..]).expect("valid RSS");
    let date = DateTime::parse_from_rfc2822(feed.items[1].pub_date.as_deref().expect("pubDate"))
        .expect("RFC 2822 date");
    assert_eq!(date.to_utc().to_rfc3339(), "2026-05-20T02:30:00+00:00");
}

#[test]
fn guids_are_unique_per_feed() {
    let all = render_rss(&channel(None), &items());
    let mut per_source = channel(None);
    per_source.guid_scope = Some("source:hf".into());
    let source = render_rss(&per_source, &items());
    let guids = |bytes: &[u8]| -> Vec<String> {
        rss::Channel::read_from(bytes)
            .expect("valid RSS")
            .items
            .iter()
            .map(|i| i.guid.as_ref().expect("guid").value.clone())
            .collect()
    };
    let (all, source) = (guids(&all), guids(&source));
    assert_eq!(
        all[0], "arxiv:2401.00003",
        "the all-items feed keeps the item key"
    );
    assert_eq!(source[0], "arxiv:2401.00003@source:hf");
    assert!(all.iter().all(|g| !source.contains(g)));
}

#[test]
fn json_feed_matches_the_rss_mapping() {
    let bytes = render_json_feed(&channel(None), &items());
    let feed: serde_json::Value = serde_json::from_slice(&bytes).expect("valid JSON");
    assert_eq!(feed["version"], "https://jsonfeed.org/version/1.1");
    assert_eq!(feed["feed_url"], "http://127.0.0.1:8080/feed.xml");
    assert_eq!(feed["home_page_url"], "http://127.0.0.1:8080/");
    let items = feed["items"].as_array().expect("items");
    assert_eq!(items.len(), 3);
    assert_eq!(items[0]["id"], "arxiv:2401.00003");
    assert_eq!(items[0]["date_published"], at(200).to_rfc3339());
    assert_eq!(
        items[0]["_lookout"]["published"], "2024-01-03T00:00:00+00:00",
        "the paper's own date stays in the item"
    );
    assert_eq!(items[0]["authors"][1]["name"], "Alan Turing");
    assert_eq!(items[1]["url"], "https://example.com/news/2");
    assert_eq!(items[2]["title"], "An Old Paper");
    let parsed = feed_rs::parser::parse(&bytes[..]).expect("feed-rs reads it");
    assert_eq!(parsed.entries.len(), 3);
    assert_eq!(parsed.entries[0].id, "arxiv:2401.00003");
}

#[test]
fn empty_feeds_are_valid() {
    let rss_bytes = render_rss(&channel(None), &[]);
    assert!(rss::Channel::read_from(&rss_bytes[..])
        .expect("rss")
        .items
        .is_empty());
    let atom_bytes = render_atom(&channel(None), &[]);
    assert!(atom_syndication::Feed::read_from(&atom_bytes[..])
        .expect("atom")
        .entries
        .is_empty());
    let json: serde_json::Value =
        serde_json::from_slice(&render_json_feed(&channel(None), &[])).expect("json");
    assert_eq!(json["items"].as_array().map(Vec::len), Some(0));
}

#[test]
fn same_items_render_the_same_bytes_and_etag() {
    let a = render_rss(&channel(None), &items());
    let b = render_rss(&channel(None), &items());
    assert_eq!(a, b);
    assert_eq!(etag(&a), etag(&b));
    let mut changed = items();
    changed[0].summary.push_str(" More.");
    assert_ne!(etag(&a), etag(&render_rss(&channel(None), &changed)));
    assert_eq!(
        render_atom(&channel(None), &items()),
        render_atom(&channel(None), &items())
    );
}
