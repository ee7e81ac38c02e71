//! Interests end to end, with the real binary: likes matched to stored items, the
//! interest feed (score and terms) stable across a restart, the status page's "like"
//! and "not interested" buttons (and cross-site posts refused), alerts delivered once
//! to a real local webhook, and bad `[[interest]]` configs refused at their key.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

/// Two topics with no word in common: the liked one must rank first.
const TOPICS: [[&str; 10]; 2] = [
    [
        "galaxy clusters",
        "dark matter",
        "cosmic microwave background",
        "redshift surveys",
        "halo mass",
        "supernova distances",
        "cosmic inflation",
        "baryon acoustic oscillations",
        "weak lensing",
        "cosmological constant",
    ],
    [
        "protein folding",
        "enzyme kinetics",
        "gene expression",
        "cell membranes",
        "ribosome assembly",
        "point mutations",
        "antibody binding",
        "cellular metabolism",
        "chromatin remodeling",
        "peptide synthesis",
    ],
];

/// Paper `n` of topic `t`: its arXiv id, title and abstract.
fn paper(t: usize, n: usize) -> (String, String, String) {
    let w = &TOPICS[t];
    let id = format!("24{:02}.{:05}", t + 1, n);
    let title = format!(
        "On {} and {} in {}, part {n}",
        w[n % 10],
        w[(n + 3) % 10],
        w[(n + 6) % 10]
    );
    let summary = format!(
        "We study {} together with {} and {}. Our results on {} constrain {} and {}.",
        w[(n + 1) % 10],
        w[(n + 2) % 10],
        w[(n + 4) % 10],
        w[(n + 5) % 10],
        w[(n + 7) % 10],
        w[(n + 8) % 10]
    );
    (id, title, summary)
}

/// An RSS capture of papers `range` of the liked topic and three times as many of the
/// other, their links on arxiv.org. The score is a paper's percentile among the
/// papers not liked, so with a quarter of them on the liked topic, the other topic
/// scores below 0.75 and a threshold of 0.85 keeps it out.
fn capture(range: std::ops::Range<usize>) -> Vec<u8> {
    let papers = range.flat_map(|n| {
        [
            paper(0, n),
            paper(1, n),
            paper(1, n + 100),
            paper(1, n + 200),
        ]
    });
    rss(papers)
}

/// An RSS capture of `papers`.
fn rss(papers: impl IntoIterator<Item = (String, String, String)>) -> Vec<u8> {
    let mut xml = String::from(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>papers</title>\
         <link>https://example.org/</link><description>test</description>",
    );
    for (id, title, summary) in papers {
        xml.push_str(&format!(
            "<item><title>{title}</title><link>https://arxiv.org/abs/{id}</link>\
             <description>{summary}</description></item>"
        ));
    }
    xml.push_str("</channel></rss>");
    xml.into_bytes()
}

/// A likes file naming cosmology papers: one by arXiv id, one by title (written
/// differently), one not stored, with its own title, and one by an arXiv id that is
/// not stored yet ([`LIKED_LATER`]).
fn likes() -> String {
    let (id, _, _) = paper(0, 1);
    let (_, title, _) = paper(0, 2);
    format!(
        "{id}\n{}\nDark matter halo mass and weak lensing of galaxy clusters\n{LIKED_LATER}\n",
        title.to_uppercase()
    )
}

/// A liked paper's arXiv id that no capture holds until the alert test sends it.
const LIKED_LATER: &str = "2401.00990";

/// A setup with interest `cosmo` over the likes file, and `extra` config.
fn setup(interest_extra: &str, extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let likes_path = dir.path().join("likes.txt");
    std::fs::write(&likes_path, likes()).expect("write likes");
    let setup = Setup::new(&format!(
        "{extra}\n{}\n[[interest]]\nname = \"cosmo\"\nlikes = {likes_path:?}\nmin_score = 0.85\n{interest_extra}\n",
        super::interests_pg::store_table()
    ));
    // The likes file lives beside the config, in the setup's own directory.
    let moved = setup.dir.path().join("likes.txt");
    std::fs::rename(&likes_path, &moved).expect("move likes");
    let text = std::fs::read_to_string(&setup.config).expect("config");
    std::fs::write(
        &setup.config,
        text.replace(&format!("{likes_path:?}"), &format!("{moved:?}")),
    )
    .expect("config");
    setup
}

/// Starts the daemon, drops papers 0..15 and waits until it has trained on them.
fn started_with_papers(setup: &Setup) -> Daemon {
    let daemon = Daemon::start(&setup.config);
    setup.drop_file("papers.xml", &capture(0..15));
    setup.wait_filed("processed", "papers.xml");
    wait_for(
        Duration::from_secs(60),
        "a training on the stored papers",
        || (trainings(&daemon) >= 2).then_some(()),
    );
    daemon
}

/// How many times the daemon logged a finished training.
fn trainings(daemon: &Daemon) -> usize {
    daemon.log().matches("interest trained").count()
}

