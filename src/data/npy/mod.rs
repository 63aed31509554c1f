//! The NPY format of numpy (`np.save` / `np.load`), versions 1.0, 2.0 and 3.0.
//!
//! Why a hand-written reader: the format is a 10–12 byte preamble, a Python-literal
//! dictionary with three keys, and raw little- or big-endian elements. The crates that read
//! it (`npyz`) pull in a general Python-literal grammar (`py_literal` → `pest`, `num-bigint`)
//! and report truncation and non-finite values as generic I/O errors, while this crate must
//! name the file, the element and the problem in every error. Candle keeps its
//! own NPY reader for the same reasons. The header reader ([`parse_header`]) accepts every
//! spelling numpy has used (key order, quotes, spacing, trailing commas, Python 2 `3L` sizes).
//!
//! Reading: [`read_npy`] returns floats (`f32`, `f64`; integer and `uint8` files are
//! converted to their values, unscaled), [`read_npy_labels`] returns integers. Arrays must be
//! C-ordered (Fortran order is accepted only where it is the same layout: at most one
//! dimension larger than 1), float data must be finite, and the file must hold exactly the
//! declared number of elements. Writing: [`write_npy`] (`<f4` / `<f8`), [`write_npy_u8`]
//! (`|u1`) and [`write_npy_labels`] (`<i8`), C order, atomically, with the same bytes as
//! numpy's `np.save` of the same array (checked against files numpy wrote, in
//! `tests/fixtures/npy/`).

mod header;

pub use header::{Dtype, NpyHeader, parse_header};

use crate::data::{dims_text, read_file, thousands, write_atomic};
use crate::{Error, Real, Result};
use std::io::Read;
use std::path::Path;

/// An n-dimensional array read from or written to an NPY file: its shape and its elements in
/// row-major (C) order (`data.len()` is the product of `shape`; 1 for a 0-d scalar).
#[derive(Clone, Debug, PartialEq)]
pub struct NpyArray<T> {
    /// The shape, outermost first (empty for a 0-d scalar).
    pub shape: Vec<usize>,
    /// Elements in row-major order.
    pub data: Vec<T>,
}

/// An element type stored in NPY files.
trait Elem: Copy {
    const DTYPE: Dtype;
    fn from_bytes(b: &[u8], big: bool) -> Self;
    fn to_f64(self) -> f64;
    fn to_i64(self) -> Option<i64>;
    fn put_le(self, out: &mut Vec<u8>);
}

