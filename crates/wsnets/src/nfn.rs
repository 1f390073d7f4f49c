//! Neural functionals (Zhou et al. 2023, "Permutation Equivariant Neural Functionals"),
//! after the reference code `AllanYangZhou/nfn` (`nfn/layers/layers.py`: `NPLinear`,
//! `HNPLinear`, `HNPPool`; `experiments/models.py`: `InvariantNFN`, `MlpHead`).
//!
//! Features are kept channels-last: layer `i`'s weights `[B, n_i, n_{i-1}, K_i * C]` (the kernel
//! is folded into the channels, as NFN's `shape_wsfeat_symmetry` does for convolutions) and its
//! biases `[B, n_i, C]`. A layer is a sum of terms, each a pointwise linear map (NFN's 1x1
//! convolutions) of the input itself or of its row / column / full means, broadcast back:
//!
//! * NP (`NPLinear`): every neuron set is permutable.
//!   `W'_i = pw(W_i) + rc(means) + r(row-indexed means) + c(column-indexed means)` and
//!   `b'_i = bias(column-indexed) + bias_rc(means)`, with `io_embed` (learned position embeddings
//!   added to the first layer's columns, the last layer's rows and the last bias), as in the
//!   reference's `NP-PosEmb` mode used for generalisation prediction.
//! * HNP (`HNPLinear`): input and output neurons are fixed, so the first layer's rows and the
//!   last layer's columns are mapped as whole vectors (`w0_rpt`, `wfin_cpt`), and the input/output
//!   dimensions enter every term's global features.
//!
//! The model is `InvariantNFN`: `depth` layers of width `hidden`, each followed by ReLU, then
//! `HNPPool` (the reference's predict-generalisation config pools with HNP for both NP and HNP)
//! and `MlpHead` (Linear–ReLU–Linear–ReLU–Linear; no final sigmoid, targets are the caller's).

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{Device, Distribution, Tensor};

use crate::common::{Feats, Head, flat3, linear_fan};
use crate::{WsBatch, WsError, WsNetConfig, WsShape};

/// The terms that produce one layer's output (which ones exist depends on NP/HNP and position).
#[derive(Module, Debug)]
struct Block {
    /// Pointwise on `W_i` (`layer_i`).
    pw: Option<Linear>,
    /// From the global features to the weight (`layer_i_rc`, `w0_rbdcst`, `wfin_cbdcst`).
    rc: Linear,
    /// From the column-indexed features (`layer_i_r`, `wfin_cpt`).
    r: Option<Linear>,
    /// From the row-indexed features (`layer_i_c`, `w0_rpt`).
    c: Option<Linear>,
    /// Bias from the row-indexed features (`bias_i`, `bias_0`).
    b: Option<Linear>,
    /// Bias from the global features (`bias_i_rc`, `bias_0_rc`, `bias_fin_rc`).
    b_rc: Linear,
}

impl Block {
    /// The update of a layer with both neighbours, shared by NP and HNP: the pointwise term
    /// on `w`, the global broadcast, the row-indexed (`row`) and column-indexed (`col`)
    /// feature terms; the bias from the column features plus the global broadcast. Returns
    /// (weight features `[B, n, m, f_out]`, bias features `[B, n, c_out]`).
    #[allow(clippy::too_many_arguments)]
    fn interior(
        &self,
        w: Tensor<4>,
        glob: &Tensor<2>,
        row: Vec<Tensor<3>>,
        col: Vec<Tensor<3>>,
        f_out: usize,
        c_out: usize,
        kind: &str,
    ) -> (Tensor<4>, Tensor<3>) {
        let [bs, n, m, _] = w.dims();
        fn part<'a>(l: &'a Option<Linear>, kind: &str, name: &str) -> &'a Linear {
            l.as_ref()
                .unwrap_or_else(|| panic!("{kind} block has no `{name}`"))
        }
        let z1 = part(&self.pw, kind, "pw").forward(w);
        let z2 = self.rc.forward(glob.clone()).reshape([bs, 1, 1, f_out]);
        let z3 = part(&self.r, kind, "r")
            .forward(Tensor::cat(row, 2))
            .reshape([bs, 1, m, f_out]);
        let col = Tensor::cat(col, 2);
        let z4 = part(&self.c, kind, "c")
            .forward(col.clone())
            .reshape([bs, n, 1, f_out]);
        let u1 = part(&self.b, kind, "b").forward(col);
        let u2 = self.b_rc.forward(glob.clone()).reshape([bs, 1, c_out]);
        (z1 + z2 + z3 + z4, u1 + u2)
    }
}

