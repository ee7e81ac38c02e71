//! The HTTP server (axum): feeds with ETag / Last-Modified / 304 and gzip, health,
//! metrics and the status page.
//!
//! Feed bytes come from the [`Publisher`]'s memory; a conditional GET that matches is
//! answered 304 without touching the database.
//!
//! [`serve`] is the accept loop: anyone who can reach the port can open connections
//! before any token is checked, so it caps how many are open at once
//! ([`ConnectionLimits`], below the open-file limit) and closes a connection that has
//! not sent a request's headers within `header_timeout`, which also ends idle
//! keep-alive connections. `axum::serve` offers neither, so the loop drives hyper's
//! HTTP/1 connections itself.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::config::{Secret, ServerConfig};
use crate::daemon::interests::InterestStatus;
use crate::feed::FeedFormat;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::publish::{FeedId, FeedScope, Publisher, Rendered};
use crate::status::{
    self, FeedLink, ItemView, RuleView, SourceState, SourceView, SourcesSummary, StatusView,
};
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
    /// The interests: their models, and the form tokens of the status page's buttons.
    pub interests: Arc<crate::daemon::interests::Interests>,
}

/// Builds the router with every route and layer.
///
/// Feeds carry their own gzip form, made once per rendering (see [`conditional`]):
/// compressing a large feed again for every request let a few readers fill the CPU
/// (BENCHMARKS.md, issue 15). The other routes are small or rare and are compressed
/// per request by tower-http.
pub fn router(state: AppState) -> Router {
    let feeds = Router::new()
        .route("/feed.xml", get(all_rss))
        .route("/feed.atom", get(all_atom))
        .route("/feed.json", get(all_json))
        .route("/feeds/{file}", get(source_feed))
        .route("/alerts/{file}", get(rule_feed))
        .route("/interests/{file}", get(interest_feed));
    let others = Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/", get(status_page))
        .route("/feeds.opml", get(opml))
        .route("/feed.xsl", get(stylesheet))
        .route(
            "/interests/{name}/verdict",
            axum::routing::post(interest_verdict),
        )
        .layer(tower_http::compression::CompressionLayer::new());
    feeds
        .merge(others)
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

async fn all_rss(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve_feed(&s, FeedScope::All, FeedFormat::Rss, &headers).await
}
async fn all_atom(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve_feed(&s, FeedScope::All, FeedFormat::Atom, &headers).await
}
async fn all_json(State(s): State<AppState>, headers: HeaderMap) -> Response {
    serve_feed(&s, FeedScope::All, FeedFormat::Json, &headers).await
}

async fn source_feed(
    State(s): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match split_feed_file(&file) {
        Some((name, format)) => serve_feed(&s, FeedScope::Source(name), format, &headers).await,
        None => not_found(),
    }
}

async fn rule_feed(
    State(s): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match split_feed_file(&file) {
        Some((name, format)) => serve_feed(&s, FeedScope::Rule(name), format, &headers).await,
        None => not_found(),
    }
}

async fn interest_feed(
    State(s): State<AppState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    match split_feed_file(&file) {
        Some((name, format)) => serve_feed(&s, FeedScope::Interest(name), format, &headers).await,
        None => not_found(),
    }
}

/// The origins a browser reaches this server under: the base URL's, the listen
/// address's, and `localhost` for a loopback listen address. Anything else in a write's
/// `Host` or `Origin` is another site, even one whose name resolves to 127.0.0.1 (DNS
/// rebinding: such a page reads the status page, form token included, as its own).
fn own_origins(s: &AppState) -> Vec<String> {
    let config = s.live.config();
    let mut origins = Vec::with_capacity(3);
    for address in [
        config.server.base(),
        format!("http://{}", config.server.listen),
    ] {
        let Ok(url) = url::Url::parse(&address) else {
            continue;
        };
        origins.push(url.origin().ascii_serialization());
        let loopback = match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        };
        if loopback {
            let mut local = url.clone();
            if local.set_host(Some("localhost")).is_ok() {
                origins.push(local.origin().ascii_serialization());
            }
        }
    }
    origins
}

