//! The page that README's "Adding your own page" walks through: a public HTML page and a
//! JSON endpoint behind the owner's login. Built and tested in CI (`--features
//! example-page`), so the walk-through cannot rot; a team copies it and drops the feature.

use axum::Router;
use axum::response::{Html, Json};
use axum::routing::get;
use serde::Serialize;

use crate::auth::{HasAuth, LoggedIn};

/// The routes this page adds; routes::router merges them in.
pub fn routes<S: HasAuth + Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/hello", get(page)).route("/api/hello", get(api))
}

/// Public, like the status page.
async fn page() -> Html<&'static str> {
    Html("<!doctype html><title>Hello</title><h1>Hello from this device</h1>")
}

#[derive(Serialize)]
struct Hello {
    greeting: &'static str,
}

/// Behind the owner's login: taking `LoggedIn` is all it takes. Over plain HTTP it
/// redirects to HTTPS; without a session, to the login.
async fn api(_owner: LoggedIn) -> Json<Hello> {
    Json(Hello { greeting: "hello" })
}

#[cfg(test)]
mod tests {
    /// README shows this file as it is, from its first `use` on.
    #[test]
    fn the_readme_walks_through_this_very_file() {
        let readme = include_str!("../../README.md");
        let source = include_str!("example_page.rs");
        let code = &source[source.find("use axum::Router;").unwrap()..source.find("#[cfg(test)]").unwrap()];
        let shown: String =
            code.lines().map(|l| if l.is_empty() { "\n".to_owned() } else { format!("    {l}\n") }).collect();
        assert!(
            readme.contains(&shown),
            "README's \"Adding your own page\" differs from app/src/example_page.rs"
        );
    }
}
