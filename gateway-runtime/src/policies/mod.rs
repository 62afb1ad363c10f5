//! The policies a request can pass through, one module each. Which ones an operation runs, and in what order, is
//! decided once at start-up by [`crate::pipeline`].

pub mod auth;
pub mod cache;
pub mod compression;
pub mod cors;
pub mod credentials;
pub mod hosts;
pub mod ip;
pub mod throttle;
pub mod transform;
pub mod validate;
