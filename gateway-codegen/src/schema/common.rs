//! What the two converters share: the walk over a schema and the schemas its references reach, the keywords both
//! dialects read alike, references, `readOnly`/`writeOnly`, integer formats, and the helpers for messages and JSON
//! pointers.
//!
//! A [`Converter`] does one conversion in a [`Dialect`]: OpenAPI 3.0 → Draft 4 (`Draft4`, in `schema.rs`) or
//! OpenAPI 3.1 → 2020-12 (`Draft2020`, in `schema/draft2020.rs`). The dialect says what differs: how a schema
//! object is read as a whole (3.0's `nullable` and bare `$ref`, 2020-12's `$ref` beside other keywords), the
//! keywords only it reads or reads its own way, the formats it keeps, where `readOnly`/`writeOnly` are looked for.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::marker::PhantomData;

use serde_json::{Map, Number, Value, json};

use super::{Direction, SchemaError};
use crate::locate::escape_segment;

/// Inline schemas nested deeper than this are refused (no published spec comes close; it keeps recursion bounded).
pub(super) const MAX_DEPTH: usize = 100;
/// References followed in one chain (`A` → `B` → ...) before it is declared a cycle.
pub(super) const MAX_REF_CHAIN: usize = 64;

/// What one JSON Schema dialect the conversion writes does its own way; everything else is [`Converter`]'s.
pub(super) trait Dialect: Sized {
    /// The `format`s kept (the ones `jsonschema` checks in this dialect and that mean the same in OpenAPI); every
    /// other one is dropped.
    const CHECKED_FORMATS: &'static [&'static str];
    /// Whether `exclusiveMinimum`/`exclusiveMaximum` are booleans qualifying `minimum`/`maximum` (Draft 4), which
    /// go with the bound when an integer format replaces it; in 2020-12 they are bounds of their own and stay.
    const EXCLUSIVE_FLAGS: bool;

    /// The options `jsonschema` compiles a schema of this dialect with (`pattern`s are checked to compile with them).
    fn options() -> jsonschema::ValidationOptions<'static>;

    /// The value the reference `reference` (written at `location`, for errors) names in `document`, with its
    /// canonical JSON pointer.
    fn resolve<'a>(document: &'a Value, reference: &str, location: &str) -> Result<(String, &'a Value), SchemaError>;

    /// The boolean schema `value`, converted.
    fn boolean(value: bool) -> Value;

    /// Converts the schema object `map` written at `at` (see [`Converter::convert`]).
    fn object<'a>(
        this: &mut Converter<'a, Self>,
        map: &'a Map<String, Value>,
        at: &str,
        depth: usize,
        inherited: &BTreeSet<String>,
    ) -> Result<Value, SchemaError>;

    /// The keyword `key: value` of a schema object written at `here` (the keyword's own pointer), converted, or
    /// `None` when it is dropped: the keywords this dialect reads its own way, and [`Converter::shared_keyword`]
    /// for the others. `flagged` are the property names the schema may not require (see [`Converter::keywords`]).
    fn keyword<'a>(
        this: &mut Converter<'a, Self>,
        key: &str,
        value: &'a Value,
        here: &str,
        depth: usize,
        flagged: &BTreeSet<String>,
    ) -> Result<Option<Value>, SchemaError>;

    /// Whether the property schema `schema` has `flag: true` (`readOnly`, `writeOnly`), as this dialect reads it
    /// through references.
    fn is_flagged<'a>(this: &Converter<'a, Self>, schema: &'a Value, flag: &str) -> bool;

    /// The values in the schema object `map` that stand for schemas it is the conjunction of (its `allOf`
    /// members, ...), whose flagged properties are its own too.
    fn conjuncts(map: &Map<String, Value>) -> Vec<&Value>;

    /// The schema object one of [`Dialect::conjuncts`] stands for, unless it is not an object or it is reached
    /// through a reference whose target is in `visited` already (its pointer is added to `visited`).
    fn enter<'a>(
        this: &Converter<'a, Self>,
        conjunct: &'a Value,
        visited: &mut HashSet<String>,
    ) -> Option<&'a Map<String, Value>>;
}

