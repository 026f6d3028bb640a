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
    /// String values of sensitive variables (and of their list elements).
    pub sensitive: Vec<String>,
}

impl Loader<'_> {
    /// The span of a byte range of one file (empty at the start when the
    /// parser gave none).
    pub fn span(&self, file: usize, range: Option<std::ops::Range<usize>>) -> Span {
        let range = range.unwrap_or(0..0);
        let text = &self.files[file].text;
        let (line, column) = line_column(text, range.start);
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
    };
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
    let spec = loader.build(dir, checked, variables);
    if loader.diagnostics.is_empty() {
        Ok(Spec {
            files: loader.files,
            ..spec
        })
    } else {
        Err(loader.failed())
    }
}
