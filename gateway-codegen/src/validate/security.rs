//! Security: the schemes of `components.securitySchemes` an operation's `security` names, checked once each and
//! numbered in order of first use, and each operation's effective requirements.
//!
//! OpenAPI's semantics are kept: the list of a `security` is alternatives (any one admits), the schemes of one
//! entry must all pass, `security: []` (or an empty entry) makes an operation public, and the root `security`
//! applies wherever an operation says nothing. Schemes the gateway checks: `apiKey` (the key file, or an
//! `authorizer`), `http` bearer with a JWT verification source, `openIdConnect` (discovery), `oauth2` with a JWT
//! source, and any `http` scheme with an `authorizer`. A scheme the gateway cannot verify (`http basic`, a bearer
//! or `oauth2` scheme without a source) is presence-checked: the credential must be there, in its form, and is
//! forwarded for the upstream to verify — with a warning unless the scheme says `upstream_verifies: true`, and an
//! error under `auth_required: true` for an alternative that has nothing else.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use super::upstreams::Upstreams;
use crate::diagnostics::{Diagnostic, Diagnostics, did_you_mean};
use crate::locate::escape_segment;
use crate::model::{
    Access, ApiKeyScheme, Authorizer, Jwt, JwtKeys, KeyLocation, Presented, Requirement, Scheme, SchemeKind,
};
use crate::parse::ext::{self, MtlsSetting, SchemeExt};
use crate::parse::{ParsedOperation, ParsedSpec};

/// The name of the scheme `x-gateway: { mtls: required }` stands for (not a name a spec can give: a scheme
/// name is a map key in `components.securitySchemes`, and this one is reserved).
const MTLS_SCHEME: &str = "x-gateway.mtls";

/// Whether the spec, as written, defines `name` as a `type: mutualTLS` scheme (OpenAPI 3.1; the parse step takes
/// those out of what `openapiv3` reads, which does not know the type).
fn is_mutual_tls(spec: &ParsedSpec, name: &str) -> bool {
    spec.document
        .pointer(&format!("/components/securitySchemes/{}/type", escape_segment(name)))
        .is_some_and(|t| t == "mutualTLS")
}

/// The algorithms a JWT scheme may list: `alg` name and the runtime's variant.
const ALGORITHMS: &[(&str, &str)] = &[
    ("HS256", "Hs256"),
    ("HS384", "Hs384"),
    ("HS512", "Hs512"),
    ("RS256", "Rs256"),
    ("RS384", "Rs384"),
    ("RS512", "Rs512"),
    ("PS256", "Ps256"),
    ("PS384", "Ps384"),
    ("PS512", "Ps512"),
    ("ES256", "Es256"),
    ("ES384", "Es384"),
    ("EdDSA", "EdDsa"),
];

/// Headers a scheme may not set on the upstream request besides those the gateway frames or manages
/// ([`super::transforms::MANAGED`]): credentials, the body's type, and the forwarding headers.
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "cookie",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
];

/// An operation's effective security.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OpSecurity {
    /// Alternatives of requirements; empty: not checked by the gateway.
    pub alternatives: Vec<Vec<Requirement>>,
    /// Why, for the auth table.
    pub access: Access,
}

/// The schemes in use, checked once each.
pub(super) struct Security {
    schemes: Vec<Scheme>,
    resolved: HashMap<String, Option<usize>>,
    auth_required: bool,
    spec_dir: Option<std::path::PathBuf>,
}

impl Security {
    pub(super) fn new(spec: &ParsedSpec, spec_dir: Option<&Path>) -> Self {
        Self {
            schemes: Vec::new(),
            resolved: HashMap::new(),
            auth_required: spec.root.auth_required.unwrap_or(false),
            spec_dir: spec_dir.map(Path::to_owned),
        }
    }

    /// The schemes operations use, in order of first use.
    pub(super) fn finish(self) -> Vec<Scheme> {
        self.schemes
    }

    /// The schemes so far (for checks that look a scheme up by index).
    pub(super) fn schemes(&self) -> &[Scheme] {
        &self.schemes
    }

