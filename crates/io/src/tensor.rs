//! Tensors: where their bytes live ([`Data`]), their description ([`TensorInfo`]) and the borrowed
//! view handed to users ([`TensorView`]).

use std::borrow::Cow;
use std::ops::Deref;
use std::path::Path;
use std::sync::Arc;

use crate::dtype::{DType, decode_plain};
use crate::error::{Error, ErrorKind, Result};

/// A byte buffer that tensors borrow from: a memory map of a file, or bytes owned in memory
/// (decompressed entries, parsed protobufs).
#[derive(Debug)]
pub enum Buf {
    /// A read-only memory map.
    Map(memmap2::Mmap),
    /// Owned bytes.
    Vec(Vec<u8>),
}

impl Deref for Buf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Buf::Map(m) => m,
            Buf::Vec(v) => v,
        }
    }
}

impl Buf {
    /// Maps `path` read-only (empty files become an empty owned buffer, which mmap refuses).
    pub fn map_file(path: &Path) -> Result<Arc<Buf>> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len == 0 {
            return Ok(Arc::new(Buf::Vec(Vec::new())));
        }
        // SAFETY: the map is read-only. Like every mmap-based reader (safetensors, numpy) we
        // assume the file is not truncated by another process while it is mapped.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
        Ok(Arc::new(Buf::Map(map)))
    }
}

/// A function that produces a tensor's bytes on demand (decompression, byte swapping, ...).
pub type Producer = Arc<dyn Fn() -> Result<Vec<u8>> + Send + Sync>;

/// Where a tensor's bytes live. Bytes handed out are always C-contiguous (row-major) and
/// little-endian; anything else is converted by a [`Data::Lazy`] producer or a
/// [`Data::Strided`] gather on access.
#[derive(Clone)]
pub enum Data {
    /// A contiguous slice of a buffer: zero-copy.
    Slice {
        /// The buffer.
        buf: Arc<Buf>,
        /// First byte.
        start: usize,
        /// Byte length.
        len: usize,
    },
    /// A strided view into a storage (PyTorch tensors that are views of a larger storage).
    /// Gathered into a contiguous copy on access.
    Strided {
        /// The buffer holding the storage.
        buf: Arc<Buf>,
        /// First byte of the storage within `buf`.
        storage_start: usize,
        /// Byte length of the storage.
        storage_len: usize,
        /// Offset of element (0, ..., 0), in elements.
        offset: usize,
        /// Strides in elements, one per dimension.
        strides: Vec<usize>,
    },
    /// Bytes produced on demand.
    Lazy(Producer),
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Slice { start, len, .. } => write!(f, "Slice({start}..+{len})"),
            Data::Strided {
                offset, strides, ..
            } => write!(f, "Strided(offset {offset}, strides {strides:?})"),
            Data::Lazy(_) => write!(f, "Lazy"),
        }
    }
}

/// The description of a tensor: everything but its bytes. Reading it never touches tensor data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// Full name, e.g. `model.layers.0.mlp.up_proj.weight`.
    pub name: String,
    /// Element type as stored.
    pub dtype: DType,
    /// Shape, row-major (outermost dimension first), as numpy and PyTorch report it.
    pub shape: Vec<usize>,
}

impl TensorInfo {
    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of bytes the tensor takes in its stored dtype.
    pub fn nbytes(&self) -> usize {
        self.dtype.storage_bytes(self.numel()).unwrap_or(0)
    }
}

/// A tensor inside a [`crate::Checkpoint`]: its description and where its bytes are.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Name, dtype and shape.
    pub info: TensorInfo,
    /// Where the bytes are.
    pub data: Data,
}

