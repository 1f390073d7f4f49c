//! PyTorch checkpoints, read without running any pickle code.
//!
//! Three containers hold the same kind of pickle:
//!
//! * `torch.save` zip archives (PyTorch ≥ 1.6): `<prefix>/data.pkl` is the pickled object,
//!   whose storages are persistent ids `('storage', type, key, location, numel)` naming
//!   `<prefix>/data/<key>`; `<prefix>/byteorder` says how the storages are stored.
//! * TorchScript archives (`torch.jit.save`): the same layout plus `constants.pkl` and `code/`;
//!   `data.pkl` holds `__torch__.*` module objects, read here as attribute containers.
//! * The legacy stream (`_use_new_zipfile_serialization=False`): five pickles one after the
//!   other (magic number, protocol, sys info, the object, the storage keys) then each storage's
//!   raw bytes preceded by its element count.
//!
//! The pickle is interpreted by [`pickle::Unpickler`], which only knows an allowlist of
//! tensor-building globals. The resulting value is flattened: dict keys and list indices are
//! joined with dots into tensor names (`state_dict.fc.weight`, `optimizer.state.0.exp_avg`);
//! non-tensor leaves (numbers, strings, bools, None) become metadata under the same dotted key.
//! A checkpoint that is a single tensor names it `tensor`.

mod pickle;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::checkpoint::{Format, Parsed};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::{Buf, Data, Entry, TensorInfo};
use crate::zipfs::ZipEntry;
use pickle::{Id, Obj, StorageRef, StorageType, TensorRef, Unpickler};

/// Largest `data.pkl` we inflate (real ones are a few MB even for large models).
const MAX_PICKLE_BYTES: usize = 256 << 20;
/// Deepest nesting of containers accepted when flattening.
const MAX_DEPTH: usize = 128;
/// Most values visited when flattening (guards against shared-subtree blow-up).
const MAX_VISITS: usize = 1 << 22;
/// Longest dotted name accepted.
const MAX_NAME: usize = 4096;
/// Longest metadata string kept (longer ones are cut, marked with `…`).
const MAX_META_STRING: usize = 4096;
/// Most bytes of names and metadata text produced by flattening one checkpoint.
const MAX_FLAT_BYTES: usize = 256 << 20;
/// A strided view (an `expand`ed tensor has stride 0) may make at most this many times the
/// file's size in bytes (or 1 GiB, whichever is more) when gathered.
const MAX_EXPANSION: usize = 16;
/// The legacy stream's leading magic number, 0x1950a86a20f9469cfc6c, little-endian.
const LEGACY_MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

/// True when `head` starts like a legacy (pre-1.6) `torch.save` pickle stream, or is one of
/// the very old tar-format checkpoints (recognised so that we can refuse them clearly).
pub(crate) fn sniff_legacy(head: &[u8]) -> bool {
    (head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1])) || is_torch_tar(head)
}

/// A tar archive whose first member is one of the names old `torch.save` wrote.
fn is_torch_tar(head: &[u8]) -> bool {
    if head.len() < 262 || &head[257..262] != b"ustar" {
        return false;
    }
    let name_end = head[..100].iter().position(|&b| b == 0).unwrap_or(100);
    matches!(
        &head[..name_end],
        b"sys_info" | b"pickle" | b"storages" | b"tensors"
    )
}

/// Reads a `torch.save` zip archive.
pub(crate) fn open_zip(path: &Path, buf: Arc<Buf>, entries: Vec<ZipEntry>) -> Result<Parsed> {
    read_archive(path, buf, entries, false)
}

/// Reads a TorchScript archive: the tensors reachable from the module object in `data.pkl`,
/// named by attribute path as `module.state_dict()` names parameters and buffers.
pub(crate) fn open_torchscript(
    path: &Path,
    buf: Arc<Buf>,
    entries: Vec<ZipEntry>,
) -> Result<Parsed> {
    read_archive(path, buf, entries, true)
}

