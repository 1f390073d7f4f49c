//! A pickle interpreter that builds inert values and never executes anything.
//!
//! Python's `pickle` rebuilds objects by calling the callables a stream names (`GLOBAL` +
//! `REDUCE`); that is how a hostile checkpoint runs `os.system`. This interpreter knows the
//! opcodes of protocols 0–5 but resolves a global only if it is on an allowlist of names that
//! describe tensors, storages and plain containers ([`resolve_global`]); anything else is
//! refused with [`ErrorKind::ForbiddenGlobal`] when the `GLOBAL` opcode is read, before any
//! later opcode is looked at. Allowed "calls" are interpreted by building a value of [`Obj`]:
//! nothing is ever called.
//!
//! Values live in an arena ([`Obj`] by [`Id`]), so that memoised containers mutated after
//! being memoised (`EMPTY_DICT`, `BINPUT`, `SETITEMS`) and objects shared between several
//! places behave as in Python. Every length is checked against the bytes that remain, and the
//! number of objects and memo entries is capped.

use std::collections::HashMap;

use crate::dtype::DType;
use crate::error::ErrorKind;

/// Index of an object in the arena.
pub(crate) type Id = usize;

/// Most objects one pickle stream may create.
const MAX_OBJECTS: usize = 1 << 22;
/// Most memo entries one pickle stream may create.
const MAX_MEMO: usize = 1 << 22;
/// Longest text line (protocol 0 opcodes) accepted.
const MAX_LINE: usize = 1 << 16;
/// Deepest value stack (and mark stack) accepted.
const MAX_STACK: usize = 1 << 22;
/// Budget for copying existing values (items, or 16 bytes of strings), so that a short stream
/// that references one large memoised value many times cannot make us allocate without bound.
const MAX_COPY: usize = 1 << 25;

/// How a storage's elements are typed.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StorageType {
    /// A typed storage (`torch.FloatStorage`, or a dtype object for newer dtypes).
    Typed(DType),
    /// `torch.storage.UntypedStorage`: bytes; the tensor's dtype comes from `_rebuild_tensor_v3`.
    Untyped,
    /// A dtype PyTorch has and we do not represent (complex, quantised, ...), by name.
    Unsupported(String),
}

/// A storage named by a persistent id: `('storage', type, key, location, numel[, view])`.
#[derive(Debug, Clone)]
pub(crate) struct StorageRef {
    /// Element type.
    pub ty: StorageType,
    /// Key of the storage (a file name in zip archives, a number in legacy streams).
    pub key: String,
    /// Number of elements (bytes for untyped storages) the id claims.
    pub numel: u64,
    /// Legacy storage views: `(offset in elements, size in elements)` into the root storage.
    pub view: Option<(u64, u64)>,
}

/// A tensor described by one of the `torch._utils._rebuild_tensor*` functions.
#[derive(Debug, Clone)]
pub(crate) struct TensorRef {
    /// The storage object (an [`Obj::Storage`]).
    pub storage: Id,
    /// Element type when `_rebuild_tensor_v3` gives one explicitly.
    pub dtype: Option<StorageType>,
    /// Offset of element (0, ..., 0) in elements.
    pub offset: u64,
    /// Shape.
    pub shape: Vec<u64>,
    /// Strides in elements.
    pub stride: Vec<u64>,
}

/// An inert value built by the interpreter.
#[derive(Debug, Clone)]
pub(crate) enum Obj {
    /// `None`.
    None,
    /// A bool.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A larger integer, little-endian two's complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Id>),
    /// A list (also sets and frozensets).
    List(Vec<Id>),
    /// A dict (also `OrderedDict`, `Counter`), in insertion order.
    Dict(Vec<(Id, Id)>),
    /// An allowlisted global (a class, function or constant) and its `module.name`.
    Global(Global, String),
    /// A storage named by a persistent id.
    Storage(StorageRef),
    /// A tensor.
    Tensor(TensorRef),
    /// A numpy dtype (`numpy.dtype('f8', ...)`), its type code and byte order.
    NumpyDType {
        /// Type code such as `f8`.
        code: String,
        /// True unless the state says big-endian.
        little: bool,
    },
    /// An instance of a TorchScript class (`__torch__.*`): an attribute container.
    Object {
        /// Qualified class name.
        class: String,
        /// Attributes (a dict) once `BUILD` set them.
        state: Option<Id>,
    },
    /// A harmless value we keep only as text (`torch.device('cpu')`, a layout, ...).
    Text(String),
    /// Something recognised but not supported; an error if it ends up as a tensor.
    Unsupported {
        /// What it is.
        what: String,
        /// True when the problem is the dtype (quantised, complex).
        dtype: bool,
    },
}

/// The allowlisted globals, by meaning.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Global {
    /// `torch._utils._rebuild_tensor_v2` / `_rebuild_tensor` / `_rebuild_tensor_v3`.
    RebuildTensor(u8),
    /// `torch._utils._rebuild_parameter` and `_rebuild_parameter_with_state`.
    RebuildParameter,
    /// `torch._tensor._rebuild_from_type_v2`.
    RebuildFromType,
    /// `torch._utils._rebuild_device_tensor_from_cpu_tensor`: the data argument is the tensor.
    RebuildDeviceFromCpu,
    /// Another rebuild function we recognise but do not support (sparse, nested, meta, ...).
    RebuildUnsupported(&'static str, bool),
    /// A storage class or dtype object.
    Storage(StorageType),
    /// `collections.OrderedDict`, `collections.Counter`, `builtins.dict`.
    Dict,
    /// `builtins.set`, `builtins.frozenset`, `builtins.list`.
    Set,
    /// `builtins.tuple`, `torch.Size`.
    Tuple,
    /// `builtins.bytearray`, `builtins.bytes`.
    ByteArray,
    /// `_codecs.encode`.
    CodecsEncode,
    /// `numpy.dtype`.
    NumpyDType,
    /// `numpy.core.multiarray.scalar`.
    NumpyScalar,
    /// Classes used only as markers (`torch.Tensor`, `torch.nn.parameter.Parameter`).
    TensorClass(String),
    /// A harmless constructor kept as text: `torch.device`, `builtins.complex`,
    /// `torch.serialization._get_layout`, quantisation schemes.
    Textual(String),
    /// `torch.jit._pickle.build_*list` (TorchScript): returns its argument.
    JitBuildList,
    /// `torch.jit._pickle.restore_type_tag` (TorchScript): returns its first argument.
    JitRestoreTypeTag,
    /// A TorchScript class (`__torch__.*`), only inside TorchScript archives.
    ScriptClass(String),
}

