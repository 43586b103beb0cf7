//! hello-device as a team checks its own binary: started with the sockets systemd passes
//! (portico's harness, app/tests/common), its page and its setting, its endpoint behind
//! the owner's login, and portico's pages and server around them.

#[path = "../../../app/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;

use common::owner::{self, Session};
use common::tls::Client;
use common::*;

/// hello-device with both sockets, as hello-device.socket and hello-device-https.socket
/// pass them, a set-up code provisioned as the credential `setup-code`, and the test's
/// flags and environment: (device, http address, https address).
fn start(args: &[&str], env: &[(&str, &str)]) -> (Portico, SocketAddr, SocketAddr) {
    let (start, http, https) = both_sockets(&state_directory());
    let credentials = owner::credentials();
    let mut start = start.args(args).env("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap());
    for (key, value) in env {
        start = start.env(key, value);
    }
    (start.spawn(), http, https)
}

#[test]
fn the_page_greets_with_its_setting_from_the_default_a_flag_or_the_environment() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 3] = [
        (&[], &[], "<h1>Hello from this device</h1>"),
        // A flag wins over the environment.
        (&["--greeting", "Howdy"], &[("PORTICO_GREETING", "Hi")], "<h1>Howdy from this device</h1>"),
        (&[], &[("PORTICO_GREETING", "Tea & <cake>")], "<h1>Tea &amp; &lt;cake&gt; from this device</h1>"),
    ];
    for (args, env, shown) in cases {
        let (_device, http, _) = start(args, env);
        let page = get(http, "/hello");
        assert_eq!(page.status, 200, "{args:?} {env:?}: {}", page.body);
        assert!(page.head.contains("content-type: text/html"), "{}", page.head);
        assert!(page.body.contains(shown), "{args:?} {env:?}: want {shown}, got {}", page.body);
    }
}

#[test]
fn the_owners_endpoint_sends_to_the_setup_then_the_login_and_answers_the_owner() {
    let (_device, http, https) = start(&["--greeting", "Howdy"], &[]);
    // A new device: to the set-up. Over plain HTTP: to HTTPS, where the login travels.
    let anonymous = Client::connect(https).get("/api/hello");
    assert_eq!(anonymous.status, 303, "{}", anonymous.body);
    assert!(anonymous.head.contains("location: /setup"), "{}", anonymous.head);
    let clear = get(http, "/api/hello");
    assert_eq!(clear.status, 308, "{}", clear.body);
    assert!(clear.head.contains("location: https://device/api/hello"), "{}", clear.head);

    let owner = Session::set_up(https);
    let api = owner.get(&mut Client::connect(https), "/api/hello");
    assert_eq!((api.status, api.body.as_str()), (200, r#"{"greeting":"Howdy"}"#), "{}", api.head);
    assert!(api.head.contains("content-type: application/json"), "{}", api.head);
    // The device has an owner now: a visitor without the session is sent to the login.
    let stranger = Client::connect(https).get("/api/hello");
    assert_eq!(stranger.status, 303, "{}", stranger.body);
    assert!(stranger.head.contains("location: /login"), "{}", stranger.head);
}

#[test]
fn portico_pages_limits_counts_and_log_serve_the_team_binary_too() {
    let (device, http, https) = start(&["--metrics-public", "--access-log", "--max-body-bytes", "128"], &[]);
    assert_eq!(get(http, "/healthz").status, 200);
    let status = api_status(http);
    assert!(status["portico"]["version"].is_string(), "{status}");
    assert_eq!(get(http, "/").status, 200);
    let setup = Client::connect(https).get("/setup");
    assert_eq!(setup.status, 200, "{}", setup.body);
    assert!(setup.body.contains("name=\"code\""), "the owner's set-up form: {}", setup.body);
    for _ in 0..3 {
        assert_eq!(get(http, "/hello").status, 200);
    }
    // The server's limits apply to the team's page as to portico's.
    let big = request(connect(http), "GET", "/hello", "Content-Length: 1000\r\n").unwrap();
    assert_eq!(big.status, 413);

    // Counted: /healthz, /api/status, /, /setup and /hello three times; the 413.
    let metrics = get(http, "/metrics").body;
    for line in
        ["portico_http_responses_total{code=\"2xx\"} 7", "portico_http_responses_total{code=\"4xx\"} 1"]
    {
        assert!(metrics.lines().any(|l| l == line), "no {line} in\n{metrics}");
    }
    assert!(device.stderr().contains("GET /hello 200 "), "{}", device.stderr());
}

#[test]
fn help_lists_the_team_setting_with_portico_own() {
    let out = std::process::Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let help = String::from_utf8(out.stdout).unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
    for want in ["--greeting TEXT what /hello greets visitors with [default: Hello]", "--max-body-bytes"] {
        assert!(help.contains(want), "no {want:?} in --help: {help}");
    }
}