/// Where one storage's bytes are.
#[derive(Clone)]
enum Loc {
    /// `len` bytes at `start` in the mapped file.
    Mapped { start: usize, len: usize },
    /// A deflated zip entry (inflated on demand), and the byte range of it used.
    Deflated {
        entry: ZipEntry,
        start: usize,
        len: usize,
    },
}

impl Loc {
    fn len(&self) -> usize {
        match self {
            Loc::Mapped { len, .. } | Loc::Deflated { len, .. } => *len,
        }
    }

    /// The sub-range `off..off + len` (bounds checked by the caller).
    fn sub(&self, off: usize, n: usize) -> Loc {
        match self {
            Loc::Mapped { start, .. } => Loc::Mapped {
                start: start + off,
                len: n,
            },
            Loc::Deflated { entry, start, .. } => Loc::Deflated {
                entry: entry.clone(),
                start: start + off,
                len: n,
            },
        }
    }
}

fn read_archive(
    path: &Path,
    buf: Arc<Buf>,
    entries: Vec<ZipEntry>,
    script: bool,
) -> Result<Parsed> {
    let pkl = entries
        .iter()
        .filter(|e| e.name == "data.pkl" || e.name.ends_with("/data.pkl"))
        .min_by_key(|e| e.name.len())
        .ok_or_else(|| {
            if script {
                Error::new(
                    path,
                    ErrorKind::Unsupported(
                        "a TorchScript archive without data.pkl (the model.json layout of PyTorch < 1.5); re-save it with a current torch.jit.save".into(),
                    ),
                )
            } else {
                Error::invalid(path, "the archive has no data.pkl")
            }
        })?;
    let prefix = &pkl.name[..pkl.name.len() - "data.pkl".len()];
    if pkl.size > MAX_PICKLE_BYTES {
        return Err(Error::new(
            path,
            ErrorKind::HeaderTooLarge {
                len: pkl.size as u64,
                limit: MAX_PICKLE_BYTES as u64,
            },
        ));
    }
    let by_name: HashMap<&str, &ZipEntry> = entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let big_endian = match by_name.get(format!("{prefix}byteorder").as_str()) {
        None => false,
        Some(e) => {
            let b = e.read_prefix(path, &buf, 16)?;
            match b.as_ref() {
                b"little" => false,
                b"big" => true,
                other => {
                    return Err(Error::invalid(
                        path,
                        format!(
                            "byteorder entry says `{}`, expected `little` or `big`",
                            String::from_utf8_lossy(other)
                        ),
                    ));
                }
            }
        }
    };
    let bytes = pkl.read(path, &buf)?;
    let mut u = Unpickler::new(&bytes, 0, script);
    let root = u.load().map_err(|k| Error::new(path, k))?;
    let resolve = |s: &StorageRef| -> Result<Loc, ErrorKind> {
        let name = format!("{prefix}data/{}", s.key);
        let e = by_name
            .get(name.as_str())
            .ok_or_else(|| ErrorKind::Invalid(format!("storage `{name}` is not in the archive")))?;
        Ok(if e.deflated {
            Loc::Deflated {
                entry: (*e).clone(),
                start: 0,
                len: e.size,
            }
        } else {
            Loc::Mapped {
                start: e.start,
                len: e.size,
            }
        })
    };
    let format = if script {
        Format::TorchScript
    } else {
        Format::PyTorch
    };
    let classes = script.then(|| script_classes(path, &buf, &u, prefix, &by_name));
    build(path, &buf, &u, root, &resolve, big_endian, format, classes)
}

