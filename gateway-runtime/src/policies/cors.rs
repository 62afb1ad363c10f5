//! Cross-origin resource sharing: the gateway answers browsers' preflights and puts the CORS headers on the
//! responses of the operations that have a policy, following the CORS protocol of the Fetch standard.
//!
//! # Design
//!
//! CORS is not a request filter: it never refuses a request. It is two things.
//!
//! - **A preflight answer at routing.** On a route where some operation has a policy, the route's `OPTIONS` is a
//!   [`Preflight`]: a request with `Origin` and `Access-Control-Request-Method` is answered by the gateway itself,
//!   never by the target, after the host check (a host the API does not serve is still refused first) and before
//!   every other request filter (so before auth: a preflight carries no credential, and no throttle). Any
//!   other `OPTIONS` goes to the route's own `OPTIONS` operation, or gets the route's `405`. A route none of whose
//!   operations has a policy keeps its `OPTIONS` as declared: CORS is then the upstream's business.
//! - **A response filter.** When a request for an operation with a policy arrives, [`Cors::reply`] decides once
//!   what its response gets and stores that in the request context ([`CorsReply`]); the response filters apply it
//!   to whatever the response is — the target's, a cache hit, or a gateway error (`401`, `429`…, which a browser
//!   can then read). Requests that match no operation (`404`, `405`) get the API-wide policy.
//!
//! Each distinct policy is prepared once per router ([`Policies`]): its header values are built at start-up, so
//! an operation with a policy costs a reference-count increment and an origin comparison per request, and an
//! operation without one costs nothing at all (no lookup, no allocation). `tower-http`'s `CorsLayer` is not used:
//! it wraps a whole router with one policy, where a gateway needs a policy per operation and the methods of each
//! path.
//!
//! # The rules
//!
//! - **Origins** are compared ASCII case-insensitively. `Exact` matches one origin. `Wildcard` (`https://*.a.com`)
//!   matches when the `*` stands for one or more whole DNS labels (letters, digits and hyphens, 1 to 63 of them,
//!   separated by dots): `https://x.a.com` and `https://x.y.a.com`, but not `https://a.com`,
//!   `https://evil-a.com`, `http://x.a.com`, `https://x.a.com.evil.com`, `https://u@x.a.com` or
//!   `https://x.a.com:8443` (a port only where the pattern has one). `Origin: null` (sandboxed documents, `file:`)
//!   is matched only by an explicit `null` entry. A request with several `Origin` headers is not admitted.
//! - **`*`** (`Any`, never with credentials: refused at start-up) answers `Access-Control-Allow-Origin: *` on
//!   *every* response of the operation, whatever the `Origin` (none, or `null`): the answer is then the same for
//!   every request, needs no `Vary`, and a shared cache cannot be made to store an answer without the header. A
//!   preflight still has to come from an admitted origin (so not from `null`).
//! - **Other policies** echo the request's `Origin` when it is admitted, with `Access-Control-Allow-Credentials:
//!   true` when the policy allows credentials and `Access-Control-Expose-Headers` when it lists some; an origin not
//!   admitted (or no `Origin`) gets no CORS header. Either way the answer depends on the origin, so
//!   `Vary: Origin` is added to every response, as a field line of its own next to any `Vary` the upstream sent
//!   (unless that already names `Origin` or is `*`).
//! - **The gateway's policy is the one that counts**: on a response that gets the filter, every
//!   `Access-Control-*` header the upstream (or a spec-rendered gateway response) set is removed first.
//! - **Preflight answers** are `204` with `Vary: Origin, Access-Control-Request-Method,
//!   Access-Control-Request-Headers`. The policy is that of the operation the preflight asks about
//!   (`Access-Control-Request-Method`; `HEAD` asks about `GET` unless the path declares `HEAD`). When the origin
//!   is admitted and every requested header is allowed, the answer has `Access-Control-Allow-Origin`,
//!   `Access-Control-Allow-Methods` (the path's methods that have a policy, `HEAD` with `GET`, like `Allow`),
//!   `Access-Control-Allow-Headers` (the policy's list; for `*` without credentials the requested headers are
//!   echoed, which also covers `Authorization`, that a literal `*` never does), `Access-Control-Allow-Credentials`
//!   and `Access-Control-Max-Age` when set. Otherwise — a method not on the path or without a policy, an origin not
//!   admitted, a header not allowed — the preflight is **refused: still `204`, without any CORS header**. The
//!   browser then fails the request just as it would on a `403`, and nothing reaches the target either way; the
//!   reason (method, origin or headers) is logged at debug level.
//! - With credentials, `*` in a header list is the literal name `*`, as browsers read it.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use crate::spec::{CorsSpec, OriginSpec};

