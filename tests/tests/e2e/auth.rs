//! Who may call, against the generated `store-gateway` (and the petstore's demo token): JWTs from a JWKS URL, from
//! OpenID Connect discovery and from an HMAC secret, API keys, an external authorizer, and OpenAPI's OR/AND
//! semantics between them. Tokens are minted here with the test keys of `tests/fixtures/jwt/`; the identity
//! provider and the authorizer are a real server on 127.0.0.1 ([`AuthServer`]).

use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_tests::auth::{AuthServer, DEFAULT_ISSUER};
use gateway_tests::client::{Reply, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::tokens::{Token, jwks_rotated};
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};
use serde_json::json;

use crate::support::{KeyFile, assert_problem};

const KEYS: &str = "\
- { key: free-key-alice-0001, name: alice, plan: free }
- { key: pro-key-carol-0003, name: carol, plan: pro }
";
const ALICE_KEY: &str = "free-key-alice-0001";
const SECRET: &str = crate::support::STORE_SECRET;

struct Store {
    upstream: Upstream,
    auth: AuthServer,
    gateway: Gateway,
    _keys: KeyFile,
}

async fn store() -> Store {
    store_with(&[]).await
}

/// The store gateway with its identity provider and authorizer pointed at one [`AuthServer`].
async fn store_with(extra: &[String]) -> Store {
    let upstream = Upstream::start().await.expect("upstream");
    let auth = AuthServer::start().await.expect("auth server");
    let keys = KeyFile::new(KEYS);
    let mut args = vec![
        "--upstream".into(),
        format!("default={}/store", upstream.url()),
        "--upstream".into(),
        format!("auth={}", auth.url()),
        "--jwks-url".into(),
        format!("bearer={}", auth.jwks_url()),
        "--oidc-url".into(),
        format!("oidc={}", auth.discovery_url()),
        "--api-keys".into(),
        keys.0.display().to_string(),
    ];
    args.extend(extra.iter().cloned());
    let gateway =
        Gateway::start_with_env("store-gateway", &args, &[("STORE_JWT_SECRET", SECRET)]).expect("store gateway starts");
    Store {
        upstream,
        auth,
        gateway,
        _keys: keys,
    }
}

/// A token the store's `bearer` scheme accepts for `getAccount`.
fn user(kid: &str) -> Token {
    let token = if kid.starts_with("ec") {
        Token::es256(kid)
    } else {
        Token::rs256(kid)
    };
    token
        .issuer(DEFAULT_ISSUER)
        .audience("store")
        .subject("user-alice")
        .scope("account:read profile:write")
        .claim("tenant_id", json!("tenant-42"))
}

async fn call(gw: &Gateway, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(method.clone(), &gw.url(path), headers, Bytes::new())
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

async fn with_token(gw: &Gateway, path: &str, token: &str) -> Reply {
    call(gw, Method::GET, path, &[("authorization", &format!("Bearer {token}"))]).await
}

/// The store renders every 5xx itself (`DEFAULT_5XX`): status 503 and the kind in `error`.
fn assert_unavailable(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{}", reply.text());
    assert_eq!(reply.json()["error"], "SERVICE_UNAVAILABLE");
}

fn challenge(reply: &Reply) -> &str {
    reply.header("www-authenticate").unwrap_or("")
}

#[tokio::test]
async fn rs256_and_es256_tokens_are_admitted_and_their_claims_reach_the_upstream_as_headers() {
    let s = store().await;
    for kid in ["rsa-1", "ec-1"] {
        let reply = call(
            &s.gateway,
            Method::GET,
            "/account",
            &[
                ("authorization", &format!("Bearer {}", user(kid).sign())),
                // A client cannot vouch for itself: the gateway's claim headers replace these.
                ("x-user-id", "admin"),
                ("x-tenant", "someone-else"),
            ],
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK, "{kid}: {}", reply.text());
        let seen = reply.json();
        let headers = &seen["headers"];
        assert_eq!(headers["x-user-id"][0], "user-alice", "{kid}: {seen}");
        assert_eq!(
            headers["x-tenant"],
            json!(["tenant-42"]),
            "one value: the client's is gone"
        );
        // The verified token is the gateway's business: it is not forwarded.
        assert!(headers.get("authorization").is_none(), "{seen}");
    }
}

#[tokio::test]
async fn no_credential_is_401_with_a_bearer_challenge_and_never_reaches_the_upstream() {
    let s = store().await;
    let reply = call(&s.gateway, Method::GET, "/account", &[]).await;
    let problem = assert_problem(&reply, StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&reply), "Bearer realm=\"store\"");
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("a bearer token") && detail.contains("x-api-key"),
        "{detail}"
    );
    assert_eq!(s.upstream.calls(), 0);
}

