//! The owner's state: the password, the pending set-up code, the device's label and who
//! may see the status page, in one file of the state directory (`owner.json`), apart from
//! the image's config file.
//!
//! Every write is atomic and durable (temporary file, fsync, rename, fsync of the
//! directory), so after a power loss the file is the old one or the new one. A file that
//! is torn or altered anyway fails its checksum; it never leaves the device open: the
//! caller starts over with "set-up needed" and a fresh code, and says so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// What the owner has set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
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
}

/// What was found in the state directory.
pub enum Loaded {
    Owner(Owner),
    /// No file: the device's first start (or a purge).
    Missing,
    /// A file that fails its checksum or does not parse, and why.
    Damaged(String),
}

pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(state_directory: &Path) -> Self {
        Store { path: state_directory.join("owner.json") }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn load(&self) -> Loaded {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
            Err(e) => return Loaded::Damaged(format!("cannot read {}: {e}", self.path.display())),
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
    /// place, so that a `reset-owner` landing just after is still seen as a change.
    pub fn save(&self, owner: &Owner) -> std::io::Result<Stamp> {
        use std::os::unix::fs::DirBuilderExt;
        if let Some(dir) = self.path.parent() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
        }
        let json = serde_json::to_string(owner).map_err(std::io::Error::other)?;
        let text = format!("{json}\n{}\n", checksum(&json));
        write_atomically(&self.path, text.as_bytes(), 0o600).and_then(|metadata| Stamp::of(&metadata))
    }

    /// Which file is in place and when it changed, so a running portico notices `portico
    /// reset-owner`; none while there is no file.
    pub fn stamp(&self) -> Option<Stamp> {
        std::fs::metadata(&self.path).and_then(|metadata| Stamp::of(&metadata)).ok()
    }
}

/// A save renames a new file into place, so its inode changes even when the clock's tick
/// is too coarse for the time to (two saves within a few milliseconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
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

/// Temporary file, fsync, rename, fsync of the directory: after a power loss the file is
/// the old one or the new one, never a torn one. Returns the written file's metadata.
pub fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> std::io::Result<std::fs::Metadata> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let temporary = path.with_extension("tmp");
    let mut file =
        std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(mode).open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    let metadata = file.metadata()?;
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(metadata)
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
        store.save(&owner).unwrap();
        assert!(matches!(store.load(), Loaded::Owner(loaded) if loaded == owner));

        let text = std::fs::read_to_string(store.path()).unwrap();
        std::fs::write(store.path(), text.replace("lab", "lob")).unwrap();
        assert!(matches!(store.load(), Loaded::Damaged(why) if why.contains("checksum")));
        std::fs::write(store.path(), &text[..text.len() / 2]).unwrap();
        assert!(matches!(store.load(), Loaded::Damaged(_)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What `Auth` compares to notice `reset-owner`: its own save, then another one
    /// (as from reset-owner) within the same clock tick, must differ.
    #[test]
    fn a_save_names_the_file_it_wrote_and_another_save_differs() {
        let dir = std::env::temp_dir().join(format!("portico-stamp-{}", std::process::id()));
        let store = Store::new(&dir);
        let ours = store.save(&Owner::default()).unwrap();
        assert_eq!(store.stamp(), Some(ours));
        let theirs = store.save(&Owner { generation: 1, ..Owner::default() }).unwrap();
        assert_ne!(ours, theirs);
        assert_eq!(store.stamp(), Some(theirs));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
