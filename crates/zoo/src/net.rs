//! The small-network runtime: MLPs and CNNs with hand-written forward and backward passes,
//! PyTorch-style parameter names, and evaluation on a [`Dataset`].
//!
//! A network is a PyTorch `nn.Sequential` stored under the prefix `layers.`:
//!
//! * MLP: `Linear, act, [Dropout]` per hidden width, then `Linear` to the outputs. Inputs are
//!   flattened (`x.flatten(1)` in PyTorch).
//! * CNN: `Conv2d, [BatchNorm2d], act` per channel count, then `AdaptiveAvgPool2d(1)`,
//!   `Flatten`, `[Dropout]`, `Linear`.
//!
//! so `layers.0.weight` is the first layer's `[out, in]` (or `[out, in, kh, kw]`) weight, and
//! BatchNorm layers carry `weight`, `bias`, `running_mean`, `running_var` and
//! `num_batches_tracked`, exactly as `state_dict()` would. Inside, activations are kept as
//! `[rows, features]` matrices: a batch of feature maps is channels-last (`[B·H·W, C]`), so
//! every conv and dense layer is one GEMM (im2col for convolutions).

use serde::{Deserialize, Serialize};

use crate::data::{Dataset, Task};
use crate::kernels::{col_sum, erf, gemm, transpose};
use crate::rng::Rng;

/// Elementwise non-linearities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// `max(0, x)`.
    Relu,
    /// `tanh(x)`.
    Tanh,
    /// Exact (erf) GELU, as PyTorch's default `nn.GELU()`.
    Gelu,
    /// Logistic sigmoid.
    Sigmoid,
    /// `x` for `x > 0`, `0.01·x` otherwise (PyTorch's default slope).
    LeakyRelu,
}

impl Activation {
    /// Every activation with its config name.
    pub const ALL: [(&'static str, Activation); 5] = [
        ("relu", Activation::Relu),
        ("tanh", Activation::Tanh),
        ("gelu", Activation::Gelu),
        ("sigmoid", Activation::Sigmoid),
        ("leaky-relu", Activation::LeakyRelu),
    ];

    /// The config name (`relu`, `tanh`, `gelu`, `sigmoid`, `leaky-relu`).
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).unwrap().0
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Activation> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, a)| *a)
    }

    #[inline]
    fn f(self, x: f32) -> f32 {
        match self {
            Activation::Relu => x.max(0.0),
            Activation::Tanh => x.tanh(),
            Activation::Gelu => 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2)),
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::LeakyRelu => {
                if x > 0.0 {
                    x
                } else {
                    0.01 * x
                }
            }
        }
    }

    /// Derivative at input `x` (output `y`).
    #[inline]
    fn df(self, x: f32, y: f32) -> f32 {
        match self {
            Activation::Relu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.0
                }
            }
            Activation::Tanh => 1.0 - y * y,
            Activation::Gelu => {
                let cdf = 0.5 * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
                let pdf = (-0.5 * x * x).exp() * 0.398_942_3;
                cdf + x * pdf
            }
            Activation::Sigmoid => y * (1.0 - y),
            Activation::LeakyRelu => {
                if x > 0.0 {
                    1.0
                } else {
                    0.01
                }
            }
        }
    }
}

/// A network architecture (independent of input shape and output width).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Arch {
    /// Multi-layer perceptron.
    Mlp {
        /// Hidden widths (e.g. `[32]` for 64-32-10 on the digits).
        hidden: Vec<usize>,
        /// Activation after each hidden layer.
        activation: Activation,
        /// Dropout probability after each hidden activation (0 = no dropout layer).
        dropout: f32,
    },
    /// Small CNN: conv layers, global average pooling, one dense layer.
    Cnn {
        /// Output channels of each conv layer (e.g. `[16, 16, 16]`).
        channels: Vec<usize>,
        /// Square kernel size.
        kernel: usize,
        /// Stride of every conv layer.
        stride: usize,
        /// Zero padding of every conv layer.
        padding: usize,
        /// BatchNorm2d after each conv.
        batchnorm: bool,
        /// Activation after each conv (after BatchNorm).
        activation: Activation,
        /// Dropout before the dense layer (0 = none).
        dropout: f32,
    },
}

/// A named tensor inside a flat parameter (or buffer) vector.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorSpec {
    /// PyTorch-style name, e.g. `layers.0.weight`.
    pub name: String,
    /// Shape, PyTorch order (`[out, in]`, `[out, in, kh, kw]`).
    pub shape: Vec<usize>,
    /// Offset into the flat vector.
    pub offset: usize,
    /// Fan-in and fan-out for weight initialisation; `None` for biases and norm parameters.
    pub fans: Option<(usize, usize)>,
    /// Initial value for tensors not drawn at random (biases 0, BatchNorm weight 1, ...).
    pub fill: f32,
}

impl TensorSpec {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The elements of this tensor in `flat`.
    pub fn slice<'a>(&self, flat: &'a [f32]) -> &'a [f32] {
        &flat[self.offset..self.offset + self.numel()]
    }
}

#[derive(Clone, Debug)]
enum Op {
    Dense {
        w: usize,
        b: usize,
        inp: usize,
        out: usize,
    },
    Conv {
        w: usize,
        b: usize,
        cin: usize,
        cout: usize,
        k: usize,
        s: usize,
        p: usize,
        h: usize,
        wd: usize,
        oh: usize,
        ow: usize,
        chw: bool,
    },
    BatchNorm {
        g: usize,
        b: usize,
        c: usize,
        rm: usize,
        rv: usize,
        idx: usize,
    },
    Act(Activation),
    Dropout(f32),
    Gap {
        hw: usize,
        c: usize,
    },
}

#[derive(Clone, Debug)]
struct Stage {
    op: Op,
    /// Values per sample going in.
    in_len: usize,
    /// Values per sample coming out.
    out_len: usize,
}

/// A network instantiated for an input shape and output width: its layers and the layout of
/// its parameters and buffers.
#[derive(Clone, Debug)]
pub struct Net {
    /// The architecture.
    pub arch: Arch,
    /// Per-sample input shape (`[C, H, W]` or `[D]`).
    pub input_shape: Vec<usize>,
    /// Output width.
    pub outputs: usize,
    stages: Vec<Stage>,
    params: Vec<TensorSpec>,
    buffers: Vec<TensorSpec>,
    n_params: usize,
    n_buffers: usize,
    n_bn: usize,
}

