//! `codegen`: how long the generator and the compiler take on the largest real-world APIs, and how much code the
//! generator makes, each figure beside its goal.
//!
//! Two specs of the shared corpus: the largest that generates — of the specs over 1 MB, the one with the most
//! operations, with its overlay (`specs/examples/<stem>.overlay.yaml`) when there is one; those refused are listed —
//! and Stripe's, the long-standing reference. For each:
//!
//! - the generator (`gateway_codegen::generate`, no file I/O) in an optimized program (`bench-codegen/timer/` under the
//!   target directory, built with the workspace's release profile), once per process (cold, as a build script or a
//!   one-off run generates) and several times in one (warm); `cargo xtask generate` of the spec (this xtask's own
//!   build, unoptimized unless it was run with `--release`; files written), one process each; and in-process in this
//!   xtask, warm. Each `--repeat` times, medians reported;
//! - the crate, written to `bench-codegen/<name>/` under the target directory as a standalone crate with the
//!   workspace's `Cargo.lock`, checked (`cargo check`, the workspace's dev profile) and built in release (the
//!   workspace's release profile), both with the workspace's target directory so that the runtime and every dependency
//!   are shared: a first run compiles whatever is missing, then the crate's sources are touched and the timed run
//!   compiles the generated crate alone;
//! - the binary's size and the lines of generated Rust: `api.rs` and all `.rs` files, per operation.

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
/// The reference spec, measured besides the largest.
const STRIPE: &str = "stripe-spec3-2023-05-30.yaml";
/// Where the crates are written, under the target directory.
const OUT: &str = "bench-codegen";
/// The corpus specs' servers are real services or relative URLs; a closed local port keeps the build honest.
const DEFAULT_UPSTREAM: &str = "http://127.0.0.1:9";
/// A bound on one build or check.
const BUILD_LIMIT: Duration = Duration::from_secs(45 * 60);
/// Specs this large are all tried for the one with the most operations.
const LARGE: u64 = 1_000_000;
/// The optimized program that times the generator, under [`OUT`].
const TIMER: &str = "timer";
/// Its package (and binary) name.
const TIMER_PACKAGE: &str = "gateway-codegen-timer";

/// The goals of the issue: generating in under a second, a generated crate that checks in under a minute and builds
/// in release in under two, and an `api.rs` of fewer than 15 lines per operation.
const GOAL_GENERATE_MS: f64 = 1000.0;
const GOAL_CHECK_S: f64 = 60.0;
const GOAL_BUILD_S: f64 = 120.0;
const GOAL_API_LINES_PER_OPERATION: f64 = 15.0;