/// For each TorchScript class used in the pickle, the attributes `state_dict()` holds (its
/// `__parameters__` and `__buffers__`), read from the class source under `code/`. Classes
/// whose source is missing or unreadable are absent: all their tensor attributes are kept.
fn script_classes(
    path: &Path,
    buf: &Buf,
    u: &Unpickler<'_>,
    prefix: &str,
    by_name: &HashMap<&str, &ZipEntry>,
) -> ScriptClasses {
    const MAX_SOURCE: usize = 16 << 20;
    let mut out = ScriptClasses::new();
    let mut sources: HashMap<String, Option<String>> = HashMap::new();
    for o in &u.arena {
        let Obj::Object { class, .. } = o else {
            continue;
        };
        if out.contains_key(class) {
            continue;
        }
        let Some((module, name)) = class.rsplit_once('.') else {
            continue;
        };
        let file = format!("{prefix}code/{}.py", module.replace('.', "/"));
        let src = sources.entry(file.clone()).or_insert_with(|| {
            let e = by_name.get(file.as_str())?;
            if e.size > MAX_SOURCE {
                return None;
            }
            let b = e.read(path, buf).ok()?;
            Some(String::from_utf8_lossy(&b).into_owned())
        });
        if let Some(attrs) = src.as_deref().and_then(|s| class_state_attrs(s, name)) {
            out.insert(class.clone(), attrs);
        }
    }
    out
}

/// The names listed in `__parameters__` and `__buffers__` of `class <name>(...)` in TorchScript
/// source, or `None` when the class or its `__parameters__` line is not found.
fn class_state_attrs(src: &str, name: &str) -> Option<HashSet<String>> {
    let head = format!("class {name}(");
    let mut lines = src.lines().skip_while(|l| !l.starts_with(&head));
    lines.next()?;
    let mut attrs = HashSet::new();
    let mut found = false;
    for line in lines {
        if !(line.is_empty() || line.starts_with(' ')) {
            break;
        }
        // Class-level declarations only (two-space indent), not text inside methods.
        if !line.starts_with("  ") || line.starts_with("   ") {
            continue;
        }
        let t = line.trim();
        let list = t
            .strip_prefix("__parameters__ = [")
            .inspect(|_| found = true)
            .or_else(|| t.strip_prefix("__buffers__ = ["));
        if let Some(list) = list {
            let list = list.split(']').next().unwrap_or("");
            for item in list.split(',') {
                let item = item.trim().trim_matches('"');
                if !item.is_empty() {
                    attrs.insert(item.to_string());
                }
            }
        }
    }
    found.then_some(attrs)
}

/// TorchScript class name → the attributes its `state_dict()` holds.
type ScriptClasses = HashMap<String, HashSet<String>>;

