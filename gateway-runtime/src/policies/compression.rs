//! `compression`: responses compressed (zstd, br, gzip or deflate, as the client's `Accept-Encoding` prefers) and,
//! where the operation asks for it, request bodies decompressed — tower-http's layers around the operation's
//! service.
//!
//! A response is compressed when the client accepts an encoding, its type is one that compresses
//! ([`compressible`]), its body is at least `min_size` (or of unknown size), and nothing says not to: it is not
//! already encoded, not a range (`Content-Range`), and not `Cache-Control: no-transform`. Server-sent events are not
//! a compressible type, so they stream event by event. Compressed or not, a response that could have been says
//! `Vary: Accept-Encoding`, so that caches in between keep the two apart.
//!
//! Request decompression is off unless the operation turns it on (a small compressed body can decompress to
//! gigabytes): then a body with `Content-Encoding: gzip`, `deflate`, `br` or `zstd` is decompressed on the way in,
//! its `Content-Encoding` and `Content-Length` removed, and the operation's body limit counts the decompressed
//! bytes — a bomb stops at `validate.max_body` with `413`.

use axum::body::Body;
use axum::extract::Request;
use http::{HeaderMap, Response, header};
use tower_http::compression::predicate::{Predicate, SizeAbove};
use tower_http::compression::{Compression, CompressionLevel};
use tower_http::decompression::RequestDecompression;

use crate::spec::CompressionSpec;

/// The operation's `service`, compressing its responses as `spec` says.
pub fn compress<S>(spec: CompressionSpec, service: S) -> Compression<S, Compressible> {
    Compression::new(service)
        .quality(CompressionLevel::Default)
        .compress_when(Compressible {
            size: SizeAbove::new(spec.min_size),
        })
}

/// `service` behind request decompression: compressed bodies arrive decompressed, others as they are.
pub fn decompress<S>(service: S) -> RequestDecompression<Decompressed<S>> {
    RequestDecompression::new(Decompressed(service)).pass_through_unaccepted(true)
}

/// Which responses are compressed: see the module's documentation.
#[derive(Debug, Clone, Copy)]
pub struct Compressible {
    size: SizeAbove,
}

impl Predicate for Compressible {
    fn should_compress<B: http_body::Body>(&self, response: &Response<B>) -> bool {
        let headers = response.headers();
        compressible(headers) && !no_transform(headers) && self.size.should_compress(response)
    }
}

/// Whether the body's media type is one compression helps: text, JSON, XML, JavaScript, SVG, and their
/// structured-suffix relatives (`application/problem+json`). Images, video, archives and fonts are compressed
/// already; `text/event-stream` must stream event by event.
fn compressible(headers: &HeaderMap) -> bool {
    let Some(media) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = media.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    match kind {
        "text" => subtype != "event-stream",
        "application" => {
            matches!(
                subtype,
                "json" | "xml" | "javascript" | "ecmascript" | "x-ndjson" | "ndjson" | "yaml" | "graphql" | "wasm"
            ) || subtype.ends_with("+json")
                || subtype.ends_with("+xml")
                || subtype.ends_with("+yaml")
        }
        "image" => subtype == "svg+xml",
        _ => false,
    }
}

/// `Cache-Control: no-transform` (RFC 9111 §5.2.2.6): intermediaries must not change the body.
fn no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|directive| directive.trim().eq_ignore_ascii_case("no-transform"))
}

/// The operation's service, taking the decompressed body as an axum [`Body`] again.
#[derive(Debug, Clone)]
pub struct Decompressed<S>(S);

impl<S, B> tower::Service<http::Request<B>> for Decompressed<S>
where
    S: tower::Service<Request>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        self.0.call(request.map(Body::new))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().expect("header value"));
        headers
    }

    #[test]
    fn text_json_and_xml_compress_and_media_that_is_already_compressed_does_not() {
        for yes in [
            "application/json",
            "application/problem+json; charset=utf-8",
            "text/html",
            "image/svg+xml",
            "application/atom+xml",
        ] {
            assert!(compressible(&typed(yes)), "{yes}");
        }
        for no in [
            "image/png",
            "application/zip",
            "video/mp4",
            "text/event-stream",
            "application/octet-stream",
            "font/woff2",
            "nonsense",
        ] {
            assert!(!compressible(&typed(no)), "{no}");
        }
        assert!(!compressible(&HeaderMap::new()), "no Content-Type");
    }

    #[test]
    fn no_transform_is_found_among_other_directives() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            "public, No-Transform, max-age=60".parse().expect("header value"),
        );
        assert!(no_transform(&headers));
        headers.insert(
            header::CACHE_CONTROL,
            "public, max-age=60".parse().expect("header value"),
        );
        assert!(!no_transform(&headers));
    }
}