#[derive(Serialize)]
struct Results {
    specs: Vec<SpecResults>,
    /// Larger specs the generator refused.
    refused_larger: Vec<String>,
    /// Whether this xtask (and so the in-process generator) is an optimized build.
    xtask_optimized: bool,
    /// The release profile the builds used (the workspace's).
    release_profile: BTreeMap<String, String>,
    /// The dev profile the checks used (the workspace's).
    dev_profile: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct SpecResults {
    spec: String,
    /// The overlay applied to it, if any.
    overlay: Option<String>,
    spec_bytes: u64,
    operations: usize,
    /// `cargo xtask generate` of the spec, one process each: this xtask's build, the files written.
    xtask_generate_ms: Vec<f64>,
    xtask_generate_median_ms: Option<f64>,
    /// In-process, as this xtask is built, after a first generation (warm).
    generate_ms: Vec<f64>,
    generate_median_ms: f64,
    /// In the optimized timer, one generation per process (cold: what a build script or a one-off run does).
    generate_optimized_ms: Vec<f64>,
    generate_optimized_median_ms: Option<f64>,
    /// In the optimized timer, generations after the first in one process (warm).
    generate_optimized_warm_ms: Vec<f64>,
    generate_optimized_warm_median_ms: Option<f64>,
    /// Lines of `src/api.rs` (of every API module's, in a gateway of several).
    api_lines: usize,
    api_lines_per_operation: f64,
    /// Lines of generated Rust, every `.rs` file.
    lines: usize,
    lines_per_operation: f64,
    /// `cargo check` with whatever was missing, then of the generated crate alone.
    first_check_s: f64,
    check_s: f64,
    /// The first release build: the crate and whatever of its dependencies was not built yet.
    first_build_s: f64,
    /// The release build of the generated crate alone.
    build_s: f64,
    binary_bytes: Option<u64>,
}

/// A spec to measure, read.
struct Input {
    path: PathBuf,
    text: String,
    /// `(display path, text)`.
    overlay: Option<(String, String)>,
}

pub fn run(bench: &Bench) -> anyhow::Result<Section> {
    let corpus = workspace_root().join(CORPUS);
    let (largest, refused) = largest_that_generates(&corpus)?;
    let mut inputs = vec![largest];
    let stripe = corpus.join(STRIPE);
    if stripe.is_file() && inputs[0].path != stripe {
        inputs.push(read_input(&stripe)?);
    }
    let release_profile = release_profile()?;
    let dev_profile = profile("dev")?;
    println!("  building the optimized generator timer (release)");
    let timer = build_timer(&release_profile)?;
    let mut specs = Vec::new();
    for input in &inputs {
        specs.push(measure(bench, input, timer.as_deref(), &release_profile, &dev_profile)?);
    }
    let results = Results {
        specs,
        refused_larger: refused,
        xtask_optimized: !cfg!(debug_assertions),
        release_profile,
        dev_profile,
    };
    let mut problems = Vec::new();
    if timer.is_none() {
        problems.push(String::from("codegen: the optimized generator timer did not build"));
    }
    Ok(Section::new(
        Scenario::Codegen,
        render(bench, &results),
        results,
        problems,
    ))
}

fn measure(
    bench: &Bench,
    input: &Input,
    timer: Option<&Path>,
    release_profile: &BTreeMap<String, String>,
    dev_profile: &BTreeMap<String, String>,
) -> anyhow::Result<SpecResults> {
    let name = name_of(&input.path);
    println!("  {name}: generating in-process, {} time(s)", bench.repeat);
    let mut generate_ms = Vec::new();
    let mut generated = None;
    for _ in 0..bench.repeat {
        let (g, ms) = generate(input)?;
        generate_ms.push(ms);
        generated = Some(g);
    }
    let generated = generated.context("no generation ran")?;
    let (mut generate_optimized_ms, mut generate_optimized_warm_ms) = (Vec::new(), Vec::new());
    if let Some(timer) = timer {
        println!("  {name}: generating in the optimized timer");
        for _ in 0..bench.repeat {
            generate_optimized_ms.extend(time_optimized(timer, input, 1)?);
        }
        // The first generation of the process is the cold one, already measured.
        generate_optimized_warm_ms = time_optimized(timer, input, bench.repeat + 1)?
            .into_iter()
            .skip(1)
            .collect();
    }
    println!("  {name}: cargo xtask generate, {} time(s)", bench.repeat);
    let mut xtask_generate_ms = Vec::new();
    for _ in 0..bench.repeat {
        xtask_generate_ms.push(xtask_generate(input)?);
    }
    let dir = crate::target_dir().join(OUT).join(&generated.name);
    let (api_lines, lines) = write_crate(&dir, &generated)?;
    println!("  {name}: cargo check, first to fill the cache, then the crate alone");
    let first_check = cargo_run(&dir, "check", "dev", dev_profile)?;
    touch_sources(&dir)?;
    let check = cargo_run(&dir, "check", "dev", dev_profile)?;
    println!(
        "  {name}: building {} (release), first to fill the cache, then the crate alone",
        generated.package
    );
    let first_build = build(&dir, release_profile)?;
    touch_sources(&dir)?;
    let crate_build = build(&dir, release_profile)?;
    let binary = crate::target_dir().join("release").join(&generated.package);
    let operations = generated.operations.max(1) as f64;
    Ok(SpecResults {
        spec: name,
        overlay: input.overlay.as_ref().map(|(file, _)| file.clone()),
        spec_bytes: input.text.len() as u64,
        operations: generated.operations,
        xtask_generate_median_ms: median(xtask_generate_ms.clone()),
        xtask_generate_ms,
        generate_median_ms: median(generate_ms.clone()).unwrap_or_default(),
        generate_ms,
        generate_optimized_median_ms: median(generate_optimized_ms.clone()),
        generate_optimized_ms,
        generate_optimized_warm_median_ms: median(generate_optimized_warm_ms.clone()),
        generate_optimized_warm_ms,
        api_lines,
        api_lines_per_operation: api_lines as f64 / operations,
        lines,
        lines_per_operation: lines as f64 / operations,
        first_check_s: first_check.as_secs_f64(),
        check_s: check.as_secs_f64(),
        first_build_s: first_build.as_secs_f64(),
        build_s: crate_build.as_secs_f64(),
        binary_bytes: fs::metadata(&binary).ok().map(|m| m.len()),
    })
}

/// `measured (goal: < goal, met)`.
fn against(measured: String, value: f64, goal: f64, goal_text: &str) -> String {
    let verdict = if value < goal { "met" } else { "NOT MET" };
    format!("{measured} (goal < {goal_text}: {verdict})")
}

fn render(bench: &Bench, r: &Results) -> String {
    let mut text = format!(
        "codegen: the corpus spec with the most operations that generates, and Stripe's; generate = gateway_codegen::generate, \
         median of {}; check = cargo check, build = cargo build --release, each of the generated crate alone with \
         its dependencies built\n",
        bench.repeat
    );
    for s in &r.specs {
        let spec = match &s.overlay {
            Some(overlay) => format!("{} + {overlay}", s.spec),
            None => s.spec.clone(),
        };
        text.push_str(&format!(
            "\n{spec} ({:.1} MB, {} operations)\n",
            s.spec_bytes as f64 / 1e6,
            s.operations
        ));
        let mut table = Table::new(&["figure", "measured"]);
        let ms = |v: Option<f64>| v.map_or_else(|| String::from("?"), |ms| format!("{ms:.0} ms"));
        let optimized = s.generate_optimized_median_ms.map_or_else(
            || String::from("? (the timer did not build)"),
            |ms| against(format!("{ms:.0} ms"), ms, GOAL_GENERATE_MS, "1 s"),
        );
        table.row(vec![String::from("generate, optimized, one run"), optimized]);
        table.row(vec![
            String::from("generate, optimized, warm"),
            ms(s.generate_optimized_warm_median_ms),
        ]);
        let build = if r.xtask_optimized { "optimized" } else { "unoptimized" };
        table.row(vec![
            format!("cargo xtask generate ({build})"),
            ms(s.xtask_generate_median_ms),
        ]);
        table.row(vec![
            format!("generate in this xtask ({build}), warm"),
            format!("{:.0} ms", s.generate_median_ms),
        ]);
        table.row(vec![
            String::from("cargo check (crate alone)"),
            against(format!("{:.1} s", s.check_s), s.check_s, GOAL_CHECK_S, "60 s"),
        ]);
        table.row(vec![
            String::from("release build (crate alone)"),
            against(format!("{:.1} s", s.build_s), s.build_s, GOAL_BUILD_S, "120 s"),
        ]);
        table.row(vec![
            String::from("binary"),
            s.binary_bytes
                .map_or_else(|| String::from("?"), |b| format!("{:.1} MB", b as f64 / 1e6)),
        ]);
        table.row(vec![
            String::from("api.rs lines / operation"),
            against(
                format!("{:.1} ({} lines)", s.api_lines_per_operation, s.api_lines),
                s.api_lines_per_operation,
                GOAL_API_LINES_PER_OPERATION,
                "15",
            ),
        ]);
        table.row(vec![
            String::from("all .rs lines / operation"),
            format!("{:.1} ({} lines)", s.lines_per_operation, s.lines),
        ]);
        text.push_str(&table.render());
        text.push_str(&format!(
            "first check {:.1} s, first release build {:.1} s (with whatever dependencies were missing)\n",
            s.first_check_s, s.first_build_s
        ));
    }
    let profile =
        |p: &BTreeMap<String, String>| p.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ");
    text.push_str(&format!(
        "\nrelease profile: {}; dev profile: {}\n",
        profile(&r.release_profile),
        profile(&r.dev_profile)
    ));
    if !r.refused_larger.is_empty() {
        text.push_str(&format!("refused: {}\n", r.refused_larger.join("; ")));
    }
    text
}

fn name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

/// The spec at `path`, with its example overlay if it has one.
fn read_input(path: &Path) -> anyhow::Result<Input> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let overlay = match path.file_stem().and_then(|s| s.to_str()) {
        Some(stem) => {
            let file = format!("specs/examples/{stem}.overlay.yaml");
            let full = workspace_root().join(&file);
            if full.is_file() {
                let text = fs::read_to_string(&full).with_context(|| format!("reading {}", full.display()))?;
                Some((file, text))
            } else {
                None
            }
        }
        None => None,
    };
    Ok(Input {
        path: path.to_owned(),
        text,
        overlay,
    })
}

