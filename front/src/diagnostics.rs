//! User-facing diagnostics: a stable code, a message, labelled spans in the user's file and a
//! help line. Rendering goes through miette; `Report` pairs diagnostics with their source.

use crate::codes::Code;
use crate::syntax::ast::Span;
use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan,
    SpanContents,
};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone)]
pub struct Label {
    pub span: Span,
    pub text: String,
}

#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub code: Code,
    pub severity: Severity,
    pub message: String,
    /// The first label is the primary one.
    pub labels: Vec<Label>,
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(code: Code, message: impl Into<String>) -> Self {
        Diagnostic { code, severity: Severity::Error, message: message.into(), labels: vec![], help: None }
    }
    pub fn warning(code: Code, message: impl Into<String>) -> Self {
        Diagnostic { severity: Severity::Warning, ..Diagnostic::error(code, message) }
    }
    pub fn label(mut self, span: Span, text: impl Into<String>) -> Self {
        self.labels.push(Label { span, text: text.into() });
        self
    }
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
    /// Adds `help` only where there is one.
    pub fn maybe_help(mut self, help: Option<String>) -> Self {
        if help.is_some() {
            self.help = help;
        }
        self
    }
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
    /// Where the diagnostic points first (for sorting).
    pub fn position(&self) -> usize {
        self.labels.first().map_or(0, |l| l.span.start)
    }
}

/// A collector the checker passes around: errors do not stop checking, so that independent
/// mistakes in one file are all reported.
#[derive(Debug, Default)]
pub struct Sink {
    pub diagnostics: Vec<Diagnostic>,
}

impl Sink {
    pub fn push(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Diagnostics for one source file, ready to render.
pub struct Report {
    pub source: Indexed,
    pub diagnostics: Vec<Diagnostic>,
}

/// A named source with an index of its line starts, so that showing a span reads only the
/// lines around it: rendering N diagnostics of a long file takes time linear in N, where
/// miette's own reading would scan the file from its start for each.
pub struct Indexed {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl Indexed {
    pub fn new(name: &str, text: String) -> Self {
        let line_starts = std::iter::once(0).chain(text.match_indices('\n').map(|(i, _)| i + 1)).collect();
        Indexed { name: name.to_string(), text, line_starts }
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn inner(&self) -> &str {
        &self.text
    }
    /// The line (from 0) holding byte `offset`.
    pub fn line_of(&self, offset: usize) -> usize {
        self.line_starts.partition_point(|&s| s <= offset).saturating_sub(1)
    }
}

impl SourceCode for Indexed {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let (start, end) = (span.offset(), span.offset() + span.len());
        let first = self.line_of(start).saturating_sub(before);
        let last = self.line_of(end.saturating_sub(usize::from(!span.is_empty())).max(start)) + after + 1;
        let from = self.line_starts[first];
        let to = self.line_starts.get(last + 1).copied().unwrap_or(self.text.len());
        let window = &self.text[from..to];
        let inner = SourceSpan::new((start - from).into(), span.len());
        let c = window.read_span(&inner, before, after)?;
        let outer = SourceSpan::new((c.span().offset() + from).into(), c.span().len());
        let contents = MietteSpanContents::new_named(
            self.name.clone(),
            c.data(),
            outer,
            c.line() + first,
            c.column(),
            // miette counts lines from the start of the source to the end of the context.
            c.line_count() + first,
        )
        .with_language("hoyer");
        Ok(Box::new(contents))
    }
}

impl Report {
    pub fn new(name: &str, text: String, mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| (d.position(), d.code));
        Report { source: Indexed::new(name, text), diagnostics }
    }

    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }

    /// Renders every diagnostic, then a one-line count. `color` picks the terminal theme;
    /// without it the output is plain Unicode (what the golden files hold).
    pub fn render(&self, width: usize, color: bool) -> String {
        let theme = if color { GraphicalTheme::unicode() } else { GraphicalTheme::unicode_nocolor() };
        let handler = GraphicalReportHandler::new_themed(theme).with_width(width).with_links(false);
        let mut out = String::new();
        for d in &self.diagnostics {
            let one = Rendered { diagnostic: d, source: &self.source };
            if handler.render_report(&mut out, &one).is_err() {
                // Rendering into a String cannot fail in practice; keep the message regardless.
                out.push_str(&format!("{}: {}\n", d.code, d.message));
            }
        }
        let errors = self.diagnostics.iter().filter(|d| d.is_error()).count();
        let warnings = self.diagnostics.len() - errors;
        if errors + warnings > 0 {
            out.push_str(&summary_line(self.source.name(), errors, warnings));
            out.push('\n');
        }
        out
    }
}

fn summary_line(name: &str, errors: usize, warnings: usize) -> String {
    let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
    match (errors, warnings) {
        (0, w) => format!("{name}: {}", plural(w, "warning")),
        (e, 0) => format!("{name}: {}", plural(e, "error")),
        (e, w) => format!("{name}: {}, {}", plural(e, "error"), plural(w, "warning")),
    }
}

/// One diagnostic seen through miette's trait.
struct Rendered<'a> {
    diagnostic: &'a Diagnostic,
    source: &'a Indexed,
}

