//! `cache`: cache hits served by the gateway against nginx's `proxy_cache` hits, for the same URLs in the same run.
//!
//! The gateway's target is the petstore's `getPet` (`GET /pets/{petId}`, `ttl: 60s`, keyed by petId, `fields` and
//! `Accept-Language`, `invalidate: any`), proxied to the origin's `/v1/pets/N` on a miss; nginx caches the same
//! location to the same origin path (see `nginx_cache` in [`servers`](super::servers)). Two loads each: one URL
//! (`/pets/1`), and `/pets/1` … `/pets/50` in turn (wrk's `rotate.lua`). The gateway's plain proxied
//! `GET /inventory` runs in the same rounds, to set the hits against its own passthrough.
//!
//! Every figure must be a hit, and that is checked, not assumed:
//!
//! - first, each URL is fetched, then fetched again: the second answer must say `HIT` (`X-Cache` from the gateway,
//!   `X-Cache-Status` from nginx) and the origin's `/__calls` must not move;
//! - just before each run, each URL of the target is refreshed (`Cache-Control: max-age=0`, which both honour), so
//!   that no entry can reach its 60 s TTL during the run, and the origin must see exactly one call per URL;
//! - just after each run, the origin must have seen no call at all: a run that reached it fails.

use std::collections::BTreeMap;

use anyhow::bail;
use serde::Serialize;

use crate::process::http_get_with;

use super::memory::{Sample, mib};
use super::report::{CPU_COLUMN, Section, Table, load_cells, ms, ratio, review, with_notes};
use super::rounds::{Phase, Series, measure, throughput_ratio, warm_up};
use super::servers::{BODY_BYTES, CACHED_URLS, PASSTHROUGH_PATH, Proxy, Stack, Target};
use super::wrk::{self, Shape};
use super::{Bench, Scenario};

/// Measured in this order every round.
const TARGETS: [Target; 5] = [
    Target::GatewayHit,
    Target::NginxHit,
    Target::GatewayHits,
    Target::NginxHits,
    Target::Gateway,
];

/// The targets served from a cache.
const CACHED: [Target; 4] = [
    Target::GatewayHit,
    Target::NginxHit,
    Target::GatewayHits,
    Target::NginxHits,
];

/// The goal: the gateway serves hits at this many times nginx's rate, or more.
const GOAL: f64 = 1.5;

/// Throughput ratios, each the median of the ratios within a round.
#[derive(Serialize)]
struct Ratios {
    /// One URL: gateway hits / nginx hits.
    single_gateway_over_nginx: Option<f64>,
    /// 50 URLs: gateway hits / nginx hits.
    spread_gateway_over_nginx: Option<f64>,
    /// The gateway's hits of one URL over its own proxied `GET /inventory`.
    gateway_hit_over_passthrough: Option<f64>,
}

#[derive(Serialize)]
struct Results {
    shape: Shape,
    urls: u32,
    series: Vec<Series>,
    ratios: Ratios,
    /// Requests that reached the origin during each target's load runs (warm-up and measured), summed.
    origin_calls_during_load: BTreeMap<&'static str, i64>,
    memory: Vec<Sample>,
    notes: Vec<String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let scripts = wrk::write_scripts(bench)?;
    let mut stack = Stack::start(bench, "cache", None, &[Proxy::Gateway, Proxy::NginxCache])?;
    stack.smoke_check(&[Target::Gateway])?;
    for target in CACHED {
        check_hits(&mut stack, target)?;
    }
    let shape = Shape {
        connections: bench.connections,
        threads: 2,
        duration: bench.duration,
    };
    let mut origin = OriginWatch::new(&CACHED);
    let warm_up_failures = warm_up(bench, &mut stack, &scripts, &TARGETS, &shape, |phase, stack, target| {
        origin.hook(phase, stack, target)
    });
    let series = measure(bench, &mut stack, &scripts, &TARGETS, &shape, |phase, stack, target| {
        origin.hook(phase, stack, target)
    });
    let memory: Vec<Sample> = [Target::GatewayHit, Target::NginxHit]
        .into_iter()
        .map(|t| Sample {
            target: t,
            memory: stack.memory(t),
        })
        .collect();

    let ratios = Ratios {
        single_gateway_over_nginx: throughput_ratio(&series, Target::GatewayHit, Target::NginxHit),
        spread_gateway_over_nginx: throughput_ratio(&series, Target::GatewayHits, Target::NginxHits),
        gateway_hit_over_passthrough: throughput_ratio(&series, Target::GatewayHit, Target::Gateway),
    };
    let (mut notes, mut problems) = review(&series, |s| {
        s.target != Target::NginxHit && s.target != Target::NginxHits
    });
    notes.extend(warm_up_failures.iter().cloned());
    notes.extend(stack.log_findings());
    problems.extend(warm_up_failures);

    let text = render(bench, &shape, &series, &ratios, &origin.during_load, &memory, &notes);
    let results = Results {
        shape,
        urls: CACHED_URLS,
        series,
        ratios,
        origin_calls_during_load: origin.during_load.iter().map(|(t, n)| (t.name(), *n)).collect(),
        memory,
        notes,
    };
    Ok(Section::new(Scenario::Cache, text, results, problems))
}

