//! ONNX initializers and constants. (Being implemented.)

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::Parsed;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::Buf;

/// True when `head` plausibly starts an ONNX `ModelProto`.
pub(crate) fn sniff(_head: &[u8]) -> bool {
    false
}

/// Reads an ONNX model's weights.
pub(crate) fn open(path: &Path, _buf: Arc<Buf>) -> Result<Parsed> {
    Err(Error::new(
        path,
        ErrorKind::Unsupported("ONNX (not yet)".into()),
    ))
}
