//! The keys that verify a JWT scheme's tokens: parsed key sets, and the refresher that fetches them.
//!
//! A [`KeySet`] is what a verifier needs of a JWKS (or of an HMAC secret): one [`Key`] per usable entry, each
//! parsed once into a `jsonwebtoken` decoding key and tagged with its `kid`, its own `alg` (if it names one) and
//! its [`KeyType`], which says which algorithms it may verify at all. Entries that cannot verify signatures (an
//! encryption key, an unsupported curve or key type) are skipped with a warning, so that one exotic key does not
//! make a whole set unusable.
//!
//! # Fetching
//!
//! A scheme whose keys come from a URL (`jwks_url`, or the `jwks_uri` of an OpenID Connect discovery document)
//! gets a [`Remote`]: a thread of its own running a current-thread tokio runtime, which fetches the set and keeps
//! it fresh. It has its own thread because the gateway has no process-wide runtime: each worker is a per-core
//! runtime serving its own connections, and a refresher living on one of them would stall when it is busy and
//! die with it at shutdown. The thread shares only [`Shared`] with the verifier and waits on a stop channel whose
//! sender the verifier owns, so dropping the verifier stops it, even in the middle of a fetch.
//!
//! The schedule: the first fetch happens at once; the next at the response's `Cache-Control: max-age` (clamped
//! to [`MIN_REFRESH`]..[`MAX_REFRESH`]), or after [`DEFAULT_REFRESH`] without one. A failed fetch keeps the last
//! good set and is retried with a backoff from [`INITIAL_BACKOFF`] doubling to [`MAX_BACKOFF`]. Each fetch must
//! finish within [`FETCH_TIMEOUT`], answer 2xx, and send at most [`MAX_BODY`] bytes of valid JSON. Redirects are
//! not followed (a 3xx is a failure). Discovery documents are read once and then reused; a failed key fetch makes
//! the next attempt read the discovery document again, in case `jwks_uri` moved.
//!
//! A verifier that meets a `kid` no key of the set has asks for an immediate refetch ([`Remote::refreshed`]).
//! Requests are coalesced (any number of waiters, one fetch) and rate-limited: at most one fetch per
//! [`KID_REFETCH_INTERVAL`] is made on request, so tokens with made-up `kid`s cannot hammer the identity provider.
//! Waiters follow a `tokio::sync::watch` of attempt counters, which works from any runtime.

use std::fmt;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{ACCEPT, CACHE_CONTROL, USER_AGENT};
use http::uri::Scheme;
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, LengthLimitError, Limited};
use hyper_rustls::{ConfigBuilderExt as _, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyOperations, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Deserialize;
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;

use crate::policies::auth::jwt::KID_REFETCH_INTERVAL;

/// The longest one fetch (connect, TLS, response head and body) may take.
pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest JWKS or discovery document accepted.
pub(super) const MAX_BODY: usize = 1024 * 1024;
/// How long a fetched set is used when its response has no `Cache-Control: max-age`.
pub(super) const DEFAULT_REFRESH: Duration = Duration::from_secs(5 * 60);
/// The shortest `max-age` honoured.
pub(super) const MIN_REFRESH: Duration = Duration::from_secs(1);
/// The longest `max-age` honoured.
pub(super) const MAX_REFRESH: Duration = Duration::from_secs(24 * 60 * 60);
/// The wait before retrying a failed fetch, doubled after each failure in a row...
pub(super) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// ...up to this.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How long [`Remote::refreshed`] waits for the next fetch to finish.
pub(super) const REFRESH_WAIT: Duration = Duration::from_secs(3);

/// What a key is, as far as choosing algorithms goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyType {
    /// An RSA public key: RS* and PS*.
    Rsa,
    /// An EC P-256 public key: ES256.
    EcP256,
    /// An EC P-384 public key: ES384.
    EcP384,
    /// An Ed25519 public key: EdDSA.
    Ed25519,
    /// A shared secret: HS* only.
    Secret,
}

