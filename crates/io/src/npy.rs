//! NumPy `.npy` arrays and `.npz` archives of them.
//!
//! An `.npy` file is the magic `\x93NUMPY`, a format version (1.0, 2.0 or 3.0), the header
//! length (`u16` for 1.0, `u32` otherwise), a header that is a Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }`, then the array's bytes.
//! The header is parsed by a small literal parser that understands strings, integers, booleans,
//! `None`, tuples, lists and dicts: nothing is ever evaluated.
//!
//! Little-endian C-order data is handed out as a zero-copy slice of the memory map (or of a
//! stored `.npz` entry); big-endian data is byte-swapped and Fortran-order data transposed to C
//! order on access. Object arrays (which need pickle), structured, void, complex, string and
//! datetime dtypes are refused with an error naming the array.
//!
//! An `.npz` is a zip archive of `.npy` files, stored (`np.savez`) or deflated
//! (`np.savez_compressed`); each array is named after its entry, without `.npy`.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::checkpoint::{Format, Parsed};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::{Buf, Data, Entry, TensorInfo};
use crate::zipfs::ZipEntry;

/// The magic string every `.npy` file starts with.
const MAGIC: &[u8] = b"\x93NUMPY";

/// Largest header we accept. numpy itself refuses headers over 10 000 bytes unless asked to
/// trust the file; plain dtypes need under 200.
pub(crate) const MAX_NPY_HEADER: usize = 1 << 16;

/// Most dimensions numpy allows.
const MAX_NDIM: usize = 64;

/// Nesting limit of the header literal parser.
const MAX_DEPTH: usize = 16;

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// Format version (major, minor).
    pub version: (u8, u8),
    /// Element type.
    pub dtype: DType,
    /// True when the stored bytes are big-endian (and need swapping).
    pub big_endian: bool,
    /// True when the data is stored in Fortran (column-major) order.
    pub fortran_order: bool,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Offset of the first data byte from the start of the `.npy` content.
    pub data_start: usize,
}

/// Reads a single `.npy` array, named after the file stem.
pub(crate) fn open_npy(path: &Path, buf: Arc<Buf>) -> Result<Parsed> {
    let name = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "array".to_string());
    let header = parse_header(&buf).map_err(|k| Error::new(path, k).with_tensor(&name))?;
    let available = buf.len() - header.data_start;
    let expected = check_size(path, &name, &header, available)?;
    let raw = Data::Slice {
        buf,
        start: header.data_start,
        len: expected,
    };
    let mut metadata = BTreeMap::new();
    metadata.insert(
        "npy_version".to_string(),
        Value::from(format!("{}.{}", header.version.0, header.version.1)),
    );
    let entry = make_entry(path, name, &header, raw);
    Ok(Parsed {
        format: Format::Npy,
        entries: vec![entry],
        metadata,
        aliases: Default::default(),
        top_keys: Vec::new(),
    })
}

/// Reads an `.npz` archive whose entries all end in `.npy`.
pub(crate) fn open_npz(path: &Path, buf: Arc<Buf>, entries: Vec<ZipEntry>) -> Result<Parsed> {
    let mut out = Vec::with_capacity(entries.len());
    for ze in &entries {
        let name = ze.name.strip_suffix(".npy").unwrap_or(&ze.name).to_string();
        let terr = |k| Error::new(path, k).with_tensor(&name);
        // Deflate expands at most ~1032:1; a larger claim is a lie that would make us reserve
        // memory for nothing.
        if ze.deflated && ze.size / 1032 > ze.compressed.saturating_add(64) {
            return Err(terr(ErrorKind::Zip(format!(
                "entry `{}` claims {} bytes inflated from {} compressed bytes, more than deflate can produce",
                ze.name, ze.size, ze.compressed
            ))));
        }
        // Read the fixed part first, then exactly the announced header (capped).
        let head = ze.read_prefix(path, &buf, 12)?;
        let total = header_total_len(&head).map_err(terr)?;
        let head = ze.read_prefix(path, &buf, total)?;
        let header = parse_header(&head).map_err(terr)?;
        let available = ze.size - header.data_start;
        let expected = check_size(path, &name, &header, available)?;
        let raw = ze.data(path, &buf, header.data_start, expected)?;
        out.push(make_entry(path, name, &header, raw));
    }
    Ok(Parsed {
        format: Format::Npz,
        entries: out,
        metadata: BTreeMap::new(),
        aliases: Default::default(),
        top_keys: Vec::new(),
    })
}