/// One NP or HNP layer, `c_in -> c_out` channels.
#[derive(Module, Debug)]
struct NfLayer {
    blocks: Vec<Block>,
    /// NP only: position embeddings of the input columns, output rows and output biases.
    in_embed: Option<Param<Tensor<4>>>,
    out_embed: Option<Param<Tensor<4>>>,
    out_bias_embed: Option<Param<Tensor<3>>>,
    #[module(skip)]
    hnp: bool,
    #[module(skip)]
    c_out: usize,
    #[module(skip)]
    kernels: Vec<usize>,
    #[module(skip)]
    n_in: usize,
    #[module(skip)]
    n_out: usize,
}

fn mean_rows(w: &Tensor<4>) -> Tensor<3> {
    // mean over dim 1 (the rows / output units): [B, n, m, F] -> [B, m, F]
    let [b, _, m, f] = w.dims();
    w.clone().mean_dim(1).reshape([b, m, f])
}

fn mean_cols(w: &Tensor<4>) -> Tensor<3> {
    // mean over dim 2 (the columns / input units): [B, n, m, F] -> [B, n, F]
    let [b, n, _, f] = w.dims();
    w.clone().mean_dim(2).reshape([b, n, f])
}

fn mean_all(w: &Tensor<4>) -> Tensor<2> {
    let [b, _, _, f] = w.dims();
    w.clone().mean_dim(1).mean_dim(2).reshape([b, f])
}

fn mean_set(b: &Tensor<3>) -> Tensor<2> {
    let [bs, _, c] = b.dims();
    b.clone().mean_dim(1).reshape([bs, c])
}

/// `W_0` `[B, n_1, n_in, F]` as one vector per row: `[B, n_1, n_in * F]`.
fn rows_flat(w: &Tensor<4>) -> Tensor<3> {
    let [b, n, m, f] = w.dims();
    w.clone().reshape([b, n, m * f])
}

/// `W_L` `[B, n_out, m, F]` as one vector per column: `[B, m, n_out * F]`.
fn cols_flat(w: &Tensor<4>) -> Tensor<3> {
    let [b, n, m, f] = w.dims();
    w.clone().swap_dims(1, 2).reshape([b, m, n * f])
}

