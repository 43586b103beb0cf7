//! The owner's state: the password, the pending set-up code, the device's label and who
//! may see the status page, in one file of the state directory (`owner.json`), apart from
//! the image's config file.
//!
//! Every write is atomic and durable (temporary file, fsync, rename, fsync of the
//! directory), so after a power loss the file is the old one or the new one. Writers take
//! the directory's lock, portico's saves and `portico reset-owner` alike, so no save is
//! lost to another. A file that is torn or altered anyway fails its checksum; it never
//! leaves the device open: the caller keeps a copy, starts over with "set-up needed" and a
//! code only someone at the device can read, and says so. A file that cannot be read (EIO,
//! EACCES) is not damage: it is left as it is.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::durable::write_atomically;

/// What the owner has set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Owner {
    /// argon2id hash (PHC string) of the password; none until set-up is done.
    pub password: Option<String>,
    /// argon2id hash of the one-time set-up code; none once it is spent.
    pub setup_code: Option<String>,
    /// The code was printed by `portico reset-owner` and is kept until used; a code
    /// portico generated itself is made anew at each start instead.
    #[serde(default)]
    pub keep_code: bool,
    /// The device's name for people, shown on the status page.
    pub label: String,
    /// Whether the status page and /api/status need no login.
    pub status_public: bool,
    /// Bumped when the password changes or the owner is reset: older sessions end.
    pub generation: u64,
    /// Set-up takes only a code portico printed to its journal (or `reset-owner`'s), not
    /// the one provisioned on the label: the state was found damaged, and whoever damaged
    /// it may have read the label.
    #[serde(default)]
    pub local_code_only: bool,
}

/// What was found in the state directory.
pub(super) enum Loaded {
    Owner(Owner),
    /// No file: the device's first start (or a purge).
    Missing,
    /// A file that fails its checksum or does not parse, and why.
    Damaged(String),
    /// A file that is there but cannot be read (an I/O error, no permission), and why.
    Unreadable(String),
}

pub(super) struct Store {
    path: PathBuf,
}

impl Store {
    pub(crate) fn new(state_directory: &Path) -> Self {
        Store { path: state_directory.join("owner.json") }
    }

    pub(crate) fn load(&self) -> Loaded {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(e) => return Loaded::Unreadable(format!("cannot read {}: {e}", self.path.display())),
        };
        let Some((json, sum)) = text.trim_end().rsplit_once('\n') else {
            return Loaded::Damaged(format!("{} has no checksum line", self.path.display()));
        };
        if sum != checksum(json) {
            return Loaded::Damaged(format!("{} fails its checksum", self.path.display()));
        }
        match serde_json::from_str(json) {
            Ok(owner) => Loaded::Owner(owner),
            Err(e) => Loaded::Damaged(format!("{}: {e}", self.path.display())),
        }
    }

    /// Saves, and says which file it wrote: taken from the file itself, before it is in
    /// place, so that a `reset-owner` landing just after is still seen as a change. The
    /// caller holds the `lock`.
    pub(crate) fn save(&self, owner: &Owner, _lock: &Lock) -> std::io::Result<Stamp> {
        let json = serde_json::to_string(owner).map_err(std::io::Error::other)?;
        let text = format!("{json}\n{}\n", checksum(&json));
        write_atomically(&self.path, text.as_bytes(), 0o600).and_then(|metadata| Stamp::of(&metadata))
    }

    /// Takes the directory's lock (flock(2), so `reset-owner` in another process waits
    /// too), making the directory first if it is missing.
    pub(crate) fn lock(&self) -> std::io::Result<Lock> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        // Followed if a link: under DynamicUser= /var/lib/portico is one, to private/portico.
        let dir = std::fs::OpenOptions::new().read(true).custom_flags(nix::libc::O_DIRECTORY).open(dir)?;
        nix::fcntl::Flock::lock(dir, nix::fcntl::FlockArg::LockExclusive)
            .map(|held| Lock { _held: held })
            .map_err(|(_, errno)| errno.into())
    }

    /// Moves a damaged file aside as `owner.json.damaged` (the newest damage only), so
    /// what it held can still be looked at.
    pub(crate) fn set_aside(&self, _lock: &Lock) -> std::io::Result<PathBuf> {
        let aside = self.path.with_extension("json.damaged");
        std::fs::rename(&self.path, &aside)?;
        Ok(aside)
    }

    /// Which file is in place and when it changed, so a running portico notices `portico
    /// reset-owner`; none while there is no file.
    pub(crate) fn stamp(&self) -> Option<Stamp> {
        std::fs::metadata(&self.path).and_then(|metadata| Stamp::of(&metadata)).ok()
    }
}

/// The state directory's lock, held until dropped.
pub(super) struct Lock {
    _held: nix::fcntl::Flock<std::fs::File>,
}

/// A save renames a new file into place, so its inode changes even when the clock's tick
/// is too coarse for the time to (two saves within a few milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    inode: u64,
    modified: SystemTime,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> std::io::Result<Stamp> {
        use std::os::unix::fs::MetadataExt;
        Ok(Stamp { inode: metadata.ino(), modified: metadata.modified()? })
    }
}

fn checksum(json: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, json.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_owner_loads_back_and_a_damaged_file_is_told_apart() {
        let dir = std::env::temp_dir().join(format!("portico-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::new(&dir);
        let owner = Owner { label: "lab".into(), generation: 3, ..Owner::default() };
        let lock = store.lock().unwrap();
        store.save(&owner, &lock).unwrap();
        assert!(matches!(store.load(), Loaded::Owner(loaded) if loaded == owner));

        let path = dir.join("owner.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("lab", "lob")).unwrap();
        assert!(matches!(store.load(), Loaded::Damaged(why) if why.contains("checksum")));
        std::fs::write(&path, &text[..text.len() / 2]).unwrap();
        assert!(matches!(store.load(), Loaded::Damaged(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What `Auth` compares to notice `reset-owner`: its own save, then another one
    /// (as from reset-owner) within the same clock tick, must differ.
    #[test]
    fn a_save_names_the_file_it_wrote_and_another_save_differs() {
        let dir = std::env::temp_dir().join(format!("portico-stamp-{}", std::process::id()));
        let store = Store::new(&dir);
        let lock = store.lock().unwrap();
        let ours = store.save(&Owner::default(), &lock).unwrap();
        assert_eq!(store.stamp(), Some(ours));
        let theirs = store.save(&Owner { generation: 1, ..Owner::default() }, &lock).unwrap();
        assert_ne!(ours, theirs);
        assert_eq!(store.stamp(), Some(theirs));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
