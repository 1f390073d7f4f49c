//! Similarity of models, per tensor and overall, over the parameters they share (same name and
//! shape): cosine similarity, relative L2 distance ‖a − b‖ / ‖a‖ (A, the first of a pair, is the
//! reference) and the share of weights that changed beyond a tolerance (numpy's `isclose`
//! rule: |a − b| > atol + rtol·|b|).
//!
//! Similarity *after alignment* (permutation symmetries undone first) needs a `ModelSpec` and
//! the symmetry crate, which this crate does not know: the caller aligns B to A and hands the
//! aligned tensors to [`compare_values`], whose result goes into [`PairSimilarity::aligned`].
//!
//! Only floating-point *parameters* count: integer and boolean tensors (BERT's `position_ids`,
//! 0–511 in every copy, would make any two BERTs look alike) and BatchNorm running statistics
//! are buffers, not weights. [`excluded_reason`] is the one rule, applied to both
//! [`compare_pair`] and [`compare_values`], so the numbers before and after alignment are over
//! the same tensors; what it leaves out is listed in [`PairSimilarity::excluded`].

use rayon::prelude::*;
use serde::Serialize;
use weightspace_io::{Checkpoint, DType, Error};

/// Why a tensor is left out of model-level similarity (`None`: it counts). `dtype` is `None`
/// for in-memory values (already floats).
pub fn excluded_reason(name: &str, dtype: Option<DType>) -> Option<&'static str> {
    if let Some(d) = dtype
        && !d.is_float()
    {
        return Some(if d == DType::Bool {
            "boolean tensor: a buffer, not a parameter"
        } else {
            "integer tensor: a buffer (ids, counters), not a parameter"
        });
    }
    let leaf = name.rsplit('.').next().unwrap_or(name);
    match leaf {
        "running_mean" | "running_var" | "num_batches_tracked" => {
            Some("BatchNorm running statistic: a buffer, not a parameter")
        }
        _ => None,
    }
}

/// A tensor left out of the model-level numbers, and why.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ExcludedTensor {
    /// Tensor name.
    pub name: String,
    /// Why it does not count (see [`excluded_reason`]).
    pub reason: String,
}

/// Tolerances for "changed".
#[derive(Debug, Clone, Copy)]
pub struct SimilarityOptions {
    /// Relative tolerance (numpy default 1e-5).
    pub rtol: f64,
    /// Absolute tolerance (numpy default 1e-8).
    pub atol: f64,
}

impl Default for SimilarityOptions {
    fn default() -> Self {
        SimilarityOptions {
            rtol: 1e-5,
            atol: 1e-8,
        }
    }
}

/// Sums over one tensor pair, from which every metric follows (and which add up over tensors).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PairSums {
    /// Σ a·b
    pub ab: f64,
    /// Σ a²
    pub aa: f64,
    /// Σ b²
    pub bb: f64,
    /// Σ (a − b)²
    pub dd: f64,
    /// Elements beyond the tolerance.
    pub changed: u64,
    /// Elements.
    pub count: u64,
}

impl PairSums {
    /// The sums over two equally long slices.
    pub fn of(a: &[f32], b: &[f32], opts: &SimilarityOptions) -> PairSums {
        let mut s = PairSums {
            count: a.len() as u64,
            ..Default::default()
        };
        for block in a.chunks(4096).zip(b.chunks(4096)) {
            let (mut ab, mut aa, mut bb, mut dd) = (0f64, 0f64, 0f64, 0f64);
            for (&x, &y) in block.0.iter().zip(block.1) {
                let (x, y) = (x as f64, y as f64);
                let d = x - y;
                ab += x * y;
                aa += x * x;
                bb += y * y;
                dd += d * d;
                s.changed += (d.abs() > opts.atol + opts.rtol * y.abs()) as u64;
            }
            s.ab += ab;
            s.aa += aa;
            s.bb += bb;
            s.dd += dd;
        }
        s
    }

    /// Adds another tensor's sums.
    pub fn add(&mut self, o: &PairSums) {
        self.ab += o.ab;
        self.aa += o.aa;
        self.bb += o.bb;
        self.dd += o.dd;
        self.changed += o.changed;
        self.count += o.count;
    }

    /// Cosine similarity (NaN when a norm is zero).
    pub fn cosine(&self) -> f64 {
        if self.aa > 0.0 && self.bb > 0.0 {
            self.ab / (self.aa.sqrt() * self.bb.sqrt())
        } else {
            f64::NAN
        }
    }

    /// ‖a − b‖ / ‖a‖ (NaN when ‖a‖ = 0).
    pub fn rel_l2(&self) -> f64 {
        if self.aa > 0.0 {
            (self.dd / self.aa).sqrt()
        } else {
            f64::NAN
        }
    }

    /// Share of elements beyond the tolerance.
    pub fn changed_share(&self) -> f64 {
        if self.count == 0 {
            f64::NAN
        } else {
            self.changed as f64 / self.count as f64
        }
    }
}

