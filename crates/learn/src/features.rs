//! Inputs for the models: Unterthiner et al.'s seven statistics per tensor, the flattened
//! weight vector, and per-layer normalised layers for the weight-space networks; the
//! normalisation is fitted on the training split only.

use serde::{Deserialize, Serialize};

use crate::data::{Layout, NetWeights, Sample};

/// Statistics per tensor: mean, variance (ddof 0) and the 0/25/50/75/100 % quantiles (numpy's
/// default linear interpolation), accumulated in f64 — the definitions of
/// `weightspace-analyze`'s `summarize_values`, computed here on the small zoo tensors so that
/// this crate does not pull in the analysis crate's linear-algebra stack.
pub const STATS_PER_TENSOR: usize = 7;

/// The seven statistics of one tensor's values (NaN-free input).
pub fn tensor_stats(v: &[f32]) -> [f64; STATS_PER_TENSOR] {
    if v.is_empty() {
        return [f64::NAN; STATS_PER_TENSOR];
    }
    let n = v.len() as f64;
    let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
    let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| {
        let pos = p * (s.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(s.len() - 1);
        let f = pos - lo as f64;
        s[lo] as f64 + (s[hi] as f64 - s[lo] as f64) * f
    };
    [mean, var, q(0.0), q(0.25), q(0.5), q(0.75), q(1.0)]
}

/// The seven statistics of every tensor, tensor after tensor.
pub fn stats_features(net: &NetWeights) -> Vec<f32> {
    let mut out = Vec::with_capacity(net.tensors.len() * STATS_PER_TENSOR);
    for t in &net.tensors {
        out.extend(tensor_stats(t).map(|x| x as f32));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_by_hand() {
        // numpy: mean 2.5, var 1.25, quantiles [1, 1.75, 2.5, 3.25, 4] for [4, 1, 3, 2].
        let s = tensor_stats(&[4.0, 1.0, 3.0, 2.0]);
        let want = [2.5, 1.25, 1.0, 1.75, 2.5, 3.25, 4.0];
        for (a, b) in s.iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{s:?}");
        }
    }
}

/// Names of the statistics features (`<tensor>:<stat>`), for reports.
pub fn stats_feature_names(layout: &Layout) -> Vec<String> {
    let stats = ["mean", "var", "min", "q25", "median", "q75", "max"];
    layout
        .tensors
        .iter()
        .flat_map(|(n, _)| stats.iter().map(move |s| format!("{n}:{s}")))
        .collect()
}

/// Normalisation fitted on the training split.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Norm {
    /// Per tensor: mean of its values over the training states.
    pub tensor_mean: Vec<f32>,
    /// Per tensor: standard deviation of its values over the training states (≥ 1e-8).
    pub tensor_std: Vec<f32>,
    /// Per statistics feature: mean over the training states.
    pub stat_mean: Vec<f32>,
    /// Per statistics feature: standard deviation (≥ 1e-8).
    pub stat_std: Vec<f32>,
    /// Regression target mean (0 for classification).
    pub y_mean: f64,
    /// Regression target standard deviation (1 for classification).
    pub y_std: f64,
}

fn floor(s: f64) -> f32 {
    if s.is_finite() && s > 1e-8 {
        s as f32
    } else {
        1.0
    }
}

impl Norm {
    /// Fits the normalisation on `train` (indices into `samples`).
    pub fn fit(samples: &[Sample], train: &[usize], stats: &[Vec<f32>], regression: bool) -> Norm {
        let nt = samples[train[0]].net.tensors.len();
        let mut tensor_mean = vec![0f32; nt];
        let mut tensor_std = vec![1f32; nt];
        for t in 0..nt {
            let (mut s, mut s2, mut n) = (0f64, 0f64, 0f64);
            for &i in train {
                for &v in &samples[i].net.tensors[t] {
                    s += v as f64;
                    s2 += (v as f64) * (v as f64);
                    n += 1.0;
                }
            }
            let m = s / n;
            tensor_mean[t] = m as f32;
            tensor_std[t] = floor((s2 / n - m * m).max(0.0).sqrt());
        }
        let nf = stats[train[0]].len();
        let mut stat_mean = vec![0f32; nf];
        let mut stat_std = vec![1f32; nf];
        for f in 0..nf {
            let n = train.len() as f64;
            let m = train.iter().map(|&i| stats[i][f] as f64).sum::<f64>() / n;
            let v = train
                .iter()
                .map(|&i| (stats[i][f] as f64 - m).powi(2))
                .sum::<f64>()
                / n;
            stat_mean[f] = m as f32;
            stat_std[f] = floor(v.sqrt());
        }
        let (y_mean, y_std) = if regression {
            let n = train.len() as f64;
            let m = train.iter().map(|&i| samples[i].y).sum::<f64>() / n;
            let v = train
                .iter()
                .map(|&i| (samples[i].y - m).powi(2))
                .sum::<f64>()
                / n;
            (m, floor(v.sqrt()) as f64)
        } else {
            (0.0, 1.0)
        };
        Norm {
            tensor_mean,
            tensor_std,
            stat_mean,
            stat_std,
            y_mean,
            y_std,
        }
    }

    /// Standardised statistics features.
    pub fn stats(&self, raw: &[f32]) -> Vec<f32> {
        raw.iter()
            .zip(self.stat_mean.iter().zip(&self.stat_std))
            .map(|(v, (m, s))| (v - m) / s)
            .collect()
    }

    /// The flattened weight vector, each tensor standardised by its training mean and std
    /// (one scalar pair per tensor, so permutations commute with it).
    pub fn flat(&self, net: &NetWeights, out: &mut Vec<f32>) {
        for (t, v) in net.tensors.iter().enumerate() {
            let (m, s) = (self.tensor_mean[t], self.tensor_std[t]);
            out.extend(v.iter().map(|x| (x - m) / s));
        }
    }

    /// One tensor standardised.
    pub fn tensor(&self, net: &NetWeights, t: usize) -> Vec<f32> {
        let (m, s) = (self.tensor_mean[t], self.tensor_std[t]);
        net.tensors[t].iter().map(|x| (x - m) / s).collect()
    }
}
