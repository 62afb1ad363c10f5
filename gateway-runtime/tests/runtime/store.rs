//! Store targets in process, over real sockets: what the generated petstore cannot show — keys made of several path
//! values and literal text, filters compared as integers and booleans, a custom `id_field`, documents that are not
//! objects, and opening stores at `--store` paths.

use std::path::PathBuf;

use gateway_runtime::http::{Method, Request, StatusCode};
use gateway_runtime::serving::server::{self, ServerConfig, ServerError};
use gateway_runtime::spec::{
    ApiSpec, OperationSpec, StoreAction, StoreBackendSpec, StoreFilterKind, StoreFilterSpec, StoreKeyPart, StoreSpec,
    StoreSync, StoreTableSpec, StoreTargetSpec, TargetSpec,
};
use gateway_runtime::store::{StoreError, StoreLocation, StoreOverride};
use serde_json::{Value, json};

use crate::support::*;

const fn store_op(
    id: &'static str,
    method: Method,
    route: &'static str,
    path_params: &'static [&'static str],
    target: StoreTargetSpec,
) -> OperationSpec {
    OperationSpec {
        id,
        method,
        template: route,
        route,
        path_params,
        target: TargetSpec::Store(target),
        ..OperationSpec::DEFAULT
    }
}

const fn things(action: StoreAction, key: &'static [StoreKeyPart]) -> StoreTargetSpec {
    StoreTargetSpec {
        store: 0,
        table: "things",
        action,
        key,
        filters: &[],
        id_field: "",
    }
}

/// `shelf-{shelf}/{thing}`.
const KEY: &[StoreKeyPart] = &[
    StoreKeyPart::Literal("shelf-"),
    StoreKeyPart::Param(0),
    StoreKeyPart::Literal("/"),
    StoreKeyPart::Param(1),
];

static STORE_API: ApiSpec = ApiSpec {
    name: "inventory",
    operations: &[
        store_op(
            "putThing",
            Method::PUT,
            "/shelves/{p0}/things/{p1}",
            &["shelf", "thing"],
            things(StoreAction::Put, KEY),
        ),
        store_op(
            "getThing",
            Method::GET,
            "/shelves/{p0}/things/{p1}",
            &["shelf", "thing"],
            things(StoreAction::Get, KEY),
        ),
        store_op(
            "listThings",
            Method::GET,
            "/things",
            &[],
            StoreTargetSpec {
                filters: &[
                    StoreFilterSpec {
                        query: "size",
                        kind: StoreFilterKind::Integer,
                    },
                    StoreFilterSpec {
                        query: "fragile",
                        kind: StoreFilterKind::Boolean,
                    },
                ],
                ..things(StoreAction::List, &[])
            },
        ),
        store_op(
            "createThing",
            Method::POST,
            "/things",
            &[],
            StoreTargetSpec {
                id_field: "ref",
                ..things(StoreAction::Create, &[])
            },
        ),
    ],
    stores: &[StoreSpec {
        name: "inv",
        backend: StoreBackendSpec::Sqlite {
            path: "target/never-opened-by-tests.db",
            synchronous: StoreSync::Normal,
        },
        tables: &[StoreTableSpec {
            name: "things",
            indexes: &["size", "fragile"],
        }],
    }],
    ..ECHO_API
};

