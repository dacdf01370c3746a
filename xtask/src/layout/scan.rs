//! The scanner behind `cargo xtask layout`: a lexer that knows just enough of
//! Rust (comments, every string and char literal form, lifetimes) that a
//! brace or a `crate::` inside a literal or a comment is never taken for
//! code, and one pass over its tokens that finds functions, modules, test
//! code and the paths that may name modules. No parser crate: xtask stays
//! std-only, and the report needs brace depth and paths, not a syntax tree.

use std::mem;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    /// `::`
    PathSep,
    /// `->` or `=>`, kept whole so that their `>` never closes generics.
    Arrow,
    Punct(char),
    /// A string, char or number literal: its contents never matter.
    Literal,
    Lifetime,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// 1-based line of the token's first character.
    line: usize,
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Split `src` into tokens, dropping comments and whitespace and reducing
/// every literal to [`Tok::Literal`].
fn lex(src: &str) -> Vec<Token> {
    let chars: Vec<char> = src.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let tok = match c {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '/' if at(i + 1) == '/' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            '/' if at(i + 1) == '*' => {
                // Block comments nest.
                let mut depth = 0;
                while i < chars.len() {
                    match (chars[i], at(i + 1)) {
                        ('/', '*') => {
                            depth += 1;
                            i += 2;
                        }
                        ('*', '/') => {
                            depth -= 1;
                            i += 2;
                            if depth == 0 {
                                break;
                            }
                        }
                        (c, _) => {
                            line += usize::from(c == '\n');
                            i += 1;
                        }
                    }
                }
                continue;
            }
            '"' => {
                i = skip_string(&chars, i + 1, &mut line);
                Tok::Literal
            }
            '\'' => {
                let (end, tok) = quote(&chars, i);
                i = end;
                tok
            }
            c if is_ident_start(c) => {
                let start = i;
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                match (word.as_str(), at(i)) {
                    ("r" | "br" | "cr", '"' | '#') if raw_string_ahead(&chars, i) => {
                        i = skip_raw_string(&chars, i, &mut line);
                        Tok::Literal
                    }
                    ("r", '#') if is_ident_start(at(i + 1)) => {
                        // A raw identifier, r#type.
                        let start = i + 1;
                        i = start;
                        while i < chars.len() && is_ident_continue(chars[i]) {
                            i += 1;
                        }
                        Tok::Ident(chars[start..i].iter().collect())
                    }
                    ("b" | "c", '"') => {
                        i = skip_string(&chars, i + 1, &mut line);
                        Tok::Literal
                    }
                    ("b", '\'') => {
                        let (end, tok) = quote(&chars, i);
                        i = end;
                        tok
                    }
                    _ => Tok::Ident(word),
                }
            }
            c if c.is_ascii_digit() => {
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
                Tok::Literal
            }
            ':' if at(i + 1) == ':' => {
                i += 2;
                Tok::PathSep
            }
            '-' | '=' if at(i + 1) == '>' => {
                i += 2;
                Tok::Arrow
            }
            c => {
                i += 1;
                Tok::Punct(c)
            }
        };
        tokens.push(Token {
            tok,
            line: start_line,
        });
    }
    tokens
}

/// Skip a (byte, C) string's body from just after its opening quote; returns
/// the index after the closing quote.
fn skip_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    while i < chars.len() {
        match chars[i] {
            '"' => return i + 1,
            '\\' => {
                // The escaped character may be a newline (a line continuation).
                if chars.get(i + 1) == Some(&'\n') {
                    *line += 1;
                }
                i += 2;
            }
            c => {
                *line += usize::from(c == '\n');
                i += 1;
            }
        }
    }
    i
}

/// Whether a raw string starts at `i` (just after its `r`): `#`s, then `"`.
fn raw_string_ahead(chars: &[char], mut i: usize) -> bool {
    while chars.get(i) == Some(&'#') {
        i += 1;
    }
    chars.get(i) == Some(&'"')
}

