//! Generate-time diagnostics: what is wrong, where, and how to fix it.
//!
//! Every check in the pipeline records a [`Diagnostic`] against a JSON pointer into the spec and carries on, so one
//! run reports every problem (the error store of dropshot's endpoint macro is the model). Pointers become
//! `file:line:column` only when the diagnostics are rendered (see [`crate::locate`]).

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::locate::{self, Location};
use crate::parse::sources::{SPEC, Sources};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Generation stops; nothing is written.
    Error,
    /// Reported; generation goes on (e.g. a parameter default that does not fit its type and is ignored).
    Warning,
}

/// One finding about the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// JSON pointer to the offending node (`/paths/~1pets/get/x-gateway/target`).
    pub pointer: String,
    /// What is wrong, in one sentence.
    pub message: String,
    /// How to fix it, when there is something useful to say.
    pub help: Option<String>,
    /// Other places involved (e.g. the first of two conflicting operations), with a note each.
    pub related: Vec<(String, String)>,
    /// Places involved in other specs of the same gateway: `(file, pointer, note)`.
    pub elsewhere: Vec<(String, String, String)>,
    /// A position known directly (a syntax error), used instead of looking the pointer up.
    pub location: Option<Location>,
    /// A character offset into the decoded text of the scalar value at `pointer` (an error inside a jq filter, say):
    /// the diagnostic is then placed where that character is written, or at the pointer's key when the value is not
    /// a scalar in the text.
    pub offset: Option<usize>,
    /// `Some(file)`: `pointer` (and the related pointers) are already pointers into that file of the spec's files
    /// (an overlay's own problems, or a Swagger 2.0 document's before conversion), not into the document the
    /// generator reads; `None`: they are followed back through the spec's [`Sources`].
    pub file: Option<usize>,
}

impl Diagnostic {
    /// An error at `pointer`.
    pub fn error(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            pointer: pointer.into(),
            message: message.into(),
            help: None,
            related: Vec::new(),
            elsewhere: Vec::new(),
            location: None,
            offset: None,
            file: None,
        }
    }

    /// A warning at `pointer`.
    pub fn warning(pointer: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(pointer, message)
        }
    }

    /// Adds a hint on how to fix the problem.
    #[must_use]
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Moves the diagnostic to `pointer` (for checks that learn where they are from their caller).
    #[must_use]
    pub fn relocate(mut self, pointer: impl Into<String>) -> Self {
        self.pointer = pointer.into();
        self
    }

    /// Pins the diagnostic to a known position.
    #[must_use]
    pub fn at(mut self, location: Location) -> Self {
        self.location = Some(location);
        self
    }

    /// Points the diagnostic at the character `offset` (in characters, not bytes) of the decoded text of the scalar
    /// value at its pointer, e.g. where in a jq filter the syntax error is. Rendering finds where that character is
    /// written in the spec, whatever the scalar's style (plain, quoted, block; see
    /// [`locate::position_in_scalar`]).
    #[must_use]
    pub fn at_offset(mut self, offset: usize) -> Self {
        self.offset = Some(offset);
        self
    }

    /// Says that the diagnostic's pointers are into `file` of the spec's files as they are written (see
    /// [`Diagnostic::file`]).
    #[must_use]
    pub fn in_file(mut self, file: usize) -> Self {
        self.file = Some(file);
        self
    }

    /// Adds another place involved in the problem.
    #[must_use]
    pub fn related(mut self, pointer: impl Into<String>, note: impl Into<String>) -> Self {
        self.related.push((pointer.into(), note.into()));
        self
    }

    /// Adds a place involved in another spec `file` (of the same gateway).
    #[must_use]
    pub fn related_in(mut self, file: impl Into<String>, pointer: impl Into<String>, note: impl Into<String>) -> Self {
        self.elsewhere.push((file.into(), pointer.into(), note.into()));
        self
    }
}

/// A file (index among the spec's files) and a pointer into it.
type Place = (usize, String);

