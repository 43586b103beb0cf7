//! HTTPS: a socket named `https` (or `--listen https://...`) speaks TLS with the device's
//! certificate, generated once and kept, or provided; SIGHUP reloads it; the limits hold
//! for handshakes as for requests.

#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use common::tls::Client;
use common::*;
use nix::sys::signal::Signal;

fn api_fingerprint(device: &Device) -> String {
    api_status(device.http)["certificate"]["fingerprint_sha256"].as_str().unwrap().to_owned()
}

#[test]
fn the_https_socket_speaks_tls_and_the_http_socket_plain_http() {
    let state = state_directory();
    let device = start(&state, &[], &[]);
    let mut client = Client::connect(device.https);
    let page = client.get("/");
    assert_eq!(page.status, 200);
    assert!(page.body.contains(&client.fingerprint), "the page shows the fingerprint: {}", page.body);
    assert_eq!(get(device.http, "/healthz").status, 200);
    assert_eq!(api_fingerprint(&device), client.fingerprint);
    let status = api_status(device.http);
    assert_eq!(status["activation"]["listeners"][1]["https"], true, "{status}");
    assert!(device.portico.stderr().contains(&client.fingerprint), "logged: {}", device.portico.stderr());
}

#[test]
fn the_generated_certificate_is_kept_across_restarts_with_a_private_key() {
    let state = state_directory();
    let mut first = start(&state, &[], &[]);
    let before = Client::connect(first.https).fingerprint;
    first.portico.signal(Signal::SIGTERM);
    assert_eq!(first.portico.wait_exit(PATIENCE).code(), Some(0));

    let second = start(&state, &[], &[]);
    assert_eq!(Client::connect(second.https).fingerprint, before);
    let key_mode = std::fs::metadata(state.join("tls.key")).unwrap().permissions().mode();
    assert_eq!(key_mode & 0o777, 0o600, "the key is readable by portico alone");
}

#[test]
fn a_certificate_from_the_config_is_used() {
    let (cert, key, fingerprint) = certificate_pair();
    let device = start(
        &state_directory(),
        &["--tls-certificate", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()],
        &[],
    );
    assert_eq!(Client::connect(device.https).fingerprint, fingerprint);
}

#[test]
fn a_certificate_from_a_systemd_credential_is_used() {
    let (cert, key, fingerprint) = certificate_pair();
    let credentials = scratch_path("credentials");
    std::fs::create_dir(&credentials).unwrap();
    for (from, name) in [(cert, "tls.crt"), (key, "tls.key")] {
        std::fs::copy(from, credentials.join(name)).unwrap();
        give_to_portico(&credentials.join(name));
    }
    let device = start(&state_directory(), &[], &[("CREDENTIALS_DIRECTORY", credentials.to_str().unwrap())]);
    assert_eq!(Client::connect(device.https).fingerprint, fingerprint);
}

#[test]
fn sighup_loads_a_new_certificate_and_an_open_connection_keeps_working() {
    let (cert_a, key_a, fingerprint_a) = certificate_pair();
    let (cert_b, key_b, fingerprint_b) = certificate_pair();
    let (cert, key) = (scratch_path("tls.crt"), scratch_path("tls.key"));
    std::fs::copy(&cert_a, &cert).unwrap();
    std::fs::copy(&key_a, &key).unwrap();
    give_to_portico(&key);
    let args = ["--tls-certificate", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()];
    let device = start(&state_directory(), &args, &[]);
    let mut old = Client::connect(device.https);
    assert_eq!(old.fingerprint, fingerprint_a);
    assert_eq!(old.get("/healthz").status, 200);

    std::fs::copy(&cert_b, &cert).unwrap();
    std::fs::copy(&key_b, &key).unwrap();
    device.portico.signal(Signal::SIGHUP);
    device.notify.wait_for("RELOADING=1");
    device.notify.wait_for("READY=1");
    assert_eq!(Client::connect(device.https).fingerprint, fingerprint_b);
    assert_eq!(api_fingerprint(&device), fingerprint_b);
    assert_eq!(old.get("/healthz").status, 200, "the connection opened before the reload");
}

/// Opens TCP to the HTTPS socket and sends the first bytes of a ClientHello, no more.
fn stall_mid_handshake(addr: SocketAddr) -> std::net::TcpStream {
    let mut stream = connect(addr);
    stream.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).unwrap();
    stream
}

/// Reads until portico closes the connection; how long that took.
fn time_to_close(mut stream: std::net::TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
    started.elapsed()
}

/// The configured timeout, not the 10 s default: dropped 2 s after the accept, which came
/// after `started`, and well before 10 s.
#[test]
fn a_client_stalled_mid_handshake_is_dropped_after_the_header_read_timeout() {
    let device = start(&state_directory(), &["--header-read-timeout", "2s"], &[]);
    let started = Instant::now();
    let stalled = stall_mid_handshake(device.https);
    assert_eq!(Client::connect(device.https).get("/healthz").status, 200, "others are served meanwhile");
    time_to_close(stalled);
    let took = started.elapsed();
    assert!(
        (Duration::from_secs(2)..Duration::from_secs(8)).contains(&took),
        "closed after {took:?}; header_read_timeout is 2 s"
    );
}

#[test]
fn stalled_handshakes_beyond_the_connection_limit_do_not_lock_out_others() {
    let device = start(&state_directory(), &["--max-connections", "4"], &[]);
    let _stalled: Vec<_> = (0..12).map(|_| stall_mid_handshake(device.https)).collect();
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(Client::connect(device.https).get("/healthz").status, 200);
        assert_eq!(get(device.http, "/healthz").status, 200);
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "waited {took:?}: only the 10 s header-read timeout would explain it"
    );
}

#[test]
fn plain_http_on_the_https_socket_gets_a_clean_close() {
    let device = start(&state_directory(), &[], &[]);
    let mut stream = connect(device.https);
    stream.write_all(b"GET / HTTP/1.1\r\nHost: device\r\n\r\n").unwrap();
    let took = time_to_close(stream);
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    assert_eq!(Client::connect(device.https).get("/healthz").status, 200);
}

#[test]
fn hsts_is_off_by_default_and_sent_over_https_only_when_configured() {
    let hsts = |response: &Response| response.head.to_ascii_lowercase().contains("strict-transport-security");
    let plain_default = start(&state_directory(), &[], &[]);
    assert!(!hsts(&Client::connect(plain_default.https).get("/")));

    let device = start(&state_directory(), &["--hsts-max-age", "1h"], &[]);
    let over_tls = Client::connect(device.https).get("/");
    assert!(
        over_tls.head.to_ascii_lowercase().contains("strict-transport-security: max-age=3600"),
        "{}",
        over_tls.head
    );
    assert!(!hsts(&get(device.http, "/")), "HSTS over plain HTTP means nothing and is not sent");
}

#[test]
fn listen_marks_an_address_as_https_when_started_by_hand() {
    let (http, https) = (free_port(), free_port());
    let state = state_directory();
    let _portico = Portico::start()
        .args(&["--listen", &format!("127.0.0.1:{http}"), "--listen", &format!("https://127.0.0.1:{https}")])
        .args(&["--state-directory", state.to_str().unwrap()])
        .spawn();
    let addr = SocketAddr::from(([127, 0, 0, 1], https));
    // The plain address answering means both are bound.
    assert_eq!(get(SocketAddr::from(([127, 0, 0, 1], http)), "/healthz").status, 200);
    assert_eq!(Client::connect(addr).get("/api/status").status, 200);
}
