//! NumPy `.npy` and `.npz`. (Being implemented.)

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint::Parsed;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::Buf;
use crate::zipfs::ZipEntry;

/// Reads a single `.npy` array.
pub(crate) fn open_npy(path: &Path, _buf: Arc<Buf>) -> Result<Parsed> {
    Err(Error::new(
        path,
        ErrorKind::Unsupported(".npy (not yet)".into()),
    ))
}

/// Reads an `.npz` archive.
pub(crate) fn open_npz(path: &Path, _buf: Arc<Buf>, _entries: Vec<ZipEntry>) -> Result<Parsed> {
    Err(Error::new(
        path,
        ErrorKind::Unsupported(".npz (not yet)".into()),
    ))
}
