//! README's "Adding your own page", as a team would check theirs: the page and its JSON
//! endpoint answer on both sockets and go through the limits, the metrics and the access
//! log without any change to the server. Run with `--features example-page`.

#![cfg(all(feature = "example-page", feature = "tls"))]

mod common;

use common::tls::Client;
use common::*;

#[test]
fn an_added_page_is_served_over_http_and_https_with_everything_else() {
    let (portico, http_addr, https_addr) =
        serve_both(&["--metrics-public", "--access-log", "--max-body-bytes", "128"]);

    let page = get(http_addr, "/hello");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>Hello from this device</h1>"), "{}", page.body);
    // Behind the login: no owner yet, so to the set-up; once set up and logged in, served.
    let anonymous = Client::connect(https_addr).get("/api/hello");
    assert_eq!(anonymous.status, 303);
    assert!(anonymous.head.contains("location: /setup"), "{}", anonymous.head);
    let cookie = set_up_owner(&portico, https_addr);
    let api = Client::connect(https_addr).request("GET", "/api/hello", &format!("Cookie: {cookie}\r\n"), "");
    assert_eq!((api.status, api.body.as_str()), (200, r#"{"greeting":"hello"}"#));

    // The server's limits and counts apply to it as to the built-in pages.
    let big = request(connect(http_addr), "GET", "/hello", "Content-Length: 1000\r\n").unwrap();
    assert_eq!(big.status, 413);
    let metrics = get(http_addr, "/metrics").body;
    assert!(metrics.contains("portico_tls_handshakes_total 3"), "{metrics}");
    assert!(portico.stderr().contains("GET /hello 200 "), "{}", portico.stderr());
}

/// Sets the owner's password with the set-up code from the log; the session cookie.
fn set_up_owner(portico: &Portico, https: std::net::SocketAddr) -> String {
    let log = portico.stderr();
    let line = log.lines().find(|l| l.contains("set-up code ")).unwrap_or_else(|| panic!("{log}"));
    let code = line.split("set-up code ").nth(1).unwrap().split(';').next().unwrap();
    let body = format!("code={code}&password=a+page+of+our+own+here&again=a+page+of+our+own+here");
    let headers = "Origin: https://device\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let done = Client::connect(https).request("POST", "/setup", headers, &body);
    assert_eq!(done.status, 303, "{}", done.body);
    let set = done.head.lines().find_map(|l| l.strip_prefix("set-cookie: ")).unwrap();
    set.split(';').next().unwrap().to_owned()
}
