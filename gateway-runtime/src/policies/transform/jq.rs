//! jq body filters, run by jaq: compiled once at start-up, run per request on the parsed body.
//!
//! A filter sees the body as `.` and the request's values as `$path`, `$query`, `$header` and `$context` (objects
//! of strings; see [`Inputs`]). It must yield exactly one value, which becomes the new body. The generator has
//! already parsed and compiled every filter of the spec, so compiling here only fails on a generator bug.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data};
use jaq_json::Val;

use crate::policies::auth::Caller;

/// The global variables every filter may use, in the order their values are passed.
pub const GLOBALS: [&str; 4] = ["$path", "$query", "$header", "$context"];

type Native = jaq_core::Native<data::JustLut<Val>>;

/// A compiled filter.
pub struct JqFilter {
    filter: jaq_core::compile::Filter<Native>,
    /// Which of [`GLOBALS`] the filter mentions: the others are passed as `null` without being built.
    uses: [bool; 4],
}

impl std::fmt::Debug for JqFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JqFilter")
            .field("uses", &self.uses)
            .finish_non_exhaustive()
    }
}

/// Why a filter did not produce a body.
#[derive(Debug, thiserror::Error)]
pub enum JqError {
    /// The filter failed (`error`, a type error, …). The message may quote body values: log it at debug only.
    #[error("the filter failed: {0}")]
    Failed(String),
    /// The filter yielded no value.
    #[error("the filter yielded no value")]
    Empty,
    /// The filter yielded more than one value.
    #[error("the filter yielded more than one value")]
    Many,
}

/// The values a filter's globals are built from, only when it uses them.
pub struct Inputs<'a> {
    /// `$path`: path parameter name → value.
    pub path: &'a dyn Fn() -> Val,
    /// `$query`: query parameter name → first value, percent-decoded.
    pub query: &'a dyn Fn() -> Val,
    /// `$header`: lower-case header name → first value.
    pub header: &'a dyn Fn() -> Val,
    /// `$context`: `request_id`, `operation_id`, `client_ip`, `api_key` (`{name}` or null).
    pub context: &'a dyn Fn() -> Val,
}

impl JqFilter {
    /// Compiles `code`. Errors are the filter's parse or compile errors, as text.
    pub fn compile(code: &'static str) -> Result<Self, String> {
        let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
        let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
        let arena = Arena::default();
        let modules = Loader::new(defs)
            .load(&arena, File { code, path: () })
            .map_err(|errs| format!("{} parse error(s) in `{code}`", errs.len()))?;
        let filter = Compiler::default()
            .with_funs(funs)
            .with_global_vars(GLOBALS)
            .compile(modules)
            .map_err(|errs| {
                let names: Vec<&str> = errs.iter().flat_map(|(_, e)| e.iter().map(|(name, _)| *name)).collect();
                format!("undefined in `{code}`: {}", names.join(", "))
            })?;
        let uses = GLOBALS.map(|name| mentions(code, name));
        Ok(Self { filter, uses })
    }

    /// Whether the filter reads the request's query or headers (`$query`, `$header`).
    pub fn reads_request(&self) -> bool {
        self.uses[1] || self.uses[2]
    }

    /// Runs the filter on `input`: its one output.
    pub fn run(&self, input: Val, inputs: &Inputs<'_>) -> Result<Val, JqError> {
        let builders: [&dyn Fn() -> Val; 4] = [inputs.path, inputs.query, inputs.header, inputs.context];
        let vars = builders
            .iter()
            .zip(self.uses)
            .map(|(build, used)| if used { build() } else { Val::Null });
        let ctx = Ctx::<data::JustLut<Val>>::new(&self.filter.lut, Vars::new(vars));
        // Not `jaq_core::unwrap_valr`: on `halt` it exits the process. Here every exception is the request's error.
        let mut outputs = self.filter.id.run((ctx, input)).map(|out| {
            out.map_err(|exn| match exn.get_err() {
                Ok(err) => JqError::Failed(err.to_string()),
                Err(other) => match other.get_halt() {
                    Ok(code) => JqError::Failed(format!("the filter called halt({code})")),
                    Err(_) => JqError::Failed("the filter raised an exception outside any `try`".to_owned()),
                },
            })
        });
        let first = match outputs.next() {
            None => return Err(JqError::Empty),
            Some(Err(err)) => return Err(err),
            Some(Ok(value)) => value,
        };
        match outputs.next() {
            None => Ok(first),
            Some(_) => Err(JqError::Many),
        }
    }
}

