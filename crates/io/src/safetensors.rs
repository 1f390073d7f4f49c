//! The safetensors format: an 8-byte little-endian header length, a JSON header (maybe padded
//! with spaces) mapping names to `{dtype, shape, data_offsets}` plus an optional
//! `__metadata__` string map, then the data section. Validation follows the reference crate and
//! names the tensor at fault: offsets in bounds, byte size = numel × dtype size, tensors packed
//! without overlap or holes, nothing after the last tensor.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::Value;

use crate::checkpoint::{Format, Parsed};
use crate::dtype::DType;
use crate::error::{Error, ErrorKind, Result};
use crate::tensor::{Buf, Data, Entry, TensorInfo};

/// Largest header we accept (the reference implementation's limit).
pub const MAX_HEADER_SIZE: u64 = 100_000_000;

/// True when `head` starts like a safetensors file.
pub(crate) fn sniff(head: &[u8]) -> bool {
    head.len() >= 9 && head[8] == b'{'
}

/// Maps a safetensors dtype string to ours.
fn parse_dtype(s: &str) -> Option<DType> {
    Some(match s {
        "BOOL" => DType::Bool,
        "U8" => DType::U8,
        "I8" => DType::I8,
        "U16" => DType::U16,
        "I16" => DType::I16,
        "U32" => DType::U32,
        "I32" => DType::I32,
        "U64" => DType::U64,
        "I64" => DType::I64,
        "F16" => DType::F16,
        "BF16" => DType::BF16,
        "F32" => DType::F32,
        "F64" => DType::F64,
        "F8_E4M3" => DType::F8_E4M3,
        "F8_E5M2" => DType::F8_E5M2,
        _ => return None,
    })
}

/// Parses and validates a safetensors file held in `buf`.
pub(crate) fn open(path: &Path, buf: Arc<Buf>) -> Result<Parsed> {
    let err = |kind| Error::new(path, kind);
    if buf.len() < 8 {
        return Err(err(ErrorKind::Truncated(
            "shorter than the 8-byte header length".into(),
        )));
    }
    let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
    if n > MAX_HEADER_SIZE {
        return Err(err(ErrorKind::HeaderTooLarge {
            len: n,
            limit: MAX_HEADER_SIZE,
        }));
    }
    let header_end = 8 + n as usize;
    if header_end > buf.len() {
        return Err(err(ErrorKind::Truncated(format!(
            "the header announces {n} bytes but only {} follow",
            buf.len() - 8
        ))));
    }
    let text = std::str::from_utf8(&buf[8..header_end]).map_err(|e| {
        err(ErrorKind::InvalidHeader(format!(
            "header is not UTF-8: {e}"
        )))
    })?;
    let header: serde_json::Map<String, Value> = serde_json::from_str(text).map_err(|e| {
        err(ErrorKind::InvalidHeader(format!(
            "header is not a JSON object: {e}"
        )))
    })?;
    let data_len = buf.len() - header_end;

    let mut metadata = BTreeMap::new();
    let mut tensors: Vec<(TensorInfo, usize, usize)> = Vec::with_capacity(header.len());
    for (name, v) in &header {
        if name == "__metadata__" {
            let obj = v.as_object().ok_or_else(|| {
                err(ErrorKind::InvalidHeader(
                    "`__metadata__` is not an object".into(),
                ))
            })?;
            for (k, v) in obj {
                if !v.is_string() {
                    return Err(err(ErrorKind::InvalidHeader(format!(
                        "`__metadata__.{k}` is not a string"
                    ))));
                }
                metadata.insert(k.clone(), v.clone());
            }
            continue;
        }
        let terr = |msg: &str| err(ErrorKind::InvalidHeader(msg.into())).with_tensor(name);
        let obj = v
            .as_object()
            .ok_or_else(|| terr("entry is not an object"))?;
        let dtype_s = obj
            .get("dtype")
            .and_then(Value::as_str)
            .ok_or_else(|| terr("missing string field `dtype`"))?;
        let dtype = parse_dtype(dtype_s)
            .ok_or_else(|| err(ErrorKind::UnsupportedDType(dtype_s.into())).with_tensor(name))?;
        let shape = obj
            .get("shape")
            .and_then(Value::as_array)
            .ok_or_else(|| terr("missing array field `shape`"))?
            .iter()
            .map(|d| d.as_u64().and_then(|d| usize::try_from(d).ok()))
            .collect::<Option<Vec<usize>>>()
            .ok_or_else(|| terr("`shape` holds something other than non-negative integers"))?;
        let offs = obj
            .get("data_offsets")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 2)
            .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
            .ok_or_else(|| terr("`data_offsets` is not a pair of non-negative integers"))?;
        if offs.1 < offs.0 {
            return Err(terr(&format!(
                "`data_offsets` end {} is before start {}",
                offs.1, offs.0
            )));
        }
        if offs.1 > data_len as u64 {
            return Err(err(ErrorKind::OffsetOutOfBounds {
                start: offs.0,
                end: offs.1,
                available: data_len as u64,
            })
            .with_tensor(name));
        }
        let (start, end) = (offs.0 as usize, offs.1 as usize);
        let expected = shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| dtype.storage_bytes(n));
        if expected != Some(end - start) {
            return Err(err(ErrorKind::SizeMismatch {
                bytes: (end - start) as u64,
                expected: expected.map_or(u64::MAX, |e| e as u64),
                shape,
                dtype: dtype.name().into(),
            })
            .with_tensor(name));
        }
        tensors.push((
            TensorInfo {
                name: name.clone(),
                dtype,
                shape,
            },
            start,
            end,
        ));
    }
    // File order is data order; the reference crate packs tensors without holes or overlap.
    tensors.sort_by(|a, b| (a.1, a.2, &a.0.name).cmp(&(b.1, b.2, &b.0.name)));
    let mut pos = 0usize;
    let mut prev: Option<&str> = None;
    for (info, start, end) in &tensors {
        if *start < pos {
            return Err(err(ErrorKind::NotContiguous(format!(
                "bytes {start}..{end} overlap tensor `{}`",
                prev.unwrap_or("?")
            )))
            .with_tensor(&info.name));
        }
        if *start > pos {
            return Err(err(ErrorKind::NotContiguous(format!(
                "{} unused bytes before this tensor (offset {pos}..{start})",
                start - pos
            )))
            .with_tensor(&info.name));
        }
        pos = *end;
        prev = Some(&info.name);
    }
    if pos != data_len {
        return Err(err(ErrorKind::NotContiguous(format!(
            "{} bytes after the last tensor are not described by the header",
            data_len - pos
        ))));
    }
    let entries = tensors
        .into_iter()
        .map(|(info, start, end)| Entry {
            info,
            data: Data::Slice {
                buf: buf.clone(),
                start: header_end + start,
                len: end - start,
            },
        })
        .collect();
    Ok(Parsed {
        format: Format::Safetensors,
        entries,
        metadata,
        aliases: Default::default(),
        top_keys: Vec::new(),
    })
}
