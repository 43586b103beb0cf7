//! The owner's side through the router, without a socket (axum's `oneshot`, as its testing
//! example does): cookies, CSRF, logout, expiry and the throttle, exactly. Time is tokio's,
//! paused and moved by the tests, so a delay or a timeout is checked to the millisecond
//! and no test sleeps.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use tokio::time::Instant;
use tower::ServiceExt;

use super::account::{Auth, Opened};
use super::sessions::Lifetimes;
use super::state::{Owner, Store};
use super::updates::{Requests, Updates};
use crate::device::{self, Device as Shared};
use crate::transport::peer::Peer;

const PASSWORD: &str = "plum kettle under the stairs";
const IDLE: Duration = Duration::from_secs(15 * 60);
const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
const OWNER: &str = "10.0.0.7";
const ATTACKER: &str = "10.0.0.66";

struct Device {
    app: Router,
    auth: Arc<Auth>,
    dir: PathBuf,
}

impl Drop for Device {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn state_directory() -> PathBuf {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("portico-router-{}-{n}", std::process::id()))
}

/// A device with a fresh state directory and its set-up code.
fn device() -> (Device, String) {
    device_in(state_directory(), None)
}

fn device_in(dir: PathBuf, provisioned: Option<&str>) -> (Device, String) {
    let lifetimes = Lifetimes { idle: IDLE, absolute: LIFETIME };
    let (auth, opened) = Auth::open(Store::new(&dir), provisioned.map(str::to_owned), lifetimes);
    let code = match opened {
        Opened::Code(code) => code,
        Opened::Provisioned => provisioned.unwrap().to_owned(),
        _ => String::new(),
    };
    let auth = Arc::new(auth);
    let owner = device::Owner {
        auth: Some(auth.clone()),
        updates: Updates::new(Some(dir.join("update-status.json"))),
        update_requests: Some(Requests::new(&dir)),
        replace_certificate: Some(Box::new(|_, _| Err("not in this test".to_owned()))),
    };
    let shared = Shared::for_tests(Default::default(), owner);
    let app = crate::portico::router(shared, axum::Router::new(), true);
    (Device { app, auth, dir }, code)
}

/// A device whose owner has set it up.
async fn owned() -> Device {
    let (device, code) = device();
    let done = device
        .post("/setup", OWNER, None, &[("code", &code), ("password", PASSWORD), ("again", PASSWORD)])
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    device
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> Option<&str> {
        self.headers.get(header::LOCATION).and_then(|v| v.to_str().ok())
    }

    /// The session's cookie this answer sets, as a browser would send it back.
    fn cookie(&self) -> Option<String> {
        let set = self.headers.get(header::SET_COOKIE)?.to_str().ok()?;
        let pair = set.split(';').next()?;
        (!pair.ends_with('=')).then(|| pair.to_owned())
    }
}

