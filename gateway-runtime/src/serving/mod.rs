//! Serving: the worker threads and listeners ([`server`]) and the command line around them ([`cli`]).

pub mod cli;
pub mod limits;
mod preface;
mod redirect;
mod scoped;
pub mod server;
pub mod tls;
