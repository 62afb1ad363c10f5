//! Function targets, against the generated `lab-gateway` (`tests/specs/lab.yaml`, functions in
//! `tests/functions/lab`) and the petstore's: typed requests reach the function, each response variant is its
//! status and body, a body failing its schema never reaches it, and a function that panics, hangs or is still the
//! stub cannot take the gateway down.

use bytes::Bytes;
use gateway_tests::client::{Reply, get, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};

use crate::support::KeyFile;

const LAB: &str = "lab-gateway";

/// The lab gateway, its `echo` upstream pointed at `upstream`, with a key file naming `alice`.
fn lab(upstream: &Upstream, keys: &KeyFile) -> Gateway {
    let args = vec![
        "--upstream".into(),
        format!("echo={}", upstream.url()),
        "--api-keys".into(),
        keys.0.display().to_string(),
    ];
    Gateway::start(LAB, &args).expect("the lab gateway starts")
}

const KEYS: &str = "- { key: lab-key-for-alice-0001, name: alice }\n";

async fn post_json(gw: &Gateway, path: &str, body: &str) -> Reply {
    send(
        Method::POST,
        &gw.url(path),
        &[("content-type", "application/json")],
        Bytes::from(body.to_owned()),
    )
    .await
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

async fn created(gw: &Gateway) -> i64 {
    let calls = get(&gw.url("/calls")).await;
    assert_eq!(calls.status, StatusCode::OK, "{}", calls.text());
    calls.json()["created"].as_i64().expect("a count")
}

#[tokio::test]
async fn typed_parameters_reach_the_function_and_come_back_as_its_typed_answer() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = lab(&upstream, &keys);
    let thing = send(
        Method::GET,
        &gw.url("/things/42?kind=fancy&tags=a&tags=b"),
        &[("x-trace", "t-1")],
        Bytes::new(),
    )
    .await
    .expect("answer");
    assert_eq!(thing.status, StatusCode::OK, "{}", thing.text());
    assert_eq!(thing.header("content-type"), Some("application/json"));
    assert_eq!(
        thing.json(),
        serde_json::json!({ "id": 42, "kind": "fancy", "trace": "t-1", "tags": ["a", "b"] })
    );
    // A parameter of the wrong type is the gateway's 400, before any function runs.
    let bad = get(&gw.url("/things/forty-two")).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["parameter"]["name"], "id");
    let bad_enum = get(&gw.url("/things/1?kind=ugly")).await;
    assert_eq!(bad_enum.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad_enum.json()["parameter"]["name"], "kind");
}

#[tokio::test]
async fn each_response_variant_is_its_status_content_type_and_body() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = lab(&upstream, &keys);
    let missing = get(&gw.url("/things/0")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("content-type"), Some("application/problem+json"));
    assert_eq!(missing.json()["title"], "No such thing");

    let removed = send(Method::DELETE, &gw.url("/things/9"), &[], Bytes::new())
        .await
        .expect("answer");
    assert_eq!(removed.status, StatusCode::NO_CONTENT);
    assert!(removed.body.is_empty());

    let tea = get(&gw.url("/teapot/200")).await;
    assert_eq!(tea.status, StatusCode::OK);
    assert_eq!(tea.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(tea.text(), "just tea");
    // `default`: the variant carries its status.
    let teapot = get(&gw.url("/teapot/418")).await;
    assert_eq!(teapot.status.as_u16(), 418);
    assert_eq!(teapot.json()["title"], "status 418");
    // A gateway error returned by the function is rendered like the gateway's own.
    let refused = get(&gw.url("/teapot/101")).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.header("content-type"), Some("application/problem+json"));
    assert_eq!(refused.json()["type"], "urn:gateway:error:bad-request-parameters");

    let conflict = post_json(&gw, "/things", r#"{"name":"taken"}"#).await;
    assert_eq!(conflict.status, StatusCode::CONFLICT);
    assert_eq!(conflict.json()["detail"], "`taken` exists");
}

