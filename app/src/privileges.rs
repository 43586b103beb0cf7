//! Never serve as root: under systemd the unit gives portico its own user; started as root
//! by another init (BusyBox, daemontools, runit), portico binds its ports and then becomes
//! the configured user before it serves anything.

use std::fmt;

use nix::unistd::{Uid, User, geteuid, setgid, setgroups, setuid};

#[derive(Debug)]
pub enum PrivilegeError {
    RefuseRoot,
    UnknownUser(String),
    NotRoot { user: String },
    Switch { user: String, error: nix::Error },
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::RefuseRoot => f.write_str(
                "refusing to serve as root. Name an unprivileged user to switch to after \
                 binding (--user portico, or `user` in the config file), or pass --allow-root \
                 if you really mean it.",
            ),
            PrivilegeError::UnknownUser(user) => {
                write!(f, "user {user:?} does not exist: create it, or name another with --user")
            }
            PrivilegeError::NotRoot { user } => write!(
                f,
                "cannot switch to user {user:?}: portico runs as uid {} and only root can \
                 switch users. Start it as root, or drop --user.",
                geteuid()
            ),
            PrivilegeError::Switch { user, error } => write!(f, "cannot switch to user {user:?}: {error}"),
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// Switches to `user` if running as root, or refuses to go on as root unless allowed.
/// Must run before any thread is started, so that every thread has the new identity.
pub fn drop_root(user: Option<&str>, allow_root: bool) -> Result<(), PrivilegeError> {
    let Some(name) = user else {
        return match geteuid().is_root() && !allow_root {
            true => Err(PrivilegeError::RefuseRoot),
            false => Ok(()),
        };
    };
    let account =
        User::from_name(name).ok().flatten().ok_or_else(|| PrivilegeError::UnknownUser(name.to_owned()))?;
    if !geteuid().is_root() {
        return match geteuid() == account.uid {
            true => Ok(()),
            false => Err(PrivilegeError::NotRoot { user: name.to_owned() }),
        };
    }
    let switch = |error| PrivilegeError::Switch { user: name.to_owned(), error };
    // Supplementary groups first, then the group, then the user: after setuid the other
    // two would no longer be allowed.
    setgroups(&[account.gid]).map_err(switch)?;
    setgid(account.gid).map_err(switch)?;
    setuid(account.uid).map_err(switch)?;
    // A process that can become root again has not dropped anything.
    if !account.uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
        return Err(switch(nix::Error::EPERM));
    }
    tracing::info!(
        user = name,
        uid = account.uid.as_raw(),
        gid = account.gid.as_raw(),
        "switched user after binding"
    );
    Ok(())
}
