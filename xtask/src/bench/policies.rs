//! `policies`: what API keys and throttles cost, and how closely a throttle admits what it promises.
//!
//! Both parts run the bench-only gateways of [`variants`](super::variants), in front of the benchmark origin; no
//! operation of theirs is cached, and every one proxies to the origin's `/api/inventory`.
//!
//! - **Overhead.** Three targets, interleaved, under `--connections`: `GET /inventory` of the gateway without
//!   policies; `GET /open` of the gateway with them (the API-wide bucket only); and its `GET /inventory` with a key
//!   on plan `pro` (the key lookup, the API-wide, operation and plan buckets, the quota and the `RateLimit` headers).
//!   Every limit is 10,000,000/s, so every check runs and none refuses: a single `429` is a problem. A smoke check
//!   confirms that the keyed route refuses a request without a key and that its answers name all four limits.
//!   Overhead = 1 − keyed/plain throughput, per round, median. Then the whole stack at once: `PUT /full/7` with the
//!   key, an RS256 token and a ~2 KiB JSON body validated against its schema, against the same `PUT` through the
//!   gateway without policies (goal ≥ 0.9×).
//! - **Accuracy.** `GET /limited` (one bucket, `rate` 1,000/s, `burst` 100) driven by an unthrottled wrk for
//!   `--duration`, `--repeat` times, the bucket full at the start of each run. wrk's `count.lua` counts the 200s and
//!   429s; admitted = the 200s; expected = rate × wrk's own measured duration + burst; the offered rate (requests /
//!   duration) must be at least 5× the rate. The origin's call count is shown beside it: it also counts admitted
//!   requests whose answer wrk did not read before it stopped.

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

use crate::process::{http_get, http_get_with};

use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, ratio, review, rps, with_notes};
use super::rounds::{Series, measure, no_hook, throughput_ratio, warm_up};
use super::servers::{
    FULL_STACK_PATH, KEYED_PATH, LIMITED_PATH, OPEN_PATH, PASSTHROUGH_PATH, PLAIN_BODY_PATH, Proxy, Stack, Target,
};
use super::variants::{self, LIMITED_BURST, LIMITED_RATE, UNREACHED};
use super::wrk::{self, Load, Requests, Scripts, Shape, Statuses, median};
use super::{Bench, Scenario};

/// The overhead targets, measured in this order every round.
const TARGETS: [Target; 9] = [
    Target::Plain,
    Target::ApiThrottle,
    Target::Keyed,
    Target::JwtRs256,
    Target::JwtEs256,
    Target::JwtRs256Uncached,
    Target::JwtEs256Uncached,
    Target::PlainBody,
    Target::FullStack,
];

/// The goal for the overhead: below this fraction of throughput.
const OVERHEAD_GOAL: f64 = 0.05;
/// The goal for the whole stack (key, token, buckets, quota, body validation): at least this much of the same
/// request's throughput through the gateway without policies.
const FULL_STACK_GOAL: f64 = 0.9;
/// The goal for accuracy: admitted within this fraction of rate × seconds + burst.
const ACCURACY_GOAL: f64 = 0.02;
/// The offered load must be at least this many times the rate.
const MIN_OVERLOAD: f64 = 5.0;

/// Throughput ratios, each the median of the ratios within a round.
#[derive(Serialize)]
struct Ratios {
    keyed_over_plain: Option<f64>,
    api_bucket_over_plain: Option<f64>,
    keyed_over_api_bucket: Option<f64>,
    /// 1 − keyed/plain.
    overhead: Option<f64>,
    /// JWT targets over the open operation of the same gateway (the same API-wide bucket, no auth).
    rs256_over_open: Option<f64>,
    es256_over_open: Option<f64>,
    rs256_uncached_over_open: Option<f64>,
    es256_uncached_over_open: Option<f64>,
    /// `PUT /full/7` (every policy) over `PUT /body/7` of the gateway without policies (the same body).
    full_stack_over_plain_body: Option<f64>,
}

