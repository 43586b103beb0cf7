//! Sockets: the ones systemd passes (by our own fd passing and by systemd-socket-activate),
//! the --listen fallback, --require-activation, and every kind of bad inherited socket.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::process::{Command, Stdio};

use common::*;

#[test]
fn serves_an_inherited_ipv4_socket_and_says_it_came_from_systemd() {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let _portico = Portico::start().fd(listener).names("http").args(&["--require-activation"]).spawn();

    let health = get(addr, "/healthz");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let status = api_status(addr);
    assert_eq!(status["activation"]["mode"], "systemd");
    assert_eq!(status["activation"]["listeners"][0]["name"], "http");
    assert_eq!(status["activation"]["listeners"][0]["fd"], 3);
    assert_eq!(status["activation"]["listeners"][0]["address"], addr.to_string());
}

#[test]
fn serves_an_inherited_ipv6_socket() {
    let listener = tcp_listener("[::1]:0");
    let addr = listener.local_addr().unwrap();
    let _portico = Portico::start().fd(listener).spawn();
    assert_eq!(get(addr, "/healthz").status, 200);
}

#[test]
fn serves_an_inherited_unix_socket() {
    let path = scratch_path("http.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let _portico = Portico::start().fd(listener).args(&["--require-activation"]).spawn();
    let health = get_unix(&path, "/healthz");
    assert_eq!(health.status, 200);
    let status: serde_json::Value = serde_json::from_str(&get_unix(&path, "/api/status").body).unwrap();
    assert_eq!(status["activation"]["listeners"][0]["address"], path.to_str().unwrap());
}

#[test]
fn serves_an_inherited_abstract_unix_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("portico-test-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let listener = UnixListener::bind_addr(&addr).unwrap();
    let _portico = Portico::start().fd(listener).spawn();
    let stream = std::os::unix::net::UnixStream::connect_addr(&addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&request(stream, "GET", "/api/status", "").unwrap().body).unwrap();
    assert_eq!(status["activation"]["listeners"][0]["address"], format!("@{name}"));
}

#[test]
fn serves_several_named_sockets_at_once() {
    let web = tcp_listener("127.0.0.1:0");
    let admin = tcp_listener("[::1]:0");
    let path = scratch_path("local.sock");
    let local = UnixListener::bind(&path).unwrap();
    let (web_addr, admin_addr) = (web.local_addr().unwrap(), admin.local_addr().unwrap());
    let _portico = Portico::start().fd(web).fd(admin).fd(local).names("web:admin:local").spawn();

    assert_eq!(get(web_addr, "/healthz").status, 200);
    assert_eq!(get(admin_addr, "/healthz").status, 200);
    assert_eq!(get_unix(&path, "/healthz").status, 200);
    let listeners = api_status(admin_addr)["activation"]["listeners"].clone();
    let names: Vec<&str> =
        listeners.as_array().unwrap().iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["web", "admin", "local"]);
    let fds: Vec<i64> = listeners.as_array().unwrap().iter().map(|l| l["fd"].as_i64().unwrap()).collect();
    assert_eq!(fds, [3, 4, 5]);
}

/// systemd's own tool for running a socket-activated service by hand.
#[test]
fn runs_under_systemd_socket_activate() {
    let (a, b) = (free_port(), free_port());
    let mut child = Command::new("systemd-socket-activate")
        .args(["-l", &format!("127.0.0.1:{a}"), "-l", &format!("127.0.0.1:{b}"), "--fdname=http:api"])
        .arg(BIN)
        .args(["--require-activation"])
        .args(root_args())
        .env("PORTICO_CONFIG", "/dev/null")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("systemd-socket-activate runs (apt-get install systemd)");
    let addr: SocketAddr = format!("127.0.0.1:{a}").parse().unwrap();
    let status = api_status(addr);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status["activation"]["mode"], "systemd");
    let names: Vec<&str> = status["activation"]["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["http", "api"]);
}

#[test]
fn binds_the_listen_addresses_when_nothing_is_passed() {
    let port = free_port();
    let path = scratch_path("self.sock");
    let listen = format!("127.0.0.1:{port}");
    let _portico = Portico::start().args(&["--listen", &listen, "--listen", path.to_str().unwrap()]).spawn();
    let addr: SocketAddr = listen.parse().unwrap();
    let status = api_status(addr);
    assert_eq!(status["activation"]["mode"], "self");
    assert_eq!(status["activation"]["listeners"][0]["fd"], serde_json::Value::Null);
    assert_eq!(get_unix(&path, "/healthz").status, 200);
}

/// `0.0.0.0:P` and `[::]:P` together: the IPv6 one must be IPv6 only (IPV6_V6ONLY), or it
/// takes the IPv4 port too and the second bind fails.
#[test]
fn binds_ipv4_and_ipv6_wildcards_side_by_side() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        skip("this machine has no IPv6 loopback (::1) to reach [::] with");
        return;
    }
    let port = free_port();
    let _portico = Portico::start()
        .args(&["--listen", &format!("0.0.0.0:{port}"), "--listen", &format!("[::]:{port}")])
        .spawn();
    assert_eq!(get(format!("127.0.0.1:{port}").parse().unwrap(), "/healthz").status, 200);
    assert_eq!(get(format!("[::1]:{port}").parse().unwrap(), "/healthz").status, 200);
}

