//! `tls`: what HTTPS costs the gateway against nginx, each serving the same certificate (ECDSA P-256, a CA made for
//! the run) in front of the same origin, over plain HTTP to it as in `passthrough`:
//!
//! - **Kept-alive HTTPS**: `GET /inventory` under `--connections` connections, the handshakes done once at the
//!   start: the cost of encrypting and decrypting the traffic.
//! - **Handshakes**: the same with `Connection: close`, so that every request opens a new connection with a full
//!   handshake (wrk resumes no sessions): the rate of new TLS connections each can take.
//! - **HTTP/2**: `h2load -n N -c C -m 10` over TLS (ALPN `h2`), ten streams in flight per connection, when `h2load`
//!   (nghttp2-client) is on `PATH`; otherwise skipped, and the report says so.
//!
//! The wrk runs are interleaved rounds like every other scenario; the h2load runs too (gateway, nginx, per round),
//! bounded in requests and in time. Reported: req/s of each, and gateway/nginx ratios (the median of per-round
//! ratios).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::process::output_within;

use super::machine::{find_program, version_of};
use super::report::{CPU_COLUMN, Section, Table, count, load_cells, ms, ratio, review, rps, with_notes};
use super::rounds::{Series, measure, no_hook, throughput_ratio, warm_up};
use super::servers::{BODY_BYTES, PASSTHROUGH_PATH, Proxy, Stack, Target};
use super::wrk::{self, Shape, median};
use super::{Bench, Scenario};

const TARGETS: [Target; 4] = [
    Target::GatewayTls,
    Target::NginxTls,
    Target::GatewayHandshake,
    Target::NginxHandshake,
];

/// Streams in flight per HTTP/2 connection (`h2load -m`).
const H2_STREAMS: u32 = 10;
/// HTTP/2 requests per measured run for each second of `--duration` (`h2load -n`), at least [`H2_MIN_REQUESTS`].
const H2_REQUESTS_PER_SECOND: u64 = 10_000;
/// The fewest HTTP/2 requests of a measured run.
const H2_MIN_REQUESTS: u64 = 10_000;
/// How to install h2load on Debian and Ubuntu.
const H2LOAD_INSTALL: &str = "apt-get install -y nghttp2-client";

/// Throughput ratios, each the median of the ratios within a round.
#[derive(Serialize)]
struct Ratios {
    https_gateway_over_nginx: Option<f64>,
    handshakes_gateway_over_nginx: Option<f64>,
    h2_gateway_over_nginx: Option<f64>,
}

/// The figures of one h2load run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
struct H2Load {
    /// Requests asked for.
    requests: f64,
    /// Answered with a 2xx.
    succeeded: f64,
    /// Failed (no answer, or a stream error), errored (a connection error) and timed out, together.
    failed: f64,
    /// As h2load measured it.
    rps: f64,
}

/// One measured h2load run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
enum H2Run {
    Ok {
        round: u32,
        #[serde(flatten)]
        load: H2Load,
    },
    Failed {
        round: u32,
        error: String,
    },
}

impl H2Run {
    fn load(&self) -> Option<&H2Load> {
        match self {
            Self::Ok { load, .. } => Some(load),
            Self::Failed { .. } => None,
        }
    }
}

/// Every h2load run of one target.
#[derive(Debug, Clone, Serialize)]
struct H2Series {
    target: Target,
    runs: Vec<H2Run>,
    /// The median req/s over the runs that succeeded.
    median_rps: Option<f64>,
    /// Requests that failed over every run.
    failed_total: f64,
}