/// The interest's JSON feed items: (title, score, terms).
fn feed(daemon: &Daemon, query: &str) -> Vec<(String, f64, Vec<String>)> {
    let (status, _, body) = get(&format!("{}/interests/cosmo.json{query}", daemon.base), &[]);
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("JSON Feed");
    doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|item| {
            let ext = &item["_lookout"];
            (
                item["title"].as_str().expect("title").to_owned(),
                ext["score"].as_f64().expect("score"),
                ext["terms"]
                    .as_array()
                    .expect("terms")
                    .iter()
                    .map(|t| t.as_str().expect("term").to_owned())
                    .collect(),
            )
        })
        .collect()
}

fn is_cosmology(title: &str) -> bool {
    TOPICS[0].iter().any(|w| title.contains(w))
}

/// `lookout interest rank cosmo --json`: (id, title, score), best first.
fn rank(config: &Path) -> Vec<(i64, String, f64)> {
    rank_json(config, 100)
        .iter()
        .map(|v| {
            (
                v["id"].as_i64().expect("id"),
                v["title"].as_str().expect("title").to_owned(),
                v["score"].as_f64().expect("score"),
            )
        })
        .collect()
}

/// `lookout interest rank cosmo --json --limit LIMIT`: its lines, best first.
fn rank_json(config: &Path, limit: usize) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["interest", "rank", "cosmo", "--json", "--config"])
        .arg(config)
        .args(["--limit", &limit.to_string()])
        .output()
        .expect("run lookout interest rank");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect()
}

/// POSTs a form; returns the status.
fn post(url: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> u16 {
    post_to(url, headers, form).0
}

/// POSTs a form; returns the status and the `Location` header, if any.
fn post_to(url: &str, headers: &[(&str, &str)], form: &[(&str, &str)]) -> (u16, Option<String>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let body: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("POST");
        let location = resp
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        (resp.status().as_u16(), location)
    })
}

/// Adds `keys` to the setup's `[server]` table (which must come before the tables
/// that follow it in the file).
fn server_keys(setup: &Setup, keys: &str) {
    let listen = "[server]\nlisten = \"127.0.0.1:0\"\n";
    let text = std::fs::read_to_string(&setup.config).unwrap();
    assert!(text.contains(listen));
    std::fs::write(
        &setup.config,
        text.replacen(listen, &format!("{listen}{keys}\n"), 1),
    )
    .unwrap();
}

/// The value of the first `attr="..."` after `after` in `html`.
fn attribute(html: &str, after: &str, attr: &str) -> String {
    let from = html
        .find(after)
        .unwrap_or_else(|| panic!("{after} in {html}"));
    let rest = &html[from..];
    let start = rest.find(&format!("{attr}=\"")).expect("attribute") + attr.len() + 2;
    let end = rest[start..].find('"').expect("closing quote");
    rest[start..start + end].replace("&amp;", "&")
}

#[test]
pub(crate) fn likes_are_matched_to_stored_items_and_the_liked_topic_fills_the_feed() {
    let setup = setup("notify = []", "");
    let daemon = Daemon::start(&setup.config);
    setup.drop_file("papers.xml", &capture(0..15));
    setup.wait_filed("processed", "papers.xml");
    // The arXiv id and the title found their items; the third like trains from its
    // own title.
    wait_for(
        Duration::from_secs(60),
        "training on the stored likes",
        || {
            let (_, _, body) = get(&format!("{}/", daemon.base), &[]);
            String::from_utf8_lossy(&body)
                .contains("3 liked papers (2 stored)")
                .then_some(())
        },
    );
    let items = wait_for(Duration::from_secs(30), "the interest feed", || {
        let items = feed(&daemon, "");
        (!items.is_empty()).then_some(items)
    });
    for (title, score, terms) in &items {
        assert!(is_cosmology(title), "only the liked topic: {title}");
        assert!(*score >= 0.85, "{title}: {score}");
        assert!(!terms.is_empty(), "{title} says why");
    }
    // The liked papers are what it learned from, not recommendations; `interest rank`
    // still lists them (for tuning), among the best.
    let liked = [paper(0, 1).1, paper(0, 2).1];
    assert!(
        items.iter().all(|(t, _, _)| !liked.contains(t)),
        "a liked paper in its own feed: {items:?}"
    );
    let ranked = rank(&setup.config);
    assert!(liked
        .iter()
        .all(|t| ranked.iter().take(25).any(|(_, r, _)| r == t)));
    let (_, _, rss) = get(&format!("{}/interests/cosmo.xml", daemon.base), &[]);
    assert!(String::from_utf8_lossy(&rss).contains("Score 0."));
    let (_, _, opml) = get(&format!("{}/feeds.opml", daemon.base), &[]);
    assert!(String::from_utf8_lossy(&opml).contains("/interests/cosmo.xml"));
    // The feed is written to disk like the others.
    let file = setup.dir.path().join("state/feeds/interests/cosmo.xml");
    wait_for(Duration::from_secs(30), "the feed file", || {
        std::fs::read_to_string(&file)
            .ok()
            .filter(|t| t.contains("Score 0."))
    });
}

#[test]
pub(crate) fn scores_are_the_same_after_a_restart() {
    let setup = setup("notify = []", "");
    let daemon = started_with_papers(&setup);
    let before = wait_for(Duration::from_secs(30), "the interest feed", || {
        let items = feed(&daemon, "");
        (!items.is_empty()).then_some(items)
    });
    assert!(daemon.stop(Duration::from_secs(20)).success());

    let daemon = Daemon::start(&setup.config);
    wait_for(Duration::from_secs(60), "the training at start", || {
        (trainings(&daemon) >= 1).then_some(())
    });
    assert_eq!(feed(&daemon, ""), before);
}

