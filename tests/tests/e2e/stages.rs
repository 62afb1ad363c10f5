//! Stages, against the generated `petstore-gateway` (`x-gateway.stages` in `specs/petstore.yaml`: `dev`, the
//! default, and `prod` under `/prod` with its own bucket and no cache).

use bytes::Bytes;
use gateway_tests::client::{get, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::BIN;

/// The petstore with `extra` flags and environment, every upstream pointed at `upstream` but `pets` (whose URL is
/// the stage's `petsUrl` and `petsUrlB`, filled here from the environment, both the test upstream).
fn petstore(upstream: &Upstream, extra: &[&str], env: &[(&str, &str)]) -> Result<Gateway, String> {
    let url = upstream.url();
    let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    args.extend([
        "--upstream".into(),
        format!("reports={url}/reporting"),
        "--upstream".into(),
        format!("default={url}/api"),
    ]);
    Gateway::start_with_env(BIN, &args, env)
}

#[tokio::test]
async fn the_default_stage_serves_its_variables_and_the_environment_overrides_them() {
    let upstream = Upstream::start().await.expect("upstream");
    let pets = upstream.url();
    let gw = petstore(
        &upstream,
        &[],
        &[
            ("GATEWAY_STAGE_VAR_PETSURL", &pets),
            ("GATEWAY_STAGE_VAR_PETSURLB", &pets),
        ],
    )
    .expect("starts in dev");
    let health = get(&gw.url("/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.header("x-greeting"), Some("hello from dev"));
    // `pets` is `{stage.petsUrl}`, here the test upstream through the environment.
    let pet = get(&gw.url("/pets/42")).await;
    assert_eq!(pet.status, StatusCode::OK, "{}", pet.text());
    assert_eq!(pet.json()["path"], "/v1/pets/42");

    let overridden = petstore(
        &upstream,
        &[],
        &[
            ("GATEWAY_STAGE_VAR_PETSURL", &pets),
            ("GATEWAY_STAGE_VAR_PETSURLB", &pets),
            ("GATEWAY_STAGE_VAR_GREETING", "overridden"),
        ],
    )
    .expect("starts");
    assert_eq!(
        get(&overridden.url("/health")).await.header("x-greeting"),
        Some("overridden")
    );
}

#[tokio::test]
async fn a_stage_picked_by_flag_has_its_base_path_bucket_and_no_cache() {
    let upstream = Upstream::start().await.expect("upstream");
    let pets = upstream.url();
    let gw = petstore(
        &upstream,
        &["--stage", "prod"],
        &[
            ("GATEWAY_STAGE_VAR_PETSURL", &pets),
            ("GATEWAY_STAGE_VAR_PETSURLB", &pets),
        ],
    )
    .expect("starts in prod");
    let health = get(&gw.url("/prod/health")).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.header("x-greeting"), Some("hello"));
    assert_eq!(
        get(&gw.url("/health")).await.status,
        StatusCode::NOT_FOUND,
        "routes are under /prod"
    );
    // `getPet` is cached in dev; prod turns the cache off.
    for _ in 0..2 {
        let pet = get(&gw.url("/prod/pets/42?verbose=true")).await;
        assert_eq!(pet.status, StatusCode::OK, "{}", pet.text());
        assert_ne!(pet.header("x-cache"), Some("HIT"));
    }
    assert_eq!(upstream.calls(), 2);
    // The same by environment.
    let by_env = petstore(
        &upstream,
        &[],
        &[
            ("GATEWAY_STAGE", "prod"),
            ("GATEWAY_STAGE_VAR_PETSURL", &pets),
            ("GATEWAY_STAGE_VAR_PETSURLB", &pets),
        ],
    )
    .expect("starts in prod");
    assert_eq!(get(&by_env.url("/prod/health")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unknown_stage_is_refused_with_the_valid_names() {
    let upstream = Upstream::start().await.expect("upstream");
    let err = match petstore(&upstream, &["--stage", "staging"], &[]) {
        Ok(gw) => panic!("started with an unknown stage on {}", gw.addr),
        Err(err) => err,
    };
    assert!(
        err.contains("staging") && err.contains("dev") && err.contains("prod"),
        "{err}"
    );
}

#[tokio::test]
async fn the_dev_cache_still_works_where_prod_turns_it_off() {
    let upstream = Upstream::start().await.expect("upstream");
    let pets = upstream.url();
    let gw = petstore(
        &upstream,
        &[],
        &[
            ("GATEWAY_STAGE_VAR_PETSURL", &pets),
            ("GATEWAY_STAGE_VAR_PETSURLB", &pets),
        ],
    )
    .expect("starts in dev");
    let first = send(Method::GET, &gw.url("/pets/7?verbose=true"), &[], Bytes::new())
        .await
        .expect("GET");
    assert_eq!(first.header("x-cache"), Some("MISS"));
    let second = send(Method::GET, &gw.url("/pets/7?verbose=true"), &[], Bytes::new())
        .await
        .expect("GET");
    assert_eq!(second.header("x-cache"), Some("HIT"));
}

#[tokio::test]
async fn a_stage_replaces_the_origins_every_cors_policy_admits() {
    let upstream = Upstream::start().await.expect("upstream");
    let pets = upstream.url();
    let env = [
        ("GATEWAY_STAGE_VAR_PETSURL", pets.as_str()),
        ("GATEWAY_STAGE_VAR_PETSURLB", pets.as_str()),
    ];
    let preflight = |gw: &Gateway, path: &str, origin: &'static str| {
        let url = gw.url(path);
        async move {
            send(
                Method::OPTIONS,
                &url,
                &[("origin", origin), ("access-control-request-method", "GET")],
                Bytes::new(),
            )
            .await
            .expect("answered")
        }
    };
    // dev: the policy's own origins, a wildcard among them.
    let dev = petstore(&upstream, &[], &env).expect("starts in dev");
    let reply = preflight(&dev, "/pets/42", "https://shop.petstore.example").await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://shop.petstore.example")
    );
    // prod: only the production app.
    let prod = petstore(&upstream, &["--stage", "prod"], &env).expect("starts in prod");
    let reply = preflight(&prod, "/prod/pets/42", "https://shop.petstore.example").await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        None,
        "not admitted in prod"
    );
    let reply = preflight(&prod, "/prod/pets/42", "https://app.example.com").await;
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    // The rest of the policy is the operation's: credentials and the preflight's lifetime.
    assert_eq!(reply.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(reply.header("access-control-max-age"), Some("600"));
}
