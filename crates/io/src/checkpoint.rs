//! [`Checkpoint`]: one type for a set of named tensors, whatever the file format.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use crate::error::{Error, ErrorKind, Result};
use crate::tensor::{Buf, Entry, TensorInfo, TensorView};
use crate::{gguf, npy, onnx, pytorch, safetensors, zipfs};

/// The file format a checkpoint was read from, detected from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// A single `.safetensors` file.
    Safetensors,
    /// Several safetensors shards (a directory or a `*.safetensors.index.json`).
    ShardedSafetensors,
    /// A `torch.save` zip archive (PyTorch ≥ 1.6).
    PyTorch,
    /// Several PyTorch shards (`pytorch_model.bin.index.json`).
    ShardedPyTorch,
    /// A legacy (pre-1.6) `torch.save` pickle stream.
    PyTorchLegacy,
    /// A TorchScript archive (`torch.jit.save`).
    TorchScript,
    /// GGUF v2/v3 (llama.cpp).
    Gguf,
    /// A single NumPy `.npy` array.
    Npy,
    /// A NumPy `.npz` archive.
    Npz,
    /// ONNX model initializers and constants.
    Onnx,
}

impl Format {
    /// Short lowercase name, used in `inspect --json` output.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::ShardedSafetensors => "safetensors-sharded",
            Format::PyTorch => "pytorch",
            Format::ShardedPyTorch => "pytorch-sharded",
            Format::PyTorchLegacy => "pytorch-legacy",
            Format::TorchScript => "torchscript",
            Format::Gguf => "gguf",
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::Onnx => "onnx",
        }
    }
}

/// The framework whose tensor conventions a checkpoint follows (the axis order of convolution
/// kernels above all), as far as its format says: PyTorch zips and TorchScript are PyTorch;
/// ONNX is ONNX (kernels `[out, in/groups, k…]` by the operator spec); GGUF files are
/// converted from PyTorch and read here in row-major (PyTorch) order; safetensors files say
/// it in `__metadata__.format` (`pt`, `tf`, `flax`, as Hugging Face writes it) and without that key
/// are taken as PyTorch (the library's origin and nearly every published file). NumPy files
/// carry no origin: `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Framework {
    /// PyTorch (`Conv2d.weight` is `[out, in, kh, kw]`).
    PyTorch,
    /// ONNX (`Conv` weights are `[out, in, kh, kw]`).
    Onnx,
    /// GGUF / ggml, converted from PyTorch checkpoints.
    Ggml,
    /// TensorFlow / Keras (`Conv2D.kernel` is `[kh, kw, in, out]`).
    TensorFlow,
    /// Flax / JAX (`nn.Conv.kernel` is `[kh, kw, in, out]`).
    Flax,
}

impl Framework {
    /// Short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Framework::PyTorch => "pytorch",
            Framework::Onnx => "onnx",
            Framework::Ggml => "ggml",
            Framework::TensorFlow => "tensorflow",
            Framework::Flax => "flax",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a format reader returns: tensors in file order and file-level metadata.
#[derive(Debug)]
pub struct Parsed {
    /// The detected format.
    pub format: Format,
    /// Tensors in the order the file lists them.
    pub entries: Vec<Entry>,
    /// File-level metadata (safetensors `__metadata__`, GGUF key/values, non-tensor pickle
    /// leaves, ONNX producer, ...).
    pub metadata: BTreeMap<String, Value>,
    /// For tensors presented under another name or layout than the file stores them (ONNX
    /// exporter names such as `onnx::MatMul_470`), keyed by the presented name.
    pub aliases: BTreeMap<String, Alias>,
    /// For a PyTorch checkpoint whose top-level dict wraps the state dict with other things
    /// (`{"model": {...}, "optimizer": {...}, "epoch": 3}`), its keys in order; empty otherwise.
    pub top_keys: Vec<String>,
}

/// How the file stores a tensor that a [`Checkpoint`] presents under another name or layout.
///
/// ONNX exporters leave parameters they rewrote unnamed (`onnx::MatMul_470` holds the transpose
/// of `encoder.layer.0.attention.self.query.weight`); the default view gives such a tensor the
/// name of the module that reads it and the source model's layout, and keeps the stored name
/// here. A tensor the exporter deduplicated (an `Identity` of another weight) is presented under
/// its own name, with the tensor it shares storage with here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    /// The name the file stores the data under.
    pub name: String,
    /// The shape the file stores it with.
    pub stored_shape: Vec<usize>,
    /// True when the stored tensor is the transpose of the presented one (a MatMul `B` input
    /// `[in, out]` presented as a Linear weight `[out, in]`).
    pub transposed: bool,
}

