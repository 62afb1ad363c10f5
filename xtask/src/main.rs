//! The project's tasks, as `cargo xtask <task>` (the alias is in `.cargo/config.toml`).
//!
//! Only xtask touches the disk for the generator: `gateway-codegen` returns files, this writes them.

mod bench;
mod cert;
mod corpus;
mod demo;
mod generate;
mod package;
mod process;
mod test;
mod token;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask", about = "Tasks of the OpenAPI gateway compiler")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Generate a gateway crate from each spec in specs/ (or the given ones) into gateways/<name>/.
    Generate(generate::Args),
    /// Generate and build the example gateway, start its upstream and the gateway, and print requests to try.
    Demo(demo::Args),
    /// Run every test: generated code up to date, unit, end-to-end and corpus tests.
    Test(test::Args),
    /// Generate a gateway for every spec of the shared real-world corpus and build them; print the tally.
    Corpus(corpus::Args),
    /// Benchmark the generated gateway against nginx, haproxy and a direct connection, and time the generator.
    Bench(bench::Args),
    /// Mint a bearer token for the demo, signed with the demo key (specs/keys/): `TOKEN=$(cargo xtask token)`.
    Token(token::Args),
    /// Make a development CA and a server certificate for HTTPS (`--tls-cert`/`--tls-key`) in target/dev-tls.
    Cert(cert::Args),
    /// Write a Dockerfile and Kubernetes manifests for a generated gateway into target/package/<name>/.
    Package(package::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Generate(args) => generate::run(&args),
        Task::Demo(args) => demo::run(&args),
        Task::Test(args) => test::run(&args),
        Task::Corpus(args) => corpus::run(&args),
        Task::Bench(args) => bench::run(&args),
        Task::Token(args) => token::run(&args),
        Task::Cert(args) => cert::run(&args),
        Task::Package(args) => package::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The directory cargo builds into: `CARGO_TARGET_DIR` when it is set (relative to the current directory), else
/// the workspace's `target/`. Binaries are looked for under it, and crates the tasks generate are written and built
/// there, so nothing depends on where it lies or whether it is reached through a symlink.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => std::env::current_dir().map_or_else(|_| PathBuf::from(&dir), |cwd| cwd.join(&dir)),
        None => workspace_root().join("target"),
    }
}

/// The workspace crate in directory `name` as an absolute path with symlinks resolved: what a crate generated
/// outside the workspace's tree (under [`target_dir`]) names as a `path` dependency.
pub fn workspace_crate(name: &str) -> String {
    let dir = workspace_root().join(name);
    std::fs::canonicalize(&dir).unwrap_or(dir).display().to_string()
}

/// `path` relative to the workspace root where possible, for messages and generated headers.
pub fn display_path(path: &Path) -> String {
    let root = workspace_root();
    let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let root = std::fs::canonicalize(&root).unwrap_or(root);
    absolute
        .strip_prefix(&root)
        .map_or_else(|_| path.display().to_string(), |p| p.display().to_string())
}
