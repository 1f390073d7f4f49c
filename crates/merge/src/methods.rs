//! The merge methods: their names, parameters and defaults (as mergekit declares them), and the
//! math, one tensor at a time.
//!
//! Arithmetic is done in f32 with f64 accumulation for norms and dot products, whatever the
//! stored dtype (mergekit computes in the input dtype, e.g. bf16, unless `dtype:` says
//! otherwise). Elementwise methods (linear, task arithmetic and every TIES/DARE/breadcrumbs
//! variant, slerp, flattened nuslerp, multislerp, model_stock, sce, nearswap, passthrough)
//! stream each tensor in chunks straight from the memory maps: the only buffer the size of the
//! tensor is the output in its output dtype. karcher, della's row ranks (a one-byte mask per
//! element), row-wise nuslerp and filter-wise model_stock hold whole f32 copies.

// Numeric kernels index several parallel arrays by element: index loops read clearer.
#![allow(clippy::needless_range_loop)]

use rayon::prelude::*;
use weightspace_io::DType;

use crate::config::Scalar;
use crate::kernels::{
    self, CHUNK, RankKeep, Src, Stream, mag_key, map_chunks, map_chunks_with, reduce_chunks,
};

/// A merge method, with mergekit's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Method {
    Linear,
    Slerp,
    Nuslerp,
    Multislerp,
    Karcher,
    TaskArithmetic,
    Ties,
    DareTies,
    DareLinear,
    Breadcrumbs,
    BreadcrumbsTies,
    Della,
    DellaLinear,
    ModelStock,
    Sce,
    Nearswap,
    Passthrough,
}

/// How task vectors are sparsified before they are combined (mergekit's `sparsify.py`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sparsify {
    /// Keep the `density` fraction of largest magnitudes (TIES).
    Magnitude,
    /// Keep each element with probability `density` (DARE).
    Random,
    /// Drop the `gamma` fraction of largest magnitudes, then the smallest, to reach `density`
    /// (Model Breadcrumbs).
    MagnitudeOutliers,
    /// Keep with a probability that rises with the magnitude rank within each row (DELLA).
    DellaMagprune,
}

/// How signs are elected (TIES).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consensus {
    /// The sign of the sum of weighted deltas.
    Sum,
    /// The sign held by more models.
    Count,
}

/// The task-arithmetic family: (consensus, sparsification, default normalize, default rescale).
type Gta = (Option<Consensus>, Option<Sparsify>, bool, bool);

impl Method {
    /// Every method.
    pub const ALL: [Method; 17] = [
        Method::Linear,
        Method::Slerp,
        Method::Nuslerp,
        Method::Multislerp,
        Method::Karcher,
        Method::TaskArithmetic,
        Method::Ties,
        Method::DareTies,
        Method::DareLinear,
        Method::Breadcrumbs,
        Method::BreadcrumbsTies,
        Method::Della,
        Method::DellaLinear,
        Method::ModelStock,
        Method::Sce,
        Method::Nearswap,
        Method::Passthrough,
    ];

    /// mergekit's name.
    pub fn name(self) -> &'static str {
        match self {
            Method::Linear => "linear",
            Method::Slerp => "slerp",
            Method::Nuslerp => "nuslerp",
            Method::Multislerp => "multislerp",
            Method::Karcher => "karcher",
            Method::TaskArithmetic => "task_arithmetic",
            Method::Ties => "ties",
            Method::DareTies => "dare_ties",
            Method::DareLinear => "dare_linear",
            Method::Breadcrumbs => "breadcrumbs",
            Method::BreadcrumbsTies => "breadcrumbs_ties",
            Method::Della => "della",
            Method::DellaLinear => "della_linear",
            Method::ModelStock => "model_stock",
            Method::Sce => "sce",
            Method::Nearswap => "nearswap",
            Method::Passthrough => "passthrough",
        }
    }

    /// The method called `s`.
    pub fn from_name(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.name() == s)
    }

    /// For the task-arithmetic family: consensus, sparsification and defaults, as registered
    /// in mergekit's `registry.py`.
    pub fn gta(self) -> Option<Gta> {
        use Consensus::*;
        use Sparsify::*;
        Some(match self {
            Method::TaskArithmetic => (None, None, false, false),
            Method::Ties => (Some(Sum), Some(Magnitude), true, false),
            Method::DareTies => (Some(Sum), Some(Random), false, true),
            Method::DareLinear => (None, Some(Random), false, true),
            Method::Breadcrumbs => (None, Some(MagnitudeOutliers), false, false),
            Method::BreadcrumbsTies => (Some(Sum), Some(MagnitudeOutliers), false, false),
            Method::Della => (Some(Sum), Some(DellaMagprune), true, true),
            Method::DellaLinear => (None, Some(DellaMagprune), false, true),
            _ => return None,
        })
    }

    /// True when the method needs `base_model`.
    pub fn needs_base(self) -> bool {
        self.gta().is_some()
            || matches!(
                self,
                Method::Slerp | Method::ModelStock | Method::Sce | Method::Nearswap
            )
    }

    /// True when the method draws random numbers (and so depends on `--seed`).
    pub fn is_random(self) -> bool {
        matches!(
            self.gta(),
            Some((_, Some(Sparsify::Random | Sparsify::DellaMagprune), _, _))
        )
    }

    /// Parameters read once per tensor (mergekit's `parameters()`), with defaults.
    pub fn global_params(self) -> Vec<ParamDef> {
        use ParamKind::*;
        let d = |name, kind, default| ParamDef {
            name,
            kind,
            default,
        };
        if let Some((consensus, _, norm, rescale)) = self.gta() {
            let mut v = vec![
                d("int8_mask", Bool, Some(Scalar::Bool(false))),
                d("normalize", Bool, Some(Scalar::Bool(norm))),
                d("rescale", Rescale, Some(Scalar::Bool(rescale))),
                d("lambda", Number, Some(Scalar::Num(1.0))),
            ];
            if consensus.is_some() {
                v.push(d(
                    "consensus_method",
                    ConsensusKind,
                    Some(Scalar::Str("sum".into())),
                ));
            }
            return v;
        }
        match self {
            Method::Linear => vec![d("normalize", Bool, Some(Scalar::Bool(true)))],
            Method::Slerp => vec![d("t", Unit, None)],
            Method::Nearswap => vec![d("t", NonNegative, None)],
            Method::Nuslerp => vec![
                d("nuslerp_row_wise", Bool, Some(Scalar::Bool(false))),
                d("nuslerp_flatten", Bool, Some(Scalar::Bool(true))),
            ],
            Method::Multislerp => vec![
                d("normalize_weights", Bool, Some(Scalar::Bool(true))),
                d("eps", Positive, Some(Scalar::Num(1e-8))),
            ],
            Method::Karcher => vec![
                d("max_iter", Count, Some(Scalar::Num(10.0))),
                d("tol", Positive, Some(Scalar::Num(1e-5))),
            ],
            Method::ModelStock => vec![d("filter_wise", Bool, Some(Scalar::Bool(false)))],
            Method::Sce => vec![
                d("int8_mask", Bool, Some(Scalar::Bool(false))),
                d("select_topk", Density, Some(Scalar::Num(1.0))),
            ],
            _ => vec![],
        }
    }

    /// Parameters read per model and tensor (mergekit's `tensor_parameters()`).
    pub fn model_params(self) -> Vec<ParamDef> {
        use ParamKind::*;
        let d = |name, kind, default| ParamDef {
            name,
            kind,
            default,
        };
        if let Some((_, sp, _, _)) = self.gta() {
            let mut v = vec![
                d("weight", Number, None),
                d("density", Density, Some(Scalar::Num(1.0))),
            ];
            if sp == Some(Sparsify::MagnitudeOutliers) {
                v.push(d("gamma", Fraction, Some(Scalar::Num(0.01))));
            }
            if sp == Some(Sparsify::DellaMagprune) {
                v.push(d("epsilon", Fraction, Some(Scalar::Num(0.15))));
            }
            return v;
        }
        match self {
            Method::Linear | Method::Nuslerp | Method::Multislerp => {
                vec![d("weight", Number, None)]
            }
            Method::Passthrough => vec![d("scale", Number, None)],
            _ => vec![],
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What values a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamKind {
    /// `true`/`false` (or 0/1).
    Bool,
    /// Any finite number.
    Number,
    /// A number in [0, 1].
    Unit,
    /// A number ≥ 0.
    NonNegative,
    /// A number > 0.
    Positive,
    /// A number in (0, 1].
    Density,
    /// A number in [0, 1).
    Fraction,
    /// An integer ≥ 1.
    Count,
    /// `true`/`false` or one of `l1`, `l2`, `linf`, `dare`.
    Rescale,
    /// `sum` or `count`.
    ConsensusKind,
}

/// A parameter a method reads.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamDef {
    /// Its name in the YAML.
    pub name: &'static str,
    /// Accepted values.
    pub kind: ParamKind,
    /// The default; `None` means required (except for the base model's per-model values).
    pub default: Option<Scalar>,
}

/// How a sparsified task vector is rescaled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rescale {
    /// Not rescaled.
    None,
    /// Match the L1 norm of the unsparsified vector (mergekit's `rescale: true`).
    L1,
    /// Match the L2 norm.
    L2,
    /// Match the largest magnitude.
    Linf,
    /// Divide by the density, as the DARE paper does (`rescale: dare`).
    Dare,
}