#[test]
pub(crate) fn cross_site_posts_are_refused_and_the_buttons_change_the_ranking() {
    let setup = setup("notify = []", "");
    server_keys(&setup, "token = \"s3cret\"");
    let daemon = started_with_papers(&setup);
    let page = wait_for(
        Duration::from_secs(30),
        "buttons on the status page",
        || {
            let (_, _, body) = get(&format!("{}/?token=s3cret", daemon.base), &[]);
            let html = String::from_utf8_lossy(&body).into_owned();
            html.contains("name=\"form_token\"").then_some(html)
        },
    );
    let token = attribute(&page, "name=\"form_token\"", "value");
    let action = attribute(&page, "class=\"verdict\"", "action");
    assert_eq!(action, "/interests/cosmo/verdict?token=s3cret");
    let url = format!("{}{action}", daemon.base);

    let before = rank(&setup.config);
    assert!(
        is_cosmology(&before[0].1),
        "the liked topic ranks first: {before:?}"
    );
    // The best cosmology paper that is not liked already.
    let liked = [paper(0, 1).1, paper(0, 2).1];
    let (top_id, top_title, top_score) = before
        .iter()
        .find(|(_, t, _)| !liked.contains(t))
        .cloned()
        .expect("an unliked paper");
    assert!(is_cosmology(&top_title), "{before:?}");
    let (bio_id, bio_title, bio_score) = before
        .iter()
        .find(|(_, t, _)| !is_cosmology(t))
        .cloned()
        .expect("a biology paper is ranked too");
    let top = top_id.to_string();
    let form = [
        ("item", top.as_str()),
        ("verdict", "not_interested"),
        ("form_token", token.as_str()),
    ];
    // Another site's page posting to the daemon: refused, whatever it sends.
    assert_eq!(
        post(&url, &[("origin", "https://evil.example")], &form),
        403
    );
    assert_eq!(post(&url, &[("sec-fetch-site", "cross-site")], &form), 403);
    // A page of another site whose name was rebound to 127.0.0.1: its requests say
    // "same-origin" and carry its own name in Host and Origin.
    let port = daemon.base.rsplit(':').next().unwrap();
    let rebound = format!("evil.example:{port}");
    let rebound_origin = format!("http://{rebound}");
    let rebinding = [
        ("host", rebound.as_str()),
        ("origin", rebound_origin.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    assert_eq!(post(&url, &rebinding, &form), 403, "a rebound host name");
    assert_eq!(post(&url, &rebinding[..1], &form), 403, "a foreign Host");
    assert_eq!(
        post(&url, &[], &[("item", top.as_str()), ("verdict", "like")]),
        403,
        "no form token"
    );
    assert_eq!(
        post(&url, &[], &[form[0], form[1], ("form_token", "00.11")]),
        403,
        "a forged form token"
    );
    assert_eq!(rank(&setup.config), before, "nothing changed");

    // The page's own buttons: same origin, with its form token.
    let origin = [
        ("origin", daemon.base.as_str()),
        ("sec-fetch-site", "same-origin"),
    ];
    assert_eq!(post(&url, &origin, &form), 303);
    let bio = bio_id.to_string();
    let like = [
        ("item", bio.as_str()),
        ("verdict", "like"),
        ("form_token", token.as_str()),
    ];
    assert_eq!(post(&url, &origin, &like), 303);
    let after = rank(&setup.config);
    let score = |id: i64| after.iter().find(|(i, _, _)| *i == id).map(|r| r.2);
    assert!(
        score(top_id).is_some_and(|s| s < top_score),
        "\"not interested\" lowers {top_title}: {top_score} -> {:?}",
        score(top_id)
    );
    // A liked paper is not recommended (it scores by the model it trained); the papers
    // like it rise: those with the same words, whose titles differ only in the part
    // number (paper `n` uses the words of `n % 10`).
    let part = |title: &str| -> u64 { title.rsplit(' ').next().unwrap().parse().unwrap() };
    let peers = |ranked: &[(i64, String, f64)]| -> f64 {
        let scores: Vec<f64> = ranked
            .iter()
            .filter(|(i, t, _)| {
                *i != bio_id && !is_cosmology(t) && part(t) % 10 == part(&bio_title) % 10
            })
            .map(|r| r.2)
            .collect();
        assert!(!scores.is_empty(), "{bio_title} has peers: {ranked:?}");
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    let (peers_before, peers_after) = (peers(&before), peers(&after));
    assert!(
        peers_after > peers_before,
        "\"like\" on {bio_title} ({bio_score}) raises the papers like it: \
         {peers_before} -> {peers_after}"
    );
    // The daemon retrains on the verdicts, so its feed follows.
    wait_for(
        Duration::from_secs(60),
        "the feed to drop the refused paper",
        || {
            (!feed(&daemon, "?token=s3cret")
                .iter()
                .any(|(t, _, _)| *t == top_title))
            .then_some(())
        },
    );
}

#[test]
pub(crate) fn interest_matches_reach_a_webhook_once() {
    let server = Hook::start();
    let received = || server.received();
    let hook = format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        server.url()
    );
    let setup = setup("notify = [\"hook\"]", &hook);
    let daemon = started_with_papers(&setup);

    // New papers, scored as they are ingested by the model trained on the store; one
    // of them as close to the likes as can be, so it scores above every other paper.
    let close = |id: &str, title: &str| {
        let summary = "We study dark matter and weak lensing of galaxy clusters.";
        (id.to_owned(), title.to_owned(), summary.to_owned())
    };
    let first = "Dark matter halo mass and weak lensing of galaxy clusters, a second look";
    let papers = (15..20)
        .flat_map(|n| {
            [
                paper(0, n),
                paper(1, n),
                paper(1, n + 100),
                paper(1, n + 200),
            ]
        })
        .chain([close("2401.00998", first)])
        // In the likes file already: not announced as a recommendation.
        .chain([close(
            LIKED_LATER,
            "Galaxy clusters and dark matter, liked before it came",
        )]);
    setup.drop_file("second.xml", &rss(papers));
    setup.wait_filed("processed", "second.xml");
    wait_for(Duration::from_secs(60), "a new paper's alert", || {
        received()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(first))
            .then_some(())
    });
    delivered_all(&daemon);
    let deliveries = received();
    let new_biology: Vec<String> = (15..20)
        .flat_map(|n| [n, n + 100, n + 200])
        .map(|n| paper(1, n).1)
        .collect();
    let mut keys = Vec::new();
    for r in &deliveries {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["rule"], "interest:cosmo");
        let title = body["title"].as_str().unwrap();
        assert!(
            !new_biology.iter().any(|t| t == title),
            "only the liked topic alerts: {title}"
        );
        assert!(!title.contains("liked before"), "a liked paper announced");
        keys.push(r.headers["idempotency-key"].to_str().unwrap().to_owned());
    }
    let count = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), count, "each paper is delivered once");

    // A restart sends nothing again: the next delivery is the next new paper's.
    let total = received().len();
    assert!(daemon.stop(Duration::from_secs(20)).success());
    let daemon = Daemon::start(&setup.config);
    wait_for(Duration::from_secs(60), "the training at start", || {
        (trainings(&daemon) >= 1).then_some(())
    });
    let last = "Dark matter halo mass and weak lensing of galaxy clusters, revisited";
    let third = rss([close("2401.00999", last)]);
    setup.drop_file("third.xml", &third);
    setup.wait_filed("processed", "third.xml");
    wait_for(Duration::from_secs(60), "the third capture's alert", || {
        received()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(last))
            .then_some(())
    });
    delivered_all(&daemon);
    assert_eq!(
        received().len(),
        total + 1,
        "one new delivery, nothing resent"
    );
    drop(daemon);
}