/// Why a write over HTTP comes from another site, if it does: a browser says so in
/// `Sec-Fetch-Site`, names the page's origin in `Origin`, and the name it resolved in
/// `Host`; the last two must be this server's ([`own_origins`]). A request with no
/// `Origin` or `Sec-Fetch-Site` (curl, a script) passes here if its `Host` is ours, and
/// still needs the page's form token.
fn cross_site(s: &AppState, headers: &HeaderMap) -> Option<&'static str> {
    if let Some(site) = headers.get("sec-fetch-site") {
        if !matches!(site.to_str(), Ok("same-origin" | "none")) {
            return Some("cross-site request refused (Sec-Fetch-Site)\n");
        }
    }
    let own = own_origins(s);
    let ours = |origin: &str| own.iter().any(|o| o.eq_ignore_ascii_case(origin));
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    // The base URL may name a proxy's host (https); the Host a proxy forwards is then
    // its own, matched through the base URL's origin with either scheme.
    let host_ours = host.is_some_and(|h| {
        ["http", "https"]
            .iter()
            .filter_map(|scheme| url::Url::parse(&format!("{scheme}://{h}")).ok())
            .any(|u| ours(&u.origin().ascii_serialization()))
    });
    if !host_ours {
        return Some("request for another host name refused (Host)\n");
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        if !ours(origin.to_str().unwrap_or("")) {
            return Some("cross-site request refused (Origin)\n");
        }
    }
    None
}

/// `POST /interests/{name}/verdict`: the status page's "like" and "not interested"
/// buttons (form fields `item`, `verdict` = `like`, `not_interested` or `clear`, and
/// `form_token`). lookout's one write over HTTP, so it is refused unless it comes from
/// the status page itself: same site (see [`cross_site`]) and with a form token this
/// daemon signed. The token, when configured, is checked before, as for every route.
async fn interest_verdict(
    State(s): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(why) = cross_site(&s, &headers) {
        return (StatusCode::FORBIDDEN, why).into_response();
    }
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(&body).into_owned().collect();
    if !form
        .get("form_token")
        .is_some_and(|t| s.interests.check_form_token(t))
    {
        return (
            StatusCode::FORBIDDEN,
            "form token missing or not this daemon's: load the status page again\n",
        )
            .into_response();
    }
    if s.interests.get(&name).is_none() {
        return (StatusCode::NOT_FOUND, "no such interest\n").into_response();
    }
    let Some(item) = form.get("item").and_then(|i| i.parse::<i64>().ok()) else {
        return (StatusCode::BAD_REQUEST, "`item` must be an item id\n").into_response();
    };
    let verdict = match form.get("verdict").map(String::as_str) {
        Some("clear") => None,
        Some(v) => match store::Verdict::parse(v) {
            Some(v) => Some(v),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    "`verdict` must be like, not_interested or clear\n",
                )
                    .into_response()
            }
        },
        None => return (StatusCode::BAD_REQUEST, "`verdict` is missing\n").into_response(),
    };
    let interest = name.clone();
    let done = with_store(&s.store, move |st| {
        st.set_verdict(&interest, item, verdict, chrono::Utc::now())
    })
    .await;
    match done {
        Ok(true) => {
            tracing::info!(interest = %name, item, verdict = verdict.map_or("clear", store::Verdict::as_str),
                "verdict recorded");
            s.interests.verdicts_changed();
            let back = format!("{}/{}#interest-{name}", path_prefix(&s), token_query(&s));
            let mut r = StatusCode::SEE_OTHER.into_response();
            if let Ok(location) = HeaderValue::from_str(&back) {
                r.headers_mut().insert(header::LOCATION, location);
            }
            r
        }
        Ok(false) => (StatusCode::NOT_FOUND, "no such item\n").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "cannot record a verdict");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response()
        }
    }
}

/// "drop.xml" -> ("drop", Rss).
fn split_feed_file(file: &str) -> Option<(String, FeedFormat)> {
    let (name, ext) = file.rsplit_once('.')?;
    Some((name.to_owned(), FeedFormat::from_extension(ext)?))
}

