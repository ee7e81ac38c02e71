//! Prometheus metrics (prometheus-client): what the daemon counts, and the text the
//! server answers `GET /metrics` with.
//!
//! One [`Metrics`] value is made at start-up and cloned into every task that records
//! something. Cloning is cheap and every clone updates the same numbers: the metric
//! families are reference-counted atomics inside, and the registry that encodes them is
//! shared behind an `Arc`, because it is written once (registration) and then only read.
//!
//! Names carry the `lookout_` prefix. Counters are registered without the `_total`
//! suffix, which the encoder adds (and which prometheus-client refuses, in debug builds,
//! if it is already there).
//!
//! Label values come from the config (source, notifier names) and from a closed set
//! (fetch outcomes, HTTP status codes), never from fetched pages, so the number of
//! series stays bounded by the config.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::daemon::interests::InterestStatus;

/// `Content-Type` of [`Metrics::encode`]'s output: the OpenMetrics text format, which
/// Prometheus scrapes natively (and which is why the output ends in `# EOF`).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Histogram bucket bounds in seconds, 1 ms to 10 s: an ingest of a small capture takes
/// a few milliseconds, a slow webhook or SMTP delivery several seconds; anything slower
/// lands in `+Inf` and is a problem worth seeing as such.
const LATENCY_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// What became of one fetch of an HTTP source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FetchOutcome {
    /// 200 with a body.
    Ok,
    /// 304: the page had not changed.
    NotModified,
    /// Network error, timeout or an error status.
    Error,
    /// Refused before or after fetching: body too large, host gate, robots, ...
    Refused,
}

impl FetchOutcome {
    /// Every outcome, in label order.
    pub const ALL: [FetchOutcome; 4] = [
        FetchOutcome::Ok,
        FetchOutcome::NotModified,
        FetchOutcome::Error,
        FetchOutcome::Refused,
    ];

