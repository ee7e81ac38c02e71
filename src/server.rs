//! The HTTP server (axum): feeds with ETag / Last-Modified / 304 and gzip, health,
//! metrics and the status page.
//!
//! Feed bytes come from the [`Publisher`]'s memory; a conditional GET that matches is
//! answered 304 without touching the database.

use std::sync::{Arc, RwLock};

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::config::{Secret, SourceKind};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::publish::{FeedFormat, FeedId, FeedScope, Publisher, Rendered};
use crate::status::{self, FeedLink, ItemView, RuleView, SourceView, StatusView};
use crate::store::{self, ItemFilter, SharedStore, Store, StoreError};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Rendered feeds.
    pub publisher: Arc<Publisher>,
    /// The store, for health and the status page.
    pub store: SharedStore,
    /// Access token; `None` leaves the server open (it listens on loopback by default).
    pub token: Arc<RwLock<Option<Secret>>>,
    /// Counters and histograms for `/metrics`.
    pub metrics: Metrics,
    /// The config in force, folder health and the last refused reload.
    pub live: Arc<Live>,
    /// Whether the store can write and passed its integrity check.
    pub health: store::StoreHealth,
}

/// Builds the router with every route and layer.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/feed.xml", get(all_rss))
        .route("/feed.atom", get(all_atom))
        .route("/feed.json", get(all_json))
        .route("/feeds/{file}", get(source_feed))
        .route("/alerts/{file}", get(rule_feed))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(status_page))
        .route("/feeds.opml", get(opml))
        .route("/feed.xsl", get(stylesheet))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

async fn all_rss(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve(&s, FeedScope::All, FeedFormat::Rss, &headers).await
}
async fn all_atom(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve(&s, FeedScope::All, FeedFormat::Atom, &headers).await
}
async fn all_json(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve(&s, FeedScope::All, FeedFormat::Json, &headers).await
}

async fn source_feed(
    State(s): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match split_feed_file(&file) {
        Some((name, format)) => serve(&s, FeedScope::Source(name), format, &headers).await,
        None => not_found(),
    }
}

async fn rule_feed(
    State(s): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match split_feed_file(&file) {
        Some((name, format)) => serve(&s, FeedScope::Rule(name), format, &headers).await,
        None => not_found(),
    }
}

/// "drop.xml" -> ("drop", Rss).
fn split_feed_file(file: &str) -> Option<(String, FeedFormat)> {
    let (name, ext) = file.rsplit_once('.')?;
    Some((name.to_owned(), FeedFormat::from_extension(ext)?))
}

async fn serve(
    state: &AppState,
    scope: FeedScope,
    format: FeedFormat,
    headers: &HeaderMap,
) -> Response {
    let id = FeedId { scope, format };
    let response = match state.publisher.get(&id).await {
        Ok(Some(rendered)) => conditional(&rendered, headers),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render feed");
            (StatusCode::INTERNAL_SERVER_ERROR, "feed unavailable\n").into_response()
        }
    };
    state
        .metrics
        .record_feed_request(response.status().as_u16());
    response
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such feed\n").into_response()
}

/// Answers 304 when the client's validators match, else the feed with its validators.
fn conditional(rendered: &Rendered, headers: &HeaderMap) -> Response {
    let fresh = match headers.get(header::IF_NONE_MATCH) {
        // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        Some(inm) => inm
            .to_str()
            .map(|v| etag_matches(v, &rendered.etag))
            .unwrap_or(false),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| DateTime::parse_from_rfc2822(v).ok())
            .is_some_and(|since| rendered.last_modified.timestamp() <= since.timestamp()),
    };
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = rendered.bytes.clone().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rendered.content_type),
        );
        r
    };
    let h = response.headers_mut();
    if let Some(v) = &rendered.headers.etag {
        h.insert(header::ETAG, v.clone());
    }
    if let Some(v) = &rendered.headers.last_modified {
        h.insert(header::LAST_MODIFIED, v.clone());
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// Whether an `If-None-Match` value (a list, or `*`) names `etag`. Weak validators
/// compare by their opaque tag, as RFC 9110 prescribes for If-None-Match.
fn etag_matches(header_value: &str, etag: &str) -> bool {
    let bare = etag.trim_start_matches("W/");
    header_value
        .split(',')
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == bare)
}

