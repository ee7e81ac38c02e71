//! Every page format's fixture parses exactly, field by field; sniffing picks the right
//! format; the same paper from the HF text capture, HTML page and JSON API is one item;
//! and nothing a page can contain makes a parser panic.

use crate::common::*;
use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use lookout::config::SelectorsConfig;
use lookout::entry::Entry;
use lookout::parse::{formats, parse_page, ParseContext, ParseError, ParseWarning};

fn captured() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 20, 12, 0, 0).unwrap()
}

fn ctx() -> ParseContext<'static> {
    ParseContext::at(captured())
}

fn parse(name: &str) -> (String, Vec<Entry>) {
    let parsed =
        parse_page(&fixture(name), "auto", &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
    (parsed.format.to_owned(), parsed.entries)
}

fn date(y: i32, m: u32, d: u32) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(y, m, d)
}

/// What a field-by-field test expects of an entry's identity and byline.
struct Paper<'a> {
    title: &'a str,
    arxiv_id: Option<&'a str>,
    link: Option<&'a str>,
    authors: &'a [&'a str],
    day: Option<NaiveDate>,
}

impl Paper<'_> {
    fn check(&self, e: &Entry) {
        let t = self.title;
        assert_eq!(e.title, t);
        assert_eq!(e.arxiv_id.as_deref(), self.arxiv_id, "{t}");
        assert_eq!(e.link.as_deref(), self.link, "{t}");
        assert_eq!(e.authors, strings(self.authors), "{t}");
        assert_eq!(e.published.map(|p| p.date_naive()), self.day, "{t}");
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

// ---------------------------------------------------------------------------------
// Sniffing
// ---------------------------------------------------------------------------------

#[test]
fn every_fixture_is_sniffed_as_its_format() {
    let expected = [
        ("hf_papers_may20.txt", "hf-papers", 27),
        ("hf_papers_apr17.txt", "hf-papers", 35),
        ("aitopics_energy.txt", "aitopics", 10),
        ("hf_papers_page.html", "hf-papers", 4),
        ("hf_papers_cards.html", "hf-papers", 3),
        ("hf_daily_papers_api.json", "hf-papers", 4),
        ("arxiv_list_new.html", "arxiv", 5),
        ("arxiv_list_recent.html", "arxiv", 4),
        ("aitopics_listing.html", "aitopics", 5),
        ("feed_rss2.xml", "feed", 3),
        ("feed_rss1.xml", "feed", 2),
        ("feed_rss091.xml", "feed", 2),
        ("feed_atom.xml", "feed", 2),
        ("feed.json", "feed", 2),
    ];
    for (name, format, count) in expected {
        let (got, entries) = parse(name);
        assert_eq!(got, format, "{name}");
        assert_eq!(entries.len(), count, "{name}");
        assert!(entries.iter().all(|e| e.format == format), "{name}");
    }
}

#[test]
fn every_text_field_is_clean() {
    for name in [
        "hf_papers_may20.txt",
        "aitopics_energy.txt",
        "hf_papers_page.html",
        "hf_daily_papers_api.json",
        "arxiv_list_new.html",
        "aitopics_listing.html",
        "feed_rss2.xml",
        "feed_atom.xml",
        "feed.json",
    ] {
        for e in parse(name).1 {
            for field in [&e.title, &e.summary]
                .into_iter()
                .chain(e.authors.iter())
                .chain(e.source.iter())
            {
                assert_eq!(field.trim(), field, "{name}: {field:?}");
                assert!(
                    !field.contains("  ") && !field.contains('\n') && !field.contains('\u{a0}'),
                    "{name}: {field:?}"
                );
            }
            assert!(!e.title.is_empty(), "{name}");
        }
    }
}

#[test]
fn text_that_matches_no_format_is_unrecognized() {
    let prose = b"Meeting notes\n\nWe talked about the budget and agreed to meet again.\n";
    assert!(matches!(
        parse_page(prose, "auto", &ctx()),
        Err(ParseError::Unrecognized { .. })
    ));
    let html = b"<!doctype html><html><body><p>Hello</p></body></html>";
    assert!(matches!(
        parse_page(html, "auto", &ctx()),
        Err(ParseError::Unrecognized { .. })
    ));
    let json = br#"{"hello": ["world"]}"#;
    assert!(matches!(
        parse_page(json, "auto", &ctx()),
        Err(ParseError::Unrecognized { .. })
    ));
}

#[test]
fn random_bytes_are_unrecognized_and_empty_pages_are_empty() {
    // A fixed pseudo-random sequence (xorshift), so the test is repeatable.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    let err = parse_page(&bytes, "auto", &ctx()).unwrap_err();
    assert!(matches!(err, ParseError::Unrecognized { .. }), "{err}");
    assert_eq!(parse_page(b"", "auto", &ctx()), Err(ParseError::Empty));
    assert_eq!(
        parse_page(b" \r\n\xC2\xA0\n", "auto", &ctx()),
        Err(ParseError::Empty)
    );
    assert_eq!(
        parse_page(b"x", "no-such-format", &ctx()),
        Err(ParseError::UnknownFormat("no-such-format".into()))
    );
}

#[test]
fn no_format_panics_on_any_fixture_or_garbage() {
    let mut pages: Vec<Vec<u8>> =
        std::fs::read_dir(format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|e| e.unwrap().path())
            // Subfolders (likes/) hold other inputs than pages.
            .filter(|p| p.is_file())
            .map(|p| std::fs::read(p).unwrap())
            .collect();
    let nasty: &[&[u8]] = &[
        b"\xff\xfe\x00<\x00r\x00s\x00s",
        b"<rss><channel><item><title>",
        b"[{\"paper\": {\"id\": 5, \"title\": null}}]",
        b"[{\"paper\": {\"id\": \"2401.00001\", \"title\": \"T\", \"authors\": [1, null, {\"name\": 2}]}}]",
        b"<div data-target=\"DailyPapers\" data-props=\"{not json\"></div>",
        b"<dl><dt><a href=\"/abs/\">x</a></dt><dd><div class=\"list-title\"></div></dd></dl>",
        b"  \xE2\x80\xA2 8 authors\n\xC2\xB7\nFeb 30, 2024\n",
        b"Title\n\nPublisher\n\n\xC2\xA0",
    ];
    pages.extend(nasty.iter().map(|p| p.to_vec()));
    // Deep nesting must not overflow the stack of the text walker.
    pages.push(format!("<html><body>{}x</body></html>", "<div>".repeat(20_000)).into_bytes());
    // Cut every fixture at odd points, as a half-written file would be.
    let cuts: Vec<Vec<u8>> = pages
        .iter()
        .flat_map(|p| [p.len() / 3, p.len() / 2 + 1].map(|n| p[..n].to_vec()))
        .collect();
    pages.extend(cuts);
    let selectors = SelectorsConfig {
        item: "div".into(),
        title: "x".into(),
        link: None,
        summary: None,
        date: None,
        date_format: None,
        authors: None,
    };
    let mut ctx = ctx();
    ctx.selectors = Some(&selectors);
    for page in &pages {
        for format in formats() {
            let _ = parse_page(page, format.name(), &ctx);
        }
        let _ = parse_page(page, "auto", &ctx);
    }
}

// ---------------------------------------------------------------------------------
// Hugging Face: HTML and JSON
// ---------------------------------------------------------------------------------

#[test]
fn hf_html_page_reads_daily_papers_data_props() {
    let (_, entries) = parse("hf_papers_page.html");
    let ids: Vec<_> = entries
        .iter()
        .map(|e| e.arxiv_id.as_deref().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["2605.08817", "2402.03139", "2209.15430", "2303.10876"]
    );
    let e = &entries[2];
    assert_eq!(
        e.title,
        "Relative representations enable zero-shot latent space communication"
    );
    assert_eq!(
        e.link.as_deref(),
        Some("https://huggingface.co/papers/2209.15430")
    );
    assert!(e
        .summary
        .starts_with("Neural networks embed the geometric structure of a data manifold"));
    assert!(
        e.summary
            .contains("hinder any form of reuse. Nevertheless, we"),
        "line break joined"
    );
    assert!(e.summary.ends_with("(e.g., CNNs, GCNs, transformers)."));
    assert_eq!(
        e.authors,
        strings(&[
            "Luca Moschella",
            "Valentino Maiorca",
            "Marco Fumero",
            "Antonio Norelli",
            "Francesco Locatello",
            "Emanuele Rodolà"
        ])
    );
    assert_eq!(e.author_count, Some(6));
    assert_eq!(e.published.map(|t| t.date_naive()), date(2022, 9, 30));
    assert_eq!(e.source, None);
    let synthetic = &entries[0];
    assert_eq!(
        synthetic.title,
        "Sparse Routing Makes Long-Context Retrieval Cheap"
    );
    assert_eq!(
        synthetic.published.map(|t| t.date_naive()),
        date(2026, 5, 19)
    );
    assert_eq!(synthetic.author_count, Some(3));
    assert!(synthetic
        .summary
        .ends_with("We release code and checkpoints."));
}

#[test]
fn hf_html_page_without_data_props_reads_the_cards() {
    let (_, entries) = parse("hf_papers_cards.html");
    let got: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.title.as_str(),
                e.arxiv_id.as_deref(),
                e.author_count,
                e.link.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "Relative representations enable zero-shot latent space communication",
                Some("2209.15430"),
                Some(6),
                Some("https://huggingface.co/papers/2209.15430")
            ),
            (
                "Self-Normalizing Neural Networks",
                Some("1706.02515"),
                Some(4),
                Some("https://huggingface.co/papers/1706.02515")
            ),
            (
                "EqMotion: Equivariant Multi-agent Motion Prediction with Invariant Interaction Reasoning",
                Some("2303.10876"),
                Some(7),
                Some("https://huggingface.co/papers/2303.10876")
            ),
        ]
    );
    assert!(entries
        .iter()
        .all(|e| e.summary.is_empty() && e.published.is_none()));
}

