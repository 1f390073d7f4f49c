//! GGUF v2/v3 (llama.cpp). (Being implemented.)

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::Parsed;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::Buf;

/// Reads a GGUF file.
pub(crate) fn open(path: &Path, _buf: Arc<Buf>) -> Result<Parsed> {
    Err(Error::new(
        path,
        ErrorKind::Unsupported("GGUF (not yet)".into()),
    ))
}
