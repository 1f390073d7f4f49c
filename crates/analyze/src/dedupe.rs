//! Exact and near duplicates among models and tensors, and the bytes that sharing them would
//! save.
//!
//! Exact duplicates are equal BLAKE3 content hashes (dtype, shape, bytes; see [`crate::hash`]).
//! Near duplicates are tensors of the same name and shape in different files whose cosine
//! similarity is at least a threshold (found through a seeded sample of each tensor's values,
//! then confirmed on the full tensors); two models are near duplicates when they have the same
//! tensor names and shapes and every tensor is an exact or near duplicate of its counterpart.

use std::collections::{BTreeMap, HashMap};

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, Error};

use crate::hash::{Duplicate, hash_files};
use crate::rng::SplitMix64;
use crate::similarity::{PairSums, SimilarityOptions};

/// Options of [`dedupe`].
#[derive(Debug, Clone)]
pub struct DedupeOptions {
    /// Cosine similarity at or above which two tensors are near duplicates.
    pub threshold: f64,
    /// Tensors with fewer elements are only compared exactly.
    pub min_numel: usize,
    /// Values sampled per tensor for the first, cheap comparison.
    pub sample: usize,
    /// Seed for the sample positions.
    pub seed: u64,
}

impl Default for DedupeOptions {
    fn default() -> Self {
        DedupeOptions {
            threshold: 0.999,
            min_numel: 256,
            sample: 1024,
            seed: 0,
        }
    }
}

/// One model file.
#[derive(Debug, Clone, Serialize)]
pub struct ModelEntry {
    /// Path as given.
    pub path: String,
    /// BLAKE3 model hash.
    pub model_hash: String,
    /// Stored tensor bytes.
    pub bytes: u64,
}

/// Two tensors with a cosine similarity above the threshold.
#[derive(Debug, Clone, Serialize)]
pub struct NearTensor {
    /// Tensor name (the same in both files).
    pub name: String,
    /// First file.
    pub a: String,
    /// Second file.
    pub b: String,
    /// Cosine similarity.
    pub cosine: f64,
    /// Bytes of one copy (in file A).
    pub bytes: u64,
}

/// Two models that are near duplicates.
#[derive(Debug, Clone, Serialize)]
pub struct NearModel {
    /// First file.
    pub a: String,
    /// Second file.
    pub b: String,
    /// The smallest tensor cosine (1 for exactly equal tensors).
    pub min_cosine: f64,
    /// Tensors that are exactly equal.
    pub exact_tensors: usize,
    /// Tensors that are only near duplicates.
    pub near_tensors: usize,
}

/// The result of [`dedupe`].
#[derive(Debug, Clone, Serialize)]
pub struct DedupeReport {
    /// Every model, in the order given.
    pub models: Vec<ModelEntry>,
    /// Groups of files with equal model hashes.
    pub duplicate_models: Vec<Vec<String>>,
    /// Tensor contents stored more than once (across or within files), largest first.
    pub duplicate_tensors: Vec<Duplicate>,
    /// Near-duplicate model pairs (not exact duplicates).
    pub near_duplicate_models: Vec<NearModel>,
    /// Near-duplicate tensor pairs (not exact duplicates), largest first.
    pub near_duplicate_tensors: Vec<NearTensor>,
    /// Bytes saved by storing each exactly duplicated tensor once.
    pub exact_bytes_saved: u64,
    /// Further bytes saved by also storing near-duplicate tensors once.
    pub near_bytes_saved: u64,
    /// Bytes of all models.
    pub total_bytes: u64,
}

/// Two tensors, each as (model index, tensor index).
type TensorPair = ((usize, usize), (usize, usize));

