//! Upstreams: the named ones of `x-gateway.upstreams`, and the implicit ones from `servers` URLs.

use std::collections::HashMap;

use indexmap::IndexMap;
use openapiv3::Server;

use super::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, plain_name};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{Balance, DEFAULT_QUEUE_TIMEOUT, Eject, Health, Placeholder, Retries, RetryMethods, Upstream};
use crate::parse::ParsedSpec;
use crate::parse::ext::{
    BudgetExt, EjectExt, HealthExt, RetriesExt, RetryConditionExt, RetryMethodsExt, RootExt, StatusRangeExt,
    UpstreamExt,
};
use crate::template::{self, Namespace};

/// Named and implicit upstreams, numbered in order of first use.
pub(super) struct Upstreams {
    list: Vec<Upstream>,
    named: IndexMap<String, usize>,
    implicit: HashMap<String, usize>,
    document_server: Option<String>,
    /// `(upstream, source)` of every `balance: hash(...)` reading a header or query parameter: checked against the
    /// operations that use the upstream once they are known ([`Upstreams::check_hash_sources`]).
    hash_sources: Vec<(usize, HashSource)>,
}

/// A `hash(header.X)` or `hash(query.X)` source and where it is written.
pub(super) struct HashSource {
    at: String,
    /// `header` or `query`.
    kind: &'static str,
    /// The name as written.
    name: String,
}