/// `Vary` of every preflight answer: it depends on all three request headers.
const PREFLIGHT_VARY: HeaderValue =
    HeaderValue::from_static("Origin, Access-Control-Request-Method, Access-Control-Request-Headers");
/// `Vary` of actual responses whose answer depends on the origin.
const VARY_ORIGIN: HeaderValue = HeaderValue::from_static("Origin");
const ANY_ORIGIN: HeaderValue = HeaderValue::from_static("*");
const TRUE: HeaderValue = HeaderValue::from_static("true");

/// Why a CORS policy cannot be served (the generator checks all of these).
#[derive(Debug, thiserror::Error)]
pub enum CorsError {
    /// `*` with credentials: browsers refuse it, and echoing every origin instead would let any site read
    /// responses with the user's cookies.
    #[error("CORS policy: the origin `*` cannot be combined with credentials")]
    AnyWithCredentials,
    /// A wildcard origin whose `*` does not stand for whole DNS labels of the host.
    #[error("CORS policy: the origin `{prefix}*{suffix}` must be `scheme://*.domain[:port]`, the `*` for whole labels")]
    Wildcard {
        /// The text before the `*`.
        prefix: &'static str,
        /// The text after it.
        suffix: &'static str,
    },
    /// A header name HTTP does not allow.
    #[error("CORS policy: `{name}` in its {list} is not a valid header name")]
    HeaderName {
        /// `allow_headers` or `expose_headers`.
        list: &'static str,
        /// The name.
        name: &'static str,
    },
}

/// One CORS policy, prepared: what it admits and the header values it sends.
#[derive(Debug)]
pub struct Cors {
    spec: &'static CorsSpec,
    /// The origins admitted: the policy's, or the stage's that replace them.
    origins: &'static [OriginSpec],
    /// `*` is answered (an `Any` origin; never with credentials).
    any_origin: bool,
    /// The request headers a preflight may ask for.
    allow_headers: AllowHeaders,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
}

/// Which request headers a preflight may ask for.
#[derive(Debug)]
enum AllowHeaders {
    /// Any (`*` without credentials): the requested ones are echoed.
    Any,
    /// Those named (lower case), sent as one prepared value (`None` when there are none).
    Listed(&'static [&'static str], Option<HeaderValue>),
}

impl Cors {
    /// Prepares `spec`.
    pub fn new(spec: &'static CorsSpec) -> Result<Self, CorsError> {
        Self::with_origins(spec, spec.allow_origins)
    }

    /// Prepares `spec` admitting `origins` instead of its own (a stage's `cors.allow_origins`).
    pub fn with_origins(spec: &'static CorsSpec, origins: &'static [OriginSpec]) -> Result<Self, CorsError> {
        let any_origin = origins.contains(&OriginSpec::Any);
        if any_origin && spec.allow_credentials {
            return Err(CorsError::AnyWithCredentials);
        }
        for origin in origins {
            if let OriginSpec::Wildcard { prefix, suffix } = *origin {
                let whole_labels = prefix.ends_with("://")
                    && !prefix.contains('*')
                    && !suffix.contains('*')
                    && (suffix.is_empty() || suffix.starts_with('.') || suffix.starts_with(':'));
                if !whole_labels {
                    return Err(CorsError::Wildcard { prefix, suffix });
                }
            }
        }
        let allow_headers = if spec.allow_headers.contains(&"*") && !spec.allow_credentials {
            AllowHeaders::Any
        } else {
            AllowHeaders::Listed(spec.allow_headers, header_list("allow_headers", spec.allow_headers)?)
        };
        Ok(Self {
            spec,
            origins,
            any_origin,
            allow_headers,
            expose_headers: header_list("expose_headers", spec.expose_headers)?,
            max_age: spec.max_age.map(|age| HeaderValue::from(age.as_secs())),
        })
    }

    /// Whether `origin` (an `Origin` header's value) is admitted.
    pub fn allows(&self, origin: &[u8]) -> bool {
        self.origins.iter().any(|allowed| match *allowed {
            OriginSpec::Any => !origin.eq_ignore_ascii_case(b"null"),
            OriginSpec::Exact(exact) => origin.eq_ignore_ascii_case(exact.as_bytes()),
            OriginSpec::Wildcard { prefix, suffix } => wildcard_matches(prefix, suffix, origin),
        })
    }