async fn serve_feed(
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

/// Answers 304 when the client's validators match, else the feed with its validators,
/// gzipped when the client takes gzip ([`accepts_gzip`]).
///
/// Each content coding is its own representation with its own strong ETag (the
/// identity one `"<hex>"`, the gzip one `"<hex>-gz"`, each made from its bytes), so
/// `If-None-Match` is compared with the ETag of the representation this request
/// would get: a client holding the gzip copy gets 304 for gzip and 200 for identity.
/// `Vary: Accept-Encoding` goes on 200 and 304 alike, so shared caches keep the two
/// apart.
fn conditional(rendered: &Rendered, headers: &HeaderMap) -> Response {
    let gzip = rendered.gzip.as_ref().filter(|_| accepts_gzip(headers));
    let (etag, etag_header, body) = match gzip {
        Some(g) => (&g.etag, &g.etag_header, &g.bytes),
        None => (&rendered.etag, &rendered.headers.etag, &rendered.bytes),
    };
    let fresh = match headers.get(header::IF_NONE_MATCH) {
        // If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        Some(inm) => inm.to_str().map(|v| etag_matches(v, etag)).unwrap_or(false),
        None => headers
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            // Every HTTP-date form a client may send (RFC 9110 5.6.7).
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| {
                rendered.last_modified.timestamp() <= DateTime::<Utc>::from(since).timestamp()
            }),
    };
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = body.clone().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(rendered.content_type),
        );
        if gzip.is_some() {
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        r
    };
    let h = response.headers_mut();
    if let Some(v) = etag_header {
        h.insert(header::ETAG, v.clone());
    }
    if let Some(v) = &rendered.headers.last_modified {
        h.insert(header::LAST_MODIFIED, v.clone());
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// Whether a request's `Accept-Encoding` takes gzip (RFC 9110 12.5.3): `gzip` (or
/// `x-gzip`) with a q-value above 0, or `*` above 0 when gzip is not named; and, when
/// the client names `identity`, gzip not ranked below it. `gzip;q=0` means no; a
/// q-value that does not parse counts as 0. No header means identity.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let (mut gzip, mut any, mut identity) = (None::<f32>, None::<f32>, None::<f32>);
    let codings = headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for coding in codings {
        let mut params = coding.split(';');
        let name = params.next().unwrap_or_default().trim();
        let q = params
            .find_map(|p| {
                let (key, value) = p.split_once('=')?;
                key.trim()
                    .eq_ignore_ascii_case("q")
                    .then(|| value.trim().parse::<f32>().ok().filter(|q| q.is_finite()))
            })
            .map_or(1.0, |q| q.unwrap_or(0.0).clamp(0.0, 1.0));
        let slot = if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if name == "*" {
            &mut any
        } else if name.eq_ignore_ascii_case("identity") {
            &mut identity
        } else {
            continue;
        };
        *slot = Some(slot.map_or(q, |seen| seen.max(q)));
    }
    let q = gzip.or(any).unwrap_or(0.0);
    q > 0.0 && identity.is_none_or(|identity| q >= identity)
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
    httpdate::fmt_http_date(t.into())
}

/// Runs a store query off the async workers.
async fn with_store<T: Send + 'static>(
    store: &SharedStore,
    f: impl FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    store::blocking(store, move |s| f(s)).await
}

/// Sources listed on one page of the status page.
const SOURCES_PER_PAGE: usize = 50;
/// Feeds the status page links (and announces for autodiscovery): one per source
/// would make a 3 MB page with 10,000 sources; the OPML list has them all.
const FEEDS_LISTED: usize = 50;
/// Sources `/healthz` lists one by one: all of them up to this many, else only those
/// that need attention, up to this many. With 10,000 sources a full list is a
/// megabyte of JSON on every health check.
const HEALTHZ_LISTED: usize = 100;

/// Every configured source, whatever its kind, judged by the one record the pipeline
/// keeps ([`crate::sources::SourceHealth`], looked up by name) and its latest page's
/// warnings: the one reading `/healthz`, the status page and `/metrics` share. In
/// config order.
fn judged_sources(state: &AppState) -> Vec<SourceView> {
    let config = state.live.config();
    config
        .sources
        .iter()
        .map(|s| {
            let name = s.name().to_owned();
            let h = state.live.source_health(&name);
            SourceView {
                kind: s.kind.name().into(),
                ok: h.ok(),
                last_success: h.last_success,
                last_error: h.last_error,
                last_error_at: h.last_error_at,
                consecutive_failures: h.consecutive_failures,
                warnings: state.live.source_warnings(&name),
                name,
            }
        })
        .collect()
}

