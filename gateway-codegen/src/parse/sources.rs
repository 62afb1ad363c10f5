//! Where each node of the document the generator reads was written.
//!
//! The document the later steps see is not always the file the user wrote: overlays add and remove nodes, and a
//! Swagger 2.0 document is converted to OpenAPI 3.0, which moves nodes (`/definitions/Pet` becomes
//! `/components/schemas/Pet`). Every such step records a [`PointerMap`] from pointers of the document it makes to
//! pointers of the document it was given; [`Sources::origin`] follows them back, so a diagnostic found anywhere
//! is shown at the line of the file (the spec, or an overlay) where its text is.

use std::collections::BTreeMap;

/// The spec file itself, among the files of one spec (the spec, then its overlays in order).
pub const SPEC: usize = 0;

/// Where a moved node comes from: `Some(file)`: a pointer into that file (overlay steps); `None`: into the document
/// the step was given (conversion steps), which earlier maps may map further.
type Origin = (Option<usize>, String);

/// The moves of one step: pointers of the document it made → pointers of the document it was given. A pointer
/// that no rule covers did not move. Rules are keyed by the derived pointer, so a lookup is one map probe per
/// ancestor and replacing a subtree is one range removal, whatever the number of rules (a Swagger 2.0 conversion
/// of a large spec makes tens of thousands).
#[derive(Debug, Clone, Default)]
pub struct PointerMap {
    rules: BTreeMap<String, Origin>,
}

impl PointerMap {
    /// Pointers under `derived` come from under `source` in the document the step was given.
    pub fn moved(&mut self, derived: impl Into<String>, source: impl Into<String>) {
        self.set(derived.into(), (None, source.into()));
    }

    /// Pointers under `derived` come from under `source` in `file` (of [`Sources`]' files).
    pub fn written_in(&mut self, derived: impl Into<String>, file: usize, source: impl Into<String>) {
        self.set(derived.into(), (Some(file), source.into()));
    }

    /// A later rule for a node replaces what was said about it and everything under it.
    fn set(&mut self, derived: String, origin: Origin) {
        self.removed(&derived);
        self.rules.insert(derived, origin);
    }

    /// Records that the node at `pointer` is gone, with everything under it.
    pub fn removed(&mut self, pointer: &str) {
        self.rules.remove(pointer);
        // Everything under `pointer/`: the keys from `pointer/` up to (not including) `pointer0`, `0` being the
        // character after `/`.
        let under: Vec<String> = self
            .rules
            .range(format!("{pointer}/")..format!("{pointer}0"))
            .map(|(k, _)| k.clone())
            .collect();
        for key in under {
            self.rules.remove(&key);
        }
    }

    /// Records that element `index` of the array at `array` (of `len` elements) was removed: the elements after it
    /// moved down by one, and keep where they (and everything in them) were written.
    pub fn removed_element(&mut self, array: &str, index: usize, len: usize) {
        // Where each later element itself comes from, before anything moves.
        let own: Vec<Origin> = (index + 1..len).map(|i| self.lookup(&format!("{array}/{i}"))).collect();
        self.removed(&format!("{array}/{index}"));
        let prefix = format!("{array}/");
        let later: Vec<(String, usize, String)> = self
            .rules
            .range(prefix.clone()..format!("{array}0"))
            .filter_map(|(key, _)| {
                let rest = &key[prefix.len()..];
                let (i, tail) = rest.split_once('/').unwrap_or((rest, ""));
                let i: usize = i.parse().ok()?;
                (i > index).then(|| (key.clone(), i, tail.to_owned()))
            })
            .collect();
        let mut moved = Vec::with_capacity(later.len());
        for (key, i, tail) in later {
            if let Some(origin) = self.rules.remove(&key) {
                let to = if tail.is_empty() {
                    format!("{prefix}{}", i - 1)
                } else {
                    format!("{prefix}{}/{tail}", i - 1)
                };
                moved.push((to, origin));
            }
        }
        self.rules.extend(moved);
        // An element with no rule of its own (it was where it is, or under a rule for the whole array) gets one.
        for (i, origin) in (index..).zip(own) {
            self.rules.entry(format!("{prefix}{i}")).or_insert(origin);
        }
    }

    /// Where `pointer` comes from: the file (`None`: the document the step was given) and the pointer there.
    fn lookup(&self, pointer: &str) -> Origin {
        let mut prefix = pointer;
        loop {
            if let Some((file, source)) = self.rules.get(prefix) {
                return (*file, format!("{source}{}", &pointer[prefix.len()..]));
            }
            match prefix.rfind('/') {
                Some(i) => prefix = &prefix[..i],
                None => return (None, pointer.to_owned()),
            }
        }
    }
}