impl Entry {
    /// Checks that the data can hold the tensor (format readers call this before returning).
    pub fn validate(&self, path: &Path) -> Result<()> {
        let numel = self
            .info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d));
        let expected = numel.and_then(|n| self.info.dtype.storage_bytes(n));
        let err = |kind| Error::new(path, kind).with_tensor(&self.info.name);
        let Some(expected) = expected else {
            return Err(err(ErrorKind::Invalid(format!(
                "shape {:?} is not a valid size for dtype {}",
                self.info.shape, self.info.dtype
            ))));
        };
        match &self.data {
            Data::Slice { buf, start, len } => {
                let end = start.checked_add(*len);
                if end.is_none_or(|e| e > buf.len()) {
                    return Err(err(ErrorKind::OffsetOutOfBounds {
                        start: *start as u64,
                        end: end.unwrap_or(usize::MAX) as u64,
                        available: buf.len() as u64,
                    }));
                }
                if *len != expected {
                    return Err(err(ErrorKind::SizeMismatch {
                        bytes: *len as u64,
                        expected: expected as u64,
                        shape: self.info.shape.clone(),
                        dtype: self.info.dtype.name().into(),
                    }));
                }
            }
            Data::Strided {
                buf,
                storage_start,
                storage_len,
                offset,
                strides,
            } => {
                let Some(esize) = self.info.dtype.size() else {
                    return Err(err(ErrorKind::Invalid(
                        "strided view of a block-quantised dtype".into(),
                    )));
                };
                if strides.len() != self.info.shape.len() {
                    return Err(err(ErrorKind::Invalid(format!(
                        "{} strides for {} dimensions",
                        strides.len(),
                        self.info.shape.len()
                    ))));
                }
                let end = storage_start.checked_add(*storage_len);
                if end.is_none_or(|e| e > buf.len()) {
                    return Err(err(ErrorKind::OffsetOutOfBounds {
                        start: *storage_start as u64,
                        end: end.unwrap_or(usize::MAX) as u64,
                        available: buf.len() as u64,
                    }));
                }
                if numel != Some(0) {
                    // Highest element index touched by the view.
                    let mut last = Some(*offset);
                    for (&d, &s) in self.info.shape.iter().zip(strides) {
                        last = last.and_then(|l| {
                            (d.saturating_sub(1))
                                .checked_mul(s)
                                .and_then(|x| l.checked_add(x))
                        });
                    }
                    let needed = last
                        .and_then(|l| l.checked_add(1))
                        .and_then(|n| n.checked_mul(esize));
                    if needed.is_none_or(|n| n > *storage_len) {
                        return Err(err(ErrorKind::OffsetOutOfBounds {
                            start: (*offset as u64).saturating_mul(esize as u64),
                            end: needed.unwrap_or(usize::MAX) as u64,
                            available: *storage_len as u64,
                        }));
                    }
                }
            }
            Data::Lazy(_) => {}
        }
        Ok(())
    }

    /// The tensor's bytes: borrowed when they are contiguous in a buffer, otherwise produced.
    pub fn bytes(&self, path: &Path) -> Result<Cow<'_, [u8]>> {
        match &self.data {
            Data::Slice { buf, start, len } => Ok(Cow::Borrowed(&buf[*start..*start + *len])),
            Data::Strided {
                buf,
                storage_start,
                storage_len,
                offset,
                strides,
            } => {
                let esize = self.info.dtype.size().unwrap_or(1);
                let storage = &buf[*storage_start..*storage_start + *storage_len];
                Ok(Cow::Owned(gather_strided(
                    storage,
                    esize,
                    *offset,
                    &self.info.shape,
                    strides,
                )))
            }
            Data::Lazy(f) => {
                let v = f().map_err(|mut e| {
                    if e.tensor.is_none() {
                        e.tensor = Some(self.info.name.clone());
                    }
                    e
                })?;
                let expected = self.info.nbytes();
                if v.len() != expected {
                    return Err(Error::new(
                        path,
                        ErrorKind::SizeMismatch {
                            bytes: v.len() as u64,
                            expected: expected as u64,
                            shape: self.info.shape.clone(),
                            dtype: self.info.dtype.name().into(),
                        },
                    )
                    .with_tensor(&self.info.name));
                }
                Ok(Cow::Owned(v))
            }
        }
    }
}

/// Copies a strided view (strides in elements) into a contiguous row-major buffer. Bounds were
/// checked by [`Entry::validate`].
pub(crate) fn gather_strided(
    storage: &[u8],
    esize: usize,
    offset: usize,
    shape: &[usize],
    strides: &[usize],
) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(numel * esize);
    if numel == 0 {
        return out;
    }
    let nd = shape.len();
    let mut idx = vec![0usize; nd];
    loop {
        let lin = offset + idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>();
        out.extend_from_slice(&storage[lin * esize..(lin + 1) * esize]);
        // Advance the multi-index, innermost fastest.
        let mut d = nd;
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// A tensor borrowed from a [`crate::Checkpoint`]: name, dtype, row-major shape and its
/// little-endian, C-contiguous bytes (borrowed from the memory map when possible).
#[derive(Debug, Clone)]
pub struct TensorView<'a> {
    /// Name in the checkpoint.
    pub name: &'a str,
    /// Element type as stored.
    pub dtype: DType,
    /// Row-major shape.
    pub shape: &'a [usize],
    /// The raw bytes.
    pub bytes: Cow<'a, [u8]>,
}

