//! Neural graphs (Kofinas et al. 2024, "Graph Neural Networks for Learning Equivariant
//! Representations of Neural Networks"), after the reference code `mkofinas/neural-graphs`
//! (`nn/graph_constructor.py`, `nn/gnn.py`: `PNA`, `PNAConv`, `EdgeMLP`;
//! `nn/relational_transformer.py`: `RTLayer`, `RTAttention`, `EdgeLayer`; `nn/pooling.py`).
//!
//! The neural graph of an input network has one node per neuron — the `n_in` inputs, then the
//! outputs of every layer — and one edge per weight, from an input unit of a layer to its output
//! unit. Node features are the biases (0 for input nodes), edge features are the weights; a
//! convolution's edge carries its whole kernel vector, zero-padded to the largest kernel, so
//! dense layers and convolutions share one edge space. Learned position embeddings tell the
//! input nodes apart, the output nodes apart, and the hidden layers apart (one embedding shared by
//! all neurons of a hidden layer, so the graph is symmetric under hidden permutations).
//!
//! * `ng-gnn`: PNA message passing (aggregators mean/min/max/std, scalers identity and
//!   amplification, edge-modulated messages `scale ⊙ pre([x_i, x_j]) + shift`), LayerNorm + SiLU
//!   between layers, edge updates `e ← lin(SiLU(lin_e e + lin_s x_src + lin_t x_dst))`.
//! * `ng-transformer`: the relational transformer — dense attention over all node pairs, with
//!   the pair's edge features added to queries and keys and modulating values, node and edge
//!   MLPs with residuals and LayerNorm, and edge updates from both endpoints and the reversed
//!   edge.
//!
//! Both read out by concatenating the output nodes' features (`pooling_method: cat`,
//! `pooling_layer_idx: last`) into an MLP. Since all networks of a batch share one graph, the
//! GNN works on the per-layer blocks of the adjacency (`[B, n_out, n_in, d]` per layer) instead
//! of an edge list: the same sums, without gathers. Deviations (README): input features are
//! projected linearly (no random Fourier features), no activation embeddings or probe features.

use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{gelu, relu, silu, softmax};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::common::linear;
use crate::{WsBatch, WsError, WsNetConfig, WsShape};

/// The relational transformer's `Linear`: xavier-uniform weights, zero bias.
fn xavier(d_in: usize, d_out: usize, bias: bool, device: &Device) -> Linear {
    let a = (6.0 / (d_in + d_out) as f64).sqrt();
    let mut l = LinearConfig::new(d_in, d_out).with_bias(bias).init(device);
    l.weight = Param::from_tensor(Tensor::random(
        [d_in, d_out],
        Distribution::Uniform(-a, a),
        device,
    ));
    if bias {
        l.bias = Some(Param::from_tensor(Tensor::zeros([d_out], device)));
    }
    l
}

/// Builds the initial node and edge features of the neural graph.
#[derive(Module, Debug)]
struct GraphConstructor {
    node_proj: Linear,
    edge_proj: Linear,
    pos: Param<Tensor<2>>,
    #[module(skip)]
    pos_index: Vec<i64>,
    #[module(skip)]
    k_max: usize,
}

impl GraphConstructor {
    fn new(shape: &WsShape, d_node: usize, d_edge: usize, device: &Device) -> Self {
        let l = shape.layers.len();
        let k_max = shape.layers.iter().map(|s| s.kernel).max().unwrap_or(1);
        let (n_in, n_out) = (shape.n_in(), shape.n_out());
        // Position rows: each input node, one per hidden layer, each output node.
        let n_pos = n_in + (l - 1) + n_out;
        let mut pos_index: Vec<i64> = (0..n_in as i64).collect();
        for (i, s) in shape.layers.iter().enumerate() {
            if i + 1 < l {
                pos_index.extend(std::iter::repeat_n((n_in + i) as i64, s.out));
            } else {
                pos_index.extend((0..n_out).map(|j| (n_in + l - 1 + j) as i64));
            }
        }
        GraphConstructor {
            node_proj: linear(1, d_node, device),
            edge_proj: linear(k_max, d_edge, device),
            pos: Param::from_tensor(Tensor::random(
                [n_pos, d_node],
                Distribution::Normal(0.0, 1.0),
                device,
            )),
            pos_index,
            k_max,
        }
    }

