//! `codegen`: how long the generator and the compiler take on a large real-world API, and how much code it makes.
//!
//! The spec is the largest of the shared corpus that generates (larger ones that are refused are listed). The
//! generator is timed in-process (`gateway_codegen::generate`, no file I/O), `--repeat` times. The crate is written
//! to `target/bench-codegen/<name>/` as a standalone crate with the workspace's `Cargo.lock`, built in release
//! with the workspace's release profile and target directory, so the runtime and dependencies are shared: a first
//! build compiles whatever is missing, then the crate's sources are touched and the timed build compiles the
//! generated crate alone.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use gateway_codegen::{GenerateError, Generated, Options, SpecInput};
use serde::Serialize;

use crate::process::{cargo, output_within};
use crate::workspace_root;

use super::report::{Section, Table};
use super::wrk::median;
use super::{Bench, Scenario};

/// The corpus, beside the checkout.
const CORPUS: &str = "../shared/specs-corpus";
/// Where the crate is written, under the workspace.
const OUT: &str = "target/bench-codegen";
/// The runtime, from `target/bench-codegen/<name>/`.
const RUNTIME_FROM_CRATE: &str = "../../../gateway-runtime";
/// The corpus specs' servers are real services or relative URLs; a closed local port keeps the build honest.
const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:9";
/// A bound on one release build.
const BUILD_LIMIT: Duration = Duration::from_secs(45 * 60);

#[derive(Serialize)]
struct Results {
    spec: String,
    spec_bytes: u64,
    /// Larger specs the generator refused.
    refused_larger: Vec<String>,
    operations: usize,
    generate_ms: Vec<f64>,
    generate_median_ms: f64,
    /// Lines of generated Rust.
    lines: usize,
    lines_per_operation: f64,
    /// The first build: the crate and whatever of its dependencies was not built yet.
    first_build_s: f64,
    /// The generated crate alone.
    build_s: f64,
    binary_bytes: Option<u64>,
    /// The release profile the builds used (the workspace's).
    profile: BTreeMap<String, String>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let corpus = workspace_root().join(CORPUS);
    let (spec, text, generated, first_ms, refused) = largest_that_generates(&corpus)?;
    let mut generate_ms = vec![first_ms];
    for _ in 1..bench.repeat {
        generate_ms.push(generate(&spec, &text)?.1);
    }
    let dir = workspace_root().join(OUT).join(&generated.name);
    let lines = write_crate(&dir, &generated)?;
    let profile = release_profile()?;
    println!(
        "  building {} (release), first to fill the cache, then the crate alone",
        generated.package
    );
    let first_build = build(&dir, &profile)?;
    touch_sources(&dir)?;
    let crate_build = build(&dir, &profile)?;
    let binary = workspace_root().join("target/release").join(&generated.package);

    let results = Results {
        spec: name_of(&spec),
        spec_bytes: text.len() as u64,
        refused_larger: refused,
        operations: generated.operations,
        generate_median_ms: median(generate_ms.clone()).unwrap_or(first_ms),
        generate_ms,
        lines,
        lines_per_operation: lines as f64 / generated.operations.max(1) as f64,
        first_build_s: first_build.as_secs_f64(),
        build_s: crate_build.as_secs_f64(),
        binary_bytes: fs::metadata(&binary).ok().map(|m| m.len()),
        profile,
    };
    Ok(Section::new(
        Scenario::Codegen,
        render(bench, &results),
        results,
        Vec::new(),
    ))
}

