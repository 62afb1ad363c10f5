//! CORS: the API's policy and each operation's (inherited field by field, or turned off with `cors: false`).

use std::time::Duration;

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{Cors, Origin};
use crate::parse::ParsedOperation;
use crate::parse::ext::{CorsExt, CorsSetting};

/// The policy written at the top level (checked), if any.
pub(super) fn check_root(root: Option<&CorsExt>, diags: &mut Diagnostics) -> Option<Cors> {
    root.and_then(|ext| check_policy(&merge(None, ext), "/x-gateway/cors", diags))
}

/// The operation's effective policy: its own setting, else its path item's, else the API's.
pub(super) fn check_operation(
    op: &ParsedOperation,
    root: Option<&CorsExt>,
    root_checked: Option<&Cors>,
    diags: &mut Diagnostics,
) -> Option<Cors> {
    let path = op
        .path_ext
        .as_ref()
        .and_then(|(at, e)| Some((format!("{at}/cors"), e.cors.as_ref()?)));
    let own = op
        .op_ext
        .as_ref()
        .and_then(|(at, e)| Some((format!("{at}/cors"), e.cors.as_ref()?)));
    // Layers from the top: the root's fields, then the path item's, then the operation's.
    let mut merged: Option<CorsExt> = root.cloned();
    let mut at = String::from("/x-gateway/cors");
    let mut changed = false;
    for (layer_at, setting) in [path, own].into_iter().flatten() {
        match setting {
            CorsSetting::Enabled(false) => {
                merged = None;
                changed = true;
            }
            CorsSetting::Enabled(true) => {
                if merged.is_none() {
                    diags.push(
                        Diagnostic::error(&layer_at, "`cors: true` turns on a policy, but none is defined above")
                            .help("define `x-gateway.cors: { allow_origins: [...] }` at the top level, or write the policy here"),
                    );
                    return None;
                }
            }
            CorsSetting::Policy(ext) => {
                merged = Some(merge(merged.as_ref(), ext));
                at = layer_at;
                changed = true;
            }
        }
    }
    if !changed {
        return root_checked.cloned();
    }
    merged.and_then(|m| check_policy(&m, &at, diags))
}

/// `over`'s fields where set, else `base`'s.
fn merge(base: Option<&CorsExt>, over: &CorsExt) -> CorsExt {
    let base = base.cloned().unwrap_or_default();
    CorsExt {
        allow_origins: over.allow_origins.clone().or(base.allow_origins),
        allow_headers: over.allow_headers.clone().or(base.allow_headers),
        expose_headers: over.expose_headers.clone().or(base.expose_headers),
        allow_credentials: over.allow_credentials.or(base.allow_credentials),
        max_age: over.max_age.or(base.max_age),
    }
}

fn check_policy(ext: &CorsExt, at: &str, diags: &mut Diagnostics) -> Option<Cors> {
    let mut ok = true;
    let credentials = ext.allow_credentials.unwrap_or(false);
    let Some(origins) = &ext.allow_origins else {
        diags.push(
            Diagnostic::error(at, "a CORS policy needs `allow_origins`")
                .help("list the origins that may call, e.g. `allow_origins: [https://app.example.com]`"),
        );
        return None;
    };
    if origins.is_empty() {
        diags.push(
            Diagnostic::error(format!("{at}/allow_origins"), "`allow_origins` is empty")
                .help("list at least one origin, or turn CORS off with `cors: false`"),
        );
        ok = false;
    }
    let mut allow_origins = Vec::new();
    for (i, origin) in origins.iter().enumerate() {
        let origin_at = format!("{at}/allow_origins/{i}");
        if origin == "*" {
            if credentials {
                diags.push(
                    Diagnostic::error(&origin_at, "`*` cannot be combined with `allow_credentials: true`: browsers refuse such answers")
                        .help("list the origins that may send credentials, e.g. `https://app.example.com` or `https://*.example.com`"),
                );
                ok = false;
            }
            allow_origins.push(Origin::Any);
            continue;
        }
        match check_origin(origin, &origin_at, diags) {
            Some(parsed) => allow_origins.push(parsed),
            None => ok = false,
        }
    }
    let mut headers = |list: &Option<Vec<String>>, key: &str, diags: &mut Diagnostics| -> Vec<String> {
        let mut out = Vec::new();
        for (i, header) in list.iter().flatten().enumerate() {
            // `*` is a token too: the HTTP token grammar, as `http` checks it.
            let valid = http::HeaderName::from_bytes(header.as_bytes()).is_ok();
            if !valid {
                diags.push(Diagnostic::error(
                    format!("{at}/{key}/{i}"),
                    format!("`{header}` is not a header name"),
                ));
                ok = false;
            } else if header == "*" && credentials {
                diags.push(
                    Diagnostic::error(format!("{at}/{key}/{i}"), "`*` means any header only without credentials; with `allow_credentials: true` browsers read it as a header named `*`")
                        .help("list the header names"),
                );
                ok = false;
            } else if !out.contains(&header.to_ascii_lowercase()) {
                out.push(header.to_ascii_lowercase());
            }
        }
        out
    };
    let allow_headers = headers(&ext.allow_headers, "allow_headers", diags);
    let expose_headers = headers(&ext.expose_headers, "expose_headers", diags);
    ok.then(|| Cors {
        allow_origins,
        allow_headers,
        expose_headers,
        allow_credentials: credentials,
        max_age: ext.max_age.map(|d| Duration::from_secs(d.0.as_secs().max(1))),
    })
}

