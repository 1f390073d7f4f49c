//! Pruning: zero a fraction of a checkpoint's weights, by magnitude, at random, or whole rows
//! by L1 norm (structured), per tensor or over the whole model.
//!
//! Only float tensors with two or more dimensions (weight matrices, convolution kernels) are
//! pruned; biases, norms and integer tensors are copied unchanged. Kept values keep their exact
//! bits and dtype (block-quantised GGUF tensors are written as f32).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use weightspace_io::{Checkpoint, DType, TensorInfo, write_sharded};

use crate::error::{Error, Result};
use crate::kernels::{self, CHUNK, Hist, Src, Stream, mag_key, n_chunks};
use crate::methods::kept_count;

/// How weights are chosen for removal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMethod {
    /// Keep the largest magnitudes.
    Magnitude,
    /// Keep each weight with probability `density` (seeded).
    Random,
    /// Keep whole rows (output units, dimension 0) with the largest L1 norms.
    L1Structured,
}

impl PruneMethod {
    /// Parses `magnitude`, `random` or `l1-structured`.
    pub fn from_name(s: &str) -> Option<PruneMethod> {
        Some(match s {
            "magnitude" => PruneMethod::Magnitude,
            "random" => PruneMethod::Random,
            "l1-structured" | "l1_structured" => PruneMethod::L1Structured,
            _ => return None,
        })
    }
}

/// Options for [`prune`].
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The method.
    pub method: PruneMethod,
    /// Fraction of weights (or rows) kept, in (0, 1].
    pub density: f64,
    /// Rank over the whole model instead of per tensor (magnitude only; ties with the global
    /// threshold are all kept).
    pub global: bool,
    /// Seed for `random`.
    pub seed: u64,
    /// Shard the output when it exceeds this many bytes.
    pub max_shard_bytes: Option<u64>,
}

/// What a prune did.
#[derive(Debug, Clone, Default)]
pub struct PruneReport {
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Tensors pruned.
    pub pruned_tensors: usize,
    /// Tensors copied unchanged.
    pub copied_tensors: usize,
    /// Elements in pruned tensors.
    pub elements: u64,
    /// Elements kept in pruned tensors.
    pub kept: u64,
}

fn prunable(i: &TensorInfo) -> bool {
    i.dtype.is_float() && i.shape.len() >= 2 && i.numel() > 0
}

/// Prunes `ck` into `out` (a `.safetensors` path; shards beside it when sharded), atomically.
pub fn prune(ck: &Checkpoint, out: &Path, opts: &PruneOptions) -> Result<PruneReport> {
    if !(opts.density > 0.0 && opts.density <= 1.0) {
        return Err(Error::Usage(format!(
            "--density {} is outside (0, 1]",
            opts.density
        )));
    }
    if opts.global && opts.method == PruneMethod::L1Structured {
        return Err(Error::Usage(
            "--scope global is for magnitude (and random) pruning; rows of different tensors are not comparable by L1 norm".into(),
        ));
    }
    let infos: Vec<TensorInfo> = ck
        .infos()
        .map(|i| TensorInfo {
            name: i.name.clone(),
            dtype: if i.dtype.is_quantized() {
                DType::F32
            } else {
                i.dtype
            },
            shape: i.shape.clone(),
        })
        .collect();
    let src = |i: usize| -> Result<Src<'_>> {
        let v = ck.tensor_at(i)?;
        Src::new(v.bytes, v.dtype, v.shape, None).map_err(|msg| Error::Tensor {
            tensor: infos[i].name.clone(),
            msg,
        })
    };
    // Global magnitude threshold.
    let threshold = if opts.global && opts.method == PruneMethod::Magnitude {
        let total: u64 = infos
            .iter()
            .filter(|i| prunable(i))
            .map(|i| i.numel() as u64)
            .sum();
        if total == 0 {
            None
        } else {
            let rank = total - kept_count(opts.density, total as usize);
            let failure = std::cell::RefCell::new(None);
            let sel = kernels::select_ranks(&[rank], |visit| {
                let mut h = Hist::new(2);
                for (i, info) in infos.iter().enumerate() {
                    if !prunable(info) {
                        continue;
                    }
                    let s = match src(i) {
                        Ok(s) => s,
                        Err(e) => {
                            *failure.borrow_mut() = Some(e);
                            continue;
                        }
                    };
                    let n = s.len();
                    h = h.merged(
                        (0..n_chunks(n))
                            .into_par_iter()
                            .fold(
                                || Hist::new(2),
                                |mut h, c| {
                                    let mut x = vec![0f32; CHUNK.min(n - c * CHUNK)];
                                    s.read(c * CHUNK, &mut x);
                                    x.iter().for_each(|v| visit(&mut h, mag_key(*v)));
                                    h
                                },
                            )
                            .reduce(|| Hist::new(2), Hist::merged),
                    );
                }
                h
            });
            if let Some(e) = failure.into_inner() {
                return Err(e);
            }
            Some(sel[0].key)
        }
    } else {
        None
    };
    let mut report = PruneReport::default();
    let metadata = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        (
            "pruned".to_string(),
            format!(
                "{} density {}{}",
                match opts.method {
                    PruneMethod::Magnitude => "magnitude",
                    PruneMethod::Random => "random",
                    PruneMethod::L1Structured => "l1-structured",
                },
                opts.density,
                if opts.global { " global" } else { "" }
            ),
        ),
    ]);
    let failure = std::cell::RefCell::new(None);
    let written = write_sharded(out, &infos, &metadata, opts.max_shard_bytes, |i| {
        let info = &infos[i];
        let v = ck.tensor_at(i)?;
        if !prunable(info) {
            report.copied_tensors += 1;
            if v.dtype == info.dtype {
                return Ok(v.bytes);
            }
            let vals = v
                .to_f32()
                .map_err(|k| weightspace_io::Error::new(ck.path(), k).with_tensor(&info.name))?;
            return Ok(Cow::Owned(kernels::encode(&vals, DType::F32)));
        }
        let s = src(i).map_err(|e| {
            let p =
                weightspace_io::Error::invalid(ck.path(), e.to_string()).with_tensor(&info.name);
            *failure.borrow_mut() = Some(e);
            p
        })?;
        let n = s.len();
        let keep = keep_mask(&s, info, opts, threshold);
        report.pruned_tensors += 1;
        report.elements += n as u64;
        report.kept += keep.iter().filter(|k| **k).count() as u64;
        // Zero dropped elements, keeping the stored bits of kept ones.
        let (mut bytes, es) = if v.dtype == info.dtype {
            (v.bytes.into_owned(), info.dtype.size().expect("plain"))
        } else {
            (kernels::encode(&s.to_vec(), DType::F32), 4)
        };
        bytes
            .par_chunks_mut(CHUNK * es)
            .zip(keep.par_chunks(CHUNK))
            .for_each(|(b, k)| {
                for (e, kk) in b.chunks_exact_mut(es).zip(k) {
                    if !kk {
                        e.fill(0);
                    }
                }
            });
        Ok(Cow::Owned(bytes))
    })
    .map_err(|e| failure.borrow_mut().take().unwrap_or(Error::Io(e)))?;
    report.files = written;
    Ok(report)
}

