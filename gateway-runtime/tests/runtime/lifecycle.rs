//! Start-up, command line and graceful shutdown.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use gateway_runtime::cli;
use gateway_runtime::http::{Method, Request};
use gateway_runtime::router::RouterError;
use gateway_runtime::serving::server::{self, ServerConfig, ServerError};
use gateway_runtime::spec::{ApiSpec, MockSpec, OperationSpec, TargetSpec};
use http_body_util::BodyExt as _;

use crate::support::*;

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish_while_readiness_says_draining() {
    let mut gw = start_gateway_with(|config, _| config.shutdown_timeout = Duration::from_secs(20)).await;
    let (parts, _) = get(&gw.admin_url("/_gateway/ready")).await;
    assert_eq!(parts.status, 200);
    let request = Request::get(gw.url("/drain")).body(empty()).expect("request");
    let in_flight = tokio::spawn(async move {
        let response = client().request(request).await?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        Ok::<_, BoxError>((status, body))
    });
    // The upstream has the request (and answers 500 ms later): shut down now.
    assert_eq!(
        bounded("arrival", gw.upstream.arrivals.recv()).await.as_deref(),
        Some("/delay")
    );
    gw.handle.as_ref().expect("running").shutdown();
    // Draining: still alive, no longer ready (a load balancer stops sending), until the workers are done.
    let (parts, body) = get(&gw.admin_url("/_gateway/ready")).await;
    assert_eq!(parts.status, 503);
    assert_eq!(json(&body)["checks"]["draining"], true);
    let (parts, _) = get(&gw.admin_url("/_gateway/health")).await;
    assert_eq!(parts.status, 200);

    let (status, body) = bounded("in-flight request", in_flight)
        .await
        .expect("task")
        .expect("completed");
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"finished after a delay");
    gw.stop().await;

    // Stopped means not accepting: a new connection is refused.
    let request = Request::get(gw.url("/health")).body(empty()).expect("request");
    assert!(bounded("after stop", client().request(request)).await.is_err());
}

#[tokio::test]
async fn drain_timeout_bounds_the_shutdown() {
    let mut gw = start_gateway_with(|config, _| config.shutdown_timeout = Duration::from_millis(200)).await;
    let request = Request::get(gw.url("/hang")).body(empty()).expect("request");
    let in_flight = tokio::spawn(client().request(request));
    assert_eq!(
        bounded("arrival", gw.upstream.arrivals.recv()).await.as_deref(),
        Some("/hang")
    );

    let started = Instant::now();
    gw.stop().await;
    // The upstream would hang for 60 s and its timeout is 5 s: only the 200 ms drain can have ended this.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(
        bounded("in-flight request", in_flight).await.expect("task").is_err(),
        "connection closed"
    );
}

/// Collects what `run_with` writes to "stdout".
struct Stdout(std_mpsc::Sender<Vec<u8>>);

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = self.0.send(buf.to_vec());
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn run_cli(args: &[&str]) -> ExitCode {
    quiet_logs();
    // The admin listener is off unless a case asks for it: these never serve.
    let args: Vec<String> = ["testgw", "--admin-listen=off"]
        .into_iter()
        .chain(args.iter().copied())
        .map(str::to_owned)
        .collect();
    let (tx, _rx) = std_mpsc::channel();
    // Every case here fails before serving, so the shutdown future is never awaited.
    cli::run_with(&API, args, &mut Stdout(tx), std::future::pending())
}

#[tokio::test]
async fn cli_prints_the_admin_and_listening_lines_serves_and_stops_cleanly() {
    quiet_logs();
    let upstream = start_upstream().await;
    let args = vec![
        "testgw".to_owned(),
        "--listen=127.0.0.1:0".to_owned(),
        "--admin-listen=127.0.0.1:0".to_owned(),
        "--workers=1".to_owned(),
        "--shutdown-timeout=2s".to_owned(),
        format!("--upstream=echo=http://{}", upstream.addr),
        "--log-format=json".to_owned(),
    ];
    let (out_tx, out_rx) = std_mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let gateway = std::thread::spawn(move || {
        cli::run_with(&API, args, &mut Stdout(out_tx), async move {
            let _ = stop_rx.await;
        })
    });

    let first_lines = tokio::task::spawn_blocking(move || {
        let mut text = Vec::new();
        while text.iter().filter(|b| **b == b'\n').count() < 2 {
            match out_rx.recv_timeout(STEP) {
                Ok(chunk) => text.extend(chunk),
                Err(err) => panic!("no listening line: {err}; got {:?}", String::from_utf8_lossy(&text)),
            }
        }
        (String::from_utf8(text).expect("utf-8"), out_rx)
    });
    let (text, out_rx) = bounded("listening lines", first_lines).await.expect("join");
    let (admin_line, line) = text.split_once('\n').expect("two lines");
    let line = line.to_owned();
    // `admin on http://ADDR (metrics: http://ADDR/metrics)`, then `listening on http://ADDR`.
    let admin: SocketAddr = admin_line
        .strip_prefix("admin on http://")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {admin_line:?}"));
    let addr: SocketAddr = line
        .strip_prefix("listening on http://")
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("unexpected line {line:?}"));
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");

    let (parts, _) = get(&format!("http://{addr}/health")).await;
    assert_eq!(parts.status, 200);
    let (parts, body) = get(&format!("http://{addr}/pets/5")).await;
    assert_eq!(parts.status, 200);
    assert_eq!(json(&body)["path"], "/internal/pets/5");
    let (parts, _) = get(&format!("http://{admin}/_gateway/health")).await;
    assert_eq!(parts.status, 200);

    stop_tx.send(()).expect("gateway waiting");
    let code = bounded("exit", tokio::task::spawn_blocking(move || gateway.join()))
        .await
        .expect("join");
    assert_eq!(code.expect("no panic"), ExitCode::SUCCESS);
    // Nothing else on this writer (the access log writes to the process's own stdout).
    let rest: Vec<u8> = out_rx.try_iter().flatten().collect();
    assert!(rest.is_empty(), "more stdout: {:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn cli_rejects_bad_input_with_a_usage_error() {
    for args in [
        &["--upstream", "nope=http://127.0.0.1:1"][..],
        &["--upstream", "echo=ftp://127.0.0.1:1"],
        &["--upstream", "echo"],
        &["--upstream", "echo=http://"],
        &["--listen", "nonsense"],
        &["--workers", "0"],
        &["--shutdown-timeout", "soon"],
        &["--log-format", "xml"],
        &["--bogus"],
    ] {
        assert_eq!(run_cli(args), ExitCode::from(2), "{args:?}");
    }
}

