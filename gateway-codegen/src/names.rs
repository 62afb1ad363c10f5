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
pub fn type_name(name: &str, fallback: &str) -> String {
    let mut ident = ascii_only(&name.to_upper_camel_case()).replace('_', "");
    if ident.is_empty() {
        ident = fallback.to_owned();
    }
    if ident.starts_with(|c: char| c.is_ascii_digit()) {
        ident.insert(0, 'V');
    }
    if KEYWORDS.contains(&ident.as_str()) {
        ident.push('_');
    }
    ident
}

/// Hands out names unique within one scope, suffixing `_2`, `_3`… (or `2`, `3`… for types) on collisions.
#[derive(Debug, Default)]
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
    pub fn claim(&mut self, candidate: String, separator: &str) -> String {
        if self.taken.insert(candidate.clone()) {
            return candidate;
        }
        let mut n = 2;
        loop {
            let name = format!("{candidate}{separator}{n}");
            if self.taken.insert(name.clone()) {
                return name;
            }
            n += 1;
        }
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
        assert_eq!(type_name("Self", "Op"), "Self_");
        let mut scope = Scope::default();
        assert_eq!(scope.claim("a_b".into(), "_"), "a_b");
        assert_eq!(scope.claim("a_b".into(), "_"), "a_b_2");
    }
}
