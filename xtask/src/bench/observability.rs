//! `observability`: what the metrics and the access log cost, on against off, as a ratio (the goal: ≥ 0.95×).
//!
//! The petstore gateway runs twice, side by side, in front of the same origin:
//!
//! - **off**: `--access-log off --admin-listen off`, as every other scenario runs it;
//! - **on**, as a user runs it by default: the admin listener on (`--admin-listen 127.0.0.1:0`, so the per-worker
//!   counters are recorded), scraped once a second during the whole load by a thread of this task (a scraper is
//!   part of "metrics on" in production), and the JSON access log to a file in the scenario's directory
//!   (`--access-log target/bench/observability/access.log`), as production would write it rather than to a pipe.
//!
//! Interleaved rounds (off, on, off hit, on hit): the plain proxied `GET /inventory` and the cached `GET /pets/1`
//! (refreshed just before each run, as in the `cache` scenario, and checked not to reach the origin during it). A hit
//! does little work of its own, so what observing it costs weighs more there. Reported: the on/off throughput ratio
//! and the p50/p99 deltas, each taken within a round, median over rounds; each gateway's CPU time per request
//! ([`cpu`](super::cpu), per run); and, for the access log, the lines in the file after the run against the
//! requests the gateway counted (`gateway_requests_total`) and the lines it dropped
//! (`gateway_access_log_dropped_lines_total`), from a last scrape: lines + dropped must equal the requests, and the
//! log kept up when nothing was dropped. The file is removed once counted (a default run writes about 1 GB).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::process::http_get;

use super::cache;
use super::memory::{Sample, mib};
use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, ratio, review, with_notes};
use super::rounds::{Series, cpu_ratio, measure, paired, throughput_ratio, warm_up};
use super::servers::{ACCESS_LOG, CACHED_PATH, PASSTHROUGH_PATH, Proxy, Stack, Target};
use super::wrk::{self, Shape};
use super::{Bench, Scenario};

/// Measured in this order every round: each route off, then on.
const TARGETS: [Target; 4] = [
    Target::Gateway,
    Target::Observed,
    Target::GatewayHit,
    Target::ObservedHit,
];

/// The targets served from the cache.
const CACHED: [Target; 2] = [Target::GatewayHit, Target::ObservedHit];

/// The routes: (off, on).
const PAIRS: [(Target, Target); 2] = [
    (Target::Gateway, Target::Observed),
    (Target::GatewayHit, Target::ObservedHit),
];

/// The goal: observability on keeps at least this fraction of the throughput with it off.
const GOAL: f64 = 0.95;

/// How often the scraper asks for `/metrics` (Prometheus' usual interval is 15 s to 1 min: this is a busy scraper).
const SCRAPE_EVERY: Duration = Duration::from_secs(1);

/// How long the access log's writer may take, after the load, to write what it has queued.
const LOG_SETTLE: Duration = Duration::from_secs(5);

/// The metrics read back: (family, sample). The gateway leaves out a counter's samples while they are zero, so a
/// family declared without samples reads as 0.
const REQUESTS: (&str, &str) = ("gateway_requests", "gateway_requests_total");
const DROPPED: (&str, &str) = (
    "gateway_access_log_dropped_lines",
    "gateway_access_log_dropped_lines_total",
);

/// One route, on against off; each figure the median over rounds of the figure within a round.
#[derive(Serialize)]
struct Comparison {
    off: Target,
    on: Target,
    /// On over off throughput.
    throughput_ratio: Option<f64>,
    /// On minus off, in µs.
    p50_delta_us: Option<f64>,
    p99_delta_us: Option<f64>,
    /// CPU time per request of each gateway, in µs (median over runs), and on over off (median of per-round ratios).
    cpu_off_us: Option<f64>,
    cpu_on_us: Option<f64>,
    cpu_ratio: Option<f64>,
}

/// What the scraper saw.
#[derive(Debug, Default, Serialize)]
struct Scrapes {
    interval_s: f64,
    ok: u32,
    failed: u32,
    first_failure: Option<String>,
    /// The slowest answer, in ms.
    slowest_ms: f64,
    /// The size of the last answer, in bytes (headers included).
    last_bytes: usize,
}

/// The access log against what the gateway counted, after the load.
#[derive(Serialize)]
struct LogAccount {
    path: PathBuf,
    /// Lines in the file.
    lines: u64,
    bytes: u64,
    /// `gateway_requests_total`, summed: every request the gateway answered (smoke checks and refreshes included).
    requests: u64,
    /// `gateway_access_log_dropped_lines_total`.
    dropped: u64,
}

