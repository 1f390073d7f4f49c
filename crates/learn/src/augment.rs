//! Augmentation by symmetries of the input networks: a random permutation of the hidden
//! units at every boundary between two layers (with the BatchNorm parameters that belong to
//! them), and, for positively homogeneous activations (ReLU, leaky ReLU) without BatchNorm,
//! a random positive scaling of each hidden unit (its incoming weights and bias times `s`,
//! its outgoing weights divided by `s`). Neither changes the network's function; the tests
//! check that with the zoo's own runtime.

use serde::{Deserialize, Serialize};
use weightspace_zoo::rng::Rng;

use crate::data::{Layout, NetWeights};
use crate::error::{Error, Result};

/// Which symmetries to draw.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Augment {
    /// Hidden-unit permutations.
    pub perm: bool,
    /// Positive scalings (ReLU-like networks only), factors in [1/2, 2] log-uniform.
    pub scale: bool,
}

impl Augment {
    /// True when nothing is drawn.
    pub fn is_none(&self) -> bool {
        !self.perm && !self.scale
    }
}

impl std::str::FromStr for Augment {
    type Err = Error;
    fn from_str(s: &str) -> Result<Augment> {
        let mut a = Augment::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part {
                "perm" => a.perm = true,
                "scale" => a.scale = true,
                "none" => {}
                p => {
                    return Err(Error::Options(format!(
                        "augmentation `{p}`: expected perm, scale or none (e.g. perm,scale)"
                    )));
                }
            }
        }
        Ok(a)
    }
}

impl std::fmt::Display for Augment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.perm, self.scale) {
            (false, false) => f.write_str("none"),
            (true, false) => f.write_str("perm"),
            (false, true) => f.write_str("scale"),
            (true, true) => f.write_str("perm,scale"),
        }
    }
}