    /// The label value (`ok`, `not_modified`, `error`, `refused`).
    pub fn as_str(self) -> &'static str {
        match self {
            FetchOutcome::Ok => "ok",
            FetchOutcome::NotModified => "not_modified",
            FetchOutcome::Error => "error",
            FetchOutcome::Refused => "refused",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct FetchLabels {
    source: String,
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NotifierLabels {
    notifier: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ReplicaLabels {
    replica: String,
    store: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StatusLabels {
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct InterestLabels {
    interest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LikeLabels {
    interest: String,
    state: &'static str,
}

/// A gauge of seconds.
type Seconds = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The `lookout_interest_*` families, set together at scrape time from each interest's
/// status (see [`Metrics::set_interests`]).
#[derive(Debug, Clone, Default)]
struct InterestFamilies {
    trained_at: Family<InterestLabels, Seconds>,
    training_seconds: Family<InterestLabels, Seconds>,
    vocabulary: Family<InterestLabels, Gauge>,
    likes: Family<LikeLabels, Gauge>,
    items: Family<InterestLabels, Gauge>,
    training_errors: Family<InterestLabels, Counter>,
    scoring_errors: Family<InterestLabels, Counter>,
}

impl InterestFamilies {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "interest_trained_timestamp_seconds",
            "When the interest's model in force was trained (unix seconds); absent until \
             its first model",
            self.trained_at.clone(),
        );
        registry.register(
            "interest_training_seconds",
            "How long the interest's last training took (likes and store read included)",
            self.training_seconds.clone(),
        );
        registry.register(
            "interest_vocabulary",
            "Features (words and word pairs) of the interest's model",
            self.vocabulary.clone(),
        );
        registry.register(
            "interest_likes",
            "Liked papers at the last training: matched (stored items learned from, likes \
             file and like buttons) or unmatched (likes file entries not in the store)",
            self.likes.clone(),
        );
        registry.register(
            "interest_items_above_threshold",
            "Stored items scored at or above the interest's min_score: its feed",
            self.items.clone(),
        );
        registry.register(
            "interest_training_errors",
            "Trainings of the interest that failed (unreadable likes, no liked paper, \
             store errors) since its config last changed",
            self.training_errors.clone(),
        );
        registry.register(
            "interest_scoring_errors",
            "Rescorings of the stored items that could not be recorded since the \
             interest's config last changed",
            self.scoring_errors.clone(),
        );
    }
}

/// Every metric lookout exports, and the registry that encodes them.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    fetches: Family<FetchLabels, Counter>,
    parse_failures: Family<SourceLabels, Counter>,
    entries_ingested: Family<SourceLabels, Counter>,
    new_items: Family<SourceLabels, Counter>,
    alerts_delivered: Family<NotifierLabels, Counter>,
    alerts_failed: Family<NotifierLabels, Counter>,
    alerts_pending: Gauge,
    alerts_unrecorded: Gauge,
    store_writable: Gauge,
    store_intact: Gauge,
    replica: Family<ReplicaLabels, Gauge>,
    source_leases: Gauge,
    feed_requests: Family<StatusLabels, Counter>,
    ingest_seconds: Histogram,
    delivery_seconds: Histogram,
    sources: Family<StateLabels, Gauge>,
    http_sources: Gauge,
    fetches_in_flight: Gauge,
    fetches_in_flight_max: Gauge,
    interests: InterestFamilies,
    /// The sources and notifiers [`Metrics::prime`] was last given, whose series a
    /// reload that removes them takes away.
    primed: Arc<std::sync::Mutex<Primed>>,
}

/// The label values of the last [`Metrics::prime`].
#[derive(Debug, Default)]
struct Primed {
    sources: std::collections::HashSet<String>,
    notifiers: std::collections::HashSet<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric, all at zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("lookout");
        let fetches = Family::<FetchLabels, Counter>::default();
        let parse_failures = Family::<SourceLabels, Counter>::default();
        let entries_ingested = Family::<SourceLabels, Counter>::default();
        let new_items = Family::<SourceLabels, Counter>::default();
        let alerts_delivered = Family::<NotifierLabels, Counter>::default();
        let alerts_failed = Family::<NotifierLabels, Counter>::default();
        let alerts_pending = Gauge::default();
        let alerts_unrecorded = Gauge::default();
        let store_writable = Gauge::default();
        let store_intact = Gauge::default();
        store_writable.set(1);
        store_intact.set(1);
        let feed_requests = Family::<StatusLabels, Counter>::default();
        let ingest_seconds = Histogram::new(LATENCY_BUCKETS);
        let delivery_seconds = Histogram::new(LATENCY_BUCKETS);
        let sources = Family::<StateLabels, Gauge>::default();
        let http_sources = Gauge::default();
        let fetches_in_flight = Gauge::default();
        let fetches_in_flight_max = Gauge::default();
        registry.register(
            "sources",
            "Configured sources by state (ok, degraded, failing), from the same source \
             health as /healthz and the status page",
            sources.clone(),
        );
        registry.register(
            "http_sources_scheduled",
            "HTTP sources the scheduler polls",
            http_sources.clone(),
        );
        registry.register(
            "http_fetches_in_flight",
            "HTTP fetches in flight now (bounded, however many sources there are)",
            fetches_in_flight.clone(),
        );
        registry.register(
            "http_fetches_in_flight_max",
            "The most HTTP fetches ever in flight at once since start",
            fetches_in_flight_max.clone(),
        );

        registry.register(
            "fetches",
            "Fetches of HTTP sources, by source and outcome (ok, not_modified, error, refused)",
            fetches.clone(),
        );
        registry.register(
            "parse_failures",
            "Pages that could not be parsed, by source",
            parse_failures.clone(),
        );
        registry.register(
            "entries_ingested",
            "Entries handed to the store (new, updated or unchanged), by source",
            entries_ingested.clone(),
        );
        registry.register(
            "new_items",
            "Items seen for the first time, by source",
            new_items.clone(),
        );
        registry.register(
            "alerts_delivered",
            "Alerts delivered, by notifier; counted per outbox row, so a digest of N matches \
             counts N, as /healthz and the status page count them",
            alerts_delivered.clone(),
        );
        registry.register(
            "alerts_failed",
            "Alert delivery attempts that failed, by notifier; counted per outbox row and \
             attempt (a digest of N matches failing once counts N)",
            alerts_failed.clone(),
        );
        registry.register(
            "alerts_pending",
            "Alert deliveries waiting in the outbox (including retries)",
            alerts_pending.clone(),
        );
        registry.register(
            "alerts_unrecorded",
            "Alerts sent whose outcome the store could not record yet (kept in memory; \
             deliveries pause while any wait)",
            alerts_unrecorded.clone(),
        );
        registry.register(
            "store_writable",
            "1 while the store can write, 0 while writes fail (a full disk, no file \
             descriptors left, a lock held elsewhere)",
            store_writable.clone(),
        );
        registry.register(
            "store_intact",
            "1 while the store passes its integrity checks, 0 once it is found damaged",
            store_intact.clone(),
        );
        registry.register(
            "feed_requests",
            "Feed requests answered, by HTTP status code",
            feed_requests.clone(),
        );
        let replica = Family::<ReplicaLabels, Gauge>::default();
        let source_leases = Gauge::default();
        registry.register(
            "replica",
            "1, labelled with this replica's name (empty on SQLite) and its store's kind",
            replica.clone(),
        );
        registry.register(
            "source_leases",
            "HTTP sources whose lease this replica holds (0 on SQLite, which needs none)",
            source_leases.clone(),
        );
        registry.register(
            "ingest_seconds",
            "Time to parse and ingest one page, in seconds",
            ingest_seconds.clone(),
        );
        registry.register(
            "delivery_seconds",
            "Time of one alert delivery attempt, in seconds",
            delivery_seconds.clone(),
        );
        let interests = InterestFamilies::default();
        interests.register(&mut registry);

        Metrics {
            registry: Arc::new(registry),
            fetches,
            parse_failures,
            entries_ingested,
            new_items,
            alerts_delivered,
            alerts_failed,
            alerts_pending,
            alerts_unrecorded,
            store_writable,
            store_intact,
            replica,
            source_leases,
            feed_requests,
            ingest_seconds,
            delivery_seconds,
            sources,
            http_sources,
            fetches_in_flight,
            fetches_in_flight_max,
            interests,
            primed: Arc::default(),
        }
    }

    /// Sets the sources-by-state gauges from the health summary `/healthz` and the
    /// status page show.
    pub fn set_source_states(&self, ok: usize, degraded: usize, failing: usize) {
        for (state, n) in [("ok", ok), ("degraded", degraded), ("failing", failing)] {
            self.sources
                .get_or_create(&StateLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// Sets the HTTP scheduler's gauges: sources polled, fetches in flight now and the
    /// most ever in flight.
    pub fn set_scheduler(&self, sources: usize, in_flight: usize, max_seen: usize) {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.http_sources.set(gauge(sources));
        self.fetches_in_flight.set(gauge(in_flight));
        self.fetches_in_flight_max.set(gauge(max_seen));
    }

    /// Creates the zero-valued series of every configured source and notifier, so they
    /// are scraped from the start: a counter whose series first appears at 1 hides that
    /// first increment from `rate()` and `increase()`. Call at start and after a reload.
    /// Series of sources and notifiers primed before and not now are removed: a removed
    /// source must not stay in every scrape until the next restart.
    pub fn prime<'a>(
        &self,
        sources: impl IntoIterator<Item = &'a str>,
        notifiers: impl IntoIterator<Item = &'a str>,
    ) {
        let now = Primed {
            sources: sources.into_iter().map(str::to_owned).collect(),
            notifiers: notifiers.into_iter().map(str::to_owned).collect(),
        };
        let mut primed = self.primed.lock().unwrap_or_else(|e| e.into_inner());
        for source in primed.sources.difference(&now.sources) {
            let labels = SourceLabels {
                source: source.clone(),
            };
            self.entries_ingested.remove(&labels);
            self.new_items.remove(&labels);
            self.parse_failures.remove(&labels);
            for outcome in FetchOutcome::ALL {
                self.fetches.remove(&FetchLabels {
                    source: source.clone(),
                    outcome: outcome.as_str(),
                });
            }
        }
        for notifier in primed.notifiers.difference(&now.notifiers) {
            let labels = NotifierLabels {
                notifier: notifier.clone(),
            };
            self.alerts_delivered.remove(&labels);
            self.alerts_failed.remove(&labels);
        }
        for source in &now.sources {
            let labels = SourceLabels {
                source: source.clone(),
            };
            self.entries_ingested.get_or_create_owned(&labels);
            self.new_items.get_or_create_owned(&labels);
            self.parse_failures.get_or_create_owned(&labels);
        }
        for notifier in &now.notifiers {
            let labels = NotifierLabels {
                notifier: notifier.clone(),
            };
            self.alerts_delivered.get_or_create_owned(&labels);
            self.alerts_failed.get_or_create_owned(&labels);
        }
        *primed = now;
    }

    /// Records which replica this is, on which store, holding `leases` source leases.
    pub fn set_replica(&self, name: Option<&str>, store: &'static str, leases: usize) {
        let labels = ReplicaLabels {
            replica: name.unwrap_or_default().to_owned(),
            store,
        };
        self.replica.get_or_create(&labels).set(1);
        self.source_leases
            .set(i64::try_from(leases).unwrap_or(i64::MAX));
    }

    /// Counts one fetch of `source` with its outcome.
    pub fn record_fetch(&self, source: &str, outcome: FetchOutcome) {
        self.fetches
            .get_or_create(&FetchLabels {
                source: source.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc();
    }

    /// Records one ingested page of `source`: `entries` handed to the store, `new` of
    /// them seen for the first time, taking `seconds` (parse and store together).
    pub fn record_ingest(&self, source: &str, entries: u64, new: u64, seconds: f64) {
        let labels = SourceLabels {
            source: source.to_owned(),
        };
        self.entries_ingested.get_or_create(&labels).inc_by(entries);
        self.new_items.get_or_create(&labels).inc_by(new);
        self.ingest_seconds.observe(seconds);
    }

    /// Counts a page of `source` that no parser could read.
    pub fn record_parse_failure(&self, source: &str) {
        self.parse_failures
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .inc();
    }

    /// Records one delivery attempt to `notifier`: whether it succeeded, how many outbox
    /// rows its message carried (1, or a digest's matches) and how long it took.
    ///
    /// The counters count rows, the one unit of deliveries everywhere (`/healthz` and the
    /// status page read the outbox rows): a digest of 5 matches is 5 alerts delivered.
    /// Failed attempts are counted each time, retries included, since each one is a real
    /// failure of the receiving end. The histogram times messages: one send is one wait.
    pub fn record_delivery(&self, notifier: &str, ok: bool, rows: u64, seconds: f64) {
        let labels = NotifierLabels {
            notifier: notifier.to_owned(),
        };
        let family = if ok {
            &self.alerts_delivered
        } else {
            &self.alerts_failed
        };
        family.get_or_create(&labels).inc_by(rows);
        self.delivery_seconds.observe(seconds);
    }

    /// Sets the number of deliveries waiting in the outbox (read from the store, which
    /// is the truth; a gauge the worker incremented itself would drift across restarts).
    pub fn set_pending(&self, pending: u64) {
        self.alerts_pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
    }

    /// Sets the number of sent alerts whose outcome waits to be recorded.
    pub fn set_unrecorded(&self, kept: u64) {
        self.alerts_unrecorded
            .set(i64::try_from(kept).unwrap_or(i64::MAX));
    }

    /// Sets the store gauges from its condition: `store_writable` is 0 while writes
    /// fail or the store is damaged, `store_intact` is 0 once it is damaged.
    pub fn set_store_condition(&self, condition: &crate::store::Condition) {
        self.store_writable.set(i64::from(condition.is_healthy()));
        self.store_intact.set(i64::from(condition.is_intact()));
    }

    /// Counts one feed request answered with HTTP `status` (200, 304, 401, 404, ...).
    pub fn record_feed_request(&self, status: u16) {
        self.feed_requests
            .get_or_create(&StatusLabels { status })
            .inc();
    }

    /// Sets the `lookout_interest_*` series from each configured interest's status and
    /// feed size (items at or above its threshold), replacing those of the last call:
    /// an interest a reload removed leaves no series behind. The error counters are the
    /// interest's own totals, which restart at 0 when its config changes (a counter
    /// reset, as Prometheus understands one).
    pub fn set_interests<'a>(
        &self,
        interests: impl IntoIterator<Item = (&'a str, &'a InterestStatus, u64)>,
    ) {
        let f = &self.interests;
        f.trained_at.clear();
        f.training_seconds.clear();
        f.vocabulary.clear();
        f.likes.clear();
        f.items.clear();
        f.training_errors.clear();
        f.scoring_errors.clear();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        for (name, status, items) in interests {
            let labels = InterestLabels {
                interest: name.to_owned(),
            };
            if let Some(at) = status.trained_at {
                f.trained_at
                    .get_or_create(&labels)
                    .set(at.timestamp_millis() as f64 / 1e3);
                f.training_seconds
                    .get_or_create(&labels)
                    .set(status.training_seconds);
            }
            f.vocabulary
                .get_or_create(&labels)
                .set(count(status.vocabulary));
            for (state, n) in [("matched", status.matched), ("unmatched", status.unmatched)] {
                f.likes
                    .get_or_create(&LikeLabels {
                        interest: name.to_owned(),
                        state,
                    })
                    .set(count(n));
            }
            f.items
                .get_or_create(&labels)
                .set(i64::try_from(items).unwrap_or(i64::MAX));
            f.training_errors
                .get_or_create(&labels)
                .inc_by(status.training_errors);
            f.scoring_errors
                .get_or_create(&labels)
                .inc_by(status.scoring_errors);
        }
    }

    /// Every metric in the OpenMetrics text format, ending in `# EOF`; serve it with
    /// [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail, and every metric here is a classic one the
        // text encoder supports, so an error would be a bug in this module: say so in
        // the log and in the output rather than panicking in a request handler.
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
            out.push_str("# encoding failed\n# EOF\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line whose name and labels are exactly `series`.
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
    }

    /// Checks `text` line by line against the OpenMetrics text format as far as lookout
    /// uses it: metadata lines, samples with well-formed names, labels and values, every
    /// sample belonging to a declared family, and `# EOF` last.
    fn assert_exposition(text: &str) {
        let name_ok = |n: &str| {
            let mut chars = n.chars();
            chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
                && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
        };
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.last(), Some(&"# EOF"), "exposition must end in # EOF");
        let mut families: Vec<String> = Vec::new();
        for line in &lines[..lines.len() - 1] {
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let kind = parts.next().unwrap_or_default();
                let name = parts.next().unwrap_or_default();
                assert!(
                    matches!(kind, "HELP" | "TYPE" | "UNIT"),
                    "unknown metadata: {line}"
                );
                assert!(name_ok(name), "bad metric name in: {line}");
                if kind == "TYPE" {
                    let ty = parts.next().unwrap_or_default();
                    assert!(
                        matches!(ty, "counter" | "gauge" | "histogram" | "unknown"),
                        "bad type in: {line}"
                    );
                    families.push(name.to_owned());
                }
                continue;
            }
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample without value: {line}"));
            assert!(
                value.parse::<f64>().is_ok() || value == "+Inf",
                "bad value in: {line}"
            );
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, Some(l)),
                None => (series, None),
            };
            assert!(name_ok(name), "bad sample name in: {line}");
            if let Some(labels) = labels {
                let body = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels in: {line}"));
                for pair in body.split(',') {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("bad label in: {line}"));
                    assert!(name_ok(k), "bad label name in: {line}");
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "unquoted label value in: {line}"
                    );
                }
            }
            let family_declared = families.iter().any(|f| {
                name == f
                    || ["_total", "_bucket", "_sum", "_count", "_created"]
                        .iter()
                        .any(|suffix| name.strip_suffix(suffix) == Some(f.as_str()))
            });
            assert!(family_declared, "sample of undeclared family: {line}");
        }
    }

