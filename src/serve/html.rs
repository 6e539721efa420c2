//! The HTML side of the status pages: one escaping function that every shown value
//! goes through, the page shell with its one inline stylesheet, and the headers that
//! keep a page inert even if something slipped through (a `Content-Security-Policy`
//! that allows no script at all, and only the page's own stylesheet by its hash).

use std::fmt::Write as _;
use std::sync::OnceLock;

/// The one stylesheet, inline so a page is self-contained; allowed by its hash.
const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.5em}\
table{border-collapse:collapse;margin:.5em 0}\
th,td{border-bottom:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f4f4f4}code,.mono{font-family:ui-monospace,monospace}\
.succeeded,.unchanged{color:#286e2a}.changed,.pending,.running{color:#8a5a00}\
.failed,.error,.unreachable,.halted,.interrupted,.host-key{color:#b00020;font-weight:600}\
.muted{color:#777}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}\
dt{font-weight:600}dd{margin:0}";

pub use crate::html::escape;

/// A whole page: `title` is escaped here, `body` must already be HTML built with
/// [`escape`].
pub fn page(title: &str, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + STYLE.len() + 256);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        escape(title)
    );
    out
}

/// The `Content-Security-Policy` of every page: no script, no frame, no form, nothing
/// fetched; the inline stylesheet by its SHA-256.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = crate::html::csp_hash(STYLE);
        format!(
            "default-src 'none'; style-src {hash}; img-src 'none'; script-src 'none'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_everywhere() {
        assert_eq!(
            escape("<script>alert('x') & \"y\"</script>"),
            "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;"
        );
        let shown = page("<b>", "<p>ok</p>");
        assert!(shown.contains("<title>&lt;b&gt;</title>"), "{shown}");
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_stylesheet() {
        use base64::Engine as _;
        use sha2::{Digest as _, Sha256};
        let csp = content_security_policy();
        assert!(csp.contains("script-src 'none'"), "{csp}");
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(STYLE));
        assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
    }
}