/// Skip a raw string from its first `#` or `"`; returns the index after its
/// closing `"` and as many `#`s as it opened with.
fn skip_raw_string(chars: &[char], mut i: usize, line: &mut usize) -> usize {
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    i += 1; // the opening quote
    while i < chars.len() {
        if chars[i] == '"' && (1..=hashes).all(|k| chars.get(i + k) == Some(&'#')) {
            return i + 1 + hashes;
        }
        *line += usize::from(chars[i] == '\n');
        i += 1;
    }
    i
}

/// A `'` at `i`: a char literal (`'{'`, `'\''`, `'\u{7b}'`) or a lifetime or
/// label (`'a`, `'static`). Returns the index after it and its token.
fn quote(chars: &[char], i: usize) -> (usize, Tok) {
    let at = |k: usize| chars.get(k).copied().unwrap_or('\0');
    if at(i + 1) == '\\' {
        // Skip the escaped character, then up to the closing quote.
        let mut end = i + 3;
        while end < chars.len() && chars[end] != '\'' && chars[end] != '\n' {
            end += 1;
        }
        return (end + 1, Tok::Literal);
    }
    if at(i + 2) == '\'' {
        return (i + 3, Tok::Literal);
    }
    let mut end = i + 1;
    while end < chars.len() && is_ident_continue(chars[end]) {
        end += 1;
    }
    (end, Tok::Lifetime)
}

/// A `fn` item with a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Function {
    /// The name, after those of the enclosing inline modules, impl or trait
    /// blocks and functions: `tests::parses`, `Attachment::attach`.
    pub name: String,
    /// The line of the `fn` keyword.
    pub line: usize,
    /// Lines from the `fn` keyword to the closing brace, both included.
    pub lines: usize,
    /// Inside a `#[cfg(test)]` item or a `mod tests`, or marked `#[test]`.
    pub test: bool,
}

/// A path that may name a module of the crate: it starts with `crate`,
/// `self`, `super` or any other identifier and has at least two segments
/// (whether that first identifier is a child module is decided later, when
/// every module of the crate is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mention {
    /// The inline modules (`mod name { … }`) the path is inside, outermost
    /// first, relative to the file's own module.
    pub module: Vec<String>,
    /// The path's segments; a glob or `self` in a `use` tree ends it.
    pub path: Vec<String>,
    /// The line of the path's last segment.
    pub line: usize,
    /// Whether the path is in test code.
    pub test: bool,
    /// Whether it is in a `pub use` (any visibility): a re-export, which
    /// ties modules together only for the paths other code spells.
    pub reexport: bool,
}

/// A `mod name;` or `mod name { … }`, relative to the file's module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleDecl {
    pub path: Vec<String>,
    /// `#[cfg(test)]`, named `tests`, or inside test code.
    pub test: bool,
}

/// What one file contains.
#[derive(Debug, Default)]
pub struct Scan {
    /// Lines inside test items (the outermost ones, attributes included).
    pub test_lines: usize,
    /// The file starts with `#![cfg(test)]`.
    pub cfg_test: bool,
    pub functions: Vec<Function>,
    pub mentions: Vec<Mention>,
    pub modules: Vec<ModuleDecl>,
}

pub fn scan(src: &str) -> Scan {
    let tokens = lex(src);
    let mut scanner = Scanner {
        tokens: &tokens,
        pos: 0,
        frames: Vec::new(),
        pending: None,
        attrs: Attrs::default(),
        nesting: 0,
        out: Scan::default(),
    };
    scanner.run();
    scanner.out
}

/// What a `{` opened.
enum Kind {
    Fn {
        name: String,
        line: usize,
    },
    Mod(String),
    /// An impl or trait block, named by its type or trait.
    Scope(String),
    Block,
}

struct Frame {
    kind: Kind,
    test: bool,
    /// Parenthesis and bracket depth at the `{`, restored at its `}` so
    /// that a stray one in a macro's input does not last beyond it.
    nesting: usize,
    /// The first line of the item, its attributes included.
    start: usize,
}

/// An item keyword seen, waiting for its `{` (or its `;`, if it has none).
struct Pending {
    kind: PendingKind,
    /// Parenthesis and bracket depth at the keyword: the body's `{` is at
    /// the same depth, braces in its signature are deeper.
    nesting: usize,
    line: usize,
}

