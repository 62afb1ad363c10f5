//! Path parameter values out of the route's captures.
//!
//! The generator routes every path segment that holds parameters as one capture (`{p0}`, `{p1}`, … in segment
//! order). Literal text before a segment's first parameter stays in the route, which matches it; text after a
//! parameter does not, as the router cannot match it. So a capture is the rest of its segment, and the runtime
//! cuts it by the literal text the template has after each of the segment's parameters
//! ([`OperationSpec::path_suffixes`]): `{Sid}.json` is the capture less its `.json`, `{name}.{ext}` is the capture
//! split at a `.`, `v{major}.{minor}` the capture after the routed `v` split at a `.`.
//!
//! A capture that does not hold the literals, or would leave a parameter empty, does not match the template: the
//! request is answered `404`, as a path no route matches is.
//!
//! Where a literal could be found more than once, the cut is made from the right: the segment's suffix is taken off
//! the end, then, from the last parameter back, each parameter but the first is the text after the *last*
//! occurrence of the literal before it in what is left, and the first parameter is whatever remains. So in
//! `{name}.{ext}`, `archive.tar.gz` is `archive.tar` and `gz`: only the first parameter of a segment may contain the
//! literals that follow it, and a later parameter never contains the literal before it. A later parameter whose
//! values cannot hold that literal (an integer after a `.`, an enum without it) is therefore always cut exactly;
//! one whose values can is ambiguous under any rule, and gets what follows the last occurrence. The rule is
//! documented for spec authors in `docs/x-gateway.md` (Routing).

use std::ops::Range;

use crate::spec::OperationSpec;

/// How an operation's path parameters sit in its route's captures, worked out once at start-up from its template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PathLayout {
    /// Every capture is one parameter, less its segment's suffix: parameter `i` is capture `i`.
    Whole,
    /// Some segment holds several parameters: how many each capture holds, in order.
    Split(Box<[usize]>),
    /// The template, the parameters and their suffixes disagree: a generator bug, answered `500`.
    Broken,
}

impl PathLayout {
    /// The layout of `op`'s path: one capture per segment of its template that holds placeholders.
    pub(crate) fn of(op: &OperationSpec) -> Self {
        // A path key's query or fragment (`/pets/{id}?streaming`) is not routed.
        let routed = op.template.split(['?', '#']).next().unwrap_or(op.template);
        let counts: Vec<usize> = routed
            .split('/')
            .map(|segment| segment.matches('{').count())
            .filter(|&n| n > 0)
            .collect();
        if counts.iter().sum::<usize>() != op.path_params.len() {
            return PathLayout::Broken;
        }
        if counts.iter().all(|&n| n == 1) {
            return PathLayout::Whole;
        }
        // A segment of several parameters has literals between them, so its suffixes cannot all be empty.
        if op.path_suffixes.len() != op.path_params.len() {
            return PathLayout::Broken;
        }
        PathLayout::Split(counts.into_boxed_slice())
    }

    /// The index of the first parameter capture `capture` holds.
    pub(crate) fn first_param(&self, capture: usize) -> usize {
        match self {
            PathLayout::Split(counts) => counts.iter().take(capture).sum(),
            PathLayout::Whole | PathLayout::Broken => capture,
        }
    }
}

/// Where one path parameter's value lies: a byte range of one capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathSpan {
    /// The capture's index.
    pub(crate) capture: usize,
    /// The value's bytes within the capture.
    pub(crate) range: Range<usize>,
}

/// The spans of every path parameter in the captures `values` (percent-decoded, in order), capture `c` holding
/// `counts[c]` parameters, cut by `literals` (one per parameter: the text after it in its segment); `None` when a
/// capture does not match its segment.
pub(crate) fn spans<'v>(
    counts: &[usize],
    literals: &[&str],
    values: impl Iterator<Item = &'v str>,
) -> Option<Vec<PathSpan>> {
    let mut spans = Vec::with_capacity(literals.len());
    let mut first = 0;
    for ((capture, value), &n) in values.enumerate().zip(counts) {
        let literals = literals.get(first..first + n)?;
        spans.extend(
            cut(value, literals)?
                .into_iter()
                .map(|range| PathSpan { capture, range }),
        );
        first += n;
    }
    Some(spans)
}

