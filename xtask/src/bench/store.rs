//! `store`: what store targets sustain — acknowledged durable writes per second, and reads per second.
//!
//! The gateway is the bench-only `bench-plain` (see [`variants`](super::variants)), whose stores `full`
//! (`synchronous: full`, the default) and `normal` are put in a fresh directory under `target/bench/store/` with
//! `--store`. Three gateways run side by side, each measured in turn every round:
//!
//! - `full`: the default — `synchronous=FULL`, the writer thread committing every queued write in one transaction
//!   (up to 1,024), so one flush of the WAL acknowledges many writes;
//! - `full, batch 1`: the same with `--store-max-batch 1`, a transaction (and a flush) per write, which is what the
//!   group commit saves;
//! - `normal`: `synchronous=NORMAL`, group commit: a commit reaches the OS before it is acknowledged and the disk at
//!   checkpoints (safe from a killed gateway, not from a power loss).
//!
//! Writes are wrk `POST /store/<store>/items` of a small JSON item (`body.lua`), validated against its schema and
//! stored under a new id: each `201` is a committed write. Reads are `GET /store/full/items/ID` of one item, and a
//! list page of 10 through a filter (`?kind=toy&limit=10`). Checked, not assumed: each gateway first answers a
//! write and reads it back, every run must have no errors, and after the runs each store must hold at least as many
//! items as wrk counted acknowledged writes (read back through the list, 1,000 a page).

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::Serialize;

use crate::process::{Ready, Server, http_request};

use super::report::{Section, Table, count, ms, rps, with_notes};
use super::variants::{self, Variant};
use super::wrk::{self, Load, Requests, Shape};
use super::{Bench, Scenario};

/// The item every write stores (a new one each time: `create` makes the id).
const ITEM: &str = r#"{"name":"bench item","kind":"toy","n":7}"#;

/// One gateway of the scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Config {
    /// `synchronous=FULL`, group commit.
    Full,
    /// `synchronous=FULL`, a commit per write.
    FullBatch1,
    /// `synchronous=NORMAL`, group commit.
    Normal,
}

impl Config {
    const ALL: [Self; 3] = [Self::Full, Self::FullBatch1, Self::Normal];

    fn name(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::FullBatch1 => "full, batch 1",
            Self::Normal => "normal",
        }
    }

    /// The store its writes go to.
    fn store(self) -> &'static str {
        match self {
            Self::Full | Self::FullBatch1 => "full",
            Self::Normal => "normal",
        }
    }
}

/// What one series of runs measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Kind {
    /// `POST` create.
    Write,
    /// `GET` of one item.
    Read,
    /// `GET` of a list page of 10, filtered.
    List,
}

/// One series: a gateway, what it was asked, every measured run and their median.
#[derive(Serialize)]
struct Series {
    config: Config,
    kind: Kind,
    runs: Vec<Load>,
    median: Option<Load>,
    failures: Vec<String>,
    /// Responses of the warm-up run (writes stored too).
    warm_up_requests: f64,
}

