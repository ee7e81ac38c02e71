//! End to end: alerts delivered by the real daemon to a real local webhook receiver,
//! once across restarts; per-rule feeds; SIGHUP reload (good and bad configs).

use std::time::Duration;

use crate::common::*;

fn webhook_config(url: &str) -> String {
    format!(
        "[[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n\
         [[alert]]\nname = \"equivariant\"\nany = [\"equivariant\", \"equivariance\"]\nfields = [\"title\"]\nnotify = [\"hook\"]\n"
    )
}

#[test]
fn matches_are_delivered_once_and_fill_the_rule_feed() {
    let server = Hook::start();
    let setup = Setup::new(&webhook_config(&server.url()));
    let daemon = Daemon::start(&setup.config);
    setup.drop_file("may20.txt", &fixture("hf_papers_may20.txt"));

    // Titles in the May 20 capture with "equivariant"/"equivariance" as a whole word.
    let capture = String::from_utf8(fixture("hf_papers_may20.txt")).unwrap();
    let expected: Vec<&str> = capture
        .lines()
        .filter(|l| l.len() < 300 && !l.starts_with(' '))
        .filter(|l| {
            l.split(|c: char| !c.is_alphanumeric()).any(|w| {
                w.eq_ignore_ascii_case("equivariant") || w.eq_ignore_ascii_case("equivariance")
            })
        })
        .collect();
    assert!(
        expected.len() >= 3,
        "fixture has matching titles: {expected:?}"
    );

    let requests = wait_for(Duration::from_secs(60), "every webhook delivery", || {
        let r = server.received();
        (r.len() >= expected.len()).then_some(r)
    });
    assert_eq!(
        requests.len(),
        expected.len(),
        "one delivery per matching item"
    );
    let mut keys = Vec::new();
    for r in &requests {
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["rule"], "equivariant");
        assert!(
            expected.contains(&body["title"].as_str().unwrap()),
            "{body}"
        );
        keys.push(r.headers["idempotency-key"].to_str().unwrap().to_owned());
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), expected.len(), "idempotency keys are per item");

    let (status, _, body) = get(&format!("{}/alerts/equivariant.xml", daemon.base), &[]);
    assert_eq!(status, 200);
    assert_eq!(
        rss_guids(&body).len(),
        expected.len(),
        "the rule feed holds the matches"
    );

    // An overlapping capture and a restart deliver nothing again.
    setup.drop_file("apr17.txt", &fixture("hf_papers_apr17.txt"));
    setup.wait_filed("processed", "apr17.txt");
    assert!(daemon.stop(Duration::from_secs(10)).success());
    let daemon = Daemon::start(&setup.config);
    let before = server.received().len();
    setup.drop_file("again.txt", &fixture("hf_papers_may20.txt"));
    setup.wait_filed("processed", "again.txt");
    let (_, _, body) = get(&format!("{}/alerts/equivariant.xml", daemon.base), &[]);
    let after_feed = rss_guids(&body).len();
    // The April capture has its own new matches (delivered once each); May 20's are not
    // delivered again.
    let all = server.received();
    let titles: Vec<String> = all
        .iter()
        .map(|r| serde_json::from_slice::<serde_json::Value>(&r.body).unwrap()["title"].to_string())
        .collect();
    let mut unique = titles.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        titles.len(),
        "no item delivered twice: {titles:?}"
    );
    assert!(all.len() >= before);
    assert_eq!(after_feed, all.len(), "rule feed and deliveries agree");
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

