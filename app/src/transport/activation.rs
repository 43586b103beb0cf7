//! Listening sockets: the ones systemd passes (socket activation), or, when portico is
//! started by hand, the `--listen` addresses it binds itself.
//!
//! All of it runs before the async runtime starts, while the process has one thread:
//! that is what makes clearing the `LISTEN_*` variables sound, and it means a bad socket
//! is reported before anything is served.

use std::ffi::OsString;
use std::fmt;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::fcntl::{FcntlArg, FdFlag, fcntl};
use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrLike, SockaddrStorage, sockopt,
};
use nix::sys::stat::{SFlag, fstat};
use serde::Serialize;

use crate::config::{Config, Listen, ListenAddr};

/// A listening socket, ready to hand to the runtime.
pub(crate) enum Listener {
    Tcp(std::net::TcpListener),
    Unix(UnixListener),
}

/// What the status page says about a socket.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct SocketInfo {
    /// The name from `FileDescriptorName=` in the .socket unit.
    pub name: Option<String>,
    pub address: String,
    /// The descriptor number systemd passed it as.
    pub fd: Option<RawFd>,
    /// Speaks HTTPS: named `https` by systemd, or `https://` in `--listen`.
    pub https: bool,
}

/// The FileDescriptorName= of a socket that speaks HTTPS.
pub(super) const HTTPS_NAME: &str = "https";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Origin {
    /// Passed by systemd (or another service manager speaking its protocol).
    Systemd,
    /// Bound by portico from `--listen`.
    #[serde(rename = "self")]
    SelfBound,
}

pub(crate) struct Listeners {
    pub origin: Origin,
    pub sockets: Vec<(Listener, SocketInfo)>,
}

/// Why the sockets cannot be used. Each message names the descriptor or variable, what is
/// wrong and the usual cause.
#[derive(Debug)]
pub(crate) enum ActivationError {
    BadVariable {
        name: &'static str,
        value: OsString,
    },
    NameCount {
        fds: usize,
        names: usize,
    },
    /// `require_activation` is on and nothing usable was passed; `ignored` says why
    /// passed descriptors were not taken.
    NotActivated {
        ignored: Option<String>,
    },
    BadSocket {
        fd: RawFd,
        name: Option<String>,
        problem: String,
    },
    Bind {
        addr: String,
        error: std::io::Error,
    },
}

impl fmt::Display for ActivationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const WRAPPER: &str = "This usually means a wrapper between systemd and portico \
            closed or replaced the inherited descriptors (fd 3 and up): start portico \
            directly in ExecStart=, or have the wrapper `exec` it without closing fds.";
        match self {
            ActivationError::BadVariable { name, value } => write!(
                f,
                "{name}={value:?} is not a number. The service manager's socket variables \
                 are malformed; start portico from a .socket unit or unset {name}."
            ),
            ActivationError::NameCount { fds, names } => write!(
                f,
                "LISTEN_FDS={fds} but LISTEN_FDNAMES has {names} names: the service manager's \
                 variables disagree, so portico cannot tell which socket is which. {WRAPPER}"
            ),
            ActivationError::NotActivated { ignored } => {
                match ignored {
                    Some(why) => write!(f, "{why}, and require_activation is on. ")?,
                    None => f.write_str(
                        "no sockets were passed (LISTEN_FDS is not set) and require_activation is on. ",
                    )?,
                }
                f.write_str(
                    "Start portico through its socket (systemctl start portico.socket), or drop \
                     --require-activation to bind the --listen addresses.",
                )
            }
            ActivationError::BadSocket { fd, name, problem } => {
                write!(f, "inherited fd {fd}")?;
                if let Some(name) = name {
                    write!(f, " ({name:?})")?;
                }
                write!(f, " {problem}.")
            }
            ActivationError::Bind { addr, error } => write!(
                f,
                "cannot listen on {addr}: {error}. Is another server using it? Choose another \
                 address with --listen, or let systemd pass the socket."
            ),
        }
    }
}

impl std::error::Error for ActivationError {}

/// The sockets to serve: systemd's if it passed any, else the configured addresses.
pub(crate) fn listeners(config: &Config) -> Result<Listeners, ActivationError> {
    let ignored = match inherited()? {
        Passed::Sockets(sockets) => return Ok(Listeners { origin: Origin::Systemd, sockets }),
        Passed::Nothing => None,
        Passed::Ignored(why) => Some(why),
    };
    if config.require_activation {
        return Err(ActivationError::NotActivated { ignored });
    }
    if let Some(why) = ignored {
        tracing::warn!("{why}: binding the --listen addresses instead");
    }
    let sockets = config.listen.iter().map(bind).collect::<Result<_, _>>()?;
    Ok(Listeners { origin: Origin::SelfBound, sockets })
}

