//! DWSNets (Navon et al. 2023, "Equivariant Architectures for Learning in Deep Weight Spaces"),
//! after the reference code `AvivNavon/DWSNets` (`nn/layers/{weight_to_weight, bias_to_weight,
//! weight_to_bias, bias_to_bias, base, layers}.py`, `nn/models.py`).
//!
//! A DWS layer maps every input tensor (each `W_i` and `b_i`) to every output tensor through its
//! own block and averages the blocks' sums over the `2L` tensors (`DWSLayer.forward`). All the
//! reference's block classes (`GeneralMatrixSetLayer`, `SetKroneckerSetLayer`, `SameLayer`,
//! `SuccessiveLayers`, `NonNeighborInternalLayer`, `FromFirstLayer`, `ToLastLayer`, …) follow one
//! rule, which this module implements once:
//!
//! 1. reduce (max, the reference default) the input over its hidden axes that the output does not
//!    share;
//! 2. fold the axes that are not permuted — the network's input dimension (columns of `W_0`) and
//!    output dimension (rows of `W_{L-1}`, `b_{L-1}`) — into the feature vector;
//! 3. map with a DeepSets set layer over the shared hidden set (`SetLayer`: `Γ(x) − Λ(max x)`),
//!    with the four-term `SetKroneckerSetLayer` when both axes are shared (`W_i → W_i`), or with a
//!    linear layer when nothing is shared;
//! 4. unfold the output's fixed axes from the features and broadcast over its other hidden axes.
//!
//! Input down-sampling (`input_dim_downsample`, the reference's `DownSampleDWSLayer`): the
//! first weight matrix's input axis is not permuted, so it is folded into the features, and the
//! `W_0 → W_0` block alone is a `(d0·C)²` map. On 64-input digits MLPs with 64 channels that
//! block has 34 M parameters in each layer (the model 106 M in all). With
//! `input_downsample = Some(k)` and `d0 > k`, each layer maps `W_0`'s input axis `d0 → k` with a
//! set layer (`Γ(x) − Λ(attention pool over the hidden units)`), runs the DWS layer on the
//! smaller network shape, maps back `k → d0` and adds a channel-wise skip of `W_0`, as the
//! reference does.
//!
//! Deviations (documented in the README): the set layer is the DeepSets one (`set_layer="ds"`),
//! not the default self-attention block (`"sab"`); `n_fc_layers = 1`; no skip connections or
//! batch norm (except the down-sampling skip above). Convolutional inputs are supported by
//! folding the kernel into the features (as NFN does) — an extension, the reference handles MLPs
//! only; input down-sampling is for dense first layers.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::{relu, softmax};
use burn::tensor::{Device, Distribution, Tensor};

use crate::common::Feats;
use crate::{WsBatch, WsError, WsNetConfig, WsShape};

/// DWS initialisation (`DWSLayer._init_model_params` with scale 1): xavier-normal weights times
/// `sqrt(2 in / out)`, biases `U(-1e-4, 1e-4)`.
fn dws_linear(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    let (i, o) = (d_in as f64, d_out as f64);
    let std = (2.0 / (i + o)).sqrt() * (2.0 * i / o).sqrt();
    Linear {
        weight: Param::from_tensor(Tensor::random(
            [d_in, d_out],
            Distribution::Normal(0.0, std),
            device,
        )),
        bias: bias.then(|| {
            Param::from_tensor(Tensor::random(
                [d_out],
                Distribution::Uniform(-1e-4, 1e-4),
                device,
            ))
        }),
    }
}

/// An axis of a (weight or bias) tensor: a hidden neuron set, or a fixed (not permuted) axis of
/// the given size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ax {
    Hidden(usize),
    Fixed(usize),
}

impl Ax {
    fn fixed_or_one(self) -> usize {
        match self {
            Ax::Fixed(n) => n,
            Ax::Hidden(_) => 1,
        }
    }
}

/// Axes and feature multiplier of tensor `t` (`t < L`: `W_t`, else `b_{t-L}`), all viewed as
/// `[B, a1, a2, F]` (a bias is `[B, n, 1, F]`). The multiplier is the kernel size for weights.
fn axes(shape: &WsShape, t: usize) -> (Ax, Ax, usize) {
    let l = shape.layers.len();
    let layer = t % l;
    let a1 = if layer + 1 < l {
        Ax::Hidden(layer)
    } else {
        Ax::Fixed(shape.n_out())
    };
    if t < l {
        let a2 = if layer > 0 {
            Ax::Hidden(layer - 1)
        } else {
            Ax::Fixed(shape.n_in())
        };
        (a1, a2, shape.layers[layer].kernel)
    } else {
        (a1, Ax::Fixed(1), 1)
    }
}

