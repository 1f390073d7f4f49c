//! GGUF v2/v3, llama.cpp's weights format.
//!
//! Layout (all little-endian): the magic `GGUF`, a `u32` version, a `u64` tensor count and a
//! `u64` key/value count; the key/values (`string key`, `u32 value type`, value); the tensor
//! infos (`string name`, `u32 n_dims`, `n_dims × u64` dimensions *fastest-varying first*,
//! `u32 ggml type`, `u64 offset`); padding up to `general.alignment` (a `u32`, default 32);
//! then the data section, in which every tensor's offset is a multiple of the alignment.
//! Strings are a `u64` byte length and that many bytes.
//!
//! Checks follow llama.cpp's `gguf.cpp` (at most 4 dimensions, rows a whole number of blocks,
//! unique keys, `general.alignment` a power-of-two `u32`, aligned offsets, data inside the
//! file) with one leniency, shared with gguf-py: tensors need not be packed in file order.
//!
//! What the reader produces:
//!
//! * Shapes are row-major, as numpy and PyTorch report them: GGUF's dimension list reversed.
//! * Tensor data is [`Data::Slice`] into the memory map: the stored bytes, untouched, with the
//!   GGUF type as dtype. Quantised tensors stay quantised until [`crate::TensorView::to_f32`],
//!   which dequantises them as ggml does (see `quant.rs`).
//! * Supported ggml types: every type of current ggml: F32, F16, BF16, F64, I8, I16, I32, I64,
//!   Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K, the i-quants
//!   IQ1_S, IQ1_M, IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ4_NL, IQ4_XS, the ternary TQ1_0
//!   and TQ2_0, MXFP4, NVFP4 and Q1_0. The ids ggml has removed (Q4_2, Q4_3, the repacked
//!   Q4_0_4_4/Q4_0_4_8/Q4_0_8_8 and IQ4_NL_4_4/IQ4_NL_4_8/IQ4_NL_8_8) and unknown ids refuse
//!   the file at open time with [`ErrorKind::UnsupportedDType`] naming the tensor, the type
//!   name when there is one and the ggml id: weightspace has no dtype to describe them.
//! * Metadata: every key/value, under its key as written (`general.architecture`, ...), as JSON
//!   (see [`GGUF_MAX_ARRAY_LEN`] for the exact rule). Three keys are added as gguf-py's reader
//!   does, unless the file has them itself: `GGUF.version`, `GGUF.tensor_count`,
//!   `GGUF.kv_count`.
//!
//! Version 1 (which used 32-bit counts and lengths) and big-endian files are refused with
//! [`ErrorKind::Unsupported`], as are unknown versions.
//!
//! Hostile input: every count, length, offset and size is checked against the bytes that are
//! actually left in the file before anything is allocated for it, the header (key/values and
//! tensor infos) is capped at [`crate::MAX_HEADER_SIZE`] bytes, arrays nest at most
//! [`GGUF_MAX_DEPTH`] deep, at most [`GGUF_MAX_KEPT_ELEMENTS`] array elements are kept as JSON
//! over the whole file, and key/value and tensor counts are capped at 2^20. Nothing panics.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use crate::checkpoint::{Format, Parsed};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::safetensors::MAX_HEADER_SIZE;
use crate::tensor::{Buf, Data, Entry, TensorInfo};

/// Longest GGUF metadata array kept element by element in [`crate::Checkpoint::metadata`].
///
/// GGUF key/values become JSON values: integers and floats become JSON numbers (a non-finite
/// float becomes the string `"NaN"`, `"inf"` or `"-inf"`; an `f32` is written with its shortest
/// decimal form, e.g. `1e-5`), bools become JSON bools, strings JSON strings (invalid UTF-8
/// replaced by U+FFFD), and arrays JSON arrays, nested arrays included.
///
/// An array with more elements than this (a tokenizer vocabulary of 150,000 strings, say) is
/// not expanded: it becomes the summary object `{"array_of": "<type>", "len": <N>}`, where
/// `<type>` is GGUF's element type name in lowercase (`"uint8"`, `"int8"`, `"uint16"`,
/// `"int16"`, `"uint32"`, `"int32"`, `"uint64"`, `"int64"`, `"float32"`, `"float64"`,
/// `"bool"`, `"string"` or `"array"`). Arrays are also summarised, whatever their length, once
/// the file has had [`GGUF_MAX_KEPT_ELEMENTS`] array elements kept in total, so that a hostile file
/// cannot turn a small header into a huge JSON tree.
///
/// Keys are the file's own (`general.architecture`, `tokenizer.ggml.tokens`, ...). Like
/// gguf-py's reader, weightspace adds `GGUF.version`, `GGUF.tensor_count` and `GGUF.kv_count`
/// (numbers) unless the file has keys of those names itself.
pub const GGUF_MAX_ARRAY_LEN: usize = 1024;

