//! `$ref` resolution for the component kinds the gateway reads: parameters, request bodies, responses, schemas.
//!
//! Only local references (`#/components/<kind>/<name>`) are supported; a reference to another file or to a missing
//! component is a diagnostic at the `$ref`, and a chain of references that loops is cut after a fixed depth.

use openapiv3::{Components, OpenAPI, Parameter, ReferenceOr, RequestBody, Response, Schema};

/// References followed before a chain is declared circular.
const MAX_DEPTH: usize = 32;

/// Why a reference could not be followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefError {
    /// `$ref` points outside this document.
    #[error("`$ref: {0}` points outside this document; only local references (`#/components/...`) are supported")]
    External(String),
    /// `$ref` names a component that does not exist.
    #[error("`$ref: {0}` names a component that does not exist")]
    Missing(String),
    /// `$ref` names the wrong kind of component.
    #[error("`$ref: {reference}` should point into `#/components/{kind}/`")]
    WrongKind {
        /// The reference as written.
        reference: String,
        /// The kind expected here.
        kind: &'static str,
    },
    /// A chain of references never reaches a value.
    #[error("`$ref: {0}` is part of a reference cycle")]
    Cycle(String),
}

/// A component kind that can be the target of a `$ref`.
pub trait Component: Sized {
    /// The key under `components`.
    const KIND: &'static str;
    /// The named components of this kind.
    fn table(components: &Components) -> &indexmap::IndexMap<String, ReferenceOr<Self>>;
}

macro_rules! component {
    ($ty:ty, $kind:literal, $field:ident) => {
        impl Component for $ty {
            const KIND: &'static str = $kind;
            fn table(components: &Components) -> &indexmap::IndexMap<String, ReferenceOr<Self>> {
                &components.$field
            }
        }
    };
}
component!(Parameter, "parameters", parameters);
component!(RequestBody, "requestBodies", request_bodies);
component!(Response, "responses", responses);
component!(Schema, "schemas", schemas);

/// Follows `item` to the value it stands for.
pub fn resolve<'a, T: Component>(spec: &'a OpenAPI, item: &'a ReferenceOr<T>) -> Result<&'a T, RefError> {
    let mut item = item;
    for _ in 0..MAX_DEPTH {
        match item {
            ReferenceOr::Item(value) => return Ok(value),
            ReferenceOr::Reference { reference } => {
                let name = component_name::<T>(reference)?;
                item = spec
                    .components
                    .as_ref()
                    .and_then(|c| T::table(c).get(&name))
                    .ok_or_else(|| RefError::Missing(reference.clone()))?;
            }
        }
    }
    let reference = match item {
        ReferenceOr::Reference { reference } => reference.clone(),
        ReferenceOr::Item(_) => String::new(),
    };
    Err(RefError::Cycle(reference))
}

/// Follows a boxed schema reference (the form used inside schemas).
pub fn resolve_boxed<'a>(spec: &'a OpenAPI, item: &'a ReferenceOr<Box<Schema>>) -> Result<&'a Schema, RefError> {
    match item {
        ReferenceOr::Item(schema) => Ok(schema),
        ReferenceOr::Reference { reference } => {
            let name = component_name::<Schema>(reference)?;
            let target = spec
                .components
                .as_ref()
                .and_then(|c| c.schemas.get(&name))
                .ok_or_else(|| RefError::Missing(reference.clone()))?;
            resolve(spec, target)
        }
    }
}

fn component_name<T: Component>(reference: &str) -> Result<String, RefError> {
    let Some(local) = reference.strip_prefix("#/") else {
        return Err(RefError::External(reference.to_owned()));
    };
    let prefix = format!("components/{}/", T::KIND);
    let name = local.strip_prefix(&prefix).ok_or_else(|| RefError::WrongKind {
        reference: reference.to_owned(),
        kind: T::KIND,
    })?;
    // Component names are JSON pointer segments: unescape `~1` and `~0`, then percent-decoding is not applied
    // (OpenAPI component names are restricted to `[a-zA-Z0-9.\-_]`).
    Ok(crate::locate::unescape_segment(name))
}
