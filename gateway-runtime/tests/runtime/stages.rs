//! Deployment stages: picking one, its variables in upstream URLs, rewrite paths and templates (with the
//! environment override injected), its base path, and its cache and throttle settings.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use gateway_runtime::admin::AdminToken;
use gateway_runtime::cli;
use gateway_runtime::error::ErrorKind;
use gateway_runtime::http::{Method, Request};
use gateway_runtime::serving::server::{self, ServerConfig, ServerError};
use gateway_runtime::spec::{
    ApiSpec, BodySpec, CacheSettings, CacheSpec, DEFAULT_MAX_BODY, EditSpec, GatewayResponseSpec, Invalidate,
    OperationSpec, PathPart, RequestTransformSpec, ResponseSelector, ResponseTransformSpec, StageSpec,
    StageUpstreamSpec, TargetSpec, ThrottleScope, ThrottleSpec, TransformSpec, UpstreamSpec, UpstreamTarget,
};
use gateway_runtime::stage::{ResolvedStage, StageError};
use gateway_runtime::template::{Placeholder, TemplatePart};

use crate::support::*;

const DEV: usize = 0;
const PROD: usize = 1;
const TIGHT: usize = 2;
const BAD: usize = 3;
const EDGE: usize = 4;

const fn op(
    id: &'static str,
    template: &'static str,
    route: &'static str,
    path_params: &'static [&'static str],
    path: &'static [PathPart],
    cache: Option<&'static CacheSpec>,
    transform: Option<&'static TransformSpec>,
) -> OperationSpec {
    OperationSpec {
        id,
        method: Method::GET,
        template,
        route,
        path_params,
        path_suffixes: &[],
        validate: None,
        security: &[],
        cors: None,
        ip: None,
        compression: None,
        websocket: false,
        plans: &[],
        throttle: None,
        cache,
        responses: &[],
        body: BodySpec::limit(DEFAULT_MAX_BODY),
        schema_params: &[],
        transform,
        responses_check: None,
        target: TargetSpec::Upstream(UpstreamTarget { upstream: 0, path }),
    }
}

static CACHE: CacheSpec = CacheSpec {
    ttl: Duration::from_secs(60),
    key: &[],
    statuses: &[200],
    methods: &[Method::GET],
    invalidate: Invalidate::None,
};

static GREETING: TransformSpec = TransformSpec {
    request: RequestTransformSpec {
        headers: EditSpec {
            remove: &[],
            rename: &[],
            set: &[(
                "x-stage-greeting",
                &[TemplatePart::Value(Placeholder::Stage("greeting"))],
            )],
        },
        query: EditSpec::NONE,
        body: None,
    },
    response: ResponseTransformSpec {
        status: &[],
        headers: EditSpec {
            remove: &[],
            rename: &[],
            set: &[(
                "x-greeting",
                &[
                    TemplatePart::Value(Placeholder::Stage("greeting")),
                    TemplatePart::Literal("/"),
                    // Not a variable of any stage: renders empty.
                    TemplatePart::Value(Placeholder::Stage("undefined")),
                ],
            )],
        },
        body: None,
    },
};

const fn stage(
    name: &'static str,
    variables: &'static [(&'static str, &'static str)],
    base_path: &'static str,
    cache_enabled: bool,
    throttle: Option<ThrottleSpec>,
) -> StageSpec {
    StageSpec {
        name,
        variables,
        base_path,
        cache_enabled,
        throttle,
        cors_origins: None,
        upstreams: &[],
    }
}