/// Of the corpus's specs of at least [`LARGE`] bytes (or the largest one, if none is), the one that generates the
/// most operations — the file sizes of the large specs say little about their operations (Stripe's 4.0 MB are 452,
/// Cloudflare's 3.9 MB 1,450) — and the larger ones that were refused.
fn largest_that_generates(corpus: &Path) -> anyhow::Result<(Input, Vec<String>)> {
    let mut refused = Vec::new();
    let mut best: Option<(usize, Input)> = None;
    for (i, spec) in specs_by_size(corpus)?.into_iter().enumerate() {
        if i > 0 && fs::metadata(&spec)?.len() < LARGE && best.is_some() {
            break;
        }
        let input = read_input(&spec)?;
        match generate(&input) {
            Ok((generated, _)) => {
                if best.as_ref().is_none_or(|(most, _)| generated.operations > *most) {
                    best = Some((generated.operations, input));
                }
            }
            Err(e) => {
                println!("  {}: refused ({e})", name_of(&spec));
                refused.push(format!("{} ({e})", name_of(&spec)));
            }
        }
    }
    best.map(|(_, input)| (input, refused))
        .with_context(|| format!("no spec of {} generates", corpus.display()))
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

/// The options every generation here uses (the timer's are the same; see [`TIMER_MAIN`]).
fn options() -> Options {
    Options {
        runtime_path: crate::workspace_crate("gateway-runtime"),
        standalone: true,
        default_upstream: Some(DEFAULT_UPSTREAM.to_owned()),
        spec_dir: None,
        ..Options::default()
    }
}

/// Generates `input` in memory; the milliseconds it took.
fn generate(input: &Input) -> Result<(Generated, f64), GenerateError> {
    let options = options();
    let file = format!("specs-corpus/{}", name_of(&input.path));
    let overlays: Vec<(&str, &str)> = input.overlay.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    let started = Instant::now();
    let generated = gateway_codegen::generate(
        SpecInput {
            file: &file,
            text: &input.text,
            dir: None,
            overlays: &overlays,
        },
        &options,
    )?;
    Ok((generated, started.elapsed().as_secs_f64() * 1000.0))
}

/// The timer's program: generates the spec `repeat` times, printing the milliseconds of each on a line.
const TIMER_MAIN: &str = r#"//! Times `gateway_codegen::generate` in an optimized build: `timer REPEAT SPEC FILE [OVERLAY OVERLAY_FILE]`.

use std::process::ExitCode;
use std::time::Instant;

use gateway_codegen::{Options, SpecInput};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(repeat), Some(spec), Some(file)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: timer REPEAT SPEC FILE [OVERLAY OVERLAY_FILE]");
        return ExitCode::FAILURE;
    };
    let repeat: usize = repeat.parse().unwrap_or(1);
    let read = |path: &str| std::fs::read_to_string(path).map_err(|e| eprintln!("reading {path}: {e}"));
    let Ok(text) = read(spec) else { return ExitCode::FAILURE };
    let overlay = match (args.get(3), args.get(4)) {
        (Some(path), Some(name)) => match read(path) {
            Ok(text) => Some((name.clone(), text)),
            Err(()) => return ExitCode::FAILURE,
        },
        _ => None,
    };
    let overlays: Vec<(&str, &str)> = overlay.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
    let options = Options {
        runtime_path: String::from("../../../gateway-runtime"),
        standalone: true,
        default_upstream: Some(String::from("http://127.0.0.1:9")),
        spec_dir: None,
        ..Options::default()
    };
    for _ in 0..repeat {
        let started = Instant::now();
        let input = SpecInput { file, text: &text, dir: None, overlays: &overlays };
        if let Err(e) = gateway_codegen::generate(input, &options) {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
        println!("{}", started.elapsed().as_secs_f64() * 1000.0);
    }
    ExitCode::SUCCESS
}
"#;

