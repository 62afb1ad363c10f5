//! Upstreams: the named ones of `x-gateway.upstreams`, and the implicit ones from `servers` URLs.

use std::collections::HashMap;

use indexmap::IndexMap;
use openapiv3::Server;

use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, plain_name};
use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::Upstream;
use crate::parse::ParsedSpec;

/// Named and implicit upstreams, numbered in order of first use.
pub(super) struct Upstreams {
    list: Vec<Upstream>,
    named: IndexMap<String, usize>,
    implicit: HashMap<String, usize>,
    document_server: Option<String>,
}

impl Upstreams {
    pub(super) fn new(spec: &ParsedSpec, diags: &mut Diagnostics) -> Self {
        let mut list = Vec::new();
        let mut named = IndexMap::new();
        for (name, upstream) in &spec.root.upstreams {
            let at = format!("/x-gateway/upstreams/{}", crate::locate::escape_segment(name));
            if !plain_name(name) {
                diags.push(
                    Diagnostic::error(&at, format!("upstream name `{name}` is not a plain name"))
                        .help("use letters, digits, `-`, `_` and `.` (it is also the NAME in `--upstream NAME=URL`)"),
                );
            }
            // A URL with `{stage.NAME}` must be valid in every stage.
            if let Some(urls) = super::stages::expand_url(&spec.root, &upstream.url, &format!("{at}/url"), diags) {
                for url in urls {
                    check_url(&url, &format!("{at}/url"), diags);
                }
            }
            named.insert(name.clone(), list.len());
            list.push(Upstream {
                name: name.clone(),
                url: upstream.url.clone(),
                timeout: upstream.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0),
                connect_timeout: upstream.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
            });
        }
        let document_server = spec.openapi.servers.first().map(server_url);
        Self {
            list,
            named,
            implicit: HashMap::new(),
            document_server,
        }
    }

    /// The upstream for an operation with no target: its servers' first URL.
    pub(super) fn implicit(&mut self, url: String) -> usize {
        if let Some(&i) = self.implicit.get(&url) {
            return i;
        }
        let base = if self.document_server.as_deref().is_some_and(|d| same_server(d, &url)) {
            String::from("default")
        } else {
            url::Url::parse(&url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_owned))
                .unwrap_or_else(|| String::from("server"))
        };
        let mut name = base.clone();
        let mut n = 2;
        while self.list.iter().any(|u| u.name == name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        let i = self.list.len();
        self.implicit.insert(url.clone(), i);
        self.list.push(Upstream {
            name,
            url,
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        });
        i
    }

    /// The index of the named upstream `name`.
    pub(super) fn named(&self, name: &str) -> Option<usize> {
        self.named.get(name).copied()
    }

    /// The names of the named upstreams, in spec order.
    pub(super) fn names(&self) -> impl Iterator<Item = &str> {
        self.named.keys().map(String::as_str)
    }

    pub(super) fn finish(self) -> Vec<Upstream> {
        self.list
    }
}

pub(super) fn same_server(document: &str, url: &str) -> bool {
    document == url || url.ends_with(document) && document.starts_with('/')
}

/// A server's URL with its variables at their defaults.
pub(super) fn server_url(server: &Server) -> String {
    let mut url = server.url.clone();
    if let Some(vars) = &server.variables {
        for (name, var) in vars {
            url = url.replace(&format!("{{{name}}}"), &var.default);
        }
    }
    url
}

pub(super) fn check_url(url: &str, at: &str, diags: &mut Diagnostics) {
    let problem = match url::Url::parse(url) {
        Err(e) => Some(format!("`{url}` is not a valid URL: {e}")),
        Ok(u) if !matches!(u.scheme(), "http" | "https") => Some(format!(
            "upstream URL `{url}` must use http or https, not `{}`",
            u.scheme()
        )),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => Some(format!("upstream URL `{url}` has no host")),
        Ok(u) if u.query().is_some() || u.fragment().is_some() => {
            Some(format!("upstream URL `{url}` must not have a query or fragment"))
        }
        Ok(u) if !u.username().is_empty() || u.password().is_some() => {
            Some(format!("upstream URL `{url}` must not carry credentials"))
        }
        Ok(_) => None,
    };
    if let Some(message) = problem {
        diags
            .push(Diagnostic::error(at, message).help("write an absolute base URL such as `http://127.0.0.1:9001/v1`"));
    }
}
