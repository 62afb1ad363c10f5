//! The example upstream: answers every request with a JSON description of it (see `gateway_tests::upstream`).
//! Used by `cargo xtask demo`.
//!
//! With `--fixed-json SIZE` it is the benchmarks' origin instead (`cargo xtask bench`): every request gets the same
//! JSON body of SIZE bytes, after `--delay` if given, served by `--threads` runtime threads.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use gateway_tests::auth::AuthServer;
use gateway_tests::upstream::{FixedJson, Upstream};

#[derive(Parser)]
#[command(about = "An upstream that describes the requests it receives")]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1:9001")]
    listen: SocketAddr,
    /// Benchmark mode: answer every request with the same JSON body of this many bytes.
    #[arg(long, value_name = "BYTES")]
    fixed_json: Option<usize>,
    /// Benchmark mode: wait this long before each response (e.g. `20ms`).
    #[arg(long, value_parser = parse_delay, requires = "fixed_json")]
    delay: Option<Duration>,
    /// Be the demo's identity provider and partner authorizer instead (`gateway_tests::auth`), serving the demo
    /// key set `specs/keys/jwks.json`.
    #[arg(long, conflicts_with = "fixed_json")]
    auth: bool,
    /// Benchmark mode: runtime threads (the description mode always uses one).
    #[arg(long, default_value = "1", requires = "fixed_json")]
    threads: NonZeroUsize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = if args.fixed_json.is_some() && args.threads.get() > 1 {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads.get())
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    };
    let result = runtime.and_then(|runtime| runtime.block_on(serve(&args)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", args.listen);
            ExitCode::FAILURE
        }
    }
}

/// Serves until Ctrl-C (SIGTERM ends the process by default).
async fn serve(args: &Args) -> std::io::Result<()> {
    match args.fixed_json {
        None if args.auth => {
            let auth = AuthServer::start_on(args.listen).await?;
            auth.set_jwks(gateway_tests::tokens::demo_jwks());
            println!("listening on {}", auth.url());
            let _ = tokio::signal::ctrl_c().await;
        }
        None => {
            let upstream = Upstream::start_on(args.listen).await?;
            println!("listening on {}", upstream.url());
            let _ = tokio::signal::ctrl_c().await;
        }
        Some(size) => {
            let listener = tokio::net::TcpListener::bind(args.listen).await?;
            println!("listening on http://{}", listener.local_addr()?);
            tokio::select! {
                () = FixedJson::new(size, args.delay).serve(listener) => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
    }
    Ok(())
}

/// `20ms`, `1s`, `500us`: the few units a benchmark delay needs (no dependency for it).
fn parse_delay(text: &str) -> Result<Duration, String> {
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: expected a whole number and a unit: 20ms, 1s, 500us"))?;
    match unit {
        "us" => Ok(Duration::from_micros(number)),
        "ms" => Ok(Duration::from_millis(number)),
        "s" => Ok(Duration::from_secs(number)),
        _ => Err(format!("`{text}`: the unit must be us, ms or s")),
    }
}
