//! Gradient-boosted regression trees (second-order, histogram splits, L2-regularised leaves,
//! row subsampling, early stopping on a validation set) — the `stats-gbm` baseline of
//! Unterthiner et al. (who used LightGBM on the per-tensor statistics).
//!
//! Squared loss for regression; softmax cross-entropy with one tree per class and round for
//! classification. Leaf value `−G/(H+λ)` times the learning rate, split gain
//! `G_L²/(H_L+λ) + G_R²/(H_R+λ) − G²/(H+λ)`, as in XGBoost/LightGBM. Features are binned once
//! at quantiles of the training values; a split sends `x ≤ threshold` left.

use serde::{Deserialize, Serialize};
use weightspace_zoo::rng::Rng;

/// Hyper-parameters of the boosting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GbmConfig {
    /// Maximum boosting rounds.
    pub rounds: usize,
    /// Shrinkage per tree.
    pub learning_rate: f64,
    /// Maximum tree depth.
    pub max_depth: usize,
    /// Minimum samples per leaf.
    pub min_leaf: usize,
    /// L2 regularisation of leaf values.
    pub lambda: f64,
    /// Fraction of training rows drawn (without replacement) per round.
    pub subsample: f64,
    /// Histogram bins per feature (≤ 256).
    pub bins: usize,
    /// Stop after this many rounds without a better validation loss.
    pub patience: usize,
}

impl Default for GbmConfig {
    fn default() -> Self {
        GbmConfig {
            rounds: 1000,
            learning_rate: 0.05,
            max_depth: 5,
            min_leaf: 10,
            lambda: 1.0,
            subsample: 0.8,
            bins: 64,
            patience: 50,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum Node {
    Split {
        feature: u32,
        threshold: f32,
        left: u32,
        right: u32,
    },
    Leaf {
        value: f64,
    },
}

/// One regression tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, x: &[f32]) -> f64 {
        let mut i = 0usize;
        loop {
            match &self.nodes[i] {
                Node::Leaf { value } => return *value,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    // NaN goes right (compares false).
                    i = if x[*feature as usize] <= *threshold {
                        *left as usize
                    } else {
                        *right as usize
                    };
                }
            }
        }
    }
}

/// What the model predicts.
#[derive(Clone, Debug, PartialEq)]
pub enum GbmTarget<'a> {
    /// Real values.
    Regression(&'a [f64]),
    /// Class indices in `0..classes`.
    Classes(&'a [usize], usize),
}

/// A fitted boosted ensemble.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Gbm {
    /// Number of input features.
    pub features: usize,
    /// Outputs: 1 for regression, the number of classes for classification.
    pub outputs: usize,
    /// True for softmax classification.
    pub classification: bool,
    /// Initial raw prediction per output.
    pub base: Vec<f64>,
    /// Trees per round, one per output.
    pub rounds: Vec<Vec<Tree>>,
    /// Validation loss after each kept round (for reports).
    pub val_loss: Vec<f64>,
}

struct Binned {
    n: usize,
    /// Column-major bin index per (feature, sample).
    bins: Vec<u8>,
    /// Per feature, upper edges: bin b holds x ≤ edges[b] (last bin: everything above).
    edges: Vec<Vec<f32>>,
}

fn bin_features(x: &[f32], n: usize, d: usize, max_bins: usize) -> Binned {
    let max_bins = max_bins.clamp(2, 256);
    let mut edges = Vec::with_capacity(d);
    let mut bins = vec![0u8; n * d];
    for f in 0..d {
        let mut col: Vec<f32> = (0..n)
            .map(|i| x[i * d + f])
            .filter(|v| !v.is_nan())
            .collect();
        col.sort_by(|a, b| a.partial_cmp(b).unwrap());
        col.dedup();
        let e: Vec<f32> = if col.len() <= max_bins {
            // Every distinct value but the largest is an edge.
            col[..col.len().saturating_sub(1)].to_vec()
        } else {
            let mut e: Vec<f32> = (1..max_bins)
                .map(|q| col[q * col.len() / max_bins])
                .collect();
            e.dedup();
            e
        };
        for i in 0..n {
            bins[f * n + i] = bin_of(&e, x[i * d + f]) as u8;
        }
        edges.push(e);
    }
    Binned { n, bins, edges }
}

