//! The host a request names: checked against the API's public host names, and normalised for the cache key.
//!
//! The gateway forwards the client's `Host` as `X-Forwarded-Host`, so an upstream may build its answer from it
//! (absolute links, redirects). Whatever shapes an answer must be in the cache key, or a request for
//! `Host: evil.example` could store an answer that every other caller is then served. So the cache key holds the
//! normalised host ([`normalised`]), and a spec that declares its public names (`x-gateway: { hosts: [...] }`)
//! has every other host refused before anything else runs (`MISDIRECTED_REQUEST`, `421`).

use http::header::HOST;
use http::request;

use crate::error::{ErrorKind, GatewayError};

/// The host a request names: its `Host` header, else the authority of an absolute-form request target.
pub fn requested(parts: &request::Parts) -> Option<&str> {
    parts
        .headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
}

/// `host[:port]` split, the host lower-cased (by the caller) and without a trailing dot.
pub(crate) fn split(authority: &str) -> (&str, Option<&str>) {
    let authority = authority.trim();
    // An IPv6 literal is bracketed: `[::1]:8080`.
    let (host, port) = if let Some(end) = authority.strip_prefix('[').and_then(|rest| rest.find(']')) {
        let host = &authority[..end + 2];
        let port = authority[end + 2..].strip_prefix(':');
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    (host.strip_suffix('.').unwrap_or(host), port.filter(|p| !p.is_empty()))
}

/// The request's host in a normal form, borrowed from the request: no trailing dot, no default port (`:80`),
/// and lower case once written with [`Normalised::write`].
pub fn normalised(parts: &request::Parts) -> Normalised<'_> {
    let (host, port) = requested(parts).map_or(("", None), split);
    Normalised {
        host,
        port: port.filter(|p| *p != "80"),
    }
}

/// See [`normalised`].
#[derive(Debug, Clone, Copy)]
pub struct Normalised<'a> {
    host: &'a str,
    port: Option<&'a str>,
}

impl Normalised<'_> {
    /// Without `:443` as well, for a request that came over TLS (where it is the default port).
    pub fn over_tls(mut self, tls: bool) -> Self {
        if tls && self.port == Some("443") {
            self.port = None;
        }
        self
    }

    /// The length of what [`Normalised::write`] writes (for a length-prefixed key).
    pub fn len(&self) -> usize {
        self.host.len() + self.port.map_or(0, |p| p.len() + 1)
    }

    /// Whether the request named no host.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `host[:port]`, the host lower-cased.
    pub fn write(&self, out: &mut String) {
        out.extend(self.host.chars().map(|c| c.to_ascii_lowercase()));
        if let Some(port) = self.port {
            out.push(':');
            out.push_str(port);
        }
    }
}

/// The host names an API is served under.
#[derive(Debug)]
pub struct Hosts {
    /// `(host, port)`: lower case; no port means any port.
    allowed: Vec<(String, Option<String>)>,
}

impl Hosts {
    /// The declared names (from the generated spec: lower case, optionally with a port); `None` when there are
    /// none, and every host is served.
    pub fn new(names: &[&str]) -> Option<Self> {
        if names.is_empty() {
            return None;
        }
        let allowed = names
            .iter()
            .map(|name| {
                let (host, port) = split(name);
                (host.to_ascii_lowercase(), port.map(str::to_owned))
            })
            .collect();
        Some(Self { allowed })
    }

    /// `MISDIRECTED_REQUEST` unless the request names one of the hosts.
    pub fn check(&self, parts: &request::Parts) -> Result<(), GatewayError> {
        let admitted = requested(parts).is_some_and(|authority| {
            let (host, port) = split(authority);
            self.allowed
                .iter()
                .any(|(h, p)| h.eq_ignore_ascii_case(host) && p.as_deref().is_none_or(|p| Some(p) == port))
        });
        if admitted {
            Ok(())
        } else {
            Err(GatewayError::new(
                ErrorKind::MisdirectedRequest,
                "this gateway does not serve the host the request names",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(host: &str) -> request::Parts {
        let (parts, ()) = http::Request::get("/x")
            .header(HOST, host)
            .body(())
            .unwrap_or_default()
            .into_parts();
        parts
    }

    fn normal_form(host: &str) -> String {
        let parts = parts(host);
        let normal = super::normalised(&parts);
        let mut out = String::new();
        normal.write(&mut out);
        assert_eq!(out.len(), normal.len());
        out
    }

    #[test]
    fn hosts_are_normalised() {
        assert_eq!(normal_form("API.Example.com"), "api.example.com");
        assert_eq!(normal_form("api.example.com.:80"), "api.example.com");
        assert_eq!(normal_form("api.example.com:8080"), "api.example.com:8080");
        assert_eq!(normal_form("[::1]:9000"), "[::1]:9000");
        let mut out = String::new();
        super::normalised(&parts("api.example.com:443"))
            .over_tls(true)
            .write(&mut out);
        assert_eq!(out, "api.example.com", "443 is the default port over TLS");
        out.clear();
        super::normalised(&parts("api.example.com:443"))
            .over_tls(false)
            .write(&mut out);
        assert_eq!(out, "api.example.com:443", "and only there");
    }

    #[test]
    fn only_declared_hosts_are_served() {
        let hosts = Hosts::new(&["api.example.com", "localhost:8080"]).expect("some");
        assert!(hosts.check(&parts("api.example.com")).is_ok());
        assert!(
            hosts.check(&parts("API.example.com:443")).is_ok(),
            "no port declared: any port"
        );
        assert!(hosts.check(&parts("localhost:8080")).is_ok());
        assert!(hosts.check(&parts("localhost:9090")).is_err());
        let refused = hosts.check(&parts("evil.example")).expect_err("refused");
        assert_eq!(refused.kind, ErrorKind::MisdirectedRequest);
        assert!(Hosts::new(&[]).is_none());
    }
}
