//! Rust identifiers from names in a spec, which may be anything: `petId`, `A-B`, `1`, `self`, `find pet by id`.

use std::collections::HashSet;

use heck::{ToSnakeCase, ToUpperCamelCase};

const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern", "false", "fn",
    "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return", "self",
    "Self", "static", "struct", "super", "trait", "true", "try", "type", "unsafe", "use", "where", "while", "abstract",
    "become", "box", "do", "final", "macro", "override", "priv", "typeof", "unsized", "virtual", "yield",
];

fn ascii_only(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect();
    // Collapse the runs of `_` left by punctuation, and trim them at the ends.
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    out.trim_matches('_').to_owned()
}

/// A snake_case field name.
pub fn field(name: &str) -> String {
    let mut ident = ascii_only(&name.to_snake_case());
    if ident.is_empty() {
        ident = String::from("param");
    }
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert_str(0, "p_");
    }
    if KEYWORDS.contains(&ident.as_str()) {
        ident.push('_');
    }
    ident
}

/// An UpperCamelCase type or variant name; `fallback` when the name has no letters or digits.
///
/// The result has no `_` at all, so suffixes appended to it (`Params`, collision numbers) keep it UpperCamelCase
/// for rustc's `non_camel_case_types` lint.
pub fn type_name(name: &str, fallback: &str) -> String {
    let mut ident = ascii_only(&name.to_upper_camel_case()).replace('_', "");
    if ident.is_empty() {
        ident = ascii_only(fallback).replace('_', "");
    }
    if ident.is_empty() {
        ident = String::from("Type");
    }
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, 'V');
    }
    // Letters that were not ASCII are dropped, which can leave a lower-case letter first (`éclair` → `clair`).
    if let Some(first) = ident.get(..1) {
        let upper = first.to_ascii_uppercase();
        ident.replace_range(..1, &upper);
    }
    // `Self` is the only keyword in UpperCamelCase; a suffix keeps it a plain identifier without an underscore.
    if ident == "Self" {
        ident.push_str("Value");
    }
    ident
}

/// Hands out names unique within one scope, suffixing `_2`, `_3`… (or `2`, `3`… for types) on collisions.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    taken: HashSet<String>,
}

impl Scope {
    /// A scope where `reserved` names are already taken.
    pub fn with_reserved(reserved: &[&str]) -> Self {
        Self {
            taken: reserved.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// `candidate`, or the first free numbered variant of it.
    ///
    /// A candidate ending in `_` (an escaped keyword, `self_`) is numbered without doubling the separator (`self_2`,
    /// not `self__2`, which rustc's `non_snake_case` lint refuses).
    pub fn claim(&mut self, candidate: String, separator: &str) -> String {
        if self.taken.insert(candidate.clone()) {
            return candidate;
        }
        let stem = if separator.is_empty() {
            candidate.as_str()
        } else {
            candidate.trim_end_matches(separator)
        };
        let mut n = 2;
        loop {
            let name = format!("{stem}{separator}{n}");
            if self.taken.insert(name.clone()) {
                return name;
            }
            n += 1;
        }
    }

    /// Whether `name` is not taken yet.
    pub fn is_free(&self, name: &str) -> bool {
        !self.taken.contains(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitises() {
        assert_eq!(field("petId"), "pet_id");
        assert_eq!(field("A-B"), "a_b");
        assert_eq!(field("1"), "p_1");
        assert_eq!(field("self"), "self_");
        assert_eq!(field("$filter"), "filter");
        assert_eq!(field("名前"), "param");
        assert_eq!(type_name("find pet by id", "Op"), "FindPetById");
        assert_eq!(type_name("key.get", "Op"), "KeyGet");
        assert_eq!(type_name("2xx", "Op"), "V2xx");
        assert_eq!(type_name("", "Empty"), "Empty");
        assert_eq!(type_name("Self", "Op"), "SelfValue");
        assert_eq!(type_name("éclair", "Op"), "Clair");
        assert_eq!(type_name("_", "V3"), "V3");
        let mut scope = Scope::default();
        assert_eq!(scope.claim("a_b".into(), "_"), "a_b");
        assert_eq!(scope.claim("a_b".into(), "_"), "a_b_2");
    }

    #[test]
    fn colliding_escaped_keywords_stay_snake_case() {
        let mut scope = Scope::default();
        assert_eq!(scope.claim(field("self"), "_"), "self_");
        assert_eq!(scope.claim(field("Self"), "_"), "self_2");
        assert_eq!(scope.claim(field("SELF"), "_"), "self_3");
        let mut types = Scope::default();
        assert_eq!(types.claim(type_name("self", "Op"), ""), "SelfValue");
        assert_eq!(types.claim(type_name("Self", "Op"), ""), "SelfValue2");
    }

    /// rustc's `non_snake_case` rule: no upper-case letter and no `__` once leading and trailing `_` are trimmed.
    fn is_snake_case(ident: &str) -> bool {
        let inner = ident.trim_matches('_');
        !inner.contains("__") && !inner.chars().any(char::is_uppercase)
    }

    /// rustc's `non_camel_case_types` rule: no lower-case first letter, no `__`, no letter beside a `_`.
    fn is_camel_case(ident: &str) -> bool {
        let inner = ident.trim_matches('_');
        let chars: Vec<char> = inner.chars().collect();
        !inner.starts_with(char::is_lowercase)
            && !inner.contains("__")
            && !chars
                .windows(2)
                .any(|w| (w[0].is_alphabetic() && w[1] == '_') || (w[0] == '_' && w[1].is_alphabetic()))
    }

    #[test]
    fn every_name_is_an_identifier_in_the_case_rustc_expects() {
        let weird = [
            "self",
            "Self",
            "SELF",
            "self_",
            "super",
            "crate",
            "type",
            "1",
            "1x",
            "a-b",
            "A-B",
            "__x__",
            "_",
            "",
            "名前",
            "éclair",
            "🦀 crab",
            "$filter",
            "x.y.z",
            "HTTPServer",
            "getHTTP2Stream",
            "a__b",
            "r#type",
            "gen",
            "async",
            "2xx",
            "-1",
            "a b c",
            "ÄÖÜ",
            "Ωmega",
            "snake_case_",
            "_private",
            "self__2",
        ];
        let long = "a".repeat(300);
        let mut fields = Scope::default();
        let mut types = Scope::default();
        for name in weird.iter().copied().chain([long.as_str()]) {
            for _ in 0..3 {
                let f = fields.claim(field(name), "_");
                assert!(syn::parse_str::<syn::Ident>(&f).is_ok(), "{name:?} → field {f:?}");
                assert!(is_snake_case(&f), "{name:?} → field {f:?}");
                let t = types.claim(format!("{}Params", type_name(name, "Operation")), "");
                assert!(syn::parse_str::<syn::Ident>(&t).is_ok(), "{name:?} → type {t:?}");
                assert!(is_camel_case(&t), "{name:?} → type {t:?}");
                let v = type_name(name, "V0");
                assert!(syn::parse_str::<syn::Ident>(&v).is_ok(), "{name:?} → variant {v:?}");
                assert!(is_camel_case(&v), "{name:?} → variant {v:?}");
            }
        }
    }
}
