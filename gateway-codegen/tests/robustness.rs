//! The generator against thousands of broken real specs: it never panics, and a spec it refuses gets located errors.
//!
//! The example specs in `specs/` and the real-world corpus in `../shared/specs-corpus/` (when it is there; files over
//! 1 MB are left out to keep the run short) are read into JSON values and broken a few ways at a time by a seeded
//! generator: keys deleted or renamed, values replaced by ones of another type, extreme numbers, odd names, deep
//! nesting, near-duplicate paths, random `x-gateway` settings and random parameters. Each broken spec is written out as
//! JSON and generated from. Every outcome must be `Ok`, or `Err(GenerateError::Spec)` with at least one error, every
//! error with a line; a panic or an internal error fails the test, printing the seed that reproduces it.
//!
//! Each run draws a fresh base seed, so the cases cannot be tuned to; the seed is printed. Environment:
//!
//! - `GATEWAY_ROBUSTNESS_CASES`: cases per test (default 1500; two tests, so 3000 a run);
//! - `GATEWAY_ROBUSTNESS_SECS`: wall-clock cap per test in seconds (default 60);
//! - `GATEWAY_ROBUSTNESS_SEED`: the base seed, to repeat a run;
//! - `GATEWAY_ROBUSTNESS_CASE`: one case's seed (as printed for a failure), to run only that case.
//!
//! A failing case's broken spec is also written to the system's temporary directory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gateway_codegen::model::{
    Api, CacheSettings, EnumType, ListStyle, Literal, Location, Mock, Operation, Param, ParamStruct, ParamType, Scalar,
    Target, Upstream,
};
use gateway_codegen::{GenerateError, Options, Severity, SpecInput, generate};
use serde_json::{Map, Value, json};

/// Specs larger than this are left out: each case copies and re-reads the whole spec.
const MAX_SPEC_BYTES: u64 = 1024 * 1024;
/// Cases per test when `GATEWAY_ROBUSTNESS_CASES` is not set.
const DEFAULT_CASES: usize = 1500;
/// Wall-clock cap per test when `GATEWAY_ROBUSTNESS_SECS` is not set.
const DEFAULT_SECS: u64 = 60;
/// Path items kept from a large spec, so that a case costs about the same whatever the spec's size.
const MAX_PATH_ITEMS: usize = 40;
/// Failures listed before the rest are only counted.
const MAX_REPORTED: usize = 20;

/// Stands for numbers a JSON value cannot hold; replaced in the text after serialization.
const BIG_NEGATIVE: &str = "@@-9223372036854775809@@";
const BIG_POSITIVE: &str = "@@18446744073709551616@@";
const HUGE_EXPONENT: &str = "@@1e400@@";