/// Which elements of a tensor are kept.
fn keep_mask(s: &Src, info: &TensorInfo, opts: &PruneOptions, threshold: Option<u32>) -> Vec<bool> {
    let n = s.len();
    let mut keep = vec![false; n];
    match opts.method {
        PruneMethod::Magnitude => {
            if let Some(t) = threshold {
                keep.par_chunks_mut(CHUNK).enumerate().for_each(|(c, k)| {
                    let mut x = vec![0f32; k.len()];
                    s.read(c * CHUNK, &mut x);
                    k.iter_mut()
                        .zip(&x)
                        .for_each(|(k, v)| *k = mag_key(*v) >= t);
                });
            } else if opts.density >= 1.0 {
                keep.fill(true);
            } else {
                let kk = kept_count(opts.density, n);
                let keys = |c: usize, out: &mut Vec<u32>| {
                    let mut x = vec![0f32; CHUNK.min(n - c * CHUNK)];
                    s.read(c * CHUNK, &mut x);
                    out.clear();
                    out.extend(x.iter().map(|v| mag_key(*v)));
                };
                let rk = kernels::rank_keep(n, (n as u64) - kk, n as u64, keys);
                keep.par_chunks_mut(CHUNK).enumerate().for_each(|(c, k)| {
                    let mut ks = Vec::new();
                    keys(c, &mut ks);
                    rk.chunk(c, ks.into_iter(), |j, v| k[j] = v);
                });
            }
        }
        PruneMethod::Random => {
            let stream = Stream::new(opts.seed, &format!("prune\u{0}{}", info.name));
            let p = opts.density as f32;
            keep.par_chunks_mut(CHUNK).enumerate().for_each(|(c, k)| {
                let mut u = vec![0f32; k.len()];
                stream.uniforms(c * CHUNK, &mut u);
                k.iter_mut().zip(&u).for_each(|(k, u)| *k = *u < p);
            });
        }
        PruneMethod::L1Structured => {
            let rows = info.shape[0];
            let len = n / rows;
            let x = s.to_vec();
            let norms: Vec<f64> = x
                .par_chunks(len)
                .map(|r| r.iter().map(|v| v.abs() as f64).sum())
                .collect();
            let kk = kept_count(opts.density, rows) as usize;
            let mut order: Vec<usize> = (0..rows).collect();
            // Largest norms first; ties keep the earlier row.
            order.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]).then(a.cmp(&b)));
            for &r in &order[..kk] {
                keep[r * len..(r + 1) * len].fill(true);
            }
        }
    }
    keep
}