/// Checks a value against a kind; returns the number (booleans as 0/1) or a message.
pub fn check_value(kind: ParamKind, v: &Scalar) -> Result<f64, String> {
    let num = |v: &Scalar| match v {
        Scalar::Num(x) if x.is_finite() => Ok(*x),
        Scalar::Num(x) => Err(format!("{x} is not a finite number")),
        other => Err(format!("expected a number, found {other}")),
    };
    match kind {
        ParamKind::Bool => match v {
            Scalar::Bool(b) => Ok(*b as u8 as f64),
            Scalar::Num(x) if *x == 0.0 || *x == 1.0 => Ok(*x),
            other => Err(format!("expected true or false, found {other}")),
        },
        ParamKind::Rescale => match v {
            Scalar::Bool(false) => Ok(0.0),
            Scalar::Bool(true) => Ok(1.0),
            Scalar::Str(s) => match s.as_str() {
                "l1" => Ok(1.0),
                "l2" => Ok(2.0),
                "linf" => Ok(3.0),
                "dare" => Ok(4.0),
                _ => Err(format!(
                    "expected true, false, l1, l2, linf or dare, found {s:?}"
                )),
            },
            other => Err(format!(
                "expected true, false, l1, l2, linf or dare, found {other}"
            )),
        },
        ParamKind::ConsensusKind => match v {
            Scalar::Str(s) if s == "sum" => Ok(0.0),
            Scalar::Str(s) if s == "count" => Ok(1.0),
            other => Err(format!("expected sum or count, found {other}")),
        },
        ParamKind::Number => num(v),
        ParamKind::Unit => num(v).and_then(|x| {
            (0.0..=1.0)
                .contains(&x)
                .then_some(x)
                .ok_or(format!("{x} is outside [0, 1]"))
        }),
        ParamKind::NonNegative => {
            num(v).and_then(|x| (x >= 0.0).then_some(x).ok_or(format!("{x} is negative")))
        }
        ParamKind::Positive => {
            num(v).and_then(|x| (x > 0.0).then_some(x).ok_or(format!("{x} must be > 0")))
        }
        ParamKind::Density => num(v).and_then(|x| {
            (x > 0.0 && x <= 1.0)
                .then_some(x)
                .ok_or(format!("{x} is outside (0, 1]"))
        }),
        ParamKind::Fraction => num(v).and_then(|x| {
            (0.0..1.0)
                .contains(&x)
                .then_some(x)
                .ok_or(format!("{x} is outside [0, 1)"))
        }),
        ParamKind::Count => num(v).and_then(|x| {
            (x >= 1.0 && x.fract() == 0.0)
                .then_some(x)
                .ok_or(format!("{x} is not an integer ≥ 1"))
        }),
    }
}

/// Method-wide parameters, resolved for one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalParams {
    /// Divide by the sum of weights.
    pub normalize: bool,
    /// Rescaling of sparsified task vectors.
    pub rescale: Rescale,
    /// Scale of the merged task vector.
    pub lambda: f64,
    /// Accepted for compatibility; masks are always compact here, so it changes nothing.
    pub int8_mask: bool,
    /// Interpolation factor (slerp, nearswap).
    pub t: f64,
    /// nuslerp: interpolate rows (`true`) or columns.
    pub row_wise: bool,
    /// nuslerp: treat the tensor as one vector.
    pub flatten: bool,
    /// multislerp: normalise the weights to sum to 1.
    pub normalize_weights: bool,
    /// multislerp: numerical epsilon.
    pub eps: f64,
    /// karcher: iterations.
    pub max_iter: usize,
    /// karcher: tolerance.
    pub tol: f64,
    /// model_stock: one ratio per row.
    pub filter_wise: bool,
    /// sce: fraction of highest-variance elements kept.
    pub select_topk: f64,
    /// TIES family: elect signs by count instead of sum (`consensus_method: count`, a
    /// weightspace extension; mergekit registers only `sum`).
    pub count_consensus: bool,
}

impl Default for GlobalParams {
    fn default() -> Self {
        GlobalParams {
            normalize: false,
            rescale: Rescale::None,
            lambda: 1.0,
            int8_mask: false,
            t: 0.5,
            row_wise: false,
            flatten: true,
            normalize_weights: true,
            eps: 1e-8,
            max_iter: 10,
            tol: 1e-5,
            filter_wise: false,
            select_topk: 1.0,
            count_consensus: false,
        }
    }
}