// ---- a small seeded generator (splitmix64): no dependency, and the same sequence on every platform ----

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` above zero).
    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

// ---- values ----

const WEIRD_STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "self",
    "Self",
    "super",
    "1",
    "1x",
    "a-b",
    "-",
    "_",
    "__",
    "😀",
    "🦀 crab",
    "名前",
    "éclair",
    "\u{202e}rtl",
    "a\r\nb",
    "tab\there",
    "nul\0",
    "{",
    "}",
    "{id}",
    "{petId}",
    "/",
    "//",
    "/{a}{b}",
    "/x/{",
    "~",
    "~1",
    "%2F",
    "..",
    "#/components/schemas/Missing",
    "#/components/parameters/Missing",
    "#/paths",
    "other.yaml#/x",
    "http://",
    "http://127.0.0.1:9",
    "ftp://127.0.0.1",
    "10s",
    "0s",
    "-1s",
    "1e300s",
    "ip",
    "true",
    "null",
    "GET",
    "x-gateway",
    "$ref",
    "query.x",
    "header.X-Tenant",
    "context.api_key",
    "jwt.claims.sub",
    "1MiB",
    "-1MiB",
];

fn weird_string(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => "a".repeat(1 + rng.below(5000)),
        1 => "é".repeat(1 + rng.below(500)),
        2 => format!("{}{}", rng.pick(WEIRD_STRINGS), rng.pick(WEIRD_STRINGS)),
        _ => (*rng.pick(WEIRD_STRINGS)).to_owned(),
    }
}

fn extreme_number(rng: &mut Rng) -> Value {
    match rng.below(14) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(1.5),
        3 => json!(1e300),
        4 => json!(-1e300),
        5 => json!(i64::MAX),
        6 => json!(i64::MIN),
        7 => json!(u64::MAX),
        8 => json!(3_000_000_000_u64),
        9 => json!(-2_147_483_649_i64),
        10 => json!(BIG_NEGATIVE),
        11 => json!(BIG_POSITIVE),
        12 if rng.chance(10) => json!(HUGE_EXPONENT),
        _ => json!(f64::from(f32::MAX) * 2.0),
    }
}

/// Arrays or objects nested `depth` deep around a value.
fn nested(rng: &mut Rng, depth: usize) -> Value {
    let arrays = rng.chance(50);
    let mut value = json!("bottom");
    for _ in 0..depth {
        value = if arrays { json!([value]) } else { json!({ "a": value }) };
    }
    value
}

fn odd_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(12) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 | 3 => extreme_number(rng),
        4..=6 => Value::String(weird_string(rng)),
        7 => json!([]),
        8 => json!({}),
        9 if depth > 0 => json!([odd_value(rng, depth - 1)]),
        10 if depth > 0 => {
            let mut map = Map::new();
            map.insert(weird_string(rng), odd_value(rng, depth - 1));
            Value::Object(map)
        }
        11 if rng.chance(20) => {
            let depth = 100 + rng.below(50);
            nested(rng, depth)
        }
        _ => json!({ "$ref": rng.pick(WEIRD_STRINGS) }),
    }
}

/// The same content as another JSON type, where there is an obvious one.
fn swapped(rng: &mut Rng, value: &Value) -> Value {
    match value {
        Value::String(s) => match rng.below(4) {
            0 => s.parse::<f64>().ok().map_or(json!(1), |f| json!(f)),
            1 => json!(!s.is_empty()),
            2 => json!([s]),
            _ => json!({ s.clone(): s }),
        },
        Value::Number(n) => match rng.below(3) {
            0 => json!(n.to_string()),
            1 => json!(n.as_f64().is_some_and(|f| f != 0.0)),
            _ => json!([n]),
        },
        Value::Bool(b) => match rng.below(3) {
            0 => json!(b.to_string()),
            1 => json!(u8::from(*b)),
            _ => json!([b]),
        },
        Value::Array(items) => match rng.below(3) {
            0 => Value::Object(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v.clone()))
                    .collect(),
            ),
            1 => items.first().cloned().unwrap_or(Value::Null),
            _ => json!(items.len()),
        },
        Value::Object(map) => match rng.below(3) {
            0 => Value::Array(map.values().cloned().collect()),
            1 => json!(map.keys().next().cloned().unwrap_or_default()),
            _ => json!(map.len()),
        },
        Value::Null => odd_value(rng, 1),
    }
}

// ---- finding nodes ----

#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn pointer(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        out.push('/');
        match seg {
            Seg::Key(k) => out.push_str(&k.replace('~', "~0").replace('/', "~1")),
            Seg::Index(i) => out.push_str(&i.to_string()),
        }
    }
    out
}

fn get<'a>(value: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(value, |node, seg| match seg {
        Seg::Key(k) => node.get(k),
        Seg::Index(i) => node.get(*i),
    })
}

fn get_mut<'a>(value: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |node, seg| match seg {
        Seg::Key(k) => node.get_mut(k),
        Seg::Index(i) => node.get_mut(*i),
    })
}

fn children(value: &Value) -> Vec<Seg> {
    match value {
        Value::Object(map) => map.keys().map(|k| Seg::Key(k.clone())).collect(),
        Value::Array(items) => (0..items.len()).map(Seg::Index).collect(),
        _ => Vec::new(),
    }
}

/// A random node: a walk down from `start`, stopping at each level with some chance.
fn walk(doc: &Value, rng: &mut Rng, start: Vec<Seg>) -> Vec<Seg> {
    let mut path = start;
    let depth = path.len();
    while let Some(node) = get(doc, &path) {
        let kids = children(node);
        if kids.is_empty() || (path.len() > depth && rng.chance(22)) {
            break;
        }
        path.push(rng.pick(&kids).clone());
    }
    path
}

/// Where a walk starts: the document, a path item, an operation, or the components.
fn start(doc: &Value, rng: &mut Rng) -> Vec<Seg> {
    let templates: Vec<String> = doc
        .get("paths")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    match rng.below(10) {
        0..=2 => Vec::new(),
        3..=8 if !templates.is_empty() => {
            let mut path = vec![Seg::Key("paths".into()), Seg::Key(rng.pick(&templates).clone())];
            if rng.chance(60)
                && let Some(item) = get(doc, &path)
            {
                let methods = operations_of(item);
                if !methods.is_empty() {
                    path.push(Seg::Key(rng.pick(&methods).clone()));
                }
            }
            path
        }
        _ if doc.get("components").is_some() => vec![Seg::Key("components".into())],
        _ => Vec::new(),
    }
}

const METHODS: &[&str] = &["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn operations_of(item: &Value) -> Vec<String> {
    item.as_object()
        .map(|m| m.keys().filter(|k| METHODS.contains(&k.as_str())).cloned().collect())
        .unwrap_or_default()
}

/// A random operation, as its path.
fn random_operation(doc: &Value, rng: &mut Rng) -> Option<Vec<Seg>> {
    let paths = doc.get("paths")?.as_object()?;
    let candidates: Vec<(String, String)> = paths
        .iter()
        .flat_map(|(t, item)| operations_of(item).into_iter().map(move |m| (t.clone(), m)))
        .collect();
    if candidates.is_empty() {
        return None;
    }
    let (template, method) = rng.pick(&candidates).clone();
    Some(vec![Seg::Key("paths".into()), Seg::Key(template), Seg::Key(method)])
}

// ---- mutations ----

/// Sets `path` to `value`, creating nothing: a path that no longer exists (an earlier mutation) is left alone.
fn set(doc: &mut Value, path: &[Seg], value: Value) {
    if let Some(node) = get_mut(doc, path) {
        *node = value;
    }
}

/// Which `x-gateway` an extension is for: the document's settings differ from an operation's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Root,
    Operation,
}

/// The keys of an `x-gateway` at `level`, as numbers of the cases in [`random_x_gateway`].
fn keys_for(level: Level) -> &'static [usize] {
    match level {
        Level::Root => &[3, 4, 5, 7, 8, 9],
        Level::Operation => &[0, 1, 2, 3, 5, 6, 12],
    }
}

fn random_x_gateway(rng: &mut Rng, depth: usize, level: Level) -> Value {
    let duration = |rng: &mut Rng| {
        if rng.chance(70) {
            json!(rng.pick(&[
                "10s",
                "0s",
                "250ms",
                "-1s",
                "1e300s",
                "99999999999999999999s",
                "5m",
                "soon"
            ]))
        } else {
            odd_value(rng, 1)
        }
    };
    let count = |rng: &mut Rng| {
        if rng.chance(50) {
            json!(rng.pick(&[0, 1, 5, 100, 4_294_967_296_u64]))
        } else {
            extreme_number(rng)
        }
    };
    let name = |rng: &mut Rng| {
        if rng.chance(50) {
            json!(rng.pick(&["pets", "default", "free", "nope"]))
        } else {
            json!(weird_string(rng))
        }
    };
    let mut map = Map::new();
    for _ in 0..1 + rng.below(3) {
        // Mostly keys that belong at this level, so that the settings are checked rather than refused as unknown.
        let which = if rng.chance(85) {
            *rng.pick(keys_for(level))
        } else {
            rng.below(16)
        };
        let (key, value) = match which {
            0 => (
                "target",
                json!({ "upstream": name(rng), "path": rng.pick(WEIRD_STRINGS) }),
            ),
            1 => (
                "target",
                json!({ "mock": { "status": rng.pick(&[json!(200), json!(99), json!(1000), json!("200"), json!(-1)]),
                    "body": odd_value(rng, 2), "headers": { weird_string(rng): weird_string(rng) },
                    "content_type": weird_string(rng) } }),
            ),
            2 => (
                "skip",
                if rng.chance(70) {
                    json!(rng.chance(50))
                } else {
                    odd_value(rng, 1)
                },
            ),
            3 => (
                "cache",
                json!({ "ttl": duration(rng), "key": [rng.pick(WEIRD_STRINGS)],
                    "statuses": [rng.pick(&[json!(200), json!(99), json!(70000), json!("x")])],
                    "invalidate": rng.pick(&["none", "any", "api_key", "everyone"]), "shared": odd_value(rng, 0) }),
            ),
            4 => (
                "cache",
                json!({ "capacity": rng.pick(&["1MiB", "64", "1e300GiB", "-1MiB", ""]), "max_entry": count(rng) }),
            ),
            5 => (
                "throttle",
                json!({ "rate": count(rng), "burst": count(rng), "per": rng.pick(&["ip", "all", "x"]) }),
            ),
            6 => ("plans", json!([name(rng), name(rng)])),
            7 => (
                "upstreams",
                json!({ weird_string(rng): { "url": rng.pick(&["http://127.0.0.1:9", "ftp://x", "", "http://[::1]:99999", "http://a b", "https://example.com/base/"]),
                    "timeout": duration(rng), "connect_timeout": duration(rng) } }),
            ),
            8 => ("name", name(rng)),
            9 => (
                "usage_plans",
                json!({ weird_string(rng): { "throttle": { "rate": count(rng), "burst": count(rng) },
                    "quota": { "limit": count(rng), "period": rng.pick(&["day", "week", "month", "fortnight"]) } } }),
            ),
            10 => ("upstream", name(rng)),
            11 => ("path", json!(rng.pick(WEIRD_STRINGS))),
            12 if depth > 0 => ("target", random_x_gateway(rng, depth - 1, Level::Operation)),
            13 => ("timeout", duration(rng)),
            _ => ("unknown_key", odd_value(rng, 1)),
        };
        map.insert(key.to_owned(), value);
    }
    Value::Object(map)
}

/// The scalar schemas the generator gives distinct Rust types: (type, format).
const SCALAR_KINDS: &[(&str, Option<&str>)] = &[
    ("integer", None),
    ("integer", Some("int32")),
    ("integer", Some("int64")),
    ("number", None),
    ("number", Some("float")),
    ("number", Some("double")),
    ("string", None),
    ("string", Some("uuid")),
    ("string", Some("date-time")),
    ("boolean", None),
];

/// A default at or beyond the edges of what a schema of `ty` and `format` holds.
fn edge_default(rng: &mut Rng, ty: &str, format: Option<&str>, values: &[Value]) -> Value {
    if rng.chance(15) {
        return odd_value(rng, 0);
    }
    match (ty, format) {
        ("integer", _) => match rng.below(12) {
            0 => json!(2_147_483_647),
            1 => json!(2_147_483_648_i64),
            2 => json!(-2_147_483_648_i64),
            3 => json!(-2_147_483_649_i64),
            4 => json!(100.0),
            5 => json!(1.5),
            6 => json!("10"),
            _ => extreme_number(rng),
        },
        ("number", _) => match rng.below(10) {
            0 => json!(3.4e38),
            1 => json!(3.5e38),
            2 => json!(1e-300),
            3 => json!(-0.0),
            4 => json!(f64::MAX),
            5 => json!("1.5"),
            _ => extreme_number(rng),
        },
        ("string", Some("uuid")) => json!(rng.pick(&[
            "123e4567-e89b-12d3-a456-426614174000",
            "123E4567-E89B-12D3-A456-426614174000",
            "123e4567e89b12d3a456426614174000",
            "123e4567-e89b-12d3-a456-42661417400g",
            "not-a-uuid",
            "",
            "00000000-0000-0000-0000-000000000000",
            "ffffffff-ffff-ffff-ffff-ffffffffffff",
            "{123e4567-e89b-12d3-a456-426614174000}",
        ])),
        ("string", _) if !values.is_empty() && rng.chance(70) => rng.pick(values).clone(),
        ("string", _) => json!(weird_string(rng)),
        _ => json!(rng.chance(50)),
    }
}

/// A parameter schema: mostly the scalar and array kinds the generator types, with edge defaults and enums;
/// `gentle` leaves out what the OpenAPI reader refuses outright (odd types, references that go nowhere).
fn random_schema(rng: &mut Rng, depth: usize, gentle: bool) -> Value {
    if !gentle && rng.chance(10) {
        return json!({ "$ref": rng.pick(&["#/components/schemas/Missing", "#/components/parameters/X", "other.yaml#/x", "#/components/schemas/Pet"]) });
    }
    if depth > 0 && rng.chance(15) {
        let mut array = json!({ "type": "array", "items": random_schema(rng, depth - 1, gentle) });
        if rng.chance(20) {
            array["default"] = json!([1, "a"]);
        }
        return array;
    }
    if rng.chance(4) {
        return json!({ "type": "object", "properties": { "a": { "type": "string" } } });
    }
    if depth > 0 && rng.chance(5) {
        return json!({ "allOf": [random_schema(rng, depth - 1, gentle)] });
    }
    let mut map = Map::new();
    let (ty, format) = *rng.pick(SCALAR_KINDS);
    if !gentle && rng.chance(10) {
        map.insert("type".into(), odd_value(rng, 0));
    } else if rng.chance(5) {
        map.insert("type".into(), json!([ty, "null"]));
    } else {
        map.insert("type".into(), json!(ty));
    }
    if let Some(format) = format {
        map.insert("format".into(), json!(format));
    } else if rng.chance(5) {
        map.insert("format".into(), json!(weird_string(rng)));
    }
    let mut values = Vec::new();
    if ty == "string" && rng.chance(35) {
        values = (0..rng.below(6))
            .map(|_| {
                if gentle || rng.chance(80) {
                    json!(weird_string(rng))
                } else {
                    odd_value(rng, 0)
                }
            })
            .collect();
        map.insert("enum".into(), Value::Array(values.clone()));
    }
    if rng.chance(70) {
        map.insert("default".into(), edge_default(rng, ty, format, &values));
    }
    for key in ["minimum", "maximum", "multipleOf"] {
        if rng.chance(5) {
            map.insert(key.into(), extreme_number(rng));
        }
    }
    Value::Object(map)
}

fn random_parameter(rng: &mut Rng, gentle: bool) -> Value {
    let name = if rng.chance(50) {
        json!(rng.pick(&[
            "id",
            "petId",
            "limit",
            "self",
            "Self",
            "status",
            "X-Request-Id",
            "a-b",
            "1",
            "accept"
        ]))
    } else if gentle || rng.chance(80) {
        json!(weird_string(rng))
    } else {
        odd_value(rng, 0)
    };
    let location = if gentle || rng.chance(90) {
        json!(rng.pick(&["query", "query", "header", "path", "cookie"]))
    } else {
        odd_value(rng, 0)
    };
    let mut map = Map::new();
    map.insert("name".into(), name);
    map.insert("in".into(), location);
    if rng.chance(40) {
        let required = if gentle || rng.chance(80) {
            json!(rng.chance(50))
        } else {
            odd_value(rng, 0)
        };
        map.insert("required".into(), required);
    }
    if rng.chance(90) {
        map.insert("schema".into(), random_schema(rng, 2, gentle));
    } else {
        map.insert(
            "content".into(),
            json!({ "application/json": { "schema": random_schema(rng, 1, gentle) } }),
        );
    }
    if rng.chance(20) {
        let style = rng.pick(&[
            "form",
            "simple",
            "label",
            "matrix",
            "spaceDelimited",
            "pipeDelimited",
            "deepObject",
            "x",
        ]);
        map.insert("style".into(), json!(style));
    }
    if rng.chance(20) {
        let explode = if gentle {
            json!(rng.chance(50))
        } else {
            odd_value(rng, 0)
        };
        map.insert("explode".into(), explode);
    }
    if !gentle && rng.chance(10) {
        map.insert("x-gateway".into(), random_x_gateway(rng, 1, Level::Operation));
    }
    Value::Object(map)
}

/// The parameters written in an operation or its path item, as paths.
fn parameters_of(doc: &Value, operation: &[Seg]) -> Vec<Vec<Seg>> {
    let mut out = Vec::new();
    for owner in [operation, &operation[..operation.len().saturating_sub(1)]] {
        let mut list = owner.to_vec();
        list.push(Seg::Key("parameters".into()));
        if let Some(Value::Array(items)) = get(doc, &list) {
            for i in 0..items.len() {
                let mut p = list.clone();
                p.push(Seg::Index(i));
                out.push(p);
            }
        }
    }
    out
}

/// Breaks `doc` in ways its OpenAPI reading survives, so that the checks, lowering and emit see the odd input.
fn mutate_gently(doc: &mut Value, rng: &mut Rng) -> String {
    let Some(operation) = random_operation(doc, rng) else {
        return mutate(doc, rng);
    };
    match rng.below(10) {
        0..=2 => {
            let param = random_parameter(rng, true);
            let text = short(&param);
            if let Some(Value::Object(op)) = get_mut(doc, &operation) {
                let list = op.entry("parameters").or_insert_with(|| json!([]));
                if let Value::Array(items) = list {
                    items.push(param);
                }
            }
            format!("add parameter {text} to {}", pointer(&operation))
        }
        3 | 4 => {
            // Give a declared parameter (inline, not a `$ref`) a new schema, keeping its name and place.
            let params = parameters_of(doc, &operation);
            let Some(path) = (!params.is_empty()).then(|| rng.pick(&params).clone()) else {
                return String::from("nothing (no parameter)");
            };
            let schema = random_schema(rng, 2, true);
            let text = short(&schema);
            match get_mut(doc, &path) {
                Some(Value::Object(param)) if !param.contains_key("$ref") => {
                    param.insert("schema".into(), schema);
                    param.remove("content");
                    format!("set {}/schema = {text}", pointer(&path))
                }
                _ => String::from("nothing (a referenced parameter)"),
            }
        }
        5 | 6 => {
            let mut path = operation;
            if rng.chance(30) {
                path.pop();
            }
            if rng.chance(15) {
                path.clear();
            }
            let level = if path.is_empty() { Level::Root } else { Level::Operation };
            let ext = random_x_gateway(rng, 2, level);
            let text = short(&ext);
            if let Some(Value::Object(node)) = get_mut(doc, &path) {
                node.insert("x-gateway".into(), ext);
            }
            path.push(Seg::Key("x-gateway".into()));
            format!("set {} = {text}", pointer(&path))
        }
        7 => {
            let mut item = operation;
            item.pop();
            let Some(Seg::Key(template)) = item.last().cloned() else {
                return String::from("nothing");
            };
            let new = near_duplicate(rng, &template);
            let value = get(doc, &item).cloned().unwrap_or(Value::Null);
            if let Some(Value::Object(paths)) = doc.get_mut("paths") {
                paths.entry(new.clone()).or_insert(value);
            }
            format!("copy path {template:?} to {new:?}")
        }
        8 => {
            let id = if rng.chance(50) {
                random_operation(doc, rng)
                    .and_then(|other| get(doc, &other)?.get("operationId").cloned())
                    .unwrap_or_else(|| json!("dup"))
            } else {
                json!(weird_string(rng))
            };
            let text = short(&id);
            if let Some(Value::Object(op)) = get_mut(doc, &operation) {
                op.insert("operationId".into(), id);
            }
            format!("set {}/operationId = {text}", pointer(&operation))
        }
        _ => {
            let summary = json!(weird_string(rng));
            let text = short(&summary);
            if let Some(Value::Object(op)) = get_mut(doc, &operation) {
                op.insert(
                    String::from(if rng.chance(50) { "summary" } else { "description" }),
                    summary,
                );
            }
            format!("set the summary or description of {} = {text}", pointer(&operation))
        }
    }
}

/// Path keys that differ from `template` in ways that matter to routing.
fn near_duplicate(rng: &mut Rng, template: &str) -> String {
    match rng.below(14) {
        0 => format!("{template}/"),
        1 => format!("{template}/{{extra}}"),
        2 => template.replace('/', "//"),
        3 => format!("{template}.json"),
        4 => format!("{template}?q=1"),
        5 => format!("{template}#frag"),
        6 => template.to_uppercase(),
        7 => template.replacen('{', "{x", 1),
        8 => template.replacen('}', "}{b}", 1),
        9 => format!("{template}/{{"),
        10 => format!("/_gateway{template}"),
        11 => template.trim_start_matches('/').to_owned(),
        12 => format!("{template}/*rest"),
        _ => format!("{template}/{}", weird_string(rng)),
    }
}

/// Breaks `doc` once; the description says how, to reproduce it by hand.
fn mutate(doc: &mut Value, rng: &mut Rng) -> String {
    // Destructive mutations (0 to 5, 10) mostly stop a spec at parsing; the others keep it readable, so that the
    // checks, lowering and emit see odd input too.
    match rng.below(16) {
        0 | 1 => {
            let from = start(doc, rng);
            let path = walk(doc, rng, from);
            let Some((last, parent)) = path.split_last() else {
                return String::from("nothing (the document is empty)");
            };
            if let Some(node) = get_mut(doc, parent) {
                match (node, last) {
                    (Value::Object(map), Seg::Key(k)) => {
                        map.shift_remove(k);
                    }
                    (Value::Array(items), Seg::Index(i)) if *i < items.len() => {
                        items.remove(*i);
                    }
                    _ => {}
                }
            }
            format!("delete {}", pointer(&path))
        }
        2 | 3 => {
            let from = start(doc, rng);
            let path = walk(doc, rng, from);
            let value = odd_value(rng, 2);
            let text = short(&value);
            set(doc, &path, value);
            format!("set {} = {text}", pointer(&path))
        }
        4 => {
            let from = start(doc, rng);
            let path = walk(doc, rng, from);
            let Some(old) = get(doc, &path).cloned() else {
                return String::from("nothing");
            };
            let value = swapped(rng, &old);
            let text = short(&value);
            set(doc, &path, value);
            format!("swap type of {} to {text}", pointer(&path))
        }
        5 => {
            // Rename a key of an object met on the way.
            let from = start(doc, rng);
            let mut path = walk(doc, rng, from);
            while !path.is_empty() && !matches!(get(doc, &path[..path.len() - 1]), Some(Value::Object(_))) {
                path.pop();
            }
            let Some((Seg::Key(old), parent)) = path.split_last() else {
                return String::from("nothing (no key to rename)");
            };
            let new = if rng.chance(30) {
                old.to_uppercase()
            } else {
                weird_string(rng)
            };
            if let Some(Value::Object(map)) = get_mut(doc, parent)
                && let Some(value) = map.shift_remove(old)
            {
                map.insert(new.clone(), value);
            }
            format!("rename {} to {new:?}", pointer(&path))
        }
        6 | 7 | 12 | 13 => {
            // A random `x-gateway`, merged into or replacing the one of the document, a path item or an operation.
            let mut path = match rng.below(3) {
                0 => Some(Vec::new()),
                1 => random_operation(doc, rng).map(|mut p| {
                    p.pop();
                    p
                }),
                _ => random_operation(doc, rng),
            }
            .unwrap_or_default();
            let level = if path.is_empty() { Level::Root } else { Level::Operation };
            let ext = random_x_gateway(rng, 2, level);
            let text = short(&ext);
            let Some(Value::Object(node)) = get_mut(doc, &path) else {
                return String::from("nothing");
            };
            let merge = rng.chance(50);
            match (merge, node.get_mut("x-gateway")) {
                (true, Some(Value::Object(existing))) => {
                    if let Value::Object(new) = ext {
                        existing.extend(new);
                    }
                }
                _ => {
                    node.insert("x-gateway".into(), ext);
                }
            }
            path.push(Seg::Key("x-gateway".into()));
            format!(
                "{} {} with {text}",
                if merge { "merge into" } else { "set" },
                pointer(&path)
            )
        }
        8 | 14 | 15 => {
            let Some(path) = random_operation(doc, rng) else {
                return String::from("nothing (no operation)");
            };
            let param = random_parameter(rng, false);
            let text = short(&param);
            if let Some(Value::Object(op)) = get_mut(doc, &path) {
                let list = op.entry("parameters").or_insert_with(|| json!([]));
                if !list.is_array() {
                    *list = json!([]);
                }
                if let Value::Array(items) = list {
                    items.push(param);
                }
            }
            format!("add parameter {text} to {}", pointer(&path))
        }
        9 => {
            let Some(mut path) = random_operation(doc, rng) else {
                return String::from("nothing (no operation)");
            };
            path.pop();
            let Some(Seg::Key(template)) = path.last().cloned() else {
                return String::from("nothing");
            };
            let new = near_duplicate(rng, &template);
            let item = get(doc, &path).cloned().unwrap_or(Value::Null);
            if let Some(Value::Object(paths)) = doc.get_mut("paths") {
                paths.entry(new.clone()).or_insert(item);
            }
            format!("copy path {template:?} to {new:?}")
        }
        10 => {
            let from = start(doc, rng);
            let path = walk(doc, rng, from);
            // Mostly within the JSON reader's nesting limit (128), sometimes beyond it.
            let depth = if rng.chance(75) {
                60 + rng.below(60)
            } else {
                150 + rng.below(100)
            };
            let value = nested(rng, depth);
            set(doc, &path, value);
            format!("set {} = {depth} levels of nesting", pointer(&path))
        }
        _ => {
            // Strings and numbers where the generator reads them: a random leaf of an operation.
            let Some(from) = random_operation(doc, rng) else {
                return String::from("nothing (no operation)");
            };
            let path = walk(doc, rng, from);
            let value = match get(doc, &path) {
                Some(Value::Number(_)) => extreme_number(rng),
                Some(Value::String(_)) => Value::String(weird_string(rng)),
                _ => odd_value(rng, 1),
            };
            let text = short(&value);
            set(doc, &path, value);
            format!("set leaf {} = {text}", pointer(&path))
        }
    }
}

/// A value as JSON, cut short for a description.
fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(120).collect();
        format!("{cut}… ({} bytes)", text.len())
    } else {
        text
    }
}

// ---- the specs ----

struct Spec {
    name: String,
    doc: Value,
}

fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

fn spec_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            spec_files(&path, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
            && std::fs::metadata(&path).is_ok_and(|m| m.len() <= MAX_SPEC_BYTES)
        {
            out.push(path);
        }
    }
}

/// The specs under `dir` that read as JSON values (a few corpus files are Swagger 2.0 or otherwise odd: they are
/// mutated all the same; files that are not YAML at all are left out).
fn load(dir: &Path) -> Vec<Spec> {
    let mut files = Vec::new();
    spec_files(dir, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let doc: Value = if path.extension().is_some_and(|e| e == "json") {
                serde_json::from_str(&text).ok()?
            } else {
                serde_yaml::from_str(&text).ok()?
            };
            // Swagger 2.0 documents and documents without paths are refused before anything else is read: breaking
            // them tests nothing more.
            doc.get("openapi")?;
            doc.get("paths")?.as_object().filter(|paths| !paths.is_empty())?;
            let name = path.file_name()?.to_string_lossy().into_owned();
            Some(Spec { name, doc })
        })
        .collect()
}

/// A large spec cut down to a window of its path items: the rest of it (components, extensions) stays.
fn trimmed(doc: &Value, rng: &mut Rng) -> Value {
    let mut doc = doc.clone();
    if let Some(Value::Object(paths)) = doc.get_mut("paths")
        && paths.len() > MAX_PATH_ITEMS
    {
        let first = rng.below(paths.len() - MAX_PATH_ITEMS);
        let kept: Map<String, Value> = std::mem::take(paths)
            .into_iter()
            .skip(first)
            .take(MAX_PATH_ITEMS)
            .collect();
        *paths = kept;
    }
    doc
}

fn text_of(doc: &Value, rng: &mut Rng) -> String {
    let text = if rng.chance(80) {
        serde_json::to_string_pretty(doc).unwrap_or_default()
    } else {
        doc.to_string()
    };
    text.replace(&format!("\"{BIG_NEGATIVE}\""), "-9223372036854775809")
        .replace(&format!("\"{BIG_POSITIVE}\""), "18446744073709551616")
        .replace(&format!("\"{HUGE_EXPONENT}\""), "1e400")
}

// ---- running cases ----

fn env_number(name: &str) -> Option<u64> {
    let raw = std::env::var(name).ok()?;
    let raw = raw.trim();
    match raw.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => raw.parse().ok(),
    }
}

fn fresh_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // Folding the 128-bit time into 64 bits: the seed only needs to differ between runs.
    #[allow(clippy::cast_possible_truncation)]
    let folded = (nanos as u64) ^ ((nanos >> 64) as u64);
    Rng(folded ^ u64::from(std::process::id())).next()
}

std::thread_local! {
    /// The last panic's message and place, on threads that run cases.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// Whether this thread runs cases: its panics are recorded rather than printed.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Records the panics of case-running threads instead of printing each one; other threads print as usual.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.with(std::cell::Cell::get) {
                let place = info.location().map(|l| format!(" at {l}")).unwrap_or_default();
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{message}{place}")));
            } else {
                default(info);
            }
        }));
    });
}

/// How a case that broke nothing ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fine {
    Generated,
    /// Refused, with the start of the first error's message (for `GATEWAY_ROBUSTNESS_VERBOSE`).
    Refused(String),
}

/// What was wrong with one case, if anything.
fn check_case(file: &str, text: &str, default_upstream: bool) -> Result<Fine, String> {
    let options = Options {
        default_upstream: default_upstream.then(|| String::from("http://127.0.0.1:9")),
        spec_dir: None,
        ..Options::default()
    };
    QUIET.with(|q| q.set(true));
    let result = std::panic::catch_unwind(|| {
        generate(
            SpecInput {
                file,
                text,
                dir: None,
                overlays: &[],
            },
            &options,
        )
    });
    QUIET.with(|q| q.set(false));
    match result {
        Err(_) => Err(format!(
            "the generator panicked: {}",
            LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default()
        )),
        Ok(Ok(_)) => Ok(Fine::Generated),
        Ok(Err(GenerateError::Emit(e))) => Err(format!("internal error: {e}")),
        Ok(Err(e @ (GenerateError::Gateway { .. } | GenerateError::NoSpecs))) => {
            Err(format!("one spec failed as a gateway of several: {e}"))
        }
        Ok(Err(GenerateError::Spec { diagnostics, .. })) => {
            let errors: Vec<_> = diagnostics.iter().filter(|d| d.severity == Severity::Error).collect();
            if errors.is_empty() {
                return Err(String::from("refused without an error"));
            }
            match errors.iter().find(|e| e.line().is_none()) {
                Some(unlocated) => Err(format!("an error without a line:\n{unlocated}")),
                None => Ok(Fine::Refused(
                    errors[0]
                        .message
                        .split_whitespace()
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(" "),
                )),
            }
        }
    }
}

/// One case: a spec chosen and broken by `seed`. Returns the description and the text, and what was wrong.
fn run_case(specs: &[Spec], seed: u64) -> (String, String, Result<Fine, String>) {
    let mut rng = Rng(seed);
    let spec = rng.pick(specs);
    let mut doc = trimmed(&spec.doc, &mut rng);
    // Most cases break a spec only in ways its reading survives; the others break anything.
    let gentle = rng.chance(60);
    let mutations: Vec<String> = if gentle {
        (0..1 + rng.below(4))
            .map(|_| mutate_gently(&mut doc, &mut rng))
            .collect()
    } else {
        (0..1 + rng.below(3)).map(|_| mutate(&mut doc, &mut rng)).collect()
    };
    let text = text_of(&doc, &mut rng);
    let default_upstream = rng.chance(if gentle { 90 } else { 50 });
    let file = format!("robustness/{}", spec.name);
    let outcome = check_case(&file, &text, default_upstream);
    let mut description = format!("{} (default upstream: {default_upstream})", spec.name);
    for m in &mutations {
        let _ = write!(description, "\n    - {m}");
    }
    (description, text, outcome)
}

/// Runs the cases of one test over `specs`, and fails listing every case that broke the generator.
fn run_cases(label: &str, specs: &[Spec], salt: u64) {
    install_panic_hook();
    let cases =
        env_number("GATEWAY_ROBUSTNESS_CASES").map_or(DEFAULT_CASES, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let cap = Duration::from_secs(env_number("GATEWAY_ROBUSTNESS_SECS").unwrap_or(DEFAULT_SECS));
    let base = env_number("GATEWAY_ROBUSTNESS_SEED").unwrap_or_else(fresh_seed);
    let only = env_number("GATEWAY_ROBUSTNESS_CASE");
    let seeds: Vec<u64> = match only {
        Some(seed) => vec![seed],
        None => {
            let mut rng = Rng(base ^ salt);
            (0..cases).map(|_| rng.next()).collect()
        }
    };
    let started = Instant::now();
    let mut failures: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    let mut ran = 0;
    let mut generated = 0;
    let mut refusals: BTreeMap<String, usize> = BTreeMap::new();
    for seed in seeds {
        if started.elapsed() > cap {
            break;
        }
        let (description, text, outcome) = run_case(specs, seed);
        ran += 1;
        match &outcome {
            Ok(Fine::Generated) => generated += 1,
            Ok(Fine::Refused(first)) => *refusals.entry(first.clone()).or_default() += 1,
            Err(_) => {}
        }
        if let Err(problem) = outcome {
            let saved = std::env::temp_dir().join(format!("gateway-robustness-{seed:#018x}.json"));
            let _ = std::fs::write(&saved, &text);
            // Failures are grouped by their first line (the panic's message and place), so one bug is one entry.
            let key = problem.lines().next().unwrap_or_default().to_owned();
            failures.entry(key).or_default().push((
                seed,
                format!("{problem}\n  spec: {description}\n  written to {}", saved.display()),
            ));
        }
    }
    println!(
        "robustness ({label}): {ran} cases over {} specs in {:.1}s ({generated} generated, the rest refused), base seed {base:#018x} (GATEWAY_ROBUSTNESS_SEED), {} distinct failure(s)",
        specs.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if std::env::var_os("GATEWAY_ROBUSTNESS_VERBOSE").is_some() {
        let mut common: Vec<_> = refusals.into_iter().collect();
        common.sort_by_key(|entry| std::cmp::Reverse(entry.1));
        for (message, count) in common.iter().take(25) {
            println!("  {count:>5} refused: {message}…");
        }
    }
    if failures.is_empty() {
        return;
    }
    let mut report = String::new();
    for (i, (key, cases)) in failures.iter().enumerate() {
        if i == MAX_REPORTED {
            let _ = writeln!(report, "… and {} more", failures.len() - MAX_REPORTED);
            break;
        }
        let (seed, detail) = &cases[0];
        let _ = writeln!(
            report,
            "\n[{} case(s)] {key}\n  reproduce: GATEWAY_ROBUSTNESS_CASE={seed:#018x} cargo test -p gateway-codegen --test robustness {label}\n  {detail}",
            cases.len()
        );
    }
    panic!("{} distinct failure(s) in {ran} cases:\n{report}", failures.len());
}

#[test]
fn mutated_example_specs_never_panic_and_every_refusal_is_located() {
    let specs = load(&workspace_root().join("specs"));
    assert!(!specs.is_empty(), "the example specs are missing");
    run_cases("example", &specs, 0x6578_616d_706c_6573);
}

#[test]
fn mutated_corpus_specs_never_panic_and_every_refusal_is_located() {
    let specs = load(&workspace_root().join("../shared/specs-corpus"));
    // The corpus is beside the checkout in CI; elsewhere this test has nothing to do.
    if specs.is_empty() {
        return;
    }
    run_cases("corpus", &specs, 0x636f_7270_7573);
}

// ---- emit, on models no spec produces ----

fn param(field: &str, ty: ParamType, default: Literal) -> Param {
    Param {
        name: field.to_owned(),
        field: field.to_owned(),
        location: Location::Query,
        ty,
        required: false,
        default: Some(default),
        list_style: ListStyle::Comma,
        doc: Some(String::from("carriage\rreturn and \u{202e} override")),
    }
}

fn model(fields: Vec<Param>, enums: Vec<EnumType>) -> Api {
    Api {
        name: String::from("t"),
        gateway: None,
        base_path: String::new(),
        spec_file: String::from("specs/t.yaml"),
        title: String::from("T"),
        version: String::from("1"),
        upstreams: vec![Upstream {
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            ..Upstream::plain(String::from("default"), String::from("http://127.0.0.1:9"))
        }],
        operations: vec![Operation {
            id: String::from("op"),
            method: String::from("GET"),
            template: String::from("/x"),
            route: String::from("/x"),
            path_params: Vec::new(),
            path_suffixes: Vec::new(),
            summary: Some(String::from("a\rb")),
            params: Some(ParamStruct {
                name: String::from("OpParams"),
                fields,
                unchecked: Vec::new(),
            }),
            merged: None,
            cache: None,
            security: Vec::new(),
            access: gateway_codegen::model::Access::Open,
            cors: None,
            ip: None,
            compression: None,
            websocket: false,
            plans: Vec::new(),
            throttle: None,
            responses: Vec::new(),
            body: gateway_codegen::model::Body::limit(1024),
            schema_params: Vec::new(),
            transform: None,
            responses_check: None,
            target: Target::Mock(Mock {
                status: 200,
                headers: Vec::new(),
                content_type: String::new(),
                body: String::new(),
            }),
        }],
        enums,
        cache: CacheSettings {
            capacity: 1,
            max_entry: 1,
        },
        throttle: None,
        usage_plans: Vec::new(),
        hosts: Vec::new(),
        responses: Vec::new(),
        schemes: Vec::new(),
        cors: None,
        stages: Vec::new(),
        default_stage: None,
        spec_sha256: String::new(),
        published: None,
        functions: None,
        types: Vec::new(),
        schemas: Vec::new(),
        filters: Vec::new(),
        stores: Vec::new(),
        shared: None,
    }
}

#[test]
fn emit_never_panics_on_literals_and_names_no_spec_produces() {
    let f32_ty = ParamType::Scalar(Scalar::F32);
    let f64_ty = ParamType::Scalar(Scalar::F64);
    let literals = vec![
        param("a", f32_ty.clone(), Literal::Float(1e300)),
        param("b", f32_ty.clone(), Literal::Float(f64::INFINITY)),
        param("c", f32_ty.clone(), Literal::Float(f64::NEG_INFINITY)),
        param("d", f32_ty, Literal::Float(f64::NAN)),
        param("e", f64_ty.clone(), Literal::Float(f64::NAN)),
        param("f", f64_ty, Literal::Float(f64::INFINITY)),
        param("g", ParamType::Scalar(Scalar::I32), Literal::Int(i64::MAX)),
        param("h", ParamType::Scalar(Scalar::I64), Literal::Int(i64::MIN)),
        param(
            "i",
            ParamType::Scalar(Scalar::Uuid),
            Literal::Str(String::from("not-a-uuid")),
        ),
        param("j", ParamType::Scalar(Scalar::Bool), Literal::Float(1.5)),
        param("k", ParamType::List(Scalar::I32), Literal::Variant(String::from("X"))),
    ];
    let emit = |api: &Api| {
        std::panic::catch_unwind(|| {
            gateway_codegen::emit::emit(
                api,
                &gateway_codegen::emit::EmitOptions {
                    runtime_path: String::from("../runtime"),
                    standalone: false,
                    root_path: String::from("../.."),
                    out_dir: String::from("gateways"),
                },
            )
        })
    };
    let files = emit(&model(literals, Vec::new()))
        .expect("emit does not panic on literals")
        .expect("literals of any value are written");
    let params = &files["src/params.rs"];
    for written in [
        "::core::primitive::f32::INFINITY",
        "::core::primitive::f32::NEG_INFINITY",
        "::core::primitive::f32::NAN",
        "::core::primitive::f64::NAN",
        "-9223372036854775808i64",
        "\\u{202e}",
    ] {
        assert!(params.contains(written), "expected {written} in\n{params}");
    }
    assert!(!params.contains('\r') && !params.contains('\u{202e}'), "{params}");

    // Names that are not identifiers are an internal error, not a panic.
    let enums = vec![EnumType {
        name: String::from("1Bad"),
        variants: vec![(String::from("not an ident"), String::from("x"))],
    }];
    let bad = vec![param(
        "self",
        ParamType::Scalar(Scalar::Enum(String::from("1Bad"))),
        Literal::Variant(String::from("not an ident")),
    )];
    let result = emit(&model(bad, enums)).expect("emit does not panic on names");
    assert!(
        matches!(
            result,
            Err(gateway_codegen::emit::EmitError::Tokens {
                file: "src/params.rs",
                ..
            })
        ),
        "{result:?}"
    );
}
