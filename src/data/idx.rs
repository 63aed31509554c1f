//! The IDX format of MNIST, Fashion-MNIST and KMNIST, plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 TT NN` (`TT` the element type, `NN` the
//! number of dimensions), then `NN` dimensions as big-endian `u32`, then the elements in
//! row-major (C) order. Only unsigned bytes (`TT = 0x08`, the type of every MNIST-family file)
//! are supported; any other type is an error naming it. A file that starts with the gzip magic
//! `1f 8b` is decompressed first (detected from the bytes, not the file name).
//!
//! Every defect gives [`Error::Format`] naming the file: wrong magic, unsupported type,
//! truncated header or data, trailing bytes, corrupt gzip.

use crate::data::{read_file, thousands, write_atomic};
use crate::{Error, Result};
use std::io::{Read, Write};
use std::path::Path;

/// The element type code of unsigned bytes.
pub const TYPE_U8: u8 = 0x08;

/// An IDX array of unsigned bytes: its dimensions and its elements in row-major order
/// (`data.len()` is the product of `dims`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (MNIST images: `[N, 28, 28]`; labels: `[N]`).
    pub dims: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<u8>,
}

impl IdxArray {
    /// Number of elements (the product of the dimensions).
    pub fn len(&self) -> usize {
        self.data.len()
    }
    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// Whether `bytes` start with the gzip magic number `1f 8b`.
pub(crate) fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Decompresses a gzip stream (all members), naming `name` in errors.
pub(crate) fn gunzip(bytes: &[u8], name: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4));
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .map_err(|e| Error::format(name, format!("corrupt or truncated gzip data ({e})")))?;
    Ok(out)
}

fn type_name(code: u8) -> &'static str {
    match code {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "16-bit integer",
        0x0C => "32-bit integer",
        0x0D => "32-bit float",
        0x0E => "64-bit float",
        _ => "unknown",
    }
}

/// Reads an IDX file (plain or gzip-compressed).
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the file if its
/// contents are not a valid unsigned-byte IDX array (see [`parse_idx`]).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    parse_idx(&read_file(path)?, path)
}

/// Parses the bytes of an IDX file (plain or gzip-compressed); `name` is the file named in
/// errors.
///
/// # Errors
/// [`Error::Format`] naming `name` for: corrupt gzip data; a magic number that is not
/// `00 00 TT NN`; an element type other than unsigned byte (`0x08`); a header shorter than
/// its `NN` dimensions; fewer or more data bytes than the product of the dimensions.
pub fn parse_idx(bytes: &[u8], name: &Path) -> Result<IdxArray> {
    let unzipped;
    let bytes = if is_gzip(bytes) {
        unzipped = gunzip(bytes, name)?;
        &unzipped[..]
    } else {
        bytes
    };
    let err = |problem: String| Error::format(name, problem);
    if bytes.len() < 4 {
        return Err(err(format!(
            "not an IDX file: {} bytes, too short for the 4-byte magic number",
            bytes.len()
        )));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(err(format!(
            "not an IDX file: wrong magic number {:02x} {:02x} {:02x} {:02x} (expected 00 00, \
             then the type byte and the number of dimensions)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        )));
    }
    let (ty, ndims) = (bytes[2], bytes[3] as usize);
    if ty != TYPE_U8 {
        return Err(err(format!(
            "unsupported IDX element type 0x{ty:02x} ({}); only unsigned byte (0x08) is supported",
            type_name(ty)
        )));
    }
    let header = 4 + 4 * ndims;
    if bytes.len() < header {
        return Err(err(format!(
            "truncated IDX header: {ndims} dimensions need {header} bytes, the file has {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..header]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| {
            err(format!(
                "IDX dimensions {dims:?} overflow the address space"
            ))
        })?;
    let found = bytes.len() - header;
    if found < expected {
        return Err(err(format!(
            "truncated IDX data: dimensions {dims:?} need {} bytes, the file has {}",
            thousands(expected),
            thousands(found)
        )));
    }
    if found > expected {
        return Err(err(format!(
            "IDX data length mismatch: dimensions {dims:?} need {} bytes, the file has {} \
             ({} extra)",
            thousands(expected),
            thousands(found),
            thousands(found - expected)
        )));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

/// The bytes of an unsigned-byte IDX file holding `data` with dimensions `dims`.
///
/// # Errors
/// [`Error::Data`] if there are more than 255 dimensions or a dimension exceeds `u32::MAX`.
///
/// # Panics
/// If `data.len()` is not the product of `dims`.
#[track_caller]
pub fn encode_idx(dims: &[usize], data: &[u8]) -> Result<Vec<u8>> {
    let n: usize = dims.iter().product();
    assert_eq!(
        n,
        data.len(),
        "encode_idx: dimensions {dims:?} hold {n} elements but data has {}",
        data.len()
    );
    if dims.len() > 255 {
        return Err(Error::data(format!(
            "IDX stores at most 255 dimensions, got {}",
            dims.len()
        )));
    }
    let mut out = Vec::with_capacity(4 + 4 * dims.len() + data.len());
    out.extend_from_slice(&[0, 0, TYPE_U8, dims.len() as u8]);
    for &d in dims {
        let d = u32::try_from(d)
            .map_err(|_| Error::data(format!("IDX dimension {d} exceeds u32::MAX")))?;
        out.extend_from_slice(&d.to_be_bytes());
    }
    out.extend_from_slice(data);
    Ok(out)
}

/// Writes an unsigned-byte IDX file, gzip-compressed when the file name ends in `.gz`.
/// The write is atomic (temporary file, `fsync`, rename).
///
/// # Errors
/// As [`encode_idx`], and [`Error::Io`] if the file cannot be written.
///
/// # Panics
/// If `data.len()` is not the product of `dims`.
#[track_caller]
pub fn write_idx(path: &Path, dims: &[usize], data: &[u8]) -> Result<()> {
    let raw = encode_idx(dims, data)?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    if gz {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(&raw).map_err(|e| Error::io(path, e))?;
        let bytes = enc.finish().map_err(|e| Error::io(path, e))?;
        write_atomic(path, &bytes)
    } else {
        write_atomic(path, &raw)
    }
}