/// Similarity of one shared tensor.
#[derive(Debug, Clone, Serialize)]
pub struct TensorSimilarity {
    /// Tensor name.
    pub name: String,
    /// Elements.
    pub numel: u64,
    /// Cosine similarity.
    pub cosine: f64,
    /// ‖a − b‖ / ‖a‖.
    pub rel_l2: f64,
    /// Share of elements that changed beyond the tolerance.
    pub changed: f64,
}

/// Similarity of two models.
#[derive(Debug, Clone, Serialize)]
pub struct PairSimilarity {
    /// Model A (the reference) as given.
    pub a: String,
    /// Model B as given.
    pub b: String,
    /// Over all shared tensors together.
    pub cosine: f64,
    /// ‖a − b‖ / ‖a‖ over all shared tensors.
    pub rel_l2: f64,
    /// Share of shared elements that changed.
    pub changed: f64,
    /// Shared elements.
    pub shared_numel: u64,
    /// ‖a‖ over the shared tensors.
    pub norm_a: f64,
    /// ‖b‖ over the shared tensors.
    pub norm_b: f64,
    /// Parameters in A but not in B (or with another shape).
    pub only_in_a: Vec<String>,
    /// Parameters in B but not in A (or with another shape).
    pub only_in_b: Vec<String>,
    /// Per shared parameter, in A's order.
    pub tensors: Vec<TensorSimilarity>,
    /// Tensors of A or B left out of every number above (buffers), with the reason.
    pub excluded: Vec<ExcludedTensor>,
    /// The same metrics after B was aligned to A (permutation symmetries undone), when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aligned: Option<AlignedSimilarity>,
}

/// Similarity of a pair after B was aligned to A.
#[derive(Debug, Clone, Serialize)]
pub struct AlignedSimilarity {
    /// How B was aligned (e.g. `weight` for Git Re-Basin weight matching).
    pub method: String,
    /// Over all shared tensors together.
    pub cosine: f64,
    /// ‖a − b‖ / ‖a‖ over all shared tensors.
    pub rel_l2: f64,
    /// Share of shared elements that changed.
    pub changed: f64,
    /// Per shared tensor, in A's order.
    pub tensors: Vec<TensorSimilarity>,
}

impl AlignedSimilarity {
    /// The aligned metrics of a pair compared with [`compare_values`].
    pub fn from_pair(method: &str, p: PairSimilarity) -> AlignedSimilarity {
        AlignedSimilarity {
            method: method.to_string(),
            cosine: p.cosine,
            rel_l2: p.rel_l2,
            changed: p.changed,
            tensors: p.tensors,
        }
    }
}

/// One in-memory tensor for [`compare_values`].
#[derive(Debug, Clone, Copy)]
pub struct NamedValues<'a> {
    /// Tensor name.
    pub name: &'a str,
    /// Row-major shape.
    pub shape: &'a [usize],
    /// Values (`shape`'s product of them).
    pub values: &'a [f32],
}

/// Compares two models given as in-memory tensors (for example B after the symmetry crate
/// aligned it to A) over the parameters they share (same name and shape), like
/// [`compare_pair`]: the same [`excluded_reason`] rule leaves buffers out.
pub fn compare_values(
    la: &str,
    a: &[NamedValues<'_>],
    lb: &str,
    b: &[NamedValues<'_>],
    opts: &SimilarityOptions,
) -> PairSimilarity {
    fn keep<'a>(set: &[NamedValues<'a>], ex: &mut Excluded) -> Vec<NamedValues<'a>> {
        set.iter()
            .filter(|t| ex.counts(t.name, None))
            .copied()
            .collect()
    }
    let mut excluded = Excluded::default();
    let (a, b) = (keep(a, &mut excluded), keep(b, &mut excluded));
    let (a, b) = (a.as_slice(), b.as_slice());
    let find = |set: &[NamedValues<'_>], t: &NamedValues<'_>| {
        set.iter()
            .position(|u| u.name == t.name && u.shape == t.shape)
    };
    let pairs: Vec<(usize, usize)> = a
        .iter()
        .enumerate()
        .filter_map(|(i, t)| find(b, t).map(|j| (i, j)))
        .collect();
    let only_in_a = a
        .iter()
        .filter(|t| find(b, t).is_none())
        .map(|t| t.name.to_string())
        .collect();
    let only_in_b = b
        .iter()
        .filter(|t| find(a, t).is_none())
        .map(|t| t.name.to_string())
        .collect();
    let sums: Vec<PairSums> = pairs
        .par_iter()
        .map(|&(i, j)| PairSums::of(a[i].values, b[j].values, opts))
        .collect();
    let names: Vec<&str> = pairs.iter().map(|&(i, _)| a[i].name).collect();
    assemble(la, lb, &names, &sums, only_in_a, only_in_b, excluded.0)
}

/// The tensors left out so far, each name once.
#[derive(Default)]
struct Excluded(Vec<ExcludedTensor>);

impl Excluded {
    /// True when the tensor counts; otherwise records it (once) and returns false.
    fn counts(&mut self, name: &str, dtype: Option<DType>) -> bool {
        match excluded_reason(name, dtype) {
            None => true,
            Some(reason) => {
                if !self.0.iter().any(|e| e.name == name) {
                    self.0.push(ExcludedTensor {
                        name: name.to_string(),
                        reason: reason.to_string(),
                    });
                }
                false
            }
        }
    }
}

