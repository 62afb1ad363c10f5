//! `slow-upstream`: an origin that takes 20 ms to answer and 1,000 connections, so that about a thousand requests
//! are always in flight. A proxy that holds them without errors, near the ceiling of connections / delay
//! (50,000 requests/s, if the CPU allows), with memory that stops growing once warmed up, passes. The gateway
//! must have no errors at all.

use std::time::Duration;

use serde::Serialize;

use super::memory::{Memory, Sample, mib};
use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, review, rps, with_notes};
use super::rounds::{Phase, Series, measure, no_hook, warm_up};
use super::servers::{PASSTHROUGH_PATH, Proxy, Stack, Target};
use super::wrk::{self, Shape};
use super::{Bench, Scenario};

/// Connections held open by wrk.
pub const CONNECTIONS: u32 = 1000;
/// The origin's delay before each answer.
const DELAY: Duration = Duration::from_millis(20);

const TARGETS: [Target; 3] = [Target::Gateway, Target::Nginx, Target::Haproxy];

/// The gateway's memory over the scenario.
#[derive(Serialize, Default)]
struct GatewayMemory {
    /// Started and answered one request, no load yet.
    before: Option<Memory>,
    /// After the warm-up runs.
    after_warm_up: Option<Memory>,
    /// After each of its measured runs.
    after_runs: Vec<Option<Memory>>,
    /// At the end, after every target's runs.
    end: Option<Memory>,
}

impl GatewayMemory {
    /// Resident memory at the end minus after the warm-up, KiB.
    fn growth_kib(&self) -> Option<i64> {
        let (warm, end) = (self.after_warm_up?, self.end?);
        Some(i64::try_from(end.rss_kib).ok()? - i64::try_from(warm.rss_kib).ok()?)
    }
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    delay_ms: f64,
    ceiling_rps: f64,
    series: Vec<Series>,
    gateway_memory: GatewayMemory,
    gateway_rss_growth_kib: Option<i64>,
    /// Each server's memory at the end.
    memory: Vec<Sample>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(
        bench,
        "slow-upstream",
        Some(DELAY),
        &[Proxy::Gateway, Proxy::Nginx, Proxy::Haproxy],
    )?;
    stack.smoke_check(&TARGETS)?;
    let shape = Shape {
        connections: CONNECTIONS,
        threads: 2,
        duration: bench.duration,
    };
    let mut gateway = GatewayMemory {
        before: stack.memory(Target::Gateway),
        ..GatewayMemory::default()
    };
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, no_hook);
    gateway.after_warm_up = stack.memory(Target::Gateway);
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, |phase, stack, target| {
        if phase == Phase::After && target == Target::Gateway {
            gateway.after_runs.push(stack.memory(Target::Gateway));
        }
        Ok(())
    });
    gateway.end = stack.memory(Target::Gateway);
    let memory: Vec<Sample> = TARGETS
        .iter()
        .map(|&t| Sample {
            target: t,
            memory: stack.memory(t),
        })
        .collect();

    let (mut notes, mut problems) = review(&series, |s| s.target == Target::Gateway);
    notes.extend(warm_up_failures.iter().cloned());
    notes.extend(stack.log_findings());
    problems.extend(warm_up_failures);

    let ceiling = f64::from(CONNECTIONS) / DELAY.as_secs_f64();
    let text = render(bench, &shape, ceiling, &series, &gateway, &memory, &notes);
    let results = Results {
        shape,
        delay_ms: DELAY.as_secs_f64() * 1000.0,
        ceiling_rps: ceiling,
        series,
        gateway_rss_growth_kib: gateway.growth_kib(),
        gateway_memory: gateway,
        memory,
        notes,
    };
    Ok(Section::new(Scenario::SlowUpstream, text, results, problems))
}

fn render(
    bench: &Bench,
    shape: &Shape,
    ceiling: f64,
    series: &[Series],
    gateway: &GatewayMemory,
    memory: &[Sample],
    notes: &[String],
) -> String {
    let mut table = Table::new(&[
        "target", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors", CPU_COLUMN, "peak RSS",
    ]);
    for s in series {
        let peak = memory
            .iter()
            .find(|m| m.target == s.target)
            .and_then(|m| m.memory)
            .map_or_else(|| String::from("?"), |m| mib(m.peak_kib));
        let mut cells = vec![s.target.name().to_owned()];
        cells.extend(load_cells(s, ms));
        cells.push(peak);
        table.row(cells);
    }
    let title = format!(
        "slow-upstream: GET {PASSTHROUGH_PATH}, the origin answers after {} ms; wrk {}; \
         median of {} interleaved rounds",
        DELAY.as_millis(),
        shape.describe(),
        bench.repeat
    );
    let rss = |m: &Option<Memory>| m.map_or_else(|| String::from("?"), |m| mib(m.rss_kib));
    let runs: Vec<String> = gateway.after_runs.iter().map(rss).collect();
    let mut lines = vec![
        format!(
            "ceiling: {CONNECTIONS} connections / {} ms = {} req/s",
            DELAY.as_millis(),
            rps(ceiling)
        ),
        format!(
            "gateway RSS: before load {}, after warm-up {}, after each of its runs {}, end {}; growth since warm-up {}",
            rss(&gateway.before),
            rss(&gateway.after_warm_up),
            runs.join(" / "),
            rss(&gateway.end),
            gateway
                .growth_kib()
                .map_or_else(|| String::from("?"), |kib| format!("{:+.1} MiB", kib as f64 / 1024.0))
        ),
    ];
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}
