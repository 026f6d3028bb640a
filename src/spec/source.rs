//! Reading spec files: which files of a directory are the spec, their text,
//! and their parse into hcl-edit bodies, with syntax errors located at
//! file:line:column. Does no evaluation and knows no schema.

use super::diagnostics::{Diagnostic, Diagnostics};
use super::load::Loader;
use super::model::{SourceFile, Span};
use hcl_edit::structure::Body;
use std::path::{Path, PathBuf};

pub(super) fn read_files(dir: &Path) -> Result<Vec<SourceFile>, Diagnostics> {
    let fail = |message: String| Diagnostics {
        items: vec![Diagnostic::error("read", message, None)],
        files: Vec::new(),
    };
    let entries = std::fs::read_dir(dir).map_err(|e| {
        fail(format!(
            "cannot read the spec directory {}: {e}",
            dir.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "hcl"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(fail(format!(
            "no *.hcl files in {}: write a spec there (see examples/) or pass --chdir DIR",
            dir.display()
        )));
    }
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))?;
            let shown = path.strip_prefix(".").unwrap_or(&path).to_path_buf();
            Ok(SourceFile { path: shown, text })
        })
        .collect()
}

impl Loader<'_> {
    /// Every file's body, by file index; a file that does not parse adds a
    /// diagnostic instead.
    pub(super) fn parse(&mut self) -> Vec<(usize, Body)> {
        let mut bodies: Vec<(usize, Body)> = Vec::new();
        for i in 0..self.files.len() {
            match hcl_edit::parser::parse_body(&self.files[i].text) {
                Ok(body) => bodies.push((i, body)),
                Err(error) => {
                    let location = error.location();
                    let text = &self.files[i].text;
                    let offset = location_offset(text, location.line(), location.column());
                    let span = Span {
                        file: self.files[i].path.clone(),
                        start: offset,
                        end: offset + 1,
                        line: location.line(),
                        column: location.column(),
                    };
                    self.error(
                        Diagnostic::error(
                            "syntax",
                            format!("syntax error: {}", error.message()),
                            Some(span),
                        )
                        .with_help("check the line for a missing quote, brace or `=`"),
                    );
                }
            }
        }
        bodies
    }
}

fn location_offset(text: &str, line: usize, column: usize) -> usize {
    let mut offset = 0;
    for (i, l) in text.split_inclusive('\n').enumerate() {
        if i + 1 == line {
            return offset
                + l.char_indices()
                    .nth(column.saturating_sub(1))
                    .map(|(b, _)| b)
                    .unwrap_or(l.len());
        }
        offset += l.len();
    }
    text.len()
}