    /// Whether the answer depends on the request's origin (always, except for `*`).
    pub fn varies(&self) -> bool {
        !self.any_origin
    }

    /// What the response to a request with `headers` gets, decided when the request arrives.
    pub fn reply(self: &Arc<Self>, headers: &HeaderMap) -> CorsReply {
        let allow_origin = if self.any_origin {
            Some(ANY_ORIGIN)
        } else {
            single(headers, &ORIGIN)
                .filter(|origin| self.allows(origin.as_bytes()))
                .cloned()
        };
        CorsReply {
            cors: Arc::clone(self),
            allow_origin,
        }
    }

    /// The `Access-Control-Allow-Headers` of a preflight asking for the headers in `headers`, or `Err` when one of
    /// them is not allowed (`Ok(None)`: none to send).
    fn allowed_request_headers(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, Refusal> {
        let mut requested = headers.get_all(&ACCESS_CONTROL_REQUEST_HEADERS).iter();
        match &self.allow_headers {
            AllowHeaders::Any => match (requested.next(), requested.next()) {
                (None, _) => Ok(None),
                (Some(one), None) => Ok(Some(one.clone())),
                // Browsers send one line; several are joined, as HTTP reads them.
                (Some(_), Some(_)) => {
                    let all: Vec<&str> = headers
                        .get_all(&ACCESS_CONTROL_REQUEST_HEADERS)
                        .iter()
                        .map(|v| v.to_str().map_err(|_| Refusal::Headers))
                        .collect::<Result<_, _>>()?;
                    HeaderValue::from_str(&all.join(", "))
                        .map(Some)
                        .map_err(|_| Refusal::Headers)
                }
            },
            AllowHeaders::Listed(names, value) => {
                let allowed = requested.all(|line| {
                    line.as_bytes()
                        .split(|b| *b == b',')
                        .map(<[u8]>::trim_ascii)
                        .filter(|name| !name.is_empty())
                        .all(|name| names.iter().any(|n| name.eq_ignore_ascii_case(n.as_bytes())))
                });
                if allowed {
                    Ok(value.clone())
                } else {
                    Err(Refusal::Headers)
                }
            }
        }
    }
}

/// The values of `list`, checked and joined into one header value (`None` for an empty list).
fn header_list(list: &'static str, names: &'static [&'static str]) -> Result<Option<HeaderValue>, CorsError> {
    if let Some(name) = names.iter().find(|n| HeaderName::from_bytes(n.as_bytes()).is_err()) {
        return Err(CorsError::HeaderName { list, name });
    }
    if names.is_empty() {
        return Ok(None);
    }
    // Header names joined by ", ": always a valid header value.
    Ok(HeaderValue::from_str(&names.join(", ")).ok())
}

/// Whether `origin` is `prefix`, one or more DNS labels, then `suffix` (ASCII case-insensitively).
fn wildcard_matches(prefix: &str, suffix: &str, origin: &[u8]) -> bool {
    let (prefix, suffix) = (prefix.as_bytes(), suffix.as_bytes());
    if origin.len() <= prefix.len() + suffix.len() {
        return false;
    }
    let (head, rest) = origin.split_at(prefix.len());
    let (labels, tail) = rest.split_at(rest.len() - suffix.len());
    head.eq_ignore_ascii_case(prefix) && tail.eq_ignore_ascii_case(suffix) && dns_labels(labels)
}

/// Whether `text` is one or more DNS labels separated by dots: each 1 to 63 letters, digits and hyphens.
fn dns_labels(text: &[u8]) -> bool {
    text.split(|b| *b == b'.')
        .all(|label| (1..=63).contains(&label.len()) && label.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
}

/// The value of `name` when the request has exactly one.
fn single<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a HeaderValue> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    values.next().is_none().then_some(first)
}

/// Whether a request is a CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(ORIGIN) && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD)
}

/// What the response to one request gets (kept in its context from arrival to the response filters).
#[derive(Debug)]
pub struct CorsReply {
    cors: Arc<Cors>,
    /// `Access-Control-Allow-Origin`: the admitted origin, or `*`; `None` when the origin is not admitted.
    allow_origin: Option<HeaderValue>,
}

impl CorsReply {
    /// Whether the request's origin was admitted (the response gets the CORS headers).
    pub fn admitted(&self) -> bool {
        self.allow_origin.is_some()
    }

