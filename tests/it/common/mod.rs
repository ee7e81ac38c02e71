//! Helpers for end-to-end tests: start the real `lookout` binary on a temp dir, find the
//! port it listens on, poll with deadlines.

pub mod pg;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The three real captures, and how many entries each holds.
pub const FIXTURES: &[(&str, usize)] = &[
    ("aitopics_energy.txt", 10),
    ("hf_papers_may20.txt", 27),
    ("hf_papers_apr17.txt", 35),
];

/// Papers that appear in both Hugging Face captures: the same items, stored once.
pub const SHARED_BETWEEN_HF_CAPTURES: usize = 4;

/// Says in one line what a test skipped, where `cargo test` shows it: straight to the
/// process's stderr, which the test harness does not capture (it captures `eprintln!`,
/// so a passing test's line would be lost).
pub fn skipped(what: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "skipped: {what}");
}

/// A fixture's path, `tests/fixtures/<name>`.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// A fixture's bytes.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_path(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A test time: `secs` after 2023-11-14T22:13:20Z.
pub fn at(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_700_000_000 + secs, 0).expect("valid test time")
}

/// Books an attempt of `source` in the store as the daemon's pipeline does (it alone
/// writes the sources' records): for tests that stand in for the pipeline.
pub fn book(
    store: &lookout::store::SharedStore,
    source: &str,
    recorded: &lookout::sources::Recorded,
) {
    let mut store = lookout::store::lock(store);
    let mut state = store.fetch_state(source).expect("fetch state");
    state.record(chrono::Utc::now(), recorded);
    store
        .save_fetch_states(&[(source, &state)])
        .expect("fetch state saved");
}

/// Polls `cond` until it holds, failing the test after 20 s; for async tests (a
/// blocking wait would stall the tasks the test waits on).
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Writes `dir/c.toml`, the smallest config: one folder source `drop` at `dir/drop`,
/// state under `dir/state` (for the commands that do not serve: import, once).
pub fn drop_config(dir: &Path) -> PathBuf {
    let config = dir.join("c.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = {:?}\n[[source]]\nname = \"drop\"\nkind = \"folder\"\npath = {:?}\n",
            dir.join("state"),
            dir.join("drop")
        ),
    )
    .expect("write config");
    config
}

/// The Hugging Face capture as a listing server sends it, with ETag `"hf-1"`.
pub fn hf_page() -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200)
        .set_body_bytes(fixture("hf_papers_may20.txt"))
        .insert_header("etag", "\"hf-1\"")
}

/// How many requests for `path` `server` has had, from a test without a runtime of
/// its own (`rt` runs the server).
pub fn requests_to(
    rt: &tokio::runtime::Runtime,
    server: &wiremock::MockServer,
    path: &str,
) -> usize {
    rt.block_on(server.received_requests())
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == path)
        .count()
}

/// A local receiver that answers every POST with `response` (a webhook's).
pub async fn answering(response: wiremock::ResponseTemplate) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(response)
        .mount(&server)
        .await;
    server
}

/// A redirect with `status` (301, 302, ...) to `location`.
pub fn redirect(status: u16, location: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(status).insert_header("location", location)
}

/// A local server answering each path with its response, whatever the method.
pub async fn serving(routes: Vec<(&str, wiremock::ResponseTemplate)>) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    for (at, response) in routes {
        wiremock::Mock::given(wiremock::matchers::path(at))
            .respond_with(response)
            .mount(&server)
            .await;
    }
    server
}

/// A paper entry known by its title alone, with a summary: the store tests' item.
pub fn entry(title: &str) -> lookout::entry::Entry {
    lookout::entry::Entry {
        title: title.to_owned(),
        summary: format!("About {title}."),
        format: "hf-papers",
        ..lookout::entry::Entry::default()
    }
}

/// Ingests `entries` now as one alerting capture of source `drop`, through `rules`.
pub fn ingest_alerting(
    store: &lookout::store::SharedStore,
    rules: &dyn lookout::store::Matcher,
    entries: &[lookout::entry::Entry],
) -> lookout::store::IngestReport {
    lookout::store::lock(store)
        .ingest(
            &lookout::store::Ingest {
                source: "drop",
                origin: "test",
                content_hash: None,
                format: "rss",
                entries,
                seen_at: chrono::Utc::now(),
                alerts: true,
            },
            rules,
        )
        .expect("ingest")
}

