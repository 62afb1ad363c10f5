//! Maps JSON pointers into the spec to line:column positions in its text.
//!
//! The spec is parsed for meaning by serde (openapiv3, serde_json, yaml), which forgets where things were. Every
//! diagnostic carries a JSON pointer instead, and only when there is something to report does this module walk the
//! YAML event stream (JSON is read the same way) once to find where each reported pointer is. So a valid spec pays
//! nothing for good error messages.

use std::collections::{HashMap, HashSet};

use saphyr_parser::{Event, Parser, Span};

/// A 1-based line and column in the spec's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// Escapes one JSON pointer segment (RFC 6901).
pub fn escape_segment(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Joins segments into a JSON pointer.
pub fn pointer<S: AsRef<str>>(segments: &[S]) -> String {
    let mut out = String::new();
    for s in segments {
        out.push('/');
        out.push_str(&escape_segment(s.as_ref()));
    }
    out
}

enum Frame {
    Mapping { key: Option<String> },
    Sequence { index: usize },
}

/// Finds the location of each wanted pointer: for a mapping entry, where its key is written; for a sequence item,
/// where the item starts. A pointer that names nothing in the text is left out; callers fall back to the nearest
/// ancestor they can find.
pub fn locate(text: &str, wanted: &HashSet<String>) -> HashMap<String, Location> {
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    let mut stack: Vec<Frame> = Vec::new();
    // The pointer of the node being read, kept as one string that grows and shrinks with the stack.
    let mut current = String::new();
    let mut lengths: Vec<usize> = Vec::new();

    let record = |pointer: &str, span: Span, found: &mut HashMap<String, Location>| {
        if wanted.contains(pointer) && !found.contains_key(pointer) {
            found.insert(
                pointer.to_owned(),
                Location {
                    line: span.start.line(),
                    column: span.start.col() + 1,
                },
            );
        }
    };

    for event in Parser::new_from_str(text) {
        let Ok((event, span)) = event else { break };
        let starts_node = matches!(
            event,
            Event::Scalar(..) | Event::Alias(_) | Event::MappingStart(..) | Event::SequenceStart(..)
        );
        if starts_node {
            // Is this node a mapping key? Then remember it and record the entry's location.
            if let Some(Frame::Mapping { key }) = stack.last_mut()
                && key.is_none()
            {
                let text = match &event {
                    Event::Scalar(value, ..) => value.to_string(),
                    _ => String::from("?"),
                };
                let len = current.len();
                current.push('/');
                current.push_str(&escape_segment(&text));
                record(&current, span, &mut found);
                current.truncate(len);
                *key = Some(text);
                // Collection keys cannot occur in an OpenAPI document (JSON has none); a YAML file that has one
                // gets approximate locations after it, never a wrong parse.
                continue;
            }
            // A value: extend the pointer with its key or index.
            let len = current.len();
            match stack.last_mut() {
                Some(Frame::Mapping { key }) => {
                    current.push('/');
                    current.push_str(&escape_segment(key.as_deref().unwrap_or("")));
                }
                Some(Frame::Sequence { index }) => {
                    current.push('/');
                    current.push_str(&index.to_string());
                    record(&current, span, &mut found);
                }
                None => {}
            }
            match event {
                Event::MappingStart(..) => {
                    lengths.push(len);
                    stack.push(Frame::Mapping { key: None });
                }
                Event::SequenceStart(..) => {
                    lengths.push(len);
                    stack.push(Frame::Sequence { index: 0 });
                }
                _ => {
                    current.truncate(len);
                    value_done(&mut stack);
                }
            }
        } else if matches!(event, Event::MappingEnd | Event::SequenceEnd) {
            stack.pop();
            if let Some(len) = lengths.pop() {
                current.truncate(len);
            }
            value_done(&mut stack);
        }
    }
    found
}

/// After a value ends, its parent mapping expects a key again, or its parent sequence moves on.
fn value_done(stack: &mut [Frame]) {
    match stack.last_mut() {
        Some(Frame::Mapping { key }) => *key = None,
        Some(Frame::Sequence { index }) => *index += 1,
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(text: &str, p: &str) -> Option<Location> {
        let wanted = HashSet::from([p.to_owned()]);
        locate(text, &wanted).get(p).copied()
    }

    #[test]
    fn finds_keys_and_items_in_yaml() {
        let text = "openapi: 3.0.3\npaths:\n  /pets/{id}:\n    get:\n      parameters:\n        - name: id\n          in: path\n";
        assert_eq!(find(text, "/openapi"), Some(Location { line: 1, column: 1 }));
        assert_eq!(
            find(text, "/paths/~1pets~1{id}/get"),
            Some(Location { line: 4, column: 5 })
        );
        assert_eq!(
            find(text, "/paths/~1pets~1{id}/get/parameters/0"),
            Some(Location { line: 6, column: 11 })
        );
        assert_eq!(
            find(text, "/paths/~1pets~1{id}/get/parameters/0/in"),
            Some(Location { line: 7, column: 11 })
        );
        assert_eq!(find(text, "/nope"), None);
    }

    #[test]
    fn finds_keys_in_json() {
        let text = "{\n  \"openapi\": \"3.0.0\",\n  \"paths\": {\"/a\": {\"get\": {}}}\n}";
        assert_eq!(find(text, "/paths/~1a/get"), Some(Location { line: 3, column: 20 }));
    }
}
