//! The access log, written to a file: one JSON line per request with its fields, never a credential, and lines
//! dropped (and counted) rather than requests held up when the writer does not keep up.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gateway_runtime::http::{Method, Request};
use gateway_runtime::observe::access_log::AccessLogTarget;
use gateway_runtime::policies::auth::keys::KeyStore;
use gateway_runtime::spec::{ApiSpec, OperationSpec, PathPart, Requirement};
use serde_json::Value;

use crate::support::*;

static KEYED: [&[Requirement]; 1] = [&[Requirement { scheme: 0, scopes: &[] }]];

const fn op(
    id: &'static str,
    template: &'static str,
    route: &'static str,
    path_params: &'static [&'static str],
    security: &'static [&'static [Requirement]],
) -> OperationSpec {
    let mut op = proxied_get(id, route, &[PathPart::Literal("/seen")]);
    op.template = template;
    op.path_params = path_params;
    op.security = security;
    op
}

static ACCESS_API: ApiSpec = ApiSpec {
    name: "accessgw",
    spec_file: "tests/access.yaml",
    operations: &[
        op("getThing", "/things/{thingId}", "/things/{p0}", &["thingId"], &[]),
        op("keyed", "/keyed", "/keyed", &[], &KEYED),
    ],
    schemes: &[X_API_KEY],
    ..ECHO_API
};

const KEY: &str = "key-for-access-log-test-0123";
const QUERY_SECRET: &str = "query-credential-0123";
const COOKIE_SECRET: &str = "cookie-session-0123";
const BEARER_SECRET: &str = "bearer-token-0123";

