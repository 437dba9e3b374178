//! Compiling and checking a policy before it is deployed.
//!
//! sieve-rs accepts some scripts that can only fail later, so on top of its compiler this module
//! refuses, each with a 1-based line and column:
//! - unknown tests (sieve-rs compiles them to an "invalid" test that fails only when reached);
//! - `require`s outside [`ALLOWED_REQUIRES`], and a missing `require "vnd.nta7516"`;
//! - `redirect` (a policy decides; it does not send mail);
//! - scripts over the size limit (reported at the line where the limit is crossed).
//!
//! Where sieve-rs reports an error at 0:0 (e.g. an unknown command), the position is found in the source.

use std::fmt;

use sieve::{compiler::ErrorType, Compiler, Sieve};

use crate::{functions::function_map, limits::Limits, CAPABILITY};

/// Extensions a policy may `require`.
pub const ALLOWED_REQUIRES: &[&str] = &[
    "vnd.nta7516",
    "vnd.stalwart.expressions",
    "vnd.stalwart.while",
    "envelope",
    "environment",
    "variables",
    "relational",
    "comparator-i;ascii-numeric",
    "comparator-i;octet",
    "comparator-i;ascii-casemap",
    "body",
    "regex",
    "subaddress",
    "mime",
    "foreverypart",
    "date",
    "index",
];

/// A policy that does not compile or fails a check: where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompileError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in bytes).
    pub column: usize,
    pub message: String,
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for CompileError {}

impl CompileError {
    fn at(pos: (usize, usize), message: impl Into<String>) -> Self {
        CompileError {
            line: pos.0,
            column: pos.1,
            message: message.into(),
        }
    }
}

/// Compiles and checks `src`.
pub(crate) fn compile(src: &str, limits: &Limits) -> Result<Sieve, CompileError> {
    if src.len() > limits.max_script_size {
        return Err(CompileError::at(
            position(src, limits.max_script_size),
            format!(
                "policy is {} bytes, over the limit of {} bytes",
                src.len(),
                limits.max_script_size
            ),
        ));
    }
    let tokens = lex(src);
    check_statements(&tokens)?;
    let compiler = Compiler::new()
        .with_max_script_size(limits.max_script_size)
        .with_max_nested_blocks(limits.max_nested_blocks)
        .with_max_nested_tests(limits.max_nested_tests)
        .with_max_string_size(limits.max_string_size)
        .register_functions(&mut function_map());
    let script = compiler
        .compile(src.as_bytes())
        .map_err(|e| from_sieve(src, &tokens, &e))?;
    if let Some(err) = invalid_test(src, &script) {
        return Err(err);
    }
    Ok(script)
}

