//! The command line as a user meets it: `check`, `parse`, `import`, `alert test`.

use std::process::{Command, Output};

use crate::common::drop_config;

fn lookout(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lookout"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run lookout")
}

/// A fixture's path as a command-line argument.
fn fixture(name: &str) -> String {
    crate::common::fixture_path(name).display().to_string()
}

#[test]
fn check_accepts_the_shipped_config_and_prints_what_would_run() {
    let config = format!("{}/config/lookout.toml", env!("CARGO_MANIFEST_DIR"));
    let out = lookout(&["check", "--config", &config]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("config ok"));
    assert!(
        stdout.contains("source drop: folder ./drop (after: move), format auto"),
        "{stdout}"
    );
    assert!(stdout.contains("alert diffusion:"), "{stdout}");
}

#[test]
fn check_refuses_a_bad_config_with_file_line_column_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[feed]\ntitle = \"x\"\nmax_items = \"many\"\n").unwrap();
    let out = lookout(&["check", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!(
            "{}:3:13: key `max_items` in [feed]",
            path.display()
        )),
        "{stderr}"
    );
}

#[test]
fn parse_json_prints_one_object_per_entry_with_every_field() {
    let out = lookout(&["parse", &fixture("hf_papers_may20.txt"), "--json"]);
    assert!(out.status.success());
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 27);
    let first = &lines[0];
    for field in [
        "key",
        "title",
        "link",
        "summary",
        "authors",
        "author_count",
        "source",
        "published",
        "format",
    ] {
        assert!(first.get(field).is_some(), "field {field} in {first}");
    }
    assert_eq!(first["published"], "2024-02-05");
    assert_eq!(first["author_count"], 8);
    assert_eq!(first["format"], "hf-papers");
}

