//! `POST /captures/<source>`: a capture sent to any replica over HTTP, for a load
//! balancer in front of several, taken exactly as a file dropped into that source's
//! folder: the same pipeline, the same duplicate rule (the same bytes are ingested
//! once) and the same refusals, answered in the status code instead of a filing.
//!
//! It writes, so it asks more than the read-only routes: the access token is required
//! (a server without one refuses every capture), it comes in the `Authorization`
//! header only (a `?token=` in a link or a form could be replayed by another site), a
//! browser's cross-site request is refused, and the body is held to the source's
//! `max_file_size`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::Utc;
use tokio::sync::{mpsc, oneshot};

use crate::config::Secret;
use crate::live::Live;
use crate::server::{bearer_token, token_matches};
use crate::sources::{content_hash, Capture, Outcome, Page, Report};
use crate::store::StoreHealth;

/// What the capture route needs from the daemon.
#[derive(Clone)]
pub struct CaptureState {
    /// The pipeline's report channel, held weakly: the pipeline ends when the sources
    /// stop, without waiting for the server (a request in flight holds it strongly).
    pub pages: mpsc::WeakSender<Report>,
    /// The access token in force (reloadable).
    pub token: Arc<RwLock<Option<Secret>>>,
    /// The config in force: which sources take captures, and their size limits.
    pub live: Arc<Live>,
    /// The store's condition: a capture waits for its outcome only while the store
    /// can write.
    pub health: StoreHealth,
}

/// How long a capture waits for its outcome once the store is known unable to write,
/// before it is answered 503: the pipeline holds pages the store cannot take, for as
/// long as the outage lasts, and a client (or the load balancer in front) must not
/// wait that long. Long enough for a store that just came back to take the page.
const WAIT_WHILE_STORE_DOWN: Duration = Duration::from_secs(2);

/// What the 503 of a capture the store cannot take now tells the client to wait.
const RETRY_AFTER_SECONDS: &str = "30";

/// Ends once the store has been unable to write for [`WAIT_WHILE_STORE_DOWN`] while
/// the capture waited; never while it writes.
async fn store_stays_down(health: &StoreHealth) {
    let mut condition = health.subscribe();
    loop {
        if condition.wait_for(|c| !c.is_healthy()).await.is_err() {
            // The record is gone (the daemon is stopping): the outcome will tell.
            return std::future::pending().await;
        }
        tokio::time::sleep(WAIT_WHILE_STORE_DOWN).await;
        if !health.condition().is_healthy() {
            return;
        }
    }
}

/// The 503 of a capture the store cannot take now.
fn store_unavailable(body: String) -> Response {
    let mut r = text(StatusCode::SERVICE_UNAVAILABLE, body);
    r.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from_static(RETRY_AFTER_SECONDS),
    );
    r
}

/// The route, to merge into the server's router (it checks its own token).
pub fn router(state: CaptureState) -> Router {
    Router::new()
        .route("/captures/{source}", post(capture))
        .with_state(state)
}

/// A response with a one-line text body.
fn text(code: StatusCode, body: impl Into<String>) -> Response {
    let mut body = body.into();
    body.push('\n');
    (code, body).into_response()
}

/// Whether a browser says this request comes from another site: `Sec-Fetch-Site`
/// other than same-origin or none (typed by the user), or an `Origin` that is not this
/// server's own.
fn cross_site(headers: &HeaderMap) -> bool {
    let value = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = value(header::HeaderName::from_static("sec-fetch-site")) {
        return !matches!(site, "same-origin" | "none");
    }
    match (value(header::ORIGIN), value(header::HOST)) {
        (None, _) => false,
        (Some(origin), Some(host)) => url::Url::parse(origin).ok().is_none_or(|o| {
            let port = o.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{}{port}", o.host_str().unwrap_or_default()) != host
        }),
        (Some(_), None) => true,
    }
}

async fn capture(
    State(s): State<CaptureState>,
    Path(source): Path<String>,
    request: Request,
) -> Response {
    let expected = s.token.read().ok().and_then(|t| t.clone());
    let Some(expected) = expected else {
        return text(
            StatusCode::FORBIDDEN,
            "captures over HTTP need [server] token to be configured",
        );
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    if !presented.is_some_and(|p| token_matches(p, expected.expose())) {
        let mut r = text(StatusCode::UNAUTHORIZED, "token required");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer realm=\"lookout\""),
        );
        return r;
    }
    if cross_site(request.headers()) {
        return text(StatusCode::FORBIDDEN, "cross-site capture refused");
    }
    let config = s.live.config();
    let Some((format, limit)) = config.source(&source).and_then(|c| {
        c.folder()
            .map(|f| (c.format.get_ref().clone(), f.max_file_size))
    }) else {
        return text(StatusCode::NOT_FOUND, "no folder source of that name");
    };
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let Ok(body) = axum::body::to_bytes(request.into_body(), limit).await else {
        return text(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a capture is at most {limit} bytes (the source's max_file_size)"),
        );
    };
    let page = Page {
        origin: format!("POST /captures/{source}"),
        source: source.clone(),
        content_hash: content_hash(&body),
        body: body.to_vec(),
        content_type,
        url: None,
        captured_at: Utc::now(),
        format,
        // As a dropped file: sent on purpose, so new items alert.
        baseline: false,
    };
    let (reply, outcome) = oneshot::channel();
    let Some(pages) = s.pages.upgrade() else {
        return text(StatusCode::SERVICE_UNAVAILABLE, "lookout is stopping");
    };
    let sent = pages
        .send(Report::Page(Capture {
            page,
            reply,
            validators: None,
        }))
        .await;
    drop(pages);
    if sent.is_err() {
        return text(StatusCode::SERVICE_UNAVAILABLE, "lookout is stopping");
    }
    let outcome = tokio::select! {
        outcome = outcome => outcome.ok(),
        () = store_stays_down(&s.health) => {
            // The pipeline holds the page until the store can take it, and stores it
            // then: not withdrawn, so a client that gave up on the 503 loses nothing,
            // and its retry of the same bytes is answered 200 `duplicate` (or 503
            // again while the store is still down).
            let problem = s.health.condition().problem().unwrap_or_default();
            // The outage itself is logged once, by the store's health record.
            tracing::debug!(%source, %problem, "capture sent over HTTP answered 503: the store cannot write");
            return store_unavailable(format!(
                "not stored yet: {problem}; send it again later"
            ));
        }
    };
    match outcome {
        Some(Outcome::Ingested { format, report }) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({
                "format": format,
                "new": report.new,
                "updated": report.updated,
                "unchanged": report.unchanged,
                "queued": report.queued,
            })),
        )
            .into_response(),
        Some(Outcome::Duplicate) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"duplicate": true})),
        )
            .into_response(),
        Some(Outcome::Failed { error }) => {
            text(StatusCode::UNPROCESSABLE_ENTITY, error.to_string())
        }
        Some(Outcome::Deferred { error }) => {
            tracing::warn!(%source, %error, "capture sent over HTTP not stored; the sender is told to retry");
            store_unavailable(error.to_string())
        }
        None => text(StatusCode::SERVICE_UNAVAILABLE, "lookout is stopping"),
    }
}