/// Writes and builds the timer (release, the workspace's profile and target directory); its path, or `None` if it
/// did not build (reported, and the optimized figures left out).
fn build_timer(profile: &BTreeMap<String, String>) -> anyhow::Result<Option<PathBuf>> {
    let dir = crate::target_dir().join(OUT).join(TIMER);
    fs::create_dir_all(dir.join("src"))?;
    let manifest = format!(
        "# Written by `cargo xtask bench codegen`: times the generator in an optimized build.\n\
         [package]\nname = \"{TIMER_PACKAGE}\"\nversion = \"0.0.0\"\nedition = \"2024\"\npublish = false\n\n\
         [dependencies]\ngateway-codegen = {{ path = {codegen:?} }}\n\n[workspace]\n",
        codegen = crate::workspace_crate("gateway-codegen")
    );
    fs::write(dir.join("Cargo.toml"), manifest)?;
    fs::write(dir.join("src/main.rs"), TIMER_MAIN)?;
    fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;
    match build(&dir, profile) {
        Ok(_) => Ok(Some(crate::target_dir().join("release").join(TIMER_PACKAGE))),
        Err(e) => {
            println!("  the timer did not build: {e:#}");
            Ok(None)
        }
    }
}

/// The timer's milliseconds per generation of `input`, `repeat` times.
fn time_optimized(timer: &Path, input: &Input, repeat: u32) -> anyhow::Result<Vec<f64>> {
    let mut command = Command::new(timer);
    command
        .arg(repeat.to_string())
        .arg(&input.path)
        .arg(format!("specs-corpus/{}", name_of(&input.path)));
    if let Some((file, _)) = &input.overlay {
        command.arg(workspace_root().join(file)).arg(file);
    }
    let output = output_within(command, BUILD_LIMIT)?;
    if !output.status.success() {
        bail!("the timer failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.trim().parse::<f64>().with_context(|| format!("the timer said {l:?}")))
        .collect()
}

/// `cargo xtask generate` of `input` (its overlay too) into `bench-codegen/xtask-generate/` under the target
/// directory, as a process of this xtask's own binary; the milliseconds it took, start to exit.
fn xtask_generate(input: &Input) -> anyhow::Result<f64> {
    let out = crate::target_dir().join(OUT).join("xtask-generate");
    let mut command = Command::new(std::env::current_exe().context("this xtask's path")?);
    command
        .current_dir(workspace_root())
        .args(["generate", "--quiet", "--default-upstream", DEFAULT_UPSTREAM, "--spec"])
        .arg(&input.path)
        .arg("--out")
        .arg(&out);
    if let Some((file, _)) = &input.overlay {
        command.arg("--overlay").arg(workspace_root().join(file));
    }
    let started = Instant::now();
    let output = output_within(command, BUILD_LIMIT)?;
    let elapsed = started.elapsed();
    if !output.status.success() {
        bail!(
            "cargo xtask generate of {} failed: {}",
            input.path.display(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(elapsed.as_secs_f64() * 1000.0)
}

/// Writes the crate afresh with the workspace's lock file; returns the lines of its `api.rs` files and of all
/// its Rust.
fn write_crate(dir: &Path, generated: &Generated) -> anyhow::Result<(usize, usize)> {
    if dir.exists() {
        fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    let (mut api, mut lines) = (0, 0);
    for (rel, contents) in &generated.files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        if rel.ends_with(".rs") {
            let n = contents.lines().count();
            lines += n;
            if rel.ends_with("/api.rs") {
                api += n;
            }
        }
    }
    fs::copy(workspace_root().join("Cargo.lock"), dir.join("Cargo.lock")).context("copying Cargo.lock")?;
    Ok((api, lines))
}

/// The workspace's `[profile.release]`, as `(key, value)`: a standalone crate is its own workspace and would
/// otherwise build with cargo's defaults, neither sharing the artifacts nor measuring what ships.
pub(super) fn release_profile() -> anyhow::Result<BTreeMap<String, String>> {
    profile("release")
}

/// The workspace's `[profile.<name>]`, as `(key, value)` (per-package overrides left out: they have no single
/// environment variable).
fn profile(name: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let manifest = workspace_root().join("Cargo.toml");
    let text = fs::read_to_string(&manifest).with_context(|| format!("reading {}", manifest.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {}", manifest.display()))?;
    let section = table
        .get("profile")
        .and_then(|p| p.get(name))
        .and_then(toml::Value::as_table);
    let mut profile = BTreeMap::new();
    for (key, value) in section.into_iter().flatten() {
        let value = match value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => continue,
        };
        profile.insert(key.clone(), value);
    }
    Ok(profile)
}

/// `cargo build --release` of the crate in `dir`, with the workspace's target directory and release profile.
pub(super) fn build(dir: &Path, profile: &BTreeMap<String, String>) -> anyhow::Result<Duration> {
    cargo_run(dir, "build", "release", profile)
}

/// `cargo <task>` (`build`, `check`) of the crate in `dir` in profile `name` (`dev`, `release`), with the
/// workspace's target directory and that profile's settings; how long it took.
fn cargo_run(dir: &Path, task: &str, name: &str, profile: &BTreeMap<String, String>) -> anyhow::Result<Duration> {
    let mut command: Command = cargo();
    command
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", crate::target_dir())
        .args([task, "--quiet"]);
    if name == "release" {
        command.arg("--release");
    }
    for (key, value) in profile {
        command.env(
            format!(
                "CARGO_PROFILE_{}_{}",
                name.to_uppercase(),
                key.to_uppercase().replace('-', "_")
            ),
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
        bail!("cargo {task} of {} failed:\n{shown}", dir.display());
    }
    Ok(elapsed)
}

/// Marks the crate's sources as changed, so that the next build compiles the crate (and only it) again.
fn touch_sources(dir: &Path) -> anyhow::Result<()> {
    let now = SystemTime::now();
    let mut dirs = vec![dir.join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_modified(now))
                .with_context(|| format!("touching {}", path.display()))?;
        }
    }
    Ok(())
}
