//! Optimisers with PyTorch's update rules (`torch.optim.SGD` with and without momentum,
//! `torch.optim.Adam`), weight decay as an L2 term added to the gradient.

use serde::{Deserialize, Serialize};

/// Which optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Plain SGD.
    Sgd,
    /// SGD with (heavy-ball) momentum 0.9, PyTorch style: `b = μb + g; p -= lr·b`.
    Momentum,
    /// Adam, β = (0.9, 0.999), ε = 1e-8.
    Adam,
}

impl OptimizerKind {
    /// Every optimiser with its config name.
    pub const ALL: [(&'static str, OptimizerKind); 3] = [
        ("sgd", OptimizerKind::Sgd),
        ("momentum", OptimizerKind::Momentum),
        ("adam", OptimizerKind::Adam),
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).unwrap().0
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<OptimizerKind> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, a)| *a)
    }
}

/// Optimiser state for one model.
#[derive(Clone, Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    lr: f32,
    weight_decay: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Optimizer {
    /// A fresh optimiser for `n` parameters.
    pub fn new(kind: OptimizerKind, lr: f64, weight_decay: f64, n: usize) -> Optimizer {
        let (m, v) = match kind {
            OptimizerKind::Sgd => (vec![], vec![]),
            OptimizerKind::Momentum => (vec![0.0; n], vec![]),
            OptimizerKind::Adam => (vec![0.0; n], vec![0.0; n]),
        };
        Optimizer {
            kind,
            lr: lr as f32,
            weight_decay: weight_decay as f32,
            m,
            v,
            t: 0,
        }
    }

    /// One update of `params` with `grads`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        let (lr, wd) = (self.lr, self.weight_decay);
        self.t += 1;
        match self.kind {
            OptimizerKind::Sgd => {
                for (p, g) in params.iter_mut().zip(grads) {
                    *p -= lr * (g + wd * *p);
                }
            }
            OptimizerKind::Momentum => {
                let first = self.t == 1;
                for ((p, g), b) in params.iter_mut().zip(grads).zip(self.m.iter_mut()) {
                    let g = g + wd * *p;
                    *b = if first { g } else { 0.9 * *b + g };
                    *p -= lr * *b;
                }
            }
            OptimizerKind::Adam => {
                let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
                let bc1 = 1.0 - b1.powi(self.t);
                let bc2 = 1.0 - b2.powi(self.t);
                let step = lr / bc1;
                let bc2s = bc2.sqrt();
                let (m, v) = (&mut self.m[..], &mut self.v[..]);
                crate::kernels::simd(
                    #[inline(always)]
                    || {
                        for (((p, g), m), v) in params
                            .iter_mut()
                            .zip(grads)
                            .zip(m.iter_mut())
                            .zip(v.iter_mut())
                        {
                            let g = g + wd * *p;
                            *m = b1 * *m + (1.0 - b1) * g;
                            *v = b2 * *v + (1.0 - b2) * g * g;
                            *p -= step * *m / (v.sqrt() / bc2s + eps);
                        }
                    },
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adam_first_step_moves_by_lr() {
        let mut p = vec![1.0f32, -1.0];
        let mut o = Optimizer::new(OptimizerKind::Adam, 0.1, 0.0, 2);
        o.step(&mut p, &[0.5, -2.0]);
        assert!(
            (p[0] - 0.9).abs() < 1e-5 && (p[1] + 0.9).abs() < 1e-5,
            "{p:?}"
        );
    }

    #[test]
    fn momentum_accumulates() {
        let mut p = vec![0.0f32];
        let mut o = Optimizer::new(OptimizerKind::Momentum, 1.0, 0.0, 1);
        o.step(&mut p, &[1.0]);
        o.step(&mut p, &[1.0]);
        assert!((p[0] + 2.9).abs() < 1e-6);
        let mut q = vec![1.0f32];
        let mut s = Optimizer::new(OptimizerKind::Sgd, 0.5, 0.1, 1);
        s.step(&mut q, &[0.0]);
        assert!((q[0] - 0.95).abs() < 1e-6);
    }
}
