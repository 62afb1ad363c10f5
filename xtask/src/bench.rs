//! `cargo xtask bench`: the generated gateway against nginx, haproxy and no proxy at all, on this machine.
//!
//! Every scenario starts its own processes on 127.0.0.1 (the benchmark origin, the gateway, nginx, haproxy), all
//! in front of the same origin and asking it for the same path, then drives each target with wrk for a bounded
//! time. Runs are interleaved (gateway, nginx, haproxy, direct, gateway, …) so that a drift of the machine (a
//! neighbour, thermal throttling) spreads over every target instead of landing on one; each figure reported is the
//! median over `--repeat` rounds, and each ratio is the median of ratios taken within one round. Nothing here is
//! a stored result: a run that fails says so in the table.
//!
//! The method, and results from a reference machine, are in `docs/benchmarks.md`.
//!
//! Scenarios are one function each (see [`Scenario::run`]).

mod cache;
mod codegen;
mod contract;
mod cpu;
mod functions;
mod latency;
mod machine;
mod memory;
mod observability;
mod passthrough;
mod policies;
mod replicas;
mod report;
mod rounds;
mod servers;
mod slow_upstream;
mod store;
mod tls;
mod upstreams;
mod variants;
mod wrk;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::workspace_root;
use machine::{Machine, Placement, Tools};
use report::Section;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Scenarios to run, in this order. Default: every available one.
    #[arg(value_enum)]
    pub scenarios: Vec<Scenario>,
    /// Length of each measured load run.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Length of the warm-up run of each target, before the measured rounds.
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub warmup: Duration,
    /// Open connections in the throughput scenarios (`passthrough`, `cache`, `policies`, `contract`, `observability`,
    /// `store`, `upstreams`, `tls`, `replicas`).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(2..))]
    pub connections: u32,
    /// Measured rounds; every figure is the median over them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,
    /// Pin wrk to CPU 0 and every server to CPU 1 (one worker, process or thread each) instead of sharing all cores.
    #[arg(long)]
    pub pin: bool,
    /// Also write every figure (each run and the medians) to this JSON file.
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// Use the binaries already in target/release instead of generating and building them.
    #[arg(long)]
    pub no_build: bool,
}

/// What can be measured.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Throughput and latency of a plain proxied GET: gateway, nginx, haproxy, direct; plus a typed route.
    Passthrough,
    /// One connection, one request at a time: the latency each proxy adds.
    Latency,
    /// An origin that takes 20 ms, 1,000 connections: errors, throughput, memory of many requests in flight.
    SlowUpstream,
    /// Generating and building the gateway of the largest corpus spec that generates.
    Codegen,
    /// Cache hits of the gateway against nginx's `proxy_cache`, one URL and 50.
    Cache,
    /// What API keys and throttles cost in throughput; how closely a throttle admits its rate.
    Policies,
    /// What body validation, transforms (jq) and response checks cost in throughput.
    Contract,
    /// What metrics (scraped) and the access log (to a file) cost: the gateway with them on against off.
    Observability,
    /// A function target against a mock target with the same answer.
    Functions,
    /// Store targets: acknowledged durable writes/s (FULL with group commit, FULL one commit per write, NORMAL) and
    /// reads/s.
    Store,
    /// An upstream of two servers in turn against one; and one of two servers killed under load (failed requests,
    /// time until it is out of rotation).
    Upstreams,
    /// HTTPS through the gateway against nginx, one certificate: kept-alive connections, a new handshake per
    /// request, and HTTP/2 with h2load when it is installed.
    Tls,
    /// Limits kept in Redis (`x-gateway.shared`) against in memory: one replica's throughput and latency, Redis
    /// round trips per request, and how closely three replicas on one Redis hold a limit together.
    Replicas,
}

impl Scenario {
    const ALL: [Self; 13] = [
        Self::Passthrough,
        Self::Latency,
        Self::SlowUpstream,
        Self::Codegen,
        Self::Cache,
        Self::Policies,
        Self::Contract,
        Self::Observability,
        Self::Functions,
        Self::Store,
        Self::Upstreams,
        Self::Tls,
        Self::Replicas,
    ];

    /// Runs the scenario. A new scenario is one function here.
    fn run(self, bench: &Bench) -> anyhow::Result<Section> {
        match self {
            Self::Passthrough => passthrough::run(bench),
            Self::Latency => latency::run(bench),
            Self::SlowUpstream => slow_upstream::run(bench),
            Self::Codegen => codegen::run(bench),
            Self::Cache => cache::run(bench),
            Self::Policies => policies::run(bench),
            Self::Contract => contract::run(bench),
            Self::Observability => observability::run(bench),
            Self::Functions => functions::run(bench),
            Self::Store => store::run(bench),
            Self::Upstreams => upstreams::run(bench),
            Self::Tls => tls::run(bench),
            Self::Replicas => replicas::run(bench),
        }
    }

