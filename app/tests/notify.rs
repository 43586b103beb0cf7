//! The sd_notify protocol against a notify socket the test owns, as systemd's would be.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

#[test]
fn ready_is_sent_once_the_port_answers() {
    let notify = NotifySocket::new();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _portico = Portico::start().args(&["--listen", &listen]).env("NOTIFY_SOCKET", notify.path()).spawn();

    let (ready, _) = notify.wait_for("READY=1");
    // Straight after READY=1 the port must answer: no retry, no wait.
    let response = request(std::net::TcpStream::connect(&listen).unwrap(), "GET", "/healthz", "").unwrap();
    assert_eq!(response.status, 200);
    assert!(ready.contains(&format!("STATUS=Serving bound by portico: {listen}")), "{ready}");
}

#[test]
fn status_reports_live_figures() {
    let notify = NotifySocket::new();
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let _portico = Portico::start().fd(listener).env("NOTIFY_SOCKET", notify.path()).spawn();
    notify.wait_for("READY=1");
    for _ in 0..3 {
        get(addr, "/healthz");
    }
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Some(message) = notify.recv(Duration::from_secs(1)) {
            if message.contains("3 requests served") {
                return;
            }
        }
    }
    panic!("no STATUS= line counted the 3 requests");
}

#[test]
fn watchdog_pings_at_half_the_interval() {
    let notify = NotifySocket::new();
    let listener = tcp_listener("127.0.0.1:0");
    // WATCHDOG_PID is left unset, which sd_watchdog_enabled(3) accepts as "this process".
    let _portico = Portico::start()
        .fd(listener)
        .env("NOTIFY_SOCKET", notify.path())
        .env("WATCHDOG_USEC", "400000")
        .spawn();
    notify.wait_for("READY=1");

    let pings: Vec<Instant> = notify
        .collect(Duration::from_secs(2))
        .into_iter()
        .filter(|(_, message)| message.trim_end() == "WATCHDOG=1")
        .map(|(at, _)| at)
        .collect();
    // 200 ms apart: about 10 in 2 s. Bounds wide enough for a loaded machine, narrow
    // enough to catch a wrong interval (every 400 ms would give 5, a flood many more).
    assert!((7..=12).contains(&pings.len()), "{} pings in 2 s", pings.len());
    let shortest = pings.windows(2).map(|w| w[1] - w[0]).min().unwrap();
    assert!(shortest >= Duration::from_millis(100), "pings {shortest:?} apart");
}

#[test]
fn no_watchdog_pings_for_another_process() {
    let notify = NotifySocket::new();
    let listener = tcp_listener("127.0.0.1:0");
    let _portico = Portico::start()
        .fd(listener)
        .env("NOTIFY_SOCKET", notify.path())
        .env("WATCHDOG_USEC", "200000")
        .env("WATCHDOG_PID", "1")
        .spawn();
    notify.wait_for("READY=1");
    let messages = notify.collect(Duration::from_secs(1));
    assert!(!messages.iter().any(|(_, m)| m.contains("WATCHDOG=1")), "{messages:?}");
}

#[test]
fn stopping_is_sent_at_shutdown() {
    let notify = NotifySocket::new();
    let listener = tcp_listener("127.0.0.1:0");
    let mut portico = Portico::start().fd(listener).env("NOTIFY_SOCKET", notify.path()).spawn();
    notify.wait_for("READY=1");
    portico.signal(Signal::SIGTERM);
    notify.wait_for("STOPPING=1");
    assert_eq!(portico.wait_exit(PATIENCE).code(), Some(0));
}
