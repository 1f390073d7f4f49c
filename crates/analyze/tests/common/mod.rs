//! Helpers shared by the integration tests: writing small f32 checkpoints and simulating
//! fine-tune trees of a tiny linear model trained with SGD.

#![allow(dead_code, clippy::needless_range_loop)]

use std::collections::BTreeMap;
use std::path::Path;

use weightspace_analyze::rng::SplitMix64;
use weightspace_io::write_f32_safetensors;

/// Writes an f32 safetensors file from (name, shape, values).
pub fn write_f32(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    write_f32_safetensors(path, tensors, &BTreeMap::new()).unwrap();
}

/// Standard normal by Box–Muller.
pub fn normal(g: &mut SplitMix64) -> f64 {
    let u1 = g.uniform().max(1e-300);
    let u2 = g.uniform();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// A linear model y = W x + b, W is `dout × din` row-major.
#[derive(Clone)]
pub struct Linear {
    pub w: Vec<f64>,
    pub b: Vec<f64>,
    pub din: usize,
    pub dout: usize,
}

impl Linear {
    pub fn init(din: usize, dout: usize, g: &mut SplitMix64) -> Linear {
        let s = 1.0 / (din as f64).sqrt();
        Linear {
            w: (0..din * dout).map(|_| normal(g) * s).collect(),
            b: vec![0.0; dout],
            din,
            dout,
        }
    }

    /// `steps` of minibatch SGD on the squared error against a linear teacher `a`
    /// (`dout × din`), with Gaussian inputs and label noise.
    pub fn train(&mut self, a: &[f64], steps: usize, lr: f64, batch: usize, g: &mut SplitMix64) {
        let (din, dout) = (self.din, self.dout);
        let mut gw = vec![0f64; din * dout];
        let mut gb = vec![0f64; dout];
        let mut x = vec![0f64; din];
        for _ in 0..steps {
            gw.iter_mut().for_each(|v| *v = 0.0);
            gb.iter_mut().for_each(|v| *v = 0.0);
            for _ in 0..batch {
                x.iter_mut().for_each(|v| *v = normal(g));
                for o in 0..dout {
                    let row = o * din;
                    let mut y = 0.1 * normal(g);
                    let mut out = self.b[o];
                    for i in 0..din {
                        y += a[row + i] * x[i];
                        out += self.w[row + i] * x[i];
                    }
                    let e = (out - y) / batch as f64;
                    gb[o] += e;
                    for i in 0..din {
                        gw[row + i] += e * x[i];
                    }
                }
            }
            for (w, d) in self.w.iter_mut().zip(&gw) {
                *w -= lr * d;
            }
            for (b, d) in self.b.iter_mut().zip(&gb) {
                *b -= lr * d;
            }
        }
    }

    pub fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        vec![
            (
                "linear.weight".into(),
                vec![self.dout, self.din],
                self.w.iter().map(|&v| v as f32).collect(),
            ),
            (
                "linear.bias".into(),
                vec![self.dout],
                self.b.iter().map(|&v| v as f32).collect(),
            ),
        ]
    }
}

/// A simulated fine-tune tree: `parents[i]` is the true parent of model i (`None` for the root).
pub struct Tree {
    pub models: Vec<Linear>,
    pub parents: Vec<Option<usize>>,
}

/// Simulates a tree of `n` models. The root is pre-trained from a random init on a random linear
/// teacher; every other model picks a uniformly random earlier model as its parent, and is the
/// parent's weights fine-tuned by SGD on the parent's task plus a few new, strong input-output
/// relations (a sparse change of the teacher). Nothing about kurtosis is set by hand: it is what
/// SGD makes of these tasks.
pub fn fine_tune_tree(n: usize, seed: u64) -> Tree {
    let (din, dout) = (64, 16);
    let mut g = SplitMix64::new(seed);
    let mut root = Linear::init(din, dout, &mut g);
    let s = 1.0 / (din as f64).sqrt();
    let task0: Vec<f64> = (0..din * dout).map(|_| normal(&mut g) * s).collect();
    root.train(&task0, 300, 0.05, 32, &mut g);
    let mut models = vec![root];
    let mut tasks = vec![task0];
    let mut parents = vec![None];
    for i in 1..n {
        let p = g.below(i);
        let mut task = tasks[p].clone();
        for _ in 0..3 {
            let k = g.below(din * dout);
            task[k] += normal(&mut g);
        }
        let mut m = models[p].clone();
        m.train(&task, 30, 0.05, 32, &mut g);
        models.push(m);
        tasks.push(task);
        parents.push(Some(p));
    }
    Tree { models, parents }
}

/// A tree where fine-tunes touch only part of the weights and share their drift: every child
/// changes a random ~60 % of its parent's weights (the rest stay bit-identical, as under a
/// data subset, frozen units or low-precision rounding), by the same deterministic map
/// w ↦ w + 0.1·w³/σ² (which raises kurtosis, as training does) plus a little noise of its own.
/// Siblings then differ on ~48 % of the weights but each differs from the parent on ~60 %:
/// they are nearer each other than their parent, the case distances alone chain wrongly.
/// Breadth-first, `branching[g]` children per model of generation g; model 0 is the root.
pub fn partial_update_tree(branching: &[usize], seed: u64) -> (Vec<Vec<f32>>, Vec<Option<usize>>) {
    partial_update_tree_with(branching, seed, false)
}

/// [`partial_update_tree`], and with `decay` every child also multiplies the weights its
/// update did not touch by its own factor c ∈ (0.999, 0.9999), as weight decay does under
/// SGD-momentum + L2 or AdamW where no data gradient reaches: no weight stays bit-identical.
pub fn partial_update_tree_with(
    branching: &[usize],
    seed: u64,
    decay: bool,
) -> (Vec<Vec<f32>>, Vec<Option<usize>>) {
    let mut g = SplitMix64::new(seed);
    let n0 = 32 * 48;
    let root: Vec<f32> = (0..n0).map(|_| (normal(&mut g) * 0.1) as f32).collect();
    let mut models = vec![root];
    let mut parents = vec![None];
    let mut generation = vec![0usize];
    for &b in branching {
        let mut next = Vec::new();
        for &p in &generation {
            for _ in 0..b {
                let pw = &models[p];
                let c = if decay {
                    1.0 - 1e-4 - 9e-4 * g.uniform()
                } else {
                    1.0
                };
                let var = pw.iter().map(|&x| (x as f64).powi(2)).sum::<f64>() / pw.len() as f64;
                let child: Vec<f32> = pw
                    .iter()
                    .map(|&x| {
                        if g.uniform() < 0.6 {
                            let x = x as f64;
                            (x + 0.1 * x * x * x / var + 0.002 * normal(&mut g)) as f32
                        } else {
                            (x as f64 * c) as f32
                        }
                    })
                    .collect();
                models.push(child);
                parents.push(Some(p));
                next.push(models.len() - 1);
            }
        }
        generation = next;
    }
    (models, parents)
}