impl KeyType {
    /// Whether a key of this type may verify `alg` (an RSA key never verifies HS256: algorithm confusion).
    pub(super) fn fits(self, alg: Algorithm) -> bool {
        use Algorithm as A;
        match self {
            KeyType::Rsa => matches!(alg, A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512),
            KeyType::EcP256 => alg == A::ES256,
            KeyType::EcP384 => alg == A::ES384,
            KeyType::Ed25519 => alg == A::EdDSA,
            KeyType::Secret => matches!(alg, A::HS256 | A::HS384 | A::HS512),
        }
    }
}

/// One verification key. (Its `Debug` shows no key material: `DecodingKey` redacts it.)
#[derive(Debug)]
pub(super) struct Key {
    kid: Option<Box<str>>,
    /// The JWK's own `alg`, when it names one: then only tokens of that algorithm may use it.
    alg: Option<Algorithm>,
    kind: KeyType,
    key: DecodingKey,
}

impl Key {
    /// The key's `kid`, if any.
    pub(super) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether the key may verify a token signed with `alg`: its type fits, and so does its own `alg`.
    pub(super) fn accepts(&self, alg: Algorithm) -> bool {
        self.kind.fits(alg) && self.alg.is_none_or(|own| own == alg)
    }

    /// The key for `jsonwebtoken::decode`.
    pub(super) fn decoding_key(&self) -> &DecodingKey {
        &self.key
    }

    /// The key of one JWK, or why it cannot verify signatures.
    fn from_jwk(jwk: &Jwk) -> Result<Self, String> {
        if let Some(usage) = &jwk.common.public_key_use
            && *usage != PublicKeyUse::Signature
        {
            return Err("its `use` is not `sig`".to_owned());
        }
        if let Some(ops) = &jwk.common.key_operations
            && !ops.contains(&KeyOperations::Verify)
        {
            return Err("its `key_ops` do not include `verify`".to_owned());
        }
        let alg = match jwk.common.key_algorithm {
            None => None,
            Some(named) => Some(
                Algorithm::from_str(&named.to_string())
                    .map_err(|_| format!("its `alg` ({named}) is not a signature algorithm"))?,
            ),
        };
        let kind = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => KeyType::Rsa,
            AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                EllipticCurve::P256 => KeyType::EcP256,
                EllipticCurve::P384 => KeyType::EcP384,
                _ => return Err("its curve is not supported (P-256 and P-384 are)".to_owned()),
            },
            AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
                EllipticCurve::Ed25519 => KeyType::Ed25519,
                _ => return Err("its curve is not supported (Ed25519 is)".to_owned()),
            },
            AlgorithmParameters::OctetKey(_) => KeyType::Secret,
            _ => return Err("its key type is not supported".to_owned()),
        };
        if let Some(alg) = alg
            && !kind.fits(alg)
        {
            return Err(format!("its `alg` ({alg:?}) does not fit its key type"));
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("its parameters are not valid: {e}"))?;
        Ok(Self {
            kid: jwk.common.key_id.as_deref().map(Box::from),
            alg,
            kind,
            key,
        })
    }
}

/// Distinguishes key sets: a verifier's cached tokens are valid only for the set that verified them.
static GENERATIONS: AtomicU64 = AtomicU64::new(1);

/// The usable keys of one JWKS (or the one secret), with what else came with them.
#[derive(Debug)]
pub(super) struct KeySet {
    keys: Box<[Key]>,
    /// The set is one secret, which verifies whatever `kid` a token names.
    any_kid: bool,
    /// The issuer of the discovery document the set was found through.
    issuer: Option<Box<str>>,
    generation: u64,
}

/// The shape of a JWKS; each key is parsed on its own, so that one this crate cannot read is skipped alone.
#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