/// The values of a network: parameters, BatchNorm running statistics and batch counters.
#[derive(Clone, Debug, PartialEq)]
pub struct State {
    /// All parameters, laid out as [`Net::params`] says.
    pub params: Vec<f32>,
    /// BatchNorm `running_mean` / `running_var`, laid out as [`Net::buffers`] says.
    pub buffers: Vec<f32>,
    /// `num_batches_tracked` of each BatchNorm layer.
    pub batches_tracked: Vec<i64>,
}

/// Loss and accuracy of a network on a dataset.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Metrics {
    /// Mean loss (cross-entropy or MSE); NaN when the network diverged.
    pub loss: f64,
    /// Fraction correct (see [`Task`]).
    pub accuracy: f64,
}

/// Errors building a network.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ArchError {
    /// The architecture does not fit the input.
    #[error("{0}")]
    Shape(String),
}

const BN_EPS: f32 = 1e-5;
const BN_MOMENTUM: f32 = 0.1;

impl Net {
    /// Lays out `arch` for inputs of `input_shape` and `outputs` outputs.
    pub fn new(arch: &Arch, input_shape: &[usize], outputs: usize) -> Result<Net, ArchError> {
        let mut net = Net {
            arch: arch.clone(),
            input_shape: input_shape.to_vec(),
            outputs,
            stages: vec![],
            params: vec![],
            buffers: vec![],
            n_params: 0,
            n_buffers: 0,
            n_bn: 0,
        };
        let dim: usize = input_shape.iter().product();
        if dim == 0 || outputs == 0 {
            return Err(ArchError::Shape("empty input or output".into()));
        }
        let mut idx = 0usize; // nn.Sequential index
        match arch {
            Arch::Mlp {
                hidden,
                activation,
                dropout,
            } => {
                let mut inp = dim;
                for &h in hidden {
                    if h == 0 {
                        return Err(ArchError::Shape("hidden width 0".into()));
                    }
                    net.dense(idx, inp, h);
                    net.push(Op::Act(*activation), h, h);
                    idx += 2;
                    if *dropout > 0.0 {
                        net.push(Op::Dropout(*dropout), h, h);
                        idx += 1;
                    }
                    inp = h;
                }
                net.dense(idx, inp, outputs);
            }
            Arch::Cnn {
                channels,
                kernel,
                stride,
                padding,
                batchnorm,
                activation,
                dropout,
            } => {
                if input_shape.len() != 3 {
                    return Err(ArchError::Shape(format!(
                        "a CNN needs image inputs [C, H, W], the dataset has shape {input_shape:?}"
                    )));
                }
                let (k, s, p) = (*kernel, *stride, *padding);
                if k == 0 || s == 0 {
                    return Err(ArchError::Shape(
                        "kernel and stride must be positive".into(),
                    ));
                }
                let (mut c, mut h, mut w) = (input_shape[0], input_shape[1], input_shape[2]);
                for (li, &co) in channels.iter().enumerate() {
                    if h + 2 * p < k || w + 2 * p < k {
                        return Err(ArchError::Shape(format!(
                            "conv layer {li}: a {k}×{k} kernel does not fit a {h}×{w} input with padding {p}"
                        )));
                    }
                    let oh = (h + 2 * p - k) / s + 1;
                    let ow = (w + 2 * p - k) / s + 1;
                    let wo = net.add_param(
                        format!("layers.{idx}.weight"),
                        vec![co, c, k, k],
                        Some((c * k * k, co * k * k)),
                        0.0,
                    );
                    let bo = net.add_param(format!("layers.{idx}.bias"), vec![co], None, 0.0);
                    net.push(
                        Op::Conv {
                            w: wo,
                            b: bo,
                            cin: c,
                            cout: co,
                            k,
                            s,
                            p,
                            h,
                            wd: w,
                            oh,
                            ow,
                            chw: li == 0,
                        },
                        c * h * w,
                        co * oh * ow,
                    );
                    idx += 1;
                    if *batchnorm {
                        let g = net.add_param(format!("layers.{idx}.weight"), vec![co], None, 1.0);
                        let b = net.add_param(format!("layers.{idx}.bias"), vec![co], None, 0.0);
                        let rm = net.add_buffer(format!("layers.{idx}.running_mean"), co, 0.0);
                        let rv = net.add_buffer(format!("layers.{idx}.running_var"), co, 1.0);
                        let len = co * oh * ow;
                        net.push(
                            Op::BatchNorm {
                                g,
                                b,
                                c: co,
                                rm,
                                rv,
                                idx: net.n_bn,
                            },
                            len,
                            len,
                        );
                        net.n_bn += 1;
                        idx += 1;
                    }
                    let len = co * oh * ow;
                    net.push(Op::Act(*activation), len, len);
                    idx += 1;
                    (c, h, w) = (co, oh, ow);
                }
                net.push(Op::Gap { hw: h * w, c }, c * h * w, c);
                idx += 2; // AdaptiveAvgPool2d, Flatten
                if *dropout > 0.0 {
                    net.push(Op::Dropout(*dropout), c, c);
                    idx += 1;
                }
                net.dense(idx, c, outputs);
            }
        }
        Ok(net)
    }

    fn push(&mut self, op: Op, in_len: usize, out_len: usize) {
        self.stages.push(Stage {
            op,
            in_len,
            out_len,
        });
    }

    fn add_param(
        &mut self,
        name: String,
        shape: Vec<usize>,
        fans: Option<(usize, usize)>,
        fill: f32,
    ) -> usize {
        let off = self.n_params;
        let spec = TensorSpec {
            name,
            shape,
            offset: off,
            fans,
            fill,
        };
        self.n_params += spec.numel();
        self.params.push(spec);
        off
    }

    fn add_buffer(&mut self, name: String, n: usize, fill: f32) -> usize {
        let off = self.n_buffers;
        self.buffers.push(TensorSpec {
            name,
            shape: vec![n],
            offset: off,
            fans: None,
            fill,
        });
        self.n_buffers += n;
        off
    }

    fn dense(&mut self, idx: usize, inp: usize, out: usize) {
        let w = self.add_param(
            format!("layers.{idx}.weight"),
            vec![out, inp],
            Some((inp, out)),
            0.0,
        );
        let b = self.add_param(format!("layers.{idx}.bias"), vec![out], None, 0.0);
        self.push(Op::Dense { w, b, inp, out }, inp, out);
    }

