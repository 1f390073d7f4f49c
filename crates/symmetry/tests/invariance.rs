//! Property tests: a random group element (permutations, and scalings/sign flips where the
//! spec allows them) never changes what a network computes. One reference forward pass per
//! architecture family, written in `common`.

mod common;

use common::*;
use proptest::prelude::*;
use weightspace_spec::{Facts, Family, Flatten, GroupKind, ModelSpec, UnprovenKind};
use weightspace_symmetry::{RandomOptions, Transform, Weights, apply};

const TOL: f64 = 2e-4;

fn all_actions() -> RandomOptions {
    RandomOptions {
        scale: true,
        sign: true,
        ..RandomOptions::default()
    }
}

/// Checks f(g·θ) = f(θ) and that g actually changed θ.
fn check<F: Fn(&Weights) -> Vec<f64>>(spec: &ModelSpec, w: &Weights, seed: u64, f: F) {
    let t = Transform::random(spec, seed, &all_actions());
    let mut p = w.clone();
    apply(spec, &mut p, &t).unwrap();
    assert_ne!(&p, w, "the transform changed nothing");
    let (a, b) = (f(w), f(&p));
    let d = max_rel_diff(&a, &b);
    assert!(d < TOL, "outputs differ by {d} (seed {seed})");
    // And the inverse gives the original back (to rounding).
    apply(spec, &mut p, &t.inverse()).unwrap();
    let back = max_rel_diff(&f(&p), &a);
    assert!(back < TOL);
}

// ------------------------------------------------------------------- MLP

fn mlp_shapes() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("layers.0.weight", vec![16, 5]),
        ("layers.0.bias", vec![16]),
        ("layers.2.weight", vec![12, 16]),
        ("layers.2.bias", vec![12]),
        ("layers.4.weight", vec![3, 12]),
        ("layers.4.bias", vec![3]),
    ]
}

fn mlp_forward(w: &Weights, x: &[f64], act: fn(f64) -> f64) -> Vec<f64> {
    let mut h = x.to_vec();
    for (l, out) in [("layers.0", 16), ("layers.2", 12)] {
        h = linear(
            t(w, &format!("{l}.weight")),
            Some(t(w, &format!("{l}.bias"))),
            &h,
            out,
        );
        h.iter_mut().for_each(|v| *v = act(*v));
    }
    linear(t(w, "layers.4.weight"), Some(t(w, "layers.4.bias")), &h, 3)
}

// ------------------------------------------------------------------- CNN + BatchNorm

fn cnn_shapes() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("conv1.weight", vec![4, 2, 3, 3]),
        ("conv1.bias", vec![4]),
        ("bn1.weight", vec![4]),
        ("bn1.bias", vec![4]),
        ("bn1.running_mean", vec![4]),
        ("bn1.running_var", vec![4]),
        ("conv2.weight", vec![6, 4, 3, 3]),
        ("bn2.weight", vec![6]),
        ("bn2.bias", vec![6]),
        ("bn2.running_mean", vec![6]),
        ("bn2.running_var", vec![6]),
        ("fc1.weight", vec![5, 24]),
        ("fc1.bias", vec![5]),
        ("fc2.weight", vec![3, 5]),
        ("fc2.bias", vec![3]),
    ]
}

fn cnn_forward(w: &Weights, x: &[f64]) -> Vec<f64> {
    let (mut h, oh, ow) = conv2d(
        t(w, "conv1.weight"),
        Some(t(w, "conv1.bias")),
        x,
        2,
        6,
        6,
        4,
        3,
        0,
    );
    batchnorm(w, "bn1", &mut h, 4);
    relu(&mut h);
    let (mut h, _, _) = conv2d(t(w, "conv2.weight"), None, &h, 4, oh, ow, 6, 3, 0);
    batchnorm(w, "bn2", &mut h, 6);
    relu(&mut h);
    // Flatten [6, 2, 2] -> 24.
    let mut h = linear(t(w, "fc1.weight"), Some(t(w, "fc1.bias")), &h, 5);
    relu(&mut h);
    linear(t(w, "fc2.weight"), Some(t(w, "fc2.bias")), &h, 3)
}

