//! External authorizers (INTERFACE STUB — being implemented).

use std::sync::Arc;

use http::{HeaderName, HeaderValue, request};

use crate::error::ErrorKind;
use crate::pipeline::RequestCtx;
use crate::spec::{AuthorizerSpec, SchemeSpec};
use crate::targets::proxy::Proxy;

/// A worker's way to reach authorizers: its proxy's connection pools.
#[derive(Debug, Clone)]
pub struct AuthorizerClient {
    proxy: Option<Proxy>,
}

impl AuthorizerClient {
    /// Calls go through `proxy`.
    pub fn new(proxy: Option<Proxy>) -> Self {
        Self { proxy }
    }
}

/// What the authorizer said.
#[derive(Debug, Clone)]
pub enum Decision {
    /// Admitted, with the headers to copy to the upstream request.
    Allow(Arc<[(HeaderName, HeaderValue)]>),
    /// Refused: `UNAUTHORIZED` or `FORBIDDEN`.
    Deny(ErrorKind),
    /// Could not be asked, or did not answer in time.
    Unavailable,
}

/// One authorizer scheme: its answers cached per credential.
#[derive(Debug)]
pub struct Authorizer {
    scheme: &'static SchemeSpec,
    spec: &'static AuthorizerSpec,
}

impl Authorizer {
    /// The authorizer of `scheme`.
    pub fn new(scheme: &'static SchemeSpec, spec: &'static AuthorizerSpec) -> Self {
        Self { scheme, spec }
    }

    /// The decision on `credential` for this request.
    pub async fn decide(
        &self,
        client: &AuthorizerClient,
        credential: &str,
        ctx: &RequestCtx,
        parts: &request::Parts,
    ) -> Decision {
        let _ = (client, credential, ctx, parts, self.scheme, self.spec);
        Decision::Unavailable
    }
}