/// The sources that need attention first (failing, then degraded), then the rest,
/// each group in config order: the order the status page pages through.
fn attention_first(mut views: Vec<SourceView>) -> Vec<SourceView> {
    views.sort_by_key(|v| v.state());
    views
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
            Ok((st.outbox_counts()?, st.item_count()?, replica_json(st)?))
        };
        read().inspect_err(|e| {
            health.failed(st, e);
        })
    })
    .await;
    // The probe may have found the store damaged.
    let condition = s.health.condition();
    match probe {
        Ok((outbox, items, replica)) => {
            let views = judged_sources(&s);
            let counts = SourcesSummary::count(&views);
            let all_listed = views.len() <= HEALTHZ_LISTED;
            let listed: Vec<SourceView> = if all_listed {
                views
            } else {
                views
                    .into_iter()
                    .filter(|v| v.state() != SourceState::Ok)
                    .take(HEALTHZ_LISTED)
                    .collect()
            };
            let sources: serde_json::Map<String, serde_json::Value> = listed
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
                            // The warnings' text may quote the page: only the status
                            // page, behind the token, shows it.
                            "degraded": !v.warnings.is_empty(),
                            "warnings": v.warnings.len(),
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
            let interests: serde_json::Map<String, serde_json::Value> = interest_figures(&s)
                .await
                .into_iter()
                .map(|(name, status, above)| {
                    let mut v = serde_json::to_value(status).unwrap_or_default();
                    v["items_above_threshold"] = above.into();
                    (name, v)
                })
                .collect();
            let body = serde_json::json!({
                "status": status,
                "items": items,
                "interests": interests,
                "sources": sources,
                "source_counts": {
                    "total": counts.total,
                    "ok": counts.ok,
                    "degraded": counts.degraded,
                    "failing": counts.failing,
                    // Whether `sources` lists every source, or (past HEALTHZ_LISTED of
                    // them) only the first failing and degraded ones.
                    "all_listed": all_listed,
                },
                "outbox": {"pending": outbox.pending, "failed": outbox.failed, "delivered": outbox.delivered},
                "store": store_json(&condition),
                "reload_error": s.live.reload_error(),
                "replica": replica,
            });
            (code, axum::Json(body)).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "status": if condition.is_intact() { "store unavailable" } else { "store damaged" },
                "error": crate::logging::Chain(&e).to_string(),
                "store": store_json(&condition),
            })),
        )
            .into_response(),
    }
}

/// This replica on `/healthz`: the store's kind, the replica's name in a shared store
/// (`null` on SQLite) and the HTTP sources it holds the leases of.
fn replica_json(st: &store::Store) -> Result<serde_json::Value, store::StoreError> {
    let name = st.replica();
    Ok(serde_json::json!({"store": st.kind(), "name": name, "leases": st.held_leases()?}))
}

/// Prometheus / OpenMetrics text. The pending gauge is read from the store at scrape
/// time: the store is the truth.
async fn metrics(State(s): State<AppState>) -> Response {
    // Set here, at scrape time, the only time the gauge is read.
    let counts = SourcesSummary::count(&judged_sources(&s));
    s.metrics
        .set_source_states(counts.ok, counts.degraded, counts.failing);
    let read = with_store(&s.store, |st| {
        let held = st.held_leases()?.len();
        Ok((
            st.outbox_counts()?,
            st.replica().map(str::to_owned),
            st.kind(),
            held,
        ))
    });
    if let Ok((counts, replica, kind, held)) = read.await {
        s.metrics.set_pending(counts.pending);
        s.metrics.set_replica(replica.as_deref(), kind, held);
    }
    let interests = interest_figures(&s).await;
    s.metrics.set_interests(
        interests
            .iter()
            .map(|(name, status, above)| (name.as_str(), status, *above)),
    );
    let mut r = s.metrics.encode().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    r
}

/// Every interest's name, status and feed size (its stored items at or above its
/// threshold, counted in the store; the last training's count if the store cannot
/// answer), for `/metrics` and `/healthz`.
async fn interest_figures(s: &AppState) -> Vec<(String, InterestStatus, u64)> {
    let mut figures = Vec::new();
    for interest in s.interests.all() {
        let name = interest.config().name().to_owned();
        let status = interest.status();
        let (n, min_score) = (name.clone(), interest.config().threshold());
        let above = with_store(&s.store, move |st| st.interest_count(&n, min_score))
            .await
            .unwrap_or(u64::try_from(status.feed_items).unwrap_or(u64::MAX));
        figures.push((name, status, above));
    }
    figures
}