/// What the `LISTEN_*` variables passed.
enum Passed {
    Nothing,
    /// Descriptors that sd_listen_fds(3) would not take, and why.
    Ignored(String),
    Sockets(Vec<(Listener, SocketInfo)>),
}

/// Takes the sockets passed by the `LISTEN_FDS` protocol with the checks of
/// sd_listen_fds(3) that listenfd leaves out: LISTEN_PID must be set and name this process,
/// or the descriptors are not portico's to take. Every `LISTEN_*` variable is cleared, so
/// nothing portico starts inherits them.
fn inherited() -> Result<Passed, ActivationError> {
    let count = number_var("LISTEN_FDS")?;
    let pid = number_var("LISTEN_PID")?;
    let names: Option<Vec<String>> =
        std::env::var("LISTEN_FDNAMES").ok().map(|names| names.split(':').map(str::to_owned).collect());
    // listenfd clears LISTEN_FDS and LISTEN_PID; it does not know LISTEN_FDNAMES.
    let mut passed = listenfd::ListenFd::from_env();
    // SAFETY: no other thread exists yet to read the environment concurrently.
    unsafe { std::env::remove_var("LISTEN_FDNAMES") };

    let count = match (count, pid) {
        (None | Some(0), _) => return Ok(Passed::Nothing),
        (Some(count), Some(pid)) if pid == std::process::id() => count as usize,
        (Some(count), Some(pid)) => {
            return Ok(Passed::Ignored(format!(
                "LISTEN_FDS={count} was passed for process {pid}, but this is process {}: the \
                 sockets are not portico's to take (sd_listen_fds(3)). A wrapper that forks \
                 instead of using `exec` causes this; make it `exec portico`",
                std::process::id()
            )));
        }
        (Some(count), None) => {
            return Ok(Passed::Ignored(format!(
                "LISTEN_FDS={count} was passed without LISTEN_PID, so the sockets may be meant \
                 for another process and are not taken (sd_listen_fds(3)). Set LISTEN_PID to \
                 portico's own process id, as systemd and systemd-socket-activate do"
            )));
        }
    };
    if let Some(names) = &names {
        if names.len() != count {
            return Err(ActivationError::NameCount { fds: count, names: names.len() });
        }
    }
    let mut sockets = Vec::with_capacity(count);
    for index in 0..count {
        let name = names.as_ref().map(|names| names[index].clone());
        let raw = passed
            .take_raw_fd(index)
            .ok()
            .flatten()
            .ok_or_else(|| bad_socket(3 + index as RawFd, name.clone(), "could not be taken".into()))?;
        sockets.push(adopt(raw, name)?);
    }
    Ok(Passed::Sockets(sockets))
}

fn number_var(name: &'static str) -> Result<Option<u32>, ActivationError> {
    match std::env::var_os(name) {
        None => Ok(None),
        Some(value) => match value.to_str().and_then(|v| v.parse().ok()) {
            Some(n) => Ok(Some(n)),
            None => Err(ActivationError::BadVariable { name, value }),
        },
    }
}

fn bad_socket(fd: RawFd, name: Option<String>, problem: String) -> ActivationError {
    ActivationError::BadSocket { fd, name, problem }
}

