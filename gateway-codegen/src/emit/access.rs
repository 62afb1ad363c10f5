//! `ACCESS.md`: every operation and who may call it, so that a reviewer sees the gateway's effective auth (and
//! CORS) in one table, and a change to it in one diff.

use std::fmt::Write as _;

use crate::model::{Access, Api, Cors, JwtKeys, Operation, Origin, SchemeKind};

/// The table, in Markdown.
pub(super) fn access_md(api: &Api) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Who may call `{}`\n", api.name);
    let _ = writeln!(
        out,
        "Generated from `{}` — do not edit: change the spec and run `cargo xtask generate`.\n",
        api.spec_file
    );
    out.push_str("| Method | Path | Operation | Who may call | CORS |\n|---|---|---|---|---|\n");
    for op in &api.operations {
        let _ = writeln!(
            out,
            "| {} | `{}` | `{}` | {} | {} |",
            op.method,
            op.template,
            op.id,
            who(api, op),
            op.cors.as_ref().map_or_else(|| String::from("off"), cors)
        );
    }
    if !api.schemes.is_empty() {
        out.push_str("\n## Schemes\n\n| Scheme | Checked by |\n|---|---|\n");
        for scheme in &api.schemes {
            let how = match &scheme.kind {
                SchemeKind::ApiKey(key) => format!("API key in {} `{}` (key file)", location(key.location), key.name),
                SchemeKind::Jwt(jwt) => {
                    let source = match &jwt.keys {
                        JwtKeys::Jwks(_) => String::from("built-in JWKS"),
                        JwtKeys::JwksUrl(url) => format!("JWKS from `{url}`"),
                        JwtKeys::Discovery(url) => format!("OpenID Connect discovery at `{url}`"),
                        JwtKeys::SecretEnv(var) => format!("HMAC secret from `${var}`"),
                    };
                    let issuer = jwt.issuer.as_ref().map_or(String::new(), |i| format!(", issuer `{i}`"));
                    let audience = if jwt.audiences.is_empty() {
                        String::new()
                    } else {
                        format!(
                            ", audience {}",
                            jwt.audiences
                                .iter()
                                .map(|a| format!("`{a}`"))
                                .collect::<Vec<_>>()
                                .join(" or ")
                        )
                    };
                    format!(
                        "JWT bearer token ({}), {source}{issuer}{audience}",
                        jwt.algorithms.join(", ").to_ascii_uppercase()
                    )
                }
                SchemeKind::Authorizer(a) => format!(
                    "authorizer `{}{}` on {} `{}`{}",
                    api.upstreams.get(a.upstream).map_or("?", |u| u.name.as_str()),
                    a.path,
                    location(a.credential.location),
                    a.credential.name,
                    if a.cache_ttl.is_zero() {
                        String::new()
                    } else {
                        format!(", answers cached {}", humantime::format_duration(a.cache_ttl))
                    }
                ),
            };
            let _ = writeln!(out, "| `{}` | {how} |", scheme.name);
        }
    }
    out
}

fn who(api: &Api, op: &Operation) -> String {
    match op.access {
        Access::Open => String::from("anyone (no `security`)"),
        Access::Public => String::from("anyone (`security: []`)"),
        Access::Upstream => {
            String::from("anyone, as far as the gateway knows (a scheme it cannot check: left to the upstream)")
        }
        Access::Checked => op
            .security
            .iter()
            .map(|alternative| {
                alternative
                    .iter()
                    .map(|r| {
                        let name = api.schemes.get(r.scheme).map_or("?", |s| s.name.as_str());
                        if r.scopes.is_empty() {
                            format!("`{name}`")
                        } else {
                            format!(
                                "`{name}` with {}",
                                r.scopes.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
                            )
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" and ")
            })
            .collect::<Vec<_>>()
            .join(" or "),
    }
}

fn cors(cors: &Cors) -> String {
    let origins: Vec<String> = cors
        .allow_origins
        .iter()
        .map(|o| match o {
            Origin::Any => String::from("`*`"),
            Origin::Exact(origin) => format!("`{origin}`"),
            Origin::Wildcard(prefix, suffix) => format!("`{prefix}*{suffix}`"),
        })
        .collect();
    let credentials = if cors.allow_credentials {
        ", with credentials"
    } else {
        ""
    };
    format!("{}{credentials}", origins.join(", "))
}

fn location(location: crate::model::KeyLocation) -> &'static str {
    match location {
        crate::model::KeyLocation::Header => "header",
        crate::model::KeyLocation::Query => "query parameter",
        crate::model::KeyLocation::Cookie => "cookie",
    }
}
