//! The sd_notify protocol against a notify socket the test owns, as systemd's would be.

mod common;

use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

/// READY=1 only once the accept loops run. portico binds its port before anything else, so
/// a connection is taken by the kernel at once whatever portico does; an answer needs an
/// accept loop. The test holds READY=1 back (its notify socket full, portico's send waits)
/// and a request must be answered meanwhile: sent before the loops exist, READY=1 would
/// wait with nothing to answer, and the request would wait with it.
#[test]
fn ready_is_sent_once_the_port_answers() {
    let notify = NotifySocket::new();
    let held = notify.hold();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    // Two workers: the send that waits blocks the thread that sends READY=1, the loops run
    // on the runtime's workers.
    let _portico = Portico::start()
        .args(&["--listen", &listen, "--workers", "2"])
        .env("NOTIFY_SOCKET", notify.path())
        .spawn();

    let answer = request(connect(listen.parse().unwrap()), "GET", "/healthz", "");
    let answer = answer.unwrap_or_else(|e| {
        panic!("no answer within {PATIENCE:?} while READY=1 was held back ({e}): READY=1 came before the accept loops")
    });
    assert_eq!(answer.status, 200);
    notify.release(held);
    let (ready, before) = notify.wait_for("READY=1");
    assert!(before.is_empty(), "portico notified before READY=1: {before:?}");
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

    let pings: Vec<Instant> = (0..9).map(|_| notify.wait_for("WATCHDOG=1")).map(|_| Instant::now()).collect();
    let mut gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    // Every 200 ms: the median gap says the interval whatever one late wake-up did.
    let median = gaps[gaps.len() / 2];
    assert!(
        (Duration::from_millis(150)..=Duration::from_millis(300)).contains(&median),
        "pings a median {median:?} apart, for WATCHDOG_USEC=400000; gaps {gaps:?}"
    );
}

#[test]
fn a_zero_watchdog_interval_is_ignored_not_fatal() {
    let notify = NotifySocket::new();
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let mut portico =
        Portico::start().fd(listener).env("NOTIFY_SOCKET", notify.path()).env("WATCHDOG_USEC", "0").spawn();
    notify.wait_for("READY=1");
    assert_eq!(get(addr, "/healthz").status, 200);
    // The watchdog task says so when it first runs, which may be after READY=1.
    let deadline = Instant::now() + PATIENCE;
    while !portico.stderr().contains("WATCHDOG_USEC=0") {
        assert!(Instant::now() < deadline, "no warning about WATCHDOG_USEC=0: {}", portico.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(portico.is_running(), "stderr:\n{}", portico.stderr());
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

/// STOPPING=1 comes with EXTEND_TIMEOUT_USEC for the drain plus a margin, so a
/// drain_timeout longer than the unit's TimeoutStopSec= is not cut short.
#[test]
fn stopping_asks_for_the_time_the_drain_needs() {
    let notify = NotifySocket::new();
    let listener = tcp_listener("127.0.0.1:0");
    let mut portico = Portico::start()
        .fd(listener)
        .args(&["--drain-timeout", "60s"])
        .env("NOTIFY_SOCKET", notify.path())
        .spawn();
    notify.wait_for("READY=1");
    portico.signal(Signal::SIGTERM);
    let (stopping, _) = notify.wait_for("STOPPING=1");
    let extend: u64 = stopping
        .lines()
        .find_map(|line| line.strip_prefix("EXTEND_TIMEOUT_USEC="))
        .unwrap_or_else(|| panic!("no EXTEND_TIMEOUT_USEC with STOPPING=1: {stopping:?}"))
        .parse()
        .unwrap();
    assert!((60_000_000..=90_000_000).contains(&extend), "EXTEND_TIMEOUT_USEC={extend} for a 60 s drain");
    assert_eq!(portico.wait_exit(PATIENCE).code(), Some(0));
}