#[test]
fn parse_table_names_the_format_and_refuses_garbage() {
    let out = lookout(&["parse", &fixture("aitopics_energy.txt")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("10 entries, format aitopics"), "{stdout}");
    assert!(stdout.contains("Al Jazeera"));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, [0u8, 159, 146, 150, 1, 2, 3]).unwrap();
    let out = lookout(&["parse", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized"));
}

#[test]
fn import_fills_the_feeds_once_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let captures = dir.path().join("captures");
    std::fs::create_dir(&captures).unwrap();
    for name in [
        "hf_papers_may20.txt",
        "hf_papers_apr17.txt",
        "aitopics_energy.txt",
    ] {
        std::fs::copy(fixture(name), captures.join(name)).unwrap();
    }
    std::fs::write(captures.join("junk.bin"), [0u8, 1, 2, 255]).unwrap();
    let config = drop_config(dir.path());
    let out = lookout(&[
        "import",
        captures.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success(),
        "a refused file makes the exit non-zero"
    );
    assert!(
        stdout.contains("4 files: 3 ingested, 0 seen before, 1 refused; 72 entries, 68 new items"),
        "{stdout}"
    );
    assert!(
        stdout.contains("refused ") && stdout.contains("junk.bin"),
        "{stdout}"
    );
    let feed = std::fs::read(dir.path().join("state/feeds/feed.xml")).expect("feeds written");
    assert_eq!(
        rss::Channel::read_from(&feed[..]).unwrap().items().len(),
        68
    );
    assert!(
        captures.join("hf_papers_may20.txt").exists(),
        "import never moves files"
    );
    assert!(
        !dir.path().join("state/lookout.db.import").exists(),
        "the first fill, loaded aside, was moved into place"
    );

    std::fs::remove_file(captures.join("junk.bin")).unwrap();
    let out = lookout(&[
        "import",
        captures.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("3 files: 0 ingested, 3 seen before"));
}

#[test]
fn import_beside_a_running_daemon_goes_into_the_store_it_has_open() {
    let dir = tempfile::tempdir().unwrap();
    let captures = dir.path().join("captures");
    std::fs::create_dir(&captures).unwrap();
    std::fs::copy(
        fixture("hf_papers_may20.txt"),
        captures.join("hf_papers_may20.txt"),
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("state_dir = {:?}\n", dir.path().join("state")),
    )
    .unwrap();
    // The daemon's connection: an empty store, open while the import runs.
    let daemon = lookout::store::Store::open(&dir.path().join("state/lookout.db")).unwrap();
    let out = lookout(&[
        "import",
        captures.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        daemon.item_count().unwrap(),
        27,
        "the daemon's file holds the import: it was not replaced under it"
    );
}

#[test]
fn completions_and_man_page_come_from_the_definitions() {
    let out = lookout(&["completions", "bash"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("import"));
    let out = lookout(&["man"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains(".TH lookout"));
}

/// Runs `lookout check` on `text`, written to a file; returns the file, stdout, stderr
/// and whether it passed.
fn check(text: &str) -> (String, String, String, bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, text).unwrap();
    let out = lookout(&["check", "--config", path.to_str().unwrap()]);
    (
        path.display().to_string(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn check_refuses_what_would_otherwise_fail_only_later_at_its_key() {
    const HTTP: &str = "[[source]]\nname = \"s\"\nkind = \"http\"\n";
    let cases = [
        // (config, where, what)
        (
            format!(
                "{HTTP}url = \"https://example.org/\"\nheaders = {{ \"Bad Header\" = \"x\" }}\n"
            ),
            "5:11: key `headers` in [[source]]",
            "header name \"Bad Header\" is not a valid HTTP header name",
        ),
        (
            format!("{HTTP}url = \"https://example.org/\"\nheaders = {{ X-Key = \"a\\nb\" }}\n"),
            "5:11: key `headers` in [[source]]",
            "the value of header \"X-Key\" holds characters HTTP cannot carry",
        ),
        (
            format!("{HTTP}url = \"https://example.org/\"\nuser_agent = \"bad\\nua\"\n"),
            "5:14: key `user_agent` in [[source]]",
            "`user_agent` holds characters HTTP cannot carry",
        ),
        (
            "[[notifier]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"notaurl\"\n".to_owned(),
            "4:7: key `url` in [[notifier]]",
            "not a valid URL",
        ),
        (
            "[[notifier]]\nname = \"w\"\nkind = \"webhook\"\nurl = \"ftp://h.example/x\"\n"
                .to_owned(),
            "4:7: key `url` in [[notifier]]",
            "url scheme \"ftp\" is not http or https",
        ),
        (
            "[[notifier]]\nname = \"n\"\nkind = \"ntfy\"\ntopic = \"t\"\nserver = \"ntfy\"\n"
                .to_owned(),
            "5:10: key `server` in [[notifier]]",
            "not a valid URL",
        ),
        (
            format!(
                "{HTTP}url = \"https://example.org/\"\nformat = \"selectors\"\n\
                 selectors = {{ item = \"article[\", title = \"h2\" }}\n"
            ),
            "6:13: key `selectors` in [[source]]",
            "selectors.item: invalid CSS selector \"article[\"",
        ),
        (
            format!(
                "{HTTP}url = \"https://example.org/\"\nformat = \"selectors\"\n\
                 selectors = {{ item = \"li\", title = \"h2\", date_format = \"%Y-%J\" }}\n"
            ),
            "6:13: key `selectors` in [[source]]",
            "selectors.date_format \"%Y-%J\" is not a chrono format",
        ),
        (
            "[[alert]]\nname = \"r\"\nregex = ['(open']\n".to_owned(),
            "3:10: key `regex` in [[alert]]",
            "alert \"r\": bad regex",
        ),
        (
            format!("{HTTP}url = \"https://example.org/?key=${{LOOKOUT_CLI_TEST_UNSET}}\"\n"),
            "4:7: key `url` in [[source]]",
            "${LOOKOUT_CLI_TEST_UNSET} is not set",
        ),
        (
            format!("{HTTP}url = \"https://example.org/\"\nevery = \"0s\"\n"),
            "5:9: key `every` in [[source]]",
            "`every` must be at least 1s",
        ),
        (
            format!("{HTTP}url = \"https://example.org/\"\nsettle = \"1s\"\n"),
            "5:1: key `settle` in [[source]]",
            "`settle` does not apply to a http source",
        ),
        (
            "[[notifier]]\nname = \"m\"\nkind = \"email\"\nhost = \"h\"\nfrom = \"a@b.org\"\n\
             to = [\"c@d.org\"]\ntopic = \"t\"\n"
                .to_owned(),
            "7:1: key `topic` in [[notifier]]",
            "`topic` does not apply to an email notifier",
        ),
        (
            "[server]\nlisten = \"localhost\"\n".to_owned(),
            "2:10: key `listen` in [server]",
            "is not host:port",
        ),
    ];
    for (text, at, what) in cases {
        let (file, stdout, stderr, ok) = check(&text);
        assert!(!ok, "accepted:\n{text}\n{stdout}");
        assert!(
            stderr.contains(&format!("{file}:{at}")),
            "{text}\nwants {at}: {stderr}"
        );
        assert!(stderr.contains(what), "{text}\nwants {what}: {stderr}");
        assert!(!stdout.contains("config ok"), "{stdout}");
    }
}

#[test]
fn check_prints_every_source_rule_and_notifier_that_will_run() {
    let (_, stdout, stderr, ok) = check(
        "[server]\nlisten = \"localhost:8099\"\n\
         [[source]]\nname = \"papers\"\nkind = \"http\"\nurl = \"https://example.org/papers\"\n\
         every = \"2h\"\njitter = \"5m\"\nformat = \"hf-papers\"\n\
         [[source]]\nname = \"drop\"\nkind = \"folder\"\npath = \"./drop\"\nafter = \"keep\"\n\
         [[notifier]]\nname = \"team\"\nkind = \"webhook\"\nurl = \"https://hooks.example.org/s3cr3t\"\n\
         template = \"slack\"\n\
         [[notifier]]\nname = \"phone\"\nkind = \"ntfy\"\ntopic = \"papers\"\n\
         [[notifier]]\nname = \"local\"\nkind = \"webhook\"\nurl = \"http://127.0.0.1:18191/k3y\"\n\
         [[alert]]\nname = \"diffusion\"\nany = [\"diffusion\"]\nfields = [\"title\"]\n\
         sources = [\"papers\"]\nnotify = [\"team\", \"phone\"]\ndigest = \"1h\"\n",
    );
    assert!(ok, "{stderr}");
    for line in [
        "server: listening on localhost:8099",
        "source papers: http https://example.org/papers every 2h (+ up to 5m jitter), format hf-papers",
        "source drop: folder ./drop (after: keep), format auto",
        "notifier team: webhook to https://hooks.example.org/… (slack)",
        "notifier phone: ntfy topic papers",
        "notifier local: webhook to http://127.0.0.1:18191/… (json)",
        "alert diffusion: any [\"diffusion\"] all [] none [] regex [] in title of papers -> team, phone, digest every 1h",
    ] {
        assert!(stdout.contains(line), "wants {line:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains("s3cr3t") && !stdout.contains("k3y"),
        "a webhook path may be its credential: {stdout}"
    );
}

#[test]
fn import_refuses_a_source_the_config_does_not_have() {
    let dir = tempfile::tempdir().unwrap();
    let captures = dir.path().join("captures");
    std::fs::create_dir(&captures).unwrap();
    std::fs::copy(fixture("hf_papers_may20.txt"), captures.join("a.txt")).unwrap();
    let config = drop_config(dir.path());
    let out = lookout(&[
        "import",
        captures.to_str().unwrap(),
        "--source",
        "nosuch",
        "--config",
        config.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("no source \"nosuch\" in the config (sources: drop)"),
        "{stderr}"
    );
    assert!(
        !dir.path().join("state/lookout.db").exists(),
        "nothing was filed, not even a store made"
    );
}