/// How a checkpoint is opened: which tensors it presents, under which names.
///
/// The options make a view over the file, applied in this order: [`OpenOptions::key`] (or the
/// default pick of a wrapped PyTorch checkpoint's state dict), [`OpenOptions::strip_prefix`],
/// [`OpenOptions::rename`], then [`OpenOptions::include`] and [`OpenOptions::exclude`] on the
/// resulting names. A renamed tensor keeps its stored name as an [`Alias`], so
/// [`Checkpoint::resolve`] still finds it by that name. Two tensors ending up with one name, or
/// a selection that keeps no tensor, is an [`ErrorKind::Selection`] error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Every tensor the file stores, under its stored name and layout. Off (the default), formats
    /// that mix weights with other constants show the weights only, as the source model named
    /// them: an ONNX model hides integer shape plumbing and scalar constants and renames the
    /// tensors its exporter left unnamed (see the crate documentation), and a PyTorch checkpoint
    /// that wraps its state dict with optimizer state and training scalars shows the model's
    /// parameters only (see [`Checkpoint::sections`]). Other formats are the same either way.
    pub all: bool,
    /// For a PyTorch checkpoint that wraps its state dict ([`Checkpoint::sections`]): only the
    /// tensors under this top-level key, with the `NAME.` prefix removed — `optimizer` for its
    /// optimizer state, or the model when the default pick is ambiguous. Other checkpoints (a
    /// plain state dict, safetensors, ONNX, ...) are read unchanged, so that one key serves a
    /// comparison of a training checkpoint with a plain state dict.
    pub key: Option<String>,
    /// Glob patterns (`*`, `?`, `[abc]`; `*` also matches dots); when any are given only tensors
    /// whose name matches one are kept. A pattern is matched against the name after
    /// [`OpenOptions::strip_prefix`] and [`OpenOptions::rename`] and the one before (after
    /// [`OpenOptions::key`]); either matching counts.
    pub include: Vec<String>,
    /// Glob patterns, matched like [`OpenOptions::include`]; tensors matching one are left out.
    pub exclude: Vec<String>,
    /// Name prefixes to remove (the first that matches, once); names without any are unchanged.
    pub strip_prefix: Vec<String>,
    /// `(FROM, TO)` literal prefix replacements, the first that matches, after `strip_prefix`.
    pub rename: Vec<(String, String)>,
}

/// A set of named tensors read from one file, a sharded set of files, or a model directory.
///
/// Tensors keep the order of the file. Reading the checkpoint reads headers only; tensor bytes
/// are borrowed from a memory map when the format stores them contiguously and little-endian,
/// and produced on demand otherwise.
#[derive(Debug)]
pub struct Checkpoint {
    pub(crate) path: PathBuf,
    format: Format,
    pub(crate) entries: Vec<Entry>,
    pub(crate) index: HashMap<String, usize>,
    pub(crate) metadata: BTreeMap<String, Value>,
    files: Vec<PathBuf>,
    pub(crate) aliases: BTreeMap<String, Alias>,
    /// Stored names that are not tensor names, to the tensor they are presented as.
    pub(crate) alias_index: HashMap<String, String>,
    /// A wrapped PyTorch checkpoint's top-level keys and what each holds.
    pub(crate) sections: Vec<Section>,
}

/// One top-level key of a PyTorch checkpoint that wraps its state dict with other things
/// (`{"model": {...}, "optimizer": {...}, "epoch": 3}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// The key.
    pub key: String,
    /// What it holds.
    pub holds: Holds,
    /// True for the key whose tensors the checkpoint presents (the model's parameters by
    /// default, [`OpenOptions::key`] when given).
    pub selected: bool,
}

impl Section {
    /// True for optimizer state (a key containing `optim`): never the default pick.
    pub fn is_optimizer(&self) -> bool {
        self.key.to_ascii_lowercase().contains("optim")
    }
}

