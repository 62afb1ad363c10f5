//! Rust types from schemas, for the typed requests and responses of function targets.
//!
//! Each component schema becomes one named type, shared by every operation that refers to it; inline schemas get a
//! name from where they are (`CreatePetBody`, `PetOwner` for property `owner` of `Pet`). The mapping is OpenAPI 3.0's:
//!
//! | schema | Rust |
//! |---|---|
//! | `type: object` with `properties` | a struct (`Option` for properties not `required`) |
//! | `type: object` with only `additionalProperties` | `BTreeMap<String, T>` |
//! | `type: string` with `enum` | an enum (serde-renamed variants) |
//! | `string` (any `format`), `boolean` | `String`, `bool` |
//! | `integer` (`int32` / otherwise) | `i32` / `i64` |
//! | `number` (`float` / otherwise) | `f32` / `f64` |
//! | `array` | `Vec<T>` |
//! | `nullable: true` | `Option<T>` |
//! | `allOf` | one struct with the members' properties (a single member: that member) |
//! | `oneOf` / `anyOf` | an untagged enum: the first member that parses |
//! | `{}`, `not`, anything else | `serde_json::Value` |
//!
//! Constraints (`minLength`, `pattern`, …) are not in the types: the body phase checks them before a function is
//! called, against the schema itself.

use std::collections::{BTreeMap, HashMap};

use openapiv3::{
    AdditionalProperties, IntegerFormat, NumberFormat, OpenAPI, ReferenceOr, Schema, SchemaKind, Type,
    VariantOrUnknownOrEmpty,
};

use super::first_line;
use crate::model::{FieldDef, RustType, TypeDef, TypeDefKind};
use crate::names::{self, Scope};
use crate::parse::refs;

/// Nesting followed before a schema is taken as untyped (`serde_json::Value`).
const MAX_DEPTH: usize = 32;

/// Names the `schemas` module must not define (the prelude's, and what generated code refers to unqualified).
const RESERVED: &[&str] = &["Option", "Result", "String", "Vec", "Box", "Self", "Value"];

/// The types made so far: one per component schema used, and the inline ones.
pub(crate) struct TypeSpace<'a> {
    openapi: &'a OpenAPI,
    scope: Scope,
    /// Component schema name → its type's name.
    components: HashMap<String, String>,
    defs: BTreeMap<String, TypeDef>,
}

impl<'a> TypeSpace<'a> {
    pub(crate) fn new(openapi: &'a OpenAPI) -> Self {
        Self {
            openapi,
            scope: Scope::with_reserved(RESERVED),
            components: HashMap::new(),
            defs: BTreeMap::new(),
        }
    }

    /// Every type made, sorted by name.
    pub(crate) fn finish(self) -> Vec<TypeDef> {
        self.defs.into_values().collect()
    }

    /// The Rust type of `schema`; `hint` names it if it must be a new type.
    pub(crate) fn type_of(&mut self, schema: &ReferenceOr<Schema>, hint: &str) -> RustType {
        match schema {
            ReferenceOr::Reference { reference } => self.component(reference, 0),
            ReferenceOr::Item(schema) => self.inline(schema, hint, "", 0),
        }
    }

    fn type_of_boxed(&mut self, schema: &ReferenceOr<Box<Schema>>, hint: &str, origin: &str, depth: usize) -> RustType {
        match schema {
            ReferenceOr::Reference { reference } => self.component(reference, depth),
            ReferenceOr::Item(schema) => self.inline(schema, hint, origin, depth),
        }
    }

    /// The named type of component `reference` (`#/components/schemas/Pet`), made on first use.
    fn component(&mut self, reference: &str, depth: usize) -> RustType {
        let Some(name) = reference.strip_prefix("#/components/schemas/") else {
            return RustType::Value;
        };
        if let Some(existing) = self.components.get(name) {
            return RustType::Named(existing.clone());
        }
        let openapi = self.openapi;
        let Some(schema) = openapi
            .components
            .as_ref()
            .and_then(|c| c.schemas.get(name))
            .and_then(|s| refs::resolve(openapi, s).ok())
        else {
            return RustType::Value;
        };
        let rust = self.scope.claim(names::type_name(name, "Schema"), "");
        // Claimed before its fields are made, so that a schema referring to itself refers to this name.
        self.components.insert(name.to_owned(), rust.clone());
        let origin = format!("#/components/schemas/{name}");
        match self.definition(schema, &rust, depth + 1) {
            Some(kind) => {
                self.define(&rust, schema, origin, kind);
                RustType::Named(rust)
            }
            // A component that is only a scalar or a list is an alias, so that its name still reads in signatures.
            None => {
                let ty = self.plain(schema, &rust, depth + 1);
                self.define(&rust, schema, origin, TypeDefKind::Alias(ty));
                RustType::Named(rust)
            }
        }
    }