impl KeySet {
    /// Parses a JWKS (`{"keys": [...]}`), skipping (with a warning) keys that cannot verify signatures. Fails
    /// only when the text is not a JWKS at all.
    pub(super) fn parse(scheme: &str, json: &[u8], issuer: Option<Box<str>>) -> Result<Self, serde_json::Error> {
        let raw: RawSet = serde_json::from_slice(json)?;
        let mut keys = Vec::with_capacity(raw.keys.len());
        for (index, value) in raw.keys.into_iter().enumerate() {
            let kid = value.get("kid").and_then(serde_json::Value::as_str).map(str::to_owned);
            let key = Jwk::deserialize(value)
                .map_err(|e| format!("it is not a JWK: {e}"))
                .and_then(|jwk| Key::from_jwk(&jwk));
            match key {
                Ok(key) => keys.push(key),
                // A `kid` names a public key; it is no secret.
                Err(reason) => tracing::warn!(scheme, index, kid, %reason, "skipping a key of the JWKS"),
            }
        }
        Ok(Self::new(keys, false, issuer))
    }

    /// The set of one HMAC secret.
    pub(super) fn secret(secret: &[u8]) -> Self {
        let key = Key {
            kid: None,
            alg: None,
            kind: KeyType::Secret,
            key: DecodingKey::from_secret(secret),
        };
        Self::new(vec![key], true, None)
    }