/// What a [`Section`] holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Holds {
    /// Tensors (at any depth), and their total number of elements.
    Tensors {
        /// How many tensors.
        count: usize,
        /// Their total number of elements.
        params: u64,
    },
    /// One non-tensor value (a number, a string, ...).
    Value(Value),
    /// A container of this many non-tensor values.
    Values(usize),
}

/// Index files that make a directory one sharded checkpoint, in order of preference.
const INDEX_SUFFIXES: [&str; 2] = [".safetensors.index.json", ".bin.index.json"];

impl Checkpoint {
    /// Opens a checkpoint: a weights file of any supported format (detected from its bytes, not
    /// its extension), a `*.index.json` of a sharded checkpoint, or a model directory.
    ///
    /// ONNX models show their weights only (see [`OpenOptions::all`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Checkpoint> {
        Self::open_with(path, OpenOptions::default())
    }

    /// Opens a checkpoint like [`Checkpoint::open`], with options: which tensors, under which
    /// names ([`OpenOptions`]).
    pub fn open_with(path: impl AsRef<Path>, opts: OpenOptions) -> Result<Checkpoint> {
        let (ck, top_keys) = Self::open_stored(path.as_ref(), &opts)?;
        crate::view::apply(ck, top_keys, &opts)
    }

    /// The checkpoint as the reader presents it, before [`OpenOptions`]' view, and the wrapped
    /// top-level keys of a PyTorch checkpoint.
    fn open_stored(path: &Path, opts: &OpenOptions) -> Result<(Checkpoint, Vec<String>)> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Self::open_dir(path, opts);
        }
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".index.json") {
            return Self::open_index(path, opts);
        }
        let parsed = open_file(path, opts)?;
        Self::from_parsed(path, parsed, vec![path.to_path_buf()])
    }

    /// Rebuilds the name index and the stored-name index after the entries changed.
    pub(crate) fn reindex(&mut self) {
        self.index = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.info.name.clone(), i))
            .collect();
        self.alias_index = self
            .aliases
            .iter()
            .filter(|(_, a)| !self.index.contains_key(&a.name))
            .map(|(name, a)| (a.name.clone(), name.clone()))
            .collect();
    }

    /// Builds a checkpoint from a reader's output, checking names are unique.
    fn from_parsed(
        path: &Path,
        parsed: Parsed,
        files: Vec<PathBuf>,
    ) -> Result<(Checkpoint, Vec<String>)> {
        let mut index = HashMap::with_capacity(parsed.entries.len());
        for (i, e) in parsed.entries.iter().enumerate() {
            if index.insert(e.info.name.clone(), i).is_some() {
                return Err(Error::invalid(path, "tensor name appears more than once")
                    .with_tensor(&e.info.name));
            }
        }
        let alias_index = parsed
            .aliases
            .iter()
            .filter(|(_, a)| !index.contains_key(&a.name))
            .map(|(name, a)| (a.name.clone(), name.clone()))
            .collect();
        let ck = Checkpoint {
            path: path.to_path_buf(),
            format: parsed.format,
            entries: parsed.entries,
            index,
            metadata: parsed.metadata,
            files,
            aliases: parsed.aliases,
            alias_index,
            sections: Vec::new(),
        };
        Ok((ck, parsed.top_keys))
    }

    fn open_dir(dir: &Path, opts: &OpenOptions) -> Result<(Checkpoint, Vec<String>)> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| Error::io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let fname = |p: &PathBuf| {
            p.file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("")
                .to_string()
        };
        for suffix in INDEX_SUFFIXES {
            if let Some(idx) = files.iter().find(|p| fname(p).ends_with(suffix)) {
                return Self::open_index(idx, opts);
            }
        }
        let st: Vec<PathBuf> = files
            .iter()
            .filter(|p| fname(p).ends_with(".safetensors"))
            .cloned()
            .collect();
        match st.len() {
            0 => {}
            1 => {
                let parsed = open_file(&st[0], opts)?;
                return Self::from_parsed(&st[0], parsed, st.clone());
            }
            _ => return Self::open_shards(dir, &st, None, opts),
        }
        // Otherwise: the one file in the directory that holds weights.
        let weights: Vec<PathBuf> = files
            .iter()
            .filter(|p| {
                let n = fname(p);
                !(n.ends_with(".json") || n.ends_with(".txt") || n.ends_with(".md"))
                    && sniff_path(p).is_some()
            })
            .cloned()
            .collect();
        match weights.len() {
            1 => Self::open_stored(&weights[0], opts),
            0 => Err(Error::new(
                dir,
                ErrorKind::UnknownFormat("the directory holds no weights file".into()),
            )),
            _ => Err(Error::new(
                dir,
                ErrorKind::UnknownFormat(format!(
                    "the directory holds several weights files and no index: {}",
                    weights.iter().map(fname).collect::<Vec<_>>().join(", ")
                )),
            )),
        }
    }

    /// Opens a sharded checkpoint from its `*.index.json` (`{"metadata":{…},"weight_map":{name:
    /// shard}}`): every tensor named in the weight map must be found in its shard.
    fn open_index(index_path: &Path, opts: &OpenOptions) -> Result<(Checkpoint, Vec<String>)> {
        let text = std::fs::read(index_path).map_err(|e| Error::io(index_path, e))?;
        let json: Value = serde_json::from_slice(&text)
            .map_err(|e| Error::new(index_path, ErrorKind::InvalidHeader(e.to_string())))?;
        let map = json
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| Error::invalid(index_path, "index has no `weight_map` object"))?;
        let dir = index_path.parent().unwrap_or(Path::new("."));
        let mut shards: Vec<PathBuf> = Vec::new();
        let mut wanted: HashMap<&str, &str> = HashMap::new();
        for (tensor, shard) in map {
            let shard = shard.as_str().ok_or_else(|| {
                Error::invalid(index_path, "weight_map value is not a file name")
                    .with_tensor(tensor)
            })?;
            if shard.contains("..") || Path::new(shard).is_absolute() {
                return Err(Error::invalid(
                    index_path,
                    format!("shard path `{shard}` leaves the checkpoint directory"),
                )
                .with_tensor(tensor));
            }
            let p = dir.join(shard);
            if !shards.contains(&p) {
                shards.push(p);
            }
            wanted.insert(tensor.as_str(), shard);
        }
        shards.sort();
        let (mut ck, top_keys) = Self::open_shards(index_path, &shards, Some(&wanted), opts)?;
        if let Some(m) = json.get("metadata").and_then(Value::as_object) {
            for (k, v) in m {
                ck.metadata.insert(k.clone(), v.clone());
            }
        }
        Ok((ck, top_keys))
    }

    /// Combines shard files into one checkpoint. With a weight map, checks each listed tensor is
    /// in the shard the map names and keeps only listed tensors.
    fn open_shards(
        path: &Path,
        shards: &[PathBuf],
        wanted: Option<&HashMap<&str, &str>>,
        opts: &OpenOptions,
    ) -> Result<(Checkpoint, Vec<String>)> {
        let mut entries = Vec::new();
        let mut metadata = BTreeMap::new();
        let mut aliases = BTreeMap::new();
        let mut format = None;
        let mut found = 0usize;
        for shard in shards {
            let parsed = open_file(shard, opts)?;
            format = Some(match parsed.format {
                Format::Safetensors => Format::ShardedSafetensors,
                Format::PyTorch | Format::PyTorchLegacy => Format::ShardedPyTorch,
                f => f,
            });
            let shard_name = shard.file_name().and_then(|n| n.to_str()).unwrap_or("");
            for e in parsed.entries {
                if let Some(w) = wanted {
                    match w.get(e.info.name.as_str()) {
                        Some(s)
                            if Path::new(s).file_name().and_then(|n| n.to_str())
                                == Some(shard_name) =>
                        {
                            found += 1
                        }
                        _ => continue,
                    }
                }
                entries.push(e);
            }
            for (k, v) in parsed.metadata {
                metadata.entry(k).or_insert(v);
            }
            aliases.extend(parsed.aliases);
        }
        if let Some(w) = wanted
            && found != w.len()
        {
            let have: std::collections::HashSet<&str> =
                entries.iter().map(|e| e.info.name.as_str()).collect();
            // The first missing name in sorted order, so the error does not depend on hashing.
            let missing = w
                .keys()
                .filter(|k| !have.contains(*k))
                .min()
                .expect("a listed tensor is missing");
            return Err(Error::invalid(
                path,
                format!(
                    "the index lists this tensor in `{}`, which does not hold it",
                    w[missing]
                ),
            )
            .with_tensor(*missing));
        }
        let parsed = Parsed {
            format: format.unwrap_or(Format::ShardedSafetensors),
            entries,
            metadata,
            aliases,
            // Shards are state dicts; a wrapped checkpoint is one file.
            top_keys: Vec::new(),
        };
        Self::from_parsed(path, parsed, shards.to_vec())
    }

    /// The path this checkpoint was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The files the tensors come from (several for sharded checkpoints).
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The detected format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// File-level metadata.
    pub fn metadata(&self) -> &BTreeMap<String, Value> {
        &self.metadata
    }

    /// The framework the tensors come from, when the format tells (see [`Framework`]).
    pub fn framework(&self) -> Option<Framework> {
        match self.format {
            Format::PyTorch
            | Format::ShardedPyTorch
            | Format::PyTorchLegacy
            | Format::TorchScript => Some(Framework::PyTorch),
            Format::Onnx => Some(Framework::Onnx),
            Format::Gguf => Some(Framework::Ggml),
            Format::Npy | Format::Npz => None,
            Format::Safetensors | Format::ShardedSafetensors => {
                match self.metadata.get("format").and_then(Value::as_str) {
                    None | Some("pt" | "torch" | "pytorch") => Some(Framework::PyTorch),
                    Some("tf" | "keras" | "tensorflow") => Some(Framework::TensorFlow),
                    Some("flax" | "jax") => Some(Framework::Flax),
                    Some(_) => None,
                }
            }
        }
    }

    /// Number of tensors.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are no tensors.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Tensor descriptions in file order (reads no tensor data).
    pub fn infos(&self) -> impl ExactSizeIterator<Item = &TensorInfo> {
        self.entries.iter().map(|e| &e.info)
    }

    /// The description of tensor `name`.
    pub fn info(&self, name: &str) -> Option<&TensorInfo> {
        self.index.get(name).map(|&i| &self.entries[i].info)
    }

    /// Tensor names in file order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.entries.iter().map(|e| e.info.name.as_str())
    }

    /// How the file stores tensor `name`, when it is presented under another name or layout
    /// (ONNX exporter names; see [`Alias`]).
    pub fn alias(&self, name: &str) -> Option<&Alias> {
        self.aliases.get(name)
    }

    /// The tensor name for `name`: itself when a tensor has that name, the tensor presented in
    /// its place when `name` is a stored name (an [`Alias`]), `None` otherwise.
    pub fn resolve<'a>(&'a self, name: &'a str) -> Option<&'a str> {
        if self.index.contains_key(name) {
            Some(name)
        } else {
            self.alias_index.get(name).map(String::as_str)
        }
    }

    /// For a PyTorch checkpoint whose top-level dict wraps the state dict with other things
    /// (`{"model": {...}, "optimizer": {...}, "epoch": 3}`): each top-level key, what it holds,
    /// and which one's tensors the checkpoint presents. Empty for every other checkpoint.
    ///
    /// By default the presented tensors are the model's parameters: those of the one key named
    /// like a state dict (`state_dict`, `model_state_dict`, `model_state`, `model`, `module`,
    /// `net`, `network`), or else of the one key holding tensors that is not optimizer state,
    /// with the `KEY.` prefix removed. Optimizer state is never mixed in; [`OpenOptions::key`]
    /// picks another key, [`OpenOptions::all`] shows everything under its stored names.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// True when the checkpoint has a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>> {
        match self.index.get(name) {
            Some(&i) => self.tensor_at(i),
            None => Err(Error::new(&self.path, ErrorKind::TensorNotFound).with_tensor(name)),
        }
    }

    /// The `i`-th tensor in file order. Panics if `i >= self.len()`.
    pub fn tensor_at(&self, i: usize) -> Result<TensorView<'_>> {
        let e = &self.entries[i];
        Ok(TensorView {
            name: &e.info.name,
            dtype: e.info.dtype,
            shape: &e.info.shape,
            bytes: e.bytes(&self.path)?,
        })
    }

    /// Tensor `name` as `f32` values; errors name the file and tensor.
    pub fn tensor_f32(&self, name: &str) -> Result<Vec<f32>> {
        let t = self.tensor(name)?;
        t.to_f32()
            .map_err(|k| Error::new(&self.path, k).with_tensor(name))
    }

    /// Total number of elements over all tensors.
    pub fn total_params(&self) -> u64 {
        self.infos().map(|i| i.numel() as u64).sum()
    }

    /// Total stored bytes over all tensors.
    pub fn total_bytes(&self) -> u64 {
        self.infos().map(|i| i.nbytes() as u64).sum()
    }

    /// BLAKE3 over every tensor's name and content hash, in file order: equal for two
    /// checkpoints holding the same named tensors in the same order.
    pub fn model_hash(&self) -> Result<blake3::Hash> {
        let hashes = (0..self.len())
            .map(|i| self.tensor_at(i).map(|t| t.content_hash()))
            .collect::<Result<Vec<_>>>()?;
        Ok(crate::tensor::combine_hashes(self.names().zip(&hashes)))
    }
}