impl NfLayer {
    fn new(shape: &WsShape, c_in: usize, c_out: usize, hnp: bool, device: &Device) -> Self {
        let ks: Vec<usize> = shape.layers.iter().map(|l| l.kernel).collect();
        let l = ks.len();
        let (n_in, n_out) = (shape.n_in(), shape.n_out());
        let sum_k: usize = ks.iter().sum();
        let mut blocks = Vec::with_capacity(l);
        if !hnp {
            let n_rc = (l + sum_k) * c_in;
            for i in 0..l {
                let f_out = ks[i] * c_out;
                let mut row_in = ks[i] * c_in;
                let mut col_in = (ks[i] + 1) * c_in;
                if i > 0 {
                    row_in += (ks[i - 1] + 1) * c_in;
                }
                if i + 1 < l {
                    col_in += ks[i + 1] * c_in;
                }
                let fan_w = ks[i] * c_in + n_rc + row_in + col_in;
                let fan_b = col_in + n_rc;
                blocks.push(Block {
                    pw: Some(linear_fan(ks[i] * c_in, f_out, fan_w, true, device)),
                    rc: linear_fan(n_rc, f_out, fan_w, true, device),
                    r: Some(linear_fan(row_in, f_out, fan_w, true, device)),
                    c: Some(linear_fan(col_in, f_out, fan_w, true, device)),
                    b: Some(linear_fan(col_in, c_out, fan_b, true, device)),
                    b_rc: linear_fan(n_rc, c_out, fan_b, true, device),
                });
            }
            let normal = Distribution::Normal(0.0, 1.0);
            return NfLayer {
                blocks,
                in_embed: Some(Param::from_tensor(Tensor::random(
                    [1, 1, n_in, ks[0] * c_in],
                    normal,
                    device,
                ))),
                out_embed: Some(Param::from_tensor(Tensor::random(
                    [1, n_out, 1, ks[l - 1] * c_in],
                    normal,
                    device,
                ))),
                out_bias_embed: Some(Param::from_tensor(Tensor::random(
                    [1, n_out, c_in],
                    normal,
                    device,
                ))),
                hnp,
                c_out,
                kernels: ks,
                n_in,
                n_out,
            };
        }
        // HNP (requires l >= 2, checked by the caller).
        let n_rc = (n_in * ks[0] + n_out * ks[l - 1] + l + n_out + sum_k) * c_in;
        for i in 0..l {
            let f_out = ks[i] * c_out;
            if i == 0 {
                let mut rpt_in = ks[0] * n_in + ks[1] + 1;
                if l == 2 {
                    rpt_in += n_out * ks[1];
                }
                let rpt_in = rpt_in * c_in;
                // NFN: w0_rpt/w0_rbdcst use PyTorch's default init; bias_0/bias_0_rc share a fan.
                blocks.push(Block {
                    pw: None,
                    rc: linear_fan(n_rc, n_in * f_out, n_rc, true, device),
                    r: None,
                    c: Some(linear_fan(rpt_in, n_in * f_out, rpt_in, true, device)),
                    b: Some(linear_fan(rpt_in, c_out, rpt_in + n_rc, true, device)),
                    b_rc: linear_fan(n_rc, c_out, rpt_in + n_rc, true, device),
                });
            } else if i == l - 1 {
                let mut cpt_in = ks[i] * n_out + ks[i - 1];
                if i == 1 {
                    cpt_in += n_in * ks[0];
                }
                let cpt_in = cpt_in * c_in;
                let fan = cpt_in + n_rc;
                blocks.push(Block {
                    pw: None,
                    rc: linear_fan(n_rc, n_out * f_out, fan, true, device),
                    r: Some(linear_fan(cpt_in, n_out * f_out, fan, true, device)),
                    c: None,
                    b: None,
                    b_rc: linear_fan(n_rc, n_out * c_out, n_rc, true, device),
                });
            } else {
                let mut row_in = (ks[i - 1] + ks[i] + 1) * c_in;
                let mut col_in = (ks[i + 1] + ks[i] + 1) * c_in;
                if i == 1 {
                    row_in += n_in * ks[0] * c_in;
                }
                if i == l - 2 {
                    col_in += n_out * ks[l - 1] * c_in;
                }
                let fan_w = ks[i] * c_in + n_rc + row_in + col_in;
                let fan_b = col_in + n_rc;
                blocks.push(Block {
                    pw: Some(linear_fan(ks[i] * c_in, f_out, fan_w, true, device)),
                    rc: linear_fan(n_rc, f_out, fan_w, true, device),
                    r: Some(linear_fan(row_in, f_out, fan_w, true, device)),
                    c: Some(linear_fan(col_in, f_out, fan_w, true, device)),
                    b: Some(linear_fan(col_in, c_out, fan_b, true, device)),
                    b_rc: linear_fan(n_rc, c_out, fan_b, true, device),
                });
            }
        }
        NfLayer {
            blocks,
            in_embed: None,
            out_embed: None,
            out_bias_embed: None,
            hnp,
            c_out,
            kernels: ks,
            n_in,
            n_out,
        }
    }

    fn forward(&self, x: Feats) -> Feats {
        if self.hnp {
            self.forward_hnp(x)
        } else {
            self.forward_np(x)
        }
    }