/// Maps a PyTorch dtype name (`float32`, `bfloat16`, ...) to ours.
pub(crate) fn torch_dtype(name: &str) -> Option<StorageType> {
    use StorageType::*;
    Some(match name {
        "float32" | "float" => Typed(DType::F32),
        "float64" | "double" => Typed(DType::F64),
        "float16" | "half" => Typed(DType::F16),
        "bfloat16" => Typed(DType::BF16),
        "int64" | "long" => Typed(DType::I64),
        "int32" | "int" => Typed(DType::I32),
        "int16" | "short" => Typed(DType::I16),
        "int8" => Typed(DType::I8),
        "uint8" => Typed(DType::U8),
        "uint16" => Typed(DType::U16),
        "uint32" => Typed(DType::U32),
        "uint64" => Typed(DType::U64),
        "bool" => Typed(DType::Bool),
        "float8_e4m3fn" => Typed(DType::F8_E4M3),
        "float8_e5m2" => Typed(DType::F8_E5M2),
        "complex32" | "complex64" | "complex128" | "cfloat" | "cdouble" | "chalf"
        | "float8_e4m3fnuz" | "float8_e5m2fnuz" | "float8_e8m0fnu" | "float4_e2m1fn_x2"
        | "qint8" | "quint8" | "qint32" | "quint4x2" | "quint2x4" | "bits1x8" | "bits2x4"
        | "bits4x2" | "bits8" | "bits16" | "uint1" | "uint2" | "uint3" | "uint4" | "uint5"
        | "uint6" | "uint7" | "int1" | "int2" | "int3" | "int4" | "int5" | "int6" | "int7" => {
            Unsupported(name.to_string())
        }
        _ => return None,
    })
}

/// Maps a legacy storage class name (`FloatStorage`, ...) to a storage type.
fn storage_class(name: &str) -> Option<StorageType> {
    use StorageType::*;
    Some(match name {
        "FloatStorage" => Typed(DType::F32),
        "DoubleStorage" => Typed(DType::F64),
        "HalfStorage" => Typed(DType::F16),
        "BFloat16Storage" => Typed(DType::BF16),
        "LongStorage" => Typed(DType::I64),
        "IntStorage" => Typed(DType::I32),
        "ShortStorage" => Typed(DType::I16),
        "CharStorage" => Typed(DType::I8),
        "ByteStorage" => Typed(DType::U8),
        "BoolStorage" => Typed(DType::Bool),
        "ComplexFloatStorage" => Unsupported("complex64".into()),
        "ComplexDoubleStorage" => Unsupported("complex128".into()),
        "QInt8Storage" => Unsupported("qint8".into()),
        "QUInt8Storage" => Unsupported("quint8".into()),
        "QInt32Storage" => Unsupported("qint32".into()),
        "QUInt4x2Storage" => Unsupported("quint4x2".into()),
        "QUInt2x4Storage" => Unsupported("quint2x4".into()),
        "UntypedStorage" => Untyped,
        _ => return None,
    })
}

/// Resolves `module.name` against the allowlist. `script` allows TorchScript's `__torch__.*`
/// classes and `torch.jit._pickle` helpers (only inside TorchScript archives).
pub(crate) fn resolve_global(module: &str, name: &str, script: bool) -> Option<Global> {
    // Python 2 names, as pickle's fix_imports maps them.
    let module = match module {
        "__builtin__" => "builtins",
        "copy_reg" => "copyreg",
        m => m,
    };
    let g = match (module, name) {
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensor(2),
        ("torch._utils", "_rebuild_tensor_v3") => Global::RebuildTensor(3),
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor(1),
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Global::RebuildParameter
        }
        ("torch._tensor", "_rebuild_from_type_v2") => Global::RebuildFromType,
        ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor") => Global::RebuildDeviceFromCpu,
        ("torch._utils", "_rebuild_qtensor") => {
            Global::RebuildUnsupported("a quantized tensor", true)
        }
        ("torch._utils", "_rebuild_sparse_tensor" | "_rebuild_sparse_csr_tensor") => {
            Global::RebuildUnsupported("a sparse tensor", false)
        }
        ("torch._utils", "_rebuild_nested_tensor") => {
            Global::RebuildUnsupported("a nested tensor", false)
        }
        ("torch._utils", "_rebuild_meta_tensor_no_storage") => {
            Global::RebuildUnsupported("a meta tensor without data", false)
        }
        ("torch._utils", "_rebuild_wrapper_subclass") => {
            Global::RebuildUnsupported("a tensor wrapper subclass", false)
        }
        ("torch._utils", "_rebuild_device_tensor_from_numpy") => {
            Global::RebuildUnsupported("a device tensor rebuilt from a numpy array", false)
        }
        ("torch._utils", "_rebuild_xla_tensor" | "_rebuild_mtia_tensor") => {
            Global::RebuildUnsupported("a tensor on an accelerator without CPU data", false)
        }
        ("torch" | "torch.cuda", n) if storage_class(n).is_some() => {
            Global::Storage(storage_class(n)?)
        }
        ("torch.storage", "UntypedStorage" | "TypedStorage") => {
            Global::Storage(StorageType::Untyped)
        }
        ("torch", n) if torch_dtype(n).is_some() => Global::Storage(torch_dtype(n)?),
        ("collections", "OrderedDict" | "Counter") | ("builtins", "dict") => Global::Dict,
        ("builtins", "set" | "frozenset" | "list") => Global::Set,
        ("builtins", "tuple") | ("torch", "Size") => Global::Tuple,
        ("builtins", "bytearray" | "bytes") => Global::ByteArray,
        ("_codecs", "encode") => Global::CodecsEncode,
        ("numpy", "dtype") => Global::NumpyDType,
        ("numpy.core.multiarray" | "numpy._core.multiarray", "scalar") => Global::NumpyScalar,
        ("torch", "Tensor") | ("torch.nn.parameter", "Parameter") => {
            Global::TensorClass(format!("{module}.{name}"))
        }
        ("torch", "device")
        | ("builtins", "complex")
        | ("torch.serialization", "_get_layout")
        | (
            "torch",
            "per_tensor_affine"
            | "per_tensor_symmetric"
            | "per_channel_affine"
            | "per_channel_symmetric"
            | "per_channel_affine_float_qparams"
            | "strided"
            | "sparse_coo"
            | "sparse_csr",
        ) => Global::Textual(format!("{module}.{name}")),
        ("torch.jit._pickle", n) if script && n.starts_with("build_") && n.ends_with("list") => {
            Global::JitBuildList
        }
        ("torch.jit._pickle", "restore_type_tag") if script => Global::JitRestoreTypeTag,
        (m, n) if script && (m == "__torch__" || m.starts_with("__torch__.")) => {
            Global::ScriptClass(format!("{m}.{n}"))
        }
        _ => return None,
    };
    Some(g)
}

