//! sd_notify against a real datagram socket, the way systemd listens for it.
//!
//! `NOTIFY_SOCKET` and `WATCHDOG_USEC` are process-wide environment variables, so each
//! scenario runs in a child process of its own: the parent test binds a `UnixDatagram`
//! in a temp dir, starts this same test binary on one `#[ignore]`d child test with the
//! variables set, and reads what arrives. The children are ignored so a plain
//! `cargo test` runs them only through their parents (run directly, they find no
//! socket and return without checking anything).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lookout::systemd::{self, Heartbeat, Watchdog};
use tokio_util::sync::CancellationToken;

/// Marks a child run; children without it return at once.
const CHILD_ENV: &str = "LOOKOUT_SD_NOTIFY_CHILD";

/// How long any one wait in these tests may take before the test fails; generous,
/// because the machine is shared with other builds.
const DEADLINE: Duration = Duration::from_secs(30);

/// Runs the child test `name` with `NOTIFY_SOCKET` pointing at a fresh socket, and
/// returns every datagram it sent, up to and including `STOPPING=1`.
fn run_child(name: &str, watchdog_usec: Option<&str>) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    let child = spawn_child(name, Some(&socket_path), watchdog_usec);
    // Read while the child runs: the kernel queues only a few datagrams per socket
    // (net.unix.max_dgram_qlen, often 10) and the child would block on a full queue.
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("read timeout");
    let start = Instant::now();
    let mut messages = Vec::new();
    let mut buf = [0u8; 4096];
    while start.elapsed() < DEADLINE {
        match socket.recv(&mut buf) {
            Ok(n) => {
                let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                let done = text.lines().any(|l| l == "STOPPING=1");
                messages.push(text);
                if done {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("reading the notify socket: {e}"),
        }
    }
    finish_child(child, name);
    messages
}

fn spawn_child(
    name: &str,
    socket: Option<&Path>,
    watchdog_usec: Option<&str>,
) -> std::process::Child {
    let exe = std::env::current_exe().expect("test binary path");
    // The harness names a test by its path in the test crate (`ops_sd_notify::name`).
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let path = format!("{module}::{name}");
    let mut cmd = Command::new(exe);
    cmd.args([
        path.as_str(),
        "--exact",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1")
    .env_remove("NOTIFY_SOCKET")
    .env_remove("WATCHDOG_USEC")
    .env_remove("WATCHDOG_PID")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    if let Some(socket) = socket {
        cmd.env("NOTIFY_SOCKET", socket);
    }
    if let Some(usec) = watchdog_usec {
        cmd.env("WATCHDOG_USEC", usec);
    }
    cmd.spawn().expect("start child test")
}

fn finish_child(child: std::process::Child, name: &str) {
    let out = child.wait_with_output().expect("child test finishes");
    assert!(
        out.status.success(),
        "child {name} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 passed"),
        "child {name} did not run its test:\n{stdout}"
    );
}

/// The `KEY=value` lines of all messages, in order.
fn lines(messages: &[String]) -> Vec<String> {
    messages
        .iter()
        .flat_map(|m| m.lines().map(str::to_owned))
        .collect()
}

fn is_child() -> bool {
    std::env::var_os(CHILD_ENV).is_some()
}

/// Polls `cond` every 10 ms until it holds or the deadline passes.
async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A task that touches `pulse` every 10 ms until `stop` turns true: a live loop.
fn keep_alive(pulse: systemd::Pulse, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => pulse.touch(),
            }
        }
    })
}

#[test]
fn ready_watchdog_stopping_arrive_in_order() {
    let lines = lines(&run_child("child_ready_watchdog_stopping", Some("400000")));
    let pos = |want: &str| lines.iter().position(|l| l == want);
    let ready = pos("READY=1").unwrap_or_else(|| panic!("no READY=1 in {lines:?}"));
    let watchdog = pos("WATCHDOG=1").unwrap_or_else(|| panic!("no WATCHDOG=1 in {lines:?}"));
    let stopping = pos("STOPPING=1").unwrap_or_else(|| panic!("no STOPPING=1 in {lines:?}"));
    assert!(ready < watchdog && watchdog < stopping, "{lines:?}");
    assert_eq!(lines.last().map(String::as_str), Some("STOPPING=1"));
    assert!(
        lines.contains(&"STATUS=ingesting: 3 sources ok".to_owned()),
        "{lines:?}"
    );
}