macro_rules! elem {
    ($t:ty, $d:expr, $to_i64:expr) => {
        impl Elem for $t {
            const DTYPE: Dtype = $d;
            #[inline(always)]
            fn from_bytes(b: &[u8], big: bool) -> Self {
                let mut a = [0u8; std::mem::size_of::<$t>()];
                a.copy_from_slice(b);
                if big {
                    <$t>::from_be_bytes(a)
                } else {
                    <$t>::from_le_bytes(a)
                }
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn to_i64(self) -> Option<i64> {
                #[allow(clippy::redundant_closure_call)]
                ($to_i64)(self)
            }
            #[inline(always)]
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}

elem!(u8, Dtype::U8, |v: u8| Some(i64::from(v)));
elem!(i8, Dtype::I8, |v: i8| Some(i64::from(v)));
elem!(u16, Dtype::U16, |v: u16| Some(i64::from(v)));
elem!(i16, Dtype::I16, |v: i16| Some(i64::from(v)));
elem!(u32, Dtype::U32, |v: u32| Some(i64::from(v)));
elem!(i32, Dtype::I32, |v: i32| Some(i64::from(v)));
elem!(u64, Dtype::U64, |v: u64| i64::try_from(v).ok());
elem!(i64, Dtype::I64, Some);
elem!(f32, Dtype::F32, |_| None);
elem!(f64, Dtype::F64, |_| None);

/// Calls `$f::<E>` with the Rust type `E` of a [`Dtype`].
macro_rules! dispatch {
    ($dtype:expr, $f:ident ( $($arg:expr),* )) => {
        match $dtype {
            Dtype::U8 => $f::<u8, _>($($arg),*),
            Dtype::I8 => $f::<i8, _>($($arg),*),
            Dtype::U16 => $f::<u16, _>($($arg),*),
            Dtype::I16 => $f::<i16, _>($($arg),*),
            Dtype::U32 => $f::<u32, _>($($arg),*),
            Dtype::I32 => $f::<i32, _>($($arg),*),
            Dtype::U64 => $f::<u64, _>($($arg),*),
            Dtype::I64 => $f::<i64, _>($($arg),*),
            Dtype::F32 => $f::<f32, _>($($arg),*),
            Dtype::F64 => $f::<f64, _>($($arg),*),
        }
    };
}

/// The multi-index `(i, j, …)` of flat row-major index `flat` in `shape`, for messages
/// (`flat i` alone past 8 dimensions, to keep messages short).
fn multi_index(shape: &[usize], mut flat: usize) -> String {
    if shape.len() > 8 {
        return format!("flat {flat}");
    }
    let mut idx = vec![0; shape.len()];
    for (k, &d) in shape.iter().enumerate().rev() {
        if d > 0 {
            idx[k] = flat % d;
            flat /= d;
        }
    }
    let parts: Vec<String> = idx.iter().map(|i| i.to_string()).collect();
    format!("({})", parts.join(", "))
}

/// Validates the header against the data length; returns the element bytes.
fn data_section<'a>(bytes: &'a [u8], h: &NpyHeader, name: &Path) -> Result<&'a [u8]> {
    let err = |p: String| Error::format(name, p);
    if h.fortran_order && h.shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(err(format!(
            "Fortran-ordered (column-major) array of shape {} is not supported; save it in C \
             order (np.save(f, np.ascontiguousarray(a)))",
            dims_text(&h.shape)
        )));
    }
    // Every partial product must fit, not only the full one: `(0, 2³², 2³²)` holds no
    // elements, but its row width (the product after the first dimension) overflows.
    let overflow = || {
        err(format!(
            "NPY shape {} of {} overflows the address space",
            dims_text(&h.shape),
            h.dtype
        ))
    };
    h.shape
        .iter()
        .try_fold(h.dtype.size(), |a, &d| a.checked_mul(d.max(1)))
        .ok_or_else(overflow)?;
    let n = h.n_elements().ok_or_else(overflow)?;
    let need = n.checked_mul(h.dtype.size()).ok_or_else(overflow)?;
    let found = bytes.len() - h.data_offset;
    if found < need {
        return Err(err(format!(
            "truncated NPY data: shape {} of {} needs {} bytes, the file has {}",
            dims_text(&h.shape),
            h.dtype,
            thousands(need),
            thousands(found)
        )));
    }
    if found > need {
        return Err(err(format!(
            "NPY data length mismatch: shape {} of {} needs {} bytes, the file has {} \
             ({} extra)",
            dims_text(&h.shape),
            h.dtype,
            thousands(need),
            thousands(found),
            thousands(found - need)
        )));
    }
    Ok(&bytes[h.data_offset..])
}

fn decode_real<E: Elem, T: Real>(
    raw: &[u8],
    h: &NpyHeader,
    name: &Path,
    _: std::marker::PhantomData<T>,
) -> Result<Vec<T>> {
    let mut out = Vec::with_capacity(raw.len() / E::DTYPE.size());
    for (i, c) in raw.chunks_exact(E::DTYPE.size()).enumerate() {
        let v = E::from_bytes(c, h.big_endian).to_f64();
        let t = T::from_f64(v);
        if !t.is_finite() {
            let what = if v.is_finite() {
                format!("value {v:e} overflows {}", T::NAME)
            } else {
                format!("non-finite value {v}")
            };
            return Err(Error::format(
                name,
                format!(
                    "{what} at index {} (flat index {i}); the data must be finite",
                    multi_index(&h.shape, i)
                ),
            ));
        }
        out.push(t);
    }
    Ok(out)
}

