//! `passthrough`: throughput and latency of a plain proxied GET under `--connections` connections, through the
//! gateway, nginx and haproxy, and straight to the origin; plus a typed route of the gateway
//! (`GET /pets/42/photos/7.jpg`: an int64 and a string path parameter parsed and checked, the path rewritten),
//! reported relative to its plain one.

use serde::Serialize;

use super::memory::{Sample, mib};
use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, ratio, review, with_notes};
use super::rounds::{Series, cpu_ratio, measure, no_hook, paired, throughput_ratio, warm_up};
use super::servers::{BODY_BYTES, ORIGIN_PATH, PASSTHROUGH_PATH, Proxy, Stack, TYPED_PATH, Target};
use super::wrk::{self, Shape};
use super::{Bench, Scenario};

const TARGETS: [Target; 5] = [
    Target::Gateway,
    Target::GatewayTyped,
    Target::Nginx,
    Target::Haproxy,
    Target::Direct,
];

/// Throughput ratios, each the median of the ratios within a round.
#[derive(Serialize)]
struct Ratios {
    gateway_over_nginx: Option<f64>,
    gateway_over_haproxy: Option<f64>,
    gateway_over_direct: Option<f64>,
    typed_over_passthrough: Option<f64>,
    /// The typed route's p50 minus the plain route's, in µs.
    typed_added_p50_us: Option<f64>,
    /// CPU time per request of the gateway over nginx's and haproxy's (per round, median).
    cpu_gateway_over_nginx: Option<f64>,
    cpu_gateway_over_haproxy: Option<f64>,
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    series: Vec<Series>,
    ratios: Ratios,
    /// Each server's memory after the load (the gateway's is shared by its two routes; `direct` is the origin).
    memory: Vec<Sample>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(
        bench,
        "passthrough",
        None,
        &[Proxy::Gateway, Proxy::Nginx, Proxy::Haproxy],
    )?;
    stack.smoke_check(&TARGETS)?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let memory: Vec<Sample> = TARGETS
        .iter()
        .filter(|&&t| t != Target::GatewayTyped)
        .map(|&t| Sample {
            target: t,
            memory: stack.memory(t),
        })
        .collect();

    let ratios = Ratios {
        gateway_over_nginx: throughput_ratio(&series, Target::Gateway, Target::Nginx),
        gateway_over_haproxy: throughput_ratio(&series, Target::Gateway, Target::Haproxy),
        gateway_over_direct: throughput_ratio(&series, Target::Gateway, Target::Direct),
        typed_over_passthrough: throughput_ratio(&series, Target::GatewayTyped, Target::Gateway),
        typed_added_p50_us: paired(&series, Target::GatewayTyped, Target::Gateway, |t, p| {
            t.p50_us - p.p50_us
        }),
        cpu_gateway_over_nginx: cpu_ratio(&series, Target::Gateway, Target::Nginx),
        cpu_gateway_over_haproxy: cpu_ratio(&series, Target::Gateway, Target::Haproxy),
    };
    let (mut notes, mut problems) = review(&series, |s| matches!(s.target, Target::Gateway | Target::GatewayTyped));
    notes.extend(warm_up_failures.iter().cloned());
    notes.extend(stack.log_findings());
    problems.extend(warm_up_failures);

    let text = render(bench, &shape, &series, &ratios, &memory, &notes);
    let results = Results {
        shape,
        series,
        ratios,
        memory,
        notes,
    };
    Ok(Section::new(Scenario::Passthrough, text, results, problems))
}

fn render(
    bench: &Bench,
    shape: &Shape,
    series: &[Series],
    ratios: &Ratios,
    memory: &[Sample],
    notes: &[String],
) -> String {
    let mut table = Table::new(&[
        "target", "GET", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", CPU_COLUMN, "peak RSS",
    ]);
    for s in series {
        let peak = memory
            .iter()
            .find(|m| m.target == s.target)
            .map_or(String::new(), |m| m.memory.map_or("?".into(), |m| mib(m.peak_kib)));
        let mut cells = vec![s.target.name().to_owned(), s.url_path.to_owned()];
        cells.extend(load_cells(s, ms));
        cells.push(peak);
        table.row(cells);
    }
    let title = format!(
        "passthrough: GET {PASSTHROUGH_PATH} proxied to the origin's {ORIGIN_PATH} ({BODY_BYTES}-byte JSON); \
         wrk {}; median of {} interleaved rounds",
        shape.describe(),
        bench.repeat
    );
    let mut lines = vec![
        format!(
            "throughput ratios (median of per-round ratios): gateway/nginx {}, gateway/haproxy {}, gateway/direct {}",
            ratio(ratios.gateway_over_nginx),
            ratio(ratios.gateway_over_haproxy),
            ratio(ratios.gateway_over_direct)
        ),
        format!(
            "CPU time per request (median of per-round ratios): gateway/nginx {}, gateway/haproxy {} (goal ≤ 0.8× nginx)",
            ratio(ratios.cpu_gateway_over_nginx),
            ratio(ratios.cpu_gateway_over_haproxy)
        ),
        format!(
            "typed route (GET {TYPED_PATH}) vs passthrough: {} throughput, p50 {} µs",
            ratio(ratios.typed_over_passthrough),
            ratios.typed_added_p50_us.map_or("—".into(), |d| format!("{d:+.0}"))
        ),
        String::from("peak RSS: VmHWM after the load; nginx = master + workers; direct = the origin"),
    ];
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}
