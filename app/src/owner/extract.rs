//! How a page asks for the owner: `LoggedIn`, `CsrfForm` and `MayView` are extractors, so
//! a handler that takes one cannot run without the checks it names. Here too the rules
//! they share: HTTPS only, the device's own pages only for a change, and the cookie.

// Extractors answer with a whole Response, as axum has them do.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::account::{Auth, Glance};
use super::hashing::same_secret;
use super::sessions::LoggedIn;
use crate::transport::peer::Peer;

/// The cookie; `__Host-` makes browsers insist on Secure, Path=/ and no Domain.
const COOKIE: &str = "__Host-portico";

/// Where the pages keep the login: none on a device without an HTTPS socket, since the
/// login never travels in clear.
pub trait HasAuth {
    /// The owner's login, if this device has one.
    fn auth(&self) -> Option<&Arc<Auth>>;
}

impl<S: HasAuth + Send + Sync> FromRequestParts<S> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        let Some(auth) = state.auth() else {
            return Err(no_login());
        };
        require_https(parts)?;
        logged_in(parts, auth, &auth.glance())
    }
}

/// `LoggedIn`'s checks after `require_https`, against the owner as `glance` saw them.
fn logged_in(parts: &Parts, auth: &Auth, glance: &Glance) -> Result<LoggedIn, Response> {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        same_origin(&parts.headers)?;
    }
    let generation = glance.generation;
    let session = cookie(&parts.headers).and_then(|token| {
        auth.session(&token, generation, true).map(|csrf| LoggedIn { token, csrf, generation })
    });
    match session {
        Some(session) => Ok(session),
        None if parts.method == Method::GET => {
            let target = if glance.setup_needed { "/setup" } else { "/login" };
            Err(Redirect::to(target).into_response())
        }
        None => Err((StatusCode::FORBIDDEN, "log in first\n").into_response()),
    }
}

pub(super) fn no_login() -> Response {
    (StatusCode::NOT_FOUND, "this device has no owner login: it has no HTTPS socket\n").into_response()
}

/// A form posted by the logged-in owner from one of the device's pages: `LoggedIn`'s
/// checks, then the session's form token (the form's `csrf` field), which another site
/// cannot know. `T` is the rest of the form.
pub struct CsrfForm<T>(pub LoggedIn, pub T);

#[derive(serde::Deserialize)]
struct WithCsrf<T> {
    csrf: String,
    #[serde(flatten)]
    form: T,
}

impl<S, T> axum::extract::FromRequest<S> for CsrfForm<T>
where
    S: HasAuth + Send + Sync,
    T: serde::de::DeserializeOwned + Send,
{
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let owner = LoggedIn::from_request_parts(&mut parts, state).await?;
        let request = axum::extract::Request::from_parts(parts, body);
        let axum::Form(with) = axum::Form::<WithCsrf<T>>::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if !same_secret(&with.csrf, &owner.csrf) {
            return Err((StatusCode::FORBIDDEN, "the form's token is not this session's: reload the page\n")
                .into_response());
        }
        Ok(CsrfForm(owner, with.form))
    }
}

/// How much of the status page and /api/status a request may see, and the device's
/// label from the same look at the owner's state: all of it if the owner made them public
/// (as they are before the device has an owner), or for the logged-in owner over HTTPS;
/// otherwise what a monitor needs (false). Looking does not keep a session alive: the page
/// refreshes itself every few seconds, and an open tab must not hold a login open.
pub(crate) fn may_view(parts: &Parts, auth: &Auth) -> (String, bool) {
    let glance = auth.glance();
    let https = parts.extensions.get::<Peer>().is_some_and(|peer| peer.https);
    let full = glance.status_public
        || https
            && cookie(&parts.headers)
                .is_some_and(|token| auth.session(&token, glance.generation, false).is_some());
    (glance.label, full)
}

/// Over plain HTTP, a redirect to the same path over HTTPS (same host, port 443).
pub(super) fn require_https(parts: &Parts) -> Result<(), Response> {
    if parts.extensions.get::<Peer>().is_some_and(|peer| peer.https) {
        return Ok(());
    }
    let host = parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    // The host without its port (an IPv6 literal keeps its brackets).
    let host = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    if host.is_empty() || host.bytes().any(|b| matches!(b, b'/' | b'\\' | b'@' | b' ')) {
        return Err((StatusCode::FORBIDDEN, "this page is served over HTTPS only\n").into_response());
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Err(Redirect::permanent(&format!("https://{host}{path}")).into_response())
}

/// A state-changing request must come from a page of this device: browsers say where a
/// request comes from in Origin or Sec-Fetch-Site, and another site cannot forge either.
pub(super) fn same_origin(headers: &HeaderMap) -> Result<(), Response> {
    let forbidden = || (StatusCode::FORBIDDEN, "cross-site request refused\n").into_response();
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => Err(forbidden()),
        };
    }
    let host = headers.get(header::HOST).map(|h| h.as_bytes());
    match (headers.get(header::ORIGIN), host) {
        (Some(origin), Some(host)) if origin.as_bytes().strip_prefix(b"https://") == Some(host) => Ok(()),
        _ => Err(forbidden()),
    }
}

/// The session token from the Cookie header.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).find_map(|cookies| {
        cookies.split(';').find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('=').map(str::to_owned))
    })
}

/// Set-Cookie for a session token, or to clear it (`None`).
pub(super) fn set_cookie(token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{COOKIE}={token}; Path=/; Secure; HttpOnly; SameSite=Strict"),
        None => format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}
