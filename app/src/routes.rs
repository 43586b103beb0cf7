//! What portico serves: the status page, its assets, `/api/status` and `/healthz`.
//! The assets are compiled in, so the binary is the only file to install.
//!
//! The assets need no state and are most of a page load's requests, so they are answered
//! before routing (`asset`, the server's fast path); the router has the dynamic routes.

use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::metrics;
use crate::peer::Peer;
use crate::shutdown::Shutdown;
use crate::stats::Counters;
use crate::status::{self, Fixed};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/status.js");
const STYLE: &str = include_str!("../assets/status.css");

/// What monitors match on; kept fixed so a `grep ok` or an expect string never breaks.
pub const HEALTHY: &str = "ok\n";
pub const STOPPING: &str = "shutting down\n";

pub struct AppState {
    pub fixed: Fixed,
    pub counters: Arc<Counters>,
    pub shutdown: Shutdown,
    /// Replaced when a reload brings a new certificate.
    pub certificate: RwLock<Option<status::Certificate>>,
    /// Who may read /metrics.
    pub metrics: metrics::Access,
    /// What the updater reports (built with TLS: a device without it has no owner to show).
    #[cfg(feature = "tls")]
    pub updates: crate::updates::Updates,
    /// What the owner asks of the updater; none where the device has no updater.
    #[cfg(feature = "tls")]
    pub update_requests: Option<crate::updates::Requests>,
    /// The owner's login; none without an HTTPS socket.
    #[cfg(feature = "tls")]
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// Checks and installs a certificate the owner uploaded; says what is now in use.
    #[cfg(feature = "tls")]
    pub replace_certificate: crate::tls::Replace,
}

impl AppState {
    /// The certificate in use, as the pages show it.
    pub fn certificate(&self) -> Option<status::Certificate> {
        self.certificate.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// What a reload or the owner's upload put in use.
    pub fn set_certificate(&self, certificate: status::Certificate) {
        *self.certificate.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(certificate);
    }
}

#[cfg(feature = "tls")]
impl crate::auth::HasAuth for Arc<AppState> {
    fn auth(&self) -> Option<&Arc<crate::auth::Auth>> {
        self.auth.as_ref()
    }
}

#[cfg(feature = "tls")]
type MayView = crate::auth::MayView;
/// Built without TLS there is no login, so the status page is always public, and there is
/// no label.
#[cfg(not(feature = "tls"))]
struct MayView {
    label: String,
    full: bool,
}
#[cfg(not(feature = "tls"))]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for MayView {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(_: &mut axum::http::request::Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(MayView { label: String::new(), full: true })
    }
}

/// What a visitor sees of a device whose owner keeps the status private: which device
/// answers and which portico serves it (what a monitor, and the updater's health check,
/// need), nothing of its software, resources or accounts.
#[derive(serde::Serialize)]
struct Glimpse<'a> {
    hostname: String,
    label: &'a str,
    portico: GlimpseOfPortico,
}

#[derive(serde::Serialize)]
struct GlimpseOfPortico {
    version: &'static str,
}

fn glimpse(label: &str) -> Glimpse<'_> {
    Glimpse {
        hostname: status::hostname(),
        label,
        portico: GlimpseOfPortico { version: crate::config::VERSION },
    }
}

/// The pages' routes; main adds the owner's pages and the state.
pub fn router() -> Router<Arc<AppState>> {
    let router = Router::new();
    #[cfg(feature = "example-page")]
    let router = router.merge(crate::example_page::routes());
    router
        .route("/", get(page))
        .route("/api/status", get(api_status))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

fn collect(state: &AppState, label: String) -> status::Status<'_> {
    status::collect(&state.fixed, state.counters.snapshot(), state.certificate(), label)
}

/// The page with the figures filled in, so it shows them without JavaScript too.
fn render(status: &status::Status) -> String {
    let fields = status::display_fields(status);
    let mut html = String::with_capacity(PAGE.len() + 512);
    let mut rest = PAGE;
    while let Some(start) = rest.find("{{") {
        html.push_str(&rest[..start]);
        let Some(end) = rest[start..].find("}}") else { break };
        let name = &rest[start + 2..start + end];
        match fields.iter().find(|(field, _)| *field == name) {
            Some((_, value)) => escape_into(&mut html, value),
            None => html.push_str(&rest[start..start + end + 2]),
        }
        rest = &rest[start + end + 2..];
    }
    html.push_str(rest);
    html
}

