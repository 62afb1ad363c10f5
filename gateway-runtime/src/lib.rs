//! The runtime every generated gateway links.
//!
//! A generated crate contains only data ([`spec::ApiSpec`]: routes, targets, policies) and typed parameter parsers
//! ([`params::FromRequestParams`] impls); this crate does the work. It knows nothing of OpenAPI. Its `main` is
//! `gateway_runtime::cli::run(&api::API)`.
//!
//! # The request path
//!
//! [`pipeline`] holds the phases of a request, in order, in one place: a per-request context ([`RequestCtx`]),
//! the request filters of each operation assembled at start-up (host, route, auth, throttle, params, quota), the
//! cache and the target, and the response filters every response passes through (404, 405 and admin included).
//! Every response the gateway makes itself is a [`error::GatewayError`] of a named kind, rendered in one place
//! ([`responses`]): the spec's own rendering of the kind, or RFC 9457 problem+json.
//!
//! | folder / module | what |
//! |---|---|
//! | [`pipeline`] | the phase list, the request context, the response filters |
//! | [`policies`] | one module per policy: hosts, API keys and auth, credentials, throttles and quotas, cache, CORS |
//! | [`targets`] | one module per kind of target: proxy, mock, function, store ([`store`]: the `Store` handle and its SQLite backend) |
//! | [`serving`] | the server loop, the command line |
//! | [`observe`] | the process log, the access log, trace export (OTLP) |
//! | [`admin`] | the admin endpoints under `/_gateway/` |
//! | [`error`], [`responses`], [`template`] | gateway errors, their rendering, the placeholder grammar |
//! | [`spec`], [`params`] | what generated code hands the runtime |
//! | [`stage`] | the deployment stage picked at start-up and its variables |
//!
//! Process-wide policy state (keys, buckets, quotas, the cache) is in [`state`].

pub mod admin;
pub mod bodies;
pub mod error;
pub mod observe;
pub mod params;
mod pem;
pub mod pipeline;
pub mod policies;
pub mod responses;
pub mod router;
pub mod serving;
pub mod shared;
pub mod spec;
pub mod stage;
pub mod state;
pub mod targets;
pub mod template;

pub use pipeline::RequestCtx;
/// What generated `main`s call: `gateway_runtime::cli::run(&api::API)`.
pub use serving::cli;
/// Stores (`x-gateway.stores`): what store targets read and write, and what function targets reach through their
/// context.
pub use targets::store;

/// The allocator of every gateway binary: the system's, or mimalloc with the `mimalloc` feature.
/// A library does not pick the process's allocator; a gateway's `main.rs` does, with [`global_allocator!`], so
/// that other programs linking the runtime (its tests, which count allocations) can choose their own.
pub mod allocator {
    /// The allocator (a unit struct: type and value).
    #[cfg(feature = "mimalloc")]
    pub use mimalloc::MiMalloc as Allocator;
    /// The allocator (a unit struct: type and value).
    #[cfg(not(feature = "mimalloc"))]
    pub use std::alloc::System as Allocator;
}

/// Makes the runtime's [`allocator`] the process's global allocator: one line of every generated `main.rs`.
#[macro_export]
macro_rules! global_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: $crate::allocator::Allocator = $crate::allocator::Allocator;
    };
}

/// What function targets are written with: the context a function gets, and what generated request and response
/// types implement.
pub use targets::function as functions;

// Generated code names these through the runtime so that a gateway crate depends on nothing else.
pub use bytes;
pub use http;
pub use serde;
pub use serde_json;
pub use uuid;