#[tokio::test]
async fn a_typed_body_reaches_the_function_and_one_failing_its_schema_never_does() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = lab(&upstream, &keys);
    let before = created(&gw).await;
    let thing = post_json(
        &gw,
        "/things",
        r#"{"name":"kettle","tags":["x"],"size":"large","kind":"fancy","labels":{"room":"kitchen"}}"#,
    )
    .await;
    assert_eq!(thing.status, StatusCode::CREATED, "{}", thing.text());
    let body = thing.json();
    assert_eq!(body["name"], "kettle");
    assert_eq!(body["size"], "large", "a oneOf member that is a string enum");
    assert_eq!(body["kind"], "fancy");
    assert_eq!(body["labels"], serde_json::json!({ "room": "kitchen" }));
    assert_eq!(body["parent"]["name"], "root", "a schema that contains itself");
    let numbered = post_json(&gw, "/things", r#"{"name":"cup","size":3}"#).await;
    assert_eq!(numbered.status, StatusCode::CREATED);
    assert_eq!(numbered.json()["size"], 3, "a oneOf member that is an integer");
    assert_eq!(created(&gw).await, before + 2);

    // Each of these fails the schema (too short, unknown property, too many tags, not JSON, no body, wrong type):
    // the gateway refuses it and the function never runs.
    for bad in [
        r#"{"name":""}"#,
        r#"{"name":"x","colour":"red"}"#,
        r#"{"name":"x","tags":["a","b","c","d"]}"#,
        "not json",
        "",
        r#"{"name":7}"#,
    ] {
        let refused = post_json(&gw, "/things", bad).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{bad}: {}", refused.text());
        assert_eq!(refused.json()["type"], "urn:gateway:error:bad-request-body", "{bad}");
    }
    let wrong_type = send(
        Method::POST,
        &gw.url("/things"),
        &[("content-type", "text/plain")],
        "name",
    )
    .await
    .expect("answer");
    assert_eq!(wrong_type.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(created(&gw).await, before + 2, "no refused body reached the function");
}

#[tokio::test]
async fn a_panicking_function_is_a_500_and_the_next_request_is_served() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let mut gw = lab(&upstream, &keys);
    for _ in 0..3 {
        let panicked = get(&gw.url("/panic")).await;
        assert_eq!(panicked.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(panicked.json()["type"], "urn:gateway:error:internal");
        assert!(
            !panicked.text().contains("on purpose"),
            "the panic message stays in the log"
        );
        let next = get(&gw.url("/things/1")).await;
        assert_eq!(next.status, StatusCode::OK, "the gateway keeps serving");
    }
    gw.terminate(std::time::Duration::from_secs(5));
    let log = gw.take_stderr() + &gw.stdout_lines().join("\n");
    assert!(log.contains("the function panicked"), "{log}");
    assert!(log.contains("panics"), "the log names the operation: {log}");
}

#[tokio::test]
async fn a_function_slower_than_its_timeout_is_a_504() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = lab(&upstream, &keys);
    let started = std::time::Instant::now();
    let slow = get(&gw.url("/slow")).await;
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.json()["type"], "urn:gateway:error:upstream-timeout");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "answered at the timeout, not when the function ended"
    );
    assert_eq!(get(&gw.url("/things/1")).await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_generated_stub_answers_501_until_it_is_written() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = lab(&upstream, &keys);
    let stub = get(&gw.url("/stub")).await;
    assert_eq!(stub.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(stub.json()["type"], "urn:gateway:error:not-implemented");
    assert!(stub.json()["detail"].as_str().unwrap_or("").contains("misbehave::stub"));
}

#[tokio::test]
async fn the_function_context_has_the_caller_the_stage_and_the_upstreams() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = lab(&upstream, &keys);
    // The operation is keyed: the function runs behind the auth phase like any target.
    let anonymous = get(&gw.url("/context")).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let shown = send(
        Method::GET,
        &gw.url("/context"),
        &[("x-api-key", "lab-key-for-alice-0001"), ("x-request-id", "req-ctx-1")],
        Bytes::new(),
    )
    .await
    .expect("answer");
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    let ctx = shown.json();
    assert_eq!(ctx["request_id"], "req-ctx-1");
    assert_eq!(ctx["operation_id"], "showContext");
    assert_eq!(ctx["caller"], "alice");
    assert_eq!(ctx["stage"], "dev");
    assert_eq!(ctx["greeting"], "hello from dev");
    assert_eq!(ctx["upstream_status"], 200);
    // The upstream saw the function's request, under the overridden URL, with the caller's request id.
    let saw: serde_json::Value = serde_json::from_str(ctx["upstream_saw"].as_str().expect("text")).expect("json");
    assert_eq!(saw["path"], "/relayed");
    assert_eq!(saw["query"], "from=function");
    assert_eq!(saw["headers"]["x-request-id"][0], "req-ctx-1");
}

