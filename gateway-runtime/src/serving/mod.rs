//! Serving: the worker threads and listeners ([`server`]), the command line around them ([`cli`]), and the
//! logging set-up ([`observe`]).

pub mod cli;
pub mod observe;
pub mod server;
