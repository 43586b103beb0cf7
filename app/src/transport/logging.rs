//! Logs on stderr, one line per event. When systemd connected stderr to the journal, each
//! line starts with a `<N>` syslog priority (sd-daemon(3)); otherwise with the level.
//! Neither carries a timestamp: the journal, syslog and multilog stamp lines themselves.
//!
//! A subscriber of our own rather than tracing-subscriber: portico logs a few plain lines
//! and has no spans, and the binary's size budget (1 MiB on aarch64) matters more.

use std::fmt::{self, Write as _};
use std::io::Write as _;
use std::os::fd::AsFd;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// Whether stderr is the journal stream systemd set up (JOURNAL_STREAM names its device
/// and inode; a redirected stderr no longer matches).
pub(crate) fn stderr_is_journal() -> bool {
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stat) = nix::sys::stat::fstat(std::io::stderr().as_fd()) else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", stat.st_dev, stat.st_ino))
}

pub(crate) fn init(max: LevelFilter) {
    let journal = stderr_is_journal();
    let _ = JOURNAL.set(journal);
    let _ = tracing::subscriber::set_global_default(Stderr { max, journal });
}

static JOURNAL: std::sync::OnceLock<bool> = std::sync::OnceLock::new();

/// One access-log line, whatever `log_level` says (the owner asked for it): at the
/// journal's debug priority, which keeps it off the console and out of the default
/// `journalctl -p info` views.
pub(crate) fn access(line: std::fmt::Arguments<'_>) {
    let prefix = match JOURNAL.get() {
        Some(true) => "<7>",
        _ => "ACCESS ",
    };
    let _ = std::io::stderr().write_all(format!("{prefix}{line}\n").as_bytes());
}

/// The priority the journal files a line under.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

struct Stderr {
    max: LevelFilter,
    journal: bool,
}

impl Subscriber for Stderr {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max)
    }

    fn event(&self, event: &Event<'_>) {
        let level = event.metadata().level();
        let mut line = match self.journal {
            true => format!("<{}>", priority(level)),
            false => format!("{level} "),
        };
        event.record(&mut Fields(&mut line));
        line.push('\n');
        // One write per line, so lines from different threads never interleave.
        let _ = std::io::stderr().write_all(line.as_bytes());
    }

    // portico opens no spans.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Writes the message, then any other fields as ` name=value`.
struct Fields<'a>(&'a mut String);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.0.push_str(value),
            name => {
                let _ = write!(self.0, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = match field.name() {
            "message" => write!(self.0, "{value:?}"),
            name => write!(self.0, " {name}={value:?}"),
        };
    }
}
