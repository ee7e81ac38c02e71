//! End to end: what an operator reads in the log at the default level (INFO). Routine
//! polls (a 304, an unchanged page) say nothing; a failure or a delivery retry is a
//! WARN; a refused file is one line; values are shown with `Display`, never Rust's
//! `Debug` shapes, and an alert line names its item once (issue 16, "the operator's
//! view").

use std::time::Duration;

use crate::common::*;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, ResponseTemplate};

/// The lines of `log` at `level` (human format: `... LEVEL target: message`).
fn at_level<'a>(log: &'a str, level: &str) -> Vec<&'a str> {
    let tag = format!(" {level} ");
    log.lines().filter(|l| l.contains(&tag)).collect()
}

#[test]
fn info_logs_events_once_and_routine_polls_not_at_all() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let server = rt.block_on(async {
        let server = serving(vec![
            // A server without validators: the same bytes on every poll.
            (
                "/same",
                ResponseTemplate::new(200).set_body_bytes(fixture("aitopics_energy.txt")),
            ),
            ("/hook", ResponseTemplate::new(500)),
        ])
        .await;
        // A conditional GET of the current page: 304.
        Mock::given(method("GET"))
            .and(path("/hf"))
            .and(header("if-none-match", "\"hf-1\""))
            .respond_with(ResponseTemplate::new(304))
            .with_priority(1)
            .mount(&server)
            .await;
        Mock::given(method("GET"))
            .and(path("/hf"))
            .respond_with(hf_page())
            .mount(&server)
            .await;
        server
    });
    let uri = server.uri();
    let extra = format!(
        "[[source]]\nname = \"hf\"\nkind = \"http\"\nurl = \"{uri}/hf\"\nevery = \"1s\"\njitter = \"0s\"\n\
         [[source]]\nname = \"same\"\nkind = \"http\"\nurl = \"{uri}/same\"\nevery = \"1s\"\njitter = \"0s\"\n\
         [[notifier]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{uri}/hook\"\n\
         [[alert]]\nname = \"subsets\"\nany = [\"Solution Degeneracy\"]\nfields = [\"title\"]\nnotify = [\"hook\", \"log\"]\n"
    );
    let setup = Setup::new(&extra);
    let daemon = Daemon::start_with(&setup.config, &[("RUST_LOG", "info")]);

    // A dropped capture alerts (dropped files are never a baseline); a junk file is
    // refused.
    setup.drop_file("apr17.txt", &fixture("hf_papers_apr17.txt"));
    setup.drop_file("junk.txt", b"\x00\x01 not a listing at all");
    setup.wait_filed("failed", "junk.txt");
    // Several routine polls of each source, and a delivery retried.
    wait_for(Duration::from_secs(60), "routine polls and a retry", || {
        let retried = daemon.log().contains("delivery failed; will retry");
        (requests_to(&rt, &server, "/hf") >= 4
            && requests_to(&rt, &server, "/same") >= 4
            && retried)
            .then_some(())
    });
    let log = daemon.log();

    // Each source's first page is an event; the polls after it are not.
    let ingested = |source: &str| {
        at_level(&log, "INFO")
            .into_iter()
            .filter(|l| l.contains(&format!("source={source} ")))
            .count()
    };
    assert_eq!(
        ingested("hf"),
        1,
        "one line for hf, then quiet 304s:\n{log}"
    );
    assert_eq!(
        ingested("same"),
        1,
        "one line for same, then quiet unchanged pages:\n{log}"
    );
    // A delivery retry is a warning.
    assert!(
        at_level(&log, "WARN")
            .iter()
            .any(|l| l.contains("delivery failed; will retry")),
        "{log}"
    );
    // A refused file: one line, however many parts of lookout saw it.
    let junk: Vec<&str> = log.lines().filter(|l| l.contains("junk.txt")).collect();
    assert_eq!(junk.len(), 1, "{junk:#?}");
    assert!(junk[0].contains(" WARN "), "{}", junk[0]);
    // Display, not Debug.
    for shape in ["IngestReport {", "Ingested {", "Some(", "=\""] {
        assert!(
            !log.contains(shape),
            "Debug output ({shape}) in the log:\n{log}"
        );
    }
    // The log notifier's alert line names its item once.
    let title = "Measuring and Controlling Solution Degeneracy";
    let alert = log
        .lines()
        .find(|l| l.contains(title))
        .unwrap_or_else(|| panic!("no alert line:\n{log}"));
    assert_eq!(alert.matches(title).count(), 1, "{alert}");
    assert!(daemon.stop(Duration::from_secs(10)).success());
}
