//! The device's figures: what the status page shows and `/api/status` returns.
//!
//! What stays put while portico runs (OS, kernel, its own ids) is read once (`Fixed`);
//! the rest on each request.
//! Uptime and load come from sysinfo(2); memory from /proc/meminfo, since only the kernel's
//! MemAvailable estimate counts reclaimable page cache as available, as `free` does.

use std::time::Instant;

use serde::Serialize;

use crate::transport::activation::{Origin, SocketInfo};
use crate::transport::stats::Stats;
use crate::transport::tls::Summary as Certificate;

#[derive(Serialize)]
pub(crate) struct Status<'a> {
    pub hostname: String,
    /// The owner's name for the device; empty until set.
    pub label: String,
    pub os: &'a str,
    pub kernel: &'a str,
    pub architecture: &'a str,
    pub uptime_seconds: u64,
    pub load: [f64; 3],
    pub memory: Memory,
    pub root_filesystem: Filesystem,
    pub portico: Portico,
    pub activation: &'a Activation,
    pub process: &'a Process,
    /// The HTTPS certificate, when a socket speaks HTTPS.
    pub certificate: Option<Certificate>,
}

/// The figures that stay put while portico runs. Read after the switch of user, so the
/// uid and gid are the ones it serves with.
pub(crate) struct Fixed {
    pub os: String,
    pub kernel: String,
    pub architecture: String,
    pub pid: u32,
    pub started: Instant,
    pub activation: Activation,
    pub process: Process,
}

impl Fixed {
    pub(crate) fn read(activation: Activation) -> Self {
        let uname = nix::sys::utsname::uname().ok();
        let field = |f: fn(&nix::sys::utsname::UtsName) -> &std::ffi::OsStr| {
            uname.as_ref().map(|u| f(u).to_string_lossy().into_owned()).unwrap_or_default()
        };
        Fixed {
            os: os_release(),
            kernel: field(|u| u.release()),
            architecture: field(|u| u.machine()),
            pid: std::process::id(),
            started: Instant::now(),
            activation,
            process: Process { uid: nix::unistd::getuid().as_raw(), gid: nix::unistd::getgid().as_raw() },
        }
    }
}

#[derive(Serialize)]
pub(crate) struct Memory {
    pub total_bytes: u64,
    /// What `free` calls available: MemAvailable, which counts reclaimable cache.
    pub available_bytes: u64,
}

#[derive(Serialize)]
pub(crate) struct Filesystem {
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Serialize)]
pub(crate) struct Portico {
    pub version: &'static str,
    pub pid: u32,
    pub uptime_seconds: u64,
    pub open_connections: usize,
    pub connections_accepted: u64,
    pub requests_served: u64,
}

#[derive(Clone, Serialize)]
pub(crate) struct Activation {
    pub mode: Origin,
    pub listeners: Vec<SocketInfo>,
}

#[derive(Serialize)]
pub(crate) struct Process {
    pub uid: u32,
    pub gid: u32,
}

/// The hostname now (a rename shows at once); empty if it cannot be read.
pub(crate) fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Reads the live figures now. Whatever cannot be read is reported as empty or zero
/// rather than failing the page.
// statvfs counts are 32-bit on 32-bit targets such as armv7.
#[allow(clippy::unnecessary_cast)]
pub(crate) fn collect(
    fixed: &Fixed,
    stats: Stats,
    certificate: Option<Certificate>,
    label: String,
) -> Status<'_> {
    let info = nix::sys::sysinfo::sysinfo().ok();
    let root = nix::sys::statvfs::statvfs("/").ok();
    Status {
        hostname: hostname(),
        label,
        os: &fixed.os,
        kernel: &fixed.kernel,
        architecture: &fixed.architecture,
        uptime_seconds: info.as_ref().map_or(0, |i| i.uptime().as_secs()),
        load: info.as_ref().map_or([0.0; 3], |i| {
            let (one, five, fifteen) = i.load_average();
            [one, five, fifteen]
        }),
        memory: memory().unwrap_or(Memory { total_bytes: 0, available_bytes: 0 }),
        root_filesystem: Filesystem {
            total_bytes: root.as_ref().map_or(0, |r| r.blocks() as u64 * r.fragment_size() as u64),
            available_bytes: root
                .as_ref()
                .map_or(0, |r| r.blocks_available() as u64 * r.fragment_size() as u64),
        },
        portico: Portico {
            version: crate::config::VERSION,
            pid: fixed.pid,
            uptime_seconds: fixed.started.elapsed().as_secs(),
            open_connections: stats.open_connections,
            connections_accepted: stats.connections_accepted,
            requests_served: stats.requests_served,
        },
        activation: &fixed.activation,
        process: &fixed.process,
        certificate,
    }
}

