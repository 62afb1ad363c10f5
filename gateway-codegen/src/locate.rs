//! Maps JSON pointers into the spec to line:column positions in its text.
//!
//! The spec is parsed for meaning by serde (openapiv3, serde_json, yaml), which forgets where things were. Every
//! diagnostic carries a JSON pointer instead, and only when there is something to report does this module walk the
//! YAML event stream (JSON is read the same way) once to find where each reported pointer is. So a valid spec pays
//! nothing for good error messages.
//!
//! A diagnostic can also point inside a scalar value (a syntax error in a jq filter): [`locate_scalars`] finds
//! where the value is written and how, and [`position_in_scalar`] maps a character of its decoded text back to where
//! it is written, undoing quotes, escapes, indentation and line folding.

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

/// Unescapes one JSON pointer segment (RFC 6901: `~1` → `/`, then `~0` → `~`).
pub fn unescape_segment(segment: &str) -> String {
    segment.replace("~1", "/").replace("~0", "~")
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
    if let Some(found) = json::locate(text, wanted) {
        return found;
    }
    walk(text, &mut |pointer, span, node| {
        if matches!(node, Node::Key | Node::Item) && wanted.contains(pointer) && !found.contains_key(pointer) {
            found.insert(pointer.to_owned(), start_of(span));
        }
        // Once every wanted pointer is found, the rest of the text need not be read.
        found.len() < wanted.len()
    });
    found
}

/// What [`walk`] reports a pointer for.
enum Node<'e> {
    /// The key of a mapping entry (the pointer is the entry's).
    Key,
    /// A sequence item, whatever its kind (reported before [`Node::Scalar`] when the item is a scalar).
    Item,
    /// A scalar value (not a key): its decoded text and style.
    Scalar(&'e str, saphyr_parser::ScalarStyle),
}

/// Reads the YAML (or JSON) event stream of `text` and calls `visit` with the pointer of each key, sequence item and
/// scalar value, and its span, until `visit` returns `false`. Stops quietly at the first syntax error: what came
/// before is still reported.
fn walk(text: &str, visit: &mut dyn FnMut(&str, Span, Node<'_>) -> bool) {
    let mut stack: Vec<Frame> = Vec::new();
    // The pointer of the node being read, kept as one string that grows and shrinks with the stack.
    let mut current = String::new();
    let mut lengths: Vec<usize> = Vec::new();

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
                if !visit(&current, span, Node::Key) {
                    return;
                }
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
                    if !visit(&current, span, Node::Item) {
                        return;
                    }
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
                    if let Event::Scalar(value, style, ..) = &event
                        && !visit(&current, span, Node::Scalar(value, *style))
                    {
                        return;
                    }
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
}

/// Where a span starts, as a 1-based line and column.
fn start_of(span: Span) -> Location {
    Location {
        line: span.start.line(),
        column: span.start.col() + 1,
    }
}

// ---- positions inside scalar values ----

/// How a scalar value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarStyle {
    /// Unquoted (`key: value`), on one line or folded over several.
    Plain,
    /// In single quotes, where `''` stands for `'`.
    SingleQuoted,
    /// In double quotes, with backslash escapes; every JSON string.
    DoubleQuoted,
    /// A literal block (`|`, `|-`, `|+`, `|2`): the lines as written, less their indentation.
    Literal,
    /// A folded block (`>`, `>-`, …): lines joined by spaces, blank lines kept as line breaks.
    Folded,
}

impl From<saphyr_parser::ScalarStyle> for ScalarStyle {
    fn from(style: saphyr_parser::ScalarStyle) -> Self {
        match style {
            saphyr_parser::ScalarStyle::Plain => Self::Plain,
            saphyr_parser::ScalarStyle::SingleQuoted => Self::SingleQuoted,
            saphyr_parser::ScalarStyle::DoubleQuoted => Self::DoubleQuoted,
            saphyr_parser::ScalarStyle::Literal => Self::Literal,
            saphyr_parser::ScalarStyle::Folded => Self::Folded,
        }
    }
}

/// Where a scalar value is written, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarSpan {
    /// Where the value's text starts: its first character (the opening quote of a quoted scalar); for a block
    /// scalar, the first character of its first non-blank line, after the indentation (not the `|` or `>`).
    pub start: Location,
    /// Where the value's text ends (exclusive): after the closing quote, after the last character of a plain scalar,
    /// at the start of the line after a block scalar.
    pub end: Location,
    /// How it is written.
    pub style: ScalarStyle,
    /// The value, decoded (quotes, escapes, indentation and folding undone), as the spec's reader sees it.
    pub value: String,
}