#[tokio::test]
async fn invalid_tokens_are_401_invalid_token_with_the_reason() {
    let s = store().await;
    let cases = [
        ("expired", user("rsa-1").expires_in(-120).sign(), "expired"),
        (
            "not yet valid",
            user("rsa-1").not_before_in(120).sign(),
            "not valid yet",
        ),
        (
            "wrong issuer",
            user("rsa-1").issuer("https://evil.example/").sign(),
            "issuer",
        ),
        ("wrong audience", user("rsa-1").audience("billing").sign(), "audience"),
        (
            "wrong signature",
            Token::impostor("rsa-2", "rsa-1")
                .issuer(DEFAULT_ISSUER)
                .audience("store")
                .scope("account:read")
                .sign(),
            "signature",
        ),
        ("alg none", user("rsa-1").alg_none(), "algorithm"),
        (
            "HS256 signed with the RSA public key",
            Token::alg_confusion("rsa-1")
                .issuer(DEFAULT_ISSUER)
                .audience("store")
                .scope("account:read")
                .sign(),
            "algorithm",
        ),
        ("not a JWT", String::from("not-a-jwt"), "malformed"),
    ];
    for (case, token, reason) in cases {
        let reply = with_token(&s.gateway, "/account", &token).await;
        let problem = assert_problem(&reply, StatusCode::UNAUTHORIZED);
        let www = challenge(&reply);
        assert!(
            www.starts_with("Bearer realm=\"store\", error=\"invalid_token\""),
            "{case}: {www}"
        );
        assert!(www.contains(reason), "{case}: {www}");
        assert!(
            problem["detail"].as_str().unwrap_or_default().contains(reason),
            "{case}: {problem}"
        );
    }
    assert_eq!(s.upstream.calls(), 0, "no invalid token may reach the upstream");
}