/// Collects diagnostics across the pipeline.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        // A check that runs per operation (a shared security scheme, say) reports a problem once.
        let repeat = self.items.iter().any(|d| {
            d.pointer == diagnostic.pointer
                && d.message == diagnostic.message
                && d.offset == diagnostic.offset
                && d.file == diagnostic.file
        });
        if !repeat {
            self.items.push(diagnostic);
        }
    }

    /// Whether any error (not warning) was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// Everything recorded, in order.
    pub fn items(&self) -> &[Diagnostic] {
        &self.items
    }

    /// Resolves locations against the spec's text and renders every diagnostic, errors first, then by position.
    pub fn render(&self, file: &str, text: &str) -> Vec<RenderedDiagnostic> {
        self.render_in(file, text, &[])
    }

    /// [`render`](Self::render), with the texts of the other specs of the gateway (`(file, text)`), where places
    /// added with [`Diagnostic::related_in`] are found.
    pub fn render_in(&self, file: &str, text: &str, others: &[(&str, &str)]) -> Vec<RenderedDiagnostic> {
        self.render_sourced(&[(file, text)], &Sources::default(), others)
    }

    /// Renders every diagnostic where its text is written: `files` are the spec's own files (`(file, text)`, the
    /// spec first, then its overlays), `sources` how the document the generator read was made from them, and
    /// `others` the other specs of the gateway.
    pub fn render_sourced(
        &self,
        files: &[(&str, &str)],
        sources: &Sources,
        others: &[(&str, &str)],
    ) -> Vec<RenderedDiagnostic> {
        // Every pointer, followed back to the file and pointer where it is written.
        let place = |d: &Diagnostic, pointer: &str| -> (usize, String) {
            match d.file {
                Some(file) => (file, pointer.to_owned()),
                None => sources.origin(pointer),
            }
        };
        let placed: Vec<(Place, Vec<Place>)> = self
            .items
            .iter()
            .map(|d| {
                (
                    place(d, &d.pointer),
                    d.related.iter().map(|(p, _)| place(d, p)).collect(),
                )
            })
            .collect();
        let file_count = files.len().max(1);
        let found: Vec<HashMap<String, Location>> = (0..file_count)
            .map(|f| {
                let pointers = placed
                    .iter()
                    .flat_map(|(main, related)| std::iter::once(main).chain(related))
                    .filter(|(file, _)| *file == f)
                    .map(|(_, p)| p);
                files
                    .get(f)
                    .map_or_else(HashMap::new, |(_, text)| find_all(text, pointers))
            })
            .collect();
        // The values that diagnostics point inside of, per file.
        let scalars: Vec<HashMap<String, locate::ScalarSpan>> = (0..file_count)
            .map(|f| {
                let inside: HashSet<String> = self
                    .items
                    .iter()
                    .zip(&placed)
                    .filter(|(d, ((file, _), _))| d.offset.is_some() && d.location.is_none() && *file == f)
                    .map(|(_, ((_, p), _))| p.clone())
                    .collect();
                files
                    .get(f)
                    .map_or_else(HashMap::new, |(_, text)| locate::locate_scalars(text, &inside))
            })
            .collect();
        // Places in the other specs, looked up once per file.
        let elsewhere: Vec<(&str, HashMap<String, Location>)> = others
            .iter()
            .map(|(other, other_text)| {
                let pointers = self
                    .items
                    .iter()
                    .flat_map(|d| d.elsewhere.iter())
                    .filter(|(f, _, _)| f == other)
                    .map(|(_, p, _)| p);
                (*other, find_all(other_text, pointers))
            })
            .collect();
        let (spec_file, spec_text) = files.get(SPEC).copied().unwrap_or(("", ""));
        let name = |f: usize| files.get(f).map_or(spec_file, |(name, _)| *name);
        let mut out: Vec<(usize, RenderedDiagnostic)> = self
            .items
            .iter()
            .zip(&placed)
            .map(|(d, ((f, pointer), related))| {
                let text = files.get(*f).map_or(spec_text, |(_, text)| *text);
                let in_scalar = || -> Option<Location> {
                    let scalar = scalars.get(*f)?.get(pointer)?;
                    Some(locate::position_in_scalar(text, scalar, d.offset?))
                };
                let located = |file: usize, p: &str| found.get(file).and_then(|found| find(found, p));
                let mut same_file = Vec::new();
                let mut other_files = Vec::new();
                for ((rf, rp), (_, note)) in related.iter().zip(&d.related) {
                    if rf == f {
                        same_file.push((located(*rf, rp), rp.clone(), note.clone()));
                    } else {
                        other_files.push((name(*rf).to_owned(), located(*rf, rp), rp.clone(), note.clone()));
                    }
                }
                other_files.extend(d.elsewhere.iter().map(|(other, p, note)| {
                    let location = elsewhere
                        .iter()
                        .find(|(f, _)| f == other)
                        .and_then(|(_, found)| find(found, p));
                    (other.clone(), location, p.clone(), note.clone())
                }));
                let rendered = RenderedDiagnostic {
                    severity: d.severity,
                    file: name(*f).to_owned(),
                    // The empty pointer is the document itself (a missing top-level field): it starts at its first
                    // line.
                    // A file the caller did not pass has no lines to show (the pointer still says where).
                    location: (*f < files.len())
                        .then(|| {
                            d.location
                                .or_else(in_scalar)
                                .or_else(|| located(*f, pointer))
                                .or_else(|| pointer.is_empty().then(|| document_start(text)))
                        })
                        .flatten(),
                    pointer: pointer.clone(),
                    message: d.message.clone(),
                    help: d.help.clone(),
                    related: same_file,
                    elsewhere: other_files,
                };
                (*f, rendered)
            })
            .collect();
        out.sort_by_key(|(f, a)| (a.severity, *f, a.location));
        out.into_iter().map(|(_, d)| d).collect()
    }
}

