//! `cargo xtask token`: a bearer token for the demo, signed (RS256) with the demo key `specs/keys/demo-private.pem`,
//! kid `demo-1`, which the key set `specs/keys/jwks.json` verifies (see `specs/keys/README.md`: anyone can read
//! that key, so the token proves nothing outside the demo).
//!
//! Only the token goes to stdout, so that `TOKEN=$(cargo xtask token)` works; the hint goes to stderr.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value};

use crate::workspace_root;

/// The demo key's id in `specs/keys/jwks.json`.
pub const DEMO_KID: &str = "demo-1";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The `sub` claim. An empty value leaves the claim out (so for `--scope`, `--aud` and `--iss` too).
    #[arg(long, default_value = "demo-user")]
    pub sub: String,
    /// The `scope` claim: scopes separated by spaces.
    #[arg(long, default_value = "pets:read pets:write")]
    pub scope: String,
    /// The `aud` claim.
    #[arg(long, default_value = "petstore")]
    pub aud: String,
    /// The `iss` claim.
    #[arg(long, default_value = "https://auth.example.com/")]
    pub iss: String,
    /// How long the token is valid (`exp` = now + TTL), e.g. `15m`, `1h`, `2days`.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
    /// An extra claim, repeatable: VALUE is taken as JSON if it parses (`7`, `true`, `["a","b"]`), else as a
    /// string. It replaces a claim of the same name.
    #[arg(long = "claim", value_name = "KEY=VALUE", value_parser = parse_claim)]
    pub claims: Vec<(String, Value)>,
}

/// `KEY=VALUE` → (KEY, VALUE as JSON if it parses, else as a string).
fn parse_claim(text: &str) -> Result<(String, Value), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{text}` has no claim name before `=`"));
    }
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((key.to_owned(), value))
}

/// The demo's private key.
pub fn demo_key_path() -> PathBuf {
    workspace_root().join("specs/keys/demo-private.pem")
}

/// The claims of a token issued at `now` (seconds since the Unix epoch).
fn claims(args: &Args, now: u64) -> Map<String, Value> {
    let mut claims = Map::new();
    for (name, value) in [
        ("iss", &args.iss),
        ("sub", &args.sub),
        ("aud", &args.aud),
        ("scope", &args.scope),
    ] {
        if !value.is_empty() {
            claims.insert(name.to_owned(), Value::String(value.clone()));
        }
    }
    claims.insert("iat".to_owned(), now.into());
    claims.insert("exp".to_owned(), now.saturating_add(args.ttl.as_secs()).into());
    for (name, value) in &args.claims {
        claims.insert(name.clone(), value.clone());
    }
    claims
}

/// The token for `args`, issued at `now`, signed with the PEM private key `pem`.
fn mint(args: &Args, now: u64, pem: &[u8]) -> anyhow::Result<String> {
    let key = EncodingKey::from_rsa_pem(pem).context("the demo key is not an RSA private key in PEM")?;
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(DEMO_KID.to_owned());
    jsonwebtoken::encode(&header, &claims(args, now), &key).context("cannot sign the token")
}

/// A demo token for `args`, issued now.
pub fn demo_token(args: &Args) -> anyhow::Result<String> {
    let path = demo_key_path();
    let pem = std::fs::read(&path).with_context(|| format!("cannot read the demo key {}", path.display()))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?
        .as_secs();
    mint(args, now, &pem)
}

/// A demo token with the defaults but for `aud` and `scope`.
pub fn demo_token_for(aud: &str, scope: &str) -> anyhow::Result<String> {
    demo_token(&Args {
        sub: String::from("demo-user"),
        scope: scope.to_owned(),
        aud: aud.to_owned(),
        iss: String::from("https://auth.example.com/"),
        ttl: Duration::from_secs(600),
        claims: Vec::new(),
    })
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let token = demo_token(args)?;
    println!("{token}");
    eprintln!(
        "a demo token (RS256, kid {DEMO_KID}, valid for {}), verified by specs/keys/jwks.json; use it as\n  \
         TOKEN=$(cargo xtask token) && curl -X POST -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/pets/7/adopt",
        humantime::format_duration(args.ttl)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
    use serde_json::json;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn args(argv: &[&str]) -> Args {
        Cli::try_parse_from(std::iter::once("token").chain(argv.iter().copied()))
            .expect("valid arguments")
            .args
    }

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    /// Verifies `token` as the demo gateway would: the key of the demo JWKS its `kid` names, RS256, audience and
    /// issuer checked.
    fn verify(token: &str) -> Map<String, Value> {
        let text = std::fs::read_to_string(workspace_root().join("specs/keys/jwks.json")).expect("the demo JWKS");
        let set: JwkSet = serde_json::from_str(&text).expect("a JWKS");
        let kid = decode_header(token).expect("a JWT").kid.expect("a kid");
        let key = DecodingKey::from_jwk(set.find(&kid).expect("the kid is in the demo JWKS")).expect("a key");
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_audience(&["petstore"]);
        validation.set_issuer(&["https://auth.example.com/"]);
        decode::<Map<String, Value>>(token, &key, &validation)
            .expect("verifies")
            .claims
    }

    #[test]
    fn the_default_token_verifies_with_the_demo_key_set() {
        let pem = std::fs::read(demo_key_path()).expect("the demo key");
        let issued = now();
        let token = mint(&args(&[]), issued, &pem).expect("mints");
        let claims = verify(&token);
        assert_eq!(claims["sub"], "demo-user");
        assert_eq!(claims["scope"], "pets:read pets:write");
        assert_eq!(claims["aud"], "petstore");
        assert_eq!(claims["iss"], "https://auth.example.com/");
        assert_eq!(claims["iat"], issued);
        assert_eq!(claims["exp"], issued + 3600);
        assert_eq!(decode_header(&token).expect("a JWT").kid.as_deref(), Some(DEMO_KID));
    }

    #[test]
    fn flags_set_the_claims() {
        let args = args(&[
            "--sub",
            "alice",
            "--scope",
            "pets:read",
            "--ttl",
            "15m",
            "--claim",
            "tenant_id=42",
            "--claim",
            "roles=[\"admin\"]",
            "--claim",
            "plan=pro",
            "--claim",
            "note=a=b",
            "--claim",
            "sub=bob",
        ]);
        let claims = claims(&args, 1000);
        assert_eq!(claims["exp"], 1900);
        assert_eq!(claims["scope"], "pets:read");
        assert_eq!(claims["tenant_id"], 42);
        assert_eq!(claims["roles"], json!(["admin"]));
        assert_eq!(claims["plan"], "pro");
        assert_eq!(claims["note"], "a=b");
        assert_eq!(claims["sub"], "bob", "--claim replaces a claim of the same name");
        let pem = std::fs::read(demo_key_path()).expect("the demo key");
        assert_eq!(verify(&mint(&args, now(), &pem).expect("mints"))["tenant_id"], 42);
    }

    #[test]
    fn empty_values_leave_claims_out_and_bad_claims_are_refused() {
        let claims = claims(&args(&["--scope", "", "--sub", ""]), 0);
        assert!(!claims.contains_key("scope") && !claims.contains_key("sub"));
        assert!(claims.contains_key("aud"));
        assert!(parse_claim("no-equals").is_err());
        assert!(parse_claim("=1").is_err());
        assert_eq!(parse_claim("k=").expect("parses"), ("k".to_owned(), json!("")));
        assert_eq!(parse_claim("k=\"7\"").expect("parses"), ("k".to_owned(), json!("7")));
        assert!(mint(&args(&[]), 0, b"not a key").is_err());
    }
}
