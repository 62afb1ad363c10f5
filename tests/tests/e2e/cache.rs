//! Response caching: hits, expiry, keys, what is not stored, capacity, invalidation, coalescing, flush.
//!
//! The upstream numbers its answers (`X-Upstream-Call`) and counts its calls, so every assertion is about what
//! actually reached it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::client::{Reply, get, send};
use http::{Method, StatusCode};

use crate::support::{assert_problem, setup, setup_with};

const TOKEN: &str = "s3cret-admin-token";

async fn get_with(url: &str, headers: &[(&str, &str)]) -> Reply {
    send(Method::GET, url, headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

fn x_cache(reply: &Reply) -> &str {
    reply.header("x-cache").unwrap_or("(none)")
}

#[tokio::test]
async fn a_hit_after_a_miss_calls_the_upstream_once() {
    let (upstream, gw) = setup().await;
    let first = get(&gw.url("/pets/1")).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(x_cache(&first), "MISS");
    let second = get(&gw.url("/pets/1")).await;
    assert_eq!(x_cache(&second), "HIT");
    assert_eq!(second.body, first.body, "the stored body is served");
    assert_eq!(second.header("x-upstream-call"), first.header("x-upstream-call"));
    assert!(
        second.header("age").is_some_and(|a| a.parse::<u64>().is_ok()),
        "a hit carries Age"
    );
    assert_eq!(upstream.calls(), 1);
    // An operation without caching says nothing about the cache.
    assert_eq!(get(&gw.url("/inventory")).await.header("x-cache"), None);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let (upstream, gw) = setup().await;
    // listVaccinations has `ttl: 2s`.
    assert_eq!(x_cache(&get(&gw.url("/pets/1/vaccinations")).await), "MISS");
    assert_eq!(x_cache(&get(&gw.url("/pets/1/vaccinations")).await), "HIT");
    let stored_at = Instant::now();
    // Poll until the entry is gone; bounded so that a broken expiry fails instead of hanging.
    let mut outcome = String::new();
    while stored_at.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        outcome = x_cache(&get(&gw.url("/pets/1/vaccinations")).await).to_owned();
        if outcome == "MISS" {
            break;
        }
    }
    assert_eq!(outcome, "MISS", "the entry expired");
    assert!(stored_at.elapsed() >= Duration::from_millis(1500), "not before its TTL");
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn the_key_holds_path_listed_query_and_listed_headers_only() {
    let (upstream, gw) = setup().await;
    let base = get_with(&gw.url("/pets/1?fields=name"), &[("accept-language", "en")]).await;
    assert_eq!(x_cache(&base), "MISS");
    // Not in the key: unlisted query parameters, their order, unlisted headers, header name case.
    for (path, headers) in [
        ("/pets/1?fields=name&verbose=true", vec![("accept-language", "en")]),
        (
            "/pets/1?verbose=false&fields=name",
            vec![("Accept-Language", "en"), ("x-other", "1")],
        ),
    ] {
        let reply = get_with(&gw.url(path), &headers).await;
        assert_eq!(x_cache(&reply), "HIT", "{path} {headers:?}");
    }
    assert_eq!(upstream.calls(), 1);
    // In the key: the path parameter, the listed query parameter, the listed header.
    for (path, headers) in [
        ("/pets/2?fields=name", vec![("accept-language", "en")]),
        ("/pets/1?fields=age", vec![("accept-language", "en")]),
        ("/pets/1?fields=name", vec![("accept-language", "de")]),
        ("/pets/1?fields=name", vec![]),
    ] {
        let reply = get_with(&gw.url(path), &headers).await;
        assert_eq!(x_cache(&reply), "MISS", "{path} {headers:?} is another key");
    }
    assert_eq!(upstream.calls(), 5);
}

#[tokio::test]
async fn only_listed_statuses_and_public_responses_are_stored() {
    let (upstream, gw) = setup().await;
    // 404 is in `statuses: [200, 404]`; 500 is not.
    for _ in 0..2 {
        assert_eq!(get(&gw.url("/pets/3?status=404")).await.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(upstream.calls(), 1, "404 stored");
    for (path, note) in [
        ("/pets/4?status=500", "a status not listed"),
        ("/pets/5?cache_control=no-store", "Cache-Control: no-store"),
        ("/pets/6?cache_control=private,%20max-age=60", "Cache-Control: private"),
        ("/pets/7?set_cookie=1", "Set-Cookie"),
    ] {
        let before = upstream.calls();
        let first = get(&gw.url(path)).await;
        let second = get(&gw.url(path)).await;
        assert_eq!(x_cache(&second), "MISS", "{note}");
        assert_eq!(upstream.calls(), before + 2, "{note} is not stored");
        assert_ne!(first.header("x-upstream-call"), second.header("x-upstream-call"));
    }
}

#[tokio::test]
async fn responses_over_max_entry_pass_through_intact() {
    let (upstream, gw) = setup().await;
    // max_entry is 1MiB.
    let big = 1024 * 1024 + 1;
    for _ in 0..2 {
        let reply = get(&gw.url(&format!("/pets/8?size={big}"))).await;
        assert_eq!(reply.body.len(), big);
        assert_eq!(x_cache(&reply), "MISS");
    }
    assert_eq!(upstream.calls(), 2);
    let small = get(&gw.url("/pets/9?size=1048576")).await;
    assert_eq!(small.body.len(), 1024 * 1024);
    assert_eq!(
        x_cache(&get(&gw.url("/pets/9?size=1048576")).await),
        "HIT",
        "exactly max_entry is stored"
    );
}

#[tokio::test]
async fn the_cache_stays_within_its_capacity() {
    let (_upstream, gw) = setup_with(&["--admin-token", TOKEN]).await;
    // capacity is 8MiB: store 16 distinct responses of 1MiB.
    for i in 0..16 {
        let reply = get(&gw.url(&format!("/pets/{i}?size=1000000"))).await;
        assert_eq!(reply.body.len(), 1_000_000);
    }
    let stats = get_with(
        &gw.admin_url("/_gateway/cache/stats"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());
    let stats = stats.json();
    let bytes = stats["bytes"].as_u64().expect("bytes");
    let capacity = stats["capacity"].as_u64().expect("capacity");
    assert_eq!(capacity, 8 * 1024 * 1024);
    assert!(bytes <= capacity, "resident {bytes} exceeds capacity {capacity}");
    assert!(bytes >= 4_000_000, "the cache is in use ({bytes} bytes)");
    assert!(stats["entries"].as_u64().is_some_and(|n| n < 16), "{stats}");
}

#[tokio::test]
async fn refresh_is_allowed_or_refused_per_operation() {
    let (upstream, gw) = setup().await;
    // getPet: `invalidate: any`.
    let first = get(&gw.url("/pets/10")).await;
    let refreshed = get_with(&gw.url("/pets/10"), &[("cache-control", "max-age=0")]).await;
    assert_eq!(x_cache(&refreshed), "MISS");
    assert_ne!(refreshed.header("x-upstream-call"), first.header("x-upstream-call"));
    let after = get(&gw.url("/pets/10")).await;
    assert_eq!(x_cache(&after), "HIT");
    assert_eq!(
        after.header("x-upstream-call"),
        refreshed.header("x-upstream-call"),
        "the refreshed entry is kept"
    );
    assert_eq!(upstream.calls(), 2);
    // listVaccinations: invalidate defaults to none.
    get(&gw.url("/pets/10/vaccinations")).await;
    let refused = get_with(&gw.url("/pets/10/vaccinations"), &[("cache-control", "no-cache")]).await;
    assert_eq!(x_cache(&refused), "HIT");
    assert_eq!(upstream.calls(), 3);
}

#[tokio::test]
async fn concurrent_misses_on_one_key_call_the_upstream_once() {
    let (upstream, gw) = setup().await;
    // The upstream takes 500 ms, so all 100 requests arrive while the first is being fetched.
    let url = gw.url("/pets/11?delay_ms=500");
    let requests: Vec<_> = (0..100)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    let mut calls = std::collections::HashSet::new();
    for r in requests {
        let reply = r.await.expect("task");
        assert_eq!(reply.status, StatusCode::OK);
        calls.insert(reply.header("x-upstream-call").map(str::to_owned));
    }
    assert_eq!(
        upstream.calls(),
        1,
        "exactly one upstream call for 100 concurrent misses"
    );
    assert_eq!(calls.len(), 1, "every caller got that one answer");
}

#[tokio::test]
async fn an_upstream_error_is_not_stored_and_does_not_poison_waiters() {
    let (upstream, gw) = setup().await;
    let url = gw.url("/pets/12?delay_ms=300&status=503");
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.expect("task").status, StatusCode::SERVICE_UNAVAILABLE);
    }
    let after = upstream.calls();
    // Nothing stored: the next request asks again, and once the upstream recovers its answer is cached.
    assert_eq!(
        get(&gw.url("/pets/12?status=503")).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert_eq!(upstream.calls(), after + 1);
    assert_eq!(x_cache(&get(&gw.url("/pets/12")).await), "MISS");
    assert_eq!(x_cache(&get(&gw.url("/pets/12")).await), "HIT");
}

#[tokio::test]
async fn head_is_served_from_a_cached_get() {
    let (upstream, gw) = setup().await;
    let got = get(&gw.url("/pets/13")).await;
    let head = send(Method::HEAD, &gw.url("/pets/13"), &[], Bytes::new())
        .await
        .expect("answered");
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(x_cache(&head), "HIT");
    assert!(head.body.is_empty());
    assert_eq!(head.header("x-upstream-call"), got.header("x-upstream-call"));
    assert_eq!(upstream.calls(), 1);
}

#[tokio::test]
async fn the_admin_flush_needs_the_token() {
    let (upstream, gw) = setup_with(&["--admin-token", TOKEN]).await;
    get(&gw.url("/pets/14")).await;
    get(&gw.url("/pets/14/vaccinations")).await;
    let refused = send(
        Method::POST,
        &gw.admin_url("/_gateway/cache/flush"),
        &[("authorization", "Bearer wrong")],
        Bytes::new(),
    )
    .await
    .expect("answered");
    assert_problem(&refused, StatusCode::UNAUTHORIZED);
    assert_eq!(
        x_cache(&get(&gw.url("/pets/14")).await),
        "HIT",
        "a refused flush flushes nothing"
    );
    // Flush one operation: the other keeps its entry.
    let auth = format!("Bearer {TOKEN}");
    let flushed = send(
        Method::POST,
        &gw.admin_url("/_gateway/cache/flush?operation=getPet"),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await
    .expect("answered");
    assert_eq!(flushed.status, StatusCode::OK, "{}", flushed.text());
    assert_eq!(x_cache(&get(&gw.url("/pets/14")).await), "MISS");
    assert_eq!(x_cache(&get(&gw.url("/pets/14/vaccinations")).await), "HIT");
    // Flush everything.
    send(
        Method::POST,
        &gw.admin_url("/_gateway/cache/flush"),
        &[("authorization", &auth)],
        Bytes::new(),
    )
    .await
    .expect("ok");
    assert_eq!(x_cache(&get(&gw.url("/pets/14/vaccinations")).await), "MISS");
    assert_eq!(upstream.calls(), 4);
}

#[tokio::test]
async fn without_an_admin_token_the_admin_endpoints_do_not_exist() {
    let (_upstream, gw) = setup().await;
    for (method, path) in [
        (Method::POST, "/_gateway/cache/flush"),
        (Method::GET, "/_gateway/cache/stats"),
        (Method::GET, "/_gateway/usage"),
    ] {
        let reply = send(
            method,
            &gw.admin_url(path),
            &[("authorization", "Bearer anything")],
            Bytes::new(),
        )
        .await
        .expect("answered");
        assert_problem(&reply, StatusCode::NOT_FOUND);
    }
}
