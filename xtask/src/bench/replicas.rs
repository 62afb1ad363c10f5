//! `replicas`: what keeping the limits in Redis (`x-gateway.shared`) costs one replica, how many round trips to
//! Redis a request takes, and whether replicas sharing one Redis hold a limit together.
//!
//! The gateways are the bench-only `bench-policies` (limits in memory) and `bench-shared` (the same spec with
//! `x-gateway.shared`: its buckets and its quota in Redis; see [`variants`](super::variants)), [`REPLICAS`] replicas
//! of each, all in front of the benchmark origin; the shared ones use the scenario's own redis-server, which the
//! [`Stack`] starts on a free port without persistence. Three parts:
//!
//! - **One replica.** `GET /inventory` with a key on plan `pro` — the key, the API-wide, operation and plan buckets
//!   and the quota, every limit 10,000,000/s or 10^12 and never reached — on the first replica of each kind,
//!   interleaved, under `--connections`, then again one request at a time (`-c1`), where the added latency is the
//!   round trip's and not queueing. Reported: req/s and latency of each, Redis over in-memory throughput and the
//!   added p50 and p99 (each within a round, median over rounds), and the CPU time per request of the gateway and of
//!   redis-server (on this machine they share the cores, so the throughput ratio pays for Redis's work too).
//! - **Round trips.** Redis's `INFO commandstats` just before and just after every run: the `EVALSHA` calls (the
//!   limits script) and the other commands clients sent, over the requests wrk counted. Redis counts the commands a
//!   script runs (`redis.call`) there too; those of the limits script ([`SCRIPT_RUNS`]) are shown apart, per
//!   script call. The goal is at most one round trip per request; the requests in flight when wrk stops were
//!   checked but not counted, at most one per connection, so a run meets it with no more calls than requests plus
//!   connections.
//! - **Accuracy.** `GET /limited` with the key (an operation bucket of 1,000/s and burst 100, with the unreached
//!   limits of `/inventory` on the way) on the three replicas at once: one wrk, one thread per replica
//!   (`spread.lua`), each connection pausing [`PAUSE_MS`] before each request, so that about [`OVERLOAD`]× the
//!   rate is offered in all, for `--duration`, from full buckets. Admitted = the 200s; expected = rate × wrk's
//!   measured duration + burst, the limit of the API as a whole; error = (admitted − expected) / expected, within
//!   ±3% for the shared replicas. The in-memory replicas hold the limit each on its own, about three times it
//!   together: what "per replica" admits. `--repeat` runs of each, interleaved.

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::process::http_get_with;

use super::cpu;
use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, ratio, review, rps, us, with_notes};
use super::rounds::{Phase, Run, Series, measure, no_hook, paired, throughput_ratio, warm_up};
use super::servers::{KEYED_PATH, LIMITED_PATH, Proxy, REPLICAS, Stack, Target};
use super::variants::{self, LIMITED_BURST, LIMITED_RATE, UNREACHED, Variant};
use super::wrk::{self, Load, Requests, Scripts, Shape, Spread, median};
use super::{Bench, Scenario};

/// The one-replica targets, measured in this order every round.
const TARGETS: [Target; 2] = [Target::MemoryLimits, Target::SharedLimits];

/// The goal: at most this many Redis round trips per request.
const ROUND_TRIP_GOAL: f64 = 1.0;
/// The goal for the shared replicas: admitted within this fraction of rate × seconds + burst.
const ACCURACY_GOAL: f64 = 0.03;
/// The accuracy runs offer about this many times the rate, in all.
const OVERLOAD: f64 = 5.0;
/// Below this many times the rate an accuracy run is void: each replica must be offered more than the rate, or the
/// in-memory replicas would not show what "per replica" admits.
const MIN_OVERLOAD: f64 = 4.0;
/// How long each connection of an accuracy run waits before each request, in ms.
const PAUSE_MS: u32 = 10;
/// The commands the limits script runs inside Redis (`gateway-runtime/src/shared/limits.rs`), which
/// `INFO commandstats` counts as if clients had sent them: `TIME`, `GET` and `SET` per bucket, `GET`, `INCR` and
/// `EXPIREAT` for a quota, `HINCRBY` for the usage.
const SCRIPT_RUNS: [&str; 6] = ["time", "get", "set", "incr", "expireat", "hincrby"];
/// How long a command to Redis may take (connecting, sending, answering).
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a set of replicas keeps its limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Limits {
    /// Each replica its own (`bench-policies`).
    InMemory,
    /// One Redis for all (`bench-shared`).
    Redis,
}

impl Limits {
    const ALL: [Self; 2] = [Self::Redis, Self::InMemory];

    fn name(self) -> &'static str {
        match self {
            Self::InMemory => "in-memory",
            Self::Redis => "Redis",
        }
    }

    /// Replica `index` (from 0).
    fn replica(self, index: usize) -> Proxy {
        let index = u8::try_from(index).unwrap_or(u8::MAX);
        match self {
            Self::InMemory => Proxy::MemoryReplica(index),
            Self::Redis => Proxy::SharedReplica(index),
        }
    }
}

