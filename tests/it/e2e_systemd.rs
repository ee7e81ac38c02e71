//! The real daemon speaks sd_notify on a real datagram socket: READY once the store is
//! open and the server listens, watchdog pings while its loops live, STOPPING on SIGTERM.

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn ready_watchdog_and_stopping_arrive_in_order() {
    let setup = Setup::new("");
    let socket_path = setup.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let daemon = Daemon::start_with(
        &setup.config,
        &[
            ("NOTIFY_SOCKET", socket_path.to_str().unwrap()),
            // Pings every 150 ms while every loop is alive.
            ("WATCHDOG_USEC", "300000"),
        ],
    );

    let mut messages: Vec<String> = Vec::new();
    let mut receive_until = |done: &dyn Fn(&[String]) -> bool, what: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 4096];
        while !done(&messages) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {messages:?}"
            );
            if let Ok(n) = socket.recv(&mut buf) {
                messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    let count = |m: &[String], what: &str| m.iter().filter(|x| x.contains(what)).count();
    receive_until(
        &|m| count(m, "WATCHDOG=1") >= 3,
        "READY and three watchdog pings",
    );
    let stopped = std::thread::spawn(move || daemon.stop(Duration::from_secs(10)));
    receive_until(&|m| count(m, "STOPPING=1") >= 1, "STOPPING");
    assert!(stopped.join().unwrap().success());

    let first = |what: &str| messages.iter().position(|m| m.contains(what)).unwrap();
    let last_ping = messages
        .iter()
        .rposition(|m| m.contains("WATCHDOG=1"))
        .unwrap();
    assert_eq!(count(&messages, "READY=1"), 1, "{messages:?}");
    assert!(
        first("READY=1") < first("WATCHDOG=1"),
        "READY before pings: {messages:?}"
    );
    assert!(
        last_ping < first("STOPPING=1"),
        "no ping after STOPPING: {messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("items")),
        "a STATUS line: {messages:?}"
    );
}