/// The map of one input tensor to one output tensor.
#[derive(Module, Debug)]
struct DwsBlock {
    /// No shared set: Linear. One: DeepSets Γ. Two: Kronecker "all".
    a: Linear,
    /// One shared set: DeepSets Λ (no bias). Two: Kronecker "rows".
    b: Option<Linear>,
    /// Kronecker "cols" and "both".
    c: Option<Linear>,
    d: Option<Linear>,
    /// Which input axes are reduced (not shared with the output), and the shared layout.
    #[module(skip)]
    reduce1: bool,
    #[module(skip)]
    reduce2: bool,
    /// Position (1 or 2) of the shared set in the input / output; 0 if none; 3 if both axes.
    #[module(skip)]
    pos_in: usize,
    #[module(skip)]
    pos_out: usize,
    /// Output view `[B, y1, y2, Fy]` before broadcasting: `fy1`, `fy2` are the output's fixed
    /// sizes (1 for its hidden axes).
    #[module(skip)]
    fy: [usize; 2],
    #[module(skip)]
    f_out: usize,
}

fn max_keep(x: Tensor<4>, dim: usize) -> Tensor<4> {
    x.max_dim(dim)
}

impl DwsBlock {
    fn new(
        shape: &WsShape,
        p: usize,
        q: usize,
        c_in: usize,
        c_out: usize,
        device: &Device,
    ) -> Self {
        let (x1, x2, kx) = axes(shape, p);
        let (y1, y2, ky) = axes(shape, q);
        let hidden_y = |a: Ax| matches!(a, Ax::Hidden(_)) && (a == y1 || a == y2);
        let shared1 = hidden_y(x1);
        let shared2 = hidden_y(x2);
        let reduce1 = matches!(x1, Ax::Hidden(_)) && !shared1;
        let reduce2 = matches!(x2, Ax::Hidden(_)) && !shared2;
        let fx = kx * c_in;
        let fy_feat = ky * c_out;
        let fy = [y1.fixed_or_one(), y2.fixed_or_one()];
        let out_pos = |a: Ax| if a == y1 { 1 } else { 2 };
        let (pos_in, pos_out, a, b, c, d);
        match (shared1, shared2) {
            (true, true) => {
                debug_assert!(x1 == y1 && x2 == y2);
                pos_in = 3;
                pos_out = 3;
                a = dws_linear(fx, fy_feat, true, device);
                b = Some(dws_linear(fx, fy_feat, true, device));
                c = Some(dws_linear(fx, fy_feat, true, device));
                d = Some(dws_linear(fx, fy_feat, true, device));
            }
            (false, false) => {
                pos_in = 0;
                pos_out = 0;
                let din = x1.fixed_or_one() * x2.fixed_or_one() * fx;
                a = dws_linear(din, fy[0] * fy[1] * fy_feat, true, device);
                b = None;
                c = None;
                d = None;
            }
            (s1, _) => {
                pos_in = if s1 { 1 } else { 2 };
                let (shared, other) = if s1 { (x1, x2) } else { (x2, x1) };
                pos_out = out_pos(shared);
                let other_y = if pos_out == 1 { fy[1] } else { fy[0] };
                let din = other.fixed_or_one() * fx;
                a = dws_linear(din, other_y * fy_feat, true, device);
                b = Some(dws_linear(din, other_y * fy_feat, false, device));
                c = None;
                d = None;
            }
        }
        DwsBlock {
            a,
            b,
            c,
            d,
            reduce1,
            reduce2,
            pos_in,
            pos_out,
            fy,
            f_out: fy_feat,
        }
    }

    /// `x`: `[B, a1, a2, Fx]`; returns `[B, fy1 or 1, fy2 or 1, Fy]`, to be broadcast.
    fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        if self.reduce1 {
            x = max_keep(x, 1);
        }
        if self.reduce2 {
            x = max_keep(x, 2);
        }
        let [bs, a1, a2, f] = x.dims();
        match self.pos_in {
            0 => {
                let z = self.a.forward(x.reshape([bs, a1 * a2 * f]));
                z.reshape([bs, self.fy[0], self.fy[1], self.f_out])
            }
            3 => {
                let rows = max_keep(x.clone(), 1);
                let cols = max_keep(x.clone(), 2);
                let both = max_keep(cols.clone(), 1);
                let b = self.b.as_ref().expect("kronecker b");
                let c = self.c.as_ref().expect("kronecker c");
                let d = self.d.as_ref().expect("kronecker d");
                (self.a.forward(x) + b.forward(rows) + c.forward(cols) + d.forward(both)) / 4.0
            }
            pos => {
                // Shared set first: [B, s, other * F].
                let x = if pos == 2 { x.swap_dims(1, 2) } else { x };
                let [_, s, o, _] = x.dims();
                let z = x.reshape([bs, s, o * f]);
                let pooled = z.clone().max_dim(1);
                let lambda = self.b.as_ref().expect("set layer lambda");
                let z = self.a.forward(z) - lambda.forward(pooled);
                let other_y = if self.pos_out == 1 {
                    self.fy[1]
                } else {
                    self.fy[0]
                };
                let z = z.reshape([bs, s, other_y, self.f_out]);
                if self.pos_out == 2 {
                    z.swap_dims(1, 2)
                } else {
                    z
                }
            }
        }
    }
}

