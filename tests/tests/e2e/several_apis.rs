//! Two APIs in one gateway: `public-gateway`, generated from specs/pets-v1.yaml (under `/v1`) and
//! specs/pets-v2.yaml (under `/v2`), in front of one echo upstream that both APIs' `pets` upstreams are pointed at
//! (each at a path of its own, through `--upstream API/NAME=URL`).
//!
//! v1: `GET /pets` open and cached 30 s, `GET /pets/{petId}` for keys of v1 on plan `basic` (1/s burst 2 per key),
//! its own `NOT_FOUND` body. v2: every operation but `/health` needs a key of v2 on plan `gold`, an API-wide throttle
//! of 1/s burst 5, nothing cached, its own `NOT_FOUND` body.

use bytes::Bytes;
use gateway_tests::client::{Reply, get, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::{KeyFile, assert_problem};

const BIN: &str = "public-gateway";
const ADMIN: &str = "admin-token-for-several-apis";
const V1_KEY: &str = "v1-key-alice-0001";
const V2_KEY: &str = "v2-key-bob-000002";

/// One key file for both APIs: each key is for one of them.
const KEYS: &str = "\
- { key: v1-key-alice-0001, name: alice, api: pets-v1, plan: basic }
- { key: v2-key-bob-000002, name: bob, api: pets-v2, plan: gold }
";

async fn public() -> (Upstream, Gateway, KeyFile) {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let url = upstream.url();
    let gateway = Gateway::start(
        BIN,
        &[
            "--upstream".into(),
            format!("pets-v1/pets={url}/v1-backend"),
            "--upstream".into(),
            format!("pets-v2/pets={url}/v2-backend"),
            "--api-keys".into(),
            keys.0.display().to_string(),
            "--admin-token".into(),
            ADMIN.into(),
        ],
    )
    .expect("the public gateway starts");
    (upstream, gateway, keys)
}

async fn with_key(gw: &Gateway, path: &str, key: &str) -> Reply {
    send(Method::GET, &gw.url(path), &[("x-api-key", key)], Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
}

/// A request to the admin listener, with the admin token.
async fn admin(gw: &Gateway, method: Method, path: &str) -> Reply {
    send(
        method,
        &gw.admin_url(path),
        &[("authorization", &format!("Bearer {ADMIN}"))],
        Bytes::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[tokio::test]
async fn both_apis_are_served_under_their_base_paths_each_to_its_own_upstream() {
    let (_upstream, gw, _keys) = public().await;
    // Mock targets answer from the gateway itself.
    let v1 = get(&gw.url("/v1/health")).await;
    assert_eq!(
        (v1.status, v1.json()["api"].as_str()),
        (StatusCode::OK, Some("pets-v1"))
    );
    let v2 = get(&gw.url("/v2/health")).await;
    assert_eq!(
        (v2.status, v2.json()["api"].as_str()),
        (StatusCode::OK, Some("pets-v2"))
    );
    // Proxied operations reach their own API's upstream, with their own path rewrites.
    let pets = get(&gw.url("/v1/pets")).await;
    assert_eq!(pets.status, StatusCode::OK, "{}", pets.text());
    assert_eq!(pets.json()["path"], "/v1-backend/pets");
    let pet = with_key(&gw, "/v2/pets/7", V2_KEY).await;
    assert_eq!(pet.status, StatusCode::OK, "{}", pet.text());
    assert_eq!(pet.json()["path"], "/v2-backend/animals/7");
    // Routes exist only under their base path.
    assert_eq!(get(&gw.url("/health")).await.status, StatusCode::NOT_FOUND);
    assert_eq!(get(&gw.url("/v3/health")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_404_is_rendered_by_the_api_whose_base_path_the_path_is_under() {
    let (_upstream, gw, _keys) = public().await;
    let v2 = get(&gw.url("/v2/nothing/here")).await;
    assert_eq!(v2.status, StatusCode::NOT_FOUND);
    assert_eq!(v2.header("content-type"), Some("application/json"));
    let body = v2.json();
    assert_eq!(
        (body["api"].as_str(), body["message"].as_str()),
        (Some("pets-v2"), Some("No such v2 resource"))
    );
    assert_eq!(body["requestId"].as_str(), v2.header("x-request-id"));
    let v1 = get(&gw.url("/v1/nothing")).await;
    assert_eq!(v1.json()["api"], "pets-v1");
    // The base path itself is under it; a path that merely starts with the same letters is not.
    assert_eq!(get(&gw.url("/v2")).await.json()["api"], "pets-v2");
    let outside = get(&gw.url("/v2x/pets")).await;
    let problem = assert_problem(&outside, StatusCode::NOT_FOUND);
    assert!(
        problem.get("api").is_none(),
        "outside every API: the plain problem+json 404"
    );
}

#[tokio::test]
async fn a_key_of_one_api_does_not_open_the_other() {
    let (upstream, gw, _keys) = public().await;
    let v1_on_v1 = with_key(&gw, "/v1/pets/1", V1_KEY).await;
    assert_eq!(v1_on_v1.status, StatusCode::OK, "{}", v1_on_v1.text());
    let before = upstream.calls();
    let v1_on_v2 = with_key(&gw, "/v2/pets", V1_KEY).await;
    let problem = assert_problem(&v1_on_v2, StatusCode::FORBIDDEN);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("not for this API")),
        "{problem}"
    );
    let v2_on_v1 = with_key(&gw, "/v1/pets/1", V2_KEY).await;
    assert_problem(&v2_on_v1, StatusCode::FORBIDDEN);
    assert_eq!(upstream.calls(), before, "neither refused request reached the upstream");
    let v2_on_v2 = with_key(&gw, "/v2/pets", V2_KEY).await;
    assert_eq!(v2_on_v2.status, StatusCode::OK, "{}", v2_on_v2.text());
    // Without a key v2 asks for one; v1's open operation does not.
    assert_problem(&get(&gw.url("/v2/pets")).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn v1_caches_and_v2_does_not_and_the_admin_endpoints_address_one_api() {
    let (_upstream, gw, _keys) = public().await;
    let first = get(&gw.url("/v1/pets")).await;
    let second = get(&gw.url("/v1/pets")).await;
    assert_eq!(
        (first.header("x-cache"), second.header("x-cache")),
        (Some("MISS"), Some("HIT"))
    );
    // v2's `/pets` is another API's operation on another upstream, never answered from v1's cache.
    for _ in 0..2 {
        let v2 = with_key(&gw, "/v2/pets", V2_KEY).await;
        assert_eq!(v2.status, StatusCode::OK);
        assert_eq!(v2.header("x-cache"), None, "v2 caches nothing");
        assert_eq!(v2.json()["path"], "/v2-backend/pets");
    }
    let stats = admin(&gw, Method::GET, "/_gateway/cache/stats?api=pets-v1").await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text());
    assert_eq!(stats.json()["entries"], 1);
    assert_problem(
        &admin(&gw, Method::GET, "/_gateway/cache/stats?api=pets-v2").await,
        StatusCode::NOT_FOUND,
    );
    let all = admin(&gw, Method::GET, "/_gateway/cache/stats").await.json();
    assert_eq!(
        (all["apis"]["pets-v1"]["entries"].as_u64(), &all["apis"]["pets-v2"]),
        (Some(1), &serde_json::Value::Null)
    );
    let unknown = admin(&gw, Method::GET, "/_gateway/cache/stats?api=pets-v3").await;
    let problem = assert_problem(&unknown, StatusCode::NOT_FOUND);
    assert!(
        problem["detail"]
            .as_str()
            .is_some_and(|d| d.contains("this gateway serves: pets-v1, pets-v2")),
        "{problem}"
    );
    // Flushing v1's cache by operation.
    let flushed = admin(
        &gw,
        Method::POST,
        "/_gateway/cache/flush?api=pets-v1&operation=listPets",
    )
    .await;
    assert_eq!(flushed.status, StatusCode::OK, "{}", flushed.text());
    assert_eq!(get(&gw.url("/v1/pets")).await.header("x-cache"), Some("MISS"));
}

#[tokio::test]
async fn the_limits_of_one_api_do_not_touch_the_other() {
    let (_upstream, gw, _keys) = public().await;
    // alice's plan on v1: burst 2. Her third quick request is throttled.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(with_key(&gw, "/v1/pets/1", V1_KEY).await.status);
    }
    assert_eq!(
        statuses,
        [StatusCode::OK, StatusCode::OK, StatusCode::TOO_MANY_REQUESTS],
        "v1's plan bucket"
    );
    // v2's API-wide bucket (burst 5) is untouched by v1's traffic, and v2's exhaustion leaves v1 alone.
    let mut admitted = 0;
    let mut refused = None;
    for _ in 0..8 {
        let reply = get(&gw.url("/v2/health")).await;
        if reply.status == StatusCode::OK {
            admitted += 1;
        } else {
            refused = Some(reply);
            break;
        }
    }
    assert!(admitted >= 5, "v2's whole burst is there: {admitted}");
    let refused = refused.expect("v2's bucket runs out");
    assert_problem(&refused, StatusCode::TOO_MANY_REQUESTS);
    assert!(
        refused
            .header("ratelimit-policy")
            .is_some_and(|p| p.contains("\"api\";q=5")),
        "{:?}",
        refused.headers
    );
    for _ in 0..3 {
        assert_eq!(
            get(&gw.url("/v1/health")).await.status,
            StatusCode::OK,
            "v1 has no API-wide bucket"
        );
    }
    // Usage is per API: alice under v1 only, bob under v2 only.
    let usage = admin(&gw, Method::GET, "/_gateway/usage").await.json();
    let keys = usage["keys"].as_array().expect("keys");
    let entries: Vec<(&str, &str, u64)> = keys
        .iter()
        .map(|k| {
            (
                k["name"].as_str().unwrap_or_default(),
                k["api"].as_str().unwrap_or_default(),
                k["admitted"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(entries, [("alice", "pets-v1", 2), ("bob", "pets-v2", 0)], "{usage}");
    let v2_only = admin(&gw, Method::GET, "/_gateway/usage?api=pets-v2").await.json();
    assert_eq!(v2_only["keys"].as_array().map(Vec::len), Some(1), "{v2_only}");
}

#[tokio::test]
async fn the_admin_listener_and_the_published_specs_cover_every_api() {
    let (_upstream, gw, _keys) = public().await;
    get(&gw.url("/v1/health")).await;
    get(&gw.url("/v2/health")).await;
    get(&gw.url("/v2/health")).await;
    // One family per metric, a series per API.
    let metrics = get(&gw.admin_url("/metrics")).await.text();
    for expected in [
        "gateway_requests_total{api=\"pets-v1\",operation=\"health\",method=\"GET\",status=\"2xx\"} 1",
        "gateway_requests_total{api=\"pets-v2\",operation=\"health\",method=\"GET\",status=\"2xx\"} 2",
        "gateway_build_info{api=\"pets-v1\"",
        "gateway_build_info{api=\"pets-v2\"",
    ] {
        assert!(metrics.contains(expected), "`{expected}` not in:\n{metrics}");
    }
    assert_eq!(
        metrics.matches("# TYPE gateway_requests counter").count(),
        1,
        "{metrics}"
    );
    let info = get(&gw.admin_url("/_gateway/info")).await.json();
    assert_eq!(info["gateway"], "public");
    assert_eq!(info["apis"]["pets-v2"]["spec_file"], "specs/pets-v2.yaml");
    assert_eq!(info["apis"]["pets-v1"]["spec_sha256"].as_str().map(str::len), Some(64));
    // `?api=NAME`: as a gateway of that API alone (what the live page reads for `/?api=NAME`).
    let one = get(&gw.admin_url("/_gateway/info?api=pets-v2")).await.json();
    assert_eq!(
        (one["api"].as_str(), one["api_version"].as_str()),
        (Some("pets-v2"), Some("2.0.0")),
        "{one}"
    );
    let v2_stats = get(&gw.admin_url("/_gateway/stats?api=pets-v2")).await.json();
    assert_eq!(v2_stats["api"], "pets-v2");
    assert!(v2_stats["operations"].is_array(), "{v2_stats}");
    let stats = get(&gw.admin_url("/_gateway/stats")).await.json();
    assert!(
        stats["apis"]["pets-v1"].is_object() && stats["apis"]["pets-v2"].is_object(),
        "{stats}"
    );
    assert_eq!(get(&gw.admin_url("/_gateway/ready")).await.status, StatusCode::OK);
    // The published specs, on the API's listener: a list, and each under its base path.
    let list = get(&gw.url("/_gateway/openapi.json")).await.json();
    assert_eq!(list["apis"][1]["url"], "/_gateway/openapi.json?api=pets-v2", "{list}");
    let v2 = get(&gw.url("/_gateway/openapi.json?api=pets-v2")).await.json();
    assert_eq!(v2["info"]["version"], "2.0.0");
    assert_eq!(v2["servers"], serde_json::json!([{ "url": "/v2" }]));
    assert!(v2.get("x-gateway").is_none(), "published without x-gateway");
    assert_problem(
        &get(&gw.url("/_gateway/openapi.json?api=pets-v3")).await,
        StatusCode::NOT_FOUND,
    );
}

#[tokio::test]
async fn a_key_with_a_plan_but_no_api_is_refused_at_start_up() {
    let keys = KeyFile::new("- { key: shared-key-00001, name: carol, plan: basic }\n");
    let result = Gateway::start(BIN, &["--api-keys".into(), keys.0.display().to_string()]);
    let err = result.err().expect("the gateway refuses the key file");
    assert!(
        err.contains("key #1 (carol) has a plan but no `api`: this gateway serves several APIs (pets-v1, pets-v2)"),
        "{err}"
    );
    assert!(!err.contains("shared-key-00001"), "a key never appears in a message");
}

#[tokio::test]
async fn an_upstream_override_names_one_api_or_every_api_declaring_it() {
    let upstream = Upstream::start().await.expect("upstream");
    let url = upstream.url();
    // A plain name overrides `pets` of both APIs.
    let gw = Gateway::start(BIN, &["--upstream".into(), format!("pets={url}/both")]).expect("starts");
    assert_eq!(get(&gw.url("/v1/pets")).await.json()["path"], "/both/pets");
    drop(gw);
    let err = Gateway::start(BIN, &["--upstream".into(), format!("cats={url}")])
        .err()
        .expect("an unknown upstream is refused");
    assert!(
        err.contains("unknown upstream `cats` (this gateway has: pets-v1/pets, pets-v2/pets)"),
        "{err}"
    );
}