impl Upstreams {
    pub(super) fn new(spec: &ParsedSpec, diags: &mut Diagnostics) -> Self {
        let mut list = Vec::new();
        let mut named = IndexMap::new();
        let mut hash_sources = Vec::new();
        for (name, upstream) in &spec.root.upstreams {
            let at = format!("/x-gateway/upstreams/{}", crate::locate::escape_segment(name));
            if !plain_name(name) {
                diags.push(
                    Diagnostic::error(&at, format!("upstream name `{name}` is not a plain name"))
                        .help("use letters, digits, `-`, `_` and `.` (it is also the NAME in `--upstream NAME=URL`)"),
                );
            }
            let urls = check_urls(&spec.root, upstream, &at, diags);
            let (balance, source) = upstream
                .balance
                .as_deref()
                .map(|b| check_balance(b, &format!("{at}/balance"), diags))
                .unwrap_or((Some(Balance::RoundRobin), None));
            if let Some(source) = source {
                hash_sources.push((list.len(), source));
            }
            let timeout = upstream.timeout.map_or(DEFAULT_TIMEOUT, |d| d.0);
            let retries = upstream
                .retries
                .as_ref()
                .and_then(|r| check_retries(r, &format!("{at}/retries"), diags));
            let health = upstream
                .health
                .as_ref()
                .and_then(|h| check_health(h, &format!("{at}/health"), diags));
            let eject = upstream
                .eject
                .as_ref()
                .and_then(|e| check_eject(e, &format!("{at}/eject"), diags));
            if upstream.max_connections == Some(0) {
                diags.push(
                    Diagnostic::error(format!("{at}/max_connections"), "`max_connections` must be at least 1")
                        .help("leave it out for no bound"),
                );
            }
            if upstream.queue_timeout.is_some() && upstream.max_connections.is_none() {
                diags.push(
                    Diagnostic::warning(
                        format!("{at}/queue_timeout"),
                        "`queue_timeout` has no effect without `max_connections`",
                    )
                    .help("add `max_connections: N`, or remove `queue_timeout`"),
                );
            }
            let tls = upstream
                .tls
                .as_ref()
                .and_then(|t| check_tls(t, &urls, &format!("{at}/tls"), diags));
            named.insert(name.clone(), list.len());
            list.push(Upstream {
                name: name.clone(),
                urls,
                timeout,
                connect_timeout: upstream.connect_timeout.map_or(DEFAULT_CONNECT_TIMEOUT, |d| d.0),
                balance: balance.unwrap_or(Balance::RoundRobin),
                retries,
                health,
                eject,
                max_connections: upstream.max_connections.filter(|&m| m > 0),
                queue_timeout: upstream.queue_timeout.map_or(DEFAULT_QUEUE_TIMEOUT, |d| d.0),
                resolve: upstream.resolve.map(|d| d.0),
                tls,
                http2: upstream.http2.unwrap_or(false),
            });
        }
        let document_server = spec.openapi.servers.first().map(server_url);
        Self {
            list,
            named,
            implicit: HashMap::new(),
            document_server,
            hash_sources,
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
        self.list.push(Upstream::plain(name, url));
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

    /// Checks that the header or query parameter each `balance: hash(...)` reads is declared by an operation that
    /// uses the upstream: `uses` gives, per operation, the upstreams it may go to and its declared header (lower
    /// case) and query parameter names.
    pub(super) fn check_hash_sources<'o>(
        &self,
        uses: impl Iterator<Item = (Vec<usize>, Vec<String>, Vec<&'o str>)> + Clone,
        diags: &mut Diagnostics,
    ) {
        for (upstream, source) in &self.hash_sources {
            let declared = uses.clone().any(|(upstreams, headers, query)| {
                upstreams.contains(upstream)
                    && match source.kind {
                        "header" => headers.contains(&source.name.to_ascii_lowercase()),
                        _ => query.contains(&source.name.as_str()),
                    }
            });
            if !declared {
                let param = if source.kind == "header" { "header" } else { "query" };
                diags.push(
                    Diagnostic::error(
                        &source.at,
                        format!(
                            "`hash({}.{})` reads a {param} parameter that no operation using this upstream declares",
                            source.kind, source.name
                        ),
                    )
                    .help(format!(
                        "declare `{}` with `in: {param}` on the operations that should stick to a server, or hash `context.client_ip`",
                        source.name
                    )),
                );
            }
        }
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

/// The upstream's URLs (`url` or `urls`, exactly one), each valid in every stage, all with one base path.
fn check_urls(root: &RootExt, upstream: &UpstreamExt, at: &str, diags: &mut Diagnostics) -> Vec<String> {
    let written: Vec<(String, String)> = match (&upstream.url, &upstream.urls) {
        (Some(url), None) => vec![(url.clone(), format!("{at}/url"))],
        (None, Some(urls)) if !urls.is_empty() => urls
            .iter()
            .enumerate()
            .map(|(i, url)| (url.clone(), format!("{at}/urls/{i}")))
            .collect(),
        (None, Some(_)) => {
            diags.push(Diagnostic::error(format!("{at}/urls"), "`urls` is empty").help("list one URL per server"));
            return Vec::new();
        }
        (Some(_), Some(_)) => {
            diags.push(
                Diagnostic::error(at, "an upstream has `url` or `urls`, not both")
                    .help("keep `urls: [...]` for several servers, or `url:` for one"),
            );
            return Vec::new();
        }
        (None, None) => {
            diags.push(
                Diagnostic::error(at, "the upstream has no `url`")
                    .help("add `url: http://127.0.0.1:9001`, or `urls: [...]` for several servers"),
            );
            return Vec::new();
        }
    };
    let mut base: Option<(String, String)> = None;
    for (url, url_at) in &written {
        // A URL with `{stage.NAME}` must be valid in every stage.
        if let Some(filled) = super::stages::expand_url(root, url, url_at, diags) {
            for url in filled {
                check_url(&url, url_at, diags);
            }
        }
        if super::stages::stage_names_in(url).is_empty()
            && let Ok(parsed) = url::Url::parse(url)
        {
            let path = parsed.path().trim_end_matches('/').to_owned();
            match &base {
                None => base = Some((path, url_at.clone())),
                Some((first, first_at)) if *first != path => diags.push(
                    Diagnostic::error(
                        url_at,
                        format!("the servers of one upstream share a base path: this URL has `{path}`, the first `{first}`"),
                    )
                    .related(first_at, "the first URL")
                    .help("servers of one upstream are replicas; declare a server with another base path as an upstream of its own"),
                ),
                Some(_) => {}
            }
        }
    }
    written.into_iter().map(|(url, _)| url).collect()
}

/// `balance:`; with the header or query source of a hash, for the check against the operations.
fn check_balance(text: &str, at: &str, diags: &mut Diagnostics) -> (Option<Balance>, Option<HashSource>) {
    const STRATEGIES: [&str; 3] = ["round_robin", "least_requests", "hash"];
    let text = text.trim();
    match text {
        "round_robin" => return (Some(Balance::RoundRobin), None),
        "least_requests" => return (Some(Balance::LeastRequests), None),
        _ => {}
    }
    let Some(inner) = text.strip_prefix("hash(").and_then(|r| r.strip_suffix(')')) else {
        let word = text.split('(').next().unwrap_or(text);
        let d = Diagnostic::error(at, format!("unknown balance strategy `{text}`"));
        diags.push(match did_you_mean(word, STRATEGIES) {
            Some("hash") => d.help("write `hash(SOURCE)`, e.g. `hash(header.X-User-Id)`, `hash(jwt.claims.sub)` or `hash(context.client_ip)`"),
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.help("use `round_robin`, `least_requests` or `hash(SOURCE)` (e.g. `hash(context.client_ip)`)"),
        });
        return (None, None);
    };
    let inner = inner.trim();
    let source_help = "hash a request value: `header.NAME`, `query.NAME`, `jwt.claims.NAME`, `context.client_ip` or `context.api_key.name`";
    let (namespace, name) = match template::qualify(inner) {
        Ok(q) => q,
        Err(e) => {
            diags.push(Diagnostic::error(at, e).help(source_help));
            return (None, None);
        }
    };
    match namespace {
        Namespace::Header => {
            let lower = name.to_ascii_lowercase();
            if http::HeaderName::from_bytes(lower.as_bytes()).is_err() {
                diags.push(Diagnostic::error(at, format!("`{name}` is not a valid header name")));
                return (None, None);
            }
            (
                Some(Balance::Hash(Placeholder::Header(lower))),
                Some(HashSource {
                    at: at.to_owned(),
                    kind: "header",
                    name: name.to_owned(),
                }),
            )
        }
        Namespace::Query => (
            Some(Balance::Hash(Placeholder::Query(name.to_owned()))),
            Some(HashSource {
                at: at.to_owned(),
                kind: "query",
                name: name.to_owned(),
            }),
        ),
        Namespace::JwtClaims => (
            super::transforms::claim(name, inner, at, diags).map(Balance::Hash),
            None,
        ),
        Namespace::Context => match name {
            "client_ip" => (Some(Balance::Hash(Placeholder::ClientIp)), None),
            "api_key.name" => (Some(Balance::Hash(Placeholder::ApiKeyName)), None),
            _ => {
                diags.push(
                    Diagnostic::error(at, format!("`context.{name}` is not a value to hash by"))
                        .help("the context values a server can be chosen by are `context.client_ip` and `context.api_key.name`"),
                );
                (None, None)
            }
        },
        Namespace::Path => {
            let bare = !inner.contains('.');
            let what = if bare {
                format!("`hash({inner})` is not a known source")
            } else {
                format!("`hash({inner})`: path parameters differ from one operation to the next")
            };
            diags.push(Diagnostic::error(at, what).help(source_help));
            (None, None)
        }
        Namespace::Stage | Namespace::Error => {
            diags.push(
                Diagnostic::error(at, format!("`hash({inner})` does not vary between requests")).help(source_help),
            );
            (None, None)
        }
    }
}

fn check_retries(retries: &RetriesExt, at: &str, diags: &mut Diagnostics) -> Option<Retries> {
    let mut ok = true;
    let attempts = retries.attempts.unwrap_or(2);
    if attempts > 10 {
        diags.push(
            Diagnostic::error(
                format!("{at}/attempts"),
                format!("{attempts} retries is more than a gateway should make"),
            )
            .help("use at most 10 (2 is typical): each retry adds a try's latency"),
        );
        ok = false;
    }
    let mut out = Retries {
        attempts,
        connect_error: false,
        reset: false,
        timeout: false,
        statuses: Vec::new(),
        methods: RetryMethods::Idempotent,
        budget_ratio: 0.2,
        budget_min: 10,
        budget_window: std::time::Duration::from_secs(10),
        backoff: retries.backoff.map_or(std::time::Duration::from_millis(25), |d| d.0),
        max_backoff: retries
            .max_backoff
            .map_or(std::time::Duration::from_millis(250), |d| d.0),
    };
    match &retries.on {
        None => {
            out.connect_error = true;
            out.reset = true;
            out.statuses = vec![502, 503, 504];
        }
        Some(on) => {
            for (i, condition) in on.iter().enumerate() {
                let at = format!("{at}/on/{i}");
                match condition {
                    RetryConditionExt::Status(status) if (400..=599).contains(status) => out.statuses.push(*status),
                    RetryConditionExt::Status(status) => {
                        diags.push(
                            Diagnostic::error(&at, format!("status {status} is not a failure to retry"))
                                .help("retry on 4xx or 5xx statuses, e.g. 502, 503, 504 (or 429)"),
                        );
                        ok = false;
                    }
                    RetryConditionExt::Name(name) => match name.as_str() {
                        "connect_error" | "connect-failure" | "connect_failure" => out.connect_error = true,
                        "reset" => out.reset = true,
                        "timeout" => out.timeout = true,
                        other => {
                            let d = Diagnostic::error(&at, format!("unknown retry condition `{other}`"));
                            diags.push(match did_you_mean(other, ["connect_error", "reset", "timeout"]) {
                                Some(best) => d.help(format!("did you mean `{best}`?")),
                                None => d.help("use `connect_error`, `reset`, `timeout` or a status such as 503"),
                            });
                            ok = false;
                        }
                    },
                }
            }
        }
    }
    if out.max_backoff < out.backoff {
        diags.push(
            Diagnostic::error(format!("{at}/max_backoff"), "`max_backoff` is shorter than `backoff`")
                .help("the backoff ceiling doubles from `backoff` up to `max_backoff`"),
        );
        ok = false;
    }
    let unsafe_method = |m: &str| !matches!(m, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE");
    let (methods, non_idempotent) = match &retries.methods {
        None => (RetryMethods::Idempotent, Vec::new()),
        Some(RetryMethodsExt::Named(name)) => match name.as_str() {
            "idempotent" => (RetryMethods::Idempotent, Vec::new()),
            "all" => (RetryMethods::All, vec!["POST".to_owned(), "PATCH".to_owned()]),
            other => {
                diags.push(
                    Diagnostic::error(format!("{at}/methods"), format!("unknown method set `{other}`"))
                        .help("use `idempotent` (the default), `all`, or a list such as `[GET, PUT]`"),
                );
                ok = false;
                (RetryMethods::Idempotent, Vec::new())
            }
        },
        Some(RetryMethodsExt::List(list)) => {
            let mut methods = Vec::new();
            for (i, method) in list.iter().enumerate() {
                let upper = method.to_ascii_uppercase();
                if !matches!(
                    upper.as_str(),
                    "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE" | "POST" | "PATCH"
                ) {
                    diags.push(
                        Diagnostic::error(format!("{at}/methods/{i}"), format!("`{method}` is not an HTTP method"))
                            .help("list methods such as GET, PUT, DELETE"),
                    );
                    ok = false;
                } else if !methods.contains(&upper) {
                    methods.push(upper);
                }
            }
            let unsafe_ones = methods.iter().filter(|m| unsafe_method(m)).cloned().collect();
            (RetryMethods::Only(methods), unsafe_ones)
        }
    };
    if !non_idempotent.is_empty() && retries.non_idempotent != Some(true) {
        diags.push(
            Diagnostic::error(
                format!("{at}/methods"),
                format!(
                    "retries of {} requests, which are not idempotent: a retried request may take effect twice",
                    non_idempotent.join(" and ")
                ),
            )
            .help("add `non_idempotent: true` beside `methods` if the upstream tolerates a repeat (e.g. deduplicates by an Idempotency-Key), or retry only `idempotent` methods"),
        );
        ok = false;
    }
    out.methods = methods;
    if let Some(budget) = &retries.budget {
        let (ratio, min, window) = match budget {
            BudgetExt::Ratio(ratio) => (ratio, None, None),
            BudgetExt::Full { ratio, min, window } => (ratio, *min, *window),
        };
        match parse_percent(ratio) {
            Some(r) => out.budget_ratio = r,
            None => {
                diags.push(
                    Diagnostic::error(format!("{at}/budget"), format!("`{ratio}` is not a percentage"))
                        .help("write the share of requests that may be retried, e.g. `20%`"),
                );
                ok = false;
            }
        }
        if let Some(min) = min {
            out.budget_min = min;
        }
        if let Some(window) = window {
            out.budget_window = window.0;
        }
    }
    ok.then_some(out)
}

/// `20%` as `0.2` (0% to 100%).
fn parse_percent(text: &str) -> Option<f64> {
    let number: f64 = text.trim().strip_suffix('%')?.trim().parse().ok()?;
    (0.0..=100.0).contains(&number).then_some(number / 100.0)
}

fn check_health(health: &HealthExt, at: &str, diags: &mut Diagnostics) -> Option<Health> {
    let mut ok = true;
    if !health.path.starts_with('/') || http::uri::PathAndQuery::try_from(health.path.as_str()).is_err() {
        diags.push(
            Diagnostic::error(format!("{at}/path"), format!("`{}` is not a path", health.path))
                .help("write the path checked under the upstream's base path, e.g. `/healthz`"),
        );
        ok = false;
    }
    let interval = health.interval.map_or(std::time::Duration::from_secs(5), |d| d.0);
    let timeout = health.timeout.map_or(std::time::Duration::from_secs(1), |d| d.0);
    if timeout > interval {
        diags.push(
            Diagnostic::warning(
                format!("{at}/timeout"),
                "a health check's timeout is longer than its interval",
            )
            .help("checks of one server then overlap; make the timeout shorter than the interval"),
        );
    }
    let mut count = |key: &str, value: Option<u32>| match value {
        Some(0) => {
            diags.push(Diagnostic::error(
                format!("{at}/{key}"),
                format!("`{key}` must be at least 1"),
            ));
            ok = false;
            1
        }
        Some(n) => n,
        None => 2,
    };
    let unhealthy_after = count("unhealthy_after", health.unhealthy_after);
    let healthy_after = count("healthy_after", health.healthy_after);
    let expect = match &health.expect {
        None => Some((200, 399)),
        Some(StatusRangeExt::Status(s)) => Some((*s, *s)),
        Some(StatusRangeExt::Range(text)) => parse_status_range(text),
    };
    let expect = expect.filter(|(lo, hi)| (100..=599).contains(lo) && (100..=599).contains(hi) && lo <= hi);
    if expect.is_none() {
        diags.push(
            Diagnostic::error(
                format!("{at}/expect"),
                "`expect` is not a status or a range of statuses",
            )
            .help("write `200`, `2XX` or `200-399`"),
        );
        ok = false;
    }
    ok.then(|| Health {
        path: health.path.clone(),
        interval,
        timeout,
        unhealthy_after,
        healthy_after,
        expect: expect.unwrap_or((200, 399)),
    })
}

/// `2XX` or `200-399`.
fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let text = text.trim();
    if let Some(class) = text.strip_suffix("XX").or_else(|| text.strip_suffix("xx")) {
        let class: u16 = class.parse().ok()?;
        return Some((class * 100, class * 100 + 99));
    }
    match text.split_once('-') {
        Some((lo, hi)) => Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?)),
        None => text.parse().ok().map(|s| (s, s)),
    }
}

fn check_eject(eject: &EjectExt, at: &str, diags: &mut Diagnostics) -> Option<Eject> {
    let mut ok = true;
    let consecutive_failures = eject.consecutive_failures.unwrap_or(5);
    if consecutive_failures == 0 {
        diags.push(Diagnostic::error(
            format!("{at}/consecutive_failures"),
            "`consecutive_failures` must be at least 1",
        ));
        ok = false;
    }
    let max_percent = eject.max_percent.unwrap_or(50);
    if max_percent > 100 {
        diags.push(
            Diagnostic::error(
                format!("{at}/max_percent"),
                format!("`max_percent` is {max_percent}, over 100"),
            )
            .help("the most servers out at once, in percent of the upstream's servers"),
        );
        ok = false;
    }
    let base_time = eject.base_time.map_or(std::time::Duration::from_secs(10), |d| d.0);
    let max_time = eject
        .max_time
        .map_or(std::time::Duration::from_secs(300).max(base_time), |d| d.0);
    if max_time < base_time {
        diags.push(Diagnostic::error(
            format!("{at}/max_time"),
            "`max_time` is shorter than `base_time`",
        ));
        ok = false;
    }
    ok.then(|| Eject {
        consecutive_failures,
        base_time,
        max_time,
        max_percent: u8::try_from(max_percent).unwrap_or(100),
    })
}

/// `tls:` of an upstream: a client certificate needs its key (and the key its certificate); settings on an upstream
/// whose every URL is `http` would do nothing (a warning: `--upstream` may point it at `https` servers).
fn check_tls(
    tls: &crate::parse::ext::UpstreamTlsExt,
    urls: &[String],
    at: &str,
    diags: &mut Diagnostics,
) -> Option<crate::model::UpstreamTls> {
    let client = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            let (given, missing) = if tls.client_cert.is_some() {
                ("client_cert", "client_key")
            } else {
                ("client_key", "client_cert")
            };
            diags.push(
                Diagnostic::error(format!("{at}/{given}"), format!("`{given}` needs `{missing}`"))
                    .help("give the client certificate's chain in `client_cert` and its private key in `client_key`"),
            );
            return None;
        }
    };
    if !urls.is_empty() && urls.iter().all(|u| u.starts_with("http://")) {
        diags.push(
            Diagnostic::warning(at, "`tls` has no effect: every URL of the upstream is `http://`")
                .help("use `https://` URLs, or remove `tls`"),
        );
    }
    Some(crate::model::UpstreamTls {
        ca_file: tls.ca_file.clone(),
        client,
    })
}
