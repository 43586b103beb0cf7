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

/// Every key, as the shipped config file and --help list them (they must agree): its
/// `PORTICO_<KEY>` variable, set to a value portico must refuse, is refused, which it
/// can only be if portico read it as that key. A key with no probe here fails the test.
#[test]
fn every_key_has_its_environment_variable() {
    let keys = shipped_keys();
    assert_eq!(keys, help_keys(), "the keys of the shipped portico.toml (left) and of --help (right)");
    let state = state_directory();
    let file = config_file(&format!(
        "listen = [\"127.0.0.1:0\", \"https://127.0.0.1:0\"]\nstate_directory = \"{}\"\n",
        state.display()
    ));
    for key in &keys {
        let (value, says) = refused_value(key);
        let var = format!("PORTICO_{}", key.to_ascii_uppercase());
        eprintln!("{var}={value:?}, which portico must refuse"); // shown if it serves instead
        let start =
            Portico::start().exact_args().env("PORTICO_CONFIG", file.to_str().unwrap()).env(&var, value);
        let (code, stderr) = start.spawn().failure();
        assert_eq!(code, SETUP_ERROR, "{var}={value:?}: {stderr}");
        let says = says.replace("{var}", &var);
        assert!(stderr.contains(&says), "{var}={value:?}: {says:?} missing from: {stderr}");
    }

    // And a value taken does what its key says.
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

/// For `PORTICO_<KEY>`: a value portico refuses, and what its error then says ({var}: the
/// variable's name). Text keys take any text, so theirs are refused later, for what they name.
fn refused_value(key: &str) -> (&'static str, &'static str) {
    const NOT_A_DURATION: (&str, &str) = ("soon", "environment variable {var}: ");
    const NOT_A_NUMBER: (&str, &str) = ("many", "environment variable {var}: ");
    const NOT_A_SWITCH: (&str, &str) = ("maybe", "environment variable {var}: ");
    match key {
        "listen" => ("nonsense", "environment variable {var}: \"nonsense\""),
        "require_activation" => ("true", "require_activation is on"),
        "user" if nix::unistd::geteuid().is_root() => {
            ("no-such-portico-user", "\"no-such-portico-user\" does not exist")
        }
        "user" => ("no-such-portico-user", "only root can switch users"),
        "allow_root" | "metrics_public" | "access_log" => NOT_A_SWITCH,
        "workers" | "max_connections" | "max_header_bytes" | "max_body_bytes" => NOT_A_NUMBER,
        "drain_timeout"
        | "exit_idle_after"
        | "header_read_timeout"
        | "keep_alive_timeout"
        | "hsts_max_age"
        | "session_idle_timeout"
        | "session_lifetime" => NOT_A_DURATION,
        "log_level" => ("loud", "environment variable {var}: "),
        // Either one alone.
        "tls_certificate" | "tls_key" => {
            ("/nonexistent/portico.pem", "`tls_certificate` and `tls_key` go together")
        }
        // A directory that cannot be made no longer stops portico (the owner's pages say so).
        "state_directory" => ("", "expected a directory, found \"\""),
        "update_status" => ("status.json", "expected an absolute path"),
        "metrics_token" => ("short", "environment variable {var}: "),
        _ => panic!("no probe for the key `{key}` in refused_value: add one"),
    }
}

/// The keys the shipped config file documents (`#key = default` lines), in order.
fn shipped_keys() -> Vec<String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../rootfs-overlay/etc/portico/portico.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let keys: Vec<String> = text
        .lines()
        .filter_map(|line| line.trim_start_matches('#').split_once(" = "))
        .map(|(key, _)| key.to_owned())
        .filter(|key| !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .collect();
    assert!(keys.len() >= 20, "{path} documents only {keys:?}");
    keys
}

/// The keys --help lists as options (`--key-name`), in order, less those that are no key.
fn help_keys() -> Vec<String> {
    let help = std::process::Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    help.lines()
        .filter_map(|line| line.trim_start().split_once("--"))
        .filter(|(before, _)| before.is_empty() || before.ends_with(", "))
        .filter_map(|(_, flag)| flag.split_whitespace().next())
        .filter(|flag| !["config", "help", "version"].contains(flag))
        .map(|flag| flag.replace('-', "_"))
        .collect()
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
    /// None (and the test says it was skipped) where the test cannot make one: not root, or no pids controller.
    fn new(max: u32) -> Option<Self> {
        let root = ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"]
            .into_iter()
            .map(Path::new)
            .find(|dir| dir.join("cgroup.procs").exists() && can_limit_pids(dir));
        let Some(root) = root.filter(|_| nix::unistd::geteuid().is_root()) else {
            skip("needs root and a pids cgroup controller");
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
/// own threads, instead of aborting at start. The limit of 3 leaves room for one worker
/// beside portico's other two threads, so portico must run on its main thread alone: two
/// workers (this machine's CPUs, or more) would fit the kernel's limit as threads yet leave
/// the blocking pool none, so the thread count is portico's choice, not the cgroup's.
#[test]
fn the_default_worker_count_fits_the_task_limit() {
    let Some(cgroup) = PidsCgroup::new(3) else { return };
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    let mut portico = Portico::start().fd(listener).cgroup(&cgroup.0).spawn();
    assert_eq!(get(addr, "/api/status").status, 200, "stderr:\n{}", portico.stderr());
    assert_eq!(threads_of(&portico), 1, "one worker, on the main thread, for pids.max = 3");
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
