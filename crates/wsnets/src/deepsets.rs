//! DeepSets on per-neuron sets.
//!
//! Every unit `j` of layer `l` is one set element. Its feature vector is built from its incoming
//! weights — each (kernel) weight vector `W_l[j, i, :]` goes through a per-layer edge encoder
//! `φ_l = ReLU(Linear(kernel → hidden))`, and the results are averaged over the inputs `i` (so
//! the permutation of the previous layer does not matter) — concatenated with its bias `b_l[j]`,
//! and mapped by a per-layer MLP `ρ_l` (`depth` Linear+ReLU layers). The set of units of each
//! layer is mean-pooled; the per-layer vectors are concatenated and fed to the MLP head.
//! Invariant to every permutation of hidden units (and, more than required, of input/output
//! units too).

use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::common::{Head, linear};
use crate::{WsBatch, WsNetConfig, WsShape};

#[derive(Module, Debug)]
struct LayerEnc {
    edge: Linear,
    rho: Vec<Linear>,
}

#[derive(Module, Debug)]
pub(crate) struct DeepSets {
    layers: Vec<LayerEnc>,
    head: Head,
}

impl DeepSets {
    pub(crate) fn new(cfg: &WsNetConfig, shape: &WsShape, device: &Device) -> Self {
        let h = cfg.hidden;
        let layers = shape
            .layers
            .iter()
            .map(|l| LayerEnc {
                edge: linear(l.kernel, h, device),
                rho: (0..cfg.depth)
                    .map(|d| linear(if d == 0 { h + 1 } else { h }, h, device))
                    .collect(),
            })
            .collect();
        DeepSets {
            layers,
            head: Head::new(shape.layers.len() * h, cfg, device),
        }
    }

    pub(crate) fn forward(&self, x: &WsBatch) -> Tensor<2> {
        let pooled: Vec<Tensor<2>> = self
            .layers
            .iter()
            .zip(x.weights.iter().zip(&x.biases))
            .map(|(enc, (w, b))| {
                let [bs, n, _, _] = w.dims();
                // [B, n, m, K] -> [B, n, m, h] -> mean over inputs -> [B, n, h]
                let e = relu(enc.edge.forward(w.clone()));
                let h = e.dims()[3];
                let row = e.mean_dim(2).reshape([bs, n, h]);
                let mut z = Tensor::cat(vec![row, b.clone().unsqueeze_dim(2)], 2);
                for lin in &enc.rho {
                    z = relu(lin.forward(z));
                }
                // mean over the units of the layer: [B, h]
                z.mean_dim(1).reshape([bs, h])
            })
            .collect();
        self.head.forward(Tensor::cat(pooled, 1))
    }
}