fn decode_int<E: Elem, X>(
    raw: &[u8],
    h: &NpyHeader,
    name: &Path,
    _: std::marker::PhantomData<X>,
) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(raw.len() / E::DTYPE.size());
    for (i, c) in raw.chunks_exact(E::DTYPE.size()).enumerate() {
        let v = E::from_bytes(c, h.big_endian);
        let Some(n) = v.to_i64() else {
            return Err(Error::format(
                name,
                format!(
                    "value at index {} does not fit in int64",
                    multi_index(&h.shape, i)
                ),
            ));
        };
        out.push(n);
    }
    Ok(out)
}

/// Reads only the header of an NPY file (the shape and dtype, without the data).
///
/// The header length the file declares is not trusted: at most that many bytes are read,
/// into a buffer that grows only with the bytes actually read.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] as [`parse_header`].
pub fn read_header(path: &Path) -> Result<NpyHeader> {
    let io = |e| Error::io(path, e);
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut buf = Vec::with_capacity(12);
    (&mut f).take(12).read_to_end(&mut buf).map_err(io)?;
    let n = buf.len();
    if n >= 10 && &buf[..6] == header::MAGIC {
        let hlen = match buf[6] {
            1 => u64::from(u16::from_le_bytes([buf[8], buf[9]])) + 10,
            _ if n >= 12 => u64::from(u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]])) + 12,
            _ => n as u64,
        };
        if let Some(rest) = hlen.checked_sub(n as u64) {
            f.take(rest).read_to_end(&mut buf).map_err(io)?;
        }
    }
    parse_header(&buf, path)
}

/// Reads an NPY file as floats of type `T`. Files of `float32`, `float64`, `uint8` or any
/// integer dtype are accepted; values are converted (not scaled) to `T`.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the file as
/// [`parse_npy`].
pub fn read_npy<T: Real>(path: &Path) -> Result<NpyArray<T>> {
    parse_npy(&read_file(path)?, path)
}

