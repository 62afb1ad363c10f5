//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and `tracestate` of a request,
//! propagated to the upstream as one more hop.
//!
//! A valid incoming `traceparent` keeps its trace id and its flags (so the caller's sampling decision holds), and
//! the gateway's hop gets a span id of its own: the upstream sees the gateway as its parent. `tracestate` goes along
//! unchanged with a valid `traceparent` and is dropped without one (the spec ties them together). A request without
//! a valid `traceparent` starts a new trace, not sampled. The ids are random (a per-thread generator seeded from
//! the OS), so they cannot be guessed across requests.

use std::cell::Cell;
use std::hash::{BuildHasher as _, Hasher as _};

use http::{HeaderMap, HeaderName, HeaderValue};

/// `traceparent`.
pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate`.
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// A request's place in a trace: what the gateway forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace id (16 bytes, never all zero).
    pub trace_id: u128,
    /// The gateway's span id for this hop (8 bytes, never zero).
    pub span_id: u64,
    /// The parent's span id, when the request came with one.
    pub parent_id: Option<u64>,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
    /// Whether a valid `traceparent` came with the request (and so its `tracestate` is kept).
    pub continued: bool,
}

impl TraceContext {
    /// The context of a request with `headers`: the caller's trace continued, or a new one.
    pub fn of(headers: &HeaderMap) -> Self {
        let span_id = random_nonzero_u64();
        match headers.get(&TRACEPARENT).and_then(|v| parse(v.as_bytes())) {
            Some((trace_id, parent_id, flags)) => Self {
                trace_id,
                span_id,
                parent_id: Some(parent_id),
                flags,
                continued: true,
            },
            None => Self {
                trace_id: (u128::from(random_nonzero_u64()) << 64) | u128::from(random_nonzero_u64()),
                span_id,
                parent_id: None,
                flags: 0,
                continued: false,
            },
        }
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", self.trace_id)
    }

    /// The `traceparent` the upstream gets: this hop's span as the parent. Hex-encoded by hand: through
    /// `format!` this one header cost ~2,000 instructions of every proxied request.
    pub fn header(&self) -> HeaderValue {
        let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
        hex_into(&mut out[3..35], self.trace_id.to_be_bytes().as_slice());
        hex_into(&mut out[36..52], self.span_id.to_be_bytes().as_slice());
        hex_into(&mut out[53..55], &[self.flags]);
        HeaderValue::from_bytes(&out)
            .unwrap_or_else(|_| HeaderValue::from_static("00-00000000000000000000000000000000-0000000000000000-00"))
    }

    /// Writes the upstream request's trace headers: `traceparent` replaced, `tracestate` kept only with a
    /// continued trace.
    pub fn apply(&self, headers: &mut HeaderMap) {
        headers.insert(TRACEPARENT.clone(), self.header());
        if !self.continued {
            headers.remove(&TRACESTATE);
        }
    }
}

/// Writes `bytes` as lower-case hex into `out` (twice as long).
fn hex_into(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, byte) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(byte >> 4)];
        pair[1] = DIGITS[usize::from(byte & 0x0f)];
    }
}

/// `version-traceid-parentid-flags` (version `00`: exactly that; a higher version: its first four fields, as the
/// spec asks of parsers that meet a newer version). `None` for anything invalid, including all-zero ids and the
/// forbidden version `ff`.
fn parse(value: &[u8]) -> Option<(u128, u64, u8)> {
    let text = std::str::from_utf8(value).ok()?.trim();
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    let lower_hex =
        |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !lower_hex(version, 2)
        || version == "ff"
        || !lower_hex(trace, 32)
        || !lower_hex(parent, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    if version == "00" && rest.is_some() {
        return None;
    }
    let trace_id = u128::from_str_radix(trace, 16).ok()?;
    let parent_id = u64::from_str_radix(parent, 16).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    (trace_id != 0 && parent_id != 0).then_some((trace_id, parent_id, flags))
}

thread_local! {
    /// xorshift64* state, seeded per thread from the OS's randomness (through `RandomState`).
    static STATE: Cell<u64> = Cell::new({
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        hasher.finish() | 1
    });
}

/// A random, non-zero 64-bit value.
fn random_nonzero_u64() -> u64 {
    STATE.with(|state| {
        loop {
            let mut x = state.get();
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            state.set(x);
            let out = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
            if out != 0 {
                return out;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = TraceContext::of(&headers(&[("traceparent", incoming)]));
        assert_eq!(ctx.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.parent_id, Some(0x00f0_67aa_0ba9_02b7));
        assert_eq!(ctx.flags, 1);
        assert_ne!(ctx.span_id, 0x00f0_67aa_0ba9_02b7);
        let out = ctx.header();
        let out = out.to_str().expect("ascii");
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-") && out.ends_with("-01"),
            "{out}"
        );
        assert_eq!(out.len(), 55);
    }

    #[test]
    fn invalid_traceparents_start_a_new_unsampled_trace_and_drop_tracestate() {
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            let mut map = headers(&[("traceparent", bad), ("tracestate", "vendor=1")]);
            let ctx = TraceContext::of(&map);
            assert!(!ctx.continued, "{bad}");
            assert_eq!(ctx.flags, 0);
            assert_ne!(ctx.trace_id, 0);
            ctx.apply(&mut map);
            assert!(!map.contains_key("tracestate"), "{bad}");
            assert!(parse(map["traceparent"].as_bytes()).is_some());
        }
        // A future version's first four fields are read.
        let newer = TraceContext::of(&headers(&[(
            "traceparent",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-later",
        )]));
        assert!(newer.continued);
    }

    #[test]
    fn span_ids_differ_per_request() {
        let a = TraceContext::of(&HeaderMap::new());
        let b = TraceContext::of(&HeaderMap::new());
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(a.trace_id, b.trace_id);
    }
}