/// One accuracy run.
#[derive(Serialize)]
struct AccuracyRun {
    load: Load,
    statuses: Statuses,
    /// Requests sent per second.
    offered_rps: f64,
    /// Rate × duration + burst.
    expected: f64,
    /// (admitted − expected) / expected.
    error: f64,
    /// Requests that reached the origin during the run.
    origin_calls: i64,
}

#[derive(Serialize)]
struct Accuracy {
    rate: u32,
    burst: u32,
    shape: Shape,
    runs: Vec<AccuracyRun>,
    failures: Vec<String>,
    /// The median of the runs' errors.
    median_error: Option<f64>,
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    series: Vec<Series>,
    ratios: Ratios,
    accuracy: Accuracy,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    if bench.build {
        variants::build_some(&[variants::Variant::Policies, variants::Variant::Plain])?;
    }
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(
        bench,
        "policies",
        None,
        &[Proxy::PlainGateway, Proxy::PolicyGateway, Proxy::PolicyGatewayNoCache],
    )?;
    stack.smoke_check(&[
        Target::Plain,
        Target::ApiThrottle,
        Target::Keyed,
        Target::Limited,
        Target::JwtRs256,
        Target::JwtEs256,
        Target::JwtRs256Uncached,
        Target::JwtEs256Uncached,
        Target::PlainBody,
        Target::FullStack,
    ])?;
    check_limits(&mut stack)?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let keyed_over_plain = throughput_ratio(&series, Target::Keyed, Target::Plain);
    let ratios = Ratios {
        keyed_over_plain,
        api_bucket_over_plain: throughput_ratio(&series, Target::ApiThrottle, Target::Plain),
        keyed_over_api_bucket: throughput_ratio(&series, Target::Keyed, Target::ApiThrottle),
        overhead: keyed_over_plain.map(|r| 1.0 - r),
        rs256_over_open: throughput_ratio(&series, Target::JwtRs256, Target::ApiThrottle),
        es256_over_open: throughput_ratio(&series, Target::JwtEs256, Target::ApiThrottle),
        rs256_uncached_over_open: throughput_ratio(&series, Target::JwtRs256Uncached, Target::ApiThrottle),
        es256_uncached_over_open: throughput_ratio(&series, Target::JwtEs256Uncached, Target::ApiThrottle),
        full_stack_over_plain_body: throughput_ratio(&series, Target::FullStack, Target::PlainBody),
    };
    let accuracy = accuracy(bench, &mut stack, &scripts, &shape);

    // A 429 in the overhead runs means a limit refused: every target's errors are problems.
    let (mut notes, mut problems) = review(&series, |_| true);
    notes.extend(warm_up_failures.iter().cloned());
    problems.extend(warm_up_failures);
    let accuracy_problems = accuracy_problems(&accuracy);
    notes.extend(accuracy_problems.iter().cloned());
    problems.extend(accuracy_problems);
    notes.extend(stack.log_findings());

    let text = format!(
        "{}\n\n{}",
        render_overhead(bench, &shape, &series, &ratios, &notes),
        render_accuracy(&accuracy)
    );
    let results = Results {
        shape,
        series,
        ratios,
        accuracy,
        notes,
    };
    Ok(Section::new(Scenario::Policies, text, results, problems))
}