#[test]
fn hf_json_api_field_by_field() {
    let (_, entries) = parse("hf_daily_papers_api.json");
    let e = &entries[1];
    assert_eq!(
        e.title,
        "Frame Averaging for Invariant and Equivariant Network Design"
    );
    assert_eq!(e.arxiv_id.as_deref(), Some("2110.03336"));
    assert_eq!(
        e.link.as_deref(),
        Some("https://huggingface.co/papers/2110.03336")
    );
    assert_eq!(e.authors.len(), 7);
    assert_eq!(e.authors[0], "Omri Puny");
    assert_eq!(e.authors[6], "Yaron Lipman");
    assert_eq!(e.author_count, Some(7));
    assert_eq!(e.published.map(|t| t.date_naive()), date(2021, 10, 7));
    assert!(e
        .summary
        .starts_with("Many machine learning tasks involve learning functions"));
    assert_eq!(entries[3].arxiv_id.as_deref(), Some("2605.08817"));
}

#[test]
fn hf_pages_with_other_hydration_targets_are_read_tolerantly() {
    // A trending or search page: another target, papers as bare objects under another key.
    let props = r#"{"papers":[{"id":"2402.03139v2","title":"Enhancing Neural Subset Selection","summary":"S.","authors":[{"name":"Binghui Xie"}],"publishedAt":"2024-02-05T11:17:42.000Z"},{"id":"not-a-paper","title":"Sidebar"}],"query":"subset"}"#;
    let page = format!(
        "<!doctype html><html><body><div data-target=\"PapersSearch\" data-props=\"{}\"></div></body></html>",
        props.replace('"', "&quot;")
    );
    let url = url::Url::parse("https://huggingface.co/papers?q=subset").unwrap();
    let mut ctx = ctx();
    ctx.url = Some(&url);
    let parsed = parse_page(page.as_bytes(), "auto", &ctx).unwrap();
    assert_eq!(parsed.format, "hf-papers");
    assert_eq!(parsed.entries.len(), 1);
    assert_eq!(parsed.entries[0].arxiv_id.as_deref(), Some("2402.03139"));
    assert_eq!(
        parsed.entries[0].link.as_deref(),
        Some("https://huggingface.co/papers/2402.03139")
    );
    // A daily page for a day with no papers is empty, not an error.
    let empty = "<html><body><div data-target=\"DailyPapers\" data-props=\"{&quot;dailyPapers&quot;:[]}\"></div></body></html>";
    assert_eq!(
        parse_page(empty.as_bytes(), "hf-papers", &ctx)
            .unwrap()
            .entries,
        []
    );
    assert_eq!(parse_page(b"[]", "hf-papers", &ctx).unwrap().entries, []);
}