/// Finds the scalar value at each wanted pointer. A pointer whose value is not a scalar (a mapping, a sequence, an
/// alias), or that names nothing in the text, is left out.
pub fn locate_scalars(text: &str, wanted: &HashSet<String>) -> HashMap<String, ScalarSpan> {
    let mut found = HashMap::new();
    if wanted.is_empty() {
        return found;
    }
    walk(text, &mut |pointer, span, node| {
        if let Node::Scalar(value, style) = node
            && wanted.contains(pointer)
            && !found.contains_key(pointer)
        {
            let scalar = ScalarSpan {
                start: start_of(span),
                end: Location {
                    line: span.end.line(),
                    column: span.end.col() + 1,
                },
                style: style.into(),
                value: value.to_owned(),
            };
            found.insert(pointer.to_owned(), scalar);
        }
        found.len() < wanted.len()
    });
    found
}

/// The scalar value at `pointer`, if it is one (see [`locate_scalars`]).
pub fn locate_scalar(text: &str, pointer: &str) -> Option<ScalarSpan> {
    let wanted = HashSet::from([pointer.to_owned()]);
    locate_scalars(text, &wanted).remove(pointer)
}

/// Where the character at `offset` of `scalar`'s decoded value is written in `text` (the text `scalar` was found
/// in). An offset at or past the end of the value gives the position just after its last character.
///
/// The position is exact when this module's reading of the scalar's source gives the parser's value (every style:
/// plain, quoted with escapes and line folding, literal and folded blocks with any indicator); otherwise it is
/// approximate: the offset's line within the value is taken as a line of the source.
pub fn position_in_scalar(text: &str, scalar: &ScalarSpan, offset: usize) -> Location {
    match decode_with_positions(text, scalar) {
        Some(chars) => match chars.get(offset) {
            Some((_, at)) => *at,
            // The closing quote.
            None if matches!(scalar.style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted) => Location {
                line: scalar.end.line,
                column: scalar.end.column.saturating_sub(1).max(1),
            },
            None if scalar.style == ScalarStyle::Plain => scalar.end,
            None => match chars.last() {
                Some(('\n', at)) => *at,
                Some((_, at)) => Location {
                    line: at.line,
                    column: at.column + 1,
                },
                None => scalar.start,
            },
        },
        None => approximate_position(scalar, offset),
    }
}

/// A character of a decoded value, with where it is written (for a folded line break, where the break is).
type Placed = (char, Location);

/// One source line of a scalar: its characters within the scalar, with their positions, and where the line ends.
struct SourceLine {
    chars: Vec<Placed>,
    end: Location,
}

/// The source lines `first..=last` of `text` (1-based), with `\r` before a line break left out.
fn source_lines(text: &str, first: usize, last: usize) -> Vec<(usize, Vec<char>)> {
    text.split('\n')
        .enumerate()
        .skip(first.saturating_sub(1))
        .take((last + 1).saturating_sub(first))
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line).chars().collect()))
        .collect()
}

/// `scalar`'s value decoded from its source, each character with its position; `None` when the source cannot be
/// read or reads differently from the parser's value.
fn decode_with_positions(text: &str, scalar: &ScalarSpan) -> Option<Vec<Placed>> {
    match scalar.style {
        ScalarStyle::Plain | ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted => {
            let chars = decode_flow(text, scalar)?;
            let decoded: String = chars.iter().map(|(c, _)| c).collect();
            (decoded == scalar.value).then_some(chars)
        }
        ScalarStyle::Literal | ScalarStyle::Folded => {
            let chars = decode_block(text, scalar)?;
            let decoded: String = chars.iter().map(|(c, _)| c).collect();
            (decoded.trim_end_matches('\n') == scalar.value.trim_end_matches('\n')).then_some(chars)
        }
    }
}

