//! Canonical forms, weight matching, activation matching, LMC barriers and align-then-merge.

mod common;

use common::*;
use proptest::prelude::*;
use weightspace_spec::graph::NeuralGraph;
use weightspace_spec::{Facts, ModelSpec};
use weightspace_symmetry::lmc::{Evaluator, interpolate, lerp};
use weightspace_symmetry::merge::{align_then_average, align_to_base, average};
use weightspace_symmetry::{
    CanonOptions, MatchOptions, RandomOptions, Result, Transform, Weights, activation_matching,
    align, apply, canonicalize,
};

fn mlp(widths: &[usize]) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    for i in 0..widths.len() - 1 {
        v.push((
            format!("layers.{}.weight", 2 * i),
            vec![widths[i + 1], widths[i]],
        ));
        v.push((format!("layers.{}.bias", 2 * i), vec![widths[i + 1]]));
    }
    v
}

fn refs(v: &[(String, Vec<usize>)]) -> Vec<(&str, Vec<usize>)> {
    v.iter().map(|(n, s)| (n.as_str(), s.clone())).collect()
}

fn relu_mlp_spec(widths: &[usize]) -> (ModelSpec, Vec<(String, Vec<usize>)>) {
    let sh = mlp(widths);
    let f = Facts {
        activation: Some("relu".into()),
        ..Facts::default()
    };
    (spec_of(&refs(&sh), &f), sh)
}

