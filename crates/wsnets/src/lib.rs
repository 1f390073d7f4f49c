//! Weight-space networks: models whose input is the weights of another network.
//!
//! This crate owns the layers and models — DeepSets, NFN (NP and HNP layers, Zhou et al. 2023),
//! DWSNets (Navon et al. 2023) and the neural-graph GNN and relational transformer (Kofinas et al.
//! 2024) — written on burn (`=0.22.1`, Flex CPU backend, autodiff). Every model is invariant to the
//! permutations of the hidden units of its input networks (tests check this to float tolerance).
//!
//! Architecture invariant: this crate knows nothing of files, zoos, training loops or the CLI.
//! It takes a [`WsShape`] (the layer chain of the input networks) and batches of their weights
//! ([`WsBatch`]), and returns a [`WsNet`], a burn `Module`, whose `forward` maps a batch to
//! `[batch, out_dim]`. Normalising the input weights, training and saving belong to the caller.
//!
//! Burn 0.22 has no backend type parameter: tensors carry their backend in their
//! [`burn::tensor::Device`] (`Device::flex()`, `Device::flex().autodiff()` for training).

mod common;
mod deepsets;
mod dws;
mod nfn;
mod ng;

use std::fmt;
use std::str::FromStr;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

pub use common::WsError;

/// One layer of the input networks: `out` units, `inp` inputs and `kernel` entries per
/// (out, inp) pair — 1 for a dense layer, `kh * kw` for a convolution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerShape {
    /// Output units (rows of the weight matrix, channels of a convolution).
    pub out: usize,
    /// Input units (columns of the weight matrix, input channels of a convolution).
    pub inp: usize,
    /// Kernel size `kh * kw`; 1 for dense layers.
    pub kernel: usize,
}

/// The shape of the input networks: a chain of layers (dense or conv).
///
/// Layer `i`'s `inp` equals layer `i-1`'s `out` (a dense layer after global average pooling of a
/// convolution has `inp == conv.out`). The hidden units are the outputs of every layer but the
/// last; they are what the models are invariant to permuting.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WsShape {
    /// The layers, input side first.
    pub layers: Vec<LayerShape>,
}

impl WsShape {
    /// Checks that the chain is well formed: at least one layer, no zero sizes, and each layer's
    /// `inp` equal to the previous layer's `out`.
    pub fn validate(&self) -> Result<(), WsError> {
        if self.layers.is_empty() {
            return Err(WsError::Shape("the input networks have no layers".into()));
        }
        for (i, l) in self.layers.iter().enumerate() {
            if l.out == 0 || l.inp == 0 || l.kernel == 0 {
                return Err(WsError::Shape(format!(
                    "layer {i} has a zero size (out {}, inp {}, kernel {})",
                    l.out, l.inp, l.kernel
                )));
            }
            if i > 0 && l.inp != self.layers[i - 1].out {
                return Err(WsError::Shape(format!(
                    "layer {i} takes {} inputs but layer {} has {} outputs",
                    l.inp,
                    i - 1,
                    self.layers[i - 1].out
                )));
            }
        }
        Ok(())
    }

    /// Number of inputs of the input networks (`layers[0].inp`).
    pub fn n_in(&self) -> usize {
        self.layers[0].inp
    }

    /// Number of outputs of the input networks (`layers[L-1].out`).
    pub fn n_out(&self) -> usize {
        self.layers[self.layers.len() - 1].out
    }

    /// Total number of parameters (weights and biases) of one input network.
    pub fn num_params(&self) -> usize {
        self.layers
            .iter()
            .map(|l| l.out * l.inp * l.kernel + l.out)
            .sum()
    }
}

/// A batch of input networks.
#[derive(Clone, Debug)]
pub struct WsBatch {
    /// Per layer: `[batch, out, inp, kernel]`.
    pub weights: Vec<Tensor<4>>,
    /// Per layer: `[batch, out]`.
    pub biases: Vec<Tensor<2>>,
}

impl WsBatch {
    /// Number of networks in the batch (0 if it has no layers).
    pub fn batch_size(&self) -> usize {
        self.weights.first().map(|w| w.dims()[0]).unwrap_or(0)
    }

    /// Checks that the tensors match `shape` and agree on the batch size.
    pub fn check(&self, shape: &WsShape) -> Result<(), WsError> {
        let l = shape.layers.len();
        if self.weights.len() != l || self.biases.len() != l {
            return Err(WsError::Batch(format!(
                "expected {l} weight and {l} bias tensors, got {} and {}",
                self.weights.len(),
                self.biases.len()
            )));
        }
        let bs = self.batch_size();
        for (i, (ls, (w, b))) in shape
            .layers
            .iter()
            .zip(self.weights.iter().zip(&self.biases))
            .enumerate()
        {
            let want_w = [bs, ls.out, ls.inp, ls.kernel];
            if w.dims() != want_w {
                return Err(WsError::Batch(format!(
                    "layer {i} weight has shape {:?}, expected {want_w:?}",
                    w.dims()
                )));
            }
            if b.dims() != [bs, ls.out] {
                return Err(WsError::Batch(format!(
                    "layer {i} bias has shape {:?}, expected {:?}",
                    b.dims(),
                    [bs, ls.out]
                )));
            }
        }
        Ok(())
    }
}