// ---------------------------------------------------------------------------------
// Cross-format identity
// ---------------------------------------------------------------------------------

/// Ingests entries the way the store matches them: an entry is a known item when any
/// of its aliases is known; every alias it has is then recorded for that item.
fn distinct_items(entries: &[Entry]) -> usize {
    let mut owner: HashMap<String, usize> = HashMap::new();
    let mut items = 0;
    for e in entries {
        let aliases = e.aliases();
        let item = match aliases.iter().find_map(|a| owner.get(a)) {
            Some(&item) => item,
            None => {
                items += 1;
                items
            }
        };
        for a in aliases {
            owner.entry(a).or_insert(item);
        }
    }
    items
}

#[test]
fn same_paper_as_text_html_and_json_is_one_item() {
    let (_, text) = parse("hf_papers_may20.txt");
    let (_, html) = parse("hf_papers_page.html");
    let (_, json) = parse("hf_daily_papers_api.json");
    // Overlapping papers share an alias across every pair of shapes.
    let shares = |a: &Entry, b: &Entry| a.aliases().iter().any(|x| b.aliases().contains(x));
    let by_title =
        |list: &[Entry], title: &str| list.iter().find(|e| e.title == title).cloned().unwrap();
    let relrep = "Relative representations enable zero-shot latent space communication";
    assert!(shares(&by_title(&text, relrep), &by_title(&html, relrep)));
    assert!(shares(&by_title(&text, relrep), &by_title(&json, relrep)));
    assert!(shares(&by_title(&html, relrep), &by_title(&json, relrep)));
    let frame = "Frame Averaging for Invariant and Equivariant Network Design";
    assert!(shares(&by_title(&text, frame), &by_title(&json, frame)));
    let subset = "Enhancing Neural Subset Selection: Integrating Background Information into Set Representations";
    assert!(shares(&by_title(&text, subset), &by_title(&html, subset)));

    // 27 papers in the capture; the HTML and JSON add only the synthetic 2605.08817.
    let mut all: Vec<Entry> = text.iter().chain(&html).chain(&json).cloned().collect();
    assert_eq!(all.len(), 35);
    assert_eq!(distinct_items(&all), 28);
    // The order of arrival does not matter.
    all.reverse();
    assert_eq!(distinct_items(&all), 28);
    let mut by_id_first: Vec<Entry> = json.iter().chain(&text).chain(&html).cloned().collect();
    by_id_first.rotate_left(2);
    assert_eq!(distinct_items(&by_id_first), 28);
}