fn bin_of(edges: &[f32], v: f32) -> usize {
    if v.is_nan() {
        return edges.len();
    }
    edges.partition_point(|&e| e < v)
}

struct Grower<'a> {
    b: &'a Binned,
    g: &'a [f64],
    h: &'a [f64],
    cfg: &'a GbmConfig,
    nodes: Vec<Node>,
}

impl Grower<'_> {
    fn leaf(&mut self, gs: f64, hs: f64) -> u32 {
        self.nodes.push(Node::Leaf {
            value: -gs / (hs + self.cfg.lambda) * self.cfg.learning_rate,
        });
        (self.nodes.len() - 1) as u32
    }

    fn grow(&mut self, idx: &mut [u32], depth: usize) -> u32 {
        let (gs, hs) = idx.iter().fold((0.0, 0.0), |(a, b), &i| {
            (a + self.g[i as usize], b + self.h[i as usize])
        });
        let min_leaf = self.cfg.min_leaf.max(1);
        if depth >= self.cfg.max_depth || idx.len() < 2 * min_leaf {
            return self.leaf(gs, hs);
        }
        let lam = self.cfg.lambda;
        let parent = gs * gs / (hs + lam);
        let mut best: Option<(f64, usize, usize)> = None; // gain, feature, bin
        let n = self.b.n;
        let mut hg = [0f64; 256];
        let mut hh = [0f64; 256];
        let mut hc = [0usize; 256];
        for (f, edges) in self.b.edges.iter().enumerate() {
            let nb = edges.len() + 1;
            if nb < 2 {
                continue;
            }
            hg[..nb].fill(0.0);
            hh[..nb].fill(0.0);
            hc[..nb].fill(0);
            let col = &self.b.bins[f * n..(f + 1) * n];
            for &i in idx.iter() {
                let bb = col[i as usize] as usize;
                hg[bb] += self.g[i as usize];
                hh[bb] += self.h[i as usize];
                hc[bb] += 1;
            }
            let (mut gl, mut hl, mut cl) = (0.0, 0.0, 0usize);
            for bb in 0..nb - 1 {
                gl += hg[bb];
                hl += hh[bb];
                cl += hc[bb];
                let cr = idx.len() - cl;
                if cl < min_leaf {
                    continue;
                }
                if cr < min_leaf {
                    break;
                }
                let (gr, hr) = (gs - gl, hs - hl);
                let gain = gl * gl / (hl + lam) + gr * gr / (hr + lam) - parent;
                if gain > 1e-12 && best.is_none_or(|(bg, _, _)| gain > bg) {
                    best = Some((gain, f, bb));
                }
            }
        }
        let Some((_, f, bb)) = best else {
            return self.leaf(gs, hs);
        };
        // Partition: bin ≤ bb left.
        let col = &self.b.bins[f * n..(f + 1) * n];
        let mut lo = 0usize;
        for k in 0..idx.len() {
            if (col[idx[k] as usize] as usize) <= bb {
                idx.swap(lo, k);
                lo += 1;
            }
        }
        let me = self.nodes.len();
        self.nodes.push(Node::Leaf { value: 0.0 });
        let (l, r) = idx.split_at_mut(lo);
        let left = self.grow(l, depth + 1);
        let right = self.grow(r, depth + 1);
        self.nodes[me] = Node::Split {
            feature: f as u32,
            threshold: self.b.edges[f][bb],
            left,
            right,
        };
        me as u32
    }
}

fn softmax_into(raw: &[f64], out: &mut [f64]) {
    let m = raw.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut s = 0.0;
    for (o, r) in out.iter_mut().zip(raw) {
        *o = (r - m).exp();
        s += *o;
    }
    for o in out.iter_mut() {
        *o /= s;
    }
}

