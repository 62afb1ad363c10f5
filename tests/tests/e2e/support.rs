//! What every end-to-end test needs: an upstream, and the petstore gateway in front of it.

use gateway_tests::client::Reply;
use gateway_tests::gateway::Gateway;
use gateway_tests::upstream::Upstream;
use http::StatusCode;

pub const BIN: &str = "petstore-gateway";

/// The HMAC secret of the store's `internal` scheme: the store gateway refuses to start without it.
pub const STORE_SECRET: &str = "an-hmac-secret-for-internal-tokens-only";

/// The environment every store gateway starts with.
pub const STORE_ENV: (&str, &str) = ("STORE_JWT_SECRET", STORE_SECRET);

/// An upstream and the petstore gateway pointed at it (every upstream of the spec, overridden to the one server).
pub async fn setup() -> (Upstream, Gateway) {
    setup_with(&[]).await
}

/// [`setup`], with extra gateway flags.
pub async fn setup_with(extra: &[&str]) -> (Upstream, Gateway) {
    setup_with_env(extra, &[]).await
}

/// [`setup`], with extra gateway flags and environment variables.
pub async fn setup_with_env(extra: &[&str], env: &[(&str, &str)]) -> (Upstream, Gateway) {
    let upstream = Upstream::start().await.expect("upstream starts");
    let url = upstream.url();
    let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    args.extend([
        "--upstream".into(),
        format!("pets={url}"),
        "--upstream".into(),
        format!("reports={url}/reporting"),
        "--upstream".into(),
        format!("default={url}/api"),
    ]);
    let gateway = Gateway::start_with_env(BIN, &args, env).expect("gateway starts");
    (upstream, gateway)
}

/// Checks that `reply` is a problem+json response with `status`, and returns the problem.
pub fn assert_problem(reply: &Reply, status: StatusCode) -> serde_json::Value {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/problem+json"));
    let problem = reply.json();
    assert_eq!(problem["status"], status.as_u16());
    assert!(problem["title"].is_string());
    problem
}

/// A key file in a fresh temporary directory, removed on drop.
pub struct KeyFile(pub std::path::PathBuf);

impl KeyFile {
    pub fn new(text: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "e2e-keys-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("keys.yaml");
        std::fs::write(&path, text).expect("key file");
        Self(path)
    }

    pub fn write(&self, text: &str) {
        std::fs::write(&self.0, text).expect("key file");
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// The `(pointer, keyword)` pairs of a problem's `errors` member (a validation refusal).
pub fn violations(problem: &serde_json::Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| {
                    (
                        e["pointer"].as_str().unwrap_or("?").to_owned(),
                        e["keyword"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