fn perr(msg: impl Into<String>) -> ErrorKind {
    ErrorKind::Pickle(msg.into())
}

/// The interpreter state for one pickle stream.
pub(crate) struct Unpickler<'a> {
    data: &'a [u8],
    pos: usize,
    script: bool,
    /// The objects built so far.
    pub arena: Vec<Obj>,
    stack: Vec<Id>,
    marks: Vec<usize>,
    memo: HashMap<u64, Id>,
    copied: usize,
}

impl<'a> Unpickler<'a> {
    /// An interpreter over `data` starting at byte `pos`. `script` allows TorchScript classes.
    pub fn new(data: &'a [u8], pos: usize, script: bool) -> Self {
        Unpickler {
            data,
            pos,
            script,
            arena: Vec::new(),
            stack: Vec::new(),
            marks: Vec::new(),
            memo: HashMap::new(),
            copied: 0,
        }
    }

    /// The byte after the last `STOP` read.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// The object `id`.
    pub fn get(&self, id: Id) -> &Obj {
        &self.arena[id]
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorKind> {
        let left = self.data.len() - self.pos;
        if n > left {
            return Err(ErrorKind::Truncated(format!(
                "pickle needs {n} bytes at offset {}, {left} remain",
                self.pos
            )));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, ErrorKind> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, n: usize) -> Result<u64, ErrorKind> {
        let b = self.take(n)?;
        let mut v = [0u8; 8];
        v[..n].copy_from_slice(b);
        Ok(u64::from_le_bytes(v))
    }

    /// A length read as `n` little-endian bytes, checked against what remains.
    fn len(&mut self, n: usize) -> Result<usize, ErrorKind> {
        let at = self.pos;
        let v = self.uint(n)?;
        let left = (self.data.len() - self.pos) as u64;
        if v > left {
            return Err(ErrorKind::Truncated(format!(
                "pickle announces {v} bytes at offset {at}, {left} remain"
            )));
        }
        Ok(v as usize)
    }

    fn line(&mut self) -> Result<&'a [u8], ErrorKind> {
        let rest = &self.data[self.pos..];
        let end = rest
            .iter()
            .take(MAX_LINE)
            .position(|&b| b == b'\n')
            .ok_or_else(|| perr(format!("unterminated text line at offset {}", self.pos)))?;
        self.pos += end + 1;
        Ok(&rest[..end])
    }

    fn line_str(&mut self) -> Result<&'a str, ErrorKind> {
        let l = self.line()?;
        std::str::from_utf8(l).map_err(|_| perr("text line is not UTF-8"))
    }

    /// Charges `items` against the copy budget.
    fn charge(&mut self, items: usize) -> Result<(), ErrorKind> {
        self.copied = self.copied.saturating_add(items);
        if self.copied > MAX_COPY {
            return Err(perr(
                "the stream copies more values than any checkpoint needs (a hostile or corrupt pickle)",
            ));
        }
        Ok(())
    }

    fn new_obj(&mut self, o: Obj) -> Result<Id, ErrorKind> {
        if self.arena.len() >= MAX_OBJECTS {
            return Err(perr(format!(
                "more than {MAX_OBJECTS} objects in one pickle"
            )));
        }
        self.arena.push(o);
        Ok(self.arena.len() - 1)
    }

    fn push(&mut self, o: Obj) -> Result<(), ErrorKind> {
        let id = self.new_obj(o)?;
        self.stack.push(id);
        Ok(())
    }