impl TensorView<'_> {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The values as `f32`, converting (or dequantising) as needed.
    pub fn to_f32(&self) -> Result<Vec<f32>, ErrorKind> {
        let n = self.numel();
        let mut out = vec![0f32; n];
        self.decode_into(&mut out)?;
        Ok(out)
    }

    /// Decodes the values as `f32` into `out` (which must have [`Self::numel`] elements).
    pub fn decode_into(&self, out: &mut [f32]) -> Result<(), ErrorKind> {
        let n = self.numel();
        if out.len() != n {
            return Err(ErrorKind::Invalid(format!(
                "output buffer has {} elements, tensor has {n}",
                out.len()
            )));
        }
        let expected = self.dtype.storage_bytes(n);
        if expected != Some(self.bytes.len()) {
            return Err(ErrorKind::SizeMismatch {
                bytes: self.bytes.len() as u64,
                expected: expected.unwrap_or(0) as u64,
                shape: self.shape.to_vec(),
                dtype: self.dtype.name().into(),
            });
        }
        if self.dtype.is_quantized() {
            crate::quant::dequantize(self.dtype, &self.bytes, out)
        } else {
            decode_plain(self.dtype, &self.bytes, out);
            Ok(())
        }
    }

    /// The bytes reinterpreted as `f32` without copying, when the dtype is F32 and the bytes are
    /// suitably aligned (they are in safetensors files written with 8-byte alignment).
    pub fn as_f32_slice(&self) -> Option<&[f32]> {
        if self.dtype != DType::F32 || cfg!(target_endian = "big") {
            return None;
        }
        let b: &[u8] = &self.bytes;
        if b.as_ptr().align_offset(std::mem::align_of::<f32>()) != 0 {
            return None;
        }
        // SAFETY: alignment checked above, length is a multiple of 4 (validated size), every
        // bit pattern is a valid f32, and the slice borrows `self`.
        Some(unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<f32>(), b.len() / 4) })
    }

    /// The values as `f32`, borrowed when possible (see [`Self::as_f32_slice`]).
    pub fn f32s(&self) -> Result<Cow<'_, [f32]>, ErrorKind> {
        match self.as_f32_slice() {
            Some(s) => Ok(Cow::Borrowed(s)),
            None => self.to_f32().map(Cow::Owned),
        }
    }

    /// BLAKE3 over the dtype name, the shape and the bytes: equal hashes mean equal tensors.
    pub fn content_hash(&self) -> blake3::Hash {
        let mut h = blake3::Hasher::new();
        h.update(self.dtype.name().as_bytes());
        h.update(&[0]);
        h.update(&(self.shape.len() as u64).to_le_bytes());
        for d in self.shape {
            h.update(&(*d as u64).to_le_bytes());
        }
        h.update(&self.bytes);
        h.finalize()
    }
}

/// The model hash: BLAKE3 over each tensor's name and [`TensorView::content_hash`], in order.
pub fn combine_hashes<'a>(
    tensors: impl Iterator<Item = (&'a str, &'a blake3::Hash)>,
) -> blake3::Hash {
    let mut h = blake3::Hasher::new();
    for (name, th) in tensors {
        h.update(name.as_bytes());
        h.update(&[0]);
        h.update(th.as_bytes());
    }
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_transposed() {
        // Storage holds a 2x3 row-major u8 matrix; view it transposed (3x2, strides [1, 3]).
        let storage = [0u8, 1, 2, 3, 4, 5];
        let out = gather_strided(&storage, 1, 0, &[3, 2], &[1, 3]);
        assert_eq!(out, vec![0, 3, 1, 4, 2, 5]);
        // With an offset and a scalar.
        assert_eq!(gather_strided(&storage, 1, 4, &[], &[]), vec![4]);
        assert!(gather_strided(&storage, 1, 0, &[0, 2], &[2, 1]).is_empty());
    }
}