/// An HTTP-date (IMF-fixdate).
pub fn http_date(t: DateTime<Utc>) -> String {
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

/// Runs a store query off the async workers; the error as text for the response.
async fn with_store<T: Send + 'static>(
    store: &SharedStore,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, String> {
    store::blocking(store, move |s| f(s))
        .await
        .map_err(|e| e.to_string())
}

/// One source's health, from the store (HTTP) or the daemon's memory (folders).
fn source_views(state: &AppState, fetch: &[(String, crate::store::FetchState)]) -> Vec<SourceView> {
    let config = state.live.config();
    config
        .sources
        .iter()
        .map(|s| {
            let name = s.name.get_ref().clone();
            match s.kind.get_ref() {
                SourceKind::Http => {
                    let f = fetch
                        .iter()
                        .find(|(n, _)| *n == name)
                        .map(|(_, f)| f.clone())
                        .unwrap_or_default();
                    SourceView {
                        name,
                        kind: "http".into(),
                        ok: f.consecutive_failures == 0,
                        last_success: f.last_success,
                        last_error: f.last_error,
                        last_error_at: f.last_error_at,
                        consecutive_failures: f.consecutive_failures,
                    }
                }
                SourceKind::Folder => {
                    let h = state.live.folder_health(&name);
                    SourceView {
                        name,
                        kind: "folder".into(),
                        ok: h.consecutive_failures == 0,
                        last_success: h.last_success,
                        last_error: h.last_error,
                        last_error_at: h.last_error_at,
                        consecutive_failures: h.consecutive_failures,
                    }
                }
            }
        })
        .collect()
}

/// 200 with per-source health and outbox totals while the store answers and can
/// write; 503 with the reason when it cannot write (a full disk), is damaged (failed
/// its integrity check) or does not answer. The store's condition comes from
/// [`store::StoreHealth`], which the start-up integrity check and every failed write
/// keep current: a probe of its own would miss damaged pages it does not read.
async fn healthz(State(s): State<AppState>) -> Response {
    let condition = s.health.condition();
    let store_json = |condition: &store::Condition| {
        let (error, since) = match condition {
            store::Condition::Healthy => (None, None),
            store::Condition::CannotWrite { since, .. }
            | store::Condition::Corrupt { since, .. } => {
                (condition.problem(), Some(since.to_rfc3339()))
            }
        };
        serde_json::json!({
            "writable": condition.is_healthy(),
            "intact": condition.is_intact(),
            "error": error,
            "since": since,
        })
    };
    if !condition.is_intact() {
        // Nothing the store holds can be trusted: say so without reading it.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": "store damaged",
                "error": condition.problem(),
                "action": s.health.advice(),
                "store": store_json(&condition),
            })),
        )
            .into_response();
    }
    let health = s.health.clone();
    let probe = with_store(&s.store, move |st| {
        let read = || {
            st.generation()?;
            Ok((
                st.all_fetch_states()?,
                st.outbox_counts()?,
                st.item_count()?,
            ))
        };
        read().inspect_err(|e| {
            health.failed(st, e);
        })
    })
    .await;
    // The probe may have found the store damaged.
    let condition = s.health.condition();
    match probe {
        Ok((fetch, outbox, items)) => {
            let sources: serde_json::Map<String, serde_json::Value> = source_views(&s, &fetch)
                .into_iter()
                .map(|v| {
                    (
                        v.name.clone(),
                        serde_json::json!({
                            "kind": v.kind,
                            "ok": v.ok,
                            "last_success": v.last_success.map(|t| t.to_rfc3339()),
                            "last_error": v.last_error,
                            "last_error_at": v.last_error_at.map(|t| t.to_rfc3339()),
                            "consecutive_failures": v.consecutive_failures,
                        }),
                    )
                })
                .collect();
            let (code, status) = match &condition {
                store::Condition::Healthy => (StatusCode::OK, "ok"),
                store::Condition::CannotWrite { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "store cannot write")
                }
                store::Condition::Corrupt { .. } => {
                    (StatusCode::SERVICE_UNAVAILABLE, "store damaged")
                }
            };
            let body = serde_json::json!({
                "status": status,
                "items": items,
                "sources": sources,
                "outbox": {"pending": outbox.pending, "failed": outbox.failed, "delivered": outbox.delivered},
                "store": store_json(&condition),
                "reload_error": s.live.reload_error(),
            });
            (code, axum::Json(body)).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": if condition.is_intact() { "store unavailable" } else { "store damaged" },
                "error": e,
                "store": store_json(&condition),
            })),
        )
            .into_response(),
    }
}

