//! `cargo xtask demo`: generate, build (release), start the example upstream and the gateway, show requests.

use std::net::SocketAddr;

use anyhow::Context;

use crate::process::{Server, cargo, http_get, run_step};
use crate::workspace_root;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Send the example requests, print the answers and stop (instead of serving until Ctrl-C).
    #[arg(long)]
    pub smoke: bool,
}

const EXAMPLES: &[(&str, &str)] = &[
    (
        "/pets/42?verbose=true",
        "proxied, path rewritten to /v1/pets/42; X-Cache: MISS",
    ),
    (
        "/pets/42?verbose=true",
        "the same again: X-Cache: HIT, served from the cache",
    ),
    (
        "/pets?limit=5&status=sold&tags=a&tags=b",
        "typed query parameters, passed through",
    ),
    ("/inventory", "no target: proxied to the spec's first server URL"),
    ("/health", "a mock response, no upstream involved"),
    ("/pets/abc", "400 problem+json: petId must be an integer"),
    ("/nope", "404 problem+json"),
];

pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::generate::run(&crate::generate::Args::default())?;
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "-p",
        "petstore-gateway",
        "-p",
        "gateway-tests",
        "--bin",
        "petstore-gateway",
        "--bin",
        "test-upstream",
    ]);
    run_step(build, "build the petstore gateway and the example upstream (release)")?;

    let bin = workspace_root().join("target/release");
    let upstream = Server::start(
        &bin.join("test-upstream"),
        &["--listen".into(), "127.0.0.1:0".into()],
        "test-upstream",
    )?;
    let url = format!("http://{}", upstream.addr);
    let gateway = Server::start(
        &bin.join("petstore-gateway"),
        &[
            "--listen".into(),
            args.listen.to_string(),
            "--upstream".into(),
            format!("pets={url}"),
            "--upstream".into(),
            format!("reports={url}/reporting"),
            "--upstream".into(),
            format!("default={url}/api"),
        ],
        "petstore-gateway",
    )
    .with_context(|| format!("is {} already in use? pass --listen 127.0.0.1:PORT", args.listen))?;

    println!(
        "\nThe example upstream (pid {}) listens on {url}; it answers with a description of each request.",
        upstream.pid()
    );
    println!(
        "The petstore gateway (pid {}) listens on http://{}. Try:\n",
        gateway.pid(),
        gateway.addr
    );
    for (path, what) in EXAMPLES {
        println!("  curl -i 'http://{}{path}'    # {what}", gateway.addr);
    }
    if args.smoke {
        println!();
        for (path, what) in EXAMPLES {
            let (status, response) = http_get(gateway.addr, path)?;
            let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
            let x_cache = head
                .lines()
                .find_map(|l| l.strip_prefix("x-cache: "))
                .map(|v| format!(" [X-Cache: {v}]"))
                .unwrap_or_default();
            println!(
                "GET {path} -> {status}{x_cache} ({what})\n  {}",
                body.trim().chars().take(160).collect::<String>()
            );
        }
        return Ok(());
    }
    println!("\nEnter or Ctrl-C stops both.");
    wait_for_interrupt();
    Ok(())
}

/// Blocks until the task is interrupted; the servers are stopped by their PIDs as they drop.
fn wait_for_interrupt() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    // Ctrl-C reaches the whole process group, servers included; waiting on stdin's end covers `cargo xtask demo <
    // /dev/null` too. Either way the servers are then stopped by PID.
    std::thread::spawn(move || {
        let mut sink = String::new();
        while std::io::stdin().read_line(&mut sink).is_ok_and(|n| n > 0) {
            sink.clear();
        }
        let _ = tx.send(());
    });
    let _ = rx.recv();
}
