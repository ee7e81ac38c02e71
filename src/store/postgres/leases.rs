//! How replicas share the work through the database alone: a lease per HTTP source,
//! and claims on the outbox rows being sent. Both expire by the server's clock, so
//! replicas' clocks never have to agree, and a replica that dies loses them within
//! one lease period; another then takes its sources and deliveries over.
//!
//! A live replica keeps its leases: every store call renews them once they are a
//! third of a period old, and the daemon calls the store twice a second (its
//! monitor), so a replica that stops calling, stuck or dead, is the one that loses
//! them.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{col, Conn, PostgresStore, Session};
use crate::store::{SourceLease, StoreError};

/// The server's clock in unix ms: leases and claims are timed by it alone.
macro_rules! server_now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}
pub(super) use server_now_ms;

/// How long a lease or claim lasts unrenewed (issue 17: takeover within 30 s).
pub const LEASE_PERIOD: Duration = Duration::from_secs(30);

impl PostgresStore {
    /// Names this replica in its leases and claims (default: `host:pid`).
    pub fn set_replica(&mut self, replica: &str) {
        replica.clone_into(&mut self.replica);
    }

    /// This replica's name.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Sets how long leases and claims last unrenewed (tests shorten it).
    pub fn set_lease_period(&mut self, period: Duration) {
        self.lease = period;
    }

    /// The lease period in ms, as the SQL adds it.
    pub(super) fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Takes or renews the lease of `source`; false while another replica holds it.
    pub(super) fn lease(&self, source: &str) -> Result<bool, StoreError> {
        let (replica, ms) = (self.replica.as_str(), self.lease_ms());
        let row = self.with(|s| {
            s.query_opt(
                concat!(
                    "INSERT INTO source_leases (source, holder, expires) VALUES ($1, $2, ",
                    server_now_ms!(),
                    " + $3) ON CONFLICT (source) DO UPDATE
                        SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
                      WHERE source_leases.holder = EXCLUDED.holder
                         OR source_leases.expires < ",
                    server_now_ms!(),
                    " RETURNING holder"
                ),
                &[&source, &replica, &ms],
                "leasing a source",
            )
        })?;
        Ok(row.is_some())
    }

    /// Every source lease that has not lapsed, by source.
    pub(super) fn live_leases(&self) -> Result<Vec<SourceLease>, StoreError> {
        let rows = self.with(|s| {
            s.query(
                concat!(
                    "SELECT source, holder, expires FROM source_leases WHERE expires >= ",
                    server_now_ms!(),
                    " ORDER BY source"
                ),
                &[],
                "listing source leases",
            )
        })?;
        rows.iter()
            .map(|row| {
                let ms: i64 = col(row, 2, "source_leases.expires")?;
                Ok(SourceLease {
                    source: col(row, 0, "source_leases.source")?,
                    holder: col(row, 1, "source_leases.holder")?,
                    expires: DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default(),
                })
            })
            .collect()
    }
}

impl Conn {
    /// Renews this replica's leases and claims when a third of a period has passed
    /// since the last renewal.
    pub(super) fn renew_if_due(
        &mut self,
        replica: &str,
        lease: Duration,
    ) -> Result<(), StoreError> {
        if self.renewed.is_some_and(|at| at.elapsed() < lease / 3) {
            return Ok(());
        }
        let ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        let Conn {
            client,
            statements,
            renewed,
        } = self;
        let mut session = Session {
            client: &mut **client,
            statements,
        };
        session.execute(
            concat!(
                "UPDATE source_leases SET expires = ",
                server_now_ms!(),
                " + $2 WHERE holder = $1"
            ),
            &[&replica, &ms],
            "renewing source leases",
        )?;
        session.execute(
            concat!(
                "UPDATE outbox SET claimed_until = ",
                server_now_ms!(),
                " + $2 WHERE claimed_by = $1 AND state = 'pending'"
            ),
            &[&replica, &ms],
            "renewing delivery claims",
        )?;
        *renewed = Some(Instant::now());
        Ok(())
    }
}
