//! When to fetch next. Pure functions over durations and header text, so the policy is
//! unit-tested without a clock or a server; the poller only adds the randomness.

use std::time::Duration;

/// First delay after a failure; it doubles with each further failure. It does not
/// depend on `every`: a page polled daily that fails should be retried within minutes,
/// and one polled every minute should not be hammered.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_secs(30);

/// Longest random delay before a source's first fetch, so many sources starting
/// together do not all fire in the same instant.
pub const DEFAULT_START_DELAY: Duration = Duration::from_secs(5);

/// The jitter a source gets when its config names none: a tenth of its interval.
pub fn default_jitter(every: Duration) -> Duration {
    every / 10
}

// The backoff and the `Retry-After` reader are the crate's one pair (`crate::retry`),
// shared with the outbox; re-exported here for the poller and the fetcher.
pub use crate::retry::{backoff, parse_retry_after};

/// Delay after a failure: the backoff, but never sooner than a `Retry-After` the server
/// sent, and never longer than `max` (a server asking for a week does not silence a
/// source past its configured cap).
pub fn failure_delay(
    failures: u32,
    base: Duration,
    max: Duration,
    retry_after: Option<Duration>,
) -> Duration {
    let delay = backoff(failures, base, max);
    match retry_after {
        Some(wait) => delay.max(wait).min(max),
        None => delay,
    }
}

/// A random duration in `0..=max`.
pub fn random_up_to(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::random_range(0..=nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn retry_after_longer_than_the_backoff_wins() {
        assert_eq!(failure_delay(1, S(30), S(600), Some(S(120))), S(120));
    }

    #[test]
    fn retry_after_shorter_than_the_backoff_does_not_shorten_it() {
        assert_eq!(failure_delay(3, S(30), S(600), Some(S(5))), S(120));
    }

    #[test]
    fn retry_after_is_capped_at_max_backoff() {
        assert_eq!(failure_delay(1, S(30), S(600), Some(S(86_400))), S(600));
    }

    #[test]
    fn random_delays_stay_within_their_bound() {
        assert_eq!(random_up_to(Duration::ZERO), Duration::ZERO);
        for _ in 0..100 {
            assert!(random_up_to(S(3)) <= S(3));
        }
        assert_eq!(default_jitter(S(1800)), S(180));
    }
}
