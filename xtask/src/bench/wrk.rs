//! One wrk load run, bounded in time, and its figures read back from a Lua `done()` hook that prints them on one
//! line (wrk's own summary rounds latencies and mixes units).
//!
//! The scripts share that hook: `report.lua` sends wrk's one request; `rotate.lua` cycles through a set of paths
//! given after `--` (one pre-formatted request each, so a rotation costs a Lua call and no formatting); `count.lua`
//! also counts the responses by status (200, 429, other), per thread, summed in `done()`; `body.lua` sends one
//! request with a method and body given after `--` (formatted once per thread); `spread.lua` counts as `count.lua`
//! does, with each wrk thread sending to a server of its own and each connection pausing before each request.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use crate::process::output_within;

use super::Bench;

/// The hook: one `xtask-bench key=value …` line. wrk counts a response with a status of 400 or more as a status
/// error; socket errors are connect, read and write errors and timeouts.
const REPORT: &str = r#"-- Written by `cargo xtask bench`: prints the run's figures on one parseable line.
function report(summary, latency)
  local e = summary.errors
  io.write(string.format(
    "xtask-bench requests=%d duration_us=%d p50_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f " ..
    "http_errors=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency:percentile(99.9), latency.max, e.status, e.connect, e.read, e.write, e.timeout))
end

done = function(summary, latency, requests)
  report(summary, latency)
end
"#;

/// Appended to [`REPORT`]: each thread cycles through the paths given as script arguments.
const ROTATE: &str = r#"
-- Rotation: the paths after `--`, one request each, formatted once per thread (after wrk has set `Host`).
local requests = {}
local next_request = 0

init = function(args)
  for _, path in ipairs(args) do
    requests[#requests + 1] = wrk.format(nil, path)
  end
end

request = function()
  if #requests == 0 then
    return wrk.format()
  end
  next_request = next_request % #requests + 1
  return requests[next_request]
end
"#;

/// Appended to [`REPORT`]: one request with the method and body given as script arguments.
const BODY: &str = r#"
-- A method and a body: `-- METHOD BODY`, formatted once per thread (after wrk has set `Host` and the `-H` headers).
local body_request = nil

init = function(args)
  body_request = wrk.format(args[1], nil, nil, args[2])
end

request = function()
  return body_request
end
"#;

/// Appended to [`REPORT`]: per-thread status counters (globals of each thread's Lua state, read back with
/// `thread:get` from the `threads` collected in `setup()`), summed in `done()` on a second line.
const COUNT: &str = r#"
-- Counting: responses by status, per thread, summed when the run is done.
local threads = {}

setup = function(thread)
  table.insert(threads, thread)
end

status_200, status_429, status_other = 0, 0, 0

response = function(status, headers, body)
  if status == 200 then
    status_200 = status_200 + 1
  elseif status == 429 then
    status_429 = status_429 + 1
  else
    status_other = status_other + 1
  end
end

done = function(summary, latency, requests)
  report(summary, latency)
  local ok, limited, other = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok = ok + thread:get("status_200")
    limited = limited + thread:get("status_429")
    other = other + thread:get("status_other")
  end
  io.write(string.format("xtask-statuses s200=%d s429=%d other=%d\n", ok, limited, other))
end
"#;

/// Appended to [`REPORT`]: one wrk thread per server, each connection paced; responses counted as by [`COUNT`], the
/// 200s also per thread (that is, per server).
const SPREAD: &str = r#"
-- Spreading: wrk's Nth thread sends to the Nth address of XTASK_BENCH_HOSTS (`host:port`, separated by spaces),
-- set in setup(), which runs in wrk's main Lua state before the thread connects.
local threads = {}
local hosts = nil

setup = function(thread)
  if hosts == nil then
    hosts = {}
    for host, port in string.gmatch(os.getenv("XTASK_BENCH_HOSTS") or "", "([^%s:]+):(%d+)") do
      hosts[#hosts + 1] = wrk.lookup(host, port)[1]
    end
  end
  table.insert(threads, thread)
  if #hosts > 0 then
    thread.addr = hosts[(#threads - 1) % #hosts + 1]
  end
end

-- Pacing: each connection waits the milliseconds given after `--` before sending each request, so that the offered
-- rate is about connections × 1000 / (pause + latency) requests per second.
local pause = 0

init = function(args)
  pause = tonumber(args[1]) or 0
end

delay = function()
  return pause
end

-- 503s (a gateway that cannot check a limit and fails closed) are counted among the others and also on their own.
status_200, status_429, status_other, status_503 = 0, 0, 0, 0

response = function(status, headers, body)
  if status == 200 then
    status_200 = status_200 + 1
  elseif status == 429 then
    status_429 = status_429 + 1
  else
    status_other = status_other + 1
    if status == 503 then
      status_503 = status_503 + 1
    end
  end
end

done = function(summary, latency, requests)
  report(summary, latency)
  local ok, limited, other, unavailable = 0, 0, 0, 0
  local per_thread = {}
  for _, thread in ipairs(threads) do
    local n = thread:get("status_200")
    ok = ok + n
    limited = limited + thread:get("status_429")
    other = other + thread:get("status_other")
    unavailable = unavailable + thread:get("status_503")
    per_thread[#per_thread + 1] = string.format("%d", n)
  end
  io.write(string.format("xtask-statuses s200=%d s429=%d other=%d\n", ok, limited, other))
  io.write(string.format("xtask-threads s503=%d s200=%s\n", unavailable, table.concat(per_thread, ",")))
end
"#;

/// How long wrk waits for a response before counting a timeout.
const RESPONSE_TIMEOUT: &str = "2s";

/// How much longer than its `-d` a wrk run may take before it is killed.
const GRACE: Duration = Duration::from_secs(30);

/// The shape of a load.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Shape {
    /// Open connections, each with one request in flight at a time.
    pub connections: u32,
    /// wrk threads.
    pub threads: u32,
    /// Length of the run (whole seconds; wrk takes no less).
    #[serde(serialize_with = "seconds")]
    pub duration: Duration,
}

fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl Shape {
    /// The same shape for `duration`.
    pub fn lasting(self, duration: Duration) -> Self {
        Self { duration, ..self }
    }

    /// `-c64 -t2 10s`.
    pub fn describe(&self) -> String {
        format!(
            "-c{} -t{}, {}s",
            self.connections,
            self.threads,
            whole_seconds(self.duration)
        )
    }
}

fn whole_seconds(d: Duration) -> u64 {
    d.as_secs().max(1)
}

/// The figures of one run. Latencies are in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Load {
    pub requests: f64,
    /// How long the run lasted, as wrk measured it.
    pub duration_s: f64,
    pub rps: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    /// Responses with a status of 400 or more.
    pub http_errors: f64,
    pub connect_errors: f64,
    pub read_errors: f64,
    pub write_errors: f64,
    pub timeouts: f64,
    /// The CPU time the server under test spent per request over the run (user + system, from `/proc/PID/stat`,
    /// ÷ requests), in µs; `None` where it was not measured.
    pub cpu_us_per_request: Option<f64>,
}

impl Load {
    /// Every failed request: HTTP errors and socket errors.
    pub fn errors(&self) -> f64 {
        self.http_errors + self.connect_errors + self.read_errors + self.write_errors + self.timeouts
    }

    /// The median of each figure separately.
    pub fn median(loads: &[Self]) -> Option<Self> {
        let of = |f: fn(&Self) -> f64| median(loads.iter().map(f).collect());
        Some(Self {
            requests: of(|l| l.requests)?,
            duration_s: of(|l| l.duration_s)?,
            rps: of(|l| l.rps)?,
            p50_us: of(|l| l.p50_us)?,
            p99_us: of(|l| l.p99_us)?,
            p999_us: of(|l| l.p999_us)?,
            max_us: of(|l| l.max_us)?,
            http_errors: of(|l| l.http_errors)?,
            connect_errors: of(|l| l.connect_errors)?,
            read_errors: of(|l| l.read_errors)?,
            write_errors: of(|l| l.write_errors)?,
            timeouts: of(|l| l.timeouts)?,
            cpu_us_per_request: median(loads.iter().filter_map(|l| l.cpu_us_per_request).collect()),
        })
    }
}

/// The median of `values` (the mean of the middle two for an even count); `None` for none.
pub fn median(mut values: Vec<f64>) -> Option<f64> {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The scripts, written where wrk can read them.
pub struct Scripts {
    report: PathBuf,
    rotate: PathBuf,
    count: PathBuf,
    body: PathBuf,
    spread: PathBuf,
}

/// Writes the scripts to `target/bench/`.
pub fn write_scripts(bench: &Bench) -> anyhow::Result<Scripts> {
    let write = |name: &str, text: String| -> anyhow::Result<PathBuf> {
        let path = bench.scratch.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    Ok(Scripts {
        report: write("report.lua", REPORT.to_owned())?,
        rotate: write("rotate.lua", format!("{REPORT}{ROTATE}"))?,
        count: write("count.lua", format!("{REPORT}{COUNT}"))?,
        body: write("body.lua", format!("{REPORT}{BODY}"))?,
        spread: write("spread.lua", format!("{REPORT}{SPREAD}"))?,
    })
}

/// What a load sends: a GET of `url` or, when there are `paths`, of each of them in turn on `url`'s server; or,
/// with a `body`, `method` requests of `url` with that body; with `headers` on every request.
#[derive(Debug, Clone, Copy)]
pub struct Requests<'a> {
    pub url: &'a str,
    pub headers: &'a [(&'a str, &'a str)],
    pub paths: &'a [String],
    /// The method and body of every request (`paths` must be empty).
    pub body: Option<(&'a str, &'a str)>,
}

/// Responses by status, counted by `count.lua`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Statuses {
    pub ok: f64,
    pub too_many: f64,
    pub other: f64,
}

/// Drives `requests` with `shape`; fails if wrk fails, hangs or prints no figures.
pub fn run(bench: &Bench, scripts: &Scripts, requests: &Requests<'_>, shape: &Shape) -> anyhow::Result<Load> {
    let script = if requests.body.is_some() {
        &scripts.body
    } else if requests.paths.is_empty() {
        &scripts.report
    } else {
        &scripts.rotate
    };
    let stdout = run_script(bench, script, requests, shape)?;
    parse(&stdout).with_context(|| format!("wrk printed no figures: {}", tail(&stdout)))
}

/// [`run`], counting the responses by status (which costs wrk a Lua call per response).
pub fn run_counting(
    bench: &Bench,
    scripts: &Scripts,
    requests: &Requests<'_>,
    shape: &Shape,
) -> anyhow::Result<(Load, Statuses)> {
    let stdout = run_script(bench, &scripts.count, requests, shape)?;
    let figures = parse(&stdout).and_then(|load| Ok((load, parse_statuses(&stdout)?)));
    figures.with_context(|| format!("wrk printed no figures: {}", tail(&stdout)))
}

/// What [`run_spread`] counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Spread {
    pub load: Load,
    pub statuses: Statuses,
    /// The 200s of each server, in the order of `hosts`.
    pub ok_per_host: Vec<f64>,
    /// The 503s (counted among `statuses.other` too).
    pub unavailable: f64,
}

/// `requests` spread over `hosts`, one wrk thread each (`shape.threads` must be their number, and
/// `shape.connections` a multiple of it), every connection pausing `pause_ms` before each request; the responses
/// counted by status, and the 200s per server. The URL gives the path and the `Host` header; its address is not
/// used.
pub fn run_spread(
    bench: &Bench,
    scripts: &Scripts,
    requests: &Requests<'_>,
    hosts: &[std::net::SocketAddr],
    pause_ms: u32,
    shape: &Shape,
) -> anyhow::Result<Spread> {
    if hosts.is_empty() || shape.threads as usize != hosts.len() || !shape.connections.is_multiple_of(shape.threads) {
        bail!(
            "a spread load needs one thread per server and the same connections for each ({} servers, {})",
            hosts.len(),
            shape.describe()
        );
    }
    let mut command = command(bench, &scripts.spread, requests, shape)?;
    let list: Vec<String> = hosts.iter().map(ToString::to_string).collect();
    command.env("XTASK_BENCH_HOSTS", list.join(" "));
    command.args(["--".to_owned(), pause_ms.to_string()]);
    let stdout = finish(command, shape)?;
    let figures = parse(&stdout).and_then(|load| {
        let statuses = parse_statuses(&stdout)?;
        let (unavailable, ok_per_host) = parse_per_thread(&stdout)?;
        Ok(Spread {
            load,
            statuses,
            ok_per_host,
            unavailable,
        })
    });
    figures.with_context(|| format!("wrk printed no figures: {}", tail(&stdout)))
}

/// Runs wrk with `script`; its stdout.
fn run_script(bench: &Bench, script: &Path, requests: &Requests<'_>, shape: &Shape) -> anyhow::Result<String> {
    let mut command = command(bench, script, requests, shape)?;
    if let Some((method, body)) = requests.body {
        command.args(["--", method, body]);
    } else if !requests.paths.is_empty() {
        command.arg("--").args(requests.paths);
    }
    finish(command, shape)
}

/// wrk with `shape`, `script` and the headers and URL of `requests`; the script's arguments are the caller's.
fn command(
    bench: &Bench,
    script: &Path,
    requests: &Requests<'_>,
    shape: &Shape,
) -> anyhow::Result<std::process::Command> {
    let mut command = bench.placement.client(bench.tools.path("wrk")?);
    command.args([
        format!("-t{}", shape.threads),
        format!("-c{}", shape.connections),
        format!("-d{}s", whole_seconds(shape.duration)),
        format!("--timeout={RESPONSE_TIMEOUT}"),
        String::from("--latency"),
        String::from("-s"),
        script.display().to_string(),
    ]);
    for (name, value) in requests.headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(requests.url);
    Ok(command)
}

/// Runs a wrk `command` of `shape` (bounded); its stdout, or why it failed.
fn finish(command: std::process::Command, shape: &Shape) -> anyhow::Result<String> {
    let output = output_within(command, shape.duration + GRACE)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        bail!(
            "wrk failed ({}): {}",
            output.status,
            tail(&String::from_utf8_lossy(&output.stderr))
        );
    }
    Ok(stdout)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" / ")
}

/// The `key=value` pairs of the line that starts with `prefix`, as numbers.
fn line_values<'a>(stdout: &'a str, prefix: &str) -> anyhow::Result<impl Fn(&str) -> anyhow::Result<f64> + 'a> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix(prefix)?.strip_prefix(' '))
        .with_context(|| format!("no `{prefix}` line"))?;
    Ok(move |key: &str| -> anyhow::Result<f64> {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no `{key}`"))?
            .parse::<f64>()
            .with_context(|| format!("`{key}` is not a number"))
    })
}

