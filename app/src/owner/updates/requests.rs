//! What the owner asks of the updater: files in portico's own state directory, which
//! `portico-update.path` watches (see the parent module for the words they hold).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// "Postpone" puts updates off by this long.
pub(crate) const POSTPONE: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// What the owner chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Choice {
    pub automatic: bool,
    /// Unix seconds; 0 for none.
    pub postpone_until: u64,
}

impl Default for Choice {
    fn default() -> Self {
        Choice { automatic: true, postpone_until: 0 }
    }
}

/// What the owner asks the updater to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// Look at the feed and say what is there; install nothing.
    Check,
    /// A whole run, installing what the feed has even with automatic updates off.
    Install,
}

/// Where the owner's requests and choice are written.
#[derive(Clone)]
pub(crate) struct Requests {
    dir: PathBuf,
}

impl Requests {
    pub(crate) fn new(state_directory: &Path) -> Self {
        Requests { dir: state_directory.to_path_buf() }
    }

    pub(crate) fn choice(&self) -> Choice {
        let Ok(text) = std::fs::read_to_string(self.dir.join("update-settings")) else {
            return Choice::default();
        };
        let mut choice = Choice::default();
        for line in text.lines() {
            match line.split_once('=') {
                Some(("automatic", value)) => choice.automatic = value != "no",
                Some(("postpone_until", value)) => choice.postpone_until = value.parse().unwrap_or(0),
                _ => {}
            }
        }
        choice
    }

    pub(crate) fn choose(&self, choice: Choice) -> std::io::Result<()> {
        let automatic = if choice.automatic { "yes" } else { "no" };
        let text = format!("automatic={automatic}\npostpone_until={}\n", choice.postpone_until);
        crate::durable::write_atomically(&self.dir.join("update-settings"), text.as_bytes(), 0o644).map(drop)
    }

    pub(crate) fn ask(&self, request: Request) -> std::io::Result<()> {
        let word = match request {
            Request::Check => "check\n",
            Request::Install => "install\n",
        };
        crate::durable::write_atomically(&self.dir.join("update-request"), word.as_bytes(), 0o644).map(drop)
    }

    /// Whether a request is written and not yet taken by the updater.
    pub(crate) fn asked(&self) -> bool {
        self.dir.join("update-request").exists()
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// "3 hours ago", for a time in unix seconds; a clock that is off says so.
pub(crate) fn ago(then: u64, now: u64) -> String {
    let Some(seconds) = now.checked_sub(then) else {
        return "in the future (the device's clock is off)".to_owned();
    };
    let (n, unit) = match seconds {
        0..60 => return "just now".to_owned(),
        60..3600 => (seconds / 60, "minute"),
        3600..86400 => (seconds / 3600, "hour"),
        _ => (seconds / 86400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("portico-updates-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn the_owners_choice_and_requests_are_written_in_the_updaters_words() {
        let dir = scratch("choice");
        let updates = Requests::new(&dir);
        assert_eq!(updates.choice(), Choice { automatic: true, postpone_until: 0 });
        updates.choose(Choice { automatic: false, postpone_until: 1_765_000_000 }).unwrap();
        let written = std::fs::read_to_string(dir.join("update-settings")).unwrap();
        assert_eq!(written, "automatic=no\npostpone_until=1765000000\n");
        assert_eq!(updates.choice(), Choice { automatic: false, postpone_until: 1_765_000_000 });
        assert!(!updates.asked());
        updates.ask(Request::Install).unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("update-request")).unwrap(), "install\n");
        assert!(updates.asked());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn ago_reads_as_people_say_it() {
        assert_eq!(ago(1000, 1030), "just now");
        assert_eq!(ago(1000, 1000 + 60), "1 minute ago");
        assert_eq!(ago(1000, 1000 + 7200), "2 hours ago");
        assert_eq!(ago(1000, 1000 + 3 * 86400), "3 days ago");
        assert!(ago(2000, 1000).contains("clock is off"));
    }
}