/// The same CNN, flattened position-major before `fc1` (channels-last, or torchcrepe's
/// `x.permute(0, 2, 1, 3).reshape(...)`): `fc1` reads channel `c` at position `p` as input
/// `p·6 + c`.
fn cnn_forward_channels_last(w: &Weights, x: &[f64]) -> Vec<f64> {
    let (mut h, oh, ow) = conv2d(
        t(w, "conv1.weight"),
        Some(t(w, "conv1.bias")),
        x,
        2,
        6,
        6,
        4,
        3,
        0,
    );
    batchnorm(w, "bn1", &mut h, 4);
    relu(&mut h);
    let (mut h, _, _) = conv2d(t(w, "conv2.weight"), None, &h, 4, oh, ow, 6, 3, 0);
    batchnorm(w, "bn2", &mut h, 6);
    relu(&mut h);
    let (c, p) = (6, 4);
    let flat: Vec<f64> = (0..c * p).map(|i| h[(i % c) * p + i / c]).collect();
    let mut h = linear(t(w, "fc1.weight"), Some(t(w, "fc1.bias")), &flat, 5);
    relu(&mut h);
    linear(t(w, "fc2.weight"), Some(t(w, "fc2.bias")), &h, 3)
}

// ------------------------------------------------------------------- ResNet (torchvision)

fn bn(p: &str, c: usize) -> Vec<(String, Vec<usize>)> {
    ["weight", "bias", "running_mean", "running_var"]
        .iter()
        .map(|s| (format!("{p}.{s}"), vec![c]))
        .collect()
}

fn resnet_shapes() -> Vec<(String, Vec<usize>)> {
    let mut v = vec![("conv1.weight".to_string(), vec![4, 2, 3, 3])];
    v.extend(bn("bn1", 4));
    v.push(("layer1.0.conv1.weight".into(), vec![5, 4, 3, 3]));
    v.extend(bn("layer1.0.bn1", 5));
    v.push(("layer1.0.conv2.weight".into(), vec![4, 5, 3, 3]));
    v.extend(bn("layer1.0.bn2", 4));
    v.push(("layer2.0.conv1.weight".into(), vec![6, 4, 3, 3]));
    v.extend(bn("layer2.0.bn1", 6));
    v.push(("layer2.0.conv2.weight".into(), vec![6, 6, 3, 3]));
    v.extend(bn("layer2.0.bn2", 6));
    v.push(("layer2.0.downsample.0.weight".into(), vec![6, 4, 1, 1]));
    v.extend(bn("layer2.0.downsample.1", 6));
    v.push(("fc.weight".into(), vec![3, 6]));
    v.push(("fc.bias".into(), vec![3]));
    v
}

fn resnet_forward(w: &Weights, x: &[f64]) -> Vec<f64> {
    let (h, s) = (4, 4);
    let conv = |name: &str, x: &[f64], c: usize, co: usize, k: usize| {
        conv2d(t(w, name), None, x, c, h, s, co, k, k / 2).0
    };
    let mut a = conv("conv1.weight", x, 2, 4, 3);
    batchnorm(w, "bn1", &mut a, 4);
    relu(&mut a);
    // layer1.0: basic block, identity shortcut.
    let mut b = conv("layer1.0.conv1.weight", &a, 4, 5, 3);
    batchnorm(w, "layer1.0.bn1", &mut b, 5);
    relu(&mut b);
    let mut b = conv("layer1.0.conv2.weight", &b, 5, 4, 3);
    batchnorm(w, "layer1.0.bn2", &mut b, 4);
    b.iter_mut().zip(&a).for_each(|(y, x)| *y += x);
    relu(&mut b);
    // layer2.0: basic block with a 1×1 downsample shortcut.
    let mut c = conv("layer2.0.conv1.weight", &b, 4, 6, 3);
    batchnorm(w, "layer2.0.bn1", &mut c, 6);
    relu(&mut c);
    let mut c = conv("layer2.0.conv2.weight", &c, 6, 6, 3);
    batchnorm(w, "layer2.0.bn2", &mut c, 6);
    let mut sc = conv("layer2.0.downsample.0.weight", &b, 4, 6, 1);
    batchnorm(w, "layer2.0.downsample.1", &mut sc, 6);
    c.iter_mut().zip(&sc).for_each(|(y, x)| *y += x);
    relu(&mut c);
    let gap: Vec<f64> = (0..6)
        .map(|ch| c[ch * 16..(ch + 1) * 16].iter().sum::<f64>() / 16.0)
        .collect();
    linear(t(w, "fc.weight"), Some(t(w, "fc.bias")), &gap, 3)
}

