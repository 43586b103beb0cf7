//! Restart in place, for inits without socket activation (SIGUSR2): after the drain,
//! portico executes itself again, with the same pid, and hands its listening sockets to
//! the new program by the LISTEN_FDS protocol. The sockets never close, so connections
//! that arrive meanwhile wait in their backlog instead of being refused: what systemd's
//! socket units give for free, for BusyBox init's `S50portico restart` and for a binary
//! upgraded in place.

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::fcntl::{FcntlArg, fcntl};
use nix::unistd::execve;

use super::activation::{HTTPS_NAME, Listener, SocketInfo};

/// Copies of the listening sockets, kept open while the runtime uses the originals.
pub(crate) struct Handover {
    sockets: Vec<(OwnedFd, String)>,
}

impl Handover {
    pub(crate) fn keep(sockets: &[(Listener, SocketInfo)]) -> std::io::Result<Self> {
        let sockets = sockets
            .iter()
            .map(|(listener, info)| {
                let name = match (&info.name, info.https) {
                    (Some(name), _) => name.clone(),
                    (None, true) => HTTPS_NAME.to_owned(),
                    (None, false) => "http".to_owned(),
                };
                Ok((listener.try_clone_fd()?, name))
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Handover { sockets })
    }

    /// Replaces this process with portico again; returns only if that failed. Runs after
    /// the runtime has stopped, on the one thread left.
    pub(crate) fn exec(self) -> std::io::Error {
        match self.try_exec() {
            Err(e) => e,
        }
    }

    fn try_exec(self) -> Result<std::convert::Infallible, std::io::Error> {
        use std::os::unix::ffi::OsStrExt;
        let cstring = |bytes: &[u8]| CString::new(bytes).map_err(std::io::Error::other);
        let program = cstring(current_program()?.as_os_str().as_bytes())?;
        let args: Vec<CString> =
            std::env::args_os().map(|arg| cstring(arg.as_bytes())).collect::<Result<_, _>>()?;
        let names: Vec<&str> = self.sockets.iter().map(|(_, name)| name.as_str()).collect();
        let ours = [
            format!("LISTEN_FDS={}", self.sockets.len()),
            format!("LISTEN_PID={}", std::process::id()),
            format!("LISTEN_FDNAMES={}", names.join(":")),
        ];
        let mut env: Vec<CString> = std::env::vars_os()
            .filter(|(key, _)| !key.as_bytes().starts_with(b"LISTEN_"))
            .map(|(key, value)| cstring(&[key.as_bytes(), b"=", value.as_bytes()].concat()))
            .collect::<Result<_, _>>()?;
        for var in ours {
            env.push(cstring(var.as_bytes())?);
        }
        // Copies above every number the new program is to find, so placing one cannot
        // overwrite another; then 3, 4, ..., which dup2 leaves open across exec.
        let high = self.sockets.len() as RawFd + 3;
        let moved: Vec<OwnedFd> = self
            .sockets
            .iter()
            .map(|(fd, _)| {
                let copy = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(high))?;
                // SAFETY: F_DUPFD_CLOEXEC returned a new descriptor that nothing else owns.
                Ok(unsafe { OwnedFd::from_raw_fd(copy) })
            })
            .collect::<nix::Result<_>>()?;
        for (i, fd) in moved.iter().enumerate() {
            // SAFETY: 3 + i is free to take over: the runtime, which owned descriptors
            // there, has stopped, and every socket to keep is in `moved`.
            if unsafe { nix::libc::dup2(fd.as_raw_fd(), 3 + i as RawFd) } == -1 {
                return Err(std::io::Error::last_os_error());
            }
        }
        Ok(execve(&program, &args, &env)?)
    }
}

/// The program file, even after a package upgrade replaced it (then /proc/self/exe names
/// the old file "(deleted)", and the new one is at the same path).
fn current_program() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text: OsString = exe.into_os_string();
    let text = text.to_string_lossy();
    Ok(PathBuf::from(text.strip_suffix(" (deleted)").unwrap_or(&text)))
}