    fn new(keys: Vec<Key>, any_kid: bool, issuer: Option<Box<str>>) -> Self {
        Self {
            keys: keys.into(),
            any_kid,
            issuer,
            generation: GENERATIONS.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// The keys, in the set's order.
    pub(super) fn keys(&self) -> &[Key] {
        &self.keys
    }

    /// Whether a token's `kid` is ignored (a secret has none to match).
    pub(super) fn any_kid(&self) -> bool {
        self.any_kid
    }

    /// The issuer of the discovery document, for a set found through one.
    pub(super) fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// A number no other set of this process has.
    pub(super) fn generation(&self) -> u64 {
        self.generation
    }
}

/// Where a fetched set comes from.
#[derive(Debug, Clone)]
pub(super) enum Endpoint {
    /// A JWKS URL.
    Jwks(Uri),
    /// An OpenID Connect discovery document, whose `jwks_uri` is the JWKS URL.
    Discovery(Uri),
}

impl Endpoint {
    fn uri(&self) -> &Uri {
        match self {
            Endpoint::Jwks(uri) | Endpoint::Discovery(uri) => uri,
        }
    }
}

/// An absolute `http(s)` URL without credentials, as a request URI.
pub(super) fn parse_url(raw: &str) -> Result<Uri, String> {
    let url = url::Url::parse(raw).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" => {}
        other => return Err(format!("the scheme must be http or https, not `{other}`")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("credentials in the URL are not supported".to_owned());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    let mut url = url;
    // The fragment is never sent.
    url.set_fragment(None);
    Uri::try_from(url.as_str()).map_err(|e| e.to_string())
}

/// Counters of the refresher's work, watched by waiters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Status {
    /// Fetches finished, successful or not.
    attempts: u64,
    /// Fetches that brought a set (new or unchanged).
    successes: u64,
}

/// What the refresher thread and the verifier share.
struct Shared {
    /// The last good set; `None` until the first fetch succeeds.
    set: ArcSwapOption<KeySet>,
    status: watch::Sender<Status>,
    /// The highest attempt number a waiter waits for: while it exceeds [`Status::attempts`], a fetch is wanted.
    /// Waiters that arrive during a fetch want that fetch, so any number of them cost one.
    wanted: AtomicU64,
    /// Wakes the refresher for [`Shared::wanted`].
    wake: Notify,
}

/// A key set fetched and kept fresh by a thread of its own (see the module docs); dropping it stops the thread.
pub(super) struct Remote {
    shared: Arc<Shared>,
    url: Box<str>,
    /// Dropped with the verifier, which ends the refresher.
    _stop: oneshot::Sender<()>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("url", &self.url)
            .field("loaded", &self.shared.set.load().is_some())
            .finish()
    }
}

impl Remote {
    /// Starts the refresher of `endpoint` on a new thread; its first fetch begins at once. Needs no runtime in
    /// the caller.
    pub(super) fn start(scheme: &'static str, endpoint: Endpoint) -> Result<Self, String> {
        let url: Box<str> = endpoint.uri().to_string().into();
        let shared = Arc::new(Shared {
            set: ArcSwapOption::empty(),
            status: watch::Sender::new(Status::default()),
            wanted: AtomicU64::new(0),
            wake: Notify::new(),
        });
        let (stop, stopped) = oneshot::channel();
        let (ready, started) = std::sync::mpsc::sync_channel(1);
        let fetcher = Fetcher::new(scheme, endpoint);
        let state = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("jwks-refresher".to_owned())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    Ok(runtime) => runtime,
                    Err(err) => {
                        let _ = ready.send(Err(err.to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                runtime.block_on(refresh(state, fetcher, stopped));
            })
            .map_err(|e| format!("cannot start the thread that fetches its keys: {e}"))?;
        match started.recv() {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(format!("cannot start the runtime that fetches its keys: {err}")),
            Err(_) => return Err("the thread that fetches its keys stopped at once".to_owned()),
        }
        Ok(Self {
            shared,
            url,
            _stop: stop,
        })
    }

    /// The last good set, if one was fetched yet.
    pub(super) fn current(&self) -> Option<Arc<KeySet>> {
        self.shared.set.load_full()
    }

    /// Asks for an immediate refetch (coalesced and rate-limited; a fetch under way serves instead) and waits up
    /// to [`REFRESH_WAIT`] for the next fetch to finish: `true` when it brought a set. That set may be the one
    /// already held (the identity provider has not rotated yet), but any success is reported so that a caller
    /// whose verification raced an earlier refresh tries again.
    ///
    /// Needs a runtime with a timer (every worker has one); the refresher itself may be on any other.
    pub(super) async fn refreshed(&self) -> bool {
        let mut status = self.shared.status.subscribe();
        let start = *status.borrow_and_update();
        // The next attempt to finish, whether under way or not yet begun, is the one wanted.
        self.shared.wanted.fetch_max(start.attempts + 1, Ordering::AcqRel);
        self.shared.wake.notify_one();
        let finished = tokio::time::timeout(REFRESH_WAIT, status.wait_for(|s| s.attempts > start.attempts)).await;
        match finished {
            Ok(Ok(now)) => now.successes > start.successes,
            _ => false,
        }
    }

    /// Fetches finished so far, for tests that wait on the refresher.
    #[cfg(test)]
    pub(super) fn attempts(&self) -> u64 {
        self.shared.status.borrow().attempts
    }

    /// The state the refresher thread holds, for tests that check it lets go when the verifier is dropped.
    #[cfg(test)]
    pub(super) fn shared_weak(&self) -> std::sync::Weak<impl Sized + use<>> {
        Arc::downgrade(&self.shared)
    }
}

/// The refresher: fetches on schedule and on request until `stop` ends (its sender is dropped).
async fn refresh(shared: Arc<Shared>, mut fetcher: Fetcher, mut stop: oneshot::Receiver<()>) {
    // The first fetch happens at once.
    let mut next = Instant::now();
    let mut backoff = INITIAL_BACKOFF;
    // Fetches finished (this task alone counts them), and when a waiter's request last made one.
    let mut attempts = 0;
    let mut last_requested: Option<Instant> = None;
    loop {
        loop {
            let now = Instant::now();
            let due = if shared.wanted.load(Ordering::Acquire) > attempts {
                next.min(last_requested.map_or(now, |at| at + KID_REFETCH_INTERVAL))
            } else {
                next
            };
            if due <= now {
                break;
            }
            tokio::select! {
                biased;
                _ = &mut stop => return,
                () = shared.wake.notified() => {}
                () = tokio::time::sleep_until(due) => {}
            }
        }
        let now = Instant::now();
        if next > now {
            // A request, not the schedule, made this fetch: it counts against the rate limit.
            last_requested = Some(now);
        }
        let outcome = tokio::select! {
            biased;
            _ = &mut stop => return,
            outcome = fetcher.fetch() => outcome,
        };
        // A set without one usable key is a failed fetch too: installing it would refuse every token.
        let outcome = outcome.and_then(|fetched| match &fetched.set {
            Some(set) if set.keys().is_empty() => Err(FetchError {
                url: fetcher.endpoint.uri().to_string(),
                failure: Failure::NoUsableKey,
            }),
            _ => Ok(fetched),
        });
        let succeeded = match outcome {
            Ok(fetched) => {
                if let Some(set) = fetched.set {
                    tracing::info!(
                        scheme = fetcher.scheme,
                        url = %fetcher.endpoint.uri(),
                        keys = set.keys().len(),
                        "fetched the JWT signing keys"
                    );
                    shared.set.store(Some(Arc::new(set)));
                }
                next = Instant::now() + refresh_after(fetched.max_age);
                backoff = INITIAL_BACKOFF;
                true
            }
            Err(err) => {
                tracing::warn!(
                    scheme = fetcher.scheme,
                    error = %err,
                    retry_in = ?backoff,
                    "cannot fetch the JWT signing keys; keeping the last good set"
                );
                next = Instant::now() + backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                false
            }
        };
        attempts += 1;
        shared.status.send_modify(|s| {
            s.attempts = attempts;
            if succeeded {
                s.successes += 1;
            }
        });
    }
}

/// How long a set is used: its `max-age`, clamped, or the default.
fn refresh_after(max_age: Option<Duration>) -> Duration {
    max_age.map_or(DEFAULT_REFRESH, |age| age.clamp(MIN_REFRESH, MAX_REFRESH))
}

/// The `max-age` of a response's `Cache-Control` headers, if any (an out-of-range number counts as the largest).
fn max_age(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|directive| {
            let (name, value) = directive.split_once('=')?;
            if !name.trim().eq_ignore_ascii_case("max-age") {
                return None;
            }
            let value = value.trim().trim_matches('"');
            if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)))
        })
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// One fetch's result: the set when it differs from the last one fetched, and how long it may be used.
struct Fetched {
    set: Option<KeySet>,
    max_age: Option<Duration>,
}