    fn define(&mut self, name: &str, schema: &Schema, origin: String, kind: TypeDefKind) {
        let doc = first_line(schema.schema_data.description.as_deref())
            .or_else(|| first_line(schema.schema_data.title.as_deref()));
        let kind = box_self_references(name, kind);
        self.defs.insert(
            name.to_owned(),
            TypeDef {
                name: name.to_owned(),
                doc,
                origin,
                kind,
            },
        );
    }

    /// An inline schema: a new type named from `hint` when it is an object, enum or union, else a plain type.
    fn inline(&mut self, schema: &Schema, hint: &str, origin: &str, depth: usize) -> RustType {
        if depth > MAX_DEPTH {
            return RustType::Value;
        }
        let nullable = schema.schema_data.nullable;
        let ty = match self.definition(schema, hint, depth + 1) {
            Some(TypeDefKind::Alias(ty)) => ty,
            Some(kind) => {
                let name = self.scope.claim(names::type_name(hint, "Inline"), "");
                let origin = if origin.is_empty() {
                    format!("an inline schema ({hint})")
                } else {
                    origin.to_owned()
                };
                self.define(&name, schema, origin, kind);
                RustType::Named(name)
            }
            None => self.plain(schema, hint, depth + 1),
        };
        if nullable { option(ty) } else { ty }
    }

