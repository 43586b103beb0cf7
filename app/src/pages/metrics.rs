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

use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::metrics_access::Verdict;
use super::status::{self, Status};
use crate::device::{Device, UpdateFacts};
use crate::transport::peer::Peer;
use crate::transport::stats::{Stats, Totals};

/// `GET /metrics`, for whoever `Access` lets in.
pub(crate) async fn page(
    State(device): State<Device>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers.get(header::AUTHORIZATION).map(HeaderValue::as_bytes);
    // Built without TLS, plain HTTP is the only way there is.
    let in_clear =
        cfg!(feature = "tls") && peer.is_some_and(|Extension(peer)| !peer.https && peer.ip.is_some());
    match device.metrics.check(authorization, in_clear) {
        Verdict::Allowed => {}
        Verdict::TokenNeeded => {
            tracing::debug!("/metrics: missing or wrong bearer token");
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                "bearer token required\n",
            )
                .into_response();
        }
        Verdict::OverHttpsOnly { leaked } => {
            if leaked {
                let client =
                    peer.and_then(|Extension(peer)| peer.ip).map(|ip| ip.to_string()).unwrap_or_default();
                tracing::warn!(
                    "/metrics: the bearer token came over plain HTTP from {client}, readable by anyone \
                     on the way; replace it, and scrape over HTTPS"
                );
            }
            return (
                StatusCode::FORBIDDEN,
                "/metrics takes the bearer token over HTTPS only: scrape https://this-device/metrics\n",
            )
                .into_response();
        }
        Verdict::Off => {
            return (
                StatusCode::FORBIDDEN,
                "/metrics is off: set metrics_token (or the credential metrics-token), or metrics_public\n",
            )
                .into_response();
        }
    }
    let status =
        status::collect(&device.fixed, device.counters.snapshot(), device.certificate(), device.label());
    let body =
        render(&status, device.counters.snapshot(), device.counters.totals(), device.update_facts().as_ref());
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

/// The exposition, version 0.0.4.
pub(super) fn render(status: &Status, stats: Stats, totals: Totals, update: Option<&UpdateFacts>) -> String {
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
fn update_families(family: &mut impl FnMut(&str, &str, &str, &[(String, String)]), update: &UpdateFacts) {
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
        &one(u8::from(update.available).to_string()),
    );
    family(
        "portico_update_rollbacks_total",
        "counter",
        "Updates installed, found unhealthy and rolled back.",
        &one(update.rollbacks.to_string()),
    );
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
