//! The owner's login and settings against the real binary: set-up with the one-time code,
//! password rules, sessions, CSRF, brute-force delays, memory under a login flood,
//! settings that survive restarts and power loss, and `portico reset-owner`.

#![cfg(feature = "tls")]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::tls::Client;
use common::*;
use nix::sys::signal::Signal;

const PASSWORD: &str = "correct horse battery staple";

struct Device {
    portico: Portico,
    http: SocketAddr,
    https: SocketAddr,
    /// Kept open for portico's READY=1 and STOPPING=1.
    _notify: NotifySocket,
}

fn start(state: &Path, args: &[&str]) -> Device {
    let (start, http, https) = both_sockets(state);
    let notify = NotifySocket::new();
    let portico = start.args(args).env("NOTIFY_SOCKET", notify.path()).spawn();
    notify.wait_for("READY=1");
    Device { portico, http, https, _notify: notify }
}

impl Device {
    /// The set-up code from the newest line of the log that has one.
    fn setup_code(&self) -> String {
        let log = self.portico.stderr();
        let line = log.lines().rev().find(|l| l.contains("set-up code ")).unwrap_or_else(|| panic!("{log}"));
        line.split("set-up code ").nth(1).unwrap().split(';').next().unwrap().to_owned()
    }

    fn browser(&self) -> Browser {
        Browser { addr: self.https, cookie: None }
    }

    fn restart(mut self, state: &Path, args: &[&str]) -> Device {
        self.portico.signal(Signal::SIGTERM);
        assert_eq!(self.portico.wait_exit(PATIENCE).code(), Some(0));
        start(state, args)
    }
}

/// Form encoding for the test's values.
fn encode(form: &[(&str, &str)]) -> String {
    let escape = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    form.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect::<Vec<_>>().join("&")
}

/// A browser: HTTPS, its cookie, and the Origin a page of the device sends.
struct Browser {
    addr: SocketAddr,
    cookie: Option<String>,
}