/// The path `server.base_url` puts before every route: `/lookout` for
/// `https://host/lookout/`, empty without one. A proxy that serves lookout under a
/// prefix strips it, so a link the browser follows from the status page (a form's
/// action, a redirect, the OPML list) must carry it.
fn path_prefix(s: &AppState) -> String {
    s.live
        .config()
        .server
        .base_url
        .as_deref()
        .and_then(|b| url::Url::parse(b).ok())
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default()
}

/// `?token=…` when a token protects the server, else nothing: appended to every link
/// the status page and the OPML list give, so a link copied into a reader works.
fn token_query(s: &AppState) -> String {
    let token = s.token.read().ok().and_then(|t| t.clone());
    token
        .map(|t| {
            format!(
                "?token={}",
                url::form_urlencoded::byte_serialize(t.expose().as_bytes()).collect::<String>()
            )
        })
        .unwrap_or_default()
}

/// Every feed in its three formats, with the token query (see [`token_query`]).
fn feed_links(s: &AppState) -> Vec<FeedLink> {
    let config = s.live.config();
    let suffix = token_query(s);
    s.publisher
        .feeds()
        .iter()
        // One link per scope, named by its RSS feed; the other formats follow from it.
        .filter(|f| f.format == FeedFormat::Rss)
        .map(|rss| {
            let url = |format: FeedFormat| {
                let id = FeedId {
                    scope: rss.scope.clone(),
                    format,
                };
                format!("{}{suffix}", s.publisher.url_of(&id))
            };
            FeedLink {
                title: rss.title(&config.feed.title),
                rss: url(FeedFormat::Rss),
                atom: url(FeedFormat::Atom),
                json: url(FeedFormat::Json),
            }
        })
        .collect()
}