/// One origin of an `allow_origins` list (`*`, `scheme://host[:port]`, `https://*.example.com`), written at `at`;
/// `None` (reported) when it is not one.
pub(super) fn check_origin(origin: &str, at: &str, diags: &mut Diagnostics) -> Option<Origin> {
    if origin == "*" {
        return Some(Origin::Any);
    }
    match parse_origin(origin) {
        Ok(parsed) => Some(parsed),
        Err(problem) => {
            diags.push(
                Diagnostic::error(at, format!("`{origin}` is not an origin: {problem}"))
                    .help("an origin is `scheme://host[:port]` with no path, e.g. `https://app.example.com`; `*` may stand for the leftmost labels: `https://*.example.com`"),
            );
            None
        }
    }
}

/// `scheme://host[:port]`, or with `*` as the leftmost labels of the host.
fn parse_origin(origin: &str) -> Result<Origin, String> {
    let lower = origin.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return Err(String::from("it has no `scheme://`"));
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    {
        return Err(format!("`{scheme}` is not a URL scheme"));
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(String::from(
            "an origin has a host and an optional port only (no path, not even `/`)",
        ));
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || rest.starts_with('[') => (host, Some(port)),
        _ => (rest, None),
    };
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) || port.parse::<u16>().is_err())
    {
        return Err(format!("`{port}` is not a port"));
    }
    let label_ok = |label: &str| !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if let Some(suffix_host) = host.strip_prefix("*.") {
        if !suffix_host.split('.').all(label_ok) || !suffix_host.contains('.') {
            return Err(String::from(
                "after `*.` comes a domain of at least two labels, e.g. `*.example.com`",
            ));
        }
        let prefix = format!("{scheme}://");
        let suffix = format!(".{}", &lower[prefix.len() + 2..]);
        return Ok(Origin::Wildcard(prefix, suffix));
    }
    if host.contains('*') {
        return Err(String::from(
            "`*` may only stand for the leftmost labels (`https://*.example.com`)",
        ));
    }
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if !bracketed && !host.split('.').all(label_ok) {
        return Err(format!("`{host}` is not a host name"));
    }
    Ok(Origin::Exact(lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse() {
        assert_eq!(
            parse_origin("https://App.Example.com"),
            Ok(Origin::Exact("https://app.example.com".into()))
        );
        assert_eq!(
            parse_origin("http://localhost:3000"),
            Ok(Origin::Exact("http://localhost:3000".into()))
        );
        assert_eq!(
            parse_origin("https://*.example.com"),
            Ok(Origin::Wildcard("https://".into(), ".example.com".into()))
        );
        assert_eq!(
            parse_origin("https://*.example.com:8443"),
            Ok(Origin::Wildcard("https://".into(), ".example.com:8443".into()))
        );
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://*.com",
            "https://a.*.example.com",
            "https://*example.com",
            "https://user@example.com",
            "https://example.com:99999",
        ] {
            assert!(parse_origin(bad).is_err(), "{bad}");
        }
    }
}