/// What each store held after the runs, against the writes wrk counted.
#[derive(Serialize)]
struct Stored {
    config: Config,
    /// Writes answered `201` that wrk counted (warm-up and measured runs), plus the smoke write.
    acknowledged: f64,
    /// Writes that may have been committed without wrk counting their answer: one per connection per run, at most.
    in_flight_at_ends: f64,
    items: u64,
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    item: &'static str,
    filesystem: String,
    series: Vec<Series>,
    stored: Vec<Stored>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    if bench.build {
        variants::build_some(&[Variant::Plain])?;
    }
    let dir = bench.scratch.join("store");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let filesystem = filesystem(&dir);
    let scripts = wrk::write_scripts(bench)?;
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let mut servers = Vec::new();
    for config in Config::ALL {
        servers.push((config, start(bench, &dir, config)?));
    }
    // Each gateway takes a write and gives it back before it is measured; the first item is the one reads read.
    let mut read_path = String::new();
    for (config, server) in &servers {
        let path = smoke(server.addr, config.store())?;
        if *config == Config::Full {
            read_path = path;
        }
    }
    let json = [("content-type", "application/json")];
    let list_path = "/store/full/items?kind=toy&limit=10";
    let plan: Vec<(Config, Kind)> = Config::ALL
        .iter()
        .map(|c| (*c, Kind::Write))
        .chain([(Config::Full, Kind::Read), (Config::Full, Kind::List)])
        .collect();
    let mut series: Vec<Series> = plan
        .iter()
        .map(|(config, kind)| Series {
            config: *config,
            kind: *kind,
            runs: Vec::new(),
            median: None,
            failures: Vec::new(),
            warm_up_requests: 0.0,
        })
        .collect();
    let mut notes = Vec::new();
    let mut problems = Vec::new();
    // The warm-up round (not measured), then the measured ones, interleaved across the gateways.
    for round in 0..=bench.repeat {
        let warm = round == 0;
        let shape = if warm { shape.lasting(bench.warmup) } else { shape };
        for s in &mut series {
            let addr = servers
                .iter()
                .find(|(c, _)| *c == s.config)
                .map(|(_, server)| server.addr)
                .context("every configuration has a gateway")?;
            let url = match s.kind {
                Kind::Write => format!("http://{addr}/store/{}/items", s.config.store()),
                Kind::Read => format!("http://{addr}{read_path}"),
                Kind::List => format!("http://{addr}{list_path}"),
            };
            let requests = Requests {
                url: &url,
                headers: if s.kind == Kind::Write { &json } else { &[] },
                paths: &[],
                body: (s.kind == Kind::Write).then_some(("POST", ITEM)),
            };
            match wrk::run(bench, &scripts, &requests, &shape) {
                Ok(load) if warm => {
                    s.warm_up_requests = load.requests;
                    if load.errors() > 0.0 {
                        notes.push(format!(
                            "{} {:?} warm-up: {} errors",
                            s.config.name(),
                            s.kind,
                            load.errors()
                        ));
                    }
                }
                Ok(load) => s.runs.push(load),
                Err(e) => s.failures.push(format!("{e:#}")),
            }
        }
    }
    for s in &mut series {
        s.median = Load::median(&s.runs);
        for failure in &s.failures {
            problems.push(format!("{} {:?}: {failure}", s.config.name(), s.kind));
        }
        if let Some(median) = &s.median
            && median.errors() > 0.0
        {
            problems.push(format!(
                "{} {:?}: {} errors (median run)",
                s.config.name(),
                s.kind,
                median.errors()
            ));
        }
    }
    // Every acknowledged write must be there (warm-up and measured runs, plus the smoke write), and nothing more than
    // the writes still in flight when wrk stopped (their answers uncounted).
    let mut stored = Vec::new();
    for (config, server) in &servers {
        let writes = series.iter().filter(|s| s.config == *config && s.kind == Kind::Write);
        let acknowledged: f64 = 1.0
            + writes
                .clone()
                .map(|s| s.warm_up_requests + s.runs.iter().map(|load| load.requests).sum::<f64>())
                .sum::<f64>();
        let runs = writes.map(|s| s.runs.len() + 1).sum::<usize>() as f64;
        let in_flight_at_ends = runs * f64::from(shape.connections);
        let items = count_items(server.addr, config.store())?;
        if (items as f64) < acknowledged {
            problems.push(format!(
                "{}: {items} items stored, but wrk counted {acknowledged} acknowledged writes",
                config.name()
            ));
        }
        if (items as f64) > acknowledged + in_flight_at_ends {
            problems.push(format!(
                "{}: {items} items stored, more than the {acknowledged} acknowledged writes and {in_flight_at_ends} in flight",
                config.name()
            ));
        }
        stored.push(Stored {
            config: *config,
            acknowledged,
            in_flight_at_ends,
            items,
        });
    }
    drop(servers);

