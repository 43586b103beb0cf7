//! The status page and the API, as a person and a monitor see them.

mod common;

use std::process::Command;

use common::*;

fn serve() -> (Portico, std::net::SocketAddr) {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    (Portico::start().fd(listener).names("http").spawn(), addr)
}

#[test]
fn the_api_describes_the_device_and_the_process() {
    let (portico, addr) = serve();
    let status = api_status(addr);
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(status["hostname"], hostname.trim());
    assert_eq!(status["architecture"], std::env::consts::ARCH);
    assert!(status["uptime_seconds"].as_u64().unwrap() > 0);
    assert!(
        status["memory"]["total_bytes"].as_u64().unwrap() > status["memory"]["free_bytes"].as_u64().unwrap()
    );
    assert!(status["root_filesystem"]["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(status["load"].as_array().unwrap().len(), 3);
    assert_eq!(status["portico"]["pid"], portico.child.id());
    assert_eq!(status["portico"]["version"], env!("CARGO_PKG_VERSION"));
    let kernel = identity(portico.pid());
    assert_eq!(status["process"]["uid"], kernel.uids[0]);
    assert_eq!(status["process"]["gid"], kernel.gids[0]);
}

#[test]
fn health_is_a_fixed_body_a_monitor_can_match() {
    let (_portico, addr) = serve();
    let response = get(addr, "/healthz");
    assert_eq!((response.status, response.body.as_str()), (200, "ok\n"));
    assert!(response.head.to_ascii_lowercase().contains("cache-control: no-store"));
}

#[test]
fn the_page_shows_the_figures_without_javascript() {
    let (_portico, addr) = serve();
    let page = get(addr, "/");
    assert_eq!(page.status, 200);
    assert!(page.head.to_ascii_lowercase().contains("content-type: text/html"));
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert!(page.body.contains(&format!("<h1 data-field=\"hostname\">{}</h1>", hostname.trim())));
    assert!(page.body.contains("sockets from systemd:"), "{}", page.body);
    assert!(!page.body.contains("{{"), "unfilled placeholder: {}", page.body);
    for asset in ["/assets/status.js", "/assets/status.css"] {
        assert_eq!(get(addr, asset).status, 200, "{asset}");
    }
}

/// Debian's chromium, headless, flags as this machine needs them (no network, root).
fn chromium(args: &[&str]) -> String {
    let profile = scratch_path("chromium-profile");
    let output = Command::new("chromium")
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"])
        .args(["--disable-background-networking", "--disable-component-update", "--disable-sync"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs (apt-get install chromium; ci/test.sh installs it)");
    assert!(output.status.success(), "chromium failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_page_renders_and_refreshes_in_a_browser() {
    let (_portico, addr) = serve();
    let url = format!("http://{addr}/");
    // Virtual time lets the page's script fetch /api/status and fill the figures in.
    let dom = chromium(&["--virtual-time-budget=5000", "--dump-dom", &url]);
    assert!(dom.contains("id=\"refreshed\">updated "), "the script did not refresh the figures:\n{dom}");
    assert!(dom.contains("sockets from systemd: 127.0.0.1:"), "{dom}");
    assert!(!dom.contains("{{"), "{dom}");

    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("../status-page.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(&[
        "--virtual-time-budget=5000",
        "--window-size=900,1000",
        &format!("--screenshot={}", screenshot.display()),
        &url,
    ]);
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot is {} bytes", png.len());
}
