//! The burn models: `stats-mlp`, `flat-mlp` and the weight-space
//! networks, with their inputs (cached vectors, or augmented on the fly), training, saving and
//! loading.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use burn::tensor::{Device, Tensor};
use weightspace_zoo::rng::Rng;

use crate::augment::{self, Augment};
use crate::data::{Layout, NetWeights, ZooData};
use crate::error::Result;
use crate::features::{Norm, stats_features};
use crate::fit::{self, Problem};
use crate::learner::{Meta, RunOptions, classes, outputs};
use crate::nn::{self, Mlp};
use crate::train::Progress;
use crate::ws;

/// Which models this build can train.
pub fn check_available(name: &str) -> Result<()> {
    ws::check_available(name)
}

/// A trained burn model (one per run: the size difference of the variants does not matter).
#[allow(clippy::large_enum_variant)]
pub enum Neural {
    /// `stats-mlp` or `flat-mlp`.
    Mlp(Mlp),
    /// A weight-space network.
    Ws(ws::Model),
}

/// Inputs of an MLP for one sample.
fn encode_vec(model: &str, net: &NetWeights, norm: &Norm) -> Vec<f32> {
    if model == "stats-mlp" {
        norm.stats(&stats_features(net))
    } else {
        let mut v = Vec::new();
        norm.flat(net, &mut v);
        v
    }
}

struct Inputs<'a> {
    samples: &'a [&'a NetWeights],
    homogeneous: &'a [bool],
    layout: &'a Layout,
    norm: &'a Norm,
    model: &'a str,
    augment: Augment,
    /// Precomputed (non-augmented) vectors for the MLPs.
    cached: Vec<Vec<f32>>,
}

impl Inputs<'_> {
    fn net(&self, i: usize, rng: Option<&mut Rng>) -> Cow<'_, NetWeights> {
        match rng {
            Some(r) if !self.augment.is_none() => {
                let mut n = self.samples[i].clone();
                augment::apply_random(&mut n, self.layout, self.augment, self.homogeneous[i], r);
                Cow::Owned(n)
            }
            _ => Cow::Borrowed(self.samples[i]),
        }
    }

    fn vectors(&self, idx: &[usize], mut rng: Option<&mut Rng>, device: &Device) -> Tensor<2> {
        let mut v = Vec::new();
        let mut dim = 0;
        for &i in idx {
            let row: Cow<'_, [f32]> = if self.augment.is_none() || rng.is_none() {
                Cow::Borrowed(self.cached[i].as_slice())
            } else {
                let n = self.net(i, rng.as_deref_mut());
                Cow::Owned(encode_vec(self.model, &n, self.norm))
            };
            dim = row.len();
            v.extend_from_slice(&row);
        }
        nn::tensor2(v, idx.len(), dim, device)
    }

    fn ws(&self, idx: &[usize], mut rng: Option<&mut Rng>, device: &Device) -> ws::Batch {
        let nets: Vec<Cow<'_, NetWeights>> = idx
            .iter()
            .map(|&i| self.net(i, rng.as_deref_mut()))
            .collect();
        let refs: Vec<&NetWeights> = nets.iter().map(|c| c.as_ref()).collect();
        ws::batch(&refs, self.layout, self.norm, device)
    }
}

/// Trains a burn model; returns it with the epochs run and the raw validation and test outputs.
pub fn train(
    zoo: &ZooData,
    opts: &RunOptions,
    norm: &Norm,
    ys: &[f64],
    (tr, va, te): (&[usize], &[usize], &[usize]),
    progress: &mut dyn FnMut(Progress),
) -> Result<(crate::learner::Learned, usize, Vec<f32>, Vec<f32>)> {
    let cfg = &opts.config;
    let plain = Device::flex();
    let ad = plain.clone().autodiff();
    let nets: Vec<&NetWeights> = zoo.samples.iter().map(|s| &s.net).collect();
    let hom: Vec<bool> = zoo.samples.iter().map(|s| s.homogeneous).collect();
    let is_mlp = opts.model == "stats-mlp" || opts.model == "flat-mlp";
    let cached: Vec<Vec<f32>> = if is_mlp {
        zoo.samples
            .iter()
            .map(|s| encode_vec(&opts.model, &s.net, norm))
            .collect()
    } else {
        vec![]
    };
    let inputs = Inputs {
        samples: &nets,
        homogeneous: &hom,
        layout: &zoo.layout,
        norm,
        model: &opts.model,
        augment: cfg.augment,
        cached,
    };
    let out = outputs(&zoo.task);
    let cls = classes(&zoo.task);
    let s = Scoring {
        y: ys,
        classes: cls,
        split: (tr, va, te),
        cfg,
        seed: opts.seed,
        devices: (&ad, &plain),
    };
    if is_mlp {
        let dim = inputs.cached[0].len();
        let m = fit::seeded_init(&ad, opts.seed, |d| {
            Ok(Mlp::new(dim, cfg.hidden, cfg.depth, out, d))
        })?;
        let make = |idx: &[usize], rng: Option<&mut Rng>, d: &Device| inputs.vectors(idx, rng, d);
        let fwd = |m: &Mlp, x: &Tensor<2>| m.forward(x.clone());
        Ok(fit_scored(&s, m, &make, &fwd, Neural::Mlp, progress))
    } else {
        let m = fit::seeded_init(&ad, opts.seed, |d| {
            ws::init(&opts.model, &zoo.layout, cfg, out, d)
        })?;
        let make = |idx: &[usize], rng: Option<&mut Rng>, d: &Device| inputs.ws(idx, rng, d);
        let fwd = |m: &ws::Model, x: &ws::Batch| ws::forward(m, x);
        Ok(fit_scored(&s, m, &make, &fwd, Neural::Ws, progress))
    }
}