    /// The parameter tensors, in `state_dict` order.
    pub fn params(&self) -> &[TensorSpec] {
        &self.params
    }

    /// The BatchNorm running-statistics tensors.
    pub fn buffers(&self) -> &[TensorSpec] {
        &self.buffers
    }

    /// Names of the BatchNorm layers' `num_batches_tracked` tensors, in layer order.
    pub fn batch_counter_names(&self) -> Vec<String> {
        self.buffers
            .iter()
            .filter_map(|b| b.name.strip_suffix(".running_mean"))
            .map(|p| format!("{p}.num_batches_tracked"))
            .collect()
    }

    /// Number of trainable parameters.
    pub fn num_params(&self) -> usize {
        self.n_params
    }

    /// Multiply-accumulates of one forward pass on one sample.
    pub fn macs_per_sample(&self) -> usize {
        self.stages
            .iter()
            .map(|s| match s.op {
                Op::Dense { inp, out, .. } => inp * out,
                Op::Conv {
                    cin,
                    cout,
                    k,
                    oh,
                    ow,
                    ..
                } => cin * k * k * cout * oh * ow,
                _ => 0,
            })
            .sum()
    }

    /// A state with every tensor at its fill value (weights zero).
    pub fn zero_state(&self) -> State {
        let mut params = vec![0.0; self.n_params];
        for p in &self.params {
            params[p.offset..p.offset + p.numel()].fill(p.fill);
        }
        let mut buffers = vec![0.0; self.n_buffers];
        for b in &self.buffers {
            buffers[b.offset..b.offset + b.numel()].fill(b.fill);
        }
        State {
            params,
            buffers,
            batches_tracked: vec![0; self.n_bn],
        }
    }

    /// A freshly initialised state: weights drawn by `init` with `scale`, biases zero,
    /// BatchNorm weight one (see [`Init`]).
    pub fn init(&self, init: Init, scale: f64, rng: &mut Rng) -> State {
        let mut st = self.zero_state();
        for p in &self.params {
            if let Some((fan_in, fan_out)) = p.fans {
                let (fi, fo) = (fan_in as f64, fan_out as f64);
                let dst = &mut st.params[p.offset..p.offset + p.numel()];
                for v in dst.iter_mut() {
                    *v = (scale
                        * match init {
                            Init::Uniform => rng.uniform(-1.0, 1.0) / fi.sqrt(),
                            Init::Normal => rng.normal() / fi.sqrt(),
                            Init::Xavier => rng.uniform(-1.0, 1.0) * (6.0 / (fi + fo)).sqrt(),
                            Init::He => rng.normal() * (2.0 / fi).sqrt(),
                        }) as f32;
                }
            }
        }
        st
    }

    /// A workspace for batches of up to `batch` samples.
    pub fn workspace(&self, batch: usize) -> Workspace {
        let batch = batch.max(1);
        let mut acts = vec![vec![0.0; batch * self.input_len()]];
        let mut cols = Vec::new();
        let mut tables = Vec::new();
        let mut masks = Vec::new();
        let mut bn = Vec::new();
        let mut max_len = self.input_len();
        let mut max_cols = 0;
        let max_w = self
            .params
            .iter()
            .filter(|p| p.fans.is_some())
            .map(TensorSpec::numel)
            .max()
            .unwrap_or(0);
        for s in &self.stages {
            acts.push(vec![0.0; batch * s.out_len]);
            max_len = max_len.max(s.out_len);
            match s.op {
                Op::Conv { cin, k, oh, ow, .. } => {
                    let n = batch * oh * ow * cin * k * k;
                    cols.push(vec![0.0; n]);
                    tables.push(conv_table(&s.op));
                    max_cols = max_cols.max(n);
                }
                Op::Dropout(_) => masks.push(vec![0.0; batch * s.out_len]),
                Op::BatchNorm { c, .. } => bn.push(BnScratch {
                    xhat: vec![0.0; batch * s.out_len],
                    mean: vec![0.0; c],
                    var: vec![0.0; c],
                    invstd: vec![0.0; c],
                    rows: 0,
                }),
                _ => {}
            }
        }
        Workspace {
            batch,
            acts,
            cols,
            dcols: vec![0.0; max_cols],
            masks,
            bn,
            ga: vec![0.0; batch * max_len],
            gb: vec![0.0; batch * max_len],
            grads: vec![0.0; self.n_params],
            wt: vec![0.0; max_w],
            tables,
        }
    }

    fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// Forward pass of `n` samples (`x`: `n × input` values) into `ws`; returns the outputs
    /// (`n × outputs`). In training mode dropout masks are drawn from `rng` and BatchNorm uses
    /// batch statistics (kept in `ws` for [`Net::update_running_stats`]); in evaluation mode
    /// BatchNorm uses the running statistics in `state`.
    pub fn forward<'w>(
        &self,
        state: &State,
        ws: &'w mut Workspace,
        x: &[f32],
        n: usize,
        train: bool,
        rng: &mut Rng,
    ) -> &'w [f32] {
        assert!(n <= ws.batch, "batch larger than the workspace");
        assert_eq!(x.len(), n * self.input_len(), "input size");
        if train {
            // Kept for the backward pass.
            ws.acts[0][..x.len()].copy_from_slice(x);
            self.forward_impl(state, ws, None, n, train, rng)
        } else {
            self.forward_impl(state, ws, Some(x), n, train, rng)
        }
    }

    /// [`Net::forward`] on the `n` samples already in [`Workspace::input_mut`] (saves copying
    /// a batch that was gathered there).
    pub fn forward_input<'w>(
        &self,
        state: &State,
        ws: &'w mut Workspace,
        n: usize,
        train: bool,
        rng: &mut Rng,
    ) -> &'w [f32] {
        self.forward_impl(state, ws, None, n, train, rng)
    }

    /// The forward pass, reading the first stage's input from `input` when given, else from
    /// the workspace's input buffer.
    fn forward_impl<'w>(
        &self,
        state: &State,
        ws: &'w mut Workspace,
        input: Option<&[f32]>,
        n: usize,
        train: bool,
        rng: &mut Rng,
    ) -> &'w [f32] {
        assert!(n <= ws.batch, "batch larger than the workspace");
        let p = &state.params;
        let (mut ci, mut mi, mut bi) = (0, 0, 0);
        for (i, s) in self.stages.iter().enumerate() {
            let (head, tail) = ws.acts.split_at_mut(i + 1);
            let xin = match input {
                Some(x) if i == 0 => x,
                _ => &head[i][..n * s.in_len],
            };
            let y = &mut tail[0][..n * s.out_len];
            match s.op {
                Op::Dense { w, b, inp, out } => {
                    transpose(&p[w..], out, inp, &mut ws.wt);
                    gemm(n, inp, out, xin, inp, 1, &ws.wt, out, Some(&p[b..]), y, out);
                }
                Op::Conv {
                    w,
                    b,
                    cin,
                    cout,
                    k,
                    oh,
                    ow,
                    ..
                } => {
                    let kk = cin * k * k;
                    let rows = n * oh * ow;
                    let cols = &mut ws.cols[ci][..rows * kk];
                    im2col(&s.op, &ws.tables[ci], xin, n, cols);
                    transpose(&p[w..], cout, kk, &mut ws.wt);
                    gemm(
                        rows,
                        kk,
                        cout,
                        cols,
                        kk,
                        1,
                        &ws.wt,
                        cout,
                        Some(&p[b..]),
                        y,
                        cout,
                    );
                    ci += 1;
                }
                Op::BatchNorm {
                    g, b, c, rm, rv, ..
                } => {
                    let sc = &mut ws.bn[bi];
                    let rows = n * s.in_len / c;
                    sc.rows = rows;
                    if train {
                        sc.mean.fill(0.0);
                        sc.var.fill(0.0);
                        for r in xin.chunks_exact(c) {
                            for (m, v) in sc.mean.iter_mut().zip(r) {
                                *m += v;
                            }
                        }
                        for m in sc.mean.iter_mut() {
                            *m /= rows as f32;
                        }
                        for r in xin.chunks_exact(c) {
                            for ((q, v), m) in sc.var.iter_mut().zip(r).zip(&sc.mean) {
                                *q += (v - m) * (v - m);
                            }
                        }
                        for q in sc.var.iter_mut() {
                            *q /= rows as f32;
                        }
                        for (is, q) in sc.invstd.iter_mut().zip(&sc.var) {
                            *is = 1.0 / (q + BN_EPS).sqrt();
                        }
                    } else {
                        sc.mean.copy_from_slice(&state.buffers[rm..rm + c]);
                        for (is, q) in sc.invstd.iter_mut().zip(&state.buffers[rv..rv + c]) {
                            *is = 1.0 / (q + BN_EPS).sqrt();
                        }
                    }
                    let xhat = &mut sc.xhat[..n * s.in_len];
                    for ((xr, hr), yr) in xin
                        .chunks_exact(c)
                        .zip(xhat.chunks_exact_mut(c))
                        .zip(y.chunks_exact_mut(c))
                    {
                        for j in 0..c {
                            let h = (xr[j] - sc.mean[j]) * sc.invstd[j];
                            hr[j] = h;
                            yr[j] = p[g + j] * h + p[b + j];
                        }
                    }
                    bi += 1;
                }
                Op::Act(a) => act_forward(a, xin, y),
                Op::Dropout(q) => {
                    let mask = &mut ws.masks[mi][..n * s.in_len];
                    if train {
                        let keep = 1.0 / (1.0 - q);
                        for ((o, v), m) in y.iter_mut().zip(xin).zip(mask.iter_mut()) {
                            *m = if rng.f32() >= q { keep } else { 0.0 };
                            *o = v * *m;
                        }
                    } else {
                        y.copy_from_slice(xin);
                    }
                    mi += 1;
                }
                Op::Gap { hw, c } => {
                    y.fill(0.0);
                    let inv = 1.0 / hw as f32;
                    for (xs, ys) in xin.chunks_exact(hw * c).zip(y.chunks_exact_mut(c)) {
                        for r in xs.chunks_exact(c) {
                            for (o, v) in ys.iter_mut().zip(r) {
                                *o += v * inv;
                            }
                        }
                    }
                }
            }
        }
        &ws.acts[self.stages.len()][..n * self.outputs]
    }

    /// After a training-mode [`Net::forward`]: moves BatchNorm running statistics towards the
    /// batch statistics (momentum 0.1, unbiased variance, as PyTorch).
    pub fn update_running_stats(&self, state: &mut State, ws: &Workspace) {
        for s in &self.stages {
            if let Op::BatchNorm { c, rm, rv, idx, .. } = s.op {
                let sc = &ws.bn[idx];
                let unbias = if sc.rows > 1 {
                    sc.rows as f32 / (sc.rows - 1) as f32
                } else {
                    1.0
                };
                for j in 0..c {
                    let m = &mut state.buffers[rm + j];
                    *m = (1.0 - BN_MOMENTUM) * *m + BN_MOMENTUM * sc.mean[j];
                    let v = &mut state.buffers[rv + j];
                    *v = (1.0 - BN_MOMENTUM) * *v + BN_MOMENTUM * sc.var[j] * unbias;
                }
                state.batches_tracked[idx] += 1;
            }
        }
    }

    /// Backward pass after a training [`Net::forward`] of `n` samples: `dout` is the loss
    /// gradient with respect to the outputs; parameter gradients land in `ws.grads()`.
    pub fn backward(&self, state: &State, ws: &mut Workspace, dout: &[f32], n: usize) {
        let p = &state.params;
        let Workspace {
            acts,
            cols,
            dcols,
            masks,
            bn,
            ga,
            gb,
            grads,
            tables,
            ..
        } = ws;
        ga[..dout.len()].copy_from_slice(dout);
        let mut ci = cols.len();
        let mut mi = masks.len();
        let mut bi = bn.len();
        for (i, s) in self.stages.iter().enumerate().rev() {
            let need_dx = i > 0;
            let dy = &ga[..n * s.out_len];
            let dx = &mut gb[..n * s.in_len];
            let xin = &acts[i][..n * s.in_len];
            match s.op {
                Op::Dense { w, b, inp, out } => {
                    gemm(
                        out,
                        n,
                        inp,
                        dy,
                        1,
                        out,
                        xin,
                        inp,
                        None,
                        &mut grads[w..],
                        inp,
                    );
                    col_sum(dy, &mut grads[b..b + out]);
                    if need_dx {
                        gemm(n, out, inp, dy, out, 1, &p[w..], inp, None, dx, inp);
                    }
                }
                Op::Conv {
                    w,
                    b,
                    cin,
                    cout,
                    k,
                    oh,
                    ow,
                    ..
                } => {
                    ci -= 1;
                    let kk = cin * k * k;
                    let rows = n * oh * ow;
                    let c = &cols[ci][..rows * kk];
                    gemm(
                        cout,
                        rows,
                        kk,
                        dy,
                        1,
                        cout,
                        c,
                        kk,
                        None,
                        &mut grads[w..],
                        kk,
                    );
                    col_sum(dy, &mut grads[b..b + cout]);
                    if need_dx {
                        let dc = &mut dcols[..rows * kk];
                        gemm(rows, cout, kk, dy, cout, 1, &p[w..], kk, None, dc, kk);
                        col2im(&s.op, &tables[ci], dc, n, dx);
                    }
                }
                Op::BatchNorm { g, b, c, .. } => {
                    bi -= 1;
                    let sc = &bn[bi];
                    let xhat = &sc.xhat[..n * s.in_len];
                    let rows = sc.rows as f32;
                    let (dg, rest) = grads[g..].split_at_mut(c);
                    let db = &mut rest[b - g - c..b - g];
                    dg.fill(0.0);
                    db.fill(0.0);
                    for (dr, hr) in dy.chunks_exact(c).zip(xhat.chunks_exact(c)) {
                        for j in 0..c {
                            dg[j] += dr[j] * hr[j];
                            db[j] += dr[j];
                        }
                    }
                    if need_dx {
                        for ((dxr, dr), hr) in dx
                            .chunks_exact_mut(c)
                            .zip(dy.chunks_exact(c))
                            .zip(xhat.chunks_exact(c))
                        {
                            for j in 0..c {
                                dxr[j] = p[g + j] * sc.invstd[j] / rows
                                    * (rows * dr[j] - db[j] - hr[j] * dg[j]);
                            }
                        }
                    }
                }
                Op::Act(a) => act_backward(a, dy, xin, &acts[i + 1][..n * s.out_len], dx),
                Op::Dropout(_) => {
                    mi -= 1;
                    for ((d, g), m) in dx.iter_mut().zip(dy).zip(&masks[mi][..n * s.in_len]) {
                        *d = g * m;
                    }
                }
                Op::Gap { hw, c } => {
                    let inv = 1.0 / hw as f32;
                    for (ds, gs) in dx.chunks_exact_mut(hw * c).zip(dy.chunks_exact(c)) {
                        for r in ds.chunks_exact_mut(c) {
                            for (d, g) in r.iter_mut().zip(gs) {
                                *d = g * inv;
                            }
                        }
                    }
                }
            }
            if need_dx {
                std::mem::swap(ga, gb);
            }
        }
    }

    /// Outputs of the network on `x` (`n` samples) in evaluation mode.
    pub fn predict(&self, state: &State, x: &[f32], n: usize) -> Vec<f32> {
        let chunk = 256;
        let mut ws = self.workspace(chunk.min(n.max(1)));
        let d = self.input_len();
        let mut out = Vec::with_capacity(n * self.outputs);
        let mut rng = Rng::new(0);
        for start in (0..n).step_by(chunk) {
            let m = chunk.min(n - start);
            let o = self.forward(
                state,
                &mut ws,
                &x[start * d..(start + m) * d],
                m,
                false,
                &mut rng,
            );
            out.extend_from_slice(o);
        }
        out
    }

    /// Hidden representations in evaluation mode: for each activation function in the network,
    /// its output (`n × width` for dense layers, `n × H·W × C` channels-last for conv layers).
    /// This is what activation matching compares between two networks.
    pub fn hidden_activations(&self, state: &State, x: &[f32], n: usize) -> Vec<Vec<f32>> {
        let mut ws = self.workspace(n);
        let mut rng = Rng::new(0);
        self.forward(state, &mut ws, x, n, false, &mut rng);
        self.stages
            .iter()
            .enumerate()
            .filter(|(_, s)| matches!(s.op, Op::Act(_)))
            .map(|(i, s)| ws.acts[i + 1][..n * s.out_len].to_vec())
            .collect()
    }

    /// Mean loss and accuracy on a dataset, in evaluation mode.
    pub fn evaluate(&self, state: &State, ds: &Dataset) -> Metrics {
        let n = ds.len();
        if n == 0 {
            return Metrics {
                loss: f64::NAN,
                accuracy: f64::NAN,
            };
        }
        let chunk = 256.min(n);
        let mut ws = self.workspace(chunk);
        let mut dout = vec![0.0; chunk * self.outputs];
        let d = ds.dim();
        let t = ds.task.target_width();
        let mut rng = Rng::new(0);
        let (mut loss, mut correct) = (0.0f64, 0usize);
        for start in (0..n).step_by(chunk) {
            let m = chunk.min(n - start);
            let out = self.forward(
                state,
                &mut ws,
                &ds.x[start * d..(start + m) * d],
                m,
                false,
                &mut rng,
            );
            let (l, c) = loss_and_grad(
                ds.task,
                out,
                &ds.y[start * t..(start + m) * t],
                m,
                &mut dout[..m * self.outputs],
            );
            loss += l * m as f64;
            correct += c;
        }
        Metrics {
            loss: loss / n as f64,
            accuracy: correct as f64 / n as f64,
        }
    }
}