/// Reads a legacy (pre-1.6) `torch.save` stream.
pub(crate) fn open_legacy(path: &Path, buf: Arc<Buf>) -> Result<Parsed> {
    if is_torch_tar(&buf) {
        return Err(Error::new(
            path,
            ErrorKind::Unsupported(
                "a tar-format checkpoint from PyTorch < 0.4 (load it with an old PyTorch and re-save it with torch.save)"
                    .into(),
            ),
        ));
    }
    let data: &[u8] = &buf;
    let perr = |k: ErrorKind| Error::new(path, k);
    // 1. The magic number.
    let mut u = Unpickler::new(data, 0, false);
    let magic = u.load().map_err(perr)?;
    match u.get(magic) {
        Obj::BigInt(b) if b[..] == LEGACY_MAGIC => {}
        _ => {
            return Err(Error::new(
                path,
                ErrorKind::UnknownFormat(
                    "a pickle stream that is not a torch.save checkpoint (no PyTorch magic number)"
                        .into(),
                ),
            ));
        }
    }
    // 2. The protocol version.
    let mut u = Unpickler::new(data, u.pos(), false);
    let proto = u.load().map_err(perr)?;
    if !matches!(u.get(proto), Obj::Int(1001)) {
        return Err(Error::invalid(
            path,
            "legacy checkpoint: unsupported serialisation protocol version (1001 expected)",
        ));
    }
    // 3. System info: byte order.
    let mut u = Unpickler::new(data, u.pos(), false);
    let info = u.load().map_err(perr)?;
    if let Obj::Dict(items) = u.get(info) {
        for (k, v) in items {
            if matches!(u.get(*k), Obj::Str(s) if s == "little_endian")
                && matches!(u.get(*v), Obj::Bool(false))
            {
                return Err(Error::new(
                    path,
                    ErrorKind::Unsupported(
                        "a legacy checkpoint written on a big-endian machine".into(),
                    ),
                ));
            }
        }
    } else {
        return Err(Error::invalid(
            path,
            "legacy checkpoint: system info is not a dict",
        ));
    }
    // 4. The object.
    let mut obj = Unpickler::new(data, u.pos(), false);
    let root = obj.load().map_err(perr)?;
    // 5. The storage keys, in the order their bytes follow.
    let mut ku = Unpickler::new(data, obj.pos(), false);
    let keys_id = ku.load().map_err(perr)?;
    let Obj::List(key_ids) = ku.get(keys_id) else {
        return Err(Error::invalid(
            path,
            "legacy checkpoint: storage key list is not a list",
        ));
    };
    // Element size of each storage, from the persistent ids.
    let mut esize: HashMap<&str, usize> = HashMap::new();
    for o in &obj.arena {
        if let Obj::Storage(s) = o {
            let size = match &s.ty {
                StorageType::Typed(d) => d.size().unwrap_or(1),
                StorageType::Untyped => 1,
                StorageType::Unsupported(name) => unsupported_size(name),
            };
            esize.insert(s.key.as_str(), size);
        }
    }
    // 6. Each storage: an 8-byte little-endian element count, then the bytes.
    let mut pos = ku.pos();
    let mut locs: HashMap<String, Loc> = HashMap::new();
    for &k in key_ids {
        let key = match ku.get(k) {
            Obj::Str(s) => s.clone(),
            Obj::Int(i) => i.to_string(),
            _ => {
                return Err(Error::invalid(
                    path,
                    "legacy checkpoint: storage key is not a string",
                ));
            }
        };
        let Some(&es) = esize.get(key.as_str()) else {
            return Err(Error::invalid(
                path,
                format!("legacy checkpoint: storage `{key}` is listed but no tensor uses it"),
            ));
        };
        let Some(head) = data.get(pos..pos + 8) else {
            return Err(Error::new(
                path,
                ErrorKind::Truncated(format!("storage `{key}` size at offset {pos}")),
            ));
        };
        let count = u64::from_le_bytes(head.try_into().expect("8 bytes"));
        let start = pos + 8;
        let nbytes = count
            .checked_mul(es as u64)
            .filter(|&n| n <= (data.len() - start) as u64)
            .ok_or_else(|| {
                Error::new(
                    path,
                    ErrorKind::Truncated(format!(
                        "storage `{key}` announces {count} elements of {es} bytes at offset {start}, {} bytes remain",
                        data.len() - start
                    )),
                )
            })? as usize;
        locs.insert(key, Loc::Mapped { start, len: nbytes });
        pos = start + nbytes;
    }
    let resolve = |s: &StorageRef| -> Result<Loc, ErrorKind> {
        locs.get(&s.key).cloned().ok_or_else(|| {
            ErrorKind::Invalid(format!("storage `{}` has no data in the file", s.key))
        })
    };
    build(
        path,
        &buf,
        &obj,
        root,
        &resolve,
        false,
        Format::PyTorchLegacy,
        None,
    )
}

/// Element size of a dtype we do not support (only used to skip over its bytes).
fn unsupported_size(name: &str) -> usize {
    match name {
        "complex128" | "cdouble" => 16,
        "complex64" | "cfloat" | "qint32" => 8,
        "complex32" | "chalf" => 4,
        _ => 1,
    }
}

/// Flattens the unpickled value into entries and metadata.
#[allow(clippy::too_many_arguments)]
fn build(
    path: &Path,
    buf: &Arc<Buf>,
    u: &Unpickler<'_>,
    root: Id,
    resolve: &dyn Fn(&StorageRef) -> Result<Loc, ErrorKind>,
    big_endian: bool,
    format: Format,
    script: Option<ScriptClasses>,
) -> Result<Parsed> {
    let mut f = Flattener {
        path,
        u,
        tensors: Vec::new(),
        metadata: BTreeMap::new(),
        visits: 0,
        bytes: 0,
        script,
        meta_only: false,
    };
    let root_name = match u.get(root) {
        Obj::Tensor(_) | Obj::Storage(_) => "tensor",
        Obj::Dict(_) | Obj::List(_) | Obj::Tuple(_) | Obj::Object { .. } => "",
        _ => "value",
    };
    f.walk(root, root_name.to_string(), 0)?;
    let top_keys = wrapped_keys(&f, root);
    let Flattener {
        tensors, metadata, ..
    } = f;
    let mut entries = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let entry = tensor_entry(path, buf, u, &name, &t, resolve, big_endian).map_err(|e| {
            if e.tensor.is_none() {
                e.with_tensor(&name)
            } else {
                e
            }
        })?;
        entries.push(entry);
    }
    Ok(Parsed {
        format,
        entries,
        metadata,
        aliases: Default::default(),
        top_keys,
    })
}