fn encode(form: &[(&str, &str)]) -> String {
    form.iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl Device {
    /// A request as a browser on the device's own page sends it, over HTTPS from `client`.
    async fn send(&self, request: Request<Body>) -> Answer {
        answer(&self.app, request).await
    }

    async fn get(&self, path: &str, client: &str, cookie: Option<&str>) -> Answer {
        self.send(request("GET", path, client, cookie, true).body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, client: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let request = request("POST", path, client, cookie, true)
            .header(header::ORIGIN, "https://device")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(request.body(Body::from(encode(form))).unwrap()).await
    }

    async fn log_in(&self, client: &str) -> String {
        self.log_in_with(client, PASSWORD).await
    }

    async fn log_in_with(&self, client: &str, password: &str) -> String {
        let answer = self.post("/login", client, None, &[("password", password)]).await;
        assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.body);
        answer.cookie().unwrap()
    }

    /// The form token on the settings page of the session `cookie`.
    async fn csrf(&self, cookie: &str) -> String {
        let page = self.get("/settings", OWNER, Some(cookie)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let at = page.body.find("name=\"csrf\" value=\"").unwrap() + 19;
        page.body[at..at + 32].to_owned()
    }

    /// How long a wrong login from `client` takes, on the paused clock: the wait alone.
    async fn wrong_login_takes(&self, client: &str) -> Duration {
        let started = Instant::now();
        let answer = self.post("/login", client, None, &[("password", "not the owner's password")]).await;
        assert_eq!(answer.status, StatusCode::FORBIDDEN, "{}", answer.body);
        started.elapsed()
    }

    /// `count` clients in the /24 `net` ("10.0.2"), each with five wrong logins, in turn.
    async fn clients_that_failed_five_times(&self, net: &str, count: usize) -> Vec<String> {
        let clients: Vec<String> = (0..count).map(|n| format!("{net}.{n}")).collect();
        for client in clients.iter().cycle().take(5 * count) {
            self.wrong_login_takes(client).await;
        }
        clients
    }
}

async fn answer(app: &Router, request: Request<Body>) -> Answer {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    Answer { status, headers, body: String::from_utf8_lossy(&body).into_owned() }
}

fn request(
    method: &str,
    path: &str,
    client: &str,
    cookie: Option<&str>,
    https: bool,
) -> axum::http::request::Builder {
    let ip: IpAddr = client.parse().unwrap();
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "device")
        .extension(Peer { ip: Some(ip), https });
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    request
}

/// Over plain HTTP the owner's pages redirect to the same path on HTTPS's default port,
/// for any form of the host a browser sends; a host that would make the redirect point
/// elsewhere is refused.
#[tokio::test(start_paused = true)]
async fn the_owners_pages_over_http_redirect_to_https_on_the_same_host() {
    let (device, _) = device();
    for (host, location) in [
        ("device.local", Some("https://device.local/settings?x=1")),
        ("device.local:8080", Some("https://device.local/settings?x=1")),
        ("192.168.1.20:80", Some("https://192.168.1.20/settings?x=1")),
        ("[fe80::1]:80", Some("https://[fe80::1]/settings?x=1")),
        ("[fe80::1]", Some("https://[fe80::1]/settings?x=1")),
        ("evil.example@device", None),
        ("evil.example/device", None),
        (":80", None),
        ("", None),
    ] {
        let mut request = request("GET", "/settings?x=1", OWNER, None, false).body(Body::empty()).unwrap();
        request.headers_mut().insert(header::HOST, host.parse().unwrap());
        let answer = device.send(request).await;
        match location {
            Some(location) => {
                assert_eq!(answer.status, StatusCode::PERMANENT_REDIRECT, "{host}");
                assert_eq!(answer.location(), Some(location), "{host}");
            }
            None => assert_eq!(answer.status, StatusCode::FORBIDDEN, "{host}: {:?}", answer.location()),
        }
    }
}

/// A device without an HTTPS socket has no owner login: its pages say so.
#[tokio::test(start_paused = true)]
async fn without_https_there_is_no_login_and_the_pages_say_why() {
    let owner = device::Owner {
        auth: None,
        updates: Updates::new(None),
        update_requests: None,
        replace_certificate: None,
    };
    let app = crate::portico::router(Shared::for_tests(Default::default(), owner), axum::Router::new(), true);
    for path in ["/login", "/settings", "/setup"] {
        let answer = answer(&app, request("GET", path, OWNER, None, true).body(Body::empty()).unwrap()).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{path}");
        assert!(answer.body.contains("it has no HTTPS socket"), "{path}: {}", answer.body);
    }
}

#[tokio::test(start_paused = true)]
async fn a_login_sets_a_host_only_secure_cookie_and_a_wrong_one_sets_none() {
    let device = owned().await;
    let wrong = device.post("/login", OWNER, None, &[("password", "not the owner's password")]).await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    assert!(wrong.headers.get(header::SET_COOKIE).is_none());
    let right = device.post("/login", OWNER, None, &[("password", PASSWORD)]).await;
    assert_eq!((right.status, right.location()), (StatusCode::SEE_OTHER, Some("/settings")));
    let set = right.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap();
    assert!(set.starts_with("__Host-portico="), "{set}");
    assert!(set.ends_with("; Path=/; Secure; HttpOnly; SameSite=Strict"), "{set}");
    assert_eq!(right.cookie().unwrap().len(), "__Host-portico=".len() + 64, "256 bits of token");
    assert_ne!(device.log_in(OWNER).await, right.cookie().unwrap(), "a new token each time");
}

#[tokio::test(start_paused = true)]
async fn logout_ends_the_session_on_the_device_not_only_in_the_browser() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    let other = device.log_in(OWNER).await;
    let csrf = device.csrf(&cookie).await;
    let out = device.post("/logout", OWNER, Some(&cookie), &[("csrf", &csrf)]).await;
    assert_eq!(out.location(), Some("/login"));
    assert!(out.headers[header::SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
    // A browser that kept the cookie (or whoever copied it) gets nothing with it.
    let replayed = device.get("/settings", OWNER, Some(&cookie)).await;
    assert_eq!(replayed.location(), Some("/login"));
    assert_eq!(device.get("/settings", OWNER, Some(&other)).await.status, StatusCode::OK, "only that one");
}

#[tokio::test(start_paused = true)]
async fn a_session_ends_after_the_idle_timeout_and_not_before() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    tokio::time::advance(IDLE - Duration::from_millis(1)).await;
    assert_eq!(device.get("/settings", OWNER, Some(&cookie)).await.status, StatusCode::OK);
    // That request was activity: the idle time counts from it.
    tokio::time::advance(IDLE - Duration::from_millis(1)).await;
    assert_eq!(device.get("/settings", OWNER, Some(&cookie)).await.status, StatusCode::OK);
    tokio::time::advance(IDLE).await;
    assert_eq!(device.get("/settings", OWNER, Some(&cookie)).await.location(), Some("/login"));
}

#[tokio::test(start_paused = true)]
async fn a_session_ends_at_its_lifetime_however_busy() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    let started = Instant::now();
    while started.elapsed() + IDLE / 2 < LIFETIME {
        tokio::time::advance(IDLE / 2).await;
        assert_eq!(device.get("/settings", OWNER, Some(&cookie)).await.status, StatusCode::OK);
    }
    tokio::time::advance(LIFETIME - started.elapsed()).await;
    assert_eq!(device.get("/settings", OWNER, Some(&cookie)).await.location(), Some("/login"));
}

