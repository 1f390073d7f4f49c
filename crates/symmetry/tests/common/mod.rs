//! Tiny reference forward passes (f64, naive loops) for the invariance tests, and random
//! weights. Written here, from the PyTorch/Hugging Face definitions, so the tests depend on no
//! runtime.
#![allow(dead_code)]

use weightspace_spec::{Facts, ModelSpec, derive};
use weightspace_symmetry::{SplitMix64, Tensor, Weights};

/// Random weights for `(name, shape)`: uniform in [-1, 1) scaled by 1/sqrt(fan-in); norm
/// weights around 1; running variances positive.
pub fn random_weights(shapes: &[(&str, Vec<usize>)], seed: u64) -> Weights {
    let mut rng = SplitMix64::new(seed);
    let mut w = Weights::new();
    for (name, shape) in shapes {
        let n: usize = shape.iter().product();
        let fan = if shape.len() >= 2 {
            shape[1..].iter().product::<usize>()
        } else {
            1
        } as f64;
        let data = (0..n)
            .map(|_| {
                let u = rng.next_f64() * 2.0 - 1.0;
                let v = if name.ends_with("running_var") {
                    0.5 + u.abs()
                } else if shape.len() == 1
                    && (name.contains("norm")
                        || name.contains("LayerNorm")
                        || name.contains("ln_")
                        || name.contains("bn"))
                    && name.ends_with("weight")
                {
                    1.0 + 0.5 * u
                } else if shape.len() >= 2 {
                    u * 1.5 / fan.sqrt()
                } else {
                    0.5 * u
                };
                v as f32
            })
            .collect();
        w.insert(*name, Tensor::f32(shape.clone(), data));
    }
    w
}

pub fn spec_of(shapes: &[(&str, Vec<usize>)], facts: &Facts) -> ModelSpec {
    let infos: Vec<(String, Vec<usize>)> = shapes
        .iter()
        .map(|(n, s)| (n.to_string(), s.clone()))
        .collect();
    derive(&infos, facts).expect("spec derives")
}

pub fn t<'a>(w: &'a Weights, n: &str) -> &'a [f32] {
    &w.get(n).unwrap_or_else(|| panic!("missing {n}")).data
}

pub fn has(w: &Weights, n: &str) -> bool {
    w.get(n).is_some()
}

/// `y = W x + b` for W `[out, in]`.
pub fn linear(w: &[f32], b: Option<&[f32]>, x: &[f64], out: usize) -> Vec<f64> {
    let inp = x.len();
    (0..out)
        .map(|o| {
            let mut s = b.map_or(0.0, |b| b[o] as f64);
            for i in 0..inp {
                s += w[o * inp + i] as f64 * x[i];
            }
            s
        })
        .collect()
}

/// GPT-2 Conv1D: `y = x W + b` with W `[in, out]`.
pub fn conv1d(w: &[f32], b: &[f32], x: &[f64], out: usize) -> Vec<f64> {
    let inp = x.len();
    (0..out)
        .map(|o| {
            let mut s = b[o] as f64;
            for i in 0..inp {
                s += w[i * out + o] as f64 * x[i];
            }
            s
        })
        .collect()
}

/// 2-D convolution, `x` `[c, h, w]`, weight `[co, c, k, k]`, stride 1.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    w: &[f32],
    b: Option<&[f32]>,
    x: &[f64],
    c: usize,
    h: usize,
    wd: usize,
    co: usize,
    k: usize,
    pad: usize,
) -> (Vec<f64>, usize, usize) {
    let oh = h + 2 * pad - k + 1;
    let ow = wd + 2 * pad - k + 1;
    let mut y = vec![0f64; co * oh * ow];
    for o in 0..co {
        for i in 0..oh {
            for j in 0..ow {
                let mut s = b.map_or(0.0, |b| b[o] as f64);
                for ci in 0..c {
                    for a in 0..k {
                        for bb in 0..k {
                            let (ii, jj) = (i + a, j + bb);
                            if ii < pad || jj < pad || ii - pad >= h || jj - pad >= wd {
                                continue;
                            }
                            s += w[((o * c + ci) * k + a) * k + bb] as f64
                                * x[(ci * h + ii - pad) * wd + jj - pad];
                        }
                    }
                }
                y[(o * oh + i) * ow + j] = s;
            }
        }
    }
    (y, oh, ow)
}

