//! Media types: what a request's `Content-Type` is, and whether a declared media range admits it.

/// How the gateway reads a body of some media type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json`, or any `+json` type (`application/merge-patch+json`, `application/problem+json`).
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else: passed through unchecked.
    Other,
}

/// The essence of a `Content-Type` value (`type/subtype`, lower case, without parameters).
pub fn essence(content_type: &str) -> String {
    content_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// How a body of media type `essence` is read.
pub fn kind(essence: &str) -> BodyKind {
    if essence == "application/json" || essence.ends_with("+json") {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// Whether the declared media range `range` (lower case: `application/json`, `application/*`, `*/*`) admits
/// media type `essence`.
pub fn admits(range: &str, essence: &str) -> bool {
    if range == "*/*" || range == essence {
        return true;
    }
    match (range.strip_suffix("/*"), essence.split_once('/')) {
        (Some(main), Some((ty, _))) => main == ty,
        _ => false,
    }
}

/// Of the declared ranges, the one that best admits `essence`: an exact match over `type/*` over `*/*`.
pub fn best<'r, T>(declared: &'r [T], range: impl Fn(&T) -> &str, essence: &str) -> Option<&'r T> {
    let specificity = |r: &str| {
        if r == essence {
            2
        } else if r == "*/*" {
            0
        } else {
            1
        }
    };
    declared
        .iter()
        .filter(|d| admits(range(d), essence))
        .max_by_key(|d| specificity(range(d)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_admit_types() {
        assert!(admits("application/json", "application/json"));
        assert!(admits("application/*", "application/json"));
        assert!(admits("*/*", "text/plain"));
        assert!(!admits("application/json", "text/plain"));
        assert!(!admits("application/*", "text/plain"));
        assert!(!admits("application/json", "application/merge-patch+json"));
    }

    #[test]
    fn content_types_are_read_by_essence() {
        assert_eq!(essence("Application/JSON; charset=utf-8"), "application/json");
        assert_eq!(kind("application/merge-patch+json"), BodyKind::Json);
        assert_eq!(kind("application/x-www-form-urlencoded"), BodyKind::Form);
        assert_eq!(kind("text/plain"), BodyKind::Other);
        let declared = ["*/*", "application/*", "application/json"];
        assert_eq!(best(&declared, |d| d, "application/json"), Some(&"application/json"));
        assert_eq!(best(&declared, |d| d, "application/xml"), Some(&"application/*"));
        assert_eq!(best(&declared, |d| d, "text/csv"), Some(&"*/*"));
    }
}