    /// What a schema that needs a type of its own is: a struct, an enum or a union; `None` for the rest.
    fn definition(&mut self, schema: &Schema, hint: &str, depth: usize) -> Option<TypeDefKind> {
        if depth > MAX_DEPTH {
            return None;
        }
        match &schema.schema_kind {
            SchemaKind::Type(Type::String(s)) if !s.enumeration.is_empty() => {
                let values: Vec<String> = s.enumeration.iter().flatten().cloned().collect();
                if values.is_empty() {
                    return None;
                }
                let mut variants = Scope::default();
                Some(TypeDefKind::Enum(
                    values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| (variants.claim(names::type_name(v, &format!("V{i}")), ""), v.clone()))
                        .collect(),
                ))
            }
            SchemaKind::Type(Type::Object(object)) if !object.properties.is_empty() => {
                let required: Vec<&str> = object.required.iter().map(String::as_str).collect();
                Some(TypeDefKind::Struct(self.fields(
                    &object.properties,
                    &required,
                    hint,
                    depth,
                )))
            }
            SchemaKind::Any(any) if !any.properties.is_empty() => {
                let required: Vec<&str> = any.required.iter().map(String::as_str).collect();
                Some(TypeDefKind::Struct(self.fields(
                    &any.properties,
                    &required,
                    hint,
                    depth,
                )))
            }
            SchemaKind::AllOf { all_of } if all_of.len() == 1 => match &all_of[0] {
                ReferenceOr::Reference { reference } => Some(TypeDefKind::Alias(self.component(reference, depth))),
                ReferenceOr::Item(member) => self.definition(member, hint, depth + 1),
            },
            SchemaKind::AllOf { all_of } => {
                // The members' properties, merged; a member that is not an object makes the whole untyped.
                let mut properties = indexmap::IndexMap::new();
                let mut required = Vec::new();
                for member in all_of {
                    let member = refs::resolve(self.openapi, member).ok()?;
                    let (props, req) = match &member.schema_kind {
                        SchemaKind::Type(Type::Object(o)) => (&o.properties, &o.required),
                        SchemaKind::Any(a) if !a.properties.is_empty() => (&a.properties, &a.required),
                        _ => return Some(TypeDefKind::Alias(RustType::Value)),
                    };
                    for (name, prop) in props {
                        properties.insert(name.clone(), prop.clone());
                    }
                    required.extend(req.iter().cloned());
                }
                let required: Vec<&str> = required.iter().map(String::as_str).collect();
                Some(TypeDefKind::Struct(self.fields(&properties, &required, hint, depth)))
            }
            SchemaKind::OneOf { one_of: members } | SchemaKind::AnyOf { any_of: members } => {
                let mut variants = Scope::default();
                let mut out = Vec::new();
                for (i, member) in members.iter().enumerate() {
                    let (name, ty) = match member {
                        ReferenceOr::Reference { reference } => {
                            let short = reference.rsplit('/').next().unwrap_or("");
                            (
                                names::type_name(short, &format!("Variant{i}")),
                                self.component(reference, depth),
                            )
                        }
                        ReferenceOr::Item(item) => {
                            let name =
                                kind_name(&item.schema_kind).map_or_else(|| format!("Variant{i}"), str::to_owned);
                            let origin = format!("member {i} of `{hint}`");
                            let ty = self.inline(item, &format!("{hint}{name}"), &origin, depth + 1);
                            (name, ty)
                        }
                    };
                    out.push((variants.claim(name, ""), ty));
                }
                Some(TypeDefKind::Untagged(out))
            }
            _ => None,
        }
    }

    fn fields(
        &mut self,
        properties: &indexmap::IndexMap<String, ReferenceOr<Box<Schema>>>,
        required: &[&str],
        hint: &str,
        depth: usize,
    ) -> Vec<FieldDef> {
        let mut field_names = Scope::default();
        let mut out = Vec::new();
        for (wire, schema) in properties {
            let origin = format!("property `{wire}` of `{hint}`");
            let ty = self.type_of_boxed(
                schema,
                &format!("{hint}{}", names::type_name(wire, "Field")),
                &origin,
                depth + 1,
            );
            let is_required = required.contains(&wire.as_str());
            let doc = refs::resolve_boxed(self.openapi, schema)
                .ok()
                .and_then(|s| first_line(s.schema_data.description.as_deref()));
            out.push(FieldDef {
                name: field_names.claim(names::field(wire), "_"),
                wire: wire.clone(),
                ty: if is_required { ty } else { option(ty) },
                required: is_required,
                doc,
            });
        }
        out
    }

    /// A schema that needs no type of its own: a scalar, a list, a map, or any JSON.
    fn plain(&mut self, schema: &Schema, hint: &str, depth: usize) -> RustType {
        if depth > MAX_DEPTH {
            return RustType::Value;
        }
        match &schema.schema_kind {
            SchemaKind::Type(Type::String(_)) => RustType::String,
            SchemaKind::Type(Type::Boolean(_)) => RustType::Bool,
            SchemaKind::Type(Type::Integer(i)) => match i.format {
                VariantOrUnknownOrEmpty::Item(IntegerFormat::Int32) => RustType::I32,
                _ => RustType::I64,
            },
            SchemaKind::Type(Type::Number(n)) => match n.format {
                VariantOrUnknownOrEmpty::Item(NumberFormat::Float) => RustType::F32,
                _ => RustType::F64,
            },
            SchemaKind::Type(Type::Array(array)) => match &array.items {
                Some(items) => {
                    let origin = format!("the items of `{hint}`");
                    RustType::Vec(Box::new(self.type_of_boxed(
                        items,
                        &format!("{hint}Item"),
                        &origin,
                        depth + 1,
                    )))
                }
                None => RustType::Vec(Box::new(RustType::Value)),
            },
            SchemaKind::Type(Type::Object(object)) => match &object.additional_properties {
                Some(AdditionalProperties::Schema(values)) => {
                    let values = match values.as_ref() {
                        ReferenceOr::Reference { reference } => self.component(reference, depth),
                        ReferenceOr::Item(item) => self.inline(item, &format!("{hint}Value"), "", depth + 1),
                    };
                    RustType::Map(Box::new(values))
                }
                _ => RustType::Map(Box::new(RustType::Value)),
            },
            _ => RustType::Value,
        }
    }
}

/// A variant name for an inline member of a union, from its type.
fn kind_name(kind: &SchemaKind) -> Option<&'static str> {
    Some(match kind {
        SchemaKind::Type(Type::String(_)) => "Text",
        SchemaKind::Type(Type::Integer(_)) => "Integer",
        SchemaKind::Type(Type::Number(_)) => "Number",
        SchemaKind::Type(Type::Boolean(_)) => "Boolean",
        SchemaKind::Type(Type::Object(_)) => "Object",
        SchemaKind::Type(Type::Array(_)) => "List",
        _ => return None,
    })
}

fn option(ty: RustType) -> RustType {
    match ty {
        RustType::Option(_) | RustType::Value => ty,
        other => RustType::Option(Box::new(other)),
    }
}