#[test]
fn require_activation_refuses_to_bind_by_itself() {
    let (code, stderr) = Portico::start().args(&["--require-activation"]).spawn().failure();
    assert_eq!(code, SETUP_ERROR);
    assert!(stderr.contains("no sockets were passed"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");
}

#[test]
fn a_busy_listen_address_is_a_clear_error() {
    let taken = tcp_listener("127.0.0.1:0");
    let addr = taken.local_addr().unwrap().to_string();
    let (code, stderr) = Portico::start().args(&["--listen", &addr]).spawn().failure();
    assert_eq!(code, SETUP_ERROR);
    assert!(stderr.contains(&format!("cannot listen on {addr}")), "{stderr}");
}

/// Starts portico with `start` and checks it fails with one line containing every `needle`.
fn refuses(start: Start, needles: &[&str]) {
    let (code, stderr) = start.spawn().failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_regular_file_instead_of_a_socket_is_refused() {
    let file = std::fs::File::create(scratch_path("not-a-socket")).unwrap();
    refuses(
        Portico::start().fd(file).names("http"),
        &["fd 3", "\"http\"", "not a socket but a regular file", "wrapper"],
    );
}

#[test]
fn dev_null_instead_of_a_socket_is_refused() {
    let null = std::fs::File::open("/dev/null").unwrap();
    refuses(Portico::start().fd(null), &["fd 3", "character device", "wrapper"]);
}

#[test]
fn a_closed_descriptor_is_refused() {
    let start = Start { listen_fds: Some("1".into()), ..Portico::start() };
    refuses(start, &["fd 3", "is not open", "wrapper"]);
}

#[test]
fn a_datagram_socket_is_refused() {
    let socket = UnixDatagram::bind(scratch_path("dgram.sock")).unwrap();
    refuses(Portico::start().fd(socket), &["fd 3", "not a stream socket", "ListenStream="]);
}

#[test]
fn a_socket_that_is_not_listening_is_refused() {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, socket};
    let fd: OwnedFd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).unwrap();
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    refuses(Portico::start().fd(fd), &["fd 3", "not listening", "Accept=no"]);
}

#[test]
fn sockets_for_another_process_are_not_taken() {
    let listener = tcp_listener("127.0.0.1:0");
    let start = Start { listen_pid: Some("1".into()), ..Portico::start().fd(listener) };
    refuses(
        start.args(&["--require-activation"]),
        &["passed for process 1", "not portico's to take", "exec", "require_activation"],
    );
}

#[test]
fn sockets_passed_without_listen_pid_are_not_taken() {
    let listener = tcp_listener("127.0.0.1:0");
    let start = Start { omit_listen_pid: true, ..Portico::start().fd(listener) };
    refuses(start.args(&["--require-activation"]), &["without LISTEN_PID", "sd_listen_fds(3)"]);
}

/// As sd_listen_fds(3) does: descriptors whose LISTEN_PID is missing are left alone, and
/// portico binds its own addresses instead, saying why.
#[test]
fn without_listen_pid_portico_binds_its_own_addresses() {
    let passed = tcp_listener("127.0.0.1:0");
    let passed_addr = passed.local_addr().unwrap();
    let own = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let portico = Start { omit_listen_pid: true, ..Portico::start().fd(passed) }
        .args(&["--listen", &own.to_string()])
        .spawn();
    let status = api_status(own);
    assert_eq!(status["activation"]["mode"], "self", "{status}");
    assert!(portico.stderr().contains("without LISTEN_PID"), "{}", portico.stderr());
    // Nobody accepts on the passed socket: a connection sits in its backlog unanswered.
    let mut waiting = std::net::TcpStream::connect(passed_addr).unwrap();
    waiting.set_read_timeout(Some(std::time::Duration::from_millis(300))).unwrap();
    waiting.write_all(b"GET /healthz HTTP/1.1\r\nHost: device\r\n\r\n").unwrap();
    let mut byte = [0u8];
    assert!(waiting.read(&mut byte).is_err(), "the socket without LISTEN_PID was served");
}

#[test]
fn names_that_do_not_match_the_sockets_are_refused() {
    let listener = tcp_listener("127.0.0.1:0");
    refuses(
        Portico::start().fd(listener).names("web:admin"),
        &["LISTEN_FDS=1", "LISTEN_FDNAMES has 2 names"],
    );
}

#[test]
fn a_malformed_listen_fds_is_refused() {
    let start = Start { listen_fds: Some("three".into()), ..Portico::start() };
    refuses(start, &["LISTEN_FDS=\"three\"", "not a number"]);
}

#[test]
fn a_second_bad_socket_is_named_by_its_own_number() {
    let good = tcp_listener("127.0.0.1:0");
    let file = std::fs::File::create(scratch_path("second")).unwrap();
    refuses(
        Portico::start().fd(good).fd(file).names("http:metrics"),
        &["fd 4", "\"metrics\"", "not a socket"],
    );
}
