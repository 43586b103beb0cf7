//! The owner's pages: first set-up with the one-time code, login and logout, and the
//! settings (password, label, who may see the status page, the HTTPS certificate). Every
//! one of them is HTTPS only; what needs a login takes `LoggedIn` or `CsrfForm` (extract.rs).

// Handlers and extractors answer with a whole Response, as axum has them do.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use super::account::Auth;
use super::error::AuthError;
use super::extract::{self, CsrfForm};
use super::password::MIN_PASSWORD;
use super::sessions::LoggedIn;
use super::updates::{self, Choice, Request, Requests, Updates};
use crate::device::Device;
use crate::pages::html::escape;
use crate::transport::peer::Peer;

/// Adds the owner's pages to `router`.
pub(crate) fn routes(router: Router<Device>) -> Router<Device> {
    router
        .route("/setup", get(setup_page).post(set_up))
        .route("/login", get(login_page).post(log_in))
        .route("/logout", post(log_out))
        .route("/settings", get(settings_page))
        .route("/settings/password", post(change_password))
        .route("/settings/label", post(change_label))
        .route("/settings/access", post(change_access))
        .route("/settings/certificate", post(replace_certificate))
        .route("/settings/updates", post(change_updates))
}

/// The login, for a page that needs no session yet (set-up, login): HTTPS, and a POST
/// from the device's own pages.
fn open_page(device: &Device, parts: &Parts) -> Result<Arc<Auth>, Response> {
    let Some(auth) = device.owner.auth.as_ref() else {
        return Err(extract::no_login());
    };
    extract::require_https(parts)?;
    if parts.method == axum::http::Method::POST {
        extract::same_origin(&parts.headers)?;
    }
    Ok(auth.clone())
}

fn client(parts: &Parts) -> Option<std::net::IpAddr> {
    parts.extensions.get::<Peer>().and_then(|peer| peer.ip)
}