impl Neural {
    /// Raw outputs for networks of the trained layout.
    pub fn raw(&self, nets: &[&NetWeights], meta: &Meta) -> Vec<f32> {
        let device = Device::flex();
        let mut out = Vec::new();
        for chunk in nets.chunks(256) {
            let y = match self {
                Neural::Mlp(m) => {
                    let rows: Vec<Vec<f32>> = chunk
                        .iter()
                        .map(|n| encode_vec(&meta.model, n, &meta.norm))
                        .collect();
                    let dim = rows[0].len();
                    m.forward(nn::tensor2(rows.concat(), chunk.len(), dim, &device))
                }
                Neural::Ws(m) => {
                    ws::forward(m, &ws::batch(chunk, &meta.layout, &meta.norm, &device))
                }
            };
            out.extend(nn::to_vec(y));
        }
        out
    }

    /// Writes the parameters as safetensors.
    pub fn save(&self, path: &Path, md: &BTreeMap<String, String>) -> Result<()> {
        match self {
            Neural::Mlp(m) => nn::save_module(m, path, md),
            Neural::Ws(m) => nn::save_module(m, path, md),
        }
    }

    /// Rebuilds the model described by `meta` and loads its parameters. The skeleton is built
    /// under the init lock too ([`fit::seeded_init`], seed 0): building draws every parameter
    /// from burn's global RNG, and unlocked draws would shift the stream of a model being
    /// initialised on another thread at the same time.
    pub fn load(meta: &Meta, path: &Path) -> Result<Neural> {
        let device = Device::flex();
        let out = outputs(&meta.task);
        if meta.model == "stats-mlp" || meta.model == "flat-mlp" {
            let dim = if meta.model == "stats-mlp" {
                meta.norm.stat_mean.len()
            } else {
                meta.layout.num_params()
            };
            let (h, depth) = (meta.config.hidden, meta.config.depth);
            let m = fit::seeded_init(&device, 0, |d| Ok(Mlp::new(dim, h, depth, out, d)))?;
            Ok(Neural::Mlp(nn::load_module(m, path)?))
        } else {
            let m = fit::seeded_init(&device, 0, |d| {
                ws::init(&meta.model, &meta.layout, &meta.config, out, d)
            })?;
            Ok(Neural::Ws(nn::load_module(m, path)?))
        }
    }
}

/// What [`fit_scored`] needs besides the model and its inputs.
struct Scoring<'a> {
    y: &'a [f64],
    classes: usize,
    split: (&'a [usize], &'a [usize], &'a [usize]),
    cfg: &'a crate::train::TrainConfig,
    seed: u64,
    /// (autodiff device for training, plain device for scoring)
    devices: (&'a Device, &'a Device),
}

/// Trains `model` with early stopping, and scores the best epoch's model on the validation and
/// test indices: (the model wrapped by `wrap`, epochs run, raw validation outputs, raw test
/// outputs). One path for the MLP baselines and the weight-space networks.
#[allow(clippy::type_complexity)]
fn fit_scored<M: burn::module::Module + Clone, X>(
    s: &Scoring,
    model: M,
    make: &(dyn Fn(&[usize], Option<&mut Rng>, &Device) -> X + Sync),
    forward: &(dyn Fn(&M, &X) -> Tensor<2> + Sync),
    wrap: fn(M) -> Neural,
    progress: &mut dyn FnMut(Progress),
) -> (crate::learner::Learned, usize, Vec<f32>, Vec<f32>) {
    let p = Problem {
        make,
        forward,
        y: s.y,
        classes: s.classes,
    };
    let (tr, va, te) = s.split;
    let (ad, plain) = s.devices;
    let (m, hist) = fit::fit(model, &p, tr, va, s.cfg, s.seed, ad, plain, progress);
    let rv = fit::predict(&p, &m, va, 256, plain);
    let rt = fit::predict(&p, &m, te, 256, plain);
    (crate::learner::Learned::Neural(wrap(m)), hist.len(), rv, rt)
}