    /// Raw weights zero-padded to `k_max`: `[B, n, m, k_max]`.
    fn pad(&self, w: &Tensor<4>) -> Tensor<4> {
        let [b, n, m, k] = w.dims();
        if k == self.k_max {
            w.clone()
        } else {
            let z = Tensor::zeros([b, n, m, self.k_max - k], &w.device());
            Tensor::cat(vec![w.clone(), z], 3)
        }
    }

    /// Node features per node set (inputs, then each layer's outputs): `[B, |V_s|, d]`.
    fn nodes(&self, x: &WsBatch) -> Vec<Tensor<3>> {
        let bs = x.batch_size();
        let dev = x.weights[0].device();
        let n_in = x.weights[0].dims()[2];
        let idx = Tensor::<1, Int>::from_data(
            TensorData::new(self.pos_index.clone(), [self.pos_index.len()]),
            &dev,
        );
        let pos = self.pos.val().select(0, idx); // [N, d]
        let d = pos.dims()[1];
        let mut sets = Vec::with_capacity(x.biases.len() + 1);
        let mut feats = vec![Tensor::zeros([bs, n_in, 1], &dev)];
        feats.extend(x.biases.iter().map(|b| b.clone().unsqueeze_dim(2)));
        let mut off = 0;
        for f in feats {
            let n = f.dims()[1];
            let p = pos.clone().narrow(0, off, n).reshape([1, n, d]);
            sets.push(self.node_proj.forward(f) + p);
            off += n;
        }
        sets
    }
}

/// One PNA convolution with edge-modulated messages (`PNAConv`, towers = 1, pre/post layers 1).
#[derive(Module, Debug)]
struct PnaConv {
    /// `pre_nns`: Linear over `[x_i, x_j]`, split into the target and source halves.
    pre_dst: Linear,
    pre_src: Linear,
    /// `edge_encoder`: edge -> (scale, shift).
    edge_enc: Linear,
    /// `post_nns` over `[x, aggregated]` and the final `lin`.
    post: Linear,
    lin: Linear,
    #[module(skip)]
    avg_log_deg: f64,
}

impl PnaConv {
    fn new(d: usize, d_edge: usize, avg_log_deg: f64, device: &Device) -> Self {
        // PyTorch init of a Linear(2d, d): bound 1/sqrt(2d) for both halves.
        let fan = 2 * d;
        PnaConv {
            pre_dst: crate::common::linear_fan(d, d, fan, true, device),
            pre_src: crate::common::linear_fan(d, d, fan, false, device),
            edge_enc: linear(d_edge, 2 * d, device),
            post: linear(9 * d, d, device),
            lin: linear(d, d, device),
            avg_log_deg,
        }
    }