/// Checks that the limits are really there: the keyed route refuses a request without a key, and its answers
/// carry a `RateLimit` item for each of the API-wide, operation and plan buckets and the quota; the open route's
/// for the API-wide bucket only; the plain gateway's none.
fn check_limits(stack: &mut Stack) -> anyhow::Result<()> {
    let addr = stack.server(Target::Keyed)?.addr;
    let (status, _) = http_get(addr, KEYED_PATH)?;
    if status != 401 {
        bail!("the keyed GET {KEYED_PATH} answered {status} without a key, not 401");
    }
    for target in [Target::JwtRs256, Target::JwtEs256] {
        let (status, _) = http_get_with(addr, target.path(), &[("Authorization", "Bearer not.a.token")])?;
        if status != 401 {
            bail!("GET {} answered {status} to a bad token, not 401", target.path());
        }
    }
    let expectations: [(Target, &[&str], &[&str]); 3] = [
        (
            Target::Keyed,
            &["\"api\"", "\"operation\"", "\"plan\"", "\"quota\""],
            &[],
        ),
        (
            Target::ApiThrottle,
            &["\"api\""],
            &["\"operation\"", "\"plan\"", "\"quota\""],
        ),
        (Target::Plain, &[], &["\"api\""]),
    ];
    for (target, present, absent) in expectations {
        let addr = stack.server(target)?.addr;
        let (_, response) = http_get_with(addr, target.path(), target.headers())?;
        let policy = response
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.to_lowercase().strip_prefix("ratelimit-policy:").map(str::to_owned))
            .unwrap_or_default();
        let missing = present.iter().find(|item| !policy.contains(*item));
        let extra = absent.iter().find(|item| policy.contains(*item));
        if let Some(item) = missing.or(extra) {
            bail!(
                "{} (GET {}): RateLimit-Policy {policy:?} {} {item}",
                target.name(),
                target.path(),
                if missing.is_some() { "lacks" } else { "has" }
            );
        }
    }
    Ok(())
}

/// `--repeat` accuracy runs of `GET /limited`, each from a full bucket.
fn accuracy(bench: &Bench, stack: &mut Stack, scripts: &Scripts, shape: &Shape) -> Accuracy {
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=bench.repeat {
        match accuracy_run(bench, stack, scripts, shape) {
            Ok(run) => {
                println!(
                    "  accuracy {round}/{} {:>9} req/s offered  admitted {} of expected {:.0} ({:+.2}%)  429 {}",
                    bench.repeat,
                    rps(run.offered_rps),
                    run.statuses.ok,
                    run.expected,
                    run.error * 100.0,
                    run.statuses.too_many
                );
                runs.push(run);
            }
            Err(e) => {
                println!("  accuracy {round}/{} FAILED: {e:#}", bench.repeat);
                failures.push(format!("accuracy run {round}: {e:#}"));
            }
        }
    }
    Accuracy {
        rate: LIMITED_RATE,
        burst: LIMITED_BURST,
        shape: *shape,
        median_error: median(runs.iter().map(|r| r.error).collect()),
        runs,
        failures,
    }
}

/// One accuracy run: waits until the bucket is full, then drives it and counts.
fn accuracy_run(bench: &Bench, stack: &mut Stack, scripts: &Scripts, shape: &Shape) -> anyhow::Result<AccuracyRun> {
    stack.check_alive(Target::Limited)?;
    // From empty, the bucket fills in burst / rate seconds; wait twice that, and at least a second.
    let refill = Duration::from_secs_f64(2.0 * f64::from(LIMITED_BURST) / f64::from(LIMITED_RATE));
    std::thread::sleep(refill.max(Duration::from_secs(1)));
    let url = stack.url(Target::Limited)?;
    let before = stack.origin_calls()?;
    let requests = Requests {
        url: &url,
        headers: &[],
        paths: &[],
        body: None,
    };
    let counted = wrk::run_counting(bench, scripts, &requests, shape);
    stack.check_alive(Target::Limited)?;
    let (load, statuses) = counted?;
    let origin_calls = stack.origin_calls()? - before;
    Ok(AccuracyRun::new(load, statuses, origin_calls))
}

impl AccuracyRun {
    /// The run's figures against [`LIMITED_RATE`] and [`LIMITED_BURST`].
    fn new(load: Load, statuses: Statuses, origin_calls: i64) -> Self {
        let expected = f64::from(LIMITED_RATE) * load.duration_s + f64::from(LIMITED_BURST);
        Self {
            offered_rps: load.requests / load.duration_s,
            error: (statuses.ok - expected) / expected,
            expected,
            load,
            statuses,
            origin_calls,
        }
    }
}