/// A config from TOML text, which must be valid.
pub fn config(text: &str) -> lookout::config::Config {
    lookout::config::Config::parse(text, "test.toml").expect("test config parses")
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A lookout daemon started as a child process.
pub struct Daemon {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// Everything it logged so far.
    pub log: Arc<Mutex<String>>,
}

impl Daemon {
    /// Starts `lookout run --config <config>` and waits until it listens.
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with(config, &[])
    }

    /// Like `start`, with extra environment variables.
    pub fn start_with(config: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn(config, env, None)
    }

    /// Like `start`, in a working directory (for relative paths in the config).
    pub fn start_in(config: &Path, cwd: &Path) -> Daemon {
        Daemon::spawn(config, &[], Some(cwd))
    }

    fn spawn(config: &Path, env: &[(&str, &str)], cwd: Option<&Path>) -> Daemon {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_lookout"));
        if let Some(dir) = cwd {
            cmd.current_dir(dir);
        }
        cmd.arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "info,lookout=debug");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Daemon::start_command(cmd, config)
    }

    /// Starts `cmd`, which runs lookout with `config` (under a wrapper, say), keeps
    /// what it logs, and waits until it listens.
    pub fn start_command(mut cmd: Command, config: &Path) -> Daemon {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("start lookout");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = wait_for(Duration::from_secs(30), "lookout to listen", || {
            let l = log.lock().unwrap();
            l.lines()
                .find(|line| line.contains("lookout running"))
                // `listen=ADDR` in human lines, `"listen":"ADDR"` in JSON ones.
                .and_then(|line| {
                    line.split("listen=")
                        .nth(1)
                        .or_else(|| line.split("\"listen\":\"").nth(1))
                })
                .and_then(|rest| rest.split(|c: char| c.is_whitespace() || c == '"').next())
                .map(str::to_owned)
        });
        // "lookout running" (and READY) comes only once every drop folder is watched:
        // a file dropped earlier could only be judged by its size and mtime settling,
        // not by the writer closing it. Every end-to-end test holds the daemon to it.
        let folders = std::fs::read_to_string(config)
            .map(|text| text.matches("kind = \"folder\"").count())
            .unwrap_or(0);
        {
            let l = log.lock().unwrap();
            let running = l.find("lookout running").expect("running line seen");
            let watched = l[..running].matches("watching drop folder").count();
            assert!(
                watched >= folders,
                "lookout running before its {folders} drop folders were watched:\n{l}"
            );
        }
        Daemon {
            child,
            base: format!("http://{addr}"),
            log,
        }
    }

    /// Sends a signal to the daemon.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid; no memory is shared.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    /// Sends SIGTERM and waits for the exit status (panics after `timeout`).
    pub fn stop(mut self, timeout: Duration) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let child = &mut self.child;
        wait_for(timeout, "lookout to exit", || {
            child.try_wait().ok().flatten()
        })
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temp dir with a config for one drop folder on a free port.
pub struct Setup {
    /// Keeps the directory alive.
    pub dir: tempfile::TempDir,
    /// The config file.
    pub config: PathBuf,
    /// The drop folder.
    pub drop: PathBuf,
}

impl Setup {
    /// Writes a config with one folder source `drop`, plus `extra` TOML appended.
    pub fn new(extra: &str) -> Setup {
        Setup::custom("title = \"e2e\"", "200ms", extra)
    }

    /// As [`Setup::new`], with `feed` the keys of the `[feed]` table and `settle` the
    /// drop folder's.
    pub fn custom(feed: &str, settle: &str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let drop = dir.path().join("drop");
        let config = dir.path().join("lookout.toml");
        let text = format!(
            "state_dir = {state:?}\n[server]\nlisten = \"127.0.0.1:0\"\n[feed]\n{feed}\n\
             [[source]]\nname = \"drop\"\nkind = \"folder\"\npath = {drop:?}\nsettle = {settle:?}\n{extra}",
            state = dir.path().join("state"),
            drop = drop,
        );
        std::fs::write(&config, text).expect("write config");
        Setup { dir, config, drop }
    }

    /// Drops a file the way browsers do: write a temporary name, rename into place.
    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        std::fs::create_dir_all(&self.drop).unwrap();
        let tmp = self.drop.join(format!(".{name}.part"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, self.drop.join(name)).unwrap();
    }

    /// Waits until `name` has been filed into `sub` (`processed` or `failed`).
    pub fn wait_filed(&self, sub: &str, name: &str) -> PathBuf {
        let path = self.drop.join(sub).join(name);
        wait_for(
            Duration::from_secs(60),
            &format!("{name} in {sub}/"),
            || path.exists().then(|| path.clone()),
        )
    }
}

/// GET a URL; returns status, headers and body.
pub fn get(url: &str, headers: &[(&str, &str)]) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let mut req = client.get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let body = resp.bytes().await.expect("body").to_vec();
        (status, h, body)
    })
}

/// The item guids of an RSS document, in order.
pub fn rss_guids(body: &[u8]) -> Vec<String> {
    let channel = rss::Channel::read_from(body).expect("served feed is valid RSS");
    channel
        .items()
        .iter()
        .map(|i| i.guid().map(|g| g.value().to_owned()).unwrap_or_default())
        .collect()
}

/// A TLS acceptor serving `cert` with its `key`, for the tests' own TLS servers (on
/// 127.0.0.1, named in the certificate).
pub fn tls_acceptor(cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> tokio_rustls::TlsAcceptor {
    use tokio_rustls::rustls;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server TLS config");
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A local webhook receiver on 127.0.0.1 that answers 200 to every `POST /hook`, with
/// its own runtime so blocking tests can ask what it received.
pub struct Hook {
    rt: tokio::runtime::Runtime,
    server: wiremock::MockServer,
}

impl Hook {
    /// Starts the receiver.
    pub fn start() -> Hook {
        use wiremock::matchers::{method, path};
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let server = rt.block_on(async {
            let server = wiremock::MockServer::start().await;
            wiremock::Mock::given(method("POST"))
                .and(path("/hook"))
                .respond_with(wiremock::ResponseTemplate::new(200))
                .mount(&server)
                .await;
            server
        });
        Hook { rt, server }
    }

    /// The URL to configure a webhook notifier with.
    pub fn url(&self) -> String {
        format!("{}/hook", self.server.uri())
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<wiremock::Request> {
        self.rt
            .block_on(self.server.received_requests())
            .unwrap_or_default()
    }
}
