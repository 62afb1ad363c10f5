//! `latency`: one connection, one request at a time (`wrk -c1 -t1`), so that no queueing hides in the figures: the
//! p50 through the gateway and through nginx, minus the p50 straight to the origin, is the latency each hop adds.

use serde::Serialize;

use super::report::{CPU_COLUMN, Section, Table, load_cells, review, us, with_notes};
use super::rounds::{Series, measure, no_hook, paired, warm_up};
use super::servers::{BODY_BYTES, PASSTHROUGH_PATH, Proxy, Stack, Target};
use super::wrk::{self, Shape};
use super::{Bench, Scenario};

const TARGETS: [Target; 3] = [Target::Gateway, Target::Nginx, Target::Direct];

#[derive(Serialize)]
struct Results {
    shape: Shape,
    series: Vec<Series>,
    /// p50 through the gateway minus p50 direct, median of per-round differences, µs.
    gateway_added_p50_us: Option<f64>,
    /// The same for nginx.
    nginx_added_p50_us: Option<f64>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(bench, "latency", None, &[Proxy::Gateway, Proxy::Nginx])?;
    stack.smoke_check(&TARGETS)?;
    let shape = Shape {
        connections: 1,
        threads: 1,
        duration: bench.duration,
    };
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    let added = |proxy| paired(&series, proxy, Target::Direct, |p, d| p.p50_us - d.p50_us);
    let (gateway_added, nginx_added) = (added(Target::Gateway), added(Target::Nginx));

    let (mut notes, mut problems) = review(&series, |s| s.target == Target::Gateway);
    notes.extend(warm_up_failures.iter().cloned());
    notes.extend(stack.log_findings());
    problems.extend(warm_up_failures);

    let mut table = Table::new(&[
        "target",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "errors",
        CPU_COLUMN,
        "added p50 µs",
    ]);
    for s in &series {
        let added = match s.target {
            Target::Gateway => gateway_added,
            Target::Nginx => nginx_added,
            _ => None,
        };
        let mut cells = vec![s.target.name().to_owned()];
        cells.extend(load_cells(s, us));
        cells.push(added.map_or_else(String::new, |a| format!("{a:+.0}")));
        table.row(cells);
    }
    let title = format!(
        "latency: GET {PASSTHROUGH_PATH} ({BODY_BYTES}-byte JSON), one request at a time; wrk {}; \
         median of {} interleaved rounds",
        shape.describe(),
        bench.repeat
    );
    let mut lines = vec![String::from(
        "added p50: the proxy's p50 minus direct's p50 in the same round, median over rounds",
    )];
    lines.extend(notes.iter().cloned());
    let text = with_notes(&title, &table, &lines);
    let results = Results {
        shape,
        series,
        gateway_added_p50_us: gateway_added,
        nginx_added_p50_us: nginx_added,
        notes,
    };
    Ok(Section::new(Scenario::Latency, text, results, problems))
}
