//! Test support: an instrumented upstream, an auth server, an OpenTelemetry collector, a gateway process, and an HTTP
//! client, all on 127.0.0.1; test JWTs; headless Chromium for pages; real redis-server and PostgreSQL servers.
//!
//! The upstream is also the example upstream of `cargo xtask demo` and the benchmark's origin (`test-upstream`).

pub mod auth;
pub mod browser;
pub mod client;
pub mod gateway;
pub mod otlp;
pub mod postgres;
pub mod redis;
pub mod tls;
pub mod tokens;
pub mod upstream;
