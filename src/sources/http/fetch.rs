//! One HTTP exchange: the client, the conditional GET, the streamed body under a size
//! limit, and errors that say what was fetched and what went wrong.
//!
//! Redirects are followed here, not by reqwest: reqwest strips only `Authorization`
//! (and cookies) when a redirect leaves the host, and sends a `Referer` holding the
//! URL it came from, while a source's configured headers (`X-Api-Key`, ...) are as
//! secret as `Authorization`. So each hop is its own request, the configured headers go
//! only to the origin (scheme, host and port) of the configured URL, no `Referer` is
//! ever sent, and a redirect to anything but http or https is refused by name.

use std::error::Error as StdError;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{redirect, StatusCode};
use url::Url;

use super::HttpSourceConfig;
use crate::config::{Secret, SourceUrl, DEFAULT_MAX_SIZE};

/// The User-Agent sent when the config names none.
pub const DEFAULT_USER_AGENT: &str = concat!("lookout/", env!("CARGO_PKG_VERSION"));

/// Why a fetch failed. Every message names what was fetched, once, e.g.
/// `GET http://example.org/list: timed out after 30s`: the URL is kept in one place
/// ([`HttpError::Fetch`]) and the [`FetchFailure`] says what went wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HttpError {
    /// The source config cannot make a client (bad URL, bad header name or value).
    #[error("source {source_name:?}: {reason}")]
    Config {
        /// The source.
        source_name: String,
        /// What is wrong; header values are never included.
        reason: String,
    },
    /// A GET failed.
    #[error("GET {url}: {failure}")]
    Fetch {
        /// The URL requested, as it may be shown (secrets put back as `${NAME}`).
        url: String,
        /// What went wrong.
        failure: FetchFailure,
    },
}

/// What went wrong with a GET (the URL is in [`HttpError::Fetch`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchFailure {
    /// No connection could be made (refused, DNS, TLS, or the connect timeout).
    #[error("cannot connect: {reason}")]
    Connect {
        /// Why, with its causes in one line.
        reason: String,
    },
    /// The whole exchange took longer than the total timeout.
    #[error("timed out after {}", human(.after))]
    Timeout {
        /// The configured total timeout.
        after: Duration,
    },
    /// A redirect led back to a URL already visited.
    #[error("redirect loop at {at}")]
    RedirectLoop {
        /// The URL that was about to be visited twice.
        at: String,
    },
    /// More redirects than allowed.
    #[error("more than {max} redirects")]
    TooManyRedirects {
        /// The configured maximum.
        max: usize,
    },
    /// A redirect pointed at a scheme other than http or https (`file:`, `ftp:`, ...).
    #[error("redirect to a {scheme}: URL refused (only http and https are followed)")]
    SchemeRefused {
        /// The scheme of the redirect's target.
        scheme: String,
    },
    /// The server answered with an error (or unexpected) status.
    #[error("HTTP {status}{}", retry_note(.retry_after))]
    Status {
        /// The status code.
        status: u16,
        /// The server's `Retry-After` (429 and 503 only), parsed.
        retry_after: Option<Duration>,
    },
    /// The body, counted after decompression, is larger than allowed.
    #[error("body exceeds {limit} bytes")]
    TooLarge {
        /// The configured `max_body_size`.
        limit: u64,
    },
    /// The exchange failed in another way (connection reset, bad encoding, ...).
    #[error("{reason}")]
    Transfer {
        /// Why, with its causes in one line.
        reason: String,
    },
}

impl HttpError {
    /// The wait the server asked for with `Retry-After` on a 429 or 503.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            HttpError::Fetch {
                failure: FetchFailure::Status { retry_after, .. },
                ..
            } => *retry_after,
            _ => None,
        }
    }

    /// What went wrong with the GET; `None` for a config error.
    pub fn failure(&self) -> Option<&FetchFailure> {
        match self {
            HttpError::Fetch { failure, .. } => Some(failure),
            HttpError::Config { .. } => None,
        }
    }
}

fn fail(url: impl Into<String>, failure: FetchFailure) -> HttpError {
    HttpError::Fetch {
        url: url.into(),
        failure,
    }
}

fn human(d: &Duration) -> humantime::FormattedDuration {
    humantime::format_duration(*d)
}

