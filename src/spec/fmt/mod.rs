//! `lifeboat fmt`: the canonical layout of spec files, byte for byte what
//! HashiCorp's formatter (`hclwrite.Format`, behind `terraform fmt`) writes.
//! The same three passes over the same tokens (see `lex`): indentation by
//! the brackets each line opens or closes, the spaces between the tokens of
//! a line, then the alignment of `=` in runs of one-line attributes and of
//! trailing comments in runs of commented lines. Only spaces change: blank
//! lines, comments, heredocs and string contents stay as written.
//!
//! The contract is the golden files under `tests/fmt/`, produced by the real
//! formatter; this module knows nothing of the spec's schema.

mod lex;

use super::diagnostics::Diagnostics;
use super::model::SourceFile;
use lex::{Kind, Token};
use std::ops::Range;
use std::path::Path;
use unicode_segmentation::UnicodeSegmentation;

/// The canonical layout of one file; a file that does not parse is an error
/// (and is left as it is).
pub fn format_source(path: &Path, text: &str) -> Result<String, Diagnostics> {
    if let Err(error) = hcl_edit::parser::parse_body(text) {
        let file = SourceFile {
            path: path.to_path_buf(),
            text: text.to_string(),
        };
        let mut diagnostic = super::source::syntax_error(&file, &error);
        diagnostic.message.push_str("; the file was not changed");
        return Err(Diagnostics {
            items: vec![diagnostic],
            files: vec![file],
        });
    }
    Ok(canonical(text))
}

/// `hclwrite.Format`: the layout of any text, parsed or not.
pub fn canonical(text: &str) -> String {
    let mut tokens = lex::tokens(text);
    let lines = lines(&tokens);
    indent(&mut tokens, &lines);
    space(&mut tokens, &lines);
    align(&mut tokens, &lines);
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for token in &tokens {
        out.extend(std::iter::repeat_n(' ', token.spaces));
        out.push_str(token.text);
    }
    out
}

/// One line of tokens in up to three cells, as hclwrite cuts it: `lead`
/// always; `assign` from the `=` of an attribute whose value ends on this
/// line; `comment`, a comment ending a line that has something before it.
#[derive(Default, Clone)]
struct Line {
    lead: Range<usize>,
    assign: Option<Range<usize>>,
    comment: Option<Range<usize>>,
}

fn lines(tokens: &[Token]) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (i, token) in tokens.iter().enumerate() {
        if token.kind == Kind::Eof {
            lines.push(Line {
                lead: start..i,
                ..Line::default()
            });
            start = i + 1;
            break;
        }
        if is_newline(token) {
            lines.push(Line {
                lead: start..i + 1,
                ..Line::default()
            });
            start = i + 1;
        }
    }
    if start < tokens.len() {
        // No end-of-file token: keep the tail as a last line.
        lines.push(Line {
            lead: start..tokens.len(),
            ..Line::default()
        });
    }
    for line in &mut lines {
        let lead = line.lead.clone();
        if lead.len() > 1 && tokens[lead.end - 1].kind == Kind::Comment {
            line.comment = Some(lead.end - 1..lead.end);
            line.lead = lead.start..lead.end - 1;
        }
        let lead = line.lead.clone();
        if let Some(equal) = lead
            .clone()
            .skip(1)
            .find(|&i| tokens[i].kind == Kind::Equal)
        {
            // Only a value that closes what it opens is a one-line value;
            // the rest open a multi-line expression.
            if net_brackets(&tokens[equal..lead.end]) == 0 {
                line.assign = Some(equal..lead.end);
                line.lead = lead.start..equal;
            }
        }
    }
    lines
}

/// A `#` or `//` comment takes its newline, so it ends a line too.
fn is_newline(token: &Token) -> bool {
    token.kind == Kind::Newline || (token.kind == Kind::Comment && token.text.ends_with('\n'))
}