/// The HTTP/2 part: its settings and runs, or why it did not run.
#[derive(Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
enum H2 {
    Ran {
        h2load_version: String,
        requests_per_run: u64,
        connections: u32,
        streams: u32,
        series: Vec<H2Series>,
    },
    Skipped {
        reason: String,
    },
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    series: Vec<Series>,
    http2: H2,
    ratios: Ratios,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(bench, "tls", None, &[Proxy::TlsGateway, Proxy::TlsNginx])?;
    // Over HTTPS, trusting only the run's CA: each answers with the origin's body, and each request reached it.
    stack.smoke_check(&[Target::GatewayTls, Target::NginxTls])?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    // Socket errors in the handshake runs can be the machine's (ports in TIME_WAIT), so they are reported, not
    // counted as the gateway's problems; an error on kept-alive connections is one.
    let (mut notes, mut problems) = review(&series, |s| s.target == Target::GatewayTls);
    notes.extend(warm_up_failures.iter().cloned());
    problems.extend(warm_up_failures);

    let http2 = match find_program("h2load") {
        Some(h2load) => http2(bench, &mut stack, &h2load, &shape, &mut notes, &mut problems),
        None => {
            let reason = format!("h2load is not on PATH (Debian/Ubuntu: {H2LOAD_INSTALL})");
            println!("  HTTP/2 runs skipped: {reason}");
            H2::Skipped { reason }
        }
    };
    notes.extend(stack.log_findings());

    let ratios = Ratios {
        https_gateway_over_nginx: throughput_ratio(&series, Target::GatewayTls, Target::NginxTls),
        handshakes_gateway_over_nginx: throughput_ratio(&series, Target::GatewayHandshake, Target::NginxHandshake),
        h2_gateway_over_nginx: match &http2 {
            H2::Ran { series, .. } => h2_ratio(series),
            H2::Skipped { .. } => None,
        },
    };
    let text = render(bench, &shape, &series, &http2, &ratios, &notes);
    let results = Results {
        shape,
        series,
        http2,
        ratios,
        notes,
    };
    Ok(Section::new(Scenario::Tls, text, results, problems))
}

/// The h2load runs: a warm-up of each target, then `--repeat` rounds of gateway, nginx.
fn http2(
    bench: &Bench,
    stack: &mut Stack,
    h2load: &Path,
    shape: &Shape,
    notes: &mut Vec<String>,
    problems: &mut Vec<String>,
) -> H2 {
    let targets = [Target::GatewayTls, Target::NginxTls];
    let requests = (H2_REQUESTS_PER_SECOND * shape.duration.as_secs()).max(H2_MIN_REQUESTS);
    let warm_up_requests = (H2_REQUESTS_PER_SECOND * bench.warmup.as_secs()).max(H2_MIN_REQUESTS / 10);
    // Time enough for a slow machine (a tenth of the expected rate), and no more.
    let limit = shape.duration * 10 + Duration::from_secs(30);
    for target in targets {
        if let Err(e) = h2_once(bench, stack, h2load, target, warm_up_requests, shape, limit) {
            println!("  warm-up h2 {:<18} FAILED: {e:#}", target.name());
            notes.push(format!("h2 warm-up of {}: {e:#}", target.name()));
            problems.push(format!("h2 warm-up of {}: {e:#}", target.name()));
        }
    }
    let mut runs: Vec<Vec<H2Run>> = vec![Vec::new(); targets.len()];
    for round in 1..=bench.repeat {
        for (i, &target) in targets.iter().enumerate() {
            let run = match h2_once(bench, stack, h2load, target, requests, shape, limit) {
                Ok(load) => {
                    println!(
                        "  round {round}/{} h2 {:<18} {:>9} req/s  failed {}",
                        bench.repeat,
                        target.name(),
                        rps(load.rps),
                        count(load.failed)
                    );
                    H2Run::Ok { round, load }
                }
                Err(e) => {
                    println!(
                        "  round {round}/{} h2 {:<18} FAILED: {e:#}",
                        bench.repeat,
                        target.name()
                    );
                    H2Run::Failed {
                        round,
                        error: format!("{e:#}"),
                    }
                }
            };
            runs[i].push(run);
        }
    }
    let series: Vec<H2Series> = targets
        .iter()
        .zip(runs)
        .map(|(&target, runs)| {
            let loads: Vec<&H2Load> = runs.iter().filter_map(H2Run::load).collect();
            H2Series {
                target,
                median_rps: median(loads.iter().map(|l| l.rps).collect()),
                failed_total: loads.iter().map(|l| l.failed).sum(),
                runs,
            }
        })
        .collect();
    for s in &series {
        let failures: Vec<&str> = s
            .runs
            .iter()
            .filter_map(|r| match r {
                H2Run::Failed { error, .. } => Some(error.as_str()),
                H2Run::Ok { .. } => None,
            })
            .collect();
        if let Some(first) = failures.first() {
            let note = format!(
                "h2 {}: {} of {} runs FAILED; first: {first}",
                s.target.name(),
                failures.len(),
                s.runs.len()
            );
            notes.push(note.clone());
            problems.push(note);
        }
        if s.failed_total > 0.0 {
            let note = format!(
                "h2 {}: {} failed requests over all runs",
                s.target.name(),
                count(s.failed_total)
            );
            if s.target == Target::GatewayTls {
                problems.push(note.clone());
            }
            notes.push(note);
        }
    }
    H2::Ran {
        h2load_version: version_of(h2load, "--version").unwrap_or_else(|| String::from("unknown")),
        requests_per_run: requests,
        connections: shape.connections,
        streams: H2_STREAMS,
        series,
    }
}

