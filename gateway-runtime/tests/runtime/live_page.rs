//! The admin listener's live page as HTTP sees it: the headers that keep it self-contained (its
//! Content-Security-Policy above all), and the stats JSON fields it computes from. The page in a real browser is an
//! end-to-end test (`tests/tests/e2e/live_page.rs`).

use crate::support::{get, json, start_gateway};

#[tokio::test]
async fn the_live_page_is_served_on_the_admin_listener_with_a_policy_allowing_only_itself() {
    let gw = start_gateway().await;
    let (parts, body) = get(&gw.admin_url("/")).await;
    assert_eq!(parts.status, 200);
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("x-content-type-options"), "nosniff");
    assert_eq!(header("cache-control"), "no-store");
    let csp = header("content-security-policy");
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    assert_eq!(directives[0], "default-src 'none'", "{csp}");
    for expected in [
        "connect-src 'self'",
        "img-src data:",
        "frame-ancestors 'none'",
        "base-uri 'none'",
    ] {
        assert!(directives.contains(&expected), "{expected} in {csp}");
    }
    // The inline script and style sheet by hash: nothing inline is allowed wholesale, nothing from elsewhere.
    for kind in ["script-src", "style-src"] {
        let sources = directives
            .iter()
            .find_map(|d| d.strip_prefix(kind))
            .unwrap_or_else(|| panic!("{kind} in {csp}"));
        let sources: Vec<&str> = sources.split_whitespace().collect();
        assert_eq!(sources.len(), 1, "{kind}: {sources:?}");
        assert!(
            sources[0].starts_with("'sha256-") && sources[0].ends_with("='"),
            "{kind}: {sources:?}"
        );
    }
    assert!(!csp.contains("unsafe") && !csp.contains("http"), "{csp}");
    let page = String::from_utf8(body.to_vec()).expect("UTF-8");
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..40]);
    assert!(page.contains("<table id=\"operations\""));
    assert!(!page.contains("://"), "the page names no other origin");

    // Only the admin listener serves it.
    let (parts, _) = get(&gw.url("/")).await;
    assert_eq!(parts.status, 404);
}

#[tokio::test]
async fn stats_count_each_failed_response_once_and_name_the_error_kinds() {
    let gw = start_gateway().await;
    assert_eq!(get(&gw.url("/health")).await.0.status, 200);
    // `down` points at a closed port: a 502 the gateway made, both a 5xx and a gateway error, counted once.
    assert_eq!(get(&gw.url("/down")).await.0.status, 502);
    assert_eq!(get(&gw.url("/no/such/path")).await.0.status, 404);
    let (_, body) = get(&gw.admin_url("/_gateway/stats")).await;
    let stats = json(&body);
    let kinds: Vec<&str> = stats["error_kinds"]
        .as_array()
        .expect("error_kinds")
        .iter()
        .filter_map(|k| k.as_str())
        .collect();
    assert_eq!(
        kinds.len(),
        stats["unmatched"]["errors"].as_array().expect("errors").len()
    );
    let op = |id: &str| {
        stats["operations"]
            .as_array()
            .expect("operations")
            .iter()
            .find(|op| op["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {stats}"))
            .clone()
    };
    let health = op("health");
    assert_eq!(health["failures"], 0);
    assert_eq!(health["cached"], false);
    let down = op("down");
    assert_eq!(down["requests"][4], 1);
    assert_eq!(down["failures"], 1, "{down}");
    let upstream_error = kinds
        .iter()
        .position(|k| *k == "UPSTREAM_ERROR")
        .expect("UPSTREAM_ERROR");
    assert_eq!(down["errors"][upstream_error], 1);
    let unmatched = &stats["unmatched"];
    assert_eq!(unmatched["failures"], 1, "{unmatched}");
    let not_found = kinds.iter().position(|k| *k == "NOT_FOUND").expect("NOT_FOUND");
    assert_eq!(unmatched["errors"][not_found], 1);
}
