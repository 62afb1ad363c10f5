//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and `tracestate` of a request,
//! propagated to the upstream as one more hop.
//!
//! A valid incoming `traceparent` keeps its trace id and its flags (so the caller's sampling decision holds), and
//! the gateway's hop gets a span id of its own: the upstream sees the gateway as its parent. `tracestate` goes along
//! unchanged with a valid `traceparent` and is dropped without one (the spec ties them together). A request without
//! a valid `traceparent` starts a new trace: not sampled, unless the gateway exports traces itself
//! ([`crate::observe::otlp`]), which samples new traces with its [`Sampler`]. The ids are random (a per-thread
//! generator seeded from the OS), so they cannot be guessed across requests.

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

/// The `sampled` bit of the trace flags.
pub const SAMPLED: u8 = 0x01;

/// Which new traces are sampled: those a request starts because it came without a valid `traceparent` (a caller's
/// own decision is always kept). The decision is made from the trace id's random low 64 bits, as OpenTelemetry's
/// `TraceIdRatioBased` sampler does, so it is the same wherever the same id is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampler {
    /// A trace is sampled when its low 64 bits are at most this (`0`: never, as those bits are never zero).
    threshold: u64,
}

impl Sampler {
    /// No new trace is sampled (the gateway without trace export).
    pub const NEVER: Sampler = Sampler { threshold: 0 };
    /// Every new trace is sampled.
    pub const ALWAYS: Sampler = Sampler { threshold: u64::MAX };

    /// A share `ratio` of new traces is sampled: `0` or less (or NaN) is none, `1` or more is all.
    pub fn ratio(ratio: f64) -> Self {
        if ratio.is_nan() || ratio <= 0.0 {
            Self::NEVER
        } else if ratio >= 1.0 {
            Self::ALWAYS
        } else {
            // Saturating float-to-int conversion: in range by the tests above.
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                clippy::cast_precision_loss
            )]
            let threshold = (ratio * u64::MAX as f64) as u64;
            Self { threshold }
        }
    }

    /// Whether the new trace `trace_id` is sampled.
    fn samples(self, trace_id: u128) -> bool {
        // The low half, on purpose: it is one random value of its own.
        #[allow(clippy::cast_possible_truncation)]
        let low = trace_id as u64;
        low <= self.threshold
    }
}

impl TraceContext {
    /// The context of a request with `headers`: the caller's trace continued, or a new one, not sampled.
    pub fn of(headers: &HeaderMap) -> Self {
        Self::sampled_by(headers, Sampler::NEVER)
    }

    /// Like [`TraceContext::of`], with a new trace sampled as `sampler` decides. A caller's trace keeps its flags.
    pub fn sampled_by(headers: &HeaderMap, sampler: Sampler) -> Self {
        let span_id = random_nonzero_u64();
        match headers.get(&TRACEPARENT).and_then(|v| parse(v.as_bytes())) {
            Some((trace_id, parent_id, flags)) => Self {
                trace_id,
                span_id,
                parent_id: Some(parent_id),
                flags,
                continued: true,
            },
            None => {
                let trace_id = (u128::from(random_nonzero_u64()) << 64) | u128::from(random_nonzero_u64());
                Self {
                    trace_id,
                    span_id,
                    parent_id: None,
                    flags: if sampler.samples(trace_id) { SAMPLED } else { 0 },
                    continued: false,
                }
            }
        }
    }

    /// Whether the trace is sampled (its caller's decision, or the gateway's for a new trace).
    pub fn is_sampled(&self) -> bool {
        self.flags & SAMPLED != 0
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
pub(crate) fn hex_into(out: &mut [u8], bytes: &[u8]) {
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

/// A new span id: random, never zero (for the spans the gateway exports, [`crate::observe::otlp`]).
pub(crate) fn new_span_id() -> u64 {
    random_nonzero_u64()
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
    fn new_traces_are_sampled_as_the_sampler_says_and_a_callers_decision_is_kept() {
        let none = HeaderMap::new();
        assert!(!TraceContext::of(&none).is_sampled());
        assert!(!TraceContext::sampled_by(&none, Sampler::ratio(0.0)).is_sampled());
        assert!(TraceContext::sampled_by(&none, Sampler::ratio(1.0)).is_sampled());
        assert_eq!(Sampler::ratio(f64::NAN), Sampler::NEVER);
        assert_eq!(Sampler::ratio(2.0), Sampler::ALWAYS);
        let half = Sampler::ratio(0.5);
        let sampled = (0..4_000)
            .filter(|_| TraceContext::sampled_by(&none, half).is_sampled())
            .count();
        assert!((1_500..2_500).contains(&sampled), "{sampled} of 4000");
        let unsampled = headers(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")]);
        assert!(!TraceContext::sampled_by(&unsampled, Sampler::ALWAYS).is_sampled());
        let sampled = headers(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]);
        assert!(TraceContext::sampled_by(&sampled, Sampler::NEVER).is_sampled());
    }

    #[test]
    fn span_ids_differ_per_request() {
        let a = TraceContext::of(&HeaderMap::new());
        let b = TraceContext::of(&HeaderMap::new());
        assert_ne!(a.span_id, b.span_id);
        assert_ne!(a.trace_id, b.trace_id);
    }
}