#[tokio::test]
async fn the_leeway_admits_a_token_that_expired_within_it() {
    let s = store().await;
    // `leeway: 5s` on the store's bearer scheme.
    let just = with_token(&s.gateway, "/account", &user("rsa-1").expires_in(-2).sign()).await;
    assert_eq!(just.status, StatusCode::OK, "{}", just.text());
    let late = with_token(&s.gateway, "/account", &user("rsa-1").expires_in(-60).sign()).await;
    assert_eq!(late.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_valid_token_lacking_the_scope_is_403_insufficient_scope() {
    let s = store().await;
    let reply = with_token(&s.gateway, "/account", &user("rsa-1").scope("orders:read").sign()).await;
    let problem = assert_problem(&reply, StatusCode::FORBIDDEN);
    let www = challenge(&reply);
    assert!(www.contains("error=\"insufficient_scope\""), "{www}");
    assert!(www.contains("scope=\"account:read\""), "{www}");
    assert!(problem["detail"].as_str().unwrap_or_default().contains("account:read"));
    // Scopes also come as `scp`, an array.
    let scp = user("rsa-1")
        .without("scope")
        .claim("scp", json!(["account:read"]))
        .sign();
    assert_eq!(with_token(&s.gateway, "/account", &scp).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_kid_is_refused_until_the_jwks_rotates_in_the_new_key() {
    let s = store().await;
    let rotated_in = user("rsa-2").sign();
    let before = with_token(&s.gateway, "/account", &rotated_in).await;
    assert_problem(&before, StatusCode::UNAUTHORIZED);
    assert!(
        challenge(&before).contains("signing key is unknown"),
        "{}",
        challenge(&before)
    );
    // The provider rotates; the next unknown kid makes the gateway fetch again (at most once per 2 s).
    s.auth.set_jwks(jwks_rotated());
    let started = Instant::now();
    let mut after = with_token(&s.gateway, "/account", &rotated_in).await;
    while after.status != StatusCode::OK && started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = with_token(&s.gateway, "/account", &rotated_in).await;
    }
    assert_eq!(after.status, StatusCode::OK, "{}", after.text());
    // The keys of before still work.
    assert_eq!(
        with_token(&s.gateway, "/account", &user("rsa-1").sign()).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn hs256_tokens_verify_with_the_secret_from_the_environment() {
    let s = store().await;
    let good = Token::hs256(SECRET).issuer("internal").sign();
    assert_eq!(
        with_token(&s.gateway, "/internal/jobs", &good).await.status,
        StatusCode::OK
    );
    let forged = Token::hs256("another-secret-entirely").issuer("internal").sign();
    assert_problem(
        &with_token(&s.gateway, "/internal/jobs", &forged).await,
        StatusCode::UNAUTHORIZED,
    );
    // An RS256 token is not one the HMAC scheme takes.
    let rsa = user("rsa-1").issuer("internal").sign();
    assert_problem(
        &with_token(&s.gateway, "/internal/jobs", &rsa).await,
        StatusCode::UNAUTHORIZED,
    );
}

#[tokio::test]
async fn a_missing_secret_is_a_start_up_error_naming_the_variable() {
    let err = match Gateway::start_with_env("store-gateway", &[], &[("STORE_JWT_SECRET", "")]) {
        Ok(g) => panic!("started without its secret on {}", g.addr),
        Err(err) => err,
    };
    assert!(err.contains("STORE_JWT_SECRET"), "{err}");
}

#[tokio::test]
async fn openid_connect_discovery_supplies_the_issuer_and_the_keys() {
    let s = store().await;
    let token = user("rsa-1").sign();
    let reply = with_token(&s.gateway, "/me", &token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(s.auth.discovery_calls() >= 1);
    // `forward_authorization: true` on the oidc scheme keeps the token for the upstream.
    assert_eq!(reply.json()["headers"]["authorization"][0], format!("Bearer {token}"));
    let other = user("rsa-1").issuer("https://other.example/").sign();
    assert_problem(&with_token(&s.gateway, "/me", &other).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn alternatives_are_or_and_the_most_specific_refusal_wins() {
    let s = store().await;
    let gw = &s.gateway;
    // `getAccount`: a token with `account:read`, or an API key.
    let key_only = call(gw, Method::GET, "/account", &[("x-api-key", ALICE_KEY)]).await;
    assert_eq!(key_only.status, StatusCode::OK, "an API key alone is one alternative");
    let token_only = with_token(gw, "/account", &user("ec-1").sign()).await;
    assert_eq!(token_only.status, StatusCode::OK, "a token alone is the other");
    let bad_key = call(gw, Method::GET, "/account", &[("x-api-key", "no-such-key-000")]).await;
    assert_eq!(
        assert_problem(&bad_key, StatusCode::UNAUTHORIZED)["detail"],
        "the API key is not valid"
    );
    // A valid token lacking the scope, with a wrong key: the token's 403 is more specific than the key's 401.
    let lacking = user("rsa-1").scope("orders:read").sign();
    let both = call(
        gw,
        Method::GET,
        "/account",
        &[
            ("x-api-key", "no-such-key-000"),
            ("authorization", &format!("Bearer {lacking}")),
        ],
    )
    .await;
    assert_problem(&both, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn schemes_of_one_requirement_must_all_pass() {
    let s = store().await;
    let gw = &s.gateway;
    let token = format!("Bearer {}", user("rsa-1").sign());
    let put = |headers: Vec<(&'static str, String)>| async move {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        call(gw, Method::PUT, "/account/profile", &headers).await
    };
    assert_problem(
        &put(vec![("x-api-key", ALICE_KEY.into())]).await,
        StatusCode::UNAUTHORIZED,
    );
    assert_problem(
        &put(vec![("authorization", token.clone())]).await,
        StatusCode::UNAUTHORIZED,
    );
    let both = put(vec![("x-api-key", ALICE_KEY.into()), ("authorization", token)]).await;
    assert_eq!(both.status, StatusCode::OK, "{}", both.text());
    let unscoped = format!("Bearer {}", user("rsa-1").scope("account:read").sign());
    assert_problem(
        &put(vec![("x-api-key", ALICE_KEY.into()), ("authorization", unscoped)]).await,
        StatusCode::FORBIDDEN,
    );
}

#[tokio::test]
async fn the_cache_keys_answers_by_the_verified_subject() {
    let s = store().await;
    let gw = &s.gateway;
    let alice = user("rsa-1").sign();
    let bob = user("rsa-1").subject("user-bob").sign();
    let first = with_token(gw, "/account/summary", &alice).await;
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(first.header("x-summary-for"), Some("user-alice"));
    let again = with_token(gw, "/account/summary", &user("ec-1").sign()).await;
    assert_eq!(
        again.header("x-cache"),
        Some("HIT"),
        "another token of the same subject"
    );
    let other = with_token(gw, "/account/summary", &bob).await;
    assert_eq!(
        other.header("x-cache"),
        Some("MISS"),
        "one subject never sees another's answer"
    );
    assert_eq!(other.header("x-summary-for"), Some("user-bob"));
    // A token without the subject claim is served, never cached under an empty subject.
    let anonymous = with_token(gw, "/account/summary", &user("rsa-1").without("sub").sign()).await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert_ne!(anonymous.header("x-cache"), Some("HIT"));
    assert_eq!(s.upstream.calls(), 3);
}

#[tokio::test]
async fn the_authorizer_admits_denies_and_forwards_only_its_listed_headers() {
    let s = store().await;
    let gw = &s.gateway;
    let admitted = call(
        gw,
        Method::GET,
        "/partner/feed?page=2",
        &[("x-partner-token", "allow-p1"), ("x-partner-id", "spoofed")],
    )
    .await;
    assert_eq!(admitted.status, StatusCode::OK, "{}", admitted.text());
    let seen = admitted.json();
    assert_eq!(
        seen["headers"]["x-partner-id"],
        json!(["p1"]),
        "the client's copy is gone: {seen}"
    );
    assert!(seen["headers"].get("x-not-forwarded").is_none(), "{seen}");
    assert!(
        seen["headers"].get("x-partner-token").is_none(),
        "the credential is stripped: {seen}"
    );
    let asked = s.auth.last_check().expect("the authorizer was asked");
    assert_eq!(asked.get("x-partner-token").map(String::as_str), Some("allow-p1"));
    assert_eq!(asked.get("x-forwarded-method").map(String::as_str), Some("GET"));
    assert_eq!(
        asked.get("x-forwarded-uri").map(String::as_str),
        Some("/partner/feed?page=2")
    );
    assert_eq!(asked.get("x-forwarded-for").map(String::as_str), Some("127.0.0.1"));
    let denied = call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "deny-p2")]).await;
    assert_problem(&denied, StatusCode::FORBIDDEN);
    let unknown = call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "who-knows")]).await;
    assert_problem(&unknown, StatusCode::UNAUTHORIZED);
    assert_eq!(s.upstream.calls(), 1);
}

#[tokio::test]
async fn authorizer_answers_are_cached_per_credential_and_concurrent_first_calls_make_one() {
    let s = store().await;
    let gw = &s.gateway;
    let requests = (0..16).map(|_| call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "allow-many")]));
    let replies = futures_join_all(requests).await;
    assert!(replies.iter().all(|r| r.status == StatusCode::OK));
    for _ in 0..4 {
        assert_eq!(
            call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "allow-many")])
                .await
                .status,
            StatusCode::OK
        );
    }
    assert_eq!(
        s.auth.check_calls(),
        1,
        "one call for twenty requests with one credential"
    );
    // Refusals are cached too; another credential is asked about separately.
    for _ in 0..3 {
        call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "deny-once")]).await;
    }
    assert_eq!(s.auth.check_calls(), 2);
}