/// Whether `code` mentions variable `name` (not as the prefix of a longer name).
fn mentions(code: &str, name: &str) -> bool {
    code.match_indices(name).any(|(at, _)| {
        !code[at + name.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '_')
    })
}

/// A JSON object of strings, for the filter's globals.
pub fn object<'a>(pairs: impl IntoIterator<Item = (&'a str, String)>) -> Val {
    Val::obj(
        pairs
            .into_iter()
            .map(|(k, v)| (Val::from(k.to_owned()), Val::from(v)))
            .collect(),
    )
}

/// `$context`: what the gateway knows of the request.
pub fn context(ctx: &crate::pipeline::RequestCtx) -> Val {
    let text = |s: &str| Val::from(s.to_owned());
    let mut map = jaq_json::Map::default();
    map.insert(text("request_id"), text(ctx.request_id.to_str().unwrap_or("")));
    map.insert(text("operation_id"), text(ctx.operation.map_or("", |op| op.id)));
    map.insert(
        text("client_ip"),
        ctx.client
            .map_or(Val::Null, |peer| Val::from(peer.ip().to_canonical().to_string())),
    );
    let api_key = ctx
        .caller
        .as_ref()
        .and_then(Caller::key_name)
        .map_or(Val::Null, |name| {
            let mut key = jaq_json::Map::default();
            key.insert(text("name"), text(name));
            Val::obj(key)
        });
    map.insert(text("api_key"), api_key);
    // `$context.jwt.claims`: the caller's verified claims (null without a token).
    let jwt = ctx
        .caller
        .as_ref()
        .and_then(|c| c.token.as_deref())
        .map_or(Val::Null, |token| {
            let mut jwt = jaq_json::Map::default();
            let claims = serde_json::Value::Object(token.claims.clone());
            jwt.insert(text("claims"), from_json(&claims));
            Val::obj(jwt)
        });
    map.insert(text("jwt"), jwt);
    Val::obj(map)
}

/// Parses a JSON body into a filter's input.
pub fn parse(body: &[u8]) -> Result<Val, String> {
    jaq_json::read::parse_single(body).map_err(|e| e.to_string())
}

/// A filter's input from an already parsed JSON document.
pub fn from_json(value: &serde_json::Value) -> Val {
    use serde::Deserialize as _;
    // Every serde_json value is a JSON value jaq can hold.
    Val::deserialize(value).unwrap_or(Val::Null)
}

/// The output as a JSON body. Byte strings and invalid UTF-8 are written as text (invalid bytes replaced), keys
/// that are not strings as their JSON text, `NaN` and infinities as `null` (as jq does when it prints JSON).
///
/// Written here rather than with jaq's `Display`, which formats character by character through `fmt`: for a
/// 2 KiB body this is about ten times fewer instructions (docs/benchmarks.md, `contract`).
pub fn to_json(value: &Val) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    write_json(value, &mut out);
    out
}

fn write_json(value: &Val, out: &mut Vec<u8>) {
    use std::io::Write as _;
    match value {
        Val::Null => out.extend_from_slice(b"null"),
        Val::Bool(true) => out.extend_from_slice(b"true"),
        Val::Bool(false) => out.extend_from_slice(b"false"),
        Val::Num(jaq_json::Num::Float(x)) if !x.is_finite() => out.extend_from_slice(b"null"),
        Val::Num(jaq_json::Num::Int(i)) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        // Writing into a Vec cannot fail.
        Val::Num(n) => drop(write!(out, "{n}")),
        Val::TStr(bytes) | Val::BStr(bytes) => write_str(bytes, out),
        Val::Arr(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json(item, out);
            }
            out.push(b']');
        }
        Val::Obj(map) => {
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                match key {
                    Val::TStr(bytes) | Val::BStr(bytes) => write_str(bytes, out),
                    other => {
                        let text = to_json(other);
                        write_str(&text, out);
                    }
                }
                out.push(b':');
                write_json(item, out);
            }
            out.push(b'}');
        }
    }
}