/// Fetches every URL of `target` twice: each answer must be a 200 with the origin's body, the second must say it
/// is a hit, and the second pass must not reach the origin.
pub(super) fn check_hits(stack: &mut Stack, target: Target) -> anyhow::Result<()> {
    let addr = stack.server(target)?.addr;
    let paths = target.paths();
    for path in &paths {
        expect_body(target, path, http_get_with(addr, path, &[])?)?;
    }
    let before = stack.origin_calls()?;
    for path in &paths {
        let response = http_get_with(addr, path, &[])?;
        let head = response.1.split("\r\n\r\n").next().unwrap_or_default().to_lowercase();
        expect_body(target, path, response)?;
        if !head.contains(hit_header(target)) {
            bail!(
                "{} answered a second GET {path} without `{}`: {head:?}",
                target.name(),
                hit_header(target)
            );
        }
    }
    let reached = stack.origin_calls()? - before;
    if reached != 0 {
        bail!(
            "{} answered {} second requests as hits but the origin saw {reached} of them",
            target.name(),
            paths.len()
        );
    }
    Ok(())
}

/// The header line of a hit, lower-cased.
fn hit_header(target: Target) -> &'static str {
    match target {
        Target::NginxHit | Target::NginxHits => "x-cache-status: hit",
        _ => "x-cache: hit",
    }
}

/// Fails unless `response` is a 200 that ends with a body of the origin's size.
fn expect_body(target: Target, path: &str, (status, response): (u16, String)) -> anyhow::Result<()> {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if status != 200 || body.len() != BODY_BYTES {
        bail!(
            "{} answered GET {path} with {status} and {} bytes, not 200 and the origin's {BODY_BYTES}",
            target.name(),
            body.len()
        );
    }
    Ok(())
}

/// The origin's call count around each run: the cached targets' entries refreshed before, no call during.
pub(super) struct OriginWatch {
    /// The targets served from the cache.
    cached: &'static [Target],
    /// The count just before the run under way.
    before: i64,
    /// Calls during each target's runs.
    during_load: BTreeMap<Target, i64>,
}

impl OriginWatch {
    pub(super) fn new(cached: &'static [Target]) -> Self {
        Self {
            cached,
            before: 0,
            during_load: BTreeMap::new(),
        }
    }

    pub(super) fn hook(&mut self, phase: Phase, stack: &mut Stack, target: Target) -> anyhow::Result<()> {
        let cached = self.cached.contains(&target);
        match phase {
            Phase::Before => {
                if cached {
                    refresh(stack, target)?;
                }
                self.before = stack.origin_calls()?;
            }
            Phase::After => {
                let reached = stack.origin_calls()? - self.before;
                *self.during_load.entry(target).or_default() += reached;
                if cached && reached != 0 {
                    bail!("{reached} requests reached the origin during the run: not all were hits");
                }
            }
        }
        Ok(())
    }
}

/// Refreshes every entry of `target` (`Cache-Control: max-age=0`), so that none expires during the next run;
/// the origin must see one call per URL.
pub(super) fn refresh(stack: &mut Stack, target: Target) -> anyhow::Result<()> {
    let addr = stack.server(target)?.addr;
    let paths = target.paths();
    let before = stack.origin_calls()?;
    for path in &paths {
        expect_body(
            target,
            path,
            http_get_with(addr, path, &[("Cache-Control", "max-age=0")])?,
        )?;
    }
    let reached = stack.origin_calls()? - before;
    if reached != paths.len() as i64 {
        bail!(
            "refreshing {} entries of {} reached the origin {reached} times",
            paths.len(),
            target.name()
        );
    }
    Ok(())
}

fn render(
    bench: &Bench,
    shape: &Shape,
    series: &[Series],
    ratios: &Ratios,
    origin: &BTreeMap<Target, i64>,
    memory: &[Sample],
    notes: &[String],
) -> String {
    let mut table = Table::new(&[
        "target",
        "GET",
        "req/s",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "errors",
        CPU_COLUMN,
        "origin calls",
        "peak RSS",
    ]);
    for s in series {
        let urls = match s.target.rotation().len() {
            0 => s.url_path.to_owned(),
            n => format!("/pets/1…{n}"),
        };
        let peak = memory
            .iter()
            .find(|m| m.target == s.target)
            .map_or(String::new(), |m| m.memory.map_or("?".into(), |m| mib(m.peak_kib)));
        let mut cells = vec![s.target.name().to_owned(), urls];
        cells.extend(load_cells(s, ms));
        cells.push(origin.get(&s.target).map_or_else(String::new, ToString::to_string));
        cells.push(peak);
        table.row(cells);
    }
    let title = format!(
        "cache: hits of GET /pets/N (the gateway's getPet, ttl 60s; nginx proxy_cache, 60s), one URL and {CACHED_URLS} \
         URLs in turn, all warmed; the gateway's GET {PASSTHROUGH_PATH} (proxied) alongside; wrk {}; \
         median of {} interleaved rounds",
        shape.describe(),
        bench.repeat
    );
    let verdict = |r: Option<f64>| match r {
        Some(r) if r >= GOAL => "met",
        Some(_) => "not met",
        None => "—",
    };
    let mut lines = vec![
        format!(
            "hit throughput gateway/nginx (median of per-round ratios): one URL {} ({}), {CACHED_URLS} URLs {} ({}); \
             goal ≥ {GOAL:.1}×",
            ratio(ratios.single_gateway_over_nginx),
            verdict(ratios.single_gateway_over_nginx),
            ratio(ratios.spread_gateway_over_nginx),
            verdict(ratios.spread_gateway_over_nginx),
        ),
        format!(
            "gateway hits (one URL) vs its own proxied GET {PASSTHROUGH_PATH}: {}",
            ratio(ratios.gateway_hit_over_passthrough)
        ),
        String::from(
            "origin calls: requests that reached the origin during the target's load runs (warm-up and measured); \
             0 means every request was a hit (entries refreshed just before each run)",
        ),
        String::from(
            "peak RSS: VmHWM after the load, on the first row of each server (the gateway's covers its three rows); \
             nginx = master + workers",
        ),
    ];
    lines.extend(notes.iter().cloned());
    with_notes(&title, &table, &lines)
}