async fn page(view: MayView, State(state): State<Arc<AppState>>) -> Response {
    let html = match view.full {
        true => render(&collect(&state, view.label)),
        false => render_glimpse(&glimpse(&view.label)),
    };
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// The visitor's page of a private device: its name, that it serves, and the way in.
fn render_glimpse(glimpse: &Glimpse) -> String {
    let (mut name, mut hostname) = (String::new(), String::new());
    escape_into(&mut name, if glimpse.label.is_empty() { &glimpse.hostname } else { glimpse.label });
    escape_into(&mut hostname, &glimpse.hostname);
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{name} · portico</title>\n<link rel=\"stylesheet\" href=\"/assets/status.css\">\n\
         </head>\n<body>\n<main>\n<h1 data-field=\"label\">{name}</h1>\n\
         <p>Hostname <span data-field=\"hostname\">{hostname}</span></p>\n\
         <p>This device is serving. Its owner keeps its status private: \
         <a href=\"/login\">log in</a> to see it.</p>\n</main>\n</body>\n</html>\n"
    )
}

async fn api_status(view: MayView, State(state): State<Arc<AppState>>) -> Response {
    // serde_json directly: axum's Json would bring its request-body parser for nothing.
    let json = match view.full {
        true => serde_json::to_vec(&collect(&state, view.label)),
        false => serde_json::to_vec(&glimpse(&view.label)),
    };
    match json {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], json)
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let (code, body) = match state.shutdown.is_started() {
        false => (StatusCode::OK, HEALTHY),
        true => (StatusCode::SERVICE_UNAVAILABLE, STOPPING),
    };
    (code, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

async fn metrics(
    State(state): State<Arc<AppState>>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    // Built without TLS, plain HTTP is the only way there is.
    let in_clear =
        cfg!(feature = "tls") && peer.is_some_and(|Extension(peer)| !peer.https && peer.ip.is_some());
    match state.metrics.check(authorization, in_clear) {
        metrics::Verdict::Allowed => {}
        metrics::Verdict::TokenNeeded => {
            tracing::debug!("/metrics: missing or wrong bearer token");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "bearer token required\n",
            )
                .into_response();
        }
        metrics::Verdict::OverHttpsOnly { leaked } => {
            if leaked {
                let client =
                    peer.and_then(|Extension(peer)| peer.ip).map(|ip| ip.to_string()).unwrap_or_default();
                tracing::warn!(
                    "/metrics: the bearer token came over plain HTTP from {client}, readable by anyone \
                     on the way; replace it, and scrape over HTTPS"
                );
            }
            return (
                StatusCode::FORBIDDEN,
                "/metrics takes the bearer token over HTTPS only: scrape https://this-device/metrics\n",
            )
                .into_response();
        }
        metrics::Verdict::Off => {
            return (
                StatusCode::FORBIDDEN,
                "/metrics is off: set metrics_token (or the credential metrics-token), or metrics_public\n",
            )
                .into_response();
        }
    }
    #[cfg(feature = "tls")]
    let label = state.auth.as_ref().map(|auth| auth.glance().label).unwrap_or_default();
    #[cfg(not(feature = "tls"))]
    let label = String::new();
    #[cfg(feature = "tls")]
    let report = state.updates.report().unwrap_or_else(|e| {
        tracing::warn!("/metrics: the updater's report: {e}");
        None
    });
    #[cfg(not(feature = "tls"))]
    let report = None;
    let body = metrics::render(
        &collect(&state, label),
        state.counters.snapshot(),
        state.counters.totals(),
        report.as_ref(),
    );
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// Answers a request for a compiled-in asset, or returns None for every other path. The
/// server calls it before routing (its fast path): assets need no state and are most of a
/// page load's requests.
pub fn asset<B>(request: &Request<B>) -> Option<Response> {
    let (content_type, body) = match request.uri().path() {
        "/assets/status.js" => ("text/javascript; charset=utf-8", SCRIPT),
        "/assets/status.css" => ("text/css; charset=utf-8", STYLE),
        _ => return None,
    };
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        return Some(([(header::ALLOW, "GET, HEAD")], StatusCode::METHOD_NOT_ALLOWED).into_response());
    }
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure(headers);
    Some(response)
}

/// The headers every response carries, the owner's pages and the status page alike:
/// scripts, styles and requests from the device itself only, no framing by another site,
/// no guessing of content types, no address sent to another site.
pub fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// `secure` as the router's last step, so no route can leave it out.
pub async fn secured(mut response: Response) -> Response {
    secure(response.headers_mut());
    response
}

/// `text` made safe to put in HTML.
#[cfg(feature = "tls")]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_neutralises_markup() {
        let mut out = String::new();
        super::escape_into(&mut out, "<b>\"x\" & 'y'</b>");
        assert_eq!(out, "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }

    #[test]
    fn the_page_is_rendered_with_every_figure() {
        use crate::activation::Origin;
        use crate::stats::Stats;
        let activation = super::status::Activation { mode: Origin::SelfBound, listeners: vec![] };
        let fixed = super::Fixed::read(activation);
        let stats = Stats { open_connections: 1, connections_accepted: 3, requests_served: 42 };
        let status = super::status::collect(&fixed, stats, None, String::new());
        let html = super::render(&status);
        assert!(!html.contains("{{"), "a placeholder was left: {html}");
        assert!(html.contains(">42</dd>"), "{html}");
    }
}
