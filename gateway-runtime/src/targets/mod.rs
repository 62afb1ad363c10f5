//! Where an operation's requests go once every request filter admitted them: one module per kind of target.

pub mod function;
pub mod mock;
pub mod proxy;
pub mod store;

use axum::body::Body;
use axum::response::Response;
use http::request;

use crate::error::GatewayError;
use crate::pipeline::RequestCtx;
use crate::policies::credentials::{self, Credential};
use function::FunctionTarget;
use mock::MockResponse;
use proxy::UpstreamRoute;
use store::target::StoreTarget;

/// What an operation does once its request is admitted.
pub(crate) enum Target {
    /// Reverse-proxy to an upstream.
    Proxy {
        /// How to reach it.
        route: UpstreamRoute,
        /// The credentials removed before forwarding (see [`credentials`]).
        strip: Box<[Credential]>,
    },
    /// A fixed response.
    Mock(MockResponse),
    /// One call to a store.
    Store(StoreTarget),
    /// A Rust function of the user's.
    Function(Box<FunctionTarget>),
}

impl Target {
    /// The target's answer. For a proxy, the upstream request filters run first.
    pub(crate) async fn respond(
        &self,
        ctx: &mut RequestCtx,
        mut parts: request::Parts,
        body: Body,
    ) -> Result<Response, GatewayError> {
        match self {
            Target::Mock(mock) => Ok(mock.respond()),
            Target::Store(store) => store.respond(ctx, parts, body).await,
            // Boxed: a function call's future (the body read, the timeout, the call) is only carried by function
            // operations.
            Target::Function(function) => Box::pin(function.respond(ctx, parts, body)).await,
            Target::Proxy { route, strip } => {
                if !strip.is_empty() {
                    credentials::strip(&mut parts, strip);
                }
                // What the gateway verified and vouches for: claims as headers, an authorizer's headers (the
                // client's own copies were stripped above).
                if let Some(caller) = &ctx.caller {
                    for (name, value) in &caller.upstream_headers {
                        parts.headers.append(name.clone(), value.clone());
                    }
                }
                route.forward(ctx, parts, body).await
            }
        }
    }
}
