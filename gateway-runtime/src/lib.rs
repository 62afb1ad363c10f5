//! The runtime every generated gateway links.
//!
//! A generated crate contains only data ([`spec::ApiSpec`]: routes, targets, policies) and typed parameter parsers
//! ([`params::FromRequestParams`] impls); this crate does the work. It knows nothing of OpenAPI. Its `main` is
//! `gateway_runtime::cli::run(&api::API)`.
//!
//! # Request phases
//!
//! Every request passes through the same phases, in this order (later issues add policies as new phases, each in
//! its own module):
//!
//! 1. **route** — the router matches the path (including a parameter's literal suffix, as in `/calls/{sid}.json`)
//!    and method (`404` / `405` with `Allow` otherwise) ([`router`]).
//! 2. **auth** — the API key the operation's `security` asks for (`401` missing or unknown, `403` disabled or
//!    not on an admitted plan) ([`auth`], [`keys`]).
//! 3. **throttle** — token buckets in order: API-wide, the operation's, the caller's plan (`429` with
//!    `Retry-After`); a refusal takes nothing from the buckets after it ([`throttle`]).
//! 4. **params** — path parameters that are dot-segments (`.`, `..`) are refused, then the operation's typed
//!    parameters are parsed (`400` naming the parameter otherwise) ([`router`], [`params`]).
//! 5. **quota** — the caller's plan quota is charged, only now that every other check admitted the request
//!    (`429` with the reset time) ([`throttle`]).
//! 6. **cache** — a cached operation is answered from the response cache when it can be; concurrent misses for
//!    one key are coalesced into one call of the target ([`cache`]).
//! 7. **target** — the request is proxied to an upstream ([`proxy`]) or answered by a mock ([`mock`]).
//!
//! Limited operations carry the `RateLimit-Policy` and `RateLimit` headers of the IETF draft on every response.
//! Process-wide policy state (keys, buckets, quotas, the cache) is in [`state`]; the admin endpoints under `/_gateway/` in [`admin`].
//!
//! Every response the gateway makes itself is `application/problem+json` ([`problem`]).
//!
//! # Serving
//!
//! [`server`] runs one single-threaded runtime per core, each with its own listener (`SO_REUSEPORT`), router
//! and upstream connection pools; [`cli`] is the command line around it, [`observe`] the logging set-up.

pub mod admin;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod keys;
pub mod mock;
pub mod observe;
pub mod params;
pub mod problem;
pub mod proxy;
pub mod router;
pub mod server;
pub mod spec;
pub mod state;
pub mod throttle;

/// The allocator of every gateway binary (the runtime is the whole program around a generated table).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

// Generated code names these through the runtime so that a gateway crate depends on nothing else.
pub use http;
pub use uuid;