/// The keys of a top-level dict that wraps the state dict with other things (`{"model": {...},
/// "optimizer": {...}, "epoch": 3}`): none of its values is a tensor and at least one is a
/// container. Empty for a plain state dict (tensors directly under the root) and anything else.
fn wrapped_keys(f: &Flattener<'_, '_, '_>, root: Id) -> Vec<String> {
    let Obj::Dict(items) = f.u.get(root) else {
        return Vec::new();
    };
    let is = |v: Id, tensor: bool| match f.u.get(v) {
        Obj::Tensor(_) | Obj::Storage(_) => tensor,
        Obj::Dict(_) | Obj::List(_) | Obj::Tuple(_) | Obj::Object { .. } => !tensor,
        _ => false,
    };
    if items.iter().any(|&(_, v)| is(v, true)) || !items.iter().any(|&(_, v)| is(v, false)) {
        return Vec::new();
    }
    items.iter().map(|&(k, _)| f.key_text(k)).collect()
}

struct Flattener<'p, 'u, 'a> {
    path: &'p Path,
    u: &'u Unpickler<'a>,
    tensors: Vec<(String, TensorRef)>,
    metadata: BTreeMap<String, Value>,
    visits: usize,
    bytes: usize,
    /// TorchScript class attributes (`None` outside TorchScript archives).
    script: Option<ScriptClasses>,
    /// Set while walking attributes `state_dict()` leaves out: tensors there are skipped.
    meta_only: bool,
}

/// At most `max` bytes of `s`, cut at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

