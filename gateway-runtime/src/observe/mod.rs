//! Seeing what the gateway does: the process log ([`logging`]) and the access log ([`access_log`]), each read
//! from the request context when a request ends ([`crate::pipeline::finish`]).

pub mod access_log;
pub mod logging;
