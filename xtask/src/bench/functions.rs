//! `functions`: what a function target costs against a mock target with the same answer.
//!
//! The lab gateway (`tests/specs/lab.yaml`, functions in `tests/functions/lab`), two targets interleaved under
//! `--connections`:
//!
//! - `GET /things/1`: a function target — the typed parameters parsed into the request struct, the user's `async fn`
//!   called (bounded by its timeout, panics caught), its typed answer serialized to JSON;
//! - `GET /mocked`: a mock target answering the same bytes, `{"id":1,"kind":"plain"}`.
//!
//! The ratio function / mock is what calling Rust code in the gateway costs over answering from a table. A check
//! before the runs proves both answer 200 with the same body, and that neither reaches the origin.

use anyhow::bail;
use serde::Serialize;

use crate::process::http_request;

use super::cpu;
use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, ratio, review, us, with_notes};
use super::rounds::{Series, measure, no_hook, throughput_ratio, warm_up};
use super::servers::{Proxy, Stack, Target};
use super::wrk::{self, Shape};
use super::{Bench, Scenario};

/// The targets, measured in this order every round.
const TARGETS: [Target; 2] = [Target::Mocked, Target::Function];

/// What both answer.
const ANSWER: &str = r#"{"id":1,"kind":"plain"}"#;

#[derive(Serialize)]
struct Results {
    shape: Shape,
    series: Vec<Series>,
    function_over_mock: Option<f64>,
    /// The gateway's CPU time per request over the whole scenario (both targets), in µs.
    cpu_us_per_request: Option<f64>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(bench, "functions", None, &[Proxy::LabGateway])?;
    check_answers(&mut stack)?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let cpu_before = cpu::seconds(stack.server(Target::Function)?);
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let cpu_after = cpu::seconds(stack.server(Target::Function)?);
    let requests: f64 = series
        .iter()
        .flat_map(|s| s.runs.iter())
        .filter_map(|r| r.load().map(|l| l.requests))
        .sum();
    let cpu_us_per_request = cpu::per_request(cpu_before, cpu_after, requests);
    let function_over_mock = throughput_ratio(&series, Target::Function, Target::Mocked);
    let (mut notes, mut problems) = review(&series, |_| true);
    notes.extend(warm_up_failures.iter().cloned());
    problems.extend(warm_up_failures);
    notes.extend(stack.log_findings());
    let calls = stack.origin_calls()?;
    if calls != 0 {
        problems.push(format!(
            "the origin answered {calls} requests: the targets should not call it"
        ));
    }
    let text = render(bench, &shape, &series, function_over_mock, cpu_us_per_request, &notes);
    let results = Results {
        shape,
        series,
        function_over_mock,
        cpu_us_per_request,
        notes,
    };
    Ok(Section::new(Scenario::Functions, text, results, problems))
}

/// Both targets answer 200 with [`ANSWER`], without calling the origin.
fn check_answers(stack: &mut Stack) -> anyhow::Result<()> {
    let before = stack.origin_calls()?;
    for target in TARGETS {
        let addr = stack.server(target)?.addr;
        let (status, response) = http_request(addr, "GET", target.path(), &[], None)?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        if status != 200 || body != ANSWER {
            bail!(
                "{} answered {status} with {body:?}, not 200 with {ANSWER}",
                target.name()
            );
        }
    }
    let reached = stack.origin_calls()? - before;
    if reached != 0 {
        bail!("the function and mock targets reached the origin {reached} times");
    }
    Ok(())
}

fn render(
    bench: &Bench,
    shape: &Shape,
    series: &[Series],
    function_over_mock: Option<f64>,
    cpu_us_per_request: Option<f64>,
    notes: &[String],
) -> String {
    let mut table = Table::new(&[
        "target", "request", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", CPU_COLUMN, "ratio",
    ]);
    for s in series {
        let vs = match s.target {
            Target::Function => ratio(function_over_mock),
            _ => String::new(),
        };
        let mut cells = vec![s.target.name().to_owned(), format!("GET {}", s.url_path)];
        cells.extend(load_cells(s, ms));
        cells.push(vs);
        table.row(cells);
    }
    let title = format!(
        "functions: a function target (typed parameters in, a typed answer serialized) against a mock target with \
         the same {} B answer; wrk {}; median of {} interleaved rounds",
        ANSWER.len(),
        shape.describe(),
        bench.repeat
    );
    let mut lines = vec![format!(
        "function / mock: {}; gateway CPU per request (both targets): {}",
        ratio(function_over_mock),
        cpu_us_per_request.map_or_else(|| String::from("—"), |v| format!("{} µs", us(v)))
    )];
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}
