//! `lifeboat fmt`: the canonical layout of spec files, as `terraform fmt`
//! writes it: two-space indentation by nesting, `=` aligned within runs of
//! attributes, no trailing spaces, at most one blank line, comments and
//! heredocs kept as written. Idempotent; the result parses to the same spec.

use super::diagnostics::{Diagnostic, Diagnostics, line_column};
use super::model::{SourceFile, Span};
use std::path::Path;

/// Where a line starts and ends in nesting, ignoring strings and comments.
struct Scan {
    opens_first: bool,
    depth_change: i32,
    /// Lines closing a bracket first are indented one level less.
    starts_with_close: bool,
    heredoc: Option<String>,
}

fn scan(line: &str) -> Scan {
    let mut depth = 0i32;
    let mut in_string = false;
    let mut interpolation = 0;
    let mut chars = line.chars().peekable();
    let mut heredoc = None;
    let mut previous = ' ';
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' => {
                    chars.next();
                }
                '$' if chars.peek() == Some(&'{') => {
                    chars.next();
                    interpolation += 1;
                }
                '}' if interpolation > 0 => interpolation -= 1,
                '"' if interpolation == 0 => in_string = false,
                _ => {}
            }
            previous = c;
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => break,
            '/' if chars.peek() == Some(&'/') => break,
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            '<' if previous == '<' => {
                let rest: String = chars.clone().collect();
                let marker = rest.trim_start_matches('-').trim();
                if !marker.is_empty() && marker.chars().all(|c| c.is_alphanumeric() || c == '_') {
                    heredoc = Some(marker.to_string());
                }
            }
            _ => {}
        }
        previous = c;
    }
    let trimmed = line.trim_start();
    Scan {
        opens_first: false,
        depth_change: depth,
        starts_with_close: trimmed.starts_with('}')
            || trimmed.starts_with(']')
            || trimmed.starts_with(')'),
        heredoc,
    }
}

/// `key = value` at the start of a line: the key, when it is one.
fn attribute_key(line: &str) -> Option<(&str, &str)> {
    let (key, rest) = line.split_once('=')?;
    let key = key.trim_end();
    if rest.starts_with('=') || key.is_empty() {
        return None;
    }
    key.chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
        .then_some((key, rest.trim_start()))
}

pub fn format_source(path: &Path, text: &str) -> Result<String, Diagnostics> {
    if let Err(error) = hcl_edit::parser::parse_body(text) {
        let location = error.location();
        let (line, column) = (location.line(), location.column());
        let offset = text
            .split_inclusive('\n')
            .take(line.saturating_sub(1))
            .map(str::len)
            .sum::<usize>()
            + column.saturating_sub(1);
        let (line, column) = line_column(text, offset);
        return Err(Diagnostics {
            items: vec![Diagnostic::error(
                "syntax",
                format!(
                    "syntax error: {}; the file was not changed",
                    error.message()
                ),
                Some(Span {
                    file: path.to_path_buf(),
                    start: offset,
                    end: offset + 1,
                    line,
                    column,
                }),
            )],
            files: vec![SourceFile {
                path: path.to_path_buf(),
                text: text.to_string(),
            }],
        });
    }
    // Pass 1: indentation.
    let mut lines: Vec<(i32, String, bool)> = Vec::new(); // (depth, content, verbatim)
    let mut depth = 0i32;
    let mut heredoc: Option<String> = None;
    for raw in text.lines() {
        if let Some(marker) = &heredoc {
            if raw.trim() == marker {
                heredoc = None;
            }
            lines.push((0, raw.to_string(), true));
            continue;
        }
        let content = raw.trim();
        let scanned = scan(content);
        let _ = scanned.opens_first;
        let indent = if scanned.starts_with_close {
            depth - 1
        } else {
            depth
        };
        lines.push((indent.max(0), content.to_string(), false));
        depth = (depth + scanned.depth_change).max(0);
        heredoc = scanned.heredoc;
    }
    // Pass 2: align `=` in runs of single attributes at one depth.
    let mut out = String::new();
    let mut i = 0;
    let mut blank_run = 0;
    while i < lines.len() {
        let (indent, content, verbatim) = &lines[i];
        if *verbatim {
            out.push_str(content);
            out.push('\n');
            i += 1;
            continue;
        }
        if content.is_empty() {
            blank_run += 1;
            if blank_run == 1 && !out.is_empty() {
                out.push('\n');
            }
            i += 1;
            continue;
        }
        blank_run = 0;
        if attribute_key(content).is_some() {
            let mut run = vec![i];
            let mut j = i + 1;
            // A run continues over attributes at the same depth whose values
            // stay on their line.
            let single_line = |k: usize| scan(&lines[k].1).depth_change == 0;
            if single_line(i) {
                while j < lines.len()
                    && lines[j].0 == *indent
                    && !lines[j].2
                    && attribute_key(&lines[j].1).is_some()
                    && single_line(j)
                {
                    run.push(j);
                    j += 1;
                }
            }
            let width = run
                .iter()
                .map(|k| {
                    attribute_key(&lines[*k].1)
                        .expect("attribute")
                        .0
                        .chars()
                        .count()
                })
                .max()
                .unwrap_or(0);
            for k in &run {
                let (key, value) = attribute_key(&lines[*k].1).expect("attribute");
                let pad = width - key.chars().count();
                out.push_str(&format!(
                    "{}{key}{} = {value}\n",
                    "  ".repeat(lines[*k].0 as usize),
                    " ".repeat(pad)
                ));
            }
            i = run.last().expect("non-empty") + 1;
            continue;
        }
        out.push_str(&"  ".repeat(*indent as usize));
        out.push_str(content);
        out.push('\n');
        i += 1;
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_indents_and_keeps_comments() {
        let text = "# top comment\nvolume \"data\" {\n      name = \"x\" # the volume\n policy= policy.default\n\n\n\n}\n";
        let formatted = format_source(Path::new("a.hcl"), text).unwrap();
        assert_eq!(
            formatted,
            "# top comment\nvolume \"data\" {\n  name   = \"x\" # the volume\n  policy = policy.default\n\n}\n"
        );
        assert_eq!(
            format_source(Path::new("a.hcl"), &formatted).unwrap(),
            formatted
        );
    }

    #[test]
    fn nested_blocks_and_lists() {
        let text = "policy \"p\" {\nrpo = \"1h\"\nretention {\nkeep_last = 3\n}\ncopies = [\nrepository.a,\n]\n}\n";
        let formatted = format_source(Path::new("a.hcl"), text).unwrap();
        assert_eq!(
            formatted,
            "policy \"p\" {\n  rpo = \"1h\"\n  retention {\n    keep_last = 3\n  }\n  copies = [\n    repository.a,\n  ]\n}\n"
        );
    }

    #[test]
    fn syntax_errors_change_nothing() {
        assert!(format_source(Path::new("a.hcl"), "volume \"x\" {\n name = \n").is_err());
    }
}