impl Flattener<'_, '_, '_> {
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.path, kind)
    }

    fn key_text(&self, id: Id) -> String {
        match self.u.get(id) {
            Obj::Str(s) => clip(s, MAX_NAME + 1).to_string(),
            Obj::Int(i) => i.to_string(),
            Obj::Bool(b) => if *b { "True" } else { "False" }.into(),
            Obj::None => "None".into(),
            Obj::Float(f) => f.to_string(),
            Obj::Bytes(b) => String::from_utf8_lossy(&b[..b.len().min(MAX_NAME + 1)]).into_owned(),
            Obj::Global(_, n) => n.clone(),
            Obj::Text(t) => t.clone(),
            Obj::Tuple(items) => items
                .iter()
                .take(16)
                .map(|&i| match self.u.get(i) {
                    Obj::Str(s) => clip(s, MAX_NAME + 1).to_string(),
                    Obj::Int(n) => n.to_string(),
                    o => pickle::kind(o).to_string(),
                })
                .collect::<Vec<_>>()
                .join("."),
            o => pickle::kind(o).to_string(),
        }
    }

    fn walk(&mut self, id: Id, name: String, depth: usize) -> Result<()> {
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(self.err(ErrorKind::Pickle(format!(
                "the object expands to more than {MAX_VISITS} values"
            ))));
        }
        if depth > MAX_DEPTH {
            return Err(self.err(ErrorKind::Pickle(format!(
                "containers nested deeper than {MAX_DEPTH} levels (or a reference cycle) at `{}`",
                name.chars().take(200).collect::<String>()
            ))));
        }
        if name.len() > MAX_NAME {
            return Err(self.err(ErrorKind::Pickle(format!(
                "a dotted name longer than {MAX_NAME} bytes"
            ))));
        }
        self.charge(name.len() + 32)?;
        let u = self.u;
        match u.get(id) {
            Obj::Dict(items) => {
                if items.is_empty() {
                    self.meta(name.clone(), Value::Object(Default::default()));
                }
                for &(k, v) in items {
                    let key = self.key_text(k);
                    self.walk(v, join(&name, &key), depth + 1)?;
                }
            }
            Obj::List(items) | Obj::Tuple(items) => {
                if items.is_empty() {
                    self.meta(name.clone(), Value::Array(Vec::new()));
                }
                for (i, &v) in items.iter().enumerate() {
                    self.walk(v, join(&name, &i.to_string()), depth + 1)?;
                }
            }
            Obj::Object { state, class } => {
                if depth == 0 {
                    self.meta("torchscript.class".into(), Value::String(class.clone()));
                }
                let Some(state) = *state else { return Ok(()) };
                let keep = self.script.as_ref().and_then(|c| c.get(class)).cloned();
                match u.get(state) {
                    Obj::Dict(items) => {
                        for &(k, v) in items {
                            let key = self.key_text(k);
                            // Module bookkeeping flags are not worth a metadata entry each.
                            if key == "training" || key == "_is_full_backward_hook" {
                                continue;
                            }
                            // Like state_dict(): parameters, buffers and submodules; other
                            // tensor attributes (an RNN's cached state, ...) are left out.
                            let saved = self.meta_only;
                            if let Some(keep) = &keep
                                && !keep.contains(&key)
                                && !matches!(u.get(v), Obj::Object { .. })
                            {
                                self.meta_only = true;
                            }
                            let r = self.walk(v, join(&name, &key), depth + 1);
                            self.meta_only = saved;
                            r?;
                        }
                    }
                    _ => self.walk(state, name, depth + 1)?,
                }
            }
            Obj::Tensor(_) | Obj::Storage(_) | Obj::Unsupported { .. } if self.meta_only => {}
            Obj::Tensor(t) => {
                self.charge(8 * (t.shape.len() + t.stride.len()))?;
                self.tensors.push((name, t.clone()))
            }
            Obj::Storage(s) => {
                // A bare storage: a 1-D tensor over all of it.
                let t = TensorRef {
                    storage: id,
                    dtype: None,
                    offset: 0,
                    shape: vec![s.numel],
                    stride: vec![1],
                };
                self.tensors.push((name, t))
            }
            Obj::Unsupported { what, dtype } => {
                let kind = if *dtype {
                    ErrorKind::UnsupportedDType(what.clone())
                } else {
                    ErrorKind::Unsupported(what.clone())
                };
                return Err(self.err(kind).with_tensor(name));
            }
            Obj::None => self.meta(name, Value::Null),
            Obj::Bool(b) => self.meta(name, Value::Bool(*b)),
            Obj::Int(i) => self.meta(name, Value::from(*i)),
            Obj::BigInt(b) => {
                let text = if b.len() > 64 {
                    format!("<integer of {} bytes>", b.len())
                } else {
                    let hex: String = b.iter().rev().map(|x| format!("{x:02x}")).collect();
                    format!("0x{hex}")
                };
                self.meta(name, Value::String(text))
            }
            Obj::Float(x) => self.meta(
                name,
                serde_json::Number::from_f64(*x)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(x.to_string())),
            ),
            Obj::Str(s) => {
                let v = if s.len() > MAX_META_STRING {
                    format!("{}…", clip(s, MAX_META_STRING))
                } else {
                    s.clone()
                };
                self.charge(v.len())?;
                self.meta(name, Value::String(v))
            }
            Obj::Bytes(b) => self.meta(name, Value::String(format!("<{} bytes>", b.len()))),
            Obj::Global(_, n) => self.meta(name, Value::String(n.clone())),
            Obj::Text(t) => {
                self.charge(t.len())?;
                self.meta(name, Value::String(t.clone()))
            }
            Obj::NumpyDType { code, .. } => {
                self.meta(name, Value::String(format!("numpy.dtype('{code}')")))
            }
        }
        Ok(())
    }

    /// Counts `n` bytes of produced names and text against [`MAX_FLAT_BYTES`].
    fn charge(&mut self, n: usize) -> Result<()> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > MAX_FLAT_BYTES {
            return Err(self.err(ErrorKind::Pickle(format!(
                "names and metadata exceed {MAX_FLAT_BYTES} bytes (a hostile or corrupt pickle)"
            ))));
        }
        Ok(())
    }

    fn meta(&mut self, name: String, v: Value) {
        self.metadata.insert(name, v);
    }
}