    /// Puts the policy's headers on a response, replacing any `Access-Control-*` it had.
    pub fn apply(&self, headers: &mut HeaderMap) {
        while let Some(name) = headers
            .keys()
            .find(|name| name.as_str().starts_with("access-control-"))
            .cloned()
        {
            headers.remove(&name);
        }
        if self.cors.varies() && !varies_on_origin(headers) {
            headers.append(VARY, VARY_ORIGIN);
        }
        let Some(origin) = &self.allow_origin else {
            return;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.cors.spec.allow_credentials {
            headers.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        if let Some(expose) = &self.cors.expose_headers {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone());
        }
    }
}

/// Whether the response already varies on `Origin` (it names it, or is `Vary: *`).
fn varies_on_origin(headers: &HeaderMap) -> bool {
    headers.get_all(VARY).iter().any(|line| {
        line.as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|field| field == b"*" || field.eq_ignore_ascii_case(b"origin"))
    })
}

/// The prepared policies of one router: one [`Cors`] per distinct [`CorsSpec`], shared by the operations (and the
/// routes' preflights) that use it.
#[derive(Debug, Default)]
pub struct Policies {
    prepared: Vec<(&'static CorsSpec, Arc<Cors>)>,
    /// The stage's origins, replacing every policy's.
    origins: Option<&'static [OriginSpec]>,
}

impl Policies {
    /// Policies admitting their own origins, or `origins` instead (a stage's `cors.allow_origins`).
    pub fn new(origins: Option<&'static [OriginSpec]>) -> Self {
        Self {
            prepared: Vec::new(),
            origins,
        }
    }

    /// The prepared `spec`, prepared now if it is the first time.
    pub fn prepare(&mut self, spec: &'static CorsSpec) -> Result<Arc<Cors>, CorsError> {
        if let Some((_, cors)) = self.prepared.iter().find(|(s, _)| std::ptr::eq(*s, spec)) {
            return Ok(Arc::clone(cors));
        }
        let cors = Arc::new(Cors::with_origins(spec, self.origins.unwrap_or(spec.allow_origins))?);
        self.prepared.push((spec, Arc::clone(&cors)));
        Ok(cors)
    }
}

/// Why a preflight gets no CORS headers (for the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// The method asked about is not on the path, or its operation has no policy.
    Method,
    /// The origin is not admitted by that operation's policy.
    Origin,
    /// A requested header is not allowed by it.
    Headers,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::Method => "the requested method has no CORS policy on this path",
            Refusal::Origin => "the origin is not allowed",
            Refusal::Headers => "a requested header is not allowed",
        }
    }
}

/// The preflight answers of one route: the policy of each of its methods, and for each distinct policy the
/// `Access-Control-Allow-Methods` it answers with.
#[derive(Debug)]
pub struct Preflight {
    /// Every method of the route, with its operation's policy.
    methods: Box<[(Method, Option<Arc<Cors>>)]>,
    /// Per distinct policy, the methods that share it (`HEAD` with `GET`). A preflight lists only the methods of
    /// the policy that admitted it: one whose own policy would refuse the origin (or its headers) must not be
    /// cached by the browser as allowed.
    allow_methods: Box<[(Arc<Cors>, HeaderValue)]>,
}

impl Preflight {
    /// The preflight answers of a route serving `methods` (each with its operation's policy), or `None` when none
    /// of them has a policy. `allow` renders a list of methods as `Access-Control-Allow-Methods`.
    pub fn new(methods: Vec<(Method, Option<Arc<Cors>>)>, allow: impl Fn(&[&Method]) -> HeaderValue) -> Option<Self> {
        let mut allow_methods: Vec<(Arc<Cors>, HeaderValue)> = Vec::new();
        for cors in methods.iter().filter_map(|(_, c)| c.as_ref()) {
            if allow_methods.iter().any(|(seen, _)| Arc::ptr_eq(seen, cors)) {
                continue;
            }
            let sharing: Vec<&Method> = methods
                .iter()
                .filter(|(_, c)| c.as_ref().is_some_and(|c| Arc::ptr_eq(c, cors)))
                .map(|(m, _)| m)
                .collect();
            allow_methods.push((Arc::clone(cors), allow(&sharing)));
        }
        (!allow_methods.is_empty()).then(|| Self {
            methods: methods.into_boxed_slice(),
            allow_methods: allow_methods.into_boxed_slice(),
        })
    }