/// The locations of `pointers` in `text`, and of their ancestors, so that a pointer into a value that is not in the
/// text (a default) still finds a line.
fn find_all<'p>(text: &str, pointers: impl Iterator<Item = &'p String>) -> HashMap<String, Location> {
    let mut wanted = HashSet::new();
    for p in pointers {
        let mut p = p.as_str();
        loop {
            wanted.insert(p.to_owned());
            match p.rfind('/') {
                Some(i) if i > 0 => p = &p[..i],
                _ => break,
            }
        }
    }
    locate::locate(text, &wanted)
}

/// Where `pointer` is, or its nearest ancestor that is in the text.
fn find(found: &HashMap<String, Location>, pointer: &str) -> Option<Location> {
    let mut p = pointer;
    loop {
        if let Some(loc) = found.get(p) {
            return Some(*loc);
        }
        match p.rfind('/') {
            Some(i) if i > 0 => p = &p[..i],
            _ => return None,
        }
    }
}

/// Where the document's content starts: the first line that is not blank, a comment or a YAML directive or marker.
fn document_start(text: &str) -> Location {
    let content = text.lines().enumerate().find_map(|(i, line)| {
        let line = line.trim_start_matches('\u{feff}');
        let trimmed = line.trim_start();
        let skip = trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('%') || trimmed == "---";
        (!skip).then(|| Location {
            line: i + 1,
            column: line.chars().count() - trimmed.chars().count() + 1,
        })
    });
    content.unwrap_or(Location { line: 1, column: 1 })
}

/// A diagnostic with its position resolved, ready to print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedDiagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The spec file, as given to the generator.
    pub file: String,
    /// Where in the file, when the pointer could be found in the text.
    pub location: Option<Location>,
    /// The JSON pointer, always shown: it is exact even where the line is approximate.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub help: Option<String>,
    /// Other places involved.
    pub related: Vec<(Option<Location>, String, String)>,
    /// Places involved in other specs of the gateway: `(file, location, pointer, note)`.
    pub elsewhere: Vec<(String, Option<Location>, String, String)>,
}

impl RenderedDiagnostic {
    /// The 1-based line, if known.
    pub fn line(&self) -> Option<usize> {
        self.location.map(|l| l.line)
    }
}

fn write_place(f: &mut fmt::Formatter<'_>, file: &str, location: Option<Location>, pointer: &str) -> fmt::Result {
    match location {
        Some(l) => write!(f, "{file}:{}:{}", l.line, l.column)?,
        None => write!(f, "{file}")?,
    }
    if !pointer.is_empty() {
        write!(f, " (at {pointer})")?;
    }
    Ok(())
}

impl fmt::Display for RenderedDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{label}: {}", self.message)?;
        write!(f, "  --> ")?;
        write_place(f, &self.file, self.location, &self.pointer)?;
        writeln!(f)?;
        for (location, pointer, note) in &self.related {
            write!(f, "  --> ")?;
            write_place(f, &self.file, *location, pointer)?;
            writeln!(f, ": {note}")?;
        }
        for (file, location, pointer, note) in &self.elsewhere {
            write!(f, "  --> ")?;
            write_place(f, file, *location, pointer)?;
            writeln!(f, ": {note}")?;
        }
        if let Some(help) = &self.help {
            writeln!(f, "  = help: {help}")?;
        }
        Ok(())
    }
}

/// The closest of `candidates` to `word`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "a:\n  filter: '.x | lenght'\n  object:\n    k: 1\n";

    fn rendered(d: Diagnostic) -> Option<Location> {
        let mut diags = Diagnostics::default();
        diags.push(d);
        diags.render("t.yaml", TEXT).first().and_then(|d| d.location)
    }

    #[test]
    fn an_offset_points_inside_the_value() {
        let d = Diagnostic::error("/a/filter", "undefined").at_offset(5);
        assert_eq!(d.offset, Some(5));
        assert_eq!(rendered(d), Some(Location { line: 2, column: 17 }));
    }

    #[test]
    fn an_offset_falls_back_to_the_key() {
        // Not a scalar: the key.
        let d = Diagnostic::error("/a/object", "not a filter").at_offset(3);
        assert_eq!(rendered(d), Some(Location { line: 3, column: 3 }));
        // Not in the text: the nearest ancestor's key.
        let d = Diagnostic::error("/a/missing", "absent").at_offset(3);
        assert_eq!(rendered(d), Some(Location { line: 1, column: 1 }));
        // A known position wins.
        let d = Diagnostic::error("/a/filter", "pinned")
            .at_offset(3)
            .at(Location { line: 9, column: 9 });
        assert_eq!(rendered(d), Some(Location { line: 9, column: 9 }));
    }

    #[test]
    fn errors_at_different_offsets_are_all_kept() {
        let mut diags = Diagnostics::default();
        diags.push(Diagnostic::error("/a/filter", "same").at_offset(1));
        diags.push(Diagnostic::error("/a/filter", "same").at_offset(4));
        diags.push(Diagnostic::error("/a/filter", "same").at_offset(4));
        assert_eq!(diags.items().len(), 2);
    }
}
