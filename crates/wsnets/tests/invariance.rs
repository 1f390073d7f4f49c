//! Permuting the hidden units of the input networks leaves every model's output unchanged.

mod util;

use burn::tensor::Device;
use proptest::prelude::*;
use util::*;
use weightspace_wsnets::{WsArch, WsNetConfig, WsShape};

fn device() -> Device {
    Device::flex()
}

/// Largest |a - b| relative to the output scale.
fn max_rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = a.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Builds `arch` for `shape`, runs it on random nets and on hidden-permuted copies of them.
fn check_invariance(arch: WsArch, shape: &WsShape, seed: u64) {
    check_invariance_with(arch, shape, seed, None);
}

/// As [`check_invariance`], with `dws`'s input down-sampling set.
fn check_invariance_with(arch: WsArch, shape: &WsShape, seed: u64, downsample: Option<usize>) {
    let dev = device();
    dev.seed(seed);
    // ng-gnn passes messages input -> output and reads out the output nodes, so it sees the first
    // layer only with at least as many rounds as the input nets have layers.
    let depth = if arch == WsArch::NgGnn {
        shape.layers.len()
    } else {
        2
    };
    let cfg = WsNetConfig {
        hidden: 16,
        depth,
        out_dim: 3,
        input_downsample: downsample,
        ..WsNetConfig::new(arch)
    };
    let net = cfg.init(shape, &dev);
    let mut rng = SplitMix::new(seed);
    let nets: Vec<HostNet> = (0..3).map(|_| random_net(shape, &mut rng)).collect();
    let permuted: Vec<HostNet> = nets
        .iter()
        .map(|n| permute_hidden(n, shape, &mut rng))
        .collect();
    let y = to_vec(net.forward(&to_batch(&nets, shape, &dev)));
    let yp = to_vec(net.forward(&to_batch(&permuted, shape, &dev)));
    assert_eq!(y.len(), 3 * 3);
    assert!(
        y.iter().all(|v| v.is_finite()),
        "{arch}: non-finite output {y:?}"
    );
    let d = max_rel_diff(&y, &yp);
    assert!(
        d < 1e-4,
        "{arch}: permuting hidden units changed the output by {d} ({y:?} vs {yp:?})"
    );

    // Control: the model does look at the weights (a changed net gives a different output), so
    // the check above can fail.
    let mut changed = nets.clone();
    for w in changed[0].weights.iter_mut() {
        for v in w.iter_mut() {
            *v = -*v * 1.5 + 0.1;
        }
    }
    let yc = to_vec(net.forward(&to_batch(&changed, shape, &dev)));
    assert!(
        max_rel_diff(&y[..3], &yc[..3]) > 1e-4,
        "{arch}: output does not depend on the weights"
    );

    // Control: permuting the rows of the first layer *without* the matching columns of the next
    // one changes the function; the models that pair a unit's incoming and outgoing weights must
    // notice. Not DeepSets (each layer's units are an unordered set), and not the neural-graph
    // models: at initialisation their outputs move by only ~1e-6..1e-5 relative under this change
    // (ng-gnn on the 4-layer CNN shape: 2.9e-6 for one seed), below the invariance tolerance, so
    // this control is not decisive for them and was flaky for ng-gnn.
    if !matches!(
        arch,
        WsArch::DeepSets | WsArch::NgTransformer | WsArch::NgGnn
    ) {
        let mut broken = nets.clone();
        let l0 = &shape.layers[0];
        let row = l0.inp * l0.kernel;
        let w = broken[0].weights[0].clone();
        let b = broken[0].biases[0].clone();
        for r in 0..l0.out {
            let src = (r + 1) % l0.out;
            broken[0].weights[0][r * row..(r + 1) * row]
                .copy_from_slice(&w[src * row..(src + 1) * row]);
            broken[0].biases[0][r] = b[src];
        }
        let yb = to_vec(net.forward(&to_batch(&broken, shape, &dev)));
        let db = max_rel_diff(&y[..3], &yb[..3]);
        assert!(
            db > 1e-5,
            "{arch}: a function-changing permutation left the output unchanged ({db})"
        );
    }
}