    let mut table = Table::new(&["gateway", "what", "req/s", "p50 ms", "p99 ms", "p99.9 ms", "errors"]);
    for s in &series {
        let what = match s.kind {
            Kind::Write => "POST (create), acknowledged",
            Kind::Read => "GET one item",
            Kind::List => "GET a page of 10, filtered",
        };
        let cells = match &s.median {
            Some(m) => vec![rps(m.rps), ms(m.p50_us), ms(m.p99_us), ms(m.p999_us), count(m.errors())],
            None => vec!["FAILED".to_owned(); 5],
        };
        let mut row = vec![s.config.name().to_owned(), what.to_owned()];
        row.extend(cells);
        table.row(row);
    }
    let write_rps = |config: Config| {
        series
            .iter()
            .find(|s| s.config == config && s.kind == Kind::Write)
            .and_then(|s| s.median.map(|m| m.rps))
    };
    if let (Some(grouped), Some(single)) = (write_rps(Config::Full), write_rps(Config::FullBatch1)) {
        notes.push(format!(
            "group commit: {:.1}× the durable writes of one commit per write",
            grouped / single.max(1.0)
        ));
    }
    if let (Some(normal), Some(full)) = (write_rps(Config::Normal), write_rps(Config::Full)) {
        notes.push(format!(
            "synchronous=NORMAL: {:.2}× the writes of FULL",
            normal / full.max(1.0)
        ));
    }
    notes.push(format!("the store's directory is on {filesystem}"));
    for s in &stored {
        notes.push(format!(
            "{}: {} items stored for {} acknowledged writes (warm-up, measured runs and the smoke write), {} more: \
             writes in flight when a run stopped (at most {})",
            s.config.name(),
            s.items,
            s.acknowledged,
            s.items as f64 - s.acknowledged,
            s.in_flight_at_ends
        ));
    }
    let title = format!(
        "store: wrk -t{} -c{} -d{}s, {} rounds (medians); a {}-byte item per write",
        shape.threads,
        shape.connections,
        shape.duration.as_secs(),
        bench.repeat,
        ITEM.len()
    );
    let text = with_notes(&title, &table, &notes);
    let results = Results {
        shape,
        item: ITEM,
        filesystem,
        series,
        stored,
        notes,
    };
    Ok(Section::new(Scenario::Store, text, results, problems))
}

/// The `bench-plain` gateway for `config`, its stores in `dir/<config>/`.
fn start(bench: &Bench, dir: &Path, config: Config) -> anyhow::Result<Server> {
    let binary = Variant::Plain.binary();
    let own = dir.join(match config {
        Config::Full => "full",
        Config::FullBatch1 => "full-batch-1",
        Config::Normal => "normal",
    });
    let mut command = bench.placement.server(&bench.bin.join(&binary));
    command.args([
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "off",
        "--access-log",
        "off",
        "--shutdown-timeout",
        "5s",
    ]);
    command.arg("--workers").arg(bench.placement.server_threads.to_string());
    for store in ["full", "normal"] {
        command
            .arg("--store")
            .arg(format!("{store}={}", own.join(format!("{store}.db")).display()));
    }
    if config == Config::FullBatch1 {
        command.args(["--store-max-batch", "1"]);
    }
    std::fs::create_dir_all(&own).with_context(|| format!("creating {}", own.display()))?;
    let log = own.join("gateway.log");
    let file = std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    command.stderr(Stdio::from(file));
    Server::spawn(command, &format!("{binary} ({})", config.name()), Ready::PrintsAddress)
}

/// One write and its read-back; the item's path.
fn smoke(addr: SocketAddr, store: &str) -> anyhow::Result<String> {
    let json = [("content-type", "application/json")];
    let (status, response) = http_request(addr, "POST", &format!("/store/{store}/items"), &json, Some(ITEM))?;
    if status != 201 {
        bail!("POST /store/{store}/items answered {status}: {response}");
    }
    let location = response
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .context("a create answered no Location")?
        .trim()
        .to_owned();
    let (status, response) = http_request(addr, "GET", &location, &[], None)?;
    if status != 200 || !response.contains("\"bench item\"") {
        bail!("GET {location} answered {status}: {response}");
    }
    Ok(location)
}

/// How many items store `store` of the gateway at `addr` holds, listed 1,000 a page.
fn count_items(addr: SocketAddr, store: &str) -> anyhow::Result<u64> {
    let mut items = 0;
    let mut path = format!("/store/{store}/items?limit=1000");
    for _ in 0..100_000 {
        let (status, response) = http_request(addr, "GET", &path, &[], None)?;
        if status != 200 {
            bail!("GET {path} answered {status}");
        }
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let page: serde_json::Value = serde_json::from_str(body).context("a list page is not JSON")?;
        items += page["items"].as_array().map_or(0, |a| a.len() as u64);
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/store/{store}/items?limit=1000&cursor={cursor}"),
            None => return Ok(items),
        }
    }
    bail!("the list of {store} did not end")
}

/// The type of the filesystem `dir` is on (`ext4`, `overlayfs`, `tmpfs`…), as `stat -f` reports it.
fn filesystem(dir: &Path) -> String {
    Command::new("stat")
        .args(["-f", "-c", "%T"])
        .arg(dir)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "an unknown filesystem".to_owned())
}
