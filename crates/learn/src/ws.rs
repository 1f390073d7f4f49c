//! Glue to the weight-space networks of `weightspace-wsnets`: layouts to `WsShape`, samples
//! to `WsBatch` (per-layer normalised, conv `[out, in, kh, kw]` as `[out, in, kh·kw]`).
//! (Stub until the wsnets crate lands: every wsnets model name reports that it is not built.)

use burn::tensor::{Device, Tensor};

use crate::data::{Layout, NetWeights};
use crate::error::{Error, Result};
use crate::features::Norm;
use crate::train::TrainConfig;

/// The weight-space model type.
pub type Model = crate::nn::Mlp;
/// A batch of input networks.
pub struct Batch;

/// Errors for wsnets names that this build cannot train.
pub fn check_available(name: &str) -> Result<()> {
    match name {
        "stats-gbm" | "stats-mlp" | "flat-mlp" => Ok(()),
        n => Err(Error::Options(format!(
            "model `{n}` is not available in this build"
        ))),
    }
}

/// A fresh model.
pub fn init(
    name: &str,
    _layout: &Layout,
    _cfg: &TrainConfig,
    _out: usize,
    _device: &Device,
) -> Result<Model> {
    check_available(name)?;
    unreachable!()
}

/// The batch for some networks.
pub fn batch(_nets: &[&NetWeights], _layout: &Layout, _norm: &Norm, _device: &Device) -> Batch {
    Batch
}

/// Raw outputs.
pub fn forward(_m: &Model, _b: &Batch) -> Tensor<2> {
    unreachable!()
}