impl GlobalParams {
    /// Sets parameter `name` from a checked value.
    pub fn set(&mut self, name: &str, v: f64) {
        match name {
            "normalize" => self.normalize = v != 0.0,
            "rescale" => {
                self.rescale = match v as u8 {
                    0 => Rescale::None,
                    1 => Rescale::L1,
                    2 => Rescale::L2,
                    3 => Rescale::Linf,
                    _ => Rescale::Dare,
                }
            }
            "lambda" => self.lambda = v,
            "int8_mask" => self.int8_mask = v != 0.0,
            "t" => self.t = v,
            "nuslerp_row_wise" => self.row_wise = v != 0.0,
            "nuslerp_flatten" => self.flatten = v != 0.0,
            "normalize_weights" => self.normalize_weights = v != 0.0,
            "eps" => self.eps = v,
            "max_iter" => self.max_iter = v as usize,
            "tol" => self.tol = v,
            "filter_wise" => self.filter_wise = v != 0.0,
            "select_topk" => self.select_topk = v,
            "consensus_method" => self.count_consensus = v != 0.0,
            _ => {}
        }
    }
}

/// Per-model parameters, resolved for one tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    /// Weight (`None` for a base model that has none).
    pub weight: Option<f64>,
    /// Fraction of the task vector kept.
    pub density: f64,
    /// breadcrumbs: fraction of largest magnitudes dropped.
    pub gamma: f64,
    /// della: spread of keep probabilities.
    pub epsilon: f64,
    /// passthrough: multiplier.
    pub scale: Option<f64>,
}

impl Default for ModelParams {
    fn default() -> Self {
        ModelParams {
            weight: None,
            density: 1.0,
            gamma: 0.01,
            epsilon: 0.15,
            scale: None,
        }
    }
}

impl ModelParams {
    /// Sets parameter `name` from a checked value.
    pub fn set(&mut self, name: &str, v: f64) {
        match name {
            "weight" => self.weight = Some(v),
            "density" => self.density = v,
            "gamma" => self.gamma = v,
            "epsilon" => self.epsilon = v,
            "scale" => self.scale = Some(v),
            _ => {}
        }
    }
}

/// Everything needed to merge one tensor.
pub struct Job<'a> {
    /// Output tensor name (labels the random streams).
    pub name: &'a str,
    /// The method.
    pub method: Method,
    /// Inputs in source order (cropped to the common shape).
    pub srcs: Vec<Src<'a>>,
    /// Names of the input models (labels the random streams).
    pub labels: Vec<String>,
    /// Which input is the base model.
    pub base: Option<usize>,
    /// Per-input parameters.
    pub models: Vec<ModelParams>,
    /// Method-wide parameters.
    pub global: GlobalParams,
    /// Output shape.
    pub shape: Vec<usize>,
    /// Output dtype (F32, F16, BF16 or F64).
    pub dtype: DType,
    /// `--seed`.
    pub seed: u64,
    /// With `--topk-scope global`: per input, the magnitude key at or above which task-vector
    /// elements are kept (computed over the whole model).
    pub global_keep: Option<Vec<Option<u32>>>,
}

/// Merges one tensor; returns its bytes in `job.dtype`, or a message.
pub fn merge(job: &Job) -> Result<Vec<u8>, String> {
    let n = job.shape.iter().product::<usize>();
    for s in &job.srcs {
        debug_assert_eq!(s.len(), n);
    }
    match job.method {
        Method::Linear => linear(job, n),
        Method::Passthrough => {
            let scale = job.models[0].scale.unwrap_or(1.0) as f32;
            Ok(map_chunks(
                &[&job.srcs[0]],
                n,
                job.dtype,
                |_, _, ins, out| {
                    out.iter_mut()
                        .zip(&ins[0])
                        .for_each(|(o, x)| *o = x * scale)
                },
            ))
        }
        Method::Slerp => slerp(job, n),
        Method::Nearswap => nearswap(job, n),
        Method::Nuslerp => nuslerp(job, n),
        Method::Multislerp => multislerp(job, n),
        Method::Karcher => karcher(job),
        Method::ModelStock => model_stock(job, n),
        Method::Sce => sce(job, n),
        m if m.gta().is_some() => gta(job, n),
        m => unreachable!("{m} handled above"),
    }
}

fn linear(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let w: Vec<f32> = job
        .models
        .iter()
        .map(|m| m.weight.unwrap_or(0.0) as f32)
        .collect();
    let sum: f32 = w.iter().sum();
    let div = if job.global.normalize { sum } else { 1.0 };
    let srcs: Vec<&Src> = job.srcs.iter().collect();
    Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
        out.fill(0.0);
        for (x, wi) in ins.iter().zip(&w) {
            out.iter_mut().zip(x).for_each(|(o, v)| *o += wi * v);
        }
        if div != 1.0 {
            out.iter_mut().for_each(|o| *o /= div);
        }
    }))
}

/// The base input and the others, in order.
fn split_base(job: &Job) -> (usize, Vec<usize>) {
    let b = job.base.expect("checked at planning");
    (b, (0..job.srcs.len()).filter(|&i| i != b).collect())
}

/// Sums of squares and the dot product of two inputs (as `ins[a]`, `ins[b]`, optionally minus
/// `ins[base]`).
fn norms_dot(job: &Job, n: usize, a: usize, b: usize, base: Option<usize>) -> (f64, f64, f64) {
    let srcs: Vec<&Src> = job.srcs.iter().collect();
    let r = reduce_chunks(&srcs, n, 3, |_, _, ins| {
        let (mut aa, mut bb, mut ab) = (0f64, 0f64, 0f64);
        for j in 0..ins[a].len() {
            let (mut x, mut y) = (ins[a][j] as f64, ins[b][j] as f64);
            if let Some(k) = base {
                x -= ins[k][j] as f64;
                y -= ins[k][j] as f64;
            }
            aa += x * x;
            bb += y * y;
            ab += x * y;
        }
        vec![aa, bb, ab]
    });
    (r[0], r[1], r[2])
}

fn slerp(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let (b, others) = split_base(job);
    let o = others[0];
    let t = job.global.t;
    let (aa, bb, ab) = norms_dot(job, n, b, o, None);
    let eps = 1e-8;
    let na = if aa.sqrt() > eps { aa.sqrt() } else { 1.0 };
    let nb = if bb.sqrt() > eps { bb.sqrt() } else { 1.0 };
    let dot = ab / (na * nb);
    let (s0, s1) = if dot.abs() > 0.9995 {
        (1.0 - t, t)
    } else {
        let theta0 = dot.acos();
        let sin0 = theta0.sin();
        let theta_t = theta0 * t;
        ((theta0 - theta_t).sin() / sin0, theta_t.sin() / sin0)
    };
    let (s0, s1) = (s0 as f32, s1 as f32);
    let srcs = [&job.srcs[b], &job.srcs[o]];
    Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
        for (j, v) in out.iter_mut().enumerate() {
            *v = s0 * ins[0][j] + s1 * ins[1][j];
        }
    }))
}

fn nearswap(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let (b, others) = split_base(job);
    let t = job.global.t as f32;
    let srcs = [&job.srcs[b], &job.srcs[others[0]]];
    Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
        for (j, v) in out.iter_mut().enumerate() {
            let (a, bb) = (ins[0][j], ins[1][j]);
            let w = (t / (a - bb).abs().max(1e-6)).clamp(0.0, 1.0);
            *v = w * bb + (1.0 - w) * a;
        }
    }))
}