/// Which weight-space architecture to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WsArch {
    /// Per-neuron sets (edge encoder, mean over a neuron's inputs, MLP), mean-pooled per layer.
    DeepSets,
    /// NFN with NP layers (all neurons permutable; learned I/O position embeddings).
    NfnNp,
    /// NFN with HNP layers (hidden neurons permutable, input/output neurons fixed).
    NfnHnp,
    /// DWSNets: deep weight-space layers built from weight/bias-to-weight/bias blocks.
    Dws,
    /// Neural graph + PNA message passing with edge updates.
    NgGnn,
    /// Neural graph + relational transformer.
    NgTransformer,
}

impl WsArch {
    /// All architectures, in a fixed order.
    pub const ALL: [WsArch; 6] = [
        WsArch::DeepSets,
        WsArch::NfnNp,
        WsArch::NfnHnp,
        WsArch::Dws,
        WsArch::NgGnn,
        WsArch::NgTransformer,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WsArch::DeepSets => "deepsets",
            WsArch::NfnNp => "nfn-np",
            WsArch::NfnHnp => "nfn-hnp",
            WsArch::Dws => "dws",
            WsArch::NgGnn => "ng-gnn",
            WsArch::NgTransformer => "ng-transformer",
        }
    }
}

impl fmt::Display for WsArch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for WsArch {
    type Err = WsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WsArch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                WsError::Config(format!(
                    "unknown weight-space model `{s}` (expected one of: {})",
                    WsArch::ALL.map(|a| a.name()).join(", ")
                ))
            })
    }
}

/// Hyper-parameters of a weight-space model.
#[derive(Clone, Debug)]
pub struct WsNetConfig {
    /// The architecture.
    pub arch: WsArch,
    /// Width: channels of the equivariant layers, node/edge width of the graph models, width
    /// of the MLP head. 32–64 is the CPU-sized default.
    pub hidden: usize,
    /// Number of equivariant / message-passing layers (for DeepSets: depth of the per-neuron MLP).
    pub depth: usize,
    /// Output size (1 for a scalar regression target, the number of classes for classification).
    pub out_dim: usize,
    /// Dropout probability in the MLP head (only active on an autodiff device).
    pub dropout: f64,
    /// `dws` only: map the input networks' first-layer input axis down to this many positions
    /// inside every layer when it is larger (DWSNets' `input_dim_downsample`); `None` keeps it.
    pub input_downsample: Option<usize>,
}

impl WsNetConfig {
    /// A config with `hidden` 32, `depth` 2, `out_dim` 1, no dropout, no input down-sampling.
    pub fn new(arch: WsArch) -> Self {
        WsNetConfig {
            arch,
            hidden: 32,
            depth: 2,
            out_dim: 1,
            dropout: 0.0,
            input_downsample: None,
        }
    }

    /// Builds the model for input networks of the given shape.
    ///
    /// # Panics
    /// If the shape or the config is invalid (see [`WsNetConfig::try_init`], which returns the
    /// error instead).
    pub fn init(&self, shape: &WsShape, device: &Device) -> WsNet {
        match self.try_init(shape, device) {
            Ok(net) => net,
            Err(e) => panic!("cannot build {} model: {e}", self.arch),
        }
    }

    /// Builds the model, or says why this config cannot handle this shape.
    pub fn try_init(&self, shape: &WsShape, device: &Device) -> Result<WsNet, WsError> {
        shape.validate()?;
        if self.hidden == 0 || self.out_dim == 0 {
            return Err(WsError::Config(format!(
                "hidden ({}) and out_dim ({}) must be positive",
                self.hidden, self.out_dim
            )));
        }
        if self.depth == 0 {
            return Err(WsError::Config("depth must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(WsError::Config(format!(
                "dropout must be in [0, 1), got {}",
                self.dropout
            )));
        }
        let model = match self.arch {
            WsArch::DeepSets => Model::DeepSets(deepsets::DeepSets::new(self, shape, device)),
            WsArch::NfnNp => Model::Nfn(nfn::Nfn::new(self, shape, false, device)?),
            WsArch::NfnHnp => Model::Nfn(nfn::Nfn::new(self, shape, true, device)?),
            WsArch::Dws => Model::Dws(dws::Dws::new(self, shape, device)?),
            WsArch::NgGnn => Model::NgGnn(ng::NgGnn::new(self, shape, device)?),
            WsArch::NgTransformer => {
                Model::NgTransformer(ng::NgTransformer::new(self, shape, device)?)
            }
        };
        Ok(WsNet {
            model,
            shape: shape.clone(),
            arch: self.arch,
        })
    }
}