/// The status page refreshes itself from /api/status every 5 s: an open tab must not keep
/// the owner logged in.
#[tokio::test(start_paused = true)]
async fn the_status_pages_refresh_does_not_keep_a_session_alive() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    let started = Instant::now();
    while started.elapsed() < IDLE - Duration::from_secs(5) {
        tokio::time::advance(Duration::from_secs(5)).await;
        let status = device.get("/api/status", OWNER, Some(&cookie)).await;
        assert!(status.body.contains("\"kernel\""), "the logged-in owner sees it all: {}", status.body);
    }
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(device.get("/settings", OWNER, Some(&cookie)).await.location(), Some("/login"));
    let status = device.get("/api/status", OWNER, Some(&cookie)).await;
    assert!(!status.body.contains("\"kernel\""), "{}", status.body);
}

#[tokio::test(start_paused = true)]
async fn a_form_needs_the_sessions_token_and_the_devices_own_origin() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    let csrf = device.csrf(&cookie).await;
    let label = |csrf: &str| encode(&[("label", "bench"), ("csrf", csrf)]);
    let form = |origin: Option<&str>, site: Option<&str>, body: String| {
        let mut request = request("POST", "/settings/label", OWNER, Some(&cookie), true)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        if let Some(site) = site {
            request = request.header("sec-fetch-site", site);
        }
        request.body(Body::from(body)).unwrap()
    };
    let refused = [
        (form(Some("https://device"), None, encode(&[("label", "bench")])), StatusCode::UNPROCESSABLE_ENTITY),
        (form(Some("https://device"), None, label(&"0".repeat(32))), StatusCode::FORBIDDEN),
        (form(Some("https://device"), None, label(&csrf[..31])), StatusCode::FORBIDDEN),
        // Two characters swapped: the differences cancel out if they are XORed together.
        (form(Some("https://device"), None, label(&swapped(&csrf))), StatusCode::FORBIDDEN),
        (form(Some("https://evil.example"), None, label(&csrf)), StatusCode::FORBIDDEN),
        (form(Some("http://device"), None, label(&csrf)), StatusCode::FORBIDDEN),
        (form(None, None, label(&csrf)), StatusCode::FORBIDDEN),
        (form(Some("https://device"), Some("cross-site"), label(&csrf)), StatusCode::FORBIDDEN),
        (form(None, Some("same-site"), label(&csrf)), StatusCode::FORBIDDEN),
    ];
    for (n, (request, expected)) in refused.into_iter().enumerate() {
        assert_eq!(device.send(request).await.status, expected, "case {n}");
    }
    assert_eq!(device.auth.glance().label, "", "nothing was saved");
    assert_eq!(
        device.send(form(None, Some("same-origin"), label(&csrf))).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        device.send(form(Some("https://device"), None, label(&csrf))).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(device.auth.glance().label, "bench");
}

/// `token` with its first two different characters swapped.
fn swapped(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let second = chars.iter().position(|c| *c != chars[0]).unwrap();
    chars.swap(0, second);
    chars.into_iter().collect()
}

#[tokio::test(start_paused = true)]
async fn wrong_passwords_earn_growing_waits_and_the_right_one_still_gets_in() {
    let device = owned().await;
    let mut waits = Vec::new();
    for _ in 0..8 {
        waits.push(device.wrong_login_takes(ATTACKER).await);
    }
    let ms = |ms| Duration::from_millis(ms);
    assert_eq!(waits, [ms(0), ms(0), ms(0), ms(250), ms(500), ms(1000), ms(2000), ms(2000)]);
    assert_eq!(device.wrong_login_takes(OWNER).await, ms(0), "others are not slowed");
    // Not a lockout: the right password gets in after the wait, and wipes the slate.
    let started = Instant::now();
    device.log_in(ATTACKER).await;
    assert_eq!(started.elapsed(), ms(2000));
    assert_eq!(device.wrong_login_takes(ATTACKER).await, ms(0));
    // Forgotten after 15 minutes without another failure.
    for _ in 0..4 {
        device.wrong_login_takes(OWNER).await;
    }
    tokio::time::advance(Duration::from_secs(15 * 60)).await;
    assert_eq!(device.wrong_login_takes(OWNER).await, ms(0));
}

#[tokio::test(start_paused = true)]
async fn everyone_waits_a_second_past_thirty_failures_a_minute() {
    let device = owned().await;
    for n in 0..30 {
        device.wrong_login_takes(&format!("10.0.1.{n}")).await;
    }
    assert_eq!(device.wrong_login_takes("10.0.1.30").await, Duration::ZERO, "thirty are not past thirty");
    assert_eq!(device.wrong_login_takes(OWNER).await, Duration::from_secs(1));
    tokio::time::advance(Duration::from_secs(60)).await;
    assert_eq!(device.wrong_login_takes(OWNER).await, Duration::ZERO);
}