/// Vectors of a tensor along `dim` (0 or last): (length, stride, starts).
fn lines(shape: &[usize], along_first: bool) -> (usize, usize, Vec<usize>) {
    let n: usize = shape.iter().product();
    if shape.len() <= 1 {
        return (n, 1, vec![0]);
    }
    if along_first {
        let len = shape[0];
        let stride = n / len.max(1);
        (len, stride, (0..stride).collect())
    } else {
        let len = *shape.last().unwrap();
        (len, 1, (0..n / len.max(1)).map(|r| r * len).collect())
    }
}

/// nuslerp of two vectors (already minus the base), mergekit's `nuslerp` formula.
fn nuslerp_coeffs(t: f64, aa: f64, bb: f64, ab: f64) -> (f64, f64) {
    let na = aa.sqrt().max(1e-7);
    let nb = bb.sqrt().max(1e-7);
    let cos = (ab / (na * nb)).clamp(-1.0, 1.0);
    let theta = cos.acos();
    let s = theta.sin();
    if s.abs() < 1e-8 {
        (1.0 - t, t)
    } else {
        (((1.0 - t) * theta).sin() / s, (t * theta).sin() / s)
    }
}

fn nuslerp(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let others: Vec<usize> = (0..job.srcs.len())
        .filter(|&i| Some(i) != job.base)
        .collect();
    let (i0, i1) = (others[0], others[1]);
    let (w0, w1) = (
        job.models[i0].weight.unwrap_or(0.0),
        job.models[i1].weight.unwrap_or(0.0),
    );
    let t = if (w0 + w1).abs() < 1e-6 {
        0.5
    } else {
        w1 / (w0 + w1)
    };
    let base = job.base;
    if job.global.flatten {
        let (aa, bb, ab) = norms_dot(job, n, i0, i1, base);
        let (c0, c1) = nuslerp_coeffs(t, aa, bb, ab);
        let (c0, c1) = (c0 as f32, c1 as f32);
        let mut srcs = vec![&job.srcs[i0], &job.srcs[i1]];
        if let Some(b) = base {
            srcs.push(&job.srcs[b]);
        }
        return Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
            for (j, v) in out.iter_mut().enumerate() {
                *v = match ins.get(2) {
                    Some(bv) => bv[j] + c0 * (ins[0][j] - bv[j]) + c1 * (ins[1][j] - bv[j]),
                    None => c0 * ins[0][j] + c1 * ins[1][j],
                };
            }
        }));
    }
    let a = job.srcs[i0].to_vec();
    let bv = job.srcs[i1].to_vec();
    let basev = base.map(|b| job.srcs[b].to_vec());
    let at = |v: &[f32], i: usize| v[i] - basev.as_ref().map_or(0.0, |b| b[i]);
    let (len, stride, starts) = lines(&job.shape, job.global.row_wise);
    let mut out = vec![0f32; n];
    let coeffs: Vec<(f32, f32)> = starts
        .par_iter()
        .map(|&s| {
            let (mut aa, mut bb, mut ab) = (0f64, 0f64, 0f64);
            for k in 0..len {
                let i = s + k * stride;
                let (x, y) = (at(&a, i) as f64, at(&bv, i) as f64);
                aa += x * x;
                bb += y * y;
                ab += x * y;
            }
            let (c0, c1) = nuslerp_coeffs(t, aa, bb, ab);
            (c0 as f32, c1 as f32)
        })
        .collect();
    for (&s, &(c0, c1)) in starts.iter().zip(&coeffs) {
        for k in 0..len {
            let i = s + k * stride;
            let b0 = basev.as_ref().map_or(0.0, |b| b[i]);
            out[i] = b0 + c0 * at(&a, i) + c1 * at(&bv, i);
        }
    }
    Ok(kernels::encode(&out, job.dtype))
}

fn multislerp(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let idx: Vec<usize> = (0..job.srcs.len())
        .filter(|&i| Some(i) != job.base)
        .collect();
    if idx.len() == 1 {
        return Ok(map_chunks(
            &[&job.srcs[idx[0]]],
            n,
            job.dtype,
            |_, _, ins, out| out.copy_from_slice(&ins[0]),
        ));
    }
    let m = idx.len();
    let eps = job.global.eps;
    let mut w: Vec<f64> = idx
        .iter()
        .map(|&i| job.models[i].weight.unwrap_or(0.0))
        .collect();
    if job.global.normalize_weights {
        let s: f64 = w.iter().sum();
        w.iter_mut().for_each(|x| *x /= s);
    }
    // Inputs: the models, then the base if any.
    let mut srcs: Vec<&Src> = idx.iter().map(|&i| &job.srcs[i]).collect();
    if let Some(b) = job.base {
        srcs.push(&job.srcs[b]);
    }
    let has_base = job.base.is_some();
    let val = move |ins: &[Vec<f32>], i: usize, j: usize| -> f64 {
        let x = ins[i][j] as f64;
        if has_base { x - ins[m][j] as f64 } else { x }
    };
    // Pass 1: norms.
    let sq = reduce_chunks(&srcs, n, m, |_, _, ins| {
        let mut r = vec![0f64; m];
        for j in 0..ins[0].len() {
            for (i, ri) in r.iter_mut().enumerate() {
                let x = val(ins, i, j);
                *ri += x * x;
            }
        }
        r
    });
    let norms: Vec<f64> = sq.iter().map(|x| x.sqrt()).collect();
    let unit_scale: Vec<f64> = norms.iter().map(|nm| 1.0 / (nm + eps)).collect();
    let mean_at = |ins: &[Vec<f32>], j: usize| -> f64 {
        (0..m).map(|i| val(ins, i, j) * unit_scale[i] * w[i]).sum()
    };
    // Pass 2: |mean|² and unit_i · mean.
    let r = reduce_chunks(&srcs, n, m + 1, |_, _, ins| {
        let mut r = vec![0f64; m + 1];
        for j in 0..ins[0].len() {
            let mu = mean_at(ins, j);
            r[0] += mu * mu;
            for i in 0..m {
                r[i + 1] += val(ins, i, j) * unit_scale[i] * mu;
            }
        }
        r
    });
    let mean_norm = r[0].sqrt();
    if mean_norm < eps {
        if m == 2 {
            let (w0, w1) = (w[0] as f32, w[1] as f32);
            return Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
                for (j, v) in out.iter_mut().enumerate() {
                    let b = if has_base { ins[2][j] } else { 0.0 };
                    *v = (ins[0][j] - b) * w0 + (ins[1][j] - b) * w1 + b;
                }
            }));
        }
        return Err("the weighted sum of the input tensors is zero (antipodal inputs whose weights cancel); use different weights".into());
    }
    let dots: Vec<f64> = (0..m).map(|i| r[i + 1] / mean_norm).collect();
    let tangent_at = |ins: &[Vec<f32>], j: usize| -> (f64, f64) {
        let mu = mean_at(ins, j) / mean_norm;
        let tr: f64 = (0..m)
            .map(|i| w[i] * (val(ins, i, j) * unit_scale[i] - dots[i] * mu))
            .sum();
        (mu, tr)
    };
    // Pass 3: |tangent result|.
    let tn = reduce_chunks(&srcs, n, 1, |_, _, ins| {
        let mut s = 0f64;
        for j in 0..ins[0].len() {
            let (_, tr) = tangent_at(ins, j);
            s += tr * tr;
        }
        vec![s]
    })[0]
        .sqrt()
        + eps;
    let avg_norm: f64 = norms.iter().zip(&w).map(|(a, b)| a * b).sum();
    let (c, s) = (tn.cos(), tn.sin() / tn);
    Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
        for (j, v) in out.iter_mut().enumerate() {
            let (mu, tr) = tangent_at(ins, j);
            let mut x = (mu * c + tr * s) * avg_norm;
            if has_base {
                x += ins[m][j] as f64;
            }
            *v = x as f32;
        }
    }))
}

