//! `contract`: what request validation, transforms and response checks cost.
//!
//! The bench-only `bench-plain` gateway (see [`variants`](super::variants)), in front of the benchmark origin, four
//! targets interleaved under `--connections`:
//!
//! - `PUT /body/7` with a ~2 KiB JSON body, proxied as it is (streamed);
//! - `PUT /contract/7` with the same body: read whole, checked against its schema, two request headers set and one
//!   removed, a jq filter reshaping it (`Content-Length` recomputed), two response header edits;
//! - `GET /inventory`, plain; and `GET /checked`, whose every upstream response (the origin's ~1 KiB JSON) is read
//!   and checked against its schema (`validate.responses: report`, `responses_sample: 1`).
//!
//! Ratios: contract / plain body (goal ≥ 0.7), checked / plain GET. A smoke check proves the contract route
//! refuses an invalid body with `400` before the runs, and that its answers carry the transformed headers.

use anyhow::bail;
use serde::Serialize;

use crate::process::http_request;

use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, ratio, review, with_notes};
use super::rounds::{Series, measure, no_hook, throughput_ratio, warm_up};
use super::servers::{Proxy, Stack, Target};
use super::variants;
use super::wrk::{self, Shape};
use super::{Bench, Scenario};

/// The targets, measured in this order every round.
const TARGETS: [Target; 4] = [Target::PlainBody, Target::Contract, Target::Plain, Target::Checked];

/// The issue's goal: the validated and transformed route keeps at least this share of the plain route's throughput.
const CONTRACT_GOAL: f64 = 0.7;

#[derive(Serialize)]
struct Ratios {
    contract_over_plain_body: Option<f64>,
    checked_over_plain: Option<f64>,
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    body_bytes: usize,
    series: Vec<Series>,
    ratios: Ratios,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    if bench.build {
        variants::build_some(&[variants::Variant::Policies, variants::Variant::Plain])?;
    }
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(bench, "contract", None, &[Proxy::PlainGateway])?;
    stack.smoke_check(&TARGETS)?;
    check_contract(&mut stack)?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let ratios = Ratios {
        contract_over_plain_body: throughput_ratio(&series, Target::Contract, Target::PlainBody),
        checked_over_plain: throughput_ratio(&series, Target::Checked, Target::Plain),
    };
    let (mut notes, mut problems) = review(&series, |_| true);
    notes.extend(warm_up_failures.iter().cloned());
    problems.extend(warm_up_failures);
    notes.extend(stack.log_findings());
    let text = render(bench, &shape, &series, &ratios, &notes);
    let results = Results {
        shape,
        body_bytes: variants::request_body().len(),
        series,
        ratios,
        notes,
    };
    Ok(Section::new(Scenario::Contract, text, results, problems))
}

/// The contract route really checks and transforms: an invalid body is refused, a valid one's answer carries the
/// response header the transform sets.
fn check_contract(stack: &mut Stack) -> anyhow::Result<()> {
    let addr = stack.server(Target::Contract)?.addr;
    let json = [("Content-Type", "application/json")];
    let (status, response) = http_request(addr, "PUT", Target::Contract.path(), &json, Some(r#"{"name": 5}"#))?;
    if status != 400 || !response.contains("bad-request-body") {
        bail!("the contract route answered {status} to an invalid body, not 400: {response}");
    }
    let body = variants::request_body();
    let (status, response) = http_request(addr, "PUT", Target::Contract.path(), &json, Some(&body))?;
    let head = response.split("\r\n\r\n").next().unwrap_or("").to_ascii_lowercase();
    if status != 200 || !head.contains("cache-control: no-store") {
        bail!("the contract route answered {status} without its transformed headers: {head}");
    }
    Ok(())
}

fn render(bench: &Bench, shape: &Shape, series: &[Series], ratios: &Ratios, notes: &[String]) -> String {
    let mut table = Table::new(&[
        "target", "request", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", CPU_COLUMN, "ratio",
    ]);
    for s in series {
        let vs = match s.target {
            Target::Contract => ratio(ratios.contract_over_plain_body),
            Target::Checked => ratio(ratios.checked_over_plain),
            _ => String::new(),
        };
        let method = s.target.body().map_or("GET", |(m, _)| m);
        let mut cells = vec![s.target.name().to_owned(), format!("{method} {}", s.url_path)];
        cells.extend(load_cells(s, ms));
        cells.push(vs);
        table.row(cells);
    }
    let title = format!(
        "contract: a {} B JSON body proxied as it is, against the same body validated, header-transformed and \
         reshaped by jq; a plain GET against one whose every response is checked against its schema; wrk {}; \
         median of {} interleaved rounds",
        variants::request_body().len(),
        shape.describe(),
        bench.repeat
    );
    let verdict = match ratios.contract_over_plain_body {
        Some(r) if r >= CONTRACT_GOAL => "met",
        Some(_) => "not met",
        None => "—",
    };
    let mut lines = vec![
        format!(
            "validated + transformed / plain body: {} ({verdict}; goal ≥ {CONTRACT_GOAL}); responses checked / plain \
             GET: {}",
            ratio(ratios.contract_over_plain_body),
            ratio(ratios.checked_over_plain)
        ),
        String::from("every route proxies to the origin's /api/inventory; nothing is cached"),
    ];
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}