    /// The external tools it needs.
    fn tools(self) -> &'static [&'static str] {
        match self {
            Self::Passthrough | Self::SlowUpstream | Self::Upstreams => &["wrk", "nginx", "haproxy"],
            // `tls` also runs h2load when it is there, and says it skipped HTTP/2 when it is not.
            Self::Latency | Self::Cache | Self::Tls => &["wrk", "nginx"],
            Self::Policies | Self::Contract | Self::Observability | Self::Functions | Self::Store => &["wrk"],
            Self::Replicas => &["wrk", "redis-server"],
            Self::Codegen => &[],
        }
    }

    /// Whether it runs the petstore gateway and the benchmark origin (built before the first scenario).
    fn runs_servers(self) -> bool {
        matches!(
            self,
            Self::Passthrough
                | Self::Latency
                | Self::SlowUpstream
                | Self::Cache
                | Self::Policies
                | Self::Contract
                | Self::Observability
                | Self::Functions
                | Self::Store
                | Self::Upstreams
                | Self::Tls
                | Self::Replicas
        )
    }

    /// Whether it needs the example gateways and the origin built in release before the first scenario (`store`
    /// runs servers, but only its own bench-only gateway, which it builds itself).
    fn builds_examples(self) -> bool {
        self.runs_servers() && self != Self::Store
    }

    /// The name on the command line.
    pub fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self).map_or_else(String::new, |v| v.get_name().to_owned())
    }
}

/// What every scenario shares: the settings, the tools, where the binaries and scratch files are.
pub struct Bench {
    /// Length of a measured run.
    pub duration: Duration,
    /// Length of a warm-up run.
    pub warmup: Duration,
    /// Connections for the throughput scenarios.
    pub connections: u32,
    /// Measured rounds.
    pub repeat: u32,
    /// Where processes run.
    pub placement: Placement,
    /// wrk, nginx, haproxy, redis-server.
    pub tools: Tools,
    /// `target/release`.
    pub bin: PathBuf,
    /// Whether scenarios generate and build what they run (not with `--no-build`).
    pub build: bool,
    /// `target/bench`: configuration files, logs and the wrk script; left in place for a post-mortem.
    pub scratch: PathBuf,
}

/// The JSON file's contents.
#[derive(Serialize)]
struct Results<'a> {
    machine: &'a Machine,
    settings: Settings<'a>,
    scenarios: Vec<serde_json::Value>,
}

#[derive(Serialize)]
struct Settings<'a> {
    duration_s: f64,
    warmup_s: f64,
    connections: u32,
    repeat: u32,
    placement: &'a Placement,
}

/// The most connections any scenario opens (`slow-upstream`), which sets the file descriptors needed.
const MAX_CONNECTIONS: u32 = slow_upstream::CONNECTIONS;

pub fn run(args: &Args) -> anyhow::Result<()> {
    let scenarios = if args.scenarios.is_empty() {
        Scenario::ALL.to_vec()
    } else {
        args.scenarios.clone()
    };
    let mut needed: Vec<&str> = scenarios.iter().flat_map(|s| s.tools()).copied().collect();
    if args.pin {
        needed.push("taskset");
    }
    let tools = Tools::require(&needed)?;
    let placement = Placement::new(args.pin, args.connections.max(MAX_CONNECTIONS))?;
    if !args.no_build && scenarios.iter().any(|s| s.builds_examples()) {
        build()?;
    }
    let scratch = workspace_root().join("target/bench");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let bench = Bench {
        duration: args.duration,
        warmup: args.warmup,
        connections: args.connections,
        repeat: args.repeat,
        placement,
        tools,
        bin: crate::target_dir().join("release"),
        build: !args.no_build,
        scratch,
    };
    let machine = Machine::describe(&bench.tools);
    println!("\n{}", machine.summary());
    println!("{}", bench.placement.summary());

    let mut sections = Vec::new();
    for scenario in scenarios {
        println!("\n==> bench {}", scenario.name());
        let before = load_average();
        let mut section = scenario.run(&bench).unwrap_or_else(|e| Section::failed(scenario, &e));
        if scenario.runs_servers() {
            // Anything else busy on the machine skews every figure: say how busy it was.
            section.note(&format!(
                "load average (1 min) at start / end: {before} / {}",
                load_average()
            ));
        }
        println!("\n{}", section.text);
        sections.push(section);
    }

    if let Some(path) = &args.json {
        let results = Results {
            machine: &machine,
            settings: Settings {
                duration_s: bench.duration.as_secs_f64(),
                warmup_s: bench.warmup.as_secs_f64(),
                connections: bench.connections,
                repeat: bench.repeat,
                placement: &bench.placement,
            },
            scenarios: sections.iter().map(|s| s.data.clone()).collect(),
        };
        let text = serde_json::to_string_pretty(&results)?;
        std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))?;
        println!("\nwrote {}", path.display());
    }
    let problems: Vec<&String> = sections.iter().flat_map(|s| &s.problems).collect();
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("problem: {p}");
        }
        bail!("{} problem(s) in the benchmark (see above)", problems.len());
    }
    Ok(())
}

/// The 1-minute load average, as /proc/loadavg shows it.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| String::from("?"))
}

/// Regenerates the gateways and builds the example gateways and the origin, in release.
fn build() -> anyhow::Result<()> {
    crate::process::build_examples_release()
}