    /// `nodes[s]`: `[B, |V_s|, d]`; `edges[l]`: `[B, |V_{l+1}|, |V_l|, d_e]`.
    fn forward(&self, nodes: &[Tensor<3>], edges: &[Tensor<4>]) -> Vec<Tensor<3>> {
        let d = nodes[0].dims()[2];
        let mut out = Vec::with_capacity(nodes.len());
        for (s, x) in nodes.iter().enumerate() {
            let [bs, n, _] = x.dims();
            let agg = if s == 0 {
                // Input nodes receive no messages.
                Tensor::zeros([bs, n, 8 * d], &x.device())
            } else {
                let e = &edges[s - 1];
                let src = &nodes[s - 1];
                let m = src.dims()[1];
                let pre = self.pre_dst.forward(x.clone()).reshape([bs, n, 1, d])
                    + self.pre_src.forward(src.clone()).reshape([bs, 1, m, d]);
                let ss = self.edge_enc.forward(e.clone());
                let scale = ss.clone().narrow(3, 0, d);
                let shift = ss.narrow(3, d, d);
                let msg = scale * pre + shift; // [B, n, m, d]
                let mean = msg.clone().mean_dim(2);
                let sq = msg.clone().powi_scalar(2).mean_dim(2);
                let std = (sq - mean.clone().powi_scalar(2)).clamp_min(1e-5).sqrt();
                let mx = msg.clone().max_dim(2);
                let mn = msg.min_dim(2);
                let aggs = Tensor::cat(vec![mean, mn, mx, std], 3).reshape([bs, n, 4 * d]);
                let amp = ((m as f64 + 1.0).ln() / self.avg_log_deg) as f32;
                Tensor::cat(vec![aggs.clone(), aggs * amp], 2)
            };
            let h = self.post.forward(Tensor::cat(vec![x.clone(), agg], 2));
            out.push(self.lin.forward(h));
        }
        out
    }
}

/// `EdgeMLP` of the PNA backbone.
#[derive(Module, Debug)]
struct EdgeUpdate {
    lin_e: Linear,
    lin_s: Linear,
    lin_t: Linear,
    lin1: Linear,
}

impl EdgeUpdate {
    fn new(d: usize, d_edge: usize, device: &Device) -> Self {
        EdgeUpdate {
            lin_e: linear(d_edge, d_edge, device),
            lin_s: linear(d, d_edge, device),
            lin_t: linear(d, d_edge, device),
            lin1: linear(d_edge, d_edge, device),
        }
    }

    fn forward(&self, nodes: &[Tensor<3>], edges: Vec<Tensor<4>>) -> Vec<Tensor<4>> {
        edges
            .into_iter()
            .enumerate()
            .map(|(l, e)| {
                let [bs, n, m, de] = e.dims();
                let h = self.lin_e.forward(e)
                    + self.lin_s.forward(nodes[l].clone()).reshape([bs, 1, m, de])
                    + self
                        .lin_t
                        .forward(nodes[l + 1].clone())
                        .reshape([bs, n, 1, de]);
                self.lin1.forward(silu(h))
            })
            .collect()
    }
}

/// Average of `log(deg + 1)` over all nodes (PyG's `DegreeScalerAggregation` statistics for the
/// one graph shared by the batch).
fn avg_log_deg(shape: &WsShape) -> f64 {
    let n_nodes = shape.n_in() + shape.layers.iter().map(|l| l.out).sum::<usize>();
    let total: f64 = shape
        .layers
        .iter()
        .map(|l| l.out as f64 * (l.inp as f64 + 1.0).ln())
        .sum();
    (total / n_nodes as f64).max(1e-6)
}

/// Readout: concatenated output nodes -> MLP.
#[derive(Module, Debug)]
struct CatReadout {
    layers: Vec<Linear>,
    dropout: Dropout,
}

