//! The PostgreSQL store: the same operations as the SQLite one (see
//! [`StoreBackend`]), on a server several lookout replicas share.
//!
//! The client is the synchronous `postgres` crate (`tokio-postgres` on a runtime of its
//! own), so every operation blocks exactly as a SQLite call does and the daemon reaches
//! both the same way, through [`crate::store::blocking`]. TLS goes through rustls with
//! the platform's verifier; `sslmode` in the URL decides whether it is required.
//!
//! Writes that decide identity (an ingest) run under one transaction-scoped advisory
//! lock, so two replicas ingesting the same new paper at once make one item, as
//! SQLite's single writer does. Every statement is prepared once per connection.

mod copy;
mod ingest;
mod interests;
mod leases;
mod listen;
mod listing;
mod queries;
mod schema;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::types::ToSql;
use postgres::{Client, GenericClient, Row, Statement};

use super::health::Fault;
use super::StoreError;

pub use copy::Copied;
pub use leases::{LEASE_PERIOD, MIN_LEASE_PERIOD};
pub use listen::listen_for_changes;
pub use schema::latest as latest_schema;

/// A connection to the shared database.
pub struct PostgresStore {
    conn: Mutex<Conn>,
    config: postgres::Config,
    /// This replica's name in leases and claims.
    replica: String,
    /// How long a lease or claim lasts unrenewed.
    lease: std::time::Duration,
    /// When another replica's first claim on a due delivery lapses, in ms from the
    /// last claim of due rows (`u64::MAX`: none).
    claims_lapse: std::sync::atomic::AtomicU64,
}

/// One open connection and the statements prepared on it.
struct Conn {
    /// Taken out only by `Drop` (see there).
    client: std::mem::ManuallyDrop<Client>,
    statements: HashMap<&'static str, Statement>,
    /// When this replica's leases and claims were last renewed.
    renewed: Option<std::time::Instant>,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a `key=value`
    /// connection string) and brings its schema up to date under an advisory lock.
    pub fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let config: postgres::Config = url.parse().ctx("reading the store URL")?;
        let mut conn = Conn::open(&config)?;
        schema::migrate(&mut conn.client)?;
        Ok(PostgresStore {
            conn: Mutex::new(conn),
            config,
            replica: default_replica(),
            lease: leases::LEASE_PERIOD,
            claims_lapse: std::sync::atomic::AtomicU64::new(u64::MAX),
        })
    }

    /// The connection, a new one when the server closed the last.
    fn connection(&self) -> Result<std::sync::MutexGuard<'_, Conn>, StoreError> {
        let mut conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        if conn.client.is_closed() {
            *conn = Conn::open(&self.config)?;
        }
        Ok(conn)
    }

    /// Runs `f` on the connection, opening a new one first when the server closed the
    /// last (a restart, a failover): a broken connection is one failed call, not a
    /// dead store.
    fn with<T>(
        &self,
        f: impl FnOnce(&mut Session<'_, Client>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        conn.renew_if_due(&self.replica, self.lease)?;
        let Conn {
            client, statements, ..
        } = &mut *conn;
        f(&mut Session {
            client: &mut **client,
            statements,
        })
    }

    /// Runs `f` inside one transaction, committed when it returns `Ok`.
    fn in_transaction<T>(
        &self,
        f: impl FnOnce(&mut Session<'_, postgres::Transaction<'_>>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.connection()?;
        conn.renew_if_due(&self.replica, self.lease)?;
        let Conn {
            client, statements, ..
        } = &mut *conn;
        let mut tx = (**client).transaction().ctx("starting a transaction")?;
        let value = f(&mut Session {
            client: &mut tx,
            statements,
        })?;
        tx.commit().ctx("committing a transaction")?;
        Ok(value)
    }
}

impl Conn {
    fn open(config: &postgres::Config) -> Result<Conn, StoreError> {
        let client = config.connect(tls()?).ctx("connecting to PostgreSQL")?;
        Ok(Conn {
            client: std::mem::ManuallyDrop::new(client),
            statements: HashMap::new(),
            renewed: None,
        })
    }
}

/// A replica's default name: the host's name and the process id, unique among the
/// replicas running at once (a restarted replica is a new one; its old leases lapse).
fn default_replica() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!("{host}:{}", std::process::id())
}