    fn forward_np(&self, mut x: Feats) -> Feats {
        let l = x.w.len();
        if let (Some(ie), Some(oe), Some(ob)) =
            (&self.in_embed, &self.out_embed, &self.out_bias_embed)
        {
            x.w[0] = x.w[0].clone() + ie.val();
            x.w[l - 1] = x.w[l - 1].clone() + oe.val();
            x.b[l - 1] = x.b[l - 1].clone() + ob.val();
        }
        let rm: Vec<Tensor<3>> = x.w.iter().map(mean_rows).collect();
        let cm: Vec<Tensor<3>> = x.w.iter().map(mean_cols).collect();
        let mut glob: Vec<Tensor<2>> = x.w.iter().map(mean_all).collect();
        glob.extend(x.b.iter().map(mean_set));
        let glob = Tensor::cat(glob, 1);
        let mut w_out = Vec::with_capacity(l);
        let mut b_out = Vec::with_capacity(l);
        for (i, blk) in self.blocks.iter().enumerate() {
            let f_out = self.kernels[i] * self.c_out;
            let mut row = vec![rm[i].clone()];
            if i > 0 {
                row.push(cm[i - 1].clone());
                row.push(x.b[i - 1].clone());
            }
            let mut col = vec![cm[i].clone(), x.b[i].clone()];
            if i + 1 < l {
                col.push(rm[i + 1].clone());
            }
            let (w, b) = blk.interior(x.w[i].clone(), &glob, row, col, f_out, self.c_out, "NP");
            w_out.push(w);
            b_out.push(b);
        }
        Feats { w: w_out, b: b_out }
    }

    fn forward_hnp(&self, x: Feats) -> Feats {
        let l = x.w.len();
        let rm: Vec<Tensor<3>> = x.w.iter().map(mean_rows).collect();
        let cm: Vec<Tensor<3>> = x.w.iter().map(mean_cols).collect();
        let mut glob: Vec<Tensor<2>> = x.w.iter().map(mean_all).collect();
        glob.extend(x.b.iter().map(mean_set));
        glob.push(flat3(rm[0].clone()));
        glob.push(flat3(cm[l - 1].clone()));
        glob.push(flat3(x.b[l - 1].clone()));
        let glob = Tensor::cat(glob, 1);
        let (n_in, n_out, c_out) = (self.n_in, self.n_out, self.c_out);
        let mut w_out = Vec::with_capacity(l);
        let mut b_out = Vec::with_capacity(l);
        for (i, blk) in self.blocks.iter().enumerate() {
            let [bs, n, m, _] = x.w[i].dims();
            let f_out = self.kernels[i] * c_out;
            if i == 0 {
                // Each hidden unit of layer 0 (a row) with its whole input vector.
                let mut rpt = vec![rows_flat(&x.w[0]), rm[1].clone(), x.b[0].clone()];
                if l == 2 {
                    rpt.push(cols_flat(&x.w[l - 1]));
                }
                let rpt = Tensor::cat(rpt, 2);
                let z1 = blk
                    .c
                    .as_ref()
                    .expect("HNP first has c")
                    .forward(rpt.clone());
                let z2 = blk.rc.forward(glob.clone()).reshape([bs, 1, n_in * f_out]);
                w_out.push((z1 + z2).reshape([bs, n, n_in, f_out]));
                let u1 = blk.b.as_ref().expect("HNP first has b").forward(rpt);
                let u2 = blk.b_rc.forward(glob.clone()).reshape([bs, 1, c_out]);
                b_out.push(u1 + u2);
            } else if i == l - 1 {
                // Each hidden unit feeding the last layer (a column) with its whole output vector.
                let mut cpt = vec![cols_flat(&x.w[i]), cm[i - 1].clone()];
                if i == 1 {
                    cpt.push(rows_flat(&x.w[0]));
                }
                let cpt = Tensor::cat(cpt, 2);
                let z1 = blk.r.as_ref().expect("HNP last has r").forward(cpt);
                let z2 = blk.rc.forward(glob.clone()).reshape([bs, 1, n_out * f_out]);
                // [B, m, n_out * F'] -> [B, m, n_out, F'] -> [B, n_out, m, F']
                w_out.push((z1 + z2).reshape([bs, m, n_out, f_out]).swap_dims(1, 2));
                b_out.push(blk.b_rc.forward(glob.clone()).reshape([bs, n_out, c_out]));
            } else {
                let mut row = vec![rm[i].clone(), cm[i - 1].clone(), x.b[i - 1].clone()];
                let mut col = vec![cm[i].clone(), x.b[i].clone(), rm[i + 1].clone()];
                if i == 1 {
                    row.push(rows_flat(&x.w[0]));
                }
                if i == l - 2 {
                    col.push(cols_flat(&x.w[l - 1]));
                }
                let (w, b) = blk.interior(x.w[i].clone(), &glob, row, col, f_out, c_out, "HNP");
                w_out.push(w);
                b_out.push(b);
            }
        }
        Feats { w: w_out, b: b_out }
    }
}