#[test]
fn arxiv_listing_and_arxiv_feeds_share_ids() {
    let (_, listing) = parse("arxiv_list_new.html");
    let (_, rss) = parse("feed_rss1.xml");
    let (_, atom) = parse("feed_atom.xml");
    let all: Vec<Entry> = listing.iter().chain(&rss).chain(&atom).cloned().collect();
    // 5 listed; the RSS 1.0 items are two of them; the Atom feed adds EqMotion only.
    assert_eq!(distinct_items(&all), 6);
}

// ---------------------------------------------------------------------------------
// arXiv
// ---------------------------------------------------------------------------------

#[test]
fn arxiv_new_listing_field_by_field() {
    let (_, entries) = parse("arxiv_list_new.html");
    let e = &entries[0];
    Paper {
        title: "Sharper $\\ell_1$ Bounds for Sparse Linear Bandits",
        arxiv_id: Some("2605.11201"),
        link: Some("https://arxiv.org/abs/2605.11201"),
        authors: &["Ngozi Okafor", "Erik Lindqvist", "Haruto Tanaka"],
        day: date(2026, 5, 20),
    }
    .check(e);
    assert_eq!(e.author_count, Some(3));
    assert_eq!(e.source.as_deref(), Some("Machine Learning (cs.LG)"));
    assert_eq!(
        e.summary,
        "We study sparse linear bandits in $d$ dimensions with $s$ active coordinates and give regret bounds of order $\\tilde O(\\sqrt{s d T})$ that hold without a margin condition. The analysis replaces the usual restricted eigenvalue argument by an $\\ell_1$ peeling step."
    );
    assert_eq!(
        entries[1].title,
        "Curriculum Pruning & Distillation for On-Device Speech Models"
    );
    assert_eq!(entries[1].authors[0], "María José García");
    let cross = &entries[3];
    assert_eq!(
        cross.title,
        "Calibrated Uncertainty for Gaussian Process Surrogates"
    );
    assert_eq!(cross.source.as_deref(), Some("Machine Learning (stat.ML)"));
    assert_eq!(cross.authors[0], "Siobhán O'Connor");
    let replaced = &entries[4];
    assert_eq!(replaced.arxiv_id.as_deref(), Some("2209.15430"));
    assert_eq!(replaced.summary, "");
    assert_eq!(replaced.author_count, Some(6));
}

#[test]
fn arxiv_recent_listing_dates_entries_by_their_day_heading() {
    let (_, entries) = parse("arxiv_list_recent.html");
    let got: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.arxiv_id.as_deref().unwrap(),
                e.published.map(|t| t.date_naive()),
                e.source.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "2605.09921",
                date(2026, 5, 19),
                Some("Computation and Language (cs.CL)")
            ),
            (
                "2605.09870",
                date(2026, 5, 19),
                Some("Artificial Intelligence (cs.AI)")
            ),
            (
                "2605.08812",
                date(2026, 5, 18),
                Some("Computation and Language (cs.CL)")
            ),
            (
                "2605.08790",
                date(2026, 5, 18),
                Some("Computation and Language (cs.CL)")
            ),
        ]
    );
    assert_eq!(
        entries[0].title,
        "Tokenizer-Free Language Models for Morphologically Rich Languages"
    );
    assert_eq!(
        entries[0].authors,
        strings(&["Ayşe Yılmaz", "Juha Koskinen"])
    );
    assert!(entries.iter().all(|e| e.summary.is_empty()));
}

// ---------------------------------------------------------------------------------
// AITopics HTML
// ---------------------------------------------------------------------------------

#[test]
fn aitopics_html_listing_field_by_field() {
    let (_, entries) = parse("aitopics_listing.html");
    let e = &entries[0];
    assert_eq!(
        e.title,
        "Differentiable Optimization Layers for Guaranteed Fairness in Deep Learning"
    );
    assert_eq!(
        e.link.as_deref(),
        Some("https://aitopics.org/doc/arxivorg:7D2A91C3/")
    );
    assert_eq!(e.source.as_deref(), Some("arXiv.org Machine Learning"));
    assert_eq!(e.published.map(|t| t.date_naive()), date(2026, 5, 19));
    assert_eq!(e.arxiv_id.as_deref(), Some("2605.10211"));
    assert!(e
        .summary
        .starts_with("Differentiable optimization layers are traditionally integrated"));
    assert!(e.summary.ends_with('…'));
    let news = &entries[2];
    assert_eq!(
        news.title,
        "NextEra, Dominion to create huge power biz as AI drives US energy demand"
    );
    assert_eq!(news.source.as_deref(), Some("Al Jazeera"));
    assert_eq!(news.published.map(|t| t.date_naive()), date(2026, 5, 18));
    assert_eq!(news.arxiv_id, None);
    let mit = &entries[3];
    assert_eq!(mit.source.as_deref(), Some("MIT Technology Review"));
    assert_eq!(
        entries[4].published.map(|t| t.date_naive()),
        date(2026, 5, 17)
    );
    // The same titles as the text capture: one item across both shapes.
    let (_, text) = parse("aitopics_energy.txt");
    let all: Vec<Entry> = text.iter().chain(&entries).cloned().collect();
    assert_eq!(distinct_items(&all), 10);
}