/// The upstream URL is `{stage.petsUrl}/base`: the spec's value points nowhere, tests inject the test upstream's
/// address through `GATEWAY_STAGE_VAR_PETSURL`.
static STAGED: ApiSpec = ApiSpec {
    name: "staged",
    spec_file: "tests/staged.yaml",
    api_version: "1",
    upstreams: &[UpstreamSpec {
        name: "pets",
        urls: &["{stage.petsUrl}/base"],
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..UpstreamSpec::DEFAULT
    }],
    operations: &[
        op(
            "cached",
            "/cached",
            "/cached",
            &[],
            &[PathPart::Literal("/cached")],
            Some(&CACHE),
            None,
        ),
        op(
            "greet",
            "/greet",
            "/greet",
            &[],
            &[PathPart::Literal("/greet")],
            None,
            Some(&GREETING),
        ),
        op(
            "getPet",
            "/pets/{petId}",
            "/pets/{p0}",
            &["petId"],
            &[
                PathPart::Literal("/"),
                PathPart::Stage("prefix"),
                PathPart::Literal("/pets/"),
                PathPart::Param(0),
            ],
            None,
            None,
        ),
        // The test upstream answers `/delay` after 500 ms.
        op(
            "slow",
            "/slow",
            "/slow",
            &[],
            &[PathPart::Literal("/delay")],
            None,
            None,
        ),
    ],
    cache: CacheSettings {
        capacity: 1 << 20,
        max_entry: 1 << 16,
    },
    throttle: Some(ThrottleSpec {
        rate: 1000,
        burst: 1000,
        per: ThrottleScope::All,
    }),
    usage_plans: &[],
    hosts: &[],
    responses: &[GatewayResponseSpec {
        selector: ResponseSelector::Kind(ErrorKind::NotFound),
        status: None,
        headers: &[("x-stage", &[TemplatePart::Value(Placeholder::Stage("greeting"))])],
        content_type: "application/json",
        body: Some(&[
            TemplatePart::Literal("{\"greeting\":\""),
            TemplatePart::JsonString(Placeholder::Stage("greeting")),
            TemplatePart::Literal("\"}"),
        ]),
    }],
    schemes: &[],
    cors: None,
    schemas: &[],
    filters: &[],
    stages: &[
        stage(
            "dev",
            &[
                ("petsUrl", "http://127.0.0.1:9"),
                ("prefix", "v1"),
                ("greeting", "hello"),
            ],
            "",
            false,
            None,
        ),
        stage(
            "prod",
            &[
                ("petsUrl", "http://127.0.0.1:9"),
                ("prefix", "v2/deep"),
                ("greeting", "hi \"there\""),
            ],
            "/prod",
            true,
            None,
        ),
        stage(
            "tight",
            &[("petsUrl", "http://127.0.0.1:9"), ("prefix", "v1"), ("greeting", "hey")],
            "",
            true,
            Some(ThrottleSpec {
                rate: 1,
                burst: 1,
                per: ThrottleScope::All,
            }),
        ),
        stage(
            "bad",
            &[
                ("petsUrl", "http://127.0.0.1:9"),
                ("prefix", "v1?x=1"),
                ("greeting", "x"),
            ],
            "",
            true,
            None,
        ),
        StageSpec {
            upstreams: &[StageUpstreamSpec {
                upstream: 0,
                // Without the `/base` of the API-wide URL, and with a timeout shorter than `/delay` takes.
                urls: &["{stage.petsUrl}"],
                timeout: Some(Duration::from_millis(200)),
                connect_timeout: None,
            }],
            ..stage(
                "edge",
                &[("petsUrl", "http://127.0.0.1:9"), ("prefix", "v1"), ("greeting", "yo")],
                "",
                true,
                None,
            )
        },
    ],
    default_stage: Some(DEV),
    spec_sha256: "",
    published: None,
    stores: &[],
    shared: None,
};

/// An environment with `GATEWAY_STAGE_VAR_PETSURL` pointing at `upstream`, and `extra` besides.
fn env_for(upstream: SocketAddr, extra: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
    move |name| {
        if name == "GATEWAY_STAGE_VAR_PETSURL" {
            return Some(format!("http://{upstream}").into());
        }
        extra.iter().find(|(n, _)| *n == name).map(|(_, v)| OsString::from(*v))
    }
}

/// A gateway serving stage `index`, its variables from the injected environment (upstream address and `extra`).
async fn start_stage(index: usize, extra: &'static [(&'static str, &'static str)]) -> Gateway {
    start_gateway_for(&STAGED, |config, upstream| {
        config.upstream_overrides = Vec::new();
        let stage = ResolvedStage::resolve(&STAGED, index, &env_for(upstream, extra)).expect("stage resolves");
        config.stage = Some(stage);
    })
    .await
}

#[tokio::test]
async fn variables_fill_the_upstream_url_and_the_rewrite_path() {
    let gw = start_stage(DEV, &[]).await;
    let (parts, body) = get(&gw.url("/pets/5")).await;
    assert_eq!(parts.status, 200, "{}", String::from_utf8_lossy(&body));
    // `{stage.petsUrl}/base` from the environment, then `/{stage.prefix}/pets/5`.
    assert_eq!(json(&body)["path"], "/base/v1/pets/5");

    let gw = start_stage(PROD, &[]).await;
    let (parts, body) = get(&gw.url("/prod/pets/7")).await;
    assert_eq!(parts.status, 200);
    // The value is inserted as it is: its `/` stays a separator.
    assert_eq!(json(&body)["path"], "/base/v2/deep/pets/7");
}

