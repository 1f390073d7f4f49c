//! ONNX models: the weights a model file carries.
//!
//! A model is one protobuf `ModelProto`, decoded with `prost` from hand-written message structs
//! (see `proto.rs`; no build script, no `protoc`). The decoder works on a `Bytes` over the memory
//! map, so `raw_data` is never copied: those tensors are zero-copy slices of the map.
//!
//! Weights are found, in this order, per graph: its initializers, its sparse initializers
//! (densified on access), then its nodes in order — a `Constant` node yields its output name
//! with its `value` (or `value_float(s)` / `value_int(s)` / `sparse_value`) — and the subgraphs
//! held in a node's attributes (If branches, Loop and Scan bodies) are walked depth-first where
//! the node stands, nested at most [`MAX_GRAPH_DEPTH`] deep.
//!
//! Tensor data comes from `raw_data`, from the typed fields (`float_data`; `int32_data`, which
//! also carries f16/bf16/fp8 bit patterns, int8/uint8/int16/uint16 and bool; `int64_data`;
//! `double_data`; `uint64_data` for uint32/uint64), or from an external file
//! (`data_location = EXTERNAL`): the file named by `location`, relative to the model's folder
//! and never outside it, memory-mapped and sliced at `offset`/`length` after bounds checks.
//! Quantised weights (int8/uint8 tensors with separate scale and zero-point tensors) are
//! reported as stored.
//!
//! Tensors weightspace cannot hold (strings, complex numbers, 4-bit and 2-bit integers, FNUZ
//! fp8 variants, segmented tensors, string constants) are not errors: they are listed under the
//! metadata key `skipped` with the reason. A name seen twice (only in invalid models) is kept
//! under `name#2`, ... and listed under `renamed`.
//!
//! That is everything the file stores, which [`OpenOptions::all`] returns. By default `select.rs`
//! presents what the source model had instead: its weights only (no shape plumbing or scalar
//! constants), tensors the exporter left unnamed (`onnx::MatMul_N`) under their module's name and
//! layout, each with an [`crate::Alias`] giving the stored name.

mod proto;
mod select;

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use prost::bytes::Bytes;
use serde_json::{Value, json};

use crate::checkpoint::{Format, OpenOptions, Parsed};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::{Buf, Data, Entry, TensorInfo};

use proto::{GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto};

/// Deepest nesting of subgraphs (If inside Loop inside ...) that is walked.
pub(crate) const MAX_GRAPH_DEPTH: usize = 32;

/// Largest dense size, in bytes, a sparse initializer may expand to.
const MAX_SPARSE_DENSE_BYTES: usize = 1 << 31;

/// How much of a file [`sniff`] looks at (what `Checkpoint` reads to sniff a path).
const SNIFF_BYTES: usize = 64;

/// Highest `ir_version` the sniffer accepts (ONNX 1.19 writes 11; leave room for the future).
const MAX_IR_VERSION: u64 = 64;

/// True when `head` (the first bytes of a file) plausibly starts an ONNX `ModelProto`.
///
/// ONNX has no magic number. Serializers write `ir_version` (field 1, a small varint: byte
/// `0x08`) first; every following field within the first [`SNIFF_BYTES`] bytes must be a
/// `ModelProto` field with the right wire type (fields above 26, which a future ONNX may add,
/// need only a valid wire type), string fields that fit must be UTF-8, and at least one field
/// must follow `ir_version`.
pub(crate) fn sniff(head: &[u8]) -> bool {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    if head.first() != Some(&0x08) {
        return false;
    }
    let Some((ir, n)) = varint(&head[1..]) else {
        return false;
    };
    if !(1..=MAX_IR_VERSION).contains(&ir) {
        return false;
    }
    let mut pos = 1 + n;
    let mut fields = 1;
    while pos < head.len() {
        let Some((key, n)) = varint(&head[pos..]) else {
            break;
        };
        pos += n;
        let (field, wire) = (key >> 3, key & 7);
        let ok = match field {
            1 | 5 => wire == 0,
            2 | 3 | 4 | 6 | 7 | 8 | 14 | 20 | 25 | 26 => wire == 2,
            27.. => matches!(wire, 0 | 1 | 2 | 5),
            _ => false,
        };
        if !ok {
            return false;
        }
        fields += 1;
        if wire == 1 || wire == 5 {
            pos += if wire == 1 { 8 } else { 4 };
            continue;
        }
        let Some((v, n)) = varint(&head[pos..]) else {
            break;
        };
        pos += n;
        if wire == 2 {
            if v > i32::MAX as u64 {
                return false;
            }
            let end = pos.saturating_add(v as usize);
            if (2..=4).contains(&field)
                && end <= head.len()
                && std::str::from_utf8(&head[pos..end]).is_err()
            {
                return false;
            }
            pos = end;
        }
    }
    fields >= 2
}