fn loss(raw: &[f64], target: &GbmTarget, k: usize) -> f64 {
    match target {
        GbmTarget::Regression(y) => {
            y.iter().zip(raw).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / y.len().max(1) as f64
        }
        GbmTarget::Classes(y, _) => {
            let mut p = vec![0.0; k];
            let mut s = 0.0;
            for (i, &c) in y.iter().enumerate() {
                softmax_into(&raw[i * k..(i + 1) * k], &mut p);
                s -= p[c].max(1e-15).ln();
            }
            s / y.len().max(1) as f64
        }
    }
}

impl Gbm {
    /// Fits on `x` (`n × d`, row-major) with early stopping on (`xv`, `yv`) when it has rows
    /// (else all `cfg.rounds` rounds are kept). Deterministic given `seed`. `progress` gets
    /// (round, validation loss).
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        x: &[f32],
        d: usize,
        y: &GbmTarget,
        xv: &[f32],
        yv: &GbmTarget,
        cfg: &GbmConfig,
        seed: u64,
        progress: &mut dyn FnMut(usize, f64),
    ) -> Gbm {
        let n = x.len().checked_div(d).unwrap_or(0);
        let nv = xv.len().checked_div(d).unwrap_or(0);
        let (k, classification) = match y {
            GbmTarget::Regression(_) => (1, false),
            GbmTarget::Classes(_, c) => (*c, true),
        };
        let base: Vec<f64> = match y {
            GbmTarget::Regression(v) => vec![v.iter().sum::<f64>() / v.len().max(1) as f64],
            GbmTarget::Classes(v, c) => {
                let mut cnt = vec![0f64; *c];
                for &i in v.iter() {
                    cnt[i] += 1.0;
                }
                cnt.iter()
                    .map(|&c| ((c + 1.0) / (v.len() as f64 + k as f64)).ln())
                    .collect()
            }
        };
        let binned = bin_features(x, n, d, cfg.bins);
        let mut raw: Vec<f64> = (0..n).flat_map(|_| base.iter().copied()).collect();
        let mut raw_v: Vec<f64> = (0..nv).flat_map(|_| base.iter().copied()).collect();
        let mut model = Gbm {
            features: d,
            outputs: k,
            classification,
            base: base.clone(),
            rounds: vec![],
            val_loss: vec![],
        };
        let mut rng = Rng::new(seed);
        let mut g = vec![0f64; n];
        let mut h = vec![0f64; n];
        let mut p = vec![0f64; k];
        let mut best = (f64::INFINITY, 0usize);
        let all: Vec<u32> = (0..n as u32).collect();
        for round in 0..cfg.rounds {
            // Row subsample for this round.
            let mut idx = all.clone();
            if cfg.subsample < 1.0 {
                rng.shuffle(&mut idx);
                let m = ((n as f64 * cfg.subsample).ceil() as usize).clamp(1, n.max(1));
                idx.truncate(m);
            }
            let mut trees = Vec::with_capacity(k);
            for c in 0..k {
                for i in 0..n {
                    match y {
                        GbmTarget::Regression(v) => {
                            g[i] = raw[i] - v[i];
                            h[i] = 1.0;
                        }
                        GbmTarget::Classes(v, _) => {
                            softmax_into(&raw[i * k..(i + 1) * k], &mut p);
                            let t = if v[i] == c { 1.0 } else { 0.0 };
                            g[i] = p[c] - t;
                            h[i] = (p[c] * (1.0 - p[c])).max(1e-6);
                        }
                    }
                }
                let mut grower = Grower {
                    b: &binned,
                    g: &g,
                    h: &h,
                    cfg,
                    nodes: vec![],
                };
                let mut sub = idx.clone();
                grower.grow(&mut sub, 0);
                trees.push(Tree {
                    nodes: grower.nodes,
                });
            }
            // Softmax boosting updates all classes after the round's trees are built.
            for i in 0..n {
                for (c, t) in trees.iter().enumerate() {
                    raw[i * k + c] += t.predict(&x[i * d..(i + 1) * d]);
                }
            }
            for i in 0..nv {
                for (c, t) in trees.iter().enumerate() {
                    raw_v[i * k + c] += t.predict(&xv[i * d..(i + 1) * d]);
                }
            }
            model.rounds.push(trees);
            if nv > 0 {
                let l = loss(&raw_v, yv, k);
                model.val_loss.push(l);
                progress(round + 1, l);
                if l < best.0 {
                    best = (l, round + 1);
                } else if round + 1 - best.1 >= cfg.patience {
                    break;
                }
            } else {
                progress(round + 1, f64::NAN);
            }
        }
        if nv > 0 && best.1 > 0 {
            model.rounds.truncate(best.1);
            model.val_loss.truncate(best.1);
        }
        model
    }

    /// Raw outputs (`n × outputs`): the regression value, or class logits.
    pub fn predict_raw(&self, x: &[f32]) -> Vec<f64> {
        let d = self.features;
        let n = x.len().checked_div(d).unwrap_or(0);
        let mut out = Vec::with_capacity(n * self.outputs);
        for i in 0..n {
            let row = &x[i * d..(i + 1) * d];
            for c in 0..self.outputs {
                let mut v = self.base[c];
                for r in &self.rounds {
                    v += r[c].predict(row);
                }
                out.push(v);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> (Vec<f32>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let a = rng.uniform(-1.0, 1.0);
            let b = rng.uniform(-1.0, 1.0);
            let noise = rng.uniform(-1.0, 1.0);
            x.extend([a as f32, b as f32, noise as f32]);
            y.push(if a > 0.0 { 2.0 } else { -1.0 } + b * b);
        }
        (x, y)
    }

    #[test]
    fn fits_a_step_plus_square() {
        let (x, y) = data(600, 1);
        let (xv, yv) = data(200, 2);
        let cfg = GbmConfig {
            rounds: 300,
            ..Default::default()
        };
        let m = Gbm::fit(
            &x,
            3,
            &GbmTarget::Regression(&y),
            &xv,
            &GbmTarget::Regression(&yv),
            &cfg,
            0,
            &mut |_, _| {},
        );
        let p = m.predict_raw(&xv);
        let r2 = crate::metrics::r2(&yv, &p);
        assert!(r2 > 0.95, "R² {r2}");
        // The base alone (the mean) would give R² ≈ 0.
        assert!(m.rounds.len() > 10);
        // Same seed, same model.
        let m2 = Gbm::fit(
            &x,
            3,
            &GbmTarget::Regression(&y),
            &xv,
            &GbmTarget::Regression(&yv),
            &cfg,
            0,
            &mut |_, _| {},
        );
        assert_eq!(m, m2);
    }

    #[test]
    fn classifies_three_classes() {
        // Three bands of the first feature.
        let label = |r: &[f32]| -> usize {
            if r[0] < -0.3 {
                0
            } else if r[0] < 0.3 {
                1
            } else {
                2
            }
        };
        let (x, _) = data(600, 3);
        let cls: Vec<usize> = x.chunks(3).map(label).collect();
        let (xv, _) = data(200, 4);
        let clsv: Vec<usize> = xv.chunks(3).map(label).collect();
        let m = Gbm::fit(
            &x,
            3,
            &GbmTarget::Classes(&cls, 3),
            &xv,
            &GbmTarget::Classes(&clsv, 3),
            &GbmConfig {
                rounds: 100,
                ..Default::default()
            },
            0,
            &mut |_, _| {},
        );
        let raw = m.predict_raw(&xv);
        let pred: Vec<usize> = raw
            .chunks(3)
            .map(|r| {
                (0..3)
                    .max_by(|&a, &b| r[a].partial_cmp(&r[b]).unwrap())
                    .unwrap()
            })
            .collect();
        let acc = crate::metrics::accuracy(&clsv, &pred);
        assert!(acc > 0.95, "accuracy {acc}");
    }

    #[test]
    fn bins_split_at_values() {
        let e = vec![1.0, 2.0, 3.0];
        assert_eq!(bin_of(&e, 0.5), 0);
        assert_eq!(bin_of(&e, 1.0), 0);
        assert_eq!(bin_of(&e, 1.5), 1);
        assert_eq!(bin_of(&e, 3.5), 3);
        assert_eq!(bin_of(&e, f32::NAN), 3);
    }
}