#[test]
fn sighup_adds_sources_and_rules_and_refuses_a_bad_config() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let base = daemon.base.clone();
    assert_eq!(get(&format!("{base}/feeds/second.xml"), &[]).0, 404);
    assert_eq!(get(&format!("{base}/alerts/flows.xml"), &[]).0, 404);

    // Add a second folder source and a rule, then reload.
    let second = setup.dir.path().join("second");
    let good = format!(
        "{}\n[[source]]\nname = \"second\"\nkind = \"folder\"\npath = {second:?}\nsettle = \"200ms\"\n\
         [[alert]]\nname = \"flows\"\nany = [\"flow*\"]\nfields = [\"title\"]\n",
        std::fs::read_to_string(&setup.config).unwrap()
    );
    std::fs::write(&setup.config, &good).unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(10), "the reload", || {
        daemon.log().contains("config reloaded").then_some(())
    });
    std::fs::create_dir_all(&second).unwrap();
    std::fs::write(second.join(".x.part"), fixture("hf_papers_may20.txt")).unwrap();
    std::fs::rename(second.join(".x.part"), second.join("x.txt")).unwrap();
    let body = wait_for(Duration::from_secs(60), "the new source's feed", || {
        let (status, _, body) = get(&format!("{base}/feeds/second.xml"), &[]);
        (status == 200 && rss_guids(&body).len() == 27).then_some(body)
    });
    assert_eq!(rss_guids(&body).len(), 27);
    let (status, _, body) = get(&format!("{base}/alerts/flows.xml"), &[]);
    assert_eq!(status, 200);
    assert!(
        !rss_guids(&body).is_empty(),
        "the new rule matched the new source's items"
    );

    // A broken config is refused; the running one keeps working.
    std::fs::write(&setup.config, format!("{good}\nbogus_key = 1\n")).unwrap();
    daemon.signal(libc::SIGHUP);
    wait_for(Duration::from_secs(10), "the refusal", || {
        daemon.log().contains("new config refused").then_some(())
    });
    assert!(
        daemon.log().contains("bogus_key"),
        "the error names the key"
    );
    setup.drop_file("ai.txt", &fixture("aitopics_energy.txt"));
    setup.wait_filed("processed", "ai.txt");
    assert_eq!(
        get(&format!("{base}/feeds/second.xml"), &[]).0,
        200,
        "old config still runs"
    );
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

/// `state_dir` and `listen` cannot change under a running daemon (the store is open,
/// the socket bound): a reload that changes either is refused whole, with a message
/// that says to restart, and the running config keeps working. Before, a new
/// `state_dir` was half applied: the store stayed, the feed files moved.
#[test]
fn sighup_refuses_a_new_state_dir_or_listen_and_keeps_the_running_config() {
    let setup = Setup::new("");
    let daemon = Daemon::start(&setup.config);
    let base = daemon.base.clone();
    let original = std::fs::read_to_string(&setup.config).unwrap();
    let moved = setup.dir.path().join("elsewhere");
    let changes = [
        (
            original.replacen("state_dir = ", &format!("state_dir = {moved:?}\n#"), 1),
            "`state_dir` changed from",
        ),
        (
            original.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\""),
            "`listen` changed from 127.0.0.1:0 to 127.0.0.1:1",
        ),
    ];
    for (n, (text, message)) in changes.into_iter().enumerate() {
        // A rule added in the same edit must not slip in either: the reload is whole.
        let rule = format!("rule{n}");
        std::fs::write(
            &setup.config,
            format!("{text}\n[[alert]]\nname = \"{rule}\"\nany = [\"x\"]\n"),
        )
        .unwrap();
        daemon.signal(libc::SIGHUP);
        let log = wait_for(Duration::from_secs(10), "the refusal", || {
            let log = daemon.log();
            (log.matches("new config refused").count() > n).then_some(log)
        });
        assert!(log.contains(message), "wants {message:?} in:\n{log}");
        assert!(log.contains("restart lookout to apply it"), "{log}");
        assert_eq!(
            get(&format!("{base}/alerts/{rule}.xml"), &[]).0,
            404,
            "nothing of the refused config applied"
        );
    }
    assert!(!moved.exists(), "nothing was written to the new state_dir");
    setup.drop_file("may20.txt", &fixture("hf_papers_may20.txt"));
    setup.wait_filed("processed", "may20.txt");
    assert_eq!(get(&format!("{base}/feed.xml"), &[]).0, 200);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}

/// `listen` takes a host name, resolved when the daemon starts (before: "invalid
/// socket address syntax").
#[test]
fn a_host_name_in_listen_is_resolved_at_start() {
    let setup = Setup::new("");
    let text = std::fs::read_to_string(&setup.config).unwrap();
    assert!(text.contains("listen = \"127.0.0.1:0\""), "{text}");
    std::fs::write(
        &setup.config,
        text.replace("listen = \"127.0.0.1:0\"", "listen = \"localhost:0\""),
    )
    .unwrap();
    let daemon = Daemon::start(&setup.config);
    let (status, _, _) = get(&format!("{}/healthz", daemon.base), &[]);
    assert_eq!(status, 200);
    assert!(daemon.stop(Duration::from_secs(10)).success());
}
