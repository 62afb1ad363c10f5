//! Response caching: the effective policy of each operation, its key, and the cache-safety rule.

use std::time::Duration;

use super::{DEFAULT_CACHE_CAPACITY, DEFAULT_CACHE_MAX_ENTRY, location_name};
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::model::{CacheKeyPart, CachePolicy, CacheSettings, Invalidate, Requirement, Scheme, SchemeKind};
use crate::parse::ext::{self, CacheExt};
use crate::parse::{ParsedOperation, ParsedSpec};
use crate::template::{self, Namespace};

/// API-wide cache sizes from the top level.
pub(super) fn cache_settings(spec: &ParsedSpec) -> CacheSettings {
    let root = spec.root.cache.as_ref();
    CacheSettings {
        capacity: root.and_then(|c| c.capacity).map_or(DEFAULT_CACHE_CAPACITY, |s| s.0),
        max_entry: root.and_then(|c| c.max_entry).map_or(DEFAULT_CACHE_MAX_ENTRY, |s| s.0),
    }
}

/// The effective cache policy of an operation: each setting from the operation, else its path item, else the
/// top level. Checks the key against the declared parameters and the cache-safety rule for identified callers.
///
/// `security` is what the gateway enforces for the operation: a key part counts as a caller identity only if it is
/// filled for every request the gateway admits.
pub(super) fn check_cache(
    spec: &ParsedSpec,
    op: &ParsedOperation,
    security: &[Vec<Requirement>],
    schemes: &[Scheme],
    diags: &mut Diagnostics,
) -> Option<CachePolicy> {
    let levels: Vec<(String, &CacheExt)> = [
        op.op_ext
            .as_ref()
            .and_then(|(at, e)| e.cache.as_ref().map(|c| (format!("{at}/cache"), c))),
        op.path_ext
            .as_ref()
            .and_then(|(at, e)| e.cache.as_ref().map(|c| (format!("{at}/cache"), c))),
        spec.root.cache.as_ref().map(|c| (String::from("/x-gateway/cache"), c)),
    ]
    .into_iter()
    .flatten()
    .collect();
    // API-wide sizes belong to the top level only.
    for (at, c) in levels.iter().filter(|(at, _)| !at.starts_with("/x-gateway")) {
        for (key, set) in [("capacity", c.capacity.is_some()), ("max_entry", c.max_entry.is_some())] {
            if set {
                diags.push(
                    Diagnostic::error(format!("{at}/{key}"), format!("`cache.{key}` is API-wide")).help(format!(
                        "set it under the top-level `x-gateway: {{ cache: {{ {key}: ... }} }}`"
                    )),
                );
            }
        }
    }
    // The first level that sets a field wins, with the pointer where it is written.
    fn pick<'c, T>(
        levels: &'c [(String, &'c CacheExt)],
        field: impl Fn(&'c CacheExt) -> Option<&'c T>,
    ) -> Option<(&'c str, &'c T)> {
        levels.iter().find_map(|(at, c)| field(c).map(|v| (at.as_str(), v)))
    }
    let ttl = pick(&levels, |c| c.ttl.as_ref()).map_or(Duration::ZERO, |(_, t)| t.0);
    if ttl.is_zero() {
        return None;
    }
    let mut ok = true;

    let mut key = Vec::new();
    if let Some((at, entries)) = pick(&levels, |c| c.key.as_ref()) {
        for (i, entry) in entries.iter().enumerate() {
            match cache_key_part(op, entry) {
                Ok(Some(part)) => key.push(part),
                Ok(None) => {}
                Err(d) => {
                    diags.push(d.relocate(format!("{at}/key/{i}")));
                    ok = false;
                }
            }
        }
    }

    let statuses = match pick(&levels, |c| c.statuses.as_ref()) {
        Some((at, statuses)) => {
            for (i, status) in statuses.iter().enumerate() {
                if !(100..=599).contains(status) {
                    diags.push(Diagnostic::error(
                        format!("{at}/statuses/{i}"),
                        format!("{status} is not an HTTP status code"),
                    ));
                    ok = false;
                }
            }
            statuses.clone()
        }
        None => vec![200],
    };

    let methods = match pick(&levels, |c| c.methods.as_ref()) {
        Some((at, methods)) => {
            let mut out = Vec::new();
            for (i, m) in methods.iter().enumerate() {
                let upper = m.to_ascii_uppercase();
                if !["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(&upper.as_str()) {
                    diags.push(
                        Diagnostic::error(
                            format!("{at}/methods/{i}"),
                            format!("`{m}` is not a method that can be cached"),
                        )
                        .help("use GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS"),
                    );
                    ok = false;
                }
                out.push(upper);
            }
            out
        }
        None => vec![String::from("GET"), String::from("HEAD")],
    };
    if !methods.iter().any(|m| m == op.method) {
        diags.push(
            Diagnostic::warning(
                &op.pointer,
                format!(
                    "{} {} has a cache TTL, but {} is not among the cached methods ({}); it is not cached",
                    op.method,
                    op.template,
                    op.method,
                    methods.join(", ")
                ),
            )
            .help(format!(
                "add `methods: [{}]` to its cache settings to cache it",
                op.method
            )),
        );
        return None;
    }

    let invalidate = match pick(&levels, |c| c.invalidate.as_ref()).map(|(_, i)| *i) {
        None | Some(ext::Invalidate::None) => Invalidate::None,
        Some(ext::Invalidate::Any) => Invalidate::Any,
        Some(ext::Invalidate::ApiKey) => Invalidate::ApiKey,
    };

    // One tenant must never be served another tenant's cached data. A key part is an identity only if it is filled
    // for every admitted request: `context.api_key` is when every alternative the gateway enforces has an API key,
    // `jwt.claims.X` when every alternative has a JWT (a token without the claim is not cached at all). Neither is
    // filled for callers of schemes the gateway passes to the upstream unchecked.
    let shared = pick(&levels, |c| c.shared.as_ref()).is_some_and(|(_, s)| *s);
    let every = |fits: fn(&SchemeKind) -> bool| {
        !security.is_empty()
            && security
                .iter()
                .all(|alt| alt.iter().any(|r| schemes.get(r.scheme).is_some_and(|s| fits(&s.kind))))
    };
    let key_filled = every(|k| matches!(k, SchemeKind::ApiKey(_)));
    let claims_filled = every(|k| matches!(k, SchemeKind::Jwt(_)));
    let keyed_by_api_key = key.iter().any(|k| matches!(k, CacheKeyPart::ApiKey));
    let keyed_by_claim = key.iter().any(|k| matches!(k, CacheKeyPart::JwtClaim(_)));
    let identified = (keyed_by_api_key && key_filled) || (keyed_by_claim && claims_filled);
    let unfilled = [
        (
            keyed_by_api_key && !key_filled,
            "`context.api_key`",
            "an API key",
            "require an `apiKey` scheme in every alternative",
        ),
        (
            keyed_by_claim && !claims_filled,
            "`jwt.claims.…`",
            "a JWT",
            "require a bearer or OpenID Connect scheme in every alternative",
        ),
    ];
    for (missing, part, credential, fix) in unfilled {
        if missing && requires_identity(spec, op) && !shared {
            let at = levels.first().map_or_else(|| op.pointer.clone(), |(at, _)| at.clone());
            diags.push(
                Diagnostic::error(at, format!("{} {}: the cache key part {part} is not filled for every caller the gateway admits, because not every alternative of the operation's `security` is {credential} the gateway checks; those callers would share one entry", op.method, op.template))
                    .help(format!("{fix}, set `cache.shared: true` if every caller may see the same answer, or do not cache the operation")),
            );
            return None;
        }
    }
    // A key part already refused is reported once, not again as a missing identity.
    if ok && requires_identity(spec, op) && !identified && !shared {
        let at = levels.first().map_or_else(|| op.pointer.clone(), |(at, _)| at.clone());
        diags.push(
            Diagnostic::error(at, format!("{} {} requires a caller identity (`security`), but its cache key does not hold one: one caller could be served another's cached response", op.method, op.template))
                .help("add `context.api_key` or a claim such as `jwt.claims.sub` to `cache.key`, or set `cache.shared: true` if every caller may see the same answer"),
        );
        ok = false;
    }
    ok.then_some(CachePolicy {
        ttl,
        key,
        statuses,
        methods,
        invalidate,
    })
}

