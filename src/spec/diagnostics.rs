//! Problems found in spec files, with where they are: carried as data
//! (`validate --json`) and rendered by miette with the source line.

use super::model::{SourceFile, Span};
use serde::Serialize;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Stable identifier, e.g. `lifeboat::spec::unknown_attribute`.
    pub code: String,
    pub message: String,
    pub help: Option<String>,
    pub span: Option<Span>,
    /// Other places that explain this one (the first of two duplicates…).
    pub related: Vec<(Span, String)>,
}

impl Diagnostic {
    pub fn error(code: &str, message: impl Into<String>, span: Option<Span>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            code: format!("lifeboat::spec::{code}"),
            message: message.into(),
            help: None,
            span,
            related: Vec::new(),
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }
}

/// Every problem of one run (lifeboat reports them all at once, not just the first).
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    pub items: Vec<Diagnostic>,
    /// The files, to show source lines.
    pub files: Vec<SourceFile>,
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.items.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            match &d.span {
                Some(span) => write!(f, "{span}: {}", d.message)?,
                None => write!(f, "{}", d.message)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl Diagnostics {
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// As data for `validate --json`: message, file, line/column range.
    pub fn to_json(&self) -> Vec<serde_json::Value> {
        self.items
            .iter()
            .map(|d| {
                let range = d.span.as_ref().map(|s| {
                    let (end_line, end_column) = self.line_col(s, s.end);
                    serde_json::json!({
                        "filename": s.file.display().to_string(),
                        "start": {"line": s.line, "column": s.column, "byte": s.start},
                        "end": {"line": end_line, "column": end_column, "byte": s.end},
                    })
                });
                serde_json::json!({
                    "severity": d.severity,
                    "code": d.code,
                    "summary": d.message,
                    "detail": d.help,
                    "range": range,
                    "related": d.related.iter().map(|(s, label)| serde_json::json!({
                        "message": label,
                        "filename": s.file.display().to_string(),
                        "line": s.line,
                        "column": s.column,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect()
    }

    fn line_col(&self, span: &Span, offset: usize) -> (usize, usize) {
        match self.files.iter().find(|f| f.path == span.file) {
            Some(file) => line_column(&file.text, offset),
            None => (span.line, span.column),
        }
    }

    /// Renders every diagnostic with its source snippet (miette).
    pub fn render(&self, color: bool) -> String {
        let theme = if color {
            miette::GraphicalTheme::unicode()
        } else {
            miette::GraphicalTheme::unicode_nocolor()
        };
        let handler = miette::GraphicalReportHandler::new_themed(theme).with_context_lines(1);
        let mut out = String::new();
        for d in &self.items {
            let report = Rendered::new(d, &self.files);
            if handler.render_report(&mut out, &report).is_err() {
                out.push_str(&format!("Error: {}\n", d.message));
            }
            out.push('\n');
        }
        let errors = self
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        if errors > 1 {
            out.push_str(&format!("{errors} errors.\n"));
        }
        out
    }
}

/// 1-based line and column (in characters) of a byte offset; an offset
/// inside a character counts as that character's start.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = text.get(..offset).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// One diagnostic in miette's terms.
#[derive(Debug)]
struct Rendered {
    message: String,
    code: String,
    help: Option<String>,
    severity: Severity,
    source: Option<miette::NamedSource<Arc<String>>>,
    labels: Vec<miette::LabeledSpan>,
}

impl Rendered {
    fn new(d: &Diagnostic, files: &[SourceFile]) -> Rendered {
        let file = d
            .span
            .as_ref()
            .and_then(|s| files.iter().find(|f| f.path == s.file));
        let mut labels = Vec::new();
        let mut message = d.message.clone();
        if let (Some(span), Some(_)) = (&d.span, file) {
            labels.push(miette::LabeledSpan::new_primary_with_span(
                Some("here".to_string()),
                (span.start, span.end.saturating_sub(span.start).max(1)),
            ));
            message = format!("{}: {}", span, d.message);
        }
        let mut help = d.help.clone();
        for (span, label) in &d.related {
            let same_file = d.span.as_ref().is_some_and(|s| s.file == span.file);
            if same_file {
                labels.push(miette::LabeledSpan::new_with_span(
                    Some(label.clone()),
                    (span.start, span.end.saturating_sub(span.start).max(1)),
                ));
            } else {
                let extra = format!("{label} at {span}");
                help = Some(match help {
                    Some(h) => format!("{h}\n{extra}"),
                    None => extra,
                });
            }
        }
        Rendered {
            message,
            code: d.code.clone(),
            help,
            severity: d.severity,
            source: file.map(|f| {
                miette::NamedSource::new(f.path.display().to_string(), Arc::new(f.text.clone()))
            }),
            labels,
        }
    }
}

impl std::fmt::Display for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Rendered {}

impl miette::Diagnostic for Rendered {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        Some(Box::new(&self.code))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.source.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        if self.labels.is_empty() {
            None
        } else {
            Some(Box::new(self.labels.iter().cloned()))
        }
    }
}
