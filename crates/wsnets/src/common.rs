//! Pieces shared by the models: the error type, the MLP head, linear layers with the NFN
//! initialisation, and the conversion of a batch into channels-last features.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::{WsBatch, WsNetConfig};

/// What can go wrong when building or running a weight-space model.
///
/// (`Display`/`Error` are written by hand rather than with `thiserror`: enabling `thiserror`'s
/// `std` feature here would change burn's feature set and rebuild all of burn.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsError {
    /// The input-network shape is malformed or not supported by the architecture.
    Shape(String),
    /// The batch does not match the shape the model was built for.
    Batch(String),
    /// A hyper-parameter is out of range, or an unknown architecture name.
    Config(String),
}

impl std::fmt::Display for WsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WsError::Shape(m) => write!(f, "input-network shape: {m}"),
            WsError::Batch(m) => write!(f, "batch: {m}"),
            WsError::Config(m) => write!(f, "config: {m}"),
        }
    }
}

impl std::error::Error for WsError {}

/// A linear layer with PyTorch's default initialisation (`U(-1/sqrt(fan_in), 1/sqrt(fan_in))`
/// for weights and bias).
pub(crate) fn linear(d_in: usize, d_out: usize, device: &Device) -> Linear {
    linear_fan(d_in, d_out, d_in, true, device)
}

/// A linear layer initialised `U(-1/sqrt(fan), 1/sqrt(fan))`, where `fan` is the total fan-in of a
/// sum of layers (NFN's `set_init_`), so that a sum of terms starts with unit-scale variance.
pub(crate) fn linear_fan(
    d_in: usize,
    d_out: usize,
    fan: usize,
    bias: bool,
    device: &Device,
) -> Linear {
    let bound = 1.0 / (fan.max(1) as f64).sqrt();
    LinearConfig::new(d_in, d_out)
        .with_bias(bias)
        .with_initializer(Initializer::Uniform {
            min: -bound,
            max: bound,
        })
        .init(device)
}

/// NFN's MLP head (`MlpHead`): Linear, ReLU, Linear, ReLU, Linear, with dropout after each ReLU.
#[derive(Module, Debug)]
pub(crate) struct Head {
    l1: Linear,
    l2: Linear,
    l3: Linear,
    dropout: Dropout,
}

impl Head {
    /// Hidden layers `cfg.hidden` wide.
    pub(crate) fn new(d_in: usize, cfg: &WsNetConfig, device: &Device) -> Self {
        Self::with_width(d_in, cfg.hidden, cfg, device)
    }

    /// Hidden layers `width` wide.
    pub(crate) fn with_width(
        d_in: usize,
        width: usize,
        cfg: &WsNetConfig,
        device: &Device,
    ) -> Self {
        Head {
            l1: linear(d_in, width, device),
            l2: linear(width, width, device),
            l3: linear(width, cfg.out_dim, device),
            dropout: DropoutConfig::new(cfg.dropout).init(),
        }
    }

    pub(crate) fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let x = self.dropout.forward(relu(self.l1.forward(x)));
        let x = self.dropout.forward(relu(self.l2.forward(x)));
        self.l3.forward(x)
    }
}

/// Channels-last features of a batch: weights `[B, out, inp, kernel * C]`, biases `[B, out, C]`.
#[derive(Clone, Debug)]
pub(crate) struct Feats {
    pub w: Vec<Tensor<4>>,
    pub b: Vec<Tensor<3>>,
}

impl Feats {
    /// The raw batch as features with one channel.
    pub(crate) fn from_batch(x: &WsBatch) -> Self {
        Feats {
            w: x.weights.clone(),
            b: x.biases
                .iter()
                .map(|b| b.clone().unsqueeze_dim(2))
                .collect(),
        }
    }

    pub(crate) fn map(
        self,
        f: impl Fn(Tensor<4>) -> Tensor<4>,
        g: impl Fn(Tensor<3>) -> Tensor<3>,
    ) -> Self {
        Feats {
            w: self.w.into_iter().map(f).collect(),
            b: self.b.into_iter().map(g).collect(),
        }
    }

    pub(crate) fn relu(self) -> Self {
        self.map(relu, relu)
    }
}

/// `[B, a, F] -> [B, a * F]`.
pub(crate) fn flat3(x: Tensor<3>) -> Tensor<2> {
    let [b, a, f] = x.dims();
    x.reshape([b, a * f])
}