/// The issuer and JWKS URL of a discovery document.
struct Discovered {
    jwks_uri: Uri,
    issuer: Box<str>,
}

/// What a discovery document must say.
#[derive(Deserialize)]
struct DiscoveryDocument {
    issuer: String,
    jwks_uri: String,
}

/// A fetch that failed, and the URL it failed at.
#[derive(Debug, thiserror::Error)]
#[error("{url}: {failure}")]
struct FetchError {
    url: String,
    failure: Failure,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Request(String),
    #[error("the answer is {0}, not 2xx")]
    Status(StatusCode),
    #[error("the body is larger than {0} bytes")]
    TooLarge(usize),
    #[error("cannot read the body: {0}")]
    Body(String),
    #[error("not a JWKS: {0}")]
    Jwks(serde_json::Error),
    #[error("not an OpenID Connect discovery document: {0}")]
    Discovery(serde_json::Error),
    #[error("the discovery document's `jwks_uri` is not usable: {0}")]
    JwksUri(String),
    #[error("cannot configure TLS: {0}")]
    Tls(String),
    #[error("the set has no key the gateway can verify with")]
    NoUsableKey,
}

/// An error and its sources, `: `-separated (hyper's errors say little on their own).
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The refresher's HTTP side.
struct Fetcher {
    scheme: &'static str,
    endpoint: Endpoint,
    discovered: Option<Discovered>,
    /// The client, and whether it trusts the root certificates (built without any until an `https` URL needs them,
    /// so plain-HTTP set-ups never read the certificate store).
    client: Option<(bool, HttpClient)>,
    /// The body and issuer of the last set fetched, to tell an unchanged set from a new one.
    last: Option<(Bytes, Option<Box<str>>)>,
}

impl Fetcher {
    fn new(scheme: &'static str, endpoint: Endpoint) -> Self {
        Self {
            scheme,
            endpoint,
            discovered: None,
            client: None,
            last: None,
        }
    }