    /// The operation's effective security, and the `auth_required` check; `mtls: required` adds a client
    /// certificate to every alternative (and makes an open operation need one).
    pub(super) fn operation(
        &mut self,
        spec: &ParsedSpec,
        op: &ParsedOperation,
        upstreams: &Upstreams,
        diags: &mut Diagnostics,
    ) -> OpSecurity {
        let mut security = self.declared(spec, op, upstreams, diags);
        let mtls = super::inherited(op, "mtls", |e| e.mtls.as_ref());
        if let Some((_, MtlsSetting::Required)) = mtls {
            let index = self.mtls_scheme();
            let certificate = Requirement {
                scheme: index,
                scopes: Vec::new(),
            };
            if security.alternatives.is_empty() {
                security.alternatives.push(Vec::new());
            }
            for alternative in &mut security.alternatives {
                alternative.push(certificate.clone());
            }
            security.access = Access::Checked;
        }
        security
    }

    /// The scheme `x-gateway: { mtls: required }` stands for, added on first use.
    fn mtls_scheme(&mut self) -> usize {
        if let Some(Some(index)) = self.resolved.get(MTLS_SCHEME) {
            return *index;
        }
        self.schemes.push(Scheme {
            name: MTLS_SCHEME.to_owned(),
            kind: SchemeKind::MutualTls,
        });
        let index = self.schemes.len() - 1;
        self.resolved.insert(MTLS_SCHEME.to_owned(), Some(index));
        index
    }

    /// What the operation's (or the document's) `security` says.
    fn declared(
        &mut self,
        spec: &ParsedSpec,
        op: &ParsedOperation,
        upstreams: &Upstreams,
        diags: &mut Diagnostics,
    ) -> OpSecurity {
        let (at, requirements) = match (&op.operation.security, &spec.openapi.security) {
            (Some(own), _) => (format!("{}/security", op.pointer), own),
            (None, Some(global)) => (String::from("/security"), global),
            (None, None) => {
                if self.auth_required {
                    diags.push(
                        Diagnostic::error(
                            &op.pointer,
                            format!("{} {} has no security requirement, and `auth_required` is on", op.method, op.template),
                        )
                        .related("/x-gateway/auth_required", "required here")
                        .help("add `security: [{ SCHEME: [] }]` to the operation (or a root `security`), or `security: []` to make it public on purpose"),
                    );
                }
                return OpSecurity {
                    alternatives: Vec::new(),
                    access: Access::Open,
                };
            }
        };
        if requirements.is_empty() || requirements.iter().any(indexmap::IndexMap::is_empty) {
            return OpSecurity {
                alternatives: Vec::new(),
                access: Access::Public,
            };
        }
        let mut alternatives = Vec::new();
        let mut unverified = false;
        for (i, requirement) in requirements.iter().enumerate() {
            let mut all = Vec::new();
            let mut failed = false;
            for (name, scopes) in requirement {
                let entry_at = format!("{at}/{i}/{}", escape_segment(name));
                match self.resolve(spec, name, &entry_at, upstreams, diags) {
                    Some(index) => {
                        let scheme = &self.schemes[index];
                        // Scopes belong to token schemes: checked for JWTs, left with the token to the upstream
                        // for presence-checked ones (OAuth 2 without a source).
                        if !scopes.is_empty()
                            && matches!(scheme.kind, SchemeKind::ApiKey(_) | SchemeKind::Authorizer(_))
                        {
                            diags.push(
                                Diagnostic::error(
                                    &entry_at,
                                    format!(
                                        "security scheme `{name}` is checked by {}, which has no scopes, but scopes are listed here",
                                        match scheme.kind {
                                            SchemeKind::ApiKey(_) => "API key",
                                            _ => "an authorizer",
                                        }
                                    ),
                                )
                                .help(format!("write `{name}: []`; scopes apply to bearer, OpenID Connect and OAuth 2 schemes")),
                            );
                            failed = true;
                        }
                        all.push(Requirement {
                            scheme: index,
                            scopes: scopes.clone(),
                        });
                    }
                    None => failed = true,
                }
            }
            // An alternative whose every scheme is only presence-checked lets any credential of the right form
            // through the gateway: under `auth_required` that must be said explicitly on the schemes.
            let only_presence = all
                .iter()
                .all(|r| matches!(&self.schemes[r.scheme].kind, SchemeKind::Presented(p) if !p.acknowledged));
            unverified |= !all.is_empty() && only_presence;
            if !failed && !all.is_empty() {
                alternatives.push(all);
            }
        }
        if unverified && self.auth_required {
            diags.push(
                    Diagnostic::error(
                        &at,
                        format!(
                            "{} {} accepts a security scheme the gateway cannot verify (it only checks that a credential is presented), and `auth_required` is on",
                            op.method, op.template
                        ),
                    )
                    .related("/x-gateway/auth_required", "required here")
                    .help("give the scheme a verification source (`x-gateway: { jwks_url: … }` or an `authorizer`), or say `upstream_verifies: true` on it"),
                );
        }
        OpSecurity {
            alternatives,
            access: Access::Checked,
        }
    }