enum PendingKind {
    Fn(String),
    Mod(String),
    /// The tokens of the header start at this index.
    Impl(usize),
    Trait(String),
}

/// The outer attributes seen since the last item boundary.
#[derive(Default)]
struct Attrs {
    cfg_test: bool,
    test: bool,
    start: Option<usize>,
}

struct Scanner<'t> {
    tokens: &'t [Token],
    pos: usize,
    frames: Vec<Frame>,
    pending: Option<Pending>,
    attrs: Attrs,
    nesting: usize,
    out: Scan,
}

impl Scanner<'_> {
    fn tok(&self, pos: usize) -> Option<&Tok> {
        self.tokens.get(pos).map(|token| &token.tok)
    }

    fn ident(&self, pos: usize) -> Option<&str> {
        match self.tok(pos) {
            Some(Tok::Ident(name)) => Some(name),
            _ => None,
        }
    }

    fn run(&mut self) {
        while let Some(token) = self.tokens.get(self.pos) {
            let line = token.line;
            match &token.tok {
                Tok::Punct('#') if self.attribute() => continue,
                Tok::Ident(word) => match word.as_str() {
                    // Not `use<'a>` (precise capturing in an `impl Trait`)
                    // nor `Token![use]` in a macro's input.
                    "use"
                        if matches!(
                            self.tok(self.pos + 1),
                            Some(Tok::Ident(_) | Tok::PathSep | Tok::Punct('{'))
                        ) =>
                    {
                        self.use_item();
                        continue;
                    }
                    "fn" | "mod" | "trait" => {
                        if let Some(name) = self.ident(self.pos + 1).map(str::to_owned) {
                            self.item(word, name, line);
                        }
                    }
                    // Only at item position: `-> impl Trait` comes after a `fn`.
                    "impl" if self.pending.is_none() => {
                        self.pending = Some(Pending {
                            kind: PendingKind::Impl(self.pos + 1),
                            nesting: self.nesting,
                            line,
                        });
                    }
                    _ => self.path(),
                },
                Tok::Punct('(' | '[') => self.nesting += 1,
                Tok::Punct(')' | ']') => self.nesting = self.nesting.saturating_sub(1),
                Tok::Punct('{') => self.open(line),
                Tok::Punct('}') => self.close(line),
                Tok::Punct(';') => {
                    if self
                        .pending
                        .as_ref()
                        .is_some_and(|pending| pending.nesting == self.nesting)
                    {
                        self.pending = None;
                    }
                    self.attrs = Attrs::default();
                }
                _ => {}
            }
            self.pos += 1;
        }
    }

    /// Test code: inside a test item, or under a test attribute.
    fn in_test(&self) -> bool {
        self.frames.last().is_some_and(|frame| frame.test) || self.attrs.cfg_test || self.attrs.test
    }

    /// The inline modules the scanner is in.
    fn module(&self) -> Vec<String> {
        self.frames
            .iter()
            .filter_map(|frame| match &frame.kind {
                Kind::Mod(name) => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    /// `fn NAME`, `mod NAME` or `trait NAME`.
    fn item(&mut self, keyword: &str, name: String, line: usize) {
        let kind = match keyword {
            "fn" => PendingKind::Fn(name),
            "mod" if self.tok(self.pos + 2) == Some(&Tok::Punct(';')) => {
                let mut path = self.module();
                path.push(name);
                let test = self.in_test() || path.last().is_some_and(|name| name == "tests");
                self.out.modules.push(ModuleDecl { path, test });
                return;
            }
            "mod" => PendingKind::Mod(name),
            _ if self.pending.is_some() => return,
            _ => PendingKind::Trait(name),
        };
        self.pending = Some(Pending {
            kind,
            nesting: self.nesting,
            line,
        });
    }

    /// An attribute at `#`: note what it says about tests and step over it.
    /// False if the `#` starts no attribute.
    fn attribute(&mut self) -> bool {
        let inner = self.tok(self.pos + 1) == Some(&Tok::Punct('!'));
        let open = self.pos + 1 + usize::from(inner);
        if self.tok(open) != Some(&Tok::Punct('[')) {
            return false;
        }
        let mut depth = 0;
        let mut end = open;
        let mut idents = Vec::new();
        // The attribute's path: the identifiers before any `(` or `=`.
        let mut path_len = None;
        while let Some(tok) = self.tok(end) {
            match tok {
                Tok::Punct('[') => depth += 1,
                Tok::Punct(']') => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                Tok::Punct('(' | '=') => {
                    path_len.get_or_insert(idents.len());
                }
                Tok::Ident(name) => idents.push(name.as_str()),
                _ => {}
            }
            end += 1;
        }
        let path = &idents[..path_len.unwrap_or(idents.len())];
        let cfg_test = path == ["cfg"] && idents.contains(&"test") && !idents.contains(&"not");
        let test = path.last() == Some(&"test");
        if inner {
            if cfg_test {
                match self.frames.last_mut() {
                    Some(frame) => frame.test = true,
                    None => self.out.cfg_test = true,
                }
            }
        } else {
            let line = self.tokens[self.pos].line;
            self.attrs.cfg_test |= cfg_test;
            self.attrs.test |= test;
            self.attrs.start.get_or_insert(line);
        }
        self.pos = end + 1;
        true
    }

    /// A `use` item: every path of its tree. Leaves `pos` at its `;`.
    fn use_item(&mut self) {
        let start = self.pos + 1;
        let end = (start..self.tokens.len())
            .find(|&i| self.tokens[i].tok == Tok::Punct(';'))
            .unwrap_or(self.tokens.len());
        let mut paths = Vec::new();
        let mut pos = start;
        use_tree(&self.tokens[..end], &mut pos, &mut Vec::new(), &mut paths);
        let module = self.module();
        let test = self.in_test();
        let reexport = self.visibility_before(self.pos);
        for (path, line) in paths {
            self.out.mentions.push(Mention {
                module: module.clone(),
                path,
                line,
                test,
                reexport,
            });
        }
        self.pos = end;
    }

    /// Whether `pub` or `pub(…)` comes just before the token at `pos`.
    fn visibility_before(&self, pos: usize) -> bool {
        let Some(mut before) = pos.checked_sub(1) else {
            return false;
        };
        if self.tok(before) == Some(&Tok::Punct(')')) {
            match (0..before)
                .rev()
                .find(|&i| self.tok(i) == Some(&Tok::Punct('(')))
            {
                Some(open) if open > 0 => before = open - 1,
                _ => return false,
            }
        }
        self.ident(before) == Some("pub")
    }

    /// A path in code, `a::b…`, if one starts at `pos`.
    fn path(&mut self) {
        let before = |back: usize| {
            self.pos
                .checked_sub(back)
                .and_then(|pos| self.tok(pos).cloned())
        };
        if matches!(before(1), Some(Tok::PathSep | Tok::Punct('.'))) {
            return; // inside a path, or a method or field
        }
        if before(1) == Some(Tok::Ident("in".into())) && before(2) == Some(Tok::Punct('(')) {
            return; // pub(in crate::a): a visibility, not a use
        }
        let mut path = Vec::new();
        let mut pos = self.pos;
        while let Some(name) = self.ident(pos) {
            path.push(name.to_owned());
            if self.tok(pos + 1) != Some(&Tok::PathSep) || self.ident(pos + 2).is_none() {
                break;
            }
            pos += 2;
        }
        if path.len() >= 2 {
            self.out.mentions.push(Mention {
                module: self.module(),
                path,
                line: self.tokens[pos].line,
                test: self.in_test(),
                reexport: false,
            });
        }
    }

    fn open(&mut self, line: usize) {
        let parent_test = self.frames.last().is_some_and(|frame| frame.test);
        // A `{` deeper than the pending item's keyword is in its signature.
        let pending = match self.pending.take() {
            Some(pending) if pending.nesting == self.nesting => Some(pending),
            other => {
                self.pending = other;
                None
            }
        };
        let attrs = mem::take(&mut self.attrs);
        let nesting = self.nesting;
        let start = attrs
            .start
            .unwrap_or(pending.as_ref().map_or(line, |pending| pending.line));
        let frame = match pending {
            Some(Pending {
                kind: PendingKind::Fn(name),
                line,
                ..
            }) => Frame {
                kind: Kind::Fn { name, line },
                test: parent_test || attrs.test || attrs.cfg_test,
                start,
                nesting,
            },
            Some(Pending {
                kind: PendingKind::Mod(name),
                ..
            }) => {
                let mut path = self.module();
                path.push(name.clone());
                let test = parent_test || attrs.cfg_test || name == "tests";
                self.out.modules.push(ModuleDecl { path, test });
                Frame {
                    kind: Kind::Mod(name),
                    test,
                    start,
                    nesting,
                }
            }
            Some(Pending {
                kind: PendingKind::Impl(from),
                ..
            }) => Frame {
                kind: Kind::Scope(impl_name(&self.tokens[from..self.pos])),
                test: parent_test || attrs.cfg_test,
                start,
                nesting,
            },
            Some(Pending {
                kind: PendingKind::Trait(name),
                ..
            }) => Frame {
                kind: Kind::Scope(name),
                test: parent_test || attrs.cfg_test,
                start,
                nesting,
            },
            None => Frame {
                kind: Kind::Block,
                test: parent_test || attrs.cfg_test,
                start,
                nesting,
            },
        };
        self.frames.push(frame);
    }

    fn close(&mut self, line: usize) {
        self.attrs = Attrs::default();
        let Some(frame) = self.frames.pop() else {
            return; // unbalanced: nothing sensible to do
        };
        self.nesting = frame.nesting;
        if frame.test && !self.frames.last().is_some_and(|parent| parent.test) {
            self.out.test_lines += line + 1 - frame.start.min(line);
        }
        if let Kind::Fn { name, line: first } = frame.kind {
            let mut qualified: Vec<&str> = self
                .frames
                .iter()
                .filter_map(|frame| match &frame.kind {
                    Kind::Fn { name, .. } | Kind::Mod(name) | Kind::Scope(name) => {
                        Some(name.as_str())
                    }
                    Kind::Block => None,
                })
                .collect();
            qualified.push(&name);
            self.out.functions.push(Function {
                name: qualified.join("::"),
                line: first,
                lines: line + 1 - first.min(line),
                test: frame.test,
            });
        }
    }
}

/// Expand the use tree at `pos` under `prefix` into `out`, as (path, line of
/// its last segment). `use a::{b, c::{self, d as e}, f::*}` gives `a::b`,
/// `a::c`, `a::c::d` and `a::f`.
fn use_tree(
    tokens: &[Token],
    pos: &mut usize,
    prefix: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, usize)>,
) {
    let depth = prefix.len();
    if tokens.get(*pos).map(|token| &token.tok) == Some(&Tok::PathSep) {
        // `::name`: an extern crate, never a module of this one.
        prefix.push("::".to_owned());
        *pos += 1;
    }
    while let Some(token) = tokens.get(*pos) {
        match &token.tok {
            Tok::Ident(name) => {
                *pos += 1;
                if tokens.get(*pos).map(|token| &token.tok) == Some(&Tok::PathSep) {
                    prefix.push(name.clone());
                    *pos += 1;
                    continue;
                }
                let mut path = prefix.clone();
                if name != "self" {
                    path.push(name.clone());
                }
                out.push((path, token.line));
                if tokens.get(*pos).map(|token| &token.tok) == Some(&Tok::Ident("as".into())) {
                    *pos += 2;
                }
            }
            Tok::Punct('*') => {
                *pos += 1;
                out.push((prefix.clone(), token.line));
            }
            Tok::Punct('{') => {
                *pos += 1;
                while let Some(token) = tokens.get(*pos) {
                    match token.tok {
                        Tok::Punct('}') => {
                            *pos += 1;
                            break;
                        }
                        Tok::Punct(',') => *pos += 1,
                        _ => {
                            let before = *pos;
                            use_tree(tokens, pos, prefix, out);
                            if *pos == before {
                                *pos += 1; // malformed: never loop forever
                            }
                        }
                    }
                }
            }
            _ => {}
        }
        break;
    }
    prefix.truncate(depth);
}

/// The self type (or, without one, the trait) of an impl header, the
/// tokens between `impl` and `{`: `Foo` for `impl<T: Fn() -> u8> fmt::Debug
/// for Foo<T> where …`.
fn impl_name(header: &[Token]) -> String {
    let mut angle = 0usize;
    let mut name = "impl";
    for token in header {
        match &token.tok {
            Tok::Punct('<') => angle += 1,
            Tok::Punct('>') => angle = angle.saturating_sub(1),
            Tok::Ident(word) if angle == 0 => match word.as_str() {
                "where" => break,
                "for" | "dyn" | "mut" | "unsafe" | "const" => {}
                _ => name = word,
            },
            _ => {}
        }
    }
    name.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idents(src: &str) -> Vec<String> {
        lex(src)
            .into_iter()
            .filter_map(|token| match token.tok {
                Tok::Ident(name) => Some(name),
                _ => None,
            })
            .collect()
    }

    fn paths_of(scan: &Scan) -> Vec<String> {
        (scan.mentions.iter())
            .map(|mention| mention.path.join("::"))
            .collect()
    }

    fn paths(src: &str) -> Vec<String> {
        paths_of(&scan(src))
    }

    fn function<'s>(scan: &'s Scan, name: &str) -> &'s Function {
        scan.functions
            .iter()
            .find(|function| function.name == name)
            .unwrap_or_else(|| panic!("no function {name} in {:?}", scan.functions))
    }

    #[test]
    fn literals_and_comments_hide_their_contents() {
        let src = r###"
            // fn line_comment() { crate::a::b }
            /* outer /* nested } */ still comment { */
            /// doc { crate::c::d
            let s = "a { \" } crate::e::f";
            let r = r#"raw " } "# ;
            let rr = r##"raw "# } "##;
            let b = b"bytes }";
            let c = c"c string {";
            let br = br#"} "#;
            let ch = ['{', '}', '\'', '\u{7d}', b'}', b'\\'];
            fn kept<'a>(x: &'a str) -> &'static str { 'label: loop { break 'label; } }
        "###;
        assert_eq!(
            idents(src),
            [
                "let", "s", "let", "r", "let", "rr", "let", "b", "let", "c", "let", "br", "let",
                "ch", "fn", "kept", "x", "str", "str", "loop", "break"
            ]
        );
        let scan = scan(src);
        assert!(scan.mentions.is_empty(), "{:?}", scan.mentions);
        assert_eq!(function(&scan, "kept").line, 12);
    }

    #[test]
    fn raw_identifiers_and_line_numbers() {
        let tokens = lex("r#type\n\"two\nlines\"\nafter");
        assert_eq!(tokens[0].tok, Tok::Ident("type".into()));
        assert_eq!(tokens[1].line, 2);
        assert_eq!(tokens[2].tok, Tok::Ident("after".into()));
        assert_eq!(tokens[2].line, 4);
    }

    #[test]
    fn function_lengths_ignore_braces_in_literals() {
        let src = "\
fn short() {}

impl<T: Fn() -> u8> Holder<T> {
    fn long(&self) -> impl Iterator<Item = u8> + use<'_, T> {
        let open = \"{{{\";
        let close = '}';
        // }
        [0u8; 4].into_iter()
    }
}

trait Named {
    fn declared(&self);
    fn defaulted(&self) -> [u8; 2] { [0; 2] }
}
";
        let scan = scan(src);
        let names: Vec<_> = scan
            .functions
            .iter()
            .map(|function| (function.name.as_str(), function.line, function.lines))
            .collect();
        assert_eq!(
            names,
            [
                ("short", 1, 1),
                ("Holder::long", 4, 6),
                ("Named::defaulted", 14, 1)
            ]
        );
    }

    #[test]
    fn test_code_is_marked_and_counted() {
        let src = "\
fn real() {}

#[test]
fn lone_test() {}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() {}

    #[test]
    fn case() {
        helper();
    }
}