/// One conversion in the dialect `D`: the references met so far and the definitions still to convert.
pub(super) struct Converter<'a, D> {
    /// The whole document, for `$ref` resolution.
    pub(super) document: &'a Value,
    /// The message the schema checks.
    direction: Direction,
    /// The schemas references reach, named.
    definitions: Definitions<'a>,
    /// The dialect is only a type: its hooks are associated functions.
    dialect: PhantomData<D>,
}

impl<'a, D: Dialect> Converter<'a, D> {
    /// Converts `schema`, written at the JSON pointer `at` of `document`, and every schema its references reach:
    /// the converted schema, and the converted definitions by name in the order they were first reached.
    pub(super) fn run(
        document: &'a Value,
        schema: &'a Value,
        at: &str,
        direction: Direction,
    ) -> Result<(Value, Map<String, Value>), SchemaError> {
        let mut converter = Self {
            document,
            direction,
            definitions: Definitions::default(),
            dialect: PhantomData,
        };
        let root = converter.convert(schema, at, 0, &BTreeSet::new())?;
        let mut definitions = Map::new();
        while let Some((pointer, value, name)) = converter.definitions.pending.pop_front() {
            let converted = converter.convert(value, &pointer, 0, &BTreeSet::new())?;
            definitions.insert(name, converted);
        }
        Ok((root, definitions))
    }

    /// Converts the schema `value` written at `at`. `inherited` are property names the enclosing schema flags for
    /// this direction (its `readOnly` or `writeOnly` properties), which the `required` of an `allOf` member must not
    /// demand either. (Not so for `oneOf`/`anyOf` members: there a `required` chooses between branches, and a
    /// branch that demands a property the message cannot carry is one the message cannot take.)
    fn convert(
        &mut self,
        value: &'a Value,
        at: &str,
        depth: usize,
        inherited: &BTreeSet<String>,
    ) -> Result<Value, SchemaError> {
        if depth > MAX_DEPTH {
            return Err(error(at, format!("schemas are nested more than {MAX_DEPTH} deep here")));
        }
        match value {
            Value::Bool(value) => Ok(D::boolean(*value)),
            Value::Object(map) => D::object(self, map, at, depth, inherited),
            other => Err(error(
                at,
                format!("a schema must be an object (or `true`/`false`), not {}", kind(other)),
            )),
        }
    }

    /// Converts the schema `value` written at `at` one level down.
    pub(super) fn sub(&mut self, value: &'a Value, at: &str, depth: usize) -> Result<Value, SchemaError> {
        self.convert(value, at, depth + 1, &BTreeSet::new())
    }

    /// The keywords of the schema object `map` written at `at`, each converted by [`Dialect::keyword`] (in the
    /// order written), with `minimum`/`maximum` narrowed to an integer `format` (`int32`, `int64`). The properties
    /// the schema flags for this direction (see [`Converter::flagged_properties`]), and the `inherited` ones, are
    /// not required.
    pub(super) fn keywords(
        &mut self,
        map: &'a Map<String, Value>,
        at: &str,
        depth: usize,
        inherited: &BTreeSet<String>,
    ) -> Result<Map<String, Value>, SchemaError> {
        let mut flagged = inherited.clone();
        self.flagged_properties(map, self.direction.flag(), &mut flagged, &mut HashSet::new(), 0);

        let mut out = Map::new();
        for (key, value) in map {
            if let Some(converted) = D::keyword(self, key, value, &join(at, key), depth, &flagged)? {
                out.insert(key.clone(), converted);
            }
        }

        match map.get("format").and_then(Value::as_str) {
            Some("int32") if is_integer(&out) => integer_bounds::<D>(&mut out, i32::MIN.into(), i32::MAX.into()),
            Some("int64") if is_integer(&out) => integer_bounds::<D>(&mut out, i64::MIN, i64::MAX),
            _ => {}
        }
        Ok(out)
    }

