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

use crate::config::Secret;
use crate::publish::{FeedFormat, FeedId, FeedScope, Publisher, Rendered};
use crate::store::SharedStore;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// Rendered feeds.
    pub publisher: Arc<Publisher>,
    /// The store, for health and the status page.
    pub store: SharedStore,
    /// Access token; `None` leaves the server open (it listens on loopback by default).
    pub token: Arc<RwLock<Option<Secret>>>,
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
    match state.publisher.get(&id).await {
        Ok(Some(rendered)) => conditional(&rendered, headers),
        Ok(None) => not_found(),
        Err(e) => {
            tracing::error!(error = %e, "cannot render feed");
            (StatusCode::INTERNAL_SERVER_ERROR, "feed unavailable\n").into_response()
        }
    }
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such feed\n").into_response()
}

/// Answers 304 when the client's validators match, else the feed with its validators.
fn conditional(rendered: &Rendered, headers: &HeaderMap) -> Response {
    let last_modified = http_date(rendered.last_modified);
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
    if let Ok(v) = HeaderValue::from_str(&rendered.etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        h.insert(header::LAST_MODIFIED, v);
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

async fn healthz(State(s): State<AppState>) -> Response {
    let store = s.store.clone();
    let ok = tokio::task::spawn_blocking(move || crate::store::lock(&store).generation().is_ok())
        .await
        .unwrap_or(false);
    if ok {
        (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok"})),
        )
            .into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({"status": "store unavailable"})),
        )
            .into_response()
    }
}

/// Refuses requests without the configured token (bearer header or `?token=`), except
/// `/healthz`, which load balancers and systemd checks must reach.
async fn require_token(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let expected = s.token.read().ok().and_then(|t| t.clone());
    let Some(expected) = expected else {
        return next.run(request).await;
    };
    if request.uri().path() == "/healthz" {
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