#[test]
#[ignore = "run by ready_watchdog_stopping_arrive_in_order in a child process"]
fn child_ready_watchdog_stopping() {
    if !is_child() {
        return;
    }
    // WATCHDOG_USEC=400000 set by the parent: the interval comes from the environment.
    assert_eq!(
        systemd::watchdog_interval(),
        Some(Duration::from_millis(400))
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let heartbeat = Heartbeat::new();
        let stop = CancellationToken::new();
        let alive = keep_alive(heartbeat.register("pipeline"), stop.clone());
        let dog = Watchdog::from_env(heartbeat).expect("watchdog enabled by WATCHDOG_USEC");
        let counts = dog.counts();
        systemd::ready().expect("READY=1 sent");
        systemd::status("ingesting: 3 sources ok").expect("STATUS= sent");
        let task = tokio::spawn(dog.run(stop.clone()));
        wait_until("a watchdog ping", || counts.pings() >= 1).await;
        stop.cancel();
        task.await.expect("watchdog task ends");
        alive.await.expect("keep-alive task ends");
        systemd::stopping().expect("STOPPING=1 sent");
    });
}

#[test]
fn stale_loop_withholds_watchdog_pings_until_it_touches_again() {
    let lines = lines(&run_child("child_stale_loop", None));
    let revived = lines
        .iter()
        .position(|l| l == "STATUS=outbox revived")
        .unwrap_or_else(|| panic!("no revival marker in {lines:?}"));
    assert_eq!(lines.first().map(String::as_str), Some("READY=1"));
    assert!(
        !lines[..revived].iter().any(|l| l == "WATCHDOG=1"),
        "a ping went out while a loop was stale: {lines:?}"
    );
    assert!(
        lines[revived..].iter().any(|l| l == "WATCHDOG=1"),
        "no ping after the loop came back: {lines:?}"
    );
    assert_eq!(lines.last().map(String::as_str), Some("STOPPING=1"));
}

#[test]
#[ignore = "run by stale_loop_withholds_watchdog_pings_until_it_touches_again in a child process"]
fn child_stale_loop() {
    if !is_child() {
        return;
    }
    let interval = Duration::from_millis(200);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let heartbeat = Heartbeat::new();
        let stop = CancellationToken::new();
        let alive = keep_alive(heartbeat.register("pipeline"), stop.clone());
        let outbox = heartbeat.register("outbox");
        systemd::ready().expect("READY=1 sent");
        // Let the outbox loop go stale before the watchdog starts, so every check it
        // makes while the outbox stays silent must withhold.
        wait_until("the outbox loop to go stale", || {
            heartbeat.stale(interval) == vec!["outbox".to_owned()]
        })
        .await;
        let dog = Watchdog::new(interval, heartbeat.clone());
        let counts = dog.counts();
        let task = tokio::spawn(dog.run(stop.clone()));
        wait_until("two withheld checks", || counts.withheld() >= 2).await;
        assert_eq!(counts.pings(), 0, "no ping while the outbox is stale");
        systemd::status("outbox revived").expect("STATUS= sent");
        let revived = keep_alive(outbox, stop.clone());
        wait_until("a ping after the revival", || counts.pings() >= 1).await;
        stop.cancel();
        task.await.expect("watchdog task ends");
        alive.await.expect("keep-alive task ends");
        revived.await.expect("keep-alive task ends");
        systemd::stopping().expect("STOPPING=1 sent");
    });
}

#[test]
fn status_line_cannot_inject_assignments() {
    let lines = lines(&run_child("child_status_injection", None));
    assert_eq!(
        lines,
        vec![
            "STATUS=error: bad page READY=1 x".to_owned(),
            "STOPPING=1".to_owned()
        ]
    );
}

#[test]
#[ignore = "run by status_line_cannot_inject_assignments in a child process"]
fn child_status_injection() {
    if !is_child() {
        return;
    }
    systemd::status("error: bad page\nREADY=1\r\nx").expect("STATUS= sent");
    systemd::stopping().expect("STOPPING=1 sent");
}

#[test]
fn without_notify_socket_everything_is_a_no_op() {
    let child = spawn_child("child_without_socket", None, None);
    finish_child(child, "child_without_socket");
}

#[test]
#[ignore = "run by without_notify_socket_everything_is_a_no_op in a child process"]
fn child_without_socket() {
    if !is_child() {
        return;
    }
    assert!(std::env::var_os("NOTIFY_SOCKET").is_none());
    systemd::ready().expect("no-op succeeds");
    systemd::reloading().expect("no-op succeeds");
    systemd::status("x").expect("no-op succeeds");
    systemd::watchdog_ping().expect("no-op succeeds");
    systemd::stopping().expect("no-op succeeds");
    assert_eq!(systemd::watchdog_interval(), None);
    assert!(Watchdog::from_env(Heartbeat::new()).is_none());
}