    /// A keyword both dialects read alike, written at `here`, converted (`None`: dropped): `type`, `enum`,
    /// `multipleOf`, `minimum`/`maximum`, the lengths and counts, `pattern`, `properties`, `not`,
    /// `allOf`/`anyOf`/`oneOf` and `format`, each checked for the shape the meta-schema requires. Every other
    /// keyword (annotations, OpenAPI-only keywords, `readOnly`/`writeOnly`, which the parent applies, extensions,
    /// and anything else neither dialect defines) is dropped.
    pub(super) fn shared_keyword(
        &mut self,
        key: &str,
        value: &'a Value,
        here: &str,
        depth: usize,
        flagged: &BTreeSet<String>,
    ) -> Result<Option<Value>, SchemaError> {
        let converted = match key {
            "type" => check_type(value, here)?,
            "enum" => {
                let Value::Array(values) = value else {
                    return Err(error(here, format!("`enum` must be an array, not {}", kind(value))));
                };
                if values.is_empty() {
                    return Err(error(here, "`enum` is empty: no value could ever match"));
                }
                let mut unique: Vec<Value> = Vec::with_capacity(values.len());
                for v in values {
                    if !unique.contains(v) {
                        unique.push(v.clone());
                    }
                }
                Value::Array(unique)
            }
            "multipleOf" => match value.as_f64() {
                Some(n) if n > 0.0 => value.clone(),
                _ => return Err(error(here, "`multipleOf` must be a number greater than 0")),
            },
            "maximum" | "minimum" => {
                if !value.is_number() {
                    return Err(error(here, format!("`{key}` must be a number, not {}", kind(value))));
                }
                value.clone()
            }
            "maxLength" | "minLength" | "maxItems" | "minItems" | "maxProperties" | "minProperties" => {
                Value::Number(count(value, key, here)?)
            }
            "pattern" => {
                let Some(pattern) = value.as_str() else {
                    return Err(error(here, format!("`pattern` must be a string, not {}", kind(value))));
                };
                if let Err(reason) = pattern_compiles::<D>(pattern) {
                    return Err(error(
                        here,
                        format!("`pattern` is not a valid regular expression: {reason}"),
                    ));
                }
                value.clone()
            }
            "properties" => {
                // A `readOnly` property may not be sent in a request at all.
                let request = self.direction == Direction::Request;
                self.schema_map(value, key, here, depth, |this, _, property, _| {
                    Ok((request && D::is_flagged(this, property, "readOnly")).then(|| json!({"not": {}})))
                })?
            }
            "not" => self.sub(value, here, depth)?,
            "allOf" | "anyOf" | "oneOf" => return self.members(key, value, here, depth, flagged),
            "format" => {
                let Some(format) = value.as_str() else {
                    return Err(error(here, format!("`format` must be a string, not {}", kind(value))));
                };
                if !D::CHECKED_FORMATS.contains(&format) {
                    return Ok(None);
                }
                value.clone()
            }
            _ => return Ok(None),
        };
        Ok(Some(converted))
    }