/// A directory of its own under the system's temporary one, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("runtime-store-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        Self(dir)
    }

    /// The database file (in directories the store must create).
    fn db(&self) -> PathBuf {
        self.0.join("a/b/inventory.db")
    }

    fn store(&self) -> StoreOverride {
        StoreOverride {
            name: "inv".to_owned(),
            location: StoreLocation::Sqlite(self.db()),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(scratch: &Scratch) -> Gateway {
    let store = scratch.store();
    start_gateway_for(&STORE_API, move |config, _| {
        config.upstream_overrides.clear();
        config.store_overrides = vec![store];
    })
    .await
}

async fn call(gw: &Gateway, method: Method, path: &str, body: Option<&Value>) -> (http::response::Parts, Value) {
    let mut request = Request::builder().method(method).uri(gw.url(path));
    let body = match body {
        Some(value) => {
            request = request.header("content-type", "application/json");
            full(value.to_string())
        }
        None => empty(),
    };
    let (parts, bytes) = send(request.body(body).expect("request")).await;
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (parts, value)
}

#[tokio::test]
async fn a_key_is_made_of_literal_text_and_several_path_values() {
    let scratch = Scratch::new("keys");
    let gw = start(&scratch).await;
    assert!(scratch.db().exists(), "opened at the override, its directories created");
    let (parts, _) = call(&gw, Method::PUT, "/shelves/3/things/lamp", Some(&json!({"size": 3}))).await;
    assert_eq!(parts.status, StatusCode::CREATED);
    let (parts, _) = call(&gw, Method::PUT, "/shelves/4/things/lamp", Some(&json!({"size": 4}))).await;
    assert_eq!(parts.status, StatusCode::CREATED, "another shelf, another key");
    let (parts, body) = call(&gw, Method::GET, "/shelves/3/things/lamp", None).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(body, json!({"size": 3}));
    // Percent-decoded values: `a%20b` is the key `shelf-3/a b`.
    call(&gw, Method::PUT, "/shelves/3/things/a%20b", Some(&json!("spaced"))).await;
    let (_, body) = call(&gw, Method::GET, "/shelves/3/things/a%20b", None).await;
    assert_eq!(body, json!("spaced"), "any JSON document, not only objects");
}

#[tokio::test]
async fn filters_compare_as_the_json_type_of_their_parameter() {
    let scratch = Scratch::new("filters");
    let gw = start(&scratch).await;
    let things = [
        ("a", json!({"size": 3, "fragile": true})),
        ("b", json!({"size": 3, "fragile": false})),
        ("c", json!({"size": "3", "fragile": "true"})),
        ("d", json!({"size": 4})),
        ("e", json!([3])),
    ];
    for (name, value) in &things {
        let (parts, _) = call(&gw, Method::PUT, &format!("/shelves/1/things/{name}"), Some(value)).await;
        assert_eq!(parts.status, StatusCode::CREATED);
    }
    let listed = |query: &'static str| {
        let gw = &gw;
        async move {
            let (parts, body) = call(gw, Method::GET, &format!("/things{query}"), None).await;
            assert_eq!(parts.status, StatusCode::OK, "{query}: {body}");
            body["items"].as_array().cloned().unwrap_or_default()
        }
    };
    assert_eq!(
        listed("?size=3").await,
        [things[0].1.clone(), things[1].1.clone()],
        "3, not \"3\""
    );
    assert_eq!(
        listed("?fragile=true").await,
        [things[0].1.clone()],
        "true, not \"true\""
    );
    assert_eq!(
        listed("?size=3&fragile=false").await,
        [things[1].1.clone()],
        "every filter applies"
    );
    assert_eq!(listed("").await.len(), 5);
    let (parts, body) = call(&gw, Method::GET, "/things?size=big", None).await;
    assert_eq!(parts.status, StatusCode::BAD_REQUEST);
    assert_eq!(body["parameter"]["name"], "size");
}

#[tokio::test]
async fn create_writes_its_id_to_id_field_of_objects_only() {
    let scratch = Scratch::new("create");
    let gw = start(&scratch).await;
    let (parts, body) = call(&gw, Method::POST, "/things", Some(&json!({"size": 1}))).await;
    assert_eq!(parts.status, StatusCode::CREATED);
    let id = body["ref"].as_str().expect("written to `ref`").to_owned();
    assert!(body.get("id").is_none());
    assert_eq!(parts.headers["location"], format!("/things/{id}").as_str());
    let (parts, body) = call(&gw, Method::POST, "/things", Some(&json!([1, 2]))).await;
    assert_eq!(parts.status, StatusCode::CREATED);
    assert_eq!(body, json!([1, 2]), "not an object: stored as it is");
    assert!(parts.headers.contains_key("location"));
    let request = Request::post(gw.url("/things"))
        .header("content-type", "text/csv")
        .body(full("a,b"))
        .expect("request");
    let (parts, _) = send(request).await;
    assert_eq!(parts.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn an_override_naming_no_store_is_refused_at_start_up() {
    let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    config.store_overrides = vec!["nope=/tmp/never.db".parse().expect("NAME=PATH")];
    let started = bounded(
        "start",
        tokio::task::spawn_blocking(move || server::start(&STORE_API, config)),
    )
    .await
    .expect("join");
    match started {
        Err(ServerError::Store(err @ StoreError::UnknownStore { .. })) => {
            assert_eq!(err.to_string(), "unknown store `nope` (this gateway has: inv)");
        }
        other => panic!("expected an unknown store, got {other:?}"),
    }
}
