//! When to fetch next. Pure functions over durations and header text, so the policy is
//! unit-tested without a clock or a server; the poller only adds the randomness.

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};

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

/// Delay after the `failures`-th failure in a row (1-based): `base`, doubling, capped at `max`.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    // 2^31 times any base already exceeds every sensible cap; clamping the shift keeps
    // the multiplication from overflowing the u32 factor.
    let shift = failures.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << shift).min(max)
}

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

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date (IMF-fixdate, RFC 850
/// or asctime, as RFC 9110 requires recipients to accept). A date in the past means
/// "now" (zero). `None` for anything else, in which case the plain backoff applies.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is "forever"; the caller's cap applies anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    // IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") is what servers send today.
    if let Ok(at) = DateTime::parse_from_rfc2822(value) {
        return Some(at.with_timezone(&Utc));
    }
    // Obsolete forms: RFC 850 ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
    // ("Sun Nov  6 08:49:37 1994").
    let rfc850 = value.strip_suffix(" GMT").and_then(|v| {
        let (_, rest) = v.split_once(", ")?;
        NaiveDateTime::parse_from_str(rest, "%d-%b-%y %H:%M:%S").ok()
    });
    let naive = rfc850.or_else(|| {
        let collapsed = value.split_whitespace().collect::<Vec<_>>().join(" ");
        NaiveDateTime::parse_from_str(&collapsed, "%a %b %e %H:%M:%S %Y").ok()
    })?;
    Some(naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn backoff_doubles_from_the_base_and_stops_at_the_cap() {
        let delays: Vec<_> = (1..=6).map(|n| backoff(n, S(30), S(300))).collect();
        assert_eq!(delays, [S(30), S(60), S(120), S(240), S(300), S(300)]);
    }

    #[test]
    fn backoff_survives_absurd_failure_counts() {
        assert_eq!(backoff(u32::MAX, S(30), S(6 * 3600)), S(6 * 3600));
        assert_eq!(backoff(0, S(30), S(300)), S(30));
    }

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
    fn retry_after_parses_seconds_and_every_http_date_form() {
        let now = Utc.with_ymd_and_hms(1994, 11, 6, 8, 49, 0).unwrap();
        assert_eq!(parse_retry_after("120", now), Some(S(120)));
        assert_eq!(parse_retry_after(" 7 ", now), Some(S(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(S(37))
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            Some(S(37))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:49:37 1994", now),
            Some(S(37))
        );
    }

    #[test]
    fn retry_after_in_the_past_means_now_and_garbage_means_none() {
        let now = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
        assert_eq!(parse_retry_after("", now), None);
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