/// The status page: sources, newest items, rules with matches and failures, feeds.
async fn status_page(State(s): State<AppState>, Query(query): Query<StatusQuery>) -> Response {
    let config = s.live.config();
    let rules: Vec<String> = config
        .alerts
        .iter()
        .map(|r| r.name.get_ref().clone())
        .collect();
    let gathered = with_store(&s.store, move |st| {
        let items = st.items(ItemFilter::All, 30)?;
        let outbox = st.outbox_counts()?;
        let failed = st.failed_deliveries(50)?;
        let mut matches = Vec::new();
        for rule in &rules {
            matches.push((rule.clone(), st.recent_matches(rule, 5)?));
        }
        let held = st.held_leases()?.len();
        let replica = st
            .replica()
            .map(|name| format!("replica {name} on PostgreSQL, leasing {held} sources"));
        Ok((items, outbox, failed, matches, replica))
    })
    .await;
    let condition = s.health.condition();
    let store_problem = condition.problem().map(|problem| match condition {
        store::Condition::Corrupt { .. } => format!("{problem}. To repair: {}.", s.health.advice()),
        _ => problem,
    });
    let (items, outbox, failed, matches, replica) = match gathered {
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
    let (sources, sources_summary) = sources_page(&s, query.page.unwrap_or(1));
    let feeds = feed_links(&s);
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
        replica,
        sources,
        sources_summary,
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
        more_feeds: feeds.len().saturating_sub(FEEDS_LISTED),
        feeds: feeds.into_iter().take(FEEDS_LISTED).collect(),
        opml_url: format!("{}/feeds.opml{}", path_prefix(&s), token_query(&s)),
    };
    let interests = interest_views(&s).await;
    let form_token = s.interests.form_token();
    let mut r = status::render_status_page_with(&view, &interests, &form_token).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// Every interest with its model's state and its newest items at or above its
/// threshold, each with what the user said of it. A store that cannot answer shows
/// the interests without items.
async fn interest_views(s: &AppState) -> Vec<status::InterestView> {
    const SHOWN: usize = 20;
    let suffix = token_query(s);
    let prefix = path_prefix(s);
    let mut views = Vec::new();
    for interest in s.interests.all() {
        let config = interest.config().clone();
        let name = config.name().to_owned();
        let min_score = config.threshold();
        let listed = {
            let name = name.clone();
            with_store(&s.store, move |st| {
                let verdicts: std::collections::HashMap<i64, store::Verdict> =
                    st.verdicts(&name)?.into_iter().collect();
                let newest = st.items(ItemFilter::All, SHOWN)?;
                Ok((
                    st.interest_items(&name, min_score, SHOWN)?,
                    verdicts,
                    newest,
                ))
            })
            .await
        };
        let (items, verdicts, newest) = listed.unwrap_or_default();
        // The newest papers below the threshold, scored by the model in force, so a
        // paper the interest misses can be liked too.
        let model = interest.model();
        let others: Vec<status::ScoredView> = newest
            .into_iter()
            .filter(|i| !items.iter().any(|s| s.item.id == i.id))
            .filter_map(|item| {
                let doc = crate::alert::interest::Doc {
                    title: &item.title,
                    summary: &item.summary,
                };
                let model = model.as_ref()?;
                Some(status::ScoredView {
                    id: item.id,
                    link: crate::feed::feed_link_for(&item),
                    verdict: verdicts.get(&item.id).map(|v| v.as_str().to_owned()),
                    score: model.score(&doc),
                    terms: model
                        .explain(&doc, crate::daemon::interests::TERMS)
                        .into_iter()
                        .map(|(t, _)| t)
                        .collect(),
                    title: item.title,
                })
            })
            .collect();
        let model = interest.status();
        views.push(status::InterestView {
            action: format!("{prefix}/interests/{name}/verdict{suffix}"),
            min_score,
            positives: model.positives,
            matched: model.matched,
            vocabulary: model.vocabulary,
            trained_at: model.trained_at,
            error: model.error,
            items: items
                .into_iter()
                .map(|scored| status::ScoredView {
                    id: scored.item.id,
                    link: crate::feed::feed_link_for(&scored.item),
                    verdict: verdicts.get(&scored.item.id).map(|v| v.as_str().to_owned()),
                    title: scored.item.title,
                    score: scored.score,
                    terms: scored.terms.into_iter().map(|(t, _)| t).collect(),
                })
                .collect(),
            others,
            name,
        });
    }
    views
}

/// The status page's query: which page of sources to list (from 1).
#[derive(Debug, serde::Deserialize)]
struct StatusQuery {
    page: Option<usize>,
}

/// One page of sources, needing attention first, and the summary of all of them with
/// the links to the pages around it.
fn sources_page(s: &AppState, page: usize) -> (Vec<SourceView>, SourcesSummary) {
    let views = attention_first(judged_sources(s));
    let mut summary = SourcesSummary::count(&views);
    let pages = views.len().div_ceil(SOURCES_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    // The base_url's path and the token query, if any, go along:
    // `/prefix/?token=...&page=N`.
    let (prefix, token) = (path_prefix(s), token_query(s));
    let link = |n: usize| {
        if token.is_empty() {
            format!("{prefix}/?page={n}")
        } else {
            format!("{prefix}/{token}&page={n}")
        }
    };
    summary.page = page;
    summary.pages = pages;
    summary.prev = (page > 1).then(|| link(page - 1));
    summary.next = (page < pages).then(|| link(page + 1));
    let shown = views
        .into_iter()
        .skip((page - 1) * SOURCES_PER_PAGE)
        .take(SOURCES_PER_PAGE)
        .collect();
    (shown, summary)
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
        .and_then(bearer_token)
        .map(str::to_owned);
    let from_query = request.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    let presented = from_header.or(from_query);
    if presented.is_some_and(|p| token_matches(&p, expected.expose())) {
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

/// The credentials of an `Authorization: Bearer <token>` value. The scheme name is
/// case-insensitive (RFC 9110 11.1), so `bearer` and `BEARER` count too.
pub(crate) fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("Bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Compares the presented token with the expected one in constant time. Both are
/// hashed first, so the comparison runs over 32 bytes whatever their lengths: neither
/// a prefix nor the length of the token shows in the timing.
pub(crate) fn token_matches(presented: &str, expected: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let presented = Sha256::digest(presented.as_bytes());
    let expected = Sha256::digest(expected.as_bytes());
    presented.as_slice().ct_eq(expected.as_slice()).into()
}

/// File descriptors kept back from client connections at the least: the store (its
/// database, WAL and shared memory), the drop folders and their watches, outgoing
/// fetches and deliveries, the log.
const FD_RESERVE: u64 = 256;
/// The derived connection cap never goes above this, whatever the open-file limit: an
/// idle connection costs buffers, and this many readers is far past one machine's use.
const MAX_DERIVED_CONNECTIONS: u64 = 16_384;
/// The open-file soft limit asked for at start, when the hard limit allows it.
const WANTED_OPEN_FILES: u64 = 1 << 20;
/// How long connections get to finish their response at shutdown before being cut.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Wait after the process ran out of descriptors (or memory) in `accept`, so the loop
/// does not spin while connections close.
const ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How many connections the server keeps open and how long it waits for a request, so
/// clients without a token cannot take the file descriptors the rest of the daemon
/// needs, nor hold a connection without sending a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Most connections open at once. Past it the server stops accepting; further
    /// clients wait in the kernel's listen backlog until a connection closes.
    pub max_connections: usize,
    /// Longest wait for a request's headers, counted from when the connection is
    /// ready for a request: it closes half-sent requests and idle keep-alive
    /// connections alike.
    pub header_timeout: Duration,
}

impl ConnectionLimits {
    /// The limits `[server]` asks for. Raises the open-file soft limit to the hard
    /// limit first (systemd's default soft limit is 1024, its hard limit far higher),
    /// then derives `max_connections`, when not configured, as that limit less a
    /// reserve of a quarter (at least [`FD_RESERVE`]), capped at 16,384.
    pub fn from_config(server: &ServerConfig) -> ConnectionLimits {
        let open_files = match rlimit::increase_nofile_limit(WANTED_OPEN_FILES) {
            Ok(limit) => Some(limit),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read or raise the open-file limit");
                rlimit::getrlimit(rlimit::Resource::NOFILE)
                    .ok()
                    .map(|(soft, _)| soft)
            }
        };
        let budget = open_files.map(connection_budget);
        let max_connections = match (server.max_connections, budget) {
            (Some(wanted), Some(budget)) if wanted as u64 > budget => {
                tracing::warn!(
                    max_connections = wanted,
                    open_file_limit = open_files.unwrap_or_default(),
                    "max_connections leaves too few file descriptors for the store and \
                     the drop folders; a flood of connections can make them fail"
                );
                wanted
            }
            (Some(wanted), _) => wanted,
            (None, Some(budget)) => usize::try_from(budget).unwrap_or(usize::MAX),
            (None, None) => 512,
        };
        let limits = ConnectionLimits {
            max_connections,
            header_timeout: server.header_timeout.0,
        };
        tracing::info!(
            max_connections,
            header_timeout = %humantime::format_duration(limits.header_timeout),
            open_file_limit = open_files.unwrap_or_default(),
            "server connection limits"
        );
        limits
    }
}

/// Connections allowed under an open-file limit of `open_files`.
fn connection_budget(open_files: u64) -> u64 {
    let reserve = (open_files / 4).max(FD_RESERVE);
    open_files
        .saturating_sub(reserve)
        .clamp(1, MAX_DERIVED_CONNECTIONS)
}

/// Length of the listen backlog asked for (the kernel caps it at `net.core.somaxconn`).
/// tokio's `bind` asks for 1024; a burst of new connections larger than that, while the
/// accept loop waits for a CPU, has the kernel drop SYNs, and each dropped client waits
/// a second to retry.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds the server's listening socket, with a listen backlog of 4096.
pub fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As std and tokio do on Unix: a restart may rebind while old connections linger
    // in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `shutdown` resolves, within `limits`; then lets
/// open connections finish their response (up to two seconds) and returns. Fails only
/// when the listening socket itself is unusable; a failed connection is its own
/// business, and running out of file descriptors pauses accepting for a second.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    // A permit per open connection. Semaphore permits are counted in u32 for
    // `acquire_many`, which the drain at the end uses.
    let slots = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let open = Arc::new(tokio::sync::Semaphore::new(slots as usize));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let result = loop {
        // Waiting for a slot before accepting leaves the excess in the listen backlog,
        // where it costs this process no descriptor.
        let permit = tokio::select! {
            () = &mut shutdown => break Ok(()),
            permit = Arc::clone(&open).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break Ok(()), // never closed
            },
        };
        let accepted = tokio::select! {
            () = &mut shutdown => break Ok(()),
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                tokio::spawn(serve_connection(
                    stream,
                    app.clone(),
                    limits.header_timeout,
                    stopped.clone(),
                    permit,
                ));
            }
            Err(e) => match accept_error(&e) {
                AcceptError::Connection => {
                    tracing::debug!(error = %e, "accept: connection failed before it was taken");
                }
                AcceptError::Resources => {
                    tracing::error!(error = %e, "accept: out of file descriptors or memory; \
                        pausing {ACCEPT_BACKOFF:?}");
                    tokio::select! {
                        () = &mut shutdown => break Ok(()),
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
                AcceptError::Listener => break Err(e),
            },
        }
    };
    drop(listener);
    let _ = stop.send(true);
    // Every connection holds a permit until it ends: all permits back means all closed.
    let _ = open.acquire_many(slots).await;
    result
}

/// What an `accept` error means for the loop.
enum AcceptError {
    /// One connection failed (reset or aborted before it was taken): go on.
    Connection,
    /// The process or system is out of descriptors or memory: pause, then go on.
    Resources,
    /// The listening socket itself is broken: stop serving.
    Listener,
}

fn accept_error(e: &std::io::Error) -> AcceptError {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => AcceptError::Resources,
        Some(libc::EBADF | libc::EINVAL | libc::ENOTSOCK | libc::EOPNOTSUPP | libc::EFAULT) => {
            AcceptError::Listener
        }
        _ => AcceptError::Connection,
    }
}

/// One client connection, HTTP/1.1 with keep-alive, until it closes, its header
/// timeout fires or the server stops. Holds its slot (`_permit`) until it ends.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    header_timeout: Duration,
    mut stopped: tokio::sync::watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut builder = hyper::server::conn::http1::Builder::new();
    // hyper starts this timer whenever it waits for a request head: on a new
    // connection, and again after each response on a kept-alive one.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let service = hyper_util::service::TowerToHyperService::new(app);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let stop = async move {
        // The guard `wait_for` returns is not Send: drop it here.
        let _ = stopped.wait_for(|stop| *stop).await.map(|_| ());
    };
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = stop => {
            // Ends an idle connection at once, a busy one after its response.
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => return,
            }
        }
    };
    // Header timeouts, resets and clients that leave: expected on any server, and a
    // flood of them must not flood the log.
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection closed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  a b"), Some("a b"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }

    #[test]
    fn tokens_of_any_length_compare_by_digest() {
        assert!(token_matches("s3cret t0ken", "s3cret t0ken"));
        assert!(!token_matches("s3cret t0ke", "s3cret t0ken"));
        assert!(!token_matches("", "s3cret t0ken"));
        assert!(!token_matches("s3cret t0ken and more", "s3cret t0ken"));
    }

    #[test]
    fn connection_budget_keeps_a_reserve_and_a_ceiling() {
        assert_eq!(connection_budget(1024), 768);
        assert_eq!(connection_budget(300), 44);
        assert_eq!(connection_budget(100), 1);
        assert_eq!(connection_budget(20_000), 15_000);
        assert_eq!(connection_budget(1 << 20), MAX_DERIVED_CONNECTIONS);
    }

    fn accept(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_str(value).unwrap(),
        );
        h
    }

    #[test]
    fn gzip_is_taken_by_name_or_star_with_a_q_above_zero() {
        for yes in [
            "gzip",
            "GZIP",
            "x-gzip",
            "gzip, deflate, br",
            "deflate, gzip;q=0.5",
            "*",
            "br;q=1, *;q=0.1",
            "gzip;q=0.5, identity;q=0.5",
            "gzip ; Q=1.0",
        ] {
            assert!(accepts_gzip(&accept(yes)), "{yes}");
        }
        for no in [
            "identity",
            "br, deflate",
            "gzip;q=0",
            "gzip;q=0.000",
            "gzip;q=0, *",
            "*;q=0",
            "gzip;q=abc",
            "gzip;q=0.2, identity;q=0.9",
            "",
        ] {
            assert!(!accepts_gzip(&accept(no)), "{no}");
        }
        assert!(!accepts_gzip(&HeaderMap::new()), "no header");
        let mut two = accept("br");
        two.append(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        assert!(accepts_gzip(&two), "across header lines");
    }

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