/// Reads the hook's line.
fn parse(stdout: &str) -> anyhow::Result<Load> {
    let value = line_values(stdout, "xtask-bench")?;
    let duration_s = value("duration_us")? / 1e6;
    if duration_s <= 0.0 {
        bail!("the run lasted no time");
    }
    let requests = value("requests")?;
    Ok(Load {
        requests,
        duration_s,
        rps: requests / duration_s,
        p50_us: value("p50_us")?,
        p99_us: value("p99_us")?,
        p999_us: value("p999_us")?,
        max_us: value("max_us")?,
        http_errors: value("http_errors")?,
        connect_errors: value("connect_errors")?,
        read_errors: value("read_errors")?,
        write_errors: value("write_errors")?,
        timeouts: value("timeouts")?,
        cpu_us_per_request: None,
    })
}

/// Reads `count.lua`'s second line.
fn parse_statuses(stdout: &str) -> anyhow::Result<Statuses> {
    let value = line_values(stdout, "xtask-statuses")?;
    Ok(Statuses {
        ok: value("s200")?,
        too_many: value("s429")?,
        other: value("other")?,
    })
}

/// Reads `spread.lua`'s third line: the 503s, and the 200s of each thread.
fn parse_per_thread(stdout: &str) -> anyhow::Result<(f64, Vec<f64>)> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("xtask-threads "))
        .context("no `xtask-threads` line")?;
    let field = |key: &str| {
        line.split_whitespace()
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no `{key}`"))
    };
    let number = |n: &str| n.parse::<f64>().with_context(|| format!("`{n}` is not a number"));
    let per_thread = field("s200")?.split(',').map(number).collect::<anyhow::Result<_>>()?;
    Ok((number(field("s503")?)?, per_thread))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_hook_line() -> anyhow::Result<()> {
        let out = "Running 10s test\nxtask-bench requests=1000 duration_us=2000000 p50_us=100.0 p99_us=900.5 \
                   p999_us=1200.0 max_us=5000.0 http_errors=3 connect_errors=0 read_errors=1 write_errors=0 \
                   timeouts=2\n";
        let load = parse(out)?;
        assert!((load.rps - 500.0).abs() < 1e-9);
        assert!((load.p99_us - 900.5).abs() < 1e-9);
        assert!((load.errors() - 6.0).abs() < 1e-9);
        Ok(())
    }

    #[test]
    fn parses_the_status_counts() -> anyhow::Result<()> {
        let out = "xtask-bench requests=10 duration_us=1000000 p50_us=1 p99_us=1 p999_us=1 max_us=1 http_errors=4 \
                   connect_errors=0 read_errors=0 write_errors=0 timeouts=0\nxtask-statuses s200=6 s429=4 other=0\n";
        assert_eq!(
            parse_statuses(out)?,
            Statuses {
                ok: 6.0,
                too_many: 4.0,
                other: 0.0
            }
        );
        assert!(parse_statuses("xtask-bench requests=1\n").is_err());
        Ok(())
    }

    #[test]
    fn parses_the_counts_per_thread() -> anyhow::Result<()> {
        assert_eq!(
            parse_per_thread("xtask-threads s503=7 s200=3,0,12\n")?,
            (7.0, vec![3.0, 0.0, 12.0])
        );
        assert!(parse_per_thread("xtask-statuses s200=1 s429=0 other=0\n").is_err());
        Ok(())
    }

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