    fn pop(&mut self) -> Result<Id, ErrorKind> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(perr(format!(
                "stack underflow at offset {}",
                self.pos.saturating_sub(1)
            )));
        }
        Ok(self.stack.pop().expect("checked"))
    }

    fn top(&self) -> Result<Id, ErrorKind> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return Err(perr("stack underflow"));
        }
        Ok(*self.stack.last().expect("checked"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Id>, ErrorKind> {
        let m = self
            .marks
            .pop()
            .ok_or_else(|| perr("opcode needs a MARK and there is none"))?;
        Ok(self.stack.split_off(m))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), ErrorKind> {
        let id = self.top()?;
        if self.memo.len() >= MAX_MEMO && !self.memo.contains_key(&key) {
            return Err(perr(format!("more than {MAX_MEMO} memo entries")));
        }
        self.memo.insert(key, id);
        Ok(())
    }

    fn memo_get(&mut self, key: u64) -> Result<(), ErrorKind> {
        let id = *self
            .memo
            .get(&key)
            .ok_or_else(|| perr(format!("memo key {key} was never stored")))?;
        self.stack.push(id);
        Ok(())
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), ErrorKind> {
        match resolve_global(module, name, self.script) {
            Some(g) => self.push(Obj::Global(g, format!("{module}.{name}"))),
            None => Err(ErrorKind::ForbiddenGlobal {
                module: module.to_string(),
                name: name.to_string(),
            }),
        }
    }

    /// Interprets opcodes until `STOP` and returns the result.
    pub fn load(&mut self) -> Result<Id, ErrorKind> {
        loop {
            let at = self.pos;
            let op = self.byte().map_err(|_| {
                ErrorKind::Truncated(format!("pickle ends at offset {at} without STOP"))
            })?;
            if self.stack.len() > MAX_STACK || self.marks.len() > MAX_STACK {
                return Err(perr(format!("stack deeper than {MAX_STACK} entries")));
            }
            match op {
                // Protocol and framing.
                0x80 => {
                    let p = self.byte()?;
                    if p > 5 {
                        return Err(perr(format!("unsupported pickle protocol {p}")));
                    }
                }
                0x95 => {
                    self.uint(8)?; // FRAME: a length hint; the bytes follow inline.
                }
                b'.' => {
                    let id = self.pop()?;
                    return Ok(id);
                }
                // Stack manipulation.
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let id = self.top()?;
                    self.stack.push(id);
                }
                // Memo.
                b'q' => {
                    let k = self.uint(1)?;
                    self.memo_put(k)?
                }
                b'r' => {
                    let k = self.uint(4)?;
                    self.memo_put(k)?
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?
                }
                b'p' => {
                    let k = parse_int(self.line_str()?)?;
                    self.memo_put(k as u64)?
                }
                b'h' => {
                    let k = self.uint(1)?;
                    self.memo_get(k)?
                }
                b'j' => {
                    let k = self.uint(4)?;
                    self.memo_get(k)?
                }
                b'g' => {
                    let k = parse_int(self.line_str()?)?;
                    self.memo_get(k as u64)?
                }
                // Constants.
                b'N' => self.push(Obj::None)?,
                0x88 => self.push(Obj::Bool(true))?,
                0x89 => self.push(Obj::Bool(false))?,
                b'J' => {
                    let v = self.uint(4)? as u32 as i32;
                    self.push(Obj::Int(v as i64))?
                }
                b'K' => {
                    let v = self.uint(1)?;
                    self.push(Obj::Int(v as i64))?
                }
                b'M' => {
                    let v = self.uint(2)?;
                    self.push(Obj::Int(v as i64))?
                }
                0x8a => {
                    let n = self.len(1)?;
                    let b = self.take(n)?;
                    self.push(long_from_bytes(b))?
                }
                0x8b => {
                    let n = self.len(4)?;
                    let b = self.take(n)?;
                    self.push(long_from_bytes(b))?
                }
                b'I' => {
                    let l = self.line_str()?;
                    let o = match l {
                        "00" => Obj::Bool(false),
                        "01" => Obj::Bool(true),
                        _ => Obj::Int(parse_int(l)?),
                    };
                    self.push(o)?
                }
                b'L' => {
                    let l = self.line_str()?;
                    let v = parse_int(l.trim_end_matches('L'))?;
                    self.push(Obj::Int(v))?
                }
                b'F' => {
                    let l = self.line_str()?;
                    let v: f64 = l
                        .trim()
                        .parse()
                        .map_err(|_| perr(format!("bad float literal `{l}`")))?;
                    self.push(Obj::Float(v))?
                }
                b'G' => {
                    let b = self.take(8)?;
                    let v = f64::from_be_bytes(b.try_into().expect("8 bytes"));
                    self.push(Obj::Float(v))?
                }
                // Strings.
                0x8c => {
                    let n = self.len(1)?;
                    let s = utf8(self.take(n)?);
                    self.push(Obj::Str(s))?
                }
                b'X' => {
                    let n = self.len(4)?;
                    let s = utf8(self.take(n)?);
                    self.push(Obj::Str(s))?
                }
                0x8d => {
                    let n = self.len(8)?;
                    let s = utf8(self.take(n)?);
                    self.push(Obj::Str(s))?
                }
                b'V' => {
                    let l = self.line()?;
                    let s = raw_unicode_escape(l)?;
                    self.push(Obj::Str(s))?
                }
                b'U' => {
                    let n = self.len(1)?;
                    let s = latin1(self.take(n)?);
                    self.push(Obj::Str(s))?
                }
                b'T' => {
                    let at = self.pos;
                    let n = self.uint(4)? as u32 as i32;
                    if n < 0 {
                        return Err(perr(format!("negative string length at offset {at}")));
                    }
                    let left = self.data.len() - self.pos;
                    if n as usize > left {
                        return Err(ErrorKind::Truncated(format!(
                            "pickle announces {n} bytes at offset {at}, {left} remain"
                        )));
                    }
                    let s = latin1(self.take(n as usize)?);
                    self.push(Obj::Str(s))?
                }
                b'S' => {
                    let l = self.line()?;
                    let s = python_string_literal(l)?;
                    self.push(Obj::Str(s))?
                }
                b'C' => {
                    let n = self.len(1)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Obj::Bytes(b))?
                }
                b'B' => {
                    let n = self.len(4)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Obj::Bytes(b))?
                }
                0x8e | 0x96 => {
                    let n = self.len(8)?;
                    let b = self.take(n)?.to_vec();
                    self.push(Obj::Bytes(b))?
                }
                0x97 | 0x98 => {
                    return Err(perr(
                        "out-of-band buffers (NEXT_BUFFER/READONLY_BUFFER) are not supported",
                    ));
                }
                // Containers.
                b'}' => self.push(Obj::Dict(Vec::new()))?,
                b']' => self.push(Obj::List(Vec::new()))?,
                b')' => self.push(Obj::Tuple(Vec::new()))?,
                0x8f => self.push(Obj::List(Vec::new()))?,
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(&items)?;
                    self.push(Obj::Dict(pairs))?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?
                }
                b't' => {
                    let items = self.pop_mark()?;
                    self.push(Obj::Tuple(items))?
                }
                0x91 => {
                    let items = self.pop_mark()?;
                    self.push(Obj::List(items))?
                }
                0x85 => {
                    let a = self.pop()?;
                    self.push(Obj::Tuple(vec![a]))?
                }
                0x86 => {
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Obj::Tuple(vec![a, b]))?
                }
                0x87 => {
                    let c = self.pop()?;
                    let b = self.pop()?;
                    let a = self.pop()?;
                    self.push(Obj::Tuple(vec![a, b, c]))?
                }
                b'a' => {
                    let v = self.pop()?;
                    let l = self.top()?;
                    self.extend(l, vec![v])?
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    let l = self.top()?;
                    self.extend(l, items)?
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    let d = self.top()?;
                    self.set_items(d, vec![(k, v)])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let d = self.top()?;
                    let p = pairs(&items)?;
                    self.set_items(d, p)?
                }
                // Globals and object construction.
                b'c' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    self.global(module, name)?
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    let (Obj::Str(m), Obj::Str(n)) = (&self.arena[module], &self.arena[name])
                    else {
                        return Err(perr("STACK_GLOBAL needs two strings"));
                    };
                    let (m, n) = (m.clone(), n.clone());
                    self.charge((m.len() + n.len()) / 16)?;
                    self.global(&m, &n)?
                }
                b'i' => {
                    let module = self.line_str()?;
                    let name = self.line_str()?;
                    self.global(module, name)?;
                    let cls = self.stack.pop().expect("just pushed");
                    let args = self.pop_mark()?;
                    let args = self.new_obj(Obj::Tuple(args))?;
                    let r = self.call(cls, args)?;
                    self.stack.push(r)
                }
                b'o' => {
                    let mut items = self.pop_mark()?;
                    if items.is_empty() {
                        return Err(perr("OBJ without a class"));
                    }
                    let cls = items.remove(0);
                    let args = self.new_obj(Obj::Tuple(items))?;
                    let r = self.call(cls, args)?;
                    self.stack.push(r)
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let func = self.pop()?;
                    let r = self.call(func, args)?;
                    self.stack.push(r)
                }
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let r = self.call(cls, args)?;
                    self.stack.push(r)
                }
                b'b' => {
                    let state = self.pop()?;
                    let obj = self.top()?;
                    self.build(obj, state)?
                }
                b'P' => {
                    let l = self.line()?;
                    let s = latin1(l);
                    let pid = self.new_obj(Obj::Str(s))?;
                    let r = self.persistent(pid)?;
                    self.stack.push(r)
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let r = self.persistent(pid)?;
                    self.stack.push(r)
                }
                0x82..=0x84 => {
                    return Err(perr(
                        "extension-registry opcodes (EXT1/2/4) are not supported",
                    ));
                }
                op => {
                    return Err(perr(format!("unknown opcode 0x{op:02x} at offset {at}")));
                }
            }
        }
    }

    fn extend(&mut self, target: Id, items: Vec<Id>) -> Result<(), ErrorKind> {
        match &mut self.arena[target] {
            Obj::List(v) => {
                v.extend(items);
                Ok(())
            }
            o => Err(perr(format!("APPEND(S) onto {}", kind(o)))),
        }
    }

    fn set_items(&mut self, target: Id, items: Vec<(Id, Id)>) -> Result<(), ErrorKind> {
        match &mut self.arena[target] {
            Obj::Dict(v) => {
                v.extend(items);
                Ok(())
            }
            o => Err(perr(format!("SETITEM(S) onto {}", kind(o)))),
        }
    }

    fn tuple_items(&self, id: Id) -> Option<&[Id]> {
        match &self.arena[id] {
            Obj::Tuple(v) | Obj::List(v) => Some(v),
            _ => None,
        }
    }

    fn int_of(&self, id: Id, what: &str) -> Result<i64, ErrorKind> {
        match self.arena[id] {
            Obj::Int(v) => Ok(v),
            Obj::Bool(b) => Ok(b as i64),
            ref o => Err(perr(format!("{what} is {}, not an integer", kind(o)))),
        }
    }

    fn uints_of(&self, id: Id, what: &str) -> Result<Vec<u64>, ErrorKind> {
        let items = self
            .tuple_items(id)
            .ok_or_else(|| perr(format!("{what} is {}, not a tuple", kind(&self.arena[id]))))?;
        items
            .iter()
            .map(|&i| {
                let v = self.int_of(i, what)?;
                u64::try_from(v).map_err(|_| perr(format!("{what} has a negative entry {v}")))
            })
            .collect()
    }

    /// Interprets an allowed "call" `func(*args)`, building an inert value.
    fn call(&mut self, func: Id, args: Id) -> Result<Id, ErrorKind> {
        self.call_depth(func, args, 0)
    }

    fn call_depth(&mut self, func: Id, args: Id, depth: usize) -> Result<Id, ErrorKind> {
        if depth > 8 {
            return Err(perr("nested _rebuild_from_type_v2 calls too deep"));
        }
        let Obj::Global(g, _) = self.arena[func].clone() else {
            return Err(perr(format!(
                "REDUCE on {}, which is not a callable global",
                kind(&self.arena[func])
            )));
        };
        let argv: Vec<Id> = self
            .tuple_items(args)
            .ok_or_else(|| perr("call arguments are not a tuple"))?
            .to_vec();
        self.charge(argv.len())?;
        let arg = |i: usize| -> Result<Id, ErrorKind> {
            argv.get(i)
                .copied()
                .ok_or_else(|| perr(format!("{g:?} needs at least {} arguments", i + 1)))
        };
        let o = match &g {
            Global::RebuildTensor(v) => {
                let storage = arg(0)?;
                let offset = self.int_of(arg(1)?, "storage offset")?;
                let offset = u64::try_from(offset)
                    .map_err(|_| perr(format!("negative storage offset {offset}")))?;
                let shape = self.uints_of(arg(2)?, "tensor size")?;
                let stride = self.uints_of(arg(3)?, "tensor stride")?;
                if shape.len() != stride.len() {
                    return Err(perr(format!(
                        "tensor size has {} dimensions, stride {}",
                        shape.len(),
                        stride.len()
                    )));
                }
                let dtype = if *v == 3 {
                    match &self.arena[arg(6)?] {
                        Obj::Global(Global::Storage(t), _) => Some(t.clone()),
                        o => {
                            return Err(perr(format!(
                                "_rebuild_tensor_v3 dtype is {}, not a dtype",
                                kind(o)
                            )));
                        }
                    }
                } else {
                    None
                };
                match &self.arena[storage] {
                    Obj::Storage(_) => Obj::Tensor(TensorRef {
                        storage,
                        dtype,
                        offset,
                        shape,
                        stride,
                    }),
                    o => {
                        return Err(perr(format!(
                            "tensor storage is {}, not a persistent storage",
                            kind(o)
                        )));
                    }
                }
            }
            Global::RebuildParameter | Global::RebuildDeviceFromCpu => return arg(0),
            Global::RebuildFromType => {
                let f = arg(0)?;
                let a = arg(2)?;
                return self.call_depth(f, a, depth + 1);
            }
            Global::RebuildUnsupported(what, dtype) => Obj::Unsupported {
                what: what.to_string(),
                dtype: *dtype,
            },
            Global::Dict => {
                let mut out = Vec::new();
                if let Some(&a) = argv.first() {
                    let n = self.tuple_items(a).map_or(0, <[Id]>::len);
                    self.charge(n)?;
                    match &self.arena[a] {
                        Obj::Dict(_) => return Ok(a), // inert: sharing is as good as a copy
                        Obj::List(items) | Obj::Tuple(items) => {
                            for &it in items {
                                match self.tuple_items(it) {
                                    Some([k, v]) => out.push((*k, *v)),
                                    _ => return Err(perr("dict item is not a pair")),
                                }
                            }
                        }
                        o => return Err(perr(format!("dict built from {}", kind(o)))),
                    }
                }
                Obj::Dict(out)
            }
            Global::Set | Global::Tuple => {
                if let Some(&a) = argv.first() {
                    let n = self.tuple_items(a).map_or(0, <[Id]>::len);
                    self.charge(n)?;
                }
                let items = match argv.first() {
                    None => Vec::new(),
                    Some(&a) => self
                        .tuple_items(a)
                        .ok_or_else(|| perr("set/tuple built from a non-sequence"))?
                        .to_vec(),
                };
                if g == Global::Tuple {
                    Obj::Tuple(items)
                } else {
                    Obj::List(items)
                }
            }
            Global::ByteArray => {
                if let Some(&a) = argv.first() {
                    let n = match &self.arena[a] {
                        Obj::Bytes(b) => b.len(),
                        Obj::Str(s) => s.len(),
                        _ => 0,
                    };
                    self.charge(n / 16)?;
                }
                match argv.first().map(|&a| &self.arena[a]) {
                    None => Obj::Bytes(Vec::new()),
                    Some(Obj::Bytes(b)) => Obj::Bytes(b.clone()),
                    Some(Obj::Str(s)) => Obj::Bytes(s.chars().map(|c| c as u32 as u8).collect()),
                    Some(o) => return Err(perr(format!("bytearray built from {}", kind(o)))),
                }
            }
            Global::CodecsEncode => {
                if let Obj::Str(s) = &self.arena[arg(0)?] {
                    let n = s.len();
                    self.charge(n / 16)?;
                }
                match &self.arena[arg(0)?] {
                    // `_codecs.encode(text, 'latin1')` is how protocol 2 writes bytes.
                    Obj::Str(s) => {
                        if s.chars().any(|c| c as u32 > 255) {
                            return Err(perr("_codecs.encode of a non-latin-1 string"));
                        }
                        Obj::Bytes(s.chars().map(|c| c as u32 as u8).collect())
                    }
                    o => return Err(perr(format!("_codecs.encode of {}", kind(o)))),
                }
            }
            Global::NumpyDType => match &self.arena[arg(0)?] {
                Obj::Str(s) if s.len() <= 64 => Obj::NumpyDType {
                    code: s.clone(),
                    little: true,
                },
                o => return Err(perr(format!("numpy.dtype of {}", kind(o)))),
            },
            Global::NumpyScalar => {
                let (Obj::NumpyDType { code, little }, Some(Obj::Bytes(b))) =
                    (&self.arena[arg(0)?], argv.get(1).map(|&i| &self.arena[i]))
                else {
                    return Err(perr("numpy scalar needs a dtype and bytes"));
                };
                numpy_scalar(code, *little, b)
            }
            Global::TensorClass(name) => Obj::Text(name.clone()),
            Global::Textual(name) => {
                let parts: Vec<String> = argv.iter().take(8).map(|&a| self.short_text(a)).collect();
                Obj::Text(format!("{name}({})", parts.join(", ")))
            }
            Global::JitBuildList | Global::JitRestoreTypeTag => return arg(0),
            Global::ScriptClass(class) => Obj::Object {
                class: class.clone(),
                state: None,
            },
            Global::Storage(_) => {
                return Err(perr("constructing a storage directly is not supported"));
            }
        };
        self.new_obj(o)
    }

    fn short_text(&self, id: Id) -> String {
        match &self.arena[id] {
            Obj::None => "None".into(),
            Obj::Bool(b) => if *b { "True" } else { "False" }.into(),
            Obj::Int(i) => i.to_string(),
            Obj::Float(f) => f.to_string(),
            Obj::Str(s) => format!("'{}'", s.chars().take(64).collect::<String>()),
            o => kind(o).to_string(),
        }
    }

    fn build(&mut self, obj: Id, state: Id) -> Result<(), ErrorKind> {
        match self.arena[obj] {
            Obj::Object { .. } => {
                if let Obj::Object { state: s, .. } = &mut self.arena[obj] {
                    *s = Some(state);
                }
            }
            Obj::NumpyDType { .. } => {
                // State: (version, byte order, ...).
                let big = match &self.arena[state] {
                    Obj::Tuple(v) => {
                        matches!(v.get(1).map(|&b| &self.arena[b]), Some(Obj::Str(s)) if s == ">")
                    }
                    _ => false,
                };
                if let Obj::NumpyDType { little, .. } = &mut self.arena[obj] {
                    *little = !big;
                }
            }
            // Python attributes of tensors and dicts (`_metadata` of a state_dict) carry no
            // weights: ignored, as is BUILD on anything else (it would call `__setstate__`).
            _ => {}
        }
        Ok(())
    }

    fn persistent(&mut self, pid: Id) -> Result<Id, ErrorKind> {
        let items = self
            .tuple_items(pid)
            .ok_or_else(|| {
                perr(format!(
                    "persistent id is {}, not a tuple",
                    kind(&self.arena[pid])
                ))
            })?
            .to_vec();
        self.charge(items.len())?;
        let s = |i: usize| items.get(i).map(|&x| &self.arena[x]);
        match s(0) {
            Some(Obj::Str(t)) if t == "storage" => {}
            Some(Obj::Str(t)) => {
                return Err(perr(format!(
                    "persistent id of kind `{}` is not supported (only storages)",
                    t.chars().take(64).collect::<String>()
                )));
            }
            _ => return Err(perr("persistent id does not start with a kind string")),
        }
        if items.len() < 5 {
            return Err(perr(format!(
                "storage persistent id has {} fields, 5 expected",
                items.len()
            )));
        }
        let ty = match s(1) {
            Some(Obj::Global(Global::Storage(t), _)) => t.clone(),
            Some(o) => {
                return Err(perr(format!(
                    "storage type in a persistent id is {}",
                    kind(o)
                )));
            }
            None => unreachable!("length checked"),
        };
        let key = match s(2) {
            Some(Obj::Str(k)) if k.len() <= 1024 => k.clone(),
            Some(Obj::Int(k)) => k.to_string(),
            _ => return Err(perr("storage key is neither a string nor an integer")),
        };
        let numel = match s(4) {
            Some(Obj::Int(n)) if *n >= 0 => *n as u64,
            _ => return Err(perr("storage size is not a non-negative integer")),
        };
        let view = match s(5) {
            None | Some(Obj::None) => None,
            Some(Obj::Tuple(v)) if v.len() == 3 => {
                let off = self.int_of(v[1], "storage view offset")?;
                let size = self.int_of(v[2], "storage view size")?;
                if off < 0 || size < 0 {
                    return Err(perr("negative storage view offset or size"));
                }
                Some((off as u64, size as u64))
            }
            Some(o) => return Err(perr(format!("storage view metadata is {}", kind(o)))),
        };
        self.new_obj(Obj::Storage(StorageRef {
            ty,
            key,
            numel,
            view,
        }))
    }
}