impl CatReadout {
    fn new(d_in: usize, widths: &[usize], dropout: f64, device: &Device) -> Self {
        let mut layers = Vec::new();
        let mut d = d_in;
        for &w in widths {
            layers.push(linear(d, w, device));
            d = w;
        }
        CatReadout {
            layers,
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    fn forward(&self, out_nodes: Tensor<3>) -> Tensor<2> {
        let [bs, n, d] = out_nodes.dims();
        let mut x = out_nodes.reshape([bs, n * d]);
        let last = self.layers.len() - 1;
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i < last {
                x = self.dropout.forward(relu(x));
            }
        }
        x
    }
}

/// `ng-gnn`: `GNNForClassification` with the PNA backbone.
#[derive(Module, Debug)]
pub(crate) struct NgGnn {
    graph: GraphConstructor,
    convs: Vec<PnaConv>,
    /// Per-node LayerNorm: a measured deviation from the reference's PyG graph-mode LayerNorm
    /// (see the README: graph mode per network lost 0.06 τ, over the mini-batch 0.02).
    norms: Vec<LayerNorm>,
    edge_updates: Vec<EdgeUpdate>,
    readout: CatReadout,
}

impl NgGnn {
    pub(crate) fn new(
        cfg: &WsNetConfig,
        shape: &WsShape,
        device: &Device,
    ) -> Result<Self, WsError> {
        let d = cfg.hidden;
        let deg = avg_log_deg(shape);
        let n_layers = cfg.depth;
        Ok(NgGnn {
            graph: GraphConstructor::new(shape, d, d, device),
            convs: (0..n_layers)
                .map(|_| PnaConv::new(d, d, deg, device))
                .collect(),
            norms: (0..n_layers.saturating_sub(1))
                .map(|_| LayerNormConfig::new(d).init(device))
                .collect(),
            edge_updates: (0..n_layers.saturating_sub(1))
                .map(|_| EdgeUpdate::new(d, d, device))
                .collect(),
            readout: CatReadout::new(shape.n_out() * d, &[d, d, cfg.out_dim], cfg.dropout, device),
        })
    }