/// What invalidates the accuracy runs: a failed run, too little load, answers not all counted, answers other than
/// 200 and 429, socket errors.
fn accuracy_problems(accuracy: &Accuracy) -> Vec<String> {
    let mut problems = accuracy.failures.clone();
    let floor = MIN_OVERLOAD * f64::from(accuracy.rate);
    for (i, run) in accuracy.runs.iter().enumerate() {
        if run.offered_rps < floor {
            problems.push(format!(
                "accuracy run {}: offered {} req/s, under {MIN_OVERLOAD}× the rate ({})",
                i + 1,
                rps(run.offered_rps),
                rps(floor)
            ));
        }
        let counted = run.statuses.ok + run.statuses.too_many + run.statuses.other;
        if (counted - run.load.requests).abs() > 0.5 {
            problems.push(format!(
                "accuracy run {}: count.lua counted {counted} answers but wrk {} requests",
                i + 1,
                run.load.requests
            ));
        }
        let socket_errors = run.load.errors() - run.load.http_errors;
        if run.statuses.other > 0.0 || socket_errors > 0.0 {
            problems.push(format!(
                "accuracy run {}: {} answers other than 200 and 429, {} socket errors",
                i + 1,
                run.statuses.other,
                socket_errors
            ));
        }
    }
    problems
}

fn render_overhead(bench: &Bench, shape: &Shape, series: &[Series], ratios: &Ratios, notes: &[String]) -> String {
    let mut table = Table::new(&[
        "target", "request", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", CPU_COLUMN, "vs plain", "vs open",
    ]);
    for s in series {
        let vs_plain = match s.target {
            Target::ApiThrottle => ratio(ratios.api_bucket_over_plain),
            Target::Keyed => ratio(ratios.keyed_over_plain),
            Target::FullStack => ratio(ratios.full_stack_over_plain_body),
            _ => String::new(),
        };
        let vs_open = match s.target {
            Target::JwtRs256 => ratio(ratios.rs256_over_open),
            Target::JwtEs256 => ratio(ratios.es256_over_open),
            Target::JwtRs256Uncached => ratio(ratios.rs256_uncached_over_open),
            Target::JwtEs256Uncached => ratio(ratios.es256_uncached_over_open),
            _ => String::new(),
        };
        let method = s.target.body().map_or("GET", |(method, _)| method);
        let mut cells = vec![s.target.name().to_owned(), format!("{method} {}", s.url_path)];
        cells.extend(load_cells(s, ms));
        cells.push(vs_plain);
        cells.push(vs_open);
        table.row(cells);
    }
    let title = format!(
        "policies, overhead: the bench-only gateway without policies (GET {PASSTHROUGH_PATH}) against the one with \
         them: GET {OPEN_PATH} (API-wide bucket) and GET {KEYED_PATH} with a key (key, API-wide, operation and plan \
         buckets, quota); every limit {}/s, never reached; wrk {}; median of {} interleaved rounds",
        rps(f64::from(UNREACHED)),
        shape.describe(),
        bench.repeat
    );
    let verdict = match ratios.overhead {
        Some(o) if o < OVERHEAD_GOAL => "met",
        Some(_) => "not met",
        None => "—",
    };
    let mut lines = vec![
        format!(
            "overhead of key + limits = 1 − keyed/plain (median of per-round ratios): {} ({verdict}; goal < {:.0}%); \
             keyed / API bucket only: {}",
            ratios
                .overhead
                .map_or_else(|| String::from("—"), |o| format!("{:.1}%", o * 100.0)),
            OVERHEAD_GOAL * 100.0,
            ratio(ratios.keyed_over_api_bucket)
        ),
        format!(
            "JWT verification per request, against GET {OPEN_PATH} of the same gateway (same API-wide bucket, no auth): \
             RS256 {} and ES256 {} with the verified-token cache; {} and {} verifying every signature \
             (--token-cache off)",
            ratio(ratios.rs256_over_open),
            ratio(ratios.es256_over_open),
            ratio(ratios.rs256_uncached_over_open),
            ratio(ratios.es256_uncached_over_open)
        ),
        format!(
            "full stack (PUT {FULL_STACK_PATH}: key + RS256 token + API-wide, operation and plan buckets + quota + \
             the ~2 KiB body validated) / the same PUT without policies ({PLAIN_BODY_PATH}): {} ({}; goal ≥ {FULL_STACK_GOAL}×)",
            ratio(ratios.full_stack_over_plain_body),
            match ratios.full_stack_over_plain_body {
                Some(r) if r >= FULL_STACK_GOAL => "met",
                Some(_) => "not met",
                None => "—",
            }
        ),
        String::from("each proxies to the origin's /api/inventory; nothing is cached"),
    ];
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}