/// Waits until the daemon's outbox has nothing pending.
fn delivered_all(daemon: &Daemon) {
    wait_for(Duration::from_secs(60), "every delivery done", || {
        let (_, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
        let health: serde_json::Value = serde_json::from_slice(&body).ok()?;
        (health["outbox"]["pending"] == 0).then_some(())
    });
}

/// `lookout check` on a config with `interest` as its `[[interest]]` table.
fn check(setup: &Setup) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check", "--config"])
        .arg(&setup.config)
        .output()
        .expect("run lookout check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_prints_interests_and_refuses_bad_ones_at_their_key() {
    let good = setup("", "");
    let (ok, out, err) = check(&good);
    assert!(ok, "{err}");
    assert!(out.contains("interest cosmo: likes "), "{out}");
    assert!(out.contains("/interests/cosmo.xml -> log"), "{out}");

    for (extra, key, says) in [
        ("sources = [\"nope\"]", "sources", "unknown source \"nope\""),
        (
            "notify = [\"pager\"]",
            "notify",
            "unknown notifier \"pager\"",
        ),
        ("digest = \"soon\"", "digest", "invalid duration"),
        ("digest = \"0s\"", "digest", "at least 1s"),
        ("colour = \"red\"", "colour", "unknown field"),
    ] {
        let bad = setup(extra, "");
        let (ok, _, err) = check(&bad);
        assert!(!ok, "{extra} accepted");
        let line = std::fs::read_to_string(&bad.config)
            .unwrap()
            .lines()
            .position(|l| l.starts_with(key))
            .unwrap()
            + 1;
        assert!(
            err.contains(&format!("lookout.toml:{line}:")),
            "{extra}: {err}"
        );
        assert!(
            err.contains(&format!("key `{key}` in [[interest]]")),
            "{err}"
        );
        assert!(err.contains(says), "{extra}: {err}");
    }

    // Scores are percentiles: a threshold outside 0..=1 (or not a number) is refused at
    // its own line.
    for bad in ["1.5", "-1", "nan"] {
        let setup = setup("", "");
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let text = text.replace("min_score = 0.85", &format!("min_score = {bad}"));
        std::fs::write(&setup.config, &text).unwrap();
        let line = text
            .lines()
            .position(|l| l.starts_with("min_score"))
            .unwrap()
            + 1;
        let (ok, _, err) = check(&setup);
        assert!(!ok, "min_score = {bad} accepted");
        assert!(
            err.contains(&format!("lookout.toml:{line}:")),
            "{bad}: {err}"
        );
        assert!(err.contains("key `min_score` in [[interest]]"), "{err}");
        assert!(err.contains("between 0 and 1"), "{bad}: {err}");
    }

    let missing = setup("", "");
    std::fs::remove_file(missing.dir.path().join("likes.txt")).unwrap();
    let (ok, _, err) = check(&missing);
    assert!(!ok);
    assert!(err.contains("key `likes` in [[interest]]"), "{err}");
    assert!(err.contains("cannot read likes file"), "{err}");
}

/// Drops `capture` and runs `lookout once` on it (which trains and writes the feeds);
/// returns its output.
fn once_with(setup: &Setup, capture: &[u8]) -> std::process::Output {
    setup.drop_file("papers.xml", capture);
    // A file written a moment ago may still be being written: `once` would leave it.
    std::fs::File::options()
        .write(true)
        .open(setup.drop.join("papers.xml"))
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60)))
        .expect("age the capture");
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["once", "--config"])
        .arg(&setup.config)
        .output()
        .expect("run lookout once");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