/// What Redis ran between two readings of `INFO commandstats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
struct Commands {
    /// `EVALSHA` calls: the limits script, one per request that reached Redis.
    evalsha: u64,
    /// `EVAL` and `SCRIPT` calls: the script sent whole or loaded (none once Redis holds it).
    script_loads: u64,
    /// The commands of [`SCRIPT_RUNS`]: run by the scripts (a client sending one of them is counted here too).
    in_scripts: u64,
    /// Every other command clients sent, but `INFO` (which the readings themselves are).
    others: u64,
    /// Every command but `INFO`.
    total: u64,
    /// Microseconds Redis spent running `EVALSHA`.
    evalsha_usec: u64,
}

/// Redis's `INFO commandstats`: (calls, microseconds) by command.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CommandStats(BTreeMap<String, (u64, u64)>);

impl Commands {
    /// Commands clients sent: the script calls, the loads and the others (not the commands scripts ran).
    fn sent(&self) -> u64 {
        self.evalsha + self.script_loads + self.others
    }
}

impl CommandStats {
    /// The figures of the Redis at `addr` now.
    fn read(addr: SocketAddr) -> anyhow::Result<Self> {
        Ok(Self::parse(&redis_command(addr, &["INFO", "commandstats"])?))
    }

    /// `cmdstat_evalsha:calls=12,usec=345,usec_per_call=28.75,…` lines (`cmdstat_script|load` for a subcommand).
    fn parse(text: &str) -> Self {
        let mut stats = BTreeMap::new();
        for line in text.lines() {
            let Some((name, fields)) = line.trim().strip_prefix("cmdstat_").and_then(|l| l.split_once(':')) else {
                continue;
            };
            let field = |key: &str| {
                fields
                    .split(',')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            stats.insert(name.to_ascii_lowercase(), (field("calls"), field("usec")));
        }
        Self(stats)
    }

    /// What was run from `before` to these figures.
    fn since(&self, before: &Self) -> Commands {
        let delta = |name: &str| {
            let (calls, usec) = self.0.get(name).copied().unwrap_or_default();
            let (calls_before, usec_before) = before.0.get(name).copied().unwrap_or_default();
            (calls.saturating_sub(calls_before), usec.saturating_sub(usec_before))
        };
        let mut commands = Commands::default();
        for name in self.0.keys() {
            let (calls, usec) = delta(name);
            match name.split('|').next().unwrap_or_default() {
                "info" => continue,
                "evalsha" => {
                    commands.evalsha += calls;
                    commands.evalsha_usec += usec;
                }
                "eval" | "script" => commands.script_loads += calls,
                command if SCRIPT_RUNS.contains(&command) => commands.in_scripts += calls,
                _ => commands.others += calls,
            }
            commands.total += calls;
        }
        commands
    }
}

/// One command to the Redis at `addr`, on a connection of its own; the answer as text (a simple or bulk string, or
/// an integer). A small RESP exchange: what the benchmark asks needs no client library.
fn redis_command(addr: SocketAddr, args: &[&str]) -> anyhow::Result<String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, REDIS_TIMEOUT).with_context(|| format!("connecting to Redis at {addr}"))?;
    stream.set_read_timeout(Some(REDIS_TIMEOUT))?;
    stream.set_write_timeout(Some(REDIS_TIMEOUT))?;
    let mut request = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        request.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        request.extend_from_slice(arg.as_bytes());
        request.extend_from_slice(b"\r\n");
    }
    stream.write_all(&request)?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let line = line.trim_end_matches(['\r', '\n']);
    let command = args.join(" ");
    match line.split_at_checked(1) {
        Some(("+" | ":", value)) => Ok(value.to_owned()),
        Some(("-", error)) => bail!("Redis refused `{command}`: {error}"),
        Some(("$", length)) => {
            let length: usize = length
                .parse()
                .with_context(|| format!("Redis answered `{command}` with no value ({line})"))?;
            let mut bytes = vec![0; length + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(length);
            Ok(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => bail!("Redis answered `{command}` with {line:?}, which this client does not read"),
    }
}

/// The readings just before a run (the gateway's CPU time is every run's own, [`Load::cpu_us_per_request`]).
struct Snapshot {
    commands: CommandStats,
    redis_cpu: Option<f64>,
}

impl Snapshot {
    fn take(stack: &mut Stack) -> anyhow::Result<Self> {
        let redis = stack.redis().context("the stack has no Redis")?;
        let redis_cpu = cpu::seconds(redis);
        let addr = redis.addr;
        Ok(Self {
            commands: CommandStats::read(addr)?,
            redis_cpu,
        })
    }
}

/// What one run cost Redis and the gateway.
#[derive(Debug, Clone, Copy, Serialize)]
struct Sample {
    commands: Commands,
    redis_cpu_s: Option<f64>,
}

/// Reads Redis's command counts and redis-server's CPU time around each run.
#[derive(Default)]
struct Watch {
    before: Option<Snapshot>,
    /// Each target's samples, by the order its runs were started in (its round, in `measure`).
    samples: Vec<(Target, Vec<Option<Sample>>)>,
}

impl Watch {
    fn hook(&mut self, phase: Phase, stack: &mut Stack, target: Target) -> anyhow::Result<()> {
        match phase {
            Phase::Before => {
                // A slot for every run started, so that a run's place is its round even when a hook fails.
                self.runs(target).push(None);
                self.before = Some(Snapshot::take(stack)?);
            }
            Phase::After => {
                let Some(before) = self.before.take() else {
                    return Ok(());
                };
                let after = Snapshot::take(stack)?;
                let spent = |b: Option<f64>, a: Option<f64>| b.zip(a).map(|(b, a)| a - b);
                let sample = Sample {
                    commands: after.commands.since(&before.commands),
                    redis_cpu_s: spent(before.redis_cpu, after.redis_cpu),
                };
                if let Some(slot) = self.runs(target).last_mut() {
                    *slot = Some(sample);
                }
            }
        }
        Ok(())
    }

    fn runs(&mut self, target: Target) -> &mut Vec<Option<Sample>> {
        let i = match self.samples.iter().position(|(t, _)| *t == target) {
            Some(i) => i,
            None => {
                self.samples.push((target, Vec::new()));
                self.samples.len() - 1
            }
        };
        &mut self.samples[i].1
    }

    /// Each successful run's figures per request, by target (`connections`: the runs' shape).
    fn per_request(&self, series: &[Series], connections: u32) -> Vec<(Target, Vec<PerRequest>)> {
        series
            .iter()
            .map(|s| {
                let samples = self
                    .samples
                    .iter()
                    .find(|(t, _)| *t == s.target)
                    .map(|(_, v)| v.as_slice());
                let runs = s
                    .runs
                    .iter()
                    .filter_map(|run| match run {
                        Run::Ok { round, load } => {
                            let sample = (*samples?.get(usize::try_from(*round).ok()?.checked_sub(1)?)?)?;
                            PerRequest::of(*round, load, &sample, connections)
                        }
                        Run::Failed { .. } => None,
                    })
                    .collect();
                (s.target, runs)
            })
            .collect()
    }
}

/// One run's figures per request.
#[derive(Debug, Clone, Copy, Serialize)]
struct PerRequest {
    round: u32,
    requests: f64,
    commands: Commands,
    /// `EVALSHA` calls per request: Redis round trips for the limits.
    evalsha: f64,
    /// Commands clients sent (but `INFO`) per request: every round trip.
    sent: f64,
    /// Commands run inside each script call.
    in_script: Option<f64>,
    /// Whether the run took at most one round trip per request: no more commands sent than wrk's requests and the
    /// requests in flight when it stopped (one per connection at most).
    within_goal: bool,
    /// Redis's own time per `EVALSHA`, in µs (`None` without calls).
    evalsha_us: Option<f64>,
    /// CPU time of redis-server per request, in µs (the gateway's is the run's, in the series).
    redis_cpu_us: Option<f64>,
}

impl PerRequest {
    fn of(round: u32, load: &Load, sample: &Sample, connections: u32) -> Option<Self> {
        let requests = load.requests;
        if requests <= 0.0 {
            return None;
        }
        let c = sample.commands;
        let scripts = c.evalsha + c.script_loads;
        Some(Self {
            round,
            requests,
            commands: c,
            evalsha: c.evalsha as f64 / requests,
            sent: c.sent() as f64 / requests,
            in_script: (scripts > 0).then(|| c.in_scripts as f64 / scripts as f64),
            within_goal: c.sent() as f64 <= ROUND_TRIP_GOAL * (requests + f64::from(connections)),
            evalsha_us: (c.evalsha > 0).then(|| c.evalsha_usec as f64 / c.evalsha as f64),
            redis_cpu_us: sample.redis_cpu_s.map(|s| s * 1e6 / requests),
        })
    }
}

/// The medians of a target's runs' figures per request.
#[derive(Debug, Clone, Copy, Default, Serialize)]
struct PerRequestMedians {
    evalsha: Option<f64>,
    sent: Option<f64>,
    in_script: Option<f64>,
    /// Every run within the goal (`None` without runs).
    within_goal: Option<bool>,
    evalsha_us: Option<f64>,
    redis_cpu_us: Option<f64>,
}

impl PerRequestMedians {
    fn of(runs: &[PerRequest]) -> Self {
        let of = |f: fn(&PerRequest) -> Option<f64>| median(runs.iter().filter_map(f).collect());
        Self {
            evalsha: of(|r| Some(r.evalsha)),
            sent: of(|r| Some(r.sent)),
            in_script: of(|r| r.in_script),
            within_goal: (!runs.is_empty()).then(|| runs.iter().all(|r| r.within_goal)),
            evalsha_us: of(|r| r.evalsha_us),
            redis_cpu_us: of(|r| r.redis_cpu_us),
        }
    }
}

/// One replica of each kind under one load shape.
#[derive(Serialize)]
struct Part {
    shape: Shape,
    series: Vec<Series>,
    per_request: Vec<(Target, Vec<PerRequest>)>,
    medians: Vec<(Target, PerRequestMedians)>,
    /// Redis over in-memory throughput, per round, median.
    shared_over_memory: Option<f64>,
    /// Redis minus in-memory, per round, median, in µs.
    added_p50_us: Option<f64>,
    added_p99_us: Option<f64>,
}

impl Part {
    fn medians_of(&self, target: Target) -> PerRequestMedians {
        self.medians
            .iter()
            .find(|(t, _)| *t == target)
            .map(|(_, m)| *m)
            .unwrap_or_default()
    }
}

/// One accuracy run: three replicas of one kind at once.
#[derive(Serialize)]
struct AccuracyRun {
    limits: Limits,
    round: u32,
    #[serde(flatten)]
    spread: Spread,
    /// Requests sent per second, over the three replicas.
    offered_rps: f64,
    /// Rate × duration + burst: the API's limit as a whole.
    expected: f64,
    /// (admitted − expected) / expected.
    error: f64,
    /// What replicas each holding the limit alone admit: [`REPLICAS`] × expected.
    per_replica_expected: f64,
    /// What Redis ran during the run.
    commands: Option<Commands>,
    /// Requests that reached the origin during the run.
    origin_calls: i64,
}

impl AccuracyRun {
    fn new(limits: Limits, round: u32, spread: Spread, commands: Option<Commands>, origin_calls: i64) -> Self {
        let load = &spread.load;
        let expected = f64::from(LIMITED_RATE) * load.duration_s + f64::from(LIMITED_BURST);
        Self {
            limits,
            round,
            offered_rps: load.requests / load.duration_s,
            error: (spread.statuses.ok - expected) / expected,
            per_replica_expected: REPLICAS as f64 * expected,
            expected,
            commands,
            origin_calls,
            spread,
        }
    }

    /// `EVALSHA` calls per request.
    fn evalsha_per_request(&self) -> Option<f64> {
        let requests = self.spread.load.requests;
        self.commands
            .filter(|_| requests > 0.0)
            .map(|c| c.evalsha as f64 / requests)
    }

    /// Admitted over what replicas each holding the limit alone admit, minus one.
    fn per_replica_error(&self) -> f64 {
        (self.spread.statuses.ok - self.per_replica_expected) / self.per_replica_expected
    }
}

#[derive(Serialize)]
struct Accuracy {
    rate: u32,
    burst: u32,
    replicas: usize,
    pause_ms: u32,
    shape: Shape,
    runs: Vec<AccuracyRun>,
    failures: Vec<String>,
    /// The median error of the shared replicas' runs, against rate × seconds + burst.
    shared_median_error: Option<f64>,
    /// The in-memory replicas' admitted over rate × seconds + burst, median.
    memory_median_multiple: Option<f64>,
    /// The in-memory replicas' median error against [`REPLICAS`] × (rate × seconds + burst).
    memory_median_per_replica_error: Option<f64>,
}

impl Accuracy {
    fn runs_of(&self, limits: Limits) -> impl Iterator<Item = &AccuracyRun> {
        self.runs.iter().filter(move |r| r.limits == limits)
    }
}

#[derive(Serialize)]
struct Results {
    throughput: Part,
    one_at_a_time: Part,
    accuracy: Accuracy,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    if bench.build {
        variants::build_some(&[Variant::Policies, Variant::Shared])?;
    }
    let scripts = wrk::write_scripts(bench)?;
    let proxies: Vec<Proxy> = Limits::ALL
        .iter()
        .flat_map(|limits| (0..REPLICAS).map(|i| limits.replica(i)))
        .collect();
    let mut stack = Stack::start(bench, "replicas", None, &proxies)?;
    check(&mut stack)?;

    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let (throughput, mut failures) = measure_part(bench, &mut stack, &scripts, shape);
    let single = Shape {
        connections: 1,
        threads: 1,
        duration: bench.duration,
    };
    let (one_at_a_time, more_failures) = measure_part(bench, &mut stack, &scripts, single);
    failures.extend(more_failures);
    let accuracy = accuracy(bench, &mut stack, &scripts);

    // A 429 or a 503 in the one-replica runs means a limit refused or Redis failed: every error is a problem.
    let (mut notes, mut problems) = review(&throughput.series, |_| true);
    let (more_notes, more_problems) = review(&one_at_a_time.series, |_| true);
    notes.extend(more_notes);
    problems.extend(more_problems);
    failures.extend(round_trip_problems(&throughput));
    failures.extend(accuracy_problems(&accuracy));
    notes.extend(failures.iter().cloned());
    problems.extend(failures);
    notes.extend(stack.log_findings());

    let results = Results {
        throughput,
        one_at_a_time,
        accuracy,
        notes,
    };
    let text = render(bench, &results);
    Ok(Section::new(Scenario::Replicas, text, results, problems))
}

/// Before any load: each replica answers a keyed request (and refuses one without a key), the first of each kind
/// names all four limits, and the shared replicas have called Redis.
fn check(stack: &mut Stack) -> anyhow::Result<()> {
    stack.smoke_check(&[
        Target::MemoryLimits,
        Target::SharedLimits,
        Target::MemoryLimited,
        Target::SharedLimited,
    ])?;
    let key = Target::SharedLimited.headers();
    for limits in Limits::ALL {
        for i in 0..REPLICAS {
            let proxy = limits.replica(i);
            let addr = stack.proxy(proxy)?.addr;
            let (status, _) = http_get_with(addr, LIMITED_PATH, &[])?;
            if status != 401 {
                bail!(
                    "replica {} ({}) answered GET {LIMITED_PATH} without a key with {status}, not 401",
                    i + 1,
                    limits.name()
                );
            }
            let (status, _) = http_get_with(addr, LIMITED_PATH, key)?;
            if status != 200 {
                bail!(
                    "replica {} ({}) answered GET {LIMITED_PATH} with the key with {status}, not 200",
                    i + 1,
                    limits.name()
                );
            }
        }
    }
    for target in TARGETS {
        let addr = stack.server(target)?.addr;
        let (_, response) = http_get_with(addr, KEYED_PATH, target.headers())?;
        let policy = response
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.to_lowercase().strip_prefix("ratelimit-policy:").map(str::to_owned))
            .unwrap_or_default();
        if let Some(item) = ["\"api\"", "\"operation\"", "\"plan\"", "\"quota\""]
            .into_iter()
            .find(|item| !policy.contains(item))
        {
            bail!(
                "{} (GET {KEYED_PATH}): RateLimit-Policy {policy:?} lacks {item}",
                target.name()
            );
        }
    }
    let redis = stack.redis().context("the stack has no Redis")?.addr;
    let commands = CommandStats::read(redis)?.since(&CommandStats::default());
    if commands.evalsha + commands.script_loads == 0 {
        bail!("the shared replicas answered, but Redis ran no script: their limits are not in Redis");
    }
    Ok(())
}

/// A warm-up run of each one-replica target, then `--repeat` interleaved rounds under `shape`, Redis's command
/// counts and the CPU times read around each measured run.
fn measure_part(bench: &Bench, stack: &mut Stack, scripts: &Scripts, shape: Shape) -> (Part, Vec<String>) {
    let failures = warm_up(bench, stack, scripts, &TARGETS, &shape, no_hook);
    let mut watch = Watch::default();
    let series = measure(bench, stack, scripts, &TARGETS, &shape, |phase, stack, target| {
        watch.hook(phase, stack, target)
    });
    let per_request = watch.per_request(&series, shape.connections);
    let medians = per_request
        .iter()
        .map(|(t, runs)| (*t, PerRequestMedians::of(runs)))
        .collect();
    let (shared, memory) = (Target::SharedLimits, Target::MemoryLimits);
    let part = Part {
        shape,
        shared_over_memory: throughput_ratio(&series, shared, memory),
        added_p50_us: paired(&series, shared, memory, |s, m| s.p50_us - m.p50_us),
        added_p99_us: paired(&series, shared, memory, |s, m| s.p99_us - m.p99_us),
        series,
        per_request,
        medians,
    };
    (part, failures)
}

/// What voids the round-trip figure: a shared run during which Redis ran no script (its limits were not there).
fn round_trip_problems(part: &Part) -> Vec<String> {
    part.per_request
        .iter()
        .filter(|(t, _)| *t == Target::SharedLimits)
        .flat_map(|(_, runs)| runs)
        .filter(|r| r.commands.evalsha == 0)
        .map(|r| format!("Redis limits, round {}: Redis ran no EVALSHA during the run", r.round))
        .collect()
}

/// `--repeat` rounds of an accuracy run of each kind of replicas, interleaved.
fn accuracy(bench: &Bench, stack: &mut Stack, scripts: &Scripts) -> Accuracy {
    // Enough paced connections for OVERLOAD × the rate, the same number on each replica.
    let per_replica = (OVERLOAD * f64::from(LIMITED_RATE) * f64::from(PAUSE_MS) / 1000.0 / REPLICAS as f64).ceil();
    let threads = u32::try_from(REPLICAS).unwrap_or(1);
    let shape = Shape {
        connections: threads * per_replica as u32,
        threads,
        duration: bench.duration,
    };
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for round in 1..=bench.repeat {
        for limits in Limits::ALL {
            match accuracy_run(bench, stack, scripts, limits, round, &shape) {
                Ok(run) => {
                    println!(
                        "  accuracy {round}/{} {:<9} {:>6} req/s offered  admitted {} of expected {:.0} ({:+.2}%)  \
                         per replica {:?}",
                        bench.repeat,
                        limits.name(),
                        rps(run.offered_rps),
                        run.spread.statuses.ok,
                        run.expected,
                        run.error * 100.0,
                        run.spread.ok_per_host
                    );
                    runs.push(run);
                }
                Err(e) => {
                    println!("  accuracy {round}/{} {} FAILED: {e:#}", bench.repeat, limits.name());
                    failures.push(format!("accuracy, {} replicas, round {round}: {e:#}", limits.name()));
                }
            }
        }
    }
    let errors = |limits: Limits, f: fn(&AccuracyRun) -> f64| {
        median(runs.iter().filter(|r| r.limits == limits).map(f).collect())
    };
    Accuracy {
        rate: LIMITED_RATE,
        burst: LIMITED_BURST,
        replicas: REPLICAS,
        pause_ms: PAUSE_MS,
        shape,
        shared_median_error: errors(Limits::Redis, |r| r.error),
        memory_median_multiple: errors(Limits::InMemory, |r| r.spread.statuses.ok / r.expected),
        memory_median_per_replica_error: errors(Limits::InMemory, AccuracyRun::per_replica_error),
        runs,
        failures,
    }
}

/// One accuracy run on the replicas of `limits`: waits until their buckets are full, then drives all three at once.
fn accuracy_run(
    bench: &Bench,
    stack: &mut Stack,
    scripts: &Scripts,
    limits: Limits,
    round: u32,
    shape: &Shape,
) -> anyhow::Result<AccuracyRun> {
    let replicas: Vec<Proxy> = (0..REPLICAS).map(|i| limits.replica(i)).collect();
    let mut hosts = Vec::new();
    for &proxy in &replicas {
        hosts.push(alive(stack, proxy)?);
    }
    // From empty, a bucket fills in burst / rate seconds; wait twice that, and at least a second.
    let refill = Duration::from_secs_f64(2.0 * f64::from(LIMITED_BURST) / f64::from(LIMITED_RATE));
    std::thread::sleep(refill.max(Duration::from_secs(1)));
    let redis = stack.redis().context("the stack has no Redis")?.addr;
    let url = format!("http://{}{LIMITED_PATH}", hosts[0]);
    let requests = Requests {
        url: &url,
        headers: Target::SharedLimited.headers(),
        paths: &[],
        body: None,
    };
    let before = CommandStats::read(redis)?;
    let calls = stack.origin_calls()?;
    let spread = wrk::run_spread(bench, scripts, &requests, &hosts, PAUSE_MS, shape);
    for &proxy in &replicas {
        alive(stack, proxy)?;
    }
    let spread = spread?;
    let commands = CommandStats::read(redis)?.since(&before);
    let origin_calls = stack.origin_calls()? - calls;
    Ok(AccuracyRun::new(limits, round, spread, Some(commands), origin_calls))
}

/// The address of `proxy`'s server, if it is still running.
fn alive(stack: &mut Stack, proxy: Proxy) -> anyhow::Result<SocketAddr> {
    let server = stack.proxy(proxy)?;
    if let Some(status) = server.exit_status() {
        bail!("{} exited ({status})", server.name());
    }
    Ok(server.addr)
}

/// What voids an accuracy run: a failed run, too little load, answers not all counted, answers other than 200 and
/// 429, socket errors; and shared replicas whose Redis ran no script.
fn accuracy_problems(accuracy: &Accuracy) -> Vec<String> {
    let mut problems = accuracy.failures.clone();
    let floor = MIN_OVERLOAD * f64::from(accuracy.rate);
    for run in &accuracy.runs {
        let which = format!("accuracy, {} replicas, round {}", run.limits.name(), run.round);
        let statuses = &run.spread.statuses;
        if run.offered_rps < floor {
            problems.push(format!(
                "{which}: offered {} req/s, under {MIN_OVERLOAD}× the rate ({})",
                rps(run.offered_rps),
                rps(floor)
            ));
        }
        let counted = statuses.ok + statuses.too_many + statuses.other;
        if (counted - run.spread.load.requests).abs() > 0.5 {
            problems.push(format!(
                "{which}: spread.lua counted {counted} answers but wrk {} requests",
                run.spread.load.requests
            ));
        }
        let per_host: f64 = run.spread.ok_per_host.iter().sum();
        if run.spread.ok_per_host.len() != accuracy.replicas || (per_host - statuses.ok).abs() > 0.5 {
            problems.push(format!(
                "{which}: 200s per replica {:?} do not add up to {}",
                run.spread.ok_per_host, statuses.ok
            ));
        }
        let socket_errors = run.spread.load.errors() - run.spread.load.http_errors;
        if statuses.other > 0.0 || socket_errors > 0.0 {
            problems.push(format!(
                "{which}: {} answers other than 200 and 429 ({} of them 503: a limit or quota that could not be \
                 checked, failing closed), {socket_errors} socket errors",
                statuses.other, run.spread.unavailable
            ));
        }
        if run.limits == Limits::Redis && run.commands.is_some_and(|c| c.evalsha == 0) {
            problems.push(format!("{which}: Redis ran no EVALSHA during the run"));
        }
    }
    problems
}

/// `+12`, `-3` (µs); `—` when there is none.
fn delta_us(value: Option<f64>) -> String {
    value.map_or_else(|| String::from("—"), |v| format!("{v:+.0}"))
}

/// A figure per request: `1.000`; `—` when there is none.
fn per_request(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| String::from("—"), |v| format!("{v:.decimals$}"))
}