    /// The scheme `name`, checked and numbered on first use: its index in the scheme table, or `None` when it is
    /// undefined or invalid (reported once).
    fn resolve(
        &mut self,
        spec: &ParsedSpec,
        name: &str,
        at: &str,
        upstreams: &Upstreams,
        diags: &mut Diagnostics,
    ) -> Option<usize> {
        if let Some(resolved) = self.resolved.get(name) {
            return *resolved;
        }
        let schemes = spec.openapi.components.as_ref().map(|c| &c.security_schemes);
        let resolved = match schemes.and_then(|s| s.get(name)) {
            Some(openapiv3::ReferenceOr::Item(scheme)) => {
                self.check_scheme(name, scheme, upstreams, diags).map(|kind| {
                    self.schemes.push(Scheme {
                        name: name.to_owned(),
                        kind,
                    });
                    self.schemes.len() - 1
                })
            }
            None if is_mutual_tls(spec, name) => {
                self.schemes.push(Scheme {
                    name: name.to_owned(),
                    kind: SchemeKind::MutualTls,
                });
                Some(self.schemes.len() - 1)
            }
            Some(openapiv3::ReferenceOr::Reference { .. }) => {
                diags.push(
                    Diagnostic::error(
                        at,
                        format!("security scheme `{name}` is a `$ref`, which is not supported here"),
                    )
                    .help("define the scheme inline under `components.securitySchemes`"),
                );
                None
            }
            None => {
                let known: Vec<&str> = schemes
                    .map(|s| s.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let d = Diagnostic::error(at, format!("security scheme `{name}` is not defined"));
                diags.push(match did_you_mean(name, known.iter().copied()) {
                    Some(best) => d.help(format!("did you mean `{best}`?")),
                    None => d.help(format!("define it under `components.securitySchemes.{name}`")),
                });
                None
            }
        };
        self.resolved.insert(name.to_owned(), resolved);
        resolved
    }

    /// How the scheme is checked; `None`: invalid (reported).
    fn check_scheme(
        &self,
        name: &str,
        scheme: &openapiv3::SecurityScheme,
        upstreams: &Upstreams,
        diags: &mut Diagnostics,
    ) -> Option<SchemeKind> {
        use openapiv3::SecurityScheme as S;
        let at = format!("/components/securitySchemes/{}", escape_segment(name));
        let ext_at = format!("{at}/{}", ext::EXTENSION);
        let extensions = match scheme {
            S::APIKey { extensions, .. }
            | S::HTTP { extensions, .. }
            | S::OAuth2 { extensions, .. }
            | S::OpenIDConnect { extensions, .. } => extensions,
        };
        let (ext, has_ext) = match extensions.get(ext::EXTENSION) {
            None => (SchemeExt::default(), false),
            Some(value) => (parse_ext(name, value, &ext_at, diags)?, true),
        };
        let jwt_keys = jwt_keys_given(&ext);
        let mut ok = true;
        if ext.authorizer.is_some() && matches!(scheme, S::OpenIDConnect { .. } | S::OAuth2 { .. }) {
            diags.push(
                Diagnostic::error(format!("{ext_at}/authorizer"), format!("security scheme `{name}` is verified as a JWT; an authorizer decides on `apiKey` and `http` schemes"))
                    .help("remove `authorizer`, or make the scheme `type: apiKey` (or `http`) for the authorizer's credential"),
            );
            return None;
        }
        let kind = match scheme {
            S::APIKey {
                location,
                name: key_name,
                ..
            } => {
                ok &= refuse_keys(&ext_at, &jwt_keys, "an `apiKey` scheme", diags);
                let credential = ApiKeyScheme {
                    scheme: name.to_owned(),
                    location: match location {
                        openapiv3::APIKeyLocation::Header => KeyLocation::Header,
                        openapiv3::APIKeyLocation::Query => KeyLocation::Query,
                        openapiv3::APIKeyLocation::Cookie => KeyLocation::Cookie,
                    },
                    name: key_name.clone(),
                    forward: ext.forward_credentials.unwrap_or(false),
                };
                match &ext.authorizer {
                    Some(authorizer) => check_authorizer(
                        authorizer,
                        credential,
                        &format!("{ext_at}/authorizer"),
                        upstreams,
                        diags,
                    )
                    .map(SchemeKind::Authorizer),
                    None => Some(SchemeKind::ApiKey(credential)),
                }
            }
            S::HTTP { .. } if ext.authorizer.is_some() => {
                ok &= refuse_keys(&ext_at, &jwt_keys, "a scheme with an `authorizer`", diags);
                let credential = ApiKeyScheme {
                    scheme: name.to_owned(),
                    location: KeyLocation::Header,
                    name: String::from("authorization"),
                    forward: ext.forward_credentials.unwrap_or(false),
                };
                ext.authorizer.as_ref().and_then(|authorizer| {
                    check_authorizer(
                        authorizer,
                        credential,
                        &format!("{ext_at}/authorizer"),
                        upstreams,
                        diags,
                    )
                    .map(SchemeKind::Authorizer)
                })
            }
            S::HTTP { scheme: http, .. } if http.eq_ignore_ascii_case("bearer") => {
                if !has_ext || (ext.upstream_verifies == Some(true) && jwt_keys.is_empty()) {
                    return Some(presented(
                        name,
                        &at,
                        "http bearer",
                        "Bearer",
                        &ext,
                        "give it `x-gateway: { jwks_url: …, issuer: …, audience: … }` (or `jwks_file`, or `secret_env` for HS256)",
                        diags,
                    ));
                }
                if !has_source(&ext) {
                    diags.push(
                        Diagnostic::error(&ext_at, format!("bearer scheme `{name}` has no verification source"))
                            .help("add one of `jwks_url: https://…/jwks.json`, `jwks_file: keys/jwks.json` or `secret_env: JWT_SECRET` (HS256)"),
                    );
                    return None;
                }
                self.check_jwt(name, &ext, &ext_at, None, diags).map(SchemeKind::Jwt)
            }
            S::HTTP { scheme: http, .. } => {
                if has_ext && !jwt_keys.is_empty() {
                    diags.push(
                        Diagnostic::error(&at, format!("security scheme `{name}` is `http {http}`, but its `x-gateway` configures JWT verification"))
                            .help("JWTs are bearer tokens: set `scheme: bearer`"),
                    );
                    return None;
                }
                return Some(presented(
                    name,
                    &at,
                    &format!("http {http}"),
                    http,
                    &ext,
                    "give it an `x-gateway.authorizer` that checks the credential",
                    diags,
                ));
            }
            S::OpenIDConnect {
                open_id_connect_url, ..
            } => {
                if ext.jwks_url.is_some() || ext.jwks_file.is_some() || ext.secret_env.is_some() {
                    diags.push(
                        Diagnostic::error(&ext_at, format!("OpenID Connect scheme `{name}` takes its keys from `openIdConnectUrl`"))
                            .help("remove `jwks_url`/`jwks_file`/`secret_env`, or make the scheme `type: http, scheme: bearer`"),
                    );
                    return None;
                }
                if !check_url(open_id_connect_url, &format!("{at}/openIdConnectUrl"), diags) {
                    return None;
                }
                self.check_jwt(name, &ext, &ext_at, Some(open_id_connect_url), diags)
                    .map(SchemeKind::Jwt)
            }
            S::OAuth2 { .. } => {
                if !has_source(&ext) && jwt_keys.is_empty() {
                    return Some(presented(
                        name,
                        &at,
                        "oauth2",
                        "Bearer",
                        &ext,
                        "if its access tokens are JWTs, give it `x-gateway: { jwks_url: …, issuer: … }`",
                        diags,
                    ));
                }
                self.check_jwt(name, &ext, &ext_at, None, diags).map(SchemeKind::Jwt)
            }
        };
        if !ok {
            return None;
        }
        kind
    }

    /// The JWT settings of scheme `name`; `discovery` is an OpenID Connect scheme's URL.
    fn check_jwt(
        &self,
        name: &str,
        ext: &SchemeExt,
        at: &str,
        discovery: Option<&str>,
        diags: &mut Diagnostics,
    ) -> Option<Jwt> {
        let mut ok = true;
        if ext.forward_credentials.is_some() {
            diags.push(
                Diagnostic::error(
                    format!("{at}/forward_credentials"),
                    "a bearer scheme forwards its token with `forward_authorization`",
                )
                .help("write `forward_authorization: true`"),
            );
            ok = false;
        }
        let sources: Vec<&str> = [
            ext.jwks_file.as_ref().map(|_| "jwks_file"),
            ext.jwks_url.as_ref().map(|_| "jwks_url"),
            ext.secret_env.as_ref().map(|_| "secret_env"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if sources.len() > 1 {
            diags.push(
                Diagnostic::error(
                    at,
                    format!(
                        "scheme `{name}` has {} verification sources; it takes one",
                        sources.join(" and ")
                    ),
                )
                .help("keep one of `jwks_file`, `jwks_url` and `secret_env`"),
            );
            return None;
        }
        let hmac = ext.secret_env.is_some();
        let algorithms = match &ext.algorithms {
            None => vec![if hmac { "Hs256" } else { "Rs256" }],
            Some(list) => {
                let mut out = Vec::new();
                for (i, alg) in list.iter().enumerate() {
                    let alg_at = format!("{at}/algorithms/{i}");
                    match ALGORITHMS.iter().find(|(n, _)| n == alg) {
                        Some((written, variant)) => {
                            if written.starts_with("HS") != hmac {
                                let d = if hmac {
                                    Diagnostic::error(&alg_at, format!("`{alg}` verifies with a public key, but this scheme has an HMAC `secret_env`"))
                                        .help("list only HS256, HS384 or HS512 with `secret_env`")
                                } else {
                                    Diagnostic::error(&alg_at, format!("`{alg}` is an HMAC algorithm: it needs `secret_env`, not a key set"))
                                        .help("set `secret_env: VAR` (and no JWKS) for HS256/384/512; a key set verifies RS*, PS*, ES* and EdDSA")
                                };
                                diags.push(d);
                                ok = false;
                            } else if !out.contains(variant) {
                                out.push(*variant);
                            }
                        }
                        None if alg.eq_ignore_ascii_case("none") => {
                            diags.push(
                                Diagnostic::error(&alg_at, "`none` means unsigned tokens, which anyone can forge")
                                    .help("list the algorithms your issuer signs with, e.g. RS256"),
                            );
                            ok = false;
                        }
                        None => {
                            let d = Diagnostic::error(&alg_at, format!("unknown JWT algorithm `{alg}`"));
                            diags.push(match did_you_mean(alg, ALGORITHMS.iter().map(|(n, _)| *n)) {
                                Some(best) => d.help(format!("did you mean `{best}`?")),
                                None => d.help("use one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA"),
                            });
                            ok = false;
                        }
                    }
                }
                if list.is_empty() {
                    diags.push(
                        Diagnostic::error(format!("{at}/algorithms"), "`algorithms` is empty")
                            .help("list at least one, e.g. `[RS256]`"),
                    );
                    ok = false;
                }
                out
            }
        };
        let keys = if let Some(var) = &ext.secret_env {
            let valid = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                diags.push(
                    Diagnostic::error(
                        format!("{at}/secret_env"),
                        format!("`{var}` is not an environment variable name"),
                    )
                    .help("use letters, digits and `_`, e.g. `JWT_SECRET`"),
                );
                ok = false;
            }
            JwtKeys::SecretEnv(var.clone())
        } else if let Some(url) = &ext.jwks_url {
            ok &= check_url(url, &format!("{at}/jwks_url"), diags);
            JwtKeys::JwksUrl(url.clone())
        } else if let Some(file) = &ext.jwks_file {
            match self.read_jwks(file, &format!("{at}/jwks_file"), &algorithms, diags) {
                Some(jwks) => JwtKeys::Jwks(jwks),
                None => return None,
            }
        } else if let Some(url) = discovery {
            JwtKeys::Discovery(url.to_owned())
        } else {
            diags.push(
                Diagnostic::error(at, format!("scheme `{name}` has no verification source"))
                    .help("add one of `jwks_url`, `jwks_file` or `secret_env`"),
            );
            return None;
        };
        let mut claims_headers = Vec::new();
        for (header, claim) in ext.claims_headers.iter().flatten() {
            let header_at = format!("{at}/claims_headers/{}", escape_segment(header));
            ok &= check_forwarded_header(header, &header_at, diags);
            if claim.is_empty() || claim.split('.').any(str::is_empty) {
                diags.push(
                    Diagnostic::error(&header_at, format!("`{claim}` is not a claim name"))
                        .help("name a claim, e.g. `sub`, or a nested one with dots, e.g. `realm_access.roles`"),
                );
                ok = false;
            }
            claims_headers.push((header.clone(), claim.clone()));
        }
        if let Some(issuer) = &ext.issuer
            && issuer.is_empty()
        {
            diags.push(
                Diagnostic::error(format!("{at}/issuer"), "`issuer` is empty")
                    .help("write the `iss` your tokens carry, or remove the key"),
            );
            ok = false;
        }
        let audiences = ext.audience.as_ref().map(ext::OneOrMany::values).unwrap_or_default();
        if audiences.is_empty() && !hmac {
            // Providers sign every application's tokens with the same keys: without an audience, a token issued to
            // any of them is accepted here.
            diags.push(
                Diagnostic::warning(at, format!("scheme `{name}` accepts tokens issued for any audience: a token the provider issued to another application would be accepted"))
                    .help("set `audience:` to this API's identifier at the provider (a string or a list)"),
            );
        }
        if audiences.iter().any(String::is_empty) {
            diags.push(Diagnostic::error(format!("{at}/audience"), "an audience is empty"));
            ok = false;
        }
        ok.then(|| Jwt {
            issuer: ext.issuer.clone(),
            audiences,
            algorithms,
            keys,
            leeway: ext.leeway.map_or(Duration::ZERO, |l| l.0),
            forward_authorization: ext.forward_authorization.unwrap_or(false),
            claims_headers,
        })
    }

    /// Reads and checks a JWKS file (relative to the spec); its compact JSON is built in.
    fn read_jwks(&self, file: &str, at: &str, algorithms: &[&str], diags: &mut Diagnostics) -> Option<String> {
        let path = match &self.spec_dir {
            Some(dir) => dir.join(file),
            None => Path::new(file).to_owned(),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) => {
                diags.push(
                    Diagnostic::error(at, format!("cannot read the JWKS file `{}`: {err}", path.display()))
                        .help("the path is relative to the spec file's directory"),
                );
                return None;
            }
        };
        let problem = |message: String| {
            Diagnostic::error(at, format!("`{file}` is not a usable JWKS: {message}"))
                .help("a JWKS is `{ \"keys\": [ { \"kty\": \"RSA\", \"kid\": …, \"n\": …, \"e\": … } ] }` (RFC 7517)")
        };
        let value: serde_json::Value = match serde_json::from_str(&text) {
            Ok(value) => value,
            Err(err) => {
                diags.push(problem(format!("not JSON ({err})")));
                return None;
            }
        };
        let Some(keys) = value.get("keys").and_then(serde_json::Value::as_array) else {
            diags.push(problem(String::from("it has no `keys` array")));
            return None;
        };
        let mut usable = 0;
        for (i, key) in keys.iter().enumerate() {
            let kty = key.get("kty").and_then(serde_json::Value::as_str).unwrap_or("");
            let needs: &[&str] = match kty {
                "RSA" => &["n", "e"],
                "EC" => &["crv", "x", "y"],
                "OKP" => &["crv", "x"],
                _ => {
                    diags.push(problem(format!(
                        "key #{} has `kty` `{kty}`; expected RSA, EC or OKP",
                        i + 1
                    )));
                    return None;
                }
            };
            if let Some(missing) = needs
                .iter()
                .find(|m| key.get(**m).and_then(serde_json::Value::as_str).is_none())
            {
                diags.push(problem(format!("key #{} ({kty}) has no `{missing}`", i + 1)));
                return None;
            }
            if key.get("d").is_some() {
                diags.push(problem(format!(
                    "key #{} holds a private key (`d`); a gateway needs only public keys",
                    i + 1
                )));
                return None;
            }
            let fits = algorithms.iter().any(|alg| match kty {
                "RSA" => alg.starts_with("Rs") || alg.starts_with("Ps"),
                "EC" => alg.starts_with("Es"),
                _ => *alg == "EdDsa",
            });
            usable += usize::from(fits);
        }
        if usable == 0 {
            diags.push(problem(String::from(
                "none of its keys can verify the scheme's algorithms",
            )));
            return None;
        }
        Some(value.to_string())
    }
}

/// The JWT keys written on a scheme.
fn jwt_keys_given(ext: &SchemeExt) -> Vec<&'static str> {
    [
        ext.issuer.as_ref().map(|_| "issuer"),
        ext.audience.as_ref().map(|_| "audience"),
        ext.algorithms.as_ref().map(|_| "algorithms"),
        ext.jwks_file.as_ref().map(|_| "jwks_file"),
        ext.jwks_url.as_ref().map(|_| "jwks_url"),
        ext.secret_env.as_ref().map(|_| "secret_env"),
        ext.leeway.as_ref().map(|_| "leeway"),
        ext.forward_authorization.as_ref().map(|_| "forward_authorization"),
        ext.claims_headers.as_ref().map(|_| "claims_headers"),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Whether the scheme names where its JWT keys come from.
fn has_source(ext: &SchemeExt) -> bool {
    ext.jwks_file.is_some() || ext.jwks_url.is_some() || ext.secret_env.is_some()
}

/// JWT keys on a scheme that is not a JWT scheme: one error each.
fn refuse_keys(at: &str, given: &[&str], what: &str, diags: &mut Diagnostics) -> bool {
    for key in given {
        diags.push(
            Diagnostic::error(
                format!("{at}/{key}"),
                format!("`{key}` configures JWT verification, which {what} does not do"),
            )
            .help("JWT keys go on `type: http, scheme: bearer`, `openIdConnect` or `oauth2` schemes"),
        );
    }
    given.is_empty()
}

/// A scheme the gateway cannot verify: it requires the credential to be presented (`Authorization: <scheme> …`)
/// and forwards it for the upstream to verify. Warned about unless the scheme says `upstream_verifies: true`.
#[allow(clippy::too_many_arguments)]
fn presented(
    name: &str,
    at: &str,
    kind: &str,
    auth_scheme: &str,
    ext: &SchemeExt,
    fix: &str,
    diags: &mut Diagnostics,
) -> SchemeKind {
    let acknowledged = ext.upstream_verifies == Some(true);
    if !acknowledged {
        diags.push(
            Diagnostic::warning(at, format!("security scheme `{name}` ({kind}) is not verified by the gateway: it only requires that the credential be presented, and forwards it to the upstream, which must verify it"))
                .help(format!("{fix}; or say `x-gateway: {{ upstream_verifies: true }}` to make this choice explicit")),
        );
    }
    SchemeKind::Presented(Presented {
        auth_scheme: auth_scheme.to_owned(),
        acknowledged,
    })
}

fn parse_ext(name: &str, value: &serde_json::Value, at: &str, diags: &mut Diagnostics) -> Option<SchemeExt> {
    match serde_path_to_error::deserialize::<_, SchemeExt>(value) {
        Ok(parsed) => Some(parsed),
        Err(e) => {
            let path = e.path().to_string();
            let message = e.into_inner().to_string();
            let at = if path == "." {
                at.to_owned()
            } else {
                format!("{at}/{}", path.replace('.', "/"))
            };
            diags.push(
                Diagnostic::error(
                    at,
                    format!("invalid `x-gateway` on security scheme `{name}`: {message}"),
                )
                .help("see docs/x-gateway.md, \"Security schemes\", for the keys each type of scheme takes"),
            );
            None
        }
    }
}

fn check_url(url: &str, at: &str, diags: &mut Diagnostics) -> bool {
    match url::Url::parse(url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") && parsed.has_host() => true,
        _ => {
            diags.push(
                Diagnostic::error(at, format!("`{url}` is not an absolute http(s) URL"))
                    .help("write the full URL, e.g. `https://auth.example.com/.well-known/jwks.json`"),
            );
            false
        }
    }
}

/// A header the gateway sets on the upstream request from what it verified.
fn check_forwarded_header(header: &str, at: &str, diags: &mut Diagnostics) -> bool {
    let lower = header.to_ascii_lowercase();
    let reserved = RESERVED_HEADERS.contains(&lower.as_str()) || super::transforms::MANAGED.contains(&lower.as_str());
    if http::HeaderName::from_bytes(header.as_bytes()).is_ok() && !reserved {
        return true;
    }
    diags.push(
        Diagnostic::error(at, format!("`{header}` cannot carry a verified value to the upstream"))
            .help("use a header name of your own, e.g. `X-User-Id` (framing, routing and credential headers are the gateway's)"),
    );
    false
}

fn check_authorizer(
    authorizer: &ext::AuthorizerExt,
    credential: ApiKeyScheme,
    at: &str,
    upstreams: &Upstreams,
    diags: &mut Diagnostics,
) -> Option<Authorizer> {
    let mut ok = true;
    let upstream = upstreams.named(&authorizer.upstream);
    if upstream.is_none() {
        let d = Diagnostic::error(
            format!("{at}/upstream"),
            format!("upstream `{}` is not defined", authorizer.upstream),
        );
        diags.push(match did_you_mean(&authorizer.upstream, upstreams.names()) {
            Some(best) => d.help(format!("did you mean `{best}`?")),
            None => d.help(format!(
                "define it under the top-level `x-gateway.upstreams.{}`",
                authorizer.upstream
            )),
        });
        ok = false;
    }
    let path = authorizer.path.clone().unwrap_or_else(|| String::from("/"));
    if !path.starts_with('/') || path.contains(['?', '#']) || path.chars().any(|c| c.is_whitespace()) {
        diags.push(
            Diagnostic::error(format!("{at}/path"), format!("`{path}` is not a path"))
                .help("write an absolute path without a query, e.g. `/check`"),
        );
        ok = false;
    }
    let mut forward_headers = Vec::new();
    let mut seen = HashSet::new();
    for (i, header) in authorizer.forward_headers.iter().flatten().enumerate() {
        ok &= check_forwarded_header(header, &format!("{at}/forward_headers/{i}"), diags);
        if seen.insert(header.to_ascii_lowercase()) {
            forward_headers.push(header.to_ascii_lowercase());
        }
    }
    Some(Authorizer {
        credential,
        upstream: upstream?,
        path,
        cache_ttl: authorizer.cache.as_ref().map_or(Duration::ZERO, |c| c.ttl.0),
        forward_headers,
    })
    .filter(|_| ok)
}