/// A plain or quoted scalar: the lines between its quotes, trimmed and folded as YAML does (a single line break
/// reads as a space, each blank line as a line break), with escapes decoded.
fn decode_flow(text: &str, scalar: &ScalarSpan) -> Option<Vec<Placed>> {
    let (start, end) = (scalar.start, scalar.end);
    let count = end.line.checked_sub(start.line)? + 1;
    let mut lines: Vec<SourceLine> = source_lines(text, start.line, end.line)
        .into_iter()
        .map(|(number, chars)| {
            let from = if number == start.line {
                start.column.saturating_sub(1)
            } else {
                0
            };
            let to = if number == end.line {
                end.column.saturating_sub(1)
            } else {
                chars.len()
            };
            let placed = chars
                .iter()
                .enumerate()
                .take(to)
                .skip(from)
                .map(|(i, c)| {
                    (
                        *c,
                        Location {
                            line: number,
                            column: i + 1,
                        },
                    )
                })
                .collect();
            SourceLine {
                chars: placed,
                end: Location {
                    line: number,
                    column: chars.len() + 1,
                },
            }
        })
        .collect();
    if lines.len() != count {
        return None;
    }
    let quote = match scalar.style {
        ScalarStyle::SingleQuoted => Some('\''),
        ScalarStyle::DoubleQuoted => Some('"'),
        _ => None,
    };
    if let Some(quote) = quote {
        let opening = lines.first_mut()?;
        if opening.chars.first().map(|(c, _)| *c) != Some(quote) {
            return None;
        }
        opening.chars.remove(0);
        let closing = lines.last_mut()?;
        if closing.chars.pop().map(|(c, _)| c) != Some(quote) {
            return None;
        }
    }

    let blank = |line: &SourceLine| line.chars.iter().all(|(c, _)| matches!(c, ' ' | '\t'));
    let mut out = Vec::new();
    let last = lines.len() - 1;
    let mut i = 0;
    while i <= last {
        let mut chars = lines[i].chars.as_slice();
        if i > 0 {
            while let [(' ' | '\t', _), rest @ ..] = chars {
                chars = rest;
            }
        }
        if i < last {
            let full = chars;
            while let [rest @ .., (' ' | '\t', _)] = chars {
                chars = rest;
            }
            // In double quotes, `\ ` (or `\` and a tab) is an escaped space: it stays.
            let backslashes = chars.iter().rev().take_while(|(c, _)| *c == '\\').count();
            if scalar.style == ScalarStyle::DoubleQuoted && backslashes % 2 == 1 && chars.len() < full.len() {
                chars = &full[..=chars.len()];
            }
        }
        let escaped_break = match scalar.style {
            ScalarStyle::DoubleQuoted => decode_double_quoted(chars, i < last, &mut out)?,
            ScalarStyle::SingleQuoted => {
                decode_single_quoted(chars, &mut out);
                false
            }
            _ => {
                out.extend_from_slice(chars);
                false
            }
        };
        if i == last {
            break;
        }
        // The line break after line `i`, and the blank lines after it (the closing line is never one of them).
        let mut next = i + 1;
        while next < last && blank(&lines[next]) {
            out.push(('\n', lines[next].end));
            next += 1;
        }
        if next == i + 1 && !escaped_break {
            out.push((' ', lines[i].end));
        }
        i = next;
    }
    Some(out)
}

/// Decodes one line of a single-quoted scalar (`''` is `'`).
fn decode_single_quoted(chars: &[Placed], out: &mut Vec<Placed>) {
    let mut iter = chars.iter().peekable();
    while let Some(&(c, at)) = iter.next() {
        if c == '\'' && iter.peek().is_some_and(|(next, _)| *next == '\'') {
            iter.next();
        }
        out.push((c, at));
    }
}

/// Decodes one line of a double-quoted scalar; `Some(true)` when it ends with an escaped line break (a `\` last on a
/// line that is not the last), `None` on an escape this reading does not know.
fn decode_double_quoted(chars: &[Placed], more_lines: bool, out: &mut Vec<Placed>) -> Option<bool> {
    let mut i = 0;
    while i < chars.len() {
        let (c, at) = chars[i];
        i += 1;
        if c != '\\' {
            out.push((c, at));
            continue;
        }
        let Some(&(escape, _)) = chars.get(i) else {
            return more_lines.then_some(true);
        };
        i += 1;
        let hex = |i: &mut usize, digits: usize| -> Option<u32> {
            let text: String = chars.get(*i..*i + digits)?.iter().map(|(c, _)| c).collect();
            *i += digits;
            u32::from_str_radix(&text, 16).ok()
        };
        let decoded = match escape {
            '0' => '\0',
            'a' => '\u{7}',
            'b' => '\u{8}',
            't' | '\t' => '\t',
            'n' => '\n',
            'v' => '\u{b}',
            'f' => '\u{c}',
            'r' => '\r',
            'e' => '\u{1b}',
            ' ' => ' ',
            '"' => '"',
            '/' => '/',
            '\\' => '\\',
            'N' => '\u{85}',
            '_' => '\u{a0}',
            'L' => '\u{2028}',
            'P' => '\u{2029}',
            'x' => char::from_u32(hex(&mut i, 2)?)?,
            'U' => char::from_u32(hex(&mut i, 8)?)?,
            'u' => {
                let unit = hex(&mut i, 4)?;
                if (0xD800..0xDC00).contains(&unit) {
                    // A UTF-16 surrogate pair (JSON writes characters beyond the BMP so).
                    if chars.get(i)?.0 != '\\' || chars.get(i + 1)?.0 != 'u' {
                        return None;
                    }
                    i += 2;
                    let low = hex(&mut i, 4)?;
                    char::from_u32(0x10000 + ((unit - 0xD800) << 10) + low.checked_sub(0xDC00)?)?
                } else {
                    char::from_u32(unit)?
                }
            }
            _ => return None,
        };
        out.push((decoded, at));
    }
    Some(false)
}

