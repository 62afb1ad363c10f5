//! The example upstream: answers every request with a JSON description of it (see `gateway_tests::upstream`).
//! Used by `cargo xtask demo` and the benchmarks.

use std::net::SocketAddr;

use clap::Parser;

#[derive(Parser)]
#[command(about = "An upstream that describes the requests it receives")]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match gateway_tests::upstream::Upstream::start_on(args.listen).await {
        Ok(upstream) => {
            println!("listening on {}", upstream.url());
            let _ = tokio::signal::ctrl_c().await;
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            std::process::ExitCode::FAILURE
        }
    }
}