#[test]
fn cli_reports_a_busy_port() {
    // A plain listener (no SO_REUSEPORT) cannot be shared, so binding its port fails.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = busy.local_addr().expect("addr").to_string();
    assert_eq!(run_cli(&["--listen", &addr, "--workers", "1"]), ExitCode::FAILURE);
}

#[test]
fn cli_version_and_help() {
    assert_eq!(
        cli::command(&API).render_version(),
        format!(
            "testgw 1.2.3 (spec tests/runtime.yaml, gateway-runtime {})\n",
            cli::RUNTIME_VERSION
        )
    );
    let help = cli::command(&API).render_long_help().to_string();
    for flag in [
        "--listen",
        "--stage",
        "--workers",
        "--shutdown-timeout",
        "--upstream",
        "--log-format",
        "--version",
    ] {
        assert!(help.contains(flag), "{flag} missing from help:\n{help}");
    }
    assert_eq!(run_cli(&["--version"]), ExitCode::SUCCESS);
}

#[test]
fn start_rejects_bad_upstream_overrides() {
    let config = |o: &str| ServerConfig {
        upstream_overrides: vec![o.parse().expect("override syntax")],
        ..ServerConfig::new("127.0.0.1:0".parse().expect("addr"))
    };
    let err = server::start(&API, config("nope=http://127.0.0.1:1")).expect_err("unknown upstream");
    assert_eq!(
        err.to_string(),
        "unknown upstream `nope` (this gateway has: echo, slow, down, stall)"
    );
    let err = server::start(&API, config("echo=https://user:pw@127.0.0.1/")).expect_err("credentials");
    assert!(matches!(err, ServerError::Upstream(_)), "{err}");
}

const fn mock_op(id: &'static str, method: Method, route: &'static str) -> OperationSpec {
    OperationSpec {
        id,
        method,
        template: route,
        route,
        path_params: &[],
        path_suffixes: &[],
        validate: None,
        security: &[],
        cors: None,
        ip: None,
        compression: None,
        websocket: false,
        plans: &[],
        throttle: None,
        cache: None,
        responses: &[],
        body: gateway_runtime::spec::BodySpec::limit(gateway_runtime::spec::DEFAULT_MAX_BODY),
        schema_params: &[],
        transform: None,
        responses_check: None,
        target: TargetSpec::Mock(MockSpec {
            status: 200,
            headers: &[],
            content_type: "",
            body: "",
        }),
    }
}

static DUPLICATE: ApiSpec = ApiSpec {
    name: "dup",
    spec_file: "dup.yaml",
    api_version: "1",
    upstreams: &[],
    operations: &[mock_op("a", Method::GET, "/x"), mock_op("b", Method::GET, "/x")],
    cache: gateway_runtime::spec::CacheSettings {
        capacity: 1 << 20,
        max_entry: 1 << 16,
    },
    ..ApiSpec::EMPTY
};

static CONFLICT: ApiSpec = ApiSpec {
    name: "conflict",
    spec_file: "conflict.yaml",
    api_version: "1",
    upstreams: &[],
    operations: &[
        mock_op("a", Method::GET, "/x/{p0}"),
        mock_op("b", Method::GET, "/x/{*p0}"),
    ],
    cache: gateway_runtime::spec::CacheSettings {
        capacity: 1 << 20,
        max_entry: 1 << 16,
    },
    ..ApiSpec::EMPTY
};

#[test]
fn start_rejects_an_inconsistent_operation_table() {
    let config = || ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
    match server::start(&DUPLICATE, config()) {
        Err(ServerError::Router(RouterError::DuplicateOperation {
            first: "a",
            second: "b",
            ..
        })) => {}
        other => panic!("{other:?}"),
    }
    match server::start(&CONFLICT, config()) {
        Err(ServerError::Router(RouterError::InvalidRoute { .. })) => {}
        other => panic!("{other:?}"),
    }
}
