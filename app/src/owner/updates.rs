//! The owner's side of field updates. The updater (`portico-update`, run by systemd as
//! root, daily by its timer) fetches portico from a signed feed, installs it, checks that
//! it serves and rolls it back if not; portico stays unprivileged and without network, and
//! never runs it. What passes between them is two kinds of file:
//!
//! - the updater's report, `/var/lib/portico-update/status.json` (`update_status`), which
//!   it rewrites atomically at the start and end of each run, and portico reads;
//! - what the owner asks, written by portico into its own state directory, which
//!   `portico-update.path` watches: `update-request` (one line, `check` or `install`) and
//!   `update-settings` (`automatic=yes|no`, `postpone_until=<unix seconds>`).
//!
//! The updater takes those two as untrusted input, since the service's user writes them.

use std::path::PathBuf;

use serde::Deserialize;

mod requests;
pub(crate) use requests::{Choice, POSTPONE, Request, Requests, ago, now};

/// The largest report read; a real one is a few hundred bytes.
const MAX_REPORT: u64 = 64 * 1024;

/// What the updater last did, as it wrote it.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct Report {
    pub run_at: u64,
    /// `running` while a run is under way, `done` after.
    pub state: String,
    /// up-to-date, available, installed, rolled-back, refused, failed, off or postponed.
    pub result: String,
    /// One sentence for the owner.
    pub detail: String,
    pub installed: String,
    pub available: Option<String>,
    pub rollbacks: u64,
    pub last_rollback: Option<Rollback>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct Rollback {
    pub at: u64,
    pub from: String,
    pub to: String,
    pub reason: String,
}

/// Where the updater's report is; none where the device has no updater.
pub(crate) struct Updates {
    report: Option<PathBuf>,
}

impl Updates {
    pub(crate) fn new(report: Option<PathBuf>) -> Self {
        Updates { report }
    }

    /// The updater's last report; None before its first run.
    pub(crate) fn report(&self) -> Result<Option<Report>, String> {
        let Some(path) = &self.report else { return Ok(None) };
        let file = match std::fs::File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_REPORT), &mut text)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        serde_json::from_str(&text).map(Some).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_updaters_report_is_read_as_it_writes_it() {
        let dir = std::env::temp_dir().join(format!("portico-updates-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let updates = Updates::new(Some(dir.join("status.json")));
        assert_eq!(updates.report(), Ok(None), "no run yet");
        std::fs::write(
            dir.join("status.json"),
            r#"{"schema":1,"run_at":1765000000,"trigger":"timer","state":"done","result":"rolled-back",
               "detail":"0.3.0 did not answer /healthz within 90 s: 0.2.0 is back","installed":"0.2.0",
               "available":"0.3.0","rollbacks":1,"last_rollback":{"at":1765000100,"from":"0.3.0","to":"0.2.0",
               "reason":"no answer"},"skipped":["0.3.0"]}"#,
        )
        .unwrap();
        let report = updates.report().unwrap().unwrap();
        assert_eq!((report.result.as_str(), report.rollbacks), ("rolled-back", 1));
        assert_eq!(report.last_rollback.unwrap().from, "0.3.0");
        std::fs::write(dir.join("status.json"), "{\"schema\":1").unwrap();
        assert!(updates.report().unwrap_err().contains("status.json"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