    /// The `Access-Control-Allow-Methods` of `cors`, one of this route's policies.
    fn methods_of(&self, cors: &Cors) -> Option<HeaderValue> {
        self.allow_methods
            .iter()
            .find(|(c, _)| std::ptr::eq(Arc::as_ptr(c), cors))
            .map(|(_, v)| v.clone())
    }

    /// The policy of the operation serving `method` (`HEAD` is served by `GET` unless declared).
    fn policy(&self, method: &Method) -> Option<&Cors> {
        let find = |m: &Method| self.methods.iter().find(|(declared, _)| declared == m);
        let entry = match find(method) {
            None if method == Method::HEAD => find(&Method::GET),
            found => found,
        };
        entry?.1.as_deref()
    }

    /// The answer to a preflight with `headers` (see the module docs); `request_id` is for the log.
    pub fn answer(&self, headers: &HeaderMap, request_id: &HeaderValue) -> Response {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let out = response.headers_mut();
        out.insert(VARY, PREFLIGHT_VARY);
        if let Err(refusal) = self.admit(headers, out) {
            // Like the request's log line: no header value, only what identifies the request and the outcome.
            tracing::debug!(
                request_id = request_id.to_str().unwrap_or(""),
                reason = refusal.reason(),
                "CORS preflight refused"
            );
        }
        response
    }

