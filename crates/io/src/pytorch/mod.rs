//! PyTorch checkpoints, read without running any pickle code. (Being implemented.)

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::Parsed;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::Buf;
use crate::zipfs::ZipEntry;

/// True when `head` starts like a legacy (pre-1.6) `torch.save` pickle stream.
pub(crate) fn sniff_legacy(head: &[u8]) -> bool {
    head.len() >= 2 && head[0] == 0x80 && (2..=5).contains(&head[1])
}

/// Reads a `torch.save` zip archive.
pub(crate) fn open_zip(path: &Path, _buf: Arc<Buf>, _entries: Vec<ZipEntry>) -> Result<Parsed> {
    Err(Error::new(
        path,
        ErrorKind::Unsupported("PyTorch zip checkpoints (not yet)".into()),
    ))
}

/// Reads a TorchScript archive.
pub(crate) fn open_torchscript(
    path: &Path,
    _buf: Arc<Buf>,
    _entries: Vec<ZipEntry>,
) -> Result<Parsed> {
    Err(Error::new(
        path,
        ErrorKind::Unsupported("TorchScript archives (not yet)".into()),
    ))
}

/// Reads a legacy (pre-1.6) `torch.save` stream.
pub(crate) fn open_legacy(path: &Path, _buf: Arc<Buf>) -> Result<Parsed> {
    Err(Error::new(
        path,
        ErrorKind::Unsupported("legacy PyTorch checkpoints (not yet)".into()),
    ))
}
