//! The IDX format of MNIST, Fashion-MNIST and KMNIST, plain or gzip-compressed.
//!
//! An IDX file is a 4-byte magic number `00 00 TT NN` (`TT` the element type, `NN` the
//! number of dimensions), then `NN` dimensions as big-endian `u32`, then the elements in
//! row-major (C) order. Only unsigned bytes (`TT = 0x08`, the type of every MNIST-family file)
//! are supported; any other type is an error naming it. A file that starts with the gzip magic
//! `1f 8b` is decompressed first (detected from the bytes, not the file name).
//!
//! Every defect gives [`Error::Format`] naming the file: wrong magic, unsupported type,
//! truncated header or data, dimensions whose product overflows, trailing bytes, corrupt
//! gzip, a gzip stream too small to hold what its header claims.

use crate::data::{dims_text, read_file, thousands, write_atomic};
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

/// The most bytes a deflate stream of `n` bytes can decompress to: every output symbol costs
/// at least one bit, a literal yields one byte and a match at most 258 bytes for at least two
/// bits, so the ratio is below 1032 : 1 (gzip headers only lower it).
fn inflate_bound(n: usize) -> usize {
    n.saturating_mul(1032)
}

/// Claimed data sizes up to this are decompressed in one pass into a buffer that grows with
/// the data; larger ones are first counted without being stored, then read into a buffer of
/// exactly the size the stream was found to hold.
const ONE_PASS_MAX: usize = 16 << 20;

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

/// A parsed IDX header: the dimensions, the header length and the data length they imply.
struct Header {
    dims: Vec<usize>,
    len: usize,
    data_len: usize,
}