pub(crate) fn lookout_once_trains_scores_and_writes_the_interest_feed() {
    let setup = setup("notify = []", "");
    let out = once_with(&setup, &capture(0..15));
    let file = setup.dir.path().join("state/feeds/interests/cosmo.xml");
    let rss = std::fs::read_to_string(&file).expect("the interest feed file");
    let titles: Vec<&str> = rss
        .split("<title>")
        .skip(2)
        .filter_map(|t| t.split("</title>").next())
        .collect();
    assert!(
        !titles.is_empty(),
        "{rss}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(titles.iter().all(|t| is_cosmology(t)), "{titles:?}");
    assert!(rss.contains("Score 0."), "{rss}");
}

/// What training and rescoring cost beside the ingest, with 100,000 items stored.
/// Ignored by default (slow in a debug build); run it with
/// `cargo test --release --test it interests::training_at_scale -- --ignored --nocapture`.
/// It prints timings and asserts only what it ranked: a timing assert would fail on a
/// busy machine without saying anything about the code.
#[test]
#[ignore = "slow: fills 100,000 items; run by hand to measure"]
fn training_at_scale_prints_its_timings() {
    use lookout::daemon::interests::{rank, terms, train};
    use std::time::Instant;
    const STORED: usize = 100_000;
    let setup = setup("notify = []", "");
    let config = config(&std::fs::read_to_string(&setup.config).unwrap());
    let path = setup.dir.path().join("state/lookout.db");
    drop(lookout::store::Store::open(&path).expect("create schema"));
    let arxiv = |n: i64| format!("arxiv:24{:02}.{:05}", 1 + n / 100_000, n % 100_000);
    // Abstracts of 120 words drawn (Zipf-like, from a fixed LCG) from 30,000 words,
    // and a tenth of the papers on the liked topic.
    let started = Instant::now();
    {
        let mut conn = rusqlite::Connection::open(&path).expect("raw open");
        let tx = conn.transaction().unwrap();
        let mut seed: u64 = 42;
        let mut word = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let r = (seed >> 33) as f64 / f64::from(1u32 << 31);
            format!("w{}", (30_000f64.powf(r)) as u64)
        };
        for i in 0..STORED {
            let n = i as i64 + 1;
            let mut words: Vec<String> = (0..120).map(|_| word()).collect();
            if i % 10 == 0 {
                words.extend(TOPICS[0].iter().map(|w| (*w).to_owned()));
            }
            let title = words[..8].join(" ");
            tx.execute(
                "INSERT INTO items (id, key, title, summary, source, format, first_seen, updated_at)
                 VALUES (?1, ?2, ?3, ?4, 'drop', 'arxiv', ?5, ?5)",
                rusqlite::params![n, arxiv(n), title, words.join(" "), 1_600_000_000_000i64 + n],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO item_sources (source, item_id, first_seen) VALUES ('drop', ?1, 0)",
                [n],
            )
            .unwrap();
            tx.execute(
                "INSERT INTO item_keys (alias, item_id) VALUES (?1, ?2)",
                rusqlite::params![arxiv(n), n],
            )
            .unwrap();
        }
        tx.execute("UPDATE generation SET items = ?1", [STORED as i64])
            .unwrap();
        tx.commit().unwrap();
    }
    eprintln!("filled {STORED} items in {:?}", started.elapsed());
    // The likes: 40 of the topic's papers, by arXiv id.
    let likes: String = (0..40)
        .map(|k| format!("{}\n", &arxiv(k * 10 + 1)["arxiv:".len()..]))
        .collect();
    std::fs::write(config.interests[0].likes_path(), likes).unwrap();

    let store: lookout::store::SharedStore = std::sync::Arc::new(std::sync::Mutex::new(
        lookout::store::Store::open(&path).unwrap(),
    ));
    let started = Instant::now();
    let page = lookout::store::lock(&store).corpus(None, 5_000).unwrap();
    let read = started.elapsed();
    drop(page);
    let started = Instant::now();
    let trained = train(&config.interests[0], &store).expect("trained");
    let trained_in = started.elapsed();
    let started = Instant::now();
    let ranked = rank(&config.interests[0], &trained, None, 0.99);
    let rows: Vec<lookout::store::ScoreRow> = ranked
        .iter()
        .map(|&(n, score)| lookout::store::ScoreRow {
            item_id: trained.corpus[n].id,
            seen: trained.corpus[n].seen,
            score,
            terms: terms(&trained, n),
        })
        .collect();
    let ranked_in = started.elapsed();
    let started = Instant::now();
    lookout::store::lock(&store)
        .replace_interest_scores("cosmo", &rows, chrono::Utc::now())
        .unwrap();
    let written = started.elapsed();
    let stats = trained.model.stats();
    eprintln!(
        "one corpus page of 5,000 (the store locked) {read:?}; read + match likes + train {trained_in:?} \
         ({} positives, {} stored; vocabulary {}, model ~{} KB); \
         rescore {} items {ranked_in:?}; feed of {} rows written {written:?}",
        trained.positives,
        trained.matched,
        stats.vocabulary,
        stats.heap_bytes / 1024,
        trained.corpus.len(),
        rows.len()
    );
    assert_eq!(trained.corpus.len(), STORED);
    assert_eq!(trained.matched, 40);
}

