//! Reading the spec's text into a `serde_json::Value`.
//!
//! YAML goes through serde_yaml into a value type of our own, because serde_json's `Value` refuses integers beyond
//! 64 bits and published specs write such bounds (`minimum: -9223372036854776000`): those are read as floats.

use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::diagnostics::Diagnostic;
use crate::locate::Location;

/// Parses JSON or YAML text into a JSON value; a syntax error is a diagnostic at its line and column.
pub fn read(text: &str) -> Result<Value, Box<Diagnostic>> {
    let trimmed = text.trim_start_matches('\u{feff}');
    // JSON is YAML, but a JSON reader is far faster on multi-megabyte specs and gives better messages for them.
    if trimmed.trim_start().starts_with('{') {
        return serde_json::from_str::<Value>(trimmed).map_err(|e| {
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            Box::new(
                Diagnostic::error("", format!("the spec is not valid JSON: {message}")).at(Location {
                    line: e.line(),
                    column: e.column(),
                }),
            )
        });
    }
    match serde_yaml::from_str::<Lenient>(trimmed) {
        Ok(Lenient(value)) => Ok(value),
        Err(e) => {
            let message = e.to_string();
            let message = message.split(" at line ").next().unwrap_or(&message).to_owned();
            let mut d = Diagnostic::error("", format!("the spec is not valid YAML: {message}"));
            if let Some(l) = e.location() {
                d = d.at(Location {
                    line: l.line(),
                    column: l.column(),
                });
            }
            Err(Box::new(d))
        }
    }
}

/// A JSON value that also accepts 128-bit integers (as floats).
struct Lenient(Value);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(LenientVisitor).map(Lenient)
    }
}

struct LenientVisitor;

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

impl<'de> Visitor<'de> for LenientVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    #[allow(clippy::cast_precision_loss)] // beyond 64 bits, a float is the closest JSON can hold
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| float(v as f64), |n| Value::Number(n.into())))
    }
    #[allow(clippy::cast_precision_loss)]
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(u64::try_from(v).map_or_else(|_| float(v as f64), |n| Value::Number(n.into())))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        Lenient::deserialize(d).map(|l| l.0)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Lenient(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        // Keys are read as strings: YAML's `200:` and `true:` keys are the strings "200" and "true" in JSON terms.
        while let Some((key, Lenient(value))) = map.next_entry::<String, Lenient>()? {
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}
