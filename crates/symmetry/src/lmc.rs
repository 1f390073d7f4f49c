//! Linear mode connectivity: interpolate two models and measure the loss/accuracy barrier.
//!
//! The barrier of a path θ(λ) = (1−λ)·θ_A + λ·θ_B is
//! `max_λ L(θλ) − ((1−λ)·L(θA) + λ·L(θB))` (Frankle et al. 2020; Git Re-Basin), and for
//! accuracy `max_λ ((1−λ)·acc(θA) + λ·acc(θB)) − acc(θλ)`. Losses and accuracies come from an
//! [`Evaluator`], so this module knows no runtime and no data.
//!
//! REPAIR (Jordan et al. 2022, "REPAIR: REnormalizing Permuted Activations for Interpolation
//! Repair") for networks without normalisation layers: [`unit_stats`] measures each unit's
//! pre-activation mean and standard deviation from the layer's inputs, [`repair_targets`]
//! interpolates the endpoints' statistics, and [`rescale_units`] rescales the interpolated
//! layer's incoming weights and bias to hit them. The runtime that produces the layer inputs
//! calls these layer by layer.

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

/// Mean and (population) standard deviation of each unit's pre-activation `z = h·Wᵀ + b` of a
/// dense layer, over `n` samples: `h` is `n × in` (row-major), `weight` is `[out, in]`, `bias`
/// `[out]`. Accumulates in `f64`.
pub fn unit_stats(
    h: &[f32],
    n: usize,
    weight: &Tensor,
    bias: Option<&Tensor>,
) -> Result<Vec<(f64, f64)>> {
    let [out, inp] = weight.shape[..] else {
        return Err(Error::Invalid(format!(
            "REPAIR rescales dense layers: weight of shape {:?} is not [out, in]",
            weight.shape
        )));
    };
    if h.len() != n * inp || n == 0 {
        return Err(Error::Invalid(format!(
            "REPAIR: {} layer inputs for {n} samples of width {inp}",
            h.len()
        )));
    }
    if let Some(b) = bias
        && b.data.len() != out
    {
        return Err(Error::Invalid(format!(
            "REPAIR: bias of {} values for {out} units",
            b.data.len()
        )));
    }
    let mut sum = vec![0f64; out];
    let mut sq = vec![0f64; out];
    let mut z = vec![0f32; out];
    for row in h.chunks_exact(inp) {
        for (u, zu) in z.iter_mut().enumerate() {
            let w = &weight.data[u * inp..(u + 1) * inp];
            *zu = row.iter().zip(w).map(|(x, y)| x * y).sum::<f32>()
                + bias.map_or(0.0, |b| b.data[u]);
        }
        for ((s, q), &zu) in sum.iter_mut().zip(&mut sq).zip(&z) {
            *s += zu as f64;
            *q += zu as f64 * zu as f64;
        }
    }
    Ok(sum
        .iter()
        .zip(&sq)
        .map(|(&s, &q)| {
            let m = s / n as f64;
            (m, (q / n as f64 - m * m).max(0.0).sqrt())
        })
        .collect())
}

/// REPAIR's targets: `(1−λ)·μ_A + λ·μ_B` and `(1−λ)·σ_A + λ·σ_B` per unit.
pub fn repair_targets(a: &[(f64, f64)], b: &[(f64, f64)], lambda: f64) -> Vec<(f64, f64)> {
    a.iter()
        .zip(b)
        .map(|(&(ma, sa), &(mb, sb))| {
            (
                (1.0 - lambda) * ma + lambda * mb,
                (1.0 - lambda) * sa + lambda * sb,
            )
        })
        .collect()
}

/// Rescales each unit `u` of a dense layer so that its pre-activation, measured as
/// `stats[u] = (μ, σ)`, becomes `target[u] = (μ_t, σ_t)`: `z' = (z − μ)·σ_t/σ + μ_t`, i.e. row
/// `u` of `weight` times `σ_t/σ` and the bias `(b − μ)·σ_t/σ + μ_t`. Units with (near) zero
/// spread (σ ≤ 1e-8, dead units) only get their mean moved. Without a bias tensor only the
/// scale is corrected.
pub fn rescale_units(
    w: &mut Weights,
    weight: &str,
    bias: Option<&str>,
    stats: &[(f64, f64)],
    target: &[(f64, f64)],
) -> Result<()> {
    let out = w.float(weight)?.shape[0];
    if stats.len() != out || target.len() != out {
        return Err(Error::Tensor {
            tensor: weight.into(),
            msg: format!(
                "REPAIR: {} statistics and {} targets for {out} units",
                stats.len(),
                target.len()
            ),
        });
    }
    let ratio: Vec<f64> = stats
        .iter()
        .zip(target)
        .map(|(&(_, s), &(_, st))| if s > 1e-8 { st / s } else { 1.0 })
        .collect();
    let t = w.get_mut(weight).expect("checked");
    let inp = t.data.len() / out.max(1);
    for (u, row) in t.data.chunks_exact_mut(inp).enumerate() {
        row.iter_mut()
            .for_each(|x| *x = (*x as f64 * ratio[u]) as f32);
    }
    if let Some(bn) = bias {
        w.float(bn)?;
        let b = w.get_mut(bn).expect("checked");
        if b.data.len() != out {
            return Err(Error::Tensor {
                tensor: bn.into(),
                msg: format!("{} values for {out} units", b.data.len()),
            });
        }
        for (u, x) in b.data.iter_mut().enumerate() {
            let (m, _) = stats[u];
            let (mt, _) = target[u];
            *x = ((*x as f64 - m) * ratio[u] + mt) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescaled_units_hit_their_targets() {
        // 3 units, 2 inputs, 5 samples.
        let h: Vec<f32> = vec![0.5, -1.0, 1.5, 2.0, -0.3, 0.7, 0.0, 1.0, 2.5, -2.0];
        let mut w = Weights::new();
        w.insert(
            "l.weight",
            Tensor::f32(vec![3, 2], vec![1.0, 0.5, -0.2, 0.3, 0.0, 0.0]),
        );
        w.insert("l.bias", Tensor::f32(vec![3], vec![0.1, -0.4, 0.2]));
        let stats = unit_stats(&h, 5, w.float("l.weight").unwrap(), w.get("l.bias")).unwrap();
        // Unit 2 is dead (zero weights): σ = 0, mean = its bias.
        assert!(stats[2].1 < 1e-12 && (stats[2].0 - 0.2).abs() < 1e-7);
        let target = repair_targets(
            &[(1.0, 2.0), (0.0, 0.5), (0.0, 1.0)],
            &[(3.0, 4.0), (1.0, 1.5), (1.0, 1.0)],
            0.25,
        );
        assert_eq!(target[0], (1.5, 2.5));
        rescale_units(&mut w, "l.weight", Some("l.bias"), &stats, &target).unwrap();
        let after = unit_stats(&h, 5, w.float("l.weight").unwrap(), w.get("l.bias")).unwrap();
        for u in 0..2 {
            assert!((after[u].0 - target[u].0).abs() < 1e-5, "{after:?}");
            assert!((after[u].1 - target[u].1).abs() < 1e-5, "{after:?}");
        }
        assert!((after[2].0 - target[2].0).abs() < 1e-6 && after[2].1 < 1e-12);
        assert!(unit_stats(&h, 4, w.float("l.weight").unwrap(), None).is_err());
    }
}
