//! Restarts, graceful drain and idle exit, with the test holding the listening socket the
//! way systemd does.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::*;
use nix::sys::signal::Signal;

fn start_on(listener: &TcpListener, args: &[&str]) -> Portico {
    Portico::start().fd(listener.try_clone().unwrap()).args(args).spawn()
}

/// A portico with a notify socket, so a test can wait for it to say STOPPING=1.
struct Watched {
    portico: Portico,
    notify: NotifySocket,
}

impl Watched {
    /// Sends SIGTERM and waits until portico has begun to drain.
    fn terminate(&self) {
        self.portico.signal(Signal::SIGTERM);
        self.notify.wait_for("STOPPING=1");
    }
}

/// Sends a request but holds back its last line, so portico has accepted the connection
/// and is reading a request that is still arriving.
fn begin_request(addr: SocketAddr, path: &str) -> TcpStream {
    let mut stream = connect(addr);
    write!(stream, "GET {path} HTTP/1.1\r\nHost: device\r\n").unwrap();
    stream
}

/// Starts portico and has it accept a request that is still arriving.
fn with_request_in_flight(args: &[&str], path: &str) -> (Watched, TcpStream) {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let notify = NotifySocket::new();
    let portico = Portico::start().fd(listener).args(args).env("NOTIFY_SOCKET", notify.path()).spawn();
    notify.wait_for("READY=1");
    let in_flight = begin_request(addr, path);
    // Until portico has the connection (this status request is the second), a SIGTERM
    // would leave it in the backlog for the next instance instead.
    wait_until(|| api_status(addr)["portico"]["open_connections"].as_u64() == Some(2));
    (Watched { portico, notify }, in_flight)
}

/// Ends the request's head as a keep-alive client would (no `Connection: close`) and
/// reads to the end: that returns only if portico closes the connection itself.
fn finish_request(mut stream: TcpStream) -> Response {
    stream.write_all(b"\r\n").unwrap();
    read_response(stream).unwrap()
}

/// Four clients sending requests one connection each until told to stop, counting
/// answers and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let clients = (0..4)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let result = TcpStream::connect(addr).and_then(|s| {
                            s.set_read_timeout(Some(PATIENCE))?;
                            // Not /healthz: it answers 503 on purpose while an instance drains.
                            request(s, "GET", "/api/status", "")
                        });
                        match result {
                            Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                            other => {
                                eprintln!("failed: {:?}", other.map(|r| r.status));
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Load { stop, ok, failed, clients }
    }

    fn served(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the clients: (requests served, requests failed).
    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        (self.ok.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed))
    }
}

#[test]
fn a_restart_refuses_no_connection() {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let mut portico = start_on(&listener, &[]);
    assert_eq!(get(addr, "/healthz").status, 200);

    let load = Load::start(addr);

    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(500));
        portico.signal(Signal::SIGTERM);
        assert_eq!(portico.wait_exit(PATIENCE).code(), Some(0));
        portico = start_on(&listener, &[]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (ok, failed) = load.finish();
    println!("restart under load: {ok} requests served, {failed} failed");
    assert_eq!(failed, 0, "{failed} of {} requests failed across two restarts", ok + failed);
    assert!(ok > 20, "only {ok} requests went through");
}

#[test]
fn a_request_in_flight_completes_after_sigterm_and_its_connection_is_closed() {
    let (mut watched, in_flight) = with_request_in_flight(&["--drain-timeout", "10s"], "/api/status");
    watched.terminate();
    assert!(watched.portico.is_running(), "portico exited with a request in flight");
    let response = finish_request(in_flight);
    assert_eq!(response.status, 200);
    assert!(response.head.to_ascii_lowercase().contains("connection: close"), "{}", response.head);
    assert_eq!(watched.portico.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn health_turns_503_while_draining() {
    let (mut watched, in_flight) = with_request_in_flight(&[], "/healthz");
    watched.terminate();
    let response = finish_request(in_flight);
    assert_eq!((response.status, response.body.as_str()), (503, "shutting down\n"));
    assert_eq!(watched.portico.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn the_drain_timeout_bounds_a_stalled_client() {
    let slow = ["--drain-timeout", "1s", "--keep-alive-timeout", "60s", "--header-read-timeout", "60s"];
    let (mut watched, _stalled) = with_request_in_flight(&slow, "/");
    let sent = Instant::now();
    watched.terminate();
    assert_eq!(watched.portico.wait_exit(PATIENCE).code(), Some(0));
    let took = sent.elapsed();
    assert!(took >= Duration::from_millis(900), "exited after {took:?}, before the drain timeout");
    assert!(watched.portico.stderr().contains("drain timeout"), "{}", watched.portico.stderr());
}

#[test]
fn a_second_signal_ends_the_drain() {
    let slow = ["--drain-timeout", "60s", "--keep-alive-timeout", "60s", "--header-read-timeout", "60s"];
    let (mut watched, _stalled) = with_request_in_flight(&slow, "/");
    watched.terminate();
    assert!(watched.portico.is_running());
    watched.portico.signal(Signal::SIGINT);
    assert_eq!(watched.portico.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn idle_exit_waits_for_the_configured_quiet_time() {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let mut portico = start_on(&listener, &["--exit-idle-after", "2s", "--keep-alive-timeout", "30s"]);

    // An open connection keeps it alive past the idle time.
    let mut held = connect(addr);
    write!(held, "GET /healthz HTTP/1.1\r\nHost: device\r\n\r\n").unwrap();
    let mut buf = [0u8; 512];
    assert!(held.read(&mut buf).unwrap() > 0);
    std::thread::sleep(Duration::from_secs(3));
    assert!(portico.is_running(), "exited while a connection was open");

    drop(held);
    let closed = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    assert!(portico.is_running(), "exited 1 s after the last connection closed; the idle time is 2 s");
    assert_eq!(portico.wait_exit(PATIENCE).code(), Some(0));
    assert!(closed.elapsed() >= Duration::from_secs(2));

    // As systemd would on the next connection: a new instance takes the same socket.
    let _next = start_on(&listener, &[]);
    assert_eq!(get(addr, "/healthz").status, 200);
}

/// Polls `done` until it holds, failing the test if it never does.
fn wait_until(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached within {PATIENCE:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGUSR2, for inits without socket activation: portico drains, then executes itself
/// again with the same pid and the same listening sockets, so no connection is refused.
#[test]
fn sigusr2_restarts_in_place_and_refuses_no_connection() {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut portico = Portico::start().args(&["--listen", &addr.to_string()]).spawn();
    assert_eq!(get(addr, "/healthz").status, 200);
    let pid = portico.pid();

    let load = Load::start(addr);

    for round in 1..=2 {
        let served = load.served();
        wait_until(|| load.served() > served + 20);
        portico.signal(Signal::SIGUSR2);
        // The new program says so in the log once it serves again.
        wait_until(|| portico.stderr().matches("serving sockets from systemd").count() == round);
    }
    let served = load.served();
    wait_until(|| load.served() > served + 20);
    let (ok, failed) = load.finish();
    println!("two restarts in place under load: {ok} requests served, {failed} failed");
    assert_eq!(failed, 0, "{failed} of {} requests failed", ok + failed);
    assert!(portico.is_running());
    assert_eq!(portico.pid(), pid);
    assert_eq!(api_status(addr)["portico"]["pid"], pid.as_raw());
}