fn retry_note(retry_after: &Option<Duration>) -> String {
    match retry_after {
        Some(d) => format!(" (Retry-After {})", human(d)),
        None => String::new(),
    }
}

/// Transport limits of one fetch: what a source config says, or defaults for a
/// one-off preview (`lookout parse URL`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a connection.
    pub connect_timeout: Duration,
    /// Longest whole exchange, body included.
    pub timeout: Duration,
    /// Largest body, counted after decompression.
    pub max_body_size: u64,
    /// Most redirects followed.
    pub max_redirects: usize,
    /// The User-Agent header.
    pub user_agent: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(60),
            max_body_size: DEFAULT_MAX_SIZE,
            max_redirects: 5,
            user_agent: DEFAULT_USER_AGENT.to_owned(),
        }
    }
}

impl Limits {
    /// The limits a source config asks for.
    pub fn from_source(cfg: &HttpSourceConfig) -> Self {
        Limits {
            connect_timeout: cfg.connect_timeout.0,
            timeout: cfg.timeout.0,
            max_body_size: cfg.max_body_size,
            max_redirects: cfg.max_redirects,
            user_agent: cfg
                .user_agent
                .clone()
                .unwrap_or_else(|| DEFAULT_USER_AGENT.to_owned()),
        }
    }
}

/// A fetched page, for previews.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The body, decompressed.
    pub body: Vec<u8>,
    /// The `Content-Type` header, when sent.
    pub content_type: Option<String>,
    /// The URL the body came from, after redirects.
    pub url: Url,
}

/// Fetches one URL once, unconditionally, under `limits`: what `lookout parse URL`
/// previews. No host gate and no store are involved.
pub async fn fetch_url(url: &Url, limits: &Limits) -> Result<Fetched, HttpError> {
    let client = build_client(url.as_str(), limits, &Default::default(), None)?;
    match get(&client, url, limits, &Validators::default()).await? {
        Response::Page(page) => Ok(Fetched {
            body: page.body,
            content_type: page.content_type,
            url: page.url,
        }),
        // Without validators a server has no business answering 304.
        Response::NotModified => Err(fail(
            url.as_str(),
            FetchFailure::Status {
                status: 304,
                retry_after: None,
            },
        )),
    }
}

/// What one source sends with every request: a client shared with the other sources
/// that agree on its client-level settings, plus its own headers, and the source's URL
/// as configured, to show URLs without the secrets expanded into them.
#[derive(Clone)]
pub(crate) struct SourceClient {
    http: reqwest::Client,
    headers: HeaderMap,
    url: Option<SourceUrl>,
}

impl SourceClient {
    /// `url` as it may be shown: with the values of the source URL's `${NAME}`
    /// references put back as references.
    pub(crate) fn show(&self, url: &Url) -> String {
        match &self.url {
            Some(configured) => configured.redact(url.as_str()),
            None => url.to_string(),
        }
    }
}

/// Builds a source's client: its configured headers (checked here, so a bad one is a
/// config error at start) over a shared [`reqwest::Client`]. `url` is the source's
/// configured URL, whose secrets [`SourceClient::show`] hides.
pub(crate) fn build_client(
    name: &str,
    limits: &Limits,
    headers: &std::collections::BTreeMap<String, Secret>,
    url: Option<&SourceUrl>,
) -> Result<SourceClient, HttpError> {
    let config_error = |reason: String| HttpError::Config {
        source_name: name.to_owned(),
        reason,
    };
    let map = crate::config::header_map(headers).map_err(|e| config_error(e.to_string()))?;
    HeaderValue::from_str(&limits.user_agent)
        .map_err(|_| config_error("invalid user_agent".to_owned()))?;
    Ok(SourceClient {
        http: shared_client(limits.connect_timeout)
            .map_err(|e| config_error(format!("cannot build HTTP client: {}", chain(&e))))?,
        headers: map,
        url: url.cloned(),
    })
}