    pub(crate) fn forward(&self, x: &WsBatch) -> Tensor<2> {
        let mut nodes = self.graph.nodes(x);
        let mut edges: Vec<Tensor<4>> = x
            .weights
            .iter()
            .map(|w| self.graph.edge_proj.forward(self.graph.pad(w)))
            .collect();
        let last = self.convs.len() - 1;
        for (i, conv) in self.convs.iter().enumerate() {
            nodes = conv.forward(&nodes, &edges);
            if i < last {
                nodes = nodes
                    .into_iter()
                    .map(|n| silu(self.norms[i].forward(n)))
                    .collect();
                edges = self.edge_updates[i].forward(&nodes, edges);
            }
        }
        self.readout.forward(nodes.pop().expect("output nodes"))
    }
}

/// `RTAttention` (with `modulate_v`).
#[derive(Module, Debug)]
struct RtAttention {
    qkv_node: Linear,
    qkv_edge: Linear,
    proj_out: Linear,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    d_attn: usize,
}

impl RtAttention {
    fn forward(&self, x: Tensor<3>, e: Tensor<4>) -> Tensor<3> {
        let [bs, n, _] = x.dims();
        let (h, da) = (self.heads, self.d_attn);
        let dh = da / h;
        // [B, N, 3 da] -> per head [B, h, N, dh]
        let qkv = self.qkv_node.forward(x);
        let split = |t: Tensor<3>| t.reshape([bs, n, h, dh]).swap_dims(1, 2);
        let q_n = split(qkv.clone().narrow(2, 0, da));
        let k_n = split(qkv.clone().narrow(2, da, da));
        let v_n = split(qkv.narrow(2, 2 * da, da));
        // [B, N, N, 4 da] -> 4 x [B, h, N, N, dh]
        let qkv_e = self.qkv_edge.forward(e);
        let split_e = |t: Tensor<4>| t.reshape([bs, n, n, h, dh]).permute([0, 3, 1, 2, 4]);
        let q_e = split_e(qkv_e.clone().narrow(3, 0, da));
        let k_e = split_e(qkv_e.clone().narrow(3, da, da));
        let v_e = split_e(qkv_e.clone().narrow(3, 2 * da, da));
        let v_m = split_e(qkv_e.narrow(3, 3 * da, da));
        let q = q_n.reshape([bs, h, n, 1, dh]) + q_e;
        let k = k_n.reshape([bs, h, 1, n, dh]) + k_e;
        let v = v_n.reshape([bs, h, 1, n, dh]) * v_m + v_e;
        let scale = 1.0 / (da as f64).sqrt();
        let dots = (q * k).sum_dim(4).reshape([bs, h, n, n]) * scale;
        let attn = softmax(dots, 3).reshape([bs, h, n, n, 1]);
        let out = (attn * v).sum_dim(3).reshape([bs, h, n, dh]); // [B, h, N, dh]
        let out = out.swap_dims(1, 2).reshape([bs, n, da]);
        self.proj_out.forward(out)
    }
}

/// `RTLayer`: attention + node MLP, then (except in the last layer) `EdgeLayer`.
#[derive(Module, Debug)]
struct RtLayer {
    attn: RtAttention,
    lin0: Linear,
    node_ln0: LayerNorm,
    node_ln1: LayerNorm,
    node_mlp0: Linear,
    node_mlp1: Linear,
    edge: Option<RtEdgeLayer>,
    dropout: Dropout,
}

#[derive(Module, Debug)]
struct RtEdgeLayer {
    lin0_e: Linear,
    lin0_s: Linear,
    lin0_t: Linear,
    lin1: Linear,
    mlp0: Linear,
    mlp1: Linear,
    eln0: LayerNorm,
    eln1: LayerNorm,
}

#[derive(Clone, Copy)]
struct RtDims {
    d_node: usize,
    d_edge: usize,
    d_attn: usize,
    d_node_hid: usize,
    d_edge_hid: usize,
    heads: usize,
}

impl RtLayer {
    fn new(dm: &RtDims, edge_update: bool, dropout: f64, device: &Device) -> Self {
        let RtDims {
            d_node,
            d_edge,
            d_attn,
            d_node_hid,
            d_edge_hid,
            heads,
        } = *dm;
        RtLayer {
            attn: RtAttention {
                qkv_node: xavier(d_node, 3 * d_attn, false, device),
                qkv_edge: xavier(d_edge, 4 * d_attn, false, device),
                proj_out: xavier(d_attn, d_node, true, device),
                heads,
                d_attn,
            },
            lin0: xavier(d_node, d_node, true, device),
            node_ln0: LayerNormConfig::new(d_node).init(device),
            node_ln1: LayerNormConfig::new(d_node).init(device),
            node_mlp0: xavier(d_node, d_node_hid, false, device),
            node_mlp1: xavier(d_node_hid, d_node, true, device),
            edge: edge_update.then(|| RtEdgeLayer {
                lin0_e: xavier(2 * d_edge, d_edge_hid, true, device),
                lin0_s: xavier(d_node, d_edge_hid, true, device),
                lin0_t: xavier(d_node, d_edge_hid, true, device),
                lin1: xavier(d_edge_hid, d_edge, true, device),
                mlp0: xavier(d_edge, d_edge_hid, false, device),
                mlp1: xavier(d_edge_hid, d_edge, true, device),
                eln0: LayerNormConfig::new(d_edge).init(device),
                eln1: LayerNormConfig::new(d_edge).init(device),
            }),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    fn forward(&self, x: Tensor<3>, e: Tensor<4>) -> (Tensor<3>, Tensor<4>) {
        let a = self.lin0.forward(self.attn.forward(x.clone(), e.clone()));
        let x = self.node_ln0.forward(x + self.dropout.forward(a));
        let m = self.dropout.forward(
            self.node_mlp1
                .forward(gelu(self.node_mlp0.forward(x.clone()))),
        );
        let x = self.node_ln1.forward(x + m);
        let e = match &self.edge {
            None => e,
            Some(el) => {
                let [bs, n, _, _] = e.dims();
                let dh = el.lin0_s.weight.dims()[1];
                let rev = e.clone().swap_dims(1, 2);
                let h = el.lin0_e.forward(Tensor::cat(vec![e.clone(), rev], 3))
                    + el.lin0_s.forward(x.clone()).reshape([bs, n, 1, dh])
                    + el.lin0_t.forward(x.clone()).reshape([bs, 1, n, dh]);
                let h = self.dropout.forward(el.lin1.forward(gelu(h)));
                let e = el.eln0.forward(e + h);
                let m = self
                    .dropout
                    .forward(el.mlp1.forward(gelu(el.mlp0.forward(e.clone()))));
                el.eln1.forward(e + m)
            }
        };
        (x, e)
    }
}

/// `ng-transformer`: `RelationalTransformer` with `cat`/`last` pooling.
#[derive(Module, Debug)]
pub(crate) struct NgTransformer {
    graph: GraphConstructor,
    layers: Vec<RtLayer>,
    readout: CatReadout,
    #[module(skip)]
    n_out: usize,
}

impl NgTransformer {
    pub(crate) fn new(
        cfg: &WsNetConfig,
        shape: &WsShape,
        device: &Device,
    ) -> Result<Self, WsError> {
        let d = cfg.hidden;
        let heads = if d % 4 == 0 { 4 } else { 1 };
        let dims = RtDims {
            d_node: d,
            d_edge: (d / 2).max(4),
            d_attn: d,
            d_node_hid: 2 * d,
            d_edge_hid: d,
            heads,
        };
        let n = cfg.depth;
        Ok(NgTransformer {
            graph: GraphConstructor::new(shape, dims.d_node, dims.d_edge, device),
            layers: (0..n)
                .map(|i| RtLayer::new(&dims, i + 1 < n, cfg.dropout, device))
                .collect(),
            // `DynamicRelationalTransformer.proj_out` (the generalisation-prediction model):
            // Linear, ReLU, Linear, ReLU, Linear (one hidden layer more than the INR
            // classifier's head, which this was until 2026-12-07).
            readout: CatReadout::new(
                shape.n_out() * d,
                &[2 * d, 2 * d, cfg.out_dim],
                cfg.dropout,
                device,
            ),
            n_out: shape.n_out(),
        })
    }

    /// Dense `[B, N, N, k_max]` raw edge features: entry `(src, dst)` holds the weight from input
    /// unit `src` to output unit `dst`, zero for pairs that are not edges.
    fn dense_edges(&self, x: &WsBatch) -> Tensor<4> {
        let bs = x.batch_size();
        let dev = x.weights[0].device();
        let k = self.graph.k_max;
        let sizes: Vec<usize> = std::iter::once(x.weights[0].dims()[2])
            .chain(x.weights.iter().map(|w| w.dims()[1]))
            .collect();
        let total: usize = sizes.iter().sum();
        let mut rows = Vec::with_capacity(sizes.len());
        let mut off_dst = sizes[0];
        for (s, &m) in sizes.iter().enumerate() {
            if s == sizes.len() - 1 {
                rows.push(Tensor::zeros([bs, m, total, k], &dev));
                break;
            }
            let n = sizes[s + 1];
            // [B, n, m, k] -> [B, m, n, k]
            let block = self.graph.pad(&x.weights[s]).swap_dims(1, 2);
            let mut parts = Vec::with_capacity(3);
            if off_dst > 0 {
                parts.push(Tensor::zeros([bs, m, off_dst, k], &dev));
            }
            parts.push(block);
            let rest = total - off_dst - n;
            if rest > 0 {
                parts.push(Tensor::zeros([bs, m, rest, k], &dev));
            }
            rows.push(Tensor::cat(parts, 2));
            off_dst += n;
        }
        Tensor::cat(rows, 1)
    }

    pub(crate) fn forward(&self, x: &WsBatch) -> Tensor<2> {
        let nodes = self.graph.nodes(x);
        let mut h = Tensor::cat(nodes, 1);
        let mut e = self.graph.edge_proj.forward(self.dense_edges(x));
        for layer in &self.layers {
            (h, e) = layer.forward(h, e);
        }
        let [_, n, _] = h.dims();
        self.readout
            .forward(h.narrow(1, n - self.n_out, self.n_out))
    }
}
