//! End to end: the generated gateways as real processes, in front of real upstreams, over real sockets on
//! 127.0.0.1. Every test starts its own upstream and gateway, so tests run in parallel. One test binary (modules
//! below) keeps link time down.

mod access_log;
mod auth;
mod cache;
mod connections;
mod contract;
mod cors;
mod edge;
mod functions;
mod gateway_responses;
mod golden;
mod ip;
mod limits;
mod live_page;
mod observability;
mod openapi31;
mod proxy;
mod replicas;
mod routing;
mod several_apis;
mod stages;
mod store;
mod store_postgres;
mod support;
mod swagger2;
mod tls;
mod tracing;
mod upstreams;