impl LogAccount {
    /// Lines + dropped = requests: every line is either in the file or counted as dropped.
    fn accounted(&self) -> bool {
        self.lines + self.dropped == self.requests
    }
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    series: Vec<Series>,
    comparisons: Vec<Comparison>,
    scrapes: Scrapes,
    access_log: Option<LogAccount>,
    memory: Vec<Sample>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(bench, "observability", None, &[Proxy::Gateway, Proxy::ObservedGateway])?;
    let admin = stack
        .server(Target::Observed)?
        .admin
        .context("the gateway with observability on printed no `admin on http://…` line")?;
    if let Some(admin) = stack.server(Target::Gateway)?.admin {
        bail!("the gateway with observability off has an admin listener ({admin})");
    }
    stack.smoke_check(&[Target::Gateway, Target::Observed])?;
    for target in [Target::GatewayHit, Target::ObservedHit] {
        cache::check_hits(&mut stack, target)?;
    }
    scrape(admin).context("scraping the gateway's metrics before the load")?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };

    let scraper = Scraper::start(admin);
    // Around each run: the cache hits' entries refreshed before it (so that none expires during the run), and no
    // request of the run reaching the origin.
    let mut watch = cache::OriginWatch::new(&CACHED);
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, |phase, stack, target| {
        watch.hook(phase, stack, target)
    });
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, |phase, stack, target| {
        watch.hook(phase, stack, target)
    });
    let scrapes = scraper.stop();

    let memory: Vec<Sample> = [Target::Gateway, Target::Observed]
        .into_iter()
        .map(|t| Sample {
            target: t,
            memory: stack.memory(t),
        })
        .collect();
    let log = stack.dir().join(ACCESS_LOG);
    let account = settle(admin, &log);
    // A default run writes about a gigabyte of lines; the count is what is kept (the rest of the directory stays).
    let _ = std::fs::remove_file(&log);
    let comparisons: Vec<Comparison> = PAIRS.iter().map(|&(off, on)| compare(&series, off, on)).collect();

    let (mut notes, mut problems) = review(&series, |_| true);
    let mut found = warm_up_failures;
    if scrapes.failed > 0 {
        found.push(format!(
            "{} of {} scrapes of /metrics failed during the load; first: {}",
            scrapes.failed,
            scrapes.ok + scrapes.failed,
            scrapes.first_failure.as_deref().unwrap_or("?")
        ));
    }
    let account = match account {
        Ok(account) => {
            if !account.accounted() {
                found.push(format!(
                    "access log: {} lines + {} dropped ≠ {} requests served: lines were lost without being counted",
                    account.lines, account.dropped, account.requests
                ));
            }
            Some(account)
        }
        Err(e) => {
            found.push(format!("access log: {e:#}"));
            None
        }
    };
    notes.extend(found.iter().cloned());
    problems.extend(found);
    notes.extend(stack.log_findings());

    let results = Results {
        shape,
        series,
        comparisons,
        scrapes,
        access_log: account,
        memory,
        notes,
    };
    let text = render(bench, &results);
    Ok(Section::new(Scenario::Observability, text, results, problems))
}

/// `off` against `on`: throughput ratio, latency deltas, CPU per request (each run's, [`Load::cpu_us_per_request`]).
fn compare(series: &[Series], off: Target, on: Target) -> Comparison {
    let cpu_us = |target: Target| {
        series
            .iter()
            .find(|s| s.target == target)
            .and_then(|s| s.median.as_ref()?.cpu_us_per_request)
    };
    Comparison {
        off,
        on,
        throughput_ratio: throughput_ratio(series, on, off),
        p50_delta_us: paired(series, on, off, |on, off| on.p50_us - off.p50_us),
        p99_delta_us: paired(series, on, off, |on, off| on.p99_us - off.p99_us),
        cpu_off_us: cpu_us(off),
        cpu_on_us: cpu_us(on),
        cpu_ratio: cpu_ratio(series, on, off),
    }
}

/// A thread that scrapes `/metrics` every [`SCRAPE_EVERY`] until stopped.
struct Scraper {
    stop: mpsc::Sender<()>,
    thread: JoinHandle<Scrapes>,
}

impl Scraper {
    fn start(admin: SocketAddr) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let mut scrapes = Scrapes {
                interval_s: SCRAPE_EVERY.as_secs_f64(),
                ..Scrapes::default()
            };
            loop {
                let started = Instant::now();
                match scrape(admin) {
                    Ok(bytes) => {
                        scrapes.ok += 1;
                        scrapes.last_bytes = bytes.len();
                        scrapes.slowest_ms = scrapes.slowest_ms.max(started.elapsed().as_secs_f64() * 1e3);
                    }
                    Err(e) => {
                        scrapes.failed += 1;
                        scrapes.first_failure.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
                // A message or a dropped sender both mean stop.
                match stopped.recv_timeout(SCRAPE_EVERY.saturating_sub(started.elapsed())) {
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return scrapes,
                }
            }
        });
        Self { stop, thread }
    }

    /// Stops the thread (at most one scrape later) and returns what it saw.
    fn stop(self) -> Scrapes {
        let _ = self.stop.send(());
        self.thread.join().unwrap_or_else(|_| Scrapes {
            failed: 1,
            first_failure: Some(String::from("the scraper panicked")),
            ..Scrapes::default()
        })
    }
}

