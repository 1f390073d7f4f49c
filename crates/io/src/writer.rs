//! Writing safetensors: streamed tensor by tensor, optionally sharded by size with a Hugging
//! Face style `*.safetensors.index.json`, always atomic (temp file in the same folder, fsync,
//! rename), so a failed write leaves nothing behind.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::TensorInfo;

/// A file being written atomically: bytes go to a hidden temp file beside the target, which
/// replaces the target only on [`AtomicFile::commit`]. Dropped without commit, it is removed.
pub struct AtomicFile {
    target: PathBuf,
    tmp: Option<tempfile::NamedTempFile>,
}

impl AtomicFile {
    /// Starts writing `target` (its folder must exist).
    pub fn create(target: &Path) -> Result<AtomicFile> {
        let dir = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // A temp file is 0600 for privacy; the finished output gets what any new file gets
        // (0666 less the umask, 0644 typically), as `cp` or `torch.save` would give it.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let tmp = builder.tempfile_in(dir).map_err(|e| Error::io(target, e))?;
        Ok(AtomicFile {
            target: target.to_path_buf(),
            tmp: Some(tmp),
        })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut std::fs::File {
        self.tmp.as_mut().expect("not committed").as_file_mut()
    }

    /// Flushes to disk and renames over the target.
    pub fn commit(mut self) -> Result<()> {
        let tmp = self.tmp.take().expect("not committed");
        tmp.as_file()
            .sync_all()
            .map_err(|e| Error::io(&self.target, e))?;
        tmp.persist(&self.target)
            .map_err(|e| Error::io(&self.target, e.error))?;
        if let Some(dir) = self.target.parent()
            && let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            })
        {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = AtomicFile::create(path)?;
    f.file().write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.commit()
}

/// Builds the safetensors header for `tensors` (in this order, packed), padded with spaces so
/// the data section starts 8-byte aligned. Returns the header bytes (with the length prefix).
fn header_bytes(
    tensors: &[TensorInfo],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>, ErrorKind> {
    let mut map = Map::new();
    if !metadata.is_empty() {
        map.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0usize;
    for t in tensors {
        if t.dtype.is_quantized() {
            return Err(ErrorKind::UnsupportedDType(format!(
                "{} cannot be stored in safetensors (tensor `{}`); convert to a float type first",
                t.dtype, t.name
            )));
        }
        let n = t.nbytes();
        map.insert(
            t.name.clone(),
            json!({"dtype": t.dtype.name(), "shape": t.shape, "data_offsets": [offset, offset + n]}),
        );
        offset += n;
    }
    let mut header = serde_json::to_vec(&Value::Object(map)).expect("JSON of plain values");
    let pad = (8 - (header.len() % 8)) % 8;
    header.extend(std::iter::repeat_n(b' ', pad));
    let mut out = Vec::with_capacity(8 + header.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    Ok(out)
}

/// Writes one safetensors file, atomically, streaming the data: `fetch(i)` is called once per
/// tensor, in order, and its bytes are written before the next is fetched.
pub fn write_safetensors<'a, F>(
    path: &Path,
    tensors: &[TensorInfo],
    metadata: &BTreeMap<String, String>,
    mut fetch: F,
) -> Result<()>
where
    F: FnMut(usize) -> Result<Cow<'a, [u8]>>,
{
    let header = header_bytes(tensors, metadata).map_err(|k| Error::new(path, k))?;
    let mut f = AtomicFile::create(path)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, f.file());
    w.write_all(&header).map_err(|e| Error::io(path, e))?;
    for (i, t) in tensors.iter().enumerate() {
        let bytes = fetch(i)?;
        if bytes.len() != t.nbytes() {
            return Err(Error::new(
                path,
                ErrorKind::SizeMismatch {
                    bytes: bytes.len() as u64,
                    expected: t.nbytes() as u64,
                    shape: t.shape.clone(),
                    dtype: t.dtype.name().into(),
                },
            )
            .with_tensor(&t.name));
        }
        w.write_all(&bytes).map_err(|e| Error::io(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))?;
    drop(w);
    f.commit()
}

/// Writes f32 tensors given as (name, shape, values) as one safetensors file, atomically:
/// the small-checkpoint case (demo nets, learned models, test fixtures).
pub fn write_f32_safetensors<N: AsRef<str>>(
    path: &Path,
    tensors: &[(N, Vec<usize>, Vec<f32>)],
    metadata: &BTreeMap<String, String>,
) -> Result<()> {
    let infos: Vec<TensorInfo> = tensors
        .iter()
        .map(|(name, shape, _)| TensorInfo {
            name: name.as_ref().to_string(),
            dtype: DType::F32,
            shape: shape.clone(),
        })
        .collect();
    write_safetensors(path, &infos, metadata, |i| {
        Ok(Cow::Owned(
            crate::dtype::encode_f32(&tensors[i].2, DType::F32).expect("f32 always encodes"),
        ))
    })
}

/// Splits tensors (in order) into shards of at most `max_bytes` each; a tensor larger than the
/// limit gets a shard of its own. Returns index lists.
pub fn plan_shards(tensors: &[TensorInfo], max_bytes: u64) -> Vec<Vec<usize>> {
    let mut shards: Vec<Vec<usize>> = Vec::new();
    let mut cur = Vec::new();
    let mut size = 0u64;
    for (i, t) in tensors.iter().enumerate() {
        let n = t.nbytes() as u64;
        if !cur.is_empty() && size + n > max_bytes {
            shards.push(std::mem::take(&mut cur));
            size = 0;
        }
        cur.push(i);
        size += n;
    }
    if !cur.is_empty() || shards.is_empty() {
        shards.push(cur);
    }
    shards
}

/// Writes tensors as safetensors, sharded when they exceed `max_shard_bytes`.
///
/// `out` names the single file (`model.safetensors`). When sharding is needed, shards are
/// written beside it as `<stem>-00001-of-0000N.safetensors` with `<stem>.safetensors.index.json`
/// (`{"metadata":{"total_size":…},"weight_map":{…}}`), as Hugging Face does. Every file is
/// written atomically and the index last. Returns the paths written (index last).
pub fn write_sharded<'a, F>(
    out: &Path,
    tensors: &[TensorInfo],
    metadata: &BTreeMap<String, String>,
    max_shard_bytes: Option<u64>,
    mut fetch: F,
) -> Result<Vec<PathBuf>>
where
    F: FnMut(usize) -> Result<Cow<'a, [u8]>>,
{
    let plan = match max_shard_bytes {
        Some(m) => plan_shards(tensors, m),
        None => vec![(0..tensors.len()).collect()],
    };
    if plan.len() == 1 {
        write_safetensors(out, tensors, metadata, fetch)?;
        return Ok(vec![out.to_path_buf()]);
    }
    let dir = out.parent().unwrap_or(Path::new(""));
    let file = out.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let stem = file.strip_suffix(".safetensors").unwrap_or(file);
    let n = plan.len();
    let mut written = Vec::with_capacity(n + 1);
    let mut weight_map = BTreeMap::new();
    for (k, idx) in plan.iter().enumerate() {
        let name = format!("{stem}-{:05}-of-{n:05}.safetensors", k + 1);
        let infos: Vec<TensorInfo> = idx.iter().map(|&i| tensors[i].clone()).collect();
        let p = dir.join(&name);
        let res = write_safetensors(&p, &infos, metadata, |j| fetch(idx[j]));
        if let Err(e) = res {
            for w in &written {
                let _ = std::fs::remove_file(w);
            }
            return Err(e);
        }
        for t in &infos {
            weight_map.insert(t.name.clone(), name.clone());
        }
        written.push(p);
    }
    let total: u64 = tensors.iter().map(|t| t.nbytes() as u64).sum();
    let index = json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    let index_path = dir.join(format!("{stem}.safetensors.index.json"));
    write_atomic(
        &index_path,
        serde_json::to_string_pretty(&index)
            .expect("JSON")
            .as_bytes(),
    )?;
    written.push(index_path);
    Ok(written)
}

/// Parses a size like `5GB`, `500MB`, `2GiB`, `1000000` (bytes).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1.0,
        "KB" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "TB" | "T" => 1e12,
        "KIB" => 1024.0,
        "MIB" => 1024.0 * 1024.0,
        "GIB" => 1024.0 * 1024.0 * 1024.0,
        "TIB" => 1024f64.powi(4),
        _ => return None,
    };
    let b = v * mult;
    (b >= 1.0 && b.is_finite()).then_some(b as u64)
}