/// A fresh directory with a key file, removed on drop.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "runtime-access-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("keys.yaml"), format!("- {{ key: {KEY}, name: app-one }}\n")).expect("key file");
        Self(dir)
    }

    fn log(&self) -> PathBuf {
        self.0.join("access.log")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn start(dir: &Dir, capacity: usize) -> Gateway {
    let keys = KeyStore::open(Some(&dir.0.join("keys.yaml"))).expect("key file");
    let log = dir.log();
    start_gateway_for(&ACCESS_API, move |config, upstream| {
        config.upstream_overrides = vec![format!("echo=http://{upstream}/").parse().expect("override")];
        config.keys = keys;
        config.access_log = AccessLogTarget::File(log);
        config.access_log_capacity = capacity;
    })
    .await
}

async fn call(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut builder = Request::builder().method(Method::GET).uri(gw.url(path));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let (parts, _) = send(builder.body(empty()).expect("request")).await;
    parts.status.as_u16()
}

/// The file's lines once it has `count` of them (bounded wait), each parsed.
async fn lines(path: &Path, count: usize) -> Vec<Value> {
    bounded("access log lines", async {
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.lines().count() >= count && text.ends_with('\n') {
                return text
                    .lines()
                    .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
}

#[tokio::test]
async fn every_request_gets_one_line_with_its_fields() {
    let dir = Dir::new();
    let mut gw = start(&dir, 1024).await;
    assert_eq!(call(&gw, "/things/42", &[("x-request-id", "req-proxied")]).await, 200);
    assert_eq!(call(&gw, "/nowhere/7", &[("x-request-id", "req-missing")]).await, 404);
    assert_eq!(call(&gw, "/keyed", &[("x-request-id", "req-refused")]).await, 401);
    assert_eq!(
        call(&gw, "/keyed", &[("x-request-id", "req-keyed"), ("x-api-key", KEY)]).await,
        200
    );
    let lines = lines(&dir.log(), 4).await;
    assert_eq!(lines.len(), 4, "{lines:?}");
    let by_id = |id: &str| {
        lines
            .iter()
            .find(|line| line["request_id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {lines:?}"))
    };

    let proxied = by_id("req-proxied");
    assert_eq!(proxied["operation"], "getThing");
    assert_eq!(proxied["method"], "GET");
    assert_eq!(proxied["template"], "/things/{thingId}");
    assert_eq!(proxied["api"], ACCESS_API.name);
    assert_eq!(proxied["status"], 200);
    assert_eq!(proxied["error"], Value::Null);
    assert_eq!(proxied["upstream"], "echo");
    assert!(proxied["upstream_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{proxied}");
    let latency = proxied["latency_ms"].as_f64().expect("latency");
    assert!(latency >= proxied["upstream_ms"].as_f64().unwrap_or(0.0), "{proxied}");
    assert_eq!(proxied["cache"], Value::Null);
    assert_eq!(proxied["bytes_in"], Value::Null);
    assert!(proxied["bytes_out"].is_u64(), "{proxied}");
    assert_eq!(proxied["client"], "127.0.0.1");
    assert_eq!(proxied["api_key"], Value::Null);
    assert_eq!(proxied["sub"], Value::Null);
    assert_eq!(proxied["stage"], Value::Null);
    assert_eq!(
        proxied["trace_id"].as_str().map(str::len),
        Some(32),
        "the trace id forwarded upstream"
    );
    let time = proxied["time"].as_str().expect("time");
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{time}");
    assert!(
        time.ends_with('Z') && time.len() == "2024-01-01T00:00:00.000Z".len(),
        "{time}"
    );

    let missing = by_id("req-missing");
    assert_eq!(missing["status"], 404);
    assert_eq!(missing["operation"], Value::Null);
    assert_eq!(missing["template"], Value::Null);
    // A 404 still names the API whose routes it missed.
    assert_eq!(missing["api"], ACCESS_API.name);
    assert_eq!(missing["error"], "NOT_FOUND");
    assert_eq!(missing["upstream"], Value::Null);
    assert_eq!(missing["upstream_ms"], Value::Null);

    let refused = by_id("req-refused");
    assert_eq!(refused["status"], 401);
    assert_eq!(refused["operation"], "keyed");
    assert_eq!(refused["template"], "/keyed");
    assert_eq!(refused["error"], "UNAUTHORIZED");
    assert_eq!(refused["upstream"], Value::Null);
    assert_eq!(refused["api_key"], Value::Null);

    let keyed = by_id("req-keyed");
    assert_eq!(keyed["status"], 200);
    assert_eq!(keyed["api_key"], "app-one");
    // The raw path is never logged, only the template.
    let text = std::fs::read_to_string(dir.log()).expect("log");
    assert!(!text.contains("/things/42") && !text.contains("/nowhere"), "{text}");
    gw.stop().await;
}

#[tokio::test]
async fn no_credential_reaches_the_log() {
    let dir = Dir::new();
    let mut gw = start(&dir, 1024).await;
    let cookie = format!("session={COOKIE_SECRET}");
    let bearer = format!("Bearer {BEARER_SECRET}");
    let headers = [
        ("x-api-key", KEY),
        ("cookie", cookie.as_str()),
        ("authorization", bearer.as_str()),
        ("content-length", "0"),
    ];
    let query = format!("?api_key={QUERY_SECRET}&access_token={QUERY_SECRET}");
    assert_eq!(call(&gw, &format!("/keyed{query}"), &headers).await, 200);
    assert_eq!(call(&gw, &format!("/things/1{query}"), &headers).await, 200);
    assert_eq!(call(&gw, &format!("/nowhere{query}"), &headers).await, 404);
    assert_eq!(
        call(
            &gw,
            &format!("/keyed{query}"),
            &[("x-api-key", "not-the-key-0123"), ("cookie", &cookie)]
        )
        .await,
        401
    );
    let lines = lines(&dir.log(), 4).await;
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["bytes_in"], 0);
    let text = std::fs::read_to_string(dir.log()).expect("log");
    for secret in [
        KEY,
        QUERY_SECRET,
        COOKIE_SECRET,
        BEARER_SECRET,
        "not-the-key",
        "Bearer",
        "session=",
        "?",
    ] {
        assert!(!text.contains(secret), "{secret:?} in the access log: {text}");
    }
    gw.stop().await;
}

#[tokio::test]
async fn a_full_channel_drops_and_counts_lines_without_holding_requests() {
    let dir = Dir::new();
    let capacity = 2;
    let mut gw = start(&dir, capacity).await;
    let access = gw.handle.as_ref().and_then(|h| h.access_log()).expect("access log on");
    assert_eq!(access.dropped(), 0);
    let sent = 12;
    {
        let _paused = access.pause();
        for _ in 0..sent {
            // Every request is answered while the writer takes nothing.
            assert_eq!(call(&gw, "/things/1", &[]).await, 200);
        }
        // At most the line being taken when the pause began, and a full channel, got through.
        let dropped = usize::try_from(access.dropped()).expect("count");
        assert!(dropped >= sent - capacity - 1, "dropped {dropped} of {sent}");
    }
    let dropped = usize::try_from(access.dropped()).expect("count");
    let written = lines(&dir.log(), sent - dropped).await;
    // Stopped, the gateway has written every line it queued: exactly those not dropped.
    gw.stop().await;
    let text = std::fs::read_to_string(dir.log()).expect("log");
    assert_eq!(text.lines().count(), sent - dropped, "{written:?}");
    assert_eq!(usize::try_from(access.dropped()).expect("count"), dropped);
}

#[tokio::test]
async fn reopen_writes_to_a_new_file_after_the_old_one_moved() {
    let dir = Dir::new();
    let mut gw = start(&dir, 1024).await;
    let access = gw.handle.as_ref().and_then(|h| h.access_log()).expect("access log on");
    assert_eq!(call(&gw, "/things/1", &[("x-request-id", "before")]).await, 200);
    lines(&dir.log(), 1).await;
    let rotated = dir.0.join("access.log.1");
    std::fs::rename(dir.log(), &rotated).expect("rotate");
    access.reopen();
    bounded("reopened", async {
        while !dir.log().exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert_eq!(call(&gw, "/things/1", &[("x-request-id", "after")]).await, 200);
    let new = lines(&dir.log(), 1).await;
    assert_eq!(new.len(), 1);
    assert_eq!(new[0]["request_id"], "after");
    let old = lines(&rotated, 1).await;
    assert_eq!(old.len(), 1);
    assert_eq!(old[0]["request_id"], "before");
    gw.stop().await;
}