fn forward(w: &Weights, widths: &[usize], x: &[f64]) -> Vec<f64> {
    let mut h = x.to_vec();
    for i in 0..widths.len() - 1 {
        h = linear(
            t(w, &format!("layers.{}.weight", 2 * i)),
            Some(t(w, &format!("layers.{}.bias", 2 * i))),
            &h,
            widths[i + 1],
        );
        if i + 2 < widths.len() {
            relu(&mut h);
        }
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Canonicalising a permuted copy gives back the canonical form of the original, bit
    /// for bit.
    #[test]
    fn canon_of_permuted_copy_is_bitwise_equal(seed in any::<u64>()) {
        let (spec, sh) = relu_mlp_spec(&[6, 10, 9, 3]);
        let w = random_weights(&refs(&sh), seed);
        let mut p = w.clone();
        apply(&spec, &mut p, &Transform::random(&spec, seed ^ 1, &RandomOptions::default())).unwrap();
        let (mut a, mut b) = (w.clone(), p);
        canonicalize(&spec, &mut a, &CanonOptions::default()).unwrap();
        canonicalize(&spec, &mut b, &CanonOptions::default()).unwrap();
        prop_assert!(a == b);
        // Same function as the original.
        let x = inputs(6, seed);
        prop_assert!(max_rel_diff(&forward(&w, &[6, 10, 9, 3], &x), &forward(&a, &[6, 10, 9, 3], &x)) < 1e-4);
    }

    /// With random positive scalings too, the canonical forms agree to rounding.
    #[test]
    fn canon_removes_scaling(seed in any::<u64>()) {
        let (spec, sh) = relu_mlp_spec(&[6, 10, 9, 3]);
        let w = random_weights(&refs(&sh), seed);
        let mut p = w.clone();
        let opts = RandomOptions { scale: true, ..RandomOptions::default() };
        apply(&spec, &mut p, &Transform::random(&spec, seed ^ 1, &opts)).unwrap();
        let (mut a, mut b) = (w.clone(), p);
        canonicalize(&spec, &mut a, &CanonOptions::default()).unwrap();
        canonicalize(&spec, &mut b, &CanonOptions::default()).unwrap();
        prop_assert!(a.l2_distance(&b).unwrap() < 1e-4);
    }

    /// Weight matching a permuted copy back to the original recovers it exactly.
    #[test]
    fn weight_matching_undoes_a_permutation(seed in any::<u64>()) {
        let (spec, sh) = relu_mlp_spec(&[8, 16, 12, 4]);
        let w = random_weights(&refs(&sh), seed);
        let mut p = w.clone();
        apply(&spec, &mut p, &Transform::random(&spec, seed ^ 7, &RandomOptions::default())).unwrap();
        let (aligned, r) = align(&spec, &w, &p, &MatchOptions { seed, ..MatchOptions::default() }).unwrap();
        prop_assert!(aligned == w);
        prop_assert!(r.similarity_after >= r.similarity_before);
    }
}

#[test]
fn canon_bitwise_on_cnn_with_batchnorm() {
    // Conv channels flattened into a dense layer, BatchNorm statistics moving along.
    let sh: Vec<(&str, Vec<usize>)> = vec![
        ("conv1.weight", vec![4, 2, 3, 3]),
        ("conv1.bias", vec![4]),
        ("bn1.weight", vec![4]),
        ("bn1.bias", vec![4]),
        ("bn1.running_mean", vec![4]),
        ("bn1.running_var", vec![4]),
        ("conv2.weight", vec![6, 4, 3, 3]),
        ("fc1.weight", vec![5, 24]),
        ("fc2.weight", vec![3, 5]),
    ];
    let spec = spec_of(
        &sh,
        &Facts {
            activation: Some("relu".into()),
            ..Facts::default()
        },
    );
    for seed in 0..20 {
        let w = random_weights(&sh, seed);
        let mut p = w.clone();
        apply(
            &spec,
            &mut p,
            &Transform::random(&spec, seed + 100, &RandomOptions::default()),
        )
        .unwrap();
        let (mut a, mut b) = (w, p);
        canonicalize(&spec, &mut a, &CanonOptions::default()).unwrap();
        canonicalize(&spec, &mut b, &CanonOptions::default()).unwrap();
        assert!(a == b, "seed {seed}");
    }
}

#[test]
fn weight_matching_is_head_aware_on_gpt2() {
    let (d, h, ff, v) = (8, 2, 12, 7);
    let mut sh: Vec<(String, Vec<usize>)> = vec![
        ("wte.weight".into(), vec![v, d]),
        ("wpe.weight".into(), vec![4, d]),
    ];
    for (n, s) in [
        ("ln_1.weight", vec![d]),
        ("ln_1.bias", vec![d]),
        ("attn.c_attn.weight", vec![d, 3 * d]),
        ("attn.c_attn.bias", vec![3 * d]),
        ("attn.c_proj.weight", vec![d, d]),
        ("attn.c_proj.bias", vec![d]),
        ("ln_2.weight", vec![d]),
        ("ln_2.bias", vec![d]),
        ("mlp.c_fc.weight", vec![d, ff]),
        ("mlp.c_fc.bias", vec![ff]),
        ("mlp.c_proj.weight", vec![ff, d]),
        ("mlp.c_proj.bias", vec![d]),
    ] {
        sh.push((format!("h.0.{n}"), s));
    }
    let spec = spec_of(
        &refs(&sh),
        &Facts {
            heads: Some(h),
            ..Facts::default()
        },
    );
    for seed in 0..10 {
        let w = random_weights(&refs(&sh), seed);
        let mut p = w.clone();
        apply(
            &spec,
            &mut p,
            &Transform::random(&spec, seed + 1, &RandomOptions::default()),
        )
        .unwrap();
        let (aligned, _) = align(&spec, &w, &p, &MatchOptions::default()).unwrap();
        assert!(aligned == w, "seed {seed}");
    }
}

#[test]
fn activation_matching_recovers_units() {
    let (spec, sh) = relu_mlp_spec(&[5, 7, 3]);
    let w = random_weights(&refs(&sh), 1);
    let t = Transform::random(&spec, 2, &RandomOptions::default());
    let mut p = w.clone();
    apply(&spec, &mut p, &t).unwrap();
    // Hidden activations of both on the same inputs.
    let acts = |w: &Weights| -> Vec<f32> {
        (0..64)
            .flat_map(|s| {
                let x = inputs(5, s);
                let mut h = linear(
                    t_(w, "layers.0.weight"),
                    Some(t_(w, "layers.0.bias")),
                    &x,
                    7,
                );
                relu(&mut h);
                h.into_iter().map(|v| v as f32)
            })
            .collect()
    };
    fn t_<'a>(w: &'a Weights, n: &str) -> &'a [f32] {
        &w.get(n).unwrap().data
    }
    let m = activation_matching(&spec, &[Some((acts(&w), acts(&p)))]).unwrap();
    let mut back = p.clone();
    apply(&spec, &mut back, &m).unwrap();
    assert!(back == w);
}

/// A toy evaluator: loss = squared distance to a fixed point, accuracy = exp(-loss).
struct Quadratic(Weights);

impl Evaluator for Quadratic {
    fn loss_acc(&self, w: &Weights) -> Result<(f64, f64)> {
        let d = w.l2_distance(&self.0)?;
        Ok((d * d, (-d * d).exp()))
    }
}