/// Guesses sent side by side wait as if sent one after another, and one client has at
/// most two in progress.
#[tokio::test(start_paused = true)]
async fn guesses_sent_side_by_side_each_wait_their_turn() {
    let device = Arc::new(owned().await);
    for _ in 0..4 {
        device.wrong_login_takes(ATTACKER).await;
    }
    let started = Instant::now();
    let guess = |device: Arc<Device>| async move {
        let answer = device.post("/login", ATTACKER, None, &[("password", "another wrong guess")]).await;
        (answer.status, started.elapsed())
    };
    let (a, b, c) = tokio::join!(guess(device.clone()), guess(device.clone()), guess(device.clone()));
    let mut answers = [a, b, c];
    answers.sort();
    assert_eq!(
        answers,
        [
            (StatusCode::FORBIDDEN, Duration::from_millis(500)),
            (StatusCode::FORBIDDEN, Duration::from_millis(1000)),
            (StatusCode::SERVICE_UNAVAILABLE, Duration::ZERO),
        ]
    );
}

/// A flood of wrong passwords from a few addresses, already failing, with the owner
/// logging in from another in the middle of it: the owner is never refused.
#[tokio::test(start_paused = true)]
async fn a_flood_from_a_few_addresses_never_keeps_the_owner_out() {
    let device = Arc::new(owned().await);
    let attackers = device.clients_that_failed_five_times("10.0.2", 8).await;
    let flood = (0..24).map(|n| {
        let (device, attacker) = (device.clone(), attackers[n % attackers.len()].clone());
        async move {
            let mut answers = Vec::new();
            for _ in 0..3 {
                answers.push(
                    device
                        .post("/login", &attacker, None, &[("password", "a wrong guess again")])
                        .await
                        .status,
                );
            }
            answers
        }
    });
    let flood = tokio::spawn(futures_join_all(flood.collect::<Vec<_>>().into_iter()));
    // Every guess of the first wave takes its place and waits out its delay (the clock
    // stands still while this task runs): the owner's first login meets a full house.
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    let mut owner = Vec::new();
    for _ in 0..10 {
        owner.push(device.post("/login", OWNER, None, &[("password", PASSWORD)]).await.status);
    }
    assert!(owner.iter().all(|s| *s == StatusCode::SEE_OTHER), "{owner:?}");
    let flood: Vec<StatusCode> = flood.await.unwrap().into_iter().flatten().collect();
    assert!(
        flood.contains(&StatusCode::SERVICE_UNAVAILABLE),
        "the flood filled every place it may: {flood:?}"
    );
}

/// Clients with recent failures share twelve of the sixteen places for password checks:
/// the thirteenth guess at once is refused, whoever sends it.
#[tokio::test(start_paused = true)]
async fn clients_with_failures_share_twelve_of_the_sixteen_places() {
    let device = Arc::new(owned().await);
    let attackers = device.clients_that_failed_five_times("10.0.3", 7).await;
    let guesses =
        (0..13).map(|n| {
            let (device, attacker) = (device.clone(), attackers[n % attackers.len()].clone());
            async move {
                device.post("/login", &attacker, None, &[("password", "a wrong guess again")]).await.status
            }
        });
    let answers = futures_join_all(guesses.collect::<Vec<_>>().into_iter()).await;
    let busy = answers.iter().filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE).count();
    assert_eq!((answers.len() - busy, busy), (12, 1), "{answers:?}");
}

/// Runs the futures side by side; their answers in order.
async fn futures_join_all<F: Future<Output = T> + Send + 'static, T: Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<T> {
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut answers = Vec::new();
    for handle in handles {
        answers.push(handle.await.unwrap());
    }
    answers
}

/// portico.socket listens on [::]:80 for both families, so IPv4 clients arrive as
/// ::ffff:a.b.c.d: they are still counted one by one.
#[tokio::test(start_paused = true)]
async fn ipv4_clients_on_a_dual_stack_socket_are_counted_apart() {
    let device = owned().await;
    for _ in 0..6 {
        device.wrong_login_takes("::ffff:10.0.0.2").await;
    }
    assert_eq!(device.wrong_login_takes("::ffff:10.0.0.3").await, Duration::ZERO);
    assert_eq!(device.wrong_login_takes("10.0.0.2").await, Duration::from_secs(2), "the same client");
    // IPv6 clients are counted by their /64, which one host can fill.
    for _ in 0..6 {
        device.wrong_login_takes("2001:db8:1:2::1").await;
    }
    assert_eq!(device.wrong_login_takes("2001:db8:1:2:ffff::9").await, Duration::from_secs(2));
    assert_eq!(device.wrong_login_takes("2001:db8:1:3::1").await, Duration::ZERO);
}

/// portico sits behind no proxy (README): a forwarded-for header is a client's say-so.
#[tokio::test(start_paused = true)]
async fn a_forwarded_for_header_does_not_change_who_is_counted() {
    let device = owned().await;
    for n in 0..6 {
        let request = request("POST", "/login", ATTACKER, None, true)
            .header("x-forwarded-for", format!("192.0.2.{n}"))
            .header(header::ORIGIN, "https://device")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        device.send(request.body(Body::from("password=wrong+wrong+wrong+wrong")).unwrap()).await;
    }
    assert_eq!(device.wrong_login_takes(ATTACKER).await, Duration::from_secs(2));
}