fn bracket_change(kind: Kind) -> i64 {
    match kind {
        Kind::OBrace
        | Kind::OBrack
        | Kind::OParen
        | Kind::TemplateControl
        | Kind::TemplateInterp => 1,
        Kind::CBrace | Kind::CBrack | Kind::CParen | Kind::TemplateSeqEnd => -1,
        _ => 0,
    }
}

fn net_brackets(tokens: &[Token]) -> i64 {
    tokens.iter().map(|t| bracket_change(t.kind)).sum()
}

/// Two spaces per level: a line that opens brackets indents the lines
/// after it; one that closes them dedents itself and the rest, level by
/// level as they were opened (so unbalanced lines cannot drift).
fn indent(tokens: &mut [Token], lines: &[Line]) {
    let mut levels: Vec<i64> = Vec::new();
    for line in lines {
        let Some(first) = line.lead.clone().next() else {
            continue;
        };
        if tokens[first].kind == Kind::Newline {
            tokens[first].spaces = 0;
            continue;
        }
        let mut net = 0;
        for token in &tokens[line.lead.clone()] {
            net += bracket_change(token.kind);
            if token.kind == Kind::OHeredoc {
                break;
            }
        }
        if let Some(assign) = &line.assign {
            net += net_brackets(&tokens[assign.clone()]);
        }
        if net > 0 {
            tokens[first].spaces = 2 * levels.len();
            levels.push(net);
            continue;
        }
        let mut closed = -net;
        while closed > 0 {
            let Some(top) = levels.last_mut() else {
                break;
            };
            if closed >= *top {
                closed -= *top;
                levels.pop();
            } else {
                *top -= closed;
                closed = 0;
            }
        }
        tokens[first].spaces = 2 * levels.len();
    }
}

/// The spaces between neighbouring tokens of the lead and of the assign
/// cell; the first token of each cell is `indent`'s and `align`'s.
fn space(tokens: &mut [Token], lines: &[Line]) {
    for line in lines {
        space_cell(tokens, line.lead.clone());
        if let Some(assign) = &line.assign {
            if let Some(first) = tokens.get_mut(assign.start) {
                first.spaces = 1;
            }
            space_cell(tokens, assign.clone());
        }
    }
}

fn space_cell(tokens: &mut [Token], cell: Range<usize>) {
    for i in cell.start..cell.end.saturating_sub(1) {
        let before = (i > cell.start).then(|| &tokens[i - 1]);
        let spaced = space_after(&tokens[i], before, &tokens[i + 1]);
        tokens[i + 1].spaces = usize::from(spaced);
    }
}

/// hclwrite's `spaceAfterToken`, rule for rule and in its order.
fn space_after(subject: &Token, before: Option<&Token>, after: &Token) -> bool {
    use Kind::*;
    let before = before.map(|t| t.kind);
    match (subject.kind, after.kind) {
        (_, Newline | Eof) => false,
        (Ident, OParen) => false,
        (Dot, _) | (_, Dot) => false,
        (_, Comma | Ellipsis) => false,
        (Comma, _) => true,
        (QuotedLit | StringLit | OQuote | OHeredoc, _)
        | (_, QuotedLit | StringLit | CQuote | CHeredoc) => false,
        (Ident, _) if subject.text == "in" && before == Some(Ident) => true,
        (s, OBrack) if matches!(s, Ident | NumberLit) || bracket_change(s) < 0 => false,
        (Bang, _) => false,
        (Minus, _) => !matches!(
            before,
            None | Some(
                OParen
                    | OBrace
                    | OBrack
                    | Equal
                    | Colon
                    | Comma
                    | Question
                    | Plus
                    | Star
                    | Slash
                    | Percent
                    | Minus
                    | EqualOp
                    | NotEqual
                    | GreaterThan
                    | GreaterThanEq
                    | LessThan
                    | LessThanEq
                    | And
                    | Or
                    | Bang
            )
        ),
        (OBrace, CBrace) => false,
        (OBrace, _) | (_, CBrace) => true,
        (TemplateInterp | TemplateControl, OBrace) => true,
        (CBrace, TemplateSeqEnd) => true,
        (TemplateSeqEnd, TemplateInterp | TemplateControl) => false,
        (s, _) if bracket_change(s) > 0 => false,
        (_, a) if bracket_change(a) < 0 => false,
        _ => true,
    }
}

