//! `upstreams`: what balancing costs, and what losing a server costs clients.
//!
//! - **Balancing**: `GET /inventory` through the petstore gateway with its `default` upstream one URL (a plain
//!   upstream: no per-request tracking), and with two (the origin twice, round robin: a pick and an in-flight count
//!   per request), nginx and haproxy beside them. Goal: two servers cost under 3% of throughput.
//! - **Failover**: the fleet gateway's `pair` upstream (`tests/specs/fleet.yaml`: two servers, retries of
//!   idempotent requests on connect errors and resets within a 20% budget, health checks every 100 ms, out after two
//!   failures, passive ejection after three) in front of two origins, under wrk's `GET /pair/1`; a third of the way
//!   in, one origin is killed (SIGKILL: its connections reset, its port refuses). Reported: the requests that failed
//!   (non-2xx and socket errors; goal: 0, since the retries cover the moment of the kill) and the time from the kill
//!   until `GET /_gateway/upstreams` shows the server out of rotation.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::process::http_get;

use super::report::{CPU_COLUMN, Section, Table, count, load_cells, ms, ratio, review, with_notes};
use super::rounds::{Series, measure, no_hook, throughput_ratio, warm_up};
use super::servers::{Observability, Proxy, Stack, Target, start_gateway, start_origin};
use super::wrk::{self, Requests, Shape, Statuses};
use super::{Bench, Scenario};

const TARGETS: [Target; 4] = [Target::Gateway, Target::GatewayBalanced, Target::Nginx, Target::Haproxy];

/// The fleet gateway's operation on `pair`.
const FAILOVER_PATH: &str = "/pair/1";
/// How long the failover run waits for the killed server to be out of rotation.
const EJECTION_LIMIT: Duration = Duration::from_secs(10);

#[derive(Serialize)]
struct Ratios {
    two_servers_over_one: Option<f64>,
    two_servers_over_nginx: Option<f64>,
    two_servers_over_haproxy: Option<f64>,
}

#[derive(Serialize)]
struct Failover {
    shape: Shape,
    /// When the server was killed, from the start of the load.
    killed_after_s: f64,
    requests: f64,
    ok: f64,
    /// Answers other than 2xx.
    failed_statuses: f64,
    /// wrk's connect, read, write errors and timeouts.
    socket_errors: f64,
    /// From the kill until the admin side showed the server out of rotation (`None`: not within the limit).
    out_after_ms: Option<f64>,
    /// What took it out: `unhealthy` (active checks) or `ejected` (passive detection).
    out_by: Option<String>,
    /// The gateway's retry budget at the end (requests and retries in its window).
    retry_budget: serde_json::Value,
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    series: Vec<Series>,
    ratios: Ratios,
    failover: Option<Failover>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let (series, mut notes, mut problems) = {
        let mut stack = Stack::start(
            bench,
            "upstreams",
            None,
            &[Proxy::Gateway, Proxy::BalancedGateway, Proxy::Nginx, Proxy::Haproxy],
        )?;
        stack.smoke_check(&TARGETS)?;
        let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
        let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
        let (mut notes, mut problems) = review(&series, |s| {
            matches!(s.target, Target::Gateway | Target::GatewayBalanced)
        });
        notes.extend(warm_up_failures.iter().cloned());
        notes.extend(stack.log_findings());
        problems.extend(warm_up_failures);
        (series, notes, problems)
    };
    let ratios = Ratios {
        two_servers_over_one: throughput_ratio(&series, Target::GatewayBalanced, Target::Gateway),
        two_servers_over_nginx: throughput_ratio(&series, Target::GatewayBalanced, Target::Nginx),
        two_servers_over_haproxy: throughput_ratio(&series, Target::GatewayBalanced, Target::Haproxy),
    };

    // Every server of the first part is stopped by now: the failover run has the machine to itself.
    let failover = match failover(bench, &scripts, &shape) {
        Ok(f) => {
            if f.failed_statuses + f.socket_errors > 0.0 {
                // A measurement, not a check: reported, and a problem only when the run itself failed.
                notes.push(format!(
                    "failover: {} failed requests (goal: 0)",
                    count(f.failed_statuses + f.socket_errors)
                ));
            }
            if f.out_after_ms.is_none() {
                problems.push(format!(
                    "failover: the killed server was still in rotation {}s later",
                    EJECTION_LIMIT.as_secs()
                ));
            }
            Some(f)
        }
        Err(e) => {
            problems.push(format!("failover: {e:#}"));
            None
        }
    };

    let text = render(bench, &shape, &series, &ratios, failover.as_ref(), &notes);
    let results = Results {
        shape,
        series,
        ratios,
        failover,
        notes,
    };
    Ok(Section::new(Scenario::Upstreams, text, results, problems))
}