/// Total number of array elements (over all keys, nested arrays included) kept as JSON per
/// file; arrays met after the budget is spent are summarised (see [`GGUF_MAX_ARRAY_LEN`]).
pub const GGUF_MAX_KEPT_ELEMENTS: usize = 1 << 20;

/// Deepest nesting of arrays accepted (an array of arrays has depth 2).
pub const GGUF_MAX_DEPTH: usize = 8;

/// Most tensor dimensions (ggml's `GGML_MAX_DIMS`).
const MAX_DIMS: u32 = 4;
/// Most key/values and tensors accepted: far above any real file (a few dozen keys, a few
/// thousand tensors), far below what would make the tables themselves a memory problem.
const MAX_KV: u64 = 1 << 20;
const MAX_TENSORS: u64 = 1 << 20;
/// Alignment when `general.alignment` is absent.
const DEFAULT_ALIGNMENT: u64 = 32;
/// Fewest bytes a key/value can take (empty key, 1-byte value) and a tensor info (empty name,
/// no dims): used to bound counts by the bytes left.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// A GGUF metadata value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VType {
    U8,
    I8,
    U16,
    I16,
    U32,
    I32,
    F32,
    Bool,
    Str,
    Array,
    U64,
    I64,
    F64,
}

impl VType {
    fn from_id(id: u32) -> Option<VType> {
        use VType::*;
        Some(match id {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => Str,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        use VType::*;
        match self {
            U8 => "uint8",
            I8 => "int8",
            U16 => "uint16",
            I16 => "int16",
            U32 => "uint32",
            I32 => "int32",
            F32 => "float32",
            Bool => "bool",
            Str => "string",
            Array => "array",
            U64 => "uint64",
            I64 => "int64",
            F64 => "float64",
        }
    }

    /// Size of a value of a fixed-size type.
    fn fixed_size(self) -> Option<u64> {
        use VType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            Str | Array => None,
        }
    }

    /// Fewest bytes one value can take (a string is at least its length, an array its element
    /// type and length).
    fn min_size(self) -> u64 {
        match self {
            VType::Str => 8,
            VType::Array => 12,
            t => t.fixed_size().unwrap_or(1),
        }
    }
}

/// The dtype of a ggml type id, or the reason it cannot be read.
fn ggml_type(id: u32) -> Result<DType, ErrorKind> {
    Ok(match id {
        0 => DType::F32,
        1 => DType::F16,
        2 => DType::Q4_0,
        3 => DType::Q4_1,
        6 => DType::Q5_0,
        7 => DType::Q5_1,
        8 => DType::Q8_0,
        9 => DType::Q8_1,
        10 => DType::Q2_K,
        11 => DType::Q3_K,
        12 => DType::Q4_K,
        13 => DType::Q5_K,
        14 => DType::Q6_K,
        15 => DType::Q8_K,
        16 => DType::IQ2_XXS,
        17 => DType::IQ2_XS,
        18 => DType::IQ3_XXS,
        19 => DType::IQ1_S,
        20 => DType::IQ4_NL,
        21 => DType::IQ3_S,
        22 => DType::IQ2_S,
        23 => DType::IQ4_XS,
        24 => DType::I8,
        25 => DType::I16,
        26 => DType::I32,
        27 => DType::I64,
        28 => DType::F64,
        29 => DType::IQ1_M,
        30 => DType::BF16,
        34 => DType::TQ1_0,
        35 => DType::TQ2_0,
        39 => DType::MXFP4,
        40 => DType::NVFP4,
        41 => DType::Q1_0,
        _ => {
            // Ids that ggml has retired: files with them cannot be written by a current ggml
            // and no reader gives their blocks a meaning any more.
            let name = match id {
                4 => "Q4_2 (removed from ggml)",
                5 => "Q4_3 (removed from ggml)",
                31 => "Q4_0_4_4 (removed from ggml)",
                32 => "Q4_0_4_8 (removed from ggml)",
                33 => "Q4_0_8_8 (removed from ggml)",
                36 => "IQ4_NL_4_4 (removed from ggml)",
                37 => "IQ4_NL_4_8 (removed from ggml)",
                38 => "IQ4_NL_8_8 (removed from ggml)",
                _ => {
                    return Err(ErrorKind::UnsupportedDType(format!(
                        "unknown ggml type id {id}"
                    )));
                }
            };
            return Err(ErrorKind::UnsupportedDType(format!(
                "ggml type {name} (id {id}) is not supported; weightspace reads every type of \
                 current ggml (ids 0-3, 6-30, 34, 35 and 39-41)"
            )));
        }
    })
}

/// A bounds-checked little-endian reader over the header.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The next `n` bytes; `what` names them in the error.
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<&'a [u8], ErrorKind> {
        let left = (self.b.len() - self.pos) as u64;
        if n > left {
            return Err(ErrorKind::Truncated(format!(
                "{} at byte {} needs {n} bytes, but only {left} are left",
                what(),
                self.pos
            )));
        }
        let end = self.pos as u64 + n;
        if end > MAX_HEADER_SIZE {
            return Err(ErrorKind::HeaderTooLarge {
                len: end,
                limit: MAX_HEADER_SIZE,
            });
        }
        let s = &self.b[self.pos..end as usize];
        self.pos = end as usize;
        Ok(s)
    }

    fn left(&self) -> u64 {
        (self.b.len() - self.pos) as u64
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], ErrorKind> {
        let s = self.take(N as u64, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, ErrorKind> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, ErrorKind> {
        self.array(what).map(u64::from_le_bytes)
    }

    /// A GGUF string's bytes (`u64` length, then the bytes).
    fn string(&mut self, what: &dyn Fn() -> String) -> Result<&'a [u8], ErrorKind> {
        let n = self.u64(&|| format!("length of {}", what()))?;
        self.take(n, what)
    }

    /// Checks that `count` items of at least `min` bytes each can fit in what is left.
    fn fits(&self, count: u64, min: u64, what: &dyn Fn() -> String) -> Result<(), ErrorKind> {
        let need = count.checked_mul(min);
        if need.is_none_or(|n| n > self.left()) {
            return Err(ErrorKind::Truncated(format!(
                "{} announces {count} items of at least {min} bytes each at byte {}, but only {} \
                 bytes are left",
                what(),
                self.pos,
                self.left()
            )));
        }
        Ok(())
    }
}