    /// An array of schemas written at `here` (`allOf`/`anyOf`/`oneOf`, 2020-12's `prefixItems`), converted; an
    /// empty `allOf` or `prefixItems` holds for every value and is dropped. The members of an `allOf` may not
    /// require the `flagged` properties either.
    pub(super) fn members(
        &mut self,
        key: &str,
        value: &'a Value,
        here: &str,
        depth: usize,
        flagged: &BTreeSet<String>,
    ) -> Result<Option<Value>, SchemaError> {
        let Value::Array(members) = value else {
            return Err(error(here, format!("`{key}` must be an array, not {}", kind(value))));
        };
        if members.is_empty() {
            if key == "allOf" || key == "prefixItems" {
                return Ok(None); // holds for every value
            }
            return Err(error(here, format!("`{key}` is empty: no value could ever match")));
        }
        let none = BTreeSet::new();
        let passed = if key == "allOf" { flagged } else { &none };
        let mut converted = Vec::with_capacity(members.len());
        for (i, member) in members.iter().enumerate() {
            converted.push(self.convert(member, &join(here, &i.to_string()), depth + 1, passed)?);
        }
        Ok(Some(Value::Array(converted)))
    }

    /// Converts a map of schemas written at `here` (`properties`, 2020-12's `patternProperties` and
    /// `dependentSchemas`): each member as `each` says (given the member's name, schema and pointer), or, where it
    /// says `None`, as a schema one level down.
    pub(super) fn schema_map(
        &mut self,
        value: &'a Value,
        key: &str,
        here: &str,
        depth: usize,
        mut each: impl FnMut(&mut Self, &'a str, &'a Value, &str) -> Result<Option<Value>, SchemaError>,
    ) -> Result<Value, SchemaError> {
        let Value::Object(members) = value else {
            return Err(error(here, format!("`{key}` must be an object, not {}", kind(value))));
        };
        let mut converted = Map::new();
        for (name, member) in members {
            let there = join(here, name);
            let schema = match each(self, name, member, &there)? {
                Some(schema) => schema,
                None => self.sub(member, &there, depth)?,
            };
            converted.insert(name.clone(), schema);
        }
        Ok(Value::Object(converted))
    }