// ------------------------------------------------------------------- BERT

const D: usize = 8;
const H: usize = 2;
const FF: usize = 12;
const V: usize = 11;
const SEQ: usize = 4;

fn bert_shapes() -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("bert.embeddings.word_embeddings.weight".into(), vec![V, D]),
        (
            "bert.embeddings.position_embeddings.weight".into(),
            vec![SEQ, D],
        ),
        (
            "bert.embeddings.token_type_embeddings.weight".into(),
            vec![2, D],
        ),
        ("bert.embeddings.LayerNorm.weight".into(), vec![D]),
        ("bert.embeddings.LayerNorm.bias".into(), vec![D]),
    ];
    for i in 0..2 {
        let l = format!("bert.encoder.layer.{i}");
        for (n, s) in [
            ("attention.self.query.weight", vec![D, D]),
            ("attention.self.query.bias", vec![D]),
            ("attention.self.key.weight", vec![D, D]),
            ("attention.self.key.bias", vec![D]),
            ("attention.self.value.weight", vec![D, D]),
            ("attention.self.value.bias", vec![D]),
            ("attention.output.dense.weight", vec![D, D]),
            ("attention.output.dense.bias", vec![D]),
            ("attention.output.LayerNorm.weight", vec![D]),
            ("attention.output.LayerNorm.bias", vec![D]),
            ("intermediate.dense.weight", vec![FF, D]),
            ("intermediate.dense.bias", vec![FF]),
            ("output.dense.weight", vec![D, FF]),
            ("output.dense.bias", vec![D]),
            ("output.LayerNorm.weight", vec![D]),
            ("output.LayerNorm.bias", vec![D]),
        ] {
            v.push((format!("{l}.{n}"), s));
        }
    }
    v.push(("bert.pooler.dense.weight".into(), vec![D, D]));
    v.push(("bert.pooler.dense.bias".into(), vec![D]));
    v.push(("classifier.weight".into(), vec![3, D]));
    v.push(("classifier.bias".into(), vec![3]));
    v
}