/// A JSON string of `bytes` read as UTF-8. Most strings need no escape: those are copied whole (UTF-8 validation and
/// the escape scan are tight loops); the others are escaped by serde_json.
fn write_str(bytes: &[u8], out: &mut Vec<u8>) {
    let plain = !bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\');
    match std::str::from_utf8(bytes) {
        Ok(_) if plain => {
            out.reserve(bytes.len() + 2);
            out.push(b'"');
            out.extend_from_slice(bytes);
            out.push(b'"');
        }
        // Serializing a string into a Vec cannot fail.
        Ok(text) => drop(serde_json::to_writer(&mut *out, text)),
        Err(_) => drop(serde_json::to_writer(&mut *out, &*String::from_utf8_lossy(bytes))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none() -> Val {
        Val::Null
    }

    fn run(code: &'static str, body: &str) -> Result<String, JqError> {
        let filter = JqFilter::compile(code).expect("compiles");
        let path = || object([("petId", "42".to_owned())]);
        let inputs = Inputs {
            path: &path,
            query: &none,
            header: &none,
            context: &none,
        };
        let out = filter.run(parse(body.as_bytes()).expect("json"), &inputs)?;
        Ok(String::from_utf8(to_json(&out)).expect("utf-8"))
    }

    #[test]
    fn filters_reshape_bodies_and_read_globals() {
        assert_eq!(
            run(
                r#"{name: .name, tag: (.tag // "none"), id: $path.petId}"#,
                r#"{"name":"rex","x":1}"#
            )
            .expect("runs"),
            r#"{"name":"rex","tag":"none","id":"42"}"#
        );
        assert_eq!(run(".a.b|map(.*10)", r#"{"a":{"b":[1,2]}}"#).expect("runs"), "[10,20]");
    }

    #[test]
    fn outputs_are_written_as_json() {
        let out = run(
            r#"{s: "a\"b\n\u0001é", n: 1.5, i: -3, f: (1 / 0 | . * 0), t: true, z: null, a: [1, "x"], e: {}}"#,
            "{}",
        )
        .expect("runs");
        let parsed: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert_eq!(
            parsed,
            serde_json::json!({"s": "a\"b\n\u{1}é", "n": 1.5, "i": -3, "f": null, "t": true, "z": null,
                               "a": [1, "x"], "e": {}})
        );
    }

    #[test]
    fn failures_are_errors_not_panics() {
        assert!(matches!(run(r#"error("no")"#, "{}"), Err(JqError::Failed(_))));
        assert!(matches!(run("empty", "{}"), Err(JqError::Empty)));
        assert!(matches!(run(".[]", "[1,2]"), Err(JqError::Many)));
        assert!(matches!(run(".a + 1", r#"{"a":"x"}"#), Err(JqError::Failed(_))));
        // `halt` ends the filter, never the process.
        assert!(matches!(run("halt", "{}"), Err(JqError::Failed(_))));
        assert!(matches!(run(r#""bye" | halt_error(1)"#, "{}"), Err(JqError::Failed(_))));
        assert!(JqFilter::compile("{a: .b").is_err());
        assert!(JqFilter::compile("nosuchfn(1)").is_err());
    }

    #[test]
    fn unused_globals_are_not_built() {
        let filter = JqFilter::compile(".a | $pathology").map(|f| f.uses);
        // `$pathology` is not `$path` (and is undefined, so it does not compile at all).
        assert!(filter.is_err());
        let filter = JqFilter::compile("[$path, $context]").expect("compiles");
        assert_eq!(filter.uses, [true, false, false, true]);
    }
}

#[cfg(test)]
#[test]
fn compiled_filters_are_shared_between_workers() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<JqFilter>();
}
