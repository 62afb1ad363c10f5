//! What an operation does with the connection beyond one request and one response: compression of its responses
//! (and decompression of its requests), and WebSocket upgrades passed through to its upstream.
//!
//! `compression` is inherited like `cors`: the top level's, else the path item's, else the operation's, each
//! nearer map overriding the fields it sets; `false` turns it off there. It is off unless some level turns it on:
//! compressing costs CPU on every response, and compressing responses that mix secrets with what a caller sends
//! (BREACH) is a decision for whoever owns the API.

use crate::diagnostics::{Diagnostic, Diagnostics};
use crate::model::{Compression, Target};
use crate::parse::ParsedOperation;
use crate::parse::ext::{CompressionSetting, RootExt};

/// `compression.min_size` when unset: 1 KiB, below which the framing costs more than compression saves.
pub const DEFAULT_MIN_SIZE: u64 = 1024;

/// The operation's effective compression, `None` when off.
pub(super) fn compression(root: &RootExt, op: &ParsedOperation) -> Option<Compression> {
    let levels = [
        root.compression.as_ref(),
        op.path_ext.as_ref().and_then(|(_, e)| e.compression.as_ref()),
        op.op_ext.as_ref().and_then(|(_, e)| e.compression.as_ref()),
    ];
    let mut on = false;
    let mut settings = Compression {
        min_size: DEFAULT_MIN_SIZE,
        decompress_requests: false,
    };
    for level in levels.into_iter().flatten() {
        match level {
            CompressionSetting::Enabled(enabled) => on = *enabled,
            CompressionSetting::Settings(ext) => {
                on = true;
                if let Some(size) = ext.min_size {
                    settings.min_size = size.0;
                }
                if let Some(decompress) = ext.decompress_requests {
                    settings.decompress_requests = decompress;
                }
            }
        }
    }
    on.then_some(settings)
}

/// Whether the operation passes WebSocket upgrades through: only a `GET` (the handshake's method) proxied to an
/// upstream can.
pub(super) fn websocket(op: &ParsedOperation, target: Option<&Target>, diags: &mut Diagnostics) -> bool {
    let Some((at, true)) = super::inherited(op, "websocket", |e| e.websocket.as_ref()).map(|(at, on)| (at, *on)) else {
        return false;
    };
    if op.method != "GET" {
        diags.push(
            Diagnostic::error(
                &at,
                format!(
                    "{} {} cannot be a WebSocket: the opening handshake is a GET",
                    op.method, op.template
                ),
            )
            .help("mark the GET operation of the path with `websocket: true`"),
        );
        return false;
    }
    match target {
        Some(Target::Upstream { .. } | Target::Split { .. }) | None => true,
        Some(_) => {
            diags.push(
                Diagnostic::error(
                    &at,
                    format!(
                        "{} {} is a WebSocket, which only an upstream can serve",
                        op.method, op.template
                    ),
                )
                .help("give the operation an upstream target (`target: { upstream: NAME }`), or remove `websocket`"),
            );
            false
        }
    }
}
