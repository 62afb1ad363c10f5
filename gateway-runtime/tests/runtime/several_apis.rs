//! A gateway of several APIs, in process: each API's routes under its stage's base path, then its own; the `404` of
//! the API whose prefix is the longest; each API's stage in its requests' context; overlapping routes refused at
//! start-up.

use std::time::Duration;

use gateway_runtime::error::ErrorKind;
use gateway_runtime::serving::server::{self, ServedApi, ServerConfig, ServerError};
use gateway_runtime::spec::{
    ApiMount, ApiSpec, GatewayResponseSpec, OperationSpec, PathPart, ResponseSelector, StageSpec, UpstreamSpec,
};
use gateway_runtime::stage::ResolvedStage;
use gateway_runtime::template::{Placeholder, TemplatePart};

use crate::support::*;

const PETS: OperationSpec = proxied_get("listPets", "/pets", &[PathPart::Literal("/pets")]);

/// Its `NOT_FOUND`, rendered as `NAME: no such path (stage GREETING)`.
const fn not_found(body: &'static [TemplatePart]) -> GatewayResponseSpec {
    GatewayResponseSpec {
        selector: ResponseSelector::Kind(ErrorKind::NotFound),
        status: None,
        headers: &[],
        content_type: "text/plain",
        body: Some(body),
    }
}

const fn echo_at(urls: &'static [&'static str]) -> UpstreamSpec {
    UpstreamSpec {
        name: "echo",
        urls,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        ..UpstreamSpec::DEFAULT
    }
}

/// Two stages: `dev` at the root, `prod` under `/prod`.
static V1: ApiSpec = ApiSpec {
    name: "v1",
    upstreams: &[echo_at(&["http://127.0.0.1:9/one"])],
    operations: &[PETS],
    responses: &[not_found(&[
        TemplatePart::Literal("v1: no such path (stage "),
        TemplatePart::Value(Placeholder::Stage("greeting")),
        TemplatePart::Literal(")"),
    ])],
    stages: &[
        StageSpec {
            name: "dev",
            variables: &[("greeting", "hello")],
            base_path: "",
            cache_enabled: true,
            throttle: None,
            cors_origins: None,
            upstreams: &[],
        },
        StageSpec {
            name: "prod",
            variables: &[("greeting", "hi from prod")],
            base_path: "/prod",
            cache_enabled: true,
            throttle: None,
            cors_origins: None,
            upstreams: &[],
        },
    ],
    default_stage: Some(0),
    ..ECHO_API
};

/// No stages.
static V2: ApiSpec = ApiSpec {
    name: "v2",
    upstreams: &[echo_at(&["http://127.0.0.1:9/two"])],
    operations: &[PETS],
    responses: &[not_found(&[TemplatePart::Literal("v2: no such path")])],
    ..ECHO_API
};

/// Starts V1 (in `stage`) under `/v1` and V2 under `v2_base`, both pointed at the test upstream.
async fn start(stage: Option<usize>, v2_base: &'static str) -> Result<Gateway, ServerError> {
    quiet_logs();
    let upstream = start_upstream().await;
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    config.workers = Some(2.try_into().expect("non-zero"));
    config.upstream_overrides = vec![
        format!("v1/echo=http://{}/one", upstream.addr)
            .parse()
            .expect("override"),
        format!("v2/echo=http://{}/two", upstream.addr)
            .parse()
            .expect("override"),
    ];
    let stage = stage.map(|index| ResolvedStage::resolve(&V1, index, &|_| None).expect("a stage of V1"));
    let apis = vec![
        ServedApi {
            mount: ApiMount {
                base_path: "/v1",
                api: &V1,
            },
            stage,
        },
        ServedApi {
            mount: ApiMount {
                base_path: v2_base,
                api: &V2,
            },
            stage: None,
        },
    ];
    let handle = bounded(
        "start",
        tokio::task::spawn_blocking(move || server::start_gateway("pets", apis, config)),
    )
    .await
    .expect("join")?;
    Ok(Gateway {
        addr: handle.local_addr(),
        admin: handle.admin_addr(),
        handle: Some(handle),
        upstream,
    })
}

fn text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

#[tokio::test]
async fn each_api_is_served_under_its_stage_base_path_then_its_own() {
    let mut gw = start(Some(1), "/v2").await.expect("starts");
    // V1 in stage prod: `/prod` + `/v1` + `/pets`, to V1's upstream.
    let (parts, body) = get(&gw.url("/prod/v1/pets")).await;
    assert_eq!(parts.status, 200, "{}", text(&body));
    assert_eq!(json(&body)["path"], "/one/pets");
    // V2 has no stages: `/v2/pets`, to V2's upstream.
    let (parts, body) = get(&gw.url("/v2/pets")).await;
    assert_eq!(parts.status, 200, "{}", text(&body));
    assert_eq!(json(&body)["path"], "/two/pets");
    // Outside the stage's prefix V1 is not served, and the path is under no API: the plain 404.
    let (parts, body) = get(&gw.url("/v1/pets")).await;
    problem(&parts, &body, 404);
    gw.stop().await;
}

#[tokio::test]
async fn a_404_is_the_api_whose_prefix_is_the_longest_with_that_apis_stage() {
    let mut gw = start(Some(1), "/v2").await.expect("starts");
    let (parts, body) = get(&gw.url("/prod/v1/cats")).await;
    assert_eq!(parts.status, 404);
    assert_eq!(text(&body), "v1: no such path (stage hi from prod)");
    let (_, body) = get(&gw.url("/prod/v1")).await;
    assert_eq!(
        text(&body),
        "v1: no such path (stage hi from prod)",
        "the prefix itself is the API's"
    );
    let (_, body) = get(&gw.url("/v2/cats")).await;
    assert_eq!(text(&body), "v2: no such path");
    for outside in ["/prod", "/prod/v1x", "/v2x", "/"] {
        let (parts, body) = get(&gw.url(outside)).await;
        problem(&parts, &body, 404);
    }
    gw.stop().await;
}

#[tokio::test]
async fn an_api_at_the_root_answers_every_404_no_longer_prefix_claims() {
    // V1 in stage dev is under `/v1`; V2 at the root.
    let mut gw = start(Some(0), "").await.expect("starts");
    let (_, body) = get(&gw.url("/v1/cats")).await;
    assert_eq!(text(&body), "v1: no such path (stage hello)");
    let (_, body) = get(&gw.url("/anything/else")).await;
    assert_eq!(text(&body), "v2: no such path");
    let (parts, body) = get(&gw.url("/pets")).await;
    assert_eq!(
        (parts.status.as_u16(), &json(&body)["path"]),
        (200, &serde_json::json!("/two/pets"))
    );
    gw.stop().await;
}

#[tokio::test]
async fn routes_of_two_apis_that_overlap_are_refused_at_start_up() {
    // V2 under `/v1` too, in V1's default stage (at the root): both serve `/v1/pets`.
    let err = start(None, "/v1").await.err().expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("invalid route `/pets`: API `v2`, served as `/v1/pets`"),
        "{message}"
    );
}