    #[test]
    fn counters_move_when_work_is_recorded() {
        let m = Metrics::new();
        m.record_fetch("hf", FetchOutcome::Ok);
        m.record_fetch("hf", FetchOutcome::Ok);
        m.record_fetch("hf", FetchOutcome::NotModified);
        m.record_fetch("arxiv", FetchOutcome::Refused);
        m.record_ingest("hf", 27, 5, 0.004);
        m.record_parse_failure("drop");
        m.record_delivery("ntfy", true, 1, 0.2);
        m.record_delivery("digest", true, 3, 0.2);
        m.record_delivery("ntfy", false, 1, 3.0);
        m.set_pending(4);
        m.record_feed_request(200);
        m.record_feed_request(304);
        m.record_feed_request(304);
        let text = m.encode();
        let at = |series: &str| sample(&text, series);
        assert_eq!(
            at(r#"lookout_fetches_total{source="hf",outcome="ok"}"#),
            Some(2.0)
        );
        assert_eq!(
            at(r#"lookout_fetches_total{source="hf",outcome="not_modified"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"lookout_fetches_total{source="arxiv",outcome="refused"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"lookout_entries_ingested_total{source="hf"}"#),
            Some(27.0)
        );
        assert_eq!(at(r#"lookout_new_items_total{source="hf"}"#), Some(5.0));
        assert_eq!(
            at(r#"lookout_parse_failures_total{source="drop"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"lookout_alerts_delivered_total{notifier="ntfy"}"#),
            Some(1.0)
        );
        assert_eq!(
            at(r#"lookout_alerts_failed_total{notifier="ntfy"}"#),
            Some(1.0)
        );
        // A digest counts its rows, as /healthz does; its send is timed once.
        assert_eq!(
            at(r#"lookout_alerts_delivered_total{notifier="digest"}"#),
            Some(3.0)
        );
        assert_eq!(at("lookout_alerts_pending"), Some(4.0));
        assert_eq!(
            at(r#"lookout_feed_requests_total{status="304"}"#),
            Some(2.0)
        );
        assert_eq!(at("lookout_ingest_seconds_count"), Some(1.0));
        assert_eq!(at("lookout_delivery_seconds_count"), Some(3.0));
        assert_eq!(
            at(r#"lookout_delivery_seconds_bucket{le="0.25"}"#),
            Some(2.0)
        );
        assert_eq!(
            at(r#"lookout_delivery_seconds_bucket{le="5.0"}"#),
            Some(3.0)
        );
    }

    #[test]
    fn clones_record_into_the_same_metrics() {
        let m = Metrics::new();
        let clone = m.clone();
        clone.record_parse_failure("drop");
        assert_eq!(
            sample(
                &m.encode(),
                r#"lookout_parse_failures_total{source="drop"}"#
            ),
            Some(1.0)
        );
    }

    #[test]
    fn a_reload_that_removes_a_source_or_notifier_removes_its_series() {
        let m = Metrics::new();
        m.prime(["gone", "kept"], ["log", "hook"]);
        m.record_fetch("gone", FetchOutcome::NotModified);
        m.record_fetch("kept", FetchOutcome::Ok);
        m.prime(["kept"], ["log"]);
        let text = m.encode();
        assert!(!text.contains(r#"source="gone""#), "{text}");
        assert!(!text.contains(r#"notifier="hook""#), "{text}");
        assert_eq!(
            sample(
                &text,
                r#"lookout_fetches_total{source="kept",outcome="ok"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            sample(&text, r#"lookout_alerts_failed_total{notifier="log"}"#),
            Some(0.0)
        );
    }

    #[test]
    fn primed_series_are_scraped_at_zero() {
        let m = Metrics::new();
        m.prime(["drop", "hf"], ["log"]);
        let text = m.encode();
        assert_eq!(
            sample(&text, r#"lookout_new_items_total{source="hf"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, r#"lookout_parse_failures_total{source="drop"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(&text, r#"lookout_alerts_failed_total{notifier="log"}"#),
            Some(0.0)
        );
        // Priming twice (a reload) neither fails nor resets.
        m.record_ingest("hf", 2, 1, 0.01);
        m.prime(["hf"], []);
        assert_eq!(
            sample(&m.encode(), r#"lookout_new_items_total{source="hf"}"#),
            Some(1.0)
        );
    }

    #[test]
    fn pending_gauge_is_set_not_added() {
        let m = Metrics::new();
        m.set_pending(7);
        m.set_pending(2);
        assert_eq!(sample(&m.encode(), "lookout_alerts_pending"), Some(2.0));
    }

    #[test]
    fn interest_series_follow_the_configured_interests() {
        let m = Metrics::new();
        let status = InterestStatus {
            trained_at: Some(chrono::DateTime::from_timestamp(1_700_000_000, 0).expect("time")),
            training_seconds: 0.25,
            positives: 3,
            matched: 2,
            unmatched: 1,
            vocabulary: 120,
            feed_items: 4,
            training_errors: 2,
            scoring_errors: 0,
            error: None,
        };
        m.set_interests([("cosmo", &status, 5)]);
        m.set_interests([("cosmo", &status, 5)]);
        let text = m.encode();
        assert_exposition(&text);
        let at = |s: &str| sample(&text, s);
        assert_eq!(
            at("lookout_interest_trained_timestamp_seconds{interest=\"cosmo\"}"),
            Some(1_700_000_000.0)
        );
        assert_eq!(
            at("lookout_interest_training_seconds{interest=\"cosmo\"}"),
            Some(0.25)
        );
        assert_eq!(
            at("lookout_interest_vocabulary{interest=\"cosmo\"}"),
            Some(120.0)
        );
        assert_eq!(
            at("lookout_interest_likes{interest=\"cosmo\",state=\"matched\"}"),
            Some(2.0)
        );
        assert_eq!(
            at("lookout_interest_likes{interest=\"cosmo\",state=\"unmatched\"}"),
            Some(1.0)
        );
        assert_eq!(
            at("lookout_interest_items_above_threshold{interest=\"cosmo\"}"),
            Some(5.0)
        );
        // Totals, not increments: two scrapes of the same status give the same count.
        assert_eq!(
            at("lookout_interest_training_errors_total{interest=\"cosmo\"}"),
            Some(2.0)
        );
        assert_eq!(
            at("lookout_interest_scoring_errors_total{interest=\"cosmo\"}"),
            Some(0.0)
        );
        // An interest removed by a reload leaves no series.
        m.set_interests([]);
        assert!(!m.encode().contains("interest=\"cosmo\""));
    }

    #[test]
    fn encoded_text_is_a_valid_exposition_ending_in_eof() {
        let m = Metrics::new();
        assert_exposition(&m.encode());
        m.record_fetch("hf", FetchOutcome::Error);
        m.record_ingest("hf", 3, 3, 0.02);
        m.record_parse_failure("hf");
        m.record_delivery("log", true, 1, 0.0005);
        m.record_delivery("log", false, 1, 0.0005);
        m.record_feed_request(401);
        let text = m.encode();
        assert_exposition(&text);
        for family in [
            "lookout_fetches",
            "lookout_parse_failures",
            "lookout_entries_ingested",
            "lookout_new_items",
            "lookout_alerts_delivered",
            "lookout_alerts_failed",
            "lookout_alerts_pending",
            "lookout_feed_requests",
            "lookout_ingest_seconds",
            "lookout_delivery_seconds",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(&format!("# TYPE {family} "))),
                "family {family} is not declared in:\n{text}"
            );
        }
        assert!(
            text.contains(r#"lookout_ingest_seconds_bucket{le="+Inf"} 1"#),
            "histogram has its +Inf bucket:\n{text}"
        );
    }

    #[test]
    fn fetch_outcomes_have_their_label_values() {
        let labels: Vec<&str> = FetchOutcome::ALL.iter().map(|o| o.as_str()).collect();
        assert_eq!(labels, ["ok", "not_modified", "error", "refused"]);
    }
}