/// Checks that `raw` is a listening stream socket and takes ownership of it.
fn adopt(raw: RawFd, name: Option<String>) -> Result<(Listener, SocketInfo), ActivationError> {
    let wrapper = "; a wrapper between systemd and portico probably closed or replaced it \
                   (start portico directly in ExecStart=, or `exec` it without closing fds)";
    // An fd number that is not open must never be wrapped in an OwnedFd.
    // SAFETY: F_GETFD only reads the descriptor flags of whatever `raw` is.
    if unsafe { nix::libc::fcntl(raw, nix::libc::F_GETFD) } == -1 {
        return Err(bad_socket(raw, name, format!("is not open{wrapper}")));
    }
    // SAFETY: the service manager passed this descriptor to this process alone, it is
    // open, and listenfd has handed it over, so nothing else owns or closes it.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };

    let kind = fstat(&fd).map(|st| SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits()));
    if kind != Ok(SFlag::S_IFSOCK) {
        let what = match kind {
            Ok(SFlag::S_IFREG) => "a regular file",
            Ok(SFlag::S_IFCHR) => "a character device (such as /dev/null)",
            Ok(SFlag::S_IFIFO) => "a pipe",
            Ok(SFlag::S_IFDIR) => "a directory",
            _ => "something else",
        };
        return Err(bad_socket(raw, name, format!("is not a socket but {what}{wrapper}")));
    }
    match socket::getsockopt(&fd, sockopt::SockType) {
        Ok(SockType::Stream) => {}
        Ok(other) => {
            return Err(bad_socket(
                raw,
                name,
                format!(
                    "is a {other:?} socket, not a stream socket: portico serves HTTP over \
                     ListenStream= sockets, not ListenDatagram= or ListenSequentialPacket="
                ),
            ));
        }
        Err(e) => return Err(bad_socket(raw, name, format!("cannot be inspected: {e}"))),
    }
    if !socket::getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false) {
        return Err(bad_socket(
            raw,
            name,
            "is not listening: it is a connected socket, which is what Accept=yes passes; \
             portico.socket must use Accept=no"
                .into(),
        ));
    }
    let family = socket::getsockname::<SockaddrStorage>(fd.as_raw_fd()).ok().and_then(|addr| addr.family());

    // systemd passes descriptors without O_CLOEXEC (and possibly blocking, fixed below).
    fcntl(fd.as_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| bad_socket(raw, name.clone(), format!("cannot be set close-on-exec: {e}")))?;

    let listener = match family {
        Some(AddressFamily::Inet | AddressFamily::Inet6) => Listener::Tcp(fd.into()),
        Some(AddressFamily::Unix) => Listener::Unix(fd.into()),
        other => {
            return Err(bad_socket(
                raw,
                name,
                format!("has address family {other:?}; portico serves TCP and Unix sockets"),
            ));
        }
    };
    listener
        .set_nonblocking()
        .map_err(|e| bad_socket(raw, name.clone(), format!("cannot be made non-blocking: {e}")))?;
    let https = name.as_deref() == Some(HTTPS_NAME);
    let info = SocketInfo { name, address: listener.address(), fd: Some(raw), https };
    Ok((listener, info))
}

/// Binds one `--listen` address.
fn bind(listen: &Listen) -> Result<(Listener, SocketInfo), ActivationError> {
    let failed = |error| ActivationError::Bind { addr: listen.to_string(), error };
    let listener = match &listen.addr {
        ListenAddr::Tcp(addr) => Listener::Tcp(bind_tcp(*addr).map_err(|e| failed(e.into()))?),
        ListenAddr::Unix(path) => Listener::Unix(bind_unix(path).map_err(failed)?),
    };
    listener.set_nonblocking().map_err(failed)?;
    let info = SocketInfo { name: None, address: listener.address(), fd: None, https: listen.https };
    Ok((listener, info))
}

/// Like nginx, an IPv6 address binds IPv6 only, so `0.0.0.0:80` and `[::]:80` can be
/// listed together.
fn bind_tcp(addr: std::net::SocketAddr) -> nix::Result<std::net::TcpListener> {
    let family = if addr.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    if addr.is_ipv6() {
        socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
    }
    socket::bind(fd.as_raw_fd(), &SockaddrStorage::from(addr))?;
    socket::listen(&fd, Backlog::MAXCONN)?;
    Ok(fd.into())
}

/// Replaces a stale socket file left by an earlier run, but never a live one.
fn bind_unix(path: &Path) -> std::io::Result<UnixListener> {
    match UnixListener::bind(path) {
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(e);
            }
            std::fs::remove_file(path)?;
            UnixListener::bind(path)
        }
        result => result,
    }
}

impl Listener {
    /// Another descriptor for the same socket (close-on-exec).
    pub(crate) fn try_clone_fd(&self) -> std::io::Result<OwnedFd> {
        match self {
            Listener::Tcp(l) => l.try_clone().map(OwnedFd::from),
            Listener::Unix(l) => l.try_clone().map(OwnedFd::from),
        }
    }

    fn set_nonblocking(&self) -> std::io::Result<()> {
        match self {
            Listener::Tcp(l) => l.set_nonblocking(true),
            Listener::Unix(l) => l.set_nonblocking(true),
        }
    }

    fn address(&self) -> String {
        match self {
            Listener::Tcp(l) => l.local_addr().map(|a| a.to_string()),
            Listener::Unix(l) => l.local_addr().map(|a| {
                use std::os::linux::net::SocketAddrExt;
                match (a.as_pathname(), a.as_abstract_name()) {
                    (Some(path), _) => path.display().to_string(),
                    // systemd's notation for ListenStream=@name.
                    (None, Some(name)) => format!("@{}", String::from_utf8_lossy(name)),
                    (None, None) => "(unnamed Unix socket)".to_owned(),
                }
            }),
        }
        .unwrap_or_else(|e| format!("(unknown: {e})"))
    }
}