/// One h2load run of `requests` against `target`, killed after `limit`; fails if h2load fails, if HTTP/2 was not
/// negotiated, or if the server (or the origin) is gone before or after.
fn h2_once(
    bench: &Bench,
    stack: &mut Stack,
    h2load: &Path,
    target: Target,
    requests: u64,
    shape: &Shape,
    limit: Duration,
) -> anyhow::Result<H2Load> {
    stack.check_alive(target)?;
    let url = stack.url(target)?;
    let mut command = bench.placement.client(h2load);
    command.args([
        format!("-n{requests}"),
        format!("-c{}", shape.connections),
        format!("-m{H2_STREAMS}"),
        format!("-t{}", shape.threads.min(shape.connections)),
        url,
    ]);
    let output = output_within(command, limit)?;
    stack.check_alive(target)?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!(
            "h2load failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    parse_h2load(&stdout)
}

/// Reads h2load's summary: the `Application protocol:` line (must be `h2`), `finished in …, N req/s, …` and
/// `requests: N total, … N succeeded, N failed, N errored, N timeout`.
fn parse_h2load(stdout: &str) -> anyhow::Result<H2Load> {
    let protocol = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Application protocol:"))
        .map(str::trim);
    if protocol != Some("h2") {
        bail!(
            "HTTP/2 was not negotiated (application protocol: {})",
            protocol.unwrap_or("none")
        );
    }
    let finished = stdout
        .lines()
        .find(|l| l.starts_with("finished in"))
        .context("no `finished in` line")?;
    let rate = finished
        .split(',')
        .find_map(|part| part.trim().strip_suffix(" req/s"))
        .context("no req/s in the `finished in` line")?
        .trim()
        .parse::<f64>()
        .context("req/s is not a number")?;
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("requests:"))
        .context("no `requests:` line")?;
    let field = |name: &str| -> anyhow::Result<f64> {
        line.split(',')
            .find_map(|part| part.trim().strip_suffix(name))
            .with_context(|| format!("no `{name}` count"))?
            .trim()
            .parse::<f64>()
            .with_context(|| format!("`{name}` is not a number"))
    };
    Ok(H2Load {
        requests: field("total")?,
        succeeded: field("succeeded")?,
        failed: field("failed")? + field("errored")? + field("timeout")?,
        rps: rate,
    })
}

/// The gateway's h2 req/s over nginx's, per round, median.
fn h2_ratio(series: &[H2Series]) -> Option<f64> {
    let of = |target| series.iter().find(|s| s.target == target);
    let (gateway, nginx) = (of(Target::GatewayTls)?, of(Target::NginxTls)?);
    let ratios = gateway
        .runs
        .iter()
        .zip(&nginx.runs)
        .filter_map(|(g, n)| Some(g.load()?.rps / n.load()?.rps))
        .collect();
    median(ratios)
}

