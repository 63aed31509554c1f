//! A small Rust lexer: identifiers, `::`, punctuation and string literals, with comments
//! (doc comments included), char and number literals and lifetimes dropped, so that a path
//! written in a comment or a string is never read as an import.

/// One token and the 1-based line it starts on.
#[derive(Clone, Debug, PartialEq)]
pub enum Tok {
    /// An identifier or keyword (`r#x` is `x`).
    Ident(String),
    /// `::`.
    PathSep,
    /// A string literal's contents (needed for `#[path = "…"]`).
    Str(String),
    /// Any other single punctuation character.
    Punct(char),
}

/// The tokens of `src` with their lines.
pub fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let (mut i, mut line, mut out) = (0usize, 1usize, Vec::new());
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(c[i] == '\n');
                    i += 1;
                }
            }
        } else if ch == '"'
            || raw_string_start(&c, i).is_some()
            || (matches!(ch, 'b' | 'c') && at(i + 1) == '"')
        {
            let start_line = line;
            let (text, end) = string(&c, i, &mut line);
            out.push((Tok::Str(text), start_line));
            i = end;
        } else if ch == 'b' && at(i + 1) == '\'' {
            i = char_literal(&c, i + 1);
        } else if ch == '\'' {
            if at(i + 1) == '\\' || (at(i + 2) == '\'' && at(i + 1) != '\'') {
                i = char_literal(&c, i);
            } else {
                i += 1; // a lifetime or label: drop the quote and its name
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch.is_ascii_digit() {
            let hex = ch == '0' && matches!(at(i + 1), 'x' | 'X');
            i += 1;
            loop {
                let d = at(i);
                let exponent = !hex && matches!(at(i - 1), 'e' | 'E') && matches!(d, '+' | '-');
                let fraction = d == '.' && at(i + 1).is_ascii_digit();
                if d.is_alphanumeric() || d == '_' || exponent || fraction {
                    i += 1;
                } else {
                    break;
                }
            }
        } else if ch.is_alphabetic() || ch == '_' {
            if ch == 'r' && at(i + 1) == '#' && (at(i + 2).is_alphabetic() || at(i + 2) == '_') {
                i += 2;
            }
            let s = i;
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                i += 1;
            }
            out.push((Tok::Ident(c[s..i].iter().collect()), line));
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

/// The number of `#` of a raw string starting at `i` (`r"`, `r#"`, `br"`, `cr#"` …).
fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
    let mut k = i;
    if matches!(c.get(k), Some('b' | 'c')) {
        k += 1;
    }
    if c.get(k) != Some(&'r') {
        return None;
    }
    if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
        return None;
    }
    k += 1;
    let hashes = c[k..].iter().take_while(|x| **x == '#').count();
    (c.get(k + hashes) == Some(&'"')).then_some(hashes)
}

/// A (raw, byte, C) string literal starting at `i`: its contents and the index after it.
fn string(c: &[char], i: usize, line: &mut usize) -> (String, usize) {
    if let Some(hashes) = raw_string_start(c, i) {
        let mut k = i;
        while c[k] != '"' {
            k += 1;
        }
        k += 1;
        let start = k;
        loop {
            if k >= c.len() {
                return (c[start..].iter().collect(), k);
            }
            if c[k] == '"'
                && c[k + 1..]
                    .iter()
                    .take(hashes)
                    .filter(|x| **x == '#')
                    .count()
                    == hashes
            {
                let text = c[start..k].iter().collect();
                return (text, k + 1 + hashes);
            }
            *line += usize::from(c[k] == '\n');
            k += 1;
        }
    }
    let mut k = i;
    while c[k] != '"' {
        k += 1;
    }
    k += 1;
    let start = k;
    while k < c.len() && c[k] != '"' {
        if c[k] == '\\' {
            k += 1;
        }
        if k < c.len() && c[k] == '\n' {
            *line += 1;
        }
        k += 1;
    }
    (c[start..k.min(c.len())].iter().collect(), k + 1)
}

/// A char literal whose opening quote is at `i`: the index after its closing quote.
fn char_literal(c: &[char], i: usize) -> usize {
    let mut k = i + 1;
    if c.get(k) == Some(&'\\') {
        k += 2;
    } else {
        k += 1;
    }
    while k < c.len() && c[k] != '\'' {
        k += 1;
    }
    k + 1
}