/// One scrape: the whole response, which must be a 200 carrying the request counters.
fn scrape(admin: SocketAddr) -> anyhow::Result<String> {
    let (status, response) = http_get(admin, "/metrics")?;
    if status != 200 || !declares(&response, REQUESTS.0) {
        bail!(
            "GET /metrics answered {status}: {}",
            response.chars().take(200).collect::<String>()
        );
    }
    Ok(response)
}

/// After the load: scrapes until the access log holds every line the gateway did not drop (its writer lags by a
/// batch at most), or [`LOG_SETTLE`] has passed; the last scrape and the file's lines then.
fn settle(admin: SocketAddr, path: &Path) -> anyhow::Result<LogAccount> {
    let deadline = Instant::now() + LOG_SETTLE;
    loop {
        let metrics = scrape(admin)?;
        let requests = counter(&metrics, REQUESTS)?;
        let dropped = counter(&metrics, DROPPED)?;
        let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let account = LogAccount {
            path: path.to_owned(),
            lines: text.iter().filter(|&&b| b == b'\n').count() as u64,
            bytes: text.len() as u64,
            requests: requests as u64,
            dropped: dropped as u64,
        };
        if account.lines + account.dropped >= account.requests || Instant::now() >= deadline {
            return Ok(account);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The counter `(family, sample)` summed over its labels: 0 when the family is declared without samples, an error
/// when it is not declared at all (for the dropped lines: the access log is off).
fn counter(text: &str, (family, sample): (&str, &str)) -> anyhow::Result<f64> {
    match metric_sum(text, sample) {
        Some(sum) => Ok(sum),
        None if declares(text, family) => Ok(0.0),
        None => bail!("/metrics has no {family} counter"),
    }
}

/// Whether the text declares the metric family `family` (`# TYPE family …`).
fn declares(text: &str, family: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_prefix(family))
            .is_some_and(|rest| rest.starts_with(' '))
    })
}

/// The sum of every sample of the metric `name` in Prometheus / OpenMetrics text (whatever its labels); `None` when
/// it has none. Label values may hold spaces and braces (a path template): they are skipped as quoted strings.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        let rest = match rest.chars().next() {
            Some('{') => after_labels(rest)?,
            Some(' ') => rest,
            _ => continue, // A longer name that starts with this one.
        };
        if let Some(value) = rest.split_whitespace().next().and_then(|v| v.parse::<f64>().ok()) {
            *total.get_or_insert(0.0) += value;
        }
    }
    total
}

/// What follows a `{…}` label set at the start of `text`.
fn after_labels(text: &str) -> Option<&str> {
    let (mut quoted, mut escaped) = (false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '}' if !quoted => return Some(&text[i + 1..]),
            _ => {}
        }
    }
    None
}