#[cfg(not(test))]
fn not_test() {}

mod tests_elsewhere;
#[cfg(test)]
mod test_support;
";
        let scan = scan(src);
        assert!(!function(&scan, "real").test);
        assert!(function(&scan, "lone_test").test);
        assert!(function(&scan, "tests::helper").test);
        assert!(function(&scan, "tests::case").test);
        assert!(!function(&scan, "not_test").test);
        // lone_test (2 lines with its attribute) and mod tests (11).
        assert_eq!(scan.test_lines, 2 + 11);
        let modules: Vec<_> = scan
            .modules
            .iter()
            .map(|decl| (decl.path.join("::"), decl.test))
            .collect();
        assert_eq!(
            modules,
            [
                ("tests".to_owned(), true),
                ("tests_elsewhere".to_owned(), false),
                ("test_support".to_owned(), true)
            ]
        );
        assert!(scan.mentions.iter().all(|mention| mention.test));
        assert!(super::scan("#![cfg(test)]\nfn f() {}").cfg_test);
    }

    #[test]
    fn nested_use_trees_expand() {
        assert_eq!(
            paths(
                "use crate::{capture::{self, Attachment as A}, netns::Netns};\n\
                 pub(crate) use super::{*, sys::bpf::{self}};\n\
                 use ::std::fmt;\n\
                 use self::inner::X;"
            ),
            [
                "crate::capture",
                "crate::capture::Attachment",
                "crate::netns::Netns",
                "super",
                "super::sys::bpf",
                "::::std::fmt",
                "self::inner::X"
            ]
        );
    }

    #[test]
    fn use_as_a_token_is_no_use_item() {
        let src = "fn f() { peek(Token![use]) && crate::x::y(); }\nfn h() { crate::a::b(); }";
        let scan = scan(src);
        assert_eq!(scan.functions.len(), 2, "{:?}", scan.functions);
        assert_eq!(paths_of(&scan), ["crate::x::y", "crate::a::b"]);
    }

    #[test]
    fn re_exports_are_marked() {
        let reexports: Vec<_> =
            scan("pub use a::B;\npub(crate) use c::D;\nuse e::F;\nfn f() -> pub_thing::G {}")
                .mentions
                .into_iter()
                .map(|mention| (mention.path.join("::"), mention.reexport))
                .collect();
        let expect = [
            ("a::B", true),
            ("c::D", true),
            ("e::F", false),
            ("pub_thing::G", false),
        ];
        assert_eq!(
            reexports,
            expect.map(|(path, pub_)| (path.to_owned(), pub_))
        );
    }

    #[test]
    fn use_tree_lines_are_those_of_each_leaf() {
        let scan = scan("use crate::{\n    a::X,\n    b::{\n        Y,\n    },\n};");
        let lines: Vec<_> = scan
            .mentions
            .iter()
            .map(|mention| (mention.path.join("::"), mention.line))
            .collect();
        assert_eq!(
            lines,
            [("crate::a::X".to_owned(), 2), ("crate::b::Y".to_owned(), 4)]
        );
    }

    #[test]
    fn inline_paths_are_found_once() {
        let src = "\
pub(in crate::hidden) fn f() -> crate::a::B {
    let x = crate::c::d::<u8>();
    x.method::<T>();
    $crate::macros::m!();
    super::sibling::call();
    Vec::<u8>::new()
}
mod inner {
    fn g() { self::h(); }
}";
        let scan = scan(src);
        let found: Vec<_> = scan
            .mentions
            .iter()
            .map(|mention| (mention.module.join("::"), mention.path.join("::")))
            .collect();
        let expect = [
            ("", "crate::a::B"),
            ("", "crate::c::d"),
            ("", "crate::macros::m"),
            ("", "super::sibling::call"),
            ("inner", "self::h"),
        ];
        assert_eq!(
            found,
            expect.map(|(module, path)| (module.to_owned(), path.to_owned()))
        );
    }
}