#[tokio::test(start_paused = true)]
async fn a_new_password_ends_every_other_session() {
    let device = owned().await;
    let (mine, other) = (device.log_in(OWNER).await, device.log_in("10.0.0.8").await);
    let csrf = device.csrf(&mine).await;
    let new = "an entirely new passphrase";
    let form = [("current", PASSWORD), ("password", new), ("again", new), ("csrf", csrf.as_str())];
    let changed = device.post("/settings/password", OWNER, Some(&mine), &form).await;
    assert_eq!(changed.location(), Some("/login"));
    assert_eq!(device.get("/settings", "10.0.0.8", Some(&other)).await.location(), Some("/login"));
    assert_eq!(device.get("/settings", OWNER, Some(&mine)).await.location(), Some("/login"));
    let old = device.post("/login", OWNER, None, &[("password", PASSWORD)]).await;
    assert_eq!(old.status, StatusCode::FORBIDDEN);
    assert_eq!(device.post("/login", OWNER, None, &[("password", new)]).await.status, StatusCode::SEE_OTHER);
}

#[tokio::test(start_paused = true)]
async fn set_up_is_what_every_page_points_to_until_it_is_done() {
    let (device, code) = device();
    assert_eq!(device.get("/settings", OWNER, None).await.location(), Some("/setup"));
    assert_eq!(device.get("/login", OWNER, None).await.location(), Some("/setup"));
    assert_eq!(device.get("/setup", OWNER, None).await.status, StatusCode::OK);
    let form = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
    assert_eq!(device.post("/setup", OWNER, None, &form).await.location(), Some("/settings"));
    assert_eq!(device.get("/setup", OWNER, None).await.location(), Some("/login"));
    assert_eq!(device.get("/settings", OWNER, None).await.location(), Some("/login"));
    assert_eq!(device.post("/setup", OWNER, None, &form).await.location(), Some("/login"), "spent");
}

/// Before an owner, the status page is public; once the device has one, visitors see its
/// name and that it serves until the owner opens the rest.
#[tokio::test(start_paused = true)]
async fn once_owned_visitors_see_a_glimpse_until_the_owner_opens_the_status_page() {
    let (device, code) = device();
    let visitor = |device: &Device| {
        let device = device.app.clone();
        async move {
            let request = request("GET", "/api/status", "10.0.0.9", None, false).body(Body::empty()).unwrap();
            let response = device.oneshot(request).await.unwrap();
            let body = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    assert!(visitor(&device).await["kernel"].is_string(), "public before set-up");
    let form = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
    let cookie = device.post("/setup", OWNER, None, &form).await.cookie().unwrap();
    let glimpse = visitor(&device).await;
    let keys: Vec<&String> = glimpse.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["hostname", "label", "portico"], "{glimpse}");
    assert_eq!(glimpse["portico"].as_object().unwrap().len(), 1, "{glimpse}");
    assert!(glimpse["portico"]["version"].is_string());
    let page = device.get("/", "10.0.0.9", None).await.body;
    assert!(page.contains("log in") && !page.contains("kernel"), "{page}");
    let hostname = glimpse["hostname"].as_str().unwrap();
    assert!(page.contains(&format!("data-field=\"hostname\">{hostname}<")), "{page}");
    assert!(device.get("/api/status", OWNER, Some(&cookie)).await.body.contains("\"kernel\""));

    let csrf = device.csrf(&cookie).await;
    device.post("/settings/access", OWNER, Some(&cookie), &[("public", "on"), ("csrf", &csrf)]).await;
    assert!(visitor(&device).await["kernel"].is_string(), "opened by the owner");
}

#[tokio::test(start_paused = true)]
async fn every_page_carries_the_same_security_headers() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    for path in ["/", "/api/status", "/healthz", "/login", "/setup", "/settings", "/metrics", "/nowhere"] {
        let answer = device.get(path, OWNER, Some(&cookie)).await;
        let csp = answer.headers.get(header::CONTENT_SECURITY_POLICY).map(|v| v.to_str().unwrap());
        assert_eq!(csp, Some("default-src 'self'; frame-ancestors 'none'"), "{path}");
        assert_eq!(answer.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(answer.headers[header::REFERRER_POLICY], "no-referrer", "{path}");
    }
}

/// Eight changes at once, again and again, while the password changes: each lands whole,
/// none undoes another, and the file always loads.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changes_made_at_once_all_land_and_none_undoes_another() {
    let device = Arc::new(owned().await);
    let cookie = device.log_in(OWNER).await;
    let csrf = device.csrf(&cookie).await;
    for round in 0..10 {
        let changes = (0..8).map(|n| {
            let (device, cookie, csrf) = (device.clone(), cookie.clone(), csrf.clone());
            async move {
                let label = format!("round {round} writer {n}");
                device
                    .post("/settings/label", OWNER, Some(&cookie), &[("label", &label), ("csrf", &csrf)])
                    .await
            }
        });
        for answer in futures_join_all(changes).await {
            assert_eq!(answer.status, StatusCode::SEE_OTHER, "round {round}: {}", answer.body);
        }
        match Store::new(&device.dir).load() {
            super::state::Loaded::Owner(owner) => {
                assert!(owner.label.starts_with(&format!("round {round} ")))
            }
            _ => panic!("round {round}: owner.json does not load"),
        }
    }
    // A label saved while a password change is under way keeps the new password.
    let new = "an entirely new passphrase";
    let password = {
        let (device, cookie, csrf) = (device.clone(), cookie.clone(), csrf.clone());
        tokio::spawn(async move {
            let form = [("current", PASSWORD), ("password", new), ("again", new), ("csrf", csrf.as_str())];
            device.post("/settings/password", OWNER, Some(&cookie), &form).await
        })
    };
    let labels = (0..8).map(|n| {
        let (device, cookie, csrf) = (device.clone(), cookie.clone(), csrf.clone());
        async move {
            device
                .post(
                    "/settings/label",
                    OWNER,
                    Some(&cookie),
                    &[("label", &format!("during {n}")), ("csrf", &csrf)],
                )
                .await
        }
    });
    futures_join_all(labels).await;
    assert_eq!(password.await.unwrap().location(), Some("/login"));
    assert_eq!(device.post("/login", OWNER, None, &[("password", new)]).await.status, StatusCode::SEE_OTHER);
}