/// Prometheus / OpenMetrics text. The pending gauge is read from the store at scrape
/// time: the store is the truth.
async fn metrics(State(s): State<AppState>) -> Response {
    if let Ok(counts) = with_store(&s.store, |st| st.outbox_counts()).await {
        s.metrics.set_pending(counts.pending);
    }
    let mut r = s.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

/// Every feed in its three formats, with `?token=` when a token protects the server, so
/// a link copied into a reader works.
fn feed_links(s: &AppState) -> Vec<FeedLink> {
    let config = s.live.config();
    let token = s.token.read().ok().and_then(|t| t.clone());
    let suffix = token
        .map(|t| {
            format!(
                "?token={}",
                url::form_urlencoded::byte_serialize(t.expose().as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default();
    s.publisher
        .feeds()
        .chunks(3)
        .filter_map(|formats| {
            let rss = formats.iter().find(|f| f.format == FeedFormat::Rss)?;
            let url = |format: FeedFormat| {
                let id = FeedId {
                    scope: rss.scope.clone(),
                    format,
                };
                format!("{}{suffix}", s.publisher.url_of(&id))
            };
            Some(FeedLink {
                title: rss.title(&config.feed.title),
                rss: url(FeedFormat::Rss),
                atom: url(FeedFormat::Atom),
                json: url(FeedFormat::Json),
            })
        })
        .collect()
}

/// The status page: sources, newest items, rules with matches and failures, feeds.
async fn status_page(State(s): State<AppState>) -> Response {
    let config = s.live.config();
    let rules: Vec<String> = config
        .alerts
        .iter()
        .map(|r| r.name.get_ref().clone())
        .collect();
    let gathered = with_store(&s.store, move |st| {
        let items = st.items(ItemFilter::All, 30)?;
        let fetch = st.all_fetch_states()?;
        let outbox = st.outbox_counts()?;
        let failed = st.failed_deliveries(50)?;
        let mut matches = Vec::new();
        for rule in &rules {
            matches.push((rule.clone(), st.recent_matches(rule, 5)?));
        }
        Ok((items, fetch, outbox, failed, matches))
    })
    .await;
    let condition = s.health.condition();
    let store_problem = condition.problem().map(|problem| match condition {
        store::Condition::Corrupt { .. } => format!("{problem}. To repair: {}.", s.health.advice()),
        _ => problem,
    });
    let (items, fetch, outbox, failed, matches) = match gathered {
        Ok(g) => g,
        Err(e) => {
            tracing::error!(error = %e, "status page: store unavailable");
            let text = match &store_problem {
                Some(problem) => format!("store unavailable: {problem}\n"),
                None => "store unavailable\n".to_owned(),
            };
            return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
        }
    };
    let item_view = |i: &crate::store::StoredItem, when| ItemView {
        title: i.title.clone(),
        link: crate::feed::feed_link_for(i),
        source: i.source.clone(),
        when,
    };
    let view = StatusView {
        title: config.feed.title.clone(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        generated_at: chrono::Utc::now(),
        reload_error: s.live.reload_error(),
        store_problem,
        sources: source_views(&s, &fetch),
        items: items
            .iter()
            .map(|i| item_view(i, config.feed.date.of(i)))
            .collect(),
        rules: matches
            .into_iter()
            .map(|(rule, recent)| RuleView {
                failed: failed.iter().filter(|f| f.rule == rule).cloned().collect(),
                recent: recent.iter().map(|m| item_view(&m.item, m.at)).collect(),
                name: rule,
            })
            .collect(),
        outbox,
        feeds: feed_links(&s),
        opml_url: "/feeds.opml".to_owned(),
    };
    let mut r = status::render_status_page(&view).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// OPML 2.0 list of every feed, to subscribe a reader to all of them at once.
async fn opml(State(s): State<AppState>) -> Response {
    let title = s.live.config().feed.title.clone();
    let mut r = status::render_opml(&title, &feed_links(&s)).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/x-opml; charset=utf-8"),
    );
    r
}

/// The XSL stylesheet feeds reference, so a feed opened in a browser reads as a page.
async fn stylesheet() -> Response {
    let mut r = include_str!("../assets/feed.xsl").into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xsl; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=86400"),
    );
    r
}

/// Refuses requests without the configured token (bearer header or `?token=`), except
/// `/healthz`, which load balancers and systemd checks must reach.
async fn require_token(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let expected = s.token.read().ok().and_then(|t| t.clone());
    let Some(expected) = expected else {
        return next.run(request).await;
    };
    // Health checks must reach /healthz; the stylesheet is public and a browser
    // fetching it for a feed opened with `?token=` would not pass the token on.
    if matches!(request.uri().path(), "/healthz" | "/feed.xsl") {
        return next.run(request).await;
    }
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let from_query = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let presented = from_header.or(from_query);
    if presented.is_some_and(|p| constant_time_eq(p.as_bytes(), expected.expose().as_bytes())) {
        next.run(request).await
    } else {
        let mut r = (StatusCode::UNAUTHORIZED, "token required\n").into_response();
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"lookout\""),
        );
        r
    }
}

/// Compares secrets without an early exit, so timing does not reveal a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_lists_and_weak_forms_match() {
        assert!(etag_matches("\"abc\"", "\"abc\""));
        assert!(etag_matches("\"x\", W/\"abc\"", "\"abc\""));
        assert!(etag_matches("*", "\"abc\""));
        assert!(!etag_matches("\"abd\"", "\"abc\""));
    }

    #[test]
    fn feed_file_names_split_into_name_and_format() {
        assert_eq!(
            split_feed_file("drop.xml"),
            Some(("drop".into(), FeedFormat::Rss))
        );
        assert_eq!(
            split_feed_file("a.b.json"),
            Some(("a.b".into(), FeedFormat::Json))
        );
        assert_eq!(split_feed_file("drop"), None);
        assert_eq!(split_feed_file("drop.html"), None);
    }

    #[test]
    fn http_date_is_imf_fixdate() {
        let t = DateTime::parse_from_rfc3339("2026-11-25T08:09:10Z")
            .unwrap()
            .to_utc();
        assert_eq!(http_date(t), "Wed, 25 Nov 2026 08:09:10 GMT");
    }
}