/// Weight initialisation schemes (biases start at zero; `scale` multiplies the draw).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Init {
    /// `U(-1/√fan_in, 1/√fan_in)`, PyTorch's default for Linear/Conv weights.
    Uniform,
    /// `N(0, 1/fan_in)`.
    Normal,
    /// Glorot uniform: `U(±√(6/(fan_in+fan_out)))`.
    Xavier,
    /// Kaiming normal: `N(0, 2/fan_in)`.
    He,
}

impl Init {
    /// Every scheme with its config name.
    pub const ALL: [(&'static str, Init); 4] = [
        ("uniform", Init::Uniform),
        ("normal", Init::Normal),
        ("xavier", Init::Xavier),
        ("he", Init::He),
    ];

    /// The config name.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(_, a)| *a == self).unwrap().0
    }

    /// Parses a config name.
    pub fn parse(s: &str) -> Option<Init> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, a)| *a)
    }
}

struct BnScratch {
    xhat: Vec<f32>,
    mean: Vec<f32>,
    var: Vec<f32>,
    invstd: Vec<f32>,
    rows: usize,
}

/// Preallocated buffers for forward and backward passes of one network (no allocation per
/// step).
pub struct Workspace {
    batch: usize,
    acts: Vec<Vec<f32>>,
    cols: Vec<Vec<f32>>,
    dcols: Vec<f32>,
    masks: Vec<Vec<f32>>,
    bn: Vec<BnScratch>,
    ga: Vec<f32>,
    gb: Vec<f32>,
    grads: Vec<f32>,
    /// The current layer's weight, transposed to `[in, out]` for the forward GEMM.
    wt: Vec<f32>,
    /// Each conv layer's [`conv_table`].
    tables: Vec<Vec<u32>>,
}