/// Checks a store URL as the config is read: a `postgres://` or `postgresql://` URL
/// the client accepts. The error never repeats the URL (it may hold a password).
pub fn check_url(url: &str) -> Result<(), String> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    if !matches!(scheme, Some("postgres" | "postgresql")) {
        return Err("the store url must start with postgres:// or postgresql://".to_owned());
    }
    url.parse::<postgres::Config>()
        .map(drop)
        .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))
}

/// Closing a connection blocks on the client's own runtime, which tokio forbids on a
/// thread that drives async tasks: a store dropped there (the last `SharedStore` of
/// `lookout once`, released by a task) closes its connection on a thread of its own.
impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: `client` is taken here, once, as the `Conn` goes away; nothing reads
        // it afterwards.
        let client = unsafe { std::mem::ManuallyDrop::take(&mut self.client) };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("lookout-pg-close".to_owned())
                .spawn(move || drop(client));
        } else {
            drop(client);
        }
    }
}

/// rustls with the platform's certificate verifier, as the HTTP sources use.
fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new(Arc::clone(&provider)).map_err(StoreError::Tls)?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(StoreError::Tls)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// A connection or a transaction on it, with the connection's prepared statements.
struct Session<'a, C: GenericClient> {
    client: &'a mut C,
    statements: &'a mut HashMap<&'static str, Statement>,
}

/// Query parameters.
type Params<'p> = [&'p (dyn ToSql + Sync)];

impl<C: GenericClient> Session<'_, C> {
    /// `sql` prepared on this connection, once.
    fn prepared(&mut self, sql: &'static str) -> Result<Statement, StoreError> {
        if let Some(stmt) = self.statements.get(sql) {
            return Ok(stmt.clone());
        }
        let stmt = self.client.prepare(sql).ctx("preparing a statement")?;
        self.statements.insert(sql, stmt.clone());
        Ok(stmt)
    }

    fn query(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        context: &'static str,
    ) -> Result<Vec<Row>, StoreError> {
        let stmt = self.prepared(sql)?;
        self.client.query(&stmt, params).ctx(context)
    }

    fn query_opt(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        context: &'static str,
    ) -> Result<Option<Row>, StoreError> {
        let stmt = self.prepared(sql)?;
        self.client.query_opt(&stmt, params).ctx(context)
    }

    fn query_one(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        context: &'static str,
    ) -> Result<Row, StoreError> {
        let stmt = self.prepared(sql)?;
        self.client.query_one(&stmt, params).ctx(context)
    }

    fn execute(
        &mut self,
        sql: &'static str,
        params: &Params<'_>,
        context: &'static str,
    ) -> Result<u64, StoreError> {
        let stmt = self.prepared(sql)?;
        self.client.execute(&stmt, params).ctx(context)
    }
}

/// Attaches what the store was doing to a PostgreSQL error.
trait Ctx<T> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> Ctx<T> for Result<T, postgres::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Postgres { context, source })
    }
}

/// What kind of failure a PostgreSQL error is: a lost or refused connection or login,
/// a full disk or a lock conflict is temporary (the server or the network comes back); a
/// server that reports damaged data is corrupt; anything else is reported as it is.
pub(crate) fn fault(error: &postgres::Error) -> Fault {
    let Some(code) = error.code() else {
        // No SQLSTATE: the connection failed or closed.
        return Fault::Temporary;
    };
    let temporary = [
        // A refused login or a missing database is an operator's fix away, and no
        // capture is at fault: held, not failed.
        SqlState::INVALID_PASSWORD,
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
        SqlState::INVALID_CATALOG_NAME,
        SqlState::DISK_FULL,
        SqlState::INSUFFICIENT_RESOURCES,
        SqlState::OUT_OF_MEMORY,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::QUERY_CANCELED,
    ];
    if temporary.contains(code) {
        Fault::Temporary
    } else if [SqlState::DATA_CORRUPTED, SqlState::INDEX_CORRUPTED].contains(code) {
        Fault::Corrupt
    } else {
        Fault::Other
    }
}

