//! Contract drift: upstream responses checked against the spec's response schemas (`validate.responses`).
//!
//! A sampled share of each operation's upstream responses is checked: its status must be declared (or covered by
//! a `4XX`-style class or `default`), its `Content-Type` must be one the status declares, and a JSON body must
//! match the declared schema. In `report` mode a mismatch is logged (operation, status, the first JSON pointer and
//! keyword; never a value) and counted, and the client gets the response unchanged; in `enforce` mode it becomes
//! `UPSTREAM_ERROR`. The counts are served at `GET /_gateway/drift`.

use std::cell::Cell;
use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};

use super::Contracts;
use super::media::{self, BodyKind};
use crate::spec::{ApiSpec, ResponseCheckMode, ResponseCheckSpec, ResponseSchemaSpec, StatusMatch};

/// How a response differs from the spec.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mismatch {
    /// The status the upstream sent.
    pub status: u16,
    /// JSON pointer of the first offending value of the body; empty for the whole response.
    pub pointer: String,
    /// What failed: a schema keyword, or `status`, `content-type`, `json`.
    pub keyword: String,
}

/// One operation's counts.
#[derive(Debug, Default)]
struct OperationDrift {
    checked: AtomicU64,
    mismatched: AtomicU64,
    skipped: AtomicU64,
    last: Mutex<Option<Mismatch>>,
}

/// Per-operation counts of checked, mismatched and skipped responses, shared by every worker.
#[derive(Debug)]
pub struct DriftCounters {
    /// One entry per operation of the API, in its order.
    ops: Box<[OperationDrift]>,
}

impl DriftCounters {
    /// Counters for every operation of `api`.
    pub fn new(api: &ApiSpec) -> Self {
        Self {
            ops: api.operations.iter().map(|_| OperationDrift::default()).collect(),
        }
    }

    /// The report served by the admin endpoint: operations whose responses are checked.
    pub fn report(&self, api: &ApiSpec) -> serde_json::Value {
        let operations: Vec<serde_json::Value> = api
            .operations
            .iter()
            .zip(self.ops.iter())
            .filter(|(op, _)| op.responses_check.is_some())
            .map(|(op, drift)| {
                let last = drift
                    .last
                    .lock()
                    .map(|l| l.clone())
                    .unwrap_or_else(|p| p.into_inner().clone());
                serde_json::json!({
                    "operation": op.id,
                    "checked": drift.checked.load(Ordering::Relaxed),
                    "mismatched": drift.mismatched.load(Ordering::Relaxed),
                    "skipped": drift.skipped.load(Ordering::Relaxed),
                    "last_mismatch": last,
                })
            })
            .collect();
        serde_json::json!({ "operations": operations })
    }

    fn op(&self, index: usize) -> Option<&OperationDrift> {
        self.ops.get(index)
    }
}

/// The response check of one operation.
#[derive(Debug)]
pub struct ResponseCheck {
    spec: &'static ResponseCheckSpec,
    contracts: Contracts,
    index: usize,
    operation: &'static str,
}

/// What the check needs of the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyNeed {
    /// Nothing: the status or media type already decided, or there is no schema.
    None,
    /// The whole body, up to `limit` bytes, to be checked against schema `schema` (an index into the table).
    Read {
        /// Largest body checked.
        limit: u64,
        /// The schema of the status and media type.
        schema: usize,
    },
}

impl ResponseCheck {
    /// The check of operation `index` (`operation` is its id, for logs).
    pub fn new(spec: &'static ResponseCheckSpec, contracts: Contracts, index: usize, operation: &'static str) -> Self {
        Self {
            spec,
            contracts,
            index,
            operation,
        }
    }

    /// Whether this response is one of the sampled share.
    pub fn sampled(&self) -> bool {
        self.spec.sample_ppm >= 1_000_000 || random_below(1_000_000) < self.spec.sample_ppm
    }

    /// Whether a mismatch is refused.
    pub fn enforced(&self) -> bool {
        self.spec.mode == ResponseCheckMode::Enforce
    }

