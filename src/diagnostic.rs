//! Problems found in a user's file (a recipe, a bootconf.txt), each pointing at the bytes it is
//! about and saying what to write instead; rendered the way rustc renders its errors.
//!
//! Not for I/O failures or internal errors: those are `anyhow` errors with context.

use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem. `span` is a byte range in the source it was found in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Option<Range<usize>>,
    pub message: String,
    /// What to do about it.
    pub help: Option<String>,
    /// A second place that explains the first ("first used here").
    pub related: Option<(Range<usize>, String)>,
}

impl Diagnostic {
    pub fn error(span: impl Into<Option<Range<usize>>>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Error, span: span.into(), message: message.into(), help: None, related: None }
    }

    pub fn warning(span: impl Into<Option<Range<usize>>>, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(span, message) }
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The same problem, located at `span`.
    pub fn at(mut self, span: Range<usize>) -> Self {
        self.span = Some(span);
        self
    }

    pub fn related(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related = Some((span, label.into()));
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// "2 errors, 1 warning" (counts of each severity; zero counts left out, "no problems" if none).
pub fn summary(diagnostics: &[Diagnostic]) -> String {
    let count = |s: Severity| diagnostics.iter().filter(|d| d.severity == s).count();
    let parts: Vec<String> = [(count(Severity::Error), "error"), (count(Severity::Warning), "warning")]
        .into_iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, word)| format!("{n} {word}{}", if n == 1 { "" } else { "s" }))
        .collect();
    if parts.is_empty() { "no problems".into() } else { parts.join(", ") }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, source[line_start..offset].chars().count() + 1)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Render diagnostics against their source. Every message starts with `path:line:column`, so
/// editors and CI logs can jump to it; `styled` adds colour for terminals.
pub fn render(diagnostics: &[Diagnostic], source: &str, path: &str, styled: bool) -> String {
    let renderer = if styled { Renderer::styled() } else { Renderer::plain() };
    // Newline offsets, found once: each snippet is given only its own lines, so rendering many
    // diagnostics of a long file is linear in their number, not their number times the file.
    let newlines: Vec<usize> = source.match_indices('\n').map(|(i, _)| i).collect();
    let mut out = String::new();
    for d in diagnostics {
        let level = match d.severity {
            Severity::Error => Level::ERROR,
            Severity::Warning => Level::WARNING,
        };
        // With a span the snippet's `--> path:line:column` line says where; without one, the title does.
        let title = match &d.span {
            Some(_) => d.message.clone(),
            None => format!("{path}: {}", d.message),
        };
        let mut group = Group::with_title(level.clone().primary_title(&title));
        if let Some(span) = &d.span {
            let span = clamp(source, span.clone());
            let related = d.related.as_ref().map(|(r, label)| (clamp(source, r.clone()), label));
            let (lo, hi) = related
                .as_ref()
                .map_or((span.start, span.end), |(r, _)| (span.start.min(r.start), span.end.max(r.end)));
            // From the start of the first line touched to the end of the last. The end of a file
            // that ends in a newline belongs to its last line, as annotate-snippets shows it.
            let lo = if lo == source.len() && source.ends_with('\n') { lo - 1 } else { lo };
            let first_line = newlines.partition_point(|&n| n < lo);
            let start = if first_line == 0 { 0 } else { newlines[first_line - 1] + 1 };
            let end = newlines.get(newlines.partition_point(|&n| n < hi)).map_or(source.len(), |&n| n);
            let shift = |r: &Range<usize>| r.start - start..r.end - start;
            let mut snippet = Snippet::source(&source[start..end])
                .line_start(first_line + 1)
                .path(path)
                .annotation(AnnotationKind::Primary.span(shift(&span)));
            if let Some((related, label)) = &related {
                snippet = snippet.annotation(AnnotationKind::Context.span(shift(related)).label(*label));
            }
            group = group.element(snippet);
        }
        if let Some(help) = &d.help {
            group = group.element(Level::HELP.message(help));
        }
        out.push_str(&renderer.render(&[group]));
        out.push_str("\n\n");
    }
    out
}

fn clamp(source: &str, span: Range<usize>) -> Range<usize> {
    let end = floor_char_boundary(source, span.end.min(source.len()));
    floor_char_boundary(source, span.start.min(end))..end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_count_characters() {
        let src = "a = 1\nnäme = \"x\"\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        let eq = src.find('=').unwrap();
        assert_eq!(line_col(src, eq), (1, 3));
        let quote = src.find('"').unwrap();
        assert_eq!(line_col(src, quote), (2, 8));
    }

    #[test]
    fn summaries_count_and_pluralise() {
        let e = Diagnostic::error(None, "e");
        let w = Diagnostic::warning(None, "w");
        assert_eq!(summary(&[]), "no problems");
        assert_eq!(summary(std::slice::from_ref(&e)), "1 error");
        assert_eq!(summary(&[e.clone(), e, w]), "2 errors, 1 warning");
    }

    #[test]
    fn rendering_names_file_line_column_and_help() {
        let src = "[lab]\nname = \"Bad Name\"\n";
        let start = src.find('"').unwrap();
        let d = Diagnostic::error(start..start + 10, "bad name").help("use lower case");
        let text = render(&[d], src, "lab.toml", false);
        assert!(text.contains("error: bad name"), "{text}");
        assert!(text.contains("--> lab.toml:2:8"), "{text}");
        assert!(text.contains("name = \"Bad Name\""), "{text}");
        assert!(text.contains("help: use lower case"), "{text}");
    }

    /// The snippet rendered against the whole source, as render did before it cut the source
    /// to the lines a diagnostic touches.
    fn whole_source(d: &Diagnostic, src: &str) -> String {
        let level = if d.is_error() { Level::ERROR } else { Level::WARNING };
        let mut snippet = Snippet::source(src)
            .path("r.toml")
            .annotation(AnnotationKind::Primary.span(clamp(src, d.span.clone().unwrap())));
        if let Some((related, label)) = &d.related {
            snippet = snippet.annotation(AnnotationKind::Context.span(clamp(src, related.clone())).label(label));
        }
        let group = Group::with_title(level.primary_title(&d.message)).element(snippet);
        format!("{}\n\n", Renderer::plain().render(&[group]))
    }

    #[test]
    fn a_snippet_of_its_own_lines_renders_as_the_whole_file_would() {
        let src = "[lab]\nname = \"x\"\n\n[eeprom]\nA = 1\nB = \"two\nthree\"\nC = 3\n";
        let at = |s: &str| src.find(s).unwrap();
        let cases = [
            Diagnostic::error(0..5, "first line"),
            Diagnostic::warning(None, "last line").at(at("C")..at("C") + 5),
            Diagnostic::error(at("B")..at("three") + 6, "two lines"),
            Diagnostic::error(at("C")..at("C") + 1, "dup").related(at("A")..at("A") + 1, "first here"),
            Diagnostic::error(src.len()..src.len(), "at the end"),
            Diagnostic::error(at("name")..at("[eeprom]"), "ends on a newline"),
        ];
        for d in cases {
            assert_eq!(render(std::slice::from_ref(&d), src, "r.toml", false), whole_source(&d, src), "{}", d.message);
        }
    }
}
