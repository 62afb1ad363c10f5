//! Integration tests of the runtime over real sockets: in-process upstreams and gateways on 127.0.0.1
//! ephemeral ports, a real HTTP client. Every wait is bounded (see `support::bounded`).

mod access_log;
mod cors;
mod lifecycle;
mod live_page;
mod proxying;
mod published;
mod routing;
mod several_apis;
mod stages;
mod store;
mod support;
mod upstream_verified;