/// A short word for an object's kind, for error messages.
pub(crate) fn kind(o: &Obj) -> &'static str {
    match o {
        Obj::None => "None",
        Obj::Bool(_) => "a bool",
        Obj::Int(_) | Obj::BigInt(_) => "an integer",
        Obj::Float(_) => "a float",
        Obj::Str(_) => "a string",
        Obj::Bytes(_) => "bytes",
        Obj::Tuple(_) => "a tuple",
        Obj::List(_) => "a list",
        Obj::Dict(_) => "a dict",
        Obj::Global(..) => "a global",
        Obj::Storage(_) => "a storage",
        Obj::Tensor(_) => "a tensor",
        Obj::NumpyDType { .. } => "a numpy dtype",
        Obj::Object { .. } => "an object",
        Obj::Text(_) => "a value",
        Obj::Unsupported { .. } => "an unsupported value",
    }
}

fn pairs(items: &[Id]) -> Result<Vec<(Id, Id)>, ErrorKind> {
    if items.len() % 2 != 0 {
        return Err(perr("odd number of items for a dict"));
    }
    Ok(items.chunks_exact(2).map(|c| (c[0], c[1])).collect())
}

fn parse_int(s: &str) -> Result<i64, ErrorKind> {
    s.trim().parse().map_err(|_| {
        perr(format!(
            "bad integer literal `{}`",
            s.chars().take(40).collect::<String>()
        ))
    })
}