/// Applies a random group element to `net` in place. `homogeneous` says whether scaling is
/// allowed for this network (its activation is ReLU-like).
pub fn apply_random(
    net: &mut NetWeights,
    layout: &Layout,
    aug: Augment,
    homogeneous: bool,
    rng: &mut Rng,
) {
    let nl = layout.layers.len();
    for li in 0..nl.saturating_sub(1) {
        let l = &layout.layers[li];
        let next = &layout.layers[li + 1];
        let n = l.out;
        if aug.perm {
            let mut perm: Vec<usize> = (0..n).collect();
            rng.shuffle(&mut perm);
            // Rows of this layer (each row: inp·kernel values), its bias and BatchNorm.
            let row = l.inp * l.kernel;
            let w = &net.tensors[l.weight];
            let nw: Vec<f32> = perm
                .iter()
                .flat_map(|&p| w[p * row..(p + 1) * row].iter().copied())
                .collect();
            net.tensors[l.weight] = nw;
            let mut vecs = vec![l.bias];
            if let Some((g, b)) = l.batchnorm {
                vecs.extend([g, b]);
            }
            for t in vecs {
                let v = &net.tensors[t];
                let nv: Vec<f32> = perm.iter().map(|&p| v[p]).collect();
                net.tensors[t] = nv;
            }
            // Columns of the next layer: [out, n, kernel].
            let k = next.kernel;
            let w = &net.tensors[next.weight];
            let mut nw = vec![0f32; w.len()];
            for o in 0..next.out {
                for (c, &p) in perm.iter().enumerate() {
                    let dst = (o * n + c) * k;
                    let src = (o * n + p) * k;
                    nw[dst..dst + k].copy_from_slice(&w[src..src + k]);
                }
            }
            net.tensors[next.weight] = nw;
        }
        if aug.scale && homogeneous && l.batchnorm.is_none() {
            let s: Vec<f32> = (0..n)
                .map(|_| {
                    (rng.uniform(-std::f64::consts::LN_2, std::f64::consts::LN_2)).exp() as f32
                })
                .collect();
            let row = l.inp * l.kernel;
            for (u, &su) in s.iter().enumerate() {
                for v in &mut net.tensors[l.weight][u * row..(u + 1) * row] {
                    *v *= su;
                }
                net.tensors[l.bias][u] *= su;
            }
            let k = next.kernel;
            let w = &mut net.tensors[next.weight];
            for o in 0..next.out {
                for (c, &sc) in s.iter().enumerate() {
                    for v in &mut w[(o * n + c) * k..(o * n + c + 1) * k] {
                        *v /= sc;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weightspace_zoo::{Activation, Arch, Init, Net};

    fn check(arch: Arch, input: &[usize], homogeneous: bool, aug: Augment) {
        let net = Net::new(&arch, input, 10).unwrap();
        let mut rng = Rng::new(7);
        let mut st = net.init(Init::He, 1.0, &mut rng);
        // Non-zero biases, so that a wrong bias permutation shows.
        for p in net.params() {
            if p.name.ends_with("bias") {
                for v in &mut st.params[p.offset..p.offset + p.numel()] {
                    *v = rng.uniform(-0.5, 0.5) as f32;
                }
            }
        }
        let tensors: Vec<(String, Vec<usize>)> = net
            .params()
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone()))
            .collect();
        let layout = Layout::from_tensors(tensors, "t".as_ref()).unwrap();
        let w = NetWeights {
            tensors: net
                .params()
                .iter()
                .map(|p| p.slice(&st.params).to_vec())
                .collect(),
        };
        let mut w2 = w.clone();
        apply_random(&mut w2, &layout, aug, homogeneous, &mut Rng::new(3));
        assert_ne!(w, w2, "the augmentation changed nothing");
        let mut st2 = st.clone();
        for (p, t) in net.params().iter().zip(&w2.tensors) {
            st2.params[p.offset..p.offset + p.numel()].copy_from_slice(t);
        }
        let dim: usize = input.iter().product();
        let n = 16;
        let x: Vec<f32> = (0..n * dim).map(|_| rng.uniform(0.0, 1.0) as f32).collect();
        let a = net.predict(&st, &x, n);
        let b = net.predict(&st2, &x, n);
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() <= 1e-4 * scale.max(1.0), "{u} vs {v}");
        }
    }

    #[test]
    fn permutation_keeps_mlp_function() {
        for act in [Activation::Relu, Activation::Tanh] {
            let arch = Arch::Mlp {
                hidden: vec![12, 8],
                activation: act,
                dropout: 0.0,
            };
            check(
                arch,
                &[20],
                false,
                Augment {
                    perm: true,
                    scale: false,
                },
            );
        }
    }

    #[test]
    fn permutation_and_scaling_keep_relu_mlp_and_cnn_function() {
        let both = Augment {
            perm: true,
            scale: true,
        };
        let arch = Arch::Mlp {
            hidden: vec![12, 8],
            activation: Activation::Relu,
            dropout: 0.0,
        };
        check(arch, &[20], true, both);
        let cnn = Arch::Cnn {
            channels: vec![4, 6],
            kernel: 3,
            stride: 2,
            padding: 1,
            batchnorm: false,
            activation: Activation::Relu,
            dropout: 0.0,
        };
        check(cnn.clone(), &[1, 8, 8], true, both);
        check(
            cnn,
            &[1, 8, 8],
            false,
            Augment {
                perm: true,
                scale: false,
            },
        );
        let scale_only = Augment {
            perm: false,
            scale: true,
        };
        let arch = Arch::Mlp {
            hidden: vec![5],
            activation: Activation::Relu,
            dropout: 0.0,
        };
        check(arch, &[6], true, scale_only);
    }

    #[test]
    fn parses() {
        assert_eq!(
            "perm,scale".parse::<Augment>().unwrap(),
            Augment {
                perm: true,
                scale: true
            }
        );
        assert!("rot".parse::<Augment>().is_err());
    }
}
