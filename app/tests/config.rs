//! Configuration as the README describes it: the file, then `PORTICO_<KEY>` variables,
//! then flags, each overriding the one before; a bad value exits 78 naming the key; the
//! worker threads fit the CPUs and the cgroup's task limit (TasksMax=).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use common::*;

fn config_file(text: &str) -> PathBuf {
    let path = scratch_path("portico.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn free_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

/// The address portico says it bound, from the API on `addr`.
fn bound(addr: SocketAddr) -> String {
    api_status(addr)["activation"]["listeners"][0]["address"].as_str().unwrap().to_owned()
}

#[test]
fn the_environment_overrides_the_file_and_a_flag_overrides_both() {
    let (in_file, in_env, in_flag) = (free_addr(), free_addr(), free_addr());
    let file = config_file(&format!("listen = [\"{in_file}\"]\n"));
    let file = file.to_str().unwrap();

    let _from_file = Portico::start().env("PORTICO_CONFIG", file).spawn();
    assert_eq!(bound(in_file), in_file.to_string());

    let _from_env =
        Portico::start().env("PORTICO_CONFIG", file).env("PORTICO_LISTEN", &in_env.to_string()).spawn();
    assert_eq!(bound(in_env), in_env.to_string());

    let _from_flag = Portico::start()
        .env("PORTICO_CONFIG", file)
        .env("PORTICO_LISTEN", &free_addr().to_string())
        .args(&["--listen", &in_flag.to_string()])
        .spawn();
    assert_eq!(bound(in_flag), in_flag.to_string());
}

#[test]
fn every_key_has_its_environment_variable() {
    let addr = free_addr();
    let portico = Portico::start()
        .env("PORTICO_LISTEN", &addr.to_string())
        .env("PORTICO_MAX_HEADER_BYTES", "1024")
        .env("PORTICO_LOG_LEVEL", "warn")
        .spawn();
    let big = request(connect(addr), "GET", "/healthz", &format!("X-Big: {}\r\n", "x".repeat(2048))).unwrap();
    assert_eq!(big.status, 431);
    // The "serving" line comes before the first answer, at info: filtered out.
    assert!(!portico.stderr().contains("INFO"), "log_level from the environment: {}", portico.stderr());
}

/// One line naming where the bad value came from and the key, and EX_CONFIG.
fn refused(start: Start, needles: &[&str]) {
    let (code, stderr) = start.spawn().failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} missing from: {stderr}");
    }
}

#[test]
fn a_bad_value_exits_78_naming_its_source_key_and_line() {
    let file = config_file("# the image's settings\ndrain_timeout = \"soon\"\n");
    refused(
        Portico::start().env("PORTICO_CONFIG", file.to_str().unwrap()),
        &["portico.toml: line 2: key `drain_timeout`", "\"soon\""],
    );
    let file = config_file("drain_timeout = \"10s\"\n[server]\n");
    refused(Portico::start().args(&["-c", file.to_str().unwrap()]), &["portico.toml: line 2:", "[sections]"]);
    refused(Portico::start().env("PORTICO_MAX_CONNECTIONS", "many"), &["PORTICO_MAX_CONNECTIONS", "many"]);
    refused(Portico::start().args(&["--keep-alive-timeout", "5"]), &["--keep-alive-timeout", "\"5\""]);
    refused(Portico::start().args(&["--no-such-option", "1"]), &["unknown option --no-such-option"]);
}

fn threads_of(portico: &Portico) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", portico.pid())).unwrap();
    status.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap()
}

#[test]
fn workers_1_serves_on_the_main_thread_alone() {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let portico = Portico::start().fd(listener).args(&["--workers", "1"]).spawn();
    assert_eq!(get(addr, "/api/status").status, 200);
    assert_eq!(threads_of(&portico), 1);
}

/// A pids cgroup of the test's own, removed when dropped: the kernel's TasksMax=.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    /// None (and says so) where the test cannot make one: not root, or no pids controller.
    fn new(max: u32) -> Option<Self> {
        let root = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|dir| dir.join("cgroup.procs").exists() && can_limit_pids(dir));
        let Some(root) = root.filter(|_| nix::unistd::geteuid().is_root()) else {
            assert!(std::env::var_os("CI").is_none(), "CI must run the cgroup tests as root");
            eprintln!("skipped: needs root and a pids cgroup controller");
            return None;
        };
        let dir = root.join(format!("portico-test-{}", scratch_path("cgroup").file_name()?.to_str()?));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("pids.max"), max.to_string()).unwrap();
        Some(PidsCgroup(dir))
    }
}

/// cgroup v1's pids hierarchy, or a v2 root that hands the pids controller down.
fn can_limit_pids(dir: &Path) -> bool {
    dir.ends_with("pids")
        || std::fs::read_to_string(dir.join("cgroup.subtree_control")).is_ok_and(|c| c.contains("pids"))
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// With the default worker count, portico fits a task limit below the CPU count plus its
/// own threads (this machine's CPUs would need more), instead of aborting at start.
#[test]
fn the_default_worker_count_fits_the_task_limit() {
    let Some(cgroup) = PidsCgroup::new(2) else { return };
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let mut portico = Portico::start().fd(listener).cgroup(&cgroup.0).spawn();
    assert_eq!(get(addr, "/api/status").status, 200, "stderr:\n{}", portico.stderr());
    assert!(threads_of(&portico) <= 2);
    portico.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(portico.wait_exit(PATIENCE).code(), Some(0));
}

#[test]
fn a_worker_count_over_the_task_limit_is_refused_with_what_fits() {
    let Some(cgroup) = PidsCgroup::new(16) else { return };
    let listener = tcp_listener("127.0.0.1:0");
    refused(
        Portico::start().fd(listener).cgroup(&cgroup.0).args(&["--workers", "64"]),
        &["`workers` = 64 needs 66 tasks", "allows 16", "14 or less"],
    );
}