/// A damaged file is kept aside; set-up then takes only a code from the journal, not the
/// label's, and the status page stays private meanwhile.
#[tokio::test(start_paused = true)]
async fn a_damaged_file_is_kept_and_set_up_needs_a_code_from_the_journal() {
    const LABEL_CODE: &str = "AAAA-BBBB-CCCC-DDDD";
    let dir = state_directory();
    let (device, code) = device_in(dir.clone(), Some(LABEL_CODE));
    assert_eq!(code, LABEL_CODE);
    let form = [("code", LABEL_CODE), ("password", PASSWORD), ("again", PASSWORD)];
    assert_eq!(device.post("/setup", OWNER, None, &form).await.status, StatusCode::SEE_OTHER);
    let file = dir.join("owner.json");
    let text = std::fs::read_to_string(&file).unwrap();
    let damaged = text.replacen("\"label\":\"\"", "\"label\":\"x\"", 1);
    assert_ne!(damaged, text);
    std::fs::write(&file, &damaged).unwrap();
    std::mem::forget(device); // keeps the directory

    for start in 0..2 {
        let (device, code) = device_in(dir.clone(), Some(LABEL_CODE));
        assert_ne!(code, LABEL_CODE, "start {start}: the label's code is void after damage");
        assert_eq!(code.len(), 19, "start {start}: a code for the journal");
        assert_eq!(std::fs::read_to_string(dir.join("owner.json.damaged")).unwrap(), damaged);
        assert!(!device.get("/api/status", "10.0.0.9", None).await.body.contains("kernel"), "private");
        let with_label_code = device.post("/setup", ATTACKER, None, &form).await;
        assert_eq!(with_label_code.status, StatusCode::FORBIDDEN, "start {start}");
        if start == 1 {
            let form = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
            assert_eq!(device.post("/setup", OWNER, None, &form).await.status, StatusCode::SEE_OTHER);
        } else {
            std::mem::forget(device);
        }
    }
}

/// Puts a directory in place of the owner's file, whose text it returns: read(2) fails
/// with EISDIR, as it would with EIO.
fn make_unreadable(file: &std::path::Path) -> String {
    let text = std::fs::read_to_string(file).unwrap();
    std::fs::remove_file(file).unwrap();
    std::fs::create_dir(file).unwrap();
    text
}