fn assemble(
    la: &str,
    lb: &str,
    shared: &[&str],
    sums: &[PairSums],
    only_in_a: Vec<String>,
    only_in_b: Vec<String>,
    excluded: Vec<ExcludedTensor>,
) -> PairSimilarity {
    let mut total = PairSums::default();
    sums.iter().for_each(|s| total.add(s));
    PairSimilarity {
        a: la.to_string(),
        b: lb.to_string(),
        cosine: total.cosine(),
        rel_l2: total.rel_l2(),
        changed: total.changed_share(),
        shared_numel: total.count,
        norm_a: total.aa.sqrt(),
        norm_b: total.bb.sqrt(),
        only_in_a,
        only_in_b,
        tensors: shared
            .iter()
            .zip(sums)
            .map(|(n, s)| TensorSimilarity {
                name: n.to_string(),
                numel: s.count,
                cosine: s.cosine(),
                rel_l2: s.rel_l2(),
                changed: s.changed_share(),
            })
            .collect(),
        excluded,
        aligned: None,
    }
}

/// Similarities of all pairs of a set of models.
#[derive(Debug, Clone, Serialize)]
pub struct SimilarityReport {
    /// Models as given.
    pub models: Vec<String>,
    /// Every pair (i < j), A = models\[i\].
    pub pairs: Vec<PairSimilarity>,
    /// Overall cosine, a symmetric matrix over `models` (1 on the diagonal).
    pub cosine_matrix: Vec<Vec<f64>>,
    /// Overall relative L2, row model as reference (0 on the diagonal).
    pub rel_l2_matrix: Vec<Vec<f64>>,
}

/// Compares two checkpoints over their shared parameters (buffers left out by
/// [`excluded_reason`]), in parallel across tensors.
pub fn compare_pair(
    la: &str,
    a: &Checkpoint,
    lb: &str,
    b: &Checkpoint,
    opts: &SimilarityOptions,
) -> Result<PairSimilarity, Error> {
    let mut excluded = Excluded::default();
    let params = |ck: &Checkpoint, ex: &mut Excluded| -> Vec<String> {
        ck.infos()
            .filter(|t| ex.counts(&t.name, Some(t.dtype)))
            .map(|t| t.name.clone())
            .collect()
    };
    let (pa, pb) = (params(a, &mut excluded), params(b, &mut excluded));
    let same = |n: &str, x: &Checkpoint, y: &Checkpoint| match (x.info(n), y.info(n)) {
        (Some(p), Some(q)) => p.shape == q.shape && excluded_reason(n, Some(q.dtype)).is_none(),
        _ => false,
    };
    let shared: Vec<&str> = pa
        .iter()
        .map(String::as_str)
        .filter(|n| same(n, a, b))
        .collect();
    let only_in_a = pa.iter().filter(|n| !same(n, a, b)).cloned().collect();
    let only_in_b = pb.iter().filter(|n| !same(n, b, a)).cloned().collect();
    let sums: Vec<PairSums> = shared
        .par_iter()
        .map(|name| {
            let ta = a.tensor(name)?;
            let tb = b.tensor(name)?;
            let va = ta
                .f32s()
                .map_err(|k| Error::new(a.path(), k).with_tensor(*name))?;
            let vb = tb
                .f32s()
                .map_err(|k| Error::new(b.path(), k).with_tensor(*name))?;
            Ok(PairSums::of(&va, &vb, opts))
        })
        .collect::<Result<_, Error>>()?;
    Ok(assemble(
        la, lb, &shared, &sums, only_in_a, only_in_b, excluded.0,
    ))
}

/// Compares every pair of models.
pub fn similarity(
    models: &[(String, Checkpoint)],
    opts: &SimilarityOptions,
    progress: &(dyn Fn() + Sync),
) -> Result<SimilarityReport, Error> {
    let k = models.len();
    let mut cos = vec![vec![1.0; k]; k];
    let mut rel = vec![vec![0.0; k]; k];
    let mut pairs = Vec::with_capacity(k * k.saturating_sub(1) / 2);
    for i in 0..k {
        for j in i + 1..k {
            let (la, a) = &models[i];
            let (lb, b) = &models[j];
            let p = compare_pair(la, a, lb, b, opts)?;
            cos[i][j] = p.cosine;
            cos[j][i] = p.cosine;
            rel[i][j] = p.rel_l2;
            // B as reference for the other direction: ‖a − b‖ / ‖b‖.
            rel[j][i] = if p.norm_b > 0.0 {
                p.rel_l2 * p.norm_a / p.norm_b
            } else {
                f64::NAN
            };
            pairs.push(p);
            progress();
        }
    }
    Ok(SimilarityReport {
        models: models.iter().map(|(l, _)| l.clone()).collect(),
        pairs,
        cosine_matrix: cos,
        rel_l2_matrix: rel,
    })
}