/// Decodes a protobuf varint at the start of `b`: (value, bytes used), or `None` when `b` ends
/// first or the varint is longer than 10 bytes.
fn varint(b: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &byte) in b.iter().enumerate().take(10) {
        v |= ((byte & 0x7f) as u64) << (7 * i);
        if byte & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Lets a `Bytes` borrow the memory map without copying it.
struct Owner(Arc<Buf>);

impl AsRef<[u8]> for Owner {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Reads an ONNX model's weights: every stored tensor with `opts.all`, otherwise the weights
/// as [`select`] presents them.
pub(crate) fn open(path: &Path, buf: Arc<Buf>, opts: &OpenOptions) -> Result<Parsed> {
    let bytes = Bytes::from_owner(Owner(buf.clone()));
    let model = ModelProto::decode(bytes).map_err(|e| {
        let msg = e.to_string();
        Error::new(
            path,
            if msg.contains("underflow") {
                ErrorKind::Truncated(format!("the ONNX protobuf ends early ({msg})"))
            } else {
                ErrorKind::InvalidHeader(format!("not a valid ONNX model protobuf: {msg}"))
            },
        )
    })?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    let mut r = Reader {
        path,
        dir,
        dir_canonical: None,
        base: buf.as_ptr() as usize,
        buf,
        entries: Vec::new(),
        stored: Vec::new(),
        nodes: select::Nodes::default(),
        seen: HashMap::new(),
        skipped: Vec::new(),
        renamed: Vec::new(),
        external: HashMap::new(),
    };
    if let Some(g) = &model.graph {
        r.graph(g, 0)?;
    }

    let mut metadata = BTreeMap::new();
    metadata.insert("ir_version".into(), json!(model.ir_version));
    let mut text = |k: &str, v: &str| {
        if !v.is_empty() {
            metadata.insert(k.to_string(), json!(v));
        }
    };
    text("producer_name", &model.producer_name);
    text("producer_version", &model.producer_version);
    text("domain", &model.domain);
    text("doc_string", &model.doc_string);
    if let Some(g) = &model.graph {
        text("graph_name", &g.name);
    }
    if model.model_version != 0 {
        metadata.insert("model_version".into(), json!(model.model_version));
    }
    let opsets: serde_json::Map<String, Value> = model
        .opset_import
        .iter()
        .map(|o| {
            let d = if o.domain.is_empty() {
                "ai.onnx"
            } else {
                &o.domain
            };
            (d.to_string(), json!(o.version))
        })
        .collect();
    metadata.insert("opset_import".into(), Value::Object(opsets));
    if !model.metadata_props.is_empty() {
        let props: serde_json::Map<String, Value> = model
            .metadata_props
            .iter()
            .map(|p| (p.key.clone(), json!(p.value)))
            .collect();
        metadata.insert("metadata_props".into(), Value::Object(props));
    }
    if !r.skipped.is_empty() {
        metadata.insert("skipped".into(), Value::Array(r.skipped));
    }
    if !r.renamed.is_empty() {
        metadata.insert("renamed".into(), Value::Array(r.renamed));
    }
    let (entries, aliases) = if opts.all {
        (r.entries, BTreeMap::new())
    } else {
        select::weights(path, r.entries, &r.stored, &r.nodes, &mut metadata)
    };
    Ok(Parsed {
        format: Format::Onnx,
        entries,
        metadata,
        aliases,
        top_keys: Vec::new(),
    })
}

/// Maps an ONNX `TensorProto.DataType` to ours, or says why it cannot be held.
fn onnx_dtype(code: i32) -> std::result::Result<DType, &'static str> {
    Ok(match code {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        4 => DType::U16,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        9 => DType::Bool,
        10 => DType::F16,
        11 => DType::F64,
        12 => DType::U32,
        13 => DType::U64,
        16 => DType::BF16,
        17 => DType::F8_E4M3,
        19 => DType::F8_E5M2,
        0 => return Err("data type UNDEFINED"),
        8 => return Err("data type STRING is not a numeric weight"),
        14 | 15 => return Err("complex data types are not supported"),
        18 | 20 => return Err("FNUZ fp8 variants are not supported"),
        21 | 22 | 25 | 26 => return Err("sub-byte integer types (int4/int2) are not supported"),
        23 => return Err("FLOAT4E2M1 is not supported"),
        24 => return Err("FLOAT8E8M0 is not supported"),
        _ => return Err("unknown data type code"),
    })
}

/// Walks graphs and collects entries.
struct Reader<'a> {
    path: &'a Path,
    /// The model's folder, where external data must live.
    dir: PathBuf,
    /// `dir`, canonicalised on first use.
    dir_canonical: Option<PathBuf>,
    /// The model file's map and its address.
    buf: Arc<Buf>,
    base: usize,
    entries: Vec<Entry>,
    /// Each entry's name in the file (before `name#2` disambiguation).
    stored: Vec<String>,
    /// Every node of every graph, for [`select`].
    nodes: select::Nodes,
    /// How many times each name was used.
    seen: HashMap<String, usize>,
    skipped: Vec<Value>,
    renamed: Vec<Value>,
    /// External data files mapped so far.
    external: HashMap<PathBuf, Arc<Buf>>,
}

