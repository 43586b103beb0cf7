//! Restart in place, for inits without socket activation (SIGUSR2): after the drain,
//! portico executes itself again, with the same pid, and hands its listening sockets to
//! the new program by the LISTEN_FDS protocol. The sockets never close, so connections
//! that arrive meanwhile wait in their backlog instead of being refused: what systemd's
//! socket units give for free, for BusyBox init's `S50portico restart` and for a binary
//! upgraded in place.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use crate::activation::{HTTPS_NAME, Listener, SocketInfo};

/// Copies of the listening sockets, kept open while the runtime uses the originals.
pub struct Handover {
    sockets: Vec<(OwnedFd, String)>,
}

impl Handover {
    pub fn keep(sockets: &[(Listener, SocketInfo)]) -> std::io::Result<Self> {
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

    /// Replaces this process with portico again; returns only if that failed.
    pub fn exec(self) -> std::io::Error {
        let program = match current_program() {
            Ok(program) => program,
            Err(e) => return e,
        };
        let names: Vec<&str> = self.sockets.iter().map(|(_, name)| name.as_str()).collect();
        let raw: Vec<RawFd> = self.sockets.iter().map(|(fd, _)| fd.as_raw_fd()).collect();
        // Above every descriptor the new program is to find, so that placing one cannot
        // overwrite another.
        let high = raw.len() as RawFd + 3;
        let mut command = std::process::Command::new(program);
        command
            .args(std::env::args_os().skip(1))
            .env("LISTEN_FDS", raw.len().to_string())
            .env("LISTEN_PID", std::process::id().to_string())
            .env("LISTEN_FDNAMES", names.join(":"));
        // dup2 leaves the copies at 3, 4, ... open across exec; the others close.
        // SAFETY: only async-signal-safe calls (fcntl, dup2) between here and exec.
        unsafe {
            command.pre_exec(move || {
                let mut moved = Vec::with_capacity(raw.len());
                for fd in &raw {
                    let copy = nix::libc::fcntl(*fd, nix::libc::F_DUPFD_CLOEXEC, high);
                    if copy == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    moved.push(copy);
                }
                for (i, fd) in moved.iter().enumerate() {
                    if nix::libc::dup2(*fd, 3 + i as RawFd) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        let _keep_open_until_exec = self.sockets;
        command.exec()
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