fn render(bench: &Bench, results: &Results) -> String {
    [
        render_throughput(bench, &results.throughput, &results.notes),
        render_one_at_a_time(bench, &results.one_at_a_time),
        render_accuracy(&results.accuracy),
    ]
    .join("\n\n")
}

fn render_throughput(bench: &Bench, part: &Part, notes: &[String]) -> String {
    let mut table = Table::new(&[
        "limits",
        "GET",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        CPU_COLUMN,
        "EVALSHA/req",
        "sent/req",
        "Redis CPU µs/req",
    ]);
    for s in &part.series {
        let m = part.medians_of(s.target);
        let mut cells = vec![s.target.name().to_owned(), s.url_path.to_owned()];
        cells.extend(load_cells(s, ms));
        cells.extend([
            per_request(m.evalsha, 3),
            per_request(m.sent, 3),
            per_request(m.redis_cpu_us, 1),
        ]);
        table.row(cells);
    }
    let title = format!(
        "replicas, one replica: GET {KEYED_PATH} with a key (the key, API-wide, operation and plan buckets, quota; \
         every limit {}/s, never reached), limits in memory (bench-policies) against in Redis (bench-shared, the \
         same spec with x-gateway.shared); wrk {}; median of {} interleaved rounds",
        rps(f64::from(UNREACHED)),
        part.shape.describe(),
        bench.repeat
    );
    let shared = part.medians_of(Target::SharedLimits);
    let verdict = match shared.within_goal {
        Some(true) => "met",
        Some(false) => "not met",
        None => "—",
    };
    let mut lines = vec![
        format!(
            "Redis / in-memory throughput (median of per-round ratios): {}; added latency (Redis − in-memory within a \
             round, median): p50 {} µs, p99 {} µs",
            ratio(part.shared_over_memory),
            delta_us(part.added_p50_us),
            delta_us(part.added_p99_us)
        ),
        format!(
            "Redis round trips per request (commands sent, from INFO commandstats, over wrk's requests; median over \
             runs): {} of which EVALSHA {} ({verdict}; goal ≤ {ROUND_TRIP_GOAL:.0}, with the at most {} requests in \
             flight when wrk stopped uncounted); inside each script call Redis ran {} commands more (counted in \
             commandstats too); its own time per EVALSHA: {} µs",
            per_request(shared.sent, 3),
            per_request(shared.evalsha, 3),
            part.shape.connections,
            per_request(shared.in_script, 1),
            per_request(shared.evalsha_us, 1)
        ),
        String::from(
            "CPU µs/req: user + system time over wrk's requests, of the replica under load and of redis-server; on \
             this machine Redis shares the cores with wrk, the origin and the gateway",
        ),
    ];
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}

