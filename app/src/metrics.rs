//! `/metrics`: the status page's figures in Prometheus' text exposition format, under
//! node_exporter's names so that existing dashboards and alerts work, plus portico's own
//! counts and the process's CPU time and memory.
//!
//! Who may scrape is the owner's choice: whoever presents the bearer token (the config's
//! `metrics_token`, or the systemd credential `metrics-token`), or anyone if
//! `metrics_public` is set. Neither set, /metrics answers 403 and says how to enable it.
//! The token is a credential, so where HTTPS exists it is taken only over HTTPS (or a Unix
//! socket, which never leaves the device), as the owner's password is.

use std::fmt::Write as _;

use crate::stats::{Stats, Totals};
use crate::status::Status;
#[cfg(feature = "tls")]
use crate::updates::Report;
/// Built without TLS there is no owner and no updater's report: its parser would cost the
/// binary more than its 1 MiB budget has room for.
#[cfg(not(feature = "tls"))]
pub enum Report {}

/// Who may read /metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Access {
    Closed,
    Token(String),
    Public,
}

/// What a scrape gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Off,
    TokenNeeded,
    /// A token is configured and the request came over plain HTTP on the network;
    /// `leaked` if it carried the right token anyway.
    OverHttpsOnly {
        leaked: bool,
    },
}

impl Access {
    /// Whether a request with this Authorization header may scrape; `in_clear` if it came
    /// over plain HTTP on a network socket.
    pub fn check(&self, authorization: Option<&[u8]>, in_clear: bool) -> Verdict {
        let token_given = |token: &str| {
            authorization
                .and_then(|value| value.strip_prefix(b"Bearer "))
                .is_some_and(|given| constant_time_eq(given, token.as_bytes()))
        };
        match self {
            Access::Public => Verdict::Allowed,
            Access::Closed => Verdict::Off,
            Access::Token(token) if in_clear => Verdict::OverHttpsOnly { leaked: token_given(token) },
            Access::Token(token) if token_given(token) => Verdict::Allowed,
            Access::Token(_) => Verdict::TokenNeeded,
        }
    }
}

/// Compares without stopping at the first difference, so the time taken says nothing of
/// how much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The exposition, version 0.0.4.
pub fn render(status: &Status, stats: Stats, totals: Totals, update: Option<&Report>) -> String {
    let mut out = String::with_capacity(4096);
    // Values are written as the integers or fixed decimals they are, which also keeps the
    // float parser out of the binary.
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |value: String| [(String::new(), value)];

    if let Some(boot) = boot_time() {
        family("node_boot_time_seconds", "gauge", "Node boot time, in unixtime.", &one(boot.to_string()));
    }
    let [load1, load5, load15] = status.load;
    family("node_load1", "gauge", "1m load average.", &one(format!("{load1:.2}")));
    family("node_load5", "gauge", "5m load average.", &one(format!("{load5:.2}")));
    family("node_load15", "gauge", "15m load average.", &one(format!("{load15:.2}")));
    let memory = &status.memory;
    family(
        "node_memory_MemTotal_bytes",
        "gauge",
        "Memory information field MemTotal_bytes.",
        &one(memory.total_bytes.to_string()),
    );
    family(
        "node_memory_MemAvailable_bytes",
        "gauge",
        "Memory information field MemAvailable_bytes.",
        &one(memory.available_bytes.to_string()),
    );
    let root = filesystem_labels();
    let fs = &status.root_filesystem;
    family(
        "node_filesystem_size_bytes",
        "gauge",
        "Filesystem size in bytes.",
        &[(root.clone(), fs.total_bytes.to_string())],
    );
    family(
        "node_filesystem_avail_bytes",
        "gauge",
        "Filesystem space available to non-root users in bytes.",
        &[(root, fs.available_bytes.to_string())],
    );

    family(
        "portico_build_info",
        "gauge",
        "portico's version, as a label; the value is always 1.",
        &[(format!("{{version=\"{}\"}}", escape(status.portico.version)), "1".to_owned())],
    );
    let classes: Vec<(String, String)> = (1..=5)
        .map(|class| (format!("{{code=\"{class}xx\"}}"), totals.responses_by_class[class - 1].to_string()))
        .collect();
    family("portico_http_responses_total", "counter", "HTTP responses sent, by status class.", &classes);
    family(
        "portico_connections_open",
        "gauge",
        "Connections open now.",
        &one(stats.open_connections.to_string()),
    );
    family(
        "portico_connections_accepted_total",
        "counter",
        "Connections accepted.",
        &one(stats.connections_accepted.to_string()),
    );
    family(
        "portico_connections_evicted_total",
        "counter",
        "Idle connections closed to make room at max_connections.",
        &one(totals.connections_evicted.to_string()),
    );
    family(
        "portico_tls_handshakes_total",
        "counter",
        "TLS handshakes completed.",
        &one(totals.tls_handshakes.to_string()),
    );
    family(
        "portico_tls_handshake_failures_total",
        "counter",
        "TLS handshakes that failed, timed out or were evicted.",
        &one(totals.tls_handshake_failures.to_string()),
    );
    if let Some((cpu, rss)) = process_usage() {
        family(
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
            &one(cpu),
        );
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", &one(rss));
    }
    if let Some(update) = update {
        update_families(&mut family, update);
    }
    out
}

