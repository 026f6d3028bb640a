//! Reading spec files: which files of a directory are the spec, their text,
//! and their parse into hcl-edit bodies, with syntax errors located at
//! file:line:column. Does no evaluation and knows no schema.

use super::diagnostics::{Diagnostic, Diagnostics, line_column};
use super::load::Loader;
use super::model::{SourceFile, Span};
use hcl_edit::structure::Body;
use std::path::{Path, PathBuf};

/// The spec files of a directory (`*.hcl`, in name order) and their bytes.
pub(super) fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>, Diagnostics> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        failure(format!(
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
        return Err(failure(format!(
            "no *.hcl files in {}: write a spec there (see examples/) or pass --chdir DIR",
            dir.display()
        )));
    }
    paths
        .into_iter()
        .map(|path| {
            let bytes = read_limited(&path)
                .map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?;
            let shown = path.strip_prefix(".").unwrap_or(&path).to_path_buf();
            Ok((shown, bytes))
        })
        .collect()
}

/// The largest spec (or variables) file lifeboat reads: far above any
/// real spec, far below what would strain memory (a file named `x.hcl`
/// may be a link to `/dev/zero`).
pub(super) const MAX_FILE_BYTES: u64 = 16 << 20;

/// A file's bytes, refused past [`MAX_FILE_BYTES`] without reading further.
pub(super) fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "larger than {} MiB, which no spec is: is it the right file?",
                MAX_FILE_BYTES >> 20
            ),
        ));
    }
    Ok(bytes)
}

/// Reads one spec file as text: see [`decode`].
pub fn read_source(path: &Path) -> Result<SourceFile, Diagnostics> {
    let bytes =
        read_limited(path).map_err(|e| failure(format!("cannot read {}: {e}", path.display())))?;
    match decode(path.to_path_buf(), bytes) {
        (file, None) => Ok(file),
        (file, Some(diagnostic)) => Err(Diagnostics {
            items: vec![diagnostic],
            files: vec![file],
        }),
    }
}

/// A file's bytes as text. Not UTF-8, or holding a NUL byte (a binary
/// file), is an error at the first bad byte; the file then carries its text
/// with bad bytes replaced, so the error can show the line.
pub(super) fn decode(path: PathBuf, bytes: Vec<u8>) -> (SourceFile, Option<Diagnostic>) {
    let (text, at, message) = match String::from_utf8(bytes) {
        Ok(text) => match text.find('\0') {
            None => return (SourceFile { path, text }, None),
            Some(at) => (text, at, "a NUL byte: this is a binary file, not HCL text"),
        },
        Err(error) => {
            let at = error.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(error.as_bytes()).into_owned();
            (text, at, "a byte that is not UTF-8")
        }
    };
    // The file is shown as text: control bytes (a binary file is full of
    // them) become U+FFFD so the terminal shows the line, not the bytes.
    let mut shown = String::with_capacity(text.len());
    let mut shown_at = 0;
    for (offset, c) in text.char_indices() {
        if offset == at {
            shown_at = shown.len();
        }
        if c.is_control() && !matches!(c, '\t' | '\n' | '\r') {
            shown.push(char::REPLACEMENT_CHARACTER);
        } else {
            shown.push(c);
        }
    }
    let (text, at) = (shown, shown_at);
    let (line, column) = line_column(&text, at);
    let width = text
        .get(at..)
        .and_then(|t| t.chars().next())
        .map_or(1, char::len_utf8);
    let span = Span {
        file: path.clone(),
        start: at,
        end: at + width,
        line,
        column,
    };
    let diagnostic = Diagnostic::error("encoding", format!("the file holds {message}"), Some(span))
        .with_help(
            "spec files are UTF-8 text: save it as such, or move it out of the spec directory",
        );
    (SourceFile { path, text }, Some(diagnostic))
}

fn failure(message: String) -> Diagnostics {
    Diagnostics {
        items: vec![Diagnostic::error("read", message, None)],
        files: Vec::new(),
    }
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
                    let diagnostic = syntax_error(&self.files[i], &error)
                        .with_help("check the line for a missing quote, brace or `=`");
                    self.error(diagnostic);
                }
            }
        }
        bodies
    }
}

/// The byte offset of a 1-based line and column (in characters).
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

/// A parse error of `file`, located at the character hcl-edit names.
pub(super) fn syntax_error(file: &SourceFile, error: &hcl_edit::parser::Error) -> Diagnostic {
    let location = error.location();
    let start = location_offset(&file.text, location.line(), location.column());
    let width = file
        .text
        .get(start..)
        .and_then(|t| t.chars().next())
        .map_or(1, char::len_utf8);
    let (line, column) = line_column(&file.text, start);
    let span = Span {
        file: file.path.clone(),
        start,
        end: start + width,
        line,
        column,
    };
    Diagnostic::error(
        "syntax",
        format!("syntax error: {}", error.message()),
        Some(span),
    )
}
