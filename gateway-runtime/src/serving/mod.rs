//! Serving: the worker threads and listeners ([`server`]), the command line around them ([`cli`]), the
//! logging set-up ([`observe`]) and the access log ([`access_log`]).

pub mod access_log;
pub mod cli;
pub mod observe;
pub mod server;