// ---------------------------------------------------------------------------------
// Feeds
// ---------------------------------------------------------------------------------

#[test]
fn rss2_feed_field_by_field() {
    let (_, entries) = parse("feed_rss2.xml");
    let e = &entries[0];
    assert_eq!(e.title, "Reading notes: relative representations");
    assert_eq!(
        e.link.as_deref(),
        Some("https://notebook.example.org/2026/05/relative-representations/")
    );
    assert_eq!(
        e.summary,
        "Why angles between latent encodings survive retraining, and what Moschella et al. build on it."
    );
    assert_eq!(e.authors, strings(&["Priya Raman"]));
    assert_eq!(e.source.as_deref(), Some("The Gradient Notebook"));
    // "Tue, 19 May 2026 22:30:00 -0400": the instant, which is the 20th in UTC
    // (feed-rs hands instants over in UTC).
    assert_eq!(
        e.published.map(|t| t.to_utc().to_rfc3339()).as_deref(),
        Some("2026-05-20T02:30:00+00:00"),
        "the instant the feed wrote, never truncated to a day"
    );
    assert_eq!(
        e.listed, e.published,
        "a feed item appeared when it is dated"
    );
    assert_eq!(e.arxiv_id, None, "a post about a paper is not the paper");
    let frame = &entries[1];
    assert_eq!(frame.title, "Frame Averaging, explained & implemented");
    assert_eq!(
        frame.arxiv_id, None,
        "a post with its own guid that links to a paper is not the paper"
    );
    assert_eq!(
        frame.guid.as_deref(),
        Some("notebook-2026-05-12-frame-averaging")
    );
    assert_eq!(frame.authors, strings(&["Tomás Ruiz"]));
    assert_eq!(
        frame.summary,
        "A short walk through the frame averaging operator with code."
    );
    let untitled = &entries[2];
    assert_eq!(
        untitled.title,
        "Housekeeping: the notebook moves to a new server this weekend."
    );
    assert_eq!(
        untitled.link.as_deref(),
        Some("https://notebook.example.org/2026/05/housekeeping/")
    );
    assert_eq!(untitled.published.map(|t| t.date_naive()), date(2026, 5, 8));
}

#[test]
fn rss1_and_rss091_feeds_field_by_field() {
    let (_, rdf) = parse("feed_rss1.xml");
    assert_eq!(
        rdf[0].title,
        "Sharper $\\ell_1$ Bounds for Sparse Linear Bandits"
    );
    assert_eq!(rdf[0].arxiv_id.as_deref(), Some("2605.11201"));
    assert_eq!(
        rdf[0].authors,
        strings(&["Ngozi Okafor", "Erik Lindqvist", "Haruto Tanaka"])
    );
    assert_eq!(rdf[0].published.map(|t| t.date_naive()), date(2026, 5, 20));
    assert_eq!(rdf[0].source.as_deref(), Some("cs.LG updates on arXiv.org"));
    assert_eq!(
        rdf[0].summary,
        "We study sparse linear bandits in $d$ dimensions with $s$ active coordinates."
    );
    assert_eq!(
        rdf[1].title,
        "Curriculum Pruning & Distillation for On-Device Speech Models"
    );
    let (_, old) = parse("feed_rss091.xml");
    assert_eq!(old[0].title, "Our paper on counting circuits is out");
    assert_eq!(
        old[0].link.as_deref(),
        Some("http://lab.example.edu/news/counting")
    );
    assert_eq!(old[0].summary, "See arXiv for the preprint.");
    assert_eq!(old[1].summary, "");
    assert_eq!(old[1].published.map(|t| t.date_naive()), None);
}

#[test]
fn atom_feed_field_by_field() {
    let (_, entries) = parse("feed_atom.xml");
    let e = &entries[0];
    Paper {
        title: "EqMotion: Equivariant Multi-agent Motion Prediction with Invariant Interaction Reasoning",
        arxiv_id: Some("2303.10876"),
        link: Some("http://arxiv.org/abs/2303.10876v2"),
        authors: &["Chenxin Xu", "Robby T. Tan", "Siheng Chen"],
        day: date(2023, 3, 20),
    }
    .check(e);
    assert!(e.summary.starts_with(
        "Learning to predict agent motions with relationship reasoning is important for many"
    ));
    assert_eq!(entries[1].arxiv_id.as_deref(), Some("2605.11305"));
}