/// Options for [`convert`].
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Target float dtype (F32, F16, BF16 or F64) for floating tensors; `None` keeps plain
    /// dtypes as stored and dequantises block-quantised ones to F32.
    pub dtype: Option<DType>,
    /// Shard when the output would exceed this many bytes.
    pub max_shard_bytes: Option<u64>,
}

/// Converts any readable checkpoint to safetensors at `out` (see [`write_sharded`]), one
/// tensor at a time. Integer and bool tensors keep their dtype; float tensors are cast to
/// `opts.dtype` when given; quantised tensors are dequantised. String-valued metadata is kept
/// and `converted_from` records the source format.
pub fn convert(ck: &crate::Checkpoint, out: &Path, opts: &ConvertOptions) -> Result<Vec<PathBuf>> {
    if let Some(d) = opts.dtype
        && !matches!(d, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
    {
        return Err(Error::new(
            out,
            ErrorKind::UnsupportedDType(format!(
                "{d} as a conversion target (use f32, f16, bf16 or f64)"
            )),
        ));
    }
    let target = |d: DType| -> DType {
        if d.is_quantized() {
            opts.dtype.unwrap_or(DType::F32)
        } else if d.is_float() {
            opts.dtype.unwrap_or(d)
        } else {
            d
        }
    };
    let infos: Vec<TensorInfo> = ck
        .infos()
        .map(|i| TensorInfo {
            name: i.name.clone(),
            dtype: target(i.dtype),
            shape: i.shape.clone(),
        })
        .collect();
    let mut metadata: BTreeMap<String, String> = ck
        .metadata()
        .iter()
        .filter_map(|(k, v)| match v {
            Value::String(s) => Some((k.clone(), s.clone())),
            Value::Number(n) => Some((k.clone(), n.to_string())),
            Value::Bool(b) => Some((k.clone(), b.to_string())),
            _ => None,
        })
        .collect();
    metadata
        .entry("converted_from".into())
        .or_insert_with(|| ck.format().name().to_string());
    write_sharded(out, &infos, &metadata, opts.max_shard_bytes, |i| {
        let t = ck.tensor_at(i)?;
        if t.dtype == infos[i].dtype {
            return Ok(Cow::Owned(t.bytes.into_owned()));
        }
        let vals = t
            .to_f32()
            .map_err(|k| Error::new(ck.path(), k).with_tensor(t.name))?;
        Ok(Cow::Owned(
            crate::dtype::encode_f32(&vals, infos[i].dtype).expect("float target"),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("5GB"), Some(5_000_000_000));
        assert_eq!(parse_size("2GiB"), Some(2 * 1024 * 1024 * 1024));
        assert_eq!(parse_size("1.5 MB"), Some(1_500_000));
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("abc"), None);
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size("5XB"), None);
    }

    #[test]
    fn shard_plan() {
        let t = |n: usize| TensorInfo {
            name: format!("t{n}"),
            dtype: DType::U8,
            shape: vec![n],
        };
        let ts = vec![t(4), t(4), t(10), t(2), t(2)];
        assert_eq!(plan_shards(&ts, 8), vec![vec![0, 1], vec![2], vec![3, 4]]);
        assert_eq!(plan_shards(&[], 8), vec![Vec::<usize>::new()]);
    }

    #[test]
    fn header_is_aligned() {
        let ts = vec![TensorInfo {
            name: "a".into(),
            dtype: DType::F32,
            shape: vec![3],
        }];
        let h = header_bytes(&ts, &BTreeMap::new()).unwrap();
        assert_eq!(h.len() % 8, 0);
    }
}
