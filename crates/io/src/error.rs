//! The one error type of the crate: every error names the file, the tensor when there is one, and
//! exactly what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// An error while reading or writing a checkpoint.
///
/// It always carries the file it is about and, where the problem is local to a tensor, that
/// tensor's name; [`ErrorKind`] says what is wrong.
#[derive(Debug)]
pub struct Error {
    /// The file (or directory) being read or written.
    pub path: PathBuf,
    /// The tensor the problem is about, if any.
    pub tensor: Option<String>,
    /// What is wrong.
    pub kind: ErrorKind,
}

/// What went wrong. Variants are precise so that callers (and tests) can tell problems apart.
#[derive(Debug, thiserror::Error)]
pub enum ErrorKind {
    /// The operating system refused a read or write.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The bytes match no supported format.
    #[error("unrecognised file format ({0})")]
    UnknownFormat(String),
    /// The file ends before the structure it announces.
    #[error("file is truncated: {0}")]
    Truncated(String),
    /// A header announces more bytes than the cap allows (a hostile or corrupt file).
    #[error("header length {len} bytes exceeds the limit of {limit} bytes")]
    HeaderTooLarge {
        /// The announced length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The header is not valid (JSON, pickle, protobuf, ... depending on the format).
    #[error("invalid header: {0}")]
    InvalidHeader(String),
    /// A tensor's data lies (partly) outside the data section.
    #[error("data offsets {start}..{end} are outside the data section of {available} bytes")]
    OffsetOutOfBounds {
        /// First byte of the tensor.
        start: u64,
        /// One past the last byte.
        end: u64,
        /// Size of the data section.
        available: u64,
    },
    /// Two tensors share bytes, or the data section has holes, where the format forbids it.
    #[error("tensor data is not contiguous: {0}")]
    NotContiguous(String),
    /// The byte size does not match the shape and dtype.
    #[error(
        "byte size {bytes} does not match shape {shape:?} of dtype {dtype} ({expected} bytes expected)"
    )]
    SizeMismatch {
        /// Bytes found.
        bytes: u64,
        /// Bytes the shape implies.
        expected: u64,
        /// The shape.
        shape: Vec<usize>,
        /// The dtype name.
        dtype: String,
    },
    /// A dtype the format allows but weightspace cannot represent, or an unknown dtype code.
    #[error("unsupported dtype {0}")]
    UnsupportedDType(String),
    /// A pickle asked for a global outside the allowlist. Nothing was executed.
    #[error(
        "refused to load: the pickle asks for global `{module}.{name}`, which is not on the allowlist of tensor-building globals (nothing was executed)"
    )]
    ForbiddenGlobal {
        /// The module, e.g. `os`.
        module: String,
        /// The attribute, e.g. `system`.
        name: String,
    },
    /// Malformed pickle stream.
    #[error("invalid pickle: {0}")]
    Pickle(String),
    /// Malformed zip archive.
    #[error("invalid zip archive: {0}")]
    Zip(String),
    /// Any other structural problem in the file, described in words.
    #[error("{0}")]
    Invalid(String),
    /// A format feature that is recognised but deliberately not supported.
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The tensor asked for does not exist.
    #[error("no such tensor")]
    TensorNotFound,
    /// The tensors asked for (`--key`, `--include`/`--exclude`, `--strip-prefix`/`--rename`,
    /// see [`crate::OpenOptions`]) cannot be chosen: nothing matches, two tensors end up with
    /// one name, a bad pattern, or a checkpoint whose model parameters are ambiguous.
    #[error("{0}")]
    Selection(String),
}

impl Error {
    /// A new error about `path`.
    pub fn new(path: impl AsRef<Path>, kind: ErrorKind) -> Self {
        Error {
            path: path.as_ref().to_path_buf(),
            tensor: None,
            kind,
        }
    }

    /// The same error, about tensor `name`.
    pub fn with_tensor(mut self, name: impl Into<String>) -> Self {
        self.tensor = Some(name.into());
        self
    }

    /// Shorthand: an [`ErrorKind::Invalid`] error.
    pub fn invalid(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::new(path, ErrorKind::Invalid(msg.into()))
    }

    /// Shorthand: an [`ErrorKind::Io`] error.
    pub fn io(path: impl AsRef<Path>, err: std::io::Error) -> Self {
        Error::new(path, ErrorKind::Io(err))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(t) = &self.tensor {
            write!(f, ": tensor `{t}`")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