fn bert_forward(w: &Weights, tokens: &[usize]) -> Vec<f64> {
    let p = "bert.embeddings";
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(pos, &tok)| {
            let e: Vec<f64> = (0..D)
                .map(|j| {
                    t(w, &format!("{p}.word_embeddings.weight"))[tok * D + j] as f64
                        + t(w, &format!("{p}.position_embeddings.weight"))[pos * D + j] as f64
                        + t(w, &format!("{p}.token_type_embeddings.weight"))[j] as f64
                })
                .collect();
            layernorm(
                &e,
                t(w, &format!("{p}.LayerNorm.weight")),
                Some(t(w, &format!("{p}.LayerNorm.bias"))),
            )
        })
        .collect();
    for i in 0..2 {
        let l = format!("bert.encoder.layer.{i}");
        let lin = |n: &str, x: &[f64], out: usize| {
            linear(
                t(w, &format!("{l}.{n}.weight")),
                Some(t(w, &format!("{l}.{n}.bias"))),
                x,
                out,
            )
        };
        let q: Vec<_> = xs
            .iter()
            .map(|x| lin("attention.self.query", x, D))
            .collect();
        let k: Vec<_> = xs.iter().map(|x| lin("attention.self.key", x, D)).collect();
        let v: Vec<_> = xs
            .iter()
            .map(|x| lin("attention.self.value", x, D))
            .collect();
        let a = attention(&q, &k, &v, H, H, D / H, false);
        let ln = |n: &str, x: &[f64]| {
            layernorm(
                x,
                t(w, &format!("{l}.{n}.weight")),
                Some(t(w, &format!("{l}.{n}.bias"))),
            )
        };
        xs = xs
            .iter()
            .zip(&a)
            .map(|(x, a)| {
                let o = lin("attention.output.dense", a, D);
                let r: Vec<f64> = x.iter().zip(&o).map(|(p, q)| p + q).collect();
                let x1 = ln("attention.output.LayerNorm", &r);
                let mut f = lin("intermediate.dense", &x1, FF);
                f.iter_mut().for_each(|v| *v = gelu_tanh(*v));
                let f = lin("output.dense", &f, D);
                let r: Vec<f64> = x1.iter().zip(&f).map(|(p, q)| p + q).collect();
                ln("output.LayerNorm", &r)
            })
            .collect();
    }
    let mut pooled = linear(
        t(w, "bert.pooler.dense.weight"),
        Some(t(w, "bert.pooler.dense.bias")),
        &xs[0],
        D,
    );
    pooled.iter_mut().for_each(|v| *v = v.tanh());
    linear(
        t(w, "classifier.weight"),
        Some(t(w, "classifier.bias")),
        &pooled,
        3,
    )
}

// ------------------------------------------------------------------- GPT-2

fn gpt2_shapes() -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = vec![
        ("transformer.wte.weight".into(), vec![V, D]),
        ("transformer.wpe.weight".into(), vec![SEQ, D]),
    ];
    for i in 0..2 {
        let l = format!("transformer.h.{i}");
        for (n, s) in [
            ("ln_1.weight", vec![D]),
            ("ln_1.bias", vec![D]),
            ("attn.c_attn.weight", vec![D, 3 * D]),
            ("attn.c_attn.bias", vec![3 * D]),
            ("attn.c_proj.weight", vec![D, D]),
            ("attn.c_proj.bias", vec![D]),
            ("ln_2.weight", vec![D]),
            ("ln_2.bias", vec![D]),
            ("mlp.c_fc.weight", vec![D, FF]),
            ("mlp.c_fc.bias", vec![FF]),
            ("mlp.c_proj.weight", vec![FF, D]),
            ("mlp.c_proj.bias", vec![D]),
        ] {
            v.push((format!("{l}.{n}"), s));
        }
    }
    v.push(("transformer.ln_f.weight".into(), vec![D]));
    v.push(("transformer.ln_f.bias".into(), vec![D]));
    v
}

fn gpt2_forward(w: &Weights, tokens: &[usize]) -> Vec<f64> {
    let (wte, wpe) = (
        t(w, "transformer.wte.weight"),
        t(w, "transformer.wpe.weight"),
    );
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .enumerate()
        .map(|(p, &tok)| {
            (0..D)
                .map(|j| wte[tok * D + j] as f64 + wpe[p * D + j] as f64)
                .collect()
        })
        .collect();
    for i in 0..2 {
        let l = format!("transformer.h.{i}");
        let g = |n: &str| t(w, &format!("{l}.{n}"));
        let h1: Vec<_> = xs
            .iter()
            .map(|x| layernorm(x, g("ln_1.weight"), Some(g("ln_1.bias"))))
            .collect();
        let qkv: Vec<_> = h1
            .iter()
            .map(|x| conv1d(g("attn.c_attn.weight"), g("attn.c_attn.bias"), x, 3 * D))
            .collect();
        let q: Vec<_> = qkv.iter().map(|v| v[..D].to_vec()).collect();
        let k: Vec<_> = qkv.iter().map(|v| v[D..2 * D].to_vec()).collect();
        let v: Vec<_> = qkv.iter().map(|v| v[2 * D..].to_vec()).collect();
        let a = attention(&q, &k, &v, H, H, D / H, true);
        xs = xs
            .iter()
            .zip(&a)
            .map(|(x, a)| {
                let o = conv1d(g("attn.c_proj.weight"), g("attn.c_proj.bias"), a, D);
                let r: Vec<f64> = x.iter().zip(&o).map(|(p, q)| p + q).collect();
                let h2 = layernorm(&r, g("ln_2.weight"), Some(g("ln_2.bias")));
                let mut f = conv1d(g("mlp.c_fc.weight"), g("mlp.c_fc.bias"), &h2, FF);
                f.iter_mut().for_each(|v| *v = gelu_tanh(*v));
                let f = conv1d(g("mlp.c_proj.weight"), g("mlp.c_proj.bias"), &f, D);
                r.iter().zip(&f).map(|(p, q)| p + q).collect()
            })
            .collect();
    }
    // Tied head: logits = ln_f(x) · wteᵀ, for every position.
    xs.iter()
        .flat_map(|x| {
            let h = layernorm(
                x,
                t(w, "transformer.ln_f.weight"),
                Some(t(w, "transformer.ln_f.bias")),
            );
            linear(wte, None, &h, V)
        })
        .collect()
}