#[tokio::test]
async fn a_stage_overrides_an_upstreams_url_and_timeout() {
    // The API-wide settings: `{stage.petsUrl}/base`, 5 s.
    let gw = start_stage(DEV, &[]).await;
    let (parts, body) = get(&gw.url("/greet")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(json(&body)["path"], "/base/greet");
    let (parts, _) = get(&gw.url("/slow")).await;
    assert_ne!(parts.status, 504, "the API-wide timeout is 5 s");

    // The stage's: `{stage.petsUrl}` (its variable still filled), 200 ms.
    let gw = start_stage(EDGE, &[]).await;
    let (parts, body) = get(&gw.url("/greet")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(json(&body)["path"], "/greet");
    let (parts, body) = get(&gw.url("/slow")).await;
    assert_eq!(parts.status, 504, "{}", String::from_utf8_lossy(&body));
    assert_eq!(json(&body)["type"], "urn:gateway:error:upstream-timeout");
}

#[tokio::test]
async fn the_environment_overrides_the_spec_and_an_upstream_override_replaces_the_whole_url() {
    // The spec's `petsUrl` points at a closed port: only the injected value reaches the test upstream.
    let gw = start_gateway_for(&STAGED, |config, _| {
        config.upstream_overrides = Vec::new();
        config.stage = Some(ResolvedStage::resolve(&STAGED, DEV, &|_| None).expect("stage"));
    })
    .await;
    let (parts, _) = get(&gw.url("/pets/5")).await;
    assert_eq!(parts.status, 502);

    let gw = start_stage(DEV, &[("GATEWAY_STAGE_VAR_GREETING", "bonjour")]).await;
    let (parts, body) = get(&gw.url("/greet")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-greeting"], "bonjour/");
    assert_eq!(json(&body)["headers"]["x-stage-greeting"][0], "bonjour");

    // `--upstream` wins over the stage's URL, base path and all.
    let gw = start_gateway_for(&STAGED, |config, upstream| {
        config.upstream_overrides = vec![format!("pets=http://{upstream}/other").parse().expect("override")];
    })
    .await;
    let (parts, body) = get(&gw.url("/pets/5")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(json(&body)["path"], "/other/v1/pets/5");
}

#[tokio::test]
async fn without_a_stage_in_the_config_the_default_is_served() {
    let gw = start_gateway_for(&STAGED, |config, upstream| {
        config.upstream_overrides = vec![format!("pets=http://{upstream}").parse().expect("override")];
    })
    .await;
    let (parts, body) = get(&gw.url("/greet")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-greeting"], "hello/");
    assert_eq!(json(&body)["path"], "/greet");
}

#[tokio::test]
async fn gateway_responses_render_stage_variables() {
    let gw = start_stage(DEV, &[("GATEWAY_STAGE_VAR_GREETING", "hello \"you\"")]).await;
    let (parts, body) = get(&gw.url("/nowhere")).await;
    assert_eq!(parts.status, 404);
    assert_eq!(parts.headers["x-stage"], "hello \"you\"");
    // Inside a JSON string the value is escaped.
    assert_eq!(json(&body), serde_json::json!({ "greeting": "hello \"you\"" }));
}

#[tokio::test]
async fn operations_are_served_under_the_base_path_and_admin_on_its_own_listener() {
    let gw = start_gateway_for(&STAGED, |config, upstream| {
        config.upstream_overrides = Vec::new();
        config.admin_token = AdminToken::new("admin-secret");
        config.stage = Some(ResolvedStage::resolve(&STAGED, PROD, &env_for(upstream, &[])).expect("stage"));
    })
    .await;
    let (parts, body) = get(&gw.url("/prod/greet")).await;
    assert_eq!(parts.status, 200);
    // The base path is the gateway's: the upstream sees the operation's own path.
    assert_eq!(json(&body)["path"], "/base/greet");
    // Outside the base path nothing is served: the 404 is the gateway's own, rendered for the stage.
    for path in ["/greet", "/pets/5", "/prod", "/prod/nowhere", "/production/greet"] {
        let (parts, body) = get(&gw.url(path)).await;
        assert_eq!(parts.status, 404, "{path}");
        assert_eq!(json(&body)["greeting"], "hi \"there\"", "{path}");
    }
    // A declared path under the base path with an undeclared method: 405 with the route's `Allow`.
    let request = Request::post(gw.url("/prod/pets/5")).body(empty()).expect("request");
    let (parts, _) = send(request).await;
    assert_eq!(parts.status, 405);
    assert_eq!(parts.headers["allow"], "GET, HEAD");

    let admin = |url: String| {
        Request::get(url)
            .header("authorization", "Bearer admin-secret")
            .body(empty())
            .expect("request")
    };
    let (parts, _) = send(admin(gw.admin_url("/_gateway/cache/stats"))).await;
    assert_eq!(parts.status, 200);
    // Not on the API's listener, with or without the base path.
    for path in ["/_gateway/cache/stats", "/prod/_gateway/cache/stats"] {
        let (parts, _) = send(admin(gw.url(path))).await;
        assert_eq!(parts.status, 404, "{path}");
    }
}

#[tokio::test]
async fn a_stage_can_turn_the_cache_off() {
    let mut gw = start_stage(DEV, &[]).await;
    for _ in 0..2 {
        let (parts, _) = get(&gw.url("/cached")).await;
        assert_eq!(parts.status, 200);
        // No cache in this stage: the operation is served as if it had no cache policy.
        assert!(!parts.headers.contains_key("x-cache"), "{:?}", parts.headers);
        assert_eq!(
            bounded("arrival", gw.upstream.arrivals.recv()).await.as_deref(),
            Some("/base/cached")
        );
    }

    let gw = start_stage(PROD, &[]).await;
    let (first, _) = get(&gw.url("/prod/cached")).await;
    assert_eq!(first.headers["x-cache"], "MISS");
    let (again, _) = get(&gw.url("/prod/cached")).await;
    assert_eq!(again.headers["x-cache"], "HIT");
}

#[tokio::test]
async fn a_stage_throttle_replaces_the_api_wide_one() {
    // The API-wide bucket admits a burst of 1000.
    let gw = start_stage(DEV, &[]).await;
    for _ in 0..3 {
        assert_eq!(get(&gw.url("/greet")).await.0.status, 200);
    }
    // The stage's admits one.
    let gw = start_stage(TIGHT, &[]).await;
    assert_eq!(get(&gw.url("/greet")).await.0.status, 200);
    let (parts, body) = get(&gw.url("/greet")).await;
    problem(&parts, &body, 429);
    assert!(parts.headers.contains_key("retry-after"));
}

#[test]
fn a_path_value_that_cannot_go_into_a_path_is_refused_at_start_up() {
    let err = ResolvedStage::resolve(&STAGED, BAD, &|_| None).expect_err("`?` in a path value");
    assert!(
        matches!(err, StageError::BadPathValue { variable: "prefix", .. }),
        "{err}"
    );
    assert!(!err.to_string().contains("v1?x=1"), "values are never shown: {err}");
    // From the environment too, with whitespace or control characters.
    for bad in ["a b", "a\tb", "a#b", "a\u{7f}"] {
        let env = move |name: &str| (name == "GATEWAY_STAGE_VAR_PREFIX").then(|| OsString::from(bad));
        assert!(ResolvedStage::resolve(&STAGED, DEV, &env).is_err(), "{bad:?}");
    }
}

#[test]
fn a_stage_of_another_api_is_refused() {
    let stage = ResolvedStage::resolve(&STAGED, PROD, &|_| None).expect("stage");
    let config = ServerConfig {
        stage: Some(stage),
        ..ServerConfig::new("127.0.0.1:0".parse().expect("addr"))
    };
    let err = server::start(&API, config).expect_err("the test API has no stages");
    assert!(matches!(err, ServerError::Stage(_)), "{err}");
}

fn run_cli(args: &[&str]) -> ExitCode {
    quiet_logs();
    let args: Vec<String> = std::iter::once("staged")
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    // Every case here fails before serving, so the shutdown future is never awaited.
    cli::run_with(&STAGED, args, &mut std::io::sink(), std::future::pending())
}

#[test]
fn cli_refuses_an_unknown_stage_and_a_bad_value() {
    assert_eq!(
        run_cli(&["--stage", "qa", "--listen", "127.0.0.1:0"]),
        ExitCode::from(2)
    );
    // Known stage, but its path value is refused: a start-up failure.
    assert_eq!(
        run_cli(&["--stage", "bad", "--listen", "127.0.0.1:0"]),
        ExitCode::FAILURE
    );
}