fn karcher(job: &Job) -> Result<Vec<u8>, String> {
    let xs: Vec<Vec<f32>> = job.srcs.iter().map(|s| s.to_vec()).collect();
    if xs.len() == 1 {
        return Ok(kernels::encode(&xs[0], job.dtype));
    }
    let (max_iter, tol) = (job.global.max_iter, job.global.tol);
    let alphas = vec![1.0 / xs.len() as f64; xs.len()];
    let dot = |a: &[f32], b: &[f32]| -> f64 {
        a.par_chunks(CHUNK)
            .zip(b.par_chunks(CHUNK))
            .map(|(x, y)| {
                x.iter()
                    .zip(y)
                    .map(|(p, q)| *p as f64 * *q as f64)
                    .sum::<f64>()
            })
            .sum()
    };
    let norms: Vec<f64> = xs.iter().map(|x| dot(x, x).sqrt()).collect();
    let units: Vec<Vec<f32>> = xs
        .iter()
        .zip(&norms)
        .map(|(x, &nm)| {
            if nm == 0.0 {
                vec![0.0; x.len()]
            } else {
                x.par_iter().map(|v| (*v as f64 / nm) as f32).collect()
            }
        })
        .collect();
    drop(xs);
    let valid: Vec<usize> = (0..norms.len()).filter(|&i| norms[i] > tol).collect();
    let n = units[0].len();
    if valid.is_empty() {
        return Ok(kernels::encode(&vec![0.0; n], job.dtype));
    }
    let asum: f64 = valid.iter().map(|&i| alphas[i]).sum();
    let na: Vec<f64> = valid.iter().map(|&i| alphas[i] / asum).collect();
    let mut u = vec![0f32; n];
    u.par_iter_mut().enumerate().for_each(|(j, v)| {
        *v = valid
            .iter()
            .zip(&na)
            .map(|(&i, a)| a * units[i][j] as f64)
            .sum::<f64>() as f32
    });
    let nu = dot(&u, &u).sqrt();
    if nu < tol {
        u.copy_from_slice(&units[valid[0]]);
    } else {
        u.par_iter_mut().for_each(|v| *v = (*v as f64 / nu) as f32);
    }
    for _ in 0..max_iter {
        let mut terms = Vec::new();
        for (&i, &a) in valid.iter().zip(&na) {
            let d = dot(&u, &units[i]).clamp(-1.0, 1.0);
            let theta = d.acos();
            if theta < tol {
                continue;
            }
            terms.push((i, a * theta / theta.sin(), d));
        }
        let mut tv = vec![0f32; n];
        tv.par_iter_mut().enumerate().for_each(|(j, v)| {
            *v = terms
                .iter()
                .map(|&(i, c, d)| c * (units[i][j] as f64 - d * u[j] as f64))
                .sum::<f64>() as f32
        });
        let nt = dot(&tv, &tv).sqrt();
        if nt < tol {
            break;
        }
        let (c, s) = (nt.cos(), nt.sin());
        u.par_iter_mut()
            .zip(&tv)
            .for_each(|(v, t)| *v = (c * *v as f64 + s * *t as f64 / nt) as f32);
        let nu = dot(&u, &u).sqrt();
        if nu > tol {
            u.par_iter_mut().for_each(|v| *v = (*v as f64 / nu) as f32);
        }
    }
    let s: f64 = alphas.iter().zip(&norms).map(|(a, nm)| a * nm).sum();
    u.par_iter_mut().for_each(|v| *v = (s * *v as f64) as f32);
    Ok(kernels::encode(&u, job.dtype))
}

fn model_stock(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let (b, others) = split_base(job);
    let nn = others.len();
    let ratio = |cos: f64| -> f64 { (nn as f64 * cos) / (1.0 + (nn as f64 - 1.0) * cos) };
    let pairs: Vec<(usize, usize)> = (0..nn)
        .flat_map(|i| ((i + 1)..nn).map(move |j| (i, j)))
        .collect();
    let mut srcs: Vec<&Src> = vec![&job.srcs[b]];
    srcs.extend(others.iter().map(|&i| &job.srcs[i]));
    if !job.global.filter_wise {
        // Flattened: one ratio for the tensor. Sums: |o_i|² then o_i·o_j per pair.
        let k = nn + pairs.len();
        let r = reduce_chunks(&srcs, n, k, |_, _, ins| {
            let mut r = vec![0f64; k];
            let mut o = vec![0f64; nn];
            for j in 0..ins[0].len() {
                for i in 0..nn {
                    o[i] = ins[i + 1][j] as f64 - ins[0][j] as f64;
                    r[i] += o[i] * o[i];
                }
                for (p, &(a, c)) in pairs.iter().enumerate() {
                    r[nn + p] += o[a] * o[c];
                }
            }
            r
        });
        let cos: f64 = pairs
            .iter()
            .enumerate()
            .map(|(p, &(a, c))| {
                (r[nn + p] / (r[a].sqrt() * r[c].sqrt()).max(1e-6)).clamp(-1.0, 1.0)
            })
            .sum::<f64>()
            / pairs.len() as f64;
        let t = ratio(cos) as f32;
        return Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
            for (j, v) in out.iter_mut().enumerate() {
                let avg: f32 = ins[1..].iter().map(|x| x[j]).sum::<f32>() / nn as f32;
                *v = t * avg + (1.0 - t) * ins[0][j];
            }
        }));
    }
    let xs: Vec<Vec<f32>> = srcs.iter().map(|s| s.to_vec()).collect();
    let (len, _, starts) = lines(&job.shape, false);
    let mut out = vec![0f32; n];
    out.par_chunks_mut(len.max(1))
        .zip(starts.par_iter())
        .for_each(|(row, &s)| {
            let mut sq = vec![0f64; nn];
            let mut dots = vec![0f64; pairs.len()];
            for k in 0..len {
                let o: Vec<f64> = (0..nn)
                    .map(|i| xs[i + 1][s + k] as f64 - xs[0][s + k] as f64)
                    .collect();
                for i in 0..nn {
                    sq[i] += o[i] * o[i];
                }
                for (p, &(a, c)) in pairs.iter().enumerate() {
                    dots[p] += o[a] * o[c];
                }
            }
            let cos: f64 = pairs
                .iter()
                .enumerate()
                .map(|(p, &(a, c))| {
                    (dots[p] / (sq[a].sqrt() * sq[c].sqrt()).max(1e-6)).clamp(-1.0, 1.0)
                })
                .sum::<f64>()
                / pairs.len() as f64;
            let t = ratio(cos) as f32;
            for (k, v) in row.iter_mut().enumerate() {
                let avg: f32 = xs[1..].iter().map(|x| x[s + k]).sum::<f32>() / nn as f32;
                *v = t * avg + (1.0 - t) * xs[0][s + k];
            }
        });
    Ok(kernels::encode(&out, job.dtype))
}