    /// Writes the CORS headers of an admitted preflight into `out`; writes nothing for a refused one.
    fn admit(&self, headers: &HeaderMap, out: &mut HeaderMap) -> Result<(), Refusal> {
        let method = single(headers, &ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|m| Method::from_bytes(m.as_bytes()).ok())
            .ok_or(Refusal::Method)?;
        let cors = self.policy(&method).ok_or(Refusal::Method)?;
        let origin = single(headers, &ORIGIN)
            .filter(|origin| cors.allows(origin.as_bytes()))
            .ok_or(Refusal::Origin)?;
        let allow_headers = cors.allowed_request_headers(headers)?;
        out.insert(
            ACCESS_CONTROL_ALLOW_ORIGIN,
            if cors.any_origin { ANY_ORIGIN } else { origin.clone() },
        );
        if let Some(methods) = self.methods_of(cors) {
            out.insert(ACCESS_CONTROL_ALLOW_METHODS, methods);
        }
        if let Some(allow_headers) = allow_headers {
            out.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers);
        }
        if cors.spec.allow_credentials {
            out.insert(ACCESS_CONTROL_ALLOW_CREDENTIALS, TRUE);
        }
        if let Some(max_age) = &cors.max_age {
            out.insert(ACCESS_CONTROL_MAX_AGE, max_age.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    static SITES: CorsSpec = CorsSpec {
        allow_origins: &[
            OriginSpec::Exact("https://app.example.com"),
            OriginSpec::Wildcard {
                prefix: "https://",
                suffix: ".example.org",
            },
            OriginSpec::Wildcard {
                prefix: "http://",
                suffix: ".local.test:8080",
            },
        ],
        allow_headers: &["content-type", "x-trace"],
        expose_headers: &["x-request-id", "ratelimit-remaining"],
        allow_credentials: false,
        max_age: Some(Duration::from_secs(600)),
    };

    static CREDENTIALS: CorsSpec = CorsSpec {
        allow_origins: &[OriginSpec::Exact("https://app.example.com")],
        allow_headers: &["authorization", "*"],
        expose_headers: &[],
        allow_credentials: true,
        max_age: None,
    };

    static ANY: CorsSpec = CorsSpec {
        allow_origins: &[OriginSpec::Any],
        allow_headers: &["*"],
        expose_headers: &["x-request-id"],
        allow_credentials: false,
        max_age: None,
    };

    static NULL: CorsSpec = CorsSpec {
        allow_origins: &[OriginSpec::Exact("null")],
        allow_headers: &[],
        expose_headers: &[],
        allow_credentials: false,
        max_age: None,
    };

    fn cors(spec: &'static CorsSpec) -> Arc<Cors> {
        Arc::new(Cors::new(spec).expect("a valid policy"))
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn values<'a>(map: &'a HeaderMap, name: &str) -> Vec<&'a str> {
        map.get_all(name).iter().map(|v| v.to_str().expect("ascii")).collect()
    }

    #[test]
    fn exact_origins_match_case_insensitively_and_nothing_else() {
        let policy = cors(&SITES);
        assert!(policy.allows(b"https://app.example.com"));
        assert!(policy.allows(b"HTTPS://App.Example.COM"));
        for other in [
            "https://app.example.com:443",
            "http://app.example.com",
            "https://app.example.com.evil.com",
            "https://app.example.co",
            "https://xapp.example.com",
            "null",
            "",
        ] {
            assert!(!policy.allows(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn a_wildcard_stands_for_whole_dns_labels() {
        let policy = cors(&SITES);
        for admitted in [
            "https://a.example.org",
            "https://a.b.example.org",
            "https://x-1.example.org",
            "https://A.Example.ORG",
            "http://dev.local.test:8080",
        ] {
            assert!(policy.allows(admitted.as_bytes()), "{admitted}");
        }
        for refused in [
            "https://example.org",
            "https://.example.org",
            "https://a..example.org",
            "https://evil-example.org",
            "http://a.example.org",
            "https://a.example.org.evil.com",
            "https://a.example.org:8443",
            "https://evil.com/.example.org",
            "https://user@a.example.org",
            "https://evil.com:1@a.example.org",
            "https://a_b.example.org",
            "https://a.example.org.",
            "http://dev.local.test",
            "http://dev.local.test:80800",
            "https://é.example.org",
            "null",
        ] {
            assert!(!policy.allows(refused.as_bytes()), "{refused}");
        }
        let long = format!("https://{}.example.org", "a".repeat(64));
        assert!(!policy.allows(long.as_bytes()));
    }

    #[test]
    fn null_is_admitted_only_when_listed() {
        assert!(!cors(&ANY).allows(b"null"));
        assert!(cors(&ANY).allows(b"https://anything.example"));
        assert!(cors(&NULL).allows(b"null"));
        assert!(!cors(&NULL).allows(b"https://app.example.com"));
    }

    #[test]
    fn policies_the_runtime_cannot_honour_are_refused() {
        static STAR_WITH_CREDENTIALS: CorsSpec = CorsSpec {
            allow_origins: &[OriginSpec::Any],
            allow_headers: &[],
            expose_headers: &[],
            allow_credentials: true,
            max_age: None,
        };
        assert!(matches!(
            Cors::new(&STAR_WITH_CREDENTIALS),
            Err(CorsError::AnyWithCredentials)
        ));
        static PARTIAL_LABEL: CorsSpec = CorsSpec {
            allow_origins: &[OriginSpec::Wildcard {
                prefix: "https://api-",
                suffix: ".example.com",
            }],
            allow_headers: &[],
            expose_headers: &[],
            allow_credentials: false,
            max_age: None,
        };
        assert!(matches!(Cors::new(&PARTIAL_LABEL), Err(CorsError::Wildcard { .. })));
        static BAD_HEADER: CorsSpec = CorsSpec {
            allow_origins: &[],
            allow_headers: &[],
            expose_headers: &["x bad"],
            allow_credentials: false,
            max_age: None,
        };
        assert!(matches!(
            Cors::new(&BAD_HEADER),
            Err(CorsError::HeaderName {
                list: "expose_headers",
                ..
            })
        ));
    }

    #[test]
    fn policies_are_prepared_once_each() {
        let mut policies = Policies::new(None);
        let a = policies.prepare(&SITES).expect("valid");
        let b = policies.prepare(&SITES).expect("valid");
        let c = policies.prepare(&ANY).expect("valid");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    fn applied(reply: &CorsReply, upstream: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut response = headers(upstream);
        reply.apply(&mut response);
        response
    }

    #[test]
    fn an_admitted_origin_is_echoed_with_vary_and_exposed_headers() {
        let reply = cors(&SITES).reply(&headers(&[("origin", "https://a.example.org")]));
        assert!(reply.admitted());
        let out = applied(&reply, &[("content-type", "application/json")]);
        assert_eq!(out["access-control-allow-origin"], "https://a.example.org");
        assert_eq!(
            out["access-control-expose-headers"],
            "x-request-id, ratelimit-remaining"
        );
        assert!(!out.contains_key("access-control-allow-credentials"));
        assert_eq!(values(&out, "vary"), ["Origin"]);
    }

    #[test]
    fn vary_is_appended_to_the_upstreams_and_upstream_cors_headers_are_replaced() {
        let reply = cors(&SITES).reply(&headers(&[("origin", "https://app.example.com")]));
        let out = applied(
            &reply,
            &[
                ("vary", "Accept-Encoding"),
                ("access-control-allow-origin", "*"),
                ("access-control-allow-methods", "GET"),
                ("access-control-allow-credentials", "true"),
                ("x-kept", "1"),
            ],
        );
        assert_eq!(values(&out, "vary"), ["Accept-Encoding", "Origin"]);
        assert_eq!(values(&out, "access-control-allow-origin"), ["https://app.example.com"]);
        assert!(!out.contains_key("access-control-allow-methods"));
        assert!(!out.contains_key("access-control-allow-credentials"));
        assert_eq!(out["x-kept"], "1");
        // An upstream that varies on the origin already (or on everything) gets no second `Origin`.
        for vary in ["accept-encoding, origin", "*"] {
            let mut upstream = HeaderMap::new();
            upstream.insert(VARY, HeaderValue::from_static(vary));
            reply.apply(&mut upstream);
            assert_eq!(values(&upstream, "vary"), [vary]);
        }
    }

    #[test]
    fn an_origin_not_admitted_gets_only_vary() {
        for request in [
            headers(&[("origin", "https://evil.example")]),
            headers(&[]),
            headers(&[
                ("origin", "https://app.example.com"),
                ("origin", "https://evil.example"),
            ]),
        ] {
            let reply = cors(&SITES).reply(&request);
            assert!(!reply.admitted());
            let out = applied(&reply, &[("access-control-allow-origin", "*")]);
            assert_eq!(values(&out, "vary"), ["Origin"]);
            assert!(
                out.keys().all(|name| !name.as_str().starts_with("access-control-")),
                "{out:?}"
            );
        }
    }

    #[test]
    fn star_is_the_same_answer_for_every_request_without_vary() {
        for request in [
            headers(&[("origin", "https://anything.example")]),
            headers(&[("origin", "null")]),
            headers(&[]),
        ] {
            let out = applied(&cors(&ANY).reply(&request), &[]);
            assert_eq!(out["access-control-allow-origin"], "*");
            assert_eq!(out["access-control-expose-headers"], "x-request-id");
            assert!(!out.contains_key("vary"));
        }
    }

    #[test]
    fn credentials_are_announced_with_an_echoed_origin_never_star() {
        let out = applied(
            &cors(&CREDENTIALS).reply(&headers(&[("origin", "https://app.example.com")])),
            &[],
        );
        assert_eq!(out["access-control-allow-origin"], "https://app.example.com");
        assert_eq!(out["access-control-allow-credentials"], "true");
        assert!(!out.contains_key("access-control-expose-headers"));
        assert_eq!(values(&out, "vary"), ["Origin"]);
        let out = applied(
            &cors(&CREDENTIALS).reply(&headers(&[("origin", "https://other.example.com")])),
            &[],
        );
        assert!(!out.contains_key("access-control-allow-credentials"));
        assert!(!out.contains_key("access-control-allow-origin"));
    }

    /// A route with GET and POST under `SITES`, PUT under `CREDENTIALS` and DELETE without a policy.
    fn route() -> Preflight {
        let sites = cors(&SITES);
        Preflight::new(
            vec![
                (Method::GET, Some(Arc::clone(&sites))),
                (Method::POST, Some(sites)),
                (Method::PUT, Some(cors(&CREDENTIALS))),
                (Method::DELETE, None),
            ],
            crate::router::allow_header,
        )
        .expect("a route with policies")
    }

    fn preflight(route: &Preflight, request: &[(&'static str, &'static str)]) -> Response {
        route.answer(&headers(request), &HeaderValue::from_static("test"))
    }

    fn cors_headers(response: &Response) -> Vec<(&str, &str)> {
        let mut found: Vec<(&str, &str)> = response
            .headers()
            .iter()
            .filter(|(name, _)| name.as_str().starts_with("access-control-"))
            .map(|(name, value)| (name.as_str(), value.to_str().expect("ascii")))
            .collect();
        found.sort_unstable();
        found
    }

    #[test]
    fn a_route_without_policies_has_no_preflight() {
        assert!(Preflight::new(vec![(Method::GET, None)], crate::router::allow_header).is_none());
    }

    #[test]
    fn an_admitted_preflight_lists_the_methods_sharing_its_policy_and_the_policys_headers() {
        let response = preflight(
            &route(),
            &[
                ("origin", "https://a.example.org"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "Content-Type, x-trace"),
            ],
        );
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            cors_headers(&response),
            [
                ("access-control-allow-headers", "content-type, x-trace"),
                ("access-control-allow-methods", "GET, HEAD, POST"),
                ("access-control-allow-origin", "https://a.example.org"),
                ("access-control-max-age", "600"),
            ]
        );
        assert_eq!(
            response.headers()["vary"],
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        );
    }

    #[test]
    fn head_asks_about_the_get_operation() {
        let response = preflight(
            &route(),
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "HEAD"),
            ],
        );
        assert_eq!(
            response.headers()["access-control-allow-origin"],
            "https://app.example.com"
        );
    }

    #[test]
    fn the_policy_is_the_one_of_the_operation_asked_about() {
        // PUT allows credentials and `authorization`, but not the other policy's origins.
        let response = preflight(
            &route(),
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "authorization"),
            ],
        );
        assert_eq!(
            cors_headers(&response),
            [
                ("access-control-allow-credentials", "true"),
                ("access-control-allow-headers", "authorization, *"),
                ("access-control-allow-methods", "PUT"),
                ("access-control-allow-origin", "https://app.example.com"),
            ]
        );
        let response = preflight(
            &route(),
            &[
                ("origin", "https://a.example.org"),
                ("access-control-request-method", "PUT"),
            ],
        );
        assert!(cors_headers(&response).is_empty());
        // With credentials, `*` is the literal name, not any header.
        let response = preflight(
            &route(),
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PUT"),
                ("access-control-request-headers", "x-other"),
            ],
        );
        assert!(cors_headers(&response).is_empty());
    }

