//! The privilege drop for inits without socket activation (BusyBox init, SysV, runit,
//! daemontools): started as root, portico binds its addresses, becomes the configured user
//! and only then serves; as root with no user to become, it refuses unless allowed.
//!
//! Everything here needs root, as CI has. Run as anyone else, the tests say they were
//! skipped and pass, except under CI=true, where that would hide a missing check.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use common::{BIN, PATIENCE, Portico, api_status, free_port, get, scratch_path};
use nix::unistd::{Pid, User, geteuid};

/// EX_CONFIG: what portico exits with for a setup that a restart cannot fix.
const SETUP_ERROR: i32 = 78;

fn is_root() -> bool {
    let root = geteuid().is_root();
    if !root {
        assert!(std::env::var_os("CI").is_none(), "CI must run the privilege-drop tests as root");
        eprintln!("skipped: the privilege-drop tests need root");
    }
    root
}

fn nobody() -> User {
    User::from_name("nobody").unwrap().expect("this system has no user `nobody`")
}

/// A free port below 1024, so that only root could have bound it.
fn free_privileged_port() -> u16 {
    (600..1024)
        .rev()
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("no free port below 1024 on 127.0.0.1")
}

/// Who a process is, from the kernel's view: /proc/<pid>/status.
#[derive(Debug, PartialEq)]
struct Identity {
    /// Real, effective, saved and filesystem ids, as the kernel lists them.
    uids: Vec<u32>,
    gids: Vec<u32>,
    groups: Vec<u32>,
    effective_caps: String,
}

fn identity(pid: Pid) -> Identity {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
            .trim()
            .to_owned()
    };
    let ids = |name: &str| field(name).split_whitespace().map(|id| id.parse().unwrap()).collect();
    Identity {
        uids: ids("Uid:"),
        gids: ids("Gid:"),
        groups: ids("Groups:"),
        effective_caps: field("CapEff:"),
    }
}

fn identity_of(user: &User) -> Identity {
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    Identity {
        uids: vec![uid; 4],
        gids: vec![gid; 4],
        groups: vec![gid],
        effective_caps: "0000000000000000".into(),
    }
}

/// portico started directly, as the harness's `Portico` cannot: without the `--user nobody`
/// it adds for root, or as another user.
struct Direct {
    child: Child,
    stderr: PathBuf,
}

impl Direct {
    fn spawn(args: &[&str], as_user: Option<&User>) -> Direct {
        let stderr = scratch_path("stderr");
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("PORTICO_CONFIG", "/dev/null")
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID");
        command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(std::fs::File::create(&stderr).unwrap());
        if let Some(user) = as_user {
            command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        }
        Direct { child: command.spawn().unwrap(), stderr }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Waits for a start-up failure: (exit code, stderr). A portico that serves instead fails the test.
    fn failure(mut self) -> (i32, String) {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "portico did not exit within {PATIENCE:?}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        (status.code().unwrap_or(-1), std::fs::read_to_string(&self.stderr).unwrap())
    }
}

impl Drop for Direct {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config_file(text: &str) -> PathBuf {
    let path = scratch_path("portico.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn binds_a_privileged_port_then_serves_as_the_user() {
    if !is_root() {
        return;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_privileged_port()));
    let portico = Portico::start().args(&["--user", "nobody", "--listen", &addr.to_string()]).spawn();
    let health = get(addr, "/healthz");
    assert_eq!((health.status, health.body.trim()), (200, "ok"));
    assert_eq!(identity(portico.pid()), identity_of(&nobody()), "stderr:\n{}", portico.stderr());
    let status = api_status(addr);
    assert_eq!(status["process"]["uid"], nobody().uid.as_raw());
    assert_eq!(status["process"]["gid"], nobody().gid.as_raw());
}

#[test]
fn the_user_and_addresses_can_come_from_the_config_file() {
    if !is_root() {
        return;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = config_file(&format!("user = \"nobody\"\nlisten = [\"{addr}\"]\n"));
    let portico = Direct::spawn(&["--config", config.to_str().unwrap()], None);
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(identity(portico.pid()), identity_of(&nobody()));
}

#[test]
fn refuses_to_serve_as_root_without_a_user() {
    if !is_root() {
        return;
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let (code, stderr) = Direct::spawn(&["--listen", &listen], None).failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert!(stderr.contains("refusing to serve as root"), "{stderr}");
    assert!(stderr.contains("--user") && stderr.contains("--allow-root"), "says what to do: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn serves_as_root_when_allowed_by_flag_or_config() {
    if !is_root() {
        return;
    }
    let by_flag = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let flagged = Direct::spawn(&["--allow-root", "--listen", &by_flag.to_string()], None);
    let by_config = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = config_file(&format!("allow_root = true\nlisten = [\"{by_config}\"]\n"));
    let configured = Direct::spawn(&["--config", config.to_str().unwrap()], None);
    for (addr, portico) in [(by_flag, &flagged), (by_config, &configured)] {
        assert_eq!(get(addr, "/healthz").status, 200);
        assert_eq!(identity(portico.pid()).uids, [0; 4]);
        assert_eq!(api_status(addr)["process"]["uid"], 0);
    }
}

#[test]
fn an_unknown_user_is_a_clear_error() {
    if !is_root() {
        return;
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let (code, stderr) =
        Direct::spawn(&["--user", "no-such-portico-user", "--listen", &listen], None).failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert!(stderr.contains("\"no-such-portico-user\" does not exist"), "{stderr}");
}

#[test]
fn only_root_can_switch_to_another_user() {
    if !is_root() {
        return;
    }
    // As daemontools' setuidgid or runit's chpst would start it: already the user.
    let nobody = nobody();
    let listen = format!("127.0.0.1:{}", free_port());
    let (code, stderr) = Direct::spawn(&["--user", "root", "--listen", &listen], Some(&nobody)).failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert!(stderr.contains("only root can switch users"), "{stderr}");

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let portico = Direct::spawn(&["--user", "nobody", "--listen", &addr.to_string()], Some(&nobody));
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(identity(portico.pid()).uids, [nobody.uid.as_raw(); 4]);
}
