//! JWTs for tests, minted with the fixture keys of `tests/fixtures/jwt/` (see its README), and the malformed or
//! forged tokens an attacker would send.
//!
//! ```no_run
//! use gateway_tests::tokens::Token;
//! use serde_json::json;
//!
//! let good = Token::rs256("rsa-1")
//!     .issuer("https://auth.example.com/")
//!     .audience("petstore")
//!     .subject("alice")
//!     .scope("pets:read pets:write")
//!     .claim("tenant_id", json!("t-1"))
//!     .expires_in(60)
//!     .sign();
//! let expired = Token::es256("ec-1").expires_in(-120).sign();
//! let none = Token::rs256("rsa-1").subject("alice").alg_none(); // `alg: none`, empty signature
//! let impostor = Token::rs256("rsa-2").kid("rsa-1").sign(); // signed with rsa-2, claims to be rsa-1
//! let confused = Token::alg_confusion("rsa-1").sign(); // HS256 keyed with rsa-1's public PEM
//! # let _ = (good, expired, none, impostor, confused);
//! ```
//!
//! Every token starts with `iat` = now and `exp` = now + [`DEFAULT_TTL`] seconds; everything else is the test's.
//! The keys are read from disk when a token is signed, found from `CARGO_MANIFEST_DIR`, so the helpers work from any
//! current directory.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};

/// Seconds from now to a new token's `exp`.
pub const DEFAULT_TTL: i64 = 300;

/// The key id of the demo key (`specs/keys/demo-private.pem`, RS256), in `specs/keys/jwks.json`.
pub const DEMO_KID: &str = "demo-1";

/// The path of a file of `tests/fixtures/jwt/` (keys and key sets).
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/jwt")
        .join(name)
}