/// Checks that `available` data bytes hold exactly the array the header describes; returns its
/// byte size.
fn check_size(path: &Path, name: &str, h: &Header, available: usize) -> Result<usize> {
    let err = |k| Error::new(path, k).with_tensor(name);
    let numel = h.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    let expected = numel.and_then(|n| h.dtype.storage_bytes(n));
    let Some(expected) = expected else {
        return Err(err(ErrorKind::InvalidHeader(format!(
            "shape {:?} of dtype {} overflows the address space",
            h.shape, h.dtype
        ))));
    };
    if available < expected {
        return Err(err(ErrorKind::Truncated(format!(
            "shape {:?} of dtype {} needs {expected} data bytes, only {available} follow the header",
            h.shape, h.dtype
        ))));
    }
    if available > expected {
        return Err(err(ErrorKind::SizeMismatch {
            bytes: available as u64,
            expected: expected as u64,
            shape: h.shape.clone(),
            dtype: h.dtype.name().into(),
        }));
    }
    Ok(expected)
}

/// Builds the entry: the raw data itself when it is little-endian C order, otherwise a producer
/// that swaps bytes and/or transposes.
fn make_entry(path: &Path, name: String, h: &Header, raw: Data) -> Entry {
    let esize = h.dtype.size().unwrap_or(1);
    let swap = h.big_endian && esize > 1;
    // A Fortran-order array with at most one dimension longer than 1 is also in C order.
    let transpose = h.fortran_order && h.shape.iter().filter(|&&d| d > 1).count() > 1;
    let info = TensorInfo {
        name,
        dtype: h.dtype,
        shape: h.shape.clone(),
    };
    if !swap && !transpose {
        return Entry { info, data: raw };
    }
    let shape = h.shape.clone();
    let path = path.to_path_buf();
    let producer = move || -> Result<Vec<u8>> {
        let bytes: Cow<'_, [u8]> = match &raw {
            Data::Slice { buf, start, len } => Cow::Borrowed(&buf[*start..*start + *len]),
            Data::Lazy(f) => Cow::Owned(f()?),
            Data::Strided { .. } => {
                return Err(Error::new(
                    &path,
                    ErrorKind::Invalid("strided npy data".into()),
                ));
            }
        };
        let mut v = if transpose {
            fortran_to_c(&bytes, esize, &shape)
        } else {
            bytes.into_owned()
        };
        if swap {
            for c in v.chunks_exact_mut(esize) {
                c.reverse();
            }
        }
        Ok(v)
    };
    Entry {
        info,
        data: Data::Lazy(Arc::new(producer)),
    }
}