#[tokio::test]
async fn the_petstore_functions_answer_from_the_request_and_from_the_pets_upstream() {
    // A pets service that knows pet 7's age, and nothing about others.
    let pets = gateway_tests::upstream::Routes::start(&[
        ("/v1/pets/7", 200, r#"{"id":7,"name":"Rex","age":3}"#),
        ("/v1/pets/8", 200, r#"{"id":8,"name":"Tom"}"#),
    ])
    .await
    .expect("pets service");
    let upstream = Upstream::start().await.expect("upstream");
    let url = upstream.url();
    let gw = Gateway::start(
        "petstore-gateway",
        &[
            "--upstream".into(),
            format!("pets={}", pets.url()),
            "--upstream".into(),
            format!("reports={url}/reporting"),
            "--upstream".into(),
            format!("default={url}/api"),
        ],
    )
    .expect("petstore starts");
    let age = get(&gw.url("/pets/7/age")).await;
    assert_eq!(age.status, StatusCode::OK, "{}", age.text());
    assert_eq!(
        age.json(),
        serde_json::json!({ "pet_id": 7, "years": 3, "dog_years": 21 })
    );
    let unknown = get(&gw.url("/pets/8/age")).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.header("content-type"), Some("application/problem+json"));
    let missing = get(&gw.url("/pets/9/age")).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.json()["detail"], "there is no pet 9");

    let checkup = send(
        Method::POST,
        &gw.url("/pets/7/checkups"),
        &[("content-type", "application/json")],
        r#"{"weight_kg": 12.5, "temperature_c": 40, "vaccines": ["rabies"]}"#,
    )
    .await
    .expect("answer");
    assert_eq!(checkup.status, StatusCode::CREATED, "{}", checkup.text());
    assert_eq!(
        checkup.json(),
        serde_json::json!({ "pet_id": 7, "weight_kg": 12.5, "vaccines": ["rabies"], "advice": "feverish" })
    );
    let refused = send(
        Method::POST,
        &gw.url("/pets/7/checkups"),
        &[("content-type", "application/json")],
        r#"{"weight_kg": 0}"#,
    )
    .await
    .expect("answer");
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
}

/// The workspace root (this crate is `tests/`).
fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default()
}

#[test]
fn a_function_that_does_not_match_the_spec_fails_the_build_with_rustc_naming_it() {
    // `mismatch` swaps in functions that no longer match tests/specs/lab.yaml: `things::get` takes another
    // operation's request, `things::remove` returns another operation's response, `misbehave::stub` is gone. Only
    // the lab crates are rebuilt (in the shared target directory, so that the dependencies are reused; only the lab
    // gateway is built, so that no binary another test runs is relinked under it); the build must fail, and say
    // where and why.
    let output = std::process::Command::new(env!("CARGO"))
        .args([
            "build",
            "--locked",
            "-p",
            "lab-gateway",
            "--features",
            "lab-functions/mismatch",
            "--color",
            "never",
        ])
        .current_dir(workspace())
        .output()
        .expect("cargo runs");
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the mismatched functions must not build:\n{errors}"
    );
    // The wrong request type: rustc names both types and points at the user's function.
    assert!(
        errors.contains("expected `CreateThingRequest`, found `GetThingRequest`"),
        "{errors}"
    );
    assert!(errors.contains("tests/functions/lab/src/things.rs"), "{errors}");
    assert!(errors.contains("pub async fn get(req: CreateThingRequest"), "{errors}");
    // The wrong return type.
    assert!(
        errors.contains("`RemoveThingResponse: From<TeapotResponse>` is not satisfied"),
        "{errors}"
    );
    // The missing function, by name.
    assert!(
        errors.contains("cannot find function `stub` in module `::lab_functions::misbehave`"),
        "{errors}"
    );
}

