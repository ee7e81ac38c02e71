//! Log injection (issue 13.9): a file name or title holding control characters never
//! forges a log line or reaches the terminal raw, in the human and JSON formats alike.

use std::time::Duration;

use crate::common::*;

/// A junk file whose name holds a newline and an escape sequence, dropped into the
/// real daemon's folder: it is refused and logged, on one line, escaped.
fn drop_forging_name(env: &[(&str, &str)]) -> String {
    let setup = Setup::new("");
    let daemon = Daemon::start_with(&setup.config, env);
    let name = "evil\nERROR lookout: forged line\u{1b}[31m.txt";
    setup.drop_file(name, b"\x00\x01 no listing here \x02");
    setup.wait_filed("failed", name);
    let log = wait_for(Duration::from_secs(10), "the refusal in the log", || {
        let log = daemon.log();
        log.contains("forged line").then_some(log)
    });
    daemon.stop(Duration::from_secs(10));
    log
}

#[test]
fn control_characters_in_file_names_are_escaped_in_human_logs() {
    let log = drop_forging_name(&[]);
    assert!(
        !log.lines().any(|l| l.starts_with("ERROR lookout: forged")),
        "a forged line:\n{log}"
    );
    assert!(!log.contains('\u{1b}'), "a raw escape sequence:\n{log}");
    assert!(
        log.contains("evil\\nERROR lookout: forged line\\u{1b}[31m.txt"),
        "{log}"
    );
}

#[test]
fn control_characters_in_file_names_are_escaped_in_json_logs() {
    let log = drop_forging_name(&[("LOOKOUT_LOG_FORMAT", "json")]);
    for line in log.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("not one JSON object per line ({e}): {line:?}"));
    }
    assert!(!log.contains('\u{1b}'), "a raw escape sequence:\n{log}");
}