fn render_accuracy(accuracy: &Accuracy) -> String {
    let mut table = Table::new(&[
        "run",
        "seconds",
        "offered req/s",
        "× rate",
        "200",
        "429",
        "expected",
        "error",
        "origin calls",
    ]);
    for (i, run) in accuracy.runs.iter().enumerate() {
        table.row(vec![
            (i + 1).to_string(),
            format!("{:.3}", run.load.duration_s),
            rps(run.offered_rps),
            format!("{:.0}", run.offered_rps / f64::from(accuracy.rate)),
            format!("{:.0}", run.statuses.ok),
            format!("{:.0}", run.statuses.too_many),
            format!("{:.0}", run.expected),
            format!("{:+.2}%", run.error * 100.0),
            run.origin_calls.to_string(),
        ]);
    }
    let title = format!(
        "policies, accuracy: GET {LIMITED_PATH} (one bucket: rate {}/s, burst {}), unthrottled wrk {}, the bucket full \
         at the start of each run; expected = rate × seconds (wrk's measured duration) + burst; admitted = 200s",
        accuracy.rate,
        accuracy.burst,
        accuracy.shape.describe()
    );
    let verdict = match accuracy.median_error {
        Some(e) if e.abs() <= ACCURACY_GOAL => "met",
        Some(_) => "not met",
        None => "—",
    };
    let lines = vec![
        format!(
            "median error {} ({verdict}; goal within ±{:.0}%)",
            accuracy
                .median_error
                .map_or_else(|| String::from("—"), |e| format!("{:+.2}%", e * 100.0)),
            ACCURACY_GOAL * 100.0
        ),
        String::from(
            "origin calls: requests the gateway admitted during the run, including any whose answer wrk had not read \
             when it stopped",
        ),
    ];
    with_notes(&title, &table, &lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(requests: f64, seconds: f64, ok: f64) -> AccuracyRun {
        let load = Load {
            requests,
            duration_s: seconds,
            http_errors: requests - ok,
            ..Load::default()
        };
        let statuses = Statuses {
            ok,
            too_many: requests - ok,
            other: 0.0,
        };
        AccuracyRun::new(load, statuses, 0)
    }

    fn accuracy(runs: Vec<AccuracyRun>) -> Accuracy {
        Accuracy {
            rate: LIMITED_RATE,
            burst: LIMITED_BURST,
            shape: Shape {
                connections: 64,
                threads: 2,
                duration: Duration::from_secs(10),
            },
            median_error: None,
            runs,
            failures: Vec::new(),
        }
    }

    #[test]
    fn expected_is_rate_times_seconds_plus_burst() {
        // 1,000/s for 10.5 s plus a burst of 100: 10,600 expected; 10,812 admitted is 2% over.
        let r = run(300_000.0, 10.5, 10_812.0);
        assert!((r.expected - 10_600.0).abs() < 1e-9);
        assert!((r.error - 0.02).abs() < 1e-9);
        assert!((r.offered_rps - 300_000.0 / 10.5).abs() < 1e-9);
        assert!(accuracy_problems(&accuracy(vec![r])).is_empty());
    }

    #[test]
    fn too_little_load_is_a_problem() {
        // 4,000 req/s offered is under 5× a rate of 1,000/s.
        let problems = accuracy_problems(&accuracy(vec![run(40_000.0, 10.0, 10_100.0)]));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
