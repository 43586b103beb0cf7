//! What every page's response shares: text made safe for HTML, and the security headers.

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

/// The headers every response carries, the owner's pages and the status page alike:
/// scripts, styles and requests from the device itself only, no framing by another site,
/// no guessing of content types, no address sent to another site.
pub(crate) fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; frame-ancestors 'none'"),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
}

/// `secure` as the router's last step, so no route can leave it out.
pub(crate) async fn secured(mut response: Response) -> Response {
    secure(response.headers_mut());
    response
}

/// `text` made safe to put in HTML, as portico's own pages put the device's label and
/// other text in theirs.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    escape_into(&mut out, text);
    out
}

pub(super) fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn escape_neutralises_markup() {
        let mut out = String::new();
        super::escape_into(&mut out, "<b>\"x\" & 'y'</b>");
        assert_eq!(out, "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
    }
}