/// A literal or folded block scalar: its lines less their indentation, kept (literal) or folded (folded).
fn decode_block(text: &str, scalar: &ScalarSpan) -> Option<Vec<Placed>> {
    let (start, end) = (scalar.start, scalar.end);
    // The span starts at the first non-blank line; the value's leading line breaks are the blank lines before it.
    let leading = scalar.value.chars().take_while(|c| *c == '\n').count();
    let first = start.line.checked_sub(leading).filter(|line| *line > 0)?;
    let last = if end.column > 1 {
        end.line
    } else {
        end.line.checked_sub(1)?
    };
    let indent = start.column.saturating_sub(1);
    let mut lines: Vec<SourceLine> = Vec::new();
    for (number, chars) in source_lines(text, first, last) {
        let end = Location {
            line: number,
            column: chars.len() + 1,
        };
        let content = if chars.len() >= indent && chars[..indent].iter().all(|c| *c == ' ') {
            chars
                .iter()
                .enumerate()
                .skip(indent)
                .map(|(i, c)| {
                    (
                        *c,
                        Location {
                            line: number,
                            column: i + 1,
                        },
                    )
                })
                .collect()
        } else if chars.iter().all(|c| *c == ' ') {
            Vec::new()
        } else {
            break;
        };
        lines.push(SourceLine { chars: content, end });
    }
    let mut out = Vec::new();
    match scalar.style {
        ScalarStyle::Literal => {
            for line in &lines {
                out.extend_from_slice(&line.chars);
                out.push(('\n', line.end));
            }
        }
        _ => {
            // Line breaks between two lines of text are folded into a space (or dropped before blank lines, each
            // of which is a line break); next to a more-indented line, they are kept.
            let spaced = |line: &SourceLine| line.chars.first().is_some_and(|(c, _)| matches!(c, ' ' | '\t'));
            let mut previous: Option<usize> = None;
            let mut blanks: Vec<Location> = Vec::new();
            for (i, line) in lines.iter().enumerate() {
                if line.chars.is_empty() {
                    blanks.push(line.end);
                    continue;
                }
                if let Some(p) = previous {
                    let folds = !spaced(&lines[p]) && !spaced(line);
                    if !folds {
                        out.push(('\n', lines[p].end));
                    } else if blanks.is_empty() {
                        out.push((' ', lines[p].end));
                    }
                }
                out.extend(blanks.drain(..).map(|at| ('\n', at)));
                out.extend_from_slice(&line.chars);
                previous = Some(i);
            }
            if let Some(p) = previous {
                out.push(('\n', lines[p].end));
            }
        }
    }
    Some(out)
}

/// Where `offset` is when the source could not be read exactly: its line within the value is taken as a source line
/// (for a block scalar, after its leading blank lines), its column within that line as the column after the
/// indentation (or, on the first line of a plain or quoted scalar, after the start).
fn approximate_position(scalar: &ScalarSpan, offset: usize) -> Location {
    let before: Vec<char> = scalar.value.chars().take(offset).collect();
    let line_in_value = before.iter().filter(|c| **c == '\n').count();
    let column_in_line = before.iter().rev().take_while(|c| **c != '\n').count();
    let (line, column) = match scalar.style {
        ScalarStyle::Literal | ScalarStyle::Folded => {
            let leading = scalar.value.chars().take_while(|c| *c == '\n').count();
            let first = scalar.start.line.saturating_sub(leading).max(1);
            (first + line_in_value, scalar.start.column + column_in_line)
        }
        style => {
            let quote = usize::from(matches!(style, ScalarStyle::SingleQuoted | ScalarStyle::DoubleQuoted));
            if line_in_value == 0 {
                (scalar.start.line, scalar.start.column + quote + column_in_line)
            } else {
                (scalar.start.line + line_in_value, column_in_line + 1)
            }
        }
    };
    Location {
        line: line.min(scalar.end.line.max(scalar.start.line)),
        column,
    }
}