/// `HNPPool`: first layer averaged over rows (one vector per input), last layer averaged over
/// columns (one per output) plus the last bias as is; every other tensor averaged to a vector.
fn hnp_pool(x: &Feats) -> Tensor<2> {
    let l = x.w.len();
    let mut out = Vec::with_capacity(2 * l);
    for i in 0..l {
        if i == 0 {
            out.push(flat3(mean_rows(&x.w[i])));
        } else if i == l - 1 {
            out.push(flat3(mean_cols(&x.w[i])));
        } else {
            out.push(mean_all(&x.w[i]));
        }
        if i == l - 1 {
            out.push(flat3(x.b[i].clone()));
        } else {
            out.push(mean_set(&x.b[i]));
        }
    }
    Tensor::cat(out, 1)
}

fn hnp_pool_size(shape: &WsShape, c: usize) -> usize {
    let l = shape.layers.len();
    let ks: Vec<usize> = shape.layers.iter().map(|s| s.kernel).collect();
    let mut n = 0;
    for i in 0..l {
        n += if i == 0 {
            shape.n_in() * ks[0]
        } else if i == l - 1 {
            shape.n_out() * ks[i]
        } else {
            ks[i]
        };
        n += if i == l - 1 { shape.n_out() } else { 1 };
    }
    n * c
}

/// Width of NFN's MLP head: the reference's `MlpHead` default `h_size = 1000`, which its
/// generalisation-prediction config (`head_cls/mlp.yaml`) keeps. Until 2026-12-07 the head was
/// `hidden` wide (16–64), like the equivariant layers. The extra cost is small next to the
/// layers: two GEMMs per batch.
const NFN_HEAD_WIDTH: usize = 1000;

/// `InvariantNFN`: NP or HNP layers with ReLU, HNP pooling, MLP head.
#[derive(Module, Debug)]
pub(crate) struct Nfn {
    layers: Vec<NfLayer>,
    head: Head,
}

impl Nfn {
    pub(crate) fn new(
        cfg: &WsNetConfig,
        shape: &WsShape,
        hnp: bool,
        device: &Device,
    ) -> Result<Self, WsError> {
        if hnp && shape.layers.len() < 2 {
            return Err(WsError::Shape(
                "nfn-hnp needs input networks with at least 2 layers (one hidden set)".into(),
            ));
        }
        let mut layers = Vec::with_capacity(cfg.depth);
        let mut c = 1;
        for _ in 0..cfg.depth {
            layers.push(NfLayer::new(shape, c, cfg.hidden, hnp, device));
            c = cfg.hidden;
        }
        let head = Head::with_width(hnp_pool_size(shape, c), NFN_HEAD_WIDTH, cfg, device);
        Ok(Nfn { layers, head })
    }

    pub(crate) fn forward(&self, x: &WsBatch) -> Tensor<2> {
        let mut f = Feats::from_batch(x);
        for layer in &self.layers {
            f = layer.forward(f).relu();
        }
        self.head.forward(hnp_pool(&f))
    }
}