/// Aligns the `=` of consecutive one-line attributes one space after the
/// longest lead, then the trailing comments of consecutive commented lines
/// one space after the longest code.
fn align(tokens: &mut [Token], lines: &[Line]) {
    for run in runs(lines, |l| l.assign.is_some()) {
        let width = run
            .iter()
            .map(|l| columns(tokens, &l.lead))
            .max()
            .unwrap_or(0);
        for line in run {
            let (lead, assign) = (line.lead.clone(), line.assign.clone());
            if let Some(assign) = assign {
                tokens[assign.start].spaces = width - columns(tokens, &lead) + 1;
            }
        }
    }
    for run in runs(lines, |l| l.comment.is_some()) {
        let code = |tokens: &[Token], l: &Line| {
            columns(tokens, &l.lead) + l.assign.as_ref().map_or(0, |a| columns(tokens, a))
        };
        let width = run.iter().map(|l| code(tokens, l)).max().unwrap_or(0);
        for line in run {
            let spaces = width - code(tokens, line) + 1;
            if let Some(comment) = &line.comment {
                tokens[comment.start].spaces = spaces;
            }
        }
    }
}

/// Maximal runs of consecutive lines that satisfy `member`.
fn runs(lines: &[Line], member: impl Fn(&Line) -> bool) -> Vec<&[Line]> {
    lines
        .split(|l| !member(l))
        .filter(|run| !run.is_empty())
        .collect()
}

/// Width of a cell in columns: its spaces plus one per grapheme cluster, as
/// hclwrite counts them.
fn columns(tokens: &[Token], cell: &Range<usize>) -> usize {
    tokens[cell.clone()]
        .iter()
        .map(|t| t.spaces + t.text.graphemes(true).count())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every golden file under tests/fmt/ (written by hclwrite itself, see
    /// tests/fmt/regenerate.sh) is what `canonical` makes of its input, and
    /// canonical text stays as it is.
    #[test]
    fn matches_hclwrite_on_every_golden_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fmt");
        let mut names: Vec<_> = std::fs::read_dir(root.join("input"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert!(names.len() >= 20, "the corpus is there");
        let mut wrong = Vec::new();
        for name in names {
            let input = std::fs::read_to_string(root.join("input").join(&name)).unwrap();
            let golden = std::fs::read_to_string(root.join("golden").join(&name)).unwrap();
            let formatted = match format_source(Path::new("x.hcl"), &input) {
                Ok(formatted) => formatted,
                Err(e) => {
                    wrong.push(format!("{}: {e}", name.to_string_lossy()));
                    continue;
                }
            };
            if formatted != golden {
                let diff = similar::TextDiff::from_lines(&golden, &formatted)
                    .unified_diff()
                    .header("hclwrite", "lifeboat")
                    .to_string();
                wrong.push(format!("{}:\n{diff}", name.to_string_lossy()));
            }
            assert_eq!(canonical(&golden), golden, "{name:?} is not idempotent");
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// Found by the `spec` fuzz target: hcl-edit's column counts
    /// characters, and taking it as a byte offset sliced inside `本`.
    #[test]
    fn a_syntax_error_after_wide_characters_is_located_in_characters() {
        let text = "wide = \"日本語\" `\n";
        let error = format_source(Path::new("a.hcl"), text).unwrap_err();
        let span = error.items[0].span.clone().unwrap();
        assert_eq!((span.line, span.column), (1, 14), "{error}");
        assert_eq!(&text[span.start..span.end], "`");
        error.render(false);
    }

    #[test]
    fn syntax_errors_change_nothing() {
        assert!(format_source(Path::new("a.hcl"), "volume \"x\" {\n name = \n").is_err());
    }
}