#[test]
fn a_reload_refuses_a_bad_interest_and_takes_a_new_one() {
    let setup = setup("notify = []", "");
    let daemon = started_with_papers(&setup);
    let good = std::fs::read_to_string(&setup.config).unwrap();

    // An interest whose likes file is missing: refused with its line and key; the
    // running config stays.
    let missing = setup.dir.path().join("missing.bib");
    let bad =
        format!("{good}\n[[interest]]\nname = \"bio\"\nlikes = {missing:?}\nmin_score = 0.9\n");
    std::fs::write(&setup.config, &bad).unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(10), "the refusal", || {
        daemon.log().contains("new config refused").then_some(())
    });
    let line = bad
        .lines()
        .position(|l| l.starts_with("likes = ") && l.contains("missing"))
        .unwrap()
        + 1;
    let log = daemon.log();
    assert!(log.contains(&format!("lookout.toml:{line}:")), "{log}");
    assert!(log.contains("key `likes` in [[interest]]"), "{log}");
    assert_eq!(
        get(&format!("{}/interests/bio.xml", daemon.base), &[]).0,
        404
    );

    // The same interest with a likes file: taken, trained and served.
    let biology = paper(1, 3).1;
    std::fs::write(&missing, format!("@article{{b, title = {{{biology}}}}}\n")).unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(10), "the reload", || {
        daemon.log().contains("config reloaded").then_some(())
    });
    let titles = wait_for(Duration::from_secs(60), "the new interest's feed", || {
        let (status, _, body) = get(&format!("{}/interests/bio.json", daemon.base), &[]);
        let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
        let titles: Vec<String> = doc["items"]
            .as_array()?
            .iter()
            .filter_map(|i| i["title"].as_str().map(str::to_owned))
            .collect();
        (status == 200 && !titles.is_empty()).then_some(titles)
    });
    assert!(titles.iter().all(|t| !is_cosmology(t)), "{titles:?}");
}

#[test]
fn rank_refuses_an_unknown_source_or_interest() {
    let setup = setup("notify = []", "");
    for (args, said) in [
        (
            ["cosmo", "--source", "nosuch"],
            "no source \"nosuch\" in the config",
        ),
        (["nosuch", "--limit", "1"], "no interest named \"nosuch\""),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
            .args(["interest", "rank"])
            .args(args)
            .arg("--config")
            .arg(&setup.config)
            .output()
            .expect("run lookout interest rank");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} must fail");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}

#[test]
pub(crate) fn a_paper_waiting_in_the_drop_folder_at_start_is_scored_for_its_alert() {
    let server = Hook::start();
    let hook = format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        server.url()
    );
    let setup = setup("notify = [\"hook\"]", &hook);
    let daemon = started_with_papers(&setup);
    assert!(daemon.stop(Duration::from_secs(30)).success());

    // A paper as close to the likes as can be arrives while the daemon is down: the
    // daemon ingests it at start, and its interest must have a model by then.
    let title = "Dark matter halo mass and weak lensing of galaxy clusters, seen at start";
    let summary = "We study dark matter and weak lensing of galaxy clusters.";
    let paper = (
        "2401.00997".to_owned(),
        title.to_owned(),
        summary.to_owned(),
    );
    setup.drop_file("waiting.xml", &rss([paper]));
    let _daemon = Daemon::start(&setup.config);
    setup.wait_filed("processed", "waiting.xml");
    wait_for(Duration::from_secs(60), "the waiting paper's alert", || {
        server
            .received()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(title))
            .then_some(())
    });
}