/// (line, column), both 1-based, of byte `offset`.
fn position(src: &str, offset: usize) -> (usize, usize) {
    let before = &src.as_bytes()[..offset.min(src.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let col = offset
        - before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1)
        + 1;
    (line, col)
}

fn from_sieve(src: &str, tokens: &[Tok], e: &sieve::compiler::CompileError) -> CompileError {
    let message = match e.error_type() {
        ErrorType::UnexpectedToken { expected, found } if expected == "command" => {
            format!("unknown command {found:?}")
        }
        ErrorType::InvalidExpression(x) if x.contains("Invalid variable or function name") => {
            format!(
                "{x} (functions of vnd.nta7516: {})",
                crate::FUNCTIONS
                    .iter()
                    .map(|(n, _, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        _ => {
            // sieve-rs appends its own " at line N, column M."; the position is reported separately.
            let text = e.to_string();
            match text.rfind(" at line ") {
                Some(at) => text[..at].to_string(),
                None => text,
            }
        }
    };
    let pos = if e.line_num() == 0 {
        locate(src, tokens, e)
    } else {
        (e.line_num(), e.line_pos().max(1))
    };
    CompileError::at(pos, message)
}

/// Finds the position sieve-rs did not report: the token it names, else the end of the script.
fn locate(src: &str, tokens: &[Tok], e: &sieve::compiler::CompileError) -> (usize, usize) {
    let found = match e.error_type() {
        ErrorType::UnexpectedToken { found, .. } => Some(found.as_str()),
        _ => None,
    };
    found
        .and_then(|f| {
            tokens
                .iter()
                .find(|t| t.kind == Kind::Ident && t.text.eq_ignore_ascii_case(f))
        })
        .map(|t| (t.line, t.column))
        .unwrap_or_else(|| position(src, src.len()))
}

/// sieve-rs keeps unknown tests as `Test::Invalid { name, line_num, line_pos }` inside the private
/// instruction list; its `Debug` output is the only public view of it (sieve-rs is pinned to =0.7.3).
fn invalid_test(src: &str, script: &Sieve) -> Option<CompileError> {
    let dbg = format!("{script:?}");
    let at = dbg.find("Invalid(Invalid { name: ")?;
    let rest = &dbg[at + "Invalid(Invalid { name: ".len()..];
    let name_end = rest.find("\", line_num: ")?;
    let name = rest[..name_end].trim_start_matches('"').to_string();
    let nums = &rest[name_end + "\", line_num: ".len()..];
    let line: usize = nums.split(',').next()?.trim().parse().ok()?;
    let pos: usize = nums
        .split("line_pos: ")
        .nth(1)?
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let (line, column) = if line == 0 {
        lex(src)
            .iter()
            .find(|t| t.kind == Kind::Ident && t.text.eq_ignore_ascii_case(&name))
            .map_or((1, 1), |t| (t.line, t.column))
    } else {
        (line, pos.max(1))
    };
    Some(CompileError::at(
        (line, column),
        format!(
            "unknown test {name:?} (use a Sieve test or eval with nta_has_bsn(), nta_has_phone(), nta_has_tag(tag))"
        ),
    ))
}

/// `require`s against the allow-list, `require "vnd.nta7516"` present, no `redirect`.
fn check_statements(tokens: &[Tok]) -> Result<(), CompileError> {
    let mut has_capability = false;
    let mut prev: Option<&Tok> = None;
    for (i, t) in tokens.iter().enumerate() {
        let at_statement = prev
            .is_none_or(|p| p.kind == Kind::Punct && matches!(p.text.as_str(), ";" | "{" | "}"));
        prev = Some(t);
        if t.kind != Kind::Ident || !at_statement {
            continue;
        }
        match t.text.to_ascii_lowercase().as_str() {
            "require" => {
                for s in tokens[i + 1..]
                    .iter()
                    .take_while(|t| !(t.kind == Kind::Punct && t.text == ";"))
                    .filter(|t| t.kind == Kind::Str)
                {
                    let cap = s.text.to_ascii_lowercase();
                    if cap == CAPABILITY {
                        has_capability = true;
                    } else if !ALLOWED_REQUIRES.contains(&cap.as_str()) {
                        return Err(CompileError::at(
                            (s.line, s.column),
                            format!(
                                "unsupported require {:?} (allowed: {})",
                                s.text,
                                ALLOWED_REQUIRES.join(", ")
                            ),
                        ));
                    }
                }
            }
            "redirect" => {
                return Err(CompileError::at(
                    (t.line, t.column),
                    "redirect is not allowed in a policy: decide with nta_* functions",
                ))
            }
            _ => {}
        }
    }
    if !has_capability {
        return Err(CompileError::at(
            (1, 1),
            format!("the policy must require {CAPABILITY:?}"),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ident,
    Str,
    Punct,
    Other,
}

#[derive(Debug)]
struct Tok {
    kind: Kind,
    text: String,
    line: usize,
    column: usize,
}

/// A lenient Sieve tokenizer (RFC 5228 §8.1): comments skipped, strings (quoted and `text:`)
/// unescaped, positions 1-based. Malformed input is left to sieve-rs, which reports it.
fn lex(src: &str) -> Vec<Tok> {
    let mut lexer = Lexer {
        src,
        b: src.as_bytes(),
        i: 0,
        line: 1,
        line_start: 0,
        out: Vec::new(),
    };
    while lexer.i < lexer.b.len() {
        lexer.step();
    }
    lexer.out
}

/// The tokenizer's cursor: byte offset, current line and where that line starts, tokens so far.
struct Lexer<'a> {
    src: &'a str,
    b: &'a [u8],
    i: usize,
    line: usize,
    line_start: usize,
    out: Vec<Tok>,
}

impl Lexer<'_> {
    /// Reads one token (or skips a newline, blank, or comment) at the cursor.
    fn step(&mut self) {
        let c = self.b[self.i];
        let column = self.i - self.line_start + 1;
        let tok_line = self.line;
        match c {
            b'\n' => {
                self.newline(self.i + 1);
                self.i += 1;
            }
            b'#' => self.skip_line_comment(),
            b'/' if self.b.get(self.i + 1) == Some(&b'*') => self.skip_block_comment(),
            b'"' => self.quoted(tok_line, column),
            c if c.is_ascii_alphabetic() || c == b'_' => self.word(tok_line, column),
            b';' | b'{' | b'}' | b'[' | b']' | b'(' | b')' | b',' => {
                self.push(Kind::Punct, (c as char).to_string(), tok_line, column);
                self.i += 1;
            }
            c if c.is_ascii_whitespace() => self.i += 1,
            _ => self.other(tok_line, column),
        }
    }

    /// A new line starts at byte `line_start`.
    fn newline(&mut self, line_start: usize) {
        self.line += 1;
        self.line_start = line_start;
    }

    fn push(&mut self, kind: Kind, text: String, line: usize, column: usize) {
        self.out.push(Tok {
            kind,
            text,
            line,
            column,
        });
    }

    /// `# …` up to the end of the line (the newline itself is read by [`Lexer::step`]).
    fn skip_line_comment(&mut self) {
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
    }

    /// `/* … */`, counting the lines inside.
    fn skip_block_comment(&mut self) {
        let b = self.b;
        self.i += 2;
        while self.i < b.len() && !(b[self.i] == b'*' && b.get(self.i + 1) == Some(&b'/')) {
            if b[self.i] == b'\n' {
                self.newline(self.i + 1);
            }
            self.i += 1;
        }
        self.i += 2;
    }

    /// A quoted string, backslash escapes removed.
    fn quoted(&mut self, tok_line: usize, column: usize) {
        let b = self.b;
        let mut text = Vec::new();
        self.i += 1;
        while self.i < b.len() && b[self.i] != b'"' {
            if b[self.i] == b'\\' && self.i + 1 < b.len() {
                self.i += 1;
            }
            if b[self.i] == b'\n' {
                self.newline(self.i + 1);
            }
            text.push(b[self.i]);
            self.i += 1;
        }
        self.i += 1;
        let text = String::from_utf8_lossy(&text).into_owned();
        self.push(Kind::Str, text, tok_line, column);
    }

    /// An identifier, or the start of a `text:` multi-line string.
    fn word(&mut self, tok_line: usize, column: usize) {
        let b = self.b;
        let start = self.i;
        while self.i < b.len() && (b[self.i].is_ascii_alphanumeric() || b[self.i] == b'_') {
            self.i += 1;
        }
        let word = &self.src[start..self.i];
        if word.eq_ignore_ascii_case("text") && b.get(self.i) == Some(&b':') {
            self.multiline(tok_line, column);
        } else {
            self.push(Kind::Ident, word.to_string(), tok_line, column);
        }
    }

    /// The body of a `text:` string: the lines after it up to a line holding only ".".
    fn multiline(&mut self, tok_line: usize, column: usize) {
        let (b, src) = (self.b, self.src);
        let mut text = String::new();
        while self.i < b.len() && b[self.i] != b'\n' {
            self.i += 1;
        }
        for l in src[self.i.min(src.len())..].split_inclusive('\n') {
            self.i += l.len();
            self.newline(self.i);
            if l.starts_with('\n') {
                continue;
            }
            if l.trim_end() == "." {
                break;
            }
            text.push_str(l);
        }
        self.push(Kind::Str, text, tok_line, column);
    }

    /// Anything else, up to a blank, a delimiter or a quote.
    fn other(&mut self, tok_line: usize, column: usize) {
        let b = self.b;
        let start = self.i;
        while self.i < b.len()
            && !b[self.i].is_ascii_whitespace()
            && !b";{}[](),\"#".contains(&b[self.i])
        {
            self.i += 1;
        }
        self.i = self.i.max(start + 1);
        let text = self.src[start..self.i.min(self.src.len())].to_string();
        self.push(Kind::Other, text, tok_line, column);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions() {
        assert_eq!(position("ab\ncd", 0), (1, 1));
        assert_eq!(position("ab\ncd", 4), (2, 2));
    }

    #[test]
    fn lexer_skips_comments_and_strings() {
        let t = lex("# redirect\nrequire [\"a\", \"b\"]; /* x\n y */ if true { keep; }\n");
        let idents: Vec<_> = t
            .iter()
            .filter(|t| t.kind == Kind::Ident)
            .map(|t| (t.text.as_str(), t.line, t.column))
            .collect();
        assert_eq!(
            idents,
            vec![
                ("require", 2, 1),
                ("if", 3, 7),
                ("true", 3, 10),
                ("keep", 3, 17)
            ]
        );
        let strs: Vec<_> = t
            .iter()
            .filter(|t| t.kind == Kind::Str)
            .map(|t| t.text.as_str())
            .collect();
        assert_eq!(strs, vec!["a", "b"]);
    }

    #[test]
    fn lexer_reads_escapes_and_multiline_strings() {
        let t = lex("require \"a\\\"b\";\ntext:\nhello\n.\nkeep;");
        let got: Vec<_> = t
            .iter()
            .map(|t| (t.kind, t.text.as_str(), t.line, t.column))
            .collect();
        assert_eq!(
            got,
            vec![
                (Kind::Ident, "require", 1, 1),
                (Kind::Str, "a\"b", 1, 9),
                (Kind::Punct, ";", 1, 15),
                (Kind::Str, "hello\n", 2, 1),
                (Kind::Ident, "keep", 5, 1),
                (Kind::Punct, ";", 5, 5),
            ]
        );
    }
}
