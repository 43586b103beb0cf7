//! The team's page: public HTML that shows a setting of its own, and JSON for the owner only.

use axum::Router;
use axum::extract::State;
use axum::response::{Html, Json};
use axum::routing::get;
use portico::{Device, LoggedIn, Setting, escape_html};
use serde::Serialize;

/// One more key of portico's config table: `greeting = "..."` in the config file,
/// PORTICO_GREETING or --greeting, listed by --help.
pub const GREETING: Setting = Setting::new("greeting", "TEXT", "Hello", "what /hello greets visitors with");

/// The routes this page adds beside portico's.
pub fn routes() -> Router<Device> {
    Router::new().route("/hello", get(page)).route("/api/hello", get(api))
}

/// Public, like the status page.
async fn page(State(device): State<Device>) -> Html<String> {
    let greeting = escape_html(device.setting(&GREETING));
    Html(format!("<!doctype html><title>Hello</title><h1>{greeting} from this device</h1>"))
}

#[derive(Serialize)]
struct Hello {
    greeting: String,
}

/// The owner's only: taking `LoggedIn` is all it takes. Over plain HTTP it redirects to
/// HTTPS; without a session, to the login (or to the set-up on a new device).
async fn api(_owner: LoggedIn, State(device): State<Device>) -> Json<Hello> {
    Json(Hello { greeting: device.setting(&GREETING).to_owned() })
}