/// The updater's facts: when it last ran, what came of it, whether a newer portico waits,
/// how often it rolled back.
#[cfg(feature = "tls")]
fn update_families(family: &mut impl FnMut(&str, &str, &str, &[(String, String)]), update: &Report) {
    let one = |value: String| [(String::new(), value)];
    family(
        "portico_update_last_run_timestamp_seconds",
        "gauge",
        "When the updater last ran, in unixtime.",
        &one(update.run_at.to_string()),
    );
    family(
        "portico_update_last_result",
        "gauge",
        "What the updater's last run came to, as a label; the value is always 1.",
        &[(format!("{{result=\"{}\"}}", escape(&update.result)), "1".to_owned())],
    );
    family(
        "portico_update_available",
        "gauge",
        "1 if the feed has a newer portico than the one installed.",
        &one(u8::from(update.available.is_some()).to_string()),
    );
    family(
        "portico_update_rollbacks_total",
        "counter",
        "Updates installed, found unhealthy and rolled back.",
        &one(update.rollbacks.to_string()),
    );
}

#[cfg(not(feature = "tls"))]
fn update_families(_: &mut impl FnMut(&str, &str, &str, &[(String, String)]), update: &Report) {
    match *update {}
}

/// btime from /proc/stat, as node_exporter reads it.
fn boot_time() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    stat.lines().find_map(|line| line.strip_prefix("btime ")?.trim().parse().ok())
}

/// node_exporter's labels for the root filesystem, from the mount table.
fn filesystem_labels() -> String {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    // The last mount on / is the one in use. After " - ": the type, then the source.
    let (fstype, device) = mountinfo
        .lines()
        .rev()
        .filter(|line| line.split(' ').nth(4) == Some("/"))
        .find_map(|line| {
            let mut after = line.split_once(" - ")?.1.split(' ');
            Some((after.next()?.to_owned(), after.next()?.to_owned()))
        })
        .unwrap_or_default();
    format!("{{device=\"{}\",fstype=\"{}\",mountpoint=\"/\"}}", escape(&device), escape(&fstype))
}

/// CPU seconds (user and system) and resident bytes, from /proc/self/stat.
fn process_usage() -> Option<(String, String)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok()??;
    // utime and stime are fields 14 and 15 of proc(5), rss field 24: 11, 12 and 21 here.
    let (ticks, page) = (u64::try_from(ticks).ok()?.max(1), u64::try_from(page).ok()?);
    let cpu = number(11)? + number(12)?;
    let seconds = format!("{}.{:02}", cpu / ticks, cpu % ticks * 100 / ticks);
    Some((seconds, (number(21)? * page).to_string()))
}

/// A label value as the exposition format wants it.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::{Access, Verdict};

    #[test]
    fn only_the_right_bearer_token_is_let_in() {
        let access = Access::Token("s3cret-token".into());
        assert_eq!(access.check(Some(b"Bearer s3cret-token"), false), Verdict::Allowed);
        for wrong in [&b"Bearer s3cret-tokeN"[..], b"Bearer s3cret", b"Basic s3cret-token"] {
            assert_eq!(access.check(Some(wrong), false), Verdict::TokenNeeded);
        }
        assert_eq!(access.check(None, false), Verdict::TokenNeeded);
        assert_eq!(Access::Public.check(None, true), Verdict::Allowed);
        assert_eq!(Access::Closed.check(Some(b"Bearer "), false), Verdict::Off);
    }

    #[test]
    fn a_token_is_taken_only_over_https() {
        let access = Access::Token("s3cret-token".into());
        assert_eq!(access.check(Some(b"Bearer s3cret-token"), true), Verdict::OverHttpsOnly { leaked: true });
        assert_eq!(access.check(None, true), Verdict::OverHttpsOnly { leaked: false });
    }
}
