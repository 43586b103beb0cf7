//! The privilege drop for inits without socket activation (BusyBox init, SysV, runit,
//! daemontools) and root shells: started as root, portico binds its addresses, becomes the
//! configured user (`nobody` if none is named, as nginx does) and only then serves; it
//! serves as root only when allowed.
//!
//! Everything here needs root, as CI has. Run as anyone else, each test says on the
//! terminal that it was skipped (common::skip), except under CI, where it fails.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;

use common::{Identity, Portico, SETUP_ERROR, api_status, free_port, get, identity, scratch_path, skip};
use nix::unistd::{User, geteuid};

fn is_root() -> bool {
    let root = geteuid().is_root();
    if !root {
        skip("the privilege-drop tests need root");
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

fn identity_of(user: &User) -> Identity {
    let (uid, gid) = (user.uid.as_raw(), user.gid.as_raw());
    Identity {
        uids: vec![uid; 4],
        gids: vec![gid; 4],
        groups: vec![gid],
        effective_caps: "0000000000000000".into(),
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
    let portico = Portico::start().args(&["--config", config.to_str().unwrap()]).exact_args().spawn();
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(identity(portico.pid()), identity_of(&nobody()));
}

/// The README's `cargo run --release`, typed in a root shell: serves, as nobody, and says so.
#[test]
fn as_root_without_a_user_it_serves_as_nobody() {
    if !is_root() {
        return;
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let portico = Portico::start().args(&["--listen", &addr.to_string()]).exact_args().spawn();
    assert_eq!(get(addr, "/healthz").status, 200, "stderr:\n{}", portico.stderr());
    assert_eq!(identity(portico.pid()), identity_of(&nobody()));
    assert!(portico.stderr().contains("switched to nobody"), "{}", portico.stderr());
}

#[test]
fn user_root_is_refused_unless_root_is_allowed() {
    if !is_root() {
        return;
    }
    let listen = format!("127.0.0.1:{}", free_port());
    let (code, stderr) =
        Portico::start().args(&["--user", "root", "--listen", &listen]).exact_args().spawn().failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert!(stderr.contains("refusing to serve as root"), "{stderr}");
    assert!(stderr.contains("--user") && stderr.contains("--allow-root"), "says what to do: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let allowed = Portico::start()
        .args(&["--user", "root", "--allow-root", "--listen", &addr.to_string()])
        .exact_args()
        .spawn();
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(identity(allowed.pid()).uids, [0; 4]);
}

#[test]
fn serves_as_root_when_allowed_by_flag_or_config() {
    if !is_root() {
        return;
    }
    let by_flag = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let flagged =
        Portico::start().args(&["--allow-root", "--listen", &by_flag.to_string()]).exact_args().spawn();
    let by_config = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = config_file(&format!("allow_root = true\nlisten = [\"{by_config}\"]\n"));
    let configured = Portico::start().args(&["--config", config.to_str().unwrap()]).exact_args().spawn();
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
    let (code, stderr) = Portico::start()
        .args(&["--user", "no-such-portico-user", "--listen", &listen])
        .exact_args()
        .spawn()
        .failure();
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
    let (code, stderr) = Portico::start()
        .args(&["--user", "daemon", "--listen", &listen])
        .run_as(nobody.clone())
        .spawn()
        .failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert!(stderr.contains("only root can switch users"), "{stderr}");

    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let portico = Portico::start()
        .args(&["--user", "nobody", "--listen", &addr.to_string()])
        .run_as(nobody.clone())
        .spawn();
    assert_eq!(get(addr, "/healthz").status, 200);
    assert_eq!(identity(portico.pid()).uids, [nobody.uid.as_raw(); 4]);
}