    /// Follows the `$ref` value `reference`, written at `location`, to the schema it ends at, through every schema
    /// on the way that has a `$ref` and that `through` says is only a reference (`through` sees each of them), and
    /// gives that schema a name under the definitions (queueing it for conversion the first time).
    pub(super) fn reference(
        &mut self,
        reference: &'a Value,
        location: &str,
        mut through: impl FnMut(&'a Map<String, Value>) -> bool,
    ) -> Result<String, SchemaError> {
        let mut location = location.to_owned();
        let mut reference = reference;
        let mut seen = HashSet::new();
        for _ in 0..MAX_REF_CHAIN {
            let Some(text) = reference.as_str() else {
                return Err(error(
                    &location,
                    format!("`$ref` must be a string, not {}", kind(reference)),
                ));
            };
            let (pointer, target) = D::resolve(self.document, text, &location)?;
            if !seen.insert(pointer.clone()) {
                return Err(error(
                    &location,
                    format!("`$ref: {text}` is part of a cycle of references that never reaches a schema"),
                ));
            }
            if let Some(map) = target.as_object()
                && let Some(next) = map.get("$ref")
                && through(map)
            {
                location = join(&pointer, "$ref");
                reference = next;
                continue;
            }
            return Ok(self.definitions.name(pointer, target));
        }
        Err(error(
            &location,
            format!("a chain of more than {MAX_REF_CHAIN} references never reaches a schema"),
        ))
    }

    /// Adds to `out` the names of the properties of `map`, and of the schemas it is the conjunction of (see
    /// [`Dialect::conjuncts`], each followed as [`Dialect::enter`] says), whose schema has `flag: true`.
    fn flagged_properties(
        &self,
        map: &'a Map<String, Value>,
        flag: &str,
        out: &mut BTreeSet<String>,
        visited: &mut HashSet<String>,
        depth: usize,
    ) {
        if depth > MAX_DEPTH {
            return;
        }
        if let Some(Value::Object(properties)) = map.get("properties") {
            for (name, property) in properties {
                if D::is_flagged(self, property, flag) {
                    out.insert(name.clone());
                }
            }
        }
        for conjunct in D::conjuncts(map) {
            if let Some(target) = D::enter(self, conjunct, visited) {
                self.flagged_properties(target, flag, out, visited, depth + 1);
            }
        }
    }
}

/// Narrows `minimum`/`maximum` to `[min, max]` where they are absent or looser (in Draft 4 a replaced bound's
/// `exclusiveMinimum`/`exclusiveMaximum` goes with it; 2020-12's exclusive bounds are numbers of their own and stay
/// as they are).
fn integer_bounds<D: Dialect>(out: &mut Map<String, Value>, min: i64, max: i64) {
    for (bound, exclusive, limit, looser) in [
        ("minimum", "exclusiveMinimum", min, std::cmp::Ordering::Less),
        ("maximum", "exclusiveMaximum", max, std::cmp::Ordering::Greater),
    ] {
        let replaced = out
            .get(bound)
            .and_then(Value::as_number)
            .is_none_or(|n| compare(n, limit) == looser);
        if replaced {
            out.insert(String::from(bound), Value::Number(limit.into()));
            if D::EXCLUSIVE_FLAGS {
                out.remove(exclusive);
            }
        }
    }
}

/// Whether the runtime can compile `pattern` (the same engine and dialect as for the whole schema).
pub(super) fn pattern_compiles<D: Dialect>(pattern: &str) -> Result<(), String> {
    match D::options().build(&json!({ "pattern": pattern })) {
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

/// The names a `required` (or one 2020-12 `dependentRequired` entry) written at `at` lists, without the ones in
/// `flagged`, each once.
pub(super) fn property_names(
    names: &[Value],
    key: &str,
    at: &str,
    flagged: &BTreeSet<String>,
) -> Result<Vec<Value>, SchemaError> {
    let mut kept: Vec<Value> = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        let Some(text) = name.as_str() else {
            return Err(error(
                &join(at, &i.to_string()),
                format!("`{key}` lists property names, not {}", kind(name)),
            ));
        };
        if !flagged.contains(text) && !kept.contains(name) {
            kept.push(name.clone());
        }
    }
    Ok(kept)
}

/// The referenced schemas of one conversion: each named once, queued for conversion on first use.
#[derive(Default)]
struct Definitions<'a> {
    /// Canonical pointer of each referenced schema → its name under `definitions` (`$defs`).
    names: HashMap<String, String>,
    /// Names given out.
    taken: HashSet<String>,
    /// Referenced schemas not converted yet: pointer, value, name.
    pending: VecDeque<(String, &'a Value, String)>,
}

impl<'a> Definitions<'a> {
    /// The name of the schema at `pointer`, given (and the schema queued) on first use: the component's name for
    /// `#/components/schemas/<name>`, the pointer's segments joined by `.` otherwise, sanitised and made unique.
    fn name(&mut self, pointer: String, target: &'a Value) -> String {
        if let Some(name) = self.names.get(&pointer) {
            return name.clone();
        }
        let segments = split_pointer(&pointer);
        let wanted: Vec<&str> = match segments.as_slice() {
            [components, schemas, name] if components == "components" && schemas == "schemas" => vec![name.as_str()],
            [components, rest @ ..] if components == "components" && !rest.is_empty() => {
                rest.iter().map(String::as_str).collect()
            }
            all => all.iter().map(String::as_str).collect(),
        };
        let mut base: String = wanted
            .join(".")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() {
            base = String::from("schema");
        }
        let mut name = base.clone();
        let mut n = 2;
        while self.taken.contains(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        self.taken.insert(name.clone());
        self.names.insert(pointer.clone(), name.clone());
        self.pending.push_back((pointer, target, name.clone()));
        name
    }
}

pub(super) fn error(pointer: &str, message: impl Into<String>) -> SchemaError {
    SchemaError {
        pointer: pointer.to_owned(),
        message: message.into(),
    }
}

/// The value the local reference `reference` (written at `location`, for errors) names in `document`, with its
/// canonical JSON pointer.
pub(super) fn resolve_local<'a>(
    document: &'a Value,
    reference: &str,
    location: &str,
) -> Result<(String, &'a Value), SchemaError> {
    let Some(fragment) = reference.strip_prefix('#') else {
        return Err(error(
            location,
            format!("`$ref: {reference}` points outside this document; only local references (`#/...`) are supported"),
        ));
    };
    let Some(fragment) = percent_decode(fragment) else {
        return Err(error(
            location,
            format!("`$ref: {reference}` is not valid UTF-8 once percent-decoded"),
        ));
    };
    if !fragment.is_empty() && !fragment.starts_with('/') {
        return Err(error(
            location,
            format!("`$ref: {reference}` is not a JSON pointer (`#/components/schemas/Name`)"),
        ));
    }
    let mut target = document;
    let mut canonical = String::new();
    for raw in fragment.split('/').skip(1) {
        let Some(segment) = unescape(raw) else {
            return Err(error(
                location,
                format!("`$ref: {reference}` has a `~` not followed by `0` or `1`"),
            ));
        };
        let next = match target {
            Value::Object(map) => map.get(&segment),
            Value::Array(items) => index(&segment).and_then(|i| items.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            return Err(error(
                location,
                format!("`$ref: {reference}` points to nothing in this document"),
            ));
        };
        canonical.push('/');
        canonical.push_str(&escape_segment(&segment));
        target = next;
    }
    Ok((canonical, target))
}

/// Whether the converted keywords declare an integer (and not also any number).
fn is_integer(out: &Map<String, Value>) -> bool {
    match out.get("type") {
        Some(Value::String(t)) => t == "integer",
        Some(Value::Array(types)) => types.iter().any(|t| t == "integer") && !types.iter().any(|t| t == "number"),
        _ => false,
    }
}

/// `n` compared with `bound`, exactly for integers.
fn compare(n: &Number, bound: i64) -> std::cmp::Ordering {
    if let Some(i) = n.as_i64() {
        i.cmp(&bound)
    } else if n.is_u64() {
        std::cmp::Ordering::Greater // beyond i64::MAX
    } else {
        // Floats: an i64 bound as f64 is within one unit, which is as exact as a float bound can be here.
        #[allow(clippy::cast_precision_loss)]
        let bound = bound as f64;
        n.as_f64()
            .and_then(|f| f.partial_cmp(&bound))
            .unwrap_or(std::cmp::Ordering::Equal)
    }
}

const TYPES: [&str; 7] = ["array", "boolean", "integer", "number", "null", "object", "string"];

/// `type` as Draft 4 and 2020-12 accept it: one of the seven names, or a non-empty array of distinct ones.
fn check_type(value: &Value, at: &str) -> Result<Value, SchemaError> {
    let known = |t: &str| TYPES.contains(&t);
    match value {
        Value::String(t) if known(t) => Ok(value.clone()),
        Value::Array(types) if !types.is_empty() => {
            let mut unique: Vec<Value> = Vec::with_capacity(types.len());
            for (i, t) in types.iter().enumerate() {
                match t.as_str() {
                    Some(name) if known(name) => {
                        if !unique.contains(t) {
                            unique.push(t.clone());
                        }
                    }
                    _ => return Err(error(&join(at, &i.to_string()), unknown_type(t))),
                }
            }
            Ok(Value::Array(unique))
        }
        _ => Err(error(at, unknown_type(value))),
    }
}

fn unknown_type(value: &Value) -> String {
    if let Some(t) = value.as_str().map(str::to_ascii_lowercase)
        && TYPES.contains(&t.as_str())
    {
        return format!("unknown type {}: types are written in lower case (`{t}`)", short(value));
    }
    format!(
        "unknown type {}: `type` is one of {}",
        short(value),
        TYPES.map(|t| format!("`{t}`")).join(", ")
    )
}

/// A length or count keyword's value: a non-negative integer (`2.0` is read as `2`).
pub(super) fn count(value: &Value, key: &str, at: &str) -> Result<Number, SchemaError> {
    if let Some(n) = value.as_u64() {
        return Ok(n.into());
    }
    match value.as_f64() {
        Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9_007_199_254_740_992.0 => {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let n = f as u64;
            Ok(n.into())
        }
        _ => Err(error(
            at,
            format!("`{key}` must be a whole number, 0 or more, not {}", short(value)),
        )),
    }
}

/// A value's JSON kind, for messages.
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value as JSON, cut short for messages.
pub(super) fn short(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 60 {
        text.chars().take(60).collect::<String>() + "…"
    } else {
        text
    }
}

/// `base` with one more (escaped) segment.
pub(super) fn join(base: &str, segment: &str) -> String {
    format!("{base}/{}", escape_segment(segment))
}

/// The unescaped segments of a canonical JSON pointer.
fn split_pointer(pointer: &str) -> Vec<String> {
    pointer.split('/').skip(1).filter_map(unescape).collect()
}

/// One JSON pointer segment unescaped (`~1` → `/`, `~0` → `~`); `None` for a `~` followed by anything else.
pub(super) fn unescape(segment: &str) -> Option<String> {
    if !segment.contains('~') {
        return Some(segment.to_owned());
    }
    let mut out = String::with_capacity(segment.len());
    let mut chars = segment.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// An array index segment: digits, no leading zero (RFC 6901).
fn index(segment: &str) -> Option<usize> {
    let digits = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
    if !digits || (segment.len() > 1 && segment.starts_with('0')) {
        return None;
    }
    segment.parse().ok()
}

/// A URI fragment percent-decoded (`%7B` → `{`); a `%` not followed by two hex digits is kept as written.
fn percent_decode(text: &str) -> Option<String> {
    if !text.contains('%') {
        return Some(text.to_owned());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| bytes.get(j).and_then(|c| (*c as char).to_digit(16));
        if b == b'%'
            && let (Some(high), Some(low)) = (hex(i + 1), hex(i + 2))
        {
            #[allow(clippy::cast_possible_truncation)]
            out.push((high * 16 + low) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Test helpers of both dialects' tests.
#[cfg(test)]
pub(super) mod testing {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::Value;

    use crate::schema::{FormScalar, check_compiles, form_fields};

    /// The converted schema `schema`, checked to compile as the runtime compiles it, built with `options` (formats
    /// checked).
    pub(in crate::schema) fn validator(
        options: jsonschema::ValidationOptions<'_>,
        schema: &Value,
    ) -> jsonschema::Validator {
        check_compiles(schema).unwrap();
        options.should_validate_formats(true).build(schema).unwrap()
    }

    /// Checks that the converted schema `converted`, built with `options`, accepts each of `valid` and refuses each
    /// of `invalid`.
    pub(in crate::schema) fn assert_instances(
        options: jsonschema::ValidationOptions<'_>,
        converted: &Value,
        valid: &[Value],
        invalid: &[Value],
    ) {
        let v = validator(options, converted);
        for instance in valid {
            assert!(v.is_valid(instance), "{instance} should be valid against {converted}");
        }
        for instance in invalid {
            assert!(
                !v.is_valid(instance),
                "{instance} should be invalid against {converted}"
            );
        }
    }

    /// Checks that [`form_fields`] of `converted` are `expected`: name, scalar, list.
    pub(in crate::schema) fn assert_form_fields(converted: &Value, expected: &[(&str, FormScalar, bool)]) {
        let fields: Vec<(String, FormScalar, bool)> = form_fields(converted)
            .into_iter()
            .map(|f| (f.name, f.scalar, f.list))
            .collect();
        let expected: Vec<(String, FormScalar, bool)> =
            expected.iter().map(|(n, s, l)| ((*n).to_owned(), *s, *l)).collect();
        assert_eq!(fields, expected);
    }
}