/// Idle connections kept per host: a few, for a burst of sources on one site.
const POOL_IDLE_PER_HOST: usize = 4;
/// How long an idle connection is kept.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// One [`reqwest::Client`] per connect timeout. Building a client used to load the
/// system's trust store, about 150 PEM certificates: measured, that was most of the
/// time of a `lookout once` over ten sources when every source built its own (the
/// store now loads on the first TLS handshake, see `tls.rs`). Shared clients also
/// share their connection pools. Everything else (total timeout, User-Agent, headers,
/// redirects) is per request.
fn shared_client(connect_timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    type Clients = std::collections::HashMap<std::time::Duration, reqwest::Client>;
    static CLIENTS: std::sync::OnceLock<std::sync::Mutex<Clients>> = std::sync::OnceLock::new();
    let mut clients = CLIENTS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(client) = clients.get(&connect_timeout) {
        return Ok(client.clone());
    }
    let mut builder = reqwest::Client::builder();
    // It cannot fail with the built-in crypto provider; reqwest's own TLS setup (which
    // loads the trust store now) would be the fallback.
    if let Ok(tls) = super::tls::client_config() {
        builder = builder.tls_backend_preconfigured(tls);
    }
    let client = builder
        .connect_timeout(connect_timeout)
        // [`get`] follows redirects itself (see the module docs).
        .redirect(redirect::Policy::none())
        .referer(false)
        .gzip(true)
        .brotli(true)
        // Bounded idle connections: sources come due minutes apart, so a connection
        // idle for longer than a burst of fetches to its host is not reused; with
        // thousands of hosts, keeping them would hold thousands of sockets.
        .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .build()?;
    clients.insert(connect_timeout, client.clone());
    Ok(client)
}

pub(crate) use crate::sources::Validators;

/// What one GET produced.
#[derive(Debug)]
pub(crate) enum Response {
    /// 304: the page has not changed since the validators were issued.
    NotModified,
    /// A new page.
    Page(Body),
}

/// A 2xx response, read whole.
#[derive(Debug)]
pub(crate) struct Body {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// Final URL after redirects.
    pub url: Url,
    /// When the response arrived: the page's reference time.
    pub fetched_at: DateTime<Utc>,
    pub validators: Validators,
}

/// One conditional GET of `url`, redirects followed (at most `limits.max_redirects`,
/// all within `limits.timeout`), body read under `limits.max_body_size`.
pub(crate) async fn get(
    client: &SourceClient,
    url: &Url,
    limits: &Limits,
    validators: &Validators,
) -> Result<Response, HttpError> {
    let shown = || client.show(url);
    let deadline = tokio::time::Instant::now() + limits.timeout;
    let origin = url.origin();
    let mut visited = vec![url.clone()];
    let response = loop {
        let current = visited.last().unwrap_or(url);
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            return Err(fail(
                shown(),
                FetchFailure::Timeout {
                    after: limits.timeout,
                },
            ));
        }
        let response = request(
            client,
            current,
            current.origin() == origin,
            validators,
            limits,
        )
        .timeout(remaining)
        .send()
        .await
        .map_err(|e| classify(e, &shown(), limits))?;
        let Some(next) = redirect_target(&response, current) else {
            break response;
        };
        if !matches!(next.scheme(), "http" | "https") {
            return Err(fail(
                shown(),
                FetchFailure::SchemeRefused {
                    scheme: next.scheme().to_owned(),
                },
            ));
        }
        // A loop is reported as a loop (not as "too many redirects") so the log says
        // what the site is doing wrong.
        if visited.contains(&next) {
            return Err(fail(
                shown(),
                FetchFailure::RedirectLoop {
                    at: client.show(&next),
                },
            ));
        }
        if visited.len() > limits.max_redirects {
            return Err(fail(
                shown(),
                FetchFailure::TooManyRedirects {
                    max: limits.max_redirects,
                },
            ));
        }
        visited.push(next);
    };
    let fetched_at = Utc::now();
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return Ok(Response::NotModified);
    }
    if !status.is_success() {
        let retry_after = if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            crate::retry::retry_after_header(response.headers(), fetched_at)
        } else {
            None
        };
        return Err(fail(
            shown(),
            FetchFailure::Status {
                status: status.as_u16(),
                retry_after,
            },
        ));
    }
    let headers = response.headers();
    let content_type = header_text(headers, header::CONTENT_TYPE);
    let new_validators = Validators {
        etag: header_text(headers, header::ETAG),
        last_modified: header_text(headers, header::LAST_MODIFIED),
    };
    let final_url = response.url().clone();
    let body = read_body(response, &shown(), limits).await?;
    Ok(Response::Page(Body {
        body,
        content_type,
        url: final_url,
        fetched_at,
        validators: new_validators,
    }))
}