/// A file that cannot be read is not damage: it is left as it is, the owner's pages say
/// what is wrong, and the device recovers by itself once it reads again.
#[tokio::test(start_paused = true)]
async fn an_unreadable_file_is_left_alone_and_read_again_later() {
    let owned = owned().await;
    let file = owned.dir.join("owner.json");
    let text = make_unreadable(&file);
    let dir = owned.dir.clone();
    std::mem::forget(owned);
    let (device, _) = device_in(dir, None);
    let login = device.post("/login", OWNER, None, &[("password", PASSWORD)]).await;
    assert_eq!(login.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(login.body.contains("cannot read"), "{}", login.body);
    assert!(file.is_dir(), "left as it is");
    assert!(!device.get("/api/status", "10.0.0.9", None).await.body.contains("kernel"), "private");
    assert_eq!(device.get("/settings", OWNER, None).await.location(), Some("/login"), "not /setup");

    // The pages say what is wrong now, not what was wrong first.
    std::fs::remove_dir(&file).unwrap();
    std::os::unix::fs::symlink(&file, &file).unwrap(); // ELOOP
    let login = device.post("/login", OWNER, None, &[("password", PASSWORD)]).await;
    assert!(login.body.contains("symbolic links"), "{}", login.body);

    std::fs::remove_file(&file).unwrap();
    std::fs::write(&file, text).unwrap();
    device.log_in(OWNER).await;
}

/// A file that turns unreadable under a running portico is taken neither for damage nor
/// for a device without owner: the owner it read last still logs in, and a change, which
/// must read the file first, says what is wrong.
#[tokio::test(start_paused = true)]
async fn a_file_turning_unreadable_keeps_the_owner_read_last() {
    let device = owned().await;
    let file = device.dir.join("owner.json");
    let text = make_unreadable(&file);
    let cookie = device.log_in(OWNER).await;
    let csrf = device.csrf(&cookie).await;
    let form = [("label", "Hall"), ("csrf", csrf.as_str())];
    let change = device.post("/settings/label", OWNER, Some(&cookie), &form).await;
    assert_eq!(change.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(change.body.contains("cannot read"), "{}", change.body);

    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, text).unwrap();
    let change = device.post("/settings/label", OWNER, Some(&cookie), &form).await;
    assert_eq!(change.status, StatusCode::SEE_OTHER, "{}", change.body);
}

/// A file that says to keep a set-up code it does not have (written by hand) still gets
/// a new code at every start, never a set-up that no code opens.
#[tokio::test(start_paused = true)]
async fn a_file_keeping_no_code_gets_a_new_code_at_every_start() {
    let dir = state_directory();
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::new(&dir);
    store.save(&Owner { keep_code: true, ..Owner::default() }, &store.lock().unwrap()).unwrap();
    for start in 0..2 {
        let (device, code) = device_in(dir.clone(), None);
        assert_eq!(code.len(), 19, "start {start}: a code for the journal");
        if start == 1 {
            let form = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
            assert_eq!(device.post("/setup", OWNER, None, &form).await.location(), Some("/settings"));
        } else {
            std::mem::forget(device); // keeps the directory
        }
    }
}

/// What the updater wrote, as the owner and /metrics see it.
#[tokio::test(start_paused = true)]
async fn the_owner_sees_what_the_updater_did_and_metrics_count_it() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    let page = device.get("/settings", OWNER, Some(&cookie)).await.body;
    assert!(page.contains("The updater has not run yet."), "{page}");
    let now = super::updates::now();
    let report = format!(
        r#"{{"schema":1,"run_at":{},"trigger":"timer","state":"done","result":"rolled-back",
            "detail":"0.3.0 did not answer /healthz within 90 s; 0.2.0 is back.","installed":"0.2.0",
            "available":"0.3.0","rollbacks":2,"last_rollback":{{"at":{},"from":"0.3.0","to":"0.2.0",
            "reason":"no answer <in time>"}},"skipped":["0.3.0"]}}"#,
        now - 7200,
        now - 7000
    );
    std::fs::write(device.dir.join("update-status.json"), report).unwrap();
    let page = device.get("/settings", OWNER, Some(&cookie)).await.body;
    for said in [
        "Last run 2 hours ago: <span data-field=\"update-result\">rolled-back</span>. 0.3.0 did not answer",
        "Available: portico 0.3.0.",
        "Rolled back 2 times; last 1 hour ago, from 0.3.0 to 0.2.0: no answer &lt;in time&gt;",
    ] {
        assert!(page.contains(said), "{said:?} not in {page}");
    }
    let metrics = device.get("/metrics", OWNER, None).await.body;
    for line in [
        format!("portico_update_last_run_timestamp_seconds {}", now - 7200),
        "portico_update_last_result{result=\"rolled-back\"} 1".to_owned(),
        "portico_update_available 1".to_owned(),
        "portico_update_rollbacks_total 2".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line:?} not in {metrics}");
    }
}

/// The owner's buttons write the words the updater reads, and nothing else.
#[tokio::test(start_paused = true)]
async fn the_owners_update_choices_are_written_for_the_updater() {
    let device = owned().await;
    let cookie = device.log_in(OWNER).await;
    let csrf = device.csrf(&cookie).await;
    let read = |name: &str| std::fs::read_to_string(device.dir.join(name)).unwrap_or_default();
    let press = |action: &'static str, automatic: bool| {
        let (device, cookie, csrf) = (&device, cookie.clone(), csrf.clone());
        async move {
            let mut form = vec![("action", action), ("csrf", csrf.as_str())];
            if automatic {
                form.push(("automatic", "on"));
            }
            device.post("/settings/updates", OWNER, Some(&cookie), &form).await
        }
    };
    assert_eq!(press("check", false).await.location(), Some("/settings?saved"));
    assert_eq!(read("update-request"), "check\n");
    assert!(device.get("/settings", OWNER, Some(&cookie)).await.body.contains("waiting for the updater"));
    press("install", false).await;
    assert_eq!(read("update-request"), "install\n");
    press("save", false).await;
    assert_eq!(read("update-settings"), "automatic=no\npostpone_until=0\n");
    let before = super::updates::now();
    press("postpone", false).await;
    let after = super::updates::now();
    let until: u64 = read("update-settings").split("postpone_until=").nth(1).unwrap().trim().parse().unwrap();
    let week = 7 * 24 * 3600;
    assert!((before + week..=after + week).contains(&until), "{until}: not a week from now ({before})");
    assert!(read("update-settings").starts_with("automatic=no\n"), "postponing keeps the choice");
    assert!(device.get("/settings", OWNER, Some(&cookie)).await.body.contains("Stop postponing"));
    press("resume", true).await;
    press("save", true).await;
    assert_eq!(read("update-settings"), "automatic=yes\npostpone_until=0\n");
    assert_eq!(press("reboot", false).await.status, StatusCode::BAD_REQUEST);
    let outsider =
        device.post("/settings/updates", OWNER, None, &[("action", "install"), ("csrf", &csrf)]).await;
    assert_eq!(outsider.status, StatusCode::FORBIDDEN, "a login is needed");
}