/// What an operator does about a PostgreSQL error, and what lookout does meanwhile:
/// the advice `/healthz`, the status page and the log give (SQLite's is about its
/// file; this one is about the server).
pub(crate) fn advice(error: &postgres::Error) -> &'static str {
    // What lookout does meanwhile, the same for every temporary fault.
    macro_rules! meanwhile {
        () => {
            "nothing is lost: captures stay in their folders, deliveries pause, and both \
             resume by themselves"
        };
    }
    let Some(code) = error.code() else {
        let refused =
            std::iter::successors(Some(error as &(dyn std::error::Error + 'static)), |e| {
                e.source()
            })
            .filter_map(|e| e.downcast_ref::<std::io::Error>())
            .any(|e| e.kind() == std::io::ErrorKind::ConnectionRefused);
        return if refused {
            concat!(
                "the PostgreSQL server refuses connections (is it running, on the host and \
                 port of [store] url?); try again later: ",
                meanwhile!(),
                " when it answers"
            )
        } else {
            concat!(
                "the connection to the PostgreSQL server failed or closed (a restart, a \
                 failover, the network); try again later: ",
                meanwhile!(),
                " when it answers"
            )
        };
    };
    if [
        SqlState::INVALID_PASSWORD,
        SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
    ]
    .contains(code)
    {
        concat!(
            "PostgreSQL refused lookout's login: check the user and password in [store] url \
             (and the server's pg_hba.conf); ",
            meanwhile!(),
            " once it accepts"
        )
    } else if code == &SqlState::INVALID_CATALOG_NAME {
        concat!(
            "the database named in [store] url does not exist (createdb it, or fix the url); ",
            meanwhile!(),
            " once it does"
        )
    } else if [SqlState::DISK_FULL, SqlState::INSUFFICIENT_RESOURCES].contains(code) {
        concat!(
            "the PostgreSQL server's disk is full: free space on the server (not here); ",
            meanwhile!(),
            " once it can write"
        )
    } else if [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
    ]
    .contains(code)
    {
        concat!(
            "the PostgreSQL server is shutting down, restarting or recovering; try again \
             later: ",
            meanwhile!(),
            " when it answers"
        )
    } else if [SqlState::DATA_CORRUPTED, SqlState::INDEX_CORRUPTED].contains(code) {
        "the PostgreSQL server reports damaged data: read its log for the table or index, \
         REINDEX a damaged index or restore the database from a backup (pg_dump, a base \
         backup), then restart lookout; nothing is written until then"
    } else {
        concat!(
            "the PostgreSQL server cannot take writes now (busy, or at max_connections); \
             try again later: ",
            meanwhile!(),
            " when it can"
        )
    }
}

/// A unix-ms column as a time.
fn time(ms: i64, column: &'static str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Value {
        column,
        detail: format!("timestamp {ms} ms is out of range"),
    })
}

/// A column read as `T`; a value of another type is a decode error, not a panic.
fn col<'r, T: postgres::types::FromSql<'r>>(
    row: &'r Row,
    idx: usize,
    column: &'static str,
) -> Result<T, StoreError> {
    row.try_get(idx).map_err(|e| StoreError::Value {
        column,
        detail: e.to_string(),
    })
}

/// A non-negative count column as the unsigned type the store's records use.
fn count<T: TryFrom<i64>>(row: &Row, idx: usize, column: &'static str) -> Result<T, StoreError> {
    let n: i64 = col(row, idx, column)?;
    T::try_from(n).map_err(|_| StoreError::Value {
        column,
        detail: format!("{n} is out of range"),
    })
}

#[cfg(test)]
mod tests {
    use crate::store::{Fault, Store};

    #[test]
    fn a_server_that_refuses_connections_is_temporary_with_its_own_advice() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let Err(error) = Store::connect(&format!(
            "postgres://lookout@127.0.0.1:{port}/lookout?sslmode=disable&connect_timeout=5"
        )) else {
            panic!("connected to a closed port");
        };
        assert_eq!(error.fault(), Fault::Temporary, "{error}");
        let advice = error.advice().expect("advice");
        assert!(advice.contains("refuses connections"), "{advice}");
        assert!(advice.contains("try again later"), "{advice}");
        assert!(!advice.contains(".recover"), "{advice}");
    }
}