/// The steps from the files of one spec to the document the generator reads, oldest first.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    maps: Vec<PointerMap>,
}

impl Sources {
    /// Adds the map of the step just taken.
    pub fn push(&mut self, map: PointerMap) {
        self.maps.push(map);
    }

    /// The file (index: [`SPEC`], then the overlays) and pointer where the node at `pointer` of the current
    /// document was written.
    pub fn origin(&self, pointer: &str) -> (usize, String) {
        let mut pointer = pointer.to_owned();
        for map in self.maps.iter().rev() {
            let (file, source) = map.lookup(&pointer);
            pointer = source;
            if let Some(file) = file {
                return (file, pointer);
            }
        }
        (SPEC, pointer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unmapped_pointers_are_in_the_spec_where_they_are() {
        let sources = Sources::default();
        assert_eq!(sources.origin("/paths/~1a/get"), (SPEC, String::from("/paths/~1a/get")));
    }

    #[test]
    fn the_longest_rule_wins_and_the_rest_is_kept() {
        let mut map = PointerMap::default();
        map.moved("/components/schemas", "/definitions");
        map.moved("/paths/~1a/post/requestBody", "/paths/~1a/post/parameters/0");
        map.moved(
            "/paths/~1a/post/requestBody/content/application~1json/schema",
            "/paths/~1a/post/parameters/0/schema",
        );
        let mut sources = Sources::default();
        sources.push(map);
        assert_eq!(
            sources.origin("/components/schemas/Pet/type").1,
            "/definitions/Pet/type"
        );
        assert_eq!(sources.origin("/components/schemasX").1, "/components/schemasX");
        assert_eq!(
            sources
                .origin("/paths/~1a/post/requestBody/content/application~1json/schema/properties/id")
                .1,
            "/paths/~1a/post/parameters/0/schema/properties/id"
        );
        assert_eq!(
            sources.origin("/paths/~1a/post/requestBody/required").1,
            "/paths/~1a/post/parameters/0/required"
        );
    }

    #[test]
    fn steps_compose_back_to_the_overlay_that_wrote_a_node() {
        let mut overlay = PointerMap::default();
        overlay.written_in("/definitions/Pet/x-gateway", 1, "/actions/0/update/x-gateway");
        let mut conversion = PointerMap::default();
        conversion.moved("/components/schemas", "/definitions");
        let mut sources = Sources::default();
        sources.push(overlay);
        sources.push(conversion);
        assert_eq!(
            sources.origin("/components/schemas/Pet/x-gateway/cache"),
            (1, String::from("/actions/0/update/x-gateway/cache"))
        );
        assert_eq!(
            sources.origin("/components/schemas/Pet/type"),
            (SPEC, String::from("/definitions/Pet/type"))
        );
    }

    #[test]
    fn a_later_rule_replaces_earlier_ones_under_it() {
        let mut map = PointerMap::default();
        map.written_in("/info/x-a/b", 1, "/actions/0/update/b");
        map.written_in("/info/x-a", 2, "/actions/3/update");
        let mut sources = Sources::default();
        sources.push(map);
        assert_eq!(sources.origin("/info/x-a/b"), (2, String::from("/actions/3/update/b")));
    }

    #[test]
    fn removing_an_element_shifts_the_rules_inside_later_ones() {
        let mut map = PointerMap::default();
        map.written_in("/tags/2/description", 1, "/actions/0/update/description");
        map.written_in("/tags/11", 1, "/actions/1/update");
        map.removed_element("/tags", 0, 12);
        let mut sources = Sources::default();
        sources.push(map);
        assert_eq!(
            sources.origin("/tags/1/description"),
            (1, String::from("/actions/0/update/description"))
        );
        assert_eq!(sources.origin("/tags/1/name"), (SPEC, String::from("/tags/2/name")));
        assert_eq!(sources.origin("/tags/10"), (1, String::from("/actions/1/update")));
        assert_eq!(sources.origin("/tags/9/x"), (SPEC, String::from("/tags/10/x")));
    }

    #[test]
    fn removing_an_element_shifts_the_later_ones() {
        let mut map = PointerMap::default();
        map.written_in("/tags/2", 1, "/actions/0/update");
        map.removed_element("/tags", 0, 3);
        let mut sources = Sources::default();
        sources.push(map);
        assert_eq!(sources.origin("/tags/0/name"), (SPEC, String::from("/tags/1/name")));
        assert_eq!(
            sources.origin("/tags/1/name"),
            (1, String::from("/actions/0/update/name"))
        );
    }
}