#[test]
fn barrier_of_a_convex_loss_is_zero_and_of_a_bump_positive() {
    let (_, sh) = relu_mlp_spec(&[3, 4, 2]);
    let a = random_weights(&refs(&sh), 1);
    let b = random_weights(&refs(&sh), 2);
    // Convex loss centred at the midpoint: the path dips below the chord, barrier <= 0.
    let mid = lerp(&a, &b, 0.5).unwrap();
    let p = interpolate(&Quadratic(mid), &a, &b, 11, false).unwrap();
    assert!(p.loss_barrier <= 1e-9, "{}", p.loss_barrier);
    assert_eq!(p.points.len(), 11);
    // Loss = −(distance to the midpoint)²: maximal in the middle, barrier = |a−b|²/4.
    struct Bump(Weights);
    impl Evaluator for Bump {
        fn loss_acc(&self, w: &Weights) -> Result<(f64, f64)> {
            let d = w.l2_distance(&self.0)?;
            Ok((-d * d, 0.0))
        }
    }
    let p = interpolate(&Bump(lerp(&a, &b, 0.5).unwrap()), &a, &b, 5, false).unwrap();
    let dab = a.l2_distance(&b).unwrap();
    assert!((p.loss_barrier - dab * dab / 4.0).abs() < 1e-3 * dab * dab);
    assert!((p.argmax_lambda - 0.5).abs() < 1e-12);
}

#[test]
fn align_then_merge_of_permuted_copies_is_the_model() {
    let (spec, sh) = relu_mlp_spec(&[6, 10, 4]);
    let w = random_weights(&refs(&sh), 9);
    let models: Vec<Weights> = (0..3)
        .map(|s| {
            let mut p = w.clone();
            apply(
                &spec,
                &mut p,
                &Transform::random(&spec, s, &RandomOptions::default()),
            )
            .unwrap();
            p
        })
        .collect();
    let merged = align_then_average(&spec, &models, 0, None, &MatchOptions::default()).unwrap();
    // Aligned to model 0, which computes the same function as w.
    let x = inputs(6, 1);
    assert!(
        max_rel_diff(
            &forward(&w, &[6, 10, 4], &x),
            &forward(&merged, &[6, 10, 4], &x)
        ) < 1e-5
    );
    // Naive averaging of the permuted copies does not.
    let naive = average(&models, 0, None).unwrap();
    assert!(
        max_rel_diff(
            &forward(&w, &[6, 10, 4], &x),
            &forward(&naive, &[6, 10, 4], &x)
        ) > 1e-3
    );
    let (aligned, results) = align_to_base(&spec, &models, 1, &MatchOptions::default()).unwrap();
    assert_eq!(results.len(), 2);
    assert!(aligned[0] == models[1] && aligned[2] == models[1]);
}

#[test]
fn neural_graph_is_permutation_equivariant() {
    let (spec, sh) = relu_mlp_spec(&[3, 5, 2]);
    let w = random_weights(&refs(&sh), 4);
    let g = NeuralGraph::build(&spec, |n| w.get(n).map(|t| t.data.clone())).unwrap();
    assert_eq!(g.layer_sizes, vec![3, 5, 2]);
    assert_eq!(g.edges.len(), 3 * 5 + 5 * 2);
    assert_eq!(g.node_dim, 1);
    // Permuting hidden units permutes hidden nodes: multisets of node and edge features agree.
    let mut p = w.clone();
    apply(
        &spec,
        &mut p,
        &Transform::random(&spec, 1, &RandomOptions::default()),
    )
    .unwrap();
    let gp = NeuralGraph::build(&spec, |n| p.get(n).map(|t| t.data.clone())).unwrap();
    let sorted = |v: &[f32]| {
        let mut v = v.to_vec();
        v.sort_by(f32::total_cmp);
        v
    };
    assert_eq!(sorted(&g.node_features), sorted(&gp.node_features));
    assert_eq!(sorted(&g.edge_features), sorted(&gp.edge_features));
    assert_ne!(g.edge_features, gp.edge_features);
}

#[test]
fn weights_roundtrip_through_safetensors() {
    let (_, sh) = relu_mlp_spec(&[3, 4, 2]);
    let w = random_weights(&refs(&sh), 4);
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.safetensors");
    w.write_safetensors(&p, &Default::default()).unwrap();
    assert!(Weights::open(&p).unwrap() == w);
}
