//! The one way portico writes a file it must not lose: the owner's state, the certificate
//! it generated or was given, what the owner asks of the updater.

use std::io::Write;
use std::path::Path;

/// Temporary file, fsync, rename, fsync of the directory: after a power loss the file is
/// the old one or the new one, never a torn one. Returns the written file's metadata.
///
/// The temporary file has a name of its own and is made new (O_EXCL, O_NOFOLLOW): a link
/// planted in the directory by whoever else may write there is never followed, and two
/// writers never share a temporary file.
pub(crate) fn write_atomically(
    path: &Path,
    contents: &[u8],
    mode: u32,
) -> std::io::Result<std::fs::Metadata> {
    use std::os::unix::fs::OpenOptionsExt;
    use std::sync::atomic::{AtomicU64, Ordering};
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    let temporary =
        dir.join(format!(".{name}.{}.{}.tmp", std::process::id(), WRITES.fetch_add(1, Ordering::Relaxed)));
    let written = (|| -> std::io::Result<std::fs::Metadata> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .mode(mode)
            .open(&temporary)?;
        file.write_all(contents)?;
        file.sync_all()?;
        let metadata = file.metadata()?;
        std::fs::rename(&temporary, path)?;
        Ok(metadata)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    let metadata = written?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(metadata)
}
