//! Content hashes: BLAKE3 per tensor over (dtype, shape, bytes), a model hash per file, and
//! tensors that repeat across (or within) files.

use std::collections::BTreeMap;

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, Error, combine_hashes};

/// The hash of one tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorHash {
    /// Tensor name.
    pub name: String,
    /// Hex BLAKE3 of dtype, shape and bytes.
    pub hash: String,
    /// Stored bytes.
    pub bytes: u64,
}

/// Hashes of one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileHash {
    /// The path as given.
    pub path: String,
    /// Hash over all (name, tensor hash) pairs in file order.
    pub model_hash: String,
    /// Per-tensor hashes in file order.
    pub tensors: Vec<TensorHash>,
}

/// A tensor content found more than once.
#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    /// The shared hash.
    pub hash: String,
    /// Bytes of one copy.
    pub bytes: u64,
    /// Every (path, tensor name) holding it.
    pub occurrences: Vec<(String, String)>,
}

/// The result of [`hash_files`].
#[derive(Debug, Clone, Serialize)]
pub struct HashReport {
    /// One entry per file, in the order given.
    pub files: Vec<FileHash>,
    /// Tensors with equal hashes (across or within files), largest first.
    pub duplicates: Vec<Duplicate>,
}

/// Hashes every tensor of every checkpoint (in parallel across tensors); the model hash is
/// [`Checkpoint::model_hash`]'s.
pub fn hash_files(cks: &[(String, Checkpoint)]) -> Result<HashReport, Error> {
    let mut files = Vec::with_capacity(cks.len());
    for (label, ck) in cks {
        let tensors = (0..ck.len())
            .into_par_iter()
            .map(|i| {
                let t = ck.tensor_at(i)?;
                Ok((t.content_hash(), t.bytes.len() as u64))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let model = combine_hashes(ck.names().zip(tensors.iter().map(|(h, _)| h)));
        files.push(FileHash {
            path: label.clone(),
            model_hash: model.to_hex().to_string(),
            tensors: ck
                .names()
                .zip(tensors)
                .map(|(name, (h, bytes))| TensorHash {
                    name: name.to_string(),
                    hash: h.to_hex().to_string(),
                    bytes,
                })
                .collect(),
        });
    }
    type Occurrences = Vec<(String, String)>;
    let mut by_hash: BTreeMap<&str, (u64, Occurrences)> = BTreeMap::new();
    for f in &files {
        for t in &f.tensors {
            by_hash
                .entry(&t.hash)
                .or_insert((t.bytes, Vec::new()))
                .1
                .push((f.path.clone(), t.name.clone()));
        }
    }
    let mut duplicates: Vec<Duplicate> = by_hash
        .into_iter()
        .filter(|(_, (_, occ))| occ.len() > 1)
        .map(|(h, (bytes, occurrences))| Duplicate {
            hash: h.to_string(),
            bytes,
            occurrences,
        })
        .collect();
    duplicates.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.hash.cmp(&b.hash)));
    Ok(HashReport { files, duplicates })
}
