//! A real PostgreSQL server for the store tests, started from the distribution's
//! binaries (`initdb`, `pg_ctl`) in a temp dir on a free port: one server per test
//! binary run, stopped when it exits, and a fresh database per test.
//!
//! Binaries are looked for on the PATH, then in `/usr/lib/postgresql/*/bin` (where
//! Debian puts them, off the PATH). Without them the PostgreSQL half of the store
//! tests is skipped with one line; `LOOKOUT_REQUIRE_POSTGRES=1` (CI) makes that a
//! failure instead. PostgreSQL refuses to run as root, so as root the server runs as
//! `nobody` (through `setpriv`), in a directory handed to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// The running server (its directory is in [`STOP`]).
struct Server {
    port: u16,
}

/// The server of this run, started on first use; `None` when there is none to start.
static SERVER: OnceLock<Option<Server>> = OnceLock::new();

/// What `atexit` stops, set once the server runs.
static STOP: Mutex<Option<Running>> = Mutex::new(None);

/// How to stop the server: its binaries, data directory and user.
struct Running {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<(u32, u32)>,
}

/// A URL to a fresh, empty database on the test server, or `None` (with one line said
/// for the whole run) when PostgreSQL is not installed. Panics when it is required
/// (`LOOKOUT_REQUIRE_POSTGRES`) or installed but cannot start.
pub fn database() -> Option<String> {
    let server = SERVER.get_or_init(start).as_ref()?;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let name = format!("t{}", NEXT.fetch_add(1, Ordering::Relaxed));
    let mut admin = postgres::Client::connect(&server.url("postgres"), postgres::NoTls)
        .expect("connect to the test server");
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .expect("create a test database");
    Some(server.url(&name))
}

impl Server {
    fn url(&self, db: &str) -> String {
        format!(
            "postgres://lookout@127.0.0.1:{}/{db}?sslmode=disable",
            self.port
        )
    }
}

/// `tool` from `bin`, run as `run_as` when given.
fn command(bin: &Path, tool: &str, run_as: Option<(u32, u32)>) -> Command {
    match run_as {
        None => Command::new(bin.join(tool)),
        Some((uid, gid)) => {
            let mut cmd = Command::new("setpriv");
            cmd.args([
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_owned(),
                "--".to_owned(),
            ])
            .arg(bin.join(tool));
            cmd
        }
    }
}

/// Where `initdb` and `pg_ctl` are: the PATH's, else the newest Debian cluster's.
fn binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|path| std::env::split_paths(&path).find(|dir| dir.join("initdb").is_file()));
    on_path.or_else(|| {
        let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|bin| bin.join("initdb").is_file() && bin.join("pg_ctl").is_file())
            .collect();
        // Newest last: "9.6" < "15" sorts by number, not text.
        versions.sort_by_key(|bin| {
            let version = bin
                .parent()
                .and_then(Path::file_name)
                .map(|v| v.to_string_lossy().into_owned());
            version
                .and_then(|v| v.split('.').next()?.parse::<u32>().ok())
                .unwrap_or(0)
        });
        versions.pop()
    })
}

/// The user PostgreSQL runs as when the tests run as root: `nobody`.
fn unprivileged() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    // SAFETY: getpwnam takes a NUL-terminated name and returns a pointer into static
    // storage or NULL; it is read at once, before any other getpw* call.
    let entry = unsafe { libc::getpwnam(c"nobody".as_ptr()) };
    assert!(
        !entry.is_null(),
        "running as root and there is no user nobody to run PostgreSQL as"
    );
    // SAFETY: checked non-null above.
    let entry = unsafe { &*entry };
    Some((entry.pw_uid, entry.pw_gid))
}

fn start() -> Option<Server> {
    // Stopped by `atexit`, not when this function returns.
    let cluster = std::mem::ManuallyDrop::new(Cluster::create()?);
    *STOP.lock().unwrap() = Some(Running {
        bin: cluster.bin.clone(),
        data: cluster.data.clone(),
        run_as: cluster.run_as,
    });
    // SAFETY: registers a plain extern "C" function with no captured state.
    unsafe { libc::atexit(stop_at_exit) };
    cluster.start();
    Some(Server { port: cluster.port })
}

