//! The token stream `fmt` lays out: HCL source cut into tokens exactly where
//! HashiCorp's scanner (hclsyntax `scan_tokens.rl`, which `hclwrite.Format`
//! formats) cuts it, with the token types its formatter distinguishes. Every
//! byte of the input except the spaces and tabs between tokens lands in a
//! token, so writing the tokens back with new spacing changes nothing else.
//!
//! It only scans: whether the input is valid HCL is the parser's question,
//! and input it would reject still gets tokens (kind [`Kind::Other`]), never
//! a panic.

/// Token types, named as hclsyntax names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    OBrace,
    CBrace,
    OBrack,
    CBrack,
    OParen,
    CParen,
    OQuote,
    CQuote,
    /// `<<EOT` or `<<-EOT` with its newline.
    OHeredoc,
    /// The closing marker line of a heredoc, with its indentation, without
    /// its newline.
    CHeredoc,
    TemplateInterp,
    TemplateControl,
    TemplateSeqEnd,
    QuotedLit,
    /// Heredoc text, line by line.
    StringLit,
    NumberLit,
    Ident,
    /// `#` and `//` comments with their newline, or a `/* */` comment.
    Comment,
    Newline,
    Equal,
    Dot,
    Comma,
    Ellipsis,
    Colon,
    Question,
    Bang,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    EqualOp,
    NotEqual,
    LessThan,
    LessThanEq,
    GreaterThan,
    GreaterThanEq,
    And,
    Or,
    FatArrow,
    /// A character the scanner takes as itself but the formatter treats like
    /// any operator (`&`, `~`, `;` …), or one it rejects.
    Other,
    /// Ends the stream; its spaces are the blanks at the end of the file.
    Eof,
}

#[derive(Clone, Debug)]
pub(super) struct Token<'a> {
    pub kind: Kind,
    pub text: &'a str,
    /// Spaces written before the token; the scanner's gap to start with.
    pub spaces: usize,
}

enum Mode {
    Main,
    Quoted,
    Heredoc {
        marker: (usize, usize),
        start_of_line: bool,
    },
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    tokens: Vec<Token<'a>>,
    last_end: usize,
    modes: Vec<Mode>,
    /// Signed as in hclsyntax: a stray `}` takes it below zero.
    braces: i64,
    /// Brace depths at which a `}` closes a template sequence, not a brace.
    sequence_ends: Vec<i64>,
}

/// Cuts `text` into tokens, ending with [`Kind::Eof`].
pub(super) fn tokens(text: &str) -> Vec<Token<'_>> {
    // hclsyntax skips a byte order mark; the formatter then drops it.
    let start = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        tokens: Vec::new(),
        last_end: 0,
        modes: vec![Mode::Main],
        braces: 0,
        sequence_ends: Vec::new(),
    };
    let mut at = start;
    while at < text.len() {
        let next = match scanner.modes.last() {
            Some(Mode::Quoted) => scanner.quoted(at),
            Some(Mode::Heredoc { .. }) => scanner.heredoc(at),
            Some(Mode::Main) | None => scanner.main(at),
        };
        // Every step consumes at least one character; guard the invariant so
        // a mistake can never turn into a hang.
        at = if next > at {
            next
        } else {
            scanner.char_end(at)
        };
    }
    scanner.push(Kind::Eof, text.len(), text.len());
    scanner.tokens
}