    /// One fetch of the set (after the discovery document, when it is not known yet).
    async fn fetch(&mut self) -> Result<Fetched, FetchError> {
        let (uri, issuer) = match self.endpoint.clone() {
            Endpoint::Jwks(uri) => (uri, None),
            Endpoint::Discovery(url) => {
                let discovered = match self.discovered.take() {
                    Some(discovered) => discovered,
                    None => self.discover(&url).await?,
                };
                let found = (discovered.jwks_uri.clone(), Some(discovered.issuer.clone()));
                self.discovered = Some(discovered);
                found
            }
        };
        let result = self.get(&uri).await.and_then(|(body, max_age)| {
            if self
                .last
                .as_ref()
                .is_some_and(|(last, iss)| *last == body && *iss == issuer)
            {
                return Ok(Fetched { set: None, max_age });
            }
            let set = KeySet::parse(self.scheme, &body, issuer.clone()).map_err(|e| FetchError {
                url: uri.to_string(),
                failure: Failure::Jwks(e),
            })?;
            self.last = Some((body, issuer));
            Ok(Fetched {
                set: Some(set),
                max_age,
            })
        });
        if result.is_err() {
            // The JWKS may have moved: read the discovery document again next time.
            self.discovered = None;
        }
        result
    }

    /// Reads the discovery document at `url`.
    async fn discover(&mut self, url: &Uri) -> Result<Discovered, FetchError> {
        let (body, _) = self.get(url).await?;
        let fail = |failure| FetchError {
            url: url.to_string(),
            failure,
        };
        let document: DiscoveryDocument = serde_json::from_slice(&body).map_err(|e| fail(Failure::Discovery(e)))?;
        let jwks_uri = parse_url(&document.jwks_uri).map_err(|e| fail(Failure::JwksUri(e)))?;
        Ok(Discovered {
            jwks_uri,
            issuer: document.issuer.into(),
        })
    }

    /// `GET uri`: the body of a 2xx answer within the time and size limits, and the answer's `max-age`.
    async fn get(&mut self, uri: &Uri) -> Result<(Bytes, Option<Duration>), FetchError> {
        let fail = |failure| FetchError {
            url: uri.to_string(),
            failure,
        };
        let client = self.client(uri.scheme() == Some(&Scheme::HTTPS)).map_err(fail)?;
        let request = Request::get(uri.clone())
            .header(ACCEPT, "application/json")
            .header(USER_AGENT, concat!("gateway-runtime/", env!("CARGO_PKG_VERSION")))
            .body(Empty::new())
            .map_err(|e| fail(Failure::Request(e.to_string())))?;
        let exchange = async {
            let response = client.request(request).await.map_err(|e| Failure::Request(chain(&e)))?;
            if !response.status().is_success() {
                return Err(Failure::Status(response.status()));
            }
            let max_age = max_age(response.headers());
            let body = Limited::new(response.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<LengthLimitError>().is_some() {
                        Failure::TooLarge(MAX_BODY)
                    } else {
                        Failure::Body(chain(&*e))
                    }
                })?
                .to_bytes();
            Ok((body, max_age))
        };
        match tokio::time::timeout(FETCH_TIMEOUT, exchange).await {
            Ok(result) => result.map_err(fail),
            Err(_) => Err(fail(Failure::Timeout(FETCH_TIMEOUT))),
        }
    }

    /// The client, built (again) with root certificates the first time an `https` URL needs them.
    fn client(&mut self, https: bool) -> Result<HttpClient, Failure> {
        if let Some((with_roots, client)) = &self.client
            && (*with_roots || !https)
        {
            return Ok(client.clone());
        }
        let mut http = HttpConnector::new();
        // The HTTPS wrapper decides by scheme; the inner connector must accept `https://` URIs too.
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(https)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1)
            .build(connector);
        self.client = Some((https, client.clone()));
        Ok(client)
    }
}

