//! Log lines: journal priorities when stderr is the journal, plain levels otherwise.

mod common;

use common::*;
use nix::sys::signal::Signal;

fn serve_and_stop(start: Start) -> String {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let mut portico = start.fd(listener).spawn();
    assert_eq!(get(addr, "/healthz").status, 200);
    portico.signal(Signal::SIGTERM);
    assert_eq!(portico.wait_exit(PATIENCE).code(), Some(0));
    portico.stderr()
}

#[test]
fn lines_carry_syslog_priorities_when_stderr_is_the_journal() {
    let log = serve_and_stop(Portico::start().journal());
    let first = log.lines().find(|l| l.contains("serving")).expect(&log);
    assert!(first.starts_with("<6>portico "), "{log}");
    assert!(log.lines().all(|l| l.starts_with('<')), "every line has a priority:\n{log}");
}

#[test]
fn errors_carry_the_error_priority_in_the_journal() {
    let (_, log) = Portico::start().journal().args(&["--require-activation"]).spawn().failure();
    assert!(log.starts_with("<3>portico: error: no sockets were passed"), "{log}");
}

#[test]
fn lines_are_plain_on_a_terminal_or_file() {
    let log = serve_and_stop(Portico::start());
    assert!(log.lines().any(|l| l.starts_with("INFO portico ")), "{log}");
    assert!(!log.contains("<6>"), "{log}");
}

#[test]
fn a_stale_journal_stream_is_not_trusted() {
    let log = serve_and_stop(Portico::start().env("JOURNAL_STREAM", "1:1"));
    assert!(log.lines().any(|l| l.starts_with("INFO portico ")), "{log}");
}

#[test]
fn the_access_log_is_off_by_default() {
    let log = serve_and_stop(Portico::start().journal());
    assert!(!log.contains("GET /healthz"), "{log}");
}

/// One line per request at the journal's debug priority, whatever log_level says; the
/// query string, which may carry secrets, is not logged.
#[test]
fn the_access_log_has_a_line_per_request_at_debug_priority() {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let mut portico =
        Portico::start().journal().args(&["--access-log", "--log-level", "warn"]).fd(listener).spawn();
    assert_eq!(get(addr, "/healthz?token=secret").status, 200);
    assert_eq!(get(addr, "/nowhere").status, 404);
    portico.signal(Signal::SIGTERM);
    assert_eq!(portico.wait_exit(PATIENCE).code(), Some(0));
    let log = portico.stderr();
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("<7>")).collect();
    assert_eq!(lines.len(), 2, "{log}");
    let fields: Vec<&str> = lines[0].trim_start_matches("<7>").split(' ').collect();
    assert_eq!(&fields[..4], ["GET", "/healthz", "200", "3"], "{log}");
    assert!(fields[4].ends_with("us") && fields[5] == "127.0.0.1", "{log}");
    assert!(lines[1].starts_with("<7>GET /nowhere 404 "), "{log}");
    assert!(!log.contains("secret"), "{log}");
}
