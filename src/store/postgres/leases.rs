//! How replicas share the work through the database alone: a lease per HTTP source,
//! and claims on the outbox rows being sent. Both expire by the server's clock, so
//! replicas' clocks never have to agree, and a replica that dies loses them within
//! one lease period; another then takes its sources and deliveries over.
//!
//! A live replica keeps its leases: every store call renews them once they are a
//! third of a period old, and the daemon calls the store twice a second (its
//! monitor), so a replica that stops calling, stuck or dead, is the one that loses
//! them, at most one period after its last call. The others do not poll for that
//! moment: [`Lease::Elsewhere`] tells them when the lease lapses, and they ask again
//! then, so a dead replica's sources are taken over within one lease period of its
//! death (figures: BENCHMARKS.md, "Replicas (issue 17): failover").

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::{col, Conn, PostgresStore, Session};
use crate::store::{Lease, SourceLease, StoreError};

/// The server's clock in unix ms: leases and claims are timed by it alone.
macro_rules! server_now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}
pub(super) use server_now_ms;

/// How long a lease or claim lasts unrenewed unless `[store] lease` says otherwise
/// (issue 17: takeover within 30 s).
pub const LEASE_PERIOD: Duration = Duration::from_secs(30);

/// The shortest lease `[store] lease` accepts: a replica renews at a third of the
/// period, and a store call that takes longer than that (a large ingest, a slow
/// server) must not cost it its leases.
pub const MIN_LEASE_PERIOD: Duration = Duration::from_secs(2);

/// How far ahead a lease or claim of period `lease` expires, in ms: a tenth of the
/// period (at most 1 s) short of it, so that the survivor's first fetch or send after
/// the lapse still lands within one period of the holder's death (the goal is the
/// period; the claim alone took all of it and the fetch came on top).
fn expiry_ms(lease: Duration) -> i64 {
    let early = (lease / 10).min(Duration::from_secs(1));
    i64::try_from((lease - early).as_millis()).unwrap_or(i64::MAX)
}

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

    /// How far ahead a lease or claim written now expires, in ms, as the SQL adds it.
    pub(super) fn lease_ms(&self) -> i64 {
        expiry_ms(self.lease)
    }

    /// Takes or renews the lease of `source`; while another replica holds it, how long
    /// until that lease lapses. One statement: the upsert takes a free, lapsed or own
    /// lease, and when it took nothing the same snapshot's row says who holds it until
    /// when (a data-modifying CTE's siblings see the table as it was before it).
    pub(super) fn lease(&self, source: &str) -> Result<Lease, StoreError> {
        let (replica, ms) = (self.replica.as_str(), self.lease_ms());
        let row = self.with(|s| {
            s.query_one(
                concat!(
                    "WITH taken AS (INSERT INTO source_leases (source, holder, expires) \
                       VALUES ($1, $2, ",
                    server_now_ms!(),
                    " + $3) ON CONFLICT (source) DO UPDATE
                        SET holder = EXCLUDED.holder, expires = EXCLUDED.expires
                      WHERE source_leases.holder = EXCLUDED.holder
                         OR source_leases.expires < ",
                    server_now_ms!(),
                    " RETURNING source)
                     SELECT (SELECT count(*) FROM taken) > 0,
                            (SELECT max(expires) FROM source_leases WHERE source = $1) - ",
                    server_now_ms!()
                ),
                &[&source, &replica, &ms],
                "leasing a source",
            )
        })?;
        if col::<bool>(&row, 0, "source_leases.holder")? {
            return Ok(Lease::Held);
        }
        let left: Option<i64> = col(&row, 1, "source_leases.expires")?;
        let left = u64::try_from(left.unwrap_or(0)).unwrap_or(0);
        Ok(Lease::Elsewhere {
            lapses_in: Duration::from_millis(left),
        })
    }

    /// Keeps when the first claim of another replica's on a due delivery lapses, in
    /// ms from now (`None`: no such claim), as the last claim of due rows found it.
    pub(super) fn set_claims_lapse(&self, ms: Option<i64>) {
        let ms = ms.map_or(u64::MAX, |ms| u64::try_from(ms).unwrap_or(0));
        self.claims_lapse
            .store(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// See [`crate::store::StoreBackend::claims_lapse_in`].
    pub(super) fn claims_lapse_in(&self) -> Option<Duration> {
        match self.claims_lapse.load(std::sync::atomic::Ordering::Relaxed) {
            u64::MAX => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    /// See [`crate::store::StoreBackend::release_leases`]: one transaction, so a
    /// replica never gives up its sources but keeps its claims or the reverse.
    pub(super) fn release_leases(&self) -> Result<(), StoreError> {
        let replica = self.replica.as_str();
        self.in_transaction(|s| {
            s.execute(
                "DELETE FROM source_leases WHERE holder = $1",
                &[&replica],
                "releasing source leases",
            )?;
            s.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL \
                  WHERE claimed_by = $1 AND state = 'pending'",
                &[&replica],
                "releasing outbox claims",
            )?;
            Ok(())
        })
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
        let ms = expiry_ms(lease);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_written_to_lapse_a_tenth_early_at_most_a_second() {
        assert_eq!(expiry_ms(Duration::from_secs(30)), 29_000);
        assert_eq!(expiry_ms(Duration::from_secs(3)), 2_700);
        assert_eq!(expiry_ms(MIN_LEASE_PERIOD), 1_800);
    }
}
