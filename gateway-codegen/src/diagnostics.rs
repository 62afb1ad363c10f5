//! Generate-time diagnostics: what is wrong, where, and how to fix it.
//!
//! Every check in the pipeline records a [`Diagnostic`] against a JSON pointer into the spec and carries on, so one
//! run reports every problem (the error store of dropshot's endpoint macro is the model). Pointers become
//! `file:line:column` only when the diagnostics are rendered (see [`crate::locate`]).

use std::collections::HashSet;
use std::fmt;

use crate::locate::{self, Location};

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
    /// A position known directly (a syntax error), used instead of looking the pointer up.
    pub location: Option<Location>,
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
            location: None,
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

    /// Adds another place involved in the problem.
    #[must_use]
    pub fn related(mut self, pointer: impl Into<String>, note: impl Into<String>) -> Self {
        self.related.push((pointer.into(), note.into()));
        self
    }
}

/// Collects diagnostics across the pipeline.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a diagnostic.
    pub fn push(&mut self, diagnostic: Diagnostic) {
        // A check that runs per operation (a shared security scheme, say) reports a problem once.
        let repeat = self
            .items
            .iter()
            .any(|d| d.pointer == diagnostic.pointer && d.message == diagnostic.message);
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
        let mut wanted = HashSet::new();
        for d in &self.items {
            for p in std::iter::once(&d.pointer).chain(d.related.iter().map(|(p, _)| p)) {
                // Ancestors too, so a pointer into a value that is not in the text (a default) still finds a line.
                let mut p = p.as_str();
                loop {
                    wanted.insert(p.to_owned());
                    match p.rfind('/') {
                        Some(i) if i > 0 => p = &p[..i],
                        _ => break,
                    }
                }
            }
        }
        let found = locate::locate(text, &wanted);
        let find = |pointer: &str| -> Option<Location> {
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
        };
        let mut out: Vec<RenderedDiagnostic> = self
            .items
            .iter()
            .map(|d| RenderedDiagnostic {
                severity: d.severity,
                file: file.to_owned(),
                // The empty pointer is the document itself (a missing top-level field): it starts at its first line.
                location: d
                    .location
                    .or_else(|| find(&d.pointer))
                    .or_else(|| d.pointer.is_empty().then(|| document_start(text))),
                pointer: d.pointer.clone(),
                message: d.message.clone(),
                help: d.help.clone(),
                related: d
                    .related
                    .iter()
                    .map(|(p, note)| (find(p), p.clone(), note.clone()))
                    .collect(),
            })
            .collect();
        out.sort_by_key(|a| (a.severity, a.location));
        out
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