fn render_one_at_a_time(bench: &Bench, part: &Part) -> String {
    let mut table = Table::new(&[
        "limits",
        "GET",
        "req/s",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "errors",
        CPU_COLUMN,
        "sent/req",
    ]);
    for s in &part.series {
        let m = part.medians_of(s.target);
        let mut cells = vec![s.target.name().to_owned(), s.url_path.to_owned()];
        cells.extend(load_cells(s, us));
        cells.push(per_request(m.sent, 3));
        table.row(cells);
    }
    let title = format!(
        "replicas, one request at a time: the same two targets, wrk {}; median of {} interleaved rounds",
        part.shape.describe(),
        bench.repeat
    );
    let lines = vec![format!(
        "added latency (Redis − in-memory within a round, median): p50 {} µs, p99 {} µs; throughput {}",
        delta_us(part.added_p50_us),
        delta_us(part.added_p99_us),
        ratio(part.shared_over_memory)
    )];
    with_notes(&title, &table, &lines)
}

fn render_accuracy(accuracy: &Accuracy) -> String {
    let mut table = Table::new(&[
        "limits",
        "run",
        "seconds",
        "offered req/s",
        "× rate",
        "200",
        "200 per replica",
        "429",
        "503",
        "expected",
        "error",
        "EVALSHA/req",
        "origin calls",
    ]);
    for limits in Limits::ALL {
        for run in accuracy.runs_of(limits) {
            let per_replica: Vec<String> = run.spread.ok_per_host.iter().map(|n| format!("{n:.0}")).collect();
            table.row(vec![
                limits.name().to_owned(),
                run.round.to_string(),
                format!("{:.3}", run.spread.load.duration_s),
                rps(run.offered_rps),
                format!("{:.1}", run.offered_rps / f64::from(accuracy.rate)),
                format!("{:.0}", run.spread.statuses.ok),
                per_replica.join(" / "),
                format!("{:.0}", run.spread.statuses.too_many),
                format!("{:.0}", run.spread.unavailable),
                format!("{:.0}", run.expected),
                format!("{:+.2}%", run.error * 100.0),
                per_request(run.evalsha_per_request(), 3),
                run.origin_calls.to_string(),
            ]);
        }
    }
    let title = format!(
        "replicas, accuracy: GET {LIMITED_PATH} with the key (an operation bucket: rate {}/s, burst {}) on {} replicas \
         at once, one wrk -t{} -c{} ({} connections per replica, each pausing {} ms before each request), {}s, the \
         buckets full at the start of each run; expected = rate × seconds (wrk's measured duration) + burst, the \
         API's limit as a whole; admitted = 200s",
        accuracy.rate,
        accuracy.burst,
        accuracy.replicas,
        accuracy.shape.threads,
        accuracy.shape.connections,
        accuracy.shape.connections / accuracy.shape.threads.max(1),
        accuracy.pause_ms,
        accuracy.shape.duration.as_secs().max(1)
    );
    let verdict = match accuracy.shared_median_error {
        Some(e) if e.abs() <= ACCURACY_GOAL => "met",
        Some(_) => "not met",
        None => "—",
    };
    let percent = |e: Option<f64>| e.map_or_else(|| String::from("—"), |e| format!("{:+.2}%", e * 100.0));
    let lines = vec![
        format!(
            "Redis, {} replicas on one Redis: median error {} ({verdict}; goal within ±{:.0}%)",
            accuracy.replicas,
            percent(accuracy.shared_median_error),
            ACCURACY_GOAL * 100.0
        ),
        format!(
            "in-memory, {} replicas: {} the API's limit (median), each replica holding it on its own; against {} × \
             expected, median error {}",
            accuracy.replicas,
            ratio(accuracy.memory_median_multiple),
            accuracy.replicas,
            percent(accuracy.memory_median_per_replica_error)
        ),
        String::from(
            "EVALSHA/req under 1: requests a replica's own in-memory bucket (the pre-check, at the full rate) refused \
             without asking Redis; origin calls: the requests admitted, including any whose answer wrk had not read \
             when it stopped",
        ),
    ];
    with_notes(&title, &table, &lines)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;
    use crate::bench::wrk::Statuses;

    #[test]
    fn reads_command_stats() {
        let before = CommandStats::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=10,usec=300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_info:calls=3,usec=90,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n",
        );
        let after = CommandStats::parse(
            "# Commandstats\r\ncmdstat_evalsha:calls=110,usec=3300,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_script|load:calls=1,usec=20,usec_per_call=20.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_hincrby:calls=2,usec=4,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
             cmdstat_info:calls=5,usec=150,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n",
        );
        assert_eq!(
            after.since(&before),
            Commands {
                evalsha: 100,
                script_loads: 1,
                in_scripts: 2,
                others: 0,
                total: 103,
                evalsha_usec: 3000,
            }
        );
    }

    #[test]
    fn speaks_enough_resp() -> anyhow::Result<()> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let server = std::thread::spawn(move || -> anyhow::Result<Vec<u8>> {
            let (mut stream, _) = listener.accept()?;
            let mut request = [0_u8; 64];
            let n = stream.read(&mut request)?;
            stream.write_all(b"$12\r\nhello\r\nworld\r\n")?;
            Ok(request[..n].to_vec())
        });
        assert_eq!(redis_command(addr, &["INFO", "commandstats"])?, "hello\r\nworld");
        let request = server
            .join()
            .map_err(|_| anyhow::anyhow!("the fake Redis panicked"))??;
        assert_eq!(request, b"*2\r\n$4\r\nINFO\r\n$12\r\ncommandstats\r\n");
        Ok(())
    }

    fn run(limits: Limits, requests: f64, seconds: f64, ok: f64) -> AccuracyRun {
        let spread = Spread {
            load: Load {
                requests,
                duration_s: seconds,
                http_errors: requests - ok,
                ..Load::default()
            },
            statuses: Statuses {
                ok,
                too_many: requests - ok,
                other: 0.0,
            },
            ok_per_host: vec![ok / 3.0; 3],
            unavailable: 0.0,
        };
        let commands = Commands {
            evalsha: 1,
            ..Commands::default()
        };
        AccuracyRun::new(limits, 1, spread, Some(commands), 0)
    }

    fn accuracy(runs: Vec<AccuracyRun>) -> Accuracy {
        Accuracy {
            rate: LIMITED_RATE,
            burst: LIMITED_BURST,
            replicas: REPLICAS,
            pause_ms: PAUSE_MS,
            shape: Shape {
                connections: 51,
                threads: 3,
                duration: Duration::from_secs(10),
            },
            runs,
            failures: Vec::new(),
            shared_median_error: None,
            memory_median_multiple: None,
            memory_median_per_replica_error: None,
        }
    }

    #[test]
    fn expected_is_the_apis_limit() {
        // 1,000/s for 10 s plus a burst of 100: 10,100 expected for the API; three replicas alone: 30,300.
        let shared = run(Limits::Redis, 50_000.0, 10.0, 10_201.0);
        assert!((shared.expected - 10_100.0).abs() < 1e-9);
        assert!((shared.error - 0.01).abs() < 1e-9);
        let memory = run(Limits::InMemory, 50_000.0, 10.0, 30_300.0);
        assert!((memory.per_replica_expected - 30_300.0).abs() < 1e-9);
        assert!(memory.per_replica_error().abs() < 1e-9);
        assert!(accuracy_problems(&accuracy(vec![shared, memory])).is_empty());
    }

    #[test]
    fn too_little_load_is_a_problem() {
        // 3,000 req/s offered is under 4× a rate of 1,000/s.
        let problems = accuracy_problems(&accuracy(vec![run(Limits::Redis, 30_000.0, 10.0, 10_100.0)]));
        assert_eq!(problems.len(), 1, "{problems:?}");
    }
}