/// The reference's `GeneralSetLayer(d_in, d_out, reduction="attn", set_layer="ds")` as
/// `DownSampleDWSLayer` uses it on `W_0` viewed as `[B, C, n_1, d0]`: `Γ(x) − Λ(pool(x))`
/// along the last axis, where `pool` is an attention pooling over the hidden units `n_1`
/// (softmax over `n_1` of `x · q`, `q` a learned `d_in` vector starting at ones). The pooling is
/// invariant to permuting `n_1`, `Γ` acts on each unit alone: the map is equivariant.
#[derive(Module, Debug)]
struct DownSample {
    gamma: Linear,
    lambda: Linear,
    query: Param<Tensor<1>>,
}

impl DownSample {
    /// PyTorch's default `nn.Linear` initialisation, as the reference leaves these layers.
    fn new(d_in: usize, d_out: usize, device: &Device) -> Self {
        DownSample {
            gamma: LinearConfig::new(d_in, d_out).init(device),
            lambda: LinearConfig::new(d_in, d_out).with_bias(false).init(device),
            query: Param::from_tensor(Tensor::ones([d_in], device)),
        }
    }

    /// `x`: `[B, C, n, d_in]` → `[B, C, n, d_out]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, _, d] = x.dims();
        let q = self.query.val().reshape([1, 1, 1, d]);
        let attn = softmax((x.clone() * q).sum_dim(3), 2);
        let pooled = (x.clone() * attn).sum_dim(2);
        self.gamma.forward(x) - self.lambda.forward(pooled)
    }
}

/// `DownSampleDWSLayer`'s extra parts: `W_0`'s input axis mapped down before the DWS layer and
/// up after it, plus a skip of `W_0` (a channel map).
#[derive(Module, Debug)]
struct InputResample {
    down: DownSample,
    up: DownSample,
    skip: Linear,
}

/// One DWS layer: `(2L)^2` blocks, optionally inside an input down-sampling.
#[derive(Module, Debug)]
struct DwsLayer {
    /// `blocks[q * 2L + p]` maps input tensor `p` to output tensor `q`.
    blocks: Vec<DwsBlock>,
    resample: Option<InputResample>,
    #[module(skip)]
    out_dims: Vec<[usize; 3]>,
}

impl DwsLayer {
    fn new(
        shape: &WsShape,
        c_in: usize,
        c_out: usize,
        downsample: Option<usize>,
        device: &Device,
    ) -> Self {
        let d0 = shape.n_in();
        let (shape, resample) = match downsample {
            Some(k) if d0 > k => {
                let mut inner = shape.clone();
                inner.layers[0].inp = k;
                let r = InputResample {
                    down: DownSample::new(d0, k, device),
                    up: DownSample::new(k, d0, device),
                    skip: LinearConfig::new(c_in, c_out).init(device),
                };
                (inner, Some(r))
            }
            _ => (shape.clone(), None),
        };
        let t = 2 * shape.layers.len();
        let mut blocks = Vec::with_capacity(t * t);
        for q in 0..t {
            for p in 0..t {
                blocks.push(DwsBlock::new(&shape, p, q, c_in, c_out, device));
            }
        }
        let out_dims = (0..t)
            .map(|q| {
                let l = &shape.layers[q % shape.layers.len()];
                if q < shape.layers.len() {
                    [l.out, l.inp, l.kernel * c_out]
                } else {
                    [l.out, 1, c_out]
                }
            })
            .collect();
        DwsLayer {
            blocks,
            resample,
            out_dims,
        }
    }

