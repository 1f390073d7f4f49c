//! Training options, the learning-rate schedule and the loss on host values, shared by every
//! model (the burn loop itself is in `fit.rs`).

use serde::{Deserialize, Serialize};

/// Options of one training run (neural models; `stats-gbm` reads `rounds` and the shared
/// seed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Adam weight decay (L2).
    pub weight_decay: f64,
    /// Fraction of steps spent warming up linearly.
    pub warmup: f64,
    /// Stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// Hidden width of the model.
    pub hidden: usize,
    /// Depth (hidden layers / equivariant layers).
    pub depth: usize,
    /// Symmetry augmentation of the input networks.
    pub augment: crate::augment::Augment,
    /// Boosting rounds (`stats-gbm`).
    pub rounds: usize,
    /// `dws`: map the input networks' first-layer inputs down to this many inside each layer
    /// (DWSNets' `input_dim_downsample`); `None` keeps them all. Absent in descriptions written
    /// before it existed, which had none.
    #[serde(default)]
    pub input_downsample: Option<usize>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 100,
            batch_size: 64,
            lr: 1e-3,
            weight_decay: 0.0,
            warmup: 0.05,
            patience: 20,
            hidden: 64,
            depth: 3,
            augment: Default::default(),
            rounds: 1000,
            input_downsample: None,
        }
    }
}

/// Progress of a run.
#[derive(Clone, Debug)]
pub enum Progress {
    /// An epoch (or, for boosting, a round) finished.
    Epoch {
        /// 1-based epoch.
        epoch: usize,
        /// Maximum epochs.
        epochs: usize,
        /// Mean training loss of the epoch (NaN for boosting).
        train_loss: f64,
        /// Validation loss.
        val_loss: f64,
    },
}

/// Learning rate at `step` of `total`: linear warm-up, then cosine to zero.
pub fn lr_at(cfg: &TrainConfig, step: usize, total: usize) -> f64 {
    let warm = ((total as f64) * cfg.warmup).round() as usize;
    if step < warm {
        return cfg.lr * (step + 1) as f64 / warm as f64;
    }
    let t = (step - warm) as f64 / (total - warm).max(1) as f64;
    cfg.lr * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
}

/// The same loss on host values (`out` is `[b, k]` row-major).
pub fn loss_host(out: &[f32], y: &[f64], classes: usize) -> f64 {
    if y.is_empty() {
        return f64::NAN;
    }
    if classes == 0 {
        out.iter()
            .zip(y)
            .map(|(o, t)| (*o as f64 - t).powi(2))
            .sum::<f64>()
            / y.len() as f64
    } else {
        let mut s = 0.0;
        for (i, &c) in y.iter().enumerate() {
            let r = &out[i * classes..(i + 1) * classes];
            let m = r.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = m + r.iter().map(|&v| (v as f64 - m).exp()).sum::<f64>().ln();
            s += lse - r[c as usize] as f64;
        }
        s / y.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays() {
        let cfg = TrainConfig {
            lr: 1.0,
            warmup: 0.1,
            ..Default::default()
        };
        assert!((lr_at(&cfg, 0, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(&cfg, 9, 100) - 1.0).abs() < 1e-12);
        assert!((lr_at(&cfg, 10, 100) - 1.0).abs() < 1e-12);
        assert!(lr_at(&cfg, 55, 100) < 0.6 && lr_at(&cfg, 55, 100) > 0.4);
        assert!(lr_at(&cfg, 99, 100) < 0.01);
    }
}
