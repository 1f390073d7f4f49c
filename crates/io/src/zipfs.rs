//! Zip archives (PyTorch checkpoints, `.npz`) read in place: stored entries are zero-copy slices
//! of the memory map, deflated entries are inflated on demand.

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::path::Path;
use std::sync::Arc;

use crate::error::{Error, ErrorKind, Result};
use crate::tensor::{Buf, Data};

/// Upper bound on the number of entries we accept (a hostile central directory can claim more).
const MAX_ENTRIES: usize = 1 << 20;

/// One file inside a zip archive.
#[derive(Debug, Clone)]
pub(crate) struct ZipEntry {
    /// Name as stored (forward slashes).
    pub name: String,
    /// First byte of the (possibly compressed) data within the archive.
    pub start: usize,
    /// Compressed size in bytes.
    pub compressed: usize,
    /// Uncompressed size in bytes.
    pub size: usize,
    /// Deflate-compressed (otherwise stored).
    pub deflated: bool,
}

/// Lists the entries of the zip archive held in `buf`.
pub(crate) fn list(path: &Path, buf: &Arc<Buf>) -> Result<Vec<ZipEntry>> {
    // The zip crate's own text starts "invalid Zip archive: ", which our kind already says.
    let zerr = |e: zip::result::ZipError| {
        let text = e.to_string();
        let detail = match text.get(..20) {
            Some(p) if p.eq_ignore_ascii_case("invalid zip archive:") => text[20..].trim_start(),
            _ => text.as_str(),
        };
        Error::new(path, ErrorKind::Zip(detail.to_string()))
    };
    let mut archive = zip::ZipArchive::new(Cursor::new(&buf[..])).map_err(zerr)?;
    if archive.len() > MAX_ENTRIES {
        return Err(Error::new(
            path,
            ErrorKind::Zip(format!("{} entries exceed the limit", archive.len())),
        ));
    }
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let f = archive.by_index_raw(i).map_err(zerr)?;
        if f.is_dir() {
            continue;
        }
        let name = f.name().map_err(zerr)?.into_owned();
        if f.encrypted() {
            return Err(Error::new(
                path,
                ErrorKind::Zip(format!("entry `{name}` is encrypted")),
            ));
        }
        let deflated = match f.compression() {
            zip::CompressionMethod::Stored => false,
            zip::CompressionMethod::Deflated => true,
            m => {
                return Err(Error::new(
                    path,
                    ErrorKind::Zip(format!("entry `{name}` uses unsupported compression {m:?}")),
                ));
            }
        };
        let start = f.data_start().ok_or_else(|| {
            Error::new(
                path,
                ErrorKind::Zip(format!("entry `{name}` has no data offset")),
            )
        })?;
        let compressed = f.compressed_size();
        let size = f.size();
        let end = start.checked_add(compressed);
        if end.is_none_or(|e| e > buf.len() as u64) || (!deflated && compressed != size) {
            return Err(Error::new(
                path,
                ErrorKind::Zip(format!(
                    "entry `{name}` claims {compressed} bytes at offset {start}, beyond the archive of {} bytes",
                    buf.len()
                )),
            ));
        }
        out.push(ZipEntry {
            name,
            start: start as usize,
            compressed: compressed as usize,
            size: size as usize,
            deflated,
        });
    }
    Ok(out)
}

impl ZipEntry {
    /// The entry's whole content (borrowed when stored, inflated when deflated).
    pub fn read<'a>(&self, path: &Path, buf: &'a Buf) -> Result<Cow<'a, [u8]>> {
        let raw = &buf[self.start..self.start + self.compressed];
        if !self.deflated {
            return Ok(Cow::Borrowed(raw));
        }
        inflate(path, &self.name, raw, self.size, usize::MAX).map(Cow::Owned)
    }

    /// The first `n` bytes of the content (or fewer if the entry is shorter), inflating only
    /// what is needed: used to read headers of large compressed entries.
    pub fn read_prefix<'a>(&self, path: &Path, buf: &'a Buf, n: usize) -> Result<Cow<'a, [u8]>> {
        let raw = &buf[self.start..self.start + self.compressed];
        if !self.deflated {
            return Ok(Cow::Borrowed(&raw[..n.min(raw.len())]));
        }
        inflate(path, &self.name, raw, self.size, n).map(Cow::Owned)
    }

    /// [`Data`] for bytes `offset..offset + len` of the entry's content: a zero-copy slice when
    /// stored, an on-demand inflate otherwise.
    pub fn data(&self, path: &Path, buf: &Arc<Buf>, offset: usize, len: usize) -> Result<Data> {
        if offset.checked_add(len).is_none_or(|e| e > self.size) {
            return Err(Error::new(
                path,
                ErrorKind::OffsetOutOfBounds {
                    start: offset as u64,
                    end: offset.saturating_add(len) as u64,
                    available: self.size as u64,
                },
            ));
        }
        if !self.deflated {
            return Ok(Data::Slice {
                buf: buf.clone(),
                start: self.start + offset,
                len,
            });
        }
        let (buf, entry, path) = (buf.clone(), self.clone(), path.to_path_buf());
        Ok(Data::Lazy(Arc::new(move || {
            let all = entry.read(&path, &buf)?;
            Ok(all[offset..offset + len].to_vec())
        })))
    }
}

/// Inflates `raw`, expecting `size` bytes, stopping after `limit` bytes.
fn inflate(path: &Path, name: &str, raw: &[u8], size: usize, limit: usize) -> Result<Vec<u8>> {
    let want = size.min(limit);
    let mut out = Vec::with_capacity(want.min(1 << 30));
    let mut dec = flate2::read::DeflateDecoder::new(raw).take(want as u64);
    dec.read_to_end(&mut out).map_err(|e| {
        Error::new(
            path,
            ErrorKind::Zip(format!("entry `{name}`: bad deflate data: {e}")),
        )
    })?;
    if out.len() != want {
        return Err(Error::new(
            path,
            ErrorKind::Zip(format!(
                "entry `{name}` inflates to {} bytes, its header says {size}",
                out.len()
            )),
        ));
    }
    Ok(out)
}