impl Workspace {
    /// Parameter gradients of the last [`Net::backward`].
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    /// Largest batch this workspace holds.
    pub fn capacity(&self) -> usize {
        self.batch
    }

    /// The input buffer of [`Net::forward_input`]: `batch × input` values, sample-major.
    pub fn input_mut(&mut self) -> &mut [f32] {
        &mut self.acts[0]
    }
}

fn conv_index(op: &Op) -> (usize, usize, usize, usize) {
    // Strides (sample, channel, row, col) of the conv input.
    if let Op::Conv {
        cin, h, wd, chw, ..
    } = *op
    {
        if chw {
            (cin * h * wd, h * wd, wd, 1)
        } else {
            (cin * h * wd, 1, wd * cin, cin)
        }
    } else {
        unreachable!()
    }
}

/// Marks a padding position in a [`conv_table`].
const PAD: u32 = u32::MAX;

/// For one sample of a conv layer: for each output position and each `(c, ky, kx)` of the
/// kernel (im2col column order), the offset of the input value it reads, or [`PAD`].
fn conv_table(op: &Op) -> Vec<u32> {
    let Op::Conv {
        cin,
        k,
        s,
        p,
        h,
        wd,
        oh,
        ow,
        ..
    } = *op
    else {
        unreachable!()
    };
    let (_, sc, sh, sw) = conv_index(op);
    let mut t = Vec::with_capacity(oh * ow * cin * k * k);
    for oy in 0..oh {
        for ox in 0..ow {
            for c in 0..cin {
                for ky in 0..k {
                    let iy = (oy * s + ky) as isize - p as isize;
                    for kx in 0..k {
                        let ix = (ox * s + kx) as isize - p as isize;
                        t.push(
                            if iy >= 0 && (iy as usize) < h && ix >= 0 && (ix as usize) < wd {
                                (c * sc + iy as usize * sh + ix as usize * sw) as u32
                            } else {
                                PAD
                            },
                        );
                    }
                }
            }
        }
    }
    t
}

/// `cols[(b, position), (c, ky, kx)] = x[b, c, iy, ix]` (0 in the padding), through the
/// layer's [`conv_table`].
fn im2col(op: &Op, table: &[u32], x: &[f32], n: usize, cols: &mut [f32]) {
    let (sb, ..) = conv_index(op);
    let per = table.len();
    for (xs, cs) in x.chunks_exact(sb).zip(cols.chunks_exact_mut(per)).take(n) {
        for (c, &t) in cs.iter_mut().zip(table) {
            *c = if t == PAD { 0.0 } else { xs[t as usize] };
        }
    }
}

/// The adjoint of [`im2col`]: `dx` = the sum of the `dcols` entries that read each input.
fn col2im(op: &Op, table: &[u32], dcols: &[f32], n: usize, dx: &mut [f32]) {
    let (sb, ..) = conv_index(op);
    let per = table.len();
    dx.fill(0.0);
    for (ds, cs) in dx.chunks_exact_mut(sb).zip(dcols.chunks_exact(per)).take(n) {
        for (c, &t) in cs.iter().zip(table) {
            if t != PAD {
                ds[t as usize] += c;
            }
        }
    }
}

/// `y = act(x)` elementwise: one tight loop per activation (the match is outside the loop so
/// the loop vectorises), compiled for AVX2 where available.
fn act_forward(a: Activation, x: &[f32], y: &mut [f32]) {
    macro_rules! each {
        ($($v:ident),*) => {
            match a {
                $(Activation::$v => crate::kernels::simd(
                    #[inline(always)]
                    || {
                        for (o, v) in y.iter_mut().zip(x) {
                            *o = Activation::$v.f(*v);
                        }
                    },
                ),)*
            }
        };
    }
    each!(Relu, Tanh, Gelu, Sigmoid, LeakyRelu)
}

/// `dx = dy · act'(x)` elementwise (`y = act(x)`), like [`act_forward`].
fn act_backward(a: Activation, dy: &[f32], x: &[f32], y: &[f32], dx: &mut [f32]) {
    macro_rules! each {
        ($($v:ident),*) => {
            match a {
                $(Activation::$v => crate::kernels::simd(
                    #[inline(always)]
                    || {
                        for (((d, g), xv), yv) in dx.iter_mut().zip(dy).zip(x).zip(y) {
                            *d = g * Activation::$v.df(*xv, *yv);
                        }
                    },
                ),)*
            }
        };
    }
    each!(Relu, Tanh, Gelu, Sigmoid, LeakyRelu)
}

/// Classes up to which [`loss_and_grad`] handles 8 rows at a time.
const XENT_MAX_CLASSES: usize = 64;

/// Softmax cross-entropy of one row `o` with target `t`: adds the loss to `loss`, writes the
/// gradient of the mean loss (`1/n` = `inv_n`) into `d`; returns 1 when the prediction is
/// right (finite outputs, the first maximal index is `t`).
fn xent_row(o: &[f32], t: usize, inv_n: f32, d: &mut [f32], loss: &mut f64) -> usize {
    let m = o.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
    let mut z = 0.0f32;
    for (dv, &v) in d.iter_mut().zip(o) {
        *dv = crate::kernels::exp_nonpositive(v - m);
        z += *dv;
    }
    *loss += (z.ln() + m - o[t]) as f64;
    let s = inv_n / z;
    for dv in d.iter_mut() {
        *dv *= s;
    }
    d[t] -= inv_n;
    let finite = o.iter().all(|v| v.is_finite());
    // ties: the first maximal index wins
    usize::from(finite && o.iter().position(|&v| v == m) == Some(t))
}

