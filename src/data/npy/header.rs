//! The NPY header: magic, version, and the Python-literal dictionary
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`.
//!
//! The dictionary is parsed by a small recursive-descent reader of the Python literals numpy
//! writes there (strings, `True`/`False`/`None`, integers with an optional Python 2 `L`
//! suffix, tuples, lists, nested dictionaries), so key order, spacing, quotes and trailing
//! commas may vary as they do between numpy versions.

use crate::data::excerpt;
use crate::{Error, Result};
use std::fmt;
use std::path::Path;

/// The NPY magic string.
pub(crate) const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Most characters of the header text quoted in a message.
const SHOWN: usize = 80;
/// Most characters of one word or string of the header quoted in a message.
const SHOWN_WORD: usize = 24;

/// Element types the readers accept (the writers produce `F32`, `F64`, `U8` and `I64`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `uint8` (`|u1`).
    U8,
    /// `int8` (`|i1`).
    I8,
    /// `uint16` (`u2`).
    U16,
    /// `int16` (`i2`).
    I16,
    /// `uint32` (`u4`).
    U32,
    /// `int32` (`i4`).
    I32,
    /// `uint64` (`u8`).
    U64,
    /// `int64` (`i8`).
    I64,
    /// `float32` (`f4`).
    F32,
    /// `float64` (`f8`).
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 | Dtype::F32 => 4,
            Dtype::U64 | Dtype::I64 | Dtype::F64 => 8,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }

    /// The numpy name (`"float32"`, `"uint8"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::U16 => "uint16",
            Dtype::I16 => "int16",
            Dtype::U32 => "uint32",
            Dtype::I32 => "int32",
            Dtype::U64 => "uint64",
            Dtype::I64 => "int64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    /// The little-endian `descr` string numpy writes for this type (`"<f4"`, `"|u1"`, …).
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::U8 => "|u1",
            Dtype::I8 => "|i1",
            Dtype::U16 => "<u2",
            Dtype::I16 => "<i2",
            Dtype::U32 => "<u4",
            Dtype::I32 => "<i4",
            Dtype::U64 => "<u8",
            Dtype::I64 => "<i8",
            Dtype::F32 => "<f4",
            Dtype::F64 => "<f8",
        }
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A parsed NPY header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version `(major, minor)`: 1.0, 2.0 or 3.0.
    pub version: (u8, u8),
    /// The element type.
    pub dtype: Dtype,
    /// Whether the elements are stored big-endian.
    pub big_endian: bool,
    /// Whether the file declares Fortran (column-major) order.
    pub fortran_order: bool,
    /// The array shape (empty for a 0-d scalar).
    pub shape: Vec<usize>,
    /// Byte offset of the first element.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (product of the shape; 1 for a scalar).
    pub fn n_elements(&self) -> Option<usize> {
        self.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))
    }
}