impl Browser {
    fn send(&mut self, method: &str, path: &str, form: &[(&str, &str)], origin: Option<&str>) -> Response {
        let mut headers = String::new();
        if let Some(cookie) = &self.cookie {
            headers.push_str(&format!("Cookie: {cookie}\r\n"));
        }
        if let Some(origin) = origin {
            headers.push_str(&format!("Origin: {origin}\r\n"));
        }
        if method == "POST" {
            headers.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        let response = Client::connect(self.addr).request(method, path, &headers, &encode(form));
        if let Some(set) = header(&response, "set-cookie") {
            let pair = set.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        response
    }

    fn get(&mut self, path: &str) -> Response {
        self.send("GET", path, &[], None)
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        self.send("POST", path, form, Some("https://device"))
    }

    /// The form token of the settings page.
    fn csrf(&mut self) -> String {
        let page = self.get("/settings");
        assert_eq!(page.status, 200, "{}", page.body);
        let at = page.body.find("name=\"csrf\" value=\"").unwrap() + 19;
        page.body[at..at + 32].to_owned()
    }

    fn set_up(&mut self, code: &str, password: &str) -> Response {
        self.post("/setup", &[("code", code), ("password", password), ("again", password)])
    }

    fn log_in(&mut self, password: &str) -> Response {
        self.post("/login", &[("password", password)])
    }
}

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

fn owned_device(args: &[&str]) -> (Device, PathBuf) {
    let state = state_directory();
    let device = start(&state, args);
    let response = device.browser().set_up(&device.setup_code(), PASSWORD);
    assert_eq!(response.status, 303, "{}", response.body);
    (device, state)
}

#[test]
fn set_up_takes_the_right_code_once() {
    let state = state_directory();
    let device = start(&state, &[]);
    let code = device.setup_code();
    assert_eq!(code.len(), 19, "{code}");
    let mut browser = device.browser();
    assert_eq!(browser.get("/settings").status, 303, "no owner yet: to /setup");
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/setup"));

    assert_eq!(browser.set_up("AAAA-BBBB-CCCC-DDDD", PASSWORD).status, 403);
    assert!(
        device
            .portico
            .stderr()
            .contains("login failed: address=127.0.0.1 user=owner reason=wrong-setup-code")
    );
    let done = browser.set_up(&code.to_lowercase(), PASSWORD);
    assert_eq!((done.status, header(&done, "location")), (303, Some("/settings")));
    let cookie = header(&done, "set-cookie").unwrap();
    assert!(
        cookie.starts_with("__Host-portico=") && cookie.contains("Secure; HttpOnly; SameSite=Strict"),
        "{cookie}"
    );
    assert_eq!(browser.get("/settings").status, 200);

    let mut other = device.browser();
    let again = other.set_up(&code, "another long passphrase here");
    assert_eq!(header(&again, "location"), Some("/login"), "the code is spent");
    assert_eq!(other.log_in("another long passphrase here").status, 403);
    assert!(std::fs::read_to_string(state.join("owner.json")).unwrap().contains("$argon2id$"));
}

#[test]
fn weak_passwords_are_refused() {
    let device = start(&state_directory(), &[]);
    let code = device.setup_code();
    let mut browser = device.browser();
    for weak in ["short", "passwordpassword", "aaaaaaaaaaaaaaaaaaaa", "123456789012345", code.as_str()] {
        let response = browser.set_up(&code, weak);
        assert_eq!(response.status, 400, "{weak:?} was taken");
    }
    assert_eq!(browser.set_up(&code, PASSWORD).status, 303);
}

#[test]
fn owner_pages_are_https_only() {
    let (device, _state) = owned_device(&[]);
    let plain = request(connect(device.http), "GET", "/settings", "").unwrap();
    assert_eq!(plain.status, 308);
    assert_eq!(header(&plain, "location"), Some("https://device/settings"));
    let mut stream = connect(device.http);
    let body = format!("password={}", PASSWORD.replace(' ', "+"));
    write!(
        stream,
        "POST /login HTTP/1.1\r\nHost: device\r\nOrigin: http://device\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let posted = read_response(stream).unwrap();
    assert_eq!(posted.status, 308, "a password is never taken over plain HTTP");
    assert!(header(&posted, "set-cookie").is_none());
}

#[test]
fn login_logout_and_idle_expiry() {
    let (device, _state) = owned_device(&["--session-idle-timeout", "1s"]);
    let mut browser = device.browser();
    assert_eq!(browser.log_in("not the password at all").status, 403);
    assert_eq!(header(&browser.log_in(PASSWORD), "location"), Some("/settings"));
    let csrf = browser.csrf();
    assert_eq!(header(&browser.post("/logout", &[("csrf", &csrf)]), "location"), Some("/login"));
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/login"));

    browser.log_in(PASSWORD);
    assert_eq!(browser.get("/settings").status, 200);
    std::thread::sleep(Duration::from_millis(1300)); // the idle timeout itself is under test
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/login"), "idle session expired");
}

#[test]
fn a_change_without_the_form_token_or_from_another_origin_is_refused() {
    let (device, state) = owned_device(&[]);
    let mut browser = device.browser();
    browser.log_in(PASSWORD);
    let csrf = browser.csrf();
    assert_eq!(
        browser.post("/settings/label", &[("label", "no token")]).status,
        422,
        "the token is required"
    );
    assert_eq!(browser.post("/settings/label", &[("label", "bad"), ("csrf", &"0".repeat(32))]).status, 403);
    let foreign = browser.send(
        "POST",
        "/settings/label",
        &[("label", "x"), ("csrf", &csrf)],
        Some("https://evil.example"),
    );
    assert_eq!(foreign.status, 403);
    let no_origin = browser.send("POST", "/settings/label", &[("label", "x"), ("csrf", &csrf)], None);
    assert_eq!(no_origin.status, 403);
    assert_eq!(browser.post("/settings/label", &[("label", "Lab bench 3"), ("csrf", &csrf)]).status, 303);
    assert!(get(device.http, "/").body.contains("Lab bench 3"));
    let _ = state;
}

#[test]
fn wrong_passwords_take_growing_time_while_others_are_served() {
    let (device, _state) = owned_device(&[]);
    let mut attacker = device.browser();
    let mut times = Vec::new();
    let mut page_loads = Vec::new();
    for _ in 0..8 {
        let started = Instant::now();
        assert_eq!(attacker.log_in("wrong guess number one two").status, 403);
        times.push(started.elapsed());
        let started = Instant::now();
        assert_eq!(get(device.http, "/").status, 200);
        page_loads.push(started.elapsed());
    }
    println!("wrong logins took {times:?}; page loads meanwhile {page_loads:?}");
    assert!(times[7] > times[0] + Duration::from_millis(900), "no growing delay: {times:?}");
    assert!(page_loads.iter().all(|t| *t < Duration::from_secs(1)), "{page_loads:?}");
    let lines =
        device.portico.stderr().lines().filter(|l| l.contains("login failed: address=127.0.0.1")).count();
    assert_eq!(lines, 8, "one line per failure");
    // Not a lockout: the owner still gets in (after the wait).
    assert_eq!(attacker.log_in(PASSWORD).status, 303);
}

#[test]
fn a_flood_of_logins_stays_within_the_units_memory_limit() {
    let (device, _state) = owned_device(&[]);
    let clients: Vec<_> = (0..50)
        .map(|i| {
            let addr = device.https;
            std::thread::spawn(move || {
                let mut browser = Browser { addr, cookie: None };
                browser.log_in(&format!("flood guess number {i:04}")).status
            })
        })
        .collect();
    let started = Instant::now();
    assert_eq!(get(device.http, "/healthz").status, 200);
    let health = started.elapsed();
    // Each is refused: a wrong password (403), or past the few checks that may wait at
    // once, busy (503) at once.
    let answers: Vec<u16> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(answers.iter().all(|a| *a == 403 || *a == 503), "{answers:?}");
    assert!(answers.contains(&403), "{answers:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", device.portico.pid())).unwrap();
    let peak_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap()
        .trim()
        .trim_end_matches(" kB")
        .parse()
        .unwrap();
    println!(
        "50 parallel logins: peak RSS {peak_kib} KiB; /healthz meanwhile {health:?}; answers {answers:?}"
    );
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB is over the unit's MemoryMax=64M");
}

#[test]
fn settings_survive_a_restart_and_a_new_password_logs_out_everywhere() {
    let (device, state) = owned_device(&[]);
    let (mut first, mut second) = (device.browser(), device.browser());
    first.log_in(PASSWORD);
    second.log_in(PASSWORD);
    let csrf = first.csrf();
    first.post("/settings/label", &[("label", "Kept"), ("csrf", &csrf)]);
    let device = device.restart(&state, &[]);
    assert!(get(device.http, "/").body.contains("Kept"));

    let mut browser = device.browser();
    browser.log_in(PASSWORD);
    let csrf = browser.csrf();
    let new = "an entirely new passphrase";
    let changed = browser.post(
        "/settings/password",
        &[("current", PASSWORD), ("password", new), ("again", new), ("csrf", &csrf)],
    );
    assert_eq!(header(&changed, "location"), Some("/login"));
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/login"));
    assert_eq!(browser.log_in(PASSWORD).status, 403);
    assert_eq!(browser.log_in(new).status, 303);
}

#[test]
fn the_owner_can_make_the_status_page_private() {
    let (device, _state) = owned_device(&[]);
    assert_eq!(get(device.http, "/api/status").status, 200, "public by default");
    let mut browser = device.browser();
    browser.log_in(PASSWORD);
    let csrf = browser.csrf();
    assert_eq!(browser.post("/settings/access", &[("csrf", &csrf)]).status, 303);
    assert_eq!(
        request(connect(device.http), "GET", "/", "").unwrap().status,
        308,
        "to HTTPS, then the login"
    );
    assert_eq!(header(&device.browser().get("/api/status"), "location"), Some("/login"));
    assert_eq!(browser.get("/api/status").status, 200);
    assert_eq!(get(device.http, "/healthz").status, 200, "health stays public");
}

#[test]
fn reset_owner_clears_the_password_and_prints_a_new_code() {
    let (device, state) = owned_device(&[]);
    let mut browser = device.browser();
    browser.log_in(PASSWORD);
    // A private status page: the requests that ask portico for the owner most often see
    // the reset too.
    let csrf = browser.csrf();
    assert_eq!(browser.post("/settings/access", &[("csrf", &csrf)]).status, 303);
    assert_eq!(browser.get("/api/status").status, 200);
    assert_eq!(header(&device.browser().get("/"), "location"), Some("/login"));
    let output = std::process::Command::new(BIN)
        .args(["reset-owner", "--state-directory", state.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}{}", String::from_utf8_lossy(&output.stderr));
    let code = said.lines().find_map(|l| l.strip_prefix("Set-up code: ")).unwrap().to_owned();
    assert_eq!(header(&browser.get("/api/status"), "location"), Some("/setup"), "the session ended");
    assert_eq!(header(&device.browser().get("/"), "location"), Some("/setup"));
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/setup"), "every session ended");
    assert_eq!(browser.log_in(PASSWORD).status, 303, "to /setup: no password any more");
    let new = "the owner starts over here";
    assert_eq!(browser.set_up(&code, new).status, 303);
    // Kept across a restart until used, then spent.
    let device = device.restart(&state, &[]);
    assert_eq!(device.browser().log_in(new).status, 303);
}

#[test]
fn a_damaged_state_file_means_set_up_again_never_an_open_device() {
    let (device, state) = owned_device(&[]);
    let file = state.join("owner.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() - 20]).unwrap();
    let device = device.restart(&state, &[]);
    assert!(device.portico.stderr().contains("damaged"), "{}", device.portico.stderr());
    let mut browser = device.browser();
    assert_eq!(header(&browser.log_in(PASSWORD), "location"), Some("/setup"));
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/setup"));
    assert_eq!(browser.set_up(&device.setup_code(), PASSWORD).status, 303);
}

/// SIGKILL at random points while settings are written, 200 times: afterwards the label
/// is the old or the new one, and exactly the owner's password logs in.
#[test]
fn power_loss_during_writes_leaves_the_old_state_or_the_new() {
    let (device, state) = owned_device(&[]);
    let mut device = device;
    let mut label = String::new();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200 {
        let mut browser = device.browser();
        assert_eq!(browser.log_in(PASSWORD).status, 303, "round {round}");
        let csrf = browser.csrf();
        let next = format!("label {round}");
        let addr = device.https;
        let cookie = browser.cookie.clone().unwrap();
        let writer = std::thread::spawn(move || {
            // One kept-alive connection, posting until portico dies under it.
            let mut client = Client::connect(addr);
            let headers = format!(
                "Cookie: {cookie}\r\nOrigin: https://device\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            );
            for _ in 0..20 {
                client.request(
                    "POST",
                    "/settings/label",
                    &headers,
                    &encode(&[("label", &next), ("csrf", &csrf)]),
                );
            }
        });
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 20_000));
        device.portico.signal(Signal::SIGKILL);
        let _ = device.portico.wait_exit(PATIENCE);
        let _ = writer.join();
        device = start(&state, &[]);
        let shown = api_status(device.http)["label"].as_str().unwrap().to_owned();
        assert!(
            shown == label || shown == format!("label {round}"),
            "round {round}: label {shown:?}, was {label:?}"
        );
        label = shown;
        assert!(!device.portico.stderr().contains("damaged"), "round {round}: {}", device.portico.stderr());
    }
    let mut browser = device.browser();
    assert_eq!(browser.log_in("not the owner's password!").status, 403);
    assert_eq!(browser.log_in(PASSWORD).status, 303);
}

/// The owner uploads a certificate and key: checked, then used for new connections at
/// once; a key that is not the certificate's is refused and the old one stays.
#[test]
fn an_uploaded_certificate_replaces_the_generated_one_without_a_restart() {
    let (device, state) = owned_device(&[]);
    let other_state = state_directory();
    let other = start(&other_state, &[]);
    let new_fingerprint = Client::connect(other.https).fingerprint;
    let cert = std::fs::read_to_string(other_state.join("tls.crt")).unwrap();
    let key = std::fs::read_to_string(other_state.join("tls.key")).unwrap();
    let old_fingerprint = Client::connect(device.https).fingerprint;

    let mut browser = device.browser();
    browser.log_in(PASSWORD);
    let csrf = browser.csrf();
    let own_key = std::fs::read_to_string(state.join("tls.key")).unwrap();
    let mismatched =
        browser.post("/settings/certificate", &[("certificate", &cert), ("key", &own_key), ("csrf", &csrf)]);
    assert_eq!(mismatched.status, 400, "{}", mismatched.body);
    assert!(mismatched.body.contains("do not belong together"), "{}", mismatched.body);
    assert_eq!(Client::connect(device.https).fingerprint, old_fingerprint);

    let replaced =
        browser.post("/settings/certificate", &[("certificate", &cert), ("key", &key), ("csrf", &csrf)]);
    assert_eq!(replaced.status, 303, "{}", replaced.body);
    assert_eq!(Client::connect(device.https).fingerprint, new_fingerprint);
    assert_eq!(api_status(device.http)["certificate"]["fingerprint_sha256"], new_fingerprint.as_str());
}