#[test]
fn a_reload_that_adds_an_interest_alerts_the_next_paper_at_once() {
    let server = Hook::start();
    let hook = format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        server.url()
    );
    let setup = setup("notify = []", &hook);
    let daemon = started_with_papers(&setup);
    // Enough papers that a training takes longer than an ingest of one paper.
    setup.drop_file("more.xml", &capture(15..600));
    setup.wait_filed("processed", "more.xml");

    // A reload adds a biology interest, liking three stored biology papers, and a
    // drop folder that already holds a new biology paper: the folder's start-up scan
    // ingests it at once, and the new interest must have its model by then.
    let bio_likes = setup.dir.path().join("bio.txt");
    let liked: String = [3, 4, 5].map(|n| format!("{}\n", paper(1, n).0)).concat();
    std::fs::write(&bio_likes, liked).unwrap();
    let later = setup.dir.path().join("later");
    std::fs::create_dir_all(&later).unwrap();
    let (_, _, summary) = paper(1, 4);
    let title = "Protein folding and enzyme kinetics of gene expression, seen at the reload";
    std::fs::write(
        later.join("waiting.xml"),
        rss([("2402.00999".to_owned(), title.to_owned(), summary)]),
    )
    .unwrap();
    // Written long ago: the start-up scan takes it without waiting for it to settle.
    std::fs::File::options()
        .write(true)
        .open(later.join("waiting.xml"))
        .and_then(|f| f.set_modified(std::time::SystemTime::now() - Duration::from_secs(60)))
        .expect("age the capture");
    let text = std::fs::read_to_string(&setup.config).unwrap();
    // Biology is three quarters of this store: a low threshold, since this test is
    // about when the model exists, not how it ranks.
    std::fs::write(
        &setup.config,
        format!(
            "{text}\n[[interest]]\nname = \"bio\"\nlikes = {bio_likes:?}\nmin_score = 0.3\nnotify = [\"hook\"]\n\
             [[source]]\nname = \"later\"\nkind = \"folder\"\npath = {later:?}\nsettle = \"200ms\"\n"
        ),
    )
    .unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(60), "the new interest's alert", || {
        server.received().iter().find_map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
            (body["title"] == title && body["rule"] == "interest:bio").then_some(())
        })
    });
}

#[test]
fn buttons_redirect_and_opml_keep_the_base_url_path_prefix() {
    let setup = setup("notify = []", "");
    server_keys(&setup, "base_url = \"https://papers.example/lookout/\"");
    let daemon = started_with_papers(&setup);
    let page = wait_for(
        Duration::from_secs(30),
        "buttons on the status page",
        || {
            let (_, _, body) = get(&format!("{}/", daemon.base), &[]);
            let html = String::from_utf8_lossy(&body).into_owned();
            html.contains("name=\"form_token\"").then_some(html)
        },
    );
    // Behind a proxy that serves lookout at /lookout/ and strips the prefix, every
    // link the browser follows from the page must carry it.
    let action = attribute(&page, "class=\"verdict\"", "action");
    assert_eq!(action, "/lookout/interests/cosmo/verdict");
    assert!(page.contains("href=\"/lookout/feeds.opml\""), "{page}");
    let token = attribute(&page, "name=\"form_token\"", "value");
    let item = attribute(
        &page,
        "class=\"verdict\"><input type=\"hidden\" name=\"item\"",
        "value",
    );
    // Here there is no proxy: post where the proxy would.
    let (status, location) = post_to(
        &format!("{}/interests/cosmo/verdict", daemon.base),
        // What a proxy that keeps the browser's Host sends.
        &[
            ("host", "papers.example"),
            ("origin", "https://papers.example"),
            ("sec-fetch-site", "same-origin"),
        ],
        &[
            ("item", item.as_str()),
            ("verdict", "like"),
            ("form_token", token.as_str()),
        ],
    );
    assert_eq!(status, 303);
    assert_eq!(location.as_deref(), Some("/lookout/#interest-cosmo"));
    let (_, _, opml) = get(&format!("{}/feeds.opml", daemon.base), &[]);
    let opml = String::from_utf8_lossy(&opml);
    assert!(
        opml.contains("https://papers.example/lookout/interests/cosmo.xml"),
        "{opml}"
    );
}

#[test]
pub(crate) fn metrics_and_healthz_report_each_interest() {
    let setup = setup("notify = []", "");
    let daemon = started_with_papers(&setup);
    let (_, _, body) = get(&format!("{}/metrics", daemon.base), &[]);
    let metrics = String::from_utf8_lossy(&body).into_owned();
    let sample = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} in {metrics}"))
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let trained_at = sample("lookout_interest_trained_timestamp_seconds{interest=\"cosmo\"}");
    assert!(
        now - trained_at < 600.0 && trained_at <= now + 1.0,
        "{trained_at}"
    );
    assert!(sample("lookout_interest_training_seconds{interest=\"cosmo\"}") > 0.0);
    assert!(sample("lookout_interest_vocabulary{interest=\"cosmo\"}") > 10.0);
    // Two likes are stored items; two are not (one trains from its title).
    assert_eq!(
        sample("lookout_interest_likes{interest=\"cosmo\",state=\"matched\"}"),
        2.0
    );
    assert_eq!(
        sample("lookout_interest_likes{interest=\"cosmo\",state=\"unmatched\"}"),
        2.0
    );
    let above = sample("lookout_interest_items_above_threshold{interest=\"cosmo\"}");
    assert_eq!(above as usize, feed(&daemon, "").len());
    assert!(above > 0.0);
    assert_eq!(
        sample("lookout_interest_training_errors_total{interest=\"cosmo\"}"),
        0.0
    );
    assert_eq!(
        sample("lookout_interest_scoring_errors_total{interest=\"cosmo\"}"),
        0.0
    );

    let (status, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
    assert_eq!(status, 200);
    let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let cosmo = &health["interests"]["cosmo"];
    assert_eq!(cosmo["matched"], 2, "{health}");
    assert_eq!(cosmo["unmatched"], 2, "{health}");
    assert_eq!(cosmo["items_above_threshold"].as_f64(), Some(above));
    assert!(cosmo["trained_at"].is_string(), "{health}");
    assert!(cosmo["vocabulary"].as_u64().is_some_and(|v| v > 10));
    assert_eq!(cosmo["training_errors"], 0);
    assert!(cosmo["error"].is_null());
}

