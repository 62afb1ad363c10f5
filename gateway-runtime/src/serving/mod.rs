//! Serving: the worker threads and listeners ([`server`]) and the command line around them ([`cli`]).

pub mod cli;
mod scoped;
pub mod server;
