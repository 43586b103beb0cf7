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

const PASSWORD: &str = "plum kettle under the stairs";

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
        start(state, args, &[])
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
    let device = start(&state, args, &[]);
    let response = device.browser().set_up(&device.setup_code(), PASSWORD);
    assert_eq!(response.status, 303, "{}", response.body);
    (device, state)
}

#[test]
fn set_up_takes_the_right_code_once() {
    let state = state_directory();
    let device = start(&state, &[], &[]);
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
    // argon2id at OWASP's minimum: 19 MiB, 2 passes, 1 lane.
    assert!(
        std::fs::read_to_string(state.join("owner.json"))
            .unwrap()
            .contains("$argon2id$v=19$m=19456,t=2,p=1$")
    );
}

#[test]
fn weak_passwords_are_refused() {
    let device = start(&state_directory(), &[], &[]);
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
    let kept = browser.cookie.clone();
    assert_eq!(header(&browser.post("/logout", &[("csrf", &csrf)]), "location"), Some("/login"));
    assert_eq!(browser.cookie, None, "the browser is told to forget it");
    browser.cookie = kept;
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/login"), "and the device has");

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

/// The waits run beside other requests, not in their way: with one worker thread, the
/// health check is answered while a login waits out its delay and its argon2 hash.
#[test]
fn wrong_passwords_take_growing_time_while_others_are_served() {
    let (device, _state) = owned_device(&["--workers", "1"]);
    let mut attacker = device.browser();
    let mut times = Vec::new();
    for _ in 0..6 {
        let started = Instant::now();
        assert_eq!(attacker.log_in("wrong guess number one two").status, 403);
        times.push(started.elapsed());
    }
    println!("wrong logins took {times:?}");
    // Each took at least its delay, however busy the machine (the router tests check the
    // delays exactly): none for three, then 0.25 s, doubling.
    for (n, least) in [(3, 250), (4, 500), (5, 1000)] {
        assert!(times[n] >= Duration::from_millis(least), "guess {n} took {:?}: {times:?}", times[n]);
    }
    let lines =
        device.portico.stderr().lines().filter(|l| l.contains("login failed: address=127.0.0.1")).count();
    assert_eq!(lines, 6, "one line per failure");

    // The next guess waits 2 s; /healthz, asked after it was sent, must be answered first.
    let addr = device.https;
    let guess = std::thread::spawn(move || {
        let status = Browser { addr, cookie: None }.log_in("wrong guess number one two").status;
        (status, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(200)); // the guess is sent and waiting
    assert_eq!(get(device.http, "/healthz").status, 200);
    let health_answered = Instant::now();
    let (status, guess_answered) = guess.join().unwrap();
    assert_eq!(status, 403);
    assert!(health_answered < guess_answered, "/healthz waited for the login's delay");
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
fn settings_survive_a_restart_sessions_do_not_and_a_new_password_logs_out_everywhere() {
    let (device, state) = owned_device(&[]);
    let (mut first, mut second) = (device.browser(), device.browser());
    first.log_in(PASSWORD);
    second.log_in(PASSWORD);
    let csrf = first.csrf();
    assert_eq!(first.post("/settings/label", &[("label", "Kept"), ("csrf", &csrf)]).status, 303);
    assert_eq!(second.get("/settings").status, 200);
    let device = device.restart(&state, &[]);
    assert!(get(device.http, "/").body.contains("Kept"));
    let mut returning = Browser { addr: device.https, cookie: second.cookie.clone() };
    assert_eq!(
        header(&returning.get("/settings"), "location"),
        Some("/login"),
        "sessions live in memory only"
    );

    let (mut browser, mut other) = (device.browser(), device.browser());
    browser.log_in(PASSWORD);
    other.log_in(PASSWORD);
    assert_eq!(other.get("/settings").status, 200);
    let csrf = browser.csrf();
    let new = "an entirely new passphrase";
    let changed = browser.post(
        "/settings/password",
        &[("current", PASSWORD), ("password", new), ("again", new), ("csrf", &csrf)],
    );
    assert_eq!(header(&changed, "location"), Some("/login"));
    assert_eq!(header(&other.get("/settings"), "location"), Some("/login"), "the other session ended too");
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/login"));
    assert_eq!(browser.log_in(PASSWORD).status, 403);
    assert_eq!(browser.log_in(new).status, 303);
}

#[test]
fn once_owned_visitors_see_a_glimpse_until_the_owner_opens_the_status_page() {
    let (device, _state) = owned_device(&[]);
    let glimpse = api_status(device.http);
    assert!(glimpse["kernel"].is_null() && glimpse["process"].is_null(), "{glimpse}");
    assert!(glimpse["hostname"].is_string() && glimpse["portico"]["version"].is_string(), "{glimpse}");
    assert!(!get(device.http, "/").body.contains("Kernel"));
    let mut browser = device.browser();
    browser.log_in(PASSWORD);
    assert!(browser.get("/api/status").body.contains("\"kernel\""), "the owner sees it all");
    let csrf = browser.csrf();
    assert_eq!(browser.post("/settings/access", &[("public", "on"), ("csrf", &csrf)]).status, 303);
    assert!(api_status(device.http)["kernel"].is_string(), "opened to everyone");
    assert_eq!(browser.post("/settings/access", &[("csrf", &csrf)]).status, 303);
    assert!(api_status(device.http)["kernel"].is_null(), "closed again");
    assert_eq!(get(device.http, "/healthz").status, 200, "health stays public");
}

#[test]
fn reset_owner_clears_the_password_and_prints_a_new_code() {
    let (device, state) = owned_device(&[]);
    let mut browser = device.browser();
    browser.log_in(PASSWORD);
    // The status page is private once owned: the requests that ask portico for the owner
    // most often see the reset too.
    assert!(browser.get("/api/status").body.contains("\"kernel\""));
    let output = std::process::Command::new(BIN)
        .args(["reset-owner", "--state-directory", state.to_str().unwrap()])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{said}{}", String::from_utf8_lossy(&output.stderr));
    let code = said.lines().find_map(|l| l.strip_prefix("Set-up code: ")).unwrap().to_owned();
    assert!(!browser.get("/api/status").body.contains("\"kernel\""), "the session ended");
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/setup"), "every session ended");
    assert_eq!(browser.log_in(PASSWORD).status, 303, "to /setup: no password any more");
    let new = "the owner starts over here";
    assert_eq!(browser.set_up(&code, new).status, 303);
    // Kept across a restart until used, then spent.
    let device = device.restart(&state, &[]);
    assert_eq!(device.browser().log_in(new).status, 303);
}

/// A damaged file: kept aside, the device is set up again with a code from its journal
/// (never the label's, provisioned as a credential here), and stays private meanwhile.
#[test]
fn a_damaged_state_file_means_set_up_again_never_an_open_device() {
    const LABEL_CODE: &str = "AAAA-BBBB-CCCC-DDDD";
    let state = state_directory();
    let credentials = state.join("credentials");
    std::fs::create_dir_all(&credentials).unwrap();
    std::fs::write(credentials.join("setup-code"), format!("{LABEL_CODE}\n")).unwrap();
    let credentials = credentials.to_str().unwrap().to_owned();
    let start_with_label = |state: &Path| start(state, &[], &[("CREDENTIALS_DIRECTORY", &credentials)]);
    let device = start_with_label(&state);
    assert_eq!(device.browser().set_up(LABEL_CODE, PASSWORD).status, 303);
    let file = state.join("owner.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, &text[..text.len() - 20]).unwrap();
    drop(device);

    let device = start_with_label(&state);
    assert!(device.portico.stderr().contains("damaged"), "{}", device.portico.stderr());
    assert_eq!(std::fs::read_to_string(state.join("owner.json.damaged")).unwrap(), text[..text.len() - 20]);
    assert!(api_status(device.http)["kernel"].is_null(), "the status page stays private");
    let mut browser = device.browser();
    assert_eq!(header(&browser.log_in(PASSWORD), "location"), Some("/setup"));
    assert_eq!(header(&browser.get("/settings"), "location"), Some("/setup"));
    assert_eq!(browser.set_up(LABEL_CODE, PASSWORD).status, 403, "the label's code is void");
    assert_eq!(browser.set_up(&device.setup_code(), PASSWORD).status, 303);
}

/// A file that cannot be read is no damage: portico serves, leaves the file alone and says
/// what is wrong, and the owner's pages work again once it reads.
#[test]
fn an_unreadable_state_file_is_left_alone_and_port_80_still_serves() {
    let (device, state) = owned_device(&[]);
    let file = state.join("owner.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_file(&file).unwrap();
    std::fs::create_dir(&file).unwrap(); // read(2) fails (EISDIR), as it would with EIO
    let device = device.restart(&state, &[]);
    assert!(device.portico.stderr().contains("cannot be read"), "{}", device.portico.stderr());
    assert_eq!(get(device.http, "/healthz").status, 200);
    assert!(api_status(device.http)["kernel"].is_null(), "private while unreadable");
    let refused = device.browser().log_in(PASSWORD);
    assert_eq!(refused.status, 500);
    assert!(refused.body.contains("cannot read"), "{}", refused.body);
    assert!(file.is_dir(), "left as it was");
    std::fs::remove_dir(&file).unwrap();
    std::fs::write(&file, text).unwrap();
    assert_eq!(device.browser().log_in(PASSWORD).status, 303);
}

/// A state directory that cannot be made (here: under a file) is no reason to stop serving:
/// port 80 and 443 answer, and the owner's pages say what is wrong.
#[test]
fn a_state_directory_that_cannot_be_made_keeps_nothing_from_serving() {
    let blocker = state_directory();
    std::fs::create_dir_all(&blocker).unwrap();
    std::fs::write(blocker.join("file"), "not a directory\n").unwrap();
    let state = blocker.join("file").join("state");
    let device = start(&state, &[], &[]);
    assert_eq!(get(device.http, "/healthz").status, 200);
    let refused = device.browser().log_in(PASSWORD);
    assert_eq!(refused.status, 500, "{}", refused.body);
    assert!(refused.body.contains("Not a directory"), "{}", refused.body);
    assert!(device.portico.stderr().contains("cannot be read or kept"), "{}", device.portico.stderr());
}

/// `portico reset-owner` is run by root in a directory the service's user owns: a link
/// that user planted where the old code put its temporary file must not be followed.
#[test]
fn reset_owner_as_root_follows_no_link_the_service_user_planted() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: reset_owner_as_root_follows_no_link_the_service_user_planted needs root");
        return;
    }
    let (device, state) = owned_device(&[]);
    drop(device);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let victim = std::env::temp_dir().join(format!("portico-victim-{}", std::process::id()));
    std::fs::write(&victim, "root's own file\n").unwrap();
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        nix::unistd::chown(&path, Some(nobody.uid), Some(nobody.gid)).unwrap();
    }
    nix::unistd::chown(&state, Some(nobody.uid), Some(nobody.gid)).unwrap();
    std::os::unix::fs::symlink(&victim, state.join("owner.tmp")).unwrap();
    std::os::unix::fs::symlink(&victim, state.join(".owner.json.tmp")).unwrap();
    let output = std::process::Command::new(BIN)
        .args(["reset-owner", "--state-directory", state.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's own file\n");
    assert_eq!(std::fs::metadata(&victim).unwrap().uid(), 0);
    assert_eq!(std::fs::metadata(state.join("owner.json")).unwrap().uid(), nobody.uid.as_raw());
    std::fs::remove_file(&victim).unwrap();
}

/// SIGKILL at random points while settings are written, 200 times: afterwards the file
/// loads, the label is the one whose save was answered, and exactly the owner's password
/// logs in. This is about
/// atomicity (a process killed mid-write): SIGKILL keeps the page cache, so durability
/// across a power cut is tested in QEMU (ci/qemu-test.sh), where a reset loses it.
#[test]
fn a_killed_portico_leaves_the_old_state_or_the_new() {
    let (device, state) = owned_device(&["--session-idle-timeout", "1h"]);
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
        let writing = next.clone();
        let (first_saved, saved_once) = std::sync::mpsc::channel();
        let writer = std::thread::spawn(move || {
            // One kept-alive connection, posting until portico dies under it: every answer
            // it gets before then is a saved label.
            let Some(mut client) = Client::try_connect(addr) else { return 0 };
            let headers = format!(
                "Cookie: {cookie}\r\nOrigin: https://device\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            );
            let mut saved = 0;
            for _ in 0..20 {
                let body = encode(&[("label", &writing), ("csrf", &csrf)]);
                match client.try_request("POST", "/settings/label", &headers, &body) {
                    Some(response) => {
                        assert_eq!(response.status, 303, "{}", response.body);
                        saved += 1;
                        let _ = first_saved.send(());
                    }
                    None => break,
                }
            }
            saved
        });
        // Killed while it writes: after the first save, at a random point of the next ones.
        saved_once.recv_timeout(PATIENCE).expect("the first save was answered");
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_micros(seed % 20_000));
        device.portico.signal(Signal::SIGKILL);
        let _ = device.portico.wait_exit(PATIENCE);
        let saved = writer.join().expect("the writer got an answer other than 303");
        device = start(&state, &["--session-idle-timeout", "1h"], &[]);
        let mut owner = device.browser();
        owner.log_in(PASSWORD);
        let shown = api_status_of(&mut owner)["label"].as_str().unwrap().to_owned();
        assert!(saved > 0);
        assert_eq!(shown, next, "round {round}: {saved} saves were answered, the label was {label:?}");
        label = shown;
        assert!(!device.portico.stderr().contains("damaged"), "round {round}: {}", device.portico.stderr());
    }
    let mut browser = device.browser();
    assert_eq!(browser.log_in("not the owner's password!").status, 403);
    assert_eq!(browser.log_in(PASSWORD).status, 303);
}

fn api_status_of(browser: &mut Browser) -> serde_json::Value {
    serde_json::from_str(&browser.get("/api/status").body).unwrap()
}

/// The owner uploads a certificate and key: checked, then used for new connections at
/// once; a key that is not the certificate's is refused and the old one stays.
#[test]
fn an_uploaded_certificate_replaces_the_generated_one_without_a_restart() {
    let (device, state) = owned_device(&[]);
    let other_state = state_directory();
    let other = start(&other_state, &[], &[]);
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
    assert_eq!(api_status_of(&mut browser)["certificate"]["fingerprint_sha256"], new_fingerprint.as_str());
}
