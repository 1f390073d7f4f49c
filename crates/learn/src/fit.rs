//! The training loop for burn models: Adam, linear warm-up then cosine decay of the learning
//! rate, shuffled mini-batches, early stopping on the validation loss (the best epoch's
//! weights are kept), deterministic given the seed.

use std::sync::Mutex;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, decay::WeightDecayConfig};
use burn::tensor::{Device, Tensor, TensorData, activation::log_softmax};
use weightspace_zoo::rng::Rng;

use crate::nn::to_vec;
use crate::train::{Progress, TrainConfig, loss_host, lr_at};

/// burn's CPU random number generator is one global stream: every model construction in this
/// crate (training and loading alike) takes this lock, seeds the stream, and draws, so
/// parallel runs stay deterministic. burn initialises most parameters lazily (on first use,
/// from that global stream), so every parameter is materialised before the lock is released;
/// a parameter first touched in training would otherwise draw from a stream other runs are
/// drawing from too. (Training itself draws no random numbers from burn: shuffling and
/// augmentation use our own seeded streams, and the models use no dropout.) The
/// `parallel_runs_are_reproducible` test trains while another thread trains and loads.
static INIT: Mutex<()> = Mutex::new(());

/// Builds a model with burn's RNG seeded to `seed` and every parameter drawn, holding the
/// global init lock.
pub fn seeded_init<M: Module>(
    device: &Device,
    seed: u64,
    f: impl FnOnce(&Device) -> crate::Result<M>,
) -> crate::Result<M> {
    let _g = INIT.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    let m = f(device)?;
    crate::nn::materialize(&m);
    Ok(m)
}

/// The loss of raw outputs `[b, k]`: mean squared error against `y` (k = 1) or softmax
/// cross-entropy against class indices `y` (k = classes).
pub fn loss_tensor(out: Tensor<2>, y: &[f64], classes: usize, device: &Device) -> Tensor<1> {
    let b = y.len();
    if classes == 0 {
        let t = Tensor::<2>::from_data(
            TensorData::new(y.iter().map(|&v| v as f32).collect::<Vec<f32>>(), [b, 1]),
            device,
        );
        (out - t).powf_scalar(2.0).mean()
    } else {
        let mut oh = vec![0f32; b * classes];
        for (i, &c) in y.iter().enumerate() {
            oh[i * classes + c as usize] = 1.0;
        }
        let oh = Tensor::<2>::from_data(TensorData::new(oh, [b, classes]), device);
        (log_softmax(out, 1) * oh).sum_dim(1).mean().neg()
    }
}

/// Everything the loop needs to know about a model and its inputs.
#[allow(clippy::type_complexity)]
pub struct Problem<'a, M, X> {
    /// Builds a batch on a device from sample indices; the RNG is given when the batch may be
    /// augmented (training), `None` otherwise.
    pub make: &'a (dyn Fn(&[usize], Option<&mut Rng>, &Device) -> X + Sync),
    /// The model's raw outputs `[b, k]`.
    pub forward: &'a (dyn Fn(&M, &X) -> Tensor<2> + Sync),
    /// Target per sample (standardised value, or class index), indexed like the samples.
    pub y: &'a [f64],
    /// 0 for regression, else the number of classes.
    pub classes: usize,
}

/// Raw outputs of a (validation-mode) model for `idx`, batch by batch, on `device`.
pub fn predict<M, X>(
    p: &Problem<M, X>,
    model: &M,
    idx: &[usize],
    batch: usize,
    device: &Device,
) -> Vec<f32> {
    let mut out = Vec::new();
    for chunk in idx.chunks(batch.max(1)) {
        let x = (p.make)(chunk, None, device);
        out.extend(to_vec((p.forward)(model, &x)));
    }
    out
}

/// Trains `model` (initialised on the autodiff device `ad`) and returns the validation-mode
/// model of the epoch with the best validation loss, and the (train, val) loss per epoch.
#[allow(clippy::too_many_arguments)]
pub fn fit<M: Module + Clone, X>(
    mut model: M,
    p: &Problem<M, X>,
    train: &[usize],
    val: &[usize],
    cfg: &TrainConfig,
    seed: u64,
    ad: &Device,
    plain: &Device,
    progress: &mut dyn FnMut(Progress),
) -> (M, Vec<(f64, f64)>) {
    let mut adam = AdamConfig::new();
    if cfg.weight_decay > 0.0 {
        adam = adam.with_weight_decay(Some(WeightDecayConfig::new(cfg.weight_decay as f32)));
    }
    let mut optim = adam.init();
    let bs = cfg.batch_size.max(1);
    let steps_per_epoch = train.len().div_ceil(bs);
    let total = steps_per_epoch * cfg.epochs;
    let mut order = train.to_vec();
    let mut shuffle = Rng::derived(seed, &["learn", "shuffle"]);
    let mut aug = Rng::derived(seed, &["learn", "augment"]);
    let mut best: (f64, M) = (f64::INFINITY, model.valid());
    let mut since = 0usize;
    let mut history = Vec::new();
    let yv: Vec<f64> = val.iter().map(|&i| p.y[i]).collect();
    let mut step = 0usize;
    for epoch in 0..cfg.epochs {
        shuffle.shuffle(&mut order);
        let mut tl = 0.0;
        for chunk in order.chunks(bs) {
            let x = (p.make)(chunk, Some(&mut aug), ad);
            let out = (p.forward)(&model, &x);
            let y: Vec<f64> = chunk.iter().map(|&i| p.y[i]).collect();
            let loss = loss_tensor(out, &y, p.classes, ad);
            tl += to_vec(loss.clone())[0] as f64 * chunk.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr_at(cfg, step, total), model, grads);
            step += 1;
        }
        tl /= train.len().max(1) as f64;
        let valid = model.valid();
        let vl = if val.is_empty() {
            tl
        } else {
            loss_host(&predict(p, &valid, val, 256, plain), &yv, p.classes)
        };
        history.push((tl, vl));
        progress(Progress::Epoch {
            epoch: epoch + 1,
            epochs: cfg.epochs,
            train_loss: tl,
            val_loss: vl,
        });
        if vl < best.0 {
            best = (vl, valid);
            since = 0;
        } else {
            since += 1;
            if since >= cfg.patience || !vl.is_finite() && !tl.is_finite() {
                break;
            }
        }
    }
    (best.1, history)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::loss_host;

    #[test]
    fn host_and_tensor_losses_agree() {
        let device = Device::flex();
        let out = vec![0.5f32, -1.0, 2.0, 0.1, 0.3, -0.2];
        let t = crate::nn::tensor2(out.clone(), 2, 3, &device);
        let y = [2.0, 0.0];
        let a = to_vec(loss_tensor(t.clone(), &y, 3, &device))[0] as f64;
        assert!((a - loss_host(&out, &y, 3)).abs() < 1e-5);
        let t = crate::nn::tensor2(out.clone(), 6, 1, &device);
        let y: Vec<f64> = vec![0.0, 1.0, 2.0, 0.0, 0.0, 0.0];
        let a = to_vec(loss_tensor(t, &y, 0, &device))[0] as f64;
        assert!((a - loss_host(&out, &y, 0)).abs() < 1e-5);
    }
}