/// A PostgreSQL cluster of its own in a temp dir, for a test that stops and starts
/// its server (the shared one serves every other test of the run). Stopped and
/// removed when dropped.
pub struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    run_as: Option<(u32, u32)>,
    port: u16,
}

impl Cluster {
    /// A new cluster, initialised but not started; `None` (with the run's one line)
    /// when PostgreSQL is not installed.
    pub fn create() -> Option<Cluster> {
        let required = std::env::var_os("LOOKOUT_REQUIRE_POSTGRES").is_some();
        let Some(bin) = binaries() else {
            assert!(
                !required,
                "LOOKOUT_REQUIRE_POSTGRES is set but no initdb/pg_ctl is on the PATH or under \
                 /usr/lib/postgresql/*/bin (apt-get install postgresql)"
            );
            super::skipped(
                "the store tests against PostgreSQL (no initdb/pg_ctl on the PATH or under \
                 /usr/lib/postgresql/*/bin; apt-get install postgresql)",
            );
            return None;
        };
        let run_as = unprivileged();
        let dir = tempfile::Builder::new()
            .prefix("lookout-pg-")
            .tempdir()
            .expect("temp dir")
            .keep();
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("hand the dir to nobody");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let cluster = Cluster {
            bin,
            data: dir.join("data"),
            run_as,
            port,
        };
        cluster.run(
            cluster
                .command("initdb")
                .args([
                    "--auth=trust",
                    "--username=lookout",
                    "--encoding=UTF8",
                    "--no-sync",
                ])
                .arg("-D")
                .arg(&cluster.data),
            "initdb",
        );
        Some(cluster)
    }

    fn dir(&self) -> &Path {
        self.data.parent().unwrap_or(Path::new("/"))
    }

    fn command(&self, tool: &str) -> Command {
        command(&self.bin, tool, self.run_as)
    }

    fn run(&self, cmd: &mut Command, what: &str) {
        let out = cmd
            .current_dir(self.dir())
            .output()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the server (again) on its port and waits until it accepts connections.
    pub fn start(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=off \
             -c max_connections=200",
            self.port
        );
        self.run(
            self.command("pg_ctl")
                .args(["-w", "-D"])
                .arg(&self.data)
                .args(["-o", &options, "-l"])
                .arg(self.dir().join("log"))
                .arg("start"),
            "pg_ctl start",
        );
    }

    /// Stops the server (fast: open connections are closed) and waits until it is down.
    pub fn stop(&self) {
        self.run(
            self.command("pg_ctl")
                .args(["-w", "-D"])
                .arg(&self.data)
                .args(["-m", "fast", "stop"]),
            "pg_ctl stop",
        );
    }

    /// A URL to the cluster's `postgres` database.
    pub fn url(&self) -> String {
        Server { port: self.port }.url("postgres")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .current_dir(self.dir())
            .output();
        let _ = std::fs::remove_dir_all(self.dir());
    }
}

/// Stops the server and removes its directory as the test binary exits.
extern "C" fn stop_at_exit() {
    let Some(Running { bin, data, run_as }) = STOP.lock().ok().and_then(|mut s| s.take()) else {
        return;
    };
    let _ = command(&bin, "pg_ctl", run_as)
        .args(["-D"])
        .arg(&data)
        .args(["-m", "immediate", "stop"])
        .current_dir(data.parent().unwrap_or(Path::new("/")))
        .output();
    if let Some(dir) = data.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Generates, for each named test body `fn NAME(open: &dyn Fn() -> Store)`, a module
/// `NAME` with the test run against each backend: `NAME::sqlite` on a SQLite file in
/// a temp dir, `NAME::postgres` on a fresh database of the test server (skipped, with
/// one line for the run, when PostgreSQL is not installed).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("state").join("lookout.db");
                super::$name(&|| lookout::store::Store::open(&path).expect("open store"));
            }

            #[test]
            fn postgres() {
                let Some(url) = $crate::common::pg::database() else {
                    return;
                };
                super::$name(&|| lookout::store::Store::connect(&url).expect("connect store"));
            }
        }
    )*};
}