#[tokio::test]
async fn an_authorizer_that_fails_or_is_slow_is_503_and_never_admits() {
    let s = store().await;
    let gw = &s.gateway;
    s.auth.set_check_down(true);
    let down = call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "allow-down")]).await;
    assert_unavailable(&down);
    // Failures are not cached: once it is back, the same credential is admitted.
    s.auth.set_check_down(false);
    let back = call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "allow-down")]).await;
    assert_eq!(back.status, StatusCode::OK);
    // Slower than the `auth` upstream's 2 s timeout.
    let started = Instant::now();
    let slow = call(gw, Method::GET, "/partner/feed", &[("x-partner-token", "slow-p3")]).await;
    assert_unavailable(&slow);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.upstream.calls(), 1, "only the admitted request reached the upstream");

    // No authorizer listening at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let port = closed.local_addr().expect("addr").port();
    drop(closed);
    let gone = store_with(&["--upstream".into(), format!("auth=http://127.0.0.1:{port}")]).await;
    let reply = call(
        &gone.gateway,
        Method::GET,
        "/partner/feed",
        &[("x-partner-token", "allow-x")],
    )
    .await;
    assert_unavailable(&reply);
    assert_eq!(gone.upstream.calls(), 0);
}

#[tokio::test]
async fn tokens_claims_keys_and_secrets_never_appear_in_the_logs_even_at_trace() {
    let mut s = store_with(&[]).await;
    let token = user("rsa-1").sign();
    // The gateway above logs at info; start one that logs everything.
    let upstream = Upstream::start().await.expect("upstream");
    let mut gateway = Gateway::start_with_env(
        "store-gateway",
        &[
            "--upstream".into(),
            format!("default={}/store", upstream.url()),
            "--upstream".into(),
            format!("auth={}", s.auth.url()),
            "--jwks-url".into(),
            format!("bearer={}", s.auth.jwks_url()),
            "--oidc-url".into(),
            format!("oidc={}", s.auth.discovery_url()),
        ],
        &[("STORE_JWT_SECRET", SECRET), ("GATEWAY_LOG", "trace")],
    )
    .expect("gateway starts");
    assert_eq!(with_token(&gateway, "/account", &token).await.status, StatusCode::OK);
    assert_eq!(
        with_token(&gateway, "/account", &user("rsa-1").audience("x").sign())
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    call(
        &gateway,
        Method::GET,
        "/partner/feed",
        &[("x-partner-token", "allow-secret-partner")],
    )
    .await;
    let internal = Token::hs256(SECRET).issuer("internal").sign();
    assert_eq!(
        with_token(&gateway, "/internal/jobs", &internal).await.status,
        StatusCode::OK
    );
    let unknown_key = call(
        &gateway,
        Method::GET,
        "/account",
        &[("x-api-key", "an-unknown-key-0042")],
    )
    .await;
    assert_eq!(unknown_key.status, StatusCode::UNAUTHORIZED);
    gateway.terminate(Duration::from_secs(10));
    let log = gateway.take_stderr();
    assert!(log.contains("request"), "the requests were logged: {log}");
    for jwt in [&token, &internal] {
        for (i, part) in jwt.split('.').enumerate() {
            assert!(!log.contains(part), "part {i} of a token is in the log");
        }
    }
    assert!(
        !log.contains("tenant-42") && !log.contains("user-alice"),
        "a claim is in the log"
    );
    assert!(
        !log.contains("an-unknown-key-0042"),
        "a presented API key is in the log"
    );
    assert!(
        !log.contains("allow-secret-partner"),
        "an authorizer credential is in the log"
    );
    assert!(!log.contains(SECRET), "the HMAC secret is in the log");
    s.gateway.terminate(Duration::from_secs(10));
}

#[tokio::test]
async fn the_petstore_demo_token_adopts_a_pet() {
    let (upstream, gateway) = crate::support::setup().await;
    let token = Token::demo()
        .issuer(DEFAULT_ISSUER)
        .audience("petstore")
        .subject("demo-user")
        .scope("pets:write")
        .sign();
    let reply = send(
        Method::POST,
        &gateway.url("/pets/7/adopt"),
        &[("authorization", &format!("Bearer {token}"))],
        Bytes::new(),
    )
    .await
    .expect("POST");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let seen = reply.json();
    assert_eq!(seen["path"], "/v1/pets/7/adoption");
    assert_eq!(seen["headers"]["x-user-id"][0], "demo-user");
    let unscoped = Token::demo()
        .issuer(DEFAULT_ISSUER)
        .audience("petstore")
        .scope("pets:read")
        .sign();
    let refused = send(
        Method::POST,
        &gateway.url("/pets/7/adopt"),
        &[("authorization", &format!("Bearer {unscoped}"))],
        Bytes::new(),
    )
    .await
    .expect("POST");
    assert_problem(&refused, StatusCode::FORBIDDEN);
    assert_eq!(upstream.calls(), 1);
}

/// Runs every future concurrently on this task and collects the results in order.
async fn futures_join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futures {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}