fn render(bench: &Bench, results: &Results) -> String {
    let Results {
        shape,
        series,
        comparisons,
        scrapes,
        access_log: account,
        memory,
        notes,
    } = results;
    let mut table = Table::new(&[
        "target",
        "observability",
        "GET",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        CPU_COLUMN,
        "peak RSS",
    ]);
    for s in series {
        let on = matches!(s.target, Target::Observed | Target::ObservedHit);
        let peak = memory
            .iter()
            .find(|m| m.target == s.target)
            .map_or(String::new(), |m| m.memory.map_or("?".into(), |m| mib(m.peak_kib)));
        let mut cells = vec![
            s.target.name().to_owned(),
            (if on { "on" } else { "off" }).to_owned(),
            s.url_path.to_owned(),
        ];
        cells.extend(load_cells(s, ms));
        cells.push(peak);
        table.row(cells);
    }
    let title = format!(
        "observability: the petstore gateway with metrics (scraped every {}s) and the access log (to a file) on, \
         against the same gateway with both off, side by side in front of the same origin; GET {PASSTHROUGH_PATH} \
         (proxied) and GET {CACHED_PATH} (a cache hit); wrk {}; median of {} interleaved rounds",
        SCRAPE_EVERY.as_secs(),
        shape.describe(),
        bench.repeat
    );
    let verdict = |r: Option<f64>| match r {
        Some(r) if r >= GOAL => "met",
        Some(_) => "not met",
        None => "—",
    };
    let delta = |d: Option<f64>| d.map_or_else(|| String::from("—"), |d| format!("{d:+.0} µs"));
    let cpu_us = |c: Option<f64>| c.map_or_else(|| String::from("—"), |c| format!("{c:.1} µs"));
    let route = |c: &Comparison| {
        if c.off == Target::Gateway {
            "proxied"
        } else {
            "cache hit"
        }
    };
    let mut lines = vec![format!(
        "on/off throughput (median of per-round ratios): {}; goal ≥ {GOAL:.2}×",
        comparisons
            .iter()
            .map(|c| format!(
                "{} {} ({})",
                route(c),
                ratio(c.throughput_ratio),
                verdict(c.throughput_ratio)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    )];
    for c in comparisons {
        lines.push(format!(
            "{}: on − off p50 {}, p99 {}; CPU per request off {}, on {} ({})",
            route(c),
            delta(c.p50_delta_us),
            delta(c.p99_delta_us),
            cpu_us(c.cpu_off_us),
            cpu_us(c.cpu_on_us),
            ratio(c.cpu_ratio)
        ));
    }
    lines.push(String::from(
        "CPU per request: user + system time of the gateway process (every thread: workers, the access log's writer, \
         the admin listener) during each run, from /proc (10 ms ticks), over wrk's requests; median over runs",
    ));
    lines.push(match account.as_ref() {
        Some(a) => {
            let verdict = if !a.accounted() {
                String::from("LINES LOST: lines + dropped ≠ requests")
            } else if a.dropped == 0 {
                String::from("the log kept up: no line dropped")
            } else {
                format!(
                    "the log fell behind: {:.3}% of lines dropped",
                    a.dropped as f64 * 100.0 / a.requests.max(1) as f64
                )
            };
            format!(
                "access log ({}): {} lines written ({}, {:.0} bytes a line) for {} requests served \
                 ({}); {} dropped ({}, last scrape); {verdict}",
                a.path.display(),
                a.lines,
                mib(a.bytes / 1024),
                a.bytes as f64 / a.lines.max(1) as f64,
                a.requests,
                REQUESTS.1,
                a.dropped,
                DROPPED.1
            )
        }
        None => String::from("access log: not accounted for (see below)"),
    });
    lines.push(format!(
        "metrics: {} scrapes of /metrics during the warm-up and the rounds, {} failed; slowest {:.1} ms; last {} bytes",
        scrapes.ok, scrapes.failed, scrapes.slowest_ms, scrapes.last_bytes
    ));
    lines.push(String::from(
        "on: --admin-listen 127.0.0.1:0 (metrics recorded and scraped) --access-log DIR/access.log (a file, as \
         production would); off: --access-log off --admin-listen off",
    ));
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_a_metric_over_its_labels() {
        let text = "# HELP gateway_requests Responses sent.\n\
                    # TYPE gateway_requests counter\n\
                    gateway_requests_total{api=\"petstore\",operation=\"getInventory\",status=\"2xx\"} 1200\n\
                    gateway_requests_total{api=\"petstore\",operation=\"getPet\",status=\"2xx\"} 34\n\
                    gateway_requests_total_other{api=\"petstore\"} 99\n\
                    gateway_request_duration_count{api=\"a b\",template=\"/pets/{petId}\"} 5\n\
                    gateway_access_log_dropped_lines_total 3\n\
                    # EOF\n";
        assert_eq!(metric_sum(text, REQUESTS.1), Some(1234.0));
        assert_eq!(metric_sum(text, DROPPED.1), Some(3.0));
        assert_eq!(metric_sum(text, "gateway_request_duration_count"), Some(5.0));
        assert_eq!(metric_sum(text, "gateway_cache_entries"), None);
    }

    #[test]
    fn a_declared_counter_without_samples_is_zero() -> anyhow::Result<()> {
        let text = "# TYPE gateway_requests counter\n\
                    gateway_requests_total{api=\"petstore\",status=\"2xx\"} 7\n\
                    # HELP gateway_access_log_dropped_lines Access log lines dropped.\n\
                    # TYPE gateway_access_log_dropped_lines counter\n\
                    # EOF\n";
        assert_eq!(counter(text, REQUESTS)?, 7.0);
        assert_eq!(counter(text, DROPPED)?, 0.0);
        assert!(counter("# TYPE gateway_requests counter\n", DROPPED).is_err());
        assert!(!declares(text, "gateway_request"));
        Ok(())
    }

    #[test]
    fn labels_may_hold_braces_and_quotes() {
        assert_eq!(after_labels("{t=\"/pets/{id}\",q=\"a\\\"}\"} 7"), Some(" 7"));
        assert_eq!(after_labels("{t=\"open"), None);
    }

    #[test]
    fn every_line_is_in_the_file_or_dropped() {
        let account = |lines, dropped| LogAccount {
            path: PathBuf::from(ACCESS_LOG),
            lines,
            bytes: 0,
            requests: 100,
            dropped,
        };
        assert!(account(100, 0).accounted());
        assert!(account(90, 10).accounted());
        assert!(!account(90, 0).accounted());
    }
}