#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
enum Model {
    DeepSets(deepsets::DeepSets),
    Nfn(nfn::Nfn),
    Dws(dws::Dws),
    NgGnn(ng::NgGnn),
    NgTransformer(ng::NgTransformer),
}

/// A weight-space model: a burn `Module` (train it with burn's optimisers, save its record).
#[derive(Module, Debug)]
pub struct WsNet {
    model: Model,
    #[module(skip)]
    shape: WsShape,
    #[module(skip)]
    arch: WsArch,
}

impl WsNet {
    /// `[batch, out_dim]`; invariant to the hidden-unit permutations of the input networks (up to
    /// float tolerance).
    ///
    /// # Panics
    /// If the batch does not match the shape the model was built for (check it first with
    /// [`WsBatch::check`], or call [`WsNet::try_forward`]).
    pub fn forward(&self, x: &WsBatch) -> Tensor<2> {
        match self.try_forward(x) {
            Ok(y) => y,
            Err(e) => panic!("{} forward: {e}", self.arch),
        }
    }

    /// Like [`WsNet::forward`], but returns an error when the batch does not match the shape.
    pub fn try_forward(&self, x: &WsBatch) -> Result<Tensor<2>, WsError> {
        x.check(&self.shape)?;
        Ok(match &self.model {
            Model::DeepSets(m) => m.forward(x),
            Model::Nfn(m) => m.forward(x),
            Model::Dws(m) => m.forward(x),
            Model::NgGnn(m) => m.forward(x),
            Model::NgTransformer(m) => m.forward(x),
        })
    }

    /// The input-network shape the model was built for.
    pub fn shape(&self) -> &WsShape {
        &self.shape
    }

    /// The architecture.
    pub fn arch(&self) -> WsArch {
        self.arch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(out: usize, inp: usize, kernel: usize) -> LayerShape {
        LayerShape { out, inp, kernel }
    }

    #[test]
    fn arch_names_round_trip() {
        for a in WsArch::ALL {
            assert_eq!(a.to_string().parse::<WsArch>().unwrap(), a);
        }
        let e = "nfn".parse::<WsArch>().unwrap_err();
        assert!(
            e.to_string().contains("unknown weight-space model `nfn`"),
            "{e}"
        );
    }

    #[test]
    fn shape_validation_names_the_problem() {
        let ok = WsShape {
            layers: vec![l(16, 1, 9), l(10, 16, 1)],
        };
        ok.validate().unwrap();
        assert_eq!(ok.num_params(), 16 * 9 + 16 + 160 + 10);
        let broken = WsShape {
            layers: vec![l(16, 1, 9), l(10, 8, 1)],
        };
        let e = broken.validate().unwrap_err().to_string();
        assert!(
            e.contains("layer 1 takes 8 inputs but layer 0 has 16 outputs"),
            "{e}"
        );
        let e = WsShape { layers: vec![] }
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("no layers"), "{e}");
        let e = WsShape {
            layers: vec![l(3, 0, 1)],
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("zero size"), "{e}");
    }

    #[test]
    fn bad_config_and_batch_are_errors() {
        let dev = Device::flex();
        let shape = WsShape {
            layers: vec![l(4, 3, 1), l(2, 4, 1)],
        };
        let mut cfg = WsNetConfig::new(WsArch::DeepSets);
        cfg.depth = 0;
        assert!(cfg.try_init(&shape, &dev).is_err());
        let one = WsShape {
            layers: vec![l(2, 3, 1)],
        };
        let e = WsNetConfig::new(WsArch::NfnHnp)
            .try_init(&one, &dev)
            .unwrap_err();
        assert!(e.to_string().contains("at least 2 layers"), "{e}");

        let net = WsNetConfig::new(WsArch::DeepSets).init(&shape, &dev);
        let bad = WsBatch {
            weights: vec![
                Tensor::zeros([2, 4, 3, 1], &dev),
                Tensor::zeros([2, 2, 5, 1], &dev),
            ],
            biases: vec![Tensor::zeros([2, 4], &dev), Tensor::zeros([2, 2], &dev)],
        };
        let e = net.try_forward(&bad).unwrap_err().to_string();
        assert!(
            e.contains("layer 1 weight has shape [2, 2, 5, 1], expected [2, 2, 4, 1]"),
            "{e}"
        );
        let good = WsBatch {
            weights: vec![
                Tensor::zeros([2, 4, 3, 1], &dev),
                Tensor::zeros([2, 2, 4, 1], &dev),
            ],
            biases: vec![Tensor::zeros([2, 4], &dev), Tensor::zeros([2, 2], &dev)],
        };
        assert_eq!(net.forward(&good).dims(), [2, 1]);
    }
}
