//! Linear mode connectivity: interpolate two models and measure the loss/accuracy barrier.
//!
//! The barrier of a path θ(λ) = (1−λ)·θ_A + λ·θ_B is
//! `max_λ L(θλ) − ((1−λ)·L(θA) + λ·L(θB))` (Frankle et al. 2020; Git Re-Basin), and for
//! accuracy `max_λ ((1−λ)·acc(θA) + λ·acc(θB)) − acc(θλ)`. Losses and accuracies come from an
//! [`Evaluator`], so this module knows no runtime and no data.

use serde::Serialize;

use crate::{Error, Result, Tensor, Weights};

/// Something that can score a set of weights: a small-net runtime on a dataset.
pub trait Evaluator {
    /// Mean loss and accuracy (in `[0, 1]`) of the model with weights `w`.
    fn loss_acc(&self, w: &Weights) -> Result<(f64, f64)>;

    /// REPAIR / BatchNorm reset: returns `w` with its normalisation statistics re-estimated
    /// (or activations rescaled) on data, given the two endpoints; `None` when the runtime
    /// cannot (the default).
    fn repair(&self, _w: &Weights, _a: &Weights, _b: &Weights, _lambda: f64) -> Option<Weights> {
        None
    }
}

/// `(1−λ)·a + λ·b` over float tensors (integer tensors copied from `a`).
pub fn lerp(a: &Weights, b: &Weights, lambda: f64) -> Result<Weights> {
    a.check_compatible(b)?;
    let mut out = Weights::new();
    let (l, m) = (lambda as f32, 1.0 - lambda as f32);
    for (n, t) in a.iter() {
        let o = b.get(n).expect("checked");
        let t2 = if t.is_float() {
            if !o.is_float() {
                return Err(Error::Tensor {
                    tensor: n.into(),
                    msg: "float in one model, integer in the other".into(),
                });
            }
            Tensor {
                data: t
                    .data
                    .iter()
                    .zip(&o.data)
                    .map(|(&x, &y)| m * x + l * y)
                    .collect(),
                ..t.clone()
            }
        } else {
            t.clone()
        };
        out.insert(n, t2);
    }
    Ok(out)
}

/// One point of an interpolation path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PathPoint {
    /// Interpolation coefficient (0 = A, 1 = B).
    pub lambda: f64,
    /// Loss at θλ.
    pub loss: f64,
    /// Accuracy at θλ.
    pub acc: f64,
}

/// A scored interpolation path and its barriers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LmcPath {
    /// `steps` points from λ = 0 to λ = 1.
    pub points: Vec<PathPoint>,
    /// Loss barrier (≥ 0 up to rounding; 0 for linearly connected endpoints).
    pub loss_barrier: f64,
    /// Accuracy barrier.
    pub acc_barrier: f64,
    /// λ where the loss barrier is attained.
    pub argmax_lambda: f64,
}

/// Barriers of already-scored points (the first at λ = 0, the last at λ = 1).
pub fn barrier(points: &[PathPoint]) -> (f64, f64, f64) {
    let (Some(a), Some(b)) = (points.first(), points.last()) else {
        return (0.0, 0.0, 0.0);
    };
    let mut lb = f64::NEG_INFINITY;
    let mut ab = f64::NEG_INFINITY;
    let mut at = 0.0;
    for p in points {
        let l = p.loss - ((1.0 - p.lambda) * a.loss + p.lambda * b.loss);
        if l > lb {
            lb = l;
            at = p.lambda;
        }
        ab = ab.max((1.0 - p.lambda) * a.acc + p.lambda * b.acc - p.acc);
    }
    (lb, ab, at)
}

/// Scores `steps` evenly spaced points (at least 2) on the segment from `a` to `b`; with
/// `repair`, every interior point is first passed through [`Evaluator::repair`].
pub fn interpolate<E: Evaluator + ?Sized>(
    eval: &E,
    a: &Weights,
    b: &Weights,
    steps: usize,
    repair: bool,
) -> Result<LmcPath> {
    if steps < 2 {
        return Err(Error::Invalid(format!(
            "need at least 2 steps, got {steps}"
        )));
    }
    let mut points = Vec::with_capacity(steps);
    for i in 0..steps {
        let lambda = i as f64 / (steps - 1) as f64;
        let mut w = lerp(a, b, lambda)?;
        if repair
            && i > 0
            && i + 1 < steps
            && let Some(r) = eval.repair(&w, a, b, lambda)
        {
            w = r;
        }
        let (loss, acc) = eval.loss_acc(&w)?;
        points.push(PathPoint { lambda, loss, acc });
    }
    let (loss_barrier, acc_barrier, argmax_lambda) = barrier(&points);
    Ok(LmcPath {
        points,
        loss_barrier,
        acc_barrier,
        argmax_lambda,
    })
}
