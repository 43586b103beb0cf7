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