fn render(bench: &Bench, shape: &Shape, series: &[Series], http2: &H2, ratios: &Ratios, notes: &[String]) -> String {
    let mut table = Table::new(&[
        "target",
        "connections",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        CPU_COLUMN,
    ]);
    for s in series {
        let kind = match s.target {
            Target::GatewayHandshake | Target::NginxHandshake => "one per request",
            _ => "kept alive",
        };
        let mut cells = vec![s.target.name().to_owned(), kind.to_owned()];
        cells.extend(load_cells(s, ms));
        table.row(cells);
    }
    let title = format!(
        "tls: GET {PASSTHROUGH_PATH} over HTTPS (TLS 1.2/1.3, one ECDSA P-256 certificate), proxied to the origin \
         ({BODY_BYTES}-byte JSON); wrk {}; median of {} interleaved rounds",
        shape.describe(),
        bench.repeat
    );
    let mut lines = vec![format!(
        "gateway/nginx throughput (median of per-round ratios): kept-alive HTTPS {}, a handshake per request {}",
        ratio(ratios.https_gateway_over_nginx),
        ratio(ratios.handshakes_gateway_over_nginx)
    )];
    match http2 {
        H2::Ran {
            h2load_version,
            requests_per_run,
            connections,
            streams,
            series,
        } => {
            let cells: Vec<String> = series
                .iter()
                .map(|s| {
                    format!(
                        "{} {} req/s ({} failed)",
                        s.target.name(),
                        s.median_rps.map_or_else(|| String::from("FAILED"), rps),
                        count(s.failed_total)
                    )
                })
                .collect();
            lines.push(format!(
                "HTTP/2 (h2load {h2load_version} -n{requests_per_run} -c{connections} -m{streams}, ALPN h2; median \
                 of {} rounds): {}; gateway/nginx {}",
                bench.repeat,
                cells.join(", "),
                ratio(ratios.h2_gateway_over_nginx)
            ));
        }
        H2::Skipped { reason } => lines.push(format!("HTTP/2: skipped: {reason}")),
    }
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H2LOAD_OUT: &str = "starting benchmark...
spawning thread #0: 32 total client(s). 50000 total requests
TLS Protocol: TLSv1.3
Cipher: TLS_AES_256_GCM_SHA384
Server Temp Key: X25519 253 bits
Application protocol: h2
progress: 10% done
finished in 1.46s, 68493.15 req/s, 15.22MB/s
requests: 100000 total, 100000 started, 99990 done, 99980 succeeded, 10 failed, 5 errored, 5 timeout
status codes: 99980 2xx, 0 3xx, 0 4xx, 0 5xx
";

    #[test]
    fn parses_h2load() -> anyhow::Result<()> {
        let load = parse_h2load(H2LOAD_OUT)?;
        assert_eq!(
            load,
            H2Load {
                requests: 100_000.0,
                succeeded: 99_980.0,
                failed: 20.0,
                rps: 68_493.15
            }
        );
        let http1 = H2LOAD_OUT.replace("Application protocol: h2", "Application protocol: http/1.1");
        assert!(parse_h2load(&http1).is_err());
        assert!(parse_h2load("No protocol negotiated. Aborted\n").is_err());
        Ok(())
    }

    #[test]
    fn h2_ratios_pair_rounds() {
        let run = |round, rps| H2Run::Ok {
            round,
            load: H2Load {
                rps,
                ..H2Load::default()
            },
        };
        let series = [
            H2Series {
                target: Target::GatewayTls,
                runs: vec![run(1, 80.0), run(2, 90.0)],
                median_rps: None,
                failed_total: 0.0,
            },
            H2Series {
                target: Target::NginxTls,
                runs: vec![run(1, 100.0), run(2, 100.0)],
                median_rps: None,
                failed_total: 0.0,
            },
        ];
        assert_eq!(h2_ratio(&series).map(|r| (r * 100.0).round()), Some(85.0));
    }
}