/// MemTotal and MemAvailable from /proc/meminfo.
fn memory() -> Option<Memory> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))?;
        let kib: u64 = line.trim().strip_suffix(" kB")?.trim().parse().ok()?;
        Some(kib * 1024)
    };
    Some(Memory { total_bytes: field("MemTotal")?, available_bytes: field("MemAvailable")? })
}

/// PRETTY_NAME from os-release(5).
fn os_release() -> String {
    ["/etc/os-release", "/usr/lib/os-release"]
        .iter()
        .find_map(|path| std::fs::read_to_string(path).ok())
        .and_then(|text| {
            text.lines()
                .find_map(|line| line.strip_prefix("PRETTY_NAME="))
                .map(|value| value.trim_matches(|c| c == '"' || c == '\'').to_owned())
        })
        .unwrap_or_else(|| "Linux".to_owned())
}

/// The figures as the page shows them, by the `data-field` names the page uses.
/// assets/status.js formats the JSON the same way when it refreshes the page.
pub(super) fn display_fields(status: &Status) -> Vec<(&'static str, String)> {
    let used = |total: u64, available: u64| {
        format!("{} of {}", bytes(total.saturating_sub(available)), bytes(total))
    };
    let [one, five, fifteen] = status.load;
    vec![
        ("hostname", status.hostname.clone()),
        ("label", status.label.clone()),
        ("os", status.os.to_owned()),
        ("kernel", status.kernel.to_owned()),
        ("architecture", status.architecture.to_owned()),
        ("uptime", duration(status.uptime_seconds)),
        ("load", format!("{one:.2} {five:.2} {fifteen:.2}")),
        ("memory", used(status.memory.total_bytes, status.memory.available_bytes)),
        ("root_filesystem", used(status.root_filesystem.total_bytes, status.root_filesystem.available_bytes)),
        ("version", status.portico.version.to_owned()),
        ("activation", describe_activation(status.activation)),
        ("identity", format!("uid {}, gid {}", status.process.uid, status.process.gid)),
        ("certificate", certificate_line(status.certificate.as_ref())),
        ("connections", status.portico.open_connections.to_string()),
        ("requests", status.portico.requests_served.to_string()),
    ]
}

/// The certificate's fingerprint, for an owner to check a browser's warning against.
fn certificate_line(certificate: Option<&Certificate>) -> String {
    match certificate {
        Some(certificate) => format!("SHA-256 {}", certificate.fingerprint()),
        None => "no HTTPS socket".to_owned(),
    }
}

/// How portico got its sockets, for the page, the log and the STATUS= line.
pub(crate) fn describe_activation(activation: &Activation) -> String {
    let sockets: Vec<String> = activation
        .listeners
        .iter()
        .map(|s| {
            let scheme = if s.https { "https://" } else { "" };
            match (&s.name, s.fd) {
                (Some(name), Some(fd)) => format!("{scheme}{} ({name}, fd {fd})", s.address),
                (None, Some(fd)) => format!("{scheme}{} (fd {fd})", s.address),
                _ => format!("{scheme}{}", s.address),
            }
        })
        .collect();
    match activation.mode {
        Origin::Systemd => format!("sockets from systemd: {}", sockets.join(", ")),
        Origin::SelfBound => format!("bound by portico: {}", sockets.join(", ")),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{n} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

fn duration(seconds: u64) -> String {
    let (days, hours, minutes) = (seconds / 86_400, seconds / 3_600 % 24, seconds / 60 % 60);
    match (days, hours) {
        (0, 0) => format!("{minutes} min"),
        (0, _) => format!("{hours} h {minutes} min"),
        _ => format!("{days} d {hours} h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_df_h() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }

    #[test]
    fn uptimes_keep_the_two_largest_units() {
        assert_eq!(duration(59), "0 min");
        assert_eq!(duration(3_660), "1 h 1 min");
        assert_eq!(duration(2 * 86_400 + 7_200), "2 d 2 h");
    }
}