impl fmt::Debug for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.diagnostic.fmt(f)
    }
}

impl fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&elide(&self.diagnostic.message))
    }
}

/// `text` with any run of more than 200 characters without a space shortened in its
/// middle: a 70,000-character name in a message stays readable (and renderable).
pub fn elide(text: &str) -> String {
    const KEEP: usize = 100;
    let mut out = String::with_capacity(text.len().min(4096));
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let n = word.chars().count();
        if n > 2 * KEEP {
            let head: String = word.chars().take(KEEP / 2).collect();
            let tail: String = word.chars().skip(n - KEEP / 2).collect();
            out.push_str(&format!("{head}…({} characters)…{tail}", n - KEEP));
        } else {
            out.push_str(word);
        }
    }
    out
}

impl std::error::Error for Rendered<'_> {}

/// Lines longer than this are not shown as source snippets (a generated spec, a hostile
/// one): the diagnostic names the line and column instead. miette's layout cannot pad beyond
/// 65,535 columns.
const MAX_SHOWN_COLUMN: usize = 2000;

impl Rendered<'_> {
    /// Whether every label lies on lines short enough to show.
    fn showable(&self) -> bool {
        // Bytes, not chars: a span may point into a character (a file that is not UTF-8).
        let text = self.source.inner().as_bytes();
        self.diagnostic.labels.iter().all(|l| {
            let (a, b) = (l.span.start.min(text.len()), l.span.end.min(text.len()).max(l.span.start.min(text.len())));
            let line_start = text[..a].iter().rposition(|&c| c == b'\n').map_or(0, |i| i + 1);
            let line_end = text[b..].iter().position(|&c| c == b'\n').map_or(text.len(), |i| b + i);
            line_end - line_start <= MAX_SHOWN_COLUMN
                && text[a..b].split(|&c| c == b'\n').all(|l| l.len() <= MAX_SHOWN_COLUMN)
        })
    }

    /// "line L, column C" of the primary label.
    fn location(&self) -> Option<String> {
        let l = self.diagnostic.labels.first()?;
        let text = self.source.inner().as_bytes();
        let at = l.span.start.min(text.len());
        let line = self.source.line_of(at);
        let column = String::from_utf8_lossy(&text[self.source.line_starts[line]..at]).chars().count();
        Some(format!(
            "at line {}, column {}{}",
            line + 1,
            column + 1,
            if l.text.is_empty() { String::new() } else { format!(": {}", l.text) }
        ))
    }
}

impl miette::Diagnostic for Rendered<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(self.diagnostic.code.as_str()))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.diagnostic.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        let mut explain = format!("`hoyerc explain {}` says more", self.diagnostic.code.as_str());
        if !self.diagnostic.labels.is_empty() && !self.showable() {
            explain = format!("{} (the line is too long to show)\n{explain}", self.location().unwrap_or_default());
        }
        Some(Box::new(match &self.diagnostic.help {
            Some(h) => format!("{}\n{explain}", elide(h)),
            None => explain,
        }))
    }
    fn source_code(&self) -> Option<&dyn SourceCode> {
        if self.diagnostic.labels.is_empty() || !self.showable() {
            None
        } else {
            Some(self.source)
        }
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        if !self.showable() {
            return None;
        }
        let len = self.source.inner().len();
        let labels = self.diagnostic.labels.iter().enumerate().map(move |(i, l)| {
            // Clamp so that a span at the end of the file still renders.
            let start = l.span.start.min(len);
            let end = l.span.end.clamp(start, len);
            let text = (!l.text.is_empty()).then(|| l.text.clone());
            let span = (start, end - start);
            if i == 0 {
                LabeledSpan::new_primary_with_span(text, span)
            } else {
                LabeledSpan::new_with_span(text, span)
            }
        });
        Some(Box::new(labels))
    }
}

/// "did you mean" over a set of known names: the closest by edit distance, if close enough.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// `did you mean `x`?` where a close name exists.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    closest(word, candidates).map(|c| format!("did you mean `{c}`?"))
}