#[test]
fn generate_makes_a_stub_per_function_once_and_never_overwrites_the_crate() {
    let dir = std::env::temp_dir().join(format!("functions-scaffold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let spec = dir.join("hello.yaml");
    std::fs::write(
        &spec,
        r#"openapi: 3.0.3
info: { title: Hello, version: "1" }
x-gateway:
  name: hello
  functions: { crate: hello-functions, path: functions/hello }
paths:
  /greet/{name}:
    get:
      operationId: greet
      parameters: [{ name: name, in: path, required: true, schema: { type: string } }]
      x-gateway: { target: { function: words::greet } }
      responses:
        "200": { description: A greeting., content: { application/json: { schema: { type: object, properties: { text: { type: string } } } } } }
  /ping:
    get:
      operationId: ping
      x-gateway: { target: { function: ping } }
      responses:
        "204": { description: Pong. }
"#,
    )
    .expect("spec");
    let generate = || {
        let output = std::process::Command::new(gateway_tests::gateway::binary("xtask"))
            .args(["generate", "--spec"])
            .arg(&spec)
            .arg("--out")
            .arg(dir.join("gateways"))
            .output()
            .expect("xtask runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let first = generate();
    assert!(first.contains("a new functions crate"), "{first}");
    let crate_dir = dir.join("functions/hello");
    let module = std::fs::read_to_string(crate_dir.join("src/words.rs")).expect("a module per path prefix");
    assert!(module.contains("STUB"), "{module}");
    assert!(
        module.contains("pub async fn greet(req: GreetRequest, ctx: &FunctionContext<'_>) -> GreetResponse"),
        "{module}"
    );
    assert!(
        module.contains("GatewayError::not_implemented(\"words::greet\")"),
        "{module}"
    );
    let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).expect("lib.rs");
    assert!(
        lib.contains("pub mod words;") && lib.contains("pub async fn ping("),
        "{lib}"
    );
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).expect("manifest");
    assert!(manifest.contains("name = \"hello-functions\""), "{manifest}");
    assert!(manifest.contains("path = \"../../gateways/hello/types\""), "{manifest}");

    // The user writes the function; generating again leaves it alone (and regenerates the gateway).
    let written = "//! Mine now.\npub async fn greet() {}\n";
    std::fs::write(crate_dir.join("src/words.rs"), written).expect("edit");
    let second = generate();
    assert!(!second.contains("a new functions crate"), "{second}");
    assert_eq!(
        std::fs::read_to_string(crate_dir.join("src/words.rs")).expect("kept"),
        written
    );
    assert!(dir.join("gateways/hello/types/src/lib.rs").is_file());

    // The layout is a valid workspace: the gateway (generated outside this one) is its root, with the types crate
    // and the functions crate as members.
    let metadata = std::process::Command::new(env!("CARGO"))
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .current_dir(dir.join("gateways/hello"))
        .output()
        .expect("cargo metadata runs");
    let text = String::from_utf8_lossy(&metadata.stdout);
    assert!(
        metadata.status.success(),
        "{}",
        String::from_utf8_lossy(&metadata.stderr)
    );
    for package in ["hello-gateway", "hello-types", "hello-functions"] {
        assert!(text.contains(&format!("\"name\":\"{package}\"")), "{package} in {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_function_target_in_a_gateway_of_several_apis_answers_under_its_base_path() {
    // tests/specs/duo-a.yaml (a function, under /a) and duo-b.yaml (a mock, under /b) are one gateway.
    let gw = Gateway::start("duo-gateway", &[]).expect("the duo gateway starts");
    let hello = get(&gw.url("/a/hello/ada")).await;
    assert_eq!(hello.status, StatusCode::OK, "{}", hello.text());
    assert_eq!(
        hello.json(),
        serde_json::json!({ "greeting": "hello, ada", "api": "duo-a" })
    );
    assert_eq!(
        get(&gw.url("/b/status/7")).await.json(),
        serde_json::json!({ "ok": true })
    );
    assert_eq!(get(&gw.url("/hello/ada")).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_function_writes_to_the_store_that_a_store_target_reads() {
    let upstream = Upstream::start().await.expect("upstream");
    let keys = KeyFile::new(KEYS);
    let gw = lab(&upstream, &keys);
    let url = gw.url("/memos/first");
    let put = |body: &'static str| send(Method::PUT, &url, &[("content-type", "application/json")], body);
    let saved = put(r#"{"text":"buy tea"}"#).await.expect("answer");
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text());
    assert_eq!(saved.json()["created"], true);
    let first_version = saved.json()["version"].as_i64().expect("a version");
    // The same item, through the store target: the function's store is the API's.
    let read = get(&gw.url("/memos/first")).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.text());
    assert_eq!(
        read.json(),
        serde_json::json!({ "text": "buy tea", "by": "a function" })
    );
    assert_eq!(read.header("etag"), Some(format!("\"{first_version}\"").as_str()));
    let again = put(r#"{"text":"buy more tea","by":"ada"}"#).await.expect("answer");
    assert_eq!(again.json()["created"], false);
    assert!(again.json()["version"].as_i64().expect("a version") > first_version);
    assert_eq!(get(&gw.url("/memos/first")).await.json()["by"], "ada");
    // A body failing its schema never reaches the function, so nothing is written.
    let refused = put(r#"{"text":""}"#).await.expect("answer");
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(get(&gw.url("/memos/first")).await.json()["text"], "buy more tea");
}