impl Reader<'_> {
    fn graph(&mut self, g: &GraphProto, depth: usize) -> Result<()> {
        if depth > MAX_GRAPH_DEPTH {
            return Err(Error::new(
                self.path,
                ErrorKind::InvalidHeader(format!(
                    "subgraphs are nested more than {MAX_GRAPH_DEPTH} levels deep"
                )),
            ));
        }
        for t in &g.initializer {
            let name = self.fallback_name(&t.name);
            if let Some((info, data)) = self.tensor(t, &name)? {
                self.push(info, data);
            }
        }
        for s in &g.sparse_initializer {
            let name = s.values.as_ref().map(|v| v.name.as_str()).unwrap_or("");
            let name = self.fallback_name(name);
            self.sparse(s, &name)?;
        }
        for node in &g.node {
            self.nodes.add(node);
            self.node(node)?;
            for a in &node.attribute {
                if let Some(sg) = &a.g {
                    self.graph(sg, depth + 1)?;
                }
                for sg in &a.graphs {
                    self.graph(sg, depth + 1)?;
                }
            }
        }
        Ok(())
    }

    fn fallback_name(&self, name: &str) -> String {
        if name.is_empty() {
            format!("unnamed_{}", self.entries.len())
        } else {
            name.to_string()
        }
    }

    /// Adds an entry, renaming it when its name is taken.
    fn push(&mut self, mut info: TensorInfo, data: Data) {
        self.stored.push(info.name.clone());
        let n = self.seen.entry(info.name.clone()).or_insert(0);
        *n += 1;
        if *n > 1 {
            let mut k = *n;
            let mut new = format!("{}#{k}", info.name);
            while self.seen.contains_key(&new) {
                k += 1;
                new = format!("{}#{k}", info.name);
            }
            self.seen.insert(new.clone(), 1);
            self.renamed.push(json!({"from": info.name, "to": new}));
            info.name = new;
        }
        self.entries.push(Entry { info, data });
    }

    fn skip(&mut self, name: &str, reason: impl Into<String>) {
        self.skipped
            .push(json!({"name": name, "reason": reason.into()}));
    }

    fn err(&self, name: &str, kind: ErrorKind) -> Error {
        Error::new(self.path, kind).with_tensor(name)
    }

    /// A `Constant` node's value (other nodes yield nothing).
    fn node(&mut self, node: &NodeProto) -> Result<()> {
        if node.op_type != "Constant" || !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Ok(());
        }
        let Some(out) = node.output.first().filter(|o| !o.is_empty()) else {
            return Ok(());
        };
        let out = out.clone();
        let Some(a) = node.attribute.first() else {
            self.skip(&out, "Constant node without a value attribute");
            return Ok(());
        };
        let owned = |dtype, shape, bytes: Vec<u8>| {
            (
                TensorInfo {
                    name: out.clone(),
                    dtype,
                    shape,
                },
                owned_data(bytes),
            )
        };
        let (info, data) = match a.name.as_str() {
            "value" => match &a.t {
                Some(t) => match self.tensor(t, &out)? {
                    Some(x) => x,
                    None => return Ok(()),
                },
                None => {
                    return Err(self.err(
                        &out,
                        ErrorKind::InvalidHeader(
                            "Constant `value` attribute holds no tensor".into(),
                        ),
                    ));
                }
            },
            "value_float" => owned(DType::F32, vec![], a.f.to_le_bytes().to_vec()),
            "value_floats" => owned(
                DType::F32,
                vec![a.floats.len()],
                a.floats.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            "value_int" => owned(DType::I64, vec![], a.i.to_le_bytes().to_vec()),
            "value_ints" => owned(
                DType::I64,
                vec![a.ints.len()],
                a.ints.iter().flat_map(|v| v.to_le_bytes()).collect(),
            ),
            "sparse_value" => {
                match &a.sparse_tensor {
                    Some(s) => self.sparse(s, &out)?,
                    None => self.skip(&out, "Constant `sparse_value` holds no sparse tensor"),
                }
                return Ok(());
            }
            other => {
                self.skip(&out, format!("Constant `{other}` is not a numeric weight"));
                return Ok(());
            }
        };
        self.push(info, data);
        Ok(())
    }

    /// Shape of a tensor from its dims, checking every dim is non-negative.
    fn shape(&self, dims: &[i64], name: &str) -> Result<Vec<usize>> {
        dims.iter()
            .map(|&d| usize::try_from(d))
            .collect::<std::result::Result<Vec<usize>, _>>()
            .map_err(|_| {
                self.err(
                    name,
                    ErrorKind::InvalidHeader(format!("negative dimension in {dims:?}")),
                )
            })
    }

    /// The description and data of a dense tensor, or `None` (noted under `skipped`) when
    /// weightspace cannot hold its type.
    fn tensor(&mut self, t: &TensorProto, name: &str) -> Result<Option<(TensorInfo, Data)>> {
        let dtype = match onnx_dtype(t.data_type) {
            Ok(d) => d,
            Err(why) => {
                self.skip(name, format!("{why} (code {})", t.data_type));
                return Ok(None);
            }
        };
        if t.segment.is_some() {
            self.skip(
                name,
                "segmented tensors (TensorProto.segment) are not supported",
            );
            return Ok(None);
        }
        let shape = self.shape(&t.dims, name)?;
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let Some(expected) = numel.and_then(|n| dtype.storage_bytes(n)) else {
            return Err(self.err(
                name,
                ErrorKind::InvalidHeader(format!(
                    "shape {shape:?} of dtype {dtype} overflows the address space"
                )),
            ));
        };
        let numel = numel.unwrap_or(0);
        let size_err = |bytes: usize| ErrorKind::SizeMismatch {
            bytes: bytes as u64,
            expected: expected as u64,
            shape: shape.clone(),
            dtype: dtype.name().into(),
        };
        let data = if t.data_location == proto::EXTERNAL {
            self.external_data(t, name, expected)?
        } else if !t.raw_data.is_empty() {
            if t.raw_data.len() != expected {
                return Err(self.err(name, size_err(t.raw_data.len())));
            }
            self.slice_of(&t.raw_data)
        } else {
            let esize = dtype.size().unwrap_or(1);
            let (count, bytes): (usize, Vec<u8>) = match dtype {
                DType::F32 => (
                    t.float_data.len(),
                    le_bytes(&t.float_data, 4, |v| v.to_le_bytes()),
                ),
                DType::F64 => (
                    t.double_data.len(),
                    le_bytes(&t.double_data, 8, |v| v.to_le_bytes()),
                ),
                DType::I64 => (
                    t.int64_data.len(),
                    le_bytes(&t.int64_data, 8, |v| v.to_le_bytes()),
                ),
                DType::U32 | DType::U64 => (
                    t.uint64_data.len(),
                    le_bytes(&t.uint64_data, esize, |v| v.to_le_bytes()),
                ),
                // int32_data carries every type of 32 bits or fewer, one element per value,
                // as the value (ints, bool) or the bit pattern (f16, bf16, fp8) in its low bits.
                _ => (
                    t.int32_data.len(),
                    le_bytes(&t.int32_data, esize, |v| v.to_le_bytes()),
                ),
            };
            if count != numel {
                return Err(self.err(name, size_err(count.saturating_mul(esize))));
            }
            owned_data(bytes)
        };
        Ok(Some((
            TensorInfo {
                name: name.to_string(),
                dtype,
                shape,
            },
            data,
        )))
    }

    /// A zero-copy slice of the model map when `b` lies inside it (it always does when decoded
    /// from the map), otherwise an owned copy.
    fn slice_of(&self, b: &Bytes) -> Data {
        let p = b.as_ptr() as usize;
        if p >= self.base && p + b.len() <= self.base + self.buf.len() {
            Data::Slice {
                buf: self.buf.clone(),
                start: p - self.base,
                len: b.len(),
            }
        } else {
            owned_data(b.to_vec())
        }
    }

    /// Resolves `data_location = EXTERNAL`: maps the file (once) and slices it.
    fn external_data(&mut self, t: &TensorProto, name: &str, expected: usize) -> Result<Data> {
        let mut location = None;
        let mut offset = None;
        let mut length = None;
        for kv in &t.external_data {
            let num = |v: &str| {
                v.trim().parse::<u64>().map_err(|_| {
                    self.err(
                        name,
                        ErrorKind::InvalidHeader(format!(
                            "external data `{}` is `{v}`, not a non-negative integer",
                            kv.key
                        )),
                    )
                })
            };
            match kv.key.as_str() {
                "location" => location = Some(kv.value.as_str()),
                "offset" => offset = Some(num(&kv.value)?),
                "length" => length = Some(num(&kv.value)?),
                _ => {}
            }
        }
        let Some(location) = location.filter(|l| !l.is_empty()) else {
            return Err(self.err(
                name,
                ErrorKind::InvalidHeader("external data without a `location`".into()),
            ));
        };
        let file = self.resolve_external(location, name)?;
        let ext = match self.external.get(&file) {
            Some(b) => b.clone(),
            None => {
                let b = Buf::map_file(&file).map_err(|e| e.with_tensor(name))?;
                self.external.insert(file.clone(), b.clone());
                b
            }
        };
        let flen = ext.len() as u64;
        let offset = offset.unwrap_or(0);
        let length = length.unwrap_or_else(|| flen.saturating_sub(offset));
        let end = offset.checked_add(length);
        if end.is_none_or(|e| e > flen) {
            return Err(Error::new(
                &file,
                ErrorKind::OffsetOutOfBounds {
                    start: offset,
                    end: end.unwrap_or(u64::MAX),
                    available: flen,
                },
            )
            .with_tensor(name));
        }
        if length != expected as u64 {
            return Err(self.err(
                name,
                ErrorKind::SizeMismatch {
                    bytes: length,
                    expected: expected as u64,
                    shape: t.dims.iter().map(|&d| d as usize).collect(),
                    dtype: onnx_dtype(t.data_type)
                        .map(|d| d.name())
                        .unwrap_or("?")
                        .into(),
                },
            ));
        }
        Ok(Data::Slice {
            buf: ext,
            start: offset as usize,
            len: length as usize,
        })
    }

    /// The path of external data `location`, refusing anything outside the model's folder
    /// (absolute paths, `..`, symbolic links leading out).
    fn resolve_external(&mut self, location: &str, name: &str) -> Result<PathBuf> {
        let path = self.path;
        let refuse = |why: &str| {
            Error::new(path, ErrorKind::Invalid(format!(
                    "external data location `{location}` {why}; only files inside the model's folder are read"
                )))
            .with_tensor(name)
        };
        // ONNX paths use `/`; models written on Windows may use `\`.
        let rel = location.replace('\\', "/");
        let rel_path = Path::new(&rel);
        let drive =
            rel.len() >= 2 && rel.as_bytes()[0].is_ascii_alphabetic() && rel.as_bytes()[1] == b':';
        if rel_path.is_absolute() || drive {
            return Err(refuse("is an absolute path"));
        }
        if rel_path
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
        {
            return Err(refuse("leaves the model's folder"));
        }
        let file = self.dir.join(rel_path);
        let canon =
            std::fs::canonicalize(&file).map_err(|e| Error::io(&file, e).with_tensor(name))?;
        if self.dir_canonical.is_none() {
            let d = std::fs::canonicalize(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
            self.dir_canonical = Some(d);
        }
        if !canon.starts_with(self.dir_canonical.as_ref().unwrap()) {
            return Err(refuse(
                "resolves (through a link) outside the model's folder",
            ));
        }
        Ok(canon)
    }

    /// A sparse tensor, densified on access. Unsupported layouts are skipped with a note.
    fn sparse(&mut self, s: &SparseTensorProto, name: &str) -> Result<()> {
        let (Some(values), Some(indices)) = (&s.values, &s.indices) else {
            self.skip(name, "sparse tensor without values or indices");
            return Ok(());
        };
        let shape = self.shape(&s.dims, name)?;
        let Some((vinfo, vdata)) = self.tensor(values, name)? else {
            return Ok(());
        };
        let dtype = vinfo.dtype;
        let esize = dtype.size().unwrap_or(1);
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let dense = numel.and_then(|n| n.checked_mul(esize));
        let Some(dense) = dense.filter(|&d| d <= MAX_SPARSE_DENSE_BYTES) else {
            self.skip(
                name,
                format!("sparse tensor of shape {shape:?} is too large to densify"),
            );
            return Ok(());
        };
        let numel = numel.unwrap_or(0);
        if vinfo.shape.len() != 1 {
            return Err(self.err(
                name,
                ErrorKind::InvalidHeader(format!(
                    "sparse values have shape {:?}, not [NNZ]",
                    vinfo.shape
                )),
            ));
        }
        let nnz = vinfo.shape[0];
        let iname = format!("{name} (indices)");
        let Some((iinfo, idata)) = self.tensor(indices, &iname)? else {
            return Ok(());
        };
        if iinfo.dtype != DType::I64 {
            return Err(self.err(
                name,
                ErrorKind::InvalidHeader(format!("sparse indices are {}, not INT64", iinfo.dtype)),
            ));
        }
        let ibytes = data_bytes(&idata);
        let raw: Vec<i64> = ibytes
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        let bad = |msg: String| self.err(name, ErrorKind::InvalidHeader(msg));
        let linear: Vec<usize> = match iinfo.shape.as_slice() {
            [n] if *n == nnz => raw
                .iter()
                .map(|&i| usize::try_from(i).ok().filter(|&i| i < numel))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("a sparse index is outside shape {shape:?}")))?,
            [n, r] if *n == nnz && *r == shape.len() => raw
                .chunks_exact(shape.len().max(1))
                .map(|coord| {
                    coord.iter().zip(&shape).try_fold(0usize, |acc, (&c, &d)| {
                        let c = usize::try_from(c).ok().filter(|&c| c < d)?;
                        Some(acc * d + c)
                    })
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| bad(format!("a sparse coordinate is outside shape {shape:?}")))?,
            other => {
                return Err(bad(format!(
                    "sparse indices have shape {other:?}, not [{nnz}] or [{nnz}, {}]",
                    shape.len()
                )));
            }
        };
        let values = data_bytes(&vdata);
        let producer = move || -> Result<Vec<u8>> {
            let mut out = vec![0u8; dense];
            for (k, &i) in linear.iter().enumerate() {
                out[i * esize..(i + 1) * esize]
                    .copy_from_slice(&values[k * esize..(k + 1) * esize]);
            }
            Ok(out)
        };
        self.push(
            TensorInfo {
                name: name.to_string(),
                dtype,
                shape,
            },
            Data::Lazy(Arc::new(producer)),
        );
        Ok(())
    }
}