/// Under DynamicUser= the state directory systemd names, /var/lib/portico, is a link to
/// private/portico: the owner's state is kept through it.
#[tokio::test(start_paused = true)]
async fn a_state_directory_reached_through_a_link_keeps_the_owner() {
    let real = state_directory();
    std::fs::create_dir_all(&real).unwrap();
    let link = real.with_extension("link");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let (device, code) = device_in(link.clone(), None);
    let form = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
    assert_eq!(device.post("/setup", OWNER, None, &form).await.status, StatusCode::SEE_OTHER);
    assert!(real.join("owner.json").is_file());
    std::fs::remove_file(&link).unwrap();
}

/// `portico reset-owner` clears the password and ends every session, those of earlier
/// states too; the label and who may see the status page stay; set-up takes the code it
/// printed, across restarts, and once.
#[tokio::test(start_paused = true)]
async fn a_reset_clears_the_password_keeps_the_settings_and_takes_its_own_code() {
    let device = owned().await;
    let before_change = device.log_in(OWNER).await;
    let cookie = device.log_in(OWNER).await;
    let csrf = device.csrf(&cookie).await;
    device.post("/settings/label", OWNER, Some(&cookie), &[("label", "Hall"), ("csrf", &csrf)]).await;
    device.post("/settings/access", OWNER, Some(&cookie), &[("public", "on"), ("csrf", &csrf)]).await;
    let new = "an entirely new passphrase";
    let form = [("current", PASSWORD), ("password", new), ("again", new), ("csrf", csrf.as_str())];
    assert_eq!(
        device.post("/settings/password", OWNER, Some(&cookie), &form).await.location(),
        Some("/login")
    );

    // No login since the change: the two sessions of the state before it are still in the
    // table, and a reset must not bring their state back.
    let code = super::account::reset(&Store::new(&device.dir)).unwrap();
    for session in [&cookie, &before_change] {
        assert_eq!(device.get("/settings", OWNER, Some(session)).await.location(), Some("/setup"));
    }
    let old_password = device.post("/login", OWNER, None, &[("password", new)]).await;
    assert_eq!((old_password.location(), old_password.cookie()), (Some("/setup"), None));
    let visitor = device.get("/api/status", "10.0.0.9", None).await.body;
    assert!(visitor.contains("kernel") && visitor.contains("\"Hall\""), "{visitor}");
    let set_up = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
    let owners = device.post("/setup", OWNER, None, &set_up).await;
    assert_eq!(owners.location(), Some("/settings"));

    // A reset ends the sessions of the state it resets, and its code outlives a restart.
    let code = super::account::reset(&Store::new(&device.dir)).unwrap();
    assert_eq!(
        device.get("/settings", OWNER, Some(&owners.cookie().unwrap())).await.location(),
        Some("/setup")
    );
    let dir = device.dir.clone();
    std::mem::forget(device); // keeps the directory
    let (device, generated) = device_in(dir, None);
    assert!(generated.is_empty(), "a restart keeps the reset's code: {generated}");
    let set_up = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
    assert_eq!(device.post("/setup", OWNER, None, &set_up).await.location(), Some("/settings"));
    assert_eq!(device.post("/setup", ATTACKER, None, &set_up).await.location(), Some("/login"), "spent");
    device.log_in(OWNER).await;
}

/// `reset-owner` on a damaged file cannot know the generation the running portico's
/// sessions have: it takes one none of them can have, whatever it was.
#[tokio::test(start_paused = true)]
async fn a_reset_of_a_damaged_file_ends_the_running_sessions() {
    for changes in 0..3 {
        let device = owned().await;
        let mut password = PASSWORD.to_owned();
        for n in 0..changes {
            let cookie = device.log_in_with(OWNER, &password).await;
            let csrf = device.csrf(&cookie).await;
            let new = format!("an entirely new passphrase {n}");
            let form = [("current", password.as_str()), ("password", &new), ("again", &new), ("csrf", &csrf)];
            assert_eq!(
                device.post("/settings/password", OWNER, Some(&cookie), &form).await.location(),
                Some("/login")
            );
            password = new;
        }
        let session = device.log_in_with(OWNER, &password).await;
        std::fs::write(device.dir.join("owner.json"), "{ torn").unwrap();
        super::account::reset(&Store::new(&device.dir)).unwrap();
        let after = device.get("/settings", OWNER, Some(&session)).await;
        assert_eq!(after.location(), Some("/setup"), "after {changes} password changes");
    }
}

/// `reset-owner` on a device that never had an owner leaves it as new: its status page
/// public until set-up, and set-up taking the code the reset printed.
#[tokio::test(start_paused = true)]
async fn a_reset_before_any_owner_leaves_the_device_as_new() {
    let dir = state_directory();
    std::fs::create_dir_all(&dir).unwrap();
    let code = super::account::reset(&Store::new(&dir)).unwrap();
    let (device, _) = device_in(dir, None);
    assert!(device.get("/api/status", "10.0.0.9", None).await.body.contains("kernel"), "public");
    let set_up = [("code", code.as_str()), ("password", PASSWORD), ("again", PASSWORD)];
    assert_eq!(device.post("/setup", OWNER, None, &set_up).await.location(), Some("/settings"));
}
