//! Seeing what the gateway does: the process log ([`logging`]), the access log ([`access_log`]), the metrics
//! ([`metrics`]) and trace export ([`otlp`]), the last three read from the request context when a request ends
//! ([`crate::pipeline::finish`]).

pub mod access_log;
pub mod logging;
pub mod metrics;
pub mod otlp;
