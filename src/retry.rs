//! Trying again: the one exponential backoff and the one `Retry-After` reader, shared by
//! the HTTP sources, the pipeline's store retries and the alert outbox.
//!
//! Both are pure functions over durations and header text, so the policy is tested
//! without a clock or a server; callers add the randomness ([`jittered`]) where many
//! retries could otherwise fall in lockstep.
//!
//! A crate such as `backon` drives a retry loop from an iterator of delays. Ours are
//! computed from a failure count that outlives the loop (an outbox row's `attempts`
//! column, a source's failures in a row), so one function of that count serves every
//! caller, and the loop stays where its cancellation and logging live.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;

/// Delay after the `failures`-th failure in a row (1-based): `base`, doubling, capped at
/// `max`. A count of 0 is treated as 1.
pub fn backoff(failures: u32, base: Duration, max: Duration) -> Duration {
    // 2^31 times any base already exceeds every sensible cap; clamping the shift keeps
    // the multiplication from overflowing the u32 factor.
    let shift = failures.saturating_sub(1).min(31);
    base.saturating_mul(1u32 << shift).min(max)
}

/// [`backoff`], then a uniformly random point in its upper half, so many deliveries
/// failing together (a receiver down) do not all retry at the same instant.
pub fn jittered(failures: u32, base: Duration, max: Duration) -> Duration {
    backoff(failures, base, max).mul_f64(rand::rng().random_range(0.5..=1.0))
}

/// Parses a `Retry-After` value: delay-seconds or an HTTP-date in any of the three forms
/// RFC 9110 requires recipients to accept (IMF-fixdate, RFC 850, asctime). A date in
/// the past means "now" (zero). `None` for anything else, in which case the caller's
/// plain backoff applies.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Longer than u64 seconds is "forever"; every caller caps the wait anyway.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::<Utc>::from(httpdate::parse_http_date(value).ok()?);
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response's headers, parsed (see [`parse_retry_after`]).
pub fn retry_after_header(
    headers: &reqwest::header::HeaderMap,
    now: DateTime<Utc>,
) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
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
    fn jittered_backoff_stays_in_the_upper_half_of_the_step() {
        for _ in 0..50 {
            let first = jittered(1, S(10), S(100));
            assert!(first >= S(5) && first <= S(10), "{first:?}");
            let third = jittered(3, S(10), S(100));
            assert!(third >= S(20) && third <= S(40), "{third:?}");
            let late = jittered(40, S(10), S(100));
            assert!(late >= S(50) && late <= S(100), "{late:?}");
        }
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
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(S(u64::MAX))
        );
    }

    #[test]
    fn retry_after_is_read_from_response_headers() {
        let now = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after_header(&headers, now), None);
        headers.insert(
            reqwest::header::RETRY_AFTER,
            "Mon, 01 Jan 2024 00:01:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_header(&headers, now), Some(S(60)));
    }
}