/// [`xent_row`] for 8 rows at once, the rows in the lanes of 8-wide arrays (so the maximum,
/// `exp`, sums and gradients vectorise); every lane does exactly [`xent_row`]'s operations in
/// its order, so the bits are the same. `tile` is scratch of `k` (the class count) columns.
#[inline(always)]
fn xent_8_rows(
    o: &[f32],
    t: &[f32],
    tile: &mut [[f32; 8]],
    inv_n: f32,
    d: &mut [f32],
    loss: &mut f64,
) -> usize {
    let k = tile.len();
    for (l, row) in o.chunks_exact(k).enumerate() {
        for (col, v) in tile.iter_mut().zip(row) {
            col[l] = *v;
        }
    }
    let mut m = [f32::NEG_INFINITY; 8];
    let mut finite = [true; 8];
    for col in tile.iter() {
        for l in 0..8 {
            m[l] = m[l].max(col[l]);
            finite[l] &= col[l].is_finite();
        }
    }
    // The first index holding the maximum, per lane.
    let mut first = [k as u32; 8];
    for (j, col) in tile.iter().enumerate().rev() {
        for l in 0..8 {
            if col[l] == m[l] {
                first[l] = j as u32;
            }
        }
    }
    for col in tile.iter_mut() {
        for l in 0..8 {
            col[l] -= m[l];
        }
    }
    // One flat loop, which the compiler vectorises (the lane loops it does not, for exp).
    for v in tile.as_flattened_mut() {
        *v = crate::kernels::exp_nonpositive(*v);
    }
    let mut z = [0.0f32; 8];
    for col in tile.iter() {
        for l in 0..8 {
            z[l] += col[l];
        }
    }
    let mut correct = 0;
    let mut s = [0.0f32; 8];
    for l in 0..8 {
        let tl = t[l] as usize;
        *loss += (z[l].ln() + m[l] - o[l * k + tl]) as f64;
        s[l] = inv_n / z[l];
        correct += usize::from(finite[l] && first[l] as usize == tl);
    }
    for (l, row) in d.chunks_exact_mut(k).enumerate() {
        for (dv, col) in row.iter_mut().zip(tile.iter()) {
            *dv = col[l] * s[l];
        }
        row[t[l] as usize] -= inv_n;
    }
    correct
}

