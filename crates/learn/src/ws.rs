//! Glue to the weight-space networks of `weightspace-wsnets`: a [`Layout`] becomes a
//! `WsShape`, samples become a `WsBatch` (each tensor standardised by its training mean and std;
//! conv weights `[out, in, kh, kw]` are read as `[out, in, kh·kw]`, dense `[out, in]` as
//! `[out, in, 1]`). BatchNorm parameters are not part of the `WsBatch` (the wsnets models see
//! the dense/conv chain only); the statistics and flat baselines do see them.

use burn::tensor::{Device, Tensor, TensorData};
use weightspace_wsnets::{LayerShape, WsArch, WsBatch, WsNet, WsNetConfig, WsShape};

use crate::data::{Layout, NetWeights};
use crate::error::{Error, Result};
use crate::features::Norm;
use crate::train::TrainConfig;

/// The weight-space model type.
pub type Model = WsNet;
/// A batch of input networks.
pub type Batch = WsBatch;

/// Checks that a wsnets model name is known (the baselines always are).
pub fn check_available(name: &str) -> Result<()> {
    match name {
        "stats-gbm" | "stats-mlp" | "flat-mlp" => Ok(()),
        n => n
            .parse::<WsArch>()
            .map(|_| ())
            .map_err(|_| Error::UnknownModel(n.to_string())),
    }
}

/// The wsnets shape of a layout.
pub fn shape(layout: &Layout) -> WsShape {
    WsShape {
        layers: layout
            .layers
            .iter()
            .map(|l| LayerShape {
                out: l.out,
                inp: l.inp,
                kernel: l.kernel,
            })
            .collect(),
    }
}

/// A fresh model (burn's RNG: call under [`crate::fit::seeded_init`]).
pub fn init(
    name: &str,
    layout: &Layout,
    cfg: &TrainConfig,
    out: usize,
    device: &Device,
) -> Result<Model> {
    let arch: WsArch = name
        .parse()
        .map_err(|_| Error::UnknownModel(name.to_string()))?;
    let c = WsNetConfig {
        arch,
        hidden: cfg.hidden,
        depth: cfg.depth,
        out_dim: out,
        dropout: 0.0,
        input_downsample: cfg.input_downsample,
    };
    c.try_init(&shape(layout), device)
        .map_err(|e| Error::Options(format!("{name}: {e}")))
}

/// The batch for some networks, normalised.
pub fn batch(nets: &[&NetWeights], layout: &Layout, norm: &Norm, device: &Device) -> Batch {
    let b = nets.len();
    let mut weights = Vec::with_capacity(layout.layers.len());
    let mut biases = Vec::with_capacity(layout.layers.len());
    for l in &layout.layers {
        let mut w = Vec::with_capacity(b * l.out * l.inp * l.kernel);
        let mut bb = Vec::with_capacity(b * l.out);
        for n in nets {
            w.extend(norm.tensor(n, l.weight));
            bb.extend(norm.tensor(n, l.bias));
        }
        weights.push(Tensor::<4>::from_data(
            TensorData::new(w, [b, l.out, l.inp, l.kernel]),
            device,
        ));
        biases.push(Tensor::<2>::from_data(
            TensorData::new(bb, [b, l.out]),
            device,
        ));
    }
    WsBatch { weights, biases }
}

/// Raw outputs `[b, out]`.
pub fn forward(m: &Model, b: &Batch) -> Tensor<2> {
    m.forward(b)
}