    #[test]
    fn refused_preflights_are_204_without_cors_headers() {
        for request in [
            // A method without a policy, one not on the path, none or garbage.
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "DELETE"),
            ][..],
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "PATCH"),
            ],
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "get"),
            ],
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "G E T"),
            ],
            // An origin not admitted.
            &[
                ("origin", "https://evil.example"),
                ("access-control-request-method", "GET"),
            ],
            &[("origin", "null"), ("access-control-request-method", "GET")],
            &[
                ("origin", "https://evil-example.org"),
                ("access-control-request-method", "GET"),
            ],
            // A header not allowed.
            &[
                ("origin", "https://app.example.com"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "content-type, authorization"),
            ],
        ] {
            let response = preflight(&route(), request);
            assert_eq!(response.status(), StatusCode::NO_CONTENT);
            assert!(cors_headers(&response).is_empty(), "{request:?}");
            assert_eq!(
                response.headers()["vary"],
                "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
            );
        }
    }

    #[test]
    fn star_policies_answer_star_and_echo_the_requested_headers() {
        let route =
            Preflight::new(vec![(Method::GET, Some(cors(&ANY)))], crate::router::allow_header).expect("a policy");
        let response = preflight(
            &route,
            &[
                ("origin", "https://anything.example"),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization, x-custom"),
            ],
        );
        assert_eq!(
            cors_headers(&response),
            [
                ("access-control-allow-headers", "authorization, x-custom"),
                ("access-control-allow-methods", "GET, HEAD"),
                ("access-control-allow-origin", "*"),
            ]
        );
        // Without requested headers there is nothing to allow.
        let response = preflight(
            &route,
            &[
                ("origin", "https://anything.example"),
                ("access-control-request-method", "GET"),
            ],
        );
        assert!(!response.headers().contains_key("access-control-allow-headers"));
        // `null` is not admitted by `*`.
        let response = preflight(&route, &[("origin", "null"), ("access-control-request-method", "GET")]);
        assert!(cors_headers(&response).is_empty());
    }

    #[test]
    fn only_options_with_origin_and_a_requested_method_is_a_preflight() {
        let both = headers(&[
            ("origin", "https://a.example"),
            ("access-control-request-method", "GET"),
        ]);
        assert!(is_preflight(&Method::OPTIONS, &both));
        assert!(!is_preflight(&Method::GET, &both));
        assert!(!is_preflight(
            &Method::OPTIONS,
            &headers(&[("origin", "https://a.example")])
        ));
        assert!(!is_preflight(
            &Method::OPTIONS,
            &headers(&[("access-control-request-method", "GET")])
        ));
    }
}