/// Whether the operation's effective `security` asks for any credential.
pub(super) fn requires_identity(spec: &ParsedSpec, op: &ParsedOperation) -> bool {
    let requirements = op.operation.security.as_ref().or(spec.openapi.security.as_ref());
    requirements.is_some_and(|reqs| reqs.iter().any(|r| !r.is_empty()))
}

/// One `cache.key` entry; `Ok(None)` for entries that add nothing (path parameters are always in the key).
pub(super) fn cache_key_part(op: &ParsedOperation, entry: &str) -> Result<Option<CacheKeyPart>, Box<Diagnostic>> {
    let declared = |location: &str, name: &str, case_insensitive: bool| {
        op.params.iter().any(|(_, p)| {
            location_name(p) == location
                && if case_insensitive {
                    p.parameter_data_ref().name.eq_ignore_ascii_case(name)
                } else {
                    p.parameter_data_ref().name == name
                }
        })
    };
    let names_of = |location: &str| -> Vec<&str> {
        op.params
            .iter()
            .filter(|(_, p)| location_name(p) == location)
            .map(|(_, p)| p.parameter_data_ref().name.as_str())
            .collect()
    };
    let undeclared = |location: &str, name: &str| {
        let known = names_of(location);
        let d = Diagnostic::error(
            "",
            format!(
                "cache key `{entry}` names no declared {location} parameter of {} {}",
                op.method, op.template
            ),
        );
        match did_you_mean(name, known.iter().copied()) {
            Some(best) => d.help(format!("did you mean `{location}.{best}`?")),
            None => d.help(format!(
                "declare `{name}` under the operation's `parameters:` with `in: {location}`, or remove it from the key"
            )),
        }
    };
    let qualified = template::qualify(entry).map_err(|e| Box::new(Diagnostic::error("", e)))?;
    let part = match qualified {
        (Namespace::Query, name) if declared("query", name, false) => Some(CacheKeyPart::Query(name.to_owned())),
        (Namespace::Query, name) => return Err(Box::new(undeclared("query", name))),
        (Namespace::Header, name) if declared("header", name, true) => {
            Some(CacheKeyPart::Header(name.to_ascii_lowercase()))
        }
        (Namespace::Header, name) => return Err(Box::new(undeclared("header", name))),
        (Namespace::Context, "api_key") => Some(CacheKeyPart::ApiKey),
        (Namespace::Context, other) => {
            return Err(Box::new(
                Diagnostic::error("", format!("`context.{other}` is not a request context value"))
                    .help("the context value for caching is `context.api_key`"),
            ));
        }
        (Namespace::JwtClaims, claim) if !claim.is_empty() && !claim.split('.').any(str::is_empty) => {
            Some(CacheKeyPart::JwtClaim(claim.to_owned()))
        }
        (Namespace::JwtClaims, claim) => {
            return Err(Box::new(
                Diagnostic::error("", format!("`jwt.claims.{claim}` names no claim"))
                    .help("name a claim, e.g. `jwt.claims.sub`, or a nested one with dots"),
            ));
        }
        // Path parameters are always in the key; naming one adds nothing.
        (Namespace::Path, name) if entry.starts_with("path.") && declared("path", name, false) => None,
        (Namespace::Path, name) if entry.starts_with("path.") => return Err(Box::new(undeclared("path", name))),
        (Namespace::Path | Namespace::Stage | Namespace::Error, _) => {
            return Err(Box::new(
                Diagnostic::error("", format!("cache key `{entry}` is not a request value"))
                    .help("write `query.NAME`, `header.NAME` or `context.api_key`"),
            ));
        }
    };
    Ok(part)
}
