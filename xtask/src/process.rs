//! Running cargo and other programs from tasks.

use std::process::Command;

/// `cargo`, the same one that runs xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| String::from("cargo")))
}