/// Turns a tensor reference into an [`Entry`], checking every offset against its storage.
fn tensor_entry(
    path: &Path,
    buf: &Arc<Buf>,
    u: &Unpickler<'_>,
    name: &str,
    t: &TensorRef,
    resolve: &dyn Fn(&StorageRef) -> Result<Loc, ErrorKind>,
    big_endian: bool,
) -> Result<Entry> {
    let err = |k: ErrorKind| Error::new(path, k).with_tensor(name);
    let Obj::Storage(s) = u.get(t.storage) else {
        return Err(err(ErrorKind::Pickle(
            "tensor storage is not a storage".into(),
        )));
    };
    let ty = t.dtype.clone().unwrap_or_else(|| s.ty.clone());
    let dtype = match ty {
        StorageType::Typed(d) => d,
        StorageType::Untyped => DType::U8,
        StorageType::Unsupported(n) => {
            return Err(err(ErrorKind::UnsupportedDType(format!(
                "torch.{n} (complex and quantized tensors are not supported)"
            ))));
        }
    };
    let esize = dtype.size().expect("PyTorch dtypes are plain");
    let mut loc = resolve(s).map_err(err)?;
    // Legacy storage views: a window of the root storage, in elements of the storage type.
    if let Some((voff, vsize)) = s.view {
        let ses = match &s.ty {
            StorageType::Typed(d) => d.size().unwrap_or(1),
            _ => 1,
        };
        let (o, n) = (voff.checked_mul(ses as u64), vsize.checked_mul(ses as u64));
        match (o, n) {
            (Some(o), Some(n)) if o.checked_add(n).is_some_and(|e| e <= loc.len() as u64) => {
                loc = loc.sub(o as usize, n as usize)
            }
            _ => {
                return Err(err(ErrorKind::OffsetOutOfBounds {
                    start: o.unwrap_or(u64::MAX),
                    end: u64::MAX,
                    available: loc.len() as u64,
                }));
            }
        }
    }
    let to_usize =
        |v: &[u64]| -> Option<Vec<usize>> { v.iter().map(|&x| usize::try_from(x).ok()).collect() };
    let (Some(shape), Some(strides)) = (to_usize(&t.shape), to_usize(&t.stride)) else {
        return Err(err(ErrorKind::Invalid(
            "tensor size or stride overflows".into(),
        )));
    };
    let numel = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| err(ErrorKind::Invalid(format!("shape {shape:?} overflows"))))?;
    let info = TensorInfo {
        name: name.to_string(),
        dtype,
        shape: shape.clone(),
    };
    if numel == 0 {
        return Ok(Entry {
            info,
            data: Data::Lazy(Arc::new(|| Ok(Vec::new()))),
        });
    }
    let offset = usize::try_from(t.offset).ok();
    // Highest element index the view touches.
    let last = offset.and_then(|o| {
        shape
            .iter()
            .zip(&strides)
            .try_fold(o, |acc, (&d, &s)| (d - 1).checked_mul(s)?.checked_add(acc))
    });
    let needed = last
        .and_then(|l| l.checked_add(1))
        .and_then(|n| n.checked_mul(esize));
    let storage_len = loc.len();
    let Some(needed) = needed.filter(|&n| n <= storage_len) else {
        return Err(err(ErrorKind::OffsetOutOfBounds {
            start: t.offset.saturating_mul(esize as u64),
            end: needed.map_or(u64::MAX, |n| n as u64),
            available: storage_len as u64,
        }));
    };
    let _ = needed;
    let offset = offset.expect("checked above");
    let contiguous = is_contiguous(&shape, &strides);
    let nbytes = numel.checked_mul(esize);
    let limit = buf.len().saturating_mul(MAX_EXPANSION).max(1 << 30);
    if !contiguous && nbytes.is_none_or(|n| n > limit) {
        return Err(err(ErrorKind::Unsupported(format!(
            "a strided view of shape {shape:?} that expands {storage_len} bytes of storage beyond {limit} bytes"
        ))));
    }
    match (&loc, contiguous, big_endian) {
        (Loc::Deflated { entry, start, .. }, true, false) => Ok(Entry {
            info,
            data: entry
                .data(path, buf, start + offset * esize, numel * esize)
                .map_err(|e| e.with_tensor(name))?,
        }),
        (Loc::Mapped { start, .. }, true, false) => Ok(Entry {
            info,
            data: Data::Slice {
                buf: buf.clone(),
                start: start + offset * esize,
                len: numel * esize,
            },
        }),
        (Loc::Mapped { start, len }, false, false) => Ok(Entry {
            info,
            data: Data::Strided {
                buf: buf.clone(),
                storage_start: *start,
                storage_len: *len,
                offset,
                strides,
            },
        }),
        _ => {
            let (buf, path): (Arc<Buf>, PathBuf) = (buf.clone(), path.to_path_buf());
            let loc = loc.clone();
            Ok(Entry {
                info,
                data: Data::Lazy(Arc::new(move || {
                    let storage: Cow<'_, [u8]> = match &loc {
                        Loc::Mapped { start, len } => Cow::Borrowed(&buf[*start..*start + *len]),
                        Loc::Deflated { entry, start, len } => {
                            let all = entry.read(&path, &buf)?;
                            match all {
                                Cow::Borrowed(b) => Cow::Owned(b[*start..*start + *len].to_vec()),
                                Cow::Owned(mut v) => {
                                    v.truncate(start + len);
                                    v.drain(..*start);
                                    Cow::Owned(v)
                                }
                            }
                        }
                    };
                    let mut out = if contiguous {
                        storage[offset * esize..(offset + numel) * esize].to_vec()
                    } else {
                        crate::tensor::gather_strided(&storage, esize, offset, &shape, &strides)
                    };
                    if big_endian && esize > 1 {
                        for c in out.chunks_exact_mut(esize) {
                            c.reverse();
                        }
                    }
                    Ok(out)
                })),
            })
        }
    }
}