/// [`locate`] for a text that is JSON, as the largest specs are: one pass over its bytes, which in an unoptimized
/// build is many times faster than the YAML event stream (a 4 MB spec: tens of milliseconds against most of a
/// second), and stops once every wanted pointer is found. Locations are the YAML walk's: a key where its opening
/// quote is, an item where it starts.
mod json {
    use std::collections::{HashMap, HashSet};

    use super::{Location, escape_segment};

    /// Deeper than any spec nests; a text nested deeper is left to the YAML walk rather than to the stack.
    const MAX_DEPTH: usize = 512;

    /// Why the scan ended early.
    enum Stop {
        /// Every wanted pointer is found.
        Done,
        /// The text is not JSON (YAML in flow style, or broken): the YAML walk reads it.
        NotJson,
    }

    /// The wanted pointers' locations, or `None` when `text` is not JSON.
    pub(super) fn locate(text: &str, wanted: &HashSet<String>) -> Option<HashMap<String, Location>> {
        if !text.trim_start().starts_with(['{', '[']) {
            return None;
        }
        let mut scan = Scan {
            text,
            bytes: text.as_bytes(),
            at: 0,
            line: 1,
            counted: (0, 0),
            pointer: String::new(),
            wanted,
            found: HashMap::new(),
        };
        match scan.value(0) {
            Ok(()) => {
                scan.space();
                (scan.at == scan.bytes.len()).then_some(scan.found)
            }
            Err(Stop::Done) => Some(scan.found),
            Err(Stop::NotJson) => None,
        }
    }

    struct Scan<'t, 'w> {
        text: &'t str,
        bytes: &'t [u8],
        at: usize,
        line: usize,
        /// How far into the current line characters are counted, and how many there are up to there: a JSON spec
        /// is often one line of megabytes, which is counted once, not once per pointer found.
        counted: (usize, usize),
        /// The pointer of the value being read.
        pointer: String,
        wanted: &'w HashSet<String>,
        found: HashMap<String, Location>,
    }

    impl Scan<'_, '_> {
        /// Records `pointer`'s location, at byte `at`, if it is wanted and not found yet.
        fn visit(&mut self, at: usize) -> Result<(), Stop> {
            if self.wanted.contains(&self.pointer) && !self.found.contains_key(&self.pointer) {
                let (from, chars) = self.counted;
                let chars = chars + self.text.get(from..at).map_or(0, |t| t.chars().count());
                self.counted = (at, chars);
                let location = Location {
                    line: self.line,
                    column: chars + 1,
                };
                self.found.insert(self.pointer.clone(), location);
                if self.found.len() == self.wanted.len() {
                    return Err(Stop::Done);
                }
            }
            Ok(())
        }

        /// Skips whitespace, counting lines (a JSON text breaks lines nowhere else).
        fn space(&mut self) {
            while let Some(&b) = self.bytes.get(self.at) {
                match b {
                    b'\n' => {
                        self.at += 1;
                        self.line += 1;
                        self.counted = (self.at, 0);
                    }
                    b' ' | b'\t' | b'\r' => self.at += 1,
                    _ => break,
                }
            }
        }

        fn eat(&mut self, byte: u8) -> bool {
            self.space();
            let ate = self.bytes.get(self.at) == Some(&byte);
            if ate {
                self.at += 1;
            }
            ate
        }

        fn expect(&mut self, byte: u8) -> Result<(), Stop> {
            if self.eat(byte) { Ok(()) } else { Err(Stop::NotJson) }
        }

