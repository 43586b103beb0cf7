//! Test harness: runs the real portico binary, passing it listening sockets exactly as
//! systemd does (descriptors from 3 up, LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES), and
//! talks HTTP/1.1 to it over plain sockets.
#![allow(dead_code)] // Each test file uses its own part of the harness.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::libc;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The binary of the package under test, named after it: portico's, or a team's built on
/// the library (examples/hello-device's tests take this harness with `#[path]`).
pub const BIN: &str = env!(concat!("CARGO_BIN_EXE_", env!("CARGO_PKG_NAME")));

/// EX_CONFIG: what portico exits with for a setup that a restart cannot fix.
pub const SETUP_ERROR: i32 = 78;

/// How long anything in a test may take before the test calls it a hang.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A running portico, killed when dropped so a failing test leaves nothing behind.
pub struct Portico {
    pub child: Child,
    stderr_path: PathBuf,
}

/// How to start portico.
#[derive(Default)]
pub struct Start {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Descriptors passed as 3, 4, ... with LISTEN_FDS set to their number.
    pub fds: Vec<OwnedFd>,
    /// Overrides what the harness would set, to test bad activation variables.
    pub listen_fds: Option<String>,
    pub listen_pid: Option<String>,
    /// Pass LISTEN_FDS without LISTEN_PID.
    pub omit_listen_pid: bool,
    pub listen_fdnames: Option<String>,
    /// Set JOURNAL_STREAM to stderr's device and inode, as systemd does for the journal.
    pub journal: bool,
    /// Start portico as this user, as setuidgid or chpst would.
    pub run_as: Option<nix::unistd::User>,
    /// Pass the arguments as they are, without the `--user nobody` added for root.
    pub exact_args: bool,
    /// Start portico inside this cgroup (a directory with a `cgroup.procs`).
    pub cgroup: Option<PathBuf>,
}