/// Parses the header at the start of `bytes`, which hold the whole file or at least its
/// header when it has one (a shorter `bytes` is then the whole file); `what` names `bytes`
/// in messages ("the file", "the decompressed data").
fn parse_header(bytes: &[u8], name: &Path, what: &str) -> Result<Header> {
    let err = |problem: String| Error::format(name, problem);
    if bytes.len() < 4 {
        return Err(err(format!(
            "not an IDX file: {} has {} bytes, too short for the 4-byte magic number",
            what,
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
    let len = 4 + 4 * ndims;
    if bytes.len() < len {
        return Err(err(format!(
            "truncated IDX header: {ndims} dimensions need {len} bytes, {what} has {}",
            bytes.len()
        )));
    }
    let dims: Vec<usize> = bytes[4..len]
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    // Every partial product must fit, not only the full one: `[0, 2³², 2³²]` holds no
    // elements, but its row width (the product after the first dimension) overflows.
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))
        .map(|_| dims.iter().product())
        .ok_or_else(|| {
            err(format!(
                "IDX dimensions {} overflow the address space",
                dims_text(&dims)
            ))
        })?;
    Ok(Header {
        dims,
        len,
        data_len,
    })
}

/// The error for a data section of `found` bytes (or more than `found` if `more`) where
/// `h` needs `h.data_len`.
fn length_error(h: &Header, found: usize, more: bool, name: &Path, what: &str) -> Error {
    let (need, dims) = (thousands(h.data_len), dims_text(&h.dims));
    let problem = if found < h.data_len {
        format!(
            "truncated IDX data: dimensions {dims} need {need} bytes, {what} has {}",
            thousands(found)
        )
    } else if more {
        format!("IDX data length mismatch: dimensions {dims} need {need} bytes, {what} has more")
    } else {
        format!(
            "IDX data length mismatch: dimensions {dims} need {need} bytes, {what} has {} \
             ({} extra)",
            thousands(found),
            thousands(found - h.data_len)
        )
    };
    Error::format(name, problem)
}

/// Reads an IDX file (plain or gzip-compressed).
///
/// Memory: a plain file is read once and its header dropped in place (peak: the file's
/// size); a compressed file is parsed as in [`parse_idx`].
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the file if its
/// contents are not a valid unsigned-byte IDX array (see [`parse_idx`]).
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let bytes = read_file(path)?;
    if is_gzip(&bytes) {
        return parse_gzip(&bytes, path);
    }
    let h = check_plain(&bytes, path)?;
    let mut data = bytes;
    data.drain(..h.len);
    Ok(IdxArray { dims: h.dims, data })
}

/// Parses the bytes of an IDX file (plain or gzip-compressed); `name` is the file named in
/// errors.
///
/// No allocation is sized by what the header claims before the data are known to be there:
/// a plain file's data are copied only once their length is checked; a gzip stream is
/// refused at once if its header claims more than any stream of its size can hold (1032
/// bytes per compressed byte), is decompressed at most one byte past the claimed size, and,
/// for claims above 16 MiB, is first counted and only then read into a buffer of exactly
/// that size (so a stream that decompresses to far more than the header says, or far less,
/// costs time proportional to the claim but little memory).
///
/// # Errors
/// [`Error::Format`] naming `name` for: corrupt gzip data; a magic number that is not
/// `00 00 TT NN`; an element type other than unsigned byte (`0x08`); a header shorter than
/// its `NN` dimensions; dimensions whose product, or the product of any of them, overflows
/// `usize`; fewer or more data bytes than the product of the dimensions.
pub fn parse_idx(bytes: &[u8], name: &Path) -> Result<IdxArray> {
    if is_gzip(bytes) {
        return parse_gzip(bytes, name);
    }
    let h = check_plain(bytes, name)?;
    Ok(IdxArray {
        data: bytes[h.len..].to_vec(),
        dims: h.dims,
    })
}

/// The header of a plain (uncompressed) file whose data length has been checked.
fn check_plain(bytes: &[u8], name: &Path) -> Result<Header> {
    let what = "the file";
    let h = parse_header(bytes, name, what)?;
    let found = bytes.len() - h.len;
    if found != h.data_len {
        return Err(length_error(&h, found, false, name, what));
    }
    Ok(h)
}

/// Parses a gzip-compressed IDX file (all members of the stream).
fn parse_gzip(bytes: &[u8], name: &Path) -> Result<IdxArray> {
    let what = "the decompressed data";
    let corrupt =
        |e: std::io::Error| Error::format(name, format!("corrupt or truncated gzip data ({e})"));
    let mut stream = flate2::read::MultiGzDecoder::new(bytes);
    // The magic number, then the dimensions it announces.
    let mut head = Vec::with_capacity(4 + 4 * 255);
    (&mut stream)
        .take(4)
        .read_to_end(&mut head)
        .map_err(corrupt)?;
    if head.len() == 4 && head[..2] == [0, 0] {
        let dims = 4 * u64::from(head[3]);
        (&mut stream)
            .take(dims)
            .read_to_end(&mut head)
            .map_err(corrupt)?;
    }
    let h = parse_header(&head, name, what)?;
    if h.data_len > inflate_bound(bytes.len()).saturating_sub(h.len) {
        return Err(Error::format(
            name,
            format!(
                "IDX dimensions {} need {} bytes, more than a gzip stream of {} bytes can hold",
                dims_text(&h.dims),
                thousands(h.data_len),
                thousands(bytes.len())
            ),
        ));
    }
    let limit = h.data_len as u64 + 1;
    let mut data = Vec::new();
    if h.data_len > ONE_PASS_MAX {
        let mut count = flate2::read::MultiGzDecoder::new(bytes);
        let total = std::io::copy(
            &mut (&mut count).take(h.len as u64 + limit),
            &mut std::io::sink(),
        )
        .map_err(corrupt)?;
        let found = (total as usize).saturating_sub(h.len);
        if found != h.data_len {
            return Err(length_error(&h, found, found > h.data_len, name, what));
        }
        data.reserve_exact(h.data_len);
    }
    stream.take(limit).read_to_end(&mut data).map_err(corrupt)?;
    if data.len() != h.data_len {
        return Err(length_error(
            &h,
            data.len(),
            data.len() > h.data_len,
            name,
            what,
        ));
    }
    Ok(IdxArray { dims: h.dims, data })
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