/// Cuts `value`, the capture of a segment's parameters, by the literal text after each of them (`literals`, the last
/// one the segment's suffix, possibly empty), from the right: the byte ranges of the values in order, or `None` when
/// a literal is missing or a value would be empty.
pub(crate) fn cut(value: &str, literals: &[&str]) -> Option<Vec<Range<usize>>> {
    let (suffix, separators) = literals.split_last()?;
    let mut end = value.strip_suffix(suffix)?.len();
    let mut ranges = Vec::with_capacity(literals.len());
    for separator in separators.iter().rev() {
        let at = value[..end].rfind(separator)?;
        let start = at + separator.len();
        if start == end {
            return None;
        }
        ranges.push(start..end);
        end = at;
    }
    if end == 0 {
        return None;
    }
    ranges.push(0..end);
    ranges.reverse();
    Some(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts<'v>(value: &'v str, literals: &[&str]) -> Option<Vec<&'v str>> {
        cut(value, literals).map(|ranges| ranges.into_iter().map(|r| &value[r]).collect())
    }

    #[test]
    fn a_suffix_is_taken_off_and_must_leave_a_value() {
        assert_eq!(parts("CA12.json", &[".json"]), Some(vec!["CA12"]));
        assert_eq!(parts("CA12.xml", &[".json"]), None);
        assert_eq!(parts(".json", &[".json"]), None);
        assert_eq!(parts("plain", &[""]), Some(vec!["plain"]));
    }

    #[test]
    fn parameters_are_cut_at_the_last_occurrence_of_each_literal() {
        assert_eq!(parts("photo.jpg", &[".", ""]), Some(vec!["photo", "jpg"]));
        // Only the first parameter may hold the literal: the name keeps its dots, the extension is the last part.
        assert_eq!(parts("archive.tar.gz", &[".", ""]), Some(vec!["archive.tar", "gz"]));
        assert_eq!(parts("St. Louis.json", &[".", ""]), Some(vec!["St. Louis", "json"]));
        // `{x}.{y}-{z}.json`: the suffix off, then `z` after the last `-`, then `y` after the last `.` before it.
        assert_eq!(
            parts("a-b.c-d.e.json", &[".", "-", ".json"]),
            Some(vec!["a-b", "c", "d.e"])
        );
        assert_eq!(parts("1.2", &[".", ""]), Some(vec!["1", "2"]));
        // `v{major}.{minor}`: the router matched the `v`; a major with a dot fails its type check later.
        assert_eq!(parts("1.2.3", &[".", ""]), Some(vec!["1.2", "3"]));
    }

    #[test]
    fn a_missing_literal_or_an_empty_value_does_not_match() {
        assert_eq!(parts("photo", &[".", ""]), None);
        assert_eq!(parts("photo.", &[".", ""]), None);
        assert_eq!(parts(".jpg", &[".", ""]), None);
        assert_eq!(parts("a.b.xml", &[".", ".json"]), None);
        assert_eq!(parts("a.json", &[".", ".json"]), None);
        assert_eq!(parts("x", &[]), None);
    }

    #[test]
    fn literals_longer_than_one_character_and_multibyte_text() {
        assert_eq!(parts("from--to", &["--", ""]), Some(vec!["from", "to"]));
        assert_eq!(parts("é.ü.json", &[".", ".json"]), Some(vec!["é", "ü"]));
    }

    fn spec(
        template: &'static str,
        params: &'static [&'static str],
        suffixes: &'static [&'static str],
    ) -> OperationSpec {
        OperationSpec {
            template,
            route: template,
            path_params: params,
            path_suffixes: suffixes,
            ..OperationSpec::DEFAULT
        }
    }

    #[test]
    fn layouts_come_from_the_template_segments() {
        assert_eq!(PathLayout::of(&spec("/plain", &[], &[])), PathLayout::Whole);
        assert_eq!(
            PathLayout::of(&spec("/calls/{Sid}.json", &["Sid"], &[".json"])),
            PathLayout::Whole
        );
        let layout = PathLayout::of(&spec(
            "/search/{versionNumber}/geocode/{query}.{ext}?x",
            &["versionNumber", "query", "ext"],
            &["", ".", ""],
        ));
        assert_eq!(layout, PathLayout::Split(Box::new([1, 2])));
        assert_eq!(layout.first_param(1), 1);
        assert_eq!(
            PathLayout::of(&spec("/{a}.{b}/x/{c}", &["a", "b", "c"], &[".", "", ""])).first_param(1),
            2
        );
        // Parameters the template does not have, or separators missing: a generator bug.
        assert_eq!(PathLayout::of(&spec("/{a}", &["a", "b"], &[])), PathLayout::Broken);
        assert_eq!(PathLayout::of(&spec("/{a}.{b}", &["a", "b"], &[])), PathLayout::Broken);
    }

    #[test]
    fn spans_cover_every_parameter_of_every_capture() {
        let spans = spans(&[1, 2], &["", ".", ""], ["1", "St. Louis.json"].into_iter()).expect("matches");
        assert_eq!(
            spans,
            vec![
                PathSpan {
                    capture: 0,
                    range: 0..1
                },
                PathSpan {
                    capture: 1,
                    range: 0..9
                },
                PathSpan {
                    capture: 1,
                    range: 10..14
                },
            ]
        );
        assert_eq!(super::spans(&[1, 2], &["", ".", ""], ["1", "json"].into_iter()), None);
    }
}
