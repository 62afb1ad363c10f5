//! Templates with `{placeholders}`: OpenAPI path templates, and the gateway's own placeholder grammar.
//!
//! One scanner serves both. In an OpenAPI path template `{name}` is a path parameter. In the gateway's strings
//! (rewrite paths today; headers and cache keys later) placeholders may be qualified — `{path.X}`, `{query.X}`,
//! `{header.X}`, `{context.X}`, `{stage.X}`, `{jwt.claims.X}` — and a bare `{X}` means `{path.X}`.

/// A piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Literal(String),
    /// A placeholder's inner text, as written.
    Placeholder(String),
}

/// Splits `text` into literals and placeholders; an unbalanced or empty brace is an error.
pub fn scan(text: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some('{') | None => return Err(format!("unbalanced `{{` in `{text}`")),
                        Some(c) => name.push(c),
                    }
                }
                if name.trim().is_empty() {
                    return Err(format!("empty placeholder `{{}}` in `{text}`"));
                }
                if !literal.is_empty() {
                    pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Placeholder(name));
            }
            '}' => return Err(format!("unbalanced `}}` in `{text}`")),
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Literal(literal));
    }
    Ok(pieces)
}

/// Where a qualified placeholder reads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// `{path.X}` (or bare `{X}`).
    Path,
    /// `{query.X}`.
    Query,
    /// `{header.X}`.
    Header,
    /// `{context.X}`.
    Context,
    /// `{stage.X}`.
    Stage,
    /// `{jwt.claims.X}`.
    JwtClaims,
    /// `{error.X}`: the gateway error being rendered (gateway responses only).
    Error,
}

impl Namespace {
    /// The prefix as written.
    pub fn prefix(self) -> &'static str {
        match self {
            Namespace::Path => "path",
            Namespace::Query => "query",
            Namespace::Header => "header",
            Namespace::Context => "context",
            Namespace::Stage => "stage",
            Namespace::JwtClaims => "jwt.claims",
            Namespace::Error => "error",
        }
    }
}

/// Splits a placeholder's text into its namespace and name; a bare name is a path parameter.
pub fn qualify(placeholder: &str) -> Result<(Namespace, &str), String> {
    const NAMESPACES: [Namespace; 7] = [
        Namespace::JwtClaims,
        Namespace::Path,
        Namespace::Query,
        Namespace::Header,
        Namespace::Context,
        Namespace::Stage,
        Namespace::Error,
    ];
    for ns in NAMESPACES {
        if let Some(name) = placeholder.strip_prefix(ns.prefix()).and_then(|r| r.strip_prefix('.')) {
            if name.is_empty() {
                return Err(format!("placeholder `{{{placeholder}}}` names no {}", ns.prefix()));
            }
            return Ok((ns, name));
        }
    }
    if let Some((prefix, _)) = placeholder.split_once('.') {
        // A dot is legal in a parameter name, so only a known-looking prefix is an error.
        if [
            "paths", "queries", "headers", "ctx", "jwt", "claims", "stages", "errors", "err",
        ]
        .contains(&prefix)
        {
            return Err(format!(
                "unknown placeholder namespace `{prefix}` in `{{{placeholder}}}`; use one of path, query, header, context, stage, jwt.claims, error"
            ));
        }
    }
    Ok((Namespace::Path, placeholder))
}

/// The part of an OpenAPI path key that is routed: a query (`?streaming`) or fragment (`#copy`) some specs add
/// to tell operations apart is not part of any request path.
pub fn routed_part(template: &str) -> &str {
    template.split(['?', '#']).next().unwrap_or(template)
}

/// The router's form of a path template: parameters renamed `p0`, `p1`, … so that templates differing only in
/// parameter names are one route (the router refuses them as a pair otherwise).
pub fn route_of(pieces: &[Piece]) -> String {
    let mut route = String::new();
    let mut index = 0;
    for piece in pieces {
        match piece {
            Piece::Literal(text) => {
                // The router reads `{`/`}` as parameter syntax; OpenAPI literals never contain them, but be exact.
                route.push_str(&text.replace('{', "{{").replace('}', "}}"));
            }
            Piece::Placeholder(_) => {
                route.push_str(&format!("{{p{index}}}"));
                index += 1;
            }
        }
    }
    route
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_and_routes() {
        let pieces = scan("/pets/{petId}/photos/{photo}.jpg").expect("valid");
        assert_eq!(route_of(&pieces), "/pets/{p0}/photos/{p1}.jpg");
        assert!(scan("/pets/{petId").is_err());
        assert!(scan("/pets/{}").is_err());
        assert!(scan("/pets/}").is_err());
    }

    #[test]
    fn qualifies_placeholders() {
        assert_eq!(qualify("petId"), Ok((Namespace::Path, "petId")));
        assert_eq!(qualify("query.limit"), Ok((Namespace::Query, "limit")));
        assert_eq!(qualify("jwt.claims.sub"), Ok((Namespace::JwtClaims, "sub")));
        assert!(qualify("headers.x").is_err());
        assert_eq!(routed_part("/pet/{id}?streaming"), "/pet/{id}");
    }
}