/// Parses the header at the start of `bytes` (which may hold only the header), naming `name`
/// in errors.
///
/// # Errors
/// [`Error::Format`] naming `name` for a wrong magic string, an unsupported version, a
/// truncated header, a dictionary that cannot be parsed or lacks `descr`, `fortran_order` or
/// `shape`, or an unsupported dtype.
pub fn parse_header(bytes: &[u8], name: &Path) -> Result<NpyHeader> {
    let err = |p: String| Error::format(name, p);
    if bytes.len() < 8 || &bytes[..6] != MAGIC {
        let shown: Vec<String> = bytes.iter().take(6).map(|b| format!("{b:02x}")).collect();
        return Err(err(format!(
            "not an NPY file: wrong magic (expected 93 4e 55 4d 50 59 = \"\\x93NUMPY\", found {})",
            if shown.is_empty() {
                "an empty file".to_string()
            } else {
                shown.join(" ")
            }
        )));
    }
    let version = (bytes[6], bytes[7]);
    let (len_bytes, utf8) = match version.0 {
        1 => (2, false),
        2 => (4, false),
        3 => (4, true),
        _ => {
            return Err(err(format!(
                "unsupported NPY version {}.{} (supported: 1.0, 2.0, 3.0)",
                version.0, version.1
            )));
        }
    };
    let start = 8 + len_bytes;
    if bytes.len() < start {
        return Err(err("truncated NPY header (no header length)".into()));
    }
    let hlen = if len_bytes == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    let data_offset = start + hlen;
    if bytes.len() < data_offset {
        return Err(err(format!(
            "truncated NPY header: it declares {hlen} bytes, the file has {}",
            bytes.len() - start
        )));
    }
    let text = &bytes[start..data_offset];
    let text: String = if utf8 {
        String::from_utf8_lossy(text).into_owned()
    } else {
        text.iter().map(|&b| b as char).collect() // latin-1
    };
    // The header as quoted in messages: one line, at most `SHOWN` characters.
    let shown = || excerpt(text.trim(), SHOWN);
    let dict = match Parser::new(&text).literal_alone() {
        Ok(Lit::Dict(d)) => d,
        Ok(_) => {
            return Err(err(format!("NPY header is not a dictionary: {}", shown())));
        }
        Err(e) => {
            return Err(err(format!(
                "cannot parse the NPY header ({e}): {}",
                shown()
            )));
        }
    };
    let get = |key: &str| {
        dict.iter()
            .find(|(k, _)| matches!(k, Lit::Str(s) if s == key))
            .map(|(_, v)| v)
            .ok_or_else(|| err(format!("NPY header has no '{key}' entry: {}", shown())))
    };
    let (dtype, big_endian) = match get("descr")? {
        Lit::Str(s) => parse_descr(s).map_err(err)?,
        other => {
            return Err(err(format!(
                "unsupported dtype {other} (structured and record arrays are not supported; \
                 expected a plain numeric type such as '<f4')"
            )));
        }
    };
    let fortran_order = match get("fortran_order")? {
        Lit::Bool(b) => *b,
        other => {
            return Err(err(format!(
                "'fortran_order' is {other}, not True or False"
            )));
        }
    };
    let shape = match get("shape")? {
        Lit::Seq(items) => items
            .iter()
            .map(|d| match d {
                Lit::Int(n) if *n >= 0 => usize::try_from(*n).ok(),
                _ => None,
            })
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| err(format!("'shape' is not a tuple of sizes: {}", shown())))?,
        other => return Err(err(format!("'shape' is {other}, not a tuple"))),
    };
    Ok(NpyHeader {
        version,
        dtype,
        big_endian,
        fortran_order,
        shape,
        data_offset,
    })
}

fn parse_descr(s: &str) -> std::result::Result<(Dtype, bool), String> {
    let unsupported = || {
        format!(
            "unsupported dtype '{}' (supported: float32 '<f4', float64 '<f8', uint8 '|u1', \
             and int8/16/32/64, uint16/32/64 for labels)",
            excerpt(s, SHOWN_WORD)
        )
    };
    let (order, code) = match s.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => (c, &s[1..]),
        _ => ('=', s),
    };
    let dtype = match code {
        "u1" => Dtype::U8,
        "i1" => Dtype::I8,
        "u2" => Dtype::U16,
        "i2" => Dtype::I16,
        "u4" => Dtype::U32,
        "i4" => Dtype::I32,
        "u8" => Dtype::U64,
        "i8" => Dtype::I64,
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        _ => return Err(unsupported()),
    };
    let big_endian = match order {
        '>' => true,
        '<' | '|' => false,
        _ => cfg!(target_endian = "big"),
    };
    Ok((dtype, big_endian))
}