fn sce(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let (b, others) = split_base(job);
    let m = others.len();
    let mut srcs: Vec<&Src> = vec![&job.srcs[b]];
    srcs.extend(others.iter().map(|&i| &job.srcs[i]));
    if m == 0 {
        return Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
            out.copy_from_slice(&ins[0])
        }));
    }
    let var_key = |ins: &[Vec<f32>], j: usize| -> u32 {
        let tv: Vec<f32> = (1..=m).map(|i| ins[i][j] - ins[0][j]).collect();
        let mean = tv.iter().sum::<f32>() / m as f32;
        let var = tv.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / m as f32;
        mag_key(var)
    };
    let decode = |c: usize, bufs: &mut Vec<Vec<f32>>| {
        let start = c * CHUNK;
        let len = CHUNK.min(n - start);
        bufs.resize(srcs.len(), Vec::new());
        for (buf, s) in bufs.iter_mut().zip(&srcs) {
            buf.resize(len, 0.0);
            s.read(start, buf);
        }
    };
    // Top-k of the variance (none kept when k = 0, all when select_topk = 1).
    let mut keep: Option<RankKeep> = None;
    let mut keep_none = false;
    if job.global.select_topk < 1.0 {
        let nonzero = reduce_chunks(&srcs, n, 1, |_, _, ins| {
            vec![(0..ins[0].len()).filter(|&j| var_key(ins, j) != 0).count() as f64]
        })[0] as u64;
        let k = (nonzero as f64 * job.global.select_topk) as u64;
        if k == 0 {
            keep_none = true;
        } else {
            keep = Some(kernels::rank_keep(n, n as u64 - k, n as u64, |c, out| {
                let mut bufs = Vec::new();
                decode(c, &mut bufs);
                out.clear();
                out.extend((0..bufs[0].len()).map(|j| var_key(&bufs, j)));
            }));
        }
    }
    let masked = |c: usize, ins: &[Vec<f32>], tv: &mut Vec<Vec<f32>>| {
        let len = ins[0].len();
        tv.resize(m, Vec::new());
        for (i, t) in tv.iter_mut().enumerate() {
            t.clear();
            t.extend((0..len).map(|j| ins[i + 1][j] - ins[0][j]));
        }
        if keep_none {
            tv.iter_mut()
                .for_each(|t| t.iter_mut().for_each(|x| *x = 0.0));
        } else if let Some(rk) = &keep {
            let keys: Vec<u32> = (0..len).map(|j| var_key(ins, j)).collect();
            rk.chunk(c, keys.into_iter(), |j, k| {
                if !k {
                    tv.iter_mut().for_each(|t| t[j] = 0.0)
                }
            });
        }
    };
    // Weights: mean of squares of each masked task vector.
    let sums = reduce_chunks(&srcs, n, m, |c, _, ins| {
        let mut tv = Vec::new();
        masked(c, ins, &mut tv);
        tv.iter()
            .map(|t| t.iter().map(|x| (*x as f64) * (*x as f64)).sum())
            .collect()
    });
    let wts: Vec<f64> = sums.iter().map(|s| s / n as f64).collect();
    let wsum: f64 = wts.iter().sum();
    let wts: Vec<f32> = if wsum.abs() < 1e-6 {
        vec![1.0 / m as f32; m]
    } else {
        wts.iter().map(|w| (w / wsum) as f32).collect()
    };
    Ok(map_chunks(&srcs, n, job.dtype, |c, _, ins, out| {
        let mut tv = Vec::new();
        masked(c, ins, &mut tv);
        for (j, v) in out.iter_mut().enumerate() {
            let s: f32 = tv.iter().map(|t| t[j]).sum();
            let major = if s >= 0.0 { 1.0 } else { -1.0 };
            let (mut num, mut den) = (0f32, 0f32);
            for (t, w) in tv.iter().zip(&wts) {
                if sign(t[j]) == major {
                    num += t[j] * w;
                    den += w;
                }
            }
            *v = ins[0][j] + num / den.max(1e-6);
        }
    }))
}

#[inline]
fn sign(x: f32) -> f32 {
    if x > 0.0 {
        1.0
    } else if x < 0.0 {
        -1.0
    } else {
        0.0
    }
}

/// Which elements of a task vector survive sparsification.
enum Keep {
    All,
    Rank(RankKeep),
    AtLeast(u32),
    Random(Stream, f32),
    /// A random mask drawn once (in the rescale pass) and kept as bits: bit `j % 64` of word
    /// `j / 64` is element `j` (chunks start on word boundaries: `CHUNK` is a multiple of 64).
    Bits(Vec<u64>),
    Mask(Vec<u8>),
}

/// The DARE keep-bits of a chunk (`bits` holds `len.div_ceil(64)` words): element `start + j`
/// is kept when `(word >> 8) < thr`. `words` is scratch.
fn random_bits(
    s: &Stream,
    thr: u32,
    start: usize,
    len: usize,
    words: &mut Vec<u32>,
    bits: &mut [u64],
) {
    words.resize(len, 0);
    s.words(start, words);
    for (b, ws) in bits.iter_mut().zip(words.chunks(64)) {
        *b = ws
            .iter()
            .enumerate()
            .fold(0u64, |a, (j, w)| a | ((((w >> 8) < thr) as u64) << j));
    }
}

/// For each byte value, the AND masks of its 8 bits (all ones where the bit is set).
const fn byte_masks() -> [[u32; 8]; 256] {
    let mut t = [[0u32; 8]; 256];
    let mut b = 0;
    while b < 256 {
        let mut j = 0;
        while j < 8 {
            if (b >> j) & 1 == 1 {
                t[b][j] = u32::MAX;
            }
            j += 1;
        }
        b += 1;
    }
    t
}

static BYTE_MASKS: [[u32; 8]; 256] = byte_masks();

/// Zeroes the elements of `d` whose bit in `bits` (element 0 = bit 0 of word 0) is clear
/// (to +0.0, as the mask multiplies). Eight elements at a time through a byte → mask table,
/// so that the loop is a vector AND instead of a variable shift per element.
fn apply_bits(bits: &[u64], d: &mut [f32]) {
    for (xs, &word) in d.chunks_mut(64).zip(bits) {
        for (k, x8) in xs.chunks_mut(8).enumerate() {
            let m = &BYTE_MASKS[((word >> (8 * k)) & 0xff) as usize];
            x8.iter_mut()
                .zip(m)
                .for_each(|(x, &mk)| *x = f32::from_bits(x.to_bits() & mk));
        }
    }
}

/// `ceil(p · 2^24)`: an element is kept when the top 24 bits of its word are below this.
fn keep_threshold(p: f32) -> u32 {
    (p as f64 * 16_777_216.0).ceil() as u32
}

