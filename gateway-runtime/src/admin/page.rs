//! The live page (`GET /` of the admin listener): one self-contained HTML file, compiled into the binary, that polls
//! `/_gateway/stats` every two seconds and shows, per operation, the last interval's requests per second, error
//! rate, p50 and p99 latency, cache hit ratio, throttled requests and authentication failures, with the totals since
//! start; the unmatched requests; the upstreams' latencies; the cache's size.
//!
//! The page requests nothing but the admin listener's own JSON endpoints: no CDN, no font, no image, no build step.
//! Its `Content-Security-Policy` says so to the browser: nothing is allowed by default, its one inline script and
//! its one inline style sheet only by their SHA-256 (computed from the file when first served), and `fetch` only to
//! the page's own origin.

use std::sync::LazyLock;

use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use http::HeaderValue;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS};
use sha2::Digest as _;

/// The page: HTML, CSS and JavaScript in one file.
pub const PAGE: &str = include_str!("page.html");

/// The page's `Content-Security-Policy`.
pub static CSP: LazyLock<String> = LazyLock::new(|| csp(PAGE));

/// The text of the one `<tag>…</tag>` element of `page` (the page has exactly one script and one style sheet).
fn inline<'a>(page: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = page.find(&open)? + open.len();
    let end = start + page[start..].find(&close)?;
    Some(&page[start..end])
}

/// `'sha256-…'`, the CSP source of an inline element with this text.
fn hash_source(text: &str) -> String {
    let digest = sha2::Sha256::digest(text.as_bytes());
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// The policy allowing `page`'s inline script and style sheet by hash, `fetch` to its own origin and `data:`
/// images (the empty favicon), and nothing else: no other script, style, frame, form target, base URL or embedder.
fn csp(page: &str) -> String {
    // Without the element, `'none'`: a page whose script is missing shows nothing, rather than running anything.
    let source = |tag| inline(page, tag).map_or_else(|| "'none'".to_owned(), hash_source);
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src data:; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        source("script"),
        source("style"),
    )
}

/// `GET /`: the page, never cached (it is small, and a stale copy after an upgrade would misread new JSON).
pub async fn page() -> Response {
    let csp = HeaderValue::from_str(&CSP).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8")),
            (CONTENT_SECURITY_POLICY, csp),
            (X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
            (REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        ],
        PAGE,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_one_script_and_one_style_sheet_and_the_policy_names_their_hashes() {
        for tag in ["script", "style"] {
            assert_eq!(PAGE.matches(&format!("<{tag}")).count(), 1, "one <{tag}>");
            let text = inline(PAGE, tag).unwrap_or_else(|| panic!("a <{tag}> element"));
            assert!(text.len() > 100, "{tag}: {text}");
            assert!(CSP.contains(&format!("{tag}-src {}", hash_source(text))), "{}", *CSP);
        }
        assert!(CSP.starts_with("default-src 'none';"), "{}", *CSP);
        assert!(!CSP.contains("unsafe"), "{}", *CSP);
        assert!(HeaderValue::from_str(&CSP).is_ok());
    }

    #[test]
    fn the_page_requests_nothing_from_elsewhere() {
        for needle in [
            "://",
            "\"//",
            "'//",
            "(//",
            " src=",
            "url(",
            "@import",
            "import(",
            "<link rel=\"stylesheet",
        ] {
            assert!(!PAGE.contains(needle), "the page contains {needle:?}");
        }
        // The one `href` is the empty favicon, so that the browser does not ask for `/favicon.ico`.
        let hrefs: Vec<&str> = PAGE.match_indices("href=").map(|(i, _)| &PAGE[i..]).collect();
        assert_eq!(hrefs.len(), 1);
        assert!(hrefs[0].starts_with("href=\"data:,\""), "{}", &hrefs[0][..20]);
        // It reads only the admin listener's own endpoints.
        let fetched: Vec<&str> = PAGE
            .match_indices("fetchJson('")
            .filter_map(|(i, m)| PAGE[i + m.len()..].split('\'').next())
            .collect();
        assert_eq!(fetched, ["/_gateway/info", "/_gateway/stats"]);
    }

    #[test]
    fn a_page_without_a_script_allows_none() {
        let policy = csp("<html><style>p{}</style></html>");
        assert!(policy.contains("script-src 'none';"), "{policy}");
        assert!(
            policy.contains(&format!("style-src {};", hash_source("p{}"))),
            "{policy}"
        );
    }
}