/// A JSON number for a float, or a string for the non-finite ones.
fn float_json(v: f64) -> Value {
    if v.is_nan() {
        Value::from("NaN")
    } else if v.is_infinite() {
        Value::from(if v > 0.0 { "inf" } else { "-inf" })
    } else {
        Value::from(v)
    }
}

/// Reads (or, when `keep` is false, skips) one value of type `t`. `budget` is the number of
/// array elements that may still be kept.
fn read_value(
    c: &mut Cursor<'_>,
    t: VType,
    depth: usize,
    budget: &mut usize,
    keep: bool,
    what: &dyn Fn() -> String,
) -> Result<Value, ErrorKind> {
    macro_rules! num {
        ($ty:ty) => {{
            let v = <$ty>::from_le_bytes(c.array(what)?);
            if keep { Value::from(v) } else { Value::Null }
        }};
    }
    Ok(match t {
        VType::U8 => num!(u8),
        VType::I8 => num!(i8),
        VType::U16 => num!(u16),
        VType::I16 => num!(i16),
        VType::U32 => num!(u32),
        VType::I32 => num!(i32),
        VType::U64 => num!(u64),
        VType::I64 => num!(i64),
        VType::F32 => {
            let v = f32::from_le_bytes(c.array(what)?);
            // The shortest decimal that round-trips the f32, so 1e-5 reads as 1e-5.
            let shortest = format!("{v}").parse::<f64>().unwrap_or(v as f64);
            float_json(if v.is_finite() { shortest } else { v as f64 })
        }
        VType::F64 => float_json(f64::from_le_bytes(c.array(what)?)),
        VType::Bool => Value::from(c.array::<1>(what)?[0] != 0),
        VType::Str => {
            let s = c.string(what)?;
            if keep {
                Value::from(String::from_utf8_lossy(s).into_owned())
            } else {
                Value::Null
            }
        }
        VType::Array => {
            if depth >= GGUF_MAX_DEPTH {
                return Err(ErrorKind::InvalidHeader(format!(
                    "{} nests arrays more than {GGUF_MAX_DEPTH} deep",
                    what()
                )));
            }
            let id = c.u32(&|| format!("element type of {}", what()))?;
            let et = VType::from_id(id).ok_or_else(|| {
                ErrorKind::InvalidHeader(format!(
                    "{} has unknown element type id {id} (GGUF value types are 0 to 12)",
                    what()
                ))
            })?;
            let len = c.u64(&|| format!("length of {}", what()))?;
            c.fits(len, et.min_size(), what)?;
            let expand = keep && len <= GGUF_MAX_ARRAY_LEN as u64 && len as usize <= *budget;
            if expand {
                *budget -= len as usize;
                let mut items = Vec::with_capacity(len as usize);
                for _ in 0..len {
                    items.push(read_value(c, et, depth + 1, budget, true, what)?);
                }
                Value::Array(items)
            } else {
                match et.fixed_size() {
                    // len * size fits in the file: checked by `fits`.
                    Some(size) => {
                        c.take(len * size, what)?;
                    }
                    None => {
                        for _ in 0..len {
                            read_value(c, et, depth + 1, budget, false, what)?;
                        }
                    }
                }
                let mut m = Map::new();
                m.insert("array_of".into(), Value::from(et.name()));
                m.insert("len".into(), Value::from(len));
                Value::Object(m)
            }
        }
    })
}