    /// Checks the status and media type; says whether the body must be read for the schema.
    pub fn head(&self, status: u16, headers: &HeaderMap) -> Result<BodyNeed, Mismatch> {
        let mismatch = |keyword: &str| Mismatch {
            status,
            pointer: String::new(),
            keyword: keyword.to_owned(),
        };
        let declared = declared_for(self.spec.responses, status).ok_or_else(|| mismatch("status"))?;
        // 204 and 304 never carry a body (RFC 9110 §15.3.5, §15.4.5), whatever the spec declares for them.
        if declared.media.is_empty() || status == 204 || status == 304 {
            return Ok(BodyNeed::None);
        }
        let essence = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(media::essence)
            .unwrap_or_default();
        let (_, schema) =
            media::best(declared.media, |(range, _)| range, &essence).ok_or_else(|| mismatch("content-type"))?;
        let encoded = headers
            .get(CONTENT_ENCODING)
            .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
        Ok(match schema {
            Some(schema) if media::kind(&essence) == BodyKind::Json && !encoded => BodyNeed::Read {
                limit: self.spec.max_body,
                schema: *schema,
            },
            _ => BodyNeed::None,
        })
    }

    /// Checks a JSON body read whole against `schema` (as [`ResponseCheck::head`] found it for the response).
    pub fn body(&self, status: u16, schema: usize, body: &Bytes) -> Result<(), Mismatch> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| Mismatch {
            status,
            pointer: String::new(),
            keyword: "json".to_owned(),
        })?;
        self.contracts.violations(schema, &value).map_err(|v| {
            let first = v.items.into_iter().next();
            Mismatch {
                status,
                pointer: first.as_ref().map(|i| i.pointer.clone()).unwrap_or_default(),
                keyword: first.map(|i| i.keyword).unwrap_or_default(),
            }
        })
    }

    /// Records the outcome of one check.
    pub fn record(&self, outcome: Result<(), &Mismatch>) {
        let Some(drift) = self.contracts.drift().op(self.index) else {
            return;
        };
        drift.checked.fetch_add(1, Ordering::Relaxed);
        if let Err(mismatch) = outcome {
            drift.mismatched.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                operation = self.operation,
                status = mismatch.status,
                pointer = %mismatch.pointer,
                keyword = %mismatch.keyword,
                mode = if self.enforced() { "enforce" } else { "report" },
                "upstream response does not match the spec"
            );
            let mut last = drift.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            *last = Some(mismatch.clone());
        }
    }

    /// Records a response that could not be checked (its body is over the limit, or encoded).
    pub fn skipped(&self) {
        if let Some(drift) = self.contracts.drift().op(self.index) {
            drift.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The declared response for `status`: its code, else its class, else `default`.
fn declared_for(responses: &'static [ResponseSchemaSpec], status: u16) -> Option<&'static ResponseSchemaSpec> {
    let find = |want: StatusMatch| responses.iter().find(|r| r.status == want);
    find(StatusMatch::Code(status))
        .or_else(|| find(StatusMatch::Class(status / 100)))
        .or_else(|| find(StatusMatch::Default))
}

thread_local! {
    static RNG: Cell<u64> = Cell::new({
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u64(0x9e37_79b9_7f4a_7c15);
        hasher.finish() | 1
    });
}

/// A pseudo-random number below `bound` (xorshift64*; sampling needs speed, not unpredictability).
fn random_below(bound: u32) -> u32 {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
        // `r` is below 2^32, so the product shifted back is below `bound`.
        u32::try_from((r * u64::from(bound)) >> 32).unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    static DECLARED: [ResponseSchemaSpec; 3] = [
        ResponseSchemaSpec {
            status: StatusMatch::Code(200),
            media: &[("application/json", Some(0))],
        },
        ResponseSchemaSpec {
            status: StatusMatch::Class(4),
            media: &[],
        },
        ResponseSchemaSpec {
            status: StatusMatch::Default,
            media: &[("application/problem+json", None)],
        },
    ];

    #[test]
    fn statuses_find_their_declared_response() {
        assert_eq!(
            declared_for(&DECLARED, 200).map(|r| r.status),
            Some(StatusMatch::Code(200))
        );
        assert_eq!(
            declared_for(&DECLARED, 404).map(|r| r.status),
            Some(StatusMatch::Class(4))
        );
        assert_eq!(
            declared_for(&DECLARED, 503).map(|r| r.status),
            Some(StatusMatch::Default)
        );
        assert!(declared_for(&DECLARED[..2], 503).is_none());
    }

    #[test]
    fn sampling_is_roughly_the_share_asked() {
        let hits = (0..100_000).filter(|_| random_below(1_000_000) < 100_000).count();
        assert!((8_000..12_000).contains(&hits), "{hits}");
    }
}