/// The low `esize` bytes of each value's little-endian encoding, concatenated.
fn le_bytes<T: Copy, const N: usize>(
    values: &[T],
    esize: usize,
    le: impl Fn(T) -> [u8; N],
) -> Vec<u8> {
    let esize = esize.min(N);
    let mut out = Vec::with_capacity(values.len() * esize);
    for &v in values {
        out.extend_from_slice(&le(v)[..esize]);
    }
    out
}

/// Owned bytes as zero-copy-able data.
fn owned_data(bytes: Vec<u8>) -> Data {
    let len = bytes.len();
    Data::Slice {
        buf: Arc::new(Buf::Vec(bytes)),
        start: 0,
        len,
    }
}

/// The bytes of data made by [`Reader::tensor`] (always a slice, bounds already checked).
fn data_bytes(d: &Data) -> Vec<u8> {
    match d {
        Data::Slice { buf, start, len } => buf
            .get(*start..start.saturating_add(*len))
            .map(<[u8]>::to_vec)
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniff_accepts_model_heads() {
        // ir_version 8, producer_name "spox", doc_string "", graph (long).
        assert!(sniff(b"\x08\x08\x12\x04spox2\x00:\xcf\x87\x8e\x01\x0a"));
        // ir_version 10, graph straight away.
        assert!(sniff(b"\x08\x0a\x3a\x22"));
    }

    #[test]
    fn sniff_rejects_other_bytes() {
        for head in [
            &b""[..],
            b"\x08",
            b"\x08\x0a",                     // nothing after ir_version
            b"\x08\x00\x3a\x01",             // ir_version 0
            b"\x08\x0a\x10\x01",             // field 2 as a varint
            b"\x08\x0a\x9a\x01\x00",         // unknown field 19
            b"\x08\x0a\x12\x02\xff\xfe\x3a", // producer_name not UTF-8
            b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01",
            b"PK\x03\x04",
            b"\x93NUMPY\x01\x00",
            b"GGUF\x03\x00\x00\x00",
            b"\x80\x02}q\x00",
            b"{\"a\": 1}",
            b"hello world, this is text",
        ] {
            assert!(!sniff(head), "{head:?}");
        }
    }

    #[test]
    fn varints() {
        assert_eq!(varint(&[0x96, 0x01]), Some((150, 2)));
        assert_eq!(varint(&[0x80]), None);
        assert_eq!(varint(&[0xff; 11]), None);
    }
}
