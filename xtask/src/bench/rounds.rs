//! Interleaved measurement: a warm-up run of each target, then `--repeat` rounds of one run per target, in the
//! same order every round. Ratios between targets are taken within a round (the runs closest in time), then the
//! median over rounds is reported. A scenario may act just before and just after each run ([`Phase`]): re-warm a
//! cache, check what reached the origin, sample memory. Every run also records the CPU time its server spent per
//! request ([`cpu`]), the figure that stays meaningful when the load generator shares the server's cores.

use serde::Serialize;

use super::report::{cpu_us, ms, rps};
use super::servers::{Stack, Target};
use super::wrk::{self, Load, Requests, Scripts, Shape, median};
use super::{Bench, cpu};

/// One measured run.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Run {
    Ok {
        round: u32,
        #[serde(flatten)]
        load: Load,
    },
    Failed {
        round: u32,
        error: String,
    },
}

impl Run {
    /// The run's figures, when it succeeded.
    pub fn load(&self) -> Option<&Load> {
        match self {
            Self::Ok { load, .. } => Some(load),
            Self::Failed { .. } => None,
        }
    }
}

/// Every run of one target, and their medians.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub target: Target,
    pub url_path: &'static str,
    pub runs: Vec<Run>,
    /// The median of each figure over the runs that succeeded.
    pub median: Option<Load>,
    /// Failed requests over every run (HTTP and socket errors).
    pub errors_total: f64,
}

impl Series {
    /// The errors of the runs that failed outright.
    pub fn failures(&self) -> Vec<&str> {
        self.runs
            .iter()
            .filter_map(|r| match r {
                Run::Failed { error, .. } => Some(error.as_str()),
                Run::Ok { .. } => None,
            })
            .collect()
    }

    fn finish(target: Target, runs: Vec<Run>) -> Self {
        let loads: Vec<Load> = runs.iter().filter_map(Run::load).copied().collect();
        Self {
            target,
            url_path: target.path(),
            median: Load::median(&loads),
            errors_total: loads.iter().map(Load::errors).sum(),
            runs,
        }
    }
}

/// When a scenario's hook is called: just before a run of a target, or just after it (whether or not it succeeded).
/// A hook's error fails the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Before,
    After,
}

/// A hook that does nothing.
pub fn no_hook(_: Phase, _: &mut Stack, _: Target) -> anyhow::Result<()> {
    Ok(())
}

/// One run of `target`: fails if wrk fails, if its server (or the origin) is gone before or after, or if a hook
/// fails.
fn run_once(
    bench: &Bench,
    stack: &mut Stack,
    scripts: &Scripts,
    target: Target,
    shape: &Shape,
    hook: &mut impl FnMut(Phase, &mut Stack, Target) -> anyhow::Result<()>,
) -> anyhow::Result<Load> {
    stack.check_alive(target)?;
    hook(Phase::Before, stack, target)?;
    let url = stack.url(target)?;
    let paths = target.rotation();
    let body = target.body();
    let requests = Requests {
        url: &url,
        headers: target.headers(),
        paths: &paths,
        body: body.as_ref().map(|(method, body)| (*method, body.as_str())),
    };
    let cpu_before = cpu::seconds(stack.server(target)?);
    let load = wrk::run(bench, scripts, &requests, shape);
    let cpu_after = cpu::seconds(stack.server(target)?);
    let after = hook(Phase::After, stack, target);
    stack.check_alive(target)?;
    let mut load = load?;
    load.cpu_us_per_request = cpu::per_request(cpu_before, cpu_after, load.requests);
    after.map(|()| load)
}

/// A warm-up run of each target (`--warmup` long); returns what failed.
pub fn warm_up(
    bench: &Bench,
    stack: &mut Stack,
    scripts: &Scripts,
    targets: &[Target],
    shape: &Shape,
    mut hook: impl FnMut(Phase, &mut Stack, Target) -> anyhow::Result<()>,
) -> Vec<String> {
    let shape = shape.lasting(bench.warmup);
    let mut failures = Vec::new();
    for &target in targets {
        if let Err(e) = run_once(bench, stack, scripts, target, &shape, &mut hook) {
            println!("  warm-up {:<21} FAILED: {e:#}", target.name());
            failures.push(format!("warm-up of {}: {e:#}", target.name()));
        }
    }
    failures
}

/// `--repeat` rounds over `targets`; `hook` is called before and after each run.
pub fn measure(
    bench: &Bench,
    stack: &mut Stack,
    scripts: &Scripts,
    targets: &[Target],
    shape: &Shape,
    mut hook: impl FnMut(Phase, &mut Stack, Target) -> anyhow::Result<()>,
) -> Vec<Series> {
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); targets.len()];
    for round in 1..=bench.repeat {
        for (i, &target) in targets.iter().enumerate() {
            let run = match run_once(bench, stack, scripts, target, shape, &mut hook) {
                Ok(load) => {
                    println!(
                        "  round {round}/{} {:<21} {:>9} req/s  p50 {:>7} ms  p99 {:>7} ms  errors {}  CPU {} µs/req",
                        bench.repeat,
                        target.name(),
                        rps(load.rps),
                        ms(load.p50_us),
                        ms(load.p99_us),
                        load.errors(),
                        cpu_us(load.cpu_us_per_request)
                    );
                    Run::Ok { round, load }
                }
                Err(e) => {
                    println!("  round {round}/{} {:<21} FAILED: {e:#}", bench.repeat, target.name());
                    Run::Failed {
                        round,
                        error: format!("{e:#}"),
                    }
                }
            };
            runs[i].push(run);
        }
    }
    targets
        .iter()
        .zip(runs)
        .map(|(&target, runs)| Series::finish(target, runs))
        .collect()
}

/// The series of `target`.
pub fn find(series: &[Series], target: Target) -> Option<&Series> {
    series.iter().find(|s| s.target == target)
}

/// `combine(a's run, b's run)` in every round where both succeeded, then the median over rounds.
pub fn paired(series: &[Series], a: Target, b: Target, combine: impl Fn(&Load, &Load) -> f64) -> Option<f64> {
    let (a, b) = (find(series, a)?, find(series, b)?);
    let values = a
        .runs
        .iter()
        .zip(&b.runs)
        .filter_map(|(x, y)| Some(combine(x.load()?, y.load()?)))
        .collect();
    median(values)
}

/// The CPU time per request of `a` over that of `b`, per round, median.
pub fn cpu_ratio(series: &[Series], a: Target, b: Target) -> Option<f64> {
    paired(series, a, b, |x, y| {
        match (x.cpu_us_per_request, y.cpu_us_per_request) {
            (Some(x), Some(y)) if y > 0.0 => x / y,
            _ => f64::NAN,
        }
    })
}

/// The throughput of `a` over that of `b`, per round, median.
pub fn throughput_ratio(series: &[Series], a: Target, b: Target) -> Option<f64> {
    paired(series, a, b, |x, y| x.rps / y.rps)
}