#[test]
fn check_refuses_an_empty_an_unset_or_a_missing_likes_path_and_reads_a_relative_one() {
    let line_of = |setup: &Setup| {
        std::fs::read_to_string(&setup.config)
            .unwrap()
            .lines()
            .position(|l| l.starts_with("likes = "))
            .unwrap()
            + 1
    };
    let set_likes = |setup: &Setup, value: &str| {
        let text = std::fs::read_to_string(&setup.config).unwrap();
        let old = text
            .lines()
            .find(|l| l.starts_with("likes = "))
            .unwrap()
            .to_owned();
        std::fs::write(
            &setup.config,
            text.replace(&old, &format!("likes = {value}")),
        )
        .unwrap();
    };
    let refused = |setup: &Setup, says: &str| {
        let (ok, _, err) = check(setup);
        assert!(!ok, "accepted: {says}");
        assert!(
            err.contains(&format!("lookout.toml:{}:", line_of(setup))),
            "{err}"
        );
        assert!(err.contains("key `likes` in [[interest]]"), "{err}");
        assert!(err.contains(says), "{err}");
    };

    let empty = setup("", "");
    std::fs::write(empty.dir.path().join("likes.txt"), "# nothing yet\n\n").unwrap();
    refused(&empty, "names no paper");

    let unset = setup("", "");
    set_likes(&unset, "\"${LOOKOUT_TEST_UNSET_LIKES}/likes.txt\"");
    refused(&unset, "${LOOKOUT_TEST_UNSET_LIKES} is not set");

    let missing = setup("", "");
    set_likes(&missing, "\"nowhere/likes.bib\"");
    refused(&missing, "cannot read likes file");
    // A relative path is the config file's directory's, whatever the working directory.
    let (_, _, err) = check(&missing);
    let expected = missing.dir.path().join("nowhere/likes.bib");
    assert!(err.contains(&expected.display().to_string()), "{err}");

    let relative = setup("", "");
    set_likes(&relative, "\"likes.txt\"");
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["check", "--config"])
        .arg(&relative.config)
        .current_dir(std::env::temp_dir())
        .output()
        .expect("run lookout check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let resolved = relative.dir.path().join("likes.txt");
    assert!(stdout.contains(&resolved.display().to_string()), "{stdout}");

    // The same refusal at start.
    let out = Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(["run", "--config"])
        .arg(&empty.config)
        .output()
        .expect("run lookout");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("names no paper"), "{err}");
}

#[test]
fn about_one_stored_paper_in_a_hundred_scores_099_in_a_small_store() {
    let setup = setup("notify = []", "");
    // 300 papers, a quarter of them on the liked topic.
    once_with(&setup, &capture(0..75));
    let ranked = rank_json(&setup.config, 1000);
    assert_eq!(ranked.len(), 300);
    let others: Vec<(&str, f64)> = ranked
        .iter()
        .filter(|r| r["liked"] == false)
        .map(|r| (r["title"].as_str().unwrap(), r["score"].as_f64().unwrap()))
        .collect();
    // A stored paper's score is its percentile among the other stored papers, as a
    // new paper's is: about 1 % at or above 0.99, and the median about a half.
    let above = others.iter().filter(|(_, s)| *s >= 0.99).count();
    assert!(
        above >= 1 && above * 100 <= others.len() * 3,
        "{above} of {} at or above 0.99",
        others.len()
    );
    let mut scores: Vec<f64> = others.iter().map(|(_, s)| *s).collect();
    scores.sort_by(f64::total_cmp);
    let median = scores[scores.len() / 2];
    assert!((0.3..0.7).contains(&median), "median {median}");
    // The liked topic's other papers rank first.
    let topic = others.iter().filter(|(t, _)| is_cosmology(t)).count();
    assert!(
        others[..topic].iter().all(|(t, _)| is_cosmology(t)),
        "{others:?}"
    );
}

/// A likes file emptied while the daemon runs (an exporter that truncates before it
/// writes) is an error that keeps the model trained on its last contents, as a deleted
/// one is, not a retraining on nothing.
#[test]
fn a_likes_file_emptied_while_running_keeps_the_last_model() {
    let setup = setup("notify = []", "");
    let daemon = started_with_papers(&setup);
    let before = feed(&daemon, "");
    assert!(!before.is_empty());
    let cosmo = || {
        let (_, _, body) = get(&format!("{}/healthz", daemon.base), &[]);
        let health: serde_json::Value = serde_json::from_slice(&body).unwrap();
        health["interests"]["cosmo"].clone()
    };
    let trained_at = cosmo()["trained_at"].clone();
    std::fs::write(setup.dir.path().join("likes.txt"), "").unwrap();
    let error = wait_for(Duration::from_secs(60), "the empty file reported", || {
        cosmo()["error"].as_str().map(str::to_owned)
    });
    assert!(error.contains("names no paper"), "{error}");
    let now = cosmo();
    assert_eq!(now["trained_at"], trained_at, "{now}");
    assert_eq!(now["matched"], 2, "{now}");
    assert_eq!(feed(&daemon, ""), before);
}