// ------------------------------------------------------------------- LLaMA (GQA + RoPE)

const LH: usize = 4;
const LKV: usize = 2;
const LD: usize = 4; // head dim
const LDM: usize = 12; // model dim

fn llama_shapes() -> Vec<(String, Vec<usize>)> {
    let mut v: Vec<(String, Vec<usize>)> = vec![("model.embed_tokens.weight".into(), vec![V, LDM])];
    for i in 0..2 {
        let l = format!("model.layers.{i}");
        for (n, s) in [
            ("input_layernorm.weight", vec![LDM]),
            ("self_attn.q_proj.weight", vec![LH * LD, LDM]),
            ("self_attn.k_proj.weight", vec![LKV * LD, LDM]),
            ("self_attn.v_proj.weight", vec![LKV * LD, LDM]),
            ("self_attn.o_proj.weight", vec![LDM, LH * LD]),
            ("post_attention_layernorm.weight", vec![LDM]),
            ("mlp.gate_proj.weight", vec![FF, LDM]),
            ("mlp.up_proj.weight", vec![FF, LDM]),
            ("mlp.down_proj.weight", vec![LDM, FF]),
        ] {
            v.push((format!("{l}.{n}"), s));
        }
    }
    v.push(("model.norm.weight".into(), vec![LDM]));
    v.push(("lm_head.weight".into(), vec![V, LDM]));
    v
}

fn llama_forward(w: &Weights, tokens: &[usize], rope_on: bool) -> Vec<f64> {
    let emb = t(w, "model.embed_tokens.weight");
    let mut xs: Vec<Vec<f64>> = tokens
        .iter()
        .map(|&tok| (0..LDM).map(|j| emb[tok * LDM + j] as f64).collect())
        .collect();
    for i in 0..2 {
        let l = format!("model.layers.{i}");
        let g = |n: &str| t(w, &format!("{l}.{n}"));
        let h1: Vec<_> = xs
            .iter()
            .map(|x| rmsnorm(x, g("input_layernorm.weight")))
            .collect();
        let mut q: Vec<_> = h1
            .iter()
            .map(|x| linear(g("self_attn.q_proj.weight"), None, x, LH * LD))
            .collect();
        let mut k: Vec<_> = h1
            .iter()
            .map(|x| linear(g("self_attn.k_proj.weight"), None, x, LKV * LD))
            .collect();
        let v: Vec<_> = h1
            .iter()
            .map(|x| linear(g("self_attn.v_proj.weight"), None, x, LKV * LD))
            .collect();
        if rope_on {
            for (pos, (qq, kk)) in q.iter_mut().zip(k.iter_mut()).enumerate() {
                for hh in 0..LH {
                    rope(&mut qq[hh * LD..(hh + 1) * LD], pos, LD);
                }
                for hh in 0..LKV {
                    rope(&mut kk[hh * LD..(hh + 1) * LD], pos, LD);
                }
            }
        }
        let a = attention(&q, &k, &v, LH, LKV, LD, true);
        xs = xs
            .iter()
            .zip(&a)
            .map(|(x, a)| {
                let o = linear(g("self_attn.o_proj.weight"), None, a, LDM);
                let r: Vec<f64> = x.iter().zip(&o).map(|(p, q)| p + q).collect();
                let h2 = rmsnorm(&r, g("post_attention_layernorm.weight"));
                let gt = linear(g("mlp.gate_proj.weight"), None, &h2, FF);
                let up = linear(g("mlp.up_proj.weight"), None, &h2, FF);
                let f: Vec<f64> = gt.iter().zip(&up).map(|(a, b)| silu(*a) * b).collect();
                let f = linear(g("mlp.down_proj.weight"), None, &f, LDM);
                r.iter().zip(&f).map(|(p, q)| p + q).collect()
            })
            .collect();
    }
    xs.iter()
        .flat_map(|x| {
            let h = rmsnorm(x, t(w, "model.norm.weight"));
            linear(t(w, "lm_head.weight"), None, &h, V)
        })
        .collect()
}