impl Scanner<'_> {
    fn push(&mut self, kind: Kind, start: usize, end: usize) {
        self.tokens.push(Token {
            kind,
            text: self.text.get(start..end).unwrap_or_default(),
            spaces: start.saturating_sub(self.last_end),
        });
        self.last_end = end;
    }

    fn byte(&self, at: usize) -> Option<u8> {
        self.bytes.get(at).copied()
    }

    fn starts_with(&self, at: usize, prefix: &str) -> bool {
        self.bytes
            .get(at..)
            .is_some_and(|rest| rest.starts_with(prefix.as_bytes()))
    }

    fn char_at(&self, at: usize) -> Option<char> {
        self.text.get(at..).and_then(|rest| rest.chars().next())
    }

    /// The end of the character starting at `at`.
    fn char_end(&self, at: usize) -> usize {
        at + self.char_at(at).map_or(1, char::len_utf8)
    }

    fn ident_end(&self, at: usize) -> Option<usize> {
        let first = self.char_at(at)?;
        if !(first == '_' || unicode_ident::is_xid_start(first)) {
            return None;
        }
        let mut end = at + first.len_utf8();
        while let Some(c) = self.char_at(end) {
            if c == '-' || unicode_ident::is_xid_continue(c) {
                end += c.len_utf8();
            } else {
                break;
            }
        }
        Some(end)
    }

    /// `\n` or `\r\n` at `at`: its end.
    fn newline_end(&self, at: usize) -> Option<usize> {
        match (self.byte(at), self.byte(at + 1)) {
            (Some(b'\n'), _) => Some(at + 1),
            (Some(b'\r'), Some(b'\n')) => Some(at + 2),
            _ => None,
        }
    }

    fn main(&mut self, at: usize) -> usize {
        let Some(c) = self.byte(at) else {
            return at + 1;
        };
        let two = |s: &Self, second: u8| s.byte(at + 1) == Some(second);
        let (kind, end) = match c {
            b' ' | b'\t' => {
                let mut end = at;
                while matches!(self.byte(end), Some(b' ' | b'\t')) {
                    end += 1;
                }
                return end;
            }
            b'0'..=b'9' => (Kind::NumberLit, self.number_end(at)),
            b'#' => (Kind::Comment, self.line_comment_end(at)),
            b'/' if two(self, b'/') => (Kind::Comment, self.line_comment_end(at)),
            b'/' if two(self, b'*') => {
                let end = self
                    .text
                    .get(at + 2..)
                    .and_then(|rest| rest.find("*/"))
                    .map_or(self.text.len(), |i| at + 2 + i + 2);
                (Kind::Comment, end)
            }
            b'\n' | b'\r' if self.newline_end(at).is_some() => {
                (Kind::Newline, self.newline_end(at).unwrap_or(at + 1))
            }
            b'=' if two(self, b'=') => (Kind::EqualOp, at + 2),
            b'=' if two(self, b'>') => (Kind::FatArrow, at + 2),
            b'!' if two(self, b'=') => (Kind::NotEqual, at + 2),
            b'>' if two(self, b'=') => (Kind::GreaterThanEq, at + 2),
            b'<' if two(self, b'=') => (Kind::LessThanEq, at + 2),
            b'&' if two(self, b'&') => (Kind::And, at + 2),
            b'|' if two(self, b'|') => (Kind::Or, at + 2),
            b'.' if self.starts_with(at, "...") => (Kind::Ellipsis, at + 3),
            b'<' if self.heredoc_intro(at).is_some() => {
                let (end, marker) = self.heredoc_intro(at).unwrap_or((at + 1, (at, at)));
                self.push(Kind::OHeredoc, at, end);
                self.modes.push(Mode::Heredoc {
                    marker,
                    start_of_line: true,
                });
                return end;
            }
            b'{' => {
                self.braces += 1;
                (Kind::OBrace, at + 1)
            }
            b'}' => return self.close_brace(at, at + 1, false),
            b'~' if two(self, b'}') => return self.close_brace(at, at + 2, true),
            b'"' => {
                self.push(Kind::OQuote, at, at + 1);
                self.modes.push(Mode::Quoted);
                return at + 1;
            }
            b'[' => (Kind::OBrack, at + 1),
            b']' => (Kind::CBrack, at + 1),
            b'(' => (Kind::OParen, at + 1),
            b')' => (Kind::CParen, at + 1),
            b'.' => (Kind::Dot, at + 1),
            b',' => (Kind::Comma, at + 1),
            b'*' => (Kind::Star, at + 1),
            b'/' => (Kind::Slash, at + 1),
            b'%' => (Kind::Percent, at + 1),
            b'+' => (Kind::Plus, at + 1),
            b'-' => (Kind::Minus, at + 1),
            b'=' => (Kind::Equal, at + 1),
            b'<' => (Kind::LessThan, at + 1),
            b'>' => (Kind::GreaterThan, at + 1),
            b'!' => (Kind::Bang, at + 1),
            b'?' => (Kind::Question, at + 1),
            b':' => (Kind::Colon, at + 1),
            _ => match self.ident_end(at) {
                Some(end) => (Kind::Ident, end),
                None => (Kind::Other, self.char_end(at)),
            },
        };
        self.push(kind, at, end);
        end
    }

    /// `}` (or `~}`): the end of a template sequence when the brace depth is
    /// the one its `${` or `%{` opened, else a closing brace. hclsyntax
    /// makes every `~}` a sequence end, leaving mismatches to the parser.
    fn close_brace(&mut self, at: usize, end: usize, strip: bool) -> usize {
        let closes_sequence = self.sequence_ends.last() == Some(&self.braces);
        if closes_sequence {
            self.sequence_ends.pop();
            if self.modes.len() > 1 {
                self.modes.pop();
            }
        }
        self.braces -= 1;
        let kind = if closes_sequence || strip {
            Kind::TemplateSeqEnd
        } else {
            Kind::CBrace
        };
        self.push(kind, at, end);
        end
    }

    /// `digit (NumberLitContinue* (NumberLitContinue - '.'))?`, longest match.
    fn number_end(&self, at: usize) -> usize {
        let mut at = at + 1;
        let mut end = at;
        loop {
            match self.byte(at) {
                Some(b'0'..=b'9') => {
                    at += 1;
                    end = at;
                }
                Some(b'.') => at += 1,
                Some(b'e' | b'E') => {
                    let digit = if matches!(self.byte(at + 1), Some(b'+' | b'-')) {
                        at + 2
                    } else {
                        at + 1
                    };
                    if !matches!(self.byte(digit), Some(b'0'..=b'9')) {
                        return end;
                    }
                    at = digit + 1;
                    end = at;
                }
                _ => return end,
            }
        }
    }

    /// `#…` or `//…` up to and including the end of the line.
    fn line_comment_end(&self, at: usize) -> usize {
        self.text
            .get(at..)
            .and_then(|rest| rest.find('\n'))
            .map_or(self.text.len(), |i| at + i + 1)
    }

    /// `<<` `-`? identifier newline: the end, and the marker's range.
    fn heredoc_intro(&self, at: usize) -> Option<(usize, (usize, usize))> {
        if !self.starts_with(at, "<<") {
            return None;
        }
        let name = if self.byte(at + 2) == Some(b'-') {
            at + 3
        } else {
            at + 2
        };
        let name_end = self.ident_end(name)?;
        let end = self.newline_end(name_end)?;
        Some((end, (name, name_end)))
    }

    /// `${` or `%{` (with an optional `~`) at `at`: enters an expression.
    fn sequence_start(&mut self, at: usize) -> Option<usize> {
        let kind = match (self.byte(at), self.byte(at + 1)) {
            (Some(b'$'), Some(b'{')) => Kind::TemplateInterp,
            (Some(b'%'), Some(b'{')) => Kind::TemplateControl,
            _ => return None,
        };
        let end = if self.byte(at + 2) == Some(b'~') {
            at + 3
        } else {
            at + 2
        };
        self.push(kind, at, end);
        self.braces += 1;
        self.sequence_ends.push(self.braces);
        if let Some(Mode::Heredoc { start_of_line, .. }) = self
            .modes
            .iter_mut()
            .rev()
            .find(|m| matches!(m, Mode::Heredoc { .. }))
        {
            *start_of_line = false;
        }
        self.modes.push(Mode::Main);
        Some(end)
    }

    /// `$${`, `%%{` (escapes) or a lone `$` or `%`: literal text.
    fn escape_end(&self, at: usize) -> Option<usize> {
        let c = self.byte(at)?;
        if c != b'$' && c != b'%' {
            return None;
        }
        if self.byte(at + 1) == Some(c) && self.byte(at + 2) == Some(b'{') {
            let tilde = self.byte(at + 3) == Some(b'~');
            return Some(at + 3 + usize::from(tilde));
        }
        Some(at + 1)
    }

    fn quoted(&mut self, at: usize) -> usize {
        if let Some(end) = self.sequence_start(at) {
            return end;
        }
        match self.byte(at) {
            Some(b'"') => {
                self.push(Kind::CQuote, at, at + 1);
                self.modes.pop();
                return at + 1;
            }
            Some(b'\r' | b'\n') => {
                let mut end = at;
                while matches!(self.byte(end), Some(b'\r' | b'\n')) {
                    end += 1;
                }
                self.push(Kind::Other, at, end);
                return end;
            }
            _ => {}
        }
        if let Some(end) = self.escape_end(at) {
            self.push(Kind::QuotedLit, at, end);
            return end;
        }
        let mut end = at;
        loop {
            match self.byte(end) {
                None | Some(b'$' | b'%' | b'"' | b'\r' | b'\n') => break,
                Some(b'\\') => match self.byte(end + 1) {
                    None | Some(b'\r' | b'\n') => break,
                    Some(_) => end = self.char_end(end + 1),
                },
                Some(_) => end = self.char_end(end),
            }
        }
        if end == at {
            // A backslash at the end of a line: hclsyntax rejects it.
            end = self.char_end(at);
            self.push(Kind::Other, at, end);
        } else {
            self.push(Kind::QuotedLit, at, end);
        }
        end
    }

    fn heredoc(&mut self, at: usize) -> usize {
        if let Some(end) = self.sequence_start(at) {
            return end;
        }
        if let Some(end) = self.escape_end(at) {
            self.set_start_of_line(false);
            self.push(Kind::StringLit, at, end);
            return end;
        }
        let mut end = at;
        while let Some(c) = self.byte(end) {
            if matches!(c, b'$' | b'%' | b'\r' | b'\n') {
                break;
            }
            end = self.char_end(end);
        }
        let Some(line_end) = self.newline_end(end) else {
            if end == at {
                // A lone carriage return: hclsyntax rejects it.
                end = at + 1;
                self.push(Kind::Other, at, end);
            } else {
                self.set_start_of_line(false);
                self.push(Kind::StringLit, at, end);
            }
            return end;
        };
        if let Some(Mode::Heredoc {
            marker: (from, to),
            start_of_line: true,
        }) = self.modes.last()
            && self.text.get(at..line_end).map(trim_space) == self.text.get(*from..*to)
        {
            self.push(Kind::CHeredoc, at, end);
            self.push(Kind::Newline, end, line_end);
            self.modes.pop();
            return line_end;
        }
        self.set_start_of_line(true);
        self.push(Kind::StringLit, at, line_end);
        line_end
    }

    fn set_start_of_line(&mut self, value: bool) {
        if let Some(Mode::Heredoc { start_of_line, .. }) = self.modes.last_mut() {
            *start_of_line = value;
        }
    }
}

/// Go's `bytes.TrimSpace`: ASCII and Unicode white space at both ends.
fn trim_space(text: &str) -> &str {
    text.trim_matches(|c: char| c.is_whitespace())
}