impl Start {
    pub fn args(mut self, args: &[&str]) -> Self {
        self.args.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn fd(mut self, fd: impl Into<OwnedFd>) -> Self {
        self.fds.push(fd.into());
        self
    }

    pub fn run_as(mut self, user: nix::unistd::User) -> Self {
        self.run_as = Some(user);
        self
    }

    pub fn exact_args(mut self) -> Self {
        self.exact_args = true;
        self
    }

    pub fn cgroup(mut self, dir: &Path) -> Self {
        self.cgroup = Some(dir.to_owned());
        self
    }

    pub fn journal(mut self) -> Self {
        self.journal = true;
        self
    }

    pub fn names(mut self, names: &str) -> Self {
        self.listen_fdnames = Some(names.into());
        self
    }

    pub fn spawn(self) -> Portico {
        let stderr_path = scratch_path("stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        // LISTEN_PID must be the pid of portico itself: the shell exports its own pid
        // and then execs portico, which keeps it.
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(r#"[ -n "$SET_LISTEN_PID" ] && export LISTEN_PID=$$; exec "$0" "$@""#);
        command.arg(BIN).args(&self.args);
        if !self.exact_args && self.run_as.is_none() {
            command.args(root_args());
        }
        if let Some(user) = &self.run_as {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        command.env_remove("LISTEN_FDS").env_remove("LISTEN_PID").env_remove("LISTEN_FDNAMES");
        command.env_remove("NOTIFY_SOCKET").env_remove("WATCHDOG_USEC").env_remove("JOURNAL_STREAM");
        command.env("PORTICO_CONFIG", "/dev/null");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        let passing = !self.fds.is_empty() || self.listen_fds.is_some();
        if passing {
            command.env("LISTEN_FDS", self.listen_fds.clone().unwrap_or_else(|| self.fds.len().to_string()));
            match &self.listen_pid {
                Some(pid) => {
                    command.env("LISTEN_PID", pid);
                }
                None if self.omit_listen_pid => {}
                None => {
                    command.env("SET_LISTEN_PID", "1");
                }
            }
        }
        if self.journal {
            use std::os::unix::fs::MetadataExt;
            let stat = stderr.metadata().unwrap();
            command.env("JOURNAL_STREAM", format!("{}:{}", stat.dev(), stat.ino()));
        }
        if let Some(names) = &self.listen_fdnames {
            command.env("LISTEN_FDNAMES", names);
        }
        // Move the descriptors out of the way of 3, 4, ... first, so placing one cannot
        // overwrite another.
        let high: Vec<OwnedFd> = self.fds.iter().map(|fd| dup_above(fd.as_raw_fd(), 100)).collect();
        let raw: Vec<RawFd> = high.iter().map(|fd| fd.as_raw_fd()).collect();
        let close_three = passing && raw.is_empty();
        let cgroup_procs = self.cgroup.as_ref().map(|dir| {
            std::ffi::CString::new(dir.join("cgroup.procs").into_os_string().into_encoded_bytes()).unwrap()
        });
        // SAFETY: only async-signal-safe calls (open, write, dup2, close) between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if let Some(procs) = &cgroup_procs {
                    // "0" moves the writing process itself.
                    let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
                    if fd == -1 || libc::write(fd, b"0\n".as_ptr().cast(), 2) != 2 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                for (i, fd) in raw.iter().enumerate() {
                    if libc::dup2(*fd, 3 + i as RawFd) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                if close_three {
                    libc::close(3);
                }
                Ok(())
            });
        }
        let child = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
        drop(high);
        Portico { child, stderr_path }
    }
}

/// For a test that cannot run on this machine: says so on the terminal of whoever runs
/// `cargo test` (libtest keeps what a passing test prints with eprintln! to itself), and
/// the test then returns. Under CI (CI set) it fails instead: there a skip would hide a
/// check that never ran.
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    assert!(std::env::var_os("CI").is_none(), "CI must run {test}: {why}");
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// CI runs as root, and portico refuses to serve as root without a user to become.
pub fn root_args() -> Vec<String> {
    match nix::unistd::geteuid().is_root() {
        true => vec!["--user".into(), "nobody".into()],
        false => vec![],
    }
}

fn dup_above(fd: RawFd, min: RawFd) -> OwnedFd {
    // SAFETY: F_DUPFD_CLOEXEC returns a new descriptor that nothing else owns.
    unsafe {
        let new = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min);
        assert!(new >= 0, "dup failed: {}", std::io::Error::last_os_error());
        OwnedFd::from_raw_fd(new)
    }
}

/// A unique path under the test's scratch directory.
pub fn scratch_path(name: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("portico-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Run as root, the tests have portico switch to nobody: what portico must read or write
/// belongs to nobody then, as systemd makes StateDirectory= and credentials the service's.
pub fn give_to_portico(path: &Path) {
    if nix::unistd::geteuid().is_root() {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        nix::unistd::chown(path, Some(nobody.uid), Some(nobody.gid)).unwrap();
    }
}

/// An empty state directory, as systemd creates it for StateDirectory=.
pub fn state_directory() -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_path("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    give_to_portico(&dir);
    dir
}

/// portico with both sockets, as portico.socket and portico-https.socket pass them, and a
/// state directory of its own: (portico, http address, https address).
pub fn serve_both(args: &[&str]) -> (Portico, SocketAddr, SocketAddr) {
    let (start, http, https) = both_sockets(&state_directory());
    (start.args(args).spawn(), http, https)
}

/// portico to start with both sockets and its state in `state`, for a test to add to:
/// (its start, http address, https address).
pub fn both_sockets(state: &Path) -> (Start, SocketAddr, SocketAddr) {
    let (http, https) = (tcp_listener("127.0.0.1:0"), tcp_listener("127.0.0.1:0"));
    let (http_addr, https_addr) = (http.local_addr().unwrap(), https.local_addr().unwrap());
    let start = Portico::start()
        .fd(http)
        .fd(https)
        .names("http:https")
        .args(&["--state-directory", state.to_str().unwrap()]);
    (start, http_addr, https_addr)
}

/// portico with both sockets as portico.socket and portico-https.socket pass them, stderr
/// as the journal's stream (so each line carries its priority), and its notify socket.
pub struct Device {
    pub portico: Portico,
    pub http: SocketAddr,
    pub https: SocketAddr,
    pub notify: NotifySocket,
}

/// Starts portico and waits until it is ready; fails at once, with its log, if it exits.
pub fn start(state: &Path, args: &[&str], env: &[(&str, &str)]) -> Device {
    let (start, http, https) = both_sockets(state);
    let notify = NotifySocket::new();
    let mut start = start.args(args).env("NOTIFY_SOCKET", notify.path()).journal();
    for (key, value) in env {
        start = start.env(key, value);
    }
    let mut portico = start.spawn();
    let deadline = Instant::now() + PATIENCE;
    while !notify.recv(Duration::from_millis(100)).is_some_and(|m| m.lines().any(|l| l == "READY=1")) {
        if let Some(status) = portico.child.try_wait().unwrap() {
            panic!("portico exited ({status}) instead of serving:\n{}", portico.stderr());
        }
        assert!(Instant::now() < deadline, "not ready within {PATIENCE:?}:\n{}", portico.stderr());
    }
    Device { portico, http, https, notify }
}

/// A certificate and key that portico generated in a state directory of its own:
/// (certificate, key, the certificate's fingerprint).
pub fn certificate_pair() -> (PathBuf, PathBuf, String) {
    let state = state_directory();
    let (start, http, _) = both_sockets(&state);
    let _portico = start.spawn();
    let status = api_status(http);
    let fingerprint = status["certificate"]["fingerprint_sha256"].as_str().unwrap().to_owned();
    (state.join("tls.crt"), state.join("tls.key"), fingerprint)
}

impl Portico {
    pub fn start() -> Start {
        Start::default()
    }

    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: Signal) {
        kill(self.pid(), signal).unwrap();
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Waits for the process to exit, failing the test if it takes longer than `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "portico did not exit within {limit:?}; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs until exit and returns (exit code, stderr), for start-up failures.
    pub fn failure(mut self) -> (i32, String) {
        let status = self.wait_exit(PATIENCE);
        (status.code().unwrap_or(-1), self.stderr())
    }
}

impl Drop for Portico {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Who a process is, from the kernel's view: /proc/<pid>/status.
#[derive(Debug, PartialEq)]
pub struct Identity {
    /// Real, effective, saved and filesystem ids, as the kernel lists them.
    pub uids: Vec<u32>,
    pub gids: Vec<u32>,
    pub groups: Vec<u32>,
    pub effective_caps: String,
}

pub fn identity(pid: Pid) -> Identity {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim()
            .to_owned()
    };
    let ids = |name: &str| field(name).split_whitespace().map(|id| id.parse().unwrap()).collect();
    Identity {
        uids: ids("Uid:"),
        gids: ids("Gid:"),
        groups: ids("Groups:"),
        effective_caps: field("CapEff:"),
    }
}

/// A TCP listening socket as a .socket unit would create it.
pub fn tcp_listener(addr: &str) -> TcpListener {
    TcpListener::bind(addr).unwrap()
}

/// An IPv6 socket that takes IPv4 too (IPV6_V6ONLY off), as a .socket unit's `[::]:80`
/// with systemd's default BindIPv6Only=both, but on loopback: bound to 127.0.0.1 in its
/// IPv4-mapped form, so IPv4 clients arrive as ::ffff:127.0.0.1. With the address for
/// an IPv4 client to connect to.
pub fn dual_stack_listener() -> (TcpListener, SocketAddr) {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, SockaddrIn6, bind, listen, setsockopt, socket, sockopt,
    };
    let fd = socket(AddressFamily::Inet6, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    setsockopt(&fd, sockopt::Ipv6V6Only, &false).unwrap();
    let mapped = std::net::SocketAddrV6::new(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped(), 0, 0, 0);
    bind(fd.as_raw_fd(), &SockaddrIn6::from(mapped)).unwrap();
    listen(&fd, Backlog::new(128).unwrap()).unwrap();
    let listener = TcpListener::from(fd);
    let port = listener.local_addr().unwrap().port();
    (listener, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A free port on 127.0.0.1 for portico to bind itself.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Connects, retrying while portico is still starting.
pub fn connect(addr: SocketAddr) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match TcpStream::connect(addr) {
            Ok(stream) => {
                stream.set_read_timeout(Some(PATIENCE)).unwrap();
                return stream;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "cannot connect to {addr}: {e}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// Sends one request with `Connection: close` and reads the whole response.
pub fn request<S: Read + Write>(
    mut stream: S,
    method: &str,
    path: &str,
    extra_headers: &str,
) -> std::io::Result<Response> {
    write!(stream, "{method} {path} HTTP/1.1\r\nHost: device\r\nConnection: close\r\n{extra_headers}\r\n")?;
    read_response(stream)
}

pub fn read_response<S: Read>(mut stream: S) -> std::io::Result<Response> {
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let text = String::from_utf8_lossy(raw);
    let bad =
        || std::io::Error::new(std::io::ErrorKind::InvalidData, format!("not an HTTP response: {text:?}"));
    let (head, body) = text.split_once("\r\n\r\n").ok_or_else(bad)?;
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(bad)?;
    Ok(Response { status, head: head.to_owned(), body: body.to_owned() })
}

pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(connect(addr), "GET", path, "").unwrap_or_else(|e| panic!("GET {path} from {addr}: {e}"))
}

pub fn get_unix(path: &Path, target: &str) -> Response {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    request(stream, "GET", target, "").unwrap()
}

/// The JSON of /api/status.
pub fn api_status(addr: SocketAddr) -> serde_json::Value {
    let response = get(addr, "/api/status");
    assert_eq!(response.status, 200, "{}", response.body);
    serde_json::from_str(&response.body).unwrap()
}

/// A notify socket owned by the test, as systemd's would be for Type=notify.
pub struct NotifySocket {
    pub path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    pub fn new() -> Self {
        let path = scratch_path("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        // Like systemd's own, writable by the unprivileged user portico switches to.
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
        NotifySocket { path, socket }
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }

    /// The next message, or None if nothing arrives within `limit`.
    pub fn recv(&self, limit: Duration) -> Option<String> {
        self.socket.set_read_timeout(Some(limit)).unwrap();
        let mut buf = [0u8; 4096];
        match self.socket.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(_) => None,
        }
    }

    /// Every message that arrives within `window`, with when it arrived.
    pub fn collect(&self, window: Duration) -> Vec<(Instant, String)> {
        let end = Instant::now() + window;
        let mut messages = Vec::new();
        while Instant::now() < end {
            if let Some(message) = self.recv(Duration::from_millis(100)) {
                messages.push((Instant::now(), message));
            }
        }
        messages
    }

    /// Fills the socket's queue (net.unix.max_dgram_qlen datagrams), so that the next
    /// notification portico sends waits in its send(2) until `release`: the test holds it
    /// back, as a busy service manager would.
    pub fn hold(&self) -> Held {
        let filler = UnixDatagram::unbound().unwrap();
        filler.connect(&self.path).unwrap();
        filler.set_nonblocking(true).unwrap();
        let mut count = 0;
        loop {
            match filler.send(HELD) {
                Ok(_) => count += 1,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return Held { _filler: filler, count };
                }
                Err(e) => panic!("cannot fill the notify socket: {e}"),
            }
        }
    }

    /// Reads the datagrams `hold` queued, which lets portico's waiting send through.
    pub fn release(&self, held: Held) {
        for _ in 0..held.count {
            let message = self.recv(PATIENCE).expect("the datagrams that held the notify socket");
            assert_eq!(message.as_bytes(), HELD, "portico's notification came before the held ones");
        }
    }

    /// Waits for a message containing `needle`, returning it and what came before.
    pub fn wait_for(&self, needle: &str) -> (String, Vec<String>) {
        let deadline = Instant::now() + PATIENCE;
        let mut before = Vec::new();
        while Instant::now() < deadline {
            if let Some(message) = self.recv(Duration::from_millis(200)) {
                if message.lines().any(|l| l == needle) {
                    return (message, before);
                }
                before.push(message);
            }
        }
        panic!("no {needle} on the notify socket; got {before:?}");
    }
}

const HELD: &[u8] = b"HELD-BY-THE-TEST";

/// The queue of a notify socket, kept full by the test (`NotifySocket::hold`).
pub struct Held {
    _filler: UnixDatagram,
    count: usize,
}

/// A TLS client that accepts any certificate, as `curl -k` does, and says which it got.
pub mod tls {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::sync::{Arc, Mutex};

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::WebPkiSupportedAlgorithms;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{ClientConnection, DigitallySignedStruct, SignatureScheme, StreamOwned};

    /// Any certificate, as `curl -k` takes it, kept for its fingerprint; the handshake's
    /// signature is still checked against it, as curl checks it.
    #[derive(Debug, Default)]
    struct AcceptAny(Mutex<Option<Vec<u8>>>);

    type Signed = Result<HandshakeSignatureValid, rustls::Error>;

    fn algorithms() -> WebPkiSupportedAlgorithms {
        rustls::crypto::ring::default_provider().signature_verification_algorithms
    }

    impl ServerCertVerifier for AcceptAny {
        fn verify_server_cert(
            &self,
            end_entity: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            *self.0.lock().unwrap() = Some(end_entity.to_vec());
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer, d: &DigitallySignedStruct) -> Signed {
            rustls::crypto::verify_tls12_signature(m, c, d, &algorithms())
        }

        fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer, d: &DigitallySignedStruct) -> Signed {
            rustls::crypto::verify_tls13_signature(m, c, d, &algorithms())
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            algorithms().supported_schemes()
        }
    }

    /// A TLS connection to portico, and the SHA-256 fingerprint of the certificate it sent.
    pub struct Client {
        pub stream: StreamOwned<ClientConnection, TcpStream>,
        pub fingerprint: String,
    }

    impl Client {
        pub fn connect(addr: SocketAddr) -> Self {
            Self::try_connect(addr).expect("TLS handshake with portico")
        }

        /// A connection, or None if the handshake fails (portico killed under it).
        pub fn try_connect(addr: SocketAddr) -> Option<Self> {
            let verifier = Arc::new(AcceptAny::default());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
            let name = ServerName::try_from("portico.local").unwrap();
            let connection = ClientConnection::new(Arc::new(config), name).unwrap();
            let mut stream = StreamOwned::new(connection, std::net::TcpStream::connect(addr).ok()?);
            stream.sock.set_read_timeout(Some(super::PATIENCE)).ok()?;
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock).ok()?;
            }
            let der = verifier.0.lock().unwrap().take().expect("portico sent a certificate");
            Some(Client { stream, fingerprint: fingerprint(&der) })
        }

        /// One keep-alive request; reads exactly the response (Content-Length).
        pub fn get(&mut self, path: &str) -> super::Response {
            self.request("GET", path, "", "")
        }

        /// Any request; `headers` are whole lines with their CRLF.
        pub fn request(&mut self, method: &str, path: &str, headers: &str, body: &str) -> super::Response {
            self.try_request(method, path, headers, body).expect("connection closed mid-response")
        }

        /// Any request, or None if the connection ends before the whole response.
        pub fn try_request(
            &mut self,
            method: &str,
            path: &str,
            headers: &str,
            body: &str,
        ) -> Option<super::Response> {
            write!(
                self.stream,
                "{method} {path} HTTP/1.1\r\nHost: device\r\nContent-Length: {}\r\n{headers}\r\n{body}",
                body.len()
            )
            .ok()?;
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = self.stream.read(&mut buf).ok().filter(|n| *n > 0)?;
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    if body.len() >= length {
                        return super::parse_response(&raw).ok();
                    }
                }
            }
        }
    }

    /// What browsers show: upper-case hex pairs joined by colons.
    pub fn fingerprint(der: &[u8]) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        digest.as_ref().iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
    }
}

/// The owner's login for tests that change settings (owner.rs tests the login itself):
/// the device is set up with a code the test provisions as the systemd credential
/// `setup-code`, as a device maker would, so no log line has to be parsed.
pub mod owner {
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use super::tls::Client;

    pub const SETUP_CODE: &str = "7K3M-QX2D-9RHT-W4NB";
    pub const PASSWORD: &str = "plum kettle under the stairs";

    /// A credentials directory holding `setup-code`: pass it as CREDENTIALS_DIRECTORY.
    pub fn credentials() -> PathBuf {
        let dir = super::scratch_path("credentials");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("setup-code"), SETUP_CODE).unwrap();
        super::give_to_portico(&dir.join("setup-code"));
        dir
    }

    /// Form encoding (application/x-www-form-urlencoded).
    pub fn form(fields: &[(&str, &str)]) -> String {
        let escape = |s: &str| -> String {
            s.bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
                    _ => format!("%{b:02X}"),
                })
                .collect()
        };
        fields.iter().map(|(k, v)| format!("{}={}", escape(k), escape(v))).collect::<Vec<_>>().join("&")
    }

    /// A logged-in owner: the session cookie and the settings page's form token.
    pub struct Session {
        cookie: String,
        csrf: String,
    }

    impl Session {
        /// Sets the owner's password with the provisioned code: the session set-up opens.
        pub fn set_up(addr: SocketAddr) -> Session {
            Session::open(
                addr,
                "/setup",
                &[("code", SETUP_CODE), ("password", PASSWORD), ("again", PASSWORD)],
            )
        }

        /// Logs in as the owner set up before.
        pub fn log_in(addr: SocketAddr) -> Session {
            Session::open(addr, "/login", &[("password", PASSWORD)])
        }

        fn open(addr: SocketAddr, path: &str, fields: &[(&str, &str)]) -> Session {
            let done = post(&mut Client::connect(addr), path, "", fields);
            assert_eq!(done.status, 303, "{path}: {}{}", done.head, done.body);
            let cookie = done
                .head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().starts_with("set-cookie:").then(|| &l[11..]))
                .and_then(|v| v.trim().split(';').next())
                .unwrap_or_else(|| panic!("{path} set no cookie: {}", done.head))
                .to_owned();
            let page =
                Client::connect(addr).request("GET", "/settings", &format!("Cookie: {cookie}\r\n"), "");
            let at = page.body.find("name=\"csrf\" value=\"").expect("the settings page's form token") + 19;
            Session { csrf: page.body[at..at + 32].to_owned(), cookie }
        }

        /// A GET as the logged-in owner (the session's cookie) on `client`.
        pub fn get(&self, client: &mut Client, path: &str) -> super::Response {
            client.request("GET", path, &format!("Cookie: {}\r\n", self.cookie), "")
        }

        /// Posts a settings form on `client`, which may be kept alive across posts.
        pub fn post(&self, client: &mut Client, path: &str, fields: &[(&str, &str)]) -> super::Response {
            let mut fields = fields.to_vec();
            fields.push(("csrf", &self.csrf));
            post(client, path, &format!("Cookie: {}\r\n", self.cookie), &fields)
        }
    }

    /// A form posted as a page of the device posts it.
    fn post(client: &mut Client, path: &str, headers: &str, fields: &[(&str, &str)]) -> super::Response {
        let headers =
            format!("{headers}Origin: https://device\r\nContent-Type: application/x-www-form-urlencoded\r\n");
        client.request("POST", path, &headers, &form(fields))
    }
}
