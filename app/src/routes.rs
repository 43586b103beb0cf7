//! What portico serves: the status page, its assets, `/api/status` and `/healthz`.
//! The assets are compiled in, so the binary is the only file to install.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;

use crate::server::Connections;
use crate::shutdown::Shutdown;
use crate::status::{self, Activation};

const PAGE: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/status.js");
const STYLE: &str = include_str!("../assets/status.css");

/// What monitors match on; kept fixed so a `grep ok` or an expect string never breaks.
pub const HEALTHY: &str = "ok\n";
pub const STOPPING: &str = "shutting down\n";

pub struct AppState {
    pub activation: Activation,
    pub started: Instant,
    pub connections: Arc<Connections>,
    pub shutdown: Shutdown,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/status", get(api_status))
        .route("/healthz", get(healthz))
        .route("/assets/status.js", get(|| asset("text/javascript; charset=utf-8", SCRIPT)))
        .route("/assets/status.css", get(|| asset("text/css; charset=utf-8", STYLE)))
        .with_state(state)
}

fn collect(state: &AppState) -> status::Status {
    status::collect(&state.activation, state.started, state.connections.stats())
}

/// The page with the figures filled in, so it shows them without JavaScript too.
fn render(status: &status::Status) -> String {
    let mut html = PAGE.to_owned();
    for (field, value) in status::display_fields(status) {
        html = html.replace(&format!("{{{{{field}}}}}"), &escape(&value));
    }
    html
}

async fn page(State(state): State<Arc<AppState>>) -> Response {
    let html = render(&collect(&state));
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'self'"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        Html(html),
    )
        .into_response()
}

async fn api_status(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(collect(&state))).into_response()
}

async fn healthz(State(state): State<Arc<AppState>>) -> Response {
    let (code, body) = match state.shutdown.is_started() {
        false => (StatusCode::OK, HEALTHY),
        true => (StatusCode::SERVICE_UNAVAILABLE, STOPPING),
    };
    (code, [(header::CACHE_CONTROL, "no-store")], body).into_response()
}

async fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
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
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_neutralises_markup() {
        assert_eq!(super::escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }

    #[test]
    fn the_page_is_rendered_with_every_figure() {
        use crate::activation::Origin;
        use crate::server::Stats;
        let activation = super::Activation { mode: Origin::SelfBound, listeners: vec![] };
        let stats = Stats { open_connections: 1, requests_served: 42 };
        let status = super::status::collect(&activation, std::time::Instant::now(), stats);
        let html = super::render(&status);
        assert!(!html.contains("{{"), "a placeholder was left: {html}");
        assert!(html.contains(">42</dd>"), "{html}");
    }
}
