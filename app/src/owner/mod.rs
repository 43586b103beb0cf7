//! The owner: who sets the device up and alone may change it. The login (password rules,
//! hashing, the throttle, sessions), the extractors a page takes to require it, the
//! owner's state on disk, the owner's pages, and the owner's say in field updates.
//!
//! Built with the `tls` feature only: the login never travels in clear.

pub(crate) mod account;
mod common_passwords;
mod error;
pub(crate) mod extract;
mod hashing;
pub(crate) mod pages;
mod password;
mod sessions;
mod state;
#[cfg(test)]
mod tests;
mod throttle;
pub(crate) mod updates;

use std::error::Error;
use std::path::Path;

pub use extract::CsrfForm;
pub(crate) use extract::HasAuth;
pub use sessions::LoggedIn;

use crate::config::{self, Config};
use account::Auth;

/// Opens the owner's state; while the device has no owner, says how to set it up.
pub(crate) fn open(config: &Config) -> Result<Auth, Box<dyn Error>> {
    let provisioned = config::credential("setup-code")?;
    let lifetimes =
        sessions::Lifetimes { idle: config.session_idle_timeout, absolute: config.session_lifetime };
    let (auth, opened) = Auth::open(state::Store::new(&config.state_directory), provisioned, lifetimes);
    match opened {
        account::Opened::Owned => {}
        account::Opened::Code(code) => tracing::warn!(
            "this device has no owner yet: set-up code {code}; open https://<this device>/setup to \
             choose the owner's password"
        ),
        account::Opened::Reset => tracing::warn!(
            "this device has no owner: open https://<this device>/setup with the code that \
             `portico reset-owner` printed"
        ),
        account::Opened::Unreadable(why) => tracing::error!(
            "the owner's state cannot be read or kept ({why}): it is left as it is, the owner's pages \
             say so and the status page is private until it can be (portico tries again at each request)"
        ),
        account::Opened::Provisioned => tracing::warn!(
            "this device has no owner yet: open https://<this device>/setup with the set-up code \
             on its label"
        ),
    }
    Ok(auth)
}

/// `portico reset-owner`, run by root on the device: clears the owner's password and
/// returns a new set-up code. The state directory is the running service's (systemd keeps
/// a DynamicUser= service's under /var/lib/private). The reset is written as that
/// directory's owner, not as root: whatever that user left in it (a link to a file of
/// root's, say) can then do no more than the user could itself.
pub(crate) fn reset(config: &Config) -> Result<String, String> {
    use std::os::unix::fs::MetadataExt;
    let private = Path::new("/var/lib/private/portico");
    let dir = match config.state_directory == Path::new(config::DEFAULT_STATE_DIRECTORY) && private.is_dir() {
        true => private.to_path_buf(),
        false => config.state_directory.clone(),
    };
    std::fs::metadata(&dir)
        .map_err(|e| e.to_string())
        .and_then(|owner| {
            let (uid, gid) =
                (nix::unistd::Uid::from_raw(owner.uid()), nix::unistd::Gid::from_raw(owner.gid()));
            match nix::unistd::geteuid().is_root() && !uid.is_root() {
                true => crate::transport::privileges::become_ids(uid, gid)
                    .map_err(|e| format!("cannot become the directory's owner (uid {uid}): {e}")),
                false => Ok(()),
            }
        })
        .and_then(|()| account::reset(&state::Store::new(&dir)).map_err(|e| e.to_string()))
        .map_err(|e| format!("cannot reset the owner in {}: {e}", dir.display()))
}
