//! Never serve as root: under systemd the unit gives portico its own user; started as root
//! by another init (BusyBox, daemontools, runit) or from a root shell, portico binds its
//! ports and then becomes the configured user, or `nobody` as nginx does, before it serves
//! anything.

use std::fmt;

use nix::unistd::{Gid, Uid, User, geteuid, setgid, setgroups, setuid};

/// Whom a root start switches to when no user is configured.
const DEFAULT_USER: &str = "nobody";

#[derive(Debug)]
pub(crate) enum PrivilegeError {
    RefuseRoot { user: String },
    UnknownUser(String),
    NotRoot { user: String },
    Switch { user: String, error: nix::Error },
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::RefuseRoot { user } => write!(
                f,
                "refusing to serve as root: user {user:?} has uid 0. Name an unprivileged user \
                 to switch to after binding (--user portico, or `user` in the config file), or \
                 pass --allow-root if you really mean it."
            ),
            PrivilegeError::UnknownUser(user) => write!(
                f,
                "user {user:?} does not exist: create it, or name another with --user \
                 (started as root, portico switches to {DEFAULT_USER:?} unless told otherwise)"
            ),
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

/// Switches to `user` if running as root (to `nobody` if no user is named), or refuses to
/// go on as root unless allowed. Must run before any thread is started, so that every
/// thread has the new identity.
pub(crate) fn drop_root(user: Option<&str>, allow_root: bool) -> Result<(), PrivilegeError> {
    let name = match user {
        Some(name) => name,
        None if allow_root || !geteuid().is_root() => return Ok(()),
        None => DEFAULT_USER,
    };
    let account =
        User::from_name(name).ok().flatten().ok_or_else(|| PrivilegeError::UnknownUser(name.to_owned()))?;
    if account.uid.is_root() && !allow_root {
        return Err(PrivilegeError::RefuseRoot { user: name.to_owned() });
    }
    if !geteuid().is_root() {
        return match geteuid() == account.uid {
            true => Ok(()),
            false => Err(PrivilegeError::NotRoot { user: name.to_owned() }),
        };
    }
    become_ids(account.uid, account.gid)
        .map_err(|error| PrivilegeError::Switch { user: name.to_owned(), error })?;
    let how = match user {
        Some(_) => "switched user after binding",
        None => {
            "started as root with no user configured: switched to nobody after binding (name one with --user)"
        }
    };
    tracing::info!(user = name, uid = account.uid.as_raw(), gid = account.gid.as_raw(), "{how}");
    Ok(())
}

/// Root becomes `uid`:`gid` for good, with no supplementary groups beyond `gid`.
pub(crate) fn become_ids(uid: Uid, gid: Gid) -> nix::Result<()> {
    // Supplementary groups first, then the group, then the user: after setuid the other
    // two would no longer be allowed.
    setgroups(&[gid])?;
    setgid(gid)?;
    setuid(uid)?;
    // A process that can become root again has not dropped anything.
    if !uid.is_root() && setuid(Uid::from_raw(0)).is_ok() {
        return Err(nix::Error::EPERM);
    }
    Ok(())
}