/// Parses the bytes of an NPY file as floats of type `T`; `name` is the file named in errors.
///
/// # Errors
/// [`Error::Format`] naming `name` for: a bad header (see [`parse_header`]); Fortran order;
/// truncated data or trailing bytes; a NaN or infinite value, or one that overflows `T`
/// (naming its index).
pub fn parse_npy<T: Real>(bytes: &[u8], name: &Path) -> Result<NpyArray<T>> {
    let h = parse_header(bytes, name)?;
    let raw = data_section(bytes, &h, name)?;
    let marker = std::marker::PhantomData::<T>;
    let data = dispatch!(h.dtype, decode_real(raw, &h, name, marker))?;
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

/// Reads an NPY file of integers (any signed or unsigned integer dtype), for class labels.
///
/// # Errors
/// [`Error::Io`] if the file cannot be read; [`Error::Format`] naming the file as
/// [`parse_npy_labels`].
pub fn read_npy_labels(path: &Path) -> Result<NpyArray<i64>> {
    parse_npy_labels(&read_file(path)?, path)
}

/// Parses the bytes of an NPY file of integers; `name` is the file named in errors.
///
/// # Errors
/// [`Error::Format`] naming `name` for: a bad header (see [`parse_header`]); a float dtype;
/// Fortran order; truncated data or trailing bytes; a `uint64` value above `i64::MAX`.
pub fn parse_npy_labels(bytes: &[u8], name: &Path) -> Result<NpyArray<i64>> {
    let h = parse_header(bytes, name)?;
    if h.dtype.is_float() {
        return Err(Error::format(
            name,
            format!(
                "expected integer labels, found dtype {} (save them with .astype(np.int64))",
                h.dtype
            ),
        ));
    }
    let raw = data_section(bytes, &h, name)?;
    let marker = std::marker::PhantomData::<()>;
    let data = dispatch!(h.dtype, decode_int(raw, &h, name, marker))?;
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

/// The NPY preamble and header dictionary for a C-ordered array, laid out exactly as numpy's
/// `np.save` does (numpy ≥ 1.23): the dictionary, spaces so that the first dimension can grow
/// to 21 digits in place, then spaces and a newline up to a multiple of 64 bytes; version 1.0,
/// or 2.0 when the header does not fit a 16-bit length.
fn encode_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    const GROWTH_AXIS_MAX_DIGITS: usize = 21;
    const ALIGN: usize = 64;
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_repr = match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    };
    let mut dict =
        format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_repr}, }}");
    if let Some(first) = dims.first() {
        let growth = GROWTH_AXIS_MAX_DIGITS.saturating_sub(first.len());
        dict.extend(std::iter::repeat_n(' ', growth));
    }
    let padded_len = |pre: usize| {
        let hlen = dict.len() + 1;
        hlen + ALIGN - (pre + hlen) % ALIGN
    };
    let v1 = padded_len(10) <= usize::from(u16::MAX);
    let pre = if v1 { 10 } else { 12 };
    let hlen = padded_len(pre);
    dict.extend(std::iter::repeat_n(' ', hlen - 1 - dict.len()));
    dict.push('\n');
    let mut out = Vec::with_capacity(pre + hlen);
    out.extend_from_slice(header::MAGIC);
    if v1 {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(hlen as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(hlen as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out
}

#[track_caller]
fn encode<E: Elem>(what: &str, shape: &[usize], data: &[E]) -> Vec<u8> {
    let n: usize = shape.iter().product();
    assert_eq!(
        n,
        data.len(),
        "{what}: shape {shape:?} holds {n} elements but data has {}",
        data.len()
    );
    let mut out = encode_header(E::DTYPE.descr(), shape);
    out.reserve(data.len() * E::DTYPE.size());
    for &v in data {
        v.put_le(&mut out);
    }
    out
}

/// The bytes of an NPY file holding `data` (row-major) with shape `shape`, in `T`'s own
/// dtype (`<f4` for `f32`, `<f8` for `f64`).
///
/// # Panics
/// If `data.len()` is not the product of `shape`.
#[track_caller]
pub fn encode_npy<T: Real>(shape: &[usize], data: &[T]) -> Vec<u8> {
    if std::mem::size_of::<T>() == 4 {
        let v: Vec<f32> = data.iter().map(|x| x.to_f64() as f32).collect();
        encode("encode_npy", shape, &v)
    } else {
        let v: Vec<f64> = data.iter().map(|x| x.to_f64()).collect();
        encode("encode_npy", shape, &v)
    }
}

/// Writes an NPY file holding `data` (row-major) with shape `shape`, in `T`'s own dtype
/// (`<f4` for `f32`, `<f8` for `f64`), C order. The write is atomic (temporary file,
/// `fsync`, rename). Values are written as given (non-finite values too, which
/// [`read_npy`] then rejects).
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
///
/// # Panics
/// If `data.len()` is not the product of `shape`.
#[track_caller]
pub fn write_npy<T: Real>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    write_atomic(path, &encode_npy(shape, data))
}

/// Writes an NPY file of unsigned bytes (`|u1`), C order, atomically.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
///
/// # Panics
/// If `data.len()` is not the product of `shape`.
#[track_caller]
pub fn write_npy_u8(path: &Path, shape: &[usize], data: &[u8]) -> Result<()> {
    write_atomic(path, &encode("write_npy_u8", shape, data))
}

/// Writes an NPY file of 64-bit integers (`<i8`, for class labels), C order, atomically.
///
/// # Errors
/// [`Error::Io`] if the file cannot be written.
///
/// # Panics
/// If `data.len()` is not the product of `shape`.
#[track_caller]
pub fn write_npy_labels(path: &Path, shape: &[usize], data: &[i64]) -> Result<()> {
    write_atomic(path, &encode("write_npy_labels", shape, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_64_byte_aligned_and_parses_back() {
        for shape in [vec![], vec![0], vec![5], vec![2, 3], vec![1, 2, 3, 4]] {
            let h = encode_header("<f8", &shape);
            assert_eq!(h.len() % 64, 0);
            assert_eq!(*h.last().unwrap(), b'\n');
            let p = parse_header(&h, Path::new("x.npy")).unwrap();
            assert_eq!(p.shape, shape);
            assert_eq!(p.data_offset, h.len());
        }
    }

    #[test]
    fn multi_index_is_row_major() {
        assert_eq!(multi_index(&[2, 3], 5), "(1, 2)");
        assert_eq!(multi_index(&[4], 3), "(3)");
        assert_eq!(multi_index(&[], 0), "()");
    }
}