#[test]
fn json_feed_field_by_field() {
    let (_, entries) = parse("feed.json");
    let e = &entries[0];
    Paper {
        title: "Sparse Routing Makes Long-Context Retrieval Cheap",
        // The item has its own id: a pick of a paper, not the paper.
        arxiv_id: None,
        link: Some("https://huggingface.co/papers/2605.08817"),
        authors: &["Ada Example", "Bo Sample", "Chidi Placeholder"],
        day: date(2026, 5, 20),
    }
    .check(e);
    assert_eq!(
        e.guid.as_deref(),
        Some("https://picks.example.net/p/2605.08817")
    );
    assert_eq!(
        e.summary,
        "Sparse routing for long-context retrieval, reading 12x fewer tokens."
    );
    assert_eq!(e.source.as_deref(), Some("Paper Picks"));
    let gp = &entries[1];
    assert_eq!(
        gp.summary,
        "Post-hoc recalibration that is exact for the squared exponential kernel."
    );
    assert_eq!(gp.published.map(|t| t.date_naive()), date(2026, 5, 18));
    assert_eq!(gp.arxiv_id, None);
}

// ---------------------------------------------------------------------------------
// Selectors
// ---------------------------------------------------------------------------------

fn blog_selectors() -> SelectorsConfig {
    SelectorsConfig {
        item: "article.post".into(),
        title: "h2".into(),
        link: None,
        summary: Some("p.teaser".into()),
        date: Some("time".into()),
        date_format: None,
        authors: Some(".byline a".into()),
    }
}

#[test]
fn selectors_blog_field_by_field() {
    let config = blog_selectors();
    let url = url::Url::parse("https://lab.example.edu/blog/").unwrap();
    let mut ctx = ctx();
    ctx.selectors = Some(&config);
    ctx.url = Some(&url);
    let parsed = parse_page(&fixture("selectors_blog.html"), "selectors", &ctx).unwrap();
    assert_eq!(parsed.format, "selectors");
    let entries = parsed.entries;
    assert_eq!(entries.len(), 3, "the item without a title is skipped");
    let e = &entries[0];
    assert_eq!(e.title, "When do transformers learn to count?");
    assert_eq!(
        e.link.as_deref(),
        Some("https://lab.example.edu/blog/posts/counting-circuits.html")
    );
    assert_eq!(e.authors, strings(&["Lena Schmidt", "Karl Weber"]));
    assert_eq!(e.author_count, Some(2));
    assert_eq!(e.published.map(|t| t.date_naive()), date(2026, 5, 19));
    assert!(e
        .summary
        .starts_with("We trace when a counting circuit forms"));
    assert_eq!(
        entries[1].link.as_deref(),
        Some("https://lab.example.edu/blog/posts/gp-surrogates.html")
    );
    assert_eq!(
        entries[1].published.map(|t| t.date_naive()),
        date(2026, 5, 3)
    );
    assert_eq!(entries[1].authors, strings(&["Siobhán O'Connor"]));
    assert_eq!(entries[2].title, "Lab retreat photos");
    assert_eq!(entries[2].link, None);
    assert_eq!(
        entries[2].published.map(|t| t.date_naive()),
        date(2026, 4, 28),
        "yearless date from the capture time"
    );
}

#[test]
fn selectors_with_an_explicit_date_format() {
    let mut config = blog_selectors();
    config.date = Some("time".into());
    config.date_format = Some("%d %B %Y".into());
    let mut ctx = ctx();
    ctx.selectors = Some(&config);
    let entries = parse_page(&fixture("selectors_blog.html"), "selectors", &ctx)
        .unwrap()
        .entries;
    assert_eq!(
        entries[1].published.map(|t| t.date_naive()),
        date(2026, 5, 3)
    );
    // Without a page URL a relative link cannot be made absolute.
    assert_eq!(entries[0].link, None);
}

