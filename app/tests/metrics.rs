//! /metrics: off until the owner opens it, a bearer token or public, Prometheus' text
//! format (checked by promtool), with the same figures as /api/status.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};

use common::*;

const TOKEN: &str = "0123456789abcdef0123";

fn serve(args: &[&str]) -> (Portico, std::net::SocketAddr) {
    let listener = tcp_listener("127.0.0.1:0");
    let addr = listener.local_addr().unwrap();
    (Portico::start().fd(listener).args(args).spawn(), addr)
}

fn scrape(addr: std::net::SocketAddr, authorization: &str) -> Response {
    request(connect(addr), "GET", "/metrics", authorization).unwrap()
}

#[test]
fn metrics_are_off_until_a_token_or_public_access_is_configured() {
    let (_portico, addr) = serve(&[]);
    let response = scrape(addr, "");
    assert_eq!(response.status, 403);
    assert!(response.body.contains("metrics_token"), "says how to turn it on: {}", response.body);
}

/// The token is a credential: over HTTPS only the right one scrapes; over plain HTTP it is
/// refused even when right, and a right one is logged as exposed, so the owner replaces it.
#[test]
fn the_bearer_token_is_taken_over_https_only() {
    let (portico, http, https) = serve_both(&["--metrics-token", TOKEN]);
    let mut client = tls::Client::connect(https);
    assert_eq!(client.get("/metrics").status, 401);
    let wrong = client.request("GET", "/metrics", "Authorization: Bearer 0123456789abcdef0124\r\n", "");
    assert_eq!(wrong.status, 401);
    let response = client.request("GET", "/metrics", &format!("Authorization: Bearer {TOKEN}\r\n"), "");
    assert_eq!(response.status, 200);
    assert!(
        response.head.to_ascii_lowercase().contains("content-type: text/plain; version=0.0.4"),
        "{}",
        response.head
    );

    let refused = scrape(http, "");
    assert_eq!(refused.status, 403);
    assert!(refused.body.contains("https://"), "says where to scrape: {}", refused.body);
    let exposed = "the bearer token came over plain HTTP from 127.0.0.1";
    assert!(!portico.stderr().contains(exposed), "{}", portico.stderr());
    assert_eq!(scrape(http, &format!("Authorization: Bearer {TOKEN}\r\n")).status, 403);
    assert!(portico.stderr().contains(exposed), "{}", portico.stderr());
}

#[test]
fn a_short_token_is_refused_at_start() {
    let (code, stderr) = Portico::start().args(&["--metrics-token", "hunter2"]).spawn().failure();
    assert_eq!(code, SETUP_ERROR, "{stderr}");
    assert!(stderr.contains("too easy to guess"), "{stderr}");
}

/// Sample name with labels -> value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_owned(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn the_figures_agree_with_the_api() {
    let (_portico, addr) = serve(&["--metrics-public"]);
    for _ in 0..3 {
        assert_eq!(get(addr, "/healthz").status, 200);
    }
    assert_eq!(get(addr, "/no-such-page").status, 404);
    let status = api_status(addr);
    let metrics = samples(&scrape(addr, "").body);
    let value = |name: &str| *metrics.get(name).unwrap_or_else(|| panic!("no {name} in {metrics:?}"));

    assert_eq!(value("node_memory_MemTotal_bytes"), status["memory"]["total_bytes"].as_f64().unwrap());
    let root = metrics.keys().find(|k| k.starts_with("node_filesystem_size_bytes{")).unwrap();
    assert!(root.contains("mountpoint=\"/\"") && root.contains("fstype=\""), "{root}");
    assert_eq!(metrics[root], status["root_filesystem"]["total_bytes"].as_f64().unwrap());
    let version = status["portico"]["version"].as_str().unwrap();
    assert_eq!(value(&format!("portico_build_info{{version=\"{version}\"}}")), 1.0);
    // 3 health checks and the API call were answered 2xx, the missing page 4xx.
    assert!(value("portico_http_responses_total{code=\"2xx\"}") >= 4.0);
    assert_eq!(value("portico_http_responses_total{code=\"4xx\"}"), 1.0);
    assert!(value("portico_connections_accepted_total") >= 6.0);
    assert!(value("process_resident_memory_bytes") > 1e5);
    let boot = value("node_boot_time_seconds");
    let uptime = status["uptime_seconds"].as_f64().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - uptime - boot).abs() < 5.0, "boot time {boot} against now - uptime {}", now - uptime);
}

/// Prometheus' own checker on the real output (Debian's prometheus package; ci/test.sh
/// installs it). It parses it (exit 1 on any format error) and lints it (exit 3): the one
/// lint allowed is the one node_exporter itself draws, for the camelCase names of
/// node_memory_*, which dashboards expect as they are.
#[test]
fn promtool_accepts_the_exposition() {
    let (_portico, addr) = serve(&["--metrics-public"]);
    let body = scrape(addr, "").body;
    let Ok(mut promtool) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        skip("promtool not installed (apt-get install prometheus)");
        return;
    };
    use std::io::Write;
    promtool.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let node_exporters_own = |line: &str| {
        line.starts_with("node_memory_")
            && line.ends_with("should be written in 'snake_case' not 'camelCase'")
    };
    let code = output.status.code();
    assert!(code == Some(0) || code == Some(3), "promtool check metrics exited {code:?}: {said}\n{body}");
    assert!(said.lines().all(node_exporters_own), "promtool check metrics: {said}\n{body}");
}