    /// Inputs and outputs as `[B, a1, a2, F]` (weights first, then biases).
    fn forward(&self, xs: &[Tensor<4>]) -> Vec<Tensor<4>> {
        let Some(r) = &self.resample else {
            return self.forward_blocks(xs);
        };
        // W_0: [B, n_1, d0, C] -> [B, C, n_1, d0] -> down -> back to [B, n_1, k, C].
        let w0 = xs[0].clone();
        let skip = r.skip.forward(w0.clone());
        let mut inner = xs.to_vec();
        inner[0] = r
            .down
            .forward(w0.permute([0, 3, 1, 2]))
            .permute([0, 2, 3, 1]);
        let mut out = self.forward_blocks(&inner);
        let w0 = out[0].clone().permute([0, 3, 1, 2]);
        out[0] = r.up.forward(w0).permute([0, 2, 3, 1]) + skip;
        out
    }

    fn forward_blocks(&self, xs: &[Tensor<4>]) -> Vec<Tensor<4>> {
        let t = xs.len();
        let bs = xs[0].dims()[0];
        (0..t)
            .map(|q| {
                let [d1, d2, f] = self.out_dims[q];
                let mut acc: Option<Tensor<4>> = None;
                for (p, x) in xs.iter().enumerate() {
                    let y = self.blocks[q * t + p].forward(x.clone());
                    acc = Some(match acc {
                        None => y.expand([bs, d1, d2, f]),
                        Some(a) => a + y,
                    });
                }
                acc.expect("at least one tensor") / t as f64
            })
            .collect()
    }
}

/// `DWSModelForClassification`: DWS layers with ReLU (and dropout) between them, then ReLU,
/// dropout and the `InvariantLayer` (max over hidden axes, fixed axes kept, one Linear).
#[derive(Module, Debug)]
pub(crate) struct Dws {
    layers: Vec<DwsLayer>,
    dropout: Dropout,
    out: Linear,
}

impl Dws {
    pub(crate) fn new(
        cfg: &WsNetConfig,
        shape: &WsShape,
        device: &Device,
    ) -> Result<Self, WsError> {
        if let Some(k) = cfg.input_downsample {
            if k == 0 {
                return Err(WsError::Config("input down-sampling to 0 inputs".into()));
            }
            if shape.n_in() > k && shape.layers[0].kernel != 1 {
                return Err(WsError::Shape(format!(
                    "input down-sampling ({} -> {k} inputs) is for a dense first layer; this one is a convolution (kernel {})",
                    shape.n_in(),
                    shape.layers[0].kernel
                )));
            }
        }
        let mut layers = Vec::with_capacity(cfg.depth);
        let mut c = 1;
        for _ in 0..cfg.depth {
            layers.push(DwsLayer::new(
                shape,
                c,
                cfg.hidden,
                cfg.input_downsample,
                device,
            ));
            c = cfg.hidden;
        }
        let t = 2 * shape.layers.len();
        let pooled: usize = (0..t)
            .map(|i| {
                let (a1, a2, k) = axes(shape, i);
                a1.fixed_or_one() * a2.fixed_or_one() * k * c
            })
            .sum();
        Ok(Dws {
            layers,
            dropout: DropoutConfig::new(cfg.dropout).init(),
            // The reference's `InvariantLayer` is a plain `nn.Linear` with PyTorch's default
            // initialisation (`_init_model_params` only touches the DWS layers). The DWS
            // initialisation here (gain sqrt(2 in / out), in ≈ 5,000 pooled features for
            // one output) made the first outputs hundreds of times the targets' scale.
            out: LinearConfig::new(pooled, cfg.out_dim).init(device),
        })
    }

    pub(crate) fn forward(&self, x: &WsBatch) -> Tensor<2> {
        let f = Feats::from_batch(x);
        let mut xs: Vec<Tensor<4>> = f.w;
        xs.extend(f.b.into_iter().map(|b| b.unsqueeze_dim(2)));
        let l = x.weights.len();
        for (i, layer) in self.layers.iter().enumerate() {
            if i > 0 {
                xs = xs
                    .into_iter()
                    .map(|t| self.dropout.forward(relu(t)))
                    .collect();
            }
            xs = layer.forward(&xs);
        }
        let bs = x.batch_size();
        let pooled: Vec<Tensor<2>> = xs
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let t = self.dropout.forward(relu(t));
                let layer = i % l;
                let mut t = t;
                // Hidden axes: out-axis of every layer but the last; in-axis of every layer but the first.
                if layer + 1 < l {
                    t = t.max_dim(1);
                }
                if i < l && layer > 0 {
                    t = t.max_dim(2);
                }
                let [_, a, b, f] = t.dims();
                t.reshape([bs, a * b * f])
            })
            .collect();
        self.out.forward(Tensor::cat(pooled, 1))
    }
}
