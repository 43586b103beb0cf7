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
        serve_both(&["--metrics-public", "--access-log", "--max-body-bytes", "16"]);

    let page = get(http_addr, "/hello");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<h1>Hello from this device</h1>"), "{}", page.body);
    let api = Client::connect(https_addr).get("/api/hello");
    assert_eq!((api.status, api.body.as_str()), (200, r#"{"greeting":"hello"}"#));

    // The server's limits and counts apply to it as to the built-in pages.
    let big = request(connect(http_addr), "GET", "/hello", "Content-Length: 100\r\n").unwrap();
    assert_eq!(big.status, 413);
    let metrics = get(http_addr, "/metrics").body;
    assert!(metrics.contains("portico_tls_handshakes_total 1"), "{metrics}");
    assert!(portico.stderr().contains("GET /hello 200 "), "{}", portico.stderr());
}