/// `LONG1`/`LONG4` payload: little-endian two's complement.
fn long_from_bytes(b: &[u8]) -> Obj {
    if b.is_empty() {
        return Obj::Int(0);
    }
    if b.len() <= 8 {
        let neg = b[b.len() - 1] & 0x80 != 0;
        let mut v = [if neg { 0xff } else { 0 }; 8];
        v[..b.len()].copy_from_slice(b);
        return Obj::Int(i64::from_le_bytes(v));
    }
    Obj::BigInt(b.to_vec())
}

/// Text from pickle strings; pickle writes lone surrogates with `surrogatepass`, which we
/// accept lossily.
fn utf8(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => String::from_utf8_lossy(b).into_owned(),
    }
}

fn latin1(b: &[u8]) -> String {
    b.iter().map(|&c| c as char).collect()
}

fn raw_unicode_escape(b: &[u8]) -> Result<String, ErrorKind> {
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == b'u' || b[i + 1] == b'U') {
            let n = if b[i + 1] == b'u' { 4 } else { 8 };
            let hex = b
                .get(i + 2..i + 2 + n)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .and_then(char::from_u32)
                .ok_or_else(|| perr("bad \\u escape in UNICODE"))?;
            out.push(hex);
            i += 2 + n;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    Ok(out)
}