/// Detects the format of a file's leading bytes; `None` when none matches.
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(b"GGUF") {
        return Some(Format::Gguf);
    }
    if head.starts_with(b"\x93NUMPY") {
        return Some(Format::Npy);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        // PyTorch, TorchScript and npz are all zips: told apart by their entry names.
        return Some(Format::PyTorch);
    }
    if safetensors::sniff(head) {
        return Some(Format::Safetensors);
    }
    if pytorch::sniff_legacy(head) {
        return Some(Format::PyTorchLegacy);
    }
    if onnx::sniff(head) {
        return Some(Format::Onnx);
    }
    None
}

fn sniff_path(path: &Path) -> Option<Format> {
    use std::io::Read;
    let mut head = [0u8; 64];
    let mut f = std::fs::File::open(path).ok()?;
    let n = f.read(&mut head).ok()?;
    sniff(&head[..n])
}

/// Reads one file of any supported format.
pub(crate) fn open_file(path: &Path, opts: &OpenOptions) -> Result<Parsed> {
    let buf: Arc<Buf> = Buf::map_file(path)?;
    let parsed = match sniff(&buf) {
        Some(Format::Gguf) => gguf::open(path, buf)?,
        Some(Format::Npy) => npy::open_npy(path, buf)?,
        Some(Format::Safetensors) => safetensors::open(path, buf)?,
        Some(Format::PyTorchLegacy) => pytorch::open_legacy(path, buf)?,
        Some(Format::Onnx) => onnx::open(path, buf, opts)?,
        Some(_) => {
            let entries = zipfs::list(path, &buf)?;
            let is = |suffix: &str| {
                entries
                    .iter()
                    .any(|e| e.name == suffix || e.name.ends_with(&format!("/{suffix}")))
            };
            // TorchScript archives also hold a data.pkl: tell them apart first (constants.pkl,
            // or code/ beside data.pkl or the old model.json).
            let has_code = entries
                .iter()
                .any(|e| e.name.starts_with("code/") || e.name.contains("/code/"));
            let script = is("constants.pkl") || (has_code && (is("data.pkl") || is("model.json")));
            if script {
                pytorch::open_torchscript(path, buf, entries)?
            } else if is("data.pkl") {
                pytorch::open_zip(path, buf, entries)?
            } else if !entries.is_empty() && entries.iter().all(|e| e.name.ends_with(".npy")) {
                npy::open_npz(path, buf, entries)?
            } else {
                return Err(Error::new(
                    path,
                    ErrorKind::UnknownFormat(
                        "a zip archive that is neither a PyTorch checkpoint (no data.pkl) nor an .npz (entries other than .npy)".into(),
                    ),
                ));
            }
        }
        None => {
            let head: Vec<String> = buf.iter().take(8).map(|b| format!("{b:02x}")).collect();
            return Err(Error::new(
                path,
                ErrorKind::UnknownFormat(if buf.is_empty() {
                    "the file is empty".into()
                } else {
                    format!(
                        "leading bytes {} match no supported format (safetensors, PyTorch, GGUF, npy/npz, ONNX)",
                        head.join(" ")
                    )
                }),
            ));
        }
    };
    for e in &parsed.entries {
        e.validate(path)?;
    }
    Ok(parsed)
}
