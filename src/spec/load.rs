//! Loading a spec: runs the stages in order over the files of a directory
//! (read and parse in `source`, variables and locals in `eval`, blocks
//! against the schema in `check`, references in `resolve`, the typed model in
//! `build`) and collects every problem they find. Owns the [`Loader`] the
//! stages share; the stages own their rules.

use super::diagnostics::{Diagnostic, Diagnostics, line_column};
use super::functions;
use super::model::{SourceFile, Span, Spec, VarInputs};
use super::source;
use std::path::{Path, PathBuf};

/// What the stages share: the files, the problems found so far, and the
/// evaluation context that variables and locals fill in.
pub(super) struct Loader<'v> {
    pub files: Vec<SourceFile>,
    pub diagnostics: Vec<Diagnostic>,
    pub context: hcl::eval::Context<'static>,
    pub vars: &'v VarInputs,
    /// String values of sensitive variables (and of their list elements),
    /// and of every value computed from one.
    pub sensitive: Vec<String>,
    /// Names of the variables declared sensitive.
    pub sensitive_vars: std::collections::BTreeSet<String>,
    /// Names of the locals computed from a sensitive value.
    pub sensitive_locals: std::collections::BTreeSet<String>,
    /// Byte offsets where each file's lines start, computed on first use.
    pub line_starts: Vec<std::cell::OnceCell<Vec<usize>>>,
    /// The variables' values (`var.*`), for evaluating locals in scopes of
    /// their own.
    pub var_values: hcl::Map<String, hcl::Value>,
}

impl Loader<'_> {
    /// The span of a byte range of one file (empty at the start when the
    /// parser gave none).
    pub fn span(&self, file: usize, range: Option<std::ops::Range<usize>>) -> Span {
        let range = range.unwrap_or(0..0);
        let text = &self.files[file].text;
        // Where each line starts, found once per file: counting lines from
        // the top for every span made large specs quadratic.
        let starts = self.line_starts[file].get_or_init(|| {
            std::iter::once(0)
                .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                .collect()
        });
        let line_index = starts
            .partition_point(|start| *start <= range.start)
            .saturating_sub(1);
        let line_start = starts.get(line_index).copied().unwrap_or(0);
        let (_, column) = line_column(
            &text[line_start..],
            range.start - line_start.min(range.start),
        );
        let line = line_index + 1;
        Span {
            file: self.files[file].path.clone(),
            start: range.start,
            end: range.end,
            line,
            column,
        }
    }

    pub fn error(&mut self, diagnostic: Diagnostic) {
        self.diagnostics.push(diagnostic);
    }

    /// No message quotes a sensitive value, whichever stage wrote it.
    fn redact_diagnostics(&mut self, sensitive: &[String]) {
        let redact = |text: &mut String| {
            for value in sensitive.iter().filter(|v| !v.is_empty()) {
                if text.contains(value.as_str()) {
                    *text = text.replace(value.as_str(), "(sensitive)");
                }
            }
        };
        for diagnostic in &mut self.diagnostics {
            redact(&mut diagnostic.message);
            if let Some(help) = &mut diagnostic.help {
                redact(help);
            }
            for (_, label) in &mut diagnostic.related {
                redact(label);
            }
        }
    }

    fn failed(self) -> Diagnostics {
        Diagnostics {
            items: self.diagnostics,
            files: self.files,
        }
    }
}

/// Reads the directory's spec.
pub fn load_dir(dir: &Path, vars: &VarInputs) -> Result<Spec, Diagnostics> {
    load_sources(dir, source::read_dir(dir)?, vars)
}

/// The spec of these files (path as shown in diagnostics, and bytes), as if
/// read from `dir`: what [`load_dir`] does once it has read the directory.
pub fn load_sources(
    dir: &Path,
    sources: Vec<(PathBuf, Vec<u8>)>,
    vars: &VarInputs,
) -> Result<Spec, Diagnostics> {
    let mut files = Vec::new();
    let mut diagnostics = Vec::new();
    for (path, bytes) in sources {
        let (file, problem) = source::decode(path, bytes);
        files.push(file);
        diagnostics.extend(problem);
    }
    let mut loader = Loader {
        files,
        diagnostics,
        context: functions::context(),
        vars,
        sensitive: Vec::new(),
        sensitive_vars: Default::default(),
        sensitive_locals: Default::default(),
        var_values: Default::default(),
        line_starts: Vec::new(),
    };
    loader.line_starts = loader.files.iter().map(|_| Default::default()).collect();
    if !loader.diagnostics.is_empty() {
        return Err(loader.failed());
    }
    // 1. Parse every file.
    let bodies = loader.parse();
    if !loader.diagnostics.is_empty() {
        return Err(loader.failed());
    }
    // 2. Variables and locals first: everything else may use them.
    let variables = loader.variables(&bodies);
    loader.locals(&bodies);
    // 3. Resources.
    let (declared, checked) = loader.check_blocks(&bodies);
    // 4. References must point at declared resources.
    loader.resolve(&declared, &checked);
    let moved = loader.moved_blocks(&bodies, &declared);
    let mut spec = loader.build(dir, checked, variables);
    spec.moved = moved;
    loader.redact_diagnostics(&spec.sensitive_values);
    if loader.diagnostics.is_empty() {
        Ok(Spec {
            files: loader.files,
            ..spec
        })
    } else {
        Err(loader.failed())
    }
}