/// A Python literal as numpy writes them in headers.
#[derive(Debug)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(i128),
    None,
    Seq(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

impl fmt::Display for Lit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lit::Str(s) => write!(f, "'{}'", excerpt(s, SHOWN_WORD)),
            Lit::Bool(b) => f.write_str(if *b { "True" } else { "False" }),
            Lit::Int(n) => write!(f, "{n}"),
            Lit::None => f.write_str("None"),
            Lit::Seq(_) => f.write_str("a list or tuple"),
            Lit::Dict(_) => f.write_str("a dictionary"),
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

type PResult<T> = std::result::Result<T, String>;

impl<'a> Parser<'a> {
    fn new(s: &'a str) -> Self {
        Self {
            s: s.as_bytes(),
            i: 0,
            depth: 0,
        }
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        match self.peek() {
            Some(x) if x == c => {
                self.i += 1;
                Ok(())
            }
            Some(x) => Err(format!(
                "expected '{}' at byte {}, found '{}'",
                c as char,
                self.i,
                (x as char).escape_default()
            )),
            None => Err(format!("expected '{}', found the end", c as char)),
        }
    }

    /// One literal followed only by whitespace.
    fn literal_alone(&mut self) -> PResult<Lit> {
        let lit = self.literal()?;
        match self.peek() {
            None => Ok(lit),
            Some(c) => Err(format!(
                "unexpected '{}' at byte {} after the dictionary",
                (c as char).escape_default(),
                self.i
            )),
        }
    }

    fn literal(&mut self) -> PResult<Lit> {
        self.depth += 1;
        if self.depth > 32 {
            return Err("literals nested too deeply".into());
        }
        let lit = match self.peek() {
            None => Err("unexpected end of header".into()),
            Some(b'{') => self.dict(),
            Some(b'(') => self.seq(b'(', b')'),
            Some(b'[') => self.seq(b'[', b']'),
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(c) if c == b'-' || c.is_ascii_digit() => self.int(),
            Some(c) if c.is_ascii_alphabetic() => self.word(),
            Some(c) => Err(format!(
                "unexpected '{}' at byte {}",
                (c as char).escape_default(),
                self.i
            )),
        };
        self.depth -= 1;
        lit
    }

    fn dict(&mut self) -> PResult<Lit> {
        self.expect(b'{')?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Lit::Dict(items));
            }
            let k = self.literal()?;
            self.expect(b':')?;
            let v = self.literal()?;
            items.push((k, v));
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.i)),
            }
        }
    }

    fn seq(&mut self, open: u8, close: u8) -> PResult<Lit> {
        self.expect(open)?;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(Lit::Seq(items));
            }
            items.push(self.literal()?);
            match self.peek() {
                Some(b',') => self.i += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '{}' at byte {}",
                        close as char, self.i
                    ));
                }
            }
        }
    }

    fn string(&mut self, quote: u8) -> PResult<Lit> {
        self.i += 1;
        let mut out = Vec::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'\\' => {
                    let &e = self.s.get(self.i).ok_or("unterminated string")?;
                    self.i += 1;
                    out.push(e);
                }
                c if c == quote => return Ok(Lit::Str(String::from_utf8_lossy(&out).into())),
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }

    fn int(&mut self) -> PResult<Lit> {
        let start = self.i;
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).map_err(|e| e.to_string())?;
        let n = text.parse::<i128>().map_err(|_| {
            format!(
                "bad integer '{}' at byte {start}",
                excerpt(text, SHOWN_WORD)
            )
        })?;
        if matches!(self.s.get(self.i), Some(b'L' | b'l')) {
            self.i += 1; // Python 2 long suffix
        }
        Ok(Lit::Int(n))
    }

    fn word(&mut self) -> PResult<Lit> {
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
            self.i += 1;
        }
        match &self.s[start..self.i] {
            b"True" => Ok(Lit::Bool(true)),
            b"False" => Ok(Lit::Bool(false)),
            b"None" => Ok(Lit::None),
            w => Err(format!(
                "unknown word '{}' at byte {start}",
                excerpt(&String::from_utf8_lossy(w), SHOWN_WORD)
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(dict: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        b.extend_from_slice(dict.as_bytes());
        b
    }

    #[test]
    fn parses_numpy_variants() {
        let p = Path::new("t.npy");
        for (dict, dtype, big, shape) in [
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
                Dtype::F32,
                false,
                vec![3, 4],
            ),
            (
                "{\"shape\":(7,),\"fortran_order\":False,\"descr\":\">f8\"}\n",
                Dtype::F64,
                true,
                vec![7],
            ),
            (
                "{'descr': '|u1', 'fortran_order': False, 'shape': (2L, 3L, 4L)}",
                Dtype::U8,
                false,
                vec![2, 3, 4],
            ),
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': ()}  ",
                Dtype::I64,
                false,
                vec![],
            ),
        ] {
            let h = parse_header(&header(dict), p).unwrap();
            assert_eq!(
                (h.dtype, h.big_endian, h.shape),
                (dtype, big, shape),
                "{dict}"
            );
        }
    }

    #[test]
    fn rejects_bad_headers() {
        let p = Path::new("bad.npy");
        for (dict, needle) in [
            (
                "{'descr': '<c16', 'fortran_order': False, 'shape': (3,)}",
                "unsupported dtype",
            ),
            (
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,)}",
                "structured",
            ),
            ("{'descr': '<f4', 'shape': (3,)}", "'fortran_order'"),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "'shape'",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (3,)",
                "cannot parse",
            ),
            (
                "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (3,)}",
                "unknown word",
            ),
        ] {
            let e = parse_header(&header(dict), p).unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains("bad.npy"), "{dict}: {e}");
        }
    }
}