fn supported(arch: WsArch, shape: &WsShape) -> bool {
    WsNetConfig::new(arch).try_init(shape, &device()).is_ok()
}

const ARCHS: [WsArch; 6] = WsArch::ALL;

proptest! {
    #![proptest_config(ProptestConfig { cases: 3, ..ProptestConfig::default() })]

    #[test]
    fn mlp_hidden_permutations_leave_output_unchanged(seed in any::<u64>()) {
        for arch in ARCHS {
            check_invariance(arch, &mlp_shape(), seed);
        }
    }

    #[test]
    fn cnn_hidden_permutations_leave_output_unchanged(seed in any::<u64>()) {
        for arch in ARCHS {
            if supported(arch, &cnn_shape()) {
                check_invariance(arch, &cnn_shape(), seed);
            }
        }
    }

    #[test]
    fn dws_with_input_downsampling_is_invariant(seed in any::<u64>()) {
        // 12 inputs mapped down to 5 (and 4) positions inside every layer.
        check_invariance_with(WsArch::Dws, &mlp_shape(), seed, Some(5));
        check_invariance_with(WsArch::Dws, &two_layer_shape(), seed, Some(4));
    }

    #[test]
    fn two_layer_hidden_permutations_leave_output_unchanged(seed in any::<u64>()) {
        for arch in ARCHS {
            check_invariance(arch, &two_layer_shape(), seed);
        }
    }
}

#[test]
fn permute_hidden_is_a_real_permutation() {
    // The helper must move something, or the invariance tests would pass trivially.
    let shape = mlp_shape();
    let mut rng = SplitMix::new(7);
    let net = random_net(&shape, &mut rng);
    let p = permute_hidden(&net, &shape, &mut rng);
    assert_ne!(net.weights[0], p.weights[0]);
    assert_ne!(net.weights[1], p.weights[1]);
    let mut a = net.weights[0].clone();
    let mut b = p.weights[0].clone();
    a.sort_by(f32::total_cmp);
    b.sort_by(f32::total_cmp);
    assert_eq!(a, b);
}

#[test]
fn dws_input_downsampling_shrinks_the_model_and_needs_a_dense_first_layer() {
    use burn::module::Module;
    // A 64-32-10 MLP, as in the digits zoo: W_0 -> W_0 is a (64 C)^2 map without down-sampling.
    let shape = WsShape {
        layers: vec![
            weightspace_wsnets::LayerShape {
                out: 32,
                inp: 64,
                kernel: 1,
            },
            weightspace_wsnets::LayerShape {
                out: 10,
                inp: 32,
                kernel: 1,
            },
        ],
    };
    let params = |k: Option<usize>| {
        let cfg = WsNetConfig {
            hidden: 8,
            input_downsample: k,
            ..WsNetConfig::new(WsArch::Dws)
        };
        cfg.init(&shape, &device()).num_params()
    };
    let (full, down) = (params(None), params(Some(16)));
    // Measured: 931,321 and 162,705 at 8 channels (the gap grows with the channels squared).
    assert!(down * 5 < full, "{full} parameters, {down} down-sampled");
    // Larger than the input: nothing to do, the same model.
    assert_eq!(params(Some(64)), full);

    // Convolutional first layers keep their kernels folded into the channels: refused.
    let mut rgb = cnn_shape();
    rgb.layers[0].inp = 3;
    let cfg = WsNetConfig {
        input_downsample: Some(2),
        ..WsNetConfig::new(WsArch::Dws)
    };
    let Err(err) = cfg.try_init(&rgb, &device()) else {
        panic!("a convolutional first layer was down-sampled")
    };
    assert!(err.to_string().contains("dense first layer"), "{err}");
}
