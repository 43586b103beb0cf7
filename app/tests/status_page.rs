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
    // Available as `free` counts it (MemAvailable, reclaimable cache included), read again
    // here: within a tenth of the total of the kernel's figure a moment later.
    let meminfo = |name: &str| -> u64 {
        let text = std::fs::read_to_string("/proc/meminfo").unwrap();
        let line = text.lines().find_map(|l| l.strip_prefix(name)).unwrap();
        line.trim_matches(|c: char| !c.is_ascii_digit()).parse::<u64>().unwrap() * 1024
    };
    let total = status["memory"]["total_bytes"].as_u64().unwrap();
    let available = status["memory"]["available_bytes"].as_u64().unwrap();
    assert_eq!(total, meminfo("MemTotal:"));
    assert!(available.abs_diff(meminfo("MemAvailable:")) < total / 10, "{available} vs MemAvailable");
    assert!(status["root_filesystem"]["total_bytes"].as_u64().unwrap() > 0);
    assert_eq!(status["load"].as_array().unwrap().len(), 3);
    assert_eq!(status["portico"]["pid"], portico.child.id());
    assert_eq!(status["portico"]["version"], version_of_the_binary());
    let kernel = identity(portico.pid());
    assert_eq!(status["process"]["uid"], kernel.uids[0]);
    assert_eq!(status["process"]["gid"], kernel.gids[0]);
}

/// What `portico --version` says, whatever PORTICO_VERSION the build had.
fn version_of_the_binary() -> String {
    let output = Command::new(BIN).arg("--version").output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    text.trim().strip_prefix("portico ").unwrap().to_owned()
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
    assert!(page.body.contains("reclaimable cache counted as available"), "{}", page.body);
    let head = page.head.to_ascii_lowercase();
    assert!(head.contains("content-security-policy: default-src 'self'"), "{head}");
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
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
fn a_wrong_method_is_told_which_methods_are_allowed() {
    let (_portico, addr) = serve();
    for path in ["/", "/api/status", "/healthz", "/assets/status.css"] {
        let response = request(connect(addr), "POST", path, "Content-Length: 0\r\n").unwrap();
        let head = response.head.to_ascii_lowercase();
        assert_eq!(response.status, 405, "{path}");
        assert!(head.contains("allow: get,head") || head.contains("allow: get, head"), "{path}: {head}");
    }
}

/// Renders `url` in Chromium, checks the script refreshed the figures, and keeps a
/// screenshot as target/`name`.
fn render_in_chromium(url: &str, name: &str, extra: &[&str]) -> String {
    // Virtual time lets the page's script fetch /api/status and fill the figures in.
    let dom = chromium(&[extra, &["--virtual-time-budget=5000", "--dump-dom", url]].concat());
    assert!(dom.contains("id=\"refreshed\">updated "), "the script did not refresh the figures:\n{dom}");
    assert!(!dom.contains("{{"), "{dom}");

    let screenshot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("..").join(name);
    let _ = std::fs::remove_file(&screenshot);
    let shot = format!("--screenshot={}", screenshot.display());
    chromium(&[extra, &["--virtual-time-budget=5000", "--window-size=900,1100", &shot, url]].concat());
    let png = std::fs::read(&screenshot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "screenshot is {} bytes", png.len());
    dom
}

#[test]
fn the_page_renders_and_refreshes_in_a_browser() {
    let (_portico, addr) = serve();
    let dom = render_in_chromium(&format!("http://{addr}/"), "status-page.png", &[]);
    assert!(dom.contains("sockets from systemd: 127.0.0.1:"), "{dom}");
}

/// Over HTTPS with the self-signed certificate (the warning accepted, as an owner would
/// after checking the fingerprint), the page shows that fingerprint.
#[cfg(feature = "tls")]
#[test]
fn the_page_renders_over_https_in_a_browser() {
    let (_portico, http, https) = serve_both(&[]);
    let fingerprint = api_status(http)["certificate"]["fingerprint_sha256"].as_str().unwrap().to_owned();
    let dom = render_in_chromium(
        &format!("https://{https}/"),
        "status-page-https.png",
        &["--ignore-certificate-errors"],
    );
    assert!(dom.contains(&format!("SHA-256 {fingerprint}")), "{dom}");
    assert!(dom.contains(&format!("https://{https} (https, fd 4)")), "{dom}");
}
