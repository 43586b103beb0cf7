//! What portico serves: the status page, its assets, `/api/status` and `/healthz`.
//! The assets are compiled in, so the binary is the only file to install.
//!
//! The assets need no state and are most of a page load's requests, so they are answered
//! before routing (`asset`, the server's fast path); the router has the dynamic routes.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use super::html::{escape_into, secure};
use super::status;
use crate::device::{Device, MayView};

const PAGE: &str = include_str!("../../assets/index.html");
const SCRIPT: &str = include_str!("../../assets/status.js");
const STYLE: &str = include_str!("../../assets/status.css");

/// What monitors match on; kept fixed so a `grep ok` or an expect string never breaks.
pub(super) const HEALTHY: &str = "ok\n";
pub(crate) const STOPPING: &str = "shutting down\n";

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

/// Adds the status page and /api/status (a binary may leave them out), then /healthz; the
/// assets are served before routing (`asset`).
pub(super) fn routes(router: Router<Device>, status_page: bool) -> Router<Device> {
    let router = match status_page {
        true => router.route("/", get(page)).route("/api/status", get(api_status)),
        false => router,
    };
    router.route("/healthz", get(healthz))
}

fn collect(device: &Device, label: String) -> status::Status<'_> {
    status::collect(&device.fixed, device.counters.snapshot(), device.certificate(), label)
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

async fn page(view: MayView, State(device): State<Device>) -> Response {
    let html = match view.full {
        true => render(&collect(&device, view.label)),
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

async fn api_status(view: MayView, State(device): State<Device>) -> Response {
    // serde_json directly: axum's Json would bring its request-body parser for nothing.
    let json = match view.full {
        true => serde_json::to_vec(&collect(&device, view.label)),
        false => serde_json::to_vec(&glimpse(&view.label)),
    };
    match json {
        Ok(json) => ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-store")], json)
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

async fn healthz(State(device): State<Device>) -> Response {
    let (code, body) = match device.shutdown.is_started() {
        false => (StatusCode::OK, HEALTHY),
        true => (StatusCode::SERVICE_UNAVAILABLE, STOPPING),
    };
    (code, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

/// Answers a request for a compiled-in asset, or returns None for every other path. The
/// server calls it before routing (its fast path): assets need no state and are most of a
/// page load's requests.
pub(crate) fn asset<B>(request: &Request<B>) -> Option<Response> {
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_rendered_with_every_figure() {
        use crate::transport::activation::Origin;
        use crate::transport::stats::Stats;
        let activation = super::status::Activation { mode: Origin::SelfBound, listeners: vec![] };
        let fixed = super::status::Fixed::read(activation);
        let stats = Stats { open_connections: 1, connections_accepted: 3, requests_served: 42 };
        let status = super::status::collect(&fixed, stats, None, String::new());
        let html = super::render(&status);
        assert!(!html.contains("{{"), "a placeholder was left: {html}");
        assert!(html.contains(">42</dd>"), "{html}");
    }
}