/// The TLS client configuration: aws-lc-rs (the process's one provider), and the machine's root certificates
/// (Mozilla's bundled ones when it has none) when `with_roots`.
fn tls_config(with_roots: bool) -> Result<rustls::ClientConfig, Failure> {
    // An explicit provider: `ClientConfig::builder()` would panic if a dependency enabled a second one.
    let builder = || {
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| Failure::Tls(e.to_string()))
    };
    if !with_roots {
        return Ok(builder()?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth());
    }
    match builder()?.with_native_roots() {
        Ok(builder) => Ok(builder.with_no_client_auth()),
        Err(err) => {
            tracing::warn!(error = %err, "no usable native root certificates; using the bundled Mozilla roots");
            Ok(builder()?.with_webpki_roots().with_no_client_auth())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(CACHE_CONTROL, value.parse().expect("header value"));
        }
        map
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            max_age(&headers(&["public, max-age=600"])),
            Some(Duration::from_secs(600))
        );
        assert_eq!(
            max_age(&headers(&["no-cache", "Max-Age = 30"])),
            Some(Duration::from_secs(30))
        );
        assert_eq!(max_age(&headers(&["s-maxage=5"])), None);
        assert_eq!(max_age(&headers(&["max-age=-1"])), None);
        assert_eq!(
            max_age(&headers(&["max-age=99999999999999999999999"])),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(max_age(&headers(&[])), None);
    }

    #[test]
    fn refresh_intervals_are_clamped() {
        assert_eq!(refresh_after(None), DEFAULT_REFRESH);
        assert_eq!(refresh_after(Some(Duration::ZERO)), MIN_REFRESH);
        assert_eq!(refresh_after(Some(Duration::from_secs(60))), Duration::from_secs(60));
        assert_eq!(refresh_after(Some(Duration::from_secs(u64::MAX))), MAX_REFRESH);
    }

    #[test]
    fn key_types_fit_their_algorithms_only() {
        assert!(KeyType::Rsa.fits(Algorithm::RS256) && KeyType::Rsa.fits(Algorithm::PS512));
        assert!(!KeyType::Rsa.fits(Algorithm::HS256));
        assert!(!KeyType::Rsa.fits(Algorithm::ES256));
        assert!(KeyType::EcP256.fits(Algorithm::ES256) && !KeyType::EcP256.fits(Algorithm::ES384));
        assert!(KeyType::Secret.fits(Algorithm::HS512) && !KeyType::Secret.fits(Algorithm::RS256));
        assert!(KeyType::Ed25519.fits(Algorithm::EdDSA) && !KeyType::Ed25519.fits(Algorithm::ES256));
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let json = r#"{"keys": [
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "XYZ", "kid": "odd"},
            {"kty": "RSA", "kid": "confused", "alg": "HS256", "n": "AQAB", "e": "AQAB"},
            {"kty": "RSA", "kid": "good", "alg": "RS256", "n": "AQAB", "e": "AQAB"}
        ]}"#;
        let set = KeySet::parse("test", json.as_bytes(), None).expect("a JWKS");
        let kids: Vec<_> = set.keys().iter().map(Key::kid).collect();
        assert_eq!(kids, [Some("good")]);
        assert!(set.keys()[0].accepts(Algorithm::RS256));
        assert!(!set.keys()[0].accepts(Algorithm::RS384), "the JWK's own alg binds it");
        assert!(KeySet::parse("test", b"[]", None).is_err());
        assert!(KeySet::parse("test", b"{\"keys\": 1}", None).is_err());
    }

    #[test]
    fn urls_must_be_absolute_http_without_credentials() {
        assert!(parse_url("https://idp.example/.well-known/jwks.json").is_ok());
        let uri = parse_url("http://127.0.0.1:8080/jwks#frag").expect("a URL");
        assert_eq!(uri, "http://127.0.0.1:8080/jwks");
        assert!(parse_url("ftp://idp.example/jwks").is_err());
        assert!(parse_url("/jwks").is_err());
        assert!(parse_url("https://user:pass@idp.example/jwks").is_err());
    }
}