/// The failover run: two origins behind the fleet gateway, one killed under load.
fn failover(bench: &Bench, scripts: &wrk::Scripts, shape: &Shape) -> anyhow::Result<Failover> {
    let dir = bench.scratch.join("upstreams-failover");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let (dir_a, dir_b) = (dir.join("a"), dir.join("b"));
    for d in [&dir_a, &dir_b] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let origin_a = start_origin(bench, &dir_a, None)?;
    let mut origin_b = start_origin(bench, &dir_b, None)?;
    let upstream = [format!("pair=http://{},http://{}", origin_a.addr, origin_b.addr)];
    let access_log = dir.join("access.log");
    let gateway = start_gateway(
        bench,
        &dir,
        "fleet-gateway",
        &upstream,
        &[],
        &Observability::On { access_log },
        "fleet-gateway.log",
    )?;
    let admin = gateway.admin.context("the fleet gateway printed no admin address")?;
    let killed = format!("http://{}", origin_b.addr);
    if server_state(admin, &killed)?.as_deref() != Some("up") {
        bail!("{killed} is not up before the kill");
    }

    let shape = Shape {
        duration: shape.duration.max(Duration::from_secs(3)),
        ..*shape
    };
    // The counting script sends wrk's own request: the URL's path, not script arguments.
    let url = format!("http://{}{FAILOVER_PATH}", gateway.addr);
    let kill_after = shape.duration / 3;
    let (load, statuses, out) = std::thread::scope(|scope| {
        let load = scope.spawn(|| {
            let requests = Requests {
                url: &url,
                headers: &[],
                paths: &[],
                body: None,
            };
            wrk::run_counting(bench, scripts, &requests, &shape)
        });
        std::thread::sleep(kill_after);
        origin_b.kill();
        let killed_at = Instant::now();
        let mut out = None;
        while killed_at.elapsed() < EJECTION_LIMIT {
            match server_state(admin, &killed) {
                Ok(Some(state)) if state != "up" => {
                    out = Some((killed_at.elapsed(), state));
                    break;
                }
                _ => std::thread::sleep(Duration::from_millis(5)),
            }
        }
        let load = load.join().map_err(|_| anyhow::anyhow!("the wrk thread panicked"))?;
        anyhow::Ok(load.map(|(load, statuses)| (load, statuses, out)))
    })??;
    let budget = upstream_view(admin)?
        .get("retry_budget")
        .cloned()
        .unwrap_or(serde_json::Value::Null);
    drop(gateway);
    drop(origin_a);
    let Statuses { ok, too_many, other } = statuses;
    Ok(Failover {
        shape,
        killed_after_s: kill_after.as_secs_f64(),
        requests: load.requests,
        ok,
        failed_statuses: too_many + other,
        socket_errors: load.connect_errors + load.read_errors + load.write_errors + load.timeouts,
        out_after_ms: out.as_ref().map(|(d, _)| d.as_secs_f64() * 1000.0),
        out_by: out.map(|(_, state)| state),
        retry_budget: budget,
    })
}

/// The fleet gateway's `pair` upstream as `GET /_gateway/upstreams` shows it.
fn upstream_view(admin: std::net::SocketAddr) -> anyhow::Result<serde_json::Value> {
    let (status, response) = http_get(admin, "/_gateway/upstreams")?;
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if status != 200 {
        bail!("/_gateway/upstreams answered {status}: {body}");
    }
    let all: serde_json::Value = serde_json::from_str(body).context("/_gateway/upstreams is not JSON")?;
    all["upstreams"]
        .as_array()
        .and_then(|list| list.iter().find(|u| u["name"] == "pair"))
        .cloned()
        .context("no upstream `pair` in /_gateway/upstreams")
}

/// The state (`up`, `unhealthy`, `ejected`) of the server labelled `server` of `pair`.
fn server_state(admin: std::net::SocketAddr, server: &str) -> anyhow::Result<Option<String>> {
    let view = upstream_view(admin)?;
    Ok(view["servers"].as_array().and_then(|list| {
        list.iter()
            .find(|s| s["server"] == server)
            .and_then(|s| s["state"].as_str().map(str::to_owned))
    }))
}

fn render(
    bench: &Bench,
    shape: &Shape,
    series: &[Series],
    ratios: &Ratios,
    failover: Option<&Failover>,
    notes: &[String],
) -> String {
    let mut table = Table::new(&["target", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", CPU_COLUMN]);
    for s in series {
        let mut cells = vec![s.target.name().to_owned()];
        cells.extend(load_cells(s, ms));
        table.row(cells);
    }
    let title = format!(
        "upstreams: GET /inventory to an upstream of one server, and of two in turn; wrk {}; median of {} \
         interleaved rounds",
        shape.describe(),
        bench.repeat
    );
    let mut lines = vec![format!(
        "two servers / one: {} (goal >= 0.97); / nginx: {}; / haproxy: {}",
        ratio(ratios.two_servers_over_one),
        ratio(ratios.two_servers_over_nginx),
        ratio(ratios.two_servers_over_haproxy),
    )];
    match failover {
        Some(f) => lines.push(format!(
            "failover (fleet gateway, GET {FAILOVER_PATH}, wrk {}): one of two servers killed at {:.1}s; {} requests, \
             {} failed statuses, {} socket errors (goal: 0); out of rotation {} after the kill ({}); retry budget \
             at the end: {}",
            f.shape.describe(),
            f.killed_after_s,
            count(f.requests),
            count(f.failed_statuses),
            count(f.socket_errors),
            f.out_after_ms
                .map_or_else(|| String::from("never"), |ms| format!("{ms:.0} ms")),
            f.out_by.as_deref().unwrap_or("-"),
            f.retry_budget,
        )),
        None => lines.push(String::from("failover: did not run (see the problems)")),
    }
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}