/// Reorders column-major `src` (elements of `esize` bytes, logical `shape`) into row-major order.
/// `src.len()` equals the product of `shape` times `esize` (checked by the caller).
pub(crate) fn fortran_to_c(src: &[u8], esize: usize, shape: &[usize]) -> Vec<u8> {
    let numel: usize = shape.iter().product();
    let mut out = Vec::with_capacity(src.len());
    if numel == 0 {
        return out;
    }
    let nd = shape.len();
    // Column-major strides, in elements: the first index varies fastest.
    let mut strides = vec![1usize; nd];
    for d in 1..nd {
        strides[d] = strides[d - 1] * shape[d - 1];
    }
    let mut idx = vec![0usize; nd];
    let mut lin = 0usize;
    loop {
        out.extend_from_slice(&src[lin * esize..(lin + 1) * esize]);
        // Advance the row-major multi-index (last index fastest), keeping `lin` in step.
        let mut d = nd;
        loop {
            if d == 0 {
                return out;
            }
            d -= 1;
            idx[d] += 1;
            lin += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            lin -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

/// From the first bytes of an `.npy` (at least 12, or the whole content if shorter): the length
/// of magic + version + length field + header, i.e. where the data starts.
fn header_total_len(head: &[u8]) -> Result<usize, ErrorKind> {
    if head.len() < MAGIC.len() && MAGIC.starts_with(head) {
        return Err(ErrorKind::Truncated(
            "the file ends inside the .npy magic".into(),
        ));
    }
    if head.len() < MAGIC.len() || &head[..MAGIC.len()] != MAGIC {
        return Err(ErrorKind::InvalidHeader(
            "does not start with the .npy magic \\x93NUMPY".into(),
        ));
    }
    if head.len() < 10 {
        return Err(ErrorKind::Truncated(
            "the file ends inside the .npy preamble".into(),
        ));
    }
    let (major, minor) = (head[6], head[7]);
    let (fixed, len) = match major {
        1 => (10, u16::from_le_bytes([head[8], head[9]]) as usize),
        2 | 3 => {
            if head.len() < 12 {
                return Err(ErrorKind::Truncated(
                    "the file ends inside the .npy preamble".into(),
                ));
            }
            (
                12,
                u32::from_le_bytes(head[8..12].try_into().unwrap()) as usize,
            )
        }
        _ => {
            return Err(ErrorKind::Unsupported(format!(
                ".npy format version {major}.{minor} (1.0, 2.0 and 3.0 are supported)"
            )));
        }
    };
    if len > MAX_NPY_HEADER {
        return Err(ErrorKind::HeaderTooLarge {
            len: len as u64,
            limit: MAX_NPY_HEADER as u64,
        });
    }
    Ok(fixed + len)
}

/// Parses the preamble and header dict of an `.npy` held at the start of `b`.
pub(crate) fn parse_header(b: &[u8]) -> Result<Header, ErrorKind> {
    let total = header_total_len(b)?;
    let (major, minor) = (b[6], b[7]);
    let fixed = if major == 1 { 10 } else { 12 };
    if total > b.len() {
        return Err(ErrorKind::Truncated(format!(
            "the .npy header announces {} bytes but only {} follow",
            total - fixed,
            b.len() - fixed
        )));
    }
    let raw = &b[fixed..total];
    // Versions 1 and 2 are latin-1, version 3 UTF-8; the header of a plain array is ASCII.
    let text: Cow<'_, str> =
        if major == 3 {
            Cow::Borrowed(std::str::from_utf8(raw).map_err(|e| {
                ErrorKind::InvalidHeader(format!("version 3 header is not UTF-8: {e}"))
            })?)
        } else {
            Cow::Owned(raw.iter().map(|&c| c as char).collect())
        };
    let lit = Parser::new(&text).parse_all()?;
    let Lit::Dict(items) = lit else {
        return Err(ErrorKind::InvalidHeader(
            "the .npy header is not a dict".into(),
        ));
    };
    let get = |key: &str| {
        items
            .iter()
            .find(|(k, _)| matches!(k, Lit::Str(s) if s == key))
            .map(|(_, v)| v)
    };
    let missing = |k: &str| ErrorKind::InvalidHeader(format!("the .npy header has no `{k}` key"));
    for (k, _) in &items {
        match k {
            Lit::Str(s) if s == "descr" || s == "fortran_order" || s == "shape" => {}
            other => {
                return Err(ErrorKind::InvalidHeader(format!(
                    "unexpected key {} in the .npy header",
                    other.show()
                )));
            }
        }
    }
    let (dtype, big_endian) = match get("descr").ok_or_else(|| missing("descr"))? {
        Lit::Str(s) => parse_descr(s)?,
        Lit::List(_) | Lit::Tuple(_) => {
            return Err(ErrorKind::UnsupportedDType(
                "numpy structured (record) array: only plain numeric arrays are read".into(),
            ));
        }
        other => {
            return Err(ErrorKind::InvalidHeader(format!(
                "`descr` is {}, not a string",
                other.show()
            )));
        }
    };
    let fortran_order = match get("fortran_order").ok_or_else(|| missing("fortran_order"))? {
        Lit::Bool(b) => *b,
        other => {
            return Err(ErrorKind::InvalidHeader(format!(
                "`fortran_order` is {}, not True or False",
                other.show()
            )));
        }
    };
    let shape = match get("shape").ok_or_else(|| missing("shape"))? {
        Lit::Tuple(dims) => {
            if dims.len() > MAX_NDIM {
                return Err(ErrorKind::InvalidHeader(format!(
                    "{} dimensions (numpy allows at most {MAX_NDIM})",
                    dims.len()
                )));
            }
            dims.iter()
                .map(|d| match d {
                    Lit::Int(i) => usize::try_from(*i).map_err(|_| {
                        ErrorKind::InvalidHeader(format!("dimension {i} is too large"))
                    }),
                    other => Err(ErrorKind::InvalidHeader(format!(
                        "`shape` holds {}, not a non-negative integer",
                        other.show()
                    ))),
                })
                .collect::<Result<Vec<usize>, _>>()?
        }
        other => {
            return Err(ErrorKind::InvalidHeader(format!(
                "`shape` is {}, not a tuple",
                other.show()
            )));
        }
    };
    Ok(Header {
        version: (major, minor),
        dtype,
        big_endian,
        fortran_order,
        shape,
        data_start: total,
    })
}

/// Maps a numpy type string (`'<f4'`, `'|b1'`, `'>i8'`, ...) to our dtype and whether its bytes
/// are big-endian.
fn parse_descr(s: &str) -> Result<(DType, bool), ErrorKind> {
    let (order, code) = match s.as_bytes().first() {
        Some(b'<' | b'>' | b'|' | b'=') => (s.as_bytes()[0], &s[1..]),
        _ => (b'=', s),
    };
    let big = match order {
        b'>' => true,
        b'=' => cfg!(target_endian = "big"),
        _ => false,
    };
    let dtype = match code {
        "b1" | "?" => DType::Bool,
        "i1" | "b" => DType::I8,
        "u1" | "B" => DType::U8,
        "i2" => DType::I16,
        "u2" => DType::U16,
        "i4" => DType::I32,
        "u4" => DType::U32,
        "i8" => DType::I64,
        "u8" => DType::U64,
        "f2" | "e" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        _ => {
            let why = match code.as_bytes().first() {
                Some(b'O') => "object arrays hold Python objects and need pickle, which is refused",
                Some(b'V') => {
                    "raw void bytes (how bfloat16 and other ml_dtypes arrays are saved; convert to a numpy float type first)"
                }
                Some(b'c') => "complex numbers are not supported",
                Some(b'U' | b'S' | b'a') => "string arrays are not weights",
                Some(b'M' | b'm') => "datetime arrays are not weights",
                Some(b'f') => "floating-point width not supported",
                _ => "unknown numpy type string",
            };
            return Err(ErrorKind::UnsupportedDType(format!("numpy `{s}`: {why}")));
        }
    };
    Ok((dtype, big))
}

/// A Python literal as it appears in an `.npy` header.
#[derive(Debug, Clone, PartialEq)]
enum Lit {
    Str(String),
    Int(u64),
    Bool(bool),
    None,
    Tuple(Vec<Lit>),
    List(Vec<Lit>),
    Dict(Vec<(Lit, Lit)>),
}

impl Lit {
    /// A short description for error messages.
    fn show(&self) -> String {
        match self {
            Lit::Str(s) => format!("{s:?}"),
            Lit::Int(i) => i.to_string(),
            Lit::Bool(b) => if *b { "True" } else { "False" }.into(),
            Lit::None => "None".into(),
            Lit::Tuple(_) => "a tuple".into(),
            Lit::List(_) => "a list".into(),
            Lit::Dict(_) => "a dict".into(),
        }
    }
}

/// A recursive-descent parser for the literal subset numpy writes. It never evaluates anything.
struct Parser<'a> {
    s: &'a [u8],
    text: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Self {
        Parser {
            s: text.as_bytes(),
            text,
            pos: 0,
        }
    }

    fn err(&self, what: &str) -> ErrorKind {
        ErrorKind::InvalidHeader(format!(
            "cannot parse the .npy header at byte {}: {what}",
            self.pos
        ))
    }

    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_ws();
        self.s.get(self.pos).copied()
    }

    /// Parses one literal followed by nothing but whitespace.
    fn parse_all(&mut self) -> Result<Lit, ErrorKind> {
        let v = self.value(0)?;
        if self.peek().is_some() {
            return Err(self.err("unexpected text after the dict"));
        }
        Ok(v)
    }

    fn value(&mut self, depth: usize) -> Result<Lit, ErrorKind> {
        if depth > MAX_DEPTH {
            return Err(self.err("literal nested too deeply"));
        }
        match self.peek() {
            None => Err(self.err("unexpected end")),
            Some(b'\'' | b'"') => self.string().map(Lit::Str),
            Some(b'(') => self.seq(b')', depth).map(|(v, _)| Lit::Tuple(v)),
            Some(b'[') => self.seq(b']', depth).map(|(v, _)| Lit::List(v)),
            Some(b'{') => self.dict(depth),
            Some(c) if c.is_ascii_digit() => self.int(),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.pos;
                while self.pos < self.s.len()
                    && (self.s[self.pos].is_ascii_alphanumeric() || self.s[self.pos] == b'_')
                {
                    self.pos += 1;
                }
                match &self.text[start..self.pos] {
                    "True" => Ok(Lit::Bool(true)),
                    "False" => Ok(Lit::Bool(false)),
                    "None" => Ok(Lit::None),
                    w => {
                        self.pos = start;
                        Err(self.err(&format!("`{w}` is not a literal")))
                    }
                }
            }
            Some(_) => Err(self.err("unexpected character")),
        }
    }

    fn int(&mut self) -> Result<Lit, ErrorKind> {
        let start = self.pos;
        let mut v: u64 = 0;
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_digit() {
            let d = (self.s[self.pos] - b'0') as u64;
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(d))
                .ok_or_else(|| self.err("integer too large"))?;
            self.pos += 1;
        }
        if self.pos == start {
            return Err(self.err("expected an integer"));
        }
        // Python 2 wrote long integers with an `L` suffix.
        if self.s.get(self.pos) == Some(&b'L') {
            self.pos += 1;
        }
        Ok(Lit::Int(v))
    }

    fn string(&mut self) -> Result<String, ErrorKind> {
        let q = self.s[self.pos];
        self.pos += 1;
        let mut out = String::new();
        loop {
            let rest = &self.text[self.pos..];
            let Some(c) = rest.chars().next() else {
                return Err(self.err("unterminated string"));
            };
            self.pos += c.len_utf8();
            match c {
                _ if c as u32 == q as u32 => return Ok(out),
                '\\' => {
                    let Some(e) = self.text[self.pos..].chars().next() else {
                        return Err(self.err("unterminated string"));
                    };
                    self.pos += e.len_utf8();
                    out.push(match e {
                        'n' => '\n',
                        't' => '\t',
                        'r' => '\r',
                        '0' => '\0',
                        '\\' | '\'' | '"' => e,
                        _ => return Err(self.err("unsupported escape in string")),
                    });
                }
                _ => out.push(c),
            }
        }
    }

    /// A tuple or list up to `close`; returns the items and whether a trailing comma was seen.
    fn seq(&mut self, close: u8, depth: usize) -> Result<(Vec<Lit>, bool), ErrorKind> {
        self.pos += 1;
        let mut items = Vec::new();
        let mut trailing = false;
        loop {
            if self.peek() == Some(close) {
                self.pos += 1;
                return Ok((items, trailing));
            }
            if items.len() > 4 * MAX_NDIM {
                return Err(self.err("sequence too long"));
            }
            items.push(self.value(depth + 1)?);
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    trailing = true;
                }
                Some(c) if c == close => trailing = false,
                _ => return Err(self.err("expected `,` or the end of the sequence")),
            }
        }
    }

    fn dict(&mut self, depth: usize) -> Result<Lit, ErrorKind> {
        self.pos += 1;
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.pos += 1;
                return Ok(Lit::Dict(items));
            }
            if items.len() > 64 {
                return Err(self.err("dict too long"));
            }
            let k = self.value(depth + 1)?;
            if self.peek() != Some(b':') {
                return Err(self.err("expected `:` after a dict key"));
            }
            self.pos += 1;
            let v = self.value(depth + 1)?;
            items.push((k, v));
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {}
                _ => return Err(self.err("expected `,` or `}` in the dict")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[1, 0]);
        v.extend_from_slice(&(header.len() as u16).to_le_bytes());
        v.extend_from_slice(header.as_bytes());
        v
    }

    #[test]
    fn parses_plain_headers() {
        let h = parse_header(&npy(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
        ))
        .unwrap();
        assert_eq!(h.dtype, DType::F32);
        assert_eq!(h.shape, vec![3, 4]);
        assert!(!h.fortran_order && !h.big_endian);
        let h = parse_header(&npy(
            "{\"shape\": (5L,), \"fortran_order\": True, \"descr\": \">i8\"}",
        ))
        .unwrap();
        assert_eq!(
            (h.dtype, h.big_endian, h.fortran_order),
            (DType::I64, true, true)
        );
        assert_eq!(h.shape, vec![5]);
        let h = parse_header(&npy(
            "{'descr': '=u2', 'fortran_order': False, 'shape': (2,)}",
        ))
        .unwrap();
        assert_eq!(
            (h.dtype, h.big_endian),
            (DType::U16, cfg!(target_endian = "big"))
        );
        let h = parse_header(&npy("{'descr':'|b1','fortran_order':False,'shape':()}")).unwrap();
        assert_eq!((h.dtype, h.shape.len()), (DType::Bool, 0));
    }

    #[test]
    fn refuses_bad_headers() {
        for (h, want) in [
            ("{'descr': '<f4', 'fortran_order': False}", "no `shape`"),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}",
                "not True",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                "unexpected",
            ),
            (
                "{'descr': os.system('x'), 'fortran_order': False, 'shape': ()}",
                "not a literal",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}",
                "unexpected key",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (1,) } junk",
                "after the dict",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                "too large",
            ),
            (
                "((((((((((((((((((((((((((((()))))))))))))))))))))))))))))",
                "deeply",
            ),
            ("{'descr': '<f4", "unterminated"),
        ] {
            let e = parse_header(&npy(h)).unwrap_err().to_string();
            assert!(e.contains(want), "{h}: {e}");
        }
        for (d, want) in [
            ("|O", "pickle"),
            ("|V2", "void"),
            ("<c8", "complex"),
            ("<U3", "string"),
        ] {
            let h = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': (1,)}}");
            match parse_header(&npy(&h)).unwrap_err() {
                ErrorKind::UnsupportedDType(m) => assert!(m.contains(want), "{m}"),
                e => panic!("{d}: {e}"),
            }
        }
    }

    #[test]
    fn transposes_fortran_order() {
        // A 2x3 matrix [[0,1,2],[3,4,5]] stored column-major is 0,3,1,4,2,5.
        let f = [0u8, 3, 1, 4, 2, 5];
        assert_eq!(fortran_to_c(&f, 1, &[2, 3]), vec![0, 1, 2, 3, 4, 5]);
        // 3-D, 2-byte elements: compare with the strided formula.
        let shape = [2usize, 3, 4];
        let src: Vec<u8> = (0..24u16).flat_map(|v| v.to_le_bytes()).collect();
        let out = fortran_to_c(&src, 2, &shape);
        let mut k = 0;
        for i in 0..2 {
            for j in 0..3 {
                for l in 0..4 {
                    let lin = (i + 2 * j + 6 * l) as u16;
                    assert_eq!(u16::from_le_bytes([out[k], out[k + 1]]), lin);
                    k += 2;
                }
            }
        }
        assert!(fortran_to_c(&[], 4, &[0, 3]).is_empty());
    }
}