        /// Reads the value at the current position (after whitespace).
        fn value(&mut self, depth: usize) -> Result<(), Stop> {
            if depth > MAX_DEPTH {
                return Err(Stop::NotJson);
            }
            self.space();
            match self.bytes.get(self.at) {
                Some(b'{') => {
                    self.at += 1;
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    loop {
                        self.space();
                        let key_at = self.at;
                        let key = self.string()?;
                        let len = self.pointer.len();
                        self.pointer.push('/');
                        self.pointer.push_str(&escape_segment(&key));
                        self.visit(key_at)?;
                        self.expect(b':')?;
                        self.value(depth + 1)?;
                        self.pointer.truncate(len);
                        if !self.eat(b',') {
                            return self.expect(b'}');
                        }
                    }
                }
                Some(b'[') => {
                    self.at += 1;
                    if self.eat(b']') {
                        return Ok(());
                    }
                    let mut index = 0usize;
                    loop {
                        self.space();
                        let len = self.pointer.len();
                        self.pointer.push('/');
                        self.pointer.push_str(&index.to_string());
                        self.visit(self.at)?;
                        self.value(depth + 1)?;
                        self.pointer.truncate(len);
                        index += 1;
                        if !self.eat(b',') {
                            return self.expect(b']');
                        }
                    }
                }
                Some(b'"') => self.skip_string().map(drop),
                Some(_) => {
                    // A number, `true`, `false` or `null`: up to the next delimiter.
                    let start = self.at;
                    while let Some(&b) = self.bytes.get(self.at) {
                        if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n') {
                            break;
                        }
                        if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'+' | b'.')) {
                            return Err(Stop::NotJson);
                        }
                        self.at += 1;
                    }
                    if self.at == start { Err(Stop::NotJson) } else { Ok(()) }
                }
                None => Err(Stop::NotJson),
            }
        }

        /// Reads a string at the current position, decoded.
        fn string(&mut self) -> Result<String, Stop> {
            let (start, escaped) = self.skip_string()?;
            let raw = self.text.get(start..self.at).ok_or(Stop::NotJson)?;
            if escaped {
                serde_json::from_str(raw).map_err(|_| Stop::NotJson)
            } else {
                Ok(raw[1..raw.len() - 1].to_owned())
            }
        }

        /// Skips the string at the current position: where it starts, and whether it has escapes.
        fn skip_string(&mut self) -> Result<(usize, bool), Stop> {
            if self.bytes.get(self.at) != Some(&b'"') {
                return Err(Stop::NotJson);
            }
            let start = self.at;
            let mut escaped = false;
            self.at += 1;
            loop {
                match self.bytes.get(self.at) {
                    Some(b'"') => break,
                    Some(b'\\') => {
                        escaped = true;
                        self.at += 2;
                    }
                    // A raw control character (a line break) is not JSON.
                    Some(b) if *b < 0x20 => return Err(Stop::NotJson),
                    Some(_) => self.at += 1,
                    None => return Err(Stop::NotJson),
                }
            }
            self.at += 1;
            Ok((start, escaped))
        }
    }
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

    /// Every pointer the YAML walk reports a key or an item for, with its location.
    fn walked(text: &str) -> Vec<(String, Location)> {
        let mut all = Vec::new();
        walk(text, &mut |pointer, span, node| {
            if matches!(node, Node::Key | Node::Item) && !all.iter().any(|(p, _)| p == pointer) {
                all.push((pointer.to_owned(), start_of(span)));
            }
            true
        });
        all
    }

    /// The JSON scan finds what the YAML walk finds, where it finds it: every pointer of `text` at once, and each
    /// alone (when the scan stops early).
    fn same_as_walk(text: &str) {
        let all = walked(text);
        assert!(!all.is_empty(), "{text}");
        let wanted: HashSet<String> = all.iter().map(|(p, _)| p.clone()).collect();
        let found = json::locate(text, &wanted).expect("JSON");
        for (pointer, location) in &all {
            assert_eq!(found.get(pointer), Some(location), "{pointer} in {text}");
            let alone = json::locate(text, &HashSet::from([pointer.clone()])).expect("JSON");
            assert_eq!(alone.get(pointer), Some(location), "{pointer} alone");
        }
        let missing = HashSet::from([String::from("/nope"), all[0].0.clone()]);
        assert_eq!(json::locate(text, &missing).expect("JSON").len(), 1);
    }

    #[test]
    fn json_is_located_as_the_yaml_walk_locates_it() {
        same_as_walk(r#"{"openapi": "3.0.3", "paths": {"/pets/{id}": {"get": {"parameters": [{"name": "id"}]}}}}"#);
        same_as_walk(
            "{\n  \"a~b/c\": [1, -2.5e3, true, null, {\"x\": []}, [[], {}]],\n\t\"\\u00e9t\\u00e9\": {\"k\\\"q\": \"v\\n\"},\r\n  \"é\": { \"ü\" : \"ß\", \"n\": {}}\n}\n",
        );
        same_as_walk("[\n  {\"a\": 1},\n  [\"x\", \"y\"]\n]");
    }

    #[test]
    fn what_is_not_json_is_left_to_the_yaml_walk() {
        // `/b` is nowhere, so the scan reads each text to its end.
        let wanted = HashSet::from([String::from("/a"), String::from("/b")]);
        for text in [
            "a: 1",
            "{a: 1}",
            "{\"a\": 1,}",
            "{\"a\": 'x'}",
            "{\"a\": 1} {",
            "{\"a\": \"x\ny\"}",
        ] {
            assert!(json::locate(text, &wanted).is_none(), "{text}");
        }
        // The YAML walk still finds it in flow style.
        assert_eq!(find("{a: 1}", "/a"), Some(Location { line: 1, column: 2 }));
    }

    /// The JSON scan against the YAML walk on the corpus's JSON specs (`cargo test -p gateway-codegen -- --ignored`).
    #[test]
    #[ignore = "reads the shared corpus beside the checkout"]
    fn corpus_json_is_located_as_the_yaml_walk_locates_it() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/specs-corpus");
        let mut checked = 0;
        for entry in std::fs::read_dir(&dir).expect("the corpus") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("a spec");
                let all = walked(&text);
                let wanted: HashSet<String> = all.iter().map(|(p, _)| p.clone()).collect();
                let found = json::locate(&text, &wanted).expect("JSON");
                for (pointer, location) in &all {
                    assert_eq!(found.get(pointer), Some(location), "{pointer} in {}", path.display());
                }
                checked += 1;
            }
        }
        assert!(checked > 0);
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

    /// The position of `offset` in the value at `pointer`, checking that the source was read exactly.
    fn exact(text: &str, pointer: &str, offset: usize) -> (usize, usize) {
        let scalar = locate_scalar(text, pointer).expect("a scalar");
        assert!(
            decode_with_positions(text, &scalar).is_some(),
            "not read exactly: {scalar:?}"
        );
        let at = position_in_scalar(text, &scalar, offset);
        (at.line, at.column)
    }

    #[test]
    fn finds_scalar_values() {
        let text = "a:\n  b: 'x'\n  c:\n    - 1\n    - d: |\n        text\n";
        let b = locate_scalar(text, "/a/b").expect("b");
        assert_eq!(b.style, ScalarStyle::SingleQuoted);
        assert_eq!(
            (b.start, b.end),
            (Location { line: 2, column: 6 }, Location { line: 2, column: 9 })
        );
        assert_eq!(b.value, "x");
        assert_eq!(locate_scalar(text, "/a/c/0").map(|s| s.value), Some(String::from("1")));
        assert_eq!(
            locate_scalar(text, "/a/c/1/d").map(|s| s.style),
            Some(ScalarStyle::Literal)
        );
        // Mappings, sequences and keys are not scalar values.
        assert_eq!(locate_scalar(text, "/a"), None);
        assert_eq!(locate_scalar(text, "/a/c"), None);
        assert_eq!(locate_scalar(text, "/nope"), None);
    }

    #[test]
    fn plain_scalars() {
        let text = "body: .name | length\n";
        assert_eq!(exact(text, "/body", 0), (1, 7));
        assert_eq!(exact(text, "/body", 8), (1, 15));
        // Past the end: just after the last character.
        assert_eq!(exact(text, "/body", 14), (1, 21));
        // Folded over lines: a line break reads as a space, found where the break is.
        let text = "k:\n  .a |\n    length\n";
        assert_eq!(exact(text, "/k", 5), (3, 5));
        assert_eq!(exact(text, "/k", 4), (2, 7));
    }

    #[test]
    fn single_quoted_scalars() {
        let text = "k: '{a: ''x'', b: .b}'\n";
        assert_eq!(exact(text, "/k", 0), (1, 5));
        assert_eq!(exact(text, "/k", 4), (1, 9));
        assert_eq!(exact(text, "/k", 5), (1, 11));
        assert_eq!(exact(text, "/k", 12), (1, 19));
        // The closing quote, for the end of the value.
        assert_eq!(exact(text, "/k", 15), (1, 22));
        let text = "k: '.a |\n\n    .b'\n";
        assert_eq!(
            locate_scalar(text, "/k").map(|s| s.value),
            Some(String::from(".a |\n.b"))
        );
        assert_eq!(exact(text, "/k", 5), (3, 5));
    }

    #[test]
    fn double_quoted_scalars() {
        let text = "k: \"\\\"a\\\\(.b)\\\" | \\u00e9\"\n";
        assert_eq!(
            locate_scalar(text, "/k").map(|s| s.value),
            Some(String::from("\"a\\(.b)\" | é"))
        );
        assert_eq!(exact(text, "/k", 0), (1, 5));
        assert_eq!(exact(text, "/k", 1), (1, 7));
        assert_eq!(exact(text, "/k", 2), (1, 8));
        assert_eq!(exact(text, "/k", 3), (1, 10));
        assert_eq!(exact(text, "/k", 7), (1, 14));
        assert_eq!(exact(text, "/k", 11), (1, 19));
        assert_eq!(exact(text, "/k", 12), (1, 25));
        // An escaped line break joins the lines with nothing between them.
        let text = "k: \"{a: 1,\\\n    b: .b}\"\n";
        assert_eq!(
            locate_scalar(text, "/k").map(|s| s.value),
            Some(String::from("{a: 1,b: .b}"))
        );
        assert_eq!(exact(text, "/k", 6), (2, 5));
        // An escaped space at the end of a line stays; the line break after it folds into a space.
        let text = "k: \"a\\ \n  b\"\n";
        assert_eq!(locate_scalar(text, "/k").map(|s| s.value), Some(String::from("a  b")));
        assert_eq!(exact(text, "/k", 3), (2, 3));
    }

    #[test]
    fn literal_blocks() {
        let text = "k: |\n  {id: .id,\n   name: .name}\nnext: 1\n";
        assert_eq!(exact(text, "/k", 0), (2, 3));
        assert_eq!(exact(text, "/k", 11), (3, 4));
        // The end of the value: after the last line's text.
        assert_eq!(exact(text, "/k", 24), (3, 16));
        // Stripped, with a leading blank line.
        let text = "k: |-\n\n    .a\n    | .b\n";
        assert_eq!(exact(text, "/k", 4), (4, 5));
        // Kept.
        let text = "k: |+\n  .a\n\nz: 1\n";
        assert_eq!(exact(text, "/k", 1), (2, 4));
        // An explicit indentation keeps the spaces beyond it.
        let text = "k: |2\n    .a\n   .b\n";
        assert_eq!(exact(text, "/k", 2), (2, 5));
        assert_eq!(exact(text, "/k", 6), (3, 4));
        // In a sequence, with a comment after the indicator, and CRLF line ends.
        let text = "k:\r\n  - | # the filter\r\n    .a\r\n    .b\r\n";
        assert_eq!(exact(text, "/k/0", 3), (4, 5));
    }

    #[test]
    fn folded_blocks() {
        let text = "k: >\n  .a |\n  length\n\n  | .b\n";
        assert_eq!(
            locate_scalar(text, "/k").map(|s| s.value),
            Some(String::from(".a | length\n| .b\n"))
        );
        assert_eq!(exact(text, "/k", 5), (3, 3));
        assert_eq!(exact(text, "/k", 4), (2, 7));
        assert_eq!(exact(text, "/k", 12), (5, 3));
        // More-indented lines keep their line breaks.
        let text = "k: >-\n  a\n    b\n  c\n";
        assert_eq!(
            locate_scalar(text, "/k").map(|s| s.value),
            Some(String::from("a\n  b\nc"))
        );
        assert_eq!(exact(text, "/k", 4), (3, 5));
        assert_eq!(exact(text, "/k", 6), (4, 3));
    }

    #[test]
    fn json_strings() {
        let text = "{\"k\": \"{a: .a, \\\"b\\\": 1}\"}";
        let k = locate_scalar(text, "/k").expect("k");
        assert_eq!(
            (k.style, k.value.as_str()),
            (ScalarStyle::DoubleQuoted, "{a: .a, \"b\": 1}")
        );
        assert_eq!(exact(text, "/k", 0), (1, 8));
        assert_eq!(exact(text, "/k", 8), (1, 16));
        assert_eq!(exact(text, "/k", 9), (1, 18));
        let text = "{\n  \"a\": [\"\\u00e9\\u0041x\"]\n}";
        assert_eq!(locate_scalar(text, "/a/0").map(|s| s.value), Some(String::from("éAx")));
        assert_eq!(exact(text, "/a/0", 2), (2, 22));
        // saphyr refuses a UTF-16 surrogate pair (`\ud83d\ude00`, valid JSON): nothing from there on is found.
        assert_eq!(locate_scalar("[\"\\ud83d\\ude00\"]", "/0"), None);
    }

    #[test]
    fn approximate_when_the_source_reads_differently() {
        // A value that does not match its source (as if the reading had gone wrong) is placed line by line.
        let literal = ScalarSpan {
            start: Location { line: 3, column: 5 },
            end: Location { line: 6, column: 1 },
            style: ScalarStyle::Literal,
            value: String::from("\nab\ncd\n"),
        };
        assert_eq!(position_in_scalar("", &literal, 4), Location { line: 4, column: 5 });
        let quoted = ScalarSpan {
            start: Location { line: 1, column: 4 },
            end: Location { line: 2, column: 4 },
            style: ScalarStyle::DoubleQuoted,
            value: String::from("ab\ncd"),
        };
        assert_eq!(position_in_scalar("", &quoted, 1), Location { line: 1, column: 6 });
        assert_eq!(position_in_scalar("", &quoted, 4), Location { line: 2, column: 2 });
    }
}
