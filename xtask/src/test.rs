//! `cargo xtask test`: every test of the project, in the order that fails fastest.

use anyhow::Context;

use crate::process::{cargo, run_step};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Skip the real-world corpus (the slowest step).
    #[arg(long)]
    pub no_corpus: bool,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::generate::run(&crate::generate::Args {
        check: true,
        quiet: true,
        ..Default::default()
    })
    .context("generated gateways are stale")?;

    // The end-to-end tests run the generated gateway binaries, so build every binary first.
    let mut build = cargo();
    build.args(["build", "--workspace", "--bins", "--locked"]);
    run_step(
        build,
        "build the workspace's binaries (the generated gateways among them)",
    )?;

    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"]);
    run_step(test, "unit, diagnostics, golden and end-to-end tests")?;

    if !args.no_corpus {
        println!("\n==> the real-world corpus: generate and build");
        let dir = crate::corpus::default_dir();
        if dir.is_dir() || std::env::var_os("CI").is_some() {
            crate::corpus::run(&crate::corpus::Args {
                dir: None,
                no_build: false,
                release: false,
            })?;
        } else {
            // The corpus lives beside the checkout (shared/), not in it; CI always has it and fails without it.
            println!("skipped: {} is not there (CI runs this step)", dir.display());
        }
    }
    println!("\nall tests passed");
    Ok(())
}