fn as_refs(v: &[(String, Vec<usize>)]) -> Vec<(&str, Vec<usize>)> {
    v.iter().map(|(n, s)| (n.as_str(), s.clone())).collect()
}

fn tokens(seed: u64) -> Vec<usize> {
    inputs(SEQ, seed)
        .iter()
        .map(|x| ((x + 1.0) * 5.0) as usize % V)
        .collect()
}

fn facts(act: &str, heads: Option<usize>) -> Facts {
    Facts {
        activation: Some(act.into()),
        heads,
        ..Facts::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn mlp_relu_invariant(seed in any::<u64>()) {
        let sh = mlp_shapes();
        let spec = spec_of(&sh, &facts("relu", None));
        prop_assert!(spec.unproven.is_empty(), "{:?}", spec.unproven);
        let w = random_weights(&sh, seed);
        let x = inputs(5, seed);
        check(&spec, &w, seed, |w| mlp_forward(w, &x, |v| v.max(0.0)));
    }

    #[test]
    fn mlp_tanh_invariant(seed in any::<u64>()) {
        let sh = mlp_shapes();
        let spec = spec_of(&sh, &facts("tanh", None));
        let w = random_weights(&sh, seed);
        let x = inputs(5, seed);
        check(&spec, &w, seed, |w| mlp_forward(w, &x, f64::tanh));
    }

    #[test]
    fn cnn_bn_invariant(seed in any::<u64>()) {
        let sh = cnn_shapes();
        let spec = spec_of(&sh, &facts("relu", None));
        prop_assert_eq!(spec.family, Family::Cnn);
        let w = random_weights(&sh, seed);
        let x = inputs(2 * 36, seed);
        check(&spec, &w, seed, |w| cnn_forward(w, &x));
    }

    #[test]
    fn cnn_channels_last_flatten_invariant(seed in any::<u64>()) {
        let sh = cnn_shapes();
        let spec = spec_of(&sh, &Facts { flatten: Some(Flatten::ChannelsLast), ..facts("relu", None) });
        prop_assert!(spec.unproven.is_empty());
        let w = random_weights(&sh, seed);
        let x = inputs(2 * 36, seed);
        check(&spec, &w, seed, |w| cnn_forward_channels_last(w, &x));
    }

    #[test]
    fn resnet_invariant(seed in any::<u64>()) {
        let sh = resnet_shapes();
        let spec = spec_of(&as_refs(&sh), &Facts::default());
        prop_assert_eq!(spec.family, Family::Resnet);
        prop_assert!(spec.unproven.is_empty(), "{:?}", spec.unproven);
        let w = random_weights(&as_refs(&sh), seed);
        let x = inputs(2 * 16, seed);
        check(&spec, &w, seed, |w| resnet_forward(w, &x));
    }

    #[test]
    fn bert_invariant(seed in any::<u64>()) {
        let sh = bert_shapes();
        let spec = spec_of(&as_refs(&sh), &facts("gelu", Some(H)));
        prop_assert_eq!(spec.family, Family::Bert);
        prop_assert!(spec.unproven.is_empty(), "{:?}", spec.unproven);
        let w = random_weights(&as_refs(&sh), seed);
        let tok = tokens(seed);
        check(&spec, &w, seed, |w| bert_forward(w, &tok));
    }

    #[test]
    fn gpt2_invariant(seed in any::<u64>()) {
        let sh = gpt2_shapes();
        let spec = spec_of(&as_refs(&sh), &facts("gelu_new", Some(H)));
        prop_assert_eq!(spec.family, Family::Gpt2);
        prop_assert!(spec.unproven.is_empty(), "{:?}", spec.unproven);
        let w = random_weights(&as_refs(&sh), seed);
        let tok = tokens(seed);
        check(&spec, &w, seed, |w| gpt2_forward(w, &tok));
    }

    #[test]
    fn llama_gqa_rope_invariant(seed in any::<u64>()) {
        let sh = llama_shapes();
        let spec = spec_of(&as_refs(&sh), &Facts { heads: Some(LH), kv_heads: Some(LKV), ..Facts::default() });
        prop_assert_eq!(spec.family, Family::Llama);
        prop_assert!(spec.unproven.is_empty(), "{:?}", spec.unproven);
        prop_assert!(!spec.groups.iter().any(|g| g.kind == GroupKind::QkDims));
        let w = random_weights(&as_refs(&sh), seed);
        let tok = tokens(seed);
        check(&spec, &w, seed, |w| llama_forward(w, &tok, true));
    }

    #[test]
    fn llama_without_rope_permutes_qk_dims(seed in any::<u64>()) {
        let sh = llama_shapes();
        let spec = spec_of(&as_refs(&sh), &Facts { heads: Some(LH), kv_heads: Some(LKV), rope: Some(false), ..Facts::default() });
        prop_assert!(spec.groups.iter().any(|g| g.kind == GroupKind::QkDims));
        let w = random_weights(&as_refs(&sh), seed);
        let tok = tokens(seed);
        check(&spec, &w, seed, |w| llama_forward(w, &tok, false));
    }
}

/// The flatten order matters: the channel-major reading of a position-major flatten changes
/// the output, which is why a derived CNN without a `flatten` fact is not proven.
#[test]
fn wrong_flatten_order_breaks_the_cnn() {
    let sh = cnn_shapes();
    let spec = spec_of(&sh, &facts("relu", None));
    assert!(
        spec.unproven
            .iter()
            .any(|u| u.tensor == "fc1.weight" && u.kind == UnprovenKind::Flatten),
        "{:?}",
        spec.unproven
    );
    let w = random_weights(&sh, 3);
    let x = inputs(2 * 36, 3);
    let t = Transform::random(&spec, 5, &RandomOptions::default());
    let mut p = w.clone();
    apply(&spec, &mut p, &t).unwrap();
    let f = |w: &Weights| cnn_forward_channels_last(w, &x);
    assert!(max_rel_diff(&f(&w), &f(&p)) > 1e-3);
}

/// The head-aware spec matters: a generic permutation of Q/K/V rows (not whole heads) changes
/// the output, so the test above would catch a spec that got heads wrong.
#[test]
fn non_head_permutation_breaks_attention() {
    let sh = gpt2_shapes();
    let mut spec = spec_of(&as_refs(&sh), &facts("gelu_new", Some(H)));
    // Pretend the whole attention width were one flat hidden group.
    for g in spec
        .groups
        .iter_mut()
        .filter(|g| g.kind == GroupKind::Heads)
    {
        g.size *= D / H;
        for m in &mut g.members {
            m.layout.block = 1;
        }
    }
    let w = random_weights(&as_refs(&sh), 3);
    let tok = tokens(3);
    let t = Transform::random(&spec, 5, &RandomOptions::default());
    let mut p = w.clone();
    apply(&spec, &mut p, &t).unwrap();
    assert!(max_rel_diff(&gpt2_forward(&w, &tok), &gpt2_forward(&p, &tok)) > 1e-3);
}