/// Reads a GGUF file held in `buf`.
pub(crate) fn open(path: &Path, buf: Arc<Buf>) -> Result<Parsed> {
    let err = |kind| Error::new(path, kind);
    let b: &[u8] = &buf;
    if b.len() < 24 {
        return Err(err(ErrorKind::Truncated(format!(
            "a GGUF header takes 24 bytes (magic, version, tensor and key/value counts), the file \
             has {}",
            b.len()
        ))));
    }
    if &b[..4] != b"GGUF" {
        return Err(err(ErrorKind::InvalidHeader(
            "the file does not start with the GGUF magic".into(),
        )));
    }
    let version = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    match version {
        2 | 3 => {}
        1 => {
            return Err(err(ErrorKind::Unsupported(
                "GGUF version 1 (2023, 32-bit counts): only versions 2 and 3 are read; \
                 convert the file with a current llama.cpp"
                    .into(),
            )));
        }
        v if v.swap_bytes() == 2 || v.swap_bytes() == 3 => {
            return Err(err(ErrorKind::Unsupported(format!(
                "big-endian GGUF (version {}): only little-endian files are read",
                v.swap_bytes()
            ))));
        }
        v => {
            return Err(err(ErrorKind::Unsupported(format!(
                "unknown GGUF version {v}: only versions 2 and 3 are read"
            ))));
        }
    }
    let mut c = Cursor { b, pos: 8 };
    let n_tensors = c.u64(&|| "tensor count".into()).map_err(err)?;
    let n_kv = c.u64(&|| "key/value count".into()).map_err(err)?;
    if n_tensors > MAX_TENSORS {
        return Err(err(ErrorKind::InvalidHeader(format!(
            "the header announces {n_tensors} tensors, more than the limit of {MAX_TENSORS}"
        ))));
    }
    if n_kv > MAX_KV {
        return Err(err(ErrorKind::InvalidHeader(format!(
            "the header announces {n_kv} key/values, more than the limit of {MAX_KV}"
        ))));
    }
    let need = n_kv * MIN_KV_BYTES + n_tensors * MIN_TENSOR_INFO_BYTES; // both capped above
    if need > c.left() {
        return Err(err(ErrorKind::Truncated(format!(
            "the header announces {n_kv} key/values and {n_tensors} tensors, which take at least \
             {need} bytes, but only {} bytes follow",
            c.left()
        ))));
    }

    // Key/values.
    let mut metadata: BTreeMap<String, Value> = BTreeMap::new();
    let mut budget = GGUF_MAX_KEPT_ELEMENTS;
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..n_kv {
        let key = c.string(&|| format!("metadata key #{i}")).map_err(err)?;
        let key = std::str::from_utf8(key).map_err(|_| {
            err(ErrorKind::InvalidHeader(format!(
                "metadata key #{i} is not UTF-8"
            )))
        })?;
        let what = || format!("metadata value `{key}`");
        let id = c.u32(&|| format!("value type of `{key}`")).map_err(err)?;
        let t = VType::from_id(id).ok_or_else(|| {
            err(ErrorKind::InvalidHeader(format!(
                "metadata `{key}` has unknown value type id {id} (GGUF value types are 0 to 12)"
            )))
        })?;
        let value = read_value(&mut c, t, 0, &mut budget, true, &what).map_err(err)?;
        if key == "general.alignment" {
            if t != VType::U32 {
                return Err(err(ErrorKind::InvalidHeader(format!(
                    "`general.alignment` must be a uint32, it is a {}",
                    t.name()
                ))));
            }
            let a = value.as_u64().unwrap_or(0);
            if !a.is_power_of_two() {
                return Err(err(ErrorKind::InvalidHeader(format!(
                    "`general.alignment` is {a}, not a power of two"
                ))));
            }
            alignment = a;
        }
        if metadata.insert(key.to_owned(), value).is_some() {
            return Err(err(ErrorKind::InvalidHeader(format!(
                "metadata key `{key}` appears more than once"
            ))));
        }
    }

    // Tensor infos.
    struct Info {
        name: String,
        dims: Vec<u64>,
        dtype: DType,
        offset: u64,
    }
    let mut infos: Vec<Info> = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = c.string(&|| format!("name of tensor #{i}")).map_err(err)?;
        let name = std::str::from_utf8(name)
            .map_err(|_| {
                err(ErrorKind::InvalidHeader(format!(
                    "the name of tensor #{i} is not UTF-8"
                )))
            })?
            .to_owned();
        let terr = |kind| err(kind).with_tensor(&name);
        let n_dims = c.u32(&|| "dimension count".into()).map_err(terr)?;
        if n_dims > MAX_DIMS {
            return Err(terr(ErrorKind::InvalidHeader(format!(
                "{n_dims} dimensions, more than ggml's {MAX_DIMS}"
            ))));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            dims.push(c.u64(&|| format!("dimension {d}")).map_err(terr)?);
        }
        let type_id = c.u32(&|| "ggml type".into()).map_err(terr)?;
        let dtype = ggml_type(type_id).map_err(terr)?;
        let offset = c.u64(&|| "data offset".into()).map_err(terr)?;
        infos.push(Info {
            name,
            dims,
            dtype,
            offset,
        });
    }

    // The data section starts at the next multiple of the alignment.
    let header_end = c.pos as u64;
    let data_start = header_end.div_ceil(alignment).saturating_mul(alignment);
    let available = (b.len() as u64).saturating_sub(data_start);

    let mut entries = Vec::with_capacity(infos.len());
    for info in infos {
        let terr = |kind| err(kind).with_tensor(&info.name);
        // Row-major shape: GGUF lists dimensions fastest-first.
        let shape: Vec<usize> = info
            .dims
            .iter()
            .rev()
            .map(|&d| usize::try_from(d).unwrap_or(usize::MAX))
            .collect();
        let numel = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| {
                terr(ErrorKind::InvalidHeader(format!(
                    "dimensions {:?} overflow the element count",
                    info.dims
                )))
            })?;
        let bs = info.dtype.block_size();
        let row = info.dims.first().copied().unwrap_or(1);
        if row % bs as u64 != 0 {
            return Err(terr(ErrorKind::InvalidHeader(format!(
                "rows of {row} elements are not a whole number of {} blocks of {bs}",
                info.dtype
            ))));
        }
        let nbytes = info.dtype.storage_bytes(numel).ok_or_else(|| {
            terr(ErrorKind::InvalidHeader(format!(
                "shape {shape:?} is not a valid size for {}",
                info.dtype
            )))
        })? as u64;
        if info.offset % alignment != 0 {
            return Err(terr(ErrorKind::InvalidHeader(format!(
                "data offset {} is not a multiple of the alignment {alignment}",
                info.offset
            ))));
        }
        let end = info.offset.checked_add(nbytes);
        if end.is_none_or(|e| e > available) {
            return Err(terr(ErrorKind::OffsetOutOfBounds {
                start: info.offset,
                end: end.unwrap_or(u64::MAX),
                available,
            }));
        }
        // In bounds of the file, so it fits in usize. An empty tensor may sit at the end of a
        // file whose data section (padding included) is absent: point it at the file's end.
        let start = (data_start + info.offset).min(b.len() as u64) as usize;
        entries.push(Entry {
            info: TensorInfo {
                name: info.name,
                dtype: info.dtype,
                shape,
            },
            data: Data::Slice {
                buf: Arc::clone(&buf),
                start,
                len: nbytes as usize,
            },
        });
    }

    for (k, v) in [
        ("GGUF.version", u64::from(version)),
        ("GGUF.tensor_count", n_tensors),
        ("GGUF.kv_count", n_kv),
    ] {
        metadata.entry(k.to_owned()).or_insert(Value::from(v));
    }
    Ok(Parsed {
        format: Format::Gguf,
        entries,
        metadata,
        aliases: Default::default(),
        top_keys: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ggml_type_ids() {
        // Every supported id maps to a dtype with ggml's block geometry; every other id is an
        // UnsupportedDType that names it.
        let supported = [
            (0, DType::F32),
            (1, DType::F16),
            (2, DType::Q4_0),
            (3, DType::Q4_1),
            (6, DType::Q5_0),
            (7, DType::Q5_1),
            (8, DType::Q8_0),
            (9, DType::Q8_1),
            (10, DType::Q2_K),
            (11, DType::Q3_K),
            (12, DType::Q4_K),
            (13, DType::Q5_K),
            (14, DType::Q6_K),
            (15, DType::Q8_K),
            (16, DType::IQ2_XXS),
            (17, DType::IQ2_XS),
            (18, DType::IQ3_XXS),
            (19, DType::IQ1_S),
            (20, DType::IQ4_NL),
            (21, DType::IQ3_S),
            (22, DType::IQ2_S),
            (23, DType::IQ4_XS),
            (24, DType::I8),
            (25, DType::I16),
            (26, DType::I32),
            (27, DType::I64),
            (28, DType::F64),
            (29, DType::IQ1_M),
            (30, DType::BF16),
            (34, DType::TQ1_0),
            (35, DType::TQ2_0),
            (39, DType::MXFP4),
            (40, DType::NVFP4),
            (41, DType::Q1_0),
        ];
        // Retired ids are refused by name.
        for (id, name) in [
            (4, "Q4_2"),
            (5, "Q4_3"),
            (31, "Q4_0_4_4"),
            (32, "Q4_0_4_8"),
            (33, "Q4_0_8_8"),
            (36, "IQ4_NL_4_4"),
            (37, "IQ4_NL_4_8"),
            (38, "IQ4_NL_8_8"),
        ] {
            match ggml_type(id) {
                Err(ErrorKind::UnsupportedDType(s)) => {
                    assert!(s.contains(name) && s.contains("removed"), "{id}: {s}")
                }
                r => panic!("id {id}: {r:?}"),
            }
        }
        for id in 0..100u32 {
            match (ggml_type(id), supported.iter().find(|(i, _)| *i == id)) {
                (Ok(d), Some((_, want))) => assert_eq!(d, *want),
                (Err(ErrorKind::UnsupportedDType(s)), None) => {
                    assert!(s.contains(&id.to_string()), "{id}: {s}")
                }
                (r, w) => panic!("id {id}: {r:?} vs {w:?}"),
            }
        }
        assert!(matches!(
            ggml_type(u32::MAX),
            Err(ErrorKind::UnsupportedDType(_))
        )); // Every block-quantised dtype is a ggml type.
        for d in DType::ALL.into_iter().filter(|d| d.is_quantized()) {
            assert!(supported.iter().any(|(_, s)| *s == d), "{d} has no ggml id");
        }
    }

    #[test]
    fn value_types() {
        for id in 0..13 {
            let t = VType::from_id(id).unwrap();
            assert!(t.min_size() >= 1);
            assert_eq!(
                t.fixed_size().is_none(),
                matches!(t, VType::Str | VType::Array)
            );
        }
        assert_eq!(VType::from_id(13), None);
    }

    #[test]
    fn floats_as_json() {
        assert_eq!(float_json(f64::NAN), Value::from("NaN"));
        assert_eq!(float_json(f64::INFINITY), Value::from("inf"));
        assert_eq!(float_json(-0.5), Value::from(-0.5));
    }
}