/// A protocol-0 `STRING` argument: a quoted Python literal with backslash escapes.
fn python_string_literal(b: &[u8]) -> Result<String, ErrorKind> {
    if b.len() < 2 || b[0] != b[b.len() - 1] || !(b[0] == b'\'' || b[0] == b'"') {
        return Err(perr("STRING argument is not quoted"));
    }
    let b = &b[1..b.len() - 1];
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let c = b[i + 1];
            i += 2;
            match c {
                b'n' => out.push('\n'),
                b't' => out.push('\t'),
                b'r' => out.push('\r'),
                b'\\' => out.push('\\'),
                b'\'' => out.push('\''),
                b'"' => out.push('"'),
                b'x' => {
                    let v = b
                        .get(i..i + 2)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                        .ok_or_else(|| perr("bad \\x escape in STRING"))?;
                    out.push(v as char);
                    i += 2;
                }
                c => {
                    out.push('\\');
                    out.push(c as char);
                }
            }
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    Ok(out)
}

fn numpy_scalar(code: &str, little: bool, b: &[u8]) -> Obj {
    let code = code.trim_start_matches(['<', '>', '=', '|']);
    macro_rules! num {
        ($t:ty, $n:expr, $wrap:expr) => {{
            match <[u8; $n]>::try_from(b) {
                Ok(a) => $wrap(if little {
                    <$t>::from_le_bytes(a)
                } else {
                    <$t>::from_be_bytes(a)
                }),
                Err(_) => Obj::Text(format!("numpy scalar {code} of {} bytes", b.len())),
            }
        }};
    }
    match code {
        "f8" => num!(f64, 8, Obj::Float),
        "f4" => num!(f32, 4, |v: f32| Obj::Float(v as f64)),
        "f2" => num!(u16, 2, |v: u16| Obj::Float(
            half::f16::from_bits(v).to_f64()
        )),
        "i8" => num!(i64, 8, Obj::Int),
        "i4" => num!(i32, 4, |v: i32| Obj::Int(v as i64)),
        "i2" => num!(i16, 2, |v: i16| Obj::Int(v as i64)),
        "i1" => num!(i8, 1, |v: i8| Obj::Int(v as i64)),
        "u8" => num!(u64, 8, |v: u64| i64::try_from(v)
            .map(Obj::Int)
            .unwrap_or(Obj::Float(v as f64))),
        "u4" => num!(u32, 4, |v: u32| Obj::Int(v as i64)),
        "u2" => num!(u16, 2, |v: u16| Obj::Int(v as i64)),
        "u1" => num!(u8, 1, |v: u8| Obj::Int(v as i64)),
        "b1" => num!(u8, 1, |v: u8| Obj::Bool(v != 0)),
        _ => Obj::Text(format!("numpy scalar of dtype {code}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(bytes: &[u8]) -> Result<(Unpickler<'_>, Id), ErrorKind> {
        let mut u = Unpickler::new(bytes, 0, false);
        let id = u.load()?;
        Ok((u, id))
    }

    #[test]
    fn memoised_dict_sees_later_items() {
        // {} memo0, mark 'a' 1 setitems, then [get0] -> list containing the filled dict.
        let p = b"\x80\x02}q\x00(X\x01\x00\x00\x00aK\x01u]q\x01h\x00a0h\x01.";
        let (u, id) = run(p).unwrap();
        let Obj::List(v) = u.get(id) else { panic!() };
        let Obj::Dict(d) = u.get(v[0]) else { panic!() };
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn integers() {
        let (u, id) = run(b"\x80\x02(J\xff\xff\xff\xff\x8a\x02\x00\x80M\xff\xffI42\nt.").unwrap();
        let Obj::Tuple(v) = u.get(id) else { panic!() };
        let ints: Vec<i64> = v
            .iter()
            .map(|&i| match u.get(i) {
                Obj::Int(x) => *x,
                _ => panic!(),
            })
            .collect();
        assert_eq!(ints, vec![-1, -32768, 65535, 42]);
    }

    #[test]
    fn forbidden_globals_are_refused_on_read() {
        for (m, n) in [
            ("os", "system"),
            ("builtins", "eval"),
            ("__builtin__", "exec"),
        ] {
            let p = format!("c{m}\n{n}\n(S'ls'\ntR.");
            match run(p.as_bytes()) {
                Err(ErrorKind::ForbiddenGlobal { module, name }) => {
                    assert_eq!((module.as_str(), name.as_str()), (m, n))
                }
                other => panic!("{m}.{n}: {:?}", other.map(|_| ())),
            }
        }
    }

    #[test]
    fn script_classes_only_in_script_mode() {
        let p = b"\x80\x02c__torch__.M\nNet\n)\x81}b.";
        assert!(matches!(run(p), Err(ErrorKind::ForbiddenGlobal { .. })));
        let mut u = Unpickler::new(p, 0, true);
        let id = u.load().unwrap();
        assert!(matches!(u.get(id), Obj::Object { state: Some(_), .. }));
    }

    #[test]
    fn truncated_lengths_are_errors() {
        assert!(matches!(
            run(b"\x80\x02X\xff\xff\xff\x7fab"),
            Err(ErrorKind::Truncated(_))
        ));
        assert!(run(b"\x80\x02").is_err());
        assert!(run(b"0").is_err());
        assert!(run(b"\x80\x02h\x05.").is_err());
        assert!(run(b"e.").is_err());
    }
}
