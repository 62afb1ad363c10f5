//! WebSocket upgrades on operations marked `websocket: true`: the client's opening handshake goes to the upstream
//! with its `Upgrade`, and once the upstream switches protocols (`101`) the gateway splices the two connections,
//! copying bytes both ways until either side closes. The gateway does not parse frames: subprotocols, extensions
//! and `Sec-WebSocket-*` headers are the two ends' business and pass through untouched.
//!
//! Only HTTP/1.1 clients upgrade (a WebSocket over HTTP/2, RFC 8441, is not offered). An upgraded connection is
//! outside the request's timeouts: a WebSocket may stay quiet for hours; it ends when either side closes it, or
//! when the gateway process exits.

use axum::body::Body;
use axum::response::Response;
use http::header::{CONNECTION, UPGRADE};
use http::{HeaderMap, HeaderValue, StatusCode, request};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use super::{InFlight, strip_hop_by_hop};
use crate::error::GatewayError;
use crate::pipeline::RequestCtx;

/// The client's pending upgrade, when the operation passes WebSockets through and the request asks for one
/// (`Connection: upgrade`, `Upgrade: websocket`) on a connection that can upgrade.
pub(super) fn requested(ctx: &RequestCtx, parts: &mut request::Parts) -> Option<OnUpgrade> {
    if !ctx.operation.is_some_and(|op| op.websocket) || !asks_for_websocket(&parts.headers) {
        return None;
    }
    parts.extensions.remove::<OnUpgrade>()
}

/// Whether the head asks to upgrade to WebSocket.
fn asks_for_websocket(headers: &HeaderMap) -> bool {
    let listed = |name, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    listed(CONNECTION, "upgrade") && listed(UPGRADE, "websocket")
}

/// Puts back, for the upstream, the two hop-by-hop headers an upgrade needs.
pub(super) fn ask_upstream(headers: &mut HeaderMap) {
    headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
}

/// The client's `101` for the upstream's, with both connections spliced once both have switched. Without a
/// pending client upgrade (the upstream switched unasked), a `502`.
pub(super) fn splice(
    client: Option<OnUpgrade>,
    mut upstream: http::Response<super::pool::UpstreamBody>,
    name: &'static str,
    in_flight: Option<InFlight>,
) -> Result<Response, GatewayError> {
    let Some(client) = client else {
        tracing::warn!(
            upstream = name,
            "the upstream switched protocols for a request that did not ask to"
        );
        return Err(GatewayError::upstream("the upstream switched protocols unasked"));
    };
    let upstream_side = hyper::upgrade::on(&mut upstream);
    tokio::spawn(async move {
        // Held until the WebSocket closes: it occupies one of the upstream's connections.
        let _in_flight = in_flight;
        let (client, upstream_side) = match tokio::join!(client, upstream_side) {
            (Ok(client), Ok(upstream_side)) => (client, upstream_side),
            (Err(err), _) | (_, Err(err)) => {
                tracing::debug!(upstream = name, error = %err, "a WebSocket upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream_side = TokioIo::new(upstream_side);
        match tokio::io::copy_bidirectional(&mut client, &mut upstream_side).await {
            Ok((up, down)) => tracing::debug!(upstream = name, bytes_up = up, bytes_down = down, "WebSocket closed"),
            Err(err) => tracing::debug!(upstream = name, error = %err, "WebSocket ended with an error"),
        }
    });
    let (mut head, _) = upstream.into_parts();
    let protocol = head.headers.get(UPGRADE).cloned();
    strip_hop_by_hop(&mut head.headers);
    head.headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    head.headers.insert(
        UPGRADE,
        protocol.unwrap_or_else(|| HeaderValue::from_static("websocket")),
    );
    head.status = StatusCode::SWITCHING_PROTOCOLS;
    head.extensions = http::Extensions::new();
    Ok(Response::from_parts(head, Body::empty()))
}