/// Eval-mode BatchNorm over channels of `[c, hw]`.
pub fn batchnorm(w: &Weights, p: &str, x: &mut [f64], c: usize) {
    let hw = x.len() / c;
    let (g, b, m, v) = (
        t(w, &format!("{p}.weight")),
        t(w, &format!("{p}.bias")),
        t(w, &format!("{p}.running_mean")),
        t(w, &format!("{p}.running_var")),
    );
    for ch in 0..c {
        let sd = (v[ch] as f64 + 1e-5).sqrt();
        for i in 0..hw {
            let z = &mut x[ch * hw + i];
            *z = g[ch] as f64 * (*z - m[ch] as f64) / sd + b[ch] as f64;
        }
    }
}

pub fn relu(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = v.max(0.0));
}

pub fn gelu_tanh(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

pub fn silu(x: f64) -> f64 {
    x / (1.0 + (-x).exp())
}

pub fn layernorm(x: &[f64], g: &[f32], b: Option<&[f32]>) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sd = (var + 1e-5).sqrt();
    x.iter()
        .enumerate()
        .map(|(i, v)| (v - mean) / sd * g[i] as f64 + b.map_or(0.0, |b| b[i] as f64))
        .collect()
}

pub fn rmsnorm(x: &[f64], g: &[f32]) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + 1e-6).sqrt();
    x.iter()
        .enumerate()
        .map(|(i, v)| v * r * g[i] as f64)
        .collect()
}

/// Multi-head attention over a sequence. `q[t]` has `h·d` entries, `k[t]`/`v[t]` `kv·d`;
/// query head `i` reads key/value head `i / (h/kv)`.
pub fn attention(
    q: &[Vec<f64>],
    k: &[Vec<f64>],
    v: &[Vec<f64>],
    h: usize,
    kv: usize,
    d: usize,
    causal: bool,
) -> Vec<Vec<f64>> {
    let n = q.len();
    let rep = h / kv;
    let mut out = vec![vec![0f64; h * d]; n];
    for head in 0..h {
        let kh = head / rep;
        for i in 0..n {
            let lim = if causal { i + 1 } else { n };
            let scores: Vec<f64> = (0..lim)
                .map(|j| {
                    (0..d)
                        .map(|e| q[i][head * d + e] * k[j][kh * d + e])
                        .sum::<f64>()
                        / (d as f64).sqrt()
                })
                .collect();
            let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let ex: Vec<f64> = scores.iter().map(|s| (s - mx).exp()).collect();
            let z: f64 = ex.iter().sum();
            for (j, e) in ex.iter().enumerate() {
                for dd in 0..d {
                    out[i][head * d + dd] += e / z * v[j][kh * d + dd];
                }
            }
        }
    }
    out
}

/// Hugging Face LLaMA rotary embedding (rotate_half convention) on one head vector.
pub fn rope(x: &mut [f64], pos: usize, d: usize) {
    let half = d / 2;
    let orig = x.to_vec();
    for i in 0..half {
        let theta = pos as f64 / 10000f64.powf(2.0 * i as f64 / d as f64);
        let (c, s) = (theta.cos(), theta.sin());
        x[i] = orig[i] * c - orig[i + half] * s;
        x[i + half] = orig[i + half] * c + orig[i] * s;
    }
}

pub fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    let scale = a.iter().map(|v| v.abs()).fold(1e-3, f64::max);
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
        / scale
}

pub fn inputs(n: usize, seed: u64) -> Vec<f64> {
    let mut r = SplitMix64::new(seed ^ 0xabcdef);
    (0..n).map(|_| r.next_f64() * 2.0 - 1.0).collect()
}