impl Keep {
    /// Multiplies the task-vector chunk `d` (chunk `c`, first element `start`) by its mask.
    /// `words` is scratch.
    fn apply(&self, c: usize, start: usize, d: &mut [f32], words: &mut Vec<u32>) {
        match self {
            Keep::All => {}
            Keep::Rank(rk) => {
                words.clear();
                words.extend(d.iter().map(|x| mag_key(*x)));
                rk.chunk(c, words.iter().copied(), |j, k| {
                    if !k {
                        d[j] = 0.0
                    }
                });
            }
            Keep::AtLeast(t) => d.iter_mut().for_each(|x| {
                if mag_key(*x) < *t {
                    *x = 0.0
                }
            }),
            Keep::Random(s, p) => {
                // u = (word >> 8) / 2^24 < p  <=>  (word >> 8) < ceil(p · 2^24).
                let thr = keep_threshold(*p);
                words.resize(d.len(), 0);
                s.words(start, words);
                d.iter_mut().zip(words.iter()).for_each(|(x, w)| {
                    if (w >> 8) >= thr {
                        *x = 0.0
                    }
                });
            }
            Keep::Bits(b) => {
                debug_assert_eq!(start % 64, 0);
                apply_bits(&b[start / 64..], d);
            }
            Keep::Mask(m) => {
                let len = d.len();
                d.iter_mut().zip(&m[start..start + len]).for_each(|(x, k)| {
                    if *k == 0 {
                        *x = 0.0
                    }
                })
            }
        }
    }
}

/// Number of elements kept at `density` out of `n`: mergekit's `int(density · n)`, but at
/// least one (mergekit asserts instead).
pub fn kept_count(density: f64, n: usize) -> u64 {
    ((density * n as f64) as u64).max(1).min(n as u64)
}

/// The task-arithmetic family: task vectors, sparsification, rescaling, sign consensus,
/// normalisation and lambda, as mergekit's `GTATask.execute`.
fn gta(job: &Job, n: usize) -> Result<Vec<u8>, String> {
    let (consensus, sparsify, _, _) = job.method.gta().expect("gta method");
    let consensus = consensus.map(|c| {
        if job.global.count_consensus {
            Consensus::Count
        } else {
            c
        }
    });
    let (b, others) = split_base(job);
    let m = others.len();
    let mut srcs: Vec<&Src> = vec![&job.srcs[b]];
    srcs.extend(others.iter().map(|&i| &job.srcs[i]));
    if m == 0 || n == 0 {
        return Ok(map_chunks(&srcs, n, job.dtype, |_, _, ins, out| {
            out.copy_from_slice(&ins[0])
        }));
    }
    // Task vector `i`'s chunk `c` into `out` (`bb`: scratch for the base's values).
    let delta_into = |c: usize, i: usize, out: &mut Vec<f32>, bb: &mut Vec<f32>| {
        let start = c * CHUNK;
        let len = CHUNK.min(n - start);
        bb.resize(len, 0.0);
        srcs[0].read(start, bb);
        out.resize(len, 0.0);
        srcs[i + 1].read(start, out);
        out.iter_mut().zip(bb.iter()).for_each(|(x, y)| *x -= y);
    };
    let delta_chunk =
        |c: usize, i: usize, out: &mut Vec<f32>| delta_into(c, i, out, &mut Vec::new());
    // Sparsification state per model.
    let mut keeps = Vec::with_capacity(m);
    for (k, &i) in others.iter().enumerate() {
        let p = &job.models[i];
        let label = format!("{}\u{0}{}\u{0}{}", job.name, job.labels[i], k);
        let keep = match sparsify {
            None => Keep::All,
            Some(_) if p.density >= 1.0 => Keep::All,
            Some(Sparsify::Magnitude) => match job.global_keep.as_ref().and_then(|g| g[i]) {
                Some(t) => Keep::AtLeast(t),
                None => {
                    let kk = kept_count(p.density, n);
                    Keep::Rank(kernels::rank_keep(n, n as u64 - kk, n as u64, |c, out| {
                        let mut d = Vec::new();
                        delta_chunk(c, k, &mut d);
                        out.clear();
                        out.extend(d.iter().map(|x| mag_key(*x)));
                    }))
                }
            },
            Some(Sparsify::MagnitudeOutliers) => {
                let target = kept_count(p.density, n) as i64;
                let mut n_top = (p.gamma * n as f64) as i64;
                let mut n_bot = n as i64 - target - n_top;
                if n_bot < 0 {
                    n_top += n_bot;
                    n_bot = 0;
                }
                Keep::Rank(kernels::rank_keep(
                    n,
                    n_bot as u64,
                    (n as i64 - n_top) as u64,
                    |c, out| {
                        let mut d = Vec::new();
                        delta_chunk(c, k, &mut d);
                        out.clear();
                        out.extend(d.iter().map(|x| mag_key(*x)));
                    },
                ))
            }
            Some(Sparsify::Random) => Keep::Random(Stream::new(job.seed, &label), p.density as f32),
            Some(Sparsify::DellaMagprune) => {
                let mut d = vec![0f32; n];
                d.par_chunks_mut(CHUNK).enumerate().for_each(|(c, o)| {
                    let mut v = Vec::new();
                    delta_chunk(c, k, &mut v);
                    o.copy_from_slice(&v);
                });
                Keep::Mask(della_mask(
                    &d,
                    &job.shape,
                    p.density,
                    p.epsilon,
                    &Stream::new(job.seed, &label),
                ))
            }
        };
        keeps.push(keep);
    }
    // Rescale factors.
    let mut factors = vec![1f32; m];
    let rescale = job.global.rescale;
    if sparsify.is_some() && rescale != Rescale::None {
        for (k, &i) in others.iter().enumerate() {
            if matches!(keeps[k], Keep::All) {
                continue;
            }
            if rescale == Rescale::Dare {
                factors[k] = (1.0 / job.models[i].density) as f32;
                continue;
            }
            // A random mask is drawn here once and kept as bits for the merge pass (drawing
            // the ChaCha stream twice was most of DARE's cost).
            let random = match &keeps[k] {
                Keep::Random(s, p) => Some((s.clone(), keep_threshold(*p))),
                _ => None,
            };
            // Bit `j % 64` of word `j / 64` keeps element `j`; one slice of words per chunk.
            // (Zeroed on allocation, so untouched when the mask is not random.)
            let mut bits = vec![0u64; n.div_ceil(64)];
            let per_chunk: Vec<(f64, f64)> = bits
                .par_chunks_mut(CHUNK / 64)
                .enumerate()
                .map_init(
                    || (Vec::new(), Vec::new(), Vec::new()),
                    |(d, bb, words), (c, b)| {
                        delta_into(c, k, d, bb);
                        let before = stat(rescale, d);
                        match &random {
                            Some((s, thr)) => {
                                random_bits(s, *thr, c * CHUNK, d.len(), words, b);
                                apply_bits(b, d);
                            }
                            None => keeps[k].apply(c, c * CHUNK, d, words),
                        }
                        (before, stat(rescale, d))
                    },
                )
                .collect();
            let r = per_chunk.iter().fold((0f64, 0f64), |a, b| match rescale {
                Rescale::Linf => (a.0.max(b.0), a.1.max(b.1)),
                _ => (a.0 + b.0, a.1 + b.1),
            });
            if random.is_some() {
                keeps[k] = Keep::Bits(bits);
            }
            let (before, after) = match rescale {
                Rescale::L2 => (r.0.sqrt(), r.1.sqrt()),
                _ => r,
            };
            if before >= 1e-7 && after >= 1e-7 {
                factors[k] = (before / after) as f32;
            }
        }
    }
    let w: Vec<f32> = others
        .iter()
        .map(|&i| job.models[i].weight.unwrap_or(0.0) as f32)
        .collect();
    let wsum: f32 = w.iter().sum();
    let normalize = job.global.normalize;
    let lambda = job.global.lambda as f32;
    // Per-thread scratch: the weighted task vectors, the mixed sum, its divisor, the vote.
    type Scratch = (Vec<Vec<f32>>, Vec<f32>, Vec<f32>, Vec<f32>, Vec<u32>);
    let init = || -> Scratch { (vec![Vec::new(); m], vec![], vec![], vec![], vec![]) };
    Ok(map_chunks_with(
        &srcs,
        n,
        job.dtype,
        init,
        |scratch, c, start, ins, out| {
            let (wd, mixed, div, vote, words) = scratch;
            let len = out.len();
            for (k, d) in wd.iter_mut().enumerate() {
                d.clear();
                d.extend(ins[k + 1].iter().zip(&ins[0]).map(|(x, y)| x - y));
                keeps[k].apply(c, start, d, words);
                let s = factors[k] * w[k];
                d.iter_mut().for_each(|x| *x *= s);
            }
            // Written as passes over the chunk (one per model) so that they vectorise.
            mixed.clear();
            mixed.resize(len, 0.0);
            div.clear();
            div.resize(len, 0.0);
            match consensus {
                Some(cm) => {
                    // Majority sign: + when the sum (of weighted deltas, or of their signs) is >= 0.
                    vote.clear();
                    vote.resize(len, 0.0);
                    for d in wd.iter() {
                        match cm {
                            Consensus::Sum => vote.iter_mut().zip(d).for_each(|(v, x)| *v += x),
                            Consensus::Count => {
                                vote.iter_mut().zip(d).for_each(|(v, x)| *v += sign(*x))
                            }
                        }
                    }
                    // Branch-free over zipped slices (no bounds checks) so that it vectorises.
                    for (d, &wk) in wd.iter().zip(&w) {
                        mixed
                            .iter_mut()
                            .zip(div.iter_mut())
                            .zip(vote.iter().zip(d))
                            .for_each(|((mx, dv), (&v, &x))| {
                                // `if v >= 0 { x > 0 } else { x < 0 }`, as a select.
                                let pos = v >= 0.0;
                                let agree = (pos & (x > 0.0)) | (!pos & (x < 0.0));
                                *mx += if agree { x } else { 0.0 };
                                *dv += if agree { wk } else { 0.0 };
                            });
                    }
                    div.iter_mut().for_each(|v| {
                        if *v == 0.0 {
                            *v = 1.0
                        }
                    });
                }
                None => {
                    for d in wd.iter() {
                        mixed.iter_mut().zip(d).for_each(|(v, x)| *v += x);
                    }
                    div.fill(if wsum.abs() < 1e-8 { 1.0 } else { wsum });
                }
            }
            out.iter_mut()
                .zip(mixed.iter().zip(div.iter()))
                .zip(&ins[0])
                .for_each(|((o, (&m, &dv)), &b)| {
                    let mut mx = if normalize { m / dv } else { m };
                    if lambda != 1.0 {
                        mx *= lambda;
                    }
                    *o = b + mx;
                });
        },
    ))
}