/// The request for one hop. The configured headers go only to the configured URL's
/// origin (`same_origin`); the validators are no secret and go along every hop.
fn request(
    client: &SourceClient,
    url: &Url,
    same_origin: bool,
    validators: &Validators,
    limits: &Limits,
) -> reqwest::RequestBuilder {
    let mut request = client.http.get(url.clone());
    // Checked when the client was built. Configured headers come after, so a
    // `User-Agent` among them wins.
    if let Ok(agent) = HeaderValue::from_str(&limits.user_agent) {
        request = request.header(header::USER_AGENT, agent);
    }
    if same_origin {
        request = request.headers(client.headers.clone());
    }
    // A stored validator that is no longer a valid header value is skipped, which
    // just costs one unconditional fetch.
    if let Some(v) = validators.etag.as_deref().and_then(valid_header) {
        request = request.header(header::IF_NONE_MATCH, v);
    }
    if let Some(v) = validators.last_modified.as_deref().and_then(valid_header) {
        request = request.header(header::IF_MODIFIED_SINCE, v);
    }
    request
}

/// Where a redirect response points, resolved against the URL that gave it; `None`
/// for any other response, and for a redirect without a usable `Location` (which is
/// then reported by its status).
fn redirect_target(response: &reqwest::Response, current: &Url) -> Option<Url> {
    let followed = matches!(
        response.status(),
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    );
    if !followed {
        return None;
    }
    let location = response.headers().get(header::LOCATION)?.to_str().ok()?;
    current.join(location).ok()
}

/// Reads the body chunk by chunk, stopping as soon as it would pass the limit.
/// reqwest hands over decompressed chunks, so this counts decompressed bytes: a gzip
/// bomb is cut at the limit instead of being inflated in memory.
async fn read_body(
    response: reqwest::Response,
    url: &str,
    limits: &Limits,
) -> Result<Vec<u8>, HttpError> {
    let too_large = || {
        fail(
            url,
            FetchFailure::TooLarge {
                limit: limits.max_body_size,
            },
        )
    };
    let limit = usize::try_from(limits.max_body_size).unwrap_or(usize::MAX);
    // reqwest drops Content-Length when it decompresses, so a declared length is the
    // real length: refuse early without reading anything.
    let declared = response.content_length();
    if declared.is_some_and(|len| len > limits.max_body_size) {
        return Err(too_large());
    }
    // Preallocate from the declared length only up to the limit: the header is the
    // server's word, not a measurement.
    let capacity = declared
        .and_then(|len| usize::try_from(len).ok())
        .unwrap_or(0)
        .min(limit);
    let mut body = Vec::with_capacity(capacity);
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| classify(e, url, limits))?;
        if chunk.len() > limit - body.len() {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn valid_header(value: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(value).ok()
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Turns a reqwest error into the [`HttpError`] that says what happened; `url` is the
/// requested URL as it may be shown.
fn classify(error: reqwest::Error, url: &str, limits: &Limits) -> HttpError {
    // reqwest's message names the URL requested, expanded secrets and all.
    let error = error.without_url();
    // A connect timeout also counts as a timeout to reqwest; report it as the
    // connect phase with the connect timeout, which is the limit that fired.
    if error.is_connect() {
        let reason = if error.is_timeout() {
            format!("timed out after {}", human(&limits.connect_timeout))
        } else {
            chain(&error)
        };
        return fail(url, FetchFailure::Connect { reason });
    }
    if error.is_timeout() {
        return fail(
            url,
            FetchFailure::Timeout {
                after: limits.timeout,
            },
        );
    }
    fail(
        url,
        FetchFailure::Transfer {
            reason: chain(&error),
        },
    )
}

/// The error's causes in one line, each said once. reqwest's own message only says
/// "error sending request" and names the URL, which the [`HttpError`] message already
/// does; the useful part ("connection refused") is further down.
fn chain(error: &reqwest::Error) -> String {
    match error.source() {
        Some(cause) => crate::logging::Chain(cause).to_string(),
        // Without a cause, the error itself is all there is.
        None => error.to_string(),
    }
}