/// A page of the owner's, in the status page's style.
fn page(title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · portico</title>\n<link rel=\"stylesheet\" href=\"/assets/status.css\">\n\
         </head>\n<body>\n<main>\n<h1>{title}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

fn problem(message: Option<&str>) -> String {
    message.map_or_else(String::new, |m| format!("<p class=\"problem\" role=\"alert\">{}</p>", escape(m)))
}

fn password_hint() -> String {
    format!("at least {} characters; a few words make a strong one", MIN_PASSWORD)
}

fn setup_form(message: Option<&str>) -> Response {
    page(
        "Set up this device",
        &format!(
            "<p>Enter the set-up code (on the device's label, or in its log: \
             <code>journalctl -u portico</code>) and choose the owner's password.</p>{}\
             <form method=\"post\" action=\"/setup\">\
             <label>Set-up code <input name=\"code\" autocomplete=\"off\" required></label>\
             <label>Password ({}) <input type=\"password\" name=\"password\" autocomplete=\"new-password\" required></label>\
             <label>Password again <input type=\"password\" name=\"again\" autocomplete=\"new-password\" required></label>\
             <button>Set up</button></form>",
            problem(message),
            password_hint()
        ),
    )
}

async fn setup_page(State(device): State<Device>, parts: Parts) -> Response {
    let auth = match open_page(&device, &parts) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    if !auth.setup_needed() {
        return Redirect::to("/login").into_response();
    }
    setup_form(None)
}

#[derive(Deserialize)]
struct SetUp {
    code: String,
    password: String,
    again: String,
}

async fn set_up(State(device): State<Device>, parts: Parts, form: axum::Form<SetUp>) -> Response {
    let auth = match open_page(&device, &parts) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    if form.password != form.again {
        return (StatusCode::BAD_REQUEST, setup_form(Some("The two passwords differ."))).into_response();
    }
    let client = client(&parts);
    match auth.set_up(client, &form.code, &form.password).await {
        Ok(()) => log_in_as(&auth, client, &form.password).await,
        Err(AuthError::AlreadySetUp) => Redirect::to("/login").into_response(),
        Err(e) => (status_of(&e), setup_form(Some(&e.to_string()))).into_response(),
    }
}

fn status_of(error: &AuthError) -> StatusCode {
    match error {
        AuthError::WrongCode | AuthError::WrongPassword => StatusCode::FORBIDDEN,
        AuthError::WeakPassword(_)
        | AuthError::NotSetUp
        | AuthError::AlreadySetUp
        | AuthError::Refused(_) => StatusCode::BAD_REQUEST,
        AuthError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        AuthError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn login_form(message: Option<&str>) -> Response {
    page(
        "Log in",
        &format!(
            "{}<form method=\"post\" action=\"/login\">\
             <label>Password <input type=\"password\" name=\"password\" autocomplete=\"current-password\" required autofocus></label>\
             <button>Log in</button></form>",
            problem(message)
        ),
    )
}

async fn login_page(State(device): State<Device>, parts: Parts) -> Response {
    let auth = match open_page(&device, &parts) {
        Ok(auth) => auth,
        Err(response) => return response,
    };
    if auth.setup_needed() {
        return Redirect::to("/setup").into_response();
    }
    login_form(None)
}

#[derive(Deserialize)]
struct Login {
    password: String,
}

async fn log_in(State(device): State<Device>, parts: Parts, form: axum::Form<Login>) -> Response {
    match open_page(&device, &parts) {
        Ok(auth) => log_in_as(&auth, client(&parts), &form.password).await,
        Err(response) => response,
    }
}

async fn log_in_as(auth: &Arc<Auth>, client: Option<std::net::IpAddr>, password: &str) -> Response {
    match auth.login(client, password).await {
        Ok(token) => ([(header::SET_COOKIE, extract::set_cookie(Some(&token)))], Redirect::to("/settings"))
            .into_response(),
        Err(AuthError::NotSetUp) => Redirect::to("/setup").into_response(),
        Err(e) => (status_of(&e), login_form(Some(&e.to_string()))).into_response(),
    }
}

async fn log_out(State(device): State<Device>, CsrfForm(owner, _): CsrfForm<Empty>) -> Response {
    if let Some(auth) = device.owner.auth.as_ref() {
        auth.logout(&owner.token);
    }
    ([(header::SET_COOKIE, extract::set_cookie(None))], Redirect::to("/login")).into_response()
}

#[derive(Deserialize)]
struct Empty {}

async fn settings_page(
    State(device): State<Device>,
    owner: LoggedIn,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let saved = query.as_deref() == Some("saved");
    settings(&device, &owner, saved.then_some(Notice::Saved))
}

/// What the settings page says above its forms.
enum Notice<'a> {
    Saved,
    Problem(&'a str),
}

fn settings(device: &Device, owner: &LoggedIn, notice: Option<Notice>) -> Response {
    let Some(auth) = device.owner.auth.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let settings = auth.glance();
    let csrf = format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", escape(&owner.csrf));
    let checked = if settings.status_public { " checked" } else { "" };
    let fingerprint = device.certificate().map_or_else(String::new, |c| c.fingerprint().to_owned());
    page(
        "Settings",
        &format!(
            "{problem}\
             <h2>Label</h2><form method=\"post\" action=\"/settings/label\">{csrf}\
             <label>Shown on the status page <input name=\"label\" value=\"{label}\" maxlength=\"64\"></label>\
             <button>Save</button></form>\
             <h2>Status page</h2><form method=\"post\" action=\"/settings/access\">{csrf}\
             <label><input type=\"checkbox\" name=\"public\" value=\"on\"{checked}> Anyone on the network may see \
             the whole status page and /api/status (off: others see the device's name, that it serves and \
             portico's version; the rest after logging in)</label><button>Save</button></form>\
             <h2>Password</h2><form method=\"post\" action=\"/settings/password\">{csrf}\
             <label>Current password <input type=\"password\" name=\"current\" autocomplete=\"current-password\" required></label>\
             <label>New password ({hint}) <input type=\"password\" name=\"password\" autocomplete=\"new-password\" required></label>\
             <label>New password again <input type=\"password\" name=\"again\" autocomplete=\"new-password\" required></label>\
             <button>Change, and log out everywhere</button></form>\
             {updates}\
             <h2>HTTPS certificate</h2><p>In use: SHA-256 <code>{fingerprint}</code></p>\
             <form method=\"post\" action=\"/settings/certificate\">{csrf}\
             <label>Certificate chain (PEM) <textarea name=\"certificate\" rows=\"6\" required></textarea></label>\
             <label>Private key (PEM) <textarea name=\"key\" rows=\"6\" required></textarea></label>\
             <button>Replace</button></form>\
             <form method=\"post\" action=\"/logout\">{csrf}<button>Log out</button></form>\
             <p><a href=\"/\">Status page</a></p>",
            problem = match notice {
                Some(Notice::Saved) => "<p class=\"notice\" role=\"status\">Saved.</p>".to_owned(),
                Some(Notice::Problem(message)) => problem(Some(message)),
                None => String::new(),
            },
            label = escape(&settings.label),
            hint = password_hint(),
            updates = device.owner.update_requests.as_ref().map_or_else(String::new, |requests| {
                updates_section(&device.owner.updates, requests, &csrf)
            }),
        ),
    )
}

/// What the updater last did and the owner's say in it; nothing on a device without one.
fn updates_section(updates: &Updates, requests: &Requests, csrf: &str) -> String {
    let now = updates::now();
    let mut said = format!("<p>Installed: portico {}.</p>", escape(crate::config::VERSION));
    match updates.report() {
        Ok(None) => said.push_str("<p>The updater has not run yet.</p>"),
        Ok(Some(report)) => {
            let when = updates::ago(report.run_at, now);
            match report.state.as_str() {
                "running" => said.push_str(&format!("<p>The updater is running (since {when}).</p>")),
                _ => said.push_str(&format!(
                    "<p>Last run {when}: <span data-field=\"update-result\">{}</span>. {}</p>",
                    escape(&report.result),
                    escape(&report.detail)
                )),
            }
            if let Some(available) = &report.available {
                said.push_str(&format!("<p>Available: portico {}.</p>", escape(available)));
            }
            if let Some(rollback) = &report.last_rollback {
                said.push_str(&format!(
                    "<p>Rolled back {} times; last {}, from {} to {}: {}</p>",
                    report.rollbacks,
                    updates::ago(rollback.at, now),
                    escape(&rollback.from),
                    escape(&rollback.to),
                    escape(&rollback.reason)
                ));
            }
        }
        Err(e) => said.push_str(&problem(Some(&format!("The updater's report cannot be read: {e}")))),
    }
    if requests.asked() {
        said.push_str("<p>Asked: waiting for the updater.</p>");
    }
    let choice = requests.choice();
    let checked = if choice.automatic { " checked" } else { "" };
    let postpone = match choice.postpone_until > now {
        true => format!(
            "<p>Updates are postponed for {}.</p><button name=\"action\" value=\"resume\">Stop postponing</button>",
            updates::ago(now, choice.postpone_until).trim_end_matches(" ago")
        ),
        false => "<button name=\"action\" value=\"postpone\">Postpone a week</button>".to_owned(),
    };
    format!(
        "<h2>Updates</h2>{said}\
         <form method=\"post\" action=\"/settings/updates\">{csrf}\
         <label><input type=\"checkbox\" name=\"automatic\" value=\"on\"{checked}> Install updates \
         automatically (checked daily; a version that does not serve is rolled back)</label>\
         <button name=\"action\" value=\"save\">Save</button></form>\
         <form method=\"post\" action=\"/settings/updates\">{csrf}\
         <button name=\"action\" value=\"check\">Check now</button>\
         <button name=\"action\" value=\"install\">Install now</button>{postpone}</form>"
    )
}

/// Answers a settings form: the settings page again, saying what went wrong if anything.
fn done(device: &Device, owner: &LoggedIn, result: Result<(), AuthError>) -> Response {
    match result {
        Ok(()) => Redirect::to("/settings?saved").into_response(),
        Err(e) => {
            (status_of(&e), settings(device, owner, Some(Notice::Problem(&e.to_string())))).into_response()
        }
    }
}

#[derive(Deserialize)]
struct Label {
    label: String,
}

async fn change_label(State(device): State<Device>, CsrfForm(owner, form): CsrfForm<Label>) -> Response {
    let label: String = form.label.trim().chars().filter(|c| !c.is_control()).take(64).collect();
    let result = match device.owner.auth.as_ref() {
        Some(auth) => auth.update(&owner, move |o| o.label = label).await,
        None => Err(AuthError::NotSetUp),
    };
    done(&device, &owner, result)
}

#[derive(Deserialize)]
struct Access {
    public: Option<String>,
}

async fn change_access(State(device): State<Device>, CsrfForm(owner, form): CsrfForm<Access>) -> Response {
    let public = form.public.is_some();
    let result = match device.owner.auth.as_ref() {
        Some(auth) => auth.update(&owner, move |o| o.status_public = public).await,
        None => Err(AuthError::NotSetUp),
    };
    done(&device, &owner, result)
}

#[derive(Deserialize)]
struct NewPassword {
    current: String,
    password: String,
    again: String,
}

async fn change_password(
    State(device): State<Device>,
    parts: Parts,
    CsrfForm(owner, form): CsrfForm<NewPassword>,
) -> Response {
    let Some(auth) = device.owner.auth.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if form.password != form.again {
        return done(&device, &owner, Err(AuthError::WeakPassword("The two new passwords differ.".into())));
    }
    match auth.change_password(client(&parts), &form.current, &form.password).await {
        Ok(()) => ([(header::SET_COOKIE, extract::set_cookie(None))], Redirect::to("/login")).into_response(),
        Err(e) => done(&device, &owner, Err(e)),
    }
}

#[derive(Deserialize)]
struct UpdateForm {
    action: String,
    automatic: Option<String>,
}

async fn change_updates(
    State(device): State<Device>,
    CsrfForm(owner, form): CsrfForm<UpdateForm>,
) -> Response {
    let Some(updates) = device.owner.update_requests.clone() else {
        return done(&device, &owner, Err(AuthError::Refused("This device has no updater.".into())));
    };
    let choice = updates.choice();
    let change: Box<dyn FnOnce() -> std::io::Result<()> + Send> = match form.action.as_str() {
        "save" => Box::new(move || updates.choose(Choice { automatic: form.automatic.is_some(), ..choice })),
        "postpone" => {
            let until = updates::now() + updates::POSTPONE.as_secs();
            Box::new(move || updates.choose(Choice { postpone_until: until, ..choice }))
        }
        "resume" => Box::new(move || updates.choose(Choice { postpone_until: 0, ..choice })),
        "check" => Box::new(move || updates.ask(Request::Check)),
        "install" => Box::new(move || updates.ask(Request::Install)),
        other => {
            let why = format!("Unknown action {other:?}.");
            return done(&device, &owner, Err(AuthError::Refused(why)));
        }
    };
    // Written and synced on the blocking thread, as every save is.
    let result = match tokio::task::spawn_blocking(change).await {
        Ok(result) => result.map_err(|e| AuthError::Storage(e.to_string())),
        Err(e) => Err(AuthError::Storage(e.to_string())),
    };
    done(&device, &owner, result)
}

#[derive(Deserialize)]
struct Certificate {
    certificate: String,
    key: String,
}

async fn replace_certificate(
    State(device): State<Device>,
    CsrfForm(owner, form): CsrfForm<Certificate>,
) -> Response {
    let Some(replace) = device.owner.replace_certificate.as_ref() else {
        return done(&device, &owner, Err(AuthError::Refused("This device has no HTTPS socket.".into())));
    };
    let result = replace(form.certificate.as_bytes(), form.key.as_bytes()).map(|summary| {
        tracing::info!("the owner replaced the HTTPS certificate: SHA-256 {}", summary.fingerprint());
        device.set_certificate(summary);
    });
    done(&device, &owner, result.map_err(AuthError::Refused))
}