#[test]
fn selectors_errors_are_clear() {
    let page = fixture("selectors_blog.html");
    let err = parse_page(&page, "selectors", &ctx()).unwrap_err();
    assert!(
        matches!(
            err,
            ParseError::Malformed {
                format: "selectors",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("[source.selectors]"), "{err}");

    let mut bad = blog_selectors();
    bad.summary = Some("p..teaser".into());
    let mut ctx = ctx();
    ctx.selectors = Some(&bad);
    let err = parse_page(&page, "selectors", &ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("selectors.summary"), "{err}");

    let mut nothing = blog_selectors();
    nothing.item = "li.nope".into();
    ctx.selectors = Some(&nothing);
    let err = parse_page(&page, "selectors", &ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("matched nothing"), "{err}");

    // Never chosen by sniffing, even with a config present.
    let config = blog_selectors();
    ctx.selectors = Some(&config);
    assert!(parse_page(&page, "auto", &ctx).is_err());
}

// ---------------------------------------------------------------------------------
// Real-world feeds (issue 14): encodings, versions, strictness, fields, warnings
// ---------------------------------------------------------------------------------

fn feed(bytes: &[u8]) -> lookout::parse::Parsed {
    parse_page(bytes, "auto", &ctx()).unwrap_or_else(|e| panic!("{e}"))
}

fn rss_in(encoding: &str, title: &str) -> Vec<u8> {
    let doc = format!(
        "<?xml version=\"1.0\" encoding=\"{encoding}\"?>\n<rss version=\"2.0\"><channel><title>C</title>\
         <item><title>{title}</title><guid>g1</guid></item></channel></rss>"
    );
    let enc = encoding_rs::Encoding::for_label(encoding.as_bytes()).unwrap();
    enc.encode(&doc).0.into_owned()
}

#[test]
fn feeds_in_legacy_encodings_read_without_replacement_characters() {
    for (encoding, title) in [
        ("ISO-8859-1", "Mãe e filhos"),
        ("windows-1251", "Новости дня"),
        ("GB2312", "今日新闻"),
        ("Shift_JIS", "今日のニュース"),
    ] {
        let parsed = feed(&rss_in(encoding, title));
        assert_eq!(parsed.entries.len(), 1, "{encoding}");
        assert_eq!(parsed.entries[0].title, title, "{encoding}");
        assert!(
            parsed.warnings.is_empty(),
            "{encoding}: {:?}",
            parsed.warnings
        );
    }
    // UTF-16 with a BOM, and without one (told by the first bytes).
    let doc = "<?xml version=\"1.0\" encoding=\"UTF-16\"?><rss version=\"2.0\"><channel>\
               <item><title>Ünïcödé</title><guid>u</guid></item></channel></rss>";
    let mut le = vec![0xFF, 0xFE];
    le.extend(doc.encode_utf16().flat_map(u16::to_le_bytes));
    let be: Vec<u8> = doc.encode_utf16().flat_map(u16::to_be_bytes).collect();
    for bytes in [le, be] {
        assert_eq!(feed(&bytes).entries[0].title, "Ünïcödé");
    }
    // The server's charset beats the document's declaration.
    let mut ctx = ctx();
    ctx.content_type = Some("application/rss+xml; charset=windows-1251");
    let relabelled: Vec<u8> = {
        let mut b = rss_in("windows-1251", "Новости");
        let at = b.windows(12).position(|w| w == b"windows-1251").unwrap();
        b.splice(at..at + 12, b"utf-8".iter().copied());
        b
    };
    let parsed = parse_page(&relabelled, "feed", &ctx).unwrap();
    assert_eq!(parsed.entries[0].title, "Новости");
}

#[test]
fn every_rss_and_atom_version_is_read() {
    let docs: &[(&str, &str)] = &[
        ("no version", "<rss><channel><item><title>A</title><link>https://e.org/a</link></item></channel></rss>"),
        ("0.93", "<rss version=\"0.93\"><channel><item><title>A</title><link>https://e.org/a</link></item></channel></rss>"),
        ("0.94", "<rss version=\"0.94\"><channel><item><title>A</title><link>https://e.org/a</link></item></channel></rss>"),
        ("0.90", "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" xmlns=\"http://my.netscape.com/rdf/simple/0.9/\">\
                  <channel><title>C</title><link>https://e.org/</link></channel>\
                  <item><title>A</title><link>https://e.org/a</link></item></rdf:RDF>"),
        ("Atom 0.3", "<feed version=\"0.3\" xmlns=\"http://purl.org/atom/ns#\"><title>C</title>\
                  <entry><title>A</title><link rel=\"alternate\" href=\"https://e.org/a\"/><id>tag:e.org,2004:a</id>\
                  <issued>2004-01-02T03:04:05Z</issued></entry></feed>"),
        ("blank line before <?xml", "\n\n<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><item><title>A</title><link>https://e.org/a</link></item></channel></rss>"),
    ];
    for (what, doc) in docs {
        let parsed = feed(doc.as_bytes());
        assert_eq!(parsed.format, "feed", "{what}");
        assert_eq!(parsed.entries.len(), 1, "{what}");
        assert_eq!(parsed.entries[0].title, "A", "{what}");
        assert_eq!(
            parsed.entries[0].link.as_deref(),
            Some("https://e.org/a"),
            "{what}"
        );
    }
    let atom03 = feed(docs[4].1.as_bytes());
    assert_eq!(
        atom03.entries[0]
            .published
            .map(|t| t.to_utc().to_rfc3339())
            .as_deref(),
        Some("2004-01-02T03:04:05+00:00"),
        "Atom 0.3's issued is the published date"
    );
}

#[test]
fn json_feed_version_urls_and_wrong_types_are_tolerated() {
    for version in [
        "http://jsonfeed.org/version/1",
        "https://jsonfeed.org/version/1.1",
    ] {
        let doc = format!(
            r#"{{"version":"{version}","title":"T","items":[{{"id":"1","title":"A","url":"https://e.org/a"}}]}}"#
        );
        assert_eq!(feed(doc.as_bytes()).entries.len(), 1, "{version}");
    }
    let doc = r#"{"version":"https://jsonfeed.org/version/1.1","title":"T","items":[
        {"id":"1","title":"A","tags":"a,b","url":"https://e.org/a"},
        {"id":"2","title":"B","authors":"nobody"}]}"#;
    let parsed = feed(doc.as_bytes());
    assert_eq!(parsed.entries.len(), 2);
    assert_eq!(parsed.entries[0].link.as_deref(), Some("https://e.org/a"));
    assert_eq!(parsed.entries[1].guid.as_deref(), Some("2"));
}