fn find(parent: &mut [usize], mut x: usize) -> usize {
    while parent[x] != x {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    x
}

fn name_seed(seed: u64, name: &str) -> u64 {
    // FNV-1a over the name, mixed with the seed.
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for b in name.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// Finds exact and near duplicates among `models` (label, checkpoint).
pub fn dedupe(
    models: &[(String, Checkpoint)],
    opts: &DedupeOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<DedupeReport, Error> {
    let hashes = hash_files(models)?;
    progress();
    let entries: Vec<ModelEntry> = hashes
        .files
        .iter()
        .zip(models)
        .map(|(f, (_, ck))| ModelEntry {
            path: f.path.clone(),
            model_hash: f.model_hash.clone(),
            bytes: ck.total_bytes(),
        })
        .collect();
    let mut by_model: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for e in &entries {
        by_model
            .entry(&e.model_hash)
            .or_default()
            .push(e.path.clone());
    }
    let duplicate_models: Vec<Vec<String>> =
        by_model.into_values().filter(|g| g.len() > 1).collect();

    // Tensor occurrences: (model, tensor index) -> node id for union-find.
    let mut node: HashMap<(usize, usize), usize> = HashMap::new();
    let mut node_bytes: Vec<u64> = Vec::new();
    for (m, f) in hashes.files.iter().enumerate() {
        for (t, th) in f.tensors.iter().enumerate() {
            node.insert((m, t), node_bytes.len());
            node_bytes.push(th.bytes);
        }
    }
    let mut parent: Vec<usize> = (0..node_bytes.len()).collect();
    let union = |parent: &mut Vec<usize>, a: usize, b: usize| {
        let (ra, rb) = (find(parent, a), find(parent, b));
        if ra != rb {
            parent[ra.max(rb)] = ra.min(rb);
        }
    };
    let mut by_hash: HashMap<&str, usize> = HashMap::new();
    for (m, f) in hashes.files.iter().enumerate() {
        for (t, th) in f.tensors.iter().enumerate() {
            let id = node[&(m, t)];
            match by_hash.get(th.hash.as_str()) {
                Some(&first) => union(&mut parent, first, id),
                None => {
                    by_hash.insert(&th.hash, id);
                }
            }
        }
    }
    let exact_bytes_saved = clustered_savings(&mut parent, &node_bytes);

    // Near duplicates: same name and shape, different content, in different files.
    let mut groups: BTreeMap<&str, Vec<(usize, usize)>> = BTreeMap::new();
    for (m, (_, ck)) in models.iter().enumerate() {
        for (t, info) in ck.infos().enumerate() {
            if info.numel() >= opts.min_numel.max(1) {
                groups.entry(info.name.as_str()).or_default().push((m, t));
            }
        }
    }
    // Sample each candidate tensor once.
    let mut cands: Vec<(usize, usize)> = groups
        .values()
        .filter(|g| g.len() > 1)
        .flatten()
        .copied()
        .collect();
    cands.sort_unstable();
    let samples: HashMap<(usize, usize), Vec<f32>> = cands
        .par_iter()
        .map(|&(m, t)| {
            let ck = &models[m].1;
            let tv = ck.tensor_at(t)?;
            let v = tv
                .f32s()
                .map_err(|k| Error::new(ck.path(), k).with_tensor(tv.name))?;
            let mut g = SplitMix64::new(name_seed(opts.seed, tv.name) ^ v.len() as u64);
            let idx = g.sample_sorted(v.len(), opts.sample.max(1));
            Ok(((m, t), idx.iter().map(|&i| v[i]).collect()))
        })
        .collect::<Result<_, Error>>()?;
    let sim = SimilarityOptions::default();
    let infos: Vec<Vec<&weightspace_io::TensorInfo>> =
        models.iter().map(|(_, ck)| ck.infos().collect()).collect();
    let mut pairs: Vec<((usize, usize), (usize, usize))> = Vec::new();
    for g in groups.values().filter(|g| g.len() > 1) {
        for (i, &x) in g.iter().enumerate() {
            for &y in &g[i + 1..] {
                let (ix, iy) = (infos[x.0][x.1], infos[y.0][y.1]);
                if x.0 == y.0 || ix.shape != iy.shape {
                    continue;
                }
                if hashes.files[x.0].tensors[x.1].hash == hashes.files[y.0].tensors[y.1].hash {
                    continue;
                }
                let c = near_cosine(&PairSums::of(&samples[&x], &samples[&y], &sim));
                // The sample is a screen: keep a margin for its error.
                if c >= opts.threshold - 0.01 {
                    pairs.push((x, y));
                }
            }
        }
    }
    let full_cosine = |(ca, x): (&Checkpoint, usize), (cb, y): (&Checkpoint, usize)| {
        let (ta, tb) = (ca.tensor_at(x)?, cb.tensor_at(y)?);
        let va = ta
            .f32s()
            .map_err(|k| Error::new(ca.path(), k).with_tensor(ta.name))?;
        let vb = tb
            .f32s()
            .map_err(|k| Error::new(cb.path(), k).with_tensor(tb.name))?;
        Ok::<f64, Error>(near_cosine(&PairSums::of(&va, &vb, &sim)))
    };
    let confirmed: Vec<Option<NearTensor>> = pairs
        .par_iter()
        .map(|&(x, y)| {
            let (ca, cb) = (&models[x.0].1, &models[y.0].1);
            let c = full_cosine((ca, x.1), (cb, y.1))?;
            let info = infos[x.0][x.1];
            Ok((c >= opts.threshold).then(|| NearTensor {
                name: info.name.clone(),
                a: models[x.0].0.clone(),
                b: models[y.0].0.clone(),
                cosine: c,
                bytes: info.nbytes() as u64,
            }))
        })
        .collect::<Result<_, Error>>()?;
    let mut near_tensors = Vec::new();
    let mut near_of: HashMap<TensorPair, f64> = HashMap::new();
    for (&(x, y), c) in pairs.iter().zip(confirmed) {
        if let Some(c) = c {
            union(&mut parent, node[&x], node[&y]);
            near_of.insert((x, y), c.cosine);
            near_tensors.push(c);
        }
    }
    let all_saved = clustered_savings(&mut parent, &node_bytes);

    // Model-level near duplicates.
    let mut near_models = Vec::new();
    for i in 0..models.len() {
        for j in i + 1..models.len() {
            if entries[i].model_hash == entries[j].model_hash {
                continue;
            }
            let (a, b) = (&models[i].1, &models[j].1);
            if a.len() != b.len() || a.is_empty() {
                continue;
            }
            let (mut exact, mut near, mut min_cos, mut ok) = (0, 0, 1.0f64, true);
            for (t, info) in a.infos().enumerate() {
                let Some(u) = b.names().position(|n| n == info.name) else {
                    ok = false;
                    break;
                };
                if infos[j][u].shape != info.shape {
                    ok = false;
                    break;
                }
                if hashes.files[i].tensors[t].hash == hashes.files[j].tensors[u].hash {
                    exact += 1;
                } else if let Some(c) = near_of.get(&((i, t), (j, u))) {
                    near += 1;
                    min_cos = min_cos.min(*c);
                } else if info.numel() < opts.min_numel.max(1) {
                    // Too small for the tensor-level screen: compare in full (cheap). A model
                    // differing only in the dtype of its biases is still a near duplicate.
                    let c = full_cosine((a, t), (b, u))?;
                    if c >= opts.threshold {
                        near += 1;
                        min_cos = min_cos.min(c);
                    } else {
                        ok = false;
                        break;
                    }
                } else {
                    ok = false;
                    break;
                }
            }
            if ok {
                near_models.push(NearModel {
                    a: models[i].0.clone(),
                    b: models[j].0.clone(),
                    min_cosine: min_cos,
                    exact_tensors: exact,
                    near_tensors: near,
                });
            }
        }
    }
    let mut near_duplicate_tensors: Vec<NearTensor> = near_tensors;
    near_duplicate_tensors.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.name.cmp(&b.name)));
    Ok(DedupeReport {
        total_bytes: entries.iter().map(|e| e.bytes).sum(),
        models: entries,
        duplicate_models,
        duplicate_tensors: hashes.duplicates,
        near_duplicate_models: near_models,
        near_duplicate_tensors,
        exact_bytes_saved,
        near_bytes_saved: all_saved.saturating_sub(exact_bytes_saved),
    })
}

/// Cosine for near-duplicate tests: two all-zero tensors are equal (cosine 1, where the plain
/// cosine is undefined); one all-zero tensor against another tensor is NaN (never near).
fn near_cosine(s: &PairSums) -> f64 {
    if s.aa == 0.0 && s.bb == 0.0 && s.count > 0 {
        1.0
    } else {
        s.cosine()
    }
}

/// Σ over clusters of (cluster bytes − its largest member): what storing one copy (the largest,
/// e.g. the f32 one of an f32/f16 pair) of each cluster would save. Merging clusters never lowers
/// it.
fn clustered_savings(parent: &mut [usize], bytes: &[u64]) -> u64 {
    let mut sums: HashMap<usize, (u64, u64)> = HashMap::new();
    for (i, &b) in bytes.iter().enumerate() {
        let r = find(parent, i);
        let e = sums.entry(r).or_insert((0, 0));
        e.0 += b;
        e.1 = e.1.max(b);
    }
    sums.values().map(|(sum, max)| sum - max).sum()
}