fn render(bench: &Bench, r: &Results) -> String {
    let mut table = Table::new(&[
        "spec",
        "operations",
        "generate",
        "build (crate)",
        "lines",
        "lines/op",
        "binary",
    ]);
    table.row(vec![
        format!("{} ({:.1} MB)", r.spec, r.spec_bytes as f64 / 1e6),
        r.operations.to_string(),
        format!("{:.0} ms", r.generate_median_ms),
        format!("{:.1} s", r.build_s),
        r.lines.to_string(),
        format!("{:.1}", r.lines_per_operation),
        r.binary_bytes
            .map_or_else(|| String::from("?"), |b| format!("{:.1} MB", b as f64 / 1e6)),
    ]);
    let profile: Vec<String> = r.profile.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let mut text = format!(
        "codegen: the largest corpus spec that generates; generate = in-process, median of {}; \
         build = cargo build --release of the generated crate alone\n\n{}",
        bench.repeat,
        table.render()
    );
    text.push_str(&format!(
        "first build (with whatever dependencies were missing): {:.1} s; release profile: {}\n",
        r.first_build_s,
        profile.join(", ")
    ));
    if !r.refused_larger.is_empty() {
        text.push_str(&format!("larger specs refused: {}\n", r.refused_larger.join("; ")));
    }
    text
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// Tries the corpus's specs from the largest down; returns the first that generates, the time it took, and the
/// larger ones that were refused.
fn largest_that_generates(corpus: &Path) -> anyhow::Result<(PathBuf, String, Generated, f64, Vec<String>)> {
    let mut refused = Vec::new();
    for spec in specs_by_size(corpus)? {
        let text = fs::read_to_string(&spec).with_context(|| format!("reading {}", spec.display()))?;
        match generate(&spec, &text) {
            Ok((generated, ms)) => return Ok((spec, text, generated, ms, refused)),
            Err(e) => {
                println!("  {}: refused ({e})", name_of(&spec));
                refused.push(format!("{} ({e})", name_of(&spec)));
            }
        }
    }
    bail!("no spec of {} generates", corpus.display())
}

/// The corpus's specs, largest first.
fn specs_by_size(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut specs = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            let is_spec = path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"));
            if path.is_dir() {
                dirs.push(path);
            } else if is_spec {
                specs.push((fs::metadata(&path)?.len(), path));
            }
        }
    }
    specs.sort_by(|a, b| b.cmp(a));
    Ok(specs.into_iter().map(|(_, p)| p).collect())
}

/// Generates `text` in memory; the milliseconds it took.
fn generate(spec: &Path, text: &str) -> Result<(Generated, f64), GenerateError> {
    let options = Options {
        runtime_path: RUNTIME_FROM_CRATE.to_owned(),
        standalone: true,
        default_upstream: Some(DEFAULT_UPSTREAM.to_owned()),
        spec_dir: None,
        ..Options::default()
    };
    let file = format!("specs-corpus/{}", name_of(spec));
    let started = Instant::now();
    let generated = gateway_codegen::generate(
        SpecInput {
            file: &file,
            text,
            dir: None,
            overlays: &[],
        },
        &options,
    )?;
    Ok((generated, started.elapsed().as_secs_f64() * 1000.0))
}

/// Writes the crate afresh with the workspace's lock file; returns the lines of Rust written.
fn write_crate(dir: &Path, generated: &Generated) -> anyhow::Result<usize> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let mut lines = 0;
    for (rel, contents) in &generated.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        if rel.ends_with(".rs") {
            lines += contents.lines().count();
        }
    }
    fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;
    Ok(lines)
}

/// The workspace's `[profile.release]`, as `(key, value)`: a standalone crate is its own workspace and would
/// otherwise build with cargo's defaults, neither sharing the artifacts nor measuring what ships.
pub(super) fn release_profile() -> anyhow::Result<BTreeMap<String, String>> {
    let manifest = workspace_root().join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let release = table
        .get("profile")
        .and_then(|p| p.get("release"))
        .and_then(toml::Value::as_table);
    let mut profile = BTreeMap::new();
    for (key, value) in release.into_iter().flatten() {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // Per-package overrides and the like have no single environment variable.
            _ => continue,
        };
        profile.insert(key.clone(), value);
    }
    Ok(profile)
}

/// `cargo build --release` of the crate in `dir`, with the workspace's target directory and release profile.
pub(super) fn build(dir: &Path, profile: &BTreeMap<String, String>) -> anyhow::Result<Duration> {
    let mut command: Command = cargo();
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", workspace_root().join("target"))
        .args(["build", "--release", "--quiet"]);
    for (key, value) in profile {
        command.env(
            format!("CARGO_PROFILE_RELEASE_{}", key.to_uppercase().replace('-', "_")),
            value,
        );
    }
    let started = Instant::now();
    let output = output_within(command, BUILD_LIMIT)?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        // The first error and what follows it; cargo's warnings before it are noise here.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        let first_error = lines.iter().position(|l| l.starts_with("error")).unwrap_or(0);
        let shown = lines[first_error..]
            .iter()
            .take(20)
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        bail!("building {} failed:\n{shown}", dir.display());
    }
    Ok(elapsed)
}

/// Marks the crate's sources as changed, so that the next build compiles the crate (and only it) again.
fn touch_sources(dir: &Path) -> anyhow::Result<()> {
    let now = SystemTime::now();
    for entry in fs::read_dir(dir.join("src")).with_context(|| format!("reading {}/src", dir.display()))? {
        let path = entry?.path();
        fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|f| f.set_modified(now))
            .with_context(|| format!("touching {}", path.display()))?;
    }
    Ok(())
}