#[test]
fn malformed_feeds_give_what_they_hold_with_a_warning() {
    // One mismatched end tag: feedparser recovers both items, and so does lookout.
    let doc = b"<rss version=\"2.0\"><channel><title>C</title>\
        <item><title>One <b>bold</i></title><guid>1</guid></item>\
        <item><title>Two</title><guid>2</guid></item></channel></rss>";
    let parsed = feed(doc);
    assert_eq!(parsed.entries.len(), 2);
    assert_eq!(parsed.entries[0].title, "One bold");
    // Unknown content type: read as text.
    let doc = b"<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>C</title><entry><id>x</id>\
        <title type=\"application/xhtml+xml\">Odd type</title><link href=\"https://e.org/x\"/></entry></feed>";
    assert_eq!(feed(doc).entries[0].title, "Odd type");
    // Cut short: the items before the cut.
    let doc = b"<rss version=\"2.0\"><channel><item><title>A</title><guid>1</guid></item><item><title>B</ti";
    let parsed = feed(doc);
    assert!(!parsed.entries.is_empty());
    assert!(
        matches!(parsed.warnings.as_slice(), [ParseWarning::Malformed { .. }]),
        "{:?}",
        parsed.warnings
    );
}

#[test]
fn feed_fields_real_feeds_write() {
    let doc = b"<rss version=\"2.0\" xmlns:a10=\"http://www.w3.org/2005/Atom\"><channel><title>C</title>\
        <item><guid isPermaLink=\"false\">n1</guid><a10:link href=\"https://e.org/dotnet\"/>\
          <title>Two-digit year</title><pubDate>Thu, 07 Dec 17 10:00:29 -0800</pubDate></item>\
        <item><link>https://e.org/no-title</link></item>\
        <item><guid>only-an-id</guid></item>\
        <item><title>&lt;p&gt;Entry content&lt;/p&gt;</title><guid>h</guid></item>\
        <item><title>&amp;lt;b&amp;gt;Double&amp;lt;/b&amp;gt; &amp;amp; more</title><guid>d</guid></item>\
        </channel></rss>";
    let e = feed(doc).entries;
    assert_eq!(e.len(), 5);
    assert_eq!(e[0].link.as_deref(), Some("https://e.org/dotnet"));
    assert_eq!(
        e[0].published.map(|t| t.to_utc().to_rfc3339()).as_deref(),
        Some("2017-12-07T18:00:29+00:00")
    );
    assert_eq!(e[1].title, "https://e.org/no-title");
    assert_eq!(e[2].title, "only-an-id");
    assert_eq!(e[2].guid.as_deref(), Some("only-an-id"));
    assert_eq!(e[3].title, "Entry content");
    assert_eq!(e[4].title, "Double & more");
}

#[test]
fn selectors_that_never_match_and_date_formats_that_read_nothing_warn() {
    let mut config = blog_selectors();
    config.summary = Some("p.no-such-class".into());
    config.date_format = Some("%d/%m/%Y".into());
    let mut ctx = ctx();
    ctx.selectors = Some(&config);
    let parsed = parse_page(&fixture("selectors_blog.html"), "selectors", &ctx).unwrap();
    assert!(!parsed.entries.is_empty());
    assert!(parsed
        .warnings
        .contains(&ParseWarning::SelectorNeverMatched {
            key: "summary",
            selector: "p.no-such-class".into()
        }));
    assert!(parsed
        .warnings
        .iter()
        .any(|w| matches!(w, ParseWarning::DateFormatMatchedNothing { .. })));
    // The configured selectors of the fixture match: no warning.
    let config = blog_selectors();
    ctx.selectors = Some(&config);
    let parsed = parse_page(&fixture("selectors_blog.html"), "selectors", &ctx).unwrap();
    assert_eq!(parsed.warnings, vec![]);
    // A page that went empty where its source had entries is the pipeline's to tell
    // (tests/source_degraded.rs).
}

#[test]
fn lookout_parse_previews_a_configured_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("lookout.toml");
    std::fs::write(
        &config,
        "[[source]]\nname = \"blog\"\nkind = \"http\"\nurl = \"https://blog.example.org/\"\n\
         format = \"selectors\"\n\
         selectors = { item = \"article\", title = \"h2\", summary = \"p.no-such-class\" }\n",
    )
    .unwrap();
    let page = format!(
        "{}/tests/fixtures/selectors_blog.html",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args([
            "parse",
            &page,
            "--config",
            config.to_str().unwrap(),
            "--source",
            "blog",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let first: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(first["format"], "selectors");
    assert!(
        first["link"]
            .as_str()
            .unwrap()
            .starts_with("https://blog.example.org/"),
        "relative links resolve against the source's URL: {first}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("selectors.summary"),
        "the warning is logged: {stderr}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args([
            "parse",
            &page,
            "--config",
            config.to_str().unwrap(),
            "--source",
            "nope",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no source \"nope\""));
}
