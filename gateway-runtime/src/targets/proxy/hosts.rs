//! `--hosts FILE`: host names the gateway resolves itself, from a file in the format of `/etc/hosts` (an address,
//! then the names it answers for; `#` starts a comment), before asking the system's resolver.
//!
//! The file is read again at every resolution: at start-up, at each re-resolution of an upstream with `resolve`,
//! and when a pool of an upstream without it opens a connection to a host name. Editing the file (a deployment
//! tool's, or a test's) changes where the next resolution goes without a restart. A name the file does not list,
//! or a file that cannot be read at that moment (logged), falls back to the system's resolver.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A hosts file.
#[derive(Debug, Clone)]
pub struct Hosts {
    path: Arc<Path>,
}

/// A hosts file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the hosts file {path}: {source}")]
pub struct HostsError {
    path: String,
    source: std::io::Error,
}

impl Hosts {
    /// The hosts file at `path`, which must be readable now (a typo is a start-up error, not a silent fallback).
    pub fn open(path: PathBuf) -> Result<Self, HostsError> {
        std::fs::read_to_string(&path).map_err(|source| HostsError {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self { path: path.into() })
    }

    /// The addresses the file gives `name` (case-insensitive), in file order; `None` when it lists none.
    pub(super) fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) => {
                tracing::warn!(file = %self.path.display(), error = %err, "cannot read the hosts file; using the system's resolver");
                return None;
            }
        };
        let found = addresses(&text, name);
        (!found.is_empty()).then_some(found)
    }
}

/// The addresses `text` (hosts-file lines) gives `name`. Lines whose first field is not an address are skipped.
fn addresses(text: &str, name: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(Ok(addr)) = fields.next().map(str::parse::<IpAddr>) else {
            continue;
        };
        if fields.any(|n| n.eq_ignore_ascii_case(name)) && !found.contains(&addr) {
            found.push(addr);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_naming_the_host_adds_its_address() {
        let text = "# pinned\n127.0.0.2 pets pets.internal\n\n::1   Pets # v6 too\nnot-an-address pets\n127.0.0.3 other\n127.0.0.2 pets\n";
        let found = addresses(text, "pets");
        let expected: [IpAddr; 2] = [[127, 0, 0, 2].into(), std::net::Ipv6Addr::LOCALHOST.into()];
        assert_eq!(found, expected);
        assert!(addresses(text, "nobody").is_empty());
        assert_eq!(addresses(text, "pets.internal").len(), 1);
    }
}
