//! The access log of the generated gateways as processes: to stdout by default, after the `listening on` line;
//! to a file reopened on SIGUSR1 (logrotate); the verified JWT's `sub` and the key's name, never a credential,
//! with debug logging on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use gateway_tests::auth::{AuthServer, DEFAULT_ISSUER};
use gateway_tests::client::{get, send};
use gateway_tests::gateway::Gateway;
use gateway_tests::tokens::Token;
use gateway_tests::upstream::Upstream;
use http::{Method, StatusCode};
use serde_json::Value;

use crate::support::{KeyFile, STORE_SECRET, setup, setup_with};

/// Upper bound for waiting on a line.
const WAIT: Duration = Duration::from_secs(10);

/// Polls `read` until it yields at least `count` parsed lines.
async fn wait_lines(what: &str, count: usize, read: impl Fn() -> Vec<String>) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let lines = read();
        if lines.len() >= count {
            return lines
                .iter()
                .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}")))
                .collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {} of {count} lines within {WAIT:?}: {lines:?}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn file_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // Only whole lines.
    let whole = text.rfind('\n').map_or("", |end| &text[..=end]);
    whole.lines().map(str::to_owned).collect()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("e2e-access-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn by_default_the_access_log_follows_the_listening_line_on_stdout() {
    // `Gateway::start` read `listening on` first: the access log did not get in its way.
    let (_upstream, gw) = setup().await;
    assert_eq!(get(&gw.url("/pets/42")).await.status, StatusCode::OK);
    assert_eq!(get(&gw.url("/no/such/path")).await.status, StatusCode::NOT_FOUND);
    let lines = wait_lines("stdout", 2, || gw.stdout_lines()).await;
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["status"], 200);
    assert_eq!(lines[0]["method"], "GET");
    let template = lines[0]["template"].as_str().expect("a template");
    assert!(
        template.starts_with("/pets/{") && !template.contains("42"),
        "{template}"
    );
    assert!(lines[0]["upstream"].is_string(), "{}", lines[0]);
    assert!(lines[0]["operation"].is_string(), "{}", lines[0]);
    assert_eq!(lines[1]["status"], 404);
    assert_eq!(lines[1]["template"], Value::Null);
    assert_eq!(lines[1]["operation"], Value::Null);
}

#[tokio::test]
async fn off_writes_nothing_to_stdout() {
    let (_upstream, gw) = setup_with(&["--access-log", "off"]).await;
    assert_eq!(get(&gw.url("/pets/42")).await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(gw.stdout_lines().is_empty(), "{:?}", gw.stdout_lines());
}

#[tokio::test]
async fn sigusr1_reopens_the_file_after_logrotate_moved_it() {
    let dir = temp_dir("reopen");
    let log = dir.join("access.log");
    let (_upstream, mut gw) = setup_with(&["--access-log", log.to_str().expect("UTF-8 path")]).await;
    // Told apart by their operations (the petstore's `X-Request-Id` must be a UUID).
    assert_eq!(get(&gw.url("/pets/1")).await.status, StatusCode::OK);
    wait_lines("the first file", 1, || file_lines(&log)).await;
    let rotated = dir.join("access.log.1");
    std::fs::rename(&log, &rotated).expect("rotate");
    let killed = std::process::Command::new("kill")
        .arg("-USR1")
        .arg(gw.pid().to_string())
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = std::time::Instant::now() + WAIT;
    while !log.exists() {
        assert!(std::time::Instant::now() < deadline, "the log was not reopened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The gateway survived SIGUSR1.
    assert_eq!(get(&gw.url("/inventory")).await.status, StatusCode::OK);
    let new = wait_lines("the new file", 1, || file_lines(&log)).await;
    assert_eq!(new.len(), 1, "{new:?}");
    assert_eq!(new[0]["template"], "/inventory");
    let old = wait_lines("the rotated file", 1, || file_lines(&rotated)).await;
    assert_eq!(old.len(), 1, "{old:?}");
    assert!(
        old[0]["template"].as_str().is_some_and(|t| t.starts_with("/pets/")),
        "{old:?}"
    );
    assert!(gw.stdout_lines().is_empty(), "nothing on stdout with a file");
    let status = gw.terminate(WAIT).expect("exits");
    assert!(status.success(), "{}", gw.take_stderr());
    assert!(gw.take_stderr().contains("access log reopened"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_line_names_the_key_and_the_subject_and_never_a_credential_even_at_debug() {
    const KEY: &str = "free-key-alice-0001";
    let upstream = Upstream::start().await.expect("upstream");
    let auth = AuthServer::start().await.expect("auth server");
    let keys = KeyFile::new(&format!("- {{ key: {KEY}, name: alice, plan: free }}\n"));
    let args = [
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
    let mut gw = Gateway::start_with_env(
        "store-gateway",
        &args,
        &[("STORE_JWT_SECRET", STORE_SECRET), ("GATEWAY_LOG", "debug")],
    )
    .expect("store gateway starts");
    let token = Token::rs256("rsa-1")
        .issuer(DEFAULT_ISSUER)
        .audience("store")
        .subject("user-alice")
        .scope("account:read profile:write")
        .sign();
    let bearer = format!("Bearer {token}");
    let cookie = "session=cookie-secret-0042";
    let query = "?api_key=query-secret-0042&access_token=query-secret-0042";
    let by_token = send(
        Method::GET,
        &gw.url(&format!("/account{query}")),
        &[("authorization", &bearer), ("cookie", cookie)],
        Bytes::new(),
    )
    .await
    .expect("reply");
    assert_eq!(by_token.status, StatusCode::OK, "{}", by_token.text());
    let by_key = send(
        Method::GET,
        &gw.url(&format!("/account{query}")),
        &[("x-api-key", KEY), ("cookie", cookie)],
        Bytes::new(),
    )
    .await
    .expect("reply");
    assert_eq!(by_key.status, StatusCode::OK, "{}", by_key.text());
    let refused = send(
        Method::GET,
        &gw.url(&format!("/account{query}")),
        &[("x-api-key", "an-unknown-key-0042"), ("cookie", cookie)],
        Bytes::new(),
    )
    .await
    .expect("reply");
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let lines = wait_lines("stdout", 3, || gw.stdout_lines()).await;
    assert_eq!(lines[0]["sub"], "user-alice", "{}", lines[0]);
    assert_eq!(lines[0]["api_key"], Value::Null);
    assert_eq!(lines[1]["api_key"], "alice", "{}", lines[1]);
    assert_eq!(lines[1]["sub"], Value::Null);
    assert_eq!(lines[2]["status"], 401);
    assert_eq!(lines[2]["error"], "UNAUTHORIZED");
    gw.terminate(WAIT);
    let stdout = gw.stdout_lines().join("\n");
    let stderr = gw.take_stderr();
    assert!(stderr.contains("request"), "debug lines were logged: {stderr}");
    for (name, text) in [("the access log", &stdout), ("the debug log", &stderr)] {
        for (i, part) in token.split('.').enumerate() {
            assert!(!text.contains(part), "part {i} of the token is in {name}");
        }
        for secret in [KEY, "an-unknown-key-0042", "cookie-secret-0042", "query-secret-0042"] {
            assert!(!text.contains(secret), "{secret} is in {name}");
        }
    }
    assert!(!stdout.contains("Bearer") && !stdout.contains('?'), "{stdout}");
}
