//! The page that README's "Adding your own page" walks through: an HTML page and a JSON
//! endpoint. Built and tested in CI (`--features example-page`), so the walk-through
//! cannot rot; a team copies it and drops the feature.

use axum::Router;
use axum::response::{Html, Json};
use axum::routing::get;
use serde::Serialize;

/// The routes this page adds; routes::router merges them in.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/hello", get(page)).route("/api/hello", get(api))
}

async fn page() -> Html<&'static str> {
    Html("<!doctype html><title>Hello</title><h1>Hello from this device</h1>")
}

#[derive(Serialize)]
struct Hello {
    greeting: &'static str,
}

async fn api() -> Json<Hello> {
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
