//! `cargo xtask corpus`: the generator against real-world specs nobody here wrote.
//!
//! Every spec in the shared corpus must either generate a crate that builds, or be refused with at least one
//! located error; a panic, an internal error, or generated code that does not compile, or compiles with a warning,
//! fails the task. The crates are generated into `target/corpus/`, a workspace of its own that shares the project's
//! `Cargo.lock` and target directory, so the dependencies are built once.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use gateway_codegen::{GenerateError, Options, Severity, SpecInput};

use crate::process::cargo;
use crate::workspace_root;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The corpus directory. Default: ../shared/specs-corpus beside the checkout.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Only generate; do not build the crates.
    #[arg(long)]
    pub no_build: bool,
    /// Build in release mode (as shipped), to time it.
    #[arg(long)]
    pub release: bool,
}

/// What happened to one spec.
enum Outcome {
    Generated { operations: usize, lines: usize },
    Refused { errors: usize, first: String },
}

/// The overlay shipped for a corpus spec, `specs/examples/<stem>.overlay.yaml`, as `(display path, text)`.
fn example_overlay(spec: &Path) -> anyhow::Result<Option<(String, String)>> {
    let Some(stem) = spec.file_stem().and_then(|s| s.to_str()) else {
        return Ok(None);
    };
    let path = workspace_root().join(format!("specs/examples/{stem}.overlay.yaml"));
    if !path.is_file() {
        return Ok(None);
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    Ok(Some((format!("specs/examples/{stem}.overlay.yaml"), text)))
}

/// `../shared/specs-corpus` beside the checkout.
pub fn default_dir() -> PathBuf {
    workspace_root().join("../shared/specs-corpus")
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    let specs = find_specs(&dir).with_context(|| format!("reading the corpus at {}", dir.display()))?;
    if specs.is_empty() {
        bail!("no specs found in {}", dir.display());
    }
    let out = workspace_root().join("target/corpus");
    if out.exists() {
        fs::remove_dir_all(&out)?;
    }
    fs::create_dir_all(&out)?;

    let mut rows = Vec::new();
    let mut members = Vec::new();
    let mut broken = Vec::new();
    for spec in &specs {
        let name = spec
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = fs::read_to_string(spec)?;
        // An overlay shipped as an example for this spec (`specs/examples/<stem>.overlay.yaml`) is applied to it,
        // as a user would: the spec itself stays as its authors wrote it.
        let overlay = example_overlay(spec)?;
        let overlays: Vec<(&str, &str)> = overlay.iter().map(|(f, t)| (f.as_str(), t.as_str())).collect();
        let started = Instant::now();
        let options = Options {
            runtime_path: String::from("../../../gateway-runtime"),
            standalone: false,
            // The corpus specs' servers are real services or relative URLs; a closed local port keeps builds honest
            // without sending anything anywhere.
            default_upstream: Some(String::from("http://127.0.0.1:9")),
            spec_dir: None,
            ..Options::default()
        };
        let file = format!("specs-corpus/{}", spec.strip_prefix(&dir).unwrap_or(spec).display());
        let result = std::panic::catch_unwind(|| {
            gateway_codegen::generate(
                SpecInput {
                    file: &file,
                    text: &text,
                    dir: None,
                    overlays: &overlays,
                },
                &options,
            )
        });
        let elapsed = started.elapsed();
        let outcome = match result {
            Err(_) => {
                broken.push(format!("{name}: the generator panicked"));
                continue;
            }
            // A spec generated alone never fails as a gateway of several; it would be a generator bug.
            Ok(Err(e @ (GenerateError::Emit(_) | GenerateError::Gateway { .. } | GenerateError::NoSpecs))) => {
                broken.push(format!("{name}: {e}"));
                continue;
            }
            Ok(Err(GenerateError::Spec { diagnostics, .. })) => {
                let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
                let Some(first) = errors.first() else {
                    broken.push(format!("{name}: refused without an error message"));
                    continue;
                };
                Outcome::Refused {
                    errors: errors.len(),
                    first: first.to_string().lines().take(2).collect::<Vec<_>>().join(" "),
                }
            }
            Ok(Ok(generated)) => {
                // Distinct crate names even where two corpus specs share `x-gateway.name` or a stem.
                let dir_name = format!("c{:02}-{}", members.len(), generated.name);
                let crate_dir = out.join(&dir_name);
                let mut lines = 0;
                for (rel, contents) in &generated.files {
                    let path = crate_dir.join(rel);
                    if let Some(parent) = path.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    let contents = if rel == "Cargo.toml" {
                        contents.replace(
                            &format!("name = \"{}\"", generated.package),
                            &format!("name = \"{dir_name}-gateway\""),
                        )
                    } else {
                        lines += contents.lines().count();
                        contents.clone()
                    };
                    fs::write(&path, contents)?;
                }
                members.push(dir_name);
                Outcome::Generated {
                    operations: generated.operations,
                    lines,
                }
            }
        };
        let name = match &overlay {
            Some(_) => format!("{name} + overlay"),
            None => name,
        };
        rows.push((name, elapsed, outcome));
    }

    println!("{:<58} {:>9}  result", "spec", "generate");
    for (name, elapsed, outcome) in &rows {
        match outcome {
            Outcome::Generated { operations, lines } => println!(
                "{name:<58} {:>7.0}ms  generated: {operations} operations, {lines} lines ({:.1}/op)",
                ms(*elapsed),
                *lines as f64 / (*operations).max(1) as f64
            ),
            Outcome::Refused { errors, first } => {
                println!(
                    "{name:<58} {:>7.0}ms  refused: {errors} error(s); first: {first}",
                    ms(*elapsed)
                );
            }
        }
    }
    let generated = rows.iter().filter(|r| matches!(r.2, Outcome::Generated { .. })).count();
    println!(
        "tally: {} specs, {generated} generated, {} refused with located errors, {} broken",
        specs.len(),
        rows.len() - generated,
        broken.len()
    );
    for b in &broken {
        eprintln!("BROKEN {b}");
    }
    if !broken.is_empty() {
        bail!("{} corpus spec(s) broke the generator", broken.len());
    }
    if args.no_build || members.is_empty() {
        return Ok(());
    }

    // One workspace for all the generated crates, locked like the project's.
    let manifest = toml::to_string(&toml::toml! { [workspace] resolver = "3" })?;
    let members_toml: Vec<String> = members.iter().map(|m| format!("\"{m}\"")).collect();
    fs::write(
        out.join("Cargo.toml"),
        manifest.replace(
            "[workspace]\n",
            &format!("[workspace]\nmembers = [{}]\n", members_toml.join(", ")),
        ),
    )?;
    fs::copy(workspace_root().join("Cargo.lock"), out.join("Cargo.lock"))?;
    let started = Instant::now();
    let build = build_crates(&out, args.release)?;
    if !build.success {
        bail!("the crates generated from the corpus do not all build (see the errors above)");
    }
    if !build.warnings.is_empty() {
        eprintln!("\nwarnings in generated crates, by message:");
        let mut by_message: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (krate, message) in &build.warnings {
            by_message.entry(message).or_default().push(krate);
        }
        for (message, crates) in &by_message {
            eprintln!("  {message}: {} crate(s) ({})", crates.len(), crates.join(", "));
        }
        bail!(
            "the crates generated from the corpus build with {} warning(s); generated code must compile cleanly",
            build.warnings.len()
        );
    }
    println!(
        "built all {} generated corpus crates in {:.1}s ({}), without warnings",
        members.len(),
        started.elapsed().as_secs_f64(),
        if args.release { "release" } else { "debug" }
    );
    Ok(())
}

/// What building the generated crates said.
struct Build {
    success: bool,
    /// Each warning of a generated crate: the crate's directory name and rustc's one-line message.
    warnings: Vec<(String, String)>,
}

/// Builds the workspace at `out` with JSON messages, to tell the generated crates' warnings from their dependencies'
/// without setting `RUSTFLAGS` (which would rebuild every dependency). The target directory is the caller's
/// `CARGO_TARGET_DIR` when set, else the project's, so the dependencies already built are reused. Errors (of any
/// crate) and the generated crates' warnings are printed as rustc renders them, as they come.
fn build_crates(out: &Path, release: bool) -> anyhow::Result<Build> {
    let target_dir = crate::target_dir();
    let mut build = cargo();
    build
        .current_dir(out)
        .env("CARGO_TARGET_DIR", &target_dir)
        .args(["build", "--workspace", "--quiet", "--message-format=json"])
        .stdout(Stdio::piped());
    if release {
        build.arg("--release");
    }
    // cargo reports canonical manifest paths; the crates are recognised by theirs.
    let out = fs::canonicalize(out).unwrap_or_else(|_| out.to_path_buf());
    let mut child = build.spawn().context("running cargo build for the corpus")?;
    let stdout = child.stdout.take().context("reading cargo's output")?;
    let mut warnings = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        // Every line cargo prints on stdout with --message-format=json is one JSON object; anything else (a build
        // script's stray output) is not a diagnostic.
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if event["reason"] != "compiler-message" {
            continue;
        }
        let level = event["message"]["level"].as_str().unwrap_or_default();
        let rendered = event["message"]["rendered"].as_str().unwrap_or_default();
        let generated = event["manifest_path"]
            .as_str()
            .and_then(|m| Path::new(m).strip_prefix(&out).ok())
            .and_then(|rel| rel.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match (level, generated) {
            ("error", krate) => eprint!("{}{rendered}", krate.map(|k| format!("[{k}] ")).unwrap_or_default()),
            ("warning", Some(krate)) => {
                eprint!("[{krate}] {rendered}");
                let message = event["message"]["message"].as_str().unwrap_or_default().to_owned();
                warnings.push((krate, message));
            }
            // Warnings of the runtime or of other dependencies are theirs to fix, not the generator's.
            _ => {}
        }
    }
    let status = child.wait().context("waiting for cargo build")?;
    Ok(Build {
        success: status.success(),
        warnings,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn find_specs(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            out.extend(find_specs(&path)?);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}