/// A struct field whose type is the struct itself (directly, or in an `Option`) is boxed: it would have no size.
fn box_self_references(name: &str, kind: TypeDefKind) -> TypeDefKind {
    let TypeDefKind::Struct(fields) = kind else {
        return kind;
    };
    TypeDefKind::Struct(
        fields
            .into_iter()
            .map(|mut field| {
                field.ty = match field.ty {
                    RustType::Named(n) if n == name => RustType::Boxed(Box::new(RustType::Named(n))),
                    RustType::Option(inner) if matches!(&*inner, RustType::Named(n) if n == name) => {
                        RustType::Option(Box::new(RustType::Boxed(inner)))
                    }
                    other => other,
                };
                field
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space_of(components: &str) -> OpenAPI {
        let text = format!(
            "openapi: 3.0.3\ninfo: {{ title: T, version: '1' }}\npaths: {{}}\ncomponents:\n  schemas:\n{components}"
        );
        serde_yaml::from_str(&text).expect("a spec")
    }

    fn reference(name: &str) -> ReferenceOr<Schema> {
        ReferenceOr::Reference {
            reference: format!("#/components/schemas/{name}"),
        }
    }

    fn def<'d>(defs: &'d [TypeDef], name: &str) -> &'d TypeDefKind {
        &defs
            .iter()
            .find(|d| d.name == name)
            .unwrap_or_else(|| panic!("{name} in {defs:#?}"))
            .kind
    }

    #[test]
    fn objects_enums_nullable_and_maps_map_to_their_rust_types() {
        let openapi = space_of(
            "    Pet:\n      type: object\n      required: [id, status]\n      properties:\n        id: { type: integer, format: int32 }\n        status: { type: string, enum: [available, sold] }\n        tag: { type: string, nullable: true }\n        weights: { type: object, additionalProperties: { type: number } }\n        self: { $ref: '#/components/schemas/Pet' }\n",
        );
        let mut space = TypeSpace::new(&openapi);
        assert_eq!(
            space.type_of(&reference("Pet"), "X"),
            RustType::Named(String::from("Pet"))
        );
        // Used twice, made once.
        assert_eq!(
            space.type_of(&reference("Pet"), "Y"),
            RustType::Named(String::from("Pet"))
        );
        let defs = space.finish();
        assert_eq!(defs.len(), 2, "{defs:#?}");
        let TypeDefKind::Struct(fields) = def(&defs, "Pet") else {
            panic!("a struct")
        };
        let types: Vec<(&str, &RustType, bool)> = fields.iter().map(|f| (f.name.as_str(), &f.ty, f.required)).collect();
        let named = |n: &str| RustType::Named(n.to_owned());
        assert_eq!(types[0], ("id", &RustType::I32, true));
        assert_eq!(types[1], ("status", &named("PetStatus"), true));
        assert_eq!(types[2], ("tag", &RustType::Option(Box::new(RustType::String)), false));
        assert_eq!(
            types[3],
            (
                "weights",
                &RustType::Option(Box::new(RustType::Map(Box::new(RustType::F64)))),
                false
            )
        );
        assert_eq!(types[4].0, "self_");
        assert_eq!(
            types[4].1,
            &RustType::Option(Box::new(RustType::Boxed(Box::new(named("Pet"))))),
            "a struct that contains itself is boxed"
        );
        assert_eq!(
            def(&defs, "PetStatus"),
            &TypeDefKind::Enum(vec![
                (String::from("Available"), String::from("available")),
                (String::from("Sold"), String::from("sold"))
            ])
        );
    }

    #[test]
    fn all_of_merges_members_and_one_of_is_a_union() {
        let openapi = space_of(
            "    Base: { type: object, required: [id], properties: { id: { type: integer } } }\n    Dog:\n      allOf:\n        - $ref: '#/components/schemas/Base'\n        - { type: object, properties: { barks: { type: boolean } } }\n    Pet:\n      oneOf:\n        - $ref: '#/components/schemas/Dog'\n        - { type: string }\n    Alias: { type: array, items: { type: string } }\n",
        );
        let mut space = TypeSpace::new(&openapi);
        space.type_of(&reference("Pet"), "X");
        space.type_of(&reference("Alias"), "X");
        let defs = space.finish();
        let TypeDefKind::Struct(fields) = def(&defs, "Dog") else {
            panic!("a struct")
        };
        let names: Vec<(&str, bool)> = fields.iter().map(|f| (f.name.as_str(), f.required)).collect();
        assert_eq!(names, [("id", true), ("barks", false)]);
        assert_eq!(
            def(&defs, "Pet"),
            &TypeDefKind::Untagged(vec![
                (String::from("Dog"), RustType::Named(String::from("Dog"))),
                (String::from("Text"), RustType::String)
            ])
        );
        assert_eq!(
            def(&defs, "Alias"),
            &TypeDefKind::Alias(RustType::Vec(Box::new(RustType::String)))
        );
    }
}