/// True when `strides` are the row-major strides of `shape` (dimensions of size 1 may have
/// any stride).
fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(is_contiguous(&[1, 3], &[99, 1]));
        assert!(is_contiguous(&[], &[]));
    }

    #[test]
    fn gather_transposed() {
        let s = [0u8, 1, 2, 3, 4, 5];
        assert_eq!(
            crate::tensor::gather_strided(&s, 1, 0, &[3, 2], &[1, 3]),
            vec![0, 3, 1, 4, 2, 5]
        );
        assert_eq!(
            crate::tensor::gather_strided(&s, 2, 1, &[2], &[1]),
            vec![2, 3, 4, 5]
        );
    }

    #[test]
    fn torchscript_class_attributes() {
        let src = "import torch\nclass Other(Module):\n  __parameters__ = [\"x\", ]\n\
                   class Linear(Module):\n  __parameters__ = [\"weight\", \"bias\", ]\n  \
                   __buffers__ = [\"running_mean\", ]\n  weight : Tensor\n\n  def forward(self):\n    \
                   __parameters__ = [\"no\"]\nclass Next(Module):\n  __parameters__ = []\n";
        let a = class_state_attrs(src, "Linear").unwrap();
        let mut v: Vec<&str> = a.iter().map(String::as_str).collect();
        v.sort();
        assert_eq!(v, ["bias", "running_mean", "weight"]);
        assert!(class_state_attrs(src, "Next").unwrap().is_empty());
        assert!(class_state_attrs(src, "Missing").is_none());
    }

    #[test]
    fn tar_sniffing() {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"sys_info");
        h[257..262].copy_from_slice(b"ustar");
        assert!(sniff_legacy(&h));
        h[..8].copy_from_slice(b"other.tx");
        assert!(!sniff_legacy(&h));
    }
}