/// The text of a file of `tests/fixtures/jwt/` (panics, naming the file, when it cannot be read).
pub fn fixture_text(name: &str) -> String {
    let path = fixture(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `jwks.json`: the public keys `rsa-1` (RS256) and `ec-1` (ES256).
pub fn jwks() -> String {
    fixture_text("jwks.json")
}

/// `jwks-rotated.json`: the key set after a rotation, which has `rsa-2`.
pub fn jwks_rotated() -> String {
    fixture_text("jwks-rotated.json")
}

/// The demo key set, `specs/keys/jwks.json` (the one the example petstore gateway is built with).
pub fn demo_jwks() -> String {
    let path = demo_key_dir().join("jwks.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn demo_key_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../specs/keys")
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

/// `now() + secs` (`secs` may be negative), as a JSON number for a time claim.
fn at(secs: i64) -> Value {
    let now = i64::try_from(now()).expect("the time fits an i64");
    json!(now.saturating_add(secs))
}

/// base64url (no padding) of a JSON value's compact text: one segment of a JWT, for hand-built tokens.
pub fn segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// What signs a token.
#[derive(Clone, Debug)]
enum Key {
    /// A private key in a PEM file (PKCS#8 for EC).
    Pem(PathBuf),
    /// An HMAC secret.
    Secret(Vec<u8>),
}

/// A token being built: a key and algorithm, a header `kid`, and claims. [`Token::sign`] makes the JWT.
#[derive(Clone, Debug)]
#[must_use = "a token does nothing until it is signed"]
pub struct Token {
    key: Key,
    alg: Algorithm,
    kid: Option<String>,
    claims: Map<String, Value>,
}

impl Token {
    /// A token with `key` and `alg`, `kid` in its header, and the default claims (`iat`, `exp`).
    pub fn with_pem(alg: Algorithm, pem: impl Into<PathBuf>, kid: Option<&str>) -> Self {
        Self::new(Key::Pem(pem.into()), alg, kid)
    }

    fn new(key: Key, alg: Algorithm, kid: Option<&str>) -> Self {
        let mut claims = Map::new();
        claims.insert("iat".to_owned(), at(0));
        claims.insert("exp".to_owned(), at(DEFAULT_TTL));
        Self {
            key,
            alg,
            kid: kid.map(str::to_owned),
            claims,
        }
    }

    /// RS256 with the fixture key `<kid>.pem` (`rsa-1` or `rsa-2`), `kid` in the header.
    pub fn rs256(kid: &str) -> Self {
        Self::with_pem(Algorithm::RS256, fixture(&format!("{kid}.pem")), Some(kid))
    }

    /// ES256 with the fixture key `<kid>.pem` (`ec-1`), `kid` in the header.
    pub fn es256(kid: &str) -> Self {
        Self::with_pem(Algorithm::ES256, fixture(&format!("{kid}.pem")), Some(kid))
    }

    /// HS256 with `secret`; no `kid` (add one with [`Token::kid`]).
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        Self::new(Key::Secret(secret.as_ref().to_vec()), Algorithm::HS256, None)
    }

    /// RS256 with the demo key (`specs/keys/demo-private.pem`, kid [`DEMO_KID`]), as `cargo xtask token` mints.
    pub fn demo() -> Self {
        Self::with_pem(
            Algorithm::RS256,
            demo_key_dir().join("demo-private.pem"),
            Some(DEMO_KID),
        )
    }

    /// Attack: signed with the fixture key `signing_key` but naming `claimed_kid` in its header (RS256), e.g.
    /// `Token::impostor("rsa-2", "rsa-1")`. The same as `Token::rs256(signing_key).kid(claimed_kid)`.
    pub fn impostor(signing_key: &str, claimed_kid: &str) -> Self {
        Self::rs256(signing_key).kid(claimed_kid)
    }

    /// Attack (algorithm confusion): HS256 whose HMAC secret is the bytes of the public PEM `<kid>.pub.pem`, with
    /// `kid` in the header. A verifier that takes the algorithm from the token and the key bytes from its key set
    /// would accept it.
    pub fn alg_confusion(kid: &str) -> Self {
        let pem = fixture_text(&format!("{kid}.pub.pem"));
        Self::hs256(pem).kid(kid)
    }

    /// Sets the header's `kid` (whatever key signs the token).
    pub fn kid(mut self, kid: &str) -> Self {
        self.kid = Some(kid.to_owned());
        self
    }

    /// Leaves `kid` out of the header.
    pub fn no_kid(mut self) -> Self {
        self.kid = None;
        self
    }

    /// Sets claim `name` to `value` (replacing it, default claims too).
    pub fn claim(mut self, name: &str, value: Value) -> Self {
        self.claims.insert(name.to_owned(), value);
        self
    }

    /// Removes claim `name` (e.g. `without("exp")` for a token that never expires).
    pub fn without(mut self, name: &str) -> Self {
        self.claims.shift_remove(name);
        self
    }

    /// `iss`.
    pub fn issuer(self, iss: &str) -> Self {
        self.claim("iss", json!(iss))
    }

    /// `aud` as one string.
    pub fn audience(self, aud: &str) -> Self {
        self.claim("aud", json!(aud))
    }

    /// `aud` as an array of strings.
    pub fn audiences(self, aud: &[&str]) -> Self {
        self.claim("aud", json!(aud))
    }

    /// `sub`.
    pub fn subject(self, sub: &str) -> Self {
        self.claim("sub", json!(sub))
    }

    /// `scope`, space-separated as in RFC 8693 (`"pets:read pets:write"`).
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", json!(scope))
    }

    /// `exp` = now + `secs` (negative: already expired).
    pub fn expires_in(self, secs: i64) -> Self {
        self.claim("exp", at(secs))
    }

    /// `nbf` = now + `secs` (positive: not valid yet).
    pub fn not_before_in(self, secs: i64) -> Self {
        self.claim("nbf", at(secs))
    }

    /// `iat` = now + `secs` (positive: issued in the future).
    pub fn issued_in(self, secs: i64) -> Self {
        self.claim("iat", at(secs))
    }

    /// The claims so far.
    pub fn claims(&self) -> &Map<String, Value> {
        &self.claims
    }

    /// The signed JWT (panics, naming the key, when the key cannot be read or does not fit the algorithm).
    pub fn sign(&self) -> String {
        let key = match &self.key {
            Key::Secret(secret) => EncodingKey::from_secret(secret),
            Key::Pem(path) => {
                let pem = std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
                let key = match self.alg {
                    Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(&pem),
                    Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
                    _ => EncodingKey::from_rsa_pem(&pem),
                };
                key.unwrap_or_else(|e| panic!("{} is not a {:?} private key: {e}", path.display(), self.alg))
            }
        };
        let mut header = Header::new(self.alg);
        header.kid.clone_from(&self.kid);
        jsonwebtoken::encode(&header, &self.claims, &key)
            .unwrap_or_else(|e| panic!("cannot sign a {:?} token: {e}", self.alg))
    }

    /// Attack: the same claims with the header `{"alg":"none","typ":"JWT"}` and an empty signature
    /// (`header.payload.`).
    pub fn alg_none(&self) -> String {
        let header = json!({ "alg": "none", "typ": "JWT" });
        format!("{}.{}.", segment(&header), segment(&Value::Object(self.claims.clone())))
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};

    use super::*;

    fn key_set(text: &str) -> JwkSet {
        serde_json::from_str(text).expect("a JWKS")
    }

    /// Verifies `token` with the key of `set` named by its `kid`, as a careful gateway would.
    fn verify(token: &str, set: &JwkSet, alg: Algorithm) -> Result<Map<String, Value>, String> {
        let header = decode_header(token).map_err(|e| e.to_string())?;
        let kid = header.kid.ok_or("no kid")?;
        let jwk = set.find(&kid).ok_or_else(|| format!("no key {kid}"))?;
        let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
        let mut validation = Validation::new(alg);
        validation.validate_aud = false;
        validation.validate_nbf = true;
        decode::<Map<String, Value>>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(|e| e.to_string())
    }

    fn parts(token: &str) -> (Value, Value, String) {
        let mut it = token.split('.');
        let mut json = || {
            let bytes = URL_SAFE_NO_PAD
                .decode(it.next().expect("a segment"))
                .expect("base64url");
            serde_json::from_slice::<Value>(&bytes).expect("JSON")
        };
        let (header, payload) = (json(), json());
        let signature = it.next().expect("a signature segment").to_owned();
        assert!(it.next().is_none(), "three segments");
        (header, payload, signature)
    }

    #[test]
    fn rs256_and_es256_tokens_verify_with_the_fixture_key_set() {
        let set = key_set(&jwks());
        let token = Token::rs256("rsa-1")
            .issuer("https://auth.example.com/")
            .audience("petstore")
            .subject("alice")
            .scope("pets:read pets:write")
            .claim("tenant_id", json!(7))
            .sign();
        let claims = verify(&token, &set, Algorithm::RS256).expect("verifies");
        assert_eq!(claims["iss"], "https://auth.example.com/");
        assert_eq!(claims["aud"], "petstore");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["scope"], "pets:read pets:write");
        assert_eq!(claims["tenant_id"], 7);

        let token = Token::es256("ec-1").subject("bob").sign();
        assert_eq!(verify(&token, &set, Algorithm::ES256).expect("verifies")["sub"], "bob");
        assert_eq!(parts(&token).0, json!({ "typ": "JWT", "alg": "ES256", "kid": "ec-1" }));
    }

    #[test]
    fn the_rotated_key_is_only_in_the_rotated_set() {
        let token = Token::rs256("rsa-2").sign();
        verify(&token, &key_set(&jwks_rotated()), Algorithm::RS256).expect("verifies after the rotation");
        assert_eq!(
            verify(&token, &key_set(&jwks()), Algorithm::RS256),
            Err("no key rsa-2".to_owned())
        );
    }

    #[test]
    fn default_times_and_their_changes() {
        let before = now();
        let token = Token::hs256("secret");
        let iat = token.claims()["iat"].as_u64().expect("iat");
        let exp = token.claims()["exp"].as_u64().expect("exp");
        assert!(iat >= before && iat <= now());
        assert_eq!(exp - iat, 300);
        assert_eq!(token.claims().keys().collect::<Vec<_>>(), ["iat", "exp"]);

        let token = Token::hs256("secret").expires_in(-60).not_before_in(30).without("iat");
        let exp = token.claims()["exp"].as_i64().expect("exp");
        let nbf = token.claims()["nbf"].as_i64().expect("nbf");
        assert_eq!(nbf - exp, 90);
        assert!(!token.claims().contains_key("iat"));
        assert_eq!(
            Token::hs256("s").audiences(&["a", "b"]).claims()["aud"],
            json!(["a", "b"])
        );
    }

    #[test]
    fn expired_and_early_tokens_fail_verification() {
        let set = key_set(&jwks());
        let expired = Token::rs256("rsa-1").expires_in(-600).sign();
        assert!(verify(&expired, &set, Algorithm::RS256).is_err_and(|e| e.contains("Expired")));
        let early = Token::rs256("rsa-1").not_before_in(600).sign();
        assert!(verify(&early, &set, Algorithm::RS256).is_err_and(|e| e.contains("Immature")));
    }

    #[test]
    fn hs256_verifies_with_its_secret_and_has_no_kid() {
        let token = Token::hs256("s3cret").subject("carol").sign();
        assert_eq!(parts(&token).0, json!({ "typ": "JWT", "alg": "HS256" }));
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        let data =
            decode::<Map<String, Value>>(&token, &DecodingKey::from_secret(b"s3cret"), &validation).expect("verifies");
        assert_eq!(data.claims["sub"], "carol");
        assert!(decode::<Map<String, Value>>(&token, &DecodingKey::from_secret(b"other"), &validation).is_err());
    }

    #[test]
    fn alg_none_is_hand_built_with_an_empty_signature() {
        let token = Token::rs256("rsa-1").subject("mallory").alg_none();
        assert!(token.starts_with("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."), "{token}");
        assert!(token.ends_with('.'));
        let (header, payload, signature) = parts(&token);
        assert_eq!(header.to_string(), r#"{"alg":"none","typ":"JWT"}"#);
        assert_eq!(payload["sub"], "mallory");
        assert!(payload["exp"].is_u64());
        assert_eq!(signature, "");
    }

    #[test]
    fn an_impostor_names_a_key_that_did_not_sign_it() {
        let token = Token::impostor("rsa-2", "rsa-1").sign();
        assert_eq!(parts(&token).0["kid"], "rsa-1");
        let error = verify(&token, &key_set(&jwks()), Algorithm::RS256).expect_err("refused");
        assert!(error.contains("InvalidSignature"), "{error}");
        let by_kid = Token::es256("ec-1").kid("rsa-1").sign();
        assert_eq!(parts(&by_kid).0["kid"], "rsa-1");
        assert!(parts(&Token::rs256("rsa-1").no_kid().sign()).0.get("kid").is_none());
    }

    #[test]
    fn alg_confusion_is_hs256_keyed_with_the_public_pem() {
        let token = Token::alg_confusion("rsa-1").sign();
        assert_eq!(parts(&token).0, json!({ "typ": "JWT", "alg": "HS256", "kid": "rsa-1" }));
        let pem = fixture_text("rsa-1.pub.pem");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_aud = false;
        decode::<Map<String, Value>>(&token, &DecodingKey::from_secret(pem.as_bytes()), &validation)
            .expect("the HMAC secret is the public PEM");
        // And a verifier that insists on the key's own algorithm refuses it.
        assert!(verify(&token, &key_set(&jwks()), Algorithm::RS256).is_err());
    }

    #[test]
    fn demo_tokens_verify_with_the_demo_key_set() {
        let token = Token::demo().audience("petstore").sign();
        assert_eq!(
            verify(&token, &key_set(&demo_jwks()), Algorithm::RS256).expect("verifies")["aud"],
            "petstore"
        );
    }

    #[test]
    #[should_panic(expected = "cannot read")]
    fn an_unknown_key_panics_with_its_path() {
        let _ = Token::rs256("nope").sign();
    }
}