fn stat(r: Rescale, d: &[f32]) -> f64 {
    match r {
        Rescale::L2 => d.iter().map(|x| (*x as f64) * (*x as f64)).sum(),
        Rescale::Linf => d.iter().fold(0f64, |a, x| a.max(x.abs() as f64)),
        _ => d.iter().map(|x| x.abs() as f64).sum(),
    }
}

/// DELLA's MagPrune mask: within each line along dimension 1 (a 1-D tensor is one line), the
/// element of magnitude rank r (0-based, ties by position) of L is kept with probability
/// `density − ε + 2ε·r/(L−1)`.
pub fn della_mask(
    d: &[f32],
    shape: &[usize],
    density: f64,
    epsilon: f64,
    stream: &Stream,
) -> Vec<u8> {
    let n = d.len();
    let (a, b) = match shape.len() {
        0 | 1 => (1, n),
        _ => (shape[0], shape[1]),
    };
    let r = n.checked_div(a * b).unwrap_or(0);
    let mut mask = vec![0u8; n];
    let mut u = vec![0f32; n];
    u.par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(c, o)| stream.uniforms(c * CHUNK, o));
    // One line per (i, q): elements i·b·r + j·r + q, j in 0..b.
    let line_starts: Vec<usize> = (0..a)
        .flat_map(|i| (0..r).map(move |q| i * b * r + q))
        .collect();
    let probs: Vec<(usize, Vec<f32>)> = line_starts
        .par_iter()
        .map(|&s| {
            let mut idx: Vec<usize> = (0..b).collect();
            idx.sort_by(|&x, &y| {
                d[s + x * r]
                    .abs()
                    .total_cmp(&d[s + y * r].abs())
                    .then(x.cmp(&y))
            });
            let mut p = vec![0f32; b];
            for (rank, &j) in idx.iter().enumerate() {
                let rn = if b > 1 {
                    rank as f64 / (b - 1) as f64
                } else {
                    0.0
                };
                p[j] = ((density - epsilon) + rn * 2.0 * epsilon) as f32;
            }
            (s, p)
        })
        .collect();
    for (s, p) in probs {
        for (j, pj) in p.iter().enumerate() {
            let i = s + j * r;
            mask[i] = (u[i] < *pj) as u8;
        }
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_bits_zeroes_exactly_the_clear_bits() {
        // 200 elements (a partial last word and a partial last byte), signed zeros and NaN.
        let n: usize = 200;
        let d0: Vec<f32> = (0..n)
            .map(|i| match i % 7 {
                0 => -0.0,
                1 => f32::NAN,
                _ => (i as f32 * 0.37).sin(),
            })
            .collect();
        let s = Stream::new(3, "bits");
        let mut words = Vec::new();
        let mut bits = vec![0u64; n.div_ceil(64)];
        random_bits(&s, keep_threshold(0.4), 0, n, &mut words, &mut bits);
        let mut w = vec![0u32; n];
        s.words(0, &mut w);
        let mut d = d0.clone();
        apply_bits(&bits, &mut d);
        for j in 0..n {
            let keep = (w[j] >> 8) < keep_threshold(0.4);
            assert_eq!((bits[j / 64] >> (j % 64)) & 1 == 1, keep, "bit {j}");
            let want = if keep { d0[j] } else { 0.0 };
            assert_eq!(d[j].to_bits(), want.to_bits(), "element {j}");
        }
    }
}