/// Mean loss over `n` samples and the number correct; writes the gradient of the mean loss
/// with respect to `out` into `dout`. Non-finite outputs count as wrong.
pub fn loss_and_grad(
    task: Task,
    out: &[f32],
    y: &[f32],
    n: usize,
    dout: &mut [f32],
) -> (f64, usize) {
    let k = task.outputs();
    let mut loss = 0.0f64;
    let mut correct = 0;
    let inv_n = 1.0 / n as f32;
    match task {
        Task::Classification { .. } => {
            let mut r = 0;
            let mut tile = [[0.0f32; 8]; XENT_MAX_CLASSES];
            if k <= XENT_MAX_CLASSES {
                while r + 8 <= n {
                    let rows = r * k..(r + 8) * k;
                    let (o, d) = (&out[rows.clone()], &mut dout[rows]);
                    correct += crate::kernels::simd(
                        #[inline(always)]
                        || xent_8_rows(o, &y[r..r + 8], &mut tile[..k], inv_n, d, &mut loss),
                    );
                    r += 8;
                }
            }
            for ((o, d), &t) in out[r * k..n * k]
                .chunks_exact(k)
                .zip(dout[r * k..n * k].chunks_exact_mut(k))
                .zip(&y[r..n])
            {
                correct += xent_row(o, t as usize, inv_n, d, &mut loss);
            }
        }
        Task::Regression { .. } => {
            let scale = 2.0 * inv_n / k as f32;
            for ((o, d), t) in out
                .chunks_exact(k)
                .zip(dout.chunks_exact_mut(k))
                .zip(y.chunks_exact(k))
            {
                let mut l = 0.0f32;
                let mut ok = true;
                for j in 0..k {
                    let e = o[j] - t[j];
                    l += e * e;
                    d[j] = scale * e;
                    ok &= e.abs() < 0.1;
                }
                loss += (l / k as f32) as f64;
                if ok {
                    correct += 1;
                }
            }
        }
    }
    (loss / n as f64, correct)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Loss of a training-mode forward pass with a fixed dropout stream.
    fn loss_at(net: &Net, st: &State, x: &[f32], y: &[f32], n: usize, task: Task) -> f64 {
        let mut ws = net.workspace(n);
        let out = net
            .forward(st, &mut ws, x, n, true, &mut Rng::new(99))
            .to_vec();
        let mut d = vec![0.0; out.len()];
        loss_and_grad(task, &out, y, n, &mut d).0
    }

    /// Compares backprop with central finite differences (in f64 over f32 evaluations).
    fn gradcheck(arch: Arch, shape: &[usize], task: Task, seed: u64) {
        let net = Net::new(&arch, shape, task.outputs()).unwrap();
        let mut rng = Rng::new(seed);
        let mut st = net.init(Init::Normal, 1.0, &mut rng);
        // Non-trivial biases and BatchNorm weights.
        for v in st.params.iter_mut() {
            *v += 0.1 * rng.normal() as f32;
        }
        let n = 5;
        let d: usize = shape.iter().product();
        let x: Vec<f32> = (0..n * d).map(|_| rng.normal() as f32).collect();
        let y: Vec<f32> = match task {
            Task::Classification { classes } => (0..n).map(|i| (i % classes) as f32).collect(),
            Task::Regression { outputs } => (0..n * outputs).map(|_| rng.normal() as f32).collect(),
        };
        let mut ws = net.workspace(n);
        let out = net
            .forward(&st, &mut ws, &x, n, true, &mut Rng::new(99))
            .to_vec();
        let mut dout = vec![0.0; out.len()];
        loss_and_grad(task, &out, &y, n, &mut dout);
        net.backward(&st, &mut ws, &dout, n);
        let g = ws.grads().to_vec();
        let eps = 1e-2f32;
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for (i, &gi) in g.iter().enumerate() {
            let orig = st.params[i];
            st.params[i] = orig + eps;
            let lp = loss_at(&net, &st, &x, &y, n, task);
            st.params[i] = orig - eps;
            let lm = loss_at(&net, &st, &x, &y, n, task);
            st.params[i] = orig;
            let fd = (lp - lm) / (2.0 * eps as f64);
            num += (fd - gi as f64).powi(2);
            den += fd.powi(2) + (gi as f64).powi(2);
        }
        let rel = (num / den.max(1e-30)).sqrt();
        assert!(rel < 2e-3, "{arch:?}: relative gradient error {rel}");
    }

    /// The 8-rows-at-a-time cross-entropy gives the per-row code's bits: loss, gradient and
    /// correct count, with ties, infinities and NaN among the outputs, for class counts on
    /// both sides of the 8-row limit.
    #[test]
    fn cross_entropy_8_rows_matches_rows() {
        let mut rng = Rng::new(5);
        for case in 0..200 {
            let k = [1, 2, 3, 10, 17, 64, 65][case % 7];
            let n = 1 + rng.below(40) as usize;
            let mut out: Vec<f32> = (0..n * k)
                .map(|_| (rng.f32() * 8.0 - 4.0).round())
                .collect();
            if case % 5 == 0 {
                let i = rng.below((n * k) as u64) as usize;
                out[i] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 300.0][case % 4];
            }
            let y: Vec<f32> = (0..n).map(|_| rng.below(k as u64) as f32).collect();
            let task = Task::Classification { classes: k };
            let mut d = vec![0.0; n * k];
            let (loss, correct) = loss_and_grad(task, &out, &y, n, &mut d);
            let (mut loss2, mut correct2) = (0.0f64, 0);
            let mut d2 = vec![0.0; n * k];
            let inv_n = 1.0 / n as f32;
            for ((o, d), &t) in out.chunks_exact(k).zip(d2.chunks_exact_mut(k)).zip(&y) {
                correct2 += xent_row(o, t as usize, inv_n, d, &mut loss2);
            }
            assert_eq!(correct, correct2, "case {case}");
            assert_eq!(loss.to_bits(), (loss2 / n as f64).to_bits(), "case {case}");
            for (a, b) in d.iter().zip(&d2) {
                assert_eq!(a.to_bits(), b.to_bits(), "case {case}");
            }
        }
    }

    #[test]
    fn gradcheck_mlp_every_activation() {
        for (_, a) in Activation::ALL {
            gradcheck(
                Arch::Mlp {
                    hidden: vec![6, 5],
                    activation: a,
                    dropout: 0.0,
                },
                &[4],
                Task::Classification { classes: 3 },
                1,
            );
        }
    }

    #[test]
    fn gradcheck_mlp_dropout_and_regression() {
        gradcheck(
            Arch::Mlp {
                hidden: vec![7],
                activation: Activation::Tanh,
                dropout: 0.3,
            },
            &[3],
            Task::Regression { outputs: 2 },
            2,
        );
    }

    #[test]
    fn gradcheck_cnn_plain_and_batchnorm() {
        for (bn, stride, pad) in [(false, 2, 1), (true, 1, 0), (true, 2, 1)] {
            gradcheck(
                Arch::Cnn {
                    channels: vec![3, 4],
                    kernel: 3,
                    stride,
                    padding: pad,
                    batchnorm: bn,
                    activation: Activation::Tanh,
                    dropout: 0.0,
                },
                &[2, 6, 5],
                Task::Classification { classes: 3 },
                3,
            );
        }
        gradcheck(
            Arch::Cnn {
                channels: vec![3],
                kernel: 2,
                stride: 1,
                padding: 0,
                batchnorm: false,
                activation: Activation::Gelu,
                dropout: 0.25,
            },
            &[1, 4, 4],
            Task::Classification { classes: 2 },
            4,
        );
    }

    #[test]
    fn unterthiner_cnn_has_4970_params_and_pytorch_names() {
        let net = Net::new(
            &Arch::Cnn {
                channels: vec![16, 16, 16],
                kernel: 3,
                stride: 2,
                padding: 1,
                batchnorm: false,
                activation: Activation::Relu,
                dropout: 0.0,
            },
            &[1, 8, 8],
            10,
        )
        .unwrap();
        assert_eq!(net.num_params(), 4970);
        let names: Vec<&str> = net.params().iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "layers.0.weight",
                "layers.0.bias",
                "layers.2.weight",
                "layers.2.bias",
                "layers.4.weight",
                "layers.4.bias",
                "layers.8.weight",
                "layers.8.bias"
            ]
        );
        assert_eq!(net.params()[2].shape, vec![16, 16, 3, 3]);
        let mlp = Net::new(
            &Arch::Mlp {
                hidden: vec![32],
                activation: Activation::Relu,
                dropout: 0.0,
            },
            &[1, 8, 8],
            10,
        )
        .unwrap();
        assert_eq!(mlp.num_params(), 64 * 32 + 32 + 32 * 10 + 10);
        assert_eq!(mlp.params()[2].name, "layers.2.weight");
        assert_eq!(mlp.params()[2].shape, vec![10, 32]);
    }

    #[test]
    fn conv_matches_direct_convolution() {
        // One 2-channel 4×4 image, 3 filters 3×3, stride 1, pad 1, against a naive loop.
        let arch = Arch::Cnn {
            channels: vec![3],
            kernel: 3,
            stride: 1,
            padding: 1,
            batchnorm: false,
            activation: Activation::LeakyRelu,
            dropout: 0.0,
        };
        let net = Net::new(&arch, &[2, 4, 4], 2).unwrap();
        let mut rng = Rng::new(5);
        let st = net.init(Init::Normal, 1.0, &mut rng);
        let x: Vec<f32> = (0..32).map(|_| rng.normal() as f32).collect();
        let mut ws = net.workspace(1);
        net.forward(&st, &mut ws, &x, 1, false, &mut rng);
        let w = net.params()[0].slice(&st.params);
        let conv_out = &ws.acts[1]; // [H·W, C] channels-last
        for o in 0..3 {
            for i in 0..4 {
                for j in 0..4 {
                    let mut acc = 0.0f32;
                    for c in 0..2 {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (yy, xx) = (i as isize + ky - 1, j as isize + kx - 1);
                                if (0..4).contains(&yy) && (0..4).contains(&xx) {
                                    acc += w[((o * 2 + c) * 3 + ky as usize) * 3 + kx as usize]
                                        * x[c * 16 + yy as usize * 4 + xx as usize];
                                }
                            }
                        }
                    }
                    let got = conv_out[(i * 4 + j) * 3 + o];
                    assert!((got - acc).abs() < 1e-5, "{got} vs {acc}");
                }
            }
        }
    }
}
